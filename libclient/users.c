/*
 * users.c: users and their permissions (user add, passwd, delete, list;
 * acl set, delete). A password never leaves this process: the SCRAM keys
 * the broker keeps are derived here, from a fresh random salt.
 */
#include "internal.h"

#include "scram.h"

#include <stdlib.h>
#include <string.h>

/* PBKDF2 rounds of the keys made here: RFC 7677's floor, what the broker
 * uses for its bootstrap user. */
#define USER_ITERATIONS 4096u
#define USER_SALT_BYTES 16u

struct ringmq_user_list {
	Ringmq__Frame *f; /* owned; body_case is USER_LIST_OK */
};

/* UserPut with keys derived from password (create: a new user). */
static int
put_keys(ringmq_client *c, const char *name, const char *password, int create)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__UserPut up = RINGMQ__USER_PUT__INIT;
	uint8_t salt[USER_SALT_BYTES];
	uint8_t stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (name == NULL || password == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	rc = scram_random(salt, sizeof(salt));
	if (rc == 0)
		rc = scram_salted_keys(password, salt, sizeof(salt),
				       USER_ITERATIONS, stored, server);
	if (rc < 0)
		return client_fail(
			c, rc == -SCRAM_EINVAL ? RINGMQ_USAGE : RINGMQ_INTERNAL,
			"password: %s (1 to %d printable ASCII "
			"characters)",
			scram_strerror(rc), SCRAM_PASSWORD_MAX);
	up.name = (char *)name;
	up.has_create = 1;
	up.create = create;
	up.has_salt = up.has_iterations = 1;
	up.has_stored_key = up.has_server_key = 1;
	up.salt.data = salt;
	up.salt.len = sizeof(salt);
	up.iterations = USER_ITERATIONS;
	up.stored_key.data = stored;
	up.stored_key.len = sizeof(stored);
	up.server_key.data = server;
	up.server_key.len = sizeof(server);
	f.body_case = RINGMQ__FRAME__BODY_USER_PUT;
	f.user_put = &up;
	rc = conn_call_done(c, &f);
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	return rc;
}

int
ringmq_user_add(ringmq_client *c, const char *name, const char *password)
{
	return put_keys(c, name, password, 1);
}

int
ringmq_user_passwd(ringmq_client *c, const char *name, const char *password)
{
	return put_keys(c, name, password, 0);
}

static const Ringmq__UserInfo *
user_at(const ringmq_user_list *l, size_t i)
{
	return l != NULL && i < l->f->user_list_ok->n_users
		       ? l->f->user_list_ok->users[i]
		       : NULL;
}

/* The limits ringmq_user_set_limit() knows, and their UserQuota field. */
static const struct limit_name {
	const char *name;
	int which; /* 0 connections, 1 messages/s, 2 bytes/s, 3 leases */
	uint64_t max;
} limit_names[] = {
	{ "max-connections", 0, UINT32_MAX },
	{ "publish-rate", 1, UINT64_MAX },
	{ "publish-bytes-rate", 2, UINT64_MAX },
	{ "max-leases", 3, UINT32_MAX },
};

int
ringmq_user_set_limit(ringmq_client *c, const char *name, const char *limit,
		      uint64_t value)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__UserPut up = RINGMQ__USER_PUT__INIT;
	Ringmq__UserQuota q = RINGMQ__USER_QUOTA__INIT;
	const struct limit_name *l = NULL;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	for (size_t i = 0;
	     limit != NULL && i < sizeof(limit_names) / sizeof(*limit_names);
	     i++)
		if (strcmp(limit, limit_names[i].name) == 0)
			l = &limit_names[i];
	if (name == NULL || l == NULL || value > l->max)
		return client_fail(c, RINGMQ_USAGE,
				   "no such limit, or a value out of range");
	switch (l->which) {
	case 0:
		q.has_max_connections = 1;
		q.max_connections = (uint32_t)value;
		break;
	case 1:
		q.has_publish_messages_per_s = 1;
		q.publish_messages_per_s = value;
		break;
	case 2:
		q.has_publish_bytes_per_s = 1;
		q.publish_bytes_per_s = value;
		break;
	default:
		q.has_max_leases = 1;
		q.max_leases = (uint32_t)value;
		break;
	}
	up.name = (char *)name;
	up.quota = &q;
	f.body_case = RINGMQ__FRAME__BODY_USER_PUT;
	f.user_put = &up;
	return conn_call_done(c, &f);
}

uint64_t
ringmq_user_list_limit(const ringmq_user_list *l, size_t i, const char *limit)
{
	const Ringmq__UserInfo *u = user_at(l, i);
	const Ringmq__UserQuota *q = u != NULL ? u->quota : NULL;

	if (q == NULL || limit == NULL)
		return 0;
	if (strcmp(limit, "max-connections") == 0)
		return q->max_connections;
	if (strcmp(limit, "publish-rate") == 0)
		return q->publish_messages_per_s;
	if (strcmp(limit, "publish-bytes-rate") == 0)
		return q->publish_bytes_per_s;
	if (strcmp(limit, "max-leases") == 0)
		return q->max_leases;
	return 0;
}

