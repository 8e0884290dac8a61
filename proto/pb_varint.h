/*
 * pb_varint: the length of a protobuf varint, shared by the broker's and
 * the library's hand-written encoders (protobuf-c keeps its own static).
 */
#ifndef RINGMQ_PB_VARINT_H
#define RINGMQ_PB_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the varint holding v: 1 to 10. */
static inline size_t
pb_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

#endif
