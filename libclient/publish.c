/*
 * publish.c: messages to publish, publish calls and their per-message
 * results.
 *
 * A ringmq_message holds its protobuf form directly (every buffer owned by
 * the message), so a batch is packed without converting anything. A batch
 * is cut into requests that respect the broker's max_batch_count and
 * max_frame_bytes from hello; a message that cannot fit in any request, or
 * whose payload is over max_message_bytes, is refused here and never sent.
 */
#include "internal.h"
#include "pb_varint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The prefix of header names reserved for the broker. */
#define RESERVED_HEADER_PREFIX "ringmq-"

struct ringmq_message {
	Ringmq__Message pb; /* every pointer in it owned by the message */
};

struct publish_result {
	int code;
	uint32_t partition;
	uint64_t offset;
	int is_duplicate;
	char *message; /* owned; NULL when none */
};

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

const Ringmq__Message *
message_pb(const ringmq_message *m)
{
	return &m->pb;
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

/* Bytes a message adds to a Publish: tag, length and body. */
size_t
message_cost(const Ringmq__Message *pb)
{
	size_t n = ringmq__message__get_packed_size(pb);

	return 1 + pb_varint_len(n) + n;
}

size_t
message_bytes(const Ringmq__Message *pb)
{
	size_t n = pb->payload.len + (pb->has_key ? pb->key.len : 0);

	if (pb->dedup_id != NULL)
		n += strlen(pb->dedup_id);
	for (size_t i = 0; i < pb->n_headers; i++)
		n += 6 + strlen(pb->headers[i]->name) +
		     pb->headers[i]->value.len;
	return n;
}

/*
 * Bytes of a Publish frame for queue with no messages, with the largest
 * request_id and room for the Publish length to grow to 5 bytes.
 */
size_t
publish_base_bytes(const char *queue)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;

	pub.queue = (char *)queue; /* only measured */
	f.has_request_id = 1;
	f.request_id = UINT64_MAX;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	return ringmq__frame__get_packed_size(&f) + 4;
}

/* State of one publish_batch call. */
struct batch {
	ringmq_client *c;
	const char *queue;
	const ringmq_message *const *msgs;
	struct publish_result *res;
	size_t base_bytes;
	Ringmq__Message **pbs; /* scratch: the request's messages, borrowed */
	size_t *idx;	       /* scratch: their indexes in msgs */
	int conn_rc;	       /* connection-level failure, else OK */
	int first_refusal;     /* first per-message refusal, else OK */
};

/* Checks message i against the broker's limits; 0 if it may be sent. */
static int
check_limits(struct batch *b, size_t i)
{
	const Ringmq__Message *pb = &b->msgs[i]->pb;
	char text[160];

	if (message_bytes(pb) > b->c->max_message_bytes) {
		snprintf(text, sizeof(text),
			 "message of %zu bytes (payload, key, headers, dedup "
			 "id) is over the broker's limit of %u bytes",
			 message_bytes(pb), b->c->max_message_bytes);
		goto refuse;
	}
	if (pb->n_headers > b->c->max_header_count) {
		snprintf(text, sizeof(text),
			 "%zu headers are over the broker's limit of %u",
			 pb->n_headers, b->c->max_header_count);
		goto refuse;
	}
	if (b->base_bytes + message_cost(pb) > b->c->max_frame_bytes) {
		snprintf(text, sizeof(text),
			 "message of %zu bytes with its headers does not fit "
			 "the broker's frame limit of %u bytes",
			 message_cost(pb), b->c->max_frame_bytes);
		goto refuse;
	}
	return 0;
refuse:
	result_fail(&b->res[i], RINGMQ_MESSAGE_TOO_LARGE, text);
	if (b->first_refusal == RINGMQ_OK) {
		b->first_refusal = RINGMQ_MESSAGE_TOO_LARGE;
		(void)client_fail(b->c, RINGMQ_MESSAGE_TOO_LARGE, "%s", text);
	}
	return -1;
}

