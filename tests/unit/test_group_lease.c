/*
 * Unit tests of leases (broker/core/group.c), in-process against a real
 * store, with consumers faked through struct sub_ops: how ack, nack (with
 * and without a delay), release and touch end or change a lease, what a
 * lease id that is not the caller's answers, and what expiry and a
 * consumer going away do to the delivery count (DESIGN.md, "Semantics").
 *
 * Leases run on the real monotonic clock: the times here are tens of
 * milliseconds, and every wait is bounded (corefix_wait).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corefix.h"
#include "lib/clock.h"
#include "lib/err.h"

#define SHORT_MS 40 /* a lease time that runs out in a test */
/* A nack's delay: also long enough that the pass right after the nack
 * comes before its end, even on a loaded machine. */
#define DELAY_MS 150

/* The queue's counts over its groups: ready, in flight, retrying. */
static void
assert_counts(struct queue *q, uint64_t ready, uint64_t in_flight,
	      uint64_t retrying)
{
	uint64_t r, i, t;
	uint32_t ngroups;

	groups_queue_counts(q, &r, &i, &t, &ngroups);
	assert_int_equal(r, ready);
	assert_int_equal(i, in_flight);
	assert_int_equal(t, retrying);
}

static void
test_lease_ack_ends_it_for_good(void **state)
{
	struct corefix *f = *state;
	struct queue *q;
	struct corefix_owner *o;
	struct store_msg_view v;
	uint64_t id;

	o = corefix_start(f, "acks", NULL, 1, 10);
	q = queues_find(f->qs, "acks");
	assert_counts(q, 0, 1, 0);
	id = o->got[0].d.lease_id;
	assert_int_equal(corefix_end(f, o, COREFIX_ACK, id, 0), 0);
	assert_counts(q, 0, 0, 0);
	assert_int_equal(q->counters.acked, 1);
	/* Acked by every group: deleted. */
	assert_int_equal(store_msg_get(f->s, q->qid, 0, 0, &v), -RMQ_ENOTFOUND);
	/* Acking it again is OK; any other end of it is not. */
	assert_int_equal(corefix_end(f, o, COREFIX_ACK, id, 0), 0);
	assert_int_equal(corefix_end(f, o, COREFIX_NACK, id, 0),
			 -RMQ_ENOT_LEASED);
	corefix_tick(f);
	assert_int_equal(o->ngot, 1);
}

static void
test_lease_unknown_or_foreign_is_not_leased(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a = corefix_start(f, "foreign", NULL, 2, 1);
	struct corefix_owner *b = corefix_subscribe(f, 1, "foreign", "g", 0, 1);
	struct queue *q = queues_find(f->qs, "foreign");
	uint64_t id, remaining = 1;

	corefix_tick(f);
	assert_int_equal(b->ngot, 1);
	id = a->got[0].d.lease_id;
	assert_int_equal(corefix_end(f, a, COREFIX_ACK, id + 1000, 0),
			 -RMQ_ENOT_LEASED);
	/* a's lease, named by b. */
	assert_int_equal(corefix_end(f, b, COREFIX_ACK, id, 0),
			 -RMQ_ENOT_LEASED);
	assert_int_equal(corefix_end(f, b, COREFIX_NACK, id, 0),
			 -RMQ_ENOT_LEASED);
	assert_int_equal(corefix_end(f, b, COREFIX_RELEASE, id, 0),
			 -RMQ_ENOT_LEASED);
	assert_int_equal(corefix_touch(f, b, id, 0, &remaining),
			 -RMQ_ENOT_LEASED);
	assert_int_equal(remaining, 0);
	/* None of it touched a's lease. */
	assert_counts(q, 0, 2, 0);
	assert_int_equal(q->counters.acked + q->counters.nacked, 0);
	assert_int_equal(corefix_end(f, a, COREFIX_ACK, id, 0), 0);
}

static void
test_lease_ops_answer_each_id_of_a_request(void **state)
{
	struct corefix *f = *state;
	struct queue *q;
	struct corefix_owner *o;
	uint64_t ids[4];
	int codes[4];

	o = corefix_start(f, "batch", NULL, 3, 3);
	q = queues_find(f->qs, "batch");
	/* One of its own, one never given, the same one again, another. */
	ids[0] = o->got[0].d.lease_id;
	ids[1] = o->got[2].d.lease_id + 1000;
	ids[2] = o->got[0].d.lease_id;
	ids[3] = o->got[1].d.lease_id;
	corefix_end_n(f, o, COREFIX_NACK, ids, 4, 0, codes);
	assert_int_equal(codes[0], 0);
	assert_int_equal(codes[1], -RMQ_ENOT_LEASED);
	assert_int_equal(codes[2], -RMQ_ENOT_LEASED);
	assert_int_equal(codes[3], 0);
	assert_int_equal(q->counters.nacked, 2);
	/* Both back, lowest offset first; offset 2 still out. */
	assert_int_equal(o->ngot, 5);
	assert_int_equal(o->got[3].d.offset, 0);
	assert_int_equal(o->got[4].d.offset, 1);
	ids[0] = o->got[3].d.lease_id;
	ids[1] = o->got[4].d.lease_id;
	ids[2] = o->got[3].d.lease_id;
	ids[3] = o->got[2].d.lease_id;
	corefix_end_n(f, o, COREFIX_ACK, ids, 4, 0, codes);
	/* An id acked earlier in the same request is acked: OK. */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(codes[i], 0);
	assert_int_equal(q->counters.acked, 3);
	assert_counts(q, 0, 0, 0);
}

