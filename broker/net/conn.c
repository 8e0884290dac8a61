/*
 * conn: see conn.h.
 *
 * Whole frames go up to the session; its answers go into the pending
 * output buffer and leave in one send per loop pass. Requests that wait
 * for a commit hold a reference on the connection.
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

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "net/addr.h"
#include "net/frame.h"
#include "net/loop.h"
#include "net/tls.h"

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
	int is_recv_armed;	/* a multishot receive may still complete */
	int is_cancel_sent;	/* its cancel is submitted */
	int is_peer_closed;	/* the peer's FIN (or reset) arrived */
	int is_lingering;	/* output out and FIN sent: reading to EOF */
	uint64_t linger_ms;	/* monotonic: when lingering began */
	int is_send_inflight;	/* sending[sent..) is with the kernel */
	int is_closing;		/* read no more; close once output is out */
	int is_dead;		/* the socket failed: drop all output */
	int is_paused;		/* output over the limit: not reading */
	int refs;		/* completions still to come back */
	uint64_t last_input_ms; /* monotonic: bytes last arrived */
	/* Monotonic: when bytes last left, or output began waiting. */
	uint64_t last_output_ms;
	uint64_t ping_sent_ms;	  /* monotonic; 0 = no ping outstanding */
	int is_unresponsive;	  /* ping unanswered an idle timeout: no more
				   * deliveries until it speaks */
	void *session;		  /* owned, through env->ops */
	char peer[64];		  /* HOST:PORT, for the logs */
	int is_local;		  /* the peer is on this host (loopback) */
	uint32_t max_frame_bytes; /* the config's, or less (conn_restrict) */
	uint64_t expires_ms;	  /* monotonic; 0 = never (conn_restrict) */
	uint8_t *in;		  /* owned: bytes not yet parsed */
	size_t in_len, in_cap;
	struct obuf pending; /* output not yet submitted */
	struct obuf sending; /* output owned by the in-flight send */
	size_t sent;
	struct msghdr msg;
	struct iovec iov;
	struct conn *next, *prev; /* env->conns */
	struct conn *flush_next;  /* env->flush */
	int is_flush_queued;
	struct tls_conn *tls; /* owned; NULL: plaintext */
	int has_input;	      /* a byte came (the first ones are checked) */
	int is_tls_closed;    /* close_notify written, or not to be */
	int is_tls_ready;     /* its handshake is done (counted, logged) */
};

/* Plaintext out of TLS records, before it is parsed (one record's worth:
 * 16 KiB, RFC 8446 5.1). The loop is the only thread. */
static uint8_t tls_plain[16384];

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

int
conn_is_writable(const struct conn *c)
{
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

uint8_t *
conn_out_reserve(struct conn *c, size_t n)
{
	if (obuf_reserve(&c->pending, n) < 0) {
		log_error("conn %llu: out of memory for %zu bytes of output",
			  (unsigned long long)c->id, n);
		return NULL;
	}
	return c->pending.data + c->pending.len;
}

void
conn_out_commit(struct conn *c, size_t n)
{
	c->pending.len += n;
	conn_queue_flush(c);
}

void *
conn_session(const struct conn *c)
{
	return c->session;
}

uint64_t
conn_id(const struct conn *c)
{
	return c->id;
}

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
}

void
conn_local_name(const struct conn *c, char *buf, size_t size)
{
	addr_local_name(c->fd, buf, size);
}

int
conn_is_local(const struct conn *c)
{
	return c->is_local;
}

const struct tls_conn *
conn_tls(const struct conn *c)
{
	return c->tls;
}

int
conn_is_dead(const struct conn *c)
{
	return c->is_dead;
}

int
conn_is_closing(const struct conn *c)
{
	return c->is_closing;
}

int
conn_has_requests(const struct conn *c)
{
	return c->refs > 0;
}

/* Tells the peer why, and closes: it broke the protocol, or the broker
 * cannot go on with it. */
