/*
 * publish.c: messages to publish, publish calls and their per-message
 * results.
 *
 * A ringmq_message holds its protobuf form directly (every buffer owned by
 * the message). A synchronous publish goes through the producer
 * (producer.c) as asynchronous ones do: numbered per partition, batched
 * within the broker's limits from hello, and sent again after a reconnect,
 * so that it is stored once however the connection fares; a message over
 * those limits is refused there and never sent.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The prefix of header names reserved for the broker. */
#define RESERVED_HEADER_PREFIX "ringmq-"

struct ringmq_publish_results {
	size_t count;
	struct publish_result *r; /* owned array of count */
};

/* ----------------------------------------------------------------- message */

/* malloc+memcpy that never returns NULL for len 0 unless out of memory. */
static uint8_t *
bytes_dup(const void *p, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (copy != NULL && len > 0)
		memcpy(copy, p, len);
	return copy;
}

ringmq_message *
ringmq_message_new(const void *payload, size_t len)
{
	ringmq_message *m;

	if (payload == NULL && len > 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	ringmq__message__init(&m->pb);
	m->pb.payload.data = bytes_dup(payload, len);
	if (m->pb.payload.data == NULL) {
		free(m);
		return NULL;
	}
	m->pb.payload.len = len;
	return m;
}

int
ringmq_message_set_key(ringmq_message *m, const void *key, size_t len)
{
	uint8_t *copy;

	if (m == NULL || (key == NULL && len > 0) ||
	    len > MESSAGE_FIELD_MAX_BYTES)
		return RINGMQ_USAGE;
	copy = bytes_dup(key, len);
	if (copy == NULL)
		return RINGMQ_INTERNAL;
	free(m->pb.key.data);
	m->pb.key.data = copy;
	m->pb.key.len = len;
	m->pb.has_key = 1;
	return RINGMQ_OK;
}

int
ringmq_message_add_header(ringmq_message *m, const char *name,
			  const void *value, size_t len)
{
	Ringmq__Header **headers;
	Ringmq__Header *h;

	if (m == NULL || name == NULL || (value == NULL && len > 0) ||
	    name[0] == '\0' || strlen(name) > MESSAGE_FIELD_MAX_BYTES)
		return RINGMQ_USAGE;
	/* Reserved in any letter case, as the broker reserves it. */
	if (strncasecmp(name, RESERVED_HEADER_PREFIX,
			strlen(RESERVED_HEADER_PREFIX)) == 0)
		return RINGMQ_USAGE;
	/* Headers are a map: a name once. */
	for (size_t i = 0; i < m->pb.n_headers; i++)
		if (strcmp(m->pb.headers[i]->name, name) == 0)
			return RINGMQ_USAGE;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return RINGMQ_INTERNAL;
	ringmq__header__init(h);
	h->name = strdup(name);
	h->value.data = bytes_dup(value, len);
	h->value.len = len;
	headers = realloc(m->pb.headers,
			  (m->pb.n_headers + 1) * sizeof(*headers));
	if (h->name == NULL || h->value.data == NULL || headers == NULL)
		goto fail;
	m->pb.headers = headers;
	m->pb.headers[m->pb.n_headers++] = h;
	return RINGMQ_OK;
fail:
	if (headers != NULL)
		m->pb.headers = headers; /* the larger array is still fine */
	free(h->name);
	free(h->value.data);
	free(h);
	return RINGMQ_INTERNAL;
}

int
ringmq_message_set_delay_ms(ringmq_message *m, uint64_t delay_ms)
{
	if (m == NULL)
		return RINGMQ_USAGE;
	m->pb.has_deliver_at_ms = 0;
	m->pb.has_delay_ms = 1;
	m->pb.delay_ms = delay_ms;
	return RINGMQ_OK;
}

int
ringmq_message_set_deliver_at_ms(ringmq_message *m, uint64_t deliver_at_ms)
{
	if (m == NULL)
		return RINGMQ_USAGE;
	m->pb.has_delay_ms = 0;
	m->pb.has_deliver_at_ms = 1;
	m->pb.deliver_at_ms = deliver_at_ms;
	return RINGMQ_OK;
}

int
ringmq_message_set_dedup_id(ringmq_message *m, const char *dedup_id)
{
	char *copy;

	if (m == NULL || dedup_id == NULL || dedup_id[0] == '\0' ||
	    strlen(dedup_id) > MESSAGE_FIELD_MAX_BYTES)
		return RINGMQ_USAGE;
	copy = strdup(dedup_id);
	if (copy == NULL)
		return RINGMQ_INTERNAL;
	free(m->pb.dedup_id);
	m->pb.dedup_id = copy;
	return RINGMQ_OK;
}

/* Frees what a ringmq_message owns in pb. */
static void
message_pb_fini(Ringmq__Message *pb)
{
	free(pb->payload.data);
	free(pb->key.data);
	for (size_t i = 0; i < pb->n_headers; i++) {
		free(pb->headers[i]->name);
		free(pb->headers[i]->value.data);
		free(pb->headers[i]);
	}
	free(pb->headers);
	free(pb->dedup_id);
	ringmq__message__init(pb);
}

void
ringmq_message_free(ringmq_message *m)
{
	if (m == NULL)
		return;
	message_pb_fini(&m->pb);
	free(m);
}

/* ----------------------------------------------------------------- results */

size_t
ringmq_publish_results_count(const ringmq_publish_results *r)
{
	return r ? r->count : 0;
}

int
ringmq_publish_results_code(const ringmq_publish_results *r, size_t i)
{
	return r && i < r->count ? r->r[i].code : RINGMQ_USAGE;
}

uint32_t
ringmq_publish_results_partition(const ringmq_publish_results *r, size_t i)
{
	return r && i < r->count ? r->r[i].partition : 0;
}

uint64_t
ringmq_publish_results_offset(const ringmq_publish_results *r, size_t i)
{
	return r && i < r->count ? r->r[i].offset : 0;
}

int
ringmq_publish_results_is_duplicate(const ringmq_publish_results *r, size_t i)
{
	return r && i < r->count ? r->r[i].is_duplicate : 0;
}

const char *
ringmq_publish_results_message(const ringmq_publish_results *r, size_t i)
{
	if (r == NULL || i >= r->count || r->r[i].message == NULL)
		return "";
	return r->r[i].message;
}

void
ringmq_publish_results_free(ringmq_publish_results *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->count; i++)
		free(r->r[i].message);
	free(r->r);
	free(r);
}

