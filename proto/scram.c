/*
 * scram.c: SCRAM-SHA-256 (RFC 5802, RFC 7677) for both ends; see scram.h
 * for what is refused and why.
 *
 * Every message from the wire is first bounded (SCRAM_MSG_MAX) and checked
 * to be printable ASCII, then parsed through a cursor that never passes
 * its end; nothing is allocated. Secrets derived on the way (the salted
 * password, ClientKey, StoredKey and the signatures built from them) live
 * in stack buffers that are cleansed before every return.
 */
#include "scram.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/* Base64 length of n bytes (with padding, without the NUL). */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)

/* Random bytes in a nonce we make: 192 bits, 32 base64 characters. */
#define NONCE_RANDOM_BYTES 24

/* The AuthMessage: client-first-bare "," server-first "," client-final
 * without its proof, each at most SCRAM_MSG_MAX. */
#define AUTH_MAX (3 * SCRAM_MSG_MAX + 2)

/* ------------------------------------------------------------ error texts */

static const char *const err_texts[] = {
	[SCRAM_EINVAL - SCRAM_EINVAL] =
		"scram: bad argument or call out of order",
	[SCRAM_ESPACE - SCRAM_EINVAL] = "scram: output buffer too small",
	[SCRAM_EMALFORMED - SCRAM_EINVAL] = "scram: malformed message",
	[SCRAM_EBINDING - SCRAM_EINVAL] =
		"scram: channel binding not supported",
	[SCRAM_EUNSUPPORTED - SCRAM_EINVAL] =
		"scram: authzid or mandatory extension not supported",
	[SCRAM_ENONCE - SCRAM_EINVAL] = "scram: nonce mismatch",
	[SCRAM_EITERATIONS - SCRAM_EINVAL] =
		"scram: iteration count out of range",
	[SCRAM_EPROOF - SCRAM_EINVAL] = "scram: wrong client proof",
	[SCRAM_ESIGNATURE - SCRAM_EINVAL] = "scram: wrong server signature",
	[SCRAM_ESERVER - SCRAM_EINVAL] = "scram: the server refused",
	[SCRAM_ECRYPTO - SCRAM_EINVAL] = "scram: libcrypto failed",
};

const char *
scram_strerror(int rc)
{
	if (rc <= -SCRAM_EINVAL && rc >= -SCRAM_ECRYPTO)
		return err_texts[-rc - SCRAM_EINVAL];
	return "unknown error";
}

/* ------------------------------------------------------------ characters */

/* Names and passwords: printable ASCII, space included. */
static int
is_text(char ch)
{
	return ch >= 0x20 && ch <= 0x7e;
}

/* RFC 5802 "printable": what a nonce is made of. */
static int
is_nonce_char(char ch)
{
	return ch >= 0x21 && ch <= 0x7e && ch != ',';
}

static int
is_b64_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

static int
is_alpha(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* The length of s if it is 1 to max characters that all pass ok, else 0;
 * reads at most max + 1 bytes. */
static size_t
text_len(const char *s, size_t max, int (*ok)(char))
{
	size_t len;

	if (s == NULL)
		return 0;
	len = strnlen(s, max + 1);
	if (len == 0 || len > max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!ok(s[i]))
			return 0;
	}
	return len;
}

int
scram_user_ok(const char *user)
{
	return text_len(user, SCRAM_USER_MAX, is_text) != 0;
}

/* ------------------------------------------------------------ output */

/* Appends to a NUL-terminated buffer; once something does not fit, is_full
 * stays set and nothing more is written. */
struct out {
	char *p; /* borrowed from the caller */
	size_t size;
	size_t len;
	int is_full;
};

static void
out_init(struct out *o, char *p, size_t size)
{
	o->p = p;
	o->size = size;
	o->len = 0;
	o->is_full = size == 0;
	if (size > 0)
		p[0] = '\0';
}

