/*
 * worker.c: automatic lease extension (auto-touch) and the blocking worker
 * helper.
 *
 * Auto-touch remembers each lease handed out (by ringmq_next() or a
 * delivery callback) until this client settles it, and extends it with a
 * Touch when half of its lease time has passed. A background thread sends
 * those touches, so that a job running in the caller's thread for longer
 * than the lease keeps it; the touch's answer is not waited for.
 *
 * The worker takes one job at a time from a subscription, runs the
 * caller's handler, acks on success, nacks with exponential backoff on
 * failure, and releases what it still holds when asked to stop.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest sleep of the touch thread between checks, ms. */
#define TOUCH_TICK_MS 100

/* Poll slice of the worker, so that a stop is seen without a signal. */
#define WORKER_SLICE_MS 1000

/* ------------------------------------------------------------ auto-touch */

void
touch_track(struct ringmq_client *c, const struct ringmq_delivery *d)
{
	const Ringmq__Delivery *dv = d->f->delivery;
	struct tracked_lease *t;

	if (dv->lease_remaining_ms == 0)
		return;
	if (c->n_tracked == c->cap_tracked) {
		size_t cap = c->cap_tracked ? c->cap_tracked * 2 : 16;

		t = realloc(c->tracked, cap * sizeof(*t));
		if (t == NULL)
			return; /* not extended: the lease may expire */
		c->tracked = t;
		c->cap_tracked = cap;
	}
	t = &c->tracked[c->n_tracked++];
	t->lease_id = dv->lease_id;
	t->period_ms = (int64_t)dv->lease_remaining_ms;
	t->touch_at_ms = conn_now_ms() + t->period_ms / 2;
}

void
touch_forget(struct ringmq_client *c, const uint64_t *ids, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < c->n_tracked; i++) {
			if (c->tracked[i].lease_id != ids[k])
				continue;
			c->tracked[i] = c->tracked[--c->n_tracked];
			break;
		}
	}
}

void
touch_send_due(struct ringmq_client *c, int64_t now_ms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Touch touch = RINGMQ__TOUCH__INIT;
	uint64_t ids[256];
	size_t n = 0;

	for (size_t i = 0; i < c->n_tracked && n < 256; i++) {
		struct tracked_lease *t = &c->tracked[i];

		if (t->touch_at_ms > now_ms)
			continue;
		ids[n++] = t->lease_id;
		t->touch_at_ms = now_ms + t->period_ms / 2;
	}
	if (n == 0)
		return;
	touch.n_lease_ids = n;
	touch.lease_ids = ids;
	f.has_request_id = 1;
	f.request_id = conn_next_request_id(c);
	f.body_case = RINGMQ__FRAME__BODY_TOUCH;
	f.touch = &touch;
	/* Out of memory: the lease may expire and come again; no loss. */
	(void)conn_queue_frame(c, &f);
}

int64_t
touch_next_due_ms(const struct ringmq_client *c)
{
	int64_t due = -1;

	for (size_t i = 0; i < c->n_tracked; i++)
		if (due < 0 || c->tracked[i].touch_at_ms < due)
			due = c->tracked[i].touch_at_ms;
	return due;
}

static void *
touch_main(void *arg)
{
	struct ringmq_client *c = arg;
	struct timespec tick = { 0, TOUCH_TICK_MS * 1000000L };

	while (!__atomic_load_n(&c->is_stopping_touch, __ATOMIC_ACQUIRE)) {
		client_lock(c);
		/* A zero wait: sends due touches and keepalives, reads what
		 * arrived (answers the broker's pings). Nothing to wait for
		 * when no lease is held. */
		if (c->state == CONN_OPEN && c->is_ready && c->n_tracked > 0)
			(void)conn_pump(c, conn_now_ms());
		client_unlock(c);
		(void)nanosleep(&tick, NULL);
	}
	return NULL;
}

int
touch_thread_start(struct ringmq_client *c)
{
	c->is_stopping_touch = 0;
	if (pthread_create(&c->touch_thread, NULL, touch_main, c) != 0)
		return -1;
	c->has_touch_thread = 1;
	return 0;
}

