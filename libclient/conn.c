/*
 * conn.c: the client's connection to the broker: framing over a
 * non-blocking socket, the pending-request table, the pump, and the frame
 * router (internal.h) that hands every other frame and event to the
 * module that registered for it.
 *
 * Owns the socket and both byte buffers of a ringmq_client. Knows frames
 * but no request semantics, and calls no module above it: the calls in
 * client.c, queue.c, publish.c and consume.c build requests and read
 * answers through conn_call(); answers to requests nobody waits for,
 * pushes, timers and a lost connection go through the router's hooks.
 *
 * Invariant: bytes in c->io.in before c->io.in_len are a prefix of the stream
 * not yet decoded; a length prefix over c->io.max_in_frame_bytes loses the
 * connection before anything is allocated for that frame.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes asked of each recv(); also the free room kept in c->io.in. */
#define READ_CHUNK_BYTES 65536

/* recv() calls per pump round, so one busy peer cannot hold a call. */
#define READS_PER_PUMP 16

/* Rounds of reading before a request, at most (conn_catch_up). */
#define CATCH_UP_ROUNDS 4

/* Bound on frames read before HelloOk tells the real limit. */
#define PRE_HELLO_MAX_FRAME_BYTES (1024u * 1024u)

/*
 * Allowance above the announced max_frame_bytes for frames the broker
 * sends: a Delivery wraps a message that fit in a Publish frame with a few
 * more fields.
 */
#define IN_FRAME_SLACK_BYTES 4096u

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Grows *buf to hold need bytes; 0 or -1 (out of memory, *buf kept). */
static int
buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 4096;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	p = realloc(*buf, ncap);
	if (p == NULL)
		return -1;
	*buf = p;
	*cap = ncap;
	return 0;
}

void
conn_lose(struct ringmq_client *c, const char *why)
{
	if (c->state != CONN_OPEN)
		return;
	tls_free(c->ssl, 0);
	c->ssl = NULL;
	/* close() of a socket can only fail with EINTR/EIO after the fd is
	 * released already; nothing to retry. */
	(void)close(c->fd);
	c->fd = -1;
	c->state = CONN_LOST;
	c->is_ready = 0;
	c->io.in_len = 0;
	c->io.out_off = 0;
	c->io.out_len = 0;
	c->io.ping_sent_ms = 0;
	/* Keep the first reason: a pushed Error explains the close. */
	if (c->errmsg[0] == '\0' && why != NULL)
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
	for (size_t i = 0; i < c->router.n_hooks; i++)
		if (c->router.hooks[i]->lost != NULL)
			c->router.hooks[i]->lost(c);
	/* The first attempt waits one backoff step: a broker that just
	 * closed (goodbye) is likely restarting. */
	if (!c->is_connecting) {
		c->backoff_ms = c->opts.reconnect_backoff_ms;
		c->next_attempt_ms = conn_now_ms() + c->backoff_ms / 2;
	}
	conn_wake(c);
}

void
conn_reset(struct ringmq_client *c)
{
	tls_free(c->ssl, 0);
	c->ssl = NULL;
	if (c->fd >= 0)
		(void)close(c->fd); /* see conn_lose */
	c->fd = -1;
	c->state = CONN_LOST;
	c->is_closing = 0;
	c->is_ready = 0;
	c->io.in_len = 0;
	c->io.out_off = 0;
	c->io.out_len = 0;
	c->io.max_in_frame_bytes = PRE_HELLO_MAX_FRAME_BYTES;
}

void
conn_attach(struct ringmq_client *c, int fd, struct ssl_st *ssl)
{
	c->fd = fd;
	c->ssl = ssl;
	c->state = CONN_OPEN;
	c->io.last_rx_ms = conn_now_ms();
	c->io.ping_sent_ms = 0;
}

void
conn_ready(struct ringmq_client *c)
{
	c->io.max_in_frame_bytes =
		c->max_frame_bytes > UINT32_MAX - IN_FRAME_SLACK_BYTES
			? UINT32_MAX
			: c->max_frame_bytes + IN_FRAME_SLACK_BYTES;
	c->is_ready = 1;
}

void
conn_wake(struct ringmq_client *c)
{
	uint64_t one = 1;

	/* A full counter is still readable: the wake-up is not lost. */
	if (c->sleepers > 0 && c->wake_fd >= 0 &&
	    write(c->wake_fd, &one, sizeof(one)) < 0)
		(void)0;
}

