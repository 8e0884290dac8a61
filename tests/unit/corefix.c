/*
 * corefix: see corefix.h.
 */
#include "corefix.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lib/clock.h"
#include "journal_mode.h"
#include "tmpdir.h"

#define MAP_BYTES     (64u << 20)
#define PUBLISH_MAX   64 /* messages of one corefix_publish */
#define SETTLE_ROUNDS 16 /* completions submitting batches, at most */

static void
on_visible(void *ctx, struct queue *q, uint32_t part)
{
	struct corefix *f = ctx;

	(void)part;
	groups_wake_queue(f->gs, q);
}

static int
owner_deliver(void *owner, const struct delivery *d,
	      const struct store_msg_view *v)
{
	struct corefix_owner *o = owner;

	/* One past the end still counts, so that a test expecting fewer
	 * sees the excess. */
	if (o->ngot < COREFIX_GOT_MAX) {
		struct corefix_got *g = &o->got[o->ngot];
		size_t len = v->payload_len < COREFIX_PAYLOAD_MAX - 1
				     ? v->payload_len
				     : COREFIX_PAYLOAD_MAX - 1;

		g->d = *d;
		g->mono_ms = clock_mono_ms();
		memcpy(g->payload, v->payload, len);
		g->payload[len] = '\0';
	}
	o->ngot++;
	if (o->ngot == o->unwritable_at)
		o->is_writable = 0;
	return 0;
}

static int
owner_is_writable(void *owner)
{
	return ((struct corefix_owner *)owner)->is_writable;
}

static void
owner_detached(void *owner, struct sub *s, int code)
{
	struct corefix_owner *o = owner;

	assert_ptr_equal(s, o->sub);
	o->sub = NULL;
	o->detached_code = code;
}

static const struct sub_ops owner_ops = {
	.deliver = owner_deliver,
	.is_writable = owner_is_writable,
	.detached = owner_detached,
};

int
corefix_setup(void **state)
{
	struct corefix *f = calloc(1, sizeof(*f));
	char *argv[] = { (char *)"ringmqd", NULL };
	struct store_opts o;
	char err[256];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/ringmq-core-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(config_load(&f->cfg, 1, argv, err, sizeof(err)),
			 CONFIG_OK);
	memset(&o, 0, sizeof(o));
	o.dir = f->dir;
	o.max_storage_bytes = MAP_BYTES;
	o.sync = STORE_SYNC_NEVER; /* durability is the store tests' */
	o.journal = test_journal();
	assert_int_equal(store_open(&f->s, &o), 0);
	assert_int_equal(queues_new(&f->qs, f->s, &f->cfg, on_visible, f), 0);
	assert_int_equal(
		groups_new(&f->gs, f->s, f->qs, store_boot_epoch(f->s)), 0);
	for (size_t i = 0; i < COREFIX_OWNERS; i++) {
		lease_owner_init(&f->owners[i].lo);
		f->owners[i].is_writable = 1;
		f->owners[i].detached_code = 1;
	}
	*state = f;
	return 0;
}

