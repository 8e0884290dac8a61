/*
 * admin: the broker-wide requests: stats and backup.
 */
#include "req/req.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/group.h"
#include "core/queue.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "net/conn.h"
#include "req/session.h"
#include "store/store.h"

/* ---------------------------------------------------------------- stats */

void
req_stats(struct conn *c, const Ringmq__Frame *f)
{
	struct req_env *env = req_env_of(c);
	Ringmq__StatsOk ok = RINGMQ__STATS_OK__INIT;
	struct groups_totals t;
	struct queue_counters counted;
	uint64_t used, map;
	struct {
		const char *name;
		double value;
	} rows[] = {
		{ "connections", (double)env->conns->count },
		{ "queues", 0 },
		{ "groups", 0 },
		{ "messages", 0 },
		{ "message_bytes", 0 },
		{ "ready", 0 },
		{ "delayed", 0 },
		{ "in_flight", 0 },
		{ "storage_used_bytes", 0 },
		{ "storage_limit_bytes", 0 },
		{ "uptime_ms", 0 },
		{ "published_total", 0 },
		{ "delivered_total", 0 },
		{ "acked_total", 0 },
	};
	enum { NROWS = sizeof(rows) / sizeof(rows[0]) };
	Ringmq__Stat st[NROWS];
	Ringmq__Stat *sp[NROWS];

	groups_totals(env->qs, &t);
	store_usage(env->store, &used, &map);
	rows[1].value = (double)t.queues;
	rows[2].value = (double)t.groups;
	rows[3].value = (double)t.messages;
	rows[4].value = (double)t.bytes;
	rows[5].value = (double)t.ready;
	rows[6].value = (double)t.delayed;
	rows[7].value = (double)t.in_flight;
	rows[8].value = (double)used;
	rows[9].value = (double)map;
	rows[10].value = (double)(clock_mono_ms() - env->stats->start_ms);
	queues_counter_totals(env->qs, &counted);
	rows[11].value = (double)counted.published;
	rows[12].value = (double)counted.delivered;
	rows[13].value = (double)counted.acked;
	for (size_t i = 0; i < NROWS; i++) {
		ringmq__stat__init(&st[i]);
		st[i].name = (char *)rows[i].name;
		st[i].value = rows[i].value;
		sp[i] = &st[i];
	}
	ok.n_stats = NROWS;
	ok.stats = sp;
	req_answer(c, f->request_id, RINGMQ__FRAME__BODY_STATS_OK, &ok);
}

/* --------------------------------------------------------------- backup */

struct backup_req {
	struct req_ctx r;
	uint64_t bytes; /* written by the store's backup thread */
};

/* The code for a failed backup: the path's fault, the disk's, or ours. */
static Ringmq__ErrorCode
backup_error_code(int status)
{
	switch (status) {
	case -ENOENT:
	case -ENOTDIR:
	case -EISDIR:
	case -EEXIST:
	case -EACCES:
	case -EPERM:
	case -EROFS:
	case -ENAMETOOLONG: return RINGMQ__ERROR_CODE__INVALID_ARGUMENT;
	case -ENOSPC:
	case -EDQUOT:
	case -RMQ_ESTORAGE_FULL: return RINGMQ__ERROR_CODE__STORAGE_FULL;
	default: return RINGMQ__ERROR_CODE__INTERNAL;
	}
}

static void
backed_up(void *ctx, int status)
{
	struct backup_req *b = ctx;
	Ringmq__BackupOk ok = RINGMQ__BACKUP_OK__INIT;

	if (conn_unref_live(b->r.c)) {
		if (status < 0) {
			req_send_error(b->r.c, b->r.request_id,
				       backup_error_code(status),
				       err_str(status));
		} else {
			ok.bytes = b->bytes;
			req_answer(b->r.c, b->r.request_id,
				   RINGMQ__FRAME__BODY_BACKUP_OK, &ok);
		}
	}
	free(b);
}

/* 1 if path has a "." or ".." component (or an empty one). */
static int
has_dot_component(const char *path)
{
	for (const char *p = path; *p != '\0';) {
		size_t n;

		p += strspn(p, "/");
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p += n;
	}
	return 0;
}

/* 1 if path (absolute, no dot components) is dir or lies under it, its
 * existing part resolved through symbolic links: a link inside dir that
 * points out of it does not lead a backup out. */
static int
is_under(const char *path, const char *dir)
{
	char real_dir[PATH_MAX], real[PATH_MAX], part[PATH_MAX];
	size_t len;

	if (realpath(dir, real_dir) == NULL ||
	    snprintf(part, sizeof(part), "%s", path) >= (int)sizeof(part))
		return 0;
	/* The deepest part of path that exists decides: what follows it
	 * is made by the backup, and holds no link. */
	while (realpath(part, real) == NULL) {
		char *slash = strrchr(part, '/');

		if (errno != ENOENT || slash == NULL || part[1] == '\0')
			return 0;
		slash[slash == part] = '\0'; /* "/x" goes on with "/" */
	}
	len = strlen(real_dir);
	return strncmp(real, real_dir, len) == 0 &&
	       (real[len] == '\0' || real[len] == '/' ||
		(len == 1 && real_dir[0] == '/'));
}

/* NULL if c may have a backup written at path, else why not: under
 * backup-dir when one is configured; when none is, anywhere, but only
 * for a client on the broker's own host. */
static const char *
backup_refusal(struct conn *c, const char *path)
{
	const char *dir = req_env_of(c)->cfg->backup_dir;

	if (dir[0] == '\0')
		return conn_is_local(c)
			       ? NULL
			       : "a backup asked from another host needs the "
				 "broker's backup-dir";
	if (has_dot_component(path) || !is_under(path, dir))
		return "the backup path must lie under the broker's "
		       "backup-dir";
	return NULL;
}

void
req_backup(struct conn *c, const Ringmq__Frame *f)
{
	const char *path = f->backup->path;
	const char *why;
	struct backup_req *b;
	int rc;

	if (path[0] != '/') {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "the backup path must be absolute (a directory "
			       "on the broker's host)");
		return;
	}
	why = backup_refusal(c, path);
	if (why != NULL) {
		log_warn("backup to %s refused for conn %llu from %s: %s", path,
			 (unsigned long long)conn_id(c), conn_peer(c), why);
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__PERMISSION_DENIED, why);
		return;
	}
	b = (struct backup_req *)req_new(c, f, sizeof(*b) - sizeof(b->r));
	if (b == NULL)
		return;
	rc = store_backup(req_env_of(c)->store, path, &b->bytes, backed_up, b);
	if (rc < 0) {
		req_drop(&b->r);
		req_send_error(
			c, f->request_id, RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			rc == -EBUSY	? "a backup is already running"
			: rc == -EEXIST ? "the directory already holds data"
					: err_str(rc));
	}
}
