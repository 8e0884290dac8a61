/*
 * http: the broker's small HTTP listener for operators, on the same event
 * loop: GET /metrics (Prometheus text exposition format) and GET /healthz.
 *
 * One request per connection (Connection: close): read the request head,
 * answer, close; over TLS when its handlers carry a TLS context (the
 * handshake's records go out between reads, the answer encrypted). Bodies come
 * from callbacks, so this module knows nothing of queues or storage.
 */
#ifndef RINGMQ_HTTP_H
#define RINGMQ_HTTP_H

#include <stddef.h>

struct loop;
struct http;
struct tls_ctx;

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

/* Closes connections older than the request timeout (slow or silent
 * peers); called now and then from the loop. NULL is a no-op. */
void http_sweep(struct http *h);

/* Stops accepting and closes idle connections; frees once nothing is in
 * flight (http_close then completes the job). */
void http_stop(struct http *h);

/* Frees everything; only after the loop has stopped. NULL is a no-op. */
void http_close(struct http *h);

#endif
