/*
 * ringmq.c: the ringmq command-line tool: its two tables and the one
 * runner every command goes through.
 *
 * Flags are rows of one table: their name, whether they take a value, and
 * either the member of struct cli they set or a handler that checks and
 * stores the value (with what it needs: a range, the words for an error).
 * getopt_long reads argv through opt.h, which keeps the syntax exact (no
 * abbreviations, "--flag=value" and "--flag value" alike, options before
 * or after the command, "--" ends them).
 *
 * Commands are rows of another table: their words, positionals, the flags
 * they take (a flag that exists but is not taken is a usage error like an
 * unknown one), their own rules, their help text (cli_help.c) and their
 * handler (cli_queue.c, cli_group.c, cli_publish.c, cli_consume.c,
 * cli_message.c, cli_admin.c, cli_top.c).
 *
 * The runner parses, checks everything decidable without the broker
 * (exit 2), builds the options the library checks, connects, calls the
 * handler, flushes its output, frees, and turns the status into the exit
 * code. publish, consume and top keep the connection to themselves: they
 * print something for every input, or run until stopped.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

enum flag_id {
	F_HELP,
	F_SERVER,
	F_JSON,
	F_REQUEST_TIMEOUT,
	F_CONNECT_TIMEOUT,
	F_TLS,
	F_TLS_CA,
	F_TLS_CERT,
	F_TLS_KEY,
	F_TLS_SERVER_NAME,
	F_SETTING, /* a queue setting, passed on by name */
	F_KEY,
	F_HEADER,
	F_FILE,
	F_DELAY,
	F_DELIVER_AT,
	F_DEDUP_ID,
	F_GROUP,
	F_COUNT,
	F_TIMEOUT,
	F_FOLLOW,
	F_ACK,
	F_NACK,
	F_NACK_DELAY,
	F_PARTITION,
	F_FROM,
	F_TO,
	F_INTERVAL,
	F_USER,
	F_PASSWORD_FILE,
	F_NEW_PASSWORD_FILE,
	F_COUNT_OF_FLAGS, /* not a flag: how many there are */
};

/* A flag: its name and how its value is read. */
struct flag_def {
	struct opt_def opt; /* name, has_value, the member it sets */
	enum flag_id id;    /* how commands name it in their flags */
	/* Checks the value and stores what opt_store does not; -1 after
	 * printing a usage error. Then opt_store sets the member opt names,
	 * if any. */
	int (*apply)(struct cli *cli, const struct flag_def *f,
		     const char *value);
	uint64_t min, max; /* numbers, lengths: the range accepted */
	const char *want;  /* numbers: the range for errors; NULL: "a number
			      from MIN to MAX" */
};

/* Bits of the flags a command takes: 64 of them, more than the 31 in
 * use, and checked at build time so that the next one cannot shift past
 * the end. */
#define TAKES(id) ((uint64_t)1 << (id))
_Static_assert(F_COUNT_OF_FLAGS <= 64, "flag ids must fit in 64 bits");
#define COMMON                                                                 \
	(TAKES(F_HELP) | TAKES(F_SERVER) | TAKES(F_JSON) |                     \
	 TAKES(F_REQUEST_TIMEOUT) | TAKES(F_CONNECT_TIMEOUT) | TAKES(F_USER) | \
	 TAKES(F_PASSWORD_FILE) | TAKES(F_TLS) | TAKES(F_TLS_CA) |             \
	 TAKES(F_TLS_CERT) | TAKES(F_TLS_KEY) | TAKES(F_TLS_SERVER_NAME))

/* Positionals a command takes after its words. */
enum arg_kind {
	A_NONE,	    /* no positional */
	A_QUEUE,    /* QUEUE */
	A_DATA,	    /* QUEUE [DATA...] */
	A_GROUP,    /* QUEUE GROUP */
	A_POSITION, /* QUEUE PARTITION OFFSET */
	A_DIR,	    /* DIR: an absolute path on the broker's host */
	A_USER,	    /* USER */
	A_USER_OPT, /* [USER] */
	A_PATTERN,  /* USER PATTERN */
	A_ACL,	    /* USER PATTERN PERMS */
	A_LIMITS,   /* USER LIMIT=VALUE... */
};

/* A command. */
struct cmd_def {
	const char *word1;
	const char *word2; /* NULL: a one-word command */
	enum arg_kind args;
	uint64_t flags;	  /* TAKES() of each flag it accepts */
	const char *help; /* cli_help.c */
	/* Its own rules over the parsed flags (after the positionals are
	 * checked); -1 after a usage error. NULL: none. */
	int (*check)(const struct cli *cli);
	/* Over the runner's connection: the request and its output. */
	int (*call)(const struct cli *cli, ringmq_client *c);
	/* Or the whole command, connection included. */
	int (*run)(const struct cli *cli);
};

/* A word that only groups subcommands (help only on its own). */
struct cmd_group {
	const char *word;
	const char *subs; /* for the error when the subcommand is missing */
	const char *help;
};

/*
 * Longest delay accepted, ms: the broker adds a delay to its clock in 64
 * bits, so a delay up to INT64_MAX cannot wrap around (and is longer than
 * anyone waits).
 */
#define MAX_DELAY_MS INT64_MAX

/* Bounds of top --interval-ms: faster than 10 ms only loads the broker,
 * slower than an hour is not watching. */
#define MIN_INTERVAL_MS 10
#define MAX_INTERVAL_MS 3600000

