/*
 * queue: queues, their partitions, offsets and publishing.
 *
 * Owns the registry of queues (by name and by id), each partition's offset
 * counters and an in-memory index of its retained messages (message bytes
 * per offset, holes for offsets never stored), and the publish path: check,
 * route, assign offsets, hand a batch to the store, confirm on commit
 * (publish.c; queue_int.h is what the two files share). Consumer groups
 * live in group.c and read partitions through the partition_* functions
 * here.
 *
 * Invariant: offsets of a partition are assigned in submission order and
 * never reused; [base, committed_next) is indexed, each offset either a
 * stored message or a hole; nothing at or above committed_next is visible
 * to consumers.
 */
#ifndef RINGMQ_QUEUE_H
#define RINGMQ_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/u64set.h"
#include "store/store.h"

#define QUEUE_MAX_PARTITIONS 1024u
/* Most bytes of a key, a dedup id or a header name (announced in HelloOk;
 * the stored record keeps their lengths in 16 bits). */
#define QUEUE_MAX_FIELD_BYTES 65535u
#define PART_HOLE	      UINT32_MAX /* size marking an offset with no message */
/* Flag on a size (sizes stay below 2^31): every group has acked it. */
#define PART_ACKED 0x80000000u

struct group;
struct config;

struct partition {
	uint64_t next_offset;	   /* next to assign (uncommitted included) */
	uint64_t reserved_until;   /* sync=interval: the stored next offset
				    * once pending commits land */
	uint64_t reserved_durable; /* ... and as committed so far */
	uint64_t committed_next; /* every offset below is committed or a hole */
	uint64_t base;		 /* lowest indexed offset */
	uint32_t *sizes; /* owned ring: message bytes (store_msg_bytes) of
			  * offset base + i */
	size_t cap;	 /* ring capacity, a power of two */
	size_t head;	 /* ring index of base */
	size_t len;	 /* committed_next - base */
	uint64_t count;	 /* stored messages, delayed ones included */
	uint64_t bytes;	 /* their message bytes */
	/* Of count and bytes: messages every group has acked (PART_ACKED),
	 * stored until the floors pass them; not retained (max depth). */
	uint64_t acked_count, acked_bytes;
	struct delayed *delayed; /* owned, sorted by offset: not yet due */
	size_t ndelayed, capdelayed;
	/* Stored offsets only one group sees (redriven dead letters,
	 * STORE_MSG_PRIVATE): a group made later marks them acked. */
	struct u64set privates;
};

/* A stored message waiting for its time, outside the in-order stream: its
 * offset is a hole in the index until it is due and moves to a new
 * offset at the end of the partition. */
struct delayed {
	uint64_t offset;
	uint64_t due_ms; /* wall clock */
	uint32_t size;
};

/* Where a partition is served in cluster mode (the server sets it from
 * the cluster's view). A partition served elsewhere takes no publishes
 * here (NOT_OWNER); what this broker still holds of it is delivered, so
 * nothing published here before a move is stranded. */
struct part_owner {
	const char *addr; /* HOST:PORT clients reach its owner at, kept for the
			   * server's whole run; NULL while none is placed */
	uint64_t epoch;	  /* rises with each change of owner */
	int is_here;	  /* this broker owns it */
};

/* Monotonic event counters of a queue, for metrics. */
struct queue_counters {
	uint64_t published;   /* messages stored (duplicates not) */
	uint64_t delivered;   /* deliveries, redeliveries included */
	uint64_t redelivered; /* deliveries with delivery_count > 1 */
	uint64_t acked;
	uint64_t nacked;
	uint64_t expired;	/* leases that ran out */
	uint64_t dead_lettered; /* messages sent to the dead-letter queue */
};

