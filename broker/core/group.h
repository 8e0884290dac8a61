/*
 * group: consumer groups, subscriptions, leases and dispatch.
 *
 * Owns per group and partition the ack floor and the acked offsets above
 * it (persisted once per flush, one record per group partition), the read
 * position of first deliveries, the redelivery set, failure counts (sparse,
 * persisted only when a lease fails), and every lease (memory only, by id
 * and by deadline). Dispatch hands ready messages to subscriptions with free
 * credit, round-robin over subscriptions and over partitions.
 *
 * Connections are reached only through struct sub_ops callbacks; this
 * module never sees a socket or a frame encoder.
 *
 * Invariant: a message offset is in at most one of {leased, redelivery
 * set, acked}, and first deliveries of a group partition go out in offset
 * order (everything below read_pos was delivered at least once or acked).
 */
#ifndef RINGMQ_GROUP_H
#define RINGMQ_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/queue.h"
#include "store/store.h"

struct groups; /* opaque: every group, lease and flush of the broker */
struct group;
struct sub;
struct lease;

#define LEASE_RECENT 1024u /* ended leases remembered per owner */

/* An ended lease, remembered to answer a late ack of it. */
struct lease_recent {
	uint64_t id;
	int code; /* 0, -RMQ_ELEASE_EXPIRED or -RMQ_ENOT_LEASED */
};

/* Leases held by every owner that shares it (a user's connections), and
 * how many they may hold at once (0: no limit). Dispatch passes over a
 * subscription whose owner's quota is full. */
struct lease_quota {
	uint32_t held;
	uint32_t max;
};

/* What a connection embeds to hold leases; _init before use, _fini after
 * its leases are gone (groups_owner_gone). */
struct lease_owner {
	struct lease *leases; /* list of this owner's live leases */
	uint64_t last_end_ms; /* monotonic: when it last came to hold none */
	/* Owned, [LEASE_RECENT], direct-mapped by id; allocated when the
	 * first lease ends, so idle connections do not pay for it. */
	struct lease_recent *recent;
	/* Borrowed, or NULL: counted into while it holds leases; set it
	 * only while it holds none. */
	struct lease_quota *quota;
};

void lease_owner_init(struct lease_owner *lo);
void lease_owner_fini(struct lease_owner *lo);

/* Remembers that lease id ended with code (best effort: no memory, no
 * memory of it). */
void lease_owner_remember(struct lease_owner *lo, uint64_t id, int code);

/* A delivery as dispatch hands it over. */
struct delivery {
	uint32_t subscription;
	uint64_t lease_id;
	uint32_t partition;
	uint64_t offset;
	uint32_t delivery_count;
	uint64_t lease_remaining_ms;
	uint64_t now_ms; /* wall clock when handed out (not sent) */
};

struct sub_ops {
	/* Sends a delivery; v points into the LMDB map (copy it now).
	 * @return 0, or -1 if it could not be sent (the lease is undone). */
	int (*deliver)(void *owner, const struct delivery *d,
		       const struct store_msg_view *
			       v); /* 1 while the owner can take more output. */
	int (*is_writable)(void *owner);
	/* The group is gone (deleted, or its queue: code is
	 * -RMQ_EGROUP_NOT_FOUND or -RMQ_EQUEUE_NOT_FOUND): s is freed after
	 * this returns. */
	void (*detached)(void *owner, struct sub *s, int code);
};

/* Completion of subscribe: status 0 with the sub, or a negative code. */
typedef void (*sub_done_fn)(void *ctx, int status, struct sub *s);

/* Completion of an ack/nack/release batch (codes filled at call time). */
typedef void (*lease_done_fn)(void *ctx, int status);

int groups_new(struct groups **out, struct store *s, struct queues *qs,
	       uint64_t boot_epoch);
/* Frees every group of every queue of qs, and every lease. Call before
 * queues_free. */
void groups_free(struct groups *gs);

/* --- recovery --- */
int groups_load_group(struct groups *gs, struct queues *qs,
		      const struct store_group *sg);
int groups_load_state(struct groups *gs, struct queues *qs, uint32_t qid,
		      uint32_t gid, uint32_t part, uint64_t ack_floor,
		      const struct offset_run *runs, uint32_t nruns);
