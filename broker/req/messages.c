/*
 * messages: the requests that read or change stored messages by position:
 * peek, message show and cancel, dead-letter list and redrive. Reads go
 * through the loop thread's short read transaction and are packed into
 * the answer before it ends.
 */
#include "req/req.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "req/session.h"
#include "req/wire.h"
#include "store/store.h"

#define PEEK_DEFAULT 10u

/* Stored messages gathered for one answer, bounded in count and bytes. */
struct gather {
	Ringmq__StoredMessage *sm; /* owned [cap] */
	Ringmq__StoredMessage **sp;
	struct wire_msg *w;
	size_t n, cap;
	size_t bytes, max_bytes;
	bool is_full; /* a message did not fit: the answer ends before it */
};

static int
gather_init(struct gather *g, size_t cap, size_t max_bytes)
{
	memset(g, 0, sizeof(*g));
	g->sm = calloc(cap + 1, sizeof(*g->sm));
	g->sp = calloc(cap + 1, sizeof(*g->sp));
	g->w = calloc(cap + 1, sizeof(*g->w));
	g->cap = cap;
	g->max_bytes = max_bytes;
	return g->sm && g->sp && g->w ? 0 : -ENOMEM;
}

static void
gather_fini(struct gather *g)
{
	for (size_t i = 0; i < g->n; i++)
		wire_msg_fini(&g->w[i]);
	free(g->sm);
	free(g->sp);
	free(g->w);
}

/* Adds message v. @return 1 added, 0 full (count or bytes), -ENOMEM. */
static int
gather_add(struct gather *g, const struct store_msg_view *v)
{
	size_t size = v->payload_len + v->key_len + v->headers_len + 64;
	Ringmq__StoredMessage *sm;

	if (g->n == g->cap || (g->n > 0 && g->bytes + size > g->max_bytes)) {
		g->is_full = true;
		return 0;
	}
	if (wire_msg_init(&g->w[g->n], v) < 0) {
		wire_msg_fini(&g->w[g->n]);
		return -ENOMEM;
	}
	sm = &g->sm[g->n];
	ringmq__stored_message__init(sm);
	sm->partition = v->partition;
	sm->offset = v->offset;
	sm->message = &g->w[g->n].m;
	sm->has_publish_ms = 1;
	sm->publish_ms = v->publish_ms;
	g->sp[g->n] = sm;
	g->n++;
	g->bytes += size;
	return 1;
}

/* Room for messages in one answer: half a frame, the rest is overhead. */
static size_t
answer_bytes(struct conn *c)
{
	return req_env_of(c)->cfg->max_frame_bytes / 2;
}

static uint32_t
answer_count(struct conn *c, int has_count, uint32_t count)
{
	uint32_t max = req_env_of(c)->cfg->max_batch_count;

	if (!has_count || count == 0)
		return PEEK_DEFAULT < max ? PEEK_DEFAULT : max;
	return count < max ? count : max;
}

/* Reads (q, part, off) into v; logs and skips what cannot be read. */
static int
read_msg(struct conn *c, struct queue *q, uint32_t part, uint64_t off,
	 struct store_msg_view *v)
{
	int rc = store_msg_get(req_env_of(c)->store, q->qid, part, off, v);

	if (rc < 0 && rc != -RMQ_ENOTFOUND)
		log_warn("queue %s partition %u offset %llu: %s", q->name, part,
			 (unsigned long long)off, err_str(rc));
	return rc;
}

/* Gathers the stored messages of partitions first..last of q from offset
 * from on, up to g's bounds; with source set, only dead letters of that
 * source queue. @return 0 or -ENOMEM. */
static int
gather_partitions(struct conn *c, struct gather *g, struct queue *q,
		  uint32_t first, uint32_t last, uint64_t from,
		  const char *source)
{
	/* Stops at the first message that does not fit, so that an answer
	 * is a contiguous run that a next page can go on from. */
	for (uint32_t i = first; i <= last && !g->is_full; i++) {
		const struct partition *p = &q->parts[i];

		for (uint64_t off = partition_next(p, from); off != UINT64_MAX;
		     off = partition_next(p, off + 1)) {
			struct store_msg_view v;
			int rc;

			if (read_msg(c, q, i, off, &v) < 0 ||
			    (source != NULL &&
			     !dead_letter_is_of(&v, source, NULL)))
				continue;
			rc = gather_add(g, &v);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break;
		}
	}
	return 0;
}

