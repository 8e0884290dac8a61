/*
 * testlib: see testlib.h.
 */
#define _GNU_SOURCE
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

int
testlib_broker_start(struct harness_broker *b, const char *const *flags)
{
	memset(b, 0, sizeof(*b));
	b->stdout_fd = -1;
	return harness_start(b, flags);
}

int
testlib_broker_stop(struct harness_broker *b)
{
	int code = harness_stop(b);

	harness_cleanup(b);
	return code == 0 ? 0 : -1;
}

static ringmq_client *
connect_va(const char *addr, va_list ap)
{
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *c = NULL;
	const char *kv;
	char err[512];

	assert_non_null(o);
	assert_int_equal(ringmq_opts_set(o, "server", addr, err, sizeof(err)),
			 RINGMQ_OK);
	while ((kv = va_arg(ap, const char *)) != NULL) {
		char key[64];
		const char *eq = strchr(kv, '=');

		assert_non_null(eq);
		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		assert_int_equal(
			ringmq_opts_set(o, key, eq + 1, err, sizeof(err)),
			RINGMQ_OK);
	}
	assert_int_equal(ringmq_client_connect(&c, o, err, sizeof(err)),
			 RINGMQ_OK);
	ringmq_opts_free(o);
	return c;
}

ringmq_client *
testlib_connect(const char *addr)
{
	return testlib_connect_with(addr, NULL);
}

ringmq_client *
testlib_connect_with(const char *addr, ...)
{
	ringmq_client *c;
	va_list ap;

	va_start(ap, addr);
	c = connect_va(addr, ap);
	va_end(ap);
	return c;
}

int
testlib_raw_open(int port)
{
	return testlib_raw_open_rcvbuf(port, 0);
}

int
testlib_raw_open_rcvbuf(int port, int rcvbuf)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
					    sizeof(rcvbuf)),
				 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

void
testlib_raw_send(int fd, const Ringmq__Frame *f)
{
	size_t n = ringmq__frame__get_packed_size(f);
	uint8_t *buf = malloc(n + 4);

	assert_non_null(buf);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	ringmq__frame__pack(f, buf + 4);
	assert_int_equal(write(fd, buf, n + 4), (ssize_t)(n + 4));
	free(buf);
}

/* Reads n bytes within timeout_ms: 0, or -1 at EOF, an error or the
 * deadline. */
static int
read_within(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - harness_now_ms();
		ssize_t r;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, left < 100 ? (int)left : 100) <= 0)
			continue;
		r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

Ringmq__Frame *
testlib_raw_recv_within(int fd, int timeout_ms)
{
	uint8_t hdr[4], *body;
	size_t n;
	Ringmq__Frame *f = NULL;

	if (read_within(fd, hdr, 4, timeout_ms) < 0)
		return NULL;
	n = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) |
	    ((size_t)hdr[2] << 8) | hdr[3];
	body = malloc(n + 1);
	assert_non_null(body);
	if (read_within(fd, body, n, timeout_ms) == 0)
		f = ringmq__frame__unpack(NULL, n, body);
	free(body);
	return f;
}

Ringmq__Frame *
testlib_raw_recv(int fd)
{
	Ringmq__Frame *f = testlib_raw_recv_within(fd, TESTLIB_WAIT_MS);

	assert_non_null(f);
	return f;
}

char *
testlib_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, TESTLIB_FILE_MAX);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, TESTLIB_FILE_MAX - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

uint64_t
testlib_raw_hello(int fd, uint64_t producer)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Frame *r;
	uint64_t id;

	h.version = 1;
	h.has_producer_id = producer != 0;
	h.producer_id = producer;
	f.has_request_id = 1;
	f.request_id = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_HELLO_OK);
	id = r->hello_ok->producer_id;
	ringmq__frame__free_unpacked(r, NULL);
	return id;
}

double
testlib_stat(ringmq_client *c, const char *name)
{
	ringmq_stats *st = NULL;
	double v = -1;

	assert_int_equal(ringmq_stats_get(c, &st), RINGMQ_OK);
	assert_int_equal(ringmq_stats_find(st, name, &v), 1);
	ringmq_stats_free(st);
	return v;
}

void
testlib_wait_stat(ringmq_client *c, const char *name, double want)
{
	long long deadline = harness_now_ms() + TESTLIB_WAIT_MS;
	double v;

	while ((v = testlib_stat(c, name)) != want) {
		struct pollfd none = { .fd = -1 };

		if (harness_now_ms() >= deadline)
			fail_msg("stat %s is %g, not %g", name, v, want);
		(void)poll(&none, 1, 20); /* the condition is re-checked */
	}
}

void
testlib_queue_counts(ringmq_client *c, const char *name, uint64_t *messages,
		     uint64_t *ready, uint64_t *delayed, uint64_t *in_flight)
{
	ringmq_queue_list *l = NULL;
	size_t i;

	assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
	for (i = 0; i < ringmq_queue_list_count(l); i++)
		if (strcmp(ringmq_queue_list_name(l, i), name) == 0)
			break;
	assert_true(i < ringmq_queue_list_count(l));
	if (messages != NULL)
		*messages = ringmq_queue_list_messages(l, i);
	if (ready != NULL)
		*ready = ringmq_queue_list_ready(l, i);
	if (delayed != NULL)
		*delayed = ringmq_queue_list_delayed(l, i);
	if (in_flight != NULL)
		*in_flight = ringmq_queue_list_in_flight(l, i);
	ringmq_queue_list_free(l);
}

char *
testlib_http(const char *addr, const char *req, size_t len)
{
	struct sockaddr_in sa;
	const char *colon = strrchr(addr, ':');
	long long deadline = harness_now_ms() + TESTLIB_WAIT_MS;
	size_t n = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_non_null(buf);
	assert_non_null(colon);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, req, len), (ssize_t)len);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_true(harness_now_ms() < deadline);
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (n + 1 == cap) {
			buf = realloc(buf, cap *= 2);
			assert_non_null(buf);
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
	return buf;
}

void
testlib_write_temp(char *file, const char *text)
{
	int fd;

	snprintf(file, 64, "/tmp/ringmq-test-XXXXXX");
	fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}