int groups_load_failure(struct groups *gs, struct queues *qs, uint32_t qid,
			uint32_t gid, uint32_t part, uint64_t offset,
			const struct store_failure *f);

/* Called when a lease quota that was full has room again, so the owners
 * sharing it can be woken. */
void groups_set_quota_room(struct groups *gs,
			   void (*fn)(void *ctx, struct lease_quota *q),
			   void *ctx);

/* Marks the queue's groups for dispatch (new messages, credit, ...). */
void groups_wake_queue(struct groups *gs, struct queue *q);

/*
 * Subscribes owner to group gname of q, creating the group if needed
 * (from the earliest retained message, or the latest when is_latest).
 * done runs once: at once if the group exists, else after its commit.
 * @return 0, or -ENOMEM (done not called).
 */
int group_subscribe(struct groups *gs, struct queue *q, const char *gname,
		    int is_latest, uint32_t credit, void *owner,
		    struct lease_owner *lo, const struct sub_ops *ops,
		    uint32_t sub_id, sub_done_fn done, void *ctx);

uint32_t sub_id(const struct sub *s);
void sub_set_credit(struct groups *gs, struct sub *s, uint32_t credit);

/* The sub's owner can take output again: dispatch to it. */
void sub_wake(struct groups *gs, struct sub *s);

/* Ends a subscription. Its leases stay with the owner until settled. */
void sub_free(struct groups *gs, struct sub *s);
/* The queue s reads. */
const struct queue *sub_queue(const struct sub *s);

/* Lease operations on n ids, each code written to codes[i]: 0,
 * -RMQ_ELEASE_EXPIRED or -RMQ_ENOT_LEASED (the request layer maps them to
 * the wire). Acks and
 * nacks are confirmed after their flush commits: done runs then (or at
 * once if nothing needs writing). */
void groups_ack(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
		size_t n, int *codes, lease_done_fn done, void *ctx);
/* delay_ms > 0: not ready again for the group before that time. reason
 * (NULL or "": none; borrowed for the call) goes into the dead letter of a
 * message this nack dead-letters, as its ringmq-last-error header. */
void groups_nack(struct groups *gs, struct lease_owner *lo, const uint64_t *ids,
		 size_t n, uint64_t delay_ms, const char *reason, int *codes,
		 lease_done_fn done, void *ctx);
void groups_release(struct groups *gs, struct lease_owner *lo,
		    const uint64_t *ids, size_t n, int *codes,
		    lease_done_fn done, void *ctx);
/* lease_ms 0 = the queue's lease time. remaining_ms[i] gets the time left. */
void groups_touch(struct groups *gs, struct lease_owner *lo,
		  const uint64_t *ids, size_t n, uint64_t lease_ms, int *codes,
		  uint64_t *remaining_ms);

/* The owner is gone: every lease it holds ends as a failure (a
 * disconnect), or is released without counting (is_failure 0: the broker
 * is stopping, and a restart counts no failure). */
/* Marks anew, in q's partition indexes, the messages every group of q has
 * acked (none without groups): after a group is created, deleted or reset,
 * and at start-up. Costs a pass over what the lowest floor has not
 * passed. */
void groups_recount_acked(struct queue *q);

/* 1 while some group's create is not committed yet (cheap). */
int groups_any_pending(const struct groups *gs);

/* 1 if group name of q exists and its creation is still committing. */
int groups_is_pending(struct queue *q, const char *name);

void groups_owner_gone(struct groups *gs, struct lease_owner *lo,
		       int is_failure);
/* Releases (not as failures) the leases lo holds on messages of the
 * queues keep says 0 of: the owner may no longer consume from them. */
void groups_owner_leave(struct groups *gs, struct lease_owner *lo,
			int (*keep)(void *ctx, const struct queue *q),
			void *ctx);

/* Per loop pass: expires leases, dispatches, flushes group state.
 * @return ms until the next lease deadline, or -1. */
int64_t groups_tick(struct groups *gs);

/* Stops dispatch for good (shutdown); leases already out stay valid. */
void groups_stop_dispatch(struct groups *gs);

/* What the broker holds over every queue, as Stats and the dashboard
 * count it (delayed includes nack delays). */
