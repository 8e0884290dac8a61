/*
 * client.c: connection options, connect with hello, and the client
 * handle's lifecycle and accessors.
 *
 * Owns the ringmq_client object; the socket's framing and dispatch are
 * conn.c's. Connect walks the server list in order and keeps the first
 * address whose broker completes hello.
 */
#define _GNU_SOURCE
#include "internal.h"

#include "scram.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LIB_VERSION "0.1.0"

const char *
ringmq_version(void)
{
	return LIB_VERSION;
}

/* ------------------------------------------------------------------ helpers */

int
client_has_callbacks(const struct ringmq_client *c)
{
	return c->producer.done_head != NULL || c->subs.cbq_head != NULL ||
	       c->acks.done != NULL;
}

void
client_take_callbacks(struct ringmq_client *c, struct cb_work *w)
{
	w->pubs = c->producer.done_head;
	c->producer.done_head = NULL;
	c->producer.done_tail = NULL;
	w->dels = c->subs.cbq_head;
	c->subs.cbq_head = NULL;
	c->subs.cbq_tail = NULL;
	w->acks = c->acks.done;
	c->acks.done = NULL;
	c->acks.done_tail = NULL;
}

int
client_run_callbacks(struct ringmq_client *c, struct cb_work *w)
{
	int n = producer_run_done(c, w->pubs);

	n += subs_run_callbacks(c, w->dels);
	n += acks_run_done(c, w->acks);
	w->pubs = NULL;
	w->dels = NULL;
	w->acks = NULL;
	return n;
}

int
parse_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull accepts signs and spaces; a number here is digits only */
	if (value == NULL || value[0] < '0' || value[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ----------------------------------------------------------------- options */

/*
 * Splits one "HOST:PORT" or "[V6]:PORT" entry of length len.
 * @return 0, or -1 with a reason in errbuf.
 */
static int
parse_hostport(const char *s, size_t len, char *host, size_t hostlen,
	       char *port, size_t portlen, char *errbuf, size_t errlen)
{
	const char *colon;
	size_t entry_len = len;
	size_t hlen;
	uint64_t portnum;

	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL || close + 1 >= s + len || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - s - 1);
		colon = close + 1;
		if (hlen == 0 || hlen >= hostlen)
			goto bad;
		memcpy(host, s + 1, hlen);
	} else {
		colon = NULL;
		for (size_t i = 0; i < len; i++) {
			if (s[i] == ':') {
				if (colon != NULL)
					goto bad; /* IPv6 needs brackets */
				colon = s + i;
			}
		}
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= hostlen)
			goto bad;
		memcpy(host, s, hlen);
	}
	host[hlen] = '\0';
	len -= (size_t)(colon + 1 - s);
	if (len == 0 || len >= portlen)
		goto bad;
	memcpy(port, colon + 1, len);
	port[len] = '\0';
	if (parse_u64(port, 1, 65535, &portnum) < 0)
		goto bad;
	return 0;
bad:
	errbuf_set(errbuf, errlen,
		   "bad server address '%.*s' (want HOST:PORT or [V6]:PORT)",
		   (int)(entry_len > 200 ? 200 : entry_len), s);
	return -1;
}

