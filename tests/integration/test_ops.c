/*
 * Integration tests of what operators use: GET /metrics (checked with
 * promtool when installed, and for numbers that move with the load) and
 * GET /healthz, on a real broker started with --http 127.0.0.1:0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ringmq.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "testlib.h"

#define WAIT_MS 5000

static struct harness_broker broker;

static int
setup_broker(void **state)
{
	static const char *const flags[] = { "--http", "127.0.0.1:0", NULL };

	(void)state;
	return testlib_broker_start(&broker, flags);
}

static int
teardown_broker(void **state)
{
	(void)state;
	return testlib_broker_stop(&broker);
}

/* Sends the len bytes of req to the broker's HTTP listener; returns the
 * whole answer (head and body), malloc'ed. */
static char *
http_request(const char *req, size_t len)
{
	return testlib_http(broker.http_addr, req, len);
}

/* http_request of a C string. */
static char *
http_text(const char *req)
{
	return http_request(req, strlen(req));
}

/* GETs path from the broker's HTTP listener; returns the whole answer
 * (head and body), malloc'ed. */
static char *
http_get(const char *path)
{
	char req[256];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	return http_text(req);
}

/* The value of the sample line starting with prefix, or -1. */
static double
sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t len = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ')
			return atof(p + len + 1);
		p += len;
	}
	return -1;
}

static void
test_healthz_answers_ok(void **state)
{
	char *r = http_get("/healthz");

	(void)state;
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "\r\n\r\nok\n"));
	free(r);
	r = http_get("/nope");
	assert_non_null(strstr(r, "HTTP/1.1 404"));
	free(r);
}

/* HEAD gets GET's head without its body; another method gets 405 with
 * Allow; what is no request line, or holds a NUL, gets 400; a head over
 * the limit gets 431, read to its end so that the answer arrives. */
static void
test_http_methods_and_bad_requests(void **state)
{
	static const char nul[] = "GET /healthz\0 HTTP/1.1\r\n\r\n";
	static char big[16384 + 64];
	size_t n;
	char *r;

	(void)state;
	r = http_text("HEAD /healthz HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Length: 3\r\n"));
	assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");
	free(r);
	r = http_text("PUT /metrics HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 405 "));
	assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
	free(r);
	r = http_text("GARBAGE\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 400 "));
	free(r);
	r = http_request(nul, sizeof(nul) - 1);
	assert_non_null(strstr(r, "HTTP/1.1 400 "));
	free(r);
	n = (size_t)snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nX: ");
	memset(big + n, 'x', 16384);
	memcpy(big + n + 16384, "\r\n\r\n", 4);
	r = http_request(big, n + 16384 + 4);
	assert_non_null(strstr(r, "HTTP/1.1 431 "));
	free(r);
}

/* While the broker shuts down (a client keeps it waiting), /healthz still
 * answers: 503, "shutting down". Restarts the broker for the next tests. */
