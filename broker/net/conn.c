/*
 * conn: see conn.h.
 *
 * Requests reach their handler through a table indexed by the Frame's body
 * case. Handlers that wait for a commit take a reference on the connection
 * and answer from their completion; responses go into the pending output
 * buffer and leave in one send per loop pass.
 */
#define _GNU_SOURCE
#include "net/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "net/loop.h"
#include "req/req.h"
#include "req/codec.h"
#include "req/wire.h"
#include "store/store.h"

#define PROTOCOL_VERSION 1u

#define ARENA_CAP_FACTOR 8u /* decode arena: this many times a frame */

/* How long a closed connection reads (and drops) what its peer still
 * sends, after its last output and a FIN, before the socket is closed. */
#define CONN_LINGER_MS 500u

struct obuf {
	uint8_t *data; /* owned */
	size_t len, cap;
};

struct conn {
	struct conn_env *env; /* borrowed */
	int fd;
	uint64_t id;
	struct loop_op recv_op;
	struct loop_op send_op;
	int is_recv_armed;    /* a multishot receive may still complete */
	int is_cancel_sent;   /* its cancel is submitted */
	int is_peer_closed;   /* the peer's FIN (or reset) arrived */
	int is_lingering;     /* output out and FIN sent: reading to EOF */
	uint64_t linger_ms;   /* monotonic: when lingering began */
	int is_send_inflight; /* sending[sent..) is with the kernel */
	int is_closing;	      /* read no more; close once output is out */
	int is_dead;	      /* the socket failed: drop all output */
	int is_paused;	      /* output over the limit: not reading */
	int is_hello_done;
	uint64_t producer_id;	/* announced in hello: sequences are its */
	int refs;		/* completions still to come back */
	uint64_t last_input_ms; /* monotonic: bytes last arrived */
	/* Monotonic: when bytes last left, or output began waiting. */
	uint64_t last_output_ms;
	uint64_t ping_sent_ms;	/* monotonic; 0 = no ping outstanding */
	int is_unresponsive;	/* ping unanswered an idle timeout: no more
				 * deliveries until it speaks */
	int refuse_code;	/* non-zero: answer the first frame, close */
	const char *refuse_why; /* static */
	uint8_t *in;		/* owned: bytes not yet parsed */
	size_t in_len, in_cap;
	struct obuf pending; /* output not yet submitted */
	struct obuf sending; /* output owned by the in-flight send */
	size_t sent;
	struct msghdr msg;
	struct iovec iov;
	struct codec_arena arena;
	struct codec_limits lim;
	struct lease_owner lo;
	struct sub **subs; /* owned array of this connection's subscriptions */
	size_t nsubs, capsubs;
	uint32_t next_sub_id;
	struct conn *next, *prev; /* env->conns */
	struct conn *flush_next;  /* env->flush */
	int is_flush_queued;
};

static void conn_close(struct conn *c, const char *why);

static void conn_maybe_free(struct conn *c);

static void conn_resume(struct conn *c);

/* ------------------------------------------------------------- output */

static int
obuf_reserve(struct obuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *data;

	if (b->len + more <= b->cap)
		return 0;
	while (cap < b->len + more)
		cap *= 2;
	data = realloc(b->data, cap);
	if (data == NULL)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

static size_t
conn_out_bytes(const struct conn *c)
{
	return c->pending.len + (c->sending.len - c->sent);
}

static int
conn_is_writable(void *owner)
{
	struct conn *c = owner;

	return !c->is_closing && !c->is_unresponsive &&
	       conn_out_bytes(c) < c->env->cfg->max_conn_out_bytes;
}

/* 1 when a paused connection may be read again: half its requests in
 * flight answered (all of them with max-conn-pending 1) and half its
 * output out. */
static int
conn_may_resume(const struct conn *c)
{
	return c->is_paused && !c->is_closing &&
	       2 * (uint64_t)c->refs < c->env->cfg->max_conn_pending &&
	       conn_out_bytes(c) < c->env->cfg->max_conn_out_bytes / 2;
}

static void
conn_queue_flush(struct conn *c)
{
	if (c->is_flush_queued)
		return;
	c->is_flush_queued = 1;
	c->flush_next = c->env->flush;
	c->env->flush = c;
}

/* Room for n more bytes at the end of the pending output; NULL (logged)
 * when out of memory. Add what was written to c->pending.len, then
 * conn_queue_flush. */
static uint8_t *
conn_out_room(struct conn *c, size_t n)
{
	if (obuf_reserve(&c->pending, n) < 0) {
		log_error("conn %llu: out of memory for %zu bytes of output",
			  (unsigned long long)c->id, n);
		return NULL;
	}
	return c->pending.data + c->pending.len;
}

/* Appends f to the pending output. @return 0 or -ENOMEM. */
int
conn_send(struct conn *c, Ringmq__Frame *f)
{
	uint8_t *out;

	if (c->is_dead)
		return 0;
	out = conn_out_room(c, codec_encoded_size(f));
	if (out == NULL)
		return -ENOMEM;
	c->pending.len += codec_encode(f, out);
	conn_queue_flush(c);
	return 0;
}

void
conn_send_error(struct conn *c, uint64_t request_id, int code, const char *why)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Error e = RINGMQ__ERROR__INIT;

	stats_count_error(c->env->stats, code);
	e.code = (Ringmq__ErrorCode)code;
	e.message = (char *)why;
	f.has_request_id = request_id != 0;
	f.request_id = request_id;
	f.body_case = RINGMQ__FRAME__BODY_ERROR;
	f.error = &e;
	(void)conn_send(c, &f); /* logged inside; nothing else to do */
}

