/*
 * lease: the table of live leases, by id and by deadline.
 *
 * Owns nothing but its index arrays: a hash table by lease id and a
 * min-heap by deadline (so expiry is a look at the top, never a scan).
 * Leases themselves are allocated and freed by group.c.
 *
 * The heap is 4-ary and keeps each deadline next to its lease pointer:
 * every ack removes a lease, and with tens of thousands in flight a
 * binary heap that read each deadline through the pointer spent most of
 * the broker's CPU on cache misses (30 % of its samples at 1,000
 * connections).
 */
#ifndef RINGMQ_LEASE_H
#define RINGMQ_LEASE_H

#include <stddef.h>
#include <stdint.h>

struct group;
struct sub;
struct lease_owner;

struct lease {
	uint64_t id;	 /* the boot epoch, then a counter: never reused */
	struct group *g; /* borrowed */
	uint32_t part;
	uint64_t offset;
	struct sub *sub;	/* borrowed; NULL once unsubscribed */
	struct lease_owner *lo; /* borrowed: the connection holding it */
	uint64_t deadline_ms;	/* monotonic */
	uint64_t delivered_ms;	/* monotonic, for the max lease */
	uint64_t delivered_wall_ms;
	uint32_t delivery_count;
	struct lease *lo_next, *lo_prev; /* owner's list (group.c) */
	struct lease *hash_next;	 /* table chain */
	size_t heap_idx;		 /* position in the deadline heap */
};

struct lease_slot {
	uint64_t deadline_ms; /* a copy of l->deadline_ms */
	struct lease *l;      /* borrowed */
};

struct lease_table {
	struct lease **buckets; /* owned array; leases chained by id */
	size_t nbuckets, count;
	struct lease_slot *heap; /* owned: 4-ary min-heap by deadline */
	size_t hn, hcap;
	struct lease *spare; /* owned: freed leases kept for reuse */
	size_t nspare;
};

int lease_table_init(struct lease_table *t);
/* Frees the index, every lease still in it and the spares. */
void lease_table_fini(struct lease_table *t);
/* A zeroed lease, a spare when there is one (a lease per delivery is the
 * broker's busiest allocation), else from malloc; NULL when out of
 * memory. Give it back with lease_table_release once out of the table. */
struct lease *lease_table_alloc(struct lease_table *t);
void lease_table_release(struct lease_table *t, struct lease *l);
/* @return 0 or -ENOMEM (t unchanged). */
int lease_table_insert(struct lease_table *t, struct lease *l);
void lease_table_remove(struct lease_table *t, struct lease *l);
struct lease *lease_table_find(const struct lease_table *t, uint64_t id);
/* The lease with the earliest deadline, or NULL. */
struct lease *lease_table_earliest(const struct lease_table *t);
/* Restores heap order after l->deadline_ms changed. */
void lease_table_reschedule(struct lease_table *t, struct lease *l);

#endif
