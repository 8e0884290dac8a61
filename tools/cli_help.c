/*
 * cli_help.c: the help texts of the ringmq command-line tool, one per
 * command and command group, named by the rows of ringmq.c's command
 * table and printed on standard output by --help (exit 0).
 */
#include "cli.h"

const char cli_help_main[] =
	"Usage: ringmq [OPTIONS] COMMAND [ARGS...]\n"
	"\n"
	"Administer a ringmq broker and use it from scripts.\n"
	"\n"
	"Commands:\n"
	"  queue create NAME    create a queue\n"
	"  queue set NAME       change a queue's policies\n"
	"  queue delete NAME    delete a queue, its groups and messages\n"
	"  queue list           list the queues with their counters\n"
	"  queue describe NAME  partitions, groups and policies of a queue\n"
	"  queue purge NAME     drop ready and delayed messages\n"
	"  group create QUEUE GROUP [--from earliest|latest]\n"
	"  group delete QUEUE GROUP\n"
	"  group list QUEUE\n"
	"  group describe QUEUE GROUP\n"
	"  group reset QUEUE GROUP --to earliest|latest\n"
	"                       administer consumer groups\n"
	"  publish NAME [DATA...]\n"
	"                       publish messages (arguments, a file, or "
	"lines of\n"
	"                       standard input)\n"
	"  consume NAME --group G\n"
	"                       print messages of a consumer group\n"
	"  peek NAME            look at stored messages without leasing "
	"them\n"
	"  message show NAME PARTITION OFFSET\n"
	"                       show one stored message\n"
	"  message cancel NAME PARTITION OFFSET\n"
	"                       cancel a delayed message\n"
	"  dlq list NAME        dead letters of queue NAME\n"
	"  dlq redrive NAME     publish dead letters of NAME again\n"
	"  stats                the broker's counters\n"
	"  ping                 round trip to the broker\n"
	"  cluster status       brokers, controller and partition owners\n"
	"  backup DIR           copy the broker's data into DIR on its "
	"host\n"
	"  top                  the broker's figures, refreshed every "
	"second\n"
	"  user add|passwd|delete NAME, user list, user set NAME LIMIT=N\n"
	"                       users of a broker with auth on\n"
	"  acl set USER PATTERN PERMS, acl delete USER PATTERN, acl list\n"
	"                       their permissions on queue name patterns\n"
	"\n"
	"Options (before or after the command):\n"
	"  --server HOST:PORT[,HOST:PORT...]\n"
	"                       brokers to try in turn (default: "
	"$RINGMQ_SERVER,\n"
	"                       else " DEFAULT_SERVER ")\n"
	"  --json               machine-readable output (one JSON object, "
	"or one\n"
	"                       line per message or per refresh of top)\n"
	"  --request-timeout-ms MS\n"
	"                       wait at most MS for each answer (default "
	"5000)\n"
	"  --connect-timeout-ms MS\n"
	"                       wait at most MS for each connect (default "
	"5000)\n"
	"  --user NAME          authenticate as NAME (default: $RINGMQ_USER)\n"
	"  --password-file FILE its password, the first line of FILE "
	"(default:\n"
	"                       the file $RINGMQ_PASSWORD_FILE names)\n"
	"  --tls                connect with TLS (the broker's --tls-listen "
	"port)\n"
	"  --ca FILE            CAs the broker's certificate must chain to "
	"(PEM;\n"
	"                       default: the system's); also --tls-ca\n"
	"  --cert FILE, --tls-key FILE\n"
	"                       a client certificate and its key (PEM); "
	"also\n"
	"                       --tls-cert\n"
	"  --tls-server-name NAME\n"
	"                       the name the broker's certificate must "
	"carry\n"
	"                       (default: the host of --server)\n"
	"  --help, -h           show this help, or a command's\n"
	"  --                   end of options: the rest is positional\n"
	"\n"
	"Queue and group names match [A-Za-z0-9][A-Za-z0-9._-]{0,195}; a\n"
	"queue name may also be such a name followed by .dlq (its dead-letter\n"
	"queue).\n"
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

