/*
 * admin.c: the administration and user calls of ringmq._ringmq, as
 * module functions taking the client first; answers come back as plain
 * dicts and lists, which ringmq/_admin.py turns into dataclasses.
 */
#include "pyringmq.h"

/* Enters the client given as first argument; NULL with an exception. */
#define ENTER(obj, self, c)                               \
	do {                                              \
		if ((self = pr_client_of(obj)) == NULL || \
		    (c = pr_enter(self)) == NULL)         \
			return NULL;                      \
	} while (0)

/* Leaves, and raises for a status but OK. */
static PyObject *
done(ClientObject *self, ringmq_client *c, int rc)
{
	pr_leave(self);
	if (rc != RINGMQ_OK)
		return pr_raise(rc, ringmq_client_errmsg(c));
	Py_RETURN_NONE;
}

static PyObject *
bytes_or_none(const void *p, size_t len)
{
	if (p == NULL)
		Py_RETURN_NONE;
	return PyBytes_FromStringAndSize(p, (Py_ssize_t)len);
}

/* Settings of a queue from a dict of str to str. */
static ringmq_queue_opts *
queue_opts_of(PyObject *settings)
{
	ringmq_queue_opts *o = ringmq_queue_opts_new();
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	char err[256];

	if (o == NULL)
		return (ringmq_queue_opts *)PyErr_NoMemory();
	if (settings == Py_None)
		return o;
	if (!PyDict_Check(settings)) {
		PyErr_SetString(PyExc_TypeError, "settings: a dict");
		goto fail;
	}
	while (PyDict_Next(settings, &pos, &k, &v)) {
		const char *name = PyUnicode_AsUTF8(k);
		const char *value = PyUnicode_AsUTF8(v);
		int rc;

		if (name == NULL || value == NULL)
			goto fail;
		rc = ringmq_queue_opts_set(o, name, value, err, sizeof(err));
		if (rc != RINGMQ_OK) {
			pr_raise(rc, err);
			goto fail;
		}
	}
	return o;
fail:
	ringmq_queue_opts_free(o);
	return NULL;
}

/* A status-only call of one of these shapes: parses the arguments after
 * the client, runs fn with the GIL dropped, raises for a status but OK. */
typedef int (*call_s_fn)(ringmq_client *c, const char *a);
typedef int (*call_ss_fn)(ringmq_client *c, const char *a, const char *b);

static PyObject *
call_s(PyObject *args, call_s_fn fn)
{
	PyObject *obj;
	const char *a;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	if (!PyArg_ParseTuple(args, "Os", &obj, &a))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = fn(c, a));
	return done(self, c, rc);
}

static PyObject *
call_ss(PyObject *args, call_ss_fn fn)
{
	PyObject *obj;
	const char *a, *b;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	if (!PyArg_ParseTuple(args, "Oss", &obj, &a, &b))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = fn(c, a, b));
	return done(self, c, rc);
}

/* A module function over call_s or call_ss. */
#define CALL_S(name, fn)                                   \
	static PyObject *name(PyObject *m, PyObject *args) \
	{                                                  \
		(void)m;                                   \
		return call_s(args, fn);                   \
	}
#define CALL_SS(name, fn)                                  \
	static PyObject *name(PyObject *m, PyObject *args) \
	{                                                  \
		(void)m;                                   \
		return call_ss(args, fn);                  \
	}

CALL_S(queue_delete, ringmq_queue_delete)
CALL_SS(group_delete, ringmq_group_delete)
CALL_SS(user_add, ringmq_user_add)
CALL_SS(user_passwd, ringmq_user_passwd)
CALL_S(user_delete, ringmq_user_delete)
CALL_SS(acl_delete, ringmq_acl_delete)

