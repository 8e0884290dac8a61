/*
 * consume.c: subscriptions, the delivery queue seen from the caller
 * (ringmq_next), delivery accessors, and settling leases (ack, nack,
 * release, touch).
 *
 * Deliveries are decoded by conn.c whenever the client reads and handed
 * to the Delivery handler here (the frame router), which queues them; a
 * ringmq_delivery is the decoded frame itself, so handing one out copies
 * nothing. Lease requests are cut to the broker's max batch count and frame
 * size, and their per-id codes are reported in request order.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* -------------------------------------------------------------- subscribe */

static struct sub *
sub_find(struct ringmq_client *c, uint32_t id)
{
	for (struct sub *s = c->subs.list; s != NULL; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void
sub_free(struct sub *s)
{
	free(s->queue);
	free(s->group);
	free(s);
}

static void
deliveries_free(struct ringmq_delivery *d)
{
	while (d != NULL) {
		struct ringmq_delivery *next = d->next;

		ringmq_delivery_free(d);
		d = next;
	}
}

/* Takes the first delivery queued for ringmq_next(), or NULL. */
static struct ringmq_delivery *
dq_pop(struct ringmq_client *c)
{
	struct ringmq_delivery *d = c->subs.dq_head;

	if (d == NULL)
		return NULL;
	c->subs.dq_head = d->next;
	if (c->subs.dq_head == NULL)
		c->subs.dq_tail = NULL;
	d->next = NULL;
	return d;
}

/* Appends d to the queue *head .. *tail (takes d). */
static void
deliveries_push(struct ringmq_delivery **head, struct ringmq_delivery **tail,
		struct ringmq_delivery *d)
{
	d->next = NULL;
	if (*tail != NULL)
		(*tail)->next = d;
	else
		*head = d;
	*tail = d;
}

void
subs_drop_queued(struct ringmq_client *c)
{
	struct ringmq_delivery *d;

	while ((d = dq_pop(c)) != NULL)
		ringmq_delivery_free(d);
	while ((d = c->subs.cbq_head) != NULL) {
		c->subs.cbq_head = d->next;
		ringmq_delivery_free(d);
	}
	c->subs.cbq_tail = NULL;
}

static void subs_on_delivery(struct ringmq_client *c,
			     struct ringmq_delivery *d);

/* Routes again the deliveries held back while a Subscribe was waiting
 * (those still of no live subscription are held again, in order, while
 * one waits); lock held. */
static void
subs_claim(struct ringmq_client *c)
{
	struct ringmq_delivery *d = c->subs.unclaimed_head;

	c->subs.unclaimed_head = c->subs.unclaimed_tail = NULL;
	while (d != NULL) {
		struct ringmq_delivery *next = d->next;

		d->next = NULL;
		subs_on_delivery(c, d);
		d = next;
	}
}

static void sub_end(struct ringmq_client *c, struct sub *s, int code);

/* An end that came for s while its Subscribe waited; lock held. */
static void
subs_apply_early_end(struct ringmq_client *c, struct sub *s)
{
	for (int i = 0; i < c->subs.n_early_ends; i++)
		if (c->subs.early_end_ids[i] == s->wire_id) {
			int code = c->subs.early_end_codes[i];

			c->subs.n_early_ends--;
			c->subs.early_end_ids[i] =
				c->subs.early_end_ids[c->subs.n_early_ends];
			c->subs.early_end_codes[i] =
				c->subs.early_end_codes[c->subs.n_early_ends];
			sub_end(c, s, code);
			return;
		}
}

/* Sends Subscribe for s on the current connection; lock held. */
static int
sub_send(struct ringmq_client *c, struct sub *s)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Subscribe m = RINGMQ__SUBSCRIBE__INIT;
	Ringmq__Frame *resp;
	int rc;

	m.queue = s->queue;
	m.group = s->group;
	m.credit = s->credit;
	m.has_start = 1;
	m.start = s->start == RINGMQ_START_LATEST
			  ? RINGMQ__START_POSITION__LATEST
			  : RINGMQ__START_POSITION__EARLIEST;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE;
	f.subscribe = &m;
	c->subs.subscribing++;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_SUBSCRIBE_OK, &resp);
	c->subs.subscribing--;
	if (rc == RINGMQ_OK) {
		s->wire_id = resp->subscribe_ok->subscription;
		s->is_live = 1;
		frame_free(resp);
		subs_apply_early_end(c, s);
	}
	if (c->subs.subscribing == 0)
		c->subs.n_early_ends = 0;
	/* A subscription now live takes what came for it, before anything
	 * later of it is read (a Subscribe may still wait: a restore inside
	 * another's call); with none waiting, the rest goes on too. */
	if (rc == RINGMQ_OK || c->subs.subscribing == 0)
		subs_claim(c);
	return rc;
}