static void
out_put(struct out *o, const char *s, size_t n)
{
	if (o->is_full || n >= o->size - o->len) {
		o->is_full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void
out_b64(struct out *o, const uint8_t *bytes, size_t n)
{
	char text[B64_LEN(SCRAM_SALT_MAX) + 1];

	/* Only salts and keys come here, at most SCRAM_SALT_MAX bytes. */
	if (n > SCRAM_SALT_MAX) {
		o->is_full = 1;
		return;
	}
	out_put(o, text,
		(size_t)EVP_EncodeBlock((unsigned char *)text, bytes, (int)n));
}

/* ------------------------------------------------------------ base64 */

/*
 * Decodes canonical base64 s[0..len) (padded, no whitespace, unused bits
 * zero) into out[0..out_max). EVP_DecodeBlock alone would skip whitespace
 * and count padding as zero bytes, so the alphabet is checked first, the
 * padding subtracted, and the result encoded again to compare.
 * @return the decoded length, or -1.
 */
static int
b64_decode(const char *s, size_t len, uint8_t *out, size_t out_max)
{
	unsigned char bytes[B64_LEN(SCRAM_SALT_MAX) / 4 * 3];
	char again[B64_LEN(SCRAM_SALT_MAX) + 1];
	size_t pad = 0;
	size_t n;

	if (len == 0 || len % 4 != 0 || len > B64_LEN(SCRAM_SALT_MAX))
		return -1;
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++) {
		if (!is_b64_char(s[i]))
			return -1;
	}
	n = len / 4 * 3 - pad;
	if (n > out_max || EVP_DecodeBlock(bytes, (const unsigned char *)s,
					   (int)len) != (int)(len / 4 * 3))
		return -1;
	if (EVP_EncodeBlock((unsigned char *)again, bytes, (int)n) !=
		    (int)len ||
	    memcmp(again, s, len) != 0)
		return -1;
	memcpy(out, bytes, n);
	return (int)n;
}

/* ------------------------------------------------------------ parsing */

/* A position in a message of the wire; p never passes end. */
struct cur {
	const char *p;	 /* borrowed: the message */
	const char *end; /* borrowed: its end */
};

/* The length of a message from the wire if it is 1 to SCRAM_MSG_MAX
 * printable ASCII characters, else 0. */
static size_t
msg_len(const char *msg)
{
	return text_len(msg, SCRAM_MSG_MAX, is_text);
}

static int
cur_at(const struct cur *c, char name)
{
	return c->end - c->p >= 2 && c->p[0] == name && c->p[1] == '=';
}

/* Reads the attribute name=value, the value running to the next "," or
 * the end and not empty; leaves c on that "," or end. 0 or -1. */
static int
cur_attr(struct cur *c, char name, const char **v, size_t *vlen)
{
	const char *s;
	const char *e;

	if (!cur_at(c, name))
		return -1;
	s = c->p + 2;
	e = memchr(s, ',', (size_t)(c->end - s));
	if (e == NULL)
		e = c->end;
	if (e == s)
		return -1;
	*v = s;
	*vlen = (size_t)(e - s);
	c->p = e;
	return 0;
}

/* Skips the "," between attributes. 0 or -1. */
static int
cur_comma(struct cur *c)
{
	if (c->p == c->end || *c->p != ',')
		return -1;
	c->p++;
	return 0;
}

/* Reads one extension "X=value" (any letter but m), to be ignored. */
static int
cur_extension(struct cur *c)
{
	const char *v;
	size_t vlen;

	if (c->p == c->end || !is_alpha(*c->p) || *c->p == 'm')
		return -1;
	return cur_attr(c, *c->p, &v, &vlen);
}

/* Reads ("," extension)* to the end of the message. 0 or -1. */
static int
cur_extensions_to_end(struct cur *c)
{
	while (c->p != c->end) {
		if (cur_comma(c) < 0 || cur_extension(c) < 0)
			return -1;
	}
	return 0;
}

/* Reads a nonce attribute "r=..." of 1 to max characters. 0 or -1. */
static int
cur_nonce(struct cur *c, size_t max, const char **v, size_t *vlen)
{
	if (cur_attr(c, 'r', v, vlen) < 0 || *vlen > max)
		return -1;
	for (size_t i = 0; i < *vlen; i++) {
		if (!is_nonce_char((*v)[i]))
			return -1;
	}
	return 0;
}

/* Parses an iteration count: decimal digits, no leading zero.
 * @return 0, -SCRAM_EMALFORMED or -SCRAM_EITERATIONS. */
static int
parse_iterations(const char *v, size_t vlen, uint32_t *iterations)
{
	uint32_t n = 0;

	if (v[0] == '0')
		return -SCRAM_EMALFORMED;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -SCRAM_EMALFORMED;
	}
	/* 10,000,000 has 8 digits; more cannot be in range (nor fit). */
	if (vlen > 8)
		return -SCRAM_EITERATIONS;
	for (size_t i = 0; i < vlen; i++)
		n = n * 10 + (uint32_t)(v[i] - '0');
	if (n < SCRAM_ITER_MIN || n > SCRAM_ITER_MAX)
		return -SCRAM_EITERATIONS;
	*iterations = n;
	return 0;
}

