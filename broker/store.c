/*
 * store: the LMDB storage engine (see store.h for the contract and the
 * byte-exact layout).
 *
 * Owns the LMDB environment, the data directory lock, the storage thread
 * and the loop thread's read transaction. Everything LMDB stays in this
 * file: its return codes are mapped to ringmq codes before they leave.
 *
 * Threads. The loop thread builds batches (copies of every input, encoded
 * into one buffer per batch), submits them and reaps completions; it also
 * owns the read transaction (reset between loop passes). The storage
 * thread takes the pending batches (all of them, up to GROUP_MAX_BYTES),
 * applies each in a nested transaction of one write transaction and
 * commits that once (group commit), then hands the batches back through
 * the done list and the eventfd. One mutex guards both lists and the
 * counters.
 *
 * Invariant: batches complete, and their callbacks run, in submission
 * order; a failed batch leaves nothing behind and fails alone.
 *
 * Space: a batch flagged STORE_BATCH_GROWS is refused with
 * -RMQ_ESTORAGE_FULL once the bytes in use (pages up to the high-water
 * mark minus the free pages LMDB keeps for reuse) reach the map size minus
 * the headroom, or once the filesystem (plus the free pages inside the
 * file) has less than two headrooms left. Headroom = map size / 16,
 * clamped to [64 KiB, 1 GiB]: enough for acks, group states and deletes
 * (which dirty few pages and free many) to keep committing, without
 * holding back a large share of a big map.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define HEADROOM_MIN_BYTES (64ull << 10)
#define HEADROOM_MAX_BYTES (1ull << 30)
#define MSG_FIXED_BYTES	   32u /* crc .. dedup_len of a "msgs" value */
#define QUEUE_FIXED_BYTES  64u /* crc .. dlq_len of a "queues" value */
#define GROUP_FIXED_BYTES  14u /* crc .. name_len of a "groups" value */
#define FAIL_BYTES	   32u /* a "fails" value */
#define MSG_RECORD_VERSION 1u
/* Encoded batch bytes per commit. A parent transaction cannot spill the
 * pages its committed children dirtied, so one commit must stay well
 * inside LMDB's dirty-page limit (128 Ki pages = 512 MiB): taking every
 * pending batch of a long backlog at once failed with MDB_TXN_FULL. */
#define GROUP_MAX_BYTES (64u << 20)

enum store_db {
	DB_META,
	DB_QUEUES,
	DB_PARTS,
	DB_MSGS,
	DB_GROUPS,
	DB_GSTATE,
	DB_FAILS,
	DB_COUNT,
};

static const char *const db_names[DB_COUNT] = {
	"meta", "queues", "parts", "msgs", "groups", "gstate", "fails",
};

/* Operations encoded in a batch buffer: an op_hdr, the key, then the value
 * (OP_PUT: the full record, CRC included) or the exclusive upper bound
 * (OP_DEL_RANGE: deletes keys in [key, bound); an empty bound means no
 * upper bound). In memory only, native byte order. */
enum { OP_PUT = 1, OP_DEL_RANGE = 2 };

struct op_hdr {
	uint8_t op;
	uint8_t db;
	uint16_t key_len;
	uint32_t val_len;
};

struct store_batch {
	struct store_batch *next; /* owned by whichever list holds the batch */
	uint8_t *buf;		  /* owned: the encoded operations */
	size_t len;		  /* bytes used in buf */
	size_t cap;		  /* bytes allocated in buf */
	size_t ops;
	unsigned flags;
	int status; /* set by the storage thread */
	store_done_fn done;
	void *ctx; /* borrowed: the submitter's, handed back to done */
};

struct store {
	MDB_env *env; /* owned */
	MDB_dbi dbi[DB_COUNT];
	char *dir;    /* owned copy, for log lines */
	int lock_fd;  /* owned: DIR/LOCK, flock'ed */
	int event_fd; /* owned: written by the storage thread */
	enum store_sync sync;
	uint64_t sync_interval_ns;
	uint64_t boot_epoch;
	uint64_t page_bytes;
	uint64_t map_bytes;
	uint64_t headroom_bytes;

	/* Loop thread only. */
	MDB_txn *rtxn;	   /* owned: the read transaction, reset per pass */
	MDB_cursor *rcur;  /* owned: cursor on "msgs" in rtxn */
	bool is_rtxn_live; /* rtxn begun or renewed, not reset */
	bool is_reaping;   /* inside store_reap: a nested call waits */

	/* Storage thread only (and store_open before the thread starts). */
	MDB_txn *stat_txn; /* owned: read txn for freelist counts */
	uint64_t last_commit_ns;
	bool is_full_logged;
	bool is_statvfs_logged;

	/* Shared, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t work_cond;    /* storage thread: work, drain or stop */
	pthread_cond_t done_cond;    /* drainers: completed advanced */
	struct store_batch *pending; /* owned: submitted, not taken */
	struct store_batch **pending_tail; /* borrowed: into pending list */
	uint64_t pending_bytes;		   /* encoded bytes in pending */
	struct store_batch *done_list;	   /* owned: completed, not reaped */
	struct store_batch **done_tail;	   /* borrowed: into done list */
	uint64_t submitted;
	uint64_t completed;
	unsigned drain_waiters;
	bool is_stopping;

	pthread_t thread;
	bool is_thread_started;
	bool is_sync_init; /* lock and conds initialised */
	bool is_env_open;  /* mdb_env_open succeeded */

	/* Written by the storage thread after each commit, read anywhere. */
	_Atomic uint64_t used_bytes;
	_Atomic uint64_t high_water_bytes;
	atomic_bool is_panicked;
};

/* ------------------------------------------------------------- crc32c */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
				(crc_table[t - 1][i] >> 8) ^
				crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slicing-by-8 over aligned 8-byte words, byte at a time at both ends. */
uint32_t
store_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	(void)pthread_once(&crc_once, crc_init); /* cannot fail once inited */
	crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^
		      crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^
		      crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
#endif
	while (len > 0) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	return ~crc;
}

/* --------------------------------------------------- byte-order helpers */

static uint8_t *
put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i > 0; i--) {
		p[i - 1] = (uint8_t)v;
		v >>= 8;
	}
	return p + n;
}

static uint64_t
get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint8_t *
put_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n > 0)
		memcpy(p, src, n);
	return p + n;
}

/* A bounds-checked reader over a record; is_bad latches on overrun. */
struct rd {
	const uint8_t *p;
	size_t left;
	bool is_bad;
};

