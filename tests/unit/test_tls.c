/*
 * Unit tests of net/tls: the broker's side of a connection over memory
 * buffers, against a real OpenSSL client in the same process. The bytes
 * each side writes are handed to the other by the test, as the loop hands
 * a receive's bytes to conn. Certificates come from the openssl command,
 * made into a temporary directory; without it every test skips.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/err.h"
#include "net/tls.h"
#include "tmpdir.h"

static char dir[64] = "/tmp/ringmq-unit-tls-XXXXXX";
static int has_certs;

/* Runs a shell command line in dir; 0 when it exits 0. */
static int
sh(const char *cmd)
{
	char line[2048];

	snprintf(line, sizeof(line), "cd '%s' && (%s) >/dev/null 2>&1", dir,
		 cmd);
	return system(line) == 0 ? 0 : -1;
}

#define KEY_ARGS "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static int
group_setup(void **state)
{
	(void)state;
	if (system("openssl version >/dev/null 2>&1") != 0)
		return 0;
	if (mkdtemp(dir) == NULL)
		return -1;
	if (sh("openssl req -x509 " KEY_ARGS " -keyout ca.key -out ca.pem "
	       "-days 2 -subj /CN=unit-ca") < 0 ||
	    sh("openssl req -new " KEY_ARGS " -keyout broker.key -out "
	       "broker.csr -subj /CN=localhost && printf "
	       "'subjectAltName=DNS:localhost\\n' > broker.ext && openssl "
	       "x509 -req -in broker.csr -CA ca.pem -CAkey ca.key "
	       "-CAcreateserial -days 2 -extfile broker.ext -out broker.pem") <
		    0 ||
	    sh("openssl req -new " KEY_ARGS " -keyout client.key -out "
	       "client.csr -subj /CN=worker-1 && printf "
	       "'subjectAltName=email:ops@example.com,DNS:worker-1.example\\n' "
	       "> client.ext && openssl x509 -req -in client.csr -CA ca.pem "
	       "-CAkey ca.key -CAcreateserial -days 2 -extfile client.ext "
	       "-out client.pem") < 0)
		return -1;
	has_certs = 1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (strchr(dir, 'X') == NULL)
		tmpdir_remove(dir);
	return 0;
}

/* "dir/name" in a buffer of the caller's. */
static const char *
in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
	return buf;
}

/* The broker's context: its certificate, and client certificates from
 * the CA asked with client_auth. */
static struct tls_ctx *
broker_ctx(int client_auth)
{
	char cert[128], key[128], ca[128], err[512];
	struct tls_files f = {
		.cert = in_dir(cert, sizeof(cert), "broker.pem"),
		.key = in_dir(key, sizeof(key), "broker.key"),
		.ca = in_dir(ca, sizeof(ca), "ca.pem"),
		.client_auth = client_auth,
	};
	struct tls_ctx *t;

	if (!has_certs)
		skip();
	if (tls_ctx_open(&t, &f, err, sizeof(err)) != 0)
		fail_msg("tls_ctx_open: %s", err);
	return t;
}

/* An OpenSSL client over memory BIOs, trusting the test CA, with the
 * client certificate when is_cert. */
struct client {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *in, *out; /* owned by ssl */
};

static void
client_init(struct client *cl, int is_cert)
{
	char ca[128], cert[128], key[128];

	cl->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cl->ctx);
	assert_int_equal(
		SSL_CTX_load_verify_locations(
			cl->ctx, in_dir(ca, sizeof(ca), "ca.pem"), NULL),
		1);
	SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
	if (is_cert) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(
					 cl->ctx, in_dir(cert, sizeof(cert),
							 "client.pem")),
				 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(
					 cl->ctx,
					 in_dir(key, sizeof(key), "client.key"),
					 SSL_FILETYPE_PEM),
				 1);
	}
	cl->ssl = SSL_new(cl->ctx);
	cl->in = BIO_new(BIO_s_mem());
	cl->out = BIO_new(BIO_s_mem());
	assert_true(cl->ssl && cl->in && cl->out);
	BIO_set_mem_eof_return(cl->in, -1);
	SSL_set_bio(cl->ssl, cl->in, cl->out);
	assert_int_equal(SSL_set1_host(cl->ssl, "localhost"), 1);
	SSL_set_connect_state(cl->ssl);
}

