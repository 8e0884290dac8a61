/*
 * req: the request handlers, by family: session.c (hello, ping, goodbye,
 * and the session conn_ops), publish.c, consume.c (subscribe, credit,
 * ack, nack, release, touch), queues.c (create, set, list, describe,
 * delete, purge), groups.c (create, delete, list, describe, reset),
 * messages.c (peek, message show and cancel, dead-letter list and
 * redrive), admin.c (stats, backup), users.c (users and ACLs) and auth.c
 * (the SCRAM exchange of the hello, and permissions). dispatch.c decodes each
 * frame and hands it to its handler through the table indexed by its body case.
 *
 * Handlers answer through the helpers below (req.c), and convert between
 * the wire's types and codes and the core's here, at the edge.
 */
#ifndef RINGMQ_REQ_H
#define RINGMQ_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct conn;
struct conn_env;
struct config;
struct groups;
struct queue;
struct queues;
struct session;
struct stats;
struct store;
struct users;
struct auth_env;

/* What every session shares; owned by the server. */
/* A live broker of the cluster. */
struct req_broker {
	const char *id;
	const char *addr; /* HOST:PORT clients reach it at */
};

struct req_cluster {
	const char *name;
	const char *self;	/* this broker's id */
	const char *controller; /* its broker id, "" while there is none */
	const struct req_broker *brokers; /* [nbrokers], by id */
	size_t nbrokers;
};

struct req_env {
	struct queues *qs;	      /* borrowed */
	struct groups *gs;	      /* borrowed */
	struct store *store;	      /* borrowed */
	const struct config *cfg;     /* borrowed */
	struct stats *stats;	      /* borrowed: counted into */
	const struct conn_env *conns; /* borrowed: for the connection count */
	uint64_t boot_epoch;
	uint64_t producer_counter;
	int is_shutting_down;
	struct users *users;	      /* borrowed */
	struct auth_env *auth;	      /* borrowed */
	struct session *sessions;     /* every session (session.c) */
	struct session *auth_waiting; /* sessions waiting, by due time */
	uint64_t denied_logged_ms;    /* monotonic: last denial logged */
	uint64_t denied_unlogged;     /* denials since, not logged */
	/* Told of every queue created here (cluster mode defines it
	 * cluster-wide); NULL: nobody. */
	void (*queue_defined)(void *ctx, const char *name, uint32_t partitions);
	void *queue_defined_ctx;
	/* The cluster as this broker knows it, for Metadata (the queues'
	 * owner tables say where each partition is); NULL: not in cluster
	 * mode. */
	const struct req_cluster *cluster;
};

/* --- shared by the handler families (req.c) --- */

/* The environment every handler works in. */
struct req_env *req_env_of(struct conn *c);

/* Appends f to c's output (nothing when c is dead).
 * @return 0 or -ENOMEM (logged). */
int req_send(struct conn *c, Ringmq__Frame *f);
/* Answers request_id with an Error of wire code code. */
void req_send_error(struct conn *c, uint64_t request_id, int code,
		    const char *why);
/* The same, telling when to try again (QUOTA_EXCEEDED). */
void req_send_retry(struct conn *c, uint64_t request_id, int code,
		    const char *why, uint64_t retry_after_ms);
/* Answers request_id with an Error for a negative broker code. */
void req_send_rc(struct conn *c, uint64_t request_id, int rc);
void req_send_done(struct conn *c, uint64_t request_id);
/* Answers request_id with body, the message of the Frame's body_case (a
 * Ringmq__StatsOk for RINGMQ__FRAME__BODY_STATS_OK, ...). */
void req_answer(struct conn *c, uint64_t request_id,
		Ringmq__Frame__BodyCase body_case, void *body);
/* Answers request_id with an Error of wire code code, and closes: the
 * peer broke the protocol. */
void req_fail(struct conn *c, uint64_t request_id, int code, const char *why);

/* A request answered from a completion (a commit, a flush): it holds its
 * connection (conn_ref) until answered. Put it first in a larger context
 * to carry more. */
struct req_ctx {
	struct conn *c;
	uint64_t request_id;
	uint64_t start_us; /* monotonic, when the request was read */
};

/* A zeroed context for request f, extra bytes past it; answers ENOMEM
 * itself (and returns NULL) when there is no memory. */