/* Answers with an Error for a negative broker code. */
void
conn_send_rc(struct conn *c, uint64_t request_id, int rc)
{
	conn_send_error(c, request_id, err_to_wire(rc), err_str(rc));
}

void
conn_send_done(struct conn *c, uint64_t request_id)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Done d = RINGMQ__DONE__INIT;

	f.has_request_id = 1;
	f.request_id = request_id;
	f.body_case = RINGMQ__FRAME__BODY_DONE;
	f.done = &d;
	(void)conn_send(c, &f);
}

struct conn_env *
conn_env_of(struct conn *c)
{
	return c->env;
}

/* Answers request_id with an error, and closes: the peer broke the
 * protocol. */
static void
conn_fail_id(struct conn *c, uint64_t request_id, int code, const char *why)
{
	log_info("conn %llu: %s; closing", (unsigned long long)c->id, why);
	conn_send_error(c, request_id, code, why);
	conn_close(c, why);
}

static void
conn_fail(struct conn *c, int code, const char *why)
{
	conn_fail_id(c, 0, code, why);
}

static void on_send(struct loop_op *op, int res, uint32_t flags);

static void
conn_submit_send(struct conn *c)
{
	c->iov.iov_base = c->sending.data + c->sent;
	c->iov.iov_len = c->sending.len - c->sent;
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = &c->iov;
	c->msg.msg_iovlen = 1;
	if (loop_sendmsg(c->env->loop, c->fd, &c->msg, &c->send_op) < 0) {
		log_error("conn %llu: cannot submit a send",
			  (unsigned long long)c->id);
		c->is_dead = 1;
		conn_close(c, "cannot submit a send");
		return;
	}
	c->is_send_inflight = 1;
}

/* Moves pending output to the sending buffer and submits it. */
static void
conn_start_send(struct conn *c)
{
	struct obuf t;

	if (c->is_send_inflight || c->pending.len == 0 || c->is_dead)
		return;
	/* Output waits from now (see the unread-output check). */
	if (c->sending.len == 0)
		c->last_output_ms = clock_mono_ms();
	t = c->sending;
	c->sending = c->pending;
	c->pending = t;
	c->pending.len = 0;
	c->sent = 0;
	conn_submit_send(c);
}

static void
on_send(struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = op->data;
	int was_writable = conn_is_writable(c);

	(void)flags;
	c->is_send_inflight = 0;
	if (res < 0) {
		if (res != -EPIPE && res != -ECONNRESET)
			log_info("conn %llu: send: %s",
				 (unsigned long long)c->id, strerror(-res));
		c->is_dead = 1;
		c->pending.len = 0;
		conn_close(c, "send failed");
		conn_maybe_free(c);
		return;
	}
	c->sent += (size_t)res;
	c->env->stats->bytes_out += (uint64_t)res;
	if (res > 0)
		c->last_output_ms = clock_mono_ms();
	if (c->sent < c->sending.len) {
		conn_submit_send(c);
		return;
	}
	c->sending.len = 0;
	c->sent = 0;
	conn_start_send(c);
	if (!c->is_send_inflight && c->pending.len == 0) {
		/* All out: an idle connection keeps no output buffers. */
		free(c->pending.data);
		free(c->sending.data);
		memset(&c->pending, 0, sizeof(c->pending));
		memset(&c->sending, 0, sizeof(c->sending));
	}
	if (!was_writable && conn_is_writable(c)) {
		for (size_t i = 0; i < c->nsubs; i++)
			sub_wake(c->env->gs, c->subs[i]);
	}
	if (conn_may_resume(c))
		conn_resume(c);
	conn_maybe_free(c);
}

void
conn_flush_all(struct conn_env *env)
{
	while (env->flush) {
		struct conn *c = env->flush;
		env->flush = c->flush_next;
		c->is_flush_queued = 0;
		if (conn_may_resume(c))
			conn_resume(c);
		conn_start_send(c);
		conn_maybe_free(c);
	}
}

/* ---------------------------------------------------------- lifecycle */

static void on_recv(struct loop_op *op, int res, uint32_t flags);

static int
conn_arm_recv(struct conn *c)
{
	int rc = loop_recv(c->env->loop, c->fd, &c->recv_op);

	if (rc == 0) {
		c->is_recv_armed = 1;
		c->is_cancel_sent = 0;
	}
	return rc;
}

static void
conn_stop_recv(struct conn *c)
{
	if (c->is_recv_armed && !c->is_cancel_sent &&
	    loop_cancel(c->env->loop, &c->recv_op) == 0)
		c->is_cancel_sent = 1;
}

/* Stops reading, ends leases and subscriptions; the socket closes once the
 * output is out and nothing is in flight. why (static) is logged. */
static void
conn_close_as(struct conn *c, int is_failure, const char *why)
{
	if (c->is_closing)
		return;
	log_debug("conn %llu: closing: %s%s", (unsigned long long)c->id, why,
		  c->lo.leases != NULL ? " (leases held)" : "");
	c->is_closing = 1;
	c->env->closing++;
	conn_stop_recv(c);
	for (size_t i = 0; i < c->nsubs; i++)
		sub_free(c->env->gs, c->subs[i]);
	c->nsubs = 0;
	groups_owner_gone(c->env->gs, &c->lo, is_failure);
}

/* The peer went, or broke the protocol: its leases end as failures. */
static void
conn_close(struct conn *c, const char *why)
{
	conn_close_as(c, 1, why);
}

