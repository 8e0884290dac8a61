/*
 * client.c: the Client type of ringmq._ringmq: connect, publish, consume
 * and settle, over one ringmq_client.
 *
 * Callbacks of the library (publish reports, asynchronous acks) run only
 * inside ringmq_client_poll(), _flush() and _close(), in the thread that
 * called them, with the GIL dropped. They are collected there without
 * the GIL and run as Python calls once the library call returned and the
 * GIL is back: one GIL hand-over per poll instead of one per report.
 */
#include "pyringmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --------------------------------------------------------- reports */

/*
 * The callback of one ringmq_ack_async() call, shared by the reports of
 * the requests the library splits its ids into (how many is the
 * library's business). Each collected report takes a reference (refs,
 * without the GIL); the last one run, once every id was reported, frees
 * it and drops fn.
 */
struct ack_ctx {
	PyObject *fn;  /* strong */
	size_t refs;   /* reports collected and not yet run (atomic) */
	size_t unsent; /* ids not yet reported (atomic) */
};

struct report {
	PyObject *fn;	     /* strong, unless ack; NULL: no callback */
	struct ack_ctx *ack; /* an ack report's shared callback */
	int code;
	uint32_t partition;
	uint64_t offset;
	int is_duplicate;
	char *text;	     /* malloc'd when code is not OK */
	uint64_t *lease_ids; /* an ack report: its ids and codes */
	int *codes;
	size_t n_ids;
};

struct reports {
	struct report *v;
	size_t n, cap;
};

/* The reports of the library call this thread is in. */
static _Thread_local struct reports *tl_reports;

static struct report *
report_add(void)
{
	struct reports *rs = tl_reports;

	if (rs == NULL)
		return NULL;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct report *v = realloc(rs->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL; /* the caller runs it at once instead */
		rs->v = v;
		rs->cap = cap;
	}
	memset(&rs->v[rs->n], 0, sizeof(rs->v[0]));
	return &rs->v[rs->n++];
}

/* A report collected outside a wrapped call (none is expected): run at
 * once under the GIL so that no future is left pending. */
static void run_one(struct report *r);

static void
on_publish(ringmq_client *c, const ringmq_publish_report *pr, void *ctx)
{
	struct report local;
	struct report *r = report_add();

	(void)c;
	if (r == NULL)
		r = &local;
	memset(r, 0, sizeof(*r));
	r->fn = ctx;
	r->code = ringmq_publish_report_code(pr);
	r->partition = ringmq_publish_report_partition(pr);
	r->offset = ringmq_publish_report_offset(pr);
	r->is_duplicate = ringmq_publish_report_is_duplicate(pr);
	if (r->code != RINGMQ_OK)
		r->text = strdup(ringmq_publish_report_message(pr));
	if (r == &local) {
		PyGILState_STATE g = PyGILState_Ensure();

		run_one(r);
		PyGILState_Release(g);
	}
}

static void
on_ack(ringmq_client *c, const uint64_t *ids, const int *codes, size_t n,
       void *ctx)
{
	struct report local;
	struct report *r = report_add();

	struct ack_ctx *a = ctx;

	(void)c;
	if (r == NULL)
		r = &local;
	memset(r, 0, sizeof(*r));
	/* Taken before the ids count down: a run that sees none left knows
	 * every report holds its reference. */
	__atomic_add_fetch(&a->refs, 1, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&a->unsent, n, __ATOMIC_SEQ_CST);
	r->ack = a;
	r->fn = a->fn;
	r->lease_ids = malloc(n * sizeof(*ids) + 1);
	r->codes = malloc(n * sizeof(*codes) + 1);
	if (r->lease_ids != NULL && r->codes != NULL) {
		memcpy(r->lease_ids, ids, n * sizeof(*ids));
		memcpy(r->codes, codes, n * sizeof(*codes));
		r->n_ids = n;
	} else {
		r->code = RINGMQ_INTERNAL;
	}
	if (r == &local) {
		PyGILState_STATE g = PyGILState_Ensure();

		run_one(r);
		PyGILState_Release(g);
	}
}

/* Calls r's callback (GIL held) and frees what r holds. An exception in
 * the callback is reported as unraisable: it must not stop the others,
 * nor the client. */
