/*
 * tls: TLS for client connections, over memory buffers.
 *
 * OpenSSL never touches a socket here: conn hands it the bytes a receive
 * brought (tls_conn_feed), takes the plaintext back (tls_conn_read), gives
 * it plaintext to send (tls_conn_write) and takes the records to put on
 * the wire (tls_conn_out_take). Nothing blocks, so a handshake costs the
 * loop only its CPU time, and a slow peer holds up no other connection.
 *
 * A tls_ctx is the broker's certificate, key and CA, as one OpenSSL
 * SSL_CTX. tls_ctx_reload builds a new SSL_CTX from the same files and
 * swaps it in for connections made afterwards; a connection keeps the
 * SSL_CTX it began with (each SSL holds a reference on its SSL_CTX), so a
 * reload drops nothing. If the files do not load, the old one stays.
 *
 * Runs on: the loop thread (OpenSSL's error queue is per thread).
 */
#ifndef RINGMQ_TLS_H
#define RINGMQ_TLS_H

#include <stddef.h>
#include <stdint.h>

struct tls_ctx;	 /* opaque */
struct tls_conn; /* opaque */

/* 1 when data, the first bytes a peer sent, start a TLS handshake record
 * (a TLS client on the plaintext port): 0x16 then a 3.x version. */
int tls_is_client_hello(const uint8_t *data, size_t len);

/* Whether the broker asks clients for a certificate (--tls-client-auth). */
enum tls_client_auth {
	TLS_CLIENT_AUTH_NONE,	  /* not asked */
	TLS_CLIENT_AUTH_OPTIONAL, /* asked; one given must verify */
	TLS_CLIENT_AUTH_REQUIRE,  /* asked, and refused without one */
};

/* Where the broker's TLS material is. The paths are copied. */
struct tls_files {
	const char *cert; /* PEM: the certificate, then its chain */
	const char *key;  /* PEM: the private key */
	const char *ca;	  /* PEM: CAs that client certificates must chain
			   * to; NULL or "" for none */
	int client_auth;  /* enum tls_client_auth */
};

/*
 * Loads the files into a new context.
 * @param[out] out  the context, NULL on failure.
 * @param[out] err  why it failed, naming the file.
 * @return 0, -EINVAL (a file that does not load), -ENOMEM.
 */
int tls_ctx_open(struct tls_ctx **out, const struct tls_files *f, char *err,
		 size_t errlen);

/*
 * Loads the same files again into a new SSL_CTX for the connections made
 * from now on; on failure the current one stays.
 * @param[out] err  why it failed.
 * @return 0, or -EINVAL / -ENOMEM with t unchanged.
 */
int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen);

/* Frees t; connections still open keep their SSL_CTX. NULL is a no-op. */
void tls_ctx_close(struct tls_ctx *t);

/*
 * A TLS server connection over t's current SSL_CTX.
 * @return 0 or -ENOMEM; *out NULL on failure.
 */
int tls_conn_new(struct tls_conn **out, struct tls_ctx *t);

/* NULL is a no-op. */
void tls_conn_free(struct tls_conn *tc);

/*
 * Hands over len bytes received from the peer (copied).
 * @return 0; -RMQ_EBAD_FRAME when the peer's first byte does not start a
 *         TLS handshake record (a plaintext client on the TLS port);
 *         -ENOMEM.
 */
int tls_conn_feed(struct tls_conn *tc, const uint8_t *data, size_t len);

/*
 * Moves the handshake on and decrypts what was fed.
 * @return the plaintext bytes put in buf (> 0); 0 when more input is
 *         needed; -ESHUTDOWN when the peer sent close_notify; -EPROTO when
 *         the handshake or a record failed (tls_conn_why says why; the
 *         alert for the peer is waiting in the output).
 */
long tls_conn_read(struct tls_conn *tc, uint8_t *buf, size_t cap);

/* 1 once the handshake is done: plaintext may be written. */
int tls_conn_is_ready(const struct tls_conn *tc);

/*
 * Encrypts len bytes of plaintext into the output. Only once ready.
 * @return 0; -EAGAIN before the handshake is done; -EPROTO, -ENOMEM.
 */
int tls_conn_write(struct tls_conn *tc, const uint8_t *data, size_t len);

/* Writes a close_notify alert into the output (once; only when ready and
 * nothing failed). */
void tls_conn_close_notify(struct tls_conn *tc);

/* Bytes of records waiting to go to the peer. */
size_t tls_conn_out_len(const struct tls_conn *tc);

/* Moves up to cap bytes of waiting records into buf. @return bytes. */
size_t tls_conn_out_take(struct tls_conn *tc, uint8_t *buf, size_t cap);

/* Why the last -EPROTO came; "" before one. Static until the next call. */
const char *tls_conn_why(const struct tls_conn *tc);

/*
 * The identity in the client's certificate, once the handshake is done
 * and the certificate verified against --tls-ca (authentication maps it
 * to a user).
 * @param[out] cn   its subject's common name ("" if none).
 * @param[out] san  its first DNS or email subject alternative name ("" if
 *                  none).
 * @return 1 with a verified client certificate; 0 without one (cn and san
 *         are then "").
 */
int tls_conn_peer_identity(const struct tls_conn *tc, char *cn, size_t cnlen,
			   char *san, size_t sanlen);

/* The protocol and cipher of a ready connection, for the logs
 * ("TLSv1.3 TLS_AES_256_GCM_SHA384"). */
void tls_conn_describe(const struct tls_conn *tc, char *buf, size_t len);

#endif
