/*
 * client.c: status codes, connection options, connect with hello, and the
 * client handle's lifecycle and accessors.
 *
 * Owns the ringmq_client object; the socket's framing and dispatch are
 * conn.c's. Connect walks the server list in order and keeps the first
 * address whose broker completes hello.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LIB_VERSION "0.1.0"

/* ------------------------------------------------------------ status codes */

struct code_text {
	const char *name;
	const char *text;
};

/* Indexed by code for 0..16 (wire) and by code - 100 for 100..106. */
static const struct code_text wire_codes[] = {
	{ "OK", "success" },
	{ "BAD_FRAME", "frame does not decode or breaks a rule" },
	{ "UNSUPPORTED_VERSION", "protocol version not supported" },
	{ "NOT_HELLO", "a request came before hello" },
	{ "QUEUE_NOT_FOUND", "queue not found" },
	{ "QUEUE_EXISTS", "queue exists with other settings" },
	{ "QUEUE_FULL", "queue is full" },
	{ "STORAGE_FULL", "broker storage is full" },
	{ "LEASE_EXPIRED", "lease expired" },
	{ "NOT_LEASED", "not leased to this connection" },
	{ "GROUP_NOT_FOUND", "consumer group not found" },
	{ "MESSAGE_NOT_FOUND", "message not found" },
	{ "MESSAGE_TOO_LARGE", "message too large" },
	{ "INVALID_ARGUMENT", "invalid argument" },
	{ "TOO_MANY_CONNECTIONS", "too many connections" },
	{ "SHUTTING_DOWN", "broker is shutting down" },
	{ "INTERNAL", "internal error" },
};

static const struct code_text local_codes[] = {
	{ "WOULD_BLOCK", "outgoing buffer is full" },
	{ "TIMEOUT", "timed out" },
	{ "CLOSED", "client is closed" },
	{ "UNREACHABLE", "cannot connect to the broker" },
	{ "CONNECTION_LOST", "connection lost" },
	{ "USAGE", "bad usage" },
	{ "IO", "input/output error" },
};

static const struct code_text *
code_lookup(int code)
{
	size_t nwire = sizeof(wire_codes) / sizeof(wire_codes[0]);
	size_t nlocal = sizeof(local_codes) / sizeof(local_codes[0]);

	if (code >= 0 && (size_t)code < nwire)
		return &wire_codes[code];
	if (code >= 100 && (size_t)(code - 100) < nlocal)
		return &local_codes[code - 100];
	return NULL;
}

const char *
ringmq_strerror(int code)
{
	const struct code_text *t = code_lookup(code);

	return t ? t->text : "unknown error";
}

const char *
ringmq_code_name(int code)
{
	const struct code_text *t = code_lookup(code);

	return t ? t->name : "UNKNOWN";
}

const char *
ringmq_version(void)
{
	return LIB_VERSION;
}

/* ------------------------------------------------------------------ helpers */

void
errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

