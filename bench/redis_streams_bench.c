/*
 * redis_streams_bench.c: the Redis Streams side of the comparison in
 * docs/benchmarks.md. It speaks RESP directly over TCP (no client
 * library) and measures the same things as ringmq-bench, with the same
 * payload (run id, producer, sequence, send time) and the same RESULT line.
 *
 *   producers  each pipelines "XADD key * d <payload>" keeping --window
 *              replies outstanding on its own connection;
 *   consumers  each loops "XREADGROUP GROUP g cN COUNT <--read-count,
 *              default 64> BLOCK 1000 STREAMS key >" and pipelines, sent
 *              with the next XREADGROUP, one XACK per message (--ack
 *              each, the default) or one XACK naming every id of the reply
 *              (--ack multi, as a tuned client acks); e2e ends at the last
 *              XACK reply.
 *   publish    producers only; ends at the last XADD reply; XLEN checks.
 *   latency    window 1, one producer and one consumer by default.
 *
 * Durability is the server's business (appendonly / appendfsync), set by
 * scripts/bench-compare. Not part of the product build:
 *   cc -O2 -pthread -o redis-bench bench/redis_streams_bench.c \
 *      bench/driver.c bench/hist.c -lm
 */
#include "driver.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char driver_name[] = "redis-bench";

struct bench {
	struct run r;
	char key[64];
};

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

/* Skips one reply at *pos: 1 complete, 0 incomplete. */
static int
resp_skip(const struct conn *c, size_t *pos)
{
	size_t e;
	long long n;

	if (*pos >= c->in_len)
		return 0;
	e = line_end(c, *pos);
	if (e == SIZE_MAX)
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
	const char *argv[5] = { "XADD", b->key, "*", "d", (char *)payload };
	size_t lens[5] = { 4, strlen(b->key), 1, 1, r->o.size };

	if (sent == NULL)
		die("malloc");
	while (done < quota && !atomic_load(&r->is_stopping)) {
		while (next - done < r->o.window && next < quota) {
			sent[next % r->o.window] = payload_stamp(payload, next);
			cmd_add(&w->c, 5, argv, lens);
			next++;
			atomic_fetch_add(&r->published, 1);
		}
		conn_flush(&w->c);
		/* replies come in order on one connection */
		do {
			(void)reply_next(&w->c);
			hist_add(&w->h, now_ns() - sent[done % r->o.window]);
			done++;
			atomic_fetch_add(&r->confirmed, 1);
		} while (w->c.in_pos < w->c.in_len && done < next);
	}
	free(sent);
	free(payload);
	producer_done(r);
	return NULL;
}

/* Handles one XREADGROUP reply: queues an XACK per entry, or one XACK
 * of all its ids (is_ack_multi). @return the entries; *acks the XACKs
 * queued. */
