/*
 * placement: which broker owns each partition of a queue. Rendezvous
 * hashing ranks the brokers for each partition (a score per queue,
 * partition and broker: the same everywhere, with no table to share);
 * each broker takes an even share (the partition count over the brokers,
 * the remainder one more each for those that already hold the most); a
 * partition stays with its current owner while that owner is live and
 * within its share, and the others go to their best-ranked broker with
 * room. So a broker that dies gives up only its own partitions, and one
 * that joins takes only its share.
 */
#ifndef RINGMQ_PLACEMENT_H
#define RINGMQ_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* The rendezvous score of broker for partition part of queue. */
uint64_t placement_score(const char *queue, uint32_t part, const char *broker);

/*
 * Owners for the nparts partitions of queue over the nbrokers live
 * brokers (ids, any order, at least one): owner[i] (in: the index of
 * partition i's current owner among brokers, or -1 for none or a dead
 * one; out: its owner). @return how many partitions changed owner, or
 * -EINVAL, -ENOMEM.
 */
long placement_assign(const char *queue, uint32_t nparts,
		      const char *const *brokers, size_t nbrokers, int *owner);

#endif
