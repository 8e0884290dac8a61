/*
 * metrics: counters, histograms and the Prometheus text exposition.
 *
 * Histograms are fixed-bucket (cumulative on output), updated on the loop
 * thread. metrics_render writes every metric of the broker from the
 * modules' public counters at scrape time; nothing is kept twice.
 */
#ifndef RINGMQ_METRICS_H
#define RINGMQ_METRICS_H

#include <stdint.h>

#define HIST_BUCKETS 14

struct histogram {
	uint64_t counts[HIST_BUCKETS + 1]; /* last: above every bound */
	uint64_t count;
	double sum;
};

/* Bounds of the latency histograms, seconds. */
extern const double metrics_latency_bounds[HIST_BUCKETS];

void histogram_observe(struct histogram *h, const double *bounds, double v);

struct http_body;
struct conn_env;
struct queues;
struct store;

/* Writes the exposition of the whole broker into b. */
void metrics_render(struct http_body *b, struct conn_env *env,
		    struct queues *qs, struct store *s);

#endif