static PyObject *
queue_settings_call(PyObject *args, int (*fn)(ringmq_client *, const char *,
					      const ringmq_queue_opts *))
{
	PyObject *obj, *settings = Py_None;
	const char *name;
	ClientObject *self;
	ringmq_client *c;
	ringmq_queue_opts *o;
	int rc;

	if (!PyArg_ParseTuple(args, "Os|O", &obj, &name, &settings))
		return NULL;
	if ((o = queue_opts_of(settings)) == NULL)
		return NULL;
	if ((self = pr_client_of(obj)) == NULL ||
	    (c = pr_enter(self)) == NULL) {
		ringmq_queue_opts_free(o);
		return NULL;
	}
	PR_NOGIL(rc = fn(c, name, o));
	ringmq_queue_opts_free(o);
	return done(self, c, rc);
}

static PyObject *
queue_create(PyObject *m, PyObject *args)
{
	(void)m;
	return queue_settings_call(args, ringmq_queue_create);
}

static PyObject *
queue_set(PyObject *m, PyObject *args)
{
	(void)m;
	return queue_settings_call(args, ringmq_queue_set);
}

static PyObject *
queue_purge(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *name;
	ClientObject *self;
	ringmq_client *c;
	uint64_t n = 0;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os", &obj, &name))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_queue_purge(c, name, &n));
	if (done(self, c, rc) == NULL)
		return NULL;
	return PyLong_FromUnsignedLongLong(n);
}

static const char *const setting_names[] = {
	"lease-ms",  "max-lease-ms", "max-deliveries",
	"max-depth", "max-bytes",    "dedup-window-ms",
};

/* Adds the policies a queue list or description reports to dict d. */
#define ADD_SETTINGS(d, getter, ...)                                         \
	do {                                                                 \
		for (size_t s_ = 0;                                          \
		     s_ < sizeof(setting_names) / sizeof(setting_names[0]);  \
		     s_++) {                                                 \
			uint64_t v_;                                         \
			PyObject *o_;                                        \
			if (!getter(__VA_ARGS__, setting_names[s_], &v_))    \
				continue;                                    \
			o_ = PyLong_FromUnsignedLongLong(v_);                \
			if (o_ == NULL ||                                    \
			    PyDict_SetItemString(d, setting_names[s_], o_) < \
				    0) {                                     \
				Py_XDECREF(o_);                              \
				goto fail;                                   \
			}                                                    \
			Py_DECREF(o_);                                       \
		}                                                            \
	} while (0)

static PyObject *
queue_list(PyObject *m, PyObject *obj)
{
	ClientObject *self;
	ringmq_client *c;
	ringmq_queue_list *l = NULL;
	PyObject *out = NULL;
	int rc;

	(void)m;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_queue_list_get(c, &l));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = PyList_New(0);
	for (size_t i = 0; out != NULL && i < ringmq_queue_list_count(l); i++) {
		uint64_t pub = 0, del = 0, acked = 0;
		const char *dlq = ringmq_queue_list_dead_letter_queue(l, i);
		PyObject *d, *settings = PyDict_New();

		(void)ringmq_queue_list_total(l, i, "published", &pub);
		(void)ringmq_queue_list_total(l, i, "delivered", &del);
		(void)ringmq_queue_list_total(l, i, "acked", &acked);
		if (settings == NULL)
			goto fail;
		ADD_SETTINGS(settings, ringmq_queue_list_setting, l, i);
		d = Py_BuildValue(
			"{s:s,s:I,s:K,s:K,s:K,s:I,s:K,s:K,s:K,s:K,s:K,s:z,s:O}",
			"name", ringmq_queue_list_name(l, i), "partitions",
			ringmq_queue_list_partitions(l, i), "ready",
			(unsigned long long)ringmq_queue_list_ready(l, i),
			"delayed",
			(unsigned long long)ringmq_queue_list_delayed(l, i),
			"in_flight",
			(unsigned long long)ringmq_queue_list_in_flight(l, i),
			"groups", ringmq_queue_list_groups(l, i), "messages",
			(unsigned long long)ringmq_queue_list_messages(l, i),
			"bytes",
			(unsigned long long)ringmq_queue_list_bytes(l, i),
			"published", (unsigned long long)pub, "delivered",
			(unsigned long long)del, "acked",
			(unsigned long long)acked, "dead_letter_queue", dlq,
			"settings", settings);
		Py_DECREF(settings);
		if (d == NULL || PyList_Append(out, d) < 0) {
			Py_XDECREF(d);
			goto fail;
		}
		Py_DECREF(d);
	}
	ringmq_queue_list_free(l);
	return out;
