/*
 * The examples of docs/protocol.md, replayed against a real broker, so that
 * the guide client authors write from cannot drift from what the broker
 * does.
 *
 * The guide's path comes from RINGMQ_PROTOCOL_GUIDE (set by meson). Two
 * kinds of marked blocks are read from it:
 *
 *  - "<!-- protocol-guide: partition-vectors -->", then a Markdown table:
 *    a header "| key | XXH64 | N1 | N2 | ... |" whose columns after the
 *    second are partition counts, and one row per key: the key as a
 *    quoted literal ("\xHH" is a byte, "\\" and "\"" escape), its XXH64
 *    with seed 0 in hex, and its partition for each count. Each row is
 *    checked against XXH64 and a jump hash written here from the .proto
 *    header, and against the broker: a publish with that key (and one
 *    with it as dedup id, when it can be one) to a queue of that many
 *    partitions must be confirmed on that partition.
 *
 *  - "<!-- protocol-guide: exchange NAME -->", then a fenced block of
 *    frames: "C->B" starts a frame the client sends, "B->C" one the broker
 *    sends, and indented lines continue it; each byte is two hex digits,
 *    ".." in a broker frame stands for a byte that varies; "#" starts a
 *    comment; "-- reconnect" closes the connection and opens another.
 *    Each exchange runs on a fresh broker over a raw socket: consecutive
 *    client frames leave in one write, and the broker must answer exactly
 *    the bytes of the broker frames that follow, and nothing else (a
 *    final ping must be answered next).
 *
 * A block that is missing, malformed or cut below the guide's present
 * size fails the test, as does any byte that differs; a failure names the
 * guide's line and shows both sides' bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "testlib.h"

#define WAIT_MS 5000

#define VECTORS_MARKER	"<!-- protocol-guide: partition-vectors -->"
#define EXCHANGE_MARKER "<!-- protocol-guide: exchange "

/* What the guide must hold at least, so that a block cut short fails. */
#define MIN_VECTOR_ROWS	  8
#define MIN_VECTOR_COUNTS 7
#define MIN_EXCHANGES	  2

#define MAX_KEY_BYTES	 256
#define MAX_ROWS	 64
#define MAX_COUNTS	 16
#define MAX_CELLS	 (MAX_COUNTS + 2)
#define MAX_FRAME_BYTES	 512
#define MAX_ITEMS	 64
#define MAX_NAME_BYTES	 64
#define MAX_LINE_BYTES	 1024
#define SENTINEL_REQUEST 0x7fff
#define SENTINEL_NONCE	 0x5e17

/* The guide, NUL-terminated; loaded once. */
static char *guide;

/* The broker and connection of the running test, for teardown to stop
 * and close when a check fails half-way. */
static struct harness_broker broker;
static int conn_fd = -1;

/* ------------------------------------------------------ the guide's text */

static void
guide_load(void)
{
	const char *path = getenv("RINGMQ_PROTOCOL_GUIDE");
	FILE *fp;
	long len;

	if (guide != NULL)
		return;
	if (path == NULL)
		fail_msg("RINGMQ_PROTOCOL_GUIDE is not set");
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len > 0);
	assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
	guide = malloc((size_t)len + 1);
	assert_non_null(guide);
	assert_int_equal(fread(guide, 1, (size_t)len, fp), (size_t)len);
	guide[len] = '\0';
	(void)fclose(fp); /* read only: nothing is lost */
}

/* 1-based line number of p in the guide, for messages. */
static int
line_of(const char *p)
{
	int n = 1;

	for (const char *q = guide; q < p; q++)
		n += *q == '\n';
	return n;
}

/* Copies the line at *p into buf (without its newline) and moves *p past
 * it. @return 0, or -1 at the end of the guide. */
static int
next_line(const char **p, char *buf, size_t cap)
{
	const char *s = *p;
	const char *e;
	size_t n;

	if (*s == '\0')
		return -1;
	e = strchr(s, '\n');
	if (e == NULL)
		e = s + strlen(s);
	n = (size_t)(e - s);
	if (n >= cap)
		fail_msg("protocol.md:%d: line over %zu bytes", line_of(s),
			 cap - 1);
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = *e == '\n' ? e + 1 : e;
	return 0;
}

