/*
 * producer.c: asynchronous publish with automatic batching, pipelining and
 * idempotent resend.
 *
 * Every message gets its partition here (key hash, dedup id hash, else a
 * sticky round-robin from a random start: keyless messages stay on one
 * partition for STICKY_PARTITION_BYTES, so that they share batches however
 * many partitions the queue has) so that it can be numbered: each
 * (queue, partition) has its own sequence, and a batch carries the
 * sequence of its first message with producer_seq. Messages wait per
 * partition until a batch is full, their linger time passes or a flush
 * asks (while a batch of the partition is in flight, a due message that
 * does not fill a batch waits for the next time the client is served, so
 * that a burst shares a batch); then they are cut into a batch (within
 * the broker's max batch count and max frame bytes from hello) that never
 * changes again. At most MAX_BATCHES_IN_FLIGHT batches per partition are
 * unanswered at once.
 *
 * When the connection drops, unanswered batches stay as they are and are
 * sent again, in sequence order, after the reconnect (whose hello resumes
 * the producer id): the broker answers a batch it already stored with its
 * original offsets, so each message is stored once.
 *
 * Synchronous publishes (ringmq_publish_batch) go the same way, numbered
 * in the same sequences, so that a publish sent on a connection the broker
 * had just closed is sent again safely; their messages are due at once and
 * report to the waiting caller instead of a callback.
 *
 * Invariant: a partition's batches list holds its cut batches in sequence
 * order; a batch is on c->producer.inflight exactly while it has a request id
 * on the current connection.
 */
#include "internal.h"
#include "partition_rule.h"
#include "pb_varint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of keyless messages given to one partition before the next. A
 * message at a time to each partition in turn made every batch one message
 * long on a queue with many partitions. */
#define STICKY_PARTITION_BYTES (16u * 1024u)

/* Waits after QUOTA_EXCEEDED: when the broker gives no retry_after_ms,
 * and the most taken from it. */
#define QUOTA_RETRY_MS	   100
#define QUOTA_RETRY_MAX_MS 60000

/* Extra bytes of a Publish that names a partition and a sequence. */
#define SEQ_FIELDS_BYTES 20

struct pmsg;

/*
 * A synchronous publish waiting for its messages. Lives on the waiting
 * caller's stack: its messages point to it only while it waits.
 */
struct psync {
	struct publish_result *res; /* borrowed: the caller's, one a message */
	size_t res_n;
	struct pmsg **msgs; /* owned array of res_n; NULL once done */
	struct ptopic *t;   /* borrowed */
	size_t n_left;	    /* messages not answered yet */
	int is_progress;    /* an answer came since the last look */
};

struct ringmq_publish_report {
	const char *queue; /* borrowed from the topic */
	int code;
	uint32_t partition;
	uint64_t offset;
	int is_duplicate;
	char *message; /* owned; NULL when none */
};

struct pmsg {
	Ringmq__Message pb; /* its pointers point into this block (pmsg_new) */
	ringmq_publish_cb cb;
	void *ctx;	    /* the caller's */
	struct psync *sync; /* borrowed: its waiting caller, or NULL */
	size_t sync_idx;    /* its index in sync->res */
	int is_cut;	    /* in a batch: numbered, maybe sent */
	size_t cost;
	struct ringmq_publish_report rep;
	struct pmsg *next; /* partition queue or done list */
};

struct pbatch {
	struct ptopic *t; /* borrowed */
	uint32_t partition;
	uint64_t request_id; /* 0 while not sent on this connection */
	uint64_t first_seq;
	size_t n;
	struct pmsg **msgs;	      /* owned array; messages owned too */
	struct pbatch *next;	      /* partition's batch list */
	struct pbatch *inflight_next; /* c->producer.inflight link */
};

struct ppart {
	uint64_t next_seq;
	struct pmsg *head; /* owned queue of messages not in a batch */
	struct pmsg *tail;
	size_t n;
	size_t bytes;
	size_t n_sync;	      /* of them, messages a caller waits for */
	int64_t first_ms;     /* when head was queued */
	struct pbatch *bhead; /* owned batches, in sequence order */
	struct pbatch *btail;
	unsigned n_batches;
};

struct ptopic {
	char *name; /* owned */
	uint32_t partitions;
	int is_stale;	  /* the broker said a partition is out of range */
	uint32_t rr;	  /* partition of keyless messages now */
	size_t rr_bytes;  /* bytes given to rr since it became current */
	uint32_t sync_rr; /* next partition of keyless synchronous ones */
	size_t base_bytes;
	struct ppart *parts; /* owned array of partitions */
	/* owned [partitions]: 1 where the connected broker serves the
	 * partition (every one outside a cluster); keyless messages go
	 * only there */
	uint8_t *here;
	struct ptopic *next;
};

/* ------------------------------------------------------------ partitioner */

/* The partition of pb, or -1 when it has neither key nor dedup id. */
static int64_t
hashed_partition(const Ringmq__Message *pb, uint32_t partitions)
{
	/* An empty key or dedup id is none (the broker stores none). */
	if (pb->has_key && pb->key.len > 0)
		return partition_rule_for_key(pb->key.data, pb->key.len,
					      partitions);
	if (pb->dedup_id != NULL && pb->dedup_id[0] != '\0')
		return partition_rule_for_key(pb->dedup_id,
					      strlen(pb->dedup_id), partitions);
	return -1;
}

/* ------------------------------------------------------------------ sizes */

