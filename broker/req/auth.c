/*
 * auth: see auth.h.
 */
#include "req/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/tls.h"
#include "req/req.h"
#include "req/session.h"
#include "scram.h"

#include <openssl/crypto.h>

/* The refusal of a failed exchange waits FAIL_DELAY_MS x 2^(failures
 * of its address in the window - 1), at most FAIL_DELAY_MAX_MS, and so
 * does the next exchange its address starts: exchanges from an address
 * with failures are let in one per delay, however many connections it
 * opens. A guesser gets a few tries a minute, a mistyped password a short
 * wait. */
#define FAIL_DELAY_MS	  250u
#define FAIL_DELAY_MAX_MS 10000u
#define FAIL_WINDOW_MS	  (15u * 60u * 1000u) /* failures forgotten after */
#define FAIL_ADDRS	  4096u		      /* addresses remembered */

#define FAKE_SALT_BYTES 16u

struct fail_addr {
	char host[64];
	uint32_t failures;
	uint64_t last_ms; /* monotonic: the last failure */
	uint64_t next_ms; /* monotonic: the next exchange starts then */
};

struct auth_env {
	uint8_t secret[SCRAM_KEY_LEN]; /* for made-up salts; the store's */
	struct fail_addr *addrs;       /* owned [naddrs] */
	size_t naddrs, capaddrs;
	uint64_t failures;
};

int
auth_env_new(struct auth_env **out, const uint8_t *secret)
{
	struct auth_env *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (a == NULL)
		return -ENOMEM;
	memcpy(a->secret, secret, sizeof(a->secret));
	*out = a;
	return 0;
}

void
auth_env_free(struct auth_env *a)
{
	if (a == NULL)
		return;
	free(a->addrs);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

uint64_t
auth_failures(const struct auth_env *a)
{
	return a != NULL ? a->failures : 0;
}

/* The host part of "HOST:PORT" or "[HOST]:PORT". */
static void
peer_host(const char *peer, char *host, size_t size)
{
	const char *colon = strrchr(peer, ':');
	size_t n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);

	if (n >= size)
		n = size - 1;
	memcpy(host, peer, n);
	host[n] = '\0';
}

static uint64_t
fail_delay(uint32_t failures)
{
	uint64_t delay = FAIL_DELAY_MS;

	for (uint32_t i = 1; i < failures && delay < FAIL_DELAY_MAX_MS; i++)
		delay *= 2;
	return delay < FAIL_DELAY_MAX_MS ? delay : FAIL_DELAY_MAX_MS;
}

/* The failures remembered of host, or NULL; forgets stale ones. */
static struct fail_addr *
fail_find(struct auth_env *a, const char *host, uint64_t now_ms,
	  struct fail_addr **oldest)
{
	struct fail_addr *fa = NULL;

	*oldest = NULL;
	for (size_t i = 0; i < a->naddrs; i++) {
		struct fail_addr *x = &a->addrs[i];

		if (now_ms - x->last_ms > FAIL_WINDOW_MS)
			x->failures = 0;
		if (strcmp(x->host, host) == 0)
			fa = x;
		if (*oldest == NULL || x->last_ms < (*oldest)->last_ms)
			*oldest = x;
	}
	return fa;
}

/* When an exchange of host may start (now, unless it failed lately):
 * each one waiting pushes the next one a delay later. */
static uint64_t
admit_at(struct auth_env *a, const char *host, uint64_t now_ms)
{
	struct fail_addr *oldest;
	struct fail_addr *fa = fail_find(a, host, now_ms, &oldest);
	uint64_t at;

	if (fa == NULL || fa->failures == 0 || fa->next_ms <= now_ms)
		return now_ms;
	at = fa->next_ms;
	fa->next_ms += fail_delay(fa->failures);
	return at;
}

/* Counts a failure of host; @return the delay its refusal waits. */
static uint64_t
fail_count(struct auth_env *a, const char *host, uint64_t now_ms)
{
	struct fail_addr *oldest;
	struct fail_addr *fa = fail_find(a, host, now_ms, &oldest);
	uint64_t delay;

	if (fa == NULL && a->naddrs < FAIL_ADDRS) {
		struct fail_addr *p =
			realloc(a->addrs, (a->naddrs + 1) * sizeof(*a->addrs));

		if (p != NULL) {
			a->addrs = p;
			fa = &a->addrs[a->naddrs++];
			memset(fa, 0, sizeof(*fa));
		}
	}
	if (fa == NULL && oldest == NULL)
		return FAIL_DELAY_MAX_MS; /* no memory for the first one */
	if (fa == NULL) {
		/* Full (or no memory): the stalest address makes room. */
		fa = oldest;
		memset(fa, 0, sizeof(*fa));
	}
	snprintf(fa->host, sizeof(fa->host), "%s", host);
	fa->failures++;
	fa->last_ms = now_ms;
	delay = fail_delay(fa->failures);
	if (fa->next_ms < now_ms + delay)
		fa->next_ms = now_ms + delay;
	return delay;
}