static void
conn_maybe_free(struct conn *c)
{
	struct conn_env *env = c->env;

	if (!c->is_closing || c->is_recv_armed || c->is_send_inflight ||
	    c->refs > 0 || c->is_flush_queued)
		return;
	if (!c->is_dead && c->pending.len > 0)
		return; /* still to send; conn_flush_all will */
	if (!c->is_dead && !c->is_peer_closed && !c->is_lingering) {
		/* A close with unread input would reset the connection and
		 * drop output the kernel has not sent yet (the goodbye, the
		 * last confirms). Send a FIN after it instead, and read to
		 * the peer's EOF, for at most CONN_LINGER_MS. */
		c->is_lingering = 1;
		c->linger_ms = clock_mono_ms();
		if (shutdown(c->fd, SHUT_WR) == 0 && conn_arm_recv(c) == 0)
			return;
	}
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		env->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	env->count--;
	if (c->is_closing)
		env->closing--;
	codec_arena_fini(&c->arena);
	lease_owner_fini(&c->lo);
	free(c->in);
	free(c->pending.data);
	free(c->sending.data);
	free(c->subs);
	free(c);
}

void
conn_ref(struct conn *c)
{
	c->refs++;
}

/* Drops a reference; @return 1 if the connection can still be answered. */
int
conn_unref_live(struct conn *c)
{
	c->refs--;
	if (c->is_dead) {
		conn_maybe_free(c);
		return 0;
	}
	if (conn_may_resume(c))
		conn_queue_flush(c); /* resumed there, outside this callback */
	return 1;
}

/* ------------------------------------------------------------ handlers */

typedef void (*handler_fn)(struct conn *c, const Ringmq__Frame *f);

static void
on_hello(struct conn *c, const Ringmq__Frame *f)
{
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__HelloOk ok = RINGMQ__HELLO_OK__INIT;
	const struct config *cfg = c->env->cfg;

	if (c->is_hello_done) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"hello was already sent");
		return;
	}
	if (f->hello->version != PROTOCOL_VERSION) {
		conn_fail_id(c, f->request_id,
			     RINGMQ__ERROR_CODE__UNSUPPORTED_VERSION,
			     "unsupported protocol version");
		return;
	}
	c->is_hello_done = 1;
	ok.version = PROTOCOL_VERSION;
	ok.max_frame_bytes = cfg->max_frame_bytes;
	ok.max_message_bytes = cfg->max_message_bytes;
	ok.max_batch_count = cfg->max_batch_count;
	ok.has_max_header_count = 1;
	ok.max_header_count = cfg->max_header_count;
	ok.has_max_key_bytes = ok.has_max_dedup_id_bytes = 1;
	ok.has_max_header_name_bytes = 1;
	ok.max_key_bytes = ok.max_dedup_id_bytes = QUEUE_MAX_FIELD_BYTES;
	ok.max_header_name_bytes = QUEUE_MAX_FIELD_BYTES;
	/* Unique across restarts: the boot epoch, then a counter. 0 is
	 * none: no id the broker gives is 0. */
	ok.producer_id =
		f->hello->has_producer_id && f->hello->producer_id != 0
			? f->hello->producer_id
			: (c->env->boot_epoch << 32) |
				  (++c->env->producer_counter & 0xffffffffu);
	ok.broker_version = (char *)RINGMQ_VERSION;
	c->producer_id = ok.producer_id;
	r.has_request_id = f->has_request_id;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_HELLO_OK;
	r.hello_ok = &ok;
	(void)conn_send(c, &r);
}

static void
on_ping(struct conn *c, const Ringmq__Frame *f)
{
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__Pong pong = RINGMQ__PONG__INIT;

	pong.has_nonce = f->ping->has_nonce;
	pong.nonce = f->ping->nonce;
	r.has_request_id = f->has_request_id;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_PONG;
	r.pong = &pong;
	(void)conn_send(c, &r);
}

static void
on_pong(struct conn *c, const Ringmq__Frame *f)
{
	/* Any input already cleared the ping; nothing to answer. */
	(void)c;
	(void)f;
}

static void
on_goodbye(struct conn *c, const Ringmq__Frame *f)
{
	(void)f;
	conn_close(c, "the peer said goodbye");
}

struct conn_req *
conn_req_new(struct conn *c, const Ringmq__Frame *f, size_t extra)
{
	struct conn_req *p = calloc(1, sizeof(*p) + extra);

	if (p == NULL)
		return NULL;
	p->c = c;
	p->request_id = f->request_id;
	p->start_us = clock_mono_us();
	conn_ref(c);
	return p;
}

void
conn_req_done(void *ctx, int status)
{
	struct conn_req *p = ctx;

	if (conn_unref_live(p->c)) {
		if (status < 0)
			conn_send_rc(p->c, p->request_id, status);
		else
			conn_send_done(p->c, p->request_id);
	}
	free(p);
}

static void
published(void *ctx, const struct publish_result *res, size_t n)
{
	struct conn_req *p = ctx;
	struct conn *c = p->c;
	uint8_t *out;

	stats_observe(&c->env->stats->confirm_latency,
		      (double)(clock_mono_us() - p->start_us) / 1e6);
	if (!conn_unref_live(c))
		goto out;
	if (c->is_dead)
		goto out;
	/* Encoded by hand straight into the output (see wire.h). */
	out = conn_out_room(c, wire_publish_ok_size(p->request_id, res, n));
	if (out == NULL) {
		conn_send_rc(c, p->request_id, -ENOMEM);
		goto out;
	}
	c->pending.len += wire_publish_ok_encode(p->request_id, res, n, out);
	conn_queue_flush(c);
out:
	free(p);
}

static void
on_publish(struct conn *c, const Ringmq__Frame *f)
{
	struct conn_req *p;
	int rc;

	if (c->env->is_shutting_down) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__SHUTTING_DOWN,
				"broker is shutting down");
		return;
	}
	if (f->publish->n_messages == 0) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"publish without messages");
		return;
	}
	p = conn_req_new(c, f, 0);
	if (p == NULL) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		return;
	}
	rc = queue_publish(c->env->qs, f->publish, c->producer_id, published,
			   p);
	if (rc < 0) {
		c->refs--;
		free(p);
		conn_send_rc(c, f->request_id, rc);
	}
}