int
corefix_teardown(void **state)
{
	struct corefix *f = *state;

	/* No completion may run after the groups are gone. */
	corefix_settle(f);
	groups_free(f->gs);
	queues_free(f->qs);
	store_close(f->s);
	for (size_t i = 0; i < COREFIX_OWNERS; i++)
		lease_owner_fini(&f->owners[i].lo);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

void
corefix_settle(struct corefix *f)
{
	for (int i = 0; i < SETTLE_ROUNDS; i++) {
		store_drain(f->s);
		if (store_reap(f->s) == 0)
			return;
	}
	fail_msg("completions kept submitting batches");
}

void
corefix_tick(struct corefix *f)
{
	(void)queues_tick(f->qs);
	(void)groups_tick(f->gs);
	corefix_settle(f);
}

int
corefix_wait_for(struct corefix *f, int (*is_done)(void *ctx), void *ctx,
		 uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;

	corefix_tick(f);
	while (!is_done(ctx) && clock_mono_ms() < end) {
		/* A millisecond: the unit of the core's clocks. */
		const struct timespec tick = { 0, 1000000 };

		(void)nanosleep(&tick, NULL);
		corefix_tick(f);
	}
	return is_done(ctx);
}

struct owner_wait {
	const struct corefix_owner *o;
	size_t n;
};

static int
owner_has(void *ctx)
{
	const struct owner_wait *w = ctx;

	return w->o->ngot >= w->n;
}

size_t
corefix_wait(struct corefix *f, struct corefix_owner *o, size_t n, uint64_t ms)
{
	struct owner_wait w = { o, n };

	(void)corefix_wait_for(f, owner_has, &w, ms);
	return o->ngot;
}

static void
on_done(void *ctx, int status)
{
	((struct corefix *)ctx)->done_status = status;
}

struct queue *
corefix_create_given(struct corefix *f, const char *name, uint32_t partitions,
		     const struct queue_policy_given *given)
{
	f->done_status = 1;
	assert_int_equal(
		queue_create(f->qs, name, partitions, given, on_done, f), 0);
	corefix_settle(f);
	assert_int_equal(f->done_status, 0);
	return queues_find(f->qs, name);
}

struct queue *
corefix_create(struct corefix *f, const char *name, uint32_t partitions,
	       const struct corefix_policy *pol)
{
	struct queue_policy_given given = { 0 };

	if (pol != NULL) {
		given.fields =
			(pol->lease_ms != 0 ? QUEUE_POLICY_LEASE_MS : 0) |
			(pol->max_lease_ms != 0 ? QUEUE_POLICY_MAX_LEASE_MS
						: 0) |
			(pol->has_max_deliveries ? QUEUE_POLICY_MAX_DELIVERIES
						 : 0);
		given.lease_ms = pol->lease_ms;
		given.max_lease_ms = pol->max_lease_ms;
		given.max_deliveries = pol->max_deliveries;
	}
	return corefix_create_given(f, name, partitions,
				    pol != NULL ? &given : NULL);
}

struct published {
	struct publish_result *res; /* room for the batch's */
	size_t n;		    /* results; SIZE_MAX: not called yet */
};

static void
on_published(void *ctx, const struct publish_result *res, size_t n)
{
	struct published *out = ctx;

	memcpy(out->res, res, n * sizeof(*res));
	out->n = n;
}

size_t
corefix_publish_batch(struct corefix *f, const struct publish_batch *p,
		      struct publish_result *res)
{
	struct published out = { res, SIZE_MAX };

	assert_int_equal(queue_publish(f->qs, p, 0, on_published, &out), 0);
	corefix_settle(f);
	assert_int_equal(out.n, p->n);
	return out.n;
}

void
corefix_publish(struct corefix *f, const char *queue, int part,
		const struct corefix_msg *msgs, size_t n, uint64_t *offsets)
{
	struct publish_batch p = { 0 };
	struct publish_msg ms[PUBLISH_MAX];
	struct store_header hs[PUBLISH_MAX];
	struct publish_result res[PUBLISH_MAX];

	assert_true(n <= PUBLISH_MAX);
	memset(ms, 0, sizeof(ms));
	for (size_t i = 0; i < n; i++) {
		ms[i].payload = msgs[i].payload;
		ms[i].payload_len = strlen(msgs[i].payload);
		if (msgs[i].key != NULL) {
			ms[i].has_key = 1;
			ms[i].key = msgs[i].key;
			ms[i].key_len = strlen(msgs[i].key);
		}
		if (msgs[i].hname != NULL) {
			hs[i].name = msgs[i].hname;
			hs[i].name_len = (uint32_t)strlen(msgs[i].hname);
			hs[i].value = msgs[i].hvalue;
			hs[i].value_len = (uint32_t)strlen(msgs[i].hvalue);
			ms[i].n_headers = 1;
			ms[i].headers = &hs[i];
		}
	}
	p.queue = queue;
	p.n = n;
	p.msgs = ms;
	p.has_partition = part >= 0;
	p.partition = part >= 0 ? (uint32_t)part : 0;
	corefix_publish_batch(f, &p, res);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(res[i].code, 0);
		assert_true(res[i].is_stored);
		if (offsets != NULL)
			offsets[i] = res[i].offset;
	}
}