/* ------------------------------------------------------------ crypto */

/* HMAC-SHA-256 with a key of SCRAM_KEY_LEN bytes. 0 or -SCRAM_ECRYPTO. */
static int
hmac(const uint8_t *key, const void *data, size_t len,
     uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, data, len, out, &n) ==
		    NULL ||
	    n != SCRAM_KEY_LEN)
		return -SCRAM_ECRYPTO;
	return 0;
}

/*
 * From a checked password: ClientKey, StoredKey and ServerKey (RFC 5802,
 * section 3). The salted password never leaves this function; on failure
 * the outputs may hold partial results, which the caller cleanses too.
 * @return 0 or -SCRAM_ECRYPTO.
 */
static int
derive_keys(const char *password, size_t password_len, const uint8_t *salt,
	    size_t salt_len, uint32_t iterations,
	    uint8_t client_key[SCRAM_KEY_LEN],
	    uint8_t stored_key[SCRAM_KEY_LEN],
	    uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	int rc = -SCRAM_ECRYPTO;

	/* The bounds of the callers keep every length within int. */
	if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len,
			      (int)iterations, EVP_sha256(), SCRAM_KEY_LEN,
			      salted) != 1)
		goto out;
	if (hmac(salted, "Client Key", 10, client_key) < 0 ||
	    hmac(salted, "Server Key", 10, server_key) < 0)
		goto out;
	if (SHA256(client_key, SCRAM_KEY_LEN, stored_key) == NULL)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

/* Writes a fresh random nonce and its NUL into text. 0 or -SCRAM_ECRYPTO. */
static int
random_nonce(char text[B64_LEN(NONCE_RANDOM_BYTES) + 1])
{
	uint8_t bytes[NONCE_RANDOM_BYTES];

	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return -SCRAM_ECRYPTO;
	/* 24 bytes: no padding, and base64 has no ",": a valid nonce. */
	(void)EVP_EncodeBlock((unsigned char *)text, bytes, sizeof(bytes));
	return 0;
}

/* Our nonce part: the caller's (checked), or a random one in text. */
static int
own_nonce(const char *nonce, char text[B64_LEN(NONCE_RANDOM_BYTES) + 1],
	  const char **v, size_t *vlen)
{
	int rc;

	if (nonce == NULL) {
		rc = random_nonce(text);
		if (rc < 0)
			return rc;
		nonce = text;
	}
	*vlen = text_len(nonce, SCRAM_NONCE_MAX, is_nonce_char);
	if (*vlen == 0)
		return -SCRAM_EINVAL;
	*v = nonce;
	return 0;
}