static int
is_blank(const char *s)
{
	return s[strspn(s, " \t\r")] == '\0';
}

/* Trims spaces and one pair of backticks around s, in place. */
static char *
trim_cell(char *s)
{
	size_t n;

	s += strspn(s, " \t");
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	if (n >= 2 && s[0] == '`' && s[n - 1] == '`') {
		s[n - 1] = '\0';
		s++;
	}
	return s;
}

static int
hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* ---------------------------------------------------- partition vectors */

struct vector {
	uint8_t key[MAX_KEY_BYTES];
	size_t key_len;
	int is_dedup_ok; /* no NUL: may be sent as a dedup id too */
	uint64_t hash;
	uint32_t parts[MAX_COUNTS];
	int line;
};

struct vectors {
	uint32_t counts[MAX_COUNTS];
	size_t ncounts;
	struct vector rows[MAX_ROWS];
	size_t nrows;
};

/* Splits a table row "| a | b |" into its cells, in place. */
static size_t
split_row(char *line, char **cells, size_t cap, int at)
{
	size_t n = 0;
	char *p = line + strspn(line, " \t");

	if (*p != '|')
		fail_msg("protocol.md:%d: not a table row", at);
	p++;
	for (;;) {
		char *bar = strchr(p, '|');

		if (bar == NULL)
			break;
		*bar = '\0';
		if (n == cap)
			fail_msg("protocol.md:%d: more than %zu cells", at,
				 cap);
		cells[n++] = trim_cell(p);
		p = bar + 1;
	}
	if (!is_blank(p))
		fail_msg("protocol.md:%d: text after the last '|'", at);
	return n;
}

/* Decodes a quoted key literal into v. */
static void
parse_key(const char *s, struct vector *v)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		fail_msg("protocol.md:%d: key %s is not a quoted literal",
			 v->line, s);
	v->key_len = 0;
	v->is_dedup_ok = 1;
	for (size_t i = 1; i < n - 1; i++) {
		uint8_t byte = (uint8_t)s[i];

		/* An escape ends before the closing quote. */
		if (s[i] == '\\') {
			if (i + 2 < n &&
			    (s[i + 1] == '\\' || s[i + 1] == '"')) {
				byte = (uint8_t)s[++i];
			} else if (s[i + 1] == 'x' && i + 4 < n &&
				   hex_digit(s[i + 2]) >= 0 &&
				   hex_digit(s[i + 3]) >= 0) {
				byte = (uint8_t)(hex_digit(s[i + 2]) << 4 |
						 hex_digit(s[i + 3]));
				i += 3;
			} else {
				fail_msg("protocol.md:%d: bad escape in %s",
					 v->line, s);
			}
		} else if (s[i] == '"') {
			fail_msg("protocol.md:%d: unescaped quote in %s",
				 v->line, s);
		}
		if (v->key_len == MAX_KEY_BYTES)
			fail_msg("protocol.md:%d: key over %d bytes", v->line,
				 MAX_KEY_BYTES);
		if (byte == 0)
			v->is_dedup_ok = 0;
		v->key[v->key_len++] = byte;
	}
	if (v->key_len == 0)
		fail_msg("protocol.md:%d: an empty key is no key", v->line);
}

static uint64_t
parse_u64(const char *s, int base, int at)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, base);
	if (*s == '\0' || *end != '\0' || errno != 0 || *s == '-')
		fail_msg("protocol.md:%d: '%s' is not a number", at, s);
	return x;
}

