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
 *      tools/bench/hist.c -Itools -lm
 */
#include "bench/hist.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MAGIC 0x42514d52u
#define HDR_BYTES     32
#define BUF_BYTES     (4u << 20)
/* Room for a command line ("put 0 0 120 <n>\r\n") and a body's CRLF. */
#define CMD_BYTES 64
/* Socket timeout: how often a blocked worker looks at the abort flag. */
#define POLL_MS 100
/* Seconds the main thread waits on its own connection before giving up. */
#define ADMIN_WAIT_S 10
/* Seconds the workers get to finish after the end before they are cut. */
#define GRACE_S 3

enum mode { MODE_PUBLISH, MODE_E2E, MODE_LATENCY };
static const char *const mode_names[] = { "publish", "e2e", "latency" };

struct opts {
	enum mode mode;
	unsigned producers, consumers, window;
	uint64_t messages;
	size_t size;
	const char *host;
	const char *port;
	double max_secs;
};

struct bench {
	struct opts o;
	char tube[64];
	uint64_t run_id;
	uint64_t start_ns;
	_Atomic uint64_t end_ns;
	atomic_int is_stopping, is_aborting;
	atomic_uint producers_done, workers_done;
	uint64_t *quota;
	_Atomic uint64_t **seen;
	_Atomic uint64_t published, confirmed, delivered, dups, acked, errors;
};

/* A connection with its buffers (owned). */
struct conn {
	int fd;
	char *out;
	size_t out_len;
	char *in;
	size_t in_len, in_pos;
	/* Set for worker connections: a blocked read or write leaves the
	 * thread when it is raised; NULL gives up after ADMIN_WAIT_S. */
	atomic_int *abort;
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

struct worker {
	struct bench *b;
	unsigned id;
	pthread_t thread;
	struct conn c;
	struct hist h;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "beanstalkd-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
die_reply(const char *what, const struct reply *r)
{
	fprintf(stderr, "beanstalkd-bench: %s: unexpected reply \"%.*s\"\n",
		what, (int)(r->len > 200 ? 200 : r->len), r->line);
	exit(1);
}

static int
conn_open(struct conn *c, const char *host, const char *port, atomic_int *abort)
{
	struct addrinfo hints = { 0 }, *ai, *a;
	struct timeval tv = { 0, POLL_MS * 1000 };
	int one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "beanstalkd-bench: %s:%s: %s\n", host, port,
			gai_strerror(rc));
		exit(1);
	}
	c->fd = -1;
	for (a = ai; a != NULL && c->fd < 0; a = a->ai_next) {
		c->fd = socket(a->ai_family, SOCK_STREAM, 0);
		if (c->fd >= 0 &&
		    connect(c->fd, a->ai_addr, a->ai_addrlen) < 0) {
			int e = errno;

			close(c->fd);
			c->fd = -1;
			errno = e;
		}
	}
	freeaddrinfo(ai);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Blocking calls wake up now and then so a stalled server cannot
	 * hold a thread past --max-secs (see conn_wait). */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->out = malloc(BUF_BYTES);
	c->in = malloc(BUF_BYTES);
	if (c->out == NULL || c->in == NULL)
		return -1;
	c->out_len = c->in_len = c->in_pos = 0;
	c->abort = abort;
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	free(c->in);
}

/*
 * After a socket timeout: a worker leaves when asked to (its histogram
 * stays in its struct worker); the main thread's connection gives up.
 */
static void
conn_wait(struct conn *c, unsigned *idle, const char *what)
{
	if (c->abort != NULL) {
		if (atomic_load(c->abort))
			pthread_exit(NULL);
		return;
	}
	if (++*idle >= ADMIN_WAIT_S * 1000 / POLL_MS) {
		fprintf(stderr, "beanstalkd-bench: %s: no progress in %d s\n",
			what, ADMIN_WAIT_S);
		exit(1);
	}
}

static void
out_add(struct conn *c, const void *p, size_t n)
{
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
conn_flush(struct conn *c)
{
	size_t off = 0;
	unsigned idle = 0;

	while (off < c->out_len) {
		/* MSG_NOSIGNAL: a server that went away is an error message,
		 * not a silent SIGPIPE. */
		ssize_t n = send(c->fd, c->out + off, c->out_len - off,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_wait(c, &idle, "write");
				continue;
			}
			die("write");
		}
		off += (size_t)n;
	}
	c->out_len = 0;
}

