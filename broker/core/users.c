/*
 * users: see users.h.
 */
#include "core/users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/vec.h"

/* A change waiting for its turn, or committing. */
struct pending {
	struct pending *next;
	struct users *us;
	struct user_change ch;
	struct user *next_state; /* owned: the user as the change leaves it */
	users_done_fn done;
	void *ctx;
};

struct users {
	struct store *st;      /* borrowed */
	struct user **by_name; /* owned refs, sorted by name */
	size_t n, cap;
	struct pending *head; /* owned: the change committing, then waiting */
	struct pending **tail;
	users_hook_fn hook;
	void *hook_ctx;
};

/* ------------------------------------------------------------ names */

static int
is_name_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

int
user_name_ok(const char *name)
{
	size_t n = 0;

	if (name == NULL)
		return 0;
	for (; name[n] != '\0'; n++)
		if (n >= STORE_USER_MAX ||
		    !(is_name_char((unsigned char)name[n]) || name[n] == '@'))
			return 0;
	return n > 0;
}

int
user_pattern_ok(const char *pattern)
{
	size_t n = 0;

	if (pattern == NULL)
		return 0;
	for (; pattern[n] != '\0'; n++)
		if (n >= STORE_NAME_MAX ||
		    !(is_name_char((unsigned char)pattern[n]) ||
		      pattern[n] == '*'))
			return 0;
	return n > 0;
}

/* Glob with "*" only: on a mismatch, the last "*" takes one more
 * character. Linear in practice; at worst pattern x name. */
