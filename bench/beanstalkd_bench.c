/*
 * beanstalkd_bench.c: the beanstalkd side of the comparison in
 * docs/benchmarks.md. It speaks the beanstalkd text protocol directly over
 * TCP (no client library) and measures the same things as
 * redis_streams_bench.c, with the same payload (run id, producer, sequence,
 * send time) and the same RESULT line (plus errors=, and stored= in
 * publish mode). Each run has its own tube, bench-<run id>. Written
 * against beanstalkd 1.12.
 *
 *   producers  each sends "use <tube>", then pipelines "put 0 0 120 <n>"
 *              keeping --window replies outstanding on its own connection;
 *              confirm is the send to the INSERTED reply.
 *   consumers  each watches the tube (and ignores default) and loops
 *              "reserve-with-timeout 1": beanstalkd runs one command at a
 *              time per connection and a reserve blocks it, so a consumer
 *              holds one job at a time and its "delete <id>" goes with the
 *              next reserve in one write; e2e ends at the last DELETED of a
 *              message not seen before.
 *   publish    producers only; ends at the last INSERTED; stats-tube checks
 *              current-jobs-ready (the jobs stay in the tube).
 *   latency    window 1, one producer and one consumer by default. The
 *              consumer pays a delete (an fsync with -f 0) and a round
 *              trip per job, so it can fall behind the producer; delivery
 *              latency then includes that backlog.
 *
 * A put answered by anything but INSERTED (BURIED, JOB_TOO_BIG, DRAINING,
 * OUT_OF_MEMORY, ...), a delete by anything but DELETED, or a job that is
 * not a payload of this run counts in errors= and makes the exit status 2,
 * as an incomplete run or a missing message do; 1 is for usage, connection
 * and protocol failures.
 *
 * Durability is the server's business (-b with -f 0 or -F), set by
 * scripts/bench-compare. Not part of the product build:
 *   cc -O2 -pthread -o beanstalkd-bench bench/beanstalkd_bench.c \
 *      bench/driver.c bench/hist.c -lm
 */
#include "driver.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room for a command line ("put 0 0 120 <n>\r\n") and a body's CRLF. */
#define CMD_BYTES 64
/* Socket timeout: how often a blocked worker looks at the abort flag. */
#define POLL_MS 100
/* Seconds the workers get to finish after the end before they are cut. */
#define GRACE_S 3

const char driver_name[] = "beanstalkd-bench";

struct bench {
	struct run r;
	char tube[64];
	/* Raised for the workers still waiting on the server after GRACE_S
	 * (every worker connection's abort points here). */
	atomic_int is_aborting;
	atomic_uint workers_done;
	_Atomic uint64_t errors;
};

/*
 * One reply: its first line (without CRLF), for RESERVED and OK the body,
 * for RESERVED the job id. They point into the connection's input buffer
 * and stay valid until the next read on that connection.
 */
struct reply {
	const char *line;
	size_t len;
	const char *body;
	size_t body_len;
	uint64_t job;
};

static void
die_reply(const char *what, const struct reply *r)
{
	fprintf(stderr, "beanstalkd-bench: %s: unexpected reply \"%.*s\"\n",
		what, (int)(r->len > 200 ? 200 : r->len), r->line);
	exit(1);
}

