/*
 * testlib: helpers the integration tests share: a library client to a
 * broker, and raw connections speaking frames for what the library does
 * not send itself (malformed input, producer sequences, admin frames).
 * Every helper asserts (cmocka) and waits with a deadline.
 */
#ifndef RINGMQ_TESTLIB_H
#define RINGMQ_TESTLIB_H

#include <stdint.h>

#include <ringmq.h>

#include "ringmq.pb-c.h"

#define TESTLIB_WAIT_MS 5000

struct harness_broker;

/* Starts a fresh broker in b (zeroed first) with flags (NULL-ended, may
 * be NULL). @return 0, or -1 with a message: as a cmocka setup returns. */
int testlib_broker_start(struct harness_broker *b, const char *const *flags);

/* Stops b with SIGTERM and removes its data directory. @return 0 if it
 * exited 0, else -1: as a cmocka teardown returns. */
int testlib_broker_stop(struct harness_broker *b);

/* A connected client to addr ("HOST:PORT"); fails the test otherwise. */
ringmq_client *testlib_connect(const char *addr);

/* The same with "name=value" options (ringmq_opts_set), NULL-terminated. */
ringmq_client *testlib_connect_with(const char *addr, ...);

/* A TCP connection to 127.0.0.1:port. */
int testlib_raw_open(int port);

/* The same with a receive buffer of rcvbuf bytes (set before connecting,
 * so that the window stays small): answers back up on the broker's side,
 * as with a peer that reads slowly. */
int testlib_raw_open_rcvbuf(int port, int rcvbuf);

/* Writes frame f with its length prefix. */
void testlib_raw_send(int fd, const Ringmq__Frame *f);

/* Reads one whole frame (free with ringmq__frame__free_unpacked(r, NULL)). */
Ringmq__Frame *testlib_raw_recv(int fd);

/* The same within timeout_ms, or NULL at EOF, the deadline or a frame
 * that does not decode (for tests that expect a close). */
Ringmq__Frame *testlib_raw_recv_within(int fd, int timeout_ms);

#define TESTLIB_FILE_MAX (1u << 20)

/* The text of file path (at most TESTLIB_FILE_MAX - 1 bytes), malloc'ed. */
char *testlib_read_file(const char *path);

/* Writes text to a new file /tmp/ringmq-test-XXXXXX, its name into file
 * (64 bytes); the caller unlinks it. */
void testlib_write_temp(char *file, const char *text);

/* Hello (resuming producer when not 0) and its answer.
 * @return the producer id the broker gave. */
uint64_t testlib_raw_hello(int fd, uint64_t producer);

/* Sends the len bytes of req to the HTTP listener at addr ("127.0.0.1:
 * PORT") and reads until it closes. @return the whole answer (head and
 * body), malloc'ed; fails the test after TESTLIB_WAIT_MS. */
char *testlib_http(const char *addr, const char *req, size_t len);

/* The broker's Stats value called name, as c asks for it. */
double testlib_stat(ringmq_client *c, const char *name);

/* Waits (at most TESTLIB_WAIT_MS, polling) until Stats name is want;
 * fails the test otherwise. */
void testlib_wait_stat(ringmq_client *c, const char *name, double want);

/* Counts of queue name from a fresh queue listing; each pointer may be
 * NULL. Fails the test when the queue is not listed. */
void testlib_queue_counts(ringmq_client *c, const char *name,
			  uint64_t *messages, uint64_t *ready,
			  uint64_t *delayed, uint64_t *in_flight);

#endif
