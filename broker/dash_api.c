/*
 * dash_api.c - see dash_api.h.
 *
 * Each request that needs a shard becomes a `struct dq` (the request, its
 * checked arguments, the JSON built so far) that rides through one or more
 * admin_rpc calls and answers the HTTP request from the last callback. An
 * HTTP client that disconnects meanwhile is harmless: evhttp keeps the
 * request until it is answered, then drops the answer.
 */
#include "dash_api.h"

#include "acl.h"
#include "admin_rpc.h"
#include "clock.h"
#include "cmd_queue.h"
#include "commands.h"
#include "context.h"
#include "dash_reply.h"
#include "hash.h"
#include "log.h"
#include "queue.h"
#include "rate.h"
#include "rates.h"
#include "textfmt.h"
#include "xalloc.h"

#include <ctype.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_NAME_MAX 1024
#define GROUPS_MAX 100
#define DEAD_GROUP_KEY_MAX 200
#define RATE_WINDOW 10 /* seconds averaged for the overview's rates */

struct dead_group {
    char *error;         /* NULL: jobs without an error */
    long long count;
    char latest[JOB_ID_HEX + 1];
    long long latest_at;
};

struct dq {
    struct server *srv;
    struct evhttp_request *req;
    char *queue;
    size_t qlen;
    int state;
    int want;
    char *filter;        /* error text filter, or NULL */
    bool groups;         /* dead-groups mode */
    int asked;           /* COUNT of the page in flight */
    int scanned;
    int found;
    char last[JOB_ID_HEX + 1];
    uint64_t id;         /* a job action's job */
    resp_buf out;        /* JSON built so far */
    struct dead_group *g;
    size_t ng;
    long long other;     /* jobs past GROUPS_MAX distinct errors */
    /* actions */
    const struct action *act;
    struct dash_who who;
    char target[96];
};

const struct command dapi_stats_cmd = {
    .name = "admin-stats", .arity = 1, .shard = sh_admin_stats,
};

/* ------------------------------------------------------------- helpers */

static const struct command *cmd(const char *name)
{
    const struct command *c = commands_find(name, strlen(name));
    ASSERT(c);
    return c;
}

static struct dq *dq_new(struct server *srv, struct evhttp_request *req)
{
    struct dq *d = xcalloc(1, sizeof *d);
    d->srv = srv;
    d->req = req;
    d->state = JOB_READY;
    resp_buf_init(&d->out);
    return d;
}

static void dq_free(struct dq *d)
{
    free(d->queue);
    free(d->filter);
    for (size_t i = 0; i < d->ng; i++)
        free(d->g[i].error);
    free(d->g);
    resp_buf_free(&d->out);
    free(d);
}

/* Posts argv to the shard that owns the queue of d; answers 503 when too
 * many calls wait. Returns false when the call was not made (d freed). */
static bool dq_call(struct dq *d, int k, const char *name, int argc, const char *const *argv, const size_t *len,
                    admin_rpc_fn done)
{
    if (admin_rpc_shard(d->srv, k, cmd(name), argc, argv, len, done, d) == 0)
        return true;
    dreply_error(d->req, 503, "spoold is busy with %d dashboard requests; try again in a moment", ADMIN_RPC_MAX_PENDING);
    dq_free(d);
    return false;
}

static int queue_shard(const struct dq *d)
{
    return shard_of(d->queue, d->qlen, d->srv->nshards);
}

/* The queue= parameter, checked; answers 400 and returns false when bad. */
static bool take_queue(struct dq *d, const struct evkeyvalq *q)
{
    const char *name = evhttp_find_header(q, "queue");
    if (!name || !name[0] || strlen(name) > QUEUE_NAME_MAX) {
        dreply_error(d->req, 400, "give the queue as ?queue=NAME (1 to %d bytes)", QUEUE_NAME_MAX);
        return false;
    }
    d->qlen = strlen(name);
    d->queue = xmalloc(d->qlen + 1);
    memcpy(d->queue, name, d->qlen + 1);
    return true;
}

static bool take_state(struct dq *d, const char *s)
{
    if (!s || !s[0])
        return true;
    d->state = job_state_parse(s, strlen(s));
    if (d->state < 0) {
        dreply_error(d->req, 400, "state '%.32s' is not one of ready, reserved, delayed, done, dead", s);
        return false;
    }
    return true;
}

