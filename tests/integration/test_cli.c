/*
 * test_cli.c: integration tests of the ringmq CLI against a real ringmqd.
 *
 * Each test that needs a broker starts one with the harness (127.0.0.1
 * port 0, a fresh data directory) and stops it by PID. The CLI (path from
 * RINGMQ_CLI) runs via fork/exec with pipes for its standard streams; every
 * run has a deadline, after which the child is killed by PID and the test
 * fails. Outputs are compared exactly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringmq.h>

#include "harness.h"

/* Longest a CLI run may take before it is killed. */
#define RUN_DEADLINE_MS 20000

#define MAX_ARGS 64

/* Address of the running broker, prepended as --server; NULL: none. */
static const char *g_server;

struct run {
	int code; /* exit code; 128 + signal when killed by one */
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
};

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Appends what fd has to *buf; 1 at EOF, 0 otherwise. */
static int
drain_fd(int fd, char **buf, size_t *len)
{
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0)
		return 1;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return 0;
}

/* argv for the CLI: program, --server ADDR (if any), then args. */
static void
build_argv(const char **argv, const char *const *args)
{
	int n = 0;

	argv[n++] = harness_program("RINGMQ_CLI");
	if (g_server != NULL) {
		argv[n++] = "--server";
		argv[n++] = g_server;
	}
	for (int i = 0; args[i] != NULL; i++) {
		assert_true(n < MAX_ARGS - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
}

struct child {
	pid_t pid;
	int in_fd;  /* write end of its stdin, -1 once closed */
	int out_fd; /* read end of its stdout, -1 when not captured */
	int err_fd; /* read end of its stderr */
};

/*
 * Starts the CLI with args. When is_stdout_closed, its standard output is
 * a pipe nobody reads (the read end is closed at once): writes fail with
 * EPIPE.
 */
static void
spawn(struct child *ch, const char *const *args, int is_stdout_closed)
{
	const char *argv[MAX_ARGS];
	int in[2], out[2], err[2];

	build_argv(argv, args);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		/* dup2 clears O_CLOEXEC on the copies only. */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(err[1], 2) < 0)
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	ch->in_fd = in[1];
	ch->out_fd = out[0];
	ch->err_fd = err[0];
	if (is_stdout_closed) {
		close(ch->out_fd);
		ch->out_fd = -1;
	}
	assert_int_equal(fcntl(ch->in_fd, F_SETFL, O_NONBLOCK), 0);
}

/* Waits for the child to exit by deadline_ms (killing it then). */
static int
reap(pid_t pid, long long deadline_ms)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		assert_true(r == 0 || errno == EINTR);
		if (harness_now_ms() > deadline_ms) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			fail_msg("ringmq did not exit within the deadline");
		}
		(void)poll(NULL, 0, 2);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Feeds in_len bytes of stdin, collects stdout and stderr until both end,
 * then reaps the child.
 */
static void
finish_child(struct child *ch, struct run *r, const void *in, size_t in_len,
	     long long deadline_ms)
{
	size_t in_off = 0;
	int is_out_done = ch->out_fd < 0;
	int is_err_done = 0;

	if (in_len == 0 && ch->in_fd >= 0) {
		close(ch->in_fd);
		ch->in_fd = -1;
	}
	while (!is_out_done || !is_err_done) {
		struct pollfd p[3];
		int np = 0;
		int left = (int)(deadline_ms - harness_now_ms());

		if (left <= 0) {
			kill(ch->pid, SIGKILL);
			(void)reap(ch->pid, harness_now_ms() + 5000);
			fail_msg("ringmq output did not end within the "
				 "deadline");
		}
		if (ch->in_fd >= 0)
			p[np++] = (struct pollfd){ ch->in_fd, POLLOUT, 0 };
		if (!is_out_done)
			p[np++] = (struct pollfd){ ch->out_fd, POLLIN, 0 };
		if (!is_err_done)
			p[np++] = (struct pollfd){ ch->err_fd, POLLIN, 0 };
		if (poll(p, (nfds_t)np, left) <= 0)
			continue;
		for (int i = 0; i < np; i++) {
			if (p[i].revents == 0)
				continue;
			if (p[i].fd == ch->in_fd) {
				ssize_t n = write(ch->in_fd,
						  (const char *)in + in_off,
						  in_len - in_off);

				if (n > 0)
					in_off += (size_t)n;
				if (n < 0 && errno != EAGAIN && errno != EINTR)
					in_off = in_len; /* child closed it */
				if (in_off == in_len) {
					close(ch->in_fd);
					ch->in_fd = -1;
				}
			} else if (p[i].fd == ch->out_fd) {
				is_out_done = drain_fd(ch->out_fd, &r->out,
						       &r->out_len);
			} else {
				is_err_done = drain_fd(ch->err_fd, &r->err,
						       &r->err_len);
			}
		}
	}
	if (ch->in_fd >= 0)
		close(ch->in_fd);
	if (ch->out_fd >= 0)
		close(ch->out_fd);
	close(ch->err_fd);
	r->code = reap(ch->pid, deadline_ms);
	if (r->out == NULL)
		r->out = calloc(1, 1);
	if (r->err == NULL)
		r->err = calloc(1, 1);
}

/* Runs the CLI to completion with the given stdin bytes. */
static void
run_cli_ex(struct run *r, const void *in, size_t in_len,
	   const char *const *args, int is_stdout_closed)
{
	struct child ch;

	memset(r, 0, sizeof(*r));
	spawn(&ch, args, is_stdout_closed);
	finish_child(&ch, r, in, in_len, harness_now_ms() + RUN_DEADLINE_MS);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Runs with no stdin. */
#define RUN(r, ...) run_cli_ex((r), NULL, 0, ARGS(__VA_ARGS__), 0)

/* Runs with a string as stdin (its bytes, without the NUL). */
#define RUN_IN(r, in, in_len, ...) \
	run_cli_ex((r), (in), (in_len), ARGS(__VA_ARGS__), 0)

/* Checks exit code and exact stdout, printing stderr when they differ. */
static void
expect(const struct run *r, int code, const char *out)
{
	if (r->code != code || strcmp(r->out, out) != 0)
		fprintf(stderr,
			"exit %d (want %d)\nstdout:\n%s\nwant:\n%s\nstderr:\n"
			"%s\n",
			r->code, code, r->out, out, r->err);
	assert_int_equal(r->code, code);
	assert_string_equal(r->out, out);
}

/*
 * Replaces what changes from run to run in consume --json lines: lease
 * ids become "L", publish times T.
 */
static void
normalize(char *s)
{
	static const char *const keys[] = { "\"lease_id\":\"",
					    "\"publish_time_ms\":" };

	for (size_t k = 0; k < 2; k++) {
		char *p = s;

		while ((p = strstr(p, keys[k])) != NULL) {
			char *d = p + strlen(keys[k]);
			char *e = d;

			while (*e >= '0' && *e <= '9')
				e++;
			if (e == d) {
				p = d;
				continue;
			}
			*d = k == 0 ? 'L' : 'T';
			memmove(d + 1, e, strlen(e) + 1);
			p = d + 1;
		}
	}
}

/* expect() after normalize() of stdout. */
static void
expect_norm(struct run *r, int code, const char *out)
{
	normalize(r->out);
	r->out_len = strlen(r->out);
	expect(r, code, out);
}

/* The consume --json line of an unkeyed, header-less UTF-8 message. */
#define JMSG(q, part, off, count, payload)                                          \
	"{\"queue\":\"" q "\",\"group\":\"g\",\"partition\":" #part                 \
	",\"offset\":" #off ",\"lease_id\":\"L\",\"delivery_count\":" #count        \
	",\"publish_time_ms\":T,\"key\":null,\"headers\":{},\"payload\":\"" payload \
	"\",\"encoding\":\"utf8\"}\n"

/* stderr starts with "ringmq: CODE: " */
static void
expect_err(const struct run *r, const char *code)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "ringmq: %s: ", code);
	if (strstr(r->err, prefix) == NULL)
		fprintf(stderr, "stderr lacks '%s':\n%s\n", prefix, r->err);
	assert_non_null(strstr(r->err, prefix));
}

/* A TCP port on 127.0.0.1 that nothing listens on. */
static void
unused_server(char *buf, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(buf, len, "127.0.0.1:%d", ntohs(a.sin_port));
	close(fd);
}

/* A listening socket that never accepts: connects succeed, hello gets no
 * answer. Returns the fd; its address goes to buf. */
static int
silent_server(char *buf, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(buf, len, "127.0.0.1:%d", ntohs(a.sin_port));
	return fd;
}

/* ---------------------------------------------------------------- fixtures */

static int
broker_setup_with(void **state, const char *const *extra)
{
	struct harness_broker *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return -1;
	b->stdout_fd = -1;
	if (harness_start(b, extra) < 0) {
		harness_cleanup(b);
		free(b);
		return -1;
	}
	g_server = b->addr;
	*state = b;
	return 0;
}

static int
broker_setup(void **state)
{
	return broker_setup_with(state, NULL);
}

static int
broker_small_setup(void **state)
{
	static const char *const extra[] = { "--max-message-bytes", "1024",
					     NULL };

	return broker_setup_with(state, extra);
}

/* Answers of at most 2 messages: peek must page. */
static int
broker_small_batch_setup(void **state)
{
	static const char *const extra[] = { "--max-batch-count", "2", NULL };

	return broker_setup_with(state, extra);
}

static int
broker_teardown(void **state)
{
	struct harness_broker *b = *state;
	int rc = 0;

	g_server = NULL;
	if (b == NULL)
		return 0;
	if (harness_stop(b) != 0) {
		fprintf(stderr, "ringmqd did not stop cleanly\n");
		rc = -1;
	}
	harness_cleanup(b);
	free(b);
	return rc;
}

/* Creates queue name, asserting success. */
static void
create_queue(const char *name)
{
	struct run r;

	RUN(&r, "queue", "create", name);
	expect(&r, 0, "");
	run_free(&r);
}

/* ----------------------------------------------------------- usage errors */

static void
expect_usage(const char *const *args)
{
	struct run r;

	run_cli_ex(&r, NULL, 0, args, 0);
	if (r.code != 2)
		fprintf(stderr, "args starting '%s': exit %d, stderr %s\n",
			args[0], r.code, r.err);
	assert_int_equal(r.code, 2);
	assert_string_equal(r.out, "");
	assert_int_equal(strncmp(r.err, "ringmq: USAGE: ", 15), 0);
	run_free(&r);
}

