/*
 * sdnotify: see sdnotify.h.
 */
#include "net/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"

struct sdnotify {
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_ms;
};

/* Half of $WATCHDOG_USEC, when it is meant for this process. */
static uint64_t
watchdog_ms_from_env(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	if (usec == NULL)
		return 0;
	if (pid != NULL && strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	return v / 2000 > 0 ? v / 2000 : 1;
}

struct sdnotify *
sdnotify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sdnotify *n;
	size_t len;

	if (path == NULL || path[0] == '\0')
		return NULL;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(n->addr.sun_path)) {
		log_warn("NOTIFY_SOCKET '%s' is not a usable socket path: the "
			 "service manager is not told of readiness",
			 path);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return NULL;
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		log_warn("NOTIFY_SOCKET: socket: %s", strerror(errno));
		free(n);
		return NULL;
	}
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0'; /* abstract namespace */
	n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	n->watchdog_ms = watchdog_ms_from_env();
	return n;
}

void
sdnotify_send(struct sdnotify *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int len;

	if (n == NULL)
		return;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(msg))
		len = (int)sizeof(msg) - 1;
	(void)sendto(n->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL,
		     (const struct sockaddr *)&n->addr, n->addr_len);
}

uint64_t
sdnotify_watchdog_ms(const struct sdnotify *n)
{
	return n != NULL ? n->watchdog_ms : 0;
}

void
sdnotify_close(struct sdnotify *n)
{
	if (n == NULL)
		return;
	(void)close(n->fd);
	free(n);
}
