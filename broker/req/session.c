/*
 * session: see session.h. The conn_ops of a session, and the requests
 * about the session itself: ping, pong, goodbye, and the HelloOk that
 * ends a hello (auth.c has the hello itself).
 */
#include "req/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/vec.h"
#include "req/req.h"

#define ARENA_CAP_FACTOR 8u /* decode arena: this many times a frame */

struct req_env *
req_env_of(struct conn *c)
{
	return session_of(c)->env;
}

/* ---------------------------------------------------------- conn_ops */

static void *
session_open(void *ctx, struct conn *c)
{
	struct req_env *env = ctx;
	struct session *se = calloc(1, sizeof(*se));

	if (se == NULL)
		return NULL;
	se->c = c;
	se->env = env;
	se->lim.max_frame_bytes = env->cfg->max_frame_bytes;
	se->lim.max_batch_count = env->cfg->max_batch_count;
	se->lim.max_header_count = env->cfg->max_header_count;
	codec_arena_init(&se->arena,
			 (size_t)env->cfg->max_frame_bytes * ARENA_CAP_FACTOR);
	lease_owner_init(&se->lo);
	se->next = env->sessions;
	if (env->sessions != NULL)
		env->sessions->prev = se;
	env->sessions = se;
	return se;
}

static int
session_frame(void *session, const uint8_t *body, size_t len)
{
	return req_frame(session, body, len);
}

static void
session_broken(void *session, int rc, const char *why)
{
	struct session *se = session;

	req_send_error(se->c, 0, err_to_wire(rc), why);
}

static void
session_trim(void *session)
{
	struct session *se = session;

	codec_arena_fini(&se->arena);
}

static void
session_writable(void *session)
{
	struct session *se = session;

	for (size_t i = 0; i < se->nsubs; i++)
		sub_wake(se->env->gs, se->subs[i]);
}

static void
session_ping(void *session, uint64_t nonce)
{
	struct session *se = session;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping p = RINGMQ__PING__INIT;

	p.has_nonce = 1;
	p.nonce = nonce;
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &p;
	(void)req_send(se->c, &f);
}

static void
session_goodbye(void *session)
{
	struct session *se = session;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Goodbye g = RINGMQ__GOODBYE__INIT;

	g.reason = (char *)"broker shutting down";
	f.body_case = RINGMQ__FRAME__BODY_GOODBYE;
	f.goodbye = &g;
	(void)req_send(se->c, &f);
}

static int
session_is_started(void *session)
{
	return ((struct session *)session)->is_hello_done;
}

static int
session_is_done_with_work(void *session, uint64_t now_ms, uint64_t idle_ms)
{
	struct session *se = session;

	return se->lo.leases == NULL && now_ms - se->lo.last_end_ms >= idle_ms;
}

/* Its subscriptions end; its leases end, as failures unless the broker
 * shuts down (a restart releases leases without counting them). */
static void
session_closing(void *session, int is_failure)
{
	struct session *se = session;

	if (se->lo.leases != NULL)
		log_debug("conn %llu: closing with leases held",
			  (unsigned long long)conn_id(se->c));
	for (size_t i = 0; i < se->nsubs; i++)
		sub_free(se->env->gs, se->subs[i]);
	se->nsubs = 0;
	groups_owner_gone(se->env->gs, &se->lo, is_failure);
}

static void
session_free(void *session)
{
	struct session *se = session;

	if (se->prev != NULL)
		se->prev->next = se->next;
	else
		se->env->sessions = se->next;
	if (se->next != NULL)
		se->next->prev = se->prev;
	session_auth_end(se, 1);
	codec_arena_fini(&se->arena);
	lease_owner_fini(&se->lo);
	free(se->holds);
	free(se->subs);
	free(se);
}

