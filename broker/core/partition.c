/*
 * partition: the key -> partition function that broker and clients share.
 *
 * partition = jump_consistent_hash(XXH64(key, seed 0), partitions), exactly
 * the algorithm written out at the top of proto/ringmq.proto, so a client in
 * any language computes the same partition. Changing either step moves keys
 * between partitions of existing queues: that is a protocol change.
 */
#include "core/partition.h"

#include <xxhash.h>

/*
 * Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
 * (2014). The constant is their 64-bit linear congruential generator; the
 * double arithmetic is part of the definition, since clients must round the
 * same way.
 */
uint32_t
partition_jump(uint64_t key, uint32_t buckets)
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

uint32_t
partition_for_key(const void *key, size_t len, uint32_t partitions)
{
	return partition_jump(XXH64(key, len, 0), partitions);
}