/* The AuthMessage into auth (AUTH_MAX + 1 bytes); its length. */
static size_t
auth_message(char *auth, const char *bare, size_t bare_len,
	     const char *server_first, size_t first_len,
	     const char *final_no_proof, size_t final_len)
{
	struct out o;

	out_init(&o, auth, AUTH_MAX + 1);
	out_put(&o, bare, bare_len);
	out_put(&o, ",", 1);
	out_put(&o, server_first, first_len);
	out_put(&o, ",", 1);
	out_put(&o, final_no_proof, final_len);
	/* Each part is bounded by SCRAM_MSG_MAX: it always fits. */
	return o.len;
}

/* Starts a step that needs the exchange at want; until the step
 * succeeds, the exchange counts as failed. 0 or -SCRAM_EINVAL. */
static int
step_begin(enum scram_state *state, enum scram_state want)
{
	int is_ready = *state == want;

	*state = SCRAM_ST_FAILED;
	return is_ready ? 0 : -SCRAM_EINVAL;
}

int
scram_salted_keys(const char *password, const uint8_t *salt, size_t salt_len,
		  uint32_t iterations, uint8_t stored_key[SCRAM_KEY_LEN],
		  uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN];
	uint8_t server[SCRAM_KEY_LEN];
	size_t password_len = text_len(password, SCRAM_PASSWORD_MAX, is_text);
	int rc;

	if (password_len == 0 || salt == NULL || salt_len == 0 ||
	    salt_len > SCRAM_SALT_MAX || iterations < SCRAM_ITER_MIN ||
	    iterations > SCRAM_ITER_MAX || stored_key == NULL ||
	    server_key == NULL)
		return -SCRAM_EINVAL;
	rc = derive_keys(password, password_len, salt, salt_len, iterations,
			 client_key, stored, server);
	if (rc == 0) {
		memcpy(stored_key, stored, SCRAM_KEY_LEN);
		memcpy(server_key, server, SCRAM_KEY_LEN);
	}
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server, sizeof(server));
	return rc;
}

/* ------------------------------------------------------------ client */

int
scram_client_first(struct scram_client *sc, const char *user, const char *nonce,
		   char *out, size_t size)
{
	char rnd_text[B64_LEN(NONCE_RANDOM_BYTES) + 1];
	size_t user_len = text_len(user, SCRAM_USER_MAX, is_text);
	const char *cnonce;
	size_t cnonce_len;
	struct out o;
	int rc;

	if (sc == NULL)
		return -SCRAM_EINVAL;
	memset(sc, 0, sizeof(*sc));
	sc->state = SCRAM_ST_FAILED;
	if (user_len == 0 || out == NULL)
		return -SCRAM_EINVAL;
	rc = own_nonce(nonce, rnd_text, &cnonce, &cnonce_len);
	if (rc < 0)
		return rc;

	/* client-first-message-bare: "n=" saslname ",r=" nonce */
	out_init(&o, sc->bare, sizeof(sc->bare));
	out_str(&o, "n=");
	for (size_t i = 0; i < user_len; i++) {
		if (user[i] == ',')
			out_str(&o, "=2C");
		else if (user[i] == '=')
			out_str(&o, "=3D");
		else
			out_put(&o, &user[i], 1);
	}
	out_str(&o, ",r=");
	out_put(&o, cnonce, cnonce_len);
	/* 837 bytes at most (scram.h): it always fits. */
	if (o.is_full)
		return -SCRAM_EINVAL;
	sc->bare_len = o.len;
	sc->nonce_len = cnonce_len;

	out_init(&o, out, size);
	out_str(&o, "n,,");
	out_put(&o, sc->bare, sc->bare_len);
	if (o.is_full)
		return -SCRAM_ESPACE;
	sc->state = SCRAM_ST_FIRST;
	return (int)o.len;
}

/* The parts of a server-first message the client uses. */
struct server_first {
	const char *nonce; /* borrowed: the message */
	size_t nonce_len;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint32_t iterations;
};

