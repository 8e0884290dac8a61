/*
 * pyringmq.h: what the files of the ringmq._ringmq extension share.
 *
 * The extension is a thin layer over libringmq: every call that can wait
 * for the broker drops the GIL, so threads sharing one client go on, and
 * the library's callbacks (publish reports, asynchronous acks) take the
 * GIL only while they run Python code. No library lock is ever held while
 * a thread waits for the GIL: the library runs callbacks with its lock
 * released, and no call here takes the GIL inside the library.
 */
#ifndef PYRINGMQ_H
#define PYRINGMQ_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <ringmq.h>

typedef struct {
	PyObject_HEAD ringmq_client *c;
	/* Threads inside a library call on c (GIL held to change it):
	 * close waits for them, as the library asks. */
	int n_busy;
	int is_closing;
	/* pr_forks when it was made: a forked child shares its socket and
	 * lacks its threads, so it may neither use nor close it. */
	unsigned forks;
	/* A failure next() met after it had jobs to return: raised by the
	 * next call, so that a once-only end is never lost. */
	int pending_code;
	char pending_text[256];
} ClientObject;

typedef struct {
	PyObject_HEAD ClientObject
		*client; /* strong: a job outlives nothing it needs */
	ringmq_delivery *d;
	PyObject *payload; /* bytes, made on first use */
	PyObject *headers; /* dict, made on first use */
} JobObject;

extern PyTypeObject pr_client_type;
extern PyTypeObject pr_job_type;

/* Forks this process has been the child of (an atfork handler counts
 * them): cheaper than a getpid() system call in every call. */
extern unsigned pr_forks;

/* Sets the exception for status code (ringmq.errors picks its class);
 * @return NULL, for "return pr_raise(...)". */
PyObject *pr_raise(int code, const char *message);

/* The client's handle for one call, counted busy until pr_leave(); NULL
 * with an exception set when it is closed. */
ringmq_client *pr_enter(ClientObject *self);
void pr_leave(ClientObject *self);

/* A new job owning d (taken also on failure). */
PyObject *pr_job_new(ClientObject *client, ringmq_delivery *d);

/* Milliseconds from seconds (a float, an int or None = dflt); -1 with an
 * exception for a negative or out-of-range value. */
int64_t pr_ms_of(PyObject *seconds, int64_t dflt, const char *what);

/* Settles lease ids (op: 'a'ck, 'n'ack, 'r'elease, 't'ouch) with arg
 * (nack delay or touch lease, ms) and reason (nack; NULL: none). Fills codes
 * (and remaining for touch) when not NULL. @return the call's status. Drops the
 * GIL. */
int pr_settle(ClientObject *self, int op, const uint64_t *ids, size_t n,
	      uint64_t arg, const char *reason, int *codes,
	      uint64_t *remaining);

/* The admin and user calls: module functions taking the client first
 * (ringmq/_admin.py wraps them). Ends with a zeroed entry. */
extern PyMethodDef pr_admin_functions[];

/* A client from a Python object: NULL with TypeError otherwise. */
ClientObject *pr_client_of(PyObject *o);

/* Runs a library call with the GIL dropped. */
#define PR_NOGIL(...)                               \
	do {                                        \
		Py_BEGIN_ALLOW_THREADS __VA_ARGS__; \
		Py_END_ALLOW_THREADS                \
	} while (0)

#endif
