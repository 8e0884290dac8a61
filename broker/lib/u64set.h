/*
 * u64set: a sorted set of offsets, with cheap removal at the front.
 *
 * Used per group partition for acked offsets above the ack floor, the
 * redelivery set and held (delayed) offsets: small sets, mostly appended
 * at the back and popped at the front, so a sorted array beats a tree.
 */
#ifndef RINGMQ_U64SET_H
#define RINGMQ_U64SET_H

#include <stddef.h>
#include <stdint.h>

/* A sorted set of offsets with cheap removal at the front. */
struct u64set {
	uint64_t *v; /* owned; live entries are v[start .. start + n) */
	size_t start, n, cap;
};

/* 1 if x is in s. */
int u64set_has(const struct u64set *s, uint64_t x);
/* Adds x (a no-op if present). @return 0 or -ENOMEM. */
int u64set_add(struct u64set *s, uint64_t x);
/* The smallest element; s must not be empty. */
uint64_t u64set_first(const struct u64set *s);
/* Removes the smallest element; s must not be empty. */
void u64set_pop(struct u64set *s);
/* Removes x if present. */
void u64set_remove(struct u64set *s, uint64_t x);
void u64set_free(struct u64set *s);

#endif
