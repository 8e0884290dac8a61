/*
 * driver.c: the part of the comparison drivers that does not depend on
 * the server they talk to (see driver.h).
 */
#include "driver.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *const mode_names[] = { "publish", "e2e", "latency" };

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", driver_name, what, strerror(errno));
	exit(1);
}

void
usage(void)
{
	fprintf(stderr,
		"usage: %s --port PORT [--host H] [--mode "
		"publish|e2e|latency]\n"
		"       [--producers P] [--consumers C] [--messages N] "
		"[--size S] [--window W]\n"
		"       [--max-secs T] [--read-count N] [--ack each|multi]\n",
		driver_name);
	exit(1);
}

void
parse_args(int argc, char **argv, struct opts *o)
{
	int has_p = 0, has_c = 0, has_n = 0;

	o->mode = MODE_E2E;
	o->producers = 4;
	o->consumers = 4;
	o->window = 64;
	o->messages = 200000;
	o->size = 256;
	o->host = "127.0.0.1";
	o->port = NULL;
	o->max_secs = 60;
	o->read_count = 64;
	o->is_ack_multi = 0;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(f, "--mode") == 0) {
			unsigned m;

			for (m = 0; m < 3 && strcmp(v, mode_names[m]); m++)
				;
			if (m == 3)
				usage();
			o->mode = (enum mode)m;
		} else if (strcmp(f, "--producers") == 0) {
			o->producers = (unsigned)atoi(v);
			has_p = 1;
		} else if (strcmp(f, "--consumers") == 0) {
			o->consumers = (unsigned)atoi(v);
			has_c = 1;
		} else if (strcmp(f, "--messages") == 0) {
			o->messages = strtoull(v, NULL, 10);
			has_n = 1;
		} else if (strcmp(f, "--size") == 0) {
			o->size = strtoull(v, NULL, 10);
		} else if (strcmp(f, "--window") == 0) {
			o->window = (unsigned)atoi(v);
		} else if (strcmp(f, "--host") == 0) {
			o->host = v;
		} else if (strcmp(f, "--port") == 0) {
			o->port = v;
		} else if (strcmp(f, "--max-secs") == 0) {
			o->max_secs = atof(v);
		} else if (strcmp(f, "--read-count") == 0) {
			o->read_count = (unsigned)atoi(v);
			if (o->read_count == 0)
				usage();
		} else if (strcmp(f, "--ack") == 0) {
			if (strcmp(v, "each") != 0 && strcmp(v, "multi") != 0)
				usage();
			o->is_ack_multi = strcmp(v, "multi") == 0;
		} else {
			usage();
		}
	}
	if (o->mode == MODE_LATENCY) {
		o->window = 1;
		if (!has_p)
			o->producers = 1;
		if (!has_c)
			o->consumers = 1;
		if (!has_n)
			o->messages = 20000;
	}
	if (o->mode == MODE_PUBLISH)
		o->consumers = 0;
	if (o->port == NULL || o->producers == 0 || o->window == 0 ||
	    o->size < HDR_BYTES || o->messages < o->producers ||
	    (o->mode != MODE_PUBLISH && o->consumers == 0))
		usage();
}

void
run_init(struct run *r)
{
	r->run_id = now_ns() ^ ((uint64_t)getpid() << 40);
	r->quota = calloc(r->o.producers, sizeof(*r->quota));
	r->seen = calloc(r->o.producers, sizeof(*r->seen));
	if (r->quota == NULL || r->seen == NULL)
		die("calloc");
	for (unsigned p = 0; p < r->o.producers; p++) {
		r->quota[p] = r->o.messages / r->o.producers +
			      (p < r->o.messages % r->o.producers);
		r->seen[p] = calloc(r->quota[p] / 64 + 1, sizeof(uint64_t));
		if (r->seen[p] == NULL)
			die("calloc");
	}
}

int
should_stop(struct run *r)
{
	return atomic_load(&r->is_stopping) || atomic_load(&r->end_ns) != 0;
}

static void
mark_end(struct run *r)
{
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&r->end_ns, &zero, now_ns());
}

void
check_end(struct run *r)
{
	if (atomic_load(&r->producers_done) < r->o.producers)
		return;
	if (r->o.consumers > 0 &&
	    atomic_load(&r->acked) < atomic_load(&r->confirmed))
		return;
	mark_end(r);
}

void
producer_done(struct run *r)
{
	atomic_fetch_add(&r->producers_done, 1);
	check_end(r);
}

unsigned char *
payload_new(const struct run *r, uint32_t id)
{
	unsigned char *p = malloc(r->o.size);
	uint32_t magic = PAYLOAD_MAGIC;

	if (p == NULL)
		die("malloc");
	for (size_t i = 0; i < r->o.size; i++)
		p[i] = (unsigned char)('a' + (i * 7 + id) % 26);
	memcpy(p, &magic, 4);
	memcpy(p + 4, &id, 4);
	memcpy(p + 24, &r->run_id, 8);
	return p;
}

