/*
 * Unit tests of the cluster's control plane on the in-memory coordination
 * store with a simulated clock: the store's revisions, leases and
 * transactions; placement (even shares, the fewest moves); the
 * controller's election, fencing (a controller that lost its lease
 * cannot write, even mid-move), and brokers that join, die and come back;
 * then a seeded random run of all of it against the invariants.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/controller.h"
#include "cluster/coord.h"
#include "cluster/placement.h"
#include "xorshift.h"

#define TTL_MS 3000

/* ------------------------------------------------------------ the store */

static void
put(struct coord *c, const char *k, const char *v, int64_t lease)
{
	struct coord_op op = { COORD_PUT, k, v, lease };
	int64_t rev;
	int ok = 0;

	assert_int_equal(coord_txn(c, NULL, 0, &op, 1, &ok, &rev), 0);
	assert_true(ok);
}

static void
test_store_revisions_leases_and_transactions(void **state)
{
	struct coord_mem *m;
	struct coord c;
	struct coord_kvs kvs = { 0 };
	const struct coord_kv *kv;
	struct coord_cmp cmp = { "/a", COORD_CREATE_REV, 0, NULL };
	struct coord_op op = { COORD_PUT, "/a", "2", 0 };
	int64_t lease, rev;
	int ok;

	(void)state;
	assert_int_equal(coord_mem_new(&m), 0);
	c = coord_mem_connect(m);
	put(&c, "/a", "1", 0);
	put(&c, "/b", "x", 0);
	assert_int_equal(coord_mem_rev(m), 2);
	/* Create-if-absent fails on an existing key: nothing changes. */
	assert_int_equal(coord_txn(&c, &cmp, 1, &op, 1, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(rev, 2);
	put(&c, "/a", "3", 0);
	assert_int_equal(coord_range(&c, "/", &kvs), 0);
	assert_int_equal(kvs.n, 2);
	kv = coord_kvs_find(&kvs, "/a");
	assert_string_equal(kv->value, "3");
	assert_int_equal(kv->create_rev, 1);
	assert_int_equal(kv->mod_rev, 3);
	assert_int_equal(kvs.rev, 3);
	/* A lease not kept alive takes its keys, in one revision. */
	coord_mem_set_time(m, 1000);
	assert_int_equal(coord_lease_grant(&c, TTL_MS, &lease), 0);
	put(&c, "/l1", "x", lease);
	put(&c, "/l2", "y", lease);
	coord_mem_set_time(m, 3999);
	assert_int_equal(coord_lease_keepalive(&c, lease), 0);
	coord_mem_set_time(m, 6998);
	assert_int_equal(coord_range(&c, "/l", &kvs), 0);
	assert_int_equal(kvs.n, 2);
	rev = coord_mem_rev(m);
	coord_mem_set_time(m, 6999);
	assert_int_equal(coord_range(&c, "/l", &kvs), 0);
	assert_int_equal(kvs.n, 0);
	assert_int_equal(coord_mem_rev(m), rev + 1);
	assert_int_equal(coord_lease_keepalive(&c, lease), -ENOENT);
	op = (struct coord_op){ COORD_PUT, "/l3", "z", lease };
	assert_int_equal(coord_txn(&c, NULL, 0, &op, 1, &ok, &rev), -ENOENT);
	/* Unreachable: every call says so. */
	coord_mem_set_down(m, 1);
	assert_int_equal(coord_range(&c, "/", &kvs), -EIO);
	assert_int_equal(coord_lease_grant(&c, TTL_MS, &lease), -EIO);
	coord_mem_set_down(m, 0);
	assert_int_equal(coord_range(&c, "/", &kvs), 0);
	assert_int_equal(kvs.n, 2);
	coord_kvs_free(&kvs);
	coord_mem_free(m);
}

/* -------------------------------------------------------------- placement */

static void
count_owners(const int *owner, uint32_t n, size_t nb, size_t *held)
{
	memset(held, 0, nb * sizeof(*held));
	for (uint32_t i = 0; i < n; i++) {
		assert_true(owner[i] >= 0 && (size_t)owner[i] < nb);
		held[owner[i]]++;
	}
}

static void
test_placement_is_even_and_moves_the_fewest(void **state)
{
	const char *three[] = { "b1", "b2", "b3" };
	const char *four[] = { "b1", "b2", "b3", "b4" };
	const char *two[] = { "b1", "b3" }; /* b2 died */
	int owner[12], again[12];
	size_t held[4];

	(void)state;
	for (int i = 0; i < 12; i++)
		owner[i] = -1;
	assert_int_equal(placement_assign("q", 12, three, 3, owner), 12);
	count_owners(owner, 12, 3, held);
	assert_int_equal(held[0], 4);
	assert_int_equal(held[1], 4);
	assert_int_equal(held[2], 4);
	/* The same brokers: nothing moves; any order of them: the same. */
	memcpy(again, owner, sizeof(owner));
	assert_int_equal(placement_assign("q", 12, three, 3, again), 0);
	assert_memory_equal(again, owner, sizeof(owner));
	/* A fourth joins: it takes its share (3), the rest stay. */
	memcpy(again, owner, sizeof(owner));
	assert_int_equal(placement_assign("q", 12, four, 4, again), 3);
	count_owners(again, 12, 4, held);
	for (int b = 0; b < 4; b++)
		assert_int_equal(held[b], 3);
	for (int i = 0; i < 12; i++)
		assert_true(again[i] == owner[i] || again[i] == 3);
	/* b2 dies: only its partitions move. */
	memcpy(again, owner, sizeof(owner));
	for (int i = 0; i < 12; i++)
		again[i] = owner[i] == 0 ? 0 : owner[i] == 2 ? 1 : -1;
	assert_int_equal(placement_assign("q", 12, two, 2, again), 4);
	count_owners(again, 12, 2, held);
	assert_int_equal(held[0], 6);
	assert_int_equal(held[1], 6);
	for (int i = 0; i < 12; i++)
		if (owner[i] != 1)
			assert_int_equal(again[i], owner[i] == 0 ? 0 : 1);
	/* 10 over 3: 4, 3, 3. */
	for (int i = 0; i < 10; i++)
		owner[i] = -1;
	assert_int_equal(placement_assign("r", 10, three, 3, owner), 10);
	count_owners(owner, 10, 3, held);
	assert_int_equal(held[0] + held[1] + held[2], 10);
	for (int b = 0; b < 3; b++)
		assert_true(held[b] == 3 || held[b] == 4);
	assert_int_equal(placement_assign("q", 12, three, 0, owner), -EINVAL);
}

/* ------------------------------------------------------------ controller */

struct cluster {
	struct coord_mem *m;
	struct coord c;
	uint64_t now;
	struct controller b[4];
	const char *addr[4];
};

static void
cluster_up(struct cluster *cl, int n)
{
	static const char *const ids[] = { "b1", "b2", "b3", "b4" };
	static const char *const addrs[] = { "10.0.0.1:7420", "10.0.0.2:7420",
					     "10.0.0.3:7420", "10.0.0.4:7420" };

	memset(cl, 0, sizeof(*cl));
	assert_int_equal(coord_mem_new(&cl->m), 0);
	cl->c = coord_mem_connect(cl->m);
	for (int i = 0; i < n; i++) {
		cl->addr[i] = addrs[i];
		assert_int_equal(controller_init(&cl->b[i], &cl->c, "test",
						 ids[i], TTL_MS),
				 0);
		assert_int_equal(controller_register(&cl->b[i], addrs[i]), 0);
	}
}

/* The simulated clock moves by ms in steps of 500; the brokers in alive
 * (a bit mask) keep their leases alive at each step. */
static void
advance(struct cluster *cl, uint64_t ms, unsigned alive)
{
	for (uint64_t t = 0; t < ms; t += 500) {
		cl->now += 500;
		coord_mem_set_time(cl->m, cl->now);
		for (int i = 0; i < 4; i++)
			if ((alive & (1u << i)) && cl->b[i].ttl_ms > 0)
				assert_int_equal(
					controller_keepalive(&cl->b[i],
							     cl->addr[i]),
					0);
	}
}

/* Owners of q's n partitions: counts per broker id ("b1".."b4") into
 * held[4], epochs into epoch[] (may be NULL). */
static void
owners(struct cluster *cl, const char *q, uint32_t n, size_t *held,
       int64_t *epoch)
{
	memset(held, 0, 4 * sizeof(*held));
	for (uint32_t i = 0; i < n; i++) {
		char who[CLUSTER_ID_MAX];
		int64_t e;

		assert_int_equal(controller_owner(&cl->b[0], q, i, who, &e), 0);
		assert_true(who[0] == 'b' && who[1] >= '1' && who[1] <= '4');
		held[who[1] - '1']++;
		if (epoch)
			epoch[i] = e;
	}
}

static void
test_controller_election_fencing_and_brokers_coming_and_going(void **state)
{
	struct cluster cl;
	size_t held[4];
	int64_t epoch[12], epoch2[12], first;

	(void)state;
	cluster_up(&cl, 3);
	assert_int_equal(controller_campaign(&cl.b[0]), 1);
	assert_int_equal(controller_campaign(&cl.b[1]), 0);
	assert_int_equal(controller_campaign(&cl.b[2]), 0);
	first = cl.b[0].epoch;
	assert_true(first > 0);
	/* Only the controller defines queues and places partitions. */
	assert_int_equal(controller_queue_create(&cl.b[1], "jobs", 12), -EPERM);
	assert_int_equal(controller_queue_create(&cl.b[0], "jobs", 12), 0);
	assert_int_equal(controller_queue_create(&cl.b[0], "jobs", 12),
			 -EEXIST);
	assert_int_equal(controller_reconcile(&cl.b[1]), -EPERM);
	assert_int_equal(controller_reconcile(&cl.b[0]), 12);
	assert_int_equal(controller_reconcile(&cl.b[0]), 0);
	owners(&cl, "jobs", 12, held, epoch);
	assert_int_equal(held[0], 4);
	assert_int_equal(held[1], 4);
	assert_int_equal(held[2], 4);
	for (int i = 0; i < 12; i++)
		assert_int_equal(epoch[i], 1);

	/* b1, the controller, stalls past its lease: its broker key and
	 * the controller key go; b2 takes over with a later epoch. */
	advance(&cl, TTL_MS + 500, 0x6);
	assert_int_equal(controller_campaign(&cl.b[1]), 1);
	assert_true(cl.b[1].epoch > first);
	/* b1 wakes up still believing it leads: every write is refused. */
	assert_int_equal(cl.b[0].epoch, first);
	assert_int_equal(controller_queue_create(&cl.b[0], "late", 3), -ESTALE);
	assert_int_equal(cl.b[0].epoch, 0);
	cl.b[0].epoch = first;
	assert_int_equal(controller_reconcile(&cl.b[0]), -ESTALE);
	assert_int_equal(cl.b[0].epoch, 0);
	/* The new controller moves b1's four partitions, and only them. */
	assert_int_equal(controller_reconcile(&cl.b[1]), 4);
	owners(&cl, "jobs", 12, held, epoch2);
	assert_int_equal(held[0], 0);
	assert_int_equal(held[1], 6);
	assert_int_equal(held[2], 6);
	for (int i = 0; i < 12; i++)
		assert_true(epoch2[i] == epoch[i] || epoch2[i] == epoch[i] + 1);

	/* b1 comes back: registered on a new lease, not the controller;
	 * the controller gives it its share back. */
	assert_int_equal(controller_keepalive(&cl.b[0], cl.addr[0]), 0);
	assert_int_equal(cl.b[0].epoch, 0);
	assert_int_equal(controller_campaign(&cl.b[0]), 0);
	assert_int_equal(controller_reconcile(&cl.b[1]), 4);
	owners(&cl, "jobs", 12, held, NULL);
	assert_int_equal(held[0], 4);
	assert_int_equal(held[1], 4);
	assert_int_equal(held[2], 4);
	coord_mem_free(cl.m);
}

/* A store that loses the calling controller's lease just before its
 * first placement write: the controller "dies" mid-move. */
struct stalling {
	struct coord_mem *m;
	struct cluster *cl;
	int armed;
};

static int
st_range(void *be, const char *prefix, struct coord_kvs *out)
{
	struct stalling *s = be;
	struct coord c = coord_mem_connect(s->m);

	return coord_range(&c, prefix, out);
}

static int
st_txn(void *be, const struct coord_cmp *cmp, size_t ncmp,
       const struct coord_op *ops, size_t nops, int *ok, int64_t *rev)
{
	struct stalling *s = be;
	struct coord c = coord_mem_connect(s->m);

	if (s->armed && nops > 0) {
		s->armed = 0;
		/* The clock jumps past the lease of b1, whom nobody keeps
		 * alive, while the others keep theirs. */
		advance(s->cl, TTL_MS + 500, 0xe);
	}
	return coord_txn(&c, cmp, ncmp, ops, nops, ok, rev);
}

static int
st_grant(void *be, int64_t ttl, int64_t *id)
{
	struct coord c = coord_mem_connect(((struct stalling *)be)->m);

	return coord_lease_grant(&c, ttl, id);
}

static int
st_keepalive(void *be, int64_t id)
{
	struct coord c = coord_mem_connect(((struct stalling *)be)->m);

	return coord_lease_keepalive(&c, id);
}

static int
st_revoke(void *be, int64_t id)
{
	struct coord c = coord_mem_connect(((struct stalling *)be)->m);

	return coord_lease_revoke(&c, id);
}

static void
st_free(void *be)
{
	(void)be;
}

static const struct coord_ops stalling_ops = {
	st_range, st_txn, st_grant, st_keepalive, st_revoke, st_free,
};

static void
test_controller_dying_mid_move_writes_nothing(void **state)
{
	struct cluster cl;
	struct stalling s;
	struct coord stall = { &stalling_ops, &s };
	size_t held[4];

	(void)state;
	cluster_up(&cl, 3);
	s = (struct stalling){ cl.m, &cl, 0 };
	assert_int_equal(controller_campaign(&cl.b[0]), 1);
	assert_int_equal(controller_queue_create(&cl.b[0], "jobs", 12), 0);
	assert_int_equal(controller_reconcile(&cl.b[0]), 12);
	/* b4 joins: a move is due. b1 computes it, then loses its lease
	 * before the write lands: the write is refused whole. */
	assert_int_equal(controller_init(&cl.b[3], &cl.c, "test", "b4", TTL_MS),
			 0);
	cl.addr[3] = "10.0.0.4:7420";
	assert_int_equal(controller_register(&cl.b[3], cl.addr[3]), 0);
	cl.b[0].coord = &stall;
	s.armed = 1;
	assert_int_equal(controller_reconcile(&cl.b[0]), -ESTALE);
	cl.b[0].coord = &cl.c;
	owners(&cl, "jobs", 12, held, NULL);
	assert_int_equal(held[3], 0); /* nothing of the move happened */
	/* b3 takes over and finishes the job over b2, b3 and b4. */
	assert_int_equal(controller_campaign(&cl.b[2]), 1);
	assert_int_equal(controller_reconcile(&cl.b[2]), 4);
	owners(&cl, "jobs", 12, held, NULL);
	assert_int_equal(held[0], 0);
	assert_int_equal(held[1], 4);
	assert_int_equal(held[2], 4);
	assert_int_equal(held[3], 4);
	coord_mem_free(cl.m);
}

/* An unreachable store: nothing changes, and the controller stays the
 * controller (it was not fenced, only not answered). */
static void
test_controller_keeps_its_epoch_while_the_store_is_down(void **state)
{
	struct cluster cl;

	(void)state;
	cluster_up(&cl, 2);
	assert_int_equal(controller_campaign(&cl.b[0]), 1);
	assert_int_equal(controller_queue_create(&cl.b[0], "jobs", 4), 0);
	coord_mem_set_down(cl.m, 1);
	assert_int_equal(controller_reconcile(&cl.b[0]), -EIO);
	assert_true(cl.b[0].epoch > 0);
	coord_mem_set_down(cl.m, 0);
	assert_int_equal(controller_reconcile(&cl.b[0]), 4);
	coord_mem_free(cl.m);
}

/* A seeded run of joins, deaths, returns and controller stalls: after
 * every reconcile by the controller, each partition has one live owner,
 * shares are even, epochs never go back, and a stale controller never
 * writes. */
static void
test_random_membership_keeps_the_invariants(void **state)
{
	struct cluster cl;
	uint64_t rng = 20261208;
	unsigned alive = 0xf;
	int64_t last_epoch[16] = { 0 };
	int reconciled = 0, fenced = 0;

	(void)state;
	cluster_up(&cl, 4);
	assert_int_equal(controller_campaign(&cl.b[0]), 1);
	assert_int_equal(controller_queue_create(&cl.b[0], "jobs", 16), 0);
	for (int step = 0; step < 300; step++) {
		int who = (int)(xorshift64(&rng) % 4);
		int leader = -1;
		size_t held[4], min = 16, max = 0, live = 0;
		int64_t epoch[16];

		/* A broker dies (its lease lapses) or comes back; never
		 * all of them at once. */
		if ((alive & (1u << who)) && __builtin_popcount(alive) > 1)
			alive &= ~(1u << who);
		else
			alive |= 1u << who;
		advance(&cl, (xorshift64(&rng) % 2) ? TTL_MS + 500 : 500,
			alive);
		for (int i = 0; i < 4; i++) {
			if (!(alive & (1u << i)))
				continue;
			assert_int_equal(
				controller_keepalive(&cl.b[i], cl.addr[i]), 0);
			if (controller_campaign(&cl.b[i]) == 1 && leader < 0)
				leader = i;
		}
		/* One controller at most: beside it, one that still thinks
		 * it leads (a dead broker's stale epoch) is refused. (With
		 * no live winner, the dead one may still hold the key until
		 * its lease runs out: then it is the controller.) */
		for (int i = 0; leader >= 0 && i < 4; i++) {
			if (i == leader || cl.b[i].epoch == 0)
				continue;
			assert_int_equal(controller_reconcile(&cl.b[i]),
					 -ESTALE);
			fenced++;
		}
		if (leader < 0)
			continue;
		assert_true(controller_reconcile(&cl.b[leader]) >= 0);
		reconciled++;
		owners(&cl, "jobs", 16, held, epoch);
		for (int b = 0; b < 4; b++) {
			if (!(alive & (1u << b))) {
				/* A dead broker may still be registered for
				 * up to its ttl; then it may hold a share. */
				continue;
			}
			live++;
		}
		for (int b = 0; b < 4; b++) {
			if (held[b] == 0 && !(alive & (1u << b)))
				continue;
			if (held[b] < min)
				min = held[b];
			if (held[b] > max)
				max = held[b];
		}
		assert_true(live > 0);
		assert_true(max - min <= 1);
		for (int i = 0; i < 16; i++) {
			assert_true(epoch[i] >= last_epoch[i]);
			last_epoch[i] = epoch[i];
		}
	}
	/* The run exercised both. */
	assert_true(reconciled > 150);
	assert_true(fenced > 5);
	coord_mem_free(cl.m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_revisions_leases_and_transactions),
		cmocka_unit_test(test_placement_is_even_and_moves_the_fewest),
		cmocka_unit_test(
			test_controller_election_fencing_and_brokers_coming_and_going),
		cmocka_unit_test(test_controller_dying_mid_move_writes_nothing),
		cmocka_unit_test(
			test_controller_keeps_its_epoch_while_the_store_is_down),
		cmocka_unit_test(test_random_membership_keeps_the_invariants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