static void
run_one(struct report *r)
{
	PyObject *res = NULL;

	if (r->fn != NULL && r->lease_ids != NULL) {
		PyObject *ids = PyList_New((Py_ssize_t)r->n_ids);
		PyObject *codes = PyList_New((Py_ssize_t)r->n_ids);

		for (size_t i = 0; ids != NULL && codes != NULL && i < r->n_ids;
		     i++) {
			PyList_SET_ITEM(
				ids, i,
				PyLong_FromUnsignedLongLong(r->lease_ids[i]));
			PyList_SET_ITEM(codes, i, PyLong_FromLong(r->codes[i]));
		}
		if (ids != NULL && codes != NULL)
			res = PyObject_CallFunctionObjArgs(r->fn, ids, codes,
							   NULL);
		Py_XDECREF(ids);
		Py_XDECREF(codes);
	} else if (r->fn != NULL) {
		res = PyObject_CallFunction(
			r->fn, "iIKOs", r->code, (unsigned)r->partition,
			(unsigned long long)r->offset,
			r->is_duplicate ? Py_True : Py_False,
			r->text != NULL ? r->text : "");
	}
	if (r->fn != NULL && res == NULL)
		PyErr_WriteUnraisable(r->fn);
	Py_XDECREF(res);
	if (r->ack == NULL)
		Py_XDECREF(r->fn);
	else if (__atomic_sub_fetch(&r->ack->refs, 1, __ATOMIC_SEQ_CST) == 0 &&
		 __atomic_load_n(&r->ack->unsent, __ATOMIC_SEQ_CST) == 0) {
		Py_DECREF(r->ack->fn);
		PyMem_RawFree(r->ack);
	}
	free(r->text);
	free(r->lease_ids);
	free(r->codes);
}

static void
run_reports(struct reports *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		run_one(&rs->v[i]);
	free(rs->v);
	rs->v = NULL;
	rs->n = rs->cap = 0;
}

/* Runs the statement with the GIL dropped and this thread's reports
 * collected; then, with the GIL back, runs after and the reports. after
 * leaves the handle first: a report may close the client, which waits
 * for every thread still inside a call. */
#define PR_NOGIL_REPORTS(after, ...)                      \
	do {                                              \
		struct reports rs_ = { 0 };               \
		Py_BEGIN_ALLOW_THREADS tl_reports = &rs_; \
		__VA_ARGS__;                              \
		tl_reports = NULL;                        \
		Py_END_ALLOW_THREADS after;               \
		run_reports(&rs_);                        \
	} while (0)

/* ------------------------------------------------------- the handle */

ClientObject *
pr_client_of(PyObject *o)
{
	if (!PyObject_TypeCheck(o, &pr_client_type)) {
		PyErr_SetString(PyExc_TypeError, "a ringmq._ringmq.Client");
		return NULL;
	}
	return (ClientObject *)o;
}

ringmq_client *
pr_enter(ClientObject *self)
{
	if (self->c == NULL || self->is_closing) {
		pr_raise(RINGMQ_CLOSED, "the client is closed");
		return NULL;
	}
	if (self->forks != pr_forks) {
		pr_raise(RINGMQ_USAGE,
			 "this client was made before a fork: make one in "
			 "each process");
		return NULL;
	}
	self->n_busy++;
	return self->c;
}

void
pr_leave(ClientObject *self)
{
	self->n_busy--;
}

/* The failure of the last call on c, as an exception. */
static PyObject *
raise_from(ringmq_client *c, int code)
{
	return pr_raise(code, ringmq_client_errmsg(c));
}

static int
client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "options", NULL };
	PyObject *options, *seq;
	ringmq_opts *o;
	ringmq_client *c = NULL;
	char err[512] = "";
	int rc = RINGMQ_OK;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O:Client", kwlist,
					 &options))
		return -1;
	if (self->c != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "already connected");
		return -1;
	}
	seq = PySequence_Fast(options, "options: a sequence of (name, value)");
	if (seq == NULL)
		return -1;
	o = ringmq_opts_new();
	if (o == NULL) {
		Py_DECREF(seq);
		PyErr_NoMemory();
		return -1;
	}
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
		const char *name, *value;

		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i),
				      "ss:option", &name, &value))
			goto fail;
		rc = ringmq_opts_set(o, name, value, err, sizeof(err));
		if (rc != RINGMQ_OK) {
			pr_raise(rc, err);
			goto fail;
		}
	}
	Py_DECREF(seq);
	seq = NULL;
	PR_NOGIL(rc = ringmq_client_connect(&c, o, err, sizeof(err)));
	ringmq_opts_free(o);
	if (rc != RINGMQ_OK) {
		pr_raise(rc, err);
		return -1;
	}
	self->c = c;
	self->forks = pr_forks;
	return 0;
fail:
	Py_XDECREF(seq);
	ringmq_opts_free(o);
	return -1;
}

