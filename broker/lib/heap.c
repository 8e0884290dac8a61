/*
 * heap: see heap.h.
 */
#include "lib/heap.h"
#include "lib/vec.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

static uint64_t
key_at(const struct heap *h, size_t i)
{
	uint64_t k;

	memcpy(&k, h->v + i * h->size, sizeof(k));
	return k;
}

static void
swap_at(struct heap *h, size_t i, size_t j)
{
	uint8_t t[HEAP_MAX_ELEM_BYTES];

	memcpy(t, h->v + i * h->size, h->size);
	memcpy(h->v + i * h->size, h->v + j * h->size, h->size);
	memcpy(h->v + j * h->size, t, h->size);
}

static void
sift_up(struct heap *h, size_t i)
{
	while (i > 0 && key_at(h, (i - 1) / 2) > key_at(h, i)) {
		swap_at(h, (i - 1) / 2, i);
		i = (i - 1) / 2;
	}
}

static void
sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && key_at(h, l) < key_at(h, m))
			m = l;
		if (r < h->n && key_at(h, r) < key_at(h, m))
			m = r;
		if (m == i)
			return;
		swap_at(h, i, m);
		i = m;
	}
}

int
heap_push(struct heap *h, const void *e)
{
	uint8_t *v;

	assert(h->size >= sizeof(uint64_t) && h->size <= HEAP_MAX_ELEM_BYTES);
	v = vec_grow(h->v, &h->cap, h->n + 1, h->size, 64);
	if (v == NULL)
		return -ENOMEM;
	h->v = v;
	memcpy(h->v + h->n * h->size, e, h->size);
	sift_up(h, h->n++);
	return 0;
}

void
heap_pop(struct heap *h)
{
	assert(h->n > 0);
	if (--h->n > 0) {
		memcpy(h->v, h->v + h->n * h->size, h->size);
		sift_down(h, 0);
	}
}

void
heap_filter(struct heap *h, int (*keep)(const void *e, void *ctx), void *ctx)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n; i++)
		if (keep(h->v + i * h->size, ctx)) {
			if (n != i)
				memcpy(h->v + n * h->size, h->v + i * h->size,
				       h->size);
			n++;
		}
	h->n = n;
	for (size_t i = n / 2; i-- > 0;)
		sift_down(h, i);
}

void
heap_fini(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
