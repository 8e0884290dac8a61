/*
 * Integration tests of the wire contract as a client in any language
 * meets it: frames built by hand on a raw connection, so nothing the C
 * library does for its users (splitting batches, checking limits, picking
 * request ids) hides what the broker itself does. Real broker, real
 * sockets.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "testlib.h"

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

/* A raw session: its socket, the limits its HelloOk announced, and the
 * deliveries read while waiting for answers. */
struct raw {
	int fd;
	Ringmq__HelloOk limits; /* scalars only */
	uint64_t lease_ids[64];
	size_t nleases;
	uint32_t ended_sub; /* SubscriptionEnded seen: its subscription */
	int ended_code;
};

static void
raw_send(struct raw *r, Ringmq__Frame *f, uint64_t request_id)
{
	f->has_request_id = request_id != 0;
	f->request_id = request_id;
	testlib_raw_send(r->fd, f);
}

/* Reads frames until one that is not a push it keeps track of (Ping,
 * Delivery, SubscriptionEnded). Free with ringmq__frame__free_unpacked. */
static Ringmq__Frame *
raw_answer(struct raw *r)
{
	for (int i = 0; i < 1000; i++) {
		Ringmq__Frame *f = testlib_raw_recv(r->fd);

		switch (f->body_case) {
		case RINGMQ__FRAME__BODY_PING: break;
		case RINGMQ__FRAME__BODY_DELIVERY:
			assert_true(r->nleases < 64);
			r->lease_ids[r->nleases++] = f->delivery->lease_id;
			break;
		case RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED:
			r->ended_sub = f->subscription_ended->subscription;
			r->ended_code = f->subscription_ended->code;
			break;
		default: return f;
		}
		ringmq__frame__free_unpacked(f, NULL);
	}
	fail_msg("nothing but pushes");
	return NULL;
}

static void
raw_open_hello(struct raw *r)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Frame *a;

	memset(r, 0, sizeof(*r));
	r->fd = testlib_raw_open(broker.port);
	h.version = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	raw_send(r, &f, 1);
	a = raw_answer(r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_HELLO_OK);
	r->limits = *a->hello_ok;
	r->limits.broker_version = NULL;
	ringmq__frame__free_unpacked(a, NULL);
}

/* Expects an Error with code and request_id; its message must hold
 * needle when not NULL. */
static void
expect_error(Ringmq__Frame *a, uint64_t request_id, int code,
	     const char *needle)
{
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_ERROR);
	assert_int_equal(a->request_id, request_id);
	assert_int_equal(a->error->code, code);
	if (needle != NULL) {
		assert_non_null(a->error->message);
		if (strstr(a->error->message, needle) == NULL)
			fail_msg("error \"%s\" does not name \"%s\"",
				 a->error->message, needle);
	}
	ringmq__frame__free_unpacked(a, NULL);
}

static void
create_queue(const char *name, const char *opt, const char *value)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();

	if (opt != NULL)
		assert_int_equal(ringmq_queue_opts_set(qo, opt, value, NULL, 0),
				 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, name, qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	ringmq_client_free(c);
}

static void
publish_n(const char *queue, int n)
{
	ringmq_client *c = testlib_connect(broker.addr);

	for (int i = 0; i < n; i++) {
		ringmq_message *m = ringmq_message_new("job", 3);

		assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	ringmq_client_free(c);
}

/* @return the subscription id. */
static uint32_t
raw_subscribe(struct raw *r, const char *queue, const char *group,
	      uint32_t credit, uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Subscribe s = RINGMQ__SUBSCRIBE__INIT;
	Ringmq__Frame *a;
	uint32_t id;

	s.queue = (char *)queue;
	s.group = (char *)group;
	s.credit = credit;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE;
	f.subscribe = &s;
	raw_send(r, &f, request_id);
	a = raw_answer(r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_SUBSCRIBE_OK);
	id = a->subscribe_ok->subscription;
	ringmq__frame__free_unpacked(a, NULL);
	return id;
}

/* Reads pushes until n leases are held (bounded by the read deadline of
 * testlib_raw_recv). */
static void
raw_wait_leases(struct raw *r, size_t n)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping p = RINGMQ__PING__INIT;

	for (int i = 0; i < 100 && r->nleases < n; i++) {
		Ringmq__Frame *a;

		/* A ping's answer comes after the deliveries before it. */
		f.body_case = RINGMQ__FRAME__BODY_PING;
		f.ping = &p;
		raw_send(r, &f, 900 + (uint64_t)i);
		a = raw_answer(r);
		assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_PONG);
		ringmq__frame__free_unpacked(a, NULL);
	}
	assert_int_equal(r->nleases, n);
}

