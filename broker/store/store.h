/*
 * store: ringmq's LMDB storage engine, with its journal in front.
 *
 * Owns the LMDB environment of a data directory: its lock, format version,
 * key layout, CRC32C on every record, the storage thread that commits
 * every batch (group commit: into LMDB, or with store_opts.journal into
 * the journal, an apply thread then applying them to LMDB behind it), the
 * loop thread's short read transactions, journal replay at open, and the
 * start-up scan that rebuilds memory state. It knows nothing of
 * connections, frames or dispatch.
 *
 * Threads: store_open/close/load, store_submit, store_reap, the reads
 * (store_msg_*) and store_read_release run on the loop thread (the thread
 * that opened the store). Batches are built on the loop thread too. The
 * storage and apply threads are private to store.c; LMDB's write
 * transactions are the storage thread's, or with the journal the apply
 * thread's. store_codec.c holds the byte encodings.
 *
 * Invariant: batches are applied and committed in submission order, and
 * their completions are reported in that order. A batch is applied as a
 * unit (a nested transaction): it is committed whole or not at all, and a
 * batch that fails (e.g. STORAGE_FULL) fails alone, never the other batches
 * of the same commit.
 *
 * --------------------------------------------------------------------- *
 * On-disk layout, format version 6 (STORE_FORMAT_VERSION). All integers are
 * big-endian. Every value begins with a u32 CRC32C (Castagnoli) computed over
 * the key bytes followed by the value bytes that come after the CRC; a mismatch
 * on read is reported as -RMQ_ECORRUPT.
 *
 * Ten named databases (one LMDB environment, MDB_NOSUBDIR off, in DIR/):
 * meta, users, queues, parts, msgs, dedup, producers, groups, gstate, fails.
 *
 *  "meta"    key: ASCII name
 *              "format" -> crc | u32 format version
 *              "epoch"  -> crc | u64 boot epoch (incremented at every open)
 *              "secret" -> crc | 32 random bytes, made at the first open of
 *                          a directory without one (authentication's
 *                          stand-in salts: the same across restarts)
 *  "users"   key: user name (1 to STORE_USER_MAX bytes)
 *              -> crc | u8 record version (1) | u64 created_ms
 *                 | u32 iterations | u8 salt_len | salt
 *                 | 32 StoredKey | 32 ServerKey (SCRAM-SHA-256)
 *                 | u32 max_connections | u64 publish_messages_per_s
 *                 | u64 publish_bytes_per_s | u32 max_leases (0: no limit)
 *                 | u16 n | n x { u8 STORE_PERM_* bits | u16 pattern_len
 *                               | pattern }
 *  "queues"  key: u32 qid
 *              -> crc | u32 partitions | u64 created_ms
 *                 | u64 lease_ms | u64 max_lease_ms | u32 max_deliveries
 *                 | u64 max_depth | u64 max_bytes | u64 dedup_window_ms
 *                 | u16 name_len | name | u16 dlq_len | dlq name
 *  "parts"   key: u32 qid | u32 partition
 *              -> crc | u64 next_offset
 *  "msgs"    key: u32 qid | u32 partition | u64 offset
 *              -> crc | u8 record version (1)
 *                 | u8 flags (STORE_MSG_PRIVATE: only one group sees it,
 *                   a redriven dead letter; the other groups' states
 *                   mark it acked, and so does a group made later)
 *                 | u64 publish_ms | u64 deliver_at_ms (0 = none)
 *                 | u32 key_len | u32 headers_len | u16 dedup_len
 *                 | key | headers | dedup_id | payload (the rest)
 *              headers: repeated {u16 name_len, name, u32 value_len, value}
 *  "dedup"   key: u32 qid | u32 partition | id key
 *              -> crc | u64 offset | u64 publish_ms | long id
 *              id key: a dedup_id of 1 to STORE_DEDUP_ID_INLINE_MAX (502)
 *              bytes is the id itself (key <= 510 bytes; long id empty).
 *              A longer id (up to 65535 bytes) is its first
 *              STORE_DEDUP_ID_PREFIX (495) bytes | u64 XXH64(whole id,
 *              seed 0), so the key is exactly STORE_DEDUP_KEY_MAX (511)
 *              bytes, and long id holds the whole id. The key length
 *              tells the forms apart: 511 bytes means hashed.
 *              Why fixed: 511 is LMDB's default (and Debian's) maximum
 *              key size, and a rule that followed the running LMDB's
 *              mdb_env_get_maxkeysize would key the same id differently
 *              under another build; store_open refuses an LMDB whose
 *              keys are shorter. store_load checks a long id against
 *              its key (prefix and hash). Two long ids sharing their
 *              first 495 bytes and their XXH64 would share one record
 *              (the later put replaces it, deleting either deletes it);
 *              no id of 502 bytes or less can collide with another.
 *  "producers" key: u32 qid | u32 partition | u64 producer_id
 *              -> crc | u64 last_used_ms | u32 n
 *                 | n x { u64 first_seq | u32 count | u64 first_offset
 *                       | u32 skips | skips x { u32 index | u32 len
 *                                             | u16 code | u64 offset } }
 *              (the producer's last batches on the partition, oldest
 *              first, n <= STORE_PRODUCER_BATCHES; a batch's skips are
 *              the runs of its messages that were not stored, ascending,
 *              not overlapping, len >= 1, within count: code 0 for
 *              duplicates of earlier dedup ids, at offset, offset + 1,
 *              ..., else the code they were refused with (offset 0); the
 *              other messages were stored at first_offset, first_offset
 *              + 1, ... in batch order)
 *  "groups"  key: u32 qid | u32 gid
 *              -> crc | u64 created_ms | u16 name_len | name
 *  "gstate"  key: u32 qid | u32 gid | u32 partition *              -> crc | u64
 * ack_floor | u32 runs | runs x {u64 first, u64 count} (every offset below
 * ack_floor is acked; so is each run first .. first + count - 1; runs ascend,
 * above the floor, never adjacent, count >= 1; the API passes the runs)
 *  "fails"   key: u32 qid | u32 gid | u32 partition | u64 offset
 *              -> crc | u32 failures | u64 first_delivery_ms
 *                 | u64 last_delivery_ms | u64 retry_at_ms
 *
 * Changing the layout: bump STORE_FORMAT_VERSION; store_open refuses data
 * of any other version with -RMQ_EFORMAT, but upgrades in place what it
 * can: version 5 is 6 without "users" (store_open adds it).
 * ---------------------------------------------------------------------
 */