static unsigned
consume_reply(struct worker *w, size_t pos, unsigned *acks)
{
	struct bench *b = w->b;
	struct conn *c = &w->c;
	char t;
	long long nstreams = elem_head(c, &pos, &t);
	unsigned got = 0;
	int is_multi = b->r.o.is_ack_multi;
	const char **argv = NULL;
	size_t *lens = NULL;

	*acks = 0;
	if (t != '*' || nstreams <= 0)
		return 0;	      /* nil: BLOCK timed out */
	(void)elem_head(c, &pos, &t); /* [key, entries] */
	{
		size_t klen;

		(void)elem_bulk(c, &pos, &klen);
	}
	long long n = elem_head(c, &pos, &t);

	if (is_multi && n > 0) {
		argv = malloc((size_t)(n + 3) * sizeof(*argv));
		lens = malloc((size_t)(n + 3) * sizeof(*lens));
		if (argv == NULL || lens == NULL)
			die("malloc");
		argv[0] = "XACK";
		argv[1] = b->key;
		argv[2] = "g";
		lens[0] = 4;
		lens[1] = strlen(b->key);
		lens[2] = 1;
	}
	for (long long i = 0; i < n; i++) {
		size_t idlen, flen, plen;
		const char *eid, *pl;
		const char *one[4] = { "XACK", b->key, "g", NULL };
		size_t one_lens[4] = { 4, strlen(b->key), 1, 0 };

		(void)elem_head(c, &pos, &t); /* [id, fields] */
		eid = elem_bulk(c, &pos, &idlen);
		(void)elem_head(c, &pos, &t); /* [d, payload] */
		(void)elem_bulk(c, &pos, &flen);
		pl = elem_bulk(c, &pos, &plen);
		atomic_fetch_add(&b->r.delivered, 1);
		/* Not a payload of this run: acked anyway, not counted. */
		(void)payload_check(&b->r, pl, plen, &w->h);
		if (is_multi) {
			argv[3 + i] = eid;
			lens[3 + i] = idlen;
		} else {
			one[3] = eid;
			one_lens[3] = idlen;
			cmd_add(c, 4, one, one_lens);
			(*acks)++;
		}
		got++;
	}
	if (is_multi && n > 0) {
		cmd_add(c, (int)(n + 3), argv, lens);
		(*acks)++;
	}
	free(argv);
	free(lens);
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
	snprintf(count, sizeof(count), "%u", b->r.o.read_count);
	cmd_addv(&w->c, 11, rd);
	conn_flush(&w->c);
	/* Exactly one XREADGROUP is outstanding at the top of the loop. */
	for (;;) {
		unsigned acks;
		unsigned got = consume_reply(w, reply_next(&w->c), &acks);
		int is_last = should_stop(&b->r);

		/* The XACKs go first, then the next read, in one write. */
		if (!is_last)
			cmd_addv(&w->c, 11, rd);
		conn_flush(&w->c);
		for (unsigned i = 0; i < acks; i++)
			(void)reply_next(&w->c);
		atomic_fetch_add(&b->r.acked, got);
		if (got > 0)
			check_end(&b->r);
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

int
main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct run *r;
	struct worker *ws;
	struct conn admin;
	struct result res;
	unsigned nw;

	if (b == NULL)
		die("calloc");
	r = &b->r;
	parse_args(argc, argv, &r->o);
	run_init(r);
	snprintf(b->key, sizeof(b->key), "bench-%08" PRIx64,
		 r->run_id & 0xffffffffu);
	nw = r->o.producers + r->o.consumers;
	ws = calloc(nw, sizeof(*ws));
	if (ws == NULL)
		die("calloc");
	if (conn_open(&admin, r->o.host, r->o.port, 0) < 0)
		die("connect");
	if (r->o.consumers > 0) {
		const char *g[] = { "XGROUP", "CREATE", b->key,
				    "g",      "$",	"MKSTREAM" };

		cmd_addv(&admin, 6, g);
		conn_flush(&admin);
		(void)reply_next(&admin);
	}
	for (unsigned i = 0; i < nw; i++) {
		ws[i].b = b;
		ws[i].id = i < r->o.producers ? i : i - r->o.producers;
		hist_init(&ws[i].h);
		if (conn_open(&ws[i].c, r->o.host, r->o.port, 0) < 0)
			die("connect");
	}
	workers_start(r, ws, nw, producer_main, consumer_main);
	run_wait(r, "acked", &res);
	/* Consumers blocked in XREADGROUP return within BLOCK 1000. */
	run_collect(r, ws, nw, &res);
	if (r->o.consumers == 0) {
		const char *xl[] = { "XLEN", b->key };
		uint64_t stored = simple_cmd_int(&admin, 2, xl);

		res.missing =
			stored < r->o.messages ? r->o.messages - stored : 0;
		res.dups = stored > r->o.messages ? stored - r->o.messages : 0;
	}
	{
		const char *del[] = { "DEL", b->key };

		(void)simple_cmd_int(&admin, 2, del);
	}
	print_summary(r, &res, "XADD->reply", "XADD->delivery");
	print_checks(&res, res.dups == 0 && res.missing == 0);
	printf("\n");
	print_result(r, &res, "redis");
	printf("\n");
	for (unsigned i = 0; i < nw; i++)
		conn_close(&ws[i].c);
	conn_close(&admin);
	return res.is_complete && res.missing == 0 ? 0 : 2;
}
