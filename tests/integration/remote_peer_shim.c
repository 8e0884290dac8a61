/*
 * remote_peer_shim: preloaded into ringmqd by test_access, it makes every
 * peer look like a client of another host. The tests talk to the broker
 * over loopback only; this shim rewrites what getpeername reports for a
 * loopback peer to 192.0.2.1 (TEST-NET-1, RFC 5737), so that the broker's
 * own decision about who may connect runs as it would for a remote client.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef int (*getpeername_fn)(int, struct sockaddr *, socklen_t *);

int
getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	static getpeername_fn real;
	socklen_t room = *len;
	int rc;

	if (real == NULL)
		real = (getpeername_fn)dlsym(RTLD_NEXT, "getpeername");
	if (real == NULL)
		return -1;
	rc = real(fd, sa, len);
	if (rc < 0)
		return rc;
	if (sa->sa_family == AF_INET && room >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		in->sin_addr.s_addr = htonl(0xc0000201u); /* 192.0.2.1 */
	} else if (sa->sa_family == AF_INET6 &&
		   room >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		/* ::ffff:192.0.2.1 */
		memset(&in6->sin6_addr, 0, sizeof(in6->sin6_addr));
		in6->sin6_addr.s6_addr[10] = 0xff;
		in6->sin6_addr.s6_addr[11] = 0xff;
		in6->sin6_addr.s6_addr[12] = 192;
		in6->sin6_addr.s6_addr[14] = 2;
		in6->sin6_addr.s6_addr[15] = 1;
	}
	return rc;
}
