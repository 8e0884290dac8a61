/*
 * frame.c: decoding a frame from the broker into one allocation.
 *
 * protobuf-c's default allocator costs one malloc per message, string and
 * bytes field, and freeing walks the whole tree again: for a Delivery that
 * was half of the library's instructions per message. Here a frame is
 * unpacked into an arena of chunks sized from the frame's length (one
 * chunk nearly always), and freed by freeing the chunks. protobuf-c
 * allocates the top-level message first, so the frame sits at the start of
 * its first chunk and the chunk is found again from the frame's address.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct chunk {
	struct chunk *next; /* owned: later chunks (first chunk only) */
	struct chunk *cur;  /* borrowed: chunk being filled (first only) */
	size_t cap;	    /* bytes of data */
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

#define ALIGN_BYTES	  alignof(max_align_t)
#define FIRST_SLACK_BYTES 512u

static struct chunk *
chunk_new(size_t cap)
{
	struct chunk *ch = malloc(offsetof(struct chunk, data) + cap);

	if (ch == NULL)
		return NULL;
	ch->next = NULL;
	ch->cur = ch;
	ch->cap = cap;
	ch->used = 0;
	return ch;
}

static void *
arena_alloc(void *data, size_t size)
{
	struct chunk *head = data, *ch = head->cur;
	size_t need = (size + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
	void *p;

	if (need > ch->cap - ch->used) {
		size_t cap = 2 * ch->cap;

		if (cap < need)
			cap = need;
		ch = chunk_new(cap);
		if (ch == NULL)
			return NULL;
		ch->next = head->next;
		head->next = ch;
		head->cur = ch;
	}
	p = ch->data + ch->used;
	ch->used += need;
	return p;
}

/* Memory goes back with the whole frame. */
static void
arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

static void
chunks_free(struct chunk *head)
{
	struct chunk *ch = head->next;

	while (ch != NULL) {
		struct chunk *next = ch->next;

		free(ch);
		ch = next;
	}
	free(head);
}

static struct chunk *
chunk_of(const Ringmq__Frame *f)
{
	return (struct chunk *)(void *)((unsigned char *)(uintptr_t)f -
					offsetof(struct chunk, data));
}

/* ------------------------------------------------ hand-decoded frames */

/*
 * The frames that come once per message (Delivery, PublishOk and
 * LeaseResult) are decoded here without protobuf-c's generic,
 * descriptor-driven parser, into the same structures, as protobuf-c
 * would fill them. Anything unusual (an unknown field, a field twice
 * where protobuf-c would merge, a missing required field, a malformed
 * varint) makes fast_frame fail and protobuf-c decide instead: the fast
 * path only has to be exact where it succeeds.
 */

#define WT_VARINT 0
#define WT_LEN	  2

struct rd {
	const uint8_t *p;
	const uint8_t *end;
};

static int
rd_varint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < 10 && r->p < r->end; i++) {
		uint8_t b = *r->p++;

		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* Reads a tag: field number and wire type. */
static int
rd_tag(struct rd *r, uint32_t *field, unsigned *wt)
{
	uint64_t t;

	if (rd_varint(r, &t) < 0 || (t >> 3) == 0 || (t >> 3) > UINT32_MAX)
		return -1;
	*field = (uint32_t)(t >> 3);
	*wt = (unsigned)(t & 7);
	return 0;
}

/* Reads a length-delimited field's bytes into sub. */
static int
rd_sub(struct rd *r, struct rd *sub)
{
	uint64_t n;

	if (rd_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
		return -1;
	sub->p = r->p;
	sub->end = r->p + n;
	r->p += n;
	return 0;
}

/* A copy of sub's bytes as protobuf-c makes it (NULL when empty). */
static int
copy_bytes(struct chunk *h, const struct rd *sub, ProtobufCBinaryData *out)
{
	size_t n = (size_t)(sub->end - sub->p);

	out->len = n;
	out->data = NULL;
	if (n == 0)
		return 0;
	out->data = arena_alloc(h, n);
	if (out->data == NULL)
		return -1;
	memcpy(out->data, sub->p, n);
	return 0;
}

/* A NUL-terminated copy, as protobuf-c makes for a string. */
static char *
copy_string(struct chunk *h, const struct rd *sub)
{
	size_t n = (size_t)(sub->end - sub->p);
	char *str = arena_alloc(h, n + 1);

	if (str != NULL) {
		memcpy(str, sub->p, n);
		str[n] = '\0';
	}
	return str;
}

static void *
zalloc(struct chunk *h, size_t n)
{
	void *p = arena_alloc(h, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

static Ringmq__Header *
fast_header(struct chunk *h, struct rd r)
{
	Ringmq__Header *hd = zalloc(h, sizeof(*hd));
	int has_name = 0, has_value = 0;

	if (hd == NULL)
		return NULL;
	ringmq__header__init(hd);
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;

		if (rd_tag(&r, &field, &wt) < 0 || wt != WT_LEN ||
		    rd_sub(&r, &sub) < 0)
			return NULL;
		if (field == 1 && !has_name) {
			hd->name = copy_string(h, &sub);
			if (hd->name == NULL)
				return NULL;
			has_name = 1;
		} else if (field == 2 && !has_value) {
			if (copy_bytes(h, &sub, &hd->value) < 0)
				return NULL;
			has_value = 1;
		} else {
			return NULL;
		}
	}
	return has_name && has_value ? hd : NULL;
}

static Ringmq__Message *
fast_message(struct chunk *h, struct rd r)
{
	Ringmq__Message *m = zalloc(h, sizeof(*m));
	struct rd scan = r;
	size_t nh = 0;
	int has_payload = 0, has_dedup = 0;

	if (m == NULL)
		return NULL;
	ringmq__message__init(m);
	/* Headers are repeated: count them first, as protobuf-c does. */
	while (scan.p < scan.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v;

		if (rd_tag(&scan, &field, &wt) < 0)
			return NULL;
		if (wt == WT_LEN ? rd_sub(&scan, &sub) < 0
				 : wt != WT_VARINT || rd_varint(&scan, &v) < 0)
			return NULL;
		nh += field == 3;
	}
	if (nh > 0) {
		m->headers = arena_alloc(h, nh * sizeof(*m->headers));
		if (m->headers == NULL)
			return NULL;
	}
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v = 0;

		if (rd_tag(&r, &field, &wt) < 0)
			return NULL;
		if (wt == WT_LEN ? rd_sub(&r, &sub) < 0
				 : wt != WT_VARINT || rd_varint(&r, &v) < 0)
			return NULL;
		switch (field << 3 | wt) {
		case 1 << 3 | WT_LEN:
			if (has_payload || copy_bytes(h, &sub, &m->payload) < 0)
				return NULL;
			has_payload = 1;
			break;
		case 2 << 3 | WT_LEN:
			if (m->has_key || copy_bytes(h, &sub, &m->key) < 0)
				return NULL;
			m->has_key = 1;
			break;
		case 3 << 3 | WT_LEN:
			m->headers[m->n_headers] = fast_header(h, sub);
			if (m->headers[m->n_headers++] == NULL)
				return NULL;
			break;
		case 4 << 3 | WT_VARINT:
			m->has_deliver_at_ms = 1;
			m->deliver_at_ms = v;
			break;
		case 5 << 3 | WT_VARINT:
			m->has_delay_ms = 1;
			m->delay_ms = v;
			break;
		case 6 << 3 | WT_LEN:
			if (has_dedup)
				return NULL;
			m->dedup_id = copy_string(h, &sub);
			if (m->dedup_id == NULL)
				return NULL;
			has_dedup = 1;
			break;
		case 7 << 3 | WT_VARINT:
			m->has_partition = 1;
			m->partition = (uint32_t)v;
			break;
		default: return NULL;
		}
	}
	return has_payload ? m : NULL;
}

static Ringmq__Delivery *
fast_delivery(struct chunk *h, struct rd r)
{
	Ringmq__Delivery *d = zalloc(h, sizeof(*d));
	unsigned seen = 0; /* bit per required field 1..7 */

	if (d == NULL)
		return NULL;
	ringmq__delivery__init(d);
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v = 0;

		if (rd_tag(&r, &field, &wt) < 0)
			return NULL;
		if (wt == WT_LEN ? rd_sub(&r, &sub) < 0
				 : wt != WT_VARINT || rd_varint(&r, &v) < 0)
			return NULL;
		switch (field << 3 | wt) {
		case 1 << 3 | WT_VARINT: d->subscription = (uint32_t)v; break;
		case 2 << 3 | WT_VARINT: d->lease_id = v; break;
		case 3 << 3 | WT_VARINT: d->partition = (uint32_t)v; break;
		case 4 << 3 | WT_VARINT: d->offset = v; break;
		case 5 << 3 | WT_VARINT: d->delivery_count = (uint32_t)v; break;
		case 6 << 3 | WT_VARINT: d->lease_remaining_ms = v; break;
		case 7 << 3 | WT_LEN:
			if (seen & 1u << 7) /* protobuf-c would merge */
				return NULL;
			d->message = fast_message(h, sub);
			if (d->message == NULL)
				return NULL;
			break;
		case 8 << 3 | WT_VARINT:
			d->has_publish_ms = 1;
			d->publish_ms = v;
			break;
		default: return NULL;
		}
		if (field <= 7)
			seen |= 1u << field;
	}
	return seen == 0xfe ? d : NULL;
}

static Ringmq__PublishResult *
fast_publish_result(struct chunk *h, struct rd r)
{
	Ringmq__PublishResult *pr = zalloc(h, sizeof(*pr));
	int has_code = 0;

	if (pr == NULL)
		return NULL;
	ringmq__publish_result__init(pr);
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v = 0;

		if (rd_tag(&r, &field, &wt) < 0)
			return NULL;
		if (wt == WT_LEN ? rd_sub(&r, &sub) < 0
				 : wt != WT_VARINT || rd_varint(&r, &v) < 0)
			return NULL;
		switch (field << 3 | wt) {
		case 1 << 3 | WT_VARINT:
			pr->code = (Ringmq__ErrorCode)(int32_t)(uint32_t)v;
			has_code = 1;
			break;
		case 2 << 3 | WT_VARINT:
			pr->has_partition = 1;
			pr->partition = (uint32_t)v;
			break;
		case 3 << 3 | WT_VARINT:
			pr->has_offset = 1;
			pr->offset = v;
			break;
		case 4 << 3 | WT_VARINT:
			pr->has_duplicate = 1;
			pr->duplicate = v != 0;
			break;
		case 5 << 3 | WT_LEN:
			if (pr->message != NULL)
				return NULL;
			pr->message = copy_string(h, &sub);
			if (pr->message == NULL)
				return NULL;
			break;
		default: return NULL;
		}
	}
	return has_code ? pr : NULL;
}

