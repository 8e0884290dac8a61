/*
 * touch.c: automatic lease extension (auto-touch).
 *
 * Remembers each lease handed out (by ringmq_next() or a delivery
 * callback) until this client settles it, and extends it with a Touch when
 * half of its lease time has passed. A background thread sends those
 * touches, so that a job running in the caller's thread for longer than
 * the lease keeps it; the touch's answer is not waited for.
 */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

/* Longest sleep of the touch thread between checks, ms. */
#define TOUCH_TICK_MS 100

void
touch_track(struct ringmq_client *c, const struct ringmq_delivery *d)
{
	const Ringmq__Delivery *dv = d->f->delivery;
	struct tracked_lease *t;

	if (dv->lease_remaining_ms == 0)
		return;
	if (c->touch.n_tracked == c->touch.cap_tracked) {
		size_t cap =
			c->touch.cap_tracked ? c->touch.cap_tracked * 2 : 16;

		t = realloc(c->touch.tracked, cap * sizeof(*t));
		if (t == NULL)
			return; /* not extended: the lease may expire */
		c->touch.tracked = t;
		c->touch.cap_tracked = cap;
	}
	t = &c->touch.tracked[c->touch.n_tracked++];
	t->lease_id = dv->lease_id;
	t->period_ms = (int64_t)dv->lease_remaining_ms;
	t->touch_at_ms = conn_now_ms() + t->period_ms / 2;
}

void
touch_forget(struct ringmq_client *c, const uint64_t *ids, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < c->touch.n_tracked; i++) {
			if (c->touch.tracked[i].lease_id != ids[k])
				continue;
			c->touch.tracked[i] =
				c->touch.tracked[--c->touch.n_tracked];
			break;
		}
	}
}

/* The router's tick: sends one Touch for the leases due at now_ms (its
 * answer is dropped). @return when the next lease is due, or -1. */
static int64_t
touch_tick(struct ringmq_client *c, int64_t now_ms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Touch touch = RINGMQ__TOUCH__INIT;
	uint64_t ids[256];
	size_t n = 0;
	int64_t due = -1;

	for (size_t i = 0; i < c->touch.n_tracked; i++) {
		struct tracked_lease *t = &c->touch.tracked[i];

		if (t->touch_at_ms <= now_ms && n < 256) {
			ids[n++] = t->lease_id;
			t->touch_at_ms = now_ms + t->period_ms / 2;
		}
		if (due < 0 || t->touch_at_ms < due)
			due = t->touch_at_ms;
	}
	if (n == 0)
		return due;
	touch.n_lease_ids = n;
	touch.lease_ids = ids;
	f.has_request_id = 1;
	f.request_id = conn_next_request_id(c);
	f.body_case = RINGMQ__FRAME__BODY_TOUCH;
	f.touch = &touch;
	/* Out of memory: the lease may expire and come again; no loss. */
	(void)conn_queue_frame(c, &f);
	return due;
}

/* When the next tracked lease is due for a touch, or -1. */
static int64_t
touch_next_due_ms(const struct ringmq_client *c)
{
	int64_t due = -1;

	for (size_t i = 0; i < c->touch.n_tracked; i++) {
		int64_t at = c->touch.tracked[i].touch_at_ms;

		if (due < 0 || at < due)
			due = at;
	}
	return due;
}

/* The router's lost hook: leases die with the connection, nothing is left
 * to touch. */
static void
touch_conn_lost(struct ringmq_client *c)
{
	c->touch.n_tracked = 0;
}

const struct conn_hooks touch_hooks = {
	.tick = touch_tick,
	.due = touch_next_due_ms,
	.lost = touch_conn_lost,
};

static void *
touch_main(void *arg)
{
	struct ringmq_client *c = arg;
	struct timespec tick = { 0, TOUCH_TICK_MS * 1000000L };

	while (!__atomic_load_n(&c->touch.is_stopping, __ATOMIC_ACQUIRE)) {
		client_lock(c);
		/* A zero wait: sends due touches and keepalives, reads what
		 * arrived (answers the broker's pings). Nothing to wait for
		 * when no lease is held. */
		if (c->state == CONN_OPEN && c->is_ready &&
		    c->touch.n_tracked > 0)
			(void)conn_pump(c, conn_now_ms());
		client_unlock(c);
		(void)nanosleep(&tick, NULL);
	}
	return NULL;
}

int
touch_thread_start(struct ringmq_client *c)
{
	c->touch.is_stopping = 0;
	if (pthread_create(&c->touch.thread, NULL, touch_main, c) != 0)
		return -1;
	c->touch.has_thread = 1;
	return 0;
}

void
touch_fini(struct ringmq_client *c)
{
	free(c->touch.tracked);
	c->touch.tracked = NULL;
	c->touch.n_tracked = c->touch.cap_tracked = 0;
}

void
touch_thread_stop(struct ringmq_client *c)
{
	if (!c->touch.has_thread)
		return;
	__atomic_store_n(&c->touch.is_stopping, 1, __ATOMIC_RELEASE);
	(void)pthread_join(c->touch.thread, NULL);
	c->touch.has_thread = 0;
}
