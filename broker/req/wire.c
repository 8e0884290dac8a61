/*
 * wire: see wire.h.
 */
#define _GNU_SOURCE
#include "req/wire.h"

#include "core/group.h"
#include "core/queue.h"
#include "fields.h"
#include "lib/err.h"
#include "pb_varint.h"
#include "req/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Fills w->hs / hp / names from the raw header block of v. */
static int
wire_headers(struct wire_msg *w, const struct store_msg_view *v)
{
	struct store_header h;
	uint32_t pos = 0, nh = 0;
	char *np;

	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1)
		nh++;
	if (nh == 0)
		return 0;
	w->hs = calloc(nh, sizeof(*w->hs));
	w->hp = calloc(nh, sizeof(*w->hp));
	w->names = malloc(v->headers_len + nh);
	if (w->hs == NULL || w->hp == NULL || w->names == NULL)
		return -ENOMEM;
	np = w->names;
	pos = 0;
	for (uint32_t i = 0; i < nh; i++) {
		(void)store_headers_next(v->headers, v->headers_len, &pos, &h);
		ringmq__header__init(&w->hs[i]);
		memcpy(np, h.name, h.name_len);
		np[h.name_len] = '\0';
		w->hs[i].name = np;
		np += h.name_len + 1;
		w->hs[i].value.data = (uint8_t *)h.value;
		w->hs[i].value.len = h.value_len;
		w->hp[i] = &w->hs[i];
	}
	w->m.n_headers = nh;
	w->m.headers = w->hp;
	return 0;
}

int
wire_msg_init(struct wire_msg *w, const struct store_msg_view *v)
{
	memset(w, 0, sizeof(*w));
	ringmq__message__init(&w->m);
	if (wire_headers(w, v) < 0)
		return -ENOMEM;
	if (v->dedup_len > 0) {
		w->dedup = strndup(v->dedup_id, v->dedup_len);
		if (w->dedup == NULL)
			return -ENOMEM;
		w->m.dedup_id = w->dedup;
	}
	w->m.payload.data = (uint8_t *)v->payload;
	w->m.payload.len = v->payload_len;
	w->m.has_key = v->key_len > 0;
	w->m.key.data = (uint8_t *)v->key;
	w->m.key.len = v->key_len;
	if (v->deliver_at_ms) {
		w->m.has_deliver_at_ms = 1;
		w->m.deliver_at_ms = v->deliver_at_ms;
	}
	return 0;
}

void
wire_msg_fini(struct wire_msg *w)
{
	free(w->hs);
	free(w->hp);
	free(w->names);
	free(w->dedup);
	memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------- Delivery, by hand */

/* Field keys: number << 3 | wire type (0 varint, 2 length-delimited). */
#define KEY_VARINT(n) ((uint8_t)((n) << 3))
#define KEY_BYTES(n)  ((uint8_t)((n) << 3 | 2))
/* Frame's bodies sent by hand (fields 44, 31 and 49): their keys are
 * two-byte varints, split here. Field numbers: proto/fields.h. */
#define KEY2_BYTE0(n) ((uint8_t)(((n) << 3 | 2) | 0x80))
#define KEY2_BYTE1(n) ((uint8_t)(((n) << 3 | 2) >> 7))
_Static_assert(((FIELD_FRAME_DELIVERY << 3 | 2) >> 14) == 0 &&
		       ((FIELD_FRAME_PUBLISH_OK << 3 | 2) >> 14) == 0 &&
		       ((FIELD_FRAME_LEASE_RESULT << 3 | 2) >> 14) == 0,
	       "two-byte keys");
#define FRAME_DELIVERY_KEY0	KEY2_BYTE0(FIELD_FRAME_DELIVERY)
#define FRAME_DELIVERY_KEY1	KEY2_BYTE1(FIELD_FRAME_DELIVERY)
#define FRAME_PUBLISH_OK_KEY0	KEY2_BYTE0(FIELD_FRAME_PUBLISH_OK)
#define FRAME_PUBLISH_OK_KEY1	KEY2_BYTE1(FIELD_FRAME_PUBLISH_OK)
#define FRAME_LEASE_RESULT_KEY0 KEY2_BYTE0(FIELD_FRAME_LEASE_RESULT)
#define FRAME_LEASE_RESULT_KEY1 KEY2_BYTE1(FIELD_FRAME_LEASE_RESULT)

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* A one-byte key, then a varint. */
static uint8_t *
put_uint(uint8_t *p, uint8_t key, uint64_t v)
{
	*p++ = key;
	return put_varint(p, v);
}

/* A one-byte key, a length, then the bytes. */
static uint8_t *
put_bytes(uint8_t *p, uint8_t key, const void *data, size_t len)
{
	*p++ = key;
	p = put_varint(p, len);
	if (len > 0)
		memcpy(p, data, len);
	return p + len;
}

/* A field of len bytes after a one-byte key and its length. */
static size_t
field_len(size_t len)
{
	return 1 + pb_varint_len(len) + len;
}

/* The bytes of one Header message (name up to a NUL, as a C string). */
static size_t
header_len(const struct store_header *h, size_t *name_len)
{
	*name_len = strnlen(h->name, h->name_len);
	return field_len(*name_len) + field_len(h->value_len);
}

static size_t
dedup_len(const struct store_msg_view *v)
{
	return strnlen(v->dedup_id, v->dedup_len);
}

static size_t
message_len(const struct store_msg_view *v)
{
	size_t n = field_len(v->payload_len);
	struct store_header h;
	uint32_t pos = 0;

	if (v->key_len > 0)
		n += field_len(v->key_len);
	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1) {
		size_t name_len;

		n += field_len(header_len(&h, &name_len));
	}
	if (v->deliver_at_ms != 0)
		n += 1 + pb_varint_len(v->deliver_at_ms);
	if (v->dedup_len > 0)
		n += field_len(dedup_len(v));
	return n;
}

