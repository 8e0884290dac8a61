/*
 * queues: queue create, set, list, describe, delete and purge. Policies
 * and counters go between the core's structs and the wire's here.
 */
#include "req/req.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/err.h"
#include "net/conn.h"
#include "req/session.h"
#include "store/store.h"

/* Answers a queue create or set that failed with rc; says what a policy
 * can get wrong when that is the reason. */
static void
send_policy_rc(struct conn *c, uint64_t request_id, int rc)
{
	if (rc != -RMQ_EINVALID_ARGUMENT) {
		req_send_rc(c, request_id, rc);
		return;
	}
	req_send_error(c, request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		       "invalid settings: a time of 0 or too large, or a "
		       "dead-letter queue that is the queue itself or breaks "
		       "the name rule (a queue whose name ends in .dlq and "
		       "counts deliveries needs a shorter dead-letter "
		       "queue)");
}

/* The fields a request's QueuePolicy sets, for the core. */
static const struct queue_policy_given *
policy_given(const Ringmq__QueuePolicy *g, struct queue_policy_given *out)
{
	if (g == NULL)
		return NULL;
	memset(out, 0, sizeof(*out));
	out->fields =
		(g->has_lease_ms ? QUEUE_POLICY_LEASE_MS : 0) |
		(g->has_max_lease_ms ? QUEUE_POLICY_MAX_LEASE_MS : 0) |
		(g->has_max_deliveries ? QUEUE_POLICY_MAX_DELIVERIES : 0) |
		(g->has_max_depth ? QUEUE_POLICY_MAX_DEPTH : 0) |
		(g->has_max_bytes ? QUEUE_POLICY_MAX_BYTES : 0) |
		(g->has_dedup_window_ms ? QUEUE_POLICY_DEDUP_WINDOW_MS : 0);
	out->lease_ms = g->lease_ms;
	out->max_lease_ms = g->max_lease_ms;
	out->max_deliveries = g->max_deliveries;
	out->max_depth = g->max_depth;
	out->max_bytes = g->max_bytes;
	out->dedup_window_ms = g->dedup_window_ms;
	out->dlq = g->dead_letter_queue;
	return out;
}

void
req_queue_create(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__QueueCreate *qc = f->queue_create;
	struct queue_policy_given given;
	struct req_ctx *p;
	int rc;

	if (qc->has_partitions &&
	    (qc->partitions == 0 || qc->partitions > QUEUE_MAX_PARTITIONS)) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "partitions must be 1 to 1024");
		return;
	}
	if (!queue_ref_valid(qc->name)) {
		req_send_error(
			c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			"queue names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}, "
			"optionally followed by .dlq");
		return;
	}
	if ((p = req_new(c, f, 0)) == NULL)
		return;
	rc = queue_create(req_env_of(c)->qs, qc->name,
			  qc->has_partitions ? qc->partitions : 0,
			  policy_given(qc->policy, &given), req_done, p);
	if (rc == 0 || rc == 1) {
		struct req_env *env = req_env_of(c);
		const struct queue *q = queues_find(env->qs, qc->name);

		if (q != NULL && env->queue_defined != NULL)
			env->queue_defined(env->queue_defined_ctx, q->name,
					   q->partitions);
	}
	if (rc == 0)
		return;
	req_drop(p);
	if (rc == 1)
		req_send_done(c, f->request_id);
	else
		send_policy_rc(c, f->request_id, rc);
}

void
req_queue_set(struct conn *c, const Ringmq__Frame *f)
{
	struct queue_policy_given given;
	struct req_ctx *p = req_new(c, f, 0);
	int rc;

	if (p == NULL)
		return;
	rc = queue_set(req_env_of(c)->qs, f->queue_set->name,
		       policy_given(f->queue_set->policy, &given), req_done, p);
	if (rc < 0) {
		req_drop(p);
		send_policy_rc(c, f->request_id, rc);
	}
}

static void
policy_to_wire(const struct queue *q, Ringmq__QueuePolicy *pol, char *dlq,
	       size_t dlqlen)
{
	pol->has_lease_ms = pol->has_max_lease_ms = 1;
	pol->has_max_deliveries = pol->has_max_depth = 1;
	pol->has_max_bytes = pol->has_dedup_window_ms = 1;
	pol->lease_ms = q->policy.lease_ms;
	pol->max_lease_ms = q->policy.max_lease_ms;
	pol->max_deliveries = q->policy.max_deliveries;
	pol->max_depth = q->policy.max_depth;
	pol->max_bytes = q->policy.max_bytes;
	pol->dedup_window_ms = q->policy.dedup_window_ms;
	if (q->policy.dlq[0] != '\0')
		snprintf(dlq, dlqlen, "%s", q->policy.dlq);
	else
		snprintf(dlq, dlqlen, "%s.dlq", q->name);
	pol->dead_letter_queue = dlq;
}

void
req_queue_delete(struct conn *c, const Ringmq__Frame *f)
{
	struct req_env *env = req_env_of(c);
	struct queue *q = req_find_queue(c, f, f->queue_delete->name);
	struct req_ctx *r;
	int rc;

	if (q == NULL || (r = req_new(c, f, 0)) == NULL)
		return;
	if (q->pending_ops > 0) {
		/* Publishes in flight would land after the delete. */
		req_abort(r, -RMQ_EINVALID_ARGUMENT);
		return;
	}
	groups_drop_queue(env->gs, q);
	rc = queue_delete(env->qs, q, req_done, r);
	if (rc < 0)
		req_abort(r, rc);
}

