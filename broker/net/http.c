/*
 * http: see http.h.
 */
#define _GNU_SOURCE
#include "net/http.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/addr.h"
#include "net/loop.h"
#include "net/tls.h"

#define HTTP_HEAD_MAX		8192  /* longest request head read */
#define HTTP_REQUEST_TIMEOUT_MS 10000 /* a whole exchange, at most */
/* Bytes of a refused request still read and dropped after the answer, so
 * that closing with them unread (a TCP reset) does not destroy it. */
#define HTTP_DRAIN_MAX (64u << 10)
/* Bytes of TLS records read at once (one record: 16 KiB and its framing). */
#define HTTP_RAW_BYTES 17408

struct http_conn {
	struct http *h; /* borrowed */
	int fd;
	struct loop_op read_op, send_op;
	char head[HTTP_HEAD_MAX];
	size_t head_len;
	char *out; /* owned: the whole answer, once answered (plaintext) */
	size_t out_len;
	struct tls_conn *tls; /* owned; NULL: plain HTTP */
	uint8_t *raw;	      /* owned, HTTP_RAW_BYTES: records read (TLS) */
	uint8_t *wire;	      /* what is being sent: out, or owned records */
	size_t wire_len, sent;
	struct msghdr msg;
	struct iovec iov;
	int is_busy;	    /* an operation is in flight */
	int is_refused;	    /* answered 400 or 431: drain before closing */
	int is_failed;	    /* TLS failed: close once its alert is out */
	int is_local;	    /* the peer is on this host */
	size_t drained;	    /* bytes read and dropped since the answer */
	uint64_t opened_ms; /* monotonic */
	struct http_conn *next, *prev;
};

struct http {
	struct loop *loop; /* borrowed */
	struct http_handlers handlers;
	int fd;
	struct loop_op accept_op;
	int is_accepting;
	int is_stopping;
	struct http_conn *conns;
};

void
http_body_printf(struct http_body *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->is_oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->is_oom = 1;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->is_oom = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
}

static void
hc_free(struct http_conn *c)
{
	struct http *h = c->h;

	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->wire != (uint8_t *)c->out)
		free(c->wire);
	free(c->out);
	free(c->raw);
	tls_conn_free(c->tls);
	free(c);
}

static void on_read(struct loop_op *op, int res, uint32_t flags);
static void on_sent(struct loop_op *op, int res, uint32_t flags);

static void
hc_send_more(struct http_conn *c)
{
	c->iov.iov_base = c->wire + c->sent;
	c->iov.iov_len = c->wire_len - c->sent;
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = &c->iov;
	c->msg.msg_iovlen = 1;
	if (loop_sendmsg(c->h->loop, c->fd, &c->msg, &c->send_op) < 0) {
		hc_free(c);
		return;
	}
	c->is_busy = 1;
}

/* 1 when head starts with a request line: METHOD SP TARGET SP HTTP/...,
 * the method in capitals. */
static int
request_line_ok(const char *head)
{
	size_t line = strcspn(head, "\r\n");
	const char *end = head + line;
	const char *sp1 = memchr(head, ' ', line), *sp2;

	if (sp1 == NULL || sp1 == head)
		return 0;
	for (const char *p = head; p < sp1; p++)
		if (*p < 'A' || *p > 'Z')
			return 0;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return 0;
	return end - sp2 - 1 >= 8 && memcmp(sp2 + 1, "HTTP/", 5) == 0;
}

/* The value of header name (lower case) in head, its length in *len; NULL
 * when head has none. */
static const char *
header_value(const char *head, const char *name, size_t *len)
{
	size_t nlen = strlen(name);

	for (const char *p = strchr(head, '\n'); p != NULL;
	     p = strchr(p, '\n')) {
		p++;
		if (*p == '\r' || *p == '\n')
			break; /* the end of the head */
		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1;

			v += strspn(v, " \t");
			*len = strcspn(v, "\r\n");
			while (*len > 0 &&
			       (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
				(*len)--;
			return v;
		}
	}
	return NULL;
}

/* 1 when the request in c brings the token: a comparison that takes as
 * long whichever byte differs. */
static int
has_token(const struct http_conn *c, const char *token)
{
	size_t len, tlen = strlen(token);
	const char *v = header_value(c->head, "authorization", &len);
	unsigned char diff = 0;

	if (v == NULL || len != 7 + tlen || strncasecmp(v, "Bearer ", 7) != 0)
		return 0;
	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)(v[7 + i] ^ token[i]);
	return diff == 0;
}