static void
test_usage_errors_exit_2_before_connecting(void **state)
{
	char server[64];
	char long_name[200], long_dlq[202], longest_dlq[201];
	struct run r;

	(void)state;
	/* Had it connected, an unused port would make it exit 3. */
	unused_server(server, sizeof(server));
	g_server = server;
	memset(long_name, 'a', 197);
	long_name[197] = '\0';
	/* The rule leaves room for ".dlq" after its longest name, no more. */
	memcpy(long_dlq, long_name, 197);
	memcpy(long_dlq + 197, ".dlq", 5);
	memcpy(longest_dlq, long_name, 196);
	memcpy(longest_dlq + 196, ".dlq", 5);
	expect_usage(ARGS("peek", long_dlq));
	expect_usage(ARGS("queue", "create", "q", "--dead-letter", long_dlq));
	RUN(&r, "peek", longest_dlq);
	assert_int_equal(r.code, 3); /* valid: it tried to connect */
	run_free(&r);
	RUN(&r, "queue", "create", "q", "--dead-letter", longest_dlq);
	assert_int_equal(r.code, 3);
	run_free(&r);

	expect_usage(ARGS("queue", "create", "bad/name"));
	expect_usage(ARGS("queue", "create", "-leading-dash", "--"));
	expect_usage(ARGS("queue", "create", "--", "-leading-dash"));
	expect_usage(ARGS("queue", "create", ".dot"));
	expect_usage(ARGS("queue", "create", long_name));
	expect_usage(ARGS("queue", "create"));
	expect_usage(ARGS("queue", "create", "q", "extra"));
	expect_usage(ARGS("queue", "create", "q", "--partitions", "0"));
	expect_usage(ARGS("queue", "create", "q", "--partitions", "1025"));
	expect_usage(ARGS("queue", "create", "q", "--partitions", "x"));
	expect_usage(ARGS("queue", "create", "q", "--partitions"));
	expect_usage(ARGS("queue", "create", "q", "--lease-ms", "-5"));
	/* The broker's own limit of time settings (2^62 - 1 ms). */
	expect_usage(ARGS("queue", "create", "q", "--lease-ms",
			  "4611686018427387904"));
	expect_usage(ARGS("queue", "set", "q", "--dedup-window-ms",
			  "9223372036854775807"));
	/* A queue cannot dead-letter into itself (the last one given). */
	expect_usage(ARGS("queue", "create", "q", "--dead-letter", "q"));
	expect_usage(ARGS("queue", "set", "q", "--dead-letter", "z",
			  "--dead-letter", "q"));
	RUN(&r, "queue", "create", "q", "--dead-letter", "q", "--dead-letter",
	    "z");
	assert_int_equal(r.code, 3);
	run_free(&r);
	expect_usage(ARGS("publish", "q", "--header", "k=v", "--header", "k=w",
			  "x"));
	/* The input file is opened before connecting. */
	expect_usage(ARGS("publish", "q", "--file", "/nonexistent/ringmq"));
	expect_usage(ARGS("publish", "q", "--file", "/tmp"));
	expect_usage(ARGS("queue", "frob"));
	expect_usage(ARGS("queue"));
	expect_usage(ARGS("frobnicate"));
	expect_usage(ARGS("queue", "list", "--foo"));
	expect_usage(ARGS("--foo", "queue", "list"));
	expect_usage(ARGS("queue", "list", "--key", "k"));
	expect_usage(ARGS("publish"));
	expect_usage(ARGS("publish", "bad name", "x"));
	expect_usage(ARGS("publish", "q", "-x"));
	expect_usage(ARGS("publish", "q", "--json=1", "x"));
	expect_usage(ARGS("consume", "q"));
	expect_usage(ARGS("consume", "q", "--group", "bad/group"));
	expect_usage(ARGS("consume", "--group", "g"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--count", "0"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--count", "-1"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--count", "2x"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--timeout-ms", "0"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--ack", "--nack"));
	expect_usage(ARGS("--request-timeout-ms", "0", "queue", "list"));
	g_server = NULL;
	expect_usage(ARGS("--server", "nocolon", "queue", "list"));
	expect_usage((const char *const[]){ NULL });
}

static void
test_job_flags_usage_errors_exit_2_before_connecting(void **state)
{
	char server[64];

	(void)state;
	unused_server(server, sizeof(server));
	g_server = server;

	/* queue create: policy ranges and the dead-letter name rule */
	expect_usage(ARGS("queue", "create", "q", "--max-lease-ms", "0"));
	expect_usage(ARGS("queue", "create", "q", "--lease-ms",
			  "9223372036854775808"));
	expect_usage(ARGS("queue", "create", "q", "--max-lease-ms",
			  "18446744073709551615"));
	expect_usage(ARGS("queue", "create", "q", "--max-deliveries", "-1"));
	expect_usage(
		ARGS("queue", "create", "q", "--max-deliveries", "4294967296"));
	expect_usage(ARGS("queue", "create", "q", "--dead-letter", "bad/q"));
	expect_usage(ARGS("queue", "create", "q", "--dead-letter", ""));
	expect_usage(ARGS("queue", "create", "q", "--dead-letter"));
	expect_usage(ARGS("queue", "create", "q", "--max-depth", "x"));
	expect_usage(ARGS("queue", "create", "q", "--max-bytes", "1k"));
	expect_usage(ARGS("queue", "create", "q", "--dedup-window-ms", "-1"));

	/* queue set: a setting is needed, partitions are fixed */
	expect_usage(ARGS("queue", "set", "q"));
	expect_usage(ARGS("queue", "set"));
	expect_usage(ARGS("queue", "set", "bad/q", "--lease-ms", "5"));
	expect_usage(ARGS("queue", "set", "q", "--partitions", "2"));
	expect_usage(ARGS("queue", "set", "q", "--lease-ms", "5",
			  "--partitions", "2"));
	expect_usage(ARGS("queue", "set", "q", "--lease-ms", "0"));
	expect_usage(ARGS("queue", "set", "q", "--dead-letter", "-x"));
	expect_usage(ARGS("queue", "set", "q", "extra", "--lease-ms", "5"));
	expect_usage(ARGS("queue", "set", "q", "--key", "k"));

	/* publish: delays, deliver-at times, dedup ids */
	expect_usage(ARGS("publish", "q", "--delay-ms", "-1", "x"));
	expect_usage(ARGS("publish", "q", "--delay-ms", "1.5", "x"));
	expect_usage(
		ARGS("publish", "q", "--delay-ms", "9223372036854775808", "x"));
	expect_usage(ARGS("publish", "q", "--delay-ms", "10", "--deliver-at",
			  "2026-12-01T10:00:00Z", "x"));
	expect_usage(ARGS("publish", "q", "--deliver-at",
			  "2026-12-01T10:00:00Z", "--delay-ms", "0", "x"));
	expect_usage(ARGS("publish", "q", "--dedup-id", "", "x"));
	expect_usage(ARGS("publish", "q", "--nack-delay-ms", "5", "x"));
	{
		/* Keys and dedup ids: at most 65,535 bytes. */
		static char longest[65537];

		memset(longest, 'k', 65536);
		expect_usage(ARGS("publish", "q", "--key", longest, "x"));
		expect_usage(ARGS("publish", "q", "--dedup-id", longest, "x"));
	}
	{
		/* Not RFC 3339, or not a real time. */
		static const char *const bad_times[] = {
			"",
			"2026-12-01",
			"2026-12-01T10:00:00",	     /* no offset */
			"2026-12-01 10:00:00Z",	     /* space */
			"2026-12-01T10:00Z",	     /* no seconds */
			"2026-12-01T10:00:00.Z",     /* empty fraction */
			"2026-12-01T10:00:00,5Z",    /* comma */
			"2026-12-01T10:00:00+0200",  /* offset without : */
			"2026-12-01T10:00:00+02",    /* short offset */
			"2026-12-01T10:00:00+24:00", /* offset hour */
			"2026-12-01T10:00:00+02:60", /* offset minute */
			"2026-12-01T10:00:00ZZ",     /* trailing */
			"2026-12-01T10:00:00Z ",     /* trailing space */
			" 2026-12-01T10:00:00Z",     /* leading space */
			"2026-13-01T10:00:00Z",	     /* month */
			"2026-00-01T10:00:00Z",	     /* month */
			"2026-02-29T10:00:00Z",	     /* not a leap year */
			"2026-04-31T10:00:00Z",	     /* day */
			"2026-12-00T10:00:00Z",	     /* day */
			"2026-12-01T24:00:00Z",	     /* hour */
			"2026-12-01T10:60:00Z",	     /* minute */
			"2026-12-01T10:00:61Z",	     /* second */
			"26-12-01T10:00:00Z",	     /* two-digit year */
			"+2026-12-01T10:00:00Z",     /* sign */
			"1969-12-31T23:59:59Z",	     /* before the epoch */
			"1970-01-01T00:30:00+01:00", /* before the epoch */
			"1764583200000",	     /* ms, not a time */
		};

		for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]);
		     i++)
			expect_usage(ARGS("publish", "q", "--deliver-at",
					  bad_times[i], "x"));
	}

	/* consume: --nack-delay-ms only with --nack */
	expect_usage(
		ARGS("consume", "q", "--group", "g", "--nack-delay-ms", "500"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--ack",
			  "--nack-delay-ms", "500"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--nack",
			  "--nack-delay-ms", "-1"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--nack",
			  "--nack-delay-ms", "x"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--nack",
			  "--nack-delay-ms"));

	/* message cancel QUEUE PARTITION OFFSET */
	expect_usage(ARGS("message"));
	expect_usage(ARGS("message", "frob"));
	expect_usage(ARGS("message", "cancel"));
	expect_usage(ARGS("message", "cancel", "q"));
	expect_usage(ARGS("message", "cancel", "q", "0"));
	expect_usage(ARGS("message", "cancel", "q", "0", "1", "2"));
	expect_usage(ARGS("message", "cancel", "bad/q", "0", "1"));
	expect_usage(ARGS("message", "cancel", "q", "1024", "1"));
	expect_usage(ARGS("message", "cancel", "q", "x", "1"));
	expect_usage(ARGS("message", "cancel", "q", "0", "--", "-1"));
	expect_usage(ARGS("message", "cancel", "q", "0", "1x"));
	expect_usage(
		ARGS("message", "cancel", "q", "0", "18446744073709551616"));
	expect_usage(ARGS("message", "cancel", "q", "0", "1", "--group", "g"));
	g_server = NULL;
}

static void
test_help_exits_0_on_stdout(void **state)
{
	const char *const *cases[] = {
		ARGS("--help"),
		ARGS("-h"),
		ARGS("queue", "create", "--help"),
		ARGS("queue", "set", "--help"),
		ARGS("queue", "list", "--help"),
		ARGS("publish", "--help"),
		ARGS("consume", "--help"),
		ARGS("message", "--help"),
		ARGS("message", "cancel", "--help"),
		ARGS("--help", "consume", "q", "--group", "bad/name"),
	};
	struct run r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_cli_ex(&r, NULL, 0, cases[i], 0);
		assert_int_equal(r.code, 0);
		assert_int_equal(strncmp(r.out, "Usage: ringmq", 13), 0);
		assert_string_equal(r.err, "");
		run_free(&r);
	}
	RUN(&r, "consume", "--help");
	assert_non_null(strstr(r.out, "\"encoding\" is \"base64\""));
	run_free(&r);
}

/* --help names no unknown command into existence: the words are a usage
 * error with it as without it. */
static void
test_help_of_an_unknown_command_exits_2(void **state)
{
	(void)state;
	expect_usage(ARGS("nosuchcmd", "--help"));
	expect_usage(ARGS("--help", "nosuchcmd"));
	expect_usage(ARGS("queue", "nosuch", "--help"));
	expect_usage(ARGS("-h", "dlq", "nosuch"));
}

/* The help of args mentions every string of want (NULL-ended). */
static void
expect_help_lists(const char *const *args, const char *const *want)
{
	struct run r;

	run_cli_ex(&r, NULL, 0, args, 0);
	assert_int_equal(r.code, 0);
	for (size_t i = 0; want[i] != NULL; i++) {
		if (strstr(r.out, want[i]) == NULL)
			fprintf(stderr, "help of '%s %s' lacks '%s'\n", args[0],
				args[1] ? args[1] : "", want[i]);
		assert_non_null(strstr(r.out, want[i]));
	}
	run_free(&r);
}

static void
test_help_lists_job_flags(void **state)
{
	(void)state;
	expect_help_lists(ARGS("--help"),
			  ARGS("queue set NAME", "message cancel NAME "
						 "PARTITION OFFSET"));
	expect_help_lists(ARGS("queue", "create", "--help"),
			  ARGS("--partitions N", "--lease-ms MS",
			       "--max-lease-ms MS", "--max-deliveries N",
			       "--dead-letter Q", "--max-depth N",
			       "--max-bytes B", "--dedup-window-ms MS"));
	expect_help_lists(ARGS("queue", "set", "--help"),
			  ARGS("Usage: ringmq queue set NAME", "--lease-ms MS",
			       "--max-lease-ms MS", "--max-deliveries N",
			       "--dead-letter Q", "--max-depth N",
			       "--max-bytes B", "--dedup-window-ms MS",
			       "--partitions cannot be changed"));
	expect_help_lists(ARGS("publish", "--help"),
			  ARGS("--delay-ms MS", "--deliver-at TIME",
			       "--dedup-id ID", "RFC 3339"));
	expect_help_lists(ARGS("consume", "--help"),
			  ARGS("--nack-delay-ms MS"));
	expect_help_lists(ARGS("message", "cancel", "--help"),
			  ARGS("Usage: ringmq message cancel NAME PARTITION "
			       "OFFSET",
			       "MESSAGE_NOT_FOUND"));
	expect_help_lists(ARGS("queue", "list", "--help"),
			  ARGS("\"policy\":{\"lease_ms\""));
}

/* ------------------------------------------------------------ unreachable */

static void
test_unreachable_broker_exits_3(void **state)
{
	char server[64];
	struct run r;

	(void)state;
	unused_server(server, sizeof(server));
	g_server = server;

	RUN(&r, "publish", "q", "a", "b");
	expect(&r, 3, "error UNREACHABLE\nerror UNREACHABLE\n");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);

	RUN_IN(&r, "1\n2\n3\n", 6, "publish", "q");
	expect(&r, 3,
	       "error UNREACHABLE\nerror UNREACHABLE\n"
	       "error UNREACHABLE\n");
	run_free(&r);

	RUN(&r, "queue", "list");
	expect(&r, 3, "");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);

	RUN(&r, "consume", "q", "--group", "g");
	expect(&r, 3, "");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);

	RUN(&r, "queue", "set", "q", "--lease-ms", "5");
	expect(&r, 3, "");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);

	RUN(&r, "message", "cancel", "q", "0", "0");
	expect(&r, 3, "");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);

	RUN(&r, "publish", "q", "--delay-ms", "10", "--dedup-id", "d", "a");
	expect(&r, 3, "error UNREACHABLE\n");
	run_free(&r);

	/* Options after the command. */
	g_server = NULL;
	RUN(&r, "queue", "create", "q", "--server", server);
	expect(&r, 3, "");
	run_free(&r);
}

static void
test_silent_broker_times_out_exits_3(void **state)
{
	char server[64];
	char list[160];
	long long t0;
	struct run r;
	int fd;

	(void)state;
	fd = silent_server(server, sizeof(server));
	g_server = server;
	t0 = harness_now_ms();
	RUN(&r, "--request-timeout-ms", "300", "publish", "q", "a", "b");
	expect(&r, 3, "error UNREACHABLE\nerror UNREACHABLE\n");
	expect_err(&r, "UNREACHABLE");
	assert_true(harness_now_ms() - t0 < 10000);
	run_free(&r);

	/* Each address of the list is tried in turn, all failing. */
	unused_server(list, sizeof(list));
	strcat(list, ",");
	strcat(list, server);
	g_server = list;
	RUN(&r, "queue", "list", "--request-timeout-ms", "200");
	expect(&r, 3, "");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);
	g_server = NULL;
	close(fd);
}

static void
test_server_list_uses_the_first_that_answers(void **state)
{
	struct harness_broker *b = *state;
	char list[160];
	struct run r;

	unused_server(list, sizeof(list));
	strcat(list, ",");
	strcat(list, b->addr);
	g_server = list;
	RUN(&r, "queue", "create", "q");
	expect(&r, 0, "");
	run_free(&r);
	g_server = b->addr;
}

