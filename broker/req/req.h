/*
 * req: the request handlers, by family: queues.c (create, set, list,
 * describe, delete, purge), groups.c (create, delete, list, describe,
 * reset), messages.c (peek, message show and cancel, dead-letter list and
 * redrive) and admin.c (stats, backup). The session, publish and consume
 * handlers are still in net/conn.c, whose handler table reaches all of
 * them with the connection and the decoded frame.
 *
 * Handlers answer through net/conn.h and convert between the wire's types
 * and codes and the core's here, at the edge.
 */
#ifndef RINGMQ_REQ_H
#define RINGMQ_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct conn;
struct conn_req;
struct queue;

/* --- shared by the handler families (req.c) --- */

/* A context for request f (conn_req_new), extra bytes past it; answers
 * ENOMEM itself (and returns NULL) when there is no memory. */
struct conn_req *req_new(struct conn *c, const Ringmq__Frame *f, size_t extra);
/* Drops r's reference and frees r: nothing was submitted, and the caller
 * answers the request itself. */
void req_drop(struct conn_req *r);
/* Drops r's reference, answers rc if the connection lives, frees r. */
void req_abort(struct conn_req *r, int rc);
/* The queue called name, or NULL after answering QUEUE_NOT_FOUND (also
 * for a queue whose create is still committing). */
struct queue *req_find_queue(struct conn *c, const Ringmq__Frame *f,
			     const char *name);

/* --- GroupInfo answers (groups.c), for group list and queue describe --- */

struct req_infos {
	Ringmq__GroupInfo *gi; /* owned [cap] */
	Ringmq__GroupInfo **gp;
	uint64_t *floors; /* owned: partitions x cap */
	size_t n, cap;
	const struct queue *q;
	const char *only; /* a group name, or NULL for all */
};

/* Room for cap groups. @return 0 or -ENOMEM (fini it all the same). */
int req_infos_init(struct req_infos *in, size_t cap);
void req_infos_fini(struct req_infos *in);
/* Groups of q, for sizing. */
size_t req_count_groups(struct queue *q);
/* Adds the groups of q (a queues_each callback: ctx is a req_infos). */
void req_list_queue_groups(void *ctx, struct queue *q);

/* --- handlers --- */

void req_queue_create(struct conn *c, const Ringmq__Frame *f);
void req_queue_set(struct conn *c, const Ringmq__Frame *f);
void req_queue_list(struct conn *c, const Ringmq__Frame *f);
void req_queue_describe(struct conn *c, const Ringmq__Frame *f);
void req_queue_delete(struct conn *c, const Ringmq__Frame *f);
void req_purge(struct conn *c, const Ringmq__Frame *f);

void req_group_create(struct conn *c, const Ringmq__Frame *f);
void req_group_delete(struct conn *c, const Ringmq__Frame *f);
void req_group_list(struct conn *c, const Ringmq__Frame *f);
void req_group_describe(struct conn *c, const Ringmq__Frame *f);
void req_group_reset(struct conn *c, const Ringmq__Frame *f);

void req_peek(struct conn *c, const Ringmq__Frame *f);
void req_message_show(struct conn *c, const Ringmq__Frame *f);
void req_message_cancel(struct conn *c, const Ringmq__Frame *f);
void req_dead_letter_list(struct conn *c, const Ringmq__Frame *f);
void req_dead_letter_redrive(struct conn *c, const Ringmq__Frame *f);

void req_stats(struct conn *c, const Ringmq__Frame *f);
void req_backup(struct conn *c, const Ringmq__Frame *f);

#endif
