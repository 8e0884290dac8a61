/*
 * coord: the cluster's coordination store, behind one backend-neutral
 * interface. Its model is etcd's v3 (DESIGN.md, "Scale out"): one flat
 * key space whose every change gets the next store revision; a key
 * remembers the revision that created it and the one that last changed
 * it; leases that, unless kept alive, expire and take their keys with
 * them; and transactions that compare keys and then act, all at once or
 * not at all. The etcd gateway backend speaks this to etcd; coord_mem.c
 * keeps it in memory, with a clock the caller moves, for tests.
 *
 * Calls block until the backend answers: they run on the coordination
 * thread, never on the event loop. Values are text.
 */
#ifndef RINGMQ_COORD_H
#define RINGMQ_COORD_H

#include <stddef.h>
#include <stdint.h>

struct coord_kv {
	char *key;	    /* owned */
	char *value;	    /* owned, NUL-terminated */
	int64_t create_rev; /* the revision that created the key */
	int64_t mod_rev;    /* the revision that last changed it */
	int64_t lease;	    /* 0: none */
};

/* What a range read: the keys in key order, and the store's revision
 * when it was read. */
struct coord_kvs {
	struct coord_kv *v; /* owned [n] */
	size_t n, cap;
	int64_t rev;
};

void coord_kvs_free(struct coord_kvs *kvs);
/* The entry of kvs whose key is key, or NULL (a binary search: ranges
 * come in key order). */
const struct coord_kv *coord_kvs_find(const struct coord_kvs *kvs,
				      const char *key);

/* A transaction's comparison: key's create or mod revision equal to rev
 * (0: the key does not exist), or its value equal to value. */
enum coord_target {
	COORD_CREATE_REV,
	COORD_MOD_REV,
	COORD_VALUE,
};

struct coord_cmp {
	const char *key;
	enum coord_target target;
	int64_t rev;
	const char *value;
};

enum coord_op_kind {
	COORD_PUT,
	COORD_DELETE,
};

struct coord_op {
	enum coord_op_kind kind;
	const char *key;
	const char *value; /* COORD_PUT */
	int64_t lease;	   /* COORD_PUT: 0 or a live lease */
};

struct coord_ops {
	/* Every key that starts with prefix, into out (reset first). */
	int (*range)(void *be, const char *prefix, struct coord_kvs *out);
	/* If every comparison holds, does ops in order as one revision
	 * and sets *succeeded; else does nothing and clears it. *rev: the
	 * store's revision after it. A put on a lease that is not live:
	 * -ENOENT, nothing done. */
	int (*txn)(void *be, const struct coord_cmp *cmp, size_t ncmp,
		   const struct coord_op *ops, size_t nops, int *succeeded,
		   int64_t *rev);
	int (*lease_grant)(void *be, int64_t ttl_ms, int64_t *id);
	/* Renews lease id for its ttl; -ENOENT once it has expired. */
	int (*lease_keepalive)(void *be, int64_t id);
	/* Ends lease id now, deleting its keys. */
	int (*lease_revoke)(void *be, int64_t id);
	void (*free)(void *be);
};

/* A connection to a coordination store. Calls return 0 or -errno (-EIO
 * when the store cannot be reached). */
struct coord {
	const struct coord_ops *ops;
	void *be;
};

static inline int
coord_range(struct coord *c, const char *prefix, struct coord_kvs *out)
{
	return c->ops->range(c->be, prefix, out);
}

static inline int
coord_txn(struct coord *c, const struct coord_cmp *cmp, size_t ncmp,
	  const struct coord_op *ops, size_t nops, int *succeeded, int64_t *rev)
{
	return c->ops->txn(c->be, cmp, ncmp, ops, nops, succeeded, rev);
}

static inline int
coord_lease_grant(struct coord *c, int64_t ttl_ms, int64_t *id)
{
	return c->ops->lease_grant(c->be, ttl_ms, id);
}

static inline int
coord_lease_keepalive(struct coord *c, int64_t id)
{
	return c->ops->lease_keepalive(c->be, id);
}

static inline int
coord_lease_revoke(struct coord *c, int64_t id)
{
	return c->ops->lease_revoke(c->be, id);
}

/* Ends the connection (its backend's state). */
static inline void
coord_close(struct coord *c)
{
	if (c->ops != NULL)
		c->ops->free(c->be);
	c->ops = NULL;
	c->be = NULL;
}

/* ------------------------------------------------------------- etcd */

/* etcd's v3 JSON gateway (etcd 3.4: /v3/kv/..., /v3/lease/...). */
struct coord_etcd_cfg {
	/* "http://HOST:PORT" or "https://...", comma-separated: a request
	 * that cannot reach one tries the next. */
	const char *endpoints;
	const char *user, *password; /* NULL: etcd's auth off */
	const char *ca_file;	     /* https: the CAs (NULL: the system's) */
	long timeout_ms;	     /* per request; 0: 5000 */
	/* Once the monotonic clock (clock_mono_ms) reaches it, a request
	 * in flight ends with -ECANCELED (within about a second: libcurl's
	 * progress calls), so that a broker stopping does not wait out a
	 * silent etcd; 0 or NULL: never. */
	const _Atomic uint64_t *abort_at_ms;
};

/* @return 0 (*out set; nothing is sent yet) or -EINVAL, -ENOMEM. The
 * program calls curl_global_init once before it starts threads. */
int coord_etcd_open(struct coord *out, const struct coord_etcd_cfg *cfg);

/* ---------------------------------------------------------- in memory */

struct coord_mem; /* one store, shared by its coords */

/* @return 0 or -ENOMEM. */
int coord_mem_new(struct coord_mem **out);
void coord_mem_free(struct coord_mem *m);
/* A connection to m (every broker of a test has its own, or shares). */
struct coord coord_mem_connect(struct coord_mem *m);
/* Moves m's clock to now_ms (it only goes forward): leases not kept
 * alive since now_ms - ttl expire, deleting their keys. */
void coord_mem_set_time(struct coord_mem *m, uint64_t now_ms);
/* While down, every call of every connection fails with -EIO. */
void coord_mem_set_down(struct coord_mem *m, int is_down);
/* The store's revision. */
int64_t coord_mem_rev(const struct coord_mem *m);

#endif
