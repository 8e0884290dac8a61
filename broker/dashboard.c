/*
 * dashboard: see dashboard.h.
 */
#define _GNU_SOURCE
#include "dashboard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cluster/cluster.h"
#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "lib/vec.h"
#include "net/http.h"
#include "req/auth.h"
#include "store/store.h"
#include "web/assets.h"

#define DASH_SESSIONS	     256u
#define DASH_SESSION_IDLE_MS (30u * 60u * 1000u)       /* unused this long */
#define DASH_SESSION_MAX_MS  (12u * 60u * 60u * 1000u) /* whatever the use */
#define DASH_TOKEN_BYTES     32u
#define DASH_TOKEN_HEX	     (2u * DASH_TOKEN_BYTES)
#define DASH_COOKIE	     "ringmq_session"
#define DASH_FIELD_MAX	     1024u /* a login field: SCRAM_PASSWORD_MAX */

/* The answers' own headers: nothing framed, nothing fetched from elsewhere,
 * no referrer. */
#define DASH_PAGE_HEADERS                                                  \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; " \
	"style-src 'self'; connect-src 'self'; img-src 'self'; "           \
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"  \
	"X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
#define DASH_API_HEADERS "Cache-Control: no-store\r\n" DASH_PAGE_HEADERS

struct dash_session {
	char id[DASH_TOKEN_HEX + 1]; /* "": a free slot */
	char csrf[DASH_TOKEN_HEX + 1];
	struct user *u; /* a reference */
	/* The user's key at login: a new password ends the session. */
	uint8_t stored_key[STORE_KEY_LEN];
	uint64_t created_ms, used_ms; /* monotonic */
};

/* A queue's counters at the last sample, and the rates since the one
 * before. */
struct dash_rate {
	uint32_t qid;
	uint64_t published, delivered, acked;
	double publish, deliver, ack; /* per second */
};

struct dashboard {
	struct dashboard_env env;
	struct dash_session sessions[DASH_SESSIONS];
	struct dash_rate *rates; /* owned, by qid */
	size_t nrates, caprates;
	uint64_t sampled_ms; /* monotonic: the last sample; 0: none */
	uint64_t next_sample_ms;
	/* The broker's rates per sample, oldest first from history_at. */
	float history[3][DASH_HISTORY];
	size_t history_at, history_len;
};

/* ------------------------------------------------------------- helpers */

static void
reply_body(struct http_conn *c, const char *status, struct http_body *b,
	   const char *headers)
{
	if (b->is_oom) {
		static const char oom[] = "{\"error\":\"INTERNAL\",\"message\":"
					  "\"out of memory\"}\n";

		http_reply(c, "500 Internal Server Error", "application/json",
			   DASH_API_HEADERS, oom, sizeof(oom) - 1);
	} else {
		http_reply(c, status, "application/json", headers, b->data,
			   b->len);
	}
	free(b->data);
}

/* A JSON string: names are of restricted characters, but nothing here
 * relies on it. */
