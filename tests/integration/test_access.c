/*
 * Integration tests of who may connect (ringmqd --auth), against a real
 * broker on 127.0.0.1. With remote_peer_shim preloaded the broker sees
 * every client as one of another host (192.0.2.1): refused with
 * PERMISSION_DENIED while no auth is configured, accepted with --auth off.
 * Without the shim, a client of the broker's own host is accepted (every
 * other suite relies on that too).
 *
 * A preloaded library cannot come ahead of the sanitizers' runtime, so the
 * shim is not built in sanitizer builds and those tests skip there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "ringmq.h"
#include "testlib.h"

static const char *shim_path; /* argv[1]: remote_peer_shim, or NULL */

/* Starts a broker with flags that sees its clients as remote ones.
 * @return 0, or -1 (skipped) where the shim is not built. */
static int
start_seen_remote(struct harness_broker *b, const char *const *flags)
{
	const char *shim = shim_path;
	int rc;

	if (shim == NULL || shim[0] == '\0')
		return -1;
	/* Only the broker, started now, loads it. */
	assert_int_equal(setenv("LD_PRELOAD", shim, 1), 0);
	rc = testlib_broker_start(b, flags);
	unsetenv("LD_PRELOAD");
	assert_int_equal(rc, 0);
	return 0;
}

/* Connects to b once, without retries. @return the library's code; the
 * client's error message into why. */
static int
connect_once(struct harness_broker *b, char *why, size_t size)
{
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *c = NULL;
	int rc;

	assert_non_null(o);
	assert_int_equal(ringmq_opts_set(o, "server", b->addr, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "reconnect", "false", NULL, 0),
			 RINGMQ_OK);
	why[0] = '\0';
	rc = ringmq_client_connect(&c, o, why, size);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	return rc;
}

static void
test_access_remote_client_refused_without_auth(void **state)
{
	struct harness_broker b;
	char why[512];

	(void)state;
	if (start_seen_remote(&b, NULL) < 0)
		skip();
	assert_int_equal(connect_once(&b, why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	assert_non_null(strstr(why, "accepts only clients on its own host"));
	assert_non_null(strstr(why, "--auth off"));
	/* Refused, not broken: the broker still serves and still refuses. */
	assert_int_equal(connect_once(&b, why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_access_remote_client_accepted_with_auth_off(void **state)
{
	static const char *const flags[] = { "--auth", "off", NULL };
	struct harness_broker b;
	ringmq_client *c;
	char why[512];

	(void)state;
	if (start_seen_remote(&b, flags) < 0)
		skip();
	assert_int_equal(connect_once(&b, why, sizeof(why)), RINGMQ_OK);
	c = testlib_connect(b.addr);
	assert_int_equal(ringmq_queue_create(c, "open", NULL), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_access_local_client_accepted_without_auth(void **state)
{
	struct harness_broker b;
	char why[512];

	(void)state;
	assert_int_equal(testlib_broker_start(&b, NULL), 0);
	assert_int_equal(connect_once(&b, why, sizeof(why)), RINGMQ_OK);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_access_remote_client_refused_without_auth),
		cmocka_unit_test(
			test_access_remote_client_accepted_with_auth_off),
		cmocka_unit_test(
			test_access_local_client_accepted_without_auth),
	};

	shim_path = argc > 1 ? argv[1] : NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