/* Checks a whole comma-separated server list. */
static int
check_server_list(const char *list, char *errbuf, size_t errlen)
{
	char host[256];
	char port[8];
	const char *p = list;

	if (list[0] == '\0') {
		errbuf_set(errbuf, errlen, "empty server list");
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (parse_hostport(p, len, host, sizeof(host), port,
				   sizeof(port), errbuf, errlen) < 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

ringmq_opts *
ringmq_opts_new(void)
{
	ringmq_opts *opts = calloc(1, sizeof(*opts));

	if (opts == NULL)
		return NULL;
	opts->server = strdup(DEFAULT_SERVER);
	if (opts->server == NULL) {
		free(opts);
		return NULL;
	}
	opts->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	opts->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
	opts->is_reconnect = 1;
	opts->reconnect_backoff_ms = DEFAULT_RECONNECT_BACKOFF_MS;
	opts->reconnect_backoff_max_ms = DEFAULT_RECONNECT_BACKOFF_MAX_MS;
	opts->ping_interval_ms = DEFAULT_PING_INTERVAL_MS;
	opts->linger_ms = DEFAULT_LINGER_MS;
	opts->batch_max_messages = DEFAULT_BATCH_MAX_MESSAGES;
	opts->max_outstanding_bytes = DEFAULT_MAX_OUTSTANDING_BYTES;
	opts->is_block_when_full = 1;
	opts->nack_backoff_ms = DEFAULT_NACK_BACKOFF_MS;
	opts->nack_backoff_max_ms = DEFAULT_NACK_BACKOFF_MAX_MS;
	opts->is_tls_verify = 1;
	return opts;
}

/* Frees a secret, zeroed first. */
static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Frees the strings of o (not o). */
static void
opts_fini(struct ringmq_opts *o)
{
	free(o->server);
	free(o->client_name);
	free(o->user);
	wipe_free(o->password);
	free(o->tls_ca);
	free(o->tls_cert);
	free(o->tls_key);
	free(o->tls_server_name);
}

void
ringmq_opts_free(ringmq_opts *opts)
{
	if (opts == NULL)
		return;
	opts_fini(opts);
	free(opts);
}

/* Reads the password of a file: its first line, without the line end.
 * @return a new string, or NULL with a reason in errbuf. */
static char *
read_password_file(const char *path, char *errbuf, size_t errlen)
{
	char buf[SCRAM_PASSWORD_MAX + 3];
	FILE *f = fopen(path, "r");
	size_t n;
	char *nl, *out;

	if (f == NULL) {
		errbuf_set(errbuf, errlen, "password file %s: %s", path,
			   strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	nl = strpbrk(buf, "\r\n");
	if (nl != NULL)
		*nl = '\0';
	if (buf[0] == '\0' || strlen(buf) > SCRAM_PASSWORD_MAX) {
		errbuf_set(errbuf, errlen,
			   "password file %s: the first line must hold a "
			   "password of 1 to %d characters",
			   path, SCRAM_PASSWORD_MAX);
		explicit_bzero(buf, sizeof(buf));
		return NULL;
	}
	out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (out == NULL)
		errbuf_set(errbuf, errlen, "out of memory");
	return out;
}

/* Replaces *slot with a copy of value. */
static int
set_string(char **slot, const char *value, char *errbuf, size_t errlen)
{
	char *copy = strdup(value);

	if (copy == NULL) {
		errbuf_set(errbuf, errlen, "out of memory");
		return RINGMQ_INTERNAL;
	}
	free(*slot);
	*slot = copy;
	return RINGMQ_OK;
}

/* Numeric options: where each goes and its range. */
static const struct num_opt {
	const char *name;
	size_t off; /* offsetof in struct ringmq_opts */
	int kind;   /* 'i' int, 'u' uint32_t, 'U' uint64_t, 'b' boolean */
	uint64_t min;
	uint64_t max;
} num_opts[] = {
	{ "connect-timeout-ms",
	  offsetof(struct ringmq_opts, connect_timeout_ms), 'i', 1,
	  MAX_TIMEOUT_MS },
	{ "request-timeout-ms",
	  offsetof(struct ringmq_opts, request_timeout_ms), 'i', 1,
	  MAX_TIMEOUT_MS },
	{ "reconnect", offsetof(struct ringmq_opts, is_reconnect), 'b', 0, 1 },
	{ "reconnect-backoff-ms",
	  offsetof(struct ringmq_opts, reconnect_backoff_ms), 'i', 1,
	  MAX_TIMEOUT_MS },
	{ "reconnect-backoff-max-ms",
	  offsetof(struct ringmq_opts, reconnect_backoff_max_ms), 'i', 1,
	  MAX_TIMEOUT_MS },
	{ "ping-interval-ms", offsetof(struct ringmq_opts, ping_interval_ms),
	  'i', 0, MAX_TIMEOUT_MS },
	{ "linger-ms", offsetof(struct ringmq_opts, linger_ms), 'i', 0, 60000 },
	{ "batch-max-messages",
	  offsetof(struct ringmq_opts, batch_max_messages), 'u', 1, 1000000 },
	{ "max-outstanding-bytes",
	  offsetof(struct ringmq_opts, max_outstanding_bytes), 'U', 1,
	  (uint64_t)1 << 48 },
	{ "block-when-full", offsetof(struct ringmq_opts, is_block_when_full),
	  'b', 0, 1 },
	{ "auto-touch", offsetof(struct ringmq_opts, is_auto_touch), 'b', 0,
	  1 },
	{ "nack-backoff-ms", offsetof(struct ringmq_opts, nack_backoff_ms), 'i',
	  0, MAX_TIMEOUT_MS },
	{ "nack-backoff-max-ms",
	  offsetof(struct ringmq_opts, nack_backoff_max_ms), 'i', 0,
	  MAX_TIMEOUT_MS },
	{ "tls", offsetof(struct ringmq_opts, is_tls), 'b', 0, 1 },
	{ "tls-verify", offsetof(struct ringmq_opts, is_tls_verify), 'b', 0,
	  1 },
};

/* String options that name a TLS file or name: where each goes. */
static const struct str_opt {
	const char *name;
	size_t off; /* offsetof the char * in struct ringmq_opts */
} str_opts[] = {
	{ "tls-ca", offsetof(struct ringmq_opts, tls_ca) },
	{ "tls-cert", offsetof(struct ringmq_opts, tls_cert) },
	{ "tls-key", offsetof(struct ringmq_opts, tls_key) },
	{ "tls-server-name", offsetof(struct ringmq_opts, tls_server_name) },
};

/* Sets a numeric or boolean option; -1 when the value is bad. */
static int
set_num(struct ringmq_opts *opts, const struct num_opt *o, const char *value)
{
	char *slot = (char *)opts + o->off;
	uint64_t v;

	if (o->kind == 'b') {
		if (strcmp(value, "true") == 0)
			v = 1;
		else if (strcmp(value, "false") == 0)
			v = 0;
		else
			return -1;
	} else if (parse_u64(value, o->min, o->max, &v) < 0) {
		return -1;
	}
	switch (o->kind) {
	case 'u': *(uint32_t *)(void *)slot = (uint32_t)v; break;
	case 'U': *(uint64_t *)(void *)slot = v; break;
	default: *(int *)(void *)slot = (int)v; break;
	}
	return 0;
}

int
ringmq_opts_set(ringmq_opts *opts, const char *name, const char *value,
		char *errbuf, size_t errlen)
{
	if (opts == NULL || name == NULL || value == NULL) {
		errbuf_set(errbuf, errlen, "NULL argument");
		return RINGMQ_USAGE;
	}
	if (strcmp(name, "server") == 0) {
		if (check_server_list(value, errbuf, errlen) < 0)
			return RINGMQ_USAGE;
		return set_string(&opts->server, value, errbuf, errlen);
	}
	if (strcmp(name, "client-name") == 0)
		return set_string(&opts->client_name, value, errbuf, errlen);
	if (strcmp(name, "user") == 0) {
		if (!scram_user_ok(value)) {
			errbuf_set(errbuf, errlen,
				   "user must be 1 to %d printable characters",
				   SCRAM_USER_MAX);
			return RINGMQ_USAGE;
		}
		return set_string(&opts->user, value, errbuf, errlen);
	}
	if (strcmp(name, "password") == 0 ||
	    strcmp(name, "password-file") == 0) {
		char *pw = strcmp(name, "password") == 0
				   ? strdup(value)
				   : read_password_file(value, errbuf, errlen);

		if (pw == NULL)
			return strcmp(name, "password") == 0 ? RINGMQ_INTERNAL
							     : RINGMQ_USAGE;
		wipe_free(opts->password);
		opts->password = pw;
		return RINGMQ_OK;
	}
	for (size_t i = 0; i < sizeof(str_opts) / sizeof(str_opts[0]); i++) {
		char **slot;

		if (strcmp(name, str_opts[i].name) != 0)
			continue;
		slot = (char **)(void *)((char *)opts + str_opts[i].off);
		if (value[0] == '\0') { /* back to the default */
			free(*slot);
			*slot = NULL;
			return RINGMQ_OK;
		}
		return set_string(slot, value, errbuf, errlen);
	}
	for (size_t i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]); i++) {
		const struct num_opt *o = &num_opts[i];

		if (strcmp(name, o->name) != 0)
			continue;
		if (set_num(opts, o, value) == 0)
			return RINGMQ_OK;
		if (o->kind == 'b')
			errbuf_set(errbuf, errlen,
				   "%s must be true or false, not '%s'", name,
				   value);
		else
			errbuf_set(errbuf, errlen,
				   "%s must be a number from %llu to %llu, "
				   "not '%s'",
				   name, (unsigned long long)o->min,
				   (unsigned long long)o->max, value);
		return RINGMQ_USAGE;
	}
	errbuf_set(errbuf, errlen, "unknown option '%s'", name);
	return RINGMQ_USAGE;
}

/* A copy of s, or NULL for NULL; *is_nomem set when the copy failed. */
static char *
dup_or_null(const char *s, int *is_nomem)
{
	char *d = s != NULL ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*is_nomem = 1;
	return d;
}

static int
opts_copy(struct ringmq_opts *dst, const struct ringmq_opts *src)
{
	int is_nomem = 0;

	*dst = *src;
	dst->server = dup_or_null(src->server, &is_nomem);
	dst->client_name = dup_or_null(src->client_name, &is_nomem);
	dst->user = dup_or_null(src->user, &is_nomem);
	dst->password = dup_or_null(src->password, &is_nomem);
	dst->tls_ca = dup_or_null(src->tls_ca, &is_nomem);
	dst->tls_cert = dup_or_null(src->tls_cert, &is_nomem);
	dst->tls_key = dup_or_null(src->tls_key, &is_nomem);
	dst->tls_server_name = dup_or_null(src->tls_server_name, &is_nomem);
	return is_nomem ? -1 : 0;
}

/* The tls options make sense together; -1 with why. */
static int
check_tls_opts(const struct ringmq_opts *o, char *errbuf, size_t errlen)
{
	if (!o->is_tls) {
		if (o->tls_ca != NULL || o->tls_cert != NULL ||
		    o->tls_key != NULL || o->tls_server_name != NULL) {
			errbuf_set(errbuf, errlen,
				   "tls-ca, tls-cert, tls-key and "
				   "tls-server-name need tls=true");
			return -1;
		}
		return 0;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		errbuf_set(errbuf, errlen,
			   "tls-cert and tls-key go together (a client "
			   "certificate and its key)");
		return -1;
	}
	return 0;
}

/* A user and password not given as options come from the environment:
 * RINGMQ_USER and RINGMQ_PASSWORD_FILE. @return 0, or -1 with a reason. */
static int
opts_from_env(struct ringmq_opts *o, char *errbuf, size_t errlen)
{
	const char *user = getenv("RINGMQ_USER");
	const char *file = getenv("RINGMQ_PASSWORD_FILE");

	if (o->user == NULL && user != NULL && user[0] != '\0') {
		if (!scram_user_ok(user)) {
			errbuf_set(errbuf, errlen,
				   "RINGMQ_USER must be 1 to %d printable "
				   "characters",
				   SCRAM_USER_MAX);
			return -1;
		}
		o->user = strdup(user);
		if (o->user == NULL)
			return -1;
	}
	if (o->user != NULL && o->password == NULL && file != NULL &&
	    file[0] != '\0') {
		o->password = read_password_file(file, errbuf, errlen);
		if (o->password == NULL)
			return -1;
	}
	if (o->user != NULL && o->password == NULL) {
		errbuf_set(errbuf, errlen,
			   "user %s has no password: give the password or "
			   "password-file option, or RINGMQ_PASSWORD_FILE",
			   o->user);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ connect */

/*
 * Opens a TCP connection to host:port within timeout_ms, trying each
 * resolved address.
 * @return the connected non-blocking socket, or -1 with a reason in why.
 */
static int
tcp_connect(const char *host, const char *port, int timeout_ms, char *why,
	    size_t whylen)
{
	struct addrinfo hints = { 0 };
	struct addrinfo *res = NULL;
	int64_t deadline_ms = conn_now_ms() + timeout_ms;
	int fd = -1;
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host,
			 gai_strerror(rc));
		return -1;
	}
	snprintf(why, whylen, "no address for %s", host);
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd p;
		int64_t left_ms;
		int err = 0;
		socklen_t errsz = sizeof(err);

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			snprintf(why, whylen, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			err = errno;
			goto next;
		}
		left_ms = deadline_ms - conn_now_ms();
		p.fd = fd;
		p.events = POLLOUT;
		p.revents = 0;
		do {
			rc = poll(&p, 1, left_ms > 0 ? (int)left_ms : 0);
			left_ms = deadline_ms - conn_now_ms();
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(why, whylen,
				 "connect to %s:%s timed out after %d ms", host,
				 port, timeout_ms);
			(void)close(fd); /* nothing to report */
			fd = -1;
			continue;
		}
		if (rc < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errsz) < 0)
			err = errno;
		if (err == 0)
			break;
next:
		snprintf(why, whylen, "connect to %s:%s: %s", host, port,
			 strerror(err));
		(void)close(fd); /* nothing to report */
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int one = 1;

		/* Small requests must not wait for Nagle; a failure only
		 * costs latency, so it is not fatal. */
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			       sizeof(one)) < 0)
			(void)0;
	}
	return fd;
}