/* --------------------------------------------------------- consuming */

static int conn_deliver(void *owner, const struct delivery *d,
			const struct store_msg_view *v);

/* The broker ended s (its group or queue was deleted): the subscriber
 * is told, or it would wait for deliveries forever. */
static void
conn_sub_detached(void *owner, struct sub *s, int code)
{
	struct conn *c = owner;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__SubscriptionEnded e = RINGMQ__SUBSCRIPTION_ENDED__INIT;

	for (size_t i = 0; i < c->nsubs; i++)
		if (c->subs[i] == s) {
			c->subs[i] = c->subs[--c->nsubs];
			break;
		}
	e.subscription = sub_id(s);
	e.code = (Ringmq__ErrorCode)err_to_wire(code);
	e.reason = code == -RMQ_EQUEUE_NOT_FOUND ? (char *)"queue deleted"
						 : (char *)"group deleted";
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED;
	f.subscription_ended = &e;
	(void)conn_send(c, &f); /* logged inside */
}

static const struct sub_ops conn_sub_ops = {
	.deliver = conn_deliver,
	.is_writable = conn_is_writable,
	.detached = conn_sub_detached,
};

static int
conn_deliver(void *owner, const struct delivery *d,
	     const struct store_msg_view *v)
{
	struct conn *c = owner;

	/* Encoded by hand straight into the output (see wire.h). */
	if (!c->is_dead) {
		uint8_t *out = conn_out_room(c, wire_delivery_size(d, v));

		if (out == NULL)
			return -1;
		c->pending.len += wire_delivery_encode(d, v, out);
		conn_queue_flush(c);
	}
	if (d->delivery_count == 1)
		stats_observe(&c->env->stats->delivery_latency,
			      d->now_ms > v->publish_ms
				      ? (double)(d->now_ms - v->publish_ms) /
						1e3
				      : 0.0);
	return 0;
}

static struct sub *
conn_find_sub(struct conn *c, uint32_t id, size_t *index)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (sub_id(c->subs[i]) == id) {
			if (index)
				*index = i;
			return c->subs[i];
		}
	return NULL;
}

static void
subscribed(void *ctx, int status, struct sub *s)
{
	struct conn_req *p = ctx;
	struct conn *c = p->c;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__SubscribeOk ok = RINGMQ__SUBSCRIBE_OK__INIT;

	c->refs--;
	if (c->is_closing) {
		/* Its subscriptions were ended at close: end this one too. */
		if (status == 0)
			sub_free(c->env->gs, s);
		conn_maybe_free(c);
		free(p);
		return;
	}
	if (status == 0 && c->nsubs == c->capsubs) {
		size_t cap = c->capsubs ? c->capsubs * 2 : 4;
		struct sub **subs = realloc(c->subs, cap * sizeof(*subs));

		if (subs == NULL) {
			sub_free(c->env->gs, s);
			status = -ENOMEM;
		} else {
			c->subs = subs;
			c->capsubs = cap;
		}
	}
	if (status < 0) {
		conn_send_rc(c, p->request_id, status);
		free(p);
		return;
	}
	c->subs[c->nsubs++] = s;
	ok.subscription = sub_id(s);
	r.has_request_id = 1;
	r.request_id = p->request_id;
	r.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE_OK;
	r.subscribe_ok = &ok;
	(void)conn_send(c, &r);
	free(p);
}

static void
on_subscribe(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__Subscribe *sr = f->subscribe;
	struct queue *q;
	struct conn_req *p;

	if (c->env->is_shutting_down) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__SHUTTING_DOWN,
				"broker is shutting down");
		return;
	}
	if (!queue_name_valid(sr->group)) {
		conn_send_error(
			c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			"group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}");
		return;
	}
	q = queues_find(c->env->qs, sr->queue);
	if (q == NULL || q->is_pending) {
		conn_send_rc(c, f->request_id, -RMQ_EQUEUE_NOT_FOUND);
		return;
	}
	p = conn_req_new(c, f, 0);
	if (p == NULL) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		return;
	}
	if (group_subscribe(c->env->gs, q, sr->group,
			    sr->has_start &&
				    sr->start == RINGMQ__START_POSITION__LATEST,
			    sr->credit, c, &c->lo, &conn_sub_ops,
			    ++c->next_sub_id, subscribed, p) < 0) {
		c->refs--;
		free(p);
		conn_send_rc(c, f->request_id, -ENOMEM);
	}
}

static void
on_unsubscribe(struct conn *c, const Ringmq__Frame *f)
{
	size_t i;
	struct sub *s = conn_find_sub(c, f->unsubscribe->subscription, &i);

	if (s == NULL) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"no such subscription");
		return;
	}
	sub_free(c->env->gs, s);
	c->subs[i] = c->subs[--c->nsubs];
	conn_send_done(c, f->request_id);
}

static void
on_credit(struct conn *c, const Ringmq__Frame *f)
{
	struct sub *s = conn_find_sub(c, f->credit->subscription, NULL);

	if (s == NULL) {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"no such subscription");
		return;
	}
	sub_set_credit(c->env->gs, s, f->credit->credit);
	conn_send_done(c, f->request_id);
}

/* A lease request waiting for its flush: codes follow the struct. */
struct lease_req {
	struct conn_req p;
	size_t n;
	int codes[];
};

