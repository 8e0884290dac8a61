/*
 * Unit tests for wire: the hand-encoded Delivery, PublishOk and
 * LeaseResult frames are byte for byte what protobuf-c packs for the same
 * values (a Delivery built from a wire_msg), over random messages (empty
 * and large fields, headers, keys, dedup ids with and without a NUL
 * inside, values that need every varint length) and random result lists,
 * and a Delivery decodes back through the broker's own codec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/err.h"
#include "req/codec.h"
#include "req/wire.h"
#include "xorshift.h"

#define MAX_HEADERS   6
#define ROUNDS	      20000
#define BUF_BYTES     (1u << 20)
#define BLOCK_BYTES   4096
#define FIELD_BYTES   600
#define PAYLOAD_BYTES 70000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(uint64_t n)
{
	return n == 0 ? 0 : xorshift64(&rng) % n;
}

/* A value whose varint takes 1 to 10 bytes, or an edge of a length. */
static uint64_t
rnd_uint(void)
{
	static const uint64_t edges[] = {
		0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX
	};

	if (rnd(4) == 0)
		return edges[rnd(sizeof(edges) / sizeof(edges[0]))];
	return xorshift64(&rng) >> rnd(64);
}

static void
fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)xorshift64(&rng);
}

/* A length: often 0 or small, sometimes up to max. */
static size_t
rnd_len(size_t max)
{
	switch (rnd(4)) {
	case 0: return 0;
	case 1: return rnd(8);
	default: return rnd(max + 1);
	}
}

/* Appends a header to a raw header block (2-byte name length, name,
 * 4-byte value length, value, big-endian). */
static size_t
put_header(uint8_t *block, size_t at, const uint8_t *name, size_t name_len,
	   const uint8_t *value, size_t value_len)
{
	block[at++] = (uint8_t)(name_len >> 8);
	block[at++] = (uint8_t)name_len;
	memcpy(block + at, name, name_len);
	at += name_len;
	for (int s = 24; s >= 0; s -= 8)
		block[at++] = (uint8_t)(value_len >> s);
	memcpy(block + at, value, value_len);
	return at + value_len;
}

/* What the delivery path sent before the hand encoder: protobuf-c's packing of
 * a Frame built from a wire_msg. */
static size_t
encode_with_protobuf(const struct delivery *d, const struct store_msg_view *v,
		     uint8_t *out)
{
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__Delivery del = RINGMQ__DELIVERY__INIT;
	struct wire_msg w;
	size_t n;

	assert_int_equal(wire_msg_init(&w, v), 0);
	del.subscription = d->subscription;
	del.lease_id = d->lease_id;
	del.partition = d->partition;
	del.offset = d->offset;
	del.delivery_count = d->delivery_count;
	del.lease_remaining_ms = d->lease_remaining_ms;
	del.message = &w.m;
	del.has_publish_ms = 1;
	del.publish_ms = v->publish_ms;
	r.body_case = RINGMQ__FRAME__BODY_DELIVERY;
	r.delivery = &del;
	assert_true(codec_encoded_size(&r) <= BUF_BYTES);
	n = codec_encode(&r, out);
	wire_msg_fini(&w);
	return n;
}

static void
test_delivery_matches_protobuf_c(void **state)
{
	uint8_t *want = malloc(BUF_BYTES);
	uint8_t *got = malloc(BUF_BYTES);
	uint8_t *payload = malloc(PAYLOAD_BYTES);
	uint8_t key[FIELD_BYTES], dedup[FIELD_BYTES], block[BLOCK_BYTES];
	uint8_t name[FIELD_BYTES], value[FIELD_BYTES];

	(void)state;
	assert_non_null(want);
	assert_non_null(got);
	assert_non_null(payload);
	for (int round = 0; round < ROUNDS; round++) {
		struct delivery d = {
			.subscription = (uint32_t)rnd_uint(),
			.lease_id = rnd_uint(),
			.partition = (uint32_t)rnd_uint(),
			.offset = rnd_uint(),
			.delivery_count = (uint32_t)rnd_uint(),
			.lease_remaining_ms = rnd_uint(),
		};
		struct store_msg_view v = { 0 };
		size_t nh = rnd(MAX_HEADERS + 1), block_len = 0;
		size_t want_len, got_len;

		v.publish_ms = rnd_uint();
		v.deliver_at_ms = rnd(2) ? rnd_uint() : 0;
		v.payload_len = (uint32_t)rnd_len(rnd(8) == 0 ? PAYLOAD_BYTES
							      : FIELD_BYTES);
		fill(payload, v.payload_len);
		v.payload = payload;
		v.key_len = (uint32_t)rnd_len(sizeof(key));
		fill(key, v.key_len);
		v.key = key;
		/* Stored dedup ids and names may hold a NUL: C strings end
		 * there on the wire. */
		v.dedup_len = (uint16_t)rnd_len(sizeof(dedup) - 1);
		fill(dedup, v.dedup_len);
		for (size_t i = 0; rnd(2) && i < v.dedup_len; i++)
			if (dedup[i] == 0)
				dedup[i] = 'x';
		v.dedup_id = dedup;
		for (size_t h = 0; h < nh; h++) {
			size_t nl = rnd_len(60), vl = rnd_len(500);

			fill(name, nl);
			for (size_t i = 0; rnd(2) && i < nl; i++)
				if (name[i] == 0)
					name[i] = 'n';
			fill(value, vl);
			if (block_len + 6 + nl + vl > sizeof(block))
				break;
			block_len = put_header(block, block_len, name, nl,
					       value, vl);
		}
		v.headers = block;
		v.headers_len = (uint32_t)block_len;

		want_len = encode_with_protobuf(&d, &v, want);
		got_len = wire_delivery_size(&d, &v);
		assert_int_equal(got_len, want_len);
		memset(got, 0xa5, got_len + 1);
		assert_int_equal(wire_delivery_encode(&d, &v, got), want_len);
		assert_memory_equal(got, want, want_len);
		/* Nothing written past the size it announced. */
		assert_int_equal(got[got_len], 0xa5);
	}
	free(want);
	free(got);
	free(payload);
}

