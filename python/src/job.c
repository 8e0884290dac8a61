/*
 * job.c: the Job type of ringmq._ringmq: one delivery, leased to this
 * client, with its fields read lazily and its lease settled from it.
 */
#include "pyringmq.h"

#include <structmember.h>

PyObject *
pr_job_new(ClientObject *client, ringmq_delivery *d)
{
	JobObject *j = PyObject_New(JobObject, &pr_job_type);

	if (j == NULL) {
		ringmq_delivery_free(d);
		return NULL;
	}
	Py_INCREF(client);
	j->client = client;
	j->d = d;
	j->payload = NULL;
	j->headers = NULL;
	return (PyObject *)j;
}

static void
job_dealloc(JobObject *j)
{
	ringmq_delivery_free(j->d);
	Py_XDECREF(j->payload);
	Py_XDECREF(j->headers);
	Py_XDECREF(j->client);
	PyObject_Free(j);
}

static PyObject *
job_payload(JobObject *j, void *unused)
{
	(void)unused;
	if (j->payload == NULL) {
		size_t len;
		const void *p = ringmq_delivery_payload(j->d, &len);

		j->payload = PyBytes_FromStringAndSize(p, (Py_ssize_t)len);
		if (j->payload == NULL)
			return NULL;
	}
	Py_INCREF(j->payload);
	return j->payload;
}

static PyObject *
job_text(JobObject *j, void *unused)
{
	size_t len;
	const char *p = ringmq_delivery_payload(j->d, &len);

	(void)unused;
	return PyUnicode_DecodeUTF8(p, (Py_ssize_t)len, "strict");
}

static PyObject *
job_key(JobObject *j, void *unused)
{
	size_t len;
	const void *k = ringmq_delivery_key(j->d, &len);

	(void)unused;
	if (k == NULL)
		Py_RETURN_NONE;
	return PyBytes_FromStringAndSize(k, (Py_ssize_t)len);
}

static PyObject *
job_headers(JobObject *j, void *unused)
{
	(void)unused;
	if (j->headers == NULL) {
		size_t n = ringmq_delivery_header_count(j->d);
		PyObject *h = PyDict_New();

		for (size_t i = 0; h != NULL && i < n; i++) {
			size_t len;
			const void *v =
				ringmq_delivery_header_value(j->d, i, &len);
			PyObject *bv =
				PyBytes_FromStringAndSize(v, (Py_ssize_t)len);

			if (bv == NULL ||
			    PyDict_SetItemString(
				    h, ringmq_delivery_header_name(j->d, i),
				    bv) < 0)
				Py_CLEAR(h);
			Py_XDECREF(bv);
		}
		if (h == NULL)
			return NULL;
		j->headers = h;
	}
	/* A copy: the caller may change it without changing the job. */
	return PyDict_Copy(j->headers);
}

#define U64_GETTER(name, expr)                                  \
	static PyObject *job_##name(JobObject *j, void *unused) \
	{                                                       \
		(void)unused;                                   \
		return PyLong_FromUnsignedLongLong(expr);       \
	}

U64_GETTER(partition, ringmq_delivery_partition(j->d))
U64_GETTER(offset, ringmq_delivery_offset(j->d))
U64_GETTER(lease_id, ringmq_delivery_lease_id(j->d))
U64_GETTER(delivery_count, ringmq_delivery_delivery_count(j->d))
U64_GETTER(subscription, ringmq_delivery_subscription(j->d))

static PyObject *
job_publish_time(JobObject *j, void *unused)
{
	uint64_t ms = ringmq_delivery_publish_ms(j->d);

	(void)unused;
	if (ms == 0)
		Py_RETURN_NONE;
	return PyFloat_FromDouble((double)ms / 1000.0);
}

static PyObject *
job_lease_time(JobObject *j, void *unused)
{
	(void)unused;
	return PyFloat_FromDouble(
		(double)ringmq_delivery_lease_remaining_ms(j->d) / 1000.0);
}

/* Settles this job's lease. @return 0; -1 with the exception set for
 * any status but OK. */
static int
settle_one(JobObject *j, int op, uint64_t arg, const char *reason,
	   uint64_t *remaining)
{
	uint64_t id = ringmq_delivery_lease_id(j->d);
	int code = RINGMQ_OK;
	int rc =
		pr_settle(j->client, op, &id, 1, arg, reason, &code, remaining);

	if (rc == RINGMQ_OK)
		return 0;
	if (!PyErr_Occurred())
		pr_raise(rc, j->client->c != NULL
				     ? ringmq_client_errmsg(j->client->c)
				     : NULL);
	return -1;
}