static int
subscribe_locked(ringmq_client *c, uint32_t *subscriptionp, const char *queue,
		 const char *group, uint32_t credit, int start,
		 ringmq_delivery_cb cb, void *ctx)
{
	struct sub *s;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (subscriptionp == NULL || queue == NULL || group == NULL ||
	    (start != RINGMQ_START_EARLIEST && start != RINGMQ_START_LATEST))
		return client_fail(c, RINGMQ_USAGE, "bad argument");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	s->queue = strdup(queue);
	s->group = strdup(group);
	if (s->queue == NULL || s->group == NULL) {
		sub_free(s);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	s->credit = credit;
	s->start = start;
	s->cb = cb;
	s->ctx = ctx;
	/* Listed (not live) before it is sent: its first deliveries may
	 * arrive with the answer and must find it. */
	s->id = ++c->subs.last_id;
	s->is_first = 1;
	s->next = c->subs.list;
	c->subs.list = s;
	rc = sub_send(c, s);
	s->is_first = 0;
	if (rc != RINGMQ_OK) {
		struct sub **sp = &c->subs.list;

		while (*sp != s)
			sp = &(*sp)->next;
		*sp = s->next;
		sub_free(s);
		return rc;
	}
	*subscriptionp = s->id;
	return RINGMQ_OK;
}

int
ringmq_subscribe(ringmq_client *c, uint32_t *subscriptionp, const char *queue,
		 const char *group, uint32_t credit, int start)
{
	return ringmq_subscribe_cb(c, subscriptionp, queue, group, credit,
				   start, NULL, NULL);
}

int
ringmq_subscribe_cb(ringmq_client *c, uint32_t *subscriptionp,
		    const char *queue, const char *group, uint32_t credit,
		    int start, ringmq_delivery_cb cb, void *ctx)
{
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	client_lock(c);
	rc = subscribe_locked(c, subscriptionp, queue, group, credit, start, cb,
			      ctx);
	client_unlock(c);
	return rc;
}

/* Sends a Credit or Unsubscribe for s; lock held. */
static int
sub_request(ringmq_client *c, struct sub *s, int is_credit, uint32_t credit)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Credit cr = RINGMQ__CREDIT__INIT;
	Ringmq__Unsubscribe u = RINGMQ__UNSUBSCRIBE__INIT;
	Ringmq__Frame *resp;
	int rc;

	if (is_credit) {
		cr.subscription = s->wire_id;
		cr.credit = credit;
		f.body_case = RINGMQ__FRAME__BODY_CREDIT;
		f.credit = &cr;
	} else {
		u.subscription = s->wire_id;
		f.body_case = RINGMQ__FRAME__BODY_UNSUBSCRIBE;
		f.unsubscribe = &u;
	}
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DONE, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}

/* Unlinks s from the client's list and frees it; lock held. */
static void
sub_forget(struct ringmq_client *c, struct sub *s)
{
	for (struct sub **sp = &c->subs.list; *sp != NULL; sp = &(*sp)->next)
		if (*sp == s) {
			*sp = s->next;
			sub_free(s);
			return;
		}
}

/* A credit or unsubscribe for s, which the broker ended: an unsubscribe
 * forgets it (OK), a credit gets its end code. Lock held. */
static int
sub_change_ended(struct ringmq_client *c, struct sub *s, int is_credit)
{
	int code = s->end_code;
	uint32_t id = s->id;

	if (!is_credit) {
		sub_forget(c, s);
		return RINGMQ_OK;
	}
	return client_fail(c, code,
			   "subscription %u was ended by the broker: its %s "
			   "was deleted",
			   id,
			   code == RINGMQ_QUEUE_NOT_FOUND ? "queue" : "group");
}

/*
 * A credit or unsubscribe for subscription id. Without a connection the
 * change is only recorded: the restore after the reconnect applies it.
 */
static int
sub_change(ringmq_client *c, uint32_t id, int is_credit, uint32_t credit)
{
	struct sub *s;
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	client_lock(c);
	rc = client_begin(c);
	s = sub_find(c, id);
	if (rc == RINGMQ_OK && s != NULL && s->end_code != 0) {
		rc = sub_change_ended(c, s, is_credit);
		client_unlock(c);
		return rc;
	}
	if (rc == RINGMQ_OK && (s == NULL || s->is_ended))
		rc = client_fail(c, RINGMQ_USAGE, "unknown subscription %u",
				 id);
	if (rc == RINGMQ_OK)
		rc = conn_ensure(c, conn_now_ms() + c->opts.request_timeout_ms);
	if (rc == RINGMQ_OK && !s->is_live && !is_credit) {
		s->is_ended = 1; /* nothing to end on this connection */
		client_unlock(c);
		return RINGMQ_OK;
	}
	if (rc == RINGMQ_OK && !s->is_live) {
		/* The restore after a reconnect failed: try again. */
		s->credit = credit;
		rc = sub_send(c, s);
	}
	if (rc == RINGMQ_OK)
		rc = sub_request(c, s, is_credit, credit);
	if (rc != RINGMQ_OK && s != NULL && s->end_code != 0) {
		/* Ended by the broker while the request was on its way. */
		rc = sub_change_ended(c, s, is_credit);
		client_unlock(c);
		return rc;
	}
	if (s != NULL && s->id == id &&
	    (rc == RINGMQ_OK || status_is_conn_failure(rc) ||
	     rc == RINGMQ_UNREACHABLE)) {
		/* Recorded: a later restore subscribes with it. */
		if (is_credit)
			s->credit = credit;
		else
			s->is_ended = 1;
	}
	client_unlock(c);
	return rc;
}