void
touch_thread_stop(struct ringmq_client *c)
{
	if (!c->has_touch_thread)
		return;
	__atomic_store_n(&c->is_stopping_touch, 1, __ATOMIC_RELEASE);
	(void)pthread_join(c->touch_thread, NULL);
	c->has_touch_thread = 0;
}

/* ----------------------------------------------------------------- worker */

/* Nack delay after the n-th failed delivery: base * 2^(n-1), capped. */
static uint64_t
nack_delay_ms(const struct ringmq_client *c, uint32_t delivery_count)
{
	uint64_t d = (uint64_t)c->opts.nack_backoff_ms;
	uint64_t cap = (uint64_t)c->opts.nack_backoff_max_ms;

	for (uint32_t i = 1; i < delivery_count && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

/* Pauses the subscription, then releases every delivery still held. */
static int
worker_finish(ringmq_client *c, uint32_t sub)
{
	ringmq_delivery *d;
	uint64_t *ids = NULL;
	size_t n = 0;
	size_t cap = 0;
	int rc;

	/* Once credit 0 is answered, every delivery sent before is here. */
	rc = ringmq_subscription_set_credit(c, sub, 0);
	while (ringmq_next(c, &d, 0) == RINGMQ_OK) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			uint64_t *p = realloc(ids, ncap * sizeof(*ids));

			if (p == NULL) {
				ringmq_delivery_free(d);
				break; /* the rest expires and comes again */
			}
			ids = p;
			cap = ncap;
		}
		ids[n++] = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
	}
	if (n > 0 && rc == RINGMQ_OK)
		rc = ringmq_release(c, ids, n, NULL);
	free(ids);
	if (rc == RINGMQ_OK)
		rc = ringmq_unsubscribe(c, sub);
	return rc;
}

int
ringmq_worker_run(ringmq_client *c, const char *queue, const char *group,
		  uint32_t credit, ringmq_job_handler handler, void *ctx)
{
	uint32_t sub;
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	if (queue == NULL || group == NULL || handler == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	rc = ringmq_subscribe(c, &sub, queue, group, credit ? credit : 1,
			      RINGMQ_START_EARLIEST);
	if (rc != RINGMQ_OK)
		return rc;
	while (!c->is_worker_stopping) {
		ringmq_delivery *d = NULL;
		uint64_t id;
		int code;

		/* Completions of asynchronous publishes made by jobs. */
		(void)ringmq_client_poll(c, 0);
		rc = ringmq_next(c, &d, WORKER_SLICE_MS);
		if (rc == RINGMQ_TIMEOUT || rc == RINGMQ_CONNECTION_LOST ||
		    rc == RINGMQ_UNREACHABLE)
			continue; /* the next round reconnects */
		if ((rc == RINGMQ_GROUP_NOT_FOUND ||
		     rc == RINGMQ_QUEUE_NOT_FOUND) &&
		    ringmq_subscription_status(c, sub) == RINGMQ_OK)
			continue; /* another subscription of the client ended */
		if (rc == RINGMQ_GROUP_NOT_FOUND ||
		    rc == RINGMQ_QUEUE_NOT_FOUND) {
			/* Ours: nothing to release; forget it, and stop. */
			(void)ringmq_unsubscribe(c, sub);
			goto out;
		}
		if (rc != RINGMQ_OK)
			goto out;
		id = ringmq_delivery_lease_id(d);
		if (c->is_worker_stopping) {
			/* Taken but not started: give it back. */
			(void)ringmq_release(c, &id, 1, NULL);
			ringmq_delivery_free(d);
			break;
		}
		code = handler(c, d, ctx);
		if (code == 0)
			(void)ringmq_ack(c, &id, 1, NULL);
		else
			(void)ringmq_nack(
				c, &id, 1,
				nack_delay_ms(
					c, ringmq_delivery_delivery_count(d)),
				NULL);
		/* A failed settle (e.g. NOT_LEASED after a reconnect) leaves
		 * the job to the broker: it comes again. */
		ringmq_delivery_free(d);
	}
	rc = worker_finish(c, sub);
	(void)ringmq_client_flush(c, c->opts.request_timeout_ms);
out:
	c->is_worker_stopping = 0;
	return rc;
}

void
ringmq_worker_stop(ringmq_client *c)
{
	if (c == NULL)
		return;
	c->is_worker_stopping = 1;
	ringmq_client_wakeup(c);
}
