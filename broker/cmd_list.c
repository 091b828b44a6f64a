/*
 * cmd_list.c - Redis list commands over job queues (see cmd_list.h).
 *
 * One list element is one job. Every check that needs no queue state
 * (payload JSON and size, number syntax) happens on the I/O thread, so a
 * shard only ever sees well-formed requests.
 */
#include "cmd_list.h"

#include "admit.h"
#include "args.h"
#include "clock.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "kvcmd.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "shard.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- I/O side */

/* LLEN key | TYPE key */
void io_key(struct conn *c, struct msg *m)
{
    conn_route_key(c, m, 1);
}

/* LPUSH key element [element …] | RPUSH key element [element …] */
void io_push(struct conn *c, struct msg *m)
{
    if (admit_payloads(c, m, 2, m->req.argc))
        conn_route_key(c, m, 1);
}

/* LPOP key [count] | RPOP key [count] */
void io_pop(struct conn *c, struct msg *m)
{
    if (m->req.argc > 3) {
        conn_reply_error(c, m, "ERR syntax error");
        return;
    }
    if (m->req.argc == 3) {
        long long v;
        if (!arg_ll(m, 2, &v) || v < 0) {
            conn_reply_error(c, m, "ERR value is out of range, must be positive");
            return;
        }
    }
    conn_route_key(c, m, 1);
}

/* LRANGE key start stop */
void io_lrange(struct conn *c, struct msg *m)
{
    long long v;
    if (!arg_ll(m, 2, &v) || !arg_ll(m, 3, &v)) {
        conn_reply_error(c, m, "ERR value is not an integer or out of range");
        return;
    }
    conn_route_key(c, m, 1);
}

/* BLPOP key [key …] timeout | BRPOP key [key …] timeout */
void io_bpop(struct conn *c, struct msg *m)
{
    int64_t deadline;
    int rc = arg_timeout(m, m->req.argc - 1, &deadline);
    if (rc == -ERANGE) {
        conn_reply_error(c, m, "ERR timeout is negative");
        return;
    }
    if (rc < 0) {
        conn_reply_error(c, m, "ERR timeout is not a float or out of range");
        return;
    }
    conn_bpop(c, m, 1, m->req.argc - 1, deadline);
}

/* --------------------------------------------------------- shard side */

/* LPUSH key element [element …] | RPUSH key element [element …] */
void sh_push(struct shard *s, struct msg *m)
{
    if (kvcmd_queue_refused(s, m, 1))
        return;
    struct queue *q = shard_queue(s, m, 1, true);
    if (admit_json(s, m, q, 2, m->req.argc) || admit_room(s, m, q, (size_t)(m->req.argc - 2)))
        return;
    struct push_opts o = { .retries = -1, .left = m->cmd->flags & CMD_LEFT };
    for (int i = 2; i < m->req.argc; i++) {
        /* the job keeps a copy: the argument belongs to the request's block */
        store_job_push(&s->st, q, xmemdup(m->req.argv[i], m->req.len[i]), m->req.len[i], &o);
    }
    resp_add_int(&m->out, (long long)q->nready);
    shard_reply(s, m);
}

/* LPOP key [count] | RPOP key [count] */
void sh_pop(struct shard *s, struct msg *m)
{
    if (kvcmd_queue_refused(s, m, 1))
        return;
    struct queue *q = shard_queue(s, m, 1, false);
    bool left = m->cmd->flags & CMD_LEFT;
    bool counted = m->req.argc == 3;
    long long count = 1;
    if (counted)
        arg_ll(m, 2, &count);   /* checked on the I/O thread */
    size_t want = (size_t)count, got = 0;
    resp_buf items;
    resp_buf_init(&items);
    resp_buf saved = m->out;
    m->out = items;
    struct job *j;
    while (q && got < want && (j = store_job_next(&s->st, q, left))) { /* limits may stop it early */
        store_add_payload(&s->st, m, j);
        store_job_popped(&s->st, j);
        got++;
    }
    items = m->out;
    m->out = saved;
    if (got == 0 && counted)
        resp_add_null_array(&m->out, m->proto);
    else if (got == 0)
        resp_add_null(&m->out, m->proto);
    else if (counted)
        resp_add_array(&m->out, got);
    resp_buf_append(&m->out, items.data, items.len);
    resp_buf_free(&items);
    store_queue_gc(&s->st, q);
    shard_reply(s, m);
}

