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

static int is_dead_letter_of(const struct store_msg_view *v, const char *source,
			     const char *group);

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
			     !is_dead_letter_of(&v, source, NULL)))
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
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
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
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_PEEK_OK;
	r.peek_ok = &ok;
	(void)req_send(c, &r);
out:
	gather_fini(&g);
}

void
req_message_show(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__MessageShow *ms = f->message_show;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
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
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_MESSAGE_SHOW_OK;
	r.message_show_ok = &ok;
	(void)req_send(c, &r);
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

/* The value of header name of v as a string in buf (cut to fit), or NULL. */
static const char *
view_header(const struct store_msg_view *v, const char *name, char *buf,
	    size_t len)
{
	struct store_header h;
	uint32_t pos = 0;
	size_t nlen = strlen(name);

	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1) {
		if (h.name_len != nlen || memcmp(h.name, name, nlen) != 0)
			continue;
		snprintf(buf, len, "%.*s", (int)h.value_len,
			 (const char *)h.value);
		return buf;
	}
	return NULL;
}

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

/* 1 if v is a dead letter of source (and of group, when given). */
static int
is_dead_letter_of(const struct store_msg_view *v, const char *source,
		  const char *group)
{
	char buf[STORE_NAME_MAX + 8];

	if (view_header(v, "ringmq-source-queue", buf, sizeof(buf)) == NULL ||
	    strcmp(buf, source) != 0)
		return 0;
	if (group != NULL &&
	    (view_header(v, "ringmq-source-group", buf, sizeof(buf)) == NULL ||
	     strcmp(buf, group) != 0))
		return 0;
	return 1;
}

void
req_dead_letter_list(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__DeadLetterList *dl = f->dead_letter_list;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
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
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_LIST_OK;
	r.dead_letter_list_ok = &ok;
	(void)req_send(c, &r);
out:
	gather_fini(&g);
}

struct redrive_req {
	struct conn *c;
	uint64_t request_id;
	struct queues *qs;
	uint32_t src_qid; /* counted in its pending publishes meanwhile */
	uint64_t bytes;	  /* message bytes redriven */
	size_t n;
	struct queue_staged st[];
};

static void
redrive_done(void *arg, int status)
{
	struct redrive_req *r = arg;
	struct queue *src = queues_find_id(r->qs, r->src_qid);
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__DeadLetterRedriveOk ok = RINGMQ__DEAD_LETTER_REDRIVE_OK__INIT;

	if (src != NULL) {
		src->pending_ops--;
		src->pending_msgs -= r->n;
		src->pending_bytes -= r->bytes;
	}
	for (size_t i = 0; i < r->n; i++)
		queue_staged_done(r->qs, &r->st[i], status);
	if (conn_unref_live(r->c)) {
		if (status < 0) {
			req_send_rc(r->c, r->request_id, status);
		} else {
			ok.redriven = r->n;
			f.has_request_id = 1;
			f.request_id = r->request_id;
			f.body_case =
				RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE_OK;
			f.dead_letter_redrive_ok = &ok;
			(void)req_send(r->c, &f);
		}
	}
	free(r);
}

/* 1 when dead letter v has a group of src to go back to (its name into
 * group), 0 when not (that group is gone, or v was corrupt). */
static int
redrive_group(struct queue *src, const struct store_msg_view *v, char *group,
	      size_t size)
{
	return view_header(v, "ringmq-source-group", group, size) != NULL &&
	       group[0] != '\0' && groups_exists(src, group);
}

/* Stages dead letter v of dlq for its source queue src, visible only to
 * the group it died in, and removes it from dlq; all into b.
 * @return 1 redriven, 0 skipped (its group is gone, or corrupt), <0. */
static int
redrive_one(struct req_env *env, struct queue *src, struct queue *dlq,
	    const struct store_msg_view *v, struct store_batch *b,
	    struct queue_staged *st)
{
	char group[STORE_NAME_MAX + 8], num[24];
	struct store_header *h = NULL, one;
	struct store_msg sm;
	uint32_t pos = 0, nh = 0;
	int part = -1, rc;

