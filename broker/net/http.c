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
	/* The request: its head (at most HTTP_HEAD_MAX) and a POST's body,
	 * NUL-terminated. */
	char head[HTTP_HEAD_MAX + HTTP_BODY_MAX + 1];
	size_t head_len;
	size_t head_end; /* where the body starts; 0: head not whole yet */
	size_t body_len; /* Content-Length */
	struct http_request req;
	char peer[64];
	char *out; /* owned: the whole answer, once answered (plaintext) */
	size_t out_len;
	struct tls_conn *tls; /* owned; NULL: plain HTTP */
	uint8_t *raw;	      /* owned, HTTP_RAW_BYTES: records read (TLS) */
	uint8_t *wire;	      /* what is being sent: out, or owned records */
	size_t wire_len, sent;
	struct msghdr msg;
	struct iovec iov;
	int is_busy;	/* an operation is in flight */
	int is_refused; /* answered 400 or 431: drain before closing */
	int is_failed;	/* TLS failed: close once its alert is out */
	int is_local;	/* the peer is on this host */
	int is_served;	/* handed to serve, not answered yet */
	int is_head;	/* a HEAD request: the answer has no body */
	void (*abandon)(void *arg); /* http_on_abandon */
	void *abandon_arg;
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

	if (c->is_served && c->abandon != NULL)
		c->abandon(c->abandon_arg);
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