uint64_t
payload_stamp(unsigned char *p, uint64_t seq)
{
	uint64_t t = now_ns();

	memcpy(p + 8, &seq, 8);
	memcpy(p + 16, &t, 8);
	return t;
}

int
payload_check(struct run *r, const void *p, size_t len, struct hist *h)
{
	const unsigned char *pl = p;
	uint32_t magic, id;
	uint64_t seq, ts, run, bit;

	if (pl == NULL || len < HDR_BYTES)
		return -1;
	memcpy(&magic, pl, 4);
	memcpy(&id, pl + 4, 4);
	memcpy(&seq, pl + 8, 8);
	memcpy(&ts, pl + 16, 8);
	memcpy(&run, pl + 24, 8);
	if (magic != PAYLOAD_MAGIC || run != r->run_id ||
	    id >= r->o.producers || seq >= r->quota[id])
		return -1;
	hist_add(h, now_ns() - ts);
	bit = 1ull << (seq % 64);
	if (atomic_fetch_or(&r->seen[id][seq / 64], bit) & bit) {
		atomic_fetch_add(&r->dups, 1);
		return 0;
	}
	return 1;
}

void
workers_start(struct run *r, struct worker *ws, unsigned nw,
	      void *(*producer)(void *), void *(*consumer)(void *))
{
	r->start_ns = now_ns();
	for (unsigned i = 0; i < nw; i++) {
		if (pthread_create(&ws[i].thread, NULL,
				   i < r->o.producers ? producer : consumer,
				   &ws[i]) != 0)
			die("pthread_create");
	}
}

void
run_wait(struct run *r, const char *acked, struct result *res)
{
	uint64_t deadline = r->start_ns + (uint64_t)(r->o.max_secs * 1e9);
	uint64_t next_progress = r->start_ns + 2000000000ull;
	uint64_t end;

	while (atomic_load(&r->end_ns) == 0) {
		struct timespec ts = { 0, 20000000 };
		uint64_t t;

		nanosleep(&ts, NULL);
		t = now_ns();
		if (t >= deadline) {
			fprintf(stderr, "%s: --max-secs reached, stopping\n",
				driver_name);
			atomic_store(&r->is_stopping, 1);
			break;
		}
		if (t >= next_progress) {
			fprintf(stderr,
				"progress: %5.1fs published=%" PRIu64
				" confirmed=%" PRIu64 " delivered=%" PRIu64
				" %s=%" PRIu64 "\n",
				(double)(t - r->start_ns) / 1e9,
				atomic_load(&r->published),
				atomic_load(&r->confirmed),
				atomic_load(&r->delivered), acked,
				atomic_load(&r->acked));
			next_progress += 1000000000ull;
		}
	}
	/* The end a worker marked, not when this loop noticed it. */
	end = atomic_load(&r->end_ns);
	res->is_complete = end != 0;
	if (!res->is_complete)
		end = now_ns();
	res->secs = (double)(end - r->start_ns) / 1e9;
}

void
run_collect(struct run *r, struct worker *ws, unsigned nw, struct result *res)
{
	for (unsigned i = 0; i < nw; i++)
		pthread_join(ws[i].thread, NULL);
	hist_init(&res->confirm);
	hist_init(&res->deliver);
	for (unsigned i = 0; i < nw; i++)
		hist_merge(i < r->o.producers ? &res->confirm : &res->deliver,
			   &ws[i].h);
	res->dups = atomic_load(&r->dups);
	res->missing = 0;
	if (r->o.consumers > 0) {
		res->msgs = atomic_load(&r->acked);
		for (unsigned p = 0; p < r->o.producers; p++) {
			for (uint64_t s = 0; s < r->quota[p]; s++) {
				if (!(atomic_load(&r->seen[p][s / 64]) &
				      (1ull << (s % 64))))
					res->missing++;
			}
		}
	} else {
		res->msgs = atomic_load(&r->confirmed);
	}
	res->rate = (double)res->msgs / res->secs;
}

void
print_summary(const struct run *r, const struct result *res,
	      const char *confirm_what, const char *deliver_what)
{
	printf("%s %s: %u producers (window %u), %u consumers, "
	       "%zu-byte messages\n",
	       driver_name, mode_names[r->o.mode], r->o.producers, r->o.window,
	       r->o.consumers, r->o.size);
	printf("  %" PRIu64 " messages in %.3f s: %.0f msg/s%s\n", res->msgs,
	       res->secs, res->rate, res->is_complete ? "" : " (INCOMPLETE)");
	printf("  %s us: p50 %.0f p99 %.0f p99.9 %.0f\n", confirm_what,
	       hist_quantile_us(&res->confirm, 0.5),
	       hist_quantile_us(&res->confirm, 0.99),
	       hist_quantile_us(&res->confirm, 0.999));
	if (r->o.consumers > 0)
		printf("  %s us: p50 %.0f p99 %.0f p99.9 %.0f\n", deliver_what,
		       hist_quantile_us(&res->deliver, 0.5),
		       hist_quantile_us(&res->deliver, 0.99),
		       hist_quantile_us(&res->deliver, 0.999));
}

