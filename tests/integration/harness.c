/*
 * harness: see harness.h.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Brokers still running, killed at exit so a failed assertion (which
 * longjmps past the test's own cleanup) leaves no process behind. */
static pid_t running[16];

static void
kill_running(void)
{
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
		if (running[i] > 0) {
			kill(running[i], SIGKILL);
			(void)waitpid(running[i], NULL, 0);
			running[i] = 0;
		}
}

static void
track(pid_t pid, pid_t replace)
{
	static int is_registered;

	if (!is_registered) {
		atexit(kill_running);
		is_registered = 1;
	}
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
		if (running[i] == replace) {
			running[i] = pid;
			return;
		}
}

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
harness_program(const char *env_name)
{
	const char *p = getenv(env_name);

	if (p == NULL || *p == '\0') {
		fprintf(stderr, "harness: %s is not set\n", env_name);
		abort();
	}
	return p;
}

/* Reads the broker's stdout until "listening on HOST:PORT\n" or deadline. */
/* Reads one line of the broker's stdout into line (without '\n'). */
static int
read_line(struct harness_broker *b, char *line, size_t len,
	  long long deadline_ms)
{
	size_t n = 0;

	while (harness_now_ms() < deadline_ms) {
		struct pollfd p = { .fd = b->stdout_fd, .events = POLLIN };
		int left = (int)(deadline_ms - harness_now_ms());
		ssize_t r;

		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			continue;
		r = read(b->stdout_fd, line + n, 1);
		if (r <= 0)
			return -1;
		if (line[n] == '\n') {
			line[n] = '\0';
			return 0;
		}
		if (++n == len - 1)
			return -1;
	}
	return -1;
}

static int
wait_listening(struct harness_broker *b, long long deadline_ms)
{
	char line[256];
	size_t n = 0;
	while (harness_now_ms() < deadline_ms) {
		struct pollfd p = { .fd = b->stdout_fd, .events = POLLIN };
		int left = (int)(deadline_ms - harness_now_ms());
		ssize_t r;

		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			continue;
		r = read(b->stdout_fd, line + n, 1);
		if (r <= 0) {
			fprintf(stderr, "harness: ringmqd exited early\n");
			return -1;
		}
		if (line[n] != '\n') {
			if (++n == sizeof(line) - 1)
				return -1;
			continue;
		}
		line[n] = '\0';
		if (sscanf(line, "listening on %63s", b->addr) != 1) {
			fprintf(stderr, "harness: unexpected line '%s'\n",
				line);
			return -1;
		}
		const char *colon = strrchr(b->addr, ':');
		b->port = colon ? atoi(colon + 1) : 0;
		return b->port > 0 ? 0 : -1;
	}
	fprintf(stderr, "harness: no 'listening on' within the deadline\n");
	return -1;
}

/* 1 if the extra flags turn HTTP on (the harness's default is off). */
static int
wants_http(const struct harness_broker *b)
{
	int on = 0;

	for (int i = 0; b->extra[i] && b->extra[i + 1]; i++)
		if (strcmp(b->extra[i], "--http") == 0)
			on = strcmp(b->extra[i + 1], "off") != 0;
	return on;
}

int
harness_journal(void)
{
	const char *v = getenv("RINGMQ_TEST_JOURNAL");

	if (v != NULL && strcmp(v, "1") == 0)
		return 1;
	if (v != NULL && strcmp(v, "0") == 0)
		return 0;
	return -1;
}