/* Waits, GIL dropped, until no other thread is inside a call on c. */
static void
wait_idle(ClientObject *self)
{
	while (self->n_busy > 0) {
		ringmq_client *c = self->c;

		PR_NOGIL({
			struct timespec ts = { 0, 1000000 };

			ringmq_client_wakeup(c);
			nanosleep(&ts, NULL);
		});
	}
}

static PyObject *
client_close(ClientObject *self, PyObject *unused)
{
	ringmq_client *c = self->c;

	(void)unused;
	if (c == NULL || self->is_closing)
		Py_RETURN_NONE;
	self->is_closing = 1;
	if (self->forks != pr_forks)
		Py_RETURN_NONE; /* the parent's: a goodbye would end it */
	wait_idle(self);
	PR_NOGIL_REPORTS((void)0, ringmq_client_close(c));
	Py_RETURN_NONE;
}

static void
client_dealloc(ClientObject *self)
{
	if (self->c != NULL && self->forks == pr_forks) {
		ringmq_client *c = self->c;

		if (!self->is_closing) {
			self->is_closing = 1;
			PR_NOGIL_REPORTS((void)0, ringmq_client_close(c));
		}
		self->c = NULL;
		ringmq_client_free(c);
	}
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ------------------------------------------------------ serving */

static PyObject *
client_poll(ClientObject *self, PyObject *arg)
{
	long timeout_ms = PyLong_AsLong(arg);
	ringmq_client *c;
	int n;

	if (timeout_ms == -1 && PyErr_Occurred())
		return NULL;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL_REPORTS(pr_leave(self),
			 n = ringmq_client_poll(c, (int)timeout_ms));
	if (PyErr_Occurred())
		return NULL;
	return PyLong_FromLong(n);
}

static PyObject *
client_poll_timeout(ClientObject *self, PyObject *unused)
{
	(void)unused;
	if (self->c == NULL || self->is_closing)
		return PyLong_FromLong(-1);
	return PyLong_FromLong(ringmq_client_poll_timeout(self->c));
}

static PyObject *
client_fd(ClientObject *self, PyObject *unused)
{
	(void)unused;
	if (self->c == NULL || self->is_closing)
		return PyLong_FromLong(-1);
	return PyLong_FromLong(ringmq_client_fd(self->c));
}

static PyObject *
client_flush(ClientObject *self, PyObject *arg)
{
	long timeout_ms = PyLong_AsLong(arg);
	ringmq_client *c;
	int rc;

	if (timeout_ms == -1 && PyErr_Occurred())
		return NULL;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL_REPORTS(pr_leave(self),
			 rc = ringmq_client_flush(c, (int)timeout_ms));
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	Py_RETURN_NONE;
}

static PyObject *
client_ping(ClientObject *self, PyObject *unused)
{
	ringmq_client *c;
	int rc;

	(void)unused;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL(rc = ringmq_client_ping(c));
	pr_leave(self);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	Py_RETURN_NONE;
}

static PyObject *
client_wakeup(ClientObject *self, PyObject *unused)
{
	(void)unused;
	if (self->c != NULL)
		ringmq_client_wakeup(self->c);
	Py_RETURN_NONE;
}

static PyObject *
client_info(ClientObject *self, PyObject *unused)
{
	ringmq_client *c = self->c;

	(void)unused;
	if (c == NULL || self->is_closing)
		return pr_raise(RINGMQ_CLOSED, "the client is closed");
	return Py_BuildValue(
		"{s:s,s:K,s:I,s:I,s:I,s:I,s:n,s:O}", "server",
		ringmq_client_server(c), "producer_id",
		(unsigned long long)ringmq_client_producer_id(c),
		"max_frame_bytes", ringmq_client_max_frame_bytes(c),
		"max_message_bytes", ringmq_client_max_message_bytes(c),
		"max_batch_count", ringmq_client_max_batch_count(c),
		"max_header_count", ringmq_client_max_header_count(c),
		"outstanding", (Py_ssize_t)ringmq_client_outstanding(c),
		"connected",
		ringmq_client_is_connected(c) ? Py_True : Py_False);
}

/* ------------------------------------------------------ publish */

/* Bytes of a str (UTF-8) or of a bytes-like object, borrowed into view
 * (release it with PyBuffer_Release). */
static int
bytes_of(PyObject *o, Py_buffer *view, const char *what)
{
	if (PyUnicode_Check(o)) {
		Py_ssize_t len;
		const char *s = PyUnicode_AsUTF8AndSize(o, &len);

		if (s == NULL)
			return -1;
		return PyBuffer_FillInfo(view, o, (void *)s, len, 1,
					 PyBUF_SIMPLE);
	}
	if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
		PyErr_Format(PyExc_TypeError,
			     "%s must be bytes or str, not %.100s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	return 0;
}

static int
add_header(ringmq_message *m, PyObject *name, PyObject *value)
{
	const char *n;
	Py_buffer v;
	int rc;

	if (!PyUnicode_Check(name)) {
		PyErr_SetString(PyExc_TypeError, "header names must be str");
		return -1;
	}
	if ((n = PyUnicode_AsUTF8(name)) == NULL ||
	    bytes_of(value, &v, "a header value") < 0)
		return -1;
	rc = ringmq_message_add_header(m, n, v.buf, (size_t)v.len);
	PyBuffer_Release(&v);
	if (rc == RINGMQ_USAGE) {
		PyErr_Format(PyExc_ValueError,
			     "header %R: empty, too long, given twice, or "
			     "reserved (ringmq-*)",
			     name);
		return -1;
	}
	return rc == RINGMQ_OK ? 0 : (pr_raise(rc, NULL), -1);
}

/*
 * A message from payload and the optional fields (None: absent): key
 * (bytes or str), headers (a mapping of str to bytes or str), dedup_id
 * (str), delay (seconds), deliver_at (seconds since the epoch).
 */
static ringmq_message *
message_of(PyObject *payload, PyObject *key, PyObject *headers,
	   PyObject *dedup_id, PyObject *delay, PyObject *deliver_at)
{
	ringmq_message *m;
	Py_buffer v;
	int64_t ms;

	if (bytes_of(payload, &v, "payload") < 0)
		return NULL;
	m = ringmq_message_new(v.buf, (size_t)v.len);
	PyBuffer_Release(&v);
	if (m == NULL)
		return (ringmq_message *)PyErr_NoMemory();
	if (key != NULL && key != Py_None) {
		int rc;

		if (bytes_of(key, &v, "key") < 0)
			goto fail;
		rc = ringmq_message_set_key(m, v.buf, (size_t)v.len);
		PyBuffer_Release(&v);
		if (rc != RINGMQ_OK) {
			PyErr_SetString(PyExc_ValueError,
					"key: at most 65535 bytes");
			goto fail;
		}
	}
	if (headers != NULL && headers != Py_None) {
		PyObject *items = PyMapping_Items(headers);

		if (items == NULL)
			goto fail;
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
			PyObject *it = PyList_GET_ITEM(items, i);

			if (add_header(m, PyTuple_GET_ITEM(it, 0),
				       PyTuple_GET_ITEM(it, 1)) < 0) {
				Py_DECREF(items);
				goto fail;
			}
		}
		Py_DECREF(items);
	}
	if (dedup_id != NULL && dedup_id != Py_None) {
		const char *s = PyUnicode_Check(dedup_id)
					? PyUnicode_AsUTF8(dedup_id)
					: NULL;

		if (s == NULL) {
			if (!PyErr_Occurred())
				PyErr_SetString(PyExc_TypeError,
						"dedup_id must be str");
			goto fail;
		}
		if (ringmq_message_set_dedup_id(m, s) != RINGMQ_OK) {
			PyErr_SetString(PyExc_ValueError,
					"dedup_id: 1 to 65535 bytes");
			goto fail;
		}
	}
	if ((ms = pr_ms_of(delay, -2, "delay")) == -1)
		goto fail;
	if (ms >= 0)
		(void)ringmq_message_set_delay_ms(m, (uint64_t)ms);
	if ((ms = pr_ms_of(deliver_at, -2, "deliver_at")) == -1)
		goto fail;
	if (ms >= 0)
		(void)ringmq_message_set_deliver_at_ms(m, (uint64_t)ms);
	return m;
fail:
	ringmq_message_free(m);
	return NULL;
}

static char *publish_kwlist[] = { "queue",	"payload",  "key",
				  "headers",	"dedup_id", "delay",
				  "deliver_at", NULL };

static PyObject *
client_publish(ClientObject *self, PyObject *args, PyObject *kw)
{
	const char *queue;
	PyObject *payload, *key = NULL, *headers = NULL, *dedup = NULL;
	PyObject *delay = NULL, *at = NULL;
	ringmq_message *m;
	ringmq_client *c;
	uint32_t partition = 0;
	uint64_t offset = 0;
	int dup = 0, rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OOOOO:publish",
					 publish_kwlist, &queue, &payload, &key,
					 &headers, &dedup, &delay, &at))
		return NULL;
	m = message_of(payload, key, headers, dedup, delay, at);
	if (m == NULL)
		return NULL;
	if ((c = pr_enter(self)) == NULL) {
		ringmq_message_free(m);
		return NULL;
	}
	PR_NOGIL(rc = ringmq_publish(c, queue, m, &partition, &offset, &dup));
	pr_leave(self);
	ringmq_message_free(m);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	return Py_BuildValue("(IKO)", partition, (unsigned long long)offset,
			     dup ? Py_True : Py_False);
}

