/*
 * ringmq.c: the ringmq command-line tool: command-line parsing, help texts
 * and dispatch to the commands (cli_queue.c, cli_publish.c,
 * cli_consume.c, cli_message.c).
 *
 * Options may come before or after the command; "--" ends them. Every flag
 * is known to the parser with whether it takes a value, so a value is never
 * mistaken for a positional; a flag that exists but does not apply to the
 * command is a usage error like an unknown one.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Bits of the commands a flag applies to. */
#define ON_ALL		(~0u)
#define ON_QUEUE_CREATE (1u << CMD_QUEUE_CREATE)
#define ON_QUEUE_SET	(1u << CMD_QUEUE_SET)
#define ON_POLICY	(ON_QUEUE_CREATE | ON_QUEUE_SET)
#define ON_PUBLISH	(1u << CMD_PUBLISH)
#define ON_CONSUME	(1u << CMD_CONSUME)

enum flag_id {
	F_HELP,
	F_SERVER,
	F_JSON,
	F_REQUEST_TIMEOUT,
	F_CONNECT_TIMEOUT,
	F_SETTING, /* a queue setting, passed on by name */
	F_KEY,
	F_DELAY,
	F_DELIVER_AT,
	F_DEDUP_ID,
	F_GROUP,
	F_COUNT,
	F_TIMEOUT,
	F_ACK,
	F_NACK,
	F_NACK_DELAY,
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
	{ "delay-ms", F_DELAY, 1, ON_PUBLISH },
	{ "deliver-at", F_DELIVER_AT, 1, ON_PUBLISH },
	{ "dedup-id", F_DEDUP_ID, 1, ON_PUBLISH },
	{ "group", F_GROUP, 1, ON_CONSUME },
	{ "count", F_COUNT, 1, ON_CONSUME },
	{ "timeout-ms", F_TIMEOUT, 1, ON_CONSUME },
	{ "ack", F_ACK, 0, ON_CONSUME },
	{ "nack", F_NACK, 0, ON_CONSUME },
	{ "nack-delay-ms", F_NACK_DELAY, 1, ON_CONSUME },
};

/*
 * Longest delay accepted, ms: the broker adds a delay to its clock in 64
 * bits, so a delay up to INT64_MAX cannot wrap around (and is longer than
 * anyone waits).
 */
#define MAX_DELAY_MS INT64_MAX

#define NFLAGS (sizeof(flag_defs) / sizeof(flag_defs[0]))

/* ------------------------------------------------------------------- help */

static const char help_main[] =
	"Usage: ringmq [OPTIONS] COMMAND [ARGS...]\n"
	"\n"
	"Administer a ringmq broker and use it from scripts.\n"
	"\n"
	"Commands:\n"
	"  queue create NAME    create a queue\n"
	"  queue set NAME       change a queue's policies\n"
	"  queue list           list the queues with their counters\n"
	"  publish NAME [DATA...]\n"
	"                       publish messages (arguments, or lines of "
	"standard input)\n"
	"  consume NAME --group G\n"
	"                       print messages of a consumer group\n"
	"  message cancel NAME PARTITION OFFSET\n"
	"                       cancel a delayed message\n"
	"\n"
	"Options (before or after the command):\n"
	"  --server HOST:PORT[,HOST:PORT...]\n"
	"                       brokers to try in turn (default: "
	"$RINGMQ_SERVER,\n"
	"                       else " DEFAULT_SERVER ")\n"
	"  --json               machine-readable output\n"
	"  --request-timeout-ms MS\n"
	"                       wait at most MS for each answer (default "
	"5000)\n"
	"  --connect-timeout-ms MS\n"
	"                       wait at most MS for each connect (default "
	"5000)\n"
	"  --help, -h           show this help, or a command's\n"
	"  --                   end of options: the rest is positional\n"
	"\n"
	"Queue and group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}.\n"
	"Errors go to standard error as \"ringmq: CODE: message\".\n"
	"\n"
	"Exit status:\n"
	"  0  success\n"
	"  1  the broker refused (also its announced limits), or writing the "
	"output\n"
	"     failed\n"
	"  2  bad command line (checked before connecting)\n"
	"  3  cannot connect, connection lost, or a request timed out (wins "
	"over 1)\n"
	"\n"
	"Run 'ringmq COMMAND --help' for a command's options.\n";

