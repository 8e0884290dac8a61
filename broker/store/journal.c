/*
 * journal: segments of checksummed records, appended in memory and made
 * durable by journal_sync(); the format is in journal.h.
 */
#include "store/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/vec.h"

#define MAGIC	      "RMQJRNL1"
#define VERSION	      1u
#define MAX_SPARES    2
#define MIN_SEG_BYTES (64u * 1024u)

struct segment {
	uint64_t first_seq;
	uint64_t size; /* bytes, from its header; 0: the header is bad */
	uint64_t end;  /* bytes holding its records (written or buffered) */
	int fd;
	int has_tail; /* bytes other than zeros after end (open only) */
};

struct journal {
	char *dir;
	int dir_fd;
	uint64_t segment_bytes;
	struct segment *segs; /* by first_seq; the last is written to */
	size_t nsegs, capsegs;
	uint64_t next_seq;
	uint64_t synced_seq;
	size_t unsynced_from; /* first segment written since the last sync */
	uint8_t *buf;	      /* records appended, not yet written */
	size_t buf_len, buf_cap;
	uint64_t buf_off; /* where buf goes in the last segment */
	unsigned nspares;
	int is_failed; /* a sync failed: pages may be lost */
	int prep_fd;   /* PREP_NAME being written ahead, or -1 */
	uint64_t prep_off;
};

/* A spare being made: renamed to spare-N.jrnl once whole and synced. */
#define PREP_NAME "spare-new.jrnl"

/* ------------------------------------------------------------ helpers */

static void
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

uint64_t
journal_record_bytes(uint32_t body_len)
{
	return ((uint64_t)JOURNAL_RECORD_OVERHEAD + body_len + 7) & ~7ull;
}

/* Writes all len bytes at off. @return 0 or a negative errno. */
static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Reads len bytes at off; fewer at the end of the file (*gotp). */
static int
pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *gotp)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*gotp = got;
	return 0;
}

static void
seg_name(char *out, size_t size, uint64_t first_seq)
{
	snprintf(out, size, "%016" PRIx64 ".jrnl", first_seq);
}

static void
header_encode(uint8_t h[JOURNAL_HEADER_BYTES], uint64_t first_seq,
	      uint64_t size)
{
	memset(h, 0, JOURNAL_HEADER_BYTES);
	memcpy(h, MAGIC, 8);
	put_u32(h + 8, VERSION);
	put_u64(h + 16, first_seq);
	put_u64(h + 24, size);
	put_u32(h + 12, crc32c(0, h + 16, JOURNAL_HEADER_BYTES - 16));
}

/* @return 0 with the fields when h is a header of this version. */
static int
header_decode(const uint8_t h[JOURNAL_HEADER_BYTES], uint64_t *first_seq,
	      uint64_t *size)
{
	if (memcmp(h, MAGIC, 8) != 0 || get_u32(h + 8) != VERSION ||
	    get_u32(h + 12) != crc32c(0, h + 16, JOURNAL_HEADER_BYTES - 16))
		return -1;
	*first_seq = get_u64(h + 16);
	*size = get_u64(h + 24);
	if (*size < MIN_SEG_BYTES || *first_seq == 0)
		return -1;
	return 0;
}

/* ----------------------------------------------------------- segments */

static int
segs_push(struct journal *j, const struct segment *s)
{
	struct segment *v =
		vec_grow(j->segs, &j->capsegs, j->nsegs + 1, sizeof(*v), 8);

	if (v == NULL)
		return -ENOMEM;
	j->segs = v;
	j->segs[j->nsegs++] = *s;
	return 0;
}

/* Writes a header for first_seq into fd and syncs it, and the directory
 * (the file's new name). */
static int
seg_stamp(struct journal *j, int fd, uint64_t first_seq, uint64_t size)
{
	uint8_t h[JOURNAL_HEADER_BYTES];
	int rc;

	header_encode(h, first_seq, size);
	rc = pwrite_all(fd, h, sizeof(h), 0);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (rc == 0 && fsync(j->dir_fd) < 0)
		rc = -errno;
	return rc;
}