static void
json_str(struct http_body *b, const char *s)
{
	http_body_printf(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			http_body_printf(b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			http_body_printf(b, "\\u%04x", ch);
		else
			http_body_printf(b, "%c", ch);
	}
	http_body_printf(b, "\"");
}

static void
reply_error(struct http_conn *c, const char *status, const char *code,
	    const char *message)
{
	struct http_body b = { 0 };

	http_body_printf(&b, "{\"error\":\"%s\",\"message\":", code);
	json_str(&b, message);
	http_body_printf(&b, "}\n");
	reply_body(c, status, &b, DASH_API_HEADERS);
}

/* The status and wire-style code of a broker error. */
static void
reply_rc(struct http_conn *c, int rc)
{
	switch (rc) {
	case -RMQ_EQUEUE_NOT_FOUND:
		reply_error(c, "404 Not Found", "QUEUE_NOT_FOUND",
			    "no such queue");
		break;
	case -RMQ_EGROUP_NOT_FOUND:
		reply_error(c, "404 Not Found", "GROUP_NOT_FOUND",
			    "no such group");
		break;
	case -RMQ_EQUEUE_FULL:
		reply_error(c, "409 Conflict", "QUEUE_FULL",
			    "the queue is at its limits");
		break;
	case -RMQ_ESTORAGE_FULL:
		reply_error(c, "507 Insufficient Storage", "STORAGE_FULL",
			    "storage is full");
		break;
	default:
		reply_error(c, "500 Internal Server Error", "INTERNAL",
			    rc == -ENOMEM ? "out of memory"
					  : "the action failed");
	}
}

static void
random_hex(char *out, size_t bytes)
{
	unsigned char raw[DASH_TOKEN_BYTES];

	if (bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1) {
		out[0] = '\0'; /* no session rather than a guessable one */
		return;
	}
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
}

/* 1 when a (NUL-terminated) equals b[0..blen), in time independent of
 * where they differ. */
static int
token_equal(const char *a, const char *b, size_t blen)
{
	return strlen(a) == blen && blen > 0 && CRYPTO_memcmp(a, b, blen) == 0;
}

/* The value of cookie name in c's Cookie header, its length in *len. */
static const char *
cookie_value(const struct http_conn *c, const char *name, size_t *len)
{
	size_t hlen, nlen = strlen(name);
	const char *h = http_header(c, "cookie", &hlen);
	const char *end = h + hlen;

	for (const char *p = h; p != NULL && p < end;) {
		while (p < end && (*p == ' ' || *p == ';'))
			p++;
		if ((size_t)(end - p) > nlen && memcmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			const char *v = p + nlen + 1;
			const char *semi = memchr(v, ';', (size_t)(end - v));

			*len = (size_t)((semi ? semi : end) - v);
			return v;
		}
		p = memchr(p, ';', (size_t)(end - p));
	}
	return NULL;
}

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* A JSON string at p, unescaped into out (size bytes): printable ASCII,
 * with the escapes \" \\ and \/ only. @return what follows it, or NULL. */
static const char *
json_string(const char *p, const char *end, char *out, size_t size)
{
	size_t n = 0;

	if (p == end || *p++ != '"')
		return NULL;
	while (p < end && *p != '"') {
		char ch = *p++;

		if (ch == '\\') {
			if (p == end || (*p != '"' && *p != '\\' && *p != '/'))
				return NULL;
			ch = *p++;
		} else if ((unsigned char)ch < 0x20 ||
			   (unsigned char)ch > 0x7e) {
			return NULL;
		}
		if (n + 1 >= size)
			return NULL;
		out[n++] = ch;
	}
	if (p == end)
		return NULL;
	out[n] = '\0';
	return p + 1;
}

/*
 * The value of key in body, a flat JSON object of string values (a
 * login's, an action's), into out (size bytes). @return its length, -1
 * when the key is absent, -2 when the body is not such an object, a
 * value does not fit, or the key comes twice.
 */
static long
json_field(const char *body, size_t len, const char *key, char *out,
	   size_t size)
{
	const char *p = body, *end = body + len;
	char name[64], value[DASH_FIELD_MAX + 1];
	long found = -1;

	p = skip_space(p, end);
	if (p == end || *p++ != '{')
		return -2;
	p = skip_space(p, end);
	if (p < end && *p == '}')
		return skip_space(p + 1, end) == end ? -1 : -2;
	for (;;) {
		p = json_string(skip_space(p, end), end, name, sizeof(name));
		if (p == NULL)
			return -2;
		p = skip_space(p, end);
		if (p == end || *p++ != ':')
			return -2;
		p = json_string(skip_space(p, end), end, value, sizeof(value));
		if (p == NULL)
			return -2;
		if (strcmp(name, key) == 0) {
			size_t n = strlen(value);

			if (found >= 0 || n + 1 > size)
				return -2;
			memcpy(out, value, n + 1);
			found = (long)n;
		}
		p = skip_space(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}' && skip_space(p + 1, end) == end)
			break;
		return -2;
	}
	explicit_bzero(value, sizeof(value));
	return found;
}

/* ------------------------------------------------------------ sessions */

static void
session_end(struct dash_session *s)
{
	if (s->u != NULL)
		user_unref(s->u);
	explicit_bzero(s, sizeof(*s));
}

/* The live session c's cookie names, touched; NULL when none. */
static struct dash_session *
session_of(struct dashboard *d, const struct http_conn *c, uint64_t now)
{
	size_t len;
	const char *id = cookie_value(c, DASH_COOKIE, &len);

	if (id == NULL || len != DASH_TOKEN_HEX)
		return NULL;
	for (size_t i = 0; i < DASH_SESSIONS; i++) {
		struct dash_session *s = &d->sessions[i];

		if (s->id[0] == '\0' || !token_equal(s->id, id, len))
			continue;
		if (s->u->is_deleted ||
		    memcmp(s->stored_key, s->u->stored_key,
			   sizeof(s->stored_key)) != 0 ||
		    now - s->used_ms > DASH_SESSION_IDLE_MS ||
		    now - s->created_ms > DASH_SESSION_MAX_MS) {
			session_end(s);
			return NULL;
		}
		s->used_ms = now;
		return s;
	}
	return NULL;
}

/* A new session for u (whose reference it takes); the least recently
 * used one makes room when all are taken. */
static struct dash_session *
session_new(struct dashboard *d, struct user *u, uint64_t now)
{
	struct dash_session *s = &d->sessions[0];

	for (size_t i = 0; i < DASH_SESSIONS; i++) {
		struct dash_session *x = &d->sessions[i];

		if (x->id[0] == '\0') {
			s = x;
			break;
		}
		if (x->used_ms < s->used_ms)
			s = x;
	}
	session_end(s);
	random_hex(s->id, DASH_TOKEN_BYTES);
	random_hex(s->csrf, DASH_TOKEN_BYTES);
	if (s->id[0] == '\0' || s->csrf[0] == '\0') {
		user_unref(u);
		explicit_bzero(s, sizeof(*s));
		return NULL;
	}
	s->u = u;
	memcpy(s->stored_key, u->stored_key, sizeof(s->stored_key));
	s->created_ms = s->used_ms = now;
	return s;
}

/* ------------------------------------------------------------- figures */

static struct dash_rate *
rate_of(struct dashboard *d, uint32_t qid)
{
	size_t lo = 0, hi = d->nrates;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->rates[mid].qid == qid)
			return &d->rates[mid];
		if (d->rates[mid].qid < qid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct sample {
	struct dashboard *d;
	struct dash_rate *v; /* owned: the new table */
	size_t n, cap;
	double secs; /* since the last sample; 0: the first */
	double total[3];
	int is_oom;
};

static void
sample_queue(void *ctx, struct queue *q)
{
	struct sample *sm = ctx;
	struct dash_rate *old = rate_of(sm->d, q->qid);
	struct dash_rate *v, *r;

	if (sm->is_oom)
		return;
	v = vec_grow(sm->v, &sm->cap, sm->n + 1, sizeof(*v), 16);
	if (v == NULL) {
		sm->is_oom = 1;
		return;
	}
	sm->v = v;
	r = &sm->v[sm->n++];
	memset(r, 0, sizeof(*r));
	r->qid = q->qid;
	r->published = q->counters.published;
	r->delivered = q->counters.delivered;
	r->acked = q->counters.acked;
	if (old != NULL && sm->secs > 0) {
		r->publish = (double)(r->published - old->published) / sm->secs;
		r->deliver = (double)(r->delivered - old->delivered) / sm->secs;
		r->ack = (double)(r->acked - old->acked) / sm->secs;
	}
	sm->total[0] += r->publish;
	sm->total[1] += r->deliver;
	sm->total[2] += r->ack;
}

static int
rate_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct dash_rate *)a)->qid;
	uint32_t y = ((const struct dash_rate *)b)->qid;

	return x < y ? -1 : x > y;
}

