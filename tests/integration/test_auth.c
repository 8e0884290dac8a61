/*
 * Integration tests of authentication and permissions (ringmqd --auth on)
 * against a real broker on 127.0.0.1: start-up without users, the SCRAM
 * exchange of the hello through the library and raw (wrong password,
 * unknown user, a replayed final message, a truncated exchange, growing
 * delays), every request type sent unauthenticated and without
 * permission (refused, nothing changed), revocation, deleted users, the
 * users surviving a restart, and the CLI's user and acl commands.
 *
 * Raw connections come from distinct loopback addresses (127.0.0.N) where
 * failures are counted: the broker delays refusals per address.
 */
#include <arpa/inet.h>
#include <errno.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "ringmq.h"
#include "scram.h"
#include "testlib.h"

#define ADMIN_PW "admin-pass-1"
#define WEB_PW	 "web-pass-1"

struct fixture {
	struct harness_broker b;
	char boot[64];	   /* the bootstrap file */
	char admin_pw[64]; /* a file holding ADMIN_PW */
	char web_pw[64];   /* a file holding WEB_PW */
	ringmq_client *admin;
};

/* Publishes text to queue. @return the library's code. */
static int
pub(ringmq_client *c, const char *queue, const char *text)
{
	ringmq_message *m = ringmq_message_new(text, strlen(text));
	int rc;

	assert_non_null(m);
	rc = ringmq_publish(c, queue, m, NULL, NULL, NULL);
	ringmq_message_free(m);
	return rc;
}

static ringmq_client *
connect_as(const struct fixture *fx, const char *user, const char *pwfile)
{
	char u[160], pw[160];

	snprintf(u, sizeof(u), "user=%s", user);
	snprintf(pw, sizeof(pw), "password-file=%s", pwfile);
	return testlib_connect_with(fx->b.addr, u, pw, NULL);
}

/* A broker with auth on, admin made from the bootstrap file, and user
 * web with publish on jobs.* and consume on jobs.work. */
static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *flags[] = { "--auth", "on",	    "--auth-bootstrap-file",
				NULL,	  "--http", "127.0.0.1:0",
				NULL };

	testlib_write_temp(fx->boot, "admin:" ADMIN_PW "\n");
	testlib_write_temp(fx->admin_pw, ADMIN_PW "\n");
	testlib_write_temp(fx->web_pw, WEB_PW);
	flags[3] = fx->boot;
	if (testlib_broker_start(&fx->b, flags) < 0)
		return -1;
	fx->admin = connect_as(fx, "admin", fx->admin_pw);
	assert_int_equal(ringmq_user_add(fx->admin, "web", WEB_PW), RINGMQ_OK);
	assert_int_equal(
		ringmq_acl_set(fx->admin, "web", "jobs.*", RINGMQ_PERM_PUBLISH),
		RINGMQ_OK);
	assert_int_equal(ringmq_acl_set(fx->admin, "web", "jobs.work",
					RINGMQ_PERM_CONSUME),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(fx->admin, "jobs.a", NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(fx->admin, "jobs.work", NULL),
			 RINGMQ_OK);
	assert_int_equal(ringmq_group_create(fx->admin, "jobs.a", "g",
					     RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(pub(fx->admin, "jobs.a", "m"), RINGMQ_OK);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	ringmq_client_free(fx->admin);
	rc = testlib_broker_stop(&fx->b);
	unlink(fx->boot);
	unlink(fx->admin_pw);
	unlink(fx->web_pw);
	free(fx);
	return rc;
}

/* ------------------------------------------------------------- raw */

/* A TCP connection to port from 127.0.0.src (0: the default address). */
static int
raw_from(int port, int src)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (src != 0) {
		sa.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
	}
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* 1 when the broker closed fd (EOF within timeout_ms). */
static int
is_closed(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint8_t b;

	/* Readable at once at EOF: nothing may come before it. */
	return poll(&p, 1, timeout_ms) == 1 && read(fd, &b, 1) <= 0;
}

/* Expects an Error of code next on fd, then its close. */
static void
expect_error_and_close(int fd, int code, int timeout_ms)
{
	Ringmq__Frame *r = testlib_raw_recv_within(fd, timeout_ms);

	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_ERROR);
	assert_int_equal(r->error->code, code);
	ringmq__frame__free_unpacked(r, NULL);
	assert_true(is_closed(fd, timeout_ms));
}

static void
send_hello(int fd, const char *first)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__Hello h = RINGMQ__HELLO__INIT;

	h.version = 1;
	if (first != NULL) {
		h.has_credentials = 1;
		h.credentials.data = (uint8_t *)first;
		h.credentials.len = strlen(first);
	}
	f.has_request_id = 1;
	f.request_id = 1;
	f.body_case = RINGMQ__FRAME__BODY_HELLO;
	f.hello = &h;
	testlib_raw_send(fd, &f);
}

