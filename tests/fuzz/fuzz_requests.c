/*
 * fuzz_requests: hostile requests against a real broker.
 *
 * Valid frames of every request type, built from the protocol's own
 * descriptors with random field values, then mutated at random (bit flips,
 * truncations, inserted bytes, wrong lengths), are sent after hello on
 * several connections to a broker started by the test. Every few hundred
 * frames a separate, well-behaved client must still be served. No answer
 * may carry INTERNAL: whatever a client sends is its own mistake, refused
 * with a code that says so. At the end the broker must stop cleanly on
 * SIGTERM (under the sanitizer build, any memory error in a handler fails
 * it too).
 *
 * With "auth" the broker runs with --auth on: half the connections
 * authenticate as its admin first (so every request reaches its handler
 * and its permission check), the others fuzz the authentication itself
 * (random frames before and during the SCRAM exchange), each from a
 * loopback address of its own, as the broker delays failures per address.
 *
 * Usage: fuzz_requests [SECONDS [auth]] (default 10); seed from
 * RINGMQ_FUZZ_SEED, printed so a failure can be replayed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringmq.h>

#include "harness.h"
#include "ringmq.pb-c.h"
#include "scram.h"

#define ADMIN_PASSWORD "fuzz-admin-password"

#define CONNS	    8
#define CHECK_EVERY 300

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	/* xorshift64*: fast, and replayable from the seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Strings for every string field; the last is a name of 64 KiB + 1,
 * over every per-field limit, made at start-up. */
static char long_name[65537];
static const char *const names[] = { "fq",	 "fq.dlq", "g",	     "g2",
				     "",	 "nope",   "fq-2",   "ringmq-x",
				     "RingMQ-y", "h",	   long_name };

/* Fills message m (of descriptor d) with random values, depth-bounded. */
static void
fill(ProtobufCMessage *m, const ProtobufCMessageDescriptor *d, int depth)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		char *p = (char *)m + fd->offset;

		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			continue; /* kept empty, or set below for some */
		if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && rnd() % 2)
			continue;
		if (fd->quantifier_offset && fd->label != PROTOBUF_C_LABEL_NONE)
			*(protobuf_c_boolean *)((char *)m +
						fd->quantifier_offset) = 1;
		switch (fd->type) {
		case PROTOBUF_C_TYPE_UINT32:
		case PROTOBUF_C_TYPE_ENUM:
			*(uint32_t *)p = rnd() % 4 ? (uint32_t)(rnd() % 8)
						   : (uint32_t)rnd();
			break;
		case PROTOBUF_C_TYPE_UINT64:
			*(uint64_t *)p = rnd() % 4 ? rnd() % 2000 : rnd();
			break;
		case PROTOBUF_C_TYPE_BOOL:
			*(protobuf_c_boolean *)p = rnd() % 2;
			break;
		case PROTOBUF_C_TYPE_DOUBLE:
			*(double *)p = (double)(rnd() % 1000);
			break;
		case PROTOBUF_C_TYPE_STRING:
			*(const char **)p =
				names[rnd() % (sizeof(names) / sizeof(*names))];
			break;
		case PROTOBUF_C_TYPE_BYTES: {
			ProtobufCBinaryData *b = (ProtobufCBinaryData *)p;

			b->len = rnd() % 64;
			b->data = (uint8_t *)"fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"
					     "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
			break;
		}
		case PROTOBUF_C_TYPE_MESSAGE:
			if (depth < 3) {
				const ProtobufCMessageDescriptor *sd =
					fd->descriptor;
				ProtobufCMessage *sub =
					calloc(1, sd->sizeof_message);

				sd->message_init(sub);
				fill(sub, sd, depth + 1);
				*(ProtobufCMessage **)p = sub;
			}
			break;
		default: break;
		}
	}
}

