/*
 * ringmq-bench.c: the load generator. It drives a running broker through
 * libringmq only, measures throughput and latency, and checks what it
 * measured: every message carries (run id, producer, sequence, send time),
 * so consumers find duplicates and missing messages and compute
 * publish-to-delivery latency.
 *
 * Modes:
 *   publish  producers publish asynchronously, each keeping --window
 *            publishes unconfirmed; the run ends at the last confirmation;
 *            the queue's stored count is checked against what was sent.
 *   e2e      consumers receive and ack (in batches) while producers
 *            publish; the run ends when the last ack is confirmed.
 *   latency  like e2e with a window of one: one message at a time per
 *            producer, reporting publish->confirm and publish->delivery.
 *
 * Threads: one per producer and per consumer, each owning its clients;
 * --connections N spreads N clients round-robin over those threads, which
 * then wait on the clients' sockets through epoll. Callbacks run in
 * the thread that owns the client, so per-thread state needs no lock; what
 * threads share (the seen/acked bitmaps and the end condition) is atomic.
 */
#include <ringmq.h>

#include "bench_opts.h"
#include "hist.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MAGIC	  0x42514d52u /* "RMQB" */
#define GROUP_NAME	  "bench"
#define WAIT_SLICE_MS	  50
#define MULTI_POLL_MS	  5
#define ACK_WAIT_MS	  30000 /* longest wait for a pass's ack answers */
#define PROGRESS_AFTER_NS 2000000000ull
#define PROGRESS_EVERY_NS 1000000000ull

/* What every thread shares. */
struct bench {
	struct opts o;
	char queue[64];
	uint64_t run_id;
	uint64_t start_ns;
	_Atomic uint64_t end_ns; /* 0 until the end condition is seen */
	atomic_int is_stopping;	 /* deadline passed or a fatal error */
	atomic_uint threads_done;
	atomic_uint producers_done;
	/* per producer: its messages and three bitmaps (owned here) */
	uint64_t *quota;
	_Atomic uint64_t **confirmed;
	_Atomic uint64_t **seen;
	_Atomic uint64_t **acked;
	/* totals, updated by the threads (relaxed: progress and the end) */
	_Atomic uint64_t published;
	_Atomic uint64_t confirmed_ok;
	_Atomic uint64_t confirmed_fail;
	_Atomic uint64_t delivered;
	_Atomic uint64_t dups;
	_Atomic uint64_t foreign;
	_Atomic uint64_t acked_distinct;
	_Atomic uint64_t ack_fail;
	_Atomic uint64_t lost;
	pthread_mutex_t err_lock;
	char first_error[256];
};

/* One unconfirmed publish: what its callback needs. */
struct slot {
	struct producer *p;
	uint64_t seq;
	uint64_t sent_ns;
	struct slot *next_free;
};

struct producer {
	struct bench *b;
	unsigned id;
	ringmq_client **cs; /* owned */
	unsigned n_cs;
	pthread_t thread;
	uint64_t next_seq;
	unsigned outstanding;
	unsigned window;    /* --window, times n_cs per connection */
	struct slot *slots; /* owned, window entries */
	struct slot *free_slots;
	unsigned char *payload; /* owned, o.size bytes */
	struct hist confirm;
};

/* A delivery waiting for its ack. */
struct pending {
	uint64_t lease_id;
	uint32_t producer; /* UINT32_MAX: not from this run */
	uint64_t seq;
};

struct consumer {
	struct bench *b;
	unsigned id;
	ringmq_client **cs; /* owned */
	unsigned n_cs;
	pthread_t thread;
	struct pending *batch; /* owned, ack_batch entries */
	uint64_t *ids;	       /* owned, ack_batch entries */
	int *codes;	       /* owned, ack_batch entries */
	struct hist deliver;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Keeps the first error of the run for the summary. */
static void __attribute__((format(printf, 2, 3)))
note_error(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&b->err_lock);
	if (b->first_error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&b->err_lock);
}

static uint64_t
total_messages(const struct bench *b)
{
	return b->o.messages;
}

/* -------------------------------------------------------- end condition */

/*
 * The run is over when every producer is done and, with consumers, every
 * message confirmed has been acked once. The first thread to see it stamps
 * the end time.
 */
static int
check_end(struct bench *b)
{
	uint64_t expect;
	uint64_t zero = 0;

	if (atomic_load(&b->end_ns) != 0)
		return 1;
	if (atomic_load(&b->producers_done) < b->o.producers)
		return 0;
	if (b->o.mode != MODE_PUBLISH && b->o.consumers > 0) {
		expect = atomic_load(&b->confirmed_ok);
		if (atomic_load(&b->acked_distinct) < expect)
			return 0;
	}
	atomic_compare_exchange_strong(&b->end_ns, &zero, now_ns());
	return 1;
}

static int
should_stop(struct bench *b)
{
	return atomic_load_explicit(&b->is_stopping, memory_order_relaxed) ||
	       atomic_load_explicit(&b->end_ns, memory_order_relaxed) != 0;
}

/* ------------------------------------------------------- multi-client */

