/*
 * Unit tests of scram (proto/scram.h): the RFC 7677 example exchange byte
 * for byte from both sides, the two sides against each other, and the
 * refusals: wrong password, tampered or replayed nonces, channel binding,
 * authzid, out-of-range iterations, non-canonical base64, every proper
 * prefix of each message and random garbage (each in a buffer of its exact
 * size, so a read past the end shows under ASan), over-long and non-ASCII
 * input, and calls out of order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scram.h"
#include "xorshift.h"

/* RFC 7677, section 3. */
#define RFC_USER	 "user"
#define RFC_PASSWORD	 "pencil"
#define RFC_CNONCE	 "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE	 "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST \
	"r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                  \
	"c=biws,r=" RFC_CNONCE RFC_SNONCE \
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
#define RFC_ITERATIONS	 4096

/* W22ZaJ0SNY7soEsUEjb6gQ== decoded. */
static const uint8_t rfc_salt[16] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12,
				      0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14,
				      0x12, 0x36, 0xfa, 0x81 };

/* StoredKey and ServerKey of "pencil" with that salt, from Python's
 * hashlib.pbkdf2_hmac and hmac, apart from OpenSSL. */
static const uint8_t rfc_stored_key[SCRAM_KEY_LEN] = {
	0x58, 0x6e, 0x5d, 0xf2, 0x83, 0xe6, 0xdc, 0xeb, 0x5c, 0x3e, 0x79,
	0x1d, 0x8b, 0x85, 0x28, 0xec, 0x19, 0x1e, 0x66, 0x40, 0x45, 0xce,
	0x97, 0x17, 0x92, 0xe2, 0xe6, 0xb5, 0xbb, 0x13, 0xe2, 0xa6
};
static const uint8_t rfc_server_key[SCRAM_KEY_LEN] = {
	0xc1, 0xf3, 0xcb, 0xc1, 0xc1, 0x3a, 0x9d, 0x35, 0xa1, 0x4c, 0x09,
	0x90, 0xee, 0xd9, 0x76, 0x29, 0xea, 0x22, 0x58, 0x63, 0xe5, 0x66,
	0xa4, 0x31, 0x4a, 0xb9, 0x9f, 0x3f, 0x00, 0xe5, 0xd9, 0xd5
};

#define MSG_BYTES (SCRAM_MSG_MAX + 1)

/* A copy of s[0..len) with its NUL in a heap block of exactly len + 1
 * bytes: a read past the NUL is an ASan error. */
static char *
exact(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	assert_non_null(p);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* A copy of s with the first occurrence of from replaced by to (one
 * message edited into another); freed by the caller. */
static char *
edit(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	size_t head;
	size_t len;
	char *p;

	assert_non_null(at);
	head = (size_t)(at - s);
	len = strlen(s) - strlen(from) + strlen(to);
	p = malloc(len + 1);
	assert_non_null(p);
	memcpy(p, s, head);
	memcpy(p + head, to, strlen(to));
	strcpy(p + head + strlen(to), at + strlen(from));
	return p;
}

/* The RFC server state after its challenge, ready for a client-final. */
static void
rfc_server_challenged(struct scram_server *ss)
{
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];

	assert_int_equal(scram_server_first(ss, RFC_CLIENT_FIRST, RFC_SNONCE,
					    user, sizeof(user)),
			 strlen(RFC_USER));
	assert_int_equal(scram_server_challenge(ss, rfc_salt, sizeof(rfc_salt),
						RFC_ITERATIONS, out,
						sizeof(out)),
			 strlen(RFC_SERVER_FIRST));
}

/* The RFC client state after its first message, ready for the server's. */
static void
rfc_client_started(struct scram_client *sc)
{
	char out[MSG_BYTES];

	assert_int_equal(
		scram_client_first(sc, RFC_USER, RFC_CNONCE, out, sizeof(out)),
		strlen(RFC_CLIENT_FIRST));
}

/* What a fresh RFC server state answers to the RFC client-final with
 * from replaced by to. */
static int
rfc_server_final_edited(const char *from, const char *to)
{
	struct scram_server ss;
	char out[MSG_BYTES];
	char *msg = edit(RFC_CLIENT_FINAL, from, to);
	int rc;

	rfc_server_challenged(&ss);
	rc = scram_server_final(&ss, rfc_stored_key, rfc_server_key, msg, out,
				sizeof(out));
	free(msg);
	return rc;
}

/* What a fresh RFC client state answers, into size bytes, to the RFC
 * server-first with from replaced by to. */
static int
rfc_client_final_edited(const char *from, const char *to, size_t size)
{
	struct scram_client sc;
	char out[MSG_BYTES];
	char *msg = edit(RFC_SERVER_FIRST, from, to);
	int rc;

	assert_true(size <= sizeof(out));
	rfc_client_started(&sc);
	rc = scram_client_final(&sc, RFC_PASSWORD, msg, out, size);
	free(msg);
	return rc;
}

/* ------------------------------------------------------------ RFC 7677 */