/* ------------------------------------------------------------------ flags */

/* Strict decimal in [min, max]; 0 or -1. */
static int
parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * The value as a number in f's range, and *has set when has is not NULL;
 * -1 after a usage error.
 */
static int
flag_number(const struct flag_def *f, const char *value, uint64_t *out,
	    int *has)
{
	char range[64];

	if (parse_number(value, f->min, f->max, out) == 0) {
		if (has != NULL)
			*has = 1;
		return 0;
	}
	snprintf(range, sizeof(range), "a number from %llu to %llu",
		 (unsigned long long)f->min, (unsigned long long)f->max);
	cli_error(RINGMQ_USAGE, "--%s must be %s, not '%s'", f->opt.name,
		  f->want != NULL ? f->want : range, value);
	return -1;
}

/* flag_number for an int member. */
static int
flag_int(const struct flag_def *f, const char *value, int *out, int *has)
{
	uint64_t v;
	int rc = flag_number(f, value, &v, has);

	if (rc == 0)
		*out = (int)v; /* f's range fits */
	return rc;
}

static int
set_delay(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_number(f, value, &cli->delay_ms, &cli->has_delay);
}

static int
set_nack_delay(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_number(f, value, &cli->nack_delay_ms, &cli->has_nack_delay);
}

static int
set_count(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_number(f, value, &cli->count, NULL);
}

static int
set_interval(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_int(f, value, &cli->interval_ms, NULL);
}

static int
set_timeout(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_int(f, value, &cli->timeout_ms, &cli->has_timeout);
}

static int
set_partition(struct cli *cli, const struct flag_def *f, const char *value)
{
	uint64_t v;

	if (flag_number(f, value, &v, &cli->has_partition) < 0)
		return -1;
	cli->partition = (uint32_t)v;
	return 0;
}

/* --key, --dedup-id: a length in bytes in f's range. */
static int
check_bytes(struct cli *cli, const struct flag_def *f, const char *value)
{
	size_t len = strlen(value);

	(void)cli;
	if (len >= f->min && len <= f->max)
		return 0;
	if (f->min == 0)
		cli_error(RINGMQ_USAGE, "--%s must be at most %llu bytes",
			  f->opt.name, (unsigned long long)f->max);
	else
		cli_error(RINGMQ_USAGE, "--%s must be %llu to %llu bytes",
			  f->opt.name, (unsigned long long)f->min,
			  (unsigned long long)f->max);
	return -1;
}

static int
set_deliver_at(struct cli *cli, const struct flag_def *f, const char *value)
{
	(void)f;
	if (cli_parse_rfc3339(value, &cli->deliver_at_ms) < 0) {
		cli_error(RINGMQ_USAGE,
			  "--deliver-at must be an RFC 3339 time from 1970 on, "
			  "such as 2026-12-01T10:00:00Z or "
			  "2026-12-01T12:00:00.5+02:00, not '%s'",
			  value);
		return -1;
	}
	cli->has_deliver_at = 1;
	return 0;
}

/* --from, --to: where a group starts. */
static int
set_start(struct cli *cli, const struct flag_def *f, const char *value)
{
	if (strcmp(value, "earliest") == 0) {
		cli->start = RINGMQ_START_EARLIEST;
	} else if (strcmp(value, "latest") == 0) {
		cli->start = RINGMQ_START_LATEST;
	} else {
		cli_error(RINGMQ_USAGE,
			  "--%s must be earliest or latest, not '%s'",
			  f->opt.name, value);
		return -1;
	}
	cli->has_start = 1;
	return 0;
}

/* A queue setting, checked by the library when the command runs. Later
 * occurrences override: the library reads them in order, the last one
 * stays. */
static int
set_setting(struct cli *cli, const struct flag_def *f, const char *value)
{
	if (cli->nsettings == CLI_MAX_SETTINGS) {
		cli_error(RINGMQ_USAGE, "too many settings");
		return -1;
	}
	if (strcmp(f->opt.name, "partitions") == 0)
		cli->has_partitions = 1;
	cli->settings[cli->nsettings].name = f->opt.name;
	cli->settings[cli->nsettings++].value = value;
	return 0;
}

/* --server HOST:PORT[,...], which may come more than once: the
 * addresses add up, in order, into one list (libringmq tries them in
 * turn). */
static int
add_server(struct cli *cli, const struct flag_def *f, const char *value)
{
	size_t used = cli->nservers ? strlen(cli->server_list) : 0;
	int n;

	(void)f;
	n = snprintf(cli->server_list + used, sizeof(cli->server_list) - used,
		     "%s%s", used ? "," : "", value);
	if (n < 0 || (size_t)n >= sizeof(cli->server_list) - used) {
		cli_error(RINGMQ_USAGE, "--server: too many addresses");
		return -1;
	}
	cli->nservers++;
	cli->server = cli->server_list;
	return 0;
}