static void
vectors_parse(struct vectors *vs)
{
	const char *p = strstr(guide, VECTORS_MARKER);
	char line[MAX_LINE_BYTES];
	char *cells[MAX_CELLS];
	size_t n;
	int at;

	memset(vs, 0, sizeof(*vs));
	if (p == NULL)
		fail_msg("protocol.md has no '%s'", VECTORS_MARKER);
	p += strlen(VECTORS_MARKER);
	(void)next_line(&p, line, sizeof(line)); /* the marker's own line */
	do {
		at = line_of(p);
		if (next_line(&p, line, sizeof(line)) < 0)
			fail_msg("protocol.md: no table after the marker");
	} while (is_blank(line));

	/* The header: key, hash, then the partition counts. */
	n = split_row(line, cells, MAX_CELLS, at);
	if (n < 3)
		fail_msg("protocol.md:%d: the table has no partition counts",
			 at);
	for (size_t i = 2; i < n; i++) {
		uint64_t count = parse_u64(cells[i], 10, at);

		if (count == 0 || count > 1024)
			fail_msg("protocol.md:%d: %s partitions", at, cells[i]);
		vs->counts[vs->ncounts++] = (uint32_t)count;
	}
	at = line_of(p);
	if (next_line(&p, line, sizeof(line)) < 0 ||
	    strspn(line, "|-: \t") != strlen(line))
		fail_msg("protocol.md:%d: no separator row", at);

	for (;;) {
		struct vector *v;

		at = line_of(p);
		if (next_line(&p, line, sizeof(line)) < 0 ||
		    line[strspn(line, " \t")] != '|')
			break;
		if (vs->nrows == MAX_ROWS)
			fail_msg("protocol.md:%d: over %d rows", at, MAX_ROWS);
		v = &vs->rows[vs->nrows++];
		v->line = at;
		if (split_row(line, cells, MAX_CELLS, at) != vs->ncounts + 2)
			fail_msg("protocol.md:%d: the row has not %zu cells",
				 at, vs->ncounts + 2);
		parse_key(cells[0], v);
		if (strncmp(cells[1], "0x", 2) != 0 || strlen(cells[1]) != 18)
			fail_msg("protocol.md:%d: hash %s is not 0x and 16 "
				 "hex digits",
				 at, cells[1]);
		v->hash = parse_u64(cells[1] + 2, 16, at);
		for (size_t i = 0; i < vs->ncounts; i++)
			v->parts[i] = (uint32_t)parse_u64(cells[i + 2], 10, at);
	}
	if (vs->nrows < MIN_VECTOR_ROWS || vs->ncounts < MIN_VECTOR_COUNTS)
		fail_msg("protocol.md: %zu vectors over %zu partition counts; "
			 "the guide has at least %d over %d",
			 vs->nrows, vs->ncounts, MIN_VECTOR_ROWS,
			 MIN_VECTOR_COUNTS);
}

/*
 * Jump consistent hash, written again from the .proto header rather than
 * taken from the broker: 64-bit wrapping multiply, a logical shift, and
 * the quotient in double precision, truncated.
 */
static uint32_t
guide_jump(uint64_t key, uint32_t n)
{
	int64_t b = -1, j = 0;

	while (j < (int64_t)n) {
		double step;

		b = j;
		key = key * UINT64_C(2862933555777941757) + 1;
		step = (double)(INT64_C(1) << 31) / (double)((key >> 33) + 1);
		j = (int64_t)((double)(b + 1) * step);
	}
	return (uint32_t)b;
}

static void
test_partition_vectors_follow_the_formula(void **state)
{
	static struct vectors vs;

	(void)state;
	guide_load();
	vectors_parse(&vs);
	for (size_t r = 0; r < vs.nrows; r++) {
		const struct vector *v = &vs.rows[r];
		uint64_t hash = XXH64(v->key, v->key_len, 0);

		if (hash != v->hash)
			fail_msg("protocol.md:%d: XXH64 is 0x%016llx, the "
				 "guide says 0x%016llx",
				 v->line, (unsigned long long)hash,
				 (unsigned long long)v->hash);
		for (size_t i = 0; i < vs.ncounts; i++) {
			uint32_t want = guide_jump(hash, vs.counts[i]);

			if (want != v->parts[i])
				fail_msg("protocol.md:%d: with %u partitions "
					 "the formula gives %u, the guide %u",
					 v->line, vs.counts[i], want,
					 v->parts[i]);
		}
	}
}

