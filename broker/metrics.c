/*
 * metrics: see metrics.h.
 */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "group.h"
#include "http.h"
#include "queue.h"
#include "store.h"

const double metrics_latency_bounds[HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025,	0.05,	 0.1,	 0.25,	0.5,	1,     5,
};

void
histogram_observe(struct histogram *h, const double *bounds, double v)
{
	size_t i = 0;

	while (i < HIST_BUCKETS && v > bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

/* A histogram from per-bucket counts (made cumulative here). */
static void
render_buckets(struct http_body *b, const char *name, const char *help,
	       const double *bounds, size_t n, const uint64_t *counts,
	       uint64_t count, double sum)
{
	uint64_t cum = 0;

	http_body_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help,
			 name);
	for (size_t i = 0; i < n; i++) {
		cum += counts[i];
		http_body_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
				 bounds[i], (unsigned long long)cum);
	}
	http_body_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
			 (unsigned long long)count);
	http_body_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name,
			 (unsigned long long)count);
}

static void
render_histogram(struct http_body *b, const char *name, const char *help,
		 const double *bounds, const struct histogram *h)
{
	render_buckets(b, name, help, bounds, HIST_BUCKETS, h->counts, h->count,
		       h->sum);
}

static void
family(struct http_body *b, const char *name, const char *type,
       const char *help)
{
	http_body_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
			 type);
}

/* One family per queue counter, each with a sample per queue. */
struct qc_family {
	const char *name, *help;
	size_t offset; /* into struct queue_counters */
};

static const struct qc_family qc_families[] = {
	{ "ringmq_published_total", "Messages stored by publishes.",
	  offsetof(struct queue_counters, published) },
	{ "ringmq_delivered_total", "Deliveries, redeliveries included.",
	  offsetof(struct queue_counters, delivered) },
	{ "ringmq_redelivered_total", "Deliveries with delivery_count > 1.",
	  offsetof(struct queue_counters, redelivered) },
	{ "ringmq_acked_total", "Leases ended by ack.",
	  offsetof(struct queue_counters, acked) },
	{ "ringmq_nacked_total", "Leases ended by nack.",
	  offsetof(struct queue_counters, nacked) },
	{ "ringmq_expired_total", "Leases that ran out.",
	  offsetof(struct queue_counters, expired) },
	{ "ringmq_dead_lettered_total", "Messages sent to a dead-letter queue.",
	  offsetof(struct queue_counters, dead_lettered) },
};

static const struct {
	const char *name, *help;
} gauge_families[] = {
	{ "ringmq_queue_messages", "Stored messages." },
	{ "ringmq_queue_bytes", "Stored payload bytes." },
	{ "ringmq_queue_ready", "Messages ready, summed over groups." },
	{ "ringmq_queue_delayed", "Delayed messages." },
	{ "ringmq_queue_in_flight", "Messages leased now." },
	{ "ringmq_queue_groups", "Consumer groups." },
};

static const struct {
	const char *name, *help;
} group_families[] = {
	{ "ringmq_group_lag", "Retained messages the group has not acked." },
	{ "ringmq_group_ready", "Messages ready for the group." },
	{ "ringmq_group_in_flight", "Leases of the group." },
	{ "ringmq_group_consumers", "Subscriptions attached." },
	{ "ringmq_group_oldest_age_seconds",
	  "Age of the oldest message the group has not acked." },
};

#define GROUP_AGE_FAMILY 4 /* index above: rendered from publish times */

/* Wall-clock ms of the oldest message of q at or after each partition's
 * from[i] (the partition base when from is NULL); 0 if none. */
static uint64_t
oldest_publish_ms(struct store *s, const struct queue *q, const uint64_t *from)
{
	uint64_t oldest = 0;

	for (uint32_t i = 0; i < q->partitions; i++) {
		const struct partition *p = &q->parts[i];
		uint64_t off = partition_next(p, from ? from[i] : p->base);
		struct store_msg_view v;

		if (off != UINT64_MAX &&
		    store_msg_get(s, q->qid, i, off, &v) == 0 &&
		    (oldest == 0 || v.publish_ms < oldest))
			oldest = v.publish_ms;
	}
	return oldest;
}