/* ------------------------------------------------------------------ queues */

static void
test_queue_create_is_idempotent_and_conflict_exits_1(void **state)
{
	struct run r;

	(void)state;
	create_queue("jobs");
	create_queue("jobs");

	RUN(&r, "queue", "create", "jobs", "--partitions", "1");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "queue", "create", "jobs", "--partitions", "4");
	expect(&r, 1, "");
	expect_err(&r, "QUEUE_EXISTS");
	run_free(&r);

	RUN(&r, "queue", "create", "wide", "--partitions", "4", "--lease-ms",
	    "1000");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "queue", "create", "--lease-ms=1000", "wide", "--partitions",
	    "4");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "queue", "create", "wide", "--lease-ms", "2000");
	expect(&r, 1, "");
	expect_err(&r, "QUEUE_EXISTS");
	run_free(&r);
}

/* Splits s at whitespace into at most max tokens; returns the count. */
static int
split_ws(char *s, char **tok, int max)
{
	int n = 0;

	for (char *t = strtok(s, " \n"); t != NULL && n < max;
	     t = strtok(NULL, " \n"))
		tok[n++] = t;
	return n;
}

static void
test_queue_list_table_and_json(void **state)
{
	struct run r;
	char *tok[32];
	int n;

	(void)state;
	RUN(&r, "queue", "list");
	expect(&r, 0,
	       "NAME  PARTITIONS       READY     DELAYED   IN_FLIGHT  "
	       "GROUPS\n");
	run_free(&r);
	RUN(&r, "queue", "list", "--json");
	expect(&r, 0, "{\"queues\":[]}\n");
	run_free(&r);

	create_queue("alpha");
	RUN(&r, "queue", "create", "beta", "--partitions", "3");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "queue", "list");
	assert_int_equal(r.code, 0);
	n = split_ws(r.out, tok, 32);
	assert_int_equal(n, 18);
	assert_string_equal(tok[0], "NAME");
	assert_string_equal(tok[4], "IN_FLIGHT");
	assert_string_equal(tok[5], "GROUPS");
	/* Rows in either order: find each by name. */
	for (int row = 1; row <= 2; row++) {
		char **f = tok + row * 6;

		if (strcmp(f[0], "alpha") == 0) {
			assert_string_equal(f[1], "1");
		} else {
			assert_string_equal(f[0], "beta");
			assert_string_equal(f[1], "3");
		}
		assert_string_equal(f[3], "0"); /* delayed */
		assert_string_equal(f[4], "0"); /* in flight */
		assert_string_equal(f[5], "0"); /* groups */
	}
	run_free(&r);

	RUN(&r, "queue", "list", "--json");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, "{\"queues\":[{\"name\":\"", 20), 0);
	assert_non_null(strstr(r.out, "{\"name\":\"alpha\",\"partitions\":1,"));
	assert_non_null(strstr(r.out, "{\"name\":\"beta\",\"partitions\":3,"));
	assert_non_null(strstr(r.out, "\"groups\":0,"));
	assert_non_null(strstr(r.out, "\"in_flight\":0,"));
	/* One document on one line. */
	assert_true(r.out_len > 4);
	assert_string_equal(r.out + r.out_len - 4, "}]}\n");
	assert_true(strchr(r.out, '\n') == r.out + r.out_len - 1);
	run_free(&r);
}

/*
 * The object of queue name in queue list --json output is exactly want
 * (followed by ',' or ']').
 */
static void
expect_queue_json(const char *out, const char *name, const char *want)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "{\"name\":\"%s\",", name);
	p = strstr(out, key);
	if (p == NULL || strncmp(p, want, strlen(want)) != 0 ||
	    (p[strlen(want)] != ',' && p[strlen(want)] != ']'))
		fprintf(stderr, "queue %s: want\n%s\nin:\n%s\n", name, want,
			out);
	assert_non_null(p);
	assert_int_equal(strncmp(p, want, strlen(want)), 0);
	assert_true(p[strlen(want)] == ',' || p[strlen(want)] == ']');
}

static void
test_queue_create_policies_shown_and_compared(void **state)
{
	static const char *const all[] = { "queue",    "create",
					   "pol",      "--partitions",
					   "2",	       "--lease-ms",
					   "1500",     "--max-lease-ms",
					   "60000",    "--max-deliveries",
					   "3",	       "--dead-letter",
					   "pol-dead", "--max-depth",
					   "100",      "--max-bytes",
					   "4096",     "--dedup-window-ms",
					   "20000",    NULL };
	struct run r;

	(void)state;
	run_cli_ex(&r, NULL, 0, all, 0);
	expect(&r, 0, "");
	assert_string_equal(r.err, "");
	run_free(&r);
	create_queue("plain");

	RUN(&r, "queue", "list", "--json");
	assert_int_equal(r.code, 0);
	expect_queue_json(r.out, "pol",
			  "{\"name\":\"pol\",\"partitions\":2,\"ready\":0,"
			  "\"delayed\":0,\"in_flight\":0,\"groups\":0,"
			  "\"messages\":0,\"bytes\":0,\"policy\":{"
			  "\"lease_ms\":1500,\"max_lease_ms\":60000,"
			  "\"max_deliveries\":3,\"max_depth\":100,"
			  "\"max_bytes\":4096,\"dedup_window_ms\":20000,"
			  "\"dead_letter\":\"pol-dead\"}}");
	/* Defaults as the broker reports them. */
	expect_queue_json(r.out, "plain",
			  "{\"name\":\"plain\",\"partitions\":1,\"ready\":0,"
			  "\"delayed\":0,\"in_flight\":0,\"groups\":0,"
			  "\"messages\":0,\"bytes\":0,\"policy\":{"
			  "\"lease_ms\":30000,\"max_lease_ms\":43200000,"
			  "\"max_deliveries\":5,\"max_depth\":0,"
			  "\"max_bytes\":0,\"dedup_window_ms\":600000,"
			  "\"dead_letter\":\"plain.dlq\"}}");
	run_free(&r);

	/* The same given settings, all or some: fine. */
	run_cli_ex(&r, NULL, 0, all, 0);
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "queue", "create", "pol", "--max-deliveries", "3",
	    "--dead-letter", "pol-dead");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "queue", "create", "pol", "--max-depth", "100", "--max-bytes",
	    "4096", "--dedup-window-ms", "20000", "--max-lease-ms", "60000");
	expect(&r, 0, "");
	run_free(&r);

	/* Any given setting that differs: QUEUE_EXISTS. */
	{
		static const char *const differs[][2] = {
			{ "--lease-ms", "1501" },
			{ "--max-lease-ms", "60001" },
			{ "--max-deliveries", "0" },
			{ "--dead-letter", "other" },
			{ "--max-depth", "0" },
			{ "--max-bytes", "4095" },
			{ "--dedup-window-ms", "0" },
			{ "--partitions", "1" },
		};

		for (size_t i = 0; i < sizeof(differs) / sizeof(differs[0]);
		     i++) {
			RUN(&r, "queue", "create", "pol", differs[i][0],
			    differs[i][1]);
			if (r.code != 1)
				fprintf(stderr, "%s %s: exit %d\n",
					differs[i][0], differs[i][1], r.code);
			expect(&r, 1, "");
			expect_err(&r, "QUEUE_EXISTS");
			run_free(&r);
		}
	}
}

static void
test_queue_set_changes_policies(void **state)
{
	struct run r;

	(void)state;
	create_queue("adj");
	RUN(&r, "queue", "set", "adj", "--max-deliveries", "0", "--max-depth",
	    "7", "--dead-letter", "adj-dead", "--dedup-window-ms", "5000");
	expect(&r, 0, "");
	assert_string_equal(r.err, "");
	run_free(&r);
	RUN(&r, "queue", "list", "--json");
	assert_int_equal(r.code, 0);
	expect_queue_json(r.out, "adj",
			  "{\"name\":\"adj\",\"partitions\":1,\"ready\":0,"
			  "\"delayed\":0,\"in_flight\":0,\"groups\":0,"
			  "\"messages\":0,\"bytes\":0,\"policy\":{"
			  "\"lease_ms\":30000,\"max_lease_ms\":43200000,"
			  "\"max_deliveries\":0,\"max_depth\":7,"
			  "\"max_bytes\":0,\"dedup_window_ms\":5000,"
			  "\"dead_letter\":\"adj-dead\"}}");
	run_free(&r);

	/* Create compares with the settings as they are now. */
	RUN(&r, "queue", "create", "adj", "--max-depth", "7");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "queue", "create", "adj", "--max-deliveries", "5");
	expect(&r, 1, "");
	expect_err(&r, "QUEUE_EXISTS");
	run_free(&r);

	RUN(&r, "queue", "set", "nosuch", "--lease-ms", "300");
	expect(&r, 1, "");
	expect_err(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
}

/* ----------------------------------------------------------------- publish */

static void
test_publish_args_print_partition_and_offset(void **state)
{
	struct run r;

	(void)state;
	create_queue("q");
	RUN(&r, "publish", "q", "a", "b", "", "c");
	expect(&r, 0, "0 0\n0 1\n0 2\n0 3\n");
	assert_string_equal(r.err, "");
	run_free(&r);

	/* After --, flags are data; global options may follow the data. */
	RUN(&r, "publish", "q", "--", "--json", "-x");
	expect(&r, 0, "0 4\n0 5\n");
	run_free(&r);

	RUN(&r, "publish", "q", "--key", "k1", "keyed", "--json");
	expect(&r, 0, "{\"partition\":0,\"offset\":6,\"duplicate\":false}\n");
	run_free(&r);

	/* A closed stdout is an IO error; the message is still stored. */
	run_cli_ex(&r, NULL, 0, ARGS("publish", "q", "unseen"), 1);
	assert_int_equal(r.code, 1);
	expect_err(&r, "IO");
	run_free(&r);

	RUN(&r, "consume", "q", "--group", "g", "--count", "8", "--ack");
	expect(&r, 0, "a\nb\n\nc\n--json\n-x\nkeyed\nunseen\n");
	run_free(&r);
}

static void
test_publish_stdin_lines(void **state)
{
	/* Empty line, \r kept, NUL and non-UTF-8 bytes, final \n. */
	static const char in[] = "one\n\ntwo\r\n\x01\xff\x00"
				 "bin\n";
	static const char last[] = "no newline";
	struct run r;

	(void)state;
	create_queue("lines");
	RUN_IN(&r, in, sizeof(in) - 1, "publish", "lines");
	expect(&r, 0, "0 0\n0 1\n0 2\n0 3\n");
	run_free(&r);

	RUN_IN(&r, "", 0, "publish", "lines");
	expect(&r, 0, "");
	run_free(&r);

	RUN_IN(&r, "\n", 1, "publish", "lines");
	expect(&r, 0, "0 4\n");
	run_free(&r);

	RUN_IN(&r, last, sizeof(last) - 1, "publish", "lines");
	expect(&r, 0, "0 5\n");
	run_free(&r);

	RUN(&r, "consume", "lines", "--group", "g", "--count", "6", "--ack");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out_len, sizeof(in) - 1 + 1 + sizeof(last));
	assert_memory_equal(r.out, in, sizeof(in) - 1);
	assert_memory_equal(r.out + sizeof(in) - 1, "\nno newline\n",
			    sizeof(last) + 1);
	run_free(&r);
}

static void
test_publish_many_stdin_lines_in_batches(void **state)
{
	enum { N = 5000 };
	char *in = malloc(N * 8);
	char *want = malloc(N * 16);
	size_t in_len = 0;
	size_t want_len = 0;
	struct run r;

	(void)state;
	assert_non_null(in);
	assert_non_null(want);
	for (int i = 0; i < N; i++) {
		in_len += (size_t)sprintf(in + in_len, "m%d\n", i);
		want_len += (size_t)sprintf(want + want_len, "0 %d\n", i);
	}
	create_queue("bulk");
	RUN_IN(&r, in, in_len, "publish", "bulk");
	expect(&r, 0, want);
	run_free(&r);

	RUN(&r, "consume", "bulk", "--group", "g", "--count", "5000", "--ack");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out_len, in_len);
	assert_memory_equal(r.out, in, in_len);
	run_free(&r);
	free(in);
	free(want);
}

static void
test_publish_to_unknown_queue_refuses_each(void **state)
{
	struct run r;

	(void)state;
	RUN(&r, "publish", "nosuch", "a", "b");
	expect(&r, 1, "error QUEUE_NOT_FOUND\nerror QUEUE_NOT_FOUND\n");
	expect_err(&r, "QUEUE_NOT_FOUND");
	run_free(&r);

	RUN_IN(&r, "x\n", 2, "publish", "nosuch");
	expect(&r, 1, "error QUEUE_NOT_FOUND\n");
	run_free(&r);
}