/* Frees what fill allocated (sub-messages only). */
static void
unfill(ProtobufCMessage *m, const ProtobufCMessageDescriptor *d)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		ProtobufCMessage **sub;

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE ||
		    fd->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		sub = (ProtobufCMessage **)((char *)m + fd->offset);
		if (*sub != NULL) {
			unfill(*sub, fd->descriptor);
			free(*sub);
			*sub = NULL;
		}
	}
}

/* A random request frame, packed with its length prefix into buf. */
static size_t
make_frame(uint8_t *buf, size_t cap)
{
	const ProtobufCMessageDescriptor *fd = &ringmq__frame__descriptor;
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	const ProtobufCFieldDescriptor *body;
	ProtobufCMessage *sub;
	Ringmq__Message msg = RINGMQ__MESSAGE__INIT, *msgs[1] = { &msg };
	Ringmq__Header hdr = RINGMQ__HEADER__INIT, *hdrs[1] = { &hdr };
	const size_t nnames = sizeof(names) / sizeof(*names);
	uint64_t ids[3] = { rnd(), rnd() % 100, 1 };
	size_t n;

	/* A body field: every oneof member of Frame but request_id. */
	do
		body = &fd->fields[rnd() % fd->n_fields];
	while (body->type != PROTOBUF_C_TYPE_MESSAGE);
	sub = calloc(1, ((const ProtobufCMessageDescriptor *)body->descriptor)
				->sizeof_message);
	((const ProtobufCMessageDescriptor *)body->descriptor)
		->message_init(sub);
	fill(sub, body->descriptor, 0);
	f.has_request_id = 1;
	f.request_id = rnd() % 100;
	f.body_case = (Ringmq__Frame__BodyCase)body->id;
	*(ProtobufCMessage **)((char *)&f + body->offset) = sub;
	/* Give batches something to carry. */
	if (f.body_case == RINGMQ__FRAME__BODY_PUBLISH) {
		msg.payload.data = (uint8_t *)"payload";
		msg.payload.len = rnd() % 8;
		if (rnd() % 2) {
			hdr.name = (char *)names[rnd() % nnames];
			hdr.value.data = (uint8_t *)"value";
			hdr.value.len = rnd() % 6;
			msg.n_headers = 1;
			msg.headers = hdrs;
		}
		if (rnd() % 4 == 0)
			msg.dedup_id = (char *)names[rnd() % nnames];
		if (rnd() % 4 == 0) {
			msg.has_key = 1;
			msg.key.data = (uint8_t *)long_name;
			msg.key.len = rnd() % 2 ? 3 : sizeof(long_name) - 1;
		}
		f.publish->n_messages = 1;
		f.publish->messages = msgs;
	} else if (f.body_case == RINGMQ__FRAME__BODY_ACK) {
		f.ack->n_lease_ids = 3;
		f.ack->lease_ids = ids;
	} else if (f.body_case == RINGMQ__FRAME__BODY_NACK) {
		f.nack->n_lease_ids = 3;
		f.nack->lease_ids = ids;
	}
	n = ringmq__frame__get_packed_size(&f);
	if (n + 4 > cap)
		n = 0;
	else
		ringmq__frame__pack(&f, buf + 4);
	if (f.body_case == RINGMQ__FRAME__BODY_PUBLISH)
		f.publish->n_messages = 0, f.publish->messages = NULL;
	else if (f.body_case == RINGMQ__FRAME__BODY_ACK)
		f.ack->n_lease_ids = 0, f.ack->lease_ids = NULL;
	else if (f.body_case == RINGMQ__FRAME__BODY_NACK)
		f.nack->n_lease_ids = 0, f.nack->lease_ids = NULL;
	unfill(sub, body->descriptor);
	free(sub);
	/* Mutate one in three. */
	if (n > 0 && rnd() % 3 == 0) {
		switch (rnd() % 3) {
		case 0:
			buf[4 + rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			n = rnd() % n + 1; /* truncated body, honest length */
			break;
		default: buf[4 + rnd() % n] = (uint8_t)rnd(); break;
		}
	}
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	return n + 4;
}

/* What a fuzzing connection has read and not yet parsed. */
struct inbuf {
	uint8_t data[1 << 20];
	size_t len;
	size_t skip; /* bytes still to drop of a frame larger than data */
};

/* 1 if frame f is or carries an INTERNAL answer (printed). */
static int
is_internal(const Ringmq__Frame *f)
{
	if (f->body_case == RINGMQ__FRAME__BODY_ERROR &&
	    f->error->code == RINGMQ__ERROR_CODE__INTERNAL) {
		fprintf(stderr,
			"fuzz_requests: INTERNAL for request %llu: %s\n",
			(unsigned long long)f->request_id,
			f->error->message ? f->error->message : "");
		return 1;
	}
	if (f->body_case == RINGMQ__FRAME__BODY_PUBLISH_OK)
		for (size_t i = 0; i < f->publish_ok->n_results; i++)
			if (f->publish_ok->results[i]->code ==
			    RINGMQ__ERROR_CODE__INTERNAL) {
				fprintf(stderr,
					"fuzz_requests: INTERNAL for a "
					"message of request %llu\n",
					(unsigned long long)f->request_id);
				return 1;
			}
	return 0;
}

/* Adds n bytes read from the broker to in and checks every whole frame.
 * @return the number of INTERNAL answers among them. */
static int
check_answers(struct inbuf *in, const uint8_t *buf, size_t n)
{
	size_t at = 0;
	int bad = 0;

	if (in->skip > 0) {
		size_t k = n < in->skip ? n : in->skip;

		in->skip -= k;
		buf += k;
		n -= k;
	}
	if (in->len + n > sizeof(in->data)) {
		in->len = 0; /* lost track: a frame larger than data */
		return 0;
	}
	memcpy(in->data + in->len, buf, n);
	in->len += n;
	while (in->len - at >= 4) {
		const uint8_t *p = in->data + at;
		size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) |
			      ((size_t)p[2] << 8) | p[3];
		Ringmq__Frame *f;

		if (4 + flen > sizeof(in->data)) {
			in->skip = 4 + flen - (in->len - at);
			at = in->len;
			break;
		}
		if (in->len - at < 4 + flen)
			break;
		f = ringmq__frame__unpack(NULL, flen, p + 4);
		if (f != NULL) {
			bad += is_internal(f);
			ringmq__frame__free_unpacked(f, NULL);
		}
		at += 4 + flen;
	}
	memmove(in->data, in->data + at, in->len - at);
	in->len -= at;
	return bad;
}