static const uint8_t *
rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->left < n) {
		r->is_bad = true;
		r->left = 0;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t
rd_be(struct rd *r, size_t n)
{
	const uint8_t *p = rd_bytes(r, n);

	return p != NULL ? get_be(p, n) : 0;
}

/* Copies a length-prefixed name into a NUL-terminated buffer of cap. */
static void
rd_name(struct rd *r, char *dst, size_t cap)
{
	size_t n = (size_t)rd_be(r, 2);
	const uint8_t *p = rd_bytes(r, n);

	if (p == NULL || n >= cap) {
		r->is_bad = true;
		dst[0] = '\0';
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static uint32_t
record_crc(const MDB_val *k, const uint8_t *val, size_t val_len)
{
	uint32_t crc = store_crc32c(0, k->mv_data, k->mv_size);

	return store_crc32c(crc, val + 4, val_len - 4);
}

static bool
record_crc_ok(const MDB_val *k, const MDB_val *v)
{
	if (v->mv_size < 4)
		return false;
	return record_crc(k, v->mv_data, v->mv_size) ==
	       (uint32_t)get_be(v->mv_data, 4);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------ error mapping */

/* Maps an LMDB (or errno) code to a ringmq code, logging what is not
 * routine. LMDB codes never leave this file. */
static int
store_err(struct store *s, int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return -RMQ_ENOTFOUND;
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT: return -RMQ_ESTORAGE_FULL;
	case ENOMEM: return -ENOMEM;
	case MDB_PANIC:
		if (!atomic_exchange(&s->is_panicked, true))
			log_error("store: %s: LMDB environment panicked during "
				  "%s: every later write fails until restart",
				  s->dir, what);
		return -RMQ_ESTORAGE;
	default:
		log_error("store: %s: %s: %s", s->dir, what, mdb_strerror(rc));
		return -RMQ_ESTORAGE;
	}
}

/* ------------------------------------------------------------- batches */

struct store_batch *
store_batch_new(unsigned flags)
{
	struct store_batch *b = calloc(1, sizeof(*b));

	if (b != NULL)
		b->flags = flags;
	return b;
}

void
store_batch_free(struct store_batch *b)
{
	if (b == NULL)
		return;
	free(b->buf);
	free(b);
}

size_t
store_batch_ops(const struct store_batch *b)
{
	return b->ops;
}

/* Appends one operation; returns where its key goes (the value or bound
 * follows the key), or NULL when out of memory (batch unchanged). A put's
 * caller fills key and value, then calls batch_seal. */
static uint8_t *
batch_op(struct store_batch *b, unsigned op, enum store_db db, size_t key_len,
	 size_t val_len)
{
	struct op_hdr h = { (uint8_t)op, (uint8_t)db, (uint16_t)key_len,
			    (uint32_t)val_len };
	size_t need = sizeof(h) + key_len + val_len;
	uint8_t *p;

	if (need > b->cap - b->len) {
		size_t cap = b->cap ? b->cap * 2 : 256;

		while (cap - b->len < need)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (p == NULL)
			return NULL;
		b->buf = p;
		b->cap = cap;
	}
	p = b->buf + b->len;
	memcpy(p, &h, sizeof(h));
	b->len += need;
	b->ops++;
	return p + sizeof(h);
}

/* Writes the CRC32C of a record whose key starts at key. */
static void
batch_seal(uint8_t *key, size_t key_len, size_t val_len)
{
	MDB_val k = { key_len, key };
	uint8_t *val = key + key_len;

	(void)put_be(val, record_crc(&k, val, val_len), 4);
}

/* Adds a delete of every key in [lo, hi) of db; hi == NULL: no bound. */
static int
batch_del_range(struct store_batch *b, enum store_db db, const uint8_t *lo,
		const uint8_t *hi, size_t key_len)
{
	uint8_t *p = batch_op(b, OP_DEL_RANGE, db, key_len, hi ? key_len : 0);

	if (p == NULL)
		return -ENOMEM;
	p = put_bytes(p, lo, key_len);
	if (hi != NULL)
		(void)put_bytes(p, hi, key_len);
	return 0;
}

/* Adds a delete of every key of db that starts with prefix. */
static int
batch_del_prefix(struct store_batch *b, enum store_db db, const uint8_t *prefix,
		 size_t len)
{
	uint8_t hi[16];
	size_t i = len;

	/* hi = the next prefix; all 0xff has none: no upper bound. */
	memcpy(hi, prefix, len);
	while (i > 0 && hi[i - 1] == 0xff)
		hi[--i] = 0;
	if (i == 0)
		return batch_del_range(b, db, prefix, NULL, len);
	hi[i - 1]++;
	return batch_del_range(b, db, prefix, hi, len);
}

/* Length of a NUL-terminated name in a buffer of cap, or -EINVAL. */
static int
name_len(const char *name, size_t cap)
{
	size_t n = strnlen(name, cap);

	return n < cap && n <= UINT16_MAX ? (int)n : -EINVAL;
}

int
store_batch_put_queue(struct store_batch *b, const struct store_queue *q)
{
	int nlen = name_len(q->name, sizeof(q->name));
	int dlen = name_len(q->policy.dlq, sizeof(q->policy.dlq));
	size_t vlen;
	uint8_t *key, *p;

	if (nlen < 0 || dlen < 0)
		return -EINVAL;
	vlen = QUEUE_FIXED_BYTES + (size_t)nlen + (size_t)dlen;
	key = batch_op(b, OP_PUT, DB_QUEUES, 4, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_be(key, q->qid, 4) + 4;
	p = put_be(p, q->partitions, 4);
	p = put_be(p, q->created_ms, 8);
	p = put_be(p, q->policy.lease_ms, 8);
	p = put_be(p, q->policy.max_lease_ms, 8);
	p = put_be(p, q->policy.max_deliveries, 4);
	p = put_be(p, q->policy.max_depth, 8);
	p = put_be(p, q->policy.max_bytes, 8);
	p = put_be(p, q->policy.dedup_window_ms, 8);
	p = put_bytes(put_be(p, (uint64_t)nlen, 2), q->name, (size_t)nlen);
	(void)put_bytes(put_be(p, (uint64_t)dlen, 2), q->policy.dlq,
			(size_t)dlen);
	batch_seal(key, 4, vlen);
	return 0;
}

/* Deletes every key that starts with prefix in the databases from first
 * on: enum store_db lists a queue's, then a group's, records last. */
static int
batch_del_all(struct store_batch *b, enum store_db first, const uint8_t *prefix,
	      size_t len)
{
	size_t old_len = b->len, old_ops = b->ops;

	for (int db = first; db < DB_COUNT; db++) {
		if (batch_del_prefix(b, db, prefix, len) < 0) {
			b->len = old_len; /* unchanged on failure */
			b->ops = old_ops;
			return -ENOMEM;
		}
	}
	return 0;
}

int
store_batch_del_queue(struct store_batch *b, uint32_t qid)
{
	uint8_t prefix[4];

	(void)put_be(prefix, qid, 4);
	return batch_del_all(b, DB_QUEUES, prefix, 4);
}

int
store_batch_put_next_offset(struct store_batch *b, uint32_t qid, uint32_t part,
			    uint64_t next_offset)
{
	uint8_t *key = batch_op(b, OP_PUT, DB_PARTS, 8, 12), *p;

	if (key == NULL)
		return -ENOMEM;
	p = put_be(put_be(key, qid, 4), part, 4);
	(void)put_be(p + 4, next_offset, 8);
	batch_seal(key, 8, 12);
	return 0;
}

/* Bytes of the encoded header block, or -EINVAL if it does not fit. */
static int64_t
headers_bytes(const struct store_msg *m)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < m->header_count; i++) {
		if (m->headers[i].name_len > UINT16_MAX)
			return -EINVAL;
		n += 6u + (uint64_t)m->headers[i].name_len +
		     m->headers[i].value_len;
		if (n > UINT32_MAX)
			return -EINVAL;
	}
	return (int64_t)n;
}

static uint8_t *
put_headers(uint8_t *p, const struct store_msg *m)
{
	for (uint32_t i = 0; i < m->header_count; i++) {
		const struct store_header *h = &m->headers[i];

		p = put_bytes(put_be(p, h->name_len, 2), h->name, h->name_len);
		p = put_bytes(put_be(p, h->value_len, 4), h->value,
			      h->value_len);
	}
	return p;
}

int
store_batch_put_msg(struct store_batch *b, uint32_t qid, uint32_t part,
		    uint64_t offset, const struct store_msg *m)
{
	int64_t hlen = headers_bytes(m);
	uint64_t vlen;
	uint8_t *key, *p;

	if (hlen < 0)
		return -EINVAL;
	vlen = MSG_FIXED_BYTES + (uint64_t)m->key_len + (uint64_t)hlen +
	       m->dedup_len + m->payload_len;
	if (vlen > UINT32_MAX)
		return -EINVAL;
	key = batch_op(b, OP_PUT, DB_MSGS, 16, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_be(put_be(put_be(key, qid, 4), part, 4), offset, 8) + 4;
	*p++ = MSG_RECORD_VERSION;
	*p++ = 0; /* flags */
	p = put_be(p, m->publish_ms, 8);
	p = put_be(p, m->deliver_at_ms, 8);
	p = put_be(p, m->key_len, 4);
	p = put_be(p, (uint64_t)hlen, 4);
	p = put_be(p, m->dedup_len, 2);
	p = put_bytes(p, m->key, m->key_len);
	p = put_headers(p, m);
	p = put_bytes(p, m->dedup_id, m->dedup_len);
	(void)put_bytes(p, m->payload, m->payload_len);
	batch_seal(key, 16, vlen);
	return 0;
}

int
store_batch_del_msgs(struct store_batch *b, uint32_t qid, uint32_t part,
		     uint64_t from, uint64_t to)
{
	uint8_t lo[16], hi[16];

	if (from >= to)
		return 0;
	(void)put_be(put_be(put_be(lo, qid, 4), part, 4), from, 8);
	(void)put_be(put_be(put_be(hi, qid, 4), part, 4), to, 8);
	return batch_del_range(b, DB_MSGS, lo, hi, 16);
}

int
store_batch_put_group(struct store_batch *b, const struct store_group *g)
{
	int nlen = name_len(g->name, sizeof(g->name));
	size_t vlen;
	uint8_t *key, *p;

	if (nlen < 0)
		return -EINVAL;
	vlen = GROUP_FIXED_BYTES + (size_t)nlen;
	key = batch_op(b, OP_PUT, DB_GROUPS, 8, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_be(put_be(key, g->qid, 4), g->gid, 4) + 4;
	p = put_be(p, g->created_ms, 8);
	(void)put_bytes(put_be(p, (uint64_t)nlen, 2), g->name, (size_t)nlen);
	batch_seal(key, 8, vlen);
	return 0;
}

int
store_batch_del_group(struct store_batch *b, uint32_t qid, uint32_t gid)
{
	uint8_t prefix[8];

	(void)put_be(put_be(prefix, qid, 4), gid, 4);
	return batch_del_all(b, DB_GROUPS, prefix, 8);
}

int
store_batch_put_group_state(struct store_batch *b, uint32_t qid, uint32_t gid,
			    uint32_t part, uint64_t ack_floor,
			    const uint64_t *acked, uint32_t n)
{
	size_t vlen;
	uint8_t *key, *p;

	if (n > (UINT32_MAX - 16u) / 8u)
		return -EINVAL;
	vlen = 16u + 8u * (size_t)n;
	key = batch_op(b, OP_PUT, DB_GSTATE, 12, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_be(put_be(put_be(key, qid, 4), gid, 4), part, 4) + 4;
	p = put_be(put_be(p, ack_floor, 8), n, 4);
	for (uint32_t i = 0; i < n; i++)
		p = put_be(p, acked[i], 8);
	batch_seal(key, 12, vlen);
	return 0;
}

static uint8_t *
put_fail_key(uint8_t *p, uint32_t qid, uint32_t gid, uint32_t part,
	     uint64_t offset)
{
	return put_be(put_be(put_be(put_be(p, qid, 4), gid, 4), part, 4),
		      offset, 8);
}

int
store_batch_put_failure(struct store_batch *b, uint32_t qid, uint32_t gid,
			uint32_t part, uint64_t offset,
			const struct store_failure *f)
{
	uint8_t *key = batch_op(b, OP_PUT, DB_FAILS, 20, FAIL_BYTES), *p;

	if (key == NULL)
		return -ENOMEM;
	p = put_fail_key(key, qid, gid, part, offset) + 4;
	p = put_be(p, f->failures, 4);
	p = put_be(p, f->first_delivery_ms, 8);
	p = put_be(p, f->last_delivery_ms, 8);
	(void)put_be(p, f->retry_at_ms, 8);
	batch_seal(key, 20, FAIL_BYTES);
	return 0;
}

int
store_batch_del_failures(struct store_batch *b, uint32_t qid, uint32_t gid,
			 uint32_t part, uint64_t from, uint64_t to)
{
	uint8_t lo[20], hi[20];

	if (from >= to)
		return 0;
	(void)put_fail_key(lo, qid, gid, part, from);
	(void)put_fail_key(hi, qid, gid, part, to);
	return batch_del_range(b, DB_FAILS, lo, hi, 20);
}

/* ------------------------------------------------- the storage thread */

/* Deletes the keys of dbi in [*lo, *hi) (hi empty: to the end); returns an
 * LMDB code. Runs on: storage thread. */
static int
apply_del_range(MDB_txn *txn, MDB_dbi dbi, const MDB_val *lo, const MDB_val *hi)
{
	MDB_cursor *cur;
	MDB_val k = *lo, v;
	int rc;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && (hi->mv_size == 0 || mdb_cmp(txn, dbi, &k, hi) < 0)) {
		rc = mdb_cursor_del(cur, 0);
		/* After a delete, MDB_NEXT returns the key that followed
		 * (and copes with a tree the delete emptied). */
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Applies every operation of b in txn; returns an LMDB code.
 * Runs on: storage thread. */
static int
apply_ops(struct store *s, MDB_txn *txn, const struct store_batch *b)
{
	size_t pos = 0;
	int rc = 0;

	while (rc == 0 && pos < b->len) {
		struct op_hdr h;
		MDB_val k, v;

		memcpy(&h, b->buf + pos, sizeof(h));
		pos += sizeof(h);
		k.mv_size = h.key_len;
		k.mv_data = b->buf + pos;
		pos += h.key_len;
		v.mv_size = h.val_len;
		v.mv_data = b->buf + pos;
		pos += h.val_len;
		if (h.op == OP_PUT)
			rc = mdb_put(txn, s->dbi[h.db], &k, &v, 0);
		else
			rc = apply_del_range(txn, s->dbi[h.db], &k, &v);
	}
	return rc;
}

/* Applies b as a nested transaction of parent: whole or not at all.
 * Runs on: storage thread. */
static int
apply_batch(struct store *s, MDB_txn *parent, const struct store_batch *b)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(s->env, parent, 0, &txn);
	if (rc != 0)
		return store_err(s, rc, "begin nested transaction");
	rc = apply_ops(s, txn, b);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return store_err(s, rc, "apply batch");
	}
	rc = mdb_txn_commit(txn); /* ends txn either way */
	return store_err(s, rc, "commit nested transaction");
}

/* Pages LMDB holds in its freelist (free for reuse), or 0 if unknown.
 * Runs on: storage thread. */
static uint64_t
count_free_pages(struct store *s)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t pages = 0;
	int rc;

	if (s->stat_txn == NULL)
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->stat_txn);
	else
		rc = mdb_txn_renew(s->stat_txn);
	if (rc != 0) {
		(void)store_err(s, rc, "begin freelist read");
		return 0;
	}
	/* dbi 0 is LMDB's freelist: each value is an ID list, count first. */
	rc = mdb_cursor_open(s->stat_txn, 0, &cur);
	if (rc == 0) {
		while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
			size_t n;

			if (v.mv_size < sizeof(n))
				continue;
			memcpy(&n, v.mv_data, sizeof(n));
			pages += n;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_reset(s->stat_txn);
	return pages;
}

/* Caches the bytes in use after a commit, for store_usage and the headroom
 * rule. Runs on: storage thread (and store_open). */
static void
refresh_usage(struct store *s)
{
	MDB_envinfo info;
	uint64_t high, free_bytes;

	if (mdb_env_info(s->env, &info) != 0)
		return;
	high = ((uint64_t)info.me_last_pgno + 1) * s->page_bytes;
	free_bytes = count_free_pages(s) * s->page_bytes;
	atomic_store(&s->high_water_bytes, high);
	atomic_store(&s->used_bytes, free_bytes < high ? high - free_bytes : 0);
}

/* Bytes that batches flagged STORE_BATCH_GROWS may still add in this
 * commit before the headroom is reached (<= 0: none).
 * Runs on: storage thread. */
static int64_t
grow_room(struct store *s)
{
	uint64_t used = atomic_load(&s->used_bytes);
	uint64_t high = atomic_load(&s->high_water_bytes);
	int64_t room, fs_room;
	struct statvfs sv;

	room = (int64_t)s->map_bytes - (int64_t)s->headroom_bytes -
	       (int64_t)used;
	if (fstatvfs(s->lock_fd, &sv) != 0) {
		if (!s->is_statvfs_logged)
			log_warn("store: %s: statvfs: %s; free space not "
				 "watched",
				 s->dir, strerror(errno));
		s->is_statvfs_logged = true;
		return room;
	}
	/* Growth beyond the file's free pages comes from the filesystem. */
	fs_room = (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize) +
		  (int64_t)(high - used) - 2 * (int64_t)s->headroom_bytes;
	return fs_room < room ? fs_room : room;
}

static void
log_full(struct store *s, bool is_full)
{
	if (is_full == s->is_full_logged)
		return;
	s->is_full_logged = is_full;
	if (is_full)
		log_warn("store: %s: storage full (%llu of %llu bytes in use): "
			 "refusing new data until space is freed",
			 s->dir,
			 (unsigned long long)atomic_load(&s->used_bytes),
			 (unsigned long long)s->map_bytes);
	else
		log_info("store: %s: storage has room again", s->dir);
}

/* Applies each batch of list in its own nested transaction; returns how
 * many applied. Runs on: storage thread. */
static size_t
apply_group(struct store *s, MDB_txn *txn, struct store_batch *list)
{
	int64_t room = INT64_MAX;
	bool is_room_known = false;
	size_t ok = 0;

	for (struct store_batch *b = list; b != NULL; b = b->next) {
		if (b->flags & STORE_BATCH_GROWS) {
			if (!is_room_known)
				room = grow_room(s);
			is_room_known = true;
			if (room <= 0) {
				b->status = -RMQ_ESTORAGE_FULL;
				log_full(s, true);
				continue;
			}
		}
		b->status = apply_batch(s, txn, b);
		if (b->status == -RMQ_ESTORAGE_FULL)
			log_warn(
				"store: %s: a batch of %zu bytes does not "
				"fit in the map (%llu of %llu bytes in use)",
				s->dir, b->len,
				(unsigned long long)atomic_load(&s->used_bytes),
				(unsigned long long)s->map_bytes);
		if (b->status != 0)
			continue;
		if (b->flags & STORE_BATCH_GROWS)
			log_full(s, false);
		room -= (int64_t)b->len;
		ok++;
	}
	return ok;
}

static void
fail_all(struct store_batch *list, int status)
{
	for (struct store_batch *b = list; b != NULL; b = b->next)
		if (b->status == 0)
			b->status = status;
}

/* One group commit: one write transaction for every batch of list.
 * Runs on: storage thread. */
static void
commit_group(struct store *s, struct store_batch *list)
{
	MDB_txn *txn;
	int rc;

	if (atomic_load(&s->is_panicked)) {
		fail_all(list, -RMQ_ESTORAGE);
		return;
	}
	s->last_commit_ns = mono_ns();
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0) {
		fail_all(list, store_err(s, rc, "begin write transaction"));
		return;
	}
	if (apply_group(s, txn, list) == 0) {
		mdb_txn_abort(txn); /* nothing to commit: spare the sync */
		return;
	}
	rc = store_err(s, mdb_txn_commit(txn), "commit");
	if (rc == -RMQ_ESTORAGE_FULL)
		log_full(s, true);
	fail_all(list, rc);
	refresh_usage(s);
}

/* Waits, in INTERVAL mode, until the interval since the last commit has
 * passed, unless a drain or close wants the commit now. Called and returns
 * with s->lock held. Runs on: storage thread. */
static void
wait_interval(struct store *s)
{
	uint64_t deadline = s->last_commit_ns + s->sync_interval_ns;

	/* A full group commits at once: waiting would only grow it. */
	while (!s->is_stopping && s->drain_waiters == 0 &&
	       s->pending_bytes < GROUP_MAX_BYTES) {
		struct timespec ts;

		if (mono_ns() >= deadline)
			break;
		ts.tv_sec = (time_t)(deadline / 1000000000u);
		ts.tv_nsec = (long)(deadline % 1000000000u);
		(void)pthread_cond_timedwait(&s->work_cond, &s->lock, &ts);
	}
}

/* Detaches the oldest pending batches, at least one and at most
 * GROUP_MAX_BYTES of them. Called with s->lock held. */
static struct store_batch *
detach_group(struct store *s)
{
	struct store_batch *list = s->pending, *last = list;
	uint64_t bytes;

	if (list == NULL)
		return NULL;
	bytes = list->len;
	while (last->next != NULL &&
	       bytes + last->next->len <= GROUP_MAX_BYTES) {
		last = last->next;
		bytes += last->len;
	}
	s->pending = last->next;
	if (s->pending == NULL)
		s->pending_tail = &s->pending;
	last->next = NULL;
	s->pending_bytes -= bytes;
	return list;
}

/* Takes the next group of pending batches, blocking until there is one;
 * NULL when the store is closing and nothing is left.
 * Runs on: storage thread. */
static struct store_batch *
take_pending(struct store *s)
{
	struct store_batch *list;

	pthread_mutex_lock(&s->lock);
	while (s->pending == NULL && !s->is_stopping)
		pthread_cond_wait(&s->work_cond, &s->lock);
	if (s->pending != NULL && s->sync == STORE_SYNC_INTERVAL)
		wait_interval(s);
	list = detach_group(s);
	pthread_mutex_unlock(&s->lock);
	return list;
}

/* Hands completed batches back to the loop thread.
 * Runs on: storage thread. */
static void
finish_group(struct store *s, struct store_batch *list)
{
	static const uint64_t one = 1;
	uint64_t n = 0;
	struct store_batch *last = list;

	for (struct store_batch *b = list; b != NULL; b = b->next) {
		last = b;
		n++;
	}
	pthread_mutex_lock(&s->lock);
	*s->done_tail = list;
	s->done_tail = &last->next;
	s->completed += n;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
	/* EAGAIN means the counter is saturated: the loop wakes anyway. */
	while (write(s->event_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Runs on: storage thread. */
static void *
store_thread(void *arg)
{
	struct store *s = arg;
	struct store_batch *list;

	while ((list = take_pending(s)) != NULL) {
		commit_group(s, list);
		finish_group(s, list);
	}
	if (s->stat_txn != NULL)
		mdb_txn_abort(s->stat_txn);
	s->stat_txn = NULL;
	return NULL;
}

/* ------------------------------------------------- submit, reap, drain */

void
store_submit(struct store *s, struct store_batch *b, store_done_fn done,
	     void *ctx)
{
	bool is_wake;

	b->done = done;
	b->ctx = ctx;
	b->next = NULL;
	b->status = 0;
	pthread_mutex_lock(&s->lock);
	/* Wake the thread when it may be idle, or waiting out the interval
	 * with a full group; a busy thread rechecks on its own. */
	is_wake = s->pending == NULL ||
		  (s->pending_bytes < GROUP_MAX_BYTES &&
		   s->pending_bytes + b->len >= GROUP_MAX_BYTES);
	*s->pending_tail = b;
	s->pending_tail = &b->next;
	s->pending_bytes += b->len;
	s->submitted++;
	if (is_wake)
		pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->lock);
}

int
store_reap(struct store *s)
{
	struct store_batch *list, *next;
	int n = 0;

	/* A completion that reaps would run later batches before earlier
	 * ones of this list: the outer call picks them up instead. */
	if (s->is_reaping)
		return 0;
	s->is_reaping = true;
	pthread_mutex_lock(&s->lock);
	list = s->done_list;
	s->done_list = NULL;
	s->done_tail = &s->done_list;
	pthread_mutex_unlock(&s->lock);
	for (; list != NULL; list = next) {
		next = list->next;
		if (list->done != NULL)
			list->done(list->ctx, list->status);
		store_batch_free(list);
		n++;
	}
	s->is_reaping = false;
	return n;
}

void
store_drain(struct store *s)
{
	uint64_t target;

	pthread_mutex_lock(&s->lock);
	target = s->submitted;
	if (s->completed < target) {
		s->drain_waiters++;
		pthread_cond_signal(&s->work_cond); /* skip the interval */
		while (s->completed < target)
			pthread_cond_wait(&s->done_cond, &s->lock);
		s->drain_waiters--;
	}
	pthread_mutex_unlock(&s->lock);
}

/* Delivers the last completions; batches their callbacks submit fail with
 * -RMQ_ESHUTTING_DOWN, as the storage thread is gone. */
static void
reap_at_close(struct store *s)
{
	struct store_batch *list;

	while (store_reap(s) > 0) {
		pthread_mutex_lock(&s->lock);
		list = s->pending;
		s->pending = NULL;
		s->pending_tail = &s->pending;
		s->pending_bytes = 0;
		pthread_mutex_unlock(&s->lock);
		if (list == NULL)
			break;
		fail_all(list, -RMQ_ESHUTTING_DOWN);
		finish_group(s, list);
	}
}

/* ----------------------------------------------------------- open/close */

static int
lock_dir(struct store *s, const char *dir)
{
	char path[4096];
	int n;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		n = -errno;
		log_error("store: cannot create %s: %s", dir, strerror(-n));
		return n;
	}
	n = snprintf(path, sizeof(path), "%s/LOCK", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lock_fd < 0) {
		n = -errno;
		log_error("store: cannot open %s: %s", path, strerror(-n));
		return n;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		n = -errno;
		if (n == -EWOULDBLOCK) {
			log_error("store: %s is in use by another broker", dir);
			return -RMQ_ELOCKED;
		}
		log_error("store: cannot lock %s: %s", path, strerror(-n));
		return n;
	}
	return 0;
}

static int
env_open(struct store *s, const struct store_opts *o)
{
	unsigned flags = MDB_NOTLS;
	MDB_envinfo info;
	MDB_stat st;
	int rc, dead = 0;

	if (o->sync == STORE_SYNC_NEVER)
		flags |= MDB_NOSYNC;
	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		s->env = NULL;
		return store_err(s, rc, "create environment");
	}
	rc = mdb_env_set_mapsize(s->env, o->max_storage_bytes);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, DB_COUNT);
	if (rc == 0)
		rc = mdb_env_open(s->env, o->dir, flags, 0640);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
		log_error("store: %s: %s", s->dir, mdb_strerror(rc));
		return -RMQ_EFORMAT;
	}
	s->is_env_open = rc == 0;
	if (rc == 0)
		rc = mdb_reader_check(s->env, &dead);
	if (rc == 0)
		rc = mdb_env_stat(s->env, &st);
	if (rc == 0)
		rc = mdb_env_info(s->env, &info);
	if (rc != 0)
		return store_err(s, rc, "open environment");
	if (dead > 0)
		log_info("store: %s: cleared %d stale reader slots", s->dir,
			 dead);
	s->page_bytes = st.ms_psize;
	s->map_bytes = info.me_mapsize;
	if (s->map_bytes != o->max_storage_bytes)
		log_warn("store: %s: map size is %llu bytes (asked for %llu): "
			 "the data is larger",
			 s->dir, (unsigned long long)s->map_bytes,
			 (unsigned long long)o->max_storage_bytes);
	s->headroom_bytes = s->map_bytes / 16;
	if (s->headroom_bytes < HEADROOM_MIN_BYTES)
		s->headroom_bytes = HEADROOM_MIN_BYTES;
	if (s->headroom_bytes > HEADROOM_MAX_BYTES)
		s->headroom_bytes = HEADROOM_MAX_BYTES;
	return 0;
}

