/*
 * cluster: see cluster.h.
 */
#define _GNU_SOURCE
#include "cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cluster/coord.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/vec.h"

/* How long a stopping broker gives etcd to end its lease. */
#define CLUSTER_REVOKE_MS 500

struct pending_queue {
	char name[256];
	uint32_t partitions;
};

struct cluster {
	struct coord coord;
	struct controller ctl;
	char advertise[256];
	int64_t period_ms;
	int efd;
	/* Set when stopping: when the request in flight must end. */
	_Atomic uint64_t abort_at_ms;
	pthread_t thread;
	int is_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* Under mu: */
	int is_stopping;
	struct pending_queue *pending; /* owned [npending] */
	size_t npending, cappending;
	struct cluster_view *latest; /* owned; not taken yet */
	/* The thread's own: */
	int last_rc; /* of the last step: 1 before the first */
};

void
cluster_view_free(struct cluster_view *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nqueues; i++) {
		free(v->queues[i].owner);
		free(v->queues[i].epoch);
	}
	free(v->queues);
	free(v->brokers);
	free(v);
}

const char *
cluster_broker_id(const struct cluster *c)
{
	return c->ctl.id;
}

/* ---------------------------------------------------------- the view */

static int
view_broker(const struct cluster_view *v, const char *id)
{
	for (size_t i = 0; i < v->nbrokers; i++)
		if (strcmp(v->brokers[i].id, id) == 0)
			return (int)i;
	return -1;
}

static struct cluster_queue *
view_queue(struct cluster_view *v, const char *name, size_t len)
{
	for (size_t i = 0; i < v->nqueues; i++)
		if (strlen(v->queues[i].name) == len &&
		    memcmp(v->queues[i].name, name, len) == 0)
			return &v->queues[i];
	return NULL;
}

/* The view of everything under the cluster's prefix. */
static struct cluster_view *
view_build(const struct cluster *c, const struct coord_kvs *kvs)
{
	struct cluster_view *v = calloc(1, sizeof(*v));
	size_t plen = strlen(c->ctl.prefix);
	size_t capb = 0, capq = 0;

	if (v == NULL)
		return NULL;
	v->rev = kvs->rev;
	v->read_ms = clock_wall_ms();
	/* Keys come in order: brokers/, controller, parts/, queues/. Two
	 * passes: brokers and queues first, then what refers to them. */
	for (size_t i = 0; i < kvs->n; i++) {
		const struct coord_kv *kv = &kvs->v[i];
		const char *k = kv->key + plen;

		if (strncmp(k, "brokers/", 8) == 0) {
			struct cluster_broker *b =
				vec_grow(v->brokers, &capb, v->nbrokers + 1,
					 sizeof(*b), 8);

			if (b == NULL)
				goto oom;
			v->brokers = b;
			b = &v->brokers[v->nbrokers++];
			memset(b, 0, sizeof(*b));
			snprintf(b->id, sizeof(b->id), "%s", k + 8);
			snprintf(b->addr, sizeof(b->addr), "%s", kv->value);
		} else if (strcmp(k, "controller") == 0) {
			snprintf(v->controller, sizeof(v->controller), "%s",
				 kv->value);
			v->epoch = kv->create_rev;
		} else if (strncmp(k, "queues/", 7) == 0) {
			struct cluster_queue *q;
			unsigned n;

			if (sscanf(kv->value, "partitions=%u", &n) != 1 ||
			    n == 0 || n > 4096)
				continue;
			q = vec_grow(v->queues, &capq, v->nqueues + 1,
				     sizeof(*q), 8);
			if (q == NULL)
				goto oom;
			v->queues = q;
			q = &v->queues[v->nqueues];
			memset(q, 0, sizeof(*q));
			snprintf(q->name, sizeof(q->name), "%s", k + 7);
			q->partitions = n;
			q->owner = malloc(n * sizeof(*q->owner));
			q->epoch = calloc(n, sizeof(*q->epoch));
			v->nqueues++;
			if (q->owner == NULL || q->epoch == NULL)
				goto oom;
			for (unsigned p = 0; p < n; p++)
				q->owner[p] = -1;
		}
	}
	for (size_t i = 0; i < kvs->n; i++) {
		const struct coord_kv *kv = &kvs->v[i];
		const char *k = kv->key + plen, *slash;
		char who[CLUSTER_ID_MAX];
		struct cluster_queue *q;
		unsigned part;
		int64_t epoch;

		if (strncmp(k, "parts/", 6) != 0)
			continue;
		k += 6;
		slash = strrchr(k, '/');
		if (slash == NULL ||
		    (q = view_queue(v, k, (size_t)(slash - k))) == NULL ||
		    sscanf(slash + 1, "%u", &part) != 1 ||
		    part >= q->partitions ||
		    sscanf(kv->value, "owner=%63s epoch=%" SCNd64, who,
			   &epoch) != 2)
			continue;
		q->owner[part] = view_broker(v, who);
		q->epoch[part] = epoch;
	}
	/* What each broker owns, counted once here for every reader. */
	for (size_t i = 0; i < v->nqueues; i++) {
		const struct cluster_queue *q = &v->queues[i];

		v->partitions += q->partitions;
		for (uint32_t p = 0; p < q->partitions; p++)
			if (q->owner[p] >= 0)
				v->brokers[q->owner[p]].partitions++;
	}
	v->self = view_broker(v, c->ctl.id);
	v->owned = v->self >= 0 ? v->brokers[v->self].partitions : 0;
	v->is_controller = strcmp(v->controller, c->ctl.id) == 0;
	return v;
oom:
	cluster_view_free(v);
	return NULL;
}