const char cli_help_queue[] =
	"Usage: ringmq queue create NAME [SETTINGS]\n"
	"       ringmq queue set NAME SETTINGS\n"
	"       ringmq queue delete NAME\n"
	"       ringmq queue list\n"
	"       ringmq queue describe NAME\n"
	"       ringmq queue purge NAME\n"
	"\n"
	"Run 'ringmq queue SUBCOMMAND --help' for each.\n";

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
	"  --max-bytes B            most retained message bytes (default 0 " \
	"= unlimited)\n"                                                     \
	"  --dedup-window-ms MS     how long dedup ids are remembered "      \
	"(default 600000)\n"                                                 \
	"Numbers are decimal; lease times are at least 1. Over --max-depth " \
	"or\n"                                                               \
	"--max-bytes, publishes are refused with QUEUE_FULL.\n"

const char cli_help_queue_create[] =
	"Usage: ringmq queue create NAME [--partitions N] [--lease-ms MS] "
	"[...]\n"
	"\n"
	"Creates queue NAME. Succeeds also when the queue exists with the "
	"same given\n"
	"settings (settings not given are not compared); with other "
	"settings it\n"
	"fails with QUEUE_EXISTS (exit 1). Prints nothing on success "
	"({\"ok\":true}\n"
	"with --json).\n"
	"\n"
	"Settings (absent: the broker's default):\n"
	"  --partitions N           1..1024 (default 1; fixed once "
	"created)\n" HELP_POLICIES "\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

const char cli_help_queue_set[] =
	"Usage: ringmq queue set NAME [--lease-ms MS] [--max-deliveries N] "
	"[...]\n"
	"\n"
	"Changes policies of queue NAME: the settings given replace the "
	"queue's,\n"
	"the others stay. At least one is needed; --partitions cannot be "
	"changed\n"
	"(exit 2). A new lease time applies to later deliveries, not to "
	"leases\n"
	"already running. Prints nothing on success ({\"ok\":true} with "
	"--json);\n"
	"a missing queue is QUEUE_NOT_FOUND (exit 1).\n"
	"\n"
	"Settings:\n" HELP_POLICIES "\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

const char cli_help_queue_list[] =
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

const char cli_help_publish[] =
	"Usage: ringmq publish NAME [--key K] [--header NAME=VALUE]...\n"
	"                      [--delay-ms MS | --deliver-at TIME] "
	"[--dedup-id ID]\n"
	"                      [--file F | [--] DATA...]\n"
	"\n"
	"Publishes to queue NAME. Each DATA argument is one message; with "
	"--file F\n"
	"the whole file is one message (bytes as they are); with neither, "
	"each\n"
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
	"  --header NAME=VALUE\n"
	"                     a header of every message (repeatable; NAME "
	"not empty,\n"
	"                     not starting with the reserved \"ringmq-\")\n"
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
	"  --file F           publish the contents of file F as one "
	"message\n"
	"--delay-ms and --deliver-at exclude each other, as do --file and "
	"DATA. The\n"
	"options apply to every message of the invocation. A delayed "
	"message can be\n"
	"cancelled with 'ringmq message cancel' until it is due.\n"
	"\n"
	"Standard output gets one line per message, in input order:\n"
	"  PARTITION OFFSET     when the broker confirmed it (stored "
	"durably)\n"
	"  error CODE           when it was not confirmed; the reason goes "
	"to\n"
	"                       standard error as \"ringmq: CODE: "
	"message\"\n"
	"With --json each line is instead\n"
	"  {\"partition\":P,\"offset\":O,\"duplicate\":false}\n"
	"(\"duplicate\":true when confirmed earlier under its dedup id) or\n"
	"  {\"error\":{\"code\":\"CODE\",\"message\":\"...\"}}\n"
	"(the reason also goes to standard error, as above)\n"
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
	"still published) or the file cannot be read; 3 no connection or "
	"connection\n"
	"lost; 2 bad usage.\n";

const char cli_help_consume[] =
	"Usage: ringmq consume NAME --group G [--count N] [--timeout-ms MS | "
	"--follow]\n"
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
	"  --follow         never stop for lack of messages (the connection "
	"is\n"
	"                   checked with pings while idle); stop with SIGINT "
	"or\n"
	"                   SIGTERM\n"
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
	"  {\"queue\":\"Q\",\"group\":\"G\",\"partition\":P,\"offset\":O,"
	"\"lease_id\":\"L\",\n"
	"   \"delivery_count\":N,\"publish_time_ms\":T,\"key\":\"K\"|null,"
	"\"headers\":{...},\n"
	"   \"payload\":\"...\",\"encoding\":\"utf8\"}\n"
	"Strings escape \" \\ and control bytes as JSON does. When the "
	"payload, the\n"
	"key or a header value is not valid UTF-8, \"encoding\" is "
	"\"base64\" and all\n"
	"three are base64 (RFC 4648), so binary messages round-trip.\n"
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

