/*
 * admin: see admin.h.
 */
#include "req/admin.h"

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
#include "lib/stats.h"
#include "net/conn.h"
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
	return conn_env_of(c)->cfg->max_frame_bytes / 2;
}

static uint32_t
answer_count(struct conn *c, int has_count, uint32_t count)
{
	uint32_t max = conn_env_of(c)->cfg->max_batch_count;

	if (!has_count || count == 0)
		return PEEK_DEFAULT < max ? PEEK_DEFAULT : max;
	return count < max ? count : max;
}

static struct queue *
find_queue(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	struct queue *q = queues_find(conn_env_of(c)->qs, name);

	if (q == NULL || q->is_pending) {
		conn_send_rc(c, f->request_id, -RMQ_EQUEUE_NOT_FOUND);
		return NULL;
	}
	return q;
}

/* Reads (q, part, off) into v; logs and skips what cannot be read. */
static int
read_msg(struct conn *c, struct queue *q, uint32_t part, uint64_t off,
	 struct store_msg_view *v)
{
	int rc = store_msg_get(conn_env_of(c)->store, q->qid, part, off, v);

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
admin_peek(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__Peek *pk = f->peek;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__PeekOk ok = RINGMQ__PEEK_OK__INIT;
	struct queue *q = find_queue(c, f, pk->queue);
	struct gather g;
	uint32_t first = 0, last;

	if (q == NULL)
		return;
	last = q->partitions - 1;
	if (pk->has_partition) {
		if (pk->partition >= q->partitions) {
			conn_send_error(c, f->request_id,
					RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
					"no such partition");
			return;
		}
		first = last = pk->partition;
	}
	if (gather_init(&g, answer_count(c, pk->has_count, pk->count),
			answer_bytes(c)) < 0) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	if (gather_partitions(c, &g, q, first, last,
			      pk->has_from_offset ? pk->from_offset : 0,
			      NULL) < 0) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	ok.n_messages = g.n;
	ok.messages = g.sp;
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_PEEK_OK;
	r.peek_ok = &ok;
	(void)conn_send(c, &r);
out:
	gather_fini(&g);
}

void
admin_message_show(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__MessageShow *ms = f->message_show;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__MessageShowOk ok = RINGMQ__MESSAGE_SHOW_OK__INIT;
	struct queue *q = find_queue(c, f, ms->queue);
	struct store_msg_view v;
	struct gather g;
	int rc;

	if (q == NULL)
		return;
	if (ms->partition >= q->partitions ||
	    read_msg(c, q, ms->partition, ms->offset, &v) < 0) {
		conn_send_rc(c, f->request_id, -RMQ_EMESSAGE_NOT_FOUND);
		return;
	}
	if (gather_init(&g, 1, SIZE_MAX) < 0 || (rc = gather_add(&g, &v)) < 1) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	ok.message = g.sp[0];
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_MESSAGE_SHOW_OK;
	r.message_show_ok = &ok;
	(void)conn_send(c, &r);
out:
	gather_fini(&g);
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
	struct queue *src = find_queue(c, f, source);
	struct queue *dlq;

	if (src == NULL)
		return NULL;
	*srcp = src;
	dlq = queues_find(conn_env_of(c)->qs, src->policy.dlq);
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
admin_dead_letter_list(struct conn *c, const Ringmq__Frame *f)
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
		conn_send_rc(c, f->request_id, -ENOMEM);
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
			conn_send_rc(c, f->request_id, -ENOMEM);
			goto out;
		}
	}
	ok.n_messages = g.n;
	ok.messages = g.sp;
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_LIST_OK;
	r.dead_letter_list_ok = &ok;
	(void)conn_send(c, &r);
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
			conn_send_rc(r->c, r->request_id, status);
		} else {
			ok.redriven = r->n;
			f.has_request_id = 1;
			f.request_id = r->request_id;
			f.body_case =
				RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE_OK;
			f.dead_letter_redrive_ok = &ok;
			(void)conn_send(r->c, &f);
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
redrive_one(struct conn_env *env, struct queue *src, struct queue *dlq,
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
admin_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__DeadLetterRedrive *dr = f->dead_letter_redrive;
	struct conn_env *env = conn_env_of(c);
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
		conn_send_rc(c, f->request_id, -RMQ_EQUEUE_FULL);
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
	conn_send_rc(c, f->request_id, -ENOMEM);
}

/* ------------------------------------------------------ queues, groups */

/* A context for request f (conn_req_new), extra bytes past it; answers
 * ENOMEM itself when there is no memory. */
static struct conn_req *
admin_req_new(struct conn *c, const Ringmq__Frame *f, size_t extra)
{
	struct conn_req *r = conn_req_new(c, f, extra);

	if (r == NULL)
		conn_send_rc(c, f->request_id, -ENOMEM);
	return r;
}

static void
admin_req_abort(struct conn_req *r, int rc)
{
	(void)conn_unref_live(r->c);
	conn_send_rc(r->c, r->request_id, rc);
	free(r);
}

void
admin_queue_delete(struct conn *c, const Ringmq__Frame *f)
{
	struct conn_env *env = conn_env_of(c);
	struct queue *q = find_queue(c, f, f->queue_delete->name);
	struct conn_req *r;
	int rc;

	if (q == NULL || (r = admin_req_new(c, f, 0)) == NULL)
		return;
	if (q->pending_ops > 0) {
		/* Publishes in flight would land after the delete. */
		admin_req_abort(r, -RMQ_EINVALID_ARGUMENT);
		return;
	}
	groups_drop_queue(env->gs, q);
	rc = queue_delete(env->qs, q, conn_req_done, r);
	if (rc < 0)
		admin_req_abort(r, rc);
}

struct purge_req {
	struct conn_req r;
	uint64_t purged;
};

static void
purged(void *ctx, int status)
{
	struct purge_req *p = ctx;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__PurgeOk ok = RINGMQ__PURGE_OK__INIT;

	if (conn_unref_live(p->r.c)) {
		if (status < 0) {
			conn_send_rc(p->r.c, p->r.request_id, status);
		} else {
			ok.purged = p->purged;
			f.has_request_id = 1;
			f.request_id = p->r.request_id;
			f.body_case = RINGMQ__FRAME__BODY_PURGE_OK;
			f.purge_ok = &ok;
			(void)conn_send(p->r.c, &f);
		}
	}
	free(p);
}

void
admin_purge(struct conn *c, const Ringmq__Frame *f)
{
	struct queue *q = find_queue(c, f, f->purge->queue);
	struct purge_req *p;
	int rc;

	if (q == NULL)
		return;
	p = (struct purge_req *)admin_req_new(c, f, sizeof(*p) - sizeof(p->r));
	if (p == NULL)
		return;
	rc = groups_purge_queue(conn_env_of(c)->gs, q, purged, p, &p->purged);
	if (rc < 0) {
		(void)conn_unref_live(c);
		conn_send_rc(c, f->request_id, rc);
		free(p);
	}
}

static int
check_group_name(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	if (queue_name_valid(name))
		return 0;
	conn_send_error(c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			"group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}");
	return -1;
}

void
admin_group_create(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupCreate *gc = f->group_create;
	struct queue *q = find_queue(c, f, gc->queue);
	struct conn_req *r;
	int rc;

	if (q == NULL || check_group_name(c, f, gc->group) < 0 ||
	    (r = admin_req_new(c, f, 0)) == NULL)
		return;
	rc = groups_create_named(
		conn_env_of(c)->gs, q, gc->group,
		gc->has_start && gc->start == RINGMQ__START_POSITION__LATEST,
		conn_req_done, r);
	if (rc == 1) {
		(void)conn_unref_live(c);
		free(r);
		conn_send_done(c, f->request_id);
	} else if (rc < 0) {
		admin_req_abort(r, rc);
	}
}

void
admin_group_delete(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupDelete *gd = f->group_delete;
	struct queue *q = find_queue(c, f, gd->queue);
	struct conn_req *r;
	int rc;

	if (q == NULL || (r = admin_req_new(c, f, 0)) == NULL)
		return;
	rc = groups_delete_named(conn_env_of(c)->gs, q, gd->group,
				 conn_req_done, r);
	if (rc < 0)
		admin_req_abort(r, rc);
}

void
admin_group_reset(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupReset *gr = f->group_reset;
	struct queue *q = find_queue(c, f, gr->queue);
	struct conn_req *r;
	int rc;

	if (q == NULL || (r = admin_req_new(c, f, 0)) == NULL)
		return;
	rc = groups_reset_named(
		conn_env_of(c)->gs, q, gr->group,
		gr->has_start && gr->start == RINGMQ__START_POSITION__LATEST,
		conn_req_done, r);
	if (rc < 0)
		admin_req_abort(r, rc);
}

/* GroupInfo frames for the groups of one or more queues. */
struct infos {
	Ringmq__GroupInfo *gi; /* owned [cap] */
	Ringmq__GroupInfo **gp;
	uint64_t *floors; /* owned: partitions x cap */
	size_t n, cap;
	const struct queue *q;
	const char *only; /* a group name, or NULL for all */
};

static void
info_one(void *ctx, const struct group *g)
{
	struct infos *in = ctx;
	Ringmq__GroupInfo *gi;
	struct group_info x;

	if (in->n == in->cap ||
	    (in->only != NULL && strcmp(group_name(g), in->only) != 0))
		return;
	gi = &in->gi[in->n];
	ringmq__group_info__init(gi);
	gi->ack_floor = &in->floors[in->n * QUEUE_MAX_PARTITIONS];
	group_info(g, &x, gi->ack_floor);
	gi->queue = (char *)in->q->name;
	gi->name = (char *)group_name(g);
	gi->ready = x.ready;
	gi->in_flight = x.in_flight;
	gi->lag = x.lag;
	gi->consumers = x.consumers;
	gi->n_ack_floor = in->q->partitions;
	in->gp[in->n++] = gi;
}

static size_t
count_groups(struct queue *q)
{
	uint64_t ready, in_flight, retrying;
	uint32_t n;

	groups_queue_counts(q, &ready, &in_flight, &retrying, &n);
	return n;
}

static int
infos_init(struct infos *in, size_t cap)
{
	memset(in, 0, sizeof(*in));
	in->cap = cap;
	in->gi = calloc(cap + 1, sizeof(*in->gi));
	in->gp = calloc(cap + 1, sizeof(*in->gp));
	in->floors =
		calloc((cap + 1) * QUEUE_MAX_PARTITIONS, sizeof(*in->floors));
	return in->gi && in->gp && in->floors ? 0 : -ENOMEM;
}

static void
infos_fini(struct infos *in)
{
	free(in->gi);
	free(in->gp);
	free(in->floors);
}

struct list_all {
	struct infos *in;
};

static void
list_queue_groups(void *ctx, struct queue *q)
{
	struct infos *in = ctx;

	if (q->is_pending)
		return;
	in->q = q;
	groups_each(q, info_one, in);
}

static void
count_all(void *ctx, struct queue *q)
{
	*(size_t *)ctx += count_groups(q);
}

void
admin_group_list(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupList *gl = f->group_list;
	struct conn_env *env = conn_env_of(c);
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__GroupListOk ok = RINGMQ__GROUP_LIST_OK__INIT;
	struct queue *q = NULL;
	struct infos in;
	size_t n = 0;

	if (gl->queue != NULL && (q = find_queue(c, f, gl->queue)) == NULL)
		return;
	if (q != NULL)
		n = count_groups(q);
	else
		queues_each(env->qs, count_all, &n);
	if (infos_init(&in, n) < 0) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	if (q != NULL)
		list_queue_groups(&in, q);
	else
		queues_each(env->qs, list_queue_groups, &in);
	ok.n_groups = in.n;
	ok.groups = in.gp;
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_GROUP_LIST_OK;
	r.group_list_ok = &ok;
	(void)conn_send(c, &r);
out:
	infos_fini(&in);
}

void
admin_group_describe(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupDescribe *gd = f->group_describe;
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__GroupDescribeOk ok = RINGMQ__GROUP_DESCRIBE_OK__INIT;
	struct queue *q = find_queue(c, f, gd->queue);
	struct infos in;

	if (q == NULL)
		return;
	if (infos_init(&in, 1) < 0) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	in.only = gd->group;
	list_queue_groups(&in, q);
	if (in.n == 0) {
		conn_send_rc(c, f->request_id, -RMQ_EGROUP_NOT_FOUND);
		goto out;
	}
	ok.group = in.gp[0];
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK;
	r.group_describe_ok = &ok;
	(void)conn_send(c, &r);
out:
	infos_fini(&in);
}

/* Fills qi with q's counters (pointers into q and pol/dlq buffers). */
static void
queue_info_fill(struct queue *q, Ringmq__QueueInfo *qi,
		Ringmq__QueuePolicy *pol)
{
	uint64_t retrying;

	ringmq__queue_info__init(qi);
	ringmq__queue_policy__init(pol);
	qi->name = q->name;
	qi->partitions = q->partitions;
	groups_queue_counts(q, &qi->ready, &qi->in_flight, &retrying,
			    &qi->groups);
	queue_totals(q, &qi->messages, &qi->bytes, &qi->delayed);
	qi->delayed += retrying;
	qi->has_published_total = qi->has_delivered_total = 1;
	qi->has_acked_total = 1;
	qi->published_total = q->counters.published;
	qi->delivered_total = q->counters.delivered;
	qi->acked_total = q->counters.acked;
	pol->has_lease_ms = pol->has_max_lease_ms = 1;
	pol->has_max_deliveries = pol->has_max_depth = 1;
	pol->has_max_bytes = pol->has_dedup_window_ms = 1;
	pol->lease_ms = q->policy.lease_ms;
	pol->max_lease_ms = q->policy.max_lease_ms;
	pol->max_deliveries = q->policy.max_deliveries;
	pol->max_depth = q->policy.max_depth;
	pol->max_bytes = q->policy.max_bytes;
	pol->dedup_window_ms = q->policy.dedup_window_ms;
	pol->dead_letter_queue = q->policy.dlq;
	qi->policy = pol;
}

void
admin_queue_describe(struct conn *c, const Ringmq__Frame *f)
{
	struct conn_env *env = conn_env_of(c);
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__QueueDescribeOk ok = RINGMQ__QUEUE_DESCRIBE_OK__INIT;
	Ringmq__QueueInfo qi;
	Ringmq__QueuePolicy pol;
	struct queue *q = find_queue(c, f, f->queue_describe->name);
	Ringmq__PartitionInfo *pi = NULL;
	Ringmq__PartitionInfo **pp = NULL;
	struct infos in;

	if (q == NULL)
		return;
	memset(&in, 0, sizeof(in));
	pi = calloc(q->partitions, sizeof(*pi));
	pp = calloc(q->partitions, sizeof(*pp));
	if (pi == NULL || pp == NULL || infos_init(&in, count_groups(q)) < 0) {
		conn_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	queue_info_fill(q, &qi, &pol);
	for (uint32_t i = 0; i < q->partitions; i++) {
		const struct partition *p = &q->parts[i];
		uint64_t first = partition_next(p, p->base);
		struct store_msg_view v;

		ringmq__partition_info__init(&pi[i]);
		pi[i].partition = i;
		pi[i].messages = p->count - p->acked_count;
		pi[i].bytes = p->bytes - p->acked_bytes;
		pi[i].first_offset =
			first == UINT64_MAX ? p->committed_next : first;
		pi[i].next_offset = p->next_offset;
		if (first != UINT64_MAX &&
		    store_msg_get(env->store, q->qid, i, first, &v) == 0) {
			pi[i].has_oldest_publish_ms = 1;
			pi[i].oldest_publish_ms = v.publish_ms;
		}
		pp[i] = &pi[i];
	}
	list_queue_groups(&in, q);
	ok.queue = &qi;
	ok.n_partitions = q->partitions;
	ok.partitions = pp;
	ok.n_groups = in.n;
	ok.groups = in.gp;
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_QUEUE_DESCRIBE_OK;
	r.queue_describe_ok = &ok;
	(void)conn_send(c, &r);
out:
	free(pi);
	free(pp);
	infos_fini(&in);
}

/* ---------------------------------------------------------------- stats */

struct totals {
	uint64_t queues, groups, messages, bytes, delayed, ready, in_flight;
};

static void
add_totals(void *ctx, struct queue *q)
{
	struct totals *t = ctx;
	uint64_t m, b, d, r, i, w;
	uint32_t g;

	queue_totals(q, &m, &b, &d);
	groups_queue_counts(q, &r, &i, &w, &g);
	d += w;
	t->queues++;
	t->groups += g;
	t->messages += m;
	t->bytes += b;
	t->delayed += d;
	t->ready += r;
	t->in_flight += i;
}

void
admin_stats(struct conn *c, const Ringmq__Frame *f)
{
	struct conn_env *env = conn_env_of(c);
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__StatsOk ok = RINGMQ__STATS_OK__INIT;
	struct totals t = { 0 };
	struct queue_counters counted;
	uint64_t used, map;
	struct {
		const char *name;
		double value;
	} rows[] = {
		{ "connections", (double)env->count },
		{ "queues", 0 },
		{ "groups", 0 },
		{ "messages", 0 },
		{ "message_bytes", 0 },
		{ "ready", 0 },
		{ "delayed", 0 },
		{ "in_flight", 0 },
		{ "storage_used_bytes", 0 },
		{ "storage_limit_bytes", 0 },
		{ "uptime_ms", 0 },
		{ "published_total", 0 },
		{ "delivered_total", 0 },
		{ "acked_total", 0 },
	};
	enum { NROWS = sizeof(rows) / sizeof(rows[0]) };
	Ringmq__Stat st[NROWS];
	Ringmq__Stat *sp[NROWS];

	queues_each(env->qs, add_totals, &t);
	store_usage(env->store, &used, &map);
	rows[1].value = (double)t.queues;
	rows[2].value = (double)t.groups;
	rows[3].value = (double)t.messages;
	rows[4].value = (double)t.bytes;
	rows[5].value = (double)t.ready;
	rows[6].value = (double)t.delayed;
	rows[7].value = (double)t.in_flight;
	rows[8].value = (double)used;
	rows[9].value = (double)map;
	rows[10].value = (double)(clock_mono_ms() - env->stats->start_ms);
	queues_counter_totals(env->qs, &counted);
	rows[11].value = (double)counted.published;
	rows[12].value = (double)counted.delivered;
	rows[13].value = (double)counted.acked;
	for (size_t i = 0; i < NROWS; i++) {
		ringmq__stat__init(&st[i]);
		st[i].name = (char *)rows[i].name;
		st[i].value = rows[i].value;
		sp[i] = &st[i];
	}
	ok.n_stats = NROWS;
	ok.stats = sp;
	r.has_request_id = 1;
	r.request_id = f->request_id;
	r.body_case = RINGMQ__FRAME__BODY_STATS_OK;
	r.stats_ok = &ok;
	(void)conn_send(c, &r);
}

/* --------------------------------------------------------------- backup */

struct backup_req {
	struct conn_req r;
	uint64_t bytes; /* written by the store's backup thread */
};

/* The code for a failed backup: the path's fault, the disk's, or ours. */
static Ringmq__ErrorCode
backup_error_code(int status)
{
	switch (status) {
	case -ENOENT:
	case -ENOTDIR:
	case -EISDIR:
	case -EEXIST:
	case -EACCES:
	case -EPERM:
	case -EROFS:
	case -ENAMETOOLONG: return RINGMQ__ERROR_CODE__INVALID_ARGUMENT;
	case -ENOSPC:
	case -EDQUOT:
	case -RMQ_ESTORAGE_FULL: return RINGMQ__ERROR_CODE__STORAGE_FULL;
	default: return RINGMQ__ERROR_CODE__INTERNAL;
	}
}

static void
backed_up(void *ctx, int status)
{
	struct backup_req *b = ctx;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__BackupOk ok = RINGMQ__BACKUP_OK__INIT;

	if (conn_unref_live(b->r.c)) {
		if (status < 0) {
			conn_send_error(b->r.c, b->r.request_id,
					backup_error_code(status),
					err_str(status));
		} else {
			ok.bytes = b->bytes;
			f.has_request_id = 1;
			f.request_id = b->r.request_id;
			f.body_case = RINGMQ__FRAME__BODY_BACKUP_OK;
			f.backup_ok = &ok;
			(void)conn_send(b->r.c, &f);
		}
	}
	free(b);
}

void
admin_backup(struct conn *c, const Ringmq__Frame *f)
{
	const char *path = f->backup->path;
	struct backup_req *b;
	int rc;

	if (path[0] != '/') {
		conn_send_error(c, f->request_id,
				RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				"the backup path must be absolute (a directory "
				"on the broker's host)");
		return;
	}
	b = (struct backup_req *)admin_req_new(c, f, sizeof(*b) - sizeof(b->r));
	if (b == NULL)
		return;
	rc = store_backup(conn_env_of(c)->store, path, &b->bytes, backed_up, b);
	if (rc < 0) {
		(void)conn_unref_live(c);
		free(b);
		conn_send_error(
			c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			rc == -EBUSY	? "a backup is already running"
			: rc == -EEXIST ? "the directory already holds data"
					: err_str(rc));
	}
}
