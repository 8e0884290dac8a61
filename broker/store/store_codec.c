/*
 * store_codec: batch encoding and record codecs of the storage
 * engine (see store.h for the byte-exact layout, store_codec.h for the
 * private interface with store.c).
 *
 * Pure byte work: store.c owns LMDB and the threads and applies what this
 * file encodes. Batches are built here on the loop thread: every input is
 * copied, encoded and sealed with its CRC32C at once, so the storage
 * thread only copies bytes into LMDB.
 *
 * Invariant: a batch function that fails leaves the batch unchanged.
 */
#include "store/store_codec.h"

#include "lib/crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lib/err.h"

#define MSG_FIXED_BYTES	      32u /* crc .. dedup_len of a "msgs" value */
#define PARTS_BYTES	      12u /* a "parts" value */
#define QUEUE_FIXED_BYTES     64u /* crc .. dlq_len of a "queues" value */
#define GROUP_FIXED_BYTES     14u /* crc .. name_len of a "groups" value */
#define FAIL_BYTES	      32u /* a "fails" value */
#define DEDUP_FIXED_BYTES     20u /* crc .. publish_ms of a "dedup" value */
#define PRODUCER_FIXED_BYTES  16u /* crc .. n of a "producers" value */
#define PRODUCER_BATCH_BYTES  24u /* one batch of a "producers" value */
#define PRODUCER_SKIP_BYTES   18u /* one skip of a batch */
#define PRODUCER_KEY_BYTES    16u
#define DEDUP_HASH_KEY_OFFSET (8u + STORE_DEDUP_ID_PREFIX)
#define MSG_RECORD_VERSION    1u

/* The hashed key form must fill the key exactly, and be longer than every
 * inline key, so that the key length tells the forms apart. */
_Static_assert(DEDUP_HASH_KEY_OFFSET + 8u == STORE_DEDUP_KEY_MAX,
	       "hashed dedup key fills STORE_DEDUP_KEY_MAX");
_Static_assert(8u + STORE_DEDUP_ID_INLINE_MAX < STORE_DEDUP_KEY_MAX,
	       "inline dedup keys are shorter than hashed ones");

const char *const store_db_names[DB_COUNT] = {
	"meta",	 "users",     "queues", "parts",  "msgs",
	"dedup", "producers", "groups", "gstate", "fails",
};

/* Header of one batch operation (OP_HDR_BYTES, see store_codec.h); the
 * key and then the value or bound follow it. */
#define OP_HDR_BYTES 8u

uint32_t
store_record_crc(const void *key, size_t key_len, const void *val,
		 size_t val_len)
{
	uint32_t crc = crc32c(0, key, key_len);

	return crc32c(crc, (const uint8_t *)val + 4, val_len - 4);
}

bool
store_record_crc_ok(const void *key, size_t key_len, const void *val,
		    size_t val_len)
{
	if (val_len < 4)
		return false;
	return store_record_crc(key, key_len, val, val_len) ==
	       (uint32_t)store_get_be(val, 4);
}

size_t
store_encode_uint(uint8_t *buf, const void *key, size_t key_len, uint64_t value,
		  size_t n)
{
	(void)store_put_be(buf + 4, value, n);
	(void)store_put_be(buf, store_record_crc(key, key_len, buf, 4 + n), 4);
	return 4 + n;
}

int
store_decode_uint(const void *key, size_t key_len, const void *val,
		  size_t val_len, size_t n, uint64_t *value)
{
	*value = 0;
	if (val_len != 4 + n ||
	    !store_record_crc_ok(key, key_len, val, val_len))
		return -RMQ_ECORRUPT;
	*value = store_get_be((const uint8_t *)val + 4, n);
	return 0;
}

void
store_msg_key(uint8_t *key, uint32_t qid, uint32_t part, uint64_t offset)
{
	(void)store_put_be(store_put_be(store_put_be(key, qid, 4), part, 4),
			   offset, 8);
}

/* --------------------------------------------------- byte-order helpers */

static uint8_t *
put_be(uint8_t *p, uint64_t v, size_t n)
{
	return store_put_be(p, v, n);
}