static void
out_add(struct conn *c, const void *p, size_t n)
{
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* Decimal digits at p (before end) into *v; the first byte after, or NULL. */
static const char *
parse_u64(const char *p, const char *end, uint64_t *v)
{
	const char *start = p;

	*v = 0;
	while (p < end && *p >= '0' && *p <= '9' && *v < UINT64_MAX / 10)
		*v = *v * 10 + (uint64_t)(*p++ - '0');
	return p == start ? NULL : p;
}

static int
reply_is(const struct reply *r, const char *word)
{
	size_t n = strlen(word);

	return r->len == n && memcmp(r->line, word, n) == 0;
}

static int
reply_starts(const struct reply *r, const char *prefix)
{
	size_t n = strlen(prefix);

	return r->len > n && memcmp(r->line, prefix, n) == 0;
}

/*
 * Waits for one complete reply and consumes it. Replies can be split
 * across reads and several can come in one, so everything goes through the
 * connection's input buffer. Only RESERVED and OK carry a body.
 */
static void
reply_next(struct conn *c, struct reply *r)
{
	for (;;) {
		size_t e = line_end(c, c->in_pos);
		const char *end, *p;
		uint64_t n;

		if (e == SIZE_MAX) {
			conn_fill(c);
			continue;
		}
		r->line = c->in + c->in_pos;
		r->len = e - c->in_pos;
		r->body = NULL;
		r->body_len = 0;
		r->job = 0;
		end = r->line + r->len;
		if (reply_starts(r, "RESERVED ")) {
			p = parse_u64(r->line + 9, end, &r->job);
			if (p == NULL || p >= end || *p != ' ')
				die_reply("reserve", r);
			p = parse_u64(p + 1, end, &n);
		} else if (reply_starts(r, "OK ")) {
			p = parse_u64(r->line + 3, end, &n);
		} else {
			c->in_pos = e + 2;
			return;
		}
		if (p != end || n > BUF_BYTES - CMD_BYTES)
			die_reply("body", r);
		if (e + 2 + n + 2 > c->in_len) {
			conn_fill(c); /* moves the buffer: parse again */
			continue;
		}
		if (c->in[e + 2 + n] != '\r' || c->in[e + 2 + n + 1] != '\n')
			die_reply("body without CRLF", r);
		r->body = c->in + e + 2;
		r->body_len = (size_t)n;
		c->in_pos = e + 2 + n + 2;
		return;
	}
}

/* Sends one setup command and checks its one-line reply. */
static void
expect(struct conn *c, const char *cmd, const char *want)
{
	struct reply r;

	out_add(c, cmd, strlen(cmd));
	conn_flush(c);
	reply_next(c, &r);
	if (!reply_is(&r, want)) {
		fprintf(stderr,
			"beanstalkd-bench: %.*s: got \"%.*s\", expected "
			"\"%s\"\n",
			(int)strcspn(cmd, "\r"), cmd,
			(int)(r.len > 200 ? 200 : r.len), r.line, want);
		exit(1);
	}
}

/* Counts a failed command; the first one is shown. */
static void
count_error(struct bench *b, const char *what, const char *text, size_t len)
{
	if (atomic_fetch_add(&b->errors, 1) == 0)
		fprintf(stderr,
			"beanstalkd-bench: %s: %.*s (counted in "
			"errors=, only the first is shown)\n",
			what, (int)(len > 200 ? 200 : len), text);
}

static void *
producer_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct run *r = &b->r;
	uint64_t quota = r->quota[w->id];
	uint64_t *sent = calloc(r->o.window, sizeof(*sent));
	unsigned char *payload = payload_new(r, w->id);
	uint64_t next = 0, done = 0;
	char head[CMD_BYTES];
	size_t head_len;

	if (sent == NULL)
		die("malloc");
	head_len = (size_t)snprintf(head, sizeof(head), "put 0 0 120 %zu\r\n",
				    r->o.size);
	while (done < quota && !atomic_load(&r->is_stopping)) {
		while (next - done < r->o.window && next < quota) {
			sent[next % r->o.window] = payload_stamp(payload, next);
			out_add(&w->c, head, head_len);
			out_add(&w->c, payload, r->o.size);
			out_add(&w->c, "\r\n", 2);
			next++;
			atomic_fetch_add(&r->published, 1);
		}
		conn_flush(&w->c);
		/* replies come in order on one connection */
		do {
			struct reply rp;

			reply_next(&w->c, &rp);
			if (reply_starts(&rp, "INSERTED ")) {
				hist_add(&w->h,
					 now_ns() - sent[done % r->o.window]);
				atomic_fetch_add(&r->confirmed, 1);
			} else {
				count_error(b, "put", rp.line, rp.len);
			}
			done++;
		} while (w->c.in_pos < w->c.in_len && done < next);
	}
	free(sent);
	free(payload);
	producer_done(r);
	atomic_fetch_add(&b->workers_done, 1);
	return NULL;
}

