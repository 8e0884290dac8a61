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

#include "fields.h"
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

/* Reads a varint of at most max bytes (10 for a value; 5 for a tag or a
 * length prefix, protobuf-c's limit for those: it refuses longer ones,
 * so the fast path must too). */
static int
rd_varint_max(struct rd *r, uint64_t *v, unsigned max)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < max && r->p < r->end; i++) {
		uint8_t b = *r->p++;

		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

static int
rd_varint(struct rd *r, uint64_t *v)
{
	return rd_varint_max(r, v, 10);
}

/* Reads a tag: field number and wire type. */
static int
rd_tag(struct rd *r, uint32_t *field, unsigned *wt)
{
	uint64_t t;

	if (rd_varint_max(r, &t, 5) < 0 || (t >> 3) == 0 ||
	    (t >> 3) > UINT32_MAX)
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

	if (rd_varint_max(r, &n, 5) < 0 || n > (uint64_t)(r->end - r->p))
		return -1;
	sub->p = r->p;
	sub->end = r->p + n;
	r->p += n;
	return 0;
}

/* One field as read: number, wire type, and the value (a varint in v, or
 * a length-delimited field's bytes in sub). */
struct field {
	uint32_t num;
	unsigned wt;
	uint64_t v;
	struct rd sub;
};

/* The switch key of a field number and wire type. */
#define KEY(num, wt) ((uint32_t)(num) << 3 | (wt))

/* Reads the next field of r; -1 for a malformed one or a wire type other
 * than varint and length-delimited (none of these frames has others). */
static int
rd_field(struct rd *r, struct field *fl)
{
	fl->v = 0;
	fl->sub.p = fl->sub.end = NULL;
	if (rd_tag(r, &fl->num, &fl->wt) < 0)
		return -1;
	if (fl->wt == WT_LEN)
		return rd_sub(r, &fl->sub);
	return fl->wt == WT_VARINT ? rd_varint(r, &fl->v) : -1;
}

/* Counts the fields of r numbered num; -1 if r does not parse. */
static long
count_field(struct rd r, uint32_t num)
{
	struct field fl;
	long n = 0;

	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return -1;
		n += fl.num == num;
	}
	return n;
}

/* Counts the values of repeated varint field num, packed or not; -1 if r
 * does not parse. */
static long
count_varints(struct rd r, uint32_t num)
{
	struct field fl;
	long n = 0;

	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return -1;
		if (fl.num != num)
			continue;
		if (fl.wt == WT_VARINT) {
			n++;
			continue;
		}
		while (fl.sub.p < fl.sub.end) {
			uint64_t v;

			if (rd_varint(&fl.sub, &v) < 0)
				return -1;
			n++;
		}
	}
	return n;
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
	int has_value = 0;
	struct field fl;

	if (hd == NULL)
		return NULL;
	ringmq__header__init(hd);
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return NULL;
		switch (KEY(fl.num, fl.wt)) {
		case KEY(FIELD_HEADER_NAME, WT_LEN):
			if (hd->name != NULL)
				return NULL;
			hd->name = copy_string(h, &fl.sub);
			if (hd->name == NULL)
				return NULL;
			break;
		case KEY(FIELD_HEADER_VALUE, WT_LEN):
			if (has_value || copy_bytes(h, &fl.sub, &hd->value) < 0)
				return NULL;
			has_value = 1;
			break;
		default: return NULL;
		}
	}
	return hd->name != NULL && has_value ? hd : NULL;
}

