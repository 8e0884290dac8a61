/*
 * redis_streams_bench.c: the Redis Streams side of the comparison in
 * docs/benchmarks.md. It speaks RESP directly over TCP (no client
 * library) and measures the same things as ringmq-bench, with the same
 * payload (run id, producer, sequence, send time) and the same RESULT line.
 *
 *   producers  each pipelines "XADD key * d <payload>" keeping --window
 *              replies outstanding on its own connection;
 *   consumers  each loops "XREADGROUP GROUP g cN COUNT 64 BLOCK 1000
 *              STREAMS key >" and pipelines one XACK per message (sent with
 *              the next XREADGROUP); e2e ends at the last XACK reply.
 *   publish    producers only; ends at the last XADD reply; XLEN checks.
 *   latency    window 1, one producer and one consumer by default.
 *
 * Durability is the server's business (appendonly / appendfsync), set by
 * scripts/bench-compare. Not part of the product build:
 *   cc -O2 -pthread -o redis-bench bench/redis_streams_bench.c \
 *      tools/bench/hist.c -Itools -lm
 */
#include "bench/hist.h"

#include <arpa/inet.h>
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
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MAGIC 0x42514d52u
#define HDR_BYTES     32
#define READ_COUNT    64
#define BUF_BYTES     (4u << 20)

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
	char key[64];
	uint64_t run_id;
	uint64_t start_ns;
	_Atomic uint64_t end_ns;
	atomic_int is_stopping;
	atomic_uint producers_done;
	uint64_t *quota;
	_Atomic uint64_t **seen;
	_Atomic uint64_t published, confirmed, delivered, dups, acked;
};

/* A connection with its buffers (owned). */
struct conn {
	int fd;
	char *out;
	size_t out_len;
	char *in;
	size_t in_len, in_pos;
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
	fprintf(stderr, "redis-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
conn_open(struct conn *c, const char *host, const char *port)
{
	struct addrinfo hints = { 0 }, *ai;
	int one = 1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->out = malloc(BUF_BYTES);
	c->in = malloc(BUF_BYTES);
	if (c->out == NULL || c->in == NULL)
		return -1;
	c->out_len = c->in_len = c->in_pos = 0;
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

/* Appends one command (argv of bulk strings) to the output buffer. */
static void
cmd_add(struct conn *c, int argc, const char *const *argv, const size_t *lens)
{
	c->out_len += (size_t)sprintf(c->out + c->out_len, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		c->out_len += (size_t)sprintf(c->out + c->out_len, "$%zu\r\n",
					      lens[i]);
		memcpy(c->out + c->out_len, argv[i], lens[i]);
		c->out_len += lens[i];
		memcpy(c->out + c->out_len, "\r\n", 2);
		c->out_len += 2;
	}
}

static void
cmd_addv(struct conn *c, int argc, const char *const *argv)
{
	size_t lens[16];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	cmd_add(c, argc, argv, lens);
}

static void
conn_flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->out_len) {
		ssize_t n = write(c->fd, c->out + off, c->out_len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
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

	if (c->in_pos > 0) {
		memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
		c->in_len -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->in_len == BUF_BYTES) {
		fprintf(stderr, "redis-bench: reply too large\n");
		exit(1);
	}
	do {
		n = read(c->fd, c->in + c->in_len, BUF_BYTES - c->in_len);
	} while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n == 0)
			errno = ECONNRESET;
		die("read");
	}
	c->in_len += (size_t)n;
}

/* The end of the line starting at pos, or 0 when incomplete. */
static size_t
line_end(const struct conn *c, size_t pos)
{
	for (size_t i = pos; i + 1 < c->in_len; i++) {
		if (c->in[i] == '\r' && c->in[i + 1] == '\n')
			return i;
	}
	return 0;
}

/* Skips one reply at *pos: 1 complete, 0 incomplete. */
static int
resp_skip(const struct conn *c, size_t *pos)
{
	size_t e;
	long long n;

	if (*pos >= c->in_len)
		return 0;
	e = line_end(c, *pos);
	if (e == 0)
		return 0;
	n = strtoll(c->in + *pos + 1, NULL, 10);
	switch (c->in[*pos]) {
	case '$':
		if (n < 0) {
			*pos = e + 2;
			return 1;
		}
		if (e + 2 + (size_t)n + 2 > c->in_len)
			return 0;
		*pos = e + 2 + (size_t)n + 2;
		return 1;
	case '*':
		*pos = e + 2;
		for (long long i = 0; i < n; i++) {
			if (!resp_skip(c, pos))
				return 0;
		}
		return 1;
	default: *pos = e + 2; return 1;
	}
}

/* Waits for one complete reply; returns its start, consumes it. */
static size_t
reply_next(struct conn *c)
{
	for (;;) {
		size_t pos = c->in_pos;

		if (resp_skip(c, &pos)) {
			size_t start = c->in_pos;

			if (c->in[start] == '-') {
				fprintf(stderr,
					"redis-bench: error reply: %.*s\n",
					(int)(line_end(c, start) - start),
					c->in + start);
				exit(1);
			}
			c->in_pos = pos;
			return start;
		}
		conn_fill(c);
	}
}

/* Header value of the element at *pos ($ or *), moving past its line. */
static long long
elem_head(const struct conn *c, size_t *pos, char *type)
{
	size_t e = line_end(c, *pos);
	long long n = strtoll(c->in + *pos + 1, NULL, 10);

	*type = c->in[*pos];
	*pos = e + 2;
	return n;
}

/* A bulk string at *pos: its bytes and length; moves past it. */
static const char *
elem_bulk(const struct conn *c, size_t *pos, size_t *lenp)
{
	char t;
	long long n = elem_head(c, pos, &t);
	const char *p = c->in + *pos;

	if (t != '$' || n < 0) {
		*lenp = 0;
		return NULL;
	}
	*lenp = (size_t)n;
	*pos += (size_t)n + 2;
	return p;
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
	const char *argv[5] = { "XADD", b->key, "*", "d", (char *)payload };
	size_t lens[5] = { 4, strlen(b->key), 1, 1, b->o.size };
	uint32_t magic = PAYLOAD_MAGIC, id = w->id;

	if (sent == NULL || payload == NULL)
		die("malloc");
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
			cmd_add(&w->c, 5, argv, lens);
			next++;
			atomic_fetch_add(&b->published, 1);
		}
		conn_flush(&w->c);
		/* replies come in order on one connection */
		do {
			(void)reply_next(&w->c);
			hist_add(&w->h, now_ns() - sent[done % b->o.window]);
			done++;
			atomic_fetch_add(&b->confirmed, 1);
		} while (w->c.in_pos < w->c.in_len && done < next);
	}
	free(sent);
	free(payload);
	atomic_fetch_add(&b->producers_done, 1);
	check_end(b);
	return NULL;
}