uint64_t
auth_login_wait(struct auth_env *a, const char *peer, uint64_t now_ms)
{
	struct fail_addr *oldest, *fa;
	char host[64];

	peer_host(peer, host, sizeof(host));
	fa = fail_find(a, host, now_ms, &oldest);

	if (fa == NULL || fa->failures == 0 || fa->next_ms <= now_ms)
		return 0;
	return fa->next_ms - now_ms;
}

struct user *
auth_login(struct auth_env *a, struct users *us, const char *peer,
	   const char *name, const char *password, uint64_t now_ms)
{
	struct user *u = name != NULL ? users_find(us, name) : NULL;
	uint8_t stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	char host[64];
	int ok = 0;

	peer_host(peer, host, sizeof(host));
	if (u == NULL) {
		/* As long as a known user's check: nothing tells them
		 * apart. */
		if (scram_salted_keys(password ? password : "", a->secret,
				      FAKE_SALT_BYTES, USER_DEFAULT_ITERATIONS,
				      stored, server) != 0)
			ok = 0;
	} else if (password != NULL &&
		   scram_salted_keys(password, u->salt, u->salt_len,
				     u->iterations, stored, server) == 0) {
		ok = CRYPTO_memcmp(stored, u->stored_key, sizeof(stored)) == 0;
	}
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	if (!ok) {
		a->failures++;
		(void)fail_count(a, host, now_ms);
		log_warn("http: login failed for %s from %s",
			 name != NULL && user_name_ok(name) ? name : "?", host);
		return NULL;
	}
	user_ref(u);
	log_info("http: %s logged in from %s", u->name, host);
	return u;
}

/* Puts se among the sessions waiting, at due_ms (sorted: delays differ
 * by address). */
static void
wait_until(struct session *se, uint64_t due_ms)
{
	struct session **pp;

	se->auth_due_ms = due_ms;
	for (pp = &se->env->auth_waiting; *pp != NULL; pp = &(*pp)->fail_next)
		if ((*pp)->auth_due_ms > due_ms)
			break;
	se->fail_next = *pp;
	*pp = se;
}

void
auth_fail(struct session *se, uint64_t request_id, const char *why)
{
	struct auth_env *a = se->env->auth;
	char host[64];
	uint64_t now = clock_mono_ms();

	if (se->auth == AUTH_FAILED)
		return;
	session_auth_end(se, 0);
	peer_host(conn_peer(se->c), host, sizeof(host));
	a->failures++;
	se->auth = AUTH_FAILED;
	se->auth_request_id = request_id;
	se->auth_why = why;
	wait_until(se, now + fail_count(a, host, now));
	log_warn("audit: conn %llu from %s failed authentication: %s",
		 (unsigned long long)conn_id(se->c), conn_peer(se->c), why);
}

static void challenge(struct session *se);

int64_t
auth_tick(struct req_env *env, uint64_t now_ms)
{
	while (env->auth_waiting != NULL) {
		struct session *se = env->auth_waiting;

		if (se->auth_due_ms > now_ms)
			return (int64_t)(se->auth_due_ms - now_ms);
		env->auth_waiting = se->fail_next;
		se->fail_next = NULL;
		if (se->auth == AUTH_WAITING) {
			challenge(se);
			continue;
		}
		/* Every cause gets the same answer: nothing to learn from
		 * it. */
		req_send_error(se->c, se->auth_request_id,
			       RINGMQ__ERROR_CODE__UNAUTHENTICATED,
			       "authentication failed");
		conn_close(se->c, "authentication failed");
	}
	return -1;
}

/* Copies a bytes field holding text: no NUL inside, at most
 * SCRAM_MSG_MAX. @return 0 or -1. */
static int
text_of(const ProtobufCBinaryData *b, char *out, size_t size)
{
	if (b->len == 0 || b->len >= size || memchr(b->data, 0, b->len))
		return -1;
	memcpy(out, b->data, b->len);
	out[b->len] = '\0';
	return 0;
}

/* The user name c's verified client certificate gives (tls-user-from),
 * into name. @return 1, or 0 without one. */
static int
cert_user(struct conn *c, char *name, size_t size)
{
	const struct tls_conn *tc = conn_tls(c);
	char cn[STORE_USER_MAX + 2], san[STORE_USER_MAX + 2];

	if (tc == NULL ||
	    !tls_conn_peer_identity(tc, cn, sizeof(cn), san, sizeof(san)))
		return 0;
	snprintf(name, size, "%s",
		 session_of(c)->env->cfg->is_tls_user_san ? san : cn);
	return name[0] != '\0';
}