/* Starts a fresh broker with default settings and connects to it. */
static void
broker_start(void)
{
	memset(&broker, 0, sizeof(broker));
	broker.stdout_fd = -1;
	assert_int_equal(harness_start(&broker, NULL), 0);
	conn_fd = testlib_raw_open(broker.port);
}

static void
broker_stop(void)
{
	close(conn_fd);
	conn_fd = -1;
	assert_int_equal(harness_stop(&broker), 0);
	harness_cleanup(&broker);
}

/* After each test, also one that failed half-way: nothing left running. */
static int
teardown_broker(void **state)
{
	(void)state;
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
	harness_cleanup(&broker);
	return 0;
}

/* Sends f with request id rid on fd and returns the answer. */
static Ringmq__Frame *
raw_call(int fd, Ringmq__Frame *f, uint64_t rid)
{
	Ringmq__Frame *r;

	f->has_request_id = 1;
	f->request_id = rid;
	testlib_raw_send(fd, f);
	r = testlib_raw_recv(fd);
	assert_true(r->has_request_id);
	assert_int_equal(r->request_id, rid);
	return r;
}

static void
raw_create_queue(int fd, const char *name, uint32_t partitions, uint64_t rid)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueCreate qc = RINGMQ__QUEUE_CREATE__INIT;
	Ringmq__Frame *r;

	qc.name = (char *)name;
	qc.has_partitions = 1;
	qc.partitions = partitions;
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_CREATE;
	f.queue_create = &qc;
	r = raw_call(fd, &f, rid);
	if (r->body_case != RINGMQ__FRAME__BODY_DONE)
		fail_msg("queue create %s: no Done", name);
	ringmq__frame__free_unpacked(r, NULL);
}

/* Publishes every key of vs (as key, or as dedup id when is_dedup) to
 * queue in one batch and checks the partition of each. */
static void
raw_check_routing(int fd, const char *queue, const struct vectors *vs,
		  size_t count_index, int is_dedup, uint64_t rid)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
	Ringmq__Message msgs[MAX_ROWS];
	Ringmq__Message *mp[MAX_ROWS];
	char ids[MAX_ROWS][MAX_KEY_BYTES + 1];
	const struct vector *sent[MAX_ROWS];
	Ringmq__Frame *r;
	size_t n = 0;

	for (size_t i = 0; i < vs->nrows; i++) {
		const struct vector *v = &vs->rows[i];
		Ringmq__Message *m = &msgs[n];

		if (is_dedup && !v->is_dedup_ok)
			continue;
		ringmq__message__init(m);
		m->payload.data = (uint8_t *)"v";
		m->payload.len = 1;
		if (is_dedup) {
			memcpy(ids[n], v->key, v->key_len);
			ids[n][v->key_len] = '\0';
			m->dedup_id = ids[n];
		} else {
			m->has_key = 1;
			m->key.data = (uint8_t *)v->key;
			m->key.len = v->key_len;
		}
		sent[n] = v;
		mp[n++] = m;
	}
	pub.queue = (char *)queue;
	pub.n_messages = n;
	pub.messages = mp;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	r = raw_call(fd, &f, rid);
	if (r->body_case != RINGMQ__FRAME__BODY_PUBLISH_OK)
		fail_msg("publish to %s: no PublishOk", queue);
	assert_int_equal(r->publish_ok->n_results, n);
	for (size_t i = 0; i < n; i++) {
		const Ringmq__PublishResult *res = r->publish_ok->results[i];

		if (res->code != RINGMQ__ERROR_CODE__OK)
			fail_msg("protocol.md:%d: publish refused: %s",
				 sent[i]->line,
				 res->message ? res->message : "");
		assert_true(res->has_partition);
		if (res->partition != sent[i]->parts[count_index])
			fail_msg("protocol.md:%d: with %u partitions the "
				 "broker routes this %s to %u, the guide says "
				 "%u",
				 sent[i]->line, vs->counts[count_index],
				 is_dedup ? "dedup id" : "key", res->partition,
				 sent[i]->parts[count_index]);
	}
	ringmq__frame__free_unpacked(r, NULL);
}