fail:
	Py_XDECREF(out);
	ringmq_queue_list_free(l);
	return NULL;
}

/* The groups of a list, as dicts. */
static PyObject *
groups_of(const ringmq_group_list *l)
{
	PyObject *out = PyList_New(0);

	for (size_t i = 0; out != NULL && i < ringmq_group_list_count(l); i++) {
		size_t np = ringmq_group_list_partition_count(l, i);
		PyObject *floors = PyList_New((Py_ssize_t)np);
		PyObject *d;

		for (size_t p = 0; floors != NULL && p < np; p++)
			PyList_SET_ITEM(
				floors, p,
				PyLong_FromUnsignedLongLong(
					ringmq_group_list_ack_floor(l, i, p)));
		if (floors == NULL) {
			Py_CLEAR(out);
			break;
		}
		d = Py_BuildValue(
			"{s:s,s:s,s:K,s:K,s:K,s:I,s:N}", "queue",
			ringmq_group_list_queue(l, i), "name",
			ringmq_group_list_name(l, i), "ready",
			(unsigned long long)ringmq_group_list_ready(l, i),
			"in_flight",
			(unsigned long long)ringmq_group_list_in_flight(l, i),
			"lag", (unsigned long long)ringmq_group_list_lag(l, i),
			"consumers", ringmq_group_list_consumers(l, i),
			"ack_floors", floors);
		if (d == NULL || PyList_Append(out, d) < 0) {
			Py_XDECREF(d);
			Py_CLEAR(out);
			break;
		}
		Py_DECREF(d);
	}
	return out;
}

static PyObject *
queue_describe(PyObject *m, PyObject *args)
{
	PyObject *obj, *d = NULL, *parts = NULL, *groups = NULL, *settings;
	const char *name;
	ClientObject *self;
	ringmq_client *c;
	ringmq_queue_describe *q = NULL;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os", &obj, &name))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_queue_describe_get(c, name, &q));
	if (done(self, c, rc) == NULL)
		return NULL;
	settings = PyDict_New();
	if (settings == NULL)
		goto fail;
	ADD_SETTINGS(settings, ringmq_queue_describe_setting, q);
	parts = PyList_New(0);
	for (size_t i = 0;
	     parts != NULL && i < ringmq_queue_describe_partition_count(q);
	     i++) {
		PyObject *p = Py_BuildValue(
			"{s:I,s:K,s:K,s:K,s:K,s:K}", "partition",
			ringmq_queue_describe_partition(q, i), "messages",
			(unsigned long long)
				ringmq_queue_describe_partition_messages(q, i),
			"bytes",
			(unsigned long long)
				ringmq_queue_describe_partition_bytes(q, i),
			"first_offset",
			(unsigned long long)
				ringmq_queue_describe_partition_first_offset(q,
									     i),
			"next_offset",
			(unsigned long long)
				ringmq_queue_describe_partition_next_offset(q,
									    i),
			"oldest_publish_ms",
			(unsigned long long)
				ringmq_queue_describe_partition_oldest_publish_ms(
					q, i));

		if (p == NULL || PyList_Append(parts, p) < 0) {
			Py_XDECREF(p);
			goto fail;
		}
		Py_DECREF(p);
	}
	if (parts == NULL ||
	    (groups = groups_of(ringmq_queue_describe_groups(q))) == NULL)
		goto fail;
	d = Py_BuildValue(
		"{s:s,s:I,s:K,s:K,s:K,s:K,s:K,s:z,s:N,s:N,s:N}", "name",
		ringmq_queue_describe_name(q), "partitions",
		ringmq_queue_describe_partitions(q), "ready",
		(unsigned long long)ringmq_queue_describe_ready(q), "delayed",
		(unsigned long long)ringmq_queue_describe_delayed(q),
		"in_flight",
		(unsigned long long)ringmq_queue_describe_in_flight(q),
		"messages",
		(unsigned long long)ringmq_queue_describe_messages(q), "bytes",
		(unsigned long long)ringmq_queue_describe_bytes(q),
		"dead_letter_queue", ringmq_queue_describe_dead_letter_queue(q),
		"settings", settings, "partition_detail", parts, "group_detail",
		groups);
	ringmq_queue_describe_free(q);
	return d;
fail:
	Py_XDECREF(settings);
	Py_XDECREF(parts);
	Py_XDECREF(groups);
	ringmq_queue_describe_free(q);
	return NULL;
}

