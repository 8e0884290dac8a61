/*
 * controller: see controller.h.
 */
#define _GNU_SOURCE
#include "cluster/controller.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/placement.h"
#include "lib/log.h"
#include "lib/vec.h"
#include "name_rule.h"

#define KEY_MAX 512

static int
name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return 0;
	return s[strspn(s,
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789._-")] == '\0';
}

int
controller_init(struct controller *c, struct coord *coord, const char *cluster,
		const char *id, int64_t ttl_ms)
{
	memset(c, 0, sizeof(*c));
	if (!name_ok(cluster, 128) || !name_ok(id, CLUSTER_ID_MAX) ||
	    ttl_ms <= 0)
		return -EINVAL;
	c->coord = coord;
	snprintf(c->prefix, sizeof(c->prefix), "/ringmq/%s/", cluster);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->ttl_ms = ttl_ms;
	return 0;
}

static void key(char *buf, const struct controller *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
key(char *buf, const struct controller *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, KEY_MAX, "%s", c->prefix);

	va_start(ap, fmt);
	vsnprintf(buf + n, KEY_MAX - (size_t)n, fmt, ap);
	va_end(ap);
}

int
controller_register(struct controller *c, const char *addr)
{
	char k[KEY_MAX];
	struct coord_op put = { COORD_PUT, k, addr, 0 };
	int64_t rev;
	int ok, rc;

	rc = coord_lease_grant(c->coord, c->ttl_ms, &c->lease);
	if (rc < 0) {
		c->lease = 0;
		return rc;
	}
	key(k, c, "brokers/%s", c->id);
	put.lease = c->lease;
	rc = coord_txn(c->coord, NULL, 0, &put, 1, &ok, &rev);
	return rc < 0 ? rc : 0;
}

int
controller_keepalive(struct controller *c, const char *addr)
{
	int rc = c->lease ? coord_lease_keepalive(c->coord, c->lease) : -ENOENT;

	if (rc != -ENOENT)
		return rc;
	if (c->epoch > 0)
		log_warn("cluster: lease lost: no longer the controller "
			 "(epoch %" PRId64 ")",
			 c->epoch);
	c->epoch = 0;
	return controller_register(c, addr);
}

int
controller_campaign(struct controller *c)
{
	char k[KEY_MAX];
	struct coord_cmp absent = { k, COORD_CREATE_REV, 0, NULL };
	struct coord_op put = { COORD_PUT, k, c->id, c->lease };
	struct coord_kvs kvs = { 0 };
	const struct coord_kv *kv;
	int64_t rev;
	int ok, rc;

	if (c->lease == 0)
		return -ENOENT;
	key(k, c, "controller");
	rc = coord_txn(c->coord, &absent, 1, &put, 1, &ok, &rev);
	if (rc < 0)
		return rc;
	if (ok) {
		c->epoch = rev;
		log_info("cluster: %s is the controller, epoch %" PRId64, c->id,
			 rev);
		return 1;
	}
	/* Ours already (a campaign whose answer was lost)? */
	rc = coord_range(c->coord, k, &kvs);
	if (rc < 0)
		return rc;
	kv = coord_kvs_find(&kvs, k);
	c->epoch = kv != NULL && kv->lease == c->lease &&
				   strcmp(kv->value, c->id) == 0
			   ? kv->create_rev
			   : 0;
	coord_kvs_free(&kvs);
	return c->epoch > 0;
}

/* The fencing comparison of every controller write. */
static struct coord_cmp
fence(const struct controller *c, char *k)
{
	key(k, c, "controller");
	return (struct coord_cmp){ k, COORD_CREATE_REV, c->epoch, NULL };
}

int
controller_queue_create(struct controller *c, const char *name,
			uint32_t partitions)
{
	char fk[KEY_MAX], qk[KEY_MAX], value[64];
	struct coord_cmp cmp[2];
	struct coord_op put = { COORD_PUT, qk, value, 0 };
	struct coord_kvs kvs = { 0 };
	int64_t rev;
	int ok, rc;

	if (c->epoch <= 0)
		return -EPERM;
	if (!name_rule_queue_ok(name) || partitions == 0 || partitions > 4096)
		return -EINVAL;
	key(qk, c, "queues/%s", name);
	snprintf(value, sizeof(value), "partitions=%u", partitions);
	cmp[0] = fence(c, fk);
	cmp[1] = (struct coord_cmp){ qk, COORD_CREATE_REV, 0, NULL };
	rc = coord_txn(c->coord, cmp, 2, &put, 1, &ok, &rev);
	if (rc < 0 || ok)
		return rc;
	/* Which comparison failed? */
	rc = coord_range(c->coord, qk, &kvs);
	if (rc < 0)
		return rc;
	ok = coord_kvs_find(&kvs, qk) != NULL;
	coord_kvs_free(&kvs);
	if (ok)
		return -EEXIST;
	c->epoch = 0;
	return -ESTALE;
}

/* What the store says: live brokers, queues, partition records. */
struct view {
	struct coord_kvs brokers, queues, parts;
	const char **ids; /* borrowed from brokers */
	size_t nids;
};

static void
view_free(struct view *v)
{
	coord_kvs_free(&v->brokers);
	coord_kvs_free(&v->queues);
	coord_kvs_free(&v->parts);
	free(v->ids);
}

static int
view_read(struct controller *c, struct view *v)
{
	char k[KEY_MAX];
	size_t plen;
	int rc;

	memset(v, 0, sizeof(*v));
	key(k, c, "brokers/");
	plen = strlen(k);
	if ((rc = coord_range(c->coord, k, &v->brokers)) < 0)
		return rc;
	key(k, c, "queues/");
	if ((rc = coord_range(c->coord, k, &v->queues)) < 0)
		return rc;
	key(k, c, "parts/");
	if ((rc = coord_range(c->coord, k, &v->parts)) < 0)
		return rc;
	v->ids = calloc(v->brokers.n ? v->brokers.n : 1, sizeof(*v->ids));
	if (v->ids == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->brokers.n; i++)
		v->ids[v->nids++] = v->brokers.v[i].key + plen;
	return 0;
}

/* Partition record value: owner and epoch; 0, or -EINVAL. */
static int
part_parse(const char *value, char *owner, int64_t *epoch)
{
	char fmt[32];

	snprintf(fmt, sizeof(fmt), "owner=%%%ds epoch=%%" SCNd64,
		 CLUSTER_ID_MAX - 1);
	if (sscanf(value, fmt, owner, epoch) != 2)
		return -EINVAL;
	return 0;
}

/* The changes one queue's placement needs, appended to ops (values and
 * keys into strs, one allocation each). */
struct changes {
	struct coord_op *ops;
	size_t n, cap;
	char **strs;
	size_t nstrs, capstrs;
	long moved;
};

static void
changes_free(struct changes *ch)
{
	for (size_t i = 0; i < ch->nstrs; i++)
		free(ch->strs[i]);
	free(ch->strs);
	free(ch->ops);
}

static char *
changes_str(struct changes *ch, char *s)
{
	char **v;

	if (s == NULL)
		return NULL;
	v = vec_grow(ch->strs, &ch->capstrs, ch->nstrs + 1, sizeof(*v), 16);
	if (v == NULL) {
		free(s);
		return NULL;
	}
	ch->strs = v;
	ch->strs[ch->nstrs++] = s;
	return s;
}

static int
place_queue(struct controller *c, const struct view *v, const char *queue,
	    uint32_t nparts, struct changes *ch)
{
	int *owner = calloc(nparts, sizeof(*owner));
	int64_t *epoch = calloc(nparts, sizeof(*epoch));
	long moved;
	int rc = 0;

	if (owner == NULL || epoch == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nparts; i++) {
		char k[KEY_MAX], who[CLUSTER_ID_MAX];
		const struct coord_kv *kv;

		owner[i] = -1;
		key(k, c, "parts/%s/%05u", queue, i);
		kv = coord_kvs_find(&v->parts, k);
		if (kv == NULL || part_parse(kv->value, who, &epoch[i]) < 0)
			continue;
		for (size_t b = 0; b < v->nids; b++)
			if (strcmp(v->ids[b], who) == 0)
				owner[i] = (int)b;
		if (owner[i] < 0)
			owner[i] = -2; /* a dead owner: a change */
	}
	{
		int *was = calloc(nparts, sizeof(*was));

		if (was == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(was, owner, nparts * sizeof(*was));
		for (uint32_t i = 0; i < nparts; i++)
			if (owner[i] == -2)
				owner[i] = -1;
		moved = placement_assign(queue, nparts, v->ids, v->nids, owner);
		if (moved < 0) {
			free(was);
			rc = (int)moved;
			goto out;
		}
		for (uint32_t i = 0; i < nparts; i++) {
			struct coord_op *op;
			char *k, *val;

			if (owner[i] == was[i])
				continue;
			op = vec_grow(ch->ops, &ch->cap, ch->n + 1, sizeof(*op),
				      16);
			k = val = NULL;
			if (op == NULL ||
			    asprintf(&k, "%sparts/%s/%05u", c->prefix, queue,
				     i) < 0 ||
			    changes_str(ch, k) == NULL ||
			    asprintf(&val, "owner=%s epoch=%" PRId64,
				     v->ids[owner[i]], epoch[i] + 1) < 0 ||
			    changes_str(ch, val) == NULL) {
				if (op != NULL)
					ch->ops = op;
				free(was);
				rc = -ENOMEM;
				goto out;
			}
			ch->ops = op;
			ch->ops[ch->n++] =
				(struct coord_op){ COORD_PUT, k, val, 0 };
			ch->moved++;
		}
		free(was);
	}
out:
	free(owner);
	free(epoch);
	return rc;
}

long
controller_reconcile(struct controller *c)
{
	struct view v;
	struct changes ch = { 0 };
	char fk[KEY_MAX];
	struct coord_cmp cmp;
	size_t qplen;
	int64_t rev;
	int ok, rc;

	if (c->epoch <= 0)
		return -EPERM;
	rc = view_read(c, &v);
	if (rc < 0)
		goto out;
	if (v.nids == 0) {
		rc = -EAGAIN;
		goto out;
	}
	qplen = strlen(c->prefix) + strlen("queues/");
	for (size_t i = 0; i < v.queues.n; i++) {
		unsigned nparts;

		if (sscanf(v.queues.v[i].value, "partitions=%u", &nparts) != 1)
			continue;
		rc = place_queue(c, &v, v.queues.v[i].key + qplen, nparts, &ch);
		if (rc < 0)
			goto out;
	}
	cmp = fence(c, fk);
	if (ch.n == 0) {
		/* Nothing to move; still fenced: a stale controller learns it
		 * here. */
		rc = coord_txn(c->coord, &cmp, 1, NULL, 0, &ok, &rev);
	} else {
		rc = coord_txn(c->coord, &cmp, 1, ch.ops, ch.n, &ok, &rev);
	}
	if (rc < 0)
		goto out;
	if (!ok) {
		log_warn("cluster: %s is no longer the controller (epoch "
			 "%" PRId64 "): its placement was not written",
			 c->id, c->epoch);
		c->epoch = 0;
		rc = -ESTALE;
		goto out;
	}
	if (ch.moved > 0)
		log_info("cluster: controller %s moved %ld partitions over %zu "
			 "brokers",
			 c->id, ch.moved, v.nids);
out:
	view_free(&v);
	{
		long moved = ch.moved;

		changes_free(&ch);
		return rc < 0 ? rc : moved;
	}
}

int
controller_owner(struct controller *c, const char *queue, uint32_t part,
		 char *owner, int64_t *epoch)
{
	char k[KEY_MAX];
	struct coord_kvs kvs = { 0 };
	const struct coord_kv *kv;
	int rc;

	owner[0] = '\0';
	*epoch = 0;
	key(k, c, "parts/%s/%05u", queue, part);
	rc = coord_range(c->coord, k, &kvs);
	if (rc < 0)
		return rc;
	kv = coord_kvs_find(&kvs, k);
	if (kv != NULL)
		rc = part_parse(kv->value, owner, epoch);
	coord_kvs_free(&kvs);
	return rc;
}
