/*
 * Unit tests of vec_grow (broker/lib/vec.h): room made by doubling from a
 * first size, nothing done when there is room, and nothing changed when
 * the size cannot be had.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lib/vec.h"

static void
test_vec_doubles_from_its_first_size(void **state)
{
	size_t cap = 0;
	int *v = vec_grow(NULL, &cap, 1, sizeof(*v), 4);

	(void)state;
	assert_non_null(v);
	assert_int_equal(cap, 4);
	v[3] = 7;
	/* Room already: the same array, the same capacity. */
	assert_ptr_equal(vec_grow(v, &cap, 4, sizeof(*v), 4), v);
	assert_int_equal(cap, 4);
	v = vec_grow(v, &cap, 5, sizeof(*v), 4);
	assert_non_null(v);
	assert_int_equal(cap, 8);
	assert_int_equal(v[3], 7);
	/* A need past twice the capacity doubles until it fits. */
	v = vec_grow(v, &cap, 33, sizeof(*v), 4);
	assert_non_null(v);
	assert_int_equal(cap, 64);
	assert_int_equal(v[3], 7);
	free(v);
}

static void
test_vec_leaves_all_as_it_was_when_it_cannot_grow(void **state)
{
	static const size_t needs[] = { SIZE_MAX / 4, SIZE_MAX, PTRDIFF_MAX };
	size_t cap = 0;
	uint64_t *v = vec_grow(NULL, &cap, 2, sizeof(*v), 2);

	(void)state;
	assert_non_null(v);
	/* Past what can be had, not wrapped around to something small. */
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		uint64_t *w = vec_grow(v, &cap, needs[i], sizeof(*v), 2);

		assert_null(w);
		assert_int_equal(cap, 2);
		if (w != NULL)
			v = w;
	}
	free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vec_doubles_from_its_first_size),
		cmocka_unit_test(
			test_vec_leaves_all_as_it_was_when_it_cannot_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