static PyObject *
job_ack(JobObject *j, PyObject *unused)
{
	(void)unused;
	if (settle_one(j, 'a', 0, NULL, NULL) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *
job_release(JobObject *j, PyObject *unused)
{
	(void)unused;
	if (settle_one(j, 'r', 0, NULL, NULL) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *
job_nack(JobObject *j, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "delay", "reason", NULL };
	PyObject *delay = NULL;
	const char *reason = NULL;
	int64_t ms;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|Oz:nack", kwlist, &delay,
					 &reason))
		return NULL;
	if ((ms = pr_ms_of(delay, 0, "delay")) < 0)
		return NULL;
	if (settle_one(j, 'n', (uint64_t)ms, reason, NULL) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *
job_touch(JobObject *j, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "lease", NULL };
	PyObject *lease = NULL;
	uint64_t remaining = 0;
	int64_t ms;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:touch", kwlist, &lease))
		return NULL;
	if ((ms = pr_ms_of(lease, 0, "lease")) < 0)
		return NULL;
	if (settle_one(j, 't', (uint64_t)ms, NULL, &remaining) < 0)
		return NULL;
	return PyFloat_FromDouble((double)remaining / 1000.0);
}

static PyObject *
job_repr(JobObject *j)
{
	return PyUnicode_FromFormat(
		"<ringmq.Job partition=%u offset=%llu lease_id=%llu "
		"delivery_count=%u>",
		ringmq_delivery_partition(j->d),
		(unsigned long long)ringmq_delivery_offset(j->d),
		(unsigned long long)ringmq_delivery_lease_id(j->d),
		ringmq_delivery_delivery_count(j->d));
}

static PyGetSetDef job_getset[] = {
	{ "payload", (getter)job_payload, NULL, "The payload (bytes).", NULL },
	{ "text", (getter)job_text, NULL, "The payload decoded as UTF-8.",
	  NULL },
	{ "key", (getter)job_key, NULL, "The key (bytes), or None.", NULL },
	{ "headers", (getter)job_headers, NULL,
	  "The headers: a new dict of str to bytes.", NULL },
	{ "partition", (getter)job_partition, NULL, "Its partition.", NULL },
	{ "offset", (getter)job_offset, NULL, "Its offset in the partition.",
	  NULL },
	{ "lease_id", (getter)job_lease_id, NULL,
	  "The lease this client holds on it.", NULL },
	{ "delivery_count", (getter)job_delivery_count, NULL,
	  "1 + the earlier leases of it in this group that failed.", NULL },
	{ "subscription", (getter)job_subscription, NULL,
	  "The subscription it came on.", NULL },
	{ "publish_time", (getter)job_publish_time, NULL,
	  "When it was published, seconds since the epoch (broker's clock); "
	  "None if not known.",
	  NULL },
	{ "lease_time", (getter)job_lease_time, NULL,
	  "Lease time left when the broker sent it, in seconds.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef job_methods[] = {
	{ "ack", (PyCFunction)job_ack, METH_NOARGS,
	  "ack(): done; never delivered to this group again. Waits for the "
	  "broker." },
	{ "nack", (PyCFunction)(void (*)(void))job_nack,
	  METH_VARARGS | METH_KEYWORDS,
	  "nack(delay=0, reason=None): failed; ready again after delay "
	  "seconds (counts toward the queue's max deliveries). reason (str) "
	  "goes into the dead letter (ringmq-last-error) if this nack "
	  "dead-letters the job." },
	{ "release", (PyCFunction)job_release, METH_NOARGS,
	  "release(): handed back unworked; ready again at once, its delivery "
	  "count unchanged." },
	{ "touch", (PyCFunction)(void (*)(void))job_touch,
	  METH_VARARGS | METH_KEYWORDS,
	  "touch(lease=None) -> float: extends the lease to now + lease "
	  "seconds (None: the queue's lease time), capped by its max lease; "
	  "returns the seconds left." },
	{ NULL, NULL, 0, NULL },
};

PyTypeObject pr_job_type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ringmq.Job",
	.tp_doc = "A message leased to this client: read its payload, key "
		  "and headers; ack(), nack(), release() or touch() its lease. "
		  "Raised errors: LeaseExpired, NotLeased and the connection "
		  "errors.",
	.tp_basicsize = sizeof(JobObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)job_dealloc,
	.tp_repr = (reprfunc)job_repr,
	.tp_getset = job_getset,
	.tp_methods = job_methods,
};