static const char help_queue[] =
	"Usage: ringmq queue create NAME [SETTINGS]\n"
	"       ringmq queue set NAME SETTINGS\n"
	"       ringmq queue list [--json]\n"
	"\n"
	"Run 'ringmq queue create --help', 'ringmq queue set --help' or "
	"'ringmq queue\n"
	"list --help'.\n";

/* The policy flags, shared by queue create and queue set. */
#define HELP_POLICIES                                                        \
	"  --lease-ms MS            lease time of a delivery (default "      \
	"30000)\n"                                                           \
	"  --max-lease-ms MS        most a touch may extend a lease to, "    \
	"counted from\n"                                                     \
	"                           delivery (default 43200000, 12 h)\n"     \
	"  --max-deliveries N       dead-letter after N failed deliveries "  \
	"(default 5,\n"                                                      \
	"                           0 = unlimited)\n"                        \
	"  --dead-letter Q          queue that receives dead letters "       \
	"(default NAME.dlq;\n"                                               \
	"                           a queue name)\n"                         \
	"  --max-depth N            most retained messages: ready, delayed " \
	"and in\n"                                                           \
	"                           flight (default 0 = unlimited)\n"        \
	"  --max-bytes B            most retained payload bytes (default 0 " \
	"= unlimited)\n"                                                     \
	"  --dedup-window-ms MS     how long dedup ids are remembered "      \
	"(default 600000)\n"                                                 \
	"Numbers are decimal; lease times are at least 1. Over --max-depth " \
	"or\n"                                                               \
	"--max-bytes, publishes are refused with QUEUE_FULL.\n"

static const char help_queue_create[] =
	"Usage: ringmq queue create NAME [--partitions N] [--lease-ms MS] "
	"[...]\n"
	"\n"
	"Creates queue NAME. Succeeds also when the queue exists with the "
	"same given\n"
	"settings (settings not given are not compared); with other "
	"settings it\n"
	"fails with QUEUE_EXISTS (exit 1). Prints nothing on success.\n"
	"\n"
	"Settings (absent: the broker's default):\n"
	"  --partitions N           1..1024 (default 1; fixed once "
	"created)\n" HELP_POLICIES "\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

static const char help_queue_set[] =
	"Usage: ringmq queue set NAME [--lease-ms MS] [--max-deliveries N] "
	"[...]\n"
	"\n"
	"Changes policies of queue NAME: the settings given replace the "
	"queue's,\n"
	"the others stay. At least one is needed; --partitions cannot be "
	"changed\n"
	"(exit 2). A new lease time applies to later deliveries, not to "
	"leases\n"
	"already running. Prints nothing on success; a missing queue is\n"
	"QUEUE_NOT_FOUND (exit 1).\n"
	"\n"
	"Settings:\n" HELP_POLICIES "\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

static const char help_queue_list[] =
	"Usage: ringmq queue list [--json]\n"
	"\n"
	"Lists the queues. By default a table with the columns NAME, "
	"PARTITIONS,\n"
	"READY, DELAYED, IN_FLIGHT and GROUPS. With --json one document:\n"
	"  {\"queues\":[{\"name\":...,\"partitions\":...,\"ready\":...,"
	"\"delayed\":...,\n"
	"    \"in_flight\":...,\"groups\":...,\"messages\":...,"
	"\"bytes\":...,\n"
	"    \"policy\":{\"lease_ms\":...,\"max_lease_ms\":...,"
	"\"max_deliveries\":...,\n"
	"      \"max_depth\":...,\"max_bytes\":...,"
	"\"dedup_window_ms\":...,\n"
	"      \"dead_letter\":\"...\"}},...]}\n"
	"(\"policy\" only when the broker reports policies.)\n"
	"\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