uint64_t
conn_next_request_id(struct ringmq_client *c)
{
	uint64_t id = c->io.next_request_id++;

	if (c->io.next_request_id == 0)
		c->io.next_request_id = 1; /* 0 marks pushed frames */
	return id;
}

void
conn_fini(struct ringmq_client *c)
{
	/* The owner closes: tell the broker the stream ends here. */
	tls_free(c->ssl, 1);
	c->ssl = NULL;
	if (c->fd >= 0)
		(void)close(c->fd); /* see conn_lose */
	c->fd = -1;
	free(c->io.in);
	c->io.in = NULL;
	c->io.in_len = c->io.in_cap = 0;
	free(c->io.out);
	c->io.out = NULL;
	c->io.out_off = c->io.out_len = c->io.out_cap = 0;
}

int
conn_queue_frame(struct ringmq_client *c, const Ringmq__Frame *f)
{
	size_t n = ringmq__frame__get_packed_size(f);

	if ((c->max_frame_bytes != 0 && n > c->max_frame_bytes) ||
	    n > UINT32_MAX)
		return RINGMQ_MESSAGE_TOO_LARGE;
	if (c->io.out_off == c->io.out_len) {
		c->io.out_off = 0;
		c->io.out_len = 0;
	}
	if (buf_reserve(&c->io.out, &c->io.out_cap,
			c->io.out_len + FRAME_HDR_BYTES + n) < 0)
		return RINGMQ_INTERNAL;
	put_be32(c->io.out + c->io.out_len, (uint32_t)n);
	/* pack writes exactly get_packed_size bytes */
	(void)ringmq__frame__pack(f,
				  c->io.out + c->io.out_len + FRAME_HDR_BYTES);
	c->io.out_len += FRAME_HDR_BYTES + n;
	return RINGMQ_OK;
}

/* Answers a broker's Ping; a failure to queue it is left to the broker's
 * half-open detection (it closes and our calls see CONNECTION_LOST). */
static void
on_ping(struct ringmq_client *c, Ringmq__Frame *ping)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Pong pong = RINGMQ__PONG__INIT;

	f.has_request_id = ping->has_request_id;
	f.request_id = ping->request_id;
	f.body_case = RINGMQ__FRAME__BODY_PONG;
	f.pong = &pong;
	pong.has_nonce = ping->ping->has_nonce;
	pong.nonce = ping->ping->nonce;
	(void)conn_queue_frame(c, &f);
	frame_free(ping);
}

/* The broker is shutting down: it closes soon. */
static void
on_goodbye(struct ringmq_client *c, Ringmq__Frame *f)
{
	c->is_closing = 1;
	conn_wake(c);
	snprintf(c->errmsg, sizeof(c->errmsg),
		 "the broker is shutting down%s%s",
		 f->goodbye->reason ? ": " : "",
		 f->goodbye->reason ? f->goodbye->reason : "");
	frame_free(f);
}

/* Pushed before the broker closes over a bad frame. */
static void
on_error(struct ringmq_client *c, Ringmq__Frame *f)
{
	snprintf(c->errmsg, sizeof(c->errmsg),
		 "the broker closed the connection: %s: %s",
		 ringmq_code_name((int)f->error->code),
		 f->error->message ? f->error->message : "");
	frame_free(f);
}

static const struct conn_push conn_pushes[] = {
	{ RINGMQ__FRAME__BODY_PING, on_ping },
	{ RINGMQ__FRAME__BODY_GOODBYE, on_goodbye },
	{ RINGMQ__FRAME__BODY_ERROR, on_error },
};

static const struct conn_hooks conn_hooks = {
	.push = conn_pushes,
	.n_push = sizeof(conn_pushes) / sizeof(conn_pushes[0]),
};

void
conn_init(struct ringmq_client *c, int (*reconnect)(struct ringmq_client *c))
{
	c->fd = -1;
	c->state = CONN_LOST;
	c->io.next_request_id = 1;
	c->router.reconnect = reconnect;
	conn_add_hooks(c, &conn_hooks);
}

