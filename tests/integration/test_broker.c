/*
 * Integration tests of ringmqd: a real broker process on 127.0.0.1, port 0,
 * a temporary data directory, driven through libringmq (and raw sockets
 * for malformed input), stopped by PID.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "testlib.h"

#define WAIT_MS	 5000 /* longest wait for an expected delivery */
#define QUIET_MS 300  /* how long "nothing more arrives" is watched */

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

static void
create_queue(ringmq_client *c, const char *name, uint32_t partitions)
{
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	char num[16];

	snprintf(num, sizeof(num), "%u", partitions);
	assert_int_equal(ringmq_queue_opts_set(qo, "partitions", num, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, name, qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
}

/* Publishes "PREFIX-i" for i in [0, n); checks offsets when one
 * partition. */
static void
publish_n(ringmq_client *c, const char *queue, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "%s-%d", prefix, i);
		ringmq_message *m = ringmq_message_new(buf, (size_t)len);

		assert_non_null(m);
		assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
}

/* The payload of d as a NUL-terminated string in buf. */
static const char *
payload_str(const ringmq_delivery *d, char *buf, size_t len)
{
	size_t n;
	const void *p = ringmq_delivery_payload(d, &n);

	assert_true(n < len);
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static ringmq_delivery *
next_delivery(ringmq_client *c, int timeout_ms)
{
	ringmq_delivery *d = NULL;
	int rc = ringmq_next(c, &d, timeout_ms);

	assert_int_equal(rc, RINGMQ_OK);
	return d;
}

static void
expect_nothing(ringmq_client *c)
{
	ringmq_delivery *d = NULL;

	assert_int_equal(ringmq_next(c, &d, QUIET_MS), RINGMQ_TIMEOUT);
	assert_null(d);
}

static uint64_t
ack_one(ringmq_client *c, ringmq_delivery *d)
{
	uint64_t id = ringmq_delivery_lease_id(d);
	int code = -1;

	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	return id;
}

/* ------------------------------------------------------------------ */

static void
test_publish_consume_ack(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	uint32_t sub;
	char buf[64];

	(void)state;
	create_queue(c, "basic", 1);
	publish_n(c, "basic", "job", 3);
	assert_int_equal(ringmq_subscribe(c, &sub, "basic", "workers", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 3; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);
		char want[16];

		snprintf(want, sizeof(want), "job-%d", i);
		assert_string_equal(payload_str(d, buf, sizeof(buf)), want);
		assert_int_equal(ringmq_delivery_offset(d), (uint64_t)i);
		assert_int_equal(ringmq_delivery_delivery_count(d), 1);
		assert_int_equal(ringmq_delivery_subscription(d), sub);
		assert_true(ringmq_delivery_lease_remaining_ms(d) > 0);
		ack_one(c, d);
		ringmq_delivery_free(d);
	}
	expect_nothing(c);
	ringmq_client_free(c);

	/* Acked messages never come back to the group. */
	c = testlib_connect(broker.addr);
	assert_int_equal(ringmq_subscribe(c, &sub, "basic", "workers", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	expect_nothing(c);
	ringmq_client_free(c);
}

static void
test_ack_twice_is_ok_and_unknown_lease_not_leased(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_client *other = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint32_t sub;
	uint64_t id, bogus = 0x7fffffffffffull;
	int code;

	(void)state;
	create_queue(c, "leases", 1);
	publish_n(c, "leases", "x", 2);
	assert_int_equal(ringmq_subscribe(c, &sub, "leases", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);

	/* Another connection cannot settle it. */
	assert_int_equal(ringmq_ack(other, &id, 1, &code), RINGMQ_NOT_LEASED);
	assert_int_equal(code, RINGMQ_NOT_LEASED);
	/* A lease id never issued. */
	assert_int_equal(ringmq_ack(c, &bogus, 1, &code), RINGMQ_NOT_LEASED);
	assert_int_equal(code, RINGMQ_NOT_LEASED);
	assert_int_equal(ringmq_release(c, &bogus, 1, &code),
			 RINGMQ_NOT_LEASED);
	/* Ack, then ack again: OK both times; release after ack: gone. */
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	assert_int_equal(ringmq_release(c, &id, 1, &code), RINGMQ_NOT_LEASED);
	/* An ack after a nack or a release is not an ack: NOT_LEASED. */
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack(c, &id, 1, 0, &code), RINGMQ_OK);
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_NOT_LEASED);
	assert_int_equal(code, RINGMQ_NOT_LEASED);
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_release(c, &id, 1, &code), RINGMQ_OK);
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_NOT_LEASED);
	assert_int_equal(code, RINGMQ_NOT_LEASED);
	d = next_delivery(c, WAIT_MS); /* the message is still to do */
	(void)ack_one(c, d);
	ringmq_delivery_free(d);
	ringmq_client_free(other);
	ringmq_client_free(c);
}

static void
test_touch_extends_within_max_lease(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	ringmq_delivery *d;
	uint64_t id, remaining = 0;
	uint32_t sub;
	int code;

	(void)state;
	assert_int_equal(ringmq_queue_opts_set(qo, "lease-ms", "1000", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "touchy", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	publish_n(c, "touchy", "t", 1);
	assert_int_equal(ringmq_subscribe(c, &sub, "touchy", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	d = next_delivery(c, WAIT_MS);
	id = ringmq_delivery_lease_id(d);
	assert_true(ringmq_delivery_lease_remaining_ms(d) <= 1000);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_touch(c, &id, 1, 5000, &code, &remaining),
			 RINGMQ_OK);
	assert_int_equal(code, RINGMQ_OK);
	assert_true(remaining > 4000 && remaining <= 5000);
	assert_int_equal(ringmq_ack(c, &id, 1, &code), RINGMQ_OK);
	ringmq_client_free(c);
}

static void
test_first_deliveries_in_offset_order(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	uint32_t sub;
	uint64_t last = 0;

	(void)state;
	create_queue(c, "ordered", 1);
	publish_n(c, "ordered", "o", 50);
	assert_int_equal(ringmq_subscribe(c, &sub, "ordered", "g", 7,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 50; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);
		uint64_t off = ringmq_delivery_offset(d);

		if (i > 0)
			assert_true(off == last + 1);
		else
			assert_int_equal(off, 0);
		last = off;
		ack_one(c, d);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(c);
}

/* Consumes until n deliveries arrived; records payload numbers in seen. */
static void
consume_into(ringmq_client *c, int n, int *seen, int max, int do_ack)
{
	char buf[64];

	for (int i = 0; i < n; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);
		const char *p = payload_str(d, buf, sizeof(buf));
		int k = atoi(strrchr(p, '-') + 1);

		assert_true(k >= 0 && k < max);
		seen[k]++;
		if (do_ack)
			ack_one(c, d);
		ringmq_delivery_free(d);
	}
}

static void
test_two_groups_each_get_every_message(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
	int seen_a[20] = { 0 }, seen_b[20] = { 0 };
	uint32_t sub;

	(void)state;
	create_queue(a, "fanout", 3);
	assert_int_equal(ringmq_subscribe(a, &sub, "fanout", "ga", 5,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(b, &sub, "fanout", "gb", 5,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	publish_n(a, "fanout", "f", 20);
	consume_into(a, 20, seen_a, 20, 1);
	consume_into(b, 20, seen_b, 20, 1);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(seen_a[i], 1);
		assert_int_equal(seen_b[i], 1);
	}
	expect_nothing(a);
	expect_nothing(b);
	ringmq_client_free(a);
	ringmq_client_free(b);
}

static void
test_competing_consumers_split_one_partition(void **state)
{
	ringmq_client *p = testlib_connect(broker.addr);
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b = testlib_connect(broker.addr);
	int seen[40] = { 0 };
	uint32_t sub;
	int got_a = 0, got_b = 0;
	char buf[64];

	(void)state;
	create_queue(p, "compete", 1);
	assert_int_equal(ringmq_subscribe(a, &sub, "compete", "g", 4,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(b, &sub, "compete", "g", 4,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	publish_n(p, "compete", "c", 40);
	/* Alternate so neither holds the other up; each acks what it gets. */
	while (got_a + got_b < 40) {
		ringmq_client *who[2] = { a, b };

		for (int w = 0; w < 2; w++) {
			ringmq_delivery *d = NULL;

			if (ringmq_next(who[w], &d, 50) != RINGMQ_OK)
				continue;
			seen[atoi(
				strrchr(payload_str(d, buf, sizeof(buf)), '-') +
				1)]++;
			ack_one(who[w], d);
			ringmq_delivery_free(d);
			if (w == 0)
				got_a++;
			else
				got_b++;
		}
	}
	for (int i = 0; i < 40; i++)
		assert_int_equal(seen[i], 1);
	assert_true(got_a > 0 && got_b > 0);
	expect_nothing(a);
	expect_nothing(b);
	ringmq_client_free(p);
	ringmq_client_free(a);
	ringmq_client_free(b);
}

static void
test_credit_is_never_exceeded(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_delivery *held[3];
	ringmq_delivery *d;
	uint32_t sub;

	(void)state;
	create_queue(c, "credit", 1);
	publish_n(c, "credit", "k", 10);
	assert_int_equal(ringmq_subscribe(c, &sub, "credit", "g", 3,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 3; i++)
		held[i] = next_delivery(c, WAIT_MS);
	expect_nothing(c); /* three leased: no fourth */
	ack_one(c, held[0]);
	d = next_delivery(c, WAIT_MS); /* a slot freed: exactly one more */
	expect_nothing(c);
	/* Credit 0 pauses even with slots free. */
	assert_int_equal(ringmq_subscription_set_credit(c, sub, 0), RINGMQ_OK);
	ack_one(c, held[1]);
	expect_nothing(c);
	assert_int_equal(ringmq_subscription_set_credit(c, sub, 5), RINGMQ_OK);
	for (int i = 0; i < 3; i++) { /* 2 held, 5 allowed: 3 more */
		ringmq_delivery *x = next_delivery(c, WAIT_MS);

		ringmq_delivery_free(x);
	}
	expect_nothing(c);
	ringmq_delivery_free(held[0]);
	ringmq_delivery_free(held[1]);
	ringmq_delivery_free(held[2]);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
}

static void
test_disconnect_redelivers_with_count_2_release_does_not(void **state)
{
	ringmq_client *a = testlib_connect(broker.addr);
	ringmq_client *b;
	ringmq_delivery *d;
	uint32_t sub;
	uint64_t id;
	int code;

	(void)state;
	create_queue(a, "crashy", 1);
	publish_n(a, "crashy", "w", 1);
	assert_int_equal(ringmq_subscribe(a, &sub, "crashy", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	d = next_delivery(a, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 1);
	ringmq_delivery_free(d);
	ringmq_client_free(a); /* the worker dies holding the lease */

	b = testlib_connect(broker.addr);
	assert_int_equal(ringmq_subscribe(b, &sub, "crashy", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	d = next_delivery(b, WAIT_MS);
	assert_int_equal(ringmq_delivery_offset(d), 0);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	/* Release: ready again at once, not a failure. */
	assert_int_equal(ringmq_release(b, &id, 1, &code), RINGMQ_OK);
	d = next_delivery(b, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 2);
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	/* Nack: a failure, so the next delivery counts 3. */
	assert_int_equal(ringmq_nack(b, &id, 1, 0, &code), RINGMQ_OK);
	d = next_delivery(b, WAIT_MS);
	assert_int_equal(ringmq_delivery_delivery_count(d), 3);
	ack_one(b, d);
	ringmq_delivery_free(d);
	ringmq_client_free(b);
}

static void
test_queue_without_group_keeps_messages(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	int seen[5] = { 0 };
	uint32_t sub;

	(void)state;
	create_queue(c, "waiting", 2);
	publish_n(c, "waiting", "early", 5);
	ringmq_client_free(c);
	c = testlib_connect(broker.addr);
	assert_int_equal(ringmq_subscribe(c, &sub, "waiting", "late", 5,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	consume_into(c, 5, seen, 5, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(seen[i], 1);
	ringmq_client_free(c);
}

static void
test_latest_group_skips_earlier_messages(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_delivery *d;
	uint32_t sub;
	char buf[64];

	(void)state;
	create_queue(c, "tail", 1);
	publish_n(c, "tail", "old", 3);
	assert_int_equal(
		ringmq_subscribe(c, &sub, "tail", "g", 5, RINGMQ_START_LATEST),
		RINGMQ_OK);
	expect_nothing(c);
	/* The only group skipped them, as acked: they are gone, for peek
	 * too. */
	{
		ringmq_stored_messages *l = NULL;

		assert_int_equal(ringmq_peek_get(c, &l, "tail", 0, 0, 10),
				 RINGMQ_OK);
		assert_int_equal(ringmq_stored_messages_count(l), 0);
		ringmq_stored_messages_free(l);
	}
	publish_n(c, "tail", "new", 1);
	d = next_delivery(c, WAIT_MS);
	assert_string_equal(payload_str(d, buf, sizeof(buf)), "new-0");
	assert_int_equal(ringmq_delivery_offset(d), 3);
	ack_one(c, d);
	ringmq_delivery_free(d);
	ringmq_client_free(c);
}

static void
test_errors_for_unknown_queue_and_bad_names(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_message *m = ringmq_message_new("x", 1);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	uint32_t sub;

	(void)state;
	assert_int_equal(ringmq_publish(c, "nope", m, NULL, NULL, NULL),
			 RINGMQ_QUEUE_NOT_FOUND);
	assert_int_equal(ringmq_subscribe(c, &sub, "nope", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_QUEUE_NOT_FOUND);
	create_queue(c, "dup", 2);
	create_queue(c, "dup", 2); /* same settings: fine */
	assert_int_equal(ringmq_queue_opts_set(qo, "partitions", "3", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "dup", qo),
			 RINGMQ_QUEUE_EXISTS);
	/* The ringmq- header prefix is reserved (the library refuses it
	 * before sending; the broker checks it too). */
	assert_int_equal(
		ringmq_message_add_header(m, "ringmq-source-queue", "x", 1),
		RINGMQ_USAGE);
	/* Headers are a map: a name once (the broker checks it too). */
	assert_int_equal(ringmq_message_add_header(m, "h", "1", 1), RINGMQ_OK);
	assert_int_equal(ringmq_message_add_header(m, "h", "2", 1),
			 RINGMQ_USAGE);
	ringmq_queue_opts_free(qo);
	ringmq_message_free(m);
	ringmq_client_free(c);
}

static void
test_keyed_messages_follow_the_hash(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	uint32_t first = 0, part = 0;

	(void)state;
	create_queue(c, "keyed", 8);
	for (int i = 0; i < 5; i++) {
		ringmq_message *m = ringmq_message_new("v", 1);

		ringmq_message_set_key(m, "customer-42", 11);
		assert_int_equal(
			ringmq_publish(c, "keyed", m, &part, NULL, NULL),
			RINGMQ_OK);
		if (i == 0)
			first = part;
		assert_int_equal(part, first);
		ringmq_message_free(m);
	}
	ringmq_client_free(c);
}

/* Publishes message m alone to queue over raw connection fd; @return
 * the code of its result. *part receives its partition (may be NULL). */
static int
raw_publish_one(int fd, const char *queue, Ringmq__Message *m, uint32_t *part)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *r;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	int code;

	p.queue = (char *)queue;
	p.n_messages = 1;
	p.messages = &m;
	f.has_request_id = 1;
	f.request_id = 5;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	assert_int_equal(r->publish_ok->n_results, 1);
	code = r->publish_ok->results[0]->code;
	if (part != NULL)
		*part = r->publish_ok->results[0]->partition;
	ringmq__frame__free_unpacked(r, NULL);
	return code;
}

/* An empty key is no key (it is stored and read back as none): keyless
 * messages the broker routes go round-robin, not to the hash of "". */
static void
test_empty_key_routes_as_no_key(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	uint32_t parts[4];
	int fd;

	(void)state;
	create_queue(c, "emptykey", 8);
	ringmq_client_free(c);
	fd = testlib_raw_open(broker.port);
	assert_true(testlib_raw_hello(fd, 0) != 0);
	m.payload.data = (uint8_t *)"v";
	m.payload.len = 1;
	m.has_key = 1; /* key.len 0 */
	for (int i = 0; i < 4; i++)
		assert_int_equal(raw_publish_one(fd, "emptykey", &m, &parts[i]),
				 RINGMQ__ERROR_CODE__OK);
	close(fd);
	assert_false(parts[0] == parts[1] && parts[1] == parts[2] &&
		     parts[2] == parts[3]);
}

/* A message naming one header twice is refused: headers are a map. */
static void
test_duplicate_header_names_are_refused(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Header h[2] = { RINGMQ__HEADER__INIT, RINGMQ__HEADER__INIT };
	Ringmq__Header *hp[2] = { &h[0], &h[1] };
	int fd;

	(void)state;
	create_queue(c, "hdrs", 1);
	ringmq_client_free(c);
	fd = testlib_raw_open(broker.port);
	assert_true(testlib_raw_hello(fd, 0) != 0);
	for (int i = 0; i < 2; i++) {
		h[i].name = (char *)"k";
		h[i].value.data = (uint8_t *)"v";
		h[i].value.len = 1;
	}
	m.payload.data = (uint8_t *)"x";
	m.payload.len = 1;
	m.n_headers = 2;
	m.headers = hp;
	assert_int_equal(raw_publish_one(fd, "hdrs", &m, NULL),
			 RINGMQ__ERROR_CODE__INVALID_ARGUMENT);
	close(fd);
}

/* ----------------------------------------------------- raw sockets */

static int
raw_connect(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)broker.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads until the peer closes (or 5 s); @return bytes read. */
static size_t
raw_read_until_close(int fd, uint8_t *buf, size_t cap)
{
	long long deadline = harness_now_ms() + WAIT_MS;
	size_t n = 0;

	while (harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, buf + n, cap - n);
		if (r <= 0)
			return n;
		n += (size_t)r;
		if (n == cap)
			return n;
	}
	fail_msg("connection not closed by the broker");
	return n;
}

static void
test_bad_frames_get_error_and_close_others_unharmed(void **state)
{
	static const uint8_t garbage[] = { 0,	 0,    0,    5,	  0xff,
					   0xff, 0xff, 0xff, 0xff };
	static const uint8_t oversized[] = { 0x7f, 0xff, 0xff, 0xff };
	/* A valid Frame with a Ping (field 12, empty) but no hello first. */
	static const uint8_t not_hello[] = { 0, 0, 0, 2, 0x62, 0x00 };
	const uint8_t *inputs[] = { garbage, oversized, not_hello };
	size_t lens[] = { sizeof(garbage), sizeof(oversized),
			  sizeof(not_hello) };
	ringmq_client *c = testlib_connect(broker.addr);
	uint8_t buf[4096];

	(void)state;
	create_queue(c, "survivor", 1);
	for (int i = 0; i < 3; i++) {
		int fd = raw_connect();
		size_t n;

		assert_int_equal(write(fd, inputs[i], lens[i]),
				 (ssize_t)lens[i]);
		n = raw_read_until_close(fd, buf, sizeof(buf));
		/* An Error frame came back before the close: a length prefix
		 * and a Frame whose body is field 15 (0x7a). */
		assert_true(n > 4);
		assert_int_equal(buf[4], 0x7a);
		close(fd);
	}
	/* A peer vanishing mid-frame harms nothing either. */
	int fd = raw_connect();
	assert_int_equal(write(fd, "\0\0\1\0abc", 7), 7);
	close(fd);
	/* The broker still serves the good connection. */
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	publish_n(c, "survivor", "s", 1);
	ringmq_client_free(c);
}

/* -------------------------------------------------------- restarts */

/* Starts a broker of the test's own (flags may be NULL) and connects a
 * client to it; *o gets the options, to connect again after a restart. */
static ringmq_client *
own_broker(struct harness_broker *b, const char *const *flags, ringmq_opts **o)
{
	ringmq_client *c;
	char err[256];

	memset(b, 0, sizeof(*b));
	b->stdout_fd = -1;
	assert_int_equal(harness_start(b, flags), 0);
	*o = ringmq_opts_new();
	assert_int_equal(
		ringmq_opts_set(*o, "server", b->addr, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, *o, err, sizeof(err)),
			 RINGMQ_OK);
	return c;
}

/* Connects again after a restart of b. */
static ringmq_client *
reconnect(const struct harness_broker *b, ringmq_opts *o)
{
	ringmq_client *c;
	char err[256];

	assert_int_equal(
		ringmq_opts_set(o, "server", b->addr, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	return c;
}

/* Requests pipelined after a create, before its answer, find what it
 * creates: each waits for the create's commit. */
static void
test_pipelined_create_then_use(void **state)
{
	int fd = testlib_raw_open(broker.port);
	Ringmq__Frame f[4] = { RINGMQ__FRAME__INIT, RINGMQ__FRAME__INIT,
			       RINGMQ__FRAME__INIT, RINGMQ__FRAME__INIT };
	Ringmq__QueueCreate qc = RINGMQ__QUEUE_CREATE__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT, *mp = &m;
	Ringmq__GroupCreate gc = RINGMQ__GROUP_CREATE__INIT;
	Ringmq__GroupDescribe gd = RINGMQ__GROUP_DESCRIBE__INIT;
	uint8_t buf[1024];
	size_t n = 0;

	(void)state;
	(void)testlib_raw_hello(fd, 0);
	qc.name = (char *)"piped";
	m.payload.data = (uint8_t *)"x";
	m.payload.len = 1;
	pub.queue = (char *)"piped";
	pub.n_messages = 1;
	pub.messages = &mp;
	gc.queue = gd.queue = (char *)"piped";
	gc.group = gd.group = (char *)"g";
	f[0].body_case = RINGMQ__FRAME__BODY_QUEUE_CREATE;
	f[0].queue_create = &qc;
	f[1].body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f[1].publish = &pub;
	f[2].body_case = RINGMQ__FRAME__BODY_GROUP_CREATE;
	f[2].group_create = &gc;
	f[3].body_case = RINGMQ__FRAME__BODY_GROUP_DESCRIBE;
	f[3].group_describe = &gd;
	/* All four in one write, so none waits for an answer. */
	for (int i = 0; i < 4; i++) {
		size_t len;

		f[i].has_request_id = 1;
		f[i].request_id = 10 + (uint64_t)i;
		len = ringmq__frame__get_packed_size(&f[i]);
		buf[n] = (uint8_t)(len >> 24);
		buf[n + 1] = (uint8_t)(len >> 16);
		buf[n + 2] = (uint8_t)(len >> 8);
		buf[n + 3] = (uint8_t)len;
		n += 4 + ringmq__frame__pack(&f[i], buf + n + 4);
	}
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	for (int i = 0; i < 4; i++) {
		Ringmq__Frame *r = testlib_raw_recv(fd);
		static const int want[4] = {
			RINGMQ__FRAME__BODY_DONE,
			RINGMQ__FRAME__BODY_PUBLISH_OK,
			RINGMQ__FRAME__BODY_DONE,
			RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK
		};

		if (r->body_case == RINGMQ__FRAME__BODY_ERROR)
			fprintf(stderr, "request %llu: %s\n",
				(unsigned long long)r->request_id,
				r->error->message);
		assert_int_equal(r->request_id, 10 + (uint64_t)i);
		assert_int_equal(r->body_case, want[i]);
		if (i == 1)
			assert_int_equal(r->publish_ok->results[0]->code,
					 RINGMQ__ERROR_CODE__OK);
		ringmq__frame__free_unpacked(r, NULL);
	}
	close(fd);
}

static void
test_kill9_keeps_confirmed_and_acked(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o;
	uint32_t sub;
	char buf[64];
	int seen[100] = { 0 };

	(void)state;
	c = own_broker(&b, NULL, &o);
	create_queue(c, "durable", 2);
	publish_n(c, "durable", "d", 100);
	/* Ack the first 30 deliveries, hold 5 more leased. */
	assert_int_equal(ringmq_subscribe(c, &sub, "durable", "g", 35,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 35; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);
		int k = atoi(strrchr(payload_str(d, buf, sizeof(buf)), '-') +
			     1);

		if (i < 30) {
			ack_one(c, d);
			seen[k] = 1; /* acked: must never come back */
		}
		ringmq_delivery_free(d);
	}
	/* Killed while the 5 leases are held (a disconnect first would
	 * count as a failure). */
	assert_int_equal(harness_kill(&b, SIGKILL) >= 0, 1);
	ringmq_client_free(c);

	assert_int_equal(harness_start(&b, NULL), 0);
	c = reconnect(&b, o);
	ringmq_queue_list *ql = NULL;
	assert_int_equal(ringmq_queue_list_get(c, &ql), RINGMQ_OK);
	assert_int_equal(ringmq_queue_list_count(ql), 1);
	assert_int_equal(ringmq_queue_list_partitions(ql, 0), 2);
	assert_int_equal(ringmq_queue_list_ready(ql, 0), 70);
	ringmq_queue_list_free(ql);
	assert_int_equal(ringmq_subscribe(c, &sub, "durable", "g", 100,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 70; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);
		int k = atoi(strrchr(payload_str(d, buf, sizeof(buf)), '-') +
			     1);

		assert_int_equal(seen[k], 0);
		seen[k] = 1;
		/* A restart releases leases without counting a failure. */
		assert_int_equal(ringmq_delivery_delivery_count(d), 1);
		ack_one(c, d);
		ringmq_delivery_free(d);
	}
	expect_nothing(c);
	for (int i = 0; i < 100; i++)
		assert_int_equal(seen[i], 1);
	ringmq_client_free(c);

	/* Everything acked; after a restart offsets still go forward. */
	assert_int_equal(harness_stop(&b), 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	c = reconnect(&b, o);
	for (int i = 0; i < 4; i++) {
		ringmq_message *m = ringmq_message_new("after", 5);
		uint32_t part;
		uint64_t off;

		assert_int_equal(
			ringmq_publish(c, "durable", m, &part, &off, NULL),
			RINGMQ_OK);
		assert_true(off >= 50); /* 100 over 2 partitions before */
		ringmq_message_free(m);
	}
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static void
test_sigterm_says_goodbye_and_exits_0(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o;
	ringmq_delivery *d = NULL;

	(void)state;
	c = own_broker(&b, NULL, &o);
	kill(b.pid, SIGTERM);
	/* The client sees the connection end, not a hang. */
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_CONNECTION_LOST);
	assert_int_equal(harness_stop(&b), 0);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	harness_cleanup(&b);
}

/*
 * SIGTERM while a peer has a flood of publishes in flight that it has not
 * read answers for: every publish the broker stored is confirmed, the
 * goodbye arrives, and the connection ends with a FIN, not a reset that
 * would drop answers the kernel had not sent yet.
 */
static void
test_sigterm_confirms_what_it_stored_to_a_flooding_peer(void **state)
{
	enum { FRAMES = 100000 };
	struct harness_broker b;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT, *mp = &m;
	ringmq_queue_list *ql = NULL;
	ringmq_client *c;
	ringmq_opts *o;
	uint8_t *out, *in = NULL;
	size_t one, out_len = 0, sent = 0, in_len = 0, in_cap = 0, pos = 0;
	uint64_t confirmed = 0;
	int fd, is_goodbye = 0, is_reset = 0, rcvbuf = 4096;
	long long deadline;

	(void)state;
	c = own_broker(&b, NULL, &o);
	create_queue(c, "flood", 1);
	ringmq_client_free(c);

	/* FRAMES publishes of one message each, packed back to back. */
	m.payload.data = (uint8_t *)"x";
	m.payload.len = 1;
	pub.queue = (char *)"flood";
	pub.n_messages = 1;
	pub.messages = &mp;
	f.has_request_id = 1;
	f.request_id = 1u << 20; /* ids of one varint size: frames alike */
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	one = ringmq__frame__get_packed_size(&f);
	out = malloc(FRAMES * (one + 4));
	assert_non_null(out);
	for (int i = 0; i < FRAMES; i++) {
		f.request_id = (1u << 20) + (uint64_t)i;
		assert_int_equal(ringmq__frame__get_packed_size(&f), one);
		out[out_len] = (uint8_t)(one >> 24);
		out[out_len + 1] = (uint8_t)(one >> 16);
		out[out_len + 2] = (uint8_t)(one >> 8);
		out[out_len + 3] = (uint8_t)one;
		(void)ringmq__frame__pack(&f, out + out_len + 4);
		out_len += one + 4;
	}
	/* A small receive buffer: the answers back up in the broker's
	 * kernel, not in ours, as with a peer that reads slowly. */
	fd = testlib_raw_open_rcvbuf(b.port, rcvbuf);
	(void)testlib_raw_hello(fd, 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	/* Send until the socket takes no more (the broker stops reading
	 * while its answers pile up unread), then stop the broker. */
	deadline = harness_now_ms() + 5000;
	while (sent < out_len && harness_now_ms() < deadline) {
		ssize_t n = send(fd, out + sent, out_len - sent, MSG_NOSIGNAL);

		if (n > 0)
			sent += (size_t)n;
		else if (errno == EAGAIN)
			break;
		else
			fail_msg("send: %s", strerror(errno));
	}
	kill(b.pid, SIGTERM);
	/* Read every answer to the end, still sending what is left. */
	deadline = harness_now_ms() + 10000;
	while (harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (sent < out_len)
			p.events |= POLLOUT;
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (p.revents & POLLOUT) {
			n = send(fd, out + sent, out_len - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (errno != EAGAIN)
				sent = out_len; /* the broker is gone */
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (in_cap - in_len < 65536) {
			in_cap = in_cap ? in_cap * 2 : 1 << 20;
			in = realloc(in, in_cap);
			assert_non_null(in);
		}
		n = recv(fd, in + in_len, in_cap - in_len, 0);
		if (n == 0)
			break;
		if (n < 0) {
			is_reset = errno == ECONNRESET;
			break;
		}
		in_len += (size_t)n;
	}
	close(fd);
	while (pos + 4 <= in_len) {
		size_t n = ((size_t)in[pos] << 24) |
			   ((size_t)in[pos + 1] << 16) |
			   ((size_t)in[pos + 2] << 8) | in[pos + 3];
		Ringmq__Frame *r;

		if (pos + 4 + n > in_len)
			break;
		r = ringmq__frame__unpack(NULL, n, in + pos + 4);
		assert_non_null(r);
		if (r->body_case == RINGMQ__FRAME__BODY_PUBLISH_OK &&
		    r->publish_ok->n_results == 1 &&
		    r->publish_ok->results[0]->code == RINGMQ__ERROR_CODE__OK)
			confirmed++;
		is_goodbye |= r->body_case == RINGMQ__FRAME__BODY_GOODBYE;
		ringmq__frame__free_unpacked(r, NULL);
		pos += 4 + n;
	}
	assert_int_equal(harness_stop(&b), 0); /* reaped; exit code 0 */
	assert_false(is_reset);
	assert_true(is_goodbye);
	assert_true(confirmed > 0);

	/* What was stored is exactly what was confirmed. */
	assert_int_equal(harness_start(&b, NULL), 0);
	c = reconnect(&b, o);
	assert_int_equal(ringmq_queue_list_get(c, &ql), RINGMQ_OK);
	assert_int_equal(ringmq_queue_list_messages(ql, 0), confirmed);
	ringmq_queue_list_free(ql);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	free(out);
	free(in);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* 1 if the file at path has a line containing text. */
static int
file_has_line(const char *path, const char *text)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int found = 0;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* A peer that reads nothing cannot hold a shutdown past
 * --shutdown-timeout-ms. With every delivery it took still queued in the
 * broker, SIGTERM sends the goodbye to a peer that reads, and the broker
 * gives up on the stuck one at the timeout (its log says so) and exits 0
 * within it. The test waits on states, not on time: the deliveries all
 * leased, the goodbye, the exit by the deadline. */
static void
test_sigterm_exits_within_the_timeout(void **state)
{
	enum { MSGS = 200, TIMEOUT_MS = 1000 };
	/* The broker's output takes all 12.5 MiB, so that all are leased
	 * and most stay queued in the broker, behind the goodbye. */
	static const char *const flags[] = { "--shutdown-timeout-ms", "1000",
					     "--max-conn-out-bytes", "64M",
					     NULL };
	static char payload[65536];
	char log[] = "/tmp/ringmq-test-log-XXXXXX";
	struct harness_broker b;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Subscribe s = RINGMQ__SUBSCRIBE__INIT;
	Ringmq__Frame *r;
	ringmq_client *c;
	uint64_t in_flight = 0;
	int fd, reader, log_fd, saved, status;
	long long deadline;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	/* The broker inherits this process's stderr: a file, for now. */
	log_fd = mkostemp(log, O_CLOEXEC);
	saved = dup(STDERR_FILENO);
	assert_true(log_fd >= 0 && saved >= 0);
	assert_true(dup2(log_fd, STDERR_FILENO) >= 0);
	status = harness_start(&b, flags);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(log_fd);
	assert_int_equal(status, 0);
	c = testlib_connect(b.addr);
	create_queue(c, "stuck", 1);
	for (int i = 0; i < MSGS; i++) {
		ringmq_message *m =
			ringmq_message_new(payload, sizeof(payload));

		assert_int_equal(
			ringmq_publish(c, "stuck", m, NULL, NULL, NULL),
			RINGMQ_OK);
		ringmq_message_free(m);
	}
	/* A consumer that takes every message and reads none past its
	 * SubscribeOk. */
	fd = testlib_raw_open_rcvbuf(b.port, 4096);
	(void)testlib_raw_hello(fd, 0);
	s.queue = (char *)"stuck";
	s.group = (char *)"g";
	s.credit = MSGS;
	f.has_request_id = 1;
	f.request_id = 2;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE;
	f.subscribe = &s;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_SUBSCRIBE_OK);
	ringmq__frame__free_unpacked(r, NULL);
	deadline = harness_now_ms() + WAIT_MS;
	while (in_flight < MSGS) {
		assert_true(harness_now_ms() < deadline);
		testlib_queue_counts(c, "stuck", NULL, NULL, NULL, &in_flight);
	}
	ringmq_client_free(c);
	reader = testlib_raw_open(b.port);
	(void)testlib_raw_hello(reader, 0);

	deadline = harness_now_ms() + TIMEOUT_MS;
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	r = testlib_raw_recv(reader);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_GOODBYE);
	ringmq__frame__free_unpacked(r, NULL);
	close(reader);
	status = harness_wait_exit(&b, (int)(deadline - harness_now_ms()));
	assert_true(status != -1); /* exited within the timeout */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(file_has_line(log, "shutdown timeout: closing"));
	close(fd);
	unlink(log);
	harness_cleanup(&b);
}

static void *
close_later(void *arg)
{
	usleep(300 * 1000);
	close(*(int *)arg);
	return NULL;
}

/* A listening port still held when the broker starts (a broker killed
 * -9 holds its own for a few ms after it is reaped) is tried again until
 * it is free, saying so in the log; one held for good fails the start
 * with exit 1 after the retries. */
static void
test_listen_waits_for_a_port_still_in_use(void **state)
{
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);
	char addr[32], dir[] = "/tmp/ringmq-test-XXXXXX";
	char log[] = "/tmp/ringmq-test-log-XXXXXX";
	const char *flags[] = { "--listen", addr, NULL };
	struct harness_broker b;
	pthread_t closer;
	int holder, fd, one = 1;

	(void)state;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(holder >= 0);
	assert_int_equal(
		setsockopt(holder, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)),
		0);
	assert_int_equal(bind(holder, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(listen(holder, 1), 0);
	assert_int_equal(getsockname(holder, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));

	/* Held for good: refused after the retries. */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--listen", addr, "--http", "off", "--data",
				 dir, NULL }),
			 1);
	assert_int_equal(harness_remove_dir(dir), 0);

	/* Let go 300 ms into the start: the broker listens there. */
	fd = mkostemp(log, O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	b.log_path = log;
	assert_int_equal(pthread_create(&closer, NULL, close_later, &holder),
			 0);
	assert_int_equal(harness_start(&b, flags), 0);
	assert_int_equal(pthread_join(closer, NULL), 0);
	assert_string_equal(b.addr, addr);
	assert_true(file_has_line(log, "address in use; trying again"));
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
	unlink(log);
}

/* Waits up to ms for a datagram on fd containing text; 1 if one came. */
static int
notify_wait(int fd, const char *text, int ms)
{
	long long deadline = harness_now_ms() + ms;
	char msg[1024];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - harness_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return 0;
		n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		if (strstr(msg, text) != NULL)
			return 1;
	}
}

/* Under a service manager ($NOTIFY_SOCKET), the broker says READY=1 with
 * its status once it listens, pings the watchdog $WATCHDOG_USEC asks
 * for from its loop, and says STOPPING=1 at SIGTERM. */
static void
test_service_manager_is_told_ready_watchdog_and_stopping(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/ringmq-test-XXXXXX";
	struct harness_broker b;
	ringmq_client *c;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* The broker inherits these; the harness's later brokers must not. */
	assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
	assert_int_equal(setenv("WATCHDOG_USEC", "200000", 1), 0);
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(unsetenv("WATCHDOG_USEC"), 0);
	assert_true(notify_wait(fd, "READY=1", WAIT_MS));
	/* Pinged every 100 ms: several within a second. */
	for (int i = 0; i < 3; i++)
		assert_true(notify_wait(fd, "WATCHDOG=1", 1000));
	c = testlib_connect(b.addr);
	create_queue(c, "seen", 1);
	assert_true(notify_wait(fd, "STATUS=serving: 1 queues, 1 connections",
				3000));
	ringmq_client_free(c);
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	assert_true(notify_wait(fd, "STOPPING=1", WAIT_MS));
	assert_int_equal(harness_wait_exit(&b, WAIT_MS) != -1, 1);
	harness_cleanup(&b);
	close(fd);
	assert_int_equal(harness_remove_dir(dir), 0);
}

/* sync=interval confirms on receipt: also the publishes that extend a
 * partition's offset reservation, which must wait for a commit, wait for
 * one commit, not for the rest of a long interval. */
static void
test_interval_confirms_without_waiting_out_the_interval(void **state)
{
	static const char *const flags[] = { "--sync", "interval",
					     "--sync-interval-ms", "3000",
					     NULL };
	struct harness_broker b;
	ringmq_client *c;
	ringmq_opts *o;

	(void)state;
	c = own_broker(&b, flags, &o);
	create_queue(c, "quick", 2);
	/* The first publish of each partition extends its reservation. */
	for (int i = 0; i < 8; i++) {
		char key[8];
		ringmq_message *m = ringmq_message_new("x", 1);
		long long t0 = harness_now_ms();

		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(ringmq_message_set_key(m, key, strlen(key)),
				 RINGMQ_OK);
		assert_int_equal(
			ringmq_publish(c, "quick", m, NULL, NULL, NULL),
			RINGMQ_OK);
		assert_true(harness_now_ms() - t0 < 1000);
		ringmq_message_free(m);
	}
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* A clean stop, like a crash, releases the leases it interrupts without
 * counting them: with max-deliveries 1 the held jobs come back after the
 * restart with delivery_count 1, and nothing is dead-lettered. */
static void
test_sigterm_releases_leases_without_counting(void **state)
{
	struct harness_broker b;
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	ringmq_queue_list *ql = NULL;
	ringmq_client *c;
	ringmq_opts *o;
	uint32_t sub;

	(void)state;
	c = own_broker(&b, NULL, &o);
	assert_int_equal(
		ringmq_queue_opts_set(qo, "max-deliveries", "1", NULL, 0),
		RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "held", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	publish_n(c, "held", "h", 3);
	assert_int_equal(ringmq_subscribe(c, &sub, "held", "g", 3,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 3; i++)
		ringmq_delivery_free(next_delivery(c, WAIT_MS));
	/* Stopped while the consumer still holds all three. */
	assert_int_equal(harness_stop(&b), 0);
	ringmq_client_free(c);

	assert_int_equal(harness_start(&b, NULL), 0);
	c = reconnect(&b, o);
	assert_int_equal(ringmq_queue_list_get(c, &ql), RINGMQ_OK);
	assert_int_equal(ringmq_queue_list_count(ql), 1); /* no held.dlq */
	ringmq_queue_list_free(ql);
	assert_int_equal(ringmq_subscribe(c, &sub, "held", "g", 3,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 3; i++) {
		ringmq_delivery *d = next_delivery(c, WAIT_MS);

		assert_int_equal(ringmq_delivery_delivery_count(d), 1);
		ack_one(c, d);
		ringmq_delivery_free(d);
	}
	expect_nothing(c);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

static void
test_exit_codes_for_bad_flags_config_and_locked_dir(void **state)
{
	struct harness_broker b;
	char conf[64] = "/tmp/ringmq-conf-XXXXXX";
	char dir[64] = "/tmp/ringmq-conf-dir-XXXXXX";
	int fd;

	(void)state;
	assert_int_equal(
		harness_run_exit((const char *const[]){ "--bogus", "1", NULL }),
		2);
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--sync", "sometimes", NULL }),
			 2);
	/* Auth on with no user and no bootstrap file: nothing to log in
	 * with. It opens the store to know, so it gets one of its own. */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--auth", "on", "--listen", "127.0.0.1:0",
				 "--http", "off", "--data", dir, NULL }),
			 2);
	assert_int_equal(harness_remove_dir(dir), 0);
	strcpy(dir, "/tmp/ringmq-conf-dir-XXXXXX");
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--auth", "maybe", NULL }),
			 2);
	fd = mkstemp(conf);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sync = never\nnope = 1\n", 22), 22);
	close(fd);
	assert_int_equal(harness_run_exit((const char *const[]){ "--config",
								 conf, NULL }),
			 2);
	unlink(conf);
	/* A directory is no config file (it opens, then cannot be read). */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--config", dir, "--listen", "127.0.0.1:0",
				 "--http", "off", "--data", dir, NULL }),
			 2);
	assert_int_equal(rmdir(dir), 0); /* nothing was made in it */
	/* A second broker on a running broker's directory: 1. */
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_int_equal(
		harness_run_exit((const char *const[]){
			"--listen", "127.0.0.1:0", "--data", b.dir, NULL }),
		1);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
}

/* A config line may hold 2 KiB before its newline; one byte more stops
 * the broker (exit 2). */
static void
test_config_line_of_2_kib_is_read(void **state)
{
	char conf[64] = "/tmp/ringmq-conf-XXXXXX";
	const char *flags[] = { "--config", conf, NULL };
	struct harness_broker b;
	char line[2050];
	int fd;

	(void)state;
	for (int longer = 0; longer < 2; longer++) {
		size_t len = 2048 + (size_t)longer;

		memset(line, 'x', len);
		line[0] = '#';
		line[len] = '\n';
		snprintf(conf, sizeof(conf), "/tmp/ringmq-conf-XXXXXX");
		fd = mkstemp(conf);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, line, len + 1), (ssize_t)(len + 1));
		close(fd);
		if (longer) {
			char dir[64] = "/tmp/ringmq-conf-dir-XXXXXX";

			assert_non_null(mkdtemp(dir));
			assert_int_equal(harness_run_exit((const char *const[]){
						 "--config", conf, "--listen",
						 "127.0.0.1:0", "--http", "off",
						 "--data", dir, NULL }),
					 2);
			assert_int_equal(rmdir(dir), 0);
		} else {
			memset(&b, 0, sizeof(b));
			b.stdout_fd = -1;
			assert_int_equal(harness_start(&b, flags), 0);
			assert_int_equal(harness_stop(&b), 0);
			harness_cleanup(&b);
		}
		unlink(conf);
	}
}

/* Text from outside (here the data directory's path, with a newline in
 * it) cannot forge a log line: every line of the log starts with the
 * time stamp. */
static void
test_log_lines_cannot_be_forged(void **state)
{
	char parent[64] = "/tmp/ringmq-test-XXXXXX", log[128];
	char line[4096];
	struct harness_broker b;
	int saved, fd, lines = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(parent));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	snprintf(b.dir, sizeof(b.dir),
		 "%s/d\n2099-01-01T00:00:00.000Z "
		 "ERROR forged",
		 parent);
	snprintf(log, sizeof(log), "%s/log", parent);
	/* The broker inherits this process's stderr: a file, for now. */
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	saved = dup(STDERR_FILENO);
	assert_true(fd >= 0 && saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	assert_int_equal(harness_start(&b, NULL), 0);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fd);
	assert_int_equal(harness_stop(&b), 0);
	f = fopen(log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		lines++;
		if (strncmp(line, "2099", 4) == 0 || line[4] != '-')
			fail_msg("not a log line of its own: %s", line);
	}
	fclose(f);
	assert_true(lines >= 2); /* at least "open" and "stopped" */
	harness_cleanup(&b);
	assert_int_equal(harness_remove_dir(parent), 0);
}

int
main(void)
{
	const struct CMUnitTest shared[] = {
		cmocka_unit_test(test_publish_consume_ack),
		cmocka_unit_test(
			test_ack_twice_is_ok_and_unknown_lease_not_leased),
		cmocka_unit_test(test_touch_extends_within_max_lease),
		cmocka_unit_test(test_first_deliveries_in_offset_order),
		cmocka_unit_test(test_two_groups_each_get_every_message),
		cmocka_unit_test(test_competing_consumers_split_one_partition),
		cmocka_unit_test(test_credit_is_never_exceeded),
		cmocka_unit_test(
			test_disconnect_redelivers_with_count_2_release_does_not),
		cmocka_unit_test(test_queue_without_group_keeps_messages),
		cmocka_unit_test(test_latest_group_skips_earlier_messages),
		cmocka_unit_test(test_errors_for_unknown_queue_and_bad_names),
		cmocka_unit_test(test_keyed_messages_follow_the_hash),
		cmocka_unit_test(test_empty_key_routes_as_no_key),
		cmocka_unit_test(test_duplicate_header_names_are_refused),
		cmocka_unit_test(
			test_bad_frames_get_error_and_close_others_unharmed),
		cmocka_unit_test(test_pipelined_create_then_use),
	};
	const struct CMUnitTest own[] = {
		cmocka_unit_test(test_kill9_keeps_confirmed_and_acked),
		cmocka_unit_test(test_sigterm_says_goodbye_and_exits_0),
		cmocka_unit_test(test_sigterm_releases_leases_without_counting),
		cmocka_unit_test(test_sigterm_exits_within_the_timeout),
		cmocka_unit_test(test_listen_waits_for_a_port_still_in_use),
		cmocka_unit_test(
			test_service_manager_is_told_ready_watchdog_and_stopping),
		cmocka_unit_test(
			test_interval_confirms_without_waiting_out_the_interval),
		cmocka_unit_test(
			test_sigterm_confirms_what_it_stored_to_a_flooding_peer),
		cmocka_unit_test(
			test_exit_codes_for_bad_flags_config_and_locked_dir),
		cmocka_unit_test(test_config_line_of_2_kib_is_read),
		cmocka_unit_test(test_log_lines_cannot_be_forged),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("broker", shared, setup_broker,
					     teardown_broker);
	failed += cmocka_run_group_tests_name("restarts", own, NULL, NULL);
	return failed ? 1 : 0;
}