/* Sends the answer: status line, headers, body (none for HEAD). */
static void
hc_send_answer(struct http_conn *c, const char *status, const char *type,
	       const char *headers, const void *body, size_t len)
{
	int n;

	n = asprintf(&c->out,
		     "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%sX-Content-Type-Options: "
		     "nosniff\r\nConnection: close\r\n\r\n",
		     status, type, len, headers ? headers : "");
	if (n < 0) {
		c->out = NULL;
		hc_free(c);
		return;
	}
	c->out_len = (size_t)n;
	if (!c->is_head && len > 0) {
		char *all = realloc(c->out, c->out_len + len);

		if (all == NULL) {
			hc_free(c);
			return;
		}
		memcpy(all + c->out_len, body, len);
		c->out = all;
		c->out_len += len;
	}
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

/* Fills c->req from the head (whose request line is sound). */
static void
hc_parse(struct http_conn *c)
{
	struct http_request *r = &c->req;
	size_t mlen = strcspn(c->head, " ");
	const char *target = c->head + mlen + 1;
	size_t tlen = strcspn(target, " ");
	const char *q = memchr(target, '?', tlen);

	snprintf(r->method, sizeof(r->method), "%.*s",
		 (int)(mlen < sizeof(r->method) ? mlen : 0), c->head);
	r->path = target;
	r->path_len = q ? (size_t)(q - target) : tlen;
	r->query = q ? q + 1 : NULL;
	r->query_len = q ? tlen - r->path_len - 1 : 0;
	r->body = c->head_end > 0 && c->body_len > 0 ? c->head + c->head_end
						     : NULL;
	r->body_len = r->body ? c->body_len : 0;
	r->peer = c->peer;
	r->is_local = c->is_local;
	r->is_tls = c->tls != NULL;
	c->is_head = strcmp(r->method, "HEAD") == 0;
}

int
http_path_is(const struct http_request *r, const char *path)
{
	return r->path_len == strlen(path) &&
	       memcmp(r->path, path, r->path_len) == 0;
}

/* Answers the request whose head (and body) c holds. bad: a status the
 * request earned before it was whole (400, 413, 431), or NULL. */
static void
hc_answer(struct http_conn *c, const char *bad)
{
	struct http_body body = { 0 };
	const char *status = "200 OK";
	const char *type = "text/plain; charset=utf-8";
	const char *allow = "";
	const char *denied = NULL;
	struct http_request *r = &c->req;

	if (bad == NULL && !request_line_ok(c->head))
		bad = "400 Bad Request";
	if (bad == NULL) {
		hc_parse(c);
		denied = access_refusal(c, &allow);
		r->machine_refusal = denied == NULL ? 0 : atoi(denied);
	}
	if (bad != NULL) {
		status = bad;
		c->is_head = 0;
		c->is_refused = 1;
		http_body_printf(&body, "%s\n", bad + 4);
	} else if (!http_path_is(r, "/metrics") &&
		   !http_path_is(r, "/healthz") &&
		   c->h->handlers.serve != NULL) {
		c->is_served = 1;
		c->h->handlers.serve(c->h->handlers.ctx, c, r);
		return;
	} else if (denied != NULL) {
		status = denied;
		http_body_printf(&body, "%s\n",
				 strncmp(denied, "401", 3) == 0
					 ? "this broker's HTTP port wants a "
					   "token: Authorization: Bearer TOKEN"
					 : "this broker's HTTP port answers "
					   "only its own host (set "
					   "http-token-file, or auth off)");
	} else if (strcmp(r->method, "GET") != 0 && !c->is_head) {
		status = "405 Method Not Allowed";
		allow = "Allow: GET, HEAD\r\n";
		http_body_printf(&body, "only GET and HEAD\n");
	} else if (http_path_is(r, "/metrics")) {
		type = "text/plain; version=0.0.4; charset=utf-8";
		c->h->handlers.metrics(c->h->handlers.ctx, &body);
	} else if (http_path_is(r, "/healthz")) {
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
	hc_send_answer(c, status, type, allow, body.data, body.len);
	free(body.data);
}

const char *
http_header(const struct http_conn *c, const char *name, size_t *len)
{
	return header_value(c->head, name, len);
}

void
http_reply(struct http_conn *c, const char *status, const char *type,
	   const char *headers, const void *body, size_t len)
{
	if (!c->is_served)
		return; /* answered already */
	c->is_served = 0;
	c->abandon = NULL;
	hc_send_answer(c, status, type, headers, body, len);
}

void
http_on_abandon(struct http_conn *c, void (*fn)(void *arg), void *arg)
{
	c->abandon = fn;
	c->abandon_arg = arg;
}

static void
hc_read(struct http_conn *c)
{
	void *buf = c->head + c->head_len;
	size_t len = sizeof(c->head) - 1 - c->head_len;

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
	while (rc == 0 && c->head_len + added < sizeof(c->head) - 1) {
		long n = tls_conn_read(
			c->tls, (uint8_t *)c->head + c->head_len + added,
			sizeof(c->head) - 1 - c->head_len - added);

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

/* Looks for the end of the head in c; once found, sets head_end and
 * body_len (a POST's Content-Length). @return a refusal status, or NULL
 * (whole or not yet). */
static const char *
hc_head_done(struct http_conn *c)
{
	const char *crlf = strstr(c->head, "\r\n\r\n");
	const char *lf = strstr(c->head, "\n\n");
	const char *end = NULL;
	size_t len;
	const char *v;

	if (crlf != NULL && (lf == NULL || crlf < lf))
		end = crlf + 4;
	else if (lf != NULL)
		end = lf + 2;
	if (end == NULL)
		return c->head_len >= HTTP_HEAD_MAX - 1
			       ? "431 Request Header Fields Too Large"
			       : NULL;
	if ((size_t)(end - c->head) > HTTP_HEAD_MAX - 1)
		return "431 Request Header Fields Too Large";
	c->head_end = (size_t)(end - c->head);
	if (header_value(c->head, "transfer-encoding", &len) != NULL)
		return "411 Length Required"; /* no chunked bodies */
	v = header_value(c->head, "content-length", &len);
	if (v != NULL) {
		char num[24];
		char *stop;
		unsigned long long n;

		if (len == 0 || len >= sizeof(num))
			return "400 Bad Request";
		memcpy(num, v, len);
		num[len] = '\0';
		if (num[strspn(num, "0123456789")] != '\0')
			return "400 Bad Request";
		n = strtoull(num, &stop, 10);
		if (n > HTTP_BODY_MAX)
			return "413 Content Too Large";
		c->body_len = (size_t)n;
	}
	return NULL;
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
		hc_answer(c, "400 Bad Request"); /* no NUL in a request */
		return;
	}
	if (c->head_end == 0) {
		const char *bad = hc_head_done(c);

		if (bad != NULL) {
			hc_answer(c, bad);
			return;
		}
	}
	if (c->head_end > 0 && c->head_len >= c->head_end + c->body_len) {
		c->head[c->head_end + c->body_len] = '\0';
		hc_answer(c, NULL);
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
			if (addr_peer_name(res, c->peer, sizeof(c->peer)) < 0)
				snprintf(c->peer, sizeof(c->peer), "?");
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
