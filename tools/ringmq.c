/*
 * ringmq.c: the ringmq command-line tool: command-line parsing and
 * dispatch to the commands (cli_queue.c, cli_group.c, cli_publish.c,
 * cli_consume.c, cli_message.c, cli_admin.c, cli_top.c); help texts are in
 * cli_help.c.
 *
 * Options may come before or after the command; "--" ends them. Flags are
 * rows of one table: their name, whether they take a value, the commands
 * they apply to, and a handler that checks and stores the value (with
 * what it needs: a field, a range). getopt_long reads argv through opt.h,
 * which keeps the syntax exact (no abbreviations, "--flag=value" and
 * "--flag value" alike). A flag that exists but does not apply to the
 * command is a usage error like an unknown one. Commands are rows of
 * another table: their words, positionals and entry point.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

/* Bits of the commands a flag applies to. */
#define ON(cmd)	   (1u << (cmd))
#define ON_ALL	   (~0u)
#define ON_POLICY  (ON(CMD_QUEUE_CREATE) | ON(CMD_QUEUE_SET))
#define ON_PUBLISH ON(CMD_PUBLISH)
#define ON_CONSUME ON(CMD_CONSUME)

enum flag_id {
	F_HELP,
	F_SERVER,
	F_JSON,
	F_REQUEST_TIMEOUT,
	F_CONNECT_TIMEOUT,
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
};

/* A flag: its name, what it applies to, and how its value is read. */
struct flag_def {
	struct opt_def opt; /* name, has_value */
	enum flag_id id;
	unsigned cmds;
	/* Stores the value in cli; -1 after printing a usage error. NULL:
	 * nothing to store (--help). */
	int (*apply)(struct cli *cli, const struct flag_def *f,
		     const char *value);
	size_t field;	   /* set_string, set_true: offsetof(struct cli, ...) */
	uint64_t min, max; /* numbers: the range accepted */
	const char *want;  /* numbers: the range for errors; NULL: "a number
			      from MIN to MAX" */
};

/* Positionals a command takes after its words. */
enum arg_kind {
	A_NONE,	    /* no positional */
	A_QUEUE,    /* QUEUE */
	A_DATA,	    /* QUEUE [DATA...] */
	A_GROUP,    /* QUEUE GROUP */
	A_POSITION, /* QUEUE PARTITION OFFSET */
	A_DIR,	    /* DIR: an absolute path on the broker's host */
};

static const struct cmd_def {
	const char *word1;
	const char *word2; /* NULL: a one-word command */
	enum cli_cmd cmd;
	enum arg_kind args;
	int (*run)(const struct cli *cli);
} cmd_defs[] = {
	{ "queue", "create", CMD_QUEUE_CREATE, A_QUEUE, cmd_queue_create },
	{ "queue", "set", CMD_QUEUE_SET, A_QUEUE, cmd_queue_set },
	{ "queue", "delete", CMD_QUEUE_DELETE, A_QUEUE, cmd_queue_delete },
	{ "queue", "list", CMD_QUEUE_LIST, A_NONE, cmd_queue_list },
	{ "queue", "describe", CMD_QUEUE_DESCRIBE, A_QUEUE,
	  cmd_queue_describe },
	{ "queue", "purge", CMD_QUEUE_PURGE, A_QUEUE, cmd_queue_purge },
	{ "group", "create", CMD_GROUP_CREATE, A_GROUP, cmd_group_create },
	{ "group", "delete", CMD_GROUP_DELETE, A_GROUP, cmd_group_delete },
	{ "group", "list", CMD_GROUP_LIST, A_QUEUE, cmd_group_list },
	{ "group", "describe", CMD_GROUP_DESCRIBE, A_GROUP,
	  cmd_group_describe },
	{ "group", "reset", CMD_GROUP_RESET, A_GROUP, cmd_group_reset },
	{ "publish", NULL, CMD_PUBLISH, A_DATA, cmd_publish },
	{ "consume", NULL, CMD_CONSUME, A_QUEUE, cmd_consume },
	{ "peek", NULL, CMD_PEEK, A_QUEUE, cmd_peek },
	{ "message", "show", CMD_MESSAGE_SHOW, A_POSITION, cmd_message_show },
	{ "message", "cancel", CMD_MESSAGE_CANCEL, A_POSITION,
	  cmd_message_cancel },
	{ "dlq", "list", CMD_DLQ_LIST, A_QUEUE, cmd_dlq_list },
	{ "dlq", "redrive", CMD_DLQ_REDRIVE, A_QUEUE, cmd_dlq_redrive },
	{ "stats", NULL, CMD_STATS, A_NONE, cmd_stats },
	{ "ping", NULL, CMD_PING, A_NONE, cmd_ping },
	{ "backup", NULL, CMD_BACKUP, A_DIR, cmd_backup },
	{ "top", NULL, CMD_TOP, A_NONE, cmd_top },
};