/* --header NAME=VALUE. */
static int
set_header(struct cli *cli, const struct flag_def *f, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *name;

	(void)f;
	if (eq == NULL || eq == arg) {
		cli_error(RINGMQ_USAGE,
			  "--header must be NAME=VALUE with a NAME, not '%s'",
			  arg);
		return -1;
	}
	if ((size_t)(eq - arg) >= 7 && strncmp(arg, "ringmq-", 7) == 0) {
		cli_error(RINGMQ_USAGE,
			  "--header %.*s: the prefix ringmq- is reserved for "
			  "the broker",
			  (int)(eq - arg), arg);
		return -1;
	}
	for (size_t i = 0; i < cli->nheaders; i++)
		if (strlen(cli->headers[i].name) == (size_t)(eq - arg) &&
		    strncmp(cli->headers[i].name, arg, (size_t)(eq - arg)) ==
			    0) {
			cli_error(RINGMQ_USAGE,
				  "--header %.*s given twice (headers are a "
				  "map)",
				  (int)(eq - arg), arg);
			return -1;
		}
	name = strndup(arg, (size_t)(eq - arg));
	if (name == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return -1;
	}
	cli->headers[cli->nheaders].name = name;
	cli->headers[cli->nheaders++].value = eq + 1;
	return 0;
}

/* A row's name, whether it takes a value, id and handler. */
#define FLAG(name_, has_value_, id_, apply_)                          \
	.opt = { .name = name_, .has_value = has_value_ }, .id = id_, \
	.apply = apply_
/* A row that sets a member of struct cli: to its value, or to 1. */
#define MEMBER(name_, has_value_, store_, member) \
	.opt = { name_, has_value_, store_, offsetof(struct cli, member) }
#define STRING(name, id_, member)                                    \
	{                                                            \
		MEMBER(name, 1, OPT_STORE_STRING, member), .id = id_ \
	}
#define SWITCH(name, id_, member)                                  \
	{                                                          \
		MEMBER(name, 0, OPT_STORE_TRUE, member), .id = id_ \
	}
/* A string of lo to hi bytes. */
#define BYTES(name, id_, member, lo, hi)                                      \
	{                                                                     \
		MEMBER(name, 1, OPT_STORE_STRING, member),                    \
			.id = id_, .apply = check_bytes, .min = lo, .max = hi \
	}
#define SETTING(name)                                 \
	{                                             \
		FLAG(name, 1, F_SETTING, set_setting) \
	}
#define DELAY_MS .max = MAX_DELAY_MS, .want = "a number of milliseconds"

static const struct flag_def flag_defs[] = {
	{ FLAG("help", 0, F_HELP, NULL) },
	{ FLAG("server", 1, F_SERVER, add_server) },
	SWITCH("json", F_JSON, is_json),
	STRING("request-timeout-ms", F_REQUEST_TIMEOUT, request_timeout_ms),
	STRING("connect-timeout-ms", F_CONNECT_TIMEOUT, connect_timeout_ms),
	SWITCH("tls", F_TLS, is_tls),
	/* --ca and --cert are the short spellings; the key's is --tls-key
	 * because --key is the message key of publish. */
	STRING("ca", F_TLS_CA, tls_ca),
	STRING("tls-ca", F_TLS_CA, tls_ca),
	STRING("cert", F_TLS_CERT, tls_cert),
	STRING("tls-cert", F_TLS_CERT, tls_cert),
	STRING("tls-key", F_TLS_KEY, tls_key),
	STRING("tls-server-name", F_TLS_SERVER_NAME, tls_server_name),
	/* queue set refuses --partitions itself, with a clearer message */
	SETTING("partitions"),
	SETTING("lease-ms"),
	SETTING("max-lease-ms"),
	SETTING("max-deliveries"),
	SETTING("dead-letter"),
	SETTING("dead-letter-queue"), /* first spelling */
	SETTING("max-depth"),
	SETTING("max-bytes"),
	SETTING("dedup-window-ms"),
	BYTES("key", F_KEY, key, 0, CLI_MAX_KEY_BYTES),
	{ FLAG("header", 1, F_HEADER, set_header) },
	STRING("file", F_FILE, file),
	{ FLAG("delay-ms", 1, F_DELAY, set_delay), DELAY_MS },
	{ FLAG("deliver-at", 1, F_DELIVER_AT, set_deliver_at) },
	BYTES("dedup-id", F_DEDUP_ID, dedup_id, 1, CLI_MAX_DEDUP_ID_BYTES),
	STRING("group", F_GROUP, group),
	{ FLAG("count", 1, F_COUNT, set_count), .min = 1, .max = INT64_MAX,
	  .want = "a number of at least 1" },
	{ FLAG("timeout-ms", 1, F_TIMEOUT, set_timeout), .min = 1,
	  .max = INT_MAX },
	SWITCH("follow", F_FOLLOW, is_follow),
	SWITCH("ack", F_ACK, is_ack),
	SWITCH("nack", F_NACK, is_nack),
	{ FLAG("nack-delay-ms", 1, F_NACK_DELAY, set_nack_delay), DELAY_MS },
	{ FLAG("partition", 1, F_PARTITION, set_partition),
	  .max = CLI_MAX_PARTITIONS - 1 },
	{ FLAG("from", 1, F_FROM, set_start) },
	{ FLAG("to", 1, F_TO, set_start) },
	{ FLAG("interval-ms", 1, F_INTERVAL, set_interval),
	  .min = MIN_INTERVAL_MS, .max = MAX_INTERVAL_MS },
	STRING("user", F_USER, user),
	STRING("password-file", F_PASSWORD_FILE, password_file),
	STRING("new-password-file", F_NEW_PASSWORD_FILE, new_password_file),
};

#define NFLAGS (sizeof(flag_defs) / sizeof(flag_defs[0]))

/* --------------------------------------------------------- command rules */

