/*
 * stats: the broker's own counters and latency histograms (answers by
 * error code, bytes in and out, confirm and delivery latency), kept in one
 * struct that the server owns.
 *
 * The connections and request handlers that count write it; the metrics
 * exposition and the Stats request read it. Per-queue event counters stay
 * with their queue (core/queue.h), the one place those events are counted.
 * Loop thread only.
 */
#ifndef RINGMQ_STATS_H
#define RINGMQ_STATS_H

#include <stdint.h>

#include "lib/err.h"

#define HIST_BUCKETS 14
/* ErrorCode values sent on the wire: 0 to the last one lib/err.h maps. */
#define STATS_WIRE_CODES (RMQ_EWIRE_LAST - RMQ_EBASE + 1)

struct histogram {
	uint64_t counts[HIST_BUCKETS + 1]; /* last: above every bound */
	uint64_t count;
	double sum;
};

/* Bounds of the latency histograms, seconds. */
extern const double stats_latency_bounds[HIST_BUCKETS];

struct stats {
	uint64_t start_ms;			 /* monotonic, for uptime */
	uint64_t errors_total[STATS_WIRE_CODES]; /* answers by error code */
	uint64_t bytes_in, bytes_out;
	/* Connections refused at accept: from another host while no auth
	 * is configured, and over max-connections. */
	uint64_t refused_other_host, refused_too_many;
	/* TLS handshakes on the TLS listener: done, failed (a certificate
	 * refused, a protocol error), and plaintext clients. */
	uint64_t tls_handshakes_ok, tls_handshakes_failed, tls_plaintext;
	struct histogram confirm_latency;  /* publish received -> confirm */
	struct histogram delivery_latency; /* publish_ms -> first delivery */
};

/* Adds v (seconds) to h, over the latency bounds. */
void stats_observe(struct histogram *h, double v);

/* Counts one Error answer of wire code code (ignored out of range). */
void stats_count_error(struct stats *st, int code);

#endif
