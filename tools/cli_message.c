/*
 * cli_message.c: "ringmq message cancel": cancel a delayed message by
 * queue, partition and offset.
 */
#include "cli.h"

#include <inttypes.h>

int
cmd_message_cancel(const struct cli *cli)
{
	ringmq_client *c = NULL;
	int rc;

	rc = cli_connect(cli, &c);
	if (rc != RINGMQ_OK)
		return cli_exit_code(rc);
	rc = ringmq_message_cancel(c, cli->args[0], cli->partition,
				   cli->offset);
	if (rc != RINGMQ_OK)
		cli_error(rc,
			  "queue %s partition %" PRIu32 " offset %" PRIu64
			  ": %s",
			  cli->args[0], cli->partition, cli->offset,
			  ringmq_client_errmsg(c));
	ringmq_client_free(c);
	return cli_exit_code(rc);
}
