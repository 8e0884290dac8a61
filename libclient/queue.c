/*
 * queue.c: queue settings, queue create / set / delete, and the queue list
 * with each queue's policies.
 *
 * Settings are named like the CLI flags so that a new policy adds a name to
 * the table below, not a function to the API; the list reads policies back
 * by the same names. Absent settings are left out of the request: in a
 * create the broker applies its defaults and, for an existing queue, does
 * not compare them; in a set it leaves them unchanged.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "name_rule.h"
#include "policy_rule.h"

struct ringmq_queue_opts {
	int has_partitions;
	uint32_t partitions;
	int has_policy;		    /* some policy field is set */
	Ringmq__QueuePolicy policy; /* dead_letter_queue owned */
};

struct ringmq_queue_list {
	Ringmq__Frame *f; /* owned; body_case is QUEUE_LIST_OK */
};

ringmq_queue_opts *
ringmq_queue_opts_new(void)
{
	ringmq_queue_opts *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	ringmq__queue_policy__init(&o->policy);
	return o;
}

void
ringmq_queue_opts_free(ringmq_queue_opts *o)
{
	if (o == NULL)
		return;
	free(o->policy.dead_letter_queue);
	free(o);
}

/* Longest time setting, ms: the broker's (policy_rule.h). */
#define MAX_SETTING_MS POLICY_RULE_MAX_MS

/* Numeric settings: where each goes in the request and its range. */
enum setting_slot {
	SLOT_PARTITIONS,
	SLOT_LEASE_MS,
	SLOT_MAX_LEASE_MS,
	SLOT_MAX_DELIVERIES,
	SLOT_MAX_DEPTH,
	SLOT_MAX_BYTES,
	SLOT_DEDUP_WINDOW_MS,
};

static const struct setting {
	const char *name;
	enum setting_slot slot;
	uint64_t min;
	uint64_t max;
} settings[] = {
	{ "partitions", SLOT_PARTITIONS, 1, 1024 },
	{ "lease-ms", SLOT_LEASE_MS, 1, MAX_SETTING_MS },
	{ "max-lease-ms", SLOT_MAX_LEASE_MS, 1, MAX_SETTING_MS },
	{ "max-deliveries", SLOT_MAX_DELIVERIES, 0, UINT32_MAX },
	{ "max-depth", SLOT_MAX_DEPTH, 0, UINT64_MAX },
	{ "max-bytes", SLOT_MAX_BYTES, 0, UINT64_MAX },
	{ "dedup-window-ms", SLOT_DEDUP_WINDOW_MS, 0, MAX_SETTING_MS },
};

static void
setting_store(ringmq_queue_opts *o, enum setting_slot slot, uint64_t v)
{
	Ringmq__QueuePolicy *p = &o->policy;

	switch (slot) {
	case SLOT_PARTITIONS:
		o->has_partitions = 1;
		o->partitions = (uint32_t)v;
		return;
	case SLOT_LEASE_MS:
		p->has_lease_ms = 1;
		p->lease_ms = v;
		break;
	case SLOT_MAX_LEASE_MS:
		p->has_max_lease_ms = 1;
		p->max_lease_ms = v;
		break;
	case SLOT_MAX_DELIVERIES:
		p->has_max_deliveries = 1;
		p->max_deliveries = (uint32_t)v;
		break;
	case SLOT_MAX_DEPTH:
		p->has_max_depth = 1;
		p->max_depth = v;
		break;
	case SLOT_MAX_BYTES:
		p->has_max_bytes = 1;
		p->max_bytes = v;
		break;
	case SLOT_DEDUP_WINDOW_MS:
		p->has_dedup_window_ms = 1;
		p->dedup_window_ms = v;
		break;
	}
	o->has_policy = 1;
}

int
ringmq_queue_opts_set(ringmq_queue_opts *o, const char *name, const char *value,
		      char *errbuf, size_t errlen)
{
	uint64_t v;

	if (o == NULL || name == NULL || value == NULL) {
		errbuf_set(errbuf, errlen, "NULL argument");
		return RINGMQ_USAGE;
	}
	/* "dead-letter-queue" is the first spelling, kept as an alias. */
	if (strcmp(name, "dead-letter") == 0 ||
	    strcmp(name, "dead-letter-queue") == 0) {
		char *copy;

		if (!name_rule_queue_ok(value)) {
			errbuf_set(errbuf, errlen,
				   "%s: bad queue name '%.200s' (want "
				   "[A-Za-z0-9][A-Za-z0-9._-]{0,195}, "
				   "optionally followed by .dlq)",
				   name, value);
			return RINGMQ_USAGE;
		}
		copy = strdup(value);
		if (copy == NULL) {
			errbuf_set(errbuf, errlen, "out of memory");
			return RINGMQ_INTERNAL;
		}
		free(o->policy.dead_letter_queue);
		o->policy.dead_letter_queue = copy;
		o->has_policy = 1;
		return RINGMQ_OK;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const struct setting *s = &settings[i];

		if (strcmp(name, s->name) != 0)
			continue;
		if (parse_u64(value, s->min, s->max, &v) < 0) {
			errbuf_set(errbuf, errlen,
				   "%s must be a number from %llu to %llu, "
				   "not '%.100s'",
				   name, (unsigned long long)s->min,
				   (unsigned long long)s->max, value);
			return RINGMQ_USAGE;
		}
		setting_store(o, s->slot, v);
		return RINGMQ_OK;
	}
	errbuf_set(errbuf, errlen, "unknown queue setting '%.100s'", name);
	return RINGMQ_USAGE;
}

