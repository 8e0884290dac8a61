/*
 * config: see config.h. The settings table is the only place a setting is
 * named, typed and defaulted; the flag parser, the config file reader and
 * --help all read it.
 */
#include "lib/config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

enum setting_type {
	SET_STRING,
	SET_U32,
	SET_U64,
	SET_BYTES, /* u64 with an optional K, M, G or T suffix (powers of 2) */
	SET_BYTES32, /* the same, u32 */
	SET_SYNC,
	SET_AUTH,
	SET_TLS_CLIENT_AUTH,
	SET_TLS_USER_FROM,
	SET_ON_OFF,
	SET_LOG_LEVEL,
	SET_LOG_FORMAT,
};

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset;	  /* into struct config */
	size_t size;	  /* of the string buffer, for SET_STRING */
	const char *def;  /* default, parsed like any value */
	const char *unit; /* for --help */
	uint64_t min, max;
	const char *help;
};

#define STR(f) \
	SET_STRING, offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM(t, f) t, offsetof(struct config, f), 0

static const struct setting settings[] = {
	{ "listen", STR(listen), "127.0.0.1:7420", "HOST:PORT|off", 0, 0,
	  "address to accept plaintext clients on; port 0 picks a free port; "
	  "off (with tls-listen) accepts TLS clients only" },
	{ "tls-listen", STR(tls_listen), "", "HOST:PORT", 0, 0,
	  "address to accept TLS clients on (needs tls-cert and tls-key); "
	  "port 0 picks a free port; logged as 'tls listening on HOST:PORT', "
	  "and printed as the 'listening on' line when listen is off" },
	{ "tls-cert", STR(tls_cert), "", "FILE", 0, 0,
	  "the broker's certificate, then its chain (PEM); read again on "
	  "SIGHUP" },
	{ "tls-key", STR(tls_key), "", "FILE", 0, 0,
	  "the private key of tls-cert (PEM); read again on SIGHUP" },
	{ "tls-ca", STR(tls_ca), "", "FILE", 0, 0,
	  "CA certificates (PEM) that client certificates must chain to; "
	  "read again on SIGHUP" },
	{ "tls-client-auth", NUM(SET_TLS_CLIENT_AUTH, tls_client_auth), "none",
	  "none|optional|require", 0, 0,
	  "whether TLS clients show a certificate: not asked (none); asked, "
	  "and verified against tls-ca if given (optional); or required and "
	  "verified (require); optional and require need tls-ca" },
	{ "tls-user-from", NUM(SET_TLS_USER_FROM, is_tls_user_san), "cn",
	  "cn|san", 0, 0,
	  "with auth on, a client that shows a verified certificate and no "
	  "password is the user its certificate names: the subject's common "
	  "name (cn) or its first DNS or email alternative name (san)" },
	{ "http", STR(http), "127.0.0.1:7421", "HOST:PORT|off", 0, 0,
	  "address of GET /metrics and GET /healthz; port 0 picks a free "
	  "port; off disables" },
	{ "http-tls", NUM(SET_ON_OFF, is_http_tls), "off", "on|off", 0, 0,
	  "on: the HTTP port speaks HTTPS, with tls-cert and tls-key (read "
	  "again on SIGHUP)" },
	{ "http-token-file", STR(http_token_file), "", "FILE", 0, 0,
	  "a file holding a token that every HTTP request must bring "
	  "(Authorization: Bearer TOKEN); without one, /metrics and /healthz "
	  "answer only clients on this host unless auth is off" },
	{ "data", STR(data_dir), "./ringmq-data", "DIR", 0, 0,
	  "data directory (created if missing; locked while running)" },
	{ "backup-dir", STR(backup_dir), "", "DIR", 0, 0,
	  "backups go only under DIR (absolute); without it, only a client "
	  "on this host may ask for one, anywhere the broker can write" },
	{ "config", STR(config_file), "", "FILE", 0, 0,
	  "read settings from FILE (key = value lines); flags win" },
	{ "max-storage-bytes", NUM(SET_BYTES, max_storage_bytes), "8G", "bytes",
	  1u << 20, UINT64_MAX,
	  "storage limit: LMDB map size, fixed while running" },
	{ "sync", NUM(SET_SYNC, sync), "always", "always|interval|never", 0, 0,
	  "when a publish is confirmed: after fsync (always), on receipt "
	  "with fsync every sync-interval-ms (interval), or after a commit "
	  "without fsync (never: survives kill -9, not power loss)" },
	{ "sync-interval-ms", NUM(SET_U32, sync_interval_ms), "100", "ms", 1,
	  60000, "fsync period for sync=interval" },
	{ "journal", NUM(SET_ON_OFF, is_journal), "on", "on|off", 0, 0,
	  "on: confirm writes once a journal (DATA/journal) holds them, "
	  "synced as sync says, and apply them to LMDB behind it; off: "
	  "confirm after LMDB's own synced commit" },
	{ "journal-max-bytes", NUM(SET_BYTES, journal_max_bytes), "64M",
	  "bytes", 8u << 20, UINT64_MAX,
	  "journal records LMDB may fall behind by before writes wait for "
	  "it" },
	{ "max-frame-bytes", NUM(SET_BYTES32, max_frame_bytes), "4M", "bytes",
	  1024, 1u << 30, "longest frame accepted from a client" },
	{ "max-message-bytes", NUM(SET_BYTES32, max_message_bytes), "1M",
	  "bytes", 1, 1u << 30,
	  "largest message accepted: payload, key, headers and dedup id" },
	{ "max-batch-count", NUM(SET_U32, max_batch_count), "1000", "count", 1,
	  100000, "most messages or lease ids in one request" },
	{ "max-header-count", NUM(SET_U32, max_header_count), "64", "count", 0,
	  10000, "most headers on one message" },
	{ "max-connections", NUM(SET_U32, max_connections), "10000", "count", 1,
	  1000000, "connections beyond this are refused" },
	{ "max-conn-out-bytes", NUM(SET_BYTES, max_conn_out_bytes), "8M",
	  "bytes", 65536, UINT64_MAX,
	  "a peer's unsent output above this stops reading from it" },
	{ "max-conn-pending", NUM(SET_U32, max_conn_pending), "1024", "count",
	  1, 1000000,
	  "a peer with this many requests waiting on commits is not read "
	  "until half of them are answered" },
	{ "lease-ms", NUM(SET_U64, lease_ms), "30000", "ms", 1, UINT64_MAX / 2,
	  "default lease time of new queues" },
	{ "max-lease-ms", NUM(SET_U64, max_lease_ms), "43200000", "ms", 1,
	  UINT64_MAX / 2, "default max lease (touch cap) of new queues" },
	{ "max-deliveries", NUM(SET_U32, max_deliveries), "5", "count", 0,
	  UINT32_MAX, "default max deliveries of new queues; 0 = unlimited" },
	{ "shutdown-timeout-ms", NUM(SET_U32, shutdown_timeout_ms), "10000",
	  "ms", 1, 3600000, "on SIGTERM, exit within this" },
	{ "idle-timeout-ms", NUM(SET_U32, idle_timeout_ms), "60000", "ms", 100,
	  86400000,
	  "a peer silent this long is pinged, and closed if it stays silent "
	  "as long again (one holding a lease: as long after its last lease "
	  "ended); one that has not said hello or stopped mid-frame, or "
	  "leaves its output unread this long, is closed" },
	{ "auth", NUM(SET_AUTH, auth), "", "on|off", 0, 0,
	  "who may connect: on, users who authenticate (SCRAM-SHA-256), from "
	  "any host, each with its permissions; unset, only clients on this "
	  "host (loopback addresses; others are refused with "
	  "PERMISSION_DENIED); off, every client that reaches the listen "
	  "address, unauthenticated" },
	{ "auth-bootstrap-file", STR(auth_bootstrap_file), "", "FILE", 0, 0,
	  "with auth on and no user yet: a file holding one line "
	  "NAME:PASSWORD, the first user, made admin of every queue; read "
	  "only while there is no user" },
	{ "cluster", STR(cluster), "", "NAME", 0, 0,
	  "cluster mode: join the cluster NAME ([A-Za-z0-9._-]) through etcd; "
	  "unset, a single broker on its own (needs no etcd)" },
	{ "broker-id", STR(broker_id), "", "ID", 0, 0,
	  "with cluster: this broker's id, unique in the cluster and the "
	  "same across restarts ([A-Za-z0-9._-], up to 63); default: the "
	  "host name" },
	{ "advertise", STR(advertise), "", "HOST:PORT", 0, 0,
	  "with cluster: the address clients reach this broker at; default: "
	  "the listen address, which must then not be a wildcard" },
	{ "etcd", STR(etcd), "", "URL[,URL...]", 0, 0,
	  "with cluster: etcd's client URLs (http:// or https://), tried in "
	  "turn" },
	{ "etcd-user", STR(etcd_user), "", "NAME", 0, 0,
	  "with cluster: the etcd user (with etcd-password-file), when etcd's "
	  "auth is on" },
	{ "etcd-password-file", STR(etcd_password_file), "", "FILE", 0, 0,
	  "a file holding the etcd user's password on one line" },
	{ "etcd-ca", STR(etcd_ca), "", "FILE", 0, 0,
	  "CAs (PEM) etcd's certificate must chain to, for https:// URLs "
	  "(default: the system's)" },
	{ "cluster-lease-ms", NUM(SET_U32, cluster_lease_ms), "10000", "ms",
	  2000, 600000,
	  "with cluster: how long this broker stays a member (and the "
	  "controller) after it stops answering; renewed every third of it" },
	{ "log-level", NUM(SET_LOG_LEVEL, log_level), "info",
	  "debug|info|warn|error", 0, 0, "least severe log line written" },
	{ "log-format", NUM(SET_LOG_FORMAT, is_log_json), "text", "text|json",
	  0, 0, "log lines as text, or as JSON objects (one per line)" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct setting *
setting_find(const char *name, size_t len)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strlen(settings[i].name) == len &&
		    memcmp(settings[i].name, name, len) == 0)
			return &settings[i];
	return NULL;
}

