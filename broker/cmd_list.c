/*
 * cmd_list.c - Redis list commands over job queues (see cmd_list.h).
 *
 * One list element is one job. Every check that needs no queue state
 * (payload JSON and size, number syntax) happens on the I/O thread, so a
 * shard only ever sees well-formed requests.
 */
#include "cmd_list.h"

#include "clock.h"
#include "commands.h"
#include "config.h"
#include "hash.h"
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

static bool parse_ll(const char *s, size_t n, long long *out)
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
    const struct config *cfg = &c->io->srv->cfg;
    int n = m->req.argc - 2;
    for (int i = 2; i < m->req.argc; i++) {
        size_t len = m->req.len[i];
        char which[48] = "";
        if (n > 1)
            snprintf(which, sizeof which, " (element %d)", i - 1);
        if ((int64_t)len > cfg->max_payload) {
            conn_reply_error(c, m, "TOOBIG payload%s is %zu bytes; the limit is %lld bytes (max-payload); nothing was pushed",
                             which, len, (long long)cfg->max_payload);
            return;
        }
        size_t at;
        if (cfg->payload == PAYLOAD_JSON && !payload_is_json(m->req.argv[i], len, &at)) {
            conn_reply_error(c, m, "BADJSON payload%s is not valid JSON at byte %zu; nothing was pushed (start spoold with --payload raw to accept any bytes)",
                             which, at);
            return;
        }
    }
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
    *deadline = ms == 0 ? 0 : clock_mono_ms() + ms;
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

void sh_push(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, true);
    bool left = m->cmd->flags & CMD_LEFT; /* LPUSH, LPOP, BLPOP: the left end */
    for (int i = 2; i < m->req.argc; i++) {
        struct job *j = job_new(++s->next_id, m->req.argv[i], m->req.len[i]);
        if (left)
            jobq_push_left(&q->ready, j);
        else
            jobq_push_right(&q->ready, j);
        q->pushed_total++;
    }
    resp_add_int(&m->out, (long long)q->ready.n);
    shard_queue_changed(s, q);
    shard_reply(s, m);
}

void sh_pop(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    bool left = m->cmd->flags & CMD_LEFT;
    bool counted = m->req.argc == 3;
    if (!q || q->ready.n == 0) {
        if (counted)
            resp_add_null_array(&m->out, m->proto);
        else
            resp_add_null(&m->out, m->proto);
        shard_reply(s, m);
        return;
    }
    size_t want = counted ? (size_t)arg_ll(m, 2) : 1;
    if (want > q->ready.n)
        want = q->ready.n;
    if (counted)
        resp_add_array(&m->out, want);
    for (size_t i = 0; i < want; i++) {
        struct job *j = left ? jobq_pop_left(&q->ready) : jobq_pop_right(&q->ready);
        resp_add_bulk(&m->out, j->payload, j->len);
        job_free(j);
        q->popped_total++;
    }
    shard_queue_gc(s, q);
    shard_reply(s, m);
}

void sh_llen(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    resp_add_int(&m->out, q ? (long long)q->ready.n : 0);
    shard_reply(s, m);
}

void sh_lrange(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    size_t from, to;
    if (!q || !queue_range(q->ready.n, arg_ll(m, 2), arg_ll(m, 3), &from, &to)) {
        resp_add_array(&m->out, 0);
    } else {
        resp_add_array(&m->out, to - from + 1);
        for (size_t i = from; i <= to; i++) {
            const struct job *j = jobq_at(&q->ready, i);
            resp_add_bulk(&m->out, j->payload, j->len);
        }
    }
    shard_reply(s, m);
}

void sh_type(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    resp_add_simple(&m->out, q && q->ready.n ? "list" : "none");
    shard_reply(s, m);
}

static bool mine(const struct shard *s, const struct msg *m, int i)
{
    return shard_of(m->req.argv[i], m->req.len[i], s->srv->nshards) == s->id;
}

/* DEL and EXISTS go to every shard; each answers for the keys it owns. */
void sh_del(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++) {
        if (!mine(s, m, i))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        if (q && q->ready.n) {
            jobq_clear(&q->ready);
            m->num++;
            shard_queue_gc(s, q);
        }
    }
    shard_reply(s, m);
}

void sh_exists(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++) {
        if (!mine(s, m, i))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        m->num += q && q->ready.n;
    }
    shard_reply(s, m);
}

static void count_nonempty(void *arg, struct queue *q)
{
    *(long long *)arg += q->ready.n > 0;
}

void sh_dbsize(struct shard *s, struct msg *m)
{
    qtable_each(&s->queues, count_nonempty, &m->num);
    shard_reply(s, m);
}

static void info_line(void *arg, struct queue *q)
{
    struct msg *m = arg;
    resp_buf_printf(&m->out, "queue_%s:ready=%zu,waiters=%zu,pushed=%llu,popped=%llu\r\n",
                    q->name, q->ready.n, q->nwaiters, (unsigned long long)q->pushed_total,
                    (unsigned long long)q->popped_total);
    m->num += (long long)q->ready.n;
}

/* The # Queues lines of this shard; m->num = jobs ready here. */
void sh_info(struct shard *s, struct msg *m)
{
    qtable_each(&s->queues, info_line, m);
    shard_reply(s, m);
}
