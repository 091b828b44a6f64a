/*
 * drv_beans.c - the beanstalkd text-protocol driver (see driver.h).
 *
 *   set-up          producers: use <tube>; consumers: watch <tube>, ignore default
 *   push            put <pri> <delay-s> <ttr> <bytes>\r\n<payload>\r\n -> INSERTED <id>
 *   cycle-reliable  reserve-with-timeout <s> -> RESERVED <id> <bytes>\r\n<data>\r\n
 *                   then delete <id> -> DELETED
 *
 * beanstalkd answers a connection's commands in order, so pipelining works
 * as with RESP. Replies are lines; RESERVED carries a body. Bytes of an
 * incomplete reply wait in c->in; complete replies are parsed straight from
 * the read buffer when nothing is pending.
 */
#include "driver.h"

#include "engine.h"
#include "jobfmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SETUP_TIMEOUT_MS 5000
#define MAX_LINE 1024
#define BEANS_PRI 1024
#define BEANS_TTR 60
#define STALE_DRAIN_MS 20000
#define STALE_BATCH 256

/* ------------------------------------------------------------ set-up */

/* Sends a command line and reads one reply line (without CRLF) into
 * line. For set-up only, when nothing else is in flight. */
static int exchange(int fd, const char *cmd, char *line, size_t cap)
{
    if (bconn_send_all(fd, cmd, strlen(cmd), SETUP_TIMEOUT_MS) != 0)
        return -1;
    size_t n = 0;
    while (n < 2 || memcmp(line + n - 2, "\r\n", 2) != 0) {
        if (n + 1 >= cap)
            return -1;
        long r = bconn_recv_some(fd, line + n, 1, SETUP_TIMEOUT_MS);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    line[n - 2] = 0;
    return 0;
}

/* Sends cmd and checks the reply starts with want. */
static int expect(int fd, const char *cmd, const char *want, char *err, size_t errlen)
{
    char line[MAX_LINE];
    if (exchange(fd, cmd, line, sizeof line) != 0) {
        snprintf(err, errlen, "beanstalkd did not answer '%.*s'", (int)strcspn(cmd, "\r"), cmd);
        return -1;
    }
    if (strncmp(line, want, strlen(want)) != 0) {
        snprintf(err, errlen, "beanstalkd answered '%s' to '%.*s'", line,
                 (int)strcspn(cmd, "\r"), cmd);
        return -1;
    }
    return 0;
}

static int watch_tube(int fd, const char *tube, char *err, size_t errlen)
{
    char cmd[MAX_LINE];
    snprintf(cmd, sizeof cmd, "watch %s\r\n", tube);
    if (expect(fd, cmd, "WATCHING", err, errlen) != 0)
        return -1;
    if (strcmp(tube, "default") == 0)
        return 0;
    return expect(fd, "ignore default\r\n", "WATCHING 1", err, errlen);
}

/* A buffered reader for the set-up connection's replies. */
typedef struct line_reader {
    int fd;
    char buf[64 * 1024];
    size_t len, off;
} line_reader;

static int lr_fill(line_reader *lr)
{
    if (lr->off > 0) {
        memmove(lr->buf, lr->buf + lr->off, lr->len - lr->off);
        lr->len -= lr->off;
        lr->off = 0;
    }
    if (lr->len == sizeof lr->buf)
        return -1;
    long r = bconn_recv_some(lr->fd, lr->buf + lr->len, sizeof lr->buf - lr->len, SETUP_TIMEOUT_MS);
    if (r <= 0)
        return -1;
    lr->len += (size_t)r;
    return 0;
}

/* The next reply line (NUL-terminated, without CRLF), or NULL. */
static char *lr_line(line_reader *lr)
{
    for (;;) {
        char *p = lr->buf + lr->off;
        char *eol = memmem(p, lr->len - lr->off, "\r\n", 2);
        if (eol) {
            *eol = 0;
            lr->off = (size_t)(eol + 2 - lr->buf);
            return p;
        }
        if (lr_fill(lr) != 0)
            return NULL;
    }
}

/* Skips n body bytes plus CRLF. */
static int lr_skip(line_reader *lr, size_t n)
{
    n += 2;
    while (lr->len - lr->off < n) {
        n -= lr->len - lr->off;
        lr->off = lr->len;
        if (lr_fill(lr) != 0)
            return -1;
    }
    lr->off += n;
    return 0;
}

/* Sends k copies of a reserve-with-timeout 0 and collects the ids of the
 * jobs reserved. Returns how many, or -1. */
static int reserve_batch(line_reader *lr, int k, unsigned long long *ids)
{
    static const char cmd[] = "reserve-with-timeout 0\r\n";
    char out[sizeof cmd * STALE_BATCH];
    for (int i = 0; i < k; i++)
        memcpy(out + i * (sizeof cmd - 1), cmd, sizeof cmd - 1);
    if (bconn_send_all(lr->fd, out, (size_t)k * (sizeof cmd - 1), SETUP_TIMEOUT_MS) != 0)
        return -1;
    int got = 0;
    for (int i = 0; i < k; i++) {
        char *line = lr_line(lr);
        size_t bytes;
        if (!line)
            return -1;
        if (sscanf(line, "RESERVED %llu %zu", &ids[got], &bytes) == 2) {
            if (lr_skip(lr, bytes) != 0)
                return -1;
            got++;
        }
    }
    return got;
}

static int delete_batch(line_reader *lr, int k, const unsigned long long *ids)
{
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < k; i++)
        resp_buf_printf(&b, "delete %llu\r\n", ids[i]);
    int rc = bconn_send_all(lr->fd, b.data, b.len, SETUP_TIMEOUT_MS);
    resp_buf_free(&b);
    for (int i = 0; rc == 0 && i < k; i++)
        if (!lr_line(lr))
            rc = -1;
    return rc;
}