static void
publish_view(struct cluster *c, struct cluster_view *v)
{
	uint64_t one = 1;

	pthread_mutex_lock(&c->mu);
	cluster_view_free(c->latest);
	c->latest = v;
	pthread_mutex_unlock(&c->mu);
	if (write(c->efd, &one, sizeof(one)) < 0)
		log_warn("cluster: eventfd: %s", strerror(errno));
}

struct cluster_view *
cluster_take_view(struct cluster *c)
{
	struct cluster_view *v;

	pthread_mutex_lock(&c->mu);
	v = c->latest;
	c->latest = NULL;
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* -------------------------------------------------------- the thread */

/* Writes the queue definitions handed over (create-if-absent: the
 * first definition of a name stands). */
static int
define_pending(struct cluster *c)
{
	struct pending_queue *p;
	size_t n;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	p = c->pending;
	n = c->npending;
	c->pending = NULL;
	c->npending = c->cappending = 0;
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char k[512], value[32];
		struct coord_cmp absent = { k, COORD_CREATE_REV, 0, NULL };
		struct coord_op put = { COORD_PUT, k, value, 0 };
		int64_t rev;
		int ok;

		snprintf(k, sizeof(k), "%squeues/%s", c->ctl.prefix, p[i].name);
		snprintf(value, sizeof(value), "partitions=%u",
			 p[i].partitions);
		rc = coord_txn(&c->coord, &absent, 1, &put, 1, &ok, &rev);
		if (rc == 0 && ok)
			log_info("cluster: queue %s defined (%u partitions)",
				 p[i].name, p[i].partitions);
		if (rc < 0) {
			/* Kept for the next step. */
			for (size_t j = i; j < n; j++)
				(void)cluster_define_queue(c, p[j].name,
							   p[j].partitions);
		}
	}
	free(p);
	return rc;
}

/* One round: membership, definitions, the controller's work, the view.
 * @return 0, or -errno when etcd did not answer. */
static int
step(struct cluster *c)
{
	struct coord_kvs kvs = { 0 };
	struct cluster_view *v;
	int rc;

	rc = c->ctl.lease == 0 ? controller_register(&c->ctl, c->advertise)
			       : controller_keepalive(&c->ctl, c->advertise);
	if (rc < 0)
		return rc;
	if ((rc = define_pending(c)) < 0)
		return rc;
	if (c->ctl.epoch == 0 && (rc = controller_campaign(&c->ctl)) < 0)
		return rc;
	if (c->ctl.epoch > 0) {
		long moved = controller_reconcile(&c->ctl);

		if (moved < 0 && moved != -EAGAIN && moved != -ESTALE)
			return (int)moved;
	}
	rc = coord_range(&c->coord, c->ctl.prefix, &kvs);
	if (rc < 0)
		return rc;
	v = view_build(c, &kvs);
	coord_kvs_free(&kvs);
	if (v == NULL)
		return -ENOMEM;
	publish_view(c, v);
	return 0;
}

