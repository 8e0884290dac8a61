/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677), the password exchange of the
 * hello, one copy for the broker (server side, and the keys it stores per
 * user) and the client library (client side). The password never crosses
 * the wire; the broker keeps only StoredKey and ServerKey, derived with
 * PBKDF2-HMAC-SHA-256 from a per-user salt and at least SCRAM_ITER_MIN
 * iterations.
 *
 * Pure: no I/O, no globals, no allocation. The caller owns the state
 * structs (on the stack or inside a connection) and every buffer; each
 * function is handed the sizes, and an output buffer must not overlap the
 * message being read. The crypto is OpenSSL's libcrypto, which
 * is thread-safe: states may live on any thread, one thread at a time.
 *
 * What is refused, deliberately narrower than the RFCs (both ends are ours):
 * - Channel binding: the gs2 header must be "n,," (no "y" or "p=" flag, no
 *   authzid) and the client-final's channel binding "c=biws".
 * - SASLprep is not done: user names and passwords are printable ASCII
 *   (0x20..0x7e) only, so normalisation is the identity; anything else is
 *   refused rather than compared differently from another implementation.
 * - The mandatory extension "m=" is refused; other extensions (a letter,
 *   "=", a value) are accepted and ignored, as RFC 5802 asks.
 *
 * Every function returns >= 0 on success (the length of the message it
 * wrote, without the NUL it adds), or a negative -SCRAM_E* on failure. The
 * codes are 1300 and up, apart from errno values and the broker's RMQ_E*
 * (broker/lib/err.h), so the broker can pass them through and log them.
 * After any failure an exchange is over: start again with _first (which
 * needs no prior initialisation of its struct).
 */
#ifndef RINGMQ_SCRAM_H
#define RINGMQ_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SCRAM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SCRAM_MUST_CHECK
#endif

#define SCRAM_KEY_LEN	   32	    /* SHA-256: every key, proof, signature */
#define SCRAM_USER_MAX	   255	    /* a user name, in bytes, unescaped */
#define SCRAM_PASSWORD_MAX 1024	    /* a password, in bytes */
#define SCRAM_NONCE_MAX	   64	    /* each side's part of the nonce, chars */
#define SCRAM_SALT_MAX	   64	    /* a salt, in bytes (16 is plenty) */
#define SCRAM_ITER_MIN	   4096	    /* RFC 7677's floor for PBKDF2 rounds */
#define SCRAM_ITER_MAX	   10000000 /* a server asking more is refused */
/* Any message of the exchange, in or out, without its NUL: the longest
 * client-first (an escaped name of SCRAM_USER_MAX, three bytes each, and
 * a nonce) is 837; the rest is room for extensions. */
#define SCRAM_MSG_MAX	     1024
#define SCRAM_SERVER_ERR_MAX 63 /* kept of a server's "e=" value */

enum scram_err {
	/* A bad argument of the caller (a name, password, nonce, salt or
	 * iteration count outside the rules), or a call out of order. */
	SCRAM_EINVAL = 1301,
	/* The output buffer is too small. */
	SCRAM_ESPACE,
	/* The peer's message breaks the grammar or a limit. */
	SCRAM_EMALFORMED,
	/* The peer asks for channel binding ("y", "p=" or c= other than
	 * "biws"), which is not done. */
	SCRAM_EBINDING,
	/* The peer sends an authzid or the mandatory extension "m=". */
	SCRAM_EUNSUPPORTED,
	/* The nonce does not continue the client's (server-first), or is not
	 * the one of this exchange (client-final: tampered or replayed). */
	SCRAM_ENONCE,
	/* The server's iteration count is outside [SCRAM_ITER_MIN,
	 * SCRAM_ITER_MAX]. */
	SCRAM_EITERATIONS,
	/* The client's proof is wrong: wrong password (or unknown user). */
	SCRAM_EPROOF,
	/* The server's signature is wrong: it does not hold this user's
	 * keys. */
	SCRAM_ESIGNATURE,
	/* The server-final is an error ("e=..."). */
	SCRAM_ESERVER,
	/* libcrypto failed (random source, PBKDF2, HMAC). */
	SCRAM_ECRYPTO,
};

/* Where an exchange is; a zeroed struct is SCRAM_ST_NONE. */
enum scram_state {
	SCRAM_ST_NONE = 0,
	SCRAM_ST_FIRST,	    /* client-first sent / parsed */
	SCRAM_ST_CHALLENGE, /* server: server-first sent */
	SCRAM_ST_FINAL,	    /* client: client-final sent */
	SCRAM_ST_DONE,	    /* this side's checks passed */
	SCRAM_ST_FAILED,
};

