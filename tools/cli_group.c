/*
 * cli_group.c: "ringmq group create", "delete", "list", "describe" and
 * "reset": consumer groups of a queue.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

void
cli_print_group_json(const ringmq_group_list *l, size_t i)
{
	size_t np = ringmq_group_list_partition_count(l, i);

	fputs("{\"queue\":", stdout);
	cli_json_str(stdout, ringmq_group_list_queue(l, i));
	fputs(",\"name\":", stdout);
	cli_json_str(stdout, ringmq_group_list_name(l, i));
	printf(",\"consumers\":%" PRIu32 ",\"ready\":%" PRIu64
	       ",\"in_flight\":%" PRIu64 ",\"lag\":%" PRIu64 ",\"ack_floor\":[",
	       ringmq_group_list_consumers(l, i), ringmq_group_list_ready(l, i),
	       ringmq_group_list_in_flight(l, i), ringmq_group_list_lag(l, i));
	for (size_t p = 0; p < np; p++)
		printf("%s%" PRIu64, p ? "," : "",
		       ringmq_group_list_ack_floor(l, i, p));
	fputs("]}", stdout);
}

void
cli_print_groups_json(const ringmq_group_list *l)
{
	for (size_t i = 0; i < ringmq_group_list_count(l); i++) {
		if (i)
			fputc(',', stdout);
		cli_print_group_json(l, i);
	}
}

/* "group QUEUE/GROUP: ..." for a failed call on the command's group.
 * @return rc. */
static int
fail_group(const struct cli *cli, ringmq_client *c, int rc)
{
	char what[512];

	snprintf(what, sizeof(what), "group %s/%s", cli->args[0], cli->args[1]);
	return cli_fail(c, rc, what);
}

/* Ends a command with no output of its own. @return rc. */
static int
group_done(const struct cli *cli, ringmq_client *c, int rc)
{
	if (rc != RINGMQ_OK)
		return fail_group(cli, c, rc);
	cli_print_ok(cli);
	return rc;
}

int
cmd_group_create(const struct cli *cli, ringmq_client *c)
{
	return group_done(cli, c,
			  ringmq_group_create(c, cli->args[0], cli->args[1],
					      cli->has_start
						      ? cli->start
						      : RINGMQ_START_EARLIEST));
}

int
cmd_group_delete(const struct cli *cli, ringmq_client *c)
{
	return group_done(cli, c,
			  ringmq_group_delete(c, cli->args[0], cli->args[1]));
}

int
cmd_group_reset(const struct cli *cli, ringmq_client *c)
{
	return group_done(
		cli, c,
		ringmq_group_reset(c, cli->args[0], cli->args[1], cli->start));
}

void
cli_print_groups_table(const ringmq_group_list *l)
{
	size_t n = ringmq_group_list_count(l);
	int width = 5; /* "GROUP" */

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(ringmq_group_list_name(l, i));

		if ((int)len > width)
			width = (int)len;
	}
	printf("%-*s  %9s  %10s  %10s  %10s\n", width, "GROUP", "CONSUMERS",
	       "READY", "IN_FLIGHT", "LAG");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %9" PRIu32 "  %10" PRIu64 "  %10" PRIu64
		       "  %10" PRIu64 "\n",
		       width, ringmq_group_list_name(l, i),
		       ringmq_group_list_consumers(l, i),
		       ringmq_group_list_ready(l, i),
		       ringmq_group_list_in_flight(l, i),
		       ringmq_group_list_lag(l, i));
}

int
cmd_group_list(const struct cli *cli, ringmq_client *c)
{
	ringmq_group_list *l = NULL;
	char what[256];
	int rc = ringmq_group_list_get(c, cli->args[0], &l);

	if (rc != RINGMQ_OK) {
		snprintf(what, sizeof(what), "queue %s", cli->args[0]);
		return cli_fail(c, rc, what);
	}
	if (cli->is_json) {
		fputs("{\"groups\":[", stdout);
		cli_print_groups_json(l);
		fputs("]}\n", stdout);
	} else {
		cli_print_groups_table(l);
	}
	ringmq_group_list_free(l);
	return rc;
}

static void
print_group_detail(const ringmq_group_list *l)
{
	size_t np = ringmq_group_list_partition_count(l, 0);

	printf("%-10s %s\n", "queue", ringmq_group_list_queue(l, 0));
	printf("%-10s %s\n", "group", ringmq_group_list_name(l, 0));
	printf("%-10s %" PRIu32 "\n", "consumers",
	       ringmq_group_list_consumers(l, 0));
	printf("%-10s %" PRIu64 "\n", "ready", ringmq_group_list_ready(l, 0));
	printf("%-10s %" PRIu64 "\n", "in_flight",
	       ringmq_group_list_in_flight(l, 0));
	printf("%-10s %" PRIu64 "\n", "lag", ringmq_group_list_lag(l, 0));
	printf("\n%9s  %12s\n", "PARTITION", "ACK_FLOOR");
	for (size_t p = 0; p < np; p++)
		printf("%9zu  %12" PRIu64 "\n", p,
		       ringmq_group_list_ack_floor(l, 0, p));
}

int
cmd_group_describe(const struct cli *cli, ringmq_client *c)
{
	ringmq_group_list *l = NULL;
	int rc = ringmq_group_describe_get(c, cli->args[0], cli->args[1], &l);

	if (rc != RINGMQ_OK)
		return fail_group(cli, c, rc);
	if (cli->is_json) {
		fputs("{\"group\":", stdout);
		cli_print_group_json(l, 0);
		fputs("}\n", stdout);
	} else {
		print_group_detail(l);
	}
	ringmq_group_list_free(l);
	return rc;
}
