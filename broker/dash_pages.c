/*
 * dash_pages.c - see dash_pages.h.
 *
 * Workers: one round of admin-stats picks the queues with reserved jobs
 * or waiters, then QUEUE.WORKERS runs for each on its shard, one after
 * the other, each reply appended to the JSON as it comes.
 */
#include "dash_pages.h"

#include "admin_rpc.h"
#include "clock.h"
#include "commands.h"
#include "context.h"
#include "dash_api.h"
#include "dash_reply.h"
#include "hash.h"
#include "textfmt.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct busy_queue {
    char *name;
    size_t len;
    long long v[QSTAT_COUNT];
};

struct wreq {
    struct evhttp_request *req;
    struct busy_queue *q;
    size_t n, next, more;
    resp_buf out;
};

static void wreq_free(struct wreq *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->q[i].name);
    free(w->q);
    resp_buf_free(&w->out);
    free(w);
}

static void busy(struct server *srv, struct wreq *w);

static void workers_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct wreq *w = arg;
    if (nparts == 0) {
        wreq_free(w);
        return;
    }
    resp_val *v = admin_rpc_parse(&parts[0]);
    const struct busy_queue *q = &w->q[w->next++];
    resp_buf *b = &w->out;
    resp_buf_append(b, w->next > 1 ? ",{\"name\":" : "{\"name\":", w->next > 1 ? 9 : 8);
    text_json_str(b, q->name, q->len);
    static const int shown[] = { QSTAT_RESERVED, QSTAT_WAITERS, QSTAT_THROTTLED, QSTAT_CONCURRENCY_LIMIT,
                                 QSTAT_PAUSED };
    for (size_t k = 0; k < sizeof shown / sizeof shown[0]; k++)
        resp_buf_printf(b, ",\"%s\":%lld", qstat_names[shown[k]], q->v[shown[k]]);
    resp_buf_append(b, ",\"workers\":", 11);
    if (v && v->type != RESP_T_ERROR)
        djson_resp(b, v);
    else
        resp_buf_append(b, "[]", 2);
    resp_buf_append(b, "}", 1);
    resp_val_free(v);
    busy(srv, w);
}

/* Asks for the next queue's workers, or answers when all are in. */
static void busy(struct server *srv, struct wreq *w)
{
    if (w->next == w->n) {
        resp_buf_printf(&w->out, "],\"more\":%zu}\n", w->more);
        dreply_json(w->req, 200, &w->out);
        wreq_free(w);
        return;
    }
    const struct busy_queue *q = &w->q[w->next];
    const struct command *c = commands_find("queue.workers", 13);
    const char *argv[] = { "queue.workers", q->name };
    size_t len[] = { 13, q->len };
    if (!c || admin_rpc_shard(srv, shard_of(q->name, q->len, srv->nshards), c, 2, argv, len, workers_done, w) < 0) {
        dreply_error(w->req, 503, "spoold is busy with %d dashboard requests; try again in a moment",
                     ADMIN_RPC_MAX_PENDING);
        wreq_free(w);
    }
}

static int by_reserved(const void *a, const void *b)
{
    const struct busy_queue *x = a, *y = b;
    long long rx = x->v[QSTAT_RESERVED], ry = y->v[QSTAT_RESERVED];
    if (rx != ry)
        return (ry > rx) - (ry < rx);
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void busy_stats_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct wreq *w = arg;
    if (nparts == 0) {
        wreq_free(w);
        return;
    }
    size_t n;
    struct dapi_row *r = dapi_rows(parts, nparts, &n);
    w->q = xcalloc(n ? n : 1, sizeof *w->q);
    for (size_t i = 0; i < n; i++) {
        if (!r[i].v[QSTAT_RESERVED] && !r[i].v[QSTAT_WAITERS])
            continue;
        struct busy_queue *q = &w->q[w->n++];
        q->name = xmalloc(r[i].len + 1);
        memcpy(q->name, r[i].name, r[i].len);
        q->name[r[i].len] = '\0';
        q->len = r[i].len;
        memcpy(q->v, r[i].v, sizeof q->v);
    }
    free(r);
    qsort(w->q, w->n, sizeof *w->q, by_reserved);
    for (; w->n > DPAGES_QUEUES_MAX; w->more++)
        free(w->q[--w->n].name);
    resp_buf_printf(&w->out, "{\"time\":%lld,\"limit\":%d,\"queues\":[", (long long)clock_now_ms(),
                    DPAGES_QUEUES_MAX);
    busy(srv, w);
}

