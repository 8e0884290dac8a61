/*
 * cli_consume.c: "ringmq consume": subscribe, print each payload, settle.
 *
 * Invariants:
 *  - never leased more than it will print: the credit is at most the
 *    messages still wanted (capped at CREDIT_WINDOW) plus the printed
 *    messages it still holds. With --ack the credit is lowered before the
 *    ack that frees a slot; otherwise printed messages are held (settled at
 *    exit, so the broker does not hand them back to this same run) and the
 *    credit only grows.
 *  - standard output is flushed before a message is settled, and a message
 *    that could not be written is released, so none is lost.
 *  - at exit the credit goes to 0 and every lease received but not printed
 *    is released.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most messages leased ahead of printing. */
#define CREDIT_WINDOW 64

/* Raise the credit once it lags the allowed value by this much. */
#define CREDIT_STEP 16

/* Longest wait inside the library, so a signal is seen promptly. */
#define SLICE_MS 100

/* With --follow, an idle connection is checked with a ping this often, so
 * a broker that vanished without closing is noticed. */
#define FOLLOW_PING_MS 15000

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

/* A growable list of lease ids. */
struct leases {
	uint64_t *ids; /* owned */
	size_t n;
	size_t cap;
};

static int
leases_add(struct leases *l, uint64_t id)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		uint64_t *nids = realloc(l->ids, ncap * sizeof(*nids));

		if (nids == NULL)
			return -1;
		l->ids = nids;
		l->cap = ncap;
	}
	l->ids[l->n++] = id;
	return 0;
}

