/*
 * metrics: see metrics.h.
 */
#include "metrics.h"
#include "ringmq.pb-c.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/stats.h"
#include "lib/vec.h"
#include "net/http.h"
#include "store/store.h"

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
	{ "ringmq_queue_bytes",
	  "Stored message bytes (payload, key, headers, dedup id)." },
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
	{ "ringmq_group_paused",
	  "1 while an administrator has paused the group's deliveries." },
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
	uint64_t now = clock_wall_ms();

	return publish_ms == 0 || publish_ms > now
		       ? 0.0
		       : (double)(now - publish_ms) / 1e3;
}

/* A queue's or a group's gauges, computed once per scrape: counting
 * ready and lag reads the partition index of every retained message (about
 * 0.3 ns each), so each family must not count again. */
#define NQGAUGES (sizeof(gauge_families) / sizeof(gauge_families[0]))
#define NGGAUGES (sizeof(group_families) / sizeof(group_families[0]))

struct qsnap {
	const struct queue *q;
	uint64_t v[NQGAUGES];
	double age; /* seconds */
};

struct gsnap {
	const struct queue *q;
	const char *name;
	double v[NGGAUGES]; /* the last is the age, in seconds */
};

struct snap {
	struct store *store;
	struct qsnap *qv; /* owned */
	size_t nq, capq;
	struct gsnap *gv; /* owned */
	size_t ng, capg;
	int is_oom;
};

static void
snap_group(void *arg, const struct group *g)
{
	struct snap *sn = arg;
	const struct queue *q = sn->qv[sn->nq - 1].q;
	uint64_t floors[QUEUE_MAX_PARTITIONS];
	struct group_info gi;
	struct gsnap *gs;

	gs = vec_grow(sn->gv, &sn->capg, sn->ng + 1, sizeof(*gs), 16);
	if (gs == NULL) {
		sn->is_oom = 1;
		return;
	}
	sn->gv = gs;
	group_info(g, &gi, floors);
	gs = &sn->gv[sn->ng++];
	gs->q = q;
	gs->name = group_name(g);
	gs->v[0] = (double)gi.lag;
	gs->v[1] = (double)gi.ready;
	gs->v[2] = (double)gi.in_flight;
	gs->v[3] = (double)gi.consumers;
	gs->v[GROUP_AGE_FAMILY] =
		age_seconds(oldest_publish_ms(sn->store, q, floors));
	gs->v[5] = gi.is_paused;
}

