/*
 * The coordination store on a real etcd (one member, on 127.0.0.1 with
 * free ports and a temporary data directory, stopped by its PID),
 * through its v3 JSON gateway: revisions, transactions and leases as the
 * in-memory store has them; the controller's election, placement and
 * fencing; a dead endpoint skipped for the next; an etcd that stopped
 * answering; and three real brokers in cluster mode placing a queue's
 * partitions, one killed -9 and restarted, one stopped. Skipped (77)
 * where there is no etcd (Debian: etcd-server).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#include "cluster/controller.h"
#include "cluster/coord.h"
#include "harness.h"
#include "ringmq.h"
#include "testlib.h"

static pid_t etcd_pid;
static char etcd_dir[64];
static char endpoint[64];

/* A port nobody listens on now. */
static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static const char *
etcd_path(void)
{
	const char *env = getenv("RINGMQ_ETCD");

	if (env != NULL)
		return env;
	return access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : NULL;
}

static struct coord
connect_etcd(const char *endpoints)
{
	struct coord_etcd_cfg cfg = { .endpoints = endpoints,
				      .timeout_ms = 2000 };
	struct coord c;

	assert_int_equal(coord_etcd_open(&c, &cfg), 0);
	return c;
}

/* Starts etcd on two free ports. @return 1 once it answers, 0 when it
 * exited first (a port taken meanwhile: try again). */
static int
etcd_start(const char *etcd)
{
	char client[64], peer[64], cluster[96], member[96];
	long long deadline;
	int status;

	snprintf(client, sizeof(client), "http://127.0.0.1:%d", free_port());
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", free_port());
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	snprintf(endpoint, sizeof(endpoint), "%s", client);
	etcd_pid = fork();
	assert_true(etcd_pid >= 0);
	if (etcd_pid == 0) {
		char data[96];
		int null = open("/dev/null", O_WRONLY);

		snprintf(data, sizeof(data), "%s/data", etcd_dir);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(etcd, etcd, "--name", "t", "--data-dir", data,
		      "--listen-client-urls", client, "--advertise-client-urls",
		      client, "--listen-peer-urls", peer,
		      "--initial-advertise-peer-urls", peer,
		      "--initial-cluster", cluster, (char *)NULL);
		_exit(127);
	}
	/* Up once it answers a range, is still running, and has made its
	 * member directory: the answer was ours, not another etcd's on a
	 * port taken between free_port and the bind. */
	snprintf(member, sizeof(member), "%s/data/member", etcd_dir);
	deadline = harness_now_ms() + 20000;
	for (;;) {
		struct coord c = connect_etcd(endpoint);
		struct coord_kvs kvs = { 0 };
		int rc = coord_range(&c, "/", &kvs);

		coord_kvs_free(&kvs);
		coord_close(&c);
		if (waitpid(etcd_pid, &status, WNOHANG) == etcd_pid) {
			etcd_pid = 0;
			return 0;
		}
		if (rc == 0 && access(member, F_OK) == 0)
			return 1;
		assert_true(harness_now_ms() < deadline);
		usleep(100 * 1000);
	}
}

static int
setup(void **state)
{
	const char *etcd = etcd_path();
	int tries = 0;

	(void)state;
	if (etcd == NULL) {
		fprintf(stderr, "test_etcd: no etcd (etcd-server); skipped\n");
		exit(77);
	}
	snprintf(etcd_dir, sizeof(etcd_dir), "/tmp/ringmq-etcd-XXXXXX");
	assert_non_null(mkdtemp(etcd_dir));
	while (!etcd_start(etcd))
		assert_true(++tries < 5);
	return 0;
}

static int
teardown(void **state)
{
	int status;

	(void)state;
	/* Killed outright: a failed test may have left it stopped, where
	 * SIGTERM would wait for ever. */
	if (etcd_pid > 0) {
		kill(etcd_pid, SIGKILL);
		waitpid(etcd_pid, &status, 0);
	}
	return harness_remove_dir(etcd_dir);
}

