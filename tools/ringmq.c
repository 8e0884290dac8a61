/*
 * ringmq.c: the ringmq command-line tool: command-line parsing and
 * dispatch to the commands (cli_queue.c, cli_group.c, cli_publish.c,
 * cli_consume.c, cli_message.c, cli_admin.c, cli_top.c); help texts are in
 * cli_help.c.
 *
 * Options may come before or after the command; "--" ends them. Every flag
 * is known to the parser with whether it takes a value, so a value is never
 * mistaken for a positional; a flag that exists but does not apply to the
 * command is a usage error like an unknown one. Commands are rows of one
 * table: their words, positionals and entry point.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

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

static const struct flag_def {
	const char *name;
	enum flag_id id;
	int has_value;
	unsigned cmds;
} flag_defs[] = {
	{ "help", F_HELP, 0, ON_ALL },
	{ "server", F_SERVER, 1, ON_ALL },
	{ "json", F_JSON, 0, ON_ALL },
	{ "request-timeout-ms", F_REQUEST_TIMEOUT, 1, ON_ALL },
	{ "connect-timeout-ms", F_CONNECT_TIMEOUT, 1, ON_ALL },
	/* queue set refuses --partitions itself, with a clearer message */
	{ "partitions", F_SETTING, 1, ON_POLICY },
	{ "lease-ms", F_SETTING, 1, ON_POLICY },
	{ "max-lease-ms", F_SETTING, 1, ON_POLICY },
	{ "max-deliveries", F_SETTING, 1, ON_POLICY },
	{ "dead-letter", F_SETTING, 1, ON_POLICY },
	{ "dead-letter-queue", F_SETTING, 1, ON_POLICY }, /* first spelling */
	{ "max-depth", F_SETTING, 1, ON_POLICY },
	{ "max-bytes", F_SETTING, 1, ON_POLICY },
	{ "dedup-window-ms", F_SETTING, 1, ON_POLICY },
	{ "key", F_KEY, 1, ON_PUBLISH },
	{ "header", F_HEADER, 1, ON_PUBLISH },
	{ "file", F_FILE, 1, ON_PUBLISH },
	{ "delay-ms", F_DELAY, 1, ON_PUBLISH },
	{ "deliver-at", F_DELIVER_AT, 1, ON_PUBLISH },
	{ "dedup-id", F_DEDUP_ID, 1, ON_PUBLISH },
	{ "group", F_GROUP, 1, ON_CONSUME | ON(CMD_DLQ_REDRIVE) },
	{ "count", F_COUNT, 1,
	  ON_CONSUME | ON(CMD_PEEK) | ON(CMD_DLQ_LIST) | ON(CMD_DLQ_REDRIVE) |
		  ON(CMD_TOP) },
	{ "timeout-ms", F_TIMEOUT, 1, ON_CONSUME },
	{ "follow", F_FOLLOW, 0, ON_CONSUME },
	{ "ack", F_ACK, 0, ON_CONSUME },
	{ "nack", F_NACK, 0, ON_CONSUME },
	{ "nack-delay-ms", F_NACK_DELAY, 1, ON_CONSUME },
	{ "partition", F_PARTITION, 1, ON(CMD_PEEK) },
	{ "from", F_FROM, 1, ON(CMD_GROUP_CREATE) },
	{ "to", F_TO, 1, ON(CMD_GROUP_RESET) },
	{ "interval-ms", F_INTERVAL, 1, ON(CMD_TOP) },
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

#define NFLAGS (sizeof(flag_defs) / sizeof(flag_defs[0]))

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

static const struct flag_def *
flag_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strlen(flag_defs[i].name) == len &&
		    strncmp(flag_defs[i].name, name, len) == 0)
			return &flag_defs[i];
	return NULL;
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