static int
parse_u64(const char *v, int allow_suffix, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0)
		return -1;
	if (allow_suffix && *end != '\0' && end[1] == '\0') {
		int shift = 0;

		switch (*end) {
		case 'K':
		case 'k': shift = 10; break;
		case 'M':
		case 'm': shift = 20; break;
		case 'G':
		case 'g': shift = 30; break;
		case 'T':
		case 't': shift = 40; break;
		default: return -1;
		}
		if (x > (UINT64_MAX >> shift))
			return -1;
		x <<= shift;
		end++;
	}
	if (*end != '\0')
		return -1;
	*out = x;
	return 0;
}

/* Parses v into the field of s; on failure writes why into err. */
static int
setting_apply(struct config *cfg, const struct setting *s, const char *v,
	      char *err, size_t errlen)
{
	char *field = (char *)cfg + s->offset;
	uint64_t x;
	int lv;

	switch (s->type) {
	case SET_STRING:
		if (strlen(v) >= s->size) {
			set_err(err, errlen, "%s: value too long", s->name);
			return -1;
		}
		memcpy(field, v, strlen(v) + 1);
		return 0;
	case SET_SYNC:
		if (strcmp(v, "always") == 0)
			*(int *)field = CONFIG_SYNC_ALWAYS;
		else if (strcmp(v, "interval") == 0)
			*(int *)field = CONFIG_SYNC_INTERVAL;
		else if (strcmp(v, "never") == 0)
			*(int *)field = CONFIG_SYNC_NEVER;
		else
			goto bad;
		return 0;
	case SET_AUTH:
		if (v[0] == '\0')
			*(int *)field = CONFIG_AUTH_LOOPBACK;
		else if (strcmp(v, "on") == 0)
			*(int *)field = CONFIG_AUTH_ON;
		else if (strcmp(v, "off") == 0)
			*(int *)field = CONFIG_AUTH_OFF;
		else
			goto bad;
		return 0;
	case SET_ON_OFF:
		if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			goto bad;
		*(int *)field = strcmp(v, "on") == 0;
		return 0;
	case SET_TLS_CLIENT_AUTH:
		if (strcmp(v, "none") == 0)
			*(int *)field = CONFIG_TLS_CLIENT_AUTH_NONE;
		else if (strcmp(v, "optional") == 0)
			*(int *)field = CONFIG_TLS_CLIENT_AUTH_OPTIONAL;
		else if (strcmp(v, "require") == 0)
			*(int *)field = CONFIG_TLS_CLIENT_AUTH_REQUIRE;
		else
			goto bad;
		return 0;
	case SET_TLS_USER_FROM:
		if (strcmp(v, "cn") != 0 && strcmp(v, "san") != 0)
			goto bad;
		*(int *)field = strcmp(v, "san") == 0;
		return 0;
	case SET_LOG_LEVEL:
		lv = log_level_parse(v);
		if (lv < 0)
			goto bad;
		*(int *)field = lv;
		return 0;
	case SET_LOG_FORMAT:
		if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
			goto bad;
		*(int *)field = strcmp(v, "json") == 0;
		return 0;
	case SET_U32:
	case SET_U64:
	case SET_BYTES:
	case SET_BYTES32:
		if (parse_u64(v, s->type == SET_BYTES || s->type == SET_BYTES32,
			      &x) < 0)
			goto bad;
		if (x < s->min || x > s->max) {
			set_err(err, errlen,
				"%s: %s is out of range (%llu to %llu)",
				s->name, v, (unsigned long long)s->min,
				(unsigned long long)s->max);
			return -1;
		}
		if (s->type == SET_U32 || s->type == SET_BYTES32)
			*(uint32_t *)field = (uint32_t)x;
		else
			*(uint64_t *)field = x;
		return 0;
	}
bad:
	set_err(err, errlen, "%s: invalid value '%s' (expected %s)", s->name, v,
		s->unit);
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Longest config line, in bytes before its newline: 2 KiB. */
#define CONFIG_LINE_MAX 2048

static int
config_read_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char line[CONFIG_LINE_MAX + 2]; /* and the newline and the NUL */
	FILE *f = fopen(path, "r");
	int lineno = 0;

	if (f == NULL) {
		set_err(err, errlen, "config %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#');
		char *eq, *key, *val;
		const struct setting *s;
		char why[512];

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			set_err(err, errlen, "config %s:%d: line over %d bytes",
				path, lineno, CONFIG_LINE_MAX);
			goto fail;
		}
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			set_err(err, errlen,
				"config %s:%d: expected 'key = value'", path,
				lineno);
			goto fail;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		s = setting_find(key, strlen(key));
		if (s == NULL || strcmp(s->name, "config") == 0) {
			set_err(err, errlen, "config %s:%d: unknown key '%s'",
				path, lineno, key);
			goto fail;
		}
		if (setting_apply(cfg, s, val, why, sizeof(why)) < 0) {
			set_err(err, errlen, "config %s:%d: %s", path, lineno,
				why);
			goto fail;
		}
	}
	/* A directory opens, and fails on the first read (EISDIR). */
	if (ferror(f)) {
		set_err(err, errlen, "config %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

void
config_usage(void *file)
{
	FILE *f = file;

	fprintf(f, "usage: ringmqd [--FLAG VALUE]...\n\n"
		   "ringmq broker. Every flag but --config is also a config "
		   "file key.\n\n");
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];

		fprintf(f, "  --%s %s\n      %s", s->name, s->unit, s->help);
		if (s->def[0] != '\0')
			fprintf(f, " (default %s)", s->def);
		fputc('\n', f);
	}
	fprintf(f, "  --help\n      this text\n  --version\n      print the "
		   "version\n");
}

/* Looks up argv[i] as a flag; sets *val to its value (inline after '=' or
 * the next argument). @return the setting or NULL with err set. */
static const struct setting *
flag_parse(int argc, char **argv, int *i, const char **val, char *err,
	   size_t errlen)
{
	const char *a = argv[*i];
	const char *eq;
	const struct setting *s;

	if (strncmp(a, "--", 2) != 0) {
		set_err(err, errlen, "unexpected argument '%s'", a);
		return NULL;
	}
	a += 2;
	eq = strchr(a, '=');
	s = setting_find(a, eq ? (size_t)(eq - a) : strlen(a));
	if (s == NULL) {
		set_err(err, errlen, "unknown flag '%s'", argv[*i]);
		return NULL;
	}
	if (eq) {
		*val = eq + 1;
	} else if (*i + 1 < argc) {
		*val = argv[++*i];
	} else {
		set_err(err, errlen, "flag --%s needs a value", s->name);
		return NULL;
	}
	return s;
}

/* Reads the secret of setting key from file into out (size bytes): one
 * line of printable characters (a trailing newline is dropped), at least
 * min of them, spaces only when is_space_ok. */
static int
config_read_secret(const char *key, const char *file, char *out, size_t size,
		   size_t min, int is_space_ok, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	/* Room for the longest secret, its line end, and one byte more that
	 * tells a longer file. */
	char t[1024 + 3];
	size_t n;

	if (f == NULL) {
		set_err(err, errlen, "%s: %s: %s", key, file, strerror(errno));
		return -1;
	}
	n = fread(t, 1, size + 2 < sizeof(t) ? size + 2 : sizeof(t), f);
	fclose(f);
	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	if (n < min || n >= size) {
		set_err(err, errlen,
			"%s: %s: expected one line of %zu to %zu characters",
			key, file, min, size - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (t[i] < ' ' || t[i] > '~' || (t[i] == ' ' && !is_space_ok)) {
			set_err(err, errlen,
				"%s: %s: expected printable characters%s", key,
				file, is_space_ok ? "" : ", without spaces");
			return -1;
		}
	memcpy(out, t, n);
	out[n] = '\0';
	explicit_bzero(t, sizeof(t));
	return 0;
}

/* The TLS settings make sense together. */
static int
config_check_tls(const struct config *cfg, char *err, size_t errlen)
{
	char host[256];
	uint16_t port;

	if (strcmp(cfg->listen, "off") == 0 && cfg->tls_listen[0] == '\0') {
		set_err(err, errlen,
			"listen: off needs tls-listen (the broker would accept "
			"no client)");
		return -1;
	}
	if (cfg->is_http_tls && strcmp(cfg->http, "off") == 0) {
		set_err(err, errlen, "http-tls: on needs http");
		return -1;
	}
	if (cfg->is_http_tls &&
	    (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')) {
		set_err(err, errlen, "http-tls needs tls-cert and tls-key");
		return -1;
	}
	if (cfg->tls_listen[0] == '\0') {
		if (cfg->tls_ca[0] != '\0' ||
		    cfg->tls_client_auth != CONFIG_TLS_CLIENT_AUTH_NONE) {
			set_err(err, errlen,
				"tls-ca and tls-client-auth need tls-listen");
			return -1;
		}
		if (!cfg->is_http_tls &&
		    (cfg->tls_cert[0] != '\0' || cfg->tls_key[0] != '\0')) {
			set_err(err, errlen,
				"tls-cert and tls-key need tls-listen or "
				"http-tls");
			return -1;
		}
		return 0;
	}
	if (config_split_hostport(cfg->tls_listen, host, sizeof(host), &port) <
	    0) {
		set_err(err, errlen, "tls-listen: expected HOST:PORT, got '%s'",
			cfg->tls_listen);
		return -1;
	}
	if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
		set_err(err, errlen, "tls-listen needs tls-cert and tls-key");
		return -1;
	}
	if (cfg->tls_client_auth != CONFIG_TLS_CLIENT_AUTH_NONE &&
	    cfg->tls_ca[0] == '\0') {
		set_err(err, errlen,
			"tls-client-auth %s needs tls-ca (the CAs that client "
			"certificates must chain to)",
			cfg->tls_client_auth == CONFIG_TLS_CLIENT_AUTH_REQUIRE
				? "require"
				: "optional");
		return -1;
	}
	if (strcmp(cfg->listen, "off") != 0 &&
	    strcmp(cfg->listen, cfg->tls_listen) == 0 && port != 0) {
		set_err(err, errlen,
			"listen and tls-listen must be different addresses");
		return -1;
	}
	return 0;
}

int
config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	const char *val;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NSETTINGS; i++)
		if (setting_apply(cfg, &settings[i], settings[i].def, err,
				  errlen) < 0)
			return -1;

	/* First pass: --help, --version, --config and syntax. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			config_usage(stdout);
			return CONFIG_EXIT;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("ringmqd %s\n", RINGMQ_VERSION);
			return CONFIG_EXIT;
		}
		const struct setting *s =
			flag_parse(argc, argv, &i, &val, err, errlen);
		if (s == NULL)
			return -1;
		if (strcmp(s->name, "config") == 0 &&
		    setting_apply(cfg, s, val, err, errlen) < 0)
			return -1;
	}
	if (cfg->config_file[0] != '\0' &&
	    config_read_file(cfg, cfg->config_file, err, errlen) < 0)
		return -1;
	for (int i = 1; i < argc; i++) {
		const struct setting *s =
			flag_parse(argc, argv, &i, &val, err, errlen);
		if (s == NULL || setting_apply(cfg, s, val, err, errlen) < 0)
			return -1;
	}
	if (cfg->max_message_bytes > cfg->max_frame_bytes - 1024) {
		set_err(err, errlen,
			"max-message-bytes must be at least 1 KiB below "
			"max-frame-bytes");
		return -1;
	}
	char host[256];
	uint16_t port;
	if (strcmp(cfg->http, "off") != 0 &&
	    config_split_hostport(cfg->http, host, sizeof(host), &port) < 0) {
		set_err(err, errlen,
			"http: expected HOST:PORT or off, got '%s'", cfg->http);
		return -1;
	}
	if (strcmp(cfg->listen, "off") != 0 &&
	    config_split_hostport(cfg->listen, host, sizeof(host), &port) < 0) {
		set_err(err, errlen,
			"listen: expected HOST:PORT or off, got '%s'",
			cfg->listen);
		return -1;
	}
	if (config_check_tls(cfg, err, errlen) < 0)
		return -1;
	if (cfg->backup_dir[0] != '\0' && cfg->backup_dir[0] != '/') {
		set_err(err, errlen,
			"backup-dir: expected an absolute path, "
			"got '%s'",
			cfg->backup_dir);
		return -1;
	}
	if (cfg->http_token_file[0] != '\0' &&
	    config_read_secret("http-token-file", cfg->http_token_file,
			       cfg->http_token, sizeof(cfg->http_token), 16, 0,
			       err, errlen) < 0)
		return -1;
	if (cfg->cluster[0] == '\0' &&
	    (cfg->etcd[0] != '\0' || cfg->broker_id[0] != '\0' ||
	     cfg->advertise[0] != '\0')) {
		set_err(err, errlen,
			"etcd, broker-id and advertise need cluster");
		return -1;
	}
	if (cfg->cluster[0] != '\0' && cfg->etcd[0] == '\0') {
		set_err(err, errlen, "cluster needs etcd (its client URLs)");
		return -1;
	}
	if ((cfg->etcd_user[0] != '\0') !=
	    (cfg->etcd_password_file[0] != '\0')) {
		set_err(err, errlen,
			"etcd-user and etcd-password-file go together");
		return -1;
	}
	if (cfg->etcd_password_file[0] != '\0' &&
	    config_read_secret("etcd-password-file", cfg->etcd_password_file,
			       cfg->etcd_password, sizeof(cfg->etcd_password),
			       1, 1, err, errlen) < 0)
		return -1;
	return CONFIG_OK;
}

int
config_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;
	uint64_t p;

	if (colon == NULL || parse_u64(colon + 1, 0, &p) < 0 || p > 65535)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}
