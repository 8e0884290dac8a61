/*
 * u64set: see u64set.h.
 */
#include "lib/u64set.h"
#include "lib/vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t
u64set_lower(const struct u64set *s, uint64_t x)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->v[s->start + mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
u64set_has(const struct u64set *s, uint64_t x)
{
	size_t i = u64set_lower(s, x);

	return i < s->n && s->v[s->start + i] == x;
}

int
u64set_add(struct u64set *s, uint64_t x)
{
	size_t i = u64set_lower(s, x);

	if (i < s->n && s->v[s->start + i] == x)
		return 0;
	if (s->start + s->n == s->cap) {
		if (s->start > s->cap / 2) {
			memmove(s->v, s->v + s->start, s->n * sizeof(*s->v));
			s->start = 0;
		} else {
			uint64_t *v = vec_grow(s->v, &s->cap, s->cap + 1,
					       sizeof(*v), 16);

			if (v == NULL)
				return -ENOMEM;
			s->v = v;
		}
	}
	memmove(&s->v[s->start + i + 1], &s->v[s->start + i],
		(s->n - i) * sizeof(*s->v));
	s->v[s->start + i] = x;
	s->n++;
	return 0;
}

uint64_t
u64set_first(const struct u64set *s)
{
	return s->v[s->start];
}

void
u64set_pop(struct u64set *s)
{
	s->start++;
	if (--s->n == 0)
		s->start = 0;
}

void
u64set_remove(struct u64set *s, uint64_t x)
{
	size_t i = u64set_lower(s, x);

	if (i == s->n || s->v[s->start + i] != x)
		return;
	memmove(&s->v[s->start + i], &s->v[s->start + i + 1],
		(s->n - i - 1) * sizeof(*s->v));
	if (--s->n == 0)
		s->start = 0;
}

void
u64set_free(struct u64set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}