/* "bad group name" unless group follows the name rule; -1 after it. */
static int
check_group_name(const char *group)
{
	if (cli_name_is_valid(group))
		return 0;
	cli_error(RINGMQ_USAGE,
		  "bad group name '%s' (want "
		  "[A-Za-z0-9][A-Za-z0-9._-]{0,195})",
		  group);
	return -1;
}

/* queue create, set: a queue cannot be its own dead-letter queue. */
static int
check_dead_letter(const struct cli *cli, const char *label)
{
	const char *dlq = NULL; /* the last one given counts */

	for (size_t i = 0; i < cli->nsettings; i++)
		if (strncmp(cli->settings[i].name, "dead-letter", 11) == 0)
			dlq = cli->settings[i].value;
	if (dlq == NULL || strcmp(dlq, cli->args[0]) != 0)
		return 0;
	cli_error(RINGMQ_USAGE,
		  "%s: queue %s cannot be its own dead-letter queue", label,
		  cli->args[0]);
	return -1;
}

static int
check_queue_create(const struct cli *cli)
{
	return check_dead_letter(cli, "queue create");
}

static int
check_queue_set(const struct cli *cli)
{
	if (cli->has_partitions) {
		cli_error(RINGMQ_USAGE, "queue set: --partitions cannot be "
					"changed once the queue exists");
		return -1;
	}
	if (check_dead_letter(cli, "queue set") < 0)
		return -1;
	if (cli->nsettings == 0) {
		cli_error(RINGMQ_USAGE, "queue set: nothing to change (give "
					"at least one setting, see 'ringmq "
					"queue set --help')");
		return -1;
	}
	return 0;
}

static int
check_group_reset(const struct cli *cli)
{
	if (cli->has_start)
		return 0;
	cli_error(RINGMQ_USAGE, "group reset: missing --to earliest|latest");
	return -1;
}

static int
check_publish(const struct cli *cli)
{
	if (cli->has_delay && cli->has_deliver_at) {
		cli_error(RINGMQ_USAGE, "publish: --delay-ms and --deliver-at "
					"exclude each other");
		return -1;
	}
	if (cli->file != NULL && cli->nargs > 1) {
		cli_error(RINGMQ_USAGE, "publish: --file and DATA arguments "
					"exclude each other");
		return -1;
	}
	return 0;
}

static int
check_consume(const struct cli *cli)
{
	if (cli->group == NULL) {
		cli_error(RINGMQ_USAGE, "consume: missing --group");
		return -1;
	}
	if (check_group_name(cli->group) < 0)
		return -1;
	if (cli->is_ack && cli->is_nack) {
		cli_error(RINGMQ_USAGE, "consume: --ack and --nack exclude "
					"each other");
		return -1;
	}
	if (cli->has_nack_delay && !cli->is_nack) {
		cli_error(RINGMQ_USAGE,
			  "consume: --nack-delay-ms needs --nack");
		return -1;
	}
	if (cli->is_follow && cli->has_timeout) {
		cli_error(RINGMQ_USAGE, "consume: --follow and --timeout-ms "
					"exclude each other");
		return -1;
	}
	return 0;
}

static int
check_dlq_redrive(const struct cli *cli)
{
	return cli->group != NULL ? check_group_name(cli->group) : 0;
}

static int
check_user_set(const struct cli *cli)
{
	for (size_t i = 1; i < cli->nargs; i++) {
		uint64_t v;

		if (cli_parse_limit(cli->args[i], NULL, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "user set: want LIMIT=VALUE with LIMIT one "
				  "of max-connections, publish-rate, "
				  "publish-bytes-rate, max-leases and VALUE a "
				  "number (0: no limit), not '%s'",
				  cli->args[i]);
			return -1;
		}
	}
	return 0;
}

static int
check_acl_set(const struct cli *cli)
{
	unsigned perms;

	if (cli_parse_perms(cli->args[2], &perms) == 0)
		return 0;
	cli_error(RINGMQ_USAGE,
		  "acl set: PERMS must be publish, consume, admin (joined "
		  "with commas) or all, not '%s'",
		  cli->args[2]);
	return -1;
}

/* --------------------------------------------------------------- commands */

