/*
 * fuzz_frame: arbitrary bytes through the frame reader.
 *
 * The input is read as conn reads a socket: length prefix, wait for the
 * whole frame, decode with a capped arena, reset, next frame; the first
 * error ends the "connection". Every frame that decodes is encoded again
 * and must decode again to the same bytes. The whole input is also decoded
 * as one body, so mutations of protobuf bytes reach the decoder without
 * having to keep a length prefix consistent.
 *
 * Built with -Dfuzzing=true this is a libFuzzer target; otherwise
 * replay.c's main() replays every file of a corpus directory, so each
 * input that once crashed stays a regression test in the default run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "req/codec.h"

/* Small limits, so that inputs of a few KiB reach every limit check. */
static const struct codec_limits fuzz_lim = {
	.max_frame_bytes = 64u << 10,
	.max_batch_count = 64,
	.max_header_count = 16,
};
#define FUZZ_ARENA_CAP (256u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A finding: abort so libFuzzer (or the replay) reports the input. */
static void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_frame: %s\n", what);
	abort();
}

static void
check_decode_rc(int rc)
{
	if (rc != 0 && rc != -RMQ_EBAD_FRAME && rc != -RMQ_EMESSAGE_TOO_LARGE)
		fuzz_fail("decode returned an unexpected code");
}

/* Encodes f into an exact-size buffer (so ASan sees overruns). */
static uint8_t *
encode(const Ringmq__Frame *f, size_t *len)
{
	size_t n = codec_encoded_size(f);
	uint8_t *buf = malloc(n);

	if (buf == NULL)
		fuzz_fail("out of memory");
	if (codec_encode(f, buf) != n)
		fuzz_fail("codec_encode wrote other than codec_encoded_size");
	*len = n;
	return buf;
}

/* encode(f) decodes, and encodes to the same bytes again. */
static void
check_round_trip(const Ringmq__Frame *f)
{
	struct codec_arena a;
	Ringmq__Frame *g;
	uint8_t *first, *second;
	size_t n1, n2;
	uint32_t body;

	first = encode(f, &n1);
	if (frame_length(first, n1, UINT32_MAX, &body) != 0 ||
	    (size_t)body + FRAME_HEADER_BYTES != n1)
		fuzz_fail("encoded prefix does not match the body");
	/* Re-encoding may unpack a packed id list, which needs a little more
	 * room in protobuf-c's scan: twice the cap is ample. */
	codec_arena_init(&a, 2 * FUZZ_ARENA_CAP);
	if (codec_decode(&a, &fuzz_lim, first + FRAME_HEADER_BYTES, body, &g,
			 NULL) != 0)
		fuzz_fail("an encoded frame does not decode");
	if (g->body_case != f->body_case)
		fuzz_fail("body changed in the round trip");
	second = encode(g, &n2);
	if (n2 != n1 || memcmp(first, second, n1) != 0)
		fuzz_fail("encode(decode(encode(f))) != encode(f)");
	free(second);
	codec_arena_fini(&a);
	free(first);
}

/* What conn does with the bytes of one connection. */
static void
read_stream(struct codec_arena *a, const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		Ringmq__Frame *f;
		uint32_t body;
		int rc = frame_length(data + off, size - off,
				      fuzz_lim.max_frame_bytes, &body);

		if (rc == -RMQ_ENEED_MORE)
			return;
		if (rc < 0) {
			check_decode_rc(rc);
			return;
		}
		if (size - off - FRAME_HEADER_BYTES < body)
			return; /* would wait for more */
		rc = codec_decode(a, &fuzz_lim, data + off + FRAME_HEADER_BYTES,
				  body, &f, NULL);
		check_decode_rc(rc);
		if (rc < 0)
			return; /* the connection is closed */
		check_round_trip(f);
		codec_arena_reset(a);
		off += FRAME_HEADER_BYTES + body;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct codec_arena a;
	Ringmq__Frame *f;
	int rc;

	codec_arena_init(&a, FUZZ_ARENA_CAP);
	read_stream(&a, data, size);
	codec_arena_reset(&a);

	if (size <= fuzz_lim.max_frame_bytes) {
		rc = codec_decode(&a, &fuzz_lim, data, size, &f, NULL);
		check_decode_rc(rc);
		if (rc == 0)
			check_round_trip(f);
	}
	codec_arena_fini(&a);
	return 0;
}
