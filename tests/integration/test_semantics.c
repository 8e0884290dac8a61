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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "testlib.h"

#define WAIT_MS 5000

static struct harness_broker broker;

static int
setup_broker(void **state)
{
	(void)state;
	return testlib_broker_start(&broker, NULL);
}

static int
teardown_broker(void **state)
{
	(void)state;
	return testlib_broker_stop(&broker);
}

/* Creates queue name with the settings of ap, "key=value" strings ending
 * with NULL; @return the broker's code. */
static int
vcreate_queue(ringmq_client *c, const char *name, va_list ap)
{
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	const char *kv;
	int rc;

	while ((kv = va_arg(ap, const char *)) != NULL) {
		char key[64];
		const char *eq = strchr(kv, '=');

		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		assert_int_equal(
			ringmq_queue_opts_set(qo, key, eq + 1, NULL, 0),
			RINGMQ_OK);
	}
	rc = ringmq_queue_create(c, name, qo);
	ringmq_queue_opts_free(qo);
	return rc;
}

/* vcreate_queue's code; create_queue insists on RINGMQ_OK. */
static int
try_create_queue(ringmq_client *c, const char *name, ...)
{
	va_list ap;
	int rc;

	va_start(ap, name);
	rc = vcreate_queue(c, name, ap);
	va_end(ap);
	return rc;
}