/* What published() sent before the hand encoder. */
static size_t
publish_ok_with_protobuf(uint64_t request_id, const struct publish_result *res,
			 size_t n, uint8_t *out)
{
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__PublishOk ok = RINGMQ__PUBLISH_OK__INIT;
	Ringmq__PublishResult *rs = calloc(n + 1, sizeof(*rs));
	Ringmq__PublishResult **ptrs = calloc(n + 1, sizeof(*ptrs));
	size_t len;

	assert_non_null(rs);
	assert_non_null(ptrs);
	for (size_t i = 0; i < n; i++) {
		ringmq__publish_result__init(&rs[i]);
		rs[i].code = (Ringmq__ErrorCode)err_to_wire(res[i].code);
		if (res[i].code == 0) {
			rs[i].has_partition = rs[i].has_offset = 1;
			rs[i].partition = res[i].partition;
			rs[i].offset = res[i].offset;
			rs[i].has_duplicate = res[i].is_duplicate;
			rs[i].duplicate = res[i].is_duplicate;
		} else {
			rs[i].message = (char *)res[i].why;
		}
		ptrs[i] = &rs[i];
	}
	ok.n_results = n;
	ok.results = ptrs;
	r.has_request_id = 1;
	r.request_id = request_id;
	r.body_case = RINGMQ__FRAME__BODY_PUBLISH_OK;
	r.publish_ok = &ok;
	assert_true(codec_encoded_size(&r) <= BUF_BYTES);
	len = codec_encode(&r, out);
	free(rs);
	free(ptrs);
	return len;
}

/* What send_lease_result() sent before the hand encoder. */
static size_t
lease_result_with_protobuf(uint64_t request_id, const int *codes,
			   const uint64_t *remaining_ms, size_t n, uint8_t *out)
{
	Ringmq__Frame r = RINGMQ__FRAME__INIT;
	Ringmq__LeaseResult lr = RINGMQ__LEASE_RESULT__INIT;
	Ringmq__ErrorCode *wire = calloc(n + 1, sizeof(*wire));
	size_t len;

	assert_non_null(wire);
	for (size_t i = 0; i < n; i++)
		wire[i] = (Ringmq__ErrorCode)err_to_wire(codes[i]);
	lr.n_codes = n;
	lr.codes = wire;
	if (remaining_ms) {
		lr.n_remaining_ms = n;
		lr.remaining_ms = (uint64_t *)remaining_ms;
	}
	r.has_request_id = 1;
	r.request_id = request_id;
	r.body_case = RINGMQ__FRAME__BODY_LEASE_RESULT;
	r.lease_result = &lr;
	len = codec_encode(&r, out);
	free(wire);
	return len;
}

/* A code: OK most often, else any of the protocol's. */
static int
rnd_code(void)
{
	return rnd(3) ? RINGMQ__ERROR_CODE__OK
		      : (int)rnd(ringmq__error_code__descriptor.n_values);
}

/* A lease code as the core gives it: 0 or a negative broker code of one
 * of the wire's codes. */
static int
rnd_broker_code(void)
{
	int w = rnd_code() % RINGMQ__ERROR_CODE__WOULD_BLOCK;

	return w == 0 ? 0 : -(RMQ_EBASE + w);
}

