/*
 * coord_mem: the coordination store in memory (coord.h), for tests: the
 * same revisions, leases and transactions as etcd, with a clock moved by
 * the caller so that lease expiry is exact and repeatable.
 */
#include "cluster/coord.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/vec.h"

struct mem_lease {
	int64_t id;
	int64_t ttl_ms;
	uint64_t deadline_ms;
};

struct coord_mem {
	struct coord_kv *kv; /* owned [n], sorted by key */
	size_t n, cap;
	struct mem_lease *leases; /* owned [nleases] */
	size_t nleases, capleases;
	int64_t rev;
	int64_t next_lease;
	uint64_t now_ms;
	int is_down;
};

void
coord_kvs_free(struct coord_kvs *kvs)
{
	for (size_t i = 0; i < kvs->n; i++) {
		free(kvs->v[i].key);
		free(kvs->v[i].value);
	}
	free(kvs->v);
	memset(kvs, 0, sizeof(*kvs));
}

const struct coord_kv *
coord_kvs_find(const struct coord_kvs *kvs, const char *key)
{
	size_t lo = 0, hi = kvs->n;

	/* A range is in key order (etcd's, and ours). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(kvs->v[mid].key, key);

		if (c == 0)
			return &kvs->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Where key is in m, or where it would go (*found says which). */
static size_t
mem_find(const struct coord_mem *m, const char *key, int *found)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->kv[mid].key, key);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static void
mem_delete_at(struct coord_mem *m, size_t i)
{
	free(m->kv[i].key);
	free(m->kv[i].value);
	memmove(&m->kv[i], &m->kv[i + 1], (m->n - i - 1) * sizeof(*m->kv));
	m->n--;
}

static struct mem_lease *
mem_lease(struct coord_mem *m, int64_t id)
{
	for (size_t i = 0; i < m->nleases; i++)
		if (m->leases[i].id == id)
			return &m->leases[i];
	return NULL;
}

/* Ends lease i: its keys go, in one revision. */
static void
mem_lease_end(struct coord_mem *m, size_t i)
{
	int64_t id = m->leases[i].id;
	int is_changed = 0;

	for (size_t k = m->n; k-- > 0;) {
		if (m->kv[k].lease == id) {
			mem_delete_at(m, k);
			is_changed = 1;
		}
	}
	if (is_changed)
		m->rev++;
	m->leases[i] = m->leases[--m->nleases];
}

static int
mem_range(void *be, const char *prefix, struct coord_kvs *out)
{
	struct coord_mem *m = be;
	size_t plen = strlen(prefix);
	int found;

	coord_kvs_free(out);
	if (m->is_down)
		return -EIO;
	for (size_t i = mem_find(m, prefix, &found); i < m->n; i++) {
		const struct coord_kv *kv = &m->kv[i];
		struct coord_kv *v;

		if (strncmp(kv->key, prefix, plen) != 0)
			break;
		v = vec_grow(out->v, &out->cap, out->n + 1, sizeof(*v), 16);
		if (v == NULL) {
			coord_kvs_free(out);
			return -ENOMEM;
		}
		out->v = v;
		v = &out->v[out->n];
		*v = *kv;
		v->key = strdup(kv->key);
		v->value = strdup(kv->value);
		out->n++;
		if (v->key == NULL || v->value == NULL) {
			coord_kvs_free(out);
			return -ENOMEM;
		}
	}
	out->rev = m->rev;
	return 0;
}

static int
cmp_holds(const struct coord_mem *m, const struct coord_cmp *c)
{
	int found;
	size_t i = mem_find(m, c->key, &found);
	const struct coord_kv *kv = found ? &m->kv[i] : NULL;

	switch (c->target) {
	case COORD_CREATE_REV: return (kv ? kv->create_rev : 0) == c->rev;
	case COORD_MOD_REV: return (kv ? kv->mod_rev : 0) == c->rev;
	case COORD_VALUE: return kv != NULL && strcmp(kv->value, c->value) == 0;
	}
	return 0;
}

