/*
 * vec: the one way an array grows. The caller keeps the pointer, the
 * count and the capacity; vec_grow makes room by doubling, so that n
 * appends cost O(n) copies in all.
 */
#ifndef RINGMQ_VEC_H
#define RINGMQ_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Room for need elements of size bytes in data, which holds *cap: doubles
 * *cap (from first, when 0) until it holds need, and reallocates.
 * @return the array (data itself when it had room), or NULL when out of
 *         memory (data and *cap are then unchanged).
 */
static inline void *
vec_grow(void *data, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t n = *cap ? *cap : first;
	void *v;

	if (need <= *cap)
		return data;
	/* No object is larger than PTRDIFF_MAX bytes. */
	if (need > PTRDIFF_MAX / size)
		return NULL;
	while (n < need)
		n = n == 0 || n > PTRDIFF_MAX / 2 ? need : n * 2;
	if (n > PTRDIFF_MAX / size)
		n = need; /* the doubling overshot what can be had */
	v = realloc(data, n * size);
	if (v == NULL)
		return NULL;
	*cap = n;
	return v;
}

#endif