static void
client_fini(struct client *cl)
{
	SSL_free(cl->ssl);
	SSL_CTX_free(cl->ctx);
}

/* Moves what each side wrote to the other, n rounds: the client drives
 * its handshake; the broker's plaintext (if any) is appended to got. */
static void
exchange(struct client *cl, struct tls_conn *tc, int rounds, uint8_t *got,
	 size_t *got_len, size_t got_cap)
{
	uint8_t buf[65536];

	for (int i = 0; i < rounds; i++) {
		int n;
		size_t m;

		(void)SSL_do_handshake(cl->ssl);
		while ((n = BIO_read(cl->out, buf, sizeof(buf))) > 0)
			assert_int_equal(tls_conn_feed(tc, buf, (size_t)n), 0);
		for (;;) {
			long r = tls_conn_read(tc, got ? got + *got_len : buf,
					       got ? got_cap - *got_len
						   : sizeof(buf));

			if (r <= 0)
				break;
			if (got != NULL)
				*got_len += (size_t)r;
		}
		while ((m = tls_conn_out_take(tc, buf, sizeof(buf))) > 0)
			assert_int_equal(BIO_write(cl->in, buf, (int)m),
					 (int)m);
	}
}

static void
test_tls_handshake_and_data_over_memory_buffers(void **state)
{
	struct tls_ctx *t = broker_ctx(TLS_CLIENT_AUTH_NONE);
	struct tls_conn *tc;
	struct client cl;
	uint8_t got[64];
	size_t got_len = 0;
	char desc[128];
	int n;

	(void)state;
	assert_int_equal(tls_conn_new(&tc, t), 0);
	client_init(&cl, 0);
	assert_false(tls_conn_is_ready(tc));
	assert_int_equal(tls_conn_write(tc, (const uint8_t *)"early", 5),
			 -EAGAIN);
	exchange(&cl, tc, 4, NULL, NULL, 0);
	assert_true(tls_conn_is_ready(tc));
	assert_int_equal(SSL_is_init_finished(cl.ssl), 1);
	tls_conn_describe(tc, desc, sizeof(desc));
	assert_non_null(strstr(desc, "TLSv1.3"));
	/* Client to broker. */
	assert_int_equal(SSL_write(cl.ssl, "ping", 4), 4);
	exchange(&cl, tc, 1, got, &got_len, sizeof(got));
	assert_int_equal(got_len, 4);
	assert_memory_equal(got, "ping", 4);
	/* Broker to client. */
	assert_int_equal(tls_conn_write(tc, (const uint8_t *)"pong", 4), 0);
	exchange(&cl, tc, 1, NULL, NULL, 0);
	n = SSL_read(cl.ssl, got, sizeof(got));
	assert_int_equal(n, 4);
	assert_memory_equal(got, "pong", 4);
	/* close_notify reaches the client as a clean end. */
	tls_conn_close_notify(tc);
	exchange(&cl, tc, 1, NULL, NULL, 0);
	assert_int_equal(SSL_read(cl.ssl, got, sizeof(got)), 0);
	assert_int_equal(SSL_get_error(cl.ssl, 0), SSL_ERROR_ZERO_RETURN);
	client_fini(&cl);
	tls_conn_free(tc);
	tls_ctx_close(t);
}

static void
test_tls_peer_identity_is_the_verified_certificate(void **state)
{
	struct tls_ctx *t = broker_ctx(TLS_CLIENT_AUTH_REQUIRE);
	struct tls_conn *tc;
	struct client cl;
	char cn[64], san[64];

	(void)state;
	assert_int_equal(tls_conn_new(&tc, t), 0);
	/* Before the handshake: nobody. */
	assert_int_equal(
		tls_conn_peer_identity(tc, cn, sizeof(cn), san, sizeof(san)),
		0);
	client_init(&cl, 1);
	exchange(&cl, tc, 4, NULL, NULL, 0);
	assert_true(tls_conn_is_ready(tc));
	assert_int_equal(
		tls_conn_peer_identity(tc, cn, sizeof(cn), san, sizeof(san)),
		1);
	assert_string_equal(cn, "worker-1");
	/* The first DNS or email name, in the certificate's order. */
	assert_string_equal(san, "ops@example.com");
	/* A buffer too small for the name gives none, never a part. */
	assert_int_equal(tls_conn_peer_identity(tc, cn, 4, san, 4), 1);
	assert_string_equal(cn, "");
	assert_string_equal(san, "");
	client_fini(&cl);
	tls_conn_free(tc);
	tls_ctx_close(t);
}