/* A new segment starting at first_seq, appended to j->segs: a spare
 * renamed, or a file of size bytes (j->segment_bytes, or more for a
 * record larger than that) written ahead with zeros. */
static int
seg_new(struct journal *j, uint64_t first_seq, uint64_t size)
{
	static const uint8_t zeros[1 << 16];
	char name[64], spare[64];
	struct segment s = { first_seq, size, JOURNAL_HEADER_BYTES, -1, 0 };
	int rc = 0;

	seg_name(name, sizeof(name), first_seq);
	if (j->nspares > 0 && size == j->segment_bytes) {
		snprintf(spare, sizeof(spare), "spare-%u.jrnl", j->nspares - 1);
		if (renameat(j->dir_fd, spare, j->dir_fd, name) == 0) {
			struct stat st;

			j->nspares--;
			s.fd = openat(j->dir_fd, name, O_RDWR | O_CLOEXEC);
			if (s.fd < 0)
				return -errno;
			if (fstat(s.fd, &st) == 0 &&
			    (uint64_t)st.st_size >= MIN_SEG_BYTES &&
			    (uint64_t)st.st_size <= size)
				s.size = (uint64_t)st.st_size;
		}
	}
	if (s.fd < 0) {
		s.fd = openat(j->dir_fd, name,
			      O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s.fd < 0)
			return -errno;
		for (uint64_t off = 0; rc == 0 && off < s.size;
		     off += sizeof(zeros)) {
			size_t n = s.size - off < sizeof(zeros)
					   ? (size_t)(s.size - off)
					   : sizeof(zeros);

			rc = pwrite_all(s.fd, zeros, n, off);
		}
	}
	/* Stale records of a reused spare end replay by their older
	 * sequence numbers; only the header needs writing. */
	if (rc == 0)
		rc = seg_stamp(j, s.fd, first_seq, s.size);
	if (rc == 0)
		rc = segs_push(j, &s);
	if (rc != 0) {
		close(s.fd);
		(void)unlinkat(j->dir_fd, name, 0);
	}
	return rc;
}

/* Drops segment i: with may_spare, kept as a spare while there are fewer
 * than MAX_SPARES, else deleted. Only a segment whose records are all
 * older than any to come may be a spare: a reused spare's stale records
 * must never pass for new ones. */
static void
seg_drop(struct journal *j, size_t i, int may_spare)
{
	char name[64], spare[64];

	seg_name(name, sizeof(name), j->segs[i].first_seq);
	close(j->segs[i].fd);
	snprintf(spare, sizeof(spare), "spare-%u.jrnl", j->nspares);
	if (may_spare && j->nspares < MAX_SPARES &&
	    j->segs[i].size <= j->segment_bytes &&
	    renameat(j->dir_fd, name, j->dir_fd, spare) == 0)
		j->nspares++;
	else
		(void)unlinkat(j->dir_fd, name, 0);
	memmove(&j->segs[i], &j->segs[i + 1],
		(j->nsegs - i - 1) * sizeof(j->segs[0]));
	j->nsegs--;
}

/* ------------------------------------------------------------ records */

/*
 * Checks the record at p (avail bytes from it) against expected_seq.
 * @return its length in bytes, or 0 where the journal ends.
 */
static uint64_t
record_check(const uint8_t *p, uint64_t avail, uint64_t expected_seq,
	     struct journal_record *r)
{
	uint32_t body_len;
	uint64_t len;

	if (avail < JOURNAL_RECORD_OVERHEAD)
		return 0;
	body_len = get_u32(p);
	len = journal_record_bytes(body_len);
	if (len > avail || get_u64(p + 8) != expected_seq)
		return 0;
	if (get_u32(p + 4) != crc32c(crc32c(0, p + 8, 16), p + 24, body_len))
		return 0;
	r->seq = expected_seq;
	r->epoch = get_u32(p + 16);
	r->type = get_u16(p + 20);
	r->body = p + JOURNAL_RECORD_OVERHEAD;
	r->body_len = body_len;
	return len;
}