struct consume {
	const struct cli *cli;
	ringmq_client *c;
	uint32_t sub;
	uint32_t credit;	 /* the value the broker has */
	uint64_t printed;	 /* messages written to stdout */
	struct leases held;	 /* printed, settled at exit (nack/release) */
	struct leases unprinted; /* received, not printed: released at exit */
	int conn_rc;		 /* connection failure, else OK */
	int is_refused;		 /* a settle or request was refused */
	int is_ended;		 /* the broker ended the subscription */
	int is_io_failed;	 /* stdout failed */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records a failed library call's outcome and prints it once. */
static void
note_failure(struct consume *k, int rc, const char *what)
{
	if (rc == RINGMQ_OK)
		return;
	if (cli_is_conn_failure(rc)) {
		if (k->conn_rc == RINGMQ_OK)
			cli_error(rc, "%s: %s", what,
				  ringmq_client_errmsg(k->c));
		k->conn_rc = rc;
		return;
	}
	k->is_refused = 1;
	cli_error(rc, "%s: %s", what, ringmq_client_errmsg(k->c));
}

/* The largest credit that cannot lease a message it will not print. */
static uint32_t
credit_allowed(const struct consume *k)
{
	uint64_t remaining =
		k->cli->count ? k->cli->count - k->printed : UINT64_MAX;
	uint64_t want = remaining < CREDIT_WINDOW ? remaining : CREDIT_WINDOW;
	uint64_t total = want + k->held.n;

	return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

static int
set_credit(struct consume *k, uint32_t credit)
{
	int rc = ringmq_subscription_set_credit(k->c, k->sub, credit);

	if (rc == RINGMQ_OK)
		k->credit = credit;
	note_failure(k, rc, "credit");
	return rc;
}

static const char *
delivery_header_name(const void *src, size_t h)
{
	return ringmq_delivery_header_name(src, h);
}

static const void *
delivery_header_value(const void *src, size_t h, size_t *lenp)
{
	return ringmq_delivery_header_value(src, h, lenp);
}

/* Writes one message to stdout and flushes; -1 when stdout failed. */
static int
print_delivery(const struct consume *k, const ringmq_delivery *d)
{
	size_t len;
	const void *payload = ringmq_delivery_payload(d, &len);

	if (k->cli->is_json) {
		struct cli_msg m = { 0 };

		m.queue = k->cli->args[0];
		m.group = k->cli->group;
		m.has_lease = 1;
		m.lease_id = ringmq_delivery_lease_id(d);
		m.delivery_count = ringmq_delivery_delivery_count(d);
		m.partition = ringmq_delivery_partition(d);
		m.offset = ringmq_delivery_offset(d);
		m.publish_ms = ringmq_delivery_publish_ms(d);
		m.payload = payload;
		m.payload_len = len;
		m.key = ringmq_delivery_key(d, &m.key_len);
		m.nheaders = ringmq_delivery_header_count(d);
		m.header_name = delivery_header_name;
		m.header_value = delivery_header_value;
		m.src = d;
		cli_print_msg_json(stdout, &m);
	} else {
		if (len > 0 && fwrite(payload, 1, len, stdout) != len)
			return -1;
		if (fputc('\n', stdout) == EOF)
			return -1;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return -1;
	return 0;
}

/*
 * Prints one delivery; its lease goes to acks (--ack), to held, or, when
 * it was not printed, to unprinted.
 */
static void
handle_delivery(struct consume *k, ringmq_delivery *d, struct leases *acks)
{
	uint64_t id = ringmq_delivery_lease_id(d);
	int is_wanted = !k->is_io_failed &&
			(k->cli->count == 0 || k->printed < k->cli->count);
	struct leases *dest = &k->unprinted;

	if (is_wanted && print_delivery(k, d) < 0) {
		cli_error(RINGMQ_IO, "write to standard output: %s",
			  strerror(errno));
		k->is_io_failed = 1;
	} else if (is_wanted) {
		k->printed++;
		dest = k->cli->is_ack ? acks : &k->held;
	}
	if (leases_add(dest, id) < 0) {
		/* Its lease expires at the broker instead. */
		cli_error(RINGMQ_INTERNAL, "out of memory");
		k->is_refused = 1;
	}
}

/* Settles the printed messages of one round: acks or credit. */
static void
settle_round(struct consume *k, struct leases *acks)
{
	uint32_t allowed = credit_allowed(k);
	int rc;

	if (!k->cli->is_ack) {
		/* Held messages use slots: hand slots back in steps. */
		if (allowed > k->credit &&
		    (allowed - k->credit >= CREDIT_STEP ||
		     k->credit <= k->held.n))
			(void)set_credit(k, allowed);
		return;
	}
	if (acks->n == 0)
		return;
	/* The acks free slots: first make sure they cannot be refilled
	 * with messages beyond --count. */
	if (allowed < k->credit && set_credit(k, allowed) != RINGMQ_OK)
		return;
	rc = ringmq_ack(k->c, acks->ids, acks->n, NULL);
	note_failure(k, rc, "ack");
	acks->n = 0;
}

/*
 * Waits for deliveries and handles them until done, timed out or
 * signalled. Deliveries already received are printed together (each
 * flushed) and acked in one request.
 */
static void
consume_loop(struct consume *k)
{
	struct leases acks = { 0 };
	int64_t last_ms = now_ms();
	int64_t checked_ms = last_ms;

	while (!got_signal && !k->is_io_failed && k->conn_rc == RINGMQ_OK) {
		int64_t left_ms = SLICE_MS;
		ringmq_delivery *d;
		int rc;

		if (k->cli->count && k->printed >= k->cli->count)
			break;
		if (!k->cli->is_follow) {
			left_ms = k->cli->timeout_ms - (now_ms() - last_ms);
			if (left_ms <= 0)
				break;
		} else if (now_ms() - checked_ms >= FOLLOW_PING_MS) {
			checked_ms = now_ms();
			rc = ringmq_client_ping(k->c);
			if (rc != RINGMQ_OK) {
				note_failure(k, rc, "ping");
				break;
			}
		}
		rc = ringmq_next(k->c, &d,
				 left_ms < SLICE_MS ? (int)left_ms : SLICE_MS);
		if (rc == RINGMQ_TIMEOUT)
			continue;
		if (rc != RINGMQ_OK) {
			k->is_ended = rc == RINGMQ_GROUP_NOT_FOUND ||
				      rc == RINGMQ_QUEUE_NOT_FOUND;
			note_failure(k, rc, "consume");
			break;
		}
		last_ms = checked_ms = now_ms();
		for (int i = 0; d != NULL; i++) {
			handle_delivery(k, d, &acks);
			ringmq_delivery_free(d);
			d = NULL;
			if (i + 1 < CREDIT_WINDOW &&
			    ringmq_next(k->c, &d, 0) != RINGMQ_OK)
				d = NULL;
		}
		settle_round(k, &acks);
		/* An end the drain above took is still in the status. */
		rc = ringmq_subscription_status(k->c, k->sub);
		if (rc != RINGMQ_OK) {
			k->is_ended = 1;
			note_failure(k, rc, "consume");
			break;
		}
	}
	free(acks.ids);
}

/* Settles a list of leases with release or nack. */
static void
settle(struct consume *k, const struct leases *l, int is_nack)
{
	int rc;

	if (l->n == 0 || k->conn_rc != RINGMQ_OK)
		return;
	if (is_nack)
		rc = ringmq_nack(k->c, l->ids, l->n, k->cli->nack_delay_ms,
				 NULL);
	else
		rc = ringmq_release(k->c, l->ids, l->n, NULL);
	note_failure(k, rc, is_nack ? "nack" : "release");
}

/* Stops deliveries and settles what is left. */
static void
finish(struct consume *k)
{
	ringmq_delivery *d;

	/* An ended subscription's leases went with its group. */
	if (k->conn_rc != RINGMQ_OK || k->is_ended)
		return;
	if (k->credit != 0 && set_credit(k, 0) != RINGMQ_OK)
		return;
	/* Credit 0 is confirmed: what was sent before it is here now. */
	while (ringmq_next(k->c, &d, 0) == RINGMQ_OK) {
		if (leases_add(&k->unprinted, ringmq_delivery_lease_id(d)) < 0)
			cli_error(RINGMQ_INTERNAL, "out of memory");
		ringmq_delivery_free(d);
	}
	settle(k, &k->unprinted, 0);
	settle(k, &k->held, k->cli->is_nack);
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/* No SA_RESTART: waits return early and the loop sees the flag. */
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	return 0;
}

int
cmd_consume(const struct cli *cli)
{
	struct consume k = { 0 };
	int rc;
	int code;

	k.cli = cli;
	if (install_signals() < 0) {
		cli_error(RINGMQ_INTERNAL, "signal handlers: %s",
			  strerror(errno));
		return EXIT_REFUSED;
	}
	rc = cli_connect(cli, &k.c);
	if (rc != RINGMQ_OK)
		return cli_exit_code(rc);
	k.credit = credit_allowed(&k);
	rc = ringmq_subscribe(k.c, &k.sub, cli->args[0], cli->group, k.credit,
			      RINGMQ_START_EARLIEST);
	if (rc != RINGMQ_OK) {
		cli_error(rc, "subscribe to %s as %s: %s", cli->args[0],
			  cli->group, ringmq_client_errmsg(k.c));
		ringmq_client_free(k.c);
		return cli_exit_code(rc);
	}
	consume_loop(&k);
	finish(&k);
	ringmq_client_free(k.c);
	free(k.held.ids);
	free(k.unprinted.ids);

	if (got_signal)
		return 128 + got_signal;
	if (k.conn_rc != RINGMQ_OK)
		code = EXIT_UNREACHABLE;
	else if (k.is_refused || k.is_io_failed)
		code = EXIT_REFUSED;
	else
		code = EXIT_OK;
	return code;
}