static PyObject *
client_publish_async(ClientObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "queue",	"payload",  "key",
				  "headers",	"dedup_id", "delay",
				  "deliver_at", "callback", NULL };
	const char *queue;
	PyObject *payload, *key = NULL, *headers = NULL, *dedup = NULL;
	PyObject *delay = NULL, *at = NULL, *cb = NULL;
	ringmq_message *m;
	ringmq_client *c;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OOOOOO:publish_async",
					 kwlist, &queue, &payload, &key,
					 &headers, &dedup, &delay, &at, &cb))
		return NULL;
	if (cb == Py_None)
		cb = NULL;
	m = message_of(payload, key, headers, dedup, delay, at);
	if (m == NULL)
		return NULL;
	if ((c = pr_enter(self)) == NULL) {
		ringmq_message_free(m);
		return NULL;
	}
	Py_XINCREF(cb);
	PR_NOGIL(rc = ringmq_publish_async(c, queue, m, on_publish, cb));
	pr_leave(self);
	ringmq_message_free(m);
	if (rc != RINGMQ_OK) {
		Py_XDECREF(cb); /* no callback comes */
		return raise_from(c, rc);
	}
	Py_RETURN_NONE;
}

/* A message of a batch item: payload alone, or a tuple (payload, key,
 * headers, dedup_id, delay, deliver_at) whose tail may be cut short. */
