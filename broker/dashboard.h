/*
 * dashboard: the web dashboard on the HTTP port. GET / serves a page
 * (HTML, CSS and JavaScript from broker/web/, compiled in) that refreshes
 * itself from GET /api/overview: the figures of `ringmq stats`, queues and
 * groups with their counts and rates, and a history of the broker's
 * rates (a sample every DASH_SAMPLE_MS, kept DASH_HISTORY samples). In
 * cluster mode, GET /api/cluster: brokers, controller, placement.
 *
 * Who sees what: with auth on, a login (a user's password, checked as
 * the protocol's SCRAM keys are, failures counted per address with the
 * protocol's), a session cookie, and only the queues the user has a
 * permission on; admin actions (purge, dead-letter redrive, pausing and
 * resuming a group) need the admin permission on the queue and come as
 * POSTs with the session's CSRF token. Without auth on, the same rule as
 * /metrics (this host, a token, or everyone with auth off) and read-only.
 */
#ifndef RINGMQ_DASHBOARD_H
#define RINGMQ_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

struct auth_env;
struct cluster;
struct cluster_view;
struct config;
struct groups;
struct http_conn;
struct http_request;
struct queues;
struct stats;
struct store;
struct users;

#define DASH_SAMPLE_MS 5000u
#define DASH_HISTORY   120u /* ten minutes */

struct dashboard_env {
	const struct config *cfg;
	struct queues *qs;
	struct groups *gs;
	struct users *users;
	struct auth_env *auth;
	struct store *store;
	const struct stats *stats;
	const size_t *connections; /* open now */
	/* Cluster mode (else NULL): its name, and where the server keeps
	 * this broker's id and the latest view (NULL until one). */
	const char *cluster;
	struct cluster *const *coordinator;
	struct cluster_view *const *view;
};

struct dashboard; /* opaque */

/* @return 0 or -ENOMEM. env is copied. */
int dashboard_new(struct dashboard **out, const struct dashboard_env *env);
/* Frees the sessions and samples. NULL is a no-op. */
void dashboard_free(struct dashboard *d);

/* An http_handlers.serve callback (ctx: the dashboard). */
void dashboard_serve(void *ctx, struct http_conn *c,
		     const struct http_request *r);

/* Takes a sample of the rates when one is due. @return ms until the
 * next one. */
uint64_t dashboard_tick(struct dashboard *d, uint64_t now_ms);

#endif
