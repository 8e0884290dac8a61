/*
 * codec: bytes <-> frames (4-byte big-endian length + one protobuf Frame).
 *
 * Owns the length prefix, the per-connection arena that protobuf-c unpacks
 * into, and a pre-scan of the raw protobuf wire format, driven by the
 * generated descriptors, that counts the repeated fields driving allocation
 * and refuses what protobuf-c would take but not give back intact, before
 * protobuf-c sees the bytes. What a decoded frame means is left to conn and
 * the handlers.
 *
 * Invariant: nothing here trusts the bytes. Every length is checked against
 * what remains before it is used, every count against its limit before
 * unpacking, and every allocation against the arena's cap, so a hostile
 * frame costs at most cap_bytes and one error code. Pure: no I/O, no
 * globals.
 */
#include "req/codec.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

/*
 * AddressSanitizer cannot see the bounds of allocations carved out of a
 * chunk, so under ASan the arena poisons what it has not handed out and
 * leaves a poisoned gap after each allocation: an overrun inside protobuf-c
 * or a handler then trips ASan as it would with malloc.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CODEC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CODEC_ASAN 1
#endif
#endif

#ifdef CODEC_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_REDZONE_BYTES  16u
#define arena_poison(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define arena_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_REDZONE_BYTES  0u
#define arena_poison(p, n)   ((void)(p), (void)(n))
#define arena_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* Every allocation starts on this boundary: enough for any field type. */
#define ARENA_ALIGN 16u
/* Data bytes of the first chunk, the one kept across resets: a typical
 * request frame fits, so steady state does no malloc at all. */
#define ARENA_FIRST_CHUNK_BYTES (64u * 1024u)

_Static_assert(alignof(max_align_t) >= ARENA_ALIGN,
	       "malloc must return ARENA_ALIGN-aligned memory");

/* A chunk header; its data follows at ARENA_CHUNK_HDR bytes. */
struct arena_chunk {
	struct arena_chunk *next; /* owned by the arena: the older chunk */
	size_t size_bytes;	  /* data bytes after the header */
	size_t used_bytes;	  /* data bytes handed out (bump offset) */
};

#define ARENA_CHUNK_HDR                                   \
	((sizeof(struct arena_chunk) + ARENA_ALIGN - 1) & \
	 ~(size_t)(ARENA_ALIGN - 1))

static uint8_t *
chunk_data(struct arena_chunk *ch)
{
	return (uint8_t *)ch + ARENA_CHUNK_HDR;
}

/* Allocates a chunk with size_bytes of data, all of it poisoned. */
static struct arena_chunk *
chunk_new(struct arena_chunk *next, size_t size_bytes)
{
	struct arena_chunk *ch;

	if (size_bytes > SIZE_MAX - ARENA_CHUNK_HDR)
		return NULL;
	ch = malloc(ARENA_CHUNK_HDR + size_bytes);
	if (ch == NULL)
		return NULL;
	ch->next = next;
	ch->size_bytes = size_bytes;
	ch->used_bytes = 0;
	arena_poison(chunk_data(ch), size_bytes);
	return ch;
}

static void
chunk_free(struct arena_chunk *ch)
{
	/* ASan wants user-poisoned memory made addressable before free. */
	arena_unpoison(chunk_data(ch), ch->size_bytes);
	free(ch);
}

/*
 * ProtobufCAllocator.alloc: bump-allocates from the newest chunk, adding a
 * chunk (twice the last, at most what the cap still allows) when it is
 * full. NULL once the cap is reached, which makes the unpack fail.
 */
static void *
arena_alloc(void *data, size_t size)
{
	struct codec_arena *a = data;
	struct arena_chunk *ch = a->chunks;
	size_t need, grow;
	uint8_t *p;

	/* protobuf-c treats NULL as failure, so even 0 bytes get an address. */
	if (size == 0)
		size = 1;
	/* Checked before rounding up so that the rounding cannot overflow. */
	if (size > a->cap_bytes || size > SIZE_MAX / 2)
		return NULL;
	need = (size + ARENA_REDZONE_BYTES + ARENA_ALIGN - 1) &
	       ~(size_t)(ARENA_ALIGN - 1);
	/* Invariant: used_bytes <= cap_bytes. */
	if (need > a->cap_bytes - a->used_bytes)
		return NULL;

	/* The first chunk keeps its standard size whatever the first request,
	 * since it lives as long as the arena. */
	if (ch == NULL) {
		grow = ARENA_FIRST_CHUNK_BYTES;
		if (grow > a->cap_bytes)
			grow = a->cap_bytes;
		ch = chunk_new(NULL, grow);
		if (ch == NULL)
			return NULL;
		a->chunks = ch;
	}
	if (ch->size_bytes - ch->used_bytes < need) {
		/* Doubling keeps the chunk count logarithmic; the cap bounds
		 * the last one. */
		grow = ch->size_bytes;
		if (grow > (a->cap_bytes - a->used_bytes) / 2)
			grow = a->cap_bytes - a->used_bytes;
		else
			grow *= 2;
		if (grow < need)
			grow = need;
		ch = chunk_new(ch, grow);
		if (ch == NULL)
			return NULL;
		a->chunks = ch;
	}
	p = chunk_data(ch) + ch->used_bytes;
	ch->used_bytes += need;
	a->used_bytes += need;
	arena_unpoison(p, size);
	return p;
}