/* A bare job id (16 hex digits); answers 400 and returns false when bad. */
static bool take_id(struct evhttp_request *req, const char *s, uint64_t *id)
{
    uint32_t attempt = 1;
    if (!s || !job_id_parse(s, strlen(s), id, &attempt) || attempt != 0) {
        dreply_error(req, 400, "'%.64s' is not a job id (16 hex digits, as JOB.PUSH returns)", s ? s : "");
        return false;
    }
    return true;
}

/* Parses the reply of a one-shard call; answers 409 with the message when
 * it is a RESP error (or unreadable) and returns NULL. */
static resp_val *reply_or_error(struct evhttp_request *req, const resp_buf *part)
{
    resp_val *v = admin_rpc_parse(part);
    if (!v) {
        dreply_error(req, 500, "unreadable reply from the shard");
        return NULL;
    }
    if (v->type == RESP_T_ERROR) {
        dreply_error(req, 409, "%s", v->str);
        resp_val_free(v);
        return NULL;
    }
    return v;
}

static const resp_val *field(const resp_val *job, const char *name)
{
    return resp_val_get(job, name);
}

/* Longest prefix of s[0..n) of at most max bytes that ends on a UTF-8
 * character boundary. */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* One job of a list: every field but the payload, which becomes a preview
 * and its size. */
static void job_summary(resp_buf *b, const resp_val *job)
{
    resp_buf_append(b, "{", 1);
    bool first = true;
    for (size_t i = 0; job->type == RESP_T_MAP && i + 1 < job->n; i += 2) {
        const resp_val *k = job->elem[i], *v = job->elem[i + 1];
        if (!k->str)
            continue;
        if (strcmp(k->str, "payload") == 0) {
            size_t n = v->str ? v->len : 0;
            djson_key(b, "payload_bytes", first);
            resp_buf_printf(b, "%zu", n);
            djson_key(b, "payload_preview", 0);
            if (v->str)
                text_json_str(b, v->str, utf8_prefix(v->str, v->len, DAPI_PREVIEW));
            else
                resp_buf_append(b, "null", 4);
        } else {
            djson_key(b, k->str, first);
            djson_resp(b, v);
        }
        first = false;
    }
    resp_buf_append(b, "}", 1);
}

/* ------------------------------------------------------------ overview */

struct dapi_row *dapi_rows(const resp_buf *parts, int nparts, size_t *n)
{
    struct name_rec *r = text_name_recs(parts, nparts, n);
    struct dapi_row *rows = xcalloc(*n ? *n : 1, sizeof *rows);
    for (size_t i = 0; i < *n; i++) {
        rows[i].name = r[i].name;
        rows[i].len = r[i].len;
        char *p = (char *)r[i].rest;
        for (int k = 0; k < QSTAT_COUNT; k++)
            rows[i].v[k] = strtoll(p, &p, 10);
    }
    free(r);
    return rows;
}

static void rate_json(resp_buf *b, const struct rates *r, int idx)
{
    uint64_t sum[RATE_NSERIES] = { 0 };
    int64_t end = rates_last(r);
    for (int64_t t = end - RATE_WINDOW + 1; t <= end; t++) {
        uint32_t v[RATE_NSERIES];
        rates_at(r, idx, t, v);
        for (int k = 0; k < RATE_NSERIES; k++)
            sum[k] += v[k];
    }
    if (idx < 0) {
        resp_buf_append(b, "null", 4);
        return;
    }
    resp_buf_printf(b, "{\"pushed\":%.1f,\"acked\":%.1f,\"failed\":%.1f}", (double)sum[RATE_PUSHED] / RATE_WINDOW,
                    (double)sum[RATE_ACKED] / RATE_WINDOW, (double)sum[RATE_FAILED] / RATE_WINDOW);
}

