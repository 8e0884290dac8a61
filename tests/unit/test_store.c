/*
 * Unit tests of broker/store/store.c against a real LMDB environment in a fresh
 * temporary directory per test. Completions are awaited through the
 * store's eventfd with a deadline; nothing sleeps to synchronise.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <lmdb.h>
#include <xxhash.h>

#include "lib/crc32c.h"
#include "lib/err.h"
#include "store/store.h"
#include "journal_mode.h"
#include "tmpdir.h"

#define MiB		 (1024u * 1024u)
#define TEST_MAP_BYTES	 (64ull * MiB)
#define WAIT_DEADLINE_MS 20000

struct fixture {
	char dir[64];
};

/* One submitted batch's completion. */
struct done {
	int status;
	int order; /* position among completions, -1 until called */
};

static int done_seq; /* completions seen so far in this test */

static void
on_done(void *ctx, int status)
{
	struct done *d = ctx;

	d->status = status;
	d->order = done_seq++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/ringmq-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	done_seq = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static struct store *
open_with(const char *dir, uint64_t map_bytes, enum store_sync sync,
	  uint32_t interval_ms)
{
	struct store_opts o = { dir,	     map_bytes,	     sync,
				interval_ms, test_journal(), 0 };
	struct store *s = NULL;

	assert_int_equal(store_open(&s, &o), 0);
	assert_non_null(s);
	return s;
}

static struct store *
open_default(struct fixture *f)
{
	return open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_ALWAYS, 0);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reaps until done_seq reaches want, waiting on the eventfd. */
static void
wait_done(struct store *s, int want)
{
	uint64_t deadline = now_ms() + WAIT_DEADLINE_MS;
	struct pollfd p = { store_event_fd(s), POLLIN, 0 };

	store_flush(s); /* as the loop's pass ends */
	while (done_seq < want) {
		uint64_t now = now_ms(), n;

		assert_true(now < deadline);
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		if (read(p.fd, &n, sizeof(n)) != sizeof(n))
			assert_int_equal(errno, EAGAIN);
		store_reap(s);
	}
	if (test_journal())
		store_checkpoint(s);
}

/* Waits for every batch submitted; with the journal, also until LMDB
 * has applied them, as most tests here look at LMDB itself. */
static void
drain(struct store *s)
{
	store_drain(s);
	if (test_journal())
		store_checkpoint(s);
}

static void
submit(struct store *s, struct store_batch *b, struct done *d)
{
	d->status = 1;
	d->order = -1;
	store_submit(s, b, on_done, d);
}

/* Submits b and waits for it; returns its status. */
static int
commit(struct store *s, struct store_batch *b)
{
	struct done d;

	submit(s, b, &d);
	wait_done(s, done_seq + 1);
	return d.status;
}

static struct store_msg
text_msg(const char *payload)
{
	struct store_msg m = { 0 };

	m.publish_ms = 1000;
	m.payload = payload;
	m.payload_len = (uint32_t)strlen(payload);
	return m;
}

/* Commits one GROWS batch holding the messages [from, to) of a partition,
 * each with payload "m<offset>". */
static void
put_range(struct store *s, uint32_t qid, uint32_t part, uint64_t from,
	  uint64_t to)
{
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	char text[32];

	assert_non_null(b);
	for (uint64_t off = from; off < to; off++) {
		struct store_msg m;

		snprintf(text, sizeof(text), "m%llu", (unsigned long long)off);
		m = text_msg(text);
		assert_int_equal(store_batch_put_msg(b, qid, part, off, &m), 0);
	}
	assert_int_equal(commit(s, b), 0);
}

static void
assert_payload(const struct store_msg_view *v, const char *text)
{
	assert_int_equal(v->payload_len, strlen(text));
	assert_memory_equal(v->payload, text, strlen(text));
}

static void
assert_msg(struct store *s, uint32_t qid, uint32_t part, uint64_t off)
{
	struct store_msg_view v;
	char text[32];

	snprintf(text, sizeof(text), "m%llu", (unsigned long long)off);
	assert_int_equal(store_msg_get(s, qid, part, off, &v), 0);
	assert_int_equal(v.offset, off);
	assert_payload(&v, text);
}

/* -------------------------------------------------------------- crc32c */

/* The instruction-based CRC (where the CPU has one) and the table-based
 * one agree on every length and alignment, continued or not. */
static void
test_crc32c_hardware_and_portable_agree(void **state)
{
	uint8_t buf[600];
	uint32_t seed = 12345;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 7) {
			uint32_t a = crc32c(0, buf + off, len);

			assert_int_equal(a, crc32c_portable(0, buf + off, len));
			assert_int_equal(crc32c(a, buf, 13),
					 crc32c_portable(a, buf, 13));
		}
	assert_int_equal(crc32c_portable(0, "123456789", 9), 0xE3069283u);
#if defined(__x86_64__)
	/* Else the comparison above would be of the tables with themselves. */
	if (__builtin_cpu_supports("sse4.2"))
		assert_true(crc32c_is_hw());
#endif
}

static void
test_crc32c_matches_known_vectors(void **state)
{
	uint8_t buf[32];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* RFC 3720, appendix B.4. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void
test_crc32c_continues_across_calls(void **state)
{
	uint8_t buf[301];
	uint32_t whole;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t start = 0; start < 9; start++) {
		size_t len = sizeof(buf) - start;

		whole = crc32c(0, buf + start, len);
		for (size_t cut = 0; cut <= len; cut += 7) {
			uint32_t c = crc32c(0, buf + start, cut);

			c = crc32c(c, buf + start + cut, len - cut);
			assert_int_equal(c, whole);
		}
	}
}

/* ------------------------------------------------------------ messages */

static void
test_store_msg_round_trips_key_headers_and_dedup(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_header hs[3] = {
		{ "trace", 5, "abc", 3 },
		{ "empty", 5, "", 0 },
		{ "bin", 3, "\0\1\2\3", 4 },
	};
	struct store_msg m = text_msg("hello payload");
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_msg_view v;
	struct store_header h;
	uint32_t pos = 0;

	m.publish_ms = 1234567;
	m.deliver_at_ms = 7654321;
	m.key = "user-42";
	m.key_len = 7;
	m.headers = hs;
	m.header_count = 3;
	m.dedup_id = "dedup-1";
	m.dedup_len = 7;
	assert_int_equal(store_batch_put_msg(b, 7, 2, 99, &m), 0);
	assert_int_equal(store_batch_ops(b), 1);
	assert_int_equal(commit(s, b), 0);

	assert_int_equal(store_msg_get(s, 7, 2, 99, &v), 0);
	assert_int_equal(v.partition, 2);
	assert_int_equal(v.offset, 99);
	assert_int_equal(v.publish_ms, 1234567);
	assert_int_equal(v.deliver_at_ms, 7654321);
	assert_int_equal(v.key_len, 7);
	assert_memory_equal(v.key, "user-42", 7);
	assert_int_equal(v.dedup_len, 7);
	assert_memory_equal(v.dedup_id, "dedup-1", 7);
	assert_payload(&v, "hello payload");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
			store_headers_next(v.headers, v.headers_len, &pos, &h),
			1);
		assert_int_equal(h.name_len, hs[i].name_len);
		assert_memory_equal(h.name, hs[i].name, h.name_len);
		assert_int_equal(h.value_len, hs[i].value_len);
		if (h.value_len > 0)
			assert_memory_equal(h.value, hs[i].value, h.value_len);
	}
	assert_int_equal(store_headers_next(v.headers, v.headers_len, &pos, &h),
			 0);
	store_read_release(s);
	store_close(s);
}

static int
on_private(void *ctx, uint32_t qid, uint32_t part, uint64_t offset)
{
	uint64_t *seen = ctx;

	assert_int_equal(qid, 1);
	assert_int_equal(part, 0);
	assert_true(offset < 64);
	*seen |= 1ull << offset;
	return 0;
}

static int
on_any_message(void *ctx, uint32_t qid, uint32_t part, uint64_t offset,
	       uint32_t payload_len, uint64_t publish_ms,
	       uint64_t deliver_at_ms)
{
	(void)ctx;
	(void)qid;
	(void)part;
	(void)offset;
	(void)payload_len;
	(void)publish_ms;
	(void)deliver_at_ms;
	return 0;
}

/* A message flagged private (a redriven dead letter) is reported as such
 * at load, after its message callback; the others are not. */
static void
test_store_private_messages_are_reported_at_load(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_load_cb cb = { .message = on_any_message,
				    .private_message = on_private };
	struct store_msg m = { 0 };
	uint64_t seen = 0;

	for (uint64_t off = 0; off < 4; off++) {
		m.is_private = off == 1 || off == 3;
		assert_int_equal(store_batch_put_msg(b, 1, 0, off, &m), 0);
	}
	assert_int_equal(commit(s, b), 0);
	store_close(s);
	s = open_default(f);
	assert_int_equal(store_load(s, &cb, &seen), 0);
	assert_int_equal(seen, (1u << 1) | (1u << 3));
	store_close(s);
}

static void
test_store_msg_round_trips_empty_payload(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_msg m = { 0 };
	struct store_msg_view v;
	struct store_header h;
	uint32_t pos = 0;

	assert_int_equal(store_batch_put_msg(b, 1, 0, 0, &m), 0);
	assert_int_equal(commit(s, b), 0);
	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), 0);
	assert_int_equal(v.payload_len, 0);
	assert_int_equal(v.key_len, 0);
	assert_int_equal(v.dedup_len, 0);
	assert_int_equal(v.deliver_at_ms, 0);
	assert_int_equal(store_headers_next(v.headers, v.headers_len, &pos, &h),
			 0);
	store_close(s);
}

static void
test_store_msg_round_trips_payload_larger_than_page(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	size_t len = 300000;
	uint8_t *payload = malloc(len);
	struct store_msg m = { 0 };
	struct store_msg_view v;

	assert_non_null(payload);
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 9));
	m.payload = payload;
	m.payload_len = (uint32_t)len;
	assert_int_equal(store_batch_put_msg(b, 1, 0, 5, &m), 0);
	memset(payload, 0, len); /* the batch holds its own copy */
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_int_equal(commit(s, b), 0);
	assert_int_equal(store_msg_get(s, 1, 0, 5, &v), 0);
	assert_int_equal(v.payload_len, len);
	assert_memory_equal(v.payload, payload, len);
	store_close(s);
	free(payload);
}

static void
test_store_batch_copies_its_inputs(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	char text[] = "original";
	struct store_msg m = text_msg(text);
	struct store_msg_view v;

	assert_int_equal(store_batch_put_msg(b, 1, 0, 0, &m), 0);
	memcpy(text, "changed!", 8);
	assert_int_equal(commit(s, b), 0);
	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), 0);
	assert_payload(&v, "original");
	store_close(s);
}

static void
test_store_batch_rejects_header_name_over_u16(void **state)
{
	struct store_batch *b = store_batch_new(0);
	static char name[70000];
	struct store_header h = { name, sizeof(name), "v", 1 };
	struct store_msg m = text_msg("x");

	(void)state;
	m.headers = &h;
	m.header_count = 1;
	assert_int_equal(store_batch_put_msg(b, 1, 0, 0, &m), -EINVAL);
	assert_int_equal(store_batch_ops(b), 0);
	store_batch_free(b);
	store_batch_free(NULL);
}

static void
test_store_headers_next_rejects_truncated_block(void **state)
{
	/* name_len 3 "abc", value_len 5 but only 2 value bytes. */
	static const uint8_t block[] = { 0, 3, 'a', 'b', 'c', 0,
					 0, 0, 5,   'x', 'y' };
	struct store_header h;
	uint32_t pos = 0;

	(void)state;
	assert_int_equal(store_headers_next(block, sizeof(block), &pos, &h),
			 -RMQ_ECORRUPT);
	pos = 0;
	assert_int_equal(store_headers_next(block, 1, &pos, &h), -RMQ_ECORRUPT);
	pos = 0;
	assert_int_equal(store_headers_next(block, 0, &pos, &h), 0);
}