static void
test_publish_over_limit_is_refused_locally(void **state)
{
	char big[1026];
	char *in;
	struct run r;

	(void)state;
	memset(big, 'x', 1025);
	big[1025] = '\0';
	create_queue("small");
	RUN(&r, "publish", "small", "first", big, "last");
	expect(&r, 1, "0 0\nerror MESSAGE_TOO_LARGE\n0 1\n");
	expect_err(&r, "MESSAGE_TOO_LARGE");
	run_free(&r);

	/* Exactly at the limit is fine; stdin gets the same treatment. */
	in = malloc(4000);
	assert_non_null(in);
	memset(in, 'y', 1024);
	in[1024] = '\n';
	memset(in + 1025, 'z', 2000);
	memcpy(in + 3025, "\nend\n", 5);
	RUN_IN(&r, in, 3030, "publish", "small");
	expect(&r, 1, "0 2\nerror MESSAGE_TOO_LARGE\n0 3\n");
	run_free(&r);
	free(in);

	RUN(&r, "consume", "small", "--group", "g", "--count", "4", "--ack",
	    "--timeout-ms", "2000");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out_len, 6 + 5 + 1025 + 4);
	assert_memory_equal(r.out, "first\nlast\n", 11);
	assert_memory_equal(r.out + 11 + 1025, "end\n", 4);
	run_free(&r);
}

/* ----------------------------------------------------------------- consume */

static void
publish_ok(const char *queue, const char *const *payloads, const char *want)
{
	const char *args[MAX_ARGS];
	int n = 0;
	struct run r;

	args[n++] = "publish";
	args[n++] = queue;
	for (int i = 0; payloads[i] != NULL; i++)
		args[n++] = payloads[i];
	args[n] = NULL;
	run_cli_ex(&r, NULL, 0, args, 0);
	expect(&r, 0, want);
	run_free(&r);
}

/*
 * Publishes payloads to a queue of two partitions, keyless: the library
 * spreads them a message at a time, from a partition it picks at random.
 * @return the first one's partition.
 */
static int
publish_spread_ok(const char *queue, const char *const *payloads)
{
	char want[2][256];
	const char *args[MAX_ARGS];
	int n = 0;
	struct run r;

	args[n++] = "publish";
	args[n++] = queue;
	for (int first = 0; first < 2; first++) {
		size_t len = 0;

		want[first][0] = '\0';
		for (int i = 0; payloads[i] != NULL; i++)
			len += (size_t)snprintf(
				want[first] + len, sizeof(want[first]) - len,
				"%d %d\n", (first + i) % 2, i / 2);
	}
	for (int i = 0; payloads[i] != NULL; i++)
		args[n++] = payloads[i];
	args[n] = NULL;
	run_cli_ex(&r, NULL, 0, args, 0);
	expect(&r, 0, strcmp(r.out, want[1]) == 0 ? want[1] : want[0]);
	n = strcmp(r.out, want[1]) == 0;
	run_free(&r);
	return n;
}

static void
test_consume_count_ack_prints_in_order(void **state)
{
	struct run r;

	(void)state;
	create_queue("work");
	publish_ok("work", ARGS("m1", "m2", "m3", "m4", "m5"),
		   "0 0\n0 1\n0 2\n0 3\n0 4\n");
	/* A second group, created before g's acks can delete anything. */
	RUN(&r, "consume", "work", "--group", "other", "--count", "1");
	expect(&r, 0, "m1\n");
	run_free(&r);
	RUN(&r, "consume", "work", "--group", "g", "--count", "3", "--ack");
	expect(&r, 0, "m1\nm2\nm3\n");
	run_free(&r);
	RUN(&r, "consume", "work", "--group", "g", "--count", "5", "--ack",
	    "--timeout-ms", "300");
	expect(&r, 0, "m4\nm5\n");
	run_free(&r);
	RUN(&r, "consume", "work", "--group", "g", "--ack", "--timeout-ms",
	    "200");
	expect(&r, 0, "");
	run_free(&r);
	/* The other group still sees every message. */
	RUN(&r, "consume", "work", "--group", "other", "--count", "2", "--ack");
	expect(&r, 0, "m1\nm2\n");
	run_free(&r);
}

