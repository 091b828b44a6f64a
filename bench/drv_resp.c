/*
 * drv_resp.c - the RESP driver: spool and redis-server (see driver.h).
 *
 *   push            LPUSH q payload | JOB.PUSH q payload [DELAY ms] [GROUP g<n>]
 *   cycle-pop       BRPOP q timeout-s
 *   cycle-reliable  spool: JOB.RESERVE TIMEOUT ms FROM q, then JOB.ACK receipt
 *                   redis: BLMOVE q q:processing RIGHT LEFT timeout-s, then
 *                          LREM q:processing 1 payload
 *
 * A consumer writes its ack and its next fetch together (one write), as a
 * worker that acks and asks for more would. Replies are read with proto/'s
 * resp_reader and matched to the request ring's head.
 */
#include "driver.h"

#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SETUP_TIMEOUT_MS 5000

/* ------------------------------------------------------------ helpers */

static void processing_key(const char *queue, char *buf, size_t n)
{
    snprintf(buf, n, "%s:processing", queue);
}

static void put_cmd(bconn *c, int argc, const char *const *argv, const size_t *len)
{
    resp_add_command(&c->out, argc, argv, len);
}

/* One blocking command on a set-up connection; the reply or NULL. */
static resp_val *blocking_cmd(int fd, int argc, const char *const *argv)
{
    resp_buf b;
    resp_buf_init(&b);
    resp_add_commandv(&b, argc, argv);
    int rc = bconn_send_all(fd, b.data, b.len, SETUP_TIMEOUT_MS);
    resp_buf_free(&b);
    if (rc != 0)
        return NULL;
    resp_reader *rd = resp_reader_new(NULL);
    resp_val *v = NULL;
    char buf[4096];
    while (!v) {
        long n = bconn_recv_some(fd, buf, sizeof buf, SETUP_TIMEOUT_MS);
        size_t used;
        if (n <= 0 || resp_reader_feed(rd, buf, (size_t)n, &used, &v) == RESP_EPROTO)
            break;
    }
    resp_reader_free(rd);
    return v;
}

/* Runs a command, expecting no error reply. 0 or -1 with err set. */
static int run_ok(int fd, int argc, const char *const *argv, char *err, size_t errlen)
{
    resp_val *v = blocking_cmd(fd, argc, argv);
    int rc = 0;
    if (!v) {
        snprintf(err, errlen, "no reply to %s", argv[0]);
        rc = -1;
    } else if (v->type == RESP_T_ERROR) {
        snprintf(err, errlen, "%s: %s", argv[0], v->str);
        rc = -1;
    }
    resp_val_free(v);
    return rc;
}

/* ------------------------------------------------------------ set-up */

/* spool: QUEUE.PURGE q STATE ready keeps delayed jobs (DEL removes them
 * too); a spool without QUEUE.* gets DEL. redis: DEL q q:processing. */
static int purge_ready(int fd, const bench_cfg *cfg, const char *queue, char *err, size_t errlen)
{
    char pkey[512];
    processing_key(queue, pkey, sizeof pkey);
    const char *del[] = { "DEL", queue, pkey };
    if (cfg->kind == KIND_REDIS)
        return run_ok(fd, 3, del, err, errlen);
    const char *purge[] = { "QUEUE.PURGE", queue, "STATE", "ready" };
    if (run_ok(fd, 4, purge, err, errlen) == 0)
        return 0;
    return run_ok(fd, 2, del, err, errlen);
}

/* spool: QUEUE.CONFIG queue SET <cfg->queue_config words>. */
static int queue_config(int fd, const bench_cfg *cfg, const char *queue, char *err, size_t errlen)
{
    char buf[512];
    const char *argv[32] = { "QUEUE.CONFIG", queue, "SET" };
    int argc = 3;
    snprintf(buf, sizeof buf, "%s", cfg->queue_config);
    for (char *w = strtok(buf, " "); w && argc < 32; w = strtok(NULL, " "))
        argv[argc++] = w;
    return run_ok(fd, argc, argv, err, errlen);
}