static void
test_partition_vectors_match_the_broker(void **state)
{
	static struct vectors vs;
	uint64_t rid = 1;

	(void)state;
	guide_load();
	vectors_parse(&vs);
	broker_start();
	(void)testlib_raw_hello(conn_fd, 0);
	for (size_t i = 0; i < vs.ncounts; i++) {
		char name[32];

		snprintf(name, sizeof(name), "vectors-%zu", i);
		raw_create_queue(conn_fd, name, vs.counts[i], ++rid);
		raw_check_routing(conn_fd, name, &vs, i, 0, ++rid);
		raw_check_routing(conn_fd, name, &vs, i, 1, ++rid);
	}
	broker_stop();
}

/* ------------------------------------------------------------ exchanges */

enum item_kind {
	ITEM_CLIENT,	/* bytes the client sends */
	ITEM_BROKER,	/* bytes the broker must send */
	ITEM_RECONNECT, /* a new connection */
};

struct item {
	enum item_kind kind;
	int line;
	uint8_t bytes[MAX_FRAME_BYTES];
	uint8_t is_masked[MAX_FRAME_BYTES]; /* 1: any byte will do */
	size_t len;
};

struct exchange {
	char name[MAX_NAME_BYTES];
	int line;
	struct item items[MAX_ITEMS];
	size_t nitems;
};

/* Adds the hex bytes of s to it; fails on anything else. */
static void
parse_bytes(struct item *it, const char *s, int at)
{
	while (*(s += strspn(s, " \t\r")) != '\0') {
		size_t n = strcspn(s, " \t\r");

		if (it->len == MAX_FRAME_BYTES)
			fail_msg("protocol.md:%d: frame over %d bytes", at,
				 MAX_FRAME_BYTES);
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (it->kind != ITEM_BROKER)
				fail_msg("protocol.md:%d: '..' in a frame the "
					 "client sends",
					 at);
			it->is_masked[it->len] = 1;
			it->bytes[it->len++] = 0;
		} else if (n == 2 && hex_digit(s[0]) >= 0 &&
			   hex_digit(s[1]) >= 0) {
			it->is_masked[it->len] = 0;
			it->bytes[it->len++] = (uint8_t)(hex_digit(s[0]) << 4 |
							 hex_digit(s[1]));
		} else {
			fail_msg("protocol.md:%d: '%.*s' is not a byte", at,
				 (int)n, s);
		}
		s += n;
	}
}

/* Checks that it is one whole frame: a length prefix that counts the
 * rest, and (from the client) a Frame that decodes. */
static void
check_frame(const struct item *it)
{
	uint32_t n;

	if (it->len < 5)
		fail_msg("protocol.md:%d: a frame of %zu bytes", it->line,
			 it->len);
	n = (uint32_t)it->bytes[0] << 24 | (uint32_t)it->bytes[1] << 16 |
	    (uint32_t)it->bytes[2] << 8 | it->bytes[3];
	if (!it->is_masked[0] && !it->is_masked[1] && !it->is_masked[2] &&
	    !it->is_masked[3] && n != it->len - 4)
		fail_msg("protocol.md:%d: the length prefix says %u, the "
			 "frame has %zu bytes after it",
			 it->line, n, it->len - 4);
	if (it->kind == ITEM_CLIENT) {
		Ringmq__Frame *f =
			ringmq__frame__unpack(NULL, it->len - 4, it->bytes + 4);

		if (f == NULL)
			fail_msg("protocol.md:%d: the frame does not decode",
				 it->line);
		ringmq__frame__free_unpacked(f, NULL);
	}
}