#ifndef RINGMQ_STORE_H
#define RINGMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/runset.h"

#define STORE_FORMAT_VERSION 6u
#define STORE_NAME_MAX	     200u /* queue and group names, bytes */
#define STORE_USER_MAX	     128u /* user names, bytes */
#define STORE_SALT_MAX	     64u
#define STORE_KEY_LEN	     32u   /* StoredKey, ServerKey */
#define STORE_PERMS_MAX	     1024u /* permissions per user */
#define STORE_SECRET_LEN     32u

/* The "dedup" key rule (see the layout above); part of the format. */
#define STORE_DEDUP_KEY_MAX	  511u /* bytes of a hashed "dedup" key */
#define STORE_DEDUP_ID_INLINE_MAX 502u /* longest id kept whole in the key */
#define STORE_DEDUP_ID_PREFIX	  495u /* id bytes before the hash */

#define STORE_PRODUCER_BATCHES 8u /* batches kept per producer record */

struct store; /* opaque */

enum store_sync {
	STORE_SYNC_ALWAYS = 0,	 /* every commit is fdatasync'ed */
	STORE_SYNC_INTERVAL = 1, /* synced commits at most every interval */
	STORE_SYNC_NEVER = 2, /* MDB_NOSYNC: survives kill -9, not power loss */
};

struct store_opts {
	const char *dir;	    /* borrowed for store_open only */
	uint64_t max_storage_bytes; /* LMDB map size, fixed at open */
	enum store_sync sync;
	uint32_t sync_interval_ms; /* STORE_SYNC_INTERVAL only */
	/* Confirm batches once the journal (DIR/journal) holds them, LMDB
	 * applying them behind; 0: confirm after the LMDB commit. A
	 * journal left by an earlier run is replayed at open either way. */
	int journal;
	/* Journal bytes LMDB may fall behind by before confirms wait for
	 * it (0: STORE_JOURNAL_MAX_BYTES). */
	uint64_t journal_max_bytes;
};

