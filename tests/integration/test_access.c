/*
 * Integration tests of who may connect (ringmqd --auth), against a real
 * broker on 127.0.0.1. With remote_peer_shim preloaded the broker sees
 * every client as one of another host (192.0.2.1): refused with
 * PERMISSION_DENIED while no auth is configured, accepted with --auth off.
 * Without the shim, a client of the broker's own host is accepted (every
 * other suite relies on that too). The HTTP port follows the same rule,
 * and with a token (http-token-file) wants it from every request.
 *
 * A preloaded library cannot come ahead of the sanitizers' runtime, so the
 * shim is not built in sanitizer builds and those tests skip there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

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

#define TOKEN "s3cret-token-for-tests"

/* Makes the temporary file named by the template file, holding text. */
static void
write_temp(char *file, const char *text)
{
	int fd = mkstemp(file);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The status line's code of GET path from b's HTTP port, with an
 * Authorization header when auth is not NULL. */
static int
http_status(struct harness_broker *b, const char *path, const char *auth)
{
	char req[256];
	char *r;
	int code = 0;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n",
		 path, auth ? "Authorization: " : "", auth ? auth : "",
		 auth ? "\r\n" : "");
	r = testlib_http(b->http_addr, req, strlen(req));
	assert_int_equal(sscanf(r, "HTTP/1.1 %d", &code), 1);
	free(r);
	return code;
}

static void
test_access_http_answers_only_this_host_without_auth(void **state)
{
	static const char *const flags[] = { "--http", "127.0.0.1:0", NULL };
	static const char *const open_flags[] = { "--http", "127.0.0.1:0",
						  "--auth", "off", NULL };
	struct harness_broker b;

	(void)state;
	assert_int_equal(testlib_broker_start(&b, flags), 0);
	assert_int_equal(http_status(&b, "/healthz", NULL), 200);
	assert_int_equal(testlib_broker_stop(&b), 0);
	if (start_seen_remote(&b, flags) < 0)
		skip();
	assert_int_equal(http_status(&b, "/metrics", NULL), 403);
	assert_int_equal(http_status(&b, "/healthz", NULL), 403);
	assert_int_equal(testlib_broker_stop(&b), 0);
	assert_int_equal(start_seen_remote(&b, open_flags), 0);
	assert_int_equal(http_status(&b, "/metrics", NULL), 200);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_access_http_token_is_wanted_from_every_request(void **state)
{
	char file[64] = "/tmp/ringmq-token-XXXXXX";
	const char *flags[] = { "--http", "127.0.0.1:0", "--http-token-file",
				file, NULL };
	struct harness_broker b;
	char *r;
	int fd;

	(void)state;
	write_temp(file, TOKEN "\n");
	assert_int_equal(testlib_broker_start(&b, flags), 0);
	/* From this host too: the token is the rule once given. */
	r = testlib_http(b.http_addr, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	assert_non_null(strstr(r, "401 Unauthorized"));
	assert_non_null(strstr(r, "WWW-Authenticate: Bearer"));
	free(r);
	assert_int_equal(http_status(&b, "/metrics", "Bearer wrong-token-xx"),
			 401);
	assert_int_equal(http_status(&b, "/metrics", "Bearer " TOKEN "x"), 401);
	assert_int_equal(http_status(&b, "/metrics", "Basic " TOKEN), 401);
	assert_int_equal(http_status(&b, "/metrics", "Bearer " TOKEN), 200);
	assert_int_equal(http_status(&b, "/healthz", "bearer " TOKEN), 200);
	assert_int_equal(testlib_broker_stop(&b), 0);
	if (start_seen_remote(&b, flags) == 0) {
		assert_int_equal(http_status(&b, "/metrics", NULL), 401);
		assert_int_equal(http_status(&b, "/metrics", "Bearer " TOKEN),
				 200);
		assert_int_equal(testlib_broker_stop(&b), 0);
	}
	/* A token too short to be one: the broker does not start. */
	fd = open(file, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--http-token-file", file, NULL }),
			 2);
	unlink(file);
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--http-token-file", file, NULL }),
			 2);
}

/* The dashboard follows the HTTP port's rule without auth (this host,
 * or a token); with auth on it serves its page to every host and asks
 * for a login before any figure, while /metrics keeps its rule. */
static void
test_access_dashboard_follows_the_http_rule(void **state)
{
	char boot[64] = "/tmp/ringmq-boot-XXXXXX";
	char file[64] = "/tmp/ringmq-token-XXXXXX";
	static const char *const flags[] = { "--http", "127.0.0.1:0", NULL };
	const char *auth_flags[] = {
		"--http", "127.0.0.1:0",	   "--auth",
		"on",	  "--auth-bootstrap-file", boot,
		NULL
	};
	const char *token_flags[] = { "--http", "127.0.0.1:0",
				      "--http-token-file", file, NULL };
	struct harness_broker b;

	(void)state;
	if (start_seen_remote(&b, flags) < 0)
		skip();
	assert_int_equal(http_status(&b, "/", NULL), 403);
	assert_int_equal(http_status(&b, "/api/overview", NULL), 403);
	assert_int_equal(testlib_broker_stop(&b), 0);
	write_temp(file, TOKEN "\n");
	assert_int_equal(start_seen_remote(&b, token_flags), 0);
	assert_int_equal(http_status(&b, "/api/overview", NULL), 401);
	assert_int_equal(http_status(&b, "/api/overview", "Bearer " TOKEN),
			 200);
	assert_int_equal(testlib_broker_stop(&b), 0);
	unlink(file);
	write_temp(boot, "admin:admin-pass-1\n");
	assert_int_equal(start_seen_remote(&b, auth_flags), 0);
	assert_int_equal(http_status(&b, "/", NULL), 200);
	assert_int_equal(http_status(&b, "/dashboard.js", NULL), 200);
	assert_int_equal(http_status(&b, "/api/session", NULL), 200);
	assert_int_equal(http_status(&b, "/api/overview", NULL), 401);
	assert_int_equal(http_status(&b, "/metrics", NULL), 403);
	{
		/* No password over plain HTTP from another host. */
		static const char login[] =
			"POST /api/login HTTP/1.1\r\nContent-Length: 42\r\n\r\n"
			"{\"user\":\"admin\",\"password\":\"admin-pass-1\"}";
		char *r = testlib_http(b.http_addr, login, sizeof(login) - 1);

		assert_non_null(strstr(r, "HTTP/1.1 403 "));
		assert_non_null(strstr(r, "http-tls on"));
		free(r);
	}
	assert_int_equal(testlib_broker_stop(&b), 0);
	unlink(boot);
}

/* Milliseconds until the broker closes fd (reading and dropping what it
 * sends), or -1 if it is still open after limit_ms. */
static long long
ms_until_closed(int fd, long long limit_ms)
{
	long long start = harness_now_ms();
	char buf[4096];

	while (harness_now_ms() - start < limit_ms) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (read(fd, buf, sizeof(buf)) <= 0)
			return harness_now_ms() - start;
	}
	return -1;
}