uint64_t
dashboard_tick(struct dashboard *d, uint64_t now_ms)
{
	struct sample sm = { .d = d };

	if (now_ms < d->next_sample_ms)
		return d->next_sample_ms - now_ms;
	sm.secs = d->sampled_ms ? (double)(now_ms - d->sampled_ms) / 1e3 : 0;
	queues_each(d->env.qs, sample_queue, &sm);
	d->next_sample_ms = now_ms + DASH_SAMPLE_MS;
	if (sm.is_oom) {
		free(sm.v);
		return DASH_SAMPLE_MS;
	}
	if (sm.n > 1)
		qsort(sm.v, sm.n, sizeof(*sm.v), rate_cmp);
	free(d->rates);
	d->rates = sm.v;
	d->nrates = sm.n;
	d->caprates = sm.cap;
	if (d->sampled_ms != 0) {
		size_t at = (d->history_at + d->history_len) % DASH_HISTORY;

		for (int i = 0; i < 3; i++)
			d->history[i][at] = (float)sm.total[i];
		if (d->history_len < DASH_HISTORY)
			d->history_len++;
		else
			d->history_at = (d->history_at + 1) % DASH_HISTORY;
	}
	d->sampled_ms = now_ms;
	return DASH_SAMPLE_MS;
}

struct overview {
	struct dashboard *d;
	struct http_body *b;
	const struct user *u; /* NULL: every queue */
	int n;
};

static int
may_see(const struct overview *o, const struct queue *q)
{
	return !q->is_pending &&
	       (o->u == NULL || user_perms_on(o->u, q->name) != 0);
}