static const struct cmd_def cmd_defs[] = {
	{ "queue", "create", A_QUEUE, COMMON | TAKES(F_SETTING),
	  cli_help_queue_create, check_queue_create, .call = cmd_queue_create },
	{ "queue", "set", A_QUEUE, COMMON | TAKES(F_SETTING),
	  cli_help_queue_set, check_queue_set, .call = cmd_queue_set },
	{ "queue", "delete", A_QUEUE, COMMON, cli_help_queue_delete, NULL,
	  .call = cmd_queue_delete },
	{ "queue", "list", A_NONE, COMMON, cli_help_queue_list, NULL,
	  .call = cmd_queue_list },
	{ "queue", "describe", A_QUEUE, COMMON, cli_help_queue_describe, NULL,
	  .call = cmd_queue_describe },
	{ "queue", "purge", A_QUEUE, COMMON, cli_help_queue_purge, NULL,
	  .call = cmd_queue_purge },
	{ "group", "create", A_GROUP, COMMON | TAKES(F_FROM),
	  cli_help_group_create, NULL, .call = cmd_group_create },
	{ "group", "delete", A_GROUP, COMMON, cli_help_group_delete, NULL,
	  .call = cmd_group_delete },
	{ "group", "list", A_QUEUE, COMMON, cli_help_group_list, NULL,
	  .call = cmd_group_list },
	{ "group", "describe", A_GROUP, COMMON, cli_help_group_describe, NULL,
	  .call = cmd_group_describe },
	{ "group", "reset", A_GROUP, COMMON | TAKES(F_TO), cli_help_group_reset,
	  check_group_reset, .call = cmd_group_reset },
	{ "publish", NULL, A_DATA,
	  COMMON | TAKES(F_KEY) | TAKES(F_HEADER) | TAKES(F_FILE) |
		  TAKES(F_DELAY) | TAKES(F_DELIVER_AT) | TAKES(F_DEDUP_ID),
	  cli_help_publish, check_publish, .run = cmd_publish },
	{ "consume", NULL, A_QUEUE,
	  COMMON | TAKES(F_GROUP) | TAKES(F_COUNT) | TAKES(F_TIMEOUT) |
		  TAKES(F_FOLLOW) | TAKES(F_ACK) | TAKES(F_NACK) |
		  TAKES(F_NACK_DELAY),
	  cli_help_consume, check_consume, .run = cmd_consume },
	{ "peek", NULL, A_QUEUE, COMMON | TAKES(F_COUNT) | TAKES(F_PARTITION),
	  cli_help_peek, NULL, .call = cmd_peek },
	{ "message", "show", A_POSITION, COMMON, cli_help_message_show, NULL,
	  .call = cmd_message_show },
	{ "message", "cancel", A_POSITION, COMMON, cli_help_message_cancel,
	  NULL, .call = cmd_message_cancel },
	{ "dlq", "list", A_QUEUE, COMMON | TAKES(F_COUNT), cli_help_dlq_list,
	  NULL, .call = cmd_dlq_list },
	{ "dlq", "redrive", A_QUEUE, COMMON | TAKES(F_GROUP) | TAKES(F_COUNT),
	  cli_help_dlq_redrive, check_dlq_redrive, .call = cmd_dlq_redrive },
	{ "stats", NULL, A_NONE, COMMON, cli_help_stats, NULL,
	  .call = cmd_stats },
	{ "ping", NULL, A_NONE, COMMON, cli_help_ping, NULL, .call = cmd_ping },
	{ "cluster", "status", A_NONE, COMMON, cli_help_cluster_status, NULL,
	  .call = cmd_cluster_status },
	{ "backup", NULL, A_DIR, COMMON, cli_help_backup, NULL,
	  .call = cmd_backup },
	{ "top", NULL, A_NONE, COMMON | TAKES(F_COUNT) | TAKES(F_INTERVAL),
	  cli_help_top, NULL, .run = cmd_top },
	{ "user", "add", A_USER, COMMON | TAKES(F_NEW_PASSWORD_FILE),
	  cli_help_user_add, NULL, .call = cmd_user_add },
	{ "user", "passwd", A_USER, COMMON | TAKES(F_NEW_PASSWORD_FILE),
	  cli_help_user_passwd, NULL, .call = cmd_user_passwd },
	{ "user", "delete", A_USER, COMMON, cli_help_user_delete, NULL,
	  .call = cmd_user_delete },
	{ "user", "list", A_NONE, COMMON, cli_help_user_list, NULL,
	  .call = cmd_user_list },
	{ "user", "set", A_LIMITS, COMMON, cli_help_user_set, check_user_set,
	  .call = cmd_user_set },
	{ "acl", "set", A_ACL, COMMON, cli_help_acl_set, check_acl_set,
	  .call = cmd_acl_set },
	{ "acl", "delete", A_PATTERN, COMMON, cli_help_acl_delete, NULL,
	  .call = cmd_acl_delete },
	{ "acl", "list", A_USER_OPT, COMMON, cli_help_acl_list, NULL,
	  .call = cmd_acl_list },
};

static const struct cmd_group cmd_groups[] = {
	{ "queue", "create, set, delete, list, describe, purge",
	  cli_help_queue },
	{ "group", "create, delete, list, describe, reset", cli_help_group },
	{ "message", "show, cancel", cli_help_message },
	{ "dlq", "list, redrive", cli_help_dlq },
	{ "user", "add, passwd, delete, list, set", cli_help_user },
	{ "acl", "set, delete, list", cli_help_acl },
	{ "cluster", "status", cli_help_cluster },
};

#define NCMDS	(sizeof(cmd_defs) / sizeof(cmd_defs[0]))
#define NGROUPS (sizeof(cmd_groups) / sizeof(cmd_groups[0]))

/* "queue create": the command's words, for error lines. */
static const char *
cmd_label(const struct cmd_def *d)
{
	static char label[64];

	snprintf(label, sizeof(label), "%s%s%s", d->word1, d->word2 ? " " : "",
		 d->word2 ? d->word2 : "");
	return label;
}

/*
 * Finds the command the positionals name. @return its row, with *wordsp
 * the words it took; or NULL after a usage error (printed unless quiet),
 * with *groupp the command group named, if any (for its help).
 */
