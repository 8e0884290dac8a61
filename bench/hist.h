/*
 * hist.h: a log-bucketed latency histogram for the benchmark programs
 * of bench/: ringmq-bench and the comparison drivers.
 *
 * Values are nanoseconds. Below 64 ns each value has its own bucket; above,
 * every power of two is split into 32 buckets, so a reported percentile is
 * within about 3 % of the true sample. A histogram is plain data owned by
 * one thread; merge them after the threads are joined.
 */
#ifndef RINGMQ_BENCH_HIST_H
#define RINGMQ_BENCH_HIST_H

#include <stdint.h>

#define HIST_BUCKETS (64 + 58 * 32)

struct hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[HIST_BUCKETS];
};

/** Empties h (caller provides the memory). */
void hist_init(struct hist *h);

/** Records one value in nanoseconds. */
void hist_add(struct hist *h, uint64_t ns);

/** Adds every sample of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/**
 * The q-quantile (0 < q <= 1) in microseconds: the middle of the bucket
 * holding the ceil(q * count)-th smallest sample; 0 for an empty h.
 */
double hist_quantile_us(const struct hist *h, double q);

/** Mean in microseconds; 0 for an empty h. */
double hist_mean_us(const struct hist *h);

#endif /* RINGMQ_BENCH_HIST_H */