/* Counts the fields of r numbered field (any wire type); -1 if r does not
 * parse. */
static long
count_field(struct rd r, uint32_t want)
{
	long n = 0;

	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v;

		if (rd_tag(&r, &field, &wt) < 0)
			return -1;
		if (wt == WT_LEN ? rd_sub(&r, &sub) < 0
				 : wt != WT_VARINT || rd_varint(&r, &v) < 0)
			return -1;
		n += field == want;
	}
	return n;
}

static Ringmq__PublishOk *
fast_publish_ok(struct chunk *h, struct rd r)
{
	Ringmq__PublishOk *ok = zalloc(h, sizeof(*ok));
	long n = count_field(r, 1);

	if (ok == NULL || n < 0)
		return NULL;
	ringmq__publish_ok__init(ok);
	if (n > 0) {
		ok->results = arena_alloc(h, (size_t)n * sizeof(*ok->results));
		if (ok->results == NULL)
			return NULL;
	}
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;

		if (rd_tag(&r, &field, &wt) < 0 || field != 1 || wt != WT_LEN ||
		    rd_sub(&r, &sub) < 0)
			return NULL;
		ok->results[ok->n_results] = fast_publish_result(h, sub);
		if (ok->results[ok->n_results++] == NULL)
			return NULL;
	}
	return ok;
}

