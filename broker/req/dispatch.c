/*
 * dispatch: one frame of a session, decoded and handed to its handler
 * through the table indexed by the Frame's body case (see req.h).
 *
 * Before a handler runs: a frame over an announced count limit is refused
 * alone; a refused connection answers its first frame and closes; the
 * first frame must be hello; every request carries a request_id; and a
 * request naming a queue or group whose creation is still committing
 * waits for it.
 */
#include <stdio.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "req/codec.h"
#include "req/req.h"
#include "req/session.h"

typedef void (*handler_fn)(struct conn *c, const Ringmq__Frame *f);

/* What the broker does with one kind of request. */
struct request_kind {
	handler_fn fn;
	/* What the audit line calls it (a change an operator wants to know
	 * who made), or NULL. */
	const char *audit;
};

static const struct request_kind requests[RINGMQ__FRAME__BODY_BACKUP_OK + 1] = {
	[RINGMQ__FRAME__BODY_HELLO] = { req_hello, NULL },
	[RINGMQ__FRAME__BODY_PING] = { req_ping, NULL },
	[RINGMQ__FRAME__BODY_GOODBYE] = { req_goodbye, NULL },
	[RINGMQ__FRAME__BODY_PONG] = { req_pong, NULL },
	[RINGMQ__FRAME__BODY_QUEUE_CREATE] = { req_queue_create, NULL },
	[RINGMQ__FRAME__BODY_QUEUE_DELETE] = { req_queue_delete,
					       "queue delete" },
	[RINGMQ__FRAME__BODY_QUEUE_SET] = { req_queue_set, "queue set" },
	[RINGMQ__FRAME__BODY_QUEUE_LIST] = { req_queue_list, NULL },
	[RINGMQ__FRAME__BODY_QUEUE_DESCRIBE] = { req_queue_describe, NULL },
	[RINGMQ__FRAME__BODY_PURGE] = { req_purge, "purge" },
	[RINGMQ__FRAME__BODY_PUBLISH] = { req_publish, NULL },
	[RINGMQ__FRAME__BODY_SUBSCRIBE] = { req_subscribe, NULL },
	[RINGMQ__FRAME__BODY_UNSUBSCRIBE] = { req_unsubscribe, NULL },
	[RINGMQ__FRAME__BODY_CREDIT] = { req_credit, NULL },
	[RINGMQ__FRAME__BODY_ACK] = { req_ack, NULL },
	[RINGMQ__FRAME__BODY_NACK] = { req_nack, NULL },
	[RINGMQ__FRAME__BODY_RELEASE] = { req_release, NULL },
	[RINGMQ__FRAME__BODY_TOUCH] = { req_touch, NULL },
	[RINGMQ__FRAME__BODY_GROUP_CREATE] = { req_group_create, NULL },
	[RINGMQ__FRAME__BODY_GROUP_DELETE] = { req_group_delete,
					       "group delete" },
	[RINGMQ__FRAME__BODY_GROUP_LIST] = { req_group_list, NULL },
	[RINGMQ__FRAME__BODY_GROUP_DESCRIBE] = { req_group_describe, NULL },
	[RINGMQ__FRAME__BODY_GROUP_RESET] = { req_group_reset, "group reset" },
	[RINGMQ__FRAME__BODY_PEEK] = { req_peek, NULL },
	[RINGMQ__FRAME__BODY_MESSAGE_SHOW] = { req_message_show, NULL },
	[RINGMQ__FRAME__BODY_MESSAGE_CANCEL] = { req_message_cancel,
						 "message cancel" },
	[RINGMQ__FRAME__BODY_DEAD_LETTER_LIST] = { req_dead_letter_list, NULL },
	[RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE] = { req_dead_letter_redrive,
						      "dead-letter redrive" },
	[RINGMQ__FRAME__BODY_STATS] = { req_stats, NULL },
	[RINGMQ__FRAME__BODY_BACKUP] = { req_backup, "backup" },
};

/* The queue, and the group (or NULL), that a request works on. */
static const char *
frame_target(const Ringmq__Frame *f, const char **group)
{
	*group = NULL;
	switch (f->body_case) {
	case RINGMQ__FRAME__BODY_PUBLISH: return f->publish->queue;
	case RINGMQ__FRAME__BODY_SUBSCRIBE: return f->subscribe->queue;
	case RINGMQ__FRAME__BODY_QUEUE_DELETE: return f->queue_delete->name;
	case RINGMQ__FRAME__BODY_QUEUE_SET: return f->queue_set->name;
	case RINGMQ__FRAME__BODY_QUEUE_DESCRIBE: return f->queue_describe->name;
	case RINGMQ__FRAME__BODY_PURGE: return f->purge->queue;
	case RINGMQ__FRAME__BODY_GROUP_CREATE: return f->group_create->queue;
	case RINGMQ__FRAME__BODY_GROUP_LIST: return f->group_list->queue;
	case RINGMQ__FRAME__BODY_GROUP_DELETE:
		*group = f->group_delete->group;
		return f->group_delete->queue;
	case RINGMQ__FRAME__BODY_GROUP_DESCRIBE:
		*group = f->group_describe->group;
		return f->group_describe->queue;
	case RINGMQ__FRAME__BODY_GROUP_RESET:
		*group = f->group_reset->group;
		return f->group_reset->queue;
	case RINGMQ__FRAME__BODY_PEEK: return f->peek->queue;
	case RINGMQ__FRAME__BODY_MESSAGE_SHOW: return f->message_show->queue;
	case RINGMQ__FRAME__BODY_MESSAGE_CANCEL:
		return f->message_cancel->queue;
	case RINGMQ__FRAME__BODY_DEAD_LETTER_LIST:
		return f->dead_letter_list->queue;
	case RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE:
		return f->dead_letter_redrive->queue;
	default: return NULL;
	}
}