static void
put(struct coord *c, const char *k, const char *v, int64_t lease)
{
	struct coord_op op = { COORD_PUT, k, v, lease };
	int64_t rev;
	int ok = 0;

	assert_int_equal(coord_txn(c, NULL, 0, &op, 1, &ok, &rev), 0);
	assert_true(ok);
}

static void
test_store_on_etcd(void **state)
{
	struct coord c = connect_etcd(endpoint);
	struct coord_kvs kvs = { 0 };
	const struct coord_kv *kv;
	struct coord_cmp absent = { "/t/a", COORD_CREATE_REV, 0, NULL };
	struct coord_cmp is_one = { "/t/a", COORD_VALUE, 0, "one" };
	struct coord_op op = { COORD_PUT, "/t/a", "two", 0 };
	struct coord_op del = { COORD_DELETE, "/t/b", NULL, 0 };
	int64_t lease, rev, first;
	long long deadline;
	int ok;

	(void)state;
	put(&c, "/t/a", "one", 0);
	put(&c, "/t/b", "", 0);
	put(&c, "/u", "outside the prefix", 0);
	assert_int_equal(coord_txn(&c, &absent, 1, &op, 1, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(coord_range(&c, "/t/", &kvs), 0);
	assert_int_equal(kvs.n, 2);
	kv = coord_kvs_find(&kvs, "/t/a");
	assert_non_null(kv);
	assert_string_equal(kv->value, "one");
	first = kv->create_rev;
	assert_int_equal(kv->mod_rev, first);
	assert_string_equal(coord_kvs_find(&kvs, "/t/b")->value, "");
	/* Compare a value, then two changes in one revision. */
	{
		struct coord_op two[] = { op, del };

		assert_int_equal(coord_txn(&c, &is_one, 1, two, 2, &ok, &rev),
				 0);
		assert_true(ok);
	}
	assert_int_equal(coord_range(&c, "/t/", &kvs), 0);
	assert_int_equal(kvs.n, 1);
	assert_string_equal(kvs.v[0].value, "two");
	assert_int_equal(kvs.v[0].create_rev, first);
	assert_int_equal(kvs.v[0].mod_rev, rev);
	/* A lease not kept alive takes its key. */
	assert_int_equal(coord_lease_grant(&c, 2000, &lease), 0);
	put(&c, "/t/leased", "x", lease);
	assert_int_equal(coord_lease_keepalive(&c, lease), 0);
	deadline = harness_now_ms() + 15000;
	do {
		assert_true(harness_now_ms() < deadline);
		usleep(200 * 1000);
		assert_int_equal(coord_range(&c, "/t/leased", &kvs), 0);
	} while (kvs.n > 0);
	assert_int_equal(coord_lease_keepalive(&c, lease), -ENOENT);
	op = (struct coord_op){ COORD_PUT, "/t/late", "x", lease };
	assert_int_equal(coord_txn(&c, NULL, 0, &op, 1, &ok, &rev), -ENOENT);
	/* Revoking ends a lease at once. */
	assert_int_equal(coord_lease_grant(&c, 60000, &lease), 0);
	put(&c, "/t/revoked", "x", lease);
	assert_int_equal(coord_lease_revoke(&c, lease), 0);
	assert_int_equal(coord_range(&c, "/t/revoked", &kvs), 0);
	assert_int_equal(kvs.n, 0);
	coord_kvs_free(&kvs);
	coord_close(&c);
}

static void
owners(struct controller *c, size_t *held)
{
	memset(held, 0, 3 * sizeof(*held));
	for (uint32_t i = 0; i < 12; i++) {
		char who[CLUSTER_ID_MAX];
		int64_t e;

		assert_int_equal(controller_owner(c, "jobs", i, who, &e), 0);
		assert_true(who[0] == 'b' && who[1] >= '1' && who[1] <= '3');
		held[who[1] - '1']++;
	}
}

/* Three brokers, one controller; it stalls past its lease and another
 * takes over, while the stale one is refused. */
static void
test_controller_on_etcd(void **state)
{
	static const char *const ids[] = { "b1", "b2", "b3" };
	struct coord c[3];
	struct controller b[3];
	size_t held[3];
	long long deadline;

	(void)state;
	for (int i = 0; i < 3; i++) {
		c[i] = connect_etcd(endpoint);
		assert_int_equal(
			controller_init(&b[i], &c[i], "it", ids[i], 2000), 0);
		assert_int_equal(controller_register(&b[i], "127.0.0.1:1"), 0);
	}
	assert_int_equal(controller_campaign(&b[0]), 1);
	assert_int_equal(controller_campaign(&b[1]), 0);
	assert_int_equal(controller_queue_create(&b[0], "jobs", 12), 0);
	assert_int_equal(controller_reconcile(&b[0]), 12);
	owners(&b[0], held);
	assert_int_equal(held[0], 4);
	assert_int_equal(held[1], 4);
	assert_int_equal(held[2], 4);
	/* b1 stops keeping its lease alive; the others go on. */
	deadline = harness_now_ms() + 20000;
	while (controller_campaign(&b[1]) != 1) {
		assert_true(harness_now_ms() < deadline);
		assert_int_equal(controller_keepalive(&b[1], "127.0.0.1:2"), 0);
		assert_int_equal(controller_keepalive(&b[2], "127.0.0.1:3"), 0);
		usleep(300 * 1000);
	}
	assert_true(b[1].epoch > b[0].epoch);
	assert_int_equal(controller_reconcile(&b[0]), -ESTALE);
	assert_int_equal(b[0].epoch, 0);
	assert_int_equal(controller_reconcile(&b[1]), 4);
	owners(&b[1], held);
	assert_int_equal(held[0], 0);
	assert_int_equal(held[1], 6);
	assert_int_equal(held[2], 6);
	for (int i = 0; i < 3; i++)
		coord_close(&c[i]);
}

/* A dead endpoint first in the list: requests go to the next. */
static void
test_endpoints_fail_over(void **state)
{
	char list[160];
	struct coord c;
	struct coord_kvs kvs = { 0 };

	(void)state;
	snprintf(list, sizeof(list), "http://127.0.0.1:%d,%s", free_port(),
		 endpoint);
	c = connect_etcd(list);
	put(&c, "/fo", "x", 0);
	assert_int_equal(coord_range(&c, "/fo", &kvs), 0);
	assert_int_equal(kvs.n, 1);
	coord_kvs_free(&kvs);
	coord_close(&c);
	/* Nothing that is an endpoint: refused at once. */
	{
		struct coord_etcd_cfg bad = { .endpoints = "127.0.0.1:2379" };

		assert_int_equal(coord_etcd_open(&c, &bad), -EINVAL);
	}
}

/* An etcd that stops answering: calls fail with -EIO within the
 * timeout, and work again once it is back. */
static void
test_unreachable_etcd_fails_in_time(void **state)
{
	struct coord c = connect_etcd(endpoint);
	struct coord_kvs kvs = { 0 };
	long long start;

	(void)state;
	kill(etcd_pid, SIGSTOP);
	start = harness_now_ms();
	assert_int_equal(coord_range(&c, "/", &kvs), -EIO);
	assert_true(harness_now_ms() - start < 5000);
	kill(etcd_pid, SIGCONT);
	/* Back within seconds (its raft term may move on first). */
	start = harness_now_ms();
	while (coord_range(&c, "/fo", &kvs) != 0) {
		assert_true(harness_now_ms() - start < 15000);
		usleep(100 * 1000);
	}
	coord_kvs_free(&kvs);
	coord_close(&c);
}

/* The partitions broker id owns in a /api/cluster answer; -1 when the
 * broker is not in it. */
static int
owned_by(const char *json, const char *id)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "{\"id\":\"%s\",", id);
	p = strstr(json, pat);
	if (p == NULL || (p = strstr(p, "\"partitions\":")) == NULL)
		return -1;
	return atoi(p + 13);
}

