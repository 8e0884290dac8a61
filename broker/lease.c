/*
 * lease: see lease.h.
 */
#include "lease.h"

#include <errno.h>
#include <stdlib.h>

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
	return table_grow(t);
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
	free(t->buckets);
	free(t->heap);
	t->buckets = t->heap = NULL;
	t->nbuckets = t->count = t->hn = t->hcap = 0;
}

static void
heap_swap(struct lease_table *t, size_t a, size_t b)
{
	struct lease *x = t->heap[a];

	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->heap[a]->heap_idx = a;
	t->heap[b]->heap_idx = b;
}

static void
heap_up(struct lease_table *t, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (t->heap[p]->deadline_ms <= t->heap[i]->deadline_ms)
			break;
		heap_swap(t, i, p);
		i = p;
	}
}

static void
heap_down(struct lease_table *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < t->hn &&
		    t->heap[l]->deadline_ms < t->heap[m]->deadline_ms)
			m = l;
		if (r < t->hn &&
		    t->heap[r]->deadline_ms < t->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(t, i, m);
		i = m;
	}
}

int
lease_table_insert(struct lease_table *t, struct lease *l)
{
	size_t h;

	if ((t->count + 1) * 2 > t->nbuckets && table_grow(t) < 0)
		return -ENOMEM;
	if (t->hn == t->hcap) {
		size_t cap = t->hcap ? t->hcap * 2 : 1024;
		struct lease **heap = realloc(t->heap, cap * sizeof(*heap));

		if (heap == NULL)
			return -ENOMEM;
		t->heap = heap;
		t->hcap = cap;
	}
	h = bucket(t, l->id);
	l->hash_next = t->buckets[h];
	t->buckets[h] = l;
	t->count++;
	l->heap_idx = t->hn;
	t->heap[t->hn++] = l;
	heap_up(t, l->heap_idx);
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
	if (i != t->hn) {
		t->heap[i] = t->heap[t->hn];
		t->heap[i]->heap_idx = i;
		heap_down(t, i);
		heap_up(t, i);
	}
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
	return t->hn > 0 ? t->heap[0] : NULL;
}

void
lease_table_reschedule(struct lease_table *t, struct lease *l)
{
	heap_down(t, l->heap_idx);
	heap_up(t, l->heap_idx);
}
