/*
 * store_codec: the byte side of the storage engine, private to store.c and
 * store_codec.c.
 *
 * Owns CRC32C, the in-memory encoding of a batch's operations, and the
 * encoding and decoding of every record of the layout in store.h. Pure:
 * no LMDB, no threads, no I/O; store.c feeds it bytes and applies what it
 * encodes. Invariant: every record it encodes carries the CRC32C of its
 * key and value, and every decoder checks lengths before it reads.
 */
#ifndef RINGMQ_STORE_CODEC_H
#define RINGMQ_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/store.h"

/* The named databases. The order matters: del_queue deletes a queue's
 * prefix from DB_QUEUES on, del_group a group's from DB_GROUPS on, so the
 * databases keyed by queue | partition come before the group ones, and
 * those not keyed by queue (meta, users) before DB_QUEUES. */
enum store_db {
	DB_META,
	DB_USERS,
	DB_QUEUES,
	DB_PARTS,
	DB_MSGS,
	DB_DEDUP,
	DB_PRODUCERS,
	DB_GROUPS,
	DB_GSTATE,
	DB_FAILS,
	DB_COUNT,
};

/* LMDB names of the databases, indexed by enum store_db. */
extern const char *const store_db_names[DB_COUNT];

/* Operations of a batch: OP_PUT writes key -> value (the whole record,
 * CRC included); OP_DEL_RANGE deletes the keys in [key, bound), an empty
 * bound meaning no upper bound; OP_DEL deletes exactly key, absent or not.
 * A batch's bytes are also the body of its journal record, so they are
 * part of the format: one operation after another, each
 *   u8 op | u8 db (enum store_db) | u16 key_len | u32 val_len
 *   | key | value or bound
 * with the lengths little-endian (like the journal's own fields), and
 * the keys and values exactly as LMDB holds them (layout above). */
enum { OP_PUT = 1, OP_DEL_RANGE = 2, OP_DEL = 3 };

/* One decoded operation; key and val point into the batch buffer. */
struct store_op {
	unsigned op;
	enum store_db db;
	const uint8_t *key; /* borrowed from the batch */
	size_t key_len;
	const uint8_t *val; /* borrowed: OP_PUT value or OP_DEL_RANGE bound */
	size_t val_len;
};

struct store_batch {
	struct store_batch *next; /* owned by whichever list holds the batch */
	/* With the journal: the batch's record (0: none), and the link of
	 * the storage threads' apply queue, which holds a journaled batch
	 * beside the done list until LMDB has applied it. */
	uint64_t seq;
	struct store_batch *apply_next;
	uint8_t *buf; /* owned: the encoded operations */
	size_t len;   /* bytes used in buf */
	size_t cap;   /* bytes allocated in buf */
	size_t ops;
	unsigned flags;
	int status; /* set by the storage thread */
	store_done_fn done;
	void *ctx; /* borrowed: the submitter's, handed back to done */
};

/* Decodes the operation at *pos of b and advances *pos; false at the end.
 * The bytes must be well formed (built here, or store_ops_valid). */
bool store_op_next(const struct store_batch *b, size_t *pos,
		   struct store_op *op);

/* Whether buf holds whole operations only, each with a known op and db
 * and a key (a journal record's body, before it is applied). */
bool store_ops_valid(const uint8_t *buf, size_t len);

/* ---------------------------------------------------------- byte order */

static inline uint8_t *
store_put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i > 0; i--) {
		p[i - 1] = (uint8_t)v;
		v >>= 8;
	}
	return p + n;
}

static inline uint64_t
store_get_be(const void *src, size_t n)
{
	const uint8_t *p = src;
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* ------------------------------------------------------------- records */

/* The CRC a record of key and val (val starting with its CRC field)
 * carries: CRC32C of the key bytes, then of the value after the CRC. */
uint32_t store_record_crc(const void *key, size_t key_len, const void *val,
			  size_t val_len);

/* Whether the value's first four bytes hold store_record_crc. */
bool store_record_crc_ok(const void *key, size_t key_len, const void *val,
			 size_t val_len);

/* Encodes a record holding one big-endian integer of n <= 8 bytes (the
 * "meta" and "parts" values) into buf (4 + n bytes); returns 4 + n. */
size_t store_encode_uint(uint8_t *buf, const void *key, size_t key_len,
			 uint64_t value, size_t n);

/* Reads such a record: 0, or -RMQ_ECORRUPT (length or CRC wrong). */
int store_decode_uint(const void *key, size_t key_len, const void *val,
		      size_t val_len, size_t n, uint64_t *value);

/* Encodes the 16-byte "msgs" key of a message. */
void store_msg_key(uint8_t *key, uint32_t qid, uint32_t part, uint64_t offset);

/* Fills v from a "msgs" record: checks the CRC, the record version and
 * the lengths. v->partition and v->offset are set even on failure.
 * @return 0 or -RMQ_ECORRUPT (the rest of v zeroed). */
int store_decode_msg(const uint8_t *key, const uint8_t *val, size_t val_len,
		     struct store_msg_view *v);

/* The fixed header of a "msgs" value without its CRC checked (flags:
 * STORE_MSG_*; msg_bytes as store_msg_bytes counts them); zeros for a
 * record too short to parse (reading it fails later). */
void store_peek_msg(const uint8_t *val, size_t val_len, uint32_t *msg_bytes,
		    uint64_t *publish_ms, uint64_t *deliver_at_ms,
		    unsigned *flags);

/* Decoders of the records store_load reports, after their CRC was checked
 * by the caller. Each returns 0 or -RMQ_ECORRUPT (malformed). Pointers
 * they fill point into key or val. */
int store_decode_queue(const uint8_t *key, const uint8_t *val, size_t val_len,
		       struct store_queue *q);
int store_decode_group(const uint8_t *key, const uint8_t *val, size_t val_len,
		       struct store_group *g);
/* Runs of acked offsets in a "gstate" value, or -RMQ_ECORRUPT. */
int64_t store_gstate_runs(const uint8_t *val, size_t val_len);
/* Reads a "gstate" value whose runs store_gstate_runs counted. */
void store_decode_gstate(const uint8_t *val, uint64_t *ack_floor,
			 struct offset_run *runs, uint32_t nruns);
int store_decode_failure(const uint8_t *val, size_t val_len,
			 struct store_failure *f);
/* Reads a "users" record; its permissions are counted (u->nperms) but not
 * read: store_user_perm_at reads them. name points into key. */
int store_decode_user(const uint8_t *key, size_t key_len, const uint8_t *val,
		      size_t val_len, struct store_user *u);
/* The permissions of a "users" record that store_decode_user accepted,
 * into perms[u->nperms] (patterns point into val). */
void store_decode_user_perms(const uint8_t *val, size_t val_len,
			     struct store_perm *perms, uint32_t nperms);

/* A "dedup" record as read. */
struct store_dedup_rec {
	uint32_t qid;
	uint32_t part;
	const void *id; /* borrowed: the whole id, in key or value */
	uint16_t id_len;
	uint64_t offset;
	uint64_t publish_ms;
};

int store_decode_dedup(const uint8_t *key, size_t key_len, const uint8_t *val,
		       size_t val_len, struct store_dedup_rec *d);
/* Fills *p, allocating each batch's skips: release them with
 * store_producer_release (done here on failure). @return 0,
 * -RMQ_ECORRUPT or -ENOMEM. */
int store_decode_producer(const uint8_t *val, size_t val_len,
			  struct store_producer *p);

#endif