static int is_auth; /* the broker runs with --auth on */

/* Writes frame f with its length prefix on blocking fd. 0 or -1. */
static int
send_frame(int fd, const Ringmq__Frame *f)
{
	uint8_t buf[4096];
	size_t n = ringmq__frame__get_packed_size(f);

	if (n + 4 > sizeof(buf))
		return -1;
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	ringmq__frame__pack(f, buf + 4);
	return write(fd, buf, n + 4) == (ssize_t)(n + 4) ? 0 : -1;
}

/* The next frame of blocking fd (at most 5 s), or NULL. */
static Ringmq__Frame *
recv_frame(int fd)
{
	uint8_t buf[4096];
	size_t have = 0, need = 4;

	while (have < need) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0)
			return NULL;
		r = read(fd, buf + have, need - have);
		if (r <= 0)
			return NULL;
		have += (size_t)r;
		if (have == 4) {
			need = 4 + (((size_t)buf[0] << 24) |
				    ((size_t)buf[1] << 16) |
				    ((size_t)buf[2] << 8) | buf[3]);
			if (need > sizeof(buf))
				return NULL;
		}
	}
	return ringmq__frame__unpack(NULL, need - 4, buf + 4);
}

/* A hello carrying a SCRAM client-first for the admin (or none). */
static int
send_hello(int fd, struct scram_client *sc)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;
	char first[SCRAM_MSG_MAX + 1];

	h.version = 1;
	if (sc != NULL) {
		int n = scram_client_first(sc, "admin", NULL, first,
					   sizeof(first));

		if (n < 0)
			return -1;
		h.has_credentials = 1;
		h.credentials.data = (uint8_t *)first;
		h.credentials.len = (size_t)n;
	}
	f.has_request_id = 1;
	f.request_id = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	return send_frame(fd, &f);
}