struct req_ctx *req_new(struct conn *c, const Ringmq__Frame *f, size_t extra);
/* A completion that answers Done, or the Error of status < 0, if the
 * connection still lives; frees the context. */
void req_done(void *ctx, int status);
/* Drops r's reference and frees r: nothing was submitted, and the caller
 * answers the request itself. */
void req_drop(struct req_ctx *r);
/* Drops r's reference, answers rc if the connection lives, frees r. */
void req_abort(struct req_ctx *r, int rc);
/* The queue called name, or NULL after answering QUEUE_NOT_FOUND (also
 * for a queue whose create is still committing). */
struct queue *req_find_queue(struct conn *c, const Ringmq__Frame *f,
			     const char *name);

/* --- GroupInfo answers (groups.c), for group list and queue describe --- */

struct req_infos {
	Ringmq__GroupInfo *gi; /* owned [cap] */
	Ringmq__GroupInfo **gp;
	uint64_t *floors; /* owned: partitions x cap */
	size_t n, cap;
	const struct queue *q;
	const char *only; /* a group name, or NULL for all */
};

/* Room for cap groups. @return 0 or -ENOMEM (fini it all the same). */
int req_infos_init(struct req_infos *in, size_t cap);
void req_infos_fini(struct req_infos *in);
/* Groups of q, for sizing. */
size_t req_count_groups(struct queue *q);
/* Adds the groups of q (a queues_each callback: ctx is a req_infos). */
void req_list_queue_groups(void *ctx, struct queue *q);

/* --- the dispatcher (dispatch.c) --- */

/* Decodes one frame of se's connection and hands it to its handler.
 * @return 0, or 1 when it must wait for a request in flight (not handled:
 * to be offered again). */
int req_frame(struct session *se, const uint8_t *body, size_t len);

/* --- handlers --- */

void req_hello(struct conn *c, const Ringmq__Frame *f);
void req_auth_response(struct conn *c, const Ringmq__Frame *f);
void req_ping(struct conn *c, const Ringmq__Frame *f);
void req_pong(struct conn *c, const Ringmq__Frame *f);
void req_goodbye(struct conn *c, const Ringmq__Frame *f);

void req_publish(struct conn *c, const Ringmq__Frame *f);

void req_subscribe(struct conn *c, const Ringmq__Frame *f);
void req_unsubscribe(struct conn *c, const Ringmq__Frame *f);
void req_credit(struct conn *c, const Ringmq__Frame *f);
void req_ack(struct conn *c, const Ringmq__Frame *f);
void req_nack(struct conn *c, const Ringmq__Frame *f);
void req_release(struct conn *c, const Ringmq__Frame *f);
void req_touch(struct conn *c, const Ringmq__Frame *f);

void req_queue_create(struct conn *c, const Ringmq__Frame *f);
void req_queue_set(struct conn *c, const Ringmq__Frame *f);
void req_queue_list(struct conn *c, const Ringmq__Frame *f);
void req_queue_describe(struct conn *c, const Ringmq__Frame *f);
void req_queue_delete(struct conn *c, const Ringmq__Frame *f);
void req_purge(struct conn *c, const Ringmq__Frame *f);

void req_group_create(struct conn *c, const Ringmq__Frame *f);
void req_group_delete(struct conn *c, const Ringmq__Frame *f);
void req_group_list(struct conn *c, const Ringmq__Frame *f);
void req_group_describe(struct conn *c, const Ringmq__Frame *f);
void req_group_reset(struct conn *c, const Ringmq__Frame *f);

void req_peek(struct conn *c, const Ringmq__Frame *f);
void req_message_show(struct conn *c, const Ringmq__Frame *f);
void req_message_cancel(struct conn *c, const Ringmq__Frame *f);
void req_dead_letter_list(struct conn *c, const Ringmq__Frame *f);
void req_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f);

void req_stats(struct conn *c, const Ringmq__Frame *f);
void req_backup(struct conn *c, const Ringmq__Frame *f);

void req_user_put(struct conn *c, const Ringmq__Frame *f);
void req_user_delete(struct conn *c, const Ringmq__Frame *f);
void req_user_list(struct conn *c, const Ringmq__Frame *f);
void req_acl_set(struct conn *c, const Ringmq__Frame *f);
void req_acl_delete(struct conn *c, const Ringmq__Frame *f);

void req_metadata(struct conn *c, const Ringmq__Frame *f);

#endif
