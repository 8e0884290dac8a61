/*
 * queue_int: what queue.c (the registry, partitions, delayed messages,
 * staging) and publish.c (the publish path) share; never included outside
 * core/queue*.c and core/publish.c.
 */
#ifndef RINGMQ_QUEUE_INT_H
#define RINGMQ_QUEUE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/queue.h"
#include "lib/heap.h"
#include "store/store.h"

#define QUEUES_BUCKETS 1024u

struct queues {
	struct store *store;	  /* borrowed */
	const struct config *cfg; /* borrowed */
	queue_visible_fn visible;
	void *visible_ctx;
	struct queue *buckets[QUEUES_BUCKETS]; /* chains by name hash */
	struct queue **by_id;		       /* owned array, creation order */
	size_t count, cap;
	uint32_t next_qid;
	size_t npending; /* creates submitted, not yet committed */
	struct heap due; /* of struct due: delayed messages by due time */
	struct queue_counters retired; /* summed from deleted queues */
};

/* A delayed message in the due-time heap; stale entries (cancelled or
 * moved) are skipped when popped. */
struct due {
	uint64_t due_ms; /* wall clock; the heap's key */
	uint32_t qid;
	uint32_t part;
	uint64_t offset;
};
_Static_assert(offsetof(struct due, due_ms) == 0, "heap key first");

/* Adds a delayed message to its partition and the due heap.
 * @return 0 or -ENOMEM. */
int delayed_add(struct queues *qs, struct queue *q, uint32_t part,
		uint64_t offset, uint64_t due_ms, uint32_t size);

/* Appends one offset (a message size or PART_HOLE) at committed_next.
 * @return 0 or -ENOMEM. */
int partition_append(struct partition *p, uint32_t size);

/* Records the outcome of the commit of offset (its size, or PART_HOLE if
 * it failed) in the partition index. */
void queue_index(struct queue *q, uint32_t part, uint64_t offset,
		 uint32_t size);

/* Adds the partition's stored next offset to b (a reservation with
 * sync=interval). @return 1 if a reservation was extended, 0 if not,
 * -ENOMEM. */
int persist_next(struct queues *qs, struct queue *q, uint32_t part,
		 struct store_batch *b, uint64_t *reserved);

/* A reservation committed: offsets below it may be confirmed early. */
void reserve_durable(struct queue *q, uint32_t part, uint64_t reserved);

#endif