/* Both answers, over random result lists (empty ones included). */
static void
test_answers_match_protobuf_c(void **state)
{
	static const char *const whys[] = { NULL, "", "queue is full",
					    "a reason with \"quotes\"" };
	uint8_t *want = malloc(BUF_BYTES);
	uint8_t *got = malloc(BUF_BYTES);
	struct publish_result res[300];
	int codes[300];
	uint64_t remaining[300];

	(void)state;
	assert_non_null(want);
	assert_non_null(got);
	for (int round = 0; round < ROUNDS / 4; round++) {
		uint64_t request_id = rnd_uint();
		size_t n = rnd_len(sizeof(res) / sizeof(res[0]));
		const uint64_t *rem = rnd(2) ? remaining : NULL;
		size_t want_len, got_len;

		memset(res, 0, sizeof(res));
		for (size_t i = 0; i < n; i++) {
			res[i].code = rnd_broker_code();
			res[i].partition = (uint32_t)rnd_uint();
			res[i].offset = rnd_uint();
			res[i].is_duplicate = (int)rnd(2);
			res[i].why = whys[rnd(4)];
			codes[i] = rnd_broker_code();
			remaining[i] = rnd_uint();
		}
		want_len = publish_ok_with_protobuf(request_id, res, n, want);
		got_len = wire_publish_ok_size(request_id, res, n);
		assert_int_equal(got_len, want_len);
		memset(got, 0xa5, got_len + 1);
		assert_int_equal(
			wire_publish_ok_encode(request_id, res, n, got),
			want_len);
		assert_memory_equal(got, want, want_len);
		assert_int_equal(got[got_len], 0xa5);

		want_len = lease_result_with_protobuf(request_id, codes, rem, n,
						      want);
		got_len = wire_lease_result_size(request_id, codes, rem, n);
		assert_int_equal(got_len, want_len);
		memset(got, 0xa5, got_len + 1);
		assert_int_equal(wire_lease_result_encode(request_id, codes,
							  rem, n, got),
				 want_len);
		assert_memory_equal(got, want, want_len);
		assert_int_equal(got[got_len], 0xa5);
	}
	free(want);
	free(got);
}

/* The frame decodes with the broker's codec into the same fields. */
static void
test_delivery_decodes(void **state)
{
	static const uint8_t hdrs[] = { 0, 2, 'i', 'd', 0,  0,
					0, 3, '4', '2', '!' };
	struct delivery d = { .subscription = 7,
			      .lease_id = 1ull << 40,
			      .partition = 3,
			      .offset = 123456789,
			      .delivery_count = 2,
			      .lease_remaining_ms = 30000 };
	struct store_msg_view v = { 0 };
	const struct codec_limits lim = { 1u << 20, 100, 16 };
	struct codec_arena a;
	Ringmq__Frame *f = NULL;
	uint8_t out[256];
	size_t n;

	(void)state;
	v.publish_ms = 1764300000000ull;
	v.deliver_at_ms = 1764300001000ull;
	v.key = "user-1";
	v.key_len = 6;
	v.headers = hdrs;
	v.headers_len = sizeof(hdrs);
	v.dedup_id = "job-9";
	v.dedup_len = 5;
	v.payload = "hello";
	v.payload_len = 5;
	n = wire_delivery_size(&d, &v);
	assert_true(n <= sizeof(out));
	assert_int_equal(wire_delivery_encode(&d, &v, out), n);
	codec_arena_init(&a, 1u << 16);
	assert_int_equal(codec_decode(&a, &lim, out + FRAME_HEADER_BYTES,
				      n - FRAME_HEADER_BYTES, &f, NULL),
			 0);
	assert_int_equal(f->body_case, RINGMQ__FRAME__BODY_DELIVERY);
	assert_int_equal(f->delivery->subscription, 7);
	assert_int_equal(f->delivery->lease_id, 1ull << 40);
	assert_int_equal(f->delivery->offset, 123456789);
	assert_int_equal(f->delivery->delivery_count, 2);
	assert_int_equal(f->delivery->publish_ms, 1764300000000ull);
	assert_int_equal(f->delivery->message->deliver_at_ms, 1764300001000ull);
	assert_memory_equal(f->delivery->message->payload.data, "hello", 5);
	assert_memory_equal(f->delivery->message->key.data, "user-1", 6);
	assert_int_equal(f->delivery->message->n_headers, 1);
	assert_string_equal(f->delivery->message->headers[0]->name, "id");
	assert_memory_equal(f->delivery->message->headers[0]->value.data, "42!",
			    3);
	assert_string_equal(f->delivery->message->dedup_id, "job-9");
	codec_arena_fini(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delivery_matches_protobuf_c),
		cmocka_unit_test(test_delivery_decodes),
		cmocka_unit_test(test_answers_match_protobuf_c),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