static const struct cmd_def *
find_command(const char **pos, size_t npos, size_t *wordsp,
	     const struct cmd_group **groupp, int quiet)
{
	*groupp = NULL;
	if (npos == 0) {
		if (!quiet)
			cli_error(RINGMQ_USAGE, "missing command (try "
						"'ringmq --help')");
		return NULL;
	}
	for (size_t i = 0; i < NCMDS; i++) {
		const struct cmd_def *d = &cmd_defs[i];

		if (strcmp(pos[0], d->word1) != 0)
			continue;
		*wordsp = d->word2 == NULL ? 1 : 2;
		if (d->word2 == NULL ||
		    (npos >= 2 && strcmp(pos[1], d->word2) == 0))
			return d;
	}
	for (size_t i = 0; i < NGROUPS; i++) {
		if (strcmp(pos[0], cmd_groups[i].word) != 0)
			continue;
		*groupp = &cmd_groups[i];
		if (quiet)
			return NULL;
		if (npos < 2)
			cli_error(RINGMQ_USAGE, "missing %s subcommand (%s)",
				  pos[0], cmd_groups[i].subs);
		else
			cli_error(RINGMQ_USAGE, "unknown command '%s %s'",
				  pos[0], pos[1]);
		return NULL;
	}
	if (!quiet)
		cli_error(RINGMQ_USAGE, "unknown command '%s'", pos[0]);
	return NULL;
}

/* --help: the help of the command the positionals name, of its group, or
 * the main one; words that name no command are a usage error, as they
 * are without --help. @return the exit code. */
static int
print_help(const char **pos, size_t npos)
{
	const struct cmd_group *g;
	size_t words;
	const struct cmd_def *d = find_command(pos, npos, &words, &g, 1);

	if (d == NULL && npos > (g != NULL ? 1u : 0u)) {
		(void)find_command(pos, npos, &words, &g, 0); /* says why */
		return EXIT_USAGE;
	}
	fputs(d != NULL	  ? d->help
	      : g != NULL ? g->help
			  : cli_help_main,
	      stdout);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_REFUSED;
}

/* PARTITION and OFFSET of message show / cancel; -1 after an error. */
static int
check_position(const struct cmd_def *d, struct cli *cli)
{
	uint64_t v;

	if (parse_number(cli->args[1], 0, CLI_MAX_PARTITIONS - 1, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "%s: PARTITION must be a number from 0 to %d, not "
			  "'%s'",
			  cmd_label(d), CLI_MAX_PARTITIONS - 1, cli->args[1]);
		return -1;
	}
	cli->partition = (uint32_t)v;
	if (parse_number(cli->args[2], 0, UINT64_MAX, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "%s: OFFSET must be a number from 0 to %llu, not "
			  "'%s'",
			  cmd_label(d), (unsigned long long)UINT64_MAX,
			  cli->args[2]);
		return -1;
	}
	cli->offset = v;
	return 0;
}

/* Checks the positionals, then the command's own rules; -1 after an
 * error. */
static int
check_command(const struct cmd_def *d, struct cli *cli)
{
	static const char *const missing[][3] = {
		[A_QUEUE] = { "missing queue name" },
		[A_DATA] = { "missing queue name" },
		[A_GROUP] = { "missing queue name", "missing group name" },
		[A_POSITION] = { "missing queue name",
				 "missing PARTITION and OFFSET",
				 "missing OFFSET" },
		[A_DIR] = { "missing DIR (an absolute path on the broker's "
			    "host)" },
		[A_USER] = { "missing user name" },
		[A_PATTERN] = { "missing user name", "missing PATTERN" },
		[A_ACL] = { "missing user name", "missing PATTERN",
			    "missing PERMS (publish,consume,admin or all)" },
		[A_LIMITS] = { "missing user name",
			       "missing LIMIT=VALUE (max-connections, "
			       "publish-rate, publish-bytes-rate, max-leases)" },
	};
	static const size_t nwant[] = {
		[A_NONE] = 0,  [A_QUEUE] = 1,	 [A_DATA] = 1,
		[A_GROUP] = 2, [A_POSITION] = 3, [A_DIR] = 1,
		[A_USER] = 1,  [A_USER_OPT] = 1, [A_PATTERN] = 2,
		[A_ACL] = 3,   [A_LIMITS] = 2,
	};
	enum arg_kind kind = d->args;
	size_t want = nwant[kind];
	int is_user = kind == A_USER || kind == A_USER_OPT ||
		      kind == A_PATTERN || kind == A_ACL || kind == A_LIMITS;

	if (kind == A_USER_OPT && cli->nargs == 0)
		return d->check != NULL ? d->check(cli) : 0;
	if (cli->nargs < want) {
		cli_error(RINGMQ_USAGE, "%s: %s", cmd_label(d),
			  missing[kind][cli->nargs]);
		return -1;
	}
	if (kind != A_DATA && kind != A_LIMITS && cli->nargs > want) {
		cli_error(RINGMQ_USAGE, "%s: unexpected argument '%s'",
			  cmd_label(d), cli->args[want]);
		return -1;
	}
	if (kind == A_DIR && cli->args[0][0] != '/') {
		/* The broker writes the copy: a path relative to this
		 * shell's directory would mean nothing there. */
		cli_error(RINGMQ_USAGE,
			  "%s: DIR must be an absolute path on the broker's "
			  "host, not '%s'",
			  cmd_label(d), cli->args[0]);
		return -1;
	}
	if (is_user && !cli_user_name_is_valid(cli->args[0])) {
		cli_error(RINGMQ_USAGE,
			  "bad user name '%s' (want 1 to 128 characters of "
			  "[A-Za-z0-9._@-])",
			  cli->args[0]);
		return -1;
	}
	if ((kind == A_PATTERN || kind == A_ACL) &&
	    !cli_pattern_is_valid(cli->args[1])) {
		cli_error(RINGMQ_USAGE,
			  "bad pattern '%s' (want 1 to 200 characters of "
			  "queue names and '*')",
			  cli->args[1]);
		return -1;
	}
	if (want >= 1 && kind != A_DIR && !is_user &&
	    !cli_queue_name_is_valid(cli->args[0])) {
		cli_error(RINGMQ_USAGE,
			  "bad queue name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195}, optionally "
			  "followed by .dlq)",
			  cli->args[0]);
		return -1;
	}
	if (kind == A_GROUP && check_group_name(cli->args[1]) < 0)
		return -1;
	if (kind == A_POSITION && check_position(d, cli) < 0)
		return -1;
	return d->check != NULL ? d->check(cli) : 0;
}