static void
write_queue(void *ctx, struct queue *q)
{
	struct overview *o = ctx;
	struct http_body *b = o->b;
	const struct dash_rate *r = rate_of(o->d, q->qid);
	struct queue *dlq = queues_find(o->d->env.qs, q->policy.dlq);
	uint64_t m, by, de, ready, in_flight, w, dm = 0, dby, dde;
	uint32_t g;

	if (!may_see(o, q))
		return;
	queue_totals(q, &m, &by, &de);
	groups_queue_counts(q, &ready, &in_flight, &w, &g);
	if (dlq != NULL && dlq != q)
		queue_totals(dlq, &dm, &dby, &dde);
	http_body_printf(b, "%s{\"name\":", o->n++ ? "," : "");
	json_str(b, q->name);
	http_body_printf(b,
			 ",\"partitions\":%u,\"messages\":%llu,\"bytes\":%llu,"
			 "\"ready\":%llu,\"delayed\":%llu,\"in_flight\":%llu,"
			 "\"groups\":%u,\"published_total\":%llu,"
			 "\"delivered_total\":%llu,\"acked_total\":%llu,"
			 "\"dead_lettered_total\":%llu,\"dead_letters\":%llu,"
			 "\"dead_letter_queue\":",
			 q->partitions, (unsigned long long)m,
			 (unsigned long long)by, (unsigned long long)ready,
			 (unsigned long long)(de + w),
			 (unsigned long long)in_flight, g,
			 (unsigned long long)q->counters.published,
			 (unsigned long long)q->counters.delivered,
			 (unsigned long long)q->counters.acked,
			 (unsigned long long)q->counters.dead_lettered,
			 (unsigned long long)dm);
	json_str(b, q->policy.dlq);
	http_body_printf(
		b,
		",\"rates\":{\"publish\":%.1f,\"deliver\":%.1f,"
		"\"ack\":%.1f},\"can_admin\":%s}",
		r ? r->publish : 0.0, r ? r->deliver : 0.0, r ? r->ack : 0.0,
		o->u != NULL && (user_perms_on(o->u, q->name) & USER_ADMIN)
			? "true"
			: "false");
}

struct group_row {
	struct overview *o;
	const struct queue *q;
};

static void
write_group(void *ctx, const struct group *g)
{
	struct group_row *gr = ctx;
	struct http_body *b = gr->o->b;
	struct group_info gi;

	group_info(g, &gi, NULL);
	http_body_printf(b, "%s{\"queue\":", gr->o->n++ ? "," : "");
	json_str(b, gr->q->name);
	http_body_printf(b, ",\"name\":");
	json_str(b, group_name(g));
	http_body_printf(b,
			 ",\"consumers\":%u,\"ready\":%llu,\"in_flight\":%llu,"
			 "\"lag\":%llu,\"paused\":%s}",
			 gi.consumers, (unsigned long long)gi.ready,
			 (unsigned long long)gi.in_flight,
			 (unsigned long long)gi.lag,
			 gi.is_paused ? "true" : "false");
}

static void
write_groups_of(void *ctx, struct queue *q)
{
	struct overview *o = ctx;
	struct group_row gr = { o, q };

	if (may_see(o, q))
		groups_each(q, write_group, &gr);
}

static void
write_overview(struct dashboard *d, struct http_body *b, const struct user *u)
{
	struct overview o = { .d = d, .b = b, .u = u };
	struct queue_counters counted;
	struct groups_totals t;
	uint64_t used, map, now = clock_mono_ms();

	groups_totals(d->env.qs, &t);
	queues_counter_totals(d->env.qs, &counted);
	store_usage(d->env.store, &used, &map);
	http_body_printf(
		b,
		"{\"version\":\"%s\",\"uptime_ms\":%llu,\"stats\":{"
		"\"connections\":%zu,\"queues\":%llu,\"groups\":%llu,"
		"\"messages\":%llu,\"message_bytes\":%llu,\"ready\":%llu,"
		"\"delayed\":%llu,\"in_flight\":%llu,"
		"\"storage_used_bytes\":%llu,\"storage_limit_bytes\":%llu,"
		"\"published_total\":%llu,\"delivered_total\":%llu,"
		"\"acked_total\":%llu},",
		RINGMQ_VERSION,
		(unsigned long long)(now - d->env.stats->start_ms),
		*d->env.connections, (unsigned long long)t.queues,
		(unsigned long long)t.groups, (unsigned long long)t.messages,
		(unsigned long long)t.bytes, (unsigned long long)t.ready,
		(unsigned long long)t.delayed, (unsigned long long)t.in_flight,
		(unsigned long long)used, (unsigned long long)map,
		(unsigned long long)counted.published,
		(unsigned long long)counted.delivered,
		(unsigned long long)counted.acked);
	http_body_printf(b, "\"history\":{\"interval_ms\":%u", DASH_SAMPLE_MS);
	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "publish", "deliver",
						     "ack" };

		http_body_printf(b, ",\"%s\":[", names[i]);
		for (size_t k = 0; k < d->history_len; k++)
			http_body_printf(
				b, "%s%.1f", k ? "," : "",
				(double)d->history[i][(d->history_at + k) %
						      DASH_HISTORY]);
		http_body_printf(b, "]");
	}
	http_body_printf(b, "},\"queues\":[");
	o.n = 0;
	queues_each(d->env.qs, write_queue, &o);
	http_body_printf(b, "],\"groups\":[");
	o.n = 0;
	queues_each(d->env.qs, write_groups_of, &o);
	http_body_printf(b, "]}\n");
}