static int
start_of(const char *s)
{
	if (strcmp(s, "earliest") == 0)
		return RINGMQ_START_EARLIEST;
	if (strcmp(s, "latest") == 0)
		return RINGMQ_START_LATEST;
	PyErr_Format(PyExc_ValueError,
		     "start must be 'earliest' or 'latest', not %s", s);
	return -1;
}

static PyObject *
group_start_call(PyObject *args,
		 int (*fn)(ringmq_client *, const char *, const char *, int))
{
	PyObject *obj;
	const char *queue, *group, *start = "earliest";
	ClientObject *self;
	ringmq_client *c;
	int rc, st;

	if (!PyArg_ParseTuple(args, "Oss|s", &obj, &queue, &group, &start))
		return NULL;
	if ((st = start_of(start)) < 0)
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = fn(c, queue, group, st));
	return done(self, c, rc);
}

static PyObject *
group_create(PyObject *m, PyObject *args)
{
	(void)m;
	return group_start_call(args, ringmq_group_create);
}

static PyObject *
group_reset(PyObject *m, PyObject *args)
{
	(void)m;
	return group_start_call(args, ringmq_group_reset);
}

static PyObject *
group_list(PyObject *m, PyObject *args)
{
	PyObject *obj, *out;
	const char *queue = NULL, *group = NULL;
	ClientObject *self;
	ringmq_client *c;
	ringmq_group_list *l = NULL;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "O|zz", &obj, &queue, &group))
		return NULL;
	ENTER(obj, self, c);
	if (group != NULL && queue != NULL)
		PR_NOGIL(rc = ringmq_group_describe_get(c, queue, group, &l));
	else
		PR_NOGIL(rc = ringmq_group_list_get(c, queue, &l));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = groups_of(l);
	ringmq_group_list_free(l);
	return out;
}

/* Stored messages as dicts. */
static PyObject *
stored_of(const ringmq_stored_messages *l)
{
	PyObject *out = PyList_New(0);

	for (size_t i = 0; out != NULL && i < ringmq_stored_messages_count(l);
	     i++) {
		size_t plen, klen,
			nh = ringmq_stored_messages_header_count(l, i);
		const void *p = ringmq_stored_messages_payload(l, i, &plen);
		const void *k = ringmq_stored_messages_key(l, i, &klen);
		PyObject *h = PyDict_New(), *d;

		for (size_t j = 0; h != NULL && j < nh; j++) {
			size_t vlen;
			const void *v = ringmq_stored_messages_header_value(
				l, i, j, &vlen);
			PyObject *bv =
				PyBytes_FromStringAndSize(v, (Py_ssize_t)vlen);

			if (bv == NULL ||
			    PyDict_SetItemString(
				    h,
				    ringmq_stored_messages_header_name(l, i, j),
				    bv) < 0)
				Py_CLEAR(h);
			Py_XDECREF(bv);
		}
		if (h == NULL) {
			Py_CLEAR(out);
			break;
		}
		d = Py_BuildValue(
			"{s:I,s:K,s:K,s:y#,s:N,s:N}", "partition",
			ringmq_stored_messages_partition(l, i), "offset",
			(unsigned long long)ringmq_stored_messages_offset(l, i),
			"publish_ms",
			(unsigned long long)ringmq_stored_messages_publish_ms(
				l, i),
			"payload", (const char *)p, (Py_ssize_t)plen, "key",
			bytes_or_none(k, klen), "headers", h);
		if (d == NULL || PyList_Append(out, d) < 0) {
			Py_XDECREF(d);
			Py_CLEAR(out);
			break;
		}
		Py_DECREF(d);
	}
	return out;
}

