/*
 * internal.h: private structures of libringmq, shared by its source files
 * and never installed.
 *
 * The connection (conn.c) is a non-blocking socket with an input and an
 * output buffer. Requests are registered as pending entries keyed by
 * request_id; conn_pump() moves bytes, decodes whole frames and routes
 * each one (the frame router, below): an answer completes its pending
 * entry or goes to the module whose request it answers, a push goes to the
 * handler of its body case. Synchronous calls are a request plus pumping
 * until their entry completes; asynchronous ones (publish batches, acks)
 * keep their own tables and claim their answers through the router.
 *
 * The files, in layers: a file calls functions of the layers below its
 * own only (scripts/check-client-layers checks it), and the transport
 * reaches the modules above it through the router's hooks alone.
 *
 *   5  publish.c queue.c   the calls: build requests, read answers;
 *      admin.c message.c   the worker helper
 *      users.c worker.c
 *   4  client.c            options, connect and reconnect, the handle's
 *                          lifecycle, poll and flush
 *   3  consume.c           subscriptions, deliveries, leases, asynchronous
 *      producer.c          acks; batched and resent publishes
 *   2  touch.c             auto-touch
 *   1  conn.c              the transport and the frame router
 *   0  err.c frame.c       status codes and errmsg; frame decoding;
 *      tls.c               TLS over the socket (OpenSSL)
 *
 * Invariant: c->fd >= 0 exactly when c->state == CONN_OPEN.
 */
#ifndef RINGMQ_INTERNAL_H
#define RINGMQ_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ringmq.pb-c.h"
#include "ringmq.h"

/* Protocol version spoken (Hello.version). */
#define PROTO_VERSION 1

/* Frame length prefix, bytes. */
#define FRAME_HDR_BYTES 4

#define DEFAULT_SERVER		   "127.0.0.1:7420"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS		   3600000

#define DEFAULT_RECONNECT_BACKOFF_MS	 100
#define DEFAULT_RECONNECT_BACKOFF_MAX_MS 10000
#define DEFAULT_PING_INTERVAL_MS	 15000
#define DEFAULT_LINGER_MS		 5
#define DEFAULT_BATCH_MAX_MESSAGES	 1000
#define DEFAULT_MAX_OUTSTANDING_BYTES	 (64u * 1024u * 1024u)
#define DEFAULT_NACK_BACKOFF_MS		 1000
#define DEFAULT_NACK_BACKOFF_MAX_MS	 300000

/*
 * Batches of one (queue, partition) in flight at once. The broker keeps the
 * outcome of a producer's last 5 batches per partition; resending more than
 * that after a reconnect could meet a sequence it no longer remembers.
 */
#define MAX_BATCHES_IN_FLIGHT 5

struct ringmq_opts {
	char *server;	   /* owned; "HOST:PORT[,HOST:PORT...]" */
	char *client_name; /* owned; NULL when unset */
	char *user;	   /* owned; NULL: no authentication */
	char *password;	   /* owned; wiped when freed */
	int connect_timeout_ms;
	int request_timeout_ms;
	int is_reconnect;
	int reconnect_backoff_ms;
	int reconnect_backoff_max_ms;
	int ping_interval_ms; /* 0: no keepalive */
	int linger_ms;
	uint32_t batch_max_messages;
	uint64_t max_outstanding_bytes;
	int is_block_when_full;
	int is_auto_touch;
	int nack_backoff_ms;
	int nack_backoff_max_ms;
	int is_tls;
	int is_tls_verify;     /* check the broker's certificate and name */
	char *tls_ca;	       /* owned; NULL: the system's CAs */
	char *tls_cert;	       /* owned; NULL: no client certificate */
	char *tls_key;	       /* owned; NULL with tls_cert */
	char *tls_server_name; /* owned; NULL: each address's host */
};

enum conn_state {
	CONN_OPEN,   /* socket usable */
	CONN_LOST,   /* dropped or protocol error; reconnect may follow */
	CONN_CLOSED, /* closed by the owner: calls fail CLOSED */
};

/* A request waiting for its answer. Lives on the caller's stack. */
struct pending {
	uint64_t request_id;
	Ringmq__Frame *resp; /* owned once set (frame_free) */
	int is_done;
	struct pending *next; /* borrowed; list owned by the client */
};

