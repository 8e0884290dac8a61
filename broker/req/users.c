/*
 * users: the user and ACL requests (user put, delete, list; acl set,
 * delete). The broker never sees a password: UserPut carries the SCRAM
 * keys the client derived from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/users.h"
#include "lib/err.h"
#include "net/conn.h"
#include "req/req.h"
#include "req/session.h"
#include "scram.h"

/* Answers invalid names before they reach the table, with the rule. */
static int
check_name(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	if (user_name_ok(name))
		return 0;
	req_send_error(c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		       "user names are 1 to 128 characters of "
		       "[A-Za-z0-9._@-]");
	return -1;
}

static int
check_pattern(struct conn *c, const Ringmq__Frame *f, const char *pattern)
{
	if (user_pattern_ok(pattern))
		return 0;
	req_send_error(c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
		       "patterns are 1 to 200 characters of queue names and "
		       "'*' (any run of characters)");
	return -1;
}

/* Hands ch to the table; answers Done once committed. */
static void
change(struct conn *c, const Ringmq__Frame *f, const struct user_change *ch)
{
	struct req_ctx *r = req_new(c, f, 0);
	int rc;

	if (r == NULL)
		return;
	rc = users_change(req_env_of(c)->users, ch, req_done, r);
	if (rc < 0) {
		req_drop(r);
		req_send_rc(c, f->request_id, rc);
	}
}

void
req_user_put(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__UserPut *p = f->user_put;
	struct user_change ch = { 0 };
	int has_keys = p->has_salt || p->has_iterations || p->has_stored_key ||
		       p->has_server_key;

	if (check_name(c, f, p->name) < 0)
		return;
	if (has_keys && (!p->has_salt || !p->has_iterations ||
			 !p->has_stored_key || !p->has_server_key ||
			 p->salt.len == 0 || p->salt.len > STORE_SALT_MAX ||
			 p->stored_key.len != STORE_KEY_LEN ||
			 p->server_key.len != STORE_KEY_LEN ||
			 p->iterations < SCRAM_ITER_MIN ||
			 p->iterations > SCRAM_ITER_MAX)) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "SCRAM keys need a salt of 1 to 64 bytes, 4096 "
			       "to 10000000 iterations and both 32-byte keys");
		return;
	}
	if (p->has_create && p->create && !has_keys) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "a new user needs its SCRAM keys");
		return;
	}
	if (!(p->has_create && p->create) && !has_keys && p->quota == NULL) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "nothing to change");
		return;
	}
	ch.kind = p->has_create && p->create ? USER_ADD : USER_MODIFY;
	snprintf(ch.name, sizeof(ch.name), "%s", p->name);
	if (has_keys) {
		ch.has_keys = true;
		ch.iterations = p->iterations;
		ch.salt_len = (uint8_t)p->salt.len;
		memcpy(ch.salt, p->salt.data, p->salt.len);
		memcpy(ch.stored_key, p->stored_key.data, STORE_KEY_LEN);
		memcpy(ch.server_key, p->server_key.data, STORE_KEY_LEN);
	}
	if (p->quota != NULL) {
		const Ringmq__UserQuota *q = p->quota;

		if (q->has_max_connections) {
			ch.quota_given |= USER_QUOTA_CONNECTIONS;
			ch.quota.max_connections = q->max_connections;
		}
		if (q->has_publish_messages_per_s) {
			ch.quota_given |= USER_QUOTA_MESSAGES;
			ch.quota.publish_messages_per_s =
				q->publish_messages_per_s;
		}
		if (q->has_publish_bytes_per_s) {
			ch.quota_given |= USER_QUOTA_BYTES;
			ch.quota.publish_bytes_per_s = q->publish_bytes_per_s;
		}
		if (q->has_max_leases) {
			ch.quota_given |= USER_QUOTA_LEASES;
			ch.quota.max_leases = q->max_leases;
		}
	}
	change(c, f, &ch);
	explicit_bzero(&ch, sizeof(ch));
}

void
req_user_delete(struct conn *c, const Ringmq__Frame *f)
{
	struct user_change ch = { .kind = USER_DELETE };

	if (check_name(c, f, f->user_delete->name) < 0)
		return;
	snprintf(ch.name, sizeof(ch.name), "%s", f->user_delete->name);
	change(c, f, &ch);
}

static unsigned
bits_of(const Ringmq__Permission *p)
{
	return (p->has_publish && p->publish ? USER_PUBLISH : 0) |
	       (p->has_consume && p->consume ? USER_CONSUME : 0) |
	       (p->has_admin && p->admin ? USER_ADMIN : 0);
}