void
conn_add_hooks(struct ringmq_client *c, const struct conn_hooks *h)
{
	struct conn_router *r = &c->router;

	/* Set by code at start-up, not by input: a full table is a bug. */
	assert(r->n_hooks < CONN_MAX_HOOKS);
	assert(r->n_push + h->n_push <= CONN_MAX_PUSH);
	r->hooks[r->n_hooks++] = h;
	for (size_t i = 0; i < h->n_push; i++)
		r->push[r->n_push++] = h->push[i];
}

/*
 * Routes one decoded frame; takes ownership of f. An answer goes to the
 * call waiting for it, else to the first hook that claims it; a push (no
 * request id, or a broker's Ping, which carries one) to the handler of
 * its body case.
 */
static void
dispatch(struct ringmq_client *c, Ringmq__Frame *f)
{
	const struct conn_router *r = &c->router;
	struct pending *p;

	if (f->has_request_id && f->request_id != 0 &&
	    f->body_case != RINGMQ__FRAME__BODY_PING) {
		for (p = c->io.pending; p != NULL; p = p->next) {
			if (p->request_id == f->request_id && !p->is_done) {
				p->resp = f;
				p->is_done = 1;
				conn_wake(c);
				return;
			}
		}
		for (size_t i = 0; i < r->n_hooks; i++)
			if (r->hooks[i]->answer != NULL &&
			    r->hooks[i]->answer(c, f))
				return;
		/* The late answer of a call that timed out, or of a
		 * keepalive ping or an automatic touch. */
		frame_free(f);
		return;
	}
	for (size_t i = 0; i < r->n_push; i++) {
		if (r->push[i].body == f->body_case) {
			r->push[i].fn(c, f);
			return;
		}
	}
	/* A push this version does not know: ignore it. */
	frame_free(f);
}

/* 1 when the 4 bytes at p start a TLS record (a handshake or an alert,
 * version 3.x) rather than a frame: a length prefix that large is never
 * a frame before hello. */
