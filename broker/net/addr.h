/*
 * addr: what the broker needs to know of a peer's address.
 */
#ifndef RINGMQ_ADDR_H
#define RINGMQ_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* 1 if sa is a loopback address: 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped
 * into IPv6 (::ffff:127.x.x.x); 0 for anything else. */
int addr_is_loopback(const struct sockaddr *sa, socklen_t len);

/* 1 if the peer of connected socket fd has a loopback address; 0 if not,
 * or if it cannot be told (the safe answer). */
int addr_peer_is_loopback(int fd);

/* The peer of connected socket fd as "HOST:PORT" ("[HOST]:PORT" for
 * IPv6) into buf, or "?" when it cannot be told.
 * @return 1 if that is a loopback address, else 0 (as
 *         addr_peer_is_loopback). */
int addr_peer_name(int fd, char *buf, size_t size);
/* The same for the local end of fd: the address the peer reached. */
void addr_local_name(int fd, char *buf, size_t size);

/* How long addr_bind tries again while the address is in use. */
#define ADDR_BIND_RETRY_MS 3000

/*
 * bind(2), tried again every 50 ms for up to ADDR_BIND_RETRY_MS while the
 * address is in use (logged once, naming what): a broker restarted at once
 * after a kill -9 finds its old listening socket alive until the kernel
 * has torn down the dead process's io_uring, a few milliseconds later,
 * SO_REUSEADDR notwithstanding. @return 0, or -1 with errno set.
 */
int addr_bind(int fd, const struct sockaddr *sa, socklen_t len,
	      const char *what);

#endif
