/*
 * journal: the log in front of LMDB (DESIGN.md, "Storage"): records
 * appended to preallocated segment files, checksummed, and made durable
 * in groups by one fdatasync. A record is the node's ordered operation,
 * self-contained: its node sequence number (from 1, no gaps), a leader
 * epoch (0 on a single node), a type and a body that are the caller's.
 *
 * Not thread-safe: one thread owns a journal (the storage thread).
 *
 * On disk, in DIR:
 *   SSSSSSSSSSSSSSSS.jrnl  a segment: SSSS.. is the sequence number of
 *                          its first record, 16 hex digits; its size is
 *                          fixed when it is made (written ahead with
 *                          zeros, so a sync never records growth);
 *   spare-N.jrnl           a released segment kept for reuse, or one
 *                          made ahead (journal_prepare);
 *   spare-new.jrnl         a spare being made (deleted at open).
 * A segment begins with a 64-byte header:
 *   0   8  magic "RMQJRNL1"
 *   8   4  format version (1), little-endian like every field
 *   12  4  CRC32C of the header's bytes 16..63
 *   16  8  first sequence number
 *   24  8  segment size in bytes
 *   32  32 zeros
 * then records, each at an 8-byte boundary:
 *   0   4  body length
 *   4   4  CRC32C of bytes 8..23 and the body
 *   8   8  sequence number
 *   16  4  leader epoch
 *   20  2  type
 *   22  2  zeros
 *   24  .. body, then zeros to the next 8-byte boundary.
 * A record ends the journal where its CRC does not match, or its sequence
 * number is not the one after the last (zeros written ahead, a torn
 * write, or an older record of a reused segment): nothing after it was
 * ever confirmed, since records are synced in order.
 */
#ifndef RINGMQ_STORE_JOURNAL_H
#define RINGMQ_STORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

/* One record, as replay hands it out (body borrowed for the call). */
struct journal_record {
	uint64_t seq;
	uint32_t epoch;
	uint16_t type;
	const void *body;
	uint32_t body_len;
};

#define JOURNAL_HEADER_BYTES	64u
#define JOURNAL_RECORD_OVERHEAD 24u
#define JOURNAL_BODY_MAX	(1u << 30) /* bytes of one record's body */

/*
 * Opens the journal in dir (made if missing) with segments of
 * segment_bytes (a multiple of 4096, at least 64 KiB; existing segments
 * keep their own size, and a record larger than a segment gets one of its
 * own). Finds the end: the last record whose CRC and sequence number
 * follow on from the ones before it; a tail after it is logged and will
 * be overwritten. When the records end below min_next_seq (>= 1: the
 * caller's state already holds them all, or there are none), they are
 * dropped and the next record is numbered min_next_seq.
 * @return 0, or a negative errno (-EINVAL for a bad size, -EIO for a
 *         segment whose header does not verify before the last one).
 */
int journal_open(const char *dir, uint64_t segment_bytes, uint64_t min_next_seq,
		 struct journal **jp);

/* The sequence number of the oldest record kept (journal_next_seq() when
 * there is none). */
uint64_t journal_first_seq(const struct journal *j);

/* Closes j (records appended and not synced are lost). NULL: no-op. */
void journal_close(struct journal *j);

/* The sequence number the next appended record gets. */
uint64_t journal_next_seq(const struct journal *j);

/* The sequence number of the last synced record (0: none yet). */
uint64_t journal_synced_seq(const struct journal *j);

/*
 * Appends a record, held in memory until journal_sync(); it is given the
 * next sequence number (*seqp, when not NULL).
 * @return 0; -EMSGSIZE when the body is over JOURNAL_BODY_MAX; -ENOMEM;
 *         or a negative errno from making a new segment.
 */
int journal_append(struct journal *j, uint32_t epoch, uint16_t type,
		   const void *body, uint32_t body_len, uint64_t *seqp);

/* Bytes a record with a body of body_len takes in a segment. */
uint64_t journal_record_bytes(uint32_t body_len);

/* Bytes the segment being written has left: records whose
 * journal_record_bytes add up to at most this are appended without
 * making or renaming a segment file. */
uint64_t journal_segment_room(const struct journal *j);

/*
 * Writes every appended record to its file without syncing it: it then
 * survives the process being killed, not the machine stopping.
 * @return 0, or a negative errno (the records stay appended).
 */
int journal_write(struct journal *j);

/*
 * Writes every appended record and syncs it: once it returns 0, each is
 * durable and journal_synced_seq() is the last one's.
 * @return 0, or a negative errno (the records stay appended; a failed
 *         sync leaves the journal unusable, as the kernel may have
 *         dropped the pages: close and open it again).
 */
int journal_sync(struct journal *j);

/*
 * Calls fn for every synced record from from_seq on, in order, until fn
 * returns non-zero (that value is returned) or the records end.
 * @return 0, fn's value, or a negative errno (reading failed).
 */
int journal_replay(struct journal *j, uint64_t from_seq,
		   int (*fn)(void *ctx, const struct journal_record *r),
		   void *ctx);

/*
 * Makes a spare segment ahead of need, at most max_bytes of it per call,
 * so that the append that fills a segment renames one instead of writing
 * a whole new file while confirms wait: call it while idle, or a little
 * after each group. Nothing to do while a spare is ready.
 * @return 1 when more remains to write, 0 when a spare is ready, or a
 *         negative errno (the attempt is dropped; a later call retries).
 */
int journal_prepare(struct journal *j, uint64_t max_bytes);

/*
 * Releases the records below upto_seq (their LMDB commit is durable):
 * every segment holding only such records is kept as a spare (up to
 * two) for the next segment, or deleted. The segment being written is
 * never released.
 * @return the number of segments released, or a negative errno.
 */
int journal_release(struct journal *j, uint64_t upto_seq);

/* Segments in use, the one being written included. */
size_t journal_segments(const struct journal *j);

#endif