struct groups_totals {
	uint64_t queues, groups, messages, bytes, delayed, ready, in_flight;
};
void groups_totals(struct queues *qs, struct groups_totals *t);

/* Counters of a queue over its groups: ready, leased, and waiting out a
 * nack delay (retrying: shown with the queue's delayed messages). */
void groups_queue_counts(struct queue *q, uint64_t *ready, uint64_t *in_flight,
			 uint64_t *retrying, uint32_t *ngroups);

/* 1 if q has a group called name. */
int groups_exists(struct queue *q, const char *name);

/* Makes offset of (q, part) invisible to every group of q but the one
 * called keep, as acked (redrive: only the group a message died in sees
 * it again). @return 0 or -ENOMEM. */
int groups_hide_offset(struct groups *gs, struct queue *q, uint32_t part,
		       uint64_t offset, const char *keep);

/* --- administration (group_admin.c) --- */

/* Creates group name of q. @return 1 if it exists (done not called), 0
 * (done runs after the commit), -ENOMEM. */
int groups_create_named(struct groups *gs, struct queue *q, const char *name,
			int is_latest, lease_done_fn done, void *ctx);

/* Deletes group name: its leases end (released, not failures), its
 * subscriptions are detached. @return 0, -RMQ_EGROUP_NOT_FOUND, -ENOMEM. */
int groups_delete_named(struct groups *gs, struct queue *q, const char *name,
			lease_done_fn done, void *ctx);

/* Moves the group's cursor to the earliest retained message or the next
 * one published; its leases end uncounted, its subscriptions stay.
 * @return 0 or
 * -RMQ_EGROUP_NOT_FOUND. */
int groups_reset_named(struct groups *gs, struct queue *q, const char *name,
		       int is_latest, lease_done_fn done, void *ctx);

/* Ends every group of q in memory (the queue is being deleted). */
/* Pauses (is_paused 1) or resumes group name of q. A paused group
 * delivers nothing; its leases run on (acks, nacks, expiry) and its
 * consumers stay attached. The pause lives in memory: a restart resumes.
 * @return 0, or -RMQ_EGROUP_NOT_FOUND. */
int groups_pause_named(struct groups *gs, struct queue *q, const char *name,
		       int is_paused);

void groups_drop_queue(struct groups *gs, struct queue *q);

/* Deletes q's ready and delayed messages; leased ones stay.
 * @return 0 (done runs after the commit), -ENOMEM. */
int groups_purge_queue(struct groups *gs, struct queue *q, lease_done_fn done,
		       void *ctx, uint64_t *purged);

struct group_info {
	uint64_t ready, in_flight, lag;
	uint32_t consumers;
	int is_paused;
};

/* Calls fn for each committed group of q. */
void groups_each(struct queue *q, void (*fn)(void *ctx, const struct group *g),
		 void *ctx);
const char *group_name(const struct group *g);
/* Counters of g; floors (may be NULL) gets each partition's ack floor. */
void group_info(const struct group *g, struct group_info *gi, uint64_t *floors);

/* --- dead letters (deadletter.c) --- */

/* The value of header name of stored message v as a string in buf (cut
 * to fit), or NULL when v has none. */
const char *dead_letter_header(const struct store_msg_view *v, const char *name,
			       char *buf, size_t size);

/* 1 if v is a dead letter of queue source (and of group, when not NULL). */
int dead_letter_is_of(const struct store_msg_view *v, const char *source,
		      const char *group);

/* Completion of a redrive: status 0 or < 0, and the dead letters put back
 * (0 when it failed). */
typedef void (*redrive_done_fn)(void *ctx, int status, size_t redriven);

/*
 * Puts back up to max dead letters of src (only those of group, when not
 * NULL) from dlq (NULL: nothing died yet) into src, each visible only to
 * the group it died in, and removes them from dlq, in one commit. Dead
 * letters whose group is gone stay. They count toward src's limits like a
 * publish: redriving stops at the first that does not fit.
 * @return 0: done will be called after the commit; -RMQ_EQUEUE_FULL when
 *         not one fits, or -ENOMEM (done not called).
 */
int groups_redrive(struct groups *gs, struct queue *src, struct queue *dlq,
		   const char *group, uint32_t max, redrive_done_fn done,
		   void *ctx);

#endif