struct queue {
	uint32_t qid;
	uint32_t partitions;
	uint64_t created_ms;
	struct store_policy policy;
	char name[STORE_NAME_MAX + 8];
	struct partition *parts; /* owned, [partitions] */
	uint32_t rr_part;	 /* next partition for unrouted messages */
	/* borrowed [partitions]: NULL when every partition is served here
	 * (not in cluster mode, or not placed yet) */
	const struct part_owner *owners;
	uint32_t next_gid;
	struct group *groups;	 /* owned by group.c: list of this queue's */
	struct idem *idem;	 /* owned: dedup ids, producer sequences */
	uint64_t last_expiry_ms; /* of the idempotence tables */
	struct queue_counters counters;
	int is_pending;		   /* create not committed yet */
	uint32_t pending_ops;	   /* publishes in flight */
	uint64_t pending_msgs;	   /* messages of those publishes */
	uint64_t pending_bytes;	   /* their message bytes */
	uint64_t publish_failures; /* publishes whose commit failed */
	int last_failure;	   /* the latest one's error (negative) */
	struct queue *hash_next;   /* registry chain by name */
};

struct queues; /* opaque registry */

/* Called when new messages of (q, part) become visible. */
typedef void (*queue_visible_fn)(void *ctx, struct queue *q, uint32_t part);

int queues_new(struct queues **out, struct store *s, const struct config *cfg,
	       queue_visible_fn visible, void *visible_ctx);
void queues_free(struct queues *qs);

struct queue *queues_find(struct queues *qs, const char *name);
struct queue *queues_find_id(struct queues *qs, uint32_t qid);

/* Calls fn for each queue, in creation order. */
void queues_each(struct queues *qs, void (*fn)(void *ctx, struct queue *q),
		 void *ctx);
size_t queues_count(const struct queues *qs);

/* --- recovery (store_load callbacks forward here) --- */
int queues_load_queue(struct queues *qs, const struct store_queue *sq);
int queues_load_partition(struct queues *qs, uint32_t qid, uint32_t part,
			  uint64_t next_offset);
int queues_load_message(struct queues *qs, uint32_t qid, uint32_t part,
			uint64_t offset, uint32_t msg_bytes,
			uint64_t deliver_at_ms);
/* Recovery: offset of part is STORE_MSG_PRIVATE (one group sees it). */
int queues_load_private(struct queues *qs, uint32_t qid, uint32_t part,
			uint64_t offset);
int queues_load_dedup(struct queues *qs, uint32_t qid, uint32_t part,
		      const void *id, uint16_t len, uint64_t offset,
		      uint64_t publish_ms);
int queues_load_producer(struct queues *qs, uint32_t qid, uint32_t part,
			 uint64_t producer_id, const struct store_producer *p);
/* Ends recovery: offsets between the last message and the stored next
 * offset become holes. */
int queues_load_done(struct queues *qs);

/* 1 while some queue's create is not committed yet (cheap). */
int queues_any_pending(const struct queues *qs);

/* Name rule: [A-Za-z0-9][A-Za-z0-9._-]{0,195}. */
int queue_name_valid(const char *name);

/* What may name a queue: a name of the rule, or one followed by ".dlq"
 * (the rule leaves room for it: the dead-letter queue of a queue whose
 * name is as long as the rule allows). */
int queue_ref_valid(const char *name);

/* Completion of an asynchronous queue operation: 0 or -RMQ_E* / -errno. */
typedef void (*queue_done_fn)(void *ctx, int status);

/* Which fields of a struct queue_policy_given are given. */
enum {
	QUEUE_POLICY_LEASE_MS = 1u << 0,
	QUEUE_POLICY_MAX_LEASE_MS = 1u << 1,
	QUEUE_POLICY_MAX_DELIVERIES = 1u << 2,
	QUEUE_POLICY_MAX_DEPTH = 1u << 3,
	QUEUE_POLICY_MAX_BYTES = 1u << 4,
	QUEUE_POLICY_DEDUP_WINDOW_MS = 1u << 5,
};

/* The policy fields a request sets; the others keep their value (their
 * default at create). */
struct queue_policy_given {
	unsigned fields; /* QUEUE_POLICY_* of the fields below that are set */
	uint64_t lease_ms;
	uint64_t max_lease_ms;
	uint32_t max_deliveries;
	uint64_t max_depth;
	uint64_t max_bytes;
	uint64_t dedup_window_ms;
	const char *dlq; /* borrowed; NULL = not given, "" = the default */
};