static ringmq_message *
batch_item(PyObject *it)
{
	PyObject *f[6] = { NULL };

	if (!PyTuple_Check(it))
		return message_of(it, NULL, NULL, NULL, NULL, NULL);
	if (!PyArg_UnpackTuple(it, "message", 1, 6, &f[0], &f[1], &f[2], &f[3],
			       &f[4], &f[5]))
		return NULL;
	return message_of(f[0], f[1], f[2], f[3], f[4], f[5]);
}

static PyObject *
client_publish_batch(ClientObject *self, PyObject *args)
{
	const char *queue;
	PyObject *items, *seq, *out = NULL;
	ringmq_message **msgs;
	ringmq_publish_results *res = NULL;
	ringmq_client *c;
	Py_ssize_t n, made = 0;
	int rc;

	if (!PyArg_ParseTuple(args, "sO:publish_batch", &queue, &items))
		return NULL;
	seq = PySequence_Fast(items, "messages: a sequence");
	if (seq == NULL)
		return NULL;
	n = PySequence_Fast_GET_SIZE(seq);
	msgs = calloc((size_t)n + 1, sizeof(*msgs));
	if (msgs == NULL) {
		Py_DECREF(seq);
		return PyErr_NoMemory();
	}
	for (; made < n; made++) {
		msgs[made] = batch_item(PySequence_Fast_GET_ITEM(seq, made));
		if (msgs[made] == NULL)
			goto done;
	}
	if ((c = pr_enter(self)) == NULL)
		goto done;
	PR_NOGIL(rc = ringmq_publish_batch(c, queue,
					   (const ringmq_message *const *)msgs,
					   (size_t)n, &res));
	pr_leave(self);
	if (res == NULL) {
		raise_from(c, rc);
		goto done;
	}
	out = PyList_New(n);
	for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
		size_t k = (size_t)i;
		PyObject *t = Py_BuildValue(
			"(iIKOs)", ringmq_publish_results_code(res, k),
			ringmq_publish_results_partition(res, k),
			(unsigned long long)ringmq_publish_results_offset(res,
									  k),
			ringmq_publish_results_is_duplicate(res, k) ? Py_True
								    : Py_False,
			ringmq_publish_results_message(res, k));

		if (t == NULL) {
			Py_CLEAR(out);
			break;
		}
		PyList_SET_ITEM(out, i, t);
	}
done:
	for (Py_ssize_t i = 0; i < made; i++)
		ringmq_message_free(msgs[i]);
	free(msgs);
	ringmq_publish_results_free(res);
	Py_DECREF(seq);
	return out;
}

/* ------------------------------------------------------ consume */

static PyObject *
client_subscribe(ClientObject *self, PyObject *args)
{
	const char *queue, *group;
	unsigned int credit;
	int start, rc;
	uint32_t sub = 0;
	ringmq_client *c;

	if (!PyArg_ParseTuple(args, "ssIi:subscribe", &queue, &group, &credit,
			      &start))
		return NULL;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL(rc = ringmq_subscribe(c, &sub, queue, group, credit, start));
	pr_leave(self);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	return PyLong_FromUnsignedLong(sub);
}