/* ProtobufCAllocator.free: memory goes back all at once, on reset. */
static void
arena_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

void
codec_arena_init(struct codec_arena *a, size_t cap_bytes)
{
	/* allocator_data points at a itself: a must not move after this. */
	a->allocator.alloc = arena_alloc;
	a->allocator.free = arena_free;
	a->allocator.allocator_data = a;
	a->chunks = NULL;
	a->used_bytes = 0;
	a->cap_bytes = cap_bytes;
}

void
codec_arena_reset(struct codec_arena *a)
{
	struct arena_chunk *ch = a->chunks;

	if (ch == NULL)
		return;
	/* The list runs newest first; the first chunk is its tail. */
	while (ch->next != NULL) {
		struct arena_chunk *older = ch->next;

		chunk_free(ch);
		ch = older;
	}
	ch->used_bytes = 0;
	arena_poison(chunk_data(ch), ch->size_bytes);
	a->chunks = ch;
	a->used_bytes = 0;
}

void
codec_arena_fini(struct codec_arena *a)
{
	struct arena_chunk *ch = a->chunks;

	while (ch != NULL) {
		struct arena_chunk *older = ch->next;

		chunk_free(ch);
		ch = older;
	}
	a->chunks = NULL;
	a->used_bytes = 0;
}

/* ------------------------------------------------------ wire pre-scan */

/* Protobuf wire types; 3 and 4 (groups) are not used by ringmq.proto. */
enum wire_type {
	WIRE_VARINT = 0,
	WIRE_64BIT = 1,
	WIRE_LEN = 2,
	WIRE_32BIT = 5,
};

/* The protobuf limit on field numbers. */
#define WIRE_MAX_FIELD ((1u << 29) - 1)
/* A 64-bit varint takes at most 10 bytes. */
#define WIRE_MAX_VARINT_BYTES 10

/* A cursor over one message's bytes. */
struct wire {
	const uint8_t *p;   /* borrowed: next unread byte */
	const uint8_t *end; /* borrowed: one past the message */
};

/* One field as it sits on the wire. */
struct wire_field {
	uint32_t number;
	unsigned type;
	const uint8_t *data; /* borrowed: WIRE_LEN payload, else NULL */
	size_t len;	     /* WIRE_LEN payload bytes */
};

/* Reads a varint; -RMQ_EBAD_FRAME when over 10 bytes or cut off. */
static int
wire_varint(struct wire *w, uint64_t *v)
{
	uint64_t x = 0;
	int i;

	for (i = 0; i < WIRE_MAX_VARINT_BYTES; i++) {
		uint8_t b;

		if (w->p == w->end)
			return -RMQ_EBAD_FRAME;
		b = *w->p++;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*v = x;
			return 0;
		}
	}
	return -RMQ_EBAD_FRAME;
}

/*
 * Reads the next field of the message under w.
 * @return 1 with *f filled; 0 at the end of the message; -RMQ_EBAD_FRAME
 *         for a malformed tag, varint or length, a group, or an unknown
 *         wire type.
 */
static int
wire_next(struct wire *w, struct wire_field *f)
{
	uint64_t tag, v;
	int rc;

	if (w->p == w->end)
		return 0;
	rc = wire_varint(w, &tag);
	if (rc < 0)
		return rc;
	if (tag >> 3 == 0 || tag >> 3 > WIRE_MAX_FIELD)
		return -RMQ_EBAD_FRAME;
	f->number = (uint32_t)(tag >> 3);
	f->type = (unsigned)(tag & 7);
	f->data = NULL;
	f->len = 0;

	switch (f->type) {
	case WIRE_VARINT: return wire_varint(w, &v) < 0 ? -RMQ_EBAD_FRAME : 1;
	case WIRE_64BIT:
		if (w->end - w->p < 8)
			return -RMQ_EBAD_FRAME;
		w->p += 8;
		return 1;
	case WIRE_32BIT:
		if (w->end - w->p < 4)
			return -RMQ_EBAD_FRAME;
		w->p += 4;
		return 1;
	case WIRE_LEN:
		rc = wire_varint(w, &v);
		if (rc < 0)
			return rc;
		if (v > (uint64_t)(w->end - w->p))
			return -RMQ_EBAD_FRAME;
		f->data = w->p;
		f->len = (size_t)v;
		w->p += v;
		return 1;
	default:
		/* 3 and 4 are groups (unused here); 6 and 7 do not exist. */
		return -RMQ_EBAD_FRAME;
	}
}

