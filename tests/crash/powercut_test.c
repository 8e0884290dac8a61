/*
 * powercut_test: the power-cut shim and image builder (powercut.h) on a
 * file whose writes and syncs are known, so that the crash test's power
 * cuts are what they claim to be.
 *
 * A child, run with the shim preloaded, writes five pages through the
 * calls LMDB and the broker use (pwrite, lseek + writev, an O_DSYNC
 * descriptor, fdatasync, fsync) and kills itself. The images built from
 * what the shim kept must hold exactly the synced and durable writes when
 * nothing else reached the disk, every write when everything did, and a
 * mix page by page otherwise; a log cut inside a record loses only that
 * record. A truncate of the watched file must stop the child.
 *
 * Page p holds the byte of its last write:
 *   0: 'A' then fdatasync, 'C' then fsync, 'F' not synced
 *   1: 'B' by lseek + writev, then fdatasync
 *   2: 'D' through an O_DSYNC descriptor, then 'E' not synced
 *   3-5: zeros, not synced
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "powercut.h"

#define PAGE	  POWERCUT_PAGE_BYTES
#define SOME_RUNS 64

static int failures;

#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "powercut_test:%d: ", __LINE__); \
			fprintf(stderr, __VA_ARGS__);                    \
			fputc('\n', stderr);                             \
			failures++;                                      \
		}                                                        \
	} while (0)

static void
must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "powercut_test: writer: %s: %s\n", what,
			strerror(errno));
		_exit(3);
	}
}

static void
put_page(int fd, char c, off_t off)
{
	char buf[PAGE];

	memset(buf, c, sizeof(buf));
	must(pwrite(fd, buf, sizeof(buf), off) == (ssize_t)sizeof(buf),
	     "pwrite");
}

/* Runs under the shim: the writes of the table above, then SIGKILL. */
static int
writer(const char *path)
{
	char b[PAGE];
	struct iovec iov[2] = { { b, PAGE / 2 }, { b + PAGE / 2, PAGE / 2 } };
	static const char zeros[3 * PAGE];
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), dfd;

	must(fd >= 0, "open");
	put_page(fd, 'A', 0);
	memset(b, 'B', sizeof(b));
	must(lseek(fd, PAGE, SEEK_SET) == PAGE, "lseek");
	must(writev(fd, iov, 2) == PAGE, "writev");
	must(fdatasync(fd) == 0, "fdatasync");
	put_page(fd, 'C', 0);
	must(fsync(fd) == 0, "fsync");
	put_page(fd, 'F', 0);
	must(pwrite(fd, zeros, sizeof(zeros), 3 * PAGE) ==
		     (ssize_t)sizeof(zeros),
	     "pwrite zeros");
	dfd = open(path, O_WRONLY | O_DSYNC | O_CLOEXEC);
	must(dfd >= 0, "open O_DSYNC");
	put_page(dfd, 'D', 2 * PAGE);
	put_page(fd, 'E', 2 * PAGE);
	kill(getpid(), SIGKILL);
	return 3;
}

/* Runs under the shim: a truncate of the watched file, which it refuses. */
static int
truncator(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	must(fd >= 0, "open");
	(void)!ftruncate(fd, PAGE);
	return 0; /* not reached when the shim is preloaded */
}

/* Runs this program as role with the shim preloaded; @return the status
 * from waitpid, or -1. */
