/*
 * Unit tests of the min-heap (broker/lib/heap.c): random pushes, pops and
 * filters, checked after every step against a plain array of the keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/heap.h"
#include "xorshift.h"

/* An element as the broker's are: the key first, a payload after. */
struct elem {
	uint64_t key;
	uint32_t tag;
	uint64_t check; /* key ^ tag: the element came out whole */
};

#define MAXN 2000

static uint64_t model[MAXN]; /* keys in the heap, unordered */
static size_t nmodel;

static size_t
model_min(void)
{
	size_t m = 0;

	for (size_t i = 1; i < nmodel; i++)
		if (model[i] < model[m])
			m = i;
	return m;
}

static void
check_top(const struct heap *h)
{
	const struct elem *e = heap_top(h);

	assert_int_equal(h->n, nmodel);
	if (nmodel == 0) {
		assert_null(e);
		return;
	}
	assert_non_null(e);
	assert_int_equal(e->key, model[model_min()]);
	assert_int_equal(heap_top_key(h), e->key);
	assert_int_equal(e->check, e->key ^ e->tag);
}

static int
keep_even(const void *e, void *ctx)
{
	(void)ctx;
	return ((const struct elem *)e)->key % 2 == 0;
}

static void
test_heap_pops_in_key_order_through_random_steps(void **state)
{
	struct heap h = HEAP_INIT(struct elem);
	uint64_t rng = 0x9E3779B97F4A7C15ull;

	(void)state;
	nmodel = 0;
	for (int step = 0; step < 20000; step++) {
		uint64_t r = xorshift64(&rng);

		if (nmodel < MAXN && (nmodel == 0 || r % 3 != 0)) {
			/* Small keys: many ties. */
			struct elem e = { r % 500, (uint32_t)(r >> 32), 0 };

			e.check = e.key ^ e.tag;
			assert_int_equal(heap_push(&h, &e), 0);
			model[nmodel++] = e.key;
		} else {
			size_t m = model_min();

			heap_pop(&h);
			model[m] = model[--nmodel];
		}
		check_top(&h);
	}
	/* Filter keeps exactly the even keys, still in order. */
	heap_filter(&h, keep_even, NULL);
	{
		size_t n = 0;

		for (size_t i = 0; i < nmodel; i++)
			if (model[i] % 2 == 0)
				model[n++] = model[i];
		nmodel = n;
	}
	check_top(&h);
	while (nmodel > 0) {
		size_t m = model_min();

		heap_pop(&h);
		model[m] = model[--nmodel];
		check_top(&h);
	}
	heap_fini(&h);
	heap_fini(&h); /* twice is harmless */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_heap_pops_in_key_order_through_random_steps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