void
req_acl_set(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__AclSet *a = f->acl_set;
	struct user_change ch = { .kind = USER_ACL_SET };

	if (check_name(c, f, a->user) < 0 ||
	    check_pattern(c, f, a->permission->pattern) < 0)
		return;
	ch.bits = bits_of(a->permission);
	if (ch.bits == 0) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "grant at least one of publish, consume, admin "
			       "(acl delete takes a permission away)");
		return;
	}
	snprintf(ch.name, sizeof(ch.name), "%s", a->user);
	snprintf(ch.pattern, sizeof(ch.pattern), "%s", a->permission->pattern);
	change(c, f, &ch);
}

void
req_acl_delete(struct conn *c, const Ringmq__Frame *f)
{
	const Ringmq__AclDelete *a = f->acl_delete;
	struct user_change ch = { .kind = USER_ACL_DELETE };

	if (check_name(c, f, a->user) < 0 ||
	    check_pattern(c, f, a->pattern) < 0)
		return;
	snprintf(ch.name, sizeof(ch.name), "%s", a->user);
	snprintf(ch.pattern, sizeof(ch.pattern), "%s", a->pattern);
	change(c, f, &ch);
}

/* The answer's parts, one allocation each, filled by list_one. */
struct list_ctx {
	Ringmq__UserInfo *infos;
	Ringmq__UserInfo **ptrs;
	Ringmq__UserQuota *quotas;
	Ringmq__Permission *perms;
	Ringmq__Permission **perm_ptrs;
	size_t n, nperms;
};

static void
count_perms(void *ctx, struct user *u)
{
	*(size_t *)ctx += u->nperms;
}

static void
list_one(void *ctx, struct user *u)
{
	struct list_ctx *lc = ctx;
	Ringmq__UserInfo *ui = &lc->infos[lc->n];
	Ringmq__UserQuota *q = &lc->quotas[lc->n];

	ringmq__user_info__init(ui);
	ringmq__user_quota__init(q);
	ui->name = u->name;
	ui->created_ms = u->created_ms;
	q->has_max_connections = q->has_publish_messages_per_s = 1;
	q->has_publish_bytes_per_s = q->has_max_leases = 1;
	q->max_connections = u->quota.max_connections;
	q->publish_messages_per_s = u->quota.publish_messages_per_s;
	q->publish_bytes_per_s = u->quota.publish_bytes_per_s;
	q->max_leases = u->quota.max_leases;
	ui->quota = q;
	ui->has_connections = 1;
	ui->connections = u->connections;
	ui->permissions = &lc->perm_ptrs[lc->nperms];
	for (size_t i = 0; i < u->nperms; i++) {
		Ringmq__Permission *p = &lc->perms[lc->nperms];

		ringmq__permission__init(p);
		p->pattern = u->perms[i].pattern;
		p->has_publish = p->has_consume = p->has_admin = 1;
		p->publish = (u->perms[i].bits & USER_PUBLISH) != 0;
		p->consume = (u->perms[i].bits & USER_CONSUME) != 0;
		p->admin = (u->perms[i].bits & USER_ADMIN) != 0;
		lc->perm_ptrs[lc->nperms++] = p;
	}
	ui->n_permissions = u->nperms;
	lc->ptrs[lc->n++] = ui;
}

void
req_user_list(struct conn *c, const Ringmq__Frame *f)
{
	struct users *us = req_env_of(c)->users;
	Ringmq__UserListOk ok = RINGMQ__USER_LIST_OK__INIT;
	size_t n = users_count(us), np = 0;
	struct list_ctx lc = { 0 };

	users_each(us, count_perms, &np);
	lc.infos = calloc(n + 1, sizeof(*lc.infos));
	lc.ptrs = calloc(n + 1, sizeof(*lc.ptrs));
	lc.quotas = calloc(n + 1, sizeof(*lc.quotas));
	lc.perms = calloc(np + 1, sizeof(*lc.perms));
	lc.perm_ptrs = calloc(np + 1, sizeof(*lc.perm_ptrs));
	if (lc.infos == NULL || lc.ptrs == NULL || lc.quotas == NULL ||
	    lc.perms == NULL || lc.perm_ptrs == NULL) {
		req_send_rc(c, f->request_id, -ENOMEM);
		goto out;
	}
	users_each(us, list_one, &lc);
	ok.n_users = lc.n;
	ok.users = lc.ptrs;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_USER_LIST_OK, &ok);
out:
	free(lc.infos);
	free(lc.ptrs);
	free(lc.quotas);
	free(lc.perms);
	free(lc.perm_ptrs);
}
