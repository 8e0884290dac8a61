/*
 * runset: a set of offsets kept as sorted, disjoint runs (first, count).
 *
 * Used per group partition for the acked offsets above the ack floor.
 * Acks arrive nearly in order, so they extend runs; a floor held back by
 * one long lease while millions of later messages are acked is one run
 * (16 bytes), not an entry per offset, and the group's state record is
 * written from the runs as they are (store_batch_put_group_state).
 */
#ifndef RINGMQ_RUNSET_H
#define RINGMQ_RUNSET_H

#include <stddef.h>
#include <stdint.h>

/* Offsets first .. first + count - 1; count >= 1. */
struct offset_run {
	uint64_t first;
	uint64_t count;
};

/* Runs ascend and never touch (a gap of at least one between two). */
struct runset {
	struct offset_run *r; /* owned; live runs are r[start .. start + n) */
	size_t start, n, cap;
	uint64_t count; /* offsets in the set */
};

/* Adds x (a no-op if present). @return 0 or -ENOMEM. */
int runset_add(struct runset *s, uint64_t x);
/* Adds first .. first + count - 1 (count >= 1, no wrap): one step when
 * the run lies above every offset of s. @return 0 or -ENOMEM. */
int runset_add_run(struct runset *s, uint64_t first, uint64_t count);
/* 1 if x is in s. */
int runset_has(const struct runset *s, uint64_t x);
/* The smallest offset; s must not be empty. */
uint64_t runset_first(const struct runset *s);
/* Removes the smallest offset; s must not be empty. */
void runset_pop(struct runset *s);
/* The runs, in order; *n gets their number. */
const struct offset_run *runset_runs(const struct runset *s, size_t *n);
void runset_free(struct runset *s);

#endif
