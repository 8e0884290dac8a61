/*
 * group_admin: consumer groups as administrators change them: create,
 * delete, reset, describe, and the group side of deleting or purging a
 * queue. The structures are group.c's (group_int.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/group_int.h"
#include "lib/err.h"
#include "lib/log.h"

int
groups_create_named(struct groups *gs, struct queue *q, const char *name,
		    int is_latest, lease_done_fn done, void *ctx)
{
	if (group_find(q, name) != NULL)
		return 1;
	if (group_create(gs, q, name, is_latest, done, ctx) == NULL)
		return -ENOMEM;
	return 0;
}

/* Ends every lease of g without counting a failure (the group is going,
 * or starts over): a later ack of one answers NOT_LEASED. */
static void
group_end_leases(struct groups *gs, struct group *g)
{
	struct lease_table *t = &gs->leases;

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct lease *l = t->buckets[i];

		while (l != NULL) {
			struct lease *next = l->hash_next;
			if (l->g == g) {
				lease_unlink(gs, l);
				lease_owner_remember(l->lo, l->id,
						     -RMQ_ENOT_LEASED);
				if (l->sub) {
					l->sub->leased--;
					sub_ready_update(l->sub);
				}
				g->parts[l->part].leased--;
				lease_table_release(&gs->leases, l);
			}
			l = next;
		}
	}
}

static int
retry_is_not_of(const void *e, void *g)
{
	return ((const struct retry *)e)->g != g;
}

/* Drops g's timers of nack delays: its held offsets are let go. */
static void
group_drop_retries(struct groups *gs, struct group *g)
{
	heap_filter(&gs->retries, retry_is_not_of, g);
}

/* Takes g out of every list of gs: woken, dirty, retries. */
static void
group_forget(struct groups *gs, struct group *g)
{
	struct group **gp = &gs->woken;
	struct gpart **pp = &gs->dirty;

	while (*gp) {
		if (*gp == g)
			*gp = g->wake_next;
		else
			gp = &(*gp)->wake_next;
	}
	while (*pp) {
		if ((*pp)->g == g)
			*pp = (*pp)->dirty_next;
		else
			pp = &(*pp)->dirty_next;
	}
	group_drop_retries(gs, g);
}

/* Ends g entirely in memory: leases, subscriptions (their owners are told),
 * subscribes still waiting (they get code). Unlinks and frees g. */
static void
group_end(struct groups *gs, struct group *g, int code)
{
	group_end_leases(gs, g);
	group_forget(gs, g);
	while (g->subs) {
		struct sub *s = g->subs;

		g->subs = s->next;
		s->ops->detached(s->owner, s, code);
		free(s);
	}
	while (g->waiting) {
		struct pending_sub *ps = g->waiting;

		g->waiting = ps->next;
		ps->done(ps->ctx, code, NULL);
		free(ps);
	}
	group_unlink(g);
	group_free(g);
}

int
groups_delete_named(struct groups *gs, struct queue *q, const char *name,
		    lease_done_fn done, void *ctx)
{
	struct group *g = group_find(q, name);
	struct store_batch *b;

	if (g == NULL || g->is_pending)
		return -RMQ_EGROUP_NOT_FOUND;
	b = store_batch_new(0);
	if (b == NULL || store_batch_del_group(b, q->qid, g->gid) < 0) {
		store_batch_free(b);
		return -ENOMEM;
	}
	log_info("group %s/%s deleted", q->name, g->name);
	group_end(gs, g, -RMQ_EGROUP_NOT_FOUND);
	groups_recount_acked(q);
	/* Without it the other groups' floors may allow deleting more. */
	for (uint32_t i = 0; i < q->partitions && q->groups; i++)
		if (partition_trim(q, i, min_floor(q, i), b) < 0)
			log_error("queue %s: out of memory trimming", q->name);
	store_submit(gs->store, b, done, ctx);
	return 0;
}

void
groups_drop_queue(struct groups *gs, struct queue *q)
{
	while (q->groups)
		group_end(gs, q->groups, -RMQ_EQUEUE_NOT_FOUND);
	for (size_t i = 0; i < gs->ncorrupt;)
		if (gs->corrupt[i].qid == q->qid)
			gs->corrupt[i] = gs->corrupt[--gs->ncorrupt];
		else
			i++;
}

/* Marks acked, in g's partition part, the redriven dead letters of
 * other groups (the offsets another group has not acked: its own), so that
 * a reset does not show them to g. @return 0 or -ENOMEM. */
static int
hide_others_privates(struct queue *q, struct group *g, uint32_t part)
{
	const struct u64set *pv = &q->parts[part].privates;
	struct gpart *gp = &g->parts[part];

	for (size_t k = 0; k < pv->n; k++) {
		uint64_t x = pv->v[pv->start + k];
		int is_others = 0;

		if (x < gp->ack_floor)
			continue;
		for (const struct group *h = q->groups; h && !is_others;
		     h = h->next) {
			const struct gpart *hp = &h->parts[part];

			is_others = h != g && x >= hp->ack_floor &&
				    !runset_has(&hp->acked, x);
		}
		if (is_others && runset_add(&gp->acked, x) < 0)
			return -ENOMEM;
	}
	return 0;
}

int
groups_pause_named(struct groups *gs, struct queue *q, const char *name,
		   int is_paused)
{
	struct group *g = group_find(q, name);

	if (g == NULL || g->is_pending)
		return -RMQ_EGROUP_NOT_FOUND;
	if (g->is_paused != !!is_paused)
		log_info("group %s of %s %s", g->name, q->name,
			 is_paused ? "paused" : "resumed");
	g->is_paused = !!is_paused;
	if (!g->is_paused)
		group_wake(gs, g);
	return 0;
}

