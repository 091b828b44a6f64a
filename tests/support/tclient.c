/*
 * tclient.c - the load threads' RESP client (see tclient.h).
 */
#include "tclient.h"

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

tconn *tc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    tconn *t = calloc(1, sizeof *t);
    t->fd = fd;
    t->rd = resp_reader_new(NULL);
    t->cap = 65536;
    t->in = malloc(t->cap);
    return t;
}

void tc_close(tconn *t)
{
    if (!t)
        return;
    close(t->fd);
    resp_reader_free(t->rd);
    free(t->in);
    free(t);
}

/* Sends one command and reads its reply: NULL when the connection broke
 * (or no reply came within TC_TIMEOUT_MS, then timed_out is set). */
resp_val *tc_cmdv(tconn *t, int argc, const char *const *argv)
{
    resp_buf b;
    resp_buf_init(&b);
    resp_add_commandv(&b, argc, argv);
    size_t sent = 0;
    while (sent < b.len) {
        ssize_t w = send(t->fd, b.data + sent, b.len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            resp_buf_free(&b);
            return NULL;
        }
        sent += (size_t)w;
    }
    resp_buf_free(&b);

    long long deadline = now_ms() + TC_TIMEOUT_MS;
    for (;;) {
        if (t->len > t->off) {
            size_t used = 0;
            resp_val *v = NULL;
            int r = resp_reader_feed(t->rd, t->in + t->off, t->len - t->off, &used, &v);
            t->off += used;
            if (t->off == t->len)
                t->off = t->len = 0;
            if (r == RESP_OK)
                return v;
            if (r < 0)
                return NULL;
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            t->timed_out = true;
            return NULL;
        }
        struct pollfd pfd = { t->fd, POLLIN, 0 };
        int p = poll(&pfd, 1, left);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0)
            continue;
        if (t->cap - t->len < 4096) {
            t->cap *= 2;
            t->in = realloc(t->in, t->cap);
        }
        ssize_t n = recv(t->fd, t->in + t->len, t->cap - t->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        t->len += (size_t)n;
    }
}
