/*
 * wire: stored messages as protobuf messages for sending.
 *
 * A struct wire_msg wraps a Ringmq__Message whose payload, key and header
 * values point into a store view (the LMDB map) and whose header names and
 * dedup id are copied (protobuf strings end in NUL; stored ones do not).
 * Pack it before the view dies (store_read_release); _fini frees copies.
 */
#ifndef RINGMQ_WIRE_H
#define RINGMQ_WIRE_H

#include "ringmq.pb-c.h"
#include "store/store.h"

struct wire_msg {
	Ringmq__Message m;
	Ringmq__Header *hs;  /* owned */
	Ringmq__Header **hp; /* owned */
	char *names;	     /* owned: the header names, NUL-terminated */
	char *dedup;	     /* owned */
};

/* @return 0, or -ENOMEM (w is then safe to _fini). */
int wire_msg_init(struct wire_msg *w, const struct store_msg_view *v);
void wire_msg_fini(struct wire_msg *w);

struct delivery;

/*
 * The Delivery frame of d and v, encoded by hand because it is the frame
 * every message goes out in: exactly the bytes protobuf-c packs for the
 * Frame the delivery path used to build from a wire_msg (fields in number
 * order, required ones always, optional ones when set, names and the
 * dedup id up to a NUL as C strings are), with no message built and no
 * copy but into out.
 *
 * wire_delivery_size: the bytes of the frame, its length prefix included.
 * wire_delivery_encode: writes them to out (that many bytes); @return them.
 */
size_t wire_delivery_size(const struct delivery *d,
			  const struct store_msg_view *v);
size_t wire_delivery_encode(const struct delivery *d,
			    const struct store_msg_view *v, uint8_t *out);

struct publish_result;

/*
 * The answers to every publish and every ack, by hand for the same
 * reason: a PublishOk of res[0 .. n) (partition and offset when the code
 * is OK, the duplicate flag when set, else the reason), and a LeaseResult
 * of codes[0 .. n) with remaining_ms[0 .. n) when not NULL; both with
 * request_id set. The bytes are protobuf-c's, length prefix included.
 */
size_t wire_publish_ok_size(uint64_t request_id,
			    const struct publish_result *res, size_t n);
size_t wire_publish_ok_encode(uint64_t request_id,
			      const struct publish_result *res, size_t n,
			      uint8_t *out);
size_t wire_lease_result_size(uint64_t request_id, const int *codes,
			      const uint64_t *remaining_ms, size_t n);
size_t wire_lease_result_encode(uint64_t request_id, const int *codes,
				const uint64_t *remaining_ms, size_t n,
				uint8_t *out);

#endif