static void
test_consume_times_out_with_nothing(void **state)
{
	long long t0;
	long long took_ms;
	struct run r;

	(void)state;
	create_queue("empty");
	t0 = harness_now_ms();
	RUN(&r, "consume", "empty", "--group", "g", "--timeout-ms", "300");
	took_ms = harness_now_ms() - t0;
	expect(&r, 0, "");
	assert_true(took_ms >= 300);
	assert_true(took_ms < 10000);
	run_free(&r);

	RUN(&r, "consume", "nosuch", "--group", "g", "--timeout-ms", "300");
	expect(&r, 1, "");
	expect_err(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
}

static void
test_consume_without_ack_releases(void **state)
{
	struct run r;

	(void)state;
	create_queue("rel");
	publish_ok("rel", ARGS("a", "b", "c"), "0 0\n0 1\n0 2\n");
	RUN(&r, "consume", "rel", "--group", "g", "--count", "2");
	expect(&r, 0, "a\nb\n");
	run_free(&r);
	/* Released without counting a failure: same messages, count 1. */
	RUN(&r, "consume", "rel", "--group", "g", "--count", "3", "--json",
	    "--ack");
	expect_norm(&r, 0,
		    JMSG("rel", 0, 0, 1, "a") JMSG("rel", 0, 1, 1, "b")
			    JMSG("rel", 0, 2, 1, "c"));
	run_free(&r);
}

static void
test_consume_nack_redelivers(void **state)
{
	struct run r;

	(void)state;
	create_queue("nq");
	publish_ok("nq", ARGS("x", "y"), "0 0\n0 1\n");
	RUN(&r, "consume", "nq", "--group", "g", "--count", "2", "--nack");
	expect(&r, 0, "x\ny\n");
	run_free(&r);
	RUN(&r, "consume", "nq", "--group", "g", "--count", "2", "--json",
	    "--ack");
	expect_norm(&r, 0, JMSG("nq", 0, 0, 2, "x") JMSG("nq", 0, 1, 2, "y"));
	run_free(&r);
}

static void
test_consume_json_escapes(void **state)
{
	static const char in[] = "q\"b\\s\t\x01\x7f\xc3\xa9\n"
				 "\x01\xff\n";
	struct run r;

	(void)state;
	create_queue("esc");
	RUN_IN(&r, in, sizeof(in) - 1, "publish", "esc");
	expect(&r, 0, "0 0\n0 1\n");
	run_free(&r);
	/* Valid UTF-8 escaped as JSON; anything else base64. */
	RUN(&r, "consume", "esc", "--group", "g", "--count", "2", "--json",
	    "--ack");
	expect_norm(
		&r, 0,
		JMSG("esc", 0, 0, 1,
		     "q\\\"b\\\\s\\t\\u0001\\u007f\xc3\xa9") "{\"queue\":\"esc\",\"group\":\"g\",\"partition\":0,"
							     "\"offset\":1,\"lease_id\":\"L\",\"delivery_count\":1,"
							     "\"publish_time_ms\":T,\"key\":null,\"headers\":{},"
							     "\"payload\":\"Af8=\",\"encoding\":\"base64\"}\n");
	run_free(&r);
}

static void
test_consume_into_closed_pipe_loses_nothing(void **state)
{
	struct run r;

	(void)state;
	create_queue("pipe");
	publish_ok("pipe", ARGS("keep"), "0 0\n");
	run_cli_ex(&r, NULL, 0,
		   ARGS("consume", "pipe", "--group", "g", "--count", "1",
			"--ack"),
		   1);
	assert_int_equal(r.code, 1);
	expect_err(&r, "IO");
	run_free(&r);
	RUN(&r, "consume", "pipe", "--group", "g", "--count", "1", "--ack");
	expect(&r, 0, "keep\n");
	run_free(&r);
}

/* Waits until queue has `groups` groups, through the library. */
static void
wait_groups(const char *queue, uint32_t groups)
{
	long long deadline_ms = harness_now_ms() + 10000;
	ringmq_opts *opts = ringmq_opts_new();
	ringmq_client *c = NULL;
	char err[256];

	assert_non_null(opts);
	assert_int_equal(
		ringmq_opts_set(opts, "server", g_server, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, opts, err, sizeof(err)),
			 RINGMQ_OK);
	for (;;) {
		ringmq_queue_list *l = NULL;
		uint32_t have = 0;

		assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
		for (size_t i = 0; i < ringmq_queue_list_count(l); i++)
			if (strcmp(ringmq_queue_list_name(l, i), queue) == 0)
				have = ringmq_queue_list_groups(l, i);
		ringmq_queue_list_free(l);
		if (have >= groups)
			break;
		assert_true(harness_now_ms() < deadline_ms);
		(void)poll(NULL, 0, 10);
	}
	ringmq_client_free(c);
	ringmq_opts_free(opts);
}

/* Reads the child's stdout until it holds want (a prefix check). */
static void
read_until(struct child *ch, struct run *r, const char *want)
{
	long long deadline_ms = harness_now_ms() + 10000;

	while (r->out_len < strlen(want)) {
		struct pollfd p = { ch->out_fd, POLLIN, 0 };
		int left = (int)(deadline_ms - harness_now_ms());

		assert_true(left > 0);
		if (poll(&p, 1, left) <= 0)
			continue;
		assert_int_equal(drain_fd(ch->out_fd, &r->out, &r->out_len), 0);
	}
	assert_string_equal(r->out, want);
}

static void
test_consume_sigterm_while_waiting_exits_143(void **state)
{
	struct child ch;
	struct run r = { 0 };

	(void)state;
	create_queue("sig");
	spawn(&ch,
	      ARGS("consume", "sig", "--group", "g", "--timeout-ms", "60000"),
	      0);
	wait_groups("sig", 1);
	assert_int_equal(kill(ch.pid, SIGTERM), 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	expect(&r, 143, "");
	run_free(&r);
}

static void
test_consume_signal_settles_printed(void **state)
{
	struct child ch;
	struct run r = { 0 };

	(void)state;
	create_queue("sig2");

	/* --ack: the printed message stays acked after SIGINT. */
	publish_ok("sig2", ARGS("acked"), "0 0\n");
	spawn(&ch,
	      ARGS("consume", "sig2", "--group", "a", "--timeout-ms", "60000",
		   "--ack"),
	      0);
	read_until(&ch, &r, "acked\n");
	assert_int_equal(kill(ch.pid, SIGINT), 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	expect(&r, 130, "acked\n");
	run_free(&r);

	/* Without --ack: what was printed is released on SIGTERM. */
	publish_ok("sig2", ARGS("held"), "0 1\n");
	spawn(&ch,
	      ARGS("consume", "sig2", "--group", "a", "--timeout-ms", "60000"),
	      0);
	read_until(&ch, &r, "held\n");
	assert_int_equal(kill(ch.pid, SIGTERM), 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	expect(&r, 143, "held\n");
	run_free(&r);

	RUN(&r, "consume", "sig2", "--group", "a", "--ack", "--timeout-ms",
	    "500");
	expect(&r, 0, "held\n");
	run_free(&r);
}

static void
test_consume_connection_lost_exits_3(void **state)
{
	struct harness_broker *b = *state;
	struct child ch;
	struct run r = { 0 };

	create_queue("lost");
	publish_ok("lost", ARGS("kept"), "0 0\n");
	spawn(&ch,
	      ARGS("consume", "lost", "--group", "g", "--timeout-ms", "60000"),
	      0);
	read_until(&ch, &r, "kept\n");
	/* The broker dies under the waiting consume. */
	assert_true(harness_kill(b, SIGKILL) >= 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	expect(&r, 3, "kept\n");
	expect_err(&r, "CONNECTION_LOST");
	run_free(&r);

	/* Restarted on the same data: the confirmed message is there, its
	 * lease gone with the broker, and offsets go on. */
	assert_int_equal(harness_start(b, NULL), 0);
	g_server = b->addr;
	publish_ok("lost", ARGS("after"), "0 1\n");
	RUN(&r, "consume", "lost", "--group", "g", "--count", "2", "--ack");
	expect(&r, 0, "kept\nafter\n");
	run_free(&r);
}

/* ----------------------------------------------------- leases and delays */

/*
 * Starts a consume of queue in group g that prints want and holds the
 * leases (no --ack, no --count, a long timeout) until stopped.
 */
static void
spawn_holder(struct child *ch, struct run *r, const char *queue,
	     const char *want)
{
	memset(r, 0, sizeof(*r));
	spawn(ch,
	      ARGS("consume", queue, "--group", "g", "--timeout-ms", "60000"),
	      0);
	read_until(ch, r, want);
}

/* Stops a holder with SIGTERM (it releases what it holds, if it can). */
static void
stop_holder(struct child *ch, struct run *r)
{
	assert_int_equal(kill(ch->pid, SIGTERM), 0);
	finish_child(ch, r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	run_free(r);
}

static void
test_queue_set_lease_ms_makes_leases_expire_sooner(void **state)
{
	struct child ch;
	struct run held;
	struct run r;
	long long t0;

	(void)state;
	create_queue("lq");
	publish_ok("lq", ARGS("job"), "0 0\n");

	/* Default lease (30 s): while one consume holds the message, another
	 * does not get it. */
	spawn_holder(&ch, &held, "lq", "job\n");
	RUN(&r, "consume", "lq", "--group", "g", "--timeout-ms", "700");
	expect(&r, 0, "");
	run_free(&r);
	stop_holder(&ch, &held);

	RUN(&r, "queue", "set", "lq", "--lease-ms", "300");
	expect(&r, 0, "");
	run_free(&r);

	/* A lease of 300 ms: once it expires the message comes back, its
	 * delivery counted as failed. */
	spawn_holder(&ch, &held, "lq", "job\n");
	t0 = harness_now_ms();
	RUN(&r, "consume", "lq", "--group", "g", "--count", "1", "--json",
	    "--ack", "--timeout-ms", "10000");
	expect_norm(&r, 0, JMSG("lq", 0, 0, 2, "job"));
	assert_true(harness_now_ms() - t0 < 5000);
	run_free(&r);
	stop_holder(&ch, &held);
}

/*
 * Writes into buf the wall-clock time in_ms from now as RFC 3339, in the
 * zone offset_min minutes east of UTC ("Z" when is_z instead). With
 * is_frac the seconds carry six fractional digits (the ms, then 999, which
 * must be dropped); without, the time is cut to the whole second.
 */
static void
rfc3339_from_now(char *buf, size_t len, long long in_ms, int offset_min,
		 int is_z, int is_frac)
{
	struct timespec ts;
	struct tm tm;
	long long ms;
	time_t sec;
	size_t n;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + in_ms +
	     (long long)offset_min * 60000;
	sec = (time_t)(ms / 1000);
	assert_non_null(gmtime_r(&sec, &tm));
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_true(n > 0);
	if (is_frac)
		n += (size_t)snprintf(buf + n, len - n, ".%03lld999",
				      ms % 1000);
	if (is_z)
		snprintf(buf + n, len - n, "Z");
	else
		snprintf(buf + n, len - n, "%c%02d:%02d",
			 offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
			 abs(offset_min) % 60);
}

/* Exit 0 and one "0 OFFSET" line on stdout. */
static void
expect_one_position(const struct run *r)
{
	unsigned long long off;
	char want[64];

	assert_int_equal(r->code, 0);
	assert_int_equal(sscanf(r->out, "0 %llu", &off), 1);
	snprintf(want, sizeof(want), "0 %llu\n", off);
	assert_string_equal(r->out, want);
}

static void
test_publish_delay_ms_holds_messages_back(void **state)
{
	struct run r;
	long long t0;

	(void)state;
	create_queue("later");
	t0 = harness_now_ms();
	/* Every message of the invocation gets the delay. */
	RUN(&r, "publish", "later", "--delay-ms", "800", "a", "b");
	expect(&r, 0, "0 0\n0 1\n");
	run_free(&r);
	RUN(&r, "consume", "later", "--group", "g", "--timeout-ms", "300");
	expect(&r, 0, "");
	assert_true(harness_now_ms() - t0 < 800);
	run_free(&r);

	RUN(&r, "consume", "later", "--group", "g", "--count", "2", "--ack",
	    "--timeout-ms", "10000");
	expect(&r, 0, "a\nb\n");
	assert_true(harness_now_ms() - t0 >= 800);
	run_free(&r);

	/* A delay of 0 is no delay. (Offsets are not compared from here on:
	 * a delayed message takes a new offset when it becomes due.) */
	RUN(&r, "publish", "later", "--delay-ms", "0", "now");
	expect_one_position(&r);
	run_free(&r);
	RUN(&r, "consume", "later", "--group", "g", "--count", "1", "--ack",
	    "--timeout-ms", "300");
	expect(&r, 0, "now\n");
	run_free(&r);
}

static void
test_publish_deliver_at_holds_messages_back(void **state)
{
	char at_east[64], at_west[64], at_z[64];
	struct run r;
	long long t0;

	(void)state;
	create_queue("at");
	t0 = harness_now_ms();
	/* The same instant, about 2.5 s ahead, in three spellings; a wrong
	 * offset sign would make it hours early or late. */
	rfc3339_from_now(at_east, sizeof(at_east), 2500, 120, 0, 1);
	rfc3339_from_now(at_west, sizeof(at_west), 2500, -330, 0, 1);
	rfc3339_from_now(at_z, sizeof(at_z), 2500, 0, 1, 0); /* whole s */
	RUN(&r, "publish", "at", "--deliver-at", at_east, "east");
	expect(&r, 0, "0 0\n");
	run_free(&r);
	RUN(&r, "publish", "at", "--deliver-at", at_west, "west");
	expect(&r, 0, "0 1\n");
	run_free(&r);
	RUN(&r, "publish", "at", "--deliver-at", at_z, "zulu");
	expect(&r, 0, "0 2\n");
	run_free(&r);

	RUN(&r, "consume", "at", "--group", "g", "--timeout-ms", "300");
	expect(&r, 0, "");
	/* Dropping the fraction makes at_z due 1.5 s ahead at the earliest. */
	assert_true(harness_now_ms() - t0 < 1500);
	run_free(&r);

	RUN(&r, "consume", "at", "--group", "g", "--count", "3", "--ack",
	    "--timeout-ms", "10000");
	assert_int_equal(r.code, 0);
	assert_true(harness_now_ms() - t0 >= 1500);
	assert_int_equal(r.out_len, strlen("east\nwest\nzulu\n"));
	assert_non_null(strstr(r.out, "east\n"));
	assert_non_null(strstr(r.out, "west\n"));
	assert_non_null(strstr(r.out, "zulu\n"));
	run_free(&r);

	/* A time already past is ready at once. */
	RUN(&r, "publish", "at", "--deliver-at", "2020-02-29T23:59:60.5-01:00",
	    "past");
	expect_one_position(&r);
	run_free(&r);
	RUN(&r, "consume", "at", "--group", "g", "--count", "1", "--ack",
	    "--timeout-ms", "300");
	expect(&r, 0, "past\n");
	run_free(&r);
}

/* 1 when the broker answers a repeated dedup id as a duplicate. */
static int
broker_has_dedup(void)
{
	ringmq_opts *opts = ringmq_opts_new();
	ringmq_queue_opts *qo = ringmq_queue_opts_new();
	ringmq_message *m = ringmq_message_new("probe", 5);
	ringmq_client *c = NULL;
	char err[256];
	int is_dup = 0;

	assert_non_null(opts);
	assert_non_null(qo);
	assert_non_null(m);
	assert_int_equal(
		ringmq_opts_set(opts, "server", g_server, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, opts, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "dedup-probe", qo), RINGMQ_OK);
	assert_int_equal(ringmq_message_set_dedup_id(m, "probe"), RINGMQ_OK);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ringmq_publish(c, "dedup-probe", m, NULL, NULL,
						&is_dup),
				 RINGMQ_OK);
	ringmq_message_free(m);
	ringmq_client_free(c);
	ringmq_queue_opts_free(qo);
	ringmq_opts_free(opts);
	return is_dup;
}

static void
test_publish_dedup_id_prints_original_position(void **state)
{
	char want[64];
	unsigned part;
	unsigned long long off;
	struct run r;

	(void)state;
	if (!broker_has_dedup()) {
		fprintf(stderr, "skipped: this ringmqd does not deduplicate "
				"by dedup id yet\n");
		skip();
	}
	RUN(&r, "queue", "create", "dq", "--partitions", "4");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "publish", "dq", "--dedup-id", "order-17", "first");
	assert_int_equal(r.code, 0);
	assert_int_equal(sscanf(r.out, "%u %llu", &part, &off), 2);
	snprintf(want, sizeof(want), "%u %llu\n", part, off);
	assert_string_equal(r.out, want);
	run_free(&r);

	/* The repeat is not stored; it prints where the original is. */
	RUN(&r, "publish", "dq", "--dedup-id", "order-17", "second");
	expect(&r, 0, want);
	assert_string_equal(r.err, "");
	run_free(&r);
	snprintf(want, sizeof(want),
		 "{\"partition\":%u,\"offset\":%llu,\"duplicate\":true}\n",
		 part, off);
	RUN(&r, "publish", "dq", "--dedup-id", "order-17", "--json", "third");
	expect(&r, 0, want);
	run_free(&r);

	/* One id for every message of the invocation: the later ones are
	 * duplicates of the first. */
	RUN(&r, "publish", "dq", "--dedup-id", "order-18", "x", "y");
	assert_int_equal(r.code, 0);
	assert_int_equal(sscanf(r.out, "%u %llu", &part, &off), 2);
	snprintf(want, sizeof(want), "%u %llu\n%u %llu\n", part, off, part,
		 off);
	assert_string_equal(r.out, want);
	run_free(&r);

	RUN(&r, "consume", "dq", "--group", "g", "--ack", "--timeout-ms",
	    "500");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out_len, strlen("first\nx\n"));
	assert_non_null(strstr(r.out, "first\n"));
	assert_non_null(strstr(r.out, "x\n"));
	run_free(&r);
}

static void
test_consume_nack_delay_ms_holds_message_back(void **state)
{
	struct run r;
	long long t_nack;

	(void)state;
	create_queue("nd");
	publish_ok("nd", ARGS("retry-me"), "0 0\n");
	RUN(&r, "consume", "nd", "--group", "g", "--count", "1", "--nack",
	    "--nack-delay-ms", "500");
	expect(&r, 0, "retry-me\n");
	run_free(&r);
	/* consume exits once its nack is confirmed. */
	t_nack = harness_now_ms();

	RUN(&r, "consume", "nd", "--group", "g", "--timeout-ms", "200");
	expect(&r, 0, "");
	assert_true(harness_now_ms() - t_nack < 500);
	run_free(&r);

	RUN(&r, "consume", "nd", "--group", "g", "--count", "1", "--json",
	    "--ack", "--timeout-ms", "10000");
	expect_norm(&r, 0, JMSG("nd", 0, 0, 2, "retry-me"));
	run_free(&r);
}

/* Exit 1 with stderr starting "ringmq: CODE: " and nothing on stdout. */
static void
expect_refusal(const struct run *r, const char *code)
{
	char prefix[64];

	expect(r, 1, "");
	snprintf(prefix, sizeof(prefix), "ringmq: %s: ", code);
	if (strncmp(r->err, prefix, strlen(prefix)) != 0)
		fprintf(stderr, "stderr does not start '%s':\n%s\n", prefix,
			r->err);
	assert_int_equal(strncmp(r->err, prefix, strlen(prefix)), 0);
}

static void
test_message_cancel_delayed_is_never_delivered(void **state)
{
	struct run r;

	(void)state;
	create_queue("cq");
	RUN(&r, "publish", "cq", "--delay-ms", "1000", "cancelled");
	expect(&r, 0, "0 0\n");
	run_free(&r);
	publish_ok("cq", ARGS("kept"), "0 1\n");

	RUN(&r, "message", "cancel", "cq", "0", "0");
	expect(&r, 0, "");
	assert_string_equal(r.err, "");
	run_free(&r);

	/* Gone: a second cancel finds nothing. */
	RUN(&r, "message", "cancel", "cq", "0", "0");
	expect_refusal(&r, "MESSAGE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "message", "cancel", "cq", "0", "99");
	expect_refusal(&r, "MESSAGE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "message", "cancel", "cq", "1", "0"); /* no partition 1 */
	expect_refusal(&r, "MESSAGE_NOT_FOUND");
	run_free(&r);
	/* Only delayed messages can be cancelled. */
	RUN(&r, "message", "cancel", "cq", "0", "1");
	expect_refusal(&r, "INVALID_ARGUMENT");
	run_free(&r);
	RUN(&r, "message", "cancel", "nosuch", "0", "0");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);

	/* Past the cancelled message's due time, only the other one came. */
	RUN(&r, "consume", "cq", "--group", "g", "--ack", "--timeout-ms",
	    "1500");
	expect(&r, 0, "kept\n");
	run_free(&r);
}

/* What the CLI refuses before connecting, the library refuses too. */
static void
test_library_checks_queue_set_and_list_accessors(void **state)
{
	ringmq_opts *opts = ringmq_opts_new();
	ringmq_queue_opts *o = ringmq_queue_opts_new();
	ringmq_queue_list *l = NULL;
	ringmq_client *c = NULL;
	uint64_t v = 7;
	char err[256];

	(void)state;
	assert_non_null(opts);
	assert_non_null(o);
	assert_int_equal(
		ringmq_opts_set(opts, "server", g_server, err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, opts, err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "lib", NULL), RINGMQ_OK);

	/* Partitions are fixed: refused without asking the broker. */
	assert_int_equal(
		ringmq_queue_opts_set(o, "partitions", "2", err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_queue_set(c, "lib", o), RINGMQ_USAGE);
	assert_int_equal(ringmq_queue_set(c, "lib", NULL), RINGMQ_USAGE);
	ringmq_queue_opts_free(o);
	o = ringmq_queue_opts_new();
	assert_non_null(o);
	/* No setting: nothing changes, but the queue must exist. */
	assert_int_equal(ringmq_queue_set(c, "lib", o), RINGMQ_OK);
	assert_int_equal(ringmq_queue_set(c, "nosuch", o),
			 RINGMQ_QUEUE_NOT_FOUND);
	assert_int_equal(ringmq_queue_opts_set(o, "dead-letter-queue", "old",
					       err, sizeof(err)),
			 RINGMQ_OK);
	assert_int_equal(
		ringmq_queue_opts_set(o, "lease-ms", "250", err, sizeof(err)),
		RINGMQ_OK);
	assert_int_equal(ringmq_queue_set(c, "lib", o), RINGMQ_OK);

	assert_int_equal(ringmq_queue_list_get(c, &l), RINGMQ_OK);
	assert_int_equal(ringmq_queue_list_count(l), 1);
	assert_int_equal(ringmq_queue_list_setting(l, 0, "lease-ms", &v), 1);
	assert_int_equal(v, 250);
	assert_int_equal(ringmq_queue_list_setting(l, 0, "partitions", &v), 1);
	assert_int_equal(v, 1);
	assert_int_equal(ringmq_queue_list_setting(l, 0, "max-deliveries", &v),
			 1);
	assert_int_equal(v, 5);
	v = 7;
	assert_int_equal(ringmq_queue_list_setting(l, 0, "nosuch", &v), 0);
	assert_int_equal(ringmq_queue_list_setting(l, 1, "lease-ms", &v), 0);
	assert_int_equal(ringmq_queue_list_setting(l, 0, NULL, &v), 0);
	assert_int_equal(v, 7);
	assert_string_equal(ringmq_queue_list_dead_letter_queue(l, 0), "old");
	assert_null(ringmq_queue_list_dead_letter_queue(l, 1));
	ringmq_queue_list_free(l);

	assert_int_equal(ringmq_message_cancel(c, "lib", 0, 0),
			 RINGMQ_MESSAGE_NOT_FOUND);
	assert_int_equal(ringmq_message_cancel(c, NULL, 0, 0), RINGMQ_USAGE);
	ringmq_client_free(c);
	ringmq_queue_opts_free(o);
	ringmq_opts_free(opts);
}

/* ------------------------------------------------------ administration */

/* 1 when the broker answers admin request kind (a probe run of the CLI)
 * with something other than "not supported yet". */
static int
broker_supports(const char *const *args)
{
	struct run r;
	int is_supported;

	run_cli_ex(&r, NULL, 0, args, 0);
	is_supported = strstr(r.err, "not supported yet") == NULL;
	run_free(&r);
	return is_supported;
}

#define SKIP_UNLESS_SUPPORTED(...)                                \
	do {                                                      \
		if (!broker_supports(ARGS(__VA_ARGS__))) {        \
			fprintf(stderr,                           \
				"skipped: this ringmqd does not " \
				"answer '%s' yet\n",              \
				#__VA_ARGS__);                    \
			skip();                                   \
		}                                                 \
	} while (0)

static void
test_admin_usage_errors_exit_2_before_connecting(void **state)
{
	char server[64];
	struct run r;

	(void)state;
	unused_server(server, sizeof(server));
	g_server = server;
	expect_usage(ARGS("queue", "delete"));
	expect_usage(ARGS("queue", "delete", "bad/q"));
	expect_usage(ARGS("queue", "describe", "q", "x"));
	expect_usage(ARGS("queue", "purge"));
	expect_usage(ARGS("group"));
	expect_usage(ARGS("group", "frob", "q", "g"));
	expect_usage(ARGS("group", "create", "q"));
	expect_usage(ARGS("group", "create", "q", "bad/g"));
	expect_usage(ARGS("group", "create", "q", "g", "--from", "middle"));
	expect_usage(ARGS("group", "create", "q", "g", "--to", "latest"));
	expect_usage(ARGS("group", "delete", "q", "g", "x"));
	expect_usage(ARGS("group", "list"));
	expect_usage(ARGS("group", "describe", "q"));
	expect_usage(ARGS("group", "reset", "q", "g"));
	expect_usage(ARGS("group", "reset", "q", "g", "--to", "x"));
	expect_usage(ARGS("peek"));
	expect_usage(ARGS("peek", "q", "--partition", "1024"));
	expect_usage(ARGS("peek", "q", "--count", "0"));
	expect_usage(ARGS("peek", "q", "--group", "g"));
	expect_usage(ARGS("message", "show", "q", "0"));
	expect_usage(ARGS("message", "show", "q", "x", "0"));
	expect_usage(ARGS("dlq"));
	expect_usage(ARGS("dlq", "list"));
	expect_usage(ARGS("dlq", "redrive", "q", "--group", "bad/g"));
	expect_usage(ARGS("dlq", "redrive", "q", "--count", "x"));
	expect_usage(ARGS("stats", "extra"));
	expect_usage(ARGS("ping", "--count", "3"));
	expect_usage(ARGS("consume", "q", "--group", "g", "--follow",
			  "--timeout-ms", "5"));
	expect_usage(ARGS("publish", "q", "--header", "novalue", "x"));
	expect_usage(ARGS("publish", "q", "--header", "=v", "x"));
	expect_usage(ARGS("publish", "q", "--header", "ringmq-x=v", "x"));
	expect_usage(ARGS("publish", "q", "--file", "/dev/null", "x"));

	/* With --json the error line is the same. */
	RUN(&r, "--json", "group", "reset", "q", "g");
	expect(&r, 2, "");
	assert_string_equal(r.err, "ringmq: USAGE: group reset: missing --to "
				   "earliest|latest\n");
	run_free(&r);
	g_server = NULL;
}

static void
test_admin_help_and_unreachable(void **state)
{
	const char *const *cmds[] = {
		ARGS("queue", "delete", "q"),
		ARGS("queue", "describe", "q"),
		ARGS("queue", "purge", "q"),
		ARGS("group", "create", "q", "g"),
		ARGS("group", "delete", "q", "g"),
		ARGS("group", "list", "q"),
		ARGS("group", "describe", "q", "g"),
		ARGS("group", "reset", "q", "g", "--to", "latest"),
		ARGS("peek", "q"),
		ARGS("message", "show", "q", "0", "0"),
		ARGS("dlq", "list", "q"),
		ARGS("dlq", "redrive", "q"),
		ARGS("stats"),
		ARGS("ping"),
		ARGS("backup", "/tmp/ringmq-cli-unused"),
		ARGS("top", "--count", "1"),
	};
	char server[64];
	const char *args[MAX_ARGS];
	struct run r;

	(void)state;
	unused_server(server, sizeof(server));
	g_server = server;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		size_t n = 0;

		for (; cmds[i][n] != NULL; n++)
			args[n] = cmds[i][n];
		args[n] = "--help";
		args[n + 1] = NULL;
		run_cli_ex(&r, NULL, 0, args, 0);
		assert_int_equal(r.code, 0);
		assert_int_equal(strncmp(r.out, "Usage: ringmq", 13), 0);
		run_free(&r);

		run_cli_ex(&r, NULL, 0, cmds[i], 0);
		if (r.code != 3)
			fprintf(stderr, "%s %s: exit %d\n", cmds[i][0],
				cmds[i][1] ? cmds[i][1] : "", r.code);
		expect(&r, 3, "");
		expect_err(&r, "UNREACHABLE");
		run_free(&r);

		args[n] = "--json";
		run_cli_ex(&r, NULL, 0, args, 0);
		expect(&r, 3, "");
		expect_err(&r, "UNREACHABLE");
		run_free(&r);
	}
	RUN(&r, "--json", "publish", "q", "a");
	expect(&r, 3,
	       "{\"error\":{\"code\":\"UNREACHABLE\",\"message\":\"cannot "
	       "connect to the broker\"}}\n");
	expect_err(&r, "UNREACHABLE");
	run_free(&r);
	g_server = NULL;
}

static void
test_queue_delete_describe_purge(void **state)
{
	struct run r;
	char *tok[64];
	int n;

	(void)state;
	SKIP_UNLESS_SUPPORTED("queue", "describe", "nosuch");
	RUN(&r, "queue", "create", "dq", "--partitions", "2");
	expect(&r, 0, "");
	run_free(&r);
	(void)publish_spread_ok("dq", ARGS("a", "b", "c"));
	RUN(&r, "--json", "publish", "dq", "--delay-ms", "60000", "later");
	assert_int_equal(r.code, 0);
	run_free(&r);
	RUN(&r, "group", "create", "dq", "g");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "queue", "describe", "dq", "--json");
	assert_int_equal(r.code, 0);
	assert_int_equal(
		strncmp(r.out,
			"{\"queue\":{\"name\":\"dq\",\"partitions\":2,"
			"\"ready\":3,\"delayed\":1,\"in_flight\":0,"
			"\"groups\":1,\"messages\":4,",
			strlen("{\"queue\":{\"name\":\"dq\",\"partitions\":2,"
			       "\"ready\":3,\"delayed\":1,\"in_flight\":0,"
			       "\"groups\":1,\"messages\":4,")),
		0);
	assert_non_null(strstr(r.out, "\"dead_letter\":\"dq.dlq\"},"
				      "\"partition_info\":[{\"partition\":0,"));
	assert_non_null(strstr(r.out, "\"group_info\":[{\"queue\":\"dq\","
				      "\"name\":\"g\",\"consumers\":0,"
				      "\"ready\":3,"));
	assert_string_equal(r.out + r.out_len - 4, "]}}\n");
	run_free(&r);

	RUN(&r, "queue", "describe", "dq");
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "queue       dq\n"));
	assert_non_null(strstr(r.out, "delayed     1\n"));
	assert_non_null(strstr(r.out, "PARTITION    MESSAGES"));
	n = split_ws(strstr(r.out, "GROUP  "), tok, 64);
	assert_int_equal(n, 10);
	assert_string_equal(tok[5], "g");
	assert_string_equal(tok[7], "3"); /* ready */
	run_free(&r);

	/* Purge drops ready and delayed messages. */
	RUN(&r, "queue", "purge", "dq");
	expect(&r, 0, "purged 4\n");
	run_free(&r);
	RUN(&r, "queue", "purge", "dq", "--json");
	expect(&r, 0, "{\"purged\":0}\n");
	run_free(&r);
	RUN(&r, "consume", "dq", "--group", "g", "--timeout-ms", "200");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "queue", "delete", "dq", "--json");
	expect(&r, 0, "{\"ok\":true}\n");
	run_free(&r);
	RUN(&r, "queue", "delete", "dq");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "queue", "describe", "dq");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "queue", "purge", "dq", "--json");
	expect(&r, 1, "");
	assert_string_equal(
		r.err, "ringmq: QUEUE_NOT_FOUND: queue dq: queue not found\n");
	run_free(&r);
	RUN(&r, "queue", "list", "--json");
	expect(&r, 0, "{\"queues\":[]}\n");
	run_free(&r);
}