/* Reads more input (blocking); compacts the buffer first. */
static void
conn_fill(struct conn *c)
{
	ssize_t n;
	unsigned idle = 0;

	if (c->in_pos > 0) {
		memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
		c->in_len -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->in_len == BUF_BYTES) {
		fprintf(stderr, "beanstalkd-bench: reply too large\n");
		exit(1);
	}
	for (;;) {
		n = read(c->fd, c->in + c->in_len, BUF_BYTES - c->in_len);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			conn_wait(c, &idle, "read");
			continue;
		}
		die("read");
	}
	if (n == 0) {
		if (c->abort != NULL && atomic_load(c->abort))
			pthread_exit(NULL);
		fprintf(stderr, "beanstalkd-bench: read: connection closed by "
				"the server\n");
		exit(1);
	}
	c->in_len += (size_t)n;
}

/* The end of the line starting at pos, or SIZE_MAX when incomplete. */
static size_t
line_end(const struct conn *c, size_t pos)
{
	for (size_t i = pos; i + 1 < c->in_len; i++) {
		if (c->in[i] == '\r' && c->in[i + 1] == '\n')
			return i;
	}
	return SIZE_MAX;
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

static int
should_stop(struct bench *b)
{
	return atomic_load(&b->is_stopping) || atomic_load(&b->end_ns) != 0;
}

static void
mark_end(struct bench *b)
{
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&b->end_ns, &zero, now_ns());
}

static void
check_end(struct bench *b)
{
	if (atomic_load(&b->producers_done) < b->o.producers)
		return;
	if (b->o.consumers > 0 &&
	    atomic_load(&b->acked) < atomic_load(&b->confirmed))
		return;
	mark_end(b);
}

static void *
producer_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	uint64_t quota = b->quota[w->id];
	uint64_t *sent = calloc(b->o.window, sizeof(*sent));
	unsigned char *payload = malloc(b->o.size);
	uint64_t next = 0, done = 0;
	uint32_t magic = PAYLOAD_MAGIC, id = w->id;
	char head[CMD_BYTES];
	size_t head_len;

	if (sent == NULL || payload == NULL)
		die("malloc");
	head_len = (size_t)snprintf(head, sizeof(head), "put 0 0 120 %zu\r\n",
				    b->o.size);
	for (size_t i = 0; i < b->o.size; i++)
		payload[i] = (unsigned char)('a' + (i * 7 + id) % 26);
	memcpy(payload, &magic, 4);
	memcpy(payload + 4, &id, 4);
	memcpy(payload + 24, &b->run_id, 8);
	while (done < quota && !atomic_load(&b->is_stopping)) {
		while (next - done < b->o.window && next < quota) {
			uint64_t t = now_ns();

			memcpy(payload + 8, &next, 8);
			memcpy(payload + 16, &t, 8);
			sent[next % b->o.window] = t;
			out_add(&w->c, head, head_len);
			out_add(&w->c, payload, b->o.size);
			out_add(&w->c, "\r\n", 2);
			next++;
			atomic_fetch_add(&b->published, 1);
		}
		conn_flush(&w->c);
		/* replies come in order on one connection */
		do {
			struct reply r;

			reply_next(&w->c, &r);
			if (reply_starts(&r, "INSERTED ")) {
				hist_add(&w->h,
					 now_ns() - sent[done % b->o.window]);
				atomic_fetch_add(&b->confirmed, 1);
			} else {
				count_error(b, "put", r.line, r.len);
			}
			done++;
		} while (w->c.in_pos < w->c.in_len && done < next);
	}
	free(sent);
	free(payload);
	atomic_fetch_add(&b->producers_done, 1);
	check_end(b);
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
	const char *pl = r->body;
	uint32_t magic, id;
	uint64_t seq, ts, run, bit;

	atomic_fetch_add(&b->delivered, 1);
	if (r->body_len != b->o.size)
		goto bad;
	memcpy(&magic, pl, 4);
	memcpy(&id, pl + 4, 4);
	memcpy(&seq, pl + 8, 8);
	memcpy(&ts, pl + 16, 8);
	memcpy(&run, pl + 24, 8);
	if (magic != PAYLOAD_MAGIC || run != b->run_id ||
	    id >= b->o.producers || seq >= b->quota[id])
		goto bad;
	hist_add(&w->h, now_ns() - ts);
	bit = 1ull << (seq % 64);
	if (atomic_fetch_or(&b->seen[id][seq / 64], bit) & bit) {
		atomic_fetch_add(&b->dups, 1);
		return 0;
	}
	return 1;
bad:
	count_error(b, "reserve", bad_job, strlen(bad_job));
	return 0;
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
		is_last = should_stop(b);
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
				atomic_fetch_add(&b->acked, 1);
				check_end(b);
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