static double
age_seconds(uint64_t publish_ms)
{
	uint64_t now = queue_now_ms();

	return publish_ms == 0 || publish_ms > now
		       ? 0.0
		       : (double)(now - publish_ms) / 1e3;
}

struct render_ctx {
	struct http_body *b;
	struct store *store;
	size_t family;
	int what;
};

enum { RENDER_COUNTER, RENDER_GAUGES, RENDER_GROUPS, RENDER_AGES };

struct group_ctx {
	struct http_body *b;
	const struct queue *q;
	size_t family;
	struct store *store;
};

static void render_group(void *arg, const struct group *g);
static void
render_queue(void *arg, struct queue *q)
{
	struct render_ctx *rc = arg;
	struct http_body *b = rc->b;
	uint64_t messages, bytes, delayed, ready, in_flight;
	uint32_t ngroups;

	if (q->is_pending)
		return;
	if (rc->what == RENDER_COUNTER) {
		const uint64_t *v =
			(const uint64_t *)((const char *)&q->counters +
					   qc_families[rc->family].offset);

		http_body_printf(b, "%s{queue=\"%s\"} %llu\n",
				 qc_families[rc->family].name, q->name,
				 (unsigned long long)*v);
		return;
	}
	if (rc->what == RENDER_AGES) {
		http_body_printf(
			b,
			"ringmq_queue_oldest_age_seconds{queue=\"%s\"} "
			"%.3f\n",
			q->name,
			age_seconds(oldest_publish_ms(rc->store, q, NULL)));
		return;
	}
	if (rc->what == RENDER_GROUPS) {
		struct group_ctx gc = { b, q, rc->family, rc->store };

		groups_each(q, render_group, &gc);
		return;
	}
	queue_totals(q, &messages, &bytes, &delayed);
	groups_queue_counts(q, &ready, &in_flight, &ngroups);
	{
		const uint64_t v[] = { messages, bytes,	    ready,
				       delayed,	 in_flight, ngroups };

		http_body_printf(b, "%s{queue=\"%s\"} %llu\n",
				 gauge_families[rc->family].name, q->name,
				 (unsigned long long)v[rc->family]);
	}
}

static void
render_group(void *arg, const struct group *g)
{
	const struct group_ctx *gc = arg;
	const struct queue *q = gc->q;
	struct group_info gi;
	if (gc->family == GROUP_AGE_FAMILY) {
		uint64_t floors[QUEUE_MAX_PARTITIONS];

		group_info(g, &gi, floors);
		http_body_printf(
			gc->b,
			"ringmq_group_oldest_age_seconds{queue=\"%s\","
			"group=\"%s\"} %.3f\n",
			q->name, group_name(g),
			age_seconds(oldest_publish_ms(gc->store, q, floors)));
		return;
	}
	group_info(g, &gi, NULL);
	{
		const uint64_t v[] = { gi.lag, gi.ready, gi.in_flight,
				       gi.consumers };

		http_body_printf(gc->b, "%s{queue=\"%s\",group=\"%s\"} %llu\n",
				 group_families[gc->family].name, q->name,
				 group_name(g),
				 (unsigned long long)v[gc->family]);
	}
}

/* CPU seconds and resident bytes of this process, from /proc. */
static void
render_process(struct http_body *b)
{
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long utime = 0, stime = 0;
	long rss_pages = 0;
	char buf[1024];
	FILE *f;

	f = fopen("/proc/self/stat", "r");
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) != NULL) {
			/* Fields 14 and 15, after the ')' that ends comm. */
			char *p = strrchr(buf, ')');

			if (p != NULL)
				(void)sscanf(p + 2,
					     "%*c %*d %*d %*d %*d %*d %*u %*u "
					     "%*u %*u %*u %lu %lu",
					     &utime, &stime);
		}
		fclose(f);
	}
	f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%*d %ld", &rss_pages) != 1)
			rss_pages = 0;
		fclose(f);
	}
	family(b, "ringmq_process_cpu_seconds_total", "counter",
	       "CPU time of the broker process.");
	http_body_printf(b, "ringmq_process_cpu_seconds_total %.2f\n",
			 ticks > 0 ? (double)(utime + stime) / (double)ticks
				   : 0.0);
	family(b, "ringmq_process_resident_memory_bytes", "gauge",
	       "Resident memory of the broker process.");
	http_body_printf(b, "ringmq_process_resident_memory_bytes %ld\n",
			 rss_pages * page);
}

