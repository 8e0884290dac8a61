/*
 * internal.h: private structures of libringmq, shared by its source files
 * and never installed.
 *
 * The connection (conn.c) is a non-blocking socket with an input and an
 * output buffer. Requests are registered as pending entries keyed by
 * request_id; conn_pump() moves bytes, decodes whole frames and dispatches
 * each one: a response completes its pending entry, a pushed Delivery is
 * queued on the client, a Ping is answered, a Goodbye marks the connection
 * as closing. Synchronous calls are a request plus pumping until their entry
 * completes; asynchronous calls later will add a callback to the entry.
 *
 * Invariant: c->fd >= 0 exactly when c->state == CONN_OPEN.
 */
#ifndef RINGMQ_INTERNAL_H
#define RINGMQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"
#include "ringmq.h"

/* Protocol version spoken (Hello.version). */
#define PROTO_VERSION 1

/* Frame length prefix, bytes. */
#define FRAME_HDR_BYTES 4

/* Bound on frames read before HelloOk tells the real limit. */
#define PRE_HELLO_MAX_FRAME_BYTES (1024u * 1024u)

/*
 * Allowance above the announced max_frame_bytes for frames the broker
 * sends: a Delivery wraps a message that fit in a Publish frame with a few
 * more fields.
 */
#define IN_FRAME_SLACK_BYTES 4096u

#define DEFAULT_SERVER		   "127.0.0.1:7420"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS		   3600000

/* Longest name allowed by [A-Za-z0-9][A-Za-z0-9._-]{0,195}. */
#define NAME_MAX_BYTES 196

struct ringmq_opts {
	char *server;	   /* owned; "HOST:PORT[,HOST:PORT...]" */
	char *client_name; /* owned; NULL when unset */
	int connect_timeout_ms;
	int request_timeout_ms;
};

enum conn_state {
	CONN_OPEN,   /* socket usable */
	CONN_LOST,   /* dropped or protocol error: calls fail CONNECTION_LOST */
	CONN_CLOSED, /* closed by the owner: calls fail CLOSED */
};

/* A request waiting for its answer. Lives on the caller's stack. */
struct pending {
	uint64_t request_id;
	Ringmq__Frame *resp; /* owned once set (protobuf-c default allocator) */
	int is_done;
	struct pending *next; /* borrowed; list owned by the client */
};

struct ringmq_delivery {
	Ringmq__Frame *f;	      /* owned; body_case is DELIVERY */
	struct ringmq_delivery *next; /* queue link while inside the client */
};

struct ringmq_client {
	struct ringmq_opts opts; /* owned copy */
	char *server;		 /* owned; the address connected to */
	int fd;
	enum conn_state state;
	int is_closing; /* Goodbye seen: the broker will close soon */

	uint8_t *in; /* owned; bytes read, not yet decoded */
	size_t in_len;
	size_t in_cap;
	uint8_t *out; /* owned; bytes to send from out_off to out_len */
	size_t out_off;
	size_t out_len;
	size_t out_cap;
	uint32_t max_in_frame_bytes;

	uint64_t next_request_id;
	struct pending *pending; /* borrowed entries of waiting calls */

	struct ringmq_delivery *dq_head; /* owned queue of deliveries */
	struct ringmq_delivery *dq_tail;

	uint32_t max_frame_bytes;
	uint32_t max_message_bytes;
	uint32_t max_batch_count;
	uint64_t producer_id;

	char errmsg[512];
};

/* --- client.c */

/* Sets c->errmsg (printf-style); returns code for tail calls. */
int client_fail(struct ringmq_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Status of the client for a new call: OK, CONNECTION_LOST or CLOSED.
 * Clears errmsg. */
int client_begin(struct ringmq_client *c);

/* snprintf into a caller's error buffer (NULL allowed). */
void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Strict decimal parse of value into [min, max]; 0 or -1. */
int parse_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out);

/* --- conn.c */

/* Monotonic clock, ms. */
int64_t conn_now_ms(void);

/* Drops the socket after a failure: state LOST, fd closed, buffers
 * emptied, pending calls left to notice. why goes to errmsg. */
void conn_lose(struct ringmq_client *c, const char *why);

/* Frees buffers, pending answers and queued deliveries; closes fd. */
void conn_fini(struct ringmq_client *c);

/*
 * Packs f (request_id already set) with its length prefix into the output
 * buffer. Nothing is written to the socket until conn_pump().
 * @return OK; MESSAGE_TOO_LARGE when over max_frame_bytes; INTERNAL (no
 *         memory).
 */
int conn_queue_frame(struct ringmq_client *c, const Ringmq__Frame *f);

/*
 * One round of I/O: waits until the socket is ready or deadline_ms passes
 * (a negative deadline waits without limit), then writes what it can,
 * reads what is there and dispatches every whole frame.
 * @return OK (progress or nothing to do), TIMEOUT (deadline reached), or
 *         CONNECTION_LOST.
 */
int conn_pump(struct ringmq_client *c, int64_t deadline_ms);

/*
 * Sends req (its request_id is assigned here) and waits for the answer,
 * at most the request timeout.
 * @param[out] respp receives the answer frame (owned by the caller, free
 *             with ringmq__frame__free_unpacked(f, NULL)) when OK.
 * @param want the body expected; an Error answer returns its code (the
 *        message goes to errmsg), another body returns BAD_FRAME.
 * @return OK, TIMEOUT, CONNECTION_LOST, the broker's code, or BAD_FRAME.
 */
int conn_call(struct ringmq_client *c, Ringmq__Frame *req,
	      Ringmq__Frame__BodyCase want, Ringmq__Frame **respp);

/* Takes the first queued delivery, or NULL. */
struct ringmq_delivery *conn_dq_pop(struct ringmq_client *c);

/* Status codes that mean the connection, not the request, failed. */
static inline int
status_is_conn_failure(int code)
{
	return code == RINGMQ_CONNECTION_LOST || code == RINGMQ_TIMEOUT ||
	       code == RINGMQ_CLOSED;
}

#endif