/*
 * One request of ringmq_ack_async(): sent and waiting for its answer on
 * c->acks.sent (request_id != 0), then with its codes on c->acks.done
 * until the callback runs.
 */
struct async_ack {
	uint64_t request_id;
	ringmq_ack_cb cb;
	void *ctx;
	size_t n;
	uint64_t *ids;		/* owned, n of them */
	int *codes;		/* owned, n of them */
	struct async_ack *next; /* list link */
};

/*
 * Frames from the broker (frame.c): decoded into one arena, freed with
 * frame_free (never with ringmq__frame__free_unpacked). frame_alloc adds
 * memory to a frame's arena that goes back with it.
 */
Ringmq__Frame *frame_unpack(const uint8_t *data, size_t len);
/* The two decoders frame_unpack chooses between, for tests: protobuf-c's
 * (any frame) and the hand-written one (Delivery, PublishOk, LeaseResult;
 * NULL for anything it leaves to protobuf-c). */
Ringmq__Frame *frame_unpack_generic(const uint8_t *data, size_t len);
Ringmq__Frame *frame_unpack_fast(const uint8_t *data, size_t len);
void *frame_alloc(Ringmq__Frame *f, size_t size);
void frame_free(Ringmq__Frame *f);

struct ringmq_delivery {
	Ringmq__Frame *f;	      /* owned; body_case is DELIVERY */
	uint64_t conn_gen;	      /* the connection it came on */
	struct ringmq_delivery *next; /* queue link while inside the client */
};

/*
 * A subscription as the caller knows it. Its id stays the same across
 * reconnects; wire_id is the broker's number on the current connection.
 */
struct sub {
	uint32_t id;
	uint32_t wire_id;
	int is_live;	 /* subscribed on the current connection */
	int is_ended;	 /* unsubscribed: not restored, ids still mapped */
	int is_first;	 /* its first Subscribe unanswered: not restored */
	int end_code;	 /* RINGMQ_* the broker ended it with, or 0 */
	int is_end_told; /* end_code returned by ringmq_next already */
	char *queue;	 /* owned */
	char *group;	 /* owned */
	uint32_t credit;
	int start;
	ringmq_delivery_cb cb; /* NULL: deliveries go to ringmq_next() */
	void *ctx;	       /* borrowed; the caller's */
	struct sub *next;      /* list owned by the client */
};

/* A lease handed out while auto-touch is on. */
struct tracked_lease {
	uint64_t lease_id;
	int64_t touch_at_ms; /* monotonic */
	int64_t period_ms;   /* lease time seen at delivery */
};

/*
 * The frame router. conn.c is the transport and calls no module above it:
 * what it reads, and what happens to the connection, goes to handlers the
 * modules register once, in ringmq_client_connect() before the first byte
 * is read. Who takes what:
 *
 * - an answer (request_id != 0): the call waiting for it in the pending
 *   table (conn_call); else each hook's answer() in turn until one claims
 *   it: producer.c (publish batches), consume.c (asynchronous acks); else
 *   it is dropped (a late answer, a keepalive's Pong, a touch's result);
 * - a push (request_id 0, or a broker's Ping), by body case: consume.c
 *   takes Delivery and SubscriptionEnded; conn.c itself Ping, Goodbye and
 *   Error; another is ignored;
 * - each pump round of a ready connection, each hook's tick(): producer.c
 *   sends due batches, touch.c due touches; conn.c then its keepalive;
 * - after the pump moved bytes, each hook's after_io(): producer.c
 *   sends what the answers made room for;
 * - a lost connection, each hook's lost(): consume.c (subscriptions and
 *   their queued deliveries; asynchronous acks), producer.c, touch.c;
 * - the next reconnect attempt: client.c's reconnect.
 *
 * Each module has one const struct conn_hooks; client.c adds them, in the
 * order they run: subs_hooks, producer_hooks, acks_hooks, touch_hooks.
 * Hooks run with the lock held. Fixed arrays of function pointers set at
 * start-up: routing a frame is a few compares, with no allocation.
 */