/* Adds a --header NAME=VALUE; -1 after printing a usage error. */
static int
apply_header(struct cli *cli, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *name;

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

/* Applies one flag to cli; -1 after printing a usage error. */
static int
apply_flag(struct cli *cli, const struct flag_use *u)
{
	uint64_t v;

	switch (u->def->id) {
	case F_HELP: return 0;
	case F_SERVER: cli->server = u->value; return 0;
	case F_JSON: cli->is_json = 1; return 0;
	case F_REQUEST_TIMEOUT: cli->request_timeout_ms = u->value; return 0;
	case F_CONNECT_TIMEOUT: cli->connect_timeout_ms = u->value; return 0;
	case F_KEY:
		if (strlen(u->value) > CLI_MAX_KEY_BYTES) {
			cli_error(RINGMQ_USAGE,
				  "--key must be at most %d bytes",
				  CLI_MAX_KEY_BYTES);
			return -1;
		}
		cli->key = u->value;
		return 0;
	case F_GROUP: cli->group = u->value; return 0;
	case F_DEDUP_ID:
		if (u->value[0] == '\0' ||
		    strlen(u->value) > CLI_MAX_DEDUP_ID_BYTES) {
			cli_error(RINGMQ_USAGE,
				  "--dedup-id must be 1 to %d bytes",
				  CLI_MAX_DEDUP_ID_BYTES);
			return -1;
		}
		cli->dedup_id = u->value;
		return 0;
	case F_DELAY:
		if (parse_number(u->value, 0, MAX_DELAY_MS, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--delay-ms must be a number of "
				  "milliseconds, not '%s'",
				  u->value);
			return -1;
		}
		cli->has_delay = 1;
		cli->delay_ms = v;
		return 0;
	case F_DELIVER_AT:
		if (cli_parse_rfc3339(u->value, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--deliver-at must be an RFC 3339 time "
				  "from 1970 on, such as "
				  "2026-12-01T10:00:00Z or "
				  "2026-12-01T12:00:00.5+02:00, not '%s'",
				  u->value);
			return -1;
		}
		cli->has_deliver_at = 1;
		cli->deliver_at_ms = v;
		return 0;
	case F_NACK_DELAY:
		if (parse_number(u->value, 0, MAX_DELAY_MS, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--nack-delay-ms must be a number of "
				  "milliseconds, not '%s'",
				  u->value);
			return -1;
		}
		cli->has_nack_delay = 1;
		cli->nack_delay_ms = v;
		return 0;
	case F_ACK: cli->is_ack = 1; return 0;
	case F_NACK: cli->is_nack = 1; return 0;
	case F_FOLLOW: cli->is_follow = 1; return 0;
	case F_FILE: cli->file = u->value; return 0;
	case F_HEADER: return apply_header(cli, u->value);
	case F_PARTITION:
		if (parse_number(u->value, 0, CLI_MAX_PARTITIONS - 1, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--partition must be a number from 0 to %d, "
				  "not '%s'",
				  CLI_MAX_PARTITIONS - 1, u->value);
			return -1;
		}
		cli->has_partition = 1;
		cli->partition = (uint32_t)v;
		return 0;
	case F_FROM:
	case F_TO:
		if (strcmp(u->value, "earliest") == 0) {
			cli->start = RINGMQ_START_EARLIEST;
		} else if (strcmp(u->value, "latest") == 0) {
			cli->start = RINGMQ_START_LATEST;
		} else {
			cli_error(RINGMQ_USAGE,
				  "--%s must be earliest or latest, not '%s'",
				  u->def->name, u->value);
			return -1;
		}
		cli->has_start = 1;
		return 0;
	case F_SETTING:
		/* Later occurrences override: checked by the library in
		 * order, the last one stays. */
		if (cli->nsettings == CLI_MAX_SETTINGS) {
			cli_error(RINGMQ_USAGE, "too many settings");
			return -1;
		}
		if (strcmp(u->def->name, "partitions") == 0)
			cli->has_partitions = 1;
		cli->settings[cli->nsettings].name = u->def->name;
		cli->settings[cli->nsettings++].value = u->value;
		return 0;
	case F_COUNT:
		if (parse_number(u->value, 1, INT64_MAX, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--count must be a number of at least 1, "
				  "not '%s'",
				  u->value);
			return -1;
		}
		cli->count = v;
		return 0;
	case F_INTERVAL:
		if (parse_number(u->value, MIN_INTERVAL_MS, MAX_INTERVAL_MS,
				 &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--interval-ms must be a number from %d to "
				  "%d, not '%s'",
				  MIN_INTERVAL_MS, MAX_INTERVAL_MS, u->value);
			return -1;
		}
		cli->interval_ms = (int)v;
		return 0;
	case F_TIMEOUT:
		if (parse_number(u->value, 1, INT_MAX, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--timeout-ms must be a number from 1 to "
				  "%d, not '%s'",
				  INT_MAX, u->value);
			return -1;
		}
		cli->timeout_ms = (int)v;
		cli->has_timeout = 1;
		return 0;
	}
	return 0;
}

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
	int is_help = 0;
	int is_end = 0;
	int words;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *name;
		const char *eq;
		const struct flag_def *def;

		if (is_end || a[0] != '-' || a[1] == '\0') {
			pos[npos++] = a; /* "-" alone is data */
			continue;
		}
		if (strcmp(a, "--") == 0) {
			is_end = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0) {
			is_help = 1;
			continue;
		}
		if (a[1] != '-') {
			cli_error(RINGMQ_USAGE,
				  "unknown flag %s (use -- before data "
				  "that starts with '-')",
				  a);
			return EXIT_USAGE;
		}
		name = a + 2;
		eq = strchr(name, '=');
		def = flag_lookup(name,
				  eq ? (size_t)(eq - name) : strlen(name));
		if (def == NULL) {
			cli_error(RINGMQ_USAGE, "unknown flag --%.*s",
				  eq ? (int)(eq - name) : (int)strlen(name),
				  name);
			return EXIT_USAGE;
		}
		uses[nuses].def = def;
		uses[nuses].value = NULL;
		if (def->has_value) {
			if (eq != NULL) {
				uses[nuses].value = eq + 1;
			} else if (i + 1 < argc) {
				uses[nuses].value = argv[++i];
			} else {
				cli_error(RINGMQ_USAGE, "--%s needs a value",
					  def->name);
				return EXIT_USAGE;
			}
		} else if (eq != NULL) {
			cli_error(RINGMQ_USAGE, "--%s takes no value",
				  def->name);
			return EXIT_USAGE;
		}
		if (def->id == F_HELP)
			is_help = 1;
		nuses++;
	}

	if (is_help) {
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
		if (!(uses[k].def->cmds & (1u << cli->cmd))) {
			cli_error(RINGMQ_USAGE,
				  "unknown flag --%s for '%s' (see 'ringmq "
				  "%s --help')",
				  uses[k].def->name, cmd_label(cli->cmd),
				  cmd_label(cli->cmd));
			return EXIT_USAGE;
		}
		if (apply_flag(cli, &uses[k]) < 0)
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
