/*
 * loop: the io_uring ring of the broker's one event-loop thread.
 *
 * Owns the ring and the provided-buffer ring that multishot receives fill.
 * It knows nothing of frames or connections: each submitted operation is a
 * struct loop_op whose callback runs for each of its completions. What an
 * operation points to (buffers, msghdr, the op itself) belongs to the loop
 * until its last completion: for multishot operations, the one without
 * IORING_CQE_F_MORE (check loop_op_more()).
 */
#ifndef RINGMQ_LOOP_H
#define RINGMQ_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop; /* opaque */
struct loop_op;

/* res is cqe->res (-errno on failure), flags is cqe->flags. */
typedef void (*loop_cb)(struct loop_op *op, int res, uint32_t flags);

struct loop_op {
	loop_cb cb;
	void *data; /* borrowed: the owner of the operation */
};

/* Called after each batch of completions; returns the ms until the loop
 * must call it again without I/O (a timer), or -1 for no timer. */
typedef int64_t (*loop_tick_fn)(void *ctx);

/*
 * Sets up a ring with entries SQEs and a provided-buffer ring of buf_count
 * buffers of buf_bytes each (buf_count a power of two).
 * @return 0 or -errno; *out NULL on failure.
 */
int loop_open(struct loop **out, unsigned entries, unsigned buf_count,
	      unsigned buf_bytes);

/* Frees the ring and the buffers. NULL is a no-op. */
void loop_close(struct loop *l);

/* Multishot accept on a listening socket. */
int loop_accept(struct loop *l, int fd, struct loop_op *op);

/* Multishot receive into provided buffers: each completion with res > 0
 * carries IORING_CQE_F_BUFFER; use loop_buf_id, loop_buf and then give the
 * buffer back with loop_buf_return. */
int loop_recv(struct loop *l, int fd, struct loop_op *op);

/* One sendmsg; msg and its iovecs must stay valid until the completion. */
int loop_sendmsg(struct loop *l, int fd, const struct msghdr *msg,
		 struct loop_op *op);

/* One read(2)-like operation into buf. */
int loop_read(struct loop *l, int fd, void *buf, size_t len,
	      struct loop_op *op);

/* Asks the kernel to cancel op; op still gets its final completion
 * (usually -ECANCELED). */
int loop_cancel(struct loop *l, struct loop_op *op);

/* True if more completions will follow for this multishot operation. */
int loop_op_more(uint32_t flags);

/* The buffer id of a receive completion, and the buffer's memory. */
unsigned loop_buf_id(uint32_t flags);
void *loop_buf(struct loop *l, unsigned bid);

/* Gives a provided buffer back to the kernel. */
void loop_buf_return(struct loop *l, unsigned bid);

/* Runs until loop_stop: submits, waits, dispatches completions, ticks.
 * @return 0 after loop_stop, or -errno if the ring failed. */
int loop_run(struct loop *l, loop_tick_fn tick, void *ctx);

/* Makes loop_run return after the current pass. */
void loop_stop(struct loop *l);

#endif