void
session_auth_end(struct session *se, int is_gone)
{
	if (se->auth == AUTH_WAITING || se->auth == AUTH_FAILED)
		for (struct session **pp = &se->env->auth_waiting; *pp != NULL;
		     pp = &(*pp)->fail_next)
			if (*pp == se) {
				*pp = se->fail_next;
				se->fail_next = NULL;
				break;
			}
	if (se->scram != NULL) {
		scram_server_fini(&se->scram->ss);
		explicit_bzero(se->scram, sizeof(*se->scram));
		free(se->scram);
		se->scram = NULL;
	}
	if (is_gone && se->user != NULL) {
		se->user->connections--;
		user_unref(se->user);
		se->user = NULL;
	}
}

const struct conn_ops session_conn_ops = {
	.open = session_open,
	.frame = session_frame,
	.broken = session_broken,
	.trim = session_trim,
	.writable = session_writable,
	.ping = session_ping,
	.goodbye = session_goodbye,
	.is_started = session_is_started,
	.is_done_with_work = session_is_done_with_work,
	.closing = session_closing,
	.free = session_free,
};

void
session_refuse(struct conn *c, int code, const char *why)
{
	struct session *se = session_of(c);

	se->refuse_code = code;
	se->refuse_why = why;
}

/* ------------------------------------------------------ subscriptions */

struct sub *
session_find_sub(struct session *se, uint32_t id, size_t *index)
{
	for (size_t i = 0; i < se->nsubs; i++)
		if (sub_id(se->subs[i]) == id) {
			if (index)
				*index = i;
			return se->subs[i];
		}
	return NULL;
}

int
session_add_sub(struct session *se, struct sub *s)
{
	struct sub **subs = vec_grow(se->subs, &se->capsubs, se->nsubs + 1,
				     sizeof(*subs), 4);

	if (subs == NULL)
		return -ENOMEM;
	se->subs = subs;
	se->subs[se->nsubs++] = s;
	return 0;
}

/* ----------------------------------------------------------- requests */

void
session_hello_ok(struct session *se, uint64_t request_id, uint64_t producer_id,
		 const char *auth_final)
{
	Ringmq__HelloOk ok = RINGMQ__HELLO_OK__INIT;
	const struct config *cfg = se->env->cfg;

	se->is_hello_done = 1;
	ok.version = SESSION_PROTOCOL_VERSION;
	ok.max_frame_bytes = cfg->max_frame_bytes;
	ok.max_message_bytes = cfg->max_message_bytes;
	ok.max_batch_count = cfg->max_batch_count;
	ok.has_max_header_count = 1;
	ok.max_header_count = cfg->max_header_count;
	ok.has_max_key_bytes = ok.has_max_dedup_id_bytes = 1;
	ok.has_max_header_name_bytes = 1;
	ok.max_key_bytes = ok.max_dedup_id_bytes = QUEUE_MAX_FIELD_BYTES;
	ok.max_header_name_bytes = QUEUE_MAX_FIELD_BYTES;
	/* Unique across restarts: the boot epoch, then a counter. 0 is
	 * none: no id the broker gives is 0. */
	ok.producer_id =
		producer_id != 0
			? producer_id
			: (se->env->boot_epoch << 32) |
				  (++se->env->producer_counter & 0xffffffffu);
	ok.broker_version = (char *)RINGMQ_VERSION;
	if (auth_final != NULL) {
		ok.has_auth_final = 1;
		ok.auth_final.data = (uint8_t *)auth_final;
		ok.auth_final.len = strlen(auth_final);
	}
	if (se->user != NULL)
		ok.user = se->user->name;
	se->producer_id = ok.producer_id;
	req_answer(se->c, request_id, RINGMQ__FRAME__BODY_HELLO_OK, &ok);
}

void
req_ping(struct conn *c, const Ringmq__Frame *f)
{
	Ringmq__Pong pong = RINGMQ__PONG__INIT;

	pong.has_nonce = f->ping->has_nonce;
	pong.nonce = f->ping->nonce;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_PONG, &pong);
}

void
req_pong(struct conn *c, const Ringmq__Frame *f)
{
	/* Any input already cleared the ping; nothing to answer. */
	(void)c;
	(void)f;
}

void
req_goodbye(struct conn *c, const Ringmq__Frame *f)
{
	(void)f;
	conn_close(c, "the peer said goodbye");
}