void
corefix_publish_n(struct corefix *f, const char *queue, int part,
		  const char *prefix, size_t n)
{
	struct corefix_msg msgs[PUBLISH_MAX];
	char payloads[PUBLISH_MAX][COREFIX_PAYLOAD_MAX];

	assert_true(n <= PUBLISH_MAX);
	memset(msgs, 0, sizeof(msgs));
	for (size_t i = 0; i < n; i++) {
		snprintf(payloads[i], sizeof(payloads[i]), "%s%zu", prefix, i);
		msgs[i].payload = payloads[i];
	}
	corefix_publish(f, queue, part, msgs, n, NULL);
}

struct subscribed {
	struct corefix_owner *o;
	int status; /* 1: not called yet */
};

static void
on_subscribed(void *ctx, int status, struct sub *s)
{
	struct subscribed *r = ctx;

	r->status = status;
	r->o->sub = s;
}

struct corefix_owner *
corefix_subscribe(struct corefix *f, size_t i, const char *queue,
		  const char *group, int is_latest, uint32_t credit)
{
	struct corefix_owner *o = &f->owners[i];
	struct queue *q = queues_find(f->qs, queue);
	struct subscribed r = { o, 1 };

	assert_true(i < COREFIX_OWNERS);
	assert_non_null(q);
	assert_null(o->sub);
	assert_int_equal(group_subscribe(f->gs, q, group, is_latest, credit, o,
					 &o->lo, &owner_ops, (uint32_t)i + 1,
					 on_subscribed, &r),
			 0);
	corefix_settle(f);
	assert_int_equal(r.status, 0);
	assert_non_null(o->sub);
	assert_int_equal(sub_id(o->sub), i + 1);
	return o;
}

struct corefix_owner *
corefix_start(struct corefix *f, const char *queue,
	      const struct corefix_policy *pol, size_t n, uint32_t credit)
{
	struct corefix_owner *o;

	corefix_create(f, queue, 1, pol);
	corefix_publish_n(f, queue, -1, "m", n);
	o = corefix_subscribe(f, 0, queue, "g", 0, credit);
	corefix_tick(f);
	assert_int_equal(o->ngot, n < credit ? n : credit);
	return o;
}

void
corefix_unsubscribe(struct corefix *f, struct corefix_owner *o)
{
	sub_free(f->gs, o->sub);
	o->sub = NULL;
}

void
corefix_end_n(struct corefix *f, struct corefix_owner *o, enum corefix_op op,
	      const uint64_t *ids, size_t n, uint64_t delay_ms, int *codes)
{
	for (size_t i = 0; i < n; i++)
		codes[i] = 1;
	f->done_status = 1;
	switch (op) {
	case COREFIX_ACK:
		groups_ack(f->gs, &o->lo, ids, n, codes, on_done, f);
		break;
	case COREFIX_NACK:
		groups_nack(f->gs, &o->lo, ids, n, delay_ms, NULL, codes,
			    on_done, f);
		break;
	case COREFIX_RELEASE:
		groups_release(f->gs, &o->lo, ids, n, codes, on_done, f);
		break;
	}
	/* Confirmed by the flush of the next pass, once it commits. */
	corefix_tick(f);
	assert_int_equal(f->done_status, 0);
}

int
corefix_end(struct corefix *f, struct corefix_owner *o, enum corefix_op op,
	    uint64_t id, uint64_t delay_ms)
{
	int code;

	corefix_end_n(f, o, op, &id, 1, delay_ms, &code);
	return code;
}

int
corefix_touch(struct corefix *f, struct corefix_owner *o, uint64_t id,
	      uint64_t lease_ms, uint64_t *remaining_ms)
{
	int code = 1;

	groups_touch(f->gs, &o->lo, &id, 1, lease_ms, &code, remaining_ms);
	return code;
}

size_t
corefix_headers(const void *block, uint32_t len, struct corefix_header *h,
		size_t max)
{
	struct store_header one;
	uint32_t pos = 0;
	size_t n = 0;
	int rc;

	while ((rc = store_headers_next(block, len, &pos, &one)) == 1) {
		if (n < max) {
			snprintf(h[n].name, sizeof(h[n].name), "%.*s",
				 (int)one.name_len, (const char *)one.name);
			snprintf(h[n].value, sizeof(h[n].value), "%.*s",
				 (int)one.value_len, (const char *)one.value);
		}
		n++;
	}
	assert_int_equal(rc, 0);
	return n;
}
