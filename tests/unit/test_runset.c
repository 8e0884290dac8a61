/*
 * Unit tests of the run set (broker/lib/runset.c): random adds and pops over
 * a small range, checked after every step against a plain bitmap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/runset.h"
#include "xorshift.h"

#define SPAN 600

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t
next_rand(void)
{
	return xorshift64(&rng);
}

/* s holds exactly the offsets marked in model (base + i), as runs that
 * ascend without touching. */
static void
check(const struct runset *s, const uint8_t *model, uint64_t base)
{
	const struct offset_run *r;
	uint64_t total = 0, want = 0;
	size_t n;

	r = runset_runs(s, &n);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].count >= 1);
		if (i > 0)
			assert_true(r[i].first >
				    r[i - 1].first + r[i - 1].count);
		total += r[i].count;
	}
	assert_int_equal(total, s->count);
	for (uint64_t i = 0; i < SPAN; i++) {
		assert_int_equal(runset_has(s, base + i), model[i]);
		want += model[i];
	}
	assert_int_equal(s->count, want);
	if (want > 0) {
		uint64_t i = 0;

		while (!model[i])
			i++;
		assert_int_equal(runset_first(s), base + i);
	}
}

static void
test_random_adds_and_pops_match_a_bitmap(void **state)
{
	/* Near the top of the range too: no run may wrap. */
	static const uint64_t bases[2] = { 1000, UINT64_MAX - SPAN + 1 };

	(void)state;
	for (int b = 0; b < 2; b++) {
		struct runset s;
		uint8_t model[SPAN];

		memset(&s, 0, sizeof(s));
		memset(model, 0, sizeof(model));
		for (int step = 0; step < 20000; step++) {
			uint64_t r = next_rand() % 10;

			if (r == 8 && s.count > 0) {
				/* A run, usually above everything (as at
				 * load), sometimes over what is there. */
				uint64_t len = 1 + next_rand() % 5;
				uint64_t i = next_rand() % 3 == 0
						     ? next_rand() % (SPAN - 5)
						     : SPAN - 5;

				assert_int_equal(
					runset_add_run(&s, bases[b] + i, len),
					0);
				memset(model + i, 1, len);
			} else if (r < 8 || s.count == 0) {
				/* Mostly near the front, as acks come. */
				uint64_t i = next_rand() % (r < 4 ? 40 : SPAN);

				assert_int_equal(runset_add(&s, bases[b] + i),
						 0);
				model[i] = 1;
			} else {
				uint64_t i = runset_first(&s) - bases[b];

				assert_int_equal(model[i], 1);
				model[i] = 0;
				runset_pop(&s);
			}
			if (step % 13 == 0)
				check(&s, model, bases[b]);
		}
		check(&s, model, bases[b]);
		runset_free(&s);
	}
}

/* A floor held back while a million later offsets are acked: one run. */
static void
test_contiguous_acks_stay_one_run(void **state)
{
	struct runset s;
	size_t n;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (uint64_t o = 1000000; o > 1; o--)
		assert_int_equal(runset_add(&s, o), 0);
	for (uint64_t o = 1000001; o <= 2000000; o++)
		assert_int_equal(runset_add(&s, o), 0);
	(void)runset_runs(&s, &n);
	assert_int_equal(n, 1);
	assert_int_equal(s.count, 1999999);
	assert_false(runset_has(&s, 1));
	assert_true(runset_has(&s, 2));
	assert_true(runset_has(&s, 2000000));
	assert_false(runset_has(&s, 2000001));
	runset_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_adds_and_pops_match_a_bitmap),
		cmocka_unit_test(test_contiguous_acks_stay_one_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