/* se proved it is u: HelloOk (with the server's final message of a SCRAM
 * exchange), unless u is at its max connections. */
static void
authenticated(struct session *se, struct user *u, uint64_t request_id,
	      uint64_t producer_id, const char *auth_final)
{
	struct conn *c = se->c;

	session_auth_end(se, 0);
	if (u->quota.max_connections != 0 &&
	    u->connections >= u->quota.max_connections) {
		/* Who it is was proven: refused for the quota, not counted
		 * as a failure. */
		u->refused_connections++;
		log_warn("conn %llu from %s: user %s is at its %u connections",
			 (unsigned long long)conn_id(c), conn_peer(c), u->name,
			 u->quota.max_connections);
		req_fail(c, request_id, RINGMQ__ERROR_CODE__QUOTA_EXCEEDED,
			 "the user is at its max connections");
		return;
	}
	se->auth = AUTH_DONE;
	se->user = u;
	se->lo.quota = &u->leases; /* it holds no lease yet */
	user_ref(u);
	u->connections++;
	log_debug("conn %llu from %s authenticated as %s%s",
		  (unsigned long long)conn_id(c), conn_peer(c), u->name,
		  auth_final == NULL ? " by its certificate" : "");
	session_hello_ok(se, request_id, producer_id, auth_final);
}

static void
auth_hello(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	const Ringmq__Hello *h = f->hello;
	char host[64], name[STORE_USER_MAX + 2];
	struct user *u;
	uint64_t now, at;

	if (!h->has_credentials && cert_user(c, name, sizeof(name))) {
		/* Its certificate says who it is. */
		u = user_name_ok(name) ? users_find(se->env->users, name)
				       : NULL;
		if (u == NULL) {
			auth_fail(se, f->request_id,
				  "no user of its certificate's name");
			return;
		}
		authenticated(se, u, f->request_id,
			      h->has_producer_id ? h->producer_id : 0, NULL);
		return;
	}
	if (!h->has_credentials) {
		/* A client without credentials guessed nothing: refused at
		 * once, not counted. */
		req_fail(c, f->request_id, RINGMQ__ERROR_CODE__UNAUTHENTICATED,
			 "this broker requires authentication: give a user "
			 "and password");
		return;
	}
	se->scram = calloc(1, sizeof(*se->scram));
	if (se->scram == NULL) {
		req_fail(c, f->request_id, RINGMQ__ERROR_CODE__INTERNAL,
			 "out of memory");
		return;
	}
	se->hello_request_id = f->request_id;
	se->hello_producer_id = h->has_producer_id ? h->producer_id : 0;
	if (h->mechanism != NULL &&
	    strcmp(h->mechanism, "SCRAM-SHA-256") != 0) {
		auth_fail(se, f->request_id, "unsupported mechanism");
		return;
	}
	if (text_of(&h->credentials, se->scram->first,
		    sizeof(se->scram->first)) < 0) {
		auth_fail(se, f->request_id, "malformed client-first message");
		return;
	}
	peer_host(conn_peer(c), host, sizeof(host));
	now = clock_mono_ms();
	at = admit_at(se->env->auth, host, now);
	if (at > now) {
		/* Its address failed lately: this exchange waits its turn. */
		se->auth = AUTH_WAITING;
		wait_until(se, at);
		return;
	}
	challenge(se);
}

/* Answers the waiting hello with the server-first message. */
static void
challenge(struct session *se)
{
	struct auth_exchange *x = se->scram;
	char out[SCRAM_MSG_MAX + 1];
	Ringmq__AuthChallenge ch = RINGMQ__AUTH_CHALLENGE__INIT;
	struct user *u;
	int n;

	se->auth = AUTH_NONE;
	n = scram_server_first(&x->ss, x->first, NULL, x->name,
			       sizeof(x->name));
	explicit_bzero(x->first, sizeof(x->first));
	if (n < 0) {
		auth_fail(se, se->hello_request_id,
			  "malformed client-first message");
		return;
	}
	u = user_name_ok(x->name) ? users_find(se->env->users, x->name) : NULL;
	if (u != NULL)
		n = scram_server_challenge(&x->ss, u->salt, u->salt_len,
					   u->iterations, out, sizeof(out));
	else {
		/* The same salt each time for the same unknown name: the
		 * exchange looks like a known user's and fails at the proof. */
		uint8_t salt[FAKE_SALT_BYTES];

		n = scram_fake_salt(se->env->auth->secret, x->name, salt,
				    sizeof(salt));
		if (n == 0)
			n = scram_server_challenge(&x->ss, salt, sizeof(salt),
						   USER_DEFAULT_ITERATIONS, out,
						   sizeof(out));
	}
	if (n < 0) {
		auth_fail(se, se->hello_request_id, scram_strerror(n));
		return;
	}
	se->auth = AUTH_CHALLENGED;
	ch.data.data = (uint8_t *)out;
	ch.data.len = (size_t)n;
	req_answer(se->c, se->hello_request_id,
		   RINGMQ__FRAME__BODY_AUTH_CHALLENGE, &ch);
}

