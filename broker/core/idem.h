/*
 * idem: publish idempotence of one queue: dedup ids and producer
 * sequences.
 *
 * Owns, per queue, the dedup ids seen within the queue's dedup window
 * (partition, id -> original offset) and each producer's last batches per
 * partition (sequence -> original offsets), both persisted by the caller's
 * publish batch (records "dedup" and "producers" of store.h) and rebuilt
 * at start-up. Publishes that use neither cost nothing here.
 *
 * Invariant: an entry is visible to look-ups from the moment its publish is
 * submitted; a publish that fails to commit removes what it added.
 */
#ifndef RINGMQ_IDEM_H
#define RINGMQ_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define IDEM_PRODUCER_BATCHES 5 /* resent batches answered, as Kafka */

struct idem; /* opaque, one per queue */

struct idem *idem_new(void);
void idem_free(struct idem *d);

/* The original offset of dedup id on part if seen within window_ms
 * before now_ms. @return 1 found (*offset set), 0 not. */
int idem_dedup_find(struct idem *d, uint32_t part, const void *id, uint16_t len,
		    uint64_t now_ms, uint64_t window_ms, uint64_t *offset);

/* Remembers dedup id at offset (replacing an expired entry).
 * @return 0 or -ENOMEM. */
int idem_dedup_add(struct idem *d, uint32_t part, const void *id, uint16_t len,
		   uint64_t offset, uint64_t publish_ms);

/* Forgets id if it still maps to offset (its publish failed). */
void idem_dedup_forget(struct idem *d, uint32_t part, const void *id,
		       uint16_t len, uint64_t offset);

/* Outcome of a producer sequence check. */
enum idem_seq {
	IDEM_SEQ_NEW = 0,    /* store it */
	IDEM_SEQ_RESENT = 1, /* a recorded batch: answer with its offsets */
	IDEM_SEQ_STALE = 2,  /* older than what is recorded: refuse */
};

/* Checks batch (producer, part, first_seq, count). For IDEM_SEQ_RESENT,
 * *batch is the recorded batch, valid until the next change here. */
enum idem_seq idem_producer_check(struct idem *d, uint32_t part,
				  uint64_t producer, uint64_t first_seq,
				  uint32_t count,
				  const struct store_producer_batch **batch);

/* Records a batch as answered (its skips, malloc'ed, become idem's, also
 * on failure) and fills *out with the producer's new state for the
 * store; *out borrows idem's skips until the next change here.
 * @return 0 or -ENOMEM. */
int idem_producer_add(struct idem *d, uint32_t part, uint64_t producer,
		      const struct store_producer_batch *batch, uint64_t now_ms,
		      struct store_producer *out);

/* Replaces the recorded batch of the same first_seq and count, if still
 * kept, with batch (whose skips become idem's in any case). */
void idem_producer_replace(struct idem *d, uint32_t part, uint64_t producer,
			   const struct store_producer_batch *batch);

/* Drops the batch starting at first_seq again (its publish failed). */
void idem_producer_forget(struct idem *d, uint32_t part, uint64_t producer,
			  uint64_t first_seq);

/* Recovery. */
int idem_load_dedup(struct idem *d, uint32_t part, const void *id, uint16_t len,
		    uint64_t offset, uint64_t publish_ms);
int idem_load_producer(struct idem *d, uint32_t part, uint64_t producer,
		       const struct store_producer *p);

/* Drops dedup entries and producers unused for window_ms, adding their
 * deletes to b (which the caller submits). @return deletes added, or
 * -ENOMEM. */
int idem_expire(struct idem *d, uint32_t qid, uint64_t now_ms,
		uint64_t window_ms, struct store_batch *b);

#endif