static void
test_store_msg_next_skips_gaps_and_stops_at_partition_end(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_msg_view v;

	put_range(s, 3, 0, 10, 11);
	put_range(s, 3, 1, 1, 2);
	put_range(s, 3, 1, 5, 6);
	put_range(s, 3, 1, 9, 10);
	put_range(s, 3, 2, 0, 1);
	put_range(s, 4, 0, 0, 1);

	assert_int_equal(store_msg_next(s, 3, 1, 0, &v), 0);
	assert_int_equal(v.offset, 1);
	assert_int_equal(store_msg_next(s, 3, 1, 2, &v), 0);
	assert_int_equal(v.offset, 5);
	assert_payload(&v, "m5");
	assert_int_equal(store_msg_next(s, 3, 1, 6, &v), 0);
	assert_int_equal(v.offset, 9);
	assert_int_equal(v.partition, 1);
	assert_int_equal(store_msg_next(s, 3, 1, 10, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_next(s, 3, 2, 1, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_next(s, 4, 0, 1, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_next(s, 2, 0, 0, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_next(s, 3, 0, 0, &v), 0);
	assert_int_equal(v.offset, 10);
	store_read_release(s);
	store_close(s);
}

static void
test_store_msg_get_of_missing_offset_is_notfound(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_msg_view v;

	put_range(s, 1, 0, 0, 3);
	assert_int_equal(store_msg_get(s, 1, 0, 3, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_get(s, 1, 1, 0, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_get(s, 2, 0, 0, &v), -RMQ_ENOTFOUND);
	assert_msg(s, 1, 0, 2);
	store_close(s);
}

/* Submits one message of payload "m<off>" at (qid, part, off) and waits
 * for its commit without reaping it. */
static void
put_unreaped(struct store *s, struct done *d, uint32_t qid, uint32_t part,
	     uint64_t off)
{
	struct store_batch *b = store_batch_new(0);
	char text[32];
	struct store_msg m;

	assert_non_null(b);
	snprintf(text, sizeof(text), "m%llu", (unsigned long long)off);
	m = text_msg(text);
	assert_int_equal(store_batch_put_msg(b, qid, part, off, &m), 0);
	submit(s, b, d);
	store_drain(s);
}

/* The loop's read transaction is a snapshot until released; reaping the
 * completions of new commits releases it, since those completions make
 * what they committed visible to dispatch in the same loop pass. */
static void
test_store_read_sees_new_commits_once_reaped_or_released(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_msg_view v;
	struct done d;

	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), -RMQ_ENOTFOUND);
	put_unreaped(s, &d, 1, 0, 0);
	/* Committed, not reaped, same read transaction: the old snapshot. */
	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_reap(s), 1);
	assert_msg(s, 1, 0, 0);
	put_unreaped(s, &d, 1, 0, 1);
	assert_int_equal(store_msg_get(s, 1, 0, 1, &v), -RMQ_ENOTFOUND);
	store_read_release(s);
	/* With the journal, a batch LMDB has not applied yet is read from
	 * what its reap kept: visible from its completion on. */
	if (!test_journal())
		assert_msg(s, 1, 0, 1);
	assert_int_equal(store_reap(s), 1);
	assert_msg(s, 1, 0, 1);
	store_read_release(s);
	store_read_release(s); /* twice is harmless */
	store_close(s);
}

static void
test_store_del_msgs_removes_exactly_the_range(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_msg_view v;
	uint64_t off = 0;
	int n = 0;

	put_range(s, 1, 0, 0, 5000);
	put_range(s, 1, 1, 0, 10);
	assert_int_equal(store_batch_del_msgs(b, 1, 0, 100, 4000), 0);
	assert_int_equal(store_batch_del_msgs(b, 1, 0, 7, 7), 0); /* empty */
	assert_int_equal(commit(s, b), 0);
	store_read_release(s);
	while (store_msg_next(s, 1, 0, off, &v) == 0) {
		assert_true(v.offset < 100 || v.offset >= 4000);
		off = v.offset + 1;
		n++;
	}
	assert_int_equal(n, 100 + 1000);
	assert_msg(s, 1, 0, 99);
	assert_msg(s, 1, 0, 4000);
	assert_int_equal(store_msg_get(s, 1, 0, 100, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_get(s, 1, 0, 3999, &v), -RMQ_ENOTFOUND);
	assert_msg(s, 1, 1, 9);
	store_close(s);
}

/* ---------------------------------------------------- records and load */

struct loaded {
	char trace[64];
	struct store_queue queues[4];
	int nqueues;
	uint64_t next_offset[4][4]; /* [qid][part] */
	int npartitions;
	struct store_group groups[4];
	int ngroups;
	uint32_t gs_key[4][3];
	uint64_t gs_floor[4];
	struct offset_run gs_runs[4][8];
	uint32_t gs_n[4];
	int ngstates;
	uint64_t fail_offset[16];
	struct store_failure fails[16];
	int nfails;
	uint64_t msg_offsets[16];
	uint32_t msg_payload_len[16];
	uint64_t msg_deliver_at[16];
	int nmsgs;
	int ndedups;
	int nproducers;
};

static void
trace(struct loaded *l, char c)
{
	size_t n = strlen(l->trace);

	if (n + 1 < sizeof(l->trace))
		l->trace[n] = c;
}

static int
on_queue(void *ctx, const struct store_queue *q)
{
	struct loaded *l = ctx;

	trace(l, 'Q');
	assert_true(l->nqueues < 4);
	l->queues[l->nqueues++] = *q;
	return 0;
}

static int
on_partition(void *ctx, uint32_t qid, uint32_t part, uint64_t next_offset)
{
	struct loaded *l = ctx;

	trace(l, 'P');
	assert_true(qid < 4 && part < 4);
	l->next_offset[qid][part] = next_offset;
	l->npartitions++;
	return 0;
}

static int
on_message(void *ctx, uint32_t qid, uint32_t part, uint64_t offset,
	   uint32_t payload_len, uint64_t publish_ms, uint64_t deliver_at_ms)
{
	struct loaded *l = ctx;

	(void)qid;
	(void)part;
	(void)publish_ms;
	trace(l, 'M');
	assert_true(l->nmsgs < 16);
	l->msg_offsets[l->nmsgs] = offset;
	l->msg_payload_len[l->nmsgs] = payload_len;
	l->msg_deliver_at[l->nmsgs++] = deliver_at_ms;
	return 0;
}

static int
on_group(void *ctx, const struct store_group *g)
{
	struct loaded *l = ctx;

	trace(l, 'G');
	assert_true(l->ngroups < 4);
	l->groups[l->ngroups++] = *g;
	return 0;
}

static int
on_group_state(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
	       uint64_t ack_floor, const struct offset_run *runs, uint32_t n)
{
	struct loaded *l = ctx;
	int i = l->ngstates++;

	trace(l, 'S');
	assert_true(i < 4 && n <= 8);
	l->gs_key[i][0] = qid;
	l->gs_key[i][1] = gid;
	l->gs_key[i][2] = part;
	l->gs_floor[i] = ack_floor;
	l->gs_n[i] = n;
	if (n > 0)
		memcpy(l->gs_runs[i], runs, n * sizeof(*runs));
	return 0;
}

static int
on_failure(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
	   uint64_t offset, const struct store_failure *fl)
{
	struct loaded *l = ctx;

	(void)qid;
	(void)gid;
	(void)part;
	trace(l, 'F');
	assert_true(l->nfails < 16);
	l->fail_offset[l->nfails] = offset;
	l->fails[l->nfails++] = *fl;
	return 0;
}

static int
on_dedup(void *ctx, uint32_t qid, uint32_t part, const void *id,
	 uint16_t id_len, uint64_t offset, uint64_t publish_ms)
{
	struct loaded *l = ctx;

	(void)qid;
	(void)part;
	(void)id;
	(void)id_len;
	(void)offset;
	(void)publish_ms;
	trace(l, 'D');
	l->ndedups++;
	return 0;
}

static int
on_producer(void *ctx, uint32_t qid, uint32_t part, uint64_t producer_id,
	    const struct store_producer *p)
{
	struct loaded *l = ctx;

	(void)qid;
	(void)part;
	(void)producer_id;
	(void)p;
	trace(l, 'R');
	l->nproducers++;
	return 0;
}

static const struct store_load_cb all_cb = {
	.queue = on_queue,
	.partition = on_partition,
	.message = on_message,
	.group = on_group,
	.group_state = on_group_state,
	.failure = on_failure,
	.dedup = on_dedup,
	.producer = on_producer,
};

static struct store_queue
sample_queue(uint32_t qid, uint32_t partitions, const char *name)
{
	struct store_queue q;

	memset(&q, 0, sizeof(q));
	q.qid = qid;
	q.partitions = partitions;
	q.created_ms = 1700000000123ull;
	q.policy.lease_ms = 30000;
	q.policy.max_lease_ms = 43200000;
	q.policy.max_deliveries = 5;
	q.policy.max_depth = 1000000;
	q.policy.max_bytes = 1ull << 33;
	q.policy.dedup_window_ms = 600000;
	snprintf(q.name, sizeof(q.name), "%s", name);
	snprintf(q.policy.dlq, sizeof(q.policy.dlq), "%s.dead", name);
	return q;
}

static struct store_group
sample_group(uint32_t qid, uint32_t gid, const char *name)
{
	struct store_group g;

	memset(&g, 0, sizeof(g));
	g.qid = qid;
	g.gid = gid;
	g.created_ms = 1700000000999ull;
	snprintf(g.name, sizeof(g.name), "%s", name);
	return g;
}

/* Queue 1 (2 partitions) with a group, its state, a failure and three
 * messages; queue 2 (1 partition) with a group and one message. */
static void
put_sample_records(struct store *s)
{
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_queue q1 = sample_queue(1, 2, "jobs");
	struct store_queue q2 = sample_queue(2, 1, "mail");
	struct store_group g1 = sample_group(1, 1, "workers");
	struct store_group g2 = sample_group(2, 1, "senders");
	struct store_failure fl = { 3, 111, 222, 333 };
	static const struct offset_run acked[3] = { { 5, 1 },
						    { 7, 1 },
						    { 9, 1 } };
	struct store_msg m = text_msg("abcd");

	assert_int_equal(store_batch_put_queue(b, &q1), 0);
	assert_int_equal(store_batch_put_queue(b, &q2), 0);
	assert_int_equal(store_batch_put_next_offset(b, 1, 1, 42), 0);
	assert_int_equal(store_batch_put_group(b, &g1), 0);
	assert_int_equal(store_batch_put_group(b, &g2), 0);
	assert_int_equal(store_batch_put_group_state(b, 1, 1, 0, 3, acked, 3),
			 0);
	assert_int_equal(store_batch_put_group_state(b, 2, 1, 0, 0, NULL, 0),
			 0);
	assert_int_equal(store_batch_put_failure(b, 1, 1, 0, 4, &fl), 0);
	assert_int_equal(store_batch_put_msg(b, 1, 0, 4, &m), 0);
	m.deliver_at_ms = 99999;
	assert_int_equal(store_batch_put_msg(b, 1, 1, 41, &m), 0);
	m.deliver_at_ms = 0;
	assert_int_equal(store_batch_put_msg(b, 1, 0, 6, &m), 0);
	assert_int_equal(store_batch_put_msg(b, 2, 0, 0, &m), 0);
	assert_int_equal(commit(s, b), 0);
}

static void
test_store_records_round_trip_through_load_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_queue q1 = sample_queue(1, 2, "jobs");
	struct store_group g1 = sample_group(1, 1, "workers");
	struct loaded l;

	put_sample_records(s);
	store_close(s);
	s = open_default(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);

	assert_int_equal(l.nqueues, 2);
	assert_memory_equal(&l.queues[0], &q1, sizeof(q1));
	assert_string_equal(l.queues[1].name, "mail");
	assert_string_equal(l.queues[1].policy.dlq, "mail.dead");
	assert_int_equal(l.ngroups, 2);
	assert_memory_equal(&l.groups[0], &g1, sizeof(g1));
	assert_int_equal(l.groups[1].qid, 2);
	assert_int_equal(l.ngstates, 2);
	assert_int_equal(l.gs_key[0][0], 1);
	assert_int_equal(l.gs_floor[0], 3);
	assert_int_equal(l.gs_n[0], 3);
	assert_int_equal(l.gs_runs[0][0].first, 5);
	assert_int_equal(l.gs_runs[0][0].count, 1);
	assert_int_equal(l.gs_runs[0][2].first, 9);
	assert_int_equal(l.gs_n[1], 0);
	assert_int_equal(l.nfails, 1);
	assert_int_equal(l.fail_offset[0], 4);
	assert_int_equal(l.fails[0].failures, 3);
	assert_int_equal(l.fails[0].first_delivery_ms, 111);
	assert_int_equal(l.fails[0].last_delivery_ms, 222);
	assert_int_equal(l.fails[0].retry_at_ms, 333);
	assert_int_equal(l.nmsgs, 4);
	assert_int_equal(l.msg_offsets[0], 4);
	assert_int_equal(l.msg_offsets[1], 6);
	assert_int_equal(l.msg_offsets[2], 41);
	assert_int_equal(l.msg_deliver_at[2], 99999);
	assert_int_equal(l.msg_payload_len[0], 4);
	store_close(s);
}

static void
test_store_load_reports_in_documented_order(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct loaded l;

	put_sample_records(s);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	/* queues, partitions, groups, group states, failures, messages */
	assert_string_equal(l.trace, "QQPPPGGSSFMMMM");
	store_close(s);
}

static void
test_store_reopens_with_next_offsets(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct loaded l;

	put_sample_records(s);
	store_close(s);
	s = open_default(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	/* Every partition is reported; those without a record as 0. */
	assert_int_equal(l.npartitions, 3);
	assert_int_equal(l.next_offset[1][0], 0);
	assert_int_equal(l.next_offset[1][1], 42);
	assert_int_equal(l.next_offset[2][0], 0);
	store_close(s);
}

static int
stop_at_queue(void *ctx, const struct store_queue *q)
{
	(void)ctx;
	(void)q;
	return -42;
}

static void
test_store_load_stops_on_callback_error(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_load_cb cb = { .queue = stop_at_queue };
	struct store_load_cb none = { 0 };

	put_sample_records(s);
	assert_int_equal(store_load(s, &cb, NULL), -42);
	assert_int_equal(store_load(s, &none, NULL), 0);
	store_close(s);
}

static void
test_store_del_queue_removes_every_record_of_the_queue(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct loaded l;

	put_sample_records(s);
	assert_int_equal(store_batch_del_queue(b, 1), 0);
	assert_int_equal(commit(s, b), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	assert_string_equal(l.trace, "QPGSM");
	assert_int_equal(l.queues[0].qid, 2);
	assert_int_equal(l.groups[0].qid, 2);
	assert_int_equal(l.gs_key[0][0], 2);
	store_close(s);
}

static void
test_store_del_queue_of_last_qid_has_no_upper_bound(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_msg_view v;

	put_range(s, UINT32_MAX, 0, 0, 3);
	put_range(s, UINT32_MAX - 1, 0, 0, 1);
	assert_int_equal(store_batch_del_queue(b, UINT32_MAX), 0);
	assert_int_equal(commit(s, b), 0);
	assert_int_equal(store_msg_next(s, UINT32_MAX, 0, 0, &v),
			 -RMQ_ENOTFOUND);
	assert_msg(s, UINT32_MAX - 1, 0, 0);
	store_close(s);
}

static void
test_store_del_group_removes_state_and_failures(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_group g2 = sample_group(1, 2, "other");
	struct store_failure fl = { 1, 5, 6, 0 };
	struct loaded l;

	put_sample_records(s);
	assert_int_equal(store_batch_put_group(b, &g2), 0);
	assert_int_equal(store_batch_put_failure(b, 1, 2, 0, 4, &fl), 0);
	assert_int_equal(commit(s, b), 0);
	b = store_batch_new(0);
	assert_int_equal(store_batch_del_group(b, 1, 1), 0);
	assert_int_equal(commit(s, b), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	/* Left: group 1/2 and 2/1, state of 2/1, failure of 1/2. */
	assert_string_equal(l.trace, "QQPPPGGSFMMMM");
	assert_int_equal(l.groups[0].gid, 2);
	assert_int_equal(l.gs_key[0][0], 2);
	assert_int_equal(l.fails[0].failures, 1);
	store_close(s);
}

static void
test_store_del_failures_removes_the_range(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_failure fl = { 1, 1, 1, 7 };
	struct loaded l;

	for (uint64_t off = 0; off < 10; off++)
		assert_int_equal(store_batch_put_failure(b, 1, 1, 0, off, &fl),
				 0);
	assert_int_equal(store_batch_put_failure(b, 1, 1, 1, 5, &fl), 0);
	assert_int_equal(commit(s, b), 0);
	b = store_batch_new(0);
	assert_int_equal(store_batch_del_failures(b, 1, 1, 0, 2, 8), 0);
	assert_int_equal(commit(s, b), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	assert_int_equal(l.nfails, 5);
	assert_int_equal(l.fail_offset[0], 0);
	assert_int_equal(l.fail_offset[1], 1);
	assert_int_equal(l.fail_offset[2], 8);
	assert_int_equal(l.fail_offset[3], 9);
	assert_int_equal(l.fail_offset[4], 5); /* partition 1 */
	store_close(s);
}

/* ------------------------------------------------- open, lock, format */

static void
test_store_boot_epoch_increases_across_opens(void **state)
{
	struct fixture *f = *state;
	uint64_t last = 0;

	for (int i = 0; i < 3; i++) {
		struct store *s = open_with(
			f->dir, TEST_MAP_BYTES,
			i == 1 ? STORE_SYNC_NEVER : STORE_SYNC_ALWAYS, 0);

		assert_true(store_boot_epoch(s) > last);
		last = store_boot_epoch(s);
		store_close(s);
	}
	assert_int_equal(last, 3);
}

static void
test_store_second_open_of_dir_fails_locked(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = { f->dir, TEST_MAP_BYTES, STORE_SYNC_ALWAYS,
				0,	test_journal(), 0 };
	struct store *s = open_default(f);
	struct store *s2 = (struct store *)&o;

	assert_int_equal(store_open(&s2, &o), -RMQ_ELOCKED);
	assert_null(s2);
	store_close(s);
	s = open_default(f);
	assert_int_equal(store_boot_epoch(s), 2);
	store_close(s);
	store_close(NULL);
}

/* Opens the store's LMDB environment directly, as another tool would. */
static void
raw_open(const char *dir, MDB_env **env, MDB_txn **txn, const char *db,
	 MDB_dbi *dbi)
{
	assert_int_equal(mdb_env_create(env), 0);
	assert_int_equal(mdb_env_set_maxdbs(*env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(*env, TEST_MAP_BYTES), 0);
	assert_int_equal(mdb_env_open(*env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, txn), 0);
	assert_int_equal(mdb_dbi_open(*txn, db, 0, dbi), 0);
}

static void
raw_close(MDB_env *env, MDB_txn *txn)
{
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
write_format(const char *dir, uint32_t version, bool is_crc_ok)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t val[8] = { 0,
			   0,
			   0,
			   0,
			   (uint8_t)(version >> 24),
			   (uint8_t)(version >> 16),
			   (uint8_t)(version >> 8),
			   (uint8_t)version };
	uint32_t crc = crc32c(crc32c(0, "format", 6), val + 4, 4);
	MDB_val k = { 6, "format" }, v = { sizeof(val), val };

	if (!is_crc_ok)
		crc ^= 1;
	for (int i = 0; i < 4; i++)
		val[i] = (uint8_t)(crc >> (24 - 8 * i));
	raw_open(dir, &env, &txn, "meta", &dbi);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	raw_close(env, txn);
}

static void
test_store_refuses_other_format_version(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = { f->dir, TEST_MAP_BYTES, STORE_SYNC_ALWAYS,
				0,	test_journal(), 0 };
	struct store *s = open_default(f);

	store_close(s);
	write_format(f->dir, STORE_FORMAT_VERSION + 1, true);
	assert_int_equal(store_open(&s, &o), -RMQ_EFORMAT);
	assert_null(s);
	write_format(f->dir, STORE_FORMAT_VERSION, false);
	assert_int_equal(store_open(&s, &o), -RMQ_EFORMAT);
	write_format(f->dir, STORE_FORMAT_VERSION, true);
	s = open_default(f);
	assert_int_equal(store_boot_epoch(s), 2);
	store_close(s);
}

/* Flips one payload byte of a stored message, bypassing the store. */
static void
corrupt_record(const char *dir, const char *db, const uint8_t *key,
	       size_t key_len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { key_len, (void *)key }, v;
	uint8_t *copy;

	raw_open(dir, &env, &txn, db, &dbi);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	copy = malloc(v.mv_size);
	assert_non_null(copy);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[v.mv_size - 1] ^= 0x20;
	v.mv_data = copy;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	raw_close(env, txn);
	free(copy);
}

static void
test_store_detects_corrupt_message_and_reads_others(void **state)
{
	struct fixture *f = *state;
	static const uint8_t key[16] = { 0, 0, 0, 9, 0, 0, 0, 1,
					 0, 0, 0, 0, 0, 0, 0, 2 };
	struct store *s = open_default(f);
	struct store_msg_view v;
	struct loaded l;

	put_range(s, 9, 1, 0, 5);
	store_close(s);
	corrupt_record(f->dir, "msgs", key, sizeof(key));
	s = open_default(f);
	memset(&v, 0xff, sizeof(v));
	assert_int_equal(store_msg_get(s, 9, 1, 2, &v), -RMQ_ECORRUPT);
	assert_int_equal(v.partition, 1);
	assert_int_equal(v.offset, 2);
	assert_int_equal(store_msg_next(s, 9, 1, 2, &v), -RMQ_ECORRUPT);
	assert_int_equal(v.offset, 2);
	assert_int_equal(store_msg_next(s, 9, 1, v.offset + 1, &v), 0);
	assert_int_equal(v.offset, 3);
	assert_msg(s, 9, 1, 1);
	assert_msg(s, 9, 1, 4);
	store_read_release(s);
	/* The start-up scan reports it as is; reads catch it. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	assert_int_equal(l.nmsgs, 5);
	store_close(s);
}

static void
test_store_load_fails_on_corrupt_group_record(void **state)
{
	struct fixture *f = *state;
	static const uint8_t key[8] = { 0, 0, 0, 1, 0, 0, 0, 1 };
	struct store *s = open_default(f);
	struct loaded l;

	put_sample_records(s);
	store_close(s);
	corrupt_record(f->dir, "groups", key, sizeof(key));
	s = open_default(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), -RMQ_ECORRUPT);
	store_close(s);
}

/* --------------------------------------------------------------- space */

static struct store_batch *
big_batch(uint32_t qid, uint64_t first, int count, size_t payload_len)
{
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	uint8_t *payload = calloc(1, payload_len);
	struct store_msg m = { 0 };

	assert_non_null(b);
	assert_non_null(payload);
	m.payload = payload;
	m.payload_len = (uint32_t)payload_len;
	for (int i = 0; i < count; i++)
		assert_int_equal(
			store_batch_put_msg(b, qid, 0, first + (uint64_t)i, &m),
			0);
	free(payload);
	return b;
}

static void
test_store_small_map_refuses_grows_but_commits_deletes(void **state)
{
	struct fixture *f = *state;
	/* A long interval: batches submitted together share one commit,
	 * which store_drain starts at once. */
	struct store *s =
		open_with(f->dir, 1 * MiB, STORE_SYNC_INTERVAL, 600000);
	struct done d[3];
	struct store_msg_view v;
	uint64_t next = 0, used, map;
	int rounds = 0;

	for (;;) {
		submit(s, big_batch(1, next, 4, 3000), &d[0]);
		drain(s);
		assert_int_equal(store_reap(s), 1);
		if (d[0].status != 0)
			break;
		next += 4;
		assert_true(++rounds < 200);
	}
	assert_int_equal(d[0].status, -RMQ_ESTORAGE_FULL);
	assert_true(next > 100); /* most of the map was usable */
	store_usage(s, &used, &map);
	assert_int_equal(map, 1 * MiB);
	assert_true(used > map / 2);

	/* In one commit: a publish is refused, a delete goes through. */
	struct store_batch *del = store_batch_new(0);

	assert_int_equal(store_batch_del_msgs(del, 1, 0, 0, next), 0);
	submit(s, big_batch(1, next, 4, 3000), &d[0]);
	submit(s, del, &d[1]);
	drain(s);
	assert_int_equal(store_reap(s), 2);
	assert_int_equal(d[0].status, -RMQ_ESTORAGE_FULL);
	assert_int_equal(d[1].status, 0);
	assert_true(d[0].order < d[1].order);
	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), -RMQ_ENOTFOUND);
	store_read_release(s);

	/* The space is usable again. */
	submit(s, big_batch(1, next, 4, 3000), &d[2]);
	drain(s);
	assert_int_equal(store_reap(s), 1);
	assert_int_equal(d[2].status, 0);
	assert_int_equal(store_msg_get(s, 1, 0, next, &v), 0);
	assert_int_equal(v.payload_len, 3000);
	store_usage(s, &used, &map);
	assert_true(used < map / 2);
	store_close(s);
}

/* Once full, a growing batch waits for half a headroom (a 1 MiB map:
 * 32 KiB) to be free again, not for the few bytes a delete frees, so
 * that publishing does not flap at the edge. */
static void
test_store_full_resumes_only_with_half_a_headroom_free(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_with(f->dir, 1 * MiB, STORE_SYNC_ALWAYS, 0);
	struct store_batch *del;
	uint64_t next = 0;
	int rounds = 0;

	while (commit(s, big_batch(1, next, 4, 3000)) == 0) {
		next += 4;
		assert_true(++rounds < 200);
	}
	/* A page or so freed: still full, also for a small one. */
	del = store_batch_new(0);
	assert_int_equal(store_batch_del_msgs(del, 1, 0, 0, 1), 0);
	assert_int_equal(commit(s, del), 0);
	drain(s);
	assert_int_equal(commit(s, big_batch(1, next, 1, 100)),
			 -RMQ_ESTORAGE_FULL);
	/* 20 messages of 3,000 bytes, a page each, freed: room again. */
	del = store_batch_new(0);
	assert_int_equal(store_batch_del_msgs(del, 1, 0, 1, 21), 0);
	assert_int_equal(commit(s, del), 0);
	drain(s);
	assert_int_equal(commit(s, big_batch(1, next, 1, 100)), 0);
	store_close(s);
}

static void
test_store_batch_over_map_fails_alone(void **state)
{
	struct fixture *f = *state;
	struct store *s =
		open_with(f->dir, 1 * MiB, STORE_SYNC_INTERVAL, 600000);
	struct done d[3];
	struct store_msg_view v;

	submit(s, big_batch(1, 0, 1, 100), &d[0]);
	submit(s, big_batch(1, 1, 1, 2 * MiB), &d[1]);
	submit(s, big_batch(1, 2, 1, 100), &d[2]);
	drain(s);
	assert_int_equal(store_reap(s), 3);
	assert_int_equal(d[0].status, 0);
	assert_int_equal(d[1].status, -RMQ_ESTORAGE_FULL);
	assert_int_equal(d[2].status, 0);
	assert_int_equal(store_msg_get(s, 1, 0, 0, &v), 0);
	assert_int_equal(store_msg_get(s, 1, 0, 1, &v), -RMQ_ENOTFOUND);
	assert_int_equal(store_msg_get(s, 1, 0, 2, &v), 0);
	store_close(s);
}

static void
test_store_usage_reports_map_and_growth(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	uint64_t used0, used1, map;

	store_usage(s, &used0, &map);
	assert_int_equal(map, TEST_MAP_BYTES);
	assert_true(used0 > 0);
	assert_int_equal(commit(s, big_batch(1, 0, 64, 16384)), 0);
	store_usage(s, &used1, &map);
	assert_true(used1 >= used0 + 64 * 16384);
	store_close(s);
}

/* ------------------------------------------- group commit, drain, sync */

static void
test_store_group_commit_completes_in_submission_order(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	enum { N = 1000 };
	struct done *d = calloc(N, sizeof(*d));

	assert_non_null(d);
	for (int i = 0; i < N; i++) {
		struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
		char text[16];
		struct store_msg m;

		snprintf(text, sizeof(text), "m%d", i);
		m = text_msg(text);

		assert_int_equal(store_batch_put_msg(b, 1, 0, (uint64_t)i, &m),
				 0);
		submit(s, b, &d[i]);
	}
	wait_done(s, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d[i].status, 0);
		assert_int_equal(d[i].order, i);
	}
	assert_msg(s, 1, 0, 0);
	assert_msg(s, 1, 0, N - 1);
	store_close(s);
	free(d);
}

static void
test_store_drain_waits_for_every_batch(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct done d[50];

	drain(s); /* nothing pending: returns at once */
	for (int i = 0; i < 50; i++) {
		struct store_batch *b = store_batch_new(0);
		struct store_msg m = text_msg("m");

		assert_int_equal(store_batch_put_msg(b, 2, 0, (uint64_t)i, &m),
				 0);
		submit(s, b, &d[i]);
	}
	drain(s);
	assert_int_equal(done_seq, 0); /* callbacks only from store_reap */
	for (int i = 0; i < 50; i++) {
		struct store_msg_view v;

		assert_int_equal(store_msg_get(s, 2, 0, (uint64_t)i, &v), 0);
	}
	assert_int_equal(store_reap(s), 50);
	assert_int_equal(store_reap(s), 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(d[i].order, i);
	store_close(s);
}

static void
test_store_empty_batch_completes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);

	assert_int_equal(commit(s, store_batch_new(0)), 0);
	assert_int_equal(commit(s, store_batch_new(STORE_BATCH_GROWS)), 0);
	store_close(s);
}

static void
test_store_close_delivers_pending_completions(void **state)
{
	struct fixture *f = *state;
	struct store *s =
		open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_INTERVAL, 600000);
	struct done d[10];
	uint64_t start = now_ms();

	for (int i = 0; i < 10; i++) {
		struct store_batch *b = store_batch_new(0);
		struct store_msg m = text_msg("m0");

		assert_int_equal(store_batch_put_msg(b, 1, 0, (uint64_t)i, &m),
				 0);
		submit(s, b, &d[i]);
	}
	store_close(s);
	assert_true(now_ms() - start < 10000); /* not the 600 s interval */
	assert_int_equal(done_seq, 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(d[i].status, 0);
	s = open_default(f);
	assert_msg(s, 1, 0, 0);
	store_close(s);
}

/* With the journal and no sync to wait for, store_flush writes the
 * pass's batches to the journal itself and runs their completions, in
 * order, readable at once; a batch that does not fit in the segment
 * being written, or one that needs a sync, goes to the storage thread,
 * and what follows it keeps its place. */
/* 1 when the journal of the store in dir has a spare segment ready. */
static int
has_spare_segment(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "%s/journal", dir);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL)
		found = strncmp(e->d_name, "spare-", 6) == 0 &&
			strcmp(e->d_name, "spare-new.jrnl") != 0;
	closedir(d);
	return found;
}

static void
test_store_flush_confirms_unsynced_batches_itself(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct store_msg_view v;
	struct done d[6], w;
	int base;

	if (!test_journal())
		skip();
	s = open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_NEVER, 0);
	/* After open the storage thread holds the journal while it makes a
	 * spare segment; until then batches go to it. It also takes what
	 * is pending whenever it wakes (each LMDB checkpoint wakes it):
	 * with the spare made, everything applied and a moment's rest,
	 * nothing does. */
	for (int i = 0; i < 1000 && !has_spare_segment(f->dir); i++)
		usleep(10000);
	assert_true(has_spare_segment(f->dir));
	submit(s, store_batch_new(0), &w);
	store_flush(s);
	wait_done(s, 1);
	drain(s);
	usleep(10000);
	base = done_seq;
	for (int i = 0; i < 3; i++) {
		struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
		struct store_msg m = text_msg("m");

		assert_int_equal(store_batch_put_msg(b, 1, 0, (uint64_t)i, &m),
				 0);
		submit(s, b, &d[i]);
	}
	assert_true(store_has_deferred(s));
	assert_int_equal(done_seq, base);
	store_flush(s);
	assert_false(store_has_deferred(s));
	assert_int_equal(done_seq, base + 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(d[i].status, 0);
		assert_int_equal(d[i].order, base + i);
		assert_int_equal(store_msg_get(s, 1, 0, (uint64_t)i, &v), 0);
	}
	/* Larger than a segment (an eighth of the default 64 MiB bound):
	 * the storage thread makes it one; the small one after it waits. */
	submit(s, big_batch(1, 3, 1, 9 * MiB), &d[3]);
	submit(s, big_batch(1, 4, 1, 100), &d[4]);
	store_flush(s);
	wait_done(s, base + 5);
	assert_int_equal(d[3].status, 0);
	assert_int_equal(d[3].order, base + 3);
	assert_int_equal(d[4].order, base + 4);
	/* An urgent batch goes to the storage thread (it syncs, where the
	 * mode does). */
	submit(s, store_batch_new(STORE_BATCH_URGENT), &d[5]);
	assert_false(store_has_deferred(s));
	wait_done(s, base + 6);
	assert_int_equal(d[5].status, 0);
	store_close(s);
	s = open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_NEVER, 0);
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(store_msg_get(s, 1, 0, i, &v), 0);
	store_close(s);
}

/* A completion that submits another batch, as the loop may. */
struct resubmit {
	struct store *s;
	struct done first;
	struct done second;
	int reaped_inside;
};

static void
on_done_resubmit(void *ctx, int status)
{
	struct resubmit *r = ctx;

	on_done(&r->first, status);
	submit(r->s, store_batch_new(0), &r->second);
	r->reaped_inside = store_reap(r->s);
}

static void
test_store_close_fails_batches_submitted_by_last_completions(void **state)
{
	struct fixture *f = *state;
	struct resubmit r = { 0 };

	r.s = open_default(f);
	r.first.status = 1;
	store_submit(r.s, store_batch_new(0), on_done_resubmit, &r);
	store_close(r.s);
	assert_int_equal(r.first.status, 0);
	assert_int_equal(r.second.status, -RMQ_ESHUTTING_DOWN);
	assert_int_equal(r.second.order, 1);
}

static void
test_store_reap_inside_completion_keeps_order(void **state)
{
	struct fixture *f = *state;
	struct store *s =
		open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_INTERVAL, 600000);
	struct resubmit r = { 0 };
	struct done d;

	r.s = s;
	r.first.status = 1;
	store_submit(s, store_batch_new(0), on_done_resubmit, &r);
	submit(s, store_batch_new(0), &d);
	drain(s); /* both complete in one commit */
	assert_int_equal(store_reap(s), 2);
	assert_int_equal(r.reaped_inside, 0);
	assert_int_equal(r.first.order, 0);
	assert_int_equal(d.order, 1);
	drain(s); /* the batch submitted from the completion */
	assert_int_equal(store_reap(s), 1);
	assert_int_equal(r.second.order, 2);
	assert_int_equal(r.second.status, 0);
	store_close(s);
}