static int resp_prepare(const bench_cfg *cfg, const char *queue, char *err, size_t errlen)
{
    int fd = bconn_dial(cfg->host, cfg->port, err, errlen);
    if (fd < 0)
        return -1;
    const char *ping[] = { "PING" };
    int rc = run_ok(fd, 1, ping, err, errlen);
    if (rc == 0)
        rc = purge_ready(fd, cfg, queue, err, errlen);
    if (rc == 0 && cfg->kind == KIND_SPOOL && cfg->queue_config)
        rc = queue_config(fd, cfg, queue, err, errlen);
    close(fd);
    return rc;
}

static void resp_cleanup(const bench_cfg *cfg, const char *queue)
{
    char err[256];
    int fd = bconn_dial(cfg->host, cfg->port, err, sizeof err);
    if (fd < 0)
        return;
    purge_ready(fd, cfg, queue, err, sizeof err);
    close(fd);
}

static long long resp_delayed_count(const bench_cfg *cfg, const char *queue)
{
    char err[256];
    if (cfg->kind != KIND_SPOOL)
        return 0;
    int fd = bconn_dial(cfg->host, cfg->port, err, sizeof err);
    if (fd < 0)
        return 0;
    const char *stats[] = { "QUEUE.STATS", queue };
    resp_val *v = blocking_cmd(fd, 2, stats);
    close(fd);
    const resp_val *d = v && v->type != RESP_T_ERROR ? resp_val_get(v, "delayed") : NULL;
    long long n = d && d->type == RESP_T_INT ? d->integer : 0;
    resp_val_free(v);
    return n;
}

static int resp_setup_conn(bconn *c, char *err, size_t errlen)
{
    c->rd = resp_reader_new(NULL);
    return 0;
}

/* ---------------------------------------------------------- requests */

static void resp_put_push(bconn *c, const char *payload, size_t len, uint64_t ts)
{
    const bench_cfg *cfg = c->cfg;
    char delay[32], group[32];
    const char *argv[7] = { cfg->native_push ? "JOB.PUSH" : "LPUSH", c->queue, payload,
                            "DELAY", delay, "GROUP", group };
    size_t lens[7] = { strlen(argv[0]), strlen(c->queue), len, 5, 0, 5, 0 };
    int argc = 3;
    if (cfg->delay_ms > 0) {
        lens[4] = (size_t)snprintf(delay, sizeof delay, "%lld", cfg->delay_ms);
        argc = 5;
    }
    if (cfg->groups > 0 && cfg->native_push) {
        if (argc == 3) { /* no DELAY: GROUP goes in its place */
            argv[3] = "GROUP", argv[4] = group;
            lens[3] = 5;
        }
        size_t *gl = argc == 3 ? &lens[4] : &lens[6];
        *gl = (size_t)snprintf(group, sizeof group, "g%llu", (unsigned long long)(ts % (uint64_t)cfg->groups));
        argc += 2;
    }
    put_cmd(c, argc, argv, lens);
    bconn_expect(c, REQ_PUSH, ts);
}

static void resp_put_fetch(bconn *c)
{
    const bench_cfg *cfg = c->cfg;
    char secs[32], ms[32];
    snprintf(secs, sizeof secs, "%.3f", cfg->fetch_timeout_ms / 1000.0);
    snprintf(ms, sizeof ms, "%d", cfg->fetch_timeout_ms);
    if (cfg->workload == WL_CYCLE_POP) {
        const char *argv[] = { "BRPOP", c->queue, secs };
        resp_add_commandv(&c->out, 3, argv);
    } else if (cfg->kind == KIND_SPOOL) {
        const char *argv[] = { "JOB.RESERVE", "TIMEOUT", ms, "FROM", c->queue };
        resp_add_commandv(&c->out, 5, argv);
    } else {
        const char *argv[] = { "BLMOVE", c->queue, c->pkey, "RIGHT", "LEFT", secs };
        resp_add_commandv(&c->out, 6, argv);
    }
    bconn_expect(c, REQ_FETCH, 0);
}

static void put_ack_spool(bconn *c, const resp_val *receipt, uint64_t ts)
{
    const char *argv[] = { "JOB.ACK", receipt->str };
    size_t lens[] = { 7, receipt->len };
    put_cmd(c, 2, argv, lens);
    bconn_expect(c, REQ_ACK, ts);
}

static void put_lrem(bconn *c, const resp_val *payload, uint64_t ts)
{
    const char *argv[] = { "LREM", c->pkey, "1", payload->str };
    size_t lens[] = { 4, strlen(c->pkey), 1, payload->len };
    put_cmd(c, 4, argv, lens);
    bconn_expect(c, REQ_ACK, ts);
}

