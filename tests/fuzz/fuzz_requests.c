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
 * Usage: fuzz_requests [SECONDS] (default 10); seed from
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

static int
open_conn(int port)
{
	static const uint8_t hello[] = { 0,    0,    0,	   6,	 0x08,
					 0x01, 0x52, 0x02, 0x08, 0x01 };
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
		       errno != EINPROGRESS)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	{
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		(void)poll(&p, 1, 1000);
	}
	if (write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello)) {
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
	static const char *const flags[] = { "--idle-timeout-ms", "2000",
					     NULL };
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
	printf("fuzz_requests: seed %llu, %lld s\n",
	       (unsigned long long)rng_state, seconds);
	memset(&b, 0, sizeof(b));
	b.stdout_fd = -1;
	if (harness_start(&b, flags) < 0)
		return 1;
	{
		/* Something to act on: a queue, a group, messages. */
		ringmq_opts *o = ringmq_opts_new();
		ringmq_client *c = NULL;
		char err[256];
		uint32_t sub;

		(void)ringmq_opts_set(o, "server", b.addr, err, sizeof(err));
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
		fds[i] = open_conn(b.port);
	end = harness_now_ms() + seconds * 1000;
	while (harness_now_ms() < end) {
		int i = (int)(rnd() % CONNS);
		size_t n = make_frame(buf, sizeof(buf));

		if (fds[i] < 0 || write(fds[i], buf, n) < 0) {
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = open_conn(b.port);
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
				fds[j] = open_conn(b.port);
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