/* The records of segment s in [JOURNAL_HEADER_BYTES, end), read whole
 * (malloc'ed into *bufp). */
static int
seg_read(const struct segment *s, uint64_t end, uint8_t **bufp, size_t *lenp)
{
	size_t want = (size_t)(end - JOURNAL_HEADER_BYTES), got = 0;
	uint8_t *buf = malloc(want + 1);
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	rc = pread_all(s->fd, buf, want, JOURNAL_HEADER_BYTES, &got);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*bufp = buf;
	*lenp = got;
	return 0;
}

/* Walks segment s from its start, expecting *seq first: sets s->end after
 * its last good record and *seq to the one after. @return 0 or a
 * negative errno. */
static int
seg_scan(struct journal *j, struct segment *s, uint64_t *seq)
{
	uint8_t *buf;
	size_t len;
	uint64_t off = 0;
	int rc = seg_read(s, s->size, &buf, &len);

	if (rc != 0)
		return rc;
	for (;;) {
		struct journal_record r;
		uint64_t n = record_check(buf + off, len - off, *seq, &r);

		if (n == 0)
			break;
		off += n;
		(*seq)++;
	}
	s->end = JOURNAL_HEADER_BYTES + off;
	for (size_t k = (size_t)off; k < len && !s->has_tail; k++)
		s->has_tail = buf[k] != 0;
	/* Zeros, or an older record of a reused segment, end it quietly;
	 * the next record number with a bad checksum is a write cut short,
	 * never synced, so never confirmed. */
	if (len - off >= JOURNAL_RECORD_OVERHEAD &&
	    get_u64(buf + off + 8) == *seq)
		log_warn("journal %s: segment %016" PRIx64 ": record %" PRIu64
			 " at byte %" PRIu64 " does not check (a write cut "
			 "short, never confirmed): the journal ends before it",
			 j->dir, s->first_seq, *seq, s->end);
	free(buf);
	return 0;
}

/* ---------------------------------------------------------------- open */

static int
cmp_seg(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* Lists dir's segments into j->segs (fds open, headers checked, in
 * order) and counts its spares. */
static int
list_segments(struct journal *j)
{
	DIR *d = fdopendir(dup(j->dir_fd));
	struct dirent *e;
	int rc = 0;

	if (d == NULL)
		return -errno;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		uint8_t h[JOURNAL_HEADER_BYTES];
		struct segment s = { 0, 0, JOURNAL_HEADER_BYTES, -1, 0 };
		unsigned spare;
		size_t got = 0;
		char *endp;

		if (strcmp(e->d_name, PREP_NAME) == 0) {
			(void)unlinkat(j->dir_fd, e->d_name, 0); /* cut short */
			continue;
		}
		if (sscanf(e->d_name, "spare-%u.jrnl", &spare) == 1) {
			if (spare >= MAX_SPARES)
				(void)unlinkat(j->dir_fd, e->d_name, 0);
			continue;
		}
		if (strlen(e->d_name) != 21 ||
		    strcmp(e->d_name + 16, ".jrnl") != 0)
			continue;
		s.first_seq = strtoull(e->d_name, &endp, 16);
		if (endp != e->d_name + 16 || s.first_seq == 0)
			continue;
		s.fd = openat(j->dir_fd, e->d_name, O_RDWR | O_CLOEXEC);
		if (s.fd < 0) {
			rc = -errno;
			break;
		}
		rc = pread_all(s.fd, h, sizeof(h), 0, &got);
		if (rc == 0) {
			uint64_t first;

			if (got < sizeof(h) ||
			    header_decode(h, &first, &s.size) < 0 ||
			    first != s.first_seq)
				s.size = 0; /* checked by find_end */
		}
		if (rc == 0)
			rc = segs_push(j, &s);
		if (rc != 0)
			close(s.fd);
	}
	closedir(d);
	if (rc == 0 && j->nsegs > 1)
		qsort(j->segs, j->nsegs, sizeof(j->segs[0]), cmp_seg);
	/* Spares are numbered from 0 without a gap. */
	for (unsigned k = 0; rc == 0 && k < MAX_SPARES; k++) {
		char name[64], other[64];

		snprintf(name, sizeof(name), "spare-%u.jrnl", j->nspares);
		snprintf(other, sizeof(other), "spare-%u.jrnl", k);
		if (faccessat(j->dir_fd, other, F_OK, 0) != 0)
			continue;
		if (k == j->nspares ||
		    renameat(j->dir_fd, other, j->dir_fd, name) == 0)
			j->nspares++;
	}
	return rc;
}

