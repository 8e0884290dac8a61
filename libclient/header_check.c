/*
 * header_check.c: ringmq.h must compile on its own as strict C99 (and, in
 * header_check.cpp, as C++); the few checks below keep the status names in
 * step with the enum, which mirrors the wire's ErrorCode.
 */
#include <ringmq.h>

#include <stdio.h>
#include <string.h>

int
main(void)
{
	static const struct {
		int code;
		const char *name;
	} names[] = {
		{ RINGMQ_OK, "OK" },
		{ RINGMQ_BAD_FRAME, "BAD_FRAME" },
		{ RINGMQ_QUEUE_NOT_FOUND, "QUEUE_NOT_FOUND" },
		{ RINGMQ_MESSAGE_TOO_LARGE, "MESSAGE_TOO_LARGE" },
		{ RINGMQ_INTERNAL, "INTERNAL" },
		{ RINGMQ_PERMISSION_DENIED, "PERMISSION_DENIED" },
		{ RINGMQ_WOULD_BLOCK, "WOULD_BLOCK" },
		{ RINGMQ_UNREACHABLE, "UNREACHABLE" },
		{ RINGMQ_CONNECTION_LOST, "CONNECTION_LOST" },
		{ RINGMQ_IO, "IO" },
		{ RINGMQ_UNAUTHENTICATED, "UNAUTHENTICATED" },
		{ RINGMQ_USER_EXISTS, "USER_EXISTS" },
		{ RINGMQ_NOT_OWNER, "NOT_OWNER" },
		{ 23, "UNKNOWN" },
		{ -1, "UNKNOWN" },
	};
	int failed = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(ringmq_code_name(names[i].code), names[i].name) !=
		    0) {
			fprintf(stderr, "code %d named %s, want %s\n",
				names[i].code, ringmq_code_name(names[i].code),
				names[i].name);
			failed = 1;
		}
	}
	if (RINGMQ_INTERNAL != 16 || RINGMQ_PERMISSION_DENIED != 17 ||
	    RINGMQ_USER_EXISTS != 21 || RINGMQ_IO != 106)
		failed = 1;
	return failed;
}
