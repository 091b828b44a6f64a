/*
 * bconn.c - load-generator connections (see bconn.h).
 */
#include "bconn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- dialing */

static int dial_one(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int bconn_dial(const char *host, const char *port, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, e = 0;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = dial_one(ai);
        if (fd < 0)
            e = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(e));
    return fd;
}

int bconn_set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ------------------------------------------------------------ objects */

bconn *bconn_new(int fd, conn_role role, int index, const bench_cfg *cfg,
                 const struct driver *drv, unsigned ring_cap)
{
    bconn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->fd = fd;
    c->role = role;
    c->index = index;
    opts_queue_name(cfg, index % cfg->queues, c->queue, sizeof c->queue);
    snprintf(c->pkey, sizeof c->pkey, "%s:processing", c->queue);
    c->cfg = cfg;
    c->drv = drv;
    c->ring_cap = ring_cap;
    c->ring = calloc(ring_cap, sizeof *c->ring);
    c->scratch_cap = cfg->payload + 64 + 64;
    c->scratch = malloc(c->scratch_cap);
    if (!c->ring || !c->scratch)
        abort();
    resp_buf_init(&c->in);
    resp_buf_init(&c->out);
    return c;
}

void bconn_free(bconn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    resp_reader_free(c->rd);
    resp_buf_free(&c->in);
    resp_buf_free(&c->out);
    free(c->ring);
    free(c->scratch);
    free(c);
}

/* --------------------------------------------------------------- ring */

void bconn_expect(bconn *c, req_kind kind, uint64_t ts)
{
    if (c->ring_len == c->ring_cap) {
        fprintf(stderr, "spool-bench: internal error: request ring full\n");
        abort();
    }
    unsigned i = (c->ring_head + c->ring_len) % c->ring_cap;
    c->ring[i].kind = kind;
    c->ring[i].ts = ts;
    c->ring_len++;
}

int bconn_take(bconn *c, req *out)
{
    if (c->ring_len == 0)
        return -1;
    *out = c->ring[c->ring_head];
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_len--;
    return 0;
}

/* ------------------------------------------------------------- output */

int bconn_flush(bconn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        return -1;
    }
    resp_buf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

/* ------------------------------------------------------ blocking set-up */

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : -1;
}

int bconn_send_all(int fd, const void *p, size_t n, int timeout_ms)
{
    const char *s = p;
    while (n > 0) {
        if (wait_fd(fd, POLLOUT, timeout_ms) != 0)
            return -1;
        ssize_t w = write(fd, s, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

long bconn_recv_some(int fd, void *p, size_t cap, int timeout_ms)
{
    for (;;) {
        if (wait_fd(fd, POLLIN, timeout_ms) != 0)
            return -1;
        ssize_t r = read(fd, p, cap);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return r > 0 ? (long)r : -1;
    }
}
