/*
 * publish: the publish path of the queues (see queue.h, queue_publish):
 * each message checked and routed, dedup ids and producer sequences
 * (idem.c) consulted, offsets assigned, the batch handed to the store, and
 * the results answered on commit (or on receipt with sync=interval, once
 * the offsets are reserved).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/idem.h"
#include "core/queue.h"
#include "core/queue_int.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "partition_rule.h"

struct publish_req {
	struct queues *qs;
	uint32_t qid;
	int has_producer; /* the producer's batch was recorded */
	uint32_t producer_part;
	uint64_t producer_id, producer_seq;
	char **dedup_ids; /* owned: per message, to forget on failure */
	struct {
		uint32_t part;
		uint64_t reserved;
	} * reserves; /* owned: offset reservations this publish stores */
	size_t nreserves;
	uint64_t msgs, bytes; /* stored by this request, for the limits */
	uint64_t failures_at; /* q->publish_failures when it arrived */
	int has_pending_dups; /* some result is_pending_dup */
	int is_confirmed;     /* sync=interval: confirmed on receipt */
	publish_done_fn done;
	void *ctx;
	size_t n;
	struct publish_result res[]; /* one per message */
};

#define QUEUE_FULL_WHY "queue over its max depth or bytes"

static void
publish_refuse(struct publish_result *r, int code, const char *why)
{
	r->code = code;
	r->why = why;
}

/* The next partition in turn for a message that names none and has no
 * key: in cluster mode, among those served here (the first one in turn
 * when none is, which the caller refuses with its owner). */
static uint32_t
publish_next_here(struct queue *q)
{
	uint32_t first = q->rr_part++ % q->partitions;

	if (q->owners == NULL)
		return first;
	for (uint32_t i = 0; i < q->partitions; i++) {
		uint32_t p = (first + i) % q->partitions;

		if (q->owners[p].is_here || q->owners[p].addr == NULL) {
			q->rr_part = p + 1;
			return p;
		}
	}
	return first;
}

/* Chooses the partition of message m, or refuses it in r. */
static int
publish_route(struct queue *q, const struct publish_batch *p,
	      const struct publish_msg *m, struct publish_result *r)
{
	int has_named = m->has_partition || p->has_partition;
	uint32_t named = m->has_partition ? m->partition : p->partition;
	/* An empty key or dedup id is none: it is stored and read back as
	 * none, so it cannot route as one. */
	int has_key = m->has_key && m->key_len > 0;
	int has_dedup = m->dedup_id != NULL && m->dedup_id[0] != '\0';
	int has_hash = has_key || has_dedup;
	uint32_t hashed = 0;

	if (has_key)
		hashed = partition_rule_for_key(m->key, m->key_len,
						q->partitions);
	else if (has_dedup)
		hashed = partition_rule_for_key(
			m->dedup_id, strlen(m->dedup_id), q->partitions);
	if (has_named && named >= q->partitions) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       "partition out of range");
		return -1;
	}
	if (has_named && has_hash && named != hashed) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       "partition disagrees with the key hash");
		return -1;
	}
	if (has_named)
		r->partition = named;
	else if (has_hash)
		r->partition = hashed;
	else
		r->partition = publish_next_here(q);
	if (q->owners != NULL && !q->owners[r->partition].is_here &&
	    q->owners[r->partition].addr != NULL) {
		r->owner = q->owners[r->partition].addr;
		r->owner_epoch = q->owners[r->partition].epoch;
		publish_refuse(r, -RMQ_ENOT_OWNER,
			       "partition served by another broker");
		return -1;
	}
	return 0;
}

/* What m will count for once stored (store_msg_bytes): the frame
 * bounds every length, so the sum cannot wrap. */
static uint64_t
publish_msg_bytes(const struct publish_msg *m)
{
	uint64_t n = m->payload_len;

	if (m->has_key)
		n += m->key_len;
	if (m->dedup_id != NULL)
		n += strlen(m->dedup_id);
	for (size_t i = 0; i < m->n_headers; i++)
		n += 6u + m->headers[i].name_len + m->headers[i].value_len;
	return n;
}

/* Checks header i of m; 0 if acceptable. */
static int
publish_check_header(const struct publish_msg *m, size_t i,
		     struct publish_result *r)
{
	const char *name = m->headers[i].name;
	size_t len = m->headers[i].name_len;

