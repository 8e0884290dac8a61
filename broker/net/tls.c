/*
 * tls: see tls.h.
 *
 * Each connection's SSL reads from one memory BIO (what conn fed it) and
 * writes to another (what conn takes and sends): OpenSSL's own socket
 * code would block or need the socket, and io_uring owns the socket.
 */
#define _GNU_SOURCE
#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/err.h"

/* The first byte of a TLS handshake record (RFC 8446, 5.1: ContentType
 * handshake); every ClientHello starts with it. */
#define TLS_RECORD_HANDSHAKE 0x16

/* Names the session cache of the broker's contexts: a session resumed
 * with a client certificate must come from this broker's kind of
 * context (OpenSSL refuses resumption without one when it verifies). */
static const unsigned char session_ctx_id[] = "ringmqd";

struct tls_ctx {
	SSL_CTX *ctx; /* owned reference; each SSL holds one more */
	char *cert;   /* owned copies of the paths, for reloads */
	char *key;
	char *ca; /* NULL: none */
	int client_auth;
};

struct tls_conn {
	SSL *ssl; /* owned; owns both BIOs */
	BIO *rbio, *wbio;
	int is_fed;	 /* the first byte came and was a handshake */
	int is_failed;	 /* the handshake or a record failed */
	int is_notified; /* close_notify written */
	char why[256];
};

/* Appends OpenSSL's queued errors (reasons only, the first few) to buf,
 * and empties the queue. */
static void
ssl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t used = strlen(buf);
	int n = 0;

	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);

		if (n++ >= 3 || used + 3 >= len)
			continue;
		snprintf(buf + used, len - used, "%s%s", used ? ": " : "",
			 r != NULL ? r : "unknown error");
		used = strlen(buf);
	}
}

/* Fails with why and the queued OpenSSL errors. */
static int
ctx_fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s", what, path);
	ssl_errors(err, errlen);
	return -EINVAL;
}

/* 0 when path names a readable file; else why, in err. */
static int
check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -EINVAL;
	}
	fclose(f);
	return 0;
}