static size_t
delivery_len(const struct delivery *d, const struct store_msg_view *v,
	     size_t msg_len)
{
	return 1 + pb_varint_len(d->subscription) + 1 +
	       pb_varint_len(d->lease_id) + 1 + pb_varint_len(d->partition) +
	       1 + pb_varint_len(d->offset) + 1 +
	       pb_varint_len(d->delivery_count) + 1 +
	       pb_varint_len(d->lease_remaining_ms) + field_len(msg_len) + 1 +
	       pb_varint_len(v->publish_ms);
}

size_t
wire_delivery_size(const struct delivery *d, const struct store_msg_view *v)
{
	size_t del_len = delivery_len(d, v, message_len(v));

	return FRAME_HEADER_BYTES + 2 + pb_varint_len(del_len) + del_len;
}

size_t
wire_delivery_encode(const struct delivery *d, const struct store_msg_view *v,
		     uint8_t *out)
{
	size_t msg_len = message_len(v);
	size_t del_len = delivery_len(d, v, msg_len);
	size_t frame_len = 2 + pb_varint_len(del_len) + del_len;
	uint8_t *p = out + FRAME_HEADER_BYTES;
	struct store_header h;
	uint32_t pos = 0;

	out[0] = (uint8_t)(frame_len >> 24);
	out[1] = (uint8_t)(frame_len >> 16);
	out[2] = (uint8_t)(frame_len >> 8);
	out[3] = (uint8_t)frame_len;
	*p++ = FRAME_DELIVERY_KEY0;
	*p++ = FRAME_DELIVERY_KEY1;
	p = put_varint(p, del_len);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_SUBSCRIPTION),
		     d->subscription);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_LEASE_ID), d->lease_id);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_PARTITION), d->partition);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_OFFSET), d->offset);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_DELIVERY_COUNT),
		     d->delivery_count);
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_LEASE_REMAINING_MS),
		     d->lease_remaining_ms);
	*p++ = KEY_BYTES(FIELD_DELIVERY_MESSAGE);
	p = put_varint(p, msg_len);
	p = put_bytes(p, KEY_BYTES(FIELD_MESSAGE_PAYLOAD), v->payload,
		      v->payload_len);
	if (v->key_len > 0)
		p = put_bytes(p, KEY_BYTES(FIELD_MESSAGE_KEY), v->key,
			      v->key_len);
	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1) {
		size_t name_len;

		*p++ = KEY_BYTES(FIELD_MESSAGE_HEADERS);
		p = put_varint(p, header_len(&h, &name_len));
		p = put_bytes(p, KEY_BYTES(FIELD_HEADER_NAME), h.name,
			      name_len);
		p = put_bytes(p, KEY_BYTES(FIELD_HEADER_VALUE), h.value,
			      h.value_len);
	}
	if (v->deliver_at_ms != 0)
		p = put_uint(p, KEY_VARINT(FIELD_MESSAGE_DELIVER_AT_MS),
			     v->deliver_at_ms);
	if (v->dedup_len > 0)
		p = put_bytes(p, KEY_BYTES(FIELD_MESSAGE_DEDUP_ID), v->dedup_id,
			      dedup_len(v));
	p = put_uint(p, KEY_VARINT(FIELD_DELIVERY_PUBLISH_MS), v->publish_ms);
	return (size_t)(p - out);
}

/* ------------------------------------- PublishOk and LeaseResult, by hand */

/* An enum as protobuf-c packs it: an int32, sign-extended. */
static uint64_t
enum_bits(int v)
{
	return (uint64_t)(int64_t)v;
}

/* The length prefix, Frame.request_id and a body's two-byte key and
 * length: what every answer starts with. */
static size_t
answer_head_len(uint64_t request_id, size_t body_len)
{
	return FRAME_HEADER_BYTES + 1 + pb_varint_len(request_id) + 2 +
	       pb_varint_len(body_len);
}