static void
test_access_refused_peer_is_held_briefly_and_small(void **state)
{
	static const uint8_t big[4] = { 0, 0x10, 0, 0 }; /* 1 MiB frame */
	struct harness_broker b;
	long long ms;
	int fd;

	(void)state;
	if (start_seen_remote(&b, NULL) < 0)
		skip();
	/* A frame larger than a hello: closed at once. */
	fd = testlib_raw_open(b.port);
	assert_int_equal(write(fd, big, sizeof(big)), 4);
	ms = ms_until_closed(fd, 3000);
	assert_true(ms >= 0 && ms < 3000);
	close(fd);
	/* Silent, or trickling bytes: closed within its few seconds, not
	 * at the idle timeout (a minute). */
	fd = testlib_raw_open(b.port);
	assert_int_equal(write(fd, "\0", 1), 1);
	ms = ms_until_closed(fd, 9000);
	assert_true(ms >= 0);
	close(fd);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_access_refusals_are_counted_in_metrics(void **state)
{
	char file[64] = "/tmp/ringmq-token-XXXXXX";
	const char *flags[] = { "--http", "127.0.0.1:0", "--http-token-file",
				file, NULL };
	const char *req =
		"GET /metrics HTTP/1.1\r\nAuthorization: Bearer " TOKEN
		"\r\n\r\n";
	struct harness_broker b;
	char why[512];
	char *r;

	(void)state;
	write_temp(file, TOKEN); /* the line end is optional */
	if (start_seen_remote(&b, flags) < 0) {
		unlink(file);
		skip();
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(connect_once(&b, why, sizeof(why)),
				 RINGMQ_PERMISSION_DENIED);
	r = testlib_http(b.http_addr, req, strlen(req));
	assert_non_null(strstr(
		r,
		"ringmq_connections_refused_total{reason=\"other_host\"} 2\n"));
	assert_non_null(strstr(
		r,
		"ringmq_connections_refused_total{reason=\"too_many\"} 0\n"));
	free(r);
	assert_int_equal(testlib_broker_stop(&b), 0);
	unlink(file);
}

/* ringmq_backup of c to dir; the client's error message into why. */
static int
backup(ringmq_client *c, const char *dir, char *why, size_t size)
{
	int rc = ringmq_backup(c, dir, NULL);

	snprintf(why, size, "%s", ringmq_client_errmsg(c));
	return rc;
}

static void
test_access_backups_stay_under_backup_dir(void **state)
{
	char dir[64] = "/tmp/ringmq-backups-XXXXXX";
	char out[64] = "/tmp/ringmq-outside-XXXXXX";
	char path[512], link[128];
	const char *flags[] = { "--backup-dir", dir, NULL };
	struct harness_broker b;
	ringmq_client *c;
	char why[512];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(out));
	snprintf(link, sizeof(link), "%s/away", dir);
	assert_int_equal(symlink(out, link), 0);
	assert_int_equal(testlib_broker_start(&b, flags), 0);
	c = testlib_connect(b.addr);
	snprintf(path, sizeof(path), "%s/one", out);
	assert_int_equal(backup(c, path, why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	assert_non_null(strstr(why, "under the broker's backup-dir"));
	snprintf(path, sizeof(path), "%s/../%s/two", dir, out + 5);
	assert_int_equal(backup(c, path, why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	/* A link inside the directory that leads out of it. */
	snprintf(path, sizeof(path), "%s/three", link);
	assert_int_equal(backup(c, path, why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(backup(c, "/", why, sizeof(why)),
			 RINGMQ_PERMISSION_DENIED);
	/* Nothing was written out of it. */
	snprintf(path, sizeof(path), "%s/one", out);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/nightly", dir);
	assert_int_equal(backup(c, path, why, sizeof(why)), RINGMQ_OK);
	snprintf(path, sizeof(path), "%s/nightly/data.mdb", dir);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/nightly", dir);
	assert_int_equal(rmdir(path), 0);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
	unlink(link);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rmdir(out), 0);
}

static void
test_access_remote_backup_needs_backup_dir(void **state)
{
	static const char *const flags[] = { "--auth", "off", NULL };
	struct harness_broker b;
	ringmq_client *c;
	char why[512];

	(void)state;
	if (start_seen_remote(&b, flags) < 0)
		skip();
	c = testlib_connect(b.addr);
	assert_int_equal(
		backup(c, "/tmp/ringmq-never-written", why, sizeof(why)),
		RINGMQ_PERMISSION_DENIED);
	assert_non_null(strstr(why, "needs the broker's backup-dir"));
	assert_int_equal(access("/tmp/ringmq-never-written", F_OK), -1);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_access_changes_are_logged_with_who_asked(void **state)
{
	char log[64] = "/tmp/ringmq-audit-XXXXXX";
	struct harness_broker b;
	ringmq_client *c;
	char *text;
	int fd;

	(void)state;
	fd = mkstemp(log);
	assert_true(fd >= 0);
	close(fd);
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	b.log_path = log;
	assert_int_equal(harness_start(&b, NULL), 0);
	c = testlib_connect(b.addr);
	assert_int_equal(ringmq_queue_create(c, "kept", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "gone", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_queue_purge(c, "kept", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_queue_delete(c, "gone"), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(harness_stop(&b), 0);
	harness_cleanup(&b);
	text = testlib_read_file(log);
	assert_non_null(strstr(text, "audit: conn "));
	assert_non_null(strstr(text, " from 127.0.0.1:"));
	assert_non_null(strstr(text, " asks purge of kept\n"));
	assert_non_null(strstr(text, " asks queue delete of gone\n"));
	/* Creating is not a change an audit line is for. */
	assert_null(strstr(text, "audit: queue create"));
	free(text);
	unlink(log);
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
		cmocka_unit_test(
			test_access_http_answers_only_this_host_without_auth),
		cmocka_unit_test(
			test_access_http_token_is_wanted_from_every_request),
		cmocka_unit_test(test_access_changes_are_logged_with_who_asked),
		cmocka_unit_test(test_access_refusals_are_counted_in_metrics),
		cmocka_unit_test(test_access_dashboard_follows_the_http_rule),
		cmocka_unit_test(test_access_backups_stay_under_backup_dir),
		cmocka_unit_test(
			test_access_refused_peer_is_held_briefly_and_small),
		cmocka_unit_test(test_access_remote_backup_needs_backup_dir),
	};

	shim_path = argc > 1 ? argv[1] : NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
