/*
 * Unit tests for codec: length prefix, arena, pre-scan limits, decode and
 * encode of every frame body, and an incremental reader fed the way the
 * network feeds conn (byte at a time, several frames per read).
 *
 * Frames are built from the protobuf-c descriptors, so a body type added to
 * the .proto is round-tripped here without touching this file.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "req/codec.h"

/* Small limits so over-limit frames stay small. */
static const struct codec_limits test_lim = {
	.max_frame_bytes = 1u << 20,
	.max_batch_count = 100,
	.max_header_count = 16,
};

#define TEST_ARENA_CAP (4u << 20)
/* Repeated fields of built messages get this many elements. */
#define FILL_REPEAT 3

/* Builds test frames; reset after each test. */
static struct codec_arena build_arena;

static int
setup(void **state)
{
	(void)state;
	codec_arena_init(&build_arena, 64u << 20);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	codec_arena_fini(&build_arena);
	return 0;
}

static void *
build_alloc(size_t n)
{
	void *p = build_arena.allocator.alloc(
		build_arena.allocator.allocator_data, n);

	assert_non_null(p);
	memset(p, 0, n);
	return p;
}

/* ------------------------------------------- descriptor-driven builder */

static size_t
elt_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM: return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE: return 8;
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	}
	fail_msg("unknown protobuf-c type %d", (int)type);
	return 0;
}

static ProtobufCMessage *build_message(const ProtobufCMessageDescriptor *d,
				       unsigned seed);

/* Writes a value of fd's type at v: never the default, bytes with NULs. */
static void
fill_value(const ProtobufCFieldDescriptor *fd, void *v, unsigned seed)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: {
		int32_t x = -(int32_t)seed - 1;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: {
		uint32_t x = 0x80000000u | seed;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: {
		int64_t x = -(int64_t)seed - 1;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		/* The top bit set makes a 10-byte varint. */
		uint64_t x = 0x8000000000000000ull | seed;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT: {
		float x = 1.5f + (float)seed;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double x = 0.25 + seed;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_BOOL: {
		protobuf_c_boolean x = 1;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = fd->descriptor;
		int32_t x = ed->values[ed->n_values - 1].value;

		memcpy(v, &x, sizeof x);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *s = build_alloc(64);

		snprintf(s, 64, "%s-%u-\xc3\xa9", fd->name, seed);
		memcpy(v, &s, sizeof s);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData bd = { 6, build_alloc(6) };

		bd.data[1] = (uint8_t)seed;
		bd.data[3] = 0xff;
		bd.data[4] = 'z';
		memcpy(v, &bd, sizeof bd);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *m =
			build_message(fd->descriptor, seed * 7 + 1);

		memcpy(v, &m, sizeof m);
		break;
	}
	}
}

/* Every field set, every repeated field FILL_REPEAT long; oneofs left
 * unset (only Frame has one, set by build_frame). */
static ProtobufCMessage *
build_message(const ProtobufCMessageDescriptor *d, unsigned seed)
{
	ProtobufCMessage *m = build_alloc(d->sizeof_message);
	unsigned i, k;

	protobuf_c_message_init(d, m);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		uint8_t *member = (uint8_t *)m + fd->offset;
		uint8_t *quant = (uint8_t *)m + fd->quantifier_offset;

		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = FILL_REPEAT, sz = elt_size(fd->type);
			uint8_t *arr = build_alloc(n * sz);

			for (k = 0; k < n; k++)
				fill_value(fd, arr + k * sz, seed + k + 1);
			memcpy(quant, &n, sizeof n);
			memcpy(member, &arr, sizeof arr);
		} else {
			fill_value(fd, member, seed + i);
			if (fd->quantifier_offset != 0) {
				protobuf_c_boolean has = 1;

				memcpy(quant, &has, sizeof has);
			}
		}
	}
	return m;
}

static const ProtobufCFieldDescriptor *
frame_field(uint32_t body_case)
{
	const ProtobufCFieldDescriptor *fd =
		protobuf_c_message_descriptor_get_field(
			&ringmq__frame__descriptor, body_case);

	assert_non_null(fd);
	assert_true(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
	return fd;
}

/* A frame with body body_case, every field of the body filled. */
static Ringmq__Frame *
build_frame(uint32_t body_case, uint64_t request_id)
{
	const ProtobufCFieldDescriptor *fd = frame_field(body_case);
	Ringmq__Frame *f = build_alloc(sizeof *f);
	ProtobufCMessage *body;

	ringmq__frame__init(f);
	if (request_id != 0) {
		f->has_request_id = 1;
		f->request_id = request_id;
	}
	body = build_message(fd->descriptor, body_case);
	f->body_case = (Ringmq__Frame__BodyCase)body_case;
	memcpy((uint8_t *)f + fd->offset, &body, sizeof body);
	return f;
}

static void assert_msg_equal(const ProtobufCMessage *a,
			     const ProtobufCMessage *b);

static void
assert_value_equal(const ProtobufCFieldDescriptor *fd, const void *va,
		   const void *vb)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *a, *b;

		memcpy(&a, va, sizeof a);
		memcpy(&b, vb, sizeof b);
		if (a == NULL || b == NULL)
			assert_ptr_equal(a, b);
		else
			assert_string_equal(a, b);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *a = va, *b = vb;

		assert_int_equal(a->len, b->len);
		if (a->len > 0)
			assert_memory_equal(a->data, b->data, a->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *a, *b;

		memcpy(&a, va, sizeof a);
		memcpy(&b, vb, sizeof b);
		if (a == NULL || b == NULL)
			assert_ptr_equal(a, b);
		else
			assert_msg_equal(a, b);
		break;
	}
	default: assert_memory_equal(va, vb, elt_size(fd->type)); break;
	}
}