static void
test_healthz_says_shutting_down(void **state)
{
	int fd = testlib_raw_open(broker.port);
	char *r;

	(void)state;
	(void)testlib_raw_hello(fd, 0);
	/* The connection, told goodbye, is kept up to 0.5 s for our EOF. */
	kill(broker.pid, SIGTERM);
	usleep(50 * 1000);
	{
		/* No longer accepting: a connect is refused at once. */
		struct sockaddr_in sa = { .sin_family = AF_INET };
		int nfd = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_port = htons((uint16_t)broker.port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(
			connect(nfd, (struct sockaddr *)&sa, sizeof(sa)), -1);
		assert_int_equal(errno, ECONNREFUSED);
		close(nfd);
	}
	r = http_get("/healthz");
	assert_non_null(strstr(r, "HTTP/1.1 503"));
	assert_non_null(strstr(r, "shutting down\n"));
	free(r);
	close(fd);
	assert_int_equal(harness_stop(&broker), 0);
	assert_int_equal(harness_start(&broker, NULL), 0);
}

/* Runs promtool check metrics on text; 77 when promtool is missing. */
static int
promtool_check(const char *text)
{
	char path[] = "/tmp/ringmq-metrics-XXXXXX";
	char cmd[128];
	int fd = mkstemp(path), status;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	if (system("command -v promtool > /dev/null 2>&1") != 0) {
		unlink(path);
		return 77;
	}
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	status = system(cmd);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_metrics_are_valid_and_move_with_load(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	uint32_t sub;
	char *before, *after, *body;
	int rc;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "ops", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	{
		ringmq_message *m = ringmq_message_new("x", 1);

		assert_int_equal(
			ringmq_publish(c, "nowhere", m, NULL, NULL, NULL),
			RINGMQ_QUEUE_NOT_FOUND);
		ringmq_message_free(m);
		/* The library refused that publish from the queue list; the
		 * broker refuses this one itself. */
		assert_int_equal(ringmq_queue_delete(c, "nowhere"),
				 RINGMQ_QUEUE_NOT_FOUND);
	}
	before = http_get("/metrics");
	for (int i = 0; i < 200; i++) {
		ringmq_message *m = ringmq_message_new("load", 4);

		assert_int_equal(ringmq_publish(c, "ops", m, NULL, NULL, NULL),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(ringmq_subscribe(c, &sub, "ops", "g", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 100; i++) {
		ringmq_delivery *d = NULL;
		uint64_t id;

		assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
		id = ringmq_delivery_lease_id(d);
		assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	after = http_get("/metrics");
	body = strstr(after, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_non_null(strstr(after, "text/plain; version=0.0.4"));
	rc = promtool_check(body);
	if (rc != 77)
		assert_int_equal(rc, 0);
	assert_true(sample(before, "ringmq_published_total{queue=\"ops\"}") ==
		    0);
	assert_true(sample(body, "ringmq_published_total{queue=\"ops\"}") ==
		    200);
	assert_true(sample(body, "ringmq_acked_total{queue=\"ops\"}") == 100);
	assert_true(sample(body, "ringmq_delivered_total{queue=\"ops\"}") >=
		    100);
	assert_true(sample(body, "ringmq_queue_messages{queue=\"ops\"}") >=
		    100);
	assert_true(
		sample(body,
		       "ringmq_group_consumers{queue=\"ops\",group=\"g\"}") ==
		1);
	assert_true(sample(body, "ringmq_publish_confirm_seconds_count") >=
		    200);
	assert_true(sample(body, "ringmq_connections") >= 1);
	/* Errors by their names, as the library and the CLI say them. */
	assert_true(
		sample(body, "ringmq_errors_total{code=\"QUEUE_NOT_FOUND\"}") >=
		1);
	/* 100 messages left unacked: both ages exist (0 or more). */
	assert_true(sample(body,
			   "ringmq_queue_oldest_age_seconds{queue=\"ops\"}") >=
		    0);
	assert_true(sample(body, "ringmq_group_oldest_age_seconds{queue="
				 "\"ops\",group=\"g\"}") >= 0);
	/* Every publish and ack flush went through a commit. */
	assert_true(sample(body, "ringmq_commit_seconds_count") >= 1);
	assert_true(sample(body, "ringmq_commit_batches_sum") >=
		    sample(body, "ringmq_commit_batches_count"));
	assert_true(sample(body, "ringmq_storage_limit_bytes") > 0);
	assert_true(sample(body, "ringmq_process_resident_memory_bytes") > 0);
	/* The journal (unless this run turned it off): the 200 publishes
	 * and the acks went through it, and LMDB lags it by at most what
	 * it has not applied. */
	if (harness_journal() != 0) {
		assert_true(sample(body, "ringmq_journal_records_total") >= 2);
		assert_true(
			sample(body, "ringmq_journal_applied_records_total") <=
			sample(body, "ringmq_journal_records_total"));
		assert_true(sample(body, "ringmq_journal_unapplied_bytes") >=
			    0);
	} else {
		assert_true(sample(body, "ringmq_journal_records_total") < 0);
	}
	free(before);
	free(after);
	ringmq_client_free(c);
}

/* The publish-to-delivery histogram measures how long a message waited:
 * one held back 400 ms before anyone subscribed adds about that much. */
static void
test_delivery_latency_counts_the_wait(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	ringmq_message *m = ringmq_message_new("late", 4);
	ringmq_delivery *d = NULL;
	double sum0, count0, sum1, count1;
	char *text;
	uint32_t sub;
	uint64_t id;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "late", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	text = http_get("/metrics");
	sum0 = sample(text, "ringmq_publish_delivery_seconds_sum");
	count0 = sample(text, "ringmq_publish_delivery_seconds_count");
	free(text);
	assert_int_equal(ringmq_publish(c, "late", m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
	usleep(400 * 1000);
	assert_int_equal(ringmq_subscribe(c, &sub, "late", "g", 1,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
	id = ringmq_delivery_lease_id(d);
	assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
	ringmq_delivery_free(d);
	text = http_get("/metrics");
	sum1 = sample(text, "ringmq_publish_delivery_seconds_sum");
	count1 = sample(text, "ringmq_publish_delivery_seconds_count");
	free(text);
	assert_true(count1 - count0 == 1);
	assert_true(sum1 - sum0 >= 0.39);
	assert_true(sum1 - sum0 < 0.39 + WAIT_MS / 1e3);
	ringmq_client_free(c);
}

static void
on_confirmed(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	(void)c;
	if (ringmq_publish_report_code(r) == RINGMQ_OK)
		(*(int *)ctx)++;
}

/* Publish requests the broker has answered, from its metrics. */
static double
publish_requests(void)
{
	char *text = http_get("/metrics");
	double n = sample(text, "ringmq_publish_confirm_seconds_count");

	free(text);
	assert_true(n >= 0);
	return n;
}

/* With linger-ms=0 the first asynchronous publish leaves at once; the
 * rest of a burst, published while it is in flight, leave together at the
 * next serve (here the flush) instead of one batch each (the broker's
 * request count says which). */
static void
test_async_publish_burst_shares_one_batch(void **state)
{
	ringmq_client *c =
		testlib_connect_with(broker.addr, "linger-ms=0", NULL);
	double before;
	int confirmed = 0;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "burst", NULL), RINGMQ_OK);
	before = publish_requests();
	for (int i = 0; i < 100; i++) {
		ringmq_message *m = ringmq_message_new("job", 3);

		assert_int_equal(ringmq_publish_async(c, "burst", m,
						      on_confirmed, &confirmed),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(ringmq_client_flush(c, WAIT_MS), RINGMQ_OK);
	assert_int_equal(confirmed, 100);
	assert_true(publish_requests() - before == 2);
	/* Nothing in flight now: the next one goes at once, alone. */
	{
		ringmq_message *m = ringmq_message_new("job", 3);

		assert_int_equal(ringmq_publish_async(c, "burst", m,
						      on_confirmed, &confirmed),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	/* ... without waiting for a call into the client. */
	{
		long long deadline = harness_now_ms() + WAIT_MS;

		while (publish_requests() - before < 3)
			assert_true(harness_now_ms() < deadline);
	}
	assert_int_equal(ringmq_client_poll(c, WAIT_MS), 1);
	assert_int_equal(confirmed, 101);
	assert_true(publish_requests() - before == 3);
	ringmq_client_free(c);
}

/* Sends a Backup of the running broker into dir over a raw connection;
 * returns the answer's body case. */
static int
raw_backup(const char *dir, uint64_t *bytes)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Backup bk = RINGMQ__BACKUP__INIT;
	struct sockaddr_in sa;
	uint8_t buf[4096];
	size_t n, got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), answers = 0, body = -1;
	long long deadline = harness_now_ms() + 30000;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)broker.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	h.version = 1;
	f.has_request_id = 1;
	f.request_id = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	for (int i = 0; i < 2; i++) {
		n = ringmq__frame__pack(&f, buf + 4);
		buf[0] = buf[1] = 0;
		buf[2] = (uint8_t)(n >> 8);
		buf[3] = (uint8_t)n;
		assert_int_equal(write(fd, buf, n + 4), (ssize_t)(n + 4));
		bk.path = (char *)dir;
		f.request_id = 2;
		f.body_case = RINGMQ__FRAME__BODY_BACKUP;
		f.backup = &bk;
	}
	/* Two answers: HelloOk, then the backup's. */
	while (answers < 2) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_true(harness_now_ms() < deadline);
		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, buf + got, sizeof(buf) - got);
		assert_true(r > 0);
		got += (size_t)r;
		while (got >= 4) {
			size_t len = ((size_t)buf[2] << 8) | buf[3];
			Ringmq__Frame *a;

			if (got < 4 + len)
				break;
			a = ringmq__frame__unpack(NULL, len, buf + 4);
			assert_non_null(a);
			if (++answers == 2) {
				body = (int)a->body_case;
				if (a->body_case ==
				    RINGMQ__FRAME__BODY_BACKUP_OK)
					*bytes = a->backup_ok->bytes;
			}
			ringmq__frame__free_unpacked(a, NULL);
			memmove(buf, buf + 4 + len, got - 4 - len);
			got -= 4 + len;
		}
	}
	close(fd);
	return body;
}

static void
test_backup_is_a_data_directory_with_everything(void **state)
{
	ringmq_client *c = testlib_connect(broker.addr);
	struct harness_broker copy;
	char dir[128] = "/tmp/ringmq-test-XXXXXX";
	uint64_t bytes = 0;
	uint32_t sub;

	(void)state;
	assert_int_equal(ringmq_queue_create(c, "kept", NULL), RINGMQ_OK);
	for (int i = 0; i < 50; i++) {
		ringmq_message *m = ringmq_message_new("keep me", 7);

		assert_int_equal(ringmq_publish(c, "kept", m, NULL, NULL, NULL),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(ringmq_subscribe(c, &sub, "kept", "g", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 10; i++) {
		ringmq_delivery *d = NULL;
		uint64_t id;

		assert_int_equal(ringmq_next(c, &d, WAIT_MS), RINGMQ_OK);
		id = ringmq_delivery_lease_id(d);
		assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
		ringmq_delivery_free(d);
	}
	ringmq_client_free(c);
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/copy");
	assert_int_equal(raw_backup(dir, &bytes),
			 RINGMQ__FRAME__BODY_BACKUP_OK);
	assert_true(bytes > 0);
	/* A second backup into the same directory is refused. */
	assert_int_equal(raw_backup(dir, &bytes), RINGMQ__FRAME__BODY_ERROR);

	/* Restore: a broker started on the copy has the 40 unacked. */
	memset(&copy, 0, sizeof(copy));
	copy.stdout_fd = -1;
	snprintf(copy.dir, sizeof(copy.dir), "%s", dir);
	assert_int_equal(harness_start(&copy, NULL), 0);
	{
		ringmq_opts *o = ringmq_opts_new();
		char err[256];
		int got = 0;

		assert_int_equal(ringmq_opts_set(o, "server", copy.addr, err,
						 sizeof(err)),
				 RINGMQ_OK);
		assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
				 RINGMQ_OK);
		ringmq_opts_free(o);
		assert_int_equal(ringmq_subscribe(c, &sub, "kept", "g", 100,
						  RINGMQ_START_EARLIEST),
				 RINGMQ_OK);
		for (;;) {
			ringmq_delivery *d = NULL;

			if (ringmq_next(c, &d, 500) != RINGMQ_OK)
				break;
			ringmq_delivery_free(d);
			got++;
		}
		assert_int_equal(got, 40);
		ringmq_client_free(c);
	}
	assert_int_equal(harness_stop(&copy), 0);
	{
		char top[256];

		/* dir is TOP/data: the whole temporary directory goes. */
		snprintf(top, sizeof(top), "%.*s", (int)(strlen(dir) - 5), dir);
		assert_int_equal(harness_remove_dir(top), 0);
	}
}

/* A stop that cannot wait for a long backup (a short shutdown timeout)
 * exits 0 within it, and leaves the copy as data.mdb.partial: never a
 * data.mdb that looks complete and is not. */
static void
test_stop_during_a_long_backup_exits_cleanly(void **state)
{
	static const char *const flags[] = { "--sync", "never",
					     "--shutdown-timeout-ms", "200",
					     NULL };
	static char payload[60000];
	struct harness_broker b;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Backup bk = RINGMQ__BACKUP__INIT;
	char dir[128] = "/tmp/ringmq-test-XXXXXX", path[200];
	struct stat st;
	ringmq_client *c;
	long long t0;
	int fd;

	(void)state;
	memset(payload, 'b', sizeof(payload));
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	assert_int_equal(harness_start(&b, flags), 0);
	c = testlib_connect(b.addr);
	assert_int_equal(ringmq_queue_create(c, "big", NULL), RINGMQ_OK);
	for (int i = 0; i < 4000; i++) {
		ringmq_message *m =
			ringmq_message_new(payload, sizeof(payload));

		assert_int_equal(ringmq_publish_async(c, "big", m, NULL, NULL),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(ringmq_client_flush(c, 30000), RINGMQ_OK);
	ringmq_client_free(c);

	assert_non_null(mkdtemp(dir));
	fd = testlib_raw_open(b.port);
	assert_true(testlib_raw_hello(fd, 0) != 0);
	bk.path = dir;
	f.has_request_id = 1;
	f.request_id = 2;
	f.body_case = RINGMQ__FRAME__BODY_BACKUP;
	f.backup = &bk;
	testlib_raw_send(fd, &f);
	usleep(50 * 1000);
	t0 = harness_now_ms();
	assert_int_equal(harness_stop(&b), 0);
	assert_true(harness_now_ms() - t0 < 2000);
	close(fd);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) != 0) { /* cut short: only the partial copy */
		snprintf(path, sizeof(path), "%s/data.mdb.partial", dir);
		assert_int_equal(stat(path, &st), 0);
	}
	assert_int_equal(harness_remove_dir(dir), 0);
	harness_cleanup(&b);
}

/* Checks that every ringmq_* name in the file is a metric family of
 * exposition (a histogram's _bucket, _sum and _count by its family);
 * returns how many names it checked. */
static int
expect_names_exported(const char *file, const char *exposition)
{
	static const char *const parts[] = { "_bucket", "_sum", "_count" };
	char *text = testlib_read_file(file);
	int checked = 0;

	for (const char *p = text; (p = strstr(p, "ringmq_")) != NULL;) {
		char name[128], type[160];
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
		int found;

		/* Not a name: part of a longer word (the rule file's
		 * RingmqDown, say, is not lower case). */
		if (p > text &&
		    (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'))) {
			p += n;
			continue;
		}
		assert_true(n < sizeof(name));
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		snprintf(type, sizeof(type), "# TYPE %s ", name);
		found = strstr(exposition, type) != NULL;
		/* A broker without the journal has no journal figures. */
		if (harness_journal() == 0 &&
		    strncmp(name, "ringmq_journal_", 15) == 0)
			found = 1;
		for (size_t i = 0; !found && i < 3; i++) {
			size_t len = strlen(parts[i]);

			if (n > len && strcmp(name + n - len, parts[i]) == 0) {
				snprintf(type, sizeof(type),
					 "# TYPE %.*s histogram",
					 (int)(n - len), name);
				found = strstr(exposition, type) != NULL;
			}
		}
		if (!found)
			fail_msg("%s names %s, which /metrics does not export",
				 file, name);
		checked++;
	}
	free(text);
	return checked;
}

/* The Grafana dashboard and the alerting rules in dist/ name only metrics
 * the broker exports, so that a rename cannot leave them blank. */
static void
test_dashboard_and_alerts_name_exported_metrics(void **state)
{
	const char *dist = getenv("RINGMQ_DIST_DIR");
	char path[4096];
	char *text = http_get("/metrics");

	(void)state;
	if (dist == NULL) {
		free(text);
		fail_msg("RINGMQ_DIST_DIR is not set");
	}
	snprintf(path, sizeof(path), "%s/grafana/ringmq.json", dist);
	assert_true(expect_names_exported(path, text) >= 20);
	snprintf(path, sizeof(path), "%s/prometheus/ringmq-rules.yml", dist);
	assert_true(expect_names_exported(path, text) >= 5);
	snprintf(path, sizeof(path), "%s/prometheus/ringmq-rules.test.yml",
		 dist);
	assert_true(expect_names_exported(path, text) >= 5);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthz_answers_ok),
		cmocka_unit_test(test_http_methods_and_bad_requests),
		cmocka_unit_test(test_healthz_says_shutting_down),
		cmocka_unit_test(test_metrics_are_valid_and_move_with_load),
		cmocka_unit_test(
			test_dashboard_and_alerts_name_exported_metrics),
		cmocka_unit_test(test_delivery_latency_counts_the_wait),
		cmocka_unit_test(test_async_publish_burst_shares_one_batch),
		cmocka_unit_test(
			test_backup_is_a_data_directory_with_everything),
		cmocka_unit_test(test_stop_during_a_long_backup_exits_cleanly),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("ops", tests, setup_broker,
					   teardown_broker)
		       ? 1
		       : 0;
}
