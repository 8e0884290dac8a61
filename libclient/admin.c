/*
 * admin.c: administration calls of libringmq: purge, queue describe,
 * group create / delete / reset / list / describe, peek, message show,
 * dead-letter list and redrive, stats, and backup.
 *
 * Each call is one request and one answer through conn_call(), except
 * backup, which waits longer than the request timeout through
 * conn_call_timeout(). Result objects keep the answer frame (owned,
 * decoded into one arena, freed with frame_free) and
 * read their accessors straight from it, so a field the broker adds later
 * costs an accessor, not a copy. Requests only borrow the caller's strings:
 * packing reads them and nothing keeps them.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Least time a backup is given to answer, ms: a compacting copy of a large
 * data file takes minutes. The client's request timeout wins when larger. */
#define BACKUP_TIMEOUT_MS 600000

struct ringmq_group_list {
	Ringmq__Frame *f; /* owned; NULL when borrowed from a description */
	Ringmq__GroupInfo **groups; /* borrowed from the frame */
	size_t n;
};

struct ringmq_queue_describe {
	Ringmq__Frame *f; /* owned; body_case is QUEUE_DESCRIBE_OK */
	struct ringmq_group_list groups; /* borrows from f */
};

struct ringmq_stored_messages {
	Ringmq__Frame *f;		  /* owned */
	Ringmq__StoredMessage **messages; /* borrowed from f */
	size_t n;
};

struct ringmq_stats {
	Ringmq__Frame *f; /* owned; body_case is STATS_OK */
};

struct ringmq_metadata {
	Ringmq__Frame *f; /* owned; body_case is METADATA_OK */
};

/* Starts a call whose out-parameter is outp: NULLs it, checks c. */
static int
begin_out(ringmq_client *c, void *outp)
{
	if (outp == NULL)
		return c ? client_fail(c, RINGMQ_USAGE, "NULL argument")
			 : RINGMQ_USAGE;
	*(void **)outp = NULL;
	return client_begin(c);
}

static int
start_is_valid(int start)
{
	return start == RINGMQ_START_EARLIEST || start == RINGMQ_START_LATEST;
}

/* ------------------------------------------------------------------ purge */

int
ringmq_queue_purge(ringmq_client *c, const char *queue, uint64_t *purgedp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Purge p = RINGMQ__PURGE__INIT;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	p.queue = (char *)queue; /* packing only reads it */
	f.body_case = RINGMQ__FRAME__BODY_PURGE;
	f.purge = &p;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_PURGE_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	if (purgedp != NULL)
		*purgedp = resp->purge_ok->purged;
	frame_free(resp);
	return RINGMQ_OK;
}

/* --------------------------------------------------------- queue describe */

int
ringmq_queue_describe_get(ringmq_client *c, const char *queue,
			  ringmq_queue_describe **descp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__QueueDescribe qd = RINGMQ__QUEUE_DESCRIBE__INIT;
	Ringmq__Frame *resp;
	ringmq_queue_describe *d;
	int rc = begin_out(c, descp);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	qd.name = (char *)queue;
	f.body_case = RINGMQ__FRAME__BODY_QUEUE_DESCRIBE;
	f.queue_describe = &qd;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_QUEUE_DESCRIBE_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	d->f = resp;
	d->groups.groups = resp->queue_describe_ok->groups;
	d->groups.n = resp->queue_describe_ok->n_groups;
	*descp = d;
	return RINGMQ_OK;
}

static const Ringmq__QueueInfo *
qinfo(const ringmq_queue_describe *d)
{
	return d ? d->f->queue_describe_ok->queue : NULL;
}

const char *
ringmq_queue_describe_name(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->name : NULL;
}

uint32_t
ringmq_queue_describe_partitions(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->partitions : 0;
}

uint64_t
ringmq_queue_describe_ready(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->ready : 0;
}

uint64_t
ringmq_queue_describe_delayed(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->delayed : 0;
}

uint64_t
ringmq_queue_describe_in_flight(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->in_flight : 0;
}

uint64_t
ringmq_queue_describe_messages(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->messages : 0;
}

uint64_t
ringmq_queue_describe_bytes(const ringmq_queue_describe *d)
{
	return d ? qinfo(d)->bytes : 0;
}

