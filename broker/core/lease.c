/*
 * lease: see lease.h.
 */
#include "core/lease.h"
#include "lib/vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Spares kept at most: more than a loop pass frees and takes (the
 * dispatch budget is 4,096 deliveries); 112-byte leases, about 512 KB
 * with malloc's headers. */
#define LEASE_SPARE_MAX 4096

static size_t
bucket(const struct lease_table *t, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (t->nbuckets - 1);
}

static int
table_grow(struct lease_table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 1024;
	struct lease **b = calloc(n, sizeof(*b));
	struct lease **old = t->buckets;
	size_t nold = t->nbuckets;

	if (b == NULL)
		return -ENOMEM;
	t->buckets = b;
	t->nbuckets = n;
	for (size_t i = 0; i < nold; i++)
		while (old[i]) {
			struct lease *l = old[i];
			size_t h = bucket(t, l->id);

			old[i] = l->hash_next;
			l->hash_next = b[h];
			b[h] = l;
		}
	free(old);
	return 0;
}

int
lease_table_init(struct lease_table *t)
{
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
	t->heap = NULL;
	t->hn = t->hcap = 0;
	t->spare = NULL;
	t->nspare = 0;
	return table_grow(t);
}

struct lease *
lease_table_alloc(struct lease_table *t)
{
	struct lease *l = t->spare;

	if (l == NULL)
		return calloc(1, sizeof(*l));
	t->spare = l->hash_next;
	t->nspare--;
	memset(l, 0, sizeof(*l));
	return l;
}

void
lease_table_release(struct lease_table *t, struct lease *l)
{
	if (t->nspare >= LEASE_SPARE_MAX) {
		free(l);
		return;
	}
	l->hash_next = t->spare;
	t->spare = l;
	t->nspare++;
}

void
lease_table_fini(struct lease_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++)
		while (t->buckets[i]) {
			struct lease *l = t->buckets[i];

			t->buckets[i] = l->hash_next;
			free(l);
		}
	while (t->spare) {
		struct lease *l = t->spare;

		t->spare = l->hash_next;
		free(l);
	}
	t->nspare = 0;
	free(t->buckets);
	free(t->heap);
	t->buckets = NULL;
	t->heap = NULL;
	t->nbuckets = t->count = t->hn = t->hcap = 0;
}

#define HEAP_ARITY 4

/* Moves slot x up from the hole at i to its place. */
static void
heap_up(struct lease_table *t, size_t i, struct lease_slot x)
{
	while (i > 0) {
		size_t p = (i - 1) / HEAP_ARITY;

		if (t->heap[p].deadline_ms <= x.deadline_ms)
			break;
		t->heap[i] = t->heap[p];
		t->heap[i].l->heap_idx = i;
		i = p;
	}
	t->heap[i] = x;
	x.l->heap_idx = i;
}

/* Moves slot x down from the hole at i to its place. */
static void
heap_down(struct lease_table *t, size_t i, struct lease_slot x)
{
	for (;;) {
		size_t c = HEAP_ARITY * i + 1, end = c + HEAP_ARITY, m = c;

		if (c >= t->hn)
			break;
		if (end > t->hn)
			end = t->hn;
		for (size_t k = c + 1; k < end; k++)
			if (t->heap[k].deadline_ms < t->heap[m].deadline_ms)
				m = k;
		if (t->heap[m].deadline_ms >= x.deadline_ms)
			break;
		t->heap[i] = t->heap[m];
		t->heap[i].l->heap_idx = i;
		i = m;
	}
	t->heap[i] = x;
	x.l->heap_idx = i;
}

/* Puts x into the hole at i, up or down as its deadline asks. */
static void
heap_place(struct lease_table *t, size_t i, struct lease_slot x)
{
	if (i > 0 && x.deadline_ms < t->heap[(i - 1) / HEAP_ARITY].deadline_ms)
		heap_up(t, i, x);
	else
		heap_down(t, i, x);
}

int
lease_table_insert(struct lease_table *t, struct lease *l)
{
	struct lease_slot *heap;
	size_t h;

	if ((t->count + 1) * 2 > t->nbuckets && table_grow(t) < 0)
		return -ENOMEM;
	heap = vec_grow(t->heap, &t->hcap, t->hn + 1, sizeof(*heap), 1024);
	if (heap == NULL)
		return -ENOMEM;
	t->heap = heap;
	h = bucket(t, l->id);
	l->hash_next = t->buckets[h];
	t->buckets[h] = l;
	t->count++;
	t->hn++;
	heap_up(t, t->hn - 1, (struct lease_slot){ l->deadline_ms, l });
	return 0;
}

void
lease_table_remove(struct lease_table *t, struct lease *l)
{
	struct lease **pp = &t->buckets[bucket(t, l->id)];
	size_t i = l->heap_idx;

	while (*pp != l)
		pp = &(*pp)->hash_next;
	*pp = l->hash_next;
	t->count--;
	t->hn--;
	if (i != t->hn)
		heap_place(t, i, t->heap[t->hn]);
}

struct lease *
lease_table_find(const struct lease_table *t, uint64_t id)
{
	if (t->nbuckets == 0)
		return NULL;
	for (struct lease *l = t->buckets[bucket(t, id)]; l; l = l->hash_next)
		if (l->id == id)
			return l;
	return NULL;
}

struct lease *
lease_table_earliest(const struct lease_table *t)
{
	return t->hn > 0 ? t->heap[0].l : NULL;
}

void
lease_table_reschedule(struct lease_table *t, struct lease *l)
{
	heap_place(t, l->heap_idx, (struct lease_slot){ l->deadline_ms, l });
}
