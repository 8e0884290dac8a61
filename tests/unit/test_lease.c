/*
 * Unit tests of the lease table (broker/core/lease.c): random inserts, removes
 * and deadline changes, checked after every step against a plain array
 * of the live leases; and the spare leases it keeps for reuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/lease.h"
#include "xorshift.h"

#define MAX_LIVE 5000

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t
next_rand(void)
{
	return xorshift64(&rng);
}

/* The heap's earliest deadline is the live set's; each lease is found by
 * id and sits where its heap index says. */
static void
check(const struct lease_table *t, struct lease **live, size_t n)
{
	uint64_t min = UINT64_MAX;

	assert_int_equal(t->count, n);
	assert_int_equal(t->hn, n);
	for (size_t i = 0; i < n; i++) {
		if (live[i]->deadline_ms < min)
			min = live[i]->deadline_ms;
		assert_ptr_equal(lease_table_find(t, live[i]->id), live[i]);
		assert_true(live[i]->heap_idx < t->hn);
		assert_ptr_equal(t->heap[live[i]->heap_idx].l, live[i]);
		assert_int_equal(t->heap[live[i]->heap_idx].deadline_ms,
				 live[i]->deadline_ms);
	}
	if (n == 0)
		assert_null(lease_table_earliest(t));
	else
		assert_int_equal(lease_table_earliest(t)->deadline_ms, min);
}

/* Deadlines from a narrow range, so that many are equal (as leases of
 * one queue taken in the same millisecond are). */
static uint64_t
deadline(void)
{
	return 1000 + next_rand() % 300;
}

static void
test_random_operations_keep_heap_order(void **state)
{
	struct lease_table t;
	struct lease **live = calloc(MAX_LIVE, sizeof(*live));
	uint64_t next_id = 1;
	size_t n = 0;

	(void)state;
	assert_non_null(live);
	assert_int_equal(lease_table_init(&t), 0);
	for (int step = 0; step < 60000; step++) {
		uint64_t r = next_rand() % 10;

		if ((r < 5 && n < MAX_LIVE) || n == 0) {
			struct lease *l = calloc(1, sizeof(*l));

			assert_non_null(l);
			l->id = next_id++;
			l->deadline_ms = deadline();
			assert_int_equal(lease_table_insert(&t, l), 0);
			live[n++] = l;
		} else if (r < 8) {
			size_t i = next_rand() % n;

			lease_table_remove(&t, live[i]);
			assert_null(lease_table_find(&t, live[i]->id));
			free(live[i]);
			live[i] = live[--n];
		} else {
			struct lease *l = live[next_rand() % n];

			l->deadline_ms = r == 8 ? deadline() : 500;
			lease_table_reschedule(&t, l);
		}
		if (step % 97 == 0 || n < 64)
			check(&t, live, n);
	}
	check(&t, live, n);
	/* Popping the earliest each time gives the deadlines in order. */
	for (uint64_t last = 0; n > 0;) {
		struct lease *l = lease_table_earliest(&t);

		assert_true(l->deadline_ms >= last);
		last = l->deadline_ms;
		lease_table_remove(&t, l);
		for (size_t i = 0; i < n; i++)
			if (live[i] == l) {
				live[i] = live[--n];
				break;
			}
		free(l);
	}
	check(&t, live, 0);
	lease_table_fini(&t);
	free(live);
}

/* Released leases come back zeroed, the spares stay bounded, and fini
 * frees them (the sanitizer build's leak check sees any left). */
static void
test_released_leases_are_reused_zeroed(void **state)
{
	enum { N = 10000 };
	struct lease_table t;
	struct lease **ls = calloc(N, sizeof(*ls));
	struct lease *first;

	(void)state;
	assert_non_null(ls);
	assert_int_equal(lease_table_init(&t), 0);
	for (size_t i = 0; i < N; i++) {
		ls[i] = lease_table_alloc(&t);
		assert_non_null(ls[i]);
		memset(ls[i], 0xab, sizeof(*ls[i]));
	}
	for (size_t i = 0; i < N; i++)
		lease_table_release(&t, ls[i]);
	assert_true(t.nspare > 0 && t.nspare < N);
	first = t.spare;
	ls[0] = lease_table_alloc(&t);
	assert_ptr_equal(ls[0], first);
	for (size_t b = 0; b < sizeof(*ls[0]); b++)
		assert_int_equal(((const unsigned char *)ls[0])[b], 0);
	lease_table_release(&t, ls[0]);
	lease_table_fini(&t);
	assert_null(t.spare);
	assert_int_equal(t.nspare, 0);
	free(ls);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_operations_keep_heap_order),
		cmocka_unit_test(test_released_leases_are_reused_zeroed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