/* Sends the n messages gathered in b->pbs and records their results. */
static void
send_request(struct batch *b, size_t n)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
	Ringmq__Frame *resp;
	Ringmq__PublishOk *ok;
	int rc;

	pub.queue = (char *)b->queue; /* packing only reads it */
	pub.n_messages = n;
	pub.messages = b->pbs;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	rc = conn_call(b->c, &f, RINGMQ__FRAME__BODY_PUBLISH_OK, &resp);
	if (rc == RINGMQ_OK && resp->publish_ok->n_results != n) {
		size_t got = resp->publish_ok->n_results;

		frame_free(resp);
		rc = client_fail(b->c, RINGMQ_BAD_FRAME,
				 "protocol error: %zu results for %zu "
				 "messages",
				 got, n);
	}
	if (rc != RINGMQ_OK) {
		/* The whole request failed: every message in it gets why. */
		for (size_t k = 0; k < n; k++)
			result_fail(&b->res[b->idx[k]], rc, b->c->errmsg);
		if (status_is_conn_failure(rc))
			b->conn_rc = rc;
		else if (b->first_refusal == RINGMQ_OK)
			b->first_refusal = rc;
		return;
	}
	ok = resp->publish_ok;
	for (size_t k = 0; k < n; k++) {
		const Ringmq__PublishResult *pr = ok->results[k];
		struct publish_result *res = &b->res[b->idx[k]];

		if (pr->code != RINGMQ__ERROR_CODE__OK) {
			result_fail(res, (int)pr->code,
				    pr->message
					    ? pr->message
					    : ringmq_strerror((int)pr->code));
			if (b->first_refusal == RINGMQ_OK) {
				b->first_refusal = (int)pr->code;
				(void)client_fail(b->c, (int)pr->code, "%s",
						  res->message ? res->message
							       : "");
			}
			continue;
		}
		res->code = RINGMQ_OK;
		res->partition = pr->partition;
		res->offset = pr->offset;
		res->is_duplicate = pr->has_duplicate && pr->duplicate;
	}
	frame_free(resp);
}

/* Runs the batch from message 0 to count; fills every result. */
static void
batch_run(struct batch *b, size_t count)
{
	size_t i = 0;

	while (i < count) {
		size_t n = 0;
		size_t bytes = b->base_bytes;

		if (b->conn_rc != RINGMQ_OK) {
			/* Not sent after the connection failed. */
			for (; i < count; i++)
				result_fail(&b->res[i], b->conn_rc,
					    ringmq_strerror(b->conn_rc));
			return;
		}
		while (i < count && n < b->c->max_batch_count) {
			size_t cost;

			if (check_limits(b, i) < 0) {
				i++;
				continue;
			}
			cost = message_cost(&b->msgs[i]->pb);
			if (bytes + cost > b->c->max_frame_bytes)
				break;
			bytes += cost;
			/* Packing only reads the message. */
			b->pbs[n] = (Ringmq__Message *)&b->msgs[i]->pb;
			b->idx[n++] = i++;
		}
		if (n > 0)
			send_request(b, n);
	}
}

static int
publish_batch_locked(ringmq_client *c, const char *queue,
		     const ringmq_message *const *msgs, size_t count,
		     ringmq_publish_results **resultsp)
{
	ringmq_publish_results *r = NULL;
	struct batch b = { 0 };
	size_t slots;
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
		goto nomem;
	r->count = count;
	r->r = calloc(count ? count : 1, sizeof(*r->r));
	slots = c->max_batch_count < count ? c->max_batch_count : count;
	b.pbs = calloc(slots ? slots : 1, sizeof(*b.pbs));
	b.idx = calloc(slots ? slots : 1, sizeof(*b.idx));
	if (r->r == NULL || b.pbs == NULL || b.idx == NULL)
		goto nomem;

	b.c = c;
	b.queue = queue;
	b.msgs = msgs;
	b.res = r->r;
	b.base_bytes = publish_base_bytes(queue);
	b.conn_rc = rc; /* CLOSED or CONNECTION_LOST: nothing is sent */
	b.first_refusal = RINGMQ_OK;
	batch_run(&b, count);
	free(b.pbs);
	free(b.idx);

	rc = b.conn_rc != RINGMQ_OK ? b.conn_rc : b.first_refusal;
	if (resultsp != NULL)
		*resultsp = r;
	else
		ringmq_publish_results_free(r);
	return rc;

nomem:
	free(b.pbs);
	free(b.idx);
	ringmq_publish_results_free(r);
	return client_fail(c, RINGMQ_INTERNAL, "out of memory");
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