static int
is_tls_record(const uint8_t *p)
{
	return (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03;
}

/* Decodes and dispatches every whole frame in c->io.in; -1 when the stream
 * broke the protocol (connection lost). */
static int
decode_frames(struct ringmq_client *c)
{
	size_t off = 0;
	char why[128];

	while (c->io.in_len - off >= FRAME_HDR_BYTES) {
		uint32_t len = get_be32(c->io.in + off);
		Ringmq__Frame *f;

		if (len > c->io.max_in_frame_bytes && !c->is_ready &&
		    c->ssl == NULL && is_tls_record(c->io.in + off)) {
			conn_lose(c, "the broker answered with TLS: connect "
				     "with tls=true, or to its plaintext "
				     "port");
			return -1;
		}
		if (len > c->io.max_in_frame_bytes) {
			snprintf(why, sizeof(why),
				 "protocol error: frame of %u bytes from the "
				 "broker is over the limit of %u",
				 len, c->io.max_in_frame_bytes);
			conn_lose(c, why);
			return -1;
		}
		if (c->io.in_len - off - FRAME_HDR_BYTES < len)
			break;
		f = frame_unpack(c->io.in + off + FRAME_HDR_BYTES, len);
		off += FRAME_HDR_BYTES + len;
		if (f == NULL) {
			conn_lose(c, "protocol error: undecodable frame "
				     "from the broker");
			return -1;
		}
		dispatch(c, f);
	}
	if (off > 0) {
		memmove(c->io.in, c->io.in + off, c->io.in_len - off);
		c->io.in_len -= off;
	}
	return 0;
}

/* Writes what the socket takes; -1 when the connection is lost. */
static int
flush_out(struct ringmq_client *c)
{
	char why[160];

	while (c->io.out_off < c->io.out_len) {
		ssize_t n;

		if (c->ssl != NULL) {
			n = tls_send(c->ssl, c->io.out + c->io.out_off,
				     c->io.out_len - c->io.out_off, why,
				     sizeof(why));
			if (n == TLS_WOULD_BLOCK)
				return 0;
			if (n < 0) {
				conn_lose(c, why);
				return -1;
			}
			c->io.out_off += (size_t)n;
			continue;
		}
		n = send(c->fd, c->io.out + c->io.out_off,
			 c->io.out_len - c->io.out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			snprintf(why, sizeof(why), "connection lost: send: %s",
				 strerror(errno));
			conn_lose(c, why);
			return -1;
		}
		c->io.out_off += (size_t)n;
	}
	c->io.out_off = 0;
	c->io.out_len = 0;
	return 0;
}

/* Reads what is there, then decodes. @return the bytes read, or -1 when
 * the connection is lost. */
static long
fill_in(struct ringmq_client *c)
{
	long got = 0;
	int is_eof = 0;
	int is_tls_failed = 0;
	int err = 0;
	char why[160];
	char tls_why[400];

	for (int i = 0; i < READS_PER_PUMP; i++) {
		ssize_t n;

		if (buf_reserve(&c->io.in, &c->io.in_cap,
				c->io.in_len + READ_CHUNK_BYTES) < 0) {
			/* Stop reading; what is buffered still decodes. */
			break;
		}
		if (c->ssl != NULL) {
			n = tls_recv(c->ssl, c->io.in + c->io.in_len,
				     READ_CHUNK_BYTES, tls_why,
				     sizeof(tls_why));
			if (n == TLS_WOULD_BLOCK)
				break;
			if (n == TLS_FAILED) {
				is_tls_failed = 1;
				break;
			}
		} else {
			n = recv(c->fd, c->io.in + c->io.in_len,
				 READ_CHUNK_BYTES, MSG_DONTWAIT);
		}
		if (n == 0) {
			is_eof = 1;
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				err = errno;
			break;
		}
		c->io.in_len += (size_t)n;
		got += (long)n;
		c->io.last_rx_ms = conn_now_ms();
		c->io.ping_sent_ms = 0;
		/* A short read emptied the socket; TLS reads a record at a
		 * time, and reads on until the socket has nothing. */
		if ((size_t)n < READ_CHUNK_BYTES && c->ssl == NULL)
			break;
	}
	/* Frames that arrived before a close are still answers. */
	if (decode_frames(c) < 0)
		return -1;
	if (is_tls_failed) {
		conn_lose(c, tls_why);
		return -1;
	}
	if (is_eof) {
		conn_lose(c, c->is_closing ? "connection closed by the broker "
					     "(shutting down)"
					   : "connection closed by the broker");
		return -1;
	}
	if (err != 0) {
		snprintf(why, sizeof(why), "connection lost: recv: %s",
			 strerror(err));
		conn_lose(c, why);
		return -1;
	}
	return got;
}

/* Sends a keepalive Ping; its Pong is dropped, any bytes count. */
static void
send_keepalive(struct ringmq_client *c, int64_t now_ms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping ping = RINGMQ__PING__INIT;

	f.has_request_id = 1;
	f.request_id = conn_next_request_id(c);
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &ping;
	/* Out of memory: the next round tries again. */
	if (conn_queue_frame(c, &f) == RINGMQ_OK)
		c->io.ping_sent_ms = now_ms;
}

/*
 * Timers of a ready connection: the hooks' ticks (due batches, due
 * touches), then the keepalive.
 * @return the earliest next due time (monotonic ms), or -1; -2 when the
 *         broker stayed silent through a whole ping interval after a ping
 *         (the connection is then lost).
 */
static int64_t
run_timers(struct ringmq_client *c, int64_t now_ms)
{
	int64_t due = -1;
	int64_t t;
	int64_t iv = c->opts.ping_interval_ms;

	for (size_t i = 0; i < c->router.n_hooks; i++) {
		if (c->router.hooks[i]->tick == NULL)
			continue;
		t = c->router.hooks[i]->tick(c, now_ms);
		if (t >= 0 && (due < 0 || t < due))
			due = t;
	}
	if (iv > 0) {
		if (c->io.ping_sent_ms != 0 &&
		    now_ms - c->io.ping_sent_ms >= iv) {
			conn_lose(c, "connection lost: no answer to a ping "
				     "(broker unresponsive)");
			return -2;
		}
		if (c->io.ping_sent_ms == 0 && now_ms - c->io.last_rx_ms >= iv)
			send_keepalive(c, now_ms);
		t = c->io.ping_sent_ms ? c->io.ping_sent_ms + iv
				       : c->io.last_rx_ms + iv;
		if (due < 0 || t < due)
			due = t;
	}
	return due;
}

int64_t
conn_next_due_ms(const struct ringmq_client *c)
{
	int64_t due = -1;
	int64_t iv = c->opts.ping_interval_ms;

	if (c->state == CONN_LOST)
		return c->opts.is_reconnect ? c->next_attempt_ms : -1;
	if (c->state != CONN_OPEN || !c->is_ready)
		return -1;
	if (c->ssl != NULL && tls_has_pending(c->ssl))
		return conn_now_ms();
	for (size_t i = 0; i < c->router.n_hooks; i++) {
		int64_t t;

		if (c->router.hooks[i]->due == NULL)
			continue;
		t = c->router.hooks[i]->due(c);
		if (t >= 0 && (due < 0 || t < due))
			due = t;
	}
	if (iv > 0) {
		int64_t t = c->io.ping_sent_ms ? c->io.ping_sent_ms + iv
					       : c->io.last_rx_ms + iv;

		if (due < 0 || t < due)
			due = t;
	}
	/* Bytes queued and not yet written: the pump sends them. */
	if (c->io.out_off < c->io.out_len)
		return conn_now_ms();
	return due;
}

/* poll() timeout for a wait until wake_ms (-1: no limit). */
static int
poll_timeout(int64_t wake_ms)
{
	int64_t left;

	if (wake_ms < 0)
		return -1;
	left = wake_ms - conn_now_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * poll() with the client's lock dropped (unless hold_lock), so that other
 * threads sharing the client go on while this one waits. The wake fd is
 * drained by the last sleeper out, so no wake-up meant for another waiter
 * is lost, and only when this poll saw it readable: a read that finds
 * nothing would be a syscall on every pass. A write this poll missed
 * leaves the fd readable, so the next poll returns at once and drains it.
 */
static int
poll_unlocked(struct ringmq_client *c, struct pollfd *p, nfds_t n,
	      int timeout_ms)
{
	int depth = c->lock_depth;
	int is_unlocked = c->hold_lock == 0;
	int r;

	c->sleepers++;
	if (is_unlocked) {
		c->lock_depth = 0;
		for (int i = 0; i < depth; i++)
			pthread_mutex_unlock(&c->lock);
	}
	r = poll(p, n, timeout_ms);
	if (r < 0 && errno != EINTR)
		r = -2;
	if (is_unlocked) {
		for (int i = 0; i < depth; i++)
			pthread_mutex_lock(&c->lock);
		c->lock_depth = depth;
	}
	if (--c->sleepers == 0 && c->wake_fd >= 0 && r > 0) {
		for (nfds_t i = 0; i < n; i++) {
			uint64_t v;

			if (p[i].fd != c->wake_fd || p[i].revents == 0)
				continue;
			/* A failed read leaves a spurious wake-up at worst. */
			if (read(c->wake_fd, &v, sizeof(v)) < 0)
				(void)0;
		}
	}
	return r;
}

/* Waits while not connected: until the next reconnect attempt or the
 * deadline, whichever is first, or a wake-up. */
static int
pump_lost(struct ringmq_client *c, int64_t deadline_ms)
{
	struct pollfd p;
	int64_t wake_ms;

	if (!c->opts.is_reconnect || c->is_connecting)
		return RINGMQ_CONNECTION_LOST;
	if (conn_now_ms() >= c->next_attempt_ms) {
		if (c->router.reconnect(c) == RINGMQ_OK)
			return RINGMQ_OK;
	}
	wake_ms = c->next_attempt_ms;
	if (deadline_ms >= 0 && deadline_ms < wake_ms)
		wake_ms = deadline_ms;
	p.fd = c->wake_fd;
	p.events = POLLIN;
	p.revents = 0;
	(void)poll_unlocked(c, &p, 1, poll_timeout(wake_ms));
	if (c->state == CONN_CLOSED)
		return RINGMQ_CLOSED;
	if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms)
		return RINGMQ_TIMEOUT;
	return RINGMQ_OK;
}

int
conn_pump(struct ringmq_client *c, int64_t deadline_ms)
{
	struct pollfd p[2];
	int64_t wake_ms = deadline_ms;
	uint64_t gen = c->conn_gen;
	int timeout_ms;
	int r;

	if (c->state == CONN_CLOSED)
		return RINGMQ_CLOSED;
	if (c->state == CONN_LOST)
		return pump_lost(c, deadline_ms);
	if (c->is_ready) {
		int64_t due = run_timers(c, conn_now_ms());

		if (due == -2 || c->state != CONN_OPEN)
			return RINGMQ_CONNECTION_LOST; /* a send failed */
		if (due >= 0 && (wake_ms < 0 || due < wake_ms))
			wake_ms = due;
	}
	p[0].fd = c->fd;
	p[0].events = POLLIN;
	if (c->io.out_off < c->io.out_len)
		p[0].events |= POLLOUT;
	p[0].revents = 0;
	p[1].fd = c->wake_fd;
	p[1].events = POLLIN;
	p[1].revents = 0;
	timeout_ms = poll_timeout(wake_ms);
	/* Bytes TLS read ahead are no longer the socket's to signal. */
	if (c->ssl != NULL && tls_has_pending(c->ssl))
		timeout_ms = 0;
	if (timeout_ms == 0) {
		/* No wait: a receive that finds nothing costs what a poll
		 * would, and one that finds something saves the poll (callers
		 * with their own event loop poll when the fd is readable). */
		p[0].revents = p[0].events;
		r = 1;
	} else {
		r = poll_unlocked(c, p, c->wake_fd >= 0 ? 2 : 1, timeout_ms);
	}
	if (c->state == CONN_CLOSED)
		return RINGMQ_CLOSED;
	if (c->state != CONN_OPEN || c->conn_gen != gen)
		return RINGMQ_OK; /* another thread lost or replaced it */
	if (r == -2) {
		conn_lose(c, "connection lost: poll failed");
		return RINGMQ_CONNECTION_LOST;
	}
	if (r <= 0 || (p[0].revents == 0)) {
		if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms)
			return RINGMQ_TIMEOUT;
		return RINGMQ_OK; /* woken, timer due, or EINTR */
	}
	if ((p[0].revents & POLLOUT) && flush_out(c) < 0)
		return RINGMQ_CONNECTION_LOST;
	if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && fill_in(c) < 0)
		return RINGMQ_CONNECTION_LOST;
	if (p[0].revents & POLLNVAL) {
		conn_lose(c, "connection lost: invalid socket");
		return RINGMQ_CONNECTION_LOST;
	}
	/* Answers may have made room or queued more: send what is due. */
	if (c->is_ready && c->state == CONN_OPEN) {
		int64_t now_ms = conn_now_ms();

		for (size_t i = 0; i < c->router.n_hooks; i++)
			if (c->router.hooks[i]->after_io != NULL)
				c->router.hooks[i]->after_io(c, now_ms);
		if (c->io.out_off < c->io.out_len && flush_out(c) < 0)
			return RINGMQ_CONNECTION_LOST;
	}
	return RINGMQ_OK;
}