static PyObject *
peek(PyObject *m, PyObject *args)
{
	PyObject *obj, *out;
	const char *queue;
	int partition = -1;
	unsigned long long from = 0;
	unsigned int count = 0;
	ClientObject *self;
	ringmq_client *c;
	ringmq_stored_messages *l = NULL;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os|iKI", &obj, &queue, &partition, &from,
			      &count))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_peek_get(c, &l, queue, partition, from, count));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = stored_of(l);
	ringmq_stored_messages_free(l);
	return out;
}

static PyObject *
message_show(PyObject *m, PyObject *args)
{
	PyObject *obj, *out;
	const char *queue;
	unsigned int partition;
	unsigned long long offset;
	ClientObject *self;
	ringmq_client *c;
	ringmq_stored_messages *l = NULL;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "OsIK", &obj, &queue, &partition, &offset))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_message_show_get(c, &l, queue, partition, offset));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = stored_of(l);
	ringmq_stored_messages_free(l);
	return out;
}

static PyObject *
message_cancel(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *queue;
	unsigned int partition;
	unsigned long long offset;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "OsIK", &obj, &queue, &partition, &offset))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_message_cancel(c, queue, partition, offset));
	return done(self, c, rc);
}

static PyObject *
dead_letters(PyObject *m, PyObject *args)
{
	PyObject *obj, *out;
	const char *queue;
	unsigned int count = 0, from_partition = 0;
	unsigned long long from_offset = 0;
	ClientObject *self;
	ringmq_client *c;
	ringmq_stored_messages *l = NULL;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os|IIK", &obj, &queue, &count,
			      &from_partition, &from_offset))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_dlq_list_get_from(c, &l, queue, from_partition,
					       from_offset, count));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = stored_of(l);
	ringmq_stored_messages_free(l);
	return out;
}

static PyObject *
redrive(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *queue, *group = NULL;
	unsigned int count = 0;
	uint64_t n = 0;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os|zI", &obj, &queue, &group, &count))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_dlq_redrive(c, queue, group, count, &n));
	if (done(self, c, rc) == NULL)
		return NULL;
	return PyLong_FromUnsignedLongLong(n);
}

static PyObject *
stats(PyObject *m, PyObject *obj)
{
	ClientObject *self;
	ringmq_client *c;
	ringmq_stats *s = NULL;
	PyObject *out;
	int rc;

	(void)m;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_stats_get(c, &s));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = PyDict_New();
	for (size_t i = 0; out != NULL && i < ringmq_stats_count(s); i++) {
		PyObject *v = PyFloat_FromDouble(ringmq_stats_value(s, i));

		if (v == NULL ||
		    PyDict_SetItemString(out, ringmq_stats_name(s, i), v) < 0)
			Py_CLEAR(out);
		Py_XDECREF(v);
	}
	ringmq_stats_free(s);
	return out;
}

/* A str of s, or None for NULL (a new reference, or NULL on error). */
static PyObject *
str_or_none(const char *s)
{
	if (s == NULL)
		Py_RETURN_NONE;
	return PyUnicode_FromString(s);
}

/* The partitions of the i-th queue of d as a list of dicts. */
static PyObject *
metadata_partitions(const ringmq_metadata *d, size_t i)
{
	size_t n = ringmq_metadata_partition_count(d, i);
	PyObject *out = PyList_New((Py_ssize_t)n);

	for (size_t p = 0; out != NULL && p < n; p++) {
		PyObject *owner =
			str_or_none(ringmq_metadata_partition_owner(d, i, p));
		PyObject *e =
			owner == NULL
				? NULL
				: Py_BuildValue(
					  "{s:n,s:O,s:K}", "partition",
					  (Py_ssize_t)p, "owner", owner,
					  "epoch",
					  (unsigned long long)
						  ringmq_metadata_partition_epoch(
							  d, i, p));

		Py_XDECREF(owner);
		if (e == NULL)
			Py_CLEAR(out);
		else
			PyList_SET_ITEM(out, (Py_ssize_t)p, e);
	}
	return out;
}