static void
snap_queue(void *arg, struct queue *q)
{
	struct snap *sn = arg;
	struct qsnap *qs;
	uint64_t ready, in_flight, retrying;
	uint32_t ngroups;

	if (q->is_pending || sn->is_oom)
		return;
	qs = vec_grow(sn->qv, &sn->capq, sn->nq + 1, sizeof(*qs), 16);
	if (qs == NULL) {
		sn->is_oom = 1;
		return;
	}
	sn->qv = qs;
	qs = &sn->qv[sn->nq++];
	qs->q = q;
	queue_totals(q, &qs->v[0], &qs->v[1], &qs->v[3]);
	groups_queue_counts(q, &ready, &in_flight, &retrying, &ngroups);
	qs->v[3] += retrying; /* nack delays: delayed too */
	qs->v[2] = ready;
	qs->v[4] = in_flight;
	qs->v[5] = ngroups;
	qs->age = age_seconds(oldest_publish_ms(sn->store, q, NULL));
	groups_each(q, snap_group, sn);
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
metrics_render(struct http_body *b, const struct stats *st, size_t connections,
	       struct queues *qs, struct store *s)
{
	struct snap sn = { .store = s };
	struct store_commit_stats cs;
	struct store_journal_stats js;
	uint64_t used, map;

	family(b, "ringmq_connections", "gauge", "Client connections open.");
	http_body_printf(b, "ringmq_connections %zu\n", connections);
	family(b, "ringmq_connections_refused_total", "counter",
	       "Connections refused at accept, by reason: other_host (no auth "
	       "configured), too_many (over max-connections).");
	http_body_printf(
		b,
		"ringmq_connections_refused_total{reason=\"other_host\"} "
		"%llu\n",
		(unsigned long long)st->refused_other_host);
	http_body_printf(
		b,
		"ringmq_connections_refused_total{reason=\"too_many\"} "
		"%llu\n",
		(unsigned long long)st->refused_too_many);
	family(b, "ringmq_tls_handshakes_total", "counter",
	       "TLS handshakes on the TLS listener, by result: ok, failed (a "
	       "certificate refused, a protocol error), plaintext (a client "
	       "without TLS).");
	http_body_printf(b, "ringmq_tls_handshakes_total{result=\"ok\"} %llu\n",
			 (unsigned long long)st->tls_handshakes_ok);
	http_body_printf(b,
			 "ringmq_tls_handshakes_total{result=\"failed\"} "
			 "%llu\n",
			 (unsigned long long)st->tls_handshakes_failed);
	http_body_printf(b,
			 "ringmq_tls_handshakes_total{result=\"plaintext\"} "
			 "%llu\n",
			 (unsigned long long)st->tls_plaintext);
	family(b, "ringmq_queues", "gauge", "Queues.");
	http_body_printf(b, "ringmq_queues %zu\n", queues_count(qs));
	queues_each(qs, snap_queue, &sn);
	for (size_t i = 0; i < sizeof(qc_families) / sizeof(qc_families[0]);
	     i++) {
		family(b, qc_families[i].name, "counter", qc_families[i].help);
		for (size_t j = 0; j < sn.nq; j++) {
			const uint64_t *v =
				(const uint64_t *)((const char *)&sn.qv[j]
							   .q->counters +
						   qc_families[i].offset);

			http_body_printf(b, "%s{queue=\"%s\"} %llu\n",
					 qc_families[i].name, sn.qv[j].q->name,
					 (unsigned long long)*v);
		}
	}
	for (size_t i = 0; i < NQGAUGES; i++) {
		family(b, gauge_families[i].name, "gauge",
		       gauge_families[i].help);
		for (size_t j = 0; j < sn.nq; j++)
			http_body_printf(b, "%s{queue=\"%s\"} %llu\n",
					 gauge_families[i].name,
					 sn.qv[j].q->name,
					 (unsigned long long)sn.qv[j].v[i]);
	}
	family(b, "ringmq_queue_oldest_age_seconds", "gauge",
	       "Age of the oldest retained message (not delayed).");
	for (size_t j = 0; j < sn.nq; j++)
		http_body_printf(
			b,
			"ringmq_queue_oldest_age_seconds{queue=\"%s\"} %.3f\n",
			sn.qv[j].q->name, sn.qv[j].age);
	for (size_t i = 0; i < NGGAUGES; i++) {
		family(b, group_families[i].name, "gauge",
		       group_families[i].help);
		for (size_t j = 0; j < sn.ng; j++)
			http_body_printf(
				b,
				i == GROUP_AGE_FAMILY
					? "%s{queue=\"%s\",group=\"%s\"} %.3f\n"
					: "%s{queue=\"%s\",group=\"%s\"} %.0f\n",
				group_families[i].name, sn.gv[j].q->name,
				sn.gv[j].name, sn.gv[j].v[i]);
	}
	free(sn.qv);
	free(sn.gv);
	family(b, "ringmq_errors_total", "counter",
	       "Requests answered with an error, by code.");
	for (int code = 1; code < STATS_WIRE_CODES; code++) {
		/* Labelled by name, as the library and the CLI say it. */
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(
				&ringmq__error_code__descriptor, code);

		if (st->errors_total[code] == 0)
			continue;
		if (v != NULL)
			http_body_printf(
				b, "ringmq_errors_total{code=\"%s\"} %llu\n",
				v->name,
				(unsigned long long)st->errors_total[code]);
		else
			http_body_printf(
				b, "ringmq_errors_total{code=\"%d\"} %llu\n",
				code,
				(unsigned long long)st->errors_total[code]);
	}
	render_histogram(b, "ringmq_publish_confirm_seconds",
			 "Publish received to confirm sent.",
			 stats_latency_bounds, &st->confirm_latency);
	render_histogram(b, "ringmq_publish_delivery_seconds",
			 "Publish (broker clock) to first delivery.",
			 stats_latency_bounds, &st->delivery_latency);
	store_commit_stats(s, &cs);
	render_buckets(b, "ringmq_commit_batches",
		       "Requests (batches) carried by each storage commit.",
		       store_stat_batch_bounds, STORE_STAT_BUCKETS, cs.batches,
		       cs.commits, (double)cs.batches_sum);
	render_buckets(b, "ringmq_commit_seconds",
		       "Duration of each storage commit, sync included.",
		       store_stat_seconds_bounds, STORE_STAT_BUCKETS,
		       cs.seconds, cs.commits, cs.seconds_sum);
	store_journal_stats(s, &js);
	if (js.is_on) {
		family(b, "ringmq_journal_records_total", "counter",
		       "Journal records confirmed (its sequence number).");
		http_body_printf(b, "ringmq_journal_records_total %llu\n",
				 (unsigned long long)js.journaled_seq);
		family(b, "ringmq_journal_applied_records_total", "counter",
		       "Journal records LMDB holds durably.");
		http_body_printf(b,
				 "ringmq_journal_applied_records_total %llu\n",
				 (unsigned long long)js.applied_seq);
		family(b, "ringmq_journal_unapplied_bytes", "gauge",
		       "Journaled bytes LMDB has not applied yet (bounded by "
		       "--journal-max-bytes).");
		http_body_printf(b, "ringmq_journal_unapplied_bytes %llu\n",
				 (unsigned long long)js.unapplied_bytes);
	}
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
			 (unsigned long long)st->bytes_in);
	family(b, "ringmq_bytes_sent_total", "counter",
	       "Bytes sent to clients.");
	http_body_printf(b, "ringmq_bytes_sent_total %llu\n",
			 (unsigned long long)st->bytes_out);
	render_process(b);
}

