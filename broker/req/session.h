/*
 * session: what the broker knows of one client connection above its bytes.
 *
 * Owns the hello (protocol version, producer id), the decode arena and
 * limits, the subscriptions and the leases the client holds. net/conn
 * reaches it only through session_conn_ops, set at start-up; handlers
 * reach it from their connection (session_of).
 */
#ifndef RINGMQ_SESSION_H
#define RINGMQ_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/group.h"
#include "net/conn.h"
#include "req/codec.h"

struct req_env;

struct session {
	struct conn *c;	     /* borrowed: the connection owns this */
	struct req_env *env; /* borrowed */
	int is_hello_done;
	uint64_t producer_id;	/* announced in hello: sequences are its */
	int refuse_code;	/* non-zero: answer the first frame, close */
	const char *refuse_why; /* static */
	struct codec_arena arena;
	struct codec_limits lim;
	struct lease_owner lo;
	struct sub **subs; /* owned array of this session's subscriptions */
	size_t nsubs, capsubs;
	uint32_t next_sub_id;
};

/* The conn_ops of a session; its ctx is a struct req_env. */
extern const struct conn_ops session_conn_ops;

static inline struct session *
session_of(struct conn *c)
{
	return conn_session(c);
}

/* Refuses c (over the connection limit): its first frame is answered
 * with an Error of wire code code, and it closes. A silent peer goes at
 * the idle timeout. */
void session_refuse(struct conn *c, int code, const char *why);

/* The subscription of the session with id, or NULL; its index in subs. */
struct sub *session_find_sub(struct session *se, uint32_t id, size_t *index);
/* Keeps s among the session's subscriptions. @return 0 or -ENOMEM. */
int session_add_sub(struct session *se, struct sub *s);

#endif