const char cli_help_message[] =
	"Usage: ringmq message show NAME PARTITION OFFSET\n"
	"       ringmq message cancel NAME PARTITION OFFSET\n"
	"\n"
	"Run 'ringmq message show --help' or 'ringmq message cancel "
	"--help'.\n";

const char cli_help_message_cancel[] =
	"Usage: ringmq message cancel NAME PARTITION OFFSET\n"
	"\n"
	"Cancels the delayed message at PARTITION and OFFSET of queue NAME "
	"(as\n"
	"publish printed them): it is deleted and never delivered. Prints "
	"nothing on\n"
	"success ({\"ok\":true} with --json). PARTITION is 0..1023 and OFFSET a decimal number (exit 2 "
	"otherwise).\n"
	"\n"
	"Exit status: 0 cancelled; 1 refused: MESSAGE_NOT_FOUND (no such "
	"message),\n"
	"INVALID_ARGUMENT (the message is not delayed, e.g. already due) or\n"
	"QUEUE_NOT_FOUND; 3 no connection or connection lost; 2 bad usage.\n"
	"\n"
	"Global options (--server, --request-timeout-ms, ...): see 'ringmq "
	"--help'.\n";

#define HELP_GLOBAL                                                      \
	"\n"                                                             \
	"Global options (--server, --json, --request-timeout-ms, ...): " \
	"see 'ringmq\n"                                                  \
	"--help'.\n"

const char cli_help_queue_delete[] =
	"Usage: ringmq queue delete NAME\n"
	"\n"
	"Deletes queue NAME with its consumer groups and messages. Prints "
	"nothing on\n"
	"success ({\"ok\":true} with --json). Exit status: 0 deleted; 1 "
	"refused\n"
	"(QUEUE_NOT_FOUND when it does not exist); 3 no connection; 2 bad "
	"usage.\n" HELP_GLOBAL;

const char cli_help_queue_describe[] =
	"Usage: ringmq queue describe NAME\n"
	"\n"
	"Shows queue NAME: its counters (ready, delayed, in flight, stored "
	"messages\n"
	"and bytes), one row per partition (stored messages and bytes, "
	"first and next\n"
	"offset, age of the oldest message), one row per consumer group "
	"(consumers,\n"
	"ready, in flight, lag) and its policies. With --json one "
	"document:\n"
	"  {\"queue\":{\"name\":...,\"partitions\":N,...,\"policy\":{...},\n"
	"    \"partition_info\":[{\"partition\":0,\"messages\":...,"
	"\"bytes\":...,\n"
	"      \"first_offset\":...,\"next_offset\":...,"
	"\"oldest_publish_ms\":...|null}],\n"
	"    \"group_info\":[{\"queue\":...,\"name\":...,\"consumers\":...,"
	"\"ready\":...,\n"
	"      \"in_flight\":...,\"lag\":...,\"ack_floor\":[...]}]}}\n"
	"A missing queue is QUEUE_NOT_FOUND (exit 1).\n" HELP_GLOBAL;

const char cli_help_queue_purge[] =
	"Usage: ringmq queue purge NAME\n"
	"\n"
	"Deletes the ready and delayed messages of queue NAME; messages "
	"leased right\n"
	"now stay leased. Prints \"purged N\" ({\"purged\":N} with --json). "
	"A missing\n"
	"queue is QUEUE_NOT_FOUND (exit 1).\n" HELP_GLOBAL;

const char cli_help_group[] =
	"Usage: ringmq group create QUEUE GROUP [--from earliest|latest]\n"
	"       ringmq group delete QUEUE GROUP\n"
	"       ringmq group list QUEUE\n"
	"       ringmq group describe QUEUE GROUP\n"
	"       ringmq group reset QUEUE GROUP --to earliest|latest\n"
	"\n"
	"Run 'ringmq group SUBCOMMAND --help' for each.\n";

