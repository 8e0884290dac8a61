/*
 * placement: see placement.h.
 */
#include "cluster/placement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t
placement_score(const char *queue, uint32_t part, const char *broker)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s\n%u\n%s", queue, part, broker);

	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	return XXH3_64bits(buf, (size_t)n);
}

struct ranked {
	uint32_t part;
	uint64_t score;
};

static int
by_score_desc(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->part < y->part ? -1 : x->part > y->part;
}

long
placement_assign(const char *queue, uint32_t nparts, const char *const *brokers,
		 size_t nbrokers, int *owner)
{
	size_t *held = calloc(nbrokers ? nbrokers : 1, sizeof(*held));
	size_t *share = calloc(nbrokers ? nbrokers : 1, sizeof(*share));
	size_t *order = calloc(nbrokers ? nbrokers : 1, sizeof(*order));
	struct ranked *r = calloc(nparts ? nparts : 1, sizeof(*r));
	int *before = calloc(nparts ? nparts : 1, sizeof(*before));
	long moved = 0;

	if (nbrokers == 0) {
		moved = -EINVAL;
		goto out;
	}
	if (!held || !share || !order || !r || !before) {
		moved = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nparts; i++) {
		before[i] = owner[i];
		if (owner[i] >= (int)nbrokers)
			owner[i] = -1;
		if (owner[i] >= 0)
			held[owner[i]]++;
	}
	/* Shares: the quotient each, one more for the remainder's worth of
	 * brokers, those holding the most first (fewest moves; ties by
	 * id, the same answer everywhere). */
	for (size_t b = 0; b < nbrokers; b++) {
		order[b] = b;
		share[b] = nparts / nbrokers;
	}
	for (size_t i = 1; i < nbrokers; i++) {
		for (size_t j = i; j > 0; j--) {
			size_t x = order[j - 1], y = order[j];

			if (held[x] > held[y] ||
			    (held[x] == held[y] &&
			     strcmp(brokers[x], brokers[y]) < 0))
				break;
			order[j - 1] = y;
			order[j] = x;
		}
	}
	for (size_t i = 0; i < nparts % nbrokers; i++)
		share[order[i]]++;
	/* Over its share: a broker lets go of the partitions it ranks
	 * lowest. */
	for (size_t b = 0; b < nbrokers; b++) {
		size_t n = 0;

		if (held[b] <= share[b])
			continue;
		for (uint32_t i = 0; i < nparts; i++)
			if (owner[i] == (int)b)
				r[n++] = (struct ranked){
					i, placement_score(queue, i, brokers[b])
				};
		qsort(r, n, sizeof(*r), by_score_desc);
		for (size_t k = share[b]; k < n; k++)
			owner[r[k].part] = -1;
		held[b] = share[b];
	}
	/* The rest, in partition order, to their best-ranked broker with
	 * room. */
	for (uint32_t i = 0; i < nparts; i++) {
		int best = -1;
		uint64_t best_score = 0;

		if (owner[i] >= 0)
			continue;
		for (size_t b = 0; b < nbrokers; b++) {
			uint64_t s = placement_score(queue, i, brokers[b]);

			if (held[b] < share[b] &&
			    (best < 0 || s > best_score)) {
				best = (int)b;
				best_score = s;
			}
		}
		owner[i] = best;
		held[best]++;
	}
	for (uint32_t i = 0; i < nparts; i++)
		moved += owner[i] != before[i];
out:
	free(held);
	free(share);
	free(order);
	free(r);
	free(before);
	return moved;
}
