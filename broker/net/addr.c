/*
 * addr: see addr.h.
 */
#include "net/addr.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

int
addr_is_loopback(const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return 0;
}

int
addr_peer_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return addr_is_loopback((const struct sockaddr *)&ss, len);
}

/* Writes "HOST:PORT" (or "[HOST]:PORT") of the address getname gives
 * for fd into buf, "?" when it fails. @return 1 if it is a loopback
 * address, else 0. */
static int
addr_name(int fd, int (*getname)(int, struct sockaddr *, socklen_t *),
	  char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof(ss));
	snprintf(buf, size, "?");
	if (getname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)))
			snprintf(buf, size, "%s:%u", host,
				 (unsigned)ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)&ss;

		if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)))
			snprintf(buf, size, "[%s]:%u", host,
				 (unsigned)ntohs(in6->sin6_port));
	}
	return addr_is_loopback((const struct sockaddr *)&ss, len);
}

int
addr_peer_name(int fd, char *buf, size_t size)
{
	return addr_name(fd, getpeername, buf, size);
}

void
addr_local_name(int fd, char *buf, size_t size)
{
	(void)addr_name(fd, getsockname, buf, size);
}

int
addr_bind(int fd, const struct sockaddr *sa, socklen_t len, const char *what)
{
	const struct timespec step = { 0, 50 * 1000000L };
	int tries = ADDR_BIND_RETRY_MS / 50;

	while (bind(fd, sa, len) < 0) {
		if (errno != EADDRINUSE || tries-- == 0)
			return -1;
		if (tries == ADDR_BIND_RETRY_MS / 50 - 1)
			log_warn("%s: address in use; trying again for up to "
				 "%d ms (a process that just stopped may "
				 "still hold it)",
				 what, ADDR_BIND_RETRY_MS);
		(void)nanosleep(&step, NULL);
	}
	return 0;
}