/* Field-by-field equality, driven by the descriptor. */
static void
assert_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	const ProtobufCMessageDescriptor *d = a->descriptor;
	unsigned i;
	size_t k;

	assert_ptr_equal(d, b->descriptor);
	assert_int_equal(b->n_unknown_fields, 0);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const uint8_t *ma = (const uint8_t *)a + fd->offset;
		const uint8_t *mb = (const uint8_t *)b + fd->offset;
		const uint8_t *qa = (const uint8_t *)a + fd->quantifier_offset;
		const uint8_t *qb = (const uint8_t *)b + fd->quantifier_offset;

		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t ca, cb;

			memcpy(&ca, qa, sizeof ca);
			memcpy(&cb, qb, sizeof cb);
			assert_int_equal(ca, cb);
			if (ca == fd->id)
				assert_value_equal(fd, ma, mb);
		} else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t na, nb, sz = elt_size(fd->type);
			const uint8_t *arra, *arrb;

			memcpy(&na, qa, sizeof na);
			memcpy(&nb, qb, sizeof nb);
			assert_int_equal(na, nb);
			memcpy(&arra, ma, sizeof arra);
			memcpy(&arrb, mb, sizeof arrb);
			for (k = 0; k < na; k++)
				assert_value_equal(fd, arra + k * sz,
						   arrb + k * sz);
		} else {
			if (fd->quantifier_offset != 0) {
				protobuf_c_boolean ha, hb;

				memcpy(&ha, qa, sizeof ha);
				memcpy(&hb, qb, sizeof hb);
				assert_int_equal(ha, hb);
				if (!ha)
					continue;
			}
			assert_value_equal(fd, ma, mb);
		}
	}
}

/* ----------------------------------------------------------- helpers */

/* Encodes f into a buffer of exactly its size (ASan sees overruns). */
static uint8_t *
encode_frame(const Ringmq__Frame *f, size_t *len)
{
	size_t n = codec_encoded_size(f);
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	assert_int_equal(codec_encode(f, buf), n);
	*len = n;
	return buf;
}

/* A copy of body in a buffer of exactly len bytes. */
static uint8_t *
dup_bytes(const uint8_t *body, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len > 0)
		memcpy(p, body, len);
	return p;
}

/* Decodes a raw body with the test limits and a fresh arena. */
static int
decode_raw(const uint8_t *body, size_t len, size_t cap)
{
	struct codec_arena a;
	Ringmq__Frame *f = (Ringmq__Frame *)1;
	uint8_t *copy = dup_bytes(body, len);
	int rc;

	codec_arena_init(&a, cap);
	rc = codec_decode(&a, &test_lim, copy, len, &f, NULL);
	if (rc < 0)
		assert_null(f);
	else
		assert_int_not_equal(f->body_case,
				     RINGMQ__FRAME__BODY__NOT_SET);
	codec_arena_fini(&a);
	free(copy);
	return rc;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Appends a varint to buf at *n. */
static void
put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
	while (v >= 0x80) {
		buf[(*n)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[(*n)++] = (uint8_t)v;
}

static void
put_tag(uint8_t *buf, size_t *n, uint32_t field, unsigned wire_type)
{
	put_varint(buf, n, (uint64_t)field << 3 | wire_type);
}

/* Wraps inner (len bytes) as length-delimited field `field` of out. */
static void
put_len_field(uint8_t *out, size_t *n, uint32_t field, const uint8_t *inner,
	      size_t len)
{
	put_tag(out, n, field, 2);
	put_varint(out, n, len);
	memcpy(out + *n, inner, len);
	*n += len;
}

/* Deterministic xorshift64 so failures reproduce. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* ---------------------------------------------------------- round trip */

static void
test_codec_encode_writes_exact_bytes(void **state)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping ping = RINGMQ__PING__INIT;
	/* request_id=1 (08 01), ping (field 12, LEN: 62) { nonce=7 (08 07) } */
	static const uint8_t want[] = { 0,    0,    0,	  6,	0x08,
					0x01, 0x62, 0x02, 0x08, 0x07 };
	uint8_t *buf;
	size_t n;

	(void)state;
	f.has_request_id = 1;
	f.request_id = 1;
	ping.has_nonce = 1;
	ping.nonce = 7;
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &ping;
	buf = encode_frame(&f, &n);
	assert_int_equal(n, sizeof want);
	assert_memory_equal(buf, want, sizeof want);
	free(buf);
}

/* Every body of the oneof: encode, prefix, decode, equal, re-encode. */
static void
test_codec_round_trips_every_body_type(void **state)
{
	const ProtobufCMessageDescriptor *d = &ringmq__frame__descriptor;
	struct codec_arena a;
	unsigned i, bodies = 0;

	(void)state;
	codec_arena_init(&a, TEST_ARENA_CAP);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		Ringmq__Frame *f, *out = NULL;
		uint8_t *buf, *again;
		uint32_t n;
		size_t len;

		if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		bodies++;
		f = build_frame(fd->id, 1000 + fd->id);
		buf = encode_frame(f, &len);
		assert_int_equal(
			frame_length(buf, len, test_lim.max_frame_bytes, &n),
			0);
		assert_int_equal(n, len - FRAME_HEADER_BYTES);
		assert_int_equal(be32(buf), n);
		assert_int_equal(codec_decode(&a, &test_lim,
					      buf + FRAME_HEADER_BYTES, n, &out,
					      NULL),
				 0);
		assert_non_null(out);
		assert_int_equal(out->body_case, fd->id);
		assert_int_equal(out->request_id, 1000 + fd->id);
		assert_msg_equal(&f->base, &out->base);

		/* protobuf-c packs in field order: the bytes come back. */
		assert_int_equal(codec_encoded_size(out), len);
		again = malloc(len);
		assert_non_null(again);
		assert_int_equal(codec_encode(out, again), len);
		assert_memory_equal(again, buf, len);
		free(again);
		free(buf);
		codec_arena_reset(&a);
	}
	/* 48 bodies in ringmq.proto today; new ones are covered as added. */
	assert_true(bodies >= 48);
	codec_arena_fini(&a);
}