/* Parses "r=NONCE,s=SALT,i=ITERATIONS[,extensions]" of len bytes and
 * checks its nonce against ours. 0 or a -SCRAM_E*. */
static int
parse_server_first(const struct scram_client *sc, const char *msg, size_t len,
		   struct server_first *sf)
{
	struct cur c = { msg, msg + len };
	const char *v;
	size_t vlen;
	int n;
	int rc;

	if (cur_at(&c, 'm'))
		return -SCRAM_EUNSUPPORTED;
	if (cur_nonce(&c, 2 * SCRAM_NONCE_MAX, &sf->nonce, &sf->nonce_len) <
		    0 ||
	    cur_comma(&c) < 0 || cur_attr(&c, 's', &v, &vlen) < 0)
		return -SCRAM_EMALFORMED;
	n = b64_decode(v, vlen, sf->salt, sizeof(sf->salt));
	if (n <= 0 || cur_comma(&c) < 0 || cur_attr(&c, 'i', &v, &vlen) < 0)
		return -SCRAM_EMALFORMED;
	sf->salt_len = (size_t)n;
	rc = parse_iterations(v, vlen, &sf->iterations);
	if (rc == -SCRAM_EMALFORMED || cur_extensions_to_end(&c) < 0)
		return -SCRAM_EMALFORMED;
	/* The server's nonce is ours followed by at least one of its own. */
	if (sf->nonce_len <= sc->nonce_len ||
	    memcmp(sf->nonce, sc->bare + sc->bare_len - sc->nonce_len,
		   sc->nonce_len) != 0)
		return -SCRAM_ENONCE;
	return rc;
}

int
scram_client_final(struct scram_client *sc, const char *password,
		   const char *server_first, char *out, size_t size)
{
	char auth[AUTH_MAX + 1];
	struct server_first sf;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t signature[SCRAM_KEY_LEN];
	uint8_t proof[SCRAM_KEY_LEN];
	size_t password_len = text_len(password, SCRAM_PASSWORD_MAX, is_text);
	size_t first_len = msg_len(server_first);
	size_t auth_len;
	size_t without_proof;
	struct out o;
	int rc;

	if (sc == NULL || step_begin(&sc->state, SCRAM_ST_FIRST) < 0)
		return -SCRAM_EINVAL;
	if (password_len == 0 || out == NULL)
		return -SCRAM_EINVAL;
	if (first_len == 0)
		return -SCRAM_EMALFORMED;
	rc = parse_server_first(sc, server_first, first_len, &sf);
	if (rc < 0)
		return rc;

	/* client-final-message-without-proof, then room for the proof
	 * checked before the iterations' time is spent. */
	out_init(&o, out, size);
	out_str(&o, "c=biws,r=");
	out_put(&o, sf.nonce, sf.nonce_len);
	without_proof = o.len;
	if (o.is_full || size - o.len <= 3 + B64_LEN(SCRAM_KEY_LEN))
		return -SCRAM_ESPACE;

	rc = derive_keys(password, password_len, sf.salt, sf.salt_len,
			 sf.iterations, client_key, stored_key, server_key);
	if (rc < 0)
		goto out;
	auth_len = auth_message(auth, sc->bare, sc->bare_len, server_first,
				first_len, out, without_proof);
	/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage) */
	rc = hmac(stored_key, auth, auth_len, signature);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ signature[i];
	rc = hmac(server_key, auth, auth_len, sc->server_signature);
	if (rc < 0)
		goto out;
	out_str(&o, ",p=");
	out_b64(&o, proof, sizeof(proof));
	sc->state = SCRAM_ST_FINAL;
	rc = (int)o.len;
out:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(signature, sizeof(signature));
	OPENSSL_cleanse(proof, sizeof(proof));
	return rc;
}