/* Finds the end of the records, drops the segments after it and clears
 * what a cut-short write left after it, so that no record written then
 * can pass for one of the next. */
static int
find_end(struct journal *j)
{
	static const uint8_t zeros[1 << 16];
	struct segment *last;
	uint64_t seq;
	size_t i;

	/* A header that does not verify: the newest segment, being made
	 * when the broker stopped, holds nothing; before it, damage. */
	for (i = 0; i < j->nsegs; i++) {
		if (j->segs[i].size != 0)
			continue;
		if (i + 1 != j->nsegs) {
			log_error("journal %s: segment %016" PRIx64
				  " has a bad header",
				  j->dir, j->segs[i].first_seq);
			return -EIO;
		}
		seg_drop(j, i, 0);
	}
	if (j->nsegs == 0)
		return 0;
	seq = j->segs[0].first_seq;
	for (i = 0; i < j->nsegs; i++) {
		int rc;

		if (j->segs[i].first_seq != seq)
			break; /* a gap: what follows was never synced */
		rc = seg_scan(j, &j->segs[i], &seq);
		if (rc != 0)
			return rc;
	}
	/* Segments past the end hold nothing confirmed, and could hold
	 * records numbered like the next ones: deleted, never spares. */
	while (j->nsegs > i)
		seg_drop(j, j->nsegs - 1, 0);
	last = &j->segs[j->nsegs - 1];
	if (last->has_tail) {
		int rc = 0;

		for (uint64_t off = last->end; rc == 0 && off < last->size;
		     off += sizeof(zeros)) {
			size_t n = last->size - off < sizeof(zeros)
					   ? (size_t)(last->size - off)
					   : sizeof(zeros);

			rc = pwrite_all(last->fd, zeros, n, off);
		}
		if (rc == 0 && fdatasync(last->fd) < 0)
			rc = -errno;
		if (rc != 0)
			return rc;
		last->has_tail = 0;
	}
	j->next_seq = seq;
	j->synced_seq = seq - 1;
	return 0;
}

/* ------------------------------------------------------------ the API */

int
journal_open(const char *dir, uint64_t segment_bytes, uint64_t min_next_seq,
	     struct journal **jp)
{
	struct journal *j;
	int rc;

	*jp = NULL;
	if (segment_bytes < MIN_SEG_BYTES || segment_bytes % 4096 != 0)
		return -EINVAL;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->segment_bytes = segment_bytes;
	j->next_seq = 1;
	j->prep_fd = -1;
	j->dir = strdup(dir);
	j->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dir == NULL || j->dir_fd < 0) {
		rc = j->dir == NULL ? -ENOMEM : -errno;
		journal_close(j);
		return rc;
	}
	rc = list_segments(j);
	if (rc == 0)
		rc = find_end(j);
	if (rc == 0 && j->next_seq < min_next_seq) {
		/* Every record is older than the store's state: numbering
		 * goes on after the state, not after these records. */
		if (j->nsegs > 0)
			log_info("journal %s: records up to %" PRIu64
				 " are all applied; starting at %" PRIu64,
				 j->dir, j->next_seq - 1, min_next_seq);
		while (j->nsegs > 0)
			seg_drop(j, j->nsegs - 1, 1);
		j->next_seq = min_next_seq;
		j->synced_seq = min_next_seq - 1;
	}
	if (rc == 0 && j->nsegs == 0)
		rc = seg_new(j, j->next_seq, j->segment_bytes);
	if (rc != 0) {
		journal_close(j);
		return rc;
	}
	j->unsynced_from = j->nsegs - 1;
	j->buf_off = j->segs[j->nsegs - 1].end;
	*jp = j;
	return 0;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nsegs; i++)
		close(j->segs[i].fd);
	if (j->prep_fd >= 0)
		close(j->prep_fd); /* deleted at the next open */
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	free(j->segs);
	free(j->buf);
	free(j->dir);
	free(j);
}

