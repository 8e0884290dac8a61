/*
 * Unit tests of libclient's frame decoding (libclient/frame.c): the
 * hand-written decoder of Delivery, PublishOk and LeaseResult frames must
 * give exactly what protobuf-c gives, wherever it accepts a frame, and
 * leave everything else to protobuf-c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "xorshift.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	return xorshift64(&rng_state);
}

/* A value of every size class: small, 32-bit, full 64-bit. */
static uint64_t
rnd_u64(void)
{
	switch (rnd() % 3) {
	case 0: return rnd() % 200;
	case 1: return (uint32_t)rnd();
	default: return rnd();
	}
}

static uint8_t pool[4096];

static void
fill_pool(void)
{
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (uint8_t)rnd();
}

static ProtobufCBinaryData
rnd_bytes(size_t max)
{
	ProtobufCBinaryData b;

	b.len = rnd() % (max + 1);
	b.data = b.len ? pool + rnd() % (sizeof(pool) - b.len) : NULL;
	return b;
}

/* A string of letters (static storage, several live at once). */
static char *
rnd_string(void)
{
	static char bufs[16][40];
	static unsigned next;
	char *s = bufs[next++ % 16];
	size_t n = rnd() % 30;

	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + rnd() % 26);
	s[n] = '\0';
	return s;
}

/* Packs f into a fresh buffer. */
static uint8_t *
pack(const Ringmq__Frame *f, size_t *len)
{
	uint8_t *buf;

	*len = ringmq__frame__get_packed_size(f);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(ringmq__frame__pack(f, buf), *len);
	return buf;
}

static void
assert_bytes_equal(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	assert_int_equal(a->len, b->len);
	assert_true((a->data == NULL) == (b->data == NULL));
	if (a->len)
		assert_memory_equal(a->data, b->data, a->len);
}

static void
assert_str_equal(const char *a, const char *b)
{
	assert_true((a == NULL) == (b == NULL));
	if (a != NULL)
		assert_string_equal(a, b);
}

static void
assert_message_equal(const Ringmq__Message *a, const Ringmq__Message *b)
{
	assert_bytes_equal(&a->payload, &b->payload);
	assert_int_equal(a->has_key, b->has_key);
	if (a->has_key)
		assert_bytes_equal(&a->key, &b->key);
	assert_int_equal(a->n_headers, b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		assert_str_equal(a->headers[i]->name, b->headers[i]->name);
		assert_bytes_equal(&a->headers[i]->value,
				   &b->headers[i]->value);
	}
	assert_int_equal(a->has_deliver_at_ms, b->has_deliver_at_ms);
	assert_int_equal(a->deliver_at_ms, b->deliver_at_ms);
	assert_int_equal(a->has_delay_ms, b->has_delay_ms);
	assert_int_equal(a->delay_ms, b->delay_ms);
	assert_str_equal(a->dedup_id, b->dedup_id);
	assert_int_equal(a->has_partition, b->has_partition);
	assert_int_equal(a->partition, b->partition);
}

/* Both decodes of one frame agree, field by field. */
static void
assert_frame_equal(const Ringmq__Frame *a, const Ringmq__Frame *b)
{
	assert_int_equal(a->has_request_id, b->has_request_id);
	assert_int_equal(a->request_id, b->request_id);
	assert_int_equal(a->body_case, b->body_case);
	switch (a->body_case) {
	case RINGMQ__FRAME__BODY_DELIVERY: {
		const Ringmq__Delivery *x = a->delivery, *y = b->delivery;

		assert_int_equal(x->subscription, y->subscription);
		assert_int_equal(x->lease_id, y->lease_id);
		assert_int_equal(x->partition, y->partition);
		assert_int_equal(x->offset, y->offset);
		assert_int_equal(x->delivery_count, y->delivery_count);
		assert_int_equal(x->lease_remaining_ms, y->lease_remaining_ms);
		assert_int_equal(x->has_publish_ms, y->has_publish_ms);
		assert_int_equal(x->publish_ms, y->publish_ms);
		assert_message_equal(x->message, y->message);
		break;
	}
	case RINGMQ__FRAME__BODY_PUBLISH_OK:
		assert_int_equal(a->publish_ok->n_results,
				 b->publish_ok->n_results);
		for (size_t i = 0; i < a->publish_ok->n_results; i++) {
			const Ringmq__PublishResult *x =
				a->publish_ok->results[i];
			const Ringmq__PublishResult *y =
				b->publish_ok->results[i];

			assert_int_equal(x->code, y->code);
			assert_int_equal(x->has_partition, y->has_partition);
			assert_int_equal(x->partition, y->partition);
			assert_int_equal(x->has_offset, y->has_offset);
			assert_int_equal(x->offset, y->offset);
			assert_int_equal(x->has_duplicate, y->has_duplicate);
			assert_int_equal(x->duplicate, y->duplicate);
			assert_str_equal(x->message, y->message);
		}
		break;
	case RINGMQ__FRAME__BODY_LEASE_RESULT:
		assert_int_equal(a->lease_result->n_codes,
				 b->lease_result->n_codes);
		for (size_t i = 0; i < a->lease_result->n_codes; i++)
			assert_int_equal(a->lease_result->codes[i],
					 b->lease_result->codes[i]);
		assert_int_equal(a->lease_result->n_remaining_ms,
				 b->lease_result->n_remaining_ms);
		for (size_t i = 0; i < a->lease_result->n_remaining_ms; i++)
			assert_int_equal(a->lease_result->remaining_ms[i],
					 b->lease_result->remaining_ms[i]);
		break;
	default:
		/* Another kind (or none): only protobuf-c decodes those, and
		 * only their kind is compared. */
		break;
	}
}