static void
send_response(int fd, const char *final)
{
	Ringmq__Frame f = RINGMQ__FRAME__INIT;
	Ringmq__AuthResponse ar = RINGMQ__AUTH_RESPONSE__INIT;

	ar.data.data = (uint8_t *) final;
	ar.data.len = strlen(final);
	f.has_request_id = 1;
	f.request_id = 2;
	f.body_case = RINGMQ__FRAME__BODY_AUTH_RESPONSE;
	f.auth_response = &ar;
	testlib_raw_send(fd, &f);
}

/* Sends hello for user and reads the challenge into server_first. */
static void
raw_challenge(int fd, struct scram_client *sc, const char *user,
	      char *server_first, size_t size)
{
	char first[SCRAM_MSG_MAX + 1];
	Ringmq__Frame *r;

	assert_true(scram_client_first(sc, user, NULL, first, sizeof(first)) >
		    0);
	send_hello(fd, first);
	r = testlib_raw_recv_within(fd, 5000);
	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_AUTH_CHALLENGE);
	assert_true(r->auth_challenge->data.len < size);
	memcpy(server_first, r->auth_challenge->data.data,
	       r->auth_challenge->data.len);
	server_first[r->auth_challenge->data.len] = '\0';
	ringmq__frame__free_unpacked(r, NULL);
}

/* Authenticates fd as user; the client-final sent goes into final (for
 * replays) when not NULL. */
static void
raw_auth(int fd, const char *user, const char *password, char *final)
{
	struct scram_client sc;
	char sf[SCRAM_MSG_MAX + 1], cf[SCRAM_MSG_MAX + 1];
	Ringmq__Frame *r;

	raw_challenge(fd, &sc, user, sf, sizeof(sf));
	assert_true(scram_client_final(&sc, password, sf, cf, sizeof(cf)) > 0);
	send_response(fd, cf);
	r = testlib_raw_recv_within(fd, 5000);
	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_HELLO_OK);
	assert_true(r->hello_ok->has_auth_final);
	memcpy(sf, r->hello_ok->auth_final.data, r->hello_ok->auth_final.len);
	sf[r->hello_ok->auth_final.len] = '\0';
	assert_int_equal(scram_client_verify(&sc, sf), 0);
	assert_string_equal(r->hello_ok->user, user);
	ringmq__frame__free_unpacked(r, NULL);
	if (final != NULL)
		strcpy(final, cf);
}

/* ----------------------------------------- every request type, built */

/* Room for the messages a frame of each type needs (no frees: one
 * frame at a time). */
static uint8_t pool[1 << 16];
static size_t pool_used;

static void *
pool_alloc(size_t n)
{
	void *p;

	n = (n + 15) & ~(size_t)15;
	assert_true(pool_used + n <= sizeof(pool));
	p = pool + pool_used;
	pool_used += n;
	memset(p, 0, n);
	return p;
}

/* Fills the required fields of msg: names "jobs.a", numbers 0, bytes
 * "x", messages likewise. */
static void
fill_required(const ProtobufCMessageDescriptor *d, void *msg)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		char *p = (char *)msg + fd->offset;

		if (fd->label != PROTOBUF_C_LABEL_REQUIRED)
			continue;
		if (fd->type == PROTOBUF_C_TYPE_STRING) {
			*(const char **)(void *)p = "jobs.a";
		} else if (fd->type == PROTOBUF_C_TYPE_BYTES) {
			ProtobufCBinaryData *b = (void *)p;

			b->data = (uint8_t *)"x";
			b->len = 1;
		} else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessageDescriptor *sd = fd->descriptor;
			void *sub = pool_alloc(sd->sizeof_message);

			sd->message_init(sub);
			fill_required(sd, sub);
			*(void **)(void *)p = sub;
		}
	}
}

/* Frame body i of Frame's descriptor, made with every required field,
 * as request_id. */
static void
build_body(Ringmq__Frame *f, const ProtobufCFieldDescriptor *fd,
	   uint64_t request_id)
{
	const ProtobufCMessageDescriptor *sd = fd->descriptor;
	void *body;

	pool_used = 0;
	body = pool_alloc(sd->sizeof_message);
	sd->message_init(body);
	fill_required(sd, body);
	ringmq__frame__init(f);
	f->has_request_id = 1;
	f->request_id = request_id;
	f->body_case = (Ringmq__Frame__BodyCase)fd->id;
	*(void **)(void *)((char *)f + fd->offset) = body;
}

/* 1 for the bodies a test does not send as "any request". */
static int
is_session_start(const ProtobufCFieldDescriptor *fd)
{
	return fd->id == RINGMQ__FRAME__BODY_HELLO ||
	       fd->id == RINGMQ__FRAME__BODY_AUTH_RESPONSE;
}

