/*
 * codec: bytes <-> frames. Pure: no I/O, no globals.
 *
 * A frame on the wire is a 4-byte big-endian length N and N bytes of one
 * protobuf Ringmq__Frame (proto/ringmq.proto). Decoding allocates from a
 * per-connection arena (protobuf-c copies every sub-message and bytes
 * field), reset after each frame, with a hard cap so a small frame cannot
 * make the broker allocate without bound. Repeated fields that drive
 * allocation (Publish.messages, Message.headers, lease id lists) are counted
 * in the raw bytes and checked against limits before unpacking.
 */
#ifndef RINGMQ_CODEC_H
#define RINGMQ_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "net/frame.h"
#include "ringmq.pb-c.h"

/* A bump allocator for protobuf-c unpacking. Embed it; _init/_fini. The
 * allocator points back at the struct: it must not move in between. */
struct codec_arena {
	ProtobufCAllocator allocator; /* hands out memory from the chunks */
	void *chunks;		      /* owned: singly linked chunk list */
	size_t used_bytes;	      /* across chunks since the last reset */
	size_t cap_bytes;	      /* allocations beyond this fail */
};

/* Limits checked before unpacking. */
struct codec_limits {
	uint32_t max_frame_bytes;  /* N above this: -RMQ_EMESSAGE_TOO_LARGE */
	uint32_t max_batch_count;  /* messages per publish, ids per ack/... */
	uint32_t max_header_count; /* headers per message */
};

void codec_arena_init(struct codec_arena *a, size_t cap_bytes);
/* Frees all chunks but the first; everything decoded from it dies. */
void codec_arena_reset(struct codec_arena *a);
/* Frees every chunk; the arena stays usable (chunks come back on demand). */
void codec_arena_fini(struct codec_arena *a);

/* Which count limit a well-formed frame is over (codec_decode). */
struct codec_over {
	const char *what;    /* static: "lease ids", ... */
	const char *request; /* static: "Ack", ...; NULL but for lease ids */
	const char *limit;   /* static: the HelloOk field, "max_batch_count" */
	uint64_t count;	     /* how many the frame holds */
	uint32_t max;	     /* the limit */
};

/* The request_id of a frame that did not decode, so that its error can
 * echo it: the last one among its top-level fields, 0 if none or if the
 * frame is malformed before it ends. */
uint64_t codec_request_id(const uint8_t *body, size_t len);

/*
 * Decodes one frame body (the N bytes after the prefix).
 * @param[out] out   the frame, allocated from a; valid until the next
 *                   codec_arena_reset. NULL on failure.
 * @param[out] over  may be NULL; filled when -RMQ_EMESSAGE_TOO_LARGE.
 * @return 0; -RMQ_EBAD_FRAME if the bytes do not decode (this includes
 *         field number 0 and strings holding a NUL, which protobuf-c would
 *         not give back intact), the body is not set, or the arena cap is
 *         hit; -RMQ_EMESSAGE_TOO_LARGE when the frame is well formed but a
 *         counted repeated field is over its limit (headers are counted
 *         in every Message): nothing was unpacked, and the request can be
 *         refused alone.
 */
int codec_decode(struct codec_arena *a, const struct codec_limits *lim,
		 const uint8_t *body, size_t len, Ringmq__Frame **out,
		 struct codec_over *over);

/* Bytes codec_encode writes for f: prefix plus packed body. */
size_t codec_encoded_size(const Ringmq__Frame *f);

/* Writes prefix and body to out, which holds codec_encoded_size(f) bytes.
 * @return bytes written. */
size_t codec_encode(const Ringmq__Frame *f, uint8_t *out);

/*
 * Maps a broker return code (0, -RMQ_E*, -errno) to the wire's ErrorCode
 * value (RINGMQ__ERROR_CODE__*): the one place that does. Private and
 * system codes become INTERNAL.
 */
int err_to_wire(int rc);

#endif
