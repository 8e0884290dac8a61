/*
 * req: see req.h. The helpers every handler family shares: answers, and
 * the contexts of requests answered from a completion.
 */
#include "req/req.h"

#include <errno.h>
#include <stdlib.h>

#include "core/queue.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "net/conn.h"
#include "req/codec.h"

/* ------------------------------------------------------------- answers */

int
req_send(struct conn *c, Ringmq__Frame *f)
{
	uint8_t *out;

	if (conn_is_dead(c))
		return 0;
	out = conn_out_reserve(c, codec_encoded_size(f));
	if (out == NULL)
		return -ENOMEM;
	conn_out_commit(c, codec_encode(f, out));
	return 0;
}

void
req_send_error(struct conn *c, uint64_t request_id, int code, const char *why)
{
	req_send_retry(c, request_id, code, why, 0);
}

void
req_send_retry(struct conn *c, uint64_t request_id, int code, const char *why,
	       uint64_t retry_after_ms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Error e = RINGMQ__ERROR__INIT;

	stats_count_error(req_env_of(c)->stats, code);
	e.code = (Ringmq__ErrorCode)code;
	e.message = (char *)why;
	e.has_retry_after_ms = retry_after_ms != 0;
	e.retry_after_ms = retry_after_ms;
	f.has_request_id = request_id != 0;
	f.request_id = request_id;
	f.body_case = RINGMQ__FRAME__BODY_ERROR;
	f.error = &e;
	(void)req_send(c, &f); /* logged inside; nothing else to do */
}

void
req_send_rc(struct conn *c, uint64_t request_id, int rc)
{
	req_send_error(c, request_id, err_to_wire(rc), err_str(rc));
}

void
req_answer(struct conn *c, uint64_t request_id,
	   Ringmq__Frame__BodyCase body_case, void *body)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;

	f.has_request_id = 1;
	f.request_id = request_id;
	f.body_case = body_case;
	/* The body is a union of message pointers: any member holds it. */
	f.done = body;
	(void)req_send(c, &f);
}

void
req_send_done(struct conn *c, uint64_t request_id)
{
	Ringmq__Done d = RINGMQ__DONE__INIT;

	req_answer(c, request_id, RINGMQ__FRAME__BODY_DONE, &d);
}

void
req_fail(struct conn *c, uint64_t request_id, int code, const char *why)
{
	log_info("conn %llu: %s; closing", (unsigned long long)conn_id(c), why);
	req_send_error(c, request_id, code, why);
	conn_close(c, why);
}

/* ------------------------------------------------------------ contexts */

struct req_ctx *
req_new(struct conn *c, const Ringmq__Frame *f, size_t extra)
{
	struct req_ctx *r = calloc(1, sizeof(*r) + extra);

	if (r == NULL) {
		req_send_rc(c, f->request_id, -ENOMEM);
		return NULL;
	}
	r->c = c;
	r->request_id = f->request_id;
	r->start_us = clock_mono_us();
	conn_ref(c);
	return r;
}

void
req_done(void *ctx, int status)
{
	struct req_ctx *r = ctx;

	if (conn_unref_live(r->c)) {
		if (status < 0)
			req_send_rc(r->c, r->request_id, status);
		else
			req_send_done(r->c, r->request_id);
	}
	free(r);
}

void
req_drop(struct req_ctx *r)
{
	(void)conn_unref_live(r->c);
	free(r);
}

void
req_abort(struct req_ctx *r, int rc)
{
	if (conn_unref_live(r->c))
		req_send_rc(r->c, r->request_id, rc);
	free(r);
}

/* ------------------------------------------------------ queues, groups */

struct queue *
req_find_queue(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	struct queue *q = queues_find(req_env_of(c)->qs, name);

	if (q == NULL || q->is_pending) {
		req_send_rc(c, f->request_id, -RMQ_EQUEUE_NOT_FOUND);
		return NULL;
	}
	return q;
}