/* A publish with NUL bytes in payload, key and header value, checked
 * field by field rather than through the descriptors. */
static void
test_codec_round_trips_publish_with_nul_bytes(void **state)
{
	static uint8_t payload[] = { 'j', 0, 'o', 0, 0, 'b' };
	static uint8_t key[] = { 0, 0, 1 };
	static uint8_t value[] = { 0 };
	Ringmq__Header h = RINGMQ__HEADER__INIT;
	Ringmq__Header *hs[1] = { &h };
	Ringmq__Message m0 = RINGMQ__MESSAGE__INIT, m1 = RINGMQ__MESSAGE__INIT;
	Ringmq__Message *ms[2] = { &m0, &m1 };
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *out;
	struct codec_arena a;
	uint8_t *buf;
	size_t len;

	(void)state;
	h.name = "trace";
	h.value.data = value;
	h.value.len = sizeof value;
	m0.payload.data = payload;
	m0.payload.len = sizeof payload;
	m0.has_key = 1;
	m0.key.data = key;
	m0.key.len = sizeof key;
	m0.n_headers = 1;
	m0.headers = hs;
	m0.has_delay_ms = 1;
	m0.delay_ms = 1500;
	m1.payload.data = NULL; /* an empty payload is a valid job */
	m1.payload.len = 0;
	p.queue = "jobs";
	p.n_messages = 2;
	p.messages = ms;
	p.has_producer_seq = 1;
	p.producer_seq = 42;
	f.has_request_id = 1;
	f.request_id = 9;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;

	buf = encode_frame(&f, &len);
	codec_arena_init(&a, TEST_ARENA_CAP);
	assert_int_equal(
		codec_decode(&a, &test_lim, buf + 4, len - 4, &out, NULL), 0);
	assert_int_equal(out->body_case, RINGMQ__FRAME__BODY_PUBLISH);
	assert_int_equal(out->request_id, 9);
	assert_string_equal(out->publish->queue, "jobs");
	assert_int_equal(out->publish->producer_seq, 42);
	assert_false(out->publish->has_partition);
	assert_int_equal(out->publish->n_messages, 2);
	assert_int_equal(out->publish->messages[0]->payload.len,
			 sizeof payload);
	assert_memory_equal(out->publish->messages[0]->payload.data, payload,
			    sizeof payload);
	assert_true(out->publish->messages[0]->has_key);
	assert_memory_equal(out->publish->messages[0]->key.data, key,
			    sizeof key);
	assert_int_equal(out->publish->messages[0]->n_headers, 1);
	assert_string_equal(out->publish->messages[0]->headers[0]->name,
			    "trace");
	assert_int_equal(out->publish->messages[0]->headers[0]->value.len, 1);
	assert_int_equal(out->publish->messages[0]->headers[0]->value.data[0],
			 0);
	assert_int_equal(out->publish->messages[0]->delay_ms, 1500);
	assert_int_equal(out->publish->messages[1]->payload.len, 0);
	assert_false(out->publish->messages[1]->has_key);
	codec_arena_fini(&a);
	free(buf);
}

/* lease_ids arrive packed (newer encoders) or not (protobuf-c): both. */
static void
test_codec_decodes_packed_and_unpacked_lease_ids(void **state)
{
	static const uint64_t ids[] = { 1, 300, UINT64_MAX };
	uint8_t inner[64], body[80];
	size_t ni = 0, nb = 0, k;
	struct codec_arena a;
	Ringmq__Frame *out;
	int packed;

	(void)state;
	codec_arena_init(&a, TEST_ARENA_CAP);
	for (packed = 0; packed <= 1; packed++) {
		uint8_t list[40];
		size_t nl = 0;

		ni = nb = 0;
		if (packed) {
			for (k = 0; k < 3; k++)
				put_varint(list, &nl, ids[k]);
			put_len_field(inner, &ni, 1, list, nl);
		} else {
			for (k = 0; k < 3; k++) {
				put_tag(inner, &ni, 1, 0);
				put_varint(inner, &ni, ids[k]);
			}
		}
		put_len_field(body, &nb, RINGMQ__FRAME__BODY_ACK, inner, ni);
		assert_int_equal(
			codec_decode(&a, &test_lim, body, nb, &out, NULL), 0);
		assert_int_equal(out->body_case, RINGMQ__FRAME__BODY_ACK);
		assert_int_equal(out->ack->n_lease_ids, 3);
		for (k = 0; k < 3; k++)
			assert_int_equal(out->ack->lease_ids[k], ids[k]);
		codec_arena_reset(&a);
	}
	codec_arena_fini(&a);
}

/* Fields this version does not know are skipped: clients may be newer. */
static void
test_codec_accepts_unknown_fields(void **state)
{
	uint8_t body[32];
	size_t n = 0;
	static const uint8_t ping[] = { 0x08, 0x05 };

	(void)state;
	put_len_field(body, &n, RINGMQ__FRAME__BODY_PING, ping, sizeof ping);
	put_tag(body, &n, 999, 0);
	put_varint(body, &n, 12345);
	put_tag(body, &n, 1000, 1);
	memset(body + n, 0xab, 8);
	n += 8;
	assert_int_equal(decode_raw(body, n, TEST_ARENA_CAP), 0);
}

