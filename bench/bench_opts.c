/*
 * bench_opts.c: ringmq-bench's command line (bench_opts.h). Each flag is a
 * row read with tools/opt.h: the numbers share one handler with the row's
 * range, --queue, --server, --keep and --quiet name the member they set,
 * and --mode, --window-per and --ack have small handlers. The rules of a
 * mode (latency's window of 1 and its defaults, publish without
 * consumers, enough connections for the threads) run after the scan, on
 * what was given.
 *
 * The syntax is stricter than the CLI's and stays as it always was: only
 * "--flag value" and "--flag" (no "--flag=value", no abbreviations), no
 * positionals and no "--"; the first problem or --help ends the scan.
 */
#include "bench_opts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

#define MAX_THREADS	4096
#define MAX_CONNECTIONS 100000

const char *const mode_names[] = { "publish", "e2e", "latency" };

void
bench_opts_usage(FILE *f)
{
	fprintf(f,
		"usage: ringmq-bench [--mode publish|e2e|latency] [flags]\n"
		"\n"
		"Load generator for a running ringmq broker. Prints a summary "
		"and one line\n"
		"\"RESULT key=value ...\"; exits 0 when every message was "
		"accounted for,\n"
		"2 when some were missing or failed, 1 on a usage or setup "
		"error.\n"
		"\n"
		"  --mode M          publish (producers only), e2e (publish, "
		"receive, ack),\n"
		"                    latency (one message at a time) (default "
		"e2e)\n"
		"  --producers P     producer threads (default 4; latency: 1)\n"
		"  --consumers C     consumer threads (default 4; latency: 1; "
		"publish: 0)\n"
		"  --messages N      messages in all (default 200000; "
		"latency: 20000)\n"
		"  --size S          payload bytes, >= %d (default 256)\n"
		"  --window W        unconfirmed publishes per producer "
		"(default 64;\n"
		"                    latency: 1)\n"
		"  --window-per thread|connection\n"
		"                    the window is each producer thread's, "
		"shared by its\n"
		"                    connections (default), or each producer "
		"connection's\n"
		"  --credit N        credit of each subscription (default "
		"256)\n"
		"  --ack-batch N     most lease ids per ack (default: "
		"credit / 2)\n"
		"  --ack wait|async  consumers wait for each ack's answer "
		"(ringmq_ack) or\n"
		"                    ack asynchronously (ringmq_ack_async) "
		"(default: wait;\n"
		"                    latency: async)\n"
		"  --connections N   clients in all, spread round-robin over "
		"the threads\n"
		"                    (default and minimum: P + C)\n"
		"  --partitions K    partitions of the queue it creates "
		"(default 1)\n"
		"  --linger-ms MS    the library's linger-ms (default 0)\n"
		"  --queue NAME      use (and keep) this queue; default: a "
		"fresh queue,\n"
		"                    deleted afterwards\n"
		"  --keep            keep the fresh queue\n"
		"  --server H:P      broker (default 127.0.0.1:7420)\n"
		"  --tls             connect with TLS (the broker's "
		"--tls-listen port)\n"
		"  --ca FILE         CAs the broker's certificate must chain "
		"to (PEM;\n"
		"                    default: the system's); also --tls-ca\n"
		"  --cert FILE, --key FILE\n"
		"                    a client certificate and its key (PEM); "
		"also\n"
		"                    --tls-cert, --tls-key\n"
		"  --tls-server-name NAME\n"
		"                    the name the broker's certificate must "
		"carry\n"
		"                    (default: the host of --server)\n"
		"  --max-secs T      stop after T seconds (default 60)\n"
		"  --quiet           no progress lines\n",
		PAYLOAD_HDR_BYTES);
}

