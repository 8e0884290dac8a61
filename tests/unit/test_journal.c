/*
 * Unit tests of broker/store/journal.c on real files in a fresh temporary
 * directory per test: what is synced comes back after a reopen, in order
 * and once; what was not synced, or was cut short, never does, not even
 * after the journal is written again over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/journal.h"
#include "tmpdir.h"

#define SEG_BYTES (64u * 1024u)

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/ringmq-journal-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
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

static struct journal *
open_journal(const struct fixture *f)
{
	struct journal *j = NULL;

	assert_int_equal(journal_open(f->dir, SEG_BYTES, 1, &j), 0);
	assert_non_null(j);
	return j;
}

/* The body of record seq: its length and bytes follow from seq. */
static uint32_t
body_of(uint64_t seq, char *buf, size_t size)
{
	uint32_t len = (uint32_t)((seq * 37) % 900);

	assert_true(len <= size);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (seq + i) % 26);
	return len;
}

static void
append_n(struct journal *j, uint64_t n)
{
	char body[1024];

	for (uint64_t i = 0; i < n; i++) {
		uint64_t want = journal_next_seq(j), got = 0;
		uint32_t len = body_of(want, body, sizeof(body));

		assert_int_equal(journal_append(j, 7, (uint16_t)(want % 5),
						body, len, &got),
				 0);
		assert_int_equal(got, want);
	}
}

/* What replay saw: each record checked against body_of. */
struct seen {
	uint64_t first, last, count;
};

static int
on_record(void *ctx, const struct journal_record *r)
{
	struct seen *s = ctx;
	char body[1024];
	uint32_t len = body_of(r->seq, body, sizeof(body));

	if (s->count == 0)
		s->first = r->seq;
	else
		assert_int_equal(r->seq, s->last + 1);
	s->last = r->seq;
	s->count++;
	assert_int_equal(r->epoch, 7);
	assert_int_equal(r->type, r->seq % 5);
	assert_int_equal(r->body_len, len);
	assert_memory_equal(r->body, body, len);
	return 0;
}

static struct seen
replay(struct journal *j, uint64_t from)
{
	struct seen s = { 0, 0, 0 };

	assert_int_equal(journal_replay(j, from, on_record, &s), 0);
	return s;
}

/* Path of the segment starting at first_seq. */
static void
seg_path(const struct fixture *f, uint64_t first_seq, char *out, size_t size)
{
	snprintf(out, size, "%s/%016llx.jrnl", f->dir,
		 (unsigned long long)first_seq);
}

static void
test_synced_records_come_back_in_order_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	struct seen s;

	assert_int_equal(journal_next_seq(j), 1);
	append_n(j, 500);
	assert_int_equal(journal_synced_seq(j), 0);
	assert_int_equal(journal_sync(j), 0);
	assert_int_equal(journal_synced_seq(j), 500);
	/* Spread over several segments of 64 KiB. */
	assert_true(journal_segments(j) > 2);
	journal_close(j);

	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 501);
	assert_int_equal(journal_synced_seq(j), 500);
	s = replay(j, 1);
	assert_int_equal(s.first, 1);
	assert_int_equal(s.last, 500);
	assert_int_equal(s.count, 500);
	s = replay(j, 321);
	assert_int_equal(s.first, 321);
	assert_int_equal(s.count, 180);
	/* Appending goes on from there. */
	append_n(j, 10);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(replay(j, 1).count, 510);
	journal_close(j);
}

static void
test_records_not_synced_are_gone_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);

	append_n(j, 20);
	assert_int_equal(journal_sync(j), 0);
	append_n(j, 5); /* never synced */
	assert_int_equal(replay(j, 1).count, 20);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 21);
	assert_int_equal(replay(j, 1).last, 20);
	journal_close(j);
}

/* Flips one byte of the journal's files at byte off of the segment that
 * starts at first_seq. */
