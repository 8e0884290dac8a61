/*
 * hist.c: the log-bucketed histogram of hist.h. Bucket i < 64 holds the
 * value i; above, bucket 64 + 32 * (msb - 6) + m holds the values whose
 * highest set bit is msb and whose next five bits are m.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

static unsigned
bucket_of(uint64_t v)
{
	unsigned msb;

	if (v < 64)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return 64u + 32u * (msb - 6u) + (unsigned)((v >> (msb - 5u)) & 31u);
}

/* Middle of bucket i, in ns. */
static double
bucket_mid_ns(unsigned i)
{
	unsigned shift;
	uint64_t low;

	if (i < 64)
		return (double)i;
	shift = (i - 64u) / 32u + 1u;
	low = (uint64_t)((i - 64u) % 32u + 32u) << shift;
	return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

void
hist_add(struct hist *h, uint64_t ns)
{
	h->buckets[bucket_of(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

double
hist_quantile_us(const struct hist *h, double q)
{
	uint64_t rank;
	uint64_t seen = 0;

	if (h->count == 0)
		return 0.0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			double mid = bucket_mid_ns(i);

			/* never report more than the largest sample */
			if (mid > (double)h->max_ns)
				mid = (double)h->max_ns;
			return mid / 1000.0;
		}
	}
	return (double)h->max_ns / 1000.0;
}

double
hist_mean_us(const struct hist *h)
{
	if (h->count == 0)
		return 0.0;
	return (double)h->sum_ns / (double)h->count / 1000.0;
}