/* Bytes a message adds to a Publish: tag, length and body. */
static size_t
message_cost(const Ringmq__Message *pb)
{
	size_t n = ringmq__message__get_packed_size(pb);

	return 1 + pb_varint_len(n) + n;
}

/* Bytes the broker counts a message for against max_message_bytes:
 * payload, key, dedup id, each header's name and value and 6 more. */
static size_t
message_bytes(const Ringmq__Message *pb)
{
	size_t n = pb->payload.len + (pb->has_key ? pb->key.len : 0);

	if (pb->dedup_id != NULL)
		n += strlen(pb->dedup_id);
	for (size_t i = 0; i < pb->n_headers; i++)
		n += 6 + strlen(pb->headers[i]->name) +
		     pb->headers[i]->value.len;
	return n;
}

/*
 * Bytes of a Publish frame for queue with no messages, with the largest
 * request_id and room for the Publish length to grow to 5 bytes.
 */
static size_t
publish_base_bytes(const char *queue)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;

	pub.queue = (char *)queue; /* only measured */
	f.has_request_id = 1;
	f.request_id = UINT64_MAX;
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	return ringmq__frame__get_packed_size(&f) + 4;
}

/* ------------------------------------------------------------------ topics */

static void
report_fini(struct ringmq_publish_report *r)
{
	free(r->message);
	r->message = NULL;
}

/* Copies src into one block with the pmsg: payload, key, dedup id and
 * headers point into it, so an asynchronous publish costs one malloc and
 * one free (it was four of each for a plain message). */
static struct pmsg *
pmsg_new(const Ringmq__Message *src)
{
	size_t nh = src->n_headers;
	size_t dedup_len = src->dedup_id ? strlen(src->dedup_id) + 1 : 0;
	size_t size = sizeof(struct pmsg) +
		      nh * (sizeof(Ringmq__Header *) + sizeof(Ringmq__Header)) +
		      src->payload.len + (src->has_key ? src->key.len : 0) +
		      dedup_len;
	Ringmq__Header **hp;
	Ringmq__Header *hs;
	struct pmsg *m;
	uint8_t *p;

	for (size_t i = 0; i < nh; i++)
		size += strlen(src->headers[i]->name) + 1 +
			src->headers[i]->value.len;
	m = malloc(size);
	if (m == NULL)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->pb = *src;
	/* Pointer-aligned parts first (struct pmsg is), then bytes. */
	hp = (Ringmq__Header **)(m + 1);
	hs = (Ringmq__Header *)(hp + nh);
	p = (uint8_t *)(hs + nh);
	m->pb.headers = nh ? hp : NULL;
	for (size_t i = 0; i < nh; i++) {
		const Ringmq__Header *h = src->headers[i];
		size_t name_len = strlen(h->name) + 1;

		ringmq__header__init(&hs[i]);
		hs[i].name = memcpy(p, h->name, name_len);
		p += name_len;
		hs[i].value.len = h->value.len;
		hs[i].value.data =
			h->value.len ? memcpy(p, h->value.data, h->value.len)
				     : p;
		p += h->value.len;
		hp[i] = &hs[i];
	}
	m->pb.payload.data = src->payload.len ? memcpy(p, src->payload.data,
						       src->payload.len)
					      : p;
	p += src->payload.len;
	if (src->has_key) {
		m->pb.key.data =
			src->key.len ? memcpy(p, src->key.data, src->key.len)
				     : p;
		p += src->key.len;
	} else {
		m->pb.key.data = NULL;
	}
	m->pb.dedup_id = dedup_len ? memcpy(p, src->dedup_id, dedup_len) : NULL;
	return m;
}

static void
pmsg_free(struct pmsg *m)
{
	report_fini(&m->rep);
	free(m);
}

/* The address the answering broker of m goes by in its owners, or NULL. */
static const char *
metadata_self(const Ringmq__MetadataOk *m)
{
	for (size_t i = 0; m->broker != NULL && i < m->n_brokers; i++)
		if (strcmp(m->brokers[i]->id, m->broker) == 0)
			return m->brokers[i]->address;
	return NULL;
}

/* Asks the broker for the queue's partition count and which partitions
 * it serves (Metadata). *herep: malloc'ed [*np], 1 where it serves. */
static int
fetch_partitions(struct ringmq_client *c, const char *queue, uint32_t *np,
		 uint8_t **herep)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Metadata md = RINGMQ__METADATA__INIT;
	char *name = (char *)queue;
	const Ringmq__QueueMetadata *q;
	const char *self;
	Ringmq__Frame *resp;
	uint8_t *here;
	int rc;

	md.n_queues = 1;
	md.queues = &name;
	f.body_case = RINGMQ__FRAME__BODY_METADATA;
	f.metadata = &md;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_METADATA_OK, &resp);
	/* Worded as the broker refuses a publish to it. */
	if (rc == RINGMQ_QUEUE_NOT_FOUND)
		return client_fail(c, RINGMQ_QUEUE_NOT_FOUND,
				   "queue not found");
	if (rc != RINGMQ_OK)
		return rc;
	if (resp->metadata_ok->n_queues != 1 ||
	    (q = resp->metadata_ok->queues[0])->n_partitions == 0) {
		frame_free(resp);
		return client_fail(c, RINGMQ_QUEUE_NOT_FOUND,
				   "queue not found");
	}
	here = malloc(q->n_partitions);
	if (here == NULL) {
		frame_free(resp);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	self = metadata_self(resp->metadata_ok);
	for (size_t i = 0; i < q->n_partitions; i++) {
		const char *owner = q->partitions[i]->owner;

		/* No owner yet: the broker takes it where it arrives. */
		here[i] = self == NULL || owner == NULL ||
			  strcmp(owner, self) == 0;
	}
	*np = (uint32_t)q->n_partitions;
	*herep = here;
	frame_free(resp);
	return RINGMQ_OK;
}