void
req_hello(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);

	if (se->is_hello_done) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "hello was already sent");
		return;
	}
	if (se->auth != AUTH_NONE) {
		auth_fail(se, f->request_id, "hello again mid-exchange");
		return;
	}
	if (f->hello->version != SESSION_PROTOCOL_VERSION) {
		req_fail(c, f->request_id,
			 RINGMQ__ERROR_CODE__UNSUPPORTED_VERSION,
			 "unsupported protocol version");
		return;
	}
	if (se->env->cfg->auth == CONFIG_AUTH_ON) {
		auth_hello(c, f);
		return;
	}
	/* Credentials to a broker without auth are ignored: HelloOk then
	 * carries no auth_final, and the client decides. */
	session_hello_ok(se, f->request_id,
			 f->hello->has_producer_id ? f->hello->producer_id : 0,
			 NULL);
}

void
req_auth_response(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	char msg[SCRAM_MSG_MAX + 1];
	char out[SCRAM_MSG_MAX + 1];
	struct user *u;
	int n;

	if (se->is_hello_done) {
		/* Authenticated already (or never asked to): a mistake, not
		 * a guess. */
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "no authentication under way");
		return;
	}
	if (se->auth != AUTH_CHALLENGED) {
		auth_fail(se, f->request_id, "authentication out of order");
		return;
	}
	if (text_of(&f->auth_response->data, msg, sizeof(msg)) < 0) {
		auth_fail(se, f->request_id, "malformed client-final message");
		return;
	}
	/* Looked up again: the user may have gone since the challenge. */
	u = user_name_ok(se->scram->name)
		    ? users_find(se->env->users, se->scram->name)
		    : NULL;
	if (u == NULL) {
		auth_fail(se, f->request_id, "unknown user");
		return;
	}
	n = scram_server_final(&se->scram->ss, u->stored_key, u->server_key,
			       msg, out, sizeof(out));
	if (n < 0) {
		auth_fail(se, f->request_id, scram_strerror(n));
		return;
	}
	authenticated(se, u, f->request_id, se->hello_producer_id, out);
}

/* ---------------------------------------------------------- permissions */

int
auth_may(const struct session *se, const Ringmq__Frame *f, enum auth_need need,
	 unsigned bits, const char *queue)
{
	const struct user *u = se->user;

	if (u == NULL || need == NEED_NOTHING || need == NEED_USER)
		return 1;
	switch (need) {
	case NEED_QUEUE:
		return queue != NULL && (user_perms_on(u, queue) & bits) != 0;
	case NEED_SELF_OR_ALL:
		/* Its own password, nothing else: keys, no quota. */
		if (f->body_case == RINGMQ__FRAME__BODY_USER_PUT &&
		    strcmp(f->user_put->name, u->name) == 0 &&
		    !(f->user_put->has_create && f->user_put->create) &&
		    f->user_put->quota == NULL)
			return 1;
		return (user_perms_on(u, "*") & bits) != 0;
	case NEED_ALL: return (user_perms_on(u, "*") & bits) != 0;
	default: return 0;
	}
}

/* ---------------------------------------------------------- revocation */

void
auth_user_changed(void *ctx, struct user *u)
{
	struct req_env *env = ctx;

	for (struct session *se = env->sessions; se != NULL; se = se->next) {
		if (se->user != u || conn_is_closing(se->c))
			continue;
		if (u->is_deleted) {
			log_info("audit: conn %llu from %s closes: its user %s "
				 "was deleted",
				 (unsigned long long)conn_id(se->c),
				 conn_peer(se->c), u->name);
			req_send_error(se->c, 0,
				       RINGMQ__ERROR_CODE__UNAUTHENTICATED,
				       "user deleted");
			conn_close(se->c, "its user was deleted");
			continue;
		}
		session_revoke(se);
		/* Its limits may have grown: dispatch to it again. */
		for (size_t i = 0; i < se->nsubs; i++)
			sub_wake(env->gs, se->subs[i]);
	}
}

void
auth_quota_room(void *ctx, struct lease_quota *q)
{
	struct req_env *env = ctx;

	for (struct session *se = env->sessions; se != NULL; se = se->next)
		if (se->lo.quota == q)
			for (size_t i = 0; i < se->nsubs; i++)
				sub_wake(env->gs, se->subs[i]);
}
