/*
 * worker.c: runs jobs from a queue until SIGINT or SIGTERM (or, for tests,
 * until it has done COUNT jobs), acking each job that succeeds.
 *
 *   worker [HOST:PORT [QUEUE [GROUP [COUNT]]]]
 *
 * A job whose payload starts with "fail" fails: the worker helper nacks
 * it with exponential backoff, so it comes back later. On a stop, jobs
 * already delivered but not started are released for other workers.
 */
#include <ringmq.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ringmq_client *g_client;

static void
on_signal(int sig)
{
	(void)sig;
	ringmq_worker_stop(g_client); /* async-signal-safe */
}

struct work {
	long done;
	long limit; /* 0: no limit */
};

static int
handle(ringmq_client *c, const ringmq_delivery *d, void *ctx)
{
	struct work *w = ctx;
	size_t len;
	const char *p = ringmq_delivery_payload(d, &len);

	if (len >= 4 && memcmp(p, "fail", 4) == 0)
		return 1; /* failed: nacked, delivered again later */
	printf("%.*s\n", (int)len, p);
	fflush(stdout);
	if (w->limit && ++w->done >= w->limit)
		ringmq_worker_stop(c);
	return 0; /* done: acked */
}

int
main(int argc, char **argv)
{
	const char *server = argc > 1 ? argv[1] : "127.0.0.1:7420";
	const char *queue = argc > 2 ? argv[2] : "jobs";
	const char *group = argc > 3 ? argv[3] : "workers";
	struct work w = { 0, argc > 4 ? atol(argv[4]) : 0 };
	ringmq_opts *opts = ringmq_opts_new();
	struct sigaction sa;
	char err[512];
	int rc;

	if (opts == NULL || ringmq_opts_set(opts, "server", server, err,
					    sizeof(err)) != RINGMQ_OK) {
		fprintf(stderr, "worker: %s\n", opts ? err : "no memory");
		return 2;
	}
	/* Long jobs keep their lease. */
	(void)ringmq_opts_set(opts, "auto-touch", "true", NULL, 0);
	rc = ringmq_client_connect(&g_client, opts, err, sizeof(err));
	ringmq_opts_free(opts);
	if (rc != RINGMQ_OK) {
		fprintf(stderr, "worker: %s: %s\n", ringmq_code_name(rc), err);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = ringmq_worker_run(g_client, queue, group, 1, handle, &w);
	if (rc != RINGMQ_OK)
		fprintf(stderr, "worker: %s: %s\n", ringmq_code_name(rc),
			ringmq_client_errmsg(g_client));
	ringmq_client_free(g_client);
	return rc == RINGMQ_OK ? 0 : 1;
}
