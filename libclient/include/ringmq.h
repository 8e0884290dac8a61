/*
 * ringmq.h: the C client library of ringmq (libringmq), its only public
 * header.
 *
 * Everything is reached through opaque handles and accessors; no struct is
 * public, so fields can be added without breaking callers. Status codes are
 * the wire protocol's ErrorCode values (proto/ringmq.proto) plus the
 * library's own codes from 100 up, which are never sent on the wire.
 *
 * Synchronous calls send their request, then read the connection until
 * the answer arrives or the request timeout passes. Deliveries pushed by
 * the broker while a call waits are queued inside the client and handed out
 * by ringmq_next() (or to a subscription's callback).
 *
 * Asynchronous publish (ringmq_publish_async()) queues the message and
 * returns; the library batches messages per partition (linger-ms,
 * batch-max-messages, the broker's limits), pipelines the batches and
 * reports each message once to its callback. Callbacks (publish reports,
 * asynchronous acks and delivery callbacks) run only inside
 * ringmq_client_poll(), ringmq_client_flush(), ringmq_client_close() and
 * ringmq_worker_run(), in the thread that called them, with no lock of the
 * client held: a callback may call any function on the client except
 * ringmq_client_close() and ringmq_client_free().
 *
 * Reconnect: when the connection drops, the call waiting on it returns
 * RINGMQ_CONNECTION_LOST (a request may or may not have taken effect).
 * With "reconnect" on (the default) the next call connects again, to the
 * next address of the server list after a goodbye, waiting between
 * attempts with exponential backoff and jitter. The new connection resumes
 * the producer id, sends again every asynchronous publish not yet answered
 * (the broker recognises batches it already stored and answers them with
 * their original offsets, so each message is stored once) and subscribes
 * again with the same queue, group and credit, under the same
 * subscription ids. Leases die with the old connection: the broker counts
 * them as failed and delivers those messages again; acking an old lease id
 * gives RINGMQ_NOT_LEASED. Deliveries queued but not yet handed out (to
 * ringmq_next() or a callback) are dropped when the connection drops, for
 * that reason: handed out, each would be worked on twice.
 *
 * Threads: a ringmq_client may be shared by threads. Every call takes the
 * client's lock; a call that waits for the broker drops the lock while it
 * waits in poll(), so producer threads calling ringmq_publish_async() on a
 * shared client go on while another thread waits in ringmq_client_poll()
 * or a synchronous call. Exceptions: ringmq_client_close() and
 * ringmq_client_free() only when no other thread is inside a call on the
 * client; ringmq_client_errmsg() reports the last failure of any thread.
 * ringmq_client_wakeup() and ringmq_worker_stop() may be called from any
 * thread and from a signal handler. With "auto-touch" the client runs one
 * background thread of its own, which never runs callbacks. The other
 * objects (options, messages, results, deliveries) are plain data: a thread
 * may use one while another thread uses another.
 *
 * Memory: a function that returns a pointer says who owns it. Strings and
 * byte buffers passed in are copied unless the function says otherwise.
 * Every _free() accepts NULL and does nothing.
 */
#ifndef RINGMQ_H
#define RINGMQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RINGMQ_BUILDING) && defined(__GNUC__)
#define RINGMQ_API __attribute__((visibility("default")))
#else
#define RINGMQ_API
#endif

/* ------------------------------------------------------------ status codes */

/**
 * Status codes. 0..99 are the wire's ErrorCode values (the same numbers, in
 * the same order; new ones are added, never renumbered); 100 and up are
 * produced by the library or the CLI only. Functions return them as int so
 * that a code added by a newer broker passes through unchanged.
 */
enum ringmq_status {
	RINGMQ_OK = 0,
	/** A frame does not decode or breaks a rule. */
	RINGMQ_BAD_FRAME = 1,
	/** The broker does not speak this protocol version. */
	RINGMQ_UNSUPPORTED_VERSION = 2,
	/** A request before hello. */
	RINGMQ_NOT_HELLO = 3,
	RINGMQ_QUEUE_NOT_FOUND = 4,
	/** The queue exists with other settings. */
	RINGMQ_QUEUE_EXISTS = 5,
	/** Over the queue's max depth or max bytes. */
	RINGMQ_QUEUE_FULL = 6,
	/** The broker is near its storage limit. */
	RINGMQ_STORAGE_FULL = 7,
	RINGMQ_LEASE_EXPIRED = 8,
	/** Never delivered, or another connection's lease. */
	RINGMQ_NOT_LEASED = 9,
	RINGMQ_GROUP_NOT_FOUND = 10,
	RINGMQ_MESSAGE_NOT_FOUND = 11,
	/** A message or frame over the broker's announced limits. */
	RINGMQ_MESSAGE_TOO_LARGE = 12,
	RINGMQ_INVALID_ARGUMENT = 13,
	RINGMQ_TOO_MANY_CONNECTIONS = 14,
	RINGMQ_SHUTTING_DOWN = 15,
	/** The broker failed, or the library ran out of memory. */
	RINGMQ_INTERNAL = 16,
	/** The broker refused: this client's user may not do that, or the
	 * client is of another host while the broker has no auth configured. */
	RINGMQ_PERMISSION_DENIED = 17,
	/** The broker requires authentication, or it failed (unknown user,
	 * wrong password): the same answer for both. */
	RINGMQ_UNAUTHENTICATED = 18,
	/** Over one of the user's quotas. */
	RINGMQ_QUOTA_EXCEEDED = 19,
	RINGMQ_USER_NOT_FOUND = 20,
	RINGMQ_USER_EXISTS = 21,
	/** Cluster mode: the partition is served by another broker
	 *  (ringmq_metadata_get() says which). */
	RINGMQ_NOT_OWNER = 22,

	/** The outgoing buffer is full (block-when-full=false). */
	RINGMQ_WOULD_BLOCK = 100,
	/** No answer within the timeout. */
	RINGMQ_TIMEOUT = 101,
	/** The handle was closed by its owner. */
	RINGMQ_CLOSED = 102,
	/** Could not connect to any broker. */
	RINGMQ_UNREACHABLE = 103,
	/** The connection dropped with the request pending. */
	RINGMQ_CONNECTION_LOST = 104,
	/** A bad argument or command line. */
	RINGMQ_USAGE = 105,
	/** Local input or output failed (e.g. standard output). */
	RINGMQ_IO = 106
};

/**
 * Human description of a status code.
 * @param[in] code a status code (any int).
 * @return a static string, never NULL ("unknown error" for unknown codes).
 * @note Thread-safe.
 */
RINGMQ_API const char *ringmq_strerror(int code);

/**
 * Symbolic name of a status code as in the protocol: "OK",
 * "QUEUE_NOT_FOUND", "CONNECTION_LOST", ...
 * @param[in] code a status code (any int).
 * @return a static string, never NULL ("UNKNOWN" for unknown codes).
 * @note Thread-safe.
 */
RINGMQ_API const char *ringmq_code_name(int code);

/**
 * Version of the library, e.g. "0.1.0".
 * @return a static string.
 */
RINGMQ_API const char *ringmq_version(void);

/* ----------------------------------------------------------------- options */

/** Connection options (opaque). */
typedef struct ringmq_opts ringmq_opts;

/**
 * Creates connection options holding the defaults.
 * @return new options, owned by the caller (ringmq_opts_free()), or NULL
 *         when out of memory.
 */
RINGMQ_API ringmq_opts *ringmq_opts_new(void);

/**
 * Sets one option. Names are those of the CLI flags, without "--":
 *  - "server": HOST:PORT[,HOST:PORT...] (default "127.0.0.1:7420"); IPv6
 *    hosts in brackets ("[::1]:7420"). Connect tries each in turn.
 *  - "connect-timeout-ms": per address, 1..3600000 (default 5000).
 *  - "request-timeout-ms": wait for each answer, 1..3600000 (default 5000).
 *  - "client-name": free text sent in hello, for the broker's logs.
 *  - "user": the user to authenticate as (SCRAM-SHA-256, with a broker
 *    run with auth on); default: the RINGMQ_USER environment variable.
 *    With a user, connecting checks that the broker holds the user's keys
 *    (RINGMQ_UNAUTHENTICATED otherwise), and every reconnect
 *    authenticates again.
 *  - "password": the user's password, 1 to 1024 printable ASCII
 *    characters; "password-file": a file whose first line is the
 *    password (read when set). Default: the file named by
 *    RINGMQ_PASSWORD_FILE. Kept in memory for reconnects, wiped when
 *    freed; never sent: only a proof of it crosses the wire.
 *  - "reconnect": true|false (default true): connect again after a loss.
 *  - "reconnect-backoff-ms": first wait between attempts (default 100);
 *    doubled after each failed attempt up to "reconnect-backoff-max-ms"
 *    (default 10000); each wait is drawn between half and all of it.
 *  - "ping-interval-ms": 0..3600000 (default 15000; 0: off). After this
 *    long without a byte from the broker the client pings; with no answer
 *    within another interval the connection counts as lost (half-open).
 *    Checked while a call waits on the client.
 *  - "linger-ms": 0..60000 (default 5): how long an asynchronous publish
 *    waits for more messages to share its batch. With 0, a message goes
 *    at once when no batch of its partition is in flight; otherwise it
 *    goes with the others published until the client is next served
 *    (ringmq_client_poll(), ringmq_client_flush(), or any call that waits
 *    for the broker), so that a burst shares one batch.
 *  - "batch-max-messages": 1..1000000 (default 1000): most messages per
 *    batch (also capped by the broker's max batch count and frame size).
 *  - "max-outstanding-bytes": 1..2^48 (default 64 MiB): the outgoing
 *    buffer: message bytes published asynchronously and not yet answered.
 *  - "block-when-full": true|false (default true): when that buffer is
 *    full, ringmq_publish_async() waits for room (at most
 *    request-timeout-ms, then RINGMQ_TIMEOUT) or, with false, returns
 *    RINGMQ_WOULD_BLOCK at once.
 *  - "auto-touch": true|false (default false): extend the lease of every
 *    delivery handed out, when half of its lease time has passed, until
 *    this client acks, nacks or releases it (a background thread sends the
 *    touches, so a job may run longer than the lease; the queue's max lease
 *    still caps it).
 *  - "nack-backoff-ms", "nack-backoff-max-ms": 0..3600000 (defaults 1000
 *    and 300000): ringmq_worker_run() nacks a failed job with the delay
 *    nack-backoff-ms * 2^(delivery count - 1), at most the max.
 *  - "tls": true|false (default false): speak TLS (1.2 at least, 1.3 when
 *    the broker has it) to the broker's TLS listener (ringmqd
 *    --tls-listen). Every connect and reconnect makes its own handshake,
 *    within connect-timeout-ms. The broker's certificate is verified: it
 *    must chain to a CA of "tls-ca" and carry the expected name.
 *  - "tls-ca": a PEM file of the CAs that the broker's certificate must
 *    chain to (default: the system's CA certificates).
 *  - "tls-cert", "tls-key": PEM files of a client certificate (then its
 *    chain) and of its private key, for a broker that asks for one
 *    (ringmqd --tls-client-auth); both or neither.
 *  - "tls-server-name": the name the broker's certificate must carry, also
 *    sent as SNI (default: the host part of the server address being
 *    connected to; an IP address is matched against the certificate's IP
 *    addresses and sends no SNI).
 *  - "tls-verify": true|false (default true). false accepts any
 *    certificate for any name: FOR TESTS ONLY. Without the check anyone
 *    on the path can pose as the broker, and read and change everything.
 *  The tls-* options need "tls" true (checked at connect); an empty value
 *  sets one back to its default. The files are read at connect.
 * @param[in,out] opts the options.
 * @param[in] name option name.
 * @param[in] value its value as text (copied).
 * @param[out] errbuf receives a message on failure; may be NULL.
 * @param[in] errlen size of errbuf.
 * @return RINGMQ_OK; RINGMQ_USAGE for an unknown name or a bad value (opts
 *         unchanged); RINGMQ_INTERNAL when out of memory.
 */