static PyObject *
client_set_credit(ClientObject *self, PyObject *args)
{
	unsigned int sub, credit;
	ringmq_client *c;
	int rc;

	if (!PyArg_ParseTuple(args, "II:set_credit", &sub, &credit))
		return NULL;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL(rc = ringmq_subscription_set_credit(c, sub, credit));
	pr_leave(self);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	Py_RETURN_NONE;
}

static PyObject *
client_unsubscribe(ClientObject *self, PyObject *arg)
{
	unsigned long sub = PyLong_AsUnsignedLong(arg);
	ringmq_client *c;
	int rc;

	if (sub == (unsigned long)-1 && PyErr_Occurred())
		return NULL;
	if ((c = pr_enter(self)) == NULL)
		return NULL;
	PR_NOGIL(rc = ringmq_unsubscribe(c, (uint32_t)sub));
	pr_leave(self);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	Py_RETURN_NONE;
}

static PyObject *
client_subscription_status(ClientObject *self, PyObject *arg)
{
	unsigned long sub = PyLong_AsUnsignedLong(arg);
	int rc;

	if (sub == (unsigned long)-1 && PyErr_Occurred())
		return NULL;
	if (self->c == NULL || self->is_closing)
		return Py_BuildValue("(is)", RINGMQ_CLOSED,
				     "the client is closed");
	rc = ringmq_subscription_status(self->c, (uint32_t)sub);
	return Py_BuildValue("(is)", rc,
			     rc == RINGMQ_OK ? ""
					     : ringmq_client_errmsg(self->c));
}

/* Waits in slices, so that close() and signals (KeyboardInterrupt in
 * the main thread) are seen within one. */
#define NEXT_SLICE_MS 100

/*
 * next(timeout_ms, max=1): the next deliveries, waiting at most timeout_ms
 * for the first (negative: no limit) and not at all for the rest.
 * @return a list of jobs, empty when none came in time.
 */
static PyObject *
client_next(ClientObject *self, PyObject *args)
{
	long timeout_ms;
	Py_ssize_t max = 1;
	struct timespec t0;
	PyObject *out;
	ringmq_client *c;

	if (!PyArg_ParseTuple(args, "l|n:next", &timeout_ms, &max))
		return NULL;
	if (self->pending_code != RINGMQ_OK) {
		int code = self->pending_code;

		self->pending_code = RINGMQ_OK;
		return pr_raise(code, self->pending_text);
	}
	if ((out = PyList_New(0)) == NULL)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (PyList_GET_SIZE(out) < max) {
		ringmq_delivery *d = NULL;
		long wait_ms = 0, spent;
		struct timespec t;
		int rc;
		PyObject *job;

		if (PyList_GET_SIZE(out) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			spent = (t.tv_sec - t0.tv_sec) * 1000 +
				(t.tv_nsec - t0.tv_nsec) / 1000000;
			wait_ms = timeout_ms < 0 ? NEXT_SLICE_MS
						 : timeout_ms - spent;
			if (wait_ms < 0)
				wait_ms = 0;
			if (wait_ms > NEXT_SLICE_MS)
				wait_ms = NEXT_SLICE_MS;
		}
		if ((c = pr_enter(self)) == NULL)
			goto fail;
		PR_NOGIL(rc = ringmq_next(c, &d, (int)wait_ms));
		pr_leave(self);
		if (rc == RINGMQ_TIMEOUT) {
			if (PyList_GET_SIZE(out) > 0)
				break;
			if (self->is_closing) {
				pr_raise(RINGMQ_CLOSED, "the client is closed");
				goto fail;
			}
			if (PyErr_CheckSignals() < 0)
				goto fail;
			clock_gettime(CLOCK_MONOTONIC, &t);
			spent = (t.tv_sec - t0.tv_sec) * 1000 +
				(t.tv_nsec - t0.tv_nsec) / 1000000;
			if (timeout_ms >= 0 && spent >= timeout_ms)
				break;
			continue;
		}
		if (rc != RINGMQ_OK && PyList_GET_SIZE(out) > 0) {
			self->pending_code = rc;
			snprintf(self->pending_text, sizeof(self->pending_text),
				 "%s", ringmq_client_errmsg(c));
			break;
		}
		if (rc != RINGMQ_OK) {
			raise_from(c, rc);
			goto fail;
		}
		job = pr_job_new(self, d);
		if (job == NULL || PyList_Append(out, job) < 0) {
			Py_XDECREF(job);
			goto fail;
		}
		Py_DECREF(job);
	}
	return out;
fail:
	Py_DECREF(out);
	return NULL;
}