const char cli_help_group_create[] =
	"Usage: ringmq group create QUEUE GROUP [--from earliest|latest]\n"
	"\n"
	"Creates consumer group GROUP of QUEUE, reading from the earliest "
	"retained\n"
	"message (default) or only messages published from now on "
	"(latest). A group\n"
	"that exists is left as it is (exit 0). Prints nothing on success "
	"({\"ok\":true}\n"
	"with --json).\n" HELP_GLOBAL;

const char cli_help_group_delete[] =
	"Usage: ringmq group delete QUEUE GROUP\n"
	"\n"
	"Deletes consumer group GROUP of QUEUE; its leases end as released. "
	"Prints\n"
	"nothing on success ({\"ok\":true} with --json). A missing group is\n"
	"GROUP_NOT_FOUND, a missing queue QUEUE_NOT_FOUND (exit 1).\n" HELP_GLOBAL;

const char cli_help_group_list[] =
	"Usage: ringmq group list QUEUE\n"
	"\n"
	"Lists the consumer groups of QUEUE: a table with the columns "
	"GROUP,\n"
	"CONSUMERS, READY, IN_FLIGHT and LAG. With --json one document:\n"
	"  {\"groups\":[{\"queue\":...,\"name\":...,\"consumers\":...,"
	"\"ready\":...,\n"
	"    \"in_flight\":...,\"lag\":...,\"ack_floor\":[...]},...]}\n"
	"(ack_floor: per partition, every offset below it is acked.)\n" HELP_GLOBAL;

const char cli_help_group_describe[] =
	"Usage: ringmq group describe QUEUE GROUP\n"
	"\n"
	"Shows consumer group GROUP of QUEUE: consumers, ready, in flight, "
	"lag, and\n"
	"the ack floor of each partition. With --json one document:\n"
	"  {\"group\":{\"queue\":...,\"name\":...,\"consumers\":...,"
	"\"ready\":...,\n"
	"    \"in_flight\":...,\"lag\":...,\"ack_floor\":[...]}}\n"
	"A missing group is GROUP_NOT_FOUND (exit 1).\n" HELP_GLOBAL;

const char cli_help_group_reset[] =
	"Usage: ringmq group reset QUEUE GROUP --to earliest|latest\n"
	"\n"
	"Moves the read position of GROUP to the earliest retained message "
	"or past\n"
	"the last one. The group's leases end (not counted as failures: "
	"acking one\n"
	"answers NOT_LEASED) and so do its nack delays. Prints nothing on "
	"success\n"
	"({\"ok\":true} with --json).\n" HELP_GLOBAL;

const char cli_help_peek[] =
	"Usage: ringmq peek NAME [--partition P] [--count N]\n"
	"\n"
	"Shows stored messages of queue NAME without leasing them, in "
	"partition then\n"
	"offset order: the first N (default 10) of partition P, or of every "
	"partition.\n"
	"By default a table with the columns PARTITION, OFFSET, PUBLISHED, "
	"BYTES,\n"
	"KEY and PAYLOAD (escaped and cut to 40 characters). With --json "
	"each message\n"
	"is one line shaped as consume's, with \"group\" and \"lease_id\" "
	"null and\n"
	"\"delivery_count\" 0.\n" HELP_GLOBAL;

const char cli_help_message_show[] =
	"Usage: ringmq message show NAME PARTITION OFFSET\n"
	"\n"
	"Shows the stored message at PARTITION and OFFSET of queue NAME: "
	"its publish\n"
	"time, key, headers and payload. With --json one line shaped as "
	"peek's.\n"
	"A missing message is MESSAGE_NOT_FOUND (exit 1).\n" HELP_GLOBAL;

const char cli_help_dlq[] =
	"Usage: ringmq dlq list NAME [--count N]\n"
	"       ringmq dlq redrive NAME [--group G] [--count N]\n"
	"\n"
	"Run 'ringmq dlq list --help' or 'ringmq dlq redrive --help'.\n";

const char cli_help_dlq_list[] =
	"Usage: ringmq dlq list NAME [--count N]\n"
	"\n"
	"Lists the dead letters of queue NAME (the source queue): messages "
	"of its\n"
	"dead-letter queue that died in NAME, at most N (default: the "
	"broker's batch\n"
	"limit; a larger N pages through as many answers as it takes). By "
	"default a\n"
	"table with the columns PARTITION, OFFSET, GROUP, REASON, "
	"DELIVERIES and\n"
	"PAYLOAD. With --json each message is one line shaped\n"
	"as peek's; \"queue\" is the dead-letter queue (PARTITION and OFFSET "
	"are its),\n"
	"and the ringmq-* headers tell where and why it died.\n" HELP_GLOBAL;

