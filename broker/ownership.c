/*
 * ownership: see ownership.h.
 */
#include "ownership.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "core/queue.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/vec.h"
#include "name_rule.h"
#include "req/req.h"

struct ownership {
	struct req_cluster cluster;
	struct req_broker *brokers; /* owned [cluster.nbrokers] */
	char controller[CLUSTER_ID_MAX];
	char self[CLUSTER_ID_MAX];
	/* Every owner address and broker id seen, kept for the run: few,
	 * as brokers are. */
	char **texts;
	size_t ntexts, captexts;
	/* The owner tables set on queues by the last apply. */
	struct part_owner **tables;
	size_t ntables;
	/* Names of the view's queues already created here when missing: a
	 * queue deleted here is not brought back by the next view. */
	char **seen;
	size_t nseen, capseen;
};

struct ownership *
ownership_new(const char *name, const char *id)
{
	struct ownership *o = calloc(1, sizeof(*o));

	if (o != NULL) {
		snprintf(o->self, sizeof(o->self), "%s", id);
		o->cluster.name = name;
		o->cluster.self = o->self;
	}
	return o;
}

static void
clear_owners(void *ctx, struct queue *q)
{
	(void)ctx;
	q->owners = NULL;
}

static void
free_tables(struct part_owner **tables, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(tables[i]);
	free(tables);
}

void
ownership_free(struct ownership *o, struct queues *qs)
{
	if (o == NULL)
		return;
	queues_each(qs, clear_owners, NULL);
	free_tables(o->tables, o->ntables);
	for (size_t i = 0; i < o->ntexts; i++)
		free(o->texts[i]);
	free(o->texts);
	for (size_t i = 0; i < o->nseen; i++)
		free(o->seen[i]);
	free(o->seen);
	free(o->brokers);
	free(o);
}

/* s, kept for the run (one copy per distinct text), or NULL. */
static const char *
keep_text(struct ownership *o, const char *s)
{
	char **v, *copy;

	for (size_t i = 0; i < o->ntexts; i++)
		if (strcmp(o->texts[i], s) == 0)
			return o->texts[i];
	v = vec_grow(o->texts, &o->captexts, o->ntexts + 1, sizeof(*v), 8);
	if (v == NULL)
		return NULL;
	o->texts = v;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	o->texts[o->ntexts++] = copy;
	return copy;
}

static void
created(void *ctx, int status)
{
	char *name = ctx;

	if (status < 0)
		log_warn("cluster: cannot create queue %s defined in the "
			 "cluster: %s",
			 name, err_str(status));
	free(name);
}

/* Creates queue cq here unless it exists or was seen before. */
static void
create_missing(struct ownership *o, struct queues *qs,
	       const struct cluster_queue *cq)
{
	char **v, *name;
	int rc;

	for (size_t i = 0; i < o->nseen; i++)
		if (strcmp(o->seen[i], cq->name) == 0)
			return;
	v = vec_grow(o->seen, &o->capseen, o->nseen + 1, sizeof(*v), 8);
	if (v == NULL)
		return;
	o->seen = v;
	if ((name = strdup(cq->name)) == NULL)
		return;
	o->seen[o->nseen++] = name;
	if (queues_find(qs, cq->name) != NULL ||
	    !name_rule_queue_ok(cq->name) || cq->partitions == 0 ||
	    cq->partitions > QUEUE_MAX_PARTITIONS ||
	    (name = strdup(cq->name)) == NULL)
		return;
	rc = queue_create(qs, cq->name, cq->partitions, NULL, created, name);
	if (rc != 0) {
		if (rc < 0)
			created(name, rc);
		else
			free(name);
		return;
	}
	log_info("cluster: queue %s (%u partitions) defined in the cluster, "
		 "created here",
		 cq->name, cq->partitions);
}

int
ownership_apply(struct ownership *o, const struct cluster_view *v,
		struct queues *qs)
{
	struct part_owner **tables = calloc(v->nqueues + 1, sizeof(*tables));
	struct req_broker *brokers = calloc(v->nbrokers + 1, sizeof(*brokers));
	const char **addrs = calloc(v->nbrokers + 1, sizeof(*addrs));
	size_t n = 0;

	if (tables == NULL || brokers == NULL || addrs == NULL)
		goto oom;
	for (size_t i = 0; i < v->nbrokers; i++) {
		brokers[i].id = keep_text(o, v->brokers[i].id);
		brokers[i].addr = addrs[i] = keep_text(o, v->brokers[i].addr);
		if (brokers[i].id == NULL || addrs[i] == NULL)
			goto oom;
	}
	for (size_t i = 0; i < v->nqueues; i++) {
		const struct cluster_queue *cq = &v->queues[i];
		struct queue *q = queues_find(qs, cq->name);
		struct part_owner *t;

		if (q == NULL || q->partitions != cq->partitions)
			continue;
		t = calloc(q->partitions, sizeof(*t));
		if (t == NULL)
			goto oom;
		for (uint32_t p = 0; p < q->partitions; p++) {
			int b = cq->owner[p];

			t[p].addr = b >= 0 ? addrs[b] : NULL;
			t[p].epoch = (uint64_t)cq->epoch[p];
			t[p].is_here = b >= 0 && b == v->self;
		}
		tables[n++] = t;
	}
	/* Everything needed is in hand: switch the queues over. */
	queues_each(qs, clear_owners, NULL);
	n = 0;
	for (size_t i = 0; i < v->nqueues; i++) {
		struct queue *q = queues_find(qs, v->queues[i].name);

		if (q != NULL && q->partitions == v->queues[i].partitions)
			q->owners = tables[n++];
	}
	free_tables(o->tables, o->ntables);
	o->tables = tables;
	o->ntables = n;
	free(o->brokers);
	o->brokers = brokers;
	o->cluster.brokers = brokers;
	o->cluster.nbrokers = v->nbrokers;
	memcpy(o->controller, v->controller, sizeof(o->controller));
	o->cluster.controller = o->controller;
	free(addrs);
	for (size_t i = 0; i < v->nqueues; i++)
		create_missing(o, qs, &v->queues[i]);
	return 0;
oom:
	free_tables(tables, n);
	free(brokers);
	free(addrs);
	return -ENOMEM;
}

const struct req_cluster *
ownership_cluster(const struct ownership *o)
{
	return &o->cluster;
}