static void
send_lease_result(struct conn *c, uint64_t request_id, const int *codes,
		  const uint64_t *remaining_ms, size_t n)
{
	uint8_t *out;

	if (c->is_dead)
		return;
	/* Encoded by hand straight into the output (see wire.h). */
	out = conn_out_room(
		c, wire_lease_result_size(request_id, codes, remaining_ms, n));
	if (out == NULL) {
		conn_send_rc(c, request_id, -ENOMEM);
		return;
	}
	c->pending.len += wire_lease_result_encode(request_id, codes,
						   remaining_ms, n, out);
	conn_queue_flush(c);
}

static void
lease_flushed(void *ctx, int status)
{
	struct lease_req *lr = ctx;

	if (conn_unref_live(lr->p.c)) {
		if (status < 0)
			conn_send_rc(lr->p.c, lr->p.request_id, status);
		else
			send_lease_result(lr->p.c, lr->p.request_id, lr->codes,
					  NULL, lr->n);
	}
	free(lr);
}

typedef void (*lease_fn)(struct groups *gs, struct lease_owner *lo,
			 const uint64_t *ids, size_t n, int *codes,
			 lease_done_fn done, void *ctx);

static void
lease_request(struct conn *c, const Ringmq__Frame *f, const uint64_t *ids,
	      size_t n, lease_fn fn)
{
	struct lease_req *lr;

	lr = (struct lease_req *)conn_req_new(
		c, f, sizeof(*lr) - sizeof(lr->p) + n * sizeof(int));
	if (lr == NULL) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		return;
	}
	lr->n = n;
	fn(c->env->gs, &c->lo, ids, n, lr->codes, lease_flushed, lr);
}

static void
on_ack(struct conn *c, const Ringmq__Frame *f)
{
	lease_request(c, f, f->ack->lease_ids, f->ack->n_lease_ids, groups_ack);
}

static void
on_nack(struct conn *c, const Ringmq__Frame *f)
{
	struct lease_req *lr;
	size_t n = f->nack->n_lease_ids;

	lr = (struct lease_req *)conn_req_new(
		c, f, sizeof(*lr) - sizeof(lr->p) + n * sizeof(int));
	if (lr == NULL) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		return;
	}
	lr->n = n;
	groups_nack(c->env->gs, &c->lo, f->nack->lease_ids, n,
		    f->nack->has_delay_ms ? f->nack->delay_ms : 0, lr->codes,
		    lease_flushed, lr);
}

static void
on_release(struct conn *c, const Ringmq__Frame *f)
{
	lease_request(c, f, f->release->lease_ids, f->release->n_lease_ids,
		      groups_release);
}

static void
on_touch(struct conn *c, const Ringmq__Frame *f)
{
	size_t n = f->touch->n_lease_ids;
	int *codes = calloc(n + 1, sizeof(*codes));
	uint64_t *remaining = calloc(n + 1, sizeof(*remaining));

	if (codes == NULL || remaining == NULL) {
		conn_send_rc(c, f->request_id, -ENOMEM);
	} else {
		groups_touch(c->env->gs, &c->lo, f->touch->lease_ids, n,
			     f->touch->has_lease_ms ? f->touch->lease_ms : 0,
			     codes, remaining);
		send_lease_result(c, f->request_id, codes, remaining, n);
	}
	free(codes);
	free(remaining);
}

static const handler_fn handlers[RINGMQ__FRAME__BODY_BACKUP_OK + 1] = {
	[RINGMQ__FRAME__BODY_HELLO] = on_hello,
	[RINGMQ__FRAME__BODY_PING] = on_ping,
	[RINGMQ__FRAME__BODY_GOODBYE] = on_goodbye,
	[RINGMQ__FRAME__BODY_PONG] = on_pong,
	[RINGMQ__FRAME__BODY_QUEUE_CREATE] = req_queue_create,
	[RINGMQ__FRAME__BODY_QUEUE_DELETE] = req_queue_delete,
	[RINGMQ__FRAME__BODY_QUEUE_SET] = req_queue_set,
	[RINGMQ__FRAME__BODY_QUEUE_LIST] = req_queue_list,
	[RINGMQ__FRAME__BODY_QUEUE_DESCRIBE] = req_queue_describe,
	[RINGMQ__FRAME__BODY_PURGE] = req_purge,
	[RINGMQ__FRAME__BODY_PUBLISH] = on_publish,
	[RINGMQ__FRAME__BODY_SUBSCRIBE] = on_subscribe,
	[RINGMQ__FRAME__BODY_UNSUBSCRIBE] = on_unsubscribe,
	[RINGMQ__FRAME__BODY_CREDIT] = on_credit,
	[RINGMQ__FRAME__BODY_ACK] = on_ack,
	[RINGMQ__FRAME__BODY_NACK] = on_nack,
	[RINGMQ__FRAME__BODY_RELEASE] = on_release,
	[RINGMQ__FRAME__BODY_TOUCH] = on_touch,
	[RINGMQ__FRAME__BODY_GROUP_CREATE] = req_group_create,
	[RINGMQ__FRAME__BODY_GROUP_DELETE] = req_group_delete,
	[RINGMQ__FRAME__BODY_GROUP_LIST] = req_group_list,
	[RINGMQ__FRAME__BODY_GROUP_DESCRIBE] = req_group_describe,
	[RINGMQ__FRAME__BODY_GROUP_RESET] = req_group_reset,
	[RINGMQ__FRAME__BODY_PEEK] = req_peek,
	[RINGMQ__FRAME__BODY_MESSAGE_SHOW] = req_message_show,
	[RINGMQ__FRAME__BODY_MESSAGE_CANCEL] = req_message_cancel,
	[RINGMQ__FRAME__BODY_DEAD_LETTER_LIST] = req_dead_letter_list,
	[RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE] = req_dead_letter_redrive,
	[RINGMQ__FRAME__BODY_STATS] = req_stats,
	[RINGMQ__FRAME__BODY_BACKUP] = req_backup,
};

