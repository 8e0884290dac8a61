/*
 * deadletter: a message that failed max_deliveries times (or whose record
 * failed its checksum) leaves its group for the queue's dead-letter queue,
 * as a private copy only that group's failure put there: the copy carries
 * the ringmq-* headers that say where it came from and why
 * (queue_dlq_headers), and is staged in the groups' next flush with the
 * group's ack of the original, so both commit together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/group_int.h"
#include "core/lease.h"
#include "core/queue.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/vec.h"

/* The most of a nack's reason a dead letter keeps, in bytes. */
#define DEAD_LETTER_ERROR_MAX 1024

/* A new message of stored message v's key and payload, with headers h
 * (nh of them), published now. */
static void
copy_of(struct store_msg *sm, const struct store_msg_view *v,
	const struct store_header *h, uint32_t nh)
{
	memset(sm, 0, sizeof(*sm));
	sm->publish_ms = clock_wall_ms();
	sm->key = v->key;
	sm->key_len = v->key_len;
	sm->headers = h;
	sm->header_count = nh;
	sm->payload = v->payload;
	sm->payload_len = v->payload_len;
}

static int
stage_add(struct groups *gs, const struct queue_staged *st)
{
	struct queue_staged *v = vec_grow(gs->staged, &gs->capstaged,
					  gs->nstaged + 1, sizeof(*v), 8);

	if (v == NULL)
		return -ENOMEM;
	gs->staged = v;
	gs->staged[gs->nstaged++] = *st;
	return 0;
}

/* The dead-letter queue of q, created on demand into b; NULL if q would
 * dead-letter into itself or memory ran out. */
static struct queue *
dlq_of(struct groups *gs, struct queue *q, struct store_batch *b)
{
	char name[STORE_NAME_MAX + 16];

	if (q->policy.dlq[0] != '\0')
		snprintf(name, sizeof(name), "%s", q->policy.dlq);
	else
		snprintf(name, sizeof(name), "%s.dlq", q->name);
	if (strcmp(name, q->name) == 0 || !queue_ref_valid(name))
		return NULL;
	return queue_ensure(gs->qs, name, b);
}

/*
 * Adds to the next flush a copy of message v of (q, part, offset) for q's
 * dead-letter queue, with the ringmq-* headers. The caller then submits
 * the flush, so the dead-letter queue's offsets commit in order.
 * @return 0, or -1 if it could not (the caller keeps the message).
 */
static int
dead_letter(struct groups *gs, struct queue *q, const char *group,
	    uint32_t part, uint64_t offset, const struct store_msg_view *v,
	    const char *reason, uint32_t count, uint64_t first_ms,
	    uint64_t last_ms, const char *last_error)
{
	struct store_batch *b = flush_batch(gs);
	struct store_header *h = NULL;
	struct store_header one;
	struct queue_staged st;
	struct store_msg sm;
	struct queue *dlq = NULL;
	char buf[5][24];
	uint32_t pos = 0, nh = 0;
	int rc = -1;

	if (b != NULL)
		dlq = dlq_of(gs, q, b);
	if (dlq == NULL)
		goto out;
	while (store_headers_next(v->headers, v->headers_len, &pos, &one) == 1)
		nh++;
	h = calloc(nh + QUEUE_DLQ_HEADERS + 1, sizeof(*h));
	if (h == NULL)
		goto out;
	pos = 0;
	for (uint32_t i = 0; i < nh; i++)
		(void)store_headers_next(v->headers, v->headers_len, &pos,
					 &h[i]);
	nh += queue_dlq_headers(h + nh, buf, reason, q, group, part, offset,
				count, first_ms, last_ms);
	if (last_error != NULL) {
		h[nh].name = "ringmq-last-error";
		h[nh].name_len = (uint32_t)strlen(h[nh].name);
		h[nh].value = last_error;
		h[nh].value_len =
			(uint32_t)strnlen(last_error, DEAD_LETTER_ERROR_MAX);
		nh++;
	}
	copy_of(&sm, v, h, nh);
	if (queue_stage(gs->qs, dlq, -1, &sm, b, &st) < 0 ||
	    stage_add(gs, &st) < 0)
		goto out;
	q->counters.dead_lettered++;
	log_info("queue %s partition %u offset %llu: dead-lettered to %s "
		 "(%s%s%s)",
		 q->name, part, (unsigned long long)offset, dlq->name, reason,
		 group[0] ? ", group " : "", group);
	rc = 0;
out:
	free(h);
	if (rc < 0)
		log_error("queue %s partition %u offset %llu: cannot "
			  "dead-letter (%s)",
			  q->name, part, (unsigned long long)offset, reason);
	return rc;
}

