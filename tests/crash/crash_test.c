/*
 * Crash test: producers publish with confirms and consumers ack under load
 * while the broker is killed with SIGKILL at random moments and restarted
 * on the same data directory; a checker then proves, from what the clients
 * saw (docs/guarantees.md says which promise each rule stands for):
 *
 *  lost       every confirmed publish was delivered at least once to every
 *             group (sync=interval: counted, and each loss must fall
 *             within the sync interval before a kill);
 *  acked      no message is delivered again to a group after that group's
 *             ack of it was confirmed;
 *  phantom    nothing is delivered that was never published, and one
 *             (group, partition, offset) always carries the same message;
 *  offsets    a confirmed message is delivered at the (partition, offset)
 *             its confirm gave, and no other message ever is
 *             (sync=interval: reuse counted, not failed);
 *  order      per group and key, within one broker run, first deliveries
 *             come in publish order (redeliveries excepted).
 *
 * Then it checks itself: each rule is broken once in a copy of the records
 * and must be noticed.
 *
 * With --power-cut every kill is a power cut as well: the broker runs with
 * powercut_shim preloaded (powercut.h), and before each restart its data
 * file is replaced by one that a power cut at the moment of the kill could
 * have left: every write since the last sync dropped, kept, or kept page
 * by page at random (a kill chooses one of the three). sync=never promises
 * nothing across a power cut and is refused there.
 *
 * With --auth the broker runs with --auth on, its admin made from a
 * bootstrap file at the first start, and every client authenticates:
 * users survive the kills like the queues, and every reconnect
 * authenticates again.
 *
 * --journal on (the default, as the broker's) has the broker confirm from
 * its journal, LMDB applied behind it: kills land between a journal sync
 * and the LMDB commit that applies it, and each restart replays the
 * journal. --journal off confirms after LMDB's own synced commit.
 *
 * Usage: crash_test [--sync always|interval|never] [--sync-interval-ms N]
 *                   [--kills N] [--long] [--power-cut] [--auth]
 *                   [--journal on|off]
 * RINGMQ_CRASH_SEED replays a run's random choices (kill moments, batch
 * sizes, consumer drops); the seed is printed. RINGMQ_CRASH_TRACE logs
 * every send with its result.
 *
 * How a delivery is placed in time: a lease id is the broker's boot epoch
 * (high bits) then a counter of that run, so lease ids order deliveries as
 * the broker made them, across restarts too, whatever order the consumer
 * threads happened to read them in.
 *
 * Known limit: a publish that times out (request timeout, 5 s) is resent on
 * a new connection; if the broker processed the old request after newer
 * ones, the order rule would report it. Kills drop connections at once, so
 * this needs a broker stalled for seconds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ringmq.h>

#include "harness.h"
#include "powercut.h"
#include "splitmix64.h"

#define QUEUE		      "crash"
#define PARTITIONS	      4
#define PRODUCERS	      4
#define GROUPS		      2
#define CONSUMERS_PER_GROUP   3
#define CONSUMERS	      (GROUPS * CONSUMERS_PER_GROUP)
#define CREDIT		      32      /* leases per consumer */
#define MAX_BATCH	      8	      /* messages per publish request */
#define RESEND_TRIES	      3	      /* sends of an in-doubt message */
#define MAX_SEQ		      4000000 /* bound of each producer's loop */
#define BACKLOG_MAX	      2000    /* confirmed but not yet acked */
#define PRODUCER_RATE	      2500    /* most messages per second each */
#define CONSUMER_CRASH_ONE_IN 200     /* batches a consumer drops unacked */
#define REQUEST_TIMEOUT_MS    5000
#define CONNECT_TIMEOUT_MS    1000
#define RECONNECT_MS	      15000 /* one reconnect's deadline */
#define KILL_MIN_MS	      50
#define KILL_MAX_MS	      400
#define SHORT_KILLS	      8
#define LONG_KILLS	      100
#define MAX_KILLS	      10000
#define QUIET_MS	      1000  /* nothing more for this long: drained */
#define DRAIN_MS	      60000 /* longest drain after the last restart */
#define INTERVAL_SLACK_MS     1000  /* commit and scheduling time, interval */
#define LEASE_EPOCH_SHIFT     40    /* lease id = epoch << 40 | counter */
#define REPORT_MAX	      10    /* violations printed per rule */
#define POWERCUT_DELAY_US     2000  /* before each sync: see powercut.h */
#define POWERCUT_DELAY_IVL_US 20000 /* the same, sync=interval */
#define UNSYNCED_WAIT_MS      500   /* longest wait for a commit's writes */

static const char *const group_names[GROUPS] = { "g1", "g2" };

/* Per sequence number of a producer. */
enum {
	SEQ_SENT = 1,	   /* sent at least once */
	SEQ_CONFIRMED = 2, /* confirmed at least once */
};

/* What a producer knows of one of its messages. */
struct seqinfo {
	long long confirm_ms; /* when first confirmed */
	uint64_t offset;      /* where the first confirm placed it */
	uint32_t partition;
	uint8_t state; /* SEQ_* */
};

struct producer {
	int idx;
	uint64_t rng;
	uint32_t next_seq;    /* seqs [0, next_seq) were sent */
	struct seqinfo *seqs; /* per seq */
	uint32_t cap;
	uint64_t sends;	   /* messages sent, resends included */
	uint64_t resent;   /* sends of in-doubt messages */
	uint64_t in_doubt; /* given up while still in doubt */
};

struct consumer {
	int idx;
	int group;
	uint64_t rng;
	uint64_t ack_refused; /* ack answered NOT_LEASED or LEASE_EXPIRED */
	uint64_t crashes;     /* batches dropped unacked with the client */
};

/* One delivery, as a consumer saw it. */
struct drec {
	uint64_t lease;
	uint64_t offset;
	uint32_t seq;
	uint32_t partition;
	uint32_t count; /* delivery_count */
	uint8_t group;
	uint8_t producer;
	uint8_t is_bad; /* payload or key not of this test */
};

/* One confirmed ack. */
struct arec {
	uint64_t lease;
	uint64_t offset;
	long long confirm_ms; /* when its confirm came back */
	uint32_t partition;
	uint8_t group;
};

struct config {
	const char *sync;
	const char *interval_arg;
	unsigned interval_ms;
	int kills;
	int is_power_cut;
	int is_auth;
	int is_journal;
	unsigned long long seed;
};

#define AUTH_PASSWORD "crash-admin-password"

static struct world {
	struct config cfg;
	struct harness_broker broker;

	/* The broker's current address; gen counts restarts. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char addr[64];
	unsigned gen;
	int is_up;

	atomic_int stop_producers;
	atomic_int stop_consumers;
	atomic_int is_failed; /* a thread met an unexpected error */
	atomic_ullong confirmed_total;
	atomic_ullong acked_total[GROUPS];
	atomic_llong last_delivery_ms;

	/* What consumers saw. */
	pthread_mutex_t rec_mu;
	struct drec *dels;
	size_t n_dels, cap_dels;
	struct arec *acks;
	size_t n_acks, cap_acks;

	long long kill_ms[MAX_KILLS + 1]; /* when each SIGKILL was sent */
	int n_kills;
	unsigned rate;	/* most messages per second of each producer */
	int is_tracing; /* RINGMQ_CRASH_TRACE set: log every send */

	struct producer prods[PRODUCERS];
	struct consumer cons[CONSUMERS];

	/* --power-cut: the shim's state, the data file, and what the cuts
	 * did (killer and main thread take turns, never at once). */
	char cut_dir[256];
	char data_file[300];
	char journal_dir[300];
	uint64_t cut_rng;
	int cuts[3];	    /* by enum powercut_flavour */
	int cuts_mid_write; /* cuts with written pages not yet synced */
	struct powercut_stats cut_total;
} W;

static unsigned
rand_below(uint64_t *rng, unsigned n)
{
	return (unsigned)(splitmix64(rng) % n);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
is_transient(int rc)
{
	return rc == RINGMQ_CONNECTION_LOST || rc == RINGMQ_TIMEOUT ||
	       rc == RINGMQ_UNREACHABLE || rc == RINGMQ_CLOSED ||
	       rc == RINGMQ_SHUTTING_DOWN;
}

static void
fail_thread(const char *who, const char *what, int rc)
{
	fprintf(stderr, "crash: %s: %s: %s\n", who, what, ringmq_code_name(rc));
	atomic_store(&W.is_failed, 1);
}

/* ------------------------------------------------------------- broker */

/* Waits on W.cv (W.mu held) until gen differs from gen or ms pass. */
static void
wait_gen_change(unsigned gen, int ms)
{
	long long deadline = harness_now_ms() + ms;
	struct timespec ts;

	while (W.gen == gen && harness_now_ms() < deadline) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&W.cv, &W.mu, &ts);
	}
}