static char *
cluster_json(struct harness_broker *b)
{
	static const char req[] = "GET /api/cluster HTTP/1.1\r\n\r\n";

	return testlib_http(b->http_addr, req, sizeof(req) - 1);
}

/* Waits (bounded) until b's view has each of b1..b3 owning want[i]
 * partitions (-1: not a member). */
static void
wait_placement(struct harness_broker *b, const int want[3], long long ms)
{
	long long deadline = harness_now_ms() + ms;

	for (;;) {
		char *j = cluster_json(b);
		int got[3] = { owned_by(j, "b1"), owned_by(j, "b2"),
			       owned_by(j, "b3") };

		if (memcmp(got, want, sizeof(got)) == 0) {
			free(j);
			return;
		}
		if (harness_now_ms() >= deadline)
			fail_msg("placement %d/%d/%d, not %d/%d/%d: %s", got[0],
				 got[1], got[2], want[0], want[1], want[2], j);
		free(j);
		usleep(100 * 1000);
	}
}

/* Partition owners of queue "jobs" as broker b answers Metadata, into
 * owner[12] (0..2: an index into bs); 0 once b names 3 brokers and an
 * owner among bs for every partition, -1 before. */
static int
metadata_owners(struct harness_broker *b, struct harness_broker bs[3],
		int owner[12])
{
	static const char *const jobs[] = { "jobs" };
	ringmq_client *c = testlib_connect(b->addr);
	ringmq_metadata *m = NULL;
	int ok = ringmq_metadata_get(c, &m, jobs, 1) == RINGMQ_OK &&
		 ringmq_metadata_broker_count(m) == 3 &&
		 ringmq_metadata_queue_count(m) == 1 &&
		 ringmq_metadata_partition_count(m, 0) == 12 &&
		 strcmp(ringmq_metadata_cluster(m), "three") == 0;

	for (size_t p = 0; ok && p < 12; p++) {
		const char *o = ringmq_metadata_partition_owner(m, 0, p);

		owner[p] = -1;
		for (int k = 0; o != NULL && k < 3; k++)
			if (strcmp(o, bs[k].addr) == 0)
				owner[p] = k;
		ok = owner[p] >= 0 &&
		     ringmq_metadata_partition_epoch(m, 0, p) > 0;
	}
	ringmq_metadata_free(m);
	ringmq_client_free(c);
	return ok ? 0 : -1;
}