/* ---------------------------------------------------------------- input */

/* The queue, and the group (or NULL), that a request works on. */
static const char *
frame_target(const Ringmq__Frame *f, const char **group)
{
	*group = NULL;
	switch (f->body_case) {
	case RINGMQ__FRAME__BODY_PUBLISH: return f->publish->queue;
	case RINGMQ__FRAME__BODY_SUBSCRIBE: return f->subscribe->queue;
	case RINGMQ__FRAME__BODY_QUEUE_DELETE: return f->queue_delete->name;
	case RINGMQ__FRAME__BODY_QUEUE_SET: return f->queue_set->name;
	case RINGMQ__FRAME__BODY_QUEUE_DESCRIBE: return f->queue_describe->name;
	case RINGMQ__FRAME__BODY_PURGE: return f->purge->queue;
	case RINGMQ__FRAME__BODY_GROUP_CREATE: return f->group_create->queue;
	case RINGMQ__FRAME__BODY_GROUP_LIST: return f->group_list->queue;
	case RINGMQ__FRAME__BODY_GROUP_DELETE:
		*group = f->group_delete->group;
		return f->group_delete->queue;
	case RINGMQ__FRAME__BODY_GROUP_DESCRIBE:
		*group = f->group_describe->group;
		return f->group_describe->queue;
	case RINGMQ__FRAME__BODY_GROUP_RESET:
		*group = f->group_reset->group;
		return f->group_reset->queue;
	case RINGMQ__FRAME__BODY_PEEK: return f->peek->queue;
	case RINGMQ__FRAME__BODY_MESSAGE_SHOW: return f->message_show->queue;
	case RINGMQ__FRAME__BODY_MESSAGE_CANCEL:
		return f->message_cancel->queue;
	case RINGMQ__FRAME__BODY_DEAD_LETTER_LIST:
		return f->dead_letter_list->queue;
	case RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE:
		return f->dead_letter_redrive->queue;
	default: return NULL;
	}
}

/* 1 unless f is one of the frames a client sends that expect no answer
 * (Pong, Goodbye) or a frame only the broker sends (handlers[] has none:
 * those get "not a request" as any request would). */
static int
frame_is_request(const Ringmq__Frame *f)
{
	return f->body_case != RINGMQ__FRAME__BODY_PONG &&
	       f->body_case != RINGMQ__FRAME__BODY_GOODBYE;
}

/* Refuses a request over a count limit that HelloOk announced: an
 * INVALID_ARGUMENT naming the limit; the connection and its leases stay. */
static void
conn_refuse_over(struct conn *c, uint64_t request_id,
		 const struct codec_over *over)
{
	char why[160];

	snprintf(why, sizeof(why), "%s%s%llu %s: over %s (%u)",
		 over->request ? over->request : "",
		 over->request ? " with " : "", (unsigned long long)over->count,
		 over->what, over->limit, over->max);
	conn_send_error(c, request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			why);
}

/* 1 if f names a queue or group whose creation is still committing while
 * this connection has requests in flight (most likely that creation): a
 * pipelined "create, then use" waits for the create rather than finding
 * nothing. The connection resumes as its requests complete. */
static int
conn_must_wait(const struct conn *c, const Ringmq__Frame *f)
{
	const char *group, *name;
	struct queue *q;

	if (c->refs == 0 || (!queues_any_pending(c->env->qs) &&
			     !groups_any_pending(c->env->gs)))
		return 0;
	name = frame_target(f, &group);
	q = name != NULL ? queues_find(c->env->qs, name) : NULL;
	if (q == NULL)
		return 0;
	return q->is_pending || (group != NULL && groups_is_pending(q, group));
}

/* Handles one frame. @return 0, or 1 when it must wait (conn_must_wait):
 * not handled, and to be parsed again. */
static int
conn_handle_frame(struct conn *c, const uint8_t *body, size_t len)
{
	struct codec_over over;
	Ringmq__Frame *f = NULL;
	handler_fn fn;
	int rc;

	rc = codec_decode(&c->arena, &c->lim, body, len, &f, &over);
	if (rc == -RMQ_EMESSAGE_TOO_LARGE && c->is_hello_done &&
	    c->refuse_code == 0) {
		/* Well formed, over an announced count: refused alone. */
		conn_refuse_over(c, codec_request_id(body, len), &over);
		codec_arena_reset(&c->arena);
		return 0;
	}
	if (rc < 0) {
		conn_fail_id(c, codec_request_id(body, len), err_to_wire(rc),
			     rc == -RMQ_EMESSAGE_TOO_LARGE
				     ? "frame over the broker's batch limits"
				     : "frame does not decode");
		codec_arena_reset(&c->arena);
		return 0;
	}
	if (c->is_hello_done && c->refuse_code == 0 && conn_must_wait(c, f)) {
		codec_arena_reset(&c->arena);
		return 1;
	}
	if (c->refuse_code != 0) {
		conn_send_error(c, f->request_id, c->refuse_code,
				c->refuse_why);
		conn_close(c, c->refuse_why);
	} else if (!c->is_hello_done &&
		   f->body_case != RINGMQ__FRAME__BODY_HELLO) {
		conn_fail_id(c, f->request_id, RINGMQ__ERROR_CODE__NOT_HELLO,
			     "the first frame must be hello");
	} else if (f->request_id == 0 && frame_is_request(f)) {
		/* Its answer could not be told from a push. */
		conn_send_error(c, 0, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"request_id 0 is reserved for pushes: give "
				"every request a non-zero request_id");
	} else {
		fn = (size_t)f->body_case < sizeof(handlers) / sizeof(*handlers)
			     ? handlers[f->body_case]
			     : NULL;
		if (fn != NULL)
			fn(c, f);
		else
			conn_send_error(c, f->request_id,
					RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
					"not a request");
	}
	codec_arena_reset(&c->arena);
	return 0;
}

