/*
 * overlay: see overlay.h. An open-addressing hash table of "msgs" keys
 * (linear probing, deletion by backward shift, so no tombstone slots),
 * and the deleted ranges in confirm order. Every operation gets a stamp
 * from one counter, so that a key's put and a range deleting it compare
 * in the order they were made, within a batch too.
 */
#include "store/overlay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/vec.h"

#define KEY_BYTES 16u

struct entry {
	uint8_t key[KEY_BYTES];
	uint64_t seq;	    /* the batch's; 0: free slot */
	uint64_t stamp;	    /* of the operation */
	const uint8_t *val; /* borrowed from the batch; NULL: deleted */
	size_t len;
};

struct range {
	uint64_t seq;
	uint64_t stamp;
	const uint8_t *lo, *hi; /* borrowed from the batch; hi_len 0: none */
	size_t lo_len, hi_len;
};

struct overlay {
	struct entry *slots;
	size_t nslots; /* a power of two, or 0 */
	size_t used;
	struct range *ranges; /* [head, nranges): live, oldest first */
	size_t head, nranges, ranges_cap;
	uint64_t stamp;
};

static uint64_t
key_hash(const uint8_t *k)
{
	uint64_t a, b;

	memcpy(&a, k, 8);
	memcpy(&b, k + 8, 8);
	a ^= b * 0x9e3779b97f4a7c15ull;
	a ^= a >> 31;
	a *= 0xbf58476d1ce4e5b9ull;
	return a ^ (a >> 29);
}

/* The slot holding key, or the free slot where it would go. */
static struct entry *
slot_of(const struct overlay *ov, const uint8_t *key)
{
	size_t mask = ov->nslots - 1, i = key_hash(key) & mask;

	while (ov->slots[i].seq != 0 &&
	       memcmp(ov->slots[i].key, key, KEY_BYTES) != 0)
		i = (i + 1) & mask;
	return &ov->slots[i];
}

static int
grow(struct overlay *ov)
{
	size_t n = ov->nslots ? ov->nslots * 2 : 1024;
	struct entry *old = ov->slots;
	size_t old_n = ov->nslots;

	ov->slots = calloc(n, sizeof(*ov->slots));
	if (ov->slots == NULL) {
		ov->slots = old;
		return -ENOMEM;
	}
	ov->nslots = n;
	for (size_t i = 0; i < old_n; i++)
		if (old[i].seq != 0)
			*slot_of(ov, old[i].key) = old[i];
	free(old);
	return 0;
}

/* Frees slot e, moving back the entries after it that probed past it. */
static void
slot_free(struct overlay *ov, struct entry *e)
{
	size_t mask = ov->nslots - 1, hole = (size_t)(e - ov->slots);

	for (size_t i = (hole + 1) & mask; ov->slots[i].seq != 0;
	     i = (i + 1) & mask) {
		size_t home = key_hash(ov->slots[i].key) & mask;

		/* Movable when its home is not within (hole, i]. */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			ov->slots[hole] = ov->slots[i];
			hole = i;
		}
	}
	ov->slots[hole].seq = 0;
	ov->used--;
}

struct overlay *
overlay_new(void)
{
	struct overlay *ov = calloc(1, sizeof(*ov));

	if (ov != NULL && grow(ov) != 0) {
		free(ov);
		return NULL;
	}
	return ov;
}

void
overlay_free(struct overlay *ov)
{
	if (ov == NULL)
		return;
	free(ov->slots);
	free(ov->ranges);
	free(ov);
}

/* Room for the keys and ranges of b before anything changes, so that a
 * failure leaves the overlay as it was. */
static int
reserve(struct overlay *ov, const struct store_batch *b)
{
	size_t keys = 0, ranges = 0, pos = 0;
	struct store_op op;

	while (store_op_next(b, &pos, &op)) {
		if (op.db != DB_MSGS)
			continue;
		if (op.op == OP_DEL_RANGE)
			ranges++;
		else if (op.key_len == KEY_BYTES)
			keys++;
	}
	while ((ov->used + keys) * 2 > ov->nslots)
		if (grow(ov) != 0)
			return -ENOMEM;
	if (ranges > 0 && ov->head > 0) {
		memmove(ov->ranges, ov->ranges + ov->head,
			(ov->nranges - ov->head) * sizeof(*ov->ranges));
		ov->nranges -= ov->head;
		ov->head = 0;
	}
	if (ranges > 0) {
		void *p =
			vec_grow(ov->ranges, &ov->ranges_cap,
				 ov->nranges + ranges, sizeof(*ov->ranges), 16);

		if (p == NULL)
			return -ENOMEM;
		ov->ranges = p;
	}
	return 0;
}

int
overlay_add(struct overlay *ov, uint64_t seq, const struct store_batch *b)
{
	struct store_op op;
	size_t pos = 0;
	int rc = reserve(ov, b);

	if (rc != 0)
		return rc;
	while (store_op_next(b, &pos, &op)) {
		struct entry *e;

		if (op.db != DB_MSGS)
			continue;
		ov->stamp++;
		if (op.op == OP_DEL_RANGE) {
			ov->ranges[ov->nranges++] = (struct range){
				seq,	ov->stamp,  op.key,
				op.val, op.key_len, op.val_len,
			};
			continue;
		}
		if (op.key_len != KEY_BYTES)
			continue; /* not a message key: LMDB refuses it too */
		e = slot_of(ov, op.key);
		if (e->seq == 0) {
			memcpy(e->key, op.key, KEY_BYTES);
			ov->used++;
		}
		e->seq = seq;
		e->stamp = ov->stamp;
		e->val = op.op == OP_PUT ? op.val : NULL;
		e->len = op.op == OP_PUT ? op.val_len : 0;
	}
	return 0;
}

void
overlay_drop(struct overlay *ov, uint64_t seq, const struct store_batch *b)
{
	struct store_op op;
	size_t pos = 0;

	while (store_op_next(b, &pos, &op)) {
		struct entry *e;

		if (op.db != DB_MSGS || op.op == OP_DEL_RANGE ||
		    op.key_len != KEY_BYTES)
			continue;
		e = slot_of(ov, op.key);
		if (e->seq == seq) /* not replaced by a later batch */
			slot_free(ov, e);
	}
	while (ov->head < ov->nranges && ov->ranges[ov->head].seq <= seq)
		ov->head++;
	if (ov->head == ov->nranges)
		ov->head = ov->nranges = 0;
}

/* LMDB's default order: bytes compared, a prefix first. */
static int
key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int
overlay_get(const struct overlay *ov, const uint8_t key[16],
	    const uint8_t **val, size_t *len)
{
	const struct entry *e = slot_of(ov, key);
	uint64_t stamp = e->seq != 0 ? e->stamp : 0;

	/* A range made after the key's own operation deletes it. */
	for (size_t i = ov->nranges; i > ov->head; i--) {
		const struct range *r = &ov->ranges[i - 1];

		if (r->stamp < stamp)
			break;
		if (key_cmp(key, KEY_BYTES, r->lo, r->lo_len) >= 0 &&
		    (r->hi_len == 0 ||
		     key_cmp(key, KEY_BYTES, r->hi, r->hi_len) < 0))
			return 0;
	}
	if (e->seq == 0)
		return -1;
	if (e->val == NULL)
		return 0;
	*val = e->val;
	*len = e->len;
	return 1;
}

size_t
overlay_size(const struct overlay *ov)
{
	return ov->used + (ov->nranges - ov->head);
}