/* The request_id of frames that do not decode, for their error answer. */
static void
test_codec_request_id_of_undecodable_frames(void **state)
{
	uint8_t body[64];
	size_t n = 0;

	(void)state;
	/* Found after other fields, the last copy winning. */
	put_tag(body, &n, 999, 0);
	put_varint(body, &n, 7);
	put_tag(body, &n, 1, 0);
	put_varint(body, &n, 300);
	put_tag(body, &n, 1, 0);
	put_varint(body, &n, 0x123456789ull);
	assert_int_equal(codec_request_id(body, n), 0x123456789ull);
	/* Absent: 0. */
	n = 0;
	put_tag(body, &n, 999, 0);
	put_varint(body, &n, 7);
	assert_int_equal(codec_request_id(body, n), 0);
	/* Cut off inside a field after it: 0, the frame is garbage. */
	n = 0;
	put_tag(body, &n, 1, 0);
	put_varint(body, &n, 42);
	body[n++] = 0x9a; /* a tag whose varint never ends */
	assert_int_equal(codec_request_id(body, n), 0);
	assert_int_equal(codec_request_id(body, 0), 0);
}

/* ------------------------------------------------------ length prefix */

static void
test_codec_length_needs_four_bytes(void **state)
{
	static const uint8_t hdr[4] = { 0, 0, 0, 9 };
	uint32_t n = 77;
	size_t k;

	(void)state;
	for (k = 0; k < 4; k++) {
		uint8_t *p = dup_bytes(hdr, k);

		assert_int_equal(frame_length(p, k, 100, &n), -RMQ_ENEED_MORE);
		assert_int_equal(n, 0);
		free(p);
	}
	assert_int_equal(frame_length(hdr, 4, 100, &n), 0);
	assert_int_equal(n, 9);
}

static void
test_codec_rejects_len_over_max(void **state)
{
	uint8_t hdr[4];
	uint32_t n;
	const uint32_t max = 4096;

	(void)state;
	hdr[0] = 0, hdr[1] = 0, hdr[2] = 0x10, hdr[3] = 0x00; /* max */
	assert_int_equal(frame_length(hdr, 4, max, &n), 0);
	assert_int_equal(n, max);
	hdr[3] = 0x01; /* max + 1 */
	assert_int_equal(frame_length(hdr, 4, max, &n),
			 -RMQ_EMESSAGE_TOO_LARGE);
	assert_int_equal(n, max + 1);
	memset(hdr, 0xff, 4);
	assert_int_equal(frame_length(hdr, 4, max, &n),
			 -RMQ_EMESSAGE_TOO_LARGE);
	assert_int_equal(n, UINT32_MAX);
	assert_int_equal(frame_length(hdr, 4, UINT32_MAX, &n), 0);
}

static void
test_codec_rejects_zero_length(void **state)
{
	static const uint8_t hdr[4] = { 0, 0, 0, 0 };
	uint32_t n;

	(void)state;
	assert_int_equal(frame_length(hdr, 4, 100, &n), -RMQ_EBAD_FRAME);
	/* And an empty body handed to decode directly. */
	assert_int_equal(decode_raw(hdr, 0, TEST_ARENA_CAP), -RMQ_EBAD_FRAME);
}

/* A publish whose body is exactly max bytes decodes; one byte more is
 * refused at the prefix. */
static void
test_codec_accepts_frame_of_exactly_max(void **state)
{
	const uint32_t max = 4096;
	struct codec_limits lim = test_lim;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Message *ms[1] = { &m };
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *out;
	struct codec_arena a;
	uint8_t *payload = calloc(max, 1), *buf;
	size_t len, extra;
	uint32_t n;

	(void)state;
	assert_non_null(payload);
	lim.max_frame_bytes = max;
	p.queue = "q";
	p.n_messages = 1;
	p.messages = ms;
	m.payload.data = payload;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	codec_arena_init(&a, TEST_ARENA_CAP);
	for (extra = 0; extra <= 1; extra++) {
		/* Grow the payload until the body is max + extra bytes. */
		m.payload.len = max - 32;
		while (codec_encoded_size(&f) - 4 < max + extra)
			m.payload.len++;
		buf = encode_frame(&f, &len);
		assert_int_equal(len - 4, max + extra);
		if (extra == 0) {
			assert_int_equal(frame_length(buf, len, max, &n), 0);
			assert_int_equal(
				codec_decode(&a, &lim, buf + 4, n, &out, NULL),
				0);
			assert_int_equal(out->publish->messages[0]->payload.len,
					 m.payload.len);
		} else {
			assert_int_equal(frame_length(buf, len, max, &n),
					 -RMQ_EMESSAGE_TOO_LARGE);
		}
		free(buf);
		codec_arena_reset(&a);
	}
	codec_arena_fini(&a);
	free(payload);
}

/* --------------------------------------------------- prefixes, reader */

static const uint32_t stream_cases[] = {
	RINGMQ__FRAME__BODY_HELLO,
	RINGMQ__FRAME__BODY_PUBLISH,
	RINGMQ__FRAME__BODY_ACK,
	RINGMQ__FRAME__BODY_DELIVERY,
	RINGMQ__FRAME__BODY_QUEUE_DESCRIBE_OK,
	RINGMQ__FRAME__BODY_PING,
	RINGMQ__FRAME__BODY_TOUCH,
	RINGMQ__FRAME__BODY_STATS_OK,
	RINGMQ__FRAME__BODY_DONE,
};
#define N_STREAM (sizeof stream_cases / sizeof stream_cases[0])

/* No proper prefix of a frame decodes: the prefix says wait for more, and
 * the partial body alone is refused (the body field is encoded last and
 * its length runs to the end). */
static void
test_codec_every_prefix_needs_more(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < N_STREAM; i++) {
		Ringmq__Frame *f = build_frame(stream_cases[i], i);
		size_t len;
		uint8_t *buf = encode_frame(f, &len);

		for (k = 0; k < len; k++) {
			uint8_t *p = dup_bytes(buf, k);
			uint32_t n;
			int rc = frame_length(p, k, 1u << 20, &n);

			if (k < FRAME_HEADER_BYTES) {
				assert_int_equal(rc, -RMQ_ENEED_MORE);
			} else {
				assert_int_equal(rc, 0);
				assert_true(FRAME_HEADER_BYTES + n > k);
				assert_int_equal(decode_raw(p + 4, k - 4,
							    TEST_ARENA_CAP),
						 -RMQ_EBAD_FRAME);
			}
			free(p);
		}
		free(buf);
	}
}

