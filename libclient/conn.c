/*
 * conn.c: the client's connection to the broker: framing over a
 * non-blocking socket, the pending-request table and dispatch of every
 * incoming frame.
 *
 * Owns the socket and both byte buffers of a ringmq_client. Knows frames
 * but no request semantics: the calls in client.c, queue.c, publish.c and
 * consume.c build requests and read answers through conn_call().
 *
 * Invariant: bytes in c->in before c->in_len are a prefix of the stream not
 * yet decoded; a length prefix over c->max_in_frame_bytes loses the
 * connection before anything is allocated for that frame.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes asked of each recv(); also the free room kept in c->in. */
#define READ_CHUNK_BYTES 65536

/* recv() calls per pump round, so one busy peer cannot hold a call. */
#define READS_PER_PUMP 16

int64_t
conn_now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	/* close() of a socket can only fail with EINTR/EIO after the fd is
	 * released already; nothing to retry. */
	(void)close(c->fd);
	c->fd = -1;
	c->state = CONN_LOST;
	c->in_len = 0;
	c->out_off = 0;
	c->out_len = 0;
	/* Keep the first reason: a pushed Error explains the close. */
	if (c->errmsg[0] == '\0' && why != NULL)
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
}

void
conn_fini(struct ringmq_client *c)
{
	struct ringmq_delivery *d;

	if (c->fd >= 0)
		(void)close(c->fd); /* see conn_lose */
	c->fd = -1;
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = 0;
	while ((d = conn_dq_pop(c)) != NULL)
		ringmq_delivery_free(d);
}

int
conn_queue_frame(struct ringmq_client *c, const Ringmq__Frame *f)
{
	size_t n = ringmq__frame__get_packed_size(f);

	if ((c->max_frame_bytes != 0 && n > c->max_frame_bytes) ||
	    n > UINT32_MAX)
		return RINGMQ_MESSAGE_TOO_LARGE;
	if (c->out_off == c->out_len) {
		c->out_off = 0;
		c->out_len = 0;
	}
	if (buf_reserve(&c->out, &c->out_cap,
			c->out_len + FRAME_HDR_BYTES + n) < 0)
		return RINGMQ_INTERNAL;
	put_be32(c->out + c->out_len, (uint32_t)n);
	/* pack writes exactly get_packed_size bytes */
	(void)ringmq__frame__pack(f, c->out + c->out_len + FRAME_HDR_BYTES);
	c->out_len += FRAME_HDR_BYTES + n;
	return RINGMQ_OK;
}

struct ringmq_delivery *
conn_dq_pop(struct ringmq_client *c)
{
	struct ringmq_delivery *d = c->dq_head;

	if (d == NULL)
		return NULL;
	c->dq_head = d->next;
	if (c->dq_head == NULL)
		c->dq_tail = NULL;
	d->next = NULL;
	return d;
}

static void
dq_push(struct ringmq_client *c, struct ringmq_delivery *d)
{
	d->next = NULL;
	if (c->dq_tail != NULL)
		c->dq_tail->next = d;
	else
		c->dq_head = d;
	c->dq_tail = d;
}

/* Answers a broker's Ping; a failure to queue it is left to the broker's
 * half-open detection (it closes and our calls see CONNECTION_LOST). */
static void
answer_ping(struct ringmq_client *c, const Ringmq__Frame *ping)
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
}

/* Routes one decoded frame; takes ownership of f. */
static void
dispatch(struct ringmq_client *c, Ringmq__Frame *f)
{
	struct ringmq_delivery *d;
	struct pending *p;

	if (f->has_request_id && f->request_id != 0 &&
	    f->body_case != RINGMQ__FRAME__BODY_PING) {
		for (p = c->pending; p != NULL; p = p->next) {
			if (p->request_id == f->request_id && !p->is_done) {
				p->resp = f;
				p->is_done = 1;
				return;
			}
		}
		/* The late answer of a call that timed out. */
		ringmq__frame__free_unpacked(f, NULL);
		return;
	}
	switch (f->body_case) {
	case RINGMQ__FRAME__BODY_DELIVERY:
		d = calloc(1, sizeof(*d));
		if (d == NULL) {
			/* The lease expires at the broker and the message
			 * comes again; nothing is lost. */
			break;
		}
		d->f = f;
		dq_push(c, d);
		return;
	case RINGMQ__FRAME__BODY_PING: answer_ping(c, f); break;
	case RINGMQ__FRAME__BODY_GOODBYE:
		c->is_closing = 1;
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "the broker is shutting down%s%s",
			 f->goodbye->reason ? ": " : "",
			 f->goodbye->reason ? f->goodbye->reason : "");
		break;
	case RINGMQ__FRAME__BODY_ERROR:
		/* Pushed before the broker closes over a bad frame. */
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "the broker closed the connection: %s: %s",
			 ringmq_code_name((int)f->error->code),
			 f->error->message ? f->error->message : "");
		break;
	default:
		/* A push this version does not know: ignore it. */
		break;
	}
	ringmq__frame__free_unpacked(f, NULL);
}

/* Decodes and dispatches every whole frame in c->in; -1 when the stream
 * broke the protocol (connection lost). */