/* The first partition from p on (in turn) that the connected broker
 * serves; p itself when it serves none. */
static uint32_t
next_here(const struct ptopic *t, uint32_t p)
{
	for (uint32_t i = 0; i < t->partitions; i++) {
		uint32_t q = (p + i) % t->partitions;

		if (t->here[q])
			return q;
	}
	return p;
}

static int
topic_is_idle(const struct ptopic *t)
{
	for (uint32_t i = 0; i < t->partitions; i++)
		if (t->parts[i].n > 0 || t->parts[i].bhead != NULL)
			return 0;
	return 1;
}

/* Finds or makes the producer state of queue; lock held. */
static int
topic_get(struct ringmq_client *c, const char *queue, struct ptopic **tp)
{
	struct ptopic *t;
	uint32_t n = 0;
	uint8_t *here = NULL;
	int rc;

	for (t = c->producer.topics; t != NULL; t = t->next)
		if (strcmp(t->name, queue) == 0)
			break;
	if (t != NULL && !t->is_stale) {
		*tp = t;
		return RINGMQ_OK;
	}
	rc = fetch_partitions(c, queue, &n, &here);
	if (rc != RINGMQ_OK)
		return rc;
	if (t == NULL) {
		/* Another thread may have made it while the lock was
		 * dropped for the answer. */
		for (t = c->producer.topics; t != NULL; t = t->next)
			if (strcmp(t->name, queue) == 0)
				break;
	}
	if (t != NULL) {
		struct ppart *parts;

		t->is_stale = 0;
		/* A queue made again with other partitions: start over once
		 * nothing of the old one is pending. */
		if (n != t->partitions && topic_is_idle(t)) {
			parts = calloc(n, sizeof(*parts));
			if (parts == NULL) {
				free(here);
				return client_fail(c, RINGMQ_INTERNAL,
						   "out of memory");
			}
			free(t->parts);
			t->parts = parts;
			t->partitions = n;
			t->rr = (uint32_t)(c->rr_seed % n);
			t->rr_bytes = 0;
			t->sync_rr = (uint32_t)((c->rr_seed >> 29) % n);
		}
		/* Which partitions are here may have changed (a move, a
		 * reconnect to another broker), the count not. */
		if (n == t->partitions) {
			free(t->here);
			t->here = here;
		} else {
			free(here);
		}
		*tp = t;
		return RINGMQ_OK;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		free(here);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	t->name = strdup(queue);
	t->parts = calloc(n, sizeof(*t->parts));
	t->here = here;
	if (t->name == NULL || t->parts == NULL) {
		free(t->name);
		free(t->parts);
		free(t->here);
		free(t);
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	}
	t->partitions = n;
	/* Different clients start round-robin at different partitions. */
	t->rr = (uint32_t)((c->rr_seed >> 17) % n);
	t->sync_rr = (uint32_t)((c->rr_seed >> 29) % n);
	t->base_bytes = publish_base_bytes(queue) + SEQ_FIELDS_BYTES;
	t->next = c->producer.topics;
	c->producer.topics = t;
	*tp = t;
	return RINGMQ_OK;
}

/* ------------------------------------------------------------- completion */

/* Hands the outcome of m to its waiting caller and frees m. */
static void
sync_done(struct pmsg *m)
{
	struct psync *s = m->sync;
	struct publish_result *r = &s->res[m->sync_idx];

	r->code = m->rep.code;
	if (r->code == RINGMQ_NOT_OWNER)
		r->partition = m->rep.partition;
	if (r->code == RINGMQ_OK) {
		r->partition = m->rep.partition;
		r->offset = m->rep.offset;
		r->is_duplicate = m->rep.is_duplicate;
	}
	free(r->message);
	r->message = m->rep.message; /* taken */
	m->rep.message = NULL;
	s->msgs[m->sync_idx] = NULL;
	s->n_left--;
	s->is_progress = 1;
	pmsg_free(m);
}

static void
done_push(struct ringmq_client *c, struct pmsg *m)
{
	c->producer.n_outstanding--;
	c->producer.outstanding_bytes -= m->cost;
	if (m->sync != NULL) {
		sync_done(m);
		return;
	}
	m->next = NULL;
	if (c->producer.done_tail != NULL)
		c->producer.done_tail->next = m;
	else
		c->producer.done_head = m;
	c->producer.done_tail = m;
}

/* Completes m with a failure; text copied (none when the copy fails). */
static void
complete_fail(struct ringmq_client *c, struct pmsg *m, int code,
	      const char *text)
{
	m->rep.code = code;
	free(m->rep.message);
	m->rep.message = strdup(text ? text : ringmq_strerror(code));
	done_push(c, m);
}

static void
batch_unlink_part(struct ppart *p, struct pbatch *b)
{
	struct pbatch **pp;

	for (pp = &p->bhead; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	}
	p->btail = NULL;
	for (struct pbatch *x = p->bhead; x != NULL; x = x->next)
		p->btail = x;
	p->n_batches--;
}

/* Frees b (its messages were handed on already). */
static void
batch_free(struct pbatch *b)
{
	free(b->msgs);
	free(b);
}

/* Completes every message of b with code and drops the batch. */
static void
batch_fail(struct ringmq_client *c, struct pbatch *b, int code,
	   const char *text)
{
	struct ppart *p = &b->t->parts[b->partition];

	batch_unlink_part(p, b);
	if (b->request_id == 0)
		c->producer.n_unsent_batches--;
	for (size_t i = 0; i < b->n; i++)
		complete_fail(c, b->msgs[i], code, text);
	batch_free(b);
}

/* --------------------------------------------------------------- sending */

/* Sends b with a fresh request id; stays unsent when out of memory. */
static void
batch_send(struct ringmq_client *c, struct pbatch *b)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
	Ringmq__Message **pbs = malloc(b->n * sizeof(*pbs));
	int rc;

	if (pbs == NULL)
		return; /* tried again on the next round */
	for (size_t i = 0; i < b->n; i++)
		pbs[i] = &b->msgs[i]->pb;
	pub.queue = b->t->name;
	pub.n_messages = b->n;
	pub.messages = pbs;
	pub.has_partition = 1;
	pub.partition = b->partition;
	pub.has_producer_seq = 1;
	pub.producer_seq = b->first_seq;
	f.has_request_id = 1;
	f.request_id = conn_next_request_id(c);
	f.body_case = RINGMQ__FRAME__BODY_PUBLISH;
	f.publish = &pub;
	rc = conn_queue_frame(c, &f);
	free(pbs);
	if (rc == RINGMQ_INTERNAL)
		return; /* tried again on the next round */
	if (rc != RINGMQ_OK) {
		/* Cut to the limits, so only a broker announcing smaller
		 * limits after a reconnect gets here. */
		batch_fail(c, b, rc,
			   "batch over the broker's frame limit after a "
			   "reconnect");
		return;
	}
	b->request_id = f.request_id;
	c->producer.n_unsent_batches--;
	b->inflight_next = c->producer.inflight;
	c->producer.inflight = b;
}