static PyObject *
metadata(PyObject *m, PyObject *obj)
{
	ClientObject *self;
	ringmq_client *c;
	ringmq_metadata *d = NULL;
	PyObject *brokers = NULL, *queues = NULL, *cluster = NULL;
	PyObject *controller = NULL, *out = NULL;
	int rc;

	(void)m;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_metadata_get(c, &d, NULL, 0));
	if (done(self, c, rc) == NULL)
		return NULL;
	brokers = PyList_New((Py_ssize_t)ringmq_metadata_broker_count(d));
	queues = PyList_New((Py_ssize_t)ringmq_metadata_queue_count(d));
	cluster = str_or_none(ringmq_metadata_cluster(d));
	controller = str_or_none(ringmq_metadata_controller(d));
	if (brokers == NULL || queues == NULL || cluster == NULL ||
	    controller == NULL)
		goto out;
	for (size_t i = 0; i < ringmq_metadata_broker_count(d); i++) {
		PyObject *b = Py_BuildValue(
			"{s:s,s:s}", "id", ringmq_metadata_broker_id(d, i),
			"address", ringmq_metadata_broker_address(d, i));

		if (b == NULL)
			goto out;
		PyList_SET_ITEM(brokers, (Py_ssize_t)i, b);
	}
	for (size_t i = 0; i < ringmq_metadata_queue_count(d); i++) {
		PyObject *parts = metadata_partitions(d, i);
		PyObject *q =
			parts == NULL
				? NULL
				: Py_BuildValue(
					  "{s:s,s:O}", "name",
					  ringmq_metadata_queue_name(d, i),
					  "partitions", parts);

		Py_XDECREF(parts);
		if (q == NULL)
			goto out;
		PyList_SET_ITEM(queues, (Py_ssize_t)i, q);
	}
	out = Py_BuildValue("{s:O,s:O,s:O,s:O}", "cluster", cluster,
			    "controller", controller, "brokers", brokers,
			    "queues", queues);
out:
	Py_XDECREF(brokers);
	Py_XDECREF(queues);
	Py_XDECREF(cluster);
	Py_XDECREF(controller);
	ringmq_metadata_free(d);
	return out;
}

static PyObject *
backup(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *dir;
	uint64_t bytes = 0;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "Os", &obj, &dir))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_backup(c, dir, &bytes));
	if (done(self, c, rc) == NULL)
		return NULL;
	return PyLong_FromUnsignedLongLong(bytes);
}

static PyObject *
user_set_limit(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *name, *limit;
	unsigned long long value;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "OssK", &obj, &name, &limit, &value))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_user_set_limit(c, name, limit, value));
	return done(self, c, rc);
}

static const char *const limit_names[] = {
	"max-connections",
	"publish-rate",
	"publish-bytes-rate",
	"max-leases",
};

static PyObject *
user_list(PyObject *m, PyObject *obj)
{
	ClientObject *self;
	ringmq_client *c;
	ringmq_user_list *l = NULL;
	PyObject *out;
	int rc;

	(void)m;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_user_list_get(c, &l));
	if (done(self, c, rc) == NULL)
		return NULL;
	out = PyList_New(0);
	for (size_t i = 0; out != NULL && i < ringmq_user_list_count(l); i++) {
		PyObject *perms = PyDict_New(), *limits = PyDict_New(), *d;

		for (size_t j = 0;
		     perms != NULL && j < ringmq_user_list_perm_count(l, i);
		     j++) {
			PyObject *b = PyLong_FromUnsignedLong(
				ringmq_user_list_perm_bits(l, i, j));

			if (b == NULL ||
			    PyDict_SetItemString(
				    perms,
				    ringmq_user_list_perm_pattern(l, i, j),
				    b) < 0)
				Py_CLEAR(perms);
			Py_XDECREF(b);
		}
		for (size_t k = 0; limits != NULL && k < 4; k++) {
			PyObject *v = PyLong_FromUnsignedLongLong(
				ringmq_user_list_limit(l, i, limit_names[k]));

			if (v == NULL ||
			    PyDict_SetItemString(limits, limit_names[k], v) < 0)
				Py_CLEAR(limits);
			Py_XDECREF(v);
		}
		if (perms == NULL || limits == NULL) {
			Py_XDECREF(perms);
			Py_XDECREF(limits);
			Py_CLEAR(out);
			break;
		}
		d = Py_BuildValue(
			"{s:s,s:K,s:I,s:N,s:N}", "name",
			ringmq_user_list_name(l, i), "created_ms",
			(unsigned long long)ringmq_user_list_created_ms(l, i),
			"connections", ringmq_user_list_connections(l, i),
			"permissions", perms, "limits", limits);
		if (d == NULL || PyList_Append(out, d) < 0) {
			Py_XDECREF(d);
			Py_CLEAR(out);
			break;
		}
		Py_DECREF(d);
	}
	ringmq_user_list_free(l);
	return out;
}