/* The client's side of one exchange. No pointers; the caller owns it. */
struct scram_client {
	enum scram_state state;
	size_t nonce_len; /* the client nonce: bare[bare_len - nonce_len..] */
	size_t bare_len;
	char bare[SCRAM_MSG_MAX + 1]; /* client-first-message-bare */
	/* Expected in the server-final: proves the server holds ServerKey. */
	uint8_t server_signature[SCRAM_KEY_LEN];
	/* The server's "e=" value after SCRAM_ESERVER, printable, truncated;
	 * "" otherwise. */
	char server_error[SCRAM_SERVER_ERR_MAX + 1];
};

/* The server's side of one exchange. No pointers; the caller owns it. */
struct scram_server {
	enum scram_state state;
	size_t nonce_len; /* the client's part and the server's */
	size_t bare_len;
	size_t first_len;
	char nonce[2 * SCRAM_NONCE_MAX + 1];
	char bare[SCRAM_MSG_MAX + 1];  /* client-first-message-bare */
	char first[SCRAM_MSG_MAX + 1]; /* server-first-message */
};

/**
 * Describes a return code of this module.
 * @param[in] rc a negative -SCRAM_E* (any int).
 * @return a static string, never NULL ("unknown error" for other codes).
 */
const char *scram_strerror(int rc);

/**
 * Whether a user name may take part: 1 to SCRAM_USER_MAX printable ASCII
 * characters (0x20..0x7e). For tools that add users.
 * @param[in] user NUL-terminated; read up to SCRAM_USER_MAX + 1 bytes.
 * @return 1 if it may, 0 if not (NULL included).
 */
int scram_user_ok(const char *user);

/**
 * The keys a server stores for a user: StoredKey = H(HMAC(SaltedPassword,
 * "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"), with
 * SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations).
 * Takes the time of the iterations (4096: about 1.5 ms on one core).
 * @param[in] password NUL-terminated, 1 to SCRAM_PASSWORD_MAX printable
 *	ASCII characters; not kept.
 * @param[in] salt salt_len bytes, 1 to SCRAM_SALT_MAX (use 16 random).
 * @param[in] iterations SCRAM_ITER_MIN to SCRAM_ITER_MAX.
 * @param[out] stored_key, server_key SCRAM_KEY_LEN bytes each; left as
 *	they were on failure.
 * @return 0, -SCRAM_EINVAL (an argument outside the rules) or
 *	-SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_salted_keys(const char *password,
				       const uint8_t *salt, size_t salt_len,
				       uint32_t iterations,
				       uint8_t stored_key[SCRAM_KEY_LEN],
				       uint8_t server_key[SCRAM_KEY_LEN]);

/**
 * Client: starts an exchange (whatever sc held) and writes the
 * client-first message "n,,n=USER,r=NONCE", with "," and "=" of the user
 * name escaped as "=2C" and "=3D".
 * @param[out] sc the exchange's state; needs no initialisation.
 * @param[in] user the name, as scram_user_ok() accepts it.
 * @param[in] nonce NULL for a fresh random one (what a client must use);
 *	else 1 to SCRAM_NONCE_MAX printable ASCII characters but ",", for
 *	tests against fixed vectors.
 * @param[out] out size bytes; receives the message and a NUL.
 * @return the message's length, or -SCRAM_EINVAL, -SCRAM_ESPACE,
 *	-SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_client_first(struct scram_client *sc,
					const char *user, const char *nonce,
					char *out, size_t size);

/**
 * Client: answers the server-first "r=NONCE,s=SALT,i=ITERATIONS" with the
 * client-final "c=biws,r=NONCE,p=PROOF", and keeps the server signature to
 * expect. Runs PBKDF2 (the iterations' time).
 * @param[in,out] sc after scram_client_first().
 * @param[in] password NUL-terminated, 1 to SCRAM_PASSWORD_MAX printable
 *	ASCII characters; not kept.
 * @param[in] server_first NUL-terminated, from the wire.
 * @param[out] out size bytes; receives the message and a NUL.
 * @return the message's length, or -SCRAM_EINVAL, -SCRAM_ESPACE,
 *	-SCRAM_EMALFORMED, -SCRAM_EUNSUPPORTED, -SCRAM_ENONCE (the server's
 *	nonce does not extend ours), -SCRAM_EITERATIONS, -SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_client_final(struct scram_client *sc,
					const char *password,
					const char *server_first, char *out,
					size_t size);

/**
 * Client: checks the server-final "v=SIGNATURE" (in constant time). Only a
 * 0 here means the broker is the one holding this user's keys.
 * @param[in,out] sc after scram_client_final().
 * @param[in] server_final NUL-terminated, from the wire.
 * @return 0, or -SCRAM_EINVAL, -SCRAM_EMALFORMED, -SCRAM_ESIGNATURE,
 *	-SCRAM_ESERVER (an "e=" error, its value in sc->server_error).
 */