int
client_fail(struct ringmq_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

int
client_begin(struct ringmq_client *c)
{
	if (c == NULL)
		return RINGMQ_USAGE;
	c->errmsg[0] = '\0';
	if (c->state == CONN_CLOSED)
		return client_fail(c, RINGMQ_CLOSED, "the client is closed");
	if (c->state == CONN_LOST)
		return client_fail(c, RINGMQ_CONNECTION_LOST,
				   "the connection was lost");
	return RINGMQ_OK;
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
	return opts;
}

void
ringmq_opts_free(ringmq_opts *opts)
{
	if (opts == NULL)
		return;
	free(opts->server);
	free(opts->client_name);
	free(opts);
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

int
ringmq_opts_set(ringmq_opts *opts, const char *name, const char *value,
		char *errbuf, size_t errlen)
{
	uint64_t v;

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
	if (strcmp(name, "connect-timeout-ms") == 0 ||
	    strcmp(name, "request-timeout-ms") == 0) {
		if (parse_u64(value, 1, MAX_TIMEOUT_MS, &v) < 0) {
			errbuf_set(errbuf, errlen,
				   "%s must be a number from 1 to %d, not "
				   "'%s'",
				   name, MAX_TIMEOUT_MS, value);
			return RINGMQ_USAGE;
		}
		if (name[0] == 'c')
			opts->connect_timeout_ms = (int)v;
		else
			opts->request_timeout_ms = (int)v;
		return RINGMQ_OK;
	}
	errbuf_set(errbuf, errlen, "unknown option '%s'", name);
	return RINGMQ_USAGE;
}

static int
opts_copy(struct ringmq_opts *dst, const struct ringmq_opts *src)
{
	dst->connect_timeout_ms = src->connect_timeout_ms;
	dst->request_timeout_ms = src->request_timeout_ms;
	dst->server = strdup(src->server);
	dst->client_name = src->client_name ? strdup(src->client_name) : NULL;
	if (dst->server == NULL ||
	    (src->client_name != NULL && dst->client_name == NULL))
		return -1;
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

/* Exchanges Hello / HelloOk on c's fresh socket. */
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
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
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
	c->producer_id = ok->producer_id;
	c->max_in_frame_bytes =
		ok->max_frame_bytes > UINT32_MAX - IN_FRAME_SLACK_BYTES
			? UINT32_MAX
			: ok->max_frame_bytes + IN_FRAME_SLACK_BYTES;
out:
	ringmq__frame__free_unpacked(resp, NULL);
	return rc;
}

/* Puts c back to "no connection" between attempts. */
static void
reset_attempt(struct ringmq_client *c)
{
	if (c->fd >= 0)
		(void)close(c->fd); /* nothing to report */
	c->fd = -1;
	c->state = CONN_LOST;
	c->is_closing = 0;
	c->in_len = 0;
	c->out_off = 0;
	c->out_len = 0;
	c->max_frame_bytes = 0;
	c->max_in_frame_bytes = PRE_HELLO_MAX_FRAME_BYTES;
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
	int rc;

	reset_attempt(c);
	if (parse_hostport(entry, len, host, sizeof(host), port, sizeof(port),
			   why, whylen) < 0)
		return RINGMQ_USAGE;
	c->fd = tcp_connect(host, port, c->opts.connect_timeout_ms, why,
			    whylen);
	if (c->fd < 0)
		return RINGMQ_UNREACHABLE;
	c->state = CONN_OPEN;
	c->errmsg[0] = '\0';
	rc = hello(c);
	if (rc == RINGMQ_OK) {
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

int
ringmq_client_connect(ringmq_client **clientp, const ringmq_opts *opts,
		      char *errbuf, size_t errlen)
{
	ringmq_opts *defaults = NULL;
	ringmq_client *c = NULL;
	char why[384];
	const char *p;
	int rc = RINGMQ_UNREACHABLE;
	int is_refused = 0;

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
	c->fd = -1;
	c->state = CONN_LOST;
	c->next_request_id = 1;
	if (opts_copy(&c->opts, opts) < 0)
		goto nomem;

	for (p = c->opts.server;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int one = connect_one(c, p, len, why, sizeof(why));

		if (one == RINGMQ_OK)
			break;
		errbuf_append(errbuf, errlen, why);
		if (one == RINGMQ_INTERNAL || one == RINGMQ_USAGE) {
			rc = one;
			goto fail;
		}
		/* A broker's refusal says more than "unreachable". */
		if (one != RINGMQ_UNREACHABLE || !is_refused) {
			rc = one;
			is_refused = one != RINGMQ_UNREACHABLE;
		}
		if (comma == NULL)
			goto fail;
		p = comma + 1;
	}
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
	if (c == NULL)
		return;
	conn_fini(c);
	c->state = CONN_CLOSED;
}

void
ringmq_client_free(ringmq_client *c)
{
	if (c == NULL)
		return;
	conn_fini(c);
	free(c->opts.server);
	free(c->opts.client_name);
	free(c->server);
	free(c);
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
	ringmq__frame__free_unpacked(resp, NULL);
	return RINGMQ_OK;
}