/* Handles one XREADGROUP reply: queues an XACK per entry. */
static unsigned
consume_reply(struct worker *w, size_t pos)
{
	struct bench *b = w->b;
	struct conn *c = &w->c;
	char t;
	long long nstreams = elem_head(c, &pos, &t);
	unsigned got = 0;

	if (t != '*' || nstreams <= 0)
		return 0;	      /* nil: BLOCK timed out */
	(void)elem_head(c, &pos, &t); /* [key, entries] */
	{
		size_t klen;

		(void)elem_bulk(c, &pos, &klen);
	}
	long long n = elem_head(c, &pos, &t);

	for (long long i = 0; i < n; i++) {
		size_t idlen, flen, plen;
		const char *eid, *pl;
		const char *argv[4] = { "XACK", b->key, "g", NULL };
		size_t lens[4] = { 4, strlen(b->key), 1, 0 };
		uint32_t magic, id;
		uint64_t seq, ts, run;

		(void)elem_head(c, &pos, &t); /* [id, fields] */
		eid = elem_bulk(c, &pos, &idlen);
		(void)elem_head(c, &pos, &t); /* [d, payload] */
		(void)elem_bulk(c, &pos, &flen);
		pl = elem_bulk(c, &pos, &plen);
		atomic_fetch_add(&b->delivered, 1);
		if (pl != NULL && plen >= HDR_BYTES) {
			memcpy(&magic, pl, 4);
			memcpy(&id, pl + 4, 4);
			memcpy(&seq, pl + 8, 8);
			memcpy(&ts, pl + 16, 8);
			memcpy(&run, pl + 24, 8);
			if (magic == PAYLOAD_MAGIC && run == b->run_id &&
			    id < b->o.producers && seq < b->quota[id]) {
				uint64_t bit = 1ull << (seq % 64);

				hist_add(&w->h, now_ns() - ts);
				if (atomic_fetch_or(&b->seen[id][seq / 64],
						    bit) &
				    bit)
					atomic_fetch_add(&b->dups, 1);
			}
		}
		argv[3] = eid;
		lens[3] = idlen;
		cmd_add(c, 4, argv, lens);
		got++;
	}
	return got;
}

static void *
consumer_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	char cname[32], count[16];
	const char *rd[11] = { "XREADGROUP", "GROUP", "g",     cname,
			       "COUNT",	     count,   "BLOCK", "1000",
			       "STREAMS",    b->key,  ">" };

	snprintf(cname, sizeof(cname), "c%u", w->id);
	snprintf(count, sizeof(count), "%d", READ_COUNT);
	cmd_addv(&w->c, 11, rd);
	conn_flush(&w->c);
	/* Exactly one XREADGROUP is outstanding at the top of the loop. */
	for (;;) {
		unsigned got = consume_reply(w, reply_next(&w->c));
		int is_last = should_stop(b);

		/* The XACKs go first, then the next read, in one write. */
		if (!is_last)
			cmd_addv(&w->c, 11, rd);
		conn_flush(&w->c);
		for (unsigned i = 0; i < got; i++) {
			(void)reply_next(&w->c);
			atomic_fetch_add(&b->acked, 1);
		}
		if (got > 0)
			check_end(b);
		if (is_last)
			break;
	}
	return NULL;
}

