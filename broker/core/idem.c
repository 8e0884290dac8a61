/*
 * idem: see idem.h. Both tables are chained hash tables; dedup entries
 * also sit in a FIFO by first sight, which the expiry sweep pops (an entry
 * refreshed since has a newer time and is skipped there).
 */
#include "core/idem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#define IDEM_BUCKETS 256u /* initial; tables double past 1 entry/bucket */

struct dedup_entry {
	uint64_t publish_ms;
	uint64_t offset;
	uint32_t part;
	uint32_t fifo_refs; /* FIFO items pointing here */
	int is_linked;	    /* in the table; freed once unlinked and unref'd */
	uint16_t len;
	struct dedup_entry *next; /* bucket chain */
	char id[];
};

struct fifo_item {
	struct dedup_entry *e; /* borrowed from the table */
	uint64_t publish_ms;   /* e->publish_ms when queued */
};

struct producer {
	uint64_t id;
	uint32_t part;
	struct store_producer st;
	struct producer *next;
};

struct idem {
	struct dedup_entry **dbuckets; /* owned chains */
	size_t ndb, dcount;
	struct fifo_item *fifo; /* owned ring */
	size_t fhead, flen, fcap;
	struct producer **pbuckets; /* owned chains */
	size_t npb, pcount;
};

struct idem *
idem_new(void)
{
	return calloc(1, sizeof(struct idem));
}

/* Frees p and the skips of its batches. */
static void
producer_free(struct producer *p)
{
	store_producer_release(&p->st);
	free(p);
}

void
idem_free(struct idem *d)
{
	if (d == NULL)
		return;
	/* Entries already unlinked live only through the FIFO. */
	for (size_t i = 0; i < d->flen; i++) {
		struct dedup_entry *e = d->fifo[(d->fhead + i) % d->fcap].e;

		if (--e->fifo_refs == 0 && !e->is_linked)
			free(e);
	}
	for (size_t i = 0; i < d->ndb; i++)
		while (d->dbuckets[i]) {
			struct dedup_entry *e = d->dbuckets[i];

			d->dbuckets[i] = e->next;
			free(e);
		}
	for (size_t i = 0; i < d->npb; i++)
		while (d->pbuckets[i]) {
			struct producer *p = d->pbuckets[i];

			d->pbuckets[i] = p->next;
			producer_free(p);
		}
	free(d->dbuckets);
	free(d->pbuckets);
	free(d->fifo);
	free(d);
}

static size_t
dedup_hash(uint32_t part, const void *id, uint16_t len)
{
	return (size_t)XXH64(id, len, part);
}

static struct dedup_entry **
dedup_slot(struct idem *d, uint32_t part, const void *id, uint16_t len)
{
	struct dedup_entry **pp;

	if (d->ndb == 0)
		return NULL;
	pp = &d->dbuckets[dedup_hash(part, id, len) & (d->ndb - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->part == part && (*pp)->len == len &&
		    memcmp((*pp)->id, id, len) == 0)
			return pp;
	return pp;
}

static int
dedup_grow(struct idem *d)
{
	size_t n = d->ndb ? d->ndb * 2 : IDEM_BUCKETS;
	struct dedup_entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < d->ndb; i++)
		while (d->dbuckets[i]) {
			struct dedup_entry *e = d->dbuckets[i];
			size_t h = dedup_hash(e->part, e->id, e->len) & (n - 1);

			d->dbuckets[i] = e->next;
			e->next = b[h];
			b[h] = e;
		}
	free(d->dbuckets);
	d->dbuckets = b;
	d->ndb = n;
	return 0;
}

static int
fifo_push(struct idem *d, struct dedup_entry *e)
{
	if (d->flen == d->fcap) {
		size_t cap = d->fcap ? d->fcap * 2 : 64;
		struct fifo_item *f = malloc(cap * sizeof(*f));

		if (f == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < d->flen; i++)
			f[i] = d->fifo[(d->fhead + i) % d->fcap];
		free(d->fifo);
		d->fifo = f;
		d->fcap = cap;
		d->fhead = 0;
	}
	d->fifo[(d->fhead + d->flen) % d->fcap] =
		(struct fifo_item){ e, e->publish_ms };
	d->flen++;
	e->fifo_refs++;
	return 0;
}