	if (!redrive_group(src, v, group, sizeof(group)))
		return 0;
	if (view_header(v, "ringmq-source-partition", num, sizeof(num)) &&
	    (uint32_t)atoi(num) < src->partitions)
		part = atoi(num);
	h = calloc(v->headers_len / 6 + 1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	/* The ringmq-* headers were the broker's: the message goes back as it
	 * was published. */
	while (store_headers_next(v->headers, v->headers_len, &pos, &one) == 1)
		if (one.name_len < 7 || memcmp(one.name, "ringmq-", 7) != 0)
			h[nh++] = one;
	memset(&sm, 0, sizeof(sm));
	sm.is_private = 1; /* only the group it died in sees it */
	sm.publish_ms = clock_wall_ms();
	sm.key = v->key;
	sm.key_len = v->key_len;
	sm.headers = h;
	sm.header_count = nh;
	sm.payload = v->payload;
	sm.payload_len = v->payload_len;
	rc = queue_stage(env->qs, src, part, &sm, b, st);
	if (rc == 0)
		rc = groups_hide_offset(env->gs, src, st->partition, st->offset,
					group);
	if (rc == 0)
		rc = queue_drop_msg(dlq, v->partition, v->offset, b);
	free(h);
	return rc < 0 ? rc : 1;
}

void
req_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__DeadLetterRedrive *dr = f->dead_letter_redrive;
	struct req_env *env = req_env_of(c);
	struct queue *src = NULL;
	struct queue *dlq = find_dlq(c, f, dr->queue, &src);
	uint32_t max = dr->has_count && dr->count ? dr->count : UINT32_MAX;
	struct store_batch *b = NULL;
	struct redrive_req *r = NULL;
	uint64_t depth, bytes;
	bool is_full = false;
	size_t cap = 0;

	if (src == NULL)
		return;
	/* The copies count toward the source queue's limits like any
	 * publish: redriving stops at the first that does not fit. */
	queue_fill(src, &depth, &bytes);
	if (dlq != NULL)
		for (uint32_t i = 0; i < dlq->partitions; i++)
			cap += dlq->parts[i].count;
	if (cap > max)
		cap = max;
	b = store_batch_new(0);
	r = calloc(1, sizeof(*r) + (cap + 1) * sizeof(r->st[0]));
	if (b == NULL || r == NULL)
		goto oom;
	for (uint32_t i = 0;
	     dlq && i < dlq->partitions && r->n < cap && !is_full; i++) {
		const struct partition *p = &dlq->parts[i];

		for (uint64_t off = partition_next(p, 0);
		     off != UINT64_MAX && r->n < cap;
		     off = partition_next(p, off + 1)) {
			char group[STORE_NAME_MAX + 8];
			struct store_msg_view v;
			int rc;

			if (read_msg(c, dlq, i, off, &v) < 0 ||
			    !is_dead_letter_of(&v, dr->queue, dr->group) ||
			    !redrive_group(src, &v, group, sizeof(group)))
				continue;
			/* The view's size counts the ringmq-* headers the
			 * copy drops: checked a little high, counted exact. */
			if (queue_is_over(src, depth, bytes,
					  store_msg_view_bytes(&v))) {
				is_full = true;
				break;
			}
			rc = redrive_one(env, src, dlq, &v, b, &r->st[r->n]);
			if (rc < 0)
				goto oom;
			if (rc == 1) {
				depth++;
				bytes += r->st[r->n].msg_bytes;
				r->bytes += r->st[r->n].msg_bytes;
			}
			r->n += (size_t)rc;
		}
	}
	if (r->n == 0 && is_full) {
		store_batch_free(b);
		free(r);
		req_send_rc(c, f->request_id, -RMQ_EQUEUE_FULL);
		return;
	}
	r->c = c;
	r->request_id = f->request_id;
	r->qs = env->qs;
	r->src_qid = src->qid;
	src->pending_ops++;
	src->pending_msgs += r->n;
	src->pending_bytes += r->bytes;
	conn_ref(c);
	if (r->n > 0)
		log_info("queue %s: redriving %zu dead letters", src->name,
			 r->n);
	store_submit(env->store, b, redrive_done, r);
	return;
oom:
	/* Anything staged is dropped: its offsets stay holes. */
	store_batch_free(b);
	free(r);
	req_send_rc(c, f->request_id, -ENOMEM);
}