/* The cluster as the last view has it: brokers (with the partitions
 * each owns), the controller, and each queue's owners, of the queues u
 * may see (NULL: all). */
static void
write_cluster(struct dashboard *d, struct http_body *b, const struct user *u)
{
	const struct cluster_view *v = *d->env.view;
	int n = 0;

	http_body_printf(b, "{\"cluster\":");
	json_str(b, d->env.cluster);
	http_body_printf(b, ",\"broker\":");
	json_str(b, cluster_broker_id(*d->env.coordinator));
	if (v == NULL) {
		http_body_printf(b, ",\"brokers\":null}\n");
		return;
	}
	http_body_printf(b, ",\"rev\":%lld,\"read_ms\":%llu,\"controller\":",
			 (long long)v->rev, (unsigned long long)v->read_ms);
	json_str(b, v->controller);
	http_body_printf(b, ",\"epoch\":%lld,\"brokers\":[",
			 (long long)v->epoch);
	for (size_t i = 0; i < v->nbrokers; i++) {
		http_body_printf(b, "%s{\"id\":", i ? "," : "");
		json_str(b, v->brokers[i].id);
		http_body_printf(b, ",\"address\":");
		json_str(b, v->brokers[i].addr);
		http_body_printf(b, ",\"partitions\":%zu}",
				 v->brokers[i].partitions);
	}
	http_body_printf(b, "],\"queues\":[");
	for (size_t k = 0; k < v->nqueues; k++) {
		const struct cluster_queue *q = &v->queues[k];

		if (u != NULL && user_perms_on(u, q->name) == 0)
			continue;
		http_body_printf(b, "%s{\"name\":", n++ ? "," : "");
		json_str(b, q->name);
		http_body_printf(b, ",\"partitions\":%u,\"owners\":[",
				 q->partitions);
		for (uint32_t p = 0; p < q->partitions; p++) {
			if (p)
				http_body_printf(b, ",");
			if (q->owner[p] < 0)
				http_body_printf(b, "null");
			else
				json_str(b, v->brokers[q->owner[p]].id);
		}
		http_body_printf(b, "],\"epochs\":[");
		for (uint32_t p = 0; p < q->partitions; p++)
			http_body_printf(b, "%s%lld", p ? "," : "",
					 (long long)q->epoch[p]);
		http_body_printf(b, "]}");
	}
	http_body_printf(b, "]}\n");
}

/* -------------------------------------------------------------- routes */

static int
is_auth_on(const struct dashboard *d)
{
	return d->env.cfg->auth == CONFIG_AUTH_ON;
}

static const char *
auth_mode(const struct dashboard *d)
{
	switch (d->env.cfg->auth) {
	case CONFIG_AUTH_ON: return "on";
	case CONFIG_AUTH_OFF: return "off";
	default: return "local";
	}
}

static void
serve_asset(struct http_conn *c, const struct http_request *r)
{
	for (size_t i = 0; i < web_nassets; i++) {
		const struct web_asset *a = &web_assets[i];

		if (http_path_is(r, a->path) ||
		    (http_path_is(r, "/") &&
		     strcmp(a->path, "/index.html") == 0)) {
			http_reply(
				c, "200 OK", a->type,
				"Cache-Control: no-cache\r\n" DASH_PAGE_HEADERS,
				a->data, a->len);
			return;
		}
	}
	reply_error(c, "404 Not Found", "NOT_FOUND",
		    "no such page: try / or /metrics");
}

static void
serve_session(struct dashboard *d, struct http_conn *c,
	      const struct dash_session *s)
{
	struct http_body b = { 0 };

	http_body_printf(&b, "{\"version\":\"%s\",\"auth\":\"%s\",\"user\":",
			 RINGMQ_VERSION, auth_mode(d));
	if (s != NULL) {
		http_body_printf(&b, "{\"name\":");
		json_str(&b, s->u->name);
		http_body_printf(&b, "},\"csrf\":\"%s\"}\n", s->csrf);
	} else {
		http_body_printf(&b, "null}\n");
	}
	reply_body(c, "200 OK", &b, DASH_API_HEADERS);
}