void dapi_overview_json(struct server *srv, resp_buf *b, const struct dapi_row *r, size_t n, const struct rates *rates)
{
    resp_buf_printf(b, "{\"time\":%lld,\"rate_window_s\":%d,\"connected_clients\":%ld,\"blocked_clients\":%ld,"
                    "\"total\":", (long long)clock_now_ms(), RATE_WINDOW, atomic_load(&srv->connected_clients),
                    atomic_load(&srv->blocked_clients));
    rate_json(b, rates, 0);
    resp_buf_append(b, ",\"queues\":[", 11);
    for (size_t i = 0; i < n; i++) {
        resp_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        text_json_str(b, r[i].name, r[i].len);
        for (int k = 0; k < QSTAT_COUNT; k++) {
            long long v = r[i].v[k];
            if (k == QSTAT_PAUSED)
                resp_buf_printf(b, ",\"paused\":%s", v ? "true" : "false");
            else
                resp_buf_printf(b, ",\"%s\":%lld", qstat_names[k], v);
        }
        resp_buf_append(b, ",\"rate\":", 8);
        rate_json(b, rates, rates_find(rates, r[i].name, r[i].len));
        resp_buf_append(b, "}", 1);
    }
    resp_buf_append(b, "]}\n", 3);
}

struct overview {
    struct evhttp_request *req;
    const struct rates *rates;
};

static void overview_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct overview *o = arg;
    if (nparts == 0) {
        free(o);
        return;
    }
    size_t n;
    struct dapi_row *r = dapi_rows(parts, nparts, &n);
    resp_buf b;
    resp_buf_init(&b);
    dapi_overview_json(srv, &b, r, n, o->rates);
    dreply_json(o->req, 200, &b);
    resp_buf_free(&b);
    free(r);
    free(o);
}

void dapi_overview(struct server *srv, struct evhttp_request *req, const struct rates *r)
{
    struct overview *o = xcalloc(1, sizeof *o);
    o->req = req;
    o->rates = r;
    if (admin_rpc_all(srv, &dapi_stats_cmd, 1, (const char *const[]){ "admin-stats" }, NULL, overview_done, o) < 0) {
        dreply_error(req, 503, "spoold is busy with dashboard requests; try again in a moment");
        free(o);
    }
}

/* --------------------------------------------------------------- queue */

/* The reply of d's one shard call: NULL, with d freed, when the call was
 * cancelled at shutdown or the reply was an error (then answered). */
static resp_val *dq_reply(struct dq *d, resp_buf *parts, int nparts)
{
    if (nparts == 0) { /* cancelled at shutdown */
        dq_free(d);
        return NULL;
    }
    resp_val *v = reply_or_error(d->req, &parts[0]);
    if (!v)
        dq_free(d);
    return v;
}

static void queue_config_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    resp_val *v = dq_reply(d, parts, nparts);
    if (!v)
        return;
    resp_buf_append(&d->out, ",\"config\":", 10);
    djson_resp(&d->out, v);
    resp_buf_append(&d->out, ",\"settings\":[", 13);
    for (size_t i = 0; i < qconf_count(); i++) {
        if (i)
            resp_buf_append(&d->out, ",", 1);
        text_json_str(&d->out, qconf_name(i), strlen(qconf_name(i)));
    }
    resp_buf_append(&d->out, "],\"can\":", 8);
    dapi_can_json(&d->out, &d->who, DAPI_QUEUE, d->queue, d->qlen);
    resp_buf_append(&d->out, "}\n", 2);
    dreply_json(d->req, 200, &d->out);
    resp_val_free(v);
    dq_free(d);
}

static void queue_stats_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    resp_val *v = dq_reply(d, parts, nparts);
    if (!v)
        return;
    resp_buf_append(&d->out, "{\"name\":", 8);
    text_json_str(&d->out, d->queue, d->qlen);
    resp_buf_append(&d->out, ",\"stats\":", 9);
    djson_resp(&d->out, v);
    resp_val_free(v);
    const char *argv[] = { "queue.config", d->queue, "GET" };
    size_t len[] = { 12, d->qlen, 3 };
    dq_call(d, queue_shard(d), "queue.config", 3, argv, len, queue_config_done);
}

void dapi_queue(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q, const struct dash_who *who)
{
    struct dq *d = dq_new(srv, req);
    d->who = *who;
    if (!take_queue(d, q)) {
        dq_free(d);
        return;
    }
    const char *argv[] = { "queue.stats", d->queue };
    size_t len[] = { 11, d->qlen };
    dq_call(d, queue_shard(d), "queue.stats", 2, argv, len, queue_stats_done);
}

/* ---------------------------------------------------------------- jobs */