static void
conn_fail(struct conn *c, int rc, const char *why)
{
	log_info("conn %llu: %s; closing", (unsigned long long)c->id, why);
	c->env->ops->broken(c->session, rc, why);
	conn_close(c, why);
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

/* Encrypts the pending output and submits the records, with those the
 * handshake or a close made. */
static void
conn_tls_start_send(struct conn *c)
{
	size_t n;

	if (c->pending.len > 0 && tls_conn_is_ready(c->tls)) {
		int rc =
			tls_conn_write(c->tls, c->pending.data, c->pending.len);

		c->pending.len = 0;
		if (rc < 0) {
			log_info("conn %llu: TLS: %s; closing",
				 (unsigned long long)c->id,
				 tls_conn_why(c->tls));
			c->is_dead = 1;
			conn_close(c, "TLS write failed");
			return;
		}
	} else if (c->pending.len > 0 && c->is_closing) {
		/* No handshake done, and none to come: nobody could read
		 * it. */
		c->pending.len = 0;
	}
	n = tls_conn_out_len(c->tls);
	if (n == 0)
		return;
	if (c->sending.len == 0)
		c->last_output_ms = clock_mono_ms();
	if (obuf_reserve(&c->sending, n) < 0) {
		log_error("conn %llu: out of memory for %zu bytes of output",
			  (unsigned long long)c->id, n);
		c->is_dead = 1;
		conn_close(c, "out of memory");
		return;
	}
	c->sending.len +=
		tls_conn_out_take(c->tls, c->sending.data + c->sending.len, n);
	conn_submit_send(c);
}

/* Moves pending output to the sending buffer and submits it. */
static void
conn_start_send(struct conn *c)
{
	struct obuf t;

	if (c->is_send_inflight || c->is_dead)
		return;
	if (c->tls != NULL) {
		conn_tls_start_send(c);
		return;
	}
	if (c->pending.len == 0)
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
	if (!was_writable && conn_is_writable(c))
		c->env->ops->writable(c->session);
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
	log_debug("conn %llu: closing: %s", (unsigned long long)c->id, why);
	c->is_closing = 1;
	c->env->closing++;
	if (c->expires_ms != 0)
		c->env->restricted--;
	conn_stop_recv(c);
	c->env->ops->closing(c->session, is_failure);
}

/* The peer went, or broke the protocol: its leases end as failures. */
void
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
	if (!c->is_dead && c->tls != NULL && tls_conn_out_len(c->tls) > 0) {
		conn_queue_flush(c); /* records still to send: an alert */
		return;
	}
	if (!c->is_dead && c->tls != NULL && !c->is_tls_closed) {
		/* Tells the peer the stream ends here, not cut short. */
		c->is_tls_closed = 1;
		tls_conn_close_notify(c->tls);
		conn_start_send(c);
		if (c->is_send_inflight)
			return;
	}
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
	env->ops->free(c->session);
	tls_conn_free(c->tls);
	free(c->in);
	free(c->pending.data);
	free(c->sending.data);
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
	/* Resumed there, outside this callback; or, closing, freed there
	 * once nothing else holds it. */
	if (conn_may_resume(c) || c->is_closing)
		conn_queue_flush(c);
	return 1;
}

/* Parses and handles the complete frames at the start of buf.
 * @return bytes consumed; the rest is an incomplete frame. */
