/*
 * net.c - the socket layer of spool_client: connect with a deadline, and
 * the monotonic clock the deadlines use.
 *
 * Sockets are non-blocking, close-on-exec, TCP_NODELAY; callers wait with
 * poll() and a deadline, never in a blocking syscall, so every wait is
 * bounded. SIGPIPE is avoided with MSG_NOSIGNAL on every send.
 */
#include "internal.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long sdk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sdk_net_poll(int fd, short events, long long deadline)
{
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            long long d = deadline - sdk_mono_ms();
            if (d <= 0)
                d = 0;
            left = d > 60000 ? 60000 : (int)d;
        }
        struct pollfd pfd = { fd, events, 0 };
        int r = poll(&pfd, 1, left);
        if (r > 0)
            return pfd.revents;
        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0 && deadline >= 0 && sdk_mono_ms() >= deadline)
            return 0;
    }
}

/* One connect attempt to one address: fd or -errno. */
static int try_addr(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    int e = errno;
    if (e != EINPROGRESS)
        goto fail;
    int ev = sdk_net_poll(fd, POLLOUT, sdk_mono_ms() + timeout_ms);
    if (ev == 0) {
        e = ETIMEDOUT;
        goto fail;
    }
    socklen_t sl = sizeof e;
    if (ev < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
        e = errno ? errno : EIO;
    if (e == 0)
        return fd;
fail:
    close(fd);
    return -e;
}

int sdk_net_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return SPOOL_ECONN;
    }
    int e = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = try_addr(ai, timeout_ms);
        if (fd >= 0) {
            freeaddrinfo(res);
            return fd;
        }
        e = -fd;
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(e));
    return e == ETIMEDOUT ? SPOOL_ETIMEOUT : SPOOL_ECONN;
}
