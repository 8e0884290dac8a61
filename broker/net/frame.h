/*
 * frame: the wire's framing. A frame is a 4-byte big-endian length N and N
 * bytes of one protobuf Frame (proto/ringmq.proto); what the N bytes mean
 * is req/codec's business, where one frame ends is this header's.
 */
#ifndef RINGMQ_FRAME_H
#define RINGMQ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define FRAME_HEADER_BYTES 4u

/*
 * Reads the length prefix at the start of buf.
 * @param[out] frame_bytes  N, the protobuf bytes that follow the prefix;
 *                         set whenever 4 bytes are there (for logging a
 *                         refused N), else 0.
 * @return 0 when the prefix is complete and N is within the limit;
 *         -RMQ_ENEED_MORE with fewer than 4 bytes;
 *         -RMQ_EMESSAGE_TOO_LARGE when N > max_frame_bytes;
 *         -RMQ_EBAD_FRAME when N is 0.
 */
static inline int
frame_length(const uint8_t *buf, size_t len, uint32_t max_frame_bytes,
	     uint32_t *frame_bytes)
{
	uint32_t n;

	*frame_bytes = 0;
	if (len < FRAME_HEADER_BYTES)
		return -RMQ_ENEED_MORE;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
	/* Reported even when refused, so the caller can log the size. */
	*frame_bytes = n;
	if (n == 0)
		return -RMQ_EBAD_FRAME;
	if (n > max_frame_bytes)
		return -RMQ_EMESSAGE_TOO_LARGE;
	return 0;
}

#endif