/* The status that refuses the request in c, or NULL if it may be
 * answered (http_handlers: token, is_open); *extra gets the header lines
 * a refusal needs. */
static const char *
access_refusal(const struct http_conn *c, const char **extra)
{
	const struct http_handlers *hh = &c->h->handlers;

	if (hh->token != NULL) {
		if (has_token(c, hh->token))
			return NULL;
		*extra = "WWW-Authenticate: Bearer realm=\"ringmq\"\r\n";
		return "401 Unauthorized";
	}
	if (hh->is_open || c->is_local)
		return NULL;
	return "403 Forbidden";
}

/* Sends the TLS records waiting in c (the handshake's, or the answer's);
 * 0 when there were none. */
static int
hc_send_records(struct http_conn *c)
{
	size_t n = tls_conn_out_len(c->tls);
	uint8_t *wire;

	if (n == 0)
		return 0;
	wire = malloc(n);
	if (wire == NULL) {
		hc_free(c);
		return 1;
	}
	if (c->wire != (uint8_t *)c->out)
		free(c->wire);
	c->wire = wire;
	c->wire_len = tls_conn_out_take(c->tls, wire, n);
	c->sent = 0;
	hc_send_more(c);
	return 1;
}

/* Builds the whole answer for the request head in c and sends it. bad: a
 * status the request earned before its head was whole (431), or NULL. */
static void
hc_answer(struct http_conn *c, const char *bad)
{
	struct http_body body = { 0 };
	const char *status = "200 OK";
	const char *type = "text/plain; charset=utf-8";
	const char *allow = "";
	size_t mlen = strcspn(c->head, " ");
	const char *path = c->head + mlen + (c->head[mlen] == ' ');
	size_t plen = strcspn(path, " ?");
	int is_head = mlen == 4 && memcmp(c->head, "HEAD", 4) == 0;
	int is_get = mlen == 3 && memcmp(c->head, "GET", 3) == 0;
	const char *denied = NULL;

	if (bad == NULL && !request_line_ok(c->head))
		bad = "400 Bad Request";
	if (bad == NULL)
		denied = access_refusal(c, &allow);
	if (bad != NULL) {
		status = bad;
		is_head = 0;
		c->is_refused = 1;
		http_body_printf(&body, "%s\n", bad + 4);
	} else if (denied != NULL) {
		status = denied;
		http_body_printf(&body, "%s\n",
				 strncmp(denied, "401", 3) == 0
					 ? "this broker's HTTP port wants a "
					   "token: Authorization: Bearer TOKEN"
					 : "this broker's HTTP port answers "
					   "only its own host (set "
					   "http-token-file, or auth off)");
	} else if (!is_get && !is_head) {
		status = "405 Method Not Allowed";
		allow = "Allow: GET, HEAD\r\n";
		http_body_printf(&body, "only GET and HEAD\n");
	} else if (plen == 8 && memcmp(path, "/metrics", 8) == 0) {
		type = "text/plain; version=0.0.4; charset=utf-8";
		c->h->handlers.metrics(c->h->handlers.ctx, &body);
	} else if (plen == 8 && memcmp(path, "/healthz", 8) == 0) {
		if (!c->h->handlers.health(c->h->handlers.ctx, &body))
			status = "503 Service Unavailable";
	} else {
		status = "404 Not Found";
		http_body_printf(&body, "try /metrics or /healthz\n");
	}
	if (body.is_oom) {
		free(body.data);
		hc_free(c);
		return;
	}
	/* HEAD: the head GET would get, no body. */
	if (asprintf(&c->out,
		     "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%.*s",
		     status, type, body.len, allow, is_head ? 0 : (int)body.len,
		     body.data ? body.data : "") < 0) {
		c->out = NULL;
		free(body.data);
		hc_free(c);
		return;
	}
	free(body.data);
	c->out_len = strlen(c->out);
	if (c->tls != NULL) {
		/* Encrypted, and the end of the stream said. */
		if (tls_conn_write(c->tls, (const uint8_t *)c->out,
				   c->out_len) < 0) {
			hc_free(c);
			return;
		}
		tls_conn_close_notify(c->tls);
		hc_send_records(c);
		return;
	}
	c->wire = (uint8_t *)c->out;
	c->wire_len = c->out_len;
	c->sent = 0;
	hc_send_more(c);
}