/* Acks ids on r; each must be answered code. */
static void
raw_ack(struct raw *r, const uint64_t *ids, size_t n, int code,
	uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ack a = RINGMQ__ACK__INIT;
	Ringmq__Frame *ans;

	a.n_lease_ids = n;
	a.lease_ids = (uint64_t *)ids;
	f.body_case = RINGMQ__FRAME__BODY_ACK;
	f.ack = &a;
	raw_send(r, &f, request_id);
	ans = raw_answer(r);
	assert_int_equal(ans->body_case, RINGMQ__FRAME__BODY_LEASE_RESULT);
	assert_int_equal(ans->request_id, request_id);
	assert_int_equal(ans->lease_result->n_codes, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ans->lease_result->codes[i], code);
	ringmq__frame__free_unpacked(ans, NULL);
}

/* ------------------------------------------------------------------ */

/* An Ack over max_batch_count, or a message over max_header_count, is a
 * decodable request: it fails alone, with its request_id and the name of
 * the limit, and the connection keeps its leases. */
static void
test_request_over_a_limit_fails_alone(void **state)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ack a = RINGMQ__ACK__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Message *mp = &m;
	Ringmq__Header *hs, **hp;
	uint64_t *ids;
	struct raw r;
	size_t nids, nh;

	(void)state;
	create_queue("over", NULL, NULL);
	publish_n("over", 3);
	raw_open_hello(&r);
	(void)raw_subscribe(&r, "over", "g", 3, 2);
	raw_wait_leases(&r, 3);

	nids = r.limits.max_batch_count + 1;
	ids = calloc(nids, sizeof(*ids));
	assert_non_null(ids);
	for (size_t i = 0; i < nids; i++)
		ids[i] = r.lease_ids[i % 3];
	a.n_lease_ids = nids;
	a.lease_ids = ids;
	f.body_case = RINGMQ__FRAME__BODY_ACK;
	f.ack = &a;
	raw_send(&r, &f, 3);
	expect_error(raw_answer(&r), 3, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		     "max_batch_count");

	assert_true(r.limits.has_max_header_count);
	nh = r.limits.max_header_count + 1;
	hs = calloc(nh, sizeof(*hs));
	hp = calloc(nh, sizeof(*hp));
	assert_non_null(hs);
	assert_non_null(hp);
	for (size_t i = 0; i < nh; i++) {
		char *name = malloc(16);

		assert_non_null(name);
		ringmq__header__init(&hs[i]);
		snprintf(name, 16, "h%zu", i);
		hs[i].name = name;
		hp[i] = &hs[i];
	}
	m.payload.data = (uint8_t *)"x";
	m.payload.len = 1;
	m.n_headers = nh;
	m.headers = hp;
	p.queue = (char *)"over";
	p.n_messages = 1;
	p.messages = &mp;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	raw_send(&r, &f, 4);
	expect_error(raw_answer(&r), 4, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		     "max_header_count");

	/* Still connected, every lease still held: each acks OK. */
	raw_ack(&r, r.lease_ids, 3, RINGMQ__ERROR_CODE__OK, 5);
	for (size_t i = 0; i < nh; i++)
		free(hs[i].name);
	free(hs);
	free(hp);
	free(ids);
	close(r.fd);
}

/* Request id 0 is reserved for pushes: a request without one is refused
 * (its answer could not be told from a push) and the connection stays. */
static void
test_request_id_0_is_refused(void **state)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping p = RINGMQ__PING__INIT;
	Ringmq__QueueList ql = RINGMQ__QUEUE_LIST__INIT;
	Ringmq__Frame *a;
	struct raw r;

	(void)state;
	raw_open_hello(&r);
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &p;
	raw_send(&r, &f, 0);
	expect_error(raw_answer(&r), 0, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		     "request_id");
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_LIST;
	f.queue_list = &ql;
	raw_send(&r, &f, 0);
	expect_error(raw_answer(&r), 0, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		     "request_id");
	/* A Pong is no request: no answer; the next request is served. */
	f.body_case = RINGMQ__FRAME__BODY_PONG;
	f.pong = &(Ringmq__Pong)RINGMQ__PONG__INIT;
	raw_send(&r, &f, 0);
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_LIST;
	f.queue_list = &ql;
	raw_send(&r, &f, 7);
	a = raw_answer(&r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_QUEUE_LIST_OK);
	assert_int_equal(a->request_id, 7);
	ringmq__frame__free_unpacked(a, NULL);
	close(r.fd);
}

/* One message of a raw Publish: payload, and up to 2 headers. */
struct msg_spec {
	const char *payload;
	size_t payload_len;
	const char *hname[2];
	size_t hvalue_len[2]; /* value bytes, all 'v' */
	const char *dedup_id;
	int code; /* expected */
};

/* Publishes specs[0 .. n) to queue in one raw Publish and checks each
 * result's code. */