static void
test_scram_salted_keys_match_an_independent_computation(void **state)
{
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server[SCRAM_KEY_LEN];

	(void)state;
	assert_int_equal(scram_salted_keys(RFC_PASSWORD, rfc_salt,
					   sizeof(rfc_salt), RFC_ITERATIONS,
					   stored, server),
			 0);
	assert_memory_equal(stored, rfc_stored_key, SCRAM_KEY_LEN);
	assert_memory_equal(server, rfc_server_key, SCRAM_KEY_LEN);
}

static void
test_scram_client_speaks_the_rfc_7677_example(void **state)
{
	struct scram_client sc;
	char out[MSG_BYTES];

	(void)state;
	assert_int_equal(
		scram_client_first(&sc, RFC_USER, RFC_CNONCE, out, sizeof(out)),
		strlen(RFC_CLIENT_FIRST));
	assert_string_equal(out, RFC_CLIENT_FIRST);
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST,
					    out, sizeof(out)),
			 strlen(RFC_CLIENT_FINAL));
	assert_string_equal(out, RFC_CLIENT_FINAL);
	assert_int_equal(scram_client_verify(&sc, RFC_SERVER_FINAL), 0);
	assert_int_equal(sc.state, SCRAM_ST_DONE);
	scram_client_fini(&sc);
	assert_int_equal(sc.state, SCRAM_ST_NONE);
	assert_int_equal(sc.bare_len, 0);
}

static void
test_scram_server_speaks_the_rfc_7677_example(void **state)
{
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];

	(void)state;
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, RFC_SNONCE,
					    user, sizeof(user)),
			 4);
	assert_string_equal(user, RFC_USER);
	assert_int_equal(scram_server_challenge(&ss, rfc_salt, sizeof(rfc_salt),
						RFC_ITERATIONS, out,
						sizeof(out)),
			 strlen(RFC_SERVER_FIRST));
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, sizeof(out)),
			 strlen(RFC_SERVER_FINAL));
	assert_string_equal(out, RFC_SERVER_FINAL);
	assert_int_equal(ss.state, SCRAM_ST_DONE);
	scram_server_fini(&ss);
	assert_int_equal(ss.state, SCRAM_ST_NONE);
}

/* Both sides of this module, random nonces, each message handed over. */
static int
exchange(const char *user, const char *password, const char *stored_password,
	 char *user_seen)
{
	uint8_t salt[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server[SCRAM_KEY_LEN];
	struct scram_client sc;
	struct scram_server ss;
	char c2s[MSG_BYTES];
	char s2c[MSG_BYTES];
	int rc;

	assert_int_equal(scram_salted_keys(stored_password, salt, sizeof(salt),
					   SCRAM_ITER_MIN, stored, server),
			 0);
	assert_true(scram_client_first(&sc, user, NULL, c2s, sizeof(c2s)) > 0);
	assert_true(scram_server_first(&ss, c2s, NULL, user_seen,
				       SCRAM_USER_MAX + 1) > 0);
	assert_true(scram_server_challenge(&ss, salt, sizeof(salt),
					   SCRAM_ITER_MIN, s2c,
					   sizeof(s2c)) > 0);
	assert_true(scram_client_final(&sc, password, s2c, c2s, sizeof(c2s)) >
		    0);
	rc = scram_server_final(&ss, stored, server, c2s, s2c, sizeof(s2c));
	if (rc < 0)
		return rc;
	return scram_client_verify(&sc, s2c);
}

static void
test_scram_both_sides_agree_with_random_nonces(void **state)
{
	char user[SCRAM_USER_MAX + 1];

	(void)state;
	assert_int_equal(exchange("alice", "s3cret pass", "s3cret pass", user),
			 0);
	assert_string_equal(user, "alice");
}

static void
test_scram_random_nonces_differ_and_are_printable(void **state)
{
	struct scram_client sc;
	char a[MSG_BYTES];
	char b[MSG_BYTES];
	size_t prefix = strlen("n,,n=u,r=");

	(void)state;
	assert_int_equal(scram_client_first(&sc, "u", NULL, a, sizeof(a)),
			 prefix + 32);
	assert_int_equal(scram_client_first(&sc, "u", NULL, b, sizeof(b)),
			 prefix + 32);
	assert_memory_equal(a, "n,,n=u,r=", prefix);
	assert_true(strcmp(a, b) != 0);
	for (size_t i = prefix; a[i] != '\0'; i++)
		assert_true(a[i] > 0x20 && a[i] < 0x7f && a[i] != ',');
}

/* ------------------------------------------------------------ user names */

static void
test_scram_names_with_comma_and_equals_round_trip(void **state)
{
	static const char *const names[] = { "a,b=c", ",",    "=",
					     "=2C",   "==,,", " sp ace " };
	struct scram_client sc;
	struct scram_server ss;
	char out[MSG_BYTES];
	char user[SCRAM_USER_MAX + 1];

	(void)state;
	assert_int_equal(
		scram_client_first(&sc, "a,b=c", "n", out, sizeof(out)),
		strlen("n,,n=a=2Cb=3Dc,r=n"));
	assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=n");
	assert_int_equal(scram_server_first(&ss, out, "s", user, sizeof(user)),
			 5);
	assert_string_equal(user, "a,b=c");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(exchange(names[i], "pw", "pw", user), 0);
		assert_string_equal(user, names[i]);
	}
}

