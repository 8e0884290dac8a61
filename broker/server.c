/*
 * server: see server.h.
 */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cluster/cluster.h"
#include "ownership.h"
#include "core/group.h"
#include "core/queue.h"
#include "core/users.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "dashboard.h"
#include "metrics.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/addr.h"
#include "net/loop.h"
#include "net/sdnotify.h"
#include "net/tls.h"
#include "req/auth.h"
#include "req/req.h"
#include "req/session.h"
#include "scram.h"
#include "store/store.h"

#define RING_ENTRIES	 4096u
#define RECV_BUFS	 512u	/* provided buffers, a power of two */
#define RECV_BUF_BYTES	 32768u /* bytes each */
#define SHUTDOWN_POLL_MS 20

/* A listening socket: of plaintext clients, or of TLS ones. */
struct listener {
	struct server *srv;  /* borrowed: its owner */
	int fd;		     /* -1: not listening */
	struct tls_ctx *tls; /* borrowed from the server; NULL: plaintext */
	struct loop_op accept_op;
	int is_accepting; /* accept op in flight */
	char bound[300];  /* HOST:PORT it is bound to */
};

struct server {
	const struct config *cfg;
	struct store *store;
	struct queues *qs;
	struct groups *gs;
	struct users *users;
	struct auth_env *auth;
	struct loop *loop;
	struct conn_env env;
	struct req_env req;
	struct stats stats;
	struct listener plain;	  /* --listen */
	struct listener secure;	  /* --tls-listen */
	struct tls_ctx *tls;	  /* owned; NULL without --tls-listen */
	struct tls_ctx *http_tls; /* owned; NULL without --http-tls */
	int signal_fd;
	struct http *http;	/* NULL when --http off */
	struct dashboard *dash; /* with http */
	/* Cluster mode: the coordination thread and the latest view it
	 * read (NULL until the first). */
	struct cluster *cluster;
	struct cluster_view *view;
	struct ownership *own; /* the view as the queues' owner tables */
	struct loop_op cluster_op;
	uint64_t cluster_ev; /* eventfd counter read */
	int cluster_fd;
	struct loop_op store_op;
	struct loop_op signal_op;
	uint64_t store_ev;		 /* eventfd counter read */
	struct signalfd_siginfo siginfo; /* signalfd read */
	int is_stopping;
	int is_goodbye_sent;
	uint64_t stop_deadline_ms;
	uint64_t next_sweep_ms;	   /* monotonic: next idle connection sweep */
	uint64_t denied;	   /* clients refused since the last log */
	uint64_t denied_logged_ms; /* monotonic */
	/* The service manager (systemd's notify protocol); NULL outside
	 * it. The watchdog is pinged from the loop, so a stuck loop stops
	 * the pings. */
	struct sdnotify *notify;
	uint64_t watchdog_ms;	   /* 0: no watchdog */
	uint64_t next_watchdog_ms; /* monotonic */
	size_t status_queues;	   /* in the last STATUS sent */
	size_t status_conns;
};

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open file limit: %s",
				 strerror(errno));
	}
}

/* --------------------------------------------------------------- load */

static int
load_user(void *ctx, const struct store_user *u)
{
	struct server *srv = ctx;

	return users_load(srv->users, u);
}

static int
load_queue(void *ctx, const struct store_queue *q)
{
	struct server *srv = ctx;

	return queues_load_queue(srv->qs, q);
}

static int
load_partition(void *ctx, uint32_t qid, uint32_t part, uint64_t next_offset)
{
	struct server *srv = ctx;

	return queues_load_partition(srv->qs, qid, part, next_offset);
}

static int
load_message(void *ctx, uint32_t qid, uint32_t part, uint64_t offset,
	     uint32_t msg_bytes, uint64_t publish_ms, uint64_t deliver_at_ms)
{
	struct server *srv = ctx;
	(void)publish_ms;
	return queues_load_message(srv->qs, qid, part, offset, msg_bytes,
				   deliver_at_ms);
}

static int
load_private(void *ctx, uint32_t qid, uint32_t part, uint64_t offset)
{
	struct server *srv = ctx;

	return queues_load_private(srv->qs, qid, part, offset);
}

static int
load_dedup(void *ctx, uint32_t qid, uint32_t part, const void *id, uint16_t len,
	   uint64_t offset, uint64_t publish_ms)
{
	struct server *srv = ctx;

	return queues_load_dedup(srv->qs, qid, part, id, len, offset,
				 publish_ms);
}

static int
load_producer(void *ctx, uint32_t qid, uint32_t part, uint64_t producer_id,
	      const struct store_producer *p)
{
	struct server *srv = ctx;

	return queues_load_producer(srv->qs, qid, part, producer_id, p);
}

static int
load_group(void *ctx, const struct store_group *g)
{
	struct server *srv = ctx;

	return groups_load_group(srv->gs, srv->qs, g);
}