static void
test_group_commands(void **state)
{
	struct run r;

	(void)state;
	SKIP_UNLESS_SUPPORTED("group", "list", "nosuch");
	create_queue("gq");
	publish_ok("gq", ARGS("one", "two"), "0 0\n0 1\n");
	RUN(&r, "group", "create", "gq", "early");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "group", "create", "gq", "early", "--json");
	expect(&r, 0, "{\"ok\":true}\n");
	run_free(&r);
	RUN(&r, "group", "create", "gq", "late", "--from", "latest");
	expect(&r, 0, "");
	run_free(&r);

	RUN(&r, "group", "list", "gq", "--json");
	expect(&r, 0,
	       "{\"groups\":[{\"queue\":\"gq\",\"name\":\"early\","
	       "\"consumers\":0,\"ready\":2,\"in_flight\":0,\"lag\":2,"
	       "\"ack_floor\":[0]},{\"queue\":\"gq\",\"name\":\"late\","
	       "\"consumers\":0,\"ready\":0,\"in_flight\":0,\"lag\":0,"
	       "\"ack_floor\":[2]}]}\n");
	run_free(&r);
	RUN(&r, "group", "list", "gq");
	expect(&r, 0,
	       "GROUP  CONSUMERS       READY   IN_FLIGHT         LAG\n"
	       "early          0           2           0           2\n"
	       "late           0           0           0           0\n");
	run_free(&r);

	/* The late group only sees what comes after it; reset moves it. */
	RUN(&r, "consume", "gq", "--group", "late", "--timeout-ms", "200");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "group", "reset", "gq", "late", "--to", "earliest");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "group", "describe", "gq", "late", "--json");
	expect(&r, 0,
	       "{\"group\":{\"queue\":\"gq\",\"name\":\"late\","
	       "\"consumers\":0,\"ready\":2,\"in_flight\":0,\"lag\":2,"
	       "\"ack_floor\":[0]}}\n");
	run_free(&r);
	RUN(&r, "group", "describe", "gq", "late");
	expect(&r, 0,
	       "queue      gq\ngroup      late\nconsumers  0\nready      2\n"
	       "in_flight  0\nlag        2\n\nPARTITION     ACK_FLOOR\n"
	       "        0             0\n");
	run_free(&r);
	RUN(&r, "consume", "gq", "--group", "late", "--count", "2", "--ack");
	expect(&r, 0, "one\ntwo\n");
	run_free(&r);
	RUN(&r, "group", "reset", "gq", "early", "--to", "latest", "--json");
	expect(&r, 0, "{\"ok\":true}\n");
	run_free(&r);

	RUN(&r, "group", "delete", "gq", "early");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "group", "delete", "gq", "early");
	expect_refusal(&r, "GROUP_NOT_FOUND");
	run_free(&r);
	RUN(&r, "group", "describe", "gq", "early");
	expect_refusal(&r, "GROUP_NOT_FOUND");
	run_free(&r);
	RUN(&r, "group", "create", "nosuch", "g");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "group", "list", "nosuch");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
}