/* Builds a random frame of one of the three kinds and packs it. */
static uint8_t *
random_frame(size_t *len)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Delivery d = RINGMQ__DELIVERY__INIT;
	Ringmq__Message m = RINGMQ__MESSAGE__INIT;
	Ringmq__Header hs[3], *hp[3];
	Ringmq__PublishOk ok = RINGMQ__PUBLISH_OK__INIT;
	Ringmq__PublishResult rs[70], *rp[70];
	Ringmq__LeaseResult lr = RINGMQ__LEASE_RESULT__INIT;
	Ringmq__ErrorCode codes[40];
	uint64_t remaining[40];

	f.has_request_id = rnd() % 2;
	f.request_id = f.has_request_id ? rnd_u64() : 0;
	switch (rnd() % 3) {
	case 0:
		f.body_case = RINGMQ__FRAME__BODY_DELIVERY;
		f.delivery = &d;
		d.subscription = (uint32_t)rnd_u64();
		d.lease_id = rnd_u64();
		d.partition = (uint32_t)rnd_u64();
		d.offset = rnd_u64();
		d.delivery_count = (uint32_t)rnd_u64();
		d.lease_remaining_ms = rnd_u64();
		d.has_publish_ms = rnd() % 2;
		d.publish_ms = d.has_publish_ms ? rnd_u64() : 0;
		d.message = &m;
		m.payload = rnd_bytes(600);
		m.has_key = rnd() % 2;
		if (m.has_key)
			m.key = rnd_bytes(20);
		m.n_headers = rnd() % 4;
		m.headers = m.n_headers ? hp : NULL;
		for (size_t i = 0; i < m.n_headers; i++) {
			ringmq__header__init(&hs[i]);
			hs[i].name = rnd_string();
			hs[i].value = rnd_bytes(30);
			hp[i] = &hs[i];
		}
		m.has_deliver_at_ms = rnd() % 2;
		m.deliver_at_ms = m.has_deliver_at_ms ? rnd_u64() : 0;
		m.has_delay_ms = rnd() % 2;
		m.delay_ms = m.has_delay_ms ? rnd_u64() : 0;
		m.dedup_id = rnd() % 2 ? rnd_string() : NULL;
		m.has_partition = rnd() % 2;
		m.partition = m.has_partition ? (uint32_t)rnd_u64() : 0;
		break;
	case 1:
		f.body_case = RINGMQ__FRAME__BODY_PUBLISH_OK;
		f.publish_ok = &ok;
		ok.n_results = rnd() % 71;
		ok.results = ok.n_results ? rp : NULL;
		for (size_t i = 0; i < ok.n_results; i++) {
			ringmq__publish_result__init(&rs[i]);
			rs[i].code = (Ringmq__ErrorCode)(rnd() % 20);
			rs[i].has_partition = rnd() % 2;
			rs[i].partition = (uint32_t)rnd_u64();
			rs[i].has_offset = rnd() % 2;
			rs[i].offset = rnd_u64();
			rs[i].has_duplicate = rnd() % 2;
			rs[i].duplicate = rnd() % 2;
			rs[i].message = rnd() % 4 == 0 ? rnd_string() : NULL;
			rp[i] = &rs[i];
		}
		break;
	default:
		f.body_case = RINGMQ__FRAME__BODY_LEASE_RESULT;
		f.lease_result = &lr;
		lr.n_codes = rnd() % 41;
		lr.codes = lr.n_codes ? codes : NULL;
		for (size_t i = 0; i < lr.n_codes; i++)
			codes[i] = (Ringmq__ErrorCode)(rnd() % 20);
		lr.n_remaining_ms = rnd() % 41;
		lr.remaining_ms = lr.n_remaining_ms ? remaining : NULL;
		for (size_t i = 0; i < lr.n_remaining_ms; i++)
			remaining[i] = rnd_u64();
		break;
	}
	return pack(&f, len);
}

