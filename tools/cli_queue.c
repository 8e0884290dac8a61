/*
 * cli_queue.c: "ringmq queue create", "set", "delete", "list", "describe"
 * and "purge".
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

/* Create or set: one request taking the settings of the command line. */
typedef int (*queue_req_fn)(ringmq_client *c, const char *name,
			    const ringmq_queue_opts *o);

/* Sends the request with the settings of the command line (built and
 * checked by the library before connecting). */
static int
queue_settings_call(const struct cli *cli, ringmq_client *c, queue_req_fn req)
{
	int rc = req(c, cli->args[0], cli->queue_opts);

	if (rc != RINGMQ_OK)
		cli_error(rc, "queue %s: %s", cli->args[0],
			  ringmq_client_errmsg(c));
	else
		cli_print_ok(cli);
	return rc;
}

int
cmd_queue_create(const struct cli *cli, ringmq_client *c)
{
	return queue_settings_call(cli, c, ringmq_queue_create);
}

int
cmd_queue_set(const struct cli *cli, ringmq_client *c)
{
	return queue_settings_call(cli, c, ringmq_queue_set);
}

/* The names the JSON output gives the numeric policies, by setting. */
static const struct {
	const char *setting;
	const char *json;
} json_policies[] = {
	{ "lease-ms", "lease_ms" },
	{ "max-lease-ms", "max_lease_ms" },
	{ "max-deliveries", "max_deliveries" },
	{ "max-depth", "max_depth" },
	{ "max-bytes", "max_bytes" },
	{ "dedup-window-ms", "dedup_window_ms" },
};

/* ,"policy":{...} of queue i, or nothing when the broker reported none. */
static void
print_json_policy(const ringmq_queue_list *l, size_t i)
{
	const char *dlq = ringmq_queue_list_dead_letter_queue(l, i);
	const char *sep = "";
	uint64_t v;

	if (dlq == NULL)
		return;
	fputs(",\"policy\":{", stdout);
	for (size_t k = 0; k < sizeof(json_policies) / sizeof(json_policies[0]);
	     k++) {
		if (!ringmq_queue_list_setting(l, i, json_policies[k].setting,
					       &v))
			continue;
		printf("%s\"%s\":%" PRIu64, sep, json_policies[k].json, v);
		sep = ",";
	}
	printf("%s\"dead_letter\":\"", sep);
	(void)cli_json_string(stdout, dlq, strlen(dlq));
	fputs("\"}", stdout);
}

static void
print_json(const ringmq_queue_list *l)
{
	size_t n = ringmq_queue_list_count(l);

	fputs("{\"queues\":[", stdout);
	for (size_t i = 0; i < n; i++) {
		const char *name = ringmq_queue_list_name(l, i);

		fputs(i ? ",{\"name\":\"" : "{\"name\":\"", stdout);
		(void)cli_json_string(stdout, name, strlen(name));
		printf("\",\"partitions\":%" PRIu32 ",\"ready\":%" PRIu64
		       ",\"delayed\":%" PRIu64 ",\"in_flight\":%" PRIu64
		       ",\"groups\":%" PRIu32 ",\"messages\":%" PRIu64
		       ",\"bytes\":%" PRIu64,
		       ringmq_queue_list_partitions(l, i),
		       ringmq_queue_list_ready(l, i),
		       ringmq_queue_list_delayed(l, i),
		       ringmq_queue_list_in_flight(l, i),
		       ringmq_queue_list_groups(l, i),
		       ringmq_queue_list_messages(l, i),
		       ringmq_queue_list_bytes(l, i));
		print_json_policy(l, i);
		fputc('}', stdout);
	}
	fputs("]}\n", stdout);
}

