/*
 * producer.c: publishes COUNT messages asynchronously and waits until the
 * broker has confirmed every one of them.
 *
 *   producer [HOST:PORT [QUEUE [COUNT]]]
 *
 * The library batches the messages, pipelines the batches and, if the
 * connection drops, reconnects and resends them so that each one is
 * stored once.
 */
#include <ringmq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tally {
	long confirmed;
	long failed;
};

/* Runs inside ringmq_client_poll() or ringmq_client_flush(). */
static void
on_report(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct tally *t = ctx;

	(void)c;
	if (ringmq_publish_report_code(r) == RINGMQ_OK) {
		t->confirmed++;
		return;
	}
	t->failed++;
	fprintf(stderr, "producer: not stored: %s: %s\n",
		ringmq_code_name(ringmq_publish_report_code(r)),
		ringmq_publish_report_message(r));
}

int
main(int argc, char **argv)
{
	const char *server = argc > 1 ? argv[1] : "127.0.0.1:7420";
	const char *queue = argc > 2 ? argv[2] : "jobs";
	long count = argc > 3 ? atol(argv[3]) : 10;
	struct tally t = { 0, 0 };
	ringmq_opts *opts = ringmq_opts_new();
	ringmq_client *c = NULL;
	char err[512];
	int rc;

	if (opts == NULL ||
	    ringmq_opts_set(opts, "server", server, err, sizeof(err)) !=
		    RINGMQ_OK ||
	    ringmq_opts_set(opts, "linger-ms", "10", err, sizeof(err)) !=
		    RINGMQ_OK) {
		fprintf(stderr, "producer: %s\n", opts ? err : "no memory");
		return 2;
	}
	rc = ringmq_client_connect(&c, opts, err, sizeof(err));
	ringmq_opts_free(opts);
	if (rc != RINGMQ_OK) {
		fprintf(stderr, "producer: %s: %s\n", ringmq_code_name(rc),
			err);
		return 1;
	}
	for (long i = 0; i < count; i++) {
		char payload[64];
		int len = snprintf(payload, sizeof(payload), "job %ld", i);
		ringmq_message *m = ringmq_message_new(payload, (size_t)len);

		rc = m ? ringmq_publish_async(c, queue, m, on_report, &t)
		       : RINGMQ_INTERNAL;
		ringmq_message_free(m);
		if (rc != RINGMQ_OK) {
			fprintf(stderr, "producer: %s: %s\n",
				ringmq_code_name(rc), ringmq_client_errmsg(c));
			break;
		}
		/* Serve reports as they come, without waiting. */
		(void)ringmq_client_poll(c, 0);
	}
	rc = ringmq_client_flush(c, 30000);
	ringmq_client_free(c);
	printf("confirmed %ld, failed %ld\n", t.confirmed, t.failed);
	return rc == RINGMQ_OK && t.confirmed == count ? 0 : 1;
}
