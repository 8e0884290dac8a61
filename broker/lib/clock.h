/*
 * clock: the broker's two clocks. Monotonic time measures durations and
 * deadlines (leases, timeouts, latencies); wall-clock time stamps what is
 * stored or sent (publish times, deliver_at). Never mix the two.
 */
#ifndef RINGMQ_CLOCK_H
#define RINGMQ_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds. clock_gettime cannot fail for this clock. */
static inline uint64_t
clock_mono_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
clock_mono_us(void)
{
	return clock_mono_ns() / 1000u;
}

static inline uint64_t
clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}

/* Wall-clock milliseconds since the epoch. */
static inline uint64_t
clock_wall_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