/* What conn does with a socket: accumulate, take whole frames, consume. */
struct test_reader {
	uint8_t *buf;		      /* owned: bytes not yet consumed */
	size_t len, cap;	      /* bytes held, bytes allocated */
	struct codec_arena a;	      /* reset after each frame */
	const uint8_t *const *expect; /* borrowed: expected encodings */
	const size_t *expect_len;     /* borrowed */
	size_t n_expect, n_seen;
	int rc; /* first error; the reader stops there */
};

static void
reader_init(struct test_reader *r, const uint8_t *const *expect,
	    const size_t *expect_len, size_t n_expect)
{
	memset(r, 0, sizeof *r);
	codec_arena_init(&r->a, TEST_ARENA_CAP);
	r->expect = expect;
	r->expect_len = expect_len;
	r->n_expect = n_expect;
}

static void
reader_fini(struct test_reader *r)
{
	codec_arena_fini(&r->a);
	free(r->buf);
}

/* Decoded frames are re-encoded and compared with what was sent. */
static void
reader_push(struct test_reader *r, const uint8_t *p, size_t n)
{
	if (r->rc < 0)
		return;
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2;
		r->buf = realloc(r->buf, r->cap);
		assert_non_null(r->buf);
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;

	for (;;) {
		Ringmq__Frame *f;
		uint32_t body;
		size_t whole;
		uint8_t *again;
		int rc = frame_length(r->buf, r->len, 1u << 20, &body);

		if (rc == -RMQ_ENEED_MORE)
			return;
		if (rc < 0) {
			r->rc = rc;
			return;
		}
		whole = FRAME_HEADER_BYTES + body;
		if (r->len < whole)
			return;
		rc = codec_decode(&r->a, &test_lim, r->buf + FRAME_HEADER_BYTES,
				  body, &f, NULL);
		if (rc < 0) {
			r->rc = rc;
			return;
		}
		assert_true(r->n_seen < r->n_expect);
		assert_int_equal(codec_encoded_size(f),
				 r->expect_len[r->n_seen]);
		again = malloc(r->expect_len[r->n_seen]);
		assert_non_null(again);
		codec_encode(f, again);
		assert_memory_equal(again, r->expect[r->n_seen],
				    r->expect_len[r->n_seen]);
		free(again);
		r->n_seen++;
		codec_arena_reset(&r->a);
		memmove(r->buf, r->buf + whole, r->len - whole);
		r->len -= whole;
	}
}

static void
test_codec_reader_byte_at_a_time_and_batched(void **state)
{
	uint8_t *enc[N_STREAM];
	size_t enc_len[N_STREAM], ends[N_STREAM], total = 0, i, k;
	uint8_t *stream;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct test_reader r;

	(void)state;
	for (i = 0; i < N_STREAM; i++) {
		enc[i] = encode_frame(build_frame(stream_cases[i], i + 1),
				      &enc_len[i]);
		total += enc_len[i];
		ends[i] = total;
	}
	stream = malloc(total);
	assert_non_null(stream);
	for (i = 0, k = 0; i < N_STREAM; k += enc_len[i], i++)
		memcpy(stream + k, enc[i], enc_len[i]);

	/* All frames in one read. */
	reader_init(&r, (const uint8_t *const *)enc, enc_len, N_STREAM);
	reader_push(&r, stream, total);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n_seen, N_STREAM);
	assert_int_equal(r.len, 0);
	reader_fini(&r);

	/* One byte per read: frame i appears exactly when its last byte
	 * arrives. */
	reader_init(&r, (const uint8_t *const *)enc, enc_len, N_STREAM);
	for (k = 0, i = 0; k < total; k++) {
		reader_push(&r, stream + k, 1);
		if (i < N_STREAM && k + 1 == ends[i])
			i++;
		assert_int_equal(r.rc, 0);
		assert_int_equal(r.n_seen, i);
	}
	assert_int_equal(r.n_seen, N_STREAM);
	reader_fini(&r);

	/* Reads of random sizes, straddling frame boundaries. */
	reader_init(&r, (const uint8_t *const *)enc, enc_len, N_STREAM);
	for (k = 0; k < total;) {
		size_t step = 1 + rng_next(&seed) % 37;

		if (step > total - k)
			step = total - k;
		reader_push(&r, stream + k, step);
		k += step;
	}
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.n_seen, N_STREAM);
	reader_fini(&r);

	/* A bad frame after good ones: the good ones are delivered, the
	 * reader stops at the bad one. */
	{
		static const uint8_t zero[4] = { 0 };
		uint8_t *bad = malloc(total + 4);

		assert_non_null(bad);
		memcpy(bad, stream, ends[1]);
		memcpy(bad + ends[1], zero, 4);
		reader_init(&r, (const uint8_t *const *)enc, enc_len, N_STREAM);
		reader_push(&r, bad, ends[1] + 4);
		assert_int_equal(r.n_seen, 2);
		assert_int_equal(r.rc, -RMQ_EBAD_FRAME);
		reader_fini(&r);
		free(bad);
	}

	for (i = 0; i < N_STREAM; i++)
		free(enc[i]);
	free(stream);
}

/* ------------------------------------------------------------ garbage */

