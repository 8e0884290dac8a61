/*
 * Integration tests of the web dashboard on the HTTP port, against real
 * brokers on 127.0.0.1: the page and its files with their headers, the
 * overview's figures against the Stats request and the queue counts, the
 * rates history; with auth on, logins (wrong password, the per-address
 * delay, sessions, logout), what each user sees, and the admin actions
 * (purge, dead-letter redrive, pausing a group) with their CSRF and
 * permission checks. The browser test (dashboard_browser_test) renders
 * the same page in Chromium.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "testlib.h"

#define ADMIN_PW "admin-pass-1"
#define WEB_PW	 "web-pass-1"

static struct harness_broker broker;

/* The answer to req (a whole request) from the broker's HTTP port. */
static char *
http(const char *fmt, ...)
{
	va_list ap;
	char *req;
	char *r;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&req, fmt, ap);
	va_end(ap);
	assert_true(n > 0);
	r = testlib_http(broker.http_addr, req, (size_t)n);
	free(req);
	return r;
}

static char *
get(const char *path, const char *cookie)
{
	return http("GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%sConnection: "
		    "close\r\n\r\n",
		    path, broker.http_addr, cookie ? "Cookie: " : "",
		    cookie ? cookie : "", cookie ? "\r\n" : "");
}

/* A POST of body with the session's cookie and CSRF token (either may be
 * NULL) and extra header lines. */
static char *
post(const char *path, const char *body, const char *cookie, const char *csrf,
     const char *extra)
{
	return http("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n%s%s%s%s%s%s%s"
		    "\r\n%s",
		    path, broker.http_addr, strlen(body),
		    cookie ? "Cookie: " : "", cookie ? cookie : "",
		    cookie ? "\r\n" : "", csrf ? "X-CSRF-Token: " : "",
		    csrf ? csrf : "", csrf ? "\r\n" : "", extra ? extra : "",
		    body);
}

static int
status_of(const char *answer)
{
	int code = 0;

	assert_int_equal(sscanf(answer, "HTTP/1.1 %d", &code), 1);
	return code;
}

/* The number after "key": in text from at on (NULL: -1). */
static double
json_num(const char *at, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = at != NULL ? strstr(at, pat) : NULL;
	return p != NULL ? atof(p + strlen(pat)) : -1;
}

/* The JSON object of queue name in an overview (its row onwards). */
static const char *
queue_row(const char *ov, const char *name)
{
	char pat[96];
	const char *queues = strstr(ov, "\"queues\":[");

	snprintf(pat, sizeof(pat), "{\"name\":\"%s\"", name);
	return queues != NULL ? strstr(queues, pat) : NULL;
}

static const char *
group_row(const char *ov, const char *queue, const char *name)
{
	char pat[160];

	snprintf(pat, sizeof(pat), "{\"queue\":\"%s\",\"name\":\"%s\"", queue,
		 name);
	return strstr(ov, pat);
}

static void
publish(ringmq_client *c, const char *queue, const char *text)
{
	ringmq_message *m = ringmq_message_new(text, strlen(text));

	assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

/* ------------------------------------------------------- without auth */

static int
setup_open(void **state)
{
	static const char *const flags[] = { "--http", "127.0.0.1:0", NULL };

	(void)state;
	return testlib_broker_start(&broker, flags);
}

static int
teardown(void **state)
{
	(void)state;
	return testlib_broker_stop(&broker);
}

/* The page, its script and style come with their types and a policy
 * that lets nothing else in; unknown paths and methods are refused. */
static void
test_page_and_files_are_served_with_their_policy(void **state)
{
	char *r;

	(void)state;
	r = get("/", NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "Content-Type: text/html; charset=utf-8"));
	assert_non_null(strstr(r, "Content-Security-Policy: default-src "
				  "'none'; script-src 'self';"));
	assert_non_null(strstr(r, "X-Frame-Options: DENY\r\n"));
	assert_non_null(strstr(r, "<script src=\"/dashboard.js\"></script>"));
	free(r);
	r = get("/dashboard.js", NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "Content-Type: text/javascript"));
	assert_non_null(strstr(r, "/api/overview"));
	free(r);
	r = get("/dashboard.css", NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "Content-Type: text/css"));
	free(r);
	r = get("/nope", NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	r = get("/api/nope", NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	r = http("DELETE / HTTP/1.1\r\n\r\n");
	assert_int_equal(status_of(r), 405);
	assert_non_null(strstr(r, "Allow: GET, HEAD, POST\r\n"));
	free(r);
	/* /metrics keeps its own rule: GET and HEAD only. */
	r = http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(status_of(r), 405);
	free(r);
	r = get("/api/session", NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "\"auth\":\"local\",\"user\":null"));
	assert_non_null(strstr(r, "Cache-Control: no-store\r\n"));
	free(r);
}

