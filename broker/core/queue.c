/*
 * queue: see queue.h.
 */
#include "core/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idem.h"
#include "core/queue_int.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "lib/log.h"
#include "lib/u64set.h"
#include "lib/vec.h"
#include "name_rule.h"
#include "partition_rule.h"
#include "policy_rule.h"

#define OFFSET_RESERVE 4096u /* sync=interval: offsets reserved at a time */

uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ------------------------------------------------------------ delayed */

static int
due_push(struct queues *qs, uint64_t due_ms, uint32_t qid, uint32_t part,
	 uint64_t offset)
{
	struct due d = { due_ms, qid, part, offset };

	return heap_push(&qs->due, &d);
}

/* Index of offset in p's delayed set, or -1. */
static ssize_t
delayed_find(const struct partition *p, uint64_t offset)
{
	size_t lo = 0, hi = p->ndelayed;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->delayed[mid].offset == offset)
			return (ssize_t)mid;
		if (p->delayed[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Adds a delayed message to its partition and the due heap. */
int
delayed_add(struct queues *qs, struct queue *q, uint32_t part, uint64_t offset,
	    uint64_t due_ms, uint32_t size)
{
	struct partition *p = &q->parts[part];
	size_t i = p->ndelayed;
	struct delayed *v;

	v = vec_grow(p->delayed, &p->capdelayed, p->ndelayed + 1, sizeof(*v),
		     8);
	if (v == NULL)
		return -ENOMEM;
	p->delayed = v;
	if (due_push(qs, due_ms, q->qid, part, offset) < 0)
		return -ENOMEM;
	while (i > 0 && p->delayed[i - 1].offset > offset)
		i--;
	memmove(&p->delayed[i + 1], &p->delayed[i],
		(p->ndelayed - i) * sizeof(*p->delayed));
	p->delayed[i] = (struct delayed){ offset, due_ms, size };
	p->ndelayed++;
	p->count++;
	p->bytes += size;
	return 0;
}

static void
delayed_remove(struct partition *p, size_t i)
{
	p->count--;
	p->bytes -= p->delayed[i].size;
	memmove(&p->delayed[i], &p->delayed[i + 1],
		(p->ndelayed - i - 1) * sizeof(*p->delayed));
	p->ndelayed--;
}

static uint32_t
name_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h & (QUEUES_BUCKETS - 1);
}

int
queues_new(struct queues **out, struct store *s, const struct config *cfg,
	   queue_visible_fn visible, void *visible_ctx)
{
	struct queues *qs = calloc(1, sizeof(*qs));

	*out = NULL;
	if (qs == NULL)
		return -ENOMEM;
	qs->store = s;
	qs->cfg = cfg;
	qs->visible = visible;
	qs->visible_ctx = visible_ctx;
	qs->next_qid = 1;
	qs->due = (struct heap)HEAP_INIT(struct due);
	*out = qs;
	return 0;
}

static void
queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	for (uint32_t i = 0; q->parts && i < q->partitions; i++) {
		free(q->parts[i].sizes);
		free(q->parts[i].delayed);
		u64set_free(&q->parts[i].privates);
	}
	free(q->parts);
	idem_free(q->idem);
	free(q);
}

void
queues_free(struct queues *qs)
{
	if (qs == NULL)
		return;
	for (size_t i = 0; i < qs->count; i++)
		queue_free(qs->by_id[i]);
	free(qs->by_id);
	heap_fini(&qs->due);
	free(qs);
}

struct queue *
queues_find(struct queues *qs, const char *name)
{
	for (struct queue *q = qs->buckets[name_hash(name)]; q;
	     q = q->hash_next)
		if (strcmp(q->name, name) == 0)
			return q;
	return NULL;
}