/* 1 unless f is one of the frames a client sends that expect no answer
 * (Pong, Goodbye) or a frame only the broker sends (handlers[] has none:
 * those get "not a request" as any request would). */
static int
frame_is_request(const Ringmq__Frame *f)
{
	return f->body_case != RINGMQ__FRAME__BODY_PONG &&
	       f->body_case != RINGMQ__FRAME__BODY_GOODBYE;
}

/* Refuses a request over a count limit that HelloOk announced: an
 * INVALID_ARGUMENT naming the limit; the connection and its leases stay. */
static void
refuse_over(struct conn *c, uint64_t request_id, const struct codec_over *over)
{
	char why[160];

	snprintf(why, sizeof(why), "%s%s%llu %s: over %s (%u)",
		 over->request ? over->request : "",
		 over->request ? " with " : "", (unsigned long long)over->count,
		 over->what, over->limit, over->max);
	req_send_error(c, request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		       why);
}

/* 1 if f names a queue or group whose creation is still committing while
 * this connection has requests in flight (most likely that creation): a
 * pipelined "create, then use" waits for the create rather than finding
 * nothing. The connection resumes as its requests complete. */
static int
must_wait(const struct session *se, const Ringmq__Frame *f)
{
	const char *group, *name;
	struct queue *q;

	if (!conn_has_requests(se->c) || (!queues_any_pending(se->env->qs) &&
					  !groups_any_pending(se->env->gs)))
		return 0;
	name = frame_target(f, &group);
	q = name != NULL ? queues_find(se->env->qs, name) : NULL;
	if (q == NULL)
		return 0;
	return q->is_pending || (group != NULL && groups_is_pending(q, group));
}

/* Logs who asks to change what: the connection and its address, the
 * request, its target (before the request is checked: a refused one is
 * logged too). */
static void
audit(struct conn *c, const char *what, const Ringmq__Frame *f)
{
	const char *group;
	const char *target = f->body_case == RINGMQ__FRAME__BODY_BACKUP
				     ? f->backup->path
				     : frame_target(f, &group);

	if (f->body_case == RINGMQ__FRAME__BODY_BACKUP)
		group = NULL;
	/* Who first, and the target bounded: a long path must not push the
	 * asker out of the line. */
	log_info("audit: conn %llu from %s asks %s of %.256s%s%.200s",
		 (unsigned long long)conn_id(c), conn_peer(c), what,
		 target != NULL ? target : "?", group != NULL ? "/" : "",
		 group != NULL ? group : "");
}

int
req_frame(struct session *se, const uint8_t *body, size_t len)
{
	struct conn *c = se->c;
	struct codec_over over;
	Ringmq__Frame *f = NULL;
	const struct request_kind *kind;
	int rc;

	rc = codec_decode(&se->arena, &se->lim, body, len, &f, &over);
	if (rc == -RMQ_EMESSAGE_TOO_LARGE && se->is_hello_done &&
	    se->refuse_code == 0) {
		/* Well formed, over an announced count: refused alone. */
		refuse_over(c, codec_request_id(body, len), &over);
		codec_arena_reset(&se->arena);
		return 0;
	}
	if (rc < 0) {
		req_fail(c, codec_request_id(body, len), err_to_wire(rc),
			 rc == -RMQ_EMESSAGE_TOO_LARGE
				 ? "frame over the broker's batch limits"
				 : "frame does not decode");
		codec_arena_reset(&se->arena);
		return 0;
	}
	if (se->is_hello_done && se->refuse_code == 0 && must_wait(se, f)) {
		codec_arena_reset(&se->arena);
		return 1;
	}
	if (se->refuse_code != 0) {
		req_send_error(c, f->request_id, se->refuse_code,
			       se->refuse_why);
		conn_close(c, se->refuse_why);
	} else if (!se->is_hello_done &&
		   f->body_case != RINGMQ__FRAME__BODY_HELLO) {
		req_fail(c, f->request_id, RINGMQ__ERROR_CODE__NOT_HELLO,
			 "the first frame must be hello");
	} else if (f->request_id == 0 && frame_is_request(f)) {
		/* Its answer could not be told from a push. */
		req_send_error(c, 0, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "request_id 0 is reserved for pushes: give "
			       "every request a non-zero request_id");
	} else {
		kind = (size_t)f->body_case <
				       sizeof(requests) / sizeof(*requests)
			       ? &requests[f->body_case]
			       : NULL;
		if (kind != NULL && kind->fn != NULL) {
			if (kind->audit != NULL)
				audit(c, kind->audit, f);
			kind->fn(c, f);
		} else
			req_send_error(c, f->request_id,
				       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				       "not a request");
	}
	codec_arena_reset(&se->arena);
	return 0;
}