/* 1 when the request's Origin, if it has one, is this server (a POST
 * from another site's page carries that site's). */
static int
origin_ok(const struct http_conn *c, const struct http_request *r)
{
	size_t olen, hlen;
	const char *o = http_header(c, "origin", &olen);
	const char *h = http_header(c, "host", &hlen);
	const char *scheme = r->is_tls ? "https://" : "http://";
	size_t slen = strlen(scheme);

	if (o == NULL)
		return 1;
	return h != NULL && olen == slen + hlen &&
	       memcmp(o, scheme, slen) == 0 && memcmp(o + slen, h, hlen) == 0;
}

static void
serve_login(struct dashboard *d, struct http_conn *c,
	    const struct http_request *r, uint64_t now)
{
	char name[DASH_FIELD_MAX + 1], password[DASH_FIELD_MAX + 1];
	char headers[1024];
	uint64_t wait;
	struct user *u;
	struct dash_session *s;

	if (!is_auth_on(d)) {
		reply_error(c, "400 Bad Request", "INVALID_ARGUMENT",
			    "auth is not on: there is nothing to log in to");
		return;
	}
	if (!origin_ok(c, r)) {
		reply_error(c, "403 Forbidden", "PERMISSION_DENIED",
			    "a login from another site's page");
		return;
	}
	/* A password crosses the network only encrypted. */
	if (!r->is_tls && !r->is_local) {
		reply_error(c, "403 Forbidden", "PERMISSION_DENIED",
			    "log in over HTTPS from another host: set "
			    "http-tls on");
		return;
	}
	wait = auth_login_wait(d->env.auth, r->peer, now);
	if (wait > 0) {
		struct http_body b = { 0 };

		snprintf(headers, sizeof(headers), "Retry-After: %llu\r\n%s",
			 (unsigned long long)(wait + 999) / 1000,
			 DASH_API_HEADERS);
		http_body_printf(&b,
				 "{\"error\":\"UNAUTHENTICATED\",\"message\":"
				 "\"too many failed logins: try again in "
				 "%llu ms\"}\n",
				 (unsigned long long)wait);
		reply_body(c, "429 Too Many Requests", &b, headers);
		return;
	}
	if (r->body == NULL ||
	    json_field(r->body, r->body_len, "user", name, sizeof(name)) < 0 ||
	    json_field(r->body, r->body_len, "password", password,
		       sizeof(password)) < 0) {
		explicit_bzero(password, sizeof(password));
		reply_error(c, "400 Bad Request", "INVALID_ARGUMENT",
			    "send {\"user\":\"NAME\",\"password\":\"...\"}");
		return;
	}
	u = auth_login(d->env.auth, d->env.users, r->peer, name, password, now);
	explicit_bzero(password, sizeof(password));
	if (u == NULL) {
		reply_error(c, "401 Unauthorized", "UNAUTHENTICATED",
			    "wrong user name or password");
		return;
	}
	s = session_new(d, u, now);
	if (s == NULL) {
		reply_rc(c, -ENOMEM);
		return;
	}
	snprintf(headers, sizeof(headers),
		 "Set-Cookie: " DASH_COOKIE "=%s; Path=/; HttpOnly; "
		 "SameSite=Strict%s\r\n%s",
		 s->id, r->is_tls ? "; Secure" : "", DASH_API_HEADERS);
	{
		struct http_body b = { 0 };

		http_body_printf(&b, "{\"user\":{\"name\":");
		json_str(&b, s->u->name);
		http_body_printf(&b, "},\"csrf\":\"%s\"}\n", s->csrf);
		reply_body(c, "200 OK", &b, headers);
	}
}

/* An admin action waiting for its commit. */
struct dash_action {
	struct http_conn *c; /* NULL: the client left */
	uint64_t purged;
	char what[16];
	char user[STORE_USER_MAX + 1];
	char queue[STORE_NAME_MAX + 1];
};

static void
action_abandoned(void *arg)
{
	((struct dash_action *)arg)->c = NULL;
}

static void
action_done(struct dash_action *a, int status, uint64_t n)
{
	if (status == 0)
		log_info("http: %s %s %s: %llu messages", a->user, a->what,
			 a->queue, (unsigned long long)n);
	if (a->c != NULL) {
		if (status < 0) {
			reply_rc(a->c, status);
		} else {
			struct http_body b = { 0 };

			http_body_printf(&b, "{\"%s\":%llu}\n", a->what,
					 (unsigned long long)n);
			reply_body(a->c, "200 OK", &b, DASH_API_HEADERS);
		}
	}
	free(a);
}