static void
test_scram_longest_name_fits_escaped(void **state)
{
	char name[SCRAM_USER_MAX + 2];
	char user[SCRAM_USER_MAX + 1];
	struct scram_client sc;
	char out[MSG_BYTES];

	(void)state;
	/* Every character escaped: three bytes each on the wire. */
	memset(name, ',', SCRAM_USER_MAX);
	name[SCRAM_USER_MAX] = '\0';
	assert_int_equal(exchange(name, "pw", "pw", user), 0);
	assert_string_equal(user, name);
	name[SCRAM_USER_MAX] = ',';
	name[SCRAM_USER_MAX + 1] = '\0';
	assert_int_equal(scram_client_first(&sc, name, NULL, out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_user_ok(name), 0);
	name[SCRAM_USER_MAX] = '\0';
	assert_int_equal(scram_user_ok(name), 1);
}

static void
test_scram_refuses_bad_names_and_passwords(void **state)
{
	static const char *const bad[] = { "", "us\xc3\xa9r", "tab\there",
					   "new\nline", "del\x7f" };
	uint8_t key[SCRAM_KEY_LEN];
	struct scram_client sc;
	char out[MSG_BYTES];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(scram_user_ok(bad[i]), 0);
		assert_int_equal(
			scram_client_first(&sc, bad[i], NULL, out, sizeof(out)),
			-SCRAM_EINVAL);
		assert_int_equal(scram_salted_keys(bad[i], rfc_salt,
						   sizeof(rfc_salt),
						   RFC_ITERATIONS, key, key),
				 -SCRAM_EINVAL);
		rfc_client_started(&sc);
		assert_int_equal(scram_client_final(&sc, bad[i],
						    RFC_SERVER_FIRST, out,
						    sizeof(out)),
				 -SCRAM_EINVAL);
	}
	assert_int_equal(scram_user_ok(NULL), 0);
}

static void
test_scram_password_length_is_bounded(void **state)
{
	char password[SCRAM_PASSWORD_MAX + 2];
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server[SCRAM_KEY_LEN];
	struct scram_client sc;
	char out[MSG_BYTES];

	(void)state;
	memset(password, 'p', SCRAM_PASSWORD_MAX + 1);
	password[SCRAM_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(scram_salted_keys(password, rfc_salt, sizeof(rfc_salt),
					   RFC_ITERATIONS, stored, server),
			 -SCRAM_EINVAL);
	rfc_client_started(&sc);
	assert_int_equal(scram_client_final(&sc, password, RFC_SERVER_FIRST,
					    out, sizeof(out)),
			 -SCRAM_EINVAL);
	password[SCRAM_PASSWORD_MAX] = '\0';
	assert_int_equal(scram_salted_keys(password, rfc_salt, sizeof(rfc_salt),
					   RFC_ITERATIONS, stored, server),
			 0);
}

/* ------------------------------------------------------------ refusals */

static void
test_scram_wrong_password_is_a_wrong_proof(void **state)
{
	struct scram_client sc;
	struct scram_server ss;
	char c2s[MSG_BYTES];
	char out[MSG_BYTES];
	char user[SCRAM_USER_MAX + 1];

	(void)state;
	rfc_client_started(&sc);
	assert_true(scram_client_final(&sc, "pencil!", RFC_SERVER_FIRST, c2s,
				       sizeof(c2s)) > 0);
	rfc_server_challenged(&ss);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    c2s, out, sizeof(out)),
			 -SCRAM_EPROOF);
	assert_int_equal(ss.state, SCRAM_ST_FAILED);
	assert_int_equal(exchange("bob", "wrong", "right", user),
			 -SCRAM_EPROOF);
}

static void
test_scram_server_refuses_a_tampered_nonce(void **state)
{
	(void)state;
	/* one character of the server's part changed */
	assert_int_equal(rfc_server_final_edited("hNlF$k0", "hNlF$k1"),
			 -SCRAM_ENONCE);
	/* the client's nonce alone */
	assert_int_equal(rfc_server_final_edited(RFC_SNONCE, ""),
			 -SCRAM_ENONCE);
}

static void
test_scram_client_refuses_a_nonce_not_extending_its_own(void **state)
{
	static const char *const firsts[] = {
		/* another client nonce */
		"r=xOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		/* no server part */
		"r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		/* shorter than ours */
		"r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	};
	struct scram_client sc;
	char out[MSG_BYTES];

	(void)state;
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		rfc_client_started(&sc);
		assert_int_equal(scram_client_final(&sc, RFC_PASSWORD,
						    firsts[i], out,
						    sizeof(out)),
				 -SCRAM_ENONCE);
		assert_int_equal(sc.state, SCRAM_ST_FAILED);
	}
}

