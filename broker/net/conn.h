/*
 * conn: client connections, as bytes.
 *
 * Owns each connection's socket, its input bytes (a frame that straddles
 * receive buffers is copied here so the shared buffer ring never starves),
 * its output buffers (one vectored send in flight, a bounded amount
 * pending), its references and the liveness rules (idle, ping, unread
 * output). A connection whose pending output is over max-conn-out-bytes, or
 * with max-conn-pending requests in flight, is not read until it drains.
 *
 * What the frames mean is the session's (req/session.c): conn hands it each
 * whole frame through struct conn_ops, set at start-up, and the session
 * answers through the output calls below. conn knows no protobuf type.
 *
 * Lifetime: a connection is freed only after its last in-flight operation
 * completed and every asynchronous completion it waits for (store commits)
 * came back; until then a closed connection only drops what it would send.
 */
#ifndef RINGMQ_CONN_H
#define RINGMQ_CONN_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct stats;
struct config;
struct conn;
struct tls_ctx;
struct tls_conn;

/* What a connection asks of the session above it. Each takes the session
 * that open returned. */
struct conn_ops {
	/* A connection opened. @return its session, or NULL when out of
	 * memory (the connection is refused). */
	void *(*open)(void *ctx, struct conn *c);
	/* One whole frame, without its length prefix. @return 0 when
	 * handled; 1 when it must wait for a request in flight: it is kept
	 * and offered again once the connection resumes. */
	int (*frame)(void *session, const uint8_t *body, size_t len);
	/* The connection breaks off for rc (a frame over the size limit, an
	 * empty one, no memory): tell the peer; conn closes after. */
	void (*broken)(void *session, int rc, const char *why);
	/* Input is drained: give back per-burst memory. */
	void (*trim)(void *session);
	/* It may be written to again (output drained, or a silent peer
	 * spoke). */
	void (*writable)(void *session);
	/* Send a ping carrying nonce. */
	void (*ping)(void *session, uint64_t nonce);
	/* Send a goodbye: the broker shuts down. */
	void (*goodbye)(void *session);
	/* 1 once the peer said hello. */
	int (*is_started)(void *session);
	/* 1 when an unresponsive peer may be closed at now_ms: it holds no
	 * work, and has held none for idle_ms. */
	int (*is_done_with_work)(void *session, uint64_t now_ms,
				 uint64_t idle_ms);
	/* It closes (is_failure: the peer went or broke the protocol, not
	 * a shutdown): end what it holds. */
	void (*closing)(void *session, int is_failure);
	/* It is freed. */
	void (*free)(void *session);
};

/* What every connection shares; owned by the server. */
struct conn_env {
	struct loop *loop;	  /* borrowed */
	const struct config *cfg; /* borrowed */
	struct stats *stats;	  /* borrowed: counted into */
	const struct conn_ops *ops;
	void *ops_ctx; /* passed to ops->open */
	uint64_t conn_counter;
	struct conn *conns; /* list of live connections */
	size_t count;	    /* live connections */
	size_t closing;	    /* of those, closed by either side, not gone */
	size_t restricted;  /* of the others, held only to answer a refusal
			     * (conn_restrict) */
	struct conn *flush; /* connections with output to send */
};

/* Takes over socket fd and starts reading it.
 * @param tls  borrowed: the context of a TLS listener (its current
 *             certificate is the connection's for its life), or NULL for
 *             plaintext.
 * @param[out] out  the connection (may be NULL).
 * @return 0, or -errno (fd is closed). */
int conn_open(struct conn_env *env, int fd, struct tls_ctx *tls,
	      struct conn **out);

/* Holds c only to answer its first frame with a refusal: its frames may
 * have at most max_frame_bytes, and it is closed lifetime_ms after it
 * opened whatever it sends. Counted in env->restricted until it closes. */
void conn_restrict(struct conn *c, uint32_t max_frame_bytes,
		   uint64_t lifetime_ms);

/* Submits the sends of every connection with pending output. */
void conn_flush_all(struct conn_env *env);

/* Shutdown: sends Goodbye to every connection and closes them once their
 * output is out. */
void conn_goodbye_all(struct conn_env *env);

/* --- for the session --- */

void *conn_session(const struct conn *c);
uint64_t conn_id(const struct conn *c);
/* The peer's address, "HOST:PORT", as it was when the connection opened. */
const char *conn_peer(const struct conn *c);
/* The address the peer reached this broker at, "HOST:PORT", into buf. */
void conn_local_name(const struct conn *c, char *buf, size_t size);
/* 1 if the peer is on this host (a loopback address). */
int conn_is_local(const struct conn *c);
/* The TLS state of c (tls.h: tls_conn_peer_identity gives the verified
 * client certificate's names); NULL on a plaintext connection. */
const struct tls_conn *conn_tls(const struct conn *c);
/* 1 once the socket failed: output is dropped, nothing reaches the peer. */
int conn_is_dead(const struct conn *c);
/* 1 once it closes: read no more. */
int conn_is_closing(const struct conn *c);
/* 1 while it may take more pushed output (deliveries): open, answering
 * pings, and its output under the limit. */
int conn_is_writable(const struct conn *c);
/* 1 while requests of it wait for completions. */
int conn_has_requests(const struct conn *c);

/* Room for n more bytes of output, to be written and then committed;
 * NULL (logged) when out of memory. Not for a dead connection. */
uint8_t *conn_out_reserve(struct conn *c, size_t n);
/* Sends the n bytes written into the reserved room. */
void conn_out_commit(struct conn *c, size_t n);

/* Stops reading and closes once the output is out: the peer broke the
 * protocol or said goodbye, its leases end as failures. why (static) is
 * logged. */
void conn_close(struct conn *c, const char *why);

/* A completion will come back for c: keep it allocated until then. */
void conn_ref(struct conn *c);
/* Drops a reference; @return 1 if c can still be answered (when 0, c and
 * its session may be gone). */
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