/* Command words that only group subcommands (help only on their own). */
static const struct {
	const char *word;
	enum cli_cmd cmd;
	const char *subs;
} cmd_groups[] = {
	{ "queue", CMD_QUEUE, "create, set, delete, list, describe, purge" },
	{ "group", CMD_GROUP, "create, delete, list, describe, reset" },
	{ "message", CMD_MESSAGE, "show, cancel" },
	{ "dlq", CMD_DLQ, "list, redrive" },
};

#define NCMDS	(sizeof(cmd_defs) / sizeof(cmd_defs[0]))
#define NGROUPS (sizeof(cmd_groups) / sizeof(cmd_groups[0]))

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

/* ---------------------------------------------------------------- parsing */

static const struct cmd_def *
cmd_find(enum cli_cmd cmd)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (cmd_defs[i].cmd == cmd)
			return &cmd_defs[i];
	return NULL;
}

static const char *
cmd_label(enum cli_cmd cmd)
{
	static char label[64];
	const struct cmd_def *d = cmd_find(cmd);

	if (d == NULL)
		return "ringmq";
	snprintf(label, sizeof(label), "%s%s%s", d->word1, d->word2 ? " " : "",
		 d->word2 ? d->word2 : "");
	return label;
}

/* One flag occurrence, in command-line order. */
struct flag_use {
	const struct flag_def *def;
	const char *value; /* borrowed; NULL for flags without value */
};

/* Works out the command from the positionals; returns how many words it
 * took, or -1 with a usage error printed (unless quiet). */
static int
parse_command(const char **pos, size_t npos, enum cli_cmd *cmd, int quiet)
{
	*cmd = CMD_NONE;
	if (npos == 0) {
		if (!quiet)
			cli_error(RINGMQ_USAGE, "missing command (try "
						"'ringmq --help')");
		return -1;
	}
	for (size_t i = 0; i < NCMDS; i++) {
		const struct cmd_def *d = &cmd_defs[i];

		if (strcmp(pos[0], d->word1) != 0)
			continue;
		if (d->word2 == NULL) {
			*cmd = d->cmd;
			return 1;
		}
		if (npos >= 2 && strcmp(pos[1], d->word2) == 0) {
			*cmd = d->cmd;
			return 2;
		}
	}
	for (size_t i = 0; i < NGROUPS; i++) {
		if (strcmp(pos[0], cmd_groups[i].word) != 0)
			continue;
		*cmd = cmd_groups[i].cmd;
		if (quiet)
			return -1;
		if (npos < 2)
			cli_error(RINGMQ_USAGE, "missing %s subcommand (%s)",
				  pos[0], cmd_groups[i].subs);
		else
			cli_error(RINGMQ_USAGE, "unknown command '%s %s'",
				  pos[0], pos[1]);
		return -1;
	}
	if (!quiet)
		cli_error(RINGMQ_USAGE, "unknown command '%s'", pos[0]);
	return -1;
}

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

/* --server, --group, --file...: the value as given. */
static int
set_string(struct cli *cli, const struct flag_def *f, const char *value)
{
	*(const char **)(void *)((char *)cli + f->field) = value;
	return 0;
}

/* --json, --follow, --ack, --nack. */
static int
set_true(struct cli *cli, const struct flag_def *f, const char *value)
{
	(void)value;
	*(int *)(void *)((char *)cli + f->field) = 1;
	return 0;
}

/* The value as a number in f's range; -1 after a usage error. */
static int
flag_number(const struct flag_def *f, const char *value, uint64_t *out)
{
	char range[64];

	if (parse_number(value, f->min, f->max, out) == 0)
		return 0;
	snprintf(range, sizeof(range), "a number from %llu to %llu",
		 (unsigned long long)f->min, (unsigned long long)f->max);
	cli_error(RINGMQ_USAGE, "--%s must be %s, not '%s'", f->opt.name,
		  f->want != NULL ? f->want : range, value);
	return -1;
}

static int
set_delay(struct cli *cli, const struct flag_def *f, const char *value)
{
	if (flag_number(f, value, &cli->delay_ms) < 0)
		return -1;
	cli->has_delay = 1;
	return 0;
}