static uint8_t *
put_answer_head(uint8_t *out, uint64_t request_id, uint8_t key0, uint8_t key1,
		size_t body_len)
{
	size_t frame_len = 1 + pb_varint_len(request_id) + 2 +
			   pb_varint_len(body_len) + body_len;
	uint8_t *p = out + FRAME_HEADER_BYTES;

	out[0] = (uint8_t)(frame_len >> 24);
	out[1] = (uint8_t)(frame_len >> 16);
	out[2] = (uint8_t)(frame_len >> 8);
	out[3] = (uint8_t)frame_len;
	p = put_uint(p, KEY_VARINT(FIELD_FRAME_REQUEST_ID), request_id);
	*p++ = key0;
	*p++ = key1;
	return put_varint(p, body_len);
}

static size_t
publish_result_len(const struct publish_result *r)
{
	size_t n = 1 + pb_varint_len(enum_bits(err_to_wire(r->code)));

	if (r->code == 0) {
		n += 1 + pb_varint_len(r->partition) + 1 +
		     pb_varint_len(r->offset);
		if (r->is_duplicate)
			n += 1 + pb_varint_len((uint32_t)r->is_duplicate);
	} else {
		if (r->why != NULL)
			n += field_len(strlen(r->why));
		if (r->owner != NULL)
			n += 1 + pb_varint_len(r->partition) +
			     field_len(strlen(r->owner)) + 1 +
			     pb_varint_len(r->owner_epoch);
	}
	return n;
}

static size_t
publish_ok_len(const struct publish_result *res, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += field_len(publish_result_len(&res[i]));
	return len;
}

size_t
wire_publish_ok_size(uint64_t request_id, const struct publish_result *res,
		     size_t n)
{
	size_t body = publish_ok_len(res, n);

	return answer_head_len(request_id, body) + body;
}

size_t
wire_publish_ok_encode(uint64_t request_id, const struct publish_result *res,
		       size_t n, uint8_t *out)
{
	uint8_t *p =
		put_answer_head(out, request_id, FRAME_PUBLISH_OK_KEY0,
				FRAME_PUBLISH_OK_KEY1, publish_ok_len(res, n));

	for (size_t i = 0; i < n; i++) {
		const struct publish_result *r = &res[i];

		*p++ = KEY_BYTES(FIELD_PUBLISH_OK_RESULTS);
		p = put_varint(p, publish_result_len(r));
		p = put_uint(p, KEY_VARINT(FIELD_PUBLISH_RESULT_CODE),
			     enum_bits(err_to_wire(r->code)));
		if (r->code == 0) {
			p = put_uint(p,
				     KEY_VARINT(FIELD_PUBLISH_RESULT_PARTITION),
				     r->partition);
			p = put_uint(p, KEY_VARINT(FIELD_PUBLISH_RESULT_OFFSET),
				     r->offset);
			if (r->is_duplicate)
				p = put_uint(
					p,
					KEY_VARINT(
						FIELD_PUBLISH_RESULT_DUPLICATE),
					(uint32_t)r->is_duplicate);
			continue;
		}
		if (r->owner != NULL)
			p = put_uint(p,
				     KEY_VARINT(FIELD_PUBLISH_RESULT_PARTITION),
				     r->partition);
		if (r->why != NULL)
			p = put_bytes(p,
				      KEY_BYTES(FIELD_PUBLISH_RESULT_MESSAGE),
				      r->why, strlen(r->why));
		if (r->owner != NULL) {
			p = put_bytes(p, KEY_BYTES(FIELD_PUBLISH_RESULT_OWNER),
				      r->owner, strlen(r->owner));
			p = put_uint(p, KEY_VARINT(FIELD_PUBLISH_RESULT_EPOCH),
				     r->owner_epoch);
		}
	}
	return (size_t)(p - out);
}

static size_t
lease_result_len(const int *codes, const uint64_t *remaining_ms, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += 1 + pb_varint_len(enum_bits(err_to_wire(codes[i])));
	for (size_t i = 0; remaining_ms != NULL && i < n; i++)
		len += 1 + pb_varint_len(remaining_ms[i]);
	return len;
}

size_t
wire_lease_result_size(uint64_t request_id, const int *codes,
		       const uint64_t *remaining_ms, size_t n)
{
	size_t body = lease_result_len(codes, remaining_ms, n);

	return answer_head_len(request_id, body) + body;
}

size_t
wire_lease_result_encode(uint64_t request_id, const int *codes,
			 const uint64_t *remaining_ms, size_t n, uint8_t *out)
{
	uint8_t *p = put_answer_head(out, request_id, FRAME_LEASE_RESULT_KEY0,
				     FRAME_LEASE_RESULT_KEY1,
				     lease_result_len(codes, remaining_ms, n));

	/* Repeated fields unpacked (proto2), each field's values in turn. */
	for (size_t i = 0; i < n; i++)
		p = put_uint(p, KEY_VARINT(FIELD_LEASE_RESULT_CODES),
			     enum_bits(err_to_wire(codes[i])));
	for (size_t i = 0; remaining_ms != NULL && i < n; i++)
		p = put_uint(p, KEY_VARINT(FIELD_LEASE_RESULT_REMAINING_MS),
			     remaining_ms[i]);
	return (size_t)(p - out);
}