/* One row of a per-user family. */
struct user_family {
	const char *name, *type, *help;
	size_t off; /* of a uint64_t, or of connections (a uint32_t) */
	int is_u32;
};

static const struct user_family user_families[] = {
	{ "ringmq_user_connections", "gauge",
	  "Connections authenticated as the user.",
	  offsetof(struct user, connections), 1 },
	{ "ringmq_user_leases", "gauge", "Leases the user's connections hold.",
	  offsetof(struct user, leases.held), 1 },
	{ "ringmq_user_published_messages_total", "counter",
	  "Messages the user's publishes carried past its quotas.",
	  offsetof(struct user, published_msgs), 0 },
	{ "ringmq_user_published_bytes_total", "counter",
	  "Message bytes the user's publishes carried past its quotas.",
	  offsetof(struct user, published_bytes), 0 },
	{ "ringmq_user_publish_refused_total", "counter",
	  "Publishes refused over the user's rate quotas (QUOTA_EXCEEDED).",
	  offsetof(struct user, refused_rate), 0 },
	{ "ringmq_user_connections_refused_total", "counter",
	  "Connections refused over the user's max connections.",
	  offsetof(struct user, refused_connections), 0 },
};

struct user_rows {
	struct http_body *b;
	const struct user_family *fam;
};

static void
user_row(void *ctx, struct user *u)
{
	struct user_rows *r = ctx;
	const char *p = (const char *)u + r->fam->off;
	uint64_t v = r->fam->is_u32 ? *(const uint32_t *)(const void *)p
				    : *(const uint64_t *)(const void *)p;

	/* User names are [A-Za-z0-9._@-]: nothing to escape. */
	http_body_printf(r->b, "%s{user=\"%s\"} %llu\n", r->fam->name, u->name,
			 (unsigned long long)v);
}

void
metrics_render_users(struct http_body *b, struct users *us,
		     uint64_t auth_failures)
{
	family(b, "ringmq_auth_failures_total", "counter",
	       "Failed authentications (each answered UNAUTHENTICATED).");
	http_body_printf(b, "ringmq_auth_failures_total %llu\n",
			 (unsigned long long)auth_failures);
	for (size_t i = 0; i < sizeof(user_families) / sizeof(*user_families);
	     i++) {
		struct user_rows r = { b, &user_families[i] };

		family(b, user_families[i].name, user_families[i].type,
		       user_families[i].help);
		users_each(us, user_row, &r);
	}
}

void
metrics_render_cluster(struct http_body *b, const struct cluster_view *v)
{
	size_t owned = v ? v->owned : 0, all = v ? v->partitions : 0;
	double age = 0;

	if (v != NULL) {
		uint64_t now = clock_wall_ms();

		age = now > v->read_ms ? (double)(now - v->read_ms) / 1e3 : 0;
	}
	family(b, "ringmq_cluster_brokers", "gauge",
	       "Brokers registered in the cluster, as last read from etcd.");
	http_body_printf(b, "ringmq_cluster_brokers %zu\n",
			 v ? v->nbrokers : 0);
	family(b, "ringmq_cluster_is_controller", "gauge",
	       "1 while this broker is the cluster's controller.");
	http_body_printf(b, "ringmq_cluster_is_controller %d\n",
			 v ? v->is_controller : 0);
	family(b, "ringmq_cluster_controller_epoch", "gauge",
	       "The controller's epoch (its key's create revision in etcd).");
	http_body_printf(b, "ringmq_cluster_controller_epoch %lld\n",
			 v ? (long long)v->epoch : 0LL);
	family(b, "ringmq_cluster_partitions", "gauge",
	       "Partitions of the cluster's queues.");
	http_body_printf(b, "ringmq_cluster_partitions %zu\n", all);
	family(b, "ringmq_cluster_partitions_owned", "gauge",
	       "Partitions this broker owns.");
	http_body_printf(b, "ringmq_cluster_partitions_owned %zu\n", owned);
	family(b, "ringmq_cluster_view_age_seconds", "gauge",
	       "Age of the last view read from etcd (growing: etcd is not "
	       "answering).");
	http_body_printf(b, "ringmq_cluster_view_age_seconds %.3f\n", age);
}