static int
set_nack_delay(struct cli *cli, const struct flag_def *f, const char *value)
{
	if (flag_number(f, value, &cli->nack_delay_ms) < 0)
		return -1;
	cli->has_nack_delay = 1;
	return 0;
}

static int
set_count(struct cli *cli, const struct flag_def *f, const char *value)
{
	return flag_number(f, value, &cli->count);
}

static int
set_partition(struct cli *cli, const struct flag_def *f, const char *value)
{
	uint64_t v;

	if (flag_number(f, value, &v) < 0)
		return -1;
	cli->has_partition = 1;
	cli->partition = (uint32_t)v;
	return 0;
}

static int
set_interval(struct cli *cli, const struct flag_def *f, const char *value)
{
	uint64_t v;

	if (flag_number(f, value, &v) < 0)
		return -1;
	cli->interval_ms = (int)v;
	return 0;
}

static int
set_timeout(struct cli *cli, const struct flag_def *f, const char *value)
{
	uint64_t v;

	if (flag_number(f, value, &v) < 0)
		return -1;
	cli->timeout_ms = (int)v;
	cli->has_timeout = 1;
	return 0;
}

static int
set_key(struct cli *cli, const struct flag_def *f, const char *value)
{
	(void)f;
	if (strlen(value) > CLI_MAX_KEY_BYTES) {
		cli_error(RINGMQ_USAGE, "--key must be at most %d bytes",
			  CLI_MAX_KEY_BYTES);
		return -1;
	}
	cli->key = value;
	return 0;
}