static void
test_fast_decoder_matches_protobuf_c_on_random_frames(void **state)
{
	(void)state;
	fill_pool();
	for (int i = 0; i < 3000; i++) {
		size_t len;
		uint8_t *buf = random_frame(&len);
		Ringmq__Frame *fast = frame_unpack_fast(buf, len);
		Ringmq__Frame *gen = frame_unpack_generic(buf, len);
		Ringmq__Frame *any = frame_unpack(buf, len);

		assert_non_null(fast); /* what the broker sends: fast path */
		assert_non_null(gen);
		assert_frame_equal(fast, gen);
		assert_frame_equal(any, gen);
		frame_free(fast);
		frame_free(gen);
		frame_free(any);
		free(buf);
	}
}

/* Truncated and corrupted frames: where the fast decoder accepts one,
 * protobuf-c accepts it too and decodes the same; frame_unpack gives
 * protobuf-c's answer either way. */
static void
test_fast_decoder_never_accepts_what_protobuf_c_reads_otherwise(void **state)
{
	unsigned accepted = 0, refused = 0;

	(void)state;
	fill_pool();
	for (int i = 0; i < 600; i++) {
		size_t len;
		uint8_t *buf = random_frame(&len);

		for (int k = 0; k < 40; k++) {
			size_t n = len;
			Ringmq__Frame *fast, *gen, *any;
			uint8_t saved = 0;
			size_t at = 0;

			if (k < 20) {
				n = len ? rnd() % len : 0; /* truncated */
			} else if (len > 0) {
				at = rnd() % len;
				saved = buf[at];
				buf[at] ^= (uint8_t)(1u << (rnd() % 8));
			}
			fast = frame_unpack_fast(buf, n);
			gen = frame_unpack_generic(buf, n);
			any = frame_unpack(buf, n);
			assert_true((any == NULL) == (gen == NULL));
			if (gen != NULL)
				assert_frame_equal(any, gen);
			if (fast != NULL) {
				assert_non_null(gen);
				assert_frame_equal(fast, gen);
				accepted++;
			} else {
				refused++;
			}
			frame_free(fast);
			frame_free(gen);
			frame_free(any);
			if (k >= 20 && len > 0)
				buf[at] = saved;
		}
		free(buf);
	}
	/* Both outcomes were exercised. */
	assert_true(accepted > 100);
	assert_true(refused > 100);
}

/* A packed repeated field (which protobuf-c also reads for proto2) and an
 * unknown field: the first is decoded, the second left to protobuf-c. */
static void
test_fast_decoder_reads_packed_codes_and_skips_unknown_fields(void **state)
{
	/* Frame{request_id: 7, lease_result{codes: [0, 8] packed,
	 * remaining_ms: 300}} */
	static const uint8_t packed[] = { 0x08, 0x07, 0x8a, 0x03, 0x07, 0x0a,
					  0x02, 0x00, 0x08, 0x10, 0xac, 0x02 };
	/* Frame{request_id: 7, field 900: varint 1} */
	static const uint8_t unknown[] = { 0x08, 0x07, 0xa0, 0x38, 0x01 };
	Ringmq__Frame *fast = frame_unpack_fast(packed, sizeof(packed));
	Ringmq__Frame *gen = frame_unpack_generic(packed, sizeof(packed));

	(void)state;
	assert_non_null(fast);
	assert_non_null(gen);
	assert_frame_equal(fast, gen);
	assert_int_equal(fast->lease_result->n_codes, 2);
	assert_int_equal(fast->lease_result->codes[1], 8);
	assert_int_equal(fast->lease_result->remaining_ms[0], 300);
	frame_free(fast);
	frame_free(gen);
	assert_null(frame_unpack_fast(unknown, sizeof(unknown)));
	gen = frame_unpack(unknown, sizeof(unknown));
	assert_non_null(gen); /* protobuf-c keeps it as an unknown field */
	assert_int_equal(gen->request_id, 7);
	frame_free(gen);
}

/* Frames of other kinds go to protobuf-c. */
static void
test_other_frames_are_left_to_protobuf_c(void **state)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Error e = RINGMQ__ERROR__INIT;
	Ringmq__Frame *got;
	uint8_t *buf;
	size_t len;

	(void)state;
	f.has_request_id = 1;
	f.request_id = 5;
	f.body_case = RINGMQ__FRAME__BODY_ERROR;
	f.error = &e;
	e.code = RINGMQ__ERROR_CODE__QUEUE_NOT_FOUND;
	e.message = "queue jobs: queue not found";
	buf = pack(&f, &len);
	assert_null(frame_unpack_fast(buf, len));
	got = frame_unpack(buf, len);
	assert_non_null(got);
	assert_int_equal(got->body_case, RINGMQ__FRAME__BODY_ERROR);
	assert_string_equal(got->error->message, e.message);
	frame_free(got);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_fast_decoder_matches_protobuf_c_on_random_frames),
		cmocka_unit_test(
			test_fast_decoder_never_accepts_what_protobuf_c_reads_otherwise),
		cmocka_unit_test(
			test_fast_decoder_reads_packed_codes_and_skips_unknown_fields),
		cmocka_unit_test(test_other_frames_are_left_to_protobuf_c),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
