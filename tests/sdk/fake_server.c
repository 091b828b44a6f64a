/*
 * fake_server.c - the scripted RESP server of the libspool unit tests
 * (contract in fake_server.h).
 *
 * Runs on its own thread; reports failures into `err` (never calls
 * Criterion from that thread), and fake_finish() asserts on the test
 * thread. Every read and accept has a deadline, so a client that sends
 * less than expected fails the test instead of hanging it.
 */
#include "fake_server.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_IO_MS 5000
#define FAKE_SILENT_MS 10000

struct fake_server {
    int lfd, cfd, port;
    const fake_step *steps;
    size_t n, done;
    pthread_t th;
    char url[64];
    char err[2048];
    char wild[4096]; /* what FAKE_HEX bytes of the requests matched, in order */
    size_t nwild;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Quotes bytes for messages: CR/LF and non-printables escaped. */
static void quote(char *out, size_t cap, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (ch == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (ch < 32 || ch > 126)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = 0;
}

static bool do_accept(fake_server *f)
{
    struct pollfd pfd = { f->lfd, POLLIN, 0 };
    if (poll(&pfd, 1, FAKE_IO_MS) <= 0) {
        snprintf(f->err, sizeof f->err, "step %zu: no connection came", f->done);
        return false;
    }
    if (f->cfd >= 0)
        close(f->cfd); /* the client left it for another node */
    f->cfd = accept(f->lfd, NULL, NULL);
    return f->cfd >= 0;
}

/* Reads exactly n bytes within the deadline: bytes read. */
static size_t read_n(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    long long deadline = mono_ms() + timeout_ms;
    while (got < n) {
        long long left = deadline - mono_ms();
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static bool expect_bytes(fake_server *f, const char *expect)
{
    size_t n = strlen(expect);
    char *buf = calloc(1, n + 1);
    size_t got = read_n(f->cfd, buf, n, FAKE_IO_MS);
    bool ok = got == n;
    for (size_t i = 0; ok && i < n; i++) {
        if (expect[i] != FAKE_HEX[0]) {
            ok = buf[i] == expect[i];
            continue;
        }
        ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
        if (ok && f->nwild + 1 < sizeof f->wild)
            f->wild[f->nwild++] = buf[i];
    }
    if (!ok) {
        char want[700], have[700];
        quote(want, sizeof want, expect, n);
        quote(have, sizeof have, buf, got);
        snprintf(f->err, sizeof f->err, "step %zu: expected request\n  \"%s\"\ngot (%zu bytes)\n  \"%s\"",
                 f->done, want, got, have);
    }
    free(buf);
    return ok;
}

static void write_reply(fake_server *f, const char *reply, int chunk)
{
    size_t n = strlen(reply), off = 0;
    size_t step = chunk > 0 ? (size_t)chunk : n;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        ssize_t w = send(f->cfd, reply + off, k, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (size_t)w;
        if (chunk > 0 && off < n) {
            struct timespec ts = { 0, 1000000 }; /* let the client read a partial reply */
            nanosleep(&ts, NULL);
        }
    }
}

/* Waits until the client hangs up (it timed out). */
static void wait_hangup(fake_server *f)
{
    char buf[256];
    long long deadline = mono_ms() + FAKE_SILENT_MS;
    while (mono_ms() < deadline) {
        struct pollfd pfd = { f->cfd, POLLIN, 0 };
        if (poll(&pfd, 1, 100) > 0 && read(f->cfd, buf, sizeof buf) <= 0)
            return;
    }
    snprintf(f->err, sizeof f->err, "step %zu: the client never hung up", f->done);
}

static bool run_step(fake_server *f, const fake_step *s)
{
    if (s->kind == FAKE_ACCEPT)
        return do_accept(f);
    if (s->expect && !expect_bytes(f, s->expect))
        return false;
    if (s->kind == FAKE_SILENT) {
        wait_hangup(f);
        close(f->cfd);
        f->cfd = -1;
        return !f->err[0];
    }
    if (s->kind == FAKE_LATE) {
        struct timespec ts = { FAKE_LATE_MS / 1000, (long)(FAKE_LATE_MS % 1000) * 1000000 };
        nanosleep(&ts, NULL); /* the server blocks, as JOB.RESERVE TIMEOUT does */
    }
    if (s->reply)
        write_reply(f, s->reply, s->chunk);
    if (s->kind == FAKE_CLOSE || s->kind == FAKE_DOWN) {
        close(f->cfd);
        f->cfd = -1;
    }
    if (s->kind == FAKE_DOWN) {
        close(f->lfd);
        f->lfd = -1;
    }
    return true;
}

static void *fake_main(void *arg)
{
    fake_server *f = arg;
    if (!do_accept(f))
        return NULL;
    for (; f->done < f->n; f->done++)
        if (!run_step(f, &f->steps[f->done]))
            break;
    if (f->cfd >= 0) {
        /* give the client the chance to read the last reply, then see EOF */
        char buf[64];
        struct pollfd pfd = { f->cfd, POLLIN, 0 };
        if (poll(&pfd, 1, FAKE_IO_MS) > 0) {
            ssize_t r = read(f->cfd, buf, sizeof buf);
            if (r > 0 && !f->err[0]) {
                char have[300];
                quote(have, sizeof have, buf, (size_t)r);
                snprintf(f->err, sizeof f->err, "after the script: unexpected request \"%s\"", have);
            }
        }
        close(f->cfd);
    }
    return NULL;
}

fake_server *fake_start(const fake_step *steps, size_t n)
{
    fake_server *f = calloc(1, sizeof *f);
    cr_assert(f);
    f->steps = steps;
    f->n = n;
    f->cfd = -1;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(f->lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    cr_assert(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    cr_assert(listen(f->lfd, 8) == 0);
    cr_assert(getsockname(f->lfd, (struct sockaddr *)&sa, &sl) == 0);
    f->port = ntohs(sa.sin_port);
    snprintf(f->url, sizeof f->url, "spool://127.0.0.1:%d", f->port);
    cr_assert(pthread_create(&f->th, NULL, fake_main, f) == 0);
    return f;
}

int fake_port(const fake_server *f)
{
    return f->port;
}

const char *fake_url(const fake_server *f)
{
    return f->url;
}

void fake_finish(fake_server *f)
{
    fake_finish_wild(f, NULL, 0);
}

void fake_finish_wild(fake_server *f, char *wild, size_t size)
{
    pthread_join(f->th, NULL);
    if (f->lfd < 0)
        f->lfd = open("/dev/null", O_RDONLY); /* FAKE_DOWN closed it: keep the close below harmless */
    if (wild && size)
        snprintf(wild, size, "%s", f->wild);
    close(f->lfd);
    char err[sizeof f->err];
    memcpy(err, f->err, sizeof err);
    size_t done = f->done, n = f->n;
    free(f);
    cr_assert(!err[0], "fake server: %s", err);
    cr_assert(done == n, "fake server: the script stopped at step %zu of %zu", done, n);
}