static void
test_publish_headers_file_and_json_errors(void **state)
{
	static const char bin[] = "\x00\x01\xfe";
	char path[] = "/tmp/ringmq-cli-XXXXXX";
	struct run r;
	int fd;

	(void)state;
	create_queue("hq");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bin, 3), 3);
	close(fd);

	RUN(&r, "publish", "hq", "--key", "k", "--header", "a=1", "--header",
	    "b=x=y", "--json", "text");
	expect(&r, 0, "{\"partition\":0,\"offset\":0,\"duplicate\":false}\n");
	run_free(&r);
	RUN(&r, "publish", "hq", "--file", path);
	expect(&r, 0, "0 1\n");
	run_free(&r);
	unlink(path);
	RUN(&r, "publish", "hq", "--file", path);
	expect(&r, 2, "");
	expect_err(&r, "USAGE");
	run_free(&r);

	RUN(&r, "consume", "hq", "--group", "g", "--count", "2", "--json");
	expect_norm(&r, 0,
		    "{\"queue\":\"hq\",\"group\":\"g\",\"partition\":0,"
		    "\"offset\":0,\"lease_id\":\"L\",\"delivery_count\":1,"
		    "\"publish_time_ms\":T,\"key\":\"k\",\"headers\":{\"a\":"
		    "\"1\",\"b\":\"x=y\"},\"payload\":\"text\",\"encoding\":"
		    "\"utf8\"}\n"
		    "{\"queue\":\"hq\",\"group\":\"g\",\"partition\":0,"
		    "\"offset\":1,\"lease_id\":\"L\",\"delivery_count\":1,"
		    "\"publish_time_ms\":T,\"key\":null,\"headers\":{},"
		    "\"payload\":\"AAH+\",\"encoding\":\"base64\"}\n");
	run_free(&r);

	/* A refused message: its line on stdout, the error on stderr. */
	RUN(&r, "publish", "nosuch", "--json", "x");
	expect(&r, 1,
	       "{\"error\":{\"code\":\"QUEUE_NOT_FOUND\",\"message\":"
	       "\"queue not found\"}}\n");
	assert_string_equal(r.err,
			    "ringmq: QUEUE_NOT_FOUND: queue not found\n");
	run_free(&r);
}

static void
test_peek_and_message_show(void **state)
{
	struct run r;
	char *tok[64];
	char want[320];
	const char *in_1; /* the first message of partition 1 */
	int n;

	(void)state;
	RUN(&r, "queue", "create", "pq", "--partitions", "2");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "peek", "pq");
	expect(&r, 0,
	       "PARTITION        OFFSET  PUBLISHED                    BYTES  "
	       "KEY           PAYLOAD\n");
	run_free(&r);
	/* p0 and p2 go to one partition, p1 and p3 to the other. */
	in_1 = publish_spread_ok("pq", ARGS("p0", "p1", "p2", "p3")) ? "p0"
								     : "p1";
	RUN(&r, "publish", "pq", "--key", "kk", "--header", "h=v", "--", "-k");
	assert_int_equal(r.code, 0);
	run_free(&r);

	RUN(&r, "peek", "pq", "--count", "3");
	assert_int_equal(r.code, 0);
	n = split_ws(r.out, tok, 64);
	assert_int_equal(n, 6 + 3 * 6);
	assert_string_equal(tok[6], "0");  /* partition */
	assert_string_equal(tok[7], "0");  /* offset */
	assert_string_equal(tok[10], "-"); /* key */
	assert_string_equal(tok[11], in_1[1] == '0' ? "p1" : "p0");
	assert_string_equal(tok[17], in_1[1] == '0' ? "p3" : "p2");
	assert_string_equal(tok[18], "0");
	run_free(&r);

	/* The broker answers at most 2 per request here: pages. */
	RUN(&r, "peek", "pq", "--partition", "1", "--count", "100", "--json");
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\"partition\":1,\"offset\":0,"));
	assert_non_null(strstr(r.out, "\"partition\":1,\"offset\":1,"));
	assert_null(strstr(r.out, "\"partition\":0,"));
	run_free(&r);
	snprintf(want, sizeof(want),
		 "{\"queue\":\"pq\",\"group\":null,\"partition\":1,"
		 "\"offset\":0,\"lease_id\":null,\"delivery_count\":0,"
		 "\"publish_time_ms\":T,\"key\":null,\"headers\":{},"
		 "\"payload\":\"%s\",\"encoding\":\"utf8\"}\n",
		 in_1);
	RUN(&r, "peek", "pq", "--partition", "1", "--count", "1", "--json");
	expect_norm(&r, 0, want);
	run_free(&r);

	RUN(&r, "message", "show", "pq", "1", "0", "--json");
	expect_norm(&r, 0, want);
	run_free(&r);
	RUN(&r, "peek", "pq", "--json", "--count", "10");
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\"key\":\"kk\",\"headers\":{\"h\":"
				      "\"v\"},\"payload\":\"-k\""));
	run_free(&r);

	/* Nothing was leased: a consumer still gets everything. */
	RUN(&r, "consume", "pq", "--group", "g", "--count", "5", "--ack");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out_len, strlen("p0\np1\np2\np3\n-k\n"));
	run_free(&r);

	RUN(&r, "peek", "nosuch");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "peek", "pq", "--partition", "5");
	expect_refusal(&r, "INVALID_ARGUMENT");
	run_free(&r);
	RUN(&r, "message", "show", "pq", "0", "99");
	expect_refusal(&r, "MESSAGE_NOT_FOUND");
	run_free(&r);
}

static void
test_message_show_human(void **state)
{
	struct run r;

	(void)state;
	create_queue("sq");
	RUN(&r, "publish", "sq", "--key", "k1", "--header", "trace=abc",
	    "hello\tworld");
	expect(&r, 0, "0 0\n");
	run_free(&r);
	RUN(&r, "message", "show", "sq", "0", "0");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out,
				 "queue      sq\npartition  0\noffset     0\n"
				 "published  20",
				 strlen("queue      sq\npartition  0\noffset  "
					"   0\npublished  20")),
			 0);
	assert_non_null(strstr(r.out,
			       "Z\nkey        k1\nheader     trace=abc\n"
			       "bytes      11\npayload    hello\\x09world\n"));
	run_free(&r);
	/* A header name cannot forge a line of its own. */
	RUN(&r, "publish", "sq", "--header", "a\nheader     b=c", "x");
	expect(&r, 0, "0 1\n");
	run_free(&r);
	RUN(&r, "message", "show", "sq", "0", "1");
	assert_int_equal(r.code, 0);
	assert_non_null(
		strstr(r.out, "\nheader     a\\x0aheader     b=c\nbytes "));
	run_free(&r);
}

/* Waits until dlq list of queue shows n messages (dead-lettering may
 * commit after the nack that caused it is confirmed). */
static void
wait_dead_letters(const char *queue, size_t n)
{
	long long deadline_ms = harness_now_ms() + 10000;

	for (;;) {
		struct run r;
		size_t lines = 0;

		RUN(&r, "dlq", "list", queue, "--json");
		assert_int_equal(r.code, 0);
		for (char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
		run_free(&r);
		if (lines >= n)
			return;
		assert_true(harness_now_ms() < deadline_ms);
		(void)poll(NULL, 0, 20);
	}
}

/* dlq list pages through answers of at most 2 (this broker's limit). */
static void
test_dlq_list_pages(void **state)
{
	long long deadline_ms = harness_now_ms() + 10000;
	struct run r;
	char *tok[64];
	size_t lines;

	(void)state;
	RUN(&r, "queue", "create", "pq5", "--max-deliveries", "1",
	    "--partitions", "2");
	expect(&r, 0, "");
	run_free(&r);
	/* A key each: spread over the partitions by their hashes. */
	for (int i = 1; i <= 5; i++) {
		char payload[8];

		snprintf(payload, sizeof(payload), "b%d", i);
		RUN(&r, "publish", "pq5", "--key", payload, payload);
		assert_int_equal(r.code, 0);
		run_free(&r);
	}
	RUN(&r, "consume", "pq5", "--group", "g", "--count", "5", "--nack");
	assert_int_equal(r.code, 0);
	run_free(&r);
	for (;;) {
		RUN(&r, "dlq", "list", "pq5", "--count", "100", "--json");
		assert_int_equal(r.code, 0);
		lines = 0;
		for (char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
		if (lines == 5)
			break;
		run_free(&r);
		assert_true(lines < 5 && harness_now_ms() < deadline_ms);
		(void)poll(NULL, 0, 20);
	}
	for (int i = 1; i <= 5; i++) {
		char want[32];

		snprintf(want, sizeof(want), "\"payload\":\"b%d\"", i);
		assert_non_null(strstr(r.out, want));
	}
	run_free(&r);
	RUN(&r, "dlq", "list", "pq5", "--count", "3");
	assert_int_equal(r.code, 0);
	assert_int_equal(split_ws(r.out, tok, 64), 6 + 3 * 6);
	run_free(&r);
}

static void
test_dlq_list_and_redrive(void **state)
{
	struct run r;
	char *tok[64];
	int n;

	(void)state;
	RUN(&r, "queue", "create", "wq", "--max-deliveries", "1");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "dlq", "list", "wq", "--json");
	expect(&r, 0, "");
	run_free(&r);
	publish_ok("wq", ARGS("bad1", "bad2"), "0 0\n0 1\n");
	/* One failed delivery each is the last: both die. */
	RUN(&r, "consume", "wq", "--group", "g", "--count", "2", "--nack");
	expect(&r, 0, "bad1\nbad2\n");
	run_free(&r);
	wait_dead_letters("wq", 2);

	RUN(&r, "dlq", "list", "wq");
	assert_int_equal(r.code, 0);
	n = split_ws(r.out, tok, 64);
	assert_int_equal(n, 6 + 2 * 6);
	assert_string_equal(tok[5], "PAYLOAD");
	assert_string_equal(tok[8], "g");
	assert_string_equal(tok[9], "max_deliveries");
	assert_string_equal(tok[10], "1");
	assert_string_equal(tok[11], "bad1");
	assert_string_equal(tok[17], "bad2");
	run_free(&r);
	/* Over the broker's batch limit (1000 here): paged. */
	RUN(&r, "dlq", "list", "wq", "--count", "1001");
	assert_int_equal(r.code, 0);
	assert_int_equal(split_ws(r.out, tok, 64), 6 + 2 * 6);
	run_free(&r);
	RUN(&r, "dlq", "list", "wq", "--json", "--count", "1");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out,
				 "{\"queue\":\"wq.dlq\",\"group\":null,"
				 "\"partition\":0,\"offset\":0,",
				 strlen("{\"queue\":\"wq.dlq\",\"group\":null,"
					"\"partition\":0,\"offset\":0,")),
			 0);
	assert_non_null(strstr(r.out, "\"ringmq-source-queue\":\"wq\""));
	assert_non_null(strstr(r.out, "\"payload\":\"bad1\""));
	assert_null(strstr(r.out, "bad2"));
	run_free(&r);

	RUN(&r, "dlq", "redrive", "wq", "--group", "other");
	expect(&r, 0, "redriven 0\n");
	run_free(&r);
	RUN(&r, "dlq", "redrive", "wq", "--group", "g", "--count", "1",
	    "--json");
	expect(&r, 0, "{\"redriven\":1}\n");
	run_free(&r);
	RUN(&r, "dlq", "redrive", "wq");
	expect(&r, 0, "redriven 1\n");
	run_free(&r);
	RUN(&r, "dlq", "list", "wq", "--json");
	expect(&r, 0, "");
	run_free(&r);
	/* Back in the group they died in, counted from 1 again. */
	RUN(&r, "consume", "wq", "--group", "g", "--count", "2", "--ack",
	    "--json");
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\"delivery_count\":1,"));
	assert_non_null(strstr(r.out, "\"payload\":\"bad1\""));
	assert_non_null(strstr(r.out, "\"payload\":\"bad2\""));
	run_free(&r);

	RUN(&r, "dlq", "list", "nosuch");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
	RUN(&r, "dlq", "redrive", "nosuch");
	expect_refusal(&r, "QUEUE_NOT_FOUND");
	run_free(&r);
}

static void
test_stats_and_ping(void **state)
{
	struct harness_broker *b = *state;
	char want[128];
	struct run r;

	(void)state;
	SKIP_UNLESS_SUPPORTED("stats");
	create_queue("st");
	RUN(&r, "stats", "--json");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, "{\"stats\":{\"", 11), 0);
	assert_non_null(strstr(r.out, "\"queues\":1"));
	assert_string_equal(r.out + r.out_len - 3, "}}\n");
	run_free(&r);
	RUN(&r, "stats");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, "NAME", 4), 0);
	assert_non_null(strstr(r.out, "\nqueues "));
	run_free(&r);

	RUN(&r, "ping");
	assert_int_equal(r.code, 0);
	snprintf(want, sizeof(want), "pong from %s in ", b->addr);
	assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
	assert_string_equal(r.out + r.out_len - 4, " ms\n");
	run_free(&r);
	RUN(&r, "ping", "--json");
	assert_int_equal(r.code, 0);
	snprintf(want, sizeof(want), "{\"server\":\"%s\",\"rtt_us\":", b->addr);
	assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
	run_free(&r);
}

/* --server adds up (a later dead address does not replace the broker),
 * and the broker answers cluster status for itself outside a cluster. */
static void
test_cluster_status_through_several_servers(void **state)
{
	struct harness_broker *b = *state;
	char want[256];
	struct run r;

	create_queue("cs");
	RUN(&r, "--server", "127.0.0.1:1", "cluster", "status", "--json");
	assert_int_equal(r.code, 0);
	snprintf(want, sizeof(want),
		 "{\"cluster\":null,\"controller\":null,\"brokers\":[{\"id\":"
		 "\"\",\"address\":\"%s\"}],\"queues\":[",
		 b->addr);
	assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
	snprintf(want, sizeof(want),
		 "{\"name\":\"cs\",\"partitions\":[{\"partition\":0,"
		 "\"owner\":\"%s\",\"epoch\":0}]}",
		 b->addr);
	assert_non_null(strstr(r.out, want));
	run_free(&r);
	RUN(&r, "cluster", "status");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, "not in cluster mode\n", 20), 0);
	assert_non_null(strstr(r.out, "\nQUEUE "));
	run_free(&r);
	RUN(&r, "cluster");
	assert_int_equal(r.code, 2);
	run_free(&r);
}

