/*
 * auth: the hello, with its authentication (SCRAM-SHA-256) when auth is
 * on, the permission check
 * every request passes before its handler, and what a change to a user
 * does to the sessions acting as it.
 *
 * Owns the broker's secret for made-up salts, the failures seen per client
 * address (each failure delays the next refusal to that address more) and
 * the refusals waiting out their delay. A failed exchange is answered with
 * UNAUTHENTICATED, the same for every cause, and its connection closes.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdint.h>

#include "ringmq.pb-c.h"

struct conn;
struct req_env;
struct session;
struct user;
struct users;

struct auth_env; /* opaque */

/* secret: SCRAM_KEY_LEN bytes (copied) that make the stand-in salts of
 * unknown users, the same across restarts (the store's).
 * @return 0 or -ENOMEM. */
int auth_env_new(struct auth_env **out, const uint8_t *secret);
void auth_env_free(struct auth_env *a);

/* Failed exchanges since start, for metrics. */
uint64_t auth_failures(const struct auth_env *a);

/* Refuses session se's exchange: logged, counted against its address,
 * answered with UNAUTHENTICATED after the delay; nothing of it is read
 * meanwhile. why is static. */
void auth_fail(struct session *se, uint64_t request_id, const char *why);

/* Sends the refusals whose delay is over. @return ms until the next one
 * is due, or -1 when none waits. */
int64_t auth_tick(struct req_env *env, uint64_t now_ms);

/*
 * Logins outside the protocol (the HTTP dashboard's form), held to the
 * same rules and the same count of failures per address:
 * auth_login_wait says how many ms the host of peer ("HOST:PORT") must
 * wait before its next attempt (0: now); auth_login checks user name's
 * password (an unknown user or a wrong password: a failure, counted
 * against the host and logged, after the same work). @return the user (a
 * reference the caller owns: user_unref), or NULL.
 */
uint64_t auth_login_wait(struct auth_env *a, const char *peer, uint64_t now_ms);
struct user *auth_login(struct auth_env *a, struct users *us, const char *peer,
			const char *name, const char *password,
			uint64_t now_ms);

/* What the request needs, from the request table (dispatch.c). */
enum auth_need {
	NEED_NOTHING = 0, /* any session, authenticated or not (hello, ping) */
	NEED_USER,	  /* any authenticated user (stats) */
	NEED_QUEUE,	  /* one of the bits on the request's queue */
	NEED_ALL,	  /* one of the bits on "*" (backup, users) */
	NEED_SELF_OR_ALL, /* on "*", or a user changing its own password */
};

/* 1 if se may run f, which needs bits (USER_*) as need says on queue
 * (the request's target, or NULL). Sessions without a user (auth not on)
 * may do everything. */
int auth_may(const struct session *se, const Ringmq__Frame *f,
	     enum auth_need need, unsigned bits, const char *queue);

/* A users hook (ctx: the req_env): a deleted user's sessions close; the
 * others end their subscriptions and leases on queues the user may no
 * longer consume from. */
void auth_user_changed(void *ctx, struct user *u);

struct lease_quota;

/* A groups quota-room callback (ctx: the req_env): the sessions sharing
 * q may take leases again. */
void auth_quota_room(void *ctx, struct lease_quota *q);

#endif