void dpages_workers(struct server *srv, struct evhttp_request *req)
{
    struct wreq *w = xcalloc(1, sizeof *w);
    w->req = req;
    resp_buf_init(&w->out);
    if (admin_rpc_all(srv, &dapi_stats_cmd, 1, (const char *const[]){ "admin-stats" }, NULL, busy_stats_done, w) < 0) {
        dreply_error(req, 503, "spoold is busy with dashboard requests; try again in a moment");
        wreq_free(w);
    }
}

/* ----------------------------------------------------------- schedules */

struct sreq {
    struct evhttp_request *req;
    struct dash_who who;
};

static const char *sched_name(const resp_val *v, size_t *n)
{
    const resp_val *name = v->type == RESP_T_MAP ? resp_val_get(v, "name") : NULL;
    *n = name && name->str ? name->len : 0;
    return name && name->str ? name->str : "";
}

static int by_name(const void *a, const void *b)
{
    size_t xn, yn;
    const char *x = sched_name(*(resp_val *const *)a, &xn), *y = sched_name(*(resp_val *const *)b, &yn);
    int c = memcmp(x, y, xn < yn ? xn : yn);
    return c ? c : (xn > yn) - (xn < yn);
}

/* Every value in a shard's part (SCHED.LIST's shard replies are the
 * schedules one after the other, without an array around them). */
static size_t parse_all(const resp_buf *part, resp_val ***vals, size_t n)
{
    resp_limits lim = resp_limits_default();
    lim.max_bulk = 1ULL << 32;
    resp_reader *r = resp_reader_new(&lim);
    size_t off = 0;
    while (off < part->len) {
        resp_val *v = NULL;
        size_t used = 0;
        if (resp_reader_feed(r, part->data + off, part->len - off, &used, &v) != RESP_OK || !used) {
            resp_val_free(v);
            break;
        }
        off += used;
        *vals = xrealloc(*vals, (n + 1) * sizeof **vals);
        (*vals)[n++] = v;
    }
    resp_reader_free(r);
    return n;
}

static void schedules_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct sreq *s = arg;
    if (nparts == 0) {
        free(s);
        return;
    }
    resp_val **vals = NULL;
    size_t n = 0;
    for (int k = 0; k < nparts; k++)
        n = parse_all(&parts[k], &vals, n);
    if (n)
        qsort(vals, n, sizeof *vals, by_name);
    resp_buf b;
    resp_buf_init(&b);
    resp_buf_printf(&b, "{\"time\":%lld,\"can\":", (long long)clock_now_ms());
    dapi_can_json(&b, &s->who, DAPI_SCHED, NULL, 0);
    resp_buf_append(&b, ",\"schedules\":[", 14);
    for (size_t i = 0; i < n; i++) {
        if (i)
            resp_buf_append(&b, ",", 1);
        djson_resp(&b, vals[i]);
        resp_val_free(vals[i]);
    }
    resp_buf_append(&b, "]}\n", 3);
    dreply_json(s->req, 200, &b);
    resp_buf_free(&b);
    free(vals);
    free(s);
}

void dpages_schedules(struct server *srv, struct evhttp_request *req, const struct dash_who *who)
{
    const struct command *c = commands_find("sched.list", 10);
    struct sreq *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->who = *who;
    if (!c || admin_rpc_all(srv, c, 1, (const char *const[]){ "sched.list" }, NULL, schedules_done, s) < 0) {
        dreply_error(req, 503, "spoold is busy with dashboard requests; try again in a moment");
        free(s);
    }
}