/* What the fixture made, as the admin sees it: nothing may change it. */
static void
expect_untouched(struct fixture *fx)
{
	uint64_t messages, ready;
	ringmq_user_list *ul;
	ringmq_group_list *gl;

	testlib_queue_counts(fx->admin, "jobs.a", &messages, &ready, NULL,
			     NULL);
	assert_int_equal(messages, 1);
	assert_int_equal(ready, 1);
	assert_int_equal(ringmq_group_list_get(fx->admin, "jobs.a", &gl),
			 RINGMQ_OK);
	assert_int_equal(ringmq_group_list_count(gl), 1);
	ringmq_group_list_free(gl);
	assert_int_equal(ringmq_user_list_get(fx->admin, &ul), RINGMQ_OK);
	assert_int_equal(ringmq_user_list_count(ul), 2);
	assert_int_equal(ringmq_user_list_perm_count(ul, 1), 2);
	ringmq_user_list_free(ul);
}

/* ------------------------------------------------------------ tests */

static void
test_auth_on_needs_a_first_user_from_a_file(void **state)
{
	char dir[] = "/tmp/ringmq-auth-dir-XXXXXX";
	char bad[64];
	const char *args[] = { "--data", dir,	"--listen", "127.0.0.1:0",
			       "--http", "off", "--auth",   "on",
			       NULL,	 NULL,	NULL };

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* No user and no bootstrap file: a set-up error. */
	assert_int_equal(harness_run_exit(args), 2);
	args[8] = "--auth-bootstrap-file";
	args[9] = "/nonexistent/boot";
	assert_int_equal(harness_run_exit(args), 2);
	testlib_write_temp(bad, "no colon here\n");
	args[9] = bad;
	assert_int_equal(harness_run_exit(args), 2);
	unlink(bad);
	testlib_write_temp(bad, "bad name:pw\n");
	assert_int_equal(harness_run_exit(args), 2);
	unlink(bad);
	/* A password is never a flag. */
	args[8] = "--auth-password";
	args[9] = "x";
	assert_int_equal(harness_run_exit(args), 2);
	assert_int_equal(harness_remove_dir(dir), 0);
}

static void
test_auth_library_connects_with_the_right_password_only(void **state)
{
	struct fixture *fx = *state;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *c = NULL;
	char why[512], wrong[64];

	testlib_write_temp(wrong, "not-the-password\n");
	assert_int_equal(ringmq_opts_set(o, "server", fx->b.addr, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "reconnect", "false", NULL, 0),
			 RINGMQ_OK);
	/* No user at all. */
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_UNAUTHENTICATED);
	assert_non_null(strstr(why, "requires authentication"));
	/* A wrong password, and an unknown user: the same answer. */
	assert_int_equal(ringmq_opts_set(o, "user", "web", NULL, 0), RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "password-file", wrong, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_UNAUTHENTICATED);
	assert_non_null(strstr(why, "authentication failed"));
	assert_int_equal(ringmq_opts_set(o, "user", "nobody", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_UNAUTHENTICATED);
	assert_non_null(strstr(why, "authentication failed"));
	/* A user without a password is refused before connecting. */
	ringmq_opts_free(o);
	o = ringmq_opts_new();
	assert_int_equal(ringmq_opts_set(o, "server", fx->b.addr, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "user", "web", NULL, 0), RINGMQ_OK);
	unsetenv("RINGMQ_PASSWORD_FILE");
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_USAGE);
	/* From the environment. */
	setenv("RINGMQ_PASSWORD_FILE", fx->web_pw, 1);
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_OK);
	unsetenv("RINGMQ_PASSWORD_FILE");
	assert_int_equal(pub(c, "jobs.b", "x"), RINGMQ_QUEUE_NOT_FOUND);
	assert_int_equal(pub(c, "jobs.a", "x"), RINGMQ_OK);
	ringmq_client_free(c);
	ringmq_opts_free(o);
	unlink(wrong);
}

/* Before hello, every frame is refused: NOT_HELLO (an AuthResponse out
 * of turn: UNAUTHENTICATED), and the connection closes. After the
 * challenge, anything but the response fails the exchange. Nothing
 * changes either way. */