/* Parses and handles the complete frames at the start of buf.
 * @return bytes consumed; the rest is an incomplete frame. */
static size_t
conn_parse(struct conn *c, const uint8_t *buf, size_t len)
{
	size_t used = 0;

	while (!c->is_closing && !c->is_paused) {
		uint32_t n;
		int rc = codec_frame_length(buf + used, len - used,
					    c->lim.max_frame_bytes, &n);

		if (rc == -RMQ_ENEED_MORE)
			break;
		if (rc < 0) {
			conn_fail(c, err_to_wire(rc),
				  rc == -RMQ_EMESSAGE_TOO_LARGE
					  ? "frame over max-frame-bytes"
					  : "empty frame");
			break;
		}
		if (len - used < CODEC_HEADER_BYTES + (size_t)n)
			break;
		if (conn_handle_frame(c, buf + used + CODEC_HEADER_BYTES, n)) {
			/* Kept, unhandled, until a request completes. */
			c->is_paused = 1;
			conn_stop_recv(c);
			break;
		}
		used += CODEC_HEADER_BYTES + n;
		if (conn_out_bytes(c) >= c->env->cfg->max_conn_out_bytes ||
		    c->refs >= (int)c->env->cfg->max_conn_pending) {
			/* Back-pressure: read nothing more until the output
			 * drains and the requests waiting on commits come
			 * back, so one peer cannot pile up memory. */
			c->is_paused = 1;
			conn_stop_recv(c);
		}
	}
	return used;
}

/* Keeps bytes for later in the connection's own buffer. */
static int
conn_stash(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->in_len + len > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		uint8_t *in;

		while (cap < c->in_len + len)
			cap *= 2;
		in = realloc(c->in, cap);
		if (in == NULL)
			return -ENOMEM;
		c->in = in;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
	return 0;
}

/* Handles what is stashed; moves the rest to the front. */
static void
conn_parse_stash(struct conn *c)
{
	size_t used = conn_parse(c, c->in, c->in_len);

	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
}

/* Gives back the input side's memory between bursts: an idle connection
 * then costs little more than its struct. */
static void
conn_trim(struct conn *c)
{
	if (c->in_len == 0 && c->in != NULL) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	codec_arena_fini(&c->arena);
}

static void
conn_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t used;

	if (c->in_len > 0) {
		/* A frame straddles buffers: complete it in our own. */
		if (conn_stash(c, data, len) < 0) {
			conn_fail(c, RINGMQ__ERROR_CODE__INTERNAL,
				  "out of memory");
			return;
		}
		conn_parse_stash(c);
		conn_trim(c);
		return;
	}
	used = conn_parse(c, data, len);
	if (used < len && !c->is_closing &&
	    conn_stash(c, data + used, len - used) < 0)
		conn_fail(c, RINGMQ__ERROR_CODE__INTERNAL, "out of memory");
	conn_trim(c);
}

static void
conn_resume(struct conn *c)
{
	c->is_paused = 0;
	if (c->in_len > 0)
		conn_parse_stash(c);
	if (!c->is_paused && !c->is_closing && !c->is_recv_armed &&
	    conn_arm_recv(c) < 0)
		conn_close(c, "cannot submit a receive");
}

static void
on_recv(struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = op->data;

	if (!loop_op_more(flags))
		c->is_recv_armed = 0;
	if (c->is_lingering) {
		if (res > 0)
			loop_buf_return(c->env->loop, loop_buf_id(flags));
		else if (res == 0)
			c->is_peer_closed = 1;
		else if (res != -ENOBUFS)
			c->is_dead = 1; /* reset, cancelled at the deadline */
		if (!c->is_recv_armed && !c->is_peer_closed && !c->is_dead &&
		    conn_arm_recv(c) < 0)
			c->is_dead = 1;
		conn_maybe_free(c);
		return;
	}
	if (res > 0) {
		unsigned bid = loop_buf_id(flags);
		c->last_input_ms = clock_mono_ms();
		c->ping_sent_ms = 0;
		if (c->is_unresponsive) {
			/* Alive after all (a worker done with a long job):
			 * deliveries resume. */
			c->is_unresponsive = 0;
			for (size_t i = 0; i < c->nsubs; i++)
				sub_wake(c->env->gs, c->subs[i]);
		}
		c->env->stats->bytes_in += (uint64_t)res;
		if (!c->is_closing)
			conn_input(c, loop_buf(c->env->loop, bid), (size_t)res);
		loop_buf_return(c->env->loop, bid);
	} else if (res == 0) {
		c->is_peer_closed = 1;
		conn_close(c, "the peer closed");
	} else if (res != -ENOBUFS && res != -ECANCELED) {
		if (res != -ECONNRESET)
			log_info("conn %llu: receive: %s",
				 (unsigned long long)c->id, strerror(-res));
		c->is_dead = 1;
		conn_close(c, res == -ECONNRESET ? "reset by the peer"
						 : "receive failed");
	}
	if (!c->is_recv_armed && !c->is_closing && !c->is_paused &&
	    conn_arm_recv(c) < 0)
		conn_close(c, "cannot submit a receive");
	conn_maybe_free(c);
}