/* Deletes the ready jobs an earlier run left in the tube (pipelined,
 * bounded in time); 0 when the tube is empty afterwards. */
static int drain_stale(int fd, const char *tube, char *err, size_t errlen)
{
    line_reader *lr = calloc(1, sizeof *lr);
    unsigned long long ids[STALE_BATCH];
    long long gone = 0;
    int rc = -1;
    uint64_t deadline = mono_ns() + (uint64_t)STALE_DRAIN_MS * 1000000u;
    lr->fd = fd;
    while (mono_ns() < deadline) {
        int got = reserve_batch(lr, STALE_BATCH, ids);
        if (got < 0 || delete_batch(lr, got, ids) != 0)
            break;
        gone += got;
        if (got < STALE_BATCH) {
            rc = 0;
            break;
        }
    }
    free(lr);
    if (rc != 0)
        snprintf(err, errlen, "tube %s still holds jobs of an earlier run after deleting %lld; "
                 "restart beanstalkd or use another --queue", tube, gone);
    return rc;
}

static int beans_prepare(const bench_cfg *cfg, const char *queue, char *err, size_t errlen)
{
    int fd = bconn_dial(cfg->host, cfg->port, err, errlen);
    if (fd < 0)
        return -1;
    int rc = watch_tube(fd, queue, err, errlen);
    if (rc == 0)
        rc = drain_stale(fd, queue, err, errlen);
    close(fd);
    return rc;
}

static void beans_cleanup(const bench_cfg *cfg, const char *queue)
{
}

/* current-jobs-delayed from stats-tube (a YAML body). */
static long long beans_delayed_count(const bench_cfg *cfg, const char *queue)
{
    char err[256], cmd[MAX_LINE];
    long long n = 0;
    int fd = bconn_dial(cfg->host, cfg->port, err, sizeof err);
    if (fd < 0)
        return 0;
    line_reader *lr = calloc(1, sizeof *lr);
    lr->fd = fd;
    snprintf(cmd, sizeof cmd, "stats-tube %s\r\n", queue);
    size_t bytes;
    char *line = NULL;
    if (bconn_send_all(fd, cmd, strlen(cmd), SETUP_TIMEOUT_MS) == 0)
        line = lr_line(lr);
    if (line && sscanf(line, "OK %zu", &bytes) == 1)
        while (lr->len - lr->off < bytes + 2 && lr_fill(lr) == 0) {
        }
    if (line && lr->len - lr->off >= 2) {
        lr->buf[lr->len - 1] = 0;
        const char *p = strstr(lr->buf + lr->off, "current-jobs-delayed: ");
        if (p)
            n = atoll(p + strlen("current-jobs-delayed: "));
    }
    free(lr);
    close(fd);
    return n;
}

static int beans_setup_conn(bconn *c, char *err, size_t errlen)
{
    char cmd[MAX_LINE];
    if (c->role == ROLE_CONSUMER)
        return watch_tube(c->fd, c->queue, err, errlen);
    snprintf(cmd, sizeof cmd, "use %s\r\n", c->queue);
    return expect(c->fd, cmd, "USING", err, errlen);
}

/* ---------------------------------------------------------- requests */

static void beans_put_push(bconn *c, const char *payload, size_t len, uint64_t ts)
{
    resp_buf_printf(&c->out, "put %d %lld %d %zu\r\n", BEANS_PRI, c->cfg->delay_ms / 1000,
                    BEANS_TTR, len);
    resp_buf_append(&c->out, payload, len);
    resp_buf_append(&c->out, "\r\n", 2);
    bconn_expect(c, REQ_PUSH, ts);
}