/* Copies a bytes field holding text; -1 if it does not fit or holds a
 * NUL. */
static int
text_of(const ProtobufCBinaryData *b, char *out, size_t size)
{
	if (b->len >= size || memchr(b->data, 0, b->len) != NULL)
		return -1;
	memcpy(out, b->data, b->len);
	out[b->len] = '\0';
	return 0;
}

/*
 * The SCRAM-SHA-256 exchange of the hello (see Hello in ringmq.proto):
 * h carries the client-first message; the challenge is answered, and
 * the broker's final message checked: only then is the broker trusted.
 * @param[out] resp  the HelloOk frame on success.
 */
static int
hello_scram(struct ringmq_client *c, Ringmq__Frame *f, Ringmq__Hello *h,
	    Ringmq__Frame **resp)
{
	struct scram_client sc;
	char first[SCRAM_MSG_MAX + 1], msg[SCRAM_MSG_MAX + 1];
	char final[SCRAM_MSG_MAX + 1];
	Ringmq__AuthResponse ar = RINGMQ__AUTH_RESPONSE__INIT;
	Ringmq__Frame af = RINGMQ__FRAME__INIT;
	Ringmq__Frame *ch = NULL;
	Ringmq__HelloOk *ok;
	int n, rc;

	*resp = NULL;
	n = scram_client_first(&sc, c->opts.user, NULL, first, sizeof(first));
	if (n < 0)
		return client_fail(c, RINGMQ_USAGE, "user %s: %s", c->opts.user,
				   scram_strerror(n));
	h->has_credentials = 1;
	h->credentials.data = (uint8_t *)first;
	h->credentials.len = (size_t)n;
	h->mechanism = (char *)"SCRAM-SHA-256";
	rc = conn_call(c, f, RINGMQ__FRAME__BODY_AUTH_CHALLENGE, &ch);
	if (rc != RINGMQ_OK)
		goto out;
	if (text_of(&ch->auth_challenge->data, msg, sizeof(msg)) < 0) {
		rc = client_fail(c, RINGMQ_BAD_FRAME,
				 "broker sent a malformed challenge");
		goto out;
	}
	/* PBKDF2 runs here: the iterations the broker asked for. */
	n = scram_client_final(&sc, c->opts.password, msg, final,
			       sizeof(final));
	if (n < 0) {
		rc = client_fail(c, RINGMQ_UNAUTHENTICATED,
				 "authentication as %s: %s", c->opts.user,
				 scram_strerror(n));
		goto out;
	}
	ar.data.data = (uint8_t *) final;
	ar.data.len = (size_t)n;
	af.body_case = RINGMQ__FRAME__BODY_AUTH_RESPONSE;
	af.auth_response = &ar;
	rc = conn_call(c, &af, RINGMQ__FRAME__BODY_HELLO_OK, resp);
	if (rc != RINGMQ_OK)
		goto out;
	ok = (*resp)->hello_ok;
	if (!ok->has_auth_final ||
	    text_of(&ok->auth_final, msg, sizeof(msg)) < 0 ||
	    scram_client_verify(&sc, msg) < 0) {
		/* Only the holder of the user's keys can sign the exchange:
		 * anyone else is not the broker. */
		rc = client_fail(c, RINGMQ_UNAUTHENTICATED,
				 "the broker did not prove it holds the keys "
				 "of user %s",
				 c->opts.user);
		frame_free(*resp);
		*resp = NULL;
	}
out:
	frame_free(ch);
	scram_client_fini(&sc);
	explicit_bzero(final, sizeof(final));
	return rc;
}

