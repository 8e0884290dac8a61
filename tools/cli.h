/*
 * cli.h: shared pieces of the ringmq command-line tool: the parsed command
 * line, output helpers and the commands' entry points.
 *
 * The tool is a thin user of <ringmq.h>: it holds no socket or protobuf
 * code. Everything decidable without the broker (syntax, names, ranges,
 * flag combinations) is checked before connecting and exits 2.
 */
#ifndef RINGMQ_CLI_H
#define RINGMQ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ringmq.h>

/* Exit codes (DESIGN.md, "Operating it"). */
#define EXIT_OK		 0
#define EXIT_REFUSED	 1 /* the broker refused, or local output failed */
#define EXIT_USAGE	 2 /* decidable without the broker */
#define EXIT_UNREACHABLE 3 /* cannot connect, connection lost, timeout */

#define DEFAULT_SERVER "127.0.0.1:7420"

enum cli_cmd {
	CMD_NONE,
	CMD_QUEUE, /* "queue" without a subcommand: help only */
	CMD_QUEUE_CREATE,
	CMD_QUEUE_SET,
	CMD_QUEUE_LIST,
	CMD_PUBLISH,
	CMD_CONSUME,
	CMD_MESSAGE, /* "message" without a subcommand: help only */
	CMD_MESSAGE_CANCEL,
};

/* Most partitions of a queue (protocol limit): partition numbers are
 * below it. */
#define CLI_MAX_PARTITIONS 1024

/* Longest dedup id the broker stores, bytes. */
#define CLI_MAX_DEDUP_ID_BYTES 65535

/* A queue setting flag of "queue create" or "queue set", passed on by
 * name. */
struct cli_setting {
	const char *name;  /* flag name without "--"; static */
	const char *value; /* borrowed from argv */
};

#define CLI_MAX_SETTINGS 16

/* The parsed command line. Strings are borrowed from argv. */
struct cli {
	enum cli_cmd cmd;
	int is_json;
	const char *server;
	const char *request_timeout_ms;
	const char *connect_timeout_ms;
	ringmq_opts *opts; /* owned by main; built after parsing */

	const char **args; /* positionals after the command words */
	size_t nargs;

	struct cli_setting settings[CLI_MAX_SETTINGS]; /* queue create, set */
	size_t nsettings;
	int has_partitions; /* --partitions given (refused by queue set) */

	/* publish: applied to every message of the invocation */
	const char *key;
	const char *dedup_id;
	int has_delay;
	uint64_t delay_ms;
	int has_deliver_at;
	uint64_t deliver_at_ms; /* wall clock, ms since the epoch */

	/* consume */
	const char *group;
	uint64_t count; /* 0 = unlimited */
	int timeout_ms;
	int is_ack;
	int is_nack;
	int has_nack_delay;
	uint64_t nack_delay_ms;

	/* message cancel */
	uint32_t partition;
	uint64_t offset;
};

/* Prints "ringmq: CODE: message" to standard error. */
void cli_error(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Exit code for a library status: 0, 1, 2 or 3. */
int cli_exit_code(int status);

/* 1 when status means the connection, not the request, failed. */
int cli_is_conn_failure(int status);

/* Name rule [A-Za-z0-9][A-Za-z0-9._-]{0,195}; 1 when valid. */
int cli_name_is_valid(const char *name);

/*
 * Parses an RFC 3339 date-time strictly: YYYY-MM-DDTHH:MM:SS, optional
 * fractional seconds (any number of digits, kept to the millisecond), then
 * Z or an offset +HH:MM / -HH:MM ("T" and "Z" may be lower case, as RFC
 * 3339 section 5.6 allows). Second 60 (a leap second) counts as the next
 * minute's second 0.
 * @param[out] msp receives ms since the epoch (UTC).
 * @return 0, or -1 for anything else, including times before 1970.
 */
int cli_parse_rfc3339(const char *s, uint64_t *msp);

/*
 * Connects with cli->opts. On failure prints "ringmq: CODE: message" and
 * returns the status (client NULL).
 */
int cli_connect(const struct cli *cli, ringmq_client **clientp);

/*
 * Writes len bytes as the contents of a JSON string (without quotes):
 * ", \ and bytes below 0x20 or 0x7f escaped, valid UTF-8 kept, every byte
 * of invalid UTF-8 written as \u00XX (XX its value).
 * @return 0, or -1 when the stream failed.
 */
int cli_json_string(FILE *out, const void *bytes, size_t len);

int cmd_queue_create(const struct cli *cli);
int cmd_queue_set(const struct cli *cli);
int cmd_queue_list(const struct cli *cli);
int cmd_publish(const struct cli *cli);
int cmd_consume(const struct cli *cli);
int cmd_message_cancel(const struct cli *cli);

#endif