static void
test_scram_server_refuses_a_replayed_client_final(void **state)
{
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];

	(void)state;
	/* The RFC's client-final, valid once, against a fresh exchange
	 * started by the same client-first: the server's nonce is new. */
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, NULL, user,
					    sizeof(user)),
			 4);
	assert_true(scram_server_challenge(&ss, rfc_salt, sizeof(rfc_salt),
					   RFC_ITERATIONS, out,
					   sizeof(out)) > 0);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, sizeof(out)),
			 -SCRAM_ENONCE);
	/* Nor twice against the state that accepted it. */
	rfc_server_challenged(&ss);
	assert_true(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
				       RFC_CLIENT_FINAL, out, sizeof(out)) > 0);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, sizeof(out)),
			 -SCRAM_EINVAL);
}

static void
test_scram_server_refuses_channel_binding(void **state)
{
	static const char *const firsts[] = {
		"y,,n=user,r=" RFC_CNONCE,
		"p=tls-unique,,n=user,r=" RFC_CNONCE,
		"p=tls-server-end-point,,n=user,r=" RFC_CNONCE,
	};
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		assert_int_equal(scram_server_first(&ss, firsts[i], NULL, user,
						    sizeof(user)),
				 -SCRAM_EBINDING);
	}
	/* c= other than biws (base64 of "n,,"): "y,," and a p= header */
	assert_int_equal(rfc_server_final_edited("c=biws", "c=eSws"),
			 -SCRAM_EBINDING);
	assert_int_equal(
		rfc_server_final_edited("c=biws", "c=cD10bHMtdW5pcXVlLCwAAQID"),
		-SCRAM_EBINDING);
}

static void
test_scram_server_refuses_authzid_and_mandatory_extensions(void **state)
{
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];

	(void)state;
	assert_int_equal(scram_server_first(&ss, "n,a=admin,n=user,r=abc", NULL,
					    user, sizeof(user)),
			 -SCRAM_EUNSUPPORTED);
	assert_int_equal(scram_server_first(&ss, "n,,m=ext,n=user,r=abc", NULL,
					    user, sizeof(user)),
			 -SCRAM_EUNSUPPORTED);
	/* an optional extension is ignored */
	assert_int_equal(scram_server_first(&ss, "n,,n=user,r=abc,x=1", NULL,
					    user, sizeof(user)),
			 4);
}

static void
test_scram_proof_comes_last_and_covers_extensions(void **state)
{
	static const struct {
		const char *from;
		const char *to;
		int rc;
	} cases[] = {
		/* anything after the proof */
		{ "AndVQ=", "AndVQ=,x=1", -SCRAM_EMALFORMED },
		{ "AndVQ=", "AndVQ=,", -SCRAM_EMALFORMED },
		{ "AndVQ=", "AndVQ=,p=biws", -SCRAM_EMALFORMED },
		/* an extension before it is signed with the rest: the RFC's
		 * proof no longer holds */
		{ ",p=", ",x=1,p=", -SCRAM_EPROOF },
		{ ",p=", ",m=1,p=", -SCRAM_EMALFORMED },
		{ ",p=", ",,p=", -SCRAM_EMALFORMED },
		{ ",p=", ",p=", 46 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
			rfc_server_final_edited(cases[i].from, cases[i].to),
			cases[i].rc);
	}
}

static void
test_scram_client_checks_the_iteration_count(void **state)
{
	static const struct {
		const char *i;
		int rc;
	} cases[] = {
		{ "4095", -SCRAM_EITERATIONS },
		{ "1", -SCRAM_EITERATIONS },
		{ "10000001", -SCRAM_EITERATIONS },
		{ "99999999999999999999", -SCRAM_EITERATIONS },
		{ "04096", -SCRAM_EMALFORMED },
		{ "0", -SCRAM_EMALFORMED },
		{ "-4096", -SCRAM_EMALFORMED },
		{ "4096x", -SCRAM_EMALFORMED },
		{ "", -SCRAM_EMALFORMED },
		/* in range: stops only at the too small output buffer */
		{ "10000000", -SCRAM_ESPACE },
		{ "4096", -SCRAM_ESPACE },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char to[32];

		snprintf(to, sizeof(to), "i=%s", cases[i].i);
		/* room for "c=biws,r=NONCE", not for the proof */
		assert_int_equal(rfc_client_final_edited("i=4096", to, 60),
				 cases[i].rc);
	}
}

