/*
 * partition: the key -> partition function every client can compute.
 *
 * partition = jump_consistent_hash(XXH64(key, seed 0), partitions)
 * (Lamping and Veach, 2014). Moving from n to n + 1 partitions moves about
 * 1/(n + 1) of the keys, so adding partitions later stays cheap.
 */
#ifndef RINGMQ_PARTITION_H
#define RINGMQ_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* Jump consistent hash of a 64-bit key into [0, buckets); buckets >= 1. */
uint32_t partition_jump(uint64_t key, uint32_t buckets);

/* The partition of a message key (or of a dedup id for keyless messages). */
uint32_t partition_for_key(const void *key, size_t len, uint32_t partitions);

#endif