static Ringmq__Message *
fast_message(struct chunk *h, struct rd r)
{
	Ringmq__Message *m = zalloc(h, sizeof(*m));
	long nh = count_field(r, FIELD_MESSAGE_HEADERS);
	int has_payload = 0;
	struct field fl;

	if (m == NULL || nh < 0)
		return NULL;
	ringmq__message__init(m);
	if (nh > 0) {
		m->headers = arena_alloc(h, (size_t)nh * sizeof(*m->headers));
		if (m->headers == NULL)
			return NULL;
	}
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return NULL;
		switch (KEY(fl.num, fl.wt)) {
		case KEY(FIELD_MESSAGE_PAYLOAD, WT_LEN):
			if (has_payload ||
			    copy_bytes(h, &fl.sub, &m->payload) < 0)
				return NULL;
			has_payload = 1;
			break;
		case KEY(FIELD_MESSAGE_KEY, WT_LEN):
			if (m->has_key || copy_bytes(h, &fl.sub, &m->key) < 0)
				return NULL;
			m->has_key = 1;
			break;
		case KEY(FIELD_MESSAGE_HEADERS, WT_LEN):
			m->headers[m->n_headers] = fast_header(h, fl.sub);
			if (m->headers[m->n_headers++] == NULL)
				return NULL;
			break;
		case KEY(FIELD_MESSAGE_DELIVER_AT_MS, WT_VARINT):
			m->has_deliver_at_ms = 1;
			m->deliver_at_ms = fl.v;
			break;
		case KEY(FIELD_MESSAGE_DELAY_MS, WT_VARINT):
			m->has_delay_ms = 1;
			m->delay_ms = fl.v;
			break;
		case KEY(FIELD_MESSAGE_DEDUP_ID, WT_LEN):
			if (m->dedup_id != NULL)
				return NULL;
			m->dedup_id = copy_string(h, &fl.sub);
			if (m->dedup_id == NULL)
				return NULL;
			break;
		case KEY(FIELD_MESSAGE_PARTITION, WT_VARINT):
			m->has_partition = 1;
			m->partition = (uint32_t)fl.v;
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
	/* A bit per required field: 1 (subscription) to 7 (message). */
	unsigned seen = 0;
	struct field fl;

	if (d == NULL)
		return NULL;
	ringmq__delivery__init(d);
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return NULL;
		switch (KEY(fl.num, fl.wt)) {
		case KEY(FIELD_DELIVERY_SUBSCRIPTION, WT_VARINT):
			d->subscription = (uint32_t)fl.v;
			break;
		case KEY(FIELD_DELIVERY_LEASE_ID, WT_VARINT):
			d->lease_id = fl.v;
			break;
		case KEY(FIELD_DELIVERY_PARTITION, WT_VARINT):
			d->partition = (uint32_t)fl.v;
			break;
		case KEY(FIELD_DELIVERY_OFFSET, WT_VARINT):
			d->offset = fl.v;
			break;
		case KEY(FIELD_DELIVERY_DELIVERY_COUNT, WT_VARINT):
			d->delivery_count = (uint32_t)fl.v;
			break;
		case KEY(FIELD_DELIVERY_LEASE_REMAINING_MS, WT_VARINT):
			d->lease_remaining_ms = fl.v;
			break;
		case KEY(FIELD_DELIVERY_MESSAGE, WT_LEN):
			if (d->message != NULL) /* protobuf-c would merge */
				return NULL;
			d->message = fast_message(h, fl.sub);
			if (d->message == NULL)
				return NULL;
			break;
		case KEY(FIELD_DELIVERY_PUBLISH_MS, WT_VARINT):
			d->has_publish_ms = 1;
			d->publish_ms = fl.v;
			break;
		default: return NULL;
		}
		if (fl.num <= FIELD_DELIVERY_MESSAGE)
			seen |= 1u << fl.num;
	}
	return seen == 0xfe ? d : NULL;
}

static Ringmq__PublishResult *
fast_publish_result(struct chunk *h, struct rd r)
{
	Ringmq__PublishResult *pr = zalloc(h, sizeof(*pr));
	int has_code = 0;
	struct field fl;

	if (pr == NULL)
		return NULL;
	ringmq__publish_result__init(pr);
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return NULL;
		switch (KEY(fl.num, fl.wt)) {
		case KEY(FIELD_PUBLISH_RESULT_CODE, WT_VARINT):
			pr->code = (Ringmq__ErrorCode)(int32_t)(uint32_t)fl.v;
			has_code = 1;
			break;
		case KEY(FIELD_PUBLISH_RESULT_PARTITION, WT_VARINT):
			pr->has_partition = 1;
			pr->partition = (uint32_t)fl.v;
			break;
		case KEY(FIELD_PUBLISH_RESULT_OFFSET, WT_VARINT):
			pr->has_offset = 1;
			pr->offset = fl.v;
			break;
		case KEY(FIELD_PUBLISH_RESULT_DUPLICATE, WT_VARINT):
			pr->has_duplicate = 1;
			pr->duplicate = fl.v != 0;
			break;
		case KEY(FIELD_PUBLISH_RESULT_MESSAGE, WT_LEN):
			if (pr->message != NULL)
				return NULL;
			pr->message = copy_string(h, &fl.sub);
			if (pr->message == NULL)
				return NULL;
			break;
		case KEY(FIELD_PUBLISH_RESULT_OWNER, WT_LEN):
			if (pr->owner != NULL)
				return NULL;
			pr->owner = copy_string(h, &fl.sub);
			if (pr->owner == NULL)
				return NULL;
			break;
		case KEY(FIELD_PUBLISH_RESULT_EPOCH, WT_VARINT):
			pr->has_epoch = 1;
			pr->epoch = fl.v;
			break;
		default: return NULL;
		}
	}
	return has_code ? pr : NULL;
}