static void
test_scram_iteration_count_and_salt_are_bounded_for_the_server(void **state)
{
	uint8_t salt[SCRAM_SALT_MAX + 1] = { 0 };
	uint8_t key[SCRAM_KEY_LEN];
	struct scram_client sc;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];
	char c2s[MSG_BYTES];

	(void)state;
	assert_int_equal(
		scram_salted_keys("pw", salt, 16, SCRAM_ITER_MIN - 1, key, key),
		-SCRAM_EINVAL);
	assert_int_equal(
		scram_salted_keys("pw", salt, 0, SCRAM_ITER_MIN, key, key),
		-SCRAM_EINVAL);
	assert_int_equal(scram_salted_keys("pw", salt, SCRAM_SALT_MAX + 1,
					   SCRAM_ITER_MIN, key, key),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, NULL, user,
					    sizeof(user)),
			 4);
	assert_int_equal(scram_server_challenge(&ss, salt, 16,
						SCRAM_ITER_MAX + 1, out,
						sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, NULL, user,
					    sizeof(user)),
			 4);
	assert_int_equal(scram_server_challenge(&ss, salt, SCRAM_SALT_MAX + 1,
						SCRAM_ITER_MIN, out,
						sizeof(out)),
			 -SCRAM_EINVAL);
	/* The largest salt and count make a server-first the client takes
	 * (up to its output size). */
	assert_true(scram_client_first(&sc, "u", NULL, c2s, sizeof(c2s)) > 0);
	assert_true(scram_server_first(&ss, c2s, NULL, user, sizeof(user)) > 0);
	assert_true(scram_server_challenge(&ss, salt, SCRAM_SALT_MAX,
					   SCRAM_ITER_MAX, out,
					   sizeof(out)) > 0);
	assert_int_equal(scram_client_final(&sc, "pw", out, c2s, 8),
			 -SCRAM_ESPACE);
}

static void
test_scram_base64_must_be_canonical(void **state)
{
	static const char *const salts[] = {
		"W22ZaJ0SNY7soEsUEjb6gQ",   /* no padding */
		"W22ZaJ0SNY7soEsUEjb6gR==", /* unused bits set */
		"W22ZaJ0SNY7soEsUEjb6g Q=", /* a space */
		"W22ZaJ0SNY7soEsUEjb6gQ=",  /* length not a multiple of 4 */
		"W22ZaJ0SNY7soEsUEjb6gQ=A", /* padding inside */
		"====",
		"W22ZaJ0SNY7soEsU-jb6gQ==", /* base64url */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(salts) / sizeof(salts[0]); i++) {
		assert_int_equal(rfc_client_final_edited(
					 "W22ZaJ0SNY7soEsUEjb6gQ==", salts[i],
					 MSG_BYTES),
				 -SCRAM_EMALFORMED);
	}
	/* The proof's last character with unused bits set: the same bytes
	 * to EVP_DecodeBlock, refused before any key is tried. */
	assert_int_equal(rfc_server_final_edited("AndVQ=", "AndVR="),
			 -SCRAM_EMALFORMED);
	/* A proof of 31 bytes. */
	assert_int_equal(rfc_server_final_edited("AndVQ=", "AndQ=="),
			 -SCRAM_EMALFORMED);
}

static void
test_scram_client_checks_the_server_signature(void **state)
{
	static const uint8_t zero_key[SCRAM_KEY_LEN];
	struct scram_client sc;
	struct scram_client ready;
	struct scram_server ss;
	char out[MSG_BYTES];
	char other_final[MSG_BYTES];

	(void)state;
	rfc_client_started(&ready);
	assert_true(scram_client_final(&ready, RFC_PASSWORD, RFC_SERVER_FIRST,
				       out, sizeof(out)) > 0);
	sc = ready;
	assert_int_equal(
		scram_client_verify(
			&sc, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
		-SCRAM_ESIGNATURE);
	assert_int_equal(sc.state, SCRAM_ST_FAILED);
	/* A server holding a stolen StoredKey but not the ServerKey: it
	 * takes the proof and cannot sign. */
	rfc_server_challenged(&ss);
	assert_true(scram_server_final(&ss, rfc_stored_key, zero_key,
				       RFC_CLIENT_FINAL, other_final,
				       sizeof(other_final)) > 0);
	sc = ready;
	assert_int_equal(scram_client_verify(&sc, other_final),
			 -SCRAM_ESIGNATURE);
	/* An optional extension after the signature is ignored. */
	sc = ready;
	assert_int_equal(scram_client_verify(&sc, RFC_SERVER_FINAL ",x=ext"),
			 0);
	sc = ready;
	assert_int_equal(scram_client_verify(&sc, "e=invalid-proof"),
			 -SCRAM_ESERVER);
	assert_string_equal(sc.server_error, "invalid-proof");
	sc = ready;
	assert_int_equal(scram_client_verify(&sc, "v=biws"), -SCRAM_EMALFORMED);
	/* The right signature once the state has failed: still refused. */
	assert_int_equal(scram_client_verify(&sc, RFC_SERVER_FINAL),
			 -SCRAM_EINVAL);
}

static void
test_scram_server_error_text_is_kept_short(void **state)
{
	struct scram_client sc;
	char out[MSG_BYTES];
	char msg[2 + 200 + 1] = "e=";

	(void)state;
	memset(msg + 2, 'x', 200);
	msg[202] = '\0';
	rfc_client_started(&sc);
	assert_true(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST, out,
				       sizeof(out)) > 0);
	assert_int_equal(scram_client_verify(&sc, msg), -SCRAM_ESERVER);
	assert_int_equal(strlen(sc.server_error), SCRAM_SERVER_ERR_MAX);
}

/* ------------------------------------------------------------ bounds */

