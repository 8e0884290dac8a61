/*
 * Integration tests of TLS (ringmqd --tls-listen), against a real broker
 * on 127.0.0.1 and the library, the CLI and raw sockets.
 *
 * The certificates are made at run time by the openssl command into a
 * temporary directory (the group setup): a CA and its broker certificate
 * for localhost and 127.0.0.1, an expired one, a client certificate, and
 * a second CA with a broker and a client certificate of its own (the
 * "wrong" ones, and what a rotation swaps in). Without the openssl
 * command every test skips.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "ringmq.h"
#include "testlib.h"

static char dir[64] = "/tmp/ringmq-tls-XXXXXX"; /* the certificates */
static int has_certs; /* the openssl command made them */

/* The path of file name in dir (a static buffer per call site is the
 * caller's: each call returns a fresh one). */
static const char *
path_of(const char *name)
{
	static char paths[16][128];
	static int next;
	char *p = paths[next++ % 16];

	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

/* Runs a shell command line in dir; 0 when it exits 0. */
static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && (", dir);
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, ") >>openssl.log 2>&1");
	return system(cmd) == 0 ? 0 : -1;
}

/* A P-256 key NAME.key and a certificate NAME.pem for subject cn with
 * the subject alternative names san, signed by ca (NAME.pem/.key) and
 * valid for days (negative: expired that long ago). */
static int
make_cert(const char *name, const char *cn, const char *san, const char *ca,
	  int days)
{
	return sh("openssl req -new -newkey ec -pkeyopt "
		  "ec_paramgen_curve:prime256v1 -nodes -keyout %s.key -out "
		  "%s.csr -subj '/CN=%s' && printf 'subjectAltName=%s\\n' > "
		  "%s.ext && openssl x509 -req -in %s.csr -CA %s.pem -CAkey "
		  "%s.key -CAcreateserial -days %d -extfile %s.ext -out %s.pem",
		  name, name, cn, san, name, name, ca, ca, days, name, name);
}

/* A self-signed CA NAME.pem with its key NAME.key. */
static int
make_ca(const char *name, const char *cn)
{
	return sh("openssl req -x509 -newkey ec -pkeyopt "
		  "ec_paramgen_curve:prime256v1 -nodes -keyout %s.key -out "
		  "%s.pem -days 2 -subj '/CN=%s'",
		  name, name, cn);
}

static int
group_setup(void **state)
{
	(void)state;
	if (system("openssl version >/dev/null 2>&1") != 0)
		return 0; /* every test skips */
	if (mkdtemp(dir) == NULL)
		return -1;
	if (make_ca("ca", "ringmq test CA") < 0 ||
	    make_ca("other-ca", "another CA") < 0 ||
	    make_cert("broker", "localhost", "DNS:localhost,IP:127.0.0.1", "ca",
		      2) < 0 ||
	    make_cert("expired", "localhost", "DNS:localhost,IP:127.0.0.1",
		      "ca", -1) < 0 ||
	    make_cert("client", "worker-1", "DNS:worker-1.example", "ca", 2) <
		    0 ||
	    make_cert("other-broker", "localhost", "DNS:localhost,IP:127.0.0.1",
		      "other-ca", 2) < 0 ||
	    make_cert("other-client", "worker-2", "DNS:worker-2.example",
		      "other-ca", 2) < 0) {
		fprintf(stderr,
			"test_tls: openssl failed; see %s/openssl.log\n", dir);
		return -1;
	}
	has_certs = 1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (strncmp(dir, "/tmp/ringmq-tls-", 16) == 0 &&
	    strchr(dir, 'X') == NULL && harness_remove_dir(dir) != 0)
		fprintf(stderr, "test_tls: could not remove %s\n", dir);
	return 0;
}

/* Starts b with TLS on (the broker certificate of cert_name), the extra
 * flags after, and its log in b's log file (log, a path buffer of 128).
 * With is_plain_too the plaintext listener stays on. */