static void
hc_read(struct http_conn *c)
{
	void *buf = c->head + c->head_len;
	size_t len = HTTP_HEAD_MAX - 1 - c->head_len;

	if (c->tls != NULL) {
		buf = c->raw;
		len = HTTP_RAW_BYTES;
	}
	if (loop_read(c->h->loop, c->fd, buf, len, &c->read_op) < 0) {
		hc_free(c);
		return;
	}
	c->is_busy = 1;
}

/* Decrypts the records read, into the head after head_len (which it
 * leaves as it is). @return the plaintext bytes put there (>= 0); -1
 * when the connection is done with (freed, or answered: plain HTTP on the
 * HTTPS port). */
static long
hc_tls_input(struct http_conn *c, size_t len)
{
	size_t added = 0;
	int rc = tls_conn_feed(c->tls, c->raw, len);

	if (rc == -RMQ_EBAD_FRAME) {
		/* Plain HTTP on the HTTPS port: answered in plain HTTP. */
		tls_conn_free(c->tls);
		c->tls = NULL;
		log_info("http: plain HTTP on the HTTPS port; answered 400");
		snprintf(c->head, sizeof(c->head), "%.*s",
			 (int)(len < sizeof(c->head) - 1 ? len
							 : sizeof(c->head) - 1),
			 (const char *)c->raw);
		c->head_len = strlen(c->head);
		hc_answer(c, "400 Bad Request (this port speaks HTTPS)");
		return -1;
	}
	while (rc == 0 && c->head_len + added < HTTP_HEAD_MAX - 1) {
		long n = tls_conn_read(c->tls,
				       (uint8_t *)c->head + c->head_len + added,
				       HTTP_HEAD_MAX - 1 - c->head_len - added);

		if (n <= 0) {
			if (n < 0 && n != -ESHUTDOWN)
				log_info("http: TLS %s", tls_conn_why(c->tls));
			rc = n == 0 ? 1 : (int)n;
			break;
		}
		added += (size_t)n;
	}
	if (rc < 0) {
		/* The alert, if any, goes out first. */
		if (hc_send_records(c) == 0)
			hc_free(c);
		else
			c->is_failed = 1;
		return -1;
	}
	return (long)added;
}

static void
on_read(struct loop_op *op, int res, uint32_t flags)
{
	struct http_conn *c = op->data;
	size_t added = (size_t)res;
	bool is_nul;

	(void)flags;
	c->is_busy = 0;
	if (res <= 0 || c->h->is_stopping) {
		hc_free(c);
		return;
	}
	if (c->out != NULL) { /* answered: dropping the rest */
		c->drained += (size_t)res;
		if (c->drained > HTTP_DRAIN_MAX)
			hc_free(c);
		else
			hc_read(c);
		return;
	}
	if (c->tls != NULL) {
		long n = hc_tls_input(c, (size_t)res);

		if (n < 0)
			return;
		added = (size_t)n;
	}
	is_nul = memchr(c->head + c->head_len, '\0', added) != NULL;
	c->head_len += added;
	c->head[c->head_len] = '\0';
	if (is_nul) {
		hc_answer(c, "400 Bad Request"); /* no NUL in a head */
		return;
	}
	if (strstr(c->head, "\r\n\r\n") != NULL ||
	    strstr(c->head, "\n\n") != NULL) {
		hc_answer(c, NULL);
		return;
	}
	if (c->head_len >= HTTP_HEAD_MAX - 1) {
		hc_answer(c, "431 Request Header Fields Too Large");
		return;
	}
	/* The handshake's answers go out before more is read. */
	if (c->tls != NULL && hc_send_records(c))
		return;
	hc_read(c);
}

