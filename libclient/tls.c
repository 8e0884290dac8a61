/*
 * tls.c: TLS over the client's non-blocking socket (OpenSSL 3).
 *
 * Owns the SSL_CTX built from the options and, per connection, the SSL
 * over the socket: the handshake (with its own deadline), reads and
 * writes that never block, and the words a caller reads when the
 * handshake fails (wrong CA, expired certificate, wrong host name, a
 * client certificate missing, a plaintext port). The socket itself stays
 * conn.c's: this file never closes it.
 *
 * At the bottom of the library with err.c and frame.c: it calls no other
 * file of the library.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Appends the reasons of OpenSSL's queued errors to buf (the queue is
 * emptied). */
static void
ssl_reasons(char *buf, size_t len)
{
	unsigned long e;
	size_t used = strlen(buf);
	int n = 0;

	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);

		if (n++ >= 2 || used + 3 >= len)
			continue;
		snprintf(buf + used, len - used, "%s%s", used ? ": " : "",
			 r != NULL ? r : "unknown error");
		used = strlen(buf);
	}
}

/* 0 when path names a readable file; else -1 and why. */
static int
check_readable(const char *what, const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

int
tls_ctx_new(struct ssl_ctx_st **out, const struct ringmq_opts *o, char *why,
	    size_t whylen)
{
	SSL_CTX *ctx;

	*out = NULL;
	ERR_clear_error();
	if ((o->tls_ca != NULL &&
	     check_readable("tls-ca", o->tls_ca, why, whylen) < 0) ||
	    (o->tls_cert != NULL &&
	     check_readable("tls-cert", o->tls_cert, why, whylen) < 0) ||
	    (o->tls_key != NULL &&
	     check_readable("tls-key", o->tls_key, why, whylen) < 0))
		return -1;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		snprintf(why, whylen, "TLS set-up");
		goto fail;
	}
	/* A broker that closes without close_notify has still ended whole
	 * frames: the framing, not TLS, tells a cut-short stream. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
					 SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_COMPRESSION);
	/* send()-like writes: part of a buffer at a time, and the buffer
	 * may move (it grows) before a write is retried. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Reads take what the socket has, not one record per syscall. */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (o->tls_ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1) {
			snprintf(why, whylen, "tls-ca %s", o->tls_ca);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(why, whylen, "the system's CA certificates");
		goto fail;
	}
	if (o->tls_cert != NULL &&
	    SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
		snprintf(why, whylen, "tls-cert %s", o->tls_cert);
		goto fail;
	}
	if (o->tls_key != NULL &&
	    SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) !=
		    1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH)
			snprintf(why, whylen,
				 "tls-key %s does not match tls-cert %s",
				 o->tls_key, o->tls_cert);
		else
			snprintf(why, whylen, "tls-key %s", o->tls_key);
		goto fail;
	}
	if (o->tls_key != NULL && SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(why, whylen, "tls-key %s does not match tls-cert %s",
			 o->tls_key, o->tls_cert);
		goto fail;
	}
	SSL_CTX_set_verify(ctx,
			   o->is_tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
			   NULL);
	*out = ctx;
	return 0;
fail:
	ssl_reasons(why, whylen);
	SSL_CTX_free(ctx);
	return -1;
}

void
tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

/* 1 when name is an IPv4 or IPv6 address rather than a host name. */
static int
is_ip_literal(const char *name)
{
	unsigned char a[16];

	return inet_pton(AF_INET, name, a) == 1 ||
	       inet_pton(AF_INET6, name, a) == 1;
}

/* What an alert of the broker's means, or NULL for one without a
 * better word than OpenSSL's. */
static const char *
alert_why(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return NULL;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return "TLS: the broker requires a client certificate "
		       "(tls-cert and tls-key)";
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
		return "TLS: the broker refused the client certificate";
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
		return "TLS: the broker did not answer with TLS (is this its "
		       "plaintext port?)";
	default: return NULL;
	}
}

/* Appends " (OpenSSL's reasons)" to why, for whoever debugs it. */
static void
append_reasons(char *why, size_t whylen)
{
	char reasons[200] = "";
	size_t used = strlen(why);

	ssl_reasons(reasons, sizeof(reasons));
	if (reasons[0] != '\0' && used + 4 < whylen)
		snprintf(why + used, whylen - used, " (%s)", reasons);
}

