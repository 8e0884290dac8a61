/*
 * heap: a binary min-heap of fixed-size elements, ordered by a uint64_t
 * key that each element begins with (a due time, say). The delayed
 * messages of the queues and the nack delays of the groups are two.
 *
 * Owns its array; elements are copied in and out. Ties come out in no
 * particular order.
 */
#ifndef RINGMQ_HEAP_H
#define RINGMQ_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HEAP_MAX_ELEM_BYTES 64

struct heap {
	uint8_t *v; /* owned: n elements of size bytes, heap-ordered */
	size_t n, cap;
	size_t size; /* bytes of an element; its first 8 are the key */
};

/* An empty heap of elements of type; the type's first member must be
 * its uint64_t key (check with a _Static_assert on offsetof). */
#define HEAP_INIT(type)                  \
	{                                \
		NULL, 0, 0, sizeof(type) \
	}

/* Copies e in. @return 0 or -ENOMEM (h unchanged). */
int heap_push(struct heap *h, const void *e);

/* Removes the top element; h must not be empty. */
void heap_pop(struct heap *h);

/* Keeps the elements for which keep returns non-zero, in heap order. */
void heap_filter(struct heap *h, int (*keep)(const void *e, void *ctx),
		 void *ctx);

void heap_fini(struct heap *h);

/* The element with the smallest key, or NULL; valid until h changes. */
static inline const void *
heap_top(const struct heap *h)
{
	return h->n > 0 ? h->v : NULL;
}

/* The key of the top element; h must not be empty. */
static inline uint64_t
heap_top_key(const struct heap *h)
{
	uint64_t k;

	memcpy(&k, h->v, sizeof(k));
	return k;
}

#endif
