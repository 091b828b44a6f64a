/*
 * admin.c - the inspection and repair calls the `spool` CLI is built on:
 * QUEUE.LIST / STATS / PEEK / PAUSE / RESUME / PURGE / RETRY / CONFIG and
 * JOB.GET / RETRY / DEL.
 *
 * Each call is one round trip; results are copied out of the reply into
 * caller-owned values (structs, job arrays, NULL-terminated string vectors)
 * so the caller never sees the wire representation.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================== helpers */

/* A call whose reply must be +OK. */
static int call_ok(spool_client *c, int argc, const char *const *argv)
{
    resp_val *r = NULL;
    int rc = sdk_client_call(c, argc, argv, NULL, 0, &r);
    if (rc == 0 && !(r->type == RESP_T_SIMPLE && !strcmp(r->str, "OK")))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "%s replied with something other than OK", argv[0]);
    resp_val_free(r);
    return rc;
}

/* A call whose reply is an integer: the integer (>= 0) or a code. */
static long long call_int(spool_client *c, int argc, const char *const *argv)
{
    resp_val *r = NULL;
    int rc = sdk_client_call(c, argc, argv, NULL, 0, &r);
    long long v = 0;
    if (rc == 0 && sdk_val_to_ll(r, &v) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "%s replied with a non-integer", argv[0]);
    resp_val_free(r);
    return rc < 0 ? rc : v;
}

void spool_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* Copies the n string values of arr into a NULL-terminated vector. */
static int strv_from(spool_client *c, resp_val *const *vals, size_t n, char ***out)
{
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        bool err = false;
        v[i] = sdk_val_strdup(vals[i], &err);
        if (!v[i] && !err)
            v[i] = strdup(""); /* a nil value, e.g. an unset setting */
        if (!v[i]) {
            spool_strv_free(v);
            return sdk_client_fail(c, SPOOL_EPROTO, "reply element %zu is not a string", i);
        }
    }
    *out = v;
    return (int)n;
}

static bool is_list(const resp_val *r)
{
    return r->type == RESP_T_ARRAY || r->type == RESP_T_SET;
}

/* ================================================================ queues */

int spool_queue_list(spool_client *c, char ***names)
{
    const char *argv[] = { "QUEUE.LIST" };
    resp_val *r = NULL;
    *names = NULL;
    int rc = sdk_client_call(c, 1, argv, NULL, 0, &r);
    if (rc == 0 && !is_list(r))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.LIST replied with a non-array");
    if (rc == 0)
        rc = strv_from(c, r->elem, r->n, names);
    resp_val_free(r);
    return rc;
}

int spool_queue_stats_get(spool_client *c, const char *queue, spool_queue_stats *out)
{
    static const struct { const char *name; size_t off; } fields[] = {
#define F(x) { #x, offsetof(spool_queue_stats, x) }
        F(ready), F(reserved), F(delayed), F(done), F(dead), F(pushed), F(acked),
        F(retried), F(expired), F(buried), F(oldest_ready_age_ms), F(waiters),
        F(lease_expired), F(expired_total), F(popped), F(throttled), F(groups),
        F(rate_limit), F(rate_period_ms), F(concurrency_limit),
#undef F
    };
    const char *argv[] = { "QUEUE.STATS", queue };
    resp_val *r = NULL;
    memset(out, 0, sizeof *out);
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "stats: no queue");
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const resp_val *f = resp_val_get(r, fields[i].name);
        if (f && sdk_val_to_ll(f, (long long *)((char *)out + fields[i].off)) != 0)
            rc = sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.STATS field %s is not a number", fields[i].name);
    }
    long long paused = 0;
    if (sdk_val_to_ll(resp_val_get(r, "paused"), &paused) == 0)
        out->paused = paused != 0;
    if (r->type != RESP_T_MAP && r->type != RESP_T_ARRAY)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.STATS replied with neither a map nor an array");
    resp_val_free(r);
    return rc;
}

int spool_queue_peek(spool_client *c, const char *queue, const char *state, int count,
                     const char *after, spool_job ***jobs)
{
    spool_peek_opts o = { state, count, after, NULL };
    return spool_queue_peek_opts(c, queue, &o, jobs);
}