/* ------------------------------------------------------ settle */

int
pr_settle(ClientObject *self, int op, const uint64_t *ids, size_t n,
	  uint64_t arg, const char *reason, int *codes, uint64_t *remaining)
{
	ringmq_client *c = pr_enter(self);
	int rc = RINGMQ_CLOSED;

	if (c == NULL)
		return rc;
	Py_BEGIN_ALLOW_THREADS switch (op)
	{
	case 'a': rc = ringmq_ack(c, ids, n, codes); break;
	case 'n': rc = ringmq_nack_reason(c, ids, n, arg, reason, codes); break;
	case 'r': rc = ringmq_release(c, ids, n, codes); break;
	default: rc = ringmq_touch(c, ids, n, arg, codes, remaining); break;
	}
	Py_END_ALLOW_THREADS pr_leave(self);
	return rc;
}

/* Lease ids from a sequence of ints; *np their number. */
static uint64_t *
ids_of(PyObject *o, size_t *np)
{
	PyObject *seq = PySequence_Fast(o, "lease ids: a sequence of int");
	uint64_t *ids;
	Py_ssize_t n;

	if (seq == NULL)
		return NULL;
	n = PySequence_Fast_GET_SIZE(seq);
	ids = malloc(((size_t)n + 1) * sizeof(*ids));
	if (ids == NULL) {
		Py_DECREF(seq);
		return (uint64_t *)PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		ids[i] = PyLong_AsUnsignedLongLong(
			PySequence_Fast_GET_ITEM(seq, i));
		if (ids[i] == (uint64_t)-1 && PyErr_Occurred()) {
			free(ids);
			Py_DECREF(seq);
			return NULL;
		}
	}
	Py_DECREF(seq);
	*np = (size_t)n;
	return ids;
}

/*
 * settle(op, lease_ids, arg_ms=0, reason=None): acks ("ack"), nacks
 * ("nack", delay, reason),
 * releases ("release") or touches ("touch", lease) many leases.
 * @return (status, [code per id], [remaining ms per id, touch only]).
 */
static PyObject *
client_settle(ClientObject *self, PyObject *args)
{
	const char *op, *reason = NULL;
	PyObject *o, *codes_l, *rem_l;
	unsigned long long arg = 0;
	uint64_t *ids, *rem = NULL;
	int *codes;
	size_t n = 0;
	int rc;

	if (!PyArg_ParseTuple(args, "sO|Kz:settle", &op, &o, &arg, &reason))
		return NULL;
	if (strcmp(op, "ack") != 0 && strcmp(op, "nack") != 0 &&
	    strcmp(op, "release") != 0 && strcmp(op, "touch") != 0) {
		PyErr_Format(PyExc_ValueError, "unknown operation %s", op);
		return NULL;
	}
	if ((ids = ids_of(o, &n)) == NULL)
		return NULL;
	codes = calloc(n + 1, sizeof(*codes));
	rem = calloc(n + 1, sizeof(*rem));
	if (codes == NULL || rem == NULL) {
		free(ids);
		free(codes);
		free(rem);
		return PyErr_NoMemory();
	}
	rc = pr_settle(self, op[0], ids, n, arg, reason, codes, rem);
	codes_l = PyList_New((Py_ssize_t)n);
	rem_l = PyList_New(op[0] == 't' ? (Py_ssize_t)n : 0);
	for (size_t i = 0; codes_l != NULL && rem_l != NULL && i < n; i++) {
		PyList_SET_ITEM(codes_l, i, PyLong_FromLong(codes[i]));
		if (op[0] == 't')
			PyList_SET_ITEM(rem_l, i,
					PyLong_FromUnsignedLongLong(rem[i]));
	}
	free(ids);
	free(codes);
	free(rem);
	if (codes_l == NULL || rem_l == NULL) {
		Py_XDECREF(codes_l);
		Py_XDECREF(rem_l);
		return NULL;
	}
	if (PyErr_Occurred()) { /* closed: nothing was sent */
		Py_DECREF(codes_l);
		Py_DECREF(rem_l);
		return NULL;
	}
	return Py_BuildValue("(iNN)", rc, codes_l, rem_l);
}

/* ack_async(lease_ids, callback=None): callback(ids, codes) per request,
 * run by the next poll or flush. */