/* Most messages per batch: the option and the broker's limit. */
static size_t
batch_cap(const struct ringmq_client *c)
{
	size_t n = c->opts.batch_max_messages;

	if (c->max_batch_count != 0 && c->max_batch_count < n)
		n = c->max_batch_count;
	return n ? n : 1;
}

/* 1 when the messages queued on p fill a batch. */
static int
part_is_full(const struct ringmq_client *c, const struct ptopic *t,
	     const struct ppart *p)
{
	return p->n >= batch_cap(c) ||
	       t->base_bytes + p->bytes >= c->max_frame_bytes;
}

/* 1 when the messages queued on p should go now. */
static int
part_is_due(const struct ringmq_client *c, const struct ptopic *t,
	    const struct ppart *p, int64_t now_ms)
{
	if (p->n == 0)
		return 0;
	return part_is_full(c, t, p) || c->producer.n_flushing > 0 ||
	       p->n_sync > 0 || now_ms - p->first_ms >= c->opts.linger_ms;
}

/* Cuts the next batch from p's queue; NULL when out of memory. */
static struct pbatch *
batch_cut(struct ringmq_client *c, struct ptopic *t, uint32_t partition,
	  int64_t now_ms)
{
	struct ppart *p = &t->parts[partition];
	size_t cap = batch_cap(c);
	size_t bytes = t->base_bytes;
	struct pbatch *b = calloc(1, sizeof(*b));
	size_t n = 0;

	if (b == NULL)
		return NULL;
	b->msgs = calloc(cap < p->n ? cap : p->n, sizeof(*b->msgs));
	if (b->msgs == NULL) {
		free(b);
		return NULL;
	}
	while (p->head != NULL && n < cap) {
		struct pmsg *m = p->head;

		/* publish checked that one message alone always fits */
		if (n > 0 && bytes + m->cost > c->max_frame_bytes)
			break;
		bytes += m->cost;
		p->head = m->next;
		m->next = NULL;
		p->n--;
		p->bytes -= m->cost;
		if (m->sync != NULL)
			p->n_sync--;
		m->is_cut = 1;
		b->msgs[n++] = m;
	}
	if (p->head == NULL)
		p->tail = NULL;
	p->first_ms = now_ms; /* the rest waits its own linger from now */
	c->producer.n_unsent_msgs -= n;
	b->t = t;
	b->partition = partition;
	b->n = n;
	b->first_seq = p->next_seq;
	p->next_seq += n;
	if (p->btail != NULL)
		p->btail->next = b;
	else
		p->bhead = b;
	p->btail = b;
	p->n_batches++;
	c->producer.n_unsent_batches++;
	return b;
}

void
producer_send_due(struct ringmq_client *c, int64_t now_ms)
{
	/* After a goodbye the broker refuses publishes: keep them for the
	 * next connection. */
	if (!c->is_ready || c->state != CONN_OPEN || c->is_closing ||
	    (c->producer.n_unsent_msgs == 0 &&
	     c->producer.n_unsent_batches == 0) ||
	    now_ms < c->producer.hold_until_ms)
		return;
	for (struct ptopic *t = c->producer.topics; t != NULL; t = t->next) {
		for (uint32_t i = 0; i < t->partitions; i++) {
			struct ppart *p = &t->parts[i];

			/* Resends first, in sequence order. */
			for (struct pbatch *b = p->bhead; b != NULL;) {
				struct pbatch *next = b->next;

				if (b->request_id == 0)
					batch_send(c, b);
				b = next;
			}
			while (p->n_batches < MAX_BATCHES_IN_FLIGHT &&
			       part_is_due(c, t, p, now_ms)) {
				struct pbatch *b = batch_cut(c, t, i, now_ms);

				if (b == NULL)
					break;
				batch_send(c, b);
			}
		}
	}
	conn_try_send(c);
}