/* Checks the format record of a non-empty environment: 0 or
 * -RMQ_EFORMAT (logged). */
static int
check_format(struct store *s, MDB_txn *txn)
{
	static const MDB_val key = { 6, "format" };
	MDB_val k = key, v;
	MDB_dbi meta;
	uint32_t version;
	int rc;

	rc = mdb_dbi_open(txn, db_names[DB_META], 0, &meta);
	if (rc == 0)
		rc = mdb_get(txn, meta, &k, &v);
	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
		log_error("store: %s holds LMDB data without a ringmq format "
			  "record: not a ringmq data directory",
			  s->dir);
		return -RMQ_EFORMAT;
	}
	if (rc != 0)
		return store_err(s, rc, "read format version");
	if (v.mv_size != 8 || !record_crc_ok(&key, &v)) {
		log_error("store: %s: the format record is unreadable "
			  "(length or checksum)",
			  s->dir);
		return -RMQ_EFORMAT;
	}
	version = (uint32_t)get_be((const uint8_t *)v.mv_data + 4, 4);
	if (version != STORE_FORMAT_VERSION) {
		log_error("store: %s has storage format version %u; this "
			  "broker reads only version %u",
			  s->dir, version, STORE_FORMAT_VERSION);
		return -RMQ_EFORMAT;
	}
	return 0;
}