/* A handler of pushed frames of one body case. fn takes f: frees it
 * (frame_free) or keeps it. */
struct conn_push {
	Ringmq__Frame__BodyCase body;
	void (*fn)(struct ringmq_client *c, Ringmq__Frame *f);
};

/* What one module takes from the transport; a NULL member: nothing of
 * that kind. A const object of its module, added by conn_add_hooks(). */
struct conn_hooks {
	const struct conn_push *push; /* n_push handlers, by body case */
	size_t n_push;
	/* An answer no waiting call claimed. @return 1 when f answers one
	 * of the module's requests (f taken), else 0 (f untouched). */
	int (*answer)(struct ringmq_client *c, Ringmq__Frame *f);
	/* Sends what is due at now_ms. @return when it is next due
	 * (monotonic ms), or -1. */
	int64_t (*tick)(struct ringmq_client *c, int64_t now_ms);
	/* When tick is next due (monotonic ms), or -1; changes nothing. */
	int64_t (*due)(const struct ringmq_client *c);
	/* The pump moved bytes (the socket was ready): answers read may
	 * have made room to send more. */
	void (*after_io)(struct ringmq_client *c, int64_t now_ms);
	/* The connection was lost: state LOST, buffers emptied. */
	void (*lost)(struct ringmq_client *c);
};

#define CONN_MAX_HOOKS 8
#define CONN_MAX_PUSH  8

struct conn_router {
	const struct conn_hooks *hooks[CONN_MAX_HOOKS]; /* borrowed: static */
	size_t n_hooks;
	struct conn_push push[CONN_MAX_PUSH]; /* every hook's, flat */
	size_t n_push;
	/* A lost connection's next attempt: OK when connected again. */
	int (*reconnect)(struct ringmq_client *c);
};

/* The transport's own state: conn.c alone reads and writes it. */
struct conn_io {
	uint8_t *in; /* owned; bytes read, not yet decoded */
	size_t in_len;
	size_t in_cap;
	uint8_t *out; /* owned; bytes to send from out_off to out_len */
	size_t out_off;
	size_t out_len;
	size_t out_cap;
	uint32_t max_in_frame_bytes; /* longest frame read (hello's + slack) */
	uint64_t next_request_id;
	struct pending *pending; /* borrowed entries of waiting calls */
	int64_t last_rx_ms;	 /* last bytes from the broker */
	int64_t ping_sent_ms;	 /* 0: no keepalive ping outstanding */
};

/* Subscriptions and the deliveries not handed out yet (consume.c; client.c
 * detaches the callback queue to run it). */
struct subs_state {
	struct sub *list; /* owned */
	uint32_t last_id; /* the last subscription id given, 0 at first */
	struct ringmq_delivery *dq_head; /* owned queue for ringmq_next() */
	struct ringmq_delivery *dq_tail;
	struct ringmq_delivery *cbq_head; /* owned; for callback subs */
	struct ringmq_delivery *cbq_tail;
	/* Deliveries of no live subscription that came while a Subscribe
	 * waited for its answer: the broker may send the new
	 * subscription's first deliveries right behind its SubscribeOk,
	 * read before the subscription is live. Owned list. */
	struct ringmq_delivery *unclaimed_head, *unclaimed_tail;
	int subscribing; /* Subscribes waiting for their answers */
	/* SubscriptionEnded frames that came while a Subscribe waited, for
	 * a subscription not live yet (applied once it is; bounded: an end
	 * past the bound is lost, as a frame of no subscription). */
	uint32_t early_end_ids[8];
	int early_end_codes[8];
	int n_early_ends;
};

/* Asynchronous acks (consume.c; client.c detaches the done list and
 * its flush waits for sent to empty). */
struct acks_state {
	struct async_ack *sent; /* owned: sent, unanswered, in send order */
	struct async_ack *sent_tail;
	struct async_ack *done; /* owned: answered, callback not run */
	struct async_ack *done_tail;
};

/* Auto-touch (touch.c). */
struct touch_state {
	struct tracked_lease *tracked; /* owned array */
	size_t n_tracked;
	size_t cap_tracked;
	pthread_t thread;
	int has_thread;
	int is_stopping;
};

