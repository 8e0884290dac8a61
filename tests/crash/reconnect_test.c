/*
 * Reconnect test: one client is first the producer, then the consumer,
 * across kill -9 restarts of the broker on the same address.
 *
 * The client publishes N keyless messages asynchronously to a queue of 4
 * partitions while the broker is killed with SIGKILL and started again on
 * the same data directory and port, K times; every publish must be
 * confirmed once and the queue must then hold exactly N (the library
 * resends unanswered batches after each reconnect and the broker
 * recognises those it stored). Then the same client, on the connection its
 * last reconnect made, subscribes with credit 1,000 and acks each delivery
 * synchronously. For the first half the broker is left alone: every ack
 * must be OK and every message must come once. Then the broker is killed
 * once more, under a delivery taken and not acked yet, and started again
 * after that ack failed: the loss may cost that ack and that message's
 * second delivery, nothing else (a delivery the dead connection had
 * queued, handed out, would be a second duplicate and a NOT_LEASED ack).
 *
 * Usage: reconnect_test [--long]
 * The short run (suite crash) publishes 20,000 messages with 3 kills; the
 * long one (crash-long) 300,000 with 5.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringmq.h>

#include "harness.h"

#define QUEUE	       "reconnect"
#define CREDIT	       1000
#define SHORT_MESSAGES 20000
#define SHORT_KILLS    3
#define LONG_MESSAGES  300000
#define LONG_KILLS     5
#define WAIT_MS	       10000  /* longest wait for one answer or delivery */
#define CONFIRM_MS     600000 /* longest wait for every confirm */
#define RESTART_TRIES  50     /* starts on the old port, 100 ms apart */

static struct harness_broker broker;
static char listen_addr[64]; /* the first start's address, kept */

/* What the publish callbacks saw, per message index. */
static struct {
	uint8_t *calls;
	long ok;
	long bad;
} published;

