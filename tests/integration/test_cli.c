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
#include <sys/wait.h>
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
	char long_name[200];

	(void)state;
	/* Had it connected, an unused port would make it exit 3. */
	unused_server(server, sizeof(server));
	g_server = server;
	memset(long_name, 'a', 197);
	long_name[197] = '\0';

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
test_help_exits_0_on_stdout(void **state)
{
	const char *const *cases[] = {
		ARGS("--help"),
		ARGS("-h"),
		ARGS("queue", "create", "--help"),
		ARGS("queue", "list", "--help"),
		ARGS("publish", "--help"),
		ARGS("consume", "--help"),
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
	assert_non_null(strstr(r.out, "\\u00XX"));
	run_free(&r);
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
	expect(&r, 0, "{\"partition\":0,\"offset\":6}\n");
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
	expect(&r, 0,
	       "{\"partition\":0,\"offset\":0,\"delivery_count\":1,"
	       "\"payload\":\"a\"}\n"
	       "{\"partition\":0,\"offset\":1,\"delivery_count\":1,"
	       "\"payload\":\"b\"}\n"
	       "{\"partition\":0,\"offset\":2,\"delivery_count\":1,"
	       "\"payload\":\"c\"}\n");
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
	expect(&r, 0,
	       "{\"partition\":0,\"offset\":0,\"delivery_count\":2,"
	       "\"payload\":\"x\"}\n"
	       "{\"partition\":0,\"offset\":1,\"delivery_count\":2,"
	       "\"payload\":\"y\"}\n");
	run_free(&r);
}

static void
test_consume_json_escapes(void **state)
{
	static const char in[] = "q\"b\\s\t\x01\x7f\xc3\xa9\xff\n";
	struct run r;

	(void)state;
	create_queue("esc");
	RUN_IN(&r, in, sizeof(in) - 1, "publish", "esc");
	expect(&r, 0, "0 0\n");
	run_free(&r);
	RUN(&r, "consume", "esc", "--group", "g", "--count", "1", "--json",
	    "--ack");
	expect(&r, 0,
	       "{\"partition\":0,\"offset\":0,\"delivery_count\":1,"
	       "\"payload\":\"q\\\"b\\\\s\\t\\u0001\\u007f\xc3\xa9\\u00ff\"}"
	       "\n");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usage_errors_exit_2_before_connecting),
		cmocka_unit_test(test_help_exits_0_on_stdout),
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
	};

	/* A child that exits early must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
