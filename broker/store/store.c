/*
 * store: the LMDB storage engine (see store.h for the contract and the
 * byte-exact layout).
 *
 * Owns the LMDB environment, the data directory lock, the storage thread
 * and the loop thread's read transaction. Everything LMDB stays in this
 * file: its return codes are mapped to ringmq codes before they leave.
 * The bytes (CRC32C, batch encoding, records) are store_codec.c's.
 *
 * Threads. The loop thread builds batches (copies of every input, encoded
 * into one buffer per batch by store_codec.c), submits them and reaps
 * completions; it also owns the read transaction (reset between loop passes).
 * The storage thread takes the pending batches (all of them, up to
 * GROUP_MAX_BYTES), applies them in one write transaction and commits that
 * once (group commit), then hands the batches back through the done list
 * and the eventfd. With the journal it appends and syncs them there
 * instead, and the apply thread commits them to LMDB later ("the journal
 * and its applier" below). When a batch fails to apply, the transaction is
 * aborted and the group applied again with a nested transaction per batch,
 * so that it fails alone. One mutex guards both lists and the counters.
 *
 * Invariant: batches complete, and their callbacks run, in submission
 * order; a failed batch leaves nothing behind and fails alone.
 *
 * Space: a batch flagged STORE_BATCH_GROWS is refused with
 * -RMQ_ESTORAGE_FULL once the bytes in use (pages up to the high-water
 * mark minus the free pages LMDB keeps for reuse) reach the limit
 * (--max-storage-bytes) minus the headroom, or once the filesystem (plus the
 * free pages inside the file) has less than two headrooms left (at most an
 * eighth of the filesystem, at least 256 KiB). Headroom = limit / 16, clamped
 * to [64 KiB, 1 GiB]: enough
 * for acks, group states and deletes (which dirty few pages and free many) to
 * keep committing, without holding back a large share of a big map.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/vec.h"
#include "store/journal.h"
#include "store/overlay.h"
#include "store/store_codec.h"

#define HEADROOM_MIN_BYTES (64ull << 10)
#define HEADROOM_MAX_BYTES (1ull << 30)
/* Encoded batch bytes per commit. A parent transaction cannot spill the
 * pages its committed children dirtied, so one commit must stay well
 * inside LMDB's dirty-page limit (128 Ki pages = 512 MiB): taking every
 * pending batch of a long backlog at once failed with MDB_TXN_FULL. */
#define GROUP_MAX_BYTES (64u << 20)

#define SLOW_COMMIT_MS 500 /* commits slower than this are logged */

/* The data file is kept written (with zeros) this far past LMDB's last
 * page, topped up a step at a time (writing a step took ~0.45 ms median
 * here). A synced write that grows a file also commits filesystem
 * metadata (size, new blocks): floor-bench measured a synced append at
 * 137-174 us p50 on a growing file against 93-112 us on one written
 * ahead. */
#define PREALLOC_AHEAD_BYTES (16ull << 20)
#define PREALLOC_STEP_BYTES  (2ull << 20)
#define PREALLOC_IO_BYTES    (256u << 10) /* zeros per pwrite */

struct store {
	MDB_env *env; /* owned */
	MDB_dbi dbi[DB_COUNT];
	char *dir;    /* owned copy, for log lines */
	int lock_fd;  /* owned: DIR/LOCK, flock'ed */
	int event_fd; /* owned: written by the storage thread */
	enum store_sync sync;
	uint64_t sync_interval_ns;
	uint64_t boot_epoch;
	uint8_t secret[STORE_SECRET_LEN];
	uint64_t page_bytes;
	uint64_t map_bytes;
	/* What growing writes may fill (--max-storage-bytes): the map, or
	 * less when the data found at open was larger than that. */
	uint64_t limit_bytes;
	uint64_t headroom_bytes;

	/* Loop thread only. */
	MDB_txn *rtxn;	   /* owned: the read transaction, reset per pass */
	MDB_cursor *rcur;  /* owned: cursor on "msgs" in rtxn */
	bool is_rtxn_live; /* rtxn begun or renewed, not reset */
	bool is_reaping;   /* inside store_reap: a nested call waits */
	/* Batches submitted without waking the storage thread, which
	 * store_flush writes to the journal itself or hands over. */
	bool is_deferred;

	/* Storage thread only (and store_open before the thread starts). */
	MDB_txn *stat_txn; /* owned: read txn for freelist counts */
	int data_fd;	   /* borrowed: LMDB's data file */
	/* Data file size: pages, then preallocation. Written here only,
	 * read by store_grow_room on any thread. */
	_Atomic uint64_t file_bytes;
	uint64_t last_commit_ns;
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
	unsigned urgent_pending; /* pending batches flagged URGENT */
	bool is_stopping;
	pthread_t thread;
	bool is_thread_started;

	/* Backup: one at a time, on a thread of its own. */
	pthread_t backup_thread;
	bool is_backup_running; /* loop thread; joined at the next start */
	atomic_bool is_backup_finished;
	char *backup_path;		 /* owned while running */
	struct store_batch *backup_done; /* handed to the done list */
	uint64_t *backup_bytes;		 /* borrowed: the caller's */
	bool is_sync_init;		 /* lock and conds initialised */
	bool is_env_open;		 /* mdb_env_open succeeded */
	/* Commit statistics, under lock: batches per commit and commit (with
	 * sync) duration, bucketed as STORE_STAT_* say. */
	struct store_commit_stats stats;

	/* Written by the storage thread after each commit, read anywhere. */
	_Atomic uint64_t used_bytes;
	_Atomic uint64_t high_water_bytes;
	atomic_bool is_panicked;
	/* Growing batches are refused for room (written by whoever
	 * journals or commits, read anywhere): they need more to resume. */
	atomic_bool is_full;