uint64_t
journal_next_seq(const struct journal *j)
{
	return j->next_seq;
}

uint64_t
journal_synced_seq(const struct journal *j)
{
	return j->synced_seq;
}

uint64_t
journal_first_seq(const struct journal *j)
{
	/* The first segment may be empty: it then starts at next_seq. */
	return j->nsegs > 0 && j->segs[0].first_seq < j->next_seq
		       ? j->segs[0].first_seq
		       : j->next_seq;
}

size_t
journal_segments(const struct journal *j)
{
	return j->nsegs;
}

/* Writes the buffered records into the last segment (not synced). */
static int
write_buffered(struct journal *j)
{
	struct segment *last = &j->segs[j->nsegs - 1];
	int rc;

	if (j->buf_len == 0)
		return 0;
	rc = pwrite_all(last->fd, j->buf, j->buf_len, j->buf_off);
	if (rc != 0)
		return rc;
	j->buf_off += j->buf_len;
	j->buf_len = 0;
	return 0;
}

int
journal_append(struct journal *j, uint32_t epoch, uint16_t type,
	       const void *body, uint32_t body_len, uint64_t *seqp)
{
	uint64_t len = journal_record_bytes(body_len);
	struct segment *last = &j->segs[j->nsegs - 1];
	uint8_t *p;
	int rc;

	if (j->is_failed)
		return -EIO;
	if (body_len > JOURNAL_BODY_MAX)
		return -EMSGSIZE;
	if (last->end + len > last->size) {
		/* Full: what it has goes out now, synced with the rest. A
		 * record larger than a segment gets one of its own size. */
		uint64_t size = j->segment_bytes;

		if (len > size - JOURNAL_HEADER_BYTES)
			size = (JOURNAL_HEADER_BYTES + len + 4095) / 4096 *
			       4096;
		rc = write_buffered(j);
		if (rc == 0)
			rc = seg_new(j, j->next_seq, size);
		if (rc != 0)
			return rc;
		last = &j->segs[j->nsegs - 1];
		j->buf_off = last->end;
	}
	p = vec_grow(j->buf, &j->buf_cap, j->buf_len + (size_t)len, 1,
		     64 * 1024);
	if (p == NULL)
		return -ENOMEM;
	j->buf = p;
	p = j->buf + j->buf_len;
	memset(p, 0, (size_t)len);
	put_u32(p, body_len);
	put_u64(p + 8, j->next_seq);
	put_u32(p + 16, epoch);
	put_u16(p + 20, type);
	if (body_len > 0)
		memcpy(p + JOURNAL_RECORD_OVERHEAD, body, body_len);
	put_u32(p + 4, crc32c(crc32c(0, p + 8, 16), p + JOURNAL_RECORD_OVERHEAD,
			      body_len));
	j->buf_len += (size_t)len;
	last->end += len;
	if (seqp != NULL)
		*seqp = j->next_seq;
	j->next_seq++;
	return 0;
}

uint64_t
journal_segment_room(const struct journal *j)
{
	const struct segment *last = &j->segs[j->nsegs - 1];

	return last->size - last->end;
}

int
journal_write(struct journal *j)
{
	if (j->is_failed)
		return -EIO;
	return write_buffered(j);
}