/*
 * Creates a queue. given: the policy fields the request set, or NULL.
 * partitions 0 = default (1).
 * @return 1 if it exists with the same given settings (done not called);
 *         0 if creation was submitted (done called on commit);
 *         -RMQ_EQUEUE_EXISTS, -RMQ_EINVALID_ARGUMENT.
 */
int queue_create(struct queues *qs, const char *name, uint32_t partitions,
		 const struct queue_policy_given *given, queue_done_fn done,
		 void *ctx);

/*
 * Changes the policies given in pol (absent fields stay). The new values
 * apply at once; done runs after they are committed.
 * @return 0 (done will be called), -RMQ_EQUEUE_NOT_FOUND,
 *         -RMQ_EINVALID_ARGUMENT or -ENOMEM (done not called).
 */
int queue_set(struct queues *qs, const char *name,
	      const struct queue_policy_given *pol, queue_done_fn done,
	      void *ctx);

/* A message to publish, as the request gave it. Every pointer is
 * borrowed for the call. */
struct publish_msg {
	const void *payload;
	size_t payload_len;
	int has_key;
	const void *key;
	size_t key_len;
	const char *dedup_id;		    /* NUL-terminated; NULL = none */
	const struct store_header *headers; /* names as the request gave */
	size_t n_headers;
	int has_partition;
	uint32_t partition;
	int has_delay_ms;
	uint64_t delay_ms;
	int has_deliver_at_ms;
	uint64_t deliver_at_ms;
};

/* A publish request. */
struct publish_batch {
	const char *queue;
	int has_partition; /* for every message that names none */
	uint32_t partition;
	int has_producer_seq;
	uint64_t producer_seq; /* of the first message */
	const struct publish_msg *msgs;
	size_t n;
};

/* Result of one published message. */
struct publish_result {
	int code; /* 0, or -RMQ_E* / -errno: the message was refused */
	uint32_t partition;
	uint64_t offset;
	uint32_t msg_bytes;	/* store_msg_bytes */
	uint64_t deliver_at_ms; /* 0 = not delayed */
	int is_stored;		/* written by this publish */
	int is_duplicate;	/* confirmed earlier: dedup id or resend */
	int is_pending_dup;	/* ... by a publish not committed yet */
	const char *why;	/* static text when code != OK */
	/* NOT_OWNER: who serves the partition (the server keeps owner
	 * addresses for its whole run), and the partition's epoch */
	const char *owner;
	uint64_t owner_epoch;
};

/* Completion of a publish: results has one entry per message. */
typedef void (*publish_done_fn)(void *ctx, const struct publish_result *res,
				size_t n);

/*
 * Checks, routes and stores the messages of p.
 * @return 0: done will be called (on commit, or at once if nothing was
 *         stored); -RMQ_EQUEUE_NOT_FOUND, -RMQ_EINVALID_ARGUMENT,
 *         -ENOMEM: done is not called.
 */
int queue_publish(struct queues *qs, const struct publish_batch *p,
		  uint64_t producer_id, publish_done_fn done, void *ctx);

struct queues;

/* The broker's totals: every queue's counters, deleted ones' included.
 * The per-queue counters are the one place events are counted. */
void queues_counter_totals(const struct queues *qs, struct queue_counters *out);

/* Fills a QueueInfo's counters that queue.c knows: messages and bytes
 * retained (stored, less what every group has acked), delayed ones. */
void queue_totals(const struct queue *q, uint64_t *messages, uint64_t *bytes,
		  uint64_t *delayed);

/* What counts toward q's max depth and bytes: the messages and payload
 * bytes retained, and those of publishes (redrives too) in flight. */
void queue_fill(const struct queue *q, uint64_t *depth, uint64_t *bytes);

/* 1 when one more message of len bytes (store_msg_bytes), on top of depth and
 * bytes (queue_fill's), takes q past its max depth or bytes. */
int queue_is_over(const struct queue *q, uint64_t depth, uint64_t bytes,
		  uint64_t len);

/* Moves delayed messages that are due into their partition's stream.
 * @return ms until the next one is due, or -1 if none. */