int
ringmq_queue_describe_setting(const ringmq_queue_describe *d, const char *name,
			      uint64_t *valuep)
{
	const Ringmq__QueuePolicy *p;
	int has = 0;
	uint64_t v = 0;

	if (d == NULL || name == NULL || valuep == NULL)
		return 0;
	if (strcmp(name, "partitions") == 0) {
		*valuep = qinfo(d)->partitions;
		return 1;
	}
	p = qinfo(d)->policy;
	if (p == NULL)
		return 0;
	if (strcmp(name, "lease-ms") == 0) {
		has = p->has_lease_ms;
		v = p->lease_ms;
	} else if (strcmp(name, "max-lease-ms") == 0) {
		has = p->has_max_lease_ms;
		v = p->max_lease_ms;
	} else if (strcmp(name, "max-deliveries") == 0) {
		has = p->has_max_deliveries;
		v = p->max_deliveries;
	} else if (strcmp(name, "max-depth") == 0) {
		has = p->has_max_depth;
		v = p->max_depth;
	} else if (strcmp(name, "max-bytes") == 0) {
		has = p->has_max_bytes;
		v = p->max_bytes;
	} else if (strcmp(name, "dedup-window-ms") == 0) {
		has = p->has_dedup_window_ms;
		v = p->dedup_window_ms;
	}
	if (has)
		*valuep = v;
	return has;
}

const char *
ringmq_queue_describe_dead_letter_queue(const ringmq_queue_describe *d)
{
	if (d == NULL || qinfo(d)->policy == NULL)
		return NULL;
	return qinfo(d)->policy->dead_letter_queue;
}

size_t
ringmq_queue_describe_partition_count(const ringmq_queue_describe *d)
{
	return d ? d->f->queue_describe_ok->n_partitions : 0;
}

static const Ringmq__PartitionInfo *
part_at(const ringmq_queue_describe *d, size_t i)
{
	if (d == NULL || i >= d->f->queue_describe_ok->n_partitions)
		return NULL;
	return d->f->queue_describe_ok->partitions[i];
}

uint32_t
ringmq_queue_describe_partition(const ringmq_queue_describe *d, size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p ? p->partition : 0;
}

uint64_t
ringmq_queue_describe_partition_messages(const ringmq_queue_describe *d,
					 size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p ? p->messages : 0;
}

uint64_t
ringmq_queue_describe_partition_bytes(const ringmq_queue_describe *d, size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p ? p->bytes : 0;
}

uint64_t
ringmq_queue_describe_partition_first_offset(const ringmq_queue_describe *d,
					     size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p ? p->first_offset : 0;
}

uint64_t
ringmq_queue_describe_partition_next_offset(const ringmq_queue_describe *d,
					    size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p ? p->next_offset : 0;
}

uint64_t
ringmq_queue_describe_partition_oldest_publish_ms(
	const ringmq_queue_describe *d, size_t i)
{
	const Ringmq__PartitionInfo *p = part_at(d, i);

	return p && p->has_oldest_publish_ms ? p->oldest_publish_ms : 0;
}

const ringmq_group_list *
ringmq_queue_describe_groups(const ringmq_queue_describe *d)
{
	return d ? &d->groups : NULL;
}

void
ringmq_queue_describe_free(ringmq_queue_describe *d)
{
	if (d == NULL)
		return;
	frame_free(d->f);
	free(d);
}

/* ----------------------------------------------------------------- groups */

int
ringmq_group_create(ringmq_client *c, const char *queue, const char *group,
		    int start)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupCreate gc = RINGMQ__GROUP_CREATE__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL || group == NULL || !start_is_valid(start))
		return client_fail(c, RINGMQ_USAGE,
				   "NULL name or bad start position");
	gc.queue = (char *)queue;
	gc.group = (char *)group;
	gc.has_start = 1;
	gc.start = (Ringmq__StartPosition)start;
	f.body_case = RINGMQ__FRAME__BODY_GROUP_CREATE;
	f.group_create = &gc;
	return conn_call_done(c, &f);
}