#define STORE_JOURNAL_MAX_BYTES (64ull << 20)

/*
 * Opens (creating if needed) the data directory: takes an exclusive lock
 * file (DIR/LOCK, flock) so a second broker fails, opens LMDB with the given
 * map size, clears stale reader slots, checks or writes the format version,
 * increments the boot epoch, and starts the storage thread.
 * @param[out] out  the store; NULL on failure.
 * @return 0, -RMQ_ELOCKED, -RMQ_EFORMAT, -RMQ_ECORRUPT (the boot epoch
 *         record failed its CRC), -RMQ_ESTORAGE, -EINVAL (bad options)
 *         or another -errno.
 */
int store_open(struct store **out, const struct store_opts *o);

/* Commits nothing further: waits for submitted batches to finish (their
 * completions are delivered by a last store_reap inside; batches those
 * completions submit fail with -RMQ_ESHUTTING_DOWN), stops the storage
 * thread, closes LMDB, releases the lock. NULL is a no-op. */
void store_close(struct store *s);

/* Boot epoch of this open (>= 1, strictly greater than every earlier one). */
uint64_t store_boot_epoch(const struct store *s);

/* The data directory's secret: STORE_SECRET_LEN random bytes, the same
 * at every open (a backup carries it). */
const uint8_t *store_secret(const struct store *s);

/* An eventfd that becomes readable when completions are waiting; the loop
 * reads it (8 bytes) and then calls store_reap. Owned by the store. */
int store_event_fd(const struct store *s);

#define STORE_STAT_BUCKETS 12

/* Commits so far: how many batches each took along (group commit) and how
 * long each took, sync included; bucket i counts values up to bound i,
 * the last bucket those above every bound. */
struct store_commit_stats {
	uint64_t commits;
	uint64_t batches_sum;
	double seconds_sum;
	uint64_t batches[STORE_STAT_BUCKETS + 1];
	uint64_t seconds[STORE_STAT_BUCKETS + 1];
};

extern const double store_stat_batch_bounds[STORE_STAT_BUCKETS];
extern const double store_stat_seconds_bounds[STORE_STAT_BUCKETS];

/* A copy of the commit statistics. Any thread. */
void store_commit_stats(struct store *s, struct store_commit_stats *out);

/* The journal's progress (all 0 when it is off). */
struct store_journal_stats {
	int is_on;
	uint64_t journaled_seq;	  /* last record confirmed from it */
	uint64_t applied_seq;	  /* last record LMDB holds durably */
	uint64_t unapplied_bytes; /* journaled, LMDB not done applying */
};

/* A copy of the journal's progress. Any thread. */
void store_journal_stats(struct store *s, struct store_journal_stats *out);

/* 1 when writes can commit: LMDB has not panicked. Any thread. */
int store_is_writable(const struct store *s);

/* Bytes that growing writes may still add before the headroom kept for
 * acks and deletes is reached (<= 0: none), as of the last commit; the
 * limit STORE_BATCH_GROWS batches meet. Any thread (one statvfs). */
int64_t store_grow_room(const struct store *s);

/* Bytes of the map in use and the storage limit (the map size, or
 * --max-storage-bytes when the data found at open was larger), for
 * metrics and stats. Cheap (figures of the last commit). */
void store_usage(const struct store *s, uint64_t *used_bytes,
		 uint64_t *limit_bytes);

/* ------------------------------------------------------------- records */

struct store_policy {
	uint64_t lease_ms;
	uint64_t max_lease_ms;
	uint32_t max_deliveries;
	uint64_t max_depth;
	uint64_t max_bytes;
	uint64_t dedup_window_ms;
	char dlq[STORE_NAME_MAX + 8]; /* "" = "<queue>.dlq" */
};

struct store_queue {
	uint32_t qid;
	uint32_t partitions;
	uint64_t created_ms;
	struct store_policy policy;
	char name[STORE_NAME_MAX + 8];
};

struct store_group {
	uint32_t qid;
	uint32_t gid;
	uint64_t created_ms;
	char name[STORE_NAME_MAX + 8];
};