static int
decode_frames(struct ringmq_client *c)
{
	size_t off = 0;
	char why[128];

	while (c->in_len - off >= FRAME_HDR_BYTES) {
		uint32_t len = get_be32(c->in + off);
		Ringmq__Frame *f;

		if (len > c->max_in_frame_bytes) {
			snprintf(why, sizeof(why),
				 "protocol error: frame of %u bytes from the "
				 "broker is over the limit of %u",
				 len, c->max_in_frame_bytes);
			conn_lose(c, why);
			return -1;
		}
		if (c->in_len - off - FRAME_HDR_BYTES < len)
			break;
		f = ringmq__frame__unpack(NULL, len,
					  c->in + off + FRAME_HDR_BYTES);
		off += FRAME_HDR_BYTES + len;
		if (f == NULL) {
			conn_lose(c, "protocol error: undecodable frame "
				     "from the broker");
			return -1;
		}
		dispatch(c, f);
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

/* Writes what the socket takes; -1 when the connection is lost. */
static int
flush_out(struct ringmq_client *c)
{
	char why[160];

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
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
		c->out_off += (size_t)n;
	}
	c->out_off = 0;
	c->out_len = 0;
	return 0;
}

/* Reads what is there, then decodes; -1 when the connection is lost. */
static int
fill_in(struct ringmq_client *c)
{
	int is_eof = 0;
	int err = 0;
	char why[160];

	for (int i = 0; i < READS_PER_PUMP; i++) {
		ssize_t n;

		if (buf_reserve(&c->in, &c->in_cap,
				c->in_len + READ_CHUNK_BYTES) < 0) {
			/* Stop reading; what is buffered still decodes. */
			break;
		}
		n = recv(c->fd, c->in + c->in_len, READ_CHUNK_BYTES,
			 MSG_DONTWAIT);
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
		c->in_len += (size_t)n;
		if ((size_t)n < READ_CHUNK_BYTES)
			break;
	}
	/* Frames that arrived before a close are still answers. */
	if (decode_frames(c) < 0)
		return -1;
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
	return 0;
}

int
conn_pump(struct ringmq_client *c, int64_t deadline_ms)
{
	struct pollfd p;
	int timeout_ms = -1;
	int r;

	if (c->state != CONN_OPEN)
		return RINGMQ_CONNECTION_LOST;
	if (deadline_ms >= 0) {
		int64_t left = deadline_ms - conn_now_ms();

		timeout_ms = left <= 0	      ? 0
			     : left > INT_MAX ? INT_MAX
					      : (int)left;
	}
	p.fd = c->fd;
	p.events = POLLIN;
	if (c->out_off < c->out_len)
		p.events |= POLLOUT;
	p.revents = 0;
	r = poll(&p, 1, timeout_ms);
	if (r < 0) {
		if (errno == EINTR)
			return RINGMQ_OK; /* the caller checks its deadline */
		conn_lose(c, "connection lost: poll failed");
		return RINGMQ_CONNECTION_LOST;
	}
	if (r == 0)
		return RINGMQ_TIMEOUT;
	if ((p.revents & POLLOUT) && flush_out(c) < 0)
		return RINGMQ_CONNECTION_LOST;
	if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && fill_in(c) < 0)
		return RINGMQ_CONNECTION_LOST;
	if (p.revents & POLLNVAL) {
		conn_lose(c, "connection lost: invalid socket");
		return RINGMQ_CONNECTION_LOST;
	}
	return RINGMQ_OK;
}

static void
pending_unlink(struct ringmq_client *c, struct pending *p)
{
	struct pending **pp;

	for (pp = &c->pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

int
conn_call(struct ringmq_client *c, Ringmq__Frame *req,
	  Ringmq__Frame__BodyCase want, Ringmq__Frame **respp)
{
	struct pending p = { 0 };
	int64_t deadline_ms;
	Ringmq__Frame *f;
	int rc;

	*respp = NULL;
	if (c->state == CONN_CLOSED)
		return client_fail(c, RINGMQ_CLOSED, "the client is closed");
	if (c->state == CONN_LOST)
		return client_fail(c, RINGMQ_CONNECTION_LOST,
				   "the connection was lost");
	p.request_id = c->next_request_id++;
	if (c->next_request_id == 0)
		c->next_request_id = 1; /* 0 marks pushed frames */
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

	p.next = c->pending;
	c->pending = &p;
	deadline_ms = conn_now_ms() + c->opts.request_timeout_ms;
	rc = RINGMQ_OK;
	while (!p.is_done) {
		rc = conn_pump(c, deadline_ms);
		if (p.is_done || rc == RINGMQ_CONNECTION_LOST)
			break;
		if (conn_now_ms() >= deadline_ms) {
			rc = RINGMQ_TIMEOUT;
			break;
		}
	}
	pending_unlink(c, &p);

	if (!p.is_done) {
		if (rc == RINGMQ_CONNECTION_LOST) {
			/* conn_lose left the reason in errmsg */
			if (c->errmsg[0] != '\0')
				return rc;
			return client_fail(c, rc, "connection lost");
		}
		return client_fail(c, RINGMQ_TIMEOUT, "no answer within %d ms",
				   c->opts.request_timeout_ms);
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
		ringmq__frame__free_unpacked(f, NULL);
		return rc;
	}
	if (f->body_case != want) {
		rc = f->body_case;
		ringmq__frame__free_unpacked(f, NULL);
		return client_fail(c, RINGMQ_BAD_FRAME,
				   "protocol error: answer with body %d where "
				   "%d was expected",
				   rc, (int)want);
	}
	*respp = f;
	return RINGMQ_OK;
}