int
ringmq_group_delete(ringmq_client *c, const char *queue, const char *group)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupDelete gd = RINGMQ__GROUP_DELETE__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL || group == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL name");
	gd.queue = (char *)queue;
	gd.group = (char *)group;
	f.body_case = RINGMQ__FRAME__BODY_GROUP_DELETE;
	f.group_delete = &gd;
	return conn_call_done(c, &f);
}

int
ringmq_group_reset(ringmq_client *c, const char *queue, const char *group,
		   int start)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupReset gr = RINGMQ__GROUP_RESET__INIT;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL || group == NULL || !start_is_valid(start))
		return client_fail(c, RINGMQ_USAGE,
				   "NULL name or bad start position");
	gr.queue = (char *)queue;
	gr.group = (char *)group;
	gr.has_start = 1;
	gr.start = (Ringmq__StartPosition)start;
	f.body_case = RINGMQ__FRAME__BODY_GROUP_RESET;
	f.group_reset = &gr;
	return conn_call_done(c, &f);
}

/* Wraps an answer holding groups into a list; frees resp on failure. */
static int
group_list_wrap(ringmq_client *c, Ringmq__Frame *resp,
		Ringmq__GroupInfo **groups, size_t n, ringmq_group_list **listp)
{
	ringmq_group_list *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	l->f = resp;
	l->groups = groups;
	l->n = n;
	*listp = l;
	return RINGMQ_OK;
}

int
ringmq_group_list_get(ringmq_client *c, const char *queue,
		      ringmq_group_list **listp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupList gl = RINGMQ__GROUP_LIST__INIT;
	Ringmq__Frame *resp;
	int rc = begin_out(c, listp);

	if (rc != RINGMQ_OK)
		return rc;
	gl.queue = (char *)queue; /* NULL: every queue */
	f.body_case = RINGMQ__FRAME__BODY_GROUP_LIST;
	f.group_list = &gl;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_GROUP_LIST_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	return group_list_wrap(c, resp, resp->group_list_ok->groups,
			       resp->group_list_ok->n_groups, listp);
}

int
ringmq_group_describe_get(ringmq_client *c, const char *queue,
			  const char *group, ringmq_group_list **listp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__GroupDescribe gd = RINGMQ__GROUP_DESCRIBE__INIT;
	Ringmq__Frame *resp;
	int rc = begin_out(c, listp);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL || group == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL name");
	gd.queue = (char *)queue;
	gd.group = (char *)group;
	f.body_case = RINGMQ__FRAME__BODY_GROUP_DESCRIBE;
	f.group_describe = &gd;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_GROUP_DESCRIBE_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	return group_list_wrap(c, resp, &resp->group_describe_ok->group, 1,
			       listp);
}

size_t
ringmq_group_list_count(const ringmq_group_list *l)
{
	return l ? l->n : 0;
}

static const Ringmq__GroupInfo *
group_at(const ringmq_group_list *l, size_t i)
{
	return l != NULL && i < l->n ? l->groups[i] : NULL;
}

const char *
ringmq_group_list_queue(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->queue : NULL;
}

const char *
ringmq_group_list_name(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->name : NULL;
}

uint64_t
ringmq_group_list_ready(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->ready : 0;
}

uint64_t
ringmq_group_list_in_flight(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->in_flight : 0;
}

uint64_t
ringmq_group_list_lag(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->lag : 0;
}

uint32_t
ringmq_group_list_consumers(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->consumers : 0;
}

size_t
ringmq_group_list_partition_count(const ringmq_group_list *l, size_t i)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g ? g->n_ack_floor : 0;
}

uint64_t
ringmq_group_list_ack_floor(const ringmq_group_list *l, size_t i, size_t p)
{
	const Ringmq__GroupInfo *g = group_at(l, i);

	return g && p < g->n_ack_floor ? g->ack_floor[p] : 0;
}

void
ringmq_group_list_free(ringmq_group_list *l)
{
	/* A list without a frame belongs to a description. */
	if (l == NULL || l->f == NULL)
		return;
	frame_free(l->f);
	free(l);
}

/* -------------------------------------------------------- stored messages */