struct ptopic; /* producer.c */
struct pmsg;   /* producer.c */
struct pbatch; /* producer.c */

/* Asynchronous and synchronous publishes (producer.c; client.c detaches
 * the done list, and its flush and ringmq_client_outstanding() read
 * n_outstanding and bump n_flushing). */
struct producer_state {
	struct ptopic *topics;	 /* owned list */
	struct pbatch *inflight; /* borrowed: batches sent, unanswered */
	struct pmsg *done_head;	 /* owned: completed, callback not run */
	struct pmsg *done_tail;
	size_t n_unsent_msgs;	 /* queued, not yet in a batch */
	size_t n_unsent_batches; /* cut, not sent on this connection */
	/* Monotonic ms: nothing is sent before (the user's publish rate
	 * quota is exhausted); 0: none. */
	int64_t hold_until_ms;
	size_t n_outstanding; /* accepted, not yet answered */
	uint64_t outstanding_bytes;
	int n_flushing; /* threads in flush: send at once */
};

/*
 * The client handle. The fields at the top are shared: each names the
 * files that write it; every module reads them. Each sub-struct below
 * them belongs to one module, which alone touches it, with the
 * exceptions its comment names.
 */
struct ringmq_client {
	struct ringmq_opts opts; /* owned copy (client.c) */
	char *server;		 /* owned; the address connected to */
	size_t server_idx;	 /* index of that address in the list */

	/* The connection: conn.c, and client.c's connect and close;
	 * is_closing also producer.c, on a SHUTTING_DOWN answer. */
	int fd;
	struct ssl_st *ssl; /* owned with fd: its TLS, NULL in plaintext */
	enum conn_state state;
	int is_closing; /* Goodbye seen: the broker will close soon */
	int is_ready;	/* hello done on the current socket */
	int is_connecting;
	uint64_t conn_gen; /* bumped by every successful (re)connect */

	/*
	 * One lock guards everything below and above. It is recursive
	 * (conn_call takes it too, under callers that hold it); lock_depth
	 * counts the holds so that a wait can drop them all around poll().
	 * hold_lock > 0 keeps it held while waiting (during reconnect).
	 */
	pthread_mutex_t lock;
	int lock_depth;
	int hold_lock;
	int wake_fd;  /* eventfd: wakes threads waiting in poll() */
	int sleepers; /* threads in poll() right now */

	/* Reconnect schedule: a loss sets it (conn.c), a failed attempt
	 * backs off (client.c). */
	int64_t next_attempt_ms; /* earliest reconnect attempt */
	int backoff_ms;		 /* current reconnect backoff */

	/* Limits from the last hello (client.c). */
	uint32_t max_frame_bytes;
	uint32_t max_message_bytes;
	uint32_t max_batch_count;
	uint32_t max_header_count; /* UINT32_MAX when the broker says none */
	uint64_t producer_id;

	uint64_t rr_seed; /* client.c: jitter; the producer's round-robin */

	struct ssl_ctx_st *tls_ctx; /* client.c: owned, from the options;
				     * NULL without tls */

	volatile sig_atomic_t is_woken;		  /* ringmq_client_wakeup() */
	volatile sig_atomic_t is_worker_stopping; /* ringmq_worker_stop() */

	char errmsg[512]; /* the last call's error: ringmq_client_errmsg() */

	struct conn_router router;	/* conn.c: set at connect */
	struct conn_io io;		/* conn.c */
	struct subs_state subs;		/* consume.c */
	struct acks_state acks;		/* consume.c */
	struct touch_state touch;	/* touch.c */
	struct producer_state producer; /* producer.c */
};

/*
 * The lock, for every file: inline so that no file calls up into client.c
 * for it. conn.c's poll drops and retakes every hold (lock_depth).
 */

/* Takes the client's lock (recursive). */
static inline void
client_lock(struct ringmq_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->lock_depth++;
}

/* Drops one hold of the lock. */
static inline void
client_unlock(struct ringmq_client *c)
{
	c->lock_depth--;
	pthread_mutex_unlock(&c->lock);
}

/* --- err.c */