int spool_queue_peek_opts(spool_client *c, const char *queue, const spool_peek_opts *opts,
                          spool_job ***jobs)
{
    spool_peek_opts none = { 0 };
    const spool_peek_opts *o = opts ? opts : &none;
    const char *state = o->state, *after = o->after;
    int count = o->count;
    *jobs = NULL;
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "peek: no queue");
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "QUEUE.PEEK");
    sdk_av_add(&a, queue);
    sdk_av_opt(&a, state, "STATE", state);
    sdk_av_optll(&a, count > 0, "COUNT", count);
    sdk_av_opt(&a, after, "AFTER", after);
    sdk_av_opt(&a, o->error, "ERROR", o->error);
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc < 0)
        return rc;
    if (!is_list(r)) {
        resp_val_free(r);
        return sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.PEEK replied with a non-array");
    }
    spool_job **v = calloc(r->n + 1, sizeof *v);
    if (!v) {
        resp_val_free(r);
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n; i++) {
        if (!(v[i] = sdk_job_from_val(r->elem[i]))) {
            spool_jobs_free(v, i);
            resp_val_free(r);
            return sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.PEEK returned a malformed job (#%zu)", i);
        }
    }
    rc = (int)r->n;
    resp_val_free(r);
    *jobs = v;
    return rc;
}

int spool_queue_pause(spool_client *c, const char *queue)
{
    const char *argv[] = { "QUEUE.PAUSE", queue };
    return queue ? call_ok(c, 2, argv) : sdk_client_fail(c, SPOOL_EINVAL, "pause: no queue");
}

int spool_queue_resume(spool_client *c, const char *queue)
{
    const char *argv[] = { "QUEUE.RESUME", queue };
    return queue ? call_ok(c, 2, argv) : sdk_client_fail(c, SPOOL_EINVAL, "resume: no queue");
}

long long spool_queue_purge(spool_client *c, const char *queue, const char *state)
{
    const char *argv[] = { "QUEUE.PURGE", queue, "STATE", state };
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "purge: no queue");
    return call_int(c, state ? 4 : 2, argv);
}

long long spool_queue_retry(spool_client *c, const char *queue)
{
    const char *argv[] = { "QUEUE.RETRY", queue };
    return queue ? call_int(c, 2, argv) : sdk_client_fail(c, SPOOL_EINVAL, "retry: no queue");
}

long long spool_queue_retry_opts(spool_client *c, const char *queue, const spool_retry_opts *opts)
{
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "retry: no queue");
    const char *argv[8] = { "QUEUE.RETRY", queue };
    int n = 2;
    if (opts && opts->error)
        argv[n++] = "ERROR", argv[n++] = opts->error;
    if (opts && opts->rate)
        argv[n++] = "RATE", argv[n++] = opts->rate;
    if (opts && opts->to)
        argv[n++] = "TO", argv[n++] = opts->to;
    return call_int(c, n, argv);
}

/* ================================================================ flow */

/* The reply of a QUEUE.GROUPS/WORKERS call, checked to be an array. */
static int call_list(spool_client *c, const char *cmd, const char *queue, resp_val **r)
{
    const char *argv[] = { cmd, queue };
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "%s: no queue", cmd);
    int rc = sdk_client_call(c, 2, argv, NULL, 0, r);
    if (rc == 0 && !is_list(*r)) {
        resp_val_free(*r);
        *r = NULL;
        rc = sdk_client_fail(c, SPOOL_EPROTO, "%s replied with a non-array", cmd);
    }
    return rc;
}

static long long ll_of(const resp_val *v, const char *key)
{
    long long n = 0;
    sdk_val_to_ll(resp_val_get(v, key), &n);
    return n;
}

static char *str_of(const resp_val *v, const char *key)
{
    bool err = false;
    char *s = sdk_val_strdup(resp_val_get(v, key), &err);
    return s ? s : strdup("");
}

void spool_queue_groups_free(spool_group_info *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].group);
    free(v);
}

int spool_queue_groups(spool_client *c, const char *queue, spool_group_info **out)
{
    resp_val *r = NULL;
    *out = NULL;
    int rc = call_list(c, "QUEUE.GROUPS", queue, &r);
    if (rc < 0)
        return rc;
    spool_group_info *v = calloc(r->n + 1, sizeof *v);
    if (!v) {
        resp_val_free(r);
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n; i++) {
        v[i].group = str_of(r->elem[i], "group");
        v[i].ready = ll_of(r->elem[i], "ready");
        v[i].reserved = ll_of(r->elem[i], "reserved");
        v[i].delivered = ll_of(r->elem[i], "delivered");
    }
    rc = (int)r->n;
    resp_val_free(r);
    *out = v;
    return rc;
}

void spool_queue_workers_free(spool_queue_worker *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].addr);
        free(v[i].jobs);
    }
    free(v);
}