RINGMQ_API int ringmq_opts_set(ringmq_opts *opts, const char *name,
			       const char *value, char *errbuf, size_t errlen);

/** Frees options (NULL: no-op). Clients connected with them keep a copy. */
RINGMQ_API void ringmq_opts_free(ringmq_opts *opts);

/* ------------------------------------------------------------------ client */

/** A connection to a broker (opaque). May be shared by threads. */
typedef struct ringmq_client ringmq_client;

/**
 * Connects to the first broker of the "server" list that answers, and
 * exchanges hello. The connect (TCP, TCP_NODELAY) is bounded by
 * connect-timeout-ms per address, the hello answer by request-timeout-ms.
 * @param[out] clientp receives the client (owned by the caller, release
 *             with ringmq_client_free()); set to NULL on failure.
 * @param[in] opts options, copied (NULL: defaults). The caller keeps and
 *            frees its own.
 * @param[out] errbuf receives a message on failure; may be NULL.
 * @param[in] errlen size of errbuf.
 * @return RINGMQ_OK; RINGMQ_UNREACHABLE when no address could be connected
 *         to or none completed hello (connection refused, timed out, closed
 *         during hello, unresolvable host); the broker's code when it
 *         refused hello (e.g. RINGMQ_UNSUPPORTED_VERSION,
 *         RINGMQ_TOO_MANY_CONNECTIONS, RINGMQ_SHUTTING_DOWN,
 *         RINGMQ_PERMISSION_DENIED for a client of another host while the
 *         broker has no auth configured, RINGMQ_UNAUTHENTICATED for a
 *         wrong user or password, no user for a broker with auth on, or
 *         a broker that could not prove it holds the user's keys; if
 *         every address failed, the last broker refusal wins over
 *         UNREACHABLE); RINGMQ_USAGE for a bad server list, a user
 *         without a password (options and environment), or tls options
 *         that do not go together or whose files do not load;
 *         RINGMQ_INTERNAL when out of memory. A TLS handshake that fails
 *         counts as UNREACHABLE, and errbuf says why: the broker's
 *         certificate does not verify (an unknown CA, expired), is not
 *         for the expected name, the broker requires or refused a client
 *         certificate, or the port is not a TLS one.
 */
RINGMQ_API int ringmq_client_connect(ringmq_client **clientp,
				     const ringmq_opts *opts, char *errbuf,
				     size_t errlen);

/**
 * Closes the connection. Later calls on the client return RINGMQ_CLOSED;
 * deliveries already queued are dropped (the broker counts their leases as
 * failed when it sees the connection close). Asynchronous publishes not
 * yet answered are completed with RINGMQ_CLOSED (they may or may not have
 * been stored; call ringmq_client_flush() first to wait for them), their
 * callbacks run here. The client's memory stays valid until
 * ringmq_client_free().
 * @param[in,out] c the client (NULL: no-op).
 * @note Only when no other thread is inside a call on c.
 */
RINGMQ_API void ringmq_client_close(ringmq_client *c);

/**
 * Closes the connection if open and frees the client (NULL: no-op).
 * Deliveries already handed out by ringmq_next() stay valid; free them with
 * ringmq_delivery_free().
 */
RINGMQ_API void ringmq_client_free(ringmq_client *c);

/**
 * Message of the last failed call on this client: the broker's text for a
 * broker refusal, or the library's for a local failure.
 * @return a string owned by the client, valid until its next call; "" when
 *         there is none.
 */
RINGMQ_API const char *ringmq_client_errmsg(const ringmq_client *c);

/** Longest frame the broker accepts (from hello), in bytes. */
RINGMQ_API uint32_t ringmq_client_max_frame_bytes(const ringmq_client *c);

/** Largest message the broker accepts (from hello), in bytes: payload,
 * key, dedup id and headers together (see ringmq_message_add_header()). */
RINGMQ_API uint32_t ringmq_client_max_message_bytes(const ringmq_client *c);

/**
 * Most headers per message the broker accepts (from hello); UINT32_MAX
 * when the broker does not say. A message with more is refused here with
 * RINGMQ_MESSAGE_TOO_LARGE, never sent: the broker would close the
 * connection on it.
 */
RINGMQ_API uint32_t ringmq_client_max_header_count(const ringmq_client *c);

/** Most messages or lease ids per request (from hello). */
RINGMQ_API uint32_t ringmq_client_max_batch_count(const ringmq_client *c);

/** The producer id the broker assigned in hello. */
RINGMQ_API uint64_t ringmq_client_producer_id(const ringmq_client *c);

/**
 * The address this client connected to, as given in the server list.
 * @return a string owned by the client, valid until ringmq_client_free().
 */
RINGMQ_API const char *ringmq_client_server(const ringmq_client *c);

/**
 * Round trip to the broker (Ping / Pong).
 * @return RINGMQ_OK; RINGMQ_TIMEOUT; RINGMQ_CONNECTION_LOST;
 *         RINGMQ_CLOSED; or the broker's code.
 */
RINGMQ_API int ringmq_client_ping(ringmq_client *c);

/**
 * Serves the client: sends due batches, reads answers and deliveries,
 * reconnects when it is time, and runs the callbacks that are ready, in
 * this thread. Waits at most timeout_ms for a first callback to run.
 * @param[in] c the client.
 * @param[in] timeout_ms longest wait; 0 serves without waiting; negative
 *            waits without limit for a callback.
 * @return the number of callbacks run (0 when none, or c is NULL or
 *         closed).
 * @note Thread-safe. Call it regularly when publishing asynchronously:
 *       linger times and keepalives are served only while some thread is
 *       inside a call on the client.
 */
RINGMQ_API int ringmq_client_poll(ringmq_client *c, int timeout_ms);

/**
 * Sends every queued asynchronous publish at once (without lingering) and
 * waits until each one, and each asynchronous ack, is answered, then runs
 * the ready callbacks in this thread. Waits through reconnects.
 * @param[in] c the client.
 * @param[in] timeout_ms longest wait; negative: no limit.
 * @return RINGMQ_OK when nothing is outstanding any more; RINGMQ_TIMEOUT
 *         (the rest stays queued and will still be reported);
 *         RINGMQ_CONNECTION_LOST (reconnect off, with something left that
 *         nothing will answer); RINGMQ_CLOSED (also when nothing is
 *         outstanding); RINGMQ_USAGE (NULL c).
 * @note Thread-safe.
 */
RINGMQ_API int ringmq_client_flush(ringmq_client *c, int timeout_ms);

/**
 * The socket, for applications with their own event loop: when it is
 * readable, or at least every linger-ms while publishes are queued (with
 * linger-ms 0: after publishing), call ringmq_client_poll(c, 0). The socket
 * changes after a reconnect: ask again after each poll. Do not read, write or
 * close it. With tls, ringmq_client_poll() reads everything the socket
 * has, so what TLS keeps back between two readable wake-ups is at most a
 * part of a record waiting for the rest.
 * @return the socket, or -1 while not connected.
 */
RINGMQ_API int ringmq_client_fd(ringmq_client *c);

/**
 * How long an application's own event loop may wait before it calls
 * ringmq_client_poll(c, 0) again though the socket stays silent: the end
 * of a batch's linger, a producer held back by a quota, a keepalive, a
 * lease to touch, the next reconnect attempt; at once when callbacks are
 * ready (answers that ringmq_next() read, for example). The answer holds
 * for the client as it is now: ask again after every poll and after every
 * call that queues work (an asynchronous publish or ack).
 * @return milliseconds (0: poll now); -1 when nothing is due (wait for
 *         the socket only; not connected and no reconnect planned, or
 *         closed).
 * @note Thread-safe; does no I/O.
 */
RINGMQ_API int ringmq_client_poll_timeout(ringmq_client *c);

/**
 * Number of publishes accepted and not yet answered by the broker:
 * asynchronous ones (their callbacks may still be waiting for a poll), and
 * those of synchronous calls still waiting, or that stopped waiting after
 * a timeout.
 */
