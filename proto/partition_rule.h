/*
 * partition_rule: the key -> partition function, one copy for the broker
 * and the library. Clients in other languages follow the same steps,
 * written out at the top of ringmq.proto; docs/protocol.md has test
 * vectors, which its test checks against this code.
 *
 * partition = jump_consistent_hash(XXH64(key, seed 0), partitions)
 * (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
 * Algorithm", 2014). Moving from n to n + 1 partitions moves about
 * 1/(n + 1) of the keys. Changing either step moves keys between the
 * partitions of existing queues: that is a protocol change.
 */
#ifndef RINGMQ_PARTITION_RULE_H
#define RINGMQ_PARTITION_RULE_H

#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

/* Jump consistent hash of a 64-bit key into [0, buckets). The constant
 * is the paper's 64-bit linear congruential generator; the double
 * arithmetic is part of the definition, since clients must round the
 * same way. */
static inline uint32_t
partition_rule_jump(uint64_t key, uint32_t buckets)
{
	int64_t b = -1, j = 0;

	/* One bucket (or the invalid 0) has one answer; it also keeps the
	 * result in range for callers that did not check. */
	if (buckets <= 1)
		return 0;
	while (j < (int64_t)buckets) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		/* b + 1 < 2^32 and the quotient is at most 2^31, so j stays
		 * below 2^63 and the conversion is defined. */
		j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) /
						 (double)((key >> 33) + 1)));
	}
	return (uint32_t)b;
}

/* The partition of a message key (or, for a keyless message, of its
 * dedup id). */
static inline uint32_t
partition_rule_for_key(const void *key, size_t len, uint32_t partitions)
{
	return partition_rule_jump(XXH64(key, len, 0), partitions);
}

#endif
