/*
 * module.c: the ringmq._ringmq extension module: its functions, the
 * error mapping and the helpers the other files share.
 */
#include "pyringmq.h"

#include <math.h>
#include <pthread.h>

unsigned pr_forks;

static void
count_fork(void)
{
	pr_forks++;
}

/* ringmq.errors.from_code, set once at import of the package. */
static PyObject *error_factory;

PyObject *
pr_raise(int code, const char *message)
{
	PyObject *exc;

	if (message == NULL || message[0] == '\0')
		message = ringmq_strerror(code);
	if (error_factory == NULL) {
		PyErr_Format(PyExc_RuntimeError, "%s: %s",
			     ringmq_code_name(code), message);
		return NULL;
	}
	exc = PyObject_CallFunction(error_factory, "iss", code,
				    ringmq_code_name(code), message);
	if (exc == NULL)
		return NULL;
	PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
	Py_DECREF(exc);
	return NULL;
}

int64_t
pr_ms_of(PyObject *seconds, int64_t dflt, const char *what)
{
	double s;

	if (seconds == NULL || seconds == Py_None)
		return dflt;
	s = PyFloat_AsDouble(seconds);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!isfinite(s) || s < 0 || s > 4.0e15) {
		PyErr_Format(PyExc_ValueError,
			     "%s must be a number of seconds from 0, not %R",
			     what, seconds);
		return -1;
	}
	return (int64_t)llround(s * 1000.0);
}

static PyObject *
set_error_factory(PyObject *mod, PyObject *fn)
{
	(void)mod;
	if (!PyCallable_Check(fn)) {
		PyErr_SetString(PyExc_TypeError, "a callable is needed");
		return NULL;
	}
	Py_INCREF(fn);
	Py_XSETREF(error_factory, fn);
	Py_RETURN_NONE;
}

static PyObject *
code_name(PyObject *mod, PyObject *arg)
{
	long code = PyLong_AsLong(arg);

	(void)mod;
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(ringmq_code_name((int)code));
}

static PyObject *
strerror_of(PyObject *mod, PyObject *arg)
{
	long code = PyLong_AsLong(arg);

	(void)mod;
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(ringmq_strerror((int)code));
}

static PyObject *
library_version(PyObject *mod, PyObject *unused)
{
	(void)mod;
	(void)unused;
	return PyUnicode_FromString(ringmq_version());
}

static PyMethodDef module_functions[] = {
	{ "_set_error_factory", set_error_factory, METH_O,
	  "Sets the callable (code, name, message) -> exception." },
	{ "code_name", code_name, METH_O,
	  "code_name(code) -> str: the status code's protocol name." },
	{ "strerror", strerror_of, METH_O,
	  "strerror(code) -> str: a human description of a status code." },
	{ "library_version", library_version, METH_NOARGS,
	  "library_version() -> str: the version of libringmq." },
	{ NULL, NULL, 0, NULL },
};

static int
module_exec(PyObject *m)
{
	static const struct {
		const char *name;
		int value;
	} codes[] = {
#define CODE(x) { #x, RINGMQ_##x }
		CODE(OK),
		CODE(BAD_FRAME),
		CODE(UNSUPPORTED_VERSION),
		CODE(NOT_HELLO),
		CODE(QUEUE_NOT_FOUND),
		CODE(QUEUE_EXISTS),
		CODE(QUEUE_FULL),
		CODE(STORAGE_FULL),
		CODE(LEASE_EXPIRED),
		CODE(NOT_LEASED),
		CODE(GROUP_NOT_FOUND),
		CODE(MESSAGE_NOT_FOUND),
		CODE(MESSAGE_TOO_LARGE),
		CODE(INVALID_ARGUMENT),
		CODE(TOO_MANY_CONNECTIONS),
		CODE(SHUTTING_DOWN),
		CODE(INTERNAL),
		CODE(PERMISSION_DENIED),
		CODE(UNAUTHENTICATED),
		CODE(QUOTA_EXCEEDED),
		CODE(USER_NOT_FOUND),
		CODE(USER_EXISTS),
		CODE(NOT_OWNER),
		CODE(WOULD_BLOCK),
		CODE(TIMEOUT),
		CODE(CLOSED),
		CODE(UNREACHABLE),
		CODE(CONNECTION_LOST),
		CODE(USAGE),
		CODE(IO),
#undef CODE
	};

	if (pthread_atfork(NULL, NULL, count_fork) != 0) {
		PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
		return -1;
	}
	if (PyType_Ready(&pr_client_type) < 0 || PyType_Ready(&pr_job_type) < 0)
		return -1;
	if (PyModule_AddObjectRef(m, "Client", (PyObject *)&pr_client_type) <
		    0 ||
	    PyModule_AddObjectRef(m, "Job", (PyObject *)&pr_job_type) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (PyModule_AddIntConstant(m, codes[i].name, codes[i].value) <
		    0)
			return -1;
	if (PyModule_AddFunctions(m, pr_admin_functions) < 0)
		return -1;
	return 0;
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, module_exec },
	{ 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "ringmq._ringmq",
	.m_doc = "The C core of the ringmq package: libringmq's calls, "
		 "with the GIL dropped while they wait.",
	.m_size = 0,
	.m_methods = module_functions,
	.m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__ringmq(void);

PyMODINIT_FUNC
PyInit__ringmq(void)
{
	return PyModuleDef_Init(&module_def);
}