SCRAM_MUST_CHECK int scram_client_verify(struct scram_client *sc,
					 const char *server_final);

/**
 * Server: starts an exchange (whatever ss held) from the client-first
 * message and returns the user name, unescaped, to look its keys up.
 * @param[out] ss the exchange's state; needs no initialisation.
 * @param[in] client_first NUL-terminated, from the wire.
 * @param[in] nonce the server's part of the nonce: NULL for a fresh random
 *	one (what a server must use), else as for scram_client_first().
 * @param[out] user_out user_size bytes; receives the name and a NUL
 *	(SCRAM_USER_MAX + 1 always suffices).
 * @return the name's length, or -SCRAM_EINVAL, -SCRAM_ESPACE,
 *	-SCRAM_EMALFORMED, -SCRAM_EBINDING, -SCRAM_EUNSUPPORTED,
 *	-SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_server_first(struct scram_server *ss,
					const char *client_first,
					const char *nonce, char *user_out,
					size_t user_size);

/**
 * Server: writes the server-first "r=NONCE,s=SALT,i=ITERATIONS" with the
 * user's salt and count. For an unknown user, give a made-up salt so the
 * exchange looks the same and fails at the proof.
 * @param[in,out] ss after scram_server_first().
 * @param[in] salt salt_len bytes, 1 to SCRAM_SALT_MAX.
 * @param[in] iterations SCRAM_ITER_MIN to SCRAM_ITER_MAX.
 * @param[out] out size bytes; receives the message and a NUL.
 * @return the message's length, or -SCRAM_EINVAL, -SCRAM_ESPACE.
 */
SCRAM_MUST_CHECK int scram_server_challenge(struct scram_server *ss,
					    const uint8_t *salt,
					    size_t salt_len,
					    uint32_t iterations, char *out,
					    size_t size);

/**
 * Server: checks the client-final "c=biws,r=NONCE,p=PROOF" against the
 * user's keys (H(ClientKey) == StoredKey, in constant time) and writes the
 * server-final "v=SIGNATURE". Only a return >= 0 authenticates the user.
 * @param[in,out] ss after scram_server_challenge().
 * @param[in] stored_key, server_key the user's, SCRAM_KEY_LEN bytes each.
 * @param[in] client_final NUL-terminated, from the wire.
 * @param[out] out size bytes; receives the message and a NUL.
 * @return the message's length, or -SCRAM_EINVAL, -SCRAM_ESPACE,
 *	-SCRAM_EMALFORMED, -SCRAM_EBINDING, -SCRAM_ENONCE, -SCRAM_EPROOF,
 *	-SCRAM_ECRYPTO. Whichever it is, tell the client the same.
 */
SCRAM_MUST_CHECK int scram_server_final(struct scram_server *ss,
					const uint8_t stored_key[SCRAM_KEY_LEN],
					const uint8_t server_key[SCRAM_KEY_LEN],
					const char *client_final, char *out,
					size_t size);

/**
 * Fills buf with len bytes from libcrypto's random source (salts, secrets).
 * @return 0 or -SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_random(void *buf, size_t len);

/**
 * Server: the salt to show for a user that does not exist, HMAC-SHA-256 of
 * the name under a secret of the server's: the same name gets the same
 * salt, so a client cannot tell an unknown user from a known one by it.
 * @param[in] secret SCRAM_KEY_LEN random bytes, kept by the server.
 * @param[in] user NUL-terminated.
 * @param[out] salt salt_len bytes, 1 to SCRAM_KEY_LEN.
 * @return 0, -SCRAM_EINVAL or -SCRAM_ECRYPTO.
 */
SCRAM_MUST_CHECK int scram_fake_salt(const uint8_t secret[SCRAM_KEY_LEN],
				     const char *user, uint8_t *salt,
				     size_t salt_len);

/* Zeroes an exchange's state (the client's holds the expected server
 * signature). NULL is a no-op. */
void scram_client_fini(struct scram_client *sc);
void scram_server_fini(struct scram_server *ss);

#endif