/* After a kill: replaces the data file with one a power cut could have
 * left. @return 0, or -1. */
static int
power_cut(void)
{
	enum powercut_flavour f =
		(enum powercut_flavour)rand_below(&W.cut_rng, 3);
	struct powercut_stats st;

	if (powercut_image(W.cut_dir, W.data_file, f, &W.cut_rng, &st) < 0)
		return -1;
	/* The same cut for the journal's segments. */
	if (W.cfg.is_journal && powercut_image_dir(W.cut_dir, W.journal_dir, f,
						   &W.cut_rng, &st) < 0)
		return -1;
	W.cuts[f]++;
	W.cuts_mid_write += st.pages_kept + st.pages_dropped > 0;
	W.cut_total.pages_kept += st.pages_kept;
	W.cut_total.pages_dropped += st.pages_dropped;
	W.cut_total.durable_writes += st.durable_writes;
	W.cut_total.is_torn += st.is_torn;
	return 0;
}

/* Sets up --power-cut before the first start: a data directory of our own
 * (the shim must know its file before the broker opens it), the shim's
 * state directory, and the shim in the broker's environment.
 * @return 0, or -1. */
static int
power_cut_setup(uint64_t seed)
{
	const char *shim = getenv("RINGMQ_POWERCUT_SHIM");
	char delay[16];

	if (shim == NULL || *shim == '\0') {
		fprintf(stderr, "crash: --power-cut needs RINGMQ_POWERCUT_SHIM "
				"(the path of powercut_shim.so)\n");
		return -1;
	}
	snprintf(W.broker.dir, sizeof(W.broker.dir), "/tmp/ringmq-test-XXXXXX");
	snprintf(W.cut_dir, sizeof(W.cut_dir), "/tmp/ringmq-test-XXXXXX");
	if (mkdtemp(W.broker.dir) == NULL || mkdtemp(W.cut_dir) == NULL) {
		perror("crash: mkdtemp");
		return -1;
	}
	snprintf(W.data_file, sizeof(W.data_file), "%s/data.mdb", W.broker.dir);
	snprintf(W.journal_dir, sizeof(W.journal_dir), "%s/journal",
		 W.broker.dir);
	W.cut_rng = seed;
	/* sync=interval commits ten times a second: only a longer wait
	 * makes kills land inside a commit often. */
	snprintf(delay, sizeof(delay), "%d",
		 strcmp(W.cfg.sync, "interval") == 0 ? POWERCUT_DELAY_IVL_US
						     : POWERCUT_DELAY_US);
	if (setenv("LD_PRELOAD", shim, 1) != 0 ||
	    setenv("RINGMQ_POWERCUT_DIR", W.cut_dir, 1) != 0 ||
	    setenv("RINGMQ_POWERCUT_FILE", W.data_file, 1) != 0 ||
	    (W.cfg.is_journal &&
	     setenv("RINGMQ_POWERCUT_WATCH_DIR", W.journal_dir, 1) != 0) ||
	    setenv("RINGMQ_POWERCUT_DELAY_US", delay, 1) != 0) {
		perror("crash: setenv");
		return -1;
	}
	return 0;
}

/* Says what the power cuts did. A shim that saw no write of the data file
 * (not preloaded, or watching another file) would make every cut a plain
 * kill: that fails. @return 0, or -1. */
static int
power_cut_report(void)
{
	const struct powercut_stats *t = &W.cut_total;

	fprintf(stderr,
		"crash: power cuts: %d dropping every write since the last "
		"sync, %d keeping them, %d keeping pages at random; %d with "
		"written pages waiting for a sync: pages kept %llu, dropped "
		"%llu; durable (O_DSYNC) writes past the last sync %llu; logs "
		"cut inside a record %d\n",
		W.cuts[POWERCUT_KEEP_NONE], W.cuts[POWERCUT_KEEP_ALL],
		W.cuts[POWERCUT_KEEP_SOME], W.cuts_mid_write,
		(unsigned long long)t->pages_kept,
		(unsigned long long)t->pages_dropped,
		(unsigned long long)t->durable_writes, t->is_torn);
	if (t->pages_kept + t->pages_dropped + t->durable_writes == 0) {
		fprintf(stderr, "crash: the power-cut shim recorded no write "
				"of the data file\n");
		return -1;
	}
	return 0;
}

/* The shim's state directory goes whole: one file-INODE.durable and
 * .log per file it watched. */
static void
power_cut_cleanup(void)
{
	if (W.cut_dir[0] != '\0')
		(void)harness_remove_dir(W.cut_dir);
}

/* Kills the broker with SIGKILL (and with --power-cut, rewrites its data
 * file as a power cut could have left it) and starts it again on the same
 * data directory (on a new port). @return 0, or -1 when it did not
 * start. */
static int
kill_and_restart(void)
{
	int rc;

	pthread_mutex_lock(&W.mu);
	W.is_up = 0;
	pthread_mutex_unlock(&W.mu);
	if (W.n_kills < MAX_KILLS + 1)
		W.kill_ms[W.n_kills++] = harness_now_ms();
	(void)harness_kill(&W.broker, SIGKILL);
	rc = W.cfg.is_power_cut ? power_cut() : 0;
	if (rc == 0)
		rc = harness_start(&W.broker, NULL);
	pthread_mutex_lock(&W.mu);
	if (rc == 0) {
		snprintf(W.addr, sizeof(W.addr), "%s", W.broker.addr);
		W.gen++;
		W.is_up = 1;
	}
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
	if (rc != 0)
		fprintf(stderr, "crash: the broker did not restart\n");
	return rc;
}

/* Connects to the broker's current address, retrying across restarts
 * until RECONNECT_MS pass or *stop is set. @return RINGMQ_OK, the last
 * transient code, or a code that retrying cannot cure. */
static int
client_connect(ringmq_client **cp, const char *name, atomic_int *stop)
{
	long long deadline = harness_now_ms() + RECONNECT_MS;
	int rc = RINGMQ_UNREACHABLE;

	*cp = NULL;
	while (harness_now_ms() < deadline && !atomic_load(stop)) {
		ringmq_opts *o = ringmq_opts_new();
		char addr[64], err[256];
		unsigned gen;

		if (o == NULL)
			return RINGMQ_INTERNAL;
		pthread_mutex_lock(&W.mu);
		gen = W.gen;
		if (!W.is_up) {
			wait_gen_change(gen, 50);
			pthread_mutex_unlock(&W.mu);
			ringmq_opts_free(o);
			continue;
		}
		snprintf(addr, sizeof(addr), "%s", W.addr);
		pthread_mutex_unlock(&W.mu);

		rc = ringmq_opts_set(o, "server", addr, err, sizeof(err));
		if (rc == RINGMQ_OK)
			rc = ringmq_opts_set(o, "connect-timeout-ms", "1000",
					     err, sizeof(err));
		if (rc == RINGMQ_OK)
			rc = ringmq_opts_set(o, "request-timeout-ms", "5000",
					     err, sizeof(err));
		if (rc == RINGMQ_OK)
			rc = ringmq_opts_set(o, "client-name", name, err,
					     sizeof(err));
		if (rc == RINGMQ_OK && W.cfg.is_auth)
			rc = ringmq_opts_set(o, "user", "admin", err,
					     sizeof(err));
		if (rc == RINGMQ_OK && W.cfg.is_auth)
			rc = ringmq_opts_set(o, "password", AUTH_PASSWORD, err,
					     sizeof(err));
		if (rc == RINGMQ_OK)
			rc = ringmq_client_connect(cp, o, err, sizeof(err));
		ringmq_opts_free(o);
		if (rc == RINGMQ_OK || !is_transient(rc))
			return rc;
		/* Refused or gone: the broker is being restarted. */
		pthread_mutex_lock(&W.mu);
		wait_gen_change(gen, 20);
		pthread_mutex_unlock(&W.mu);
	}
	return rc;
}

/* ----------------------------------------------------------- producers */