RINGMQ_API size_t ringmq_client_outstanding(ringmq_client *c);

/** 1 while the client has a connection that completed hello, else 0. */
RINGMQ_API int ringmq_client_is_connected(ringmq_client *c);

/**
 * Makes a call waiting in ringmq_next() return RINGMQ_TIMEOUT now (once),
 * e.g. to react to a signal.
 * @note Async-signal-safe; may be called from any thread.
 */
RINGMQ_API void ringmq_client_wakeup(ringmq_client *c);

/*
 * Every call below that talks to the broker returns, besides what it lists:
 *  RINGMQ_TIMEOUT          no answer within request-timeout-ms (the request
 *                          may still take effect; the connection stays open
 *                          and a late answer is discarded);
 *  RINGMQ_CONNECTION_LOST  the connection dropped (or a protocol error was
 *                          seen) before the answer; with reconnect off every
 *                          later call returns it too, with reconnect on the
 *                          next call connects again;
 *  RINGMQ_UNREACHABLE      (reconnect on) no broker could be connected to
 *                          within the request timeout;
 *  RINGMQ_CLOSED           ringmq_client_close() was called;
 *  RINGMQ_USAGE            a NULL or out-of-range argument;
 *  RINGMQ_INTERNAL         out of memory, or the broker's INTERNAL;
 * and any code the broker answers with an Error frame (its message is then
 * readable with ringmq_client_errmsg()).
 */

/* ------------------------------------------------------------------ queues */

/** Settings of a queue to create or change (opaque). */
typedef struct ringmq_queue_opts ringmq_queue_opts;

/**
 * Creates empty queue settings: every setting absent (in a create the
 * broker's defaults apply and an existing queue's settings are not
 * compared; in a set they stay unchanged).
 * @return new settings owned by the caller, or NULL when out of memory.
 */
RINGMQ_API ringmq_queue_opts *ringmq_queue_opts_new(void);

/**
 * Sets one queue setting. Names are those of the CLI flags:
 *  "partitions" (1..1024, create only), "lease-ms" and "max-lease-ms"
 *  (1..2^62-1), "max-deliveries" (0..UINT32_MAX, 0 = unlimited),
 *  "dead-letter" (a queue name under the name rule; "dead-letter-queue" is
 *  accepted too), "max-depth" and "max-bytes" (0..UINT64_MAX, 0 =
 *  unlimited), "dedup-window-ms" (0..2^62-1: times are kept far from
 *  overflow when added to a clock). Numbers are decimal digits only. A
 *  setting given twice keeps the last value.
 * @param[in,out] o the settings.
 * @param[in] name setting name.
 * @param[in] value its value as text (copied).
 * @param[out] errbuf receives a message on failure; may be NULL.
 * @param[in] errlen size of errbuf.
 * @return RINGMQ_OK; RINGMQ_USAGE for an unknown name or a bad value
 *         (o unchanged); RINGMQ_INTERNAL when out of memory.
 */
RINGMQ_API int ringmq_queue_opts_set(ringmq_queue_opts *o, const char *name,
				     const char *value, char *errbuf,
				     size_t errlen);

/** Frees queue settings (NULL: no-op). */
RINGMQ_API void ringmq_queue_opts_free(ringmq_queue_opts *o);

/**
 * Creates a queue. Succeeds also when it exists with the same given
 * settings.
 * @param[in] c the client.
 * @param[in] name queue name, [A-Za-z0-9][A-Za-z0-9._-]{0,195}, or such
 *            a name followed by ".dlq".
 * @param[in] o settings (borrowed; NULL: all defaults).
 * @return RINGMQ_OK; RINGMQ_QUEUE_EXISTS when it exists with other
 *         settings; RINGMQ_INVALID_ARGUMENT (also for a queue that would
 *         be its own dead-letter queue, or that counts deliveries into a
 *         dead-letter queue whose name breaks the rule); and the common
 *         codes above.
 */
RINGMQ_API int ringmq_queue_create(ringmq_client *c, const char *name,
				   const ringmq_queue_opts *o);

/**
 * Changes policies of an existing queue (QueueSet). Settings given in o
 * replace the queue's; the others stay as they are. The new lease time
 * applies to deliveries made after the change, not to leases already
 * running.
 * @param[in] c the client.
 * @param[in] name queue name.
 * @param[in] o settings (borrowed). It must not set "partitions", which is
 *            fixed at creation. With no setting at all nothing changes and
 *            the call only checks that the queue exists.
 * @return RINGMQ_OK once the change is stored; RINGMQ_USAGE (decided
 *         locally, nothing sent) when o is NULL or sets "partitions";
 *         RINGMQ_QUEUE_NOT_FOUND; RINGMQ_INVALID_ARGUMENT (a value the
 *         broker refuses, e.g. a bad name); and the common codes above.
 */
RINGMQ_API int ringmq_queue_set(ringmq_client *c, const char *name,
				const ringmq_queue_opts *o);

/**
 * Deletes a queue and its messages.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; and the common codes above.
 */
RINGMQ_API int ringmq_queue_delete(ringmq_client *c, const char *name);

/** Result of ringmq_queue_list() (opaque). */
typedef struct ringmq_queue_list ringmq_queue_list;

/**
 * Lists the queues with their counters.
 * @param[in] c the client.
 * @param[out] listp receives the list (owned by the caller, release with
 *             ringmq_queue_list_free()); NULL on failure.
 * @return RINGMQ_OK and the common codes above.
 */
RINGMQ_API int ringmq_queue_list_get(ringmq_client *c,
				     ringmq_queue_list **listp);

/** Number of queues in the list. */
RINGMQ_API size_t ringmq_queue_list_count(const ringmq_queue_list *l);

/*
 * Accessors of the i-th queue, 0 <= i < count (out of range: NULL or 0).
 * Strings are owned by the list.
 */
RINGMQ_API const char *ringmq_queue_list_name(const ringmq_queue_list *l,
					      size_t i);
RINGMQ_API uint32_t ringmq_queue_list_partitions(const ringmq_queue_list *l,
						 size_t i);
/** Retained messages ready for delivery, summed over groups. */
RINGMQ_API uint64_t ringmq_queue_list_ready(const ringmq_queue_list *l,
					    size_t i);
RINGMQ_API uint64_t ringmq_queue_list_delayed(const ringmq_queue_list *l,
					      size_t i);
/** Messages leased right now. */
RINGMQ_API uint64_t ringmq_queue_list_in_flight(const ringmq_queue_list *l,
						size_t i);
RINGMQ_API uint32_t ringmq_queue_list_groups(const ringmq_queue_list *l,
					     size_t i);
/** Stored messages. */
RINGMQ_API uint64_t ringmq_queue_list_messages(const ringmq_queue_list *l,
					       size_t i);
/** Stored message bytes (payload, key, headers, dedup id). */
RINGMQ_API uint64_t ringmq_queue_list_bytes(const ringmq_queue_list *l,
					    size_t i);

/**
 * A total of queue i since the broker started, by name: "published"
 * (messages stored by publishes), "delivered" (redeliveries included) or
 * "acked". Rates are the difference between two listings.
 * @param[in] l the list.
 * @param[in] i index, below ringmq_queue_list_count().
 * @param[in] name the total's name.
 * @param[out] valuep receives the total.
 * @return 1 when the broker reported it, 0 otherwise (older broker,
 *         unknown name, i out of range).
 */
RINGMQ_API int ringmq_queue_list_total(const ringmq_queue_list *l, size_t i,
				       const char *name, uint64_t *valuep);

/**
 * A policy of the i-th queue, by the setting names of
 * ringmq_queue_opts_set(): "partitions", "lease-ms", "max-lease-ms",
 * "max-deliveries", "max-depth", "max-bytes", "dedup-window-ms" (as in
 * the queue; 0 means unlimited where it does for the setting).
 * @param[in] l the list.
 * @param[in] i index, 0 <= i < count.
 * @param[in] name setting name.
 * @param[out] valuep receives the value when 1 is returned.
 * @return 1 when the value was reported; 0 (*valuep untouched) for an
 *         index out of range, an unknown name, a NULL argument, or a
 *         broker that does not report policies.
 */
RINGMQ_API int ringmq_queue_list_setting(const ringmq_queue_list *l, size_t i,
					 const char *name, uint64_t *valuep);

/**
 * Dead-letter queue of the i-th queue (its name, "<queue>.dlq" unless set
 * otherwise).
 * @return a string owned by the list; NULL for an index out of range or a
 *         broker that does not report policies.
 */
RINGMQ_API const char *
ringmq_queue_list_dead_letter_queue(const ringmq_queue_list *l, size_t i);

/** Frees a queue list (NULL: no-op). */
RINGMQ_API void ringmq_queue_list_free(ringmq_queue_list *l);

/* ----------------------------------------------------------------- publish */

/** A message to publish (opaque). */
typedef struct ringmq_message ringmq_message;

/**
 * Creates a message.
 * @param[in] payload payload bytes, copied (may be NULL when len is 0).
 * @param[in] len payload length in bytes.
 * @return a message owned by the caller (ringmq_message_free()), or NULL
 *         when out of memory.
 */
RINGMQ_API ringmq_message *ringmq_message_new(const void *payload, size_t len);

/**
 * Sets the message's key (copied): it picks the partition by hash.
 * @return RINGMQ_OK; RINGMQ_USAGE (NULL m, a key over 65535 bytes);
 *         RINGMQ_INTERNAL (out of memory).
 */
RINGMQ_API int ringmq_message_set_key(ringmq_message *m, const void *key,
				      size_t len);

/**
 * Adds a header (name and value copied). The prefix "ringmq-", in any
 * letter case, is reserved for the broker; headers are a map, so a name
 * comes once per message. A message's payload, key, dedup id and headers
 * (each name and value, plus 6 bytes) count together against the broker's
 * max message bytes (ringmq_client_max_message_bytes()).
 * @return RINGMQ_OK; RINGMQ_USAGE (NULL m or name, an empty name or one
 *         over 65535 bytes, a reserved name, or a name the message has
 *         already); RINGMQ_INTERNAL (out of memory).
 */