static void
test_auth_every_request_unauthenticated_is_refused(void **state)
{
	struct fixture *fx = *state;
	const ProtobufCMessageDescriptor *d = &ringmq__frame__descriptor;
	int fds[128], n = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		Ringmq__Frame f;
		int fd0;

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE ||
		    fd->id == RINGMQ__FRAME__BODY_HELLO)
			continue;
		fd0 = raw_from(fx->b.port, 0);
		build_body(&f, fd, 7);
		testlib_raw_send(fd0, &f);
		expect_error_and_close(
			fd0,
			fd->id == RINGMQ__FRAME__BODY_AUTH_RESPONSE
				? RINGMQ__ERROR_CODE__UNAUTHENTICATED
				: RINGMQ__ERROR_CODE__NOT_HELLO,
			15000);
		close(fd0);
	}
	/* Mid-exchange, each from an address of its own: the refusals wait
	 * out one first delay each, together. */
	for (unsigned i = 0; i < d->n_fields && n < 128; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		struct scram_client sc;
		char sf[SCRAM_MSG_MAX + 1];
		Ringmq__Frame f;

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE ||
		    fd->id == RINGMQ__FRAME__BODY_AUTH_RESPONSE)
			continue;
		fds[n] = raw_from(fx->b.port, 10 + n);
		raw_challenge(fds[n], &sc, "admin", sf, sizeof(sf));
		build_body(&f, fd, 7);
		testlib_raw_send(fds[n], &f);
		n++;
	}
	for (int i = 0; i < n; i++) {
		expect_error_and_close(
			fds[i], RINGMQ__ERROR_CODE__UNAUTHENTICATED, 15000);
		close(fds[i]);
	}
	expect_untouched(fx);
}

/* Every request type an authenticated user without any permission may
 * send: PERMISSION_DENIED with its request id, unless it needs none
 * (ping, stats, queue list, metadata, its own subscriptions and leases);
 * nothing changes. */
static void
test_auth_every_request_without_permission_is_denied(void **state)
{
	struct fixture *fx = *state;
	const ProtobufCMessageDescriptor *d = &ringmq__frame__descriptor;
	char pwfile[64];
	int fd;

	assert_int_equal(ringmq_user_add(fx->admin, "nobody", "nobody-pw"),
			 RINGMQ_OK);
	testlib_write_temp(pwfile, "nobody-pw");
	fd = raw_from(fx->b.port, 0);
	raw_auth(fd, "nobody", "nobody-pw", NULL);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd_ = &d->fields[i];
		int needs_nothing =
			fd_->id == RINGMQ__FRAME__BODY_PING ||
			fd_->id == RINGMQ__FRAME__BODY_STATS ||
			fd_->id == RINGMQ__FRAME__BODY_QUEUE_LIST ||
			fd_->id == RINGMQ__FRAME__BODY_UNSUBSCRIBE ||
			fd_->id == RINGMQ__FRAME__BODY_CREDIT ||
			fd_->id == RINGMQ__FRAME__BODY_ACK ||
			fd_->id == RINGMQ__FRAME__BODY_NACK ||
			fd_->id == RINGMQ__FRAME__BODY_RELEASE ||
			fd_->id == RINGMQ__FRAME__BODY_TOUCH ||
			fd_->id == RINGMQ__FRAME__BODY_METADATA;
		int is_request = fd_->type == PROTOBUF_C_TYPE_MESSAGE &&
				 !is_session_start(fd_) &&
				 fd_->id != RINGMQ__FRAME__BODY_PONG &&
				 fd_->id != RINGMQ__FRAME__BODY_GOODBYE;
		Ringmq__Frame f, *r;

		if (!is_request)
			continue;
		build_body(&f, fd_, 100 + i);
		testlib_raw_send(fd, &f);
		r = testlib_raw_recv_within(fd, 5000);
		assert_non_null(r);
		assert_int_equal(r->request_id, 100 + i);
		/* Metadata leaves out the queues the user may not see. */
		if (r->body_case == RINGMQ__FRAME__BODY_METADATA_OK)
			assert_int_equal(r->metadata_ok->n_queues, 0);
		if (r->body_case == RINGMQ__FRAME__BODY_ERROR &&
		    r->error->code == RINGMQ__ERROR_CODE__PERMISSION_DENIED)
			assert_false(needs_nothing);
		else if (!needs_nothing) {
			/* Broker-only frames are "not a request" alike. */
			assert_int_equal(r->body_case,
					 RINGMQ__FRAME__BODY_ERROR);
			assert_int_equal(r->error->code,
					 RINGMQ__ERROR_CODE__INVALID_ARGUMENT);
			assert_non_null(
				strstr(r->error->message, "not a request"));
		}
		ringmq__frame__free_unpacked(r, NULL);
	}
	close(fd);
	assert_int_equal(ringmq_user_delete(fx->admin, "nobody"), RINGMQ_OK);
	expect_untouched(fx);
	unlink(pwfile);
}