void
print_checks(const struct result *res, int is_ok)
{
	printf("  %s: %" PRIu64 " duplicates, %" PRIu64 " missing",
	       is_ok ? "OK" : "PROBLEM", res->dups, res->missing);
}

void
print_result(const struct run *r, const struct result *res, const char *system)
{
	printf("RESULT system=%s mode=%s producers=%u consumers=%u "
	       "window=%u size=%zu msgs=%" PRIu64 " secs=%.3f "
	       "msgs_per_s=%.0f MB_per_s=%.2f confirm_p50_us=%.0f "
	       "confirm_p99_us=%.0f confirm_p999_us=%.0f "
	       "deliver_p50_us=%.0f deliver_p99_us=%.0f "
	       "deliver_p999_us=%.0f dups=%" PRIu64 " missing=%" PRIu64
	       " complete=%d",
	       system, mode_names[r->o.mode], r->o.producers, r->o.consumers,
	       r->o.window, r->o.size, res->msgs, res->secs, res->rate,
	       res->rate * (double)r->o.size / 1e6,
	       hist_quantile_us(&res->confirm, 0.5),
	       hist_quantile_us(&res->confirm, 0.99),
	       hist_quantile_us(&res->confirm, 0.999),
	       hist_quantile_us(&res->deliver, 0.5),
	       hist_quantile_us(&res->deliver, 0.99),
	       hist_quantile_us(&res->deliver, 0.999), res->dups, res->missing,
	       res->is_complete);
}

int
tcp_resolve(const char *host, const char *port, struct addrinfo **ai)
{
	struct addrinfo hints = { 0 };

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	return getaddrinfo(host, port, &hints, ai);
}

int
tcp_connect(const struct addrinfo *a)
{
	int fd = socket(a->ai_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int
conn_open(struct conn *c, const char *host, const char *port,
	  unsigned timeout_ms)
{
	struct addrinfo *ai, *a;
	int fd = -1, rc;

	rc = tcp_resolve(host, port, &ai);
	if (rc != 0) {
		fprintf(stderr, "%s: %s:%s: %s\n", driver_name, host, port,
			gai_strerror(rc));
		exit(1);
	}
	for (a = ai; a != NULL && fd < 0; a = a->ai_next)
		fd = tcp_connect(a);
	freeaddrinfo(ai);
	if (fd < 0)
		return -1;
	if (timeout_ms > 0) {
		struct timeval tv = { (time_t)(timeout_ms / 1000),
				      (suseconds_t)(timeout_ms % 1000) * 1000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	c->fd = fd;
	c->out = malloc(BUF_BYTES);
	c->in = malloc(BUF_BYTES);
	if (c->out == NULL || c->in == NULL)
		return -1;
	c->out_len = c->in_len = c->in_pos = 0;
	c->abort = NULL;
	c->timeout_ms = timeout_ms;
	return 0;
}

/* After a socket timeout: a worker leaves when asked to (what it counted
 * stays in its own struct); another connection gives up after
 * CONN_IDLE_S. */
static void
conn_wait(struct conn *c, unsigned *idle, const char *what)
{
	if (c->abort != NULL) {
		if (atomic_load(c->abort))
			pthread_exit(NULL);
		return;
	}
	if (++*idle >= CONN_IDLE_S * 1000 / c->timeout_ms) {
		fprintf(stderr, "%s: %s: no progress in %d s\n", driver_name,
			what, CONN_IDLE_S);
		exit(1);
	}
}

void
conn_flush(struct conn *c)
{
	size_t off = 0;
	unsigned idle = 0;

	while (off < c->out_len) {
		/* MSG_NOSIGNAL: a server that went away is an error message,
		 * not a silent SIGPIPE. */
		ssize_t n = send(c->fd, c->out + off, c->out_len - off,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_wait(c, &idle, "write");
				continue;
			}
			die("write");
		}
		off += (size_t)n;
	}
	c->out_len = 0;
}

void
conn_fill(struct conn *c)
{
	ssize_t n;
	unsigned idle = 0;

	conn_compact(c);
	for (;;) {
		n = read(c->fd, c->in + c->in_len, BUF_BYTES - c->in_len);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			conn_wait(c, &idle, "read");
			continue;
		}
		die("read");
	}
	if (n == 0) {
		if (c->abort != NULL && atomic_load(c->abort))
			pthread_exit(NULL);
		fprintf(stderr, "%s: read: connection closed by the server\n",
			driver_name);
		exit(1);
	}
	c->in_len += (size_t)n;
}

void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	free(c->in);
}

void
conn_compact(struct conn *c)
{
	if (c->in_pos > 0) {
		memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
		c->in_len -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->in_len == BUF_BYTES) {
		fprintf(stderr, "%s: reply too large\n", driver_name);
		exit(1);
	}
}

size_t
line_end(const struct conn *c, size_t pos)
{
	for (size_t i = pos; i + 1 < c->in_len; i++) {
		if (c->in[i] == '\r' && c->in[i + 1] == '\n')
			return i;
	}
	return SIZE_MAX;
}
