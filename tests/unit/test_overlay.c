/*
 * Unit tests of broker/store/overlay.c: what confirmed batches put and
 * deleted reads back in the order it was made, within a batch too, and
 * is forgotten batch by batch once LMDB holds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store/overlay.h"
#include "store/store_codec.h"

static struct store_batch *
batch(void)
{
	struct store_batch *b = store_batch_new(0);

	assert_non_null(b);
	return b;
}

static void
put(struct store_batch *b, uint32_t qid, uint32_t part, uint64_t off,
    const char *payload)
{
	struct store_msg m = { 0 };

	m.publish_ms = 1;
	m.payload = payload;
	m.payload_len = (uint32_t)strlen(payload);
	assert_int_equal(store_batch_put_msg(b, qid, part, off, &m), 0);
}

/* What a read of the message finds: its payload, "-" when deleted, "?"
 * when the overlay knows nothing of it. */
static const char *
get(const struct overlay *ov, uint32_t qid, uint32_t part, uint64_t off)
{
	static char text[64];
	struct store_msg_view v;
	const uint8_t *val;
	uint8_t key[16];
	size_t len;
	int rc;

	store_msg_key(key, qid, part, off);
	rc = overlay_get(ov, key, &val, &len);
	if (rc < 0)
		return "?";
	if (rc == 0)
		return "-";
	assert_int_equal(store_decode_msg(key, val, len, &v), 0);
	assert_true(v.payload_len < sizeof(text));
	memcpy(text, v.payload, v.payload_len);
	text[v.payload_len] = '\0';
	return text;
}

static void
test_a_put_reads_back_and_is_forgotten_when_dropped(void **state)
{
	struct overlay *ov = overlay_new();
	struct store_batch *b = batch();

	(void)state;
	assert_non_null(ov);
	put(b, 1, 0, 5, "five");
	put(b, 1, 1, 5, "other partition");
	assert_int_equal(overlay_add(ov, 1, b), 0);
	assert_string_equal(get(ov, 1, 0, 5), "five");
	assert_string_equal(get(ov, 1, 1, 5), "other partition");
	assert_string_equal(get(ov, 1, 0, 6), "?");
	assert_string_equal(get(ov, 2, 0, 5), "?");
	overlay_drop(ov, 1, b);
	assert_string_equal(get(ov, 1, 0, 5), "?");
	assert_int_equal(overlay_size(ov), 0);
	store_batch_free(b);
	overlay_free(ov);
}

/* A range deleted after a put hides it; a put after the range shows. */
static void
test_deletes_apply_in_the_order_they_were_made(void **state)
{
	struct overlay *ov = overlay_new();
	struct store_batch *b1 = batch(), *b2 = batch(), *b3 = batch();
	struct store_batch *b4 = batch();

	(void)state;
	put(b1, 1, 0, 0, "a");
	put(b1, 1, 0, 1, "b");
	put(b1, 1, 0, 2, "c");
	assert_int_equal(store_batch_del_msgs(b2, 1, 0, 0, 2), 0);
	put(b3, 1, 0, 1, "b again");
	/* Within one batch: put, then deleted; deleted, then put. */
	put(b4, 1, 0, 7, "gone");
	assert_int_equal(store_batch_del_msgs(b4, 1, 0, 7, 8), 0);
	assert_int_equal(store_batch_del_msgs(b4, 1, 0, 8, 9), 0);
	put(b4, 1, 0, 8, "kept");
	assert_int_equal(overlay_add(ov, 1, b1), 0);
	assert_int_equal(overlay_add(ov, 2, b2), 0);
	assert_string_equal(get(ov, 1, 0, 0), "-");
	assert_string_equal(get(ov, 1, 0, 1), "-");
	assert_string_equal(get(ov, 1, 0, 2), "c");
	assert_string_equal(get(ov, 1, 0, 3), "?"); /* outside the range */
	assert_int_equal(overlay_add(ov, 3, b3), 0);
	assert_int_equal(overlay_add(ov, 4, b4), 0);
	assert_string_equal(get(ov, 1, 0, 1), "b again");
	assert_string_equal(get(ov, 1, 0, 0), "-");
	assert_string_equal(get(ov, 1, 0, 7), "-");
	assert_string_equal(get(ov, 1, 0, 8), "kept");
	/* Dropped in order: what later batches replaced stays. */
	overlay_drop(ov, 1, b1);
	assert_string_equal(get(ov, 1, 0, 2), "?");
	assert_string_equal(get(ov, 1, 0, 0), "-");
	overlay_drop(ov, 2, b2);
	assert_string_equal(get(ov, 1, 0, 0), "?");
	assert_string_equal(get(ov, 1, 0, 1), "b again");
	overlay_drop(ov, 3, b3);
	overlay_drop(ov, 4, b4);
	assert_int_equal(overlay_size(ov), 0);
	store_batch_free(b1);
	store_batch_free(b2);
	store_batch_free(b3);
	store_batch_free(b4);
	overlay_free(ov);
}