/*
 * A thread's clients when it has several, waited on through one epoll
 * set, so a pass touches only the clients with something to read (poll(2)
 * over 125 sockets at every pass, and a non-blocking read of each, cost a
 * sixth of the bench's own CPU at 1,000 connections).
 */
struct client_set {
	ringmq_client **cs; /* borrowed */
	unsigned n;
	int ep;
	int *fds; /* the fd registered for each client; -1: none */
	struct epoll_event *evs;
	unsigned *ready; /* indices of the clients found readable */
};

/* Registers client i again if its socket changed (a reconnect). */
static void
set_watch(struct client_set *s, unsigned i)
{
	int fd = ringmq_client_fd(s->cs[i]);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

	if (fd == s->fds[i])
		return;
	/* A closed socket has already left the set: failures say nothing. */
	if (s->fds[i] >= 0)
		(void)epoll_ctl(s->ep, EPOLL_CTL_DEL, s->fds[i], NULL);
	s->fds[i] = -1;
	if (fd >= 0 && epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		s->fds[i] = fd;
}

static int
set_init(struct client_set *s, ringmq_client **cs, unsigned n)
{
	memset(s, 0, sizeof(*s));
	s->cs = cs;
	s->n = n;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->fds = malloc(n * sizeof(*s->fds));
	s->evs = calloc(n, sizeof(*s->evs));
	s->ready = calloc(n, sizeof(*s->ready));
	if (s->ep < 0 || s->fds == NULL || s->evs == NULL || s->ready == NULL)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		s->fds[i] = -1;
		set_watch(s, i);
	}
	return 0;
}

static void
set_free(struct client_set *s)
{
	if (s->ep >= 0)
		(void)close(s->ep);
	free(s->fds);
	free(s->evs);
	free(s->ready);
}

/*
 * Waits up to timeout_ms for clients with something to read and lists
 * them in s->ready; after a quiet wait, every client (the library's linger
 * times and keepalives run when a client is polled). @return how many.
 */
static unsigned
set_wait(struct client_set *s, int timeout_ms)
{
	int got = epoll_wait(s->ep, s->evs, (int)s->n, timeout_ms);

	if (got <= 0) {
		if (got == 0 && timeout_ms == 0)
			return 0;
		for (unsigned i = 0; i < s->n; i++) {
			set_watch(s, i);
			s->ready[i] = i;
		}
		return s->n;
	}
	for (int e = 0; e < got; e++)
		s->ready[e] = s->evs[e].data.u32;
	return (unsigned)got;
}

/* Serves the clients for up to timeout_ms: polls those with something to
 * read, which runs their callbacks in this thread. */
static void
set_serve(struct client_set *s, int timeout_ms)
{
	unsigned n = set_wait(s, timeout_ms);

	for (unsigned e = 0; e < n; e++)
		(void)ringmq_client_poll(s->cs[s->ready[e]], 0);
}

/* ------------------------------------------------------------ producers */

/* Sets bit seq of map; 1 when it was clear. */
static int
bit_set(_Atomic uint64_t *map, uint64_t seq)
{
	uint64_t bit = 1ull << (seq % 64);

	return (atomic_fetch_or_explicit(&map[seq / 64], bit,
					 memory_order_relaxed) &
		bit) == 0;
}

static void
on_confirm(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct slot *s = ctx;
	struct producer *p = s->p;
	struct bench *b = p->b;
	int code = ringmq_publish_report_code(r);

	(void)c;
	hist_add(&p->confirm, now_ns() - s->sent_ns);
	if (code == RINGMQ_OK) {
		(void)bit_set(b->confirmed[p->id], s->seq);
		atomic_fetch_add_explicit(&b->confirmed_ok, 1,
					  memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&b->confirmed_fail, 1,
					  memory_order_relaxed);
		note_error(b, "publish refused: %s: %s", ringmq_code_name(code),
			   ringmq_publish_report_message(r));
	}
	p->outstanding--;
	s->next_free = p->free_slots;
	p->free_slots = s;
}

/* Fills the payload header of the next message. */
static void
payload_stamp(struct producer *p, uint64_t seq, uint64_t t_ns)
{
	uint32_t magic = PAYLOAD_MAGIC;
	uint32_t id = p->id;

	memcpy(p->payload, &magic, 4);
	memcpy(p->payload + 4, &id, 4);
	memcpy(p->payload + 8, &seq, 8);
	memcpy(p->payload + 16, &t_ns, 8);
	memcpy(p->payload + 24, &p->b->run_id, 8);
}

