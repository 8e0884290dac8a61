/*
 * Integration tests of libringmq against a real broker: asynchronous
 * publish (every callback once, idempotent resend across a kill -9 and
 * restart, the outgoing buffer bound, producer threads sharing a client),
 * reconnect and restored subscriptions, keepalive against a half-open
 * broker, callback subscriptions with auto-touch, the worker helper, and
 * the examples of README.md. Brokers run with --sync never (it survives
 * kill -9) to keep the suite fast; every wait has a deadline.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "testlib.h"

#define WAIT_MS 10000

static const char *const sync_never[] = { "--sync", "never", NULL };

static struct harness_broker broker;

static int
setup_broker(void **state)
{
	(void)state;
	return testlib_broker_start(&broker, sync_never);
}

static int
teardown_broker(void **state)
{
	(void)state;
	return testlib_broker_stop(&broker);
}

static void
create_queue(ringmq_client *c, const char *name, const char *partitions,
	     const char *lease_ms)
{
	ringmq_queue_opts *qo = ringmq_queue_opts_new();

	if (partitions != NULL)
		assert_int_equal(ringmq_queue_opts_set(qo, "partitions",
						       partitions, NULL, 0),
				 RINGMQ_OK);
	if (lease_ms != NULL)
		assert_int_equal(ringmq_queue_opts_set(qo, "lease-ms", lease_ms,
						       NULL, 0),
				 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, name, qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
}

static void
publish_sync(ringmq_client *c, const char *queue, const char *payload)
{
	ringmq_message *m = ringmq_message_new(payload, strlen(payload));

	assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

/* Publishes "<i>" asynchronously with cb and ctx. */
static int
publish_index(ringmq_client *c, const char *queue, long i, ringmq_publish_cb cb,
	      void *ctx)
{
	char payload[32];
	int len = snprintf(payload, sizeof(payload), "%ld", i);
	ringmq_message *m = ringmq_message_new(payload, (size_t)len);
	int rc = ringmq_publish_async(c, queue, m, cb, ctx);

	ringmq_message_free(m);
	return rc;
}

/* ------------------------------------------------- asynchronous publish */

#define MANY 100000

struct many {
	uint8_t calls[MANY];
	long ok;
	long bad;
};

static struct many g_many;

static void
on_many(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	long i = (long)(intptr_t)ctx;

	(void)c;
	g_many.calls[i]++;
	if (ringmq_publish_report_code(r) == RINGMQ_OK)
		g_many.ok++;
	else
		g_many.bad++;
}

static void
test_async_publish_100k_every_callback_once(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	uint64_t messages = 0;

	(void)state;
	memset(&g_many, 0, sizeof(g_many));
	create_queue(c, "many", "4", NULL);
	for (long i = 0; i < MANY; i++) {
		assert_int_equal(publish_index(c, "many", i, on_many,
					       (void *)(intptr_t)i),
				 RINGMQ_OK);
		if (i % 1000 == 0)
			(void)ringmq_client_poll(c, 0);
	}
	assert_int_equal(ringmq_client_flush(c, 60000), RINGMQ_OK);
	assert_int_equal(ringmq_client_outstanding(c), 0);
	/* Nothing more comes: each callback ran exactly once. */
	assert_int_equal(ringmq_client_poll(c, 50), 0);
	for (long i = 0; i < MANY; i++)
		assert_int_equal(g_many.calls[i], 1);
	assert_int_equal(g_many.ok, MANY);
	assert_int_equal(g_many.bad, 0);
	testlib_queue_counts(c, "many", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, MANY);
	ringmq_client_free(c);
}

static void
on_count(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	(void)c;
	(void)r;
	(*(long *)ctx)++;
}

static void
test_async_publish_would_block_when_buffer_full(void **state)
{
	ringmq_client *c = testlib_connect_with(
		broker.addr, "max-outstanding-bytes=500",
		"block-when-full=false", "linger-ms=60000", NULL);
	long done = 0;
	int rc = RINGMQ_OK;
	int n;

	(void)state;
	create_queue(c, "full", NULL, NULL);
	for (n = 0; n < 1000; n++) {
		rc = publish_index(c, "full", n, on_count, &done);
		if (rc != RINGMQ_OK)
			break;
	}
	/* About 500 bytes of ~5-byte messages, never all 1000. */
	assert_int_equal(rc, RINGMQ_WOULD_BLOCK);
	assert_true(n > 10 && n < 1000);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(done, n);
	/* Room again once answered. */
	assert_int_equal(publish_index(c, "full", n, on_count, &done),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(done, n + 1);
	ringmq_client_free(c);
}

/* An application's own event loop learns when to serve the client though
 * the socket stays silent: the linger of a queued batch, else the
 * keepalive; with neither, never. */
static void
test_poll_timeout_follows_linger_and_keepalive(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, "linger-ms=400",
						"ping-interval-ms=0", NULL);
	ringmq_client *k = testlib_connect_with(broker.addr,
						"ping-interval-ms=20000", NULL);
	long done = 0;
	int t;

	(void)state;
	create_queue(c, "due", NULL, NULL);
	assert_int_equal(ringmq_client_poll_timeout(c), -1);
	assert_int_equal(publish_index(c, "due", 1, on_count, &done),
			 RINGMQ_OK);
	t = ringmq_client_poll_timeout(c);
	assert_true(t > 0 && t <= 400);
	/* Served at that time it goes; its answer then comes on the
	 * socket, with nothing else due (done changes in the callback). */
	for (int rounds = 0; rounds < 1000 && done == 0; rounds++) {
		struct pollfd p = { .fd = ringmq_client_fd(c),
				    .events = POLLIN };

		t = ringmq_client_poll_timeout(c);
		assert_true(t >= -1 && t <= 400);
		(void)poll(&p, 1, t < 0 ? WAIT_MS : t);
		(void)ringmq_client_poll(c, 0);
	}
	assert_int_equal(done, 1);
	assert_int_equal(ringmq_client_poll_timeout(c), -1);
	t = ringmq_client_poll_timeout(k);
	assert_true(t > 15000 && t <= 20000);
	ringmq_client_close(c);
	assert_int_equal(ringmq_client_poll_timeout(c), -1);
	ringmq_client_free(c);
	ringmq_client_free(k);
}

static void
test_async_publish_unknown_queue_fails_at_once(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	long done = 0;

	(void)state;
	assert_int_equal(publish_index(c, "nope", 1, on_count, &done),
			 RINGMQ_QUEUE_NOT_FOUND);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(done, 0);
	ringmq_client_free(c);
}