/* Sets c->errmsg (printf-style); returns code for tail calls. */
int client_fail(struct ringmq_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Status of the client for a new call: OK, CONNECTION_LOST or CLOSED.
 * Clears errmsg. */
int client_begin(struct ringmq_client *c);

/* snprintf into a caller's error buffer (NULL allowed). */
void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* --- tls.c (OpenSSL's SSL and SSL_CTX, by their struct names) */

struct ssl_st;
struct ssl_ctx_st;

/* What tls_send and tls_recv return besides a byte count. */
#define TLS_FAILED	-1 /* why says why; the connection is lost */
#define TLS_WOULD_BLOCK -2 /* the socket has nothing, or takes nothing */

/*
 * The TLS context of o's tls options: the CA file (or the system's CAs),
 * the client certificate and key, TLS 1.2 at least.
 * @param[out] out  the context (tls_ctx_free), NULL on failure.
 * @return 0, or -1 with why (a file that does not load, no memory).
 */
int tls_ctx_new(struct ssl_ctx_st **out, const struct ringmq_opts *o, char *why,
		size_t whylen);

void tls_ctx_free(struct ssl_ctx_st *ctx);

/*
 * The TLS handshake on fd, a connected non-blocking socket, within
 * timeout_ms. name is the broker's expected name: sent as SNI (unless an
 * address) and, with is_verify, checked against its certificate.
 * @param[out] out  the TLS connection (tls_free); NULL on failure.
 * @return 0, or -1 with why in the caller's words (which certificate
 *         check failed, a plaintext port, the time).
 */
int tls_handshake(struct ssl_ctx_st *ctx, int fd, const char *name,
		  int is_verify, int timeout_ms, struct ssl_st **out, char *why,
		  size_t whylen);

/* Like send() and recv() on a non-blocking socket: bytes moved, 0 for
 * the broker's end of stream (recv), TLS_WOULD_BLOCK, or TLS_FAILED with
 * why. */
long tls_send(struct ssl_st *ssl, const void *buf, size_t len, char *why,
	      size_t whylen);
long tls_recv(struct ssl_st *ssl, void *buf, size_t len, char *why,
	      size_t whylen);

/* 1 when decrypted or read-ahead bytes wait inside ssl (poll() on the
 * socket does not see them). */
int tls_has_pending(const struct ssl_st *ssl);

/* Frees ssl (NULL: no-op), after a close_notify if is_clean; the socket
 * stays open. */
void tls_free(struct ssl_st *ssl, int is_clean);

/* --- client.c */

/* Strict decimal parse of value into [min, max]; 0 or -1. */
int parse_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out);

/* The outcome of one message of a synchronous publish. */
struct publish_result {
	int code;
	uint32_t partition;
	uint64_t offset;
	int is_duplicate;
	char *message; /* owned; NULL when none */
};

/* --- publish.c */

/* A message to publish: made and changed by publish.c, read by the
 * producer. */
struct ringmq_message {
	Ringmq__Message pb; /* every pointer in it owned by the message */
};

/* The protobuf form of m (owned by m). */
static inline const Ringmq__Message *
message_pb(const ringmq_message *m)
{
	return &m->pb;
}

/* Longest key, dedup id or header name the broker takes (HelloOk
 * announces it too). */
#define MESSAGE_FIELD_MAX_BYTES 65535u

/* --- conn.c */

/* Monotonic clock, ms; here so that every layer (tls.c's handshake
 * deadline too) reads the one clock. */
static inline int64_t
conn_now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Makes c's transport (c zeroed): no socket yet, request ids from 1,
 * conn.c's own push handlers (Ping, Goodbye, Error), and reconnect as the
 * router's hook for a lost connection's next attempt. First of all.
 */
void conn_init(struct ringmq_client *c,
	       int (*reconnect)(struct ringmq_client *c));

/* Adds a module's hooks h (static storage), run after those added
 * before; its push handlers join the router's table. At start-up only. */
void conn_add_hooks(struct ringmq_client *c, const struct conn_hooks *h);

/* Drops the socket after a failure: state LOST, fd closed, buffers
 * emptied, the router's lost hooks run, pending calls left to notice.
 * why goes to errmsg. */
void conn_lose(struct ringmq_client *c, const char *why);

/* Frees the buffers; closes fd. */
void conn_fini(struct ringmq_client *c);

/* Puts c back to "no connection" between connect attempts: socket
 * closed, buffers emptied, frames read limited to the pre-hello bound.
 * The limits of the last hello stay: messages queued while there is no
 * connection are checked against them. */
void conn_reset(struct ringmq_client *c);

/* Takes fd, a freshly connected socket, and ssl, its TLS after the
 * handshake (NULL in plaintext), as the connection (state OPEN, hello
 * not done). */
void conn_attach(struct ringmq_client *c, int fd, struct ssl_st *ssl);

/* Hello is done and c's limits are the broker's: frames read may be up
 * to its max frame bytes and the slack of a Delivery. */
void conn_ready(struct ringmq_client *c);

/*
 * Packs f (request_id already set) with its length prefix into the output
 * buffer. Nothing is written to the socket until conn_pump().
 * @return OK; MESSAGE_TOO_LARGE when over max_frame_bytes; INTERNAL (no
 *         memory).
 */
int conn_queue_frame(struct ringmq_client *c, const Ringmq__Frame *f);

/*
 * One round of I/O, lock held (dropped while poll() waits): runs the
 * timers (due batches, touches, keepalive), waits until the socket or the
 * wake fd is ready, a timer is due or deadline_ms passes (negative: no
 * limit), then writes what it can, reads what is there and dispatches
 * every whole frame. Without a connection it waits for the next
 * reconnect attempt and makes it.
 * @return OK (progress, a wake-up or nothing to do), TIMEOUT (deadline
 *         reached), CONNECTION_LOST (lost now, or lost with reconnect
 *         off), or CLOSED.
 */
int conn_pump(struct ringmq_client *c, int64_t deadline_ms);

/* When conn_pump() next has work though the socket stays silent (a due
 * tick, a keepalive, a reconnect attempt), monotonic ms; -1 for never.
 * Changes nothing; lock held. */
int64_t conn_next_due_ms(const struct ringmq_client *c);

/*
 * Sends req (its request_id is assigned here) and waits for the answer,
 * at most the request timeout.
 * @param[out] respp receives the answer frame (owned by the caller, free
 *             with frame_free) when OK.
 * @param want the body expected; an Error answer returns its code (the
 *        message goes to errmsg), another body returns BAD_FRAME.
 * @return OK, TIMEOUT, CONNECTION_LOST, the broker's code, or BAD_FRAME.
 */
int conn_call(struct ringmq_client *c, Ringmq__Frame *req,
	      Ringmq__Frame__BodyCase want, Ringmq__Frame **respp);

/* conn_call for a request answered Done. */
int conn_call_done(struct ringmq_client *c, Ringmq__Frame *req);

/* conn_call with its own answer timeout, for a request that outlasts the
 * client's request timeout (backup); reaching a connection still takes at
 * most the request timeout. */
int conn_call_timeout(struct ringmq_client *c, Ringmq__Frame *req,
		      Ringmq__Frame__BodyCase want, int timeout_ms,
		      Ringmq__Frame **respp);

/* Status codes that mean the connection, not the request, failed. */
static inline int
status_is_conn_failure(int code)
{
	return code == RINGMQ_CONNECTION_LOST || code == RINGMQ_TIMEOUT ||
	       code == RINGMQ_CLOSED;
}

/* --- client.c (more) */

/* Callbacks detached from the client, run after its lock is dropped. */
struct cb_work {
	struct pmsg *pubs;	      /* owned */
	struct ringmq_delivery *dels; /* owned */
	struct async_ack *acks;	      /* owned */
};

/* 1 when a callback of any kind is ready to run: publish reports,
 * deliveries of callback subscriptions, answered asynchronous acks. Every
 * list that client_take_callbacks() detaches is checked here. Lock held. */
int client_has_callbacks(const struct ringmq_client *c);

/* Detaches every pending callback into w. Lock held. */
void client_take_callbacks(struct ringmq_client *c, struct cb_work *w);

/* Runs the callbacks of w, lock not held; @return how many ran. */
int client_run_callbacks(struct ringmq_client *c, struct cb_work *w);

/* --- conn.c (more) */

/* Next request id (never 0). Lock held. */
uint64_t conn_next_request_id(struct ringmq_client *c);

/* Wakes threads waiting in conn_pump() (they re-check their state). */
void conn_wake(struct ringmq_client *c);

/* Sends what the socket takes now, without waiting. Lock held. */
void conn_try_send(struct ringmq_client *c);

/*
 * Makes sure the client is connected, reconnecting (with the backoff)
 * until deadline_ms when it lost its connection, or when what it reads
 * first, without waiting, shows the broker closed it. Lock held.
 * @return OK; CLOSED; CONNECTION_LOST (reconnect off); UNREACHABLE.
 */
int conn_ensure(struct ringmq_client *c, int64_t deadline_ms);

/* --- producer.c */

/* The producer's hooks: answers to batches, the linger timer, sending
 * after I/O, a lost connection. */
extern const struct conn_hooks producer_hooks;

/* Cuts and sends the batches that are due (linger passed, full, flush,
 * or a resend after reconnect). Lock held, connection ready. */
void producer_send_due(struct ringmq_client *c, int64_t now_ms);

/*
 * The connection is gone. code 0: keep everything for a resend after
 * reconnect; otherwise complete every message with code.
 */
void producer_on_lost(struct ringmq_client *c, int code);

/*
 * Publishes msgs[0..n) to queue as asynchronous publishes go (numbered in
 * their partitions' sequences, batched, sent again after a reconnect), due
 * at once, and waits until each is answered, each answer giving the rest
 * another request timeout. Lock held (dropped while waiting).
 * @param[out] res n results, zeroed by the caller: each gets its code
 *             (MESSAGE_TOO_LARGE over the broker's limits, never sent;
 *             TIMEOUT, UNREACHABLE or CONNECTION_LOST when unanswered).
 * @return OK once every result is set; otherwise why none was sent
 *         (QUEUE_NOT_FOUND, the partition count unknown, no memory): the
 *         results still OK then are the caller's to fail.
 */
int producer_publish_wait(struct ringmq_client *c, const char *queue,
			  const ringmq_message *const *msgs, size_t n,
			  struct publish_result *res);

/* Frees messages (without callbacks) and topics. */
void producer_fini(struct ringmq_client *c);

/* Runs and frees completed publishes; @return how many. */
int producer_run_done(struct ringmq_client *c, struct pmsg *list);

/* --- consume.c */

/* The asynchronous acks' hooks: their answers, a lost connection. */
extern const struct conn_hooks acks_hooks;

/* The connection is gone or the client closes: every unanswered
 * asynchronous ack completes with code. Lock held. */
void acks_on_lost(struct ringmq_client *c, int code);

/* Runs and frees completed asynchronous acks; @return how many. */
int acks_run_done(struct ringmq_client *c, struct async_ack *list);

/* Frees every asynchronous ack without callbacks. */
void acks_fini(struct ringmq_client *c);

/* The subscriptions' hooks: Delivery and SubscriptionEnded pushes, a
 * lost connection. */
extern const struct conn_hooks subs_hooks;

/* Frees the deliveries not handed out yet: ringmq_next()'s queue and the
 * callback queue. Lock held. */
void subs_drop_queued(struct ringmq_client *c);

/* Subscribes again on a new connection; OK or a connection failure. */
int subs_restore(struct ringmq_client *c);

void subs_fini(struct ringmq_client *c);

/* Runs delivery callbacks (takes the list); @return how many. */
int subs_run_callbacks(struct ringmq_client *c, struct ringmq_delivery *l);

/* --- touch.c */

/* Auto-touch's hooks: due touches, a lost connection. */
extern const struct conn_hooks touch_hooks;

/* Auto-touch: remember d's lease; forget settled ones. */
void touch_track(struct ringmq_client *c, const struct ringmq_delivery *d);
void touch_forget(struct ringmq_client *c, const uint64_t *ids, size_t n);
int touch_thread_start(struct ringmq_client *c);
void touch_thread_stop(struct ringmq_client *c);

/* Frees what auto-touch holds (the thread stopped). */
void touch_fini(struct ringmq_client *c);

#endif