/* Records a refusal; text is copied (a failed copy leaves no text). */
static void
result_fail(struct publish_result *res, int code, const char *text)
{
	res->code = code;
	free(res->message);
	res->message = text ? strdup(text) : NULL;
}

/* ----------------------------------------------------------------- publish */

/*
 * The status of a whole publish from its per-message results: a connection
 * failure if one happened, else the first refusal; errmsg says why.
 */
static int
results_status(ringmq_client *c, const ringmq_publish_results *r)
{
	const struct publish_result *first = NULL;

	for (size_t i = 0; i < r->count; i++) {
		const struct publish_result *res = &r->r[i];

		if (res->code == RINGMQ_OK)
			continue;
		if (status_is_conn_failure(res->code) ||
		    res->code == RINGMQ_UNREACHABLE) {
			first = res;
			break;
		}
		if (first == NULL)
			first = res;
	}
	if (first == NULL)
		return RINGMQ_OK;
	return client_fail(c, first->code, "%s",
			   first->message ? first->message
					  : ringmq_strerror(first->code));
}

static int
publish_batch_locked(ringmq_client *c, const char *queue,
		     const ringmq_message *const *msgs, size_t count,
		     ringmq_publish_results **resultsp)
{
	ringmq_publish_results *r = NULL;
	int rc;

	if (resultsp != NULL)
		*resultsp = NULL;
	rc = client_begin(c);
	if (rc == RINGMQ_USAGE)
		return rc;
	if (queue == NULL || (msgs == NULL && count > 0))
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	for (size_t i = 0; i < count; i++)
		if (msgs[i] == NULL)
			return client_fail(c, RINGMQ_USAGE,
					   "NULL message at %zu", i);

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	r->count = count;
	r->r = calloc(count ? count : 1, sizeof(*r->r));
	if (r->r == NULL) {
		ringmq_publish_results_free(r);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	if (rc != RINGMQ_OK) {
		/* CLOSED, or CONNECTION_LOST with reconnect off: nothing is
		 * sent. */
		for (size_t i = 0; i < count; i++)
			result_fail(&r->r[i], rc, c->errmsg);
	} else if (count > 0 &&
		   (rc = producer_publish_wait(c, queue, msgs, count, r->r)) !=
			   RINGMQ_OK) {
		/* None was sent; those over the limits say so already. */
		for (size_t i = 0; i < count; i++)
			if (r->r[i].code == RINGMQ_OK)
				result_fail(&r->r[i], rc, c->errmsg);
	}
	rc = results_status(c, r);
	if (resultsp != NULL)
		*resultsp = r;
	else
		ringmq_publish_results_free(r);
	return rc;
}

int
ringmq_publish_batch(ringmq_client *c, const char *queue,
		     const ringmq_message *const *msgs, size_t count,
		     ringmq_publish_results **resultsp)
{
	int rc;

	if (c == NULL) {
		if (resultsp != NULL)
			*resultsp = NULL;
		return RINGMQ_USAGE;
	}
	client_lock(c);
	rc = publish_batch_locked(c, queue, msgs, count, resultsp);
	client_unlock(c);
	return rc;
}

int
ringmq_publish(ringmq_client *c, const char *queue, const ringmq_message *m,
	       uint32_t *partition, uint64_t *offset, int *is_duplicate)
{
	ringmq_publish_results *r;
	int rc;

	if (m == NULL)
		return c ? client_fail(c, RINGMQ_USAGE, "NULL message")
			 : RINGMQ_USAGE;
	rc = ringmq_publish_batch(c, queue, &m, 1, &r);
	if (r == NULL)
		return rc;
	if (rc == RINGMQ_OK) {
		if (partition != NULL)
			*partition = r->r[0].partition;
		if (offset != NULL)
			*offset = r->r[0].offset;
		if (is_duplicate != NULL)
			*is_duplicate = r->r[0].is_duplicate;
	}
	ringmq_publish_results_free(r);
	return rc;
}