static void
on_sent(struct loop_op *op, int res, uint32_t flags)
{
	struct http_conn *c = op->data;

	(void)flags;
	c->is_busy = 0;
	if (res <= 0) {
		hc_free(c);
		return;
	}
	c->sent += (size_t)res;
	if (c->sent < c->wire_len) {
		hc_send_more(c);
	} else if (c->is_failed) {
		hc_free(c); /* the TLS alert is out */
	} else if (c->out == NULL) {
		hc_read(c); /* handshake records out: the request is next */
	} else if (c->is_refused && shutdown(c->fd, SHUT_WR) == 0) {
		/* The peer may still be sending its request: read it to
		 * its end (bounded, and by the exchange's deadline). */
		c->head_len = 0;
		hc_read(c);
	} else {
		hc_free(c);
	}
}

static void
arm_accept(struct http *h)
{
	if (loop_accept(h->loop, h->fd, &h->accept_op) == 0)
		h->is_accepting = 1;
}

static void
on_accept(struct loop_op *op, int res, uint32_t flags)
{
	struct http *h = op->data;
	struct http_conn *c;

	if (!loop_op_more(flags))
		h->is_accepting = 0;
	if (res >= 0) {
		c = h->is_stopping ? NULL : calloc(1, sizeof(*c));
		if (c != NULL && h->handlers.tls != NULL &&
		    ((c->raw = malloc(HTTP_RAW_BYTES)) == NULL ||
		     tls_conn_new(&c->tls, h->handlers.tls) < 0)) {
			free(c->raw);
			free(c);
			c = NULL;
		}
		if (c == NULL) {
			close(res);
		} else {
			c->h = h;
			c->fd = res;
			c->opened_ms = clock_mono_ms();
			c->is_local = addr_peer_is_loopback(res);
			c->read_op =
				(struct loop_op){ .cb = on_read, .data = c };
			c->send_op =
				(struct loop_op){ .cb = on_sent, .data = c };
			c->next = h->conns;
			if (h->conns)
				h->conns->prev = c;
			h->conns = c;
			hc_read(c);
		}
	}
	if (!h->is_accepting && !h->is_stopping)
		arm_accept(h);
}

int
http_open(struct http **out, struct loop *loop, const char *listen_addr,
	  const struct http_handlers *handlers, char *bound, size_t boundlen)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], portstr[8], hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
	struct http *h;
	uint16_t port;
	int one = 1, rc;

	*out = NULL;
	if (config_split_hostport(listen_addr, host, sizeof(host), &port) < 0)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->fd = -1;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, portstr, &hints, &ai) != 0) {
		rc = -EINVAL;
		goto fail;
	}
	h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0 ||
	    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) <
		    0 ||
	    addr_bind(h->fd, ai->ai_addr, ai->ai_addrlen, listen_addr) < 0 ||
	    listen(h->fd, 64) < 0 ||
	    getsockname(h->fd, (struct sockaddr *)&ss, &sslen) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sslen, hbuf, sizeof(hbuf), pbuf,
			sizeof(pbuf), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		rc = -errno;
		log_error("http %s: %s", listen_addr, strerror(errno));
		goto fail;
	}
	snprintf(bound, boundlen,
		 ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, pbuf);
	freeaddrinfo(ai);
	h->loop = loop;
	h->handlers = *handlers;
	h->accept_op = (struct loop_op){ .cb = on_accept, .data = h };
	arm_accept(h);
	*out = h;
	return 0;
fail:
	if (ai)
		freeaddrinfo(ai);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return rc < 0 ? rc : -EINVAL;
}

void
http_stop(struct http *h)
{
	if (h == NULL || h->is_stopping)
		return;
	h->is_stopping = 1;
	if (h->is_accepting)
		(void)loop_cancel(h->loop, &h->accept_op);
}

void
http_close(struct http *h)
{
	if (h == NULL)
		return;
	while (h->conns)
		hc_free(h->conns);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

void
http_sweep(struct http *h)
{
	uint64_t now = clock_mono_ms();

	if (h == NULL)
		return;
	/* A peer that does not finish its request in time loses the
	 * connection: shutdown makes the read in flight complete, and its
	 * completion frees the connection. */
	for (struct http_conn *c = h->conns; c; c = c->next)
		if (now - c->opened_ms > HTTP_REQUEST_TIMEOUT_MS)
			(void)shutdown(c->fd, SHUT_RDWR);
}