int
groups_reset_named(struct groups *gs, struct queue *q, const char *name,
		   int is_latest, lease_done_fn done, void *ctx)
{
	struct group *g = group_find(q, name);

	if (g == NULL || g->is_pending)
		return -RMQ_EGROUP_NOT_FOUND;
	/* The group starts over: its leases end (not as failures), or a
	 * message still leased would be leased again; its nack delays end
	 * with its held offsets. */
	group_end_leases(gs, g);
	group_drop_retries(gs, g);
	for (uint32_t i = 0; i < q->partitions; i++) {
		struct gpart *gp = &g->parts[i];
		const struct partition *p = &q->parts[i];

		/* The stored retry times go too, or a restart would hold
		 * those messages again; the failure counts stay. */
		for (size_t k = 0; k < gp->nfails; k++) {
			struct failrec *fr = &gp->fails[k];
			struct store_batch *b;

			if (fr->f.retry_at_ms == 0)
				continue;
			b = flush_batch(gs);
			fr->f.retry_at_ms = 0;
			if (b == NULL ||
			    store_batch_put_failure(b, q->qid, g->gid, i,
						    fr->offset, &fr->f) < 0)
				log_error("group %s/%s: out of memory "
					  "resetting a retry time",
					  q->name, g->name);
		}

		runset_free(&gp->acked);
		u64set_free(&gp->redeliver);
		u64set_free(&gp->held);
		gp->ack_floor = gp->read_pos =
			is_latest ? p->next_offset : p->base;
		/* What every group acked (this one included, until now) is
		 * gone: not read again. */
		if (!is_latest && gpart_ack_gone(gp, p) < 0)
			log_error("group %s/%s: out of memory keeping acked "
				  "messages acked",
				  q->name, g->name);
		if (hide_others_privates(q, g, i) < 0)
			log_error("group %s/%s: out of memory hiding "
				  "redriven messages",
				  q->name, g->name);
		gpart_dirty(gs, gp);
		gpart_advance(gs, gp);
	}
	groups_recount_acked(q);
	log_info("group %s/%s reset to %s", q->name, g->name,
		 is_latest ? "latest" : "earliest");
	group_wake(gs, g);
	add_waiter(gs, done, ctx);
	return 0;
}

int
groups_purge_queue(struct groups *gs, struct queue *q, lease_done_fn done,
		   void *ctx, uint64_t *purged)
{
	struct u64set *keep = calloc(q->partitions, sizeof(*keep));
	struct store_batch *b = flush_batch(gs);
	struct lease_table *t = &gs->leases;

	*purged = 0;
	if (keep == NULL || b == NULL) {
		free(keep);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct lease *l = t->buckets[i]; l; l = l->hash_next)
			if (l->g->q == q &&
			    u64set_add(&keep[l->part], l->offset) < 0)
				goto oom;
	for (uint32_t i = 0; i < q->partitions; i++) {
		*purged += queue_purge_partition(q, i, &keep[i], b);
		for (struct group *g = q->groups; g; g = g->next) {
			struct gpart *gp = &g->parts[i];

			u64set_free(&gp->redeliver);
			u64set_free(&gp->held);
			gp->read_pos = q->parts[i].committed_next;
			gpart_dirty(gs, gp);
			gpart_advance(gs, gp);
		}
		u64set_free(&keep[i]);
	}
	free(keep);
	log_info("queue %s: purged %llu messages", q->name,
		 (unsigned long long)*purged);
	add_waiter(gs, done, ctx);
	groups_flush(gs);
	return 0;
oom:
	for (uint32_t i = 0; i < q->partitions; i++)
		u64set_free(&keep[i]);
	free(keep);
	return -ENOMEM;
}

/* ------------------------------------------------------------ describe */

void
groups_each(struct queue *q, void (*fn)(void *ctx, const struct group *g),
	    void *ctx)
{
	for (const struct group *g = q->groups; g; g = g->next)
		if (!g->is_pending)
			fn(ctx, g);
}

const char *
group_name(const struct group *g)
{
	return g->name;
}

static void
add_totals(void *ctx, struct queue *q)
{
	struct groups_totals *t = ctx;
	uint64_t m, b, d, r, i, w;
	uint32_t g;

	queue_totals(q, &m, &b, &d);
	groups_queue_counts(q, &r, &i, &w, &g);
	t->queues++;
	t->groups += g;
	t->messages += m;
	t->bytes += b;
	t->delayed += d + w;
	t->ready += r;
	t->in_flight += i;
}

void
groups_totals(struct queues *qs, struct groups_totals *t)
{
	memset(t, 0, sizeof(*t));
	queues_each(qs, add_totals, t);
}

void
group_info(const struct group *g, struct group_info *gi, uint64_t *floors)
{
	const struct queue *q = g->q;

	memset(gi, 0, sizeof(*gi));
	gi->is_paused = g->is_paused;
	for (const struct sub *s = g->subs; s; s = s->next)
		gi->consumers++;
	for (uint32_t i = 0; i < q->partitions; i++) {
		const struct gpart *gp = &g->parts[i];
		const struct partition *p = &q->parts[i];
		uint64_t unacked = gpart_unacked(p, gp);

		gi->lag += unacked;
		gi->in_flight += gp->leased;
		gi->ready += unacked - gp->leased - gp->held.n;
		if (floors)
			floors[i] = gp->ack_floor;
	}
}
