/*
 * worker.c: the blocking worker helper, a user of the public calls
 * (subscribe, next, ack, nack, release) above every other module.
 *
 * The worker takes one job at a time from a subscription, runs the
 * caller's handler, acks on success, nacks with exponential backoff on
 * failure, and releases what it still holds when asked to stop.
 */
#include "internal.h"

#include <stdlib.h>

/* Poll slice of the worker, so that a stop is seen without a signal. */
#define WORKER_SLICE_MS 1000

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
