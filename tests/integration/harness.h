/*
 * harness: starts and stops a real ringmqd for integration tests.
 *
 * The broker runs on 127.0.0.1 port 0 with a fresh temporary data
 * directory; the harness learns the port from its "listening on" line and
 * stops it by PID only. The path of ringmqd comes from the RINGMQD
 * environment variable (set by meson).
 */
#ifndef RINGMQ_TEST_HARNESS_H
#define RINGMQ_TEST_HARNESS_H

#include <sys/types.h>

#define HARNESS_MAX_ARGS 32

struct harness_broker {
	pid_t pid;	    /* 0 when not running */
	int stdout_fd;	    /* read end of the broker's stdout; -1 if none */
	char dir[256];	    /* data directory (created by harness_start) */
	char addr[64];	    /* "127.0.0.1:PORT" once started */
	char http_addr[64]; /* "HOST:PORT" when started with --http */
	int port;
	const char
		*extra[HARNESS_MAX_ARGS]; /* borrowed extra flags, NULL-ended */
	const char *log_path; /* set: the broker's stderr is appended there */
};

/* * Starts ringmqd. With b->dir empty, creates a temporary data directory
 * (a preset b->dir is used as it is); a later start (after
 * harness_kill/harness_stop) reuses it, for restart tests.
 * extra (may be NULL) is a NULL-terminated list of further flags, kept for
 * restarts. Waits at most 10 s for "listening on".
 * @return 0, or -1 with a message on stderr.
 */
int harness_start(struct harness_broker *b, const char *const *extra);

/* RINGMQ_TEST_JOURNAL: 1 runs every broker harness_start starts with
 * --journal on, 0 with --journal off (meson runs some suites both
 * ways); -1 when unset (the broker's default). */
int harness_journal(void);

/* Sends sig to the broker and waits (at most 10 s, then SIGKILL) for it to
 * exit. @return its exit status as from waitpid, or -1. */
int harness_kill(struct harness_broker *b, int sig);

/* Waits at most timeout_ms for the broker to exit (after a signal sent
 * with kill(b->pid, ...)) and reaps it: a wait on the exit itself, so
 * that a late wake-up of the caller does not count against the broker.
 * @return its exit status as from waitpid, or -1 when it is still
 * running at the deadline (it is left running). */
int harness_wait_exit(struct harness_broker *b, int timeout_ms);

/* SIGTERM and wait; @return the exit code (0 for a clean stop), or -1. */
int harness_stop(struct harness_broker *b);

/* Stops the broker if running and removes the data directory. */
void harness_cleanup(struct harness_broker *b);

/* Removes dir and what it holds. @return 0, or -1. */
int harness_remove_dir(const char *dir);

/* Runs ringmqd with args (NULL-ended; stdout and stderr to /dev/null)
 * and waits at most 10 s for it to exit. @return its exit code, or -1
 * (killed at the deadline, or not exited normally). */
int harness_run_exit(const char *const *args);

/* Path of a built program from an environment variable (RINGMQD,
 * RINGMQ_CLI); aborts the test with a message when unset. */
const char *harness_program(const char *env_name);

/* Monotonic milliseconds, for deadlines. */
long long harness_now_ms(void);

#endif