static void
test_store_batch_rejects_unterminated_name(void **state)
{
	struct store_batch *b = store_batch_new(0);
	struct store_queue q = sample_queue(1, 1, "q");
	struct store_group g = sample_group(1, 1, "g");

	(void)state;
	memset(q.name, 'a', sizeof(q.name));
	assert_int_equal(store_batch_put_queue(b, &q), -EINVAL);
	memset(g.name, 'a', sizeof(g.name));
	assert_int_equal(store_batch_put_group(b, &g), -EINVAL);
	assert_int_equal(store_batch_ops(b), 0);
	store_batch_free(b);
}

/* The SIGKILL tests: a child process commits batches of BATCH_MSGS
 * messages, batch i holding the offsets [i * BATCH_MSGS, (i + 1) *
 * BATCH_MSGS), with up to CHILD_IN_FLIGHT submitted at once and never a
 * drain; each completion sends the batch's number down a pipe. The
 * parent kills it with SIGKILL once KILL_AFTER more batches are
 * confirmed, checks the store, and starts the next child (KILL_ROUNDS in
 * all) where the last one's batches end. */
#define BATCH_MSGS	10u
#define CHILD_IN_FLIGHT 4u
#define CHILD_BATCHES	5000u /* the child's bound; the kill comes first */
#define KILL_AFTER	20u
#define KILL_ROUNDS	5