static void
test_auth_permissions_follow_patterns(void **state)
{
	struct fixture *fx = *state;
	ringmq_client *web = connect_as(fx, "web", fx->web_pw);
	ringmq_queue_list *ql;
	uint64_t messages;

	/* publish on jobs.*, consume on jobs.work only */
	assert_int_equal(pub(web, "jobs.work", "w"), RINGMQ_OK);
	assert_int_equal(ringmq_queue_purge(web, "jobs.a", NULL),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(ringmq_queue_delete(web, "jobs.a"),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(ringmq_queue_create(web, "jobs.new", NULL),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(
		ringmq_group_create(web, "jobs.a", "h", RINGMQ_START_EARLIEST),
		RINGMQ_PERMISSION_DENIED);
	assert_int_equal(ringmq_group_create(web, "jobs.work", "h",
					     RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_user_delete(web, "admin"),
			 RINGMQ_PERMISSION_DENIED);
	assert_int_equal(ringmq_acl_set(web, "web", "*", RINGMQ_PERM_ALL),
			 RINGMQ_PERMISSION_DENIED);
	/* Its own password, and only that. */
	assert_int_equal(ringmq_user_passwd(web, "web", WEB_PW), RINGMQ_OK);
	assert_int_equal(ringmq_user_passwd(web, "admin", "x-pass"),
			 RINGMQ_PERMISSION_DENIED);
	/* Queue list shows what it has a permission on. */
	assert_int_equal(ringmq_queue_list_get(web, &ql), RINGMQ_OK);
	assert_int_equal(ringmq_queue_list_count(ql), 2);
	ringmq_queue_list_free(ql);
	testlib_queue_counts(fx->admin, "jobs.a", &messages, NULL, NULL, NULL);
	assert_int_equal(messages, 1);
	ringmq_client_free(web);
}

/* Taking consume away ends the user's subscription and hands its lease
 * back at once; deleting the user closes its connections. */
static void
test_auth_revocation_ends_subscriptions_and_connections(void **state)
{
	struct fixture *fx = *state;
	Ringmq__Frame f = RINGMQ__FRAME__INIT, *r;
	Ringmq__Subscribe s = RINGMQ__SUBSCRIBE__INIT;
	uint64_t in_flight, ready;
	int fd = raw_from(fx->b.port, 0);

	assert_int_equal(pub(fx->admin, "jobs.work", "w"), RINGMQ_OK);
	raw_auth(fd, "web", WEB_PW, NULL);
	s.queue = (char *)"jobs.work";
	s.group = (char *)"g";
	s.credit = 10;
	f.has_request_id = 1;
	f.request_id = 5;
	f.body_case = RINGMQ__FRAME__BODY_SUBSCRIBE;
	f.subscribe = &s;
	testlib_raw_send(fd, &f);
	r = testlib_raw_recv_within(fd, 5000);
	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_SUBSCRIBE_OK);
	ringmq__frame__free_unpacked(r, NULL);
	r = testlib_raw_recv_within(fd, 5000);
	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_DELIVERY);
	ringmq__frame__free_unpacked(r, NULL);
	testlib_queue_counts(fx->admin, "jobs.work", NULL, NULL, NULL,
			     &in_flight);
	assert_int_equal(in_flight, 1);

	assert_int_equal(ringmq_acl_delete(fx->admin, "web", "jobs.work"),
			 RINGMQ_OK);
	r = testlib_raw_recv_within(fd, 5000);
	assert_non_null(r);
	assert_int_equal(r->body_case, RINGMQ__FRAME__BODY_SUBSCRIPTION_ENDED);
	assert_int_equal(r->subscription_ended->code,
			 RINGMQ__ERROR_CODE__PERMISSION_DENIED);
	ringmq__frame__free_unpacked(r, NULL);
	testlib_queue_counts(fx->admin, "jobs.work", NULL, &ready, NULL,
			     &in_flight);
	assert_int_equal(in_flight, 0);
	assert_int_equal(ready, 1);
	/* Nothing left to take away there. */
	assert_int_equal(ringmq_acl_delete(fx->admin, "web", "jobs.work"),
			 RINGMQ_INVALID_ARGUMENT);

	assert_int_equal(ringmq_user_delete(fx->admin, "web"), RINGMQ_OK);
	expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED, 5000);
	close(fd);
	assert_int_equal(ringmq_user_delete(fx->admin, "web"),
			 RINGMQ_USER_NOT_FOUND);
}

/* A client-final replayed on another connection fails (its nonce is the
 * old exchange's); so do a truncated exchange and one out of order. */
static void
test_auth_replayed_and_broken_exchanges_fail(void **state)
{
	struct fixture *fx = *state;
	struct scram_client sc;
	char final[SCRAM_MSG_MAX + 1], sf[SCRAM_MSG_MAX + 1];
	int fd = raw_from(fx->b.port, 0);

	raw_auth(fd, "web", WEB_PW, final);
	close(fd);
	fd = raw_from(fx->b.port, 50);
	raw_challenge(fd, &sc, "web", sf, sizeof(sf));
	send_response(fd, final);
	expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED, 15000);
	close(fd);

	/* Truncated: half a client-final. */
	fd = raw_from(fx->b.port, 51);
	raw_challenge(fd, &sc, "web", sf, sizeof(sf));
	final[strlen(final) / 2] = '\0';
	send_response(fd, final);
	expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED, 15000);
	close(fd);

	/* Hello twice. */
	fd = raw_from(fx->b.port, 52);
	raw_challenge(fd, &sc, "web", sf, sizeof(sf));
	send_hello(fd, "n,,n=web,r=abc");
	expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED, 15000);
	close(fd);

	/* A peer that goes mid-exchange harms nothing. */
	fd = raw_from(fx->b.port, 53);
	raw_challenge(fd, &sc, "web", sf, sizeof(sf));
	close(fd);
	expect_untouched(fx);
}