/* ----------------------------------------------------------- replies */

static bool is_text(const resp_val *v)
{
    return v && (v->type == RESP_T_BULK || v->type == RESP_T_SIMPLE);
}

/* One job of a JOB.RESERVE reply: deliver it and queue its ack. */
static int spool_job(bconn *c, const resp_val *job)
{
    const resp_val *receipt = resp_val_get(job, "receipt");
    const resp_val *payload = resp_val_get(job, "payload");
    if (!is_text(receipt) || !is_text(payload)) {
        engine_fail(c, "JOB.RESERVE reply has no receipt or payload (%s)",
                    job->type == RESP_T_ARRAY || job->type == RESP_T_MAP ? "fields missing" : "not a job");
        return -1;
    }
    uint64_t ts = engine_delivered(c, payload->str, payload->len);
    put_ack_spool(c, receipt, ts);
    return 0;
}

static int spool_reserved(bconn *c, const resp_val *v)
{
    if (v->type != RESP_T_ARRAY && v->type != RESP_T_MAP) {
        engine_fail(c, "JOB.RESERVE gave a %d reply, not an array of jobs", (int)v->type);
        return -1;
    }
    bool flat = v->type == RESP_T_MAP || (v->n > 0 && is_text(v->elem[0]));
    if (flat)
        return spool_job(c, v);
    for (size_t i = 0; i < v->n; i++)
        if (spool_job(c, v->elem[i]) != 0)
            return -1;
    return 0;
}

static int on_fetch(bconn *c, const resp_val *v)
{
    const bench_cfg *cfg = c->cfg;
    if (v->type == RESP_T_ERROR) {
        engine_fail(c, "%s refused %s: %s", opts_kind_name(cfg->kind), opts_fetch_name(cfg), v->str);
        return -1;
    }
    if (v->type == RESP_T_NULL) {
        engine_fetch_empty(c);
    } else if (cfg->workload == WL_CYCLE_POP) {
        if (v->type != RESP_T_ARRAY || v->n != 2 || !is_text(v->elem[1])) {
            engine_fail(c, "BRPOP reply is not [key, element]");
            return -1;
        }
        engine_delivered(c, v->elem[1]->str, v->elem[1]->len);
    } else if (cfg->kind == KIND_SPOOL) {
        if (spool_reserved(c, v) != 0)
            return -1;
    } else {
        if (!is_text(v)) {
            engine_fail(c, "BLMOVE reply is not a bulk string");
            return -1;
        }
        put_lrem(c, v, engine_delivered(c, v->str, v->len));
    }
    engine_fetch_next(c);
    return 0;
}

static int on_ack(bconn *c, uint64_t ts, const resp_val *v)
{
    if (v->type == RESP_T_ERROR) {
        engine_fail(c, "%s refused the ack: %s", opts_kind_name(c->cfg->kind), v->str);
        return -1;
    }
    engine_ack_done(c, ts, v->type == RESP_T_INT && v->integer >= 1);
    return 0;
}

static int on_reply(bconn *c, const resp_val *v)
{
    req r;
    if (bconn_take(c, &r) != 0) {
        engine_fail(c, "a reply that answers no request");
        return -1;
    }
    switch (r.kind) {
    case REQ_PUSH:
        engine_push_done(c, r.ts, v->type != RESP_T_ERROR, v->str);
        return v->type == RESP_T_ERROR ? -1 : 0;
    case REQ_FETCH:
        return on_fetch(c, v);
    default:
        return on_ack(c, r.ts, v);
    }
}

static int resp_on_bytes(bconn *c, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        resp_val *v = NULL;
        int rc = resp_reader_feed(c->rd, buf + off, len - off, &used, &v);
        off += used;
        if (rc == RESP_EPROTO) {
            engine_fail(c, "bad reply from the server: %s", resp_reader_error(c->rd));
            return -1;
        }
        if (rc != RESP_OK)
            break;
        rc = on_reply(c, v);
        resp_val_free(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

const driver drv_resp = {
    .prepare = resp_prepare,
    .cleanup = resp_cleanup,
    .delayed_count = resp_delayed_count,
    .setup_conn = resp_setup_conn,
    .put_push = resp_put_push,
    .put_fetch = resp_put_fetch,
    .on_bytes = resp_on_bytes,
};