int
idem_dedup_find(struct idem *d, uint32_t part, const void *id, uint16_t len,
		uint64_t now_ms, uint64_t window_ms, uint64_t *offset)
{
	struct dedup_entry **pp = dedup_slot(d, part, id, len);

	if (pp == NULL || *pp == NULL)
		return 0;
	if (now_ms - (*pp)->publish_ms >= window_ms &&
	    (*pp)->publish_ms <= now_ms)
		return 0; /* expired, not swept yet */
	*offset = (*pp)->offset;
	return 1;
}

int
idem_dedup_add(struct idem *d, uint32_t part, const void *id, uint16_t len,
	       uint64_t offset, uint64_t publish_ms)
{
	struct dedup_entry **pp;
	struct dedup_entry *e;

	if ((d->dcount + 1 > d->ndb) && dedup_grow(d) < 0)
		return -ENOMEM;
	pp = dedup_slot(d, part, id, len);
	e = *pp;
	if (e == NULL) {
		e = calloc(1, sizeof(*e) + len);
		if (e == NULL)
			return -ENOMEM;
		e->part = part;
		e->len = len;
		e->is_linked = 1;
		memcpy(e->id, id, len);
		*pp = e;
		d->dcount++;
	}
	e->offset = offset;
	e->publish_ms = publish_ms;
	return fifo_push(d, e);
}

/* Takes e out of the table; the FIFO frees it when its last item pops. */
static void
dedup_unlink(struct idem *d, struct dedup_entry **pp)
{
	struct dedup_entry *e = *pp;

	*pp = e->next;
	e->next = NULL;
	e->is_linked = 0;
	d->dcount--;
}

void
idem_dedup_forget(struct idem *d, uint32_t part, const void *id, uint16_t len,
		  uint64_t offset)
{
	struct dedup_entry **pp = dedup_slot(d, part, id, len);

	if (pp != NULL && *pp != NULL && (*pp)->offset == offset)
		dedup_unlink(d, pp);
}

int
idem_load_dedup(struct idem *d, uint32_t part, const void *id, uint16_t len,
		uint64_t offset, uint64_t publish_ms)
{
	return idem_dedup_add(d, part, id, len, offset, publish_ms);
}

/* ----------------------------------------------------------- producers */

static size_t
producer_hash(uint32_t part, uint64_t id)
{
	return (size_t)((id ^ ((uint64_t)part << 40)) * 0x9E3779B97F4A7C15ull >>
			16);
}

static struct producer *
producer_find(struct idem *d, uint32_t part, uint64_t id)
{
	if (d->npb == 0)
		return NULL;
	for (struct producer *p =
		     d->pbuckets[producer_hash(part, id) & (d->npb - 1)];
	     p; p = p->next)
		if (p->id == id && p->part == part)
			return p;
	return NULL;
}

