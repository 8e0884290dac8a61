/*
 * err.c: status codes (their names and texts), the error message of a
 * client handle and the error buffers of calls that have no handle yet.
 *
 * The bottom of the library with frame.c: every other file reports through
 * client_fail() and starts a call with client_begin(); nothing here calls
 * into another file of the library.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

/* ------------------------------------------------------------ status codes */

struct code_text {
	const char *name;
	const char *text;
};

/* Indexed by code for 0..21 (wire) and by code - 100 for 100..106. */
static const struct code_text wire_codes[] = {
	{ "OK", "success" },
	{ "BAD_FRAME", "frame does not decode or breaks a rule" },
	{ "UNSUPPORTED_VERSION", "protocol version not supported" },
	{ "NOT_HELLO", "a request came before hello" },
	{ "QUEUE_NOT_FOUND", "queue not found" },
	{ "QUEUE_EXISTS", "queue exists with other settings" },
	{ "QUEUE_FULL", "queue is full" },
	{ "STORAGE_FULL", "broker storage is full" },
	{ "LEASE_EXPIRED", "lease expired" },
	{ "NOT_LEASED", "not leased to this connection" },
	{ "GROUP_NOT_FOUND", "consumer group not found" },
	{ "MESSAGE_NOT_FOUND", "message not found" },
	{ "MESSAGE_TOO_LARGE", "message too large" },
	{ "INVALID_ARGUMENT", "invalid argument" },
	{ "TOO_MANY_CONNECTIONS", "too many connections" },
	{ "SHUTTING_DOWN", "broker is shutting down" },
	{ "INTERNAL", "internal error" },
	{ "PERMISSION_DENIED", "permission denied" },
	{ "UNAUTHENTICATED", "not authenticated" },
	{ "QUOTA_EXCEEDED", "quota exceeded" },
	{ "USER_NOT_FOUND", "user not found" },
	{ "USER_EXISTS", "user exists" },
	{ "NOT_OWNER", "partition served by another broker" },
};

static const struct code_text local_codes[] = {
	{ "WOULD_BLOCK", "outgoing buffer is full" },
	{ "TIMEOUT", "timed out" },
	{ "CLOSED", "client is closed" },
	{ "UNREACHABLE", "cannot connect to the broker" },
	{ "CONNECTION_LOST", "connection lost" },
	{ "USAGE", "bad usage" },
	{ "IO", "input/output error" },
};

static const struct code_text *
code_lookup(int code)
{
	size_t nwire = sizeof(wire_codes) / sizeof(wire_codes[0]);
	size_t nlocal = sizeof(local_codes) / sizeof(local_codes[0]);

	if (code >= 0 && (size_t)code < nwire)
		return &wire_codes[code];
	if (code >= 100 && (size_t)(code - 100) < nlocal)
		return &local_codes[code - 100];
	return NULL;
}

const char *
ringmq_strerror(int code)
{
	const struct code_text *t = code_lookup(code);

	return t ? t->text : "unknown error";
}

const char *
ringmq_code_name(int code)
{
	const struct code_text *t = code_lookup(code);

	return t ? t->name : "UNKNOWN";
}

/* ---------------------------------------------------------- error message */

void
errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

int
client_fail(struct ringmq_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

int
client_begin(struct ringmq_client *c)
{
	if (c == NULL)
		return RINGMQ_USAGE;
	c->errmsg[0] = '\0';
	if (c->state == CONN_CLOSED)
		return client_fail(c, RINGMQ_CLOSED, "the client is closed");
	if (c->state == CONN_LOST && !c->opts.is_reconnect)
		return client_fail(c, RINGMQ_CONNECTION_LOST,
				   "the connection was lost");
	return RINGMQ_OK;
}