/* Outside a cluster, Metadata names this broker, at the address the
 * client reached, as the owner of every partition at epoch 0; a named
 * queue that does not exist is QUEUE_NOT_FOUND. */
static void
test_metadata_outside_a_cluster_names_this_broker(void **state)
{
	static const char *const named[] = { "meta", "nope" };
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	ringmq_metadata *m = NULL;

	(void)state;
	create_queue(c, "meta", "3", NULL);
	assert_int_equal(ringmq_metadata_get(c, &m, named, 1), RINGMQ_OK);
	assert_null(ringmq_metadata_cluster(m));
	assert_null(ringmq_metadata_controller(m));
	assert_int_equal(ringmq_metadata_broker_count(m), 1);
	assert_string_equal(ringmq_metadata_broker_id(m, 0), "");
	assert_string_equal(ringmq_metadata_broker_address(m, 0), broker.addr);
	assert_int_equal(ringmq_metadata_queue_count(m), 1);
	assert_string_equal(ringmq_metadata_queue_name(m, 0), "meta");
	assert_int_equal(ringmq_metadata_partition_count(m, 0), 3);
	for (size_t p = 0; p < 3; p++) {
		assert_string_equal(ringmq_metadata_partition_owner(m, 0, p),
				    broker.addr);
		assert_int_equal(ringmq_metadata_partition_epoch(m, 0, p), 0);
	}
	assert_null(ringmq_metadata_partition_owner(m, 0, 3));
	ringmq_metadata_free(m);
	assert_int_equal(ringmq_metadata_get(c, &m, named, 2),
			 RINGMQ_QUEUE_NOT_FOUND);
	assert_null(m);
	/* None named: every queue. */
	assert_int_equal(ringmq_metadata_get(c, &m, NULL, 0), RINGMQ_OK);
	assert_true(ringmq_metadata_queue_count(m) >= 1);
	ringmq_metadata_free(m);
	ringmq_client_free(c);
}

/* The header limit comes with hello (64 by default), and a message over
 * it is refused here, synchronous or not, before the broker would close
 * the connection on it: the next publish goes through on the same one. */
