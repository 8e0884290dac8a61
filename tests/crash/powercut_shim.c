/*
 * powercut_shim: preloaded into ringmqd by the power-cut test; powercut.h
 * says what it records and why. Only the file named by
 * RINGMQ_POWERCUT_FILE is watched (matched by device and inode, so any
 * spelling of its path counts); without RINGMQ_POWERCUT_DIR and
 * RINGMQ_POWERCUT_FILE the shim passes every call through untouched.
 *
 * RINGMQ_POWERCUT_DELAY_US (optional) makes every sync of the file and
 * every durable write to it wait that long first: a kill then lands far
 * more often while written pages wait for their sync, the moment a power
 * cut can tear.
 *
 * Calls that would change the file in ways the log cannot express
 * (truncate, fallocate, vectored positional writes) abort the broker with
 * a message: a model that silently missed a write would prove nothing.
 */
#define _GNU_SOURCE
/* The build asks for 64-bit offsets, which renames open to open64 in the
 * headers; this file defines both names itself (off_t is 64-bit here
 * either way). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "powercut.h"

#define FD_LIMIT   65536
#define ZERO_CHUNK (256u << 10)

enum fd_state { FD_OTHER = 0, FD_WATCHED = 1, FD_WATCHED_DSYNC = 2 };

struct pending {
	struct powercut_record rec;
	uint8_t *data; /* NULL for POWERCUT_ZEROS */
};

static struct {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*close)(int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*fdatasync)(int);
	int (*fsync)(int);
} real;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool is_enabled;
static long delay_us;
static char durable_path[4096], log_path[4096];
static int durable_fd = -1, log_fd = -1;
static bool is_started; /* durable copied from the file this run */
static _Atomic unsigned char fd_states[FD_LIMIT];
static struct pending *pend;
static size_t n_pend, cap_pend;
static const uint8_t zeros[ZERO_CHUNK];

static void
die(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "powercut_shim: %s: %s\n", what,
			 strerror(errno));

	if (n > 0)
		(void)!real.write(2, msg, (size_t)n);
	abort();
}

static void
init(void)
{
	const char *dir = getenv("RINGMQ_POWERCUT_DIR");

	real.open = dlsym(RTLD_NEXT, "open");
	real.openat = dlsym(RTLD_NEXT, "openat");
	real.close = dlsym(RTLD_NEXT, "close");
	real.write = dlsym(RTLD_NEXT, "write");
	real.writev = dlsym(RTLD_NEXT, "writev");
	real.pwrite = dlsym(RTLD_NEXT, "pwrite");
	real.fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real.fsync = dlsym(RTLD_NEXT, "fsync");
	if (!real.open || !real.openat || !real.close || !real.write ||
	    !real.writev || !real.pwrite || !real.fdatasync || !real.fsync)
		abort();
	if (dir == NULL || getenv("RINGMQ_POWERCUT_FILE") == NULL)
		return;
	if (getenv("RINGMQ_POWERCUT_DELAY_US") != NULL)
		delay_us = atol(getenv("RINGMQ_POWERCUT_DELAY_US"));
	snprintf(durable_path, sizeof(durable_path), "%s/durable", dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	is_enabled = true;
}

static void
ensure_init(void)
{
	(void)pthread_once(&init_once, init);
}

static void
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = real.write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write log");
		p += n;
		len -= (size_t)n;
	}
}

static void
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = real.pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write durable image");
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
}

static void
pwrite_zeros(int fd, uint64_t len, uint64_t off)
{
	while (len > 0) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;

		pwrite_all(fd, zeros, n, off);
		len -= n;
		off += n;
	}
}

/* The first open of the file in this process: what it holds now is what
 * the disk holds (the test put it there), so durable starts as a copy. */
