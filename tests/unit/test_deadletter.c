/*
 * Unit tests of dead-lettering (broker/core/deadletter.c), in-process against a
 * real store: a message whose lease ends in failure for the last allowed
 * time (nack, expiry, its consumer gone) goes to the dead-letter queue,
 * made on demand, with the ringmq-* headers DESIGN.md lists, for the group
 * it failed in only; a release never counts; and a redrive
 * (groups_redrive, core/deadletter.c) brings it back to that group alone,
 * counted afresh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corefix.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "partition_rule.h"

#define SHORT_MS 40 /* a lease time that runs out in a test */

/* Messages retained by queue name, or -1 if it does not exist. */
static int64_t
retained(struct corefix *f, const char *name)
{
	struct queue *q = queues_find(f->qs, name);
	uint64_t messages, bytes, delayed;

	if (q == NULL)
		return -1;
	queue_totals(q, &messages, &bytes, &delayed);
	return (int64_t)messages;
}

struct retained_wait {
	struct corefix *f;
	const char *name;
	int64_t n;
};

static int
has_retained(void *ctx)
{
	const struct retained_wait *w = ctx;

	return retained(w->f, w->name) >= w->n;
}

/* Ticks until queue name holds n messages or COREFIX_WAIT_MS pass.
 * @return what it holds then (-1: it does not exist). */
static int64_t
wait_retained(struct corefix *f, const char *name, int64_t n)
{
	struct retained_wait w = { f, name, n };

	(void)corefix_wait_for(f, has_retained, &w, COREFIX_WAIT_MS);
	return retained(f, name);
}

/* Reads message (part, offset) of queue name: its headers into h, its
 * payload and key (NUL-terminated, cut to fit) into payload and key. */
static size_t
read_msg(struct corefix *f, const char *name, uint32_t part, uint64_t offset,
	 struct corefix_header *h, size_t max, char *payload, char *key)
{
	struct queue *q = queues_find(f->qs, name);
	struct store_msg_view v;

	assert_non_null(q);
	assert_int_equal(store_msg_get(f->s, q->qid, part, offset, &v), 0);
	snprintf(payload, COREFIX_PAYLOAD_MAX, "%.*s", (int)v.payload_len,
		 (const char *)v.payload);
	snprintf(key, COREFIX_PAYLOAD_MAX, "%.*s", (int)v.key_len,
		 (const char *)v.key);
	return corefix_headers(v.headers, v.headers_len, h, max);
}

/* Checks that h[i] is name = value. */
static void
assert_header(const struct corefix_header *h, const char *name,
	      const char *value)
{
	assert_string_equal(h->name, name);
	assert_string_equal(h->value, value);
}

/* A key that routes to partition part of a queue of n. */
static void
key_for(char *key, size_t size, uint32_t part, uint32_t n)
{
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(key, size, "k%u", i);
		if (partition_rule_for_key(key, strlen(key), n) == part)
			return;
	}
	fail_msg("no key of partition %u", part);
}

/* Queue "orders", 2 partitions, max deliveries 2: message "order-1" with a
 * key and a header at offset 1 of partition 1 (a filler at offset 0), seen
 * by groups "billing" (owner 0) and "audit" (owner 1); billing nacks it
 * twice. */
static void
fail_twice(struct corefix *f, char *key)
{
	static const struct corefix_policy twice = { .has_max_deliveries = 1,
						     .max_deliveries = 2 };
	struct corefix_msg m = { "order-1", NULL, "trace", "abc" };
	struct corefix_owner *o;
	uint64_t offset;

	key_for(key, COREFIX_PAYLOAD_MAX, 1, 2);
	m.key = key;
	corefix_create(f, "orders", 2, &twice);
	corefix_publish_n(f, "orders", 1, "filler", 1);
	corefix_publish(f, "orders", 1, &m, 1, &offset);
	assert_int_equal(offset, 1);
	o = corefix_subscribe(f, 0, "orders", "billing", 0, 1);
	(void)corefix_subscribe(f, 1, "orders", "audit", 0, 10);
	corefix_tick(f);
	assert_int_equal(o->ngot, 1);
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[0].d.lease_id, 0), 0);
	for (uint32_t count = 1; count <= 2; count++) {
		const struct delivery *d = &o->got[count].d;

		assert_int_equal(o->ngot, count + 1);
		assert_int_equal(d->partition, 1);
		assert_int_equal(d->offset, 1);
		assert_int_equal(d->delivery_count, count);
		assert_null(queues_find(f->qs, "orders.dlq"));
		assert_int_equal(
			corefix_end(f, o, COREFIX_NACK, d->lease_id, 0), 0);
	}
}

