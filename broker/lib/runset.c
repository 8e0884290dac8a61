/*
 * runset: see runset.h.
 */
#include "lib/runset.h"
#include "lib/vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Index (0 .. n) of the first run that starts above x. */
static size_t
upper(const struct runset *s, uint64_t x)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[s->start + mid].first <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Makes room for one more run at the back. */
static int
reserve(struct runset *s)
{
	if (s->start + s->n < s->cap)
		return 0;
	if (s->start > 0) {
		memmove(s->r, s->r + s->start, s->n * sizeof(*s->r));
		s->start = 0;
		return 0;
	}
	struct offset_run *r =
		vec_grow(s->r, &s->cap, s->cap + 1, sizeof(*r), 8);

	if (r == NULL)
		return -ENOMEM;
	s->r = r;
	return 0;
}

int
runset_add(struct runset *s, uint64_t x)
{
	size_t i = upper(s, x); /* runs before i start at or below x */
	struct offset_run *prev = i > 0 ? &s->r[s->start + i - 1] : NULL;
	struct offset_run *next = i < s->n ? &s->r[s->start + i] : NULL;
	int joins_prev, joins_next;

	if (prev != NULL && x - prev->first < prev->count)
		return 0; /* present */
	joins_prev = prev != NULL && x - prev->first == prev->count;
	joins_next = next != NULL && next->first - 1 == x;
	if (joins_prev && joins_next) {
		prev->count += 1 + next->count;
		memmove(next, next + 1, (s->n - i - 1) * sizeof(*next));
		s->n--;
	} else if (joins_prev) {
		prev->count++;
	} else if (joins_next) {
		next->first = x;
		next->count++;
	} else {
		if (reserve(s) < 0)
			return -ENOMEM;
		next = &s->r[s->start + i];
		memmove(next + 1, next, (s->n - i) * sizeof(*next));
		next->first = x;
		next->count = 1;
		s->n++;
	}
	s->count++;
	return 0;
}

int
runset_add_run(struct runset *s, uint64_t first, uint64_t count)
{
	const struct offset_run *last =
		s->n > 0 ? &s->r[s->start + s->n - 1] : NULL;

	if (last == NULL ||
	    (first > last->first && first - last->first > last->count)) {
		if (reserve(s) < 0)
			return -ENOMEM;
		s->r[s->start + s->n].first = first;
		s->r[s->start + s->n].count = count;
		s->n++;
		s->count += count;
		return 0;
	}
	for (uint64_t k = 0; k < count; k++)
		if (runset_add(s, first + k) < 0)
			return -ENOMEM;
	return 0;
}

int
runset_has(const struct runset *s, uint64_t x)
{
	size_t i = upper(s, x);

	return i > 0 &&
	       x - s->r[s->start + i - 1].first < s->r[s->start + i - 1].count;
}

uint64_t
runset_first(const struct runset *s)
{
	return s->r[s->start].first;
}

void
runset_pop(struct runset *s)
{
	struct offset_run *r = &s->r[s->start];

	s->count--;
	if (--r->count > 0) {
		r->first++;
		return;
	}
	s->start++;
	if (--s->n == 0)
		s->start = 0;
}

const struct offset_run *
runset_runs(const struct runset *s, size_t *n)
{
	*n = s->n;
	return s->n > 0 ? &s->r[s->start] : NULL;
}

void
runset_free(struct runset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}