/* ---------------------------------------------------------------- parsing */

/* One flag occurrence, in command-line order. */
struct flag_use {
	const struct flag_def *def;
	const char *value; /* borrowed; NULL for flags without value */
};

/* Reports what opt_next found wrong with argv[p->at]. */
static void
report_syntax(const struct opt_parser *p, enum opt_kind kind)
{
	const char *word = p->argv[p->at];

	if (kind == OPT_NEEDS_VALUE)
		cli_error(RINGMQ_USAGE, "--%s needs a value",
			  flag_defs[p->row].opt.name);
	else if (kind == OPT_NO_VALUE)
		cli_error(RINGMQ_USAGE, "--%s takes no value",
			  flag_defs[p->row].opt.name);
	else if (word[1] != '-')
		cli_error(RINGMQ_USAGE,
			  "unknown flag %s (use -- before data that starts "
			  "with '-')",
			  word);
	else
		cli_error(RINGMQ_USAGE, "unknown flag --%.*s",
			  (int)strcspn(word + 2, "="), word + 2);
}

/*
 * Splits argv into positionals and flag uses, in order. @return -1 to go
 * on, else the exit code (a usage error printed).
 */
static int
scan_args(int argc, char **argv, const char **pos, size_t *nposp,
	  struct flag_use *uses, size_t *nusesp)
{
	struct opt_parser p;
	enum opt_kind kind;

	if (opt_init(&p, argc, argv, &flag_defs[0].opt, NFLAGS,
		     sizeof(flag_defs[0]), 1) < 0) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return EXIT_REFUSED;
	}
	for (;;) {
		kind = opt_next(&p);
		if (kind == OPT_ARG) {
			pos[(*nposp)++] = p.value;
		} else if (kind == OPT_FLAG) {
			uses[*nusesp].def = &flag_defs[p.row];
			uses[(*nusesp)++].value = p.value;
		} else if (kind != OPT_DASHES) {
			break;
		}
	}
	if (kind != OPT_END)
		report_syntax(&p, kind);
	opt_fini(&p);
	return kind == OPT_END ? -1 : EXIT_USAGE;
}

/*
 * Parses argv into cli and checks everything decidable without the
 * broker. @return -1 to go on with *dp the command, else the exit code
 * (help printed, or a usage error).
 */
static int
parse_args(int argc, char **argv, struct cli *cli, const char **pos,
	   struct flag_use *uses, const struct cmd_def **dp)
{
	const struct cmd_group *g;
	const struct cmd_def *d;
	size_t npos = 0;
	size_t nuses = 0;
	size_t words;
	int rc = scan_args(argc, argv, pos, &npos, uses, &nuses);

	if (rc >= 0)
		return rc;
	for (size_t k = 0; k < nuses; k++)
		if (uses[k].def->id == F_HELP)
			return print_help(pos, npos);
	d = find_command(pos, npos, &words, &g, 0);
	if (d == NULL)
		return EXIT_USAGE;
	cli->args = pos + words;
	cli->nargs = npos - words;
	for (size_t k = 0; k < nuses; k++) {
		const struct flag_def *f = uses[k].def;

		if (!(d->flags & TAKES(f->id))) {
			cli_error(RINGMQ_USAGE,
				  "unknown flag --%s for '%s' (see 'ringmq "
				  "%s --help')",
				  f->opt.name, cmd_label(d), cmd_label(d));
			return EXIT_USAGE;
		}
		if (f->apply != NULL && f->apply(cli, f, uses[k].value) < 0)
			return EXIT_USAGE;
		opt_store(&f->opt, cli, uses[k].value);
	}
	if (check_command(d, cli) < 0)
		return EXIT_USAGE;
	*dp = d;
	return -1;
}

/* ----------------------------------------------------------------- runner */

/* The TLS flags make sense together; -1 after a usage error. */
static int
check_tls_flags(const struct cli *cli)
{
	if (!cli->is_tls &&
	    (cli->tls_ca != NULL || cli->tls_cert != NULL ||
	     cli->tls_key != NULL || cli->tls_server_name != NULL)) {
		cli_error(RINGMQ_USAGE, "--ca, --cert, --tls-key and "
					"--tls-server-name need --tls");
		return -1;
	}
	if ((cli->tls_cert == NULL) != (cli->tls_key == NULL)) {
		cli_error(RINGMQ_USAGE,
			  "--cert and --tls-key go together (a client "
			  "certificate and its key)");
		return -1;
	}
	return 0;
}

