/*
 * cmd_flow.c - QUEUE.GROUPS and QUEUE.WORKERS (see cmd_flow.h and
 * docs/protocol.md). Both run on the queue's shard and only read.
 */
#include "cmd_flow.h"

#include "clock.h"
#include "groups.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "shard.h"
#include "store.h"
#include "textfmt.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static void add_kv(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

/* ---------------------------------------------------------- QUEUE.GROUPS */

struct gvec {
    const struct group **v;
    size_t n;
};

static void collect_group(void *arg, const struct group *g)
{
    struct gvec *gv = arg;
    gv->v[gv->n++] = g;
}

static int by_key(const void *a, const void *b)
{
    const struct group *x = *(const struct group *const *)a, *y = *(const struct group *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* QUEUE.GROUPS queue
 * An array of maps, one per group with ready or reserved jobs, sorted by
 * key: group (the key; "" is the default group), ready, reserved,
 * delivered (deliveries since the group last appeared). */
void sh_queue_groups(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    struct gvec gv = { NULL, 0 };
    if (q && q->groups.n) {
        groups_sweep(&q->groups, clock_now_ms() * 1000);
        gv.v = xmalloc((q->groups.n ? q->groups.n : 1) * sizeof *gv.v);
        groups_each(&q->groups, collect_group, &gv);
        qsort(gv.v, gv.n, sizeof *gv.v, by_key);
    }
    resp_add_array(&m->out, gv.n);
    for (size_t i = 0; i < gv.n; i++) {
        const struct group *g = gv.v[i];
        resp_add_map(&m->out, m->proto, 4);
        resp_add_cstr(&m->out, "group");
        resp_add_bulk(&m->out, g->key, g->len);
        add_kv(&m->out, "ready", (long long)g->nready);
        add_kv(&m->out, "reserved", (long long)g->nreserved);
        add_kv(&m->out, "delivered", (long long)g->delivered);
    }
    free(gv.v);
    shard_reply(s, m);
}

/* --------------------------------------------------------- QUEUE.WORKERS */

struct worker {
    const char *who;
    const struct job **jobs;
    size_t njobs, cap;
    int64_t last;
    bool waiting;
};

struct wset {
    struct worker *v;
    size_t n, cap;
};

static struct worker *worker_of(struct wset *ws, const char *who)
{
    for (size_t i = 0; i < ws->n; i++)
        if (strcmp(ws->v[i].who, who) == 0)
            return &ws->v[i];
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? ws->cap * 2 : 8;
        ws->v = xrealloc(ws->v, ws->cap * sizeof *ws->v);
    }
    struct worker *w = &ws->v[ws->n++];
    memset(w, 0, sizeof *w);
    w->who = who;
    return w;
}

static void add_waiting(void *arg, const char *who, int64_t since)
{
    struct worker *w = worker_of(arg, who);
    w->waiting = true;
    if (since > w->last)
        w->last = since;
}

/* The value of "key=" in a holder string (up to the next " addr=" / " id="). */
static void add_part(resp_buf *b, const char *who, const char *key, const char *stop)
{
    const char *p = strstr(who, key);
    size_t n = 0;
    if (p) {
        p += strlen(key);
        const char *e = stop ? strstr(p, stop) : NULL;
        n = e ? (size_t)(e - p) : strlen(p);
    }
    resp_add_bulk(b, p ? p : "", n);
}

static int by_conn_id(const void *a, const void *b)
{
    const char *x = strstr(((const struct worker *)a)->who, " id="), *y = strstr(((const struct worker *)b)->who, " id=");
    long long ix = x ? atoll(x + 4) : 0, iy = y ? atoll(y + 4) : 0;
    return (ix > iy) - (ix < iy);
}

/* QUEUE.WORKERS queue
 * An array of maps, one per client that holds reserved jobs of the queue
 * or waits in JOB.RESERVE on it, by connection id: name, addr, id,
 * waiting (0/1), last_active (unix ms: its latest reserve, touch or start
 * of waiting), jobs (array of maps: id, lease_until, attempt). */
void sh_queue_workers(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    struct wset ws = { NULL, 0, 0 };
    if (q) {
        for (const struct job *j = q->reserved.head; j; j = j->next) {
            struct worker *w = worker_of(&ws, j->holder ? j->holder : "name= addr= id=0");
            if (w->njobs == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 4;
                w->jobs = xrealloc(w->jobs, w->cap * sizeof *w->jobs);
            }
            w->jobs[w->njobs++] = j;
            if (j->updated_at > w->last)
                w->last = j->updated_at;
        }
        shard_each_waiter(s, q, add_waiting, &ws);
    }
    if (ws.n)
        qsort(ws.v, ws.n, sizeof *ws.v, by_conn_id);
    resp_buf *b = &m->out;
    resp_add_array(b, ws.n);
    for (size_t i = 0; i < ws.n; i++) {
        struct worker *w = &ws.v[i];
        resp_add_map(b, m->proto, 6);
        resp_add_cstr(b, "name");
        add_part(b, w->who, "name=", " addr=");
        resp_add_cstr(b, "addr");
        add_part(b, w->who, " addr=", " id=");
        const char *id = strstr(w->who, " id=");
        add_kv(b, "id", id ? atoll(id + 4) : 0);
        add_kv(b, "waiting", w->waiting);
        add_kv(b, "last_active", w->last);
        resp_add_cstr(b, "jobs");
        resp_add_array(b, w->njobs);
        for (size_t k = 0; k < w->njobs; k++) {
            char hex[JOB_ID_HEX + 1];
            job_id_format(w->jobs[k]->id, hex);
            resp_add_map(b, m->proto, 3);
            resp_add_cstr(b, "id");
            resp_add_cstr(b, hex);
            add_kv(b, "lease_until", w->jobs[k]->lease_until);
            add_kv(b, "attempt", w->jobs[k]->attempt);
        }
        free(w->jobs);
    }
    free(ws.v);
    shard_reply(s, m);
}

/* ------------------------------------------------------------ HTTP admin */

static void json_kv_str(resp_buf *b, const char *k, const char *v, size_t n, bool comma)
{
    resp_buf_printf(b, "%s\"%s\":", comma ? "," : "", k);
    if (v)
        text_json_str(b, v, n);
    else
        resp_buf_append(b, "null", 4);
}

/* The HTTP admin's /api/jobs/<id> (m->num is the id): the job as one JSON
 * object, with its failed attempts; nothing (an empty reply) when there
 * is no such job. */
void sh_admin_job(struct shard *s, struct msg *m)
{
    struct job *j = jtable_find(&s->st.jobs, (uint64_t)m->num);
    if (!j || store_job_payload(&s->st, j) < 0) {
        shard_reply(s, m);
        return;
    }
    resp_buf *b = &m->out;
    char id[JOB_ID_HEX + 1];
    job_id_format(j->id, id);
    resp_buf_printf(b, "{\"id\":\"%s\"", id);
    json_kv_str(b, "queue", j->q->name, j->q->namelen, true);
    resp_buf_printf(b, ",\"state\":\"%s\",\"priority\":%d,\"attempt\":%u,\"retries\":%u,\"lease_ms\":%u,"
                    "\"run_at\":%lld,\"lease_until\":%lld,\"created_at\":%lld,\"updated_at\":%lld,\"expires_at\":%lld",
                    job_state_name(j->state), j->priority, j->attempt, j->retries, j->lease_ms,
                    (long long)(j->state == JOB_DELAYED ? j->run_at : 0),
                    (long long)(j->state == JOB_RESERVED ? j->lease_until : 0), (long long)j->created_at,
                    (long long)j->updated_at, (long long)j->expires_at);
    json_kv_str(b, "group", j->group, j->grouplen, true);
    const char *holder = j->state == JOB_RESERVED ? j->holder : NULL;
    json_kv_str(b, "holder", holder, holder ? strlen(holder) : 0, true);
    json_kv_str(b, "last_error", j->last_error, j->last_error ? strlen(j->last_error) : 0, true);
    json_kv_str(b, "unique", j->unique, j->unique ? strlen(j->unique) : 0, true);
    resp_buf_append(b, ",\"errors\":[", 11);
    struct job_attempt a;
    bool comma = false;
    for (const char *p = j->history; (p = job_history_next(p, &a)); comma = true) {
        resp_buf_printf(b, "%s{\"attempt\":%lld,\"time\":%lld", comma ? "," : "", a.attempt, a.time);
        json_kv_str(b, "worker", a.worker, a.worker_len, true);
        json_kv_str(b, "error", a.error, a.error_len, true);
        resp_buf_append(b, "}", 1);
    }
    resp_buf_append(b, "],\"payload\":", 12);
    size_t at;
    if (payload_is_json(j->payload, j->len, &at))
        resp_buf_append(b, j->payload, j->len);
    else
        text_json_str(b, j->payload, j->len);
    resp_buf_append(b, "}\n", 2);
    shard_reply(s, m);
}