static void
test_scram_refuses_every_proper_prefix(void **state)
{
	struct scram_client sc;
	struct scram_client ready;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];
	size_t bare_min = strlen("n,,n=user,r=");

	(void)state;
	/* client-first: valid from "n,,n=user,r=X" on (a shorter nonce) */
	for (size_t len = 0; len < strlen(RFC_CLIENT_FIRST); len++) {
		char *msg = exact(RFC_CLIENT_FIRST, len);
		int rc = scram_server_first(&ss, msg, NULL, user, sizeof(user));

		if (len > bare_min)
			assert_int_equal(rc, 4);
		else
			assert_true(rc < 0);
		free(msg);
	}
	for (size_t len = 0; len < strlen(RFC_SERVER_FIRST); len++) {
		char *msg = exact(RFC_SERVER_FIRST, len);

		rfc_client_started(&sc);
		assert_true(scram_client_final(&sc, RFC_PASSWORD, msg, out,
					       sizeof(out)) < 0);
		free(msg);
	}
	for (size_t len = 0; len < strlen(RFC_CLIENT_FINAL); len++) {
		char *msg = exact(RFC_CLIENT_FINAL, len);

		rfc_server_challenged(&ss);
		assert_true(scram_server_final(&ss, rfc_stored_key,
					       rfc_server_key, msg, out,
					       sizeof(out)) < 0);
		free(msg);
	}
	rfc_client_started(&ready);
	assert_true(scram_client_final(&ready, RFC_PASSWORD, RFC_SERVER_FIRST,
				       out, sizeof(out)) > 0);
	for (size_t len = 0; len < strlen(RFC_SERVER_FINAL); len++) {
		char *msg = exact(RFC_SERVER_FINAL, len);

		sc = ready;
		assert_true(scram_client_verify(&sc, msg) < 0);
		free(msg);
	}
}

static void
test_scram_refuses_garbage(void **state)
{
	uint64_t seed = 0x5c4a3b2a1908f7e6u;
	struct scram_client sc;
	struct scram_client ready;
	struct scram_server ss;
	struct scram_server challenged;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];
	char buf[300];

	(void)state;
	rfc_client_started(&ready);
	assert_true(scram_client_final(&ready, RFC_PASSWORD, RFC_SERVER_FIRST,
				       out, sizeof(out)) > 0);
	rfc_server_challenged(&challenged);
	for (int round = 0; round < 4000; round++) {
		size_t len = xorshift64(&seed) % sizeof(buf);
		/* half the rounds any byte but NUL, half printable ASCII
		 * with many "," and "=" */
		int is_text = round % 2;
		char *msg;

		for (size_t i = 0; i < len; i++) {
			uint64_t r = xorshift64(&seed);

			if (!is_text)
				buf[i] = (char)(1 + r % 255);
			else if (r % 4 == 0)
				buf[i] = (r & 8) ? ',' : '=';
			else
				buf[i] = (char)(0x20 + (r >> 8) % 95);
		}
		msg = exact(buf, len);
		assert_true(scram_server_first(&ss, msg, NULL, user,
					       sizeof(user)) < 0);
		sc = ready;
		sc.state = SCRAM_ST_FIRST;
		assert_true(scram_client_final(&sc, RFC_PASSWORD, msg, out,
					       sizeof(out)) < 0);
		ss = challenged;
		assert_true(scram_server_final(&ss, rfc_stored_key,
					       rfc_server_key, msg, out,
					       sizeof(out)) < 0);
		sc = ready;
		assert_true(scram_client_verify(&sc, msg) < 0);
		free(msg);
	}
}

static void
test_scram_refuses_over_long_messages_reading_no_further(void **state)
{
	struct scram_client sc;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];
	char *msg = malloc(SCRAM_MSG_MAX + 1);
	char *ext;
	char *first;

	(void)state;
	/* SCRAM_MSG_MAX + 1 bytes and no NUL at all: refused after reading
	 * exactly that many. */
	assert_non_null(msg);
	memset(msg, 'a', SCRAM_MSG_MAX + 1);
	assert_int_equal(scram_server_first(&ss, msg, NULL, user, sizeof(user)),
			 -SCRAM_EMALFORMED);
	rfc_client_started(&sc);
	assert_int_equal(
		scram_client_final(&sc, RFC_PASSWORD, msg, out, sizeof(out)),
		-SCRAM_EMALFORMED);
	rfc_server_challenged(&ss);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    msg, out, sizeof(out)),
			 -SCRAM_EMALFORMED);
	free(msg);

	/* A valid message grown past the limit by an extension. */
	ext = malloc(SCRAM_MSG_MAX + 1);
	assert_non_null(ext);
	memset(ext, 'x', SCRAM_MSG_MAX);
	memcpy(ext, ",x=", 3);
	ext[SCRAM_MSG_MAX - strlen(RFC_CLIENT_FIRST)] = '\0';
	first = malloc(SCRAM_MSG_MAX + 2);
	assert_non_null(first);
	strcpy(first, RFC_CLIENT_FIRST);
	strcat(first, ext);
	assert_int_equal(strlen(first), SCRAM_MSG_MAX);
	assert_int_equal(
		scram_server_first(&ss, first, NULL, user, sizeof(user)), 4);
	strcat(first, "x");
	assert_int_equal(
		scram_server_first(&ss, first, NULL, user, sizeof(user)),
		-SCRAM_EMALFORMED);
	free(first);
	free(ext);
}