/* Keeps the printable start of an "e=" value for the caller to show. */
static void
keep_server_error(struct scram_client *sc, const char *v, size_t vlen)
{
	if (vlen > SCRAM_SERVER_ERR_MAX)
		vlen = SCRAM_SERVER_ERR_MAX;
	memcpy(sc->server_error, v, vlen);
	sc->server_error[vlen] = '\0';
}

int
scram_client_verify(struct scram_client *sc, const char *server_final)
{
	uint8_t signature[SCRAM_KEY_LEN];
	size_t len = msg_len(server_final);
	struct cur c = { server_final, server_final + len };
	const char *v;
	size_t vlen;

	if (sc == NULL || step_begin(&sc->state, SCRAM_ST_FINAL) < 0)
		return -SCRAM_EINVAL;
	if (len == 0)
		return -SCRAM_EMALFORMED;
	if (cur_attr(&c, 'e', &v, &vlen) == 0) {
		keep_server_error(sc, v, vlen);
		return -SCRAM_ESERVER;
	}
	if (cur_attr(&c, 'v', &v, &vlen) < 0 ||
	    b64_decode(v, vlen, signature, sizeof(signature)) !=
		    SCRAM_KEY_LEN ||
	    cur_extensions_to_end(&c) < 0)
		return -SCRAM_EMALFORMED;
	if (CRYPTO_memcmp(signature, sc->server_signature, SCRAM_KEY_LEN) != 0)
		return -SCRAM_ESIGNATURE;
	sc->state = SCRAM_ST_DONE;
	return 0;
}

void
scram_client_fini(struct scram_client *sc)
{
	if (sc != NULL)
		OPENSSL_cleanse(sc, sizeof(*sc));
}

/* ------------------------------------------------------------ server */

/* Unescapes a saslname ("=2C" is ",", "=3D" is "=") into name (room for
 * SCRAM_USER_MAX and a NUL). Its length, or 0 if malformed or too long. */
static size_t
unescape_user(const char *v, size_t vlen, char *name)
{
	size_t len = 0;

	for (size_t i = 0; i < vlen; i++) {
		char ch = v[i];

		if (ch == '=') {
			if (vlen - i < 3)
				return 0;
			if (v[i + 1] == '2' && v[i + 2] == 'C')
				ch = ',';
			else if (v[i + 1] == '3' && v[i + 2] == 'D')
				ch = '=';
			else
				return 0;
			i += 2;
		}
		if (len == SCRAM_USER_MAX)
			return 0;
		name[len++] = ch;
	}
	name[len] = '\0';
	return len;
}

/* Parses the gs2 header: "n,," only, not "y," (the client could bind)
 * nor "p=NAME," (it does). Leaves c on the bare message. */
static int
parse_gs2_header(struct cur *c)
{
	if (c->end - c->p < 2)
		return -SCRAM_EMALFORMED;
	if ((c->p[0] == 'y' && c->p[1] == ',') ||
	    (c->p[0] == 'p' && c->p[1] == '='))
		return -SCRAM_EBINDING;
	if (c->p[0] != 'n' || c->p[1] != ',')
		return -SCRAM_EMALFORMED;
	c->p += 2;
	if (cur_at(c, 'a'))
		return -SCRAM_EUNSUPPORTED;
	if (cur_comma(c) < 0)
		return -SCRAM_EMALFORMED;
	return 0;
}