/* The whole SCRAM exchange as the admin on blocking fd. 0 or -1. */
static int
authenticate(int fd)
{
	struct scram_client sc;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *r;
	Ringmq__AuthResponse ar = RINGMQ__AUTH_RESPONSE__INIT;
	char msg[SCRAM_MSG_MAX + 1], final[SCRAM_MSG_MAX + 1];
	int n, ok = 0;

	if (send_hello(fd, &sc) < 0 || (r = recv_frame(fd)) == NULL)
		return -1;
	if (r->body_case == RINGMQ__FRAME__BODY_AUTH_CHALLENGE &&
	    r->auth_challenge->data.len < sizeof(msg)) {
		memcpy(msg, r->auth_challenge->data.data,
		       r->auth_challenge->data.len);
		msg[r->auth_challenge->data.len] = '\0';
		ok = 1;
	}
	ringmq__frame__free_unpacked(r, NULL);
	if (!ok)
		return -1;
	n = scram_client_final(&sc, ADMIN_PASSWORD, msg, final, sizeof(final));
	if (n < 0)
		return -1;
	ar.data.data = (uint8_t *) final;
	ar.data.len = (size_t)n;
	f.has_request_id = 1;
	f.request_id = 2;
	f.body_case = RINGMQ__FRAME__BODY_AUTH_RESPONSE;
	f.auth_response = &ar;
	if (send_frame(fd, &f) < 0 || (r = recv_frame(fd)) == NULL)
		return -1;
	ok = r->body_case == RINGMQ__FRAME__BODY_HELLO_OK;
	ringmq__frame__free_unpacked(r, NULL);
	return ok ? 0 : -1;
}

/* Connection slot's socket to port, after its hello: plain, or (auth)
 * authenticated for even slots, and for odd ones nothing or a bare
 * client-first, left for the fuzzed frames to go on with. */