int
ringmq_subscription_set_credit(ringmq_client *c, uint32_t subscription,
			       uint32_t credit)
{
	return sub_change(c, subscription, 1, credit);
}

int
ringmq_unsubscribe(ringmq_client *c, uint32_t subscription)
{
	return sub_change(c, subscription, 0, 0);
}

/* Routes a pushed delivery (takes d): callback queue or ringmq_next(). */
static void
subs_on_delivery(struct ringmq_client *c, struct ringmq_delivery *d)
{
	Ringmq__Delivery *dv = d->f->delivery;

	for (struct sub *s = c->subs.list; s != NULL; s = s->next) {
		if (!s->is_live || s->wire_id != dv->subscription)
			continue;
		/* The caller knows the subscription by its stable id. */
		dv->subscription = s->id;
		if (s->cb != NULL)
			deliveries_push(&c->subs.cbq_head, &c->subs.cbq_tail,
					d);
		else
			deliveries_push(&c->subs.dq_head, &c->subs.dq_tail, d);
		return;
	}
	if (c->subs.subscribing > 0) {
		/* Maybe the waiting Subscribe's: decided once it is live. */
		deliveries_push(&c->subs.unclaimed_head,
				&c->subs.unclaimed_tail, d);
		return;
	}
	deliveries_push(&c->subs.dq_head, &c->subs.dq_tail, d);
}

/* Drops the deliveries of subscription id still queued: their leases
 * went with the group. Lock held. */
static void
deliveries_drop_of(struct ringmq_delivery **head, struct ringmq_delivery **tail,
		   uint32_t id)
{
	struct ringmq_delivery **dp = head;

	*tail = NULL;
	while (*dp != NULL) {
		struct ringmq_delivery *d = *dp;

		if (d->f->delivery->subscription == id) {
			*dp = d->next;
			ringmq_delivery_free(d);
			continue;
		}
		*tail = d;
		dp = &d->next;
	}
}

/* Ends s with code: not restored, its queued deliveries dropped, and the
 * end reported by ringmq_next() (or ringmq_subscription_status()). */
static void
sub_end(struct ringmq_client *c, struct sub *s, int code)
{
	s->is_live = 0;
	s->is_ended = 1;
	s->end_code = code != 0 ? code : RINGMQ_GROUP_NOT_FOUND;
	deliveries_drop_of(&c->subs.dq_head, &c->subs.dq_tail, s->id);
	deliveries_drop_of(&c->subs.cbq_head, &c->subs.cbq_tail, s->id);
}

/* The router's Delivery handler (takes f): the delivery is the frame
 * itself, its struct in the frame's arena. */
static void
subs_push_delivery(struct ringmq_client *c, Ringmq__Frame *f)
{
	struct ringmq_delivery *d = frame_alloc(f, sizeof(*d));

	if (d == NULL) {
		/* The lease expires at the broker and the message comes
		 * again; nothing is lost. */
		frame_free(f);
		return;
	}
	d->f = f;
	d->conn_gen = c->conn_gen;
	d->next = NULL;
	subs_on_delivery(c, d);
	conn_wake(c);
}

/* The broker ended the subscription it knows as wire_id (its group or
 * queue was deleted): it is not restored, and ringmq_next() reports it. */
static void
subs_on_ended(struct ringmq_client *c, uint32_t wire_id, int code)
{
	for (struct sub *s = c->subs.list; s != NULL; s = s->next)
		if (s->is_live && s->wire_id == wire_id) {
			sub_end(c, s, code);
			return;
		}
	/* Maybe that of a Subscribe still waiting for its answer. */
	if (c->subs.subscribing > 0 && c->subs.n_early_ends < 8) {
		c->subs.early_end_ids[c->subs.n_early_ends] = wire_id;
		c->subs.early_end_codes[c->subs.n_early_ends++] = code;
	}
}

/* The router's SubscriptionEnded handler (takes f). */
static void
subs_push_ended(struct ringmq_client *c, Ringmq__Frame *f)
{
	subs_on_ended(c, f->subscription_ended->subscription,
		      (int)f->subscription_ended->code);
	conn_wake(c);
	frame_free(f);
}

/* The first subscription of ringmq_next()'s that the broker ended and
 * that was not reported yet: marks it told and @return its code (errmsg
 * says which), else 0. Lock held. */