/* Parses the fenced block after the marker at p (just past its name). */
static void
exchange_parse(struct exchange *x, const char *p)
{
	char line[MAX_LINE_BYTES];
	struct item *cur = NULL;
	int at;

	(void)next_line(&p, line, sizeof(line)); /* the marker's own line */
	do {
		at = line_of(p);
		if (next_line(&p, line, sizeof(line)) < 0)
			fail_msg("protocol.md:%d: no block after the marker",
				 x->line);
	} while (is_blank(line));
	if (strncmp(line, "```", 3) != 0)
		fail_msg("protocol.md:%d: the marker is not followed by a "
			 "fenced block",
			 at);
	for (;;) {
		char *hash, *s;

		at = line_of(p);
		if (next_line(&p, line, sizeof(line)) < 0)
			fail_msg("protocol.md:%d: the block does not end",
				 x->line);
		if (strncmp(line, "```", 3) == 0)
			break;
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		if (is_blank(line))
			continue;
		s = line + strspn(line, " \t");
		if (strncmp(s, "-- reconnect", 12) == 0) {
			cur = NULL;
			if (x->nitems == MAX_ITEMS)
				fail_msg("protocol.md:%d: over %d items", at,
					 MAX_ITEMS);
			x->items[x->nitems].kind = ITEM_RECONNECT;
			x->items[x->nitems++].line = at;
			continue;
		}
		if (strncmp(s, "C->B", 4) == 0 || strncmp(s, "B->C", 4) == 0) {
			if (x->nitems == MAX_ITEMS)
				fail_msg("protocol.md:%d: over %d items", at,
					 MAX_ITEMS);
			cur = &x->items[x->nitems++];
			cur->kind = s[0] == 'C' ? ITEM_CLIENT : ITEM_BROKER;
			cur->line = at;
			cur->len = 0;
			s += 4;
		} else if (s == line || cur == NULL) {
			fail_msg("protocol.md:%d: neither a frame, its "
				 "continuation nor '-- reconnect'",
				 at);
		}
		parse_bytes(cur, s, at);
	}
	for (size_t i = 0; i < x->nitems; i++)
		if (x->items[i].kind != ITEM_RECONNECT)
			check_frame(&x->items[i]);
}

/* Every exchange of the guide; @return how many (into xs, up to cap). */
static size_t
exchanges_parse(struct exchange *xs, size_t cap)
{
	size_t n = 0;

	for (const char *p = strstr(guide, EXCHANGE_MARKER); p != NULL;
	     p = strstr(p, EXCHANGE_MARKER)) {
		const char *name = p + strlen(EXCHANGE_MARKER);
		const char *end = strstr(name, " -->");
		struct exchange *x = &xs[n];

		if (n == cap)
			fail_msg("protocol.md: over %zu exchanges", cap);
		if (end == NULL || end - name == 0 ||
		    end - name >= MAX_NAME_BYTES ||
		    memchr(name, '\n', (size_t)(end - name)) != NULL)
			fail_msg("protocol.md:%d: a marker without a name",
				 line_of(p));
		memset(x, 0, sizeof(*x));
		memcpy(x->name, name, (size_t)(end - name));
		x->line = line_of(p);
		exchange_parse(x, end);
		n++;
		p = end;
	}
	return n;
}