/* Failures from one address delay its refusals more and more, and hold
 * its next exchanges back; another address is not held back. */
static void
test_auth_failures_slow_down_their_address(void **state)
{
	struct fixture *fx = *state;
	struct scram_client sc;
	char sf[SCRAM_MSG_MAX + 1], cf[SCRAM_MSG_MAX + 1];
	long long took[3];

	for (int i = 0; i < 3; i++) {
		int fd = raw_from(fx->b.port, 60);
		long long t0;

		raw_challenge(fd, &sc, "web", sf, sizeof(sf));
		assert_true(scram_client_final(&sc, "wrong", sf, cf,
					       sizeof(cf)) > 0);
		t0 = harness_now_ms();
		send_response(fd, cf);
		expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED,
				       15000);
		took[i] = harness_now_ms() - t0;
		close(fd);
	}
	/* 250, 500, 1000 ms: each at least the one before's double, less
	 * the scheduling slack. */
	assert_true(took[0] >= 200);
	assert_true(took[1] >= 450);
	assert_true(took[2] >= 950);
	{
		/* Held back: while a failure's delay runs, the next
		 * exchange of its address waits for its turn... */
		int fd = raw_from(fx->b.port, 60), fd2;
		long long t0;

		raw_challenge(fd, &sc, "web", sf, sizeof(sf));
		assert_true(scram_client_final(&sc, "wrong", sf, cf,
					       sizeof(cf)) > 0);
		send_response(fd, cf);
		usleep(100 * 1000); /* the failure is counted */
		fd2 = raw_from(fx->b.port, 60);
		t0 = harness_now_ms();
		raw_challenge(fd2, &sc, "web", sf, sizeof(sf));
		assert_true(harness_now_ms() - t0 >= 1500);
		close(fd2);
		expect_error_and_close(fd, RINGMQ__ERROR_CODE__UNAUTHENTICATED,
				       15000);
		close(fd);
		/* ... while a fresh address authenticates at once. */
		fd = raw_from(fx->b.port, 61);
		t0 = harness_now_ms();
		raw_auth(fd, "web", WEB_PW, NULL);
		assert_true(harness_now_ms() - t0 < 500);
		close(fd);
	}
}

/* Users live in the data directory: after a restart, without the
 * bootstrap file, they still authenticate. */
static void
test_auth_users_survive_a_restart(void **state)
{
	struct fixture *fx = *state;
	const char *flags[] = { "--auth", "on", NULL };
	ringmq_client *web;

	ringmq_client_free(fx->admin);
	fx->admin = NULL;
	assert_int_equal(harness_stop(&fx->b), 0);
	unlink(fx->boot);
	assert_int_equal(harness_start(&fx->b, flags), 0);
	fx->admin = connect_as(fx, "admin", fx->admin_pw);
	web = connect_as(fx, "web", fx->web_pw);
	assert_int_equal(pub(web, "jobs.a", "x"), RINGMQ_OK);
	ringmq_client_free(web);
}