static void
test_consume_follow_outlives_idle(void **state)
{
	struct child ch;
	struct run r = { 0 };
	long long until;
	int status;

	(void)state;
	create_queue("fol");
	spawn(&ch, ARGS("consume", "fol", "--group", "g", "--follow", "--ack"),
	      0);
	wait_groups("fol", 1);
	/* Idle for a while: it keeps waiting (a non-follow consume with
	 * --timeout-ms 300 would be gone). */
	until = harness_now_ms() + 600;
	while (harness_now_ms() < until) {
		assert_int_equal(waitpid(ch.pid, &status, WNOHANG), 0);
		(void)poll(NULL, 0, 20);
	}
	publish_ok("fol", ARGS("late"), "0 0\n");
	read_until(&ch, &r, "late\n");
	assert_int_equal(kill(ch.pid, SIGTERM), 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	expect(&r, 143, "late\n");
	run_free(&r);
}

/* ------------------------------------------------------------ backup, top */

/* Number of times needle occurs in hay. */
static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL;
	     p += strlen(needle))
		n++;
	return n;
}

/* The number after "key": in s (asserted present). */
static double
json_number(const char *s, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(s, pat);
	if (p == NULL)
		fail_msg("no %s in %s", pat, s);
	return strtod(p + strlen(pat), NULL);
}

static void
test_backup_writes_a_copy_and_refuses_to_overwrite(void **state)
{
	struct harness_broker copy = { 0 };
	char parent[] = "/tmp/ringmq-test-cli-backup-XXXXXX";
	char dir[200], dir2[200], file[220], want[300];
	const char *server = g_server;
	unsigned long long bytes;
	struct stat st;
	struct run r;

	(void)state;
	create_queue("bk");
	publish_ok("bk", ARGS("one", "two"), "0 0\n0 1\n");
	assert_non_null(mkdtemp(parent));
	/* A directory that does not exist yet: the broker creates it. */
	snprintf(dir, sizeof(dir), "%s/copy", parent);
	RUN(&r, "backup", dir);
	snprintf(want, sizeof(want), "backup written to %s (", dir);
	if (r.code != 0 || strncmp(r.out, want, strlen(want)) != 0)
		fprintf(stderr, "exit %d\nstdout: %s\nstderr: %s\n", r.code,
			r.out, r.err);
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
	assert_int_equal(sscanf(r.out + strlen(want), "%llu bytes)", &bytes),
			 1);
	assert_string_equal(r.out + r.out_len - 8, " bytes)\n");
	run_free(&r);
	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	assert_int_equal(stat(file, &st), 0);
	assert_true(bytes > 0);
	assert_int_equal((unsigned long long)st.st_size, bytes);

	/* The same directory again: refused, nothing overwritten. */
	RUN(&r, "backup", dir);
	expect(&r, 1, "");
	expect_err(&r, "INVALID_ARGUMENT");
	assert_non_null(strstr(r.err, dir));
	run_free(&r);
	/* A path through a file, or under a missing directory, is the
	 * request's fault, not the broker's. */
	RUN(&r, "backup", file);
	expect(&r, 1, "");
	expect_err(&r, "INVALID_ARGUMENT");
	run_free(&r);
	snprintf(dir2, sizeof(dir2), "%s/no/such/dir", parent);
	RUN(&r, "backup", dir2);
	expect(&r, 1, "");
	expect_err(&r, "INVALID_ARGUMENT");
	run_free(&r);

	snprintf(dir2, sizeof(dir2), "%s/copy2", parent);
	RUN(&r, "--json", "backup", dir2);
	assert_int_equal(r.code, 0);
	snprintf(want, sizeof(want), "{\"dir\":\"%s\",\"bytes\":", dir2);
	assert_int_equal(strncmp(r.out, want, strlen(want)), 0);
	assert_true(json_number(r.out, "bytes") > 0);
	assert_string_equal(r.out + r.out_len - 2, "}\n");
	run_free(&r);

	/* A broker started on the copy has the queue and its messages. */
	copy.stdout_fd = -1;
	snprintf(copy.dir, sizeof(copy.dir), "%s", dir);
	assert_int_equal(harness_start(&copy, NULL), 0);
	g_server = copy.addr;
	RUN(&r, "queue", "list", "--json");
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"name\":\"bk\","));
	assert_true(json_number(r.out, "messages") == 2);
	run_free(&r);
	g_server = server;
	assert_int_equal(harness_stop(&copy), 0);
	/* harness_cleanup removes /tmp/ringmq-test-* directories whole. */
	snprintf(copy.dir, sizeof(copy.dir), "%s", parent);
	harness_cleanup(&copy);
}

static void
test_backup_and_top_usage_errors_exit_2(void **state)
{
	char server[64];

	(void)state;
	unused_server(server, sizeof(server));
	g_server = server;
	expect_usage(ARGS("backup"));
	expect_usage(ARGS("backup", "relative/dir"));
	expect_usage(ARGS("backup", "./x"));
	expect_usage(ARGS("backup", ""));
	expect_usage(ARGS("backup", "/tmp/a", "/tmp/b"));
	expect_usage(ARGS("backup", "/tmp/a", "--count", "1"));
	expect_usage(ARGS("top", "x"));
	expect_usage(ARGS("top", "--interval-ms", "9"));
	expect_usage(ARGS("top", "--interval-ms", "3600001"));
	expect_usage(ARGS("top", "--interval-ms", "1s"));
	expect_usage(ARGS("top", "--count", "0"));
	expect_usage(ARGS("top", "--group", "g"));
	expect_usage(ARGS("stats", "--interval-ms", "100"));
	g_server = NULL;
}

static void
test_top_prints_count_blocks(void **state)
{
	struct run r;

	(void)state;
	create_queue("tq");
	RUN(&r, "group", "create", "tq", "g");
	expect(&r, 0, "");
	run_free(&r);
	RUN(&r, "top", "--count", "2", "--interval-ms", "200");
	if (r.code != 0)
		fprintf(stderr, "exit %d\nstderr: %s\n", r.code, r.err);
	assert_int_equal(r.code, 0);
	/* Not a terminal: no screen clearing, blocks one after another. */
	assert_null(strchr(r.out, '\033'));
	assert_int_equal(count_of(r.out, "ringmq top  "), 2);
	assert_int_equal(strncmp(r.out, "ringmq top  ", 12), 0);
	assert_int_equal(count_of(r.out, "\nconnections  "), 2);
	assert_int_equal(count_of(r.out, "\nstorage      "), 2);
	assert_int_equal(count_of(r.out, "\nrates/s      publish -   "
					 "deliver -   ack -\n"),
			 1); /* the first refresh has no rates yet */
	assert_int_equal(count_of(r.out, "\nQUEUE  "), 4);
	assert_int_equal(count_of(r.out, "\ntq   "), 4); /* queue and group */
	assert_string_equal(r.err, "");
	run_free(&r);
}

/* Reads the child's stdout until it holds n lines. */
static void
read_lines(struct child *ch, struct run *r, size_t n)
{
	long long deadline_ms = harness_now_ms() + 10000;

	while (r->out == NULL || count_of(r->out, "\n") < n) {
		struct pollfd p = { ch->out_fd, POLLIN, 0 };
		int left = (int)(deadline_ms - harness_now_ms());

		assert_true(left > 0);
		if (poll(&p, 1, left) <= 0)
			continue;
		assert_int_equal(drain_fd(ch->out_fd, &r->out, &r->out_len), 0);
	}
}

static void
test_top_json_rates_follow_publishes(void **state)
{
	struct child ch;
	struct run r = { 0 };
	char *second;

	(void)state;
	create_queue("rq");
	/* Long enough an interval for a publish between the refreshes,
	 * also under sanitizers. */
	spawn(&ch,
	      ARGS("top", "--json", "--count", "2", "--interval-ms", "1500"),
	      0);
	read_lines(&ch, &r, 1);
	publish_ok("rq", ARGS("a", "b", "c"), "0 0\n0 1\n0 2\n");
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	if (r.code != 0)
		fprintf(stderr, "exit %d\nstderr: %s\n", r.code, r.err);
	assert_int_equal(r.code, 0);
	assert_int_equal(count_of(r.out, "\n"), 2);
	second = strchr(r.out, '\n') + 1;
	second[-1] = '\0';
	/* First line: totals, no rates yet. */
	assert_int_equal(strncmp(r.out, "{\"time_ms\":", 11), 0);
	assert_non_null(strstr(r.out, "\"rates\":{\"publish\":null,"
				      "\"deliver\":null,\"ack\":null}"));
	assert_true(json_number(r.out, "published_total") == 0);
	assert_non_null(strstr(r.out, "\"queues\":[{\"name\":\"rq\","));
	assert_true(json_number(r.out, "connections") >= 1);
	assert_non_null(strstr(r.out, "\"storage_used_bytes\":"));
	assert_non_null(strstr(r.out, "\"storage_limit_bytes\":"));
	assert_non_null(strstr(r.out, "\"groups\":[]}"));
	/* Second: the three publishes moved the total and the rate. */
	assert_true(json_number(second, "published_total") == 3);
	assert_true(json_number(second, "publish") > 0);
	assert_true(json_number(second, "deliver") == 0);
	assert_true(json_number(second, "ready") == 3);
	/* The queue has rates of its own: three publishes, none delivered. */
	{
		const char *q = strstr(second, "\"queues\":[{\"name\":\"rq\",");

		assert_non_null(q);
		assert_non_null(strstr(q, "\"rates\":{\"publish\":"));
		assert_true(json_number(strstr(q, "\"rates\":"), "publish") >
			    0);
		assert_true(json_number(strstr(q, "\"rates\":"), "deliver") ==
			    0);
	}
	assert_non_null(strstr(r.out, "\"publish\":null,\"deliver\":null,"
				      "\"ack\":null}}"));
	assert_string_equal(second + strlen(second) - 2, "}\n");
	run_free(&r);
}

static void
test_top_sigterm_exits_143(void **state)
{
	struct child ch;
	struct run r = { 0 };

	(void)state;
	spawn(&ch, ARGS("top", "--json", "--interval-ms", "60000"), 0);
	read_lines(&ch, &r, 1);
	assert_int_equal(kill(ch.pid, SIGTERM), 0);
	finish_child(&ch, &r, NULL, 0, harness_now_ms() + RUN_DEADLINE_MS);
	assert_int_equal(r.code, 143);
	assert_int_equal(count_of(r.out, "\n"), 1);
	run_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usage_errors_exit_2_before_connecting),
		cmocka_unit_test(
			test_job_flags_usage_errors_exit_2_before_connecting),
		cmocka_unit_test(test_help_exits_0_on_stdout),
		cmocka_unit_test_setup_teardown(
			test_cluster_status_through_several_servers,
			broker_setup, broker_teardown),
		cmocka_unit_test(test_help_of_an_unknown_command_exits_2),
		cmocka_unit_test(test_help_lists_job_flags),
		cmocka_unit_test(test_unreachable_broker_exits_3),
		cmocka_unit_test(test_silent_broker_times_out_exits_3),
		cmocka_unit_test_setup_teardown(
			test_server_list_uses_the_first_that_answers,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_queue_create_is_idempotent_and_conflict_exits_1,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_queue_list_table_and_json,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_queue_create_policies_shown_and_compared,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_queue_set_changes_policies,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_args_print_partition_and_offset,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_publish_stdin_lines,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_many_stdin_lines_in_batches, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_to_unknown_queue_refuses_each,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_over_limit_is_refused_locally,
			broker_small_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_count_ack_prints_in_order, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_times_out_with_nothing, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_without_ack_releases, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(test_consume_nack_redelivers,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_consume_json_escapes,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_into_closed_pipe_loses_nothing,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_sigterm_while_waiting_exits_143,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_signal_settles_printed, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_connection_lost_exits_3, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_queue_set_lease_ms_makes_leases_expire_sooner,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_delay_ms_holds_messages_back, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_deliver_at_holds_messages_back,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_dedup_id_prints_original_position,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_nack_delay_ms_holds_message_back,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_message_cancel_delayed_is_never_delivered,
			broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_library_checks_queue_set_and_list_accessors,
			broker_setup, broker_teardown),
		cmocka_unit_test(
			test_admin_usage_errors_exit_2_before_connecting),
		cmocka_unit_test(test_admin_help_and_unreachable),
		cmocka_unit_test_setup_teardown(
			test_queue_delete_describe_purge, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(test_group_commands,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_publish_headers_file_and_json_errors, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(test_peek_and_message_show,
						broker_small_batch_setup,
						broker_teardown),
		cmocka_unit_test_setup_teardown(test_message_show_human,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_dlq_list_and_redrive,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(test_dlq_list_pages,
						broker_small_batch_setup,
						broker_teardown),
		cmocka_unit_test_setup_teardown(test_stats_and_ping,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_follow_outlives_idle, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_backup_writes_a_copy_and_refuses_to_overwrite,
			broker_setup, broker_teardown),
		cmocka_unit_test(test_backup_and_top_usage_errors_exit_2),
		cmocka_unit_test_setup_teardown(test_top_prints_count_blocks,
						broker_setup, broker_teardown),
		cmocka_unit_test_setup_teardown(
			test_top_json_rates_follow_publishes, broker_setup,
			broker_teardown),
		cmocka_unit_test_setup_teardown(test_top_sigterm_exits_143,
						broker_setup, broker_teardown),
	};

	/* A child that exits early must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
