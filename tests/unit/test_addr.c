/*
 * Unit tests of addr_is_loopback (broker/net/addr.c), which decides who a
 * broker without auth configured accepts: loopback addresses of both
 * families, IPv4 loopback mapped into IPv6, and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "net/addr.h"

static int
v4(const char *text)
{
	struct sockaddr_in in;

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, text, &in.sin_addr), 1);
	return addr_is_loopback((struct sockaddr *)&in, sizeof(in));
}

static int
v6(const char *text)
{
	struct sockaddr_in6 in6;

	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, text, &in6.sin6_addr), 1);
	return addr_is_loopback((struct sockaddr *)&in6, sizeof(in6));
}

static void
test_addr_loopback_of_both_families(void **state)
{
	(void)state;
	assert_true(v4("127.0.0.1"));
	assert_true(v4("127.255.3.4"));
	assert_true(v6("::1"));
	assert_true(v6("::ffff:127.0.0.1"));
}

static void
test_addr_everything_else_is_not(void **state)
{
	struct sockaddr_un un;
	struct sockaddr_in in;

	(void)state;
	assert_false(v4("10.0.0.1"));
	assert_false(v4("128.0.0.1"));
	assert_false(v4("0.0.0.0"));
	assert_false(v4("192.168.1.127"));
	assert_false(v6("::"));
	assert_false(v6("::2"));
	assert_false(v6("fe80::1"));
	assert_false(v6("::ffff:10.0.0.1"));
	/* 127.0.0.1 as an IPv4-compatible (not mapped) address: not one. */
	assert_false(v6("::127.0.0.1"));
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_false(addr_is_loopback((struct sockaddr *)&un, sizeof(un)));
	/* A length too short for its family is not trusted. */
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_false(addr_is_loopback((struct sockaddr *)&in, 4));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_loopback_of_both_families),
		cmocka_unit_test(test_addr_everything_else_is_not),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