int
corrupt_add(struct groups *gs, uint32_t qid, uint32_t part, uint64_t offset)
{
	struct corrupt *v = vec_grow(gs->corrupt, &gs->capcorrupt,
				     gs->ncorrupt + 1, sizeof(*v), 8);

	if (v == NULL)
		return -ENOMEM;
	gs->corrupt = v;
	gs->corrupt[gs->ncorrupt++] = (struct corrupt){ qid, part, offset };
	return 0;
}

static int
corrupt_seen(const struct groups *gs, uint32_t qid, uint32_t part,
	     uint64_t offset)
{
	for (size_t i = 0; i < gs->ncorrupt; i++)
		if (gs->corrupt[i].qid == qid && gs->corrupt[i].part == part &&
		    gs->corrupt[i].offset == offset)
			return 1;
	return 0;
}

/* Dead-letters record (q, part, offset), which failed its CRC, once for
 * the queue: the bytes as stored, reason "corrupt", no source group. */
void
corrupt_dead_letter(struct groups *gs, struct queue *q, uint32_t part,
		    uint64_t offset)
{
	const struct store_failure marker = { .failures = 1 };
	struct store_msg_view v;
	struct store_batch *b;
	const void *raw;
	size_t len;

	if (corrupt_seen(gs, q->qid, part, offset))
		return;
	if (store_msg_get_raw(gs->store, q->qid, part, offset, &raw, &len) <
		    0 ||
	    len > UINT32_MAX)
		return;
	memset(&v, 0, sizeof(v));
	v.partition = part;
	v.offset = offset;
	v.payload = raw;
	v.payload_len = (uint32_t)len;
	if (dead_letter(gs, q, "", part, offset, &v, "corrupt", 0, 0, 0, NULL) <
	    0)
		return;
	b = flush_batch(gs);
	if (b == NULL ||
	    store_batch_put_failure(b, q->qid, CORRUPT_GID, part, offset,
				    &marker) < 0 ||
	    corrupt_add(gs, q->qid, part, offset) < 0)
		log_error("queue %s partition %u offset %llu: cannot record "
			  "the corrupt dead letter",
			  q->name, part, (unsigned long long)offset);
	groups_flush(gs);
}

/* Room a dead letter takes beyond its message's payload, headers and
 * key: the ringmq-* headers, the record's framing, a share of a page. */
#define DEAD_LETTER_EXTRA_BYTES 1024

/* Dead-letters message offset of gp's group, which failed count times
 * (first_ms, last_ms: its first and last delivery). @return 0 when staged
 * (the caller acks it, in the same flush), -ENOSPC without room for the
 * copy, -1 when it cannot otherwise (the caller keeps the message). */
static int
gpart_dead_letter(struct groups *gs, struct gpart *gp, uint64_t offset,
		  uint32_t count, uint64_t first_ms, uint64_t last_ms,
		  const char *last_error)
{
	struct group *g = gp->g;
	struct store_msg_view v;
	uint64_t need;

	if (store_msg_get(gs->store, g->q->qid, gp->index, offset, &v) < 0)
		return -1; /* dispatch's unreadable-record path deals with it */
	/* The copy grows the data like a publish. Without room for it the
	 * commit would fail after the group acked the message in memory,
	 * and a later flush would write that ack: the message would be lost.
	 * It waits in the queue instead, held, until there is room. */
	need = (uint64_t)v.payload_len + v.headers_len + v.key_len +
	       DEAD_LETTER_EXTRA_BYTES +
	       (last_error ? strnlen(last_error, DEAD_LETTER_ERROR_MAX) : 0);
	if (store_grow_room(gs->store) <
	    (int64_t)(gs->dead_letter_room + need)) {
		if (!gs->is_dead_letter_held_logged)
			log_warn("queue %s partition %u offset %llu: storage "
				 "full: not dead-lettered yet, held in the "
				 "queue until there is room (further ones are "
				 "not logged until a dead letter goes through)",
				 g->q->name, gp->index,
				 (unsigned long long)offset);
		gs->is_dead_letter_held_logged = true;
		return -ENOSPC;
	}
	gs->is_dead_letter_held_logged = false;
	if (dead_letter(gs, g->q, g->name, gp->index, offset, &v,
			"max_deliveries", count, first_ms, last_ms,
			last_error) < 0)
		return -1;
	gs->dead_letter_room += need;
	gs->staged_room += need;
	return 0;
}