/* Counts the values of repeated varint field want, packed or not. */
static long
count_varints(struct rd r, uint32_t want)
{
	long n = 0;

	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v;

		if (rd_tag(&r, &field, &wt) < 0)
			return -1;
		if (wt == WT_VARINT) {
			if (rd_varint(&r, &v) < 0)
				return -1;
			n += field == want;
		} else if (wt == WT_LEN) {
			if (rd_sub(&r, &sub) < 0)
				return -1;
			if (field != want)
				continue;
			while (sub.p < sub.end) {
				if (rd_varint(&sub, &v) < 0)
					return -1;
				n++;
			}
		} else {
			return -1;
		}
	}
	return n;
}

static Ringmq__LeaseResult *
fast_lease_result(struct chunk *h, struct rd r)
{
	Ringmq__LeaseResult *lr = zalloc(h, sizeof(*lr));
	long nc = count_varints(r, 1), nr = count_varints(r, 2);

	if (lr == NULL || nc < 0 || nr < 0)
		return NULL;
	ringmq__lease_result__init(lr);
	if (nc > 0 && (lr->codes = arena_alloc(
			       h, (size_t)nc * sizeof(*lr->codes))) == NULL)
		return NULL;
	if (nr > 0 &&
	    (lr->remaining_ms = arena_alloc(
		     h, (size_t)nr * sizeof(*lr->remaining_ms))) == NULL)
		return NULL;
	while (r.p < r.end) {
		struct rd sub, one = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v;

		if (rd_tag(&r, &field, &wt) < 0 || (field != 1 && field != 2))
			return NULL;
		if (wt == WT_VARINT) {
			one.p = r.p;
			if (rd_varint(&r, &v) < 0)
				return NULL;
			one.end = r.p;
		} else if (wt != WT_LEN || rd_sub(&r, &one) < 0) {
			return NULL;
		}
		sub = one;
		while (sub.p < sub.end) {
			if (rd_varint(&sub, &v) < 0)
				return NULL;
			if (field == 1)
				lr->codes[lr->n_codes++] =
					(Ringmq__ErrorCode)(int32_t)(uint32_t)v;
			else
				lr->remaining_ms[lr->n_remaining_ms++] = v;
		}
	}
	return lr;
}