int
scram_server_first(struct scram_server *ss, const char *client_first,
		   const char *nonce, char *user_out, size_t user_size)
{
	char rnd_text[B64_LEN(NONCE_RANDOM_BYTES) + 1];
	char user[SCRAM_USER_MAX + 1];
	size_t len = msg_len(client_first);
	struct cur c = { client_first, client_first + len };
	const char *v;
	size_t vlen;
	const char *cnonce;
	size_t cnonce_len;
	const char *snonce;
	size_t snonce_len;
	size_t user_len;
	int rc;

	if (ss == NULL)
		return -SCRAM_EINVAL;
	memset(ss, 0, sizeof(*ss));
	ss->state = SCRAM_ST_FAILED;
	if (user_out == NULL)
		return -SCRAM_EINVAL;
	if (len == 0)
		return -SCRAM_EMALFORMED;
	rc = parse_gs2_header(&c);
	if (rc < 0)
		return rc;
	/* client-first-message-bare, kept whole for the AuthMessage */
	memcpy(ss->bare, c.p, (size_t)(c.end - c.p));
	ss->bare_len = (size_t)(c.end - c.p);
	ss->bare[ss->bare_len] = '\0';
	if (cur_at(&c, 'm'))
		return -SCRAM_EUNSUPPORTED;
	if (cur_attr(&c, 'n', &v, &vlen) < 0)
		return -SCRAM_EMALFORMED;
	user_len = unescape_user(v, vlen, user);
	if (user_len == 0 || cur_comma(&c) < 0 ||
	    cur_nonce(&c, SCRAM_NONCE_MAX, &cnonce, &cnonce_len) < 0 ||
	    cur_extensions_to_end(&c) < 0)
		return -SCRAM_EMALFORMED;

	rc = own_nonce(nonce, rnd_text, &snonce, &snonce_len);
	if (rc < 0)
		return rc;
	if (user_len >= user_size)
		return -SCRAM_ESPACE;
	memcpy(ss->nonce, cnonce, cnonce_len);
	memcpy(ss->nonce + cnonce_len, snonce, snonce_len);
	ss->nonce_len = cnonce_len + snonce_len;
	ss->nonce[ss->nonce_len] = '\0';
	memcpy(user_out, user, user_len + 1);
	ss->state = SCRAM_ST_FIRST;
	return (int)user_len;
}

int
scram_server_challenge(struct scram_server *ss, const uint8_t *salt,
		       size_t salt_len, uint32_t iterations, char *out,
		       size_t size)
{
	char digits[16];
	size_t ndigits = 0;
	struct out o;

	if (ss == NULL || step_begin(&ss->state, SCRAM_ST_FIRST) < 0)
		return -SCRAM_EINVAL;
	if (salt == NULL || salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
	    iterations < SCRAM_ITER_MIN || iterations > SCRAM_ITER_MAX ||
	    out == NULL)
		return -SCRAM_EINVAL;
	/* digits of iterations, last first */
	for (uint32_t n = iterations; n > 0; n /= 10)
		digits[sizeof(digits) - 1 - ndigits++] = (char)('0' + n % 10);

	out_init(&o, ss->first, sizeof(ss->first));
	out_str(&o, "r=");
	out_put(&o, ss->nonce, ss->nonce_len);
	out_str(&o, ",s=");
	out_b64(&o, salt, salt_len);
	out_str(&o, ",i=");
	out_put(&o, digits + sizeof(digits) - ndigits, ndigits);
	/* 232 bytes at most: it always fits. */
	if (o.is_full)
		return -SCRAM_EINVAL;
	ss->first_len = o.len;

	out_init(&o, out, size);
	out_put(&o, ss->first, ss->first_len);
	if (o.is_full)
		return -SCRAM_ESPACE;
	ss->state = SCRAM_ST_CHALLENGE;
	return (int)o.len;
}

/* The parts of a client-final message the server uses. */
struct client_final {
	size_t without_proof; /* length of the message before ",p=" */
	uint8_t proof[SCRAM_KEY_LEN];
};

/* Parses "c=biws,r=NONCE[,extensions],p=PROOF" of len bytes and checks
 * its nonce is this exchange's. 0 or a -SCRAM_E*. */
static int
parse_client_final(const struct scram_server *ss, const char *msg, size_t len,
		   struct client_final *cf)
{
	struct cur c = { msg, msg + len };
	const char *v;
	size_t vlen;