static int
mem_put(struct coord_mem *m, const struct coord_op *op, int64_t rev)
{
	int found;
	size_t i = mem_find(m, op->key, &found);
	char *value = strdup(op->value);
	struct coord_kv *kv;

	if (value == NULL)
		return -ENOMEM;
	if (found) {
		kv = &m->kv[i];
		free(kv->value);
	} else {
		kv = vec_grow(m->kv, &m->cap, m->n + 1, sizeof(*kv), 16);
		if (kv == NULL) {
			free(value);
			return -ENOMEM;
		}
		m->kv = kv;
		memmove(&m->kv[i + 1], &m->kv[i], (m->n - i) * sizeof(*kv));
		kv = &m->kv[i];
		kv->key = strdup(op->key);
		if (kv->key == NULL) {
			memmove(&m->kv[i], &m->kv[i + 1],
				(m->n - i) * sizeof(*kv));
			free(value);
			return -ENOMEM;
		}
		m->n++;
		kv->create_rev = rev;
	}
	kv->value = value;
	kv->mod_rev = rev;
	kv->lease = op->lease;
	return 0;
}

static int
mem_txn(void *be, const struct coord_cmp *cmp, size_t ncmp,
	const struct coord_op *ops, size_t nops, int *succeeded, int64_t *rev)
{
	struct coord_mem *m = be;

	*succeeded = 0;
	if (m->is_down)
		return -EIO;
	for (size_t i = 0; i < ncmp; i++) {
		if (!cmp_holds(m, &cmp[i])) {
			*rev = m->rev;
			return 0;
		}
	}
	for (size_t i = 0; i < nops; i++)
		if (ops[i].kind == COORD_PUT && ops[i].lease != 0 &&
		    mem_lease(m, ops[i].lease) == NULL)
			return -ENOENT;
	if (nops > 0) {
		int64_t next = m->rev + 1;

		for (size_t i = 0; i < nops; i++) {
			int found;
			size_t k;

			if (ops[i].kind == COORD_PUT) {
				int rc = mem_put(m, &ops[i], next);

				if (rc < 0)
					return rc;
				continue;
			}
			k = mem_find(m, ops[i].key, &found);
			if (found)
				mem_delete_at(m, k);
		}
		m->rev = next;
	}
	*succeeded = 1;
	*rev = m->rev;
	return 0;
}

static int
mem_lease_grant(void *be, int64_t ttl_ms, int64_t *id)
{
	struct coord_mem *m = be;
	struct mem_lease *l;

	if (m->is_down)
		return -EIO;
	if (ttl_ms <= 0)
		return -EINVAL;
	l = vec_grow(m->leases, &m->capleases, m->nleases + 1, sizeof(*l), 8);
	if (l == NULL)
		return -ENOMEM;
	m->leases = l;
	l = &m->leases[m->nleases++];
	l->id = ++m->next_lease;
	l->ttl_ms = ttl_ms;
	l->deadline_ms = m->now_ms + (uint64_t)ttl_ms;
	*id = l->id;
	return 0;
}

static int
mem_lease_keepalive(void *be, int64_t id)
{
	struct coord_mem *m = be;
	struct mem_lease *l;

	if (m->is_down)
		return -EIO;
	l = mem_lease(m, id);
	if (l == NULL)
		return -ENOENT;
	l->deadline_ms = m->now_ms + (uint64_t)l->ttl_ms;
	return 0;
}

static int
mem_lease_revoke(void *be, int64_t id)
{
	struct coord_mem *m = be;

	if (m->is_down)
		return -EIO;
	for (size_t i = 0; i < m->nleases; i++) {
		if (m->leases[i].id == id) {
			mem_lease_end(m, i);
			return 0;
		}
	}
	return -ENOENT;
}

static void
mem_free(void *be)
{
	(void)be; /* the store outlives its connections */
}

static const struct coord_ops mem_ops = {
	.range = mem_range,
	.txn = mem_txn,
	.lease_grant = mem_lease_grant,
	.lease_keepalive = mem_lease_keepalive,
	.lease_revoke = mem_lease_revoke,
	.free = mem_free,
};

int
coord_mem_new(struct coord_mem **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void
coord_mem_free(struct coord_mem *m)
{
	if (m == NULL)
		return;
	while (m->n > 0)
		mem_delete_at(m, m->n - 1);
	free(m->kv);
	free(m->leases);
	free(m);
}

struct coord
coord_mem_connect(struct coord_mem *m)
{
	return (struct coord){ .ops = &mem_ops, .be = m };
}

void
coord_mem_set_time(struct coord_mem *m, uint64_t now_ms)
{
	if (now_ms > m->now_ms)
		m->now_ms = now_ms;
	for (size_t i = m->nleases; i-- > 0;)
		if (m->leases[i].deadline_ms <= m->now_ms)
			mem_lease_end(m, i);
}

void
coord_mem_set_down(struct coord_mem *m, int is_down)
{
	m->is_down = is_down;
}

int64_t
coord_mem_rev(const struct coord_mem *m)
{
	return m->rev;
}