int64_t queues_tick(struct queues *qs);

/*
 * Cancels the delayed message (q, part, offset). done runs after the
 * delete commits.
 * @return 0; -RMQ_EMESSAGE_NOT_FOUND if no such delayed message
 *         (-RMQ_EINVALID_ARGUMENT if the message exists but is not delayed);
 *         -ENOMEM.
 */
int queue_cancel(struct queues *qs, struct queue *q, uint32_t part,
		 uint64_t offset, queue_done_fn done, void *ctx);

/* --- partition index, for group.c --- */

/* 1 if offset holds a committed, retained message. */
int partition_has(const struct partition *p, uint64_t offset);

/* The first retained message offset >= from below committed_next, or
 * UINT64_MAX if none. */
uint64_t partition_next(const struct partition *p, uint64_t from);

/* How many retained messages lie in [from, to) below committed_next. */
uint64_t partition_count(const struct partition *p, uint64_t from, uint64_t to);

/* Marks the message at offset as acked by every group (once); a no-op for
 * holes and offsets not yet committed. */
void partition_mark_acked(struct partition *p, uint64_t offset);

/* 1 if the message at offset is marked acked by every group. */
int partition_is_acked(const struct partition *p, uint64_t offset);

/* Clears every such mark, before a recount. */
void partition_clear_acked(struct partition *p);

/* Drops offsets below upto from the index and adds their deletion to b.
 * @return 0 or -ENOMEM. */
int partition_trim(struct queue *q, uint32_t part, uint64_t upto,
		   struct store_batch *b);

/* a + b, saturating at UINT64_MAX (deadlines never wrap). */
uint64_t sat_add(uint64_t a, uint64_t b);

/* --- messages written by the broker itself (dead letters) --- */

#define QUEUE_DLQ_HEADERS 8

/* Fills h with the ringmq-* headers of a dead letter of q (numbers
 * formatted into buf, which must outlive h). @return QUEUE_DLQ_HEADERS. */
uint32_t queue_dlq_headers(struct store_header *h, char (*buf)[24],
			   const char *reason, const struct queue *q,
			   const char *group, uint32_t part, uint64_t offset,
			   uint32_t count, uint64_t first_ms, uint64_t last_ms);

/* Where a staged message goes; resolved by queue_staged_done. */
struct queue_staged {
	uint32_t qid;
	uint32_t partition;
	uint64_t offset;
	uint32_t msg_bytes; /* store_msg_bytes */
	uint64_t reserved;  /* offset reservation it stores, or 0 */
};

/* The queue called name, created (one partition, max deliveries 0) with
 * its records added to b if it does not exist. NULL when out of memory. */
struct queue *queue_ensure(struct queues *qs, const char *name,
			   struct store_batch *b);

/* Adds message m to b at the next offset of q (partition fixed_part, or
 * if negative by key hash or round-robin). Call queue_staged_done when b's
 * commit completes.
 * @return 0 or -ENOMEM. */
int queue_stage(struct queues *qs, struct queue *q, int fixed_part,
		const struct store_msg *m, struct store_batch *b,
		struct queue_staged *st);

void queue_staged_done(struct queues *qs, const struct queue_staged *st,
		       int status);

/* Deletes the stored message (q, part, offset) into b and makes its offset
 * a hole at once (groups pass it by). @return 0, -RMQ_EMESSAGE_NOT_FOUND
 * or -ENOMEM. */
int queue_drop_msg(struct queue *q, uint32_t part, uint64_t offset,
		   struct store_batch *b);

/* Deletes q and every record of it; q is freed at once (its groups must
 * be gone: groups_drop_queue). done runs after the commit.
 * @return 0 or -ENOMEM (nothing changed). */
int queue_delete(struct queues *qs, struct queue *q, queue_done_fn done,
		 void *ctx);

struct u64set;

/* Deletes every stored message of (q, part), delayed ones included, but
 * the offsets in keep (leased now), into b; their offsets become holes.
 * @return messages purged. */
uint64_t queue_purge_partition(struct queue *q, uint32_t part,
			       const struct u64set *keep,
			       struct store_batch *b);

#endif