static uint64_t
get_be(const uint8_t *p, size_t n)
{
	return store_get_be(p, n);
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
store_batch_set_urgent(struct store_batch *b)
{
	b->flags |= STORE_BATCH_URGENT;
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

bool
store_op_next(const struct store_batch *b, size_t *pos, struct store_op *op)
{
	const uint8_t *h;

	if (*pos >= b->len)
		return false;
	h = b->buf + *pos;
	op->op = h[0];
	op->db = (enum store_db)h[1];
	op->key_len = (size_t)h[2] | (size_t)h[3] << 8;
	op->val_len = (size_t)h[4] | (size_t)h[5] << 8 | (size_t)h[6] << 16 |
		      (size_t)h[7] << 24;
	*pos += OP_HDR_BYTES;
	op->key = b->buf + *pos;
	*pos += op->key_len;
	op->val = b->buf + *pos;
	*pos += op->val_len;
	return true;
}

bool
store_ops_valid(const uint8_t *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const uint8_t *h = buf + pos;
		size_t key_len, val_len;

		if (len - pos < OP_HDR_BYTES)
			return false;
		key_len = (size_t)h[2] | (size_t)h[3] << 8;
		val_len = (size_t)h[4] | (size_t)h[5] << 8 |
			  (size_t)h[6] << 16 | (size_t)h[7] << 24;
		if (h[0] < OP_PUT || h[0] > OP_DEL || h[1] >= DB_COUNT ||
		    key_len == 0 || len - pos - OP_HDR_BYTES < key_len ||
		    len - pos - OP_HDR_BYTES - key_len < val_len)
			return false;
		pos += OP_HDR_BYTES + key_len + val_len;
	}
	return true;
}

/* Appends one operation; returns where its key goes (the value or bound
 * follows the key), or NULL when out of memory (batch unchanged). A put's
 * caller fills key and value, then calls batch_seal. */
static uint8_t *
batch_op(struct store_batch *b, unsigned op, enum store_db db, size_t key_len,
	 size_t val_len)
{
	size_t need = OP_HDR_BYTES + key_len + val_len;
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
	p[0] = (uint8_t)op;
	p[1] = (uint8_t)db;
	p[2] = (uint8_t)key_len;
	p[3] = (uint8_t)(key_len >> 8);
	for (int i = 0; i < 4; i++)
		p[4 + i] = (uint8_t)(val_len >> (8 * i));
	b->len += need;
	b->ops++;
	return p + OP_HDR_BYTES;
}

/* Writes the CRC32C of a record whose key starts at key. */
static void
batch_seal(uint8_t *key, size_t key_len, size_t val_len)
{
	uint8_t *val = key + key_len;

	(void)put_be(val, store_record_crc(key, key_len, val, val_len), 4);
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

/* Adds a delete of exactly one key of db. */
static int
batch_del_key(struct store_batch *b, enum store_db db, const uint8_t *key,
	      size_t key_len)
{
	uint8_t *p = batch_op(b, OP_DEL, db, key_len, 0);

	if (p == NULL)
		return -ENOMEM;
	(void)put_bytes(p, key, key_len);
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

/* Bytes of a "users" value before its permissions. */
#define USER_FIXED_BYTES \
	(4 + 1 + 8 + 4 + 1 + 2 * STORE_KEY_LEN + 4 + 8 + 8 + 4 + 2)
#define USER_RECORD_VERSION 1u

static bool
user_is_valid(const struct store_user *u)
{
	if (u->name_len == 0 || u->name_len > STORE_USER_MAX ||
	    u->salt_len == 0 || u->salt_len > STORE_SALT_MAX ||
	    u->nperms > STORE_PERMS_MAX)
		return false;
	for (uint32_t i = 0; i < u->nperms; i++)
		if (u->perms[i].pattern_len == 0 ||
		    u->perms[i].pattern_len > STORE_NAME_MAX)
			return false;
	return true;
}

int
store_batch_put_user(struct store_batch *b, const struct store_user *u)
{
	size_t vlen = USER_FIXED_BYTES + u->salt_len;
	uint8_t *key, *p;

	if (!user_is_valid(u))
		return -EINVAL;
	for (uint32_t i = 0; i < u->nperms; i++)
		vlen += 3 + u->perms[i].pattern_len;
	key = batch_op(b, OP_PUT, DB_USERS, u->name_len, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_bytes(key, u->name, u->name_len) + 4;
	p = put_be(p, USER_RECORD_VERSION, 1);
	p = put_be(p, u->created_ms, 8);
	p = put_be(p, u->iterations, 4);
	p = put_bytes(put_be(p, u->salt_len, 1), u->salt, u->salt_len);
	p = put_bytes(p, u->stored_key, STORE_KEY_LEN);
	p = put_bytes(p, u->server_key, STORE_KEY_LEN);
	p = put_be(p, u->quota.max_connections, 4);
	p = put_be(p, u->quota.publish_messages_per_s, 8);
	p = put_be(p, u->quota.publish_bytes_per_s, 8);
	p = put_be(p, u->quota.max_leases, 4);
	p = put_be(p, u->nperms, 2);
	for (uint32_t i = 0; i < u->nperms; i++) {
		p = put_be(p, u->perms[i].bits, 1);
		p = put_bytes(put_be(p, u->perms[i].pattern_len, 2),
			      u->perms[i].pattern, u->perms[i].pattern_len);
	}
	batch_seal(key, u->name_len, vlen);
	return 0;
}

int
store_batch_del_user(struct store_batch *b, const char *name, uint16_t name_len)
{
	if (name_len == 0 || name_len > STORE_USER_MAX)
		return -EINVAL;
	return batch_del_key(b, DB_USERS, (const uint8_t *)name, name_len);
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
	uint8_t *key = batch_op(b, OP_PUT, DB_PARTS, 8, PARTS_BYTES);

	if (key == NULL)
		return -ENOMEM;
	(void)put_be(put_be(key, qid, 4), part, 4);
	(void)store_encode_uint(key + 8, key, 8, next_offset, 8);
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
	store_msg_key(key, qid, part, offset);
	p = key + 16 + 4;
	*p++ = MSG_RECORD_VERSION;
	*p++ = m->is_private ? STORE_MSG_PRIVATE : 0; /* flags */
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
	store_msg_key(lo, qid, part, from);
	store_msg_key(hi, qid, part, to);
	return batch_del_range(b, DB_MSGS, lo, hi, 16);
}

/* Encodes the "dedup" key of id into key (STORE_DEDUP_KEY_MAX bytes);
 * returns its length. The rule is documented in store.h. */
static size_t
dedup_key(uint8_t *key, uint32_t qid, uint32_t part, const void *id,
	  uint16_t id_len)
{
	uint8_t *p = put_be(put_be(key, qid, 4), part, 4);

	if (id_len <= STORE_DEDUP_ID_INLINE_MAX)
		return (size_t)(put_bytes(p, id, id_len) - key);
	p = put_bytes(p, id, STORE_DEDUP_ID_PREFIX);
	(void)put_be(p, XXH64(id, id_len, 0), 8);
	return STORE_DEDUP_KEY_MAX;
}

int
store_batch_put_dedup(struct store_batch *b, uint32_t qid, uint32_t part,
		      const void *id, uint16_t id_len, uint64_t offset,
		      uint64_t publish_ms)
{
	uint8_t kb[STORE_DEDUP_KEY_MAX], *key, *p;
	size_t key_len, vlen;
	bool is_hashed = id_len > STORE_DEDUP_ID_INLINE_MAX;

	if (id_len == 0)
		return -EINVAL;
	key_len = dedup_key(kb, qid, part, id, id_len);
	/* A hashed key keeps the whole id in the value, for store_load. */
	vlen = DEDUP_FIXED_BYTES + (is_hashed ? id_len : 0u);
	key = batch_op(b, OP_PUT, DB_DEDUP, key_len, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_bytes(key, kb, key_len) + 4;
	p = put_be(put_be(p, offset, 8), publish_ms, 8);
	if (is_hashed)
		(void)put_bytes(p, id, id_len);
	batch_seal(key, key_len, vlen);
	return 0;
}

int
store_batch_del_dedup(struct store_batch *b, uint32_t qid, uint32_t part,
		      const void *id, uint16_t id_len)
{
	uint8_t key[STORE_DEDUP_KEY_MAX];

	if (id_len == 0)
		return -EINVAL;
	return batch_del_key(b, DB_DEDUP, key,
			     dedup_key(key, qid, part, id, id_len));
}

static uint8_t *
put_producer_key(uint8_t *p, uint32_t qid, uint32_t part, uint64_t producer_id)
{
	return put_be(put_be(put_be(p, qid, 4), part, 4), producer_id, 8);
}

int
store_batch_put_producer(struct store_batch *b, uint32_t qid, uint32_t part,
			 uint64_t producer_id, const struct store_producer *pr)
{
	size_t vlen;
	uint8_t *key, *p;

	if (pr->n > STORE_PRODUCER_BATCHES)
		return -EINVAL;
	vlen = PRODUCER_FIXED_BYTES + PRODUCER_BATCH_BYTES * (size_t)pr->n;
	for (uint32_t i = 0; i < pr->n; i++)
		vlen += PRODUCER_SKIP_BYTES * (size_t)pr->batches[i].nskips;
	key = batch_op(b, OP_PUT, DB_PRODUCERS, PRODUCER_KEY_BYTES, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_producer_key(key, qid, part, producer_id) + 4;
	p = put_be(put_be(p, pr->last_used_ms, 8), pr->n, 4);
	for (uint32_t i = 0; i < pr->n; i++) {
		const struct store_producer_batch *pb = &pr->batches[i];

		p = put_be(p, pb->first_seq, 8);
		p = put_be(p, pb->count, 4);
		p = put_be(p, pb->first_offset, 8);
		p = put_be(p, pb->nskips, 4);
		for (uint32_t k = 0; k < pb->nskips; k++) {
			p = put_be(p, pb->skips[k].index, 4);
			p = put_be(p, pb->skips[k].len, 4);
			p = put_be(p, pb->skips[k].code, 2);
			p = put_be(p, pb->skips[k].offset, 8);
		}
	}
	batch_seal(key, PRODUCER_KEY_BYTES, vlen);
	return 0;
}

int
store_batch_del_producer(struct store_batch *b, uint32_t qid, uint32_t part,
			 uint64_t producer_id)
{
	uint8_t key[PRODUCER_KEY_BYTES];

	(void)put_producer_key(key, qid, part, producer_id);
	return batch_del_key(b, DB_PRODUCERS, key, sizeof(key));
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
			    const struct offset_run *runs, size_t nruns)
{
	size_t vlen = 16u + 16u * nruns;
	uint8_t *key, *p;

	/* Stored as runs (first, count): a floor held back by one long
	 * lease while later messages are acked is one run, not a list. */
	if (nruns > UINT32_MAX)
		return -RMQ_EINVALID_ARGUMENT;
	key = batch_op(b, OP_PUT, DB_GSTATE, 12, vlen);
	if (key == NULL)
		return -ENOMEM;
	p = put_be(put_be(put_be(key, qid, 4), gid, 4), part, 4) + 4;
	p = put_be(put_be(p, ack_floor, 8), nruns, 4);
	for (size_t i = 0; i < nruns; i++)
		p = put_be(put_be(p, runs[i].first, 8), runs[i].count, 8);
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

/* ------------------------------------------------------------ decoders */

int
store_decode_msg(const uint8_t *key, const uint8_t *val, size_t val_len,
		 struct store_msg_view *v)
{
	const uint8_t *p = val;
	uint64_t extra;

	memset(v, 0, sizeof(*v));
	v->partition = (uint32_t)get_be(key + 4, 4);
	v->offset = get_be(key + 8, 8);
	if (!store_record_crc_ok(key, 16, val, val_len) ||
	    val_len < MSG_FIXED_BYTES || p[4] != MSG_RECORD_VERSION)
		goto corrupt;
	v->publish_ms = get_be(p + 6, 8);
	v->deliver_at_ms = get_be(p + 14, 8);
	v->key_len = (uint32_t)get_be(p + 22, 4);
	v->headers_len = (uint32_t)get_be(p + 26, 4);
	v->dedup_len = (uint16_t)get_be(p + 30, 2);
	extra = (uint64_t)v->key_len + v->headers_len + v->dedup_len;
	if (extra > val_len - MSG_FIXED_BYTES)
		goto corrupt;
	p += MSG_FIXED_BYTES;
	v->key = p;
	v->headers = p + v->key_len;
	v->dedup_id = p + v->key_len + v->headers_len;
	v->payload = p + extra;
	v->payload_len = (uint32_t)(val_len - MSG_FIXED_BYTES - extra);
	return 0;
corrupt:
	memset(v, 0, sizeof(*v));
	v->partition = (uint32_t)get_be(key + 4, 4);
	v->offset = get_be(key + 8, 8);
	return -RMQ_ECORRUPT;
}

void
store_peek_msg(const uint8_t *val, size_t val_len, uint32_t *msg_bytes,
	       uint64_t *publish_ms, uint64_t *deliver_at_ms, unsigned *flags)
{
	uint64_t extra;

	*msg_bytes = 0;
	*publish_ms = 0;
	*deliver_at_ms = 0;
	*flags = 0;
	if (val_len < MSG_FIXED_BYTES)
		return;
	*flags = val[5];
	*publish_ms = get_be(val + 6, 8);
	*deliver_at_ms = get_be(val + 14, 8);
	extra = get_be(val + 22, 4) + get_be(val + 26, 4) + get_be(val + 30, 2);
	if (extra <= val_len - MSG_FIXED_BYTES)
		*msg_bytes = (uint32_t)(val_len - MSG_FIXED_BYTES);
}

uint64_t
store_msg_bytes(const struct store_msg *m)
{
	uint64_t n = (uint64_t)m->key_len + m->dedup_len + m->payload_len;

	for (uint32_t i = 0; i < m->header_count; i++)
		n += 6u + (uint64_t)m->headers[i].name_len +
		     m->headers[i].value_len;
	return n;
}

uint64_t
store_msg_view_bytes(const struct store_msg_view *v)
{
	return (uint64_t)v->key_len + v->headers_len + v->dedup_len +
	       v->payload_len;
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

int
store_decode_queue(const uint8_t *key, const uint8_t *val, size_t val_len,
		   struct store_queue *q)
{
	struct rd r = { val + 4, val_len - 4, false };

	memset(q, 0, sizeof(*q));
	q->qid = (uint32_t)get_be(key, 4);
	q->partitions = (uint32_t)rd_be(&r, 4);
	q->created_ms = rd_be(&r, 8);
	q->policy.lease_ms = rd_be(&r, 8);
	q->policy.max_lease_ms = rd_be(&r, 8);
	q->policy.max_deliveries = (uint32_t)rd_be(&r, 4);
	q->policy.max_depth = rd_be(&r, 8);
	q->policy.max_bytes = rd_be(&r, 8);
	q->policy.dedup_window_ms = rd_be(&r, 8);
	rd_name(&r, q->name, sizeof(q->name));
	rd_name(&r, q->policy.dlq, sizeof(q->policy.dlq));
	return r.is_bad || r.left != 0 ? -RMQ_ECORRUPT : 0;
}

int
store_decode_group(const uint8_t *key, const uint8_t *val, size_t val_len,
		   struct store_group *g)
{
	struct rd r = { val + 4, val_len - 4, false };

	memset(g, 0, sizeof(*g));
	g->qid = (uint32_t)get_be(key, 4);
	g->gid = (uint32_t)get_be(key + 4, 4);
	g->created_ms = rd_be(&r, 8);
	rd_name(&r, g->name, sizeof(g->name));
	return r.is_bad || r.left != 0 ? -RMQ_ECORRUPT : 0;
}

int64_t
store_gstate_runs(const uint8_t *val, size_t val_len)
{
	uint64_t runs, next = 0;

	if (val_len < 16)
		return -RMQ_ECORRUPT;
	runs = get_be(val + 12, 4);
	if (val_len != 16 + 16 * runs)
		return -RMQ_ECORRUPT;
	/* Runs ascend without touching, each of at least one offset. */
	for (uint64_t i = 0; i < runs; i++) {
		uint64_t first = get_be(val + 16 + 16 * i, 8);
		uint64_t count = get_be(val + 24 + 16 * i, 8);

		/* No limit on a run's length: the runs reach memory as
		 * runs (the limit of 2^32 offsets in all was for a list of
		 * offsets, which is gone). */
		if (count == 0 || first < next || first > UINT64_MAX - count)
			return -RMQ_ECORRUPT;
		next = first + count + 1;
	}
	return (int64_t)runs;
}

void
store_decode_gstate(const uint8_t *val, uint64_t *ack_floor,
		    struct offset_run *runs, uint32_t nruns)
{
	*ack_floor = get_be(val + 4, 8);
	for (uint32_t i = 0; i < nruns; i++) {
		runs[i].first = get_be(val + 16 + 16 * (size_t)i, 8);
		runs[i].count = get_be(val + 24 + 16 * (size_t)i, 8);
	}
}

int
store_decode_failure(const uint8_t *val, size_t val_len,
		     struct store_failure *f)
{
	if (val_len != FAIL_BYTES)
		return -RMQ_ECORRUPT;
	f->failures = (uint32_t)get_be(val + 4, 4);
	f->first_delivery_ms = get_be(val + 8, 8);
	f->last_delivery_ms = get_be(val + 16, 8);
	f->retry_at_ms = get_be(val + 24, 8);
	return 0;
}

int
store_decode_user(const uint8_t *key, size_t key_len, const uint8_t *val,
		  size_t val_len, struct store_user *u)
{
	struct rd r = { val + 4, val_len - 4, false };
	const uint8_t *p;

	memset(u, 0, sizeof(*u));
	if (val_len < 4 || key_len == 0 || key_len > STORE_USER_MAX ||
	    rd_be(&r, 1) != USER_RECORD_VERSION)
		return -RMQ_ECORRUPT;
	u->name = (const char *)key;
	u->name_len = (uint16_t)key_len;
	u->created_ms = rd_be(&r, 8);
	u->iterations = (uint32_t)rd_be(&r, 4);
	u->salt_len = (uint8_t)rd_be(&r, 1);
	if (u->salt_len == 0 || u->salt_len > STORE_SALT_MAX)
		return -RMQ_ECORRUPT;
	if ((p = rd_bytes(&r, u->salt_len)) != NULL)
		memcpy(u->salt, p, u->salt_len);
	if ((p = rd_bytes(&r, STORE_KEY_LEN)) != NULL)
		memcpy(u->stored_key, p, STORE_KEY_LEN);
	if ((p = rd_bytes(&r, STORE_KEY_LEN)) != NULL)
		memcpy(u->server_key, p, STORE_KEY_LEN);
	u->quota.max_connections = (uint32_t)rd_be(&r, 4);
	u->quota.publish_messages_per_s = rd_be(&r, 8);
	u->quota.publish_bytes_per_s = rd_be(&r, 8);
	u->quota.max_leases = (uint32_t)rd_be(&r, 4);
	u->nperms = (uint32_t)rd_be(&r, 2);
	if (u->nperms > STORE_PERMS_MAX)
		return -RMQ_ECORRUPT;
	for (uint32_t i = 0; i < u->nperms; i++) {
		size_t n;

		(void)rd_be(&r, 1);
		n = (size_t)rd_be(&r, 2);
		if (n == 0 || n > STORE_NAME_MAX)
			return -RMQ_ECORRUPT;
		(void)rd_bytes(&r, n);
	}
	return r.is_bad || r.left != 0 ? -RMQ_ECORRUPT : 0;
}

void
store_decode_user_perms(const uint8_t *val, size_t val_len,
			struct store_perm *perms, uint32_t nperms)
{
	size_t salt_len = val_len > 4 + 1 + 8 + 4 ? val[4 + 1 + 8 + 4] : 0;
	struct rd r = { val, val_len, false };

	(void)rd_bytes(&r, USER_FIXED_BYTES + salt_len);
	for (uint32_t i = 0; i < nperms; i++) {
		perms[i].bits = (uint8_t)rd_be(&r, 1);
		perms[i].pattern_len = (uint16_t)rd_be(&r, 2);
		perms[i].pattern =
			(const char *)rd_bytes(&r, perms[i].pattern_len);
	}
}

/* Besides lengths, a hashed key must match the id its value holds: same
 * prefix, same XXH64. */
int
store_decode_dedup(const uint8_t *key, size_t key_len, const uint8_t *val,
		   size_t val_len, struct store_dedup_rec *d)
{
	const uint8_t *id;
	size_t id_len;

	if (key_len <= 8 || key_len > STORE_DEDUP_KEY_MAX ||
	    val_len < DEDUP_FIXED_BYTES)
		return -RMQ_ECORRUPT;
	if (key_len < STORE_DEDUP_KEY_MAX) {
		if (val_len != DEDUP_FIXED_BYTES)
			return -RMQ_ECORRUPT;
		id = key + 8;
		id_len = key_len - 8;
	} else {
		id = val + DEDUP_FIXED_BYTES;
		id_len = val_len - DEDUP_FIXED_BYTES;
		if (id_len <= STORE_DEDUP_ID_INLINE_MAX ||
		    id_len > UINT16_MAX ||
		    memcmp(id, key + 8, STORE_DEDUP_ID_PREFIX) != 0 ||
		    XXH64(id, id_len, 0) !=
			    get_be(key + DEDUP_HASH_KEY_OFFSET, 8))
			return -RMQ_ECORRUPT;
	}
	d->qid = (uint32_t)get_be(key, 4);
	d->part = (uint32_t)get_be(key + 4, 4);
	d->id = id;
	d->id_len = (uint16_t)id_len;
	d->offset = get_be(val + 4, 8);
	d->publish_ms = get_be(val + 12, 8);
	return 0;
}

/* Decodes the skips of one batch at b (nskips of them, checked against
 * the batch's count), into a new array. */
static int
decode_skips(const uint8_t *b, struct store_producer_batch *pb)
{
	uint64_t next = 0;

	if (pb->nskips == 0)
		return 0;
	if (pb->nskips > pb->count)
		return -RMQ_ECORRUPT;
	pb->skips = calloc(pb->nskips, sizeof(*pb->skips));
	if (pb->skips == NULL)
		return -ENOMEM;
	for (uint32_t k = 0; k < pb->nskips; k++, b += PRODUCER_SKIP_BYTES) {
		struct store_producer_skip *sk = &pb->skips[k];

		sk->index = (uint32_t)get_be(b, 4);
		sk->len = (uint32_t)get_be(b + 4, 4);
		sk->code = (uint16_t)get_be(b + 8, 2);
		sk->offset = get_be(b + 10, 8);
		if (sk->len == 0 || sk->index < next ||
		    (uint64_t)sk->index + sk->len > pb->count)
			return -RMQ_ECORRUPT;
		next = (uint64_t)sk->index + sk->len;
	}
	return 0;
}

int
store_decode_producer(const uint8_t *val, size_t val_len,
		      struct store_producer *p)
{
	const uint8_t *b = val + PRODUCER_FIXED_BYTES;
	const uint8_t *end = val + val_len;
	uint64_t n;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	if (val_len < PRODUCER_FIXED_BYTES)
		return -RMQ_ECORRUPT;
	n = get_be(val + 12, 4);
	if (n > STORE_PRODUCER_BATCHES)
		return -RMQ_ECORRUPT;
	p->last_used_ms = get_be(val + 4, 8);
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		struct store_producer_batch *pb = &p->batches[i];

		if ((size_t)(end - b) < PRODUCER_BATCH_BYTES) {
			rc = -RMQ_ECORRUPT;
			break;
		}
		pb->first_seq = get_be(b, 8);
		pb->count = (uint32_t)get_be(b + 8, 4);
		pb->first_offset = get_be(b + 12, 8);
		pb->nskips = (uint32_t)get_be(b + 20, 4);
		b += PRODUCER_BATCH_BYTES;
		p->n = i + 1;
		if ((uint64_t)(end - b) / PRODUCER_SKIP_BYTES < pb->nskips) {
			pb->nskips = 0;
			rc = -RMQ_ECORRUPT;
			break;
		}
		rc = decode_skips(b, pb);
		b += (size_t)pb->nskips * PRODUCER_SKIP_BYTES;
	}
	if (rc == 0 && b != end)
		rc = -RMQ_ECORRUPT;
	if (rc != 0)
		store_producer_release(p);
	return rc;
}

void
store_producer_release(struct store_producer *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		free(p->batches[i].skips);
		p->batches[i].skips = NULL;
		p->batches[i].nskips = 0;
	}
}