static int
stored_wrap(ringmq_client *c, Ringmq__Frame *resp,
	    Ringmq__StoredMessage **messages, size_t n,
	    ringmq_stored_messages **listp)
{
	ringmq_stored_messages *l;

	/* Every accessor reads ->message: refuse an answer without one. */
	for (size_t i = 0; i < n; i++) {
		if (messages[i] == NULL || messages[i]->message == NULL) {
			frame_free(resp);
			return client_fail(c, RINGMQ_BAD_FRAME,
					   "stored message without body");
		}
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	l->f = resp;
	l->messages = messages;
	l->n = n;
	*listp = l;
	return RINGMQ_OK;
}

int
ringmq_peek_get(ringmq_client *c, ringmq_stored_messages **listp,
		const char *queue, int partition, uint64_t from_offset,
		uint32_t count)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Peek pk = RINGMQ__PEEK__INIT;
	Ringmq__Frame *resp;
	int rc = begin_out(c, listp);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	pk.queue = (char *)queue;
	if (partition >= 0) {
		pk.has_partition = 1;
		pk.partition = (uint32_t)partition;
	}
	if (from_offset > 0) {
		pk.has_from_offset = 1;
		pk.from_offset = from_offset;
	}
	if (count > 0) {
		pk.has_count = 1;
		pk.count = count;
	}
	f.body_case = RINGMQ__FRAME__BODY_PEEK;
	f.peek = &pk;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_PEEK_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	return stored_wrap(c, resp, resp->peek_ok->messages,
			   resp->peek_ok->n_messages, listp);
}

int
ringmq_message_show_get(ringmq_client *c, ringmq_stored_messages **listp,
			const char *queue, uint32_t partition, uint64_t offset)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__MessageShow ms = RINGMQ__MESSAGE_SHOW__INIT;
	Ringmq__Frame *resp;
	int rc = begin_out(c, listp);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	ms.queue = (char *)queue;
	ms.partition = partition;
	ms.offset = offset;
	f.body_case = RINGMQ__FRAME__BODY_MESSAGE_SHOW;
	f.message_show = &ms;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_MESSAGE_SHOW_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	return stored_wrap(c, resp, &resp->message_show_ok->message, 1, listp);
}

int
ringmq_dlq_list_get(ringmq_client *c, ringmq_stored_messages **listp,
		    const char *queue, uint32_t count)
{
	return ringmq_dlq_list_get_from(c, listp, queue, 0, 0, count);
}

int
ringmq_dlq_list_get_from(ringmq_client *c, ringmq_stored_messages **listp,
			 const char *queue, uint32_t from_partition,
			 uint64_t from_offset, uint32_t count)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__DeadLetterList dl = RINGMQ__DEAD_LETTER_LIST__INIT;
	Ringmq__Frame *resp;
	int rc = begin_out(c, listp);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	dl.queue = (char *)queue;
	if (count > 0) {
		dl.has_count = 1;
		dl.count = count;
	}
	if (from_partition > 0 || from_offset > 0) {
		dl.has_from_partition = 1;
		dl.from_partition = from_partition;
		dl.has_from_offset = 1;
		dl.from_offset = from_offset;
	}
	f.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_LIST;
	f.dead_letter_list = &dl;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DEAD_LETTER_LIST_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	return stored_wrap(c, resp, resp->dead_letter_list_ok->messages,
			   resp->dead_letter_list_ok->n_messages, listp);
}

int
ringmq_dlq_redrive(ringmq_client *c, const char *queue, const char *group,
		   uint32_t count, uint64_t *redrivenp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__DeadLetterRedrive dr = RINGMQ__DEAD_LETTER_REDRIVE__INIT;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (queue == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	dr.queue = (char *)queue;
	dr.group = (char *)group; /* NULL: absent */
	if (count > 0) {
		dr.has_count = 1;
		dr.count = count;
	}
	f.body_case = RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE;
	f.dead_letter_redrive = &dr;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_DEAD_LETTER_REDRIVE_OK,
		       &resp);
	if (rc != RINGMQ_OK)
		return rc;
	if (redrivenp != NULL)
		*redrivenp = resp->dead_letter_redrive_ok->redriven;
	frame_free(resp);
	return RINGMQ_OK;
}

size_t
ringmq_stored_messages_count(const ringmq_stored_messages *l)
{
	return l ? l->n : 0;
}