/* Publishes one message; 0, or -1 when the producer must stop. */
static int
publish_one(struct producer *p, ringmq_client *c)
{
	struct bench *b = p->b;
	struct slot *s = p->free_slots;
	ringmq_message *m;
	int rc;

	s->p = p;
	s->seq = p->next_seq;
	s->sent_ns = now_ns();
	payload_stamp(p, p->next_seq, s->sent_ns);
	m = ringmq_message_new(p->payload, b->o.size);
	if (m == NULL) {
		note_error(b, "out of memory");
		return -1;
	}
	rc = ringmq_publish_async(c, b->queue, m, on_confirm, s);
	ringmq_message_free(m);
	if (rc != RINGMQ_OK) {
		note_error(b, "publish: %s: %s", ringmq_code_name(rc),
			   ringmq_client_errmsg(c));
		return -1;
	}
	p->free_slots = s->next_free;
	p->outstanding++;
	p->next_seq++;
	atomic_fetch_add_explicit(&b->published, 1, memory_order_relaxed);
	return 0;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	struct bench *b = p->b;
	uint64_t quota = b->quota[p->id];
	struct client_set set;
	unsigned rr = 0;

	if (p->n_cs > 1 && set_init(&set, p->cs, p->n_cs) < 0) {
		note_error(b, "epoll: %s", strerror(errno));
		atomic_store(&b->is_stopping, 1);
		set_free(&set);
		goto done;
	}
	while (!atomic_load_explicit(&b->is_stopping, memory_order_relaxed)) {
		while (p->outstanding < p->window && p->next_seq < quota) {
			if (publish_one(p, p->cs[rr++ % p->n_cs]) < 0) {
				atomic_store(&b->is_stopping, 1);
				break;
			}
		}
		if (p->next_seq >= quota && p->outstanding == 0)
			break;
		if (p->n_cs == 1)
			(void)ringmq_client_poll(p->cs[0], WAIT_SLICE_MS);
		else
			set_serve(&set, MULTI_POLL_MS);
	}
	if (p->n_cs > 1)
		set_free(&set);
done:
	atomic_fetch_add(&b->producers_done, 1);
	(void)check_end(b);
	atomic_fetch_add(&b->threads_done, 1);
	return NULL;
}

/* ------------------------------------------------------------ consumers */

/* Checks a delivery, records its latency; fills *pd for the ack. */
static void
on_delivery(struct consumer *k, ringmq_delivery *d, struct pending *pd)
{
	struct bench *b = k->b;
	size_t len;
	const unsigned char *pl = ringmq_delivery_payload(d, &len);
	uint32_t magic, id;
	uint64_t seq, t_ns, run;

	pd->lease_id = ringmq_delivery_lease_id(d);
	pd->producer = UINT32_MAX;
	atomic_fetch_add_explicit(&b->delivered, 1, memory_order_relaxed);
	if (len < PAYLOAD_HDR_BYTES)
		goto foreign;
	memcpy(&magic, pl, 4);
	memcpy(&id, pl + 4, 4);
	memcpy(&seq, pl + 8, 8);
	memcpy(&t_ns, pl + 16, 8);
	memcpy(&run, pl + 24, 8);
	if (magic != PAYLOAD_MAGIC || run != b->run_id ||
	    id >= b->o.producers || seq >= b->quota[id] || len != b->o.size)
		goto foreign;
	hist_add(&k->deliver, now_ns() - t_ns);
	if (!bit_set(b->seen[id], seq))
		atomic_fetch_add_explicit(&b->dups, 1, memory_order_relaxed);
	pd->producer = id;
	pd->seq = seq;
	return;
foreign:
	atomic_fetch_add_explicit(&b->foreign, 1, memory_order_relaxed);
}

/* Counts the outcome of acking batch[0..n): failures, and messages acked
 * for the first time. */
static void
count_acks(struct bench *b, const struct pending *batch, const int *codes,
	   size_t n)
{
	uint64_t fresh = 0;

	for (size_t i = 0; i < n; i++) {
		const struct pending *pd = &batch[i];

		if (codes[i] != RINGMQ_OK) {
			atomic_fetch_add_explicit(&b->ack_fail, 1,
						  memory_order_relaxed);
			continue;
		}
		if (pd->producer != UINT32_MAX &&
		    bit_set(b->acked[pd->producer], pd->seq))
			fresh++;
	}
	if (fresh > 0)
		atomic_fetch_add(&b->acked_distinct, fresh);
}

/* An asynchronous ack in flight: what its deliveries were. */
struct ack_flight {
	struct bench *b;
	size_t n;
	size_t done; /* answered so far (the library may split a request) */
	struct pending batch[];
};

static void
on_ack(ringmq_client *c, const uint64_t *ids, const int *codes, size_t n,
       void *ctx)
{
	struct ack_flight *af = ctx;

	if (n > 0 && codes[0] != RINGMQ_OK)
		note_error(af->b, "ack: %s: %s", ringmq_code_name(codes[0]),
			   ringmq_client_errmsg(c));
	/* Requests of one call are answered in the order they were sent. */
	if (af->done + n <= af->n && af->batch[af->done].lease_id == ids[0])
		count_acks(af->b, af->batch + af->done, codes, n);
	af->done += n;
	if (af->done >= af->n)
		free(af);
}

/* Acks a client's batch, waiting for the answer unless is_async (then the
 * answer's callback counts); counts messages acked for the first time. */