struct store_header {
	const void *name; /* borrowed */
	uint32_t name_len;
	const void *value; /* borrowed */
	uint32_t value_len;
};

/* Flags of a "msgs" record. */
#define STORE_MSG_PRIVATE 0x01u

/* A message to write. Every pointer is borrowed for the call that takes it;
 * the batch copies the bytes. */
struct store_msg {
	int is_private; /* STORE_MSG_PRIVATE */
	uint64_t publish_ms;
	uint64_t deliver_at_ms; /* 0 = none */
	const void *key;
	uint32_t key_len;
	const struct store_header *headers;
	uint32_t header_count;
	const void *dedup_id;
	uint16_t dedup_len;
	const void *payload;
	uint32_t payload_len;
};

/* A stored message as read. Every pointer points into the LMDB map and is
 * valid only until the next store_read_release (copy before keeping). */
struct store_msg_view {
	uint32_t partition;
	uint64_t offset;
	uint64_t publish_ms;
	uint64_t deliver_at_ms;
	const void *key;
	uint32_t key_len;
	const void *headers; /* raw header block, see the layout above */
	uint32_t headers_len;
	const void *dedup_id;
	uint16_t dedup_len;
	const void *payload;
	uint32_t payload_len;
};

/* The bytes a message counts for against max-message-bytes and a queue's
 * max_bytes: payload, key, dedup id, and each header's name and value
 * plus its 6 length bytes, i.e. the record without its fixed header. */
uint64_t store_msg_bytes(const struct store_msg *m);
uint64_t store_msg_view_bytes(const struct store_msg_view *v);

/* Iterates a raw header block. Start with *pos = 0; returns 1 and fills h
 * (pointing into block), 0 at the end, -RMQ_ECORRUPT on a malformed block. */
int store_headers_next(const void *block, uint32_t len, uint32_t *pos,
		       struct store_header *h);

struct store_failure {
	uint32_t failures; /* leases of this message that ended in failure */
	uint64_t first_delivery_ms;
	uint64_t last_delivery_ms;
	uint64_t retry_at_ms; /* wall clock; 0 = ready at once (nack delay) */
};

/* A run of messages of a recorded batch that were not stored, all
 * answered alike. */
struct store_producer_skip {
	uint32_t index;	 /* the run's first message in the batch */
	uint32_t len;	 /* messages, >= 1 */
	uint16_t code;	 /* refusal (store_skip_code), STORE_SKIP_OK: dups */
	uint64_t offset; /* duplicates: the first one's original offset */
};

/* A skip's code as stored: STORE_SKIP_OK for duplicates, else its
 * refusal's ringmq code less RMQ_EBASE, which is the number of the wire's
 * ErrorCode (lib/err.h); a system or private code is stored as INTERNAL.
 * The numbers are part of the format: they never change. */
#define STORE_SKIP_OK 0u

static inline uint16_t
store_skip_code(int rc)
{
	int code = rc < 0 ? -rc : rc;

	if (code == 0)
		return STORE_SKIP_OK;
	if (code > RMQ_EBASE && code <= RMQ_EWIRE_LAST)
		return (uint16_t)(code - RMQ_EBASE);
	return (uint16_t)(RMQ_EINTERNAL - RMQ_EBASE);
}

/* The ringmq code (0 or -RMQ_E*) of a stored skip code. */
static inline int
store_skip_rc(uint16_t code)
{
	return code == STORE_SKIP_OK ? 0 : -(RMQ_EBASE + (int)code);
}

/* A producer's state on one partition: its last batches, for answering
 * a resent batch as it was answered first. */
struct store_producer_batch {
	uint64_t first_seq;    /* sequence of the batch's first message */
	uint32_t count;	       /* messages in the batch */
	uint64_t first_offset; /* of its first stored message */
	uint32_t nskips;
	/* Ascending, not overlapping; the messages outside them were stored
	 * at first_offset, first_offset + 1, ... Owned by whoever filled
	 * the struct (see store_decode_producer, idem.h). */
	struct store_producer_skip *skips;
};

struct store_producer {
	uint64_t last_used_ms; /* wall clock, for expiry */
	uint32_t n;	       /* batches used, <= STORE_PRODUCER_BATCHES */
	/* The last n batches, oldest first. */
	struct store_producer_batch batches[STORE_PRODUCER_BATCHES];
};

