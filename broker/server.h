/*
 * server: wires the broker together and runs it.
 *
 * Opens the store and rebuilds memory state from it, listens, runs the
 * event loop with the store's completions and the stop signals as loop
 * operations, and shuts down in order on SIGTERM / SIGINT: stop accepting
 * and dispatching, commit and confirm what was received, say goodbye,
 * close, exit.
 */
#ifndef RINGMQ_SERVER_H
#define RINGMQ_SERVER_H

struct config;

/* Runs the broker until it is stopped.
 * @return the process exit code: 0 after a clean stop, 1 when it could not
 *         start or the loop failed. */
int server_run(const struct config *cfg);

#endif