static int
producer_grow(struct producer *p, uint32_t need)
{
	uint32_t cap = p->cap ? p->cap : 4096;
	struct seqinfo *si;

	if (need <= p->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	si = realloc(p->seqs, cap * sizeof(*si));
	if (si == NULL)
		return -1;
	p->seqs = si;
	memset(p->seqs + p->cap, 0, (cap - p->cap) * sizeof(*si));
	p->cap = cap;
	return 0;
}

/* Sends seqs[0..n) of producer p in one batch. Confirmed ones are marked;
 * in-doubt ones are left in doubt[] (returned count in *n_doubt).
 * @return RINGMQ_OK, a transient code (drop the client), or another code
 *         (a refusal this test never expects). */
static int
producer_send(struct producer *p, ringmq_client *c, const uint32_t *seqs,
	      size_t n, uint32_t *doubt, size_t *n_doubt)
{
	ringmq_message *msgs[MAX_BATCH * 2];
	ringmq_publish_results *res = NULL;
	char key[16];
	int klen = snprintf(key, sizeof(key), "p%d", p->idx);
	int rc, worst = RINGMQ_OK;
	long long now;

	*n_doubt = 0;
	for (size_t i = 0; i < n; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "p%d:%" PRIu32, p->idx,
				   seqs[i]);

		msgs[i] = ringmq_message_new(buf, (size_t)len);
		if (msgs[i] == NULL ||
		    ringmq_message_set_key(msgs[i], key, (size_t)klen) !=
			    RINGMQ_OK) {
			for (size_t j = 0; j <= i; j++)
				ringmq_message_free(msgs[j]);
			return RINGMQ_INTERNAL;
		}
		p->seqs[seqs[i]].state |= SEQ_SENT;
	}
	p->sends += n;
	rc = ringmq_publish_batch(c, QUEUE, (const ringmq_message *const *)msgs,
				  n, &res);
	now = harness_now_ms();
	if (W.is_tracing)
		for (size_t i = 0; i < n; i++)
			fprintf(stderr,
				"crash: trace: %lld send p%d:%" PRIu32
				" to %s: %s partition %" PRIu32
				" offset %" PRIu64 "\n",
				now, p->idx, seqs[i], ringmq_client_server(c),
				ringmq_code_name(
					res ? ringmq_publish_results_code(res,
									  i)
					    : rc),
				ringmq_publish_results_partition(res, i),
				ringmq_publish_results_offset(res, i));
	for (size_t i = 0; i < n; i++) {
		int code = res ? ringmq_publish_results_code(res, i) : rc;

		if (code == RINGMQ_OK) {
			if (!(p->seqs[seqs[i]].state & SEQ_CONFIRMED)) {
				p->seqs[seqs[i]].state |= SEQ_CONFIRMED;
				p->seqs[seqs[i]].confirm_ms = now;
				p->seqs[seqs[i]].partition =
					ringmq_publish_results_partition(res,
									 i);
				p->seqs[seqs[i]].offset =
					ringmq_publish_results_offset(res, i);
				atomic_fetch_add(&W.confirmed_total, 1);
			}
		} else if (is_transient(code)) {
			doubt[(*n_doubt)++] = seqs[i];
			if (worst == RINGMQ_OK)
				worst = code;
		} else {
			worst = code;
		}
		ringmq_message_free(msgs[i]);
	}
	ringmq_publish_results_free(res);
	if (worst == RINGMQ_OK && rc != RINGMQ_OK)
		worst = rc;
	return worst;
}

/* Waits while the producer is over its rate or consumers are far behind,
 * so that the records stay small and the final drain short. */
static void
producer_pace(const struct producer *p, long long start_ms)
{
	for (int i = 0; i < 500 && !atomic_load(&W.stop_producers); i++) {
		long long elapsed = harness_now_ms() - start_ms;
		unsigned long long c = atomic_load(&W.confirmed_total);
		unsigned long long low = c;

		if (p->sends > (uint64_t)(elapsed + 1) * W.rate / 1000) {
			sleep_ms(1);
			continue;
		}
		for (int g = 0; g < GROUPS; g++) {
			unsigned long long a = atomic_load(&W.acked_total[g]);

			if (a < low)
				low = a;
		}
		if (c - low < BACKLOG_MAX)
			return;
		sleep_ms(2);
	}
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	ringmq_client *c = NULL;
	uint32_t doubt[MAX_BATCH], seqs[MAX_BATCH];
	unsigned tries[MAX_BATCH];
	size_t n_doubt = 0;
	long long start_ms = harness_now_ms();
	char name[32];

	snprintf(name, sizeof(name), "crash-producer-%d", p->idx);
	while (!atomic_load(&W.stop_producers) && p->next_seq < MAX_SEQ) {
		uint32_t left[MAX_BATCH];
		size_t n, n_left;
		int rc;

		if (c == NULL) {
			rc = client_connect(&c, name, &W.stop_producers);
			if (rc != RINGMQ_OK) {
				if (!is_transient(rc)) {
					fail_thread(name, "connect", rc);
					break;
				}
				continue;
			}
		}
		if (n_doubt > 0) {
			/* Resend what may or may not be stored: without
			 * producer ids across clients, it may be stored
			 * twice; never lost. */
			p->resent += n_doubt;
			rc = producer_send(p, c, doubt, n_doubt, left, &n_left);
			size_t keep = 0;
			for (size_t i = 0; i < n_doubt; i++) {
				size_t j;

				for (j = 0; j < n_left; j++)
					if (left[j] == doubt[i])
						break;
				if (j == n_left)
					continue; /* confirmed */
				if (++tries[i] >= RESEND_TRIES) {
					p->in_doubt++;
					continue;
				}
				doubt[keep] = doubt[i];
				tries[keep++] = tries[i];
			}
			n_doubt = keep;
		} else {
			producer_pace(p, start_ms);
			n = 1 + rand_below(&p->rng, MAX_BATCH);
			if (producer_grow(p, p->next_seq + (uint32_t)n) < 0) {
				fail_thread(name, "grow", RINGMQ_INTERNAL);
				break;
			}
			for (size_t i = 0; i < n; i++)
				seqs[i] = p->next_seq++;
			rc = producer_send(p, c, seqs, n, doubt, &n_doubt);
			for (size_t i = 0; i < n_doubt; i++)
				tries[i] = 1;
		}
		if (rc != RINGMQ_OK && !is_transient(rc)) {
			fail_thread(name, "publish refused", rc);
			break;
		}
		if (rc != RINGMQ_OK) {
			ringmq_client_free(c);
			c = NULL;
		}
	}
	p->in_doubt += n_doubt;
	ringmq_client_free(c);
	return NULL;
}

/* ----------------------------------------------------------- consumers */

/* Parses "p<N>:<seq>" with key "p<N>". @return 0, or -1 if not ours. */
static int
parse_delivery(const ringmq_delivery *d, uint8_t *producer, uint32_t *seq)
{
	size_t len, klen;
	const char *pl = ringmq_delivery_payload(d, &len);
	const char *key = ringmq_delivery_key(d, &klen);
	char buf[32], kbuf[16], *end;
	unsigned long pn, sq;

	if (len == 0 || len >= sizeof(buf) || key == NULL ||
	    klen >= sizeof(kbuf))
		return -1;
	memcpy(buf, pl, len);
	buf[len] = '\0';
	if (buf[0] != 'p')
		return -1;
	errno = 0;
	pn = strtoul(buf + 1, &end, 10);
	if (end == buf + 1 || *end != ':' || pn >= PRODUCERS)
		return -1;
	sq = strtoul(end + 1, &end, 10);
	if (*end != '\0' || errno != 0 || sq >= MAX_SEQ)
		return -1;
	if (snprintf(kbuf, sizeof(kbuf), "p%lu", pn) != (int)klen ||
	    memcmp(kbuf, key, klen) != 0)
		return -1;
	*producer = (uint8_t)pn;
	*seq = (uint32_t)sq;
	return 0;
}

static void
record_delivery(const struct consumer *cs, const ringmq_delivery *d)
{
	struct drec r;

	memset(&r, 0, sizeof(r));
	r.lease = ringmq_delivery_lease_id(d);
	r.offset = ringmq_delivery_offset(d);
	r.partition = ringmq_delivery_partition(d);
	r.count = ringmq_delivery_delivery_count(d);
	r.group = (uint8_t)cs->group;
	if (parse_delivery(d, &r.producer, &r.seq) < 0) {
		size_t len;
		const char *pl = ringmq_delivery_payload(d, &len);

		r.is_bad = 1;
		fprintf(stderr,
			"crash: %s got a message never published: "
			"'%.*s' partition %" PRIu32 " offset %" PRIu64 "\n",
			group_names[cs->group], (int)(len > 40 ? 40 : len), pl,
			r.partition, r.offset);
	}
	pthread_mutex_lock(&W.rec_mu);
	if (W.n_dels == W.cap_dels) {
		size_t cap = W.cap_dels ? W.cap_dels * 2 : 65536;
		struct drec *n = realloc(W.dels, cap * sizeof(*n));

		if (n == NULL) {
			pthread_mutex_unlock(&W.rec_mu);
			fail_thread("consumer", "record", RINGMQ_INTERNAL);
			return;
		}
		W.dels = n;
		W.cap_dels = cap;
	}
	W.dels[W.n_dels++] = r;
	pthread_mutex_unlock(&W.rec_mu);
	atomic_store(&W.last_delivery_ms, harness_now_ms());
}