RINGMQ_API int ringmq_message_add_header(ringmq_message *m, const char *name,
					 const void *value, size_t len);

/**
 * Delays the message: ready delay_ms after the broker receives it.
 * Replaces a deliver-at time set before.
 * @return RINGMQ_OK; RINGMQ_USAGE (NULL m).
 */
RINGMQ_API int ringmq_message_set_delay_ms(ringmq_message *m,
					   uint64_t delay_ms);

/**
 * Makes the message ready at a wall-clock time (ms since the epoch).
 * Replaces a delay set before.
 * @return RINGMQ_OK; RINGMQ_USAGE (NULL m).
 */
RINGMQ_API int ringmq_message_set_deliver_at_ms(ringmq_message *m,
						uint64_t deliver_at_ms);

/**
 * Sets a dedup id (copied): a publish repeating it within the queue's
 * dedup window is confirmed as a duplicate instead of stored again.
 * @return RINGMQ_OK; RINGMQ_USAGE (NULL m or id, an empty id or one over
 *         65535 bytes); RINGMQ_INTERNAL (out of memory).
 */
RINGMQ_API int ringmq_message_set_dedup_id(ringmq_message *m,
					   const char *dedup_id);

/** Frees a message (NULL: no-op). */
RINGMQ_API void ringmq_message_free(ringmq_message *m);

/**
 * Publishes one message and waits for its confirmation (durable in the
 * broker's sync mode). The message goes as an asynchronous one does, at
 * once: the library gives it its partition (key hash, else dedup id hash,
 * else round-robin a message at a time from a random start) and its
 * number in that partition's producer sequence, so that when the
 * connection drops before the answer (a broker restart, or a connection
 * the broker closed while the client was idle) the library reconnects,
 * sends it again, and the broker stores it once.
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[in] m the message (borrowed).
 * @param[out] partition receives its partition when confirmed; may be NULL.
 * @param[out] offset receives its offset when confirmed; may be NULL.
 * @param[out] is_duplicate receives 1 when it was confirmed earlier under
 *             its dedup id, else 0; may be NULL.
 * @return RINGMQ_OK when confirmed; RINGMQ_MESSAGE_TOO_LARGE when over the
 *         broker's announced limits (decided locally, nothing is sent);
 *         RINGMQ_QUEUE_NOT_FOUND, RINGMQ_QUEUE_FULL, RINGMQ_STORAGE_FULL,
 *         RINGMQ_INVALID_ARGUMENT; and the common codes above:
 *         RINGMQ_UNREACHABLE (no connection within request-timeout-ms:
 *         not sent), RINGMQ_TIMEOUT (sent, no answer within
 *         request-timeout-ms: it may have been stored, and may still be,
 *         as the library keeps it for a resend after a reconnect),
 *         RINGMQ_CONNECTION_LOST (reconnect off: it may or may not have
 *         been stored).
 */
RINGMQ_API int ringmq_publish(ringmq_client *c, const char *queue,
			      const ringmq_message *m, uint32_t *partition,
			      uint64_t *offset, int *is_duplicate);

/** Per-message results of ringmq_publish_batch() (opaque). */
typedef struct ringmq_publish_results ringmq_publish_results;

/**
 * Publishes messages to one queue and waits for their confirmations. Each
 * goes as with ringmq_publish() (its partition and sequence number from
 * the library, sent again after a reconnect), in requests of at most the
 * broker's max batch count and max frame bytes, pipelined; order is kept
 * within a partition. A message over the broker's limits gets
 * RINGMQ_MESSAGE_TOO_LARGE and is never sent; the others still are. The
 * wait ends request-timeout-ms after the last answer: messages still
 * unanswered then get RINGMQ_TIMEOUT (sent) or RINGMQ_UNREACHABLE (not
 * sent, no connection).
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[in] msgs array of count messages (borrowed).
 * @param[in] count number of messages (0 is allowed: nothing is sent).
 * @param[out] resultsp receives one result per message, in order (owned by
 *             the caller, ringmq_publish_results_free()); may be NULL when
 *             the caller needs only the status. Set to NULL when the
 *             return is RINGMQ_USAGE or the results could not be allocated.
 * @return RINGMQ_OK when every message was confirmed; otherwise
 *         RINGMQ_CONNECTION_LOST, RINGMQ_TIMEOUT, RINGMQ_UNREACHABLE or
 *         RINGMQ_CLOSED if one of those happened, else the code of the
 *         first refused message.
 */
RINGMQ_API int ringmq_publish_batch(ringmq_client *c, const char *queue,
				    const ringmq_message *const *msgs,
				    size_t count,
				    ringmq_publish_results **resultsp);

/** Number of results (the count given to the publish). */
RINGMQ_API size_t ringmq_publish_results_count(const ringmq_publish_results *r);

/**
 * Status of the i-th message: RINGMQ_OK when confirmed, else why not (a
 * refusal, or TIMEOUT / CONNECTION_LOST when unconfirmed: it may or may
 * not have been stored). Out of range: RINGMQ_USAGE.
 */
RINGMQ_API int ringmq_publish_results_code(const ringmq_publish_results *r,
					   size_t i);

/** Partition of the i-th message when confirmed or refused NOT_OWNER (the
 *  partition whose owner takes it), else 0. */
RINGMQ_API uint32_t
ringmq_publish_results_partition(const ringmq_publish_results *r, size_t i);

/** Offset of the i-th message when confirmed, else 0. */
RINGMQ_API uint64_t
ringmq_publish_results_offset(const ringmq_publish_results *r, size_t i);

/** 1 when the i-th message was confirmed earlier under its dedup id. */
RINGMQ_API int
ringmq_publish_results_is_duplicate(const ringmq_publish_results *r, size_t i);

/**
 * Human text for the i-th message when its code is not OK (the broker's,
 * or the library's); owned by the results; "" when none.
 */
RINGMQ_API const char *
ringmq_publish_results_message(const ringmq_publish_results *r, size_t i);

/** Frees publish results (NULL: no-op). */
RINGMQ_API void ringmq_publish_results_free(ringmq_publish_results *r);

/** The outcome of one asynchronous publish (opaque; see the callback). */
typedef struct ringmq_publish_report ringmq_publish_report;

/**
 * Reports the outcome of one asynchronous publish.
 * @param[in] c the client.
 * @param[in] r the report, owned by the library, valid only during the
 *            callback.
 * @param[in] ctx the pointer given to ringmq_publish_async().
 */
typedef void (*ringmq_publish_cb)(ringmq_client *c,
				  const ringmq_publish_report *r, void *ctx);

/**
 * Publishes a message asynchronously: it is copied, given its partition
 * (by key hash, else dedup id hash, else round-robin), queued, and sent
 * in a batch with others of its partition when the batch is full, its
 * linger-ms has passed, or a flush asks. Batches are pipelined (up to 5
 * per partition) and numbered per partition for producer idempotence:
 * after a lost connection the library reconnects and sends unanswered
 * batches again, and the broker stores each message once. Order is kept
 * within a partition.
 * @param[in] c the client.
 * @param[in] queue queue name (its partition count is asked of the broker
 *            once, with a synchronous request, on its first publish).
 * @param[in] m the message (borrowed; copied).
 * @param[in] cb called exactly once with the outcome when RINGMQ_OK is
 *            returned, never otherwise; may be NULL.
 * @param[in] ctx passed to cb.
 * @return RINGMQ_OK when queued; RINGMQ_WOULD_BLOCK (block-when-full
 *         false and the outgoing buffer full); RINGMQ_TIMEOUT (still full
 *         after request-timeout-ms); RINGMQ_MESSAGE_TOO_LARGE (over the
 *         broker's limits, decided locally); RINGMQ_QUEUE_NOT_FOUND (on
 *         the first publish to a queue); RINGMQ_CLOSED;
 *         RINGMQ_CONNECTION_LOST (reconnect off); RINGMQ_UNREACHABLE;
 *         RINGMQ_USAGE; RINGMQ_INTERNAL.
 *         The callback's report then holds RINGMQ_OK with the partition
 *         and offset, or a broker refusal (RINGMQ_QUEUE_FULL,
 *         RINGMQ_STORAGE_FULL, RINGMQ_QUEUE_NOT_FOUND, ...), or
 *         RINGMQ_CLOSED / RINGMQ_CONNECTION_LOST (reconnect off) when it
 *         was not answered (it may or may not have been stored).
 * @note Thread-safe: producer threads may share one client.
 */
RINGMQ_API int ringmq_publish_async(ringmq_client *c, const char *queue,
				    const ringmq_message *m,
				    ringmq_publish_cb cb, void *ctx);

/** RINGMQ_OK when stored (or a duplicate), else why not. */
RINGMQ_API int ringmq_publish_report_code(const ringmq_publish_report *r);
/** The message's partition (chosen by the library). */
RINGMQ_API uint32_t
ringmq_publish_report_partition(const ringmq_publish_report *r);
/** The offset when stored, else 0. */
RINGMQ_API uint64_t
ringmq_publish_report_offset(const ringmq_publish_report *r);
/** 1 when confirmed earlier under its dedup id. */
RINGMQ_API int
ringmq_publish_report_is_duplicate(const ringmq_publish_report *r);
/** Human text when the code is not OK; "" otherwise. Owned by r. */
RINGMQ_API const char *
ringmq_publish_report_message(const ringmq_publish_report *r);
/** The queue published to. Owned by r. */
RINGMQ_API const char *
ringmq_publish_report_queue(const ringmq_publish_report *r);

/* --------------------------------------------------------- stored messages */