struct committer {
	int fd; /* the pipe's write end */
	uint32_t confirmed;
	bool is_failed;
};

static void
on_committed(void *ctx, int status)
{
	struct committer *k = ctx;
	uint32_t n = k->confirmed++;

	if (status != 0 || write(k->fd, &n, sizeof(n)) != sizeof(n))
		k->is_failed = true;
}

/* The child: commits batches from number first on, as above, until
 * killed. cmocka's asserts would jump into the parent's copy of its
 * state: failures exit 1. */
static void
run_committer(const char *dir, enum store_sync sync, uint32_t interval_ms,
	      uint32_t first, int fd)
{
	struct store_opts o = { dir,	     TEST_MAP_BYTES, sync,
				interval_ms, test_journal(), 0 };
	struct committer k = { fd, first, false };
	uint64_t deadline = now_ms() + WAIT_DEADLINE_MS;
	struct store *s = NULL;
	uint32_t submitted = first;

	if (store_open(&s, &o) != 0)
		_exit(1);
	while (!k.is_failed && now_ms() < deadline) {
		struct pollfd p = { store_event_fd(s), POLLIN, 0 };
		uint64_t n;

		while (submitted - first < CHILD_BATCHES &&
		       submitted - k.confirmed < CHILD_IN_FLIGHT) {
			struct store_batch *b =
				store_batch_new(STORE_BATCH_GROWS);
			uint64_t off = (uint64_t)submitted * BATCH_MSGS;

			if (b == NULL)
				_exit(1);
			for (uint64_t end = off + BATCH_MSGS; off < end;
			     off++) {
				char text[32];
				struct store_msg m;

				snprintf(text, sizeof(text), "m%llu",
					 (unsigned long long)off);
				m = text_msg(text);
				if (store_batch_put_msg(b, 1, 0, off, &m) != 0)
					_exit(1);
			}
			store_submit(s, b, on_committed, &k);
			submitted++;
		}
		store_flush(s);
		if (poll(&p, 1, 100) > 0 && read(p.fd, &n, sizeof(n)) < 0 &&
		    errno != EAGAIN)
			_exit(1);
		(void)store_reap(s);
	}
	_exit(1); /* the kill never came */
}