static void
ack_batch(struct consumer *k, ringmq_client *c, unsigned n, int is_async)
{
	struct bench *b = k->b;
	struct ack_flight *af;
	int rc;

	for (unsigned i = 0; i < n; i++)
		k->ids[i] = k->batch[i].lease_id;
	if (is_async) {
		af = malloc(sizeof(*af) + n * sizeof(af->batch[0]));
		if (af == NULL) {
			note_error(b, "out of memory");
			atomic_store(&b->is_stopping, 1);
			return;
		}
		af->b = b;
		af->n = n;
		af->done = 0;
		memcpy(af->batch, k->batch, n * sizeof(af->batch[0]));
		rc = ringmq_ack_async(c, k->ids, n, on_ack, af);
		if (rc == RINGMQ_OK)
			return;
		free(af);
		note_error(b, "ack: %s: %s", ringmq_code_name(rc),
			   ringmq_client_errmsg(c));
		atomic_fetch_add_explicit(&b->ack_fail, n,
					  memory_order_relaxed);
		return;
	}
	rc = ringmq_ack(c, k->ids, n, k->codes);
	if (rc != RINGMQ_OK)
		note_error(b, "ack: %s: %s", ringmq_code_name(rc),
			   ringmq_client_errmsg(c));
	count_acks(b, k->batch, k->codes, n);
}

/*
 * Takes what client c has queued (up to the ack batch) without waiting,
 * then acks it (see ack_batch). With wait_ms > 0 and nothing queued, waits
 * that long for a first delivery. @return deliveries taken.
 */
static unsigned
consume_client(struct consumer *k, ringmq_client *c, int wait_ms, int is_async)
{
	struct bench *b = k->b;
	unsigned n = 0;

	while (n < b->o.ack_batch) {
		ringmq_delivery *d;
		int rc = ringmq_next(c, &d, n == 0 ? wait_ms : 0);

		if (rc != RINGMQ_OK) {
			if (rc != RINGMQ_TIMEOUT) {
				atomic_fetch_add(&b->lost, 1);
				note_error(b, "receive: %s: %s",
					   ringmq_code_name(rc),
					   ringmq_client_errmsg(c));
				if (rc == RINGMQ_CLOSED)
					atomic_store(&b->is_stopping, 1);
			}
			break;
		}
		on_delivery(k, d, &k->batch[n++]);
		ringmq_delivery_free(d);
	}
	if (n > 0)
		ack_batch(k, c, n, is_async);
	return n;
}

/*
 * Serves a thread's several clients: a client is busy from the time its
 * socket is readable until a pass over it finds nothing (no delivery, no
 * answer), since the library may hold deliveries its socket no longer
 * signals (read while waiting for an ack's answer).
 *
 * Waiting acks (the default) are sent on every client of a pass first and
 * their answers awaited after it: each client still takes nothing more
 * until its ack is answered, as an independent consumer would, but the
 * clients of a thread wait for one commit together instead of one each in
 * turn (at 1,000 connections that was 125 commits a pass).
 */
static void
consume_clients(struct consumer *k)
{
	struct bench *b = k->b;
	struct client_set set;
	unsigned char *is_busy = calloc(k->n_cs, 1);
	unsigned *busy = calloc(k->n_cs, sizeof(*busy));
	unsigned *acked = calloc(k->n_cs, sizeof(*acked));
	unsigned n_busy = 0;

	if (set_init(&set, k->cs, k->n_cs) < 0 || is_busy == NULL ||
	    busy == NULL || acked == NULL) {
		note_error(b, "consumer set-up: %s", strerror(errno));
		atomic_store(&b->is_stopping, 1);
		goto done;
	}
	while (!should_stop(b) && !check_end(b)) {
		unsigned n = set_wait(&set, n_busy > 0 ? 0 : MULTI_POLL_MS);
		unsigned kept = 0, n_acked = 0;

		for (unsigned e = 0; e < n; e++) {
			unsigned i = set.ready[e];

			if (!is_busy[i]) {
				is_busy[i] = 1;
				busy[n_busy++] = i;
			}
		}
		for (unsigned j = 0; j < n_busy; j++) {
			ringmq_client *c = k->cs[busy[j]];
			int found = 0;

			unsigned got;

			/* Asynchronous acks: runs the callbacks of answers. */
			if (b->o.is_async_ack)
				found = ringmq_client_poll(c, 0);
			got = consume_client(k, c, 0, 1);
			if (got > 0 && !b->o.is_async_ack)
				acked[n_acked++] = busy[j];
			found += (int)got;
			if (found > 0)
				busy[kept++] = busy[j];
			else
				is_busy[busy[j]] = 0;
		}
		n_busy = kept;
		/* Waiting acks: the answers, which the callbacks count. */
		for (unsigned j = 0; j < n_acked; j++) {
			ringmq_client *c = k->cs[acked[j]];
			int rc = ringmq_client_flush(c, ACK_WAIT_MS);

			if (rc != RINGMQ_OK)
				note_error(b, "ack: %s: %s",
					   ringmq_code_name(rc),
					   ringmq_client_errmsg(c));
		}
	}
done:
	set_free(&set);
	free(is_busy);
	free(busy);
	free(acked);
}

static void *
consumer_main(void *arg)
{
	struct consumer *k = arg;
	struct bench *b = k->b;

	if (k->n_cs > 1) {
		consume_clients(k);
		goto done;
	}
	while (!should_stop(b) && !check_end(b)) {
		(void)consume_client(k, k->cs[0], WAIT_SLICE_MS,
				     b->o.is_async_ack);
		/* Runs the callbacks of acks answered meanwhile. */
		if (b->o.is_async_ack)
			(void)ringmq_client_poll(k->cs[0], 0);
	}
done:
	atomic_fetch_add(&b->threads_done, 1);
	return NULL;
}

