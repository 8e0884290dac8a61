/*
 * sdnotify: the service manager's readiness protocol (systemd's
 * sd_notify(3)), spoken directly: one datagram of NAME=VALUE lines to the
 * Unix socket $NOTIFY_SOCKET names. Without that variable every call is a
 * no-op, so the broker behaves the same outside systemd.
 */
#ifndef RINGMQ_SDNOTIFY_H
#define RINGMQ_SDNOTIFY_H

#include <stdint.h>

struct sdnotify;

/* Opens the socket $NOTIFY_SOCKET names (a path, or "@name" for an
 * abstract one). @return NULL when unset or unusable (logged). */
struct sdnotify *sdnotify_open(void);

/* Sends one state datagram ("READY=1\nSTATUS=..."), without blocking;
 * failures are ignored, as a manager that stopped listening must not stop
 * the broker. NULL: no-op. */
void sdnotify_send(struct sdnotify *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* How often to send WATCHDOG=1 (half of $WATCHDOG_USEC), in ms, when the
 * manager asks for it of this process ($WATCHDOG_PID unset or ours); 0
 * when it does not. */
uint64_t sdnotify_watchdog_ms(const struct sdnotify *n);

/* Closes. NULL: no-op. */
void sdnotify_close(struct sdnotify *n);

#endif