/**
 * Cancels a delayed message (one published with a delay or deliver-at time
 * that is not due yet): it is deleted and never delivered to any group.
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[in] partition the message's partition.
 * @param[in] offset the message's offset (as its publish confirmed).
 * @return RINGMQ_OK once the deletion is stored; RINGMQ_QUEUE_NOT_FOUND;
 *         RINGMQ_MESSAGE_NOT_FOUND (no such partition or offset, or
 *         already deleted); RINGMQ_INVALID_ARGUMENT (the message exists
 *         but is not delayed: it is due or was never delayed); and the
 *         common codes above.
 */
RINGMQ_API int ringmq_message_cancel(ringmq_client *c, const char *queue,
				     uint32_t partition, uint64_t offset);

/* ----------------------------------------------------------------- consume */

/** Where a new consumer group starts. */
enum ringmq_start {
	RINGMQ_START_EARLIEST = 0, /**< the earliest retained message */
	RINGMQ_START_LATEST = 1	   /**< the next message published */
};

/**
 * Subscribes to a queue in a consumer group (created at start if it does
 * not exist). Deliveries then arrive while the client waits in any call and
 * are handed out by ringmq_next().
 * @param[in] c the client.
 * @param[out] subscriptionp receives the subscription id (tags its
 *             deliveries); untouched on failure.
 * @param[in] queue queue name.
 * @param[in] group group name.
 * @param[in] credit most messages leased to this subscription at once
 *            (0: paused).
 * @param[in] start RINGMQ_START_EARLIEST or RINGMQ_START_LATEST.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_INVALID_ARGUMENT; and
 *         the common codes above.
 */
RINGMQ_API int ringmq_subscribe(ringmq_client *c, uint32_t *subscriptionp,
				const char *queue, const char *group,
				uint32_t credit, int start);

/**
 * Sets a subscription's credit to a new absolute value (0 pauses it).
 * Messages already leased stay leased.
 * @return RINGMQ_OK; RINGMQ_GROUP_NOT_FOUND or RINGMQ_QUEUE_NOT_FOUND for a
 *         subscription the broker ended; and the common codes above.
 */
RINGMQ_API int ringmq_subscription_set_credit(ringmq_client *c,
					      uint32_t subscription,
					      uint32_t credit);

/**
 * Ends a subscription. Its leases stay until acked, nacked, released or
 * expired; deliveries of it still queued in the client stay queued. For a
 * subscription the broker ended, it only forgets the id (RINGMQ_OK).
 * @return RINGMQ_OK and the common codes above.
 */
RINGMQ_API int ringmq_unsubscribe(ringmq_client *c, uint32_t subscription);

/**
 * Whether a subscription still runs: for callback subscriptions, which
 * ringmq_next() does not report on.
 * @param[in] c the client.
 * @param[in] subscription the id ringmq_subscribe() or
 *            ringmq_subscribe_cb() gave.
 * @return RINGMQ_OK while it runs (also while a reconnect restores it);
 *         RINGMQ_GROUP_NOT_FOUND or RINGMQ_QUEUE_NOT_FOUND (with the error
 *         message) from the moment the broker ended it because its group
 *         or queue was deleted, until ringmq_unsubscribe() forgets it;
 *         RINGMQ_USAGE for an id this client does not know or that was
 *         unsubscribed.
 * @note A drain such as "while (ringmq_next(c, &d, 0) == RINGMQ_OK)"
 *       takes the once-only end of ringmq_next(); this status keeps it.
 * @note Thread-safe; it does no I/O (the end is learnt while some thread
 *       is inside a call on the client).
 */
RINGMQ_API int ringmq_subscription_status(ringmq_client *c,
					  uint32_t subscription);

/** A message leased to this client (opaque). */
typedef struct ringmq_delivery ringmq_delivery;

/**
 * Receives a delivery of a callback subscription.
 * @param[in] c the client.
 * @param[in] d the delivery, owned by the callback from now on (free it
 *            with ringmq_delivery_free(); settle its lease with
 *            ringmq_ack() and the others, here or later).
 * @param[in] ctx the pointer given to ringmq_subscribe_cb().
 */
typedef void (*ringmq_delivery_cb)(ringmq_client *c, ringmq_delivery *d,
				   void *ctx);

/**
 * Subscribes like ringmq_subscribe(), but hands the subscription's
 * deliveries to cb inside ringmq_client_poll() instead of ringmq_next().
 * @return as ringmq_subscribe().
 */
RINGMQ_API int ringmq_subscribe_cb(ringmq_client *c, uint32_t *subscriptionp,
				   const char *queue, const char *group,
				   uint32_t credit, int start,
				   ringmq_delivery_cb cb, void *ctx);

/**
 * Takes the next delivery, waiting for one when none is queued.
 * @param[in] c the client.
 * @param[out] deliveryp receives the delivery, owned by the caller
 *             (ringmq_delivery_free(); it stays valid after the client is
 *             freed); NULL unless RINGMQ_OK.
 * @param[in] timeout_ms longest wait; 0 returns at once; negative waits
 *            without limit.
 * @return RINGMQ_OK; RINGMQ_TIMEOUT when none arrived in time (or
 *         ringmq_client_wakeup() was called); RINGMQ_CONNECTION_LOST when
 *         the connection dropped during this wait (the deliveries it had
 *         queued are dropped: their leases went with it and the broker
 *         delivers those messages again; with reconnect on, the next call
 *         reconnects and restores the subscriptions); RINGMQ_UNREACHABLE
 *         when the time ran out without a connection;
 *         RINGMQ_GROUP_NOT_FOUND or RINGMQ_QUEUE_NOT_FOUND, once per
 *         subscription, when the broker ended one of this client's
 *         subscriptions because its group or queue was deleted (the
 *         error message names it; its deliveries still queued are
 *         dropped, their leases gone with the group; it is not restored
 *         after a reconnect; ringmq_subscription_status() tells whose);
 *         RINGMQ_CLOSED; RINGMQ_USAGE.
 * @note With auto-touch on, the lease is extended until this client
 *       settles it.
 * @note A signal does not interrupt the wait; call with short timeouts to
 *       react to signals.
 */
RINGMQ_API int ringmq_next(ringmq_client *c, ringmq_delivery **deliveryp,
			   int timeout_ms);

/*
 * Delivery accessors. d must not be NULL. Pointers returned are owned by
 * the delivery and valid until ringmq_delivery_free().
 */
RINGMQ_API uint32_t ringmq_delivery_subscription(const ringmq_delivery *d);
RINGMQ_API uint64_t ringmq_delivery_lease_id(const ringmq_delivery *d);
RINGMQ_API uint32_t ringmq_delivery_partition(const ringmq_delivery *d);
RINGMQ_API uint64_t ringmq_delivery_offset(const ringmq_delivery *d);
/** 1 + earlier leases of this message in this group that failed. */
RINGMQ_API uint32_t ringmq_delivery_delivery_count(const ringmq_delivery *d);
/** Lease time left when the broker sent it, in ms. */
RINGMQ_API uint64_t
ringmq_delivery_lease_remaining_ms(const ringmq_delivery *d);
/** Broker's wall clock at publish, ms since the epoch; 0 if not given. */
RINGMQ_API uint64_t ringmq_delivery_publish_ms(const ringmq_delivery *d);

/**
 * The payload.
 * @param[out] lenp receives its length in bytes; may be NULL.
 * @return the bytes (not NUL-terminated; non-NULL even when empty).
 */
RINGMQ_API const void *ringmq_delivery_payload(const ringmq_delivery *d,
					       size_t *lenp);

/**
 * The key.
 * @param[out] lenp receives its length (0 when none); may be NULL.
 * @return the bytes, or NULL when the message has no key.
 */
RINGMQ_API const void *ringmq_delivery_key(const ringmq_delivery *d,
					   size_t *lenp);

/** Number of headers. */
RINGMQ_API size_t ringmq_delivery_header_count(const ringmq_delivery *d);

/** Name of the i-th header (NUL-terminated); NULL when out of range. */
RINGMQ_API const char *ringmq_delivery_header_name(const ringmq_delivery *d,
						   size_t i);

/**
 * Value of the i-th header.
 * @param[out] lenp receives its length; may be NULL.
 * @return the bytes (non-NULL even when empty); NULL when out of range.
 */
RINGMQ_API const void *ringmq_delivery_header_value(const ringmq_delivery *d,
						    size_t i, size_t *lenp);

/** Frees a delivery (NULL: no-op). Its lease is not affected. */
RINGMQ_API void ringmq_delivery_free(ringmq_delivery *d);

/*
 * Settling leases. Each takes an array of n lease ids (split into requests
 * of at most the broker's max batch count) and, when codes is not NULL,
 * fills codes[i] with the status of lease_ids[i]: RINGMQ_OK,
 * RINGMQ_LEASE_EXPIRED or RINGMQ_NOT_LEASED, or the failure of the whole
 * request it was in (e.g. RINGMQ_CONNECTION_LOST; ids not yet sent after
 * such a failure get it too).
 * @return RINGMQ_OK when every id is OK; otherwise RINGMQ_CONNECTION_LOST,
 *         RINGMQ_TIMEOUT or RINGMQ_CLOSED if one of those happened, else
 *         the first code that is not OK. n == 0 returns RINGMQ_OK without
 *         sending anything.
 */

/** Acknowledges: done, never delivered to this group again. */
RINGMQ_API int ringmq_ack(ringmq_client *c, const uint64_t *lease_ids, size_t n,
			  int *codes);

/**
 * Reports the outcome of one request of ringmq_ack_async().
 * @param[in] c the client.
 * @param[in] lease_ids the ids of this request, in the order given.
 * @param[in] codes codes[i] is the status of lease_ids[i], as for
 *            ringmq_ack(); RINGMQ_CONNECTION_LOST when the connection
 *            dropped before the answer, RINGMQ_CLOSED when the client
 *            closed. Both arrays belong to the library and are valid only
 *            during the callback.
 * @param[in] n how many ids.
 * @param[in] ctx the pointer given to ringmq_ack_async().
 */
typedef void (*ringmq_ack_cb)(ringmq_client *c, const uint64_t *lease_ids,
			      const int *codes, size_t n, void *ctx);