static void peek_page(struct dq *d);

static bool matches(const struct dq *d, const resp_val *job)
{
    if (!d->filter)
        return true;
    const resp_val *e = field(job, "last_error");
    return e && e->str && strcasestr(e->str, d->filter);
}

static void group_add(struct dq *d, const resp_val *job)
{
    const resp_val *e = field(job, "last_error"), *id = field(job, "id"), *at = field(job, "updated_at");
    size_t n = e && e->str ? utf8_prefix(e->str, e->len, DEAD_GROUP_KEY_MAX) : 0;
    struct dead_group *g = NULL;
    for (size_t i = 0; i < d->ng && !g; i++) {
        bool none = !d->g[i].error;
        if ((none && !(e && e->str)) ||
            (!none && e && e->str && strlen(d->g[i].error) == n && memcmp(d->g[i].error, e->str, n) == 0))
            g = &d->g[i];
    }
    if (!g) {
        if (d->ng == GROUPS_MAX) {
            d->other++;
            return;
        }
        d->g = xrealloc(d->g, (d->ng + 1) * sizeof *d->g);
        g = &d->g[d->ng++];
        memset(g, 0, sizeof *g);
        if (e && e->str) {
            g->error = xmalloc(n + 1);
            memcpy(g->error, e->str, n);
            g->error[n] = '\0';
        }
    }
    g->count++;
    long long t = at && at->type == RESP_T_INT ? at->integer : 0;
    if (t >= g->latest_at && id && id->str) {
        g->latest_at = t;
        snprintf(g->latest, sizeof g->latest, "%s", id->str);
    }
}

static int by_count(const void *a, const void *b)
{
    const struct dead_group *x = a, *y = b;
    return (y->count > x->count) - (y->count < x->count);
}

static void finish_groups(struct dq *d, bool truncated)
{
    qsort(d->g, d->ng, sizeof *d->g, by_count);
    resp_buf *b = &d->out;
    resp_buf_append(b, "{\"queue\":", 9);
    text_json_str(b, d->queue, d->qlen);
    resp_buf_printf(b, ",\"scanned\":%d,\"truncated\":%s,\"other\":%lld,\"groups\":[", d->scanned,
                    truncated ? "true" : "false", d->other);
    for (size_t i = 0; i < d->ng; i++) {
        resp_buf_append(b, i ? ",{\"error\":" : "{\"error\":", i ? 10 : 9);
        if (d->g[i].error)
            text_json_str(b, d->g[i].error, strlen(d->g[i].error));
        else
            resp_buf_append(b, "null", 4);
        resp_buf_printf(b, ",\"count\":%lld,\"latest_id\":\"%s\",\"latest_at\":%lld}", d->g[i].count, d->g[i].latest,
                        d->g[i].latest_at);
    }
    resp_buf_append(b, "]}\n", 3);
    dreply_json(d->req, 200, b);
    dq_free(d);
}

/* The jobs array is in d->out already (opened by dapi_jobs). */
static void finish_jobs(struct dq *d, bool more)
{
    resp_buf *b = &d->out;
    resp_buf_append(b, "],\"next\":", 9);
    if (more && d->last[0])
        resp_buf_printf(b, "\"%s\"", d->last);
    else
        resp_buf_append(b, "null", 4);
    resp_buf_printf(b, ",\"scanned\":%d,\"scan_limit_reached\":%s}\n", d->scanned,
                    more && d->filter && d->scanned >= DAPI_SCAN_MAX ? "true" : "false");
    dreply_json(d->req, 200, b);
    dq_free(d);
}

static void peek_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    resp_val *v = dq_reply(d, parts, nparts);
    if (!v)
        return;
    bool stopped = false;
    for (size_t i = 0; i < v->n; i++) {
        const resp_val *job = v->elem[i], *id = field(job, "id");
        if (!d->groups && d->found == d->want) {
            stopped = true; /* more jobs follow the last one returned */
            break;
        }
        d->scanned++;
        if (id && id->str)
            snprintf(d->last, sizeof d->last, "%s", id->str);
        if (d->groups) {
            group_add(d, job);
        } else if (matches(d, job)) {
            if (d->found++)
                resp_buf_append(&d->out, ",", 1);
            job_summary(&d->out, job);
        }
    }
    bool full = (int)v->n == d->asked;
    resp_val_free(v);
    bool scanning = d->groups || (d->filter && d->found < d->want);
    if (!stopped && full && scanning && d->scanned < DAPI_SCAN_MAX) {
        peek_page(d);
        return;
    }
    if (d->groups)
        finish_groups(d, full && !stopped);
    else
        finish_jobs(d, stopped || full);
}

