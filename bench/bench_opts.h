/*
 * bench_opts.h: ringmq-bench's command line: its flags, their defaults and
 * the rules of each mode, read into one struct opts that the run then
 * only reads.
 */
#ifndef RINGMQ_BENCH_OPTS_H
#define RINGMQ_BENCH_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bytes of the header every payload starts with: the least --size. */
#define PAYLOAD_HDR_BYTES 32

enum mode { MODE_PUBLISH, MODE_E2E, MODE_LATENCY };

/* "publish", "e2e", "latency", by enum mode. */
extern const char *const mode_names[];

struct opts {
	enum mode mode;
	unsigned producers;
	unsigned consumers;
	uint64_t messages;
	size_t size;
	unsigned window;
	unsigned credit;
	unsigned ack_batch;
	unsigned connections;
	unsigned partitions;
	unsigned linger_ms;
	const char *queue; /* borrowed from argv; NULL: a fresh name */
	const char *server;
	int is_tls;
	const char *tls_ca;	     /* NULL: the system's CAs */
	const char *tls_cert;	     /* NULL: no client certificate */
	const char *tls_key;	     /* with tls_cert */
	const char *tls_server_name; /* NULL: the server's host */
	double max_secs;
	int is_keep;
	int is_quiet;
	int is_async_ack;	/* ringmq_ack_async, not ringmq_ack */
	int is_window_per_conn; /* --window per producer connection */
};

/*
 * Parses argv into o, defaults and mode rules applied.
 * @param[out] o  strings in it are borrowed from argv.
 * @return 0; 1 for --help; -1 on a usage error (printed on standard
 *         error, without the usage text).
 */
int bench_opts_parse(struct opts *o, int argc, char **argv);

/* Prints the usage text to f. */
void bench_opts_usage(FILE *f);

#endif