static struct producer *
producer_get(struct idem *d, uint32_t part, uint64_t id)
{
	struct producer *p = producer_find(d, part, id);
	size_t h;

	if (p != NULL)
		return p;
	if (d->pcount + 1 > d->npb) {
		size_t n = d->npb ? d->npb * 2 : IDEM_BUCKETS;
		struct producer **b = calloc(n, sizeof(*b));

		if (b == NULL)
			return NULL;
		for (size_t i = 0; i < d->npb; i++)
			while (d->pbuckets[i]) {
				struct producer *x = d->pbuckets[i];
				size_t xh =
					producer_hash(x->part, x->id) & (n - 1);

				d->pbuckets[i] = x->next;
				x->next = b[xh];
				b[xh] = x;
			}
		free(d->pbuckets);
		d->pbuckets = b;
		d->npb = n;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->id = id;
	p->part = part;
	h = producer_hash(part, id) & (d->npb - 1);
	p->next = d->pbuckets[h];
	d->pbuckets[h] = p;
	d->pcount++;
	return p;
}

enum idem_seq
idem_producer_check(struct idem *d, uint32_t part, uint64_t producer,
		    uint64_t first_seq, uint32_t count,
		    const struct store_producer_batch **batch)
{
	struct producer *p = producer_find(d, part, producer);
	const struct store_producer_batch *last;

	if (p == NULL || p->st.n == 0)
		return IDEM_SEQ_NEW;
	for (uint32_t i = 0; i < p->st.n; i++)
		if (p->st.batches[i].first_seq == first_seq &&
		    p->st.batches[i].count == count) {
			*batch = &p->st.batches[i];
			return IDEM_SEQ_RESENT;
		}
	last = &p->st.batches[p->st.n - 1];
	if (first_seq >= last->first_seq + last->count)
		return IDEM_SEQ_NEW; /* gaps are fine: refused batches */
	return IDEM_SEQ_STALE;
}

int
idem_producer_add(struct idem *d, uint32_t part, uint64_t producer,
		  const struct store_producer_batch *batch, uint64_t now_ms,
		  struct store_producer *out)
{
	struct producer *p = producer_get(d, part, producer);
	struct store_producer *st;

	if (p == NULL) {
		free(batch->skips);
		return -ENOMEM;
	}
	st = &p->st;
	if (st->n == IDEM_PRODUCER_BATCHES) {
		free(st->batches[0].skips);
		memmove(&st->batches[0], &st->batches[1],
			(st->n - 1) * sizeof(st->batches[0]));
		st->n--;
	}
	st->batches[st->n] = *batch;
	st->n++;
	st->last_used_ms = now_ms;
	*out = *st;
	return 0;
}

void
idem_producer_forget(struct idem *d, uint32_t part, uint64_t producer,
		     uint64_t first_seq)
{
	struct producer *p = producer_find(d, part, producer);

	if (p != NULL && p->st.n > 0 &&
	    p->st.batches[p->st.n - 1].first_seq == first_seq) {
		p->st.n--;
		free(p->st.batches[p->st.n].skips);
		p->st.batches[p->st.n].skips = NULL;
	}
}

void
idem_producer_replace(struct idem *d, uint32_t part, uint64_t producer,
		      const struct store_producer_batch *batch)
{
	struct producer *p = producer_find(d, part, producer);

	for (uint32_t i = 0; p != NULL && i < p->st.n; i++) {
		struct store_producer_batch *pb = &p->st.batches[i];

		if (pb->first_seq != batch->first_seq ||
		    pb->count != batch->count)
			continue;
		free(pb->skips);
		*pb = *batch;
		return;
	}
	free(batch->skips);
}

int
idem_load_producer(struct idem *d, uint32_t part, uint64_t producer,
		   const struct store_producer *sp)
{
	struct producer *p = producer_get(d, part, producer);
	/* Keep the newest. */
	uint32_t drop = sp->n > IDEM_PRODUCER_BATCHES
				? sp->n - IDEM_PRODUCER_BATCHES
				: 0;

	if (p == NULL)
		return -ENOMEM;
	store_producer_release(&p->st);
	p->st.last_used_ms = sp->last_used_ms;
	p->st.n = 0;
	for (uint32_t i = drop; i < sp->n; i++) {
		struct store_producer_batch *pb = &p->st.batches[p->st.n];
		size_t bytes = sp->batches[i].nskips * sizeof(*pb->skips);

		*pb = sp->batches[i];
		pb->skips = NULL;
		if (bytes > 0 && (pb->skips = malloc(bytes)) == NULL)
			return -ENOMEM;
		if (bytes > 0)
			memcpy(pb->skips, sp->batches[i].skips, bytes);
		p->st.n++;
	}
	return 0;
}

/* -------------------------------------------------------------- expiry */

int
idem_expire(struct idem *d, uint32_t qid, uint64_t now_ms, uint64_t window_ms,
	    struct store_batch *b)
{
	int n = 0;
	while (d->flen > 0) {
		struct fifo_item f = d->fifo[d->fhead];
		struct dedup_entry *e = f.e;

		if (e->is_linked && e->publish_ms == f.publish_ms &&
		    now_ms - f.publish_ms < window_ms && f.publish_ms <= now_ms)
			break;
		if (e->is_linked && e->publish_ms == f.publish_ms) {
			if (store_batch_del_dedup(b, qid, e->part, e->id,
						  e->len) < 0)
				return -ENOMEM;
			dedup_unlink(d, dedup_slot(d, e->part, e->id, e->len));
			n++;
		}
		d->fhead = (d->fhead + 1) % d->fcap;
		d->flen--;
		if (--e->fifo_refs == 0 && !e->is_linked)
			free(e);
	}
	for (size_t i = 0; i < d->npb; i++) {
		struct producer **pp = &d->pbuckets[i];

		while (*pp) {
			struct producer *p = *pp;

			if (now_ms - p->st.last_used_ms < window_ms) {
				pp = &p->next;
				continue;
			}
			if (store_batch_del_producer(b, qid, p->part, p->id) <
			    0)
				return -ENOMEM;
			*pp = p->next;
			d->pcount--;
			producer_free(p);
			n++;
		}
	}
	return n;
}
