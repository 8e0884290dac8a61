/*
 * cli_admin.c: "ringmq dlq redrive", "ringmq stats", "ringmq ping" and
 * "ringmq backup".
 */
#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

int
cmd_dlq_redrive(const struct cli *cli, ringmq_client *c)
{
	uint64_t redriven = 0;
	uint32_t count =
		cli->count > UINT32_MAX ? UINT32_MAX : (uint32_t)cli->count;
	char what[256];
	int rc = ringmq_dlq_redrive(c, cli->args[0], cli->group, count,
				    &redriven);

	if (rc != RINGMQ_OK) {
		snprintf(what, sizeof(what), "redrive dead letters of %s",
			 cli->args[0]);
		return cli_fail(c, rc, what);
	}
	cli_print_count(cli, "redriven", redriven);
	return rc;
}

void
cli_print_value(double v, int is_json)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
		printf("%.0f", v);
	else if (isfinite(v))
		printf("%.17g", v);
	else
		fputs(is_json ? "null" : "-", stdout);
}

int
cmd_stats(const struct cli *cli, ringmq_client *c)
{
	ringmq_stats *s = NULL;
	int rc = ringmq_stats_get(c, &s);
	int width = 4; /* "NAME" */

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "stats");
	if (cli->is_json) {
		fputs("{\"stats\":{", stdout);
		for (size_t i = 0; i < ringmq_stats_count(s); i++) {
			if (i)
				fputc(',', stdout);
			cli_json_str(stdout, ringmq_stats_name(s, i));
			fputc(':', stdout);
			cli_print_value(ringmq_stats_value(s, i), 1);
		}
		fputs("}}\n", stdout);
	} else {
		for (size_t i = 0; i < ringmq_stats_count(s); i++) {
			size_t len = strlen(ringmq_stats_name(s, i));

			if ((int)len > width)
				width = (int)len;
		}
		printf("%-*s  %s\n", width, "NAME", "VALUE");
		for (size_t i = 0; i < ringmq_stats_count(s); i++) {
			printf("%-*s  ", width, ringmq_stats_name(s, i));
			cli_print_value(ringmq_stats_value(s, i), 0);
			fputc('\n', stdout);
		}
	}
	ringmq_stats_free(s);
	return rc;
}

/* cluster status: text. */
static void
print_cluster(const ringmq_metadata *m)
{
	const char *name = ringmq_metadata_cluster(m);
	const char *ctl = ringmq_metadata_controller(m);

	if (name != NULL)
		printf("cluster %s, controller %s\n", name, ctl ? ctl : "-");
	else
		printf("not in cluster mode\n");
	printf("\n%-24s %s\n", "BROKER", "ADDRESS");
	for (size_t i = 0; i < ringmq_metadata_broker_count(m); i++) {
		const char *id = ringmq_metadata_broker_id(m, i);

		printf("%-24s %s\n", id[0] ? id : "-",
		       ringmq_metadata_broker_address(m, i));
	}
	printf("\n%-24s %9s  %-24s %s\n", "QUEUE", "PARTITION", "OWNER",
	       "EPOCH");
	for (size_t i = 0; i < ringmq_metadata_queue_count(m); i++)
		for (size_t p = 0; p < ringmq_metadata_partition_count(m, i);
		     p++) {
			const char *o =
				ringmq_metadata_partition_owner(m, i, p);

			printf("%-24s %9zu  %-24s %" PRIu64 "\n",
			       ringmq_metadata_queue_name(m, i), p, o ? o : "-",
			       ringmq_metadata_partition_epoch(m, i, p));
		}
}

/* cluster status --json. */
static void
print_cluster_json(const ringmq_metadata *m)
{
	fputs("{\"cluster\":", stdout);
	cli_json_str(stdout, ringmq_metadata_cluster(m));
	fputs(",\"controller\":", stdout);
	cli_json_str(stdout, ringmq_metadata_controller(m));
	fputs(",\"brokers\":[", stdout);
	for (size_t i = 0; i < ringmq_metadata_broker_count(m); i++) {
		fputs(i ? ",{\"id\":" : "{\"id\":", stdout);
		cli_json_str(stdout, ringmq_metadata_broker_id(m, i));
		fputs(",\"address\":", stdout);
		cli_json_str(stdout, ringmq_metadata_broker_address(m, i));
		fputc('}', stdout);
	}
	fputs("],\"queues\":[", stdout);
	for (size_t i = 0; i < ringmq_metadata_queue_count(m); i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
		cli_json_str(stdout, ringmq_metadata_queue_name(m, i));
		fputs(",\"partitions\":[", stdout);
		for (size_t p = 0; p < ringmq_metadata_partition_count(m, i);
		     p++) {
			printf("%s{\"partition\":%zu,\"owner\":", p ? "," : "",
			       p);
			cli_json_str(stdout,
				     ringmq_metadata_partition_owner(m, i, p));
			printf(",\"epoch\":%" PRIu64 "}",
			       ringmq_metadata_partition_epoch(m, i, p));
		}
		fputs("]}", stdout);
	}
	fputs("]}\n", stdout);
}

int
cmd_cluster_status(const struct cli *cli, ringmq_client *c)
{
	ringmq_metadata *m = NULL;
	int rc = ringmq_metadata_get(c, &m, NULL, 0);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "cluster status");
	if (cli->is_json)
		print_cluster_json(m);
	else
		print_cluster(m);
	ringmq_metadata_free(m);
	return rc;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
cmd_ping(const struct cli *cli, ringmq_client *c)
{
	int64_t t0 = mono_us();
	int rc = ringmq_client_ping(c);
	int64_t us = mono_us() - t0;

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "ping");
	if (cli->is_json) {
		fputs("{\"server\":", stdout);
		cli_json_str(stdout, ringmq_client_server(c));
		printf(",\"rtt_us\":%" PRId64 "}\n", us);
	} else {
		printf("pong from %s in %" PRId64 ".%03" PRId64 " ms\n",
		       ringmq_client_server(c), us / 1000, us % 1000);
	}
	return rc;
}

int
cmd_backup(const struct cli *cli, ringmq_client *c)
{
	const char *dir = cli->args[0]; /* absolute: checked before */
	uint64_t bytes = 0;
	char what[PATH_MAX + 32];
	int rc = ringmq_backup(c, dir, &bytes);

	if (rc != RINGMQ_OK) {
		snprintf(what, sizeof(what), "backup to %s", dir);
		return cli_fail(c, rc, what);
	}
	if (cli->is_json) {
		fputs("{\"dir\":", stdout);
		cli_json_str(stdout, dir);
		printf(",\"bytes\":%" PRIu64 "}\n", bytes);
	} else {
		printf("backup written to %s (%" PRIu64 " bytes)\n", dir,
		       bytes);
	}
	return rc;
}