static int
parse_uint(const char *flag, const char *s, uint64_t min, uint64_t max,
	   uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min ||
	    v > max) {
		fprintf(stderr,
			"ringmq-bench: --%s wants a number in %" PRIu64
			"..%" PRIu64 ", not \"%s\"\n",
			flag, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* The flags that take a number. */
enum num_id {
	N_PRODUCERS,
	N_CONSUMERS,
	N_MESSAGES,
	N_SIZE,
	N_WINDOW,
	N_CREDIT,
	N_ACK_BATCH,
	N_CONNECTIONS,
	N_PARTITIONS,
	N_LINGER_MS,
	N_MAX_SECS,
	NNUMS
};

/* The command line as given, before the rules of its mode. */
struct args {
	struct opts *o; /* borrowed: what is not a number goes here */
	uint64_t num[NNUMS];
	int has[NNUMS]; /* given on the command line */
	int has_ack_mode;
};

/* A flag: its name and how its value is read. */
struct bench_flag {
	struct opt_def opt; /* name, has_value, the member it sets */
	/* Reads the value into a; -1 after printing an error. NULL:
	 * opt_store sets the member of struct opts opt names (none for
	 * --help). */
	int (*apply)(struct args *a, const struct bench_flag *f,
		     const char *value);
	enum num_id num;   /* set_number: which number */
	uint64_t min, max; /* set_number: the range */
};

static int
set_number(struct args *a, const struct bench_flag *f, const char *value)
{
	a->has[f->num] = 1;
	return parse_uint(f->opt.name, value, f->min, f->max, &a->num[f->num]);
}

static int
set_mode(struct args *a, const struct bench_flag *f, const char *value)
{
	(void)f;
	for (unsigned m = 0; m < 3; m++) {
		if (strcmp(value, mode_names[m]) == 0) {
			a->o->mode = (enum mode)m;
			return 0;
		}
	}
	fprintf(stderr,
		"ringmq-bench: --mode is publish, e2e or latency, not "
		"\"%s\"\n",
		value);
	return -1;
}

static int
set_window_per(struct args *a, const struct bench_flag *f, const char *value)
{
	(void)f;
	if (strcmp(value, "thread") != 0 && strcmp(value, "connection") != 0) {
		fprintf(stderr,
			"ringmq-bench: --window-per: thread or connection\n");
		return -1;
	}
	a->o->is_window_per_conn = strcmp(value, "connection") == 0;
	return 0;
}

static int
set_ack_mode(struct args *a, const struct bench_flag *f, const char *value)
{
	(void)f;
	if (strcmp(value, "wait") != 0 && strcmp(value, "async") != 0) {
		fprintf(stderr, "ringmq-bench: --ack: wait or async\n");
		return -1;
	}
	a->o->is_async_ack = strcmp(value, "async") == 0;
	a->has_ack_mode = 1;
	return 0;
}

#define FLAG(name_, has_value_, apply_) \
	.opt = { .name = name_, .has_value = has_value_ }, .apply = apply_
#define NUMBER(name, id, lo, hi)                                           \
	{                                                                  \
		FLAG(name, 1, set_number), .num = id, .min = lo, .max = hi \
	}
/* A row that sets a member of struct opts: to its value, or to 1. */
#define MEMBER(name_, has_value_, store_, member)        \
	{                                                \
		.opt = { name_,                          \
			 has_value_,                     \
			 store_,                         \
			 offsetof(struct opts, member) } \
	}

static const struct bench_flag bench_flags[] = {
	{ FLAG("help", 0, NULL) },
	{ FLAG("mode", 1, set_mode) },
	NUMBER("producers", N_PRODUCERS, 1, MAX_THREADS),
	NUMBER("consumers", N_CONSUMERS, 0, MAX_THREADS),
	NUMBER("messages", N_MESSAGES, 1, 1ull << 36),
	NUMBER("size", N_SIZE, PAYLOAD_HDR_BYTES, 1u << 30),
	NUMBER("window", N_WINDOW, 1, 1u << 20),
	NUMBER("credit", N_CREDIT, 1, 1u << 20),
	{ FLAG("window-per", 1, set_window_per) },
	{ FLAG("ack", 1, set_ack_mode) },
	NUMBER("ack-batch", N_ACK_BATCH, 1, 1u << 20),
	NUMBER("connections", N_CONNECTIONS, 1, MAX_CONNECTIONS),
	NUMBER("partitions", N_PARTITIONS, 1, 1024),
	NUMBER("linger-ms", N_LINGER_MS, 0, 60000),
	MEMBER("queue", 1, OPT_STORE_STRING, queue),
	MEMBER("server", 1, OPT_STORE_STRING, server),
	MEMBER("tls", 0, OPT_STORE_TRUE, is_tls),
	MEMBER("ca", 1, OPT_STORE_STRING, tls_ca),
	MEMBER("tls-ca", 1, OPT_STORE_STRING, tls_ca),
	MEMBER("cert", 1, OPT_STORE_STRING, tls_cert),
	MEMBER("tls-cert", 1, OPT_STORE_STRING, tls_cert),
	MEMBER("key", 1, OPT_STORE_STRING, tls_key),
	MEMBER("tls-key", 1, OPT_STORE_STRING, tls_key),
	MEMBER("tls-server-name", 1, OPT_STORE_STRING, tls_server_name),
	NUMBER("max-secs", N_MAX_SECS, 1, 86400),
	MEMBER("keep", 0, OPT_STORE_TRUE, is_keep),
	MEMBER("quiet", 0, OPT_STORE_TRUE, is_quiet),
};

#define NFLAGS (sizeof(bench_flags) / sizeof(bench_flags[0]))

/*
 * Reads the flags into a, in order, up to the first error or --help.
 * Only "--flag value" and "--flag" are flags (no "--flag=value"); "--"
 * and positionals are errors. @return 0, 1 for --help, -1 on an error
 * (printed).
 */
static int
scan_flags(int argc, char **argv, struct args *a)
{
	struct opt_parser p;
	enum opt_kind kind = OPT_END;
	int rc = 0;

	if (opt_init(&p, argc, argv, &bench_flags[0].opt, NFLAGS,
		     sizeof(bench_flags[0]), 0) < 0) {
		fprintf(stderr, "ringmq-bench: out of memory\n");
		return -1;
	}
	while (rc == 0 && (kind = opt_next(&p)) == OPT_FLAG) {
		const struct bench_flag *f = &bench_flags[p.row];

		if (f->apply != NULL)
			rc = f->apply(a, f, p.value) < 0 ? -1 : 0;
		else if (f->opt.store != OPT_STORE_NONE)
			opt_store(&f->opt, a->o, p.value);
		else
			rc = 1; /* --help */
	}
	if (rc == 0 && kind != OPT_END) {
		const char *word = p.argv[p.at];

		/* As ever: a word starting with "--" reads the next word as
		 * its value before its name is looked up, so it is an unknown
		 * flag unless it is the last word. */
		if (strncmp(word, "--", 2) == 0 && p.at + 1 < argc)
			fprintf(stderr,
				"ringmq-bench: %s: unknown flag (see "
				"--help)\n",
				word);
		else
			fprintf(stderr,
				"ringmq-bench: %s: unknown flag or missing "
				"value (see --help)\n",
				word);
		rc = -1;
	}
	opt_fini(&p);
	return rc;
}

int
bench_opts_parse(struct opts *o, int argc, char **argv)
{
	struct args a = { .o = o };
	const uint64_t *v = a.num;
	uint64_t conn;
	int rc;

	memset(o, 0, sizeof(*o));
	o->mode = MODE_E2E;
	o->server = "127.0.0.1:7420";
	a.num[N_PRODUCERS] = 4;
	a.num[N_CONSUMERS] = 4;
	a.num[N_MESSAGES] = 200000;
	a.num[N_SIZE] = 256;
	a.num[N_WINDOW] = 64;
	a.num[N_CREDIT] = 256;
	a.num[N_PARTITIONS] = 1;
	a.num[N_MAX_SECS] = 60;
	rc = scan_flags(argc, argv, &a);
	if (rc != 0)
		return rc;
	o->producers = (unsigned)v[N_PRODUCERS];
	o->consumers = (unsigned)v[N_CONSUMERS];
	o->messages = v[N_MESSAGES];
	o->size = (size_t)v[N_SIZE];
	o->window = (unsigned)v[N_WINDOW];
	o->credit = (unsigned)v[N_CREDIT];
	o->partitions = (unsigned)v[N_PARTITIONS];
	o->linger_ms = (unsigned)v[N_LINGER_MS];
	o->max_secs = (double)v[N_MAX_SECS];
	if (o->mode == MODE_LATENCY) {
		/* A consumer waiting for its ack's commit would hold back the
		 * next delivery behind it; the Redis driver pipelines XACK. */
		if (!a.has_ack_mode)
			o->is_async_ack = 1;
		if (a.has[N_WINDOW] && o->window != 1) {
			fprintf(stderr, "ringmq-bench: latency mode "
					"publishes with a window of 1\n");
			return -1;
		}
		o->window = 1;
		if (!a.has[N_PRODUCERS])
			o->producers = 1;
		if (!a.has[N_CONSUMERS])
			o->consumers = 1;
		if (!a.has[N_MESSAGES])
			o->messages = 20000;
	}
	if (o->mode == MODE_PUBLISH) {
		if (a.has[N_CONSUMERS] && o->consumers != 0) {
			fprintf(stderr, "ringmq-bench: publish mode runs no "
					"consumers\n");
			return -1;
		}
		o->consumers = 0;
	}
	if (o->mode != MODE_PUBLISH && o->consumers == 0) {
		fprintf(stderr, "ringmq-bench: %s mode needs consumers\n",
			mode_names[o->mode]);
		return -1;
	}
	if (o->messages < o->producers) {
		fprintf(stderr,
			"ringmq-bench: fewer messages than producers\n");
		return -1;
	}
	o->ack_batch = v[N_ACK_BATCH] ? (unsigned)v[N_ACK_BATCH]
				      : (o->credit / 2 ? o->credit / 2 : 1);
	conn = v[N_CONNECTIONS];
	if (conn == 0)
		conn = o->producers + o->consumers;
	if (conn < o->producers + o->consumers) {
		fprintf(stderr,
			"ringmq-bench: --connections %" PRIu64
			" is fewer than the %u threads (each owns at "
			"least one client)\n",
			conn, o->producers + o->consumers);
		return -1;
	}
	o->connections = (unsigned)conn;
	if (!o->is_tls && (o->tls_ca != NULL || o->tls_cert != NULL ||
			   o->tls_key != NULL || o->tls_server_name != NULL)) {
		fprintf(stderr, "ringmq-bench: --ca, --cert, --key and "
				"--tls-server-name need --tls\n");
		return -1;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		fprintf(stderr, "ringmq-bench: --cert and --key go together\n");
		return -1;
	}
	return 0;
}