	if (len == 0 || len > QUEUE_MAX_FIELD_BYTES) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       len == 0 ? "empty header name"
					: "header name over 65535 bytes");
		return -1;
	}
	/* Reserved in any case: a consumer that matches names without
	 * regard to case must not take a client's header for the broker's. */
	if (len >= 7 && strncasecmp(name, "ringmq-", 7) == 0) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       "header prefix ringmq- is reserved");
		return -1;
	}
	/* Headers are a map (string -> bytes): a name once. */
	for (size_t k = 0; k < i; k++)
		if (m->headers[k].name_len == len &&
		    memcmp(m->headers[k].name, name, len) == 0) {
			publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
				       "header name given twice");
			return -1;
		}
	return 0;
}

/* Checks message m against limits and reserved names; 0 if acceptable,
 * with r->msg_bytes set. */
static int
publish_check(const struct config *cfg, const struct publish_msg *m,
	      struct publish_result *r)
{
	uint64_t bytes = publish_msg_bytes(m);

	if (bytes > cfg->max_message_bytes) {
		publish_refuse(r, -RMQ_EMESSAGE_TOO_LARGE,
			       "message over max-message-bytes (payload, "
			       "key, headers and dedup id together)");
		return -1;
	}
	r->msg_bytes = (uint32_t)bytes; /* within the limit, so it fits */
	if (m->has_deliver_at_ms && m->has_delay_ms) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       "deliver_at_ms and delay_ms together");
		return -1;
	}
	if (m->has_key && m->key_len > QUEUE_MAX_FIELD_BYTES) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       "key over 65535 bytes");
		return -1;
	}
	if (m->dedup_id != NULL &&
	    (m->dedup_id[0] == '\0' ||
	     strlen(m->dedup_id) > QUEUE_MAX_FIELD_BYTES)) {
		publish_refuse(r, -RMQ_EINVALID_ARGUMENT,
			       m->dedup_id[0] == '\0'
				       ? "empty dedup id"
				       : "dedup id over 65535 bytes");
		return -1;
	}
	for (size_t i = 0; i < m->n_headers; i++)
		if (publish_check_header(m, i, r) < 0)
			return -1;
	return 0;
}

/* Adds message m, routed to r->partition and counted by publish_check
 * (r->msg_bytes), to b at a new offset. */
static int
publish_put(struct queue *q, const struct publish_msg *m, uint64_t now_ms,
	    struct publish_result *r, struct store_batch *b)
{
	struct store_msg sm;
	int rc;

	memset(&sm, 0, sizeof(sm));
	sm.publish_ms = now_ms;
	if (m->has_deliver_at_ms && m->deliver_at_ms > now_ms)
		sm.deliver_at_ms = m->deliver_at_ms;
	else if (m->has_delay_ms && m->delay_ms > 0)
		sm.deliver_at_ms = sat_add(now_ms, m->delay_ms);
	r->deliver_at_ms = sm.deliver_at_ms;
	sm.key = m->has_key ? m->key : NULL;
	sm.key_len = m->has_key ? (uint32_t)m->key_len : 0;
	sm.headers = m->headers;
	sm.header_count = (uint32_t)m->n_headers;
	sm.dedup_id = m->dedup_id;
	sm.dedup_len = m->dedup_id ? (uint16_t)strlen(m->dedup_id) : 0;
	sm.payload = m->payload;
	sm.payload_len = (uint32_t)m->payload_len;
	r->offset = q->parts[r->partition].next_offset;
	rc = store_batch_put_msg(b, q->qid, r->partition, r->offset, &sm);
	if (rc < 0)
		return rc;
	q->parts[r->partition].next_offset++;
	return 0;
}

/* Copies the dedup ids of stored messages, to forget them if the commit
 * fails. Nothing is allocated for publishes without dedup ids. */
