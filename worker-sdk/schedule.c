/*
 * schedule.c - durable schedules: SCHED.SET / GET / LIST / DEL / PAUSE /
 * RESUME, with replies copied into caller-owned spool_schedule records.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int spool_sched_set(spool_client *c, const char *name, const char *queue, const char *spec,
                    const char *payload, const spool_sched_opts *o)
{
    if (!name || !queue || !spec || !payload)
        return sdk_client_fail(c, SPOOL_EINVAL, "schedule: name, queue, spec and payload are required");
    static const spool_sched_opts none;
    if (!o)
        o = &none;
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "SCHED.SET");
    sdk_av_add(&a, name);
    sdk_av_add(&a, queue);
    sdk_av_add(&a, spec);
    sdk_av_add(&a, payload);
    sdk_av_opt(&a, o->tz, "TZ", o->tz);
    sdk_av_optll(&a, o->priority, "PRI", o->priority);
    sdk_av_optll(&a, o->retries, "RETRIES", o->retries == SPOOL_NO_RETRIES ? 0 : o->retries);
    if (o->unique)
        sdk_av_add(&a, "UNIQUE");
    sdk_av_opt(&a, o->catchup, "CATCHUP", o->catchup);
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc == 0 && !(r->type == RESP_T_SIMPLE && !strcmp(r->str, "OK")))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "SCHED.SET replied with something other than OK");
    resp_val_free(r);
    return rc;
}

void spool_schedule_free(spool_schedule *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->queue);
    free(s->spec);
    free(s->tz);
    free(s->payload);
    free(s->catchup);
    free(s->last_job);
    free(s);
}

void spool_schedules_free(spool_schedule **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        spool_schedule_free(v[i]);
    free(v);
}

static bool str_of(const resp_val *v, const char *k, char **dst)
{
    bool err = false;
    *dst = sdk_val_strdup(resp_val_get(v, k), &err);
    return !err;
}

static bool ll_of(const resp_val *v, const char *k, long long *dst)
{
    const resp_val *f = resp_val_get(v, k);
    *dst = 0;
    return !f || f->type == RESP_T_NULL || sdk_val_to_ll(f, dst) == 0;
}

static spool_schedule *sched_from(const resp_val *v)
{
    if (!v || (v->type != RESP_T_MAP && v->type != RESP_T_ARRAY))
        return NULL;
    spool_schedule *s = calloc(1, sizeof *s);
    long long uniq = 0, paused = 0;
    if (!s)
        return NULL;
    bool ok = str_of(v, "name", &s->name) && s->name && str_of(v, "queue", &s->queue) &&
              str_of(v, "spec", &s->spec) && str_of(v, "tz", &s->tz) && str_of(v, "payload", &s->payload) &&
              str_of(v, "catchup", &s->catchup) && str_of(v, "last_job", &s->last_job) &&
              ll_of(v, "priority", &s->priority) && ll_of(v, "retries", &s->retries) &&
              ll_of(v, "next_at", &s->next_at) && ll_of(v, "last_tick", &s->last_tick) &&
              ll_of(v, "runs", &s->runs) && ll_of(v, "skipped", &s->skipped) &&
              ll_of(v, "created_at", &s->created_at) && ll_of(v, "unique", &uniq) && ll_of(v, "paused", &paused);
    if (!ok) {
        spool_schedule_free(s);
        return NULL;
    }
    s->unique = uniq != 0;
    s->paused = paused != 0;
    return s;
}

int spool_sched_get(spool_client *c, const char *name, spool_schedule **out)
{
    *out = NULL;
    const char *argv[] = { "SCHED.GET", name };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc == 0 && !sdk_val_is_nil(r) && !(*out = sched_from(r)))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "SCHED.GET replied with a malformed schedule");
    resp_val_free(r);
    return rc < 0 ? rc : *out != NULL;
}

int spool_sched_list(spool_client *c, const char *queue, spool_schedule ***out)
{
    *out = NULL;
    const char *argv[] = { "SCHED.LIST", queue };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, queue ? 2 : 1, argv, NULL, 0, &r);
    if (rc == 0 && r->type != RESP_T_ARRAY)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "SCHED.LIST replied with a non-array");
    if (rc == 0) {
        spool_schedule **v = calloc(r->n + 1, sizeof *v);
        for (size_t i = 0; v && i < r->n && rc == 0; i++)
            if (!(v[i] = sched_from(r->elem[i])))
                rc = sdk_client_fail(c, SPOOL_EPROTO, "SCHED.LIST entry %zu is malformed", i);
        if (!v)
            rc = sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
        if (rc == 0) {
            *out = v;
            rc = (int)r->n;
        } else {
            spool_schedules_free(v, r->n);
        }
    }
    resp_val_free(r);
    return rc;
}

int spool_sched_del(spool_client *c, const char *name)
{
    const char *argv[] = { "SCHED.DEL", name };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    long long n = 0;
    if (rc == 0 && sdk_val_to_ll(r, &n) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "SCHED.DEL replied with a non-integer");
    resp_val_free(r);
    return rc < 0 ? rc : (int)n;
}

static int sched_word(spool_client *c, const char *cmd, const char *name)
{
    const char *argv[] = { cmd, name };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc == 0 && !(r->type == RESP_T_SIMPLE && !strcmp(r->str, "OK")))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "%s replied with something other than OK", cmd);
    resp_val_free(r);
    return rc;
}

int spool_sched_pause(spool_client *c, const char *name)
{
    return sched_word(c, "SCHED.PAUSE", name);
}

int spool_sched_resume(spool_client *c, const char *name)
{
    return sched_word(c, "SCHED.RESUME", name);
}