static void
print_table(const ringmq_queue_list *l)
{
	size_t n = ringmq_queue_list_count(l);
	int width = 4; /* "NAME" */

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(ringmq_queue_list_name(l, i));

		if ((int)len > width)
			width = (int)len;
	}
	printf("%-*s  %10s  %10s  %10s  %10s  %6s\n", width, "NAME",
	       "PARTITIONS", "READY", "DELAYED", "IN_FLIGHT", "GROUPS");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %10" PRIu32 "  %10" PRIu64 "  %10" PRIu64
		       "  %10" PRIu64 "  %6" PRIu32 "\n",
		       width, ringmq_queue_list_name(l, i),
		       ringmq_queue_list_partitions(l, i),
		       ringmq_queue_list_ready(l, i),
		       ringmq_queue_list_delayed(l, i),
		       ringmq_queue_list_in_flight(l, i),
		       ringmq_queue_list_groups(l, i));
}

int
cmd_queue_list(const struct cli *cli, ringmq_client *c)
{
	ringmq_queue_list *l = NULL;
	int rc = ringmq_queue_list_get(c, &l);

	if (rc != RINGMQ_OK) {
		cli_error(rc, "queue list: %s", ringmq_client_errmsg(c));
		return rc;
	}
	if (cli->is_json)
		print_json(l);
	else
		print_table(l);
	ringmq_queue_list_free(l);
	return rc;
}

/* "queue NAME: ..." for a failed call on the command's queue. */
static int
fail_queue(const struct cli *cli, ringmq_client *c, int rc)
{
	char what[256];

	snprintf(what, sizeof(what), "queue %s", cli->args[0]);
	return cli_fail(c, rc, what);
}

int
cmd_queue_delete(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_queue_delete(c, cli->args[0]);

	if (rc != RINGMQ_OK)
		return fail_queue(cli, c, rc);
	cli_print_ok(cli);
	return rc;
}

int
cmd_queue_purge(const struct cli *cli, ringmq_client *c)
{
	uint64_t purged = 0;
	int rc = ringmq_queue_purge(c, cli->args[0], &purged);

	if (rc != RINGMQ_OK)
		return fail_queue(cli, c, rc);
	cli_print_count(cli, "purged", purged);
	return rc;
}

/* ,"policy":{...} of a description, or nothing when none reported. */
static void
print_describe_policy_json(const ringmq_queue_describe *d)
{
	const char *dlq = ringmq_queue_describe_dead_letter_queue(d);
	const char *sep = "";
	uint64_t v;

	if (dlq == NULL)
		return;
	fputs(",\"policy\":{", stdout);
	for (size_t k = 0; k < sizeof(json_policies) / sizeof(json_policies[0]);
	     k++) {
		if (!ringmq_queue_describe_setting(d, json_policies[k].setting,
						   &v))
			continue;
		printf("%s\"%s\":%" PRIu64, sep, json_policies[k].json, v);
		sep = ",";
	}
	printf("%s\"dead_letter\":", sep);
	cli_json_str(stdout, dlq);
	fputc('}', stdout);
}

static void
print_describe_json(const ringmq_queue_describe *d)
{
	const ringmq_group_list *gl = ringmq_queue_describe_groups(d);
	size_t np = ringmq_queue_describe_partition_count(d);

	fputs("{\"queue\":{\"name\":", stdout);
	cli_json_str(stdout, ringmq_queue_describe_name(d));
	printf(",\"partitions\":%" PRIu32 ",\"ready\":%" PRIu64
	       ",\"delayed\":%" PRIu64 ",\"in_flight\":%" PRIu64
	       ",\"groups\":%zu,\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64,
	       ringmq_queue_describe_partitions(d),
	       ringmq_queue_describe_ready(d), ringmq_queue_describe_delayed(d),
	       ringmq_queue_describe_in_flight(d), ringmq_group_list_count(gl),
	       ringmq_queue_describe_messages(d),
	       ringmq_queue_describe_bytes(d));
	print_describe_policy_json(d);
	fputs(",\"partition_info\":[", stdout);
	for (size_t i = 0; i < np; i++) {
		uint64_t oldest =
			ringmq_queue_describe_partition_oldest_publish_ms(d, i);

		printf("%s{\"partition\":%" PRIu32 ",\"messages\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"first_offset\":%" PRIu64
		       ",\"next_offset\":%" PRIu64 ",\"oldest_publish_ms\":",
		       i ? "," : "", ringmq_queue_describe_partition(d, i),
		       ringmq_queue_describe_partition_messages(d, i),
		       ringmq_queue_describe_partition_bytes(d, i),
		       ringmq_queue_describe_partition_first_offset(d, i),
		       ringmq_queue_describe_partition_next_offset(d, i));
		if (oldest)
			printf("%" PRIu64 "}", oldest);
		else
			fputs("null}", stdout);
	}
	fputs("],\"group_info\":[", stdout);
	cli_print_groups_json(gl);
	fputs("]}}\n", stdout);
}