/* 1 if every message of batch i is stored, 0 if none is. */
static int
batch_is_stored(struct store *s, uint32_t i)
{
	uint32_t found = 0;

	for (uint64_t off = (uint64_t)i * BATCH_MSGS;
	     off < (uint64_t)(i + 1) * BATCH_MSGS; off++) {
		struct store_msg_view v;
		int rc = store_msg_get(s, 1, 0, off, &v);

		if (rc == 0) {
			assert_msg(s, 1, 0, off);
			found++;
		} else {
			assert_int_equal(rc, -RMQ_ENOTFOUND);
		}
	}
	assert_true(found == 0 || found == BATCH_MSGS); /* all or nothing */
	return found > 0;
}

/* One round: a child commits from batch first on and is killed.
 * @return the number of batches stored after it. */
static uint32_t
kill_committer(struct fixture *f, enum store_sync sync, uint32_t interval_ms,
	       uint32_t first)
{
	uint64_t deadline = now_ms() + WAIT_DEADLINE_MS;
	uint32_t confirmed = first, stored, n;
	bool is_out_of_order = false;
	struct store *s;
	struct pollfd p;
	int fds[2], status;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		run_committer(f->dir, sync, interval_ms, first, fds[1]);
	}
	close(fds[1]);
	p.fd = fds[0];
	p.events = POLLIN;
	/* Nothing here may fail before the child is killed and reaped. */
	while (confirmed - first < KILL_AFTER && !is_out_of_order) {
		uint64_t now = now_ms();

		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		if (read(fds[0], &n, sizeof(n)) != sizeof(n))
			break; /* the child ended: its status says how */
		is_out_of_order = n != confirmed;
		confirmed++;
	}
	/* Mid-stream: later batches are submitted, some committing. */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_false(is_out_of_order); /* completions in submission order */
	assert_int_equal(confirmed - first, KILL_AFTER); /* in time */
	/* Confirmations sent before the kill, still in the pipe. */
	while ((r = read(fds[0], &n, sizeof(n))) == sizeof(n)) {
		assert_int_equal(n, confirmed);
		confirmed++;
	}
	assert_int_equal(r, 0);
	close(fds[0]);

	/* Every confirmed batch is there; after them, only whole batches
	 * that follow on (batches commit in order). */
	s = open_default(f);
	for (uint32_t i = 0; i < confirmed; i++)
		assert_true(batch_is_stored(s, i));
	stored = confirmed;
	while (stored < confirmed + CHILD_IN_FLIGHT &&
	       batch_is_stored(s, stored))
		stored++;
	for (uint32_t i = stored; i <= confirmed + CHILD_IN_FLIGHT; i++)
		assert_false(batch_is_stored(s, i));
	store_close(s);
	return stored;
}

static void
check_sigkill_keeps_confirmed(struct fixture *f, enum store_sync sync,
			      uint32_t interval_ms)
{
	uint32_t stored = 0;

	for (int round = 0; round < KILL_ROUNDS; round++)
		stored = kill_committer(f, sync, interval_ms, stored);
}

/* always: a batch completes once its commit is synced. Surviving a power
 * cut too is the crash suite's to show (crash-power-cut-always). */
static void
test_store_sync_always_keeps_confirmed_batches_through_sigkill(void **state)
{
	check_sigkill_keeps_confirmed(*state, STORE_SYNC_ALWAYS, 0);
}

/* interval: batches complete at the interval's synced commits, with no
 * drain to ask for them. */
static void
test_store_sync_interval_keeps_confirmed_batches_through_sigkill(void **state)
{
	check_sigkill_keeps_confirmed(*state, STORE_SYNC_INTERVAL, 20);
}

/* never (MDB_NOSYNC): a committed batch is in the page cache, which
 * outlives the process; only a power cut may lose it. */
static void
test_store_sync_never_keeps_confirmed_batches_through_sigkill(void **state)
{
	check_sigkill_keeps_confirmed(*state, STORE_SYNC_NEVER, 0);
}

static void
test_store_interval_commits_a_full_group_without_waiting(void **state)
{
	struct fixture *f = *state;
	/* 40 batches of 2 MiB: more than one commit's 64 MiB budget. */
	struct store *s =
		open_with(f->dir, 512ull * MiB, STORE_SYNC_INTERVAL, 600000);
	struct done d[40];
	uint64_t start = now_ms();

	for (int i = 0; i < 40; i++)
		submit(s, big_batch(1, (uint64_t)i, 1, 2 * MiB), &d[i]);
	wait_done(s, 1); /* no drain: the full group went at once */
	assert_true(now_ms() - start < WAIT_DEADLINE_MS);
	assert_true(done_seq < 40); /* the rest waits for the interval */
	drain(s);
	store_reap(s);
	assert_int_equal(done_seq, 40);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(d[i].status, 0);
		assert_int_equal(d[i].order, i);
	}
	store_close(s);
}

static void
test_store_interval_drain_does_not_wait_the_interval(void **state)
{
	struct fixture *f = *state;
	struct store *s =
		open_with(f->dir, TEST_MAP_BYTES, STORE_SYNC_INTERVAL, 600000);
	struct store_batch *b = store_batch_new(0);
	struct store_msg m = text_msg("m");
	struct done d;
	uint64_t start = now_ms();

	assert_int_equal(store_batch_put_msg(b, 1, 0, 0, &m), 0);
	submit(s, b, &d);
	drain(s);
	assert_true(now_ms() - start < 10000);
	assert_int_equal(store_reap(s), 1);
	assert_int_equal(d.status, 0);
	store_close(s);
}

static uint64_t
data_file_bytes(const char *dir)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Synced modes keep the data file written ahead of LMDB's pages (so a
 * commit does not also grow the file); the zeros never reach data that
 * LMDB wrote, before or after they were laid down. */
static void
test_store_data_file_is_preallocated_ahead_in_synced_modes(void **state)
{
	struct fixture *f = *state;
	/* A long interval: the batches share one commit (at the drain). */
	struct store *s =
		open_with(f->dir, 256ull * MiB, STORE_SYNC_INTERVAL, 600000);
	struct done d[12];

	assert_true(data_file_bytes(f->dir) >= 8 * MiB);
	/* One commit of 24 MiB: LMDB writes past the first zeros, which are
	 * then topped up past its new end, never over it. */
	for (int i = 0; i < 12; i++)
		submit(s, big_batch(1, (uint64_t)i, 1, 2 * MiB), &d[i]);
	drain(s);
	store_reap(s);
	for (int i = 0; i < 12; i++)
		assert_int_equal(d[i].status, 0);
	assert_true(data_file_bytes(f->dir) >= 24 * MiB + 8 * MiB);
	store_close(s);

	s = open_with(f->dir, 256ull * MiB, STORE_SYNC_ALWAYS, 0);
	for (uint64_t i = 0; i < 12; i++) {
		struct store_msg_view v;

		assert_int_equal(store_msg_get(s, 1, 0, i, &v), 0);
		assert_int_equal(v.payload_len, 2 * MiB);
	}
	store_close(s);
}

static void
test_store_sync_never_does_not_preallocate(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_with(f->dir, 256ull * MiB, STORE_SYNC_NEVER, 0);

	put_range(s, 1, 0, 0, 10);
	assert_true(data_file_bytes(f->dir) < 1 * MiB);
	store_close(s);
}

static void
test_store_open_rejects_bad_options(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = { f->dir,		0, STORE_SYNC_ALWAYS, 0,
				test_journal(), 0 };
	struct store *s;

	assert_int_equal(store_open(&s, &o), -EINVAL);
	assert_null(s);
	o.max_storage_bytes = TEST_MAP_BYTES;
	o.sync = STORE_SYNC_INTERVAL;
	assert_int_equal(store_open(&s, &o), -EINVAL);
}

/* ------------------------------------------------------ raw message reads */

/* The "msgs" value of a keyless, headerless message, built from the layout
 * in store.h; returns its length. */
static size_t
expected_msg_value(uint8_t *buf, uint32_t qid, uint32_t part, uint64_t off,
		   const char *payload)
{
	uint8_t key[16];
	size_t n = strlen(payload);
	uint32_t crc;

	for (int i = 0; i < 4; i++) {
		key[i] = (uint8_t)(qid >> (24 - 8 * i));
		key[4 + i] = (uint8_t)(part >> (24 - 8 * i));
	}
	for (int i = 0; i < 8; i++)
		key[8 + i] = (uint8_t)(off >> (56 - 8 * i));
	memset(buf, 0, 32);
	buf[4] = 1;	/* record version; flags 0 */
	buf[12] = 0x03; /* publish_ms 1000 = 0x3e8, big-endian */
	buf[13] = 0xe8;
	memcpy(buf + 32, payload, n);
	crc = crc32c(crc32c(0, key, 16), buf + 4, 28 + n);
	for (int i = 0; i < 4; i++)
		buf[i] = (uint8_t)(crc >> (24 - 8 * i));
	return 32 + n;
}