/* Puts a meta record holding one big-endian integer of n bytes; returns
 * an LMDB code. */
static int
put_meta(struct store *s, MDB_txn *txn, const char *name, uint64_t value,
	 size_t n)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint8_t buf[12];

	(void)put_be(buf + 4, value, n);
	(void)put_be(buf, record_crc(&k, buf, 4 + n), 4);
	v.mv_size = 4 + n;
	v.mv_data = buf;
	return mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
}

/* Opens every database; on a fresh environment writes the format version,
 * otherwise checks it. */
static int
open_dbs(struct store *s, MDB_txn *txn)
{
	MDB_dbi main_dbi;
	MDB_stat st;
	int rc;

	rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_stat(txn, main_dbi, &st);
	if (rc != 0)
		return store_err(s, rc, "read main database");
	if (st.ms_entries > 0) {
		rc = check_format(s, txn);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
		if (rc != 0)
			return store_err(s, rc, "open databases");
	}
	if (st.ms_entries > 0)
		return 0;
	rc = put_meta(s, txn, "format", STORE_FORMAT_VERSION, 4);
	if (rc != 0)
		return store_err(s, rc, "write format version");
	log_info("store: %s: new data directory, format version %u", s->dir,
		 STORE_FORMAT_VERSION);
	return 0;
}