static struct wire
wire_of(const struct wire_field *f)
{
	struct wire w = { f->data, f->data + f->len };

	return w;
}

/* Counts the varints of a packed field; each must be whole. */
static int
wire_count_packed(const struct wire_field *f, uint64_t *count)
{
	struct wire w = wire_of(f);
	uint64_t v;
	int rc;

	while (w.p != w.end) {
		rc = wire_varint(&w, &v);
		if (rc < 0)
			return rc;
		(*count)++;
	}
	return 0;
}

/* What the pre-scan counts over the whole frame. */
struct scan {
	const struct codec_limits *lim; /* borrowed */
	uint64_t messages;		/* Publish.messages */
	uint64_t lease_ids;		/* Ack/Nack/Release/Touch.lease_ids */
	uint64_t max_headers;		/* the most on one Message */
	const char *lease_ids_of;	/* static: "Ack", ... */
};

/* Messages nest a handful deep in ringmq.proto and none contains itself;
 * the bound keeps a future recursive type from recursing on input. */
#define SCAN_MAX_DEPTH 16

static int
is_lease_ids(const ProtobufCMessageDescriptor *d, uint32_t number)
{
	return number == 1 && (d == &ringmq__ack__descriptor ||
			       d == &ringmq__nack__descriptor ||
			       d == &ringmq__release__descriptor ||
			       d == &ringmq__touch__descriptor);
}

/*
 * Counts lease ids into s. protobuf-c takes a repeated varint field packed
 * or not, and allocates for both, so both count.
 */
static int
scan_lease_ids(struct scan *s, const struct wire_field *f)
{
	int rc;

	if (f->type == WIRE_VARINT) {
		s->lease_ids++;
	} else if (f->type == WIRE_LEN) {
		rc = wire_count_packed(f, &s->lease_ids);
		if (rc < 0)
			return rc;
	} else {
		return -RMQ_EBAD_FRAME;
	}
	return 0;
}

/*
 * Walks one message of type d, and every sub-message the schema names.
 * Besides counting, it refuses what protobuf-c would accept but not give
 * back intact: field number 0 or above 2^29 - 1 (protobuf-c misreads
 * over-long tags and re-encodes them as other fields) and strings with a
 * NUL, which a C string silently cuts short. Unknown fields are skipped
 * whole: protobuf-c keeps them as bytes.
 */
static int
scan_message(struct scan *s, const ProtobufCMessageDescriptor *d,
	     const uint8_t *p, size_t len, unsigned depth)
{
	struct wire w = { p, p + len };
	struct wire_field f;
	uint64_t headers = 0;
	int rc;

	if (depth > SCAN_MAX_DEPTH)
		return -RMQ_EBAD_FRAME;
	while ((rc = wire_next(&w, &f)) > 0) {
		const ProtobufCFieldDescriptor *fd =
			protobuf_c_message_descriptor_get_field(d, f.number);

		if (fd == NULL)
			continue;
		if (is_lease_ids(d, f.number)) {
			s->lease_ids_of = d->short_name;
			rc = scan_lease_ids(s, &f);
			if (rc < 0)
				return rc;
			continue;
		}
		if (fd->type == PROTOBUF_C_TYPE_STRING) {
			if (f.type == WIRE_LEN && memchr(f.data, 0, f.len))
				return -RMQ_EBAD_FRAME;
			continue;
		}
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		/* A sub-message on any other wire type fails to unpack. */
		if (f.type != WIRE_LEN)
			return -RMQ_EBAD_FRAME;
		/* Counted only: the limits are checked once the whole
		 * frame is known to be well formed (codec_decode). */
		if (d == &ringmq__publish__descriptor &&
		    fd->descriptor == &ringmq__message__descriptor)
			s->messages++;
		if (d == &ringmq__message__descriptor &&
		    fd->descriptor == &ringmq__header__descriptor &&
		    ++headers > s->max_headers)
			s->max_headers = headers;
		rc = scan_message(s, fd->descriptor, f.data, f.len, depth + 1);
		if (rc < 0)
			return rc;
	}
	return rc;
}

/* Fills over for the first count of s over its limit. @return 1 if one
 * is, else 0. */