static void beans_put_fetch(bconn *c)
{
    int s = (c->cfg->fetch_timeout_ms + 999) / 1000;
    resp_buf_printf(&c->out, "reserve-with-timeout %d\r\n", s);
    bconn_expect(c, REQ_FETCH, 0);
}

/* ----------------------------------------------------------- replies */

static bool starts(const char *line, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && memcmp(line, word, w) == 0;
}

static void on_push_line(bconn *c, uint64_t ts, const char *line, size_t n)
{
    char msg[MAX_LINE];
    snprintf(msg, sizeof msg, "%.*s", (int)n, line);
    engine_push_done(c, ts, starts(line, n, "INSERTED "), msg);
}

static void on_reserved(bconn *c, unsigned long long id, const char *body, size_t len)
{
    uint64_t ts = engine_delivered(c, body, len);
    resp_buf_printf(&c->out, "delete %llu\r\n", id);
    bconn_expect(c, REQ_ACK, ts);
    engine_fetch_next(c);
}

static void on_fetch_line(bconn *c, const char *line, size_t n)
{
    if (starts(line, n, "TIMED_OUT") || starts(line, n, "DEADLINE_SOON")) {
        engine_fetch_empty(c);
        engine_fetch_next(c);
        return;
    }
    engine_fail(c, "beanstalkd answered '%.*s' to reserve-with-timeout", (int)n, line);
}

static void on_ack_line(bconn *c, uint64_t ts, const char *line, size_t n)
{
    if (starts(line, n, "DELETED"))
        engine_ack_done(c, ts, true);
    else if (starts(line, n, "NOT_FOUND"))
        engine_ack_done(c, ts, false);
    else
        engine_fail(c, "beanstalkd answered '%.*s' to delete", (int)n, line);
}

/* Parses one reply at p (avail bytes). Returns the bytes it took, 0 when
 * the reply is incomplete, -1 on failure. */
static long one_reply(bconn *c, const char *p, size_t avail)
{
    const char *eol = memmem(p, avail, "\r\n", 2);
    if (!eol) {
        if (avail > MAX_LINE) {
            engine_fail(c, "beanstalkd sent a reply line over %d bytes", MAX_LINE);
            return -1;
        }
        return 0;
    }
    size_t n = (size_t)(eol - p), take = n + 2;
    unsigned long long id = 0;
    size_t bytes = 0;
    bool reserved = starts(p, n, "RESERVED ");
    if (reserved) {
        if (sscanf(p, "RESERVED %llu %zu", &id, &bytes) != 2) {
            engine_fail(c, "beanstalkd sent a malformed RESERVED line");
            return -1;
        }
        if (avail < take + bytes + 2)
            return 0;
        take += bytes + 2;
    }
    req r;
    if (bconn_take(c, &r) != 0) {
        engine_fail(c, "beanstalkd sent a reply that answers no request: '%.*s'", (int)n, p);
        return -1;
    }
    if (r.kind == REQ_PUSH)
        on_push_line(c, r.ts, p, n);
    else if (r.kind == REQ_FETCH && reserved)
        on_reserved(c, id, eol + 2, bytes);
    else if (r.kind == REQ_FETCH)
        on_fetch_line(c, p, n);
    else
        on_ack_line(c, r.ts, p, n);
    return (long)take;
}

/* Parses complete replies in p; returns the bytes consumed or -1. */
static long parse_all(bconn *c, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        long t = one_reply(c, p + off, len - off);
        if (t < 0)
            return -1;
        if (t == 0)
            break;
        off += (size_t)t;
    }
    return (long)off;
}

static int beans_on_bytes(bconn *c, const char *buf, size_t len)
{
    if (c->in.len == 0) {
        long used = parse_all(c, buf, len);
        if (used < 0)
            return -1;
        resp_buf_append(&c->in, buf + used, len - (size_t)used);
        return 0;
    }
    resp_buf_append(&c->in, buf, len);
    long used = parse_all(c, c->in.data, c->in.len);
    if (used < 0)
        return -1;
    memmove(c->in.data, c->in.data + used, c->in.len - (size_t)used);
    c->in.len -= (size_t)used;
    return 0;
}

const driver drv_beans = {
    .prepare = beans_prepare,
    .cleanup = beans_cleanup,
    .delayed_count = beans_delayed_count,
    .setup_conn = beans_setup_conn,
    .put_push = beans_put_push,
    .put_fetch = beans_put_fetch,
    .on_bytes = beans_on_bytes,
};
