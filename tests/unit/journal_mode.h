/*
 * Which commit path the store tests run: RINGMQ_TEST_JOURNAL=1 opens
 * their stores with the journal in front of LMDB (meson runs the store
 * and core tests both ways).
 */
#ifndef RINGMQ_TEST_JOURNAL_MODE_H
#define RINGMQ_TEST_JOURNAL_MODE_H

#include <stdlib.h>
#include <string.h>

static inline int
test_journal(void)
{
	const char *v = getenv("RINGMQ_TEST_JOURNAL");

	return v != NULL && strcmp(v, "1") == 0;
}

#endif