static PyObject *
client_ack_async(ClientObject *self, PyObject *args)
{
	PyObject *o, *cb = Py_None;
	uint64_t *ids;
	size_t n = 0;
	ringmq_client *c;
	int rc;

	if (!PyArg_ParseTuple(args, "O|O:ack_async", &o, &cb))
		return NULL;
	if ((ids = ids_of(o, &n)) == NULL)
		return NULL;
	if ((c = pr_enter(self)) == NULL) {
		free(ids);
		return NULL;
	}
	if (cb == Py_None || n == 0) {
		PR_NOGIL(rc = ringmq_ack_async(c, ids, n, NULL, NULL));
	} else {
		struct ack_ctx *a = PyMem_RawMalloc(sizeof(*a));

		if (a == NULL) {
			pr_leave(self);
			free(ids);
			return PyErr_NoMemory();
		}
		Py_INCREF(cb);
		a->fn = cb;
		a->refs = 0;
		a->unsent = n;
		PR_NOGIL(rc = ringmq_ack_async(c, ids, n, on_ack, a));
		if (rc != RINGMQ_OK && rc != RINGMQ_INTERNAL) {
			/* Nothing queued: no report comes. (Out of memory
			 * half way, the queued part still reports, and the
			 * context is never freed.) */
			Py_DECREF(cb);
			PyMem_RawFree(a);
		}
	}
	pr_leave(self);
	free(ids);
	if (rc != RINGMQ_OK)
		return raise_from(c, rc);
	Py_RETURN_NONE;
}

static PyMethodDef client_methods[] = {
	{ "close", (PyCFunction)client_close, METH_NOARGS,
	  "close(): closes the connection; unanswered asynchronous publishes "
	  "are reported CLOSED." },
	{ "poll", (PyCFunction)client_poll, METH_O,
	  "poll(timeout_ms) -> int: serves the client, runs ready callbacks." },
	{ "poll_timeout", (PyCFunction)client_poll_timeout, METH_NOARGS,
	  "poll_timeout() -> int: ms until poll(0) is due; -1: none." },
	{ "fd", (PyCFunction)client_fd, METH_NOARGS,
	  "fd() -> int: the socket to watch for readability; -1: none." },
	{ "flush", (PyCFunction)client_flush, METH_O,
	  "flush(timeout_ms): waits until every publish and ack is answered." },
	{ "ping", (PyCFunction)client_ping, METH_NOARGS,
	  "ping(): one round trip to the broker." },
	{ "wakeup", (PyCFunction)client_wakeup, METH_NOARGS,
	  "wakeup(): makes a waiting next() return early." },
	{ "info", (PyCFunction)client_info, METH_NOARGS,
	  "info() -> dict: server, producer id, limits, outstanding." },
	{ "publish", (PyCFunction)(void (*)(void))client_publish,
	  METH_VARARGS | METH_KEYWORDS,
	  "publish(queue, payload, key, headers, dedup_id, delay, "
	  "deliver_at) -> (partition, offset, duplicate)." },
	{ "publish_async", (PyCFunction)(void (*)(void))client_publish_async,
	  METH_VARARGS | METH_KEYWORDS,
	  "publish_async(queue, payload, ..., callback): callback(code, "
	  "partition, offset, duplicate, text) runs in a later poll." },
	{ "publish_batch", (PyCFunction)client_publish_batch, METH_VARARGS,
	  "publish_batch(queue, items) -> [(code, partition, offset, "
	  "duplicate, text)]." },
	{ "subscribe", (PyCFunction)client_subscribe, METH_VARARGS,
	  "subscribe(queue, group, credit, start) -> subscription id." },
	{ "set_credit", (PyCFunction)client_set_credit, METH_VARARGS,
	  "set_credit(subscription, credit)." },
	{ "unsubscribe", (PyCFunction)client_unsubscribe, METH_O,
	  "unsubscribe(subscription)." },
	{ "subscription_status", (PyCFunction)client_subscription_status,
	  METH_O, "subscription_status(subscription) -> (code, message)." },
	{ "next", (PyCFunction)client_next, METH_VARARGS,
	  "next(timeout_ms, max=1) -> [Job]: the next deliveries." },
	{ "settle", (PyCFunction)client_settle, METH_VARARGS,
	  "settle(op, lease_ids, arg_ms=0, reason=None) -> (status, codes, "
	  "remaining)." },
	{ "ack_async", (PyCFunction)client_ack_async, METH_VARARGS,
	  "ack_async(lease_ids, callback=None): callback(ids, codes)." },
	{ NULL, NULL, 0, NULL },
};

PyTypeObject pr_client_type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ringmq._ringmq.Client",
	.tp_doc = "Client(options): a connection to a broker (libringmq's "
		  "ringmq_client); options is a sequence of (name, value).",
	.tp_basicsize = sizeof(ClientObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)client_init,
	.tp_dealloc = (destructor)client_dealloc,
	.tp_methods = client_methods,
};
