/*
 * metrics: counters, histograms and the Prometheus text exposition.
 *
 * Histograms are fixed-bucket (cumulative on output), updated on the loop
 * thread. metrics_render writes every metric of the broker from the
 * modules' public counters at scrape time; nothing is kept twice.
 */
#ifndef RINGMQ_METRICS_H
#define RINGMQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct http_body;
struct queues;
struct stats;
struct store;

/* Writes the exposition of the whole broker into b: st's counters, the
 * queues', the store's, and connections (the number open). */
void metrics_render(struct http_body *b, const struct stats *st,
		    size_t connections, struct queues *qs, struct store *s);

struct users;

/* Appends the per-user families (connections, publishes, quota
 * refusals) and failed authentications. */
void metrics_render_users(struct http_body *b, struct users *us,
			  uint64_t auth_failures);

struct cluster_view;

/* Appends the cluster-mode families from the latest view v (NULL: none
 * read yet). */
void metrics_render_cluster(struct http_body *b, const struct cluster_view *v);

#endif
