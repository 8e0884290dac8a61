/*
 * publish: the Publish request. Its answer, PublishOk, is encoded by hand
 * straight into the connection's output (see wire.h): it is the hottest
 * answer there is.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/queue.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/stats.h"
#include "net/conn.h"
#include "req/req.h"
#include "req/session.h"
#include "req/wire.h"

static void
published(void *ctx, const struct publish_result *res, size_t n)
{
	struct req_ctx *p = ctx;
	struct conn *c = p->c;
	uint8_t *out;

	stats_observe(&req_env_of(c)->stats->confirm_latency,
		      (double)(clock_mono_us() - p->start_us) / 1e6);
	if (!conn_unref_live(c))
		goto out;
	if (conn_is_dead(c))
		goto out;
	out = conn_out_reserve(c, wire_publish_ok_size(p->request_id, res, n));
	if (out == NULL) {
		req_send_rc(c, p->request_id, -ENOMEM);
		goto out;
	}
	conn_out_commit(c, wire_publish_ok_encode(p->request_id, res, n, out));
out:
	free(p);
}

void
req_publish(struct conn *c, const Ringmq__Frame *f)
{
	struct session *se = session_of(c);
	struct req_ctx *p;
	int rc;

	if (se->env->is_shutting_down) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__SHUTTING_DOWN,
			       "broker is shutting down");
		return;
	}
	if (f->publish->n_messages == 0) {
		req_send_error(c, f->request_id,
			       RINGMQ__ERROR_CODE__INVALID_ARGUMENT,
			       "publish without messages");
		return;
	}
	p = req_new(c, f, 0);
	if (p == NULL)
		return;
	rc = queue_publish(se->env->qs, f->publish, se->producer_id, published,
			   p);
	if (rc < 0)
		req_abort(p, rc);
}