/* Frees the skips of every batch of p, for the holders that own them. */
void store_producer_release(struct store_producer *p);

/* Bits of a permission. The numbers are part of the format. */
#define STORE_PERM_PUBLISH 0x01u
#define STORE_PERM_CONSUME 0x02u
#define STORE_PERM_ADMIN   0x04u

struct store_perm {
	const char *pattern; /* borrowed; not NUL-terminated */
	uint16_t pattern_len;
	uint8_t bits; /* STORE_PERM_* */
};

/* Per user; 0: no limit. */
struct store_quota {
	uint32_t max_connections;
	uint64_t publish_messages_per_s;
	uint64_t publish_bytes_per_s;
	uint32_t max_leases;
};

/* A user: its SCRAM keys (never its password), permissions and quotas. */
struct store_user {
	const char *name; /* borrowed; not NUL-terminated */
	uint16_t name_len;
	uint64_t created_ms;
	uint32_t iterations;
	uint8_t salt_len;
	uint8_t salt[STORE_SALT_MAX];
	uint8_t stored_key[STORE_KEY_LEN];
	uint8_t server_key[STORE_KEY_LEN];
	struct store_quota quota;
	uint32_t nperms;
	const struct store_perm *perms; /* borrowed [nperms] */
};

/* -------------------------------------------------------------- batches */

/* A batch: the operations of one request or one flush, applied as a unit.
 * Built on the loop thread, then handed to store_submit. */
struct store_batch;

/* Flags for store_batch_new. */
enum {
	/* Adds data (publishes, new queues): refused with -RMQ_ESTORAGE_FULL
	 * when the map or the filesystem is near full, so that batches without
	 * it (acks, deletes) keep headroom to commit and free space. Near
	 * full: bytes in use (high-water pages minus LMDB's free pages) above
	 * map size - headroom, or less than 2 x headroom left on the
	 * filesystem (counting free pages inside the file); headroom = map
	 * size / 16, clamped to [64 KiB, 1 GiB]. */
	STORE_BATCH_GROWS = 1u << 0,
	/* sync=interval: commit at once, without waiting out the interval
	 * (a confirm waits on this commit). */
	STORE_BATCH_URGENT = 1u << 1,
};

/* @return a new empty batch, or NULL when out of memory. */
struct store_batch *store_batch_new(unsigned flags);

/* Adds STORE_BATCH_URGENT to b's flags (before it is submitted). */
void store_batch_set_urgent(struct store_batch *b);

/* Frees a batch never submitted. NULL is a no-op. */
void store_batch_free(struct store_batch *b);

/* Number of operations in the batch. */
size_t store_batch_ops(const struct store_batch *b);

/* Each adds one operation, copying what it is given.
 * @return 0, -ENOMEM or -EINVAL (a length or count does not fit the
 *         layout, or a name is not NUL-terminated in its buffer); on
 *         failure the batch is unchanged. */
int store_batch_put_queue(struct store_batch *b, const struct store_queue *q);
/* Deletes the queue record and every record of the queue (parts, msgs,
 * dedup, producers, groups, gstate, fails). */
int store_batch_del_queue(struct store_batch *b, uint32_t qid);
int store_batch_put_next_offset(struct store_batch *b, uint32_t qid,
				uint32_t part, uint64_t next_offset);
int store_batch_put_msg(struct store_batch *b, uint32_t qid, uint32_t part,
			uint64_t offset, const struct store_msg *m);
/* Deletes the messages of a partition with from <= offset < to. */
int store_batch_del_msgs(struct store_batch *b, uint32_t qid, uint32_t part,
			 uint64_t from, uint64_t to);
int store_batch_put_group(struct store_batch *b, const struct store_group *g);
/* Deletes the group record and its gstate and fails records. */
int store_batch_del_group(struct store_batch *b, uint32_t qid, uint32_t gid);
/* runs: the acked offsets above the floor, ascending, not touching. */
int store_batch_put_group_state(struct store_batch *b, uint32_t qid,
				uint32_t gid, uint32_t part, uint64_t ack_floor,
				const struct offset_run *runs, size_t nruns);