static void
test_store_msg_get_raw_returns_the_stored_bytes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	uint8_t want[64];
	size_t want_len = expected_msg_value(want, 9, 1, 2, "m2");
	const void *raw = (const void *)1;
	size_t len = 1;

	put_range(s, 9, 1, 0, 5);
	assert_int_equal(store_msg_get_raw(s, 9, 1, 2, &raw, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(raw, want, want_len);
	store_read_release(s);
	assert_int_equal(store_msg_get_raw(s, 9, 1, 5, &raw, &len),
			 -RMQ_ENOTFOUND);
	assert_null(raw);
	assert_int_equal(len, 0);
	assert_int_equal(store_msg_get_raw(s, 9, 0, 2, &raw, &len),
			 -RMQ_ENOTFOUND);
	store_read_release(s);
	store_close(s);
}

static void
test_store_msg_get_raw_returns_a_corrupt_record_as_stored(void **state)
{
	struct fixture *f = *state;
	static const uint8_t key[16] = { 0, 0, 0, 9, 0, 0, 0, 1,
					 0, 0, 0, 0, 0, 0, 0, 2 };
	struct store *s = open_default(f);
	struct store_msg_view v;
	uint8_t want[64];
	size_t want_len = expected_msg_value(want, 9, 1, 2, "m2");
	const void *raw;
	size_t len;

	put_range(s, 9, 1, 0, 5);
	store_close(s);
	corrupt_record(f->dir, "msgs", key, sizeof(key));
	want[want_len - 1] ^= 0x20; /* the byte corrupt_record flips */
	s = open_default(f);
	assert_int_equal(store_msg_get(s, 9, 1, 2, &v), -RMQ_ECORRUPT);
	assert_int_equal(store_msg_get_raw(s, 9, 1, 2, &raw, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(raw, want, want_len);
	/* The raw read shares the read transaction with the views. */
	assert_msg(s, 9, 1, 3);
	assert_memory_equal(raw, want, want_len);
	store_read_release(s);
	store_close(s);
}

/* ------------------------------------------------------------- dedup */

/* Dedup records as loaded, each id copied. */
struct dedups {
	int n;
	uint32_t qid[8];
	uint32_t part[8];
	uint8_t *id[8]; /* owned */
	uint16_t id_len[8];
	uint64_t offset[8];
	uint64_t publish_ms[8];
};

static int
on_dedup_copy(void *ctx, uint32_t qid, uint32_t part, const void *id,
	      uint16_t id_len, uint64_t offset, uint64_t publish_ms)
{
	struct dedups *d = ctx;
	int i = d->n++;

	assert_true(i < 8);
	d->qid[i] = qid;
	d->part[i] = part;
	d->id[i] = malloc(id_len);
	assert_non_null(d->id[i]);
	memcpy(d->id[i], id, id_len);
	d->id_len[i] = id_len;
	d->offset[i] = offset;
	d->publish_ms[i] = publish_ms;
	return 0;
}

static void
dedups_free(struct dedups *d)
{
	for (int i = 0; i < d->n; i++)
		free(d->id[i]);
	memset(d, 0, sizeof(*d));
}

static void
load_dedups(struct store *s, struct dedups *d)
{
	struct store_load_cb cb = { .dedup = on_dedup_copy };

	memset(d, 0, sizeof(*d));
	assert_int_equal(store_load(s, &cb, d), 0);
}

/* Asserts that d holds id on (qid, part) with offset and publish_ms. */
static void
assert_dedup(const struct dedups *d, uint32_t qid, uint32_t part,
	     const void *id, uint16_t id_len, uint64_t offset,
	     uint64_t publish_ms)
{
	for (int i = 0; i < d->n; i++) {
		if (d->qid[i] != qid || d->part[i] != part ||
		    d->id_len[i] != id_len || memcmp(d->id[i], id, id_len) != 0)
			continue;
		assert_int_equal(d->offset[i], offset);
		assert_int_equal(d->publish_ms[i], publish_ms);
		return;
	}
	fail_msg("dedup id of %u bytes on %u/%u not loaded", id_len, qid, part);
}

/* A deterministic id of len bytes. */
static uint8_t *
make_id(size_t len, uint8_t seed)
{
	uint8_t *id = malloc(len);

	assert_non_null(id);
	for (size_t i = 0; i < len; i++)
		id[i] = (uint8_t)(i * 7u + seed);
	return id;
}

static void
put_dedup(struct store *s, uint32_t qid, uint32_t part, const void *id,
	  uint16_t id_len, uint64_t offset)
{
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);

	assert_int_equal(store_batch_put_dedup(b, qid, part, id, id_len, offset,
					       5000 + offset),
			 0);
	assert_int_equal(commit(s, b), 0);
}

static void
del_dedup(struct store *s, uint32_t qid, uint32_t part, const void *id,
	  uint16_t id_len)
{
	struct store_batch *b = store_batch_new(0);

	assert_int_equal(store_batch_del_dedup(b, qid, part, id, id_len), 0);
	assert_int_equal(commit(s, b), 0);
}

static void
test_store_dedup_round_trips_across_reopen_and_deletes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	uint8_t *inline_max = make_id(STORE_DEDUP_ID_INLINE_MAX, 1);
	uint8_t *hashed_min = make_id(STORE_DEDUP_ID_INLINE_MAX + 1, 2);
	uint8_t *longest = make_id(UINT16_MAX, 3);
	struct dedups d;

	put_dedup(s, 1, 0, "order-1", 7, 10);
	put_dedup(s, 1, 1, "order-1", 7, 11);
	put_dedup(s, 1, 0, inline_max, STORE_DEDUP_ID_INLINE_MAX, 12);
	put_dedup(s, 1, 0, hashed_min, STORE_DEDUP_ID_INLINE_MAX + 1, 13);
	put_dedup(s, 2, 0, longest, UINT16_MAX, 14);
	store_close(s);
	s = open_default(f);
	load_dedups(s, &d);
	assert_int_equal(d.n, 5);
	assert_dedup(&d, 1, 0, "order-1", 7, 10, 5010);
	assert_dedup(&d, 1, 1, "order-1", 7, 11, 5011);
	assert_dedup(&d, 1, 0, inline_max, STORE_DEDUP_ID_INLINE_MAX, 12, 5012);
	assert_dedup(&d, 1, 0, hashed_min, STORE_DEDUP_ID_INLINE_MAX + 1, 13,
		     5013);
	assert_dedup(&d, 2, 0, longest, UINT16_MAX, 14, 5014);
	dedups_free(&d);

	/* A put of a known id replaces its record. */
	put_dedup(s, 1, 1, "order-1", 7, 21);
	del_dedup(s, 1, 0, "order-1", 7);
	del_dedup(s, 1, 0, hashed_min, STORE_DEDUP_ID_INLINE_MAX + 1);
	del_dedup(s, 2, 0, longest, UINT16_MAX);
	del_dedup(s, 3, 0, "absent", 6); /* not an error */
	store_close(s);
	s = open_default(f);
	load_dedups(s, &d);
	assert_int_equal(d.n, 2);
	assert_dedup(&d, 1, 1, "order-1", 7, 21, 5021);
	assert_dedup(&d, 1, 0, inline_max, STORE_DEDUP_ID_INLINE_MAX, 12, 5012);
	dedups_free(&d);
	store_close(s);
	free(inline_max);
	free(hashed_min);
	free(longest);
}

static void
test_store_dedup_long_ids_sharing_a_prefix_stay_apart(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	uint8_t *a = make_id(1000, 4);
	uint8_t *b = make_id(1000, 4);
	struct dedups d;

	b[999] ^= 0xff; /* same first 999 bytes */
	put_dedup(s, 1, 0, a, 1000, 1);
	put_dedup(s, 1, 0, b, 1000, 2);
	put_dedup(s, 1, 0, a, 700, 3); /* a prefix of both */
	store_close(s);
	s = open_default(f);
	load_dedups(s, &d);
	assert_int_equal(d.n, 3);
	assert_dedup(&d, 1, 0, a, 1000, 1, 5001);
	assert_dedup(&d, 1, 0, b, 1000, 2, 5002);
	assert_dedup(&d, 1, 0, a, 700, 3, 5003);
	dedups_free(&d);
	del_dedup(s, 1, 0, b, 1000);
	load_dedups(s, &d);
	assert_int_equal(d.n, 2);
	assert_dedup(&d, 1, 0, a, 1000, 1, 5001);
	assert_dedup(&d, 1, 0, a, 700, 3, 5003);
	dedups_free(&d);
	store_close(s);
	free(a);
	free(b);
}

/* Checks one raw "dedup" record: its key, its CRC and its value tail. */
static void
assert_raw_dedup(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t key_len,
		 uint64_t offset, const void *tail, size_t tail_len)
{
	MDB_val k = { key_len, (void *)key }, v;
	const uint8_t *p;
	uint32_t crc;

	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 20 + tail_len);
	p = v.mv_data;
	crc = crc32c(crc32c(0, key, key_len), p + 4, v.mv_size - 4);
	assert_int_equal(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
				 ((uint32_t)p[2] << 8) | p[3],
			 crc);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(p[4 + i], (uint8_t)(offset >> (56 - 8 * i)));
		assert_int_equal(p[12 + i],
				 (uint8_t)((5000 + offset) >> (56 - 8 * i)));
	}
	if (tail_len > 0)
		assert_memory_equal(p + 20, tail, tail_len);
}

static void
test_store_dedup_keys_follow_the_documented_rule(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	static const uint8_t qp[8] = { 1, 2, 3, 4, 0, 0, 0, 5 };
	uint8_t *inline_max = make_id(STORE_DEDUP_ID_INLINE_MAX, 5);
	uint8_t *long_id = make_id(600, 6);
	uint8_t key[STORE_DEDUP_KEY_MAX];
	uint64_t h = XXH64(long_id, 600, 0);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	put_dedup(s, 0x01020304, 5, "abc", 3, 7);
	put_dedup(s, 0x01020304, 5, inline_max, STORE_DEDUP_ID_INLINE_MAX, 8);
	put_dedup(s, 0x01020304, 5, long_id, 600, 9);
	store_close(s);
	raw_open(f->dir, &env, &txn, "dedup", &dbi);
	assert_int_equal(mdb_stat(txn, dbi, &st), 0);
	assert_int_equal(st.ms_entries, 3);
	/* Short ids: qid | part | id; the value holds no id. */
	memcpy(key, qp, 8);
	memcpy(key + 8, "abc", 3);
	assert_raw_dedup(txn, dbi, key, 11, 7, NULL, 0);
	memcpy(key + 8, inline_max, STORE_DEDUP_ID_INLINE_MAX);
	assert_raw_dedup(txn, dbi, key, 8 + STORE_DEDUP_ID_INLINE_MAX, 8, NULL,
			 0);
	/* Longer: qid | part | first 495 bytes | XXH64; the value ends
	 * with the whole id. */
	memcpy(key + 8, long_id, STORE_DEDUP_ID_PREFIX);
	for (int i = 0; i < 8; i++)
		key[8 + STORE_DEDUP_ID_PREFIX + i] =
			(uint8_t)(h >> (56 - 8 * i));
	assert_raw_dedup(txn, dbi, key, STORE_DEDUP_KEY_MAX, 9, long_id, 600);
	raw_close(env, txn);
	free(inline_max);
	free(long_id);
}

static void
test_store_dedup_rejects_an_empty_id(void **state)
{
	struct store_batch *b = store_batch_new(0);

	(void)state;
	assert_int_equal(store_batch_put_dedup(b, 1, 0, "", 0, 1, 1), -EINVAL);
	assert_int_equal(store_batch_del_dedup(b, 1, 0, "", 0), -EINVAL);
	assert_int_equal(store_batch_ops(b), 0);
	store_batch_free(b);
}

static void
test_store_load_fails_on_corrupt_dedup_record(void **state)
{
	struct fixture *f = *state;
	static const uint8_t key[11] = {
		0, 0, 0, 1, 0, 0, 0, 0, 'a', 'b', 'c'
	};
	struct store *s = open_default(f);
	struct loaded l;

	put_dedup(s, 1, 0, "abc", 3, 1);
	store_close(s);
	corrupt_record(f->dir, "dedup", key, sizeof(key));
	s = open_default(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), -RMQ_ECORRUPT);
	store_close(s);
}

/* ---------------------------------------------------------- producers */

#define SAMPLE_SKIPS 3 /* skips of a sample batch that has them */

/* Producer records as loaded, skips copied out (they live only as long
 * as the callback). */
struct producers {
	int n;
	uint32_t qid[4];
	uint32_t part[4];
	uint64_t producer_id[4];
	struct store_producer p[4];
	struct store_producer_skip skips[4][STORE_PRODUCER_BATCHES]
					[SAMPLE_SKIPS];
};

static int
on_producer_copy(void *ctx, uint32_t qid, uint32_t part, uint64_t producer_id,
		 const struct store_producer *p)
{
	struct producers *r = ctx;
	int i = r->n++;

	assert_true(i < 4);
	r->qid[i] = qid;
	r->part[i] = part;
	r->producer_id[i] = producer_id;
	r->p[i] = *p;
	for (uint32_t j = 0; j < p->n; j++) {
		assert_true(p->batches[j].nskips <= SAMPLE_SKIPS);
		if (p->batches[j].nskips > 0)
			memcpy(r->skips[i][j], p->batches[j].skips,
			       p->batches[j].nskips *
				       sizeof(r->skips[i][j][0]));
		r->p[i].batches[j].skips = r->skips[i][j];
	}
	return 0;
}

static void
load_producers(struct store *s, struct producers *r)
{
	struct store_load_cb cb = { .producer = on_producer_copy };

	memset(r, 0, sizeof(*r));
	assert_int_equal(store_load(s, &cb, r), 0);
}

/* Odd batches have skips: refused runs and duplicates. */
static struct store_producer_skip sample_skips[SAMPLE_SKIPS] = {
	{ .index = 0, .len = 1, .code = 0, .offset = 3 },
	{ .index = 2, .len = 4, .code = 0, .offset = UINT64_MAX - 4 },
	{ .index = 7, .len = 3, .code = 13, .offset = 0 },
};