const char cli_help_dlq_redrive[] =
	"Usage: ringmq dlq redrive NAME [--group G] [--count N]\n"
	"\n"
	"Publishes dead letters of queue NAME again on it: each gets a new "
	"offset that\n"
	"only the group it died in sees, its delivery count starts over, "
	"and it\n"
	"leaves the dead-letter queue. --group G: only those that died in "
	"G;\n"
	"--count N: at most N (default all). Prints \"redriven N\" "
	"({\"redriven\":N}\n"
	"with --json).\n" HELP_GLOBAL;

const char cli_help_stats[] =
	"Usage: ringmq stats\n"
	"\n"
	"Shows the broker's counters (connections, queues, rates, storage "
	"size and\n"
	"limit, ...) as a NAME VALUE table. With --json one document:\n"
	"  {\"stats\":{\"NAME\":VALUE,...}}\n"
	"Names are the broker's; new ones may appear.\n" HELP_GLOBAL;

const char cli_help_cluster[] = "Usage: ringmq cluster status\n"
				"\n"
				"Run 'ringmq cluster status --help'.\n";

const char cli_help_cluster_status[] =
	"Usage: ringmq cluster status\n"
	"\n"
	"Shows where each queue's partitions are served (Metadata): the "
	"cluster's\n"
	"name and controller, its live brokers (BROKER ADDRESS), then a "
	"QUEUE\n"
	"PARTITION OWNER EPOCH row per partition (OWNER - while none is "
	"placed).\n"
	"Any broker answers for the whole cluster; give several --server "
	"flags\n"
	"to reach whichever is up. A broker not in cluster mode names itself "
	"as\n"
	"the owner of every partition, at epoch 0. With --json one "
	"document:\n"
	"  {\"cluster\":NAME|null,\"controller\":ID|null,\n"
	"   \"brokers\":[{\"id\":ID,\"address\":ADDR},...],\n"
	"   \"queues\":[{\"name\":Q,\"partitions\":[{\"partition\":P,\n"
	"     \"owner\":ADDR|null,\"epoch\":E},...]},...]}\n" HELP_GLOBAL;

const char cli_help_ping[] =
	"Usage: ringmq ping\n"
	"\n"
	"Connects and measures one round trip (Ping / Pong). Prints\n"
	"\"pong from HOST:PORT in MS ms\"; with --json\n"
	"  {\"server\":\"HOST:PORT\",\"rtt_us\":N}\n" HELP_GLOBAL;

const char cli_help_backup[] =
	"Usage: ringmq backup DIR\n"
	"\n"
	"Has the broker write a consistent, compacted copy of its data "
	"(LMDB's\n"
	"compacting copy) into directory DIR while it keeps running, and "
	"waits until\n"
	"the copy is complete. The broker writes the copy itself, on the "
	"broker's\n"
	"host: DIR is a path there, so it must be absolute (exit 2 "
	"otherwise). The\n"
	"broker creates DIR if its parent exists; a DIR already holding a "
	"data file\n"
	"is refused, never overwritten. A broker started with --data "
	"DIR has\n"
	"every queue, group and message stored when the copy began.\n"
	"\n"
	"Prints \"backup written to DIR (N bytes)\" (N: the size of the "
	"copy); with\n"
	"--json {\"dir\":\"DIR\",\"bytes\":N}. A copy can take minutes: "
	"the answer is\n"
	"awaited at least 10 minutes (longer with a larger "
	"--request-timeout-ms).\n"
	"\n"
	"Exit status: 0 written; 1 refused (INVALID_ARGUMENT: a backup is "
	"already\n"
	"running, or DIR already holds data; INTERNAL: the copy failed, "
	"e.g. no space\n"
	"or no permission on the broker's host); 3 no connection, "
	"connection lost or\n"
	"no answer in time; 2 bad usage.\n" HELP_GLOBAL;