int store_batch_put_failure(struct store_batch *b, uint32_t qid, uint32_t gid,
			    uint32_t part, uint64_t offset,
			    const struct store_failure *f);
/* Deletes failure records of a group partition with from <= offset < to. */
int store_batch_del_failures(struct store_batch *b, uint32_t qid, uint32_t gid,
			     uint32_t part, uint64_t from, uint64_t to);
/* Records that dedup_id id (1 to 65535 bytes; -EINVAL if empty) was
 * published on the partition at offset; replaces the id's record. */
int store_batch_put_dedup(struct store_batch *b, uint32_t qid, uint32_t part,
			  const void *id, uint16_t id_len, uint64_t offset,
			  uint64_t publish_ms);
/* Deletes the id's dedup record; an absent one is not an error. */
int store_batch_del_dedup(struct store_batch *b, uint32_t qid, uint32_t part,
			  const void *id, uint16_t id_len);
/* Writes the producer's state (-EINVAL if p->n > STORE_PRODUCER_BATCHES). */
int store_batch_put_producer(struct store_batch *b, uint32_t qid, uint32_t part,
			     uint64_t producer_id,
			     const struct store_producer *p);
/* Deletes the producer's state; an absent one is not an error. */
int store_batch_del_producer(struct store_batch *b, uint32_t qid, uint32_t part,
			     uint64_t producer_id);
/* Writes the user's record, replacing the one of the same name. */
int store_batch_put_user(struct store_batch *b, const struct store_user *u);
/* Deletes the user's record; an absent one is not an error. */
int store_batch_del_user(struct store_batch *b, const char *name,
			 uint16_t name_len);

/*
 * Completion of a submitted batch, called on the loop thread from
 * store_reap. status: 0 committed (and synced as the sync mode says),
 * -RMQ_ESTORAGE_FULL, -RMQ_ESTORAGE or -errno: nothing of the batch was
 * written.
 */
typedef void (*store_done_fn)(void *ctx, int status);

/*
 * Hands a batch to the storage thread, which takes ownership of b. done is
 * called exactly once, later, from store_reap (never from inside this call;
 * see store_flush for batches that need no sync).
 * Everything submitted while a commit is syncing goes into the next commit.
 */
void store_submit(struct store *s, struct store_batch *b, store_done_fn done,
		  void *ctx);

/*
 * Ends the loop's pass for the store: batches submitted in it that need
 * no sync (sync=never or interval with the journal) are written to the
 * journal by the calling thread when the journal is free and they fit in
 * its current segment, and their completions run (store_reap); otherwise
 * the storage thread is woken for them. The loop calls it once per pass,
 * before it dispatches what the completions made visible; until then such
 * batches wait. Loop thread.
 */
void store_flush(struct store *s);

/* True when batches submitted since the last store_flush wait for it:
 * the loop should pass again at once rather than sleep. */
bool store_has_deferred(const struct store *s);

/* Calls the completions of every batch committed since the last call, in
 * submission order. Returns how many it called. Does not block. Called
 * from inside a completion it does nothing (returns 0). With completions
 * to call it first ends the loop's read transaction (store_read_release):
 * views taken before do not survive it, and reads after see the new
 * commits. */
int store_reap(struct store *s);

/* Blocks until every batch submitted so far has completed (their callbacks
 * still run only from store_reap). For shutdown and tests. */
void store_drain(struct store *s);

/* With the journal: blocks until LMDB holds every batch completed so
 * far, and frees what reads kept of them (store_read_release first, as
 * store_reap does). Without it, returns at once. For tests. */
void store_checkpoint(struct store *s);

/* ---------------------------------------------------------------- reads */

/*
 * Finds the first message of (qid, part) with offset >= from. Opens or
 * renews the loop thread's read transaction as needed. It reads LMDB
 * only: with the journal, a message confirmed but not applied yet is
 * found by store_msg_get, not here until a checkpoint has applied it.
 * @param[out] v  the message, pointing into the map until
 *                store_read_release.
 * @return 0 found; -RMQ_ENOTFOUND none at or after from;
 *         -RMQ_ECORRUPT the record at v->offset failed its CRC (v->offset
 *         and v->partition are set, the rest is not: skip it); -RMQ_ESTORAGE.
 */