static int
load_group_state(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
		 uint64_t ack_floor, const struct offset_run *runs,
		 uint32_t nruns)
{
	struct server *srv = ctx;

	return groups_load_state(srv->gs, srv->qs, qid, gid, part, ack_floor,
				 runs, nruns);
}

static int
load_failure(void *ctx, uint32_t qid, uint32_t gid, uint32_t part,
	     uint64_t offset, const struct store_failure *f)
{
	struct server *srv = ctx;

	return groups_load_failure(srv->gs, srv->qs, qid, gid, part, offset, f);
}

static void
add_recovered(void *ctx, struct queue *q)
{
	uint64_t *t = ctx, m, b, d;

	queue_totals(q, &m, &b, &d);
	t[0] += m;
	t[1] += b;
	t[2] += d;
}

static void
recount_acked(void *ctx, struct queue *q)
{
	(void)ctx;
	groups_recount_acked(q);
}

static int
server_recover(struct server *srv)
{
	static const struct store_load_cb cb = {
		.user = load_user,
		.queue = load_queue,
		.partition = load_partition,
		.message = load_message,
		.private_message = load_private,
		.group = load_group,
		.group_state = load_group_state,
		.failure = load_failure,
		.dedup = load_dedup,
		.producer = load_producer,
	};
	uint64_t start = clock_mono_ms();
	int rc;

	rc = store_load(srv->store, &cb, srv);
	if (rc == 0)
		rc = queues_load_done(srv->qs);
	if (rc < 0) {
		log_error("recovery failed: %s", err_str(rc));
		return rc;
	}
	queues_each(srv->qs, recount_acked, NULL);
	{
		uint64_t totals[3] = { 0, 0, 0 };

		queues_each(srv->qs, add_recovered, totals);
		log_info("recovered %zu users, %zu queues, %llu messages (%llu "
			 "bytes, %llu delayed) in %llu ms",
			 users_count(srv->users), queues_count(srv->qs),
			 (unsigned long long)totals[0],
			 (unsigned long long)totals[1],
			 (unsigned long long)totals[2],
			 (unsigned long long)(clock_mono_ms() - start));
	}
	return 0;
}

/* ---------------------------------------------------------- bootstrap */

static void
bootstrap_done(void *ctx, int status)
{
	*(int *)ctx = status;
}

/* Commits ch before the broker serves anyone. @return 0 or a code. */
static int
bootstrap_change(struct server *srv, const struct user_change *ch)
{
	int status = 1;
	int rc = users_change(srv->users, ch, bootstrap_done, &status);

	if (rc < 0)
		return rc;
	store_drain(srv->store);
	(void)store_reap(srv->store);
	return status;
}

/*
 * With auth on and no user yet: makes the user of --auth-bootstrap-file
 * (one line NAME:PASSWORD) admin of every queue. A file, never a flag:
 * flags show in ps. @return 0, or 2 (the set-up is wrong: exit 2).
 */
static int
server_bootstrap(struct server *srv)
{
	const char *path = srv->cfg->auth_bootstrap_file;
	struct user_change add = { .kind = USER_ADD, .has_keys = true };
	struct user_change grant = { .kind = USER_ACL_SET, .bits = USER_ALL };
	char line[SCRAM_USER_MAX + SCRAM_PASSWORD_MAX + 8], *colon;
	size_t n;
	FILE *f;
	int rc;

	if (srv->cfg->auth != CONFIG_AUTH_ON)
		return 0;
	if (users_count(srv->users) > 0) {
		if (path[0] != '\0')
			log_info("auth-bootstrap-file %s not read: users exist",
				 path);
		return 0;
	}
	if (path[0] == '\0') {
		log_error(
			"auth on and no user yet: give the first one with "
			"--auth-bootstrap-file (a file holding NAME:PASSWORD)");
		return 2;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		log_error("auth-bootstrap-file %s: %s", path, strerror(errno));
		return 2;
	}
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	colon = strchr(line, ':');
	if (colon == NULL || strchr(line, '\n') != NULL) {
		log_error(
			"auth-bootstrap-file %s: expected one line NAME:PASSWORD",
			path);
		rc = 2;
		goto out;
	}
	*colon = '\0';
	if (!user_name_ok(line)) {
		log_error("auth-bootstrap-file %s: user names are 1 to 128 "
			  "characters of [A-Za-z0-9._@-]",
			  path);
		rc = 2;
		goto out;
	}
	memcpy(add.name, line, strlen(line) + 1); /* fits: checked */
	add.iterations = USER_DEFAULT_ITERATIONS;
	add.salt_len = 16;
	rc = scram_random(add.salt, add.salt_len);
	if (rc == 0)
		rc = scram_salted_keys(colon + 1, add.salt, add.salt_len,
				       add.iterations, add.stored_key,
				       add.server_key);
	if (rc < 0) {
		log_error("auth-bootstrap-file %s: %s (passwords are 1 to 1024 "
			  "printable ASCII characters)",
			  path, scram_strerror(rc));
		rc = 2;
		goto out;
	}
	memcpy(grant.name, add.name, sizeof(grant.name));
	grant.pattern[0] = '*';
	rc = bootstrap_change(srv, &add);
	if (rc == 0)
		rc = bootstrap_change(srv, &grant);
	if (rc != 0) {
		log_error("cannot store the bootstrap user: %s", err_str(rc));
		rc = 1;
		goto out;
	}
	log_warn("audit: made user %s, admin of every queue, from %s; the file "
		 "is no longer read: remove it",
		 add.name, path);
out:
	explicit_bzero(line, sizeof(line));
	explicit_bzero(&add, sizeof(add));
	return rc;
}