static const Ringmq__StoredMessage *
stored_at(const ringmq_stored_messages *l, size_t i)
{
	return l != NULL && i < l->n ? l->messages[i] : NULL;
}

uint32_t
ringmq_stored_messages_partition(const ringmq_stored_messages *l, size_t i)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	return sm ? sm->partition : 0;
}

uint64_t
ringmq_stored_messages_offset(const ringmq_stored_messages *l, size_t i)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	return sm ? sm->offset : 0;
}

uint64_t
ringmq_stored_messages_publish_ms(const ringmq_stored_messages *l, size_t i)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	return sm && sm->has_publish_ms ? sm->publish_ms : 0;
}

/* Bytes of b, never NULL ("" when empty). */
static const void *
bytes_of(const ProtobufCBinaryData *b, size_t *lenp)
{
	if (lenp != NULL)
		*lenp = b->len;
	return b->data ? (const void *)b->data : (const void *)"";
}

const void *
ringmq_stored_messages_payload(const ringmq_stored_messages *l, size_t i,
			       size_t *lenp)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	if (sm == NULL) {
		if (lenp != NULL)
			*lenp = 0;
		return NULL;
	}
	return bytes_of(&sm->message->payload, lenp);
}

const void *
ringmq_stored_messages_key(const ringmq_stored_messages *l, size_t i,
			   size_t *lenp)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	if (sm == NULL || !sm->message->has_key) {
		if (lenp != NULL)
			*lenp = 0;
		return NULL;
	}
	return bytes_of(&sm->message->key, lenp);
}

size_t
ringmq_stored_messages_header_count(const ringmq_stored_messages *l, size_t i)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	return sm ? sm->message->n_headers : 0;
}

const char *
ringmq_stored_messages_header_name(const ringmq_stored_messages *l, size_t i,
				   size_t h)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	if (sm == NULL || h >= sm->message->n_headers)
		return NULL;
	return sm->message->headers[h]->name;
}

const void *
ringmq_stored_messages_header_value(const ringmq_stored_messages *l, size_t i,
				    size_t h, size_t *lenp)
{
	const Ringmq__StoredMessage *sm = stored_at(l, i);

	if (sm == NULL || h >= sm->message->n_headers) {
		if (lenp != NULL)
			*lenp = 0;
		return NULL;
	}
	return bytes_of(&sm->message->headers[h]->value, lenp);
}

void
ringmq_stored_messages_free(ringmq_stored_messages *l)
{
	if (l == NULL)
		return;
	frame_free(l->f);
	free(l);
}

/* ------------------------------------------------------------------ stats */

int
ringmq_stats_get(ringmq_client *c, ringmq_stats **statsp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Stats st = RINGMQ__STATS__INIT;
	Ringmq__Frame *resp;
	ringmq_stats *s;
	int rc = begin_out(c, statsp);

	if (rc != RINGMQ_OK)
		return rc;
	f.body_case = RINGMQ__FRAME__BODY_STATS;
	f.stats = &st;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_STATS_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	s->f = resp;
	*statsp = s;
	return RINGMQ_OK;
}

size_t
ringmq_stats_count(const ringmq_stats *s)
{
	return s ? s->f->stats_ok->n_stats : 0;
}

const char *
ringmq_stats_name(const ringmq_stats *s, size_t i)
{
	return i < ringmq_stats_count(s) ? s->f->stats_ok->stats[i]->name
					 : NULL;
}

double
ringmq_stats_value(const ringmq_stats *s, size_t i)
{
	return i < ringmq_stats_count(s) ? s->f->stats_ok->stats[i]->value
					 : 0.0;
}

int
ringmq_stats_find(const ringmq_stats *s, const char *name, double *valuep)
{
	size_t n = ringmq_stats_count(s);

	if (name == NULL || valuep == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s->f->stats_ok->stats[i]->name, name) == 0) {
			*valuep = s->f->stats_ok->stats[i]->value;
			return 1;
		}
	}
	return 0;
}

void
ringmq_stats_free(ringmq_stats *s)
{
	if (s == NULL)
		return;
	frame_free(s->f);
	free(s);
}

/* ----------------------------------------------------------------- backup */