/* When the next linger runs out (monotonic ms), or -1 for none. */
static int64_t
producer_next_due_ms(const struct ringmq_client *c)
{
	int64_t due = -1;

	if (c->producer.hold_until_ms > conn_now_ms() &&
	    (c->producer.n_unsent_msgs != 0 ||
	     c->producer.n_unsent_batches != 0))
		return c->producer.hold_until_ms;
	if (c->producer.n_unsent_msgs == 0)
		return -1;
	for (const struct ptopic *t = c->producer.topics; t != NULL;
	     t = t->next) {
		for (uint32_t i = 0; i < t->partitions; i++) {
			const struct ppart *p = &t->parts[i];
			int64_t at;

			/* A partition at its in-flight limit waits for an
			 * answer, which wakes the poll anyway. */
			if (p->n == 0 || p->n_batches >= MAX_BATCHES_IN_FLIGHT)
				continue;
			at = p->first_ms + c->opts.linger_ms;
			if (due < 0 || at < due)
				due = at;
		}
	}
	return due;
}

/* -------------------------------------------------------------- answers */

/* Records a PublishOk for b and completes its messages. */
static void
batch_answered(struct ringmq_client *c, struct pbatch *b,
	       const Ringmq__PublishOk *ok)
{
	for (size_t i = 0; i < b->n; i++) {
		struct pmsg *m = b->msgs[i];
		const Ringmq__PublishResult *pr = ok->results[i];

		if (pr->code != RINGMQ__ERROR_CODE__OK) {
			/* NOT_OWNER names the partition, for a caller that
			 * routes the message to its owner; the partitions
			 * served here are asked again before the next
			 * publish (one moved away). */
			m->rep.partition = b->partition;
			if (pr->code == RINGMQ__ERROR_CODE__NOT_OWNER)
				b->t->is_stale = 1;
			complete_fail(c, m, (int)pr->code, pr->message);
			continue;
		}
		m->rep.code = RINGMQ_OK;
		m->rep.partition =
			pr->has_partition ? pr->partition : b->partition;
		m->rep.offset = pr->offset;
		m->rep.is_duplicate = pr->has_duplicate && pr->duplicate;
		done_push(c, m);
	}
	batch_unlink_part(&b->t->parts[b->partition], b);
	batch_free(b);
}

/* The router's answer hook: takes an answer to a publish batch; 1 when f
 * was one (f consumed). */
static int
producer_on_answer(struct ringmq_client *c, Ringmq__Frame *f)
{
	struct pbatch **bp;
	struct pbatch *b;

	for (bp = &c->producer.inflight; *bp != NULL;
	     bp = &(*bp)->inflight_next)
		if ((*bp)->request_id == f->request_id)
			break;
	if (*bp == NULL)
		return 0;
	b = *bp;
	*bp = b->inflight_next;
	b->inflight_next = NULL;
	if (f->body_case == RINGMQ__FRAME__BODY_PUBLISH_OK &&
	    f->publish_ok->n_results == b->n) {
		batch_answered(c, b, f->publish_ok);
	} else if (f->body_case == RINGMQ__FRAME__BODY_ERROR) {
		int code = (int)f->error->code;
		const char *text = f->error->message;

		if (code == RINGMQ_SHUTTING_DOWN) {
			/* Not stored: goes again after the reconnect; send
			 * nothing more on this connection. */
			c->is_closing = 1;
			b->request_id = 0;
			c->producer.n_unsent_batches++;
		} else if (code == RINGMQ_QUOTA_EXCEEDED) {
			/* Over the user's publish rate: not stored, sent again
			 * when the broker says there is room. The broker
			 * refuses the partition's later batches until this one
			 * comes again, so they keep their order. */
			uint64_t wait = f->error->has_retry_after_ms
						? f->error->retry_after_ms
						: QUOTA_RETRY_MS;
			int64_t until = conn_now_ms() +
					(int64_t)(wait < QUOTA_RETRY_MAX_MS
							  ? wait
							  : QUOTA_RETRY_MAX_MS);

			b->request_id = 0;
			c->producer.n_unsent_batches++;
			if (until > c->producer.hold_until_ms)
				c->producer.hold_until_ms = until;
		} else {
			if (code == RINGMQ_INVALID_ARGUMENT && text != NULL &&
			    strstr(text, "partition") != NULL)
				b->t->is_stale = 1;
			batch_fail(c, b,
				   code == RINGMQ_OK ? RINGMQ_BAD_FRAME : code,
				   text);
		}
	} else {
		batch_fail(c, b, RINGMQ_BAD_FRAME,
			   "protocol error: unexpected answer to a publish");
	}
	frame_free(f);
	conn_wake(c);
	return 1;
}

/* ------------------------------------------------------------ connection */