static void
start_tls(struct harness_broker *b, char *log, const char *cert_name,
	  int is_plain_too, const char *const *extra)
{
	/* Static: the harness keeps pointing at them (restarts). One broker
	 * runs at a time. */
	static const char *flags[HARNESS_MAX_ARGS];
	static char cert[128], key[128], log_path[128];
	int n = 0, fd;

	if (!has_certs)
		skip();
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, cert_name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, cert_name);
	snprintf(log, 128, "%s/broker-XXXXXX", dir);
	fd = mkstemp(log);
	assert_true(fd >= 0);
	close(fd);
	if (!is_plain_too) {
		flags[n++] = "--listen";
		flags[n++] = "off";
	}
	flags[n++] = "--tls-listen";
	flags[n++] = "127.0.0.1:0";
	flags[n++] = "--tls-cert";
	flags[n++] = cert;
	flags[n++] = "--tls-key";
	flags[n++] = key;
	for (int i = 0; extra != NULL && extra[i] != NULL; i++)
		flags[n++] = extra[i];
	flags[n] = NULL;
	memset(b, 0, sizeof(*b));
	b->stdout_fd = -1;
	snprintf(log_path, sizeof(log_path), "%s", log);
	b->log_path = log_path;
	assert_int_equal(harness_start(b, flags), 0);
}

/* Waits (at most TESTLIB_WAIT_MS) until log has a line with text.
 * @return that line's text from the match on, malloc'ed. */
static char *
wait_log(const char *log, const char *text)
{
	long long deadline = harness_now_ms() + TESTLIB_WAIT_MS;

	for (;;) {
		char *all = testlib_read_file(log);
		char *at = strstr(all, text);

		if (at != NULL) {
			char *line = strndup(at, strcspn(at, "\n"));

			free(all);
			return line;
		}
		free(all);
		if (harness_now_ms() > deadline)
			fail_msg("no '%s' in the broker's log", text);
		usleep(10000);
	}
}

/* The TLS listener's "127.0.0.1:PORT" of a broker with both listeners,
 * from its log (the "listening on" line names the plaintext one). */
static void
tls_addr_of(const char *log, char *addr, size_t len)
{
	char *line = wait_log(log, "tls listening on ");

	assert_int_equal(sscanf(line, "tls listening on %63s", addr), 1);
	assert_true(strlen(addr) < len);
	free(line);
}

/* Connects once (no reconnects) to addr with the "name=value" options
 * (NULL-ended). @return the library's code; the error into why. */
static int
try_connect(ringmq_client **cp, const char *addr, char *why, size_t size, ...)
{
	ringmq_opts *o = ringmq_opts_new();
	const char *kv;
	va_list ap;
	int rc;

	assert_non_null(o);
	assert_int_equal(ringmq_opts_set(o, "server", addr, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "reconnect", "false", NULL, 0),
			 RINGMQ_OK);
	va_start(ap, size);
	while ((kv = va_arg(ap, const char *)) != NULL) {
		char key[64];
		const char *eq = strchr(kv, '=');

		assert_non_null(eq);
		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		assert_int_equal(ringmq_opts_set(o, key, eq + 1, NULL, 0),
				 RINGMQ_OK);
	}
	va_end(ap);
	why[0] = '\0';
	*cp = NULL;
	rc = ringmq_client_connect(cp, o, why, size);
	ringmq_opts_free(o);
	return rc;
}

/* A TLS client of addr that trusts ca_name's CA; fails the test
 * otherwise. */
static ringmq_client *
connect_tls(const char *addr, const char *ca_name)
{
	char ca[160], why[512];
	ringmq_client *c;

	snprintf(ca, sizeof(ca), "tls-ca=%s/%s.pem", dir, ca_name);
	if (try_connect(&c, addr, why, sizeof(why), "tls=true", ca, NULL) !=
	    RINGMQ_OK)
		fail_msg("TLS connect to %s: %s", addr, why);
	return c;
}

/* Publishes payload to queue and waits for its confirm. */
static void
publish_one(ringmq_client *c, const char *queue, const void *payload,
	    size_t len)
{
	ringmq_message *m = ringmq_message_new(payload, len);

	assert_non_null(m);
	assert_int_equal(ringmq_publish(c, queue, m, NULL, NULL, NULL),
			 RINGMQ_OK);
	ringmq_message_free(m);
}

/* Takes the next delivery of c within the wait and acks it.
 * @return its payload's length; the payload's start into *pp (valid
 * until the next call). */
static size_t
take_one(ringmq_client *c, const void **pp)
{
	static ringmq_delivery *last; /* kept for *pp */
	ringmq_delivery *d = NULL;
	uint64_t id;
	size_t n;

	ringmq_delivery_free(last);
	last = NULL;
	assert_int_equal(ringmq_next(c, &d, TESTLIB_WAIT_MS), RINGMQ_OK);
	id = ringmq_delivery_lease_id(d);
	*pp = ringmq_delivery_payload(d, &n);
	assert_int_equal(ringmq_ack(c, &id, 1, NULL), RINGMQ_OK);
	last = d;
	return n;
}