static int
set_dedup_id(struct cli *cli, const struct flag_def *f, const char *value)
{
	(void)f;
	if (value[0] == '\0' || strlen(value) > CLI_MAX_DEDUP_ID_BYTES) {
		cli_error(RINGMQ_USAGE, "--dedup-id must be 1 to %d bytes",
			  CLI_MAX_DEDUP_ID_BYTES);
		return -1;
	}
	cli->dedup_id = value;
	return 0;
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

/* A row's name, whether it takes a value, id, commands and handler. */
#define FLAG(name, has_value, id_, cmds_, apply_) \
	.opt = { name, has_value }, .id = id_, .cmds = cmds_, .apply = apply_
#define FIELD(name) .field = offsetof(struct cli, name)
#define SETTING(name)                                            \
	{                                                        \
		FLAG(name, 1, F_SETTING, ON_POLICY, set_setting) \
	}
#define DELAY_MS .max = MAX_DELAY_MS, .want = "a number of milliseconds"

static const struct flag_def flag_defs[] = {
	{ FLAG("help", 0, F_HELP, ON_ALL, NULL) },
	{ FLAG("server", 1, F_SERVER, ON_ALL, set_string), FIELD(server) },
	{ FLAG("json", 0, F_JSON, ON_ALL, set_true), FIELD(is_json) },
	{ FLAG("request-timeout-ms", 1, F_REQUEST_TIMEOUT, ON_ALL, set_string),
	  FIELD(request_timeout_ms) },
	{ FLAG("connect-timeout-ms", 1, F_CONNECT_TIMEOUT, ON_ALL, set_string),
	  FIELD(connect_timeout_ms) },
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
	{ FLAG("key", 1, F_KEY, ON_PUBLISH, set_key) },
	{ FLAG("header", 1, F_HEADER, ON_PUBLISH, set_header) },
	{ FLAG("file", 1, F_FILE, ON_PUBLISH, set_string), FIELD(file) },
	{ FLAG("delay-ms", 1, F_DELAY, ON_PUBLISH, set_delay), DELAY_MS },
	{ FLAG("deliver-at", 1, F_DELIVER_AT, ON_PUBLISH, set_deliver_at) },
	{ FLAG("dedup-id", 1, F_DEDUP_ID, ON_PUBLISH, set_dedup_id) },
	{ FLAG("group", 1, F_GROUP, ON_CONSUME | ON(CMD_DLQ_REDRIVE),
	       set_string),
	  FIELD(group) },
	{ FLAG("count", 1, F_COUNT,
	       ON_CONSUME | ON(CMD_PEEK) | ON(CMD_DLQ_LIST) |
		       ON(CMD_DLQ_REDRIVE) | ON(CMD_TOP),
	       set_count),
	  .min = 1, .max = INT64_MAX, .want = "a number of at least 1" },
	{ FLAG("timeout-ms", 1, F_TIMEOUT, ON_CONSUME, set_timeout), .min = 1,
	  .max = INT_MAX },
	{ FLAG("follow", 0, F_FOLLOW, ON_CONSUME, set_true), FIELD(is_follow) },
	{ FLAG("ack", 0, F_ACK, ON_CONSUME, set_true), FIELD(is_ack) },
	{ FLAG("nack", 0, F_NACK, ON_CONSUME, set_true), FIELD(is_nack) },
	{ FLAG("nack-delay-ms", 1, F_NACK_DELAY, ON_CONSUME, set_nack_delay),
	  DELAY_MS },
	{ FLAG("partition", 1, F_PARTITION, ON(CMD_PEEK), set_partition),
	  .max = CLI_MAX_PARTITIONS - 1 },
	{ FLAG("from", 1, F_FROM, ON(CMD_GROUP_CREATE), set_start) },
	{ FLAG("to", 1, F_TO, ON(CMD_GROUP_RESET), set_start) },
	{ FLAG("interval-ms", 1, F_INTERVAL, ON(CMD_TOP), set_interval),
	  .min = MIN_INTERVAL_MS, .max = MAX_INTERVAL_MS },
};

#define NFLAGS (sizeof(flag_defs) / sizeof(flag_defs[0]))

/* Checks the per-command rules of publish, queue set and consume; -1
 * after an error. */
static int
check_flags(const struct cli *cli)
{
	if (cli->cmd == CMD_PUBLISH && cli->has_delay && cli->has_deliver_at) {
		cli_error(RINGMQ_USAGE, "publish: --delay-ms and --deliver-at "
					"exclude each other");
		return -1;
	}
	if (cli->cmd == CMD_QUEUE_SET && cli->has_partitions) {
		cli_error(RINGMQ_USAGE, "queue set: --partitions cannot be "
					"changed once the queue exists");
		return -1;
	}
	if (cli->cmd == CMD_PUBLISH && cli->file != NULL && cli->nargs > 1) {
		cli_error(RINGMQ_USAGE, "publish: --file and DATA arguments "
					"exclude each other");
		return -1;
	}
	if ((cli->cmd == CMD_QUEUE_CREATE || cli->cmd == CMD_QUEUE_SET) &&
	    cli->nargs >= 1) {
		const char *dlq = NULL; /* the last one given counts */

		for (size_t i = 0; i < cli->nsettings; i++)
			if (strncmp(cli->settings[i].name, "dead-letter", 11) ==
			    0)
				dlq = cli->settings[i].value;
		if (dlq != NULL && strcmp(dlq, cli->args[0]) == 0) {
			cli_error(RINGMQ_USAGE,
				  "%s: queue %s cannot be its own dead-letter "
				  "queue",
				  cmd_label(cli->cmd), cli->args[0]);
			return -1;
		}
	}
	if (cli->cmd == CMD_GROUP_RESET && !cli->has_start) {
		cli_error(RINGMQ_USAGE, "group reset: missing --to earliest|"
					"latest");
		return -1;
	}
	if (cli->cmd == CMD_DLQ_REDRIVE && cli->group != NULL &&
	    !cli_name_is_valid(cli->group)) {
		cli_error(RINGMQ_USAGE,
			  "bad group name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195})",
			  cli->group);
		return -1;
	}
	if (cli->cmd == CMD_QUEUE_SET && cli->nsettings == 0) {
		cli_error(RINGMQ_USAGE, "queue set: nothing to change (give "
					"at least one setting, see 'ringmq "
					"queue set --help')");
		return -1;
	}
	if (cli->cmd != CMD_CONSUME)
		return 0;
	if (cli->group == NULL) {
		cli_error(RINGMQ_USAGE, "consume: missing --group");
		return -1;
	}
	if (!cli_name_is_valid(cli->group)) {
		cli_error(RINGMQ_USAGE,
			  "bad group name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195})",
			  cli->group);
		return -1;
	}
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

/* PARTITION and OFFSET of message show / cancel; -1 after an error. */
static int
check_position(struct cli *cli)
{
	uint64_t v;

	if (parse_number(cli->args[1], 0, CLI_MAX_PARTITIONS - 1, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "%s: PARTITION must be a number from 0 to %d, not "
			  "'%s'",
			  cmd_label(cli->cmd), CLI_MAX_PARTITIONS - 1,
			  cli->args[1]);
		return -1;
	}
	cli->partition = (uint32_t)v;
	if (parse_number(cli->args[2], 0, UINT64_MAX, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "%s: OFFSET must be a number from 0 to %llu, not "
			  "'%s'",
			  cmd_label(cli->cmd), (unsigned long long)UINT64_MAX,
			  cli->args[2]);
		return -1;
	}
	cli->offset = v;
	return 0;
}

/* Checks what is decidable without the broker; -1 after an error. */
static int
check_command(struct cli *cli)
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
	};
	static const size_t nwant[] = {
		[A_NONE] = 0,  [A_QUEUE] = 1,	 [A_DATA] = 1,
		[A_GROUP] = 2, [A_POSITION] = 3, [A_DIR] = 1
	};
	enum arg_kind kind = cmd_find(cli->cmd)->args;
	size_t want = nwant[kind];

	if (cli->nargs < want) {
		cli_error(RINGMQ_USAGE, "%s: %s", cmd_label(cli->cmd),
			  missing[kind][cli->nargs]);
		return -1;
	}
	if (kind != A_DATA && cli->nargs > want) {
		cli_error(RINGMQ_USAGE, "%s: unexpected argument '%s'",
			  cmd_label(cli->cmd), cli->args[want]);
		return -1;
	}
	if (kind == A_DIR && cli->args[0][0] != '/') {
		/* The broker writes the copy: a path relative to this
		 * shell's directory would mean nothing there. */
		cli_error(RINGMQ_USAGE,
			  "%s: DIR must be an absolute path on the broker's "
			  "host, not '%s'",
			  cmd_label(cli->cmd), cli->args[0]);
		return -1;
	}
	if (want >= 1 && kind != A_DIR &&
	    !cli_queue_name_is_valid(cli->args[0])) {
		cli_error(RINGMQ_USAGE,
			  "bad queue name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195}, optionally "
			  "followed by .dlq)",
			  cli->args[0]);
		return -1;
	}
	if (kind == A_GROUP && !cli_name_is_valid(cli->args[1])) {
		cli_error(RINGMQ_USAGE,
			  "bad group name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195})",
			  cli->args[1]);
		return -1;
	}
	if (kind == A_POSITION && check_position(cli) < 0)
		return -1;
	return check_flags(cli);
}

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
	while ((kind = opt_next(&p)) == OPT_ARG || kind == OPT_FLAG) {
		if (kind == OPT_ARG) {
			pos[(*nposp)++] = p.value;
			continue;
		}
		uses[*nusesp].def = &flag_defs[p.row];
		uses[(*nusesp)++].value = p.value;
	}
	if (kind != OPT_END)
		report_syntax(&p, kind);
	opt_fini(&p);
	return kind == OPT_END ? -1 : EXIT_USAGE;
}

