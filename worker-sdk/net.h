/*
 * net.h - sockets with deadlines for spool_client (see net.c).
 */
#ifndef SPOOL_NET_H
#define SPOOL_NET_H

#include <stddef.h>

/* Connects to host:port within timeout_ms: a non-blocking fd, or a
 * negative SPOOL_E* code with the reason in err. */
int sdk_net_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen);
/* Waits for events on fd until deadline (monotonic ms; -1: no deadline):
 * the revents (> 0), 0 on timeout, -1 on error. EINTR is retried. */
int sdk_net_poll(int fd, short events, long long deadline);

#endif