/* Reads the last boot epoch (0 if none) into *epoch. */
static int
get_epoch(struct store *s, MDB_txn *txn, uint64_t *epoch)
{
	static const MDB_val key = { 5, "epoch" };
	MDB_val k = key, v;
	int rc;

	*epoch = 0;
	rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_err(s, rc, "read boot epoch");
	if (v.mv_size != 12 || !record_crc_ok(&key, &v)) {
		log_error("store: %s: the boot epoch record failed its "
			  "checksum",
			  s->dir);
		return -RMQ_ECORRUPT;
	}
	*epoch = get_be((const uint8_t *)v.mv_data + 4, 8);
	return 0;
}

/* Opens the databases, checks or writes the format version and bumps the
 * boot epoch, in one synced write transaction. */
static int
init_meta(struct store *s)
{
	MDB_txn *txn;
	uint64_t epoch;
	int rc;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return store_err(s, rc, "begin open transaction");
	rc = open_dbs(s, txn);
	if (rc == 0)
		rc = get_epoch(s, txn, &epoch);
	if (rc == 0)
		rc = store_err(s, put_meta(s, txn, "epoch", epoch + 1, 8),
			       "write boot epoch");
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	/* MDB_NOSYNC skipped the sync: the epoch must be durable anyway, so
	 * that no lease id is ever reused. */
	if (rc == 0 && s->sync == STORE_SYNC_NEVER)
		rc = mdb_env_sync(s->env, 1);
	if (rc != 0)
		return store_err(s, rc, "commit open transaction");
	s->boot_epoch = epoch + 1;
	return 0;
}

