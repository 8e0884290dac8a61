/*
 * powercut_shim: preloaded into ringmqd by the power-cut test; powercut.h
 * says what it records and why. It watches the file named by
 * RINGMQ_POWERCUT_FILE (matched by device and inode, so any spelling of
 * its path counts) and, when RINGMQ_POWERCUT_WATCH_DIR names a directory,
 * every regular file opened in it (the broker's journal segments), each
 * with a state of its own; without RINGMQ_POWERCUT_DIR and
 * RINGMQ_POWERCUT_FILE the shim passes every call through untouched.
 *
 * RINGMQ_POWERCUT_DELAY_US (optional) makes every sync of a watched file
 * and every durable write to one wait that long first: a kill then lands
 * far more often while written pages wait for their sync, the moment a
 * power cut can tear.
 *
 * Calls that would change a file in ways the log cannot express
 * (truncate, fallocate, vectored positional writes) abort the broker with
 * a message: a model that silently missed a write would prove nothing.
 * Directory changes (a file made, renamed, deleted) are taken as durable
 * when they return: the journal syncs its directory after each.
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

#define FILES_MAX 256 /* watched files in one run */

/* fd_states[fd]: 0, or the watched file's index + 1, with FD_DSYNC when
 * the descriptor was opened O_DSYNC or O_SYNC. */
#define FD_DSYNC 0x8000u

struct pending {
	struct powercut_record rec;
	uint8_t *data; /* NULL for POWERCUT_ZEROS */
};

/* One watched file: its durable image and the log of its writes since
 * its last sync (powercut.h), in RINGMQ_POWERCUT_DIR. */
