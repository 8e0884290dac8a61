/*
 * fuzz_client_frame: arbitrary bytes through libclient's frame decoders
 * (libclient/frame.c), differentially. Whatever the hand-written decoder
 * of Delivery, PublishOk and LeaseResult frames accepts, protobuf-c must
 * accept too and read the same: both results are encoded again and must
 * give the same bytes. frame_unpack, which picks between the two, must
 * agree with protobuf-c on whether the input is a frame at all.
 *
 * Built with -Dfuzzing=true this is a libFuzzer target; otherwise
 * replay.c's main() replays the corpus in corpus-client/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_client_frame: %s\n", what);
	abort();
}

/* f encoded into an exact-size buffer (so ASan sees overruns). */
static uint8_t *
encode(const Ringmq__Frame *f, size_t *len)
{
	uint8_t *buf;

	*len = ringmq__frame__get_packed_size(f);
	buf = malloc(*len ? *len : 1);
	if (buf == NULL)
		fuzz_fail("out of memory");
	if (ringmq__frame__pack(f, buf) != *len)
		fuzz_fail("pack wrote other than get_packed_size");
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Ringmq__Frame *fast = frame_unpack_fast(data, size);
	Ringmq__Frame *gen = frame_unpack_generic(data, size);
	Ringmq__Frame *any = frame_unpack(data, size);

	if ((any == NULL) != (gen == NULL))
		fuzz_fail("frame_unpack and protobuf-c disagree on success");
	if (fast != NULL) {
		uint8_t *a, *b;
		size_t alen, blen;

		if (gen == NULL)
			fuzz_fail("the hand decoder accepted what protobuf-c "
				  "rejects");
		a = encode(fast, &alen);
		b = encode(gen, &blen);
		if (alen != blen || memcmp(a, b, alen) != 0)
			fuzz_fail(
				"the hand decoder read other than protobuf-c");
		free(a);
		free(b);
	}
	frame_free(fast);
	frame_free(gen);
	frame_free(any);
	return 0;
}