static void
raw_publish_expect(struct raw *r, const char *queue,
		   const struct msg_spec *specs, size_t n, uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message *ms = calloc(n, sizeof(*ms));
	Ringmq__Message **mp = calloc(n, sizeof(*mp));
	Ringmq__Header *hs = calloc(2 * n, sizeof(*hs));
	Ringmq__Header **hp = calloc(2 * n, sizeof(*hp));
	uint8_t *value = malloc(2u << 20);
	Ringmq__Frame *a;

	assert_true(ms && mp && hs && hp && value);
	memset(value, 'v', 2u << 20);
	for (size_t i = 0; i < n; i++) {
		ringmq__message__init(&ms[i]);
		ms[i].payload.data = (uint8_t *)specs[i].payload;
		ms[i].payload.len = specs[i].payload_len;
		ms[i].dedup_id = (char *)specs[i].dedup_id;
		ms[i].headers = &hp[2 * i];
		for (size_t k = 0; k < 2 && specs[i].hname[k] != NULL; k++) {
			Ringmq__Header *h = &hs[2 * i + k];

			ringmq__header__init(h);
			h->name = (char *)specs[i].hname[k];
			h->value.data = value;
			h->value.len = specs[i].hvalue_len[k];
			hp[2 * i + k] = h;
			ms[i].n_headers++;
		}
		mp[i] = &ms[i];
	}
	p.queue = (char *)queue;
	p.n_messages = n;
	p.messages = mp;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	raw_send(r, &f, request_id);
	a = raw_answer(r);
	if (a->body_case == RINGMQ__FRAME__BODY_ERROR)
		fail_msg("publish refused whole: %d %s", a->error->code,
			 a->error->message);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	assert_int_equal(a->publish_ok->n_results, n);
	for (size_t i = 0; i < n; i++)
		if ((int)a->publish_ok->results[i]->code != specs[i].code)
			fail_msg("message %zu: code %d, expected %d (%s)", i,
				 a->publish_ok->results[i]->code, specs[i].code,
				 a->publish_ok->results[i]->message
					 ? a->publish_ok->results[i]->message
					 : "");
	ringmq__frame__free_unpacked(a, NULL);
	free(value);
	free(hp);
	free(hs);
	free(mp);
	free(ms);
}

/* Client mistakes in a message are that message's INVALID_ARGUMENT or
 * MESSAGE_TOO_LARGE, never INTERNAL, and never fail the valid messages of
 * its batch. max-message-bytes counts the whole message. */
static void
test_message_limits_cover_the_whole_message(void **state)
{
	static char long_name[70000];
	struct raw r;
	uint32_t max;

	(void)state;
	memset(long_name, 'n', sizeof(long_name) - 1);
	create_queue("limits", NULL, NULL);
	raw_open_hello(&r);
	assert_true(r.limits.has_max_key_bytes);
	assert_int_equal(r.limits.max_key_bytes, 65535);
	assert_int_equal(r.limits.max_dedup_id_bytes, 65535);
	assert_int_equal(r.limits.max_header_name_bytes, 65535);
	max = r.limits.max_message_bytes;
	long_name[65536] = '\0'; /* one over */
	{
		const struct msg_spec specs[] = {
			{ "ok", 2, { NULL }, { 0 }, NULL, 0 },
			/* A 1-byte payload with a header as big as the
			 * limit. */
			{ "x", 1, { "big" }, { max }, NULL, 12 },
			{ "x", 1, { long_name }, { 1 }, NULL, 13 },
			{ "x", 1, { "" }, { 1 }, NULL, 13 },
			{ "x", 1, { "RingMQ-source-queue" }, { 1 }, NULL, 13 },
			{ "x", 1, { "RINGMQ-X" }, { 1 }, NULL, 13 },
			{ "x", 1, { NULL }, { 0 }, "", 13 },
			{ "x", 1, { "a", "a" }, { 1, 1 }, NULL, 13 },
			{ "ok", 2, { "ringmq" }, { 3 }, NULL, 0 },
		};

		raw_publish_expect(&r, "limits", specs,
				   sizeof(specs) / sizeof(specs[0]), 2);
	}
	/* Exactly at the limit: payload + header name and value + 6. */
	long_name[65535] = '\0';
	{
		const struct msg_spec at[] = {
			{ "p", 1, { "h" }, { max - 1 - 1 - 6 }, NULL, 0 },
			{ "p", 1, { "h" }, { max - 1 - 1 - 6 + 1 }, NULL, 12 },
			{ "x", 1, { long_name }, { 1 }, NULL, 0 },
		};

		raw_publish_expect(&r, "limits", at, 3, 3);
	}
	close(r.fd);
}

/* A queue's max_bytes counts what max-message-bytes counts: a small
 * payload under a large header fills it. */
