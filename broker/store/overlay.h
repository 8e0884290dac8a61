/*
 * overlay: the messages the journal has made durable that LMDB has not
 * applied yet, so that the loop thread reads them at once (DESIGN.md,
 * "Storage": what the journal made durable is deliverable before LMDB
 * applies it).
 *
 * It indexes the "msgs" operations of confirmed batches, in confirm
 * order: a put's value, a delete, a deleted range. A read asks the
 * overlay first and LMDB only when the overlay knows nothing of the key.
 * Values point into the batches, which the caller keeps until it drops
 * them here (after the LMDB commit holding them is visible to reads).
 *
 * Not thread-safe: the loop thread owns it.
 */
#ifndef RINGMQ_STORE_OVERLAY_H
#define RINGMQ_STORE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store_codec.h"

struct overlay;

/* @return a new empty overlay, or NULL when out of memory. */
struct overlay *overlay_new(void);

/* NULL is a no-op. */
void overlay_free(struct overlay *ov);

/*
 * Indexes the "msgs" operations of batch b, confirmed with journal
 * sequence number seq (greater than every earlier call's).
 * @return 0 or -ENOMEM (the overlay is then unchanged).
 */
int overlay_add(struct overlay *ov, uint64_t seq, const struct store_batch *b);

/* Forgets what overlay_add(seq, b) indexed and no later batch replaced:
 * LMDB's state now holds it. Batches are dropped in the order added. */
void overlay_drop(struct overlay *ov, uint64_t seq,
		  const struct store_batch *b);

/*
 * Looks up a "msgs" key (16 bytes).
 * @return 1 with *val and *len set (the value as LMDB would hold it);
 *         0 when the overlay deleted it; -1 when the overlay knows
 *         nothing of it (read LMDB).
 */
int overlay_get(const struct overlay *ov, const uint8_t key[16],
		const uint8_t **val, size_t *len);

/* Keys and ranges held (for tests and metrics). */
size_t overlay_size(const struct overlay *ov);

#endif