static struct store_producer
sample_producer(uint32_t n, uint64_t base)
{
	struct store_producer p;

	memset(&p, 0, sizeof(p));
	p.last_used_ms = 1700000000000ull + base;
	p.n = n;
	for (uint32_t i = 0; i < n && i < STORE_PRODUCER_BATCHES; i++) {
		p.batches[i].first_seq = base + 10 * i;
		p.batches[i].count = 10 + i;
		p.batches[i].first_offset = (base << 32) + 100 * i;
		if (i % 2 == 1) {
			p.batches[i].nskips = SAMPLE_SKIPS - i / 2 % 2;
			p.batches[i].skips = sample_skips;
		}
	}
	return p;
}

static void
assert_producer(const struct producers *r, int i, uint32_t qid, uint32_t part,
		uint64_t producer_id, const struct store_producer *want)
{
	assert_true(i < r->n);
	assert_int_equal(r->qid[i], qid);
	assert_int_equal(r->part[i], part);
	assert_int_equal(r->producer_id[i], producer_id);
	assert_int_equal(r->p[i].last_used_ms, want->last_used_ms);
	assert_int_equal(r->p[i].n, want->n);
	for (uint32_t j = 0; j < want->n; j++) {
		assert_int_equal(r->p[i].batches[j].first_seq,
				 want->batches[j].first_seq);
		assert_int_equal(r->p[i].batches[j].count,
				 want->batches[j].count);
		assert_int_equal(r->p[i].batches[j].first_offset,
				 want->batches[j].first_offset);
		assert_int_equal(r->p[i].batches[j].nskips,
				 want->batches[j].nskips);
		for (uint32_t k = 0; k < want->batches[j].nskips; k++) {
			const struct store_producer_skip *a, *e;

			a = &r->p[i].batches[j].skips[k];
			e = &want->batches[j].skips[k];
			assert_int_equal(a->index, e->index);
			assert_int_equal(a->len, e->len);
			assert_int_equal(a->code, e->code);
			assert_int_equal(a->offset, e->offset);
		}
	}
}

static void
test_store_producer_round_trips_across_reopen_and_deletes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_producer full = sample_producer(STORE_PRODUCER_BATCHES, 7);
	struct store_producer empty = sample_producer(0, 8);
	struct store_producer two = sample_producer(2, 9);
	struct store_producer over = sample_producer(STORE_PRODUCER_BATCHES, 1);
	struct producers r;

	over.n = STORE_PRODUCER_BATCHES + 1;
	assert_int_equal(store_batch_put_producer(b, 1, 0, 42, &over), -EINVAL);
	assert_int_equal(store_batch_ops(b), 0);
	assert_int_equal(store_batch_put_producer(b, 2, 0, 5, &two), 0);
	assert_int_equal(store_batch_put_producer(b, 1, 1, UINT64_MAX, &empty),
			 0);
	assert_int_equal(store_batch_put_producer(b, 1, 0, 42, &full), 0);
	assert_int_equal(commit(s, b), 0);
	store_close(s);
	s = open_default(f);
	load_producers(s, &r);
	assert_int_equal(r.n, 3); /* ascending (qid, part, producer_id) */
	assert_producer(&r, 0, 1, 0, 42, &full);
	assert_producer(&r, 1, 1, 1, UINT64_MAX, &empty);
	assert_producer(&r, 2, 2, 0, 5, &two);

	/* A put replaces the record; deletes take one producer only. */
	two = sample_producer(1, 10);
	b = store_batch_new(0);
	assert_int_equal(store_batch_put_producer(b, 2, 0, 5, &two), 0);
	assert_int_equal(store_batch_del_producer(b, 1, 0, 42), 0);
	assert_int_equal(store_batch_del_producer(b, 9, 9, 9), 0); /* absent */
	assert_int_equal(commit(s, b), 0);
	store_close(s);
	s = open_default(f);
	load_producers(s, &r);
	assert_int_equal(r.n, 2);
	assert_producer(&r, 0, 1, 1, UINT64_MAX, &empty);
	assert_producer(&r, 1, 2, 0, 5, &two);
	store_close(s);
}

static void
test_store_load_fails_on_corrupt_producer_record(void **state)
{
	struct fixture *f = *state;
	static const uint8_t key[16] = { 0, 0, 0, 1, 0, 0, 0, 0,
					 0, 0, 0, 0, 0, 0, 0, 3 };
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_producer p = sample_producer(3, 1);
	struct loaded l;

	assert_int_equal(store_batch_put_producer(b, 1, 0, 3, &p), 0);
	assert_int_equal(commit(s, b), 0);
	store_close(s);
	corrupt_record(f->dir, "producers", key, sizeof(key));
	s = open_default(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), -RMQ_ECORRUPT);
	store_close(s);
}

/* A record whose CRC holds but whose skips do not fit their batch (past
 * its count, overlapping, empty) is refused at load like a corrupt one. */
static void
test_store_load_refuses_producer_skips_that_do_not_fit(void **state)
{
	struct fixture *f = *state;
	static const struct store_producer_skip bad[][2] = {
		{ { .index = 1, .len = 5 }, { 0 } }, /* past count */
		{ { .index = 0, .len = 2 },
		  { .index = 1, .len = 1 } },	     /* overlap */
		{ { .index = 0, .len = 0 }, { 0 } }, /* empty */
	};
	static const uint32_t nbad[] = { 1, 2, 1 };

	for (size_t i = 0; i < sizeof(nbad) / sizeof(nbad[0]); i++) {
		struct store *s = open_default(f);
		struct store_batch *b = store_batch_new(0);
		struct store_producer p = sample_producer(1, 1);
		struct loaded l;

		p.batches[0].count = 3;
		p.batches[0].nskips = nbad[i];
		p.batches[0].skips = (struct store_producer_skip *)bad[i];
		assert_int_equal(store_batch_put_producer(b, 1, 0, 3, &p), 0);
		assert_int_equal(commit(s, b), 0);
		store_close(s);
		s = open_default(f);
		memset(&l, 0, sizeof(l));
		assert_int_equal(store_load(s, &all_cb, &l), -RMQ_ECORRUPT);
		b = store_batch_new(0);
		assert_int_equal(store_batch_del_producer(b, 1, 0, 3), 0);
		assert_int_equal(commit(s, b), 0);
		store_close(s);
	}
}

/* ------------------------------------ dedup and producers with the rest */

/* Dedup and producer records on queues 1 (partitions 0 and 1) and 2, one
 * of each keyed under qid 1 | 1, the prefix of group 1 of queue 1. */
static void
put_sample_dedup_and_producers(struct store *s)
{
	struct store_batch *b = store_batch_new(STORE_BATCH_GROWS);
	struct store_producer p = sample_producer(2, 1);
	uint8_t *long_id = make_id(800, 9);

	assert_int_equal(store_batch_put_dedup(b, 1, 0, "x", 1, 4, 1), 0);
	assert_int_equal(store_batch_put_dedup(b, 1, 1, long_id, 800, 41, 1),
			 0);
	assert_int_equal(store_batch_put_dedup(b, 2, 0, "y", 1, 0, 1), 0);
	assert_int_equal(store_batch_put_producer(b, 1, 1, 77, &p), 0);
	assert_int_equal(store_batch_put_producer(b, 2, 0, 78, &p), 0);
	assert_int_equal(commit(s, b), 0);
	free(long_id);
}

static void
test_store_load_reports_dedup_and_producers_after_failures(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct loaded l;

	put_sample_records(s);
	put_sample_dedup_and_producers(s);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	/* queues, partitions, groups, group states, failures, dedup,
	 * producers, messages */
	assert_string_equal(l.trace, "QQPPPGGSSFDDDRRMMMM");
	store_close(s);
}

static void
test_store_del_queue_removes_dedup_and_producer_records(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct dedups d;
	struct producers r;

	put_sample_records(s);
	put_sample_dedup_and_producers(s);
	assert_int_equal(store_batch_del_queue(b, 1), 0);
	assert_int_equal(commit(s, b), 0);
	store_close(s);
	s = open_default(f);
	load_dedups(s, &d);
	assert_int_equal(d.n, 1);
	assert_dedup(&d, 2, 0, "y", 1, 0, 1);
	dedups_free(&d);
	load_producers(s, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.qid[0], 2);
	assert_int_equal(r.producer_id[0], 78);
	store_close(s);
}

static void
test_store_del_group_keeps_dedup_and_producer_records(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct loaded l;

	put_sample_records(s);
	put_sample_dedup_and_producers(s);
	assert_int_equal(store_batch_del_group(b, 1, 1), 0);
	assert_int_equal(commit(s, b), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &all_cb, &l), 0);
	assert_int_equal(l.ndedups, 3);
	assert_int_equal(l.nproducers, 2);
	store_close(s);
}

static int
stop_at_dedup(void *ctx, uint32_t qid, uint32_t part, const void *id,
	      uint16_t id_len, uint64_t offset, uint64_t publish_ms)
{
	struct loaded *l = ctx;

	on_dedup(ctx, qid, part, id, id_len, offset, publish_ms);
	return l->ndedups == 2 ? -43 : 0;
}

static void
test_store_load_stops_on_dedup_callback_error(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_load_cb cb = all_cb;
	struct loaded l;

	put_sample_records(s);
	put_sample_dedup_and_producers(s);
	cb.dedup = stop_at_dedup;
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_load(s, &cb, &l), -43);
	assert_string_equal(l.trace, "QQPPPGGSSFDD");
	store_close(s);
}

/* ------------------------------------------------------- format 5 */

static void
test_store_creates_every_database_of_format_6(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = { "meta",	  "users",  "queues",
					     "parts",	  "msgs",   "dedup",
					     "producers", "groups", "gstate",
					     "fails" };
	struct store *s = open_default(f);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 6, "format" }, v;
	const uint8_t *p;

	store_close(s);
	assert_int_equal(STORE_FORMAT_VERSION, 6);
	raw_open(f->dir, &env, &txn, "meta", &dbi);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 8);
	p = v.mv_data;
	assert_int_equal(p[4] | p[5] | p[6], 0);
	assert_int_equal(p[7], 6);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
	raw_close(env, txn);
}

static void
test_store_refuses_older_format_versions(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = { f->dir, TEST_MAP_BYTES, STORE_SYNC_ALWAYS,
				0,	test_journal(), 0 };
	struct store *s = open_default(f);
	store_close(s);
	for (uint32_t v = 1; v < 5; v++) {
		write_format(f->dir, v, true);
		assert_int_equal(store_open(&s, &o), -RMQ_EFORMAT);
		assert_null(s);
	}
}

/* A user record as the load reports it, copied. */
struct user_seen {
	int n;
	char name[STORE_USER_MAX + 1];
	struct store_user u;
	char patterns[4][32];
	uint8_t bits[4];
};

static int
user_collect(void *ctx, const struct store_user *u)
{
	struct user_seen *seen = ctx;

	seen->n++;
	memcpy(seen->name, u->name, u->name_len);
	seen->name[u->name_len] = '\0';
	seen->u = *u;
	seen->u.name = seen->name;
	for (uint32_t i = 0; i < u->nperms && i < 4; i++) {
		memcpy(seen->patterns[i], u->perms[i].pattern,
		       u->perms[i].pattern_len);
		seen->patterns[i][u->perms[i].pattern_len] = '\0';
		seen->bits[i] = u->perms[i].bits;
	}
	seen->u.perms = NULL;
	return 0;
}

static void
commit_batch(struct store *s, struct store_batch *b)
{
	assert_int_equal(commit(s, b), 0);
}

static int
queue_count(void *ctx, const struct store_queue *q)
{
	(void)q;
	++*(int *)ctx;
	return 0;
}

