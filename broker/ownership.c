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

/* Strings kept for the run, each once: few (broker ids and addresses,
 * queue names), so found by a linear search. */
struct strs {
	char **v;
	size_t n, cap;
};

struct ownership {
	struct req_cluster cluster;
	struct req_broker *brokers; /* owned [cluster.nbrokers] */
	char controller[CLUSTER_ID_MAX];
	char self[CLUSTER_ID_MAX];
	/* Every owner address and broker id seen. */
	struct strs texts;
	/* The owner tables set on queues by the last apply. */
	struct part_owner **tables;
	size_t ntables;
	/* Names of the view's queues already created here when missing: a
	 * queue deleted here is not brought back by the next view. */
	struct strs seen;
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
strs_free(struct strs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* s's copy in l, added when missing (*added then 1, if added is not
 * NULL), or NULL when out of memory. */
static const char *
strs_keep(struct strs *l, const char *s, int *added)
{
	char **v, *copy;

	if (added != NULL)
		*added = 0;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return l->v[i];
	v = vec_grow(l->v, &l->cap, l->n + 1, sizeof(*v), 8);
	if (v == NULL)
		return NULL;
	l->v = v;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	l->v[l->n++] = copy;
	if (added != NULL)
		*added = 1;
	return copy;
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
	strs_free(&o->texts);
	strs_free(&o->seen);
	free(o->brokers);
	free(o);
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
	char *name;
	int added, rc;

	if (strs_keep(&o->seen, cq->name, &added) == NULL || !added)
		return;
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
		brokers[i].id = strs_keep(&o->texts, v->brokers[i].id, NULL);
		brokers[i].addr = addrs[i] =
			strs_keep(&o->texts, v->brokers[i].addr, NULL);
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
