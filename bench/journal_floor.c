/*
 * journal_floor.c: the measurement that decides whether a journal in
 * front of LMDB can confirm sooner than LMDB alone (the storage section
 * of the design, the journal issue's "measure first"). On one filesystem
 * it times:
 *
 *  - a synced LMDB commit of one 256-byte put (what a confirm costs now);
 *  - a 4 KiB record appended to a preallocated journal file and synced
 *    with fdatasync (what a confirm would cost), alone, and while LMDB
 *    checkpoints run beside it: paced (one commit of 1,000 puts every
 *    10 ms, as a broker applying the journal behind it would) and back
 *    to back (commits as fast as the disk takes them);
 *  - the same append as two linked io_uring requests (write, then
 *    fdatasync), alone and under paced checkpoints: the journal sync on
 *    the event loop's own ring, with no hand-off to a storage thread.
 *
 * Each journal case appends to its own fresh preallocated file, so no
 * sync records file growth. Prints each case, then one RESULT line.
 *
 *   cc -O2 -pthread -o journal-floor bench/journal_floor.c bench/hist.c \
 *      -llmdb -luring -lm
 *   journal-floor DIR [COUNT]    DIR: an empty directory on the disk
 */
#define FLOOR_PROG "journal-floor"
#include "floor.h"
#include "hist.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORD_BYTES	    4096
#define JOURNAL_BYTES	    (256ull << 20)
#define CHECKPOINT_PUTS	    1000
#define CHECKPOINT_EVERY_NS 10000000ull /* paced: one commit per 10 ms */
#define WARMUP		    100

/* ------------------------------------------------------------- LMDB */

struct store {
	MDB_env *env;
	MDB_dbi dbi;
	uint64_t next_key;
};

static void
store_open(struct store *s, const char *dir)
{
	lmdb_open(dir, 8ull << 30, &s->env, &s->dbi);
	s->next_key = 0;
}

/* One synced commit of n 256-byte puts (default flags: it fsyncs). */
static void
store_commit(struct store *s, unsigned n)
{
	static const char value[256] = { 'v' };
	MDB_txn *txn;

	check(mdb_txn_begin(s->env, NULL, 0, &txn), "mdb_txn_begin");
	for (unsigned i = 0; i < n; i++) {
		uint64_t key = __builtin_bswap64(s->next_key++);
		MDB_val k = { sizeof(key), &key };
		MDB_val v = { sizeof(value), (void *)value };

		check(mdb_put(txn, s->dbi, &k, &v, 0), "mdb_put");
	}
	check(mdb_txn_commit(txn), "mdb_txn_commit");
}

/* ------------------------------------------------------- checkpoints */

enum pace { PACE_NONE, PACE_PACED, PACE_BACK_TO_BACK };

struct checkpoints {
	struct store *s;
	enum pace pace;
	volatile int is_stopping;
	struct hist commits; /* each checkpoint commit's time */
	pthread_t thread;
};

static void *
checkpoints_main(void *arg)
{
	struct checkpoints *cp = arg;
	uint64_t next = now_ns();

	while (!cp->is_stopping) {
		uint64_t t0;

		if (cp->pace == PACE_PACED) {
			uint64_t now = now_ns();

			if (now < next) {
				struct timespec d = { 0, (long)(next - now) };

				nanosleep(&d, NULL);
			}
			next += CHECKPOINT_EVERY_NS;
		}
		t0 = now_ns();
		store_commit(cp->s, CHECKPOINT_PUTS);
		hist_add(&cp->commits, now_ns() - t0);
	}
	return NULL;
}

static void
checkpoints_start(struct checkpoints *cp, struct store *s, enum pace pace)
{
	memset(cp, 0, sizeof(*cp));
	cp->s = s;
	cp->pace = pace;
	hist_init(&cp->commits);
	if (pace != PACE_NONE)
		check(pthread_create(&cp->thread, NULL, checkpoints_main, cp),
		      "pthread_create");
}

static void
checkpoints_stop(struct checkpoints *cp)
{
	cp->is_stopping = 1;
	if (cp->pace != PACE_NONE)
		pthread_join(cp->thread, NULL);
}

/* ---------------------------------------------------------- journal */

/* A fresh journal file of JOURNAL_BYTES, written ahead with zeros and
 * synced, so appends never grow it. */
static int
journal_open(const char *dir, const char *name)
{
	static char zeros[1 << 20];
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	check(fd < 0 ? -1 : 0, "open journal");
	for (uint64_t off = 0; off < JOURNAL_BYTES; off += sizeof(zeros))
		check(pwrite(fd, zeros, sizeof(zeros), (off_t)off) ==
				      (ssize_t)sizeof(zeros)
			      ? 0
			      : -1,
		      "pwrite zeros");
	check(fdatasync(fd), "fdatasync");
	unlink(path); /* gone when closed */
	return fd;
}

/* count + WARMUP appends with pwrite and fdatasync. */
static void
journal_syncs(int fd, unsigned count, struct hist *h)
{
	static char rec[RECORD_BYTES];

	memset(rec, 'r', sizeof(rec));
	for (unsigned i = 0; i < count + WARMUP; i++) {
		uint64_t t0 = now_ns();

		check(pwrite(fd, rec, sizeof(rec), (off_t)i * sizeof(rec)) ==
				      (ssize_t)sizeof(rec)
			      ? 0
			      : -1,
		      "pwrite record");
		check(fdatasync(fd), "fdatasync");
		if (i >= WARMUP)
			hist_add(h, now_ns() - t0);
	}
}