/* Takes the next delivery of c and checks it is payload. */
static void
consume_one(ringmq_client *c, const void *payload, size_t len)
{
	const void *p;

	assert_int_equal(take_one(c, &p), len);
	assert_memory_equal(p, payload, len);
}

/* Subscribes c to queue in group from the earliest message. */
static void
subscribe(ringmq_client *c, const char *queue, const char *group,
	  uint32_t credit)
{
	uint32_t id;

	assert_int_equal(ringmq_subscribe(c, &id, queue, group, credit,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
}

static void
test_tls_publish_and_consume(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128];
	size_t big_len = 1u << 20; /* many records, many receive buffers */
	char *big = malloc(big_len);

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)(i * 7 + i / 4096);
	start_tls(&b, log, "broker", 0,
		  (const char *const[]){ "--max-message-bytes", "2M", NULL });
	/* With listen off, the "listening on" line is the TLS listener. */
	c = connect_tls(b.addr, "ca");
	assert_int_equal(ringmq_queue_create(c, "jobs", NULL), RINGMQ_OK);
	subscribe(c, "jobs", "workers", 16);
	for (int i = 0; i < 50; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "job %d", i);
		publish_one(c, "jobs", msg, strlen(msg));
		consume_one(c, msg, strlen(msg));
	}
	publish_one(c, "jobs", big, big_len);
	consume_one(c, big, big_len);
	ringmq_client_free(c);
	/* localhost is a name of the certificate too: checked and sent as
	 * SNI. Given as the server name, not resolved: a minimal system
	 * may have no /etc/hosts. */
	{
		char ca[160], why[512];

		snprintf(ca, sizeof(ca), "tls-ca=%s/ca.pem", dir);
		assert_int_equal(try_connect(&c, b.addr, why, sizeof(why),
					     "tls=true", ca,
					     "tls-server-name=localhost", NULL),
				 RINGMQ_OK);
		assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
		ringmq_client_free(c);
	}
	free(big);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_listens_beside_plaintext(void **state)
{
	struct harness_broker b;
	ringmq_client *plain, *tls;
	char log[128], addr[64];

	(void)state;
	start_tls(&b, log, "broker", 1, NULL);
	tls_addr_of(log, addr, sizeof(addr));
	assert_string_not_equal(addr, b.addr);
	plain = testlib_connect(b.addr);
	tls = connect_tls(addr, "ca");
	assert_int_equal(ringmq_queue_create(plain, "mixed", NULL), RINGMQ_OK);
	subscribe(tls, "mixed", "g", 4);
	publish_one(plain, "mixed", "from plaintext", 14);
	consume_one(tls, "from plaintext", 14);
	ringmq_client_free(plain);
	ringmq_client_free(tls);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* Reads until the peer closes fd or limit_ms pass. @return 1 if it
 * closed. */
static int
wait_closed(int fd, int limit_ms)
{
	long long deadline = harness_now_ms() + limit_ms;
	char buf[4096];

	while (harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (read(fd, buf, sizeof(buf)) <= 0)
			return 1;
	}
	return 0;
}

static void
test_tls_plaintext_to_the_tls_port_fails_cleanly(void **state)
{
	struct harness_broker b;
	ringmq_client *c, *before;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Frame *r;
	char log[128], why[512];
	int fd;

	(void)state;
	start_tls(&b, log, "broker", 0, NULL);
	before = connect_tls(b.addr, "ca");
	/* The library: refused with the reason, at once. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), NULL),
			 RINGMQ_UNREACHABLE);
	assert_null(c);
	assert_non_null(strstr(why, "plaintext on the TLS port"));
	/* Raw frames: a hello gets an Error frame, then the close. */
	fd = testlib_raw_open(b.port);
	h.version = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv(fd);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_ERROR);
	assert_int_equal(r->error->code, RINGMQ__ERROR_CODE__BAD_FRAME);
	assert_non_null(strstr(r->error->message, "plaintext on the TLS port"));
	ringmq__frame__free_unpacked(r, NULL);
	assert_true(wait_closed(fd, TESTLIB_WAIT_MS));
	close(fd);
	free(wait_log(log, "plaintext on the TLS port"));
	/* Nothing else harmed: a client from before, and a new one. */
	assert_int_equal(ringmq_client_ping(before), RINGMQ_OK);
	ringmq_client_free(before);
	c = connect_tls(b.addr, "ca");
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_tls_to_the_plaintext_port_fails_cleanly(void **state)
{
	struct harness_broker b;
	ringmq_client *c, *before;
	char log[128], why[512], ca[160];

	(void)state;
	start_tls(&b, log, "broker", 1, NULL);
	before = testlib_connect(b.addr);
	snprintf(ca, sizeof(ca), "tls-ca=%s", path_of("ca.pem"));
	assert_int_equal(
		try_connect(&c, b.addr, why, sizeof(why), "tls=true", ca, NULL),
		RINGMQ_UNREACHABLE);
	assert_null(c);
	assert_non_null(strstr(why, "did not answer with TLS"));
	free(wait_log(log, "a TLS handshake on the plaintext port"));
	assert_int_equal(ringmq_client_ping(before), RINGMQ_OK);
	ringmq_client_free(before);
	c = testlib_connect(b.addr);
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* A TLS connect to b with the options given must fail UNREACHABLE with
 * want in its message. */
static void
expect_refused(const char *addr, const char *want, ...)
{
	ringmq_client *c;
	const char *kv[6] = { NULL };
	char why[512];
	va_list ap;
	int n = 0;
	int rc;

	va_start(ap, want);
	while (n < 5 && (kv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	rc = try_connect(&c, addr, why, sizeof(why), "tls=true", kv[0], kv[1],
			 kv[2], kv[3], kv[4], NULL);
	ringmq_client_free(c);
	if (rc != RINGMQ_UNREACHABLE || strstr(why, want) == NULL)
		fail_msg("connect: %s: '%s', not UNREACHABLE with '%s'",
			 ringmq_code_name(rc), why, want);
}

/* "name=DIR/file" in buf. */
static const char *
opt_path(char *buf, size_t len, const char *name, const char *file)
{
	snprintf(buf, len, "%s=%s/%s", name, dir, file);
	return buf;
}

static void
test_tls_wrong_ca_is_refused(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128], o[160], why[512];

	(void)state;
	start_tls(&b, log, "broker", 0, NULL);
	expect_refused(b.addr, "certificate does not verify",
		       opt_path(o, sizeof(o), "tls-ca", "other-ca.pem"), NULL);
	expect_refused(b.addr, "unable to get local issuer certificate",
		       opt_path(o, sizeof(o), "tls-ca", "other-ca.pem"), NULL);
	/* Without tls-ca, the system's CAs do not know the test CA. */
	expect_refused(b.addr, "certificate does not verify", NULL);
	/* A CA file that is not there: a usage error, before connecting. */
	assert_int_equal(
		try_connect(&c, b.addr, why, sizeof(why), "tls=true",
			    opt_path(o, sizeof(o), "tls-ca", "missing.pem"),
			    NULL),
		RINGMQ_USAGE);
	assert_non_null(strstr(why, "missing.pem: No such file"));
	/* tls options without tls. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why),
				     opt_path(o, sizeof(o), "tls-ca", "ca.pem"),
				     NULL),
			 RINGMQ_USAGE);
	assert_non_null(strstr(why, "need tls=true"));
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_expired_certificate_is_refused(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128], o[160], why[512];

	(void)state;
	start_tls(&b, log, "expired", 0, NULL);
	expect_refused(b.addr, "certificate has expired",
		       opt_path(o, sizeof(o), "tls-ca", "ca.pem"), NULL);
	/* tls-verify=false, for tests only, takes it. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     "tls-verify=false", NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_wrong_host_name_is_refused(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128], o[160], why[512];

	(void)state;
	start_tls(&b, log, "broker", 0, NULL);
	expect_refused(b.addr, "not for 'broker.example'",
		       opt_path(o, sizeof(o), "tls-ca", "ca.pem"),
		       "tls-server-name=broker.example", NULL);
	/* A name the certificate has: accepted at 127.0.0.1 too. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     opt_path(o, sizeof(o), "tls-ca", "ca.pem"),
				     "tls-server-name=localhost", NULL),
			 RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_client_certificate_is_required(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128], ca[160], cert[160], key[160], why[512];
	static char ca_flag[128]; /* the harness keeps pointing at it */

	(void)state;
	snprintf(ca_flag, sizeof(ca_flag), "%s", path_of("ca.pem"));
	start_tls(&b, log, "broker", 0,
		  (const char *const[]){ "--tls-client-auth", "require",
					 "--tls-ca", ca_flag, NULL });
	opt_path(ca, sizeof(ca), "tls-ca", "ca.pem");
	expect_refused(b.addr, "requires a client certificate", ca, NULL);
	expect_refused(
		b.addr, "refused the client certificate", ca,
		opt_path(cert, sizeof(cert), "tls-cert", "other-client.pem"),
		opt_path(key, sizeof(key), "tls-key", "other-client.key"),
		NULL);
	free(wait_log(log, "client certificate"));
	assert_int_equal(
		try_connect(
			&c, b.addr, why, sizeof(why), "tls=true", ca,
			opt_path(cert, sizeof(cert), "tls-cert", "client.pem"),
			opt_path(key, sizeof(key), "tls-key", "client.key"),
			NULL),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* Copies file from to file to in dir, atomically (a rename), as an
 * operator's rotation would. */
static void
install(const char *from, const char *to)
{
	assert_int_equal(sh("cp %s %s.new && mv %s.new %s", from, to, to, to),
			 0);
}

static void
test_tls_sighup_reloads_the_certificate_under_load(void **state)
{
	enum { N = 2000 };
	struct harness_broker b;
	ringmq_client *pub, *sub, *c;
	char log[128], o[160], why[512];
	size_t acked = 0;

	(void)state;
	install("broker.pem", "live.pem");
	install("broker.key", "live.key");
	start_tls(&b, log, "live", 0, NULL);
	pub = connect_tls(b.addr, "ca");
	sub = connect_tls(b.addr, "ca");
	assert_int_equal(ringmq_queue_create(pub, "rot", NULL), RINGMQ_OK);
	subscribe(sub, "rot", "g", 256);
	for (size_t i = 0; i < N; i++) {
		ringmq_message *m = ringmq_message_new("x", 1);

		assert_int_equal(
			ringmq_publish_async(pub, "rot", m, NULL, NULL),
			RINGMQ_OK);
		ringmq_message_free(m);
		if (i == N / 2) {
			/* Mid-load: a certificate of another CA. */
			install("other-broker.pem", "live.pem");
			install("other-broker.key", "live.key");
			assert_int_equal(kill(b.pid, SIGHUP), 0);
			free(wait_log(log, "TLS certificate reloaded"));
		}
		if (i % 100 != 99)
			continue;
		/* A batch out; the one before it taken while it goes. */
		ringmq_client_poll(pub, 0);
		while (acked + 100 <= i) {
			const void *p;

			assert_int_equal(take_one(sub, &p), 1);
			acked++;
		}
		assert_int_equal(ringmq_client_flush(pub, TESTLIB_WAIT_MS),
				 RINGMQ_OK);
	}
	while (acked < N) {
		const void *p;

		assert_int_equal(take_one(sub, &p), 1);
		acked++;
	}
	/* The connections from before are the same ones: they kept the old
	 * certificate (with reconnect off, a new one would have failed). */
	assert_true(ringmq_client_is_connected(pub));
	assert_true(ringmq_client_is_connected(sub));
	/* New connections get the new certificate. */
	expect_refused(b.addr, "certificate does not verify",
		       opt_path(o, sizeof(o), "tls-ca", "ca.pem"), NULL);
	c = connect_tls(b.addr, "other-ca");
	ringmq_client_free(c);
	/* A file that does not load: the current certificate stays. */
	assert_int_equal(sh("echo garbage > live.pem"), 0);
	assert_int_equal(kill(b.pid, SIGHUP), 0);
	free(wait_log(log, "TLS certificate not reloaded"));
	assert_int_equal(
		try_connect(&c, b.addr, why, sizeof(why), "tls=true",
			    opt_path(o, sizeof(o), "tls-ca", "other-ca.pem"),
			    NULL),
		RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(ringmq_client_ping(pub), RINGMQ_OK);
	ringmq_client_free(pub);
	ringmq_client_free(sub);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_stalled_handshake_holds_up_no_one(void **state)
{
	struct harness_broker b;
	ringmq_client *c;
	char log[128];
	long long start;
	int fd;

	(void)state;
	start_tls(&b, log, "broker", 0, NULL);
	/* The first bytes of a ClientHello, and then nothing. */
	fd = testlib_raw_open(b.port);
	assert_int_equal(write(fd, "\x16\x03\x01\x02", 4), 4);
	start = harness_now_ms();
	c = connect_tls(b.addr, "ca");
	assert_int_equal(ringmq_client_ping(c), RINGMQ_OK);
	assert_true(harness_now_ms() - start < 2000);
	ringmq_client_free(c);
	close(fd);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* What one run of the CLI did. */
struct cli_run {
	int code;
	char *out; /* malloc'ed */
	char *err; /* malloc'ed */
};

/* Runs ringmq with args (NULL-ended) and stdin input, within 10 s. */
static void
run_cli(struct cli_run *r, const char *input, const char *const *args)
{
	const char *argv[32];
	char out[128], err[128], in[128];
	long long deadline = harness_now_ms() + 10000;
	int argc = 0, status = 0, fd;
	pid_t pid;

	snprintf(in, sizeof(in), "%s/cli-in", dir);
	snprintf(out, sizeof(out), "%s/cli-out", dir);
	snprintf(err, sizeof(err), "%s/cli-err", dir);
	fd = open(in, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, input, strlen(input)),
			 (ssize_t)strlen(input));
	close(fd);
	argv[argc++] = harness_program("RINGMQ_CLI");
	for (int i = 0; args[i] != NULL && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (freopen(in, "r", stdin) == NULL ||
		    freopen(out, "w", stdout) == NULL ||
		    freopen(err, "w", stderr) == NULL)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (harness_now_ms() > deadline) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			fail_msg("ringmq did not exit");
		}
		usleep(5000);
	}
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	r->out = testlib_read_file(out);
	r->err = testlib_read_file(err);
}

static void
cli_run_free(struct cli_run *r)
{
	free(r->out);
	free(r->err);
}

static void
test_tls_cli(void **state)
{
	struct harness_broker b;
	struct cli_run r;
	char log[128], server[80], ca[128], other[128];

	(void)state;
	start_tls(&b, log, "broker", 0, NULL);
	snprintf(server, sizeof(server), "--server=%s", b.addr);
	snprintf(ca, sizeof(ca), "%s", path_of("ca.pem"));
	snprintf(other, sizeof(other), "%s", path_of("other-ca.pem"));
	run_cli(&r, "",
		(const char *const[]){ server, "--tls", "--ca", ca, "queue",
				       "create", "cliq", NULL });
	assert_int_equal(r.code, 0);
	cli_run_free(&r);
	run_cli(&r, "over tls\n",
		(const char *const[]){ server, "--tls", "--tls-ca", ca,
				       "publish", "cliq", NULL });
	assert_int_equal(r.code, 0);
	cli_run_free(&r);
	run_cli(&r, "",
		(const char *const[]){ server, "--tls", "--ca", ca, "consume",
				       "cliq", "--group", "g", "--count", "1",
				       "--ack", NULL });
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "over tls\n");
	cli_run_free(&r);
	/* The wrong CA: cannot connect (3), and says why. */
	run_cli(&r, "",
		(const char *const[]){ server, "--tls", "--ca", other, "ping",
				       NULL });
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "ringmq: UNREACHABLE: "));
	assert_non_null(strstr(r.err, "certificate does not verify"));
	cli_run_free(&r);
	/* No --tls to a TLS port: 3 as well, with the broker's words. */
	run_cli(&r, "", (const char *const[]){ server, "ping", NULL });
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "plaintext on the TLS port"));
	cli_run_free(&r);
	/* Flags that cannot work together: 2, before connecting. */
	run_cli(&r, "",
		(const char *const[]){ server, "--ca", ca, "ping", NULL });
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "need --tls"));
	cli_run_free(&r);
	run_cli(&r, "",
		(const char *const[]){ server, "--tls", "--cert", ca, "ping",
				       NULL });
	assert_int_equal(r.code, 2);
	cli_run_free(&r);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

