/*
 * floor.h: what the two floor benchmarks (floor_bench.c, journal_floor.c)
 * share: a monotonic clock, a check that ends the run on an error, and an
 * LMDB environment with its main database. Header only, as each of them
 * is one C file built by hand (scripts/bench-compare,
 * scripts/bench-journal-floor). Define FLOOR_PROG, the program's name for
 * its error messages, before including it.
 */
#ifndef RINGMQ_BENCH_FLOOR_H
#define RINGMQ_BENCH_FLOOR_H

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ends the run unless rc is 0: an LMDB code when positive, else errno. */
static inline void
check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, FLOOR_PROG ": %s: %s\n", what,
			rc > 0 ? mdb_strerror(rc) : strerror(errno));
		exit(1);
	}
}

/* Opens (creating) an LMDB environment in dir with a map of map_bytes
 * and default flags (commits sync), and its main database. */
static inline void
lmdb_open(const char *dir, uint64_t map_bytes, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;

	check(mdb_env_create(env), "mdb_env_create");
	check(mdb_env_set_mapsize(*env, map_bytes), "mdb_env_set_mapsize");
	check(mdb_env_open(*env, dir, 0, 0644), "mdb_env_open");
	check(mdb_txn_begin(*env, NULL, 0, &txn), "mdb_txn_begin");
	check(mdb_dbi_open(txn, NULL, 0, dbi), "mdb_dbi_open");
	check(mdb_txn_commit(txn), "mdb_txn_commit");
}

#endif