/* The same appends as a write linked to an fdatasync on an io_uring. */
static void
journal_syncs_uring(int fd, unsigned count, struct hist *h)
{
	static char rec[RECORD_BYTES];
	struct io_uring ring;

	memset(rec, 'r', sizeof(rec));
	check(io_uring_queue_init(8, &ring, 0) < 0 ? -1 : 0,
	      "io_uring_queue_init");
	for (unsigned i = 0; i < count + WARMUP; i++) {
		uint64_t t0 = now_ns();
		struct io_uring_sqe *w = io_uring_get_sqe(&ring);
		struct io_uring_sqe *s = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_write(w, fd, rec, sizeof(rec),
				    (uint64_t)i * sizeof(rec));
		w->flags |= IOSQE_IO_LINK;
		io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
		check(io_uring_submit_and_wait(&ring, 2) < 0 ? -1 : 0,
		      "io_uring_submit_and_wait");
		for (int k = 0; k < 2; k++) {
			check(io_uring_wait_cqe(&ring, &cqe) < 0 ? -1 : 0,
			      "io_uring_wait_cqe");
			if (cqe->res < 0) {
				errno = -cqe->res;
				check(-1, "io_uring write or fsync");
			}
			io_uring_cqe_seen(&ring, cqe);
		}
		if (i >= WARMUP)
			hist_add(h, now_ns() - t0);
	}
	io_uring_queue_exit(&ring);
}

/* ------------------------------------------------------------- cases */

struct result {
	const char *name;
	struct hist journal;
	struct hist checkpoint; /* empty without checkpoints */
};

static void
run_case(struct result *r, const char *name, const char *dir, struct store *s,
	 enum pace pace, int is_uring, unsigned count)
{
	struct checkpoints cp;
	int fd = journal_open(dir, name);

	r->name = name;
	hist_init(&r->journal);
	checkpoints_start(&cp, s, pace);
	if (is_uring)
		journal_syncs_uring(fd, count, &r->journal);
	else
		journal_syncs(fd, count, &r->journal);
	checkpoints_stop(&cp);
	r->checkpoint = cp.commits;
	close(fd);
	printf("%-22s journal 4 KiB append+sync p50 %5.0f us  p99 %6.0f us",
	       name, hist_quantile_us(&r->journal, 0.5),
	       hist_quantile_us(&r->journal, 0.99));
	if (r->checkpoint.count > 0)
		printf("  (%llu checkpoints of %d puts, p50 %.0f us)",
		       (unsigned long long)r->checkpoint.count, CHECKPOINT_PUTS,
		       hist_quantile_us(&r->checkpoint, 0.5));
	printf("\n");
}

int
main(int argc, char **argv)
{
	static struct result r[5];
	struct hist one_put;
	struct store s;
	unsigned count = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
	double lmdb_p50;

	if (argc < 2) {
		fprintf(stderr, "usage: journal-floor DIR [COUNT]\n");
		return 1;
	}
	store_open(&s, argv[1]);
	hist_init(&one_put);
	for (unsigned i = 0; i < count + WARMUP; i++) {
		uint64_t t0 = now_ns();

		store_commit(&s, 1);
		if (i >= WARMUP)
			hist_add(&one_put, now_ns() - t0);
	}
	lmdb_p50 = hist_quantile_us(&one_put, 0.5);
	printf("%-22s LMDB one-put synced commit p50 %5.0f us  p99 %6.0f us\n",
	       "lmdb", lmdb_p50, hist_quantile_us(&one_put, 0.99));
	run_case(&r[0], "alone", argv[1], &s, PACE_NONE, 0, count);
	run_case(&r[1], "paced-checkpoints", argv[1], &s, PACE_PACED, 0, count);
	run_case(&r[2], "back-to-back", argv[1], &s, PACE_BACK_TO_BACK, 0,
		 count);
	run_case(&r[3], "uring-alone", argv[1], &s, PACE_NONE, 1, count);
	run_case(&r[4], "uring-paced", argv[1], &s, PACE_PACED, 1, count);
	mdb_env_close(s.env);
	printf("journal under paced checkpoints / LMDB one-put commit: %.2f\n",
	       hist_quantile_us(&r[1].journal, 0.5) / lmdb_p50);
	printf("RESULT system=journal-floor lmdb_commit_p50_us=%.0f "
	       "lmdb_commit_p99_us=%.0f",
	       lmdb_p50, hist_quantile_us(&one_put, 0.99));
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		char key[64];

		snprintf(key, sizeof(key), "%s", r[i].name);
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_';
		printf(" %s_p50_us=%.0f %s_p99_us=%.0f", key,
		       hist_quantile_us(&r[i].journal, 0.5), key,
		       hist_quantile_us(&r[i].journal, 0.99));
	}
	printf(" paced_ratio=%.2f\n",
	       hist_quantile_us(&r[1].journal, 0.5) / lmdb_p50);
	return 0;
}