static void
purge_done(void *ctx, int status)
{
	struct dash_action *a = ctx;

	action_done(a, status, a->purged);
}

static void
redrive_done(void *ctx, int status, size_t n)
{
	action_done(ctx, status, n);
}

/* A segment of path after prefix, up to the next '/', copied to out;
 * @return the rest after it, or NULL when it is empty or too long. */
static const char *
segment(const char *p, const char *end, char *out, size_t size)
{
	size_t n = 0;

	while (p < end && *p != '/') {
		if (n + 1 >= size)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return n > 0 ? p : NULL;
}

static void
serve_action(struct dashboard *d, struct http_conn *c,
	     const struct http_request *r, const struct dash_session *s)
{
	static const char prefix[] = "/api/queues/";
	const char *p = r->path + sizeof(prefix) - 1;
	const char *end = r->path + r->path_len;
	char qname[STORE_NAME_MAX + 1], gname[STORE_NAME_MAX + 1] = "";
	char verb[16], group[STORE_NAME_MAX + 1];
	size_t tlen;
	const char *token = http_header(c, "x-csrf-token", &tlen);
	struct queue *q;
	struct dash_action *a;
	int rc;

	if (s == NULL) {
		reply_error(c, "401 Unauthorized", "UNAUTHENTICATED",
			    is_auth_on(d)
				    ? "log in first"
				    : "actions need auth on: the "
				      "dashboard is read-only without it");
		return;
	}
	if (token == NULL || !token_equal(s->csrf, token, tlen) ||
	    !origin_ok(c, r)) {
		reply_error(c, "403 Forbidden", "PERMISSION_DENIED",
			    "missing or wrong X-CSRF-Token");
		return;
	}
	/* /api/queues/Q/(purge|redrive) or /api/queues/Q/groups/G/VERB */
	p = segment(p, end, qname, sizeof(qname));
	if (p != NULL && p < end && end - p > 8 &&
	    memcmp(p, "/groups/", 8) == 0) {
		p = segment(p + 8, end, gname, sizeof(gname));
	}
	if (p == NULL || p >= end || *p != '/' ||
	    segment(p + 1, end, verb, sizeof(verb)) != end ||
	    !queue_name_valid(qname) ||
	    (gname[0] != '\0' && !queue_name_valid(gname))) {
		reply_error(c, "404 Not Found", "NOT_FOUND", "no such action");
		return;
	}
	q = queues_find(d->env.qs, qname);
	if (q == NULL || q->is_pending || user_perms_on(s->u, qname) == 0) {
		reply_rc(c, -RMQ_EQUEUE_NOT_FOUND);
		return;
	}
	if (!(user_perms_on(s->u, qname) & USER_ADMIN)) {
		reply_error(c, "403 Forbidden", "PERMISSION_DENIED",
			    "this needs the admin permission on the queue");
		return;
	}
	if (gname[0] != '\0') {
		int is_pause = strcmp(verb, "pause") == 0;
		struct http_body b = { 0 };

		if (!is_pause && strcmp(verb, "resume") != 0) {
			reply_error(c, "404 Not Found", "NOT_FOUND",
				    "no such action");
			return;
		}
		rc = groups_pause_named(d->env.gs, q, gname, is_pause);
		if (rc < 0) {
			reply_rc(c, rc);
			return;
		}
		log_info("http: %s %s group %s of %s", s->u->name,
			 is_pause ? "paused" : "resumed", gname, qname);
		http_body_printf(&b, "{\"paused\":%s}\n",
				 is_pause ? "true" : "false");
		reply_body(c, "200 OK", &b, DASH_API_HEADERS);
		return;
	}
	if (strcmp(verb, "purge") != 0 && strcmp(verb, "redrive") != 0) {
		reply_error(c, "404 Not Found", "NOT_FOUND", "no such action");
		return;
	}
	group[0] = '\0';
	if (r->body != NULL && r->body_len > 0 &&
	    json_field(r->body, r->body_len, "group", group, sizeof(group)) ==
		    -2) {
		reply_error(c, "400 Bad Request", "INVALID_ARGUMENT",
			    "send {} or {\"group\":\"NAME\"}");
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		reply_rc(c, -ENOMEM);
		return;
	}
	a->c = c;
	snprintf(a->what, sizeof(a->what), "%s",
		 verb[0] == 'p' ? "purged" : "redriven");
	snprintf(a->user, sizeof(a->user), "%s", s->u->name);
	snprintf(a->queue, sizeof(a->queue), "%s", qname);
	http_on_abandon(c, action_abandoned, a);
	if (verb[0] == 'p')
		rc = groups_purge_queue(d->env.gs, q, purge_done, a,
					&a->purged);
	else
		rc = groups_redrive(
			d->env.gs, q, queues_find(d->env.qs, q->policy.dlq),
			group[0] ? group : NULL, UINT32_MAX, redrive_done, a);
	if (rc < 0) {
		http_on_abandon(c, NULL, NULL);
		free(a);
		reply_rc(c, rc);
	}
}

void
dashboard_serve(void *ctx, struct http_conn *c, const struct http_request *r)
{
	struct dashboard *d = ctx;
	uint64_t now = clock_mono_ms();
	int is_get =
		strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
	int is_post = strcmp(r->method, "POST") == 0;
	int is_api = r->path_len >= 5 && memcmp(r->path, "/api/", 5) == 0;
	struct dash_session *s = NULL;

	if (!is_get && !is_post) {
		static const char only[] = "only GET, HEAD and POST\n";

		http_reply(c, "405 Method Not Allowed",
			   "text/plain; charset=utf-8",
			   "Allow: GET, HEAD, POST\r\n", only,
			   sizeof(only) - 1);
		return;
	}
	/* Without logins, the host rule of /metrics holds for all. */
	if (!is_auth_on(d) && r->machine_refusal != 0) {
		if (r->machine_refusal == 401)
			reply_error(c, "401 Unauthorized", "UNAUTHENTICATED",
				    "this broker's HTTP port wants a token");
		else
			reply_error(c, "403 Forbidden", "PERMISSION_DENIED",
				    "this broker's HTTP port answers only "
				    "its own host (or turn auth on: the "
				    "dashboard then asks for a login)");
		return;
	}
	if (!is_api) {
		if (!is_get)
			reply_error(c, "405 Method Not Allowed", "NOT_FOUND",
				    "pages are read with GET");
		else
			serve_asset(c, r);
		return;
	}
	if (is_auth_on(d))
		s = session_of(d, c, now);
	if (http_path_is(r, "/api/session") && is_get) {
		serve_session(d, c, s);
	} else if (http_path_is(r, "/api/login") && is_post) {
		serve_login(d, c, r, now);
	} else if (http_path_is(r, "/api/logout") && is_post) {
		size_t tlen;
		const char *token = http_header(c, "x-csrf-token", &tlen);

		if (s != NULL && token != NULL &&
		    token_equal(s->csrf, token, tlen))
			session_end(s);
		http_reply(c, "200 OK", "application/json",
			   "Set-Cookie: " DASH_COOKIE "=; Path=/; Max-Age=0; "
			   "HttpOnly; SameSite=Strict\r\n" DASH_API_HEADERS,
			   "{}\n", 3);
	} else if (http_path_is(r, "/api/overview") && is_get) {
		struct http_body b = { 0 };

		if (is_auth_on(d) && s == NULL) {
			reply_error(c, "401 Unauthorized", "UNAUTHENTICATED",
				    "log in first");
			return;
		}
		write_overview(d, &b, s != NULL ? s->u : NULL);
		reply_body(c, "200 OK", &b, DASH_API_HEADERS);
	} else if (http_path_is(r, "/api/cluster") && is_get) {
		struct http_body b = { 0 };

		if (is_auth_on(d) && s == NULL) {
			reply_error(c, "401 Unauthorized", "UNAUTHENTICATED",
				    "log in first");
			return;
		}
		if (d->env.cluster == NULL) {
			reply_error(c, "404 Not Found", "NOT_FOUND",
				    "this broker is not in cluster mode");
			return;
		}
		write_cluster(d, &b, s != NULL ? s->u : NULL);
		reply_body(c, "200 OK", &b, DASH_API_HEADERS);
	} else if (r->path_len > 12 &&
		   memcmp(r->path, "/api/queues/", 12) == 0 && is_post) {
		serve_action(d, c, r, s);
	} else {
		reply_error(c, "404 Not Found", "NOT_FOUND", "no such API");
	}
}

int
dashboard_new(struct dashboard **out, const struct dashboard_env *env)
{
	struct dashboard *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (d == NULL)
		return -ENOMEM;
	d->env = *env;
	*out = d;
	return 0;
}

void
dashboard_free(struct dashboard *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < DASH_SESSIONS; i++)
		if (d->sessions[i].id[0] != '\0')
			session_end(&d->sessions[i]);
	free(d->rates);
	free(d);
}