static void
print_describe_table(const ringmq_queue_describe *d)
{
	const ringmq_group_list *gl = ringmq_queue_describe_groups(d);
	size_t np = ringmq_queue_describe_partition_count(d);
	const char *dlq = ringmq_queue_describe_dead_letter_queue(d);
	uint64_t now = cli_now_ms();
	uint64_t v;

	printf("%-11s %s\n", "queue", ringmq_queue_describe_name(d));
	printf("%-11s %" PRIu32 "\n", "partitions",
	       ringmq_queue_describe_partitions(d));
	printf("%-11s %" PRIu64 "\n", "ready", ringmq_queue_describe_ready(d));
	printf("%-11s %" PRIu64 "\n", "delayed",
	       ringmq_queue_describe_delayed(d));
	printf("%-11s %" PRIu64 "\n", "in_flight",
	       ringmq_queue_describe_in_flight(d));
	printf("%-11s %" PRIu64 "\n", "messages",
	       ringmq_queue_describe_messages(d));
	printf("%-11s %" PRIu64 "\n", "bytes", ringmq_queue_describe_bytes(d));
	for (size_t k = 0; k < sizeof(json_policies) / sizeof(json_policies[0]);
	     k++)
		if (ringmq_queue_describe_setting(d, json_policies[k].setting,
						  &v))
			printf("%-16s %" PRIu64 "\n", json_policies[k].json, v);
	if (dlq != NULL)
		printf("%-16s %s\n", "dead_letter", dlq);

	printf("\n%9s  %10s  %12s  %12s  %12s  %13s\n", "PARTITION", "MESSAGES",
	       "BYTES", "FIRST_OFFSET", "NEXT_OFFSET", "OLDEST_AGE_MS");
	for (size_t i = 0; i < np; i++) {
		uint64_t oldest =
			ringmq_queue_describe_partition_oldest_publish_ms(d, i);

		printf("%9" PRIu32 "  %10" PRIu64 "  %12" PRIu64 "  %12" PRIu64
		       "  %12" PRIu64 "  ",
		       ringmq_queue_describe_partition(d, i),
		       ringmq_queue_describe_partition_messages(d, i),
		       ringmq_queue_describe_partition_bytes(d, i),
		       ringmq_queue_describe_partition_first_offset(d, i),
		       ringmq_queue_describe_partition_next_offset(d, i));
		if (oldest)
			printf("%13" PRIu64 "\n",
			       now > oldest ? now - oldest : 0);
		else
			printf("%13s\n", "-");
	}
	putchar('\n');
	cli_print_groups_table(gl);
}

int
cmd_queue_describe(const struct cli *cli, ringmq_client *c)
{
	ringmq_queue_describe *d = NULL;
	int rc = ringmq_queue_describe_get(c, cli->args[0], &d);

	if (rc != RINGMQ_OK)
		return fail_queue(cli, c, rc);
	if (cli->is_json)
		print_describe_json(d);
	else
		print_describe_table(d);
	ringmq_queue_describe_free(d);
	return rc;
}