static Ringmq__PublishOk *
fast_publish_ok(struct chunk *h, struct rd r)
{
	Ringmq__PublishOk *ok = zalloc(h, sizeof(*ok));
	long n = count_field(r, FIELD_PUBLISH_OK_RESULTS);
	struct field fl;

	if (ok == NULL || n < 0)
		return NULL;
	ringmq__publish_ok__init(ok);
	if (n > 0) {
		ok->results = arena_alloc(h, (size_t)n * sizeof(*ok->results));
		if (ok->results == NULL)
			return NULL;
	}
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0 ||
		    KEY(fl.num, fl.wt) != KEY(FIELD_PUBLISH_OK_RESULTS, WT_LEN))
			return NULL;
		ok->results[ok->n_results] = fast_publish_result(h, fl.sub);
		if (ok->results[ok->n_results++] == NULL)
			return NULL;
	}
	return ok;
}

/* Appends value v of field num (1: codes, 2: remaining_ms); the arrays
 * were sized by count_varints. */
static void
lease_result_add(Ringmq__LeaseResult *lr, uint32_t num, uint64_t v)
{
	if (num == 1)
		lr->codes[lr->n_codes++] =
			(Ringmq__ErrorCode)(int32_t)(uint32_t)v;
	else
		lr->remaining_ms[lr->n_remaining_ms++] = v;
}

static Ringmq__LeaseResult *
fast_lease_result(struct chunk *h, struct rd r)
{
	Ringmq__LeaseResult *lr = zalloc(h, sizeof(*lr));
	long nc = count_varints(r, 1), nr = count_varints(r, 2);
	struct field fl;

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
		uint64_t v;

		if (rd_field(&r, &fl) < 0 || (fl.num != 1 && fl.num != 2))
			return NULL;
		/* One value, or a packed run of them. */
		if (fl.wt == WT_VARINT) {
			lease_result_add(lr, fl.num, fl.v);
			continue;
		}
		while (fl.sub.p < fl.sub.end) {
			if (rd_varint(&fl.sub, &v) < 0)
				return NULL;
			lease_result_add(lr, fl.num, v);
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
	struct field fl;

	if (f == NULL)
		return NULL;
	ringmq__frame__init(f);
	while (r.p < r.end) {
		if (rd_field(&r, &fl) < 0)
			return NULL;
		if (KEY(fl.num, fl.wt) ==
		    KEY(FIELD_FRAME_REQUEST_ID, WT_VARINT)) {
			f->has_request_id = 1;
			f->request_id = fl.v;
			continue;
		}
		/* One body, once: a second would replace or merge. */
		if (fl.wt != WT_LEN ||
		    f->body_case != RINGMQ__FRAME__BODY__NOT_SET)
			return NULL;
		switch (fl.num) {
		case RINGMQ__FRAME__BODY_DELIVERY:
			f->delivery = fast_delivery(head, fl.sub);
			if (f->delivery == NULL)
				return NULL;
			break;
		case RINGMQ__FRAME__BODY_PUBLISH_OK:
			f->publish_ok = fast_publish_ok(head, fl.sub);
			if (f->publish_ok == NULL)
				return NULL;
			break;
		case RINGMQ__FRAME__BODY_LEASE_RESULT:
			f->lease_result = fast_lease_result(head, fl.sub);
			if (f->lease_result == NULL)
				return NULL;
			break;
		default: return NULL;
		}
		f->body_case = (Ringmq__Frame__BodyCase)fl.num;
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
