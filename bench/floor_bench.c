/*
 * floor_bench.c: the floor under ringmq's publish->confirm latency, for the
 * target in docs/benchmarks.md: the p50 of a synced LMDB commit holding
 * one 256-byte put (default flags, so mdb_txn_commit fsyncs), and the p50
 * of a TCP round trip over loopback (64 bytes, TCP_NODELAY). A durable
 * publish cannot be confirmed faster than one of each. For comparison it
 * also times a 272-byte record appended to a log file and synced with
 * fdatasync, once on a file written ahead (preallocated) and once on a
 * growing one: what a commit with a single sync would cost.
 *
 *   cc -O2 -pthread -o floor-bench bench/floor_bench.c bench/hist.c \
 *      -llmdb -lm
 *   floor-bench DIR [COUNT]     DIR: an empty directory on the disk to test
 */
#define FLOOR_PROG "floor-bench"
#include "floor.h"
#include "hist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void
lmdb_commits(const char *dir, unsigned count, struct hist *h)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	char value[256];

	memset(value, 'v', sizeof(value));
	lmdb_open(dir, 1ull << 30, &env, &dbi);
	for (unsigned i = 0; i < count + 100; i++) {
		uint64_t key = __builtin_bswap64(i); /* big-endian: appends */
		MDB_val k = { sizeof(key), &key }, v = { sizeof(value), value };
		uint64_t t0 = now_ns();

		check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
		check(mdb_put(txn, dbi, &k, &v, 0), "mdb_put");
		check(mdb_txn_commit(txn), "mdb_txn_commit");
		if (i >= 100) /* warm-up */
			hist_add(h, now_ns() - t0);
	}
	mdb_env_close(env);
}

/* Appends count + 100 records of 272 bytes to DIR/NAME, each followed by
 * fdatasync; with is_ahead, the file is first written with zeros past
 * every record, so no sync has to record the file's growth. */
static void
log_syncs(const char *dir, const char *name, int is_ahead, unsigned count,
	  struct hist *h)
{
	static char zeros[1 << 16];
	char path[4096], rec[272];
	uint64_t total = (uint64_t)(count + 100) * sizeof(rec);
	int fd;

	memset(rec, 'r', sizeof(rec));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	check(fd < 0 ? -1 : 0, "open log");
	for (uint64_t off = 0; is_ahead && off < total; off += sizeof(zeros))
		check(pwrite(fd, zeros, sizeof(zeros), (off_t)off) ==
				      (ssize_t)sizeof(zeros)
			      ? 0
			      : -1,
		      "pwrite zeros");
	check(fdatasync(fd), "fdatasync");
	for (unsigned i = 0; i < count + 100; i++) {
		uint64_t t0 = now_ns();

		check(pwrite(fd, rec, sizeof(rec), (off_t)i * sizeof(rec)) ==
				      (ssize_t)sizeof(rec)
			      ? 0
			      : -1,
		      "pwrite record");
		check(fdatasync(fd), "fdatasync");
		if (i >= 100) /* warm-up */
			hist_add(h, now_ns() - t0);
	}
	close(fd);
	unlink(path);
}

static void *
echo_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[64];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0 || write(fd, buf, (size_t)n) != n)
			break;
	}
	close(fd);
	return NULL;
}

static void
read_full(int fd, char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);

		if (n <= 0) {
			check(-1, "read");
		}
		off += (size_t)n;
	}
}

static void
loopback_rtts(unsigned count, struct hist *h)
{
	struct sockaddr_in a = { 0 };
	socklen_t alen = sizeof(a);
	int one = 1, lfd, cfd, sfd;
	pthread_t t;
	char buf[64];

	memset(buf, 'p', sizeof(buf));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	check(lfd < 0 ? -1 : 0, "socket");
	check(bind(lfd, (struct sockaddr *)&a, sizeof(a)), "bind");
	check(listen(lfd, 1), "listen");
	check(getsockname(lfd, (struct sockaddr *)&a, &alen), "getsockname");
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	check(connect(cfd, (struct sockaddr *)&a, sizeof(a)), "connect");
	sfd = accept(lfd, NULL, NULL);
	check(sfd < 0 ? -1 : 0, "accept");
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	check(pthread_create(&t, NULL, echo_main, &sfd), "pthread_create");
	for (unsigned i = 0; i < count + 100; i++) {
		uint64_t t0 = now_ns();

		check(write(cfd, buf, sizeof(buf)) == sizeof(buf) ? 0 : -1,
		      "write");
		read_full(cfd, buf, sizeof(buf));
		if (i >= 100)
			hist_add(h, now_ns() - t0);
	}
	close(cfd);
	pthread_join(t, NULL);
	close(lfd);
}

int
main(int argc, char **argv)
{
	struct hist lmdb, rtt, log_ahead, log_grow;
	unsigned count = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
	double floor_us;

	if (argc < 2) {
		fprintf(stderr, "usage: floor-bench DIR [COUNT]\n");
		return 1;
	}
	hist_init(&lmdb);
	hist_init(&rtt);
	hist_init(&log_ahead);
	hist_init(&log_grow);
	lmdb_commits(argv[1], count, &lmdb);
	log_syncs(argv[1], "log-ahead", 1, count, &log_ahead);
	log_syncs(argv[1], "log-grow", 0, count, &log_grow);
	loopback_rtts(count * 10, &rtt);
	floor_us = hist_quantile_us(&lmdb, 0.5) + hist_quantile_us(&rtt, 0.5);
	printf("synced LMDB commit, one 256-byte put: p50 %.0f us, p99 %.0f "
	       "us (%u commits)\n",
	       hist_quantile_us(&lmdb, 0.5), hist_quantile_us(&lmdb, 0.99),
	       count);
	printf("synced log append, 272 bytes: p50 %.0f us, p99 %.0f us on a "
	       "file written ahead; p50 %.0f us, p99 %.0f us on a growing "
	       "one\n",
	       hist_quantile_us(&log_ahead, 0.5),
	       hist_quantile_us(&log_ahead, 0.99),
	       hist_quantile_us(&log_grow, 0.5),
	       hist_quantile_us(&log_grow, 0.99));
	printf("loopback TCP round trip, 64 bytes: p50 %.1f us, p99 %.1f us\n",
	       hist_quantile_us(&rtt, 0.5), hist_quantile_us(&rtt, 0.99));
	printf("RESULT system=floor lmdb_commit_p50_us=%.0f "
	       "lmdb_commit_p99_us=%.0f rtt_p50_us=%.1f rtt_p99_us=%.1f "
	       "floor_p50_us=%.0f target_confirm_p50_us=%.0f "
	       "log_sync_ahead_p50_us=%.0f log_sync_grow_p50_us=%.0f\n",
	       hist_quantile_us(&lmdb, 0.5), hist_quantile_us(&lmdb, 0.99),
	       hist_quantile_us(&rtt, 0.5), hist_quantile_us(&rtt, 0.99),
	       floor_us, 1.3 * floor_us, hist_quantile_us(&log_ahead, 0.5),
	       hist_quantile_us(&log_grow, 0.5));
	return 0;
}
