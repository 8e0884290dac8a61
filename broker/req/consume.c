/*
 * consume: subscriptions (subscribe, unsubscribe, credit) and the lease
 * requests (ack, nack, release, touch). Deliveries and lease results are
 * encoded by hand straight into the connection's output (see wire.h).
 *
 * A session is the owner of its subscriptions (struct sub_ops) and of its
 * leases (struct lease_owner).
 */
#include <errno.h>
#include <stdlib.h>

#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/err.h"
#include "lib/stats.h"
#include "net/conn.h"
#include "req/req.h"
#include "req/session.h"
#include "req/wire.h"

/* ------------------------------------------------------ subscriptions */

static int
session_deliver(void *owner, const struct delivery *d,
		const struct store_msg_view *v)
{
	struct session *se = owner;
	struct conn *c = se->c;

	if (!conn_is_dead(c)) {
		uint8_t *out = conn_out_reserve(c, wire_delivery_size(d, v));

		if (out == NULL)
			return -1;
		conn_out_commit(c, wire_delivery_encode(d, v, out));
	}
	if (d->delivery_count == 1)
		stats_observe(&se->env->stats->delivery_latency,
			      d->now_ms > v->publish_ms
				      ? (double)(d->now_ms - v->publish_ms) /
						1e3
				      : 0.0);
	return 0;
}

static int
session_is_writable(void *owner)
{
	return conn_is_writable(((struct session *)owner)->c);
}

/* The broker ended s (its group or queue was deleted): the subscriber
 * is told, or it would wait for deliveries forever. */
static void
session_sub_detached(void *owner, struct sub *s, int code)
{
	struct session *se = owner;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__SubscriptionEnded e = RINGMQ__SUBSCRIPTION_ENDED__INIT;
	size_t i;

	if (session_find_sub(se, sub_id(s), &i) == s)
		se->subs[i] = se->subs[--se->nsubs];
	e.subscription = sub_id(s);
	e.code = (Ringmq__ErrorCode)err_to_wire(code);
	e.reason = code == -RMQ_EQUEUE_NOT_FOUND ? (char *)"queue deleted"
						 : (char *)"group deleted";
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED;
	f.subscription_ended = &e;
	(void)req_send(se->c, &f); /* logged inside */
}

/* A groups_owner_leave keep: may se's user consume from q? */
static int
may_consume(void *ctx, const struct queue *q)
{
	const struct session *se = ctx;

	return (user_perms_on(se->user, q->name) & USER_CONSUME) != 0;
}

void
session_revoke(struct session *se)
{
	struct groups *gs = se->env->gs;

	for (size_t i = 0; i < se->nsubs;) {
		struct sub *s = se->subs[i];
		const struct queue *q = sub_queue(s);
		Ringmq__Frame f = RINGMQ__FRAME__INIT;
		Ringmq__SubscriptionEnded e = RINGMQ__SUBSCRIPTION_ENDED__INIT;

		if (may_consume(se, q)) {
			i++;
			continue;
		}
		se->subs[i] = se->subs[--se->nsubs];
		e.subscription = sub_id(s);
		e.code = RINGMQ__ERROR_CODE__PERMISSION_DENIED;
		e.reason = (char *)"permission to consume taken away";
		f.body_case = RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED;
		f.subscription_ended = &e;
		(void)req_send(se->c, &f); /* logged inside */
		sub_free(gs, s);
	}
	/* Its leases there too, also those of subscriptions it ended. */
	groups_owner_leave(gs, &se->lo, may_consume, se);
}

static const struct sub_ops session_sub_ops = {
	.deliver = session_deliver,
	.is_writable = session_is_writable,
	.detached = session_sub_detached,
};

static void
subscribed(void *ctx, int status, struct sub *s)
{
	struct req_ctx *p = ctx;
	struct conn *c = p->c;
	struct session *se = session_of(c);
	Ringmq__SubscribeOk ok = RINGMQ__SUBSCRIBE_OK__INIT;

	if (conn_is_closing(c)) {
		/* Its subscriptions were ended at close: end this one too. */
		if (status == 0)
			sub_free(se->env->gs, s);
		req_drop(p);
		return;
	}
	if (status == 0 && session_add_sub(se, s) < 0) {
		sub_free(se->env->gs, s);
		status = -ENOMEM;
	}
	if (status < 0) {
		req_abort(p, status);
		return;
	}
	ok.subscription = sub_id(s);
	req_answer(c, p->request_id, RINGMQ__FRAME__BODY_SUBSCRIBE_OK, &ok);
	req_drop(p);
}