static void peek_page(struct dq *d)
{
    char count[16];
    d->asked = d->groups || d->filter ? DAPI_PAGE : d->want;
    snprintf(count, sizeof count, "%d", d->asked);
    const char *state = job_state_name(d->state);
    const char *argv[] = { "queue.peek", d->queue, "STATE", state, "COUNT", count, "AFTER", d->last };
    size_t len[] = { 10, d->qlen, 5, strlen(state), 5, strlen(count), 5, strlen(d->last) };
    dq_call(d, queue_shard(d), "queue.peek", d->last[0] ? 8 : 6, argv, len, peek_done);
}

/* Common arguments of the job list and the groups. */
static struct dq *jobs_request(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct dq *d = dq_new(srv, req);
    d->want = 25;
    if (!take_queue(d, q) || !take_state(d, evhttp_find_header(q, "state")))
        goto fail;
    const char *count = evhttp_find_header(q, "count"), *after = evhttp_find_header(q, "after");
    long long n;
    if (count && (resp_parse_ll(count, strlen(count), &n) < 0 || n < 1 || n > 100)) {
        dreply_error(req, 400, "count '%.32s' must be a whole number from 1 to 100", count);
        goto fail;
    }
    if (count)
        d->want = (int)n;
    uint64_t id;
    if (after && after[0]) {
        if (!take_id(req, after, &id))
            goto fail;
        job_id_format(id, d->last);
    }
    return d;
fail:
    dq_free(d);
    return NULL;
}

void dapi_jobs(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct dq *d = jobs_request(srv, req, q);
    if (!d)
        return;
    const char *filter = evhttp_find_header(q, "error");
    if (filter && filter[0]) {
        if (strlen(filter) > 256) {
            dreply_error(req, 400, "the error filter is longer than 256 bytes");
            dq_free(d);
            return;
        }
        d->filter = xmalloc(strlen(filter) + 1);
        strcpy(d->filter, filter);
    }
    resp_buf_append(&d->out, "{\"queue\":", 9);
    text_json_str(&d->out, d->queue, d->qlen);
    resp_buf_printf(&d->out, ",\"state\":\"%s\",\"jobs\":[", job_state_name(d->state));
    peek_page(d);
}

void dapi_dead_groups(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct dq *d = jobs_request(srv, req, q);
    if (!d)
        return;
    d->state = JOB_DEAD;
    d->groups = true;
    peek_page(d);
}

static void job_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    resp_val *v = dq_reply(d, parts, nparts);
    if (!v)
        return;
    if (v->type == RESP_T_NULL) {
        dreply_error(d->req, 404, "no job %s (it never existed, or it finished and was removed)", d->last);
    } else {
        const resp_val *q = field(v, "queue");
        resp_buf_append(&d->out, "{\"job\":", 7);
        djson_resp(&d->out, v);
        resp_buf_append(&d->out, ",\"can\":", 7);
        dapi_can_json(&d->out, &d->who, DAPI_JOB, q && q->str ? q->str : "", q && q->str ? q->len : 0);
        resp_buf_append(&d->out, "}\n", 2);
        dreply_json(d->req, 200, &d->out);
    }
    resp_val_free(v);
    dq_free(d);
}

void dapi_job(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q, const struct dash_who *who)
{
    uint64_t id;
    if (!take_id(req, evhttp_find_header(q, "id"), &id))
        return;
    struct dq *d = dq_new(srv, req);
    d->who = *who;
    job_id_format(id, d->last);
    if (job_id_shard(id) >= srv->nshards) {
        dreply_error(req, 404, "no job %s: its id names shard %d, and this server has %d", d->last, job_id_shard(id),
                     srv->nshards);
        dq_free(d);
        return;
    }
    const char *argv[] = { "job.get", d->last };
    dq_call(d, job_id_shard(id), "job.get", 2, argv, NULL, job_done);
}

/* ------------------------------------------------------------- actions */