static void
test_codec_rejects_random_bytes(void **state)
{
	uint64_t seed = 0x2545f4914f6cdd1dull;
	struct codec_arena a;
	uint8_t buf[512];
	int i, decoded = 0;

	(void)state;
	codec_arena_init(&a, 256u << 10);
	for (i = 0; i < 20000; i++) {
		size_t len = 1 + rng_next(&seed) % sizeof buf, k;
		Ringmq__Frame *f;
		uint8_t *copy;
		int rc;

		for (k = 0; k < len; k++)
			buf[k] = (uint8_t)rng_next(&seed);
		/* Half the time start with a body tag (fields 10-15 fit in
		 * one byte), so more inputs get past the first field. */
		if (i % 2)
			buf[0] = (uint8_t)((10 + rng_next(&seed) % 6) << 3 | 2);
		copy = dup_bytes(buf, len);
		rc = codec_decode(&a, &test_lim, copy, len, &f, NULL);
		if (rc == 0) {
			decoded++;
			assert_int_not_equal(f->body_case,
					     RINGMQ__FRAME__BODY__NOT_SET);
		} else {
			assert_true(rc == -RMQ_EBAD_FRAME ||
				    rc == -RMQ_EMESSAGE_TOO_LARGE);
			assert_null(f);
		}
		free(copy);
		codec_arena_reset(&a);
	}
	/* Random bytes almost never make a frame; a few may. */
	assert_true(decoded < 20000 / 10);
	codec_arena_fini(&a);
}

static void
test_codec_rejects_malformed_wire(void **state)
{
	static const struct {
		const char *what;
		uint8_t bytes[16];
		size_t len;
	} cases[] = {
		{ "request_id varint cut off", { 0x08, 0x80, 0x80 }, 3 },
		{ "11-byte varint",
		  { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0x01 },
		  12 },
		{ "tag cut off", { 0xe2 }, 1 },
		{ "field number 0", { 0x02, 0x00 }, 2 },
		{ "ping length past the end", { 0x62, 0x05, 0x08, 0x01 }, 4 },
		{ "length varint cut off", { 0x62, 0x80 }, 2 },
		{ "publish as varint", { 0xf0, 0x01, 0x05 }, 3 },
		{ "ack as fixed32", { 0xed, 0x02, 1, 2, 3, 4 }, 6 },
		{ "ping as fixed32", { 0x65, 1, 2, 3, 4 }, 5 },
		{ "ping as fixed64 cut off", { 0x61, 1, 2, 3 }, 4 },
		{ "ping as group start", { 0x63, 0x64 }, 2 },
		{ "group end", { 0x0c }, 1 },
		{ "wire type 6", { 0x0e, 0x00 }, 2 },
		{ "wire type 7", { 0x0f, 0x00 }, 2 },
		{ "packed lease id cut off",
		  { 0xea, 0x02, 0x03, 0x0a, 0x01, 0x80 },
		  6 },
		{ "lease id as fixed64",
		  { 0xea, 0x02, 0x09, 0x09, 1, 2, 3, 4, 5, 6, 7, 8 },
		  12 },
		{ "message as varint in publish",
		  { 0xf2, 0x01, 0x05, 0x0a, 0x01, 'q', 0x10, 0x01 },
		  8 },
		{ "headers as varint in message",
		  { 0xf2, 0x01, 0x09, 0x0a, 0x01, 'q', 0x12, 0x04, 0x0a, 0x00,
		    0x18, 0x01 },
		  12 },
		{ "hello missing required version", { 0x52, 0x00 }, 2 },
		{ "only a request id, no body", { 0x08, 0x07 }, 2 },
		{ "string field as varint",
		  { 0xa2, 0x01, 0x02, 0x08, 0x01 },
		  5 },
		/* protobuf-c accepts these and re-encodes them as something
		 * it then refuses (found by fuzz_frame). */
		{ "field 0 in a sub-message, tag not minimal",
		  { 0x6a, 0x04, 0x80, 0x80, 0x00, 0x01 },
		  6 },
		{ "field 2^29 in a sub-message",
		  { 0x6a, 0x06, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00 },
		  8 },
		/* A C string would silently end at the NUL. */
		{ "string with a NUL",
		  { 0xaa, 0x01, 0x05, 0x0a, 0x03, 'a', 0x00, 'b' },
		  8 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = decode_raw(cases[i].bytes, cases[i].len,
				    TEST_ARENA_CAP);

		if (rc != -RMQ_EBAD_FRAME)
			fail_msg("%s: got %d", cases[i].what, rc);
	}
}

/* A Publish of n messages, each with h headers, as a frame body. */
static uint8_t *
publish_body(size_t n, size_t h, size_t *len)
{
	Ringmq__Header hdr = RINGMQ__HEADER__INIT;
	Ringmq__Header **hs = calloc(h ? h : 1, sizeof *hs);
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Message **ms = calloc(n ? n : 1, sizeof *ms);
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	uint8_t *buf, *body;
	size_t k, total;

	assert_non_null(hs);
	assert_non_null(ms);
	hdr.name = "h";
	for (k = 0; k < h; k++)
		hs[k] = &hdr;
	m.n_headers = h;
	m.headers = hs;
	for (k = 0; k < n; k++)
		ms[k] = &m;
	p.queue = "q";
	p.n_messages = n;
	p.messages = ms;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	buf = encode_frame(&f, &total);
	body = dup_bytes(buf + 4, total - 4);
	*len = total - 4;
	free(buf);
	free(hs);
	free(ms);
	return body;
}

static void
test_codec_rejects_publish_over_batch_count(void **state)
{
	uint8_t *body, twice[8192];
	size_t len, n2 = 0;

	(void)state;
	body = publish_body(test_lim.max_batch_count, 1, &len);
	assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP), 0);
	free(body);
	body = publish_body(test_lim.max_batch_count + 1, 1, &len);
	assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP),
			 -RMQ_EMESSAGE_TOO_LARGE);
	free(body);

	/* The publish field twice, each half full plus one: every copy is
	 * allocated, so the counts add up. */
	body = publish_body(test_lim.max_batch_count / 2 + 1, 0, &len);
	assert_true(2 * len <= sizeof twice);
	memcpy(twice, body, len);
	memcpy(twice + len, body, len);
	n2 = 2 * len;
	assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP), 0);
	assert_int_equal(decode_raw(twice, n2, TEST_ARENA_CAP),
			 -RMQ_EMESSAGE_TOO_LARGE);
	free(body);
}