/* Every broker answers Metadata alike, the queue created on another
 * one included; a keyed publish to a broker that does not own the key's
 * partition is refused NOT_OWNER, and the owner Metadata names takes
 * it; keyless ones are taken by whichever broker gets them. */
static void
check_routing(struct harness_broker b[3])
{
	int owner[3][12];
	long long deadline = harness_now_ms() + 10000;
	ringmq_message *msgs[12];
	ringmq_publish_results *res = NULL;
	ringmq_client *c;
	int here = 0, elsewhere = 0;

	for (int i = 0; i < 3; i++)
		while (metadata_owners(&b[i], b, owner[i]) < 0 ||
		       (i > 0 &&
			memcmp(owner[i], owner[0], sizeof(owner[0])) != 0)) {
			if (harness_now_ms() >= deadline)
				fail_msg("broker %d's Metadata never agreed",
					 i);
			usleep(100 * 1000);
		}
	for (int i = 0; i < 12; i++) {
		char key[16];

		snprintf(key, sizeof(key), "key-%d", i);
		msgs[i] = ringmq_message_new("x", 1);
		assert_int_equal(
			ringmq_message_set_key(msgs[i], key, strlen(key)),
			RINGMQ_OK);
	}
	c = testlib_connect(b[0].addr);
	(void)ringmq_publish_batch(
		c, "jobs", (const ringmq_message *const *)msgs, 12, &res);
	assert_non_null(res);
	for (size_t i = 0; i < 12; i++) {
		uint32_t p = ringmq_publish_results_partition(res, i);
		int code = ringmq_publish_results_code(res, i);

		assert_true(p < 12);
		if (owner[0][p] == 0) {
			assert_int_equal(code, RINGMQ_OK);
			here++;
		} else {
			ringmq_client *o = testlib_connect(b[owner[0][p]].addr);

			assert_int_equal(code, RINGMQ_NOT_OWNER);
			assert_int_equal(ringmq_publish(o, "jobs", msgs[i], &p,
							NULL, NULL),
					 RINGMQ_OK);
			ringmq_client_free(o);
			elsewhere++;
		}
	}
	assert_true(here > 0 && elsewhere > 0);
	ringmq_publish_results_free(res);
	ringmq_client_free(c);
	for (int i = 0; i < 12; i++)
		ringmq_message_free(msgs[i]);
	/* Keyless messages through any broker: the library gives them the
	 * partitions that broker owns, so every one is taken. */
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 12; k++)
			msgs[k] = ringmq_message_new("y", 1);
		c = testlib_connect(b[i].addr);
		assert_int_equal(ringmq_publish_batch(
					 c, "jobs",
					 (const ringmq_message *const *)msgs,
					 12, &res),
				 RINGMQ_OK);
		for (size_t k = 0; k < 12; k++)
			assert_int_equal(
				owner[0]
				     [ringmq_publish_results_partition(res, k)],
				i);
		ringmq_publish_results_free(res);
		ringmq_client_free(c);
		for (int k = 0; k < 12; k++)
			ringmq_message_free(msgs[k]);
	}
}