/* Exchanges Hello / HelloOk on c's fresh socket, with SCRAM when a user
 * is set. */
static int
hello(struct ringmq_client *c)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	Ringmq__Frame *resp;
	Ringmq__HelloOk *ok;
	int rc;

	h.version = PROTO_VERSION;
	h.client_name = c->opts.client_name;
	/* Resume the producer: resent batches are then recognised. */
	h.has_producer_id = c->producer_id != 0;
	h.producer_id = c->producer_id;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	if (c->opts.user != NULL)
		rc = hello_scram(c, &f, &h, &resp);
	else
		rc = conn_call(c, &f, RINGMQ__FRAME__BODY_HELLO_OK, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	ok = resp->hello_ok;
	if (ok->version != PROTO_VERSION) {
		rc = client_fail(c, RINGMQ_UNSUPPORTED_VERSION,
				 "broker answered hello with version %u",
				 ok->version);
		goto out;
	}
	if (ok->max_frame_bytes < 64 || ok->max_message_bytes == 0) {
		rc = client_fail(c, RINGMQ_BAD_FRAME,
				 "broker announced unusable limits (max frame "
				 "%u bytes, max message %u bytes)",
				 ok->max_frame_bytes, ok->max_message_bytes);
		goto out;
	}
	c->max_frame_bytes = ok->max_frame_bytes;
	c->max_message_bytes = ok->max_message_bytes;
	/* At least one per request, whatever the broker says. */
	c->max_batch_count = ok->max_batch_count ? ok->max_batch_count : 1;
	c->max_header_count =
		ok->has_max_header_count ? ok->max_header_count : UINT32_MAX;
	c->producer_id = ok->producer_id;
out:
	frame_free(resp);
	return rc;
}