static int
scan_over(const struct scan *s, struct codec_over *over)
{
	struct codec_over o = { 0 };

	if (s->messages > s->lim->max_batch_count) {
		o.what = "messages in one Publish";
		o.limit = "max_batch_count";
		o.count = s->messages;
		o.max = s->lim->max_batch_count;
	} else if (s->lease_ids > s->lim->max_batch_count) {
		o.what = "lease ids";
		o.request = s->lease_ids_of;
		o.limit = "max_batch_count";
		o.count = s->lease_ids;
		o.max = s->lim->max_batch_count;
	} else if (s->max_headers > s->lim->max_header_count) {
		o.what = "headers on one message";
		o.limit = "max_header_count";
		o.count = s->max_headers;
		o.max = s->lim->max_header_count;
	} else {
		return 0;
	}
	if (over != NULL)
		*over = o;
	return 1;
}

uint64_t
codec_request_id(const uint8_t *body, size_t len)
{
	struct wire w = { body, body + len };
	struct wire_field f;
	uint64_t id = 0;

	for (;;) {
		const uint8_t *at = w.p;
		int rc = wire_next(&w, &f);

		if (rc <= 0)
			return rc == 0 ? id : 0;
		if (f.number == 1 && f.type == WIRE_VARINT) {
			/* Read again for the value wire_next skipped. */
			struct wire v = { at, w.p };
			uint64_t tag;

			if (wire_varint(&v, &tag) < 0 ||
			    wire_varint(&v, &id) < 0)
				return 0;
		}
	}
}

int
codec_decode(struct codec_arena *a, const struct codec_limits *lim,
	     const uint8_t *body, size_t len, Ringmq__Frame **out,
	     struct codec_over *over)
{
	struct scan s = { lim, 0, 0, 0, NULL };
	Ringmq__Frame *f;
	int rc;

	*out = NULL;
	/* An empty Frame has no body; this also keeps NULL + 0 out. */
	if (len == 0)
		return -RMQ_EBAD_FRAME;
	/* Counts add up over the whole frame: a body field may occur more
	 * than once (the last wins in protobuf-c, but every copy is
	 * allocated), and a frame never costs more than one full batch. */
	rc = scan_message(&s, &ringmq__frame__descriptor, body, len, 0);
	if (rc < 0)
		return rc;
	if (scan_over(&s, over))
		return -RMQ_EMESSAGE_TOO_LARGE;
	/* NULL covers both malformed input and the arena cap. */
	f = ringmq__frame__unpack(&a->allocator, len, body);
	if (f == NULL)
		return -RMQ_EBAD_FRAME;
	if (f->body_case == RINGMQ__FRAME__BODY__NOT_SET)
		return -RMQ_EBAD_FRAME;
	*out = f;
	return 0;
}

size_t
codec_encoded_size(const Ringmq__Frame *f)
{
	return FRAME_HEADER_BYTES + ringmq__frame__get_packed_size(f);
}

size_t
codec_encode(const Ringmq__Frame *f, uint8_t *out)
{
	size_t n = ringmq__frame__pack(f, out + FRAME_HEADER_BYTES);

	/* Frames we build stay far below 4 GiB: the broker's own limits. */
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	return FRAME_HEADER_BYTES + n;
}

/* RMQ_E* is 1000 + the wire's code (lib/err.h): err_to_wire relies on it. */
_Static_assert(RMQ_EBAD_FRAME - RMQ_EBASE == RINGMQ__ERROR_CODE__BAD_FRAME,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EQUEUE_FULL - RMQ_EBASE == RINGMQ__ERROR_CODE__QUEUE_FULL,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_ENOT_LEASED - RMQ_EBASE == RINGMQ__ERROR_CODE__NOT_LEASED,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EINVALID_ARGUMENT - RMQ_EBASE ==
		       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EINTERNAL - RMQ_EBASE == RINGMQ__ERROR_CODE__INTERNAL,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EPERMISSION_DENIED - RMQ_EBASE ==
		       RINGMQ__ERROR_CODE__PERMISSION_DENIED,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EUNAUTHENTICATED - RMQ_EBASE ==
		       RINGMQ__ERROR_CODE__UNAUTHENTICATED,
	       "ringmq codes follow the wire's");
_Static_assert(RMQ_EWIRE_LAST - RMQ_EBASE == RINGMQ__ERROR_CODE__NOT_OWNER,
	       "ringmq codes follow the wire's");

int
err_to_wire(int rc)
{
	int code = rc < 0 ? -rc : rc;

	if (code > RMQ_EBASE && code <= RMQ_EWIRE_LAST)
		return code - RMQ_EBASE;
	if (code == 0)
		return RINGMQ__ERROR_CODE__OK;
	return RINGMQ__ERROR_CODE__INTERNAL;
}