/* Deleting a queue deletes its messages in every partition, and those
 * LMDB holds that the overlay never saw. */
static void
test_a_deleted_queue_hides_every_message_of_it(void **state)
{
	struct overlay *ov = overlay_new();
	struct store_batch *b1 = batch(), *b2 = batch();

	(void)state;
	put(b1, 3, 0, 0, "q3");
	put(b1, 4, 0, 0, "q4");
	assert_int_equal(store_batch_del_queue(b2, 3), 0);
	assert_int_equal(overlay_add(ov, 1, b1), 0);
	assert_int_equal(overlay_add(ov, 2, b2), 0);
	assert_string_equal(get(ov, 3, 0, 0), "-");
	assert_string_equal(get(ov, 3, 7, 123456), "-");
	assert_string_equal(get(ov, 4, 0, 0), "q4");
	assert_string_equal(get(ov, 2, 0, 0), "?");
	overlay_drop(ov, 1, b1);
	overlay_drop(ov, 2, b2);
	assert_string_equal(get(ov, 3, 7, 123456), "?");
	store_batch_free(b1);
	store_batch_free(b2);
	overlay_free(ov);
}

/* Many keys: the table grows, and freeing slots keeps every other key
 * reachable (deletion moves entries back along their probe). */
static void
test_many_keys_survive_growth_and_removal(void **state)
{
	enum { BATCHES = 50, PER = 400 };
	struct overlay *ov = overlay_new();
	struct store_batch *b[BATCHES];
	char text[32];

	(void)state;
	for (int i = 0; i < BATCHES; i++) {
		b[i] = batch();
		for (int j = 0; j < PER; j++) {
			snprintf(text, sizeof(text), "%d", i * PER + j);
			put(b[i], 9, (uint32_t)(j % 3), (uint64_t)(i * PER + j),
			    text);
		}
		assert_int_equal(overlay_add(ov, (uint64_t)i + 1, b[i]), 0);
	}
	assert_int_equal(overlay_size(ov), BATCHES * PER);
	for (int i = 0; i < BATCHES / 2; i++)
		overlay_drop(ov, (uint64_t)i + 1, b[i]);
	for (int k = 0; k < BATCHES * PER; k++) {
		snprintf(text, sizeof(text), "%d", k);
		assert_string_equal(
			get(ov, 9, (uint32_t)(k % PER % 3), (uint64_t)k),
			k < BATCHES / 2 * PER ? "?" : text);
	}
	for (int i = BATCHES / 2; i < BATCHES; i++)
		overlay_drop(ov, (uint64_t)i + 1, b[i]);
	assert_int_equal(overlay_size(ov), 0);
	for (int i = 0; i < BATCHES; i++)
		store_batch_free(b[i]);
	overlay_free(ov);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_a_put_reads_back_and_is_forgotten_when_dropped),
		cmocka_unit_test(
			test_deletes_apply_in_the_order_they_were_made),
		cmocka_unit_test(
			test_a_deleted_queue_hides_every_message_of_it),
		cmocka_unit_test(test_many_keys_survive_growth_and_removal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
