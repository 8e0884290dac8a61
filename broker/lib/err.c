/*
 * err: descriptions of broker return codes.
 */
#include "lib/err.h"

#include <string.h>

const char *
err_str(int rc)
{
	int code = rc < 0 ? -rc : rc;

	switch (code) {
	case RMQ_EBAD_FRAME: return "bad frame";
	case RMQ_EUNSUPPORTED_VERSION: return "unsupported protocol version";
	case RMQ_ENOT_HELLO: return "first frame must be hello";
	case RMQ_EQUEUE_NOT_FOUND: return "queue not found";
	case RMQ_EQUEUE_EXISTS: return "queue exists with other settings";
	case RMQ_EQUEUE_FULL: return "queue full";
	case RMQ_ESTORAGE_FULL: return "storage full";
	case RMQ_ELEASE_EXPIRED: return "lease expired";
	case RMQ_ENOT_LEASED: return "not leased";
	case RMQ_EGROUP_NOT_FOUND: return "group not found";
	case RMQ_EMESSAGE_NOT_FOUND: return "message not found";
	case RMQ_EMESSAGE_TOO_LARGE: return "message too large";
	case RMQ_EINVALID_ARGUMENT: return "invalid argument";
	case RMQ_ETOO_MANY_CONNECTIONS: return "too many connections";
	case RMQ_ESHUTTING_DOWN: return "shutting down";
	case RMQ_EINTERNAL: return "internal error";
	case RMQ_EPERMISSION_DENIED: return "permission denied";
	case RMQ_EUNAUTHENTICATED: return "not authenticated";
	case RMQ_EQUOTA_EXCEEDED: return "quota exceeded";
	case RMQ_EUSER_NOT_FOUND: return "user not found";
	case RMQ_EUSER_EXISTS: return "user exists";
	case RMQ_ENOT_OWNER: return "partition served by another broker";
	case RMQ_ECORRUPT: return "record failed its checksum";
	case RMQ_ENOTFOUND: return "record not found";
	case RMQ_EFORMAT: return "data directory has another format version";
	case RMQ_ELOCKED: return "data directory locked by another broker";
	case RMQ_ESTORAGE: return "storage failure";
	case RMQ_ENEED_MORE: return "frame incomplete";
	default: break;
	}
	if (code > 0 && code < RMQ_EBASE)
		return strerror(code);
	return "unknown error";
}