void
producer_on_lost(struct ringmq_client *c, int code)
{
	/* Every batch sent on the old connection goes again. */
	for (struct pbatch *b = c->producer.inflight; b != NULL;) {
		struct pbatch *next = b->inflight_next;

		b->request_id = 0;
		b->inflight_next = NULL;
		c->producer.n_unsent_batches++;
		b = next;
	}
	c->producer.inflight = NULL;
	if (code == RINGMQ_OK)
		return;
	for (struct ptopic *t = c->producer.topics; t != NULL; t = t->next) {
		for (uint32_t i = 0; i < t->partitions; i++) {
			struct ppart *p = &t->parts[i];

			while (p->bhead != NULL)
				batch_fail(c, p->bhead, code,
					   "not confirmed: it may or may not "
					   "have been stored");
			while (p->head != NULL) {
				struct pmsg *m = p->head;

				p->head = m->next;
				complete_fail(c, m, code, "not sent");
			}
			p->tail = NULL;
			p->n = 0;
			p->bytes = 0;
			p->n_sync = 0;
		}
	}
	c->producer.n_unsent_msgs = 0;
	conn_wake(c);
}

/* The router's tick: sends the due batches; @return when the next linger
 * runs out, or -1. */
static int64_t
producer_tick(struct ringmq_client *c, int64_t now_ms)
{
	producer_send_due(c, now_ms);
	return producer_next_due_ms(c);
}

/* The router's lost hook: with reconnect on, everything stays for a
 * resend; otherwise every message fails. */
static void
producer_conn_lost(struct ringmq_client *c)
{
	producer_on_lost(c, c->opts.is_reconnect ? 0 : RINGMQ_CONNECTION_LOST);
}

const struct conn_hooks producer_hooks = {
	.answer = producer_on_answer,
	.tick = producer_tick,
	.due = producer_next_due_ms,
	.after_io = producer_send_due,
	.lost = producer_conn_lost,
};

void
producer_fini(struct ringmq_client *c)
{
	struct pmsg *m;

	while (c->producer.topics != NULL) {
		struct ptopic *t = c->producer.topics;

		c->producer.topics = t->next;
		for (uint32_t i = 0; i < t->partitions; i++) {
			struct ppart *p = &t->parts[i];

			while (p->bhead != NULL) {
				struct pbatch *b = p->bhead;

				p->bhead = b->next;
				for (size_t k = 0; k < b->n; k++)
					pmsg_free(b->msgs[k]);
				batch_free(b);
			}
			while ((m = p->head) != NULL) {
				p->head = m->next;
				pmsg_free(m);
			}
		}
		free(t->parts);
		free(t->here);
		free(t->name);
		free(t);
	}
	c->producer.inflight = NULL;
	while ((m = c->producer.done_head) != NULL) {
		c->producer.done_head = m->next;
		pmsg_free(m);
	}
	c->producer.done_tail = NULL;
}

