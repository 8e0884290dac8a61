/*
 * Power-cut simulation for the crash test.
 *
 * powercut_shim.so, preloaded into ringmqd (LD_PRELOAD), lets every write
 * to one file (RINGMQ_POWERCUT_FILE: the broker's LMDB data file) through
 * and keeps, in the directory RINGMQ_POWERCUT_DIR:
 *
 *   durable  the file as a disk would hold it after its last sync;
 *   log      every write since that sync, in order, with its bytes.
 *
 * A sync of the file (fdatasync, fsync) appends a SYNC record to the log,
 * then folds the log into durable and empties it. A write through a
 * descriptor opened with O_DSYNC or O_SYNC is durable when it returns: its
 * record says so. The shim does its bookkeeping after the real call
 * returns, so that SIGKILL at any moment leaves a state that a power cut
 * could have left too. RINGMQ_POWERCUT_DELAY_US, if set, makes each sync
 * and durable write of the file wait first, so that kills often land
 * while written pages wait for their sync.
 *
 * After SIGKILL, powercut_image() writes the file a power cut at that
 * moment could have left: durable, then the log up to its last SYNC record
 * in full, then what follows with durable writes always and every other
 * written page kept or dropped as the flavour says.
 *
 * With RINGMQ_POWERCUT_WATCH_DIR (the broker's journal directory), every
 * regular file opened there is watched the same way, its state kept as
 * file-INODE.durable and file-INODE.log, and powercut_image_dir() writes
 * their images. Directory changes (files made, renamed, deleted) are
 * taken as durable: the journal syncs its directory after each.
 */
#ifndef RINGMQ_TEST_POWERCUT_H
#define RINGMQ_TEST_POWERCUT_H

#include <stdint.h>

#define POWERCUT_PAGE_BYTES 4096u

/* The log's records: a header, then len bytes unless the write was all
 * zeros or the record is a SYNC. */
#define POWERCUT_MAGIC 0x74756370u /* "pcut" */
enum powercut_kind {
	POWERCUT_WRITE = 1, /* bytes written at off */
	POWERCUT_ZEROS = 2, /* len zero bytes written at off, not stored */
	POWERCUT_SYNC = 3,  /* everything before is durable; off: file size */
};
#define POWERCUT_DURABLE 0x100u /* kind flag: durable when written */

struct powercut_record {
	uint32_t magic;
	uint32_t kind; /* enum powercut_kind | POWERCUT_DURABLE */
	uint64_t off;
	uint64_t len;
};

/* What a power cut keeps of the writes after the last sync. */
enum powercut_flavour {
	POWERCUT_KEEP_NONE, /* the disk wrote back nothing */
	POWERCUT_KEEP_ALL,  /* everything reached the disk */
	POWERCUT_KEEP_SOME, /* each written page independently, at random */
};

struct powercut_stats {
	uint64_t pages_kept;	 /* written pages past the last sync kept */
	uint64_t pages_dropped;	 /* and dropped */
	uint64_t durable_writes; /* O_DSYNC writes past the last sync */
	int is_torn;		 /* the log ended inside a record */
};

/*
 * Writes to path the file a power cut could have left, from the shim's
 * state in dir. rng drives POWERCUT_KEEP_SOME (splitmix64 state).
 * @return 0, or -1 with a message on stderr.
 */
int powercut_image(const char *dir, const char *path,
		   enum powercut_flavour flavour, uint64_t *rng,
		   struct powercut_stats *st);

/*
 * The same for every file of watch_dir (RINGMQ_POWERCUT_WATCH_DIR) the
 * shim watched in the run that was cut, each as its own state in dir
 * says; files it did not watch stay as they are. Then clears those
 * states for the next run. Adds to *st.
 * @return 0, or -1 with a message on stderr.
 */
int powercut_image_dir(const char *dir, const char *watch_dir,
		       enum powercut_flavour flavour, uint64_t *rng,
		       struct powercut_stats *st);

#endif