struct watched {
	dev_t dev;
	ino_t ino;
	int durable_fd, log_fd;
	struct pending *pend;
	size_t n_pend, cap_pend;
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
static const char *state_dir, *watch_dir;
static _Atomic unsigned short fd_states[FD_LIMIT];
static struct watched files[FILES_MAX];
static size_t n_files;
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
	state_dir = dir;
	watch_dir = getenv("RINGMQ_POWERCUT_WATCH_DIR");
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

/* The first open of a watched file in this process: what it holds now is
 * what the disk holds (the test put it there, or the broker just made it),
 * so its durable image starts as a copy. The data file's state is
 * "durable" and "log"; a file of the watched directory's is
 * "file-INODE.durable" and "file-INODE.log". Called with mu held. */
static struct watched *
start_file(int fd, const struct stat *st, bool is_data_file)
{
	uint8_t *buf = malloc(ZERO_CHUNK);
	char durable[4200], log[4200];
	struct watched *w;
	uint64_t off = 0;

	if (n_files == FILES_MAX) {
		errno = EMFILE;
		die("more watched files than the shim's table");
	}
	w = &files[n_files];
	if (is_data_file) {
		snprintf(durable, sizeof(durable), "%s/durable", state_dir);
		snprintf(log, sizeof(log), "%s/log", state_dir);
	} else {
		snprintf(durable, sizeof(durable), "%s/file-%llu.durable",
			 state_dir, (unsigned long long)st->st_ino);
		snprintf(log, sizeof(log), "%s/file-%llu.log", state_dir,
			 (unsigned long long)st->st_ino);
	}
	w->dev = st->st_dev;
	w->ino = st->st_ino;
	w->durable_fd = real.open(durable,
				  O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	w->log_fd = real.open(
		log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (buf == NULL || w->durable_fd < 0 || w->log_fd < 0)
		die("start");
	for (;;) {
		ssize_t n = pread(fd, buf, ZERO_CHUNK, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("copy the file");
		if (n == 0)
			break;
		pwrite_all(w->durable_fd, buf, (size_t)n, off);
		off += (uint64_t)n;
	}
	free(buf);
	n_files++;
	return w;
}

/* Whether the directory dirfd (or the one of path, for AT_FDCWD) is the
 * watched directory. */
static bool
is_in_watch_dir(int dirfd, const char *path)
{
	struct stat d, want;
	char parent[4096];
	const char *slash;

	if (watch_dir == NULL || stat(watch_dir, &want) != 0)
		return false;
	if (dirfd != AT_FDCWD && path[0] != '/')
		return fstat(dirfd, &d) == 0 && d.st_dev == want.st_dev &&
		       d.st_ino == want.st_ino;
	slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else
		snprintf(parent, sizeof(parent), "%.*s",
			 (int)(slash - path) > 0 ? (int)(slash - path) : 1,
			 path);
	return stat(parent, &d) == 0 && d.st_dev == want.st_dev &&
	       d.st_ino == want.st_ino;
}

static void
watch_if_file(int fd, int flags, int dirfd, const char *path)
{
	struct stat fst, want;
	bool is_data_file, is_journal;
	struct watched *w = NULL;

	if (fd < 0 || !is_enabled || fstat(fd, &fst) != 0 ||
	    !S_ISREG(fst.st_mode))
		return;
	is_data_file = stat(getenv("RINGMQ_POWERCUT_FILE"), &want) == 0 &&
		       fst.st_dev == want.st_dev && fst.st_ino == want.st_ino;
	is_journal = !is_data_file && is_in_watch_dir(dirfd, path);
	if (!is_data_file && !is_journal)
		return;
	if (fd >= FD_LIMIT) {
		errno = EMFILE;
		die("descriptor beyond the shim's table");
	}
	/* A journal segment is made with O_TRUNC: new, its image starts
	 * empty. The data file is never truncated by LMDB. */
	if ((flags & O_APPEND) || (is_data_file && (flags & O_TRUNC))) {
		errno = EINVAL;
		die("a watched file opened with O_TRUNC or O_APPEND");
	}
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n_files && w == NULL; i++)
		if (files[i].dev == fst.st_dev && files[i].ino == fst.st_ino)
			w = &files[i];
	if (w != NULL && (flags & O_TRUNC)) {
		/* Made anew on an inode a deleted file had: empty. */
		for (size_t i = 0; i < w->n_pend; i++)
			free(w->pend[i].data);
		w->n_pend = 0;
		if (ftruncate(w->durable_fd, 0) != 0 ||
		    ftruncate(w->log_fd, 0) != 0)
			die("reset a watched file");
	}
	if (w == NULL)
		w = start_file(fd, &fst, is_data_file);
	pthread_mutex_unlock(&mu);
	fd_states[fd] = (unsigned short)((size_t)(w - files) + 1) |
			((flags & O_DSYNC) ? FD_DSYNC : 0);
}

/* 0 for a descriptor not watched, else its fd_states value. */
static unsigned
state_of(int fd)
{
	ensure_init();
	if (!is_enabled || fd < 0 || fd >= FD_LIMIT)
		return 0;
	return fd_states[fd];
}

static struct watched *
file_of(unsigned st)
{
	return &files[(st & ~FD_DSYNC) - 1];
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
record_write(unsigned st, const struct iovec *iov, int iovcnt, uint64_t off,
	     size_t n)
{
	struct watched *w = file_of(st);
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
	if (st & FD_DSYNC)
		p.rec.kind |= POWERCUT_DURABLE;

	pthread_mutex_lock(&mu);
	if (w->n_pend == w->cap_pend) {
		size_t cap = w->cap_pend ? 2 * w->cap_pend : 256;
		struct pending *np = realloc(w->pend, cap * sizeof(*np));

		if (np == NULL)
			die("realloc");
		w->pend = np;
		w->cap_pend = cap;
	}
	w->pend[w->n_pend++] = p;
	write_all(w->log_fd, &p.rec, sizeof(p.rec));
	if (p.data != NULL)
		write_all(w->log_fd, p.data, n);
	pthread_mutex_unlock(&mu);
}

/* The file is synced: mark it, fold the log into durable, empty the log. */
static void
record_sync(int fd, unsigned state)
{
	struct powercut_record mark = { .magic = POWERCUT_MAGIC,
					.kind = POWERCUT_SYNC };
	struct watched *w = file_of(state);
	struct stat st;

	if (fstat(fd, &st) != 0)
		die("fstat");
	mark.off = (uint64_t)st.st_size;
	pthread_mutex_lock(&mu);
	write_all(w->log_fd, &mark, sizeof(mark));
	for (size_t i = 0; i < w->n_pend; i++) {
		struct pending *p = &w->pend[i];

		if (p->data != NULL)
			pwrite_all(w->durable_fd, p->data, p->rec.len,
				   p->rec.off);
		else
			pwrite_zeros(w->durable_fd, p->rec.len, p->rec.off);
		free(p->data);
	}
	w->n_pend = 0;
	if (ftruncate(w->durable_fd, (off_t)mark.off) != 0 ||
	    ftruncate(w->log_fd, 0) != 0)
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
	watch_if_file(fd, flags, dirfd, path);
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
	if (state_of(fd) != 0)
		fd_states[fd] = 0;
	return real.close(fd);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	unsigned st = state_of(fd);
	ssize_t n;

	if (st & FD_DSYNC)
		delay();
	n = real.pwrite(fd, buf, len, off);

	if (st != 0 && n > 0) {
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
	unsigned st = state_of(fd);
	off_t off = st != 0 ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t n = real.write(fd, buf, len);

	if (st != 0 && n > 0) {
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
	unsigned st = state_of(fd);
	off_t off = st != 0 ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t n = real.writev(fd, iov, iovcnt);

	if (st != 0 && n > 0) {
		if (off < 0)
			die("lseek");
		record_write(st, iov, iovcnt, (uint64_t)off, (size_t)n);
	}
	return n;
}

int
fdatasync(int fd)
{
	unsigned st = state_of(fd);
	int rc;

	if (st != 0)
		delay();
	rc = real.fdatasync(fd);

	if (st != 0 && rc == 0)
		record_sync(fd, st);
	return rc;
}

int
fsync(int fd)
{
	unsigned st = state_of(fd);
	int rc;

	if (st != 0)
		delay();
	rc = real.fsync(fd);

	if (st != 0 && rc == 0)
		record_sync(fd, st);
	return rc;
}

#define REFUSED_ON_FILE(ret, name, params, args)                            \
	ret name params                                                     \
	{                                                                   \
		ret(*next) params = (ret(*) params)dlsym(RTLD_NEXT, #name); \
		if (state_of(fd) != 0)                                      \
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