int
user_pattern_match(const char *pattern, const char *name)
{
	const char *star = NULL, *resume = NULL;

	while (*name != '\0') {
		if (*pattern == '*') {
			star = pattern++;
			resume = name;
		} else if (*pattern == *name) {
			pattern++;
			name++;
		} else if (star != NULL) {
			pattern = star + 1;
			name = ++resume;
		} else
			return 0;
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}

unsigned
user_perms_on(const struct user *u, const char *queue)
{
	unsigned bits = 0;

	for (size_t i = 0; i < u->nperms && bits != USER_ALL; i++)
		if ((u->perms[i].bits & ~bits) != 0 &&
		    user_pattern_match(u->perms[i].pattern, queue))
			bits |= u->perms[i].bits;
	return bits;
}

/* ---------------------------------------------------------- quotas */

/* Fills u's buckets for the time since the last look, up to one
 * second's worth. */
static void
refill(struct user *u, uint64_t now_ms)
{
	double secs = now_ms > u->refill_ms
			      ? (double)(now_ms - u->refill_ms) / 1000.0
			      : 0.0;
	double m = (double)u->quota.publish_messages_per_s;
	double b = (double)u->quota.publish_bytes_per_s;

	u->msg_tokens =
		u->msg_tokens + m * secs < m ? u->msg_tokens + m * secs : m;
	u->byte_tokens =
		u->byte_tokens + b * secs < b ? u->byte_tokens + b * secs : b;
	u->refill_ms = now_ms;
}

/* Ms until tokens (of a bucket filling at rate a second) are above 0. */
static uint64_t
wait_for(double tokens, uint64_t rate)
{
	double ms;

	if (rate == 0 || tokens > 0)
		return 0;
	ms = (-tokens + 1.0) * 1000.0 / (double)rate;
	return ms < 1.0 ? 1 : (uint64_t)ms + 1;
}

uint64_t
user_publish_wait(struct user *u, uint64_t now_ms)
{
	uint64_t wm, wb;

	refill(u, now_ms);
	wm = wait_for(u->msg_tokens, u->quota.publish_messages_per_s);
	wb = wait_for(u->byte_tokens, u->quota.publish_bytes_per_s);
	return wm > wb ? wm : wb;
}

uint64_t
user_publish_admit(struct user *u, uint64_t msgs, uint64_t bytes,
		   uint64_t now_ms)
{
	uint64_t wait = user_publish_wait(u, now_ms);

	if (wait > 0) {
		u->refused_rate++;
		return wait;
	}
	if (u->quota.publish_messages_per_s != 0)
		u->msg_tokens -= (double)msgs;
	if (u->quota.publish_bytes_per_s != 0)
		u->byte_tokens -= (double)bytes;
	u->published_msgs += msgs;
	u->published_bytes += bytes;
	return 0;
}

/* Full buckets: a user starts (or gets new limits) with a second's
 * worth. */
static void
quota_reset(struct user *u)
{
	u->leases.max = u->quota.max_leases;
	u->msg_tokens = (double)u->quota.publish_messages_per_s;
	u->byte_tokens = (double)u->quota.publish_bytes_per_s;
	u->refill_ms = clock_mono_ms();
}

/* ------------------------------------------------------------ users */

static void
user_free(struct user *u)
{
	for (size_t i = 0; i < u->nperms; i++)
		free(u->perms[i].pattern);
	free(u->perms);
	explicit_bzero(u, sizeof(*u));
	free(u);
}

void
user_ref(struct user *u)
{
	u->refs++;
}

void
user_unref(struct user *u)
{
	if (u != NULL && --u->refs == 0)
		user_free(u);
}

/* Sets u's permission on pattern to bits (0: removes it).
 * @return 0, or -ENOMEM. */
static int
perm_set(struct user *u, const char *pattern, unsigned bits)
{
	struct user_perm *perms;
	size_t i;

	for (i = 0; i < u->nperms; i++)
		if (strcmp(u->perms[i].pattern, pattern) == 0)
			break;
	if (i < u->nperms) {
		if (bits != 0) {
			u->perms[i].bits = bits;
			return 0;
		}
		free(u->perms[i].pattern);
		memmove(&u->perms[i], &u->perms[i + 1],
			(u->nperms - i - 1) * sizeof(*u->perms));
		u->nperms--;
		return 0;
	}
	if (bits == 0)
		return 0;
	perms = vec_grow(u->perms, &u->capperms, u->nperms + 1, sizeof(*perms),
			 4);
	if (perms == NULL)
		return -ENOMEM;
	u->perms = perms;
	u->perms[u->nperms].pattern = strdup(pattern);
	if (u->perms[u->nperms].pattern == NULL)
		return -ENOMEM;
	u->perms[u->nperms++].bits = bits;
	return 0;
}

/* A deep copy of u (refs 0), or NULL. */
static struct user *
user_copy(const struct user *u)
{
	struct user *c = malloc(sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *u;
	c->perms = NULL;
	c->nperms = c->capperms = 0;
	c->refs = 0;
	c->connections = 0;
	for (size_t i = 0; i < u->nperms; i++)
		if (perm_set(c, u->perms[i].pattern, u->perms[i].bits) < 0) {
			user_free(c);
			return NULL;
		}
	return c;
}

/* The index of name in by_name, or where it would go (*found 0). */
static size_t
find_index(const struct users *us, const char *name, int *found)
{
	size_t lo = 0, hi = us->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(us->by_name[mid]->name, name);

		if (cmp == 0) {
			*found = 1;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

struct user *
users_find(struct users *us, const char *name)
{
	int found;
	size_t i = find_index(us, name, &found);

	return found ? us->by_name[i] : NULL;
}

size_t
users_count(const struct users *us)
{
	return us->n;
}

void
users_each(struct users *us, void (*fn)(void *ctx, struct user *u), void *ctx)
{
	for (size_t i = 0; i < us->n; i++)
		fn(ctx, us->by_name[i]);
}

/* Puts u, a user not in the table, in it. @return 0 or -ENOMEM. */
static int
table_put(struct users *us, struct user *u)
{
	int found;
	size_t i = find_index(us, u->name, &found);
	struct user **p;

	if (found)
		return -EEXIST;
	p = vec_grow(us->by_name, &us->cap, us->n + 1, sizeof(*p), 8);
	if (p == NULL)
		return -ENOMEM;
	us->by_name = p;
	memmove(&p[i + 1], &p[i], (us->n - i) * sizeof(*p));
	p[i] = u;
	us->n++;
	user_ref(u);
	return 0;
}

static void
table_del(struct users *us, const char *name)
{
	int found;
	size_t i = find_index(us, name, &found);
	struct user *u;

	if (!found)
		return;
	u = us->by_name[i];
	memmove(&us->by_name[i], &us->by_name[i + 1],
		(us->n - i - 1) * sizeof(*us->by_name));
	us->n--;
	u->is_deleted = true;
	user_unref(u);
}

int
users_new(struct users **out, struct store *st)
{
	struct users *us = calloc(1, sizeof(*us));

	*out = NULL;
	if (us == NULL)
		return -ENOMEM;
	us->st = st;
	us->tail = &us->head;
	*out = us;
	return 0;
}

static void
pending_free(struct pending *p)
{
	if (p->next_state != NULL)
		user_free(p->next_state);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

void
users_free(struct users *us)
{
	if (us == NULL)
		return;
	/* Changes still queued were never submitted; the one committing was
	 * completed by the store's last reap before this. */
	while (us->head != NULL) {
		struct pending *p = us->head;

		us->head = p->next;
		pending_free(p);
	}
	for (size_t i = 0; i < us->n; i++) {
		us->by_name[i]->is_deleted = true;
		user_unref(us->by_name[i]);
	}
	free(us->by_name);
	free(us);
}

void
users_set_hook(struct users *us, users_hook_fn fn, void *ctx)
{
	us->hook = fn;
	us->hook_ctx = ctx;
}

int
users_load(void *ctx, const struct store_user *su)
{
	struct users *us = ctx;
	struct user *u = calloc(1, sizeof(*u));
	int rc = 0;

	if (u == NULL)
		return -ENOMEM;
	memcpy(u->name, su->name, su->name_len);
	u->created_ms = su->created_ms;
	u->iterations = su->iterations;
	u->salt_len = su->salt_len;
	memcpy(u->salt, su->salt, su->salt_len);
	memcpy(u->stored_key, su->stored_key, STORE_KEY_LEN);
	memcpy(u->server_key, su->server_key, STORE_KEY_LEN);
	u->quota = su->quota;
	for (uint32_t i = 0; i < su->nperms && rc == 0; i++) {
		char pattern[STORE_NAME_MAX + 1];

		memcpy(pattern, su->perms[i].pattern, su->perms[i].pattern_len);
		pattern[su->perms[i].pattern_len] = '\0';
		rc = perm_set(u, pattern, su->perms[i].bits & USER_ALL);
	}
	quota_reset(u);
	if (rc == 0)
		rc = table_put(us, u);
	if (rc < 0)
		user_free(u);
	return rc;
}

/* ---------------------------------------------------------- changes */

/* Checks what can be checked without the table. */
static int
change_is_valid(const struct user_change *ch)
{
	if (!user_name_ok(ch->name))
		return 0;
	if (ch->has_keys &&
	    (ch->salt_len == 0 || ch->salt_len > STORE_SALT_MAX ||
	     ch->iterations < USER_DEFAULT_ITERATIONS ||
	     ch->iterations > 10000000u))
		return 0;
	switch (ch->kind) {
	case USER_ADD: return ch->has_keys;
	case USER_MODIFY: return ch->has_keys || ch->quota_given != 0;
	case USER_DELETE: return 1;
	case USER_ACL_SET:
		return user_pattern_ok(ch->pattern) && ch->bits != 0 &&
		       (ch->bits & ~USER_ALL) == 0;
	case USER_ACL_DELETE: return user_pattern_ok(ch->pattern);
	}
	return 0;
}

/* The user as ch leaves it, into p->next_state (NULL for a delete).
 * @return 0 or a refusal. */
static int
change_apply(struct users *us, struct pending *p)
{
	const struct user_change *ch = &p->ch;
	struct user *old = users_find(us, ch->name);
	struct user *u;
	size_t before;
	int rc;

	if (ch->kind == USER_ADD && old != NULL)
		return -RMQ_EUSER_EXISTS;
	if (ch->kind != USER_ADD && old == NULL)
		return -RMQ_EUSER_NOT_FOUND;
	if (ch->kind == USER_DELETE)
		return 0;
	u = old != NULL ? user_copy(old) : calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	p->next_state = u;
	if (old == NULL) {
		snprintf(u->name, sizeof(u->name), "%s", ch->name);
		u->created_ms = clock_wall_ms();
	}
	if (ch->has_keys) {
		u->iterations = ch->iterations;
		u->salt_len = ch->salt_len;
		memcpy(u->salt, ch->salt, ch->salt_len);
		memcpy(u->stored_key, ch->stored_key, STORE_KEY_LEN);
		memcpy(u->server_key, ch->server_key, STORE_KEY_LEN);
	}
	if (ch->quota_given & USER_QUOTA_CONNECTIONS)
		u->quota.max_connections = ch->quota.max_connections;
	if (ch->quota_given & USER_QUOTA_MESSAGES)
		u->quota.publish_messages_per_s =
			ch->quota.publish_messages_per_s;
	if (ch->quota_given & USER_QUOTA_BYTES)
		u->quota.publish_bytes_per_s = ch->quota.publish_bytes_per_s;
	if (ch->quota_given & USER_QUOTA_LEASES)
		u->quota.max_leases = ch->quota.max_leases;
	before = u->nperms;
	if (ch->kind == USER_ACL_SET || ch->kind == USER_ACL_DELETE) {
		rc = perm_set(u, ch->pattern,
			      ch->kind == USER_ACL_SET ? ch->bits : 0);
		if (rc < 0)
			return rc;
		if (ch->kind == USER_ACL_DELETE && u->nperms == before)
			return -RMQ_EINVALID_ARGUMENT;
		if (u->nperms > STORE_PERMS_MAX)
			return -RMQ_EINVALID_ARGUMENT;
	}
	return 0;
}

/* The store record of u; perms[] must hold u->nperms. */
static void
to_store(const struct user *u, struct store_user *su, struct store_perm *perms)
{
	memset(su, 0, sizeof(*su));
	su->name = u->name;
	su->name_len = (uint16_t)strlen(u->name);
	su->created_ms = u->created_ms;
	su->iterations = u->iterations;
	su->salt_len = u->salt_len;
	memcpy(su->salt, u->salt, u->salt_len);
	memcpy(su->stored_key, u->stored_key, STORE_KEY_LEN);
	memcpy(su->server_key, u->server_key, STORE_KEY_LEN);
	su->quota = u->quota;
	for (size_t i = 0; i < u->nperms; i++) {
		perms[i].pattern = u->perms[i].pattern;
		perms[i].pattern_len = (uint16_t)strlen(u->perms[i].pattern);
		perms[i].bits = (uint8_t)u->perms[i].bits;
	}
	su->nperms = (uint32_t)u->nperms;
	su->perms = perms;
}

static void change_committed(void *ctx, int status);

/* Builds and submits the head change. @return 0, or its refusal (the
 * change is not submitted). */
static int
change_start(struct users *us, struct pending *p)
{
	struct store_batch *b;
	struct store_perm *perms = NULL;
	struct store_user su;
	int rc;

	rc = change_apply(us, p);
	if (rc < 0)
		return rc;
	b = store_batch_new(STORE_BATCH_URGENT);
	if (b == NULL)
		return -ENOMEM;
	if (p->next_state == NULL)
		rc = store_batch_del_user(b, p->ch.name,
					  (uint16_t)strlen(p->ch.name));
	else {
		perms = calloc(p->next_state->nperms + 1, sizeof(*perms));
		if (perms == NULL)
			rc = -ENOMEM;
		else {
			to_store(p->next_state, &su, perms);
			rc = store_batch_put_user(b, &su);
		}
	}
	free(perms);
	if (rc < 0) {
		store_batch_free(b);
		return rc == -EINVAL ? -RMQ_EINVALID_ARGUMENT : rc;
	}
	store_submit(us->st, b, change_committed, p);
	return 0;
}

/* Starts the changes queued behind the head, answering those refused,
 * until one is under way or none is left. */
static void
start_next(struct users *us)
{
	while (us->head != NULL) {
		struct pending *p = us->head;
		int rc = change_start(us, p);

		if (rc == 0)
			return;
		us->head = p->next;
		if (us->head == NULL)
			us->tail = &us->head;
		p->done(p->ctx, rc);
		pending_free(p);
	}
}

/* Moves what next holds into u, in place: sessions keep pointing at u. */
static void
user_take(struct user *u, struct user *next)
{
	struct user keep = *u;

	for (size_t i = 0; i < u->nperms; i++)
		free(u->perms[i].pattern);
	free(u->perms);
	*u = *next;
	/* What the table and sessions count stays; the buckets too, unless
	 * the limits changed. */
	u->refs = keep.refs;
	u->connections = keep.connections;
	u->leases.held = keep.leases.held;
	u->leases.max = u->quota.max_leases;
	u->published_msgs = keep.published_msgs;
	u->published_bytes = keep.published_bytes;
	u->refused_rate = keep.refused_rate;
	u->refused_connections = keep.refused_connections;
	if (u->quota.publish_messages_per_s ==
		    keep.quota.publish_messages_per_s &&
	    u->quota.publish_bytes_per_s == keep.quota.publish_bytes_per_s) {
		u->msg_tokens = keep.msg_tokens;
		u->byte_tokens = keep.byte_tokens;
		u->refill_ms = keep.refill_ms;
	} else
		quota_reset(u);
	next->perms = NULL;
	next->nperms = next->capperms = 0;
}

static void
change_committed(void *ctx, int status)
{
	struct pending *p = ctx;
	struct users *us = p->us;
	struct user *u = NULL;

	us->head = p->next;
	if (us->head == NULL)
		us->tail = &us->head;
	if (status == 0) {
		u = users_find(us, p->ch.name);
		if (u != NULL)
			user_ref(u);
		if (p->next_state == NULL)
			table_del(us, p->ch.name);
		else if (u != NULL)
			user_take(u, p->next_state);
		else if (quota_reset(p->next_state),
			 table_put(us, p->next_state) == 0) {
			u = p->next_state;
			p->next_state = NULL;
			user_ref(u);
		} else {
			/* The record is stored; memory follows at restart. */
			log_error("users: no memory to add %s", p->ch.name);
			status = -ENOMEM;
		}
	}
	if (u != NULL) {
		if (us->hook != NULL)
			us->hook(us->hook_ctx, u);
		user_unref(u);
	}
	p->done(p->ctx, status);
	pending_free(p);
	start_next(us);
}

int
users_change(struct users *us, const struct user_change *ch, users_done_fn done,
	     void *ctx)
{
	struct pending *p;
	int rc;

	if (!change_is_valid(ch))
		return -RMQ_EINVALID_ARGUMENT;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->us = us;
	p->ch = *ch;
	p->done = done;
	p->ctx = ctx;
	if (us->head == NULL) {
		rc = change_start(us, p);
		if (rc < 0) {
			pending_free(p);
			return rc;
		}
	}
	*us->tail = p;
	us->tail = &p->next;
	return 0;
}