/**
 * Acknowledges without waiting for the broker: the ids are sent (in
 * requests of at most the broker's max batch count) as the socket allows,
 * and cb (may be NULL) runs once per request after its answer came,
 * where publish callbacks run (ringmq_client_poll(), ringmq_client_flush(),
 * ringmq_client_close(), ringmq_worker_run()), not in ringmq_next(). A
 * consumer that acks this way need not wait a commit per batch before it
 * takes its next delivery. An ack is never sent again on a new connection
 * (the lease died with the old one).
 * @return RINGMQ_OK when sent or queued; RINGMQ_CONNECTION_LOST when the
 *         client is not connected (nothing sent, no callback);
 *         RINGMQ_CLOSED; RINGMQ_USAGE (c NULL, or ids NULL with n > 0);
 *         RINGMQ_INTERNAL when out of memory (requests already queued are
 *         still sent and reported, the rest are not). n == 0 returns
 *         RINGMQ_OK and runs no callback.
 */
RINGMQ_API int ringmq_ack_async(ringmq_client *c, const uint64_t *lease_ids,
				size_t n, ringmq_ack_cb cb, void *ctx);

/** Negative acknowledgement: failed, ready again after delay_ms (0: now). */
RINGMQ_API int ringmq_nack(ringmq_client *c, const uint64_t *lease_ids,
			   size_t n, uint64_t delay_ms, int *codes);

/**
 * ringmq_nack() saying why the jobs failed (a worker's error text). A
 * nack that dead-letters a message (its max deliveries reached) puts the
 * reason in the dead letter's "ringmq-last-error" header; otherwise the
 * broker keeps nothing of it.
 * @param[in] reason text; at most its first 1024 bytes are sent (cut
 *            between UTF-8 characters); NULL or "": none.
 */
RINGMQ_API int ringmq_nack_reason(ringmq_client *c, const uint64_t *lease_ids,
				  size_t n, uint64_t delay_ms,
				  const char *reason, int *codes);

/** Releases: not failed (delivery count unchanged), ready again at once. */
RINGMQ_API int ringmq_release(ringmq_client *c, const uint64_t *lease_ids,
			      size_t n, int *codes);

/**
 * Extends leases to now + lease_ms (0: the queue's lease time), capped by
 * the queue's max lease.
 * @param[out] remaining_ms when not NULL, receives per id the remaining
 *             lease time in ms (0 when its code is not OK).
 */
RINGMQ_API int ringmq_touch(ringmq_client *c, const uint64_t *lease_ids,
			    size_t n, uint64_t lease_ms, int *codes,
			    uint64_t *remaining_ms);

/* ------------------------------------------------------------------ worker */

/**
 * Runs one job.
 * @param[in] c the client (the handler may publish or touch with it).
 * @param[in] d the delivery, owned by the worker (valid during the call).
 * @param[in] ctx the pointer given to ringmq_worker_run().
 * @return 0 when the job succeeded (the worker acks it); anything else
 *         when it failed (the worker nacks it with backoff).
 */
typedef int (*ringmq_job_handler)(ringmq_client *c, const ringmq_delivery *d,
				  void *ctx);

/**
 * A blocking worker: subscribes to queue in group (created from the
 * earliest message if new) with the given credit (0: 1), then, until
 * ringmq_worker_stop(), takes one job at a time, runs handler, acks on
 * success and on failure nacks with the delay nack-backoff-ms *
 * 2^(delivery count - 1), capped at nack-backoff-max-ms. On a lost
 * connection it reconnects and goes on (a job whose lease died comes again
 * later). When asked to stop, it finishes the running job, pauses the
 * subscription, releases every job delivered but not started (their
 * delivery count is unchanged), unsubscribes, flushes asynchronous
 * publishes and returns. It also serves asynchronous publish callbacks
 * between jobs.
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[in] group group name.
 * @param[in] credit jobs leased at once (prefetch); 1 is usual.
 * @param[in] handler runs each job, in this thread.
 * @param[in] ctx passed to handler.
 * @return RINGMQ_OK after a stop; the subscribe's failure
 *         (RINGMQ_QUEUE_NOT_FOUND, ...); RINGMQ_GROUP_NOT_FOUND or
 *         RINGMQ_QUEUE_NOT_FOUND when an administrator deleted the group
 *         or queue while it ran (its subscription ended);
 *         RINGMQ_CLOSED; RINGMQ_USAGE.
 */
RINGMQ_API int ringmq_worker_run(ringmq_client *c, const char *queue,
				 const char *group, uint32_t credit,
				 ringmq_job_handler handler, void *ctx);

/**
 * Asks ringmq_worker_run() on c to stop (it returns after the running job).
 * @note Async-signal-safe; may be called from any thread and from a signal
 *       handler.
 */
RINGMQ_API void ringmq_worker_stop(ringmq_client *c);

/* ---- administration ---- */

/*
 * Administration calls: one request, one answer each. Unless a call says
 * otherwise, it returns the common codes listed above ("Every call below
 * that talks to the broker"), among them RINGMQ_INVALID_ARGUMENT when the
 * broker does not support the request. Result objects are opaque, owned by
 * the caller and freed with their _free() (NULL: no-op); strings and bytes
 * returned by their accessors are owned by the result and valid until it
 * is freed. An accessor given an index out of range returns NULL or 0.
 */

/**
 * Deletes every ready and delayed message of a queue (Purge). Messages
 * leased right now stay leased and may still be acked.
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[out] purgedp receives the number of messages deleted; may be NULL.
 * @return RINGMQ_OK once the deletion is stored; RINGMQ_QUEUE_NOT_FOUND;
 *         and the common codes.
 */
RINGMQ_API int ringmq_queue_purge(ringmq_client *c, const char *queue,
				  uint64_t *purgedp);

/** Consumer groups with their counters (opaque). */
typedef struct ringmq_group_list ringmq_group_list;

/** A queue's details: counters, partitions, groups, policies (opaque). */
typedef struct ringmq_queue_describe ringmq_queue_describe;

/**
 * Describes one queue (QueueDescribe).
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[out] descp receives the description (owned by the caller,
 *             ringmq_queue_describe_free()); NULL on failure.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; and the common codes.
 */
RINGMQ_API int ringmq_queue_describe_get(ringmq_client *c, const char *queue,
					 ringmq_queue_describe **descp);

/*
 * Queue counters of a description, as ringmq_queue_list_*() give them.
 */
RINGMQ_API const char *
ringmq_queue_describe_name(const ringmq_queue_describe *d);
RINGMQ_API uint32_t
ringmq_queue_describe_partitions(const ringmq_queue_describe *d);
RINGMQ_API uint64_t ringmq_queue_describe_ready(const ringmq_queue_describe *d);
RINGMQ_API uint64_t
ringmq_queue_describe_delayed(const ringmq_queue_describe *d);
RINGMQ_API uint64_t
ringmq_queue_describe_in_flight(const ringmq_queue_describe *d);
RINGMQ_API uint64_t
ringmq_queue_describe_messages(const ringmq_queue_describe *d);
RINGMQ_API uint64_t ringmq_queue_describe_bytes(const ringmq_queue_describe *d);

/**
 * A policy of the queue, by the names of ringmq_queue_list_setting().
 * @return 1 with *valuep set; 0 (*valuep untouched) for an unknown name, a
 *         NULL argument, or a broker that does not report policies.
 */
RINGMQ_API int ringmq_queue_describe_setting(const ringmq_queue_describe *d,
					     const char *name,
					     uint64_t *valuep);

/** The queue's dead-letter queue; NULL when the broker reports none. */
RINGMQ_API const char *
ringmq_queue_describe_dead_letter_queue(const ringmq_queue_describe *d);

/** Number of partitions described (one entry per partition). */
RINGMQ_API size_t
ringmq_queue_describe_partition_count(const ringmq_queue_describe *d);

/*
 * Accessors of the i-th partition entry, 0 <= i < partition_count.
 */
/** The partition number. */
RINGMQ_API uint32_t
ringmq_queue_describe_partition(const ringmq_queue_describe *d, size_t i);
/** Stored messages of the partition. */
RINGMQ_API uint64_t ringmq_queue_describe_partition_messages(
	const ringmq_queue_describe *d, size_t i);
/** Stored message bytes of the partition. */
RINGMQ_API uint64_t
ringmq_queue_describe_partition_bytes(const ringmq_queue_describe *d, size_t i);
/** Lowest retained offset. */
RINGMQ_API uint64_t ringmq_queue_describe_partition_first_offset(
	const ringmq_queue_describe *d, size_t i);
/** The offset the next message gets. */
RINGMQ_API uint64_t ringmq_queue_describe_partition_next_offset(
	const ringmq_queue_describe *d, size_t i);
/** Publish time of the oldest retained message, ms since the epoch; 0 when
 *  the partition is empty or the broker does not say. */
RINGMQ_API uint64_t ringmq_queue_describe_partition_oldest_publish_ms(
	const ringmq_queue_describe *d, size_t i);

/**
 * The queue's groups.
 * @return a list owned by the description (do not free it), valid until
 *         ringmq_queue_describe_free(); never NULL for a valid d.
 */
RINGMQ_API const ringmq_group_list *
ringmq_queue_describe_groups(const ringmq_queue_describe *d);

/** Frees a description (NULL: no-op). */
RINGMQ_API void ringmq_queue_describe_free(ringmq_queue_describe *d);

/**
 * Creates a consumer group (GroupCreate). A group that exists is left as
 * it is and the call succeeds.
 * @param[in] c the client.
 * @param[in] queue queue name.
 * @param[in] group group name.
 * @param[in] start RINGMQ_START_EARLIEST or RINGMQ_START_LATEST.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_USAGE (a NULL name or
 *         another start, nothing sent); and the common codes.
 */
RINGMQ_API int ringmq_group_create(ringmq_client *c, const char *queue,
				   const char *group, int start);