static void
test_queue_max_bytes_counts_headers(void **state)
{
	struct raw r;

	(void)state;
	create_queue("mb", "max-bytes", "1000");
	raw_open_hello(&r);
	{
		const struct msg_spec specs[] = {
			{ "x", 1, { "h" }, { 600 }, NULL, 0 },
			{ "x", 1, { "h" }, { 600 }, NULL, 6 }, /* QUEUE_FULL */
			{ "x", 1, { NULL }, { 0 }, NULL, 0 },
		};

		raw_publish_expect(&r, "mb", specs, 3, 2);
	}
	close(r.fd);
	{
		ringmq_client *c = testlib_connect(broker.addr);
		ringmq_queue_list *l = NULL;

		assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
		for (size_t i = 0; i < ringmq_queue_list_count(l); i++)
			if (strcmp(ringmq_queue_list_name(l, i), "mb") == 0)
				assert_int_equal(ringmq_queue_list_bytes(l, i),
						 (1 + 6 + 1 + 600) + 1);
		ringmq_queue_list_free(l);
		ringmq_client_free(c);
	}
}

/* Answers a Ping, so that every push sent before its Pong is read. */
static void
raw_sync(struct raw *r, uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Frame *a;

	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &(Ringmq__Ping)RINGMQ__PING__INIT;
	raw_send(r, &f, request_id);
	a = raw_answer(r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_PONG);
	ringmq__frame__free_unpacked(a, NULL);
}

/* Deleting a group or a queue ends the subscriptions on it: each
 * subscriber is told which one and why, rather than waiting forever. */
static void
test_subscriber_learns_its_subscription_ended(void **state)
{
	ringmq_client *c;
	uint32_t s1, s2;
	struct raw r;

	(void)state;
	create_queue("ends", NULL, NULL);
	create_queue("ends2", NULL, NULL);
	raw_open_hello(&r);
	s1 = raw_subscribe(&r, "ends", "g1", 1, 2);
	s2 = raw_subscribe(&r, "ends2", "g", 1, 3);
	assert_int_not_equal(s1, s2);
	c = testlib_connect(broker.addr);
	assert_int_equal(ringmq_group_delete(c, "ends", "g1"), RINGMQ_OK);
	raw_sync(&r, 4);
	assert_int_equal(r.ended_sub, s1);
	assert_int_equal(r.ended_code, RINGMQ__ERROR_CODE__GROUP_NOT_FOUND);
	r.ended_sub = 0;
	assert_int_equal(ringmq_queue_delete(c, "ends2"), RINGMQ_OK);
	raw_sync(&r, 5);
	assert_int_equal(r.ended_sub, s2);
	assert_int_equal(r.ended_code, RINGMQ__ERROR_CODE__QUEUE_NOT_FOUND);
	ringmq_client_free(c);
	close(r.fd);
}

/* Stats, the queue's own total and /metrics count one message acked
 * three times once: re-acks of an acked id answer OK but count nothing. */
static void
test_acked_total_counts_messages_not_acks(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_list *l = NULL;
	uint64_t id, queue_acked = 0;
	double before;
	struct raw r;

	(void)state;
	create_queue("counts", NULL, NULL);
	publish_n("counts", 1);
	before = testlib_stat(c, "acked_total");
	raw_open_hello(&r);
	(void)raw_subscribe(&r, "counts", "g", 1, 2);
	raw_wait_leases(&r, 1);
	id = r.lease_ids[0];
	for (int i = 0; i < 3; i++)
		raw_ack(&r, &id, 1, RINGMQ__ERROR_CODE__OK, 10 + (uint64_t)i);
	assert_true(testlib_stat(c, "acked_total") == before + 1);
	assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
	for (size_t i = 0; i < ringmq_queue_list_count(l); i++)
		if (strcmp(ringmq_queue_list_name(l, i), "counts") == 0)
			assert_int_equal(ringmq_queue_list_total(l, i, "acked",
								 &queue_acked),
					 1);
	assert_int_equal(queue_acked, 1);
	ringmq_queue_list_free(l);
	/* A deleted queue's acks stay in the broker's total. */
	assert_int_equal(ringmq_queue_delete(c, "counts"), RINGMQ_OK);
	assert_true(testlib_stat(c, "acked_total") == before + 1);
	ringmq_client_free(c);
	close(r.fd);
}

/* Publishes one message with producer_seq seq to partition 0 of queue;
 * @return its result code. */
static int
raw_publish_seq(struct raw *r, const char *queue, uint64_t seq,
		uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT, *mp = &m;
	Ringmq__Frame *a;
	int code;

	m.payload.data = (uint8_t *)"s";
	m.payload.len = 1;
	p.queue = (char *)queue;
	p.n_messages = 1;
	p.messages = &mp;
	p.has_partition = p.has_producer_seq = 1;
	p.partition = 0;
	p.producer_seq = seq;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	raw_send(r, &f, request_id);
	a = raw_answer(r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_PUBLISH_OK);
	code = a->publish_ok->results[0]->code;
	ringmq__frame__free_unpacked(a, NULL);
	return code;
}