static size_t
conn_parse(struct conn *c, const uint8_t *buf, size_t len)
{
	size_t used = 0;

	while (!c->is_closing && !c->is_paused) {
		uint32_t n;
		int rc = frame_length(buf + used, len - used,
				      c->max_frame_bytes, &n);

		if (rc == -RMQ_ENEED_MORE)
			break;
		if (rc < 0) {
			conn_fail(c, rc,
				  rc == -RMQ_EMESSAGE_TOO_LARGE
					  ? "frame over max-frame-bytes"
					  : "empty frame");
			break;
		}
		if (len - used < FRAME_HEADER_BYTES + (size_t)n)
			break;
		if (c->env->ops->frame(c->session,
				       buf + used + FRAME_HEADER_BYTES, n)) {
			/* Kept, unhandled, until a request completes. */
			c->is_paused = 1;
			conn_stop_recv(c);
			break;
		}
		used += FRAME_HEADER_BYTES + n;
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
	c->env->ops->trim(c->session);
}

static void
conn_input(struct conn *c, const uint8_t *data, size_t len)
{
	size_t used;

	if (c->in_len > 0) {
		/* A frame straddles buffers: complete it in our own. */
		if (conn_stash(c, data, len) < 0) {
			conn_fail(c, -ENOMEM, "out of memory");
			return;
		}
		conn_parse_stash(c);
		conn_trim(c);
		return;
	}
	used = conn_parse(c, data, len);
	if (used < len && !c->is_closing &&
	    conn_stash(c, data + used, len - used) < 0)
		conn_fail(c, -ENOMEM, "out of memory");
	conn_trim(c);
}

/* The handshake is done: counted, and logged with what it agreed. */
static void
conn_tls_ready(struct conn *c)
{
	char desc[96];

	c->is_tls_ready = 1;
	c->env->stats->tls_handshakes_ok++;
	tls_conn_describe(c->tls, desc, sizeof(desc));
	log_debug("conn %llu from %s: TLS handshake done, %s",
		  (unsigned long long)c->id, c->peer, desc);
}

/* Decrypts what came on a TLS connection and parses the plaintext. */
static void
conn_tls_input(struct conn *c, const uint8_t *data, size_t len)
{
	int rc = tls_conn_feed(c->tls, data, len);

	if (rc == -RMQ_EBAD_FRAME) {
		/* Answered in plaintext, which is what the peer reads. */
		c->env->stats->tls_plaintext++;
		tls_conn_free(c->tls);
		c->tls = NULL;
		conn_fail(c, rc,
			  "plaintext on the TLS port: connect with TLS, or to "
			  "the plaintext port");
		return;
	}
	if (rc < 0) {
		conn_fail(c, rc, "out of memory");
		return;
	}
	while (!c->is_closing) {
		long n = tls_conn_read(c->tls, tls_plain, sizeof(tls_plain));

		if (!c->is_tls_ready && tls_conn_is_ready(c->tls))
			conn_tls_ready(c);
		if (n > 0) {
			conn_input(c, tls_plain, (size_t)n);
			continue;
		}
		if (n == 0)
			break;
		if (n == -ESHUTDOWN) {
			conn_close(c, "the peer closed (TLS close_notify)");
		} else {
			/* The alert OpenSSL wrote tells the peer why. */
			if (!c->is_tls_ready)
				c->env->stats->tls_handshakes_failed++;
			log_info("conn %llu from %s: TLS %s; closing",
				 (unsigned long long)c->id, c->peer,
				 tls_conn_why(c->tls));
			c->is_tls_closed = 1;
			conn_close(c, "TLS failed");
		}
		break;
	}
	if (tls_conn_out_len(c->tls) > 0)
		conn_queue_flush(c); /* the handshake's answers */
}

/* Bytes as they came from the socket. */
static void
conn_receive(struct conn *c, const uint8_t *data, size_t len)
{
	int is_first = !c->has_input;

	c->has_input = 1;
	if (c->tls != NULL) {
		conn_tls_input(c, data, len);
		return;
	}
	if (is_first && tls_is_client_hello(data, len)) {
		conn_fail(c, -RMQ_EBAD_FRAME,
			  "a TLS handshake on the plaintext port: connect "
			  "without TLS, or to the TLS port");
		return;
	}
	conn_input(c, data, len);
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
			c->env->ops->writable(c->session);
		}
		c->env->stats->bytes_in += (uint64_t)res;
		if (!c->is_closing)
			conn_receive(c, loop_buf(c->env->loop, bid),
				     (size_t)res);
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
conn_open(struct conn_env *env, int fd, struct tls_ctx *tls, struct conn **out)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL || (tls != NULL && tls_conn_new(&c->tls, tls) < 0)) {
		free(c);
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
	c->max_frame_bytes = env->cfg->max_frame_bytes;
	c->is_local = addr_peer_name(fd, c->peer, sizeof(c->peer));
	c->session = env->ops->open(env->ops_ctx, c);
	if (c->session == NULL) {
		tls_conn_free(c->tls);
		free(c);
		close(fd);
		return -ENOMEM;
	}
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
	if (out != NULL)
		*out = c;
	return 0;
}

void
conn_restrict(struct conn *c, uint32_t max_frame_bytes, uint64_t lifetime_ms)
{
	if (c->is_closing || c->expires_ms != 0)
		return;
	if (max_frame_bytes < c->max_frame_bytes)
		c->max_frame_bytes = max_frame_bytes;
	c->expires_ms = clock_mono_ms() + lifetime_ms;
	c->env->restricted++;
}

void
conn_goodbye_all(struct conn_env *env)
{
	for (struct conn *c = env->conns; c; c = c->next) {
		if (c->is_closing)
			continue;
		if (!c->is_dead)
			env->ops->goodbye(c->session);
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
	if (!c->is_dead)
		c->env->ops->ping(c->session, now_ms);
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
		if (c->expires_ms != 0 && !c->is_closing &&
		    now_ms >= c->expires_ms) {
			conn_close(c, "held to answer a refusal: time is up");
			continue;
		}
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
		int is_started = env->ops->is_started(c->session);

		if (!is_started || c->in_len > 0) {
			log_info("conn %llu: %s for %llu ms; closing",
				 (unsigned long long)c->id,
				 is_started ? "stopped mid-frame" : "no hello",
				 (unsigned long long)(now_ms -
						      c->last_input_ms));
			conn_close(c, is_started ? "stopped mid-frame"
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
			if (env->ops->is_done_with_work(c->session, now_ms,
							idle)) {
				log_info("conn %llu: no answer to ping; "
					 "closing",
					 (unsigned long long)c->id);
				conn_close(c, "no answer to ping");
			}
		}
	}
}