static void
flip_byte(const struct fixture *f, uint64_t first_seq, off_t off)
{
	char path[128];
	unsigned char c;
	int fd;

	seg_path(f, first_seq, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* Byte offset of record seq in the first segment (records 1.. of
 * body_of's lengths). */
static off_t
offset_of(uint64_t seq)
{
	char body[1024];
	off_t off = JOURNAL_HEADER_BYTES;

	for (uint64_t s = 1; s < seq; s++)
		off += (off_t)((JOURNAL_RECORD_OVERHEAD +
				body_of(s, body, sizeof(body)) + 7) &
			       ~7u);
	return off;
}

/* A record cut short ends the journal there; the records written after
 * it never come back, even once new records are written over the cut
 * and the journal is opened again with fewer of them. */
static void
test_a_cut_record_ends_the_journal_and_nothing_after_returns(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	struct seen s;

	append_n(j, 40);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	/* Record 30 torn: its body's first byte wrong. */
	flip_byte(f, 1, offset_of(30) + JOURNAL_RECORD_OVERHEAD);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 30);
	s = replay(j, 1);
	assert_int_equal(s.last, 29);
	/* One new record 30, shorter or longer than the old one: the old
	 * 31.. must not follow it. */
	append_n(j, 1);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 31);
	s = replay(j, 1);
	assert_int_equal(s.count, 30);
	assert_int_equal(s.last, 30);
	journal_close(j);
}

static void
test_released_segments_become_spares_and_are_reused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	size_t before;
	char path[128];
	struct seen s;

	append_n(j, 600);
	assert_int_equal(journal_sync(j), 0);
	before = journal_segments(j);
	assert_true(before >= 4);
	/* Nothing below 1 to release, and the last is never released. */
	assert_int_equal(journal_release(j, 1), 0);
	assert_int_equal(journal_release(j, UINT64_MAX), (int)(before - 1));
	assert_int_equal(journal_segments(j), 1);
	snprintf(path, sizeof(path), "%s/spare-0.jrnl", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/spare-1.jrnl", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/spare-2.jrnl", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	/* Replay starts at the first kept record. */
	s = replay(j, 1);
	assert_true(s.first > 1);
	assert_int_equal(s.last, 600);
	/* New segments reuse the spares; their old records never count. */
	append_n(j, 300);
	assert_int_equal(journal_sync(j), 0);
	snprintf(path, sizeof(path), "%s/spare-0.jrnl", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 901);
	s = replay(j, 1);
	assert_int_equal(s.last, 900);
	assert_int_equal(s.count, 900 - s.first + 1);
	journal_close(j);
}

static void
test_a_half_made_last_segment_is_dropped_one_before_is_damage(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	char path[128];
	uint64_t next;
	int fd;

	append_n(j, 300);
	assert_int_equal(journal_sync(j), 0);
	next = journal_next_seq(j);
	journal_close(j);
	/* A segment whose header never made it to the disk. */
	seg_path(f, next, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SEG_BYTES), 0);
	close(fd);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), next);
	assert_int_equal(replay(j, 1).count, 300);
	journal_close(j);
	assert_int_not_equal(access(path, F_OK), 0);
	/* The first segment's header damaged: refused. */
	flip_byte(f, 1, 20);
	assert_int_equal(journal_open(f->dir, SEG_BYTES, 1, &j), -EIO);
	assert_null(j);
	/* Put it back, for the teardown's sake of a clean directory. */
	flip_byte(f, 1, 20);
	j = open_journal(f);
	journal_close(j);
}

static void
test_a_missing_segment_ends_the_journal_before_it(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	char path[128];
	uint64_t firsts[16];
	size_t n = 0;
	struct seen s;

	append_n(j, 400);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	/* The segment names, in order. */
	for (uint64_t seq = 1; seq <= 400 && n < 16; seq++) {
		seg_path(f, seq, path, sizeof(path));
		if (access(path, F_OK) == 0)
			firsts[n++] = seq;
	}
	assert_true(n >= 3);
	seg_path(f, firsts[1], path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), firsts[1]);
	s = replay(j, 1);
	assert_int_equal(s.last, firsts[1] - 1);
	assert_int_equal(journal_segments(j), 1);
	journal_close(j);
}

/* Segments after a cut hold records numbered like the ones to come: they
 * are deleted, never kept as spares, or a new segment made of one would
 * show its old records as new ones. */
static void
test_segments_after_a_cut_are_never_reused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	char path[128];
	uint64_t second = 0;

	while (journal_segments(j) < 3)
		append_n(j, 1);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	for (uint64_t seq = 2; second == 0; seq++) {
		seg_path(f, seq, path, sizeof(path));
		if (access(path, F_OK) == 0)
			second = seq;
	}
	/* The last record of the first segment cut short. */
	flip_byte(f, 1, offset_of(second - 1) + JOURNAL_RECORD_OVERHEAD);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), second - 1);
	assert_int_equal(journal_segments(j), 1);
	/* The same records again: the second one makes a new segment
	 * starting where the old second did; it is left unwritten. */
	append_n(j, 2);
	assert_int_equal(journal_segments(j), 2);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), second);
	journal_close(j);
}

/* A spare made ahead, a step at a time, becomes the next segment: the
 * same file (inode), renamed, so that filling a segment writes no new
 * file while confirms wait. One cut short is deleted at open. */
static void
test_a_spare_made_ahead_becomes_the_next_segment(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	char path[128], spare[128];
	struct stat st, sp;
	int steps = 0, rc;

	snprintf(spare, sizeof(spare), "%s/spare-0.jrnl", f->dir);
	while ((rc = journal_prepare(j, 16u * 1024u)) == 1)
		steps++;
	assert_int_equal(rc, 0);
	assert_int_equal(steps, SEG_BYTES / (16u * 1024u) - 1);
	assert_int_equal(stat(spare, &sp), 0);
	assert_int_equal(sp.st_size, SEG_BYTES);
	/* Ready: nothing more to do. */
	assert_int_equal(journal_prepare(j, 16u * 1024u), 0);
	while (journal_segments(j) < 2)
		append_n(j, 1);
	assert_int_equal(journal_sync(j), 0);
	assert_int_not_equal(stat(spare, &st), 0);
	seg_path(f, journal_next_seq(j) - 1, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_ino, sp.st_ino);
	/* One cut short: gone at the next open, and made again. */
	assert_int_equal(journal_prepare(j, 4096), 1);
	journal_close(j);
	snprintf(spare, sizeof(spare), "%s/spare-new.jrnl", f->dir);
	assert_int_equal(stat(spare, &st), 0);
	j = open_journal(f);
	assert_int_not_equal(stat(spare, &st), 0);
	assert_int_equal(replay(j, 1).count, journal_next_seq(j) - 1);
	journal_close(j);
}