static void *
run(void *arg)
{
	struct cluster *c = arg;

	pthread_mutex_lock(&c->mu);
	while (!c->is_stopping) {
		struct timespec until;
		int rc;

		pthread_mutex_unlock(&c->mu);
		rc = step(c);
		if (rc == -ECANCELED)
			rc = c->last_rc; /* stopping: what was before */
		/* Said when it changes, not every round. */
		if (rc < 0 && c->last_rc >= 0)
			log_warn("cluster: etcd: %s; trying again every "
				 "%" PRId64 " ms",
				 strerror(-rc), c->period_ms);
		else if (rc == 0 && c->last_rc != 0)
			log_info("cluster: %s is in cluster %s through etcd "
				 "(lease %" PRId64 " ms)",
				 c->ctl.id, c->ctl.prefix, c->ctl.ttl_ms);
		c->last_rc = rc;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += c->period_ms / 1000;
		until.tv_nsec += (c->period_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&c->mu);
		while (!c->is_stopping && c->npending == 0 &&
		       pthread_cond_timedwait(&c->cond, &c->mu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&c->mu);
	/* Leaving: the lease goes now, not a ttl later, if etcd answers
	 * within CLUSTER_REVOKE_MS; else (or when it did not answer the
	 * last round) it expires instead. */
	atomic_store(&c->abort_at_ms, clock_mono_ms() + CLUSTER_REVOKE_MS);
	if (c->ctl.lease != 0 && c->last_rc == 0)
		(void)coord_lease_revoke(&c->coord, c->ctl.lease);
	return NULL;
}

int
cluster_define_queue(struct cluster *c, const char *name, uint32_t partitions)
{
	struct pending_queue *p;

	pthread_mutex_lock(&c->mu);
	p = vec_grow(c->pending, &c->cappending, c->npending + 1, sizeof(*p),
		     8);
	if (p == NULL) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	c->pending = p;
	p = &c->pending[c->npending++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->partitions = partitions;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int
cluster_start(struct cluster **out, const struct cluster_cfg *cfg, int *efd)
{
	struct cluster *c = calloc(1, sizeof(*c));
	struct coord_etcd_cfg ec = {
		.endpoints = cfg->etcd,
		.user = cfg->etcd_user,
		.password = cfg->etcd_password,
		.ca_file = cfg->etcd_ca,
		.timeout_ms =
			cfg->lease_ms / 3 < 5000 ? cfg->lease_ms / 3 : 5000,
	};
	int rc;

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	c->efd = -1;
	ec.abort_at_ms = &c->abort_at_ms;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	snprintf(c->advertise, sizeof(c->advertise), "%s", cfg->advertise);
	c->period_ms = cfg->lease_ms / 3 > 100 ? cfg->lease_ms / 3 : 100;
	c->last_rc = 1;
	rc = coord_etcd_open(&c->coord, &ec);
	if (rc == 0)
		rc = controller_init(&c->ctl, &c->coord, cfg->name,
				     cfg->broker_id, cfg->lease_ms);
	if (rc == 0) {
		c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->efd < 0)
			rc = -errno;
	}
	if (rc == 0) {
		rc = -pthread_create(&c->thread, NULL, run, c);
		c->is_started = rc == 0;
	}
	if (rc < 0) {
		cluster_stop(c);
		return rc;
	}
	*efd = c->efd;
	*out = c;
	return 0;
}

void
cluster_stop(struct cluster *c)
{
	if (c == NULL)
		return;
	if (c->is_started) {
		pthread_mutex_lock(&c->mu);
		c->is_stopping = 1;
		atomic_store(&c->abort_at_ms, clock_mono_ms());
		pthread_cond_signal(&c->cond);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	coord_close(&c->coord);
	if (c->efd >= 0)
		close(c->efd);
	cluster_view_free(c->latest);
	free(c->pending);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}
