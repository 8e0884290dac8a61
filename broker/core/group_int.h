/*
 * group_int: the structures of group.c, shared with group_admin.c and
 * deadletter.c only.
 *
 * Nothing outside the group module includes this; everyone else goes
 * through group.h.
 */
#ifndef RINGMQ_GROUP_INT_H
#define RINGMQ_GROUP_INT_H

#include <stdbool.h>

#include "core/group.h"
#include "core/lease.h"
#include "core/queue.h"
#include "lib/heap.h"
#include "lib/runset.h"
#include "lib/u64set.h"
#include "store/store.h"

#define DISPATCH_BUDGET 4096 /* deliveries per group per loop pass */
/* How long a message that has failed max_deliveries times, and found no
 * room for its dead letter, waits before the next try. */
#define DEAD_LETTER_RETRY_MS 1000

struct failrec {
	uint64_t offset;
	struct store_failure f;
};

struct gpart {
	uint64_t ack_floor;	 /* every retained offset below is acked */
	uint64_t read_pos;	 /* next offset to deliver for the first time */
	struct runset acked;	 /* acked offsets above the floor */
	struct u64set redeliver; /* offsets ready again, lowest first */
	struct u64set held;	 /* offsets failed with a delay, not yet due */
	struct failrec *fails;	 /* owned, sorted by offset */
	size_t nfails, capfails;
	uint64_t leased;
	int is_dirty;
	struct gpart *dirty_next;
	struct group *g; /* borrowed: the owner */
	uint32_t index;	 /* partition number */
};

struct pending_sub {
	void *owner;
	struct lease_owner *lo;
	const struct sub_ops *ops;
	uint32_t id, credit;
	sub_done_fn done;
	void *ctx;
	struct pending_sub *next;
};

struct group {
	uint32_t gid;
	char name[STORE_NAME_MAX + 8];
	struct queue *q;	     /* borrowed */
	struct groups *gs;	     /* borrowed */
	struct gpart *parts;	     /* owned, [q->partitions] */
	struct sub *subs;	     /* list of subscriptions */
	struct sub *ready_subs;	     /* ring of those with free credit,
				      * at the next one to try */
	struct sub *ready_last;	     /* the last one served, or NULL */
	uint32_t rr_part;	     /* next partition to try */
	int is_pending;		     /* creation not committed yet */
	int is_paused;		     /* delivers nothing (in memory only) */
	struct pending_sub *waiting; /* owned: subscribes awaiting creation */
	int is_woken;
	struct group *wake_next;
	struct group *next; /* in q->groups */
};

struct sub {
	uint32_t id;
	struct group *g; /* borrowed */
	void *owner;	 /* borrowed: the connection */
	struct lease_owner *lo;
	const struct sub_ops *ops;
	uint32_t credit, leased;
	struct sub *next, *prev;
	/* g->ready_subs ring, exactly while leased < credit (NULL when
	 * off it): dispatch never walks full subscriptions. */
	struct sub *ready_next, *ready_prev;
};

/* A record that failed its CRC and was dead-lettered once for its queue;
 * persisted as a failure record of group id 0 (no group has id 0). */
struct corrupt {
	uint32_t qid;
	uint32_t part;
	uint64_t offset;
};

#define CORRUPT_GID 0u

/* A message failed with a delay: ready again for its group at due_ms. */
struct retry {
	uint64_t due_ms; /* monotonic; the heap's key */
	struct group *g; /* borrowed */
	uint32_t part;
	uint64_t offset;
};
_Static_assert(offsetof(struct retry, due_ms) == 0, "heap key first");

struct waiter {
	lease_done_fn done;
	void *ctx;
};

struct flush_req {
	struct groups *gs;
	bool is_in_flight; /* submitted to the store */
	uint64_t seq;	   /* order of submission, from 1 */
	uint64_t room;	   /* its dead letters' share of dead_letter_room */
	struct queues *qs;
	struct queue_staged *staged; /* owned: dead letters in this flush */
	size_t nstaged;
	size_t n;
	struct waiter w[];
};