static const char help_publish[] =
	"Usage: ringmq publish NAME [--key K] [--delay-ms MS | --deliver-at "
	"TIME]\n"
	"                      [--dedup-id ID] [--] [DATA...]\n"
	"\n"
	"Publishes to queue NAME. Each DATA argument is one message; with "
	"none, each\n"
	"line of standard input is one message: split on \\n, the \\n "
	"removed,\n"
	"nothing else changed (bytes are kept as they are, a \\r stays, an "
	"empty\n"
	"line is an empty message, a final \\n adds no message). Use -- "
	"before DATA\n"
	"that starts with '-'.\n"
	"\n"
	"  --key K            key of every message (picks the partition by "
	"hash)\n"
	"  --delay-ms MS      each message becomes ready MS after the broker "
	"gets it\n"
	"  --deliver-at TIME  each message becomes ready at TIME, an RFC "
	"3339\n"
	"                     date-time: 2026-12-01T10:00:00Z, with "
	"fractional\n"
	"                     seconds (...:00.250Z) or an offset "
	"(...:00+02:00)\n"
	"  --dedup-id ID      dedup id of every message: a publish repeating "
	"it within\n"
	"                     the queue's dedup window is not stored again "
	"and prints\n"
	"                     the original PARTITION OFFSET\n"
	"--delay-ms and --deliver-at exclude each other. The options apply "
	"to every\n"
	"message of the invocation. A delayed message can be cancelled "
	"with\n"
	"'ringmq message cancel' until it is due.\n"
	"\n"
	"Standard output gets one line per message, in input order:\n"
	"  PARTITION OFFSET     when the broker confirmed it (stored "
	"durably)\n"
	"  error CODE           when it was not confirmed; the reason goes "
	"to\n"
	"                       standard error as \"ringmq: CODE: "
	"message\"\n"
	"With --json each line is instead {\"partition\":P,\"offset\":O} "
	"(with\n"
	"\"duplicate\":true when confirmed earlier under its dedup id) or\n"
	"{\"error\":\"CODE\",\"message\":\"...\"}.\n"
	"\n"
	"A message over the broker's announced size limit gets error "
	"MESSAGE_TOO_LARGE\n"
	"and is never sent; after a lost connection each unconfirmed message "
	"gets\n"
	"error CONNECTION_LOST (it may or may not have been stored); when "
	"no broker\n"
	"can be reached, each gets error UNREACHABLE. Standard input is read "
	"and\n"
	"published in batches, so it may be larger than memory.\n"
	"\n"
	"Exit status: 0 every message confirmed; 1 some refused (the others "
	"are\n"
	"still published); 3 no connection or connection lost; 2 bad "
	"usage.\n";

static const char help_consume[] =
	"Usage: ringmq consume NAME --group G [--count N] [--timeout-ms MS]\n"
	"                      [--ack | --nack [--nack-delay-ms MS]]\n"
	"\n"
	"Subscribes to queue NAME in consumer group G (created from the "
	"earliest\n"
	"message if it does not exist) and prints each message's payload "
	"exactly,\n"
	"followed by \\n, flushing standard output before settling it.\n"
	"\n"
	"  --count N        stop after N messages (at least 1; default: no "
	"limit)\n"
	"  --timeout-ms MS  stop when no message arrived for MS since "
	"subscribing\n"
	"                   or since the last one (at least 1; default "
	"5000)\n"
	"  --ack            acknowledge each message once printed: done, "
	"not\n"
	"                   delivered to this group again\n"
	"  --nack           nack the printed messages (a failed attempt: "
	"they come\n"
	"                   again, counting toward the queue's max "
	"deliveries)\n"
	"  --nack-delay-ms MS\n"
	"                   with --nack: the nacked messages become ready "
	"again only\n"
	"                   MS later (default 0: at once)\n"
	"  (neither)        release the printed messages: they come again, "
	"not\n"
	"                   counted as failed\n"
	"With --nack or neither, the printed messages are settled when "
	"consume\n"
	"stops, so it does not get them again itself (a run longer than the "
	"queue's\n"
	"lease time lets their leases expire instead). consume never asks "
	"for more\n"
	"messages than it still wants to print; before exiting it releases "
	"any it\n"
	"received but did not print.\n"
	"\n"
	"With --json each message is one line:\n"
	"  {\"partition\":P,\"offset\":O,\"delivery_count\":N,"
	"\"payload\":\"...\"}\n"
	"(and \"key\":\"...\" when the message has one). Strings escape \" "
	"\\ and\n"
	"bytes below 0x20 or 0x7f as JSON does; valid UTF-8 is kept; each "
	"byte of\n"
	"invalid UTF-8 is written as \\u00XX with XX its value, so binary "
	"payloads\n"
	"are not guaranteed to round-trip: use the default output for "
	"them.\n"
	"\n"
	"A failed write to standard output (e.g. a closed pipe) releases "
	"that message\n"
	"and exits 1 with \"ringmq: IO: ...\". SIGINT or SIGTERM settles "
	"what was\n"
	"printed as the flags say and exits 130 or 143.\n"
	"\n"
	"Exit status: 0 every ack, nack or release sent was confirmed (also "
	"when\n"
	"nothing arrived); 1 one was refused or the queue does not exist; 3 "
	"no\n"
	"connection or connection lost; 2 bad usage.\n";

