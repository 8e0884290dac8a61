/*
 * http: the broker's small HTTP listener for operators, on the same event
 * loop: GET /metrics (Prometheus text exposition format) and GET /healthz
 * here, every other path through one serve callback (the dashboard).
 *
 * One request per connection (Connection: close): read the request head
 * (and a POST's body, up to HTTP_BODY_MAX), answer, close; over TLS when
 * its handlers carry a TLS context (the handshake's records go out between
 * reads, the answer encrypted). Bodies come from callbacks, so this module
 * knows nothing of queues or storage.
 */
#ifndef RINGMQ_HTTP_H
#define RINGMQ_HTTP_H

#include <stddef.h>

struct loop;
struct http;
struct http_conn;
struct tls_ctx;

#define HTTP_BODY_MAX 8192 /* longest request body read (else 413) */

/* A request handed to the serve callback; valid until it is answered. */
struct http_request {
	char method[8];	  /* "GET", "HEAD", "POST", ...; longer ones: 405 */
	const char *path; /* the target up to '?', not NUL-terminated */
	size_t path_len;
	const char *query; /* after '?' (not NUL-terminated), or NULL */
	size_t query_len;
	const char *body; /* a POST's body (Content-Length bytes), or NULL */
	size_t body_len;
	const char *peer; /* the client's address, numeric */
	int is_local;	  /* the peer is on this host */
	int is_tls;	  /* it came over HTTPS */
	/* What /metrics would answer it: 0 when it may be answered (token,
	 * or host rule), else 401 or 403. */
	int machine_refusal;
};

/* A growing text buffer the callbacks write into. */
struct http_body {
	char *data; /* owned */
	size_t len, cap;
	int is_oom;
};

void http_body_printf(struct http_body *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct http_handlers {
	/* Writes the metrics text. */
	void (*metrics)(void *ctx, struct http_body *b);
	/* Writes a reason and returns 1 if healthy, 0 if not (503). */
	int (*health)(void *ctx, struct http_body *b);
	/* Every other path (NULL: 404). Answers with http_reply, at once
	 * or later (from another completion); until then the connection
	 * waits. */
	void (*serve)(void *ctx, struct http_conn *c,
		      const struct http_request *r);
	void *ctx;
	/* Who is answered: with a token, every request that brings it
	 * (Authorization: Bearer TOKEN; else 401); without one, peers on
	 * this host, or every peer when is_open (else 403). */
	const char *token; /* borrowed; NULL = none */
	int is_open;
	/* HTTPS: the certificate's context (borrowed; its current
	 * certificate at accept is the connection's); NULL: plain HTTP. */
	struct tls_ctx *tls;
};

/*
 * Listens on HOST:PORT (port 0 picks one) and serves on loop.
 * @param[out] bound  the address actually bound, "HOST:PORT".
 * @return 0 or -errno; *out NULL on failure.
 */
int http_open(struct http **out, struct loop *loop, const char *listen,
	      const struct http_handlers *h, char *bound, size_t boundlen);

/* 1 when r's path (without its query) is path. */
int http_path_is(const struct http_request *r, const char *path);

/* The value of request header name (case-insensitive) of c's request,
 * its length in *len; NULL when it has none. */
const char *http_header(const struct http_conn *c, const char *name,
			size_t *len);

/*
 * Answers c's request (once): status ("200 OK"), content type, extra
 * header lines (each ending "\r\n", or NULL) and the body (copied; HEAD
 * sends none). The connection closes after it.
 */
void http_reply(struct http_conn *c, const char *status, const char *type,
		const char *headers, const void *body, size_t len);

/* For an answer given later: fn(arg) runs if c goes (the peer left, the
 * broker stops) before http_reply, which must then not be called. */
void http_on_abandon(struct http_conn *c, void (*fn)(void *arg), void *arg);

/* Closes connections older than the request timeout (slow or silent
 * peers); called now and then from the loop. NULL is a no-op. */
void http_sweep(struct http *h);

/* Stops accepting and closes idle connections; frees once nothing is in
 * flight (http_close then completes the job). */
void http_stop(struct http *h);

/* Frees everything; only after the loop has stopped. NULL is a no-op. */
void http_close(struct http *h);

#endif