/* The page of broker b as headless Chromium renders it (its DOM once
 * the script ran), malloc'ed; NULL where there is no Chromium. */
static char *
rendered_page(struct harness_broker *b)
{
	char profile[] = "/tmp/ringmq-test-XXXXXX", cmd[512];
	size_t n = 0, cap = 1 << 16;
	char *dom;
	FILE *f;

	if (access("/usr/bin/chromium", X_OK) != 0)
		return NULL;
	assert_non_null(mkdtemp(profile));
	snprintf(cmd, sizeof(cmd),
		 "timeout 60 /usr/bin/chromium --headless --no-sandbox "
		 "--disable-gpu --no-first-run --user-data-dir=%s "
		 "--virtual-time-budget=3000 --dump-dom http://%s/ "
		 "2>/dev/null",
		 profile, b->http_addr);
	f = popen(cmd, "r");
	assert_non_null(f);
	dom = malloc(cap);
	assert_non_null(dom);
	for (size_t r; (r = fread(dom + n, 1, cap - n - 1, f)) > 0;) {
		n += r;
		if (n + 1 == cap) {
			dom = realloc(dom, cap *= 2);
			assert_non_null(dom);
		}
	}
	dom[n] = '\0';
	assert_int_equal(pclose(f), 0);
	assert_int_equal(harness_remove_dir(profile), 0);
	return dom;
}

/* Three brokers in cluster mode: a 12-partition queue created on one is
 * placed 4/4/4; the controller killed -9 is declared dead once its lease
 * runs out and its partitions go to the others (6/6); restarted, it gets
 * its share back; a broker stopped cleanly leaves at once (its lease is
 * revoked, not left to expire). */