static void
usage(void)
{
	fprintf(stderr, "usage: beanstalkd-bench --port PORT [--host H] "
			"[--mode publish|e2e|latency]\n"
			"       [--producers P] [--consumers C] [--messages N] "
			"[--size S] [--window W]\n"
			"       [--max-secs T]\n");
	exit(1);
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	int has_p = 0, has_c = 0, has_n = 0;

	o->mode = MODE_E2E;
	o->producers = 4;
	o->consumers = 4;
	o->window = 64;
	o->messages = 200000;
	o->size = 256;
	o->host = "127.0.0.1";
	o->port = NULL;
	o->max_secs = 60;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(f, "--mode") == 0) {
			unsigned m;

			for (m = 0; m < 3 && strcmp(v, mode_names[m]); m++)
				;
			if (m == 3)
				usage();
			o->mode = (enum mode)m;
		} else if (strcmp(f, "--producers") == 0) {
			o->producers = (unsigned)atoi(v);
			has_p = 1;
		} else if (strcmp(f, "--consumers") == 0) {
			o->consumers = (unsigned)atoi(v);
			has_c = 1;
		} else if (strcmp(f, "--messages") == 0) {
			o->messages = strtoull(v, NULL, 10);
			has_n = 1;
		} else if (strcmp(f, "--size") == 0) {
			o->size = strtoull(v, NULL, 10);
		} else if (strcmp(f, "--window") == 0) {
			o->window = (unsigned)atoi(v);
		} else if (strcmp(f, "--host") == 0) {
			o->host = v;
		} else if (strcmp(f, "--port") == 0) {
			o->port = v;
		} else if (strcmp(f, "--max-secs") == 0) {
			o->max_secs = atof(v);
		} else {
			usage();
		}
	}
	if (o->mode == MODE_LATENCY) {
		o->window = 1;
		if (!has_p)
			o->producers = 1;
		if (!has_c)
			o->consumers = 1;
		if (!has_n)
			o->messages = 20000;
	}
	if (o->mode == MODE_PUBLISH)
		o->consumers = 0;
	/* A producer's whole window of puts must fit its output buffer. */
	if (o->port == NULL || o->producers == 0 || o->window == 0 ||
	    o->size < HDR_BYTES || o->size > BUF_BYTES / 2 ||
	    (uint64_t)o->window * (o->size + CMD_BYTES) > BUF_BYTES ||
	    o->messages < o->producers ||
	    (o->mode != MODE_PUBLISH && o->consumers == 0))
		usage();
}