void
req_subscribe(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	const Ringmq__Subscribe *sr = f->subscribe;
	struct queue *q;
	struct req_ctx *p;

	if (se->env->is_shutting_down) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__SHUTTING_DOWN,
			       "broker is shutting down");
		return;
	}
	if (!queue_name_valid(sr->group)) {
		req_send_error(
			c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			"group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}");
		return;
	}
	q = req_find_queue(c, f, sr->queue);
	if (q == NULL)
		return;
	p = req_new(c, f, 0);
	if (p == NULL)
		return;
	if (group_subscribe(se->env->gs, q, sr->group,
			    sr->has_start &&
				    sr->start == RINGMQ__START_POSITION__LATEST,
			    sr->credit, se, &se->lo, &session_sub_ops,
			    ++se->next_sub_id, subscribed, p) < 0)
		req_abort(p, -ENOMEM);
}

void
req_unsubscribe(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	size_t i;
	struct sub *s = session_find_sub(se, f->unsubscribe->subscription, &i);

	if (s == NULL) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "no such subscription");
		return;
	}
	sub_free(se->env->gs, s);
	se->subs[i] = se->subs[--se->nsubs];
	req_send_done(c, f->request_id);
}

void
req_credit(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	struct sub *s = session_find_sub(se, f->credit->subscription, NULL);

	if (s == NULL) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "no such subscription");
		return;
	}
	sub_set_credit(se->env->gs, s, f->credit->credit);
	req_send_done(c, f->request_id);
}

/* ------------------------------------------------------------- leases */

/* A lease request waiting for its flush: codes follow the struct. */
struct lease_req {
	struct req_ctx p;
	size_t n;
	int codes[];
};

static void
send_lease_result(struct conn *c, uint64_t request_id, const int *codes,
		  const uint64_t *remaining_ms, size_t n)
{
	uint8_t *out;

	if (conn_is_dead(c))
		return;
	out = conn_out_reserve(
		c, wire_lease_result_size(request_id, codes, remaining_ms, n));
	if (out == NULL) {
		req_send_rc(c, request_id, -ENOMEM);
		return;
	}
	conn_out_commit(c, wire_lease_result_encode(request_id, codes,
						    remaining_ms, n, out));
}

static void
lease_flushed(void *ctx, int status)
{
	struct lease_req *lr = ctx;

	if (conn_unref_live(lr->p.c)) {
		if (status < 0)
			req_send_rc(lr->p.c, lr->p.request_id, status);
		else
			send_lease_result(lr->p.c, lr->p.request_id, lr->codes,
					  NULL, lr->n);
	}
	free(lr);
}

static struct lease_req *
lease_req_new(struct conn *c, const Ringmq__Frame *f, size_t n)
{
	struct lease_req *lr = (struct lease_req *)req_new(
		c, f, sizeof(*lr) - sizeof(lr->p) + n * sizeof(int));

	if (lr != NULL)
		lr->n = n;
	return lr;
}

typedef void (*lease_fn)(struct groups *gs, struct lease_owner *lo,
			 const uint64_t *ids, size_t n, int *codes,
			 lease_done_fn done, void *ctx);

static void
lease_request(struct conn *c, const Ringmq__Frame *f, const uint64_t *ids,
	      size_t n, lease_fn fn)
{
	struct session *se = session_of(c);
	struct lease_req *lr = lease_req_new(c, f, n);

	if (lr != NULL)
		fn(se->env->gs, &se->lo, ids, n, lr->codes, lease_flushed, lr);
}

void
req_ack(struct conn *c, const Ringmq__Frame *f)
{
	lease_request(c, f, f->ack->lease_ids, f->ack->n_lease_ids, groups_ack);
}

void
req_nack(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	size_t n = f->nack->n_lease_ids;
	struct lease_req *lr = lease_req_new(c, f, n);

	if (lr != NULL)
		groups_nack(se->env->gs, &se->lo, f->nack->lease_ids, n,
			    f->nack->has_delay_ms ? f->nack->delay_ms : 0,
			    f->nack->reason, lr->codes, lease_flushed, lr);
}

void
req_release(struct conn *c, const Ringmq__Frame *f)
{
	lease_request(c, f, f->release->lease_ids, f->release->n_lease_ids,
		      groups_release);
}

void
req_touch(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	size_t n = f->touch->n_lease_ids;
	int *codes = calloc(n + 1, sizeof(*codes));
	uint64_t *remaining = calloc(n + 1, sizeof(*remaining));

	if (codes == NULL || remaining == NULL) {
		req_send_rc(c, f->request_id, -ENOMEM);
	} else {
		groups_touch(se->env->gs, &se->lo, f->touch->lease_ids, n,
			     f->touch->has_lease_ms ? f->touch->lease_ms : 0,
			     codes, remaining);
		send_lease_result(c, f->request_id, codes, remaining, n);
	}
	free(codes);
	free(remaining);
}