static void
test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct journal *j = NULL;
	static char big[SEG_BYTES];

	assert_int_equal(journal_open(f->dir, 1000, 1, &j), -EINVAL);
	assert_int_equal(journal_open(f->dir, 4096, 1, &j), -EINVAL);
	j = open_journal(f);
	assert_int_equal(
		journal_append(j, 0, 0, big, JOURNAL_BODY_MAX + 1u, NULL),
		-EMSGSIZE);
	assert_int_equal(journal_append(j, 0, 0, big,
					SEG_BYTES - JOURNAL_HEADER_BYTES -
						JOURNAL_RECORD_OVERHEAD,
					NULL),
			 0);
	assert_int_equal(journal_sync(j), 0);
	/* An empty sync is nothing to do. */
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
}

/* A record larger than a segment gets a segment of its own size, and
 * the segments after it are of the usual size again. */
static int
on_big(void *ctx, const struct journal_record *r)
{
	uint64_t *n = ctx;

	if (r->body_len == 3 * SEG_BYTES) {
		const unsigned char *b = r->body;

		assert_int_equal(b[0], 0x5a);
		assert_int_equal(b[3 * SEG_BYTES - 1], 0x5a);
	}
	(*n)++;
	return 0;
}

static void
test_a_record_larger_than_a_segment_has_one_of_its_own(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);
	static unsigned char big[3 * SEG_BYTES];
	char path[128];
	struct stat st;
	uint64_t n = 0, seq = 0;

	memset(big, 0x5a, sizeof(big));
	append_n(j, 3);
	assert_int_equal(journal_append(j, 7, 0, big, sizeof(big), &seq), 0);
	/* More than the big segment's slack (under 4 KiB). */
	append_n(j, 20);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	seg_path(f, seq, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size >= sizeof(big));
	assert_true((uint64_t)st.st_size < sizeof(big) + 8192);
	for (uint64_t next = seq + 1;; next++) {
		assert_true(next <= seq + 20);
		seg_path(f, next, path, sizeof(path));
		if (stat(path, &st) == 0) {
			assert_int_equal(st.st_size, SEG_BYTES);
			break;
		}
	}
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 25);
	assert_int_equal(journal_replay(j, 1, on_big, &n), 0);
	assert_int_equal(n, 24);
	journal_close(j);
}

/* Records the caller's state already holds are dropped at open, and the
 * numbering goes on after that state, never below it. */
static void
test_open_numbers_on_from_the_state_the_caller_holds(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);

	append_n(j, 30);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	/* The state holds up to 29: record 30 is kept. */
	assert_int_equal(journal_open(f->dir, SEG_BYTES, 30, &j), 0);
	assert_int_equal(journal_first_seq(j), 1);
	assert_int_equal(journal_next_seq(j), 31);
	journal_close(j);
	/* The state holds more than the journal (a restored backup). */
	assert_int_equal(journal_open(f->dir, SEG_BYTES, 1000, &j), 0);
	assert_int_equal(journal_next_seq(j), 1000);
	assert_int_equal(journal_first_seq(j), 1000);
	assert_int_equal(replay(j, 1).count, 0);
	append_n(j, 2);
	assert_int_equal(journal_sync(j), 0);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_first_seq(j), 1000);
	assert_int_equal(replay(j, 1).count, 2);
	journal_close(j);
}

/* journal_write puts the records in the file: a later open (another
 * process, after a kill) finds them, though nothing synced them. */
static void
test_written_records_are_found_without_a_sync(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f);

	append_n(j, 12);
	assert_int_equal(journal_write(j), 0);
	assert_int_equal(journal_synced_seq(j), 0);
	journal_close(j);
	j = open_journal(f);
	assert_int_equal(journal_next_seq(j), 13);
	assert_int_equal(replay(j, 1).count, 12);
	journal_close(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_synced_records_come_back_in_order_after_reopen,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_records_not_synced_are_gone_after_reopen, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_cut_record_ends_the_journal_and_nothing_after_returns,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_released_segments_become_spares_and_are_reused,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_half_made_last_segment_is_dropped_one_before_is_damage,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_missing_segment_ends_the_journal_before_it,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_segments_after_a_cut_are_never_reused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_record_larger_than_a_segment_has_one_of_its_own,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_open_numbers_on_from_the_state_the_caller_holds,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_written_records_are_found_without_a_sync, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_spare_made_ahead_becomes_the_next_segment, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
