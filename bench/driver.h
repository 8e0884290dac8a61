/*
 * driver.h: what the comparison drivers under bench/ share, so that each
 * of them holds only its protocol: the options, the payload header, the
 * per-producer accounting of what was seen, the run's timeline and the
 * summary with its RESULT line, which docs/benchmarks.md and
 * scripts/bench-compare read the same way for every system.
 *
 * A driver defines driver_name (its program name, the prefix of its
 * messages) and its own struct bench: the struct run and what its
 * protocol adds. It builds with bench/driver.c and bench/hist.c.
 */
#ifndef RINGMQ_BENCH_DRIVER_H
#define RINGMQ_BENCH_DRIVER_H

#include "hist.h"

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Payload header (host byte order): magic, producer id (4 bytes each),
 * sequence, send time in ns, run id (8 bytes each), laid out as
 * ringmq-bench's. The magic and the run id tell apart a message left by
 * another run or program.
 */
#define PAYLOAD_MAGIC 0x42514d52u
#define HDR_BYTES     32
/* Each connection's input and output buffer. */
#define BUF_BYTES (4u << 20)

enum mode { MODE_PUBLISH, MODE_E2E, MODE_LATENCY };
extern const char *const mode_names[];

/* Defined by each driver: "redis-bench", "beanstalkd-bench". */
extern const char driver_name[];

struct opts {
	enum mode mode;
	unsigned producers, consumers, window;
	uint64_t messages;
	size_t size;
	const char *host;
	const char *port;
	double max_secs;
	/* Redis: entries per XREADGROUP (its prefetch, like ringmq's
	 * credit), and one XACK per entry or one per read reply. */
	unsigned read_count;
	int is_ack_multi;
};

/* One run, shared by its threads: what each driver counts the same way. */
struct run {
	struct opts o;
	uint64_t run_id;
	uint64_t start_ns;
	_Atomic uint64_t end_ns;
	atomic_int is_stopping;
	atomic_uint producers_done;
	uint64_t *quota;
	/* One bit per message of each producer, set at its first delivery. */
	_Atomic uint64_t **seen;
	_Atomic uint64_t published, confirmed, delivered, dups, acked;
};

/* A connection with its buffers (owned). */
struct conn {
	int fd;
	char *out;
	size_t out_len;
	char *in;
	size_t in_len, in_pos;
	/* For a driver whose sockets time out: when set, a blocked worker
	 * leaves once it is raised. NULL otherwise. */
	atomic_int *abort;
	unsigned timeout_ms; /* of the socket's blocking calls; 0: none */
};

/* Seconds a connection without abort waits for progress before exit 1. */
#define CONN_IDLE_S 10

struct bench; /* the driver's: its struct run and what its protocol adds */

/* A producer or consumer thread. */
struct worker {
	struct bench *b;
	unsigned id;
	pthread_t thread;
	struct conn c;
	struct hist h;
};

/* How a run went, for the summary and the RESULT line. */
struct result {
	struct hist confirm, deliver;
	uint64_t msgs, dups, missing;
	double secs, rate;
	int is_complete;
};

uint64_t now_ns(void);

/** "<driver_name>: what: strerror(errno)", exit 1. */
void die(const char *what);

/** The usage message, exit 1. */
void usage(void);

/**
 * Parses the flags every driver takes into o, with their defaults;
 * usage() for anything unknown or out of range. A driver adds its own
 * limits after it.
 */
void parse_args(int argc, char **argv, struct opts *o);

/** Picks the run id and splits the messages among the producers. */
void run_init(struct run *r);

int should_stop(struct run *r);

/** Ends the run once every producer is done and every message acked. */
void check_end(struct run *r);

/** Counts a producer out (it may be the end of the run). */
void producer_done(struct run *r);

/** A payload of o.size bytes with producer id's header (malloc'd). */
unsigned char *payload_new(const struct run *r, uint32_t id);

/** Writes the sequence and the send time into p; returns that time. */
uint64_t payload_stamp(unsigned char *p, uint64_t seq);

/**
 * Checks a delivered payload and marks it seen, adding its latency to h:
 * 1 the first time, 0 for a duplicate (counted in dups), -1 when it is
 * not a payload of this run.
 */
int payload_check(struct run *r, const void *p, size_t len, struct hist *h);

/** Sets start_ns and starts the workers: producers first. */
void workers_start(struct run *r, struct worker *ws, unsigned nw,
		   void *(*producer)(void *), void *(*consumer)(void *));

/**
 * Waits for the end of the run, printing progress (acked names the last
 * counter), or stops it at --max-secs; sets res->secs and is_complete.
 */
void run_wait(struct run *r, const char *acked, struct result *res);

/**
 * Joins the workers and counts the run into res. For publish, where no
 * one consumes, msgs is what was confirmed and missing is left 0: the
 * driver asks its server what it stored.
 */
void run_collect(struct run *r, struct worker *ws, unsigned nw,
		 struct result *res);

/** The summary down to the latency lines, named after the protocol. */
void print_summary(const struct run *r, const struct result *res,
		   const char *confirm_what, const char *deliver_what);

/** "  OK: N duplicates, N missing", without the newline. */
void print_checks(const struct result *res, int is_ok);

/** The RESULT line up to complete=, without the newline. */
void print_result(const struct run *r, const struct result *res,
		  const char *system);

/** getaddrinfo for a TCP connection to host:port; its return code. */
int tcp_resolve(const char *host, const char *port, struct addrinfo **ai);

/**
 * A socket connected to a, with TCP_NODELAY: requests are pipelined by
 * hand, so none should wait for a full segment. -1 with errno set.
 */
int tcp_connect(const struct addrinfo *a);

/**
 * Connects c to host:port, trying each address; a name that does not
 * resolve is fatal. With timeout_ms, blocking calls return that often, so
 * that a stalled server cannot hold a thread past --max-secs: a worker
 * (c->abort set) then leaves once its flag is raised, another connection
 * gives up after CONN_IDLE_S. @return 0, or -1 with errno set.
 */
int conn_open(struct conn *c, const char *host, const char *port,
	      unsigned timeout_ms);

void conn_close(struct conn *c);

/** Writes all of c's output (blocking); exit 1 on an error. */
void conn_flush(struct conn *c);

/** Reads more input (blocking), compacting first; exit 1 on an error or
 * when the server closes the connection. */
void conn_fill(struct conn *c);

/** Before a read: moves the unread input to the front; exit 1 when full. */
void conn_compact(struct conn *c);

/** The end (CR) of the line starting at pos, or SIZE_MAX when incomplete. */
size_t line_end(const struct conn *c, size_t pos);

#endif /* RINGMQ_BENCH_DRIVER_H */