int
journal_sync(struct journal *j)
{
	int rc;

	if (j->is_failed)
		return -EIO;
	if (j->synced_seq + 1 == j->next_seq)
		return 0;
	rc = write_buffered(j);
	if (rc != 0)
		return rc;
	/* In order: a crash between two leaves the older synced. */
	for (size_t i = j->unsynced_from; i < j->nsegs; i++) {
		if (fdatasync(j->segs[i].fd) < 0) {
			/* The kernel may have dropped the dirty pages and
			 * cleared the error: nothing written since can be
			 * trusted to be on the disk. */
			j->is_failed = 1;
			return -errno;
		}
	}
	j->unsynced_from = j->nsegs - 1;
	j->synced_seq = j->next_seq - 1;
	return 0;
}

int
journal_replay(struct journal *j, uint64_t from_seq,
	       int (*fn)(void *ctx, const struct journal_record *r), void *ctx)
{
	for (size_t i = 0; i < j->nsegs; i++) {
		const struct segment *s = &j->segs[i];
		uint64_t seq = s->first_seq, off = 0;
		uint64_t next_first = i + 1 < j->nsegs
					      ? j->segs[i + 1].first_seq
					      : UINT64_MAX;
		uint8_t *buf;
		size_t len;
		int rc;

		if (next_first <= from_seq || seq > j->synced_seq)
			continue;
		rc = seg_read(s, s->end, &buf, &len);
		if (rc != 0)
			return rc;
		while (seq <= j->synced_seq) {
			struct journal_record r;
			uint64_t n =
				record_check(buf + off, len - off, seq, &r);

			if (n == 0)
				break; /* the segment's end */
			off += n;
			seq++;
			if (r.seq >= from_seq && (rc = fn(ctx, &r)) != 0) {
				free(buf);
				return rc;
			}
		}
		free(buf);
	}
	return 0;
}

int
journal_prepare(struct journal *j, uint64_t max_bytes)
{
	static const uint8_t zeros[1 << 16];
	uint64_t end;
	int rc = 0;

	if (j->is_failed || (j->nspares > 0 && j->prep_fd < 0))
		return 0;
	if (j->prep_fd < 0) {
		j->prep_fd =
			openat(j->dir_fd, PREP_NAME,
			       O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (j->prep_fd < 0)
			return -errno;
		j->prep_off = 0;
	}
	end = j->prep_off + max_bytes < j->segment_bytes
		      ? j->prep_off + max_bytes
		      : j->segment_bytes;
	while (rc == 0 && j->prep_off < end) {
		size_t n = end - j->prep_off < sizeof(zeros)
				   ? (size_t)(end - j->prep_off)
				   : sizeof(zeros);

		rc = pwrite_all(j->prep_fd, zeros, n, j->prep_off);
		if (rc == 0)
			j->prep_off += n;
	}
	if (rc == 0 && j->prep_off < j->segment_bytes)
		return 1;
	if (rc == 0 && fdatasync(j->prep_fd) < 0)
		rc = -errno;
	if (rc == 0) {
		char name[64];

		snprintf(name, sizeof(name), "spare-%u.jrnl", j->nspares);
		if (renameat(j->dir_fd, PREP_NAME, j->dir_fd, name) < 0 ||
		    fsync(j->dir_fd) < 0)
			rc = -errno;
		else
			j->nspares++;
	}
	/* A failure (a full disk) drops the attempt; a later call tries
	 * again from the start. */
	close(j->prep_fd);
	j->prep_fd = -1;
	if (rc != 0)
		(void)unlinkat(j->dir_fd, PREP_NAME, 0);
	return rc;
}

int
journal_release(struct journal *j, uint64_t upto_seq)
{
	int n = 0;

	/* Segment 0 holds only records below its successor's first. */
	while (j->nsegs > 1 && j->segs[1].first_seq <= upto_seq) {
		seg_drop(j, 0, 1);
		j->unsynced_from = j->unsynced_from ? j->unsynced_from - 1 : 0;
		n++;
	}
	if (n > 0 && fsync(j->dir_fd) < 0)
		return -errno;
	return n;
}