/* ---------------------------------------------------------------- setup */

/* Sets option name to value unless value is NULL; rc passes through. */
static int
opt_set(ringmq_opts *co, int rc, const char *name, const char *value, char *err,
	size_t errlen)
{
	if (rc != RINGMQ_OK || value == NULL)
		return rc;
	return ringmq_opts_set(co, name, value, err, errlen);
}

static int
client_open(const struct opts *o, ringmq_client **cp, int is_admin)
{
	char err[256];
	ringmq_opts *co = ringmq_opts_new();
	char linger[16];
	int rc;

	*cp = NULL;
	if (co == NULL)
		return RINGMQ_INTERNAL;
	snprintf(linger, sizeof(linger), "%u", o->linger_ms);
	/* A loaded machine may stall a sync for a while: be patient. The
	 * admin client deletes whole queues. */
	rc = ringmq_opts_set(co, "server", o->server, err, sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_opts_set(co, "request-timeout-ms",
				     is_admin ? "600000" : "60000", err,
				     sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_opts_set(co, "linger-ms", linger, err, sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_opts_set(co, "client-name", "ringmq-bench", err,
				     sizeof(err));
	rc = opt_set(co, rc, "tls", o->is_tls ? "true" : NULL, err,
		     sizeof(err));
	rc = opt_set(co, rc, "tls-ca", o->tls_ca, err, sizeof(err));
	rc = opt_set(co, rc, "tls-cert", o->tls_cert, err, sizeof(err));
	rc = opt_set(co, rc, "tls-key", o->tls_key, err, sizeof(err));
	rc = opt_set(co, rc, "tls-server-name", o->tls_server_name, err,
		     sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_client_connect(cp, co, err, sizeof(err));
	if (rc != RINGMQ_OK)
		fprintf(stderr, "ringmq-bench: connect to %s: %s: %s\n",
			o->server, ringmq_code_name(rc), err);
	ringmq_opts_free(co);
	return rc;
}

static int
queue_setup(struct bench *b, ringmq_client *admin)
{
	ringmq_queue_opts *qo;
	char v[16];
	int rc;

	if (b->o.queue != NULL) {
		snprintf(b->queue, sizeof(b->queue), "%s", b->o.queue);
	} else {
		snprintf(b->queue, sizeof(b->queue), "bench-%08" PRIx64,
			 b->run_id & 0xffffffffu);
	}
	qo = ringmq_queue_opts_new();
	if (qo == NULL)
		return RINGMQ_INTERNAL;
	snprintf(v, sizeof(v), "%u", b->o.partitions);
	rc = b->o.queue != NULL
		     ? RINGMQ_OK
		     : ringmq_queue_opts_set(qo, "partitions", v, NULL, 0);
	if (rc == RINGMQ_OK)
		rc = ringmq_queue_create(admin, b->queue, qo);
	ringmq_queue_opts_free(qo);
	if (rc == RINGMQ_OK && b->o.consumers > 0)
		rc = ringmq_group_create(admin, b->queue, GROUP_NAME,
					 RINGMQ_START_EARLIEST);
	if (rc != RINGMQ_OK)
		fprintf(stderr, "ringmq-bench: queue %s: %s: %s\n", b->queue,
			ringmq_code_name(rc), ringmq_client_errmsg(admin));
	return rc;
}

/* Stored messages of the queue (publish mode's check); -1 on failure. */
static int64_t
queue_stored(struct bench *b, ringmq_client *admin)
{
	ringmq_queue_describe *d;
	int64_t n;
	int rc = ringmq_queue_describe_get(admin, b->queue, &d);

	if (rc != RINGMQ_OK) {
		fprintf(stderr, "ringmq-bench: describe %s: %s: %s\n", b->queue,
			ringmq_code_name(rc), ringmq_client_errmsg(admin));
		return -1;
	}
	n = (int64_t)ringmq_queue_describe_messages(d);
	ringmq_queue_describe_free(d);
	return n;
}

static void
progress(struct bench *b, uint64_t t_ns)
{
	fprintf(stderr,
		"progress: %5.1fs published=%" PRIu64 " confirmed=%" PRIu64
		" delivered=%" PRIu64 " acked=%" PRIu64 "\n",
		(double)(t_ns - b->start_ns) / 1e9, atomic_load(&b->published),
		atomic_load(&b->confirmed_ok), atomic_load(&b->delivered),
		atomic_load(&b->acked_distinct));
}

static uint64_t
random_u64(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
	       ((uint64_t)getpid() << 40) ^ now_ns();
}

/*
 * Counts the messages confirmed but never delivered (e2e). A run stopped
 * early also counts those still on their way; messages never published or
 * refused are reported apart.
 */
static uint64_t
count_missing(const struct bench *b)
{
	uint64_t missing = 0;

	for (unsigned p = 0; p < b->o.producers; p++) {
		for (uint64_t w = 0; w <= b->quota[p] / 64; w++) {
			uint64_t conf = atomic_load_explicit(
				&b->confirmed[p][w], memory_order_relaxed);
			uint64_t seen = atomic_load_explicit(
				&b->seen[p][w], memory_order_relaxed);

			missing += (uint64_t)__builtin_popcountll(conf & ~seen);
		}
	}
	return missing;
}

static void
report(struct bench *b, const struct hist *confirm, const struct hist *deliver,
       uint64_t msgs, double secs, uint64_t dups, uint64_t missing,
       int is_complete)
{
	const struct opts *o = &b->o;
	double rate = secs > 0 ? (double)msgs / secs : 0;
	double mbps = rate * (double)o->size / 1e6;

	printf("ringmq-bench %s: %u producers (window %u), %u consumers "
	       "(credit %u, ack batch %u), %u connections, %u partition%s, "
	       "%zu-byte messages, queue %s\n",
	       mode_names[o->mode], o->producers, o->window, o->consumers,
	       o->credit, o->ack_batch, o->connections, o->partitions,
	       o->partitions == 1 ? "" : "s", o->size, b->queue);
	printf("  %" PRIu64 " messages in %.3f s: %.0f msg/s, %.1f MB/s%s\n",
	       msgs, secs, rate, mbps,
	       is_complete ? "" : " (INCOMPLETE: stopped early)");
	printf("  publish->confirm  us: p50 %.0f  p99 %.0f  p99.9 %.0f  "
	       "max %.0f  mean %.0f  (%" PRIu64 " samples)\n",
	       hist_quantile_us(confirm, 0.5), hist_quantile_us(confirm, 0.99),
	       hist_quantile_us(confirm, 0.999),
	       (double)confirm->max_ns / 1000.0, hist_mean_us(confirm),
	       confirm->count);
	if (o->consumers > 0)
		printf("  publish->delivery us: p50 %.0f  p99 %.0f  p99.9 "
		       "%.0f  max %.0f  mean %.0f  (%" PRIu64 " samples)\n",
		       hist_quantile_us(deliver, 0.5),
		       hist_quantile_us(deliver, 0.99),
		       hist_quantile_us(deliver, 0.999),
		       (double)deliver->max_ns / 1000.0, hist_mean_us(deliver),
		       deliver->count);
	printf("  check: %" PRIu64 " published, %" PRIu64 " confirmed, %" PRIu64
	       " refused",
	       atomic_load(&b->published), atomic_load(&b->confirmed_ok),
	       atomic_load(&b->confirmed_fail));
	if (o->consumers > 0)
		printf(", %" PRIu64 " delivered, %" PRIu64
		       " acked once, %" PRIu64 " ack failures, %" PRIu64
		       " foreign",
		       atomic_load(&b->delivered),
		       atomic_load(&b->acked_distinct),
		       atomic_load(&b->ack_fail), atomic_load(&b->foreign));
	printf("\n  %s: %" PRIu64 " duplicate%s, %" PRIu64 " missing%s\n",
	       dups == 0 && missing == 0 ? "OK" : "PROBLEM", dups,
	       dups == 1 ? "" : "s", missing,
	       o->consumers > 0 ? " (confirmed, never delivered; checked "
				  "per message by the consumers)"
				: " (checked against the queue's stored "
				  "count)");
	if (!is_complete)
		printf("  stopped early: %" PRIu64 " of %" PRIu64
		       " messages never published\n",
		       o->messages - atomic_load(&b->published), o->messages);
	if (b->first_error[0] != '\0')
		printf("  first error: %s\n", b->first_error);
	printf("RESULT mode=%s producers=%u consumers=%u window=%u size=%zu "
	       "msgs=%" PRIu64 " secs=%.3f msgs_per_s=%.0f MB_per_s=%.2f "
	       "confirm_p50_us=%.0f confirm_p99_us=%.0f "
	       "confirm_p999_us=%.0f deliver_p50_us=%.0f "
	       "deliver_p99_us=%.0f deliver_p999_us=%.0f dups=%" PRIu64
	       " missing=%" PRIu64 " connections=%u partitions=%u credit=%u "
	       "ack=%s window_per=%s complete=%d\n",
	       mode_names[o->mode], o->producers, o->consumers, o->window,
	       o->size, msgs, secs, rate, mbps, hist_quantile_us(confirm, 0.5),
	       hist_quantile_us(confirm, 0.99),
	       hist_quantile_us(confirm, 0.999), hist_quantile_us(deliver, 0.5),
	       hist_quantile_us(deliver, 0.99),
	       hist_quantile_us(deliver, 0.999), dups, missing, o->connections,
	       o->partitions, o->credit, o->is_async_ack ? "async" : "wait",
	       o->is_window_per_conn ? "connection" : "thread", is_complete);
	fflush(stdout);
}

/* Allocates the per-producer quota and bitmaps. */
static int
bench_alloc(struct bench *b)
{
	unsigned np = b->o.producers;

	b->quota = calloc(np, sizeof(*b->quota));
	b->confirmed = calloc(np, sizeof(*b->confirmed));
	b->seen = calloc(np, sizeof(*b->seen));
	b->acked = calloc(np, sizeof(*b->acked));
	if (b->quota == NULL || b->confirmed == NULL || b->seen == NULL ||
	    b->acked == NULL)
		return -1;
	for (unsigned p = 0; p < np; p++) {
		size_t words;

		b->quota[p] = b->o.messages / np + (p < b->o.messages % np);
		words = (size_t)(b->quota[p] / 64 + 1);
		b->confirmed[p] = calloc(words, sizeof(**b->confirmed));
		b->seen[p] = calloc(words, sizeof(**b->seen));
		b->acked[p] = calloc(words, sizeof(**b->acked));
		if (b->confirmed[p] == NULL || b->seen[p] == NULL ||
		    b->acked[p] == NULL)
			return -1;
	}
	return 0;
}

static void
bench_free(struct bench *b)
{
	for (unsigned p = 0; b->confirmed != NULL && b->seen != NULL &&
			     b->acked != NULL && p < b->o.producers;
	     p++) {
		free((void *)b->confirmed[p]);
		free((void *)b->seen[p]);
		free((void *)b->acked[p]);
	}
	free(b->confirmed);
	free(b->seen);
	free(b->acked);
	free(b->quota);
}

/* Gives thread t its clients: every client i with i % threads == t. */
static int
clients_for(const struct opts *o, unsigned t, ringmq_client ***csp,
	    unsigned *np)
{
	unsigned threads = o->producers + o->consumers;
	unsigned n = o->connections / threads + (t < o->connections % threads);

	*np = n;
	*csp = calloc(n, sizeof(**csp));
	if (*csp == NULL)
		return RINGMQ_INTERNAL;
	for (unsigned i = 0; i < n; i++) {
		int rc = client_open(o, &(*csp)[i], 0);

		if (rc != RINGMQ_OK)
			return rc;
	}
	return RINGMQ_OK;
}

static void
clients_free(ringmq_client **cs, unsigned n)
{
	for (unsigned i = 0; cs != NULL && i < n; i++)
		ringmq_client_free(cs[i]);
	free(cs);
}

static int
producer_init(struct bench *b, struct producer *p, unsigned id)
{
	int rc;

	p->b = b;
	p->id = id;
	hist_init(&p->confirm);
	rc = clients_for(&b->o, id, &p->cs, &p->n_cs);
	if (rc != RINGMQ_OK)
		return rc;
	p->window = b->o.window * (b->o.is_window_per_conn ? p->n_cs : 1);
	p->slots = calloc(p->window, sizeof(*p->slots));
	p->payload = malloc(b->o.size);
	if (p->slots == NULL || p->payload == NULL)
		return RINGMQ_INTERNAL;
	/* filler that does not compress to nothing */
	for (size_t i = 0; i < b->o.size; i++)
		p->payload[i] = (unsigned char)('a' + (i * 7 + id) % 26);
	for (unsigned i = 0; i < p->window; i++) {
		p->slots[i].next_free = p->free_slots;
		p->free_slots = &p->slots[i];
	}
	return RINGMQ_OK;
}

static int
consumer_init(struct bench *b, struct consumer *k, unsigned id)
{
	int rc;

	k->b = b;
	k->id = id;
	hist_init(&k->deliver);
	k->batch = calloc(b->o.ack_batch, sizeof(*k->batch));
	k->ids = calloc(b->o.ack_batch, sizeof(*k->ids));
	k->codes = calloc(b->o.ack_batch, sizeof(*k->codes));
	if (k->batch == NULL || k->ids == NULL || k->codes == NULL)
		return RINGMQ_INTERNAL;
	rc = clients_for(&b->o, b->o.producers + id, &k->cs, &k->n_cs);
	for (unsigned i = 0; rc == RINGMQ_OK && i < k->n_cs; i++) {
		uint32_t sub;

		rc = ringmq_subscribe(k->cs[i], &sub, b->queue, GROUP_NAME,
				      b->o.credit, RINGMQ_START_EARLIEST);
		if (rc != RINGMQ_OK)
			fprintf(stderr, "ringmq-bench: subscribe: %s: %s\n",
				ringmq_code_name(rc),
				ringmq_client_errmsg(k->cs[i]));
	}
	return rc;
}

/* Waits for the threads, printing progress and enforcing --max-secs. */
static void
supervise(struct bench *b)
{
	unsigned threads = b->o.producers + b->o.consumers;
	uint64_t deadline = b->start_ns + (uint64_t)(b->o.max_secs * 1e9);
	uint64_t next_progress = b->start_ns + PROGRESS_AFTER_NS;

	while (atomic_load(&b->threads_done) < threads) {
		uint64_t t;

		sleep_ms(20);
		t = now_ns();
		if (t >= deadline && !atomic_load(&b->is_stopping)) {
			fprintf(stderr,
				"ringmq-bench: --max-secs %.0f reached, "
				"stopping\n",
				b->o.max_secs);
			atomic_store(&b->is_stopping, 1);
		}
		if (!b->o.is_quiet && t >= next_progress) {
			progress(b, t);
			next_progress += PROGRESS_EVERY_NS;
		}
	}
}

int
main(int argc, char **argv)
{
	struct bench *b = NULL;
	struct producer *ps = NULL;
	struct consumer *ks = NULL;
	ringmq_client *admin = NULL;
	struct hist *confirm = NULL, *deliver = NULL;
	unsigned started_p = 0, started_c = 0;
	uint64_t msgs, dups, missing, end;
	int is_complete, rc, exit_code = 1;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return 1;
	rc = bench_opts_parse(&b->o, argc, argv);
	if (rc != 0) {
		bench_opts_usage(rc > 0 ? stdout : stderr);
		free(b);
		return rc > 0 ? 0 : 1;
	}
	pthread_mutex_init(&b->err_lock, NULL);
	b->run_id = random_u64();
	ps = calloc(b->o.producers, sizeof(*ps));
	ks = calloc(b->o.consumers ? b->o.consumers : 1, sizeof(*ks));
	confirm = malloc(sizeof(*confirm));
	deliver = malloc(sizeof(*deliver));
	if (ps == NULL || ks == NULL || confirm == NULL || deliver == NULL ||
	    bench_alloc(b) < 0) {
		fprintf(stderr, "ringmq-bench: out of memory\n");
		goto fail;
	}
	if (client_open(&b->o, &admin, 1) != RINGMQ_OK ||
	    queue_setup(b, admin) != RINGMQ_OK)
		goto fail;
	/* Connect and subscribe everything before the clock starts. */
	for (unsigned i = 0; i < b->o.producers; i++) {
		if (producer_init(b, &ps[i], i) != RINGMQ_OK)
			goto fail;
	}
	for (unsigned i = 0; i < b->o.consumers; i++) {
		if (consumer_init(b, &ks[i], i) != RINGMQ_OK)
			goto fail;
	}
	b->start_ns = now_ns();
	for (; started_c < b->o.consumers; started_c++) {
		if (pthread_create(&ks[started_c].thread, NULL, consumer_main,
				   &ks[started_c]) != 0)
			goto stop;
	}
	for (; started_p < b->o.producers; started_p++) {
		if (pthread_create(&ps[started_p].thread, NULL, producer_main,
				   &ps[started_p]) != 0)
			goto stop;
	}
	supervise(b);
stop:
	if (started_p < b->o.producers || started_c < b->o.consumers) {
		fprintf(stderr, "ringmq-bench: cannot start threads\n");
		atomic_store(&b->is_stopping, 1);
		/* producers that never ran count as done */
		atomic_fetch_add(&b->producers_done,
				 b->o.producers - started_p);
	}
	for (unsigned i = 0; i < started_p; i++)
		pthread_join(ps[i].thread, NULL);
	for (unsigned i = 0; i < started_c; i++)
		pthread_join(ks[i].thread, NULL);
	(void)check_end(b);
	end = atomic_load(&b->end_ns);
	is_complete = !atomic_load(&b->is_stopping) && end != 0;
	if (end == 0)
		end = now_ns();
	hist_init(confirm);
	hist_init(deliver);
	for (unsigned i = 0; i < b->o.producers; i++)
		hist_merge(confirm, &ps[i].confirm);
	for (unsigned i = 0; i < b->o.consumers; i++)
		hist_merge(deliver, &ks[i].deliver);
	if (b->o.consumers > 0) {
		msgs = atomic_load(&b->acked_distinct);
		dups = atomic_load(&b->dups);
		missing = count_missing(b);
	} else {
		int64_t stored = queue_stored(b, admin);
		uint64_t n = total_messages(b);

		msgs = atomic_load(&b->confirmed_ok);
		if (stored < 0) {
			is_complete = 0;
			stored = 0;
		}
		/* A fresh queue holds exactly what this run stored. */
		dups = (uint64_t)stored > n ? (uint64_t)stored - n : 0;
		missing = (uint64_t)stored < n ? n - (uint64_t)stored : 0;
	}
	report(b, confirm, deliver, msgs, (double)(end - b->start_ns) / 1e9,
	       dups, missing, is_complete);
	exit_code = is_complete && missing == 0 &&
				    atomic_load(&b->confirmed_fail) == 0
			    ? 0
			    : 2;
fail:
	for (unsigned i = 0; ps != NULL && i < b->o.producers; i++) {
		clients_free(ps[i].cs, ps[i].n_cs);
		free(ps[i].slots);
		free(ps[i].payload);
	}
	for (unsigned i = 0; ks != NULL && i < b->o.consumers; i++) {
		clients_free(ks[i].cs, ks[i].n_cs);
		free(ks[i].batch);
		free(ks[i].ids);
		free(ks[i].codes);
	}
	if (admin != NULL && b->o.queue == NULL && !b->o.is_keep &&
	    b->queue[0] != '\0') {
		rc = ringmq_queue_delete(admin, b->queue);
		if (rc != RINGMQ_OK && rc != RINGMQ_QUEUE_NOT_FOUND)
			fprintf(stderr, "ringmq-bench: delete %s: %s: %s\n",
				b->queue, ringmq_code_name(rc),
				ringmq_client_errmsg(admin));
	}
	ringmq_client_free(admin);
	free(confirm);
	free(deliver);
	free(ps);
	free(ks);
	bench_free(b);
	pthread_mutex_destroy(&b->err_lock);
	free(b);
	return exit_code;
}