void
metrics_render(struct http_body *b, struct conn_env *env, struct queues *qs,
	       struct store *s)
{
	struct render_ctx rc = { .b = b, .store = s };
	struct store_commit_stats cs;
	uint64_t used, map;

	family(b, "ringmq_connections", "gauge", "Client connections open.");
	http_body_printf(b, "ringmq_connections %zu\n", env->count);
	family(b, "ringmq_queues", "gauge", "Queues.");
	http_body_printf(b, "ringmq_queues %zu\n", queues_count(qs));
	for (size_t i = 0; i < sizeof(qc_families) / sizeof(qc_families[0]);
	     i++) {
		family(b, qc_families[i].name, "counter", qc_families[i].help);
		rc.what = RENDER_COUNTER;
		rc.family = i;
		queues_each(qs, render_queue, &rc);
	}
	for (size_t i = 0;
	     i < sizeof(gauge_families) / sizeof(gauge_families[0]); i++) {
		family(b, gauge_families[i].name, "gauge",
		       gauge_families[i].help);
		rc.what = RENDER_GAUGES;
		rc.family = i;
		queues_each(qs, render_queue, &rc);
	}
	family(b, "ringmq_queue_oldest_age_seconds", "gauge",
	       "Age of the oldest retained message (not delayed).");
	rc.what = RENDER_AGES;
	queues_each(qs, render_queue, &rc);
	for (size_t i = 0;
	     i < sizeof(group_families) / sizeof(group_families[0]); i++) {
		family(b, group_families[i].name, "gauge",
		       group_families[i].help);
		rc.what = RENDER_GROUPS;
		rc.family = i;
		queues_each(qs, render_queue, &rc);
	}
	family(b, "ringmq_errors_total", "counter",
	       "Requests answered with an error, by code.");
	for (int code = 1; code < RINGMQ_WIRE_CODES; code++)
		if (env->errors_total[code] > 0)
			http_body_printf(
				b, "ringmq_errors_total{code=\"%d\"} %llu\n",
				code,
				(unsigned long long)env->errors_total[code]);
	render_histogram(b, "ringmq_publish_confirm_seconds",
			 "Publish received to confirm sent.",
			 metrics_latency_bounds, &env->confirm_latency);
	render_histogram(b, "ringmq_publish_delivery_seconds",
			 "Publish (broker clock) to first delivery.",
			 metrics_latency_bounds, &env->delivery_latency);
	store_commit_stats(s, &cs);
	render_buckets(b, "ringmq_commit_batches",
		       "Requests (batches) carried by each storage commit.",
		       store_stat_batch_bounds, STORE_STAT_BUCKETS, cs.batches,
		       cs.commits, (double)cs.batches_sum);
	render_buckets(b, "ringmq_commit_seconds",
		       "Duration of each storage commit, sync included.",
		       store_stat_seconds_bounds, STORE_STAT_BUCKETS,
		       cs.seconds, cs.commits, cs.seconds_sum);
	store_usage(s, &used, &map);
	family(b, "ringmq_storage_used_bytes", "gauge",
	       "LMDB map bytes in use.");
	http_body_printf(b, "ringmq_storage_used_bytes %llu\n",
			 (unsigned long long)used);
	family(b, "ringmq_storage_limit_bytes", "gauge",
	       "LMDB map size (--max-storage-bytes).");
	http_body_printf(b, "ringmq_storage_limit_bytes %llu\n",
			 (unsigned long long)map);
	family(b, "ringmq_bytes_received_total", "counter",
	       "Bytes read from clients.");
	http_body_printf(b, "ringmq_bytes_received_total %llu\n",
			 (unsigned long long)env->bytes_in);
	family(b, "ringmq_bytes_sent_total", "counter",
	       "Bytes sent to clients.");
	http_body_printf(b, "ringmq_bytes_sent_total %llu\n",
			 (unsigned long long)env->bytes_out);
	render_process(b);
}