struct queue *
queues_find_id(struct queues *qs, uint32_t qid)
{
	/* by_id is sorted by qid: ids only grow. */
	size_t lo = 0, hi = qs->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (qs->by_id[mid]->qid == qid)
			return qs->by_id[mid];
		if (qs->by_id[mid]->qid < qid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void
queues_each(struct queues *qs, void (*fn)(void *ctx, struct queue *q),
	    void *ctx)
{
	for (size_t i = 0; i < qs->count; i++)
		fn(ctx, qs->by_id[i]);
}

size_t
queues_count(const struct queues *qs)
{
	return qs->count;
}

int
queues_any_pending(const struct queues *qs)
{
	return qs->npending > 0;
}

int
queue_name_valid(const char *name)
{
	return name_rule_ok(name);
}

int
queue_ref_valid(const char *name)
{
	return name_rule_queue_ok(name);
}

/* Allocates a queue in memory and links it into the registry. */
static struct queue *
queue_add(struct queues *qs, const struct store_queue *sq)
{
	struct queue *q = calloc(1, sizeof(*q));
	struct queue **by_id;
	uint32_t h;

	if (q == NULL)
		return NULL;
	q->parts = calloc(sq->partitions, sizeof(*q->parts));
	q->idem = idem_new();
	if (q->parts == NULL || q->idem == NULL)
		goto fail;
	by_id = vec_grow(qs->by_id, &qs->cap, qs->count + 1, sizeof(*by_id),
			 16);
	if (by_id == NULL)
		goto fail;
	qs->by_id = by_id;
	q->qid = sq->qid;
	q->partitions = sq->partitions;
	q->created_ms = sq->created_ms;
	q->policy = sq->policy;
	memcpy(q->name, sq->name, sizeof(q->name));
	q->next_gid = 1;
	h = name_hash(q->name);
	q->hash_next = qs->buckets[h];
	qs->buckets[h] = q;
	qs->by_id[qs->count++] = q;
	if (sq->qid >= qs->next_qid)
		qs->next_qid = sq->qid + 1;
	return q;
fail:
	queue_free(q);
	return NULL;
}

static void
counters_add(struct queue_counters *to, const struct queue_counters *c)
{
	to->published += c->published;
	to->delivered += c->delivered;
	to->redelivered += c->redelivered;
	to->acked += c->acked;
	to->nacked += c->nacked;
	to->expired += c->expired;
	to->dead_lettered += c->dead_lettered;
}

/* Unlinks q from the registry and frees it. */
static void
queue_remove(struct queues *qs, struct queue *q)
{
	struct queue **pp = &qs->buckets[name_hash(q->name)];
	size_t i;

	while (*pp != q)
		pp = &(*pp)->hash_next;
	*pp = q->hash_next;
	for (i = 0; i < qs->count && qs->by_id[i] != q; i++)
		;
	memmove(&qs->by_id[i], &qs->by_id[i + 1],
		(qs->count - i - 1) * sizeof(*qs->by_id));
	qs->count--;
	counters_add(&qs->retired, &q->counters);
	queue_free(q);
}

void
queues_counter_totals(const struct queues *qs, struct queue_counters *out)
{
	*out = qs->retired;
	for (size_t i = 0; i < qs->count; i++)
		counters_add(out, &qs->by_id[i]->counters);
}

static void policy_name_dlq(struct store_policy *pol, const char *queue);

int
queues_load_queue(struct queues *qs, const struct store_queue *sq)
{
	struct queue *q;

	if (sq->partitions == 0 || sq->partitions > QUEUE_MAX_PARTITIONS) {
		log_error("queue %s: stored partition count %u is invalid",
			  sq->name, sq->partitions);
		return -RMQ_ECORRUPT;
	}
	q = queue_add(qs, sq);
	if (q == NULL)
		return -ENOMEM;
	policy_name_dlq(&q->policy, q->name);
	return 0;
}

int
queues_load_partition(struct queues *qs, uint32_t qid, uint32_t part,
		      uint64_t next_offset)
{
	struct queue *q = queues_find_id(qs, qid);
	struct partition *p;

	if (q == NULL || part >= q->partitions)
		return 0; /* a leftover of a deleted queue: ignore */
	p = &q->parts[part];
	p->next_offset = p->committed_next = p->base = next_offset;
	p->reserved_until = p->reserved_durable = next_offset;
	return 0;
}

/* Forgets the message of ring slot i (a no-op for a hole): it is deleted. */
static void
partition_forget(struct partition *p, size_t i)
{
	uint32_t v = p->sizes[i], size = v & ~PART_ACKED;

	if (v == PART_HOLE)
		return;
	p->count--;
	p->bytes -= size;
	if (v & PART_ACKED) {
		p->acked_count--;
		p->acked_bytes -= size;
	}
	p->sizes[i] = PART_HOLE;
}

void
partition_mark_acked(struct partition *p, uint64_t offset)
{
	uint32_t *v;

	if (offset < p->base || offset >= p->committed_next)
		return;
	v = &p->sizes[(p->head + (offset - p->base)) & (p->cap - 1)];
	if (*v == PART_HOLE || (*v & PART_ACKED))
		return;
	*v |= PART_ACKED;
	p->acked_count++;
	p->acked_bytes += *v & ~PART_ACKED;
}

int
partition_is_acked(const struct partition *p, uint64_t offset)
{
	uint32_t v;

	if (offset < p->base || offset >= p->committed_next)
		return 0;
	v = p->sizes[(p->head + (offset - p->base)) & (p->cap - 1)];
	return v != PART_HOLE && (v & PART_ACKED);
}

void
partition_clear_acked(struct partition *p)
{
	if (p->acked_count == 0)
		return; /* nothing is marked: no pass over the index */
	for (size_t k = 0; k < p->len; k++) {
		uint32_t *v = &p->sizes[(p->head + k) & (p->cap - 1)];

		if (*v != PART_HOLE)
			*v &= ~PART_ACKED;
	}
	p->acked_count = p->acked_bytes = 0;
}

/* Appends one offset (a message size or PART_HOLE) at committed_next. */
int
partition_append(struct partition *p, uint32_t size)
{
	if (p->len == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		uint32_t *sizes = malloc(cap * sizeof(*sizes));

		if (sizes == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < p->len; i++)
			sizes[i] = p->sizes[(p->head + i) & (p->cap - 1)];
		free(p->sizes);
		p->sizes = sizes;
		p->cap = cap;
		p->head = 0;
	}
	if (p->len == 0 && p->count == 0)
		p->base = p->committed_next;
	p->sizes[(p->head + p->len) & (p->cap - 1)] = size;
	p->len++;
	p->committed_next++;
	if (size != PART_HOLE) {
		p->count++;
		p->bytes += size;
	}
	return 0;
}

int
queues_load_private(struct queues *qs, uint32_t qid, uint32_t part,
		    uint64_t offset)
{
	struct queue *q = queues_find_id(qs, qid);

	if (q == NULL || part >= q->partitions)
		return 0;
	return u64set_add(&q->parts[part].privates, offset);
}

int
queues_load_message(struct queues *qs, uint32_t qid, uint32_t part,
		    uint64_t offset, uint32_t msg_bytes, uint64_t deliver_at_ms)
{
	struct queue *q = queues_find_id(qs, qid);
	struct partition *p;

	if (q == NULL || part >= q->partitions)
		return 0;
	p = &q->parts[part];
	if (p->count == 0 && p->len == 0) {
		/* The first retained message sets the base. */
		p->base = p->committed_next = offset;
	}
	if (offset < p->committed_next)
		return 0; /* out of order: impossible with LMDB's sort */
	while (p->committed_next < offset)
		if (partition_append(p, PART_HOLE) < 0)
			return -ENOMEM;
	if (deliver_at_ms != 0) {
		/* Still delayed (or due while the broker was down: the first
		 * tick moves it). */
		if (partition_append(p, PART_HOLE) < 0 ||
		    delayed_add(qs, q, part, offset, deliver_at_ms, msg_bytes) <
			    0)
			return -ENOMEM;
	} else if (partition_append(p, msg_bytes) < 0) {
		return -ENOMEM;
	}
	if (p->next_offset < p->committed_next) {
		/* A message above the stored next offset: trust the message. */
		p->next_offset = p->committed_next;
	}
	return 0;
}

int
queues_load_done(struct queues *qs)
{
	for (size_t i = 0; i < qs->count; i++) {
		struct queue *q = qs->by_id[i];

		for (uint32_t j = 0; j < q->partitions; j++) {
			struct partition *p = &q->parts[j];

			if (p->len == 0) {
				p->base = p->committed_next = p->next_offset;
				continue;
			}
			while (p->committed_next < p->next_offset)
				if (partition_append(p, PART_HOLE) < 0)
					return -ENOMEM;
		}
	}
	return 0;
}

int
partition_has(const struct partition *p, uint64_t offset)
{
	if (offset < p->base || offset >= p->committed_next)
		return 0;
	return p->sizes[(p->head + (offset - p->base)) & (p->cap - 1)] !=
	       PART_HOLE;
}

uint64_t
partition_next(const struct partition *p, uint64_t from)
{
	if (from < p->base)
		from = p->base;
	for (; from < p->committed_next; from++)
		if (p->sizes[(p->head + (from - p->base)) & (p->cap - 1)] !=
		    PART_HOLE)
			return from;
	return UINT64_MAX;
}

/* Entries of v[0 .. n) that are not holes: a loop the compiler can
 * unroll and vectorise, since a backlog of millions is counted at every
 * metrics scrape. */
static uint64_t
count_present(const uint32_t *v, size_t n)
{
	uint64_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += v[i] != PART_HOLE;
	return k;
}

uint64_t
partition_count(const struct partition *p, uint64_t from, uint64_t to)
{
	uint64_t n = 0;

	if (from < p->base)
		from = p->base;
	if (to > p->committed_next)
		to = p->committed_next;
	/* At most two stretches: the ring may wrap once. */
	while (from < to) {
		size_t i = (p->head + (from - p->base)) & (p->cap - 1);
		uint64_t len = to - from;

		if (len > p->cap - i)
			len = p->cap - i;
		n += count_present(p->sizes + i, (size_t)len);
		from += len;
	}
	return n;
}

int
partition_trim(struct queue *q, uint32_t part, uint64_t upto,
	       struct store_batch *b)
{
	struct partition *p = &q->parts[part];
	uint64_t from = p->base;

	if (upto > p->committed_next)
		upto = p->committed_next;
	if (upto <= from)
		return 0;
	/* Delayed messages are outside the stream: delete around them. */
	for (size_t i = 0; i < p->ndelayed && from < upto; i++) {
		uint64_t d = p->delayed[i].offset;

		if (d < from)
			continue;
		if (d >= upto)
			break;
		if (d > from &&
		    store_batch_del_msgs(b, q->qid, part, from, d) < 0)
			return -ENOMEM;
		from = d + 1;
	}
	if (from < upto &&
	    store_batch_del_msgs(b, q->qid, part, from, upto) < 0)
		return -ENOMEM;
	while (p->privates.n > 0 && u64set_first(&p->privates) < upto)
		u64set_pop(&p->privates);
	for (; p->base < upto; p->base++) {
		partition_forget(p, p->head);
		p->head = (p->head + 1) & (p->cap - 1);
		p->len--;
	}
	return 0;
}

void
queue_totals(const struct queue *q, uint64_t *messages, uint64_t *bytes,
	     uint64_t *delayed)
{
	*messages = *bytes = *delayed = 0;
	for (uint32_t i = 0; i < q->partitions; i++) {
		const struct partition *p = &q->parts[i];

		/* Retained: what some group has not acked yet. */
		*messages += p->count - p->acked_count;
		*bytes += p->bytes - p->acked_bytes;
		*delayed += p->ndelayed;
	}
}

void
queue_fill(const struct queue *q, uint64_t *depth, uint64_t *bytes)
{
	uint64_t delayed;

	queue_totals(q, depth, bytes, &delayed);
	*depth += q->pending_msgs;
	*bytes += q->pending_bytes;
}

int
queue_is_over(const struct queue *q, uint64_t depth, uint64_t bytes,
	      uint64_t len)
{
	return (q->policy.max_depth && depth + 1 > q->policy.max_depth) ||
	       (q->policy.max_bytes && bytes + len > q->policy.max_bytes);
}

/* ------------------------------------------------------------ creation */

static void
policy_defaults(const struct config *cfg, struct store_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->lease_ms = cfg->lease_ms;
	pol->max_lease_ms = cfg->max_lease_ms;
	pol->max_deliveries = cfg->max_deliveries;
	pol->dedup_window_ms = 600000;
}

/* Applies the fields given in g onto pol. */
static int
policy_apply(struct store_policy *pol, const struct queue_policy_given *g)
{
	unsigned has = g != NULL ? g->fields : 0;

	if (g == NULL)
		return 0;
	if (((has & QUEUE_POLICY_LEASE_MS) &&
	     g->lease_ms > POLICY_RULE_MAX_MS) ||
	    ((has & QUEUE_POLICY_MAX_LEASE_MS) &&
	     g->max_lease_ms > POLICY_RULE_MAX_MS) ||
	    ((has & QUEUE_POLICY_DEDUP_WINDOW_MS) &&
	     g->dedup_window_ms > POLICY_RULE_MAX_MS))
		return -RMQ_EINVALID_ARGUMENT;
	if (has & QUEUE_POLICY_LEASE_MS) {
		if (g->lease_ms == 0)
			return -RMQ_EINVALID_ARGUMENT;
		pol->lease_ms = g->lease_ms;
	}
	if (has & QUEUE_POLICY_MAX_LEASE_MS) {
		if (g->max_lease_ms == 0)
			return -RMQ_EINVALID_ARGUMENT;
		pol->max_lease_ms = g->max_lease_ms;
	}
	if (has & QUEUE_POLICY_MAX_DELIVERIES)
		pol->max_deliveries = g->max_deliveries;
	if (has & QUEUE_POLICY_MAX_DEPTH)
		pol->max_depth = g->max_depth;
	if (has & QUEUE_POLICY_MAX_BYTES)
		pol->max_bytes = g->max_bytes;
	if (has & QUEUE_POLICY_DEDUP_WINDOW_MS)
		pol->dedup_window_ms = g->dedup_window_ms;
	if (g->dlq) {
		if (g->dlq[0] != '\0' && !queue_ref_valid(g->dlq))
			return -RMQ_EINVALID_ARGUMENT;
		snprintf(pol->dlq, sizeof(pol->dlq), "%s", g->dlq);
	}
	return 0;
}

/* The default dead-letter queue is stored by name, so that a create
 * naming it explicitly matches. */
static void
policy_name_dlq(struct store_policy *pol, const char *queue)
{
	if (pol->dlq[0] == '\0')
		snprintf(pol->dlq, sizeof(pol->dlq), "%.*s.dlq",
			 (int)(sizeof(pol->dlq) - 5), queue);
}

/* 0 if the queue named queue can dead-letter as pol says: not into
 * itself, and, when it counts deliveries, into a queue that may exist
 * (the dead-letter queue of a name already ending in ".dlq" may be too
 * long for the rule). */
static int
policy_check_dlq(const struct store_policy *pol, const char *queue)
{
	if (strcmp(pol->dlq, queue) == 0)
		return -RMQ_EINVALID_ARGUMENT;
	if (pol->max_deliveries != 0 && !queue_ref_valid(pol->dlq))
		return -RMQ_EINVALID_ARGUMENT;
	return 0;
}

/* 1 if every field given in g equals q's setting. */
static int
policy_matches(const struct queue *q, uint32_t partitions,
	       const struct queue_policy_given *g)
{
	struct store_policy want = q->policy;

	if (partitions != 0 && partitions != q->partitions)
		return 0;
	if (policy_apply(&want, g) < 0)
		return 0;
	policy_name_dlq(&want, q->name);
	return memcmp(&want, &q->policy, sizeof(want)) == 0;
}

struct create_req {
	struct queues *qs;
	uint32_t qid;
	queue_done_fn done;
	void *ctx;
};

static void
create_done(void *arg, int status)
{
	struct create_req *r = arg;
	struct queue *q = queues_find_id(r->qs, r->qid);

	r->qs->npending--;
	if (q != NULL) {
		if (status == 0) {
			q->is_pending = 0;
			log_info("queue %s created (%u partitions)", q->name,
				 q->partitions);
		} else {
			log_warn("queue %s: create failed: %s", q->name,
				 err_str(status));
			queue_remove(r->qs, q);
		}
	}
	r->done(r->ctx, status);
	free(r);
}

int
queue_create(struct queues *qs, const char *name, uint32_t partitions,
	     const struct queue_policy_given *given, queue_done_fn done,
	     void *ctx)
{
	struct store_queue sq;
	struct store_batch *b = NULL;
	struct create_req *r = NULL;
	struct queue *q;
	int rc;

	if (!queue_ref_valid(name) || partitions > QUEUE_MAX_PARTITIONS)
		return -RMQ_EINVALID_ARGUMENT;
	q = queues_find(qs, name);
	if (q != NULL)
		return policy_matches(q, partitions, given)
			       ? 1
			       : -RMQ_EQUEUE_EXISTS;
	memset(&sq, 0, sizeof(sq));
	policy_defaults(qs->cfg, &sq.policy);
	rc = policy_apply(&sq.policy, given);
	if (rc < 0)
		return rc;
	policy_name_dlq(&sq.policy, name);
	rc = policy_check_dlq(&sq.policy, name);
	if (rc < 0)
		return rc;
	sq.qid = qs->next_qid;
	sq.partitions = partitions ? partitions : 1;
	sq.created_ms = clock_wall_ms();
	snprintf(sq.name, sizeof(sq.name), "%s", name);

	rc = -ENOMEM;
	b = store_batch_new(STORE_BATCH_GROWS);
	r = calloc(1, sizeof(*r));
	if (b == NULL || r == NULL || store_batch_put_queue(b, &sq) < 0)
		goto fail;
	for (uint32_t i = 0; i < sq.partitions; i++)
		if (store_batch_put_next_offset(b, sq.qid, i, 0) < 0)
			goto fail;
	q = queue_add(qs, &sq);
	if (q == NULL)
		goto fail;
	q->is_pending = 1;
	qs->npending++;
	r->qs = qs;
	r->qid = sq.qid;
	r->done = done;
	r->ctx = ctx;
	store_submit(qs->store, b, create_done, r);
	return 0;
fail:
	store_batch_free(b);
	free(r);
	return rc;
}

struct set_req {
	queue_done_fn done;
	void *ctx;
};

static void
set_done(void *arg, int status)
{
	struct set_req *r = arg;

	r->done(r->ctx, status);
	free(r);
}

/* The record of q as stored. */
static void
queue_record(const struct queue *q, struct store_queue *sq)
{
	memset(sq, 0, sizeof(*sq));
	sq->qid = q->qid;
	sq->partitions = q->partitions;
	sq->created_ms = q->created_ms;
	sq->policy = q->policy;
	memcpy(sq->name, q->name, sizeof(sq->name));
}

int
queue_set(struct queues *qs, const char *name,
	  const struct queue_policy_given *pol, queue_done_fn done, void *ctx)
{
	struct queue *q = queues_find(qs, name);
	struct store_policy next;
	struct store_queue sq;
	struct store_batch *b;
	struct set_req *r;
	int rc;

	if (q == NULL || q->is_pending)
		return -RMQ_EQUEUE_NOT_FOUND;
	next = q->policy;
	rc = policy_apply(&next, pol);
	if (rc < 0)
		return rc;
	policy_name_dlq(&next, q->name);
	rc = policy_check_dlq(&next, q->name);
	if (rc < 0)
		return rc;
	b = store_batch_new(0);
	r = calloc(1, sizeof(*r));
	if (b == NULL || r == NULL)
		goto fail;
	q->policy = next;
	queue_record(q, &sq);
	if (store_batch_put_queue(b, &sq) < 0)
		goto fail;
	r->done = done;
	r->ctx = ctx;
	store_submit(qs->store, b, set_done, r);
	log_info("queue %s: policies changed", q->name);
	return 0;
fail:
	store_batch_free(b);
	free(r);
	return -ENOMEM;
}

/* Records the outcome of the commit of offset (size, or PART_HOLE if it
 * failed). Offsets are assigned in submission order and commits complete
 * in that order, so offset is at or after committed_next; any offset
 * skipped on the way was never stored. */
void
queue_index(struct queue *q, uint32_t part, uint64_t offset, uint32_t size)
{
	struct partition *p = &q->parts[part];

	if (offset < p->committed_next) {
		/* Every writer submits in offset order; this is a bug. */
		log_error("queue %s partition %u: offset %llu committed out of "
			  "order",
			  q->name, part, (unsigned long long)offset);
		return;
	}
	while (p->committed_next < offset)
		if (partition_append(p, PART_HOLE) < 0)
			goto oom;
	if (partition_append(p, size) == 0)
		return;
oom:
	log_error("queue %s: out of memory indexing offset %llu", q->name,
		  (unsigned long long)offset);
}

/* ------------------------------------------------------------- staging */

struct queue *
queue_ensure(struct queues *qs, const char *name, struct store_batch *b)
{
	struct queue *q = queues_find(qs, name);
	struct store_queue sq;

	if (q != NULL)
		return q;
	memset(&sq, 0, sizeof(sq));
	policy_defaults(qs->cfg, &sq.policy);
	sq.policy.max_deliveries = 0; /* a dead-letter queue never loops */
	/* Named like every queue's, so that a create naming this queue
	 * with its settings matches in this run as after a restart. */
	policy_name_dlq(&sq.policy, name);
	sq.qid = qs->next_qid;
	sq.partitions = 1;
	sq.created_ms = clock_wall_ms();
	snprintf(sq.name, sizeof(sq.name), "%s", name);
	if (store_batch_put_queue(b, &sq) < 0 ||
	    store_batch_put_next_offset(b, sq.qid, 0, 0) < 0)
		return NULL;
	q = queue_add(qs, &sq);
	if (q != NULL)
		log_info("queue %s created on demand", name);
	return q;
}

/*
 * Adds the partition's stored next offset to b. With sync=always or never
 * it is the next offset itself, committed with the messages. With
 * sync=interval publishes are confirmed before their commit, so a crash
 * can lose confirmed offsets; the stored value is then a reservation,
 * OFFSET_RESERVE ahead, extended (and that publish confirmed after the
 * synced commit) only when offsets reach it. A restart continues after
 * the reservation, so no confirmed offset is ever handed out twice.
 * @return 1 if a reservation was extended, 0 if not, -ENOMEM.
 */
int
persist_next(struct queues *qs, struct queue *q, uint32_t part,
	     struct store_batch *b, uint64_t *reserved)
{
	struct partition *p = &q->parts[part];

	*reserved = 0;
	if (qs->cfg->sync != CONFIG_SYNC_INTERVAL)
		return store_batch_put_next_offset(b, q->qid, part,
						   p->next_offset) < 0
			       ? -ENOMEM
			       : 0;
	if (p->next_offset <= p->reserved_until)
		return 0;
	p->reserved_until = p->next_offset + OFFSET_RESERVE;
	if (store_batch_put_next_offset(b, q->qid, part, p->reserved_until) < 0)
		return -ENOMEM;
	*reserved = p->reserved_until;
	return 1;
}

/* A reservation committed: offsets below it may be confirmed early. */
void
reserve_durable(struct queue *q, uint32_t part, uint64_t reserved)
{
	if (q != NULL && part < q->partitions &&
	    q->parts[part].reserved_durable < reserved)
		q->parts[part].reserved_durable = reserved;
}

int
queue_stage(struct queues *qs, struct queue *q, int fixed_part,
	    const struct store_msg *m, struct store_batch *b,
	    struct queue_staged *st)
{
	struct partition *p;
	uint32_t part;

	(void)qs;
	if (fixed_part >= 0)
		part = (uint32_t)fixed_part;
	else if (m->key_len > 0)
		part = partition_rule_for_key(m->key, m->key_len,
					      q->partitions);
	else
		part = q->rr_part++ % q->partitions;
	p = &q->parts[part];
	if (store_batch_put_msg(b, q->qid, part, p->next_offset, m) < 0 ||
	    (m->is_private && u64set_add(&p->privates, p->next_offset) < 0))
		return -ENOMEM;
	st->qid = q->qid;
	st->partition = part;
	st->offset = p->next_offset++;
	if (persist_next(qs, q, part, b, &st->reserved) < 0)
		return -ENOMEM;
	st->msg_bytes = (uint32_t)store_msg_bytes(m);
	return 0;
}

void
queue_staged_done(struct queues *qs, const struct queue_staged *st, int status)
{
	struct queue *q = queues_find_id(qs, st->qid);

	if (q == NULL)
		return;
	queue_index(q, st->partition, st->offset,
		    status < 0 ? PART_HOLE : st->msg_bytes);
	if (status == 0 && st->reserved)
		reserve_durable(q, st->partition, st->reserved);
	if (status == 0)
		qs->visible(qs->visible_ctx, q, st->partition);
}

/* --------------------------------------------------------- dead letters */

uint32_t
queue_dlq_headers(struct store_header *h, char (*buf)[24], const char *reason,
		  const struct queue *q, const char *group, uint32_t part,
		  uint64_t offset, uint32_t count, uint64_t first_ms,
		  uint64_t last_ms)
{
	static const char *const names[QUEUE_DLQ_HEADERS] = {
		"ringmq-dlq-reason",	    "ringmq-source-queue",
		"ringmq-source-group",	    "ringmq-source-partition",
		"ringmq-source-offset",	    "ringmq-delivery-count",
		"ringmq-first-delivery-ms", "ringmq-last-delivery-ms",
	};
	const char *values[QUEUE_DLQ_HEADERS] = { reason, q->name, group };

	snprintf(buf[0], sizeof(buf[0]), "%u", part);
	snprintf(buf[1], sizeof(buf[1]), "%llu", (unsigned long long)offset);
	snprintf(buf[2], sizeof(buf[2]), "%u", count);
	snprintf(buf[3], sizeof(buf[3]), "%llu", (unsigned long long)first_ms);
	snprintf(buf[4], sizeof(buf[4]), "%llu", (unsigned long long)last_ms);
	for (int i = 3; i < QUEUE_DLQ_HEADERS; i++)
		values[i] = buf[i - 3];
	for (int i = 0; i < QUEUE_DLQ_HEADERS; i++) {
		h[i].name = names[i];
		h[i].name_len = (uint32_t)strlen(names[i]);
		h[i].value = values[i];
		h[i].value_len = (uint32_t)strlen(values[i]);
	}
	return QUEUE_DLQ_HEADERS;
}

/* Sends a delayed record that failed its CRC, due now, to q's dead-letter
 * queue as the bytes that were stored (reason "corrupt", no source group)
 * and deletes it, all into b. @return 0 or negative. */
static int
dead_letter_corrupt_delayed(struct queues *qs, struct queue *q, uint32_t part,
			    uint64_t offset, struct store_batch *b,
			    struct queue_staged *st)
{
	struct store_header h[QUEUE_DLQ_HEADERS];
	char buf[5][24];
	struct store_msg sm;
	struct queue *dlq;
	const void *raw;
	size_t len;

	if (store_msg_get_raw(qs->store, q->qid, part, offset, &raw, &len) <
		    0 ||
	    len > UINT32_MAX || strcmp(q->policy.dlq, q->name) == 0 ||
	    !queue_ref_valid(q->policy.dlq))
		return -RMQ_ECORRUPT;
	dlq = queue_ensure(qs, q->policy.dlq, b);
	if (dlq == NULL)
		return -ENOMEM;
	memset(&sm, 0, sizeof(sm));
	sm.publish_ms = clock_wall_ms();
	sm.headers = h;
	sm.header_count = queue_dlq_headers(h, buf, "corrupt", q, "", part,
					    offset, 0, 0, 0);
	sm.payload = raw;
	sm.payload_len = (uint32_t)len;
	if (queue_stage(qs, dlq, -1, &sm, b, st) < 0 ||
	    store_batch_del_msgs(b, q->qid, part, offset, offset + 1) < 0)
		return -ENOMEM;
	q->counters.dead_lettered++;
	log_info("queue %s partition %u offset %llu: delayed record failed "
		 "its checksum; dead-lettered to %s (corrupt)",
		 q->name, part, (unsigned long long)offset, dlq->name);
	return 0;
}

/* ---------------------------------------------------------- due moves */

struct move_req {
	struct queues *qs;
	size_t n;
	struct queue_staged st[];
};

static void
move_done(void *arg, int status)
{
	struct move_req *r = arg;

	if (status < 0)
		log_error("moving %zu due messages failed: %s", r->n,
			  err_str(status));
	for (size_t i = 0; i < r->n; i++)
		queue_staged_done(r->qs, &r->st[i], status);
	free(r);
}

/* Copies delayed message d of (q, part) to a new offset at the end of its
 * partition and deletes the old record, in b. */
static int
move_due(struct queues *qs, struct queue *q, uint32_t part, uint64_t offset,
	 struct store_batch *b, struct queue_staged *st)
{
	struct store_msg_view v;
	struct store_header *h = NULL;
	struct store_header one;
	struct store_msg sm;
	uint32_t pos = 0, nh = 0;
	int rc;

	rc = store_msg_get(qs->store, q->qid, part, offset, &v);
	if (rc < 0)
		return rc;
	while (store_headers_next(v.headers, v.headers_len, &pos, &one) == 1)
		nh++;
	if (nh > 0 && (h = calloc(nh, sizeof(*h))) == NULL)
		return -ENOMEM;
	pos = 0;
	for (uint32_t i = 0; i < nh; i++)
		(void)store_headers_next(v.headers, v.headers_len, &pos, &h[i]);
	memset(&sm, 0, sizeof(sm));
	sm.publish_ms = v.publish_ms;
	sm.key = v.key;
	sm.key_len = v.key_len;
	sm.headers = h;
	sm.header_count = nh;
	sm.dedup_id = v.dedup_id;
	sm.dedup_len = v.dedup_len;
	sm.payload = v.payload;
	sm.payload_len = v.payload_len;
	rc = queue_stage(qs, q, (int)part, &sm, b, st);
	if (rc == 0)
		rc = store_batch_del_msgs(b, q->qid, part, offset, offset + 1);
	free(h);
	return rc;
}

static void queues_expire_idem(struct queues *qs, uint64_t now_ms);

int64_t
queues_tick(struct queues *qs)
{
	uint64_t now = clock_wall_ms();
	struct store_batch *b = NULL;
	struct move_req *r = NULL;
	size_t cap = 0;

	queues_expire_idem(qs, now);
	while (heap_top(&qs->due) != NULL && heap_top_key(&qs->due) <= now) {
		struct due d = *(const struct due *)heap_top(&qs->due);
		struct queue *q = queues_find_id(qs, d.qid);
		struct partition *p;
		ssize_t i;
		int rc;

		heap_pop(&qs->due);
		if (q == NULL || d.part >= q->partitions)
			continue;
		p = &q->parts[d.part];
		i = delayed_find(p, d.offset);
		if (i < 0 || p->delayed[i].due_ms != d.due_ms)
			continue; /* cancelled or stale */
		if (b == NULL)
			b = store_batch_new(0);
		if (r == NULL || r->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct move_req *nr = realloc(
				r, sizeof(*r) + ncap * sizeof(r->st[0]));

			if (nr == NULL) {
				if (r == NULL)
					break;
			} else {
				if (r == NULL)
					nr->n = 0;
				r = nr;
				cap = ncap;
			}
		}
		if (b == NULL || r->n == cap) {
			(void)due_push(qs, d.due_ms, d.qid, d.part, d.offset);
			break; /* out of memory: try again next tick */
		}
		rc = move_due(qs, q, d.part, d.offset, b, &r->st[r->n]);
		if (rc == -RMQ_ECORRUPT)
			rc = dead_letter_corrupt_delayed(
				qs, q, d.part, d.offset, b, &r->st[r->n]);
		if (rc < 0) {
			log_error("queue %s partition %u offset %llu: due but "
				  "unreadable (%s)",
				  q->name, d.part, (unsigned long long)d.offset,
				  err_str(rc));
			continue;
		}
		r->n++;
		delayed_remove(p, (size_t)i);
	}
	if (r != NULL && r->n > 0) {
		r->qs = qs;
		store_submit(qs->store, b, move_done, r);
	} else {
		store_batch_free(b);
		free(r);
	}
	if (heap_top(&qs->due) == NULL)
		return -1;
	return heap_top_key(&qs->due) > now
		       ? (int64_t)(heap_top_key(&qs->due) - now)
		       : 0;
}

struct cancel_req {
	queue_done_fn done;
	void *ctx;
};

static void
cancel_done(void *arg, int status)
{
	struct cancel_req *r = arg;

	r->done(r->ctx, status);
	free(r);
}

int
queue_cancel(struct queues *qs, struct queue *q, uint32_t part, uint64_t offset,
	     queue_done_fn done, void *ctx)
{
	struct store_batch *b;
	struct cancel_req *r;
	struct partition *p;
	ssize_t i;

	if (part >= q->partitions)
		return -RMQ_EMESSAGE_NOT_FOUND;
	p = &q->parts[part];
	i = delayed_find(p, offset);
	if (i < 0)
		return partition_has(p, offset) ? -RMQ_EINVALID_ARGUMENT
						: -RMQ_EMESSAGE_NOT_FOUND;
	b = store_batch_new(0);
	r = calloc(1, sizeof(*r));
	if (b == NULL || r == NULL ||
	    store_batch_del_msgs(b, q->qid, part, offset, offset + 1) < 0) {
		store_batch_free(b);
		free(r);
		return -ENOMEM;
	}
	delayed_remove(p, (size_t)i);
	r->done = done;
	r->ctx = ctx;
	store_submit(qs->store, b, cancel_done, r);
	log_info("queue %s partition %u offset %llu: delayed message "
		 "cancelled",
		 q->name, part, (unsigned long long)offset);
	return 0;
}

/* ------------------------------------------------------------ idempotence */

int
queues_load_dedup(struct queues *qs, uint32_t qid, uint32_t part,
		  const void *id, uint16_t len, uint64_t offset,
		  uint64_t publish_ms)
{
	struct queue *q = queues_find_id(qs, qid);

	if (q == NULL || part >= q->partitions)
		return 0;
	return idem_load_dedup(q->idem, part, id, len, offset, publish_ms);
}

int
queues_load_producer(struct queues *qs, uint32_t qid, uint32_t part,
		     uint64_t producer_id, const struct store_producer *p)
{
	struct queue *q = queues_find_id(qs, qid);

	if (q == NULL || part >= q->partitions)
		return 0;
	return idem_load_producer(q->idem, part, producer_id, p);
}

static void
expiry_done(void *arg, int status)
{
	(void)arg;
	if (status < 0)
		log_warn("expiring dedup ids and producers failed: %s",
			 err_str(status));
}

/* Once a second: forget dedup ids and producers older than the window. */
static void
queues_expire_idem(struct queues *qs, uint64_t now_ms)
{
	struct store_batch *b = NULL;

	for (size_t i = 0; i < qs->count; i++) {
		struct queue *q = qs->by_id[i];

		if (now_ms - q->last_expiry_ms < 1000)
			continue;
		q->last_expiry_ms = now_ms;
		if (b == NULL && (b = store_batch_new(0)) == NULL)
			return;
		if (idem_expire(q->idem, q->qid, now_ms,
				q->policy.dedup_window_ms, b) < 0)
			log_warn("queue %s: out of memory expiring dedup ids",
				 q->name);
	}
	if (b != NULL && store_batch_ops(b) > 0)
		store_submit(qs->store, b, expiry_done, NULL);
	else
		store_batch_free(b);
}

int
queue_drop_msg(struct queue *q, uint32_t part, uint64_t offset,
	       struct store_batch *b)
{
	struct partition *p = &q->parts[part];
	size_t i;

	if (!partition_has(p, offset))
		return -RMQ_EMESSAGE_NOT_FOUND;
	if (store_batch_del_msgs(b, q->qid, part, offset, offset + 1) < 0)
		return -ENOMEM;
	i = (p->head + (offset - p->base)) & (p->cap - 1);
	partition_forget(p, i);
	return 0;
}

/* --------------------------------------------------------- delete, purge */

struct delete_req {
	queue_done_fn done;
	void *ctx;
};

static void
delete_done(void *arg, int status)
{
	struct delete_req *r = arg;

	r->done(r->ctx, status);
	free(r);
}

int
queue_delete(struct queues *qs, struct queue *q, queue_done_fn done, void *ctx)
{
	struct store_batch *b = store_batch_new(0);
	struct delete_req *r = calloc(1, sizeof(*r));

	if (b == NULL || r == NULL || store_batch_del_queue(b, q->qid) < 0) {
		store_batch_free(b);
		free(r);
		return -ENOMEM;
	}
	log_info("queue %s deleted", q->name);
	queue_remove(qs, q);
	r->done = done;
	r->ctx = ctx;
	store_submit(qs->store, b, delete_done, r);
	return 0;
}

uint64_t
queue_purge_partition(struct queue *q, uint32_t part, const struct u64set *keep,
		      struct store_batch *b)
{
	struct partition *p = &q->parts[part];
	uint64_t purged = 0, run = UINT64_MAX;

	/* Stream messages, deleted in runs between the kept (leased) ones. */
	for (uint64_t off = partition_next(p, p->base);;
	     off = partition_next(p, off + 1)) {
		int is_kept = off != UINT64_MAX && u64set_has(keep, off);

		if (off != UINT64_MAX && !is_kept) {
			size_t i = (p->head + (off - p->base)) & (p->cap - 1);

			if (run == UINT64_MAX)
				run = off;
			partition_forget(p, i);
			purged++;
			continue;
		}
		if (run != UINT64_MAX) {
			uint64_t end =
				off == UINT64_MAX ? p->committed_next : off;

			if (store_batch_del_msgs(b, q->qid, part, run, end) < 0)
				log_error("queue %s: out of memory purging",
					  q->name);
			run = UINT64_MAX;
		}
		if (off == UINT64_MAX)
			break;
	}
	/* Delayed messages: their due-heap entries go stale. */
	while (p->ndelayed > 0) {
		uint64_t off = p->delayed[p->ndelayed - 1].offset;

		if (store_batch_del_msgs(b, q->qid, part, off, off + 1) < 0)
			log_error("queue %s: out of memory purging", q->name);
		delayed_remove(p, p->ndelayed - 1);
		purged++;
	}
	return purged;
}