static void
test_tls_required_certificate_missing_fails_with_reason(void **state)
{
	struct tls_ctx *t = broker_ctx(TLS_CLIENT_AUTH_REQUIRE);
	struct tls_conn *tc;
	struct client cl;
	uint8_t buf[64];
	long r = 0;

	(void)state;
	assert_int_equal(tls_conn_new(&tc, t), 0);
	client_init(&cl, 0);
	/* TLS 1.3: the broker finds out on the client's last flight. */
	for (int i = 0; i < 4 && r >= 0; i++) {
		uint8_t wire[65536];
		int n;

		(void)SSL_do_handshake(cl.ssl);
		while ((n = BIO_read(cl.out, wire, sizeof(wire))) > 0)
			assert_int_equal(tls_conn_feed(tc, wire, (size_t)n), 0);
		r = tls_conn_read(tc, buf, sizeof(buf));
		while ((n = (int)tls_conn_out_take(tc, wire, sizeof(wire))) > 0)
			assert_int_equal(BIO_write(cl.in, wire, n), n);
	}
	assert_int_equal(r, -EPROTO);
	assert_false(tls_conn_is_ready(tc));
	assert_non_null(strstr(tls_conn_why(tc), "certificate"));
	/* The alert reached the client. */
	assert_true(SSL_read(cl.ssl, buf, sizeof(buf)) <= 0);
	ERR_clear_error();
	client_fini(&cl);
	tls_conn_free(tc);
	tls_ctx_close(t);
}

static void
test_tls_first_byte_must_start_a_handshake(void **state)
{
	static const uint8_t hello_frame[] = { 0, 0, 0, 4, 0x0a, 2, 8, 1 };
	static const uint8_t client_hello[] = { 0x16, 0x03, 0x01, 0x00 };
	struct tls_ctx *t = broker_ctx(TLS_CLIENT_AUTH_NONE);
	struct tls_conn *tc;

	(void)state;
	assert_int_equal(tls_conn_new(&tc, t), 0);
	assert_int_equal(tls_conn_feed(tc, hello_frame, sizeof(hello_frame)),
			 -RMQ_EBAD_FRAME);
	tls_conn_free(tc);
	assert_true(tls_is_client_hello(client_hello, sizeof(client_hello)));
	assert_false(tls_is_client_hello(client_hello, 1));
	assert_false(tls_is_client_hello(hello_frame, sizeof(hello_frame)));
	tls_ctx_close(t);
}

static void
test_tls_files_that_do_not_load_name_the_file(void **state)
{
	char cert[128], key[128], err[512];
	struct tls_files f = {
		.cert = in_dir(cert, sizeof(cert), "broker.pem"),
		.key = in_dir(key, sizeof(key), "client.key"),
	};
	struct tls_ctx *t = NULL;

	(void)state;
	if (!has_certs)
		skip();
	/* The key of another certificate. */
	assert_int_equal(tls_ctx_open(&t, &f, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "does not match"));
	f.key = in_dir(key, sizeof(key), "nothing.key");
	assert_int_equal(tls_ctx_open(&t, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tls-key"));
	assert_non_null(strstr(err, "No such file"));
	/* A reload that fails keeps the context working. */
	f.key = in_dir(key, sizeof(key), "broker.key");
	assert_int_equal(tls_ctx_open(&t, &f, err, sizeof(err)), 0);
	assert_int_equal(sh("cp broker.pem keep.pem && echo x > broker.pem"),
			 0);
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tls-cert"));
	assert_int_equal(sh("mv keep.pem broker.pem"), 0);
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), 0);
	tls_ctx_close(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_tls_handshake_and_data_over_memory_buffers),
		cmocka_unit_test(
			test_tls_peer_identity_is_the_verified_certificate),
		cmocka_unit_test(
			test_tls_required_certificate_missing_fails_with_reason),
		cmocka_unit_test(test_tls_first_byte_must_start_a_handshake),
		cmocka_unit_test(test_tls_files_that_do_not_load_name_the_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