static void
test_lease_nack_redelivers_at_once_ahead_of_newer(void **state)
{
	struct corefix *f = *state;
	struct queue *q;
	struct corefix_owner *o;

	o = corefix_start(f, "nacks", NULL, 3, 1);
	q = queues_find(f->qs, "nacks");
	assert_int_equal(
		corefix_end(f, o, COREFIX_NACK, o->got[0].d.lease_id, 0), 0);
	/* The same message again, before offset 1, counted. */
	assert_int_equal(o->ngot, 2);
	assert_int_equal(o->got[1].d.offset, 0);
	assert_int_equal(o->got[1].d.delivery_count, 2);
	assert_string_equal(o->got[1].payload, "m0");
	assert_true(o->got[1].d.lease_id != o->got[0].d.lease_id);
	assert_int_equal(q->counters.nacked, 1);
	assert_int_equal(q->counters.redelivered, 1);
}

static void
test_lease_nack_with_delay_redelivers_after_it(void **state)
{
	struct corefix *f = *state;
	struct queue *q;
	struct corefix_owner *o;
	uint64_t nacked_ms;

	o = corefix_start(f, "later", NULL, 2, 1);
	q = queues_find(f->qs, "later");
	nacked_ms = clock_mono_ms();
	assert_int_equal(
		corefix_end(f, o, COREFIX_NACK, o->got[0].d.lease_id, DELAY_MS),
		0);
	/* Waiting out its delay, it holds nothing else back. */
	assert_int_equal(o->ngot, 2);
	assert_int_equal(o->got[1].d.offset, 1);
	assert_counts(q, 0, 1, 1);
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[1].d.lease_id, 0), 0);
	assert_int_equal(corefix_wait(f, o, 3, COREFIX_WAIT_MS), 3);
	assert_true(o->got[2].mono_ms - nacked_ms >= DELAY_MS);
	assert_int_equal(o->got[2].d.offset, 0);
	assert_int_equal(o->got[2].d.delivery_count, 2);
	assert_counts(q, 0, 1, 0);
}

static void
test_lease_outlives_its_subscription(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a, *b;

	a = corefix_start(f, "unsub", NULL, 2, 2);
	corefix_unsubscribe(f, a);
	b = corefix_subscribe(f, 1, "unsub", "g", 0, 2);
	corefix_tick(f);
	assert_int_equal(b->ngot, 0);
	/* Its owner still ends them: an ack holds, a nack goes to b. */
	assert_int_equal(
		corefix_end(f, a, COREFIX_ACK, a->got[0].d.lease_id, 0), 0);
	assert_int_equal(
		corefix_end(f, a, COREFIX_NACK, a->got[1].d.lease_id, 0), 0);
	assert_int_equal(b->ngot, 1);
	assert_int_equal(b->got[0].d.offset, 1);
	assert_int_equal(b->got[0].d.delivery_count, 2);
	assert_int_equal(a->ngot, 2);
}

static void
test_lease_release_redelivers_without_counting(void **state)
{
	/* One delivery allowed: a counted release would dead-letter. */
	static const struct corefix_policy once = { .has_max_deliveries = 1,
						    .max_deliveries = 1 };
	struct corefix *f = *state;
	struct corefix_owner *o = corefix_start(f, "rel", &once, 2, 1);
	struct queue *q = queues_find(f->qs, "rel");

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(o->ngot, i + 1);
		assert_int_equal(o->got[i].d.offset, 0);
		assert_int_equal(o->got[i].d.delivery_count, 1);
		assert_int_equal(corefix_end(f, o, COREFIX_RELEASE,
					     o->got[i].d.lease_id, 0),
				 0);
	}
	assert_int_equal(o->ngot, 4);
	assert_int_equal(o->got[3].d.offset, 0);
	assert_int_equal(o->got[3].d.delivery_count, 1);
	assert_null(queues_find(f->qs, "rel.dlq"));
	assert_int_equal(q->counters.nacked, 0);
	assert_int_equal(q->counters.redelivered, 0);
}

