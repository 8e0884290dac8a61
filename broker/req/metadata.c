/*
 * metadata: the Metadata request, where each queue's partitions are
 * served. In cluster mode from what this broker knows of the cluster
 * (req_env.cluster, the queues' owner tables); otherwise this broker
 * serves everything, at the address the client reached it at.
 */
#include "req/req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/queue.h"
#include "core/users.h"
#include "lib/err.h"
#include "net/conn.h"
#include "req/session.h"

struct meta_ctx {
	const struct user *user; /* NULL: auth off, every queue */
	const char *here;	 /* this broker's address, outside a cluster */
	Ringmq__QueueMetadata *qm;     /* [cap] */
	Ringmq__QueueMetadata **qp;    /* [cap] */
	Ringmq__PartitionOwner *parts; /* [nparts] */
	Ringmq__PartitionOwner **pp;   /* [nparts] */
	size_t n, cap, nparts, used;
	int rc;
};

/* Describes q's partitions into the next slots of m. */
static void
meta_queue(struct meta_ctx *m, struct queue *q)
{
	Ringmq__QueueMetadata *qm = &m->qm[m->n];

	if (q->is_pending ||
	    (m->user != NULL && user_perms_on(m->user, q->name) == 0))
		return;
	ringmq__queue_metadata__init(qm);
	qm->name = q->name;
	qm->n_partitions = q->partitions;
	qm->partitions = &m->pp[m->used];
	for (uint32_t i = 0; i < q->partitions; i++) {
		Ringmq__PartitionOwner *pi = &m->parts[m->used];
		const struct part_owner *o =
			q->owners != NULL ? &q->owners[i] : NULL;

		ringmq__partition_owner__init(pi);
		pi->partition = i;
		pi->owner = (char *)(o != NULL ? o->addr : m->here);
		pi->has_epoch = pi->owner != NULL;
		pi->epoch = o != NULL ? o->epoch : 0;
		m->pp[m->used++] = pi;
	}
	m->qp[m->n++] = qm;
}

static void
meta_each(void *arg, struct queue *q)
{
	meta_queue(arg, q);
}

/* Counts what answering for every queue may take. */
static void
meta_count(void *arg, struct queue *q)
{
	struct meta_ctx *m = arg;

	m->cap++;
	m->nparts += q->partitions;
}

void
req_metadata(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__Metadata *w = f->metadata;
	struct req_env *env = req_env_of(c);
	const struct req_cluster *cl = env->cluster;
	Ringmq__MetadataOk ok = RINGMQ__METADATA_OK__INIT;
	Ringmq__BrokerInfo self = RINGMQ__BROKER_INFO__INIT, *selfp = &self;
	Ringmq__BrokerInfo *bi = NULL, **bp = NULL;
	struct meta_ctx m = { 0 };
	char here[64];

	m.user = session_of(c)->user;
	conn_local_name(c, here, sizeof(here));
	m.here = here;
	/* Named queues must all exist: a client asks for what it routes to. */
	for (size_t i = 0; i < w->n_queues; i++) {
		struct queue *q = req_find_queue(c, f, w->queues[i]);

		if (q == NULL)
			return;
		meta_count(&m, q);
	}
	if (w->n_queues == 0)
		queues_each(env->qs, meta_count, &m);
	m.qm = calloc(m.cap + 1, sizeof(*m.qm));
	m.qp = calloc(m.cap + 1, sizeof(*m.qp));
	m.parts = calloc(m.nparts + 1, sizeof(*m.parts));
	m.pp = calloc(m.nparts + 1, sizeof(*m.pp));
	if (cl != NULL) {
		bi = calloc(cl->nbrokers + 1, sizeof(*bi));
		bp = calloc(cl->nbrokers + 1, sizeof(*bp));
	}
	if (m.qm == NULL || m.qp == NULL || m.parts == NULL || m.pp == NULL ||
	    (cl != NULL && (bi == NULL || bp == NULL))) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	if (w->n_queues == 0)
		queues_each(env->qs, meta_each, &m);
	for (size_t i = 0; i < w->n_queues; i++)
		meta_queue(&m, queues_find(env->qs, w->queues[i]));
	ok.n_queues = m.n;
	ok.queues = m.qp;
	if (cl != NULL) {
		ok.cluster = (char *)cl->name;
		ok.broker = (char *)cl->self;
		ok.controller =
			cl->controller[0] ? (char *)cl->controller : NULL;
		for (size_t i = 0; i < cl->nbrokers; i++) {
			ringmq__broker_info__init(&bi[i]);
			bi[i].id = (char *)cl->brokers[i].id;
			bi[i].address = (char *)cl->brokers[i].addr;
			bp[i] = &bi[i];
		}
		ok.n_brokers = cl->nbrokers;
		ok.brokers = bp;
	} else {
		self.id = "";
		self.address = here;
		ok.broker = "";
		ok.n_brokers = 1;
		ok.brokers = &selfp;
	}
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_METADATA_OK, &ok);
out:
	free(m.qm);
	free(m.qp);
	free(m.parts);
	free(m.pp);
	free(bi);
	free(bp);
}