int
ringmq_backup(ringmq_client *c, const char *dir, uint64_t *bytesp)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Backup bk = RINGMQ__BACKUP__INIT;
	Ringmq__Frame *resp;
	int timeout_ms;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	if (dir == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL backup directory");
	bk.path = (char *)dir; /* packing only reads it */
	f.body_case = RINGMQ__FRAME__BODY_BACKUP;
	f.backup = &bk;
	timeout_ms = c->opts.request_timeout_ms > BACKUP_TIMEOUT_MS
			     ? c->opts.request_timeout_ms
			     : BACKUP_TIMEOUT_MS;
	rc = conn_call_timeout(c, &f, RINGMQ__FRAME__BODY_BACKUP_OK, timeout_ms,
			       &resp);
	if (rc != RINGMQ_OK)
		return rc;
	if (bytesp != NULL)
		*bytesp = resp->backup_ok->bytes;
	frame_free(resp);
	return RINGMQ_OK;
}

/* --------------------------------------------------------------- metadata */

int
ringmq_metadata_get(ringmq_client *c, ringmq_metadata **mp,
		    const char *const *queues, size_t n)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Metadata md = RINGMQ__METADATA__INIT;
	Ringmq__Frame *resp;
	ringmq_metadata *m;
	int rc = begin_out(c, mp);

	if (rc != RINGMQ_OK)
		return rc;
	if (n > 0 && queues == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL queue names");
	for (size_t i = 0; i < n; i++)
		if (queues[i] == NULL)
			return client_fail(c, RINGMQ_USAGE, "NULL queue name");
	md.n_queues = n;
	md.queues = (char **)queues;
	f.body_case = RINGMQ__FRAME__BODY_METADATA;
	f.metadata = &md;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_METADATA_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	m->f = resp;
	*mp = m;
	return RINGMQ_OK;
}

const char *
ringmq_metadata_cluster(const ringmq_metadata *m)
{
	return m ? m->f->metadata_ok->cluster : NULL;
}

const char *
ringmq_metadata_controller(const ringmq_metadata *m)
{
	return m ? m->f->metadata_ok->controller : NULL;
}

size_t
ringmq_metadata_broker_count(const ringmq_metadata *m)
{
	return m ? m->f->metadata_ok->n_brokers : 0;
}

const char *
ringmq_metadata_broker_id(const ringmq_metadata *m, size_t i)
{
	return i < ringmq_metadata_broker_count(m)
		       ? m->f->metadata_ok->brokers[i]->id
		       : NULL;
}

const char *
ringmq_metadata_broker_address(const ringmq_metadata *m, size_t i)
{
	return i < ringmq_metadata_broker_count(m)
		       ? m->f->metadata_ok->brokers[i]->address
		       : NULL;
}

size_t
ringmq_metadata_queue_count(const ringmq_metadata *m)
{
	return m ? m->f->metadata_ok->n_queues : 0;
}

const char *
ringmq_metadata_queue_name(const ringmq_metadata *m, size_t i)
{
	return i < ringmq_metadata_queue_count(m)
		       ? m->f->metadata_ok->queues[i]->name
		       : NULL;
}

size_t
ringmq_metadata_partition_count(const ringmq_metadata *m, size_t i)
{
	return i < ringmq_metadata_queue_count(m)
		       ? m->f->metadata_ok->queues[i]->n_partitions
		       : 0;
}

/* Partition p of the i-th queue, or NULL. */
static const Ringmq__PartitionOwner *
metadata_partition(const ringmq_metadata *m, size_t i, size_t p)
{
	if (p >= ringmq_metadata_partition_count(m, i))
		return NULL;
	return m->f->metadata_ok->queues[i]->partitions[p];
}

const char *
ringmq_metadata_partition_owner(const ringmq_metadata *m, size_t i, size_t p)
{
	const Ringmq__PartitionOwner *pi = metadata_partition(m, i, p);

	return pi ? pi->owner : NULL;
}

uint64_t
ringmq_metadata_partition_epoch(const ringmq_metadata *m, size_t i, size_t p)
{
	const Ringmq__PartitionOwner *pi = metadata_partition(m, i, p);

	return pi ? pi->epoch : 0;
}

void
ringmq_metadata_free(ringmq_metadata *m)
{
	if (m == NULL)
		return;
	frame_free(m->f);
	free(m);
}