/* Decodes a Delivery, PublishOk or LeaseResult frame into head; NULL for
 * anything else, or anything unusual (protobuf-c decides those). */
static Ringmq__Frame *
fast_frame(struct chunk *head, const uint8_t *data, size_t len)
{
	Ringmq__Frame *f = zalloc(head, sizeof(*f));
	struct rd r = { data, data + len };

	if (f == NULL)
		return NULL;
	ringmq__frame__init(f);
	while (r.p < r.end) {
		struct rd sub = { NULL, NULL };
		uint32_t field;
		unsigned wt;
		uint64_t v;

		if (rd_tag(&r, &field, &wt) < 0)
			return NULL;
		if (field == 1 && wt == WT_VARINT) {
			if (rd_varint(&r, &v) < 0)
				return NULL;
			f->has_request_id = 1;
			f->request_id = v;
			continue;
		}
		/* One body, once: a second would replace or merge. */
		if (wt != WT_LEN || rd_sub(&r, &sub) < 0 ||
		    f->body_case != RINGMQ__FRAME__BODY__NOT_SET)
			return NULL;
		switch (field) {
		case RINGMQ__FRAME__BODY_DELIVERY:
			f->delivery = fast_delivery(head, sub);
			if (f->delivery == NULL)
				return NULL;
			break;
		case RINGMQ__FRAME__BODY_PUBLISH_OK:
			f->publish_ok = fast_publish_ok(head, sub);
			if (f->publish_ok == NULL)
				return NULL;
			break;
		case RINGMQ__FRAME__BODY_LEASE_RESULT:
			f->lease_result = fast_lease_result(head, sub);
			if (f->lease_result == NULL)
				return NULL;
			break;
		default: return NULL;
		}
		f->body_case = (Ringmq__Frame__BodyCase)field;
	}
	return f->body_case != RINGMQ__FRAME__BODY__NOT_SET ? f : NULL;
}

/* Frees every chunk but head and empties head, for a second decode. */
static void
chunks_reset(struct chunk *head)
{
	struct chunk *ch = head->next;

	while (ch != NULL) {
		struct chunk *next = ch->next;

		free(ch);
		ch = next;
	}
	head->next = NULL;
	head->cur = head;
	head->used = 0;
}

static Ringmq__Frame *
unpack(const uint8_t *data, size_t len, int is_fast)
{
	/* Bytes fields are copied once; the structures around them take a
	 * few hundred bytes, or a few times the wire size for lists. */
	struct chunk *head = chunk_new(len + len / 2 + FIRST_SLACK_BYTES);
	ProtobufCAllocator a = { arena_alloc, arena_free, NULL };
	Ringmq__Frame *f;

	if (head == NULL)
		return NULL;
	if (is_fast) {
		f = fast_frame(head, data, len);
		if (f != NULL)
			return f;
		chunks_reset(head);
	}
	a.allocator_data = head;
	f = ringmq__frame__unpack(&a, len, data);
	if (f == NULL || (void *)f != (void *)head->data) {
		chunks_free(head);
		return NULL;
	}
	return f;
}

Ringmq__Frame *
frame_unpack(const uint8_t *data, size_t len)
{
	return unpack(data, len, 1);
}

Ringmq__Frame *
frame_unpack_generic(const uint8_t *data, size_t len)
{
	return unpack(data, len, 0);
}

Ringmq__Frame *
frame_unpack_fast(const uint8_t *data, size_t len)
{
	struct chunk *head = chunk_new(len + len / 2 + FIRST_SLACK_BYTES);
	Ringmq__Frame *f;

	if (head == NULL)
		return NULL;
	f = fast_frame(head, data, len);
	if (f == NULL)
		chunks_free(head);
	return f;
}

void *
frame_alloc(Ringmq__Frame *f, size_t size)
{
	return arena_alloc(chunk_of(f), size);
}

void
frame_free(Ringmq__Frame *f)
{
	if (f != NULL)
		chunks_free(chunk_of(f));
}