/* Sets option name to value unless value is NULL; rc passes through. */
static int
set_opt(struct cli *cli, int rc, const char *name, const char *value, char *err,
	size_t errlen)
{
	if (rc != RINGMQ_OK || value == NULL)
		return rc;
	return ringmq_opts_set(cli->opts, name, value, err, errlen);
}

/* Connection options from the command line; -1 after a usage error. */
static int
build_opts(struct cli *cli)
{
	char err[256];
	int rc;

	if (check_tls_flags(cli) < 0)
		return -1;
	cli->opts = ringmq_opts_new();
	if (cli->opts == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return -1;
	}
	rc = ringmq_opts_set(cli->opts, "server", cli->server, err,
			     sizeof(err));
	if (rc == RINGMQ_OK && cli->request_timeout_ms != NULL)
		rc = ringmq_opts_set(cli->opts, "request-timeout-ms",
				     cli->request_timeout_ms, err, sizeof(err));
	if (rc == RINGMQ_OK && cli->connect_timeout_ms != NULL)
		rc = ringmq_opts_set(cli->opts, "connect-timeout-ms",
				     cli->connect_timeout_ms, err, sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_opts_set(cli->opts, "client-name", "ringmq-cli",
				     err, sizeof(err));
	if (rc == RINGMQ_OK && cli->user != NULL)
		rc = ringmq_opts_set(cli->opts, "user", cli->user, err,
				     sizeof(err));
	if (rc == RINGMQ_OK && cli->password_file != NULL)
		rc = ringmq_opts_set(cli->opts, "password-file",
				     cli->password_file, err, sizeof(err));
	rc = set_opt(cli, rc, "tls", cli->is_tls ? "true" : NULL, err,
		     sizeof(err));
	rc = set_opt(cli, rc, "tls-ca", cli->tls_ca, err, sizeof(err));
	rc = set_opt(cli, rc, "tls-cert", cli->tls_cert, err, sizeof(err));
	rc = set_opt(cli, rc, "tls-key", cli->tls_key, err, sizeof(err));
	rc = set_opt(cli, rc, "tls-server-name", cli->tls_server_name, err,
		     sizeof(err));
	if (rc != RINGMQ_OK) {
		cli_error(rc, "%s", err);
		return -1;
	}
	return 0;
}

/*
 * The queue settings of queue create and set: the library checks names
 * and ranges, before connecting, so a bad one is a usage error.
 * @return the status (an error printed).
 */
static int
build_queue_opts(struct cli *cli)
{
	char err[256];
	int rc = RINGMQ_OK;

	cli->queue_opts = ringmq_queue_opts_new();
	if (cli->queue_opts == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return RINGMQ_INTERNAL;
	}
	for (size_t i = 0; i < cli->nsettings && rc == RINGMQ_OK; i++)
		rc = ringmq_queue_opts_set(
			cli->queue_opts, cli->settings[i].name,
			cli->settings[i].value, err, sizeof(err));
	if (rc != RINGMQ_OK)
		cli_error(rc, "%s", err);
	return rc;
}

/* Runs a checked command. @return the exit code. */
static int
run_command(const struct cmd_def *d, struct cli *cli)
{
	ringmq_client *c = NULL;
	int rc;

	if (build_opts(cli) < 0)
		return EXIT_USAGE;
	if (d->flags & TAKES(F_SETTING)) {
		rc = build_queue_opts(cli);
		if (rc != RINGMQ_OK)
			return cli_exit_code(rc);
	}
	/* Asked before connecting: a prompt must not hold a connection. */
	if ((d->flags & TAKES(F_NEW_PASSWORD_FILE)) &&
	    cli_read_new_password(cli) < 0)
		return EXIT_USAGE;
	if (d->run != NULL)
		return d->run(cli);
	rc = cli_connect(cli, &c);
	if (rc == RINGMQ_OK)
		rc = cli_finish_output(d->call(cli, c));
	ringmq_client_free(c);
	return cli_exit_code(rc);
}

int
main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	struct flag_use *uses = calloc((size_t)argc + 1, sizeof(*uses));
	const struct cmd_def *d = NULL;
	const char *env;
	int rc;

	cli.headers = calloc((size_t)argc + 1, sizeof(*cli.headers));
	if (pos == NULL || uses == NULL || cli.headers == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		rc = EXIT_REFUSED;
		goto out;
	}
	/* A closed standard output must be an error from fwrite (exit 1,
	 * "ringmq: IO: ..."), not a silent kill; the library never raises
	 * SIGPIPE itself. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		cli_error(RINGMQ_INTERNAL, "ignore SIGPIPE: %s",
			  strerror(errno));
		rc = EXIT_REFUSED;
		goto out;
	}
	env = getenv("RINGMQ_SERVER");
	cli.server = env != NULL && env[0] != '\0' ? env : DEFAULT_SERVER;
	cli.timeout_ms = 5000;
	cli.interval_ms = 1000;
	rc = parse_args(argc, argv, &cli, pos, uses, &d);
	if (rc < 0)
		rc = run_command(d, &cli);
out:
	ringmq_queue_opts_free(cli.queue_opts);
	ringmq_opts_free(cli.opts);
	if (cli.new_password != NULL) {
		explicit_bzero(cli.new_password, strlen(cli.new_password));
		free(cli.new_password);
	}
	for (size_t i = 0; i < cli.nheaders; i++)
		free((char *)cli.headers[i].name);
	free(cli.headers);
	free(pos);
	free(uses);
	return rc;
}