struct action {
    const char *name;     /* /api/actions/<name> */
    const char *command;  /* what runs on the shard */
    enum dapi_target target;
    const char *verb;     /* for the log */
};

static const struct action actions[] = {
    { "job-retry", "job.retry", DAPI_JOB, "retried job" },
    { "job-delete", "job.del", DAPI_JOB, "deleted job" },
    { "queue-pause", "queue.pause", DAPI_QUEUE, "paused queue" },
    { "queue-resume", "queue.resume", DAPI_QUEUE, "resumed queue" },
    { "queue-purge", "queue.purge", DAPI_QUEUE, "purged queue" },
    { "queue-retry-dead", "queue.retry", DAPI_QUEUE, "retried every dead job of queue" },
    { "queue-config", "queue.config", DAPI_QUEUE, "changed the settings of queue" },
    { "sched-pause", "sched.pause", DAPI_SCHED, "paused schedule" },
    { "sched-resume", "sched.resume", DAPI_SCHED, "resumed schedule" },
};
#define NACTIONS (sizeof actions / sizeof actions[0])

/* The reply of an action: the one part that says something (a schedule
 * command goes to every shard, and only the shard that has it answers). */
static const resp_buf *action_part(const resp_buf *parts, int nparts)
{
    for (int k = 0; k < nparts; k++)
        if (parts[k].len)
            return &parts[k];
    return NULL;
}

static void action_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    if (nparts == 0) { /* cancelled at shutdown */
        dq_free(d);
        return;
    }
    const resp_buf *part = action_part(parts, nparts);
    resp_val *v = part ? admin_rpc_parse(part) : NULL;
    const char *outcome = !v ? "unreadable reply" : v->type == RESP_T_ERROR ? v->str : "ok";
    if (!part) {
        outcome = "no such schedule";
        dreply_error(d->req, 404, "no schedule %s (the Schedules page lists them)", d->target);
    } else if (v && v->type == RESP_T_INT && v->integer == 0 && !strcmp(d->act->command, "job.del")) {
        outcome = "no such job";
        dreply_error(d->req, 404, "no job %s (it never existed, or it finished and was removed)", d->target);
    } else if (v && v->type != RESP_T_ERROR) {
        resp_buf_append(&d->out, "{\"ok\":true,\"result\":", 20);
        djson_resp(&d->out, v);
        resp_buf_append(&d->out, "}\n", 2);
        dreply_json(d->req, 200, &d->out);
    } else {
        dreply_error(d->req, v ? 409 : 500, "%s", outcome);
    }
    log_info("dashboard: user '%s' from %s %s %s: %s", d->who.user, d->who.peer, d->act->verb, d->target, outcome);
    resp_val_free(v);
    dq_free(d);
}

bool dapi_is_setting(const char *name)
{
    for (size_t i = 0; i < qconf_count(); i++)
        if (!strcmp(qconf_name(i), name))
            return true;
    return false;
}

/* Builds the argv of a queue action from the form (argv[0], argv[1] set
 * by the caller); returns argc, or -1 after answering 400. */