/*
 * Checks one reserved job and records its latency: 1 when it is a message
 * of this run seen for the first time.
 */
static int
check_job(struct worker *w, const struct reply *r)
{
	static const char bad_job[] = "a job that is not a payload of this run";
	struct bench *b = w->b;
	int rc = -1;

	atomic_fetch_add(&b->r.delivered, 1);
	/* The put sent exactly o.size bytes: any other length is not ours. */
	if (r->body_len == b->r.o.size)
		rc = payload_check(&b->r, r->body, r->body_len, &w->h);
	if (rc < 0) {
		count_error(b, "reserve", bad_job, strlen(bad_job));
		return 0;
	}
	return rc;
}

static void *
consumer_main(void *arg)
{
	static const char reserve[] = "reserve-with-timeout 1\r\n";
	struct worker *w = arg;
	struct bench *b = w->b;
	struct conn *c = &w->c;

	out_add(c, reserve, sizeof(reserve) - 1);
	conn_flush(c);
	/* Exactly one reserve is outstanding at the top of the loop; the
	 * timeout bounds how long a stop waits for it. */
	for (;;) {
		struct reply r;
		int has_job = 0, is_new = 0, is_last;

		reply_next(c, &r);
		is_last = should_stop(&b->r);
		if (reply_starts(&r, "RESERVED ")) {
			char del[CMD_BYTES];

			is_new = check_job(w, &r);
			out_add(c, del,
				(size_t)snprintf(del, sizeof(del),
						 "delete %" PRIu64 "\r\n",
						 r.job));
			has_job = 1;
		} else if (!reply_is(&r, "TIMED_OUT") &&
			   !reply_is(&r, "DEADLINE_SOON")) {
			/* Not worth retrying in a loop: this consumer stops,
			 * the others go on. */
			count_error(b, "reserve", r.line, r.len);
			is_last = 1;
		}
		/* The delete goes first, then the next reserve: one write. */
		if (!is_last)
			out_add(c, reserve, sizeof(reserve) - 1);
		conn_flush(c);
		if (has_job) {
			reply_next(c, &r);
			if (!reply_is(&r, "DELETED")) {
				count_error(b, "delete", r.line, r.len);
			} else if (is_new) {
				atomic_fetch_add(&b->r.acked, 1);
				check_end(&b->r);
			}
		}
		if (is_last)
			break;
	}
	atomic_fetch_add(&b->workers_done, 1);
	return NULL;
}

/* current-jobs-ready of the tube (0 when the server does not know it). */
static uint64_t
tube_ready(struct conn *c, const char *tube)
{
	static const char key[] = "\ncurrent-jobs-ready: ";
	char cmd[128];
	struct reply r;
	const char *p, *end;
	uint64_t n;

	snprintf(cmd, sizeof(cmd), "stats-tube %s\r\n", tube);
	out_add(c, cmd, strlen(cmd));
	conn_flush(c);
	reply_next(c, &r);
	if (reply_is(&r, "NOT_FOUND"))
		return 0;
	if (r.body == NULL)
		die_reply("stats-tube", &r);
	end = r.body + r.body_len;
	for (p = r.body; p + sizeof(key) - 1 <= end; p++) {
		if (memcmp(p, key, sizeof(key) - 1) == 0 &&
		    parse_u64(p + sizeof(key) - 1, end, &n) != NULL)
			return n;
	}
	die_reply("stats-tube: no current-jobs-ready", &r);
	return 0;
}