const char cli_help_top[] =
	"Usage: ringmq top [--interval-ms MS] [--count N]\n"
	"\n"
	"Shows the broker's figures and refreshes them every MS "
	"milliseconds\n"
	"(10..3600000, default 1000): connections, queues, groups, "
	"messages (ready,\n"
	"delayed, in flight), storage used and limit, broker-wide rates "
	"per second\n"
	"(publish, deliver, ack: the change of the broker's counters since "
	"the\n"
	"previous refresh; \"-\" on the first), then one row per queue "
	"(ready,\n"
	"delayed, in flight, groups, messages, bytes) and one per consumer "
	"group\n"
	"(consumers, ready, in flight, lag). The broker counts rates for "
	"itself as a\n"
	"whole, not per queue.\n"
	"\n"
	"  --interval-ms MS   time between refreshes (default 1000)\n"
	"  --count N          stop after N refreshes (default: until "
	"stopped)\n"
	"\n"
	"When standard output is a terminal the screen is cleared before "
	"each\n"
	"refresh; otherwise each refresh is a block of lines after a blank "
	"line.\n"
	"With --json each refresh is one line:\n"
	"  {\"time_ms\":T,\"server\":\"HOST:PORT\",\"stats\":{\"NAME\":"
	"VALUE,...},\n"
	"   \"rates\":{\"publish\":R,\"deliver\":R,\"ack\":R},\n"
	"   \"queues\":[{\"name\":...,\"partitions\":...,\"ready\":...,"
	"\"delayed\":...,\n"
	"     \"in_flight\":...,\"groups\":...,\"messages\":...,"
	"\"bytes\":...}],\n"
	"   \"groups\":[ objects as 'group list --json' prints ]}\n"
	"(rates per second, null on the first refresh or after the broker "
	"restarted).\n"
	"\n"
	"SIGINT or SIGTERM stops top after the refresh in progress, with "
	"exit status\n"
	"130 or 143. Exit status otherwise: 0 after N refreshes; 1 a "
	"request was\n"
	"refused or the output could not be written; 3 no connection or "
	"connection\n"
	"lost; 2 bad usage.\n" HELP_GLOBAL;

const char cli_help_user[] =
	"Usage: ringmq user add NAME [--new-password-file FILE]\n"
	"       ringmq user passwd NAME [--new-password-file FILE]\n"
	"       ringmq user delete NAME\n"
	"       ringmq user list\n"
	"       ringmq user set NAME LIMIT=VALUE...\n"
	"\n"
	"Users of a broker run with --auth on. Run 'ringmq user add --help' "
	"and\n"
	"so on for each.\n";

#define HELP_NEW_PASSWORD                                                \
	"The new password comes from FILE (its first line), else from\n" \
	"$RINGMQ_NEW_PASSWORD, else it is asked twice on the terminal; " \
	"never from\n"                                                   \
	"a flag (flags show in ps). It is 1 to 1024 printable ASCII "    \
	"characters\n"                                                   \
	"and never leaves this host: ringmq sends the broker only the "  \
	"SCRAM-SHA-256\n"                                                \
	"keys derived from it (PBKDF2, a fresh random salt).\n"

const char cli_help_user_add[] =
	"Usage: ringmq user add NAME [--new-password-file FILE]\n"
	"\n"
	"Adds user NAME (1 to 128 characters of [A-Za-z0-9._@-]), with no "
	"permission\n"
	"yet: grant some with 'ringmq acl set'. Needs admin on \"*\".\n"
	"\n" HELP_NEW_PASSWORD "\n"
	"Exit status: 0 added; 1 refused (USER_EXISTS, "
	"PERMISSION_DENIED); 2 bad\n"
	"usage; 3 no connection.\n" HELP_GLOBAL;

const char cli_help_user_passwd[] =
	"Usage: ringmq user passwd NAME [--new-password-file FILE]\n"
	"\n"
	"Changes the password of user NAME. Its open connections go on; the "
	"new\n"
	"password counts from their next connect. Needs admin on \"*\", "
	"except for\n"
	"one's own password.\n"
	"\n" HELP_NEW_PASSWORD "\n"
	"Exit status: 0 changed; 1 refused (USER_NOT_FOUND, "
	"PERMISSION_DENIED); 2 bad\n"
	"usage; 3 no connection.\n" HELP_GLOBAL;