static void
write_all(int fd, const uint8_t *buf, size_t len)
{
	long long deadline = harness_now_ms() + WAIT_MS;

	while (len > 0) {
		ssize_t n;

		if (harness_now_ms() > deadline)
			fail_msg("could not send within %d ms", WAIT_MS);
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("write: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads exactly len bytes, within WAIT_MS. @return bytes read: fewer when
 * the broker closed the connection or the time ran out. */
static size_t
read_exactly(int fd, uint8_t *buf, size_t len)
{
	long long deadline = harness_now_ms() + WAIT_MS;
	size_t got = 0;

	while (got < len) {
		long long left = deadline - harness_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void
hex_of(const uint8_t *b, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%02x", i ? " " : "",
				      b[i]);
}

/* Reads the broker frames items[from, to) and compares them. */
static void
expect_frames(int fd, const struct exchange *x, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		const struct item *it = &x->items[i];
		static uint8_t got[MAX_FRAME_BYTES];
		static char want_hex[MAX_FRAME_BYTES * 3 + 1];
		static char got_hex[MAX_FRAME_BYTES * 3 + 1];
		size_t n = read_exactly(fd, got, it->len);

		for (size_t k = 0; k < it->len; k++) {
			if (k < n &&
			    (it->is_masked[k] || got[k] == it->bytes[k]))
				continue;
			hex_of(it->bytes, it->len, want_hex, sizeof(want_hex));
			hex_of(got, n, got_hex, sizeof(got_hex));
			fail_msg("exchange %s, protocol.md:%d: byte %zu "
				 "differs\n  guide:  %s\n  broker: %s%s",
				 x->name, it->line, k, want_hex, got_hex,
				 n < it->len ? " (and no more)" : "");
		}
	}
}

/* Sends a ping of the test's own; its pong must be the next frame, so
 * nothing came that the exchange did not show. */
static void
expect_nothing_more(int fd, const struct exchange *x)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping ping = RINGMQ__PING__INIT;
	Ringmq__Frame *r;

	ping.has_nonce = 1;
	ping.nonce = SENTINEL_NONCE;
	f.has_request_id = 1;
	f.request_id = SENTINEL_REQUEST;
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &ping;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	if (r->body_case != RINGMQ__FRAME__BODY_PONG ||
	    r->request_id != SENTINEL_REQUEST ||
	    r->pong->nonce != SENTINEL_NONCE)
		fail_msg("exchange %s: the broker sent a frame the guide "
			 "does not show (body %d, request_id %llu)",
			 x->name, (int)r->body_case,
			 (unsigned long long)r->request_id);
	ringmq__frame__free_unpacked(r, NULL);
}

static void
exchange_run(const struct exchange *x)
{
	static uint8_t out[MAX_FRAME_BYTES * MAX_ITEMS];
	size_t i = 0;

	broker_start();
	while (i < x->nitems) {
		const struct item *it = &x->items[i];
		size_t j = i, len = 0;

		if (it->kind == ITEM_RECONNECT) {
			close(conn_fd);
			conn_fd = testlib_raw_open(broker.port);
			i++;
			continue;
		}
		while (j < x->nitems && x->items[j].kind == it->kind)
			j++;
		if (it->kind == ITEM_CLIENT) {
			for (size_t k = i; k < j; k++) {
				memcpy(out + len, x->items[k].bytes,
				       x->items[k].len);
				len += x->items[k].len;
			}
			write_all(conn_fd, out, len);
		} else {
			expect_frames(conn_fd, x, i, j);
		}
		i = j;
	}
	expect_nothing_more(conn_fd, x);
	broker_stop();
}

static void
test_exchanges_replay_byte_for_byte(void **state)
{
	static struct exchange xs[8];
	size_t n;

	(void)state;
	guide_load();
	n = exchanges_parse(xs, sizeof(xs) / sizeof(xs[0]));
	if (n < MIN_EXCHANGES)
		fail_msg("protocol.md: %zu exchanges; the guide has at least "
			 "%d",
			 n, MIN_EXCHANGES);
	for (size_t i = 0; i < n; i++) {
		int has_client = 0, has_broker = 0;

		for (size_t k = 0; k < xs[i].nitems; k++) {
			has_client |= xs[i].items[k].kind == ITEM_CLIENT;
			has_broker |= xs[i].items[k].kind == ITEM_BROKER;
		}
		if (!has_client || !has_broker)
			fail_msg("protocol.md:%d: exchange %s shows no "
				 "frames both ways",
				 xs[i].line, xs[i].name);
		exchange_run(&xs[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partition_vectors_follow_the_formula),
		cmocka_unit_test_teardown(
			test_partition_vectors_match_the_broker,
			teardown_broker),
		cmocka_unit_test_teardown(test_exchanges_replay_byte_for_byte,
					  teardown_broker),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	free(guide);
	return rc;
}