static int
open_conn(int port, int slot)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int rc;

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (is_auth) {
		/* Failures are counted per address: one per slot. */
		sa.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(2 + slot));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			return -1;
		}
	}
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	if (!is_auth)
		rc = send_hello(fd, NULL);
	else if (slot % 2 == 0)
		rc = authenticate(fd);
	else if (rnd() % 2) {
		struct scram_client sc;

		rc = send_hello(fd, &sc);
	} else
		rc = 0;
	if (rc < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A well-behaved client must still be served. */
static int
still_serves(const char *addr)
{
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *c = NULL;
	char err[256];
	int rc;

	(void)ringmq_opts_set(o, "server", addr, err, sizeof(err));
	if (is_auth) {
		(void)ringmq_opts_set(o, "user", "admin", err, sizeof(err));
		(void)ringmq_opts_set(o, "password", ADMIN_PASSWORD, err,
				      sizeof(err));
	}
	rc = ringmq_client_connect(&c, o, err, sizeof(err));
	if (rc == RINGMQ_OK)
		rc = ringmq_client_ping(c);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	return rc == RINGMQ_OK;
}

int
main(int argc, char **argv)
{
	static char boot[] = "/tmp/ringmq-fuzz-boot-XXXXXX";
	const char *flags[] = {
		"--idle-timeout-ms", "2000", NULL, NULL, NULL, NULL, NULL
	};
	struct harness_broker b;
	long long seconds = argc > 1 ? atoll(argv[1]) : 10;
	long long end;
	const char *seed_env = getenv("RINGMQ_FUZZ_SEED");
	static uint8_t buf[1 << 18], sink[1 << 16];
	static struct inbuf ins[CONNS];
	int fds[CONNS];
	long frames = 0;
	int code, internal = 0;

	signal(SIGPIPE, SIG_IGN);
	rng_state = seed_env ? strtoull(seed_env, NULL, 0)
			     : (uint64_t)time(NULL) * 2654435761u + 1;
	memset(long_name, 'n', sizeof(long_name) - 1);
	is_auth = argc > 2 && strcmp(argv[2], "auth") == 0;
	printf("fuzz_requests: seed %llu, %lld s%s\n",
	       (unsigned long long)rng_state, seconds,
	       is_auth ? ", auth on" : "");
	if (is_auth) {
		int bfd = mkstemp(boot);
		static const char line[] = "admin:" ADMIN_PASSWORD "\n";

		if (bfd < 0 || write(bfd, line, sizeof(line) - 1) < 0)
			return 1;
		close(bfd);
		flags[2] = "--auth";
		flags[3] = "on";
		flags[4] = "--auth-bootstrap-file";
		flags[5] = boot;
	}
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	if (harness_start(&b, flags) < 0)
		return 1;
	if (is_auth)
		unlink(boot);
	{
		/* Something to act on: a queue, a group, messages. */
		ringmq_opts *o = ringmq_opts_new();
		ringmq_client *c = NULL;
		char err[256];
		uint32_t sub;

		(void)ringmq_opts_set(o, "server", b.addr, err, sizeof(err));
		if (is_auth) {
			(void)ringmq_opts_set(o, "user", "admin", err,
					      sizeof(err));
			(void)ringmq_opts_set(o, "password", ADMIN_PASSWORD,
					      err, sizeof(err));
		}
		if (ringmq_client_connect(&c, o, err, sizeof(err)) ==
		    RINGMQ_OK) {
			(void)ringmq_queue_create(c, "fq", NULL);
			(void)ringmq_subscribe(c, &sub, "fq", "g", 5,
					       RINGMQ_START_EARLIEST);
		}
		ringmq_client_free(c);
		ringmq_opts_free(o);
	}
	for (int i = 0; i < CONNS; i++)
		fds[i] = open_conn(b.port, i);
	end = harness_now_ms() + seconds * 1000;
	while (harness_now_ms() < end) {
		int i = (int)(rnd() % CONNS);
		size_t n = make_frame(buf, sizeof(buf));

		if (fds[i] < 0 || write(fds[i], buf, n) < 0) {
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = open_conn(b.port, i);
			ins[i].len = ins[i].skip = 0;
		}
		for (int j = 0; j < CONNS; j++) {
			ssize_t got;

			if (fds[j] < 0)
				continue;
			got = read(fds[j], sink, sizeof(sink));
			if (got > 0)
				internal += check_answers(&ins[j], sink,
							  (size_t)got);
			if (got == 0) {
				close(fds[j]); /* the broker closed it */
				fds[j] = open_conn(b.port, j);
				ins[j].len = ins[j].skip = 0;
			}
		}
		if (++frames % CHECK_EVERY == 0 && !still_serves(b.addr)) {
			fprintf(stderr,
				"fuzz_requests: broker stopped "
				"serving after %ld frames (seed above)\n",
				frames);
			harness_cleanup(&b);
			return 1;
		}
	}
	for (int i = 0; i < CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (!still_serves(b.addr)) {
		fprintf(stderr,
			"fuzz_requests: broker not serving at the end\n");
		harness_cleanup(&b);
		return 1;
	}
	code = harness_stop(&b);
	harness_cleanup(&b);
	printf("fuzz_requests: %ld frames; %d INTERNAL answers; broker exit "
	       "%d\n",
	       frames, internal, code);
	return code == 0 && internal == 0 ? 0 : 1;
}
