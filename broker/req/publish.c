/*
 * publish: the Publish request. Its answer, PublishOk, is encoded by hand
 * straight into the connection's output (see wire.h): it is the hottest
 * answer there is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/stats.h"
#include "lib/vec.h"
#include "net/conn.h"
#include "req/req.h"
#include "req/session.h"
#include "req/wire.h"

static void
published(void *ctx, const struct publish_result *res, size_t n)
{
	struct req_ctx *p = ctx;
	struct conn *c = p->c;
	uint8_t *out;

	stats_observe(&req_env_of(c)->stats->confirm_latency,
		      (double)(clock_mono_us() - p->start_us) / 1e6);
	if (!conn_unref_live(c))
		goto out;
	if (conn_is_dead(c))
		goto out;
	out = conn_out_reserve(c, wire_publish_ok_size(p->request_id, res, n));
	if (out == NULL) {
		req_send_rc(c, p->request_id, -ENOMEM);
		goto out;
	}
	conn_out_commit(c, wire_publish_ok_encode(p->request_id, res, n, out));
out:
	free(p);
}

/* Room on the stack for the messages and headers of small publishes (one
 * at a time, the latency case): no allocation for them. */
#define STACK_MSGS    16u
#define STACK_HEADERS 32u

/* The request's messages as the core takes them; every pointer points
 * into the decoded frame. */
static void
publish_from_wire(const Ringmq__Publish *w, struct publish_msg *msgs,
		  struct store_header *h, struct publish_batch *p)
{
	for (size_t i = 0; i < w->n_messages; i++) {
		const Ringmq__Message *m = w->messages[i];
		struct publish_msg *pm = &msgs[i];

		pm->payload = m->payload.data;
		pm->payload_len = m->payload.len;
		pm->has_key = m->has_key;
		pm->key = m->key.data;
		pm->key_len = m->key.len;
		pm->dedup_id = m->dedup_id;
		pm->headers = h;
		pm->n_headers = m->n_headers;
		for (size_t k = 0; k < m->n_headers; k++, h++) {
			h->name = m->headers[k]->name;
			h->name_len = (uint32_t)strlen(m->headers[k]->name);
			h->value = m->headers[k]->value.data;
			h->value_len = (uint32_t)m->headers[k]->value.len;
		}
		pm->has_partition = m->has_partition;
		pm->partition = m->partition;
		pm->has_delay_ms = m->has_delay_ms;
		pm->delay_ms = m->delay_ms;
		pm->has_deliver_at_ms = m->has_deliver_at_ms;
		pm->deliver_at_ms = m->deliver_at_ms;
	}
	memset(p, 0, sizeof(*p));
	p->queue = w->queue;
	p->has_partition = w->has_partition;
	p->partition = w->partition;
	p->has_producer_seq = w->has_producer_seq;
	p->producer_seq = w->producer_seq;
	p->msgs = msgs;
	p->n = w->n_messages;
}

/* Stores the messages of w for the session's producer.
 * @return as queue_publish. */
static int
publish(struct session *se, const Ringmq__Publish *w, struct req_ctx *r)
{
	struct publish_msg stack_msgs[STACK_MSGS];
	struct store_header stack_headers[STACK_HEADERS];
	struct publish_msg *msgs = stack_msgs;
	struct store_header *h = stack_headers;
	struct publish_batch p;
	size_t nh = 0;
	void *heap = NULL;
	int rc;

	for (size_t i = 0; i < w->n_messages; i++)
		nh += w->messages[i]->n_headers;
	if (w->n_messages > STACK_MSGS || nh > STACK_HEADERS) {
		/* One block: the messages, then their headers (both of
		 * 8-byte alignment). */
		heap = malloc(w->n_messages * sizeof(*msgs) + nh * sizeof(*h));
		if (heap == NULL)
			return -ENOMEM;
		msgs = heap;
		h = (struct store_header *)(msgs + w->n_messages);
	}
	publish_from_wire(w, msgs, h, &p);
	rc = queue_publish(se->env->qs, &p, se->producer_id, published, r);
	free(heap);
	return rc;
}

/* Message bytes of w as max_message_bytes counts them. */
static uint64_t
publish_bytes(const Ringmq__Publish *w)
{
	uint64_t n = 0;

	for (size_t i = 0; i < w->n_messages; i++) {
		const Ringmq__Message *m = w->messages[i];

		n += m->payload.len + m->key.len +
		     (m->dedup_id ? strlen(m->dedup_id) : 0);
		for (size_t k = 0; k < m->n_headers; k++)
			n += 6 + strlen(m->headers[k]->name) +
			     m->headers[k]->value.len;
	}
	return n;
}

/* The partition a sequenced publish names (checked later), or
 * UINT32_MAX. */
static uint32_t
seq_partition(const Ringmq__Publish *w)
{
	if (!w->has_producer_seq)
		return UINT32_MAX;
	if (w->has_partition)
		return w->partition;
	return w->messages[0]->has_partition ? w->messages[0]->partition
					     : UINT32_MAX;
}

/*
 * The user's publish rate quotas. @return 0 when w may go, else the ms
 * to wait. A sequenced batch refused holds its partition back on this
 * session: its later batches (sent before the client heard) are refused
 * too until it comes again, so that none overtakes it and leaves it
 * behind its own producer sequence.
 */
static uint64_t
quota_admit(struct session *se, const Ringmq__Publish *w, struct queue *q)
{
	struct user *u = se->user;
	uint32_t part = seq_partition(w);
	uint64_t now = clock_mono_ms(), wait;
	struct quota_hold *hold = NULL;

	if (u == NULL || (u->quota.publish_messages_per_s == 0 &&
			  u->quota.publish_bytes_per_s == 0))
		return 0;
	for (size_t i = 0; i < se->nholds && part != UINT32_MAX; i++)
		if (se->holds[i].qid == q->qid &&
		    se->holds[i].partition == part)
			hold = &se->holds[i];
	if (hold != NULL && hold->seq != w->producer_seq) {
		wait = user_publish_wait(u, now);
		u->refused_rate++;
		return wait > 0 ? wait : 1;
	}
	wait = user_publish_admit(u, w->n_messages, publish_bytes(w), now);
	if (wait == 0 && hold != NULL)
		*hold = se->holds[--se->nholds];
	else if (wait > 0 && hold == NULL && part != UINT32_MAX) {
		struct quota_hold *h = vec_grow(se->holds, &se->capholds,
						se->nholds + 1, sizeof(*h), 4);

		/* Without room the batch is refused all the same; only its
		 * order is not kept. */
		if (h != NULL) {
			se->holds = h;
			h[se->nholds++] =
				(struct quota_hold){ q->qid, part,
						     w->producer_seq };
		}
	}
	return wait;
}

void
req_publish(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	struct req_ctx *p;
	int rc;

	if (se->env->is_shutting_down) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__SHUTTING_DOWN,
			       "broker is shutting down");
		return;
	}
	if (f->publish->n_messages == 0) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "publish without messages");
		return;
	}
	if (se->user != NULL) {
		struct queue *q = req_find_queue(c, f, f->publish->queue);
		uint64_t wait;

		if (q == NULL)
			return;
		wait = quota_admit(se, f->publish, q);
		if (wait > 0) {
			req_send_retry(c, f->request_id,
				       RINGMQ__ERROR_CODE__QUOTA_EXCEEDED,
				       "over the user's publish rate quota",
				       wait);
			return;
		}
	}
	p = req_new(c, f, 0);
	if (p == NULL)
		return;
	rc = publish(se, f->publish, p);
	if (rc < 0)
		req_abort(p, rc);
}