/* The failed lease l reached max deliveries: dead-letter its message for
 * its group, as gpart_dead_letter. */
int
lease_dead_letter(struct groups *gs, struct lease *l, struct gpart *gp,
		  const char *last_error)
{
	struct failrec *fr = fail_find(gp, l->offset);

	return gpart_dead_letter(gs, gp, l->offset, l->delivery_count,
				 fr ? fr->f.first_delivery_ms
				    : l->delivered_wall_ms,
				 l->delivered_wall_ms, last_error);
}

/* A held message that has failed max_deliveries times waits for room for
 * its dead letter, not for a delivery (it runs no more than that): tries
 * the dead letter again. @return 1 when done with it (dead-lettered, or
 * held again), 0 when it is to be ready again. */
int
held_dead_letter(struct groups *gs, struct gpart *gp, uint64_t offset)
{
	uint32_t max = gp->g->q->policy.max_deliveries;
	struct failrec *fr = fail_find(gp, offset);
	int rc;

	if (max == 0 || fr == NULL || fr->f.failures < max)
		return 0;
	/* The nack's reason was not kept: the dead letter goes without it. */
	rc = gpart_dead_letter(gs, gp, offset, fr->f.failures,
			       fr->f.first_delivery_ms, fr->f.last_delivery_ms,
			       NULL);
	if (rc == 0) {
		gpart_ack(gs, gp, offset);
		groups_flush(gs);
		return 1;
	}
	return rc == -ENOSPC &&
	       gpart_hold(gs, gp, offset, DEAD_LETTER_RETRY_MS) == 0;
}

/* ------------------------------------------------------------- reading */

const char *
dead_letter_header(const struct store_msg_view *v, const char *name, char *buf,
		   size_t size)
{
	struct store_header h;
	uint32_t pos = 0;
	size_t nlen = strlen(name);

	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1) {
		if (h.name_len != nlen || memcmp(h.name, name, nlen) != 0)
			continue;
		snprintf(buf, size, "%.*s", (int)h.value_len,
			 (const char *)h.value);
		return buf;
	}
	return NULL;
}

int
dead_letter_is_of(const struct store_msg_view *v, const char *source,
		  const char *group)
{
	char buf[STORE_NAME_MAX + 8];

	if (dead_letter_header(v, "ringmq-source-queue", buf, sizeof(buf)) ==
		    NULL ||
	    strcmp(buf, source) != 0)
		return 0;
	if (group != NULL && (dead_letter_header(v, "ringmq-source-group", buf,
						 sizeof(buf)) == NULL ||
			      strcmp(buf, group) != 0))
		return 0;
	return 1;
}

/* ------------------------------------------------------------- redrive */

struct redrive_req {
	struct queues *qs;
	uint32_t src_qid; /* counted in its pending publishes meanwhile */
	uint64_t bytes;	  /* message bytes redriven */
	redrive_done_fn done;
	void *ctx;
	size_t n;
	struct queue_staged st[];
};

static void
redrive_done(void *arg, int status)
{
	struct redrive_req *r = arg;
	struct queue *src = queues_find_id(r->qs, r->src_qid);

	if (src != NULL) {
		src->pending_ops--;
		src->pending_msgs -= r->n;
		src->pending_bytes -= r->bytes;
	}
	for (size_t i = 0; i < r->n; i++)
		queue_staged_done(r->qs, &r->st[i], status);
	r->done(r->ctx, status, status < 0 ? 0 : r->n);
	free(r);
}