/* A new SSL_CTX from t's files; NULL with err set. */
static SSL_CTX *
ctx_build(const struct tls_ctx *t, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int mode = SSL_VERIFY_NONE;

	ERR_clear_error();
	if (check_readable("tls-cert", t->cert, err, errlen) < 0 ||
	    check_readable("tls-key", t->key, err, errlen) < 0 ||
	    (t->ca != NULL && check_readable("tls-ca", t->ca, err, errlen) < 0))
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* TLS 1.2 at least; 1.3 is chosen whenever the client has it. */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail_ssl;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	/* An idle connection gives its record buffers back: ten thousand
	 * idle clients would otherwise hold some 34 KiB each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		ctx_fail(err, errlen, "tls-cert", t->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH)
			snprintf(err, errlen,
				 "tls-key %s does not match tls-cert %s",
				 t->key, t->cert);
		else
			ctx_fail(err, errlen, "tls-key", t->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls-key %s does not match tls-cert %s",
			 t->key, t->cert);
		goto fail;
	}
	if (t->ca != NULL) {
		STACK_OF(X509_NAME) * names;

		if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
			ctx_fail(err, errlen, "tls-ca", t->ca);
			goto fail;
		}
		/* Tells clients which CAs their certificate must come
		 * from. */
		names = SSL_load_client_CA_file(t->ca);
		if (names == NULL) {
			ctx_fail(err, errlen, "tls-ca", t->ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	if (t->client_auth == TLS_CLIENT_AUTH_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	else if (t->client_auth == TLS_CLIENT_AUTH_REQUIRE)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, NULL);
	if (SSL_CTX_set_session_id_context(ctx, session_ctx_id,
					   sizeof(session_ctx_id) - 1) != 1)
		goto fail_ssl;
	return ctx;
fail_ssl:
	snprintf(err, errlen, "TLS set-up");
	ssl_errors(err, errlen);
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_ctx_open(struct tls_ctx **out, const struct tls_files *f, char *err,
	     size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		goto nomem;
	t->cert = strdup(f->cert);
	t->key = strdup(f->key);
	t->ca = f->ca != NULL && f->ca[0] != '\0' ? strdup(f->ca) : NULL;
	t->client_auth = f->client_auth;
	if (t->cert == NULL || t->key == NULL ||
	    (f->ca != NULL && f->ca[0] != '\0' && t->ca == NULL))
		goto nomem;
	t->ctx = ctx_build(t, err, errlen);
	if (t->ctx == NULL) {
		tls_ctx_close(t);
		return -EINVAL;
	}
	*out = t;
	return 0;
nomem:
	tls_ctx_close(t);
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

int
tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_build(t, err, errlen);

	if (ctx == NULL)
		return -EINVAL;
	/* Connections made before keep the old one alive through their
	 * own references. */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

void
tls_ctx_close(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t);
}

int
tls_conn_new(struct tls_conn **out, struct tls_ctx *t)
{
	struct tls_conn *tc = calloc(1, sizeof(*tc));

	*out = NULL;
	if (tc == NULL)
		return -ENOMEM;
	tc->ssl = SSL_new(t->ctx);
	tc->rbio = BIO_new(BIO_s_mem());
	tc->wbio = BIO_new(BIO_s_mem());
	if (tc->ssl == NULL || tc->rbio == NULL || tc->wbio == NULL) {
		BIO_free(tc->rbio);
		BIO_free(tc->wbio);
		SSL_free(tc->ssl);
		free(tc);
		ERR_clear_error();
		return -ENOMEM;
	}
	/* An empty memory BIO means "no bytes yet", not end of file. */
	BIO_set_mem_eof_return(tc->rbio, -1);
	BIO_set_mem_eof_return(tc->wbio, -1);
	SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
	SSL_set_accept_state(tc->ssl);
	*out = tc;
	return 0;
}

void
tls_conn_free(struct tls_conn *tc)
{
	if (tc == NULL)
		return;
	SSL_free(tc->ssl);
	free(tc);
}

int
tls_is_client_hello(const uint8_t *data, size_t len)
{
	return len >= 2 && data[0] == TLS_RECORD_HANDSHAKE && data[1] == 0x03;
}

int
tls_conn_feed(struct tls_conn *tc, const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	if (!tc->is_fed) {
		/* Caught here, before OpenSSL: a plaintext client gets an
		 * answer it can read rather than a TLS alert. */
		if (data[0] != TLS_RECORD_HANDSHAKE)
			return -RMQ_EBAD_FRAME;
		tc->is_fed = 1;
	}
	if (len > (size_t)INT32_MAX ||
	    BIO_write(tc->rbio, data, (int)len) != (int)len) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
}

/* Says why the connection failed, from the verification result and the
 * error queue. */
static void
conn_failed(struct tls_conn *tc, const char *what)
{
	long vr = SSL_get_verify_result(tc->ssl);

	tc->is_failed = 1;
	snprintf(tc->why, sizeof(tc->why), "%s", what);
	ssl_errors(tc->why, sizeof(tc->why));
	if (vr != X509_V_OK) {
		size_t used = strlen(tc->why);

		snprintf(tc->why + used, sizeof(tc->why) - used,
			 " (client certificate: %s)",
			 X509_verify_cert_error_string(vr));
	}
}

long
tls_conn_read(struct tls_conn *tc, uint8_t *buf, size_t cap)
{
	int n;

	if (tc->is_failed)
		return -EPROTO;
	ERR_clear_error();
	n = SSL_read(tc->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0)
		return n;
	switch (SSL_get_error(tc->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: /* a memory BIO always takes more */
		return 0;
	case SSL_ERROR_ZERO_RETURN: return -ESHUTDOWN;
	default:
		conn_failed(tc, SSL_is_init_finished(tc->ssl)
					? "bad record"
					: "handshake failed");
		return -EPROTO;
	}
}

int
tls_conn_is_ready(const struct tls_conn *tc)
{
	return !tc->is_failed && SSL_is_init_finished(tc->ssl);
}

int
tls_conn_write(struct tls_conn *tc, const uint8_t *data, size_t len)
{
	if (!tls_conn_is_ready(tc))
		return -EAGAIN;
	ERR_clear_error();
	while (len > 0) {
		int chunk = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
		int n = SSL_write(tc->ssl, data, chunk);

		if (n <= 0) {
			int e = SSL_get_error(tc->ssl, n);

			conn_failed(tc, "write failed");
			return e == SSL_ERROR_SYSCALL ? -ENOMEM : -EPROTO;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

void
tls_conn_close_notify(struct tls_conn *tc)
{
	if (tc->is_notified || !tls_conn_is_ready(tc))
		return;
	tc->is_notified = 1;
	ERR_clear_error();
	/* Sends ours; the peer's answer is not waited for (RFC 8446, 6.1
	 * lets the closing side go at once). */
	(void)SSL_shutdown(tc->ssl);
	ERR_clear_error();
}

size_t
tls_conn_out_len(const struct tls_conn *tc)
{
	return BIO_ctrl_pending(tc->wbio);
}

size_t
tls_conn_out_take(struct tls_conn *tc, uint8_t *buf, size_t cap)
{
	int n = BIO_read(tc->wbio, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);

	return n > 0 ? (size_t)n : 0;
}

const char *
tls_conn_why(const struct tls_conn *tc)
{
	return tc->why;
}

/* The first DNS or email name of cert's subject alternative names. */
static void
first_san(X509 *cert, char *san, size_t sanlen)
{
	GENERAL_NAMES *names =
		X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int n = names != NULL ? sk_GENERAL_NAME_num(names) : 0;

	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const ASN1_IA5STRING *s;

		if (g->type == GEN_DNS)
			s = g->d.dNSName;
		else if (g->type == GEN_EMAIL)
			s = g->d.rfc822Name;
		else
			continue;
		/* A name with a NUL inside could pass for another. */
		if ((size_t)s->length >= sanlen ||
		    memchr(s->data, '\0', (size_t)s->length) != NULL)
			continue;
		memcpy(san, s->data, (size_t)s->length);
		san[s->length] = '\0';
		break;
	}
	GENERAL_NAMES_free(names);
}

/* The subject's common name of cert, as UTF-8, into cn ("" if none, or
 * one that would not fit or holds a NUL: that would name someone else). */
static void
subject_cn(X509 *cert, char *cn, size_t cnlen)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int i = subject != NULL ? X509_NAME_get_index_by_NID(subject,
							     NID_commonName, -1)
				: -1;
	unsigned char *utf8 = NULL;
	int len;

	if (i < 0)
		return;
	len = ASN1_STRING_to_UTF8(
		&utf8,
		X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
	if (len >= 0 && (size_t)len < cnlen &&
	    memchr(utf8, '\0', (size_t)len) == NULL) {
		memcpy(cn, utf8, (size_t)len);
		cn[len] = '\0';
	}
	OPENSSL_free(utf8);
}

int
tls_conn_peer_identity(const struct tls_conn *tc, char *cn, size_t cnlen,
		       char *san, size_t sanlen)
{
	X509 *cert;

	cn[0] = '\0';
	san[0] = '\0';
	if (!tls_conn_is_ready(tc) ||
	    SSL_get_verify_result(tc->ssl) != X509_V_OK)
		return 0;
	cert = SSL_get0_peer_certificate(tc->ssl);
	if (cert == NULL)
		return 0;
	subject_cn(cert, cn, cnlen);
	first_san(cert, san, sanlen);
	ERR_clear_error();
	return 1;
}

void
tls_conn_describe(const struct tls_conn *tc, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", SSL_get_version(tc->ssl),
		 SSL_get_cipher_name(tc->ssl));
}