const char cli_help_user_delete[] =
	"Usage: ringmq user delete NAME\n"
	"\n"
	"Deletes user NAME; its connections are closed. Needs admin on "
	"\"*\".\n"
	"\n"
	"Exit status: 0 deleted; 1 refused (USER_NOT_FOUND, "
	"PERMISSION_DENIED); 2 bad\n"
	"usage; 3 no connection.\n" HELP_GLOBAL;

const char cli_help_user_list[] =
	"Usage: ringmq user list\n"
	"\n"
	"Lists the users: NAME, CREATED, CONNECTIONS (open now) and the "
	"number of\n"
	"PERMISSIONS ('ringmq acl list' shows them). With --json\n"
	"{\"users\":[{\"name\":...,\"created\":...,\"connections\":N,\n"
	"\"permissions\":[{\"pattern\":...,\"publish\":B,\"consume\":B,"
	"\"admin\":B}]}]}.\n"
	"Needs admin on \"*\".\n" HELP_GLOBAL;

const char cli_help_user_set[] =
	"Usage: ringmq user set NAME LIMIT=VALUE...\n"
	"\n"
	"Sets quotas of user NAME, at once (0: no limit):\n"
	"  max-connections=N     connections at once; one more is refused "
	"with\n"
	"                        QUOTA_EXCEEDED\n"
	"  publish-rate=N        messages published per second\n"
	"  publish-bytes-rate=N  message bytes published per second\n"
	"  max-leases=N          leases held at once by all its "
	"connections\n"
	"A publish over a rate is refused with QUOTA_EXCEEDED and a time to "
	"wait,\n"
	"which the library honours by itself (it sends the batch again "
	"then).\n"
	"Deliveries wait while max-leases is reached. Needs admin on "
	"\"*\".\n"
	"\n"
	"Exit status: 0 set; 1 refused (USER_NOT_FOUND, PERMISSION_DENIED); "
	"2 bad\n"
	"usage; 3 no connection.\n" HELP_GLOBAL;

const char cli_help_acl[] =
	"Usage: ringmq acl set USER PATTERN PERMS\n"
	"       ringmq acl delete USER PATTERN\n"
	"       ringmq acl list [USER]\n"
	"\n"
	"Permissions of users on queue name patterns. Run 'ringmq acl set "
	"--help'\n"
	"and so on for each.\n";

const char cli_help_acl_set[] =
	"Usage: ringmq acl set USER PATTERN PERMS\n"
	"\n"
	"Grants USER PERMS on the queues whose names match PATTERN, "
	"replacing what\n"
	"it had on exactly PATTERN. PATTERN is a queue name where \"*\" "
	"matches any\n"
	"run of characters: \"jobs.*\", \"*.dlq\", \"*\" (every queue). "
	"PERMS joins with\n"
	"commas:\n"
	"  publish   publish\n"
	"  consume   consume, ack, peek, show, dlq list, and the queue's "
	"groups\n"
	"  admin     queue create, set, delete, purge; message cancel; dlq "
	"redrive;\n"
	"            on \"*\": backup, users and permissions\n"
	"  all       all three\n"
	"A dead-letter queue is a queue like any other: \"jobs.dlq\" needs "
	"its own\n"
	"grant (or a pattern matching it). Needs admin on \"*\".\n"
	"\n"
	"Exit status: 0 granted; 1 refused (USER_NOT_FOUND, "
	"PERMISSION_DENIED); 2 bad\n"
	"usage; 3 no connection.\n" HELP_GLOBAL;

const char cli_help_acl_delete[] =
	"Usage: ringmq acl delete USER PATTERN\n"
	"\n"
	"Takes away what USER had on exactly PATTERN, at once: its "
	"subscriptions and\n"
	"leases on queues it may no longer consume from end. Needs admin "
	"on \"*\".\n"
	"\n"
	"Exit status: 0 taken away; 1 refused (USER_NOT_FOUND, "
	"INVALID_ARGUMENT:\n"
	"nothing on PATTERN, PERMISSION_DENIED); 2 bad usage; 3 no "
	"connection.\n" HELP_GLOBAL;

const char cli_help_acl_list[] =
	"Usage: ringmq acl list [USER]\n"
	"\n"
	"Lists the permissions of every user, or of USER: USER, PATTERN, "
	"PERMS. With\n"
	"--json {\"permissions\":[{\"user\":...,\"pattern\":...,"
	"\"perms\":\"publish,...\"}]}.\n"
	"Needs admin on \"*\".\n" HELP_GLOBAL;