static void
test_publish_over_the_header_limit_is_refused_locally(void **state)
{
	/* Without reconnecting: a lost connection would show. */
	ringmq_client *c =
		testlib_connect_with(broker.addr, "reconnect=false", NULL);
	ringmq_message *m = ringmq_message_new("x", 1);
	char name[16];

	(void)state;
	assert_int_equal(ringmq_client_max_header_count(c), 64);
	create_queue(c, "hdrlimit", NULL, NULL);
	for (int i = 0; i < 65; i++) {
		snprintf(name, sizeof(name), "h%d", i);
		assert_int_equal(ringmq_message_add_header(m, name, "v", 1),
				 RINGMQ_OK);
	}
	assert_int_equal(ringmq_publish(c, "hdrlimit", m, NULL, NULL, NULL),
			 RINGMQ_MESSAGE_TOO_LARGE);
	assert_int_equal(ringmq_publish_async(c, "hdrlimit", m, NULL, NULL),
			 RINGMQ_MESSAGE_TOO_LARGE);
	ringmq_message_free(m);
	m = ringmq_message_new("y", 1);
	assert_int_equal(ringmq_publish(c, "hdrlimit", m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
	ringmq_client_free(c);
}

/* Keyed messages land on the partition the broker would choose. */
struct copied {
	int calls;
	int is_duplicate[2];
	uint64_t offset[2];
};

static void
on_copied(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct copied *cp = ctx;

	(void)c;
	assert_int_equal(ringmq_publish_report_code(r), RINGMQ_OK);
	assert_true(cp->calls < 2);
	cp->is_duplicate[cp->calls] = ringmq_publish_report_is_duplicate(r);
	cp->offset[cp->calls++] = ringmq_publish_report_offset(r);
}

/* The library keeps its own copy of an asynchronous publish (key,
 * headers, dedup id, payload; an empty payload too) from the call on:
 * the message is freed at once here, and the broker still gets it all. */
static void
test_async_publish_copies_key_headers_and_dedup_id(void **state)
{
	ringmq_client *c =
		testlib_connect_with(broker.addr, "linger-ms=0", NULL);
	struct copied cp = { 0 };
	ringmq_message *m = ringmq_message_new("body", 4);
	ringmq_delivery *d = NULL;
	const char *payload;
	size_t len = 0;
	uint32_t sub;

	(void)state;
	create_queue(c, "copied", NULL, NULL);
	assert_int_equal(ringmq_message_set_key(m, "k1", 2), RINGMQ_OK);
	assert_int_equal(ringmq_message_add_header(m, "a", "x", 1), RINGMQ_OK);
	assert_int_equal(ringmq_message_add_header(m, "empty", "", 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_message_set_dedup_id(m, "d-1"), RINGMQ_OK);
	assert_int_equal(ringmq_publish_async(c, "copied", m, on_copied, &cp),
			 RINGMQ_OK);
	ringmq_message_free(m);
	/* The same dedup id on an empty payload: confirmed as the first. */
	m = ringmq_message_new("", 0);
	assert_int_equal(ringmq_message_set_dedup_id(m, "d-1"), RINGMQ_OK);
	assert_int_equal(ringmq_publish_async(c, "copied", m, on_copied, &cp),
			 RINGMQ_OK);
	ringmq_message_free(m);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(cp.calls, 2);
	assert_int_equal(cp.is_duplicate[0] + cp.is_duplicate[1], 1);
	assert_int_equal(cp.offset[1], cp.offset[0]);

	assert_int_equal(ringmq_subscribe(c, &sub, "copied", "g", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	payload = ringmq_delivery_payload(d, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(payload, "body", 4);
	assert_memory_equal(ringmq_delivery_key(d, &len), "k1", 2);
	assert_int_equal(len, 2);
	assert_int_equal(ringmq_delivery_header_count(d), 2);
	assert_string_equal(ringmq_delivery_header_name(d, 0), "a");
	assert_memory_equal(ringmq_delivery_header_value(d, 0, &len), "x", 1);
	assert_int_equal(len, 1);
	assert_string_equal(ringmq_delivery_header_name(d, 1), "empty");
	(void)ringmq_delivery_header_value(d, 1, &len);
	assert_int_equal(len, 0);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_next(c, &d, 300), RINGMQ_TIMEOUT);
	ringmq_client_free(c);
}

static void
test_async_publish_keyed_partition_agrees_with_broker(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	ringmq_message *m = ringmq_message_new("x", 1);
	uint32_t sync_part = 99;

	(void)state;
	create_queue(c, "keyed", "7", NULL);
	for (int k = 0; k < 20; k++) {
		char key[16];

		snprintf(key, sizeof(key), "user-%d", k);
		assert_int_equal(ringmq_message_set_key(m, key, strlen(key)),
				 RINGMQ_OK);
		/* The sync publish names no partition: the broker hashes. */
		assert_int_equal(
			ringmq_publish(c, "keyed", m, &sync_part, NULL, NULL),
			RINGMQ_OK);
		/* The async one names the library's; a disagreement would
		 * be refused with INVALID_ARGUMENT. */
		assert_int_equal(
			ringmq_publish_async(c, "keyed", m, NULL, NULL),
			RINGMQ_OK);
	}
	ringmq_message_free(m);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	ringmq_client_free(c);
}

/* Keyless messages stay on one partition for 16 KiB, then move on to the
 * next: batches stay large however many partitions a queue has, and
 * every partition still gets its share. */
#define STICKY_MSGS 640

static uint32_t g_sticky_part[STICKY_MSGS];

static void
on_sticky(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	(void)c;
	assert_int_equal(ringmq_publish_report_code(r), RINGMQ_OK);
	g_sticky_part[(intptr_t)ctx] = ringmq_publish_report_partition(r);
}

static void
test_async_publish_keyless_sticks_to_a_partition_per_16k(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	static char payload[1000];
	ringmq_message *m = ringmq_message_new(payload, sizeof(payload));
	unsigned per_part[8] = { 0 }, runs = 1, run = 1, longest = 0;

	(void)state;
	create_queue(c, "sticky", "8", NULL);
	for (intptr_t i = 0; i < STICKY_MSGS; i++)
		assert_int_equal(ringmq_publish_async(c, "sticky", m, on_sticky,
						      (void *)i),
				 RINGMQ_OK);
	ringmq_message_free(m);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	for (int i = 0; i < STICKY_MSGS; i++) {
		assert_true(g_sticky_part[i] < 8);
		per_part[g_sticky_part[i]]++;
		if (i > 0 && g_sticky_part[i] != g_sticky_part[i - 1]) {
			assert_int_equal(g_sticky_part[i],
					 (g_sticky_part[i - 1] + 1) % 8);
			runs++;
			run = 0;
		}
		run++;
		if (run > longest)
			longest = run;
	}
	/* About 1,000 bytes each as the library counts them: runs of 16 to
	 * 18, every partition used evenly. */
	assert_true(longest >= 15 && longest <= 20);
	assert_true(runs >= STICKY_MSGS / 20 && runs <= STICKY_MSGS / 15 + 1);
	for (int p = 0; p < 8; p++)
		assert_true(per_part[p] >= STICKY_MSGS / 8 - 16 &&
			    per_part[p] <= STICKY_MSGS / 8 + 16);
	ringmq_client_free(c);
}

/* ------------------------------------------- kill -9 and restart mid-run */

#define KILLED 30000

struct killed {
	uint8_t calls[KILLED];
	long ok;
	long bad;
	long dup;
};

static struct killed g_killed;

static void
on_killed(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	long i = (long)(intptr_t)ctx;

	(void)c;
	g_killed.calls[i]++;
	if (ringmq_publish_report_code(r) != RINGMQ_OK) {
		fprintf(stderr, "publish %ld: %s %s\n", i,
			ringmq_code_name(ringmq_publish_report_code(r)),
			ringmq_publish_report_message(r));
		g_killed.bad++;
		return;
	}
	g_killed.ok++;
	g_killed.dup += ringmq_publish_report_is_duplicate(r);
}

/* Consumes the whole queue once and checks every index appears once. */
static void
expect_each_stored_once(ringmq_client *c, const char *queue, long n)
{
	uint8_t *seen = calloc((size_t)n, 1);
	uint64_t ids[500];
	size_t n_ids = 0;
	uint32_t sub;
	long got = 0;

	assert_non_null(seen);
	assert_int_equal(ringmq_subscribe(c, &sub, queue, "check", 1000,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	while (got < n) {
		ringmq_delivery *d = NULL;
		char buf[32];
		size_t len;
		const void *p;
		long i;

		assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
		p = ringmq_delivery_payload(d, &len);
		assert_true(len < sizeof(buf));
		memcpy(buf, p, len);
		buf[len] = '\0';
		i = atol(buf);
		assert_true(i >= 0 && i < n);
		assert_int_equal(seen[i], 0); /* stored twice otherwise */
		seen[i] = 1;
		got++;
		ids[n_ids++] = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
		if (n_ids == 500 || got == n) {
			assert_int_equal(ringmq_ack(c, ids, n_ids, NULL),
					 RINGMQ_OK);
			n_ids = 0;
		}
	}
	free(seen);
	{
		uint64_t messages = 0;

		testlib_queue_counts(c, queue, &messages, NULL, NULL, NULL);
		/* Every one acked: none left over, none stored twice. */
		assert_int_equal(messages, 0);
	}
}

/*
 * Starts b again on its old port. A connection of another program may hold
 * that port as its local end for a moment: try again for a while.
 */
static void
restart_same_port(struct harness_broker *b, const char *const *flags)
{
	for (int i = 0; i < 50; i++) {
		if (harness_start(b, flags) == 0)
			return;
		usleep(100 * 1000);
	}
	fail_msg("cannot restart the broker on %s", b->addr);
}

static void
test_broker_killed_and_restarted_while_publishing_async(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char listen[64];
	const char *again[] = { "--sync", "never", "--listen", listen, NULL };
	uint64_t producer_id;

	(void)state;
	memset(&b, 0, sizeof(b));
	memset(&g_killed, 0, sizeof(g_killed));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, sync_never), 0);
	snprintf(listen, sizeof(listen), "%s", b.addr);
	c = testlib_connect_with(b.addr, "reconnect-backoff-ms=50",
				 "reconnect-backoff-max-ms=200",
				 "request-timeout-ms=8000", NULL);
	producer_id = ringmq_client_producer_id(c);
	create_queue(c, "killed", "3", NULL);

	/* A third goes out and is partly confirmed... */
	for (long i = 0; i < KILLED / 3; i++) {
		assert_int_equal(publish_index(c, "killed", i, on_killed,
					       (void *)(intptr_t)i),
				 RINGMQ_OK);
		if (i % 500 == 0)
			(void)ringmq_client_poll(c, 0);
	}
	while (g_killed.ok == 0)
		assert_true(ringmq_client_poll(c, WAIT_MS) > 0);
	/* ...then the broker dies with batches in flight. */
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	for (long i = KILLED / 3; i < 2 * KILLED / 3; i++)
		assert_int_equal(publish_index(c, "killed", i, on_killed,
					       (void *)(intptr_t)i),
				 RINGMQ_OK);
	(void)ringmq_client_poll(c, 100);
	/* Back on the same address and data. */
	restart_same_port(&b, again);
	for (long i = 2 * KILLED / 3; i < KILLED; i++) {
		assert_int_equal(publish_index(c, "killed", i, on_killed,
					       (void *)(intptr_t)i),
				 RINGMQ_OK);
		if (i % 500 == 0)
			(void)ringmq_client_poll(c, 0);
	}
	assert_int_equal(ringmq_client_flush(c, 30000), RINGMQ_OK);
	for (long i = 0; i < KILLED; i++)
		assert_int_equal(g_killed.calls[i], 1);
	assert_int_equal(g_killed.bad, 0);
	assert_int_equal(g_killed.ok, KILLED);
	/* The reconnect resumed the producer. */
	assert_true(ringmq_client_producer_id(c) == producer_id);
	expect_each_stored_once(c, "killed", KILLED);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* ------------------------------------------------------ producer threads */

#define THREADS	   4
#define PER_THREAD 5000

struct producer_arg {
	ringmq_client *c;
	long id;
	long reported; /* written by callbacks in whichever thread polls */
	int rc;
};

static pthread_mutex_t g_report_lock = PTHREAD_MUTEX_INITIALIZER;

static void
on_thread_report(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct producer_arg *a = ctx;

	(void)c;
	pthread_mutex_lock(&g_report_lock);
	if (ringmq_publish_report_code(r) == RINGMQ_OK)
		a->reported++;
	pthread_mutex_unlock(&g_report_lock);
}

static void *
producer_main(void *arg)
{
	struct producer_arg *a = arg;

	for (long i = 0; i < PER_THREAD; i++) {
		a->rc = publish_index(a->c, "threads", a->id * PER_THREAD + i,
				      on_thread_report, a);
		if (a->rc != RINGMQ_OK) {
			fprintf(stderr, "publish: %s\n",
				ringmq_client_errmsg(a->c));
			return NULL;
		}
	}
	a->rc = ringmq_client_flush(a->c, 30000);
	if (a->rc != RINGMQ_OK)
		fprintf(stderr, "flush: %s\n", ringmq_client_errmsg(a->c));
	return NULL;
}

static volatile int g_stop_poller;

static void *
poller_main(void *arg)
{
	ringmq_client *c = arg;

	while (!g_stop_poller)
		(void)ringmq_client_poll(c, 20);
	return NULL;
}

static void
test_producer_threads_share_one_client(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	struct producer_arg args[THREADS];
	pthread_t threads[THREADS];
	pthread_t poller;
	uint64_t messages = 0;

	(void)state;
	create_queue(c, "threads", "2", NULL);
	g_stop_poller = 0;
	assert_int_equal(pthread_create(&poller, NULL, poller_main, c), 0);
	for (int t = 0; t < THREADS; t++) {
		args[t] = (struct producer_arg){ c, t, 0, -1 };
		assert_int_equal(pthread_create(&threads[t], NULL,
						producer_main, &args[t]),
				 0);
	}
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(threads[t], NULL), 0);
		assert_int_equal(args[t].rc, RINGMQ_OK);
	}
	g_stop_poller = 1;
	assert_int_equal(pthread_join(poller, NULL), 0);
	(void)ringmq_client_poll(c, 0);
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(args[t].reported, PER_THREAD);
	testlib_queue_counts(c, "threads", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, THREADS * PER_THREAD);
	expect_each_stored_once(c, "threads", THREADS * PER_THREAD);
	ringmq_client_free(c);
}

/* ---------------------------------------------------------------- wake-up */

struct waker_arg {
	ringmq_client *c;
	int delay_ms;
};

static void *
waker_main(void *arg)
{
	struct waker_arg *a = arg;

	(void)usleep((useconds_t)a->delay_ms * 1000);
	ringmq_client_wakeup(a->c);
	return NULL;
}

static long long
thread_cpu_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A 400 ms wait for a delivery that does not come lasts its full time,
 * asleep: a wait that spun (on a wake-up left unread) would use about all
 * of it. */
static void
expect_full_wait_asleep(ringmq_client *c)
{
	ringmq_delivery *d = NULL;
	long long t0 = harness_now_ms(), cpu0 = thread_cpu_ms();

	assert_int_equal(ringmq_next(c, &d, 400), RINGMQ_TIMEOUT);
	assert_true(harness_now_ms() - t0 >= 390);
	assert_true(thread_cpu_ms() - cpu0 < 200);
}

/* A wake-up ends one wait early; the wait after it lasts its full time
 * asleep, not spinning on a wake-up left unread. */
static void
test_wakeup_ends_one_wait_and_is_consumed(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	struct waker_arg a = { c, 100 };
	ringmq_delivery *d = NULL;
	uint32_t sub = 0;
	pthread_t waker;
	long long t0;

	(void)state;
	create_queue(c, "wakeup", NULL, NULL);
	assert_int_equal(ringmq_subscribe(c, &sub, "wakeup", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(pthread_create(&waker, NULL, waker_main, &a), 0);
	t0 = harness_now_ms();
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_TIMEOUT);
	assert_true(harness_now_ms() - t0 < WAIT_MS / 2);
	assert_int_equal(pthread_join(waker, NULL), 0);

	expect_full_wait_asleep(c);

	/* A wake-up with nobody waiting ends the next wait, once. */
	ringmq_client_wakeup(c);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_TIMEOUT);
	expect_full_wait_asleep(c);
	ringmq_client_free(c);
}

/* ------------------------------------------------------------- reconnect */

/* ------------------------------------------------------------- reconnect */

static void
test_subscription_restored_after_broker_restart(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d = NULL;
	char listen[64];
	const char *again[] = { "--sync", "never", "--listen", listen, NULL };
	uint32_t sub = 0;
	uint64_t old_lease;
	int code = -1;
	size_t len;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, sync_never), 0);
	snprintf(listen, sizeof(listen), "%s", b.addr);
	c = testlib_connect_with(b.addr, "reconnect-backoff-ms=50", NULL);
	create_queue(c, "restore", NULL, NULL);
	publish_sync(c, "restore", "before");
	/* A subscription ended before: the one restored gets the broker's
	 * first id on the new connection, not its own. */
	assert_int_equal(ringmq_subscribe(c, &sub, "restore", "ended", 0,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_unsubscribe(c, sub), RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(c, &sub, "restore", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	old_lease = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);

	assert_true(harness_kill(&b, SIGKILL) >= 0);
	/* The wait sees the loss once. */
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_CONNECTION_LOST);
	restart_same_port(&b, again);
	/* The next call reconnects and subscribes again: the message whose
	 * lease died with the broker comes again, under the same id. */
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	assert_int_equal(ringmq_delivery_subscription(d), sub);
	assert_memory_equal(ringmq_delivery_payload(d, &len), "before", 6);
	assert_int_equal(ringmq_client_is_connected(c), 1);
	/* The old lease is gone. */
	assert_int_equal(ringmq_ack(c, &old_lease, 1, &code),
			 RINGMQ_NOT_LEASED);
	{
		uint64_t id = ringmq_delivery_lease_id(d);

		assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	}
	ringmq_delivery_free(d);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* A consumer whose ack finds the connection gone takes next a delivery of
 * the new connection, not one the old one had queued: that one's lease
 * died with it (its ack said NOT_LEASED) and the broker delivers it again,
 * so it was worked on twice. Each message comes once more at most: the one
 * whose ack was lost. */
static void
test_deliveries_of_a_lost_connection_are_not_handed_out(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d = NULL;
	char listen[64];
	const char *again[] = { "--sync", "never", "--listen", listen, NULL };
	int seen[3] = { 0 };
	uint32_t sub;
	uint64_t id;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, sync_never), 0);
	snprintf(listen, sizeof(listen), "%s", b.addr);
	c = testlib_connect_with(b.addr, "reconnect-backoff-ms=50",
				 "request-timeout-ms=1000", NULL);
	create_queue(c, "stale", NULL, NULL);
	for (long i = 0; i < 3; i++)
		assert_int_equal(publish_index(c, "stale", i, NULL, NULL),
				 RINGMQ_OK);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(c, &sub, "stale", "g", 3,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	/* The other two came before the Pong: they are queued now. */
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);

	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_not_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
	restart_same_port(&b, again);
	for (int k = 0; k < 3; k++) {
		size_t len;
		const char *p;

		assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
		p = ringmq_delivery_payload(d, &len);
		assert_int_equal(len, 1);
		assert_true(p[0] >= '0' && p[0] <= '2');
		seen[p[0] - '0']++;
		id = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
		assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
	}
	assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static void
on_code(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	(void)c;
	*(int *)ctx = ringmq_publish_report_code(r);
}

/* With reconnect off a lost connection is final for every call: an
 * asynchronous publish of a queue already known was taken and never
 * answered, and flush spun on it until its timeout. A closed client's
 * flush says so too. */
static void
test_reconnect_off_loss_is_final_for_async_publish(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_message *m = ringmq_message_new("x", 1);
	int code = -1;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, sync_never), 0);
	c = testlib_connect_with(b.addr, "reconnect=false", "linger-ms=60000",
				 NULL);
	create_queue(c, "final", NULL, NULL);
	assert_int_equal(ringmq_publish_async(c, "final", m, on_code, &code),
			 RINGMQ_OK);
	assert_true(harness_kill(&b, SIGKILL) >= 0);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_CONNECTION_LOST);
	assert_int_equal(ringmq_publish_async(c, "final", m, on_code, &code),
			 RINGMQ_CONNECTION_LOST);
	assert_int_equal(ringmq_client_outstanding(c), 0);
	ringmq_client_close(c);
	assert_int_equal(ringmq_client_flush(c, 0), RINGMQ_CLOSED);
	ringmq_client_free(c);
	ringmq_message_free(m);
	harness_cleanup(&b);
}