/* Bodies: a length over the limit gets 413 before it is read, a
 * chunked one 411, a length that is not a number 400. */
static void
test_request_bodies_are_bounded(void **state)
{
	char *r;

	(void)state;
	r = http("POST /api/login HTTP/1.1\r\nContent-Length: 9000\r\n\r\n");
	assert_int_equal(status_of(r), 413);
	free(r);
	r = http("POST /api/login HTTP/1.1\r\nTransfer-Encoding: "
		 "chunked\r\n\r\n0\r\n\r\n");
	assert_int_equal(status_of(r), 411);
	free(r);
	r = http("POST /api/login HTTP/1.1\r\nContent-Length: 1x\r\n\r\n");
	assert_int_equal(status_of(r), 400);
	free(r);
	/* A body that comes in pieces is waited for. */
	r = http("POST /api/login HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
	assert_int_equal(status_of(r), 400); /* auth is not on */
	assert_non_null(strstr(r, "auth is not on"));
	free(r);
}

/* The overview says what the Stats request and the queue counts say,
 * and its rates history fills as messages flow. */
static void
test_overview_matches_stats(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	static const char *const names[] = {
		"queues",
		"groups",
		"messages",
		"message_bytes",
		"ready",
		"delayed",
		"in_flight",
		"published_total",
		"delivered_total",
		"acked_total",
		"storage_limit_bytes",
	};
	ringmq_delivery *d = NULL;
	uint32_t sub = 0;
	long long deadline;
	char *ov;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "orders", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_group_create(c, "orders", "billing",
					     RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 5; i++)
		publish(c, "orders", "order");
	assert_int_equal(ringmq_subscribe(c, &sub, "orders", "billing", 2,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, 5000), RINGMQ_OK);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_next(c, &d, 5000), RINGMQ_OK);
	ringmq_delivery_free(d);
	testlib_wait_stat(c, "in_flight", 2);
	ov = get("/api/overview", NULL);
	assert_int_equal(status_of(ov), 200);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		double want = testlib_stat(c, names[i]);

		if (json_num(ov, names[i]) != want)
			fail_msg("%s: overview %g, stats %g", names[i],
				 json_num(ov, names[i]), want);
	}
	/* Our connection is one of them. */
	assert_true(json_num(ov, "connections") >= 1);
	assert_true(json_num(ov, "storage_used_bytes") > 0);
	{
		const char *q = queue_row(ov, "orders");
		const char *g = group_row(ov, "orders", "billing");

		assert_non_null(q);
		assert_int_equal(json_num(q, "messages"), 5);
		assert_int_equal(json_num(q, "ready"), 3);
		assert_int_equal(json_num(q, "in_flight"), 2);
		assert_int_equal(json_num(q, "dead_letters"), 0);
		assert_non_null(strstr(q, "\"can_admin\":false"));
		assert_non_null(g);
		assert_int_equal(json_num(g, "consumers"), 1);
		assert_int_equal(json_num(g, "lag"), 5);
		assert_int_equal(json_num(g, "in_flight"), 2);
		assert_non_null(strstr(g, "\"paused\":false"));
	}
	free(ov);
	/* A sample every 5 s: within two, a rate above zero for what was
	 * published between them. */
	deadline = harness_now_ms() + 20000;
	for (;;) {
		const char *h;

		publish(c, "orders", "more");
		ov = get("/api/overview", NULL);
		h = strstr(ov, "\"publish\":[");
		assert_non_null(h);
		if (h[11] != ']' && strtod(h + 11, NULL) >= 0 &&
		    strstr(h, "\"deliver\":[") != NULL &&
		    json_num(queue_row(ov, "orders"), "publish") > 0) {
			free(ov);
			break;
		}
		free(ov);
		assert_true(harness_now_ms() < deadline);
		usleep(200 * 1000);
	}
	ringmq_client_free(c);
}

/* Without auth on there is nobody to act as: actions are refused and
 * change nothing. */
