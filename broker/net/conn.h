/*
 * conn: client connections.
 *
 * Owns each connection's socket, its input bytes (a frame that straddles
 * receive buffers is copied here so the shared buffer ring never starves),
 * its output buffers (one vectored send in flight, a bounded amount
 * pending), hello, subscriptions and leases held, and the table of request
 * handlers. A connection whose pending output is over max-conn-out-bytes is
 * not read until it drains.
 *
 * Lifetime: a connection is freed only after its last in-flight operation
 * completed and every asynchronous completion it waits for (store commits)
 * came back; until then a closed connection only drops what it would send.
 */
#ifndef RINGMQ_CONN_H
#define RINGMQ_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct loop;
struct stats;
struct queues;
struct groups;
struct config;
struct conn;
struct store;

/* What every connection shares; owned by the server. */
struct conn_env {
	struct loop *loop;	  /* borrowed */
	struct queues *qs;	  /* borrowed */
	struct groups *gs;	  /* borrowed */
	struct store *store;	  /* borrowed */
	const struct config *cfg; /* borrowed */
	struct stats *stats;	  /* borrowed: counted into */
	uint64_t boot_epoch;
	uint64_t producer_counter;
	uint64_t conn_counter;
	struct conn *conns; /* list of live connections */
	size_t count;	    /* live connections */
	size_t closing;	    /* of those, closed by either side, not gone */
	struct conn *flush; /* connections with output to send */
	int is_shutting_down;
};

/* Takes over socket fd and starts reading it.
 * @return 0, or -errno (fd is closed). */
int conn_open(struct conn_env *env, int fd);

/* Refuses a connection over the limit: sends an Error and closes. */
void conn_refuse(struct conn_env *env, int fd, int code, const char *why);

/* Submits the sends of every connection with pending output. */
void conn_flush_all(struct conn_env *env);

/* Shutdown: sends Goodbye to every connection and closes them once their
 * output is out. */
void conn_goodbye_all(struct conn_env *env);

/* --- for request handlers outside conn.c (admin.c) --- */

struct conn_env *conn_env_of(struct conn *c);
/* Appends f to c's output (dropped if c is dead). @return 0 or -ENOMEM. */
int conn_send(struct conn *c, Ringmq__Frame *f);

/* A request answered from a completion (a commit, a flush): it holds its
 * connection (conn_ref) until answered. Put it first in a larger context
 * to carry more. */
struct conn_req {
	struct conn *c;
	uint64_t request_id;
	uint64_t start_us; /* monotonic, when the request was read */
};

/* A zeroed context of sizeof(struct conn_req) + extra bytes for request f
 * of c; NULL when out of memory (nothing is sent). */
struct conn_req *conn_req_new(struct conn *c, const Ringmq__Frame *f,
			      size_t extra);

/* A completion that answers Done, or the Error of status < 0, if the
 * connection still lives; frees the context. */
void conn_req_done(void *ctx, int status);
/* Answers request_id with an Error of wire code code. */
void conn_send_error(struct conn *c, uint64_t request_id, int code,
		     const char *why);
/* Answers with an Error for a negative broker code. */
void conn_send_rc(struct conn *c, uint64_t request_id, int rc);
void conn_send_done(struct conn *c, uint64_t request_id);
/* A completion will come back for c: keep it allocated until then. */
void conn_ref(struct conn *c);
/* Drops a reference; @return 1 if c can still be answered. */
int conn_unref_live(struct conn *c);

/* Once a second or so: pings silent peers and closes the ones that do not
 * answer, have not said hello, or stopped mid-frame (idle-timeout-ms). */
void conn_sweep(struct conn_env *env, uint64_t now_ms);

/* Closes the connections that have read to their peer's EOF long enough
 * after their last output (part of conn_sweep; shutdown calls it alone,
 * more often). */
void conn_sweep_lingering(struct conn_env *env, uint64_t now_ms);

/* Frees every connection at once, whatever is in flight; only after the
 * loop has stopped and its ring is gone. */
void conn_free_all(struct conn_env *env);

#endif