static void
record_ack(int group, uint64_t lease, uint32_t partition, uint64_t offset)
{
	pthread_mutex_lock(&W.rec_mu);
	if (W.n_acks == W.cap_acks) {
		size_t cap = W.cap_acks ? W.cap_acks * 2 : 65536;
		struct arec *n = realloc(W.acks, cap * sizeof(*n));

		if (n == NULL) {
			pthread_mutex_unlock(&W.rec_mu);
			fail_thread("consumer", "record", RINGMQ_INTERNAL);
			return;
		}
		W.acks = n;
		W.cap_acks = cap;
	}
	W.acks[W.n_acks++] = (struct arec){ .lease = lease,
					    .offset = offset,
					    .confirm_ms = harness_now_ms(),
					    .partition = partition,
					    .group = (uint8_t)group };
	pthread_mutex_unlock(&W.rec_mu);
	atomic_fetch_add(&W.acked_total[group], 1);
}

/* Records the deliveries still queued in a client whose connection is
 * gone; they were delivered, but cannot be acked any more. */
static void
consumer_drain_queued(struct consumer *cs, ringmq_client *c)
{
	ringmq_delivery *d = NULL;

	for (int i = 0; i < CREDIT * 4 && ringmq_next(c, &d, 0) == RINGMQ_OK;
	     i++) {
		record_delivery(cs, d);
		ringmq_delivery_free(d);
		d = NULL;
	}
}

static void *
consumer_main(void *arg)
{
	struct consumer *cs = arg;
	const char *group = group_names[cs->group];
	ringmq_client *c = NULL;
	char name[32];

	snprintf(name, sizeof(name), "crash-%s-%d", group, cs->idx);
	while (!atomic_load(&W.stop_consumers)) {
		uint64_t ids[CREDIT], offs[CREDIT];
		uint32_t parts[CREDIT];
		int codes[CREDIT];
		ringmq_delivery *d = NULL;
		size_t n = 0;
		uint32_t sub;
		int rc;

		if (c == NULL) {
			rc = client_connect(&c, name, &W.stop_consumers);
			if (rc == RINGMQ_OK)
				rc = ringmq_subscribe(c, &sub, QUEUE, group,
						      CREDIT,
						      RINGMQ_START_EARLIEST);
			if (rc != RINGMQ_OK) {
				ringmq_client_free(c);
				c = NULL;
				if (!is_transient(rc)) {
					fail_thread(name, "subscribe", rc);
					break;
				}
				continue;
			}
		}
		rc = ringmq_next(c, &d, 100);
		if (rc == RINGMQ_TIMEOUT)
			continue;
		if (rc != RINGMQ_OK) {
			if (!is_transient(rc)) {
				fail_thread(name, "next", rc);
				break;
			}
			ringmq_client_free(c);
			c = NULL;
			continue;
		}
		do {
			record_delivery(cs, d);
			ids[n] = ringmq_delivery_lease_id(d);
			parts[n] = ringmq_delivery_partition(d);
			offs[n++] = ringmq_delivery_offset(d);
			ringmq_delivery_free(d);
			d = NULL;
		} while (n < CREDIT && ringmq_next(c, &d, 0) == RINGMQ_OK);
		if (rand_below(&cs->rng, CONSUMER_CRASH_ONE_IN) == 0) {
			/* A worker dies mid-job: its leases fail and the
			 * messages come again with a higher count. */
			cs->crashes++;
			ringmq_client_free(c);
			c = NULL;
			continue;
		}
		rc = ringmq_ack(c, ids, n, codes);
		for (size_t i = 0; i < n; i++) {
			if (codes[i] == RINGMQ_OK)
				record_ack(cs->group, ids[i], parts[i],
					   offs[i]);
			else if (codes[i] == RINGMQ_NOT_LEASED ||
				 codes[i] == RINGMQ_LEASE_EXPIRED)
				cs->ack_refused++;
		}
		if (rc != RINGMQ_OK && is_transient(rc)) {
			consumer_drain_queued(cs, c);
			ringmq_client_free(c);
			c = NULL;
		} else if (rc != RINGMQ_OK && rc != RINGMQ_NOT_LEASED &&
			   rc != RINGMQ_LEASE_EXPIRED) {
			fail_thread(name, "ack", rc);
			break;
		}
	}
	ringmq_client_free(c);
	return NULL;
}

/* -------------------------------------------------------------- killer */

/* With --power-cut, half the kills wait (a bounded time) until the shim's
 * log holds written pages beyond the last durable meta page: a commit
 * between its writes and its sync, the moment a power cut can tear. */
static void
wait_unsynced_writes(void)
{
	const off_t busy = 2 * (off_t)(sizeof(struct powercut_record) +
				       POWERCUT_PAGE_BYTES);
	long long deadline = harness_now_ms() + UNSYNCED_WAIT_MS;

	while (harness_now_ms() < deadline) {
		/* The data file's log, or with the journal a segment's. */
		DIR *d = opendir(W.cut_dir);
		struct dirent *e;
		int is_busy = 0;

		while (d != NULL && !is_busy && (e = readdir(d)) != NULL) {
			size_t n = strlen(e->d_name);
			char path[600];
			struct stat st;

			if (strcmp(e->d_name, "log") != 0 &&
			    (n < 4 || strcmp(e->d_name + n - 4, ".log") != 0))
				continue;
			snprintf(path, sizeof(path), "%s/%s", W.cut_dir,
				 e->d_name);
			is_busy = stat(path, &st) == 0 && st.st_size >= busy;
		}
		if (d != NULL)
			closedir(d);
		if (is_busy)
			return;
		sleep_ms(1);
	}
}

static void *
killer_main(void *arg)
{
	uint64_t *rng = arg;

	for (int k = 0; k < W.cfg.kills && !atomic_load(&W.is_failed); k++) {
		sleep_ms(KILL_MIN_MS +
			 rand_below(rng, KILL_MAX_MS - KILL_MIN_MS + 1));
		if (W.cfg.is_power_cut && rand_below(rng, 2) == 0)
			wait_unsynced_writes();
		if (kill_and_restart() < 0) {
			atomic_store(&W.is_failed, 1);
			break;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------- checker */

static int
cmp_group_key_lease(const void *a, const void *b)
{
	const struct drec *x = a, *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->producer != y->producer)
		return x->producer < y->producer ? -1 : 1;
	if (x->lease != y->lease)
		return x->lease < y->lease ? -1 : 1;
	return 0;
}

static int
cmp_drec_position(const void *a, const void *b)
{
	const struct drec *x = a, *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->lease != y->lease)
		return x->lease < y->lease ? -1 : 1;
	return 0;
}

static int
cmp_arec_position(const void *a, const void *b)
{
	const struct arec *x = a, *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->lease != y->lease)
		return x->lease < y->lease ? -1 : 1;
	return 0;
}