static int
publish_keep_ids(struct publish_req *r, const struct publish_batch *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (!r->res[i].is_stored || p->msgs[i].dedup_id == NULL)
			continue;
		if (r->dedup_ids == NULL &&
		    (r->dedup_ids = calloc(r->n, sizeof(char *))) == NULL)
			return -ENOMEM;
		r->dedup_ids[i] = strdup(p->msgs[i].dedup_id);
		if (r->dedup_ids[i] == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void
publish_forget(struct queue *q, struct publish_req *r)
{
	for (size_t i = 0; r->dedup_ids && i < r->n; i++)
		if (r->dedup_ids[i] != NULL)
			idem_dedup_forget(q->idem, r->res[i].partition,
					  r->dedup_ids[i],
					  (uint16_t)strlen(r->dedup_ids[i]),
					  r->res[i].offset);
}

static int
reserve_add(struct publish_req *r, uint32_t part, uint64_t reserved)
{
	void *v =
		realloc(r->reserves, (r->nreserves + 1) * sizeof(*r->reserves));

	if (v == NULL)
		return -ENOMEM;
	r->reserves = v;
	r->reserves[r->nreserves].part = part;
	r->reserves[r->nreserves].reserved = reserved;
	r->nreserves++;
	return 0;
}

static void
publish_req_free(struct publish_req *r)
{
	free(r->reserves);
	for (size_t i = 0; r->dedup_ids && i < r->n; i++)
		free(r->dedup_ids[i]);
	free(r->dedup_ids);
	free(r);
}

static void publish_rerecord(struct queue *q, const struct publish_req *r);

/*
 * A duplicate of a publish that was not committed yet (a client retrying
 * fast, or resending after a reconnect) is answered only after that
 * commit, so that its confirm is as durable as the original's. If a
 * publish to the queue failed meanwhile, maybe the original, it gets that
 * error instead: the original's dedup entry is gone then, so a retry
 * stores the message.
 */
static void
pending_dups_settle(const struct queue *q, struct publish_req *r, int status)
{
	int err = status;

	if (err == 0 && q == NULL)
		err = -RMQ_EQUEUE_NOT_FOUND;
	if (err == 0 && q->publish_failures != r->failures_at)
		err = q->last_failure;
	if (err == 0)
		return;
	for (size_t i = 0; i < r->n; i++)
		if (r->res[i].is_pending_dup && r->res[i].code == 0) {
			r->res[i].code = err;
			r->res[i].why = "the first publish of this message "
					"failed; publish it again";
		}
}

/* Completion of a publish that stored nothing but waited for the commit
 * of the originals of its duplicates (an empty batch behind them). */
static void
publish_dups_done(void *arg, int status)
{
	struct publish_req *r = arg;
	struct queue *q = queues_find_id(r->qs, r->qid);

	pending_dups_settle(q, r, status);
	if (q != NULL && r->has_producer)
		publish_rerecord(q, r);
	r->done(r->ctx, r->res, r->n);
	publish_req_free(r);
}

static void
publish_done(void *arg, int status)
{
	struct publish_req *r = arg;
	struct queue *q = queues_find_id(r->qs, r->qid);
	if (q != NULL && status < 0) {
		publish_forget(q, r);
		q->publish_failures++;
		q->last_failure = status;
	}
	for (size_t i = 0; status == 0 && i < r->nreserves; i++)
		reserve_durable(q, r->reserves[i].part,
				r->reserves[i].reserved);
	if (q != NULL) {
		q->pending_ops--;
		q->pending_msgs -= r->msgs;
		q->pending_bytes -= r->bytes;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct publish_result *res = &r->res[i];
		/* Offsets were assigned in order, so each stored one is the
		 * next of its partition's index. */
		if (!res->is_stored)
			continue;
		if (status < 0) {
			res->code = status;
			res->why = err_str(status);
		}
		if (q == NULL)
			continue;
		if (status == 0)
			q->counters.published++;
		if (status == 0 && res->deliver_at_ms != 0) {
			queue_index(q, res->partition, res->offset, PART_HOLE);
			if (delayed_add(r->qs, q, res->partition, res->offset,
					res->deliver_at_ms, res->msg_bytes) < 0)
				log_error("queue %s: out of memory delaying "
					  "offset %llu",
					  q->name,
					  (unsigned long long)res->offset);
			continue;
		}
		queue_index(q, res->partition, res->offset,
			    status < 0 ? PART_HOLE : res->msg_bytes);
	}
	if (q != NULL && status == 0) {
		for (size_t i = 0; i < r->n; i++)
			if (r->res[i].is_stored)
				r->qs->visible(r->qs->visible_ctx, q,
					       r->res[i].partition);
	}
	if (r->is_confirmed) {
		if (status < 0)
			log_error("queue %s: commit of %zu confirmed messages "
				  "failed: %s",
				  q ? q->name : "(deleted)", r->n,
				  err_str(status));
	} else {
		if (r->has_pending_dups)
			pending_dups_settle(q, r, status);
		if (q != NULL && r->has_producer &&
		    (status < 0 || r->has_pending_dups))
			publish_rerecord(q, r);
		r->done(r->ctx, r->res, r->n);
	}
	publish_req_free(r);
}

/* Refuses message m of a resent batch with the code it was refused with
 * first, and the reason the checks give it again if they do. */
static void
publish_refused_again(const struct queues *qs, struct queue *q,
		      const struct publish_batch *p,
		      const struct publish_msg *m, struct publish_result *res,
		      int code)
{
	struct publish_result again = { .code = 0 };

	if (code == -RMQ_EQUEUE_FULL) {
		publish_refuse(res, code, QUEUE_FULL_WHY);
		return;
	}
	if ((publish_check(qs->cfg, m, &again) < 0 ||
	     publish_route(q, p, m, &again) < 0) &&
	    again.code == code)
		publish_refuse(res, code, again.why);
	else
		publish_refuse(res, code,
			       "the first publish of this message failed; "
			       "publish it again");
}

/* Answers every message of p as its recorded batch was answered: stored
 * ones and duplicates with their original offsets (as duplicates),
 * refused ones refused again. */
static void
publish_resent(const struct queues *qs, struct queue *q, struct publish_req *r,
	       const struct publish_batch *p, uint32_t part,
	       const struct store_producer_batch *batch)
{
	uint64_t next = batch->first_offset;
	uint32_t k = 0;

	for (uint32_t i = 0; i < (uint32_t)p->n; i++) {
		const struct store_producer_skip *sk = NULL;
		struct publish_result *res = &r->res[i];

		while (k < batch->nskips &&
		       i >= batch->skips[k].index + batch->skips[k].len)
			k++;
		if (k < batch->nskips && i >= batch->skips[k].index)
			sk = &batch->skips[k];
		res->partition = part;
		if (sk != NULL && sk->code != STORE_SKIP_OK) {
			publish_refused_again(qs, q, p, &p->msgs[i], res,
					      store_skip_rc(sk->code));
			continue;
		}
		res->code = 0;
		res->offset =
			sk != NULL ? sk->offset + (i - sk->index) : next++;
		res->is_duplicate = 1;
		res->is_pending_dup =
			res->offset >= q->parts[part].committed_next;
		r->has_pending_dups |= res->is_pending_dup;
	}
}

/* Fills *pb, the producer record of r's batch (sequence seq) as r is
 * answered: the first stored offset and the runs of the messages not
 * stored (pb->skips malloc'ed, NULL when every message was stored).
 * @return 0 or -ENOMEM. */
static int
publish_batch_of(const struct publish_req *r, uint64_t seq,
		 struct store_producer_batch *pb)
{
	struct store_producer_skip *v = NULL;
	uint32_t n = 0;
	int has_first = 0;

	*pb = (struct store_producer_batch){ .first_seq = seq,
					     .count = (uint32_t)r->n };
	for (uint32_t i = 0; i < (uint32_t)r->n; i++) {
		const struct publish_result *res = &r->res[i];
		uint16_t code = store_skip_code(res->code);
		uint64_t off = code == STORE_SKIP_OK ? res->offset : 0;
		struct store_producer_skip *last = n ? &v[n - 1] : NULL;

		/* Stored as answered: a failed commit turns them into
		 * refusals with its code. */
		if (res->is_stored && code == STORE_SKIP_OK) {
			if (!has_first)
				pb->first_offset = res->offset;
			has_first = 1;
			continue;
		}
		if (v == NULL && (v = calloc(r->n, sizeof(*v))) == NULL)
			return -ENOMEM;
		if (last != NULL && last->index + last->len == i &&
		    last->code == code &&
		    (code != STORE_SKIP_OK ||
		     last->offset + last->len == off)) {
			last->len++;
			continue;
		}
		v[n++] = (struct store_producer_skip){
			.index = i, .len = 1, .code = code, .offset = off
		};
	}
	pb->skips = v;
	pb->nskips = n;
	return 0;
}

/* Makes r's recorded batch say what r was finally answered, when its
 * commit or the commit of its duplicates' originals failed after it was
 * recorded: a resend is then answered with the failure, never with
 * offsets that hold nothing. Kept in memory; the producer's next stored
 * batch writes it. */
static void
publish_rerecord(struct queue *q, const struct publish_req *r)
{
	struct store_producer_batch pb;

	if (publish_batch_of(r, r->producer_seq, &pb) < 0)
		log_error("queue %s: out of memory correcting a producer "
			  "record",
			  q->name);
	else
		idem_producer_replace(q->idem, r->producer_part, r->producer_id,
				      &pb);
}

/* Records r's batch for its producer (DESIGN.md, "Producer
 * idempotence"), so that a resend after a lost answer is answered alike;
 * when b is not NULL the record commits with the messages. */
static int
publish_record(struct queue *q, struct publish_req *r, uint32_t part,
	       uint64_t producer_id, uint64_t seq, uint64_t now_ms,
	       struct store_batch *b)
{
	struct store_producer_batch pb;
	struct store_producer sp;

	if (publish_batch_of(r, seq, &pb) < 0 ||
	    idem_producer_add(q->idem, part, producer_id, &pb, now_ms, &sp) < 0)
		return -ENOMEM;
	r->producer_part = part;
	r->producer_id = producer_id;
	r->producer_seq = seq;
	r->has_producer = 1;
	return b != NULL ? store_batch_put_producer(b, q->qid, part,
						    producer_id, &sp)
			 : 0;
}

/* Checks a sequenced publish: one partition, a producer id. @return the
 * partition, or -1 with every result refused. */
static int
publish_seq_partition(struct queue *q, const struct publish_batch *p,
		      uint64_t producer_id, struct publish_req *r)
{
	uint32_t part = p->has_partition ? p->partition : UINT32_MAX;

	for (size_t i = 0; i < p->n; i++) {
		const struct publish_msg *m = &p->msgs[i];

		/* A message naming none would be routed elsewhere. */
		if ((m->has_partition && part != UINT32_MAX &&
		     m->partition != part) ||
		    (!m->has_partition && !p->has_partition))
			part = UINT32_MAX - 1;
		else if (m->has_partition && part == UINT32_MAX)
			part = m->partition;
	}
	if (producer_id != 0 && part < q->partitions)
		return (int)part;
	for (size_t i = 0; i < p->n; i++)
		publish_refuse(&r->res[i], -RMQ_EINVALID_ARGUMENT,
			       "a sequenced publish names one partition");
	return -1;
}

/* Stores message i of p unless refused; updates the limits' counters. */
static int
publish_one(struct queues *qs, struct queue *q, const struct publish_batch *p,
	    size_t i, struct publish_req *r, struct store_batch *b,
	    uint64_t now_ms, uint64_t *depth, uint64_t *bytes)
{
	const struct publish_msg *m = &p->msgs[i];
	struct publish_result *res = &r->res[i];
	uint16_t idlen = m->dedup_id ? (uint16_t)strlen(m->dedup_id) : 0;
	uint64_t orig;

	res->code = 0;
	if (publish_check(qs->cfg, m, res) < 0 ||
	    publish_route(q, p, m, res) < 0)
		return 0;
	if (idlen > 0 &&
	    idem_dedup_find(q->idem, res->partition, m->dedup_id, idlen, now_ms,
			    q->policy.dedup_window_ms, &orig)) {
		res->offset = orig;
		res->is_duplicate = 1;
		res->is_pending_dup =
			orig >= q->parts[res->partition].committed_next;
		r->has_pending_dups |= res->is_pending_dup;
		return 0;
	}
	if (queue_is_over(q, *depth, *bytes, res->msg_bytes)) {
		publish_refuse(res, -RMQ_EQUEUE_FULL, QUEUE_FULL_WHY);
		return 0;
	}
	if (publish_put(q, m, now_ms, res, b) < 0)
		return -ENOMEM;
	if (idlen > 0 &&
	    (store_batch_put_dedup(b, q->qid, res->partition, m->dedup_id,
				   idlen, res->offset, now_ms) < 0 ||
	     idem_dedup_add(q->idem, res->partition, m->dedup_id, idlen,
			    res->offset, now_ms) < 0))
		return -ENOMEM;
	res->is_stored = 1;
	(*depth)++;
	*bytes += res->msg_bytes;
	r->msgs++;
	r->bytes += res->msg_bytes;
	return 1;
}

int
queue_publish(struct queues *qs, const struct publish_batch *p,
	      uint64_t producer_id, publish_done_fn done, void *ctx)
{
	struct queue *q = queues_find(qs, p->queue);
	struct store_batch *b = NULL;
	struct publish_req *r;
	uint64_t now_ms = clock_wall_ms();
	uint8_t touched[QUEUE_MAX_PARTITIONS];
	const struct store_producer_batch *sent;
	uint64_t depth, bytes;
	size_t stored = 0;
	int seq_part = -1, is_reserving = 0;

	if (q == NULL || q->is_pending)
		return -RMQ_EQUEUE_NOT_FOUND;
	r = calloc(1, sizeof(*r) + p->n * sizeof(r->res[0]));
	b = store_batch_new(STORE_BATCH_GROWS);
	if (r == NULL || b == NULL)
		goto fail;
	r->qs = qs;
	r->qid = q->qid;
	r->done = done;
	r->ctx = ctx;
	r->n = p->n;
	r->failures_at = q->publish_failures;
	if (p->has_producer_seq) {
		seq_part = publish_seq_partition(q, p, producer_id, r);
		if (seq_part < 0)
			goto answer;
		switch (idem_producer_check(q->idem, (uint32_t)seq_part,
					    producer_id, p->producer_seq,
					    (uint32_t)p->n, &sent)) {
		case IDEM_SEQ_RESENT:
			publish_resent(qs, q, r, p, (uint32_t)seq_part, sent);
			goto answer;
		case IDEM_SEQ_STALE:
			for (size_t i = 0; i < p->n; i++)
				publish_refuse(
					&r->res[i], -RMQ_EINVALID_ARGUMENT,
					"producer sequence already used");
			goto answer;
		case IDEM_SEQ_NEW: break;
		}
	}
	memset(touched, 0, q->partitions);
	queue_fill(q, &depth, &bytes);
	for (size_t i = 0; i < p->n; i++) {
		int rc = publish_one(qs, q, p, i, r, b, now_ms, &depth, &bytes);

		if (rc < 0)
			goto fail;
		if (rc == 1) {
			touched[r->res[i].partition] = 1;
			stored++;
		}
	}
	if (stored == 0) {
		/* Remembered without a commit of its own: the producer's
		 * next stored batch writes it too. */
		if (seq_part >= 0 &&
		    publish_record(q, r, (uint32_t)seq_part, producer_id,
				   p->producer_seq, now_ms, NULL) < 0)
			goto fail;
		goto answer;
	}
	/* Only the partitions this batch touched need their counter. */
	for (uint32_t i = 0; i < q->partitions; i++) {
		uint64_t reserved = 0;
		int rc = touched[i] ? persist_next(qs, q, i, b, &reserved) : 0;

		if (rc < 0 || (reserved && reserve_add(r, i, reserved) < 0))
			goto fail;
		/* sync=interval confirms early only within what is already
		 * durable; the other modes reserve nothing. */
		if (qs->cfg->sync == CONFIG_SYNC_INTERVAL && touched[i] &&
		    q->parts[i].next_offset > q->parts[i].reserved_durable)
			is_reserving = 1;
	}
	if (seq_part >= 0 &&
	    publish_record(q, r, (uint32_t)seq_part, producer_id,
			   p->producer_seq, now_ms, b) < 0)
		goto fail;
	if (publish_keep_ids(r, p) < 0)
		goto fail;
	q->pending_ops++;
	q->pending_msgs += r->msgs;
	q->pending_bytes +=
		r->bytes; /* sync=interval confirms on receipt; the commit
			   * follows within the interval (DESIGN.md, "Sync
			   * modes") -- except a publish that extends an offset
			   * reservation, confirmed once that is durable. */
	r->is_confirmed =
		qs->cfg->sync == CONFIG_SYNC_INTERVAL && !is_reserving;
	if (r->is_confirmed)
		done(ctx, r->res, r->n);
	else if (is_reserving)
		store_batch_set_urgent(b); /* confirmed after a commit, not
					    * after the interval */
	store_submit(qs->store, b, publish_done, r);
	return 0;
answer:
	store_batch_free(b);
	/* In sync=interval the originals were confirmed on receipt too. */
	if (qs->cfg->sync != CONFIG_SYNC_INTERVAL && r->has_pending_dups) {
		/* Empty, and not counted as growth when storage is full. */
		b = store_batch_new(0);
		if (b == NULL) {
			free(r);
			return -ENOMEM;
		}
		store_submit(qs->store, b, publish_dups_done, r);
		return 0;
	}
	done(ctx, r->res, r->n);
	free(r);
	return 0;
fail:
	/* Offsets assigned to a batch never stored stay unused: holes. Dedup
	 * ids it added point at them and expire with the window; a producer
	 * record would answer a resend with them, so it goes. */
	if (r != NULL && r->has_producer)
		idem_producer_forget(q->idem, r->producer_part, r->producer_id,
				     r->producer_seq);
	store_batch_free(b);
	free(r);
	return -ENOMEM;
}