static void
test_actions_need_auth_on(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	char *r;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "keep", NULL), RINGMQ_OK);
	publish(c, "keep", "x");
	r = post("/api/queues/keep/purge", "{}", NULL, NULL, NULL);
	assert_int_equal(status_of(r), 401);
	assert_non_null(strstr(r, "read-only"));
	free(r);
	r = get("/api/overview", NULL);
	assert_int_equal(json_num(queue_row(r, "keep"), "messages"), 1);
	free(r);
	ringmq_client_free(c);
}

/* ---------------------------------------------------------- with auth */

static char boot_file[64], admin_pw_file[64];

static ringmq_client *
admin_client(void)
{
	char pw[160];

	snprintf(pw, sizeof(pw), "password-file=%s", admin_pw_file);
	return testlib_connect_with(broker.addr, "user=admin", pw, NULL);
}

/* auth on; admin from the bootstrap file; web may publish on jobs.* and
 * consume jobs.work; queues jobs.work (max 1 delivery, so a nack dead-
 * letters), jobs.other and secret. */
static int
setup_auth(void **state)
{
	const char *flags[] = { "--auth", "on",	    "--auth-bootstrap-file",
				NULL,	  "--http", "127.0.0.1:0",
				NULL };
	ringmq_client *a;
	ringmq_queue_opts *qo;

	(void)state;
	testlib_write_temp(boot_file, "admin:" ADMIN_PW "\n");
	testlib_write_temp(admin_pw_file, ADMIN_PW "\n");
	flags[3] = boot_file;
	if (testlib_broker_start(&broker, flags) < 0)
		return -1;
	a = admin_client();
	assert_int_equal(ringmq_user_add(a, "web", WEB_PW), RINGMQ_OK);
	assert_int_equal(
		ringmq_acl_set(a, "web", "jobs.*", RINGMQ_PERM_PUBLISH),
		RINGMQ_OK);
	assert_int_equal(
		ringmq_acl_set(a, "web", "jobs.work", RINGMQ_PERM_CONSUME),
		RINGMQ_OK);
	qo = ringmq_queue_opts_new();
	assert_int_equal(
		ringmq_queue_opts_set(qo, "max-deliveries", "1", NULL, 0),
		RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(a, "jobs.work", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	assert_int_equal(ringmq_queue_create(a, "jobs.other", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(a, "secret", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_group_create(a, "jobs.work", "workers",
					     RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	ringmq_client_free(a);
	return 0;
}

static int
teardown_auth(void **state)
{
	int rc = teardown(state);

	unlink(boot_file);
	unlink(admin_pw_file);
	return rc;
}

struct login {
	char cookie[128]; /* "ringmq_session=..." */
	char csrf[80];
};

/* Logs in as user; fails the test unless it works. */
static void
login(const char *user, const char *password, struct login *out)
{
	char body[256];
	char *r, *p;

	snprintf(body, sizeof(body), "{\"user\":\"%s\",\"password\":\"%s\"}",
		 user, password);
	r = post("/api/login", body, NULL, NULL, NULL);
	if (status_of(r) != 200)
		fail_msg("login %s: %s", user, r);
	p = strstr(r, "Set-Cookie: ");
	assert_non_null(p);
	assert_non_null(strstr(p, "; HttpOnly; SameSite=Strict"));
	assert_int_equal(sscanf(p + 12, "%127[^;]", out->cookie), 1);
	p = strstr(r, "\"csrf\":\"");
	assert_non_null(p);
	assert_int_equal(sscanf(p + 8, "%79[0-9a-f]", out->csrf), 1);
	assert_int_equal(strlen(out->csrf), 64);
	free(r);
}

/* Without a session only the page and /api/session answer; a wrong
 * password is refused, and the address then waits before its next try
 * (429), the way the protocol's hello does. */
static void
test_login_is_required_and_throttled(void **state)
{
	struct login l;
	char *r;

	(void)state;
	r = get("/", NULL);
	assert_int_equal(status_of(r), 200);
	free(r);
	r = get("/api/session", NULL);
	assert_non_null(strstr(r, "\"auth\":\"on\",\"user\":null"));
	free(r);
	r = get("/api/overview", NULL);
	assert_int_equal(status_of(r), 401);
	free(r);
	r = post("/api/login", "{\"user\":\"web\",\"password\":\"wrong\"}",
		 NULL, NULL, NULL);
	assert_int_equal(status_of(r), 401);
	assert_null(strstr(r, "Set-Cookie"));
	free(r);
	r = post("/api/login", "{\"user\":\"web\",\"password\":\"" WEB_PW "\"}",
		 NULL, NULL, NULL);
	assert_int_equal(status_of(r), 429);
	assert_non_null(strstr(r, "Retry-After: 1\r\n"));
	free(r);
	r = post("/api/login", "{\"user\":\"web\"}", NULL, NULL, NULL);
	assert_true(status_of(r) == 400 || status_of(r) == 429);
	free(r);
	usleep(300 * 1000);
	/* A forged cookie is no session. */
	r = get("/api/overview",
		"ringmq_session="
		"00000000000000000000000000000000000000000000000000000000000"
		"00000");
	assert_int_equal(status_of(r), 401);
	free(r);
	login("web", WEB_PW, &l);
	r = get("/api/session", l.cookie);
	assert_non_null(strstr(r, "\"user\":{\"name\":\"web\"}"));
	assert_non_null(strstr(r, l.csrf));
	free(r);
	/* Logging out ends the session. */
	r = post("/api/logout", "{}", l.cookie, l.csrf, NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "Max-Age=0"));
	free(r);
	r = get("/api/overview", l.cookie);
	assert_int_equal(status_of(r), 401);
	free(r);
}

/* A user sees the queues it has a permission on, and may act on none
 * of them without admin; the admin sees all. */
static void
test_users_see_their_queues(void **state)
{
	struct login web, admin;
	char *r;

	(void)state;
	login("web", WEB_PW, &web);
	r = get("/api/overview", web.cookie);
	assert_int_equal(status_of(r), 200);
	assert_non_null(queue_row(r, "jobs.work"));
	assert_non_null(queue_row(r, "jobs.other"));
	assert_null(queue_row(r, "secret"));
	assert_non_null(
		strstr(queue_row(r, "jobs.work"), "\"can_admin\":false"));
	/* Broker-wide figures, as Stats gives any user. */
	assert_int_equal(json_num(r, "queues"), 3);
	free(r);
	r = post("/api/queues/jobs.work/purge", "{}", web.cookie, web.csrf,
		 NULL);
	assert_int_equal(status_of(r), 403);
	assert_non_null(strstr(r, "admin permission"));
	free(r);
	/* A queue it may not see is not found, whether it exists or not. */
	r = post("/api/queues/secret/purge", "{}", web.cookie, web.csrf, NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	/* A new password ends the user's sessions. */
	{
		ringmq_client *a = admin_client();

		assert_int_equal(ringmq_user_passwd(a, "web", WEB_PW "-2"),
				 RINGMQ_OK);
		r = get("/api/overview", web.cookie);
		assert_int_equal(status_of(r), 401);
		free(r);
		assert_int_equal(ringmq_user_passwd(a, "web", WEB_PW),
				 RINGMQ_OK);
		ringmq_client_free(a);
	}
	login("admin", ADMIN_PW, &admin);
	r = get("/api/overview", admin.cookie);
	assert_non_null(queue_row(r, "secret"));
	assert_non_null(strstr(queue_row(r, "secret"), "\"can_admin\":true"));
	free(r);
}

/* Purge: refused without the session's token or from another site's
 * page, done with both; the count comes back. */
static void
test_purge_needs_the_csrf_token(void **state)
{
	ringmq_client *a = admin_client();
	struct login l;
	char *r;

	(void)state;
	for (int i = 0; i < 3; i++)
		publish(a, "jobs.other", "x");
	login("admin", ADMIN_PW, &l);
	r = post("/api/queues/jobs.other/purge", "{}", l.cookie, NULL, NULL);
	assert_int_equal(status_of(r), 403);
	free(r);
	r = post("/api/queues/jobs.other/purge", "{}", l.cookie,
		 "0123456789012345678901234567890123456789012345678901234567"
		 "890123",
		 NULL);
	assert_int_equal(status_of(r), 403);
	free(r);
	r = post("/api/queues/jobs.other/purge", "{}", l.cookie, l.csrf,
		 "Origin: http://evil.example\r\n");
	assert_int_equal(status_of(r), 403);
	free(r);
	/* No cookie, the right token: still no session. */
	r = post("/api/queues/jobs.other/purge", "{}", NULL, l.csrf, NULL);
	assert_int_equal(status_of(r), 401);
	free(r);
	r = get("/api/overview", l.cookie);
	assert_int_equal(json_num(queue_row(r, "jobs.other"), "messages"), 3);
	free(r);
	r = post("/api/queues/jobs.other/purge", "{}", l.cookie, l.csrf, NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "{\"purged\":3}"));
	free(r);
	assert_int_equal(testlib_stat(a, "messages"), 0);
	r = post("/api/queues/nosuch/purge", "{}", l.cookie, l.csrf, NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	r = post("/api/queues/jobs.other/explode", "{}", l.cookie, l.csrf,
		 NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	ringmq_client_free(a);
}

/* Pausing a group stops its deliveries, leaves its consumers attached,
 * and resuming starts them again; a message that died comes back with a
 * redrive. */
static void
test_pause_resume_and_redrive(void **state)
{
	ringmq_client *a = admin_client();
	ringmq_delivery *d = NULL;
	struct login l;
	uint32_t sub = 0;
	uint64_t id;
	int code = -1;
	char *r;

	(void)state;
	login("admin", ADMIN_PW, &l);
	assert_int_equal(ringmq_subscribe(a, &sub, "jobs.work", "workers", 8,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	r = post("/api/queues/jobs.work/groups/workers/pause", "", l.cookie,
		 l.csrf, NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "{\"paused\":true}"));
	free(r);
	publish(a, "jobs.work", "job");
	assert_int_equal(ringmq_next(a, &d, 500), RINGMQ_TIMEOUT);
	r = get("/api/overview", l.cookie);
	{
		const char *g = group_row(r, "jobs.work", "workers");

		assert_non_null(g);
		assert_non_null(strstr(g, "\"paused\":true"));
		assert_int_equal(json_num(g, "consumers"), 1);
		assert_int_equal(json_num(g, "ready"), 1);
	}
	free(r);
	r = get("/metrics", NULL);
	assert_non_null(strstr(r, "ringmq_group_paused{queue=\"jobs.work\","
				  "group=\"workers\"} 1\n"));
	free(r);
	r = post("/api/queues/jobs.work/groups/nosuch/pause", "", l.cookie,
		 l.csrf, NULL);
	assert_int_equal(status_of(r), 404);
	free(r);
	r = post("/api/queues/jobs.work/groups/workers/resume", "", l.cookie,
		 l.csrf, NULL);
	assert_int_equal(status_of(r), 200);
	free(r);
	assert_int_equal(ringmq_next(a, &d, 5000), RINGMQ_OK);
	/* max-deliveries 1: a nack dead-letters it. */
	id = ringmq_delivery_lease_id(d);
	ringmq_delivery_free(d);
	assert_int_equal(ringmq_nack(a, &id, 1, 0, &code), RINGMQ_OK);
	assert_int_equal(code, 0);
	{
		long long deadline = harness_now_ms() + 5000;

		for (;;) {
			r = get("/api/overview", l.cookie);
			if (json_num(queue_row(r, "jobs.work"),
				     "dead_letters") == 1)
				break;
			free(r);
			assert_true(harness_now_ms() < deadline);
			usleep(50 * 1000);
		}
		free(r);
	}
	r = post("/api/queues/jobs.work/redrive", "{\"group\":\"workers\"}",
		 l.cookie, l.csrf, NULL);
	assert_int_equal(status_of(r), 200);
	assert_non_null(strstr(r, "{\"redriven\":1}"));
	free(r);
	assert_int_equal(ringmq_next(a, &d, 5000), RINGMQ_OK);
	ringmq_delivery_free(d);
	r = post("/api/queues/jobs.work/redrive", "{\"group\":3}", l.cookie,
		 l.csrf, NULL);
	assert_int_equal(status_of(r), 400);
	free(r);
	ringmq_client_free(a);
}

int
main(void)
{
	const struct CMUnitTest open_tests[] = {
		cmocka_unit_test(
			test_page_and_files_are_served_with_their_policy),
		cmocka_unit_test(test_request_bodies_are_bounded),
		cmocka_unit_test(test_overview_matches_stats),
		cmocka_unit_test(test_actions_need_auth_on),
	};
	const struct CMUnitTest auth_tests[] = {
		cmocka_unit_test(test_login_is_required_and_throttled),
		cmocka_unit_test(test_users_see_their_queues),
		cmocka_unit_test(test_purge_needs_the_csrf_token),
		cmocka_unit_test(test_pause_resume_and_redrive),
	};
	int failed;

	failed = cmocka_run_group_tests_name("dashboard", open_tests,
					     setup_open, teardown);
	failed += cmocka_run_group_tests_name("dashboard-auth", auth_tests,
					      setup_auth, teardown_auth);
	return failed;
}