struct groups {
	struct store *store; /* borrowed */
	struct queues *qs;   /* borrowed */
	size_t npending;     /* group creates not yet committed */
	uint64_t epoch;
	uint64_t lease_counter;
	struct lease_table leases; /* every lease, by id and by deadline */
	struct gpart *dirty;
	struct group *woken;
	struct heap retries;	   /* of struct retry: delayed redeliveries */
	struct store_batch *flush; /* owned: ops for the next flush */
	struct waiter *waiters;	   /* owned: confirm after the next flush */
	size_t nwaiters, capwaiters;
	/* Owned: waiters of a flush that could not be built (no memory),
	 * answered -ENOMEM from the next groups_tick. */
	struct waiter *failed;
	size_t nfailed, capfailed;
	size_t flushes_in_flight;    /* submitted to the store, not yet done */
	struct queue_staged *staged; /* owned: dead letters in gs->flush */
	size_t nstaged, capstaged;
	/* Room the dead letters staged or in flight will take, which the
	 * store's usage does not show yet; staged_room: of those in
	 * gs->flush. */
	uint64_t dead_letter_room, staged_room;
	bool is_dead_letter_held_logged;
	/* A failed flush's error, for the waiters of the flushes submitted
	 * before its failure was seen (up to fail_upto): they may depend on
	 * it (a nack whose dead letter it carried). */
	int flush_error;
	uint64_t flush_seq, fail_upto;
	struct corrupt *corrupt; /* owned: records dead-lettered as corrupt */
	size_t ncorrupt, capcorrupt;
	int is_stopped;
	void (*quota_room)(void *ctx, struct lease_quota *q);
	void *quota_room_ctx;
};

/* --- group.c helpers used by group_admin.c --- */
void gpart_dirty(struct groups *gs, struct gpart *gp);
void gpart_advance(struct groups *gs, struct gpart *gp);
/* Adds to gp's acked offsets the retained messages of p that every group
 * has acked: gone for the queue, stored or not. @return 0 or -ENOMEM. */
int gpart_ack_gone(struct gpart *gp, const struct partition *p);
/* Retained messages of partition p at or above gp's floor that gp has not
 * acked: a count over the partition index, not a walk per offset. */
uint64_t gpart_unacked(const struct partition *p, const struct gpart *gp);
void group_wake(struct groups *gs, struct group *g);
/* Puts s on or off its group's ring of subscriptions with free credit
 * after its credit or its lease count changed. */
void sub_ready_update(struct sub *s);
struct group *group_find(struct queue *q, const char *name);
void group_free(struct group *g);
void group_unlink(struct group *g);
/* Creates group gname of q, pending until its records commit; done (if
 * not NULL) then gets the commit's status, in the completion that ends
 * the pending state. */
struct group *group_create(struct groups *gs, struct queue *q,
			   const char *gname, int is_latest, lease_done_fn done,
			   void *ctx);
void add_waiter(struct groups *gs, lease_done_fn done, void *ctx);
struct store_batch *flush_batch(struct groups *gs);
void groups_flush(struct groups *gs);
uint64_t min_floor(const struct queue *q, uint32_t part);
void lease_unlink(struct groups *gs, struct lease *l);
struct failrec *fail_find(struct gpart *gp, uint64_t offset);
/* Holds offset of gp back for delay_ms (a nack's delay, a retry).
 * @return 0 or -ENOMEM. */
int gpart_hold(struct groups *gs, struct gpart *gp, uint64_t offset,
	       uint64_t delay_ms);
/* gp's group acked offset. */
void gpart_ack(struct groups *gs, struct gpart *gp, uint64_t offset);

/* --- deadletter.c, for group.c --- */

/* Remembers that a record of qid/part/offset failed its checksum.
 * @return 0 or -ENOMEM. */
int corrupt_add(struct groups *gs, uint32_t qid, uint32_t part,
		uint64_t offset);
/* Dead-letters a record that failed its checksum when dispatch read it. */
void corrupt_dead_letter(struct groups *gs, struct queue *q, uint32_t part,
			 uint64_t offset);
/* Dead-letters the message of lease l, which failed its last delivery;
 * last_error (NULL: none) is what the failing nack said.
 * @return 0, or < 0 when it must wait (no room, no memory): held. */
int lease_dead_letter(struct groups *gs, struct lease *l, struct gpart *gp,
		      const char *last_error);
/* Retries the dead letter of a held offset that failed max_deliveries
 * times. @return 1 when done with it (dead-lettered, or held again), 0
 * when it is to be ready again. */
int held_dead_letter(struct groups *gs, struct gpart *gp, uint64_t offset);

#endif