int spool_queue_workers(spool_client *c, const char *queue, spool_queue_worker **out)
{
    resp_val *r = NULL;
    *out = NULL;
    int rc = call_list(c, "QUEUE.WORKERS", queue, &r);
    if (rc < 0)
        return rc;
    spool_queue_worker *v = calloc(r->n + 1, sizeof *v);
    if (!v) {
        resp_val_free(r);
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n; i++) {
        const resp_val *e = r->elem[i];
        v[i].name = str_of(e, "name");
        v[i].addr = str_of(e, "addr");
        v[i].id = ll_of(e, "id");
        v[i].waiting = ll_of(e, "waiting") != 0;
        v[i].last_active = ll_of(e, "last_active");
        const resp_val *jobs = resp_val_get(e, "jobs");
        size_t nj = jobs && jobs->type == RESP_T_ARRAY ? jobs->n : 0;
        v[i].jobs = calloc(nj + 1, sizeof *v[i].jobs);
        for (size_t k = 0; v[i].jobs && k < nj; k++) {
            char *id = str_of(jobs->elem[k], "id");
            snprintf(v[i].jobs[k].id, sizeof v[i].jobs[k].id, "%s", id ? id : "");
            free(id);
            v[i].jobs[k].lease_until = ll_of(jobs->elem[k], "lease_until");
            v[i].jobs[k].attempt = ll_of(jobs->elem[k], "attempt");
            v[i].njobs++;
        }
    }
    rc = (int)r->n;
    resp_val_free(r);
    *out = v;
    return rc;
}

/* ================================================================ config */

int spool_queue_config_get(spool_client *c, const char *queue, const char *name, char ***pairs)
{
    const char *argv[] = { "QUEUE.CONFIG", queue, "GET", name };
    *pairs = NULL;
    if (!queue)
        return sdk_client_fail(c, SPOOL_EINVAL, "config: no queue");
    resp_val *r = NULL;
    int rc = sdk_client_call(c, name ? 4 : 3, argv, NULL, 0, &r);
    if (rc < 0)
        return rc;
    if (name && r->type != RESP_T_MAP && r->type != RESP_T_ARRAY) {
        /* one value: make it a pair */
        resp_val key = { .type = RESP_T_BULK, .str = (char *)name, .len = strlen(name) };
        resp_val *kv[2] = { &key, r };
        rc = strv_from(c, kv, 2, pairs);
    } else if (r->type == RESP_T_MAP || (r->type == RESP_T_ARRAY && r->n % 2 == 0)) {
        rc = strv_from(c, r->elem, r->n, pairs);
    } else {
        rc = sdk_client_fail(c, SPOOL_EPROTO, "QUEUE.CONFIG GET replied with neither a map nor a value");
    }
    resp_val_free(r);
    return rc < 0 ? rc : rc / 2;
}

int spool_queue_config_set(spool_client *c, const char *queue, const char *const *pairs,
                           size_t npairs)
{
    if (!queue || npairs == 0 || npairs > (SPOOL_MAX_ARGS - 3) / 2)
        return sdk_client_fail(c, SPOOL_EINVAL, "config set: no queue, or no or too many settings");
    const char *argv[SPOOL_MAX_ARGS];
    argv[0] = "QUEUE.CONFIG";
    argv[1] = queue;
    argv[2] = "SET";
    for (size_t i = 0; i < 2 * npairs; i++)
        argv[3 + i] = pairs[i];
    return call_ok(c, 3 + 2 * (int)npairs, argv);
}

/* ================================================================== jobs */

int spool_job_get(spool_client *c, const char *id, spool_job **job)
{
    *job = NULL;
    if (!id)
        return sdk_client_fail(c, SPOOL_EINVAL, "get: no id");
    const char *argv[] = { "JOB.GET", id };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc == 0 && sdk_val_is_nil(r))
        rc = sdk_client_fail(c, SPOOL_ENOJOB, "no job %s", id);
    else if (rc == 0 && !(*job = sdk_job_from_val(r)))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.GET returned a malformed job");
    resp_val_free(r);
    return rc;
}

int spool_job_retry(spool_client *c, const char *id)
{
    const char *argv[] = { "JOB.RETRY", id };
    return id ? call_ok(c, 2, argv) : sdk_client_fail(c, SPOOL_EINVAL, "retry: no id");
}

long long spool_job_delete(spool_client *c, const char *const *ids, size_t n)
{
    if (n == 0 || n > 100000)
        return sdk_client_fail(c, SPOOL_EINVAL, "delete: between 1 and 100000 ids");
    const char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv)
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    argv[0] = "JOB.DEL";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = ids[i];
    long long rc = call_int(c, (int)n + 1, argv);
    free(argv);
    return rc;
}