static void
on_report(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	long i = (long)(intptr_t)ctx;

	(void)c;
	published.calls[i]++;
	if (ringmq_publish_report_code(r) == RINGMQ_OK) {
		published.ok++;
		return;
	}
	if (published.bad++ < 10)
		fprintf(stderr, "reconnect: publish %ld: %s: %s\n", i,
			ringmq_code_name(ringmq_publish_report_code(r)),
			ringmq_publish_report_message(r));
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/*
 * Kills the broker with SIGKILL and starts it again on its data directory
 * and port. The port may be held for a moment as the local end of another
 * program's connection: a start that fails is tried again, a bounded
 * number of times. @return 0, or -1.
 */
static int
kill_and_restart(void)
{
	(void)harness_kill(&broker, SIGKILL);
	for (int i = 0; i < RESTART_TRIES; i++) {
		if (harness_start(&broker, NULL) == 0)
			return 0;
		sleep_ms(100);
	}
	fprintf(stderr, "reconnect: the broker did not restart on %s\n",
		broker.addr);
	return -1;
}

static int
publish_index(ringmq_client *c, long i)
{
	char payload[32];
	int len = snprintf(payload, sizeof(payload), "%ld", i);
	ringmq_message *m = ringmq_message_new(payload, (size_t)len);
	int rc;

	if (m == NULL)
		return RINGMQ_INTERNAL;
	rc = ringmq_publish_async(c, QUEUE, m, on_report, (void *)(intptr_t)i);
	ringmq_message_free(m);
	return rc;
}

/* Queues messages [*i, end) asynchronously, serving the client between
 * bursts. @return 0, or -1 on a publish that retrying cannot cure. */
static int
publish_range(ringmq_client *c, long *i, long end)
{
	while (*i < end) {
		int rc = publish_index(c, *i);

		if (rc == RINGMQ_OK) {
			++*i;
		} else if (rc != RINGMQ_TIMEOUT && rc != RINGMQ_UNREACHABLE) {
			/* A full buffer or a reconnect not done in time is
			 * tried again. */
			fprintf(stderr, "reconnect: publish %ld: %s: %s\n", *i,
				ringmq_code_name(rc), ringmq_client_errmsg(c));
			return -1;
		}
		if (*i % 1000 == 0 || rc != RINGMQ_OK)
			(void)ringmq_client_poll(c, 0);
	}
	return 0;
}

/* Serves the client until published.ok reaches ok or deadline_ms passes.
 * @return 0, or -1 at the deadline. */
static int
wait_confirmed(ringmq_client *c, long ok, long long deadline_ms)
{
	while (published.ok + published.bad < ok) {
		if (harness_now_ms() > deadline_ms) {
			fprintf(stderr,
				"reconnect: %ld of %ld confirmed in "
				"time\n",
				published.ok, ok);
			return -1;
		}
		(void)ringmq_client_poll(c, 100);
	}
	return 0;
}

/*
 * Publishes n messages in kills + 1 parts; once a message of a part is
 * confirmed (its batches are on the wire) the broker is killed and
 * started again, and the next part goes. Then serves the client until
 * every message is confirmed. @return 0 when each was confirmed once,
 * else -1.
 */
static int
produce(ringmq_client *c, long n, int kills)
{
	long long deadline = harness_now_ms() + CONFIRM_MS;
	long part = n / (kills + 1);
	long i = 0;

	for (int k = 0; k < kills; k++) {
		long first = i;

		if (publish_range(c, &i, first + part) < 0 ||
		    wait_confirmed(c, first + 1, deadline) < 0 ||
		    kill_and_restart() < 0)
			return -1;
	}
	if (publish_range(c, &i, n) < 0 || wait_confirmed(c, n, deadline) < 0)
		return -1;
	for (long k = 0; k < n; k++) {
		if (published.calls[k] != 1) {
			fprintf(stderr,
				"reconnect: message %ld reported %d "
				"times\n",
				k, published.calls[k]);
			return -1;
		}
	}
	return published.bad == 0 && published.ok == n ? 0 : -1;
}

/* Messages stored in the queue, or -1. */
static long long
stored(ringmq_client *c)
{
	ringmq_queue_list *l = NULL;
	long long messages = -1;
	int rc = ringmq_queue_list_get(c, &l);

	if (rc != RINGMQ_OK) {
		fprintf(stderr, "reconnect: queue list: %s: %s\n",
			ringmq_code_name(rc), ringmq_client_errmsg(c));
		return -1;
	}
	for (size_t i = 0; i < ringmq_queue_list_count(l); i++)
		if (strcmp(ringmq_queue_list_name(l, i), QUEUE) == 0)
			messages = (long long)ringmq_queue_list_messages(l, i);
	ringmq_queue_list_free(l);
	return messages;
}

/*
 * Takes every message, acking each synchronously; kills the broker under
 * the delivery that makes n / 2 and restarts it once that ack failed.
 * @return 0 when the first n / 2 came once with every ack OK, and the
 * kill cost at most its own ack (not NOT_LEASED) and one duplicate.
 */
static int
consume(ringmq_client *c, long n)
{
	uint8_t *seen = calloc((size_t)n, 1);
	long got = 0, dups = 0, ack_fails = 0, other = 0;
	long dups_before_kill = -1, fails_before_kill = -1;
	uint32_t sub;
	int rc;

	if (seen == NULL)
		return -1;
	rc = ringmq_subscribe(c, &sub, QUEUE, "g", CREDIT,
			      RINGMQ_START_EARLIEST);
	if (rc != RINGMQ_OK) {
		fprintf(stderr, "reconnect: subscribe: %s: %s\n",
			ringmq_code_name(rc), ringmq_client_errmsg(c));
		free(seen);
		return -1;
	}
	/* Each round takes a delivery or fails: at most 2n rounds. */
	for (long round = 0; got < n && round < 2 * n; round++) {
		ringmq_delivery *d = NULL;
		char buf[32];
		const void *p;
		size_t len;
		uint64_t id;
		long i;

		rc = ringmq_next(c, &d, WAIT_MS);
		if (rc != RINGMQ_OK) {
			fprintf(stderr, "reconnect: next after %ld: %s: %s\n",
				got, ringmq_code_name(rc),
				ringmq_client_errmsg(c));
			if (other++ == 10 || rc == RINGMQ_TIMEOUT)
				break;
			continue;
		}
		p = ringmq_delivery_payload(d, &len);
		i = -1;
		if (len < sizeof(buf)) {
			memcpy(buf, p, len);
			buf[len] = '\0';
			i = strtol(buf, NULL, 10);
		}
		if (i < 0 || i >= n) {
			fprintf(stderr, "reconnect: a message not published\n");
			ringmq_delivery_free(d);
			break;
		}
		if (seen[i]++ == 0) {
			got++;
		} else if (dups++ < 10) {
			fprintf(stderr,
				"reconnect: message %ld again (delivery "
				"count %u) after %ld\n",
				i, ringmq_delivery_delivery_count(d), got);
		}
		id = ringmq_delivery_lease_id(d);
		ringmq_delivery_free(d);
		if (got == n / 2 && dups_before_kill < 0) {
			dups_before_kill = dups;
			fails_before_kill = ack_fails;
			(void)harness_kill(&broker, SIGKILL);
			rc = ringmq_ack(c, &id, 1, NULL);
			if (rc == RINGMQ_OK || rc == RINGMQ_NOT_LEASED) {
				fprintf(stderr,
					"reconnect: ack with the broker down: "
					"%s\n",
					ringmq_code_name(rc));
				other++;
			}
			if (kill_and_restart() < 0)
				break;
			continue;
		}
		rc = ringmq_ack(c, &id, 1, NULL);
		if (rc != RINGMQ_OK && ack_fails++ < 10)
			fprintf(stderr, "reconnect: ack after %ld: %s: %s\n",
				got, ringmq_code_name(rc),
				ringmq_client_errmsg(c));
	}
	free(seen);
	fprintf(stderr,
		"reconnect: %ld of %ld delivered; left alone: %ld twice, %ld "
		"acks not OK; after the kill: %ld twice, %ld acks not OK\n",
		got, n, dups_before_kill, fails_before_kill,
		dups - dups_before_kill, ack_fails - fails_before_kill);
	return got == n && dups_before_kill == 0 && fails_before_kill == 0 &&
			       dups <= 1 && ack_fails == 0 && other == 0
		       ? 0
		       : -1;
}

int
main(int argc, char **argv)
{
	int is_long = argc > 1 && strcmp(argv[1], "--long") == 0;
	long n = is_long ? LONG_MESSAGES : SHORT_MESSAGES;
	int kills = is_long ? LONG_KILLS : SHORT_KILLS;
	const char *flags[] = { "--sync", "always", NULL, NULL, NULL };
	ringmq_queue_opts *qo = NULL;
	ringmq_opts *o = NULL;
	ringmq_client *c = NULL;
	char err[512];
	long long messages;
	int rc = 1;

	if (argc > 2 || (argc == 2 && !is_long)) {
		fprintf(stderr, "usage: reconnect_test [--long]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	published.calls = calloc((size_t)n, 1);
	broker.stdout_fd = -1;
	if (published.calls == NULL || harness_start(&broker, flags) < 0)
		goto out;
	/* Restarts keep the address: the one client follows it. */
	snprintf(listen_addr, sizeof(listen_addr), "%s", broker.addr);
	flags[2] = "--listen";
	flags[3] = listen_addr;
	for (int i = 0; flags[i] != NULL; i++)
		broker.extra[i] = flags[i];
	broker.extra[4] = NULL;

	o = ringmq_opts_new();
	qo = ringmq_queue_opts_new();
	if (o == NULL || qo == NULL ||
	    ringmq_opts_set(o, "server", broker.addr, err, sizeof(err)) ||
	    /* The ack with the broker down gives up sooner. */
	    ringmq_opts_set(o, "request-timeout-ms", "2000", err,
			    sizeof(err)) ||
	    ringmq_client_connect(&c, o, err, sizeof(err)) ||
	    ringmq_queue_opts_set(qo, "partitions", "4", err, sizeof(err)) ||
	    ringmq_queue_create(c, QUEUE, qo)) {
		fprintf(stderr, "reconnect: set-up failed: %s%s\n", err,
			c ? ringmq_client_errmsg(c) : "");
		goto out;
	}
	if (produce(c, n, kills) < 0)
		goto out;
	messages = stored(c);
	if (messages != n) {
		fprintf(stderr, "reconnect: %lld stored for %ld published\n",
			messages, n);
		goto out;
	}
	if (consume(c, n) < 0)
		goto out;
	messages = stored(c);
	if (messages != 0) {
		fprintf(stderr, "reconnect: %lld left after every ack\n",
			messages);
		goto out;
	}
	rc = 0;
out:
	ringmq_client_free(c);
	ringmq_opts_free(o);
	ringmq_queue_opts_free(qo);
	if (harness_stop(&broker) != 0 && rc == 0) {
		fprintf(stderr, "reconnect: SIGTERM stop failed\n");
		rc = 1;
	}
	if (rc == 0)
		harness_cleanup(&broker);
	else
		fprintf(stderr, "reconnect: FAILED; data directory kept: %s\n",
			broker.dir);
	free(published.calls);
	return rc;
}