void
req_peek(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__Peek *pk = f->peek;
	Ringmq__PeekOk ok = RINGMQ__PEEK_OK__INIT;
	struct queue *q = req_find_queue(c, f, pk->queue);
	struct gather g;
	uint32_t first = 0, last;

	if (q == NULL)
		return;
	last = q->partitions - 1;
	if (pk->has_partition) {
		if (pk->partition >= q->partitions) {
			req_send_error(c, f->request_id,
				       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				       "no such partition");
			return;
		}
		first = last = pk->partition;
	}
	if (gather_init(&g, answer_count(c, pk->has_count, pk->count),
			answer_bytes(c)) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	if (gather_partitions(c, &g, q, first, last,
			      pk->has_from_offset ? pk->from_offset : 0,
			      NULL) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	ok.n_messages = g.n;
	ok.messages = g.sp;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_PEEK_OK, &ok);
out:
	gather_fini(&g);
}

void
req_message_show(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__MessageShow *ms = f->message_show;
	Ringmq__MessageShowOk ok = RINGMQ__MESSAGE_SHOW_OK__INIT;
	struct queue *q = req_find_queue(c, f, ms->queue);
	struct store_msg_view v;
	struct gather g;
	int rc;

	if (q == NULL)
		return;
	if (ms->partition >= q->partitions ||
	    read_msg(c, q, ms->partition, ms->offset, &v) < 0) {
		req_send_rc(c, f->request_id, -RMQ_EMESSAGE_NOT_FOUND);
		return;
	}
	if (gather_init(&g, 1, SIZE_MAX) < 0 || (rc = gather_add(&g, &v)) < 1) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	ok.message = g.sp[0];
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_MESSAGE_SHOW_OK, &ok);
out:
	gather_fini(&g);
}

void
req_message_cancel(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__MessageCancel *mc = f->message_cancel;
	struct queue *q = req_find_queue(c, f, mc->queue);
	struct req_ctx *p;
	int rc;

	if (q == NULL || (p = req_new(c, f, 0)) == NULL)
		return;
	rc = queue_cancel(req_env_of(c)->qs, q, mc->partition, mc->offset,
			  req_done, p);
	if (rc < 0) {
		req_drop(p);
		req_send_error(
			c, f->request_id, err_to_wire(rc),
			rc == -RMQ_EINVALID_ARGUMENT
				? "only delayed messages can be cancelled"
				: err_str(rc));
	}
}

/* ----------------------------------------------------------- dead letters */

/* The dead-letter queue of the source queue named in f, or NULL answered. */
static struct queue *
find_dlq(struct conn *c, const Ringmq__Frame *f, const char *source,
	 struct queue **srcp)
{
	struct queue *src = req_find_queue(c, f, source);
	struct queue *dlq;

	if (src == NULL)
		return NULL;
	*srcp = src;
	dlq = queues_find(req_env_of(c)->qs, src->policy.dlq);
	if (dlq == NULL) {
		/* Nothing died yet: an empty answer, not an error. */
		return NULL;
	}
	return dlq;
}

void
req_dead_letter_list(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__DeadLetterList *dl = f->dead_letter_list;
	Ringmq__DeadLetterListOk ok = RINGMQ__DEAD_LETTER_LIST_OK__INIT;
	struct queue *src = NULL;
	struct queue *dlq = find_dlq(c, f, dl->queue, &src);
	struct gather g;

	if (src == NULL)
		return;
	if (gather_init(&g, answer_count(c, dl->has_count, dl->count),
			answer_bytes(c)) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	/* From the position given on, partition by partition. */
	for (uint32_t i = dl->has_from_partition ? dl->from_partition : 0;
	     dlq != NULL && i < dlq->partitions; i++) {
		uint64_t from =
			dl->has_from_offset && (!dl->has_from_partition ||
						i == dl->from_partition)
				? dl->from_offset
				: 0;

		if (gather_partitions(c, &g, dlq, i, i, from, dl->queue) < 0) {
			req_send_rc(c, f->request_id, -ENOMEM);
			goto out;
		}
	}
	ok.n_messages = g.n;
	ok.messages = g.sp;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_DEAD_LETTER_LIST_OK,
		   &ok);
out:
	gather_fini(&g);
}

static void
redriven(void *ctx, int status, size_t n)
{
	struct req_ctx *r = ctx;
	Ringmq__DeadLetterRedriveOk ok = RINGMQ__DEAD_LETTER_REDRIVE_OK__INIT;

	if (conn_unref_live(r->c)) {
		if (status < 0) {
			req_send_rc(r->c, r->request_id, status);
		} else {
			ok.redriven = n;
			req_answer(r->c, r->request_id,
				   RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE_OK,
				   &ok);
		}
	}
	free(r);
}

void
req_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__DeadLetterRedrive *dr = f->dead_letter_redrive;
	struct queue *src = NULL;
	struct queue *dlq = find_dlq(c, f, dr->queue, &src);
	struct req_ctx *r;
	int rc;

	if (src == NULL || (r = req_new(c, f, 0)) == NULL)
		return;
	rc = groups_redrive(req_env_of(c)->gs, src, dlq, dr->group,
			    dr->has_count && dr->count ? dr->count : UINT32_MAX,
			    redriven, r);
	if (rc < 0)
		req_abort(r, rc);
}