/* The edges the protocol guide settles, each as it is answered. */
static void
test_edge_cases_behave_as_documented(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueCreate qc = RINGMQ__QUEUE_CREATE__INIT;
	Ringmq__QueuePolicy pol = RINGMQ__QUEUE_POLICY__INIT;
	Ringmq__Touch t = RINGMQ__TOUCH__INIT;
	Ringmq__Unsubscribe u = RINGMQ__UNSUBSCRIBE__INIT;
	Ringmq__Frame *a;
	struct raw r;
	uint64_t id;
	uint32_t sub;

	(void)state;
	raw_open_hello(&r);
	/* lease_ms 0 is refused; dedup_window_ms 0 turns dedup off. */
	pol.has_lease_ms = 1;
	pol.lease_ms = 0;
	qc.name = (char *)"edge0";
	qc.policy = &pol;
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_CREATE;
	f.queue_create = &qc;
	raw_send(&r, &f, 1);
	expect_error(raw_answer(&r), 1, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		     NULL);
	create_queue("edge", "dedup-window-ms", "0");
	for (int i = 0; i < 2; i++) {
		ringmq_message *m = ringmq_message_new("d", 1);
		uint64_t offset = 99;
		int dup = 1;

		assert_int_equal(ringmq_message_set_dedup_id(m, "same"),
				 RINGMQ_OK);
		assert_int_equal(
			ringmq_publish(c, "edge", m, NULL, &offset, &dup),
			RINGMQ_OK);
		assert_int_equal(offset, (uint64_t)i);
		assert_int_equal(dup, 0);
		ringmq_message_free(m);
	}

	/* Producer sequences: a gap is accepted (refused batches leave
	 * one); a sequence below the last batch that matches none is not. */
	create_queue("edge-seq", NULL, NULL);
	assert_int_equal(raw_publish_seq(&r, "edge-seq", 0, 2), 0);
	assert_int_equal(raw_publish_seq(&r, "edge-seq", 5, 3), 0);
	assert_int_equal(raw_publish_seq(&r, "edge-seq", 2, 4),
			 RINGMQ__ERROR_CODE__INVALID_ARGUMENT);

	/* Touch with lease_ms 0 means the queue's lease time (30 s). */
	sub = raw_subscribe(&r, "edge", "g", 1, 5);
	raw_wait_leases(&r, 1);
	id = r.lease_ids[0];
	t.n_lease_ids = 1;
	t.lease_ids = &id;
	t.has_lease_ms = 1;
	t.lease_ms = 0;
	f.body_case = RINGMQ__FRAME__BODY_TOUCH;
	f.touch = &t;
	raw_send(&r, &f, 6);
	a = raw_answer(&r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_LEASE_RESULT);
	assert_int_equal(a->lease_result->codes[0], RINGMQ__ERROR_CODE__OK);
	assert_true(a->lease_result->remaining_ms[0] > 25000 &&
		    a->lease_result->remaining_ms[0] <= 30000);
	ringmq__frame__free_unpacked(a, NULL);

	/* Unsubscribe ends deliveries, not the leases already held. */
	u.subscription = sub;
	f.body_case = RINGMQ__FRAME__BODY_UNSUBSCRIBE;
	f.unsubscribe = &u;
	raw_send(&r, &f, 7);
	a = raw_answer(&r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_DONE);
	ringmq__frame__free_unpacked(a, NULL);
	raw_ack(&r, &id, 1, RINGMQ__ERROR_CODE__OK, 8);

	/* A client's Goodbye closes the connection; a lease it held fails
	 * (delivered again with count 2). */
	(void)raw_subscribe(&r, "edge", "g", 1, 9);
	raw_wait_leases(&r, 2);
	f.body_case = RINGMQ__FRAME__BODY_GOODBYE;
	f.goodbye = &(Ringmq__Goodbye)RINGMQ__GOODBYE__INIT;
	raw_send(&r, &f, 0);
	{
		uint8_t byte;
		struct pollfd pf = { .fd = r.fd, .events = POLLIN };

		assert_int_equal(poll(&pf, 1, 5000), 1);
		assert_int_equal(read(r.fd, &byte, 1), 0);
	}
	close(r.fd);
	{
		ringmq_delivery *d = NULL;

		assert_int_equal(ringmq_subscribe(c, &sub, "edge", "g", 1,
						  RINGMQ_START_EARLIEST),
				 RINGMQ_OK);
		assert_int_equal(ringmq_next(c, &d, 5000), RINGMQ_OK);
		assert_int_equal(ringmq_delivery_offset(d), 1);
		assert_int_equal(ringmq_delivery_delivery_count(d), 2);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(c);
}

/* A Hello presenting producer id 0 gets a new id: 0 is no id, and a
 * connection with it could not publish with sequences. */
static void
test_hello_with_producer_id_0_gets_a_new_one(void **state)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Frame *a;
	struct raw r = { .fd = testlib_raw_open(broker.port) };

	(void)state;
	h.version = 1;
	h.has_producer_id = 1;
	h.producer_id = 0;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	raw_send(&r, &f, 1);
	a = raw_answer(&r);
	assert_int_equal(a->body_case, RINGMQ__FRAME__BODY_HELLO_OK);
	assert_int_not_equal(a->hello_ok->producer_id, 0);
	ringmq__frame__free_unpacked(a, NULL);
	close(r.fd);
}