static void
test_tls_settings_that_cannot_work_are_refused(void **state)
{
	char cert[128], key[128];

	(void)state;
	if (!has_certs)
		skip();
	snprintf(cert, sizeof(cert), "%s", path_of("broker.pem"));
	snprintf(key, sizeof(key), "%s", path_of("broker.key"));
	/* No listener at all. */
	assert_int_equal(harness_run_exit((const char *const[]){ "--listen",
								 "off", NULL }),
			 2);
	/* A TLS listener without its certificate or key. */
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--tls-listen", "127.0.0.1:0", "--tls-cert",
				 cert, NULL }),
			 2);
	/* Client certificates asked for, and no CA to check them. */
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--tls-listen", "127.0.0.1:0", "--tls-cert",
				 cert, "--tls-key", key, "--tls-client-auth",
				 "require", NULL }),
			 2);
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--tls-listen", "127.0.0.1:0", "--tls-cert",
				 cert, "--tls-key", key, "--tls-client-auth",
				 "sometimes", NULL }),
			 2);
	/* HTTPS without a certificate, or without the HTTP port. */
	assert_int_equal(harness_run_exit((const char *const[]){ "--http-tls",
								 "on", NULL }),
			 2);
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--http", "off", "--http-tls", "on",
				 "--tls-cert", cert, "--tls-key", key, NULL }),
			 2);
	/* TLS files with no TLS listener. */
	assert_int_equal(harness_run_exit((const char *const[]){ "--tls-cert",
								 cert, NULL }),
			 2);
}