static int queue_args(struct dq *d, const struct evkeyvalq *form, const char **argv, size_t *len, int cap)
{
    const char *name = d->act->name;
    int argc = 2;
    if (!strcmp(name, "queue-purge")) {
        const char *confirm = evhttp_find_header(form, "confirm"), *state = evhttp_find_header(form, "state");
        if (!confirm || strcmp(confirm, d->queue) != 0) {
            dreply_error(d->req, 400, "to purge, type the queue's name ('%.128s') in confirm", d->queue);
            return -1;
        }
        if (state && state[0] && strcmp(state, "all") != 0) {
            if (!take_state(d, state))
                return -1;
            argv[argc] = "STATE", len[argc++] = 5;
            argv[argc] = job_state_name(d->state), len[argc] = strlen(argv[argc]), argc++;
        }
    } else if (!strcmp(name, "queue-retry-dead")) {
        const char *pace = evhttp_find_header(form, "rate"), *why = "0 is no pace";
        struct rate r;
        if (pace && pace[0] && (rate_parse(pace, strlen(pace), &r, &why) < 0 || !rate_set(&r))) {
            dreply_error(d->req, 400, "rate '%.32s' is not a pace N/period (10/1s, 100/1m): %s", pace, why);
            return -1;
        }
        if (pace && pace[0]) {
            argv[argc] = "RATE", len[argc++] = 4;
            argv[argc] = pace, len[argc] = strlen(pace), argc++;
        }
    } else if (!strcmp(name, "queue-config")) {
        argv[argc] = "SET", len[argc++] = 3;
        for (const struct evkeyval *kv = form->tqh_first; kv; kv = kv->next.tqe_next) {
            if (strncmp(kv->key, "set.", 4) != 0)
                continue;
            if (!dapi_is_setting(kv->key + 4) || !kv->value[0] || strlen(kv->value) > 64 || argc + 2 > cap) {
                dreply_error(d->req, 400, "setting '%.64s' = '%.64s' is not a queue setting with a value of 1 to 64 bytes",
                             kv->key + 4, kv->value);
                return -1;
            }
            argv[argc] = kv->key + 4, len[argc] = strlen(argv[argc]), argc++;
            argv[argc] = kv->value, len[argc] = strlen(argv[argc]), argc++;
        }
        if (argc == 3) {
            dreply_error(d->req, 400, "nothing to change: send set.<name>=<value> fields");
            return -1;
        }
    }
    return argc;
}

/* 0 when who may run command (on key, when not NULL); else acl_check's
 * -1 (the command) or -2 (the key). The user default may do everything. */
static int may(const struct dash_who *who, const char *command, const char *key, size_t klen)
{
    if (!strcmp(who->user, "default"))
        return 0;
    const struct command *k = commands_find(command, strlen(command));
    int which;
    return k ? acl_check(who->user, k->name, acl_categories(k->name, k->flags), key ? 1 : 0, &key, &klen, 0, NULL,
                         NULL, false, &which)
             : -1;
}

/* "+queue.pause, or one of @write @admin": what would allow command. */
static void allowing(const char *command, char *out, size_t cap)
{
    const struct command *k = commands_find(command, strlen(command));
    int cats = k ? acl_categories(k->name, k->flags) : 0;
    int n = snprintf(out, cap, "+%s", command);
    const char *sep = ", or one of ";
    for (int i = 0; acl_category_name(i) && n > 0 && (size_t)n < cap; i++) {
        if (!(cats & 1 << i))
            continue;
        n += snprintf(out + n, cap - (size_t)n, "%s@%s", sep, acl_category_name(i));
        sep = " ";
    }
}

bool dapi_permits(struct evhttp_request *req, const struct dash_who *who, const char *command, const char *key,
                  size_t klen)
{
    int rc = may(who, command, key, klen);
    if (rc == 0)
        return true;
    char msg[512], need[160];
    int kn = (int)(klen > 128 ? 128 : klen);
    if (rc == -2) {
        snprintf(msg, sizeof msg, "user '%s' may not use queue '%.*s': no key pattern of the user matches it "
                 "(add one with ACL SETUSER %s ~<pattern>; see ACL GETUSER %s)", who->user, kn, key, who->user,
                 who->user);
    } else {
        char upper[64];
        size_t i = 0;
        for (; command[i] && i + 1 < sizeof upper; i++)
            upper[i] = (char)toupper((unsigned char)command[i]);
        upper[i] = '\0';
        allowing(command, need, sizeof need);
        snprintf(msg, sizeof msg, "user '%s' lacks the permission to run %s%s%.*s%s (it needs %s; see ACL GETUSER %s)",
                 who->user, upper, key ? " on queue '" : "", key ? kn : 0, key ? key : "", key ? "'" : "", need,
                 who->user);
    }
    log_warn("dashboard: user '%s' from %s refused: %s", who->user, who->peer, msg);
    dreply_error(req, 403, "%s", msg);
    return false;
}

void dapi_can_json(resp_buf *b, const struct dash_who *who, enum dapi_target target, const char *key, size_t klen)
{
    resp_buf_append(b, "{", 1);
    int n = 0;
    for (size_t i = 0; i < NACTIONS; i++) {
        if (target != DAPI_ANY && actions[i].target != target)
            continue;
        djson_key(b, actions[i].name, n++ == 0);
        resp_buf_printf(b, "%s", may(who, actions[i].command, key, klen) == 0 ? "true" : "false");
    }
    resp_buf_append(b, "}", 1);
}

