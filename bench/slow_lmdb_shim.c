/*
 * slow_lmdb_shim: preloaded into ringmqd by scripts/bench-replay to make
 * LMDB's durable commits slow while the journal's syncs stay fast, so
 * that LMDB falls behind the journal until the journal's bound
 * (journal-max-bytes) holds writes back: the worst case a restart after
 * kill -9 has to replay. Every fdatasync or fsync of a file whose name
 * ends in "data.mdb" first sleeps RINGMQ_SLOW_LMDB_SYNC_MS (default 2000).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
is_lmdb_data(int fd)
{
	static const char suffix[] = "data.mdb";
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < (ssize_t)(sizeof(suffix) - 1))
		return 0;
	path[n] = '\0';
	return strcmp(path + n - (sizeof(suffix) - 1), suffix) == 0;
}

static void
slow_down(int fd)
{
	const char *ms = getenv("RINGMQ_SLOW_LMDB_SYNC_MS");
	long wait_ms = ms != NULL ? strtol(ms, NULL, 10) : 2000;
	struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000 };

	if (wait_ms > 0 && is_lmdb_data(fd))
		nanosleep(&ts, NULL);
}

int
fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	slow_down(fd);
	return real(fd);
}

int
fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	slow_down(fd);
	return real(fd);
}
