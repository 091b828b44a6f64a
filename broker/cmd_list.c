/*
 * cmd_list.c - Redis list commands over job queues (see cmd_list.h).
 *
 * One list element is one job. Every check that needs no queue state
 * (payload JSON and size, number syntax) happens on the I/O thread, so a
 * shard only ever sees well-formed requests.
 */
#include "cmd_list.h"

#include "clock.h"
#include "cmd_job.h"
#include "commands.h"
#include "config.h"
#include "conn.h"
#include "io.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "server.h"
#include "shard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- numbers */

bool parse_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end != s + n || (n > 1 && s[0] == '0') || (s[0] == '-' && n > 1 && s[1] == '0'))
        return false;
    if (s[0] == '+' || s[0] == ' ')
        return false;
    *out = v;
    return true;
}

static long long arg_ll(const struct msg *m, int i)
{
    long long v = 0;
    parse_ll(m->req.argv[i], m->req.len[i], &v);
    return v;
}

/* ---------------------------------------------------------- I/O side */

void io_key(struct conn *c, struct msg *m)
{
    conn_route_key(c, m, 1);
}

void io_push(struct conn *c, struct msg *m)
{
    if (check_payloads(c, m, 2, m->req.argc))
        conn_route_key(c, m, 1);
}

void io_pop(struct conn *c, struct msg *m)
{
    if (m->req.argc > 3) {
        conn_reply_error(c, m, "ERR syntax error");
        return;
    }
    if (m->req.argc == 3) {
        long long v;
        if (!parse_ll(m->req.argv[2], m->req.len[2], &v) || v < 0) {
            conn_reply_error(c, m, "ERR value is out of range, must be positive");
            return;
        }
    }
    conn_route_key(c, m, 1);
}

void io_lrange(struct conn *c, struct msg *m)
{
    long long v;
    if (!parse_ll(m->req.argv[2], m->req.len[2], &v) || !parse_ll(m->req.argv[3], m->req.len[3], &v)) {
        conn_reply_error(c, m, "ERR value is not an integer or out of range");
        return;
    }
    conn_route_key(c, m, 1);
}

/* Redis timeout syntax: seconds, decimals allowed, 0 = forever. */
static int parse_timeout(const struct msg *m, int i, int64_t *deadline)
{
    const char *s = m->req.argv[i];
    size_t n = m->req.len[i];
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (n == 0 || end != s + n || errno || isnan(d) || isinf(d))
        return -EINVAL;
    if (d < 0)
        return -ERANGE;
    int64_t ms = (int64_t)ceil(d * 1000.0);
    *deadline = ms == 0 ? 0 : clock_now_ms() + ms;
    return 0;
}

void io_bpop(struct conn *c, struct msg *m)
{
    int64_t deadline;
    int rc = parse_timeout(m, m->req.argc - 1, &deadline);
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

static void finish_sum(struct conn *c, struct slot *sl)
{
    resp_add_int(&sl->out, sl->num);
}

void io_keys_sum(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_sum);
}

void io_dbsize(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_sum);
}

/* --------------------------------------------------------- shard side */

/* -FULL when q cannot take n more unfinished jobs. */
bool shard_check_full(struct shard *s, struct msg *m, struct queue *q, size_t n)
{
    if (q->conf.maxlen == 0 || queue_unfinished(q) + n <= (size_t)q->conf.maxlen)
        return false;
    resp_buf_printf(&m->out, "-FULL queue '%.128s' has %zu unfinished jobs, its maxlen is %lld; nothing was pushed "
                    "(raise it with QUEUE.CONFIG %.128s SET maxlen N, or let workers catch up)\r\n",
                    q->name, queue_unfinished(q), (long long)q->conf.maxlen, q->name);
    shard_reply(s, m);
    shard_queue_gc(s, q);
    return true;
}

void sh_push(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, true);
    if (shard_reject_payload(s, m, q, 2, m->req.argc) || shard_check_full(s, m, q, (size_t)(m->req.argc - 2)))
        return;
    struct push_opts o = { .retries = -1, .left = m->cmd->flags & CMD_LEFT };
    for (int i = 2; i < m->req.argc; i++) {
        shard_job_push(s, q, m->req.argv[i], m->req.len[i], &o);
        m->req.argv[i] = NULL; /* the job owns the payload now */
    }
    resp_add_int(&m->out, (long long)q->nready);
    shard_reply(s, m);
}

void sh_pop(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    bool left = m->cmd->flags & CMD_LEFT;
    bool counted = m->req.argc == 3;
    size_t want = counted ? (size_t)arg_ll(m, 2) : 1, got = 0;
    resp_buf items;
    resp_buf_init(&items);
    resp_buf saved = m->out;
    m->out = items;
    struct job *j;
    while (q && got < want && (j = shard_job_next(s, q, left))) { /* limits may stop it early */
        shard_add_payload(s, m, j);
        shard_job_popped(s, j);
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
    shard_queue_gc(s, q);
    shard_reply(s, m);
}

void sh_llen(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    resp_add_int(&m->out, q ? (long long)q->nready : 0);
    shard_reply(s, m);
}

void sh_lrange(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    size_t from, to;
    if (!q || !queue_range(q->nready, arg_ll(m, 2), arg_ll(m, 3), &from, &to)) {
        resp_add_array(&m->out, 0);
    } else {
        resp_add_array(&m->out, to - from + 1);
        struct job *j = queue_ready_at(q, from);
        for (size_t i = from; i <= to; i++) {
            shard_add_payload(s, m, j);
            j = j->next ? j->next : (i < to ? queue_ready_at(q, i + 1) : NULL);
        }
    }
    shard_reply(s, m);
}

void sh_type(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    resp_add_simple(&m->out, q && q->nready ? "list" : "none");
    shard_reply(s, m);
}

/* Deletes q's jobs in state (or, with state < 0, in every state but
 * reserved); returns how many. */
long long shard_purge(struct shard *s, struct queue *q, int state)
{
    long long n = 0;
    for (int st = 0; st < JOB_NSTATES; st++) {
        if (state >= 0 ? st != state : st == JOB_RESERVED)
            continue;
        struct job *j;
        while ((j = st == JOB_READY ? queue_ready_peek(q, false) : queue_list(q, st)->head)) {
            shard_job_delete(s, j);
            n++;
        }
    }
    return n;
}

/* DEL and EXISTS go to every shard; each answers for the keys it owns. */
void sh_del(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        if (q) {
            m->num += shard_purge(s, q, -1) > 0;
            shard_queue_gc(s, q);
        }
    }
    shard_reply(s, m);
}

void sh_exists(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        m->num += q && q->nready;
    }
    shard_reply(s, m);
}

static void count_nonempty(void *arg, struct queue *q)
{
    *(long long *)arg += q->nready > 0;
}

void sh_dbsize(struct shard *s, struct msg *m)
{
    qtable_each(&s->queues, count_nonempty, &m->num);
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
}

/* The # Queues lines of this shard; m->num = jobs ready here. */
void sh_info(struct shard *s, struct msg *m)
{
    qtable_each(&s->queues, info_line, m);
    shard_reply(s, m);
}
