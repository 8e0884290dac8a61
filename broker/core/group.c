/*
 * group: see group.h.
 *
 * Persistence follows DESIGN.md's storage budget: leases are never
 * written; an ack changes only the group partition's state record, which is
 * rewritten once per flush (one loop pass) whatever the number of acks;
 * failure counts are written only when a lease fails; acked ranges below
 * every group's floor are deleted in the same flush.
 */
#include "core/group.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/group_int.h"
#include "core/lease.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/heap.h"
#include "lib/log.h"
#include "lib/u64set.h"
#include "lib/vec.h"

/* ---------------------------------------------------------- failures */

struct failrec *
fail_find(struct gpart *gp, uint64_t offset)
{
	size_t lo = 0, hi = gp->nfails;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (gp->fails[mid].offset == offset)
			return &gp->fails[mid];
		if (gp->fails[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct failrec *
fail_add(struct gpart *gp, uint64_t offset)
{
	struct failrec *v;
	size_t i = 0;

	v = vec_grow(gp->fails, &gp->capfails, gp->nfails + 1, sizeof(*v), 8);
	if (v == NULL)
		return NULL;
	gp->fails = v;
	while (i < gp->nfails && gp->fails[i].offset < offset)
		i++;
	memmove(&gp->fails[i + 1], &gp->fails[i],
		(gp->nfails - i) * sizeof(*gp->fails));
	memset(&gp->fails[i], 0, sizeof(gp->fails[i]));
	gp->fails[i].offset = offset;
	gp->nfails++;
	return &gp->fails[i];
}

static void
fail_remove(struct gpart *gp, struct failrec *fr)
{
	size_t i = (size_t)(fr - gp->fails);

	memmove(&gp->fails[i], &gp->fails[i + 1],
		(gp->nfails - i - 1) * sizeof(*gp->fails));
	gp->nfails--;
}

/* Adds l to the lease table and its owner's list. */
static int
lease_insert(struct groups *gs, struct lease *l)
{
	if (lease_table_insert(&gs->leases, l) < 0)
		return -ENOMEM;
	l->lo_prev = NULL;
	l->lo_next = l->lo->leases;
	if (l->lo_next)
		l->lo_next->lo_prev = l;
	l->lo->leases = l;
	return 0;
}

/* Takes l out of the lease table and its owner's list. */
void
lease_unlink(struct groups *gs, struct lease *l)
{
	lease_table_remove(&gs->leases, l);
	if (l->lo_prev)
		l->lo_prev->lo_next = l->lo_next;
	else
		l->lo->leases = l->lo_next;
	if (l->lo_next)
		l->lo_next->lo_prev = l->lo_prev;
	/* Only the end of the owner's last lease matters (the idle rule);
	 * an ack of one of many reads no clock. */
	if (l->lo->leases == NULL)
		l->lo->last_end_ms = clock_mono_ms();
}

/* --------------------------------------------------------- retry heap */

/* Holds offset of gp back until delay_ms from now. */
int
gpart_hold(struct groups *gs, struct gpart *gp, uint64_t offset,
	   uint64_t delay_ms)
{
	struct retry r = {
		.due_ms = sat_add(clock_mono_ms(), delay_ms),
		.g = gp->g,
		.part = gp->index,
		.offset = offset,
	};

	if (u64set_add(&gp->held, offset) < 0)
		return -ENOMEM;
	if (heap_push(&gs->retries, &r) < 0) {
		u64set_remove(&gp->held, offset);
		return -ENOMEM;
	}
	return 0;
}

void
lease_owner_init(struct lease_owner *lo)
{
	memset(lo, 0, sizeof(*lo));
}

void
lease_owner_fini(struct lease_owner *lo)
{
	free(lo->recent);
	lo->recent = NULL;
}

void
lease_owner_remember(struct lease_owner *lo, uint64_t id, int code)
{
	size_t slot = id & (LEASE_RECENT - 1);

	if (lo->recent == NULL &&
	    (lo->recent = calloc(LEASE_RECENT, sizeof(*lo->recent))) == NULL)
		return;
	lo->recent[slot].id = id;
	lo->recent[slot].code = code;
}

/* -------------------------------------------------------------- groups */

int
groups_new(struct groups **out, struct store *s, struct queues *qs,
	   uint64_t boot_epoch)
{
	struct groups *gs = calloc(1, sizeof(*gs));

	*out = NULL;
	if (gs == NULL)
		return -ENOMEM;
	gs->store = s;
	gs->qs = qs;
	gs->epoch = boot_epoch;
	gs->retries = (struct heap)HEAP_INIT(struct retry);
	if (lease_table_init(&gs->leases) < 0) {
		free(gs);
		return -ENOMEM;
	}
	*out = gs;
	return 0;
}

void
group_free(struct group *g)
{
	if (g == NULL)
		return;
	for (uint32_t i = 0; g->parts && i < g->q->partitions; i++) {
		runset_free(&g->parts[i].acked);
		u64set_free(&g->parts[i].redeliver);
		u64set_free(&g->parts[i].held);
		free(g->parts[i].fails);
	}
	while (g->waiting) {
		struct pending_sub *ps = g->waiting;

		g->waiting = ps->next;
		free(ps);
	}
	while (g->subs) {
		struct sub *s = g->subs;

		g->subs = s->next;
		free(s);
	}
	free(g->parts);
	free(g);
}

static void
free_queue_groups(void *ctx, struct queue *q)
{
	(void)ctx;
	while (q->groups) {
		struct group *g = q->groups;

		q->groups = g->next;
		group_free(g);
	}
}

void
groups_free(struct groups *gs)
{
	if (gs == NULL)
		return;
	queues_each(gs->qs, free_queue_groups, NULL);
	lease_table_fini(&gs->leases);
	store_batch_free(gs->flush);
	free(gs->staged);
	free(gs->corrupt);
	heap_fini(&gs->retries);
	free(gs->waiters);
	free(gs->failed); /* the broker stops: nobody to answer */
	free(gs);
}

struct group *
group_find(struct queue *q, const char *name)
{
	for (struct group *g = q->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

static struct group *
group_find_id(struct queue *q, uint32_t gid)
{
	for (struct group *g = q->groups; g; g = g->next)
		if (g->gid == gid)
			return g;
	return NULL;
}

/* A group in memory, linked at the end of q's list. */
static struct group *
group_new(struct groups *gs, struct queue *q, uint32_t gid, const char *name)
{
	struct group *g = calloc(1, sizeof(*g));
	struct group **pp = &q->groups;

	if (g == NULL)
		return NULL;
	g->parts = calloc(q->partitions, sizeof(*g->parts));
	if (g->parts == NULL) {
		free(g);
		return NULL;
	}
	for (uint32_t i = 0; i < q->partitions; i++) {
		g->parts[i].g = g;
		g->parts[i].index = i;
	}
	g->gid = gid;
	g->q = q;
	g->gs = gs;
	snprintf(g->name, sizeof(g->name), "%s", name);
	while (*pp)
		pp = &(*pp)->next;
	*pp = g;
	if (gid >= q->next_gid)
		q->next_gid = gid + 1;
	return g;
}

void
group_unlink(struct group *g)
{
	struct group **pp = &g->q->groups;

	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
}

void
group_wake(struct groups *gs, struct group *g)
{
	if (g->is_woken || gs->is_stopped)
		return;
	g->is_woken = 1;
	g->wake_next = gs->woken;
	gs->woken = g;
}

void
groups_wake_queue(struct groups *gs, struct queue *q)
{
	for (struct group *g = q->groups; g; g = g->next)
		group_wake(gs, g);
}

void
gpart_dirty(struct groups *gs, struct gpart *gp)
{
	if (gp->is_dirty)
		return;
	gp->is_dirty = 1;
	gp->dirty_next = gs->dirty;
	gs->dirty = gp;
}

/* ------------------------------------------------------------ recovery */

int
groups_load_group(struct groups *gs, struct queues *qs,
		  const struct store_group *sg)
{
	struct queue *q = queues_find_id(qs, sg->qid);

	if (q == NULL)
		return 0; /* leftover of a deleted queue */
	return group_new(gs, q, sg->gid, sg->name) ? 0 : -ENOMEM;
}

static struct gpart *
load_gpart(struct queues *qs, uint32_t qid, uint32_t gid, uint32_t part)
{
	struct queue *q = queues_find_id(qs, qid);
	struct group *g;

	if (q == NULL || part >= q->partitions)
		return NULL;
	g = group_find_id(q, gid);
	return g ? &g->parts[part] : NULL;
}

int
groups_load_state(struct groups *gs, struct queues *qs, uint32_t qid,
		  uint32_t gid, uint32_t part, uint64_t ack_floor,
		  const struct offset_run *runs, uint32_t nruns)
{
	struct gpart *gp = load_gpart(qs, qid, gid, part);

	(void)gs;
	if (gp == NULL)
		return 0;
	gp->ack_floor = gp->read_pos = ack_floor;
	for (uint32_t i = 0; i < nruns; i++) {
		uint64_t first = runs[i].first, count = runs[i].count;

		if (first < ack_floor) { /* only what lies above the floor */
			if (ack_floor - first >= count)
				continue;
			count -= ack_floor - first;
			first = ack_floor;
		}
		if (runset_add_run(&gp->acked, first, count) < 0)
			return -ENOMEM;
	}
	return 0;
}

int
groups_load_failure(struct groups *gs, struct queues *qs, uint32_t qid,
		    uint32_t gid, uint32_t part, uint64_t offset,
		    const struct store_failure *f)
{
	if (gid == CORRUPT_GID)
		return corrupt_add(gs, qid, part, offset);

	struct gpart *gp = load_gpart(qs, qid, gid, part);
	struct failrec *fr;

	if (gp == NULL)
		return 0;
	fr = fail_add(gp, offset);
	if (fr == NULL)
		return -ENOMEM;
	fr->f = *f;
	if (f->retry_at_ms > clock_wall_ms())
		return gpart_hold(gs, gp, offset,
				  f->retry_at_ms - clock_wall_ms());
	/* Owed its dead letter (there was no room for it): held, and the
	 * first tick tries it (held_dead_letter); unless the group has acked
	 * it since (a reset past it), which the group state, loaded first,
	 * says. */
	if (gp->g->q->policy.max_deliveries != 0 &&
	    f->failures >= gp->g->q->policy.max_deliveries &&
	    offset >= gp->ack_floor && !runset_has(&gp->acked, offset))
		return gpart_hold(gs, gp, offset, 0);
	return 0;
}

/* --------------------------------------------------------- ack floor */

/* 1 if every group of q but skip (NULL: none) has acked offset off of
 * partition part; 0 for a queue without groups. */
static int
acked_by_all(const struct queue *q, uint32_t part, uint64_t off,
	     const struct group *skip)
{
	for (const struct group *g = q->groups; g; g = g->next) {
		const struct gpart *gp = &g->parts[part];

		if (g != skip && off >= gp->ack_floor &&
		    !runset_has(&gp->acked, off))
			return 0;
	}
	return q->groups != NULL;
}

/* Marks off acked for gp's group, and in the partition's index when every
 * group has now acked it: no longer retained, though stored until every
 * floor passes it. @return 0 or -ENOMEM. */
static int
gpart_mark_acked(struct gpart *gp, uint64_t off)
{
	struct queue *q = gp->g->q;

	if (off < gp->ack_floor)
		return 0;
	if (runset_add(&gp->acked, off) < 0)
		return -ENOMEM;
	if (acked_by_all(q, gp->index, off, gp->g))
		partition_mark_acked(&q->parts[gp->index], off);
	return 0;
}

void
groups_recount_acked(struct queue *q)
{
	for (uint32_t i = 0; i < q->partitions; i++) {
		struct partition *p = &q->parts[i];
		const struct gpart *first;
		uint64_t floor = min_floor(q, i);
		const struct offset_run *runs;
		size_t nruns;

		partition_clear_acked(p);
		if (q->groups == NULL)
			continue;
		/* Below every floor: acked by all. Above it, only offsets in
		 * the runs of a group whose floor is that lowest one. */
		for (uint64_t x = partition_next(p, p->base);
		     x != UINT64_MAX && x < floor; x = partition_next(p, x + 1))
			partition_mark_acked(p, x);
		first = NULL;
		for (const struct group *g = q->groups; g; g = g->next)
			if (g->parts[i].ack_floor == floor)
				first = &g->parts[i];
		runs = runset_runs(&first->acked, &nruns);
		for (size_t r = 0; r < nruns; r++)
			for (uint64_t k = 0; k < runs[r].count; k++)
				if (acked_by_all(q, i, runs[r].first + k, NULL))
					partition_mark_acked(p,
							     runs[r].first + k);
	}
}

int
gpart_ack_gone(struct gpart *gp, const struct partition *p)
{
	if (p->acked_count == 0)
		return 0;
	for (uint64_t x = partition_next(p, p->base); x != UINT64_MAX;
	     x = partition_next(p, x + 1))
		if (partition_is_acked(p, x) && runset_add(&gp->acked, x) < 0)
			return -ENOMEM;
	return 0;
}

/* Moves the floor past acked offsets and holes; drops acked entries below
 * it. Marks gp dirty if anything changed. */
void
gpart_advance(struct groups *gs, struct gpart *gp)
{
	const struct partition *p = &gp->g->q->parts[gp->index];
	uint64_t before = gp->ack_floor;

	for (;;) {
		uint64_t next = partition_next(p, gp->ack_floor);

		if (next == UINT64_MAX) {
			/* No retained message at or above the floor. */
			if (gp->ack_floor < p->committed_next)
				gp->ack_floor = p->committed_next;
			break;
		}
		if (gp->acked.count > 0 && runset_first(&gp->acked) == next) {
			runset_pop(&gp->acked);
			gp->ack_floor = next + 1;
			continue;
		}
		if (next > gp->ack_floor)
			gp->ack_floor = next;
		break;
	}
	while (gp->acked.count > 0 && runset_first(&gp->acked) < gp->ack_floor)
		runset_pop(&gp->acked);
	if (gp->read_pos < gp->ack_floor)
		gp->read_pos = gp->ack_floor;
	if (gp->ack_floor != before)
		gpart_dirty(gs, gp);
}

/* ------------------------------------------------------------ subscribe */

static void
ready_unlink(struct group *g, struct sub *s)
{
	if (s->ready_next == s) {
		g->ready_subs = NULL;
	} else {
		s->ready_prev->ready_next = s->ready_next;
		s->ready_next->ready_prev = s->ready_prev;
		if (g->ready_subs == s)
			g->ready_subs = s->ready_next;
	}
	if (g->ready_last == s)
		g->ready_last = NULL;
	s->ready_next = s->ready_prev = NULL;
}

/* With hundreds of consumers most subscriptions are full; a scan of all
 * of them per delivery was a cache miss each (a tenth of the broker's
 * CPU at 1,000 connections). One that gets credit again joins the ring
 * just before the next one to try: last in the current round, or next
 * when the next one to try is the one served last. */
void
sub_ready_update(struct sub *s)
{
	struct group *g = s->g;
	int is_free = s->leased < s->credit;

	if (is_free && s->ready_next == NULL) {
		struct sub *n = g->ready_subs;

		if (n == NULL) {
			s->ready_next = s->ready_prev = s;
			g->ready_subs = s;
		} else {
			s->ready_next = n;
			s->ready_prev = n->ready_prev;
			n->ready_prev->ready_next = s;
			n->ready_prev = s;
			if (n == g->ready_last)
				g->ready_subs = s;
		}
	} else if (!is_free && s->ready_next != NULL) {
		ready_unlink(g, s);
	}
}

static struct sub *
sub_attach(struct group *g, const struct pending_sub *ps)
{
	struct sub *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->id = ps->id;
	s->g = g;
	s->owner = ps->owner;
	s->lo = ps->lo;
	s->ops = ps->ops;
	s->credit = ps->credit;
	s->next = g->subs;
	if (g->subs)
		g->subs->prev = s;
	g->subs = s;
	sub_ready_update(s);
	group_wake(g->gs, g);
	return s;
}

struct create_req {
	struct groups *gs;
	struct queues *qs;
	uint32_t qid, gid;
	lease_done_fn done; /* optional: the create's requester */
	void *ctx;
};

static void
group_created(void *arg, int status)
{
	struct create_req *r = arg;
	struct queue *q = queues_find_id(r->qs, r->qid);
	struct group *g = q ? group_find_id(q, r->gid) : NULL;
	lease_done_fn done = r->done;
	void *ctx = r->ctx;

	r->gs->npending--;
	free(r);
	/* Answered in the completion that ends the pending state: a
	 * request pipelined behind the create, waiting for that state to
	 * end, is answered after it. */
	if (done != NULL)
		done(ctx, status);
	if (g == NULL)
		return;
	g->is_pending = 0;
	if (status < 0) {
		log_warn("group %s/%s: create failed: %s", q->name, g->name,
			 err_str(status));
		group_unlink(g);
		groups_recount_acked(q);
	} else {
		log_info("group %s/%s created", q->name, g->name);
	}
	while (g->waiting) {
		struct pending_sub *ps = g->waiting;
		struct sub *s = NULL;

		g->waiting = ps->next;
		if (status == 0) {
			s = sub_attach(g, ps);
			ps->done(ps->ctx, s ? 0 : -ENOMEM, s);
		} else {
			ps->done(ps->ctx, status, NULL);
		}
		free(ps);
	}
	if (status < 0)
		group_free(g);
}

/* Creates group gname of q and submits its records. */
struct group *
group_create(struct groups *gs, struct queue *q, const char *gname,
	     int is_latest, lease_done_fn done, void *ctx)
{
	struct store_group sg;
	/* Not a growing batch: consumers must be able to start (and free
	 * space) when storage is near full. */
	struct store_batch *b = store_batch_new(0);
	struct create_req *r = calloc(1, sizeof(*r));
	struct group *g = NULL;

	if (b == NULL || r == NULL)
		goto fail;
	g = group_new(gs, q, q->next_gid, gname);
	if (g == NULL)
		goto fail;
	memset(&sg, 0, sizeof(sg));
	sg.qid = q->qid;
	sg.gid = g->gid;
	sg.created_ms = clock_wall_ms();
	snprintf(sg.name, sizeof(sg.name), "%s", gname);
	if (store_batch_put_group(b, &sg) < 0)
		goto fail;
	for (uint32_t i = 0; i < q->partitions; i++) {
		struct gpart *gp = &g->parts[i];
		const struct partition *p = &q->parts[i];

		const struct offset_run *runs;
		size_t nruns;

		gp->ack_floor = is_latest ? p->next_offset : p->base;
		gp->read_pos = gp->ack_floor;
		if (!is_latest && gpart_ack_gone(gp, p) < 0)
			goto fail;
		/* Redriven dead letters belong to the group they died in. */
		for (size_t k = 0; k < p->privates.n; k++) {
			uint64_t x = p->privates.v[p->privates.start + k];

			if (x >= gp->ack_floor && runset_add(&gp->acked, x) < 0)
				goto fail;
		}
		runs = runset_runs(&gp->acked, &nruns);
		if (store_batch_put_group_state(b, q->qid, g->gid, i,
						gp->ack_floor, runs, nruns) < 0)
			goto fail;
	}
	g->is_pending = 1;
	gs->npending++;
	groups_recount_acked(q);
	/* A group from the latest as the only one acks what came before
	 * it: delete that now, as an ack would (peek agrees then). */
	for (uint32_t i = 0; is_latest && i < q->partitions; i++)
		if (partition_trim(q, i, min_floor(q, i), b) < 0)
			goto fail;
	r->gs = gs;
	r->qs = gs->qs;
	r->qid = q->qid;
	r->gid = g->gid;
	r->done = done;
	r->ctx = ctx;
	store_submit(gs->store, b, group_created, r);
	return g;
fail:
	if (g != NULL) {
		group_unlink(g);
		group_free(g);
	}
	store_batch_free(b);
	free(r);
	return NULL;
}

int
group_subscribe(struct groups *gs, struct queue *q, const char *gname,
		int is_latest, uint32_t credit, void *owner,
		struct lease_owner *lo, const struct sub_ops *ops, uint32_t id,
		sub_done_fn done, void *ctx)
{
	struct group *g = group_find(q, gname);
	struct pending_sub *ps = calloc(1, sizeof(*ps));
	struct sub *s;

	if (ps == NULL)
		return -ENOMEM;
	ps->owner = owner;
	ps->lo = lo;
	ps->ops = ops;
	ps->id = id;
	ps->credit = credit;
	ps->done = done;
	ps->ctx = ctx;
	if (g == NULL) {
		g = group_create(gs, q, gname, is_latest, NULL, NULL);
		if (g == NULL) {
			free(ps);
			return -ENOMEM;
		}
	}
	if (g->is_pending) {
		ps->next = g->waiting;
		g->waiting = ps;
		return 0;
	}
	s = sub_attach(g, ps);
	free(ps);
	if (s == NULL)
		return -ENOMEM;
	done(ctx, 0, s);
	return 0;
}

uint32_t
sub_id(const struct sub *s)
{
	return s->id;
}

void
sub_set_credit(struct groups *gs, struct sub *s, uint32_t credit)
{
	s->credit = credit;
	sub_ready_update(s);
	group_wake(gs, s->g);
}

void
sub_wake(struct groups *gs, struct sub *s)
{
	group_wake(gs, s->g);
}

void
sub_free(struct groups *gs, struct sub *s)
{
	struct group *g;

	(void)gs;
	if (s == NULL)
		return;
	g = s->g;
	for (struct lease *l = s->lo->leases; l; l = l->lo_next)
		if (l->sub == s)
			l->sub = NULL;
	if (s->ready_next != NULL)
		ready_unlink(g, s);
	if (s->prev)
		s->prev->next = s->next;
	else
		g->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* ------------------------------------------------------------- leases */

enum lease_end {
	END_ACK,
	END_FAIL,    /* nack, expiry, disconnect: counts as a failure */
	END_RELEASE, /* ready again, not a failure */
};

struct store_batch *
flush_batch(struct groups *gs)
{
	if (gs->flush == NULL)
		gs->flush = store_batch_new(0);
	return gs->flush;
}

/* Records one more failed lease of l's message, in memory and in the
 * next flush. */
static void
lease_count_failure(struct groups *gs, struct lease *l, struct gpart *gp,
		    uint64_t delay_ms)
{
	struct failrec *fr = fail_find(gp, l->offset);
	struct store_batch *b = flush_batch(gs);

	if (fr == NULL)
		fr = fail_add(gp, l->offset);
	if (fr == NULL || b == NULL) {
		log_error("group %s/%s: out of memory counting a failure",
			  l->g->q->name, l->g->name);
		return;
	}
	if (fr->f.failures == 0)
		fr->f.first_delivery_ms = l->delivered_wall_ms;
	fr->f.failures++;
	fr->f.last_delivery_ms = l->delivered_wall_ms;
	fr->f.retry_at_ms = delay_ms ? sat_add(clock_wall_ms(), delay_ms) : 0;
	if (store_batch_put_failure(b, l->g->q->qid, l->g->gid, l->part,
				    l->offset, &fr->f) < 0)
		log_error("group %s/%s: out of memory recording a failure",
			  l->g->q->name, l->g->name);
}

/* Acks offset for gp's group: its failure record goes, its ack goes into
 * the next flush. */
void
gpart_ack(struct groups *gs, struct gpart *gp, uint64_t offset)
{
	struct group *g = gp->g;
	struct failrec *fr = fail_find(gp, offset);

	if (fr != NULL) {
		struct store_batch *b = flush_batch(gs);

		fail_remove(gp, fr);
		if (b == NULL ||
		    store_batch_del_failures(b, g->q->qid, g->gid, gp->index,
					     offset, offset + 1) < 0)
			log_error("group %s/%s: out of memory deleting a "
				  "failure record",
				  g->q->name, g->name);
	}
	if (gpart_mark_acked(gp, offset) < 0) {
		log_error("group %s/%s: out of memory acking offset %llu",
			  g->q->name, g->name, (unsigned long long)offset);
		return;
	}
	gpart_dirty(gs, gp);
	gpart_advance(gs, gp);
}

/* A recent_code of lease_end: remember nothing (codes are 0 or below). */
#define LEASE_NOT_REMEMBERED 1

static void
lease_ack(struct groups *gs, struct lease *l, struct gpart *gp)
{
	gpart_ack(gs, gp, l->offset);
}

/* Ends lease l as how says, and frees it. recent_code (0,
 * -RMQ_ELEASE_EXPIRED or -RMQ_ENOT_LEASED) is remembered for later
 * requests naming the same id, unless LEASE_NOT_REMEMBERED. reason: what
 * a failing nack said (NULL: nothing), for a dead letter. */
static void
lease_end(struct groups *gs, struct lease *l, enum lease_end how,
	  int recent_code, uint64_t delay_ms, const char *reason)
{
	struct gpart *gp = &l->g->parts[l->part];

	lease_unlink(gs, l);
	if (recent_code != LEASE_NOT_REMEMBERED)
		lease_owner_remember(l->lo, l->id, recent_code);
	if (l->sub) {
		l->sub->leased--;
		sub_ready_update(l->sub);
	}
	if (l->lo->quota != NULL) {
		struct lease_quota *q = l->lo->quota;

		if (q->held-- == q->max && q->max != 0 && gs->quota_room)
			gs->quota_room(gs->quota_room_ctx, q);
	}
	gp->leased--;
	switch (how) {
	case END_ACK: lease_ack(gs, l, gp); break;
	case END_FAIL:
		if (l->g->q->policy.max_deliveries != 0 &&
		    l->delivery_count >= l->g->q->policy.max_deliveries) {
			int rc = lease_dead_letter(gs, l, gp, reason);

			if (rc == 0) {
				/* Gone from this group: acked, failure
				 * record deleted, in the same commit as the
				 * dead letter. */
				lease_ack(gs, l, gp);
				groups_flush(gs);
				break;
			}
			/* No room: counted and held, not run again; the
			 * retry tries the dead letter (held_dead_letter). */
			if (rc == -ENOSPC)
				delay_ms = DEAD_LETTER_RETRY_MS;
		}
		lease_count_failure(gs, l, gp, delay_ms);
		if (delay_ms > 0) {
			if (gpart_hold(gs, gp, l->offset, delay_ms) == 0)
				break;
			log_error("group %s/%s: out of memory delaying offset "
				  "%llu; ready at once",
				  l->g->q->name, l->g->name,
				  (unsigned long long)l->offset);
		}
		__attribute__((fallthrough)); /* ready again at once */
	case END_RELEASE:
		if (u64set_add(&gp->redeliver, l->offset) < 0)
			log_error("group %s/%s: out of memory requeueing "
				  "offset %llu",
				  l->g->q->name, l->g->name,
				  (unsigned long long)l->offset);
		break;
	}
	group_wake(gs, l->g);
	lease_table_release(&gs->leases, l);
}

/* Looks up id for owner lo; on failure returns NULL and sets *code. */
static struct lease *
lease_lookup(struct groups *gs, struct lease_owner *lo, uint64_t id, int is_ack,
	     int *code)
{
	struct lease *l = lease_table_find(&gs->leases, id);
	size_t slot = id & (LEASE_RECENT - 1);

	if (l != NULL && l->lo == lo) {
		*code = 0;
		return l;
	}
	*code = -RMQ_ENOT_LEASED;
	if (l == NULL && lo->recent != NULL && lo->recent[slot].id == id) {
		if (lo->recent[slot].code == -RMQ_ELEASE_EXPIRED)
			*code = -RMQ_ELEASE_EXPIRED;
		else if (is_ack && lo->recent[slot].code == 0)
			*code = 0; /* acked before */
	}
	return NULL;
}

void
add_waiter(struct groups *gs, lease_done_fn done, void *ctx)
{
	struct waiter *w = vec_grow(gs->waiters, &gs->capwaiters,
				    gs->nwaiters + 1, sizeof(*w), 16);

	if (w == NULL) {
		done(ctx, -ENOMEM);
		return;
	}
	gs->waiters = w;
	gs->waiters[gs->nwaiters].done = done;
	gs->waiters[gs->nwaiters].ctx = ctx;
	gs->nwaiters++;
}

static void
lease_op(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
	 size_t n, int *codes, enum lease_end how, uint64_t delay_ms,
	 const char *reason, lease_done_fn done, void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		struct lease *l =
			lease_lookup(gs, lo, ids[i], how == END_ACK, &codes[i]);
		if (l == NULL)
			continue;
		if (how == END_ACK)
			l->g->q->counters.acked++;
		else if (how == END_FAIL)
			l->g->q->counters.nacked++;
		lease_end(gs, l, how, how == END_ACK ? 0 : -RMQ_ENOT_LEASED,
			  delay_ms, reason);
	}
	/* Confirmed after the flush that makes the change durable. */
	add_waiter(gs, done, ctx);
}

void
groups_ack(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
	   size_t n, int *codes, lease_done_fn done, void *ctx)
{
	lease_op(gs, lo, ids, n, codes, END_ACK, 0, NULL, done, ctx);
}

void
groups_nack(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
	    size_t n, uint64_t delay_ms, const char *reason, int *codes,
	    lease_done_fn done, void *ctx)
{
	lease_op(gs, lo, ids, n, codes, END_FAIL, delay_ms,
		 reason != NULL && reason[0] != '\0' ? reason : NULL, done,
		 ctx);
}

void
groups_release(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
	       size_t n, int *codes, lease_done_fn done, void *ctx)
{
	lease_op(gs, lo, ids, n, codes, END_RELEASE, 0, NULL, done, ctx);
}

void
groups_touch(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
	     size_t n, uint64_t lease_ms, int *codes, uint64_t *remaining_ms)
{
	uint64_t now = clock_mono_ms();

	for (size_t i = 0; i < n; i++) {
		struct lease *l = lease_lookup(gs, lo, ids[i], 0, &codes[i]);
		const struct store_policy *pol;
		uint64_t deadline, cap;

		remaining_ms[i] = 0;
		if (l == NULL)
			continue;
		pol = &l->g->q->policy;
		deadline = sat_add(now, lease_ms ? lease_ms : pol->lease_ms);
		cap = sat_add(l->delivered_ms, pol->max_lease_ms);
		if (deadline > cap)
			deadline = cap;
		if (deadline < now)
			deadline = now;
		l->deadline_ms = deadline;
		lease_table_reschedule(&gs->leases, l);
		remaining_ms[i] = deadline - now;
	}
}

void
groups_owner_gone(struct groups *gs, struct lease_owner *lo, int is_failure)
{
	while (lo->leases)
		lease_end(gs, lo->leases, is_failure ? END_FAIL : END_RELEASE,
			  LEASE_NOT_REMEMBERED, 0, NULL);
}

void
groups_set_quota_room(struct groups *gs,
		      void (*fn)(void *ctx, struct lease_quota *q), void *ctx)
{
	gs->quota_room = fn;
	gs->quota_room_ctx = ctx;
}

void
groups_owner_leave(struct groups *gs, struct lease_owner *lo,
		   int (*keep)(void *ctx, const struct queue *q), void *ctx)
{
	struct lease *l = lo->leases, *next;

	for (; l != NULL; l = next) {
		next = l->lo_next;
		if (!keep(ctx, l->g->q))
			lease_end(gs, l, END_RELEASE, LEASE_NOT_REMEMBERED, 0,
				  NULL);
	}
}

const struct queue *
sub_queue(const struct sub *s)
{
	return s->g->q;
}

/* The lease a delivery starts with: the lease time, never past the max
 * lease (a queue may set a lease time above it). */
static uint64_t
first_lease_ms(const struct store_policy *pol)
{
	return pol->lease_ms < pol->max_lease_ms ? pol->lease_ms
						 : pol->max_lease_ms;
}

/* ------------------------------------------------------------ dispatch */

/* The next offset of gp to deliver, from the redelivery set first.
 * @return 1 with *off set, or 0 if nothing is ready. */
static int
gpart_peek(struct gpart *gp, uint64_t *off, int *is_redelivery)
{
	const struct partition *p = &gp->g->q->parts[gp->index];

	if (gp->redeliver.n > 0) {
		*off = u64set_first(&gp->redeliver);
		*is_redelivery = 1;
		return 1;
	}
	*is_redelivery = 0;
	for (;;) {
		uint64_t x = partition_next(p, gp->read_pos);

		if (x == UINT64_MAX) {
			if (gp->read_pos < p->committed_next)
				gp->read_pos = p->committed_next;
			return 0;
		}
		if (runset_has(&gp->acked, x) || u64set_has(&gp->held, x)) {
			gp->read_pos = x + 1;
			continue;
		}
		gp->read_pos = x;
		*off = x;
		return 1;
	}
}

/* Takes off out of the ready state (after a delivery or a skip). */
static void
gpart_take(struct gpart *gp, int is_redelivery)
{
	if (is_redelivery)
		u64set_pop(&gp->redeliver);
	else
		gp->read_pos++;
}

static int
quota_is_full(const struct lease_owner *lo)
{
	return lo->quota != NULL && lo->quota->max != 0 &&
	       lo->quota->held >= lo->quota->max;
}

static struct sub *
next_sub(struct group *g)
{
	struct sub *start = g->ready_subs;
	struct sub *s = start;

	if (s == NULL)
		return NULL;
	do {
		if (s->ops->is_writable(s->owner) && !quota_is_full(s->lo))
			return s;
		s = s->ready_next;
	} while (s != start);
	return NULL;
}

/* The clocks of a dispatch pass, read once for many deliveries (three
 * reads a delivery were 3 % of the broker's CPU). */
struct dispatch_clock {
	uint64_t mono_ms;
	uint64_t wall_ms;
};

/* Delivers offset off of partition gp to s. @return 0 delivered, 1
 * skipped (unreadable record), -1 could not send (nothing changed). */
static int
deliver_one(struct groups *gs, struct group *g, struct gpart *gp, struct sub *s,
	    uint64_t off, int is_redelivery, const struct dispatch_clock *now)
{
	struct store_msg_view v;
	struct failrec *fr;
	struct delivery d;
	struct lease *l;
	int rc;
	rc = store_msg_get(gs->store, g->q->qid, gp->index, off, &v);
	if (rc < 0) {
		/* Never delivered as good: dead-lettered once for the queue,
		 * and every group passes it by. */
		if (rc == -RMQ_ECORRUPT)
			corrupt_dead_letter(gs, g->q, gp->index, off);
		log_error("queue %s partition %u offset %llu: unreadable (%s); "
			  "skipped for group %s",
			  g->q->name, gp->index, (unsigned long long)off,
			  err_str(rc), g->name);
		gpart_take(gp, is_redelivery);
		if (gpart_mark_acked(gp, off) == 0) {
			gpart_dirty(gs, gp);
			gpart_advance(gs, gp);
		}
		return 1;
	}
	l = lease_table_alloc(&gs->leases);
	if (l == NULL)
		return -1;
	fr = fail_find(gp, off);
	l->id = (gs->epoch << 40) | (++gs->lease_counter & ((1ull << 40) - 1));
	l->g = g;
	l->part = gp->index;
	l->offset = off;
	l->sub = s;
	l->lo = s->lo;
	l->delivered_ms = now->mono_ms;
	l->delivered_wall_ms = now->wall_ms;
	l->deadline_ms =
		sat_add(l->delivered_ms, first_lease_ms(&g->q->policy));
	l->delivery_count = 1 + (fr ? fr->f.failures : 0);
	d.subscription = s->id;
	d.lease_id = l->id;
	d.partition = gp->index;
	d.offset = off;
	d.delivery_count = l->delivery_count;
	d.lease_remaining_ms = first_lease_ms(&g->q->policy);
	d.now_ms = now->wall_ms;
	if (lease_insert(gs, l) < 0) {
		lease_table_release(&gs->leases, l);
		return -1;
	}
	if (s->ops->deliver(s->owner, &d, &v) < 0) {
		lease_unlink(gs, l);
		lease_table_release(&gs->leases, l);
		return -1;
	}
	gpart_take(gp, is_redelivery);
	s->leased++;
	if (s->lo->quota != NULL)
		s->lo->quota->held++;
	sub_ready_update(s);
	g->q->counters.delivered++;
	g->q->counters.redelivered += l->delivery_count > 1;
	gp->leased++;
	return 0;
}

static void
group_dispatch(struct groups *gs, struct group *g)
{
	uint32_t nparts = g->q->partitions;
	int budget = DISPATCH_BUDGET;
	struct dispatch_clock now = { clock_mono_ms(), clock_wall_ms() };

	while (budget-- > 0) {
		struct sub *s = next_sub(g);
		uint64_t off = 0;
		int is_redelivery = 0;
		uint32_t i;

		if (s == NULL)
			return;
		/* Fresh every 64 turns: a long pass stays within a fraction
		 * of a millisecond. */
		if (budget % 64 == 0) {
			now.mono_ms = clock_mono_ms();
			now.wall_ms = clock_wall_ms();
		}
		for (i = 0; i < nparts; i++) {
			struct gpart *gp = &g->parts[(g->rr_part + i) % nparts];

			if (gpart_peek(gp, &off, &is_redelivery))
				break;
		}
		if (i == nparts)
			return;
		i = (g->rr_part + i) % nparts;
		int rc = deliver_one(gs, g, &g->parts[i], s, off, is_redelivery,
				     &now);
		if (rc < 0)
			return;
		if (rc == 0) {
			g->rr_part = (i + 1) % nparts;
			if (s->ready_next != NULL) {
				g->ready_subs = s->ready_next;
				g->ready_last = s;
			}
		}
	}
	group_wake(gs, g); /* budget spent: go on next pass */
}

/* --------------------------------------------------------------- flush */

static void
flush_done(void *arg, int status)
{
	struct flush_req *r = arg;
	struct groups *gs = r->gs;
	int answer = status; /* what its waiters get */

	gs->dead_letter_room -= r->room;
	if (r->is_in_flight) {
		gs->flushes_in_flight--;
		if (status < 0) {
			gs->flush_error = status;
			gs->fail_upto = gs->flush_seq;
		} else if (gs->flush_error < 0 && r->seq <= gs->fail_upto) {
			answer = gs->flush_error;
		}
		if (r->seq >= gs->fail_upto)
			gs->flush_error = 0;
	}
	if (status < 0)
		log_error("group state flush failed: %s", err_str(status));
	/* Its own writes stand or fall with its own status. */
	for (size_t i = 0; i < r->nstaged; i++)
		queue_staged_done(r->qs, &r->staged[i], status);
	for (size_t i = 0; i < r->n; i++)
		r->w[i].done(r->w[i].ctx, answer);
	free(r->staged);
	free(r);
}

/* The lowest ack floor of partition part over q's groups, or 0 when q
 * has no group (then nothing may be deleted). */
uint64_t
min_floor(const struct queue *q, uint32_t part)
{
	uint64_t m = UINT64_MAX;

	for (const struct group *g = q->groups; g; g = g->next)
		if (g->parts[part].ack_floor < m)
			m = g->parts[part].ack_floor;
	return m == UINT64_MAX ? 0 : m;
}

/* The waiters of a flush that could not be built get -ENOMEM from the
 * next groups_tick, not from here: a flush can run inside a connection's
 * close (its leases ending), and an answer that dropped the connection's
 * last reference would free it under the close. */
static void
fail_waiters(struct groups *gs)
{
	struct waiter *v = vec_grow(gs->failed, &gs->capfailed,
				    gs->nfailed + gs->nwaiters, sizeof(*v), 16);

	if (v == NULL) {
		/* No memory even for that: answered now, as the last
		 * resort. */
		for (size_t i = 0; i < gs->nwaiters; i++)
			gs->waiters[i].done(gs->waiters[i].ctx, -ENOMEM);
		gs->nwaiters = 0;
		return;
	}
	gs->failed = v;
	memcpy(gs->failed + gs->nfailed, gs->waiters,
	       gs->nwaiters * sizeof(*v));
	gs->nfailed += gs->nwaiters;
	gs->nwaiters = 0;
}

/* Answers the waiters fail_waiters kept. */
static void
answer_failed(struct groups *gs)
{
	struct waiter *w = gs->failed;
	size_t n = gs->nfailed;

	/* An answer may fail another flush: the array is taken first. */
	gs->failed = NULL;
	gs->nfailed = gs->capfailed = 0;
	for (size_t i = 0; i < n; i++)
		w[i].done(w[i].ctx, -ENOMEM);
	free(w);
}

void
groups_flush(struct groups *gs)
{
	struct store_batch *b;
	struct flush_req *r;
	int failed = 0;

	if (gs->dirty == NULL && gs->flush == NULL && gs->nwaiters == 0)
		return;
	b = flush_batch(gs);
	gs->flush = NULL;
	if (b == NULL)
		failed = 1;
	while (gs->dirty) {
		struct gpart *gp = gs->dirty;
		struct group *g = gp->g;
		struct queue *q = g->q;

		gs->dirty = gp->dirty_next;
		gp->is_dirty = 0;
		const struct offset_run *runs;
		size_t nruns;

		runs = runset_runs(&gp->acked, &nruns);
		if (b == NULL ||
		    store_batch_put_group_state(b, q->qid, g->gid, gp->index,
						gp->ack_floor, runs,
						nruns) < 0 ||
		    partition_trim(q, gp->index, min_floor(q, gp->index), b) <
			    0)
			failed = 1;
	}
	r = malloc(sizeof(*r) + gs->nwaiters * sizeof(r->w[0]));
	if (r == NULL || failed) {
		log_error("group state flush: out of memory");
		gs->dead_letter_room -= gs->staged_room;
		gs->staged_room = 0;
		for (size_t i = 0; i < gs->nstaged; i++)
			queue_staged_done(gs->qs, &gs->staged[i], -ENOMEM);
		gs->nstaged = 0;
		fail_waiters(gs);
		free(r);
		store_batch_free(b);
		return;
	}
	r->gs = gs;
	r->is_in_flight = false;
	r->room = gs->staged_room;
	gs->staged_room = 0;
	r->qs = gs->qs;
	r->staged = gs->staged;
	r->nstaged = gs->nstaged;
	gs->staged = NULL;
	gs->nstaged = gs->capstaged = 0;
	r->n = gs->nwaiters;
	if (r->n > 0)
		memcpy(r->w, gs->waiters, r->n * sizeof(r->w[0]));
	gs->nwaiters = 0;
	/* With nothing to write, the waiters are done, unless a flush is
	 * still in flight: a waiter may depend on it (a nack whose dead
	 * letter an earlier flush of this pass carries). The store completes
	 * batches in order and commits nothing for an empty one. */
	if (store_batch_ops(b) == 0 && gs->flushes_in_flight == 0) {
		store_batch_free(b);
		flush_done(r, 0);
		return;
	}
	r->is_in_flight = true;
	r->seq = ++gs->flush_seq;
	gs->flushes_in_flight++;
	store_submit(gs->store, b, flush_done, r);
}

int64_t
groups_tick(struct groups *gs)
{
	uint64_t now = clock_mono_ms();
	int64_t next = -1;

	if (gs->nfailed > 0)
		answer_failed(gs);
	while (lease_table_earliest(&gs->leases) != NULL &&
	       lease_table_earliest(&gs->leases)->deadline_ms <= now) {
		struct lease *l = lease_table_earliest(&gs->leases);

		l->g->q->counters.expired++;
		lease_end(gs, l, END_FAIL, -RMQ_ELEASE_EXPIRED, 0, NULL);
	}
	while (heap_top(&gs->retries) != NULL &&
	       heap_top_key(&gs->retries) <= now) {
		struct retry r = *(const struct retry *)heap_top(&gs->retries);
		struct gpart *gp = &r.g->parts[r.part];

		heap_pop(&gs->retries);
		if (!u64set_has(&gp->held, r.offset))
			continue;
		u64set_remove(&gp->held, r.offset);
		if (held_dead_letter(gs, gp, r.offset))
			continue;
		if (u64set_add(&gp->redeliver, r.offset) < 0)
			log_error("group %s/%s: out of memory requeueing "
				  "offset %llu",
				  r.g->q->name, r.g->name,
				  (unsigned long long)r.offset);
		group_wake(gs, r.g);
	}
	if (!gs->is_stopped) {
		struct group *woken = gs->woken;

		gs->woken = NULL;
		while (woken) {
			struct group *g = woken;

			woken = g->wake_next;
			g->is_woken = 0;
			if (!g->is_pending && !g->is_paused)
				group_dispatch(gs, g);
		}
	}
	groups_flush(gs);
	store_read_release(gs->store);
	if (gs->woken != NULL)
		return 0;
	if (lease_table_earliest(&gs->leases) != NULL)
		next = (int64_t)(lease_table_earliest(&gs->leases)
					 ->deadline_ms -
				 now);
	if (heap_top(&gs->retries) != NULL &&
	    (next < 0 || (int64_t)(heap_top_key(&gs->retries) - now) < next))
		next = (int64_t)(heap_top_key(&gs->retries) - now);
	return next;
}

void
groups_stop_dispatch(struct groups *gs)
{
	gs->is_stopped = 1;
	gs->woken = NULL;
}

/* ------------------------------------------------------------- counters */

uint64_t
gpart_unacked(const struct partition *p, const struct gpart *gp)
{
	uint64_t n = partition_count(p, gp->ack_floor, UINT64_MAX);
	size_t nruns;
	const struct offset_run *runs = runset_runs(&gp->acked, &nruns);

	/* Acked runs may cover holes (messages deleted since): only the
	 * retained messages in them count. */
	for (size_t r = 0; r < nruns; r++)
		n -= partition_count(p, runs[r].first,
				     runs[r].first + runs[r].count);
	return n;
}

void
groups_queue_counts(struct queue *q, uint64_t *ready, uint64_t *in_flight,
		    uint64_t *retrying, uint32_t *ngroups)
{
	*ready = *in_flight = *retrying = 0;
	*ngroups = 0;
	if (q->groups == NULL) {
		/* No group yet: everything retained waits for the first. */
		for (uint32_t i = 0; i < q->partitions; i++)
			*ready += q->parts[i].count - q->parts[i].ndelayed;
		return;
	}
	for (struct group *g = q->groups; g; g = g->next) {
		(*ngroups)++;
		for (uint32_t i = 0; i < q->partitions; i++) {
			const struct gpart *gp = &g->parts[i];

			*in_flight += gp->leased;
			*retrying += gp->held.n;
			*ready += gpart_unacked(&q->parts[i], gp) - gp->leased -
				  gp->held.n;
		}
	}
}

int
groups_any_pending(const struct groups *gs)
{
	return gs->npending > 0;
}

int
groups_is_pending(struct queue *q, const char *name)
{
	const struct group *g = group_find(q, name);

	return g != NULL && g->is_pending;
}

int
groups_exists(struct queue *q, const char *name)
{
	return group_find(q, name) != NULL;
}

int
groups_hide_offset(struct groups *gs, struct queue *q, uint32_t part,
		   uint64_t offset, const char *keep)
{
	for (struct group *g = q->groups; g; g = g->next) {
		if (strcmp(g->name, keep) == 0)
			continue;
		if (gpart_mark_acked(&g->parts[part], offset) < 0)
			return -ENOMEM;
		gpart_dirty(gs, &g->parts[part]);
	}
	return 0;
}