/**
 * Deletes a consumer group (GroupDelete). Its leases end as released; its
 * subscriptions stop.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_GROUP_NOT_FOUND; and
 *         the common codes.
 */
RINGMQ_API int ringmq_group_delete(ringmq_client *c, const char *queue,
				   const char *group);

/**
 * Moves a group's read position (GroupReset) to the earliest retained
 * message or past the last one. The group's leases end, not counted as
 * failures (acking one answers RINGMQ_NOT_LEASED), and so do its nack
 * delays: a message is never leased twice at once.
 * @param[in] start RINGMQ_START_EARLIEST or RINGMQ_START_LATEST.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_GROUP_NOT_FOUND;
 *         RINGMQ_USAGE (another start, nothing sent); and the common codes.
 */
RINGMQ_API int ringmq_group_reset(ringmq_client *c, const char *queue,
				  const char *group, int start);

/**
 * Lists consumer groups (GroupList).
 * @param[in] c the client.
 * @param[in] queue the groups of this queue; NULL: of every queue.
 * @param[out] listp receives the list (owned by the caller,
 *             ringmq_group_list_free()); NULL on failure.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; and the common codes.
 */
RINGMQ_API int ringmq_group_list_get(ringmq_client *c, const char *queue,
				     ringmq_group_list **listp);

/**
 * Describes one consumer group (GroupDescribe), as a list of one.
 * @param[out] listp receives the list (owned by the caller,
 *             ringmq_group_list_free()); NULL on failure.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_GROUP_NOT_FOUND; and
 *         the common codes.
 */
RINGMQ_API int ringmq_group_describe_get(ringmq_client *c, const char *queue,
					 const char *group,
					 ringmq_group_list **listp);

/** Number of groups in the list. */
RINGMQ_API size_t ringmq_group_list_count(const ringmq_group_list *l);

/*
 * Accessors of the i-th group, 0 <= i < count.
 */
/** Its queue. */
RINGMQ_API const char *ringmq_group_list_queue(const ringmq_group_list *l,
					       size_t i);
/** Its name. */
RINGMQ_API const char *ringmq_group_list_name(const ringmq_group_list *l,
					      size_t i);
/** Messages ready for it. */
RINGMQ_API uint64_t ringmq_group_list_ready(const ringmq_group_list *l,
					    size_t i);
/** Messages leased in it right now. */
RINGMQ_API uint64_t ringmq_group_list_in_flight(const ringmq_group_list *l,
						size_t i);
/** Retained messages it has not acked yet. */
RINGMQ_API uint64_t ringmq_group_list_lag(const ringmq_group_list *l, size_t i);
/** Subscriptions attached to it. */
RINGMQ_API uint32_t ringmq_group_list_consumers(const ringmq_group_list *l,
						size_t i);
/** Number of partitions with an ack floor reported. */
RINGMQ_API size_t ringmq_group_list_partition_count(const ringmq_group_list *l,
						    size_t i);
/** Ack floor of partition p: every offset below it is acked. */
RINGMQ_API uint64_t ringmq_group_list_ack_floor(const ringmq_group_list *l,
						size_t i, size_t p);

/** Frees a group list (NULL: no-op). Never free one borrowed from a
 *  description. */
RINGMQ_API void ringmq_group_list_free(ringmq_group_list *l);

/** Stored messages read without leasing them (opaque). */
typedef struct ringmq_stored_messages ringmq_stored_messages;

/**
 * Reads stored messages of a queue without leasing them (Peek), in
 * partition then offset order.
 * @param[in] c the client.
 * @param[out] listp receives the messages (owned by the caller,
 *             ringmq_stored_messages_free()); NULL on failure.
 * @param[in] queue queue name.
 * @param[in] partition one partition; negative: every partition.
 * @param[in] from_offset the lowest offset to read (0: from the start).
 * @param[in] count most messages (0: the broker's default, 10); the broker
 *            may answer fewer (it caps the count at its max batch count
 *            and the answer at about half a frame).
 * @return RINGMQ_OK (also with no message); RINGMQ_QUEUE_NOT_FOUND;
 *         RINGMQ_INVALID_ARGUMENT (no such partition); and the common
 *         codes.
 */
RINGMQ_API int ringmq_peek_get(ringmq_client *c, ringmq_stored_messages **listp,
			       const char *queue, int partition,
			       uint64_t from_offset, uint32_t count);

/**
 * Reads one stored message (MessageShow), as a list of one.
 * @param[out] listp receives it (owned by the caller,
 *             ringmq_stored_messages_free()); NULL on failure.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND; RINGMQ_MESSAGE_NOT_FOUND; and
 *         the common codes.
 */
RINGMQ_API int ringmq_message_show_get(ringmq_client *c,
				       ringmq_stored_messages **listp,
				       const char *queue, uint32_t partition,
				       uint64_t offset);

/**
 * Lists dead letters of a source queue (DeadLetterList): the messages of
 * its dead-letter queue whose ringmq-source-queue header names it, with
 * the ringmq-* headers the broker added.
 * @param[in] queue the source queue.
 * @param[in] count most messages (0: the broker's default, 10; capped by
 *            the broker).
 * @return RINGMQ_OK (also when nothing died yet); RINGMQ_QUEUE_NOT_FOUND;
 *         and the common codes.
 */
RINGMQ_API int ringmq_dlq_list_get(ringmq_client *c,
				   ringmq_stored_messages **listp,
				   const char *queue, uint32_t count);

/**
 * ringmq_dlq_list_get from a position of the dead-letter queue on, for
 * paging: pass the last message of the page before as from_partition and
 * its offset + 1 as from_offset (0, 0: from the start). An answer holds
 * at most the broker's batch limit, and fewer when they would not fit in
 * one frame: page until an empty answer.
 * @return as ringmq_dlq_list_get.
 */
RINGMQ_API int ringmq_dlq_list_get_from(ringmq_client *c,
					ringmq_stored_messages **listp,
					const char *queue,
					uint32_t from_partition,
					uint64_t from_offset, uint32_t count);

/**
 * Publishes dead letters of a source queue again on it
 * (DeadLetterRedrive): each gets a new offset that only the group it died
 * in sees, its delivery count starts over, and it leaves the dead-letter
 * queue.
 * @param[in] queue the source queue.
 * @param[in] group only those that died in this group; NULL: all.
 * @param[in] count most messages (0: all).
 * @param[out] redrivenp receives how many were redriven; may be NULL.
 * @return RINGMQ_OK once stored (the copies count toward the queue's max
 *         depth and bytes: only those that fit, in order, are redriven);
 *         RINGMQ_QUEUE_FULL when none fits; RINGMQ_QUEUE_NOT_FOUND; and
 *         the common codes.
 */
RINGMQ_API int ringmq_dlq_redrive(ringmq_client *c, const char *queue,
				  const char *group, uint32_t count,
				  uint64_t *redrivenp);

/** Number of messages. */
RINGMQ_API size_t ringmq_stored_messages_count(const ringmq_stored_messages *l);

/*
 * Accessors of the i-th message, 0 <= i < count; the shape of the
 * delivery accessors.
 */
RINGMQ_API uint32_t
ringmq_stored_messages_partition(const ringmq_stored_messages *l, size_t i);
RINGMQ_API uint64_t
ringmq_stored_messages_offset(const ringmq_stored_messages *l, size_t i);
/** Broker's wall clock at publish, ms since the epoch; 0 if not given. */
RINGMQ_API uint64_t
ringmq_stored_messages_publish_ms(const ringmq_stored_messages *l, size_t i);
/** The payload (non-NULL even when empty); *lenp its length. */
RINGMQ_API const void *
ringmq_stored_messages_payload(const ringmq_stored_messages *l, size_t i,
			       size_t *lenp);
/** The key, or NULL when the message has none (*lenp 0). */
RINGMQ_API const void *
ringmq_stored_messages_key(const ringmq_stored_messages *l, size_t i,
			   size_t *lenp);
/** Number of headers of the i-th message. */
RINGMQ_API size_t
ringmq_stored_messages_header_count(const ringmq_stored_messages *l, size_t i);
/** Name of header h of the i-th message (NUL-terminated). */
RINGMQ_API const char *
ringmq_stored_messages_header_name(const ringmq_stored_messages *l, size_t i,
				   size_t h);
/** Value of header h of the i-th message; *lenp its length. */
RINGMQ_API const void *
ringmq_stored_messages_header_value(const ringmq_stored_messages *l, size_t i,
				    size_t h, size_t *lenp);

/** Frees stored messages (NULL: no-op). */
RINGMQ_API void ringmq_stored_messages_free(ringmq_stored_messages *l);

/** The broker's counters (opaque). */
typedef struct ringmq_stats ringmq_stats;

/**
 * Reads the broker's counters (Stats): name and value pairs such as
 * connections, queues, rates, storage bytes and limit. Names are the
 * broker's; new ones may appear.
 * @param[out] statsp receives them (owned by the caller,
 *             ringmq_stats_free()); NULL on failure.
 * @return RINGMQ_OK and the common codes.
 */
RINGMQ_API int ringmq_stats_get(ringmq_client *c, ringmq_stats **statsp);

/** Number of counters. */
RINGMQ_API size_t ringmq_stats_count(const ringmq_stats *s);
/** Name of the i-th counter. */
RINGMQ_API const char *ringmq_stats_name(const ringmq_stats *s, size_t i);
/** Value of the i-th counter. */
RINGMQ_API double ringmq_stats_value(const ringmq_stats *s, size_t i);
/**
 * Value of the counter called name.
 * @return 1 with *valuep set; 0 when there is none.
 */
RINGMQ_API int ringmq_stats_find(const ringmq_stats *s, const char *name,
				 double *valuep);
/** Frees counters (NULL: no-op). */
RINGMQ_API void ringmq_stats_free(ringmq_stats *s);

/** Where queues' partitions are served (opaque). */
typedef struct ringmq_metadata ringmq_metadata;

