/*
 * xorshift64: the unit tests' pseudo-random numbers, the same sequence
 * on every run so that a failure can be replayed.
 */
#ifndef RINGMQ_TEST_XORSHIFT_H
#define RINGMQ_TEST_XORSHIFT_H

#include <stdint.h>

/* The next number of the sequence kept in *state (never 0). */
static inline uint64_t
xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

#endif
