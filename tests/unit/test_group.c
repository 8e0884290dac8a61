/*
 * Unit tests of group dispatch (broker/core/group.c), in-process against
 * a real store, with consumers faked through struct sub_ops: credit bounds
 * what is leased at once, partitions are served round-robin and each in
 * offset order, a group starts at the earliest or the latest message,
 * subscribers of one group share its messages while separate groups each
 * get all of them, an owner that cannot take output gets nothing until it
 * is woken, and a deleted group detaches its subscriptions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "corefix.h"
#include "lib/err.h"

/* Checks that o's first n deliveries are offsets want[0 .. n) of
 * partition part, in that order, each a first delivery, with payloads
 * "<prefix><offset>". */
static void
assert_got(const struct corefix_owner *o, const char *prefix, uint32_t part,
	   const uint64_t *want, size_t n)
{
	char payload[COREFIX_PAYLOAD_MAX];

	assert_true(o->ngot >= n);
	for (size_t i = 0; i < n; i++) {
		snprintf(payload, sizeof(payload), "%s%llu", prefix,
			 (unsigned long long)want[i]);
		assert_int_equal(o->got[i].d.partition, part);
		assert_int_equal(o->got[i].d.offset, want[i]);
		assert_int_equal(o->got[i].d.delivery_count, 1);
		assert_string_equal(o->got[i].payload, payload);
	}
}

/* Creates queue name, subscribes owner 0 to group ga and owner 1 to group
 * gb (from the earliest, credit each), publishes n messages "m0", "m1",
 * ... and runs a pass. */
static void
two_owners(struct corefix *f, const char *name, const char *ga, const char *gb,
	   uint32_t credit, size_t n)
{
	corefix_create(f, name, 1, NULL);
	(void)corefix_subscribe(f, 0, name, ga, 0, credit);
	(void)corefix_subscribe(f, 1, name, gb, 0, credit);
	corefix_publish_n(f, name, -1, "m", n);
	corefix_tick(f);
}

static void
test_group_credit_bounds_the_leases_out(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *o;
	static const uint64_t first[] = { 0, 1, 2 };

	o = corefix_start(f, "jobs", NULL, 10, 3);
	corefix_tick(f);
	assert_int_equal(o->ngot, 3);
	assert_got(o, "m", 0, first, 3);
	assert_int_equal(o->got[0].d.subscription, 1);
	/* An ack frees one slot: one more. */
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[0].d.lease_id, 0), 0);
	corefix_tick(f);
	assert_int_equal(o->ngot, 4);
	assert_int_equal(o->got[3].d.offset, 3);
	/* More credit: as many more as it adds. */
	sub_set_credit(f->gs, o->sub, 5);
	corefix_tick(f);
	assert_int_equal(o->ngot, 6);
	assert_int_equal(o->got[5].d.offset, 5);
	/* Credit 0 pauses: a freed slot is not filled. */
	sub_set_credit(f->gs, o->sub, 0);
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[1].d.lease_id, 0), 0);
	corefix_tick(f);
	assert_int_equal(o->ngot, 6);
}

static void
test_group_lowered_credit_waits_for_leases_below_it(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *o;

	o = corefix_start(f, "lower", NULL, 6, 3);
	sub_set_credit(f->gs, o->sub, 1);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(
			corefix_end(f, o, COREFIX_ACK, o->got[i].d.lease_id, 0),
			0);
		assert_int_equal(o->ngot, 3);
	}
	/* The last of the three: one out, as the credit says. */
	assert_int_equal(
		corefix_end(f, o, COREFIX_ACK, o->got[2].d.lease_id, 0), 0);
	corefix_tick(f);
	assert_int_equal(o->ngot, 4);
	assert_int_equal(o->got[3].d.offset, 3);
}

static void
test_group_partitions_round_robin_each_in_offset_order(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *o;
	uint64_t next[3] = { 0 };

	corefix_create(f, "parts", 3, NULL);
	for (int part = 0; part < 3; part++)
		corefix_publish_n(f, "parts", part, "m", 4);
	o = corefix_subscribe(f, 0, "parts", "g", 0, 100);
	corefix_tick(f);
	assert_int_equal(o->ngot, 12);
	for (size_t i = 0; i < 12; i++) {
		const struct delivery *d = &o->got[i].d;

		/* One partition after another, each from its lowest
		 * offset up. */
		assert_int_equal(d->partition, i % 3);
		assert_int_equal(d->offset, next[d->partition]++);
		assert_int_equal(d->delivery_count, 1);
	}
}

static void
test_group_starts_at_the_earliest_or_the_latest(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *early, *late;
	static const uint64_t all[] = { 0, 1, 2, 3, 4 };
	static const uint64_t after[] = { 3, 4 };

	corefix_create(f, "start", 1, NULL);
	corefix_publish_n(f, "start", -1, "m", 3);
	early = corefix_subscribe(f, 0, "start", "early", 0, 100);
	late = corefix_subscribe(f, 1, "start", "late", 1, 100);
	corefix_tick(f);
	assert_int_equal(late->ngot, 0);
	/* Offsets 3 and 4: "m0" and "m1" of the second publish. */
	corefix_publish_n(f, "start", -1, "n", 2);
	corefix_tick(f);
	assert_int_equal(early->ngot, 5);
	assert_got(early, "m", 0, all, 3);
	assert_int_equal(late->ngot, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(early->got[3 + i].d.offset, after[i]);
		assert_int_equal(late->got[i].d.offset, after[i]);
	}
	assert_string_equal(late->got[0].payload, "n0");
	assert_string_equal(late->got[1].payload, "n1");
}