int store_msg_next(struct store *s, uint32_t qid, uint32_t part, uint64_t from,
		   struct store_msg_view *v);

/* Like store_msg_next for exactly one offset (-RMQ_ENOTFOUND if absent). */
int store_msg_get(struct store *s, uint32_t qid, uint32_t part, uint64_t offset,
		  struct store_msg_view *v);

/*
 * The exact bytes stored as the value of message (qid, part, offset), its
 * leading CRC included, whether or not they pass their CRC: for
 * dead-lettering a corrupt record as it was stored.
 * @param[out] value  points into the map until store_read_release;
 *                    NULL on failure.
 * @param[out] len    bytes at value; 0 on failure.
 * @return 0; -RMQ_ENOTFOUND if absent; -RMQ_ESTORAGE.
 */
int store_msg_get_raw(struct store *s, uint32_t qid, uint32_t part,
		      uint64_t offset, const void **value, size_t *len);

/* Ends the loop thread's read transaction (mdb_txn_reset) so pages can be
 * reused; called once per loop pass. Views die here. */
void store_read_release(struct store *s);

/*
 * Writes a compacted, consistent copy of the data (LMDB's compacting
 * copy, from one read transaction) into directory path, on a thread of
 * its own so commits go on meanwhile. The copy is a data directory a
 * broker can start on; it is written as data.mdb.partial, synced, and
 * renamed to data.mdb only when complete. done runs from store_reap; *bytes
 * (the caller's) then holds the size of the copy.
 * @return 0; -EBUSY while another backup runs; -EEXIST if path already
 *         holds data; -ENOMEM.
 */
int store_backup(struct store *s, const char *path, uint64_t *bytes,
		 store_done_fn done, void *ctx);

/* Drops the completion of a running backup (its requester is going
 * away: the broker stops). store_close then leaves a backup still
 * running unfinished, as DIR/data.mdb.partial, and does not wait. */
void store_backup_abandon(struct store *s);

/* ------------------------------------------------------------- recovery */

/* Callbacks of store_load, each optional (NULL skips). Pointers passed are
 * valid only during the call. Returning a negative value stops the load
 * with that value. */
struct store_load_cb {
	int (*user)(void *ctx, const struct store_user *u);
	int (*queue)(void *ctx, const struct store_queue *q);
	/* next_offset from "parts" (0 if absent). */
	int (*partition)(void *ctx, uint32_t qid, uint32_t part,
			 uint64_t next_offset);
	/* One per stored message, ascending (qid, part, offset); no payload
	 * is read, so CRCs are not checked here. */
	int (*message)(void *ctx, uint32_t qid, uint32_t part, uint64_t offset,
		       uint32_t msg_bytes, uint64_t publish_ms,
		       uint64_t deliver_at_ms);
	/* Optional: after message, for each one flagged STORE_MSG_PRIVATE. */
	int (*private_message)(void *ctx, uint32_t qid, uint32_t part,
			       uint64_t offset);
	int (*group)(void *ctx, const struct store_group *g);
	int (*group_state)(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
			   uint64_t ack_floor, const struct offset_run *runs,
			   uint32_t nruns);
	int (*failure)(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
		       uint64_t offset, const struct store_failure *f);
	/* One per dedup record, in key order (not id order for hashed
	 * ids); id is the whole dedup_id, also when the key holds its
	 * hash. */
	int (*dedup)(void *ctx, uint32_t qid, uint32_t part, const void *id,
		     uint16_t id_len, uint64_t offset, uint64_t publish_ms);
	/* One per producer record, ascending (qid, part, producer_id); the
	 * batches' skips live until the call returns. */
	int (*producer)(void *ctx, uint32_t qid, uint32_t part,
			uint64_t producer_id, const struct store_producer *p);
};

/*
 * Reads every user, queue, partition, group, group state, failure, dedup
 * record, producer and message header, in that order (messages last), in
 * one read transaction. Call before the loop starts. A record
 * failing its CRC or layout checks in any database but "msgs" is logged
 * and fails the load with -RMQ_ECORRUPT; a message record is reported as
 * is (checked on read).
 */
int store_load(struct store *s, const struct store_load_cb *cb, void *ctx);

#endif