/* Sends what the socket takes now, without waiting; lock held. */
void
conn_try_send(struct ringmq_client *c)
{
	if (c->state == CONN_OPEN && c->io.out_off < c->io.out_len &&
	    flush_out(c) < 0)
		return; /* lost: callers see the state */
}

static void
pending_unlink(struct ringmq_client *c, struct pending *p)
{
	struct pending **pp;

	for (pp = &c->io.pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

/*
 * Reads, without waiting, what came while no call was reading: a
 * connection the broker closed meanwhile (one silent past its idle
 * timeout, whose ping nobody answered) is found lost here, before a
 * request goes out on it and fails. One syscall when nothing came.
 */
static void
conn_catch_up(struct ringmq_client *c)
{
	/* A short read ends a round of fill_in: the close may come right
	 * behind what it read (the ping the broker sent before it gave up),
	 * so read again until a round finds nothing. */
	for (int i = 0; i < CATCH_UP_ROUNDS; i++) {
		long got;

		if (c->state != CONN_OPEN || !c->is_ready)
			return;
		got = fill_in(c);
		if (got == 0)
			return;
		/* Closed, not shutting down (no goodbye): nothing to wait
		 * for before connecting again. */
		if (got < 0 && !c->is_closing)
			c->next_attempt_ms = conn_now_ms();
	}
}

/*
 * Waits, within deadline_ms, for a connection when the client has none
 * and reconnects; OK once connected.
 */
int
conn_ensure(struct ringmq_client *c, int64_t deadline_ms)
{
	if (c->state == CONN_CLOSED)
		return client_fail(c, RINGMQ_CLOSED, "the client is closed");
	conn_catch_up(c);
	if (c->state == CONN_OPEN)
		return RINGMQ_OK;
	if (!c->opts.is_reconnect || c->is_connecting)
		return client_fail(c, RINGMQ_CONNECTION_LOST,
				   "the connection was lost");
	while (c->state == CONN_LOST) {
		int rc = conn_pump(c, deadline_ms);

		if (rc == RINGMQ_CLOSED)
			return client_fail(c, rc, "the client is closed");
		if (c->state == CONN_OPEN)
			break;
		if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms)
			return RINGMQ_UNREACHABLE; /* errmsg says why */
	}
	return RINGMQ_OK;
}

static int
call_locked(struct ringmq_client *c, Ringmq__Frame *req,
	    Ringmq__Frame__BodyCase want, int timeout_ms, Ringmq__Frame **respp)
{
	struct pending p = { 0 };
	int64_t deadline_ms;
	uint64_t gen;
	Ringmq__Frame *f;
	int rc;

	*respp = NULL;
	rc = conn_ensure(c, conn_now_ms() + c->opts.request_timeout_ms);
	if (rc != RINGMQ_OK)
		return rc;
	gen = c->conn_gen;
	p.request_id = conn_next_request_id(c);
	req->has_request_id = 1;
	req->request_id = p.request_id;
	rc = conn_queue_frame(c, req);
	if (rc == RINGMQ_MESSAGE_TOO_LARGE)
		return client_fail(c, rc,
				   "request over the broker's frame limit of "
				   "%u bytes",
				   c->max_frame_bytes);
	if (rc != RINGMQ_OK)
		return client_fail(c, rc, "out of memory");

	p.next = c->io.pending;
	c->io.pending = &p;
	deadline_ms = conn_now_ms() + timeout_ms;
	rc = RINGMQ_OK;
	while (!p.is_done) {
		rc = conn_pump(c, deadline_ms);
		if (p.is_done)
			break;
		if (rc == RINGMQ_CLOSED || c->state != CONN_OPEN ||
		    c->conn_gen != gen) {
			if (rc != RINGMQ_CLOSED)
				rc = RINGMQ_CONNECTION_LOST;
			break;
		}
		if (conn_now_ms() >= deadline_ms) {
			rc = RINGMQ_TIMEOUT;
			break;
		}
	}
	pending_unlink(c, &p);

	if (!p.is_done) {
		if (rc == RINGMQ_CLOSED)
			return client_fail(c, rc, "the client is closed");
		if (rc == RINGMQ_CONNECTION_LOST) {
			/* conn_lose left the reason in errmsg */
			if (c->errmsg[0] != '\0')
				return rc;
			return client_fail(c, rc, "connection lost");
		}
		return client_fail(c, RINGMQ_TIMEOUT, "no answer within %d ms",
				   timeout_ms);
	}
	f = p.resp;
	if (f->body_case == RINGMQ__FRAME__BODY_ERROR) {
		int code = (int)f->error->code;

		if (code == RINGMQ_OK)
			code = RINGMQ_BAD_FRAME; /* an Error must say why */
		rc = client_fail(c, code, "%s",
				 f->error->message && f->error->message[0]
					 ? f->error->message
					 : ringmq_strerror(code));
		frame_free(f);
		return rc;
	}
	if (f->body_case != want) {
		rc = f->body_case;
		frame_free(f);
		return client_fail(c, RINGMQ_BAD_FRAME,
				   "protocol error: answer with body %d where "
				   "%d was expected",
				   rc, (int)want);
	}
	*respp = f;
	return RINGMQ_OK;
}

int
conn_call(struct ringmq_client *c, Ringmq__Frame *req,
	  Ringmq__Frame__BodyCase want, Ringmq__Frame **respp)
{
	int rc;

	client_lock(c);
	rc = call_locked(c, req, want, c->opts.request_timeout_ms, respp);
	client_unlock(c);
	return rc;
}

int
conn_call_done(struct ringmq_client *c, Ringmq__Frame *req)
{
	Ringmq__Frame *resp;
	int rc = conn_call(c, req, RINGMQ__FRAME__BODY_DONE, &resp);

	if (rc == RINGMQ_OK)
		frame_free(resp);
	return rc;
}

int
conn_call_timeout(struct ringmq_client *c, Ringmq__Frame *req,
		  Ringmq__Frame__BodyCase want, int timeout_ms,
		  Ringmq__Frame **respp)
{
	int rc;

	client_lock(c);
	rc = call_locked(c, req, want, timeout_ms, respp);
	client_unlock(c);
	return rc;
}
