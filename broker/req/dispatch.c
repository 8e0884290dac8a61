/*
 * dispatch: one frame of a session, decoded and handed to its handler
 * through the table indexed by the Frame's body case (see req.h).
 *
 * Before a handler runs: a frame over an announced count limit is refused
 * alone; a refused connection answers its first frame and closes; the
 * first frame must be hello, and with auth on nothing but the
 * AuthResponse may come before authentication ends (a session whose
 * exchange failed reads nothing until its refusal goes); every request
 * carries a request_id; a request naming a queue or group whose creation
 * is still committing waits for it; and the user must hold what the
 * request's row needs (PERMISSION_DENIED, nothing done).
 */
#include <stdio.h>

#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "req/auth.h"
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
	/* With auth on: what the user needs to ask it, one of bits (USER_*)
	 * on the request's queue or on every queue ("*"), as need says. */
	enum auth_need need;
	unsigned bits;
};

#define ANY_BITS    (USER_PUBLISH | USER_CONSUME | USER_ADMIN)
#define READ_BITS   (USER_CONSUME | USER_ADMIN)
#define ON_QUEUE(b) NEED_QUEUE, (b)
#define ON_ALL(b)   NEED_ALL, (b)

static const struct request_kind requests[RINGMQ__FRAME__BODY_METADATA_OK] = {
	[RINGMQ__FRAME__BODY_HELLO] = { req_hello, NULL, NEED_NOTHING, 0 },
	[RINGMQ__FRAME__BODY_AUTH_RESPONSE] = { req_auth_response, NULL,
						NEED_NOTHING, 0 },
	[RINGMQ__FRAME__BODY_PING] = { req_ping, NULL, NEED_NOTHING, 0 },
	[RINGMQ__FRAME__BODY_GOODBYE] = { req_goodbye, NULL, NEED_NOTHING, 0 },
	[RINGMQ__FRAME__BODY_PONG] = { req_pong, NULL, NEED_NOTHING, 0 },
	[RINGMQ__FRAME__BODY_QUEUE_CREATE] = { req_queue_create, NULL,
					       ON_QUEUE(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_QUEUE_DELETE] = { req_queue_delete, "queue delete",
					       ON_QUEUE(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_QUEUE_SET] = { req_queue_set, "queue set",
					    ON_QUEUE(USER_ADMIN) },
	/* Lists only the queues the user has a permission on. */
	[RINGMQ__FRAME__BODY_QUEUE_LIST] = { req_queue_list, NULL, NEED_USER,
					     0 },
	[RINGMQ__FRAME__BODY_QUEUE_DESCRIBE] = { req_queue_describe, NULL,
						 ON_QUEUE(ANY_BITS) },
	[RINGMQ__FRAME__BODY_PURGE] = { req_purge, "purge",
					ON_QUEUE(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_PUBLISH] = { req_publish, NULL,
					  ON_QUEUE(USER_PUBLISH) },
	[RINGMQ__FRAME__BODY_SUBSCRIBE] = { req_subscribe, NULL,
					    ON_QUEUE(USER_CONSUME) },
	/* These act on the session's own subscriptions and leases, which
	 * end when the permission they came with is taken away. */
	[RINGMQ__FRAME__BODY_UNSUBSCRIBE] = { req_unsubscribe, NULL, NEED_USER,
					      0 },
	[RINGMQ__FRAME__BODY_CREDIT] = { req_credit, NULL, NEED_USER, 0 },
	[RINGMQ__FRAME__BODY_ACK] = { req_ack, NULL, NEED_USER, 0 },
	[RINGMQ__FRAME__BODY_NACK] = { req_nack, NULL, NEED_USER, 0 },
	[RINGMQ__FRAME__BODY_RELEASE] = { req_release, NULL, NEED_USER, 0 },
	[RINGMQ__FRAME__BODY_TOUCH] = { req_touch, NULL, NEED_USER, 0 },
	/* Group operations follow the queue's consume permission. */
	[RINGMQ__FRAME__BODY_GROUP_CREATE] = { req_group_create, NULL,
					       ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_GROUP_DELETE] = { req_group_delete, "group delete",
					       ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_GROUP_LIST] = { req_group_list, NULL,
					     ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_GROUP_DESCRIBE] = { req_group_describe, NULL,
						 ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_GROUP_RESET] = { req_group_reset, "group reset",
					      ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_PEEK] = { req_peek, NULL, ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_MESSAGE_SHOW] = { req_message_show, NULL,
					       ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_MESSAGE_CANCEL] = { req_message_cancel,
						 "message cancel",
						 ON_QUEUE(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_DEAD_LETTER_LIST] = { req_dead_letter_list, NULL,
						   ON_QUEUE(READ_BITS) },
	[RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE] = { req_dead_letter_redrive,
						      "dead-letter redrive",
						      ON_QUEUE(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_STATS] = { req_stats, NULL, NEED_USER, 0 },
	[RINGMQ__FRAME__BODY_BACKUP] = { req_backup, "backup",
					 ON_ALL(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_USER_PUT] = { req_user_put, "user put",
					   NEED_SELF_OR_ALL, USER_ADMIN },
	[RINGMQ__FRAME__BODY_USER_DELETE] = { req_user_delete, "user delete",
					      ON_ALL(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_USER_LIST] = { req_user_list, NULL,
					    ON_ALL(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_ACL_SET] = { req_acl_set, "acl set",
					  ON_ALL(USER_ADMIN) },
	[RINGMQ__FRAME__BODY_ACL_DELETE] = { req_acl_delete, "acl delete",
					     ON_ALL(USER_ADMIN) },
	/* Answers only for the queues the user has a permission on. */
	[RINGMQ__FRAME__BODY_METADATA] = { req_metadata, NULL, NEED_USER, 0 },
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

/* What a request names, for permissions and the audit line: its queue (a
 * new one too), its backup path or its user. */
static const char *
request_target(const Ringmq__Frame *f, const char **group)
{
	*group = NULL;
	switch (f->body_case) {
	case RINGMQ__FRAME__BODY_QUEUE_CREATE: return f->queue_create->name;
	case RINGMQ__FRAME__BODY_BACKUP: return f->backup->path;
	case RINGMQ__FRAME__BODY_USER_PUT: return f->user_put->name;
	case RINGMQ__FRAME__BODY_USER_DELETE: return f->user_delete->name;
	case RINGMQ__FRAME__BODY_ACL_SET: return f->acl_set->user;
	case RINGMQ__FRAME__BODY_ACL_DELETE: return f->acl_delete->user;
	default: return frame_target(f, group);
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
	const struct session *se = session_of(c);
	const char *group;
	const char *target = request_target(f, &group);

	/* Who first, and the target bounded: a long path must not push the
	 * asker out of the line. */
	log_info("audit: conn %llu from %s%s%s asks %s of %.256s%s%.200s",
		 (unsigned long long)conn_id(c), conn_peer(c),
		 se->user != NULL ? " as " : "",
		 se->user != NULL ? se->user->name : "", what,
		 target != NULL ? target : "?", group != NULL ? "/" : "",
		 group != NULL ? group : "");
}

/* Refuses a request the user may not make: PERMISSION_DENIED, nothing
 * done. Logged, at most a line a second (a client retrying in a loop
 * must not flood the log), with the count of those not logged. */
static void
deny(struct session *se, const Ringmq__Frame *f, const char *target)
{
	struct req_env *env = se->env;
	uint64_t now = clock_mono_ms();
	const ProtobufCFieldDescriptor *fd;
	char why[400];

	snprintf(why, sizeof(why), "user %s may not do that on %.200s",
		 se->user->name, target != NULL ? target : "this broker");
	req_send_error(se->c, f->request_id,
		       RINGMQ__ERROR_CODE__PERMISSION_DENIED, why);
	if (now - env->denied_logged_ms < 1000 && env->denied_logged_ms != 0) {
		env->denied_unlogged++;
		return;
	}
	fd = protobuf_c_message_descriptor_get_field(&ringmq__frame__descriptor,
						     (unsigned)f->body_case);
	log_warn("audit: conn %llu from %s as %s denied %s of %.200s (%llu "
		 "more denied since the last line)",
		 (unsigned long long)conn_id(se->c), conn_peer(se->c),
		 se->user->name, fd != NULL ? fd->name : "a request",
		 target != NULL ? target : "-",
		 (unsigned long long)env->denied_unlogged);
	env->denied_logged_ms = now;
	env->denied_unlogged = 0;
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
	if (se->auth == AUTH_FAILED) {
		/* Its refusal waits out the delay: read nothing meanwhile. */
	} else if (se->refuse_code != 0) {
		req_send_error(c, f->request_id, se->refuse_code,
			       se->refuse_why);
		conn_close(c, se->refuse_why);
	} else if (!se->is_hello_done && se->auth != AUTH_NONE &&
		   !(se->auth == AUTH_CHALLENGED &&
		     f->body_case == RINGMQ__FRAME__BODY_AUTH_RESPONSE)) {
		auth_fail(se, f->request_id,
			  "a request before authentication completed");
	} else if (!se->is_hello_done &&
		   f->body_case != RINGMQ__FRAME__BODY_HELLO &&
		   f->body_case != RINGMQ__FRAME__BODY_AUTH_RESPONSE) {
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
			const char *group;
			/* Looked for only when there is a user to check. */
			const char *target = se->user != NULL
						     ? request_target(f, &group)
						     : NULL;

			if (se->user != NULL &&
			    !auth_may(se, f, kind->need, kind->bits, target))
				deny(se, f, target);
			else {
				if (kind->audit != NULL)
					audit(c, kind->audit, f);
				kind->fn(c, f);
			}
		} else
			req_send_error(c, f->request_id,
				       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
				       "not a request");
	}
	codec_arena_reset(&se->arena);
	return 0;
}
