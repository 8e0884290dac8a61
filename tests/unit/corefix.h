/*
 * corefix: the fixture of the core's unit suites (groups, leases, dead
 * letters): the queues and the groups in-process over a real store in a
 * temporary directory, without sockets, and consumers faked through the
 * struct sub_ops callbacks.
 *
 * The suites create and publish through corefix_create and
 * corefix_publish (or their _given and _batch forms), so a change of
 * queue_create's or queue_publish's signature is a change of this file
 * alone.
 *
 * Time is the real clock (the core reads clock_mono_ms itself): what waits
 * for a lease or a delay to run out polls with a deadline (corefix_wait).
 */
#ifndef RINGMQ_TEST_COREFIX_H
#define RINGMQ_TEST_COREFIX_H

#include <stddef.h>
#include <stdint.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/config.h"
#include "store/store.h"

#define COREFIX_OWNERS	    3	 /* fake consumers per fixture */
#define COREFIX_GOT_MAX	    64	 /* deliveries each one records */
#define COREFIX_PAYLOAD_MAX 32	 /* payload bytes recorded, NUL included */
#define COREFIX_WAIT_MS	    2000 /* what a due delivery may take at most */

/* One delivery as a fake owner got it. */
struct corefix_got {
	struct delivery d;
	uint64_t mono_ms; /* monotonic clock when handed over */
	char payload[COREFIX_PAYLOAD_MAX]; /* a copy, NUL-terminated */
};

/* A consumer as the groups see one (a connection, in the broker). */
struct corefix_owner {
	struct lease_owner lo;
	int is_writable;      /* what its is_writable callback answers */
	size_t unwritable_at; /* is_writable turns 0 at this many
			       * deliveries (its output fills); 0: never */
	struct sub *sub;      /* borrowed: its subscription, or NULL */
	int detached_code;    /* of the detached callback; 1 = not called */
	struct corefix_got got[COREFIX_GOT_MAX]; /* in the order delivered */
	size_t ngot;
};

struct corefix {
	char dir[64];
	struct config cfg;
	struct store *s;
	struct queues *qs;
	struct groups *gs;
	struct corefix_owner owners[COREFIX_OWNERS];
	int done_status; /* of the last completion; 1 = not called */
};

/* A queue's policy in plain C; a zero time is the default. */
struct corefix_policy {
	uint64_t lease_ms;
	uint64_t max_lease_ms;
	int has_max_deliveries; /* else the default (5) */
	uint32_t max_deliveries;
};

/* A message to publish; key and header may be NULL (none). */
struct corefix_msg {
	const char *payload;
	const char *key;
	const char *hname;
	const char *hvalue;
};

/* cmocka setup and teardown: *state is the struct corefix. */
int corefix_setup(void **state);
int corefix_teardown(void **state);

/* Runs the store until everything submitted has completed, the batches
 * that completions submit included. */
void corefix_settle(struct corefix *f);

/* One loop pass of the broker: due messages, lease expiry, retries,
 * dispatch, the groups' flush; then settles. */
void corefix_tick(struct corefix *f);

/* Ticks until is_done(ctx) or ms pass, a millisecond apart.
 * @return is_done's last answer. */
int corefix_wait_for(struct corefix *f, int (*is_done)(void *ctx), void *ctx,
		     uint64_t ms);

/* Ticks until o holds n deliveries or ms pass (COREFIX_WAIT_MS when a
 * delivery is due; less to see that none comes).
 * @return the deliveries o holds then. */
size_t corefix_wait(struct corefix *f, struct corefix_owner *o, size_t n,
		    uint64_t ms);

/* Creates queue name (pol NULL: every default) and waits for its commit. */
struct queue *corefix_create(struct corefix *f, const char *name,
			     uint32_t partitions,
			     const struct corefix_policy *pol);

/* Creates queue name with the policy fields given sets (NULL: none) and
 * waits for its commit. */
struct queue *corefix_create_given(struct corefix *f, const char *name,
				   uint32_t partitions,
				   const struct queue_policy_given *given);

/* Publishes p, waits for its commit, and copies its results to res
 * (room for p->n). @return the results' count. */
size_t corefix_publish_batch(struct corefix *f, const struct publish_batch *p,
			     struct publish_result *res);

/* Publishes msgs[0 .. n) to queue in one batch, to partition part (routed
 * when part < 0), and waits for the commit; each must be stored. offsets
 * (NULL: not wanted) gets each one's offset. */
void corefix_publish(struct corefix *f, const char *queue, int part,
		     const struct corefix_msg *msgs, size_t n,
		     uint64_t *offsets);

/* Publishes n messages with payloads "<prefix>0", "<prefix>1", ... */
void corefix_publish_n(struct corefix *f, const char *queue, int part,
		       const char *prefix, size_t n);

/* Subscribes owner i to group of queue with credit, creating the group
 * if needed from the earliest message (the latest when is_latest), and
 * waits for the group's commit. Its subscription id is i + 1.
 * @return the owner. */
struct corefix_owner *corefix_subscribe(struct corefix *f, size_t i,
					const char *queue, const char *group,
					int is_latest, uint32_t credit);

/* The start of most tests: creates queue (one partition, policy pol),
 * publishes n messages "m0", "m1", ... to it, subscribes owner 0 to group
 * "g" from the earliest with credit, runs a pass, and checks that the
 * owner got min(n, credit) of them. @return owner 0. */
struct corefix_owner *corefix_start(struct corefix *f, const char *queue,
				    const struct corefix_policy *pol, size_t n,
				    uint32_t credit);

/* Ends o's subscription (its leases stay with it). */
void corefix_unsubscribe(struct corefix *f, struct corefix_owner *o);

enum corefix_op {
	COREFIX_ACK,
	COREFIX_NACK,
	COREFIX_RELEASE,
};

/* Ends leases ids[0 .. n) of o as op says in one request (delay_ms: a
 * nack's), ticks until the request is confirmed, and checks that it was.
 * codes[i] gets id i's: 0, -RMQ_ELEASE_EXPIRED or -RMQ_ENOT_LEASED. */
void corefix_end_n(struct corefix *f, struct corefix_owner *o,
		   enum corefix_op op, const uint64_t *ids, size_t n,
		   uint64_t delay_ms, int *codes);

/* corefix_end_n of the one lease id. @return its code. */
int corefix_end(struct corefix *f, struct corefix_owner *o, enum corefix_op op,
		uint64_t id, uint64_t delay_ms);

/* Touches lease id of o for lease_ms (0: the queue's lease time).
 * @return its code; *remaining_ms gets the time left. */
int corefix_touch(struct corefix *f, struct corefix_owner *o, uint64_t id,
		  uint64_t lease_ms, uint64_t *remaining_ms);

/* A header of a stored message, copied (cut to fit). */
struct corefix_header {
	char name[32];
	char value[32];
};

/* Copies the headers of a stored header block into h[0 .. max), in order.
 * @return how many the block holds (more than max: the rest not copied). */
size_t corefix_headers(const void *block, uint32_t len,
		       struct corefix_header *h, size_t max);

#endif