/* What a handshake's failure means to the caller, in its words. */
static void
handshake_why(SSL *ssl, const char *name, char *why, size_t whylen)
{
	const char *alert = alert_why(ERR_peek_error());
	long vr = SSL_get_verify_result(ssl);

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
	    vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
		snprintf(why, whylen,
			 "TLS: the broker's certificate is not for '%s' "
			 "(tls-server-name names the one to expect)",
			 name);
	else if (vr != X509_V_OK)
		snprintf(why, whylen,
			 "TLS: the broker's certificate does not verify: %s",
			 X509_verify_cert_error_string(vr));
	else if (alert != NULL)
		snprintf(why, whylen, "%s", alert);
	else
		snprintf(why, whylen, "TLS handshake failed");
	append_reasons(why, whylen);
	ERR_clear_error();
}

int
tls_handshake(struct ssl_ctx_st *ctx, int fd, const char *name, int is_verify,
	      int timeout_ms, struct ssl_st **out, char *why, size_t whylen)
{
	int64_t deadline_ms = conn_now_ms() + timeout_ms;
	SSL *ssl;

	*out = NULL;
	ERR_clear_error();
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		snprintf(why, whylen, "TLS: out of memory");
		goto fail;
	}
	if (is_ip_literal(name)) {
		/* No SNI for an address (RFC 6066, 3); its certificate
		 * must name the address. */
		if (is_verify && X509_VERIFY_PARAM_set1_ip_asc(
					 SSL_get0_param(ssl), name) != 1) {
			snprintf(why, whylen, "TLS: bad address '%s'", name);
			goto fail;
		}
	} else if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
		   (is_verify && SSL_set1_host(ssl, name) != 1)) {
		snprintf(why, whylen, "TLS: bad server name '%s'", name);
		goto fail;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = 0, .revents = 0 };
		int64_t left_ms;
		int rc = SSL_connect(ssl);

		if (rc == 1)
			break;
		switch (SSL_get_error(ssl, rc)) {
		case SSL_ERROR_WANT_READ: p.events = POLLIN; break;
		case SSL_ERROR_WANT_WRITE: p.events = POLLOUT; break;
		case SSL_ERROR_SYSCALL:
			if (ERR_peek_error() == 0) {
				snprintf(
					why, whylen,
					"TLS: the broker closed the connection "
					"during the handshake%s%s",
					errno ? ": " : "",
					errno ? strerror(errno) : "");
				goto fail;
			}
			/* fall through */
		default: handshake_why(ssl, name, why, whylen); goto fail;
		}
		left_ms = deadline_ms - conn_now_ms();
		if (left_ms <= 0) {
			snprintf(
				why, whylen,
				"TLS: no handshake within %d ms (is this a TLS "
				"port?)",
				timeout_ms);
			goto fail;
		}
		if (poll(&p, 1, (int)left_ms) < 0 && errno != EINTR) {
			snprintf(why, whylen, "TLS: poll: %s", strerror(errno));
			goto fail;
		}
	}
	*out = ssl;
	return 0;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return -1;
}

/* A read or write that failed: why, in the caller's words. */
static void
io_why(SSL *ssl, int rc, const char *what, char *why, size_t whylen)
{
	const char *alert = alert_why(ERR_peek_error());

	if (SSL_get_error(ssl, rc) == SSL_ERROR_SYSCALL &&
	    ERR_peek_error() == 0) {
		snprintf(why, whylen, "connection lost: %s: %s", what,
			 errno ? strerror(errno) : "end of file");
		return;
	}
	if (alert != NULL)
		snprintf(why, whylen, "%s", alert);
	else
		snprintf(why, whylen, "TLS: %s failed", what);
	append_reasons(why, whylen);
	ERR_clear_error();
}

long
tls_send(struct ssl_st *ssl, const void *buf, size_t len, char *why,
	 size_t whylen)
{
	int rc;

	ERR_clear_error();
	rc = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (rc > 0)
		return rc;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ: return TLS_WOULD_BLOCK;
	default: io_why(ssl, rc, "send", why, whylen); return TLS_FAILED;
	}
}

long
tls_recv(struct ssl_st *ssl, void *buf, size_t len, char *why, size_t whylen)
{
	int rc;

	ERR_clear_error();
	rc = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (rc > 0)
		return rc;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: return TLS_WOULD_BLOCK;
	case SSL_ERROR_ZERO_RETURN: return 0;
	default: io_why(ssl, rc, "receive", why, whylen); return TLS_FAILED;
	}
}

int
tls_has_pending(const struct ssl_st *ssl)
{
	return SSL_has_pending(ssl);
}

void
tls_free(struct ssl_st *ssl, int is_clean)
{
	if (ssl == NULL)
		return;
	/* close_notify if the socket takes it now; the answer is not
	 * waited for. */
	if (is_clean)
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}