int
harness_start(struct harness_broker *b, const char *const *extra)
{
	const char *prog = harness_program("RINGMQD");
	const char *argv[HARNESS_MAX_ARGS + 16];
	pid_t parent;
	int fds[2];
	int argc = 0;

	if (b->dir[0] == '\0') {
		snprintf(b->dir, sizeof(b->dir), "/tmp/ringmq-test-XXXXXX");
		if (mkdtemp(b->dir) == NULL) {
			perror("harness: mkdtemp");
			return -1;
		}
		b->extra[0] = NULL;
	}
	/* Flags given are kept for restarts (which pass NULL). */
	for (int i = 0; extra && extra[i] && i < HARNESS_MAX_ARGS - 1; i++) {
		b->extra[i] = extra[i];
		b->extra[i + 1] = NULL;
	}
	argv[argc++] = prog;
	argv[argc++] = "--listen";
	argv[argc++] = "127.0.0.1:0";
	argv[argc++] = "--data";
	argv[argc++] = b->dir;
	argv[argc++] = "--max-storage-bytes";
	argv[argc++] = "268435456";
	argv[argc++] = "--http"; /* a later --http in extra wins */
	argv[argc++] = "off";
	if (harness_journal() >= 0) { /* so does a later --journal */
		argv[argc++] = "--journal";
		argv[argc++] = harness_journal() ? "on" : "off";
	}
	for (int i = 0; b->extra[i]; i++)
		argv[argc++] = b->extra[i];
	argv[argc] = NULL;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	parent = getpid();
	b->pid = fork();
	if (b->pid < 0)
		return -1;
	if (b->pid == 0) {
		/* A test that aborts (an assertion, a sanitizer) must not
		 * leave its broker behind: it would hold the test's output
		 * open and the runner would wait for it until its timeout. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(127);
		dup2(fds[1], STDOUT_FILENO);
		if (b->log_path != NULL) {
			int log = open(b->log_path,
				       O_WRONLY | O_CREAT | O_APPEND, 0600);

			if (log < 0 || dup2(log, STDERR_FILENO) < 0)
				_exit(127);
		}
		execv(prog, (char *const *)argv);
		perror("harness: execv ringmqd");
		_exit(127);
	}
	close(fds[1]);
	b->stdout_fd = fds[0];
	track(b->pid, 0);
	if (wait_listening(b, harness_now_ms() + 10000) < 0) {
		harness_kill(b, SIGKILL);
		return -1;
	}
	b->http_addr[0] = '\0';
	if (wants_http(b)) {
		char line[256];

		if (read_line(b, line, sizeof(line), harness_now_ms() + 10000) <
			    0 ||
		    sscanf(line, "http on %63s", b->http_addr) != 1) {
			fprintf(stderr, "harness: no 'http on' line\n");
			harness_kill(b, SIGKILL);
			return -1;
		}
	}
	return 0;
}

int
harness_kill(struct harness_broker *b, int sig)
{
	long long deadline = harness_now_ms() + 10000;
	int status = -1;

	if (b->pid <= 0)
		return -1;
	kill(b->pid, sig);
	for (;;) {
		pid_t r = waitpid(b->pid, &status, WNOHANG);

		if (r == b->pid)
			break;
		if (r < 0 && errno != EINTR) {
			status = -1;
			break;
		}
		if (harness_now_ms() > deadline) {
			fprintf(stderr, "harness: broker ignored signal %d\n",
				sig);
			kill(b->pid, SIGKILL);
			deadline = harness_now_ms() + 10000;
		}
		usleep(2000);
	}
	track(0, b->pid);
	b->pid = 0;
	if (b->stdout_fd >= 0)
		close(b->stdout_fd);
	b->stdout_fd = -1;
	return status;
}

int
harness_wait_exit(struct harness_broker *b, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	int fd, rc, status = -1;

	if (b->pid <= 0)
		return -1;
	fd = pidfd_open(b->pid, 0);
	if (fd < 0) {
		perror("harness: pidfd_open");
		return -1;
	}
	/* Readable once the process has exited; each pass waits less. */
	do {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - harness_now_ms();

		rc = poll(&p, 1, left > 0 ? (int)left : 0);
	} while (rc < 0 && errno == EINTR);
	close(fd);
	if (rc <= 0)
		return -1;
	while (waitpid(b->pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	track(0, b->pid);
	b->pid = 0;
	if (b->stdout_fd >= 0)
		close(b->stdout_fd);
	b->stdout_fd = -1;
	return status;
}

int
harness_stop(struct harness_broker *b)
{
	int status = harness_kill(b, SIGTERM);

	if (status < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int
harness_remove_dir(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "harness: could not remove %s\n", dir);
		return -1;
	}
	return 0;
}

void
harness_cleanup(struct harness_broker *b)
{
	if (b->pid > 0)
		harness_kill(b, SIGKILL);
	if (b->dir[0] != '\0' && strncmp(b->dir, "/tmp/ringmq-test-", 17) == 0)
		(void)harness_remove_dir(b->dir);
	b->dir[0] = '\0';
}

int
harness_run_exit(const char *const *args)
{
	const char *argv[HARNESS_MAX_ARGS + 2];
	long long deadline = harness_now_ms() + 10000;
	int argc = 0, status = 0;
	pid_t pid;

	argv[argc++] = harness_program("RINGMQD");
	for (int i = 0; args[i] && argc <= HARNESS_MAX_ARGS; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL ||
		    freopen("/dev/null", "w", stderr) == NULL)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (harness_now_ms() > deadline) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			fprintf(stderr, "harness: ringmqd did not exit\n");
			return -1;
		}
		usleep(5000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
