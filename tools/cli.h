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

/* Most partitions of a queue (protocol limit): partition numbers are
 * below it. */
#define CLI_MAX_PARTITIONS 1024

/* Longest dedup id the broker stores, bytes. */
#define CLI_MAX_DEDUP_ID_BYTES 65535

/* Longest message key the broker stores, bytes. */
#define CLI_MAX_KEY_BYTES 65535

/* A queue setting flag of "queue create" or "queue set", passed on by
 * name. */
struct cli_setting {
	const char *name;  /* flag name without "--"; static */
	const char *value; /* borrowed from argv */
};

#define CLI_MAX_SETTINGS 16

/* A --header NAME=VALUE of publish. */
struct cli_header {
	const char *name;  /* owned by the header array (a copy of NAME) */
	const char *value; /* borrowed from argv */
};

/* The parsed command line. Strings are borrowed from argv. */
struct cli {
	int is_json;
	const char *server;
	char server_list[1024]; /* the --server flags, joined */
	unsigned nservers;
	const char *request_timeout_ms;
	const char *connect_timeout_ms;
	int is_tls;
	const char *tls_ca;	     /* NULL: the system's CAs */
	const char *tls_cert;	     /* NULL: no client certificate */
	const char *tls_key;	     /* with tls_cert */
	const char *tls_server_name; /* NULL: the server's host */
	ringmq_opts *opts;	     /* owned by main; built after parsing */

	const char **args; /* positionals after the command words */
	size_t nargs;

	struct cli_setting settings[CLI_MAX_SETTINGS]; /* queue create, set */
	size_t nsettings;
	int has_partitions; /* --partitions given (refused by queue set) */
	ringmq_queue_opts *queue_opts; /* owned by main; the settings, built
					  after parsing */

	/* publish: applied to every message of the invocation */
	struct cli_header *headers; /* owned by main; nheaders entries */
	size_t nheaders;
	const char *file; /* --file: its contents are one message */
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
	int has_timeout; /* --timeout-ms given */
	int is_follow;	 /* consume: never stop on idle */
	int is_ack;
	int is_nack;
	int has_nack_delay;
	uint64_t nack_delay_ms;

	/* message show / cancel; peek --partition */
	int has_partition;
	uint32_t partition;
	uint64_t offset;

	/* group create --from, group reset --to: RINGMQ_START_* */
	int has_start;
	int start;

	/* top (--count above: refreshes) */
	int interval_ms;

	/* authentication: the library reads $RINGMQ_USER and
	 * $RINGMQ_PASSWORD_FILE when these are not given */
	const char *user;
	const char *password_file;
	/* user add, passwd: the new password's file; read into new_password
	 * (owned by main, wiped) before connecting */
	const char *new_password_file;
	char *new_password;
};

/* Prints "ringmq: CODE: message" to standard error (with --json too: the
 * error line is the same for every script). */