/* LLEN key */
void sh_llen(struct shard *s, struct msg *m)
{
    if (kvcmd_queue_refused(s, m, 1))
        return;
    struct queue *q = shard_queue(s, m, 1, false);
    resp_add_int(&m->out, q ? (long long)q->nready : 0);
    shard_reply(s, m);
}

/* The reply size of LRANGE from..to, stopping once it passes limit. */
static int64_t range_bytes(struct queue *q, size_t from, size_t to, int64_t limit)
{
    int64_t total = 16;
    struct job *j = queue_ready_at(q, from);
    for (size_t i = from; i <= to && total <= limit; i++) {
        total += (int64_t)j->len + 16; /* "$len\r\n" ... "\r\n" */
        j = j->next ? j->next : (i < to ? queue_ready_at(q, i + 1) : NULL);
    }
    return total;
}

/* LRANGE key start stop */
void sh_lrange(struct shard *s, struct msg *m)
{
    if (kvcmd_queue_refused(s, m, 1))
        return;
    struct queue *q = shard_queue(s, m, 1, false);
    size_t from, to;
    int64_t limit = s->srv->cfg.client_output_limit;
    long long start = 0, stop = 0;
    arg_ll(m, 2, &start);   /* both checked on the I/O thread */
    arg_ll(m, 3, &stop);
    if (!q || !queue_range(q->nready, start, stop, &from, &to)) {
        resp_add_array(&m->out, 0);
    } else if (range_bytes(q, from, to, limit) > limit) {
        /* refused before one byte of it is built */
        resp_buf_printf(&m->out, "-ERR LRANGE %.128s %lld %lld: %zu jobs would make a reply larger than "
                        "client-output-limit (%lld bytes); ask for fewer at a time (LRANGE %.128s %zu %zu)\r\n",
                        q->name, start, stop, to - from + 1, (long long)limit, q->name, from,
                        from + (to - from) / 2);
    } else {
        resp_add_array(&m->out, to - from + 1);
        struct job *j = queue_ready_at(q, from);
        for (size_t i = from; i <= to; i++) {
            store_add_payload(&s->st, m, j);
            j = j->next ? j->next : (i < to ? queue_ready_at(q, i + 1) : NULL);
        }
    }
    shard_reply(s, m);
}

static void info_line(void *arg, struct queue *q)
{
    struct msg *m = arg;
    char rate[48];
    rate_format(&q->conf.rate, rate, sizeof rate);
    resp_buf_printf(&m->out, "queue_%s:ready=%zu,reserved=%zu,delayed=%zu,done=%zu,dead=%zu,waiters=%zu,paused=%d,"
                    "pushed=%llu,acked=%llu,popped=%llu,retried=%llu,lease_expired=%llu,buried=%llu,expired=%zu,"
                    "throttled=%zu,groups=%zu,rate=%s,concurrency=%lld\r\n",
                    q->name, q->nready, q->reserved.n, q->delayed.n, q->done.n, q->dead.n, q->nwaiters,
                    q->paused, (unsigned long long)q->stats.pushed, (unsigned long long)q->stats.acked,
                    (unsigned long long)q->stats.popped, (unsigned long long)q->stats.retried,
                    (unsigned long long)q->stats.lease_expired, (unsigned long long)q->stats.buried,
                    q->expired.n, queue_throttled(q), q->groups.n, rate, (long long)q->conf.concurrency);
    m->num += (long long)q->nready;
    m->keys += q->nready > 0; /* a list key exists while it has elements, as DBSIZE counts */
}

/* The # Queues lines of this shard; m->num = jobs ready here, m->keys =
 * queues that exist as keys (DBSIZE's count). */
/* INFO [section …] (the queues part) */
void sh_info(struct shard *s, struct msg *m)
{
    keyspace_info_line(&s->ks, &m->out); /* first: finish_info reads it (keyspace.h) */
    qtable_each(&s->st.queues, info_line, m);
    shard_reply(s, m);
}