static void
test_scram_server_bounds_names_and_nonces(void **state)
{
	char msg[MSG_BYTES];
	char user[SCRAM_USER_MAX + 1];
	struct scram_server ss;
	size_t at;

	(void)state;
	/* a name of SCRAM_USER_MAX + 1 characters */
	strcpy(msg, "n,,n=");
	at = strlen(msg);
	memset(msg + at, 'u', SCRAM_USER_MAX + 1);
	strcpy(msg + at + SCRAM_USER_MAX + 1, ",r=abc");
	assert_int_equal(scram_server_first(&ss, msg, NULL, user, sizeof(user)),
			 -SCRAM_EMALFORMED);
	/* one less fits, but not in a smaller buffer */
	memmove(msg + at + SCRAM_USER_MAX, msg + at + SCRAM_USER_MAX + 1,
		strlen(msg + at + SCRAM_USER_MAX + 1) + 1);
	assert_int_equal(scram_server_first(&ss, msg, NULL, user, sizeof(user)),
			 SCRAM_USER_MAX);
	assert_int_equal(
		scram_server_first(&ss, msg, NULL, user, SCRAM_USER_MAX),
		-SCRAM_ESPACE);
	/* a client nonce of SCRAM_NONCE_MAX + 1 characters */
	strcpy(msg, "n,,n=u,r=");
	at = strlen(msg);
	memset(msg + at, 'r', SCRAM_NONCE_MAX + 1);
	msg[at + SCRAM_NONCE_MAX + 1] = '\0';
	assert_int_equal(scram_server_first(&ss, msg, NULL, user, sizeof(user)),
			 -SCRAM_EMALFORMED);
	msg[at + SCRAM_NONCE_MAX] = '\0';
	assert_int_equal(scram_server_first(&ss, msg, NULL, user, sizeof(user)),
			 1);
	/* bad escapes, empty parts, and what is not ASCII */
	static const char *const bad[] = {
		"n,,n=a=2c,r=abc",
		"n,,n=a=,r=abc",
		"n,,n=a=3,r=abc",
		"n,,n=,r=abc",
		"n,,n=a,r=",
		"n,,n=a,r=a b",
		"n,,n=a",
		"n,,r=abc,n=a",
		"n,,n=a,r=abc,",
		"n,,n=a,r=abc,1=x",
		"n,,n=\xc3\xa9,r=abc",
		"n,n=a,r=abc",
		"x,,n=a,r=abc",
		"n",
		"n,,",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(scram_server_first(&ss, bad[i], NULL, user,
						    sizeof(user)),
				 -SCRAM_EMALFORMED);
	}
}

static void
test_scram_own_nonces_are_checked(void **state)
{
	char nonce[SCRAM_NONCE_MAX + 2];
	struct scram_client sc;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];

	(void)state;
	memset(nonce, 'n', SCRAM_NONCE_MAX + 1);
	nonce[SCRAM_NONCE_MAX + 1] = '\0';
	assert_int_equal(scram_client_first(&sc, "u", nonce, out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, nonce, user,
					    sizeof(user)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_client_first(&sc, "u", "a,b", out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_client_first(&sc, "u", "a b", out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_client_first(&sc, "u", "", out, sizeof(out)),
			 -SCRAM_EINVAL);
	nonce[SCRAM_NONCE_MAX] = '\0';
	assert_int_equal(scram_client_first(&sc, "u", nonce, out, sizeof(out)),
			 strlen("n,,n=u,r=") + SCRAM_NONCE_MAX);
}

static void
test_scram_output_sizes_are_checked(void **state)
{
	struct scram_client sc;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];
	size_t len;

	(void)state;
	len = strlen(RFC_CLIENT_FIRST);
	assert_int_equal(
		scram_client_first(&sc, RFC_USER, RFC_CNONCE, out, len),
		-SCRAM_ESPACE);
	assert_int_equal(scram_client_first(&sc, RFC_USER, RFC_CNONCE, out, 0),
			 -SCRAM_ESPACE);
	assert_int_equal(
		scram_client_first(&sc, RFC_USER, RFC_CNONCE, out, len + 1),
		len);
	len = strlen(RFC_CLIENT_FINAL);
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST,
					    out, len),
			 -SCRAM_ESPACE);
	rfc_client_started(&sc);
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST,
					    out, len + 1),
			 len);
	assert_string_equal(out, RFC_CLIENT_FINAL);

	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, RFC_SNONCE,
					    user, sizeof(user)),
			 4);
	len = strlen(RFC_SERVER_FIRST);
	assert_int_equal(scram_server_challenge(&ss, rfc_salt, sizeof(rfc_salt),
						RFC_ITERATIONS, out, len),
			 -SCRAM_ESPACE);
	rfc_server_challenged(&ss);
	len = strlen(RFC_SERVER_FINAL);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, len),
			 -SCRAM_ESPACE);
	rfc_server_challenged(&ss);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, len + 1),
			 len);
	assert_string_equal(out, RFC_SERVER_FINAL);
}