void cli_error(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Exit code for a library status: 0, 1, 2 or 3. */
int cli_exit_code(int status);

/* 1 when status means the connection, not the request, failed. */
int cli_is_conn_failure(int status);

/* Name rule [A-Za-z0-9][A-Za-z0-9._-]{0,195}; 1 when valid. */
int cli_name_is_valid(const char *name);
/* A queue: a name of the rule, or one followed by ".dlq" (the rule leaves
 * room for the dead-letter queue of the longest name); 1 when valid. */
int cli_queue_name_is_valid(const char *name);

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

/* User names: 1 to 128 of [A-Za-z0-9._@-]; 1 when valid. */
int cli_user_name_is_valid(const char *name);
/* Permission patterns: 1 to 200 queue name characters and '*'. */
int cli_pattern_is_valid(const char *pattern);
/* "publish,consume", "admin", "all", ...: RINGMQ_PERM_* bits into *perms.
 * @return 0 or -1. */
int cli_parse_perms(const char *s, unsigned *perms);
/* "publish-rate=100": the limit's name (into *namep, static; may be
 * NULL) and value. @return 0 or -1. */
int cli_parse_limit(const char *s, const char **namep, uint64_t *valuep);
/*
 * The new password of user add / passwd, into cli->new_password: from
 * --new-password-file, else $RINGMQ_NEW_PASSWORD, else asked twice on the
 * terminal (not echoed). Never a flag: flags show in ps.
 * @return 0, or -1 after a usage error.
 */
int cli_read_new_password(struct cli *cli);

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

/* Writes s as a JSON string with its quotes; "null" when s is NULL. */
void cli_json_str(FILE *out, const char *s);

/* 1 when the len bytes are valid UTF-8 (RFC 3629). */
int cli_utf8_is_valid(const void *bytes, size_t len);

/* Writes len bytes as standard base64 (RFC 4648, with padding). */
void cli_base64(FILE *out, const void *bytes, size_t len);

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds
 * (2026-12-01T10:00:00.000Z; buf of at least 32 bytes), or "-" for 0.
 * @return buf. */
const char *cli_format_time(char *buf, size_t len, uint64_t ms);

/* Wall clock, ms since the epoch. */
uint64_t cli_now_ms(void);

/*
 * Ends a command: flushes standard output and turns a failed write into
 * RINGMQ_IO (printed). @return rc, or RINGMQ_IO when rc was OK and the
 * output failed.
 */
int cli_finish_output(int rc);

/*
 * Reports a failed call: "ringmq: CODE: what: the client's message".
 * @return rc.
 */
int cli_fail(ringmq_client *c, int rc, const char *what);

/* Prints {"ok":true} with --json (nothing otherwise); for commands that
 * have no other output. */
void cli_print_ok(const struct cli *cli);

/* Prints what a command counted: {"NAME":N} with --json, else "NAME N". */
void cli_print_count(const struct cli *cli, const char *name, uint64_t n);

/* Prints a broker counter on stdout: an integer when it is one (exactly
 * representable), else with as many digits as a double needs; not a
 * number: null with is_json, else "-". */
void cli_print_value(double v, int is_json);

/* Writes group i of l as a JSON object (no newline). */
void cli_print_group_json(const ringmq_group_list *l, size_t i);

/* Writes the groups of l as JSON objects separated by commas (the inside
 * of an array). */
void cli_print_groups_json(const ringmq_group_list *l);

/* The groups of l as a table with a header line (group list, queue
 * describe). */
void cli_print_groups_table(const ringmq_group_list *l);

/*
 * A message of a stream read from the broker, for the shared output of
 * consume, peek, message show and dlq list (one JSON line each).
 */
struct cli_msg {
	const char *queue;
	const char *group; /* NULL: not leased (peek, dlq list, show) */
	int has_lease;
	uint64_t lease_id;
	uint32_t delivery_count;
	uint32_t partition;
	uint64_t offset;
	uint64_t publish_ms;
	const void *payload;
	size_t payload_len;
	const void *key; /* NULL: none */
	size_t key_len;
	size_t nheaders;
	const char *(*header_name)(const void *src, size_t h);
	const void *(*header_value)(const void *src, size_t h, size_t *lenp);
	const void *src; /* passed to the header functions */
};

/* Writes m as one JSON line (see README, "JSON output"). */
void cli_print_msg_json(FILE *out, const struct cli_msg *m);

/*
 * The commands the runner (ringmq.c) connects for: each sends its
 * requests over c and prints the result, or reports the failure
 * ("ringmq: CODE: ..."). The runner then flushes the output, frees c and
 * turns the status into the exit code.
 * @return the status: RINGMQ_OK, or the failed call's.
 */
int cmd_queue_create(const struct cli *cli, ringmq_client *c);
int cmd_queue_set(const struct cli *cli, ringmq_client *c);
int cmd_queue_delete(const struct cli *cli, ringmq_client *c);
int cmd_queue_list(const struct cli *cli, ringmq_client *c);
int cmd_queue_describe(const struct cli *cli, ringmq_client *c);
int cmd_queue_purge(const struct cli *cli, ringmq_client *c);
int cmd_group_create(const struct cli *cli, ringmq_client *c);
int cmd_group_delete(const struct cli *cli, ringmq_client *c);
int cmd_group_list(const struct cli *cli, ringmq_client *c);
int cmd_group_describe(const struct cli *cli, ringmq_client *c);
int cmd_group_reset(const struct cli *cli, ringmq_client *c);
int cmd_peek(const struct cli *cli, ringmq_client *c);
int cmd_message_show(const struct cli *cli, ringmq_client *c);
int cmd_message_cancel(const struct cli *cli, ringmq_client *c);
int cmd_dlq_list(const struct cli *cli, ringmq_client *c);
int cmd_dlq_redrive(const struct cli *cli, ringmq_client *c);
int cmd_stats(const struct cli *cli, ringmq_client *c);
int cmd_cluster_status(const struct cli *cli, ringmq_client *c);
int cmd_ping(const struct cli *cli, ringmq_client *c);
int cmd_backup(const struct cli *cli, ringmq_client *c);
int cmd_user_add(const struct cli *cli, ringmq_client *c);
int cmd_user_passwd(const struct cli *cli, ringmq_client *c);
int cmd_user_delete(const struct cli *cli, ringmq_client *c);
int cmd_user_list(const struct cli *cli, ringmq_client *c);
int cmd_user_set(const struct cli *cli, ringmq_client *c);
int cmd_acl_set(const struct cli *cli, ringmq_client *c);
int cmd_acl_delete(const struct cli *cli, ringmq_client *c);
int cmd_acl_list(const struct cli *cli, ringmq_client *c);

/*
 * The commands that keep the connection to themselves: publish answers
 * every input message even when it cannot connect, consume and top run
 * until done or signalled (exit 128 + the signal).
 * @return the exit code.
 */
int cmd_publish(const struct cli *cli);
int cmd_consume(const struct cli *cli);
int cmd_top(const struct cli *cli);

/* The help texts (cli_help.c), printed on standard output by --help. */
extern const char cli_help_main[];
extern const char cli_help_queue[];
extern const char cli_help_queue_create[];
extern const char cli_help_queue_set[];
extern const char cli_help_queue_delete[];
extern const char cli_help_queue_list[];
extern const char cli_help_queue_describe[];
extern const char cli_help_queue_purge[];
extern const char cli_help_group[];
extern const char cli_help_group_create[];
extern const char cli_help_group_delete[];
extern const char cli_help_group_list[];
extern const char cli_help_group_describe[];
extern const char cli_help_group_reset[];
extern const char cli_help_publish[];
extern const char cli_help_consume[];
extern const char cli_help_peek[];
extern const char cli_help_message[];
extern const char cli_help_message_show[];
extern const char cli_help_message_cancel[];
extern const char cli_help_dlq[];
extern const char cli_help_dlq_list[];
extern const char cli_help_dlq_redrive[];
extern const char cli_help_stats[];
extern const char cli_help_cluster[];
extern const char cli_help_cluster_status[];
extern const char cli_help_ping[];
extern const char cli_help_backup[];
extern const char cli_help_top[];
extern const char cli_help_user[];
extern const char cli_help_user_add[];
extern const char cli_help_user_passwd[];
extern const char cli_help_user_delete[];
extern const char cli_help_user_list[];
extern const char cli_help_user_set[];
extern const char cli_help_acl[];
extern const char cli_help_acl_set[];
extern const char cli_help_acl_delete[];
extern const char cli_help_acl_list[];

#endif