static int
subs_take_ended(struct ringmq_client *c)
{
	for (struct sub *s = c->subs.list; s != NULL; s = s->next)
		if (s->end_code != 0 && !s->is_end_told && s->cb == NULL) {
			s->is_end_told = 1;
			return client_fail(c, s->end_code,
					   "subscription %u ended: its %s was "
					   "deleted",
					   s->id,
					   s->end_code == RINGMQ_QUEUE_NOT_FOUND
						   ? "queue"
						   : "group");
		}
	return 0;
}

int
ringmq_subscription_status(ringmq_client *c, uint32_t subscription)
{
	struct sub *s;
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	client_lock(c);
	s = sub_find(c, subscription);
	if (s == NULL || (s->is_ended && s->end_code == 0))
		rc = RINGMQ_USAGE;
	else if (s->end_code != 0)
		rc = client_fail(
			c, s->end_code,
			"subscription %u ended: its %s was deleted", s->id,
			s->end_code == RINGMQ_QUEUE_NOT_FOUND ? "queue"
							      : "group");
	else
		rc = RINGMQ_OK;
	client_unlock(c);
	return rc;
}

/* The router's lost hook: subscriptions need restoring. */
static void
subs_on_lost(struct ringmq_client *c)
{
	struct sub **sp = &c->subs.list;

	/* Leases die with the connection: the deliveries not handed out yet
	 * go. The broker counts their leases failed and delivers them again;
	 * handed out, each would be worked on twice, its ack refused with
	 * NOT_LEASED. */
	subs_drop_queued(c);
	deliveries_free(c->subs.unclaimed_head);
	c->subs.unclaimed_head = c->subs.unclaimed_tail = NULL;
	c->subs.n_early_ends = 0;

	while (*sp != NULL) {
		struct sub *s = *sp;

		if (s->is_ended && s->end_code == 0) {
			*sp = s->next;
			sub_free(s);
			continue;
		}
		s->is_live = 0;
		sp = &s->next;
	}
}

int
subs_restore(struct ringmq_client *c)
{
	/* Oldest first, as the caller made them (the list is newest first):
	 * walk it backwards by repeated scans; lists are short. */
	struct sub *done = NULL;

	for (;;) {
		struct sub *last = NULL;
		int rc;

		for (struct sub *s = c->subs.list; s != NULL && s != done;
		     s = s->next)
			last = s;
		if (last == NULL)
			return RINGMQ_OK;
		done = last;
		if (last->is_ended || last->is_live || last->is_first)
			continue;
		rc = sub_send(c, last);
		if (status_is_conn_failure(rc))
			return rc;
		/* A refusal (e.g. the queue was deleted) leaves it
		 * unrestored; errmsg keeps why. */
	}
}

static const struct conn_push subs_pushes[] = {
	{ RINGMQ__FRAME__BODY_DELIVERY, subs_push_delivery },
	{ RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED, subs_push_ended },
};

const struct conn_hooks subs_hooks = {
	.push = subs_pushes,
	.n_push = sizeof(subs_pushes) / sizeof(subs_pushes[0]),
	.lost = subs_on_lost,
};

void
subs_fini(struct ringmq_client *c)
{
	subs_drop_queued(c);
	deliveries_free(c->subs.unclaimed_head);
	c->subs.unclaimed_head = c->subs.unclaimed_tail = NULL;
	while (c->subs.list != NULL) {
		struct sub *s = c->subs.list;

		c->subs.list = s->next;
		sub_free(s);
	}
}