static void
test_tls_files_that_do_not_load_stop_the_start(void **state)
{
	char cert[128], key[128], data[128];

	(void)state;
	if (!has_certs)
		skip();
	snprintf(cert, sizeof(cert), "%s", path_of("broker.pem"));
	snprintf(key, sizeof(key), "%s", path_of("other-broker.key"));
	snprintf(data, sizeof(data), "%s", path_of("data-refused"));
	/* A key of another certificate. */
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--data", data, "--tls-listen", "127.0.0.1:0",
				 "--tls-cert", cert, "--tls-key", key, "--http",
				 "off", NULL }),
			 1);
	/* A file that is not there. */
	snprintf(key, sizeof(key), "%s", path_of("missing.key"));
	assert_int_equal(harness_run_exit((const char *const[]){
				 "--data", data, "--tls-listen", "127.0.0.1:0",
				 "--tls-cert", cert, "--tls-key", key, "--http",
				 "off", NULL }),
			 1);
}

static void
test_tls_carries_authentication(void **state)
{
	static char boot[128]; /* the harness keeps pointing at it */
	struct harness_broker b;
	ringmq_client *c;
	char log[128], ca[160], why[512];

	(void)state;
	snprintf(boot, sizeof(boot), "%s/bootstrap", dir);
	if (has_certs)
		assert_int_equal(sh("printf 'admin:correct horse battery\\n' > "
				    "bootstrap"),
				 0);
	start_tls(&b, log, "broker", 0,
		  (const char *const[]){ "--auth", "on",
					 "--auth-bootstrap-file", boot, NULL });
	opt_path(ca, sizeof(ca), "tls-ca", "ca.pem");
	/* SCRAM inside TLS: the password is right, then wrong. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     ca, "user=admin",
				     "password=correct horse battery", NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "secured", NULL), RINGMQ_OK);
	ringmq_client_free(c);
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     ca, "user=admin", "password=wrong", NULL),
			 RINGMQ_UNAUTHENTICATED);
	ringmq_client_free(c);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* With auth on, a verified client certificate and no password is the
 * user its certificate names (CN by default, or the first SAN), with that
 * user's permissions; a certificate naming no user is refused. */
static void
test_tls_client_certificate_names_the_user(void **state)
{
	static char boot[128], ca_flag[128];
	struct harness_broker b;
	ringmq_client *admin, *c;
	char log[128], ca[160], cert[160], key[160], why[512];
	ringmq_message *m = ringmq_message_new("x", 1);

	(void)state;
	snprintf(boot, sizeof(boot), "%s/bootstrap-cn", dir);
	snprintf(ca_flag, sizeof(ca_flag), "%s", path_of("ca.pem"));
	if (has_certs)
		assert_int_equal(sh("printf 'admin:admin-password\n' > "
				    "bootstrap-cn"),
				 0);
	start_tls(&b, log, "broker", 0,
		  (const char *const[]){ "--auth", "on",
					 "--auth-bootstrap-file", boot,
					 "--tls-client-auth", "optional",
					 "--tls-ca", ca_flag, NULL });
	opt_path(ca, sizeof(ca), "tls-ca", "ca.pem");
	opt_path(cert, sizeof(cert), "tls-cert", "client.pem");
	opt_path(key, sizeof(key), "tls-key", "client.key");
	/* Its CN, worker-1, is no user yet. */
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     ca, cert, key, NULL),
			 RINGMQ_UNAUTHENTICATED);
	ringmq_client_free(c);
	assert_int_equal(try_connect(&admin, b.addr, why, sizeof(why),
				     "tls=true", ca, "user=admin",
				     "password=admin-password", NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(admin, "jobs.a", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(admin, "other", NULL), RINGMQ_OK);
	assert_int_equal(ringmq_user_add(admin, "worker-1", "unused-pass"),
			 RINGMQ_OK);
	assert_int_equal(ringmq_acl_set(admin, "worker-1", "jobs.*",
					RINGMQ_PERM_PUBLISH),
			 RINGMQ_OK);
	/* Slept out: its address failed once just now. */
	usleep(300 * 1000);
	assert_int_equal(try_connect(&c, b.addr, why, sizeof(why), "tls=true",
				     ca, cert, key, NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_publish(c, "jobs.a", m, NULL, NULL, NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_delete(c, "other"),
			 RINGMQ_PERMISSION_DENIED);
	ringmq_client_free(c);
	/* No certificate and no password: refused. */
	assert_int_equal(
		try_connect(&c, b.addr, why, sizeof(why), "tls=true", ca, NULL),
		RINGMQ_UNAUTHENTICATED);
	ringmq_client_free(c);
	ringmq_client_free(admin);
	ringmq_message_free(m);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

/* The answer of GET path over HTTPS from addr's port, checked against
 * ca_name's CA by the openssl command. */
static char *
https_get(int port, const char *path, const char *ca_name)
{
	char out[128];

	snprintf(out, sizeof(out), "%s/https-out", dir);
	/* s_client -quiet reads the answer until the broker closes. */
	(void)sh("printf 'GET %s HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' "
		 "| timeout 10 openssl s_client -quiet -connect 127.0.0.1:%d "
		 "-CAfile %s.pem -verify_return_error > %s 2>&1",
		 path, port, ca_name, out);
	return testlib_read_file(out);
}

static void
test_tls_http_port_speaks_https(void **state)
{
	struct harness_broker b;
	char log[128], addr[64], o[160];
	char *r;
	int port, fd;

	(void)state;
	start_tls(&b, log, "broker", 1,
		  (const char *const[]){ "--http", "127.0.0.1:0", "--http-tls",
					 "on", NULL });
	port = atoi(strrchr(b.http_addr, ':') + 1);
	r = https_get(port, "/healthz", "ca");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
	free(r);
	/* One handshake of each result on the client port, counted. */
	tls_addr_of(log, addr, sizeof(addr));
	ringmq_client_free(connect_tls(addr, "ca"));
	expect_refused(addr, "certificate does not verify",
		       opt_path(o, sizeof(o), "tls-ca", "other-ca.pem"), NULL);
	fd = testlib_raw_open(atoi(strrchr(addr, ':') + 1));
	assert_int_equal(write(fd, "\0\0\0\1x", 5), 5);
	assert_true(wait_closed(fd, TESTLIB_WAIT_MS));
	close(fd);
	r = https_get(port, "/metrics", "ca");
	assert_non_null(strstr(r, "ringmq_connections "));
	assert_non_null(
		strstr(r, "ringmq_tls_handshakes_total{result=\"ok\"} 1\n"));
	assert_non_null(strstr(
		r, "ringmq_tls_handshakes_total{result=\"failed\"} 1\n"));
	assert_non_null(strstr(
		r, "ringmq_tls_handshakes_total{result=\"plaintext\"} 1\n"));
	free(r);
	/* The broker's certificate is checked: another CA refuses it. */
	r = https_get(port, "/healthz", "other-ca");
	assert_null(strstr(r, "200 OK"));
	free(r);
	/* Plain HTTP gets a plain refusal that says why. */
	r = testlib_http(b.http_addr, "GET /healthz HTTP/1.1\r\n\r\n", 26);
	assert_non_null(strstr(r, "400 Bad Request (this port speaks HTTPS)"));
	free(r);
	/* SIGHUP reloads its certificate too. */
	assert_int_equal(kill(b.pid, SIGHUP), 0);
	free(wait_log(log, "HTTPS certificate reloaded"));
	r = https_get(port, "/healthz", "ca");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK"));
	free(r);
	assert_int_equal(testlib_broker_stop(&b), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_publish_and_consume),
		cmocka_unit_test(test_tls_listens_beside_plaintext),
		cmocka_unit_test(
			test_tls_plaintext_to_the_tls_port_fails_cleanly),
		cmocka_unit_test(
			test_tls_tls_to_the_plaintext_port_fails_cleanly),
		cmocka_unit_test(test_tls_wrong_ca_is_refused),
		cmocka_unit_test(test_tls_expired_certificate_is_refused),
		cmocka_unit_test(test_tls_wrong_host_name_is_refused),
		cmocka_unit_test(test_tls_client_certificate_is_required),
		cmocka_unit_test(
			test_tls_sighup_reloads_the_certificate_under_load),
		cmocka_unit_test(test_tls_stalled_handshake_holds_up_no_one),
		cmocka_unit_test(test_tls_cli),
		cmocka_unit_test(test_tls_http_port_speaks_https),
		cmocka_unit_test(test_tls_carries_authentication),
		cmocka_unit_test(test_tls_client_certificate_names_the_user),
		cmocka_unit_test(
			test_tls_settings_that_cannot_work_are_refused),
		cmocka_unit_test(
			test_tls_files_that_do_not_load_stop_the_start),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