static const char help_message[] =
	"Usage: ringmq message cancel NAME PARTITION OFFSET\n"
	"\n"
	"Run 'ringmq message cancel --help'.\n";

static const char help_message_cancel[] =
	"Usage: ringmq message cancel NAME PARTITION OFFSET\n"
	"\n"
	"Cancels the delayed message at PARTITION and OFFSET of queue NAME "
	"(as\n"
	"publish printed them): it is deleted and never delivered. Prints "
	"nothing on\n"
	"success. PARTITION is 0..1023 and OFFSET a decimal number (exit 2 "
	"otherwise).\n"
	"\n"
	"Exit status: 0 cancelled; 1 refused: MESSAGE_NOT_FOUND (no such "
	"message),\n"
	"INVALID_ARGUMENT (the message is not delayed, e.g. already due) or\n"
	"QUEUE_NOT_FOUND; 3 no connection or connection lost; 2 bad usage.\n"
	"\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

static void
print_help(enum cli_cmd cmd)
{
	const char *text = help_main;

	switch (cmd) {
	case CMD_NONE: break;
	case CMD_QUEUE: text = help_queue; break;
	case CMD_QUEUE_CREATE: text = help_queue_create; break;
	case CMD_QUEUE_SET: text = help_queue_set; break;
	case CMD_QUEUE_LIST: text = help_queue_list; break;
	case CMD_PUBLISH: text = help_publish; break;
	case CMD_CONSUME: text = help_consume; break;
	case CMD_MESSAGE: text = help_message; break;
	case CMD_MESSAGE_CANCEL: text = help_message_cancel; break;
	}
	fputs(text, stdout);
}

/* ---------------------------------------------------------------- parsing */