	if (cur_attr(&c, 'c', &v, &vlen) < 0)
		return -SCRAM_EMALFORMED;
	/* base64 of the gs2 header "n,,": no channel binding. */
	if (vlen != 4 || memcmp(v, "biws", 4) != 0)
		return -SCRAM_EBINDING;
	if (cur_comma(&c) < 0 ||
	    cur_nonce(&c, 2 * SCRAM_NONCE_MAX, &v, &vlen) < 0)
		return -SCRAM_EMALFORMED;
	if (vlen != ss->nonce_len || memcmp(v, ss->nonce, vlen) != 0)
		return -SCRAM_ENONCE;
	for (;;) {
		cf->without_proof = (size_t)(c.p - msg);
		if (cur_comma(&c) < 0)
			return -SCRAM_EMALFORMED;
		if (cur_at(&c, 'p'))
			break;
		if (cur_extension(&c) < 0)
			return -SCRAM_EMALFORMED;
	}
	if (cur_attr(&c, 'p', &v, &vlen) < 0 || c.p != c.end ||
	    b64_decode(v, vlen, cf->proof, sizeof(cf->proof)) != SCRAM_KEY_LEN)
		return -SCRAM_EMALFORMED;
	return 0;
}

int
scram_server_final(struct scram_server *ss,
		   const uint8_t stored_key[SCRAM_KEY_LEN],
		   const uint8_t server_key[SCRAM_KEY_LEN],
		   const char *client_final, char *out, size_t size)
{
	char auth[AUTH_MAX + 1];
	struct client_final cf;
	uint8_t signature[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN];
	size_t len = msg_len(client_final);
	size_t auth_len;
	struct out o;
	int rc;

	if (ss == NULL || step_begin(&ss->state, SCRAM_ST_CHALLENGE) < 0)
		return -SCRAM_EINVAL;
	if (stored_key == NULL || server_key == NULL || out == NULL)
		return -SCRAM_EINVAL;
	if (size <= 2 + B64_LEN(SCRAM_KEY_LEN))
		return -SCRAM_ESPACE;
	if (len == 0)
		return -SCRAM_EMALFORMED;
	rc = parse_client_final(ss, client_final, len, &cf);
	if (rc < 0)
		return rc;

	auth_len = auth_message(auth, ss->bare, ss->bare_len, ss->first,
				ss->first_len, client_final, cf.without_proof);
	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the
	 * proof holds if H(ClientKey) is StoredKey. */
	rc = hmac(stored_key, auth, auth_len, signature);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = cf.proof[i] ^ signature[i];
	if (SHA256(client_key, SCRAM_KEY_LEN, stored) == NULL) {
		rc = -SCRAM_ECRYPTO;
		goto out;
	}
	if (CRYPTO_memcmp(stored, stored_key, SCRAM_KEY_LEN) != 0) {
		rc = -SCRAM_EPROOF;
		goto out;
	}
	rc = hmac(server_key, auth, auth_len, signature);
	if (rc < 0)
		goto out;
	out_init(&o, out, size);
	out_str(&o, "v=");
	out_b64(&o, signature, sizeof(signature));
	ss->state = SCRAM_ST_DONE;
	rc = (int)o.len;
out:
	OPENSSL_cleanse(signature, sizeof(signature));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored, sizeof(stored));
	return rc;
}

void
scram_server_fini(struct scram_server *ss)
{
	if (ss != NULL)
		OPENSSL_cleanse(ss, sizeof(*ss));
}

int
scram_random(void *buf, size_t len)
{
	if (len > INT_MAX || RAND_bytes(buf, (int)len) != 1)
		return -SCRAM_ECRYPTO;
	return 0;
}

int
scram_fake_salt(const uint8_t secret[SCRAM_KEY_LEN], const char *user,
		uint8_t *salt, size_t salt_len)
{
	uint8_t mac[SCRAM_KEY_LEN];
	int rc;

	if (user == NULL || salt_len == 0 || salt_len > SCRAM_KEY_LEN)
		return -SCRAM_EINVAL;
	rc = hmac(secret, user, strlen(user), mac);
	if (rc == 0)
		memcpy(salt, mac, salt_len);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}