static void
test_codec_rejects_message_with_too_many_headers(void **state)
{
	uint8_t *body;
	size_t len;

	(void)state;
	body = publish_body(2, test_lim.max_header_count, &len);
	assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP), 0);
	free(body);
	body = publish_body(2, test_lim.max_header_count + 1, &len);
	assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP),
			 -RMQ_EMESSAGE_TOO_LARGE);
	free(body);
}

/* Headers are counted in every Message, not only in a Publish: a pushed
 * Delivery sent to the broker costs the same to unpack. */
static void
test_codec_counts_headers_in_every_message(void **state)
{
	Ringmq__Header hdr = RINGMQ__HEADER__INIT;
	Ringmq__Header *hs[17];
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Delivery dv = RINGMQ__DELIVERY__INIT;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	uint8_t *buf;
	size_t len, k;

	(void)state;
	assert_true(test_lim.max_header_count + 1 <= 17);
	hdr.name = "h";
	for (k = 0; k < 17; k++)
		hs[k] = &hdr;
	m.headers = hs;
	dv.message = &m;
	f.body_case = RINGMQ__FRAME__BODY_DELIVERY;
	f.delivery = &dv;
	m.n_headers = test_lim.max_header_count;
	buf = encode_frame(&f, &len);
	assert_int_equal(decode_raw(buf + 4, len - 4, TEST_ARENA_CAP), 0);
	free(buf);
	m.n_headers = test_lim.max_header_count + 1;
	buf = encode_frame(&f, &len);
	assert_int_equal(decode_raw(buf + 4, len - 4, TEST_ARENA_CAP),
			 -RMQ_EMESSAGE_TOO_LARGE);
	free(buf);
}

/* An Ack/Nack/Release/Touch body with n ids, `packed` of them in one
 * packed run and the rest one field each. */
static uint8_t *
lease_body(uint32_t body_case, size_t n, size_t packed, size_t *len)
{
	uint8_t *list = malloc(n * 10 + 1), *inner = malloc(n * 12 + 16);
	uint8_t *body = malloc(n * 12 + 32);
	size_t nl = 0, ni = 0, nb = 0, k;

	assert_non_null(list);
	assert_non_null(inner);
	assert_non_null(body);
	for (k = 0; k < packed; k++)
		put_varint(list, &nl, 1000 + k);
	if (packed > 0)
		put_len_field(inner, &ni, 1, list, nl);
	for (k = packed; k < n; k++) {
		put_tag(inner, &ni, 1, 0);
		put_varint(inner, &ni, 1000 + k);
	}
	put_len_field(body, &nb, body_case, inner, ni);
	free(list);
	free(inner);
	*len = nb;
	return body;
}

static void
test_codec_rejects_lease_ids_over_batch_count(void **state)
{
	static const uint32_t bodies[] = {
		RINGMQ__FRAME__BODY_ACK,
		RINGMQ__FRAME__BODY_NACK,
		RINGMQ__FRAME__BODY_RELEASE,
		RINGMQ__FRAME__BODY_TOUCH,
	};
	const size_t max = test_lim.max_batch_count;
	size_t i, len;
	uint8_t *body;

	(void)state;
	for (i = 0; i < 4; i++) {
		/* packed, unpacked, and a mix of both */
		const size_t packed[] = { max, 0, max / 2 };
		const size_t packed_over[] = { max + 1, 0, max / 2 };
		size_t j;

		for (j = 0; j < 3; j++) {
			body = lease_body(bodies[i], max, packed[j], &len);
			assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP),
					 0);
			free(body);
			body = lease_body(bodies[i], max + 1, packed_over[j],
					  &len);
			assert_int_equal(decode_raw(body, len, TEST_ARENA_CAP),
					 -RMQ_EMESSAGE_TOO_LARGE);
			free(body);
		}
	}
}

/* Over a count, a well-formed frame is reported with what and which
 * limit, so the broker can refuse that request alone; the scan goes on to
 * the end, and a malformed tail makes it a bad frame (which closes). */
static void
test_codec_over_limit_names_it_and_bad_tail_wins(void **state)
{
	struct codec_arena a;
	struct codec_over over;
	Ringmq__Frame *f;
	size_t len;
	uint8_t *body, *bad;

	(void)state;
	codec_arena_init(&a, TEST_ARENA_CAP);
	body = lease_body(RINGMQ__FRAME__BODY_ACK, test_lim.max_batch_count + 2,
			  0, &len);
	memset(&over, 0, sizeof(over));
	assert_int_equal(codec_decode(&a, &test_lim, body, len, &f, &over),
			 -RMQ_EMESSAGE_TOO_LARGE);
	assert_null(f);
	assert_string_equal(over.limit, "max_batch_count");
	assert_string_equal(over.request, "Ack");
	assert_int_equal(over.count, test_lim.max_batch_count + 2);
	assert_int_equal(over.max, test_lim.max_batch_count);

	/* The same with a truncated field at the end. */
	bad = malloc(len + 2);
	assert_non_null(bad);
	memcpy(bad, body, len);
	bad[len] = 0x0a;     /* field 1, length-delimited ... */
	bad[len + 1] = 0x05; /* ... of 5 bytes that are not there */
	assert_int_equal(codec_decode(&a, &test_lim, bad, len + 2, &f, &over),
			 -RMQ_EBAD_FRAME);
	free(bad);
	free(body);
	codec_arena_fini(&a);
}

/* -------------------------------------------------------------- arena */