int
ringmq_queue_create(ringmq_client *c, const char *name,
		    const ringmq_queue_opts *o)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueCreate qc = RINGMQ__QUEUE_CREATE__INIT;
	Ringmq__QueuePolicy policy;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (name == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	qc.name = (char *)name; /* packing only reads it */
	if (o != NULL) {
		qc.has_partitions = o->has_partitions;
		qc.partitions = o->partitions;
		if (o->has_policy) {
			policy = o->policy; /* shallow: packing only reads */
			qc.policy = &policy;
		}
	}
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_CREATE;
	f.queue_create = &qc;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DONE, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}

int
ringmq_queue_set(ringmq_client *c, const char *name, const ringmq_queue_opts *o)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueSet qs = RINGMQ__QUEUE_SET__INIT;
	Ringmq__QueuePolicy policy;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (name == NULL || o == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	/* Partitions are fixed at creation in this protocol version. */
	if (o->has_partitions)
		return client_fail(c, RINGMQ_USAGE,
				   "partitions cannot be changed after "
				   "creation");
	policy = o->policy; /* shallow: packing only reads it */
	qs.name = (char *)name;
	qs.policy = &policy;
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_SET;
	f.queue_set = &qs;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DONE, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}

int
ringmq_queue_delete(ringmq_client *c, const char *name)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueDelete qd = RINGMQ__QUEUE_DELETE__INIT;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (name == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	qd.name = (char *)name; /* packing only reads it */
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_DELETE;
	f.queue_delete = &qd;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DONE, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}

int
ringmq_queue_list_get(ringmq_client *c, ringmq_queue_list **listp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueList ql = RINGMQ__QUEUE_LIST__INIT;
	Ringmq__Frame *resp;
	ringmq_queue_list *l;
	int rc;

	if (listp == NULL)
		return c ? client_fail(c, RINGMQ_USAGE, "NULL argument")
			 : RINGMQ_USAGE;
	*listp = NULL;
	rc = client_begin(c);
	if (rc != RINGMQ_OK)
		return rc;
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_LIST;
	f.queue_list = &ql;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_QUEUE_LIST_OK, &resp);
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
ringmq_queue_list_count(const ringmq_queue_list *l)
{
	return l ? l->f->queue_list_ok->n_queues : 0;
}

static const Ringmq__QueueInfo *
list_at(const ringmq_queue_list *l, size_t i)
{
	if (l == NULL || i >= l->f->queue_list_ok->n_queues)
		return NULL;
	return l->f->queue_list_ok->queues[i];
}

const char *
ringmq_queue_list_name(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->name : NULL;
}

uint32_t
ringmq_queue_list_partitions(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->partitions : 0;
}

uint64_t
ringmq_queue_list_ready(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->ready : 0;
}

uint64_t
ringmq_queue_list_delayed(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->delayed : 0;
}

uint64_t
ringmq_queue_list_in_flight(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->in_flight : 0;
}

uint32_t
ringmq_queue_list_groups(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->groups : 0;
}

uint64_t
ringmq_queue_list_messages(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->messages : 0;
}

uint64_t
ringmq_queue_list_bytes(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	return q ? q->bytes : 0;
}

int
ringmq_queue_list_total(const ringmq_queue_list *l, size_t i, const char *name,
			uint64_t *valuep)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	if (q == NULL || name == NULL || valuep == NULL)
		return 0;
	if (strcmp(name, "published") == 0 && q->has_published_total)
		*valuep = q->published_total;
	else if (strcmp(name, "delivered") == 0 && q->has_delivered_total)
		*valuep = q->delivered_total;
	else if (strcmp(name, "acked") == 0 && q->has_acked_total)
		*valuep = q->acked_total;
	else
		return 0;
	return 1;
}

int
ringmq_queue_list_setting(const ringmq_queue_list *l, size_t i,
			  const char *name, uint64_t *valuep)
{
	const Ringmq__QueueInfo *q = list_at(l, i);
	const Ringmq__QueuePolicy *p;
	int has = 0;
	uint64_t v = 0;

	if (q == NULL || name == NULL || valuep == NULL)
		return 0;
	if (strcmp(name, "partitions") == 0) {
		*valuep = q->partitions;
		return 1;
	}
	p = q->policy;
	if (p == NULL)
		return 0; /* a broker that does not report policies */
	for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++) {
		if (strcmp(name, settings[k].name) != 0)
			continue;
		switch (settings[k].slot) {
		case SLOT_PARTITIONS: break; /* answered above */
		case SLOT_LEASE_MS:
			has = p->has_lease_ms;
			v = p->lease_ms;
			break;
		case SLOT_MAX_LEASE_MS:
			has = p->has_max_lease_ms;
			v = p->max_lease_ms;
			break;
		case SLOT_MAX_DELIVERIES:
			has = p->has_max_deliveries;
			v = p->max_deliveries;
			break;
		case SLOT_MAX_DEPTH:
			has = p->has_max_depth;
			v = p->max_depth;
			break;
		case SLOT_MAX_BYTES:
			has = p->has_max_bytes;
			v = p->max_bytes;
			break;
		case SLOT_DEDUP_WINDOW_MS:
			has = p->has_dedup_window_ms;
			v = p->dedup_window_ms;
			break;
		}
		break;
	}
	if (has)
		*valuep = v;
	return has;
}

const char *
ringmq_queue_list_dead_letter_queue(const ringmq_queue_list *l, size_t i)
{
	const Ringmq__QueueInfo *q = list_at(l, i);

	if (q == NULL || q->policy == NULL)
		return NULL;
	return q->policy->dead_letter_queue;
}

void
ringmq_queue_list_free(ringmq_queue_list *l)
{
	if (l == NULL)
		return;
	frame_free(l->f);
	free(l);
}