static void
test_scram_calls_out_of_order_are_refused(void **state)
{
	struct scram_client sc;
	struct scram_server ss;
	char user[SCRAM_USER_MAX + 1];
	char out[MSG_BYTES];

	(void)state;
	memset(&sc, 0, sizeof(sc));
	memset(&ss, 0, sizeof(ss));
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST,
					    out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_client_verify(&sc, RFC_SERVER_FINAL),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_challenge(&ss, rfc_salt, sizeof(rfc_salt),
						RFC_ITERATIONS, out,
						sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, sizeof(out)),
			 -SCRAM_EINVAL);
	/* skipping the challenge */
	assert_int_equal(scram_server_first(&ss, RFC_CLIENT_FIRST, RFC_SNONCE,
					    user, sizeof(user)),
			 4);
	assert_int_equal(scram_server_final(&ss, rfc_stored_key, rfc_server_key,
					    RFC_CLIENT_FINAL, out, sizeof(out)),
			 -SCRAM_EINVAL);
	/* after a failure, the exchange is over */
	rfc_client_started(&sc);
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, "garbage", out,
					    sizeof(out)),
			 -SCRAM_EMALFORMED);
	assert_int_equal(scram_client_final(&sc, RFC_PASSWORD, RFC_SERVER_FIRST,
					    out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_client_first(NULL, "u", NULL, out, sizeof(out)),
			 -SCRAM_EINVAL);
	assert_int_equal(scram_server_first(NULL, RFC_CLIENT_FIRST, NULL, user,
					    sizeof(user)),
			 -SCRAM_EINVAL);
	scram_client_fini(NULL);
	scram_server_fini(NULL);
}

static void
test_scram_codes_are_distinct_and_described(void **state)
{
	(void)state;
	for (int e = SCRAM_EINVAL; e <= SCRAM_ECRYPTO; e++) {
		assert_string_not_equal(scram_strerror(-e), "unknown error");
		for (int f = SCRAM_EINVAL; f < e; f++)
			assert_string_not_equal(scram_strerror(-e),
						scram_strerror(-f));
	}
	assert_string_equal(scram_strerror(0), "unknown error");
	assert_string_equal(scram_strerror(-SCRAM_ECRYPTO - 1),
			    "unknown error");
	assert_string_equal(scram_strerror(SCRAM_EINVAL), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_scram_salted_keys_match_an_independent_computation),
		cmocka_unit_test(test_scram_client_speaks_the_rfc_7677_example),
		cmocka_unit_test(test_scram_server_speaks_the_rfc_7677_example),
		cmocka_unit_test(
			test_scram_both_sides_agree_with_random_nonces),
		cmocka_unit_test(
			test_scram_random_nonces_differ_and_are_printable),
		cmocka_unit_test(
			test_scram_names_with_comma_and_equals_round_trip),
		cmocka_unit_test(test_scram_longest_name_fits_escaped),
		cmocka_unit_test(test_scram_refuses_bad_names_and_passwords),
		cmocka_unit_test(test_scram_password_length_is_bounded),
		cmocka_unit_test(test_scram_wrong_password_is_a_wrong_proof),
		cmocka_unit_test(test_scram_server_refuses_a_tampered_nonce),
		cmocka_unit_test(
			test_scram_client_refuses_a_nonce_not_extending_its_own),
		cmocka_unit_test(
			test_scram_server_refuses_a_replayed_client_final),
		cmocka_unit_test(test_scram_server_refuses_channel_binding),
		cmocka_unit_test(
			test_scram_server_refuses_authzid_and_mandatory_extensions),
		cmocka_unit_test(
			test_scram_proof_comes_last_and_covers_extensions),
		cmocka_unit_test(test_scram_client_checks_the_iteration_count),
		cmocka_unit_test(
			test_scram_iteration_count_and_salt_are_bounded_for_the_server),
		cmocka_unit_test(test_scram_base64_must_be_canonical),
		cmocka_unit_test(test_scram_client_checks_the_server_signature),
		cmocka_unit_test(test_scram_server_error_text_is_kept_short),
		cmocka_unit_test(test_scram_refuses_every_proper_prefix),
		cmocka_unit_test(test_scram_refuses_garbage),
		cmocka_unit_test(
			test_scram_refuses_over_long_messages_reading_no_further),
		cmocka_unit_test(test_scram_server_bounds_names_and_nonces),
		cmocka_unit_test(test_scram_own_nonces_are_checked),
		cmocka_unit_test(test_scram_output_sizes_are_checked),
		cmocka_unit_test(test_scram_calls_out_of_order_are_refused),
		cmocka_unit_test(test_scram_codes_are_distinct_and_described),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