/* Appends "; text" to the running error list in errbuf. */
static void
errbuf_append(char *errbuf, size_t errlen, const char *text)
{
	size_t used;

	if (errbuf == NULL || errlen == 0)
		return;
	used = strnlen(errbuf, errlen);
	if (used >= errlen - 1)
		return;
	snprintf(errbuf + used, errlen - used, "%s%s", used ? "; " : "", text);
}

/* Tries one "HOST:PORT" entry; RINGMQ_OK leaves c connected. */
static int
connect_one(struct ringmq_client *c, const char *entry, size_t len, char *why,
	    size_t whylen)
{
	char host[256];
	char port[8];
	struct ssl_st *ssl = NULL;
	int fd;
	int rc;

	conn_reset(c);
	if (parse_hostport(entry, len, host, sizeof(host), port, sizeof(port),
			   why, whylen) < 0)
		return RINGMQ_USAGE;
	fd = tcp_connect(host, port, c->opts.connect_timeout_ms, why, whylen);
	if (fd < 0)
		return RINGMQ_UNREACHABLE;
	if (c->tls_ctx != NULL) {
		const char *name = c->opts.tls_server_name != NULL
					   ? c->opts.tls_server_name
					   : host;
		char tls_why[400];

		if (tls_handshake(c->tls_ctx, fd, name, c->opts.is_tls_verify,
				  c->opts.connect_timeout_ms, &ssl, tls_why,
				  sizeof(tls_why)) < 0) {
			(void)close(fd); /* nothing to report */
			snprintf(why, whylen, "%.*s: %.280s",
				 (int)(len > 100 ? 100 : len), entry, tls_why);
			return RINGMQ_UNREACHABLE;
		}
	}
	conn_attach(c, fd, ssl);
	c->errmsg[0] = '\0';
	rc = hello(c);
	if (rc == RINGMQ_OK) {
		conn_ready(c);
		free(c->server);
		c->server = strndup(entry, len);
		if (c->server == NULL) {
			snprintf(why, whylen, "out of memory");
			return RINGMQ_INTERNAL;
		}
		return RINGMQ_OK;
	}
	if (status_is_conn_failure(rc)) {
		snprintf(why, whylen, "%.*s: no hello answer: %.240s",
			 (int)(len > 100 ? 100 : len), entry, c->errmsg);
		return RINGMQ_UNREACHABLE;
	}
	snprintf(why, whylen, "%.*s refused hello: %.240s",
		 (int)(len > 100 ? 100 : len), entry, c->errmsg);
	return rc;
}