int
main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct worker *ws;
	struct conn admin;
	struct hist confirm, deliver;
	unsigned nw;
	uint64_t end, msgs, missing = 0, dups, errors, stored = 0;
	double secs, rate;
	int is_complete;
	char cmd[128], want[128];

	if (b == NULL)
		die("calloc");
	parse_args(argc, argv, &b->o);
	b->run_id = now_ns() ^ ((uint64_t)getpid() << 40);
	snprintf(b->tube, sizeof(b->tube), "bench-%016" PRIx64, b->run_id);
	nw = b->o.producers + b->o.consumers;
	ws = calloc(nw, sizeof(*ws));
	b->quota = calloc(b->o.producers, sizeof(*b->quota));
	b->seen = calloc(b->o.producers, sizeof(*b->seen));
	if (ws == NULL || b->quota == NULL || b->seen == NULL)
		die("calloc");
	for (unsigned p = 0; p < b->o.producers; p++) {
		b->quota[p] = b->o.messages / b->o.producers +
			      (p < b->o.messages % b->o.producers);
		b->seen[p] = calloc(b->quota[p] / 64 + 1, sizeof(uint64_t));
		if (b->seen[p] == NULL)
			die("calloc");
	}
	if (conn_open(&admin, b->o.host, b->o.port, NULL) < 0) {
		snprintf(cmd, sizeof(cmd), "connect %s:%s", b->o.host,
			 b->o.port);
		die(cmd);
	}
	/*
	 * Setup is not timed: every connection is in its tube first. Until
	 * the workers run, a silent server is a timeout as for admin.
	 */
	for (unsigned i = 0; i < nw; i++) {
		struct conn *c = &ws[i].c;

		ws[i].b = b;
		ws[i].id = i < b->o.producers ? i : i - b->o.producers;
		hist_init(&ws[i].h);
		if (conn_open(c, b->o.host, b->o.port, NULL) < 0)
			die("connect");
		if (i < b->o.producers) {
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
	b->start_ns = now_ns();
	for (unsigned i = 0; i < nw; i++) {
		if (pthread_create(&ws[i].thread, NULL,
				   i < b->o.producers ? producer_main
						      : consumer_main,
				   &ws[i]) != 0)
			die("pthread_create");
	}
	{
		uint64_t deadline =
			b->start_ns + (uint64_t)(b->o.max_secs * 1e9);
		uint64_t next_progress = b->start_ns + 2000000000ull;

		while (atomic_load(&b->end_ns) == 0) {
			struct timespec ts = { 0, 20000000 };
			uint64_t t;

			nanosleep(&ts, NULL);
			t = now_ns();
			if (t >= deadline) {
				fprintf(stderr, "beanstalkd-bench: --max-secs "
						"reached, stopping\n");
				atomic_store(&b->is_stopping, 1);
				break;
			}
			if (t >= next_progress) {
				fprintf(stderr,
					"progress: %5.1fs published=%" PRIu64
					" confirmed=%" PRIu64
					" delivered=%" PRIu64
					" deleted=%" PRIu64 "\n",
					(double)(t - b->start_ns) / 1e9,
					atomic_load(&b->published),
					atomic_load(&b->confirmed),
					atomic_load(&b->delivered),
					atomic_load(&b->acked));
				next_progress += 1000000000ull;
			}
		}
	}
	end = atomic_load(&b->end_ns);
	is_complete = end != 0;
	if (!is_complete)
		end = now_ns();
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
	for (unsigned i = 0; i < nw; i++)
		pthread_join(ws[i].thread, NULL);
	hist_init(&confirm);
	hist_init(&deliver);
	for (unsigned i = 0; i < nw; i++)
		hist_merge(i < b->o.producers ? &confirm : &deliver, &ws[i].h);
	dups = atomic_load(&b->dups);
	if (b->o.consumers > 0) {
		msgs = atomic_load(&b->acked);
		for (unsigned p = 0; p < b->o.producers; p++) {
			for (uint64_t s = 0; s < b->quota[p]; s++) {
				if (!(atomic_load(&b->seen[p][s / 64]) &
				      (1ull << (s % 64))))
					missing++;
			}
		}
	} else {
		stored = tube_ready(&admin, b->tube);
		msgs = atomic_load(&b->confirmed);
		/* Fewer or more ready jobs than sent: either is a miss. */
		missing = stored > b->o.messages ? stored - b->o.messages
						 : b->o.messages - stored;
	}
	errors = atomic_load(&b->errors);
	secs = (double)(end - b->start_ns) / 1e9;
	rate = (double)msgs / secs;
	printf("beanstalkd-bench %s: %u producers (window %u), %u consumers, "
	       "%zu-byte messages\n",
	       mode_names[b->o.mode], b->o.producers, b->o.window,
	       b->o.consumers, b->o.size);
	printf("  %" PRIu64 " messages in %.3f s: %.0f msg/s%s\n", msgs, secs,
	       rate, is_complete ? "" : " (INCOMPLETE)");
	printf("  put->INSERTED us: p50 %.0f p99 %.0f p99.9 %.0f\n",
	       hist_quantile_us(&confirm, 0.5),
	       hist_quantile_us(&confirm, 0.99),
	       hist_quantile_us(&confirm, 0.999));
	if (b->o.consumers > 0)
		printf("  put->delivery us: p50 %.0f p99 %.0f p99.9 %.0f\n",
		       hist_quantile_us(&deliver, 0.5),
		       hist_quantile_us(&deliver, 0.99),
		       hist_quantile_us(&deliver, 0.999));
	else
		printf("  stats-tube: %" PRIu64 " jobs ready\n", stored);
	printf("  %s: %" PRIu64 " duplicates, %" PRIu64 " missing, %" PRIu64
	       " errors\n",
	       dups == 0 && missing == 0 && errors == 0 ? "OK" : "PROBLEM",
	       dups, missing, errors);
	printf("RESULT system=beanstalkd mode=%s producers=%u consumers=%u "
	       "window=%u size=%zu msgs=%" PRIu64 " secs=%.3f "
	       "msgs_per_s=%.0f MB_per_s=%.2f confirm_p50_us=%.0f "
	       "confirm_p99_us=%.0f confirm_p999_us=%.0f "
	       "deliver_p50_us=%.0f deliver_p99_us=%.0f "
	       "deliver_p999_us=%.0f dups=%" PRIu64 " missing=%" PRIu64
	       " complete=%d errors=%" PRIu64,
	       mode_names[b->o.mode], b->o.producers, b->o.consumers,
	       b->o.window, b->o.size, msgs, secs, rate,
	       rate * (double)b->o.size / 1e6, hist_quantile_us(&confirm, 0.5),
	       hist_quantile_us(&confirm, 0.99),
	       hist_quantile_us(&confirm, 0.999),
	       hist_quantile_us(&deliver, 0.5),
	       hist_quantile_us(&deliver, 0.99),
	       hist_quantile_us(&deliver, 0.999), dups, missing, is_complete,
	       errors);
	if (b->o.consumers == 0)
		printf(" stored=%" PRIu64, stored);
	printf("\n");
	for (unsigned i = 0; i < nw; i++)
		conn_close(&ws[i].c);
	conn_close(&admin);
	return is_complete && missing == 0 && errors == 0 ? 0 : 2;
}
