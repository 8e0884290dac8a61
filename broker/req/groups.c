/*
 * groups: consumer group create, delete, list, describe and reset, and
 * the GroupInfo answers queue describe shares.
 */
#include "req/req.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/err.h"
#include "net/conn.h"
#include "req/session.h"

static int
check_group_name(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	if (queue_name_valid(name))
		return 0;
	req_send_error(c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		       "group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}");
	return -1;
}

void
req_group_create(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupCreate *gc = f->group_create;
	struct queue *q = req_find_queue(c, f, gc->queue);
	struct req_ctx *r;
	int rc;

	if (q == NULL || check_group_name(c, f, gc->group) < 0 ||
	    (r = req_new(c, f, 0)) == NULL)
		return;
	rc = groups_create_named(
		req_env_of(c)->gs, q, gc->group,
		gc->has_start && gc->start == RINGMQ__START_POSITION__LATEST,
		req_done, r);
	if (rc == 1) {
		req_drop(r);
		req_send_done(c, f->request_id);
	} else if (rc < 0) {
		req_abort(r, rc);
	}
}

void
req_group_delete(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupDelete *gd = f->group_delete;
	struct queue *q = req_find_queue(c, f, gd->queue);
	struct req_ctx *r;
	int rc;

	if (q == NULL || (r = req_new(c, f, 0)) == NULL)
		return;
	rc = groups_delete_named(req_env_of(c)->gs, q, gd->group, req_done, r);
	if (rc < 0)
		req_abort(r, rc);
}

void
req_group_reset(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupReset *gr = f->group_reset;
	struct queue *q = req_find_queue(c, f, gr->queue);
	struct req_ctx *r;
	int rc;

	if (q == NULL || (r = req_new(c, f, 0)) == NULL)
		return;
	rc = groups_reset_named(
		req_env_of(c)->gs, q, gr->group,
		gr->has_start && gr->start == RINGMQ__START_POSITION__LATEST,
		req_done, r);
	if (rc < 0)
		req_abort(r, rc);
}

static void
info_one(void *ctx, const struct group *g)
{
	struct req_infos *in = ctx;
	Ringmq__GroupInfo *gi;
	struct group_info x;

	if (in->n == in->cap ||
	    (in->only != NULL && strcmp(group_name(g), in->only) != 0))
		return;
	gi = &in->gi[in->n];
	ringmq__group_info__init(gi);
	gi->ack_floor = &in->floors[in->n * QUEUE_MAX_PARTITIONS];
	group_info(g, &x, gi->ack_floor);
	gi->queue = (char *)in->q->name;
	gi->name = (char *)group_name(g);
	gi->ready = x.ready;
	gi->in_flight = x.in_flight;
	gi->lag = x.lag;
	gi->consumers = x.consumers;
	gi->n_ack_floor = in->q->partitions;
	in->gp[in->n++] = gi;
}

size_t
req_count_groups(struct queue *q)
{
	uint64_t ready, in_flight, retrying;
	uint32_t n;

	groups_queue_counts(q, &ready, &in_flight, &retrying, &n);
	return n;
}

int
req_infos_init(struct req_infos *in, size_t cap)
{
	memset(in, 0, sizeof(*in));
	in->cap = cap;
	in->gi = calloc(cap + 1, sizeof(*in->gi));
	in->gp = calloc(cap + 1, sizeof(*in->gp));
	in->floors =
		calloc((cap + 1) * QUEUE_MAX_PARTITIONS, sizeof(*in->floors));
	return in->gi && in->gp && in->floors ? 0 : -ENOMEM;
}

void
req_infos_fini(struct req_infos *in)
{
	free(in->gi);
	free(in->gp);
	free(in->floors);
}

void
req_list_queue_groups(void *ctx, struct queue *q)
{
	struct req_infos *in = ctx;

	if (q->is_pending)
		return;
	in->q = q;
	groups_each(q, info_one, in);
}

static void
count_all(void *ctx, struct queue *q)
{
	*(size_t *)ctx += req_count_groups(q);
}

void
req_group_list(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupList *gl = f->group_list;
	struct req_env *env = req_env_of(c);
	Ringmq__GroupListOk ok = RINGMQ__GROUP_LIST_OK__INIT;
	struct queue *q = NULL;
	struct req_infos in;
	size_t n = 0;

	if (gl->queue != NULL && (q = req_find_queue(c, f, gl->queue)) == NULL)
		return;
	if (q != NULL)
		n = req_count_groups(q);
	else
		queues_each(env->qs, count_all, &n);
	if (req_infos_init(&in, n) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	if (q != NULL)
		req_list_queue_groups(&in, q);
	else
		queues_each(env->qs, req_list_queue_groups, &in);
	ok.n_groups = in.n;
	ok.groups = in.gp;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_GROUP_LIST_OK, &ok);
out:
	req_infos_fini(&in);
}

void
req_group_describe(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__GroupDescribe *gd = f->group_describe;
	Ringmq__GroupDescribeOk ok = RINGMQ__GROUP_DESCRIBE_OK__INIT;
	struct queue *q = req_find_queue(c, f, gd->queue);
	struct req_infos in;

	if (q == NULL)
		return;
	if (req_infos_init(&in, 1) < 0) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	in.only = gd->group;
	req_list_queue_groups(&in, q);
	if (in.n == 0) {
		req_send_rc(c, f->request_id, -RMQ_EGROUP_NOT_FOUND);
		goto out;
	}
	ok.group = in.gp[0];
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK,
		   &ok);
out:
	req_infos_fini(&in);
}