static void
start_run(void)
{
	uint8_t *buf = malloc(ZERO_CHUNK);
	uint64_t off = 0;
	int fd =
		real.open(getenv("RINGMQ_POWERCUT_FILE"), O_RDONLY | O_CLOEXEC);

	durable_fd = real.open(durable_path,
			       O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	log_fd = real.open(log_path,
			   O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			   0600);
	if (buf == NULL || fd < 0 || durable_fd < 0 || log_fd < 0)
		die("start");
	for (;;) {
		ssize_t n = pread(fd, buf, ZERO_CHUNK, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("copy the file");
		if (n == 0)
			break;
		pwrite_all(durable_fd, buf, (size_t)n, off);
		off += (uint64_t)n;
	}
	free(buf);
	(void)real.close(fd);
	is_started = true;
}

static void
watch_if_file(int fd, int flags)
{
	struct stat fst, want;

	if (fd < 0 || !is_enabled)
		return;
	if (fstat(fd, &fst) != 0 ||
	    stat(getenv("RINGMQ_POWERCUT_FILE"), &want) != 0 ||
	    fst.st_dev != want.st_dev || fst.st_ino != want.st_ino)
		return;
	if (fd >= FD_LIMIT) {
		errno = EMFILE;
		die("descriptor beyond the shim's table");
	}
	if (flags & (O_TRUNC | O_APPEND)) {
		errno = EINVAL;
		die("the file opened with O_TRUNC or O_APPEND");
	}
	pthread_mutex_lock(&mu);
	if (!is_started)
		start_run();
	pthread_mutex_unlock(&mu);
	fd_states[fd] = (flags & O_DSYNC) ? FD_WATCHED_DSYNC : FD_WATCHED;
}

static enum fd_state
state_of(int fd)
{
	ensure_init();
	if (!is_enabled || fd < 0 || fd >= FD_LIMIT)
		return FD_OTHER;
	return (enum fd_state)fd_states[fd];
}

static bool
is_all_zero(const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = len < ZERO_CHUNK ? len : ZERO_CHUNK;

		if (memcmp(p, zeros, n) != 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/* Logs n bytes (from iov) written at off; called after the real write. */
static void
record_write(enum fd_state st, const struct iovec *iov, int iovcnt,
	     uint64_t off, size_t n)
{
	struct pending p = { .rec = { .magic = POWERCUT_MAGIC,
				      .kind = POWERCUT_WRITE,
				      .off = off,
				      .len = n } };
	size_t got = 0;

	p.data = malloc(n ? n : 1);
	if (p.data == NULL)
		die("malloc");
	for (int i = 0; i < iovcnt && got < n; i++) {
		size_t take =
			iov[i].iov_len < n - got ? iov[i].iov_len : n - got;

		memcpy(p.data + got, iov[i].iov_base, take);
		got += take;
	}
	if (is_all_zero(p.data, n)) {
		free(p.data);
		p.data = NULL;
		p.rec.kind = POWERCUT_ZEROS;
	}
	if (st == FD_WATCHED_DSYNC)
		p.rec.kind |= POWERCUT_DURABLE;

	pthread_mutex_lock(&mu);
	if (n_pend == cap_pend) {
		size_t cap = cap_pend ? 2 * cap_pend : 256;
		struct pending *np = realloc(pend, cap * sizeof(*np));

		if (np == NULL)
			die("realloc");
		pend = np;
		cap_pend = cap;
	}
	pend[n_pend++] = p;
	write_all(log_fd, &p.rec, sizeof(p.rec));
	if (p.data != NULL)
		write_all(log_fd, p.data, n);
	pthread_mutex_unlock(&mu);
}

/* The file is synced: mark it, fold the log into durable, empty the log. */
static void
record_sync(int fd)
{
	struct powercut_record mark = { .magic = POWERCUT_MAGIC,
					.kind = POWERCUT_SYNC };
	struct stat st;

	if (fstat(fd, &st) != 0)
		die("fstat");
	mark.off = (uint64_t)st.st_size;
	pthread_mutex_lock(&mu);
	write_all(log_fd, &mark, sizeof(mark));
	for (size_t i = 0; i < n_pend; i++) {
		struct pending *p = &pend[i];

		if (p->data != NULL)
			pwrite_all(durable_fd, p->data, p->rec.len, p->rec.off);
		else
			pwrite_zeros(durable_fd, p->rec.len, p->rec.off);
		free(p->data);
	}
	n_pend = 0;
	if (ftruncate(durable_fd, (off_t)mark.off) != 0 ||
	    ftruncate(log_fd, 0) != 0)
		die("fold the log");
	pthread_mutex_unlock(&mu);
}

/* Waits delay_us before a sync or durable write of the file. */
static void
delay(void)
{
	struct timespec ts = { .tv_sec = delay_us / 1000000,
			       .tv_nsec = (delay_us % 1000000) * 1000 };

	if (delay_us > 0)
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
}

static void
refuse(const char *call)
{
	errno = ENOTSUP;
	die(call);
}

/* ------------------------------------------------------ interposed calls */

/* The mode argument of open and openat, present when flags create. */
#define MODE_ARG(flags, mode)                          \
	do {                                           \
		if ((flags) & (O_CREAT | O_TMPFILE)) { \
			va_list ap;                    \
			va_start(ap, flags);           \
			(mode) = va_arg(ap, mode_t);   \
			va_end(ap);                    \
		}                                      \
	} while (0)

static int
open_at(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd;

	ensure_init();
	fd = dirfd == AT_FDCWD ? real.open(path, flags, mode)
			       : real.openat(dirfd, path, flags, mode);
	watch_if_file(fd, flags);
	return fd;
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return open_at(AT_FDCWD, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return open_at(AT_FDCWD, path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return open_at(dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return open_at(dirfd, path, flags, mode);
}

int
close(int fd)
{
	if (state_of(fd) != FD_OTHER)
		fd_states[fd] = FD_OTHER;
	return real.close(fd);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	enum fd_state st = state_of(fd);
	ssize_t n;

	if (st == FD_WATCHED_DSYNC)
		delay();
	n = real.pwrite(fd, buf, len, off);

	if (st != FD_OTHER && n > 0) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

		record_write(st, &iov, 1, (uint64_t)off, (size_t)n);
	}
	return n;
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	return pwrite(fd, buf, len, (off_t)off);
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	enum fd_state st = state_of(fd);
	off_t off = st != FD_OTHER ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t n = real.write(fd, buf, len);

	if (st != FD_OTHER && n > 0) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

		if (off < 0)
			die("lseek");
		record_write(st, &iov, 1, (uint64_t)off, (size_t)n);
	}
	return n;
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	enum fd_state st = state_of(fd);
	off_t off = st != FD_OTHER ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t n = real.writev(fd, iov, iovcnt);

	if (st != FD_OTHER && n > 0) {
		if (off < 0)
			die("lseek");
		record_write(st, iov, iovcnt, (uint64_t)off, (size_t)n);
	}
	return n;
}

int
fdatasync(int fd)
{
	enum fd_state st = state_of(fd);
	int rc;

	if (st != FD_OTHER)
		delay();
	rc = real.fdatasync(fd);

	if (st != FD_OTHER && rc == 0)
		record_sync(fd);
	return rc;
}

int
fsync(int fd)
{
	enum fd_state st = state_of(fd);
	int rc;

	if (st != FD_OTHER)
		delay();
	rc = real.fsync(fd);

	if (st != FD_OTHER && rc == 0)
		record_sync(fd);
	return rc;
}

#define REFUSED_ON_FILE(ret, name, params, args)                            \
	ret name params                                                     \
	{                                                                   \
		ret(*next) params = (ret(*) params)dlsym(RTLD_NEXT, #name); \
		if (state_of(fd) != FD_OTHER)                               \
			refuse(#name);                                      \
		return next args;                                           \
	}

REFUSED_ON_FILE(int, ftruncate, (int fd, off_t len), (fd, len))
REFUSED_ON_FILE(int, fallocate, (int fd, int mode, off_t off, off_t len),
		(fd, mode, off, len))
REFUSED_ON_FILE(int, posix_fallocate, (int fd, off_t off, off_t len),
		(fd, off, len))
REFUSED_ON_FILE(ssize_t, pwritev,
		(int fd, const struct iovec *iov, int n, off_t off),
		(fd, iov, n, off))
REFUSED_ON_FILE(ssize_t, pwritev2,
		(int fd, const struct iovec *iov, int n, off_t off, int fl),
		(fd, iov, n, off, fl))
REFUSED_ON_FILE(ssize_t, copy_file_range,
		(int fd_in, off_t *oin, int fd, off_t *oout, size_t len,
		 unsigned fl),
		(fd_in, oin, fd, oout, len, fl))
REFUSED_ON_FILE(int, ftruncate64, (int fd, off64_t len), (fd, len))
REFUSED_ON_FILE(int, fallocate64, (int fd, int mode, off64_t off, off64_t len),
		(fd, mode, off, len))
REFUSED_ON_FILE(int, posix_fallocate64, (int fd, off64_t off, off64_t len),
		(fd, off, len))
REFUSED_ON_FILE(ssize_t, pwritev64,
		(int fd, const struct iovec *iov, int n, off64_t off),
		(fd, iov, n, off))
REFUSED_ON_FILE(ssize_t, pwritev64v2,
		(int fd, const struct iovec *iov, int n, off64_t off, int fl),
		(fd, iov, n, off, fl))