static void run_job_action(struct dq *d)
{
    const char *argv[] = { d->act->command, d->last };
    size_t len[] = { strlen(d->act->command), JOB_ID_HEX };
    dq_call(d, job_id_shard(d->id), d->act->command, 2, argv, len, action_done);
}

/* A named user's job action: the job's queue decides (its key patterns). */
static void job_owner_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    struct dq *d = arg;
    resp_val *v = dq_reply(d, parts, nparts);
    if (!v)
        return;
    const resp_val *q = v->type == RESP_T_MAP ? field(v, "queue") : NULL;
    if (!q || !q->str) {
        dreply_error(d->req, 404, "no job %s (it never existed, or it finished and was removed)", d->last);
        dq_free(d);
    } else if (!dapi_permits(d->req, &d->who, d->act->command, q->str, q->len)) {
        dq_free(d);
    } else {
        run_job_action(d);
    }
    resp_val_free(v);
}

static void job_action(struct server *srv, struct dq *d, const struct evkeyvalq *form)
{
    uint64_t id;
    if (!take_id(d->req, evhttp_find_header(form, "id"), &id) ||
        !dapi_permits(d->req, &d->who, d->act->command, NULL, 0)) {
        dq_free(d);
        return;
    }
    d->id = id;
    job_id_format(id, d->last);
    snprintf(d->target, sizeof d->target, "%s", d->last);
    if (job_id_shard(id) >= srv->nshards) {
        dreply_error(d->req, 404, "no job %s: its id names shard %d, and this server has %d", d->last,
                     job_id_shard(id), srv->nshards);
        dq_free(d);
    } else if (strcmp(d->who.user, "default") != 0) {
        const char *argv[] = { "job.get", d->last };
        dq_call(d, job_id_shard(id), "job.get", 2, argv, NULL, job_owner_done);
    } else {
        run_job_action(d);
    }
}

static void sched_action(struct server *srv, struct dq *d, const struct evkeyvalq *form)
{
    const char *name = evhttp_find_header(form, "name");
    if (!name || !name[0] || strlen(name) > 200) {
        dreply_error(d->req, 400, "give the schedule as name=NAME (1 to 200 bytes)");
        dq_free(d);
        return;
    }
    if (!dapi_permits(d->req, &d->who, d->act->command, NULL, 0)) {
        dq_free(d);
        return;
    }
    snprintf(d->target, sizeof d->target, "'%.90s'", name);
    const char *argv[] = { d->act->command, name };
    if (admin_rpc_all(srv, cmd(d->act->command), 2, argv, NULL, action_done, d) < 0) {
        dreply_error(d->req, 503, "spoold is busy with %d dashboard requests; try again in a moment",
                     ADMIN_RPC_MAX_PENDING);
        dq_free(d);
    }
}

void dapi_action(struct server *srv, struct evhttp_request *req, const char *name, const struct evkeyvalq *form,
                 const struct dash_who *who)
{
    const struct action *a = NULL;
    for (size_t i = 0; i < NACTIONS; i++)
        if (!strcmp(actions[i].name, name))
            a = &actions[i];
    if (!a) {
        dreply_error(req, 404, "no action '%.64s' (actions: job-retry, job-delete, queue-pause, queue-resume, "
                     "queue-purge, queue-retry-dead, queue-config, sched-pause, sched-resume)", name);
        return;
    }
    struct dq *d = dq_new(srv, req);
    d->act = a;
    d->who = *who;
    if (a->target == DAPI_JOB) {
        job_action(srv, d, form);
        return;
    }
    if (a->target == DAPI_SCHED) {
        sched_action(srv, d, form);
        return;
    }
    if (!take_queue(d, form) || !dapi_permits(req, who, a->command, d->queue, d->qlen)) {
        dq_free(d);
        return;
    }
    snprintf(d->target, sizeof d->target, "'%.90s'", d->queue);
    const char *argv[64];
    size_t len[64];
    argv[0] = a->command, len[0] = strlen(a->command);
    argv[1] = d->queue, len[1] = d->qlen;
    int argc = queue_args(d, form, argv, len, 64);
    if (argc < 0) {
        dq_free(d);
        return;
    }
    dq_call(d, queue_shard(d), a->command, argc, argv, len, action_done);
}
