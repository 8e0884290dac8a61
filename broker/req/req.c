/*
 * req: see req.h. The helpers every handler family shares.
 */
#include "req/req.h"

#include <errno.h>
#include <stdlib.h>

#include "core/queue.h"
#include "lib/err.h"
#include "net/conn.h"

/* ------------------------------------------------------ queues, groups */

/* A context for request f (conn_req_new), extra bytes past it; answers
 * ENOMEM itself when there is no memory. */
struct conn_req *
req_new(struct conn *c, const Ringmq__Frame *f, size_t extra)
{
	struct conn_req *r = conn_req_new(c, f, extra);

	if (r == NULL)
		conn_send_rc(c, f->request_id, -ENOMEM);
	return r;
}

void
req_drop(struct conn_req *r)
{
	(void)conn_unref_live(r->c);
	free(r);
}

void
req_abort(struct conn_req *r, int rc)
{
	if (conn_unref_live(r->c))
		conn_send_rc(r->c, r->request_id, rc);
	free(r);
}

struct queue *
req_find_queue(struct conn *c, const Ringmq__Frame *f, const char *name)
{
	struct queue *q = queues_find(conn_env_of(c)->qs, name);

	if (q == NULL || q->is_pending) {
		conn_send_rc(c, f->request_id, -RMQ_EQUEUE_NOT_FOUND);
		return NULL;
	}
	return q;
}