int
conn_open(struct conn_env *env, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		close(fd);
		return -ENOMEM;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->env = env;
	c->fd = fd;
	c->id = ++env->conn_counter;
	c->recv_op.cb = on_recv;
	c->recv_op.data = c;
	c->send_op.cb = on_send;
	c->send_op.data = c;
	c->last_input_ms = clock_mono_ms();
	c->lim.max_frame_bytes = env->cfg->max_frame_bytes;
	c->lim.max_batch_count = env->cfg->max_batch_count;
	c->lim.max_header_count = env->cfg->max_header_count;
	codec_arena_init(&c->arena,
			 (size_t)env->cfg->max_frame_bytes * ARENA_CAP_FACTOR);
	lease_owner_init(&c->lo);
	c->next = env->conns;
	if (env->conns)
		env->conns->prev = c;
	env->conns = c;
	env->count++;
	if (conn_arm_recv(c) < 0) {
		c->is_dead = 1;
		conn_close(c, "cannot submit a receive");
		conn_maybe_free(c);
		return -EBUSY;
	}
	return 0;
}

void
conn_refuse(struct conn_env *env, int fd, int code, const char *why)
{
	struct conn *c;

	if (conn_open(env, fd) < 0)
		return; /* Answer its hello with the refusal, so the client
			 * reads a reason rather than a reset; a silent peer
			 * goes at the idle timeout. */
	c = env->conns;
	c->refuse_code = code;
	c->refuse_why = why;
}

void
conn_goodbye_all(struct conn_env *env)
{
	for (struct conn *c = env->conns; c; c = c->next) {
		Ringmq__Frame f = RINGMQ__FRAME__INIT;
		Ringmq__Goodbye g = RINGMQ__GOODBYE__INIT;

		if (c->is_closing)
			continue;
		g.reason = (char *)"broker shutting down";
		f.body_case = RINGMQ__FRAME__BODY_GOODBYE;
		f.goodbye = &g;
		(void)conn_send(c, &f);
		/* A restart releases leases without counting them. */
		conn_close_as(c, 0, "broker shutting down");
	}
}

void
conn_free_all(struct conn_env *env)
{
	while (env->conns) {
		struct conn *c = env->conns;

		/* The broker stops: not a failure. */
		conn_close_as(c, 0, "broker stopped");
		c->is_dead = 1;
		c->is_recv_armed = c->is_send_inflight = 0;
		c->is_flush_queued = 0;
		c->refs = 0;
		conn_maybe_free(c);
	}
	env->flush = NULL;
}

static void
conn_ping(struct conn *c, uint64_t now_ms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping p = RINGMQ__PING__INIT;

	p.has_nonce = 1;
	p.nonce = now_ms;
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &p;
	(void)conn_send(c, &f);
	c->ping_sent_ms = now_ms;
}

void
conn_sweep_lingering(struct conn_env *env, uint64_t now_ms)
{
	for (struct conn *c = env->conns; c; c = c->next)
		if (c->is_lingering && !c->is_dead &&
		    now_ms - c->linger_ms >= CONN_LINGER_MS) {
			c->is_dead = 1; /* freed once the cancel is back */
			conn_stop_recv(c);
		}
}

void
conn_sweep(struct conn_env *env, uint64_t now_ms)
{
	uint64_t idle = env->cfg->idle_timeout_ms;
	struct conn *next;

	conn_sweep_lingering(env, now_ms);
	for (struct conn *c = env->conns; c; c = next) {
		next = c->next;
		/* Checked for closing connections too: one closed with
		 * output still owed to a peer that reads nothing would
		 * otherwise be kept for as long as the peer keeps it. */
		if (c->is_send_inflight && !c->is_dead &&
		    now_ms - c->last_output_ms >= idle) {
			/* A send the peer's window has not let move for an
			 * idle timeout: a consumer that stopped reading holds
			 * its leases (and the messages behind them) hostage,
			 * busy or not, so this is checked before the lease
			 * rule. */
			log_info("conn %llu: reads none of its output for %llu "
				 "ms; closing",
				 (unsigned long long)c->id,
				 (unsigned long long)(now_ms -
						      c->last_output_ms));
			/* No Goodbye: that means shutdown. Its output is
			 * dropped, and the shutdown ends the send the peer
			 * holds up, so that the socket can be closed. */
			c->is_dead = 1;
			c->pending.len = 0;
			conn_close(c, "output not read");
			(void)shutdown(c->fd, SHUT_RDWR);
			conn_maybe_free(c);
			continue;
		}
		if (c->is_closing)
			continue;
		/* Paused with no output waiting: its requests wait on
		 * commits, which is the broker's time, not the peer's. */
		if (c->is_paused || now_ms - c->last_input_ms < idle)
			continue;
		if (!c->is_hello_done || c->in_len > 0) {
			log_info("conn %llu: %s for %llu ms; closing",
				 (unsigned long long)c->id,
				 c->is_hello_done ? "stopped mid-frame"
						  : "no hello",
				 (unsigned long long)(now_ms -
						      c->last_input_ms));
			conn_close(c, c->is_hello_done ? "stopped mid-frame"
						       : "no hello");
		} else if (c->ping_sent_ms == 0) {
			conn_ping(c, now_ms);
		} else if (now_ms - c->ping_sent_ms >= idle) {
			/* No answer: a worker at a long job, which may not
			 * read while it works, or a dead peer. Either way it
			 * gets no new deliveries: a dead one would otherwise
			 * take and fail job after job as each lease expired.
			 * The leases it holds bound how long it keeps work;
			 * it is closed an idle timeout after the last one
			 * ended. */
			c->is_unresponsive = 1;
			if (c->lo.leases == NULL &&
			    now_ms - c->lo.last_end_ms >= idle) {
				log_info("conn %llu: no answer to ping; "
					 "closing",
					 (unsigned long long)c->id);
				conn_close(c, "no answer to ping");
			}
		}
	}
}