static void
test_deadletter_after_max_deliveries_with_its_headers(void **state)
{
	struct corefix *f = *state;
	struct corefix_header h[12];
	char key[COREFIX_PAYLOAD_MAX], payload[COREFIX_PAYLOAD_MAX];
	char got_key[COREFIX_PAYLOAD_MAX], first[24], last[24];
	struct corefix_owner *o = &f->owners[0];
	struct queue *q, *dlq;
	uint64_t ready, in_flight, retrying;
	uint32_t ngroups;

	fail_twice(f, key);
	q = queues_find(f->qs, "orders");
	dlq = queues_find(f->qs, "orders.dlq");
	assert_non_null(dlq);
	assert_int_equal(dlq->partitions, 1);
	assert_int_equal(dlq->policy.max_deliveries, 0);
	assert_int_equal(retained(f, "orders.dlq"), 1);
	assert_int_equal(q->counters.dead_lettered, 1);
	/* The payload, key and headers intact, then the broker's. */
	assert_int_equal(
		read_msg(f, "orders.dlq", 0, 0, h, 12, payload, got_key), 9);
	assert_string_equal(payload, "order-1");
	assert_string_equal(got_key, key);
	assert_header(&h[0], "trace", "abc");
	assert_header(&h[1], "ringmq-dlq-reason", "max_deliveries");
	assert_header(&h[2], "ringmq-source-queue", "orders");
	assert_header(&h[3], "ringmq-source-group", "billing");
	assert_header(&h[4], "ringmq-source-partition", "1");
	assert_header(&h[5], "ringmq-source-offset", "1");
	assert_header(&h[6], "ringmq-delivery-count", "2");
	snprintf(first, sizeof(first), "%llu",
		 (unsigned long long)o->got[1].d.now_ms);
	snprintf(last, sizeof(last), "%llu",
		 (unsigned long long)o->got[2].d.now_ms);
	assert_header(&h[7], "ringmq-first-delivery-ms", first);
	assert_header(&h[8], "ringmq-last-delivery-ms", last);
	/* Gone from billing: not delivered again, counted nowhere. */
	corefix_tick(f);
	assert_int_equal(o->ngot, 3);
	groups_queue_counts(q, &ready, &in_flight, &retrying, &ngroups);
	assert_int_equal(ready, 0);
	assert_int_equal(retrying, 0);
	/* Audit's two leases, of its own. */
	assert_int_equal(in_flight, 2);
}

static void
test_deadletter_is_for_the_group_it_failed_in(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *audit = &f->owners[1];
	struct queue *q;
	char key[COREFIX_PAYLOAD_MAX];
	struct store_msg_view v;

	fail_twice(f, key);
	q = queues_find(f->qs, "orders");
	assert_int_equal(audit->ngot, 2);
	assert_int_equal(audit->got[1].d.offset, 1);
	assert_int_equal(audit->got[1].d.delivery_count, 1);
	/* Retained until audit acks it too (and the filler before it, for
	 * the floor to pass them and delete them). */
	assert_int_equal(retained(f, "orders"), 2);
	assert_int_equal(
		corefix_end(f, audit, COREFIX_ACK, audit->got[1].d.lease_id, 0),
		0);
	assert_int_equal(retained(f, "orders"), 1);
	assert_int_equal(store_msg_get(f->s, q->qid, 1, 1, &v), 0);
	assert_int_equal(
		corefix_end(f, audit, COREFIX_ACK, audit->got[0].d.lease_id, 0),
		0);
	assert_int_equal(retained(f, "orders"), 0);
	assert_int_equal(store_msg_get(f->s, q->qid, 1, 1, &v), -RMQ_ENOTFOUND);
	assert_int_equal(retained(f, "orders.dlq"), 1);
}

static void
test_deadletter_when_the_last_lease_expires(void **state)
{
	static const struct corefix_policy once = { .lease_ms = SHORT_MS,
						    .has_max_deliveries = 1,
						    .max_deliveries = 1 };
	struct corefix *f = *state;
	struct corefix_header h[12];
	char payload[COREFIX_PAYLOAD_MAX], key[COREFIX_PAYLOAD_MAX];
	struct corefix_owner *o;

	o = corefix_start(f, "expiring", &once, 1, 1);
	assert_int_equal(wait_retained(f, "expiring.dlq", 1), 1);
	assert_int_equal(read_msg(f, "expiring.dlq", 0, 0, h, 12, payload, key),
			 8);
	assert_string_equal(payload, "m0");
	assert_string_equal(key, "");
	assert_header(&h[0], "ringmq-dlq-reason", "max_deliveries");
	assert_header(&h[5], "ringmq-delivery-count", "1");
	assert_int_equal(queues_find(f->qs, "expiring")->counters.expired, 1);
	corefix_tick(f);
	assert_int_equal(o->ngot, 1);
}

/* Queue "leaving", max deliveries 1: owner 0 takes its three messages
 * and goes away as is_failure says. */