static void
test_group_subscribers_of_one_group_share_its_messages(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a = &f->owners[0], *b = &f->owners[1];
	int seen[10] = { 0 };

	two_owners(f, "shared", "workers", "workers", 100, 10);
	/* Round-robin over the two: five each, no message twice. */
	assert_int_equal(a->ngot, 5);
	assert_int_equal(b->ngot, 5);
	for (size_t i = 0; i < 5; i++) {
		seen[a->got[i].d.offset]++;
		seen[b->got[i].d.offset]++;
		assert_int_equal(a->got[i].d.subscription, 1);
		assert_int_equal(b->got[i].d.subscription, 2);
	}
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(seen[i], 1);
}

static void
test_group_separate_groups_each_get_every_message(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a = &f->owners[0], *b = &f->owners[1];
	static const uint64_t all[] = { 0, 1, 2, 3 };
	uint64_t ready, in_flight, retrying;
	struct store_msg_view v;
	uint32_t ngroups;
	struct queue *q;

	two_owners(f, "fanout", "billing", "audit", 100, 4);
	q = queues_find(f->qs, "fanout");
	assert_int_equal(a->ngot, 4);
	assert_got(a, "m", 0, all, 4);
	assert_int_equal(b->ngot, 4);
	assert_got(b, "m", 0, all, 4);
	groups_queue_counts(q, &ready, &in_flight, &retrying, &ngroups);
	assert_int_equal(ngroups, 2);
	assert_int_equal(in_flight, 8);
	assert_int_equal(ready, 0);
	/* One group's ack is its own: the message stays for the other, and
	 * goes once both have acked it. */
	assert_int_equal(
		corefix_end(f, a, COREFIX_ACK, a->got[0].d.lease_id, 0), 0);
	assert_int_equal(store_msg_get(f->s, q->qid, 0, 0, &v), 0);
	assert_int_equal(
		corefix_end(f, b, COREFIX_ACK, b->got[0].d.lease_id, 0), 0);
	assert_int_equal(store_msg_get(f->s, q->qid, 0, 0, &v), -RMQ_ENOTFOUND);
}

static void
test_group_owner_not_writable_gets_nothing_until_woken(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *o;
	static const uint64_t first[] = { 0, 1, 2, 3 };

	corefix_create(f, "slow", 1, NULL);
	o = corefix_subscribe(f, 0, "slow", "g", 0, 4);
	o->is_writable = 0;
	corefix_publish_n(f, "slow", -1, "m", 6);
	corefix_tick(f);
	corefix_tick(f);
	assert_int_equal(o->ngot, 0);
	o->is_writable = 1;
	sub_wake(f->gs, o->sub);
	corefix_tick(f);
	assert_int_equal(o->ngot, 4);
	assert_got(o, "m", 0, first, 4);
}

static void
test_group_owner_filling_up_mid_pass_stops_its_share(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a = &f->owners[0], *b = &f->owners[1];
	static const uint64_t a_want[] = { 0, 2 };
	static const uint64_t b_want[] = { 1, 3, 4, 5 };

	a->unwritable_at = 2;
	two_owners(f, "full", "g", "g", 10, 6);
	/* Alternating until a is full; b takes the rest. */
	assert_int_equal(a->ngot, 2);
	assert_got(a, "m", 0, a_want, 2);
	assert_int_equal(b->ngot, 4);
	assert_got(b, "m", 0, b_want, 4);
}

static void
on_deleted(void *ctx, int status)
{
	*(int *)ctx = status;
}

static void
test_group_delete_detaches_its_subscriptions(void **state)
{
	struct corefix *f = *state;
	struct corefix_owner *a = &f->owners[0], *b = &f->owners[1];
	struct queue *q;
	int status = 1;

	two_owners(f, "doomed", "g", "h", 10, 2);
	q = queues_find(f->qs, "doomed");
	assert_int_equal(a->ngot, 2);
	assert_int_equal(
		groups_delete_named(f->gs, q, "g", on_deleted, &status), 0);
	corefix_settle(f);
	assert_int_equal(status, 0);
	assert_int_equal(a->detached_code, -RMQ_EGROUP_NOT_FOUND);
	assert_null(a->sub);
	assert_int_equal(groups_exists(q, "g"), 0);
	/* Its leases ended with it, not as failures; the other group's
	 * stand. */
	assert_int_equal(
		corefix_end(f, a, COREFIX_ACK, a->got[0].d.lease_id, 0),
		-RMQ_ENOT_LEASED);
	assert_int_equal(b->detached_code, 1);
	assert_int_equal(
		corefix_end(f, b, COREFIX_ACK, b->got[0].d.lease_id, 0), 0);
	assert_int_equal(
		groups_delete_named(f->gs, q, "g", on_deleted, &status),
		-RMQ_EGROUP_NOT_FOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_group_credit_bounds_the_leases_out, corefix_setup,
			corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_lowered_credit_waits_for_leases_below_it,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_partitions_round_robin_each_in_offset_order,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_starts_at_the_earliest_or_the_latest,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_subscribers_of_one_group_share_its_messages,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_separate_groups_each_get_every_message,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_owner_not_writable_gets_nothing_until_woken,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_owner_filling_up_mid_pass_stops_its_share,
			corefix_setup, corefix_teardown),
		cmocka_unit_test_setup_teardown(
			test_group_delete_detaches_its_subscriptions,
			corefix_setup, corefix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