/* ------------------------------------------------------------- listen */

/* Binds l to addr ("HOST:PORT"). */
static int
server_listen(struct listener *l, const char *addr)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], portstr[8], hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
	uint16_t port;
	int fd = -1, one = 1, rc;

	if (config_split_hostport(addr, host, sizeof(host), &port) < 0)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		log_error("listen %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    addr_bind(fd, ai->ai_addr, ai->ai_addrlen, addr) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		rc = -errno;
		log_error("listen %s: %s", addr, strerror(errno));
		goto fail;
	}
	rc = getnameinfo((struct sockaddr *)&ss, sslen, hbuf, sizeof(hbuf),
			 pbuf, sizeof(pbuf), NI_NUMERICHOST | NI_NUMERICSERV);
	if (rc != 0) {
		rc = -EINVAL;
		goto fail;
	}
	snprintf(l->bound, sizeof(l->bound),
		 ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, pbuf);
	freeaddrinfo(ai);
	l->fd = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

/* The plaintext listener unless listen is off, and the TLS one with its
 * certificate when tls-listen is set. */
static int
server_open_listeners(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	char why[512];

	if (strcmp(cfg->listen, "off") != 0 &&
	    server_listen(&srv->plain, cfg->listen) < 0)
		return -1;
	if (cfg->tls_listen[0] == '\0')
		return 0;
	struct tls_files f = {
		.cert = cfg->tls_cert,
		.key = cfg->tls_key,
		.ca = cfg->tls_ca,
		.client_auth =
			cfg->tls_client_auth == CONFIG_TLS_CLIENT_AUTH_REQUIRE
				? TLS_CLIENT_AUTH_REQUIRE
			: cfg->tls_client_auth ==
					CONFIG_TLS_CLIENT_AUTH_OPTIONAL
				? TLS_CLIENT_AUTH_OPTIONAL
				: TLS_CLIENT_AUTH_NONE,
	};
	if (tls_ctx_open(&srv->tls, &f, why, sizeof(why)) < 0) {
		log_error("cannot set up TLS: %s", why);
		return -1;
	}
	srv->secure.tls = srv->tls;
	return server_listen(&srv->secure, cfg->tls_listen);
}

/* The HTTPS port's context: the same certificate, no client ones (the
 * HTTP port has its token for who may ask). */
