/*
 * loop: see loop.h.
 *
 * Debian 12's liburing 2.3 has no io_uring_setup_buf_ring, so the buffer
 * ring is allocated page-aligned here and registered with
 * io_uring_register_buf_ring. Submissions are batched: operations queued
 * during a pass go to the kernel in one io_uring_submit_and_wait_timeout.
 */
#define _GNU_SOURCE
#include "net/loop.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

#define LOOP_BGID 1

struct loop {
	struct io_uring ring;
	struct io_uring_buf_ring *br; /* owned, page-aligned */
	uint8_t *bufs;		      /* owned: buf_count * buf_bytes */
	unsigned buf_count;
	unsigned buf_bytes;
	int is_stopping;
};

int
loop_open(struct loop **out, unsigned entries, unsigned buf_count,
	  unsigned buf_bytes)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	struct loop *l;
	long page = sysconf(_SC_PAGESIZE);
	int rc;

	*out = NULL;
	if (buf_count == 0 || (buf_count & (buf_count - 1)) != 0)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
		  IORING_SETUP_SINGLE_ISSUER;
	p.cq_entries = entries * 4;
	p.flags |= IORING_SETUP_CQSIZE;
	rc = io_uring_queue_init_params(entries, &l->ring, &p);
	if (rc == -EINVAL) {
		/* Older kernels: no optional flags. */
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	if (rc < 0)
		goto fail_free;
	if (posix_memalign((void **)&l->br, (size_t)page,
			   buf_count * sizeof(struct io_uring_buf)) != 0) {
		rc = -ENOMEM;
		goto fail_ring;
	}
	l->bufs = malloc((size_t)buf_count * buf_bytes);
	if (l->bufs == NULL) {
		rc = -ENOMEM;
		goto fail_br;
	}
	l->buf_count = buf_count;
	l->buf_bytes = buf_bytes;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)l->br;
	reg.ring_entries = buf_count;
	reg.bgid = LOOP_BGID;
	rc = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (rc < 0)
		goto fail_bufs;
	io_uring_buf_ring_init(l->br);
	for (unsigned i = 0; i < buf_count; i++)
		io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * buf_bytes,
				      buf_bytes, (unsigned short)i,
				      io_uring_buf_ring_mask(buf_count),
				      (int)i);
	io_uring_buf_ring_advance(l->br, (int)buf_count);
	*out = l;
	return 0;

fail_bufs:
	free(l->bufs);
fail_br:
	free(l->br);
fail_ring:
	io_uring_queue_exit(&l->ring);
fail_free:
	free(l);
	return rc;
}

void
loop_close(struct loop *l)
{
	if (l == NULL)
		return;
	(void)io_uring_unregister_buf_ring(&l->ring, LOOP_BGID);
	io_uring_queue_exit(&l->ring);
	free(l->bufs);
	free(l->br);
	free(l);
}

/* An SQE, submitting queued ones first if the ring is full. */
static struct io_uring_sqe *
loop_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (sqe == NULL) {
		int rc = io_uring_submit(&l->ring);

		if (rc < 0)
			log_error("io_uring_submit: %s", strerror(-rc));
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

int
loop_accept(struct loop *l, int fd, struct loop_op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int
loop_recv(struct loop *l, int fd, struct loop_op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BGID;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int
loop_sendmsg(struct loop *l, int fd, const struct msghdr *msg,
	     struct loop_op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int
loop_read(struct loop *l, int fd, void *buf, size_t len, struct loop_op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int
loop_cancel(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_cancel(sqe, op, 0);
	/* The cancel's own completion carries no op. */
	io_uring_sqe_set_data(sqe, NULL);
	return 0;
}

int
loop_op_more(uint32_t flags)
{
	return (flags & IORING_CQE_F_MORE) != 0;
}

unsigned
loop_buf_id(uint32_t flags)
{
	return flags >> IORING_CQE_BUFFER_SHIFT;
}

void *
loop_buf(struct loop *l, unsigned bid)
{
	return l->bufs + (size_t)bid * l->buf_bytes;
}

void
loop_buf_return(struct loop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, loop_buf(l, bid), l->buf_bytes,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(l->buf_count), 0);
	io_uring_buf_ring_advance(l->br, 1);
}

void
loop_stop(struct loop *l)
{
	l->is_stopping = 1;
}

int
loop_run(struct loop *l, loop_tick_fn tick, void *ctx)
{
	int64_t timeout_ms = tick(ctx);

	while (!l->is_stopping) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int rc;

		if (timeout_ms >= 0) {
			ts.tv_sec = timeout_ms / 1000;
			ts.tv_nsec = (timeout_ms % 1000) * 1000000;
			rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1,
							      &ts, NULL);
		} else {
			rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1,
							      NULL, NULL);
		}
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
			log_error("io_uring wait: %s", strerror(-rc));
			return rc;
		}
		io_uring_for_each_cqe(&l->ring, head, cqe)
		{
			struct loop_op *op = io_uring_cqe_get_data(cqe);

			n++;
			if (op != NULL)
				op->cb(op, cqe->res, cqe->flags);
		}
		io_uring_cq_advance(&l->ring, n);
		timeout_ms = tick(ctx);
	}
	return 0;
}