static void
test_lease_touch_extends_it(void **state)
{
	static const struct corefix_policy brief = { .lease_ms = SHORT_MS };
	struct corefix *f = *state;
	struct corefix_owner *o;
	uint64_t id, remaining = 0;

	o = corefix_start(f, "touch", &brief, 1, 1);
	assert_int_equal(o->got[0].d.lease_remaining_ms, SHORT_MS);
	id = o->got[0].d.lease_id;
	/* 0: the queue's lease time, from now. */
	assert_int_equal(corefix_touch(f, o, id, 0, &remaining), 0);
	assert_int_equal(remaining, SHORT_MS);
	assert_int_equal(corefix_touch(f, o, id, 60000, &remaining), 0);
	assert_int_equal(remaining, 60000);
	/* Three lease times later it has not expired. */
	assert_int_equal(corefix_wait(f, o, 2, 3 * SHORT_MS), 1);
	assert_int_equal(corefix_end(f, o, COREFIX_ACK, id, 0), 0);
}

static void
test_lease_touch_stops_at_the_max_lease(void **state)
{
	static const struct corefix_policy capped = {
		.lease_ms = SHORT_MS,
		.max_lease_ms = 2 * SHORT_MS,
	};
	struct corefix *f = *state;
	struct corefix_owner *o;
	uint64_t before = clock_mono_ms(), after, remaining = 0;

	/* Delivered after before. */
	o = corefix_start(f, "capped", &capped, 1, 1);
	assert_int_equal(
		corefix_touch(f, o, o->got[0].d.lease_id, 60000, &remaining),
		0);
	after = clock_mono_ms();
	/* Delivery time + the max lease, whatever was asked. */
	assert_true(remaining <= 2 * SHORT_MS);
	assert_true(remaining + (after - before) >= 2 * SHORT_MS);
	assert_int_equal(corefix_wait(f, o, 2, COREFIX_WAIT_MS), 2);
	assert_true(o->got[1].mono_ms - before >= 2 * SHORT_MS);
	assert_int_equal(o->got[1].d.delivery_count, 2);
}

static void
test_lease_expiry_redelivers_counting_a_failure(void **state)
{
	static const struct corefix_policy brief = { .lease_ms = SHORT_MS };
	struct corefix *f = *state;
	struct queue *q;
	struct corefix_owner *o;
	uint64_t id, remaining = 1, before = clock_mono_ms();

	/* Delivered after before. */
	o = corefix_start(f, "expiry", &brief, 1, 1);
	q = queues_find(f->qs, "expiry");
	id = o->got[0].d.lease_id;
	assert_int_equal(corefix_wait(f, o, 2, COREFIX_WAIT_MS), 2);
	assert_true(o->got[1].mono_ms - before >= SHORT_MS);
	assert_int_equal(o->got[1].d.offset, 0);
	assert_int_equal(o->got[1].d.delivery_count, 2);
	assert_int_equal(q->counters.expired, 1);
	/* The expired lease answers so; the new one stands. */
	assert_int_equal(corefix_end(f, o, COREFIX_ACK, id, 0),
			 -RMQ_ELEASE_EXPIRED);
	assert_int_equal(corefix_touch(f, o, id, 0, &remaining),
			 -RMQ_ELEASE_EXPIRED);
	assert_int_equal(remaining, 0);
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[1].d.lease_id, 0), 0);
}

/* Owner 0 takes the one message and goes away; owner 1 gets it then.
 * @return the delivery count owner 1 sees. */
static uint32_t
redelivery_count_after_owner_gone(struct corefix *f, int is_failure)
{
	struct corefix_owner *a, *b;

	a = corefix_start(f, "gone", NULL, 1, 1);
	b = corefix_subscribe(f, 1, "gone", "g", 0, 1);
	corefix_tick(f);
	assert_int_equal(b->ngot, 0);
	corefix_unsubscribe(f, a);
	groups_owner_gone(f->gs, &a->lo, is_failure);
	assert_null(a->lo.leases);
	corefix_tick(f);
	assert_int_equal(b->ngot, 1);
	assert_int_equal(b->got[0].d.offset, 0);
	/* Its lease went with it. */
	assert_int_equal(
		corefix_end(f, a, COREFIX_ACK, a->got[0].d.lease_id, 0),
		-RMQ_ENOT_LEASED);
	return b->got[0].d.delivery_count;
}

static void
test_lease_owner_gone_counts_a_failure(void **state)
{
	assert_int_equal(redelivery_count_after_owner_gone(*state, 1), 2);
}

static void
test_lease_owner_gone_stopping_counts_none(void **state)
{
	assert_int_equal(redelivery_count_after_owner_gone(*state, 0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lease_ack_ends_it_for_good,
						corefix_setup,
						corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_unknown_or_foreign_is_not_leased,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_ops_answer_each_id_of_a_request,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_nack_redelivers_at_once_ahead_of_newer,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_nack_with_delay_redelivers_after_it,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_outlives_its_subscription, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_release_redelivers_without_counting,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(test_lease_touch_extends_it,
						corefix_setup,
						corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_touch_stops_at_the_max_lease, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_expiry_redelivers_counting_a_failure,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_owner_gone_counts_a_failure, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_lease_owner_gone_stopping_counts_none,
			corefix_setup, corefix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