static int
sync_init(struct store *s)
{
	pthread_condattr_t attr;
	int rc;

	rc = pthread_condattr_init(&attr);
	if (rc != 0)
		return -rc;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(&s->work_cond, &attr);
	(void)pthread_condattr_destroy(&attr); /* cannot fail on Linux */
	if (rc != 0)
		return -rc;
	rc = pthread_cond_init(&s->done_cond, NULL);
	if (rc != 0) {
		(void)pthread_cond_destroy(&s->work_cond);
		return -rc;
	}
	rc = pthread_mutex_init(&s->lock, NULL);
	if (rc != 0) {
		(void)pthread_cond_destroy(&s->done_cond);
		(void)pthread_cond_destroy(&s->work_cond);
		return -rc;
	}
	s->is_sync_init = true;
	return 0;
}

/* Starts the storage thread with asynchronous signals blocked, so that
 * they go to the loop thread; faults stay deliverable. */
static int
start_thread(struct store *s)
{
	static const int faults[] = { SIGSEGV, SIGBUS,	SIGFPE,
				      SIGILL,  SIGTRAP, SIGABRT };
	sigset_t all, old;
	int rc;

	(void)sigfillset(&all); /* valid set: cannot fail */
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		(void)sigdelset(&all, faults[i]);
	rc = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (rc != 0)
		return -rc;
	rc = pthread_create(&s->thread, NULL, store_thread, s);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL); /* a valid set */
	if (rc != 0)
		return -rc;
	s->is_thread_started = true;
	return 0;
}

/* Also releases a partly built store (the failure path of store_open),
 * in reverse order of building. */
void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->is_thread_started) {
		/* The thread commits everything pending before it exits. */
		pthread_mutex_lock(&s->lock);
		s->is_stopping = true;
		pthread_cond_signal(&s->work_cond);
		pthread_mutex_unlock(&s->lock);
		(void)pthread_join(s->thread, NULL); /* our own thread */
		reap_at_close(s);
	}
	if (s->event_fd >= 0)
		(void)close(s->event_fd);
	if (s->is_sync_init) {
		(void)pthread_mutex_destroy(&s->lock);
		(void)pthread_cond_destroy(&s->done_cond);
		(void)pthread_cond_destroy(&s->work_cond);
	}
	if (s->rcur != NULL)
		mdb_cursor_close(s->rcur);
	if (s->rtxn != NULL)
		mdb_txn_abort(s->rtxn);
	if (s->stat_txn != NULL)
		mdb_txn_abort(s->stat_txn);
	if (s->env != NULL) {
		int rc = 0;

		/* Without syncs, a clean stop is still made durable. */
		if (s->is_env_open && s->sync == STORE_SYNC_NEVER)
			rc = mdb_env_sync(s->env, 1);
		if (rc != 0)
			(void)store_err(s, rc, "sync at close");
		mdb_env_close(s->env);
	}
	if (s->lock_fd >= 0)
		(void)close(s->lock_fd); /* releases the flock */
	free(s->dir);
	free(s);
}