static void
test_store_user_round_trips_keys_perms_and_quota(void **state)
{
	struct fixture *f = *state;
	struct store_perm perms[2] = {
		{ "jobs.*", 6, STORE_PERM_PUBLISH | STORE_PERM_CONSUME },
		{ "*", 1, STORE_PERM_ADMIN },
	};
	struct store_user u = {
		.name = "alice@web",
		.name_len = 9,
		.created_ms = 1234,
		.iterations = 4096,
		.salt_len = 3,
		.salt = { 1, 2, 3 },
		.quota = { 10, 500, 1 << 20, 64 },
		.nperms = 2,
		.perms = perms,
	};
	struct store_load_cb cb = { .user = user_collect };
	struct user_seen seen = { 0 };
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);

	memset(u.stored_key, 0xaa, STORE_KEY_LEN);
	memset(u.server_key, 0x55, STORE_KEY_LEN);
	assert_int_equal(store_batch_put_user(b, &u), 0);
	commit_batch(s, b);
	store_close(s);

	s = open_default(f);
	assert_int_equal(store_load(s, &cb, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.name, "alice@web");
	assert_int_equal(seen.u.created_ms, 1234);
	assert_int_equal(seen.u.iterations, 4096);
	assert_int_equal(seen.u.salt_len, 3);
	assert_memory_equal(seen.u.salt, u.salt, 3);
	assert_memory_equal(seen.u.stored_key, u.stored_key, STORE_KEY_LEN);
	assert_memory_equal(seen.u.server_key, u.server_key, STORE_KEY_LEN);
	assert_int_equal(seen.u.quota.max_connections, 10);
	assert_int_equal(seen.u.quota.publish_messages_per_s, 500);
	assert_int_equal(seen.u.quota.publish_bytes_per_s, 1 << 20);
	assert_int_equal(seen.u.quota.max_leases, 64);
	assert_int_equal(seen.u.nperms, 2);
	assert_string_equal(seen.patterns[0], "jobs.*");
	assert_int_equal(seen.bits[0], STORE_PERM_PUBLISH | STORE_PERM_CONSUME);
	assert_string_equal(seen.patterns[1], "*");
	assert_int_equal(seen.bits[1], STORE_PERM_ADMIN);

	/* A queue delete whose qid bytes begin the name leaves it alone. */
	b = store_batch_new(0);
	assert_int_equal(store_batch_del_queue(b, 0x616c6963u /* "alic" */), 0);
	commit_batch(s, b);
	seen.n = 0;
	assert_int_equal(store_load(s, &cb, &seen), 0);
	assert_int_equal(seen.n, 1);

	b = store_batch_new(0);
	assert_int_equal(store_batch_del_user(b, "alice@web", 9), 0);
	commit_batch(s, b);
	seen.n = 0;
	assert_int_equal(store_load(s, &cb, &seen), 0);
	assert_int_equal(seen.n, 0);
	store_close(s);
}

static void
test_store_refuses_a_malformed_user(void **state)
{
	struct store_user u = { .name = "x", .name_len = 1, .salt_len = 0 };
	struct store_perm empty = { "", 0, STORE_PERM_ADMIN };
	struct store_batch *b = store_batch_new(0);

	(void)state;
	assert_int_equal(store_batch_put_user(b, &u), -EINVAL);
	u.salt_len = 1;
	u.nperms = 1;
	u.perms = &empty;
	assert_int_equal(store_batch_put_user(b, &u), -EINVAL);
	u.nperms = 0;
	u.name_len = STORE_USER_MAX + 1;
	assert_int_equal(store_batch_put_user(b, &u), -EINVAL);
	assert_int_equal(store_batch_ops(b), 0);
	store_batch_free(b);
}

/* The secret is made once per data directory and kept. */
static void
test_store_secret_is_kept_across_opens(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	uint8_t first[STORE_SECRET_LEN], zero[STORE_SECRET_LEN] = { 0 };

	memcpy(first, store_secret(s), sizeof(first));
	assert_memory_not_equal(first, zero, sizeof(first));
	store_close(s);
	s = open_default(f);
	assert_memory_equal(store_secret(s), first, sizeof(first));
	store_close(s);
}

/* A format 5 directory (no "users") opens as 6, in place, and keeps its
 * queues. */
static void
test_store_upgrades_format_5_in_place(void **state)
{
	struct fixture *f = *state;
	struct store_queue q = { .qid = 7, .partitions = 2, .name = "jobs" };
	struct store_load_cb cb = { .queue = queue_count };
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int queues = 0;

	assert_int_equal(store_batch_put_queue(b, &q), 0);
	commit_batch(s, b);
	store_close(s);
	raw_open(f->dir, &env, &txn, "users", &dbi);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	raw_close(env, txn);
	write_format(f->dir, 5, true);

	s = open_default(f);
	assert_int_equal(store_load(s, &cb, &queues), 0);
	assert_int_equal(queues, 1);
	store_close(s);
	raw_open(f->dir, &env, &txn, "users", &dbi);
	raw_close(env, txn);
	s = open_default(f);
	assert_int_equal(store_boot_epoch(s), 3);
	store_close(s);
}

/* Acked offsets above the floor are stored as runs: a floor held back by
 * one lease while a thousand later messages are acked is one run. */
static int
gstate_collect(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
	       uint64_t ack_floor, const struct offset_run *runs, uint32_t n)
{
	uint64_t *out = ctx;

	(void)qid;
	(void)gid;
	(void)part;
	out[0] = ack_floor;
	out[1] = n;
	for (uint32_t i = 0; i < n && i < 8; i++) {
		out[2 + 2 * i] = runs[i].first;
		out[3 + 2 * i] = runs[i].count;
	}
	return 0;
}

static void
test_store_group_state_is_stored_as_runs(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_load_cb cb = { .group_state = gstate_collect };
	static const struct offset_run runs[3] = { { 10, 1 },
						   { 12, 1000 },
						   { 2000, 1 } };
	uint64_t out[2 + 16];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;

	/* 10 | 12 .. 1011 | 2000, above a floor of 5: three runs. */
	assert_int_equal(store_batch_put_group_state(b, 1, 1, 0, 5, runs, 3),
			 0);
	commit(s, b);
	store_close(s);
	raw_open(f->dir, &env, &txn, "gstate", &dbi);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	assert_int_equal(v.mv_size, 16 + 16 * 3);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	s = open_default(f);
	assert_int_equal(store_load(s, &cb, out), 0);
	assert_int_equal(out[0], 5);
	assert_int_equal(out[1], 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(out[2 + 2 * i], runs[i].first);
		assert_int_equal(out[3 + 2 * i], runs[i].count);
	}
	store_close(s);
}

/* A run of more than 2^32 offsets (a floor held back for very long) is
 * written and read back whole, not taken for a corrupt record. */
static void
test_store_group_state_run_over_2_pow_32_loads(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_default(f);
	struct store_batch *b = store_batch_new(0);
	struct store_load_cb cb = { .group_state = gstate_collect };
	static const struct offset_run runs[2] = { { 7, 5000000000ull },
						   { 5000000009ull, 1 } };
	uint64_t out[2 + 16];

	(void)state;
	assert_int_equal(store_batch_put_group_state(b, 1, 1, 0, 5, runs, 2),
			 0);
	commit(s, b);
	store_close(s);
	s = open_default(f);
	assert_int_equal(store_load(s, &cb, out), 0);
	assert_int_equal(out[1], 2);
	assert_int_equal(out[2], 7);
	assert_int_equal(out[3], 5000000000ull);
	assert_int_equal(out[4], 5000000009ull);
	store_close(s);
}

/* A producer record's skip codes are part of the format: the numbers
 * stored are those the wire's ErrorCode gave them when they were first
 * written, whatever the broker's own codes become. */
static void
test_producer_skip_codes_keep_their_numbers(void **state)
{
	(void)state;
	assert_int_equal(store_skip_code(0), STORE_SKIP_OK);
	assert_int_equal(store_skip_code(-RMQ_EQUEUE_FULL), 6);
	assert_int_equal(store_skip_code(-RMQ_EMESSAGE_TOO_LARGE), 12);
	assert_int_equal(store_skip_code(-RMQ_EINVALID_ARGUMENT), 13);
	assert_int_equal(store_skip_code(-RMQ_EINTERNAL), 16);
	/* System and private codes: INTERNAL. */
	assert_int_equal(store_skip_code(-ENOMEM), 16);
	assert_int_equal(store_skip_code(-RMQ_ESTORAGE), 16);
	assert_int_equal(store_skip_rc(0), 0);
	assert_int_equal(store_skip_rc(6), -RMQ_EQUEUE_FULL);
	assert_int_equal(store_skip_rc(13), -RMQ_EINVALID_ARGUMENT);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_matches_known_vectors),
		cmocka_unit_test(test_producer_skip_codes_keep_their_numbers),
		cmocka_unit_test(test_crc32c_hardware_and_portable_agree),
		cmocka_unit_test(test_crc32c_continues_across_calls),
		T(test_store_msg_round_trips_key_headers_and_dedup),
		T(test_store_msg_round_trips_empty_payload),
		T(test_store_msg_round_trips_payload_larger_than_page),
		T(test_store_batch_copies_its_inputs),
		cmocka_unit_test(test_store_batch_rejects_header_name_over_u16),
		cmocka_unit_test(
			test_store_headers_next_rejects_truncated_block),
		T(test_store_msg_next_skips_gaps_and_stops_at_partition_end),
		T(test_store_msg_get_of_missing_offset_is_notfound),
		T(test_store_read_sees_new_commits_once_reaped_or_released),
		T(test_store_del_msgs_removes_exactly_the_range),
		T(test_store_records_round_trip_through_load_after_reopen),
		T(test_store_load_reports_in_documented_order),
		T(test_store_reopens_with_next_offsets),
		T(test_store_load_stops_on_callback_error),
		T(test_store_del_queue_removes_every_record_of_the_queue),
		T(test_store_del_queue_of_last_qid_has_no_upper_bound),
		T(test_store_del_group_removes_state_and_failures),
		T(test_store_del_failures_removes_the_range),
		T(test_store_boot_epoch_increases_across_opens),
		T(test_store_second_open_of_dir_fails_locked),
		T(test_store_refuses_other_format_version),
		T(test_store_detects_corrupt_message_and_reads_others),
		T(test_store_load_fails_on_corrupt_group_record),
		T(test_store_small_map_refuses_grows_but_commits_deletes),
		T(test_store_full_resumes_only_with_half_a_headroom_free),
		T(test_store_batch_over_map_fails_alone),
		T(test_store_usage_reports_map_and_growth),
		T(test_store_group_commit_completes_in_submission_order),
		T(test_store_drain_waits_for_every_batch),
		T(test_store_empty_batch_completes),
		T(test_store_close_delivers_pending_completions),
		T(test_store_close_fails_batches_submitted_by_last_completions),
		T(test_store_reap_inside_completion_keeps_order),
		T(test_store_flush_confirms_unsynced_batches_itself),
		cmocka_unit_test(test_store_batch_rejects_unterminated_name),
		T(test_store_sync_always_keeps_confirmed_batches_through_sigkill),
		T(test_store_sync_interval_keeps_confirmed_batches_through_sigkill),
		T(test_store_sync_never_keeps_confirmed_batches_through_sigkill),
		T(test_store_interval_drain_does_not_wait_the_interval),
		T(test_store_interval_commits_a_full_group_without_waiting),
		T(test_store_data_file_is_preallocated_ahead_in_synced_modes),
		T(test_store_sync_never_does_not_preallocate),
		T(test_store_open_rejects_bad_options),
		T(test_store_msg_get_raw_returns_the_stored_bytes),
		T(test_store_msg_get_raw_returns_a_corrupt_record_as_stored),
		T(test_store_dedup_round_trips_across_reopen_and_deletes),
		T(test_store_dedup_long_ids_sharing_a_prefix_stay_apart),
		T(test_store_dedup_keys_follow_the_documented_rule),
		cmocka_unit_test(test_store_dedup_rejects_an_empty_id),
		T(test_store_load_fails_on_corrupt_dedup_record),
		T(test_store_producer_round_trips_across_reopen_and_deletes),
		T(test_store_private_messages_are_reported_at_load),
		T(test_store_load_refuses_producer_skips_that_do_not_fit),
		T(test_store_load_fails_on_corrupt_producer_record),
		T(test_store_load_reports_dedup_and_producers_after_failures),
		T(test_store_del_queue_removes_dedup_and_producer_records),
		T(test_store_del_group_keeps_dedup_and_producer_records),
		T(test_store_load_stops_on_dedup_callback_error),
		T(test_store_creates_every_database_of_format_6),
		T(test_store_user_round_trips_keys_perms_and_quota),
		T(test_store_refuses_a_malformed_user),
		T(test_store_upgrades_format_5_in_place),
		T(test_store_secret_is_kept_across_opens),
		T(test_store_refuses_older_format_versions),
		T(test_store_group_state_is_stored_as_runs),
		T(test_store_group_state_run_over_2_pow_32_loads),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