static int
server_open_http_tls(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	struct tls_files f = {
		.cert = cfg->tls_cert,
		.key = cfg->tls_key,
		.client_auth = TLS_CLIENT_AUTH_NONE,
	};
	char why[512];

	if (!cfg->is_http_tls)
		return 0;
	if (tls_ctx_open(&srv->http_tls, &f, why, sizeof(why)) < 0) {
		log_error("cannot set up HTTPS: %s", why);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------- operations */

static void
arm_accept(struct listener *l)
{
	if (loop_accept(l->srv->loop, l->fd, &l->accept_op) == 0)
		l->is_accepting = 1;
	else
		log_error("cannot submit accept on %s", l->bound);
}

/* A refused connection is held only to answer its hello with the refusal,
 * so that the client reads a reason rather than a reset: a frame of a few
 * KiB at most, for a few seconds, and only so many at once (more are
 * closed at once), so that refused peers cannot take the room or the
 * memory of the ones served. */
#define REFUSED_FRAME_BYTES 4096u
#define REFUSED_LIFETIME_MS 5000u
#define REFUSED_MAX	    256u

static void
server_refuse(struct listener *l, int fd, int code, const char *why)
{
	struct server *srv = l->srv;
	struct conn *c;

	if (srv->env.restricted >= REFUSED_MAX) {
		close(fd);
		return;
	}
	if (conn_open(&srv->env, fd, l->tls, &c) == 0) {
		conn_restrict(c, REFUSED_FRAME_BYTES, REFUSED_LIFETIME_MS);
		session_refuse(c, code, why);
	}
}

#define PROTECTED_WHY                                                       \
	"the broker accepts only clients on its own host: it runs without " \
	"auth configured (ringmqd --auth off accepts every client)"

/* 1 if the client on fd may not connect: not on the broker's host while
 * no auth is configured. Logged, at most once a second. */
static int
server_is_protected_from(struct server *srv, int fd)
{
	uint64_t now_ms;

	if (srv->cfg->auth != CONFIG_AUTH_LOOPBACK || addr_peer_is_loopback(fd))
		return 0;
	srv->stats.refused_other_host++;
	srv->denied++;
	now_ms = clock_mono_ms();
	if (now_ms - srv->denied_logged_ms >= 1000) {
		log_warn("refused %llu connection(s) from other hosts: no auth "
			 "is configured (--auth off accepts them)",
			 (unsigned long long)srv->denied);
		srv->denied = 0;
		srv->denied_logged_ms = now_ms;
	}
	return 1;
}

static void
on_accept(struct loop_op *op, int res, uint32_t flags)
{
	struct listener *l = op->data;
	struct server *srv = l->srv;

	if (!loop_op_more(flags))
		l->is_accepting = 0;
	if (res >= 0) {
		if (srv->is_stopping)
			close(res);
		/* Refused first, so that refused peers never count against
		 * the ones served. */
		else if (server_is_protected_from(srv, res))
			server_refuse(l, res,
				      RINGMQ__ERROR_CODE__PERMISSION_DENIED,
				      PROTECTED_WHY);
		/* Closed ones finishing (a FIN out, reading to the peer's
		 * EOF for up to half a second) and refused ones held for
		 * their answer do not hold a client back; at most as many
		 * again bound the descriptors. */
		else if (srv->env.count - srv->env.closing -
					 srv->env.restricted >=
				 srv->cfg->max_connections ||
			 srv->env.count >=
				 2 * (size_t)srv->cfg->max_connections +
					 REFUSED_MAX) {
			srv->stats.refused_too_many++;
			server_refuse(l, res,
				      RINGMQ__ERROR_CODE__TOO_MANY_CONNECTIONS,
				      "too many connections");
		} else if (conn_open(&srv->env, res, l->tls, NULL) < 0)
			log_warn("cannot set up a connection");
	} else if (res != -ECANCELED) {
		log_warn("accept: %s", strerror(-res));
	}
	if (!l->is_accepting && !srv->is_stopping)
		arm_accept(l);
	if (!l->is_accepting && srv->is_stopping && l->fd >= 0) {
		/* Stopped accepting: a new connect is refused at once
		 * rather than left waiting in the backlog. */
		close(l->fd);
		l->fd = -1;
	}
}

static void
arm_store(struct server *srv)
{
	if (loop_read(srv->loop, store_event_fd(srv->store), &srv->store_ev,
		      sizeof(srv->store_ev), &srv->store_op) < 0)
		log_error("cannot submit the store event read");
}

static void
on_store(struct loop_op *op, int res, uint32_t flags)
{
	struct server *srv = op->data;

	(void)flags;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		log_error("store event: %s", strerror(-res));
	store_reap(srv->store);
	arm_store(srv);
}

static void
arm_cluster(struct server *srv)
{
	if (loop_read(srv->loop, srv->cluster_fd, &srv->cluster_ev,
		      sizeof(srv->cluster_ev), &srv->cluster_op) < 0)
		log_error("cannot submit the cluster event read");
}

/* A new view of the cluster from the coordination thread: kept for the
 * dashboard, and said in the log when what this broker owns changed. */
static void
on_cluster(struct loop_op *op, int res, uint32_t flags)
{
	struct server *srv = op->data;
	struct cluster_view *v;

	(void)flags;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		log_error("cluster event: %s", strerror(-res));
	v = cluster_take_view(srv->cluster);
	if (v != NULL) {
		const struct cluster_view *was = srv->view;

		if (was == NULL || v->owned != was->owned ||
		    v->partitions != was->partitions ||
		    v->nbrokers != was->nbrokers ||
		    strcmp(v->controller, was->controller) != 0)
			log_info("cluster: %zu brokers, controller %s; this "
				 "broker owns %zu of %zu partitions",
				 v->nbrokers,
				 v->controller[0] ? v->controller : "(none)",
				 v->owned, v->partitions);
		if (ownership_apply(srv->own, v, srv->qs) == 0)
			srv->req.cluster = ownership_cluster(srv->own);
		else
			log_error("cluster: no memory for the new view; "
				  "partitions stay placed as before");
		cluster_view_free(srv->view);
		srv->view = v;
	}
	if (!srv->is_stopping)
		arm_cluster(srv);
}

static void
cluster_define_local(void *ctx, struct queue *q)
{
	struct server *srv = ctx;

	if (!q->is_pending)
		(void)cluster_define_queue(srv->cluster, q->name,
					   q->partitions);
}

/* req_env's hook: a queue created here is defined cluster-wide. */
static void
on_queue_defined(void *ctx, const char *name, uint32_t partitions)
{
	struct server *srv = ctx;

	if (srv->cluster != NULL)
		(void)cluster_define_queue(srv->cluster, name, partitions);
}

/* Cluster mode: joins through etcd on the coordination thread.
 * @return 0, or -1 (said). */
static int
server_open_cluster(struct server *srv, const char *bound)
{
	const struct config *cfg = srv->cfg;
	char id[64], advertise[320], host[320];
	struct cluster_cfg cc = { 0 };
	uint16_t port;
	int rc;

	if (cfg->broker_id[0] != '\0') {
		snprintf(id, sizeof(id), "%s", cfg->broker_id);
	} else if (gethostname(id, sizeof(id)) < 0) {
		log_error("broker-id: cannot read the host name: %s",
			  strerror(errno));
		return -1;
	}
	id[sizeof(id) - 1] = '\0';
	snprintf(advertise, sizeof(advertise), "%s",
		 cfg->advertise[0] ? cfg->advertise : bound);
	if (config_split_hostport(advertise, host, sizeof(host), &port) < 0 ||
	    strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
		log_error("cluster: clients cannot reach %s: set advertise to "
			  "this broker's address",
			  advertise);
		return -1;
	}
	cc.name = cfg->cluster;
	cc.broker_id = id;
	cc.advertise = advertise;
	cc.etcd = cfg->etcd;
	cc.etcd_user = cfg->etcd_user[0] ? cfg->etcd_user : NULL;
	cc.etcd_password = cfg->etcd_user[0] ? cfg->etcd_password : NULL;
	cc.etcd_ca = cfg->etcd_ca[0] ? cfg->etcd_ca : NULL;
	cc.lease_ms = cfg->cluster_lease_ms;
	if ((srv->own = ownership_new(cfg->cluster, id)) == NULL) {
		log_error("cluster %s: no memory", cfg->cluster);
		return -1;
	}
	rc = cluster_start(&srv->cluster, &cc, &srv->cluster_fd);
	if (rc < 0) {
		log_error("cluster %s: %s (cluster and broker-id: "
			  "[A-Za-z0-9._-]; etcd: http:// or https:// URLs)",
			  cfg->cluster, strerror(-rc));
		return -1;
	}
	log_info("cluster %s: broker %s at %s, etcd %s", cfg->cluster, id,
		 advertise, cfg->etcd);
	srv->cluster_op = (struct loop_op){ .cb = on_cluster, .data = srv };
	arm_cluster(srv);
	queues_each(srv->qs, cluster_define_local, srv);
	return 0;
}

static void
arm_signal(struct server *srv)
{
	if (loop_read(srv->loop, srv->signal_fd, &srv->siginfo,
		      sizeof(srv->siginfo), &srv->signal_op) < 0)
		log_error("cannot submit the signal read");
}

/* What a shutdown keeps in hand after stopping its loop, for freeing
 * what connections still queue, the store's last checkpoint and the
 * process's exit: a quarter of the timeout, up to 500 ms. 100 ms left
 * too little under a loaded machine (seen: exit 980 ms into a 1 s
 * timeout). */
static uint64_t
shutdown_margin_ms(uint64_t timeout_ms)
{
	return timeout_ms / 4 < 500 ? timeout_ms / 4 : 500;
}

/* SIGHUP: the TLS certificate, key and CA are read again. Connections
 * open keep the ones they began with; new ones get the new ones. */
static void
server_reload_tls(struct server *srv)
{
	struct tls_ctx *const ctxs[] = { srv->tls, srv->http_tls };
	const char *const names[] = { "TLS", "HTTPS" };
	char why[512];

	if (srv->tls == NULL && srv->http_tls == NULL) {
		log_info("received SIGHUP: no TLS listener, nothing to reload");
		return;
	}
	for (size_t i = 0; i < 2; i++) {
		if (ctxs[i] == NULL)
			continue;
		if (tls_ctx_reload(ctxs[i], why, sizeof(why)) < 0) {
			log_error("received SIGHUP: %s certificate not "
				  "reloaded, the current one stays: %s",
				  names[i], why);
			continue;
		}
		log_info("received SIGHUP: %s certificate reloaded from %s; "
			 "new connections use it",
			 names[i], srv->cfg->tls_cert);
	}
}

static void
on_signal(struct loop_op *op, int res, uint32_t flags)
{
	struct server *srv = op->data;

	(void)flags;
	if (res == (int)sizeof(srv->siginfo) &&
	    srv->siginfo.ssi_signo == SIGHUP) {
		server_reload_tls(srv);
	} else if (res == (int)sizeof(srv->siginfo) && !srv->is_stopping) {
		log_info("received %s: shutting down",
			 strsignal((int)srv->siginfo.ssi_signo));
		sdnotify_send(srv->notify,
			      "STOPPING=1\nSTATUS=stopping: confirming what "
			      "was received, %zu connections",
			      srv->env.count);
		srv->is_stopping = 1;
		srv->req.is_shutting_down = 1;
		/* Exit within the timeout: the loop stops a margin before it
		 * (a poll period, closing the store). */
		srv->stop_deadline_ms =
			clock_mono_ms() + srv->cfg->shutdown_timeout_ms -
			shutdown_margin_ms(srv->cfg->shutdown_timeout_ms);
		groups_stop_dispatch(srv->gs);
		/* HTTP stays: /healthz answers 503 until the loop ends. */
		if (srv->plain.is_accepting)
			(void)loop_cancel(srv->loop, &srv->plain.accept_op);
		if (srv->secure.is_accepting)
			(void)loop_cancel(srv->loop, &srv->secure.accept_op);
	}
	arm_signal(srv);
}

/* Shutdown after the signal: commit and confirm what was received, then
 * goodbye; stop once every connection is gone or the time is up. */
static int64_t
server_stop_step(struct server *srv)
{
	if (!srv->is_goodbye_sent) {
		store_drain(srv->store);
		store_reap(srv->store);
		(void)groups_tick(srv->gs); /* flush acks the reap answered */
		store_drain(srv->store);
		store_reap(srv->store);
		conn_goodbye_all(&srv->env);
		conn_flush_all(&srv->env);
		srv->is_goodbye_sent = 1;
	}
	conn_sweep_lingering(&srv->env, clock_mono_ms());
	if (srv->env.count == 0 && !srv->plain.is_accepting &&
	    !srv->secure.is_accepting) {
		http_stop(srv->http);
		loop_stop(srv->loop);
		return 0;
	}
	if (clock_mono_ms() >= srv->stop_deadline_ms) {
		log_warn("shutdown timeout: closing %zu connections",
			 srv->env.count);
		http_stop(srv->http);
		loop_stop(srv->loop);
		return 0;
	}
	return SHUTDOWN_POLL_MS;
}

/* Tells the service manager what the broker holds, when it changed
 * (systemctl status shows it). */
static void
server_status(struct server *srv)
{
	size_t nq = queues_count(srv->qs);

	if (srv->notify == NULL || srv->is_stopping ||
	    (nq == srv->status_queues && srv->env.count == srv->status_conns))
		return;
	srv->status_queues = nq;
	srv->status_conns = srv->env.count;
	sdnotify_send(srv->notify,
		      "STATUS=serving: %zu queues, %zu connections", nq,
		      srv->env.count);
}

static int64_t
server_tick(void *ctx)
{
	struct server *srv = ctx;
	int64_t due, next, auth_due;
	uint64_t now;

	/* Confirms what this pass's requests stored, when the journal takes
	 * it without a sync, before the dispatch below delivers it. */
	store_flush(srv->store);
	due = queues_tick(srv->qs);
	next = groups_tick(srv->gs);
	now = clock_mono_ms();
	auth_due = auth_tick(&srv->req, now);

	if (auth_due >= 0 && (due < 0 || auth_due < due))
		due = auth_due;

	if (now >= srv->next_sweep_ms) {
		uint64_t period = srv->cfg->idle_timeout_ms / 4;
		conn_sweep(&srv->env, now);
		http_sweep(srv->http);
		srv->next_sweep_ms = now + (period < 1000 ? period : 1000);
		server_status(srv);
	}
	if (srv->dash != NULL) {
		int64_t d = (int64_t)dashboard_tick(srv->dash, now);

		if (next < 0 || d < next)
			next = d;
	}
	if (srv->watchdog_ms > 0) {
		if (now >= srv->next_watchdog_ms) {
			sdnotify_send(srv->notify, "WATCHDOG=1");
			srv->next_watchdog_ms = now + srv->watchdog_ms;
		}
		if (next < 0 || (int64_t)(srv->next_watchdog_ms - now) < next)
			next = (int64_t)(srv->next_watchdog_ms - now);
	}
	if (next < 0 || (int64_t)(srv->next_sweep_ms - now) < next)
		next = (int64_t)(srv->next_sweep_ms - now);
	if (due >= 0 && (next < 0 || due < next))
		next = due;
	conn_flush_all(&srv->env);
	if (srv->is_stopping) {
		int64_t s = server_stop_step(srv);

		if (next < 0 || s < next)
			next = s;
	}
	/* What the ticks above stored (acks, redeliveries) waits for the
	 * next pass's store_flush: no sleeping before it. */
	if (store_has_deferred(srv->store))
		next = 0;
	return next;
}

static void
on_visible(void *ctx, struct queue *q, uint32_t part)
{
	struct server *srv = ctx;

	(void)part;
	groups_wake_queue(srv->gs, q);
}

static void
http_metrics(void *ctx, struct http_body *b)
{
	struct server *srv = ctx;

	metrics_render(b, &srv->stats, srv->env.count, srv->qs, srv->store);
	metrics_render_users(b, srv->users, auth_failures(srv->auth));
	if (srv->cluster != NULL)
		metrics_render_cluster(b, srv->view);
}

static int
http_health(void *ctx, struct http_body *b)
{
	struct server *srv = ctx;

	/* The loop answering proves it responsive; storage must commit. */
	if (!store_is_writable(srv->store)) {
		http_body_printf(b, "storage is not writable\n");
		return 0;
	}
	if (srv->is_stopping) {
		http_body_printf(b, "shutting down\n");
		return 0;
	}
	http_body_printf(b, "ok\n");
	return 1;
}

static void
http_serve(void *ctx, struct http_conn *c, const struct http_request *r)
{
	struct server *srv = ctx;

	dashboard_serve(srv->dash, c, r);
}

static int
server_signals(struct server *srv)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	srv->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	return srv->signal_fd < 0 ? -errno : 0;
}

int
server_run(const struct config *cfg)
{
	struct server srv;
	struct store_opts so;
	const char *bound; /* the address of the "listening on" line */
	int rc, code = 1;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.plain.fd = srv.secure.fd = srv.signal_fd = -1;
	srv.plain.srv = srv.secure.srv = &srv;
	raise_nofile();
	/* libcurl's set-up, before any thread (cluster mode reaches etcd
	 * with it). */
	if (cfg->cluster[0] != '\0' &&
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot set up libcurl");
		return 1;
	}
	srv.cluster_fd = -1;
	if (server_signals(&srv) < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		return 1;
	}
	memset(&so, 0, sizeof(so));
	so.dir = cfg->data_dir;
	so.max_storage_bytes = cfg->max_storage_bytes;
	so.sync = cfg->sync == CONFIG_SYNC_INTERVAL ? STORE_SYNC_INTERVAL
		  : cfg->sync == CONFIG_SYNC_NEVER  ? STORE_SYNC_NEVER
						    : STORE_SYNC_ALWAYS;
	so.sync_interval_ms = cfg->sync_interval_ms;
	so.journal = cfg->is_journal;
	so.journal_max_bytes = cfg->journal_max_bytes;
	if (cfg->config_file[0] != '\0')
		log_info("config file %s", cfg->config_file);
	rc = store_open(&srv.store, &so);
	if (rc < 0) {
		log_error("cannot open data directory %s: %s", cfg->data_dir,
			  err_str(rc));
		goto out;
	}
	if (queues_new(&srv.qs, srv.store, cfg, on_visible, &srv) < 0 ||
	    groups_new(&srv.gs, srv.store, srv.qs,
		       store_boot_epoch(srv.store)) < 0 ||
	    users_new(&srv.users, srv.store) < 0) {
		log_error("out of memory");
		goto out;
	}
	_Static_assert(STORE_SECRET_LEN == SCRAM_KEY_LEN,
		       "the store's secret keys the stand-in salts");
	if (auth_env_new(&srv.auth, store_secret(srv.store)) < 0) {
		log_error("out of memory");
		goto out;
	}
	if (server_recover(&srv) < 0)
		goto out;
	rc = server_bootstrap(&srv);
	if (rc != 0) {
		code = rc;
		goto out;
	}
	rc = loop_open(&srv.loop, RING_ENTRIES, RECV_BUFS, RECV_BUF_BYTES);
	if (rc < 0) {
		log_error("io_uring set-up failed: %s", strerror(-rc));
		goto out;
	}
	if (server_open_listeners(&srv) < 0 || server_open_http_tls(&srv) < 0)
		goto out;
	bound = srv.plain.fd >= 0 ? srv.plain.bound : srv.secure.bound;
	srv.stats.start_ms = clock_mono_ms();
	srv.req.qs = srv.qs;
	srv.req.gs = srv.gs;
	srv.req.store = srv.store;
	srv.req.cfg = cfg;
	srv.req.stats = &srv.stats;
	srv.req.conns = &srv.env;
	srv.req.boot_epoch = store_boot_epoch(srv.store);
	srv.req.users = srv.users;
	srv.req.auth = srv.auth;
	srv.req.queue_defined = on_queue_defined;
	srv.req.queue_defined_ctx = &srv;
	users_set_hook(srv.users, auth_user_changed, &srv.req);
	groups_set_quota_room(srv.gs, auth_quota_room, &srv.req);
	srv.env.loop = srv.loop;
	srv.env.cfg = cfg;
	srv.env.stats = &srv.stats;
	srv.env.ops = &session_conn_ops;
	srv.env.ops_ctx = &srv.req;
	srv.plain.accept_op =
		(struct loop_op){ .cb = on_accept, .data = &srv.plain };
	srv.secure.accept_op =
		(struct loop_op){ .cb = on_accept, .data = &srv.secure };
	srv.store_op = (struct loop_op){ .cb = on_store, .data = &srv };
	srv.signal_op = (struct loop_op){ .cb = on_signal, .data = &srv };
	if (srv.plain.fd >= 0)
		arm_accept(&srv.plain);
	if (srv.secure.fd >= 0)
		arm_accept(&srv.secure);
	arm_store(&srv);
	arm_signal(&srv);
	log_info("ringmqd %s listening on %s, data %s, sync %s", RINGMQ_VERSION,
		 bound, cfg->data_dir,
		 cfg->sync == CONFIG_SYNC_ALWAYS     ? "always"
		 : cfg->sync == CONFIG_SYNC_INTERVAL ? "interval"
						     : "never");
	/* The "listening on" line names the plaintext listener when there
	 * is one: scripts and tests that know only that line go on working.
	 * The TLS address is always in this line of the log. */
	if (srv.secure.fd >= 0)
		log_info("tls listening on %s", srv.secure.bound);
	if (cfg->cluster[0] != '\0' && server_open_cluster(&srv, bound) < 0)
		goto out;
	if (cfg->auth == CONFIG_AUTH_OFF)
		log_warn("auth off: every client that reaches %s may publish, "
			 "consume and manage every queue",
			 bound);
	else if (cfg->auth == CONFIG_AUTH_ON)
		log_info("auth on: %zu users; clients from any host "
			 "authenticate (SCRAM-SHA-256)",
			 users_count(srv.users));
	else
		log_info("no auth configured: only clients on this host "
			 "(loopback addresses) are accepted; --auth off "
			 "accepts every client");
	if (strcmp(cfg->http, "off") != 0) {
		static const struct http_handlers none;
		struct http_handlers hh = none;
		char hbound[300];

		struct dashboard_env de = {
			.cfg = cfg,
			.qs = srv.qs,
			.gs = srv.gs,
			.users = srv.users,
			.auth = srv.auth,
			.store = srv.store,
			.stats = &srv.stats,
			.connections = &srv.env.count,
			.cluster = srv.cluster ? cfg->cluster : NULL,
			.coordinator = &srv.cluster,
			.view = &srv.view,
		};

		if (dashboard_new(&srv.dash, &de) < 0) {
			log_error("out of memory");
			goto out;
		}
		hh.metrics = http_metrics;
		hh.health = http_health;
		hh.serve = http_serve;
		hh.ctx = &srv;
		hh.token = cfg->http_token[0] != '\0' ? cfg->http_token : NULL;
		hh.is_open = cfg->auth == CONFIG_AUTH_OFF;
		hh.tls = srv.http_tls;
		if (http_open(&srv.http, srv.loop, cfg->http, &hh, hbound,
			      sizeof(hbound)) < 0) {
			log_error("cannot listen for http on %s", cfg->http);
			goto out;
		}
		printf("listening on %s\nhttp on %s\n", bound, hbound);
		log_info("http on %s", hbound);
	} else {
		printf("listening on %s\n", bound);
	}
	fflush(stdout);
	/* Ready: recovered, listening, serving from the first loop pass. */
	srv.notify = sdnotify_open();
	srv.watchdog_ms = sdnotify_watchdog_ms(srv.notify);
	srv.next_watchdog_ms = clock_mono_ms();
	srv.status_queues = queues_count(srv.qs);
	sdnotify_send(srv.notify,
		      "READY=1\nMAINPID=%ld\nSTATUS=serving: %zu queues, 0 "
		      "connections",
		      (long)getpid(), srv.status_queues);
	rc = loop_run(srv.loop, server_tick, &srv);
	code = rc < 0 ? 1 : 0;
	store_drain(srv.store);
	store_reap(srv.store);
	log_info("stopped");
out:
	if (srv.plain.fd >= 0)
		close(srv.plain.fd);
	if (srv.secure.fd >= 0)
		close(srv.secure.fd);
	loop_close(srv.loop);
	http_close(srv.http);
	dashboard_free(srv.dash);
	/* Leaves the cluster: its lease ends now. */
	cluster_stop(srv.cluster);
	cluster_view_free(srv.view);
	srv.req.cluster = NULL;
	if (cfg->cluster[0] != '\0')
		curl_global_cleanup();
	/* A backup still running answers no one: its connection goes. */
	if (srv.store != NULL)
		store_backup_abandon(srv.store);
	conn_free_all(&srv.env);
	/* After the connections: an answer may name an owner it keeps. */
	ownership_free(srv.own, srv.qs);
	groups_free(srv.gs);
	queues_free(srv.qs);
	store_close(srv.store);
	users_free(srv.users);
	auth_env_free(srv.auth);
	/* After the connections: none holds it any more. */
	tls_ctx_close(srv.tls);
	tls_ctx_close(srv.http_tls);
	if (srv.signal_fd >= 0)
		close(srv.signal_fd);
	sdnotify_close(srv.notify);
	return code;
}