static void
test_codec_arena_cap_gives_bad_frame(void **state)
{
	const size_t cap = 16u << 10;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Message *ms[1] = { &m };
	Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *out = NULL;
	struct codec_arena a;
	uint8_t *payload = calloc(cap, 1), *buf;
	size_t len;

	(void)state;
	assert_non_null(payload);
	p.queue = "q";
	p.n_messages = 1;
	p.messages = ms;
	m.payload.data = payload;
	m.payload.len = cap; /* the copy alone exceeds the cap */
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &p;
	buf = encode_frame(&f, &len);

	codec_arena_init(&a, cap);
	assert_int_equal(
		codec_decode(&a, &test_lim, buf + 4, len - 4, &out, NULL),
		-RMQ_EBAD_FRAME);
	assert_null(out);
	assert_true(a.used_bytes <= a.cap_bytes);
	free(buf);

	/* The arena is usable again after a reset. */
	codec_arena_reset(&a);
	m.payload.len = 100;
	buf = encode_frame(&f, &len);
	assert_int_equal(
		codec_decode(&a, &test_lim, buf + 4, len - 4, &out, NULL), 0);
	assert_int_equal(out->publish->messages[0]->payload.len, 100);
	codec_arena_fini(&a);
	free(buf);
	free(payload);
}

static void
test_codec_arena_alloc_aligns_and_caps(void **state)
{
	struct codec_arena a;
	ProtobufCAllocator *al = &a.allocator;
	size_t sizes[] = { 0, 1, 3, 15, 16, 17, 100, 70000, 1, 300000 };
	size_t i;
	void *p;

	(void)state;
	codec_arena_init(&a, 1u << 20);
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		p = al->alloc(al->allocator_data, sizes[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		memset(p, 0xa5, sizes[i]);
		al->free(al->allocator_data, p);
		assert_true(a.used_bytes <= a.cap_bytes);
	}
	assert_null(al->alloc(al->allocator_data, SIZE_MAX));
	assert_null(al->alloc(al->allocator_data, (1u << 20) + 1));
	/* Fill up to the cap exactly, then one byte more fails. */
	while (a.cap_bytes - a.used_bytes >= 64)
		assert_non_null(al->alloc(al->allocator_data, 1));
	assert_null(
		al->alloc(al->allocator_data, a.cap_bytes - a.used_bytes + 1));
	codec_arena_reset(&a);
	assert_int_equal(a.used_bytes, 0);
	codec_arena_reset(&a);
	codec_arena_fini(&a);
	codec_arena_fini(&a); /* idempotent */
}

/* After a reset the first chunk is reused: many decode/reset cycles, small
 * and large, leave the arena where it was and the heap no bigger. */
static void
test_codec_arena_reset_reuses_memory(void **state)
{
	struct codec_arena a;
	Ringmq__Frame *out;
	uint8_t *small, *large;
	size_t small_len, large_len, used_small;
	void *first;
	size_t heap_before;
	int i;

	(void)state;
	small = encode_frame(build_frame(RINGMQ__FRAME__BODY_PUBLISH, 1),
			     &small_len);
	{
		Ringmq__Message m = RINGMQ__MESSAGE__INIT;
		Ringmq__Message *ms[1] = { &m };
		Ringmq__Publish p = RINGMQ__PUBLISH__INIT;
		Ringmq__Frame f = RINGMQ__FRAME__INIT;
		uint8_t *payload = calloc(300000, 1);

		assert_non_null(payload);
		m.payload.data = payload;
		m.payload.len = 300000; /* needs chunks beyond the first */
		p.queue = "q";
		p.n_messages = 1;
		p.messages = ms;
		f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
		f.publish = &p;
		large = encode_frame(&f, &large_len);
		free(payload);
	}

	codec_arena_init(&a, TEST_ARENA_CAP);
	assert_int_equal(codec_decode(&a, &test_lim, small + 4, small_len - 4,
				      &out, NULL),
			 0);
	used_small = a.used_bytes;
	codec_arena_reset(&a);
	first = a.chunks;
	assert_non_null(first);
	heap_before = mallinfo2().uordblks;

	for (i = 0; i < 2000; i++) {
		assert_int_equal(codec_decode(&a, &test_lim, small + 4,
					      small_len - 4, &out, NULL),
				 0);
		assert_int_equal(a.used_bytes, used_small);
		assert_ptr_equal(a.chunks, first);
		codec_arena_reset(&a);
		if (i % 100 == 0) {
			assert_int_equal(codec_decode(&a, &test_lim, large + 4,
						      large_len - 4, &out,
						      NULL),
					 0);
			assert_ptr_not_equal(a.chunks, first);
			codec_arena_reset(&a);
		}
		assert_ptr_equal(a.chunks, first);
		assert_int_equal(a.used_bytes, 0);
	}
	/* Exact: every chunk beyond the first went back to the heap. */
	assert_int_equal(mallinfo2().uordblks, heap_before);
	codec_arena_fini(&a);
	assert_null(a.chunks);
	free(small);
	free(large);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_codec_encode_writes_exact_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_round_trips_every_body_type, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_round_trips_publish_with_nul_bytes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_decodes_packed_and_unpacked_lease_ids, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_accepts_unknown_fields, setup, teardown),
		cmocka_unit_test(test_codec_request_id_of_undecodable_frames),
		cmocka_unit_test(
			test_codec_over_limit_names_it_and_bad_tail_wins),
		cmocka_unit_test_setup_teardown(
			test_codec_length_needs_four_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_codec_rejects_len_over_max,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_codec_rejects_zero_length,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_accepts_frame_of_exactly_max, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_every_prefix_needs_more, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_reader_byte_at_a_time_and_batched, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_codec_rejects_random_bytes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_rejects_malformed_wire, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_rejects_publish_over_batch_count, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_rejects_message_with_too_many_headers, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_counts_headers_in_every_message, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_rejects_lease_ids_over_batch_count, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_arena_cap_gives_bad_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_arena_alloc_aligns_and_caps, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_codec_arena_reset_reuses_memory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