static void
test_ping_detects_half_open_broker(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_delivery *d = NULL;
	long long t0;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, sync_never), 0);
	c = testlib_connect_with(b.addr, "ping-interval-ms=200",
				 "reconnect=false", NULL);
	/* A stopped broker keeps the TCP connection but answers nothing. */
	assert_int_equal(kill(b.pid, SIGSTOP), 0);
	t0 = harness_now_ms();
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_CONNECTION_LOST);
	assert_true(harness_now_ms() - t0 < 2000);
	assert_non_null(strstr(ringmq_client_errmsg(c), "ping"));
	assert_int_equal(kill(b.pid, SIGCONT), 0);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* A producer idle in a pool (it never calls into the library, so it never
 * answers the broker's ping) is closed by the broker after twice the idle
 * timeout. Its next publish goes through, stored once: sent on the dead
 * connection, then again after the reconnect, numbered so that the broker
 * would know it if the first one had arrived. A producer whose first
 * publish comes after the close asks for the queue's partitions first:
 * that request finds the connection closed before it goes out. */
static void
test_publish_after_idle_close_goes_through_once(void **state)
{
	const char *flags[] = { "--sync", "never", "--idle-timeout-ms", "200",
				NULL };
	struct harness_broker b;
	ringmq_client *c, *fresh, *observer;
	uint64_t producer_id, messages = 0;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	observer = testlib_connect(b.addr);
	c = testlib_connect(b.addr);
	fresh = testlib_connect(b.addr);
	producer_id = ringmq_client_producer_id(c);
	create_queue(observer, "pooled", "2", NULL);
	publish_sync(c, "pooled", "first");

	/* Every connection but the observer's closed (an idle one: pinged
	 * after the idle timeout, closed after another). */
	testlib_wait_stat(observer, "connections", 1);
	publish_sync(c, "pooled", "second");
	publish_sync(fresh, "pooled", "third");

	assert_true(ringmq_client_producer_id(c) == producer_id);
	testlib_queue_counts(observer, "pooled", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 3);
	ringmq_client_free(c);
	ringmq_client_free(fresh);
	ringmq_client_free(observer);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* ---------------------------------------------------- asynchronous acks */

struct acked {
	int calls;
	size_t ids;
	int ok;
	int other; /* last code that was not OK */
	int n_other;
};

static void
on_acked(ringmq_client *c, const uint64_t *ids, const int *codes, size_t n,
	 void *ctx)
{
	struct acked *a = ctx;

	(void)c;
	assert_non_null(ids);
	a->calls++;
	a->ids += n;
	for (size_t i = 0; i < n; i++) {
		if (codes[i] == RINGMQ_OK) {
			a->ok++;
		} else {
			a->other = codes[i];
			a->n_other++;
		}
	}
}

/* 2,500 acks in one call: split into requests of the broker's max batch
 * count, each answered through its callback; flush waits for them; the
 * acked messages never come again, and a stale id reports NOT_LEASED. */
static void
test_ack_async_acks_in_chunks_and_flush_waits(void **state)
{
	enum { N = 2500 };
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	static uint64_t ids[N + 1];
	struct acked a = { 0 };
	ringmq_delivery *d;
	uint32_t sub;
	uint64_t ready = 1, in_flight = 1;

	(void)state;
	create_queue(c, "acked", NULL, NULL);
	for (long i = 0; i < N; i++)
		assert_int_equal(publish_index(c, "acked", i, NULL, NULL),
				 RINGMQ_OK);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(c, &sub, "acked", "g", N,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
		ids[i] = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
	}
	ids[N] = ids[0] ^ 0xffffff; /* never leased */
	assert_int_equal(ringmq_ack_async(c, ids, N + 1, on_acked, &a),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(a.calls, 3); /* 1,000 + 1,000 + 501 */
	assert_int_equal(a.ids, N + 1);
	assert_int_equal(a.ok, N);
	assert_int_equal(a.n_other, 1);
	assert_int_equal(a.other, RINGMQ_NOT_LEASED);
	assert_int_equal(ringmq_next(c, &d, 300), RINGMQ_TIMEOUT);
	testlib_queue_counts(c, "acked", NULL, &ready, NULL, &in_flight);
	assert_int_equal(ready, 0);
	assert_int_equal(in_flight, 0);
	/* Nothing to ack: no request, no callback. */
	assert_int_equal(ringmq_ack_async(c, ids, 0, on_acked, &a), RINGMQ_OK);
	assert_int_equal(ringmq_ack_async(c, NULL, 1, on_acked, &a),
			 RINGMQ_USAGE);
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(a.calls, 3);
	ringmq_client_free(c);
}

/* Makes queue, publishes one job to it and leases it to c in group "g";
 * @return the lease id. */
static uint64_t
lease_fresh(ringmq_client *c, const char *queue)
{
	ringmq_delivery *d;
	uint32_t sub;
	uint64_t id;

	create_queue(c, queue, NULL, NULL);
	publish_sync(c, queue, "job");
	assert_int_equal(
		ringmq_subscribe(c, &sub, queue, "g", 1, RINGMQ_START_EARLIEST),
		RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	return id;
}

/* A consumer that acks asynchronously and serves its client with poll:
 * the ack's answer alone ends the wait, which runs the callback at once
 * instead of waiting out the whole timeout. */
static void
test_poll_returns_when_an_async_ack_is_answered(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	struct acked a = { 0 };
	long long start_ms;
	uint64_t id;
	int n;

	(void)state;
	id = lease_fresh(c, "polled");
	assert_int_equal(ringmq_ack_async(c, &id, 1, on_acked, &a), RINGMQ_OK);
	start_ms = harness_now_ms();
	n = ringmq_client_poll(c, WAIT_MS);
	/* The answer of a local broker takes milliseconds; half the
	 * timeout is slack for a loaded machine, not a measurement. */
	assert_true(harness_now_ms() - start_ms < WAIT_MS / 2);
	assert_int_equal(n, 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.ok, 1);
	ringmq_client_free(c);
}

/* An event loop that also takes deliveries with ringmq_next(c, 0) may
 * have it read an ack's answer, whose callback it does not run: the
 * poll timeout then says to poll at once, not to wait for the socket. */
static void
test_poll_timeout_is_zero_while_callbacks_wait(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	struct acked a = { 0 };
	ringmq_delivery *d;
	uint64_t id;

	(void)state;
	id = lease_fresh(c, "waiting-cb");
	assert_int_equal(ringmq_ack_async(c, &id, 1, on_acked, &a), RINGMQ_OK);
	for (int i = 0; i < 500 && ringmq_client_poll_timeout(c) != 0; i++) {
		(void)poll(NULL, 0, 10);
		(void)ringmq_next(c, &d, 0); /* reads the answer, no callback */
	}
	assert_int_equal(a.calls, 0);
	assert_int_equal(ringmq_client_poll_timeout(c), 0);
	assert_int_equal(ringmq_client_poll(c, 0), 1);
	assert_int_equal(a.ok, 1);
	assert_int_not_equal(ringmq_client_poll_timeout(c), 0);
	ringmq_client_free(c);
}

/* Starts a broker of its own in b, connects c with the given options,
 * and leases the one message of a fresh queue; @return the lease id. */
static uint64_t
lease_on_own_broker(struct harness_broker *b, ringmq_client **cp,
		    const char *opt1, const char *opt2)
{
	ringmq_delivery *d;
	uint32_t sub;
	uint64_t id;

	memset(b, 0, sizeof(*b));
	b->stdout_fd = -1;
	assert_int_equal(harness_start(b, sync_never), 0);
	*cp = testlib_connect_with(b->addr, opt1, opt2, NULL);
	create_queue(*cp, "one", NULL, NULL);
	publish_sync(*cp, "one", "job");
	assert_int_equal(ringmq_subscribe(*cp, &sub, "one", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(*cp, &d, WAIT_MS), RINGMQ_OK);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	return id;
}

static void
stop_own_broker(struct harness_broker *b, ringmq_client *c)
{
	assert_int_equal(kill(b->pid, SIGCONT), 0);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(b), 0);
	harness_cleanup(b);
}

/* An ack whose answer never comes (the broker is stopped) completes with
 * CONNECTION_LOST once the connection is found dead; closing the client
 * completes the ones still waiting with CLOSED. */
static void
test_ack_async_reports_lost_connection_and_close(void **state)
{
	struct harness_broker b;
	struct acked lost = { 0 }, closed = { 0 };
	ringmq_client *c;
	uint64_t id;

	(void)state;
	id = lease_on_own_broker(&b, &c, "ping-interval-ms=200",
				 "reconnect=false");
	assert_int_equal(kill(b.pid, SIGSTOP), 0);
	assert_int_equal(ringmq_ack_async(c, &id, 1, on_acked, &lost),
			 RINGMQ_OK);
	/* The keepalive finds the broker dead within a few pings. */
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(lost.calls, 1);
	assert_int_equal(lost.other, RINGMQ_CONNECTION_LOST);
	/* Not connected: refused at once, no callback. */
	assert_int_equal(ringmq_ack_async(c, &id, 1, on_acked, &closed),
			 RINGMQ_CONNECTION_LOST);
	ringmq_client_close(c);
	assert_int_equal(closed.calls, 0);
	stop_own_broker(&b, c);

	/* Closing with an ack unanswered: its callback runs with CLOSED. */
	id = lease_on_own_broker(&b, &c, NULL, NULL);
	assert_int_equal(kill(b.pid, SIGSTOP), 0);
	assert_int_equal(ringmq_ack_async(c, &id, 1, on_acked, &closed),
			 RINGMQ_OK);
	ringmq_client_close(c);
	assert_int_equal(closed.calls, 1);
	assert_int_equal(closed.other, RINGMQ_CLOSED);
	stop_own_broker(&b, c);
}

/* ------------------------------------------- callbacks, auto-touch, worker */

struct held {
	ringmq_delivery *d;
	int n;
};

static void
on_delivery(ringmq_client *c, ringmq_delivery *d, void *ctx)
{
	struct held *h = ctx;

	(void)c;
	h->n++;
	ringmq_delivery_free(h->d);
	h->d = d;
}

static void
test_callback_subscription_with_auto_touch_keeps_lease(void **state)
{
	ringmq_client *c =
		testlib_connect_with(broker.addr, "auto-touch=true", NULL);
	struct held h = { NULL, 0 };
	uint32_t sub;
	uint64_t id;
	int code = -1;
	long long t0;

	(void)state;
	create_queue(c, "touched", NULL, "400");
	publish_sync(c, "touched", "long job");
	assert_int_equal(ringmq_subscribe_cb(c, &sub, "touched", "g", 1,
					     RINGMQ_START_EARLIEST, on_delivery,
					     &h),
			 RINGMQ_OK);
	t0 = harness_now_ms();
	while (h.n == 0 && harness_now_ms() - t0 < WAIT_MS)
		(void)ringmq_client_poll(c, 100);
	assert_int_equal(h.n, 1);
	assert_int_equal(ringmq_delivery_subscription(h.d), sub);
	/* Three lease times with no call on the client at all. */
	usleep(1200 * 1000);
	id = ringmq_delivery_lease_id(h.d);
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	assert_int_equal(h.n, 1); /* never redelivered */
	ringmq_delivery_free(h.d);
	ringmq_client_free(c);
}

static void
on_delivery_ack(ringmq_client *c, ringmq_delivery *d, void *ctx)
{
	uint64_t id = ringmq_delivery_lease_id(d);

	assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
	ringmq_delivery_free(d);
	(*(int *)ctx)++;
}

/* The deliveries of a callback subscription go to its callback also when
 * a backlog makes the broker send them right behind its SubscribeOk
 * (they went to ringmq_next(), and the credit was stuck with them). */
static void
test_callback_subscription_gets_its_backlog(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_delivery *d = NULL;
	uint32_t sub;
	int n = 0;
	long long t0;

	(void)state;
	create_queue(c, "backlog", NULL, NULL);
	for (int i = 0; i < 10; i++)
		publish_sync(c, "backlog", "job");
	assert_int_equal(ringmq_subscribe_cb(c, &sub, "backlog", "g", 2,
					     RINGMQ_START_EARLIEST,
					     on_delivery_ack, &n),
			 RINGMQ_OK);
	t0 = harness_now_ms();
	while (n < 10 && harness_now_ms() - t0 < WAIT_MS)
		(void)ringmq_client_poll(c, 100);
	assert_int_equal(n, 10);
	assert_int_equal(ringmq_next(c, &d, 0), RINGMQ_TIMEOUT);
	ringmq_client_free(c);
}

struct job_log {
	int runs;
	uint32_t counts[8];
	long long at_ms[8];
	int stop_after_ok; /* stop the worker at the first success */
};

static int
flaky_job(ringmq_client *c, const ringmq_delivery *d, void *ctx)
{
	struct job_log *l = ctx;
	size_t len;
	const char *p = ringmq_delivery_payload(d, &len);

	if (l->runs < 8) {
		l->counts[l->runs] = ringmq_delivery_delivery_count(d);
		l->at_ms[l->runs] = harness_now_ms();
	}
	l->runs++;
	if (len == 4 && memcmp(p, "stop", 4) == 0) {
		ringmq_worker_stop(c);
		return 0;
	}
	/* Fails twice, then succeeds. */
	if (ringmq_delivery_delivery_count(d) < 3)
		return 1;
	if (l->stop_after_ok)
		ringmq_worker_stop(c);
	return 0;
}

static void
test_worker_nacks_with_backoff_then_acks(void **state)
{
	ringmq_client *c =
		testlib_connect_with(broker.addr, "nack-backoff-ms=150",
				     "nack-backoff-max-ms=10000", NULL);
	struct job_log l = { 0 };
	uint64_t messages = 1;

	(void)state;
	create_queue(c, "flaky", NULL, NULL);
	publish_sync(c, "flaky", "job");
	l.stop_after_ok = 1;
	assert_int_equal(ringmq_worker_run(c, "flaky", "w", 1, flaky_job, &l),
			 RINGMQ_OK);
	assert_int_equal(l.runs, 3);
	assert_int_equal(l.counts[0], 1);
	assert_int_equal(l.counts[1], 2);
	assert_int_equal(l.counts[2], 3);
	/* 150 ms after the first failure, 300 ms after the second. */
	assert_true(l.at_ms[1] - l.at_ms[0] >= 140);
	assert_true(l.at_ms[2] - l.at_ms[1] >= 290);
	testlib_queue_counts(c, "flaky", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 0); /* acked */
	ringmq_client_free(c);
}

static void
test_worker_releases_prefetched_jobs_on_stop(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	ringmq_client *other;
	struct job_log l = { 0 };
	uint64_t ready = 0, in_flight = 9;
	uint32_t sub;

	(void)state;
	create_queue(c, "prefetch", NULL, NULL);
	publish_sync(c, "prefetch", "stop");
	for (int i = 0; i < 4; i++)
		publish_sync(c, "prefetch", "later");
	/* Credit 5: the four later jobs are delivered before it stops. */
	assert_int_equal(
		ringmq_worker_run(c, "prefetch", "w", 5, flaky_job, &l),
		RINGMQ_OK);
	assert_int_equal(l.runs, 1);
	testlib_queue_counts(c, "prefetch", NULL, &ready, NULL, &in_flight);
	assert_int_equal(ready, 4);
	assert_int_equal(in_flight, 0);
	/* Released, not failed: their delivery count did not grow. */
	other = testlib_connect_with(broker.addr, NULL);
	assert_int_equal(ringmq_subscribe(other, &sub, "prefetch", "w", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 4; i++) {
		ringmq_delivery *d = NULL;

		assert_int_equal(ringmq_next(other, &d, WAIT_MS), RINGMQ_OK);
		assert_int_equal(ringmq_delivery_delivery_count(d), 1);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(other);
	ringmq_client_free(c);
}

/* ---------------------------------------------------------------- examples */

/* Runs argv; returns its exit code and its stdout in out (NUL-ended). */
static int
run_program(const char *const *argv, char *out, size_t outlen)
{
	long long deadline = harness_now_ms() + 30000;
	int fds[2];
	size_t used = 0;
	int status = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n = read(fds[0], out + used, outlen - 1 - used);

		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == outlen - 1 || harness_now_ms() > deadline)
			break;
	}
	out[used] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ringmq-bench against a real broker, in each mode: every message is
 * accounted for and the RESULT line says so. */
static void
test_bench_accounts_for_every_message_in_each_mode(void **state)
{
	static const char *const runs[][11] = {
		{ "--mode", "publish", "--messages", "20000", NULL },
		{ "--mode", "e2e", "--messages", "20000", "--partitions", "4",
		  NULL },
		{ "--mode", "e2e", "--messages", "20000", "--connections", "40",
		  "--ack", "async", "--window-per", "connection", NULL },
		{ "--mode", "latency", "--messages", "300", NULL },
		{ "--mode", "e2e", "--messages", "20000", "--connections", "40",
		  NULL },
	};
	static char out[16384];

	(void)state;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		const char *argv[24] = { harness_program("RINGMQ_BENCH"),
					 "--server",
					 broker.addr,
					 "--quiet",
					 "--max-secs",
					 "60" };
		size_t n = 6;
		const char *result;

		for (size_t k = 0; runs[i][k] != NULL; k++) {
			assert_true(n + 1 < sizeof(argv) / sizeof(argv[0]));
			argv[n++] = runs[i][k];
		}
		argv[n] = NULL;
		assert_int_equal(run_program(argv, out, sizeof(out)), 0);
		result = strstr(out, "RESULT ");
		assert_non_null(result);
		assert_non_null(strstr(result, " dups=0 missing=0 "));
		assert_non_null(strstr(result, " complete=1"));
		/* Latency mode acks asynchronously unless told. */
		assert_non_null(strstr(result, i == 2 || i == 3
						       ? " ack=async "
						       : " ack=wait "));
		assert_non_null(
			strstr(result, i == 2 ? " window_per=connection "
					      : " window_per=thread "));
	}
	/* A bad flag is a usage error. */
	{
		const char *argv[] = { harness_program("RINGMQ_BENCH"),
				       "--server",
				       broker.addr,
				       "--ack",
				       "maybe",
				       NULL };

		assert_int_equal(run_program(argv, out, sizeof(out)), 1);
	}
}

static void
test_examples_producer_and_worker_run(void **state)
{
	ringmq_client *c = testlib_connect_with(broker.addr, NULL);
	const char *producer[] = { harness_program("RINGMQ_EXAMPLE_PRODUCER"),
				   broker.addr, "example", "10", NULL };
	const char *worker[] = { harness_program("RINGMQ_EXAMPLE_WORKER"),
				 broker.addr,
				 "example",
				 "workers",
				 "10",
				 NULL };
	char out[4096];
	uint64_t messages = 1;

	(void)state;
	create_queue(c, "example", NULL, NULL);
	assert_int_equal(run_program(producer, out, sizeof(out)), 0);
	assert_string_equal(out, "confirmed 10, failed 0\n");
	assert_int_equal(run_program(worker, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "job 0\n"));
	assert_non_null(strstr(out, "job 9\n"));
	testlib_queue_counts(c, "example", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 0);
	ringmq_client_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_async_publish_100k_every_callback_once),
		cmocka_unit_test(
			test_poll_timeout_follows_linger_and_keepalive),
		cmocka_unit_test(
			test_poll_timeout_is_zero_while_callbacks_wait),
		cmocka_unit_test(
			test_publish_over_the_header_limit_is_refused_locally),
		cmocka_unit_test(
			test_async_publish_would_block_when_buffer_full),
		cmocka_unit_test(
			test_async_publish_unknown_queue_fails_at_once),
		cmocka_unit_test(
			test_async_publish_keyed_partition_agrees_with_broker),
		cmocka_unit_test(
			test_async_publish_copies_key_headers_and_dedup_id),
		cmocka_unit_test(
			test_async_publish_keyless_sticks_to_a_partition_per_16k),
		cmocka_unit_test(test_ack_async_acks_in_chunks_and_flush_waits),
		cmocka_unit_test(
			test_ack_async_reports_lost_connection_and_close),
		cmocka_unit_test(
			test_poll_returns_when_an_async_ack_is_answered),
		cmocka_unit_test(
			test_broker_killed_and_restarted_while_publishing_async),
		cmocka_unit_test(test_producer_threads_share_one_client),
		cmocka_unit_test(test_wakeup_ends_one_wait_and_is_consumed),
		cmocka_unit_test(
			test_subscription_restored_after_broker_restart),
		cmocka_unit_test(
			test_deliveries_of_a_lost_connection_are_not_handed_out),
		cmocka_unit_test(test_ping_detects_half_open_broker),
		cmocka_unit_test(
			test_publish_after_idle_close_goes_through_once),
		cmocka_unit_test(
			test_reconnect_off_loss_is_final_for_async_publish),
		cmocka_unit_test(
			test_callback_subscription_with_auto_touch_keeps_lease),
		cmocka_unit_test(test_worker_nacks_with_backoff_then_acks),
		cmocka_unit_test(test_worker_releases_prefetched_jobs_on_stop),
		cmocka_unit_test(test_callback_subscription_gets_its_backlog),
		cmocka_unit_test(test_examples_producer_and_worker_run),
		cmocka_unit_test(
			test_metadata_outside_a_cluster_names_this_broker),
		cmocka_unit_test(
			test_bench_accounts_for_every_message_in_each_mode),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_broker, teardown_broker);
}