static void
test_brokers_place_partitions_through_etcd(void **state)
{
	static const char *const ids[] = { "b1", "b2", "b3" };
	struct harness_broker b[3];
	const char *flags[3][13] = { { 0 } };
	ringmq_client *c;
	ringmq_queue_opts *qo;
	char *j, controller[8] = "";
	const char *p;
	int victim = -1;
	long long left;

	(void)state;
	for (int i = 0; i < 3; i++) {
		const char *f[] = {
			"--http", "127.0.0.1:0", "--cluster",
			"three",  "--broker-id", ids[i],
			"--etcd", endpoint,	 "--cluster-lease-ms",
			"3000",	  NULL
		};

		memcpy(flags[i], f, sizeof(f));
		assert_int_equal(testlib_broker_start(&b[i], flags[i]), 0);
	}
	c = testlib_connect(b[0].addr);
	qo = ringmq_queue_opts_new();
	assert_int_equal(ringmq_queue_opts_set(qo, "partitions", "12", NULL, 0),
			 RINGMQ_OK);
	assert_int_equal(ringmq_queue_create(c, "jobs", qo), RINGMQ_OK);
	ringmq_queue_opts_free(qo);
	ringmq_client_free(c);
	wait_placement(&b[2], (const int[]){ 4, 4, 4 }, 15000);
	check_routing(b);
	{
		static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
		char *m = testlib_http(b[2].http_addr, req, sizeof(req) - 1);

		assert_non_null(strstr(m, "\nringmq_cluster_brokers 3\n"));
		assert_non_null(
			strstr(m, "\nringmq_cluster_partitions_owned 4\n"));
		assert_non_null(strstr(m, "\nringmq_cluster_partitions 12\n"));
		free(m);
	}
	/* The dashboard shows the same, in a browser. */
	{
		char *dom = rendered_page(&b[2]);

		if (dom != NULL) {
			const char *row =
				strstr(dom, "<tbody><tr data-broker=\"b1\"");

			assert_non_null(row);
			for (int i = 0; i < 3; i++) {
				row = strstr(row, "data-field=\"partitions\" "
						  "data-value=\"4\"");
				assert_non_null(row);
				row++;
			}
			assert_non_null(strstr(dom, ">controller</td>"));
			free(dom);
		}
	}
	j = cluster_json(&b[2]);
	assert_non_null(strstr(j, "\"owners\":["));
	p = strstr(j, "\"controller\":\"");
	assert_non_null(p);
	assert_int_equal(sscanf(p + 14, "%7[^\"]", controller), 1);
	free(j);
	victim = controller[1] - '1';
	assert_true(victim >= 0 && victim < 3);
	assert_true(harness_kill(&b[victim], SIGKILL) >= 0);
	{
		int want[3] = { 6, 6, 6 };

		want[victim] = -1;
		wait_placement(&b[(victim + 1) % 3], want, 20000);
	}
	/* Back, with its data directory: its share again. */
	assert_int_equal(harness_start(&b[victim], flags[victim]), 0);
	wait_placement(&b[(victim + 1) % 3], (const int[]){ 4, 4, 4 }, 20000);
	/* A clean stop revokes the lease: gone well before it expires. */
	{
		int stopped = (victim + 2) % 3, want[3] = { 6, 6, 6 };

		want[stopped] = -1;
		assert_int_equal(testlib_broker_stop(&b[stopped]), 0);
		left = harness_now_ms();
		wait_placement(&b[victim], want, 20000);
		assert_true(harness_now_ms() - left < 2500);
	}
	for (int i = 0; i < 3; i++)
		if (i != (victim + 2) % 3)
			assert_int_equal(testlib_broker_stop(&b[i]), 0);
}

/* A broker in cluster mode stops within its shutdown timeout even while
 * etcd does not answer: the coordination thread's request in flight is
 * cancelled, and the lease is left to expire. */
static void
test_broker_stops_in_time_with_etcd_frozen(void **state)
{
	const char *flags[] = { "--http",
				"127.0.0.1:0",
				"--cluster",
				"frozen",
				"--broker-id",
				"f1",
				"--etcd",
				endpoint,
				"--cluster-lease-ms",
				"15000",
				"--shutdown-timeout-ms",
				"3000",
				NULL };
	struct harness_broker b;
	long long start;
	int status;

	(void)state;
	assert_int_equal(testlib_broker_start(&b, flags), 0);
	{
		long long deadline = harness_now_ms() + 10000;

		/* Joined once its view names it. */
		for (;;) {
			char *j = cluster_json(&b);
			int in = strstr(j, "{\"id\":\"f1\",") != NULL;

			free(j);
			if (in)
				break;
			assert_true(harness_now_ms() < deadline);
			usleep(100 * 1000);
		}
	}
	kill(etcd_pid, SIGSTOP);
	usleep(200 * 1000);
	start = harness_now_ms();
	status = harness_kill(&b, SIGTERM);
	kill(etcd_pid, SIGCONT);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(harness_now_ms() - start < 3000);
	harness_cleanup(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_on_etcd),
		cmocka_unit_test(test_controller_on_etcd),
		cmocka_unit_test(test_endpoints_fail_over),
		cmocka_unit_test(test_brokers_place_partitions_through_etcd),
		cmocka_unit_test(test_broker_stops_in_time_with_etcd_frozen),
		cmocka_unit_test(test_unreachable_etcd_fails_in_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