int
store_open(struct store **out, const struct store_opts *o)
{
	struct store *s;
	int rc;

	*out = NULL;
	if (o->dir == NULL || o->max_storage_bytes == 0 ||
	    (o->sync == STORE_SYNC_INTERVAL && o->sync_interval_ms == 0))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->lock_fd = -1;
	s->event_fd = -1;
	s->sync = o->sync;
	s->sync_interval_ns = (uint64_t)o->sync_interval_ms * 1000000u;
	s->pending_tail = &s->pending;
	s->done_tail = &s->done_list;
	s->dir = strdup(o->dir);
	if (s->dir == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sync_init(s);
	if (rc < 0)
		goto fail;
	rc = lock_dir(s, o->dir);
	if (rc < 0)
		goto fail;
	rc = env_open(s, o);
	if (rc < 0)
		goto fail;
	rc = init_meta(s);
	if (rc < 0)
		goto fail;
	s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->event_fd < 0) {
		rc = -errno;
		goto fail;
	}
	refresh_usage(s);
	s->last_commit_ns = mono_ns();
	rc = start_thread(s);
	if (rc < 0)
		goto fail;
	log_info("store: %s open: boot epoch %llu, %llu of %llu bytes in use",
		 s->dir, (unsigned long long)s->boot_epoch,
		 (unsigned long long)atomic_load(&s->used_bytes),
		 (unsigned long long)s->map_bytes);
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

uint64_t
store_boot_epoch(const struct store *s)
{
	return s->boot_epoch;
}

int
store_event_fd(const struct store *s)
{
	return s->event_fd;
}

void
store_usage(const struct store *s, uint64_t *used_bytes, uint64_t *map_bytes)
{
	*used_bytes = atomic_load(&s->used_bytes);
	*map_bytes = s->map_bytes;
}

/* ---------------------------------------------------------------- reads */

/* Begins or renews the loop thread's read transaction. */
static int
read_begin(struct store *s)
{
	int rc;

	if (s->is_rtxn_live)
		return 0;
	if (s->rtxn == NULL) {
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
		if (rc != 0) {
			s->rtxn = NULL;
			return store_err(s, rc, "begin read transaction");
		}
		rc = mdb_cursor_open(s->rtxn, s->dbi[DB_MSGS], &s->rcur);
		if (rc != 0) {
			mdb_txn_abort(s->rtxn);
			s->rtxn = NULL;
			s->rcur = NULL;
			return store_err(s, rc, "open read cursor");
		}
	} else {
		rc = mdb_txn_renew(s->rtxn);
		if (rc != 0)
			return store_err(s, rc, "renew read transaction");
		rc = mdb_cursor_renew(s->rtxn, s->rcur);
		if (rc != 0) {
			mdb_txn_reset(s->rtxn);
			return store_err(s, rc, "renew read cursor");
		}
	}
	s->is_rtxn_live = true;
	return 0;
}

void
store_read_release(struct store *s)
{
	if (!s->is_rtxn_live)
		return;
	mdb_txn_reset(s->rtxn);
	s->is_rtxn_live = false;
}

/* Fills v from a "msgs" record after checking its CRC and lengths. */
static int
msg_view(struct store *s, const MDB_val *k, const MDB_val *val,
	 struct store_msg_view *v)
{
	const uint8_t *key = k->mv_data, *p = val->mv_data;
	uint64_t extra;

	memset(v, 0, sizeof(*v));
	v->partition = (uint32_t)get_be(key + 4, 4);
	v->offset = get_be(key + 8, 8);
	if (!record_crc_ok(k, val) || val->mv_size < MSG_FIXED_BYTES ||
	    p[4] != MSG_RECORD_VERSION)
		goto corrupt;
	v->publish_ms = get_be(p + 6, 8);
	v->deliver_at_ms = get_be(p + 14, 8);
	v->key_len = (uint32_t)get_be(p + 22, 4);
	v->headers_len = (uint32_t)get_be(p + 26, 4);
	v->dedup_len = (uint16_t)get_be(p + 30, 2);
	extra = (uint64_t)v->key_len + v->headers_len + v->dedup_len;
	if (extra > val->mv_size - MSG_FIXED_BYTES)
		goto corrupt;
	p += MSG_FIXED_BYTES;
	v->key = p;
	v->headers = p + v->key_len;
	v->dedup_id = p + v->key_len + v->headers_len;
	v->payload = p + extra;
	v->payload_len = (uint32_t)(val->mv_size - MSG_FIXED_BYTES - extra);
	return 0;
corrupt:
	log_error("store: %s: message of queue %u partition %u offset %llu "
		  "is corrupt (checksum or layout)",
		  s->dir, (unsigned)get_be(key, 4),
		  (unsigned)get_be(key + 4, 4),
		  (unsigned long long)get_be(key + 8, 8));
	memset(v, 0, sizeof(*v));
	v->partition = (uint32_t)get_be(key + 4, 4);
	v->offset = get_be(key + 8, 8);
	return -RMQ_ECORRUPT;
}

/* Reads the message at offset (is_exact) or the first one after it. */
static int
msg_read(struct store *s, uint32_t qid, uint32_t part, uint64_t offset,
	 bool is_exact, struct store_msg_view *v)
{
	uint8_t kb[16];
	MDB_val k = { sizeof(kb), kb }, val;
	int rc;

	rc = read_begin(s);
	if (rc < 0)
		return rc;
	(void)put_be(put_be(put_be(kb, qid, 4), part, 4), offset, 8);
	rc = mdb_cursor_get(s->rcur, &k, &val,
			    is_exact ? MDB_SET_KEY : MDB_SET_RANGE);
	if (rc != 0)
		return store_err(s, rc, "read message");
	/* The next key may belong to another partition or queue. */
	if (k.mv_size != sizeof(kb) || memcmp(k.mv_data, kb, 8) != 0)
		return -RMQ_ENOTFOUND;
	return msg_view(s, &k, &val, v);
}

int
store_msg_next(struct store *s, uint32_t qid, uint32_t part, uint64_t from,
	       struct store_msg_view *v)
{
	return msg_read(s, qid, part, from, false, v);
}

int
store_msg_get(struct store *s, uint32_t qid, uint32_t part, uint64_t offset,
	      struct store_msg_view *v)
{
	return msg_read(s, qid, part, offset, true, v);
}

int
store_headers_next(const void *block, uint32_t len, uint32_t *pos,
		   struct store_header *h)
{
	struct rd r;

	if (*pos >= len)
		return *pos == len ? 0 : -RMQ_ECORRUPT;
	r.p = (const uint8_t *)block + *pos;
	r.left = len - *pos;
	r.is_bad = false;
	h->name_len = (uint32_t)rd_be(&r, 2);
	h->name = rd_bytes(&r, h->name_len);
	h->value_len = (uint32_t)rd_be(&r, 4);
	h->value = rd_bytes(&r, h->value_len);
	if (r.is_bad)
		return -RMQ_ECORRUPT;
	*pos = len - (uint32_t)r.left;
	return 1;
}

/* ------------------------------------------------------------- recovery */

struct load {
	struct store *s;
	MDB_txn *txn;
	const struct store_load_cb *cb;
	void *ctx;
	uint32_t (*queues)[2]; /* owned: (qid, partitions) seen, ascending */
	size_t nqueues;
	size_t queues_cap;
	uint64_t *acked; /* owned: scratch for group states */
	size_t acked_cap;
};

typedef int (*load_fn)(struct load *l, const MDB_val *k, const MDB_val *v);

static int
load_corrupt(struct load *l, enum store_db db, const char *why)
{
	log_error("store: %s: a record in \"%s\" %s", l->s->dir, db_names[db],
		  why);
	return -RMQ_ECORRUPT;
}

/* Calls fn for every record of db in key order; CRCs are checked for
 * every database but "msgs". */
static int
load_scan(struct load *l, enum store_db db, size_t key_len, load_fn fn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, mrc;

	rc = mdb_cursor_open(l->txn, l->s->dbi[db], &cur);
	if (rc != 0)
		return store_err(l->s, rc, "open load cursor");
	while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (k.mv_size != key_len)
			rc = load_corrupt(l, db, "has a key of the wrong size");
		else if (db != DB_MSGS && !record_crc_ok(&k, &v))
			rc = load_corrupt(l, db, "failed its checksum");
		else
			rc = fn(l, &k, &v);
		if (rc < 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc < 0)
		return rc;
	return mrc == MDB_NOTFOUND ? 0 : store_err(l->s, mrc, "load");
}

static int
load_queue(struct load *l, const MDB_val *k, const MDB_val *v)
{
	struct rd r = { (const uint8_t *)v->mv_data + 4, v->mv_size - 4,
			false };
	struct store_queue q;

	memset(&q, 0, sizeof(q));
	q.qid = (uint32_t)get_be(k->mv_data, 4);
	q.partitions = (uint32_t)rd_be(&r, 4);
	q.created_ms = rd_be(&r, 8);
	q.policy.lease_ms = rd_be(&r, 8);
	q.policy.max_lease_ms = rd_be(&r, 8);
	q.policy.max_deliveries = (uint32_t)rd_be(&r, 4);
	q.policy.max_depth = rd_be(&r, 8);
	q.policy.max_bytes = rd_be(&r, 8);
	q.policy.dedup_window_ms = rd_be(&r, 8);
	rd_name(&r, q.name, sizeof(q.name));
	rd_name(&r, q.policy.dlq, sizeof(q.policy.dlq));
	if (r.is_bad || r.left != 0)
		return load_corrupt(l, DB_QUEUES, "is malformed");
	if (l->nqueues == l->queues_cap) {
		size_t cap = l->queues_cap ? l->queues_cap * 2 : 16;
		void *p = realloc(l->queues, cap * sizeof(l->queues[0]));

		if (p == NULL)
			return -ENOMEM;
		l->queues = p;
		l->queues_cap = cap;
	}
	l->queues[l->nqueues][0] = q.qid;
	l->queues[l->nqueues++][1] = q.partitions;
	return l->cb->queue ? l->cb->queue(l->ctx, &q) : 0;
}

/* Reports every partition of every queue, 0 where "parts" has none. */
static int
load_partitions(struct load *l)
{
	for (size_t i = 0; i < l->nqueues; i++) {
		for (uint32_t part = 0; part < l->queues[i][1]; part++) {
			uint8_t kb[8];
			MDB_val k = { sizeof(kb), kb }, v;
			uint64_t next = 0;
			int rc;

			(void)put_be(put_be(kb, l->queues[i][0], 4), part, 4);
			rc = mdb_get(l->txn, l->s->dbi[DB_PARTS], &k, &v);
			if (rc != 0 && rc != MDB_NOTFOUND)
				return store_err(l->s, rc, "load partition");
			if (rc == 0 &&
			    (v.mv_size != 12 || !record_crc_ok(&k, &v)))
				return load_corrupt(l, DB_PARTS,
						    "failed its checksum");
			if (rc == 0)
				next = get_be((uint8_t *)v.mv_data + 4, 8);
			rc = l->cb->partition(l->ctx, l->queues[i][0], part,
					      next);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static int
load_group(struct load *l, const MDB_val *k, const MDB_val *v)
{
	struct rd r = { (const uint8_t *)v->mv_data + 4, v->mv_size - 4,
			false };
	struct store_group g;

	memset(&g, 0, sizeof(g));
	g.qid = (uint32_t)get_be(k->mv_data, 4);
	g.gid = (uint32_t)get_be((const uint8_t *)k->mv_data + 4, 4);
	g.created_ms = rd_be(&r, 8);
	rd_name(&r, g.name, sizeof(g.name));
	if (r.is_bad || r.left != 0)
		return load_corrupt(l, DB_GROUPS, "is malformed");
	return l->cb->group(l->ctx, &g);
}

static int
load_gstate(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data, *p = v->mv_data;
	uint64_t n;

	if (v->mv_size < 16)
		return load_corrupt(l, DB_GSTATE, "is malformed");
	n = get_be(p + 12, 4);
	if (v->mv_size != 16 + 8 * n)
		return load_corrupt(l, DB_GSTATE, "is malformed");
	if (n > l->acked_cap) {
		void *a = realloc(l->acked, n * sizeof(uint64_t));

		if (a == NULL)
			return -ENOMEM;
		l->acked = a;
		l->acked_cap = n;
	}
	for (uint64_t i = 0; i < n; i++)
		l->acked[i] = get_be(p + 16 + 8 * i, 8);
	return l->cb->group_state(l->ctx, (uint32_t)get_be(key, 4),
				  (uint32_t)get_be(key + 4, 4),
				  (uint32_t)get_be(key + 8, 4),
				  get_be(p + 4, 8), l->acked, (uint32_t)n);
}

static int
load_failure(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data, *p = v->mv_data;
	struct store_failure f;

	if (v->mv_size != FAIL_BYTES)
		return load_corrupt(l, DB_FAILS, "is malformed");
	f.failures = (uint32_t)get_be(p + 4, 4);
	f.first_delivery_ms = get_be(p + 8, 8);
	f.last_delivery_ms = get_be(p + 16, 8);
	f.retry_at_ms = get_be(p + 24, 8);
	return l->cb->failure(
		l->ctx, (uint32_t)get_be(key, 4), (uint32_t)get_be(key + 4, 4),
		(uint32_t)get_be(key + 8, 4), get_be(key + 12, 8), &f);
}

/* Reads only the fixed header: no CRC here, store_msg_get checks it. A
 * record too short to parse is reported with zeros, to fail on read. */
static int
load_message(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data, *p = v->mv_data;
	uint64_t publish_ms = 0, deliver_at_ms = 0, extra, payload = 0;

	if (v->mv_size >= MSG_FIXED_BYTES) {
		publish_ms = get_be(p + 6, 8);
		deliver_at_ms = get_be(p + 14, 8);
		extra = get_be(p + 22, 4) + get_be(p + 26, 4) +
			get_be(p + 30, 2);
		if (extra <= v->mv_size - MSG_FIXED_BYTES)
			payload = v->mv_size - MSG_FIXED_BYTES - extra;
	}
	return l->cb->message(l->ctx, (uint32_t)get_be(key, 4),
			      (uint32_t)get_be(key + 4, 4), get_be(key + 8, 8),
			      (uint32_t)payload, publish_ms, deliver_at_ms);
}

static int
load_all(struct load *l)
{
	const struct store_load_cb *cb = l->cb;
	int rc;

	rc = load_scan(l, DB_QUEUES, 4, load_queue);
	if (rc == 0 && cb->partition != NULL)
		rc = load_partitions(l);
	if (rc == 0 && cb->group != NULL)
		rc = load_scan(l, DB_GROUPS, 8, load_group);
	if (rc == 0 && cb->group_state != NULL)
		rc = load_scan(l, DB_GSTATE, 12, load_gstate);
	if (rc == 0 && cb->failure != NULL)
		rc = load_scan(l, DB_FAILS, 20, load_failure);
	if (rc == 0 && cb->message != NULL)
		rc = load_scan(l, DB_MSGS, 16, load_message);
	return rc;
}

int
store_load(struct store *s, const struct store_load_cb *cb, void *ctx)
{
	struct load l = { .s = s, .cb = cb, .ctx = ctx };
	int rc;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &l.txn);
	if (rc != 0)
		return store_err(s, rc, "begin load transaction");
	rc = load_all(&l);
	mdb_txn_abort(l.txn);
	free(l.queues);
	free(l.acked);
	return rc;
}