/* Within a group, a position always holds the message. */
static int
cmp_drec_message(const void *a, const void *b)
{
	const struct drec *x = a, *y = b;

	if (x->producer != y->producer)
		return x->producer < y->producer ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* got[g][p][s]: GOT_ANY when group g got p:s, GOT_AT when at the position
 * its confirm gave. */
enum { GOT_ANY = 1, GOT_AT = 2 };

/* Set while the checker checks itself: no reports. */
static int is_quiet;

struct verdict {
	uint64_t published, confirmed, sends, resent, in_doubt;
	uint64_t delivered, duplicates, redelivered, stored_twice, acked;
	uint64_t ack_refused, consumer_crashes;
	uint64_t lost, lost_per_group[GROUPS], lost_outside_window;
	long long lost_window_max_ms;
	uint64_t phantoms, ack_violations, order_violations;
	uint64_t offset_reused, misplaced;
	uint64_t acks_lost; /* undone by a power cut, within the window */
};

static void
check_phantoms(struct verdict *v, struct drec *dels, size_t n)
{
	int key_partition[PRODUCERS];
	size_t i = 0;

	for (int p = 0; p < PRODUCERS; p++)
		key_partition[p] = -1;
	for (size_t k = 0; k < n; k++) {
		const struct drec *r = &dels[k];

		if (r->is_bad) {
			v->phantoms++;
			continue;
		}
		if (r->seq >= W.prods[r->producer].next_seq ||
		    !(W.prods[r->producer].seqs[r->seq].state & SEQ_SENT)) {
			if (v->phantoms++ < REPORT_MAX && !is_quiet)
				fprintf(stderr,
					"crash: phantom: p%u:%" PRIu32
					" delivered to %s, never sent\n",
					r->producer, r->seq,
					group_names[r->group]);
			continue;
		}
		if (key_partition[r->producer] < 0)
			key_partition[r->producer] = (int)r->partition;
		if (key_partition[r->producer] != (int)r->partition &&
		    v->phantoms++ < REPORT_MAX && !is_quiet)
			fprintf(stderr,
				"crash: key p%u seen on partitions %d and "
				"%" PRIu32 "\n",
				r->producer, key_partition[r->producer],
				r->partition);
	}
	/* One (group, partition, offset): one message, whatever the run. */
	if (n > 0)
		qsort(dels, n, sizeof(*dels), cmp_drec_position);
	while (i < n) {
		size_t j = i + 1;

		while (j < n && dels[j].group == dels[i].group &&
		       dels[j].partition == dels[i].partition &&
		       dels[j].offset == dels[i].offset) {
			if ((dels[j].producer != dels[i].producer ||
			     dels[j].seq != dels[i].seq) &&
			    v->phantoms++ < REPORT_MAX && !is_quiet)
				fprintf(stderr,
					"crash: partition %" PRIu32
					" offset %" PRIu64 " held p%u:%" PRIu32
					" then p%u:%" PRIu32 "\n",
					dels[i].partition, dels[i].offset,
					dels[i].producer, dels[i].seq,
					dels[j].producer, dels[j].seq);
			j++;
		}
		i = j;
	}
}

/* Whether ack a is of a message placed before delivery r's. */
static int
ack_before(const struct arec *a, const struct drec *r)
{
	if (a->group != r->group)
		return a->group < r->group;
	if (a->partition != r->partition)
		return a->partition < r->partition;
	return a->offset < r->offset;
}

static int next_kill(long long confirm_ms);

/* Set by the checker's self-test: every ack counts, none excused. */
static int is_ack_excuse_off;

/* Whether a power cut may undo ack a, its message delivered again with
 * lease: with the journal and sync=interval, acks are confirmed once
 * written, synced on the interval (docs/guarantees.md), so a cut may take
 * those confirmed during the window before it; the redelivery must come
 * from a later run. */
static int
is_ack_lost_to_cut(const struct arec *a, uint64_t lease)
{
	long long window = (long long)W.cfg.interval_ms + INTERVAL_SLACK_MS;
	int k;

	if (is_ack_excuse_off || !W.cfg.is_power_cut || !W.cfg.is_journal ||
	    strcmp(W.cfg.sync, "interval") != 0)
		return 0;
	k = next_kill(a->confirm_ms);
	return k >= 0 && W.kill_ms[k] - a->confirm_ms <= window &&
	       lease >> LEASE_EPOCH_SHIFT > a->lease >> LEASE_EPOCH_SHIFT;
}

/* dels sorted by position (check_phantoms). A delivery whose lease is
 * newer than a confirmed ack of the same message in the same group
 * breaks the ack rule, unless a power cut may undo that ack. */
static void
check_acks(struct verdict *v, const struct drec *dels, size_t n,
	   struct arec *acks, size_t n_acks)
{
	size_t a = 0;

	if (n_acks > 0) /* none: acks may be NULL, which qsort may not get */
		qsort(acks, n_acks, sizeof(*acks), cmp_arec_position);
	for (size_t k = 0; k < n; k++) {
		const struct drec *r = &dels[k];

		while (a < n_acks && ack_before(&acks[a], r))
			a++;
		if (a == n_acks || acks[a].group != r->group ||
		    acks[a].partition != r->partition ||
		    acks[a].offset != r->offset)
			continue;
		/* acks[a] is the earliest confirmed ack of this message. */
		if (r->lease <= acks[a].lease)
			continue;
		if (is_ack_lost_to_cut(&acks[a], r->lease)) {
			v->acks_lost++;
			continue;
		}
		if (v->ack_violations++ < REPORT_MAX && !is_quiet)
			fprintf(stderr,
				"crash: %s: p%u:%" PRIu32 " (partition %" PRIu32
				" offset %" PRIu64 ") delivered with lease "
				"%" PRIu64 " (epoch %" PRIu64 ", count %" PRIu32
				") after its ack of lease %" PRIu64
				" (epoch %" PRIu64 ") was confirmed\n",
				group_names[r->group], r->producer, r->seq,
				r->partition, r->offset, r->lease,
				r->lease >> LEASE_EPOCH_SHIFT, r->count,
				acks[a].lease,
				acks[a].lease >> LEASE_EPOCH_SHIFT);
	}
}

/* Counts duplicates and messages stored twice (a resend of one that was
 * stored after all). Sorts dels by message. */
static void
count_copies(struct verdict *v, struct drec *dels, size_t n)
{
	size_t i = 0;

	if (n > 0)
		qsort(dels, n, sizeof(*dels), cmp_drec_message);
	while (i < n) {
		size_t j = i + 1, positions = 1;

		while (j < n && dels[j].producer == dels[i].producer &&
		       dels[j].seq == dels[i].seq) {
			if (dels[j].partition != dels[j - 1].partition ||
			    dels[j].offset != dels[j - 1].offset)
				positions++;
			j++;
		}
		if (!dels[i].is_bad && positions > 1)
			v->stored_twice += positions - 1;
		i = j;
	}
}

/* Per group and key, in lease order, within each broker run: first
 * deliveries come in increasing seq. A delivery is a redelivery when its
 * count is over 1 or the group saw the message before. Also marks what
 * each group got, for the loss check. */
static void
check_order(struct verdict *v, struct drec *dels, size_t n,
	    uint8_t *got[GROUPS][PRODUCERS])
{
	size_t i = 0;

	if (n > 0)
		qsort(dels, n, sizeof(*dels), cmp_group_key_lease);
	while (i < n) {
		size_t j = i;
		uint64_t epoch = 0;
		int64_t last = -1;

		while (j < n && dels[j].group == dels[i].group &&
		       dels[j].producer == dels[i].producer) {
			const struct drec *r = &dels[j++];
			uint8_t *seen = got[r->group][r->producer];

			if (r->is_bad || r->seq >= W.prods[r->producer].cap)
				continue;
			if ((r->lease >> LEASE_EPOCH_SHIFT) != epoch) {
				epoch = r->lease >> LEASE_EPOCH_SHIFT;
				last = -1;
			}
			if (seen[r->seq] & GOT_ANY) {
				v->duplicates++;
				continue;
			}
			seen[r->seq] |= GOT_ANY;
			if (r->count > 1)
				continue;
			if ((int64_t)r->seq <= last &&
			    v->order_violations++ < REPORT_MAX && !is_quiet)
				fprintf(stderr,
					"crash: %s key p%u: first delivery "
					"of seq %" PRIu32 " (lease %" PRIu64
					") after seq %" PRId64 "\n",
					group_names[r->group], r->producer,
					r->seq, r->lease, last);
			last = r->seq;
		}
		i = j;
	}
}

/* The index of the kill that ended the run a message was confirmed in;
 * -1 when none did. */
static int
next_kill(long long confirm_ms)
{
	for (int k = 0; k < W.n_kills; k++)
		if (W.kill_ms[k] >= confirm_ms)
			return k;
	return -1;
}

/* Prints every delivery of p:s, to explain a report. */
static void
print_deliveries(int p, uint32_t s)
{
	for (size_t k = 0; k < W.n_dels; k++)
		if (!W.dels[k].is_bad && W.dels[k].producer == p &&
		    W.dels[k].seq == s)
			fprintf(stderr,
				"crash:   delivered to %s at partition "
				"%" PRIu32 " offset %" PRIu64 ", run %" PRIu64
				", count %" PRIu32 "\n",
				group_names[W.dels[k].group],
				W.dels[k].partition, W.dels[k].offset,
				W.dels[k].lease >> LEASE_EPOCH_SHIFT,
				W.dels[k].count);
}

static void
check_lost(struct verdict *v, uint8_t *got[GROUPS][PRODUCERS])
{
	long long window = (long long)W.cfg.interval_ms + INTERVAL_SLACK_MS;
	int is_interval = strcmp(W.cfg.sync, "interval") == 0;

	for (int p = 0; p < PRODUCERS; p++) {
		const struct producer *pr = &W.prods[p];

		for (uint32_t s = 0; s < pr->next_seq; s++) {
			const struct seqinfo *si = &pr->seqs[s];
			int missing = 0, k;
			long long before = -1;

			if (!(si->state & SEQ_CONFIRMED))
				continue;
			for (int g = 0; g < GROUPS; g++) {
				if (!(got[g][p][s] & GOT_ANY)) {
					v->lost_per_group[g]++;
					missing = 1;
				} else if (!(got[g][p][s] & GOT_AT) &&
					   v->misplaced++ < REPORT_MAX &&
					   !is_quiet) {
					fprintf(stderr,
						"crash: p%d:%" PRIu32
						" confirmed at partition "
						"%" PRIu32 " offset %" PRIu64
						", delivered to %s only "
						"elsewhere\n",
						p, s, si->partition, si->offset,
						group_names[g]);
					print_deliveries(p, s);
				}
			}
			if (!missing)
				continue;
			v->lost++;
			k = next_kill(si->confirm_ms);
			if (k >= 0)
				before = W.kill_ms[k] - si->confirm_ms;
			if (before > v->lost_window_max_ms)
				v->lost_window_max_ms = before;
			if (k < 0 || before > window)
				v->lost_outside_window++;
			if (v->lost <= REPORT_MAX && !is_interval && !is_quiet)
				fprintf(stderr,
					"crash: lost: p%d:%" PRIu32
					" confirmed at partition %" PRIu32
					" offset %" PRIu64 ", never delivered "
					"to%s%s; confirmed %lld ms before "
					"kill %d\n",
					p, s, si->partition, si->offset,
					got[0][p][s] ? "" : " g1",
					got[1][p][s] ? "" : " g2", before,
					k + 1);
		}
	}
}

struct cpos {
	uint64_t offset;
	uint32_t partition;
	uint32_t seq;
	uint8_t producer;
};

static int
cmp_cpos(const void *a, const void *b)
{
	const struct cpos *x = a, *y = b;

	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* A confirm's (partition, offset) names that message for good: no other
 * confirm and no delivery may put another message there. Marks GOT_AT.
 * @return 0, or -1 when out of memory. */
static int
check_positions(struct verdict *v, const struct drec *dels, size_t n,
		uint8_t *got[GROUPS][PRODUCERS])
{
	struct cpos *cp;
	size_t m = 0, cap = 0;

	for (int p = 0; p < PRODUCERS; p++)
		cap += W.prods[p].next_seq;
	cp = malloc((cap + 1) * sizeof(*cp));
	if (cp == NULL)
		return -1;
	for (int p = 0; p < PRODUCERS; p++)
		for (uint32_t s = 0; s < W.prods[p].next_seq; s++)
			if (W.prods[p].seqs[s].state & SEQ_CONFIRMED)
				cp[m++] = (struct cpos){
					.offset = W.prods[p].seqs[s].offset,
					.partition =
						W.prods[p].seqs[s].partition,
					.seq = s,
					.producer = (uint8_t)p
				};
	if (m > 0)
		qsort(cp, m, sizeof(*cp), cmp_cpos);
	for (size_t i = 1; i < m; i++)
		if (cmp_cpos(&cp[i - 1], &cp[i]) == 0 &&
		    v->offset_reused++ < REPORT_MAX && !is_quiet)
			fprintf(stderr,
				"crash: partition %" PRIu32 " offset %" PRIu64
				" confirmed for p%u:%" PRIu32
				" and for p%u:%" PRIu32 "\n",
				cp[i].partition, cp[i].offset,
				cp[i - 1].producer, cp[i - 1].seq,
				cp[i].producer, cp[i].seq);
	for (size_t k = 0; k < n; k++) {
		const struct drec *r = &dels[k];
		struct cpos key = { .offset = r->offset,
				    .partition = r->partition };
		const struct cpos *c, *e;

		if (r->is_bad)
			continue;
		c = bsearch(&key, cp, m, sizeof(*cp), cmp_cpos);
		if (c == NULL)
			continue;
		/* sync=interval may have confirmed the place several
		 * times: any of those confirms may be the one that held. */
		while (c > cp && cmp_cpos(c - 1, &key) == 0)
			c--;
		for (e = c; e < cp + m && cmp_cpos(e, &key) == 0; e++)
			if (e->producer == r->producer && e->seq == r->seq)
				break;
		if (e < cp + m && cmp_cpos(e, &key) == 0) {
			got[r->group][r->producer][r->seq] |= GOT_AT;
			continue;
		}
		if (v->offset_reused++ < REPORT_MAX && !is_quiet)
			fprintf(stderr,
				"crash: %s got p%u:%" PRIu32 " at partition "
				"%" PRIu32 " offset %" PRIu64
				", confirmed for p%u:%" PRIu32 "\n",
				group_names[r->group], r->producer, r->seq,
				r->partition, r->offset, c->producer, c->seq);
	}
	free(cp);
	return 0;
}

/* Runs every rule over dels and acks (sorted in place). @return 0, or -1
 * when out of memory. */
static int
run_rules(struct verdict *v, struct drec *dels, size_t n, struct arec *acks,
	  size_t n_acks)
{
	uint8_t *got[GROUPS][PRODUCERS];
	int rc = 0;

	memset(v, 0, sizeof(*v));
	memset(got, 0, sizeof(got));
	for (int g = 0; g < GROUPS; g++)
		for (int p = 0; p < PRODUCERS; p++) {
			got[g][p] = calloc(W.prods[p].cap + 1, 1);
			if (got[g][p] == NULL)
				rc = -1;
		}
	for (int p = 0; p < PRODUCERS; p++) {
		const struct producer *pr = &W.prods[p];

		v->published += pr->next_seq;
		v->sends += pr->sends;
		v->resent += pr->resent;
		v->in_doubt += pr->in_doubt;
		for (uint32_t s = 0; s < pr->next_seq; s++)
			v->confirmed +=
				(pr->seqs[s].state & SEQ_CONFIRMED) != 0;
	}
	for (int i = 0; i < CONSUMERS; i++)
		v->ack_refused += W.cons[i].ack_refused;
	for (int i = 0; i < CONSUMERS; i++)
		v->consumer_crashes += W.cons[i].crashes;
	v->delivered = n;
	v->acked = n_acks;
	for (size_t k = 0; k < n; k++)
		v->redelivered += dels[k].count > 1;
	if (rc == 0) {
		check_phantoms(v, dels, n);
		check_acks(v, dels, n, acks, n_acks);
		count_copies(v, dels, n);
		check_order(v, dels, n, got);
		rc = check_positions(v, dels, n, got);
		check_lost(v, got);
	}
	for (int g = 0; g < GROUPS; g++)
		for (int p = 0; p < PRODUCERS; p++)
			free(got[g][p]);
	if (rc < 0)
		fprintf(stderr, "crash: out of memory\n");
	return rc;
}

/* A copy of the records with room for one more delivery. */
static struct drec *
copy_dels(size_t *n)
{
	struct drec *d = malloc((W.n_dels + 1) * sizeof(*d));

	if (d != NULL)
		memcpy(d, W.dels, W.n_dels * sizeof(*d));
	*n = W.n_dels;
	return d;
}

/* Two first deliveries next to each other in lease order, in group 0, of
 * one key and one broker run, with increasing seqs. dels sorted by group,
 * key and lease. @return the index of the first, or -1. */
static long
find_ordered_pair(const struct drec *dels, size_t n)
{
	uint8_t *seen[PRODUCERS] = { NULL };
	long found = -1;

	for (int p = 0; p < PRODUCERS; p++)
		if ((seen[p] = calloc(W.prods[p].cap + 1, 1)) == NULL)
			goto out;
	for (size_t k = 0; k + 1 < n && dels[k].group == 0; k++) {
		const struct drec *a = &dels[k], *b = &dels[k + 1];
		int is_first = !a->is_bad &&
			       a->seq < W.prods[a->producer].cap &&
			       !seen[a->producer][a->seq];

		if (!a->is_bad && a->seq < W.prods[a->producer].cap)
			seen[a->producer][a->seq] = 1;
		if (is_first && !b->is_bad && b->group == 0 &&
		    b->producer == a->producer && a->count == 1 &&
		    b->count == 1 && a->seq < b->seq &&
		    b->seq < W.prods[b->producer].cap &&
		    !seen[b->producer][b->seq] &&
		    (a->lease >> LEASE_EPOCH_SHIFT) ==
			    (b->lease >> LEASE_EPOCH_SHIFT)) {
			found = (long)k;
			break;
		}
	}
out:
	for (int p = 0; p < PRODUCERS; p++)
		free(seen[p]);
	return found;
}

/* Below this many deliveries a run may hold no two neighbouring first
 * deliveries of one group partition (a starved machine: 4 in 6 s was
 * seen), and the order fault is not planted rather than failed. */
#define SELF_TEST_MIN_DELIVERIES 64

/* Breaks each rule once in a copy of this run's records and checks that
 * the checker notices: a checker that never fails proves nothing.
 * @return 0 when every injected fault was caught. */
static int
check_the_checker(const struct verdict *base)
{
	struct verdict v;
	struct drec *d = NULL, victim;
	size_t n, m = 0, i;
	long k;
	int missed = 0;

	is_quiet = 1;
	/* Lost: every delivery to g1 of a confirmed message vanishes. */
	if ((d = copy_dels(&n)) == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		if (d[i].group == 0 && !d[i].is_bad &&
		    (W.prods[d[i].producer].seqs[d[i].seq].state &
		     SEQ_CONFIRMED))
			break;
	if (i < n) {
		victim = d[i];
		for (i = 0; i < n; i++)
			if (d[i].group != 0 ||
			    d[i].producer != victim.producer ||
			    d[i].seq != victim.seq)
				d[m++] = d[i];
		if (run_rules(&v, d, m, W.acks, W.n_acks) < 0)
			goto oom;
	}
	if (m == 0 || v.lost != base->lost + 1) {
		fprintf(stderr, "crash: checker self-test: a lost message "
				"went unnoticed\n");
		missed++;
	}
	free(d);

	/* Phantom: a delivery of a seq never sent. */
	if ((d = copy_dels(&n)) == NULL)
		goto oom;
	d[n] = d[0];
	d[n].seq = W.prods[d[0].producer].next_seq;
	if (run_rules(&v, d, n + 1, W.acks, W.n_acks) < 0)
		goto oom;
	if (v.phantoms == base->phantoms) {
		fprintf(stderr, "crash: checker self-test: a phantom went "
				"unnoticed\n");
		missed++;
	}
	free(d);

	/* Ack: an acked message delivered again, later. With no ack
	 * excused for a power cut, those the run excused count too. */
	if ((d = copy_dels(&n)) == NULL)
		goto oom;
	for (i = 0; i < n && W.n_acks > 0; i++)
		if (d[i].lease == W.acks[0].lease &&
		    d[i].group == W.acks[0].group)
			break;
	if (i < n) {
		d[n] = d[i];
		d[n].lease = UINT64_MAX;
		is_ack_excuse_off = 1;
		if (run_rules(&v, d, n + 1, W.acks, W.n_acks) < 0)
			goto oom;
		is_ack_excuse_off = 0;
	}
	if (i >= n ||
	    v.ack_violations != base->ack_violations + base->acks_lost + 1) {
		fprintf(stderr, "crash: checker self-test: a delivery after "
				"a confirmed ack went unnoticed\n");
		missed++;
	}
	free(d);

	/* Order: two neighbouring first deliveries swap places. */
	if ((d = copy_dels(&n)) == NULL)
		goto oom;
	if (n > 0)
		qsort(d, n, sizeof(*d), cmp_group_key_lease);
	k = find_ordered_pair(d, n);
	if (k >= 0) {
		uint64_t lease = d[k].lease;

		d[k].lease = d[k + 1].lease;
		d[k + 1].lease = lease;
		if (run_rules(&v, d, n, W.acks, W.n_acks) < 0)
			goto oom;
	}
	if (k < 0 && n < SELF_TEST_MIN_DELIVERIES) {
		/* A starved machine delivered too little for two neighbouring
		 * first deliveries of one group partition to exist: there is
		 * nothing to swap, which says nothing of the checker. */
		fprintf(stderr,
			"crash: checker self-test: only %zu deliveries, "
			"no two first ones to swap: order fault not "
			"planted this run\n",
			n);
	} else if (k < 0 || v.order_violations == base->order_violations) {
		fprintf(stderr, "crash: checker self-test: first deliveries "
				"out of order went unnoticed\n");
		missed++;
	}
	free(d);
	is_quiet = 0;
	return missed ? -1 : 0;
oom:
	free(d);
	is_quiet = 0;
	fprintf(stderr, "crash: checker self-test: out of memory\n");
	return -1;
}

/* @return 0 when every rule of the sync mode holds. */
static int
check(long long elapsed_ms)
{
	struct verdict v;
	int is_interval = strcmp(W.cfg.sync, "interval") == 0;
	int ok;

	if (run_rules(&v, W.dels, W.n_dels, W.acks, W.n_acks) < 0)
		return -1;
	printf("crash: sync=%s%s", W.cfg.sync,
	       W.cfg.is_journal ? " journal" : " lmdb");
	if (is_interval)
		printf(" interval_ms=%u", W.cfg.interval_ms);
	printf(" seed=%llu kills=%d published=%" PRIu64 " confirmed=%" PRIu64
	       " in_doubt=%" PRIu64 " sends=%" PRIu64 " resent=%" PRIu64
	       " stored_twice=%" PRIu64 " delivered=%" PRIu64
	       " duplicates=%" PRIu64 " redelivered=%" PRIu64 " acked=%" PRIu64
	       " ack_refused=%" PRIu64 " consumer_crashes=%" PRIu64
	       " lost=%" PRIu64 " (g1=%" PRIu64 " g2=%" PRIu64 ")",
	       W.cfg.seed, W.n_kills, v.published, v.confirmed, v.in_doubt,
	       v.sends, v.resent, v.stored_twice, v.delivered, v.duplicates,
	       v.redelivered, v.acked, v.ack_refused, v.consumer_crashes,
	       v.lost, v.lost_per_group[0], v.lost_per_group[1]);
	if (is_interval)
		printf(" lost_window_max_ms=%lld lost_outside_window=%" PRIu64,
		       v.lost_window_max_ms, v.lost_outside_window);
	printf(" offset_reused=%" PRIu64 " misplaced=%" PRIu64, v.offset_reused,
	       v.misplaced);
	printf(" phantoms=%" PRIu64 " ack_violations=%" PRIu64
	       " acks_lost_to_cuts=%" PRIu64 " order_violations=%" PRIu64
	       " elapsed_ms=%lld\n",
	       v.phantoms, v.ack_violations, v.acks_lost, v.order_violations,
	       elapsed_ms);
	fflush(stdout);

	ok = v.phantoms == 0 && v.ack_violations == 0 &&
	     v.order_violations == 0 && v.confirmed > 0 && v.acked > 0 &&
	     v.misplaced == 0 && v.offset_reused == 0 &&
	     (is_interval ? v.lost_outside_window == 0 : v.lost == 0);
	if (ok && check_the_checker(&v) < 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- main */

static int
parse_args(int argc, char **argv, struct config *cfg)
{
	const char *seed = getenv("RINGMQ_CRASH_SEED");

	cfg->sync = "always";
	cfg->is_journal = 1; /* the broker's default */
	cfg->interval_arg = "100";
	cfg->kills = SHORT_KILLS;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--long") == 0) {
			cfg->kills = LONG_KILLS;
		} else if (strcmp(argv[i], "--sync") == 0 && i + 1 < argc) {
			cfg->sync = argv[++i];
		} else if (strcmp(argv[i], "--sync-interval-ms") == 0 &&
			   i + 1 < argc) {
			cfg->interval_arg = argv[++i];
		} else if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc) {
			cfg->kills = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--power-cut") == 0) {
			cfg->is_power_cut = 1;
		} else if (strcmp(argv[i], "--auth") == 0) {
			cfg->is_auth = 1;
		} else if (strcmp(argv[i], "--journal") == 0 && i + 1 < argc &&
			   (strcmp(argv[i + 1], "on") == 0 ||
			    strcmp(argv[i + 1], "off") == 0)) {
			cfg->is_journal = strcmp(argv[++i], "on") == 0;
		} else {
			fprintf(stderr,
				"usage: crash_test [--sync always|interval|"
				"never] [--sync-interval-ms N] [--kills N] "
				"[--long] [--power-cut] [--auth] "
				"[--journal on|off]\n");
			return -1;
		}
	}
	if (cfg->is_power_cut && strcmp(cfg->sync, "never") == 0) {
		fprintf(stderr, "crash: sync=never promises nothing across a "
				"power cut; --power-cut takes always or "
				"interval\n");
		return -1;
	}
	if (strcmp(cfg->sync, "always") != 0 &&
	    strcmp(cfg->sync, "interval") != 0 &&
	    strcmp(cfg->sync, "never") != 0) {
		fprintf(stderr, "crash: unknown sync mode '%s'\n", cfg->sync);
		return -1;
	}
	cfg->interval_ms = (unsigned)atoi(cfg->interval_arg);
	if (cfg->kills < 1 || cfg->kills > MAX_KILLS - 1 ||
	    cfg->interval_ms < 1) {
		fprintf(stderr, "crash: bad --kills or --sync-interval-ms\n");
		return -1;
	}
	if (seed != NULL && *seed != '\0') {
		cfg->seed = strtoull(seed, NULL, 10);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		cfg->seed = (unsigned long long)ts.tv_sec * 1000003ull ^
			    (unsigned long long)ts.tv_nsec;
	}
	return 0;
}

/* Creates the queue (4 partitions, unlimited deliveries: kills must not
 * dead-letter anything) and both groups, before anything is published, so
 * that no message is deleted before every group has it. */
static int
setup_queue(void)
{
	ringmq_client *c = NULL;
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	char parts[16];
	int rc;

	snprintf(parts, sizeof(parts), "%d", PARTITIONS);
	if (qo == NULL)
		return -1;
	rc = ringmq_queue_opts_set(qo, "partitions", parts, NULL, 0);
	if (rc == RINGMQ_OK)
		rc = ringmq_queue_opts_set(qo, "max-deliveries", "0", NULL, 0);
	if (rc == RINGMQ_OK)
		rc = client_connect(&c, "crash-setup", &W.stop_consumers);
	if (rc == RINGMQ_OK)
		rc = ringmq_queue_create(c, QUEUE, qo);
	for (int g = 0; g < GROUPS && rc == RINGMQ_OK; g++) {
		uint32_t sub;

		/* Credit 0: the group is created, nothing is leased. */
		rc = ringmq_subscribe(c, &sub, QUEUE, group_names[g], 0,
				      RINGMQ_START_EARLIEST);
	}
	if (rc != RINGMQ_OK)
		fprintf(stderr, "crash: setup: %s %s\n", ringmq_code_name(rc),
			c ? ringmq_client_errmsg(c) : "");
	ringmq_client_free(c);
	ringmq_queue_opts_free(qo);
	return rc == RINGMQ_OK ? 0 : -1;
}

/* Waits until the queue has nothing ready, delayed or leased and no
 * delivery came for QUIET_MS. @return 0, or -1 at the deadline. */
static int
drain(void)
{
	long long deadline = harness_now_ms() + DRAIN_MS;
	ringmq_client *c = NULL;
	int is_done = 0;

	while (!is_done && harness_now_ms() < deadline &&
	       !atomic_load(&W.is_failed)) {
		ringmq_queue_list *l = NULL;
		uint64_t left = UINT64_MAX;

		sleep_ms(100);
		if (c == NULL && client_connect(&c, "crash-drain",
						&W.stop_consumers) != RINGMQ_OK)
			continue;
		if (ringmq_queue_list_get(c, &l) != RINGMQ_OK) {
			ringmq_client_free(c);
			c = NULL;
			continue;
		}
		for (size_t i = 0; i < ringmq_queue_list_count(l); i++)
			if (strcmp(ringmq_queue_list_name(l, i), QUEUE) == 0)
				left = ringmq_queue_list_ready(l, i) +
				       ringmq_queue_list_delayed(l, i) +
				       ringmq_queue_list_in_flight(l, i);
		ringmq_queue_list_free(l);
		is_done = left == 0 &&
			  harness_now_ms() - atomic_load(&W.last_delivery_ms) >=
				  QUIET_MS;
	}
	ringmq_client_free(c);
	if (!is_done)
		fprintf(stderr, "crash: the queue did not drain in %d ms\n",
			DRAIN_MS);
	return is_done ? 0 : -1;
}

int
main(int argc, char **argv)
{
	pthread_t prod_th[PRODUCERS], cons_th[CONSUMERS], killer_th;
	pthread_condattr_t ca;
	const char *extra[12];
	static char boot[] = "/tmp/ringmq-crash-boot-XXXXXX";
	uint64_t seed_state, killer_rng;
	long long start_ms = harness_now_ms();
	int rc = 1, stop_rc;

	signal(SIGPIPE, SIG_IGN);
	W.is_tracing = getenv("RINGMQ_CRASH_TRACE") != NULL;
	if (parse_args(argc, argv, &W.cfg) < 0)
		return 1;
	seed_state = W.cfg.seed;
	fprintf(stderr,
		"crash: sync=%s%s%s seed=%llu kills=%d "
		"(replay with RINGMQ_CRASH_SEED=%llu)\n",
		W.cfg.sync, W.cfg.is_power_cut ? " power-cut" : "",
		W.cfg.is_journal ? " journal" : " lmdb", W.cfg.seed,
		W.cfg.kills, W.cfg.seed);
	if (W.cfg.is_power_cut && power_cut_setup(splitmix64(&seed_state)) < 0)
		return 1;

	pthread_mutex_init(&W.mu, NULL);
	pthread_mutex_init(&W.rec_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&W.cv, &ca);
	pthread_condattr_destroy(&ca);

	/* With sync=interval an ack is confirmed by the next commit, so a
	 * consumer acks at most CREDIT messages per interval: publish at
	 * half what the consumers of a group can take. */
	W.rate = PRODUCER_RATE;
	if (strcmp(W.cfg.sync, "interval") == 0 &&
	    W.rate > CONSUMERS_PER_GROUP * CREDIT * 1000u / W.cfg.interval_ms /
			     PRODUCERS / 2)
		W.rate = CONSUMERS_PER_GROUP * CREDIT * 1000u /
			 W.cfg.interval_ms / PRODUCERS / 2;
	if (W.rate < 1)
		W.rate = 1;
	extra[0] = "--sync";
	extra[1] = W.cfg.sync;
	extra[2] = "--sync-interval-ms";
	extra[3] = W.cfg.interval_arg;
	extra[4] = NULL;
	if (W.cfg.is_auth) {
		static const char line[] = "admin:" AUTH_PASSWORD "\n";
		int fd = mkstemp(boot);

		if (fd < 0 || write(fd, line, sizeof(line) - 1) !=
				      (ssize_t)(sizeof(line) - 1)) {
			fprintf(stderr, "crash: cannot write %s\n", boot);
			return 1;
		}
		close(fd);
		extra[4] = "--auth";
		extra[5] = "on";
		extra[6] = "--auth-bootstrap-file";
		extra[7] = boot;
		extra[8] = NULL;
	}
	{
		size_t n = 0;

		while (extra[n] != NULL)
			n++;
		extra[n] = "--journal";
		extra[n + 1] = W.cfg.is_journal ? "on" : "off";
		extra[n + 2] = NULL;
	}
	W.broker.stdout_fd = -1;
	if (harness_start(&W.broker, extra) < 0) {
		harness_cleanup(&W.broker);
		return 1;
	}
	snprintf(W.addr, sizeof(W.addr), "%s", W.broker.addr);
	W.is_up = 1;
	if (setup_queue() < 0) {
		harness_cleanup(&W.broker);
		return 1;
	}

	for (int i = 0; i < PRODUCERS; i++) {
		W.prods[i].idx = i;
		W.prods[i].rng = splitmix64(&seed_state);
		if (producer_grow(&W.prods[i], 4096) < 0)
			return 1;
		pthread_create(&prod_th[i], NULL, producer_main, &W.prods[i]);
	}
	for (int i = 0; i < CONSUMERS; i++) {
		W.cons[i].idx = i % CONSUMERS_PER_GROUP;
		W.cons[i].group = i / CONSUMERS_PER_GROUP;
		W.cons[i].rng = splitmix64(&seed_state);
		pthread_create(&cons_th[i], NULL, consumer_main, &W.cons[i]);
	}
	killer_rng = splitmix64(&seed_state);
	pthread_create(&killer_th, NULL, killer_main, &killer_rng);

	/* Load phase: as long as the killer runs. */
	pthread_join(killer_th, NULL);
	atomic_store(&W.stop_producers, 1);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(prod_th[i], NULL);
	/* One last kill -9, then everything must come out. */
	if (!atomic_load(&W.is_failed) && kill_and_restart() < 0)
		atomic_store(&W.is_failed, 1);
	if (drain() < 0)
		atomic_store(&W.is_failed, 1);
	atomic_store(&W.stop_consumers, 1);
	for (int i = 0; i < CONSUMERS; i++)
		pthread_join(cons_th[i], NULL);
	stop_rc = harness_stop(&W.broker);
	if (stop_rc != 0) {
		fprintf(stderr, "crash: SIGTERM stop returned %d\n", stop_rc);
		atomic_store(&W.is_failed, 1);
	}

	if (W.cfg.is_power_cut && power_cut_report() < 0)
		atomic_store(&W.is_failed, 1);
	if (check(harness_now_ms() - start_ms) == 0 &&
	    !atomic_load(&W.is_failed))
		rc = 0;
	if (rc == 0) {
		harness_cleanup(&W.broker);
		if (W.cfg.is_power_cut)
			power_cut_cleanup();
	} else {
		fprintf(stderr,
			"crash: FAILED (seed %llu); data directory kept: %s\n",
			W.cfg.seed, W.broker.dir);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		free(W.prods[i].seqs);
	}
	free(W.dels);
	free(W.acks);
	if (W.cfg.is_auth)
		unlink(boot);
	return rc;
}
