/*
 * Unit tests of publish idempotence (broker/core/idem.c), in-process:
 * dedup ids within and past the window, producer batches answered again,
 * gaps, stale sequences, the five kept batches, failed publishes undone,
 * and expiry writing its deletes into a store batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/idem.h"
#include "store/store.h"

#define WINDOW_MS 1000u

static struct store_producer_batch
batch(uint64_t first_seq, uint32_t count, uint64_t first_offset)
{
	struct store_producer_batch b = { first_seq, count, first_offset, 0,
					  NULL };

	return b;
}

static void
add_batch(struct idem *d, uint64_t producer, uint64_t first_seq, uint32_t count,
	  uint64_t first_offset, uint64_t now_ms)
{
	struct store_producer_batch b = batch(first_seq, count, first_offset);
	struct store_producer out;

	assert_int_equal(idem_producer_add(d, 0, producer, &b, now_ms, &out),
			 0);
	assert_true(out.n >= 1);
	assert_int_equal(out.batches[out.n - 1].first_seq, first_seq);
}

static enum idem_seq
check(struct idem *d, uint64_t producer, uint64_t first_seq, uint32_t count,
      uint64_t *first_offset)
{
	const struct store_producer_batch *b = NULL;
	enum idem_seq s =
		idem_producer_check(d, 0, producer, first_seq, count, &b);

	if (s == IDEM_SEQ_RESENT) {
		assert_non_null(b);
		if (first_offset != NULL)
			*first_offset = b->first_offset;
	}
	return s;
}

static void
test_idem_dedup_id_is_found_within_the_window_only(void **state)
{
	struct idem *d = idem_new();
	uint64_t off = 0;

	(void)state;
	assert_non_null(d);
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 100, WINDOW_MS, &off), 0);
	assert_int_equal(idem_dedup_add(d, 0, "inv-1", 5, 42, 100), 0);
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 900, WINDOW_MS, &off), 1);
	assert_int_equal(off, 42);
	/* Per partition, and by the whole id. */
	assert_int_equal(
		idem_dedup_find(d, 1, "inv-1", 5, 900, WINDOW_MS, &off), 0);
	assert_int_equal(idem_dedup_find(d, 0, "inv-", 4, 900, WINDOW_MS, &off),
			 0);
	/* At the window's end it is new again, and may be added again. */
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 1100, WINDOW_MS, &off), 0);
	assert_int_equal(idem_dedup_add(d, 0, "inv-1", 5, 77, 1100), 0);
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 1200, WINDOW_MS, &off), 1);
	assert_int_equal(off, 77);
	/* A failed publish forgets its own entry, not another's. */
	idem_dedup_forget(d, 0, "inv-1", 5, 42);
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 1200, WINDOW_MS, &off), 1);
	idem_dedup_forget(d, 0, "inv-1", 5, 77);
	assert_int_equal(
		idem_dedup_find(d, 0, "inv-1", 5, 1200, WINDOW_MS, &off), 0);
	idem_free(d);
}

static void
test_idem_producer_batches_resent_gaps_and_stale(void **state)
{
	struct idem *d = idem_new();
	uint64_t off = 0;

	(void)state;
	assert_int_equal(check(d, 7, 0, 2, NULL), IDEM_SEQ_NEW);
	add_batch(d, 7, 0, 2, 100, 10);
	/* The same batch again is answered with its offsets. */
	assert_int_equal(check(d, 7, 0, 2, &off), IDEM_SEQ_RESENT);
	assert_int_equal(off, 100);
	/* The next one, and one after a gap, are new. */
	assert_int_equal(check(d, 7, 2, 1, NULL), IDEM_SEQ_NEW);
	assert_int_equal(check(d, 7, 9, 1, NULL), IDEM_SEQ_NEW);
	add_batch(d, 7, 9, 1, 102, 20);
	/* Below the last batch and matching none: stale. So is the same
	 * first sequence with another count. */
	assert_int_equal(check(d, 7, 2, 1, NULL), IDEM_SEQ_STALE);
	assert_int_equal(check(d, 7, 0, 3, NULL), IDEM_SEQ_STALE);
	/* Other producers and partitions are apart. */
	assert_int_equal(check(d, 8, 0, 2, NULL), IDEM_SEQ_NEW);
	/* Five batches are kept: the sixth pushes out the first. */
	for (uint64_t s = 10; s < 14; s++)
		add_batch(d, 7, s, 1, 103 + s, 30);
	assert_int_equal(check(d, 7, 0, 2, NULL), IDEM_SEQ_STALE);
	assert_int_equal(check(d, 7, 9, 1, &off), IDEM_SEQ_RESENT);
	assert_int_equal(off, 102);
	/* A failed publish drops its batch: sent again, it is new. */
	add_batch(d, 7, 14, 1, 200, 40);
	idem_producer_forget(d, 0, 7, 14);
	assert_int_equal(check(d, 7, 14, 1, NULL), IDEM_SEQ_NEW);
	idem_free(d);
}

static void
test_idem_expiry_forgets_and_writes_deletes(void **state)
{
	struct idem *d = idem_new();
	struct store_batch *b = store_batch_new(0);
	uint64_t off = 0;
	int n;

	(void)state;
	assert_non_null(b);
	assert_int_equal(idem_dedup_add(d, 0, "old", 3, 1, 100), 0);
	assert_int_equal(idem_dedup_add(d, 0, "new", 3, 2, 900), 0);
	add_batch(d, 5, 0, 1, 3, 100);
	add_batch(d, 6, 0, 1, 4, 900);
	/* At 1500 the entries of 100 are past the window, those of 900 not. */
	n = idem_expire(d, 1, 1500, WINDOW_MS, b);
	assert_int_equal(n, 2);
	assert_int_equal(store_batch_ops(b), 2);
	assert_int_equal(idem_dedup_find(d, 0, "old", 3, 1500, WINDOW_MS, &off),
			 0);
	assert_int_equal(idem_dedup_find(d, 0, "new", 3, 1500, WINDOW_MS, &off),
			 1);
	assert_int_equal(check(d, 5, 0, 1, NULL), IDEM_SEQ_NEW);
	assert_int_equal(check(d, 6, 0, 1, NULL), IDEM_SEQ_RESENT);
	store_batch_free(b);
	idem_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_idem_dedup_id_is_found_within_the_window_only),
		cmocka_unit_test(
			test_idem_producer_batches_resent_gaps_and_stale),
		cmocka_unit_test(test_idem_expiry_forgets_and_writes_deletes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
