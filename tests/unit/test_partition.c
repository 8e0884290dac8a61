/*
 * Unit tests for partition: jump consistent hash and key -> partition.
 *
 * The reference values below pin the function. They were computed once from
 * the published algorithm (the pseudo-code at the top of
 * proto/ringmq.proto, and XXH64 with seed 0) by an implementation written
 * independently of proto/partition_rule.h, and are hard-coded so that a client
 * library in another language can check itself against the same table: a
 * key must land on the same partition whoever computes it. If one of them
 * changes, keys move between partitions of existing queues, which is a
 * protocol change, not a test to update.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "partition_rule.h"

#define N_KEYS 100000

/* The keys of the distribution tests: "key-0" .. "key-99999". */
static size_t
key_name(char *buf, size_t cap, uint32_t i)
{
	int n = snprintf(buf, cap, "key-%u", i);

	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static void
test_partition_jump_of_zero_key(void **state)
{
	uint32_t n;

	(void)state;
	/* Key 0 steps to 1, whose first jump lands at 2^31: bucket 0 for
	 * every n up to 2^31, and the jump itself just past it. */
	for (n = 1; n <= 100000; n++)
		assert_int_equal(partition_rule_jump(0, n), 0);
	assert_int_equal(partition_rule_jump(0, 1u << 31), 0);
	assert_int_equal(partition_rule_jump(0, (1u << 31) + 1), 1u << 31);
	assert_int_equal(partition_rule_jump(0, UINT32_MAX), 1u << 31);
}

static void
test_partition_jump_reference_values(void **state)
{
	static const uint32_t buckets[] = {
		1, 2, 3, 8, 10, 100, 1000, 1024, 65536, UINT32_MAX
	};
	static const struct {
		uint64_t key;
		uint32_t want[10];
	} ref[] = {
		{ 1, { 0, 0, 0, 6, 6, 55, 549, 549, 21134, 3094789146u } },
		{ 0xdeadbeef,
		  { 0, 1, 2, 5, 5, 87, 285, 285, 64244, 1452406526u } },
		{ UINT64_MAX,
		  { 0, 1, 2, 7, 9, 92, 313, 313, 18311, 2680453518u } },
		{ 0x0123456789abcdefull,
		  { 0, 0, 0, 0, 0, 57, 194, 194, 33301, 1651575352u } },
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof ref / sizeof ref[0]; i++)
		for (j = 0; j < sizeof buckets / sizeof buckets[0]; j++)
			assert_int_equal(
				partition_rule_jump(ref[i].key, buckets[j]),
				ref[i].want[j]);
}

/* XXH64 itself, seed 0: the library's published test vectors. */
static void
test_partition_xxh64_reference_values(void **state)
{
	(void)state;
	assert_int_equal(XXH64("", 0, 0), 0xef46db3751d8e999ull);
	assert_int_equal(XXH64("a", 1, 0), 0xd24ec4f1a98c6e5bull);
	assert_int_equal(XXH64("abc", 3, 0), 0x44bc2cf5ad770999ull);
}

static void
test_partition_for_key_reference_values(void **state)
{
	static const uint32_t parts[] = { 1, 2, 3, 8, 16, 100, 1024 };
	static const struct {
		const char *key;
		size_t len;
		uint32_t want[7];
	} ref[] = {
		{ "", 0, { 0, 1, 2, 7, 7, 40, 332 } },
		{ "a", 1, { 0, 1, 1, 6, 8, 17, 894 } },
		{ "user-42", 7, { 0, 1, 1, 4, 4, 93, 93 } },
		{ "order:1234567890", 16, { 0, 0, 0, 0, 10, 59, 963 } },
		{ "\x00\x01\x02", 3, { 0, 0, 0, 0, 0, 37, 37 } },
		/* over 32 bytes: XXH64's long-input path */
		{ "the quick brown fox jumps over the lazy dog",
		  43,
		  { 0, 0, 0, 0, 0, 37, 37 } },
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof ref / sizeof ref[0]; i++)
		for (j = 0; j < sizeof parts / sizeof parts[0]; j++)
			assert_int_equal(partition_rule_for_key(ref[i].key,
								ref[i].len,
								parts[j]),
					 ref[i].want[j]);
}

static void
test_partition_one_bucket_is_zero(void **state)
{
	uint64_t key = 0x9e3779b97f4a7c15ull;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++, key = key * 6364136223846793005ull + 1) {
		assert_int_equal(partition_rule_jump(key, 1), 0);
		/* 0 is not a valid count; it still stays in range of 1. */
		assert_int_equal(partition_rule_jump(key, 0), 0);
	}
}

static void
test_partition_outputs_in_range(void **state)
{
	static const uint32_t counts[] = { 2,	3,    7,     8,
					   100, 1024, 65537, UINT32_MAX };
	char name[32];
	uint32_t i;
	size_t j;

	(void)state;
	for (i = 0; i < N_KEYS; i++) {
		size_t len = key_name(name, sizeof name, i);

		for (j = 0; j < sizeof counts / sizeof counts[0]; j++)
			assert_true(partition_rule_for_key(
					    name, len, counts[j]) < counts[j]);
	}
}

static void
test_partition_balanced_over_keys(void **state)
{
	uint32_t hits[8] = { 0 };
	const double mean = N_KEYS / 8.0;
	char name[32];
	uint32_t i;

	(void)state;
	for (i = 0; i < N_KEYS; i++) {
		size_t len = key_name(name, sizeof name, i);

		hits[partition_rule_for_key(name, len, 8)]++;
	}
	for (i = 0; i < 8; i++) {
		if (hits[i] < mean * 0.95 || hits[i] > mean * 1.05)
			fail_msg("partition %u got %u of %d keys", i, hits[i],
				 N_KEYS);
	}
}

/* n -> n + 1 moves about 1/(n + 1) of the keys, all to the new one. */
static void
test_partition_growth_moves_few_keys(void **state)
{
	static uint32_t before[N_KEYS];
	char name[32];
	uint32_t i, n;

	(void)state;
	for (i = 0; i < N_KEYS; i++) {
		size_t len = key_name(name, sizeof name, i);

		before[i] = partition_rule_for_key(name, len, 1);
	}
	for (n = 1; n <= 64; n++) {
		const double expect = (double)N_KEYS / (n + 1);
		uint32_t moved = 0;

		for (i = 0; i < N_KEYS; i++) {
			size_t len = key_name(name, sizeof name, i);
			uint32_t p = partition_rule_for_key(name, len, n + 1);

			if (p != before[i]) {
				if (p != n)
					fail_msg("key %u moved %u -> %u going "
						 "to %u partitions",
						 i, before[i], p, n + 1);
				moved++;
			}
			before[i] = p;
		}
		/* Each key moves with probability 1/(n + 1), so moved is
		 * binomial: allow five standard deviations (compared
		 * squared, to stay clear of libm). */
		{
			const double p = 1.0 / (n + 1);
			const double var = N_KEYS * p * (1 - p);
			const double d = moved - expect;

			if (d * d > 25 * var)
				fail_msg("%u -> %u partitions moved %u keys, "
					 "expected about %.0f",
					 n, n + 1, moved, expect);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partition_jump_of_zero_key),
		cmocka_unit_test(test_partition_jump_reference_values),
		cmocka_unit_test(test_partition_xxh64_reference_values),
		cmocka_unit_test(test_partition_for_key_reference_values),
		cmocka_unit_test(test_partition_one_bucket_is_zero),
		cmocka_unit_test(test_partition_outputs_in_range),
		cmocka_unit_test(test_partition_balanced_over_keys),
		cmocka_unit_test(test_partition_growth_moves_few_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