/* 1 when dead letter v has a group of src to go back to (its name into
 * group), 0 when not (that group is gone, or v was corrupt). */
static int
redrive_group(struct queue *src, const struct store_msg_view *v, char *group,
	      size_t size)
{
	return dead_letter_header(v, "ringmq-source-group", group, size) !=
		       NULL &&
	       group[0] != '\0' && groups_exists(src, group);
}

/* Stages dead letter v of dlq for its source queue src, visible only to
 * the group it died in, and removes it from dlq; all into b.
 * @return 1 redriven, 0 skipped (its group is gone, or corrupt), <0. */
static int
redrive_one(struct groups *gs, struct queue *src, struct queue *dlq,
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
	if (dead_letter_header(v, "ringmq-source-partition", num,
			       sizeof(num)) &&
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
	copy_of(&sm, v, h, nh);
	sm.is_private = 1; /* only the group it died in sees it */
	rc = queue_stage(gs->qs, src, part, &sm, b, st);
	if (rc == 0)
		rc = groups_hide_offset(gs, src, st->partition, st->offset,
					group);
	if (rc == 0)
		rc = queue_drop_msg(dlq, v->partition, v->offset, b);
	free(h);
	return rc < 0 ? rc : 1;
}

/* Stages into b and r the dead letters of dlq's partition part that
 * redrive_all takes, up to r's room (cap); *depth and *bytes count src's
 * fill. @return 0, 1 when src is full, or -ENOMEM. */
static int
redrive_partition(struct groups *gs, struct queue *src, struct queue *dlq,
		  uint32_t part, const char *only, size_t cap,
		  struct store_batch *b, struct redrive_req *r, uint64_t *depth,
		  uint64_t *bytes)
{
	const struct partition *p = &dlq->parts[part];

	for (uint64_t off = partition_next(p, 0);
	     off != UINT64_MAX && r->n < cap;
	     off = partition_next(p, off + 1)) {
		char group[STORE_NAME_MAX + 8];
		struct store_msg_view v;
		int rc = store_msg_get(gs->store, dlq->qid, part, off, &v);

		if (rc < 0 && rc != -RMQ_ENOTFOUND)
			log_warn("queue %s partition %u offset %llu: %s",
				 dlq->name, part, (unsigned long long)off,
				 err_str(rc));
		if (rc < 0 || !dead_letter_is_of(&v, src->name, only) ||
		    !redrive_group(src, &v, group, sizeof(group)))
			continue;
		/* The view's size counts the ringmq-* headers the copy
		 * drops: checked a little high, counted exact. */
		if (queue_is_over(src, *depth, *bytes,
				  store_msg_view_bytes(&v)))
			return 1;
		rc = redrive_one(gs, src, dlq, &v, b, &r->st[r->n]);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			(*depth)++;
			*bytes += r->st[r->n].msg_bytes;
			r->bytes += r->st[r->n].msg_bytes;
		}
		r->n += (size_t)rc;
	}
	return 0;
}

int
groups_redrive(struct groups *gs, struct queue *src, struct queue *dlq,
	       const char *group, uint32_t max, redrive_done_fn done, void *ctx)
{
	struct store_batch *b = NULL;
	struct redrive_req *r = NULL;
	uint64_t depth, bytes;
	int is_full = 0;
	size_t cap = 0;

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
		int rc = redrive_partition(gs, src, dlq, i, group, cap, b, r,
					   &depth, &bytes);

		if (rc < 0)
			goto oom;
		is_full = rc;
	}
	if (r->n == 0 && is_full) {
		store_batch_free(b);
		free(r);
		return -RMQ_EQUEUE_FULL;
	}
	r->qs = gs->qs;
	r->src_qid = src->qid;
	r->done = done;
	r->ctx = ctx;
	src->pending_ops++;
	src->pending_msgs += r->n;
	src->pending_bytes += r->bytes;
	if (r->n > 0)
		log_info("queue %s: redriving %zu dead letters", src->name,
			 r->n);
	store_submit(gs->store, b, redrive_done, r);
	return 0;
oom:
	/* Anything staged is dropped: its offsets stay holes. */
	store_batch_free(b);
	free(r);
	return -ENOMEM;
}