static void
create_queue(ringmq_client *c, const char *name, ...)
{
	va_list ap;

	va_start(ap, name);
	assert_int_equal(vcreate_queue(c, name, ap), RINGMQ_OK);
	va_end(ap);
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
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
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

/* Deliveries c gets within ms, left leased; the first lease id in *id. */
static int
count_deliveries(ringmq_client *c, int ms, uint64_t *id)
{
	ringmq_delivery *d = NULL;
	int n = 0;

	while (ringmq_next(c, &d, ms) == RINGMQ_OK) {
		if (n == 0 && id != NULL)
			*id = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
		n++;
	}
	return n;
}

/* Dispatch takes turns among the subscriptions with free credit, passes
 * over a full one, and takes it in again once an ack frees its credit. */
static void
test_dispatch_takes_turns_and_skips_full_subscriptions(void **state)
{
	ringmq_client *c[3];
	const uint32_t credit[3] = { 1, 10, 10 };
	uint64_t id = 0;
	int code = -1;
	int got[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		c[i] = testlib_connect(broker.addr);
	create_queue(c[0], "turns", NULL);
	for (int i = 0; i < 3; i++)
		subscribe(c[i], "turns", "g", credit[i]);
	/* One at a time, each committed and dispatched on its own. */
	for (int i = 0; i < 9; i++)
		publish(c[0], "turns", "job");
	for (int i = 0; i < 3; i++)
		got[i] = count_deliveries(c[i], 300, i == 0 ? &id : NULL);
	assert_int_equal(got[0], 1); /* then full */
	assert_int_equal(got[1], 4);
	assert_int_equal(got[2], 4);
	/* c[0]'s ack frees its credit: three more go one to each. */
	assert_int_equal(ringmq_ack(c[0], &id, 1, &code), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	for (int i = 0; i < 3; i++)
		publish(c[1], "turns", "job");
	for (int i = 0; i < 3; i++)
		assert_int_equal(count_deliveries(c[i], 300, NULL), 1);
	for (int i = 0; i < 3; i++)
		ringmq_client_free(c[i]);
}

/* The reports of up to three asynchronous publishes, in callback order. */
struct reports {
	int calls;
	int code[3];
	int is_duplicate[3];
};

static void
on_report(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct reports *rs = ctx;

	(void)c;
	assert_true(rs->calls < 3);
	rs->code[rs->calls] = ringmq_publish_report_code(r);
	rs->is_duplicate[rs->calls++] = ringmq_publish_report_is_duplicate(r);
}

/* Publishes "job" asynchronously, with dedup_id unless NULL. */
static void
publish_job_async(ringmq_client *c, const char *queue, const char *dedup_id,
		  struct reports *rs)
{
	ringmq_message *m = ringmq_message_new("job", 3);

	if (dedup_id != NULL)
		assert_int_equal(ringmq_message_set_dedup_id(m, dedup_id),
				 RINGMQ_OK);
	assert_int_equal(ringmq_publish_async(c, queue, m, on_report, rs),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

/* A duplicate that arrives while its original is still being committed
 * is confirmed after the original, never before: its confirm promises
 * the same durable message. */
static void
test_duplicate_of_uncommitted_publish_is_confirmed_after_it(void **state)
{
	ringmq_client *c =
		testlib_connect_with(broker.addr, "linger-ms=0", NULL);
	struct reports o = { 0 };

	(void)state;
	create_queue(c, "dupwait", NULL);
	for (int i = 0; i < 3; i++) {
		publish_job_async(c, "dupwait", "once", &o);
		/* Each in a request of its own, right behind the first. */
		(void)ringmq_client_poll(c, 0);
	}
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(o.calls, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(o.code[i], RINGMQ_OK);
	assert_false(o.is_duplicate[0]);
	assert_true(o.is_duplicate[1]);
	assert_true(o.is_duplicate[2]);
	ringmq_client_free(c);
}

static void
test_ack_after_expiry_is_lease_expired(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
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
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
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

/* A lease time above the queue's max lease: a delivery's lease still ends
 * at the max lease, and touch never cuts it short. */
static void
test_lease_time_above_max_lease_is_capped(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint64_t id, left = 0;
	int code;
	long long t0;

	(void)state;
	create_queue(a, "capped", "lease-ms=60000", "max-lease-ms=600", NULL);
	publish(a, "capped", "job");
	subscribe(a, "capped", "g", 1);
	subscribe(b, "capped", "g", 1);
	d = next_delivery(a, WAIT_MS);
	t0 = harness_now_ms();
	assert_true(ringmq_delivery_lease_remaining_ms(d) <= 600);
	id = ringmq_delivery_lease_id(d);
	assert_int_equal(ringmq_touch(a, &id, 1, 0, &code, &left), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	assert_true(left > 0 && left <= 600);
	ringmq_delivery_free(d);
	/* a hangs: at the max lease b gets the job. */
	d = next_delivery(b, WAIT_MS);
	assert_true(harness_now_ms() - t0 >= 400);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(settle(b, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
	ringmq_client_free(b);
}

/* A message waiting out a nack delay counts as delayed in the queue's
 * figures (retained: ready, delayed or in flight). */
static void
test_nack_delayed_message_counts_as_delayed(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint64_t id, messages, delayed, ready;
	int code;

	(void)state;
	create_queue(c, "retrying", NULL);
	publish(c, "retrying", "job");
	subscribe(c, "retrying", "g", 1);
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack(c, &id, 1, 600000, &code), RINGMQ_OK);
	testlib_queue_counts(c, "retrying", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 1);
	assert_int_equal(delayed, 1);
	assert_int_equal(ready, 0);
	ringmq_client_free(c);
}

/* A nack delay ended by a group reset stays ended after a restart: the
 * stored retry time goes with the reset, the failure count stays. */
static void
test_reset_nack_delay_stays_ended_after_restart(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d;
	uint64_t id;
	uint32_t sub;
	int code;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "later", NULL);
	publish(c, "later", "job");
	sub = subscribe(c, "later", "g", 1);
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack(c, &id, 1, 600000, &code), RINGMQ_OK);
	/* Unsubscribed first: the reset makes the message ready, and a
	 * lease of it would end as a failure when the client goes. */
	assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
	assert_int_equal(
		ringmq_group_reset(c, "later", "g", RINGMQ_START_EARLIEST),
		RINGMQ_OK);
	ringmq_client_free(c);
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	subscribe(c, "later", "g", 1);
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* A group reset starts the group over: its leases end (never a message
 * leased twice at once), and so do its nack delays, whose old timers do
 * not cut a later delay short. */
static void
test_reset_ends_leases_and_nack_delays(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint64_t held, kept, messages, delayed, ready;
	int code;
	long long t0;

	(void)state;
	create_queue(a, "rewind", NULL);
	publish(a, "rewind", "A");
	publish(a, "rewind", "B");
	subscribe(a, "rewind", "g", 2);
	d = next_delivery(a, WAIT_MS);
	kept = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	d = next_delivery(a, WAIT_MS);
	held = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack(a, &held, 1, 1000, &code), RINGMQ_OK);
	ringmq_client_free(a); /* its lease on A would end as a failure */

	a = testlib_connect(broker.addr);
	subscribe(a, "rewind", "g", 1);
	d = next_delivery(a, WAIT_MS); /* A again, after the disconnect */
	kept = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(
		ringmq_group_reset(b, "rewind", "g", RINGMQ_START_EARLIEST),
		RINGMQ_OK);
	assert_int_equal(ringmq_ack(a, &kept, 1, &code), RINGMQ_NOT_LEASED);

	/* Each comes once, at once (B's delay ended with the reset): a's
	 * freed credit takes one, b the other. */
	subscribe(b, "rewind", "g", 10);
	{
		ringmq_client *owner[2] = { a, b }, *holder = NULL;
		int seen[2] = { 0, 0 };

		for (int i = 0; i < 2; i++) {
			d = next_delivery(owner[i], WAIT_MS);
			seen[ringmq_delivery_offset(d)]++;
			if (ringmq_delivery_offset(d) == 1) {
				held = ringmq_delivery_lease_id(d);
				holder = owner[i];
			} else {
				assert_int_equal(settle(owner[i], d, 'a'),
						 RINGMQ_OK);
			}
			ringmq_delivery_free(d);
		}
		assert_int_equal(seen[0], 1);
		assert_int_equal(seen[1], 1);
		expect_nothing(a, 200);
		expect_nothing(b, 200);
		testlib_queue_counts(b, "rewind", &messages, &ready, &delayed,
				     NULL);
		assert_int_equal(messages, 1);
		assert_int_equal(ready, 0); /* leased: no counter wrapped */

		/* A new delay of 2 s is not cut short by the old 1 s timer. */
		t0 = harness_now_ms();
		assert_int_equal(ringmq_nack(holder, &held, 1, 2000, &code),
				 RINGMQ_OK);
		/* Either subscription may take it: wait on both. */
		for (d = NULL; d == NULL && harness_now_ms() - t0 < WAIT_MS;)
			for (int i = 0; i < 2 && d == NULL; i++)
				if (ringmq_next(owner[i], &d, 20) == RINGMQ_OK)
					holder = owner[i];
		assert_non_null(d);
		assert_true(harness_now_ms() - t0 >= 1950);
		assert_int_equal(ringmq_delivery_offset(d), 1);
		assert_int_equal(settle(holder, d, 'a'), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(a);
	ringmq_client_free(b);
}

static void
test_nack_delay_redelivers_after_not_before(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
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
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *o = testlib_connect(broker.addr);
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

	/* The dead-letter queue has it, payload intact, every header. Its
	 * settings are the defaults with max-deliveries 0: a create that
	 * says so matches it. */
	create_queue(a, "poison.dlq", "max-deliveries=0", NULL);
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
	/* Its nacks said nothing: no last error. */
	assert_null(header(d, "ringmq-last-error", buf, sizeof(buf)));
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
	ringmq_client_free(o);
}

/* The nack that dead-letters a message says why, and the dead letter
 * keeps it (cut to 1024 bytes, between UTF-8 characters); a nack before
 * that leaves nothing. */
static void
test_nack_reason_reaches_the_dead_letter(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	char reason[2000], buf[2048];
	ringmq_delivery *d;
	uint64_t id;
	int code;
	size_t len;

	(void)state;
	/* "x" then 2-byte characters: byte 1024 is inside one. */
	reason[0] = 'x';
	for (size_t i = 1; i + 2 < sizeof(reason); i += 2)
		memcpy(reason + i, "\xc3\xa9", 2);
	reason[sizeof(reason) - 2] = '\0';
	create_queue(a, "reasoned", "max-deliveries=2", NULL);
	publish(a, "reasoned", "job");
	subscribe(a, "reasoned", "workers", 1);
	d = next_delivery(a, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack_reason(a, &id, 1, 0, "first try", &code),
			 RINGMQ_OK);
	d = next_delivery(a, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack_reason(a, &id, 1, 0, reason, &code),
			 RINGMQ_OK);
	create_queue(a, "reasoned.dlq", "max-deliveries=0", NULL);
	subscribe(a, "reasoned.dlq", "ops", 1);
	d = next_delivery(a, WAIT_MS);
	assert_non_null(header(d, "ringmq-last-error", buf, sizeof(buf)));
	len = strlen(buf);
	assert_int_equal(len, 1023); /* "x" and 511 whole characters */
	assert_memory_equal(buf, reason, len);
	assert_string_equal(header(d, "ringmq-dlq-reason", buf, sizeof(buf)),
			    "max_deliveries");
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(a);
}

/* A nack that dead-letters answers after the dead letter's commit: a
 * redrive sent on its answer finds it. The race lost every round when
 * the answer came first. */
static void
test_nack_that_dead_letters_answers_after_the_dead_letter(void **state)
{
	ringmq_client *o = testlib_connect(broker.addr);

	(void)state;
	for (int i = 0; i < 10; i++) {
		/* A worker of its own each round: the redriven copy is
		 * delivered to it and dies with it. */
		ringmq_client *w = testlib_connect(broker.addr);
		char q[32];
		ringmq_delivery *d;
		uint64_t redriven = 0;

		snprintf(q, sizeof(q), "dies-now-%d", i);
		create_queue(o, q, "max-deliveries=1", NULL);
		publish(o, q, "job");
		subscribe(w, q, "workers", 1);
		d = next_delivery(w, WAIT_MS);
		assert_int_equal(settle(w, d, 'n'), RINGMQ_OK);
		ringmq_delivery_free(d);
		assert_int_equal(ringmq_dlq_redrive(o, q, NULL, 0, &redriven),
				 RINGMQ_OK);
		assert_int_equal(redriven, 1);
		ringmq_client_free(w);
	}
	ringmq_client_free(o);
}

/* The name rule leaves room for ".dlq": a queue whose name is as long as
 * the rule allows still dead-letters, into a queue that can be read; a
 * queue that could not dead-letter is refused when it is set up. */
static void
test_longest_name_dead_letters_and_no_queue_into_itself(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_delivery *d;
	char name[197], dlq[201], longer[201];
	int runs = 0;

	(void)state;
	memset(name, 'L', 196);
	name[196] = '\0';
	snprintf(dlq, sizeof(dlq), "%s.dlq", name);
	create_queue(a, name, "max-deliveries=2", NULL);
	publish(a, name, "long job");
	subscribe(a, name, "w", 1);
	for (;;) {
		ringmq_delivery *x = NULL;

		if (ringmq_next(a, &x, 500) != RINGMQ_OK)
			break;
		runs++;
		assert_int_equal(settle(a, x, 'n'), RINGMQ_OK);
		ringmq_delivery_free(x);
		assert_true(runs <= 2);
	}
	assert_int_equal(runs, 2);
	subscribe(a, dlq, "ops", 1);
	d = next_delivery(a, WAIT_MS);
	assert_int_equal(settle(a, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);

	/* Into itself, explicitly or by a later set: refused. */
	assert_int_equal(
		try_create_queue(a, "selfish", "dead-letter=selfish", NULL),
		RINGMQ_INVALID_ARGUMENT);
	create_queue(a, "selfish", NULL);
	{
		ringmq_queue_opts *qo = ringmq_queue_opts_new();

		assert_int_equal(ringmq_queue_opts_set(qo, "dead-letter",
						       "selfish", NULL, 0),
				 RINGMQ_OK);
		assert_int_equal(ringmq_queue_set(a, "selfish", qo),
				 RINGMQ_INVALID_ARGUMENT);
		ringmq_queue_opts_free(qo);
	}
	/* A ".dlq" name at the longest counts deliveries only with a
	 * dead-letter queue that can exist. */
	assert_int_equal(try_create_queue(a, "other", NULL), RINGMQ_OK);
	assert_int_equal(try_create_queue(a, dlq, "max-deliveries=0", NULL),
			 RINGMQ_OK); /* it exists already: same settings */
	memset(longer, 'M', 196);
	memcpy(longer + 196, ".dlq", 5);
	assert_int_equal(try_create_queue(a, longer, "max-deliveries=3", NULL),
			 RINGMQ_INVALID_ARGUMENT);
	assert_int_equal(try_create_queue(a, longer, "max-deliveries=3",
					  "dead-letter=other", NULL),
			 RINGMQ_OK);
	ringmq_client_free(a);
}

static void
test_failure_counts_survive_restart(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_delivery *d;
	uint32_t sub;
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
	sub = subscribe(c, "counted", "g", 1);
	for (int i = 1; i <= 2; i++) {
		d = next_delivery(c, WAIT_MS);
		assert_int_equal(ringmq_delivery_delivery_count(d), i);
		/* No third delivery before the kill: its lease would end as
		 * a failure when the client goes, and that failure might or
		 * might not be committed before the kill. */
		if (i == 2)
			assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
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

static void
test_delayed_job_not_early_and_holds_nothing_back(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
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
	testlib_queue_counts(c, "later", &messages, &ready, &delayed, NULL);
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

/* Publishes payload after payload of len bytes to queue, then one-byte
 * ones, until the storage refuses: no publish fits after it, however
 * small (with the journal, one larger than the room left is refused
 * while a smaller one may still fit). The journal counts what LMDB has
 * yet to apply at twice its bytes, so room may come back once LMDB has
 * applied it (a checkpoint every 50 ms): the one-byte publishes go on
 * until one is refused after such a pause too. @return the last code. */
static int
fill_storage(ringmq_client *c, const char *queue, const void *payload,
	     size_t len)
{
	int rc = RINGMQ_OK;

	for (int i = 0; i < 5000 && rc == RINGMQ_OK; i++)
		rc = try_publish(c, queue, payload, len);
	if (rc != RINGMQ_STORAGE_FULL)
		return rc;
	for (int round = 0; round < 20; round++) {
		int n = 0;

		rc = RINGMQ_OK;
		for (; n < 5000 && rc == RINGMQ_OK; n++)
			rc = try_publish(c, queue, payload, 1);
		if (rc != RINGMQ_STORAGE_FULL || n == 1)
			break; /* refused at once: LMDB freed nothing more */
		usleep(120 * 1000);
	}
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
	ringmq_client *c = testlib_connect(broker.addr);
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

/* Max depth counts what is retained (ready, delayed, in flight): messages
 * every group acked behind one held back are stored until the floor passes
 * them, but no longer count; so after a restart too. */
static void
test_acked_messages_behind_a_held_one_leave_the_depth(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_delivery *d[3], *g1[2] = { NULL, NULL }, *g2[2] = { NULL, NULL };
	uint64_t messages, delayed, ready, id;
	uint32_t sub1;
	size_t n1 = 0, n2 = 0;
	char err[256];
	int code;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "jam", "max-depth=3", NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(try_publish(c, "jam", "j", 1), RINGMQ_OK);
	subscribe(c, "jam", "g", 3);
	for (int i = 0; i < 3; i++)
		d[i] = next_delivery(c, WAIT_MS);
	/* The first back in an hour; the other two done. */
	id = ringmq_delivery_lease_id(d[0]);
	assert_int_equal(ringmq_nack(c, &id, 1, 3600 * 1000, &code), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	for (int i = 1; i < 3; i++)
		assert_int_equal(settle(c, d[i], 'a'), RINGMQ_OK);
	for (int i = 0; i < 3; i++)
		ringmq_delivery_free(d[i]);
	testlib_queue_counts(c, "jam", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 1);
	assert_int_equal(try_publish(c, "jam", "j", 1), RINGMQ_OK);
	ringmq_client_free(c);

	/* The same counts after a restart. */
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	testlib_queue_counts(c, "jam", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 2);
	assert_int_equal(try_publish(c, "jam", "j", 1), RINGMQ_OK);
	assert_int_equal(try_publish(c, "jam", "j", 1), RINGMQ_QUEUE_FULL);
	/* A group new from the earliest sees the three retained, not the
	 * two every group had acked (offsets 1 and 2, still stored). */
	subscribe(c, "jam", "fresh", 10);
	for (int i = 0; i < 3; i++) {
		ringmq_delivery *x = next_delivery(c, WAIT_MS);

		assert_true(ringmq_delivery_offset(x) != 1 &&
			    ringmq_delivery_offset(x) != 2);
		ringmq_delivery_free(x);
	}
	expect_nothing(c, 300);

	/* Two groups: retained while either has not acked. */
	create_queue(c, "jam2", "max-depth=2", NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(try_publish(c, "jam2", "j", 1), RINGMQ_OK);
	sub1 = subscribe(c, "jam2", "g1", 2);
	subscribe(c, "jam2", "g2", 2);
	while (n1 + n2 < 4) {
		ringmq_delivery *x = next_delivery(c, WAIT_MS);

		if (ringmq_delivery_subscription(x) == sub1)
			g1[n1++] = x;
		else
			g2[n2++] = x;
	}
	/* g2 acks both, g1 only the second: the first stays. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(settle(c, g2[i], 'a'), RINGMQ_OK);
	assert_int_equal(try_publish(c, "jam2", "j", 1), RINGMQ_QUEUE_FULL);
	assert_int_equal(settle(c, g1[1], 'a'), RINGMQ_OK);
	assert_int_equal(try_publish(c, "jam2", "j", 1), RINGMQ_OK);
	assert_int_equal(try_publish(c, "jam2", "j", 1), RINGMQ_QUEUE_FULL);
	for (int i = 0; i < 2; i++) {
		ringmq_delivery_free(g1[i]);
		ringmq_delivery_free(g2[i]);
	}
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
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

/* A broker started on more data than --max-storage-bytes refuses
 * publishes but keeps room for acks and deletes: the queue drains, the
 * acks survive a restart, and publishing works again once the data is
 * under the limit. Before, LMDB's map was exactly the data: every commit
 * failed, even deletes; and with data over 16 times the limit the
 * headroom, a 16th of the data, left no room under the limit ever. */
static void
test_data_over_the_limit_drains_and_publishes_again(void **state)
{
	static const char *const big[] = { "--max-storage-bytes", "64M", NULL };
	static const char *const small[] = { "--max-storage-bytes", "1M",
					     NULL };
	struct harness_broker b;
	ringmq_client *c;
	char payload[2000];
	uint64_t messages;
	int n = 4500; /* ~18 MiB: a 2,000-byte payload takes a page */

	(void)state;
	memset(payload, 'p', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, big), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "over", NULL);
	for (int i = 0; i < n; i++)
		assert_int_equal(
			try_publish(c, "over", payload, sizeof(payload)),
			RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);

	assert_int_equal(harness_start(&b, small), 0);
	c = testlib_connect(b.addr);
	assert_int_equal(try_publish(c, "over", payload, sizeof(payload)),
			 RINGMQ_STORAGE_FULL);
	drain(c, "over", "g", n);
	ringmq_client_free(c);
	assert_true(harness_kill(&b, SIGKILL) >= 0);

	assert_int_equal(harness_start(&b, small), 0);
	c = testlib_connect(b.addr);
	testlib_queue_counts(c, "over", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 0);
	assert_int_equal(try_publish(c, "over", payload, sizeof(payload)),
			 RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* With the storage full, a message that reaches max deliveries has no
 * room for its dead letter: it stays in its queue, held, not delivered
 * again (it ran max-deliveries times), and goes to the dead-letter queue
 * once there is room. Before, the group acked it in memory while the
 * dead letter's commit failed, and the next commit of the group's state
 * (here an ack) made that ack durable: the message was in neither queue
 * after a restart. */
static void
test_storage_full_keeps_what_it_cannot_dead_letter(void **state)
{
	static const char *const flags[] = { "--max-storage-bytes", "2M",
					     NULL };
	static const char *const roomy[] = { "--max-storage-bytes", "64M",
					     NULL };
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d, *keep = NULL;
	char payload[2000];
	uint64_t messages, dead;
	int stored = 0, rc = RINGMQ_OK;
	long long t0;

	(void)state;
	memset(payload, 'p', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "dies", "max-deliveries=1", NULL);
	create_queue(c, "dies.dlq", "max-deliveries=0", NULL);
	publish(c, "dies", "acked at the end");
	while (stored < 1500 && rc == RINGMQ_OK) {
		rc = try_publish(c, "dies", payload, sizeof(payload));
		stored += rc == RINGMQ_OK;
	}
	assert_int_equal(rc, RINGMQ_STORAGE_FULL);
	subscribe(c, "dies", "g", (uint32_t)stored + 1);
	for (int nacked = 0; nacked < stored;) {
		d = next_delivery(c, WAIT_MS);
		if (ringmq_delivery_offset(d) == 0) {
			keep = d;
			continue;
		}
		assert_int_equal(ringmq_delivery_delivery_count(d), 1);
		assert_int_equal(settle(c, d, 'n'), RINGMQ_OK);
		ringmq_delivery_free(d);
		nacked++;
	}
	/* Held, not run again, past a retry of the dead letter too. */
	expect_nothing(c, 1500);
	assert_non_null(keep);
	assert_int_equal(settle(c, keep, 'a'), RINGMQ_OK);
	ringmq_delivery_free(keep);
	ringmq_client_free(c);

	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(harness_start(&b, flags), 0);
	c = testlib_connect(b.addr);
	/* Each in one queue or the other. The restart retries the held
	 * dead letters at once: one leaves its queue's count when its group
	 * acks it and joins the dead-letter queue's when that commit is
	 * done, so the sum may be short for a moment; a lost one would keep
	 * it short. */
	t0 = harness_now_ms();
	do {
		testlib_queue_counts(c, "dies", &messages, NULL, NULL, NULL);
		testlib_queue_counts(c, "dies.dlq", &dead, NULL, NULL, NULL);
	} while (messages + dead != (uint64_t)stored &&
		 harness_now_ms() - t0 < WAIT_MS && usleep(50 * 1000) == 0);
	assert_int_equal(messages + dead, (uint64_t)stored);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);

	/* With room, every one is dead-lettered. */
	assert_int_equal(harness_start(&b, roomy), 0);
	c = testlib_connect(b.addr);
	t0 = harness_now_ms();
	do {
		usleep(100 * 1000);
		testlib_queue_counts(c, "dies.dlq", &dead, NULL, NULL, NULL);
	} while (dead < (uint64_t)stored && harness_now_ms() - t0 < WAIT_MS);
	assert_int_equal(dead, (uint64_t)stored);
	testlib_queue_counts(c, "dies", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 0);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* With the storage full, a publish is refused at its commit. A duplicate
 * of it (same dedup id, same request) must be refused too, not confirmed
 * as a copy of a message that was never stored. */
static void
test_duplicate_of_a_failed_publish_is_not_confirmed(void **state)
{
	static const char *const flags[] = { "--max-storage-bytes", "2M",
					     NULL };
	struct harness_broker b;
	struct reports fr = { 0 };
	ringmq_client *c;
	char payload[2000];
	int rc = RINGMQ_OK;

	(void)state;
	memset(payload, 'p', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	c = testlib_connect_with(b.addr, "linger-ms=0", NULL);
	create_queue(c, "full", NULL);
	rc = fill_storage(c, "full", payload, sizeof(payload));
	assert_int_equal(rc, RINGMQ_STORAGE_FULL);
	/* The first goes alone; the other two, behind it, in one request. */
	for (int i = 0; i < 3; i++)
		publish_job_async(c, "full", i > 0 ? "z" : NULL, &fr);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(fr.calls, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fr.code[i], RINGMQ_STORAGE_FULL);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static void
test_dedup_returns_original_offset_also_after_restart(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	char err[256];
	uint32_t part[3];
	uint64_t off[3], messages, delayed, ready;
	int dup[3];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "orders", "partitions=4", NULL);
	for (int i = 0; i < 3; i++) {
		ringmq_message *m = ringmq_message_new("charge 10", 9);

		assert_int_equal(ringmq_message_set_dedup_id(m, "order-77"),
				 RINGMQ_OK);
		if (i == 2) {
			/* After a kill -9 the window still holds. */
			ringmq_client_free(c);
			assert_true(harness_kill(&b, SIGKILL) >= 0);
			assert_int_equal(harness_start(&b, NULL), 0);
			assert_int_equal(ringmq_opts_set(o, "server", b.addr,
							 err, sizeof(err)),
					 RINGMQ_OK);
			assert_int_equal(
				ringmq_client_connect(&c, o, err, sizeof(err)),
				RINGMQ_OK);
		}
		assert_int_equal(ringmq_publish(c, "orders", m, &part[i],
						&off[i], &dup[i]),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(dup[0], 0);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(dup[i], 1);
		assert_int_equal(part[i], part[0]);
		assert_int_equal(off[i], off[0]);
	}
	testlib_queue_counts(c, "orders", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 1);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* Publishes two messages as batch seq of producer on partition 1;
 * returns the offsets and duplicate flags. */
static void
raw_publish_seq(int fd, uint64_t seq, uint64_t *offs, int *dups)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m[2] = { RINGMQ__MESSAGE__INIT, RINGMQ__MESSAGE__INIT };
	Ringmq__Message *mp[2] = { &m[0], &m[1] };
	Ringmq__Frame *r;

	for (int i = 0; i < 2; i++) {
		m[i].payload.data = (uint8_t *)"job";
		m[i].payload.len = 3;
	}
	p.queue = (char *)"seq";
	p.n_messages = 2;
	p.messages = mp;
	p.has_partition = 1;
	p.partition = 1;
	p.has_producer_seq = 1;
	p.producer_seq = seq;
	f.has_request_id = 1;
	f.request_id = 2;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	assert_int_equal(r->publish_ok->n_results, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r->publish_ok->results[i]->code,
				 RINGMQ__ERROR_CODE__OK);
		assert_int_equal(r->publish_ok->results[i]->partition, 1);
		offs[i] = r->publish_ok->results[i]->offset;
		dups[i] = r->publish_ok->results[i]->duplicate;
	}
	ringmq__frame__free_unpacked(r, NULL);
}

static void
test_resent_producer_sequence_is_stored_once(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	uint64_t producer, offs[2], again[2], next[2], messages, delayed, ready;
	int dups[2];
	int fd;

	(void)state;
	create_queue(c, "seq", "partitions=2", NULL);
	fd = testlib_raw_open(broker.port);
	producer = testlib_raw_hello(fd, 0);
	assert_true(producer != 0);
	raw_publish_seq(fd, 0, offs, dups);
	assert_int_equal(dups[0], 0);
	assert_int_equal(offs[1], offs[0] + 1);
	/* The confirm was "lost": reconnect as the same producer, resend. */
	close(fd);
	fd = testlib_raw_open(broker.port);
	assert_int_equal(testlib_raw_hello(fd, producer), producer);
	raw_publish_seq(fd, 0, again, dups);
	assert_int_equal(again[0], offs[0]);
	assert_int_equal(again[1], offs[1]);
	assert_int_equal(dups[0], 1);
	/* The next sequence is new. */
	raw_publish_seq(fd, 2, next, dups);
	assert_int_equal(next[0], offs[1] + 1);
	assert_int_equal(dups[0], 0);
	close(fd);
	testlib_queue_counts(c, "seq", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 4);
	ringmq_client_free(c);
}

/* The answer to one message of a raw publish. */
struct raw_result {
	int code;
	uint64_t offset;
	int dup;
};

/* Sends a publish of n messages ("job", dedup id ids[i] unless NULL) to
 * partition 0 of queue, with producer sequence seq unless seq < 0, as
 * request id. */
static void
raw_send_publish(int fd, const char *queue, int64_t seq, size_t n,
		 const char *const *ids, uint64_t id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m[8], *mp[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		ringmq__message__init(&m[i]);
		m[i].payload.data = (uint8_t *)"job";
		m[i].payload.len = 3;
		m[i].dedup_id = (char *)ids[i];
		mp[i] = &m[i];
	}
	p.queue = (char *)queue;
	p.n_messages = n;
	p.messages = mp;
	p.has_partition = 1;
	p.partition = 0;
	p.has_producer_seq = seq >= 0;
	p.producer_seq = seq >= 0 ? (uint64_t)seq : 0;
	f.has_request_id = 1;
	f.request_id = id;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	testlib_raw_send(fd, &f);
}

/* Reads the answer to a publish of n messages into res. @return its
 * request id. */
static uint64_t
raw_recv_publish(int fd, size_t n, struct raw_result *res)
{
	Ringmq__Frame *r = testlib_raw_recv(fd);
	uint64_t id = r->request_id;

	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	assert_int_equal(r->publish_ok->n_results, n);
	for (size_t i = 0; i < n; i++) {
		res[i].code = r->publish_ok->results[i]->code;
		res[i].offset = r->publish_ok->results[i]->offset;
		res[i].dup = r->publish_ok->results[i]->duplicate;
	}
	ringmq__frame__free_unpacked(r, NULL);
	return id;
}

/* Publishes as raw_send_publish says and reads the answer into res. */
static void
raw_publish_batch(int fd, const char *queue, int64_t seq, size_t n,
		  const char *const *ids, struct raw_result *res)
{
	raw_send_publish(fd, queue, seq, n, ids, 3);
	assert_int_equal(raw_recv_publish(fd, n, res), 3);
}

/* A sequenced batch that fails at its commit (storage full) while a later
 * batch of its producer was recorded already (refused whole: the first
 * one's messages, pending, filled the queue) is answered with that
 * failure when resent, not with the offsets it never stored. */
static void
test_resent_batch_that_failed_to_commit_gets_its_failure(void **state)
{
	static const char *const flags[] = { "--max-storage-bytes", "2M",
					     NULL };
	static const char *const none[] = { NULL };
	struct raw_result a[1], later[1], res[1];
	struct harness_broker b;
	ringmq_client *c;
	char payload[2000];
	uint64_t producer;
	int rc = RINGMQ_OK, fd;

	(void)state;
	memset(payload, 'p', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "one", "max-depth=1", NULL);
	create_queue(c, "fill", NULL);
	rc = fill_storage(c, "fill", payload, sizeof(payload));
	assert_int_equal(rc, RINGMQ_STORAGE_FULL);
	fd = testlib_raw_open(b.port);
	producer = testlib_raw_hello(fd, 0);
	/* One segment, so that the broker takes the second publish while the
	 * first one's commit is pending. */
	assert_int_equal(
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &(int){ 1 }, sizeof(int)),
		0);
	raw_send_publish(fd, "one", 0, 1, none, 10);
	raw_send_publish(fd, "one", 1, 1, none, 11);
	assert_int_equal(
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int)),
		0);
	for (int i = 0; i < 2; i++) {
		if (raw_recv_publish(fd, 1, res) == 10)
			a[0] = res[0];
		else
			later[0] = res[0];
	}
	assert_int_equal(a[0].code, RINGMQ__ERROR_CODE__STORAGE_FULL);
	assert_int_equal(later[0].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	close(fd);
	fd = testlib_raw_open(b.port);
	assert_int_equal(testlib_raw_hello(fd, producer), producer);
	raw_publish_batch(fd, "one", 0, 1, none, res);
	assert_int_equal(res[0].code, RINGMQ__ERROR_CODE__STORAGE_FULL);
	raw_publish_batch(fd, "one", 1, 1, none, res);
	assert_int_equal(res[0].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	close(fd);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* Publishes two sequenced messages with no partition on the batch,
 * message i naming parts[i] unless it is < 0; returns the code of each. */
static void
raw_publish_named(int fd, const char *queue, const int *parts, int *codes)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m[2], *mp[2];
	Ringmq__Frame *r;

	for (int i = 0; i < 2; i++) {
		ringmq__message__init(&m[i]);
		m[i].payload.data = (uint8_t *)"job";
		m[i].payload.len = 3;
		m[i].has_partition = parts[i] >= 0;
		m[i].partition = parts[i] >= 0 ? (uint32_t)parts[i] : 0;
		mp[i] = &m[i];
	}
	p.queue = (char *)queue;
	p.n_messages = 2;
	p.messages = mp;
	p.has_producer_seq = 1;
	p.producer_seq = 0;
	f.has_request_id = 1;
	f.request_id = 4;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	assert_int_equal(r->publish_ok->n_results, 2);
	for (int i = 0; i < 2; i++)
		codes[i] = r->publish_ok->results[i]->code;
	ringmq__frame__free_unpacked(r, NULL);
}

/* A sequenced publish stays on one partition: the record of its batch
 * counts its offsets there. With no partition on the batch, a message
 * naming none (which would be routed elsewhere) is refused with it. */
static void
test_sequenced_publish_keeps_to_one_partition(void **state)
{
	static const int mixed[2] = { 1, -1 }, both[2] = { 1, 1 };
	ringmq_client *c = testlib_connect(broker.addr);
	uint64_t messages, delayed, ready;
	int codes[2], fd;

	(void)state;
	create_queue(c, "onepart", "partitions=4", NULL);
	fd = testlib_raw_open(broker.port);
	assert_true(testlib_raw_hello(fd, 0) != 0);
	raw_publish_named(fd, "onepart", mixed, codes);
	assert_int_equal(codes[0], RINGMQ__ERROR_CODE__INVALID_ARGUMENT);
	assert_int_equal(codes[1], RINGMQ__ERROR_CODE__INVALID_ARGUMENT);
	raw_publish_named(fd, "onepart", both, codes);
	assert_int_equal(codes[0], RINGMQ__ERROR_CODE__OK);
	assert_int_equal(codes[1], RINGMQ__ERROR_CODE__OK);
	close(fd);
	testlib_queue_counts(c, "onepart", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 2);
	ringmq_client_free(c);
}

/* A sequenced batch partly stored (a duplicate of an earlier dedup id,
 * two refused with QUEUE_FULL) is answered as it was first when resent
 * after a lost answer, also across a kill -9: the stored and duplicate
 * messages with their offsets, the others refused again, nothing stored
 * twice. A batch stored not at all is answered alike while a later batch
 * of the producer has been stored. */
static void
test_resent_partly_stored_batch_is_answered_as_first(void **state)
{
	static const char *const d1[] = { "d1" };
	static const char *const ids[] = { NULL, "d1", NULL, NULL, NULL };
	static const char *const none[] = { NULL };
	struct raw_result first[5], again[5], one[1];
	struct harness_broker b;
	uint64_t producer, messages, delayed, ready;
	ringmq_client *c;
	int fd;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "partly", "max-depth=3", NULL);
	create_queue(c, "gap", "max-depth=1", NULL);
	fd = testlib_raw_open(b.port);
	producer = testlib_raw_hello(fd, 0);
	raw_publish_batch(fd, "partly", -1, 1, d1, one);
	assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__OK);
	raw_publish_batch(fd, "partly", 0, 5, ids, first);
	assert_int_equal(first[0].code, RINGMQ__ERROR_CODE__OK);
	assert_int_equal(first[1].code, RINGMQ__ERROR_CODE__OK);
	assert_int_equal(first[1].dup, 1);
	assert_int_equal(first[1].offset, one[0].offset);
	assert_int_equal(first[2].code, RINGMQ__ERROR_CODE__OK);
	assert_int_equal(first[2].offset, first[0].offset + 1);
	assert_int_equal(first[3].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	assert_int_equal(first[4].code, RINGMQ__ERROR_CODE__QUEUE_FULL);

	/* Gap: sequence 0 stored, 1 refused whole, room made, 2 stored. */
	raw_publish_batch(fd, "gap", 0, 1, none, one);
	assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__OK);
	raw_publish_batch(fd, "gap", 1, 1, none, one);
	assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	assert_int_equal(ringmq_queue_purge(c, "gap", NULL), RINGMQ_OK);
	raw_publish_batch(fd, "gap", 2, 1, none, one);
	assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__OK);
	raw_publish_batch(fd, "gap", 1, 1, none, one);
	assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	ringmq_client_free(c);

	for (int round = 0; round < 2; round++) {
		/* The answer was "lost": the same producer sends it again. */
		close(fd);
		if (round == 1) {
			assert_true(harness_kill(&b, SIGKILL) >= 0);
			assert_int_equal(harness_start(&b, NULL), 0);
		}
		fd = testlib_raw_open(b.port);
		assert_int_equal(testlib_raw_hello(fd, producer), producer);
		raw_publish_batch(fd, "partly", 0, 5, ids, again);
		for (int i = 0; i < 5; i++) {
			assert_int_equal(again[i].code, first[i].code);
			if (first[i].code != RINGMQ__ERROR_CODE__OK)
				continue;
			assert_int_equal(again[i].offset, first[i].offset);
			assert_int_equal(again[i].dup, 1);
		}
		/* Written with sequence 2, so it survives the kill too. */
		raw_publish_batch(fd, "gap", 1, 1, none, one);
		assert_int_equal(one[0].code, RINGMQ__ERROR_CODE__QUEUE_FULL);
	}
	close(fd);
	c = testlib_connect(b.addr);
	testlib_queue_counts(c, "partly", &messages, &ready, &delayed, NULL);
	assert_int_equal(messages, 3);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* Flips one byte in every copy of needle in file path. @return copies. */
static int
flip_every_copy(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r+b");
	size_t n = strlen(needle), size;
	char *buf;
	int copies = 0;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = (size_t)ftell(f);
	rewind(f);
	buf = malloc(size);
	assert_int_equal(fread(buf, 1, size, f), size);
	for (size_t i = 0; i + n <= size; i++)
		if (memcmp(buf + i, needle, n) == 0) {
			buf[i + n - 1] ^= 0x20;
			copies++;
		}
	rewind(f);
	assert_int_equal(fwrite(buf, 1, size, f), size);
	fclose(f);
	free(buf);
	return copies;
}

static void
test_corrupt_record_is_dead_lettered_others_delivered(void **state)
{
	static const char needle[] = "CORRUPT-ME-7f3a9c1e-payload";
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_delivery *d;
	char err[256], path[400], buf[256];
	int got_alpha = 0, got_omega = 0;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	create_queue(c, "fragile", NULL);
	publish(c, "fragile", "alpha");
	publish(c, "fragile", needle);
	publish(c, "fragile", "omega");
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", b.dir);
	assert_true(flip_every_copy(path, needle) >= 1);

	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(ringmq_opts_set(o, "server", b.addr, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK); /* Two groups: the record is dead-lettered
					once for the queue. */
	subscribe(c, "fragile", "g", 10);
	subscribe(c, "fragile", "g2", 10);
	for (int i = 0; i < 4; i++) {
		size_t n;
		const void *p;

		d = next_delivery(c, WAIT_MS);
		p = ringmq_delivery_payload(d, &n);
		got_alpha += n == 5 && memcmp(p, "alpha", 5) == 0;
		got_omega += n == 5 && memcmp(p, "omega", 5) == 0;
		assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	assert_int_equal(got_alpha, 2);
	assert_int_equal(got_omega, 2);
	expect_nothing(c, 300);

	subscribe(c, "fragile.dlq", "ops", 10);
	d = next_delivery(c, WAIT_MS);
	assert_string_equal(header(d, "ringmq-dlq-reason", buf, sizeof(buf)),
			    "corrupt");
	assert_string_equal(header(d, "ringmq-source-group", buf, sizeof(buf)),
			    "");
	assert_string_equal(header(d, "ringmq-source-offset", buf, sizeof(buf)),
			    "1");
	{
		/* The bytes as stored: the flipped payload is in them. */
		size_t n;
		const char *p = ringmq_delivery_payload(d, &n);
		char flipped[sizeof(needle)];

		memcpy(flipped, needle, sizeof(needle));
		flipped[sizeof(needle) - 2] ^= 0x20;
		assert_non_null(memmem(p, n, flipped, sizeof(needle) - 1));
	}
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	expect_nothing(c, 300);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* Sends one admin request on a raw connection and returns the answer. */
static Ringmq__Frame *
raw_request(int fd, Ringmq__Frame *f)
{
	f->has_request_id = 1;
	f->request_id = 9;
	testlib_raw_send(fd, f);
	return testlib_raw_recv(fd);
}

static size_t
raw_dlq_count(int fd, const char *queue)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__DeadLetterList dl = RINGMQ__DEAD_LETTER_LIST__INIT;
	Ringmq__Frame *r;
	size_t n;

	dl.queue = (char *)queue;
	f.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_LIST;
	f.dead_letter_list = &dl;
	r = raw_request(fd, &f);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_DEAD_LETTER_LIST_OK);
	n = r->dead_letter_list_ok->n_messages;
	ringmq__frame__free_unpacked(r, NULL);
	return n;
}

static void
test_redrive_goes_back_to_the_group_it_died_in(void **state)
{
	ringmq_client *w = testlib_connect(broker.addr);
	ringmq_client *x = testlib_connect(broker.addr);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__DeadLetterRedrive dr = RINGMQ__DEAD_LETTER_REDRIVE__INIT;
	Ringmq__Frame *r;
	ringmq_delivery *d;
	int fd;

	(void)state;
	create_queue(w, "redo", "max-deliveries=1", NULL);
	subscribe(w, "redo", "workers", 1);
	subscribe(x, "redo", "audit", 1);
	publish(w, "redo", "try again");
	d = next_delivery(w, WAIT_MS);
	assert_int_equal(settle(w, d, 'n'), RINGMQ_OK); /* dies at once */
	ringmq_delivery_free(d);
	d = next_delivery(x, WAIT_MS);
	assert_int_equal(settle(x, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	expect_nothing(w, 300);

	fd = testlib_raw_open(broker.port);
	(void)testlib_raw_hello(fd, 0);
	assert_int_equal(raw_dlq_count(fd, "redo"), 1);
	dr.queue = (char *)"redo";
	f.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE;
	f.dead_letter_redrive = &dr;
	r = raw_request(fd, &f);
	assert_int_equal(r->body_case,
			 RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE_OK);
	assert_int_equal(r->dead_letter_redrive_ok->redriven, 1);
	ringmq__frame__free_unpacked(r, NULL);
	assert_int_equal(raw_dlq_count(fd, "redo"), 0);
	close(fd);
	/* A group made after the redrive does not see the copy either. */
	{
		ringmq_client *y = testlib_connect(broker.addr);

		subscribe(y, "redo", "later", 1);
		expect_nothing(y, 300);
		/* Nor does a group reset to the earliest. */
		assert_int_equal(ringmq_group_reset(y, "redo", "audit",
						    RINGMQ_START_EARLIEST),
				 RINGMQ_OK);
		expect_nothing(x, 300);
		ringmq_client_free(y);
	}

	/* Back for the group it died in, with a new offset and a fresh
	 * count; the group that acked it does not see it again. */
	d = next_delivery(w, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 1);
	assert_int_equal(ringmq_delivery_offset(d), 1);
	{
		size_t n;
		const void *p = ringmq_delivery_payload(d, &n);

		assert_int_equal(n, 9);
		assert_memory_equal(p, "try again", 9);
		assert_int_equal(ringmq_delivery_header_count(d), 0);
	}
	assert_int_equal(settle(w, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	expect_nothing(x, 300);
	ringmq_client_free(w);
	ringmq_client_free(x);
}

/* A group reset to the earliest starts over from the oldest retained
 * message, without what every group acked: those are gone (deleted once
 * every group has acked them) though not yet trimmed, redriven copies
 * included once their group acked them or was deleted. */
static void
test_reset_to_earliest_skips_what_every_group_acked(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
	ringmq_delivery *d[3];
	uint64_t redriven = 0;

	(void)state;
	/* Both groups acked the middle message only. */
	create_queue(a, "holes", NULL);
	subscribe(a, "holes", "A", 3);
	subscribe(b, "holes", "B", 3);
	for (int i = 0; i < 3; i++)
		publish(a, "holes", "job");
	for (int i = 0; i < 3; i++) {
		d[i] = next_delivery(a, WAIT_MS);
		if (ringmq_delivery_offset(d[i]) == 1)
			assert_int_equal(settle(a, d[i], 'a'), RINGMQ_OK);
		ringmq_delivery_free(d[i]);
	}
	for (int i = 0; i < 3; i++) {
		d[i] = next_delivery(b, WAIT_MS);
		if (ringmq_delivery_offset(d[i]) == 1)
			assert_int_equal(settle(b, d[i], 'a'), RINGMQ_OK);
		ringmq_delivery_free(d[i]);
	}
	assert_int_equal(
		ringmq_group_reset(a, "holes", "B", RINGMQ_START_EARLIEST),
		RINGMQ_OK);
	d[0] = next_delivery(b, WAIT_MS);
	d[1] = next_delivery(b, WAIT_MS);
	assert_int_not_equal(ringmq_delivery_offset(d[0]), 1);
	assert_int_not_equal(ringmq_delivery_offset(d[1]), 1);
	ringmq_delivery_free(d[0]);
	ringmq_delivery_free(d[1]);
	expect_nothing(b, 300);
	ringmq_client_free(b);

	/* A copy redriven for "workers" and acked there (or its group
	 * deleted) stays hidden from a reset of another group. */
	for (int deleted = 0; deleted < 2; deleted++) {
		const char *q = deleted ? "redo-deleted" : "redo-acked";
		ringmq_client *w = testlib_connect(broker.addr);
		ringmq_client *x = testlib_connect(broker.addr);

		create_queue(a, q, "max-deliveries=1", NULL);
		assert_int_equal(ringmq_group_create(a, q, "audit",
						     RINGMQ_START_EARLIEST),
				 RINGMQ_OK);
		subscribe(w, q, "workers", 1);
		publish(a, q, "job");
		d[0] = next_delivery(w, WAIT_MS);
		assert_int_equal(settle(w, d[0], 'n'), RINGMQ_OK);
		ringmq_delivery_free(d[0]);
		assert_int_equal(ringmq_dlq_redrive(a, q, NULL, 0, &redriven),
				 RINGMQ_OK);
		assert_int_equal(redriven, 1);
		d[0] = next_delivery(w, WAIT_MS);
		assert_int_equal(ringmq_delivery_offset(d[0]), 1);
		if (!deleted)
			assert_int_equal(settle(w, d[0], 'a'), RINGMQ_OK);
		ringmq_delivery_free(d[0]);
		if (deleted)
			assert_int_equal(ringmq_group_delete(a, q, "workers"),
					 RINGMQ_OK);
		assert_int_equal(ringmq_group_reset(a, q, "audit",
						    RINGMQ_START_EARLIEST),
				 RINGMQ_OK);
		subscribe(x, q, "audit", 2);
		d[0] = next_delivery(x, WAIT_MS);
		assert_int_equal(ringmq_delivery_offset(d[0]), 0);
		ringmq_delivery_free(d[0]);
		expect_nothing(x, 300);
		ringmq_client_free(x);
		ringmq_client_free(w);
	}
	ringmq_client_free(a);
}

/* Redriven copies count toward the source queue's max depth like any
 * publish: a redrive takes what fits and leaves the rest dead. */
static void
test_redrive_keeps_to_the_max_depth(void **state)
{
	ringmq_client *w = testlib_connect(broker.addr);
	ringmq_client *x = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint64_t redriven = 99;
	uint32_t audit;

	(void)state;
	create_queue(w, "tight", "max-depth=2", "max-deliveries=1", NULL);
	audit = subscribe(x, "tight", "audit", 0);
	subscribe(w, "tight", "workers", 2);
	publish(w, "tight", "one");
	publish(w, "tight", "two");
	for (int i = 0; i < 2; i++) {
		d = next_delivery(w, WAIT_MS);
		assert_int_equal(settle(w, d, 'n'), RINGMQ_OK); /* dies */
		ringmq_delivery_free(d);
	}
	/* Both are still retained for "audit": no room for a copy. */
	assert_int_equal(ringmq_dlq_redrive(w, "tight", NULL, 0, &redriven),
			 RINGMQ_QUEUE_FULL);
	/* Room for one once "audit" acks one. */
	assert_int_equal(ringmq_subscription_set_credit(x, audit, 1),
			 RINGMQ_OK);
	d = next_delivery(x, WAIT_MS);
	assert_int_equal(settle(x, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_dlq_redrive(w, "tight", NULL, 0, &redriven),
			 RINGMQ_OK);
	assert_int_equal(redriven, 1);
	assert_int_equal(ringmq_dlq_redrive(w, "tight", NULL, 0, &redriven),
			 RINGMQ_QUEUE_FULL);
	ringmq_client_free(w);
	ringmq_client_free(x);
}

/* A dead letter that cannot go back (its group deleted) takes no room:
 * it does not make a redrive of later ones QUEUE_FULL. */
static void
test_redrive_limit_skips_what_cannot_go_back(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	ringmq_delivery *d;
	char big[1000];
	uint64_t redriven = 0;
	uint32_t sub;

	(void)state;
	memset(big, 'b', sizeof(big));
	create_queue(c, "roomy", "max-deliveries=1", NULL);
	/* The big one dies in "gone", which is deleted after. */
	assert_int_equal(try_publish(c, "roomy", big, sizeof(big)), RINGMQ_OK);
	sub = subscribe(c, "roomy", "gone", 1);
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(settle(c, d, 'n'), RINGMQ_OK);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
	assert_int_equal(ringmq_group_delete(c, "roomy", "gone"), RINGMQ_OK);
	/* The small one dies in "workers". */
	sub = subscribe(c, "roomy", "workers", 1);
	publish(c, "roomy", "small");
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(settle(c, d, 'n'), RINGMQ_OK);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
	assert_int_equal(ringmq_queue_opts_set(qo, "max-bytes", "500", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_set(c, "roomy", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	assert_int_equal(ringmq_dlq_redrive(c, "roomy", NULL, 0, &redriven),
			 RINGMQ_OK);
	assert_int_equal(redriven, 1);
	ringmq_client_free(c);
}

static void
test_peek_and_show_read_without_leasing(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Peek pk = RINGMQ__PEEK__INIT;
	Ringmq__MessageShow ms = RINGMQ__MESSAGE_SHOW__INIT;
	Ringmq__Frame *r;
	ringmq_delivery *d;
	int fd;

	(void)state;
	create_queue(c, "look", NULL);
	publish(c, "look", "one");
	publish(c, "look", "two");
	fd = testlib_raw_open(broker.port);
	(void)testlib_raw_hello(fd, 0);
	pk.queue = (char *)"look";
	f.body_case = RINGMQ__FRAME__BODY_PEEK;
	f.peek = &pk;
	r = raw_request(fd, &f);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_PEEK_OK);
	assert_int_equal(r->peek_ok->n_messages, 2);
	assert_int_equal(r->peek_ok->messages[1]->offset, 1);
	assert_int_equal(r->peek_ok->messages[1]->message->payload.len, 3);
	assert_memory_equal(r->peek_ok->messages[1]->message->payload.data,
			    "two", 3);
	ringmq__frame__free_unpacked(r, NULL);
	ms.queue = (char *)"look";
	ms.partition = 0;
	ms.offset = 0;
	f.body_case = RINGMQ__FRAME__BODY_MESSAGE_SHOW;
	f.message_show = &ms;
	r = raw_request(fd, &f);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_MESSAGE_SHOW_OK);
	assert_memory_equal(r->message_show_ok->message->message->payload.data,
			    "one", 3);
	ringmq__frame__free_unpacked(r, NULL);
	ms.offset = 7;
	r = raw_request(fd, &f);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_ERROR);
	assert_int_equal(r->error->code, RINGMQ__ERROR_CODE__MESSAGE_NOT_FOUND);
	ringmq__frame__free_unpacked(r, NULL);
	close(fd);
	/* Nothing was leased by looking. */
	subscribe(c, "look", "g", 5);
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 1);
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	d = next_delivery(c, WAIT_MS);
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
}

/* Sends f and expects body want; returns the answer (free it). */
static Ringmq__Frame *
raw_expect(int fd, Ringmq__Frame *f, Ringmq__Frame__BodyCase want)
{
	Ringmq__Frame *r = raw_request(fd, f);

	if (r->body_case != want && r->body_case == RINGMQ__FRAME__BODY_ERROR)
		fail_msg("error %d: %s", r->error->code,
			 r->error->message ? r->error->message : "");
	assert_int_equal(r->body_case, want);
	return r;
}

/* A group's lag, ready and in-flight counts, and the queue's ready. */
static void
expect_counts(int fd, const char *queue, const char *group, uint64_t lag,
	      uint64_t ready, uint64_t in_flight, uint64_t queue_ready)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupDescribe gd = RINGMQ__GROUP_DESCRIBE__INIT;
	Ringmq__QueueList ql = RINGMQ__QUEUE_LIST__INIT;
	Ringmq__Frame *r;
	size_t i;

	gd.queue = (char *)queue;
	gd.group = (char *)group;
	f.body_case = RINGMQ__FRAME__BODY_GROUP_DESCRIBE;
	f.group_describe = &gd;
	r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK);
	assert_int_equal(r->group_describe_ok->group->lag, lag);
	assert_int_equal(r->group_describe_ok->group->ready, ready);
	assert_int_equal(r->group_describe_ok->group->in_flight, in_flight);
	ringmq__frame__free_unpacked(r, NULL);
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_LIST;
	f.queue_list = &ql;
	r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_QUEUE_LIST_OK);
	for (i = 0; i < r->queue_list_ok->n_queues; i++)
		if (strcmp(r->queue_list_ok->queues[i]->name, queue) == 0)
			break;
	assert_true(i < r->queue_list_ok->n_queues);
	assert_int_equal(r->queue_list_ok->queues[i]->ready, queue_ready);
	ringmq__frame__free_unpacked(r, NULL);
}

/* Counts come from the partition index and the acked runs: offsets a group
 * acked out of order and that were purged since (kept until then by
 * another group) are neither lag nor acked. */
static void
test_counts_skip_purged_offsets_inside_acked_runs(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupCreate gc = RINGMQ__GROUP_CREATE__INIT;
	Ringmq__Purge pu = RINGMQ__PURGE__INIT;
	ringmq_delivery *d[10];
	Ringmq__Frame *r;
	int fd;

	(void)state;
	create_queue(c, "runs", NULL);
	fd = testlib_raw_open(broker.port);
	(void)testlib_raw_hello(fd, 0);
	gc.queue = (char *)"runs";
	gc.group = (char *)"audit";
	f.body_case = RINGMQ__FRAME__BODY_GROUP_CREATE;
	f.group_create = &gc;
	ringmq__frame__free_unpacked(
		raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
	for (int i = 0; i < 10; i++)
		publish(c, "runs", "x");
	subscribe(c, "runs", "w", 10);
	for (int i = 0; i < 10; i++) {
		d[i] = next_delivery(c, WAIT_MS);
		assert_int_equal(ringmq_delivery_offset(d[i]), i);
	}
	/* Acks above a floor held at 0: a run 3..5. */
	for (int i = 3; i <= 5; i++)
		assert_int_equal(settle(c, d[i], 'a'), RINGMQ_OK);
	expect_counts(fd, "runs", "w", 7, 0, 7, 10);
	expect_counts(fd, "runs", "audit", 10, 10, 0, 10);

	/* Purge drops 3..5 (audit kept them) and keeps w's leases. */
	pu.queue = (char *)"runs";
	f.body_case = RINGMQ__FRAME__BODY_PURGE;
	f.purge = &pu;
	r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_PURGE_OK);
	assert_int_equal(r->purge_ok->purged, 3);
	ringmq__frame__free_unpacked(r, NULL);
	expect_counts(fd, "runs", "w", 7, 0, 7, 7);
	expect_counts(fd, "runs", "audit", 7, 7, 0, 7);

	/* w acks the rest: its lag is 0; audit still lags the retained 7. */
	for (int i = 0; i < 10; i++) {
		if (i < 3 || i > 5)
			assert_int_equal(settle(c, d[i], 'a'), RINGMQ_OK);
		ringmq_delivery_free(d[i]);
	}
	expect_counts(fd, "runs", "w", 0, 0, 0, 7);
	expect_counts(fd, "runs", "audit", 7, 7, 0, 7);
	close(fd);
	ringmq_client_free(c);
}

static void
test_admin_purge_groups_describe_delete_stats(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Frame *r;
	ringmq_delivery *held;
	int fd;

	(void)state;
	create_queue(c, "adm", "partitions=2", NULL);
	for (int i = 0; i < 6; i++)
		publish(c, "adm", "x");
	publish_delayed(c, "adm", "later", 60000, NULL, NULL);
	subscribe(c, "adm", "w", 1);
	held = next_delivery(c, WAIT_MS); /* one leased: purge keeps it */
	fd = testlib_raw_open(broker.port);
	(void)testlib_raw_hello(fd, 0);

	{
		Ringmq__GroupCreate gc = RINGMQ__GROUP_CREATE__INIT;

		gc.queue = (char *)"adm";
		gc.group = (char *)"audit";
		f.body_case = RINGMQ__FRAME__BODY_GROUP_CREATE;
		f.group_create = &gc;
		ringmq__frame__free_unpacked(
			raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
		/* Exists: still Done. */
		ringmq__frame__free_unpacked(
			raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
	}
	{
		Ringmq__QueueDescribe qd = RINGMQ__QUEUE_DESCRIBE__INIT;

		qd.name = (char *)"adm";
		f.body_case = RINGMQ__FRAME__BODY_QUEUE_DESCRIBE;
		f.queue_describe = &qd;
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_QUEUE_DESCRIBE_OK);
		assert_int_equal(r->queue_describe_ok->queue->messages, 7);
		assert_int_equal(r->queue_describe_ok->queue->delayed, 1);
		assert_int_equal(r->queue_describe_ok->n_partitions, 2);
		assert_true(r->queue_describe_ok->partitions[0]
				    ->has_oldest_publish_ms);
		assert_int_equal(r->queue_describe_ok->n_groups, 2);
		assert_int_equal(r->queue_describe_ok->groups[1]->lag, 6);
		ringmq__frame__free_unpacked(r, NULL);
	}
	{
		Ringmq__Purge pu = RINGMQ__PURGE__INIT;

		pu.queue = (char *)"adm";
		f.body_case = RINGMQ__FRAME__BODY_PURGE;
		f.purge = &pu;
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_PURGE_OK);
		assert_int_equal(r->purge_ok->purged, 6); /* 5 + delayed */
		ringmq__frame__free_unpacked(r, NULL);
	}
	/* The leased message survived the purge and can be acked. */
	assert_int_equal(settle(c, held, 'a'), RINGMQ_OK);
	ringmq_delivery_free(held);
	expect_nothing(c, 300);
	{
		Ringmq__GroupList gl = RINGMQ__GROUP_LIST__INIT;

		gl.queue = (char *)"adm";
		f.body_case = RINGMQ__FRAME__BODY_GROUP_LIST;
		f.group_list = &gl;
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_GROUP_LIST_OK);
		assert_int_equal(r->group_list_ok->n_groups, 2);
		assert_string_equal(r->group_list_ok->groups[0]->name, "w");
		assert_int_equal(r->group_list_ok->groups[0]->consumers, 1);
		ringmq__frame__free_unpacked(r, NULL);
	}
	publish(c, "adm", "after purge");
	{
		/* Reset to latest skips it for audit; w still gets it. */
		Ringmq__GroupReset gr = RINGMQ__GROUP_RESET__INIT;
		Ringmq__GroupDescribe gd = RINGMQ__GROUP_DESCRIBE__INIT;

		gr.queue = gd.queue = (char *)"adm";
		gr.group = gd.group = (char *)"audit";
		gr.has_start = 1;
		gr.start = RINGMQ__START_POSITION__LATEST;
		f.body_case = RINGMQ__FRAME__BODY_GROUP_RESET;
		f.group_reset = &gr;
		ringmq__frame__free_unpacked(
			raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
		f.body_case = RINGMQ__FRAME__BODY_GROUP_DESCRIBE;
		f.group_describe = &gd;
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK);
		assert_int_equal(r->group_describe_ok->group->lag, 0);
		ringmq__frame__free_unpacked(r, NULL);
	}
	held = next_delivery(c, WAIT_MS);
	assert_int_equal(settle(c, held, 'a'), RINGMQ_OK);
	ringmq_delivery_free(held);
	{
		/* Deleting w detaches the subscription; missing: 1. */
		Ringmq__GroupDelete gd = RINGMQ__GROUP_DELETE__INIT;

		gd.queue = (char *)"adm";
		gd.group = (char *)"w";
		f.body_case = RINGMQ__FRAME__BODY_GROUP_DELETE;
		f.group_delete = &gd;
		ringmq__frame__free_unpacked(
			raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_ERROR);
		assert_int_equal(r->error->code,
				 RINGMQ__ERROR_CODE__GROUP_NOT_FOUND);
		ringmq__frame__free_unpacked(r, NULL);
	}
	{
		Ringmq__Stats st = RINGMQ__STATS__INIT;
		int seen = 0;

		f.body_case = RINGMQ__FRAME__BODY_STATS;
		f.stats = &st;
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_STATS_OK);
		for (size_t i = 0; i < r->stats_ok->n_stats; i++)
			if (strcmp(r->stats_ok->stats[i]->name,
				   "storage_limit_bytes") == 0) {
				assert_true(r->stats_ok->stats[i]->value > 0);
				seen = 1;
			}
		assert_true(seen);
		ringmq__frame__free_unpacked(r, NULL);
	}
	{
		Ringmq__QueueDelete qd = RINGMQ__QUEUE_DELETE__INIT;

		qd.name = (char *)"adm";
		f.body_case = RINGMQ__FRAME__BODY_QUEUE_DELETE;
		f.queue_delete = &qd;
		ringmq__frame__free_unpacked(
			raw_expect(fd, &f, RINGMQ__FRAME__BODY_DONE), NULL);
		r = raw_expect(fd, &f, RINGMQ__FRAME__BODY_ERROR);
		assert_int_equal(r->error->code,
				 RINGMQ__ERROR_CODE__QUEUE_NOT_FOUND);
		ringmq__frame__free_unpacked(r, NULL);
	}
	close(fd);
	/* Gone for publishers too; the name can be used again. */
	assert_int_equal(try_publish(c, "adm", "x", 1), RINGMQ_QUEUE_NOT_FOUND);
	create_queue(c, "adm", NULL);
	ringmq_client_free(c);
}

static void
test_corrupt_delayed_record_is_dead_lettered_when_due(void **state)
{
	static const char needle[] = "CORRUPT-DELAYED-5be1d2-payload";
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d;
	char path[400], buf[256];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	create_queue(c, "later2", NULL);
	publish_delayed(c, "later2", needle, 800, NULL, NULL);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", b.dir);
	assert_true(flip_every_copy(path, needle) >= 1);
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	/* When due, the record is not delivered as good: it goes to the
	 * dead-letter queue as stored. */
	subscribe(c, "later2", "g", 5);
	expect_nothing(c, 1500);
	subscribe(c, "later2.dlq", "ops", 5);
	d = next_delivery(c, WAIT_MS);
	assert_string_equal(header(d, "ringmq-dlq-reason", buf, sizeof(buf)),
			    "corrupt");
	assert_string_equal(header(d, "ringmq-source-queue", buf, sizeof(buf)),
			    "later2");
	assert_int_equal(settle(c, d, 'a'), RINGMQ_OK);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_lease_expiry_redelivers_to_another_consumer),
		cmocka_unit_test(
			test_dispatch_takes_turns_and_skips_full_subscriptions),
		cmocka_unit_test(
			test_duplicate_of_uncommitted_publish_is_confirmed_after_it),
		cmocka_unit_test(test_ack_after_expiry_is_lease_expired),
		cmocka_unit_test(test_touch_keeps_job_and_stops_at_max_lease),
		cmocka_unit_test(test_lease_time_above_max_lease_is_capped),
		cmocka_unit_test(test_nack_delay_redelivers_after_not_before),
		cmocka_unit_test(test_reset_ends_leases_and_nack_delays),
		cmocka_unit_test(test_nack_delayed_message_counts_as_delayed),
		cmocka_unit_test(
			test_reset_nack_delay_stays_ended_after_restart),
		cmocka_unit_test(test_max_deliveries_dead_letters_with_headers),
		cmocka_unit_test(test_nack_reason_reaches_the_dead_letter),
		cmocka_unit_test(
			test_nack_that_dead_letters_answers_after_the_dead_letter),
		cmocka_unit_test(
			test_longest_name_dead_letters_and_no_queue_into_itself),
		cmocka_unit_test(
			test_delayed_job_not_early_and_holds_nothing_back),
		cmocka_unit_test(
			test_queue_full_at_max_depth_and_bytes_until_acked),
		cmocka_unit_test(test_resent_producer_sequence_is_stored_once),
		cmocka_unit_test(
			test_resent_partly_stored_batch_is_answered_as_first),
		cmocka_unit_test(test_sequenced_publish_keeps_to_one_partition),
		cmocka_unit_test(
			test_resent_batch_that_failed_to_commit_gets_its_failure),
		cmocka_unit_test(
			test_redrive_goes_back_to_the_group_it_died_in),
		cmocka_unit_test(
			test_reset_to_earliest_skips_what_every_group_acked),
		cmocka_unit_test(test_redrive_keeps_to_the_max_depth),
		cmocka_unit_test(test_redrive_limit_skips_what_cannot_go_back),
		cmocka_unit_test(test_peek_and_show_read_without_leasing),
		cmocka_unit_test(test_admin_purge_groups_describe_delete_stats),
		cmocka_unit_test(
			test_counts_skip_purged_offsets_inside_acked_runs),
	};
	const struct CMUnitTest own[] = {
		cmocka_unit_test(test_failure_counts_survive_restart),
		cmocka_unit_test(
			test_delayed_job_survives_restart_before_its_time),
		cmocka_unit_test(
			test_acked_messages_behind_a_held_one_leave_the_depth),
		cmocka_unit_test(
			test_storage_full_then_acks_work_and_publishing_resumes),
		cmocka_unit_test(
			test_duplicate_of_a_failed_publish_is_not_confirmed),
		cmocka_unit_test(
			test_storage_full_keeps_what_it_cannot_dead_letter),
		cmocka_unit_test(
			test_data_over_the_limit_drains_and_publishes_again),
		cmocka_unit_test(
			test_dedup_returns_original_offset_also_after_restart),
		cmocka_unit_test(
			test_corrupt_record_is_dead_lettered_others_delivered),
		cmocka_unit_test(
			test_corrupt_delayed_record_is_dead_lettered_when_due),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("semantics", tests, setup_broker,
					     teardown_broker);
	failed += cmocka_run_group_tests_name("semantics-restart", own, NULL,
					      NULL);
	return failed ? 1 : 0;
}