int
subs_run_callbacks(struct ringmq_client *c, struct ringmq_delivery *l)
{
	int n = 0;

	while (l != NULL) {
		struct ringmq_delivery *d = l;
		struct sub *s;
		ringmq_delivery_cb cb = NULL;
		void *ctx = NULL;

		l = d->next;
		d->next = NULL;
		client_lock(c);
		/* The connection it came on may have gone while earlier
		 * callbacks ran (one of them saw CONNECTION_LOST): its lease
		 * went with it. */
		s = c->state == CONN_OPEN && d->conn_gen == c->conn_gen
			    ? sub_find(c, d->f->delivery->subscription)
			    : NULL;
		if (s != NULL) {
			cb = s->cb;
			ctx = s->ctx;
		}
		if (cb != NULL && c->opts.is_auto_touch)
			touch_track(c, d);
		client_unlock(c);
		if (cb == NULL) {
			ringmq_delivery_free(d);
			continue;
		}
		cb(c, d, ctx); /* takes d */
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------- next */

static int
next_locked(ringmq_client *c, ringmq_delivery **deliveryp, int timeout_ms)
{
	int64_t deadline_ms;
	uint64_t gen;
	int was_open;
	int rc, pumped;

	c->errmsg[0] = '\0';
	/* Queued ones first (a loss took those of its connection), then
	 * the end of a subscription the broker ended. */
	*deliveryp = dq_pop(c);
	if (*deliveryp != NULL)
		return RINGMQ_OK;
	rc = subs_take_ended(c);
	if (rc != 0)
		return rc;
	rc = client_begin(c);
	if (rc != RINGMQ_OK)
		return rc;
	deadline_ms = timeout_ms < 0 ? -1 : conn_now_ms() + timeout_ms;
	gen = c->conn_gen;
	was_open = c->state == CONN_OPEN;
	for (;;) {
		if (c->is_woken) {
			c->is_woken = 0;
			return client_fail(c, RINGMQ_TIMEOUT, "woken up");
		}
		pumped = conn_pump(c, deadline_ms);
		*deliveryp = dq_pop(c);
		if (*deliveryp != NULL)
			return RINGMQ_OK;
		rc = subs_take_ended(c);
		if (rc != 0)
			return rc;
		rc = pumped;
		if (rc == RINGMQ_CLOSED)
			return client_fail(c, rc, "the client is closed");
		/* A loss while waiting is reported once; the next call
		 * reconnects and restores the subscriptions. */
		if (was_open && (c->state != CONN_OPEN || c->conn_gen != gen))
			return RINGMQ_CONNECTION_LOST; /* errmsg says why */
		if (!was_open && c->state == CONN_OPEN) {
			was_open = 1;
			gen = c->conn_gen;
		}
		if (rc == RINGMQ_CONNECTION_LOST && !c->opts.is_reconnect)
			return rc;
		if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms) {
			if (c->state != CONN_OPEN)
				return RINGMQ_UNREACHABLE;
			return RINGMQ_TIMEOUT;
		}
	}
}

int
ringmq_next(ringmq_client *c, ringmq_delivery **deliveryp, int timeout_ms)
{
	int rc;

	if (c == NULL || deliveryp == NULL)
		return RINGMQ_USAGE;
	*deliveryp = NULL;
	client_lock(c);
	rc = next_locked(c, deliveryp, timeout_ms);
	if (rc == RINGMQ_OK && c->opts.is_auto_touch)
		touch_track(c, *deliveryp);
	client_unlock(c);
	return rc;
}

void
ringmq_client_wakeup(ringmq_client *c)
{
	uint64_t one = 1;

	if (c == NULL)
		return;
	/* Async-signal-safe: a flag and a write(). */
	c->is_woken = 1;
	if (c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* a full counter is still readable */
}

/* ------------------------------------------------------------- accessors */

static const Ringmq__Delivery *
dv(const ringmq_delivery *d)
{
	return d->f->delivery;
}

uint32_t
ringmq_delivery_subscription(const ringmq_delivery *d)
{
	return dv(d)->subscription;
}

uint64_t
ringmq_delivery_lease_id(const ringmq_delivery *d)
{
	return dv(d)->lease_id;
}

uint32_t
ringmq_delivery_partition(const ringmq_delivery *d)
{
	return dv(d)->partition;
}

uint64_t
ringmq_delivery_offset(const ringmq_delivery *d)
{
	return dv(d)->offset;
}

uint32_t
ringmq_delivery_delivery_count(const ringmq_delivery *d)
{
	return dv(d)->delivery_count;
}

uint64_t
ringmq_delivery_lease_remaining_ms(const ringmq_delivery *d)
{
	return dv(d)->lease_remaining_ms;
}

uint64_t
ringmq_delivery_publish_ms(const ringmq_delivery *d)
{
	return dv(d)->has_publish_ms ? dv(d)->publish_ms : 0;
}

const void *
ringmq_delivery_payload(const ringmq_delivery *d, size_t *lenp)
{
	const ProtobufCBinaryData *p = &dv(d)->message->payload;

	if (lenp != NULL)
		*lenp = p->len;
	/* protobuf-c leaves data NULL for an empty field */
	return p->data ? (const void *)p->data : (const void *)"";
}

const void *
ringmq_delivery_key(const ringmq_delivery *d, size_t *lenp)
{
	const Ringmq__Message *m = dv(d)->message;

	if (lenp != NULL)
		*lenp = m->has_key ? m->key.len : 0;
	if (!m->has_key)
		return NULL;
	return m->key.data ? (const void *)m->key.data : (const void *)"";
}

size_t
ringmq_delivery_header_count(const ringmq_delivery *d)
{
	return dv(d)->message->n_headers;
}

const char *
ringmq_delivery_header_name(const ringmq_delivery *d, size_t i)
{
	const Ringmq__Message *m = dv(d)->message;

	return i < m->n_headers ? m->headers[i]->name : NULL;
}

const void *
ringmq_delivery_header_value(const ringmq_delivery *d, size_t i, size_t *lenp)
{
	const Ringmq__Message *m = dv(d)->message;
	const ProtobufCBinaryData *v;

	if (i >= m->n_headers) {
		if (lenp != NULL)
			*lenp = 0;
		return NULL;
	}
	v = &m->headers[i]->value;
	if (lenp != NULL)
		*lenp = v->len;
	return v->data ? (const void *)v->data : (const void *)"";
}

void
ringmq_delivery_free(ringmq_delivery *d)
{
	if (d == NULL)
		return;
	frame_free(d->f); /* d lives in the frame's arena */
}

/* ------------------------------------------------------------------ leases */

/* Which settle request, and its optional argument. */
struct lease_op {
	Ringmq__Frame__BodyCase body;
	uint64_t arg_ms; /* nack delay_ms or touch lease_ms; 0: absent */
	char *reason;	 /* nack: why; NULL: none */
};

/* The most of a nack's reason sent: what the broker keeps. */
#define NACK_REASON_MAX 1024

/*
 * Most ids per request: the broker's max batch count, and what fits in its
 * frame limit (a repeated uint64 costs at most 1 tag byte + 10 bytes; 64
 * bytes cover the frame, request id and the optional ms field; a reason
 * its own length).
 */
static size_t
lease_chunk(const ringmq_client *c, const struct lease_op *op)
{
	size_t fixed = 64 + (op->reason ? strlen(op->reason) + 4 : 0);
	size_t by_bytes = c->max_frame_bytes > fixed
				  ? (c->max_frame_bytes - fixed) / 11
				  : 1;
	size_t n =
		c->max_batch_count < by_bytes ? c->max_batch_count : by_bytes;

	return n ? n : 1;
}

/* A settle request and the parts it points to. */
struct lease_frame {
	Ringmq__Frame f;
	Ringmq__Ack ack;
	Ringmq__Nack nack;
	Ringmq__Release rel;
	Ringmq__Touch touch;
};

/* Builds in r the request of op for ids[0..n) (r->f points into r). */
static void
lease_frame_init(struct lease_frame *r, const struct lease_op *op,
		 const uint64_t *ids, size_t n)
{
	uint64_t *mut_ids = (uint64_t *)ids; /* packing only reads them */

	ringmq__frame__init(&r->f);
	r->f.body_case = op->body;
	switch (op->body) {
	case RINGMQ__FRAME__BODY_ACK:
		ringmq__ack__init(&r->ack);
		r->ack.n_lease_ids = n;
		r->ack.lease_ids = mut_ids;
		r->f.ack = &r->ack;
		break;
	case RINGMQ__FRAME__BODY_NACK:
		ringmq__nack__init(&r->nack);
		r->nack.n_lease_ids = n;
		r->nack.lease_ids = mut_ids;
		r->nack.has_delay_ms = op->arg_ms != 0;
		r->nack.delay_ms = op->arg_ms;
		r->nack.reason = op->reason;
		r->f.nack = &r->nack;
		break;
	case RINGMQ__FRAME__BODY_RELEASE:
		ringmq__release__init(&r->rel);
		r->rel.n_lease_ids = n;
		r->rel.lease_ids = mut_ids;
		r->f.release = &r->rel;
		break;
	default:
		ringmq__touch__init(&r->touch);
		r->touch.n_lease_ids = n;
		r->touch.lease_ids = mut_ids;
		r->touch.has_lease_ms = op->arg_ms != 0;
		r->touch.lease_ms = op->arg_ms;
		r->f.touch = &r->touch;
		break;
	}
}

/* The code of id i in an answer to a settle request of n ids. */
static int
lease_code(const Ringmq__Frame *f, size_t i)
{
	if (f->body_case == RINGMQ__FRAME__BODY_LEASE_RESULT)
		/* A short answer is the broker's fault: count it as such. */
		return i < f->lease_result->n_codes
			       ? (int)f->lease_result->codes[i]
			       : RINGMQ_BAD_FRAME;
	if (f->body_case == RINGMQ__FRAME__BODY_ERROR &&
	    (int)f->error->code != RINGMQ_OK)
		return (int)f->error->code;
	return RINGMQ_BAD_FRAME;
}

/* Sends one request for ids[0..n) and fills codes / remaining. */
static int
lease_request(ringmq_client *c, const struct lease_op *op, const uint64_t *ids,
	      size_t n, int *codes, uint64_t *remaining)
{
	struct lease_frame r;
	Ringmq__LeaseResult *lr;
	Ringmq__Frame *resp;
	int first = RINGMQ_OK;
	int rc;

	lease_frame_init(&r, op, ids, n);
	rc = conn_call(c, &r.f, RINGMQ__FRAME__BODY_LEASE_RESULT, &resp);
	if (rc != RINGMQ_OK) {
		for (size_t i = 0; i < n; i++) {
			if (codes != NULL)
				codes[i] = rc;
			if (remaining != NULL)
				remaining[i] = 0;
		}
		return rc;
	}
	lr = resp->lease_result;
	for (size_t i = 0; i < n; i++) {
		int code = lease_code(resp, i);

		if (codes != NULL)
			codes[i] = code;
		if (remaining != NULL)
			remaining[i] =
				code == RINGMQ_OK && i < lr->n_remaining_ms
					? lr->remaining_ms[i]
					: 0;
		if (code != RINGMQ_OK && first == RINGMQ_OK) {
			first = code;
			(void)client_fail(c, code, "lease %llu: %s",
					  (unsigned long long)ids[i],
					  ringmq_strerror(code));
		}
	}
	frame_free(resp);
	return first;
}

/* Runs op over every id, chunk by chunk; see ringmq.h for the result. */
static int
lease_run_locked(ringmq_client *c, const struct lease_op *op,
		 const uint64_t *ids, size_t n, int *codes, uint64_t *remaining)
{
	int conn_rc;
	int first = RINGMQ_OK;
	size_t chunk;

	conn_rc = client_begin(c);
	if (conn_rc == RINGMQ_USAGE)
		return conn_rc;
	if (ids == NULL && n > 0)
		return client_fail(c, RINGMQ_USAGE, "NULL lease ids");
	if (n == 0)
		return RINGMQ_OK;
	chunk = lease_chunk(c, op);
	for (size_t off = 0; off < n; off += chunk) {
		size_t k = n - off < chunk ? n - off : chunk;
		int rc;

		if (conn_rc != RINGMQ_OK) {
			/* Not sent after the connection failed. */
			for (size_t i = off; i < n; i++) {
				if (codes != NULL)
					codes[i] = conn_rc;
				if (remaining != NULL)
					remaining[i] = 0;
			}
			break;
		}
		rc = lease_request(c, op, ids + off, k,
				   codes ? codes + off : NULL,
				   remaining ? remaining + off : NULL);
		if (status_is_conn_failure(rc))
			conn_rc = rc;
		else if (rc != RINGMQ_OK && first == RINGMQ_OK)
			first = rc;
	}
	return conn_rc != RINGMQ_OK ? conn_rc : first;
}

static int
lease_run(ringmq_client *c, const struct lease_op *op, const uint64_t *ids,
	  size_t n, int *codes, uint64_t *remaining)
{
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	client_lock(c);
	if (op->body != RINGMQ__FRAME__BODY_TOUCH && ids != NULL)
		touch_forget(c, ids, n);
	rc = lease_run_locked(c, op, ids, n, codes, remaining);
	client_unlock(c);
	return rc;
}

int
ringmq_ack(ringmq_client *c, const uint64_t *lease_ids, size_t n, int *codes)
{
	struct lease_op op = { RINGMQ__FRAME__BODY_ACK, 0, NULL };

	return lease_run(c, &op, lease_ids, n, codes, NULL);
}

int
ringmq_nack(ringmq_client *c, const uint64_t *lease_ids, size_t n,
	    uint64_t delay_ms, int *codes)
{
	return ringmq_nack_reason(c, lease_ids, n, delay_ms, NULL, codes);
}

int
ringmq_nack_reason(ringmq_client *c, const uint64_t *lease_ids, size_t n,
		   uint64_t delay_ms, const char *reason, int *codes)
{
	struct lease_op op = { RINGMQ__FRAME__BODY_NACK, delay_ms, NULL };
	char cut[NACK_REASON_MAX + 1];
	size_t len;

	if (reason != NULL && reason[0] != '\0') {
		/* Cut at the limit, never inside a UTF-8 sequence. */
		len = strnlen(reason, NACK_REASON_MAX + 1);
		if (len > NACK_REASON_MAX) {
			len = NACK_REASON_MAX;
			while (len > 0 &&
			       ((unsigned char)reason[len] & 0xC0) == 0x80)
				len--;
		}
		memcpy(cut, reason, len);
		cut[len] = '\0';
		op.reason = cut;
	}
	return lease_run(c, &op, lease_ids, n, codes, NULL);
}

int
ringmq_release(ringmq_client *c, const uint64_t *lease_ids, size_t n,
	       int *codes)
{
	struct lease_op op = { RINGMQ__FRAME__BODY_RELEASE, 0, NULL };

	return lease_run(c, &op, lease_ids, n, codes, NULL);
}

int
ringmq_touch(ringmq_client *c, const uint64_t *lease_ids, size_t n,
	     uint64_t lease_ms, int *codes, uint64_t *remaining_ms)
{
	struct lease_op op = { RINGMQ__FRAME__BODY_TOUCH, lease_ms, NULL };

	return lease_run(c, &op, lease_ids, n, codes, remaining_ms);
}

/* ------------------------------------------------------ asynchronous acks */

static void
async_ack_free(struct async_ack *a)
{
	free(a->ids);
	free(a->codes);
	free(a);
}

static void
acks_free_list(struct async_ack *a)
{
	while (a != NULL) {
		struct async_ack *next = a->next;

		async_ack_free(a);
		a = next;
	}
}

/* Appends a (answered) to the list of acks whose callbacks are due. */
static void
acks_done_push(struct ringmq_client *c, struct async_ack *a)
{
	a->next = NULL;
	a->request_id = 0;
	if (c->acks.done_tail != NULL)
		c->acks.done_tail->next = a;
	else
		c->acks.done = a;
	c->acks.done_tail = a;
}

/* New requests of ids[0..n), chunked as the broker allows; NULL when out
 * of memory. */
static struct async_ack *
acks_new(struct ringmq_client *c, const uint64_t *ids, size_t n,
	 ringmq_ack_cb cb, void *ctx)
{
	static const struct lease_op ack = { RINGMQ__FRAME__BODY_ACK, 0, NULL };
	struct async_ack *list = NULL, **tail = &list;
	size_t chunk = lease_chunk(c, &ack);

	for (size_t off = 0; off < n; off += chunk) {
		size_t k = n - off < chunk ? n - off : chunk;
		struct async_ack *a = calloc(1, sizeof(*a));

		if (a != NULL) {
			a->ids = malloc(k * sizeof(*a->ids));
			a->codes = calloc(k, sizeof(*a->codes));
		}
		if (a == NULL || a->ids == NULL || a->codes == NULL) {
			if (a != NULL)
				async_ack_free(a);
			acks_free_list(list);
			return NULL;
		}
		memcpy(a->ids, ids + off, k * sizeof(*a->ids));
		a->n = k;
		a->cb = cb;
		a->ctx = ctx;
		*tail = a;
		tail = &a->next;
	}
	return list;
}

int
ringmq_ack_async(ringmq_client *c, const uint64_t *lease_ids, size_t n,
		 ringmq_ack_cb cb, void *ctx)
{
	static const struct lease_op op = { RINGMQ__FRAME__BODY_ACK, 0, NULL };
	struct async_ack *list;
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	client_lock(c);
	rc = client_begin(c);
	if (rc == RINGMQ_OK && lease_ids == NULL && n > 0)
		rc = client_fail(c, RINGMQ_USAGE, "NULL lease ids");
	if (rc == RINGMQ_OK && n > 0 &&
	    (c->state != CONN_OPEN || !c->is_ready || c->is_closing))
		rc = client_fail(c, RINGMQ_CONNECTION_LOST, "not connected");
	if (rc != RINGMQ_OK || n == 0) {
		client_unlock(c);
		return rc;
	}
	list = acks_new(c, lease_ids, n, cb, ctx);
	if (list == NULL) {
		client_unlock(c);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	touch_forget(c, lease_ids, n);
	while (list != NULL) {
		struct async_ack *a = list;
		struct lease_frame r;

		list = a->next;
		a->next = NULL;
		lease_frame_init(&r, &op, a->ids, a->n);
		a->request_id = conn_next_request_id(c);
		r.f.has_request_id = 1;
		r.f.request_id = a->request_id;
		if (conn_queue_frame(c, &r.f) != RINGMQ_OK) {
			/* Out of memory: what was queued goes; not the rest. */
			async_ack_free(a);
			acks_free_list(list);
			rc = client_fail(c, RINGMQ_INTERNAL, "out of memory");
			break;
		}
		if (c->acks.sent_tail != NULL)
			c->acks.sent_tail->next = a;
		else
			c->acks.sent = a;
		c->acks.sent_tail = a;
	}
	conn_try_send(c);
	client_unlock(c);
	return rc;
}

/* The router's answer hook: takes an answer to an asynchronous ack; 1
 * when f was one (f consumed). */
static int
acks_on_answer(struct ringmq_client *c, Ringmq__Frame *f)
{
	struct async_ack *a, *prev = NULL;

	for (a = c->acks.sent; a != NULL; prev = a, a = a->next)
		if (a->request_id == f->request_id)
			break;
	if (a == NULL)
		return 0;
	if (prev != NULL)
		prev->next = a->next;
	else
		c->acks.sent = a->next;
	if (c->acks.sent_tail == a)
		c->acks.sent_tail = prev;
	for (size_t i = 0; i < a->n; i++)
		a->codes[i] = lease_code(f, i);
	acks_done_push(c, a);
	frame_free(f);
	conn_wake(c);
	return 1;
}

void
acks_on_lost(struct ringmq_client *c, int code)
{
	struct async_ack *a = c->acks.sent;

	c->acks.sent = NULL;
	c->acks.sent_tail = NULL;
	while (a != NULL) {
		struct async_ack *next = a->next;

		for (size_t i = 0; i < a->n; i++)
			a->codes[i] = code;
		acks_done_push(c, a);
		a = next;
	}
}

/* The router's lost hook: an ack cannot go again, its lease died with
 * the connection. */
static void
acks_conn_lost(struct ringmq_client *c)
{
	acks_on_lost(c, RINGMQ_CONNECTION_LOST);
}

const struct conn_hooks acks_hooks = {
	.answer = acks_on_answer,
	.lost = acks_conn_lost,
};

int
acks_run_done(struct ringmq_client *c, struct async_ack *list)
{
	int n = 0;

	while (list != NULL) {
		struct async_ack *a = list;

		list = a->next;
		if (a->cb != NULL)
			a->cb(c, a->ids, a->codes, a->n, a->ctx);
		async_ack_free(a);
		n++;
	}
	return n;
}

void
acks_fini(struct ringmq_client *c)
{
	acks_free_list(c->acks.sent);
	acks_free_list(c->acks.done);
	c->acks.sent = NULL;
	c->acks.sent_tail = NULL;
	c->acks.done = NULL;
	c->acks.done_tail = NULL;
}