static void
never_called(ringmq_client *c, ringmq_delivery *d, void *ctx)
{
	(void)c;
	(void)ctx;
	ringmq_delivery_free(d);
	fail_msg("no delivery expected");
}

/* libringmq hands the end of a subscription to the waiting worker as a
 * status of its own, at once rather than at the timeout, and once. */
static void
test_library_reports_an_ended_subscription(void **state)
{
	ringmq_client *w = testlib_connect(broker.addr);
	ringmq_client *admin = testlib_connect(broker.addr);
	ringmq_delivery *d = NULL;
	uint32_t sub, cbsub;
	long long t0;

	(void)state;
	create_queue("lib-ends", NULL, NULL);
	create_queue("lib-ends2", NULL, NULL);
	assert_int_equal(ringmq_subscribe(w, &sub, "lib-ends", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_subscribe_cb(w, &cbsub, "lib-ends2", "g", 1,
					     RINGMQ_START_EARLIEST,
					     never_called, NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_subscription_status(w, sub), RINGMQ_OK);
	assert_int_equal(ringmq_group_delete(admin, "lib-ends", "g"),
			 RINGMQ_OK);
	t0 = harness_now_ms();
	assert_int_equal(ringmq_next(w, &d, 20000), RINGMQ_GROUP_NOT_FOUND);
	assert_true(harness_now_ms() - t0 < 10000);
	assert_null(d);
	assert_non_null(strstr(ringmq_client_errmsg(w), "ended"));
	assert_int_equal(ringmq_subscription_status(w, sub),
			 RINGMQ_GROUP_NOT_FOUND);
	/* Told once; the callback subscription is not reported here. */
	assert_int_equal(ringmq_queue_delete(admin, "lib-ends2"), RINGMQ_OK);
	assert_int_equal(ringmq_next(w, &d, 300), RINGMQ_TIMEOUT);
	assert_int_equal(ringmq_subscription_status(w, cbsub),
			 RINGMQ_QUEUE_NOT_FOUND);
	/* Credit on it gets its end; unsubscribing forgets it. */
	assert_int_equal(ringmq_subscription_set_credit(w, cbsub, 5),
			 RINGMQ_QUEUE_NOT_FOUND);
	assert_int_equal(ringmq_unsubscribe(w, sub), RINGMQ_OK);
	assert_int_equal(ringmq_subscription_status(w, sub), RINGMQ_USAGE);
	assert_int_equal(ringmq_subscription_status(w, 9999), RINGMQ_USAGE);
	ringmq_client_free(admin);
	ringmq_client_free(w);
}

/* The library refuses what the broker would, before sending: the same
 * rules for names and the same whole-message count. */
static void
test_library_checks_the_same_message_limits(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_message *m = ringmq_message_new("x", 1);
	uint32_t max = ringmq_client_max_message_bytes(c);
	char *big = malloc(max);

	(void)state;
	assert_non_null(big);
	memset(big, 'v', max);
	create_queue("lib-limits", NULL, NULL);
	assert_int_equal(ringmq_message_add_header(m, "", "v", 1),
			 RINGMQ_USAGE);
	assert_int_equal(ringmq_message_add_header(m, "RingMQ-x", "v", 1),
			 RINGMQ_USAGE);
	assert_int_equal(ringmq_message_set_dedup_id(m, ""), RINGMQ_USAGE);
	/* 1 + 3 + 6 + (max - 10) = max: fits; one more byte does not. */
	assert_int_equal(ringmq_message_add_header(m, "big", big, max - 10),
			 RINGMQ_OK);
	assert_int_equal(ringmq_publish(c, "lib-limits", m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
	m = ringmq_message_new("xy", 2);
	assert_int_equal(ringmq_message_add_header(m, "big", big, max - 10),
			 RINGMQ_OK);
	assert_int_equal(ringmq_publish(c, "lib-limits", m, NULL, NULL, NULL),
			 RINGMQ_MESSAGE_TOO_LARGE);
	assert_non_null(strstr(ringmq_client_errmsg(c), "headers"));
	ringmq_message_free(m);
	free(big);
	ringmq_client_free(c);
}

/* Deliveries of a subscription the broker ended, still queued in the
 * library, are dropped (their leases went with the group), so the end
 * is what the worker sees next, not jobs it could not ack. */
static void
test_library_drops_the_queued_deliveries_of_an_ended_subscription(void **state)
{
	ringmq_client *w = testlib_connect(broker.addr);
	ringmq_client *admin = testlib_connect(broker.addr);
	ringmq_delivery *d = NULL;
	uint32_t sub;
	uint64_t in_flight = 0;

	(void)state;
	create_queue("lib-drop", NULL, NULL);
	publish_n("lib-drop", 3);
	assert_int_equal(ringmq_subscribe(w, &sub, "lib-drop", "g", 5,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	/* The three deliveries reach w's queue while it waits in calls. */
	for (int i = 0; i < 100 && in_flight < 3; i++) {
		assert_int_equal(ringmq_client_ping(w), RINGMQ_OK);
		testlib_queue_counts(admin, "lib-drop", NULL, NULL, NULL,
				     &in_flight);
	}
	assert_int_equal(in_flight, 3);
	assert_int_equal(ringmq_client_ping(w), RINGMQ_OK);
	assert_int_equal(ringmq_group_delete(admin, "lib-drop", "g"),
			 RINGMQ_OK);
	/* The end was pushed to w before the delete was answered: a ping's
	 * answer comes after it, so w has read it by then. */
	assert_int_equal(ringmq_client_ping(w), RINGMQ_OK);
	assert_int_equal(ringmq_next(w, &d, 5000), RINGMQ_GROUP_NOT_FOUND);
	assert_null(d);
	assert_int_equal(ringmq_next(w, &d, 200), RINGMQ_TIMEOUT);
	ringmq_client_free(admin);
	ringmq_client_free(w);
}

/* A broker stand-in that answers Hello, then a Subscribe with its
 * SubscribeOk and a SubscriptionEnded for it in one write, as a broker
 * does when a group delete is handled right behind the subscribe. */
struct fake {
	int listen_fd;
	int ok; /* 1 once it wrote both frames */
};

/* Reads one frame from fd (plain reads: this runs off the test thread);
 * NULL on EOF or error. Free with ringmq__frame__free_unpacked. */
static Ringmq__Frame *
fake_recv(int fd)
{
	uint8_t hdr[4], body[4096];
	size_t n, got = 0;

	while (got < 4) {
		ssize_t r = read(fd, hdr + got, 4 - got);

		if (r <= 0)
			return NULL;
		got += (size_t)r;
	}
	n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 |
	    hdr[3];
	if (n > sizeof(body))
		return NULL;
	for (got = 0; got < n;) {
		ssize_t r = read(fd, body + got, n - got);

		if (r <= 0)
			return NULL;
		got += (size_t)r;
	}
	return ringmq__frame__unpack(NULL, n, body);
}

/* Appends f, with its length prefix, to buf at *len. */
static void
fake_put(uint8_t *buf, size_t *len, const Ringmq__Frame *f)
{
	size_t n = ringmq__frame__get_packed_size(f);

	buf[*len] = (uint8_t)(n >> 24);
	buf[*len + 1] = (uint8_t)(n >> 16);
	buf[*len + 2] = (uint8_t)(n >> 8);
	buf[*len + 3] = (uint8_t)n;
	ringmq__frame__pack(f, buf + *len + 4);
	*len += 4 + n;
}

static void *
fake_run(void *arg)
{
	struct fake *fk = arg;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *in;
	Ringmq__HelloOk ok = RINGMQ__HELLO_OK__INIT;
	Ringmq__SubscribeOk sok = RINGMQ__SUBSCRIBE_OK__INIT;
	Ringmq__SubscriptionEnded end = RINGMQ__SUBSCRIPTION_ENDED__INIT;
	uint8_t out[512];
	size_t len = 0;
	int fd = accept(fk->listen_fd, NULL, NULL);

	if (fd < 0 || (in = fake_recv(fd)) == NULL)
		return NULL;
	ok.version = 1;
	ok.max_frame_bytes = 1u << 22;
	ok.max_message_bytes = 1u << 20;
	ok.max_batch_count = 1000;
	ok.producer_id = 1;
	f.has_request_id = 1;
	f.request_id = in->request_id;
	f.body_case = RINGMQ__FRAME__BODY_HELLO_OK;
	f.hello_ok = &ok;
	ringmq__frame__free_unpacked(in, NULL);
	fake_put(out, &len, &f);
	if (write(fd, out, len) != (ssize_t)len)
		return NULL;
	/* Skip what is not the Subscribe (a ping, say). */
	while ((in = fake_recv(fd)) != NULL &&
	       in->body_case != RINGMQ__FRAME__BODY_SUBSCRIBE)
		ringmq__frame__free_unpacked(in, NULL);
	if (in == NULL)
		return NULL;
	len = 0;
	sok.subscription = 7;
	f.request_id = in->request_id;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE_OK;
	f.subscribe_ok = &sok;
	ringmq__frame__free_unpacked(in, NULL);
	fake_put(out, &len, &f);
	end.subscription = 7;
	end.code = RINGMQ__ERROR_CODE__GROUP_NOT_FOUND;
	f.has_request_id = 0;
	f.request_id = 0;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED;
	f.subscription_ended = &end;
	fake_put(out, &len, &f);
	if (write(fd, out, len) == (ssize_t)len)
		fk->ok = 1;
	/* Keep the connection until the client goes. */
	while ((in = fake_recv(fd)) != NULL)
		ringmq__frame__free_unpacked(in, NULL);
	close(fd);
	return NULL;
}

/* An end read in the same pass as its SubscribeOk, before the library
 * made the subscription live, is kept and applied, not lost. */
static void
test_library_keeps_an_end_that_came_with_its_subscribe_ok(void **state)
{
	struct fake fk = { socket(AF_INET, SOCK_STREAM, 0), 0 };
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	ringmq_delivery *d = NULL;
	ringmq_client *w;
	pthread_t th;
	char addr[64];
	uint32_t sub;

	(void)state;
	assert_true(fk.listen_fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fk.listen_fd, (struct sockaddr *)&sa, sizeof(sa)),
			 0);
	assert_int_equal(listen(fk.listen_fd, 1), 0);
	assert_int_equal(
		getsockname(fk.listen_fd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&th, NULL, fake_run, &fk), 0);
	w = testlib_connect_with(addr, "reconnect=false", NULL);
	assert_int_equal(
		ringmq_subscribe(w, &sub, "q", "g", 1, RINGMQ_START_EARLIEST),
		RINGMQ_OK);
	assert_int_equal(ringmq_next(w, &d, 2000), RINGMQ_GROUP_NOT_FOUND);
	assert_int_equal(ringmq_subscription_status(w, sub),
			 RINGMQ_GROUP_NOT_FOUND);
	ringmq_client_free(w); /* the stand-in sees EOF and ends */
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(fk.ok, 1);
	close(fk.listen_fd);
}

static int
job_never_runs(ringmq_client *c, const ringmq_delivery *d, void *ctx)
{
	(void)c;
	(void)d;
	(void)ctx;
	return 0;
}

struct worker_run {
	ringmq_client *c;
	int rc;
};

static void *
worker_thread(void *arg)
{
	struct worker_run *w = arg;

	w->rc = ringmq_worker_run(w->c, "lib-worker", "g", 1, job_never_runs,
				  NULL);
	return NULL;
}

/* The worker helper stops with the end's code when an administrator
 * deletes its group, rather than waiting for jobs forever. */
static void
test_worker_stops_when_its_group_is_deleted(void **state)
{
	struct worker_run w = { testlib_connect(broker.addr), -1 };
	ringmq_client *admin = testlib_connect(broker.addr);
	uint32_t consumers = 0;
	ringmq_group_list *gl = NULL;
	pthread_t th;

	(void)state;
	create_queue("lib-worker", NULL, NULL);
	assert_int_equal(pthread_create(&th, NULL, worker_thread, &w), 0);
	/* Wait (at most 5 s) for its subscription. */
	for (int i = 0; i < 100 && consumers == 0; i++) {
		if (ringmq_group_describe_get(admin, "lib-worker", "g", &gl) ==
			    RINGMQ_OK &&
		    ringmq_group_list_count(gl) == 1)
			consumers = ringmq_group_list_consumers(gl, 0);
		ringmq_group_list_free(gl);
		gl = NULL;
		if (consumers == 0) {
			struct pollfd none = { .fd = -1 };

			(void)poll(&none, 1, 50);
		}
	}
	assert_int_equal(consumers, 1);
	assert_int_equal(ringmq_group_delete(admin, "lib-worker", "g"),
			 RINGMQ_OK);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, RINGMQ_GROUP_NOT_FOUND);
	ringmq_client_free(admin);
	ringmq_client_free(w.c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_over_a_limit_fails_alone),
		cmocka_unit_test(test_request_id_0_is_refused),
		cmocka_unit_test(test_message_limits_cover_the_whole_message),
		cmocka_unit_test(test_queue_max_bytes_counts_headers),
		cmocka_unit_test(test_subscriber_learns_its_subscription_ended),
		cmocka_unit_test(test_acked_total_counts_messages_not_acks),
		cmocka_unit_test(test_edge_cases_behave_as_documented),
		cmocka_unit_test(test_hello_with_producer_id_0_gets_a_new_one),
		cmocka_unit_test(test_library_reports_an_ended_subscription),
		cmocka_unit_test(test_library_checks_the_same_message_limits),
		cmocka_unit_test(
			test_library_drops_the_queued_deliveries_of_an_ended_subscription),
		cmocka_unit_test(
			test_library_keeps_an_end_that_came_with_its_subscribe_ok),
		cmocka_unit_test(test_worker_stops_when_its_group_is_deleted),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("contract", tests, setup_broker,
					   teardown_broker);
}