static void
test_auth_quota_max_connections(void **state)
{
	struct fixture *fx = *state;
	ringmq_opts *o = ringmq_opts_new();
	ringmq_client *first, *c = NULL;
	char why[512];

	assert_int_equal(
		ringmq_user_set_limit(fx->admin, "web", "max-connections", 1),
		RINGMQ_OK);
	first = connect_as(fx, "web", fx->web_pw);
	assert_int_equal(ringmq_opts_set(o, "server", fx->b.addr, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "reconnect", "false", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "user", "web", NULL, 0), RINGMQ_OK);
	assert_int_equal(ringmq_opts_set(o, "password", WEB_PW, NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_client_connect(&c, o, why, sizeof(why)),
			 RINGMQ_QUOTA_EXCEEDED);
	assert_non_null(strstr(why, "max connections"));
	/* Another user is not counted against it. */
	ringmq_client_free(connect_as(fx, "admin", fx->admin_pw));
	ringmq_client_free(first);
	/* The broker counts the first as gone once it has read the close. */
	{
		long long deadline = harness_now_ms() + 5000;
		int rc;

		while ((rc = ringmq_client_connect(&c, o, why, sizeof(why))) !=
			       RINGMQ_OK &&
		       harness_now_ms() < deadline)
			usleep(20 * 1000);
		assert_int_equal(rc, RINGMQ_OK);
	}
	ringmq_client_free(c);
	ringmq_opts_free(o);
}

struct order {
	int n, bad;
	int next; /* the payload number expected next */
};

static void
on_report(ringmq_client *c, const ringmq_publish_report *r, void *ctx)
{
	struct order *o = ctx;

	(void)c;
	o->n++;
	o->bad += ringmq_publish_report_code(r) != RINGMQ_OK;
}

/* Over its publish rate, a user's batches are refused with a time to
 * wait; the library waits and sends them again, in order: every message
 * is stored once, in the order published, at the rate. */
static void
test_auth_quota_publish_rate(void **state)
{
	struct fixture *fx = *state;
	ringmq_client *web;
	struct order ord = { 0, 0, 0 };
	long long t0;
	uint32_t sub;
	char *metrics;
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

	assert_int_equal(
		ringmq_user_set_limit(fx->admin, "web", "publish-rate", 100),
		RINGMQ_OK);
	{
		char pw[160];

		snprintf(pw, sizeof(pw), "password-file=%s", fx->web_pw);
		web = testlib_connect_with(fx->b.addr, "user=web", pw,
					   "linger-ms=0",
					   "batch-max-messages=10", NULL);
	}
	t0 = harness_now_ms();
	for (int i = 0; i < 300; i++) {
		char text[16];
		ringmq_message *m;

		snprintf(text, sizeof(text), "%d", i);
		m = ringmq_message_new(text, strlen(text));
		assert_int_equal(ringmq_publish_async(web, "jobs.work", m,
						      on_report, &ord),
				 RINGMQ_OK);
		ringmq_message_free(m);
	}
	assert_int_equal(ringmq_client_flush(web, 30000), RINGMQ_OK);
	assert_int_equal(ord.n, 300);
	assert_int_equal(ord.bad, 0);
	/* 100 at once, then 100 a second. */
	assert_true(harness_now_ms() - t0 >= 1500);
	ringmq_client_free(web);

	/* Once each, in order. */
	assert_int_equal(ringmq_subscribe(fx->admin, &sub, "jobs.work", "o",
					  500, RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	for (int i = 0; i < 300; i++) {
		ringmq_delivery *d;
		size_t len;
		const char *p;
		char want[16];

		assert_int_equal(ringmq_next(fx->admin, &d, 5000), RINGMQ_OK);
		p = ringmq_delivery_payload(d, &len);
		snprintf(want, sizeof(want), "%d", i);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(p, want, len);
		ringmq_delivery_free(d);
	}
	metrics = testlib_http(fx->b.http_addr, req, sizeof(req) - 1);
	assert_non_null(strstr(metrics,
			       "ringmq_user_published_messages_total{user="
			       "\"web\"} 300"));
	assert_null(strstr(metrics,
			   "ringmq_user_publish_refused_total{user=\"web\"} "
			   "0\n"));
	free(metrics);
}

/* With max-leases, deliveries to all the user's connections stop at the
 * limit and go on as leases end. */
static void
test_auth_quota_max_leases(void **state)
{
	struct fixture *fx = *state;
	ringmq_client *w1 = connect_as(fx, "web", fx->web_pw);
	ringmq_client *w2 = connect_as(fx, "web", fx->web_pw);
	ringmq_delivery *d[3];
	uint32_t s1, s2;
	uint64_t id;

	assert_int_equal(
		ringmq_user_set_limit(fx->admin, "web", "max-leases", 2),
		RINGMQ_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pub(fx->admin, "jobs.work", "w"), RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(w1, &s1, "jobs.work", "g", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_subscribe(w2, &s2, "jobs.work", "g", 10,
					  RINGMQ_START_EARLIEST),
			 RINGMQ_OK);
	assert_int_equal(ringmq_next(w1, &d[0], 5000), RINGMQ_OK);
	assert_int_equal(ringmq_next(w1, &d[1], 5000), RINGMQ_OK);
	/* Two held between them: nothing more to either. */
	assert_int_equal(ringmq_next(w1, &d[2], 300), RINGMQ_TIMEOUT);
	assert_int_equal(ringmq_next(w2, &d[2], 300), RINGMQ_TIMEOUT);
	id = ringmq_delivery_lease_id(d[0]);
	assert_int_equal(ringmq_ack(w1, &id, 1, NULL), RINGMQ_OK);
	assert_true(ringmq_next(w1, &d[2], 2000) == RINGMQ_OK ||
		    ringmq_next(w2, &d[2], 2000) == RINGMQ_OK);
	ringmq_delivery_free(d[0]);
	ringmq_delivery_free(d[1]);
	ringmq_delivery_free(d[2]);
	/* Raising the limit lets the rest go at once. */
	assert_int_equal(
		ringmq_user_set_limit(fx->admin, "web", "max-leases", 0),
		RINGMQ_OK);
	assert_int_equal(ringmq_next(w2, &d[0], 2000), RINGMQ_OK);
	ringmq_delivery_free(d[0]);
	ringmq_client_free(w1);
	ringmq_client_free(w2);
}

/* Runs the CLI with args, env ("NAME=VALUE" or NULL) added. @return its
 * exit code; its standard output into out (size bytes) when not NULL. */
static int
run_cli(const char *env, char *out, size_t size, const char *const *args)
{
	const char *argv[32];
	int argc = 0, pipefd[2], status;
	pid_t pid;
	size_t n = 0;
	ssize_t r;

	argv[argc++] = harness_program("RINGMQ_CLI");
	for (int i = 0; args[i] != NULL; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No controlling terminal: nothing to prompt on. */
		(void)setsid();
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		if (env != NULL)
			putenv((char *)env);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (out != NULL && n + 1 < size &&
	       (r = read(pipefd[0], out + n, size - n - 1)) > 0)
		n += (size_t)r;
	if (out != NULL)
		out[n] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_auth_cli_manages_users_and_acls(void **state)
{
	struct fixture *fx = *state;
	char out[4096];
	const char *add[] = {
		"--server",   fx->b.addr, "--user", "admin", "--password-file",
		fx->admin_pw, "user",	  "add",    "ops",   NULL
	};
	const char *acl[] = { "--server",
			      fx->b.addr,
			      "--user",
			      "admin",
			      "--password-file",
			      fx->admin_pw,
			      "acl",
			      "set",
			      "ops",
			      "jobs.*",
			      "consume,admin",
			      NULL };
	const char *list[] = {
		"--server",   fx->b.addr, "--user", "admin", "--password-file",
		fx->admin_pw, "--json",	  "acl",    "list",  "ops",
		NULL
	};
	const char *bad[] = { "--server", fx->b.addr, "acl",  "set",
			      "ops",	  "jobs.*",   "read", NULL };
	const char *noflag[] = { "--server", fx->b.addr,   "user", "add",
				 "ops2",     "--password", "x",	   NULL };
	const char *as_ops[] = { "--server", fx->b.addr, "--user", "ops",
				 "queue",    "purge",	 "jobs.a", NULL };
	char pwfile_env[128];

	assert_int_equal(run_cli("RINGMQ_NEW_PASSWORD=ops-pass", NULL, 0, add),
			 0);
	assert_int_equal(run_cli(NULL, NULL, 0, add), 2); /* no terminal */
	assert_int_equal(run_cli("RINGMQ_NEW_PASSWORD=ops-pass", NULL, 0, add),
			 1); /* USER_EXISTS */
	assert_int_equal(run_cli(NULL, NULL, 0, acl), 0);
	assert_int_equal(run_cli(NULL, out, sizeof(out), list), 0);
	assert_non_null(strstr(out, "\"pattern\":\"jobs.*\""));
	assert_non_null(strstr(out, "\"perms\":\"consume,admin\""));
	assert_int_equal(run_cli(NULL, NULL, 0, bad), 2);
	assert_int_equal(run_cli(NULL, NULL, 0, noflag), 2);
	/* The password from the file the environment names. */
	{
		char pw[64];

		testlib_write_temp(pw, "ops-pass\n");
		snprintf(pwfile_env, sizeof(pwfile_env),
			 "RINGMQ_PASSWORD_FILE=%s", pw);
		assert_int_equal(run_cli(pwfile_env, out, sizeof(out), as_ops),
				 0);
		unlink(pw);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_on_needs_a_first_user_from_a_file),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_auth_library_connects_with_the_right_password_only),
		T(test_auth_every_request_unauthenticated_is_refused),
		T(test_auth_every_request_without_permission_is_denied),
		T(test_auth_permissions_follow_patterns),
		T(test_auth_revocation_ends_subscriptions_and_connections),
		T(test_auth_replayed_and_broken_exchanges_fail),
		T(test_auth_failures_slow_down_their_address),
		T(test_auth_users_survive_a_restart),
		T(test_auth_cli_manages_users_and_acls),
		T(test_auth_quota_max_connections),
		T(test_auth_quota_publish_rate),
		T(test_auth_quota_max_leases),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