/* Random 64 bits for jitter and the round-robin start; not secret. */
static uint64_t
seed64(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
	       ((uint64_t)getpid() << 40);
}

/* xorshift64: cheap, good enough for jitter. */
static uint64_t
next_rand(struct ringmq_client *c)
{
	uint64_t x = c->rr_seed ? c->rr_seed : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rr_seed = x;
	return x;
}

/* Number of entries in the server list (checked already). */
static size_t
server_count(const char *list)
{
	size_t n = 1;

	for (; *list; list++)
		n += *list == ',';
	return n;
}

/* The idx-th entry of the server list: its start and length. */
static const char *
server_entry(const char *list, size_t idx, size_t *lenp)
{
	const char *p = list;
	const char *comma;

	for (size_t i = 0; i < idx; i++)
		p = strchr(p, ',') + 1;
	comma = strchr(p, ',');
	*lenp = comma ? (size_t)(comma - p) : strlen(p);
	return p;
}

/*
 * Walks the server list once, from index first, until a broker completes
 * hello. Lock held; the lock is kept through the waits so that no other
 * thread sees a half-made connection.
 */
static int
connect_walk(struct ringmq_client *c, size_t first, char *errbuf, size_t errlen)
{
	size_t n = server_count(c->opts.server);
	char why[384];
	int rc = RINGMQ_UNREACHABLE;
	int is_refused = 0;

	c->is_connecting = 1;
	c->hold_lock++;
	for (size_t k = 0; k < n; k++) {
		size_t idx = (first + k) % n;
		size_t len;
		const char *p = server_entry(c->opts.server, idx, &len);
		int one = connect_one(c, p, len, why, sizeof(why));

		if (one == RINGMQ_OK) {
			c->server_idx = idx;
			rc = RINGMQ_OK;
			break;
		}
		errbuf_append(errbuf, errlen, why);
		if (one == RINGMQ_INTERNAL || one == RINGMQ_USAGE) {
			rc = one;
			break;
		}
		/* A broker's refusal says more than "unreachable". */
		if (one != RINGMQ_UNREACHABLE || !is_refused) {
			rc = one;
			is_refused = one != RINGMQ_UNREACHABLE;
		}
	}
	if (rc != RINGMQ_OK)
		conn_reset(c);
	else
		c->conn_gen++;
	c->hold_lock--;
	c->is_connecting = 0;
	return rc;
}

/*
 * The router's reconnect hook: walks the server list from the address
 * after the last one used, presents the producer id in hello, then
 * restores subscriptions and resends unanswered publish batches. Lock
 * held.
 * @return OK, or why not (the next attempt is scheduled with backoff).
 */
static int
client_reconnect(struct ringmq_client *c)
{
	char why[512] = "";
	/* After a goodbye, try the other brokers first. */
	size_t first = c->server_idx + (c->is_closing ? 1 : 0);
	int rc;

	rc = connect_walk(c, first, why, sizeof(why));
	if (rc != RINGMQ_OK) {
		int64_t b = c->backoff_ms;

		/* Exponential backoff with jitter: wait b/2 + random(b/2),
		 * so that many clients do not come back all at once. */
		c->next_attempt_ms =
			conn_now_ms() + b / 2 +
			(int64_t)(next_rand(c) % (uint64_t)(b / 2 + 1));
		b *= 2;
		c->backoff_ms = b > c->opts.reconnect_backoff_max_ms
					? c->opts.reconnect_backoff_max_ms
					: (int)b;
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "reconnect failed: %.480s", why);
		return RINGMQ_UNREACHABLE;
	}
	c->backoff_ms = c->opts.reconnect_backoff_ms;
	c->hold_lock++;
	rc = subs_restore(c);
	c->hold_lock--;
	if (rc != RINGMQ_OK)
		return rc;
	producer_send_due(c, conn_now_ms());
	conn_try_send(c);
	conn_wake(c);
	return RINGMQ_OK;
}

