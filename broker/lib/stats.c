/*
 * stats: see stats.h.
 */
#include "lib/stats.h"

#include <stddef.h>

const double stats_latency_bounds[HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025,	0.05,	 0.1,	 0.25,	0.5,	1,     5,
};

void
stats_observe(struct histogram *h, double v)
{
	size_t i = 0;

	while (i < HIST_BUCKETS && v > stats_latency_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

void
stats_count_error(struct stats *st, int code)
{
	if (code > 0 && code < STATS_WIRE_CODES)
		st->errors_total[code]++;
}
