/*
 * session: what the broker knows of one client connection above its bytes.
 *
 * Owns the hello's outcome (producer id, the user it authenticated as,
 * the SCRAM exchange while it runs), the decode arena and limits, the
 * subscriptions and the leases the client holds. net/conn
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
#include "scram.h"

#define SESSION_PROTOCOL_VERSION 1u /* Hello.version spoken */

struct req_env;
struct user;

/* A partition's sequenced publishes held back on a session. */
struct quota_hold {
	uint32_t qid, partition;
	uint64_t seq; /* the refused batch's first sequence */
};

/* One SCRAM exchange, from hello to AuthResponse (auth.c). */
struct auth_exchange {
	struct scram_server ss;
	char name[SCRAM_USER_MAX + 1]; /* as the client-first gave it */
	char first[SCRAM_MSG_MAX + 1]; /* AUTH_WAITING: the client-first */
};

/* Where a session is in authentication (auth.c). */
enum auth_state {
	AUTH_NONE = 0,	 /* no exchange: auth is not on, or no hello yet */
	AUTH_WAITING,	 /* hello read; its address must wait its turn */
	AUTH_CHALLENGED, /* server-first sent: waiting for AuthResponse */
	AUTH_DONE,	 /* authenticated as user */
	AUTH_FAILED,	 /* the refusal waits for its delay; read nothing */
};

struct session {
	struct conn *c;		     /* borrowed: the connection owns this */
	struct req_env *env;	     /* borrowed */
	struct session *next, *prev; /* env's list of every session */
	int is_hello_done;
	/* Authentication (auth.c). */
	enum auth_state auth;
	struct user *user;	     /* ref: who it acts as; NULL: no auth */
	struct auth_exchange *scram; /* owned while AUTH_CHALLENGED */
	uint64_t hello_request_id;   /* AUTH_CHALLENGED: the hello's */
	uint64_t hello_producer_id;  /* ... and the producer it resumes */
	uint64_t auth_due_ms;	     /* AUTH_WAITING, AUTH_FAILED: when */
	uint64_t auth_request_id;    /* ... which request */
	const char *auth_why;	     /* ... and why (static, logged) */
	struct session *fail_next;   /* env's list of sessions waiting */
	/* Sequenced publishes refused over the user's rate quota: until
	 * the refused batch comes again, later ones of its partition are
	 * refused too, so that the batches stay in sequence (publish.c). */
	struct quota_hold *holds; /* owned [nholds] */
	size_t nholds, capholds;
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

/* Ends se's authentication state: out of the env's waiting list, its
 * exchange wiped and freed; with is_gone, its user let go too. */
void session_auth_end(struct session *se, int is_gone);

/* Answers hello request_id with HelloOk: the limits, the producer id
 * (producer_id, or a new one when 0), and what authentication gives. */
void session_hello_ok(struct session *se, uint64_t request_id,
		      uint64_t producer_id, const char *auth_final);

/* Refuses c (over the connection limit): its first frame is answered
 * with an Error of wire code code, and it closes. A silent peer goes at
 * the idle timeout. */
void session_refuse(struct conn *c, int code, const char *why);

/* Ends the subscriptions and leases se holds on queues its user may no
 * longer consume from (consume.c). */
void session_revoke(struct session *se);

/* The subscription of the session with id, or NULL; its index in subs. */
struct sub *session_find_sub(struct session *se, uint32_t id, size_t *index);
/* Keeps s among the session's subscriptions. @return 0 or -ENOMEM. */
int session_add_sub(struct session *se, struct sub *s);

#endif