static int
run_child(const char *role, const char *shim, const char *state,
	  const char *path)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		setenv("LD_PRELOAD", shim, 1);
		setenv("RINGMQ_POWERCUT_DIR", state, 1);
		setenv("RINGMQ_POWERCUT_FILE", path, 1);
		execl("/proc/self/exe", "powercut_test", role, path,
		      (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* Page p of the image, or '?' when the file ends before it, or 'x' when
 * the page is not all one byte. */
static char
page_of(const char *path, int p)
{
	unsigned char buf[PAGE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, buf, PAGE, (off_t)p * PAGE) : -1;

	if (fd >= 0)
		close(fd);
	if (n != PAGE)
		return '?';
	for (size_t i = 1; i < PAGE; i++)
		if (buf[i] != buf[0])
			return 'x';
	return buf[0] == 0 ? '0' : (char)buf[0];
}

static long long
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void
check_image(const char *state, const char *image, const char *want,
	    long long want_size, enum powercut_flavour f, int want_torn)
{
	struct powercut_stats st;
	uint64_t rng = 1;

	CHECK(powercut_image(state, image, f, &rng, &st) == 0,
	      "image (flavour %d)", (int)f);
	for (int p = 0; want[p]; p++)
		CHECK(page_of(image, p) == want[p],
		      "flavour %d: page %d holds '%c', want '%c'", (int)f, p,
		      page_of(image, p), want[p]);
	CHECK(size_of(image) == want_size, "flavour %d: size %lld, want %lld",
	      (int)f, size_of(image), want_size);
	CHECK(st.is_torn == want_torn, "flavour %d: torn %d, want %d", (int)f,
	      st.is_torn, want_torn);
	CHECK(st.durable_writes == 1, "flavour %d: %llu durable writes", (int)f,
	      (unsigned long long)st.durable_writes);
}

int
main(int argc, char **argv)
{
	const char *shim = getenv("RINGMQ_POWERCUT_SHIM");
	char dir[] = "/tmp/ringmq-test-XXXXXX", state[64], path[64], image[64],
	     logp[80], cmd[128];
	int status, seen_p0[2] = { 0, 0 }, seen_p2[2] = { 0, 0 };
	struct stat st;

	if (argc == 3 && strcmp(argv[1], "--writer") == 0)
		return writer(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--truncate") == 0)
		return truncator(argv[2]);
	if (shim == NULL || mkdtemp(dir) == NULL) {
		fprintf(stderr, "powercut_test: needs RINGMQ_POWERCUT_SHIM "
				"and a writable /tmp\n");
		return 1;
	}
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	snprintf(image, sizeof(image), "%s/image", dir);
	snprintf(logp, sizeof(logp), "%s/log", state);
	if (mkdir(state, 0700) != 0)
		return 1;

	status = run_child("--writer", shim, state, path);
	CHECK(status != -1 && WIFSIGNALED(status) &&
		      WTERMSIG(status) == SIGKILL,
	      "the writer did not reach its end (status %d)", status);

	check_image(state, image, "CBD", 3 * PAGE, POWERCUT_KEEP_NONE, 0);
	check_image(state, image, "FBE000", 6 * PAGE, POWERCUT_KEEP_ALL, 0);
	for (uint64_t seed = 1; seed <= SOME_RUNS; seed++) {
		struct powercut_stats ps;
		uint64_t rng = seed;
		char p0, p2;

		CHECK(powercut_image(state, image, POWERCUT_KEEP_SOME, &rng,
				     &ps) == 0,
		      "image (some)");
		p0 = page_of(image, 0);
		p2 = page_of(image, 2);
		CHECK(p0 == 'C' || p0 == 'F', "some: page 0 holds '%c'", p0);
		CHECK(page_of(image, 1) == 'B', "some: page 1 lost");
		CHECK(p2 == 'D' || p2 == 'E', "some: page 2 holds '%c'", p2);
		seen_p0[p0 == 'F']++;
		seen_p2[p2 == 'E']++;
	}
	CHECK(seen_p0[0] && seen_p0[1] && seen_p2[0] && seen_p2[1],
	      "some: pages kept %d/%d and %d/%d times: not at random",
	      seen_p0[1], SOME_RUNS, seen_p2[1], SOME_RUNS);

	/* A log cut inside its last record ('E'): that write is lost. */
	CHECK(stat(logp, &st) == 0 && truncate(logp, st.st_size - 100) == 0,
	      "cut the log");
	check_image(state, image, "FBD000", 6 * PAGE, POWERCUT_KEEP_ALL, 1);

	status = run_child("--truncate", shim, state, path);
	CHECK(status != -1 && WIFSIGNALED(status) &&
		      WTERMSIG(status) == SIGABRT,
	      "a truncate of the watched file was not refused (status %d)",
	      status);

	if (failures == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "powercut_test: could not remove %s\n",
				dir);
		printf("powercut_test: ok\n");
		return 0;
	}
	fprintf(stderr, "powercut_test: %d failures; files kept in %s\n",
		failures, dir);
	return 1;
}