static void
owner_goes(struct corefix *f, int is_failure)
{
	static const struct corefix_policy once = { .has_max_deliveries = 1,
						    .max_deliveries = 1 };
	struct corefix_owner *o;

	o = corefix_start(f, "leaving", &once, 3, 3);
	corefix_unsubscribe(f, o);
	groups_owner_gone(f->gs, &o->lo, is_failure);
	corefix_tick(f);
}

static void
test_deadletter_when_its_owner_goes(void **state)
{
	struct corefix *f = *state;
	struct corefix_header h[12];
	char payload[COREFIX_PAYLOAD_MAX], key[COREFIX_PAYLOAD_MAX];
	char want[COREFIX_PAYLOAD_MAX];
	int seen[3] = { 0 };
	struct corefix_owner *o;

	owner_goes(f, 1);
	/* All three, each once, in whatever order its leases ended. */
	assert_int_equal(retained(f, "leaving.dlq"), 3);
	for (uint64_t i = 0; i < 3; i++) {
		unsigned long src;

		assert_int_equal(
			read_msg(f, "leaving.dlq", 0, i, h, 12, payload, key),
			8);
		assert_string_equal(h[4].name, "ringmq-source-offset");
		src = strtoul(h[4].value, NULL, 10);
		assert_true(src < 3);
		seen[src]++;
		snprintf(want, sizeof(want), "m%lu", src);
		assert_string_equal(payload, want);
	}
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(seen[i], 1);
	o = corefix_subscribe(f, 1, "leaving", "g", 0, 3);
	corefix_tick(f);
	assert_int_equal(o->ngot, 0);
}

static void
test_deadletter_not_when_its_owner_stops(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *o;

	owner_goes(f, 0);
	assert_int_equal(retained(f, "leaving.dlq"), -1);
	o = corefix_subscribe(f, 1, "leaving", "g", 0, 3);
	corefix_tick(f);
	assert_int_equal(o->ngot, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(o->got[i].d.offset, i);
		assert_int_equal(o->got[i].d.delivery_count, 1);
	}
}

struct redrive {
	int status; /* 1: not committed yet */
	size_t n;
};

static void
on_redriven(void *ctx, int status, size_t n)
{
	struct redrive *r = ctx;

	r->status = status;
	r->n = n;
}

/* Redrives the dead letters of src for group, and checks that one went. */
static void
redrive(struct corefix *f, struct queue *src, struct queue *dlq,
	const char *group)
{
	struct redrive r = { 1, 0 };

	assert_int_equal(groups_redrive(f->gs, src, dlq, group, UINT32_MAX,
					on_redriven, &r),
			 0);
	corefix_settle(f);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 1);
}

static void
test_deadletter_redrive_returns_it_to_its_group_only(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *billing = &f->owners[0];
	struct corefix_owner *audit = &f->owners[1];
	struct corefix_owner *newcomer;
	char key[COREFIX_PAYLOAD_MAX], got_key[COREFIX_PAYLOAD_MAX];
	char payload[COREFIX_PAYLOAD_MAX];
	struct corefix_header h[4];
	struct queue *q;

	fail_twice(f, key);
	q = queues_find(f->qs, "orders");
	redrive(f, q, queues_find(f->qs, "orders.dlq"), "billing");
	assert_int_equal(retained(f, "orders.dlq"), 0);
	corefix_tick(f);
	/* Billing gets it at a new offset, counted afresh. */
	assert_int_equal(billing->ngot, 4);
	assert_int_equal(billing->got[3].d.partition, 1);
	assert_int_equal(billing->got[3].d.offset, 2);
	assert_int_equal(billing->got[3].d.delivery_count, 1);
	assert_string_equal(billing->got[3].payload, "order-1");
	assert_int_equal(read_msg(f, "orders", 1, 2, h, 4, payload, got_key),
			 1);
	assert_string_equal(got_key, key);
	assert_header(&h[0], "trace", "abc");
	/* Audit, which had it already, does not. */
	assert_int_equal(audit->ngot, 2);
	assert_int_equal(corefix_end(f, billing, COREFIX_ACK,
				     billing->got[3].d.lease_id, 0),
			 0);
	corefix_tick(f);
	assert_int_equal(billing->ngot, 4);
	assert_int_equal(audit->ngot, 2);
	/* Nor does a group made later: it starts at what audit has not
	 * acked, short of the redriven copy. */
	newcomer = corefix_subscribe(f, 2, "orders", "newcomer", 0, 10);
	corefix_tick(f);
	assert_int_equal(newcomer->ngot, 2);
	assert_int_equal(newcomer->got[0].d.offset, 0);
	assert_int_equal(newcomer->got[1].d.offset, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_deadletter_after_max_deliveries_with_its_headers,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_deadletter_is_for_the_group_it_failed_in,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_deadletter_when_the_last_lease_expires,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_deadletter_when_its_owner_goes, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_deadletter_not_when_its_owner_stops, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_deadletter_redrive_returns_it_to_its_group_only,
			corefix_setup, corefix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