/**
 * Asks where each partition of the queues is served (Metadata). Any
 * broker of a cluster answers for the whole cluster; a broker not in
 * cluster mode names itself for every partition, at epoch 0.
 * @param[out] mp receives the answer (owned by the caller,
 *             ringmq_metadata_free()); NULL on failure.
 * @param[in] queues queue names; NULL or none (n 0): every queue the
 *            user has a permission on.
 * @param[in] n how many names.
 * @return RINGMQ_OK; RINGMQ_QUEUE_NOT_FOUND (a named queue); and the
 *         common codes.
 */
RINGMQ_API int ringmq_metadata_get(ringmq_client *c, ringmq_metadata **mp,
				   const char *const *queues, size_t n);
/** The cluster's name, or NULL from a broker not in cluster mode. */
RINGMQ_API const char *ringmq_metadata_cluster(const ringmq_metadata *m);
/** The controller broker's id, or NULL while there is none. */
RINGMQ_API const char *ringmq_metadata_controller(const ringmq_metadata *m);
/** Number of live brokers. */
RINGMQ_API size_t ringmq_metadata_broker_count(const ringmq_metadata *m);
/** Id of the i-th broker ("" outside a cluster). */
RINGMQ_API const char *ringmq_metadata_broker_id(const ringmq_metadata *m,
						 size_t i);
/** HOST:PORT clients reach the i-th broker at. */
RINGMQ_API const char *ringmq_metadata_broker_address(const ringmq_metadata *m,
						      size_t i);
/** Number of queues described. */
RINGMQ_API size_t ringmq_metadata_queue_count(const ringmq_metadata *m);
/** Name of the i-th queue. */
RINGMQ_API const char *ringmq_metadata_queue_name(const ringmq_metadata *m,
						  size_t i);
/** Number of partitions of the i-th queue. */
RINGMQ_API size_t ringmq_metadata_partition_count(const ringmq_metadata *m,
						  size_t i);
/** HOST:PORT of the broker serving partition p of the i-th queue, or
 *  NULL while none is placed. */
RINGMQ_API const char *ringmq_metadata_partition_owner(const ringmq_metadata *m,
						       size_t i, size_t p);
/** Epoch of partition p of the i-th queue: rises with each new owner. */
RINGMQ_API uint64_t ringmq_metadata_partition_epoch(const ringmq_metadata *m,
						    size_t i, size_t p);
/** Frees an answer (NULL: no-op). */
RINGMQ_API void ringmq_metadata_free(ringmq_metadata *m);

/**
 * Writes a consistent, compacted copy of the broker's data (Backup) into
 * directory dir on the broker's host, and waits until it is complete. A
 * broker started on that directory has every queue, group and message
 * stored when the copy began. The broker creates dir if it is missing.
 * Because a copy can take minutes, this call waits for the answer at least
 * 10 minutes, or the client's request-timeout-ms when that is longer.
 * @param[in] c the client.
 * @param[in] dir absolute path of the directory, as the broker sees it;
 *            borrowed for the call.
 * @param[out] bytesp receives the size of the copy's data file, bytes;
 *             may be NULL.
 * @return RINGMQ_OK once the copy is complete;
 *         RINGMQ_INVALID_ARGUMENT: dir is not absolute, a backup is
 *         already running, or dir already holds a data file (the message
 *         says which; nothing is overwritten);
 *         RINGMQ_PERMISSION_DENIED: dir is not under the broker's
 *         backup-dir, or the client is on another host and the broker
 *         has none;
 *         RINGMQ_INTERNAL: the broker could not write the copy (e.g. no
 *         space or no permission: see the message and the broker's log);
 *         RINGMQ_USAGE: dir is NULL (nothing sent);
 *         RINGMQ_TIMEOUT: no answer within the backup timeout above (the
 *         copy may still complete);
 *         and the other common codes.
 */
RINGMQ_API int ringmq_backup(ringmq_client *c, const char *dir,
			     uint64_t *bytesp);

/* ------------------------------------------------------------------- users */

/*
 * Users and their permissions, for a broker run with auth on (ringmqd
 * --auth on). Each call needs admin on "*" (ringmq_user_passwd of the
 * caller's own user excepted). A password never leaves this process: the
 * library derives the SCRAM-SHA-256 keys the broker keeps (PBKDF2, 4096
 * rounds, a fresh random salt). Names are 1 to 128 characters of
 * [A-Za-z0-9._@-]; passwords 1 to 1024 printable ASCII characters.
 */

/** What a permission grants on the queues its pattern matches. */
enum ringmq_perm {
	RINGMQ_PERM_PUBLISH = 1, /**< publish */
	/** subscribe, ack, peek, show, dead-letter list, group operations */
	RINGMQ_PERM_CONSUME = 2,
	/** create, set, delete, purge, cancel, redrive; on "*": backup, users
	 */
	RINGMQ_PERM_ADMIN = 4,
	RINGMQ_PERM_ALL = 7,
};

/**
 * Adds a user, with no permission yet.
 * @return RINGMQ_OK; RINGMQ_USER_EXISTS; RINGMQ_INVALID_ARGUMENT (a name
 *         outside the rule); RINGMQ_USAGE (NULL, or a password outside the
 *         rule: nothing sent); RINGMQ_PERMISSION_DENIED; and the other
 *         common codes.
 */
RINGMQ_API int ringmq_user_add(ringmq_client *c, const char *name,
			       const char *password);

/**
 * Changes a user's password; its open connections keep going, the new
 * password counts from its next hello.
 * @return as ringmq_user_add(), with RINGMQ_USER_NOT_FOUND for
 *         RINGMQ_USER_EXISTS.
 */
RINGMQ_API int ringmq_user_passwd(ringmq_client *c, const char *name,
				  const char *password);

/**
 * Deletes a user: its connections are closed (UNAUTHENTICATED).
 * @return RINGMQ_OK; RINGMQ_USER_NOT_FOUND; and the other common codes.
 */
RINGMQ_API int ringmq_user_delete(ringmq_client *c, const char *name);

/**
 * Grants user perms (RINGMQ_PERM_* bits, at least one) on the queues
 * whose names match pattern ("*" matches any run of characters, "jobs.*"
 * every queue under jobs.), replacing what it had on exactly that
 * pattern. A dead-letter queue ("jobs.dlq") is a queue like any other.
 * @return RINGMQ_OK; RINGMQ_USER_NOT_FOUND; RINGMQ_INVALID_ARGUMENT (a
 *         pattern outside the rule: 1 to 200 queue name characters and
 *         "*"); and the other common codes.
 */
RINGMQ_API int ringmq_acl_set(ringmq_client *c, const char *user,
			      const char *pattern, unsigned perms);

/**
 * Takes away what user had on exactly pattern. Takes effect at once: the
 * user's subscriptions and leases on queues it may no longer consume from
 * end (RINGMQ_PERMISSION_DENIED in their end callback).
 * @return RINGMQ_OK; RINGMQ_USER_NOT_FOUND; RINGMQ_INVALID_ARGUMENT
 *         (nothing on that pattern); and the other common codes.
 */
RINGMQ_API int ringmq_acl_delete(ringmq_client *c, const char *user,
				 const char *pattern);

/**
 * Sets one of user's quotas (0: no limit). limit is one of:
 *  - "max-connections": connections at once; one more is refused
 *    RINGMQ_QUOTA_EXCEEDED at connect.
 *  - "publish-rate", "publish-bytes-rate": messages, and message bytes,
 *    per second (token buckets holding one second's worth; a batch is
 *    never cut, so one may take a bucket below zero). A publish over
 *    them is refused with a time to wait, which this library honours by
 *    itself: the batch and those behind it go again then, in order, and
 *    the caller sees only the delay (or RINGMQ_TIMEOUT from a waiting
 *    call).
 *  - "max-leases": leases held at once by all the user's connections;
 *    deliveries wait while it is reached.
 * Takes effect at once. Needs admin on "*".
 * @return RINGMQ_OK; RINGMQ_USER_NOT_FOUND; RINGMQ_USAGE (an unknown
 *         limit, or a value over its range); and the other common codes.
 */
RINGMQ_API int ringmq_user_set_limit(ringmq_client *c, const char *name,
				     const char *limit, uint64_t value);

/** The users of a broker, with their permissions (opaque). */
typedef struct ringmq_user_list ringmq_user_list;

/**
 * Lists the users.
 * @param[out] listp the list (free it with ringmq_user_list_free()).
 * @return RINGMQ_OK, RINGMQ_PERMISSION_DENIED, and the other common codes.
 */
RINGMQ_API int ringmq_user_list_get(ringmq_client *c, ringmq_user_list **listp);
RINGMQ_API size_t ringmq_user_list_count(const ringmq_user_list *l);
/** The i-th user's name, in name order (NULL past the end). */
RINGMQ_API const char *ringmq_user_list_name(const ringmq_user_list *l,
					     size_t i);
/** When the user was made, ms since the epoch. */
RINGMQ_API uint64_t ringmq_user_list_created_ms(const ringmq_user_list *l,
						size_t i);
/** Connections authenticated as the user now. */
RINGMQ_API uint32_t ringmq_user_list_connections(const ringmq_user_list *l,
						 size_t i);
RINGMQ_API size_t ringmq_user_list_perm_count(const ringmq_user_list *l,
					      size_t i);
/** The j-th permission of the i-th user: its pattern and its bits. */
RINGMQ_API const char *ringmq_user_list_perm_pattern(const ringmq_user_list *l,
						     size_t i, size_t j);
RINGMQ_API unsigned ringmq_user_list_perm_bits(const ringmq_user_list *l,
					       size_t i, size_t j);
/** The i-th user's quota called limit (as ringmq_user_set_limit() names
 * them); 0: no limit. */
RINGMQ_API uint64_t ringmq_user_list_limit(const ringmq_user_list *l, size_t i,
					   const char *limit);
RINGMQ_API void ringmq_user_list_free(ringmq_user_list *l);

#ifdef __cplusplus
}
#endif

#endif /* RINGMQ_H */
