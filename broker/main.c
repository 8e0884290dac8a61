/*
 * ringmqd: the ringmq broker. Reads its settings and runs the server.
 * Exit codes: 0 clean stop, 2 bad flags or config, 1 any other failure to
 * start or run.
 */
#include <stdio.h>

#include "lib/config.h"
#include "lib/log.h"
#include "server.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	char err[1024];
	int rc;

	rc = config_load(&cfg, argc, argv, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "ringmqd: %s (see ringmqd --help)\n", err);
		return 2;
	}
	if (rc == CONFIG_EXIT)
		return 0;
	log_set_level((enum log_level)cfg.log_level);
	log_set_json(cfg.is_log_json);
	return server_run(&cfg);
}