static uint64_t
simple_cmd_int(struct conn *c, int argc, const char *const *argv)
{
	size_t at;

	cmd_addv(c, argc, argv);
	conn_flush(c);
	at = reply_next(c);
	return (uint64_t)strtoll(c->in + at + 1, NULL, 10);
}

static void
usage(void)
{
	fprintf(stderr, "usage: redis-bench --port PORT [--host H] [--mode "
			"publish|e2e|latency]\n"
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
	if (o->port == NULL || o->producers == 0 || o->window == 0 ||
	    o->size < HDR_BYTES || o->messages < o->producers ||
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
	uint64_t end, msgs, missing = 0, dups;
	double secs, rate;
	int is_complete;

	if (b == NULL)
		die("calloc");
	parse_args(argc, argv, &b->o);
	b->run_id = now_ns() ^ ((uint64_t)getpid() << 40);
	snprintf(b->key, sizeof(b->key), "bench-%08" PRIx64,
		 b->run_id & 0xffffffffu);
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
	if (conn_open(&admin, b->o.host, b->o.port) < 0)
		die("connect");
	if (b->o.consumers > 0) {
		const char *g[] = { "XGROUP", "CREATE", b->key,
				    "g",      "$",	"MKSTREAM" };

		cmd_addv(&admin, 6, g);
		conn_flush(&admin);
		(void)reply_next(&admin);
	}
	for (unsigned i = 0; i < nw; i++) {
		ws[i].b = b;
		ws[i].id = i < b->o.producers ? i : i - b->o.producers;
		hist_init(&ws[i].h);
		if (conn_open(&ws[i].c, b->o.host, b->o.port) < 0)
			die("connect");
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
				fprintf(stderr, "redis-bench: --max-secs "
						"reached, stopping\n");
				atomic_store(&b->is_stopping, 1);
				break;
			}
			if (t >= next_progress) {
				fprintf(stderr,
					"progress: %5.1fs published=%" PRIu64
					" confirmed=%" PRIu64
					" delivered=%" PRIu64 " acked=%" PRIu64
					"\n",
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
	/* Consumers blocked in XREADGROUP return within BLOCK 1000. */
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
		const char *xl[] = { "XLEN", b->key };
		uint64_t stored = simple_cmd_int(&admin, 2, xl);

		msgs = atomic_load(&b->confirmed);
		missing = stored < b->o.messages ? b->o.messages - stored : 0;
		dups = stored > b->o.messages ? stored - b->o.messages : 0;
	}
	{
		const char *del[] = { "DEL", b->key };

		(void)simple_cmd_int(&admin, 2, del);
	}
	secs = (double)(end - b->start_ns) / 1e9;
	rate = (double)msgs / secs;
	printf("redis-bench %s: %u producers (window %u), %u consumers, "
	       "%zu-byte messages\n",
	       mode_names[b->o.mode], b->o.producers, b->o.window,
	       b->o.consumers, b->o.size);
	printf("  %" PRIu64 " messages in %.3f s: %.0f msg/s%s\n", msgs, secs,
	       rate, is_complete ? "" : " (INCOMPLETE)");
	printf("  XADD->reply us: p50 %.0f p99 %.0f p99.9 %.0f\n",
	       hist_quantile_us(&confirm, 0.5),
	       hist_quantile_us(&confirm, 0.99),
	       hist_quantile_us(&confirm, 0.999));
	if (b->o.consumers > 0)
		printf("  XADD->delivery us: p50 %.0f p99 %.0f p99.9 %.0f\n",
		       hist_quantile_us(&deliver, 0.5),
		       hist_quantile_us(&deliver, 0.99),
		       hist_quantile_us(&deliver, 0.999));
	printf("  %s: %" PRIu64 " duplicates, %" PRIu64 " missing\n",
	       dups == 0 && missing == 0 ? "OK" : "PROBLEM", dups, missing);
	printf("RESULT system=redis mode=%s producers=%u consumers=%u "
	       "window=%u size=%zu msgs=%" PRIu64 " secs=%.3f "
	       "msgs_per_s=%.0f MB_per_s=%.2f confirm_p50_us=%.0f "
	       "confirm_p99_us=%.0f confirm_p999_us=%.0f "
	       "deliver_p50_us=%.0f deliver_p99_us=%.0f "
	       "deliver_p999_us=%.0f dups=%" PRIu64 " missing=%" PRIu64
	       " complete=%d\n",
	       mode_names[b->o.mode], b->o.producers, b->o.consumers,
	       b->o.window, b->o.size, msgs, secs, rate,
	       rate * (double)b->o.size / 1e6, hist_quantile_us(&confirm, 0.5),
	       hist_quantile_us(&confirm, 0.99),
	       hist_quantile_us(&confirm, 0.999),
	       hist_quantile_us(&deliver, 0.5),
	       hist_quantile_us(&deliver, 0.99),
	       hist_quantile_us(&deliver, 0.999), dups, missing, is_complete);
	for (unsigned i = 0; i < nw; i++)
		conn_close(&ws[i].c);
	conn_close(&admin);
	return is_complete && missing == 0 ? 0 : 2;
}
