/*
 * cli_queue.c: "ringmq queue create" and "ringmq queue list".
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int
cmd_queue_create(const struct cli *cli)
{
	ringmq_queue_opts *o = ringmq_queue_opts_new();
	ringmq_client *c = NULL;
	char err[256];
	int rc = RINGMQ_OK;

	if (o == NULL) {
		cli_error(RINGMQ_INTERNAL, "out of memory");
		return EXIT_REFUSED;
	}
	/* The library checks names and ranges, before connecting. */
	for (size_t i = 0; i < cli->nsettings && rc == RINGMQ_OK; i++)
		rc = ringmq_queue_opts_set(o, cli->settings[i].name,
					   cli->settings[i].value, err,
					   sizeof(err));
	if (rc != RINGMQ_OK) {
		cli_error(rc, "%s", err);
		goto out;
	}
	rc = cli_connect(cli, &c);
	if (rc != RINGMQ_OK)
		goto out;
	rc = ringmq_queue_create(c, cli->args[0], o);
	if (rc != RINGMQ_OK)
		cli_error(rc, "queue %s: %s", cli->args[0],
			  ringmq_client_errmsg(c));
out:
	ringmq_client_free(c);
	ringmq_queue_opts_free(o);
	return cli_exit_code(rc);
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
		       ",\"bytes\":%" PRIu64 "}",
		       ringmq_queue_list_partitions(l, i),
		       ringmq_queue_list_ready(l, i),
		       ringmq_queue_list_delayed(l, i),
		       ringmq_queue_list_in_flight(l, i),
		       ringmq_queue_list_groups(l, i),
		       ringmq_queue_list_messages(l, i),
		       ringmq_queue_list_bytes(l, i));
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
cmd_queue_list(const struct cli *cli)
{
	ringmq_queue_list *l = NULL;
	ringmq_client *c = NULL;
	int rc;

	rc = cli_connect(cli, &c);
	if (rc != RINGMQ_OK)
		goto out;
	rc = ringmq_queue_list_get(c, &l);
	if (rc != RINGMQ_OK) {
		cli_error(rc, "queue list: %s", ringmq_client_errmsg(c));
		goto out;
	}
	if (cli->is_json)
		print_json(l);
	else
		print_table(l);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(RINGMQ_IO, "write to standard output: %s",
			  strerror(errno));
		rc = RINGMQ_IO;
	}
out:
	ringmq_queue_list_free(l);
	ringmq_client_free(c);
	return cli_exit_code(rc);
}