static PyObject *
acl_set(PyObject *m, PyObject *args)
{
	PyObject *obj;
	const char *user, *pattern;
	unsigned int bits;
	ClientObject *self;
	ringmq_client *c;
	int rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "OssI", &obj, &user, &pattern, &bits))
		return NULL;
	ENTER(obj, self, c);
	PR_NOGIL(rc = ringmq_acl_set(c, user, pattern, bits));
	return done(self, c, rc);
}

PyMethodDef pr_admin_functions[] = {
	{ "queue_create", queue_create, METH_VARARGS,
	  "queue_create(client, name, settings)" },
	{ "queue_set", queue_set, METH_VARARGS,
	  "queue_set(client, name, settings)" },
	{ "queue_delete", queue_delete, METH_VARARGS,
	  "queue_delete(client, name)" },
	{ "queue_purge", queue_purge, METH_VARARGS,
	  "queue_purge(client, name) -> int" },
	{ "queue_list", queue_list, METH_O, "queue_list(client) -> [dict]" },
	{ "queue_describe", queue_describe, METH_VARARGS,
	  "queue_describe(client, name) -> dict" },
	{ "group_create", group_create, METH_VARARGS,
	  "group_create(client, queue, group, start)" },
	{ "group_reset", group_reset, METH_VARARGS,
	  "group_reset(client, queue, group, start)" },
	{ "group_delete", group_delete, METH_VARARGS,
	  "group_delete(client, queue, group)" },
	{ "group_list", group_list, METH_VARARGS,
	  "group_list(client, queue=None, group=None) -> [dict]" },
	{ "peek", peek, METH_VARARGS,
	  "peek(client, queue, partition=-1, from_offset=0, count=0) -> "
	  "[dict]" },
	{ "message_show", message_show, METH_VARARGS,
	  "message_show(client, queue, partition, offset) -> [dict]" },
	{ "message_cancel", message_cancel, METH_VARARGS,
	  "message_cancel(client, queue, partition, offset)" },
	{ "dead_letters", dead_letters, METH_VARARGS,
	  "dead_letters(client, queue, count=0, from_partition=0, "
	  "from_offset=0) -> [dict]" },
	{ "redrive", redrive, METH_VARARGS,
	  "redrive(client, queue, group=None, count=0) -> int" },
	{ "stats", stats, METH_O, "stats(client) -> dict" },
	{ "metadata", metadata, METH_O, "metadata(client) -> dict" },
	{ "backup", backup, METH_VARARGS, "backup(client, dir) -> int" },
	{ "user_add", user_add, METH_VARARGS,
	  "user_add(client, name, password)" },
	{ "user_passwd", user_passwd, METH_VARARGS,
	  "user_passwd(client, name, password)" },
	{ "user_delete", user_delete, METH_VARARGS,
	  "user_delete(client, name)" },
	{ "user_set_limit", user_set_limit, METH_VARARGS,
	  "user_set_limit(client, name, limit, value)" },
	{ "user_list", user_list, METH_O, "user_list(client) -> [dict]" },
	{ "acl_set", acl_set, METH_VARARGS,
	  "acl_set(client, user, pattern, bits)" },
	{ "acl_delete", acl_delete, METH_VARARGS,
	  "acl_delete(client, user, pattern)" },
	{ NULL, NULL, 0, NULL },
};