int
ringmq_user_delete(ringmq_client *c, const char *name)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__UserDelete ud = RINGMQ__USER_DELETE__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (name == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	ud.name = (char *)name;
	f.body_case = RINGMQ__FRAME__BODY_USER_DELETE;
	f.user_delete = &ud;
	return conn_call_done(c, &f);
}

int
ringmq_acl_set(ringmq_client *c, const char *user, const char *pattern,
	       unsigned perms)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__AclSet as = RINGMQ__ACL_SET__INIT;
	Ringmq__Permission p = RINGMQ__PERMISSION__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (user == NULL || pattern == NULL || perms == 0 ||
	    (perms & ~(unsigned)RINGMQ_PERM_ALL) != 0)
		return client_fail(c, RINGMQ_USAGE,
				   "NULL argument, or no permission to grant");
	p.pattern = (char *)pattern;
	p.has_publish = p.has_consume = p.has_admin = 1;
	p.publish = (perms & RINGMQ_PERM_PUBLISH) != 0;
	p.consume = (perms & RINGMQ_PERM_CONSUME) != 0;
	p.admin = (perms & RINGMQ_PERM_ADMIN) != 0;
	as.user = (char *)user;
	as.permission = &p;
	f.body_case = RINGMQ__FRAME__BODY_ACL_SET;
	f.acl_set = &as;
	return conn_call_done(c, &f);
}

int
ringmq_acl_delete(ringmq_client *c, const char *user, const char *pattern)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__AclDelete ad = RINGMQ__ACL_DELETE__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (user == NULL || pattern == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	ad.user = (char *)user;
	ad.pattern = (char *)pattern;
	f.body_case = RINGMQ__FRAME__BODY_ACL_DELETE;
	f.acl_delete = &ad;
	return conn_call_done(c, &f);
}

int
ringmq_user_list_get(ringmq_client *c, ringmq_user_list **listp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__UserList ul = RINGMQ__USER_LIST__INIT;
	Ringmq__Frame *resp;
	ringmq_user_list *l;
	int rc;

	if (listp == NULL)
		return c ? client_fail(c, RINGMQ_USAGE, "NULL argument")
			 : RINGMQ_USAGE;
	*listp = NULL;
	rc = client_begin(c);
	if (rc != RINGMQ_OK)
		return rc;
	f.body_case = RINGMQ__FRAME__BODY_USER_LIST;
	f.user_list = &ul;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_USER_LIST_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	l->f = resp;
	*listp = l;
	return RINGMQ_OK;
}

size_t
ringmq_user_list_count(const ringmq_user_list *l)
{
	return l != NULL ? l->f->user_list_ok->n_users : 0;
}

const char *
ringmq_user_list_name(const ringmq_user_list *l, size_t i)
{
	const Ringmq__UserInfo *u = user_at(l, i);

	return u ? u->name : NULL;
}

uint64_t
ringmq_user_list_created_ms(const ringmq_user_list *l, size_t i)
{
	const Ringmq__UserInfo *u = user_at(l, i);

	return u ? u->created_ms : 0;
}

uint32_t
ringmq_user_list_connections(const ringmq_user_list *l, size_t i)
{
	const Ringmq__UserInfo *u = user_at(l, i);

	return u && u->has_connections ? u->connections : 0;
}

size_t
ringmq_user_list_perm_count(const ringmq_user_list *l, size_t i)
{
	const Ringmq__UserInfo *u = user_at(l, i);

	return u ? u->n_permissions : 0;
}

static const Ringmq__Permission *
perm_at(const ringmq_user_list *l, size_t i, size_t j)
{
	const Ringmq__UserInfo *u = user_at(l, i);

	return u != NULL && j < u->n_permissions ? u->permissions[j] : NULL;
}

const char *
ringmq_user_list_perm_pattern(const ringmq_user_list *l, size_t i, size_t j)
{
	const Ringmq__Permission *p = perm_at(l, i, j);

	return p ? p->pattern : NULL;
}

unsigned
ringmq_user_list_perm_bits(const ringmq_user_list *l, size_t i, size_t j)
{
	const Ringmq__Permission *p = perm_at(l, i, j);

	if (p == NULL)
		return 0;
	return (p->has_publish && p->publish ? RINGMQ_PERM_PUBLISH : 0u) |
	       (p->has_consume && p->consume ? RINGMQ_PERM_CONSUME : 0u) |
	       (p->has_admin && p->admin ? RINGMQ_PERM_ADMIN : 0u);
}

void
ringmq_user_list_free(ringmq_user_list *l)
{
	if (l == NULL)
		return;
	frame_free(l->f);
	free(l);
}