struct purge_req {
	struct req_ctx r;
	uint64_t purged;
};

static void
purged(void *ctx, int status)
{
	struct purge_req *p = ctx;
	Ringmq__PurgeOk ok = RINGMQ__PURGE_OK__INIT;

	if (conn_unref_live(p->r.c)) {
		if (status < 0) {
			req_send_rc(p->r.c, p->r.request_id, status);
		} else {
			ok.purged = p->purged;
			req_answer(p->r.c, p->r.request_id,
				   RINGMQ__FRAME__BODY_PURGE_OK, &ok);
		}
	}
	free(p);
}

void
req_purge(struct conn *c, const Ringmq__Frame *f)
{
	struct queue *q = req_find_queue(c, f, f->purge->queue);
	struct purge_req *p;
	int rc;

	if (q == NULL)
		return;
	p = (struct purge_req *)req_new(c, f, sizeof(*p) - sizeof(p->r));
	if (p == NULL)
		return;
	rc = groups_purge_queue(req_env_of(c)->gs, q, purged, p, &p->purged);
	if (rc < 0)
		req_abort(&p->r, rc);
}

/* Fills qi and its policy pol from q: pointers into q, pol and dlq (a
 * buffer of dlqlen bytes for the dead-letter queue's name). The one
 * QueueInfo both list and describe answer with. */
static void
queue_info_fill(struct queue *q, Ringmq__QueueInfo *qi,
		Ringmq__QueuePolicy *pol, char *dlq, size_t dlqlen)
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
	policy_to_wire(q, pol, dlq, dlqlen);
	qi->policy = pol;
}

void
req_queue_describe(struct conn *c, const Ringmq__Frame *f)
{
	struct req_env *env = req_env_of(c);
	Ringmq__QueueDescribeOk ok = RINGMQ__QUEUE_DESCRIBE_OK__INIT;
	Ringmq__QueueInfo qi;
	Ringmq__QueuePolicy pol;
	struct queue *q = req_find_queue(c, f, f->queue_describe->name);
	Ringmq__PartitionInfo *pi = NULL;
	Ringmq__PartitionInfo **pp = NULL;
	char dlq[STORE_NAME_MAX + 16];
	struct req_infos in;

	if (q == NULL)
		return;
	memset(&in, 0, sizeof(in));
	pi = calloc(q->partitions, sizeof(*pi));
	pp = calloc(q->partitions, sizeof(*pp));
	if (pi == NULL || pp == NULL ||
	    req_infos_init(&in, req_count_groups(q)) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	queue_info_fill(q, &qi, &pol, dlq, sizeof(dlq));
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
	req_list_queue_groups(&in, q);
	ok.queue = &qi;
	ok.n_partitions = q->partitions;
	ok.partitions = pp;
	ok.n_groups = in.n;
	ok.groups = in.gp;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_QUEUE_DESCRIBE_OK,
		   &ok);
out:
	free(pi);
	free(pp);
	req_infos_fini(&in);
}

struct list_ctx {
	Ringmq__QueueInfo *infos;
	Ringmq__QueueInfo **ptrs;
	Ringmq__QueuePolicy *pols;
	char (*dlqs)[STORE_NAME_MAX + 16];
	size_t n;
	const struct user *user; /* NULL: every queue */
};

static void
list_one(void *arg, struct queue *q)
{
	struct list_ctx *lc = arg;
	Ringmq__QueueInfo *qi = &lc->infos[lc->n];
	Ringmq__QueuePolicy *pol = &lc->pols[lc->n];

	if (q->is_pending ||
	    (lc->user != NULL && user_perms_on(lc->user, q->name) == 0))
		return;
	queue_info_fill(q, qi, pol, lc->dlqs[lc->n], sizeof(lc->dlqs[0]));
	lc->ptrs[lc->n] = qi;
	lc->n++;
}

void
req_queue_list(struct conn *c, const Ringmq__Frame *f)
{
	Ringmq__QueueListOk ok = RINGMQ__QUEUE_LIST_OK__INIT;
	size_t n = queues_count(req_env_of(c)->qs);
	struct list_ctx lc = { 0 };

	lc.infos = calloc(n + 1, sizeof(*lc.infos));
	lc.ptrs = calloc(n + 1, sizeof(*lc.ptrs));
	lc.pols = calloc(n + 1, sizeof(*lc.pols));
	lc.dlqs = calloc(n + 1, sizeof(*lc.dlqs));
	if (lc.infos == NULL || lc.ptrs == NULL || lc.pols == NULL ||
	    lc.dlqs == NULL) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	lc.user = session_of(c)->user;
	queues_each(req_env_of(c)->qs, list_one, &lc);
	ok.n_queues = lc.n;
	ok.queues = lc.ptrs;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_QUEUE_LIST_OK, &ok);
out:
	free(lc.infos);
	free(lc.ptrs);
	free(lc.pols);
	free(lc.dlqs);
}