int
ringmq_client_connect(ringmq_client **clientp, const ringmq_opts *opts,
		      char *errbuf, size_t errlen)
{
	ringmq_opts *defaults = NULL;
	ringmq_client *c = NULL;
	pthread_mutexattr_t ma;
	int rc;

	if (clientp == NULL) {
		errbuf_set(errbuf, errlen, "NULL argument");
		return RINGMQ_USAGE;
	}
	*clientp = NULL;
	errbuf_set(errbuf, errlen, "%s", "");
	if (opts == NULL) {
		defaults = ringmq_opts_new();
		if (defaults == NULL)
			goto nomem;
		opts = defaults;
	}
	if (check_server_list(opts->server, errbuf, errlen) < 0) {
		rc = RINGMQ_USAGE;
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto nomem;
	/* The router's handlers, before the first byte is read, in the
	 * order their hooks run: batches are sent before touches. */
	conn_init(c, client_reconnect);
	conn_add_hooks(c, &subs_hooks);
	conn_add_hooks(c, &producer_hooks);
	conn_add_hooks(c, &acks_hooks);
	conn_add_hooks(c, &touch_hooks);
	c->rr_seed = seed64();
	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pthread_mutexattr_init(&ma) != 0)
		goto nomem;
	/* Recursive: conn_call takes it under callers that hold it. */
	(void)pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	rc = pthread_mutex_init(&c->lock, &ma);
	(void)pthread_mutexattr_destroy(&ma);
	if (rc != 0) {
		free(c);
		c = NULL;
		goto nomem;
	}
	if (c->wake_fd < 0 || opts_copy(&c->opts, opts) < 0)
		goto nomem;
	if (opts_from_env(&c->opts, errbuf, errlen) < 0 ||
	    check_tls_opts(&c->opts, errbuf, errlen) < 0 ||
	    (c->opts.is_tls &&
	     tls_ctx_new(&c->tls_ctx, &c->opts, errbuf, errlen) < 0)) {
		rc = RINGMQ_USAGE;
		goto fail;
	}
	c->backoff_ms = c->opts.reconnect_backoff_ms;

	client_lock(c);
	rc = connect_walk(c, 0, errbuf, errlen);
	client_unlock(c);
	if (rc != RINGMQ_OK)
		goto fail;
	if (c->opts.is_auto_touch && touch_thread_start(c) != 0)
		goto nomem;
	c->errmsg[0] = '\0';
	ringmq_opts_free(defaults);
	*clientp = c;
	return RINGMQ_OK;

nomem:
	errbuf_set(errbuf, errlen, "out of memory");
	rc = RINGMQ_INTERNAL;
fail:
	ringmq_client_free(c);
	ringmq_opts_free(defaults);
	return rc;
}

/* ------------------------------------------------------- lifecycle, access */

void
ringmq_client_close(ringmq_client *c)
{
	struct cb_work w;

	if (c == NULL)
		return;
	touch_thread_stop(c);
	client_lock(c);
	if (c->state == CONN_CLOSED) {
		client_unlock(c);
		return;
	}
	c->state = CONN_CLOSED;
	c->is_ready = 0;
	producer_on_lost(c, RINGMQ_CLOSED);
	acks_on_lost(c, RINGMQ_CLOSED);
	client_take_callbacks(c, &w);
	conn_fini(c);
	subs_drop_queued(c);
	conn_wake(c);
	client_unlock(c);
	(void)client_run_callbacks(c, &w);
}

void
ringmq_client_free(ringmq_client *c)
{
	if (c == NULL)
		return;
	if (c->state != CONN_CLOSED && c->wake_fd >= 0)
		ringmq_client_close(c);
	conn_fini(c);
	producer_fini(c);
	acks_fini(c);
	subs_fini(c);
	touch_fini(c);
	if (c->wake_fd >= 0)
		(void)close(c->wake_fd); /* nothing to report */
	pthread_mutex_destroy(&c->lock);
	opts_fini(&c->opts);
	tls_ctx_free(c->tls_ctx);
	free(c->server);
	free(c);
}

