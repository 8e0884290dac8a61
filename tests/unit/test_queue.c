/*
 * Unit tests of the publish path (broker/core/queue.c), in-process against
 * a real store in a temporary directory, without sockets: routing by the
 * key's hash, offsets per partition, per-message refusals that leave the
 * rest of the batch alone, and a queue's max_bytes counted over the whole
 * message as recovery counts it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/queue.h"
#include "corefix.h"
#include "lib/config.h"
#include "lib/err.h"
#include "partition_rule.h"
#include "store/store.h"

#define MAX_RESULTS 16

/* The core's fixture, and the results of the last publish. */
struct fixture {
	struct corefix *core;
	struct publish_result res[MAX_RESULTS];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	void *core;

	assert_non_null(f);
	assert_int_equal(corefix_setup(&core), 0);
	f->core = core;
	/* A message limit above the 65,535 bytes of a header name (so that
	 * an over-long name is refused as such) and within the test's own
	 * buffer. */
	f->core->cfg.max_message_bytes = 131072;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	void *core = f->core;

	free(f);
	return corefix_teardown(&core);
}

static void
create(struct fixture *f, const char *name, uint32_t partitions,
       const struct queue_policy_given *pol)
{
	assert_non_null(corefix_create_given(f->core, name, partitions, pol));
}

/* One message of a publish: payload, an optional key, and an optional
 * header of value_len bytes. */
struct spec {
	const char *payload;
	const char *key;
	const char *hname;
	size_t hvalue_len;
};

/* Publishes specs[0 .. n) to queue in one batch; results in f->res. */
static void
publish(struct fixture *f, const char *queue, const struct spec *specs,
	size_t n)
{
	static uint8_t value[1 << 18];
	struct publish_batch p = { 0 };
	struct publish_msg ms[MAX_RESULTS];
	struct store_header hs[MAX_RESULTS];

	assert_true(n <= MAX_RESULTS);
	memset(value, 'v', sizeof(value));
	memset(ms, 0, sizeof(ms));
	for (size_t i = 0; i < n; i++) {
		ms[i].payload = specs[i].payload;
		ms[i].payload_len = strlen(specs[i].payload);
		if (specs[i].key != NULL) {
			ms[i].has_key = 1;
			ms[i].key = specs[i].key;
			ms[i].key_len = strlen(specs[i].key);
		}
		if (specs[i].hname != NULL) {
			assert_true(specs[i].hvalue_len <= sizeof(value));
			hs[i].name = specs[i].hname;
			hs[i].name_len = (uint32_t)strlen(specs[i].hname);
			hs[i].value = value;
			hs[i].value_len = (uint32_t)specs[i].hvalue_len;
			ms[i].n_headers = 1;
			ms[i].headers = &hs[i];
		}
	}
	p.queue = queue;
	p.n = n;
	p.msgs = ms;
	corefix_publish_batch(f->core, &p, f->res);
}

static void
test_queue_routes_keys_by_hash_and_numbers_each_partition(void **state)
{
	struct fixture *f = *state;
	static const struct spec specs[] = {
		{ "1", "alpha", NULL, 0 }, { "2", "beta", NULL, 0 },
		{ "3", "alpha", NULL, 0 }, { "4", "gamma", NULL, 0 },
		{ "5", "beta", NULL, 0 },
	};
	uint64_t next[4] = { 0 };

	create(f, "keys", 4, NULL);
	publish(f, "keys", specs, 5);
	for (size_t i = 0; i < 5; i++) {
		uint32_t want = partition_rule_for_key(specs[i].key,
						       strlen(specs[i].key), 4);

		assert_int_equal(f->res[i].code, 0);
		assert_int_equal(f->res[i].partition, want);
		assert_int_equal(f->res[i].offset, next[want]++);
	}
	/* Offsets go on where they stopped. */
	publish(f, "keys", specs, 1);
	assert_int_equal(f->res[0].offset,
			 next[partition_rule_for_key("alpha", 5, 4)]);
}

static void
test_queue_refuses_bad_messages_alone(void **state)
{
	struct fixture *f = *state;
	size_t max = f->core->cfg.max_message_bytes;
	static char long_name[65537];
	struct spec specs[] = {
		{ "ok", NULL, NULL, 0 },
		/* 1 + 3 + 6 + value: one byte over the limit. */
		{ "x", NULL, "big", 0 },
		{ "x", NULL, "", 1 },
		{ "x", NULL, "RingMQ-x", 1 },
		{ "x", NULL, long_name, 1 },
		{ "ok", NULL, NULL, 0 },
	};

	memset(long_name, 'n', sizeof(long_name) - 1);
	specs[1].hvalue_len = max - 1 - 3 - 6 + 1;
	create(f, "refuse", 1, NULL);
	publish(f, "refuse", specs, 6);
	assert_int_equal(f->res[0].code, 0);
	assert_int_equal(f->res[1].code, -RMQ_EMESSAGE_TOO_LARGE);
	assert_int_equal(f->res[2].code, -RMQ_EINVALID_ARGUMENT);
	assert_int_equal(f->res[3].code, -RMQ_EINVALID_ARGUMENT);
	assert_int_equal(f->res[4].code, -RMQ_EINVALID_ARGUMENT);
	assert_int_equal(f->res[5].code, 0);
	/* The two stored ones took consecutive offsets. */
	assert_int_equal(f->res[5].offset, f->res[0].offset + 1);
}

static void
test_queue_max_bytes_counts_the_whole_message(void **state)
{
	struct fixture *f = *state;
	struct queue_policy_given pol = { 0 };
	static const struct spec first[] = { { "x", "k", "h", 600 } };
	static const struct spec second[] = { { "x", NULL, "h", 600 },
					      { "y", NULL, NULL, 0 } };
	uint64_t messages, bytes, delayed;

	pol.fields = QUEUE_POLICY_MAX_BYTES;
	pol.max_bytes = 1000;
	create(f, "bytes", 1, &pol);
	publish(f, "bytes", first, 1);
	assert_int_equal(f->res[0].code, 0);
	queue_totals(queues_find(f->core->qs, "bytes"), &messages, &bytes,
		     &delayed);
	assert_int_equal(messages, 1);
	/* payload 1, key 1, header name 1 + value 600 + 6. */
	assert_int_equal(bytes, 1 + 1 + 1 + 600 + 6);
	publish(f, "bytes", second, 2);
	assert_int_equal(f->res[0].code, -RMQ_EQUEUE_FULL);
	assert_int_equal(f->res[1].code, 0);
	queue_totals(queues_find(f->core->qs, "bytes"), &messages, &bytes,
		     &delayed);
	assert_int_equal(messages, 2);
	assert_int_equal(bytes, 609 + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_queue_routes_keys_by_hash_and_numbers_each_partition,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_queue_refuses_bad_messages_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_queue_max_bytes_counts_the_whole_message, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