/*
 * Parses argv into cli. @return -1 to go on, else the exit code (help
 * printed, or a usage error).
 */
static int
parse_args(int argc, char **argv, struct cli *cli, const char **pos,
	   struct flag_use *uses)
{
	size_t npos = 0;
	size_t nuses = 0;
	int rc = scan_args(argc, argv, pos, &npos, uses, &nuses);
	int words;

	if (rc >= 0)
		return rc;
	for (size_t k = 0; k < nuses; k++) {
		if (uses[k].def->id != F_HELP)
			continue;
		(void)parse_command(pos, npos, &cli->cmd, 1);
		cli_print_help(cli->cmd);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_REFUSED;
	}
	words = parse_command(pos, npos, &cli->cmd, 0);
	if (words < 0)
		return EXIT_USAGE;
	cli->args = pos + words;
	cli->nargs = npos - (size_t)words;
	for (size_t k = 0; k < nuses; k++) {
		const struct flag_def *f = uses[k].def;

		if (!(f->cmds & (1u << cli->cmd))) {
			cli_error(RINGMQ_USAGE,
				  "unknown flag --%s for '%s' (see 'ringmq "
				  "%s --help')",
				  f->opt.name, cmd_label(cli->cmd),
				  cmd_label(cli->cmd));
			return EXIT_USAGE;
		}
		if (f->apply != NULL && f->apply(cli, f, uses[k].value) < 0)
			return EXIT_USAGE;
	}
	if (check_command(cli) < 0)
		return EXIT_USAGE;
	return -1;
}

/* Connection options from the command line; -1 after a usage error. */
static int
build_opts(struct cli *cli)
{
	char err[256];
	int rc;

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
	if (rc != RINGMQ_OK) {
		cli_error(rc, "%s", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	struct flag_use *uses = calloc((size_t)argc + 1, sizeof(*uses));
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
	rc = parse_args(argc, argv, &cli, pos, uses);
	if (rc < 0 && build_opts(&cli) < 0)
		rc = EXIT_USAGE;
	if (rc < 0)
		rc = cmd_find(cli.cmd)->run(&cli);
out:
	ringmq_opts_free(cli.opts);
	for (size_t i = 0; i < cli.nheaders; i++)
		free((char *)cli.headers[i].name);
	free(cli.headers);
	free(pos);
	free(uses);
	return rc;
}