int
ringmq_client_poll(ringmq_client *c, int timeout_ms)
{
	struct cb_work w;
	int64_t deadline_ms;

	if (c == NULL)
		return 0;
	deadline_ms = timeout_ms < 0 ? -1 : conn_now_ms() + timeout_ms;
	client_lock(c);
	for (;;) {
		int rc;

		if (client_has_callbacks(c))
			break;
		rc = conn_pump(c, deadline_ms);
		if (rc == RINGMQ_CLOSED ||
		    (rc == RINGMQ_CONNECTION_LOST && !c->opts.is_reconnect))
			break;
		if (client_has_callbacks(c))
			break;
		if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms)
			break;
	}
	client_take_callbacks(c, &w);
	client_unlock(c);
	return client_run_callbacks(c, &w);
}

/* 1 while a publish or an asynchronous ack waits for its answer. */
static int
has_unanswered(const struct ringmq_client *c)
{
	return c->producer.n_outstanding > 0 || c->acks.sent != NULL;
}

int
ringmq_client_flush(ringmq_client *c, int timeout_ms)
{
	struct cb_work w;
	int64_t deadline_ms;
	int rc = RINGMQ_OK;

	if (c == NULL)
		return RINGMQ_USAGE;
	deadline_ms = timeout_ms < 0 ? -1 : conn_now_ms() + timeout_ms;
	client_lock(c);
	if (c->state == CONN_CLOSED)
		rc = client_fail(c, RINGMQ_CLOSED, "the client is closed");
	c->producer.n_flushing++;
	while (rc == RINGMQ_OK && has_unanswered(c)) {
		/* Lost for good: nothing will answer what is left. */
		if (c->state == CONN_LOST && !c->opts.is_reconnect) {
			rc = client_fail(c, RINGMQ_CONNECTION_LOST,
					 "the connection was lost");
			break;
		}
		rc = conn_pump(c, deadline_ms);
		if (rc == RINGMQ_CLOSED)
			break;
		rc = RINGMQ_OK;
		if (!has_unanswered(c))
			break;
		if (deadline_ms >= 0 && conn_now_ms() >= deadline_ms) {
			rc = RINGMQ_TIMEOUT;
			break;
		}
	}
	if (has_unanswered(c) && rc == RINGMQ_OK)
		rc = c->state == CONN_CLOSED ? RINGMQ_CLOSED : RINGMQ_TIMEOUT;
	c->producer.n_flushing--;
	client_take_callbacks(c, &w);
	client_unlock(c);
	(void)client_run_callbacks(c, &w);
	return rc;
}

int
ringmq_client_fd(ringmq_client *c)
{
	int fd;

	if (c == NULL)
		return -1;
	client_lock(c);
	fd = c->fd;
	client_unlock(c);
	return fd;
}

int
ringmq_client_poll_timeout(ringmq_client *c)
{
	int64_t due;
	int64_t left;

	if (c == NULL)
		return -1;
	client_lock(c);
	/* Callbacks a call that runs none (ringmq_next()) left ready. */
	due = client_has_callbacks(c) ? conn_now_ms() : conn_next_due_ms(c);
	client_unlock(c);
	if (due < 0)
		return -1;
	left = due - conn_now_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

size_t
ringmq_client_outstanding(ringmq_client *c)
{
	size_t n;

	if (c == NULL)
		return 0;
	client_lock(c);
	n = c->producer.n_outstanding;
	client_unlock(c);
	return n;
}

int
ringmq_client_is_connected(ringmq_client *c)
{
	int is_open;

	if (c == NULL)
		return 0;
	client_lock(c);
	is_open = c->state == CONN_OPEN && c->is_ready;
	client_unlock(c);
	return is_open;
}

const char *
ringmq_client_errmsg(const ringmq_client *c)
{
	return c ? c->errmsg : "";
}

uint32_t
ringmq_client_max_frame_bytes(const ringmq_client *c)
{
	return c ? c->max_frame_bytes : 0;
}

uint32_t
ringmq_client_max_message_bytes(const ringmq_client *c)
{
	return c ? c->max_message_bytes : 0;
}

uint32_t
ringmq_client_max_batch_count(const ringmq_client *c)
{
	return c ? c->max_batch_count : 0;
}

uint32_t
ringmq_client_max_header_count(const ringmq_client *c)
{
	return c ? c->max_header_count : 0;
}

uint64_t
ringmq_client_producer_id(const ringmq_client *c)
{
	return c ? c->producer_id : 0;
}

const char *
ringmq_client_server(const ringmq_client *c)
{
	return c && c->server ? c->server : "";
}

int
ringmq_client_ping(ringmq_client *c)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Ping ping = RINGMQ__PING__INIT;
	Ringmq__Frame *resp;
	int rc = client_begin(c);

	if (rc != RINGMQ_OK)
		return rc;
	f.body_case = RINGMQ__FRAME__BODY_PING;
	f.ping = &ping;
	rc = conn_call(c, &f, RINGMQ__FRAME__BODY_PONG, &resp);
	if (rc != RINGMQ_OK)
		return rc;
	frame_free(resp);
	return RINGMQ_OK;
}