static const char *
cmd_label(enum cli_cmd cmd)
{
	switch (cmd) {
	case CMD_QUEUE_CREATE: return "queue create";
	case CMD_QUEUE_SET: return "queue set";
	case CMD_QUEUE_LIST: return "queue list";
	case CMD_PUBLISH: return "publish";
	case CMD_CONSUME: return "consume";
	case CMD_MESSAGE_CANCEL: return "message cancel";
	default: return "ringmq";
	}
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
	if (strcmp(pos[0], "publish") == 0) {
		*cmd = CMD_PUBLISH;
		return 1;
	}
	if (strcmp(pos[0], "consume") == 0) {
		*cmd = CMD_CONSUME;
		return 1;
	}
	if (strcmp(pos[0], "queue") == 0) {
		*cmd = CMD_QUEUE;
		if (npos >= 2 && strcmp(pos[1], "create") == 0) {
			*cmd = CMD_QUEUE_CREATE;
			return 2;
		}
		if (npos >= 2 && strcmp(pos[1], "set") == 0) {
			*cmd = CMD_QUEUE_SET;
			return 2;
		}
		if (npos >= 2 && strcmp(pos[1], "list") == 0) {
			*cmd = CMD_QUEUE_LIST;
			return 2;
		}
		if (!quiet) {
			if (npos < 2)
				cli_error(RINGMQ_USAGE,
					  "missing queue subcommand (create, "
					  "set, list)");
			else
				cli_error(RINGMQ_USAGE,
					  "unknown command 'queue %s'", pos[1]);
		}
		return -1;
	}
	if (strcmp(pos[0], "message") == 0) {
		*cmd = CMD_MESSAGE;
		if (npos >= 2 && strcmp(pos[1], "cancel") == 0) {
			*cmd = CMD_MESSAGE_CANCEL;
			return 2;
		}
		if (!quiet) {
			if (npos < 2)
				cli_error(RINGMQ_USAGE,
					  "missing message subcommand "
					  "(cancel)");
			else
				cli_error(RINGMQ_USAGE,
					  "unknown command 'message %s'",
					  pos[1]);
		}
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
	case F_KEY: cli->key = u->value; return 0;
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
	case F_TIMEOUT:
		if (parse_number(u->value, 1, INT_MAX, &v) < 0) {
			cli_error(RINGMQ_USAGE,
				  "--timeout-ms must be a number from 1 to "
				  "%d, not '%s'",
				  INT_MAX, u->value);
			return -1;
		}
		cli->timeout_ms = (int)v;
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
	return 0;
}

/* PARTITION and OFFSET of message cancel; -1 after an error. */
static int
check_position(struct cli *cli)
{
	uint64_t v;

	if (parse_number(cli->args[1], 0, CLI_MAX_PARTITIONS - 1, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "message cancel: PARTITION must be a number from 0 "
			  "to %d, not '%s'",
			  CLI_MAX_PARTITIONS - 1, cli->args[1]);
		return -1;
	}
	cli->partition = (uint32_t)v;
	if (parse_number(cli->args[2], 0, UINT64_MAX, &v) < 0) {
		cli_error(RINGMQ_USAGE,
			  "message cancel: OFFSET must be a number from 0 to "
			  "%llu, not '%s'",
			  (unsigned long long)UINT64_MAX, cli->args[2]);
		return -1;
	}
	cli->offset = v;
	return 0;
}

/* Checks what is decidable without the broker; -1 after an error. */
static int
check_command(struct cli *cli)
{
	size_t want_min = 1;
	size_t want_max = 1;

	if (cli->cmd == CMD_QUEUE_LIST)
		want_min = want_max = 0;
	if (cli->cmd == CMD_PUBLISH)
		want_max = SIZE_MAX;
	if (cli->cmd == CMD_MESSAGE_CANCEL)
		want_max = 3;
	if (cli->nargs < want_min) {
		cli_error(RINGMQ_USAGE, "%s: missing queue name",
			  cmd_label(cli->cmd));
		return -1;
	}
	if (cli->nargs > want_max) {
		cli_error(RINGMQ_USAGE, "%s: unexpected argument '%s'",
			  cmd_label(cli->cmd), cli->args[want_max]);
		return -1;
	}
	if (want_min == 1 && !cli_name_is_valid(cli->args[0])) {
		cli_error(RINGMQ_USAGE,
			  "bad queue name '%s' (want "
			  "[A-Za-z0-9][A-Za-z0-9._-]{0,195})",
			  cli->args[0]);
		return -1;
	}
	if (cli->cmd == CMD_MESSAGE_CANCEL) {
		if (cli->nargs < 3) {
			cli_error(RINGMQ_USAGE, "message cancel: missing %s",
				  cli->nargs == 1 ? "PARTITION and OFFSET"
						  : "OFFSET");
			return -1;
		}
		if (check_position(cli) < 0)
			return -1;
	}
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
		print_help(cli->cmd);
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

	if (pos == NULL || uses == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		free(pos);
		free(uses);
		return EXIT_REFUSED;
	}
	/* A closed standard output must be an error from fwrite (exit 1,
	 * "ringmq: IO: ..."), not a silent kill; the library never raises
	 * SIGPIPE itself. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		cli_error(RINGMQ_INTERNAL, "ignore SIGPIPE: %s",
			  strerror(errno));
		free(pos);
		free(uses);
		return EXIT_REFUSED;
	}
	env = getenv("RINGMQ_SERVER");
	cli.server = env != NULL && env[0] != '\0' ? env : DEFAULT_SERVER;
	cli.timeout_ms = 5000;
	rc = parse_args(argc, argv, &cli, pos, uses);
	if (rc < 0 && build_opts(&cli) < 0)
		rc = EXIT_USAGE;
	if (rc < 0) {
		switch (cli.cmd) {
		case CMD_QUEUE_CREATE: rc = cmd_queue_create(&cli); break;
		case CMD_QUEUE_SET: rc = cmd_queue_set(&cli); break;
		case CMD_QUEUE_LIST: rc = cmd_queue_list(&cli); break;
		case CMD_PUBLISH: rc = cmd_publish(&cli); break;
		case CMD_CONSUME: rc = cmd_consume(&cli); break;
		case CMD_MESSAGE_CANCEL: rc = cmd_message_cancel(&cli); break;
		default: rc = EXIT_USAGE; break;
		}
	}
	ringmq_opts_free(cli.opts);
	free(pos);
	free(uses);
	return rc;
}