int
main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct run *r;
	struct worker *ws;
	struct conn admin;
	struct result res;
	unsigned nw;
	uint64_t errors, stored = 0;
	char cmd[128], want[128];

	if (b == NULL)
		die("calloc");
	r = &b->r;
	parse_args(argc, argv, &r->o);
	/* A producer's whole window of puts must fit its output buffer. */
	if (r->o.size > BUF_BYTES / 2 ||
	    (uint64_t)r->o.window * (r->o.size + CMD_BYTES) > BUF_BYTES)
		usage();
	run_init(r);
	snprintf(b->tube, sizeof(b->tube), "bench-%016" PRIx64, r->run_id);
	nw = r->o.producers + r->o.consumers;
	ws = calloc(nw, sizeof(*ws));
	if (ws == NULL)
		die("calloc");
	if (conn_open(&admin, r->o.host, r->o.port, POLL_MS) < 0) {
		snprintf(cmd, sizeof(cmd), "connect %s:%s", r->o.host,
			 r->o.port);
		die(cmd);
	}
	/*
	 * Setup is not timed: every connection is in its tube first. Until
	 * the workers run, a silent server is a timeout as for admin.
	 */
	for (unsigned i = 0; i < nw; i++) {
		struct conn *c = &ws[i].c;

		ws[i].b = b;
		ws[i].id = i < r->o.producers ? i : i - r->o.producers;
		hist_init(&ws[i].h);
		if (conn_open(c, r->o.host, r->o.port, POLL_MS) < 0)
			die("connect");
		if (i < r->o.producers) {
			snprintf(cmd, sizeof(cmd), "use %s\r\n", b->tube);
			snprintf(want, sizeof(want), "USING %s", b->tube);
			expect(c, cmd, want);
		} else {
			snprintf(cmd, sizeof(cmd), "watch %s\r\n", b->tube);
			expect(c, cmd, "WATCHING 2");
			expect(c, "ignore default\r\n", "WATCHING 1");
		}
		c->abort = &b->is_aborting;
	}
	workers_start(r, ws, nw, producer_main, consumer_main);
	run_wait(r, "deleted", &res);
	/*
	 * Consumers blocked in a reserve return within its 1 s timeout and
	 * producers after their window; a worker still waiting on the server
	 * after GRACE_S is made to leave, so the run ends either way.
	 */
	{
		uint64_t grace = now_ns() + GRACE_S * 1000000000ull;

		while (atomic_load(&b->workers_done) < nw && now_ns() < grace) {
			struct timespec ts = { 0, 20000000 };

			nanosleep(&ts, NULL);
		}
		if (atomic_load(&b->workers_done) < nw) {
			fprintf(stderr,
				"beanstalkd-bench: %u workers still "
				"waiting on the server, cut\n",
				nw - atomic_load(&b->workers_done));
			atomic_store(&b->is_aborting, 1);
		}
	}
	run_collect(r, ws, nw, &res);
	if (r->o.consumers == 0) {
		stored = tube_ready(&admin, b->tube);
		/* Fewer or more ready jobs than sent: either is a miss. */
		res.missing = stored > r->o.messages ? stored - r->o.messages
						     : r->o.messages - stored;
	}
	errors = atomic_load(&b->errors);
	print_summary(r, &res, "put->INSERTED", "put->delivery");
	if (r->o.consumers == 0)
		printf("  stats-tube: %" PRIu64 " jobs ready\n", stored);
	print_checks(&res, res.dups == 0 && res.missing == 0 && errors == 0);
	printf(", %" PRIu64 " errors\n", errors);
	print_result(r, &res, "beanstalkd");
	printf(" errors=%" PRIu64, errors);
	if (r->o.consumers == 0)
		printf(" stored=%" PRIu64, stored);
	printf("\n");
	for (unsigned i = 0; i < nw; i++)
		conn_close(&ws[i].c);
	conn_close(&admin);
	return res.is_complete && res.missing == 0 && errors == 0 ? 0 : 2;
}
