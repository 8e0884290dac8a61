/*
 * splitmix64: the crash test's pseudo-random numbers, a sequence fixed by
 * its seed so that a run's choices can be replayed.
 */
#ifndef RINGMQ_TEST_SPLITMIX64_H
#define RINGMQ_TEST_SPLITMIX64_H

#include <stdint.h>

/* The next number of the sequence kept in *x. */
static inline uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
