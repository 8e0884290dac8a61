/*
 * Integration tests of job semantics on a real ringmqd: lease expiry,
 * touch and the max lease, nack delays, failure counts and dead-lettering.
 * Short leases and delays keep them fast; every wait has a deadline.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"

#define WAIT_MS 5000

static struct harness_broker broker;

static int
setup_broker(void **state)
{
	(void)state;
	memset(&broker, 0, sizeof(broker));
	broker.stdout_fd = -1;
	return harness_start(&broker, NULL);
}

static int
teardown_broker(void **state)
{
	int code;

	(void)state;
	code = harness_stop(&broker);
	harness_cleanup(&broker);
	return code == 0 ? 0 : -1;
}

static ringmq_client *
connect_client(void)
{
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *c = NULL;
	char err[256];

	assert_int_equal(
		ringmq_opts_set(o, "server", broker.addr, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	ringmq_opts_free(o);
	return c;
}

/* Creates queue name with settings given as "key=value" strings. */
static void
create_queue(ringmq_client *c, const char *name, ...)
{
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	const char *kv;
	va_list ap;

	va_start(ap, name);
	while ((kv = va_arg(ap, const char *)) != NULL) {
		char key[64];
		const char *eq = strchr(kv, '=');

		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		assert_int_equal(
			ringmq_queue_opts_set(qo, key, eq + 1, NULL, 0),
			RINGMQ_OK);
	}
	va_end(ap);
	assert_int_equal(ringmq_queue_create(c, name, qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
}

static void
publish(ringmq_client *c, const char *queue, const char *payload)
{
	ringmq_message *m = ringmq_message_new(payload, strlen(payload));

	assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

static uint32_t
subscribe(ringmq_client *c, const char *queue, const char *group,
	  uint32_t credit)
{
	uint32_t sub = 0;

	assert_int_equal(ringmq_subscribe(c, &sub, queue, group, credit,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	return sub;
}

static ringmq_delivery *
next_delivery(ringmq_client *c, int timeout_ms)
{
	ringmq_delivery *d = NULL;

	assert_int_equal(ringmq_next(c, &d, timeout_ms), RINGMQ_OK);
	return d;
}

static void
expect_nothing(ringmq_client *c, int ms)
{
	ringmq_delivery *d = NULL;

	assert_int_equal(ringmq_next(c, &d, ms), RINGMQ_TIMEOUT);
}

static int
settle(ringmq_client *c, const ringmq_delivery *d, int how)
{
	uint64_t id = ringmq_delivery_lease_id(d);
	int code = -1;

	switch (how) {
	case 'a': (void)ringmq_ack(c, &id, 1, &code); break;
	case 'n': (void)ringmq_nack(c, &id, 1, 0, &code); break;
	default: (void)ringmq_release(c, &id, 1, &code); break;
	}
	return code;
}

/* The value of header name of d as a string, or NULL. */
static const char *
header(const ringmq_delivery *d, const char *name, char *buf, size_t len)
{
	for (size_t i = 0; i < ringmq_delivery_header_count(d); i++) {
		size_t n;
		const void *v;

		if (strcmp(ringmq_delivery_header_name(d, i), name) != 0)
			continue;
		v = ringmq_delivery_header_value(d, i, &n);
		assert_true(n < len);
		memcpy(buf, v, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */

static void
test_lease_expiry_redelivers_to_another_consumer(void **state)
{
	ringmq_client *a = connect_client();
	ringmq_client *b = connect_client();
	ringmq_delivery *d;
	long long t0;

	(void)state;
	create_queue(a, "expiry", "lease-ms=300", NULL);
	publish(a, "expiry", "slow job");
	subscribe(a, "expiry", "g", 1);
	d = next_delivery(a, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 1);
	ringmq_delivery_free(d);
	/* a hangs: the lease runs out and b gets the job. */
	t0 = harness_now_ms();
	subscribe(b, "expiry", "g", 1);
	d = next_delivery(b, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 200);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(settle(b, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
	ringmq_client_free(b);
}

static void
test_ack_after_expiry_is_lease_expired(void **state)
{
	ringmq_client *a = connect_client();
	ringmq_delivery *d;
	uint64_t id;
	int code = -1;

	(void)state;
	create_queue(a, "late", "lease-ms=200", NULL);
	publish(a, "late", "j");
	subscribe(a, "late", "g", 1);
	d = next_delivery(a, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	/* The redelivery after expiry proves the lease ended. */
	d = next_delivery(a, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(ringmq_ack(a, &id, 1, &code), RINGMQ_LEASE_EXPIRED);
	assert_int_equal(code, RINGMQ_LEASE_EXPIRED);
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
}

static void
test_touch_keeps_job_and_stops_at_max_lease(void **state)
{
	ringmq_client *a = connect_client();
	ringmq_client *b = connect_client();
	ringmq_delivery *d;
	uint64_t id, left = 0;
	int code;
	long long t0;

	(void)state;
	create_queue(a, "touch", "lease-ms=400", "max-lease-ms=1200", NULL);
	publish(a, "touch", "long job");
	subscribe(a, "touch", "g", 1);
	subscribe(b, "touch", "g", 1);
	d = next_delivery(a, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	t0 = harness_now_ms();
	/* Touch for 700 ms: past the lease time, b gets nothing. */
	assert_int_equal(ringmq_touch(a, &id, 1, 700, &code, &left), RINGMQ_OK);
	assert_true(left > 600 && left <= 700);
	expect_nothing(b, 500);
	/* Asking for far more is clamped to the max lease. */
	assert_int_equal(ringmq_touch(a, &id, 1, 60000, &code, &left),
			 RINGMQ_OK);
	assert_true(left <= 1200 - (uint64_t)(harness_now_ms() - t0) + 50);
	/* At the max lease it expires and b gets the job. */
	ringmq_delivery_free(d);
	d = next_delivery(b, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 1000);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(settle(b, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
	ringmq_client_free(b);
}

static void
test_nack_delay_redelivers_after_not_before(void **state)
{
	ringmq_client *a = connect_client();
	ringmq_delivery *d;
	uint64_t id;
	int code;
	long long t0;

	(void)state;
	create_queue(a, "backoff", NULL);
	publish(a, "backoff", "retry me");
	publish(a, "backoff", "next");
	subscribe(a, "backoff", "g", 1);
	d = next_delivery(a, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	t0 = harness_now_ms();
	assert_int_equal(ringmq_nack(a, &id, 1, 600, &code), RINGMQ_OK);
	/* The neighbour is not held back. */
	d = next_delivery(a, WAIT_MS);
	assert_int_equal(ringmq_delivery_offset(d), 1);
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	d = next_delivery(a, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 550);
	assert_int_equal(ringmq_delivery_offset(d), 0);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
}

static void
test_max_deliveries_dead_letters_with_headers(void **state)
{
	ringmq_client *a = connect_client();
	ringmq_client *o = connect_client();
	ringmq_delivery *d;
	char buf[256];
	int runs = 0;

	(void)state;
	create_queue(a, "poison", "max-deliveries=3", NULL);
	publish(a, "poison", "bad job");
	subscribe(a, "poison", "workers", 1);
	subscribe(o, "poison", "audit", 1);
	for (;;) {
		ringmq_delivery *x = NULL;

		if (ringmq_next(a, &x, 500) != RINGMQ_OK)
			break;
		runs++;
		assert_int_equal(ringmq_delivery_delivery_count(x), runs);
		assert_int_equal(settle(a, x, 'n'), RINGMQ_OK);
		ringmq_delivery_free(x);
		assert_true(runs <= 3);
	}
	assert_int_equal(runs, 3); /* it ran exactly max-deliveries times */

	/* The other group still has it. */
	d = next_delivery(o, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 1);
	assert_int_equal(settle(o, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);

	/* The dead-letter queue has it, payload intact, every header. */
	subscribe(a, "poison.dlq", "ops", 1);
	d = next_delivery(a, WAIT_MS);
	{
		size_t n;
		const void *p = ringmq_delivery_payload(d, &n);

		assert_int_equal(n, 7);
		assert_memory_equal(p, "bad job", 7);
	}
	assert_string_equal(header(d, "ringmq-dlq-reason", buf, sizeof(buf)),
			    "max_deliveries");
	assert_string_equal(header(d, "ringmq-source-queue", buf, sizeof(buf)),
			    "poison");
	assert_string_equal(header(d, "ringmq-source-group", buf, sizeof(buf)),
			    "workers");
	assert_string_equal(
		header(d, "ringmq-source-partition", buf, sizeof(buf)), "0");
	assert_string_equal(header(d, "ringmq-source-offset", buf, sizeof(buf)),
			    "0");
	assert_string_equal(
		header(d, "ringmq-delivery-count", buf, sizeof(buf)), "3");
	assert_non_null(
		header(d, "ringmq-first-delivery-ms", buf, sizeof(buf)));
	assert_true(strtoull(buf, NULL, 10) > 0);
	assert_non_null(header(d, "ringmq-last-delivery-ms", buf, sizeof(buf)));
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
	ringmq_client_free(o);
}

static void
test_failure_counts_survive_restart(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_delivery *d;
	char err[256];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "counted", NULL);
	publish(c, "counted", "flaky");
	subscribe(c, "counted", "g", 1);
	for (int i = 1; i <= 2; i++) {
		d = next_delivery(c, WAIT_MS);
		assert_int_equal(ringmq_delivery_delivery_count(d), i);
		assert_int_equal(settle(c, d, 'n'), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(c);
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	subscribe(c, "counted", "g", 1);
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 3);
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static void
publish_delayed(ringmq_client *c, const char *queue, const char *payload,
		uint64_t delay_ms, uint32_t *part, uint64_t *off)
{
	ringmq_message *m = ringmq_message_new(payload, strlen(payload));

	assert_int_equal(ringmq_message_set_delay_ms(m, delay_ms), RINGMQ_OK);
	assert_int_equal(ringmq_publish(c, queue, m, part, off, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

/* Field of queue name in a fresh listing. */
static void
queue_counts(ringmq_client *c, const char *name, uint64_t *messages,
	     uint64_t *delayed, uint64_t *ready)
{
	ringmq_queue_list *l = NULL;
	size_t i;

	assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
	for (i = 0; i < ringmq_queue_list_count(l); i++)
		if (strcmp(ringmq_queue_list_name(l, i), name) == 0)
			break;
	assert_true(i < ringmq_queue_list_count(l));
	*messages = ringmq_queue_list_messages(l, i);
	*delayed = ringmq_queue_list_delayed(l, i);
	*ready = ringmq_queue_list_ready(l, i);
	ringmq_queue_list_free(l);
}

static void
test_delayed_job_not_early_and_holds_nothing_back(void **state)
{
	ringmq_client *c = connect_client();
	ringmq_delivery *d;
	uint64_t messages, delayed, ready;
	char buf[64];
	long long t0;

	(void)state;
	create_queue(c, "later", NULL);
	publish(c, "later", "before");
	t0 = harness_now_ms();
	publish_delayed(c, "later", "soon", 700, NULL, NULL);
	/* A month away: must hold back neither order nor the ack floor. */
	publish_delayed(c, "later", "next month", 30ull * 24 * 3600 * 1000,
			NULL, NULL);
	publish(c, "later", "after");
	subscribe(c, "later", "g", 10);
	for (int i = 0; i < 2; i++) {
		size_t n;
		const void *p;

		d = next_delivery(c, WAIT_MS);
		p = ringmq_delivery_payload(d, &n);
		snprintf(buf, sizeof(buf), "%.*s", (int)n, (const char *)p);
		assert_string_equal(buf, i == 0 ? "before" : "after");
		assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	d = next_delivery(c, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 650);
	{
		size_t n;
		const void *p = ringmq_delivery_payload(d, &n);

		assert_int_equal(n, 4);
		assert_memory_equal(p, "soon", 4);
	}
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	expect_nothing(c, 300);
	/* Its neighbours were acked and deleted: only the far job stays. */
	queue_counts(c, "later", &messages, &delayed, &ready);
	assert_int_equal(messages, 1);
	assert_int_equal(delayed, 1);
	assert_int_equal(ready, 0);
	ringmq_client_free(c);
}

static void
test_delayed_job_survives_restart_before_its_time(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_delivery *d;
	char err[256];
	long long t0;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "timer", NULL);
	t0 = harness_now_ms();
	publish_delayed(c, "timer", "wake up", 1500, NULL, NULL);
	ringmq_client_free(c);
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	subscribe(c, "timer", "g", 1);
	d = next_delivery(c, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 1450);
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static int
try_publish(ringmq_client *c, const char *queue, const void *data, size_t len)
{
	ringmq_message *m = ringmq_message_new(data, len);
	int rc = ringmq_publish(c, queue, m, NULL, NULL, NULL);

	ringmq_message_free(m);
	return rc;
}

/* Consumes and acks n messages of queue in group g. */
static void
drain(ringmq_client *c, const char *queue, const char *g, int n)
{
	uint32_t sub = subscribe(c, queue, g, 100);

	for (int i = 0; i < n; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);

		assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
}

static void
test_queue_full_at_max_depth_and_bytes_until_acked(void **state)
{
	ringmq_client *c = connect_client();
	char big[600];

	(void)state;
	memset(big, 'x', sizeof(big));
	create_queue(c, "small", "max-depth=3", NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(try_publish(c, "small", "j", 1), RINGMQ_OK);
	assert_int_equal(try_publish(c, "small", "j", 1), RINGMQ_QUEUE_FULL);
	drain(c, "small", "g", 3);
	assert_int_equal(try_publish(c, "small", "j", 1), RINGMQ_OK);

	create_queue(c, "narrow", "max-bytes=1000", NULL);
	assert_int_equal(try_publish(c, "narrow", big, sizeof(big)), RINGMQ_OK);
	assert_int_equal(try_publish(c, "narrow", big, sizeof(big)),
			 RINGMQ_QUEUE_FULL);
	assert_int_equal(try_publish(c, "narrow", big, 300), RINGMQ_OK);
	drain(c, "narrow", "g", 2);
	assert_int_equal(try_publish(c, "narrow", big, sizeof(big)), RINGMQ_OK);
	ringmq_client_free(c);
}

static void
test_storage_full_then_acks_work_and_publishing_resumes(void **state)
{
	static const char *const flags[] = { "--max-storage-bytes", "2M",
					     NULL };
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	char err[256], payload[2000];
	int stored = 0, rc = RINGMQ_OK;

	(void)state;
	memset(payload, 'p', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "fill", NULL);
	while (stored < 5000) {
		rc = try_publish(c, "fill", payload, sizeof(payload));
		if (rc != RINGMQ_OK)
			break;
		stored++;
	}
	assert_int_equal(rc, RINGMQ_STORAGE_FULL);
	assert_true(stored > 100);
	/* Consumers still consume and ack everything. */
	drain(c, "fill", "g", stored);
	/* The space is free again. */
	assert_int_equal(try_publish(c, "fill", payload, sizeof(payload)),
			 RINGMQ_OK);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_lease_expiry_redelivers_to_another_consumer),
		cmocka_unit_test(test_ack_after_expiry_is_lease_expired),
		cmocka_unit_test(test_touch_keeps_job_and_stops_at_max_lease),
		cmocka_unit_test(test_nack_delay_redelivers_after_not_before),
		cmocka_unit_test(test_max_deliveries_dead_letters_with_headers),
		cmocka_unit_test(
			test_delayed_job_not_early_and_holds_nothing_back),
		cmocka_unit_test(
			test_queue_full_at_max_depth_and_bytes_until_acked),
	};
	const struct CMUnitTest own[] = {
		cmocka_unit_test(test_failure_counts_survive_restart),
		cmocka_unit_test(
			test_delayed_job_survives_restart_before_its_time),
		cmocka_unit_test(
			test_storage_full_then_acks_work_and_publishing_resumes),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("semantics", tests, setup_broker,
					     teardown_broker);
	failed += cmocka_run_group_tests_name("semantics-restart", own, NULL,
					      NULL);
	return failed ? 1 : 0;
}
