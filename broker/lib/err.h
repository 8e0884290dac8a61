/*
 * ringmq error codes inside the broker.
 *
 * Broker functions return >= 0 on success and a negative number on failure:
 * -errno for system failures, -RMQ_E* for ringmq's own. RMQ_E* values are
 * 1000 + the wire's ErrorCode (proto/ringmq.proto), so mapping to the wire
 * is arithmetic and never collides with errno. Codes from RMQ_EPRIVATE up
 * exist only inside the broker and map to INTERNAL on the wire unless the
 * caller handles them. The mapping is req/'s (err_to_wire, req/codec.h):
 * nothing below it sees a wire code.
 */
#ifndef RINGMQ_ERR_H
#define RINGMQ_ERR_H

#define RMQ_EBASE 1000

enum rmq_err {
	RMQ_EBAD_FRAME = RMQ_EBASE + 1,
	RMQ_EUNSUPPORTED_VERSION = RMQ_EBASE + 2,
	RMQ_ENOT_HELLO = RMQ_EBASE + 3,
	RMQ_EQUEUE_NOT_FOUND = RMQ_EBASE + 4,
	RMQ_EQUEUE_EXISTS = RMQ_EBASE + 5,
	RMQ_EQUEUE_FULL = RMQ_EBASE + 6,
	RMQ_ESTORAGE_FULL = RMQ_EBASE + 7,
	RMQ_ELEASE_EXPIRED = RMQ_EBASE + 8,
	RMQ_ENOT_LEASED = RMQ_EBASE + 9,
	RMQ_EGROUP_NOT_FOUND = RMQ_EBASE + 10,
	RMQ_EMESSAGE_NOT_FOUND = RMQ_EBASE + 11,
	RMQ_EMESSAGE_TOO_LARGE = RMQ_EBASE + 12,
	RMQ_EINVALID_ARGUMENT = RMQ_EBASE + 13,
	RMQ_ETOO_MANY_CONNECTIONS = RMQ_EBASE + 14,
	RMQ_ESHUTTING_DOWN = RMQ_EBASE + 15,
	RMQ_EINTERNAL = RMQ_EBASE + 16,
	RMQ_EPERMISSION_DENIED = RMQ_EBASE + 17,
	RMQ_EUNAUTHENTICATED = RMQ_EBASE + 18,
	RMQ_EQUOTA_EXCEEDED = RMQ_EBASE + 19,
	RMQ_EUSER_NOT_FOUND = RMQ_EBASE + 20,
	RMQ_EUSER_EXISTS = RMQ_EBASE + 21,
	RMQ_ENOT_OWNER = RMQ_EBASE + 22,
	RMQ_EWIRE_LAST = RMQ_ENOT_OWNER, /* the last with a wire code */

	RMQ_EPRIVATE = RMQ_EBASE + 200,
	RMQ_ECORRUPT,	/* a record failed its CRC32C check */
	RMQ_ENOTFOUND,	/* no such record (storage look-ups) */
	RMQ_EFORMAT,	/* data directory written by another format */
	RMQ_ELOCKED,	/* data directory held by another broker */
	RMQ_ESTORAGE,	/* LMDB failed in a way not listed above */
	RMQ_ENEED_MORE, /* decoder: frame incomplete, read more */
};

/*
 * Describes a broker return code: a negative -errno or -RMQ_E*.
 * @return a static string; never NULL.
 */
const char *err_str(int rc);

#endif