int
producer_run_done(struct ringmq_client *c, struct pmsg *list)
{
	int n = 0;

	while (list != NULL) {
		struct pmsg *m = list;

		list = m->next;
		if (m->cb != NULL)
			m->cb(c, &m->rep, m->ctx);
		pmsg_free(m);
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- publish */

/* Waits for room in the outgoing buffer; lock held. */
static int
wait_for_room(struct ringmq_client *c, size_t cost)
{
	int64_t deadline_ms = conn_now_ms() + c->opts.request_timeout_ms;
	int rc = RINGMQ_OK;

	c->producer
		.n_flushing++; /* send what is queued: its answers make room */
	while (c->producer.n_outstanding > 0 &&
	       c->producer.outstanding_bytes + cost >
		       c->opts.max_outstanding_bytes) {
		rc = conn_pump(c, deadline_ms);
		if (rc == RINGMQ_CLOSED ||
		    (rc == RINGMQ_CONNECTION_LOST && !c->opts.is_reconnect))
			break;
		rc = RINGMQ_OK;
		if (conn_now_ms() >= deadline_ms) {
			rc = RINGMQ_TIMEOUT;
			break;
		}
	}
	c->producer.n_flushing--;
	if (rc == RINGMQ_TIMEOUT)
		return client_fail(c, rc,
				   "outgoing buffer still full after %d ms",
				   c->opts.request_timeout_ms);
	if (rc != RINGMQ_OK)
		return client_fail(c, rc, "%s", ringmq_strerror(rc));
	return RINGMQ_OK;
}

/*
 * Checks pb (cost bytes in a Publish) against the broker's limits, for a
 * Publish whose other parts take base_bytes.
 * @return 0, or RINGMQ_MESSAGE_TOO_LARGE with the reason in text.
 */
static int
message_check(const struct ringmq_client *c, size_t base_bytes,
	      const Ringmq__Message *pb, size_t cost, char *text, size_t len)
{
	size_t bytes = message_bytes(pb);

	if (bytes > c->max_message_bytes) {
		snprintf(text, len,
			 "message of %zu bytes (payload, key, headers, dedup "
			 "id) is over the broker's limit of %u bytes",
			 bytes, c->max_message_bytes);
		return RINGMQ_MESSAGE_TOO_LARGE;
	}
	if (pb->n_headers > c->max_header_count) {
		snprintf(text, len,
			 "%zu headers are over the broker's limit of %u",
			 pb->n_headers, c->max_header_count);
		return RINGMQ_MESSAGE_TOO_LARGE;
	}
	if (base_bytes + cost > c->max_frame_bytes) {
		snprintf(text, len,
			 "message of %zu bytes with its headers does not fit "
			 "the broker's frame limit of %u bytes",
			 cost, c->max_frame_bytes);
		return RINGMQ_MESSAGE_TOO_LARGE;
	}
	return 0;
}

/* Gives m (its cost set) a partition of t and queues it there; lock
 * held. @return that partition. */
static struct ppart *
pmsg_enqueue(struct ringmq_client *c, struct ptopic *t, struct pmsg *m)
{
	int64_t part = hashed_partition(&m->pb, t->partitions);
	struct ppart *p;

	if (part < 0 && m->sync != NULL) {
		/* A message at a time, as the broker spreads the keyless
		 * messages of a publish that names no partition. */
		part = next_here(t, t->sync_rr);
		t->sync_rr = ((uint32_t)part + 1) % t->partitions;
	} else if (part < 0) {
		part = t->rr = next_here(t, t->rr);
		t->rr_bytes += m->cost;
		if (t->rr_bytes >= STICKY_PARTITION_BYTES) {
			t->rr = next_here(t, (t->rr + 1) % t->partitions);
			t->rr_bytes = 0;
		}
	}
	/* The batch names the partition; messages do not repeat it. */
	m->pb.has_partition = 0;
	m->rep.queue = t->name;
	m->rep.partition = (uint32_t)part;
	p = &t->parts[part];
	if (p->head == NULL) {
		p->head = m;
		p->first_ms = conn_now_ms();
	} else {
		p->tail->next = m;
	}
	p->tail = m;
	p->n++;
	p->bytes += m->cost;
	if (m->sync != NULL)
		p->n_sync++;
	c->producer.n_unsent_msgs++;
	c->producer.n_outstanding++;
	c->producer.outstanding_bytes += m->cost;
	return p;
}

static int
publish_async_locked(struct ringmq_client *c, const char *queue,
		     const ringmq_message *msg, ringmq_publish_cb cb, void *ctx)
{
	const Ringmq__Message *src = message_pb(msg);
	struct ptopic *t;
	struct ppart *p;
	struct pmsg *m;
	char text[160];
	size_t cost;
	int rc;

	/* As every call: closed, or lost with reconnect off, is final. */
	rc = client_begin(c);
	if (rc != RINGMQ_OK)
		return rc;
	rc = topic_get(c, queue, &t);
	if (rc != RINGMQ_OK)
		return rc;
	cost = message_cost(src);
	if (message_check(c, t->base_bytes, src, cost, text, sizeof(text)))
		return client_fail(c, RINGMQ_MESSAGE_TOO_LARGE, "%s", text);
	if (c->producer.n_outstanding > 0 &&
	    c->producer.outstanding_bytes + cost >
		    c->opts.max_outstanding_bytes) {
		if (!c->opts.is_block_when_full)
			return client_fail(c, RINGMQ_WOULD_BLOCK,
					   "outgoing buffer full (%llu bytes "
					   "unconfirmed)",
					   (unsigned long long)c->producer
						   .outstanding_bytes);
		rc = wait_for_room(c, cost);
		if (rc != RINGMQ_OK)
			return rc;
		/* The wait may have found the queue made again. */
		rc = topic_get(c, queue, &t);
		if (rc != RINGMQ_OK)
			return rc;
	}
	m = pmsg_new(src);
	if (m == NULL)
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	m->cb = cb;
	m->ctx = ctx;
	m->cost = cost;
	p = pmsg_enqueue(c, t, m);
	/* While a batch of the partition is in flight, a due message that
	 * does not fill a batch waits for the next time the client is served
	 * (its answer needs that anyway): a burst published between two
	 * polls then shares one batch. Sent here, the first message of the
	 * burst took the free pipeline slot alone and the rest waited a
	 * whole commit for the next (4 producers, window 64: 7.5 messages a
	 * batch, 382 us in the queue; this way 32 and 13 us). */
	if (c->is_ready && c->state == CONN_OPEN &&
	    (p->n_batches == 0 || part_is_full(c, t, p))) {
		int64_t now_ms = conn_now_ms();

		if (part_is_due(c, t, p, now_ms)) {
			producer_send_due(c, now_ms);
			return RINGMQ_OK;
		}
	}
	if (p->n == 1)
		conn_wake(c); /* a poller may need an earlier deadline */
	return RINGMQ_OK;
}

int
ringmq_publish_async(ringmq_client *c, const char *queue,
		     const ringmq_message *m, ringmq_publish_cb cb, void *ctx)
{
	int rc;

	if (c == NULL)
		return RINGMQ_USAGE;
	if (queue == NULL || m == NULL)
		return client_fail(c, RINGMQ_USAGE, "NULL argument");
	client_lock(c);
	c->errmsg[0] = '\0';
	rc = publish_async_locked(c, queue, m, cb, ctx);
	client_unlock(c);
	return rc;
}

/* ------------------------------------------------------ synchronous publish */

/* Takes m, still in its partition's queue (not cut), off that queue. */
static void
part_unqueue(struct ringmq_client *c, struct ppart *p, struct pmsg *m)
{
	struct pmsg **mp = &p->head;
	struct pmsg *prev = NULL;

	while (*mp != m) {
		prev = *mp;
		mp = &prev->next;
	}
	*mp = m->next;
	if (p->tail == m)
		p->tail = prev;
	p->n--;
	p->bytes -= m->cost;
	if (m->sync != NULL)
		p->n_sync--;
	c->producer.n_unsent_msgs--;
}

/*
 * The caller stops waiting with messages unanswered. One not cut into a
 * batch yet was never sent: it is taken back and fails with code, why
 * telling why. One in a batch stays there (the batch is numbered: a resend
 * must repeat it as it was) and goes on without a caller, as an
 * asynchronous publish with no callback; it gets TIMEOUT: it may have been
 * stored, and may still be.
 */
static void
sync_abandon(struct ringmq_client *c, struct psync *s, int code,
	     const char *why)
{
	char text[600];

	for (size_t i = 0; s->n_left > 0 && i < s->res_n; i++) {
		struct pmsg *m = s->msgs[i];

		if (m == NULL)
			continue;
		if (!m->is_cut) {
			part_unqueue(c, &s->t->parts[m->rep.partition], m);
			snprintf(text, sizeof(text), "not sent: %s", why);
			complete_fail(c, m, code, text); /* via sync_done */
			continue;
		}
		m->sync = NULL;
		s->msgs[i] = NULL;
		s->n_left--;
		snprintf(text, sizeof(text),
			 "no answer within %d ms; it may have been stored, and "
			 "may still be after a reconnect",
			 c->opts.request_timeout_ms);
		s->res[i].code = RINGMQ_TIMEOUT;
		free(s->res[i].message);
		s->res[i].message = strdup(text);
	}
}

int
producer_publish_wait(struct ringmq_client *c, const char *queue,
		      const ringmq_message *const *msgs, size_t n,
		      struct publish_result *res)
{
	size_t base = publish_base_bytes(queue) + SEQ_FIELDS_BYTES;
	struct psync s = { 0 };
	int64_t deadline_ms;
	char text[160];
	int rc = RINGMQ_OK;

	s.res = res;
	s.res_n = n;
	s.msgs = calloc(n ? n : 1, sizeof(*s.msgs));
	if (s.msgs == NULL)
		return client_fail(c, RINGMQ_INTERNAL, "out of memory");
	/* Refused here and never sent: over the broker's limits. */
	for (size_t i = 0; i < n; i++) {
		const Ringmq__Message *pb = message_pb(msgs[i]);

		if (message_check(c, base, pb, message_cost(pb), text,
				  sizeof(text)) != 0) {
			res[i].code = RINGMQ_MESSAGE_TOO_LARGE;
			res[i].message = strdup(text);
		} else {
			s.n_left++;
		}
	}
	if (s.n_left > 0)
		rc = topic_get(c, queue, &s.t);
	for (size_t i = 0; rc == RINGMQ_OK && i < n; i++) {
		const Ringmq__Message *pb = message_pb(msgs[i]);
		struct pmsg *m;

		if (res[i].code != RINGMQ_OK)
			continue;
		m = pmsg_new(pb);
		if (m == NULL) {
			rc = client_fail(c, RINGMQ_INTERNAL, "out of memory");
			break;
		}
		m->cost = message_cost(pb);
		m->sync = &s;
		m->sync_idx = i;
		s.msgs[i] = m;
		(void)pmsg_enqueue(c, s.t, m);
	}
	if (rc != RINGMQ_OK) {
		/* None of them goes: the queue is unknown, or no memory. */
		if (s.t != NULL)
			sync_abandon(c, &s, rc, c->errmsg);
		free(s.msgs);
		return rc;
	}

	producer_send_due(c, conn_now_ms());
	deadline_ms = conn_now_ms() + c->opts.request_timeout_ms;
	while (s.n_left > 0) {
		int prc = conn_pump(c, deadline_ms);

		if (s.is_progress) {
			/* Each answer gives the rest a request timeout more:
			 * a large batch takes several round trips. */
			s.is_progress = 0;
			deadline_ms =
				conn_now_ms() + c->opts.request_timeout_ms;
		}
		/* A close, or a loss with reconnect off, completed every
		 * message already: a guard. */
		if (s.n_left == 0 || prc == RINGMQ_CLOSED ||
		    (prc == RINGMQ_CONNECTION_LOST && !c->opts.is_reconnect))
			break;
		if (conn_now_ms() >= deadline_ms)
			break;
	}
	if (s.n_left > 0 && c->state == CONN_OPEN)
		sync_abandon(c, &s, RINGMQ_TIMEOUT,
			     "the partition's earlier batches are unanswered");
	else if (s.n_left > 0)
		sync_abandon(c, &s, RINGMQ_UNREACHABLE,
			     c->errmsg[0] ? c->errmsg
					  : "no connection to the broker");
	free(s.msgs);
	return RINGMQ_OK;
}

/* --------------------------------------------------------------- reports */

int
ringmq_publish_report_code(const ringmq_publish_report *r)
{
	return r ? r->code : RINGMQ_USAGE;
}

uint32_t
ringmq_publish_report_partition(const ringmq_publish_report *r)
{
	return r ? r->partition : 0;
}

uint64_t
ringmq_publish_report_offset(const ringmq_publish_report *r)
{
	return r && r->code == RINGMQ_OK ? r->offset : 0;
}

int
ringmq_publish_report_is_duplicate(const ringmq_publish_report *r)
{
	return r && r->code == RINGMQ_OK ? r->is_duplicate : 0;
}

const char *
ringmq_publish_report_message(const ringmq_publish_report *r)
{
	return r && r->message ? r->message : "";
}

const char *
ringmq_publish_report_queue(const ringmq_publish_report *r)
{
	return r ? r->queue : "";
}