	/* The journal (opts.journal): NULL when off. The storage thread
	 * owns it once started; the apply thread owns LMDB's writes. */
	struct journal *journal;
	uint64_t journal_max_bytes;
	uint64_t journal_seg_bytes;
	uint64_t journal_sync_ns; /* journal's owner: last journal sync */
	/* Under lock: who may touch the journal. The storage thread, or the
	 * loop thread in store_flush, sets is_journal_busy while it does;
	 * is_journal_wanted: the storage thread waits for the loop to end;
	 * is_journal_dirty: records written and not synced;
	 * is_sync_timed: the storage thread waits for the interval's sync. */
	bool is_journal_busy;
	bool is_journal_wanted;
	bool is_journal_dirty;
	bool is_sync_timed;
	uint64_t checkpoint_ns; /* apply thread: last LMDB commit */
	/* Under lock: journaled batches LMDB has not applied (the apply
	 * queue, linked by apply_next), their bytes (being applied too),
	 * the last sequence number queued, and who waits for a
	 * checkpoint (a backup, a drain). */
	struct store_batch *apply_head;
	struct store_batch **apply_tail;
	uint64_t apply_bytes;
	uint64_t journaled_seq;
	unsigned checkpoint_waiters;
	bool is_apply_stopping;
	pthread_cond_t apply_cond; /* apply thread: work, waiters, stop */
	pthread_t apply_thread;
	bool is_apply_started;
	/* The journal's last record that LMDB holds durably. */
	_Atomic uint64_t applied_seq;
	/* Loop thread: confirmed batches LMDB has not applied, oldest
	 * first (linked by next), and their messages, for reads. */
	struct overlay *overlay;
	struct store_batch *held;
	struct store_batch **held_tail;
};

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
	struct store_op op;
	size_t pos = 0;
	int rc = 0;

	while (rc == 0 && store_op_next(b, &pos, &op)) {
		MDB_dbi dbi = s->dbi[op.db];
		MDB_val k = { op.key_len, (void *)op.key };
		MDB_val v = { op.val_len, (void *)op.val };

		switch (op.op) {
		case OP_PUT: rc = mdb_put(txn, dbi, &k, &v, 0); break;
		case OP_DEL_RANGE:
			rc = apply_del_range(txn, dbi, &k, &v);
			break;
		default:
			rc = mdb_del(txn, dbi, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0; /* deleting an absent key is done */
		}
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

/* Bytes that may still be added before the headroom is reached (<= 0:
 * none); *errnop gets statvfs's errno, or 0. */
static int64_t
room_now(const struct store *s, int *errnop)
{
	uint64_t used = atomic_load(&s->used_bytes);
	uint64_t high = atomic_load(&s->high_water_bytes);
	uint64_t file_bytes = atomic_load(&s->file_bytes);
	int64_t room, fs_room;
	bool is_full = atomic_load(&s->is_full);
	uint64_t fs_reserve, fs_total;
	struct statvfs sv;

	*errnop = 0;
	room = (int64_t)s->limit_bytes - (int64_t)s->headroom_bytes -
	       (int64_t)used;
	/* Once full, publishing resumes only when half a headroom is free
	 * again: each commit frees a few pages (and, with the journal, the
	 * room counted for what LMDB had yet to apply comes back), which
	 * would otherwise let one small publish in between refusals. */
	if (is_full)
		room -= (int64_t)(s->headroom_bytes / 2);
	if (fstatvfs(s->lock_fd, &sv) != 0) {
		*errnop = errno;
		return room;
	}
	/* Growth beyond the file's free pages comes from the filesystem.
	 * Its reserve is two headrooms, but at most an eighth of a
	 * filesystem smaller than the map (never under 256 KiB), or a small
	 * disk would refuse everything from the start. */
	fs_reserve = 2 * s->headroom_bytes;
	fs_total = (uint64_t)sv.f_blocks * sv.f_frsize;
	if (fs_reserve > fs_total / 8)
		fs_reserve = fs_total / 8;
	if (fs_reserve < 4 * HEADROOM_MIN_BYTES)
		fs_reserve = 4 * HEADROOM_MIN_BYTES;
	/* Preallocated zeros past the high-water mark are room too. */
	fs_room = (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize) +
		  (int64_t)(high - used) - (int64_t)fs_reserve;
	if (file_bytes > high)
		fs_room += (int64_t)(file_bytes - high);
	if (is_full) /* as above: half a headroom, or a 32nd of a small one */
		fs_room -= (int64_t)(fs_reserve / 4);
	return fs_room < room ? fs_room : room;
}

/* Bytes that batches flagged STORE_BATCH_GROWS may still add in this
 * commit before the headroom is reached (<= 0: none).
 * Runs on: storage thread. */
static int64_t
grow_room(struct store *s)
{
	int err;
	int64_t room = room_now(s, &err);

	if (err != 0 && !s->is_statvfs_logged)
		log_warn("store: %s: statvfs: %s; free space not watched",
			 s->dir, strerror(err));
	s->is_statvfs_logged = err != 0;
	return room;
}

int64_t
store_grow_room(const struct store *s)
{
	int err;

	return room_now(s, &err);
}

/* Keeps the data file written PREALLOC_AHEAD_BYTES past the high-water
 * mark (within the map, and only out of the filesystem's room above its
 * reserve), so that commits overwrite blocks instead of adding them. The
 * zeros lie past every page LMDB references and LMDB writes only from
 * this thread, so nothing reads or races them; writeback starts at once
 * and the next commit's sync makes them (and the new size) durable.
 * Runs on: storage thread (and store_open). */
static void
prealloc_ahead(struct store *s)
{
	static const char zeros[PREALLOC_IO_BYTES];
	uint64_t high = atomic_load(&s->high_water_bytes);
	uint64_t target = high + PREALLOC_AHEAD_BYTES, start;
	struct statvfs sv;
	struct stat st;

	if (s->sync == STORE_SYNC_NEVER || s->data_fd < 0)
		return;
	if (target > s->map_bytes)
		target = s->map_bytes;
	if (s->file_bytes >=
		    high + PREALLOC_AHEAD_BYTES - PREALLOC_STEP_BYTES ||
	    s->file_bytes >= target)
		return;
	/* LMDB extends the file itself when it writes past the zeros: only
	 * what lies past its current end may be written here. */
	if (fstat(s->data_fd, &st) != 0)
		return;
	start = (uint64_t)st.st_size > high ? (uint64_t)st.st_size : high;
	s->file_bytes = start;
	if (start >= high + PREALLOC_AHEAD_BYTES - PREALLOC_STEP_BYTES ||
	    start >= target)
		return;
	if (fstatvfs(s->data_fd, &sv) != 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize <
		    2 * s->headroom_bytes + (target - start))
		return; /* a nearly full disk keeps its room for data */
	for (uint64_t off = start; off < target;) {
		size_t n = target - off < sizeof(zeros) ? (size_t)(target - off)
							: sizeof(zeros);
		ssize_t w = pwrite(s->data_fd, zeros, n, (off_t)off);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break; /* what was written stays; retried later */
		}
		off += (uint64_t)w;
		s->file_bytes = off;
	}
	if (s->file_bytes > start)
		(void)sync_file_range(s->data_fd, (off_t)start,
				      (off_t)(s->file_bytes - start),
				      SYNC_FILE_RANGE_WRITE);
}

static void
log_full(struct store *s, bool is_full)
{
	if (is_full == atomic_load(&s->is_full))
		return;
	atomic_store(&s->is_full, is_full);
	if (is_full)
		log_warn("store: %s: storage full (%llu of %llu bytes in use): "
			 "refusing new data until space is freed",
			 s->dir,
			 (unsigned long long)atomic_load(&s->used_bytes),
			 (unsigned long long)s->limit_bytes);
	else
		log_info("store: %s: storage has room again", s->dir);
}

/* How apply_group puts the batches into the commit's transaction. */
enum apply_mode {
	/* Straight in: the group touches each page once. One failure
	 * leaves the transaction unusable, so it is aborted and the group
	 * applied again NESTED. */
	APPLY_FLAT,
	/* Each batch in a nested transaction of its own, so that a batch
	 * that fails (map full, write error) fails alone. LMDB copies each
	 * page a nested transaction touches out of its parent's dirty pages
	 * and merges it back at the nested commit: durable e2e with 16
	 * partitions (~8 batches a commit) ran 8 % slower than FLAT. */
	APPLY_NESTED,
};

/* Applies the batches of list in txn; returns how many applied, or
 * SIZE_MAX when one failed in APPLY_FLAT mode (txn must then be
 * aborted). Runs on: storage thread. */
static size_t
apply_group(struct store *s, MDB_txn *txn, struct store_batch *list,
	    enum apply_mode mode)
{
	int64_t room = INT64_MAX;
	bool is_room_known = false;
	int is_full = -1; /* what the batches said of it; -1: nothing */
	size_t ok = 0;

	for (struct store_batch *b = list; b != NULL; b = b->next) {
		b->status = 0;
		if (b->flags & STORE_BATCH_GROWS) {
			if (!is_room_known)
				room = grow_room(s);
			is_room_known = true;
			if (room <= 0) {
				b->status = -RMQ_ESTORAGE_FULL;
				is_full = 1;
				continue;
			}
		}
		if (mode == APPLY_FLAT) {
			/* Not logged: the NESTED pass says what failed. */
			if (apply_ops(s, txn, b) != 0)
				return SIZE_MAX;
		} else {
			b->status = apply_batch(s, txn, b);
		}
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
			is_full = 0;
		room -= (int64_t)b->len;
		ok++;
	}
	if (is_full >= 0)
		log_full(s, is_full == 1);
	return ok;
}

static void
fail_all(struct store_batch *list, int status)
{
	for (struct store_batch *b = list; b != NULL; b = b->next)
		if (b->status == 0)
			b->status = status;
}

static size_t
bucket_of(const double *bounds, size_t n, double v)
{
	size_t i = 0;

	while (i < n && v > bounds[i])
		i++;
	return i;
}

const double store_stat_batch_bounds[STORE_STAT_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096,
};
const double store_stat_seconds_bounds[STORE_STAT_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01,	0.025,	 0.05,	 0.1,	0.5,	2,
};

/* Adds one commit of batches batches taking ns to the statistics.
 * Runs on: storage thread. */
static void
record_commit(struct store *s, size_t batches, uint64_t ns)
{
	struct store_commit_stats *st = &s->stats;
	double secs = (double)ns / 1e9;

	pthread_mutex_lock(&s->lock);
	st->commits++;
	st->batches_sum += batches;
	st->seconds_sum += secs;
	st->batches[bucket_of(store_stat_batch_bounds, STORE_STAT_BUCKETS,
			      (double)batches)]++;
	st->seconds[bucket_of(store_stat_seconds_bounds, STORE_STAT_BUCKETS,
			      secs)]++;
	pthread_mutex_unlock(&s->lock);
}

void
store_journal_stats(struct store *s, struct store_journal_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (s->journal == NULL)
		return;
	out->is_on = 1;
	pthread_mutex_lock(&s->lock);
	out->journaled_seq = s->journaled_seq;
	out->unapplied_bytes = s->apply_bytes;
	pthread_mutex_unlock(&s->lock);
	out->applied_seq = atomic_load(&s->applied_seq);
}

void
store_commit_stats(struct store *s, struct store_commit_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}

/* One group commit: one write transaction for every batch of list.
 * Runs on: storage thread. */
static void
commit_group(struct store *s, struct store_batch *list)
{
	MDB_txn *txn;
	size_t applied;
	int rc;

	if (atomic_load(&s->is_panicked)) {
		fail_all(list, -RMQ_ESTORAGE);
		return;
	}
	s->last_commit_ns = clock_mono_ns();
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0) {
		fail_all(list, store_err(s, rc, "begin write transaction"));
		return;
	}
	applied = apply_group(s, txn, list, APPLY_FLAT);
	if (applied == SIZE_MAX) {
		mdb_txn_abort(txn);
		rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc != 0) {
			fail_all(list,
				 store_err(s, rc, "begin write transaction"));
			return;
		}
		applied = apply_group(s, txn, list, APPLY_NESTED);
	}
	if (applied == 0) {
		mdb_txn_abort(txn); /* nothing to commit: spare the sync */
		return;
	}
	rc = store_err(s, mdb_txn_commit(txn), "commit");
	if (rc == -RMQ_ESTORAGE_FULL)
		log_full(s, true);
	refresh_usage(s);
	prealloc_ahead(s);
	{
		uint64_t ns = clock_mono_ns() - s->last_commit_ns;
		uint64_t ms = ns / 1000000;
		size_t batches = 0;

		for (struct store_batch *b = list; b; b = b->next)
			batches++;
		record_commit(s, batches, ns);
		fail_all(list, rc);
		/* A slow disk shows here first: every confirm waits on it. */
		if (ms >= SLOW_COMMIT_MS)
			log_warn("store: %s: slow commit: %llu ms", s->dir,
				 (unsigned long long)ms);
	}
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
	       s->urgent_pending == 0 && s->pending_bytes < GROUP_MAX_BYTES) {
		struct timespec ts;

		if (clock_mono_ns() >= deadline)
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
	for (struct store_batch *b = list;; b = b->next) {
		if (b->flags & STORE_BATCH_URGENT)
			s->urgent_pending--;
		if (b == last)
			break;
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

/* Puts completed batches on the done list for store_reap. Called with
 * s->lock held. */
static void
done_add(struct store *s, struct store_batch *list)
{
	uint64_t n = 0;
	struct store_batch *last = list;

	for (struct store_batch *b = list; b != NULL; b = b->next) {
		last = b;
		n++;
	}
	*s->done_tail = list;
	s->done_tail = &last->next;
	s->completed += n;
	pthread_cond_broadcast(&s->done_cond);
}

/* Hands completed batches back to the loop thread.
 * Runs on: storage thread. */
static void
finish_group(struct store *s, struct store_batch *list)
{
	static const uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	done_add(s, list);
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

/* ------------------------------------------- the journal and its applier */

static int put_meta(struct store *s, MDB_txn *txn, const char *name,
		    uint64_t value, size_t n);

/*
 * With the journal, two threads share the work of store_thread. The
 * storage thread appends each group of pending batches to the journal,
 * syncs it as the sync mode says, and hands the batches back as
 * committed; it also queues them for the apply thread, which applies
 * them to LMDB with a normal durable commit, paced (CHECKPOINT_*), and
 * records in that commit the last journal record it holds. A journal
 * segment is released once such a commit covers it. The loop thread
 * reads what LMDB has not applied yet from the overlay (store_reap).
 */

/* A journal record's type: a batch's operations (store_codec.h). */
#define JOURNAL_BATCH 1u

/* LMDB is applied at most this often, or sooner once this many bytes
 * wait: the disk serves one flush at a time, and LMDB's two would delay
 * the journal's (journal-floor measured a journal sync at 137 us under
 * commits every 10 ms, 283 us under back-to-back ones). */
#define CHECKPOINT_NS	 (50ull * 1000000u)
#define CHECKPOINT_BYTES (8ull << 20)

/* True when bytes waiting for LMDB call for a commit before the pace
 * says, also to keep the journal well within its bound. */
static bool
is_apply_due(const struct store *s, uint64_t bytes)
{
	return bytes >= CHECKPOINT_BYTES || bytes >= s->journal_max_bytes / 4;
}

/* The journal's segment size: an eighth of its bound, at most a 32nd of
 * the filesystem (segments are written ahead in full, and spares kept
 * beside them), within [64 KiB, 32 MiB]. */
static uint64_t
journal_seg_bytes(uint64_t max, const char *dir)
{
	uint64_t seg = max / 8;
	struct statvfs sv;

	if (statvfs(dir, &sv) == 0 &&
	    seg > (uint64_t)sv.f_blocks * sv.f_frsize / 32)
		seg = (uint64_t)sv.f_blocks * sv.f_frsize / 32;
	if (seg > (32ull << 20))
		seg = 32ull << 20;
	if (seg < (64ull << 10))
		seg = 64ull << 10;
	return seg & ~4095ull;
}

/* Releases the segments the apply thread's durable commits cover.
 * Runs on: storage thread. */
static void
journal_release_applied(struct store *s)
{
	int rc = journal_release(s->journal, atomic_load(&s->applied_seq) + 1);

	if (rc < 0)
		log_warn("store: %s: releasing journal segments: %s", s->dir,
			 strerror(-rc));
}

/* Waits while the journal holds its bound of records LMDB has not
 * applied (back-pressure), asking the apply thread to hurry.
 * Runs on: storage thread. */
static void
journal_wait_room(struct store *s)
{
	while ((uint64_t)journal_segments(s->journal) * s->journal_seg_bytes >=
		       s->journal_max_bytes &&
	       !atomic_load(&s->is_panicked)) {
		struct timespec ts;
		uint64_t until = clock_mono_ns() + 10 * 1000000u, before;

		before = atomic_load(&s->applied_seq);
		pthread_mutex_lock(&s->lock);
		pthread_cond_signal(&s->apply_cond);
		ts.tv_sec = (time_t)(until / 1000000000u);
		ts.tv_nsec = (long)(until % 1000000000u);
		if (atomic_load(&s->applied_seq) == before)
			(void)pthread_cond_timedwait(&s->work_cond, &s->lock,
						     &ts);
		pthread_mutex_unlock(&s->lock);
		journal_release_applied(s);
		if (atomic_load(&s->applied_seq) >= s->journaled_seq)
			break; /* nothing left to apply: segments are in use */
	}
}

/* Syncs the journal; a failure leaves it unusable, and the store with
 * it. Runs on: storage thread. */
static int
journal_sync_now(struct store *s)
{
	int rc = journal_sync(s->journal);

	s->journal_sync_ns = clock_mono_ns();
	if (rc != 0 && !atomic_exchange(&s->is_panicked, true))
		log_error("store: %s: journal sync failed: %s: every later "
			  "write fails until restart",
			  s->dir, strerror(-rc));
	return rc;
}

static void checkpoint_wait(struct store *s);

/* Appends the batches of list to the journal, makes them as durable as
 * the sync mode says, and queues the ones that made it for the apply
 * thread. is_inline: the loop thread writes a group that fits in the
 * segment being written, and never syncs (store_flush checked that no
 * sync is due). Runs on: the journal's owner. */
static void
journal_group(struct store *s, struct store_batch *list, bool is_inline)
{
	uint64_t start = clock_mono_ns(), bytes = 0, last = 0, ns, grown = 0;
	int64_t room = INT64_MAX;
	bool is_room_known = false, is_urgent = false, is_wake;
	bool is_caught_up = is_inline; /* the loop never waits */
	int is_full = -1, rc;
	size_t n = 0;

	if (atomic_load(&s->is_panicked)) {
		fail_all(list, -RMQ_ESTORAGE);
		return;
	}
	if (!is_inline) {
		journal_release_applied(s);
		journal_wait_room(s);
	}
	for (struct store_batch *b = list; b != NULL; b = b->next) {
		b->status = 0;
		b->seq = 0;
		n++;
		if (b->flags & STORE_BATCH_GROWS) {
			if (!is_room_known) {
				uint64_t behind;

				pthread_mutex_lock(&s->lock);
				behind = s->apply_bytes;
				pthread_mutex_unlock(&s->lock);
				/* What LMDB has still to apply will take
				 * room: about twice its bytes in pages. */
				room = grow_room(s) - 2 * (int64_t)behind;
				is_room_known = true;
			}
			/* Much of the room counted gone may be LMDB's
			 * backlog, which a checkpoint turns into its real
			 * size: wait for one (once a group) before
			 * refusing, so that a refusal means full. */
			if ((room <= 0 || (int64_t)b->len > room) &&
			    !is_caught_up) {
				checkpoint_wait(s);
				pthread_mutex_lock(&s->lock);
				room = grow_room(s) -
				       2 * (int64_t)(s->apply_bytes + grown);
				pthread_mutex_unlock(&s->lock);
				is_caught_up = true;
			}
			/* Once confirmed, LMDB must take it: one larger
			 * than the room left is refused too. */
			if (room <= 0 || (int64_t)b->len > room) {
				b->status = -RMQ_ESTORAGE_FULL;
				is_full = 1;
				continue;
			}
		}
		rc = journal_append(s->journal, 0, JOURNAL_BATCH, b->buf,
				    (uint32_t)b->len, &b->seq);
		if (rc != 0) {
			b->seq = 0;
			b->status = store_err(s, -rc, "journal append");
			if (b->status == -RMQ_ESTORAGE_FULL)
				is_full = 1;
			continue;
		}
		if (b->flags & STORE_BATCH_GROWS) {
			is_full = is_full == 1 ? 1 : 0;
			room -= 2 * (int64_t)b->len;
			grown += b->len;
		}
		bytes += b->len;
		last = b->seq;
		is_urgent |= (b->flags & STORE_BATCH_URGENT) != 0;
	}
	if (is_full >= 0)
		log_full(s, is_full == 1);
	if (last == 0)
		return;
	/* An urgent batch (one that extends a partition's offset
	 * reservation) is synced at once in every syncing mode, so that no
	 * offset is handed out twice after a power cut. */
	if (!is_inline && (s->sync == STORE_SYNC_ALWAYS ||
			   (s->sync == STORE_SYNC_INTERVAL &&
			    (is_urgent || start - s->journal_sync_ns >=
						  s->sync_interval_ns)))) {
		rc = journal_sync_now(s);
	} else {
		rc = journal_write(s->journal);
		if (rc != 0 && !atomic_exchange(&s->is_panicked, true))
			log_error("store: %s: journal write failed: %s: every "
				  "later write fails until restart",
				  s->dir, strerror(-rc));
	}
	if (rc != 0) {
		for (struct store_batch *b = list; b != NULL; b = b->next) {
			if (b->seq == 0)
				continue;
			b->seq = 0;
			b->status = -RMQ_ESTORAGE;
		}
		return;
	}
	pthread_mutex_lock(&s->lock);
	/* The apply thread sleeps untimed on an empty queue, and otherwise
	 * until its pace says: it needs waking to start that clock, or when
	 * the bytes call for a commit sooner. */
	is_wake = s->apply_head == NULL ||
		  is_apply_due(s, s->apply_bytes + bytes);
	for (struct store_batch *b = list; b != NULL; b = b->next) {
		if (b->seq == 0)
			continue;
		b->apply_next = NULL;
		*s->apply_tail = b;
		s->apply_tail = &b->apply_next;
	}
	s->apply_bytes += bytes;
	s->journaled_seq = last;
	if (is_wake)
		pthread_cond_signal(&s->apply_cond);
	pthread_mutex_unlock(&s->lock);
	ns = clock_mono_ns() - start;
	record_commit(s, n, ns);
	if (ns / 1000000 >= SLOW_COMMIT_MS)
		log_warn("store: %s: slow journal sync: %llu ms", s->dir,
			 (unsigned long long)(ns / 1000000));
}

/* Zeros written ahead into a spare segment per step: while idle, and
 * after each group while busy (a step is a few milliseconds' writing at
 * most, and a group's confirms do not wait for it). */
#define PREPARE_IDLE (1ull << 20)
#define PREPARE_BUSY (256ull << 10)

/* One step of making a spare segment; true while more remains.
 * Runs on: storage thread. */
static bool
journal_prepare_step(struct store *s, uint64_t bytes)
{
	int rc = journal_prepare(s->journal, bytes);

	if (rc < 0 && rc != -ENOSPC && rc != -EDQUOT)
		log_warn("store: %s: making a spare journal segment: %s",
			 s->dir, strerror(-rc));
	return rc == 1;
}

/* Takes the journal for the storage thread (is_journal_busy), with the
 * next group of pending batches, or with none: the store is closing, or
 * (sync=interval) the journal is due a sync. While idle it makes a spare
 * segment a step at a time, owning the journal for each step. Runs on:
 * storage thread. */
static struct store_batch *
journal_take(struct store *s, bool *is_stopping)
{
	struct store_batch *list;
	bool is_preparing = true;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint64_t due = s->journal_sync_ns + s->sync_interval_ns;
		struct timespec ts;

		if (s->is_journal_busy) { /* the loop is writing */
			s->is_journal_wanted = true;
			pthread_cond_wait(&s->work_cond, &s->lock);
			continue;
		}
		s->is_journal_wanted = false;
		if (s->pending != NULL || s->is_stopping)
			break;
		if (is_preparing) {
			/* Idle: a spare segment made now is one the
			 * append that fills a segment need not make. */
			s->is_journal_busy = true;
			pthread_mutex_unlock(&s->lock);
			is_preparing = journal_prepare_step(s, PREPARE_IDLE);
			pthread_mutex_lock(&s->lock);
			s->is_journal_busy = false;
			continue;
		}
		if (!s->is_journal_dirty || s->sync != STORE_SYNC_INTERVAL) {
			pthread_cond_wait(&s->work_cond, &s->lock);
			continue;
		}
		if (clock_mono_ns() >= due)
			break;
		ts.tv_sec = (time_t)(due / 1000000000u);
		ts.tv_nsec = (long)(due % 1000000000u);
		s->is_sync_timed = true;
		(void)pthread_cond_timedwait(&s->work_cond, &s->lock, &ts);
		s->is_sync_timed = false;
	}
	list = detach_group(s);
	*is_stopping = s->is_stopping;
	s->is_journal_busy = true;
	pthread_mutex_unlock(&s->lock);
	return list;
}

/* Gives the journal back (the owner, storage or loop thread, calls it
 * with s->lock held), noting whether it holds records not yet synced;
 * true when the storage thread should be woken: it waits for the
 * journal, or for records to sync on the interval. */
static bool
journal_give_back(struct store *s)
{
	s->is_journal_busy = false;
	s->is_journal_dirty = journal_synced_seq(s->journal) + 1 !=
			      journal_next_seq(s->journal);
	return s->is_journal_wanted ||
	       (s->is_journal_dirty && s->sync == STORE_SYNC_INTERVAL &&
		!s->is_sync_timed);
}

/* Runs on: storage thread (journal on). */
static void *
journal_thread(void *arg)
{
	struct store *s = arg;

	for (;;) {
		bool is_stopping;
		struct store_batch *list = journal_take(s, &is_stopping);

		if (list != NULL) {
			journal_group(s, list, false);
			finish_group(s, list);
			(void)journal_prepare_step(s, PREPARE_BUSY);
		}
		if (s->sync == STORE_SYNC_INTERVAL &&
		    clock_mono_ns() - s->journal_sync_ns >=
			    s->sync_interval_ns &&
		    !atomic_load(&s->is_panicked))
			(void)journal_sync_now(s);
		if (list == NULL && is_stopping)
			break;
		pthread_mutex_lock(&s->lock);
		(void)journal_give_back(s);
		pthread_mutex_unlock(&s->lock);
	}
	/* A clean stop leaves everything durable, whatever the mode. */
	if (!atomic_load(&s->is_panicked))
		(void)journal_sync_now(s);
	return NULL;
}

/* Applies list to LMDB in one durable commit recording its last journal
 * record. A confirmed batch LMDB refuses stops every write: the journal
 * keeps it for the next start. Runs on: apply thread. */
static int
checkpoint(struct store *s, struct store_batch *list)
{
	uint64_t last = 0;
	MDB_txn *txn;
	int rc;

	for (struct store_batch *b = list; b != NULL; b = b->apply_next)
		last = b->seq;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == 0) {
		for (struct store_batch *b = list; rc == 0 && b != NULL;
		     b = b->apply_next)
			rc = apply_ops(s, txn, b);
		if (rc == 0)
			rc = put_meta(s, txn, "journal", last, 8);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		(void)store_err(s, rc, "apply the journal");
		if (!atomic_exchange(&s->is_panicked, true))
			log_error(
				"store: %s: LMDB could not apply journal "
				"records up to %llu; they stay in the journal "
				"for the next start; every later write fails "
				"until restart",
				s->dir, (unsigned long long)last);
		return -RMQ_ESTORAGE;
	}
	refresh_usage(s);
	prealloc_ahead(s);
	atomic_store(&s->applied_seq, last);
	return 0;
}

/* Runs on: apply thread. */
static void *
apply_thread(void *arg)
{
	static const uint64_t one = 1;
	struct store *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct store_batch *list, *last;
		uint64_t bytes, due = s->checkpoint_ns + CHECKPOINT_NS;
		struct timespec ts;

		if (s->apply_head == NULL || atomic_load(&s->is_panicked)) {
			if (s->is_apply_stopping)
				break;
			pthread_cond_wait(&s->apply_cond, &s->lock);
			continue;
		}
		if (!s->is_apply_stopping && s->checkpoint_waiters == 0 &&
		    !is_apply_due(s, s->apply_bytes) && clock_mono_ns() < due) {
			ts.tv_sec = (time_t)(due / 1000000000u);
			ts.tv_nsec = (long)(due % 1000000000u);
			(void)pthread_cond_timedwait(&s->apply_cond, &s->lock,
						     &ts);
			continue;
		}
		list = last = s->apply_head;
		bytes = list->len;
		while (last->apply_next != NULL &&
		       bytes + last->apply_next->len <= GROUP_MAX_BYTES) {
			last = last->apply_next;
			bytes += last->len;
		}
		s->apply_head = last->apply_next;
		if (s->apply_head == NULL)
			s->apply_tail = &s->apply_head;
		last->apply_next = NULL;
		pthread_mutex_unlock(&s->lock);
		s->checkpoint_ns = clock_mono_ns();
		(void)checkpoint(s, list);
		pthread_mutex_lock(&s->lock);
		s->apply_bytes -= bytes;
		/* The storage thread may wait for room, a backup or a
		 * drain for this commit. */
		pthread_cond_broadcast(&s->work_cond);
		pthread_cond_broadcast(&s->done_cond);
		pthread_mutex_unlock(&s->lock);
		/* The loop frees what it held for reads. */
		while (write(s->event_fd, &one, sizeof(one)) < 0 &&
		       errno == EINTR)
			;
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	if (s->stat_txn != NULL)
		mdb_txn_abort(s->stat_txn);
	s->stat_txn = NULL;
	return NULL;
}

/* Blocks until LMDB holds every batch journaled so far (none when the
 * journal is off or LMDB cannot apply). Any thread but the apply thread
 * (the storage thread between groups' writes). */
static void
checkpoint_wait(struct store *s)
{
	uint64_t target;

	if (s->journal == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	target = s->journaled_seq;
	s->checkpoint_waiters++;
	pthread_cond_signal(&s->apply_cond);
	while (atomic_load(&s->applied_seq) < target &&
	       !atomic_load(&s->is_panicked))
		pthread_cond_wait(&s->done_cond, &s->lock);
	s->checkpoint_waiters--;
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------- submit, reap, drain */

void
store_submit(struct store *s, struct store_batch *b, store_done_fn done,
	     void *ctx)
{
	/* With the journal and no sync to wait for, the loop writes the
	 * batch itself when its pass ends (store_flush): no wake-up. */
	bool is_deferred = s->journal != NULL && s->sync != STORE_SYNC_ALWAYS &&
			   !(b->flags & STORE_BATCH_URGENT);
	bool is_wake;

	b->done = done;
	b->ctx = ctx;
	b->next = NULL;
	b->status = 0;
	s->is_deferred |= is_deferred;
	pthread_mutex_lock(&s->lock);
	/* Wake the thread when it may be idle, or waiting out the interval
	 * with a full group; a busy thread rechecks on its own. */
	is_wake = s->pending == NULL ||
		  (s->pending_bytes < GROUP_MAX_BYTES &&
		   s->pending_bytes + b->len >= GROUP_MAX_BYTES);
	if (b->flags & STORE_BATCH_URGENT) {
		s->urgent_pending++;
		is_wake = true; /* it may be waiting out the interval */
	}
	*s->pending_tail = b;
	s->pending_tail = &b->next;
	s->pending_bytes += b->len;
	s->submitted++;
	if (is_wake && !is_deferred)
		pthread_cond_signal(&s->work_cond);
	pthread_mutex_unlock(&s->lock);
}

/* True when the loop may write the pending batches to the journal
 * itself: the journal is free, no batch needs a sync (none urgent, no
 * interval sync due) and all fit in the segment being written, so that
 * the loop makes no file and waits for no disk. Called with s->lock
 * held. Runs on: loop thread. */
static bool
is_inline_ok(const struct store *s)
{
	uint64_t room, need = 0, grows = 0;

	if (s->is_journal_busy || s->is_stopping || s->urgent_pending > 0 ||
	    atomic_load(&s->is_panicked))
		return false;
	if (s->sync == STORE_SYNC_INTERVAL &&
	    clock_mono_ns() - s->journal_sync_ns >= s->sync_interval_ns)
		return false;
	room = journal_segment_room(s->journal);
	for (const struct store_batch *b = s->pending; b != NULL; b = b->next) {
		need += journal_record_bytes((uint32_t)b->len);
		if (need > room)
			return false;
		if (b->flags & STORE_BATCH_GROWS)
			grows += b->len;
	}
	/* Near full, the storage thread decides: it may wait for LMDB to
	 * catch up before it refuses, which the loop may not. */
	if (grows > 0) {
		int err;

		if (room_now(s, &err) - 2 * (int64_t)(s->apply_bytes + grows) <=
		    0)
			return false;
	}
	return true;
}

void
store_flush(struct store *s)
{
	while (s->is_deferred) {
		struct store_batch *list = NULL;
		bool is_wake = false;

		s->is_deferred = false;
		pthread_mutex_lock(&s->lock);
		if (s->pending != NULL && is_inline_ok(s)) {
			list = s->pending;
			s->pending = NULL;
			s->pending_tail = &s->pending;
			s->pending_bytes = 0;
			s->is_journal_busy = true;
		} else {
			is_wake = s->pending != NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (list == NULL) {
			if (is_wake)
				pthread_cond_signal(&s->work_cond);
			return;
		}
		journal_group(s, list, true);
		pthread_mutex_lock(&s->lock);
		done_add(s, list);
		is_wake = journal_give_back(s);
		pthread_mutex_unlock(&s->lock);
		if (is_wake)
			pthread_cond_signal(&s->work_cond);
		/* Completions may submit more: the next round takes them. */
		(void)store_reap(s);
	}
}

bool
store_has_deferred(const struct store *s)
{
	return s->is_deferred;
}

/* Keeps batch b, confirmed but not yet in LMDB, for reads; false when
 * it cannot (out of memory), after waiting until LMDB holds it.
 * Runs on: loop thread. */
static bool
held_add(struct store *s, struct store_batch *b)
{
	if (overlay_add(s->overlay, b->seq, b) != 0) {
		log_warn("store: %s: out of memory indexing a batch; waiting "
			 "for LMDB to apply it",
			 s->dir);
		checkpoint_wait(s);
		store_read_release(s);
		return false;
	}
	b->next = NULL;
	*s->held_tail = b;
	s->held_tail = &b->next;
	return true;
}

/* Frees the held batches LMDB holds up to applied, whose commit every
 * read from now on sees. Runs on: loop thread. */
static void
held_drop(struct store *s, uint64_t applied)
{
	while (s->held != NULL && s->held->seq <= applied) {
		struct store_batch *b = s->held;

		s->held = b->next;
		overlay_drop(s->overlay, b->seq, b);
		store_batch_free(b);
	}
	if (s->held == NULL)
		s->held_tail = &s->held;
}

int
store_reap(struct store *s)
{
	struct store_batch *list, *next;
	uint64_t applied;
	bool is_held;
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
	/* Read before the read transaction ends: every later read then
	 * sees LMDB's commits up to it. */
	applied = atomic_load(&s->applied_seq);
	/* A read transaction begun earlier in this loop pass (a handler's
	 * reads) does not see what these batches committed, yet their
	 * completions make it visible, and dispatch may read it before the
	 * pass ends: the next read begins a fresh one. */
	if (list != NULL || (s->held != NULL && s->held->seq <= applied))
		store_read_release(s);
	held_drop(s, applied);
	for (; list != NULL; list = next) {
		next = list->next;
		if (list == s->backup_done)
			s->backup_done = NULL; /* freed below */
		/* Confirmed by the journal alone: reads find it in the
		 * overlay until LMDB has it, from before its completion
		 * runs (dispatch may read it there). */
		is_held = list->seq > applied && list->status == 0 &&
			  held_add(s, list);
		if (list->done != NULL)
			list->done(list->ctx, list->status);
		if (!is_held)
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

	s->is_deferred = false; /* the storage thread takes them */
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

void
store_checkpoint(struct store *s)
{
	if (s->journal == NULL)
		return;
	checkpoint_wait(s);
	store_read_release(s);
	held_drop(s, atomic_load(&s->applied_seq));
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
		s->urgent_pending = 0;
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

/* Bytes of LMDB's lock file given blocks before LMDB opens it: more than
 * LMDB's default size (126 reader slots of 64 bytes and a header); LMDB
 * keeps a larger file as it is, with more reader slots. */
#define LOCK_FILE_BYTES (16u << 10)

/* LMDB maps its lock file, lock.mdb, and initialises it through the map:
 * on a full filesystem, the first write to a page the file has no block
 * for raises SIGBUS. Giving the file its blocks first turns that into a
 * clean error. @return 0, -RMQ_ESTORAGE_FULL or -errno (logged). */
static int
lock_file_alloc(const char *dir)
{
	char path[4096];
	int n, fd;

	n = snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		n = -errno;
		log_error("store: cannot open %s: %s", path, strerror(-n));
		return n;
	}
	n = posix_fallocate(fd, 0, LOCK_FILE_BYTES);
	close(fd);
	if (n == ENOSPC || n == EDQUOT) {
		log_error("store: %s: storage full: no room for LMDB's lock "
			  "file",
			  dir);
		return -RMQ_ESTORAGE_FULL;
	}
	if (n != 0 && n != EOPNOTSUPP && n != EINVAL) {
		log_error("store: cannot allocate %s: %s", path, strerror(n));
		return -n;
	}
	return 0;
}

static int
env_open(struct store *s, const struct store_opts *o)
{
	unsigned flags = MDB_NOTLS;
	uint64_t map_want = o->max_storage_bytes;
	MDB_envinfo info;
	MDB_stat st;
	int rc, dead = 0;

	if (o->sync == STORE_SYNC_NEVER)
		flags |= MDB_NOSYNC;
	/* With the journal, a batch is confirmed before LMDB applies it,
	 * and LMDB must then take it: the map has room past the storage
	 * limit (which still refuses new data) for what the journal may
	 * hold, twice over for the pages' overhead. */
	if (o->journal)
		map_want += 2 * s->journal_max_bytes;
	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		s->env = NULL;
		return store_err(s, rc, "create environment");
	}
	/* The "dedup" key rule is part of the format: it needs LMDB's
	 * default key size, whatever this LMDB was built with. */
	if (mdb_env_get_maxkeysize(s->env) < (int)STORE_DEDUP_KEY_MAX) {
		log_error("store: %s: LMDB keys are limited to %d bytes; "
			  "ringmq needs %u",
			  s->dir, mdb_env_get_maxkeysize(s->env),
			  STORE_DEDUP_KEY_MAX);
		return -RMQ_ESTORAGE;
	}
	rc = mdb_env_set_mapsize(s->env, map_want);
	if (rc == 0) /* one named database per enum store_db */
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
	s->limit_bytes = s->map_bytes < o->max_storage_bytes
				 ? s->map_bytes
				 : o->max_storage_bytes;
	/* Of the limit: a limit far below the data must not keep a
	 * headroom larger than itself, or nothing would ever fit. */
	s->headroom_bytes = s->limit_bytes / 16;
	if (s->headroom_bytes < HEADROOM_MIN_BYTES)
		s->headroom_bytes = HEADROOM_MIN_BYTES;
	if (s->headroom_bytes > HEADROOM_MAX_BYTES)
		s->headroom_bytes = HEADROOM_MAX_BYTES;
	if (s->map_bytes > map_want) {
		uint64_t data_bytes = s->map_bytes;

		/* LMDB made the map as large as the data, leaving no page
		 * for an ack or a delete to write. The map gets a headroom
		 * beyond the data so that consumers can drain it, while
		 * growth stays refused until it is under the limit asked. */
		rc = mdb_env_set_mapsize(s->env,
					 data_bytes + s->headroom_bytes);
		if (rc == 0)
			rc = mdb_env_info(s->env, &info);
		if (rc != 0)
			return store_err(s, rc, "grow the map");
		s->map_bytes = info.me_mapsize;
		log_warn(
			"store: %s: the data file's pages (%llu bytes) reach past "
			"--max-storage-bytes %llu: the map is %llu bytes, "
			"and publishes are refused with STORAGE_FULL while "
			"the data in use is over the limit",
			s->dir, (unsigned long long)data_bytes,
			(unsigned long long)o->max_storage_bytes,
			(unsigned long long)s->map_bytes);
	}
	return 0;
}

/* Checks the format record of a non-empty environment: 0 (*is_upgrade
 * set when it is an older version to upgrade) or -RMQ_EFORMAT (logged). */
static int
check_format(struct store *s, MDB_txn *txn, bool *is_upgrade)
{
	static const MDB_val key = { 6, "format" };
	MDB_val k = key, v;
	MDB_dbi meta;
	uint64_t version;
	int rc;

	rc = mdb_dbi_open(txn, store_db_names[DB_META], 0, &meta);
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
	if (store_decode_uint(k.mv_data, k.mv_size, v.mv_data, v.mv_size, 4,
			      &version) < 0) {
		log_error("store: %s: the format record is unreadable "
			  "(length or checksum)",
			  s->dir);
		return -RMQ_EFORMAT;
	}
	if (version == STORE_FORMAT_VERSION)
		return 0;
	if (version == 5) {
		/* 6 adds "users" and nothing else: open_dbs creates it. */
		*is_upgrade = true;
		return 0;
	}
	log_error("store: %s has storage format version %u; this broker reads "
		  "only versions 5 (upgraded in place) and %u",
		  s->dir, (unsigned)version, STORE_FORMAT_VERSION);
	return -RMQ_EFORMAT;
}

/* Puts a meta record holding one big-endian integer of n bytes; returns
 * an LMDB code. */
static int
put_meta(struct store *s, MDB_txn *txn, const char *name, uint64_t value,
	 size_t n)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint8_t buf[12];

	v.mv_size = store_encode_uint(buf, k.mv_data, k.mv_size, value, n);
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
	bool is_upgrade = false;
	int rc;

	rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (rc == 0)
		rc = mdb_stat(txn, main_dbi, &st);
	if (rc != 0)
		return store_err(s, rc, "read main database");
	if (st.ms_entries > 0) {
		rc = check_format(s, txn, &is_upgrade);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE,
				  &s->dbi[i]);
		if (rc != 0)
			return store_err(s, rc, "open databases");
	}
	if (st.ms_entries > 0 && !is_upgrade)
		return 0;
	rc = put_meta(s, txn, "format", STORE_FORMAT_VERSION, 4);
	if (rc != 0)
		return store_err(s, rc, "write format version");
	log_info("store: %s: %s, format version %u", s->dir,
		 is_upgrade ? "upgraded in place" : "new data directory",
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
	rc = store_decode_uint(k.mv_data, k.mv_size, v.mv_data, v.mv_size, 8,
			       epoch);
	if (rc < 0)
		log_error("store: %s: the boot epoch record failed its "
			  "checksum",
			  s->dir);
	return rc;
}

/* Reads the broker's secret into s->secret, or makes one (random) on a
 * data directory that has none. */
static int
get_secret(struct store *s, MDB_txn *txn)
{
	static const MDB_val key = { 6, "secret" };
	uint8_t buf[4 + STORE_SECRET_LEN];
	MDB_val k = key, v;
	int rc;

	rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
	if (rc == 0) {
		if (v.mv_size != sizeof(buf) ||
		    !store_record_crc_ok(k.mv_data, k.mv_size, v.mv_data,
					 v.mv_size)) {
			log_error("store: %s: the secret record failed its "
				  "checksum",
				  s->dir);
			return -RMQ_ECORRUPT;
		}
		memcpy(s->secret, (const uint8_t *)v.mv_data + 4,
		       STORE_SECRET_LEN);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return store_err(s, rc, "read secret");
	if (getrandom(s->secret, STORE_SECRET_LEN, 0) !=
	    (ssize_t)STORE_SECRET_LEN)
		return -errno;
	memcpy(buf + 4, s->secret, STORE_SECRET_LEN);
	store_put_be(buf,
		     store_record_crc(k.mv_data, k.mv_size, buf, sizeof(buf)),
		     4);
	v.mv_data = buf;
	v.mv_size = sizeof(buf);
	rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
	explicit_bzero(buf, sizeof(buf));
	return store_err(s, rc, "write secret");
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
	if (rc == 0)
		rc = get_secret(s, txn);
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
	if (rc == 0) {
		rc = pthread_cond_init(&s->apply_cond, &attr);
		if (rc != 0)
			(void)pthread_cond_destroy(&s->work_cond);
	}
	(void)pthread_condattr_destroy(&attr); /* cannot fail on Linux */
	if (rc != 0)
		return -rc;
	rc = pthread_cond_init(&s->done_cond, NULL);
	if (rc != 0) {
		(void)pthread_cond_destroy(&s->apply_cond);
		(void)pthread_cond_destroy(&s->work_cond);
		return -rc;
	}
	rc = pthread_mutex_init(&s->lock, NULL);
	if (rc != 0) {
		(void)pthread_cond_destroy(&s->done_cond);
		(void)pthread_cond_destroy(&s->apply_cond);
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
	rc = pthread_create(&s->thread, NULL,
			    s->journal != NULL ? journal_thread : store_thread,
			    s);
	if (rc == 0)
		s->is_thread_started = true;
	if (rc == 0 && s->journal != NULL) {
		rc = pthread_create(&s->apply_thread, NULL, apply_thread, s);
		if (rc == 0)
			s->is_apply_started = true;
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL); /* a valid set */
	return -rc;
}

/* Applies one journal record at start-up. Runs on: loop thread, before
 * the storage threads start. */
struct replay {
	struct store *s;
	MDB_txn *txn;
	uint64_t last;	/* the last record applied */
	uint64_t bytes; /* applied in txn */
	uint64_t count;
	uint64_t total_bytes;
};

static int
replay_commit(struct replay *r)
{
	int rc = put_meta(r->s, r->txn, "journal", r->last, 8);

	if (rc == 0)
		rc = mdb_txn_commit(r->txn);
	else
		mdb_txn_abort(r->txn);
	r->txn = NULL;
	r->bytes = 0;
	return store_err(r->s, rc, "commit the replayed journal");
}

static int
replay_record(void *ctx, const struct journal_record *rec)
{
	struct replay *r = ctx;
	struct store_batch b = { .buf = (uint8_t *)rec->body,
				 .len = rec->body_len };
	int rc;

	if (rec->type != JOURNAL_BATCH ||
	    !store_ops_valid(rec->body, rec->body_len)) {
		log_error("store: %s: journal record %llu is not a batch this "
			  "broker can apply (type %u)",
			  r->s->dir, (unsigned long long)rec->seq,
			  (unsigned)rec->type);
		return -RMQ_ECORRUPT;
	}
	if (r->txn == NULL) {
		rc = mdb_txn_begin(r->s->env, NULL, 0, &r->txn);
		if (rc != 0) {
			r->txn = NULL;
			return store_err(r->s, rc, "begin journal replay");
		}
	}
	rc = apply_ops(r->s, r->txn, &b);
	if (rc != 0) {
		mdb_txn_abort(r->txn);
		r->txn = NULL;
		return store_err(r->s, rc, "replay the journal");
	}
	r->last = rec->seq;
	r->bytes += rec->body_len;
	r->total_bytes += rec->body_len;
	r->count++;
	/* Stay well inside LMDB's dirty-page limit. */
	return r->bytes >= GROUP_MAX_BYTES ? replay_commit(r) : 0;
}

/* Opens the journal in DIR/journal (when opts.journal, or when one is
 * there) and applies to LMDB every record it holds after the one LMDB's
 * last commit recorded. Keeps it open in s->journal when opts.journal. */
static int
journal_recover(struct store *s, const struct store_opts *o)
{
	static const MDB_val key = { 7, "journal" };
	struct replay r = { .s = s };
	char path[PATH_MAX];
	MDB_val k = key, v;
	struct journal *j;
	uint64_t applied = 0, start_ns = clock_mono_ns();
	MDB_txn *txn;
	struct stat st;
	int rc;

	if (snprintf(path, sizeof(path), "%s/journal", o->dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	if (!o->journal && stat(path, &st) != 0)
		return 0;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return store_err(s, rc, "begin journal read");
	rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
	if (rc == 0 && store_decode_uint(k.mv_data, k.mv_size, v.mv_data,
					 v.mv_size, 8, &applied) < 0)
		rc = -RMQ_ECORRUPT;
	mdb_txn_abort(txn);
	if (rc == -RMQ_ECORRUPT) {
		log_error("store: %s: the journal position record failed its "
			  "checksum",
			  s->dir);
		return rc;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(s, rc, "read the journal position");
	s->journal_seg_bytes = journal_seg_bytes(s->journal_max_bytes, o->dir);
	rc = journal_open(path, s->journal_seg_bytes, applied + 1, &j);
	if (rc != 0) {
		log_error("store: %s: cannot open the journal: %s", s->dir,
			  strerror(-rc));
		return rc == -EIO ? -RMQ_ECORRUPT : rc;
	}
	if (journal_first_seq(j) > applied + 1) {
		log_error("store: %s: the journal begins at record %llu but "
			  "LMDB holds only up to %llu: records are missing",
			  s->dir, (unsigned long long)journal_first_seq(j),
			  (unsigned long long)applied);
		journal_close(j);
		return -RMQ_ECORRUPT;
	}
	r.last = applied;
	rc = journal_replay(j, applied + 1, replay_record, &r);
	if (rc == 0 && r.txn != NULL)
		rc = replay_commit(&r);
	else if (r.txn != NULL)
		mdb_txn_abort(r.txn);
	if (rc == 0 && r.count > 0 && s->sync == STORE_SYNC_NEVER)
		rc = store_err(s, mdb_env_sync(s->env, 1), "sync the replay");
	if (rc != 0) {
		journal_close(j);
		return rc;
	}
	if (r.count > 0)
		log_info("store: %s: replayed %llu journal records (%llu to "
			 "%llu, %llu bytes) in %llu ms",
			 s->dir, (unsigned long long)r.count,
			 (unsigned long long)applied + 1,
			 (unsigned long long)r.last,
			 (unsigned long long)r.total_bytes,
			 (unsigned long long)((clock_mono_ns() - start_ns) /
					      1000000));
	(void)journal_release(j, r.last + 1);
	atomic_store(&s->applied_seq, r.last);
	s->journaled_seq = r.last;
	if (!o->journal) {
		journal_close(j);
		return 0;
	}
	s->journal = j;
	s->overlay = overlay_new();
	return s->overlay != NULL ? 0 : -ENOMEM;
}

/* Also releases a partly built store (the failure path of store_open),
 * in reverse order of building. */
static void backup_join(struct store *s);

void
store_close(struct store *s)
{
	bool is_backup_left = false;

	if (s == NULL)
		return;
	/* A stop does not wait for a long backup (the shutdown timeout
	 * holds): the copy is left unfinished, as data.mdb.partial. */
	if (s->is_backup_running && !atomic_load(&s->is_backup_finished)) {
		log_warn("store: backup to %s abandoned at stop: only "
			 "data.mdb.partial is there",
			 s->backup_path);
		is_backup_left = true;
	} else if (s->is_backup_running) {
		backup_join(s);
	}
	if (s->is_thread_started) {
		/* The thread commits everything pending before it exits. */
		pthread_mutex_lock(&s->lock);
		s->is_stopping = true;
		pthread_cond_signal(&s->work_cond);
		pthread_mutex_unlock(&s->lock);
		(void)pthread_join(s->thread, NULL); /* our own thread */
	}
	if (s->is_apply_started) {
		/* It applies everything journaled before it exits. */
		pthread_mutex_lock(&s->lock);
		s->is_apply_stopping = true;
		pthread_cond_signal(&s->apply_cond);
		pthread_mutex_unlock(&s->lock);
		(void)pthread_join(s->apply_thread, NULL);
	}
	if (s->is_thread_started)
		reap_at_close(s);
	held_drop(s, UINT64_MAX); /* in LMDB, or in the journal for replay */
	overlay_free(s->overlay);
	journal_close(s->journal);
	if (is_backup_left) {
		/* The backup thread still reads the environment and hands its
		 * end to this store: both stay until the process exits. */
		if (s->is_env_open && s->sync == STORE_SYNC_NEVER &&
		    mdb_env_sync(s->env, 1) != 0)
			log_error("store: %s: sync at close failed", s->dir);
		return;
	}
	if (s->event_fd >= 0)
		(void)close(s->event_fd);
	if (s->is_sync_init) {
		(void)pthread_mutex_destroy(&s->lock);
		(void)pthread_cond_destroy(&s->apply_cond);
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

/* Finds LMDB's data file and its size (which may hold zeros
 * preallocated by an earlier run). */
static int
data_file_open(struct store *s)
{
	mdb_filehandle_t fd;
	struct stat st;
	int rc = mdb_env_get_fd(s->env, &fd);

	if (rc != 0)
		return store_err(s, rc, "get data file");
	if (fstat(fd, &st) != 0)
		return -errno;
	s->data_fd = fd;
	s->file_bytes = (uint64_t)st.st_size;
	return 0;
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
	s->data_fd = -1;
	s->sync = o->sync;
	s->sync_interval_ns = (uint64_t)o->sync_interval_ms * 1000000u;
	s->pending_tail = &s->pending;
	s->done_tail = &s->done_list;
	s->apply_tail = &s->apply_head;
	s->held_tail = &s->held;
	s->journal_max_bytes = o->journal_max_bytes ? o->journal_max_bytes
						    : STORE_JOURNAL_MAX_BYTES;

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
	rc = lock_file_alloc(o->dir);
	if (rc < 0)
		goto fail;
	rc = env_open(s, o);
	if (rc < 0)
		goto fail;
	rc = init_meta(s);
	if (rc < 0)
		goto fail;
	rc = journal_recover(s, o);
	if (rc < 0)
		goto fail;
	s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->event_fd < 0) {
		rc = -errno;
		goto fail;
	}
	refresh_usage(s);
	rc = data_file_open(s);
	if (rc < 0)
		goto fail;
	prealloc_ahead(s);
	s->last_commit_ns = clock_mono_ns();
	s->journal_sync_ns = s->checkpoint_ns = s->last_commit_ns;
	rc = start_thread(s);
	if (rc < 0)
		goto fail;
	log_info("store: %s open: boot epoch %llu, %llu of %llu bytes in use",
		 s->dir, (unsigned long long)s->boot_epoch,
		 (unsigned long long)atomic_load(&s->used_bytes),
		 (unsigned long long)s->limit_bytes);
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

const uint8_t *
store_secret(const struct store *s)
{
	return s->secret;
}

int
store_event_fd(const struct store *s)
{
	return s->event_fd;
}

void
store_usage(const struct store *s, uint64_t *used_bytes, uint64_t *limit_bytes)
{
	*used_bytes = atomic_load(&s->used_bytes);
	*limit_bytes = s->limit_bytes;
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
	int rc = store_decode_msg(k->mv_data, val->mv_data, val->mv_size, v);

	if (rc < 0)
		log_error("store: %s: message of queue %u partition %u offset "
			  "%llu is corrupt (checksum or layout)",
			  s->dir, (unsigned)store_get_be(k->mv_data, 4),
			  (unsigned)v->partition,
			  (unsigned long long)v->offset);
	return rc;
}

/* The value of message key kb from a batch the journal confirmed and
 * LMDB has not applied: 1 (in *v), 0 (deleted there), -1 (read LMDB). */
static int
held_value(const struct store *s, const uint8_t *kb, MDB_val *v)
{
	const uint8_t *p;
	size_t len;
	int rc =
		s->overlay != NULL ? overlay_get(s->overlay, kb, &p, &len) : -1;

	if (rc == 1) {
		v->mv_data = (void *)p;
		v->mv_size = len;
	}
	return rc;
}

/* Reads the message at offset (is_exact) or the first one after it. */
static int
msg_read(struct store *s, uint32_t qid, uint32_t part, uint64_t offset,
	 bool is_exact, struct store_msg_view *v)
{
	uint8_t kb[16];
	MDB_val k = { sizeof(kb), kb }, val;
	int rc;

	store_msg_key(kb, qid, part, offset);
	rc = is_exact ? held_value(s, kb, &val) : -1;
	if (rc == 0)
		return -RMQ_ENOTFOUND;
	if (rc == 1)
		return msg_view(s, &k, &val, v);
	rc = read_begin(s);
	if (rc < 0)
		return rc;
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

/* No CRC check and no log: the caller reads it because it is corrupt. */
int
store_msg_get_raw(struct store *s, uint32_t qid, uint32_t part, uint64_t offset,
		  const void **value, size_t *len)
{
	uint8_t kb[16];
	MDB_val k = { sizeof(kb), kb }, v;
	int rc;

	*value = NULL;
	*len = 0;
	store_msg_key(kb, qid, part, offset);
	rc = held_value(s, kb, &v);
	if (rc == 0)
		return -RMQ_ENOTFOUND;
	if (rc == 1) {
		*value = v.mv_data;
		*len = v.mv_size;
		return 0;
	}
	rc = read_begin(s);
	if (rc < 0)
		return rc;
	rc = mdb_get(s->rtxn, s->dbi[DB_MSGS], &k, &v);
	if (rc != 0)
		return store_err(s, rc, "read raw message");
	*value = v.mv_data;
	*len = v.mv_size;
	return 0;
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
	struct offset_run *runs; /* owned: scratch for group states */
	size_t runs_cap;
};

typedef int (*load_fn)(struct load *l, const MDB_val *k, const MDB_val *v);

static int
load_corrupt(struct load *l, enum store_db db, const char *why)
{
	log_error("store: %s: a record in \"%s\" %s", l->s->dir,
		  store_db_names[db], why);
	return -RMQ_ECORRUPT;
}

/* Calls fn for every record of db in key order; CRCs are checked for
 * every database but "msgs". key_len 0: keys vary, fn checks them. */
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
		if (key_len != 0 && k.mv_size != key_len)
			rc = load_corrupt(l, db, "has a key of the wrong size");
		else if (db != DB_MSGS &&
			 !store_record_crc_ok(k.mv_data, k.mv_size, v.mv_data,
					      v.mv_size))
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
	struct store_queue q;
	void *p;

	if (store_decode_queue(k->mv_data, v->mv_data, v->mv_size, &q) < 0)
		return load_corrupt(l, DB_QUEUES, "is malformed");
	p = vec_grow(l->queues, &l->queues_cap, l->nqueues + 1,
		     sizeof(l->queues[0]), 16);
	if (p == NULL)
		return -ENOMEM;
	l->queues = p;
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

			(void)store_put_be(store_put_be(kb, l->queues[i][0], 4),
					   part, 4);
			rc = mdb_get(l->txn, l->s->dbi[DB_PARTS], &k, &v);
			if (rc != 0 && rc != MDB_NOTFOUND)
				return store_err(l->s, rc, "load partition");
			if (rc == 0 &&
			    store_decode_uint(kb, sizeof(kb), v.mv_data,
					      v.mv_size, 8, &next) < 0)
				return load_corrupt(l, DB_PARTS,
						    "failed its checksum");
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
	struct store_group g;

	if (store_decode_group(k->mv_data, v->mv_data, v->mv_size, &g) < 0)
		return load_corrupt(l, DB_GROUPS, "is malformed");
	return l->cb->group(l->ctx, &g);
}

static int
load_gstate(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data;
	int64_t n = store_gstate_runs(v->mv_data, v->mv_size);
	uint64_t ack_floor;

	if (n < 0)
		return load_corrupt(l, DB_GSTATE, "is malformed");
	if ((uint64_t)n > l->runs_cap) {
		void *a =
			realloc(l->runs, (size_t)n * sizeof(struct offset_run));

		if (a == NULL)
			return -ENOMEM;
		l->runs = a;
		l->runs_cap = (size_t)n;
	}
	store_decode_gstate(v->mv_data, &ack_floor, l->runs, (uint32_t)n);
	return l->cb->group_state(l->ctx, (uint32_t)store_get_be(key, 4),
				  (uint32_t)store_get_be(key + 4, 4),
				  (uint32_t)store_get_be(key + 8, 4), ack_floor,
				  l->runs, (uint32_t)n);
}

static int
load_failure(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data;
	struct store_failure f;

	if (store_decode_failure(v->mv_data, v->mv_size, &f) < 0)
		return load_corrupt(l, DB_FAILS, "is malformed");
	return l->cb->failure(l->ctx, (uint32_t)store_get_be(key, 4),
			      (uint32_t)store_get_be(key + 4, 4),
			      (uint32_t)store_get_be(key + 8, 4),
			      store_get_be(key + 12, 8), &f);
}

static int
load_dedup(struct load *l, const MDB_val *k, const MDB_val *v)
{
	struct store_dedup_rec d;

	if (store_decode_dedup(k->mv_data, k->mv_size, v->mv_data, v->mv_size,
			       &d) < 0)
		return load_corrupt(l, DB_DEDUP, "is malformed");
	return l->cb->dedup(l->ctx, d.qid, d.part, d.id, d.id_len, d.offset,
			    d.publish_ms);
}

static int
load_producer(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data;
	struct store_producer p;
	int rc = store_decode_producer(v->mv_data, v->mv_size, &p);

	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return load_corrupt(l, DB_PRODUCERS, "is malformed");
	rc = l->cb->producer(l->ctx, (uint32_t)store_get_be(key, 4),
			     (uint32_t)store_get_be(key + 4, 4),
			     store_get_be(key + 8, 8), &p);
	store_producer_release(&p);
	return rc;
}

/* Reads only the fixed header: no CRC here, store_msg_get checks it. A
 * record too short to parse is reported with zeros, to fail on read. */
static int
load_message(struct load *l, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *key = k->mv_data;
	uint64_t publish_ms, deliver_at_ms;
	uint32_t msg_bytes;
	unsigned flags;
	int rc;

	store_peek_msg(v->mv_data, v->mv_size, &msg_bytes, &publish_ms,
		       &deliver_at_ms, &flags);
	rc = l->cb->message(l->ctx, (uint32_t)store_get_be(key, 4),
			    (uint32_t)store_get_be(key + 4, 4),
			    store_get_be(key + 8, 8), msg_bytes, publish_ms,
			    deliver_at_ms);
	if (rc == 0 && l->cb->private_message != NULL &&
	    (flags & STORE_MSG_PRIVATE))
		rc = l->cb->private_message(l->ctx,
					    (uint32_t)store_get_be(key, 4),
					    (uint32_t)store_get_be(key + 4, 4),
					    store_get_be(key + 8, 8));
	return rc;
}

static int
load_user(struct load *l, const MDB_val *k, const MDB_val *v)
{
	struct store_user u;
	struct store_perm *perms = NULL;
	int rc;

	if (store_decode_user(k->mv_data, k->mv_size, v->mv_data, v->mv_size,
			      &u) < 0)
		return load_corrupt(l, DB_USERS, "is malformed");
	if (u.nperms > 0) {
		perms = calloc(u.nperms, sizeof(*perms));
		if (perms == NULL)
			return -ENOMEM;
		store_decode_user_perms(v->mv_data, v->mv_size, perms,
					u.nperms);
		u.perms = perms;
	}
	rc = l->cb->user(l->ctx, &u);
	free(perms);
	return rc;
}

static int
load_all(struct load *l)
{
	const struct store_load_cb *cb = l->cb;
	int rc = 0;

	if (cb->user != NULL)
		rc = load_scan(l, DB_USERS, 0, load_user);
	if (rc == 0)
		rc = load_scan(l, DB_QUEUES, 4, load_queue);
	if (rc == 0 && cb->partition != NULL)
		rc = load_partitions(l);
	if (rc == 0 && cb->group != NULL)
		rc = load_scan(l, DB_GROUPS, 8, load_group);
	if (rc == 0 && cb->group_state != NULL)
		rc = load_scan(l, DB_GSTATE, 12, load_gstate);
	if (rc == 0 && cb->failure != NULL)
		rc = load_scan(l, DB_FAILS, 20, load_failure);
	if (rc == 0 && cb->dedup != NULL)
		rc = load_scan(l, DB_DEDUP, 0, load_dedup);
	if (rc == 0 && cb->producer != NULL)
		rc = load_scan(l, DB_PRODUCERS, 16, load_producer);
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
	free(l.runs);
	return rc;
}

int
store_is_writable(const struct store *s)
{
	return !atomic_load(&((struct store *)s)->is_panicked);
}

/* ------------------------------------------------------------- backup */

/* Queues a finished batch (no operations) on the done list.
 * Runs on: backup thread. */
static void
done_push(struct store *s, struct store_batch *b)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	b->next = NULL;
	*s->done_tail = b;
	s->done_tail = &b->next;
	pthread_mutex_unlock(&s->lock);
	(void)!write(s->event_fd, &one, sizeof(one));
}

/* Writes the compacting copy into dir/data.mdb.partial, synced, then
 * renames it to dir/data.mdb: a copy cut short (a crash, a stop that
 * could not wait for it) never looks like a complete one. Sets *bytes.
 * @return 0 or a negative errno / ringmq code. Runs on: backup thread. */
static int
backup_write(struct store *s, const char *dir, uint64_t *bytes)
{
	char part[PATH_MAX], file[PATH_MAX];
	struct stat st;
	int fd, dfd, rc;

	if (snprintf(part, sizeof(part), "%s/data.mdb.partial", dir) >=
		    (int)sizeof(part) ||
	    snprintf(file, sizeof(file), "%s/data.mdb", dir) >=
		    (int)sizeof(file))
		return -ENAMETOOLONG;
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	if (rc != MDB_SUCCESS) {
		log_error("store: backup to %s: %s", dir, mdb_strerror(rc));
		(void)close(fd);
		return rc > 0 && rc < RMQ_EBASE ? -rc : -RMQ_ESTORAGE;
	}
	if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		(void)close(fd);
		return rc;
	}
	if (close(fd) != 0 || rename(part, file) != 0)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = fsync(dfd) == 0 ? 0 : -errno;
	(void)close(dfd);
	*bytes = (uint64_t)st.st_size;
	return rc;
}

/* Compacting copy of the environment into s->backup_path.
 * Runs on: backup thread. */
static void *
backup_main(void *arg)
{
	struct store *s = arg;
	struct store_batch *b = s->backup_done;
	uint64_t bytes = 0;

	if (mkdir(s->backup_path, 0750) < 0 && errno != EEXIST) {
		b->status = -errno;
		goto out;
	}
	/* The copy holds every batch confirmed before the request: those
	 * the journal holds alone are applied to LMDB first. */
	checkpoint_wait(s);
	b->status = backup_write(s, s->backup_path, &bytes);
	if (b->status == 0) {
		*s->backup_bytes = bytes;
		log_info("store: backup of %s written to %s (%llu bytes)",
			 s->dir, s->backup_path, (unsigned long long)bytes);
	}
out:
	atomic_store(&s->is_backup_finished, true);
	done_push(s, b);
	return NULL;
}

void
store_backup_abandon(struct store *s)
{
	/* Its completion, not reaped yet, answers nobody (reap runs on this
	 * thread; the backup thread never touches done). */
	if (s->is_backup_running && s->backup_done != NULL)
		s->backup_done->done = NULL;
}

/* Joins a finished backup thread. Loop thread. */
static void
backup_join(struct store *s)
{
	(void)pthread_join(s->backup_thread, NULL);
	s->is_backup_running = false;
	free(s->backup_path);
	s->backup_path = NULL;
}

int
store_backup(struct store *s, const char *path, uint64_t *bytes,
	     store_done_fn done, void *ctx)
{
	char file[PATH_MAX];
	struct stat st;

	if (s->is_backup_running) {
		if (!atomic_load(&s->is_backup_finished))
			return -EBUSY;
		backup_join(s);
	}
	/* An existing data file would be overwritten: refuse it. */
	if (snprintf(file, sizeof(file), "%s/data.mdb", path) >=
	    (int)sizeof(file))
		return -ENAMETOOLONG;
	if (stat(file, &st) == 0)
		return -EEXIST;
	s->backup_path = strdup(path);
	s->backup_done = store_batch_new(0);
	if (s->backup_path == NULL || s->backup_done == NULL)
		goto oom;
	s->backup_done->done = done;
	s->backup_done->ctx = ctx;
	s->backup_bytes = bytes;
	atomic_store(&s->is_backup_finished, false);
	if (pthread_create(&s->backup_thread, NULL, backup_main, s) != 0)
		goto oom;
	s->is_backup_running = true;
	return 0;
oom:
	free(s->backup_path);
	s->backup_path = NULL;
	store_batch_free(s->backup_done);
	s->backup_done = NULL;
	return -ENOMEM;
}
