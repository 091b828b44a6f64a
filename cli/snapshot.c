/*
 * snapshot.c - see snapshot.h. A queue that appears between two snapshots
 * has no rate yet; a counter that went backwards (spoold restarted) gives
 * no rate either, rather than a negative one.
 */
#include "snapshot.h"

#include "fmt.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int snap_take(cli_ctx *x, snap *s)
{
    memset(s, 0, sizeof *s);
    char **names = NULL;
    int n = spool_queue_list(x->c, &names);
    if (n < 0)
        return cli_sdk_fail(x, n, "listing queues");
    s->q = calloc((size_t)n + 1, sizeof *s->q);
    if (!s->q) {
        spool_strv_free(names);
        return cli_fail(CLI_REFUSED, "out of memory");
    }
    s->mono_ms = (long long)fmt_mono_ms();
    for (int i = 0; i < n; i++) {
        int rc = spool_queue_stats_get(x->c, names[i], &s->q[i].st);
        if (rc < 0) {
            for (int j = i; j < n; j++)
                free(names[j]);
            free(names);
            snap_free(s);
            return cli_sdk_fail(x, rc, "reading queue stats");
        }
        s->q[i].name = names[i];
        names[i] = NULL; /* taken */
        s->n++;
    }
    free(names); /* the vector only: its strings were taken */
    return CLI_OK;
}

void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->q[i].name);
    free(s->q);
    memset(s, 0, sizeof *s);
}

/* ================================================================ rates */

static const spool_queue_stats *find(const snap *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->q[i].name, name))
            return &s->q[i].st;
    return NULL;
}

/* Per second between prev and cur, or -1 when unknown. */
static double rate(long long now, long long before, long long dt_ms)
{
    if (dt_ms <= 0 || now < before)
        return -1;
    return (double)(now - before) * 1000.0 / (double)dt_ms;
}

static void rates(const snap *cur, const snap *prev, size_t i, double *push, double *ack)
{
    const spool_queue_stats *p = find(prev, cur->q[i].name);
    long long dt = prev ? cur->mono_ms - prev->mono_ms : 0;
    *push = p ? rate(cur->q[i].st.pushed, p->pushed, dt) : -1;
    *ack = p ? rate(cur->q[i].st.acked, p->acked, dt) : -1;
}

/* ================================================================= JSON */

cJSON *snap_stats_json(const char *name, const spool_queue_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    const struct { const char *k; long long v; } f[] = {
        { "ready", st->ready },     { "reserved", st->reserved }, { "delayed", st->delayed },
        { "done", st->done },       { "dead", st->dead },         { "pushed", st->pushed },
        { "acked", st->acked },     { "retried", st->retried },   { "expired", st->expired },
        { "buried", st->buried },   { "oldest_ready_age_ms", st->oldest_ready_age_ms },
        { "waiters", st->waiters }, { "lease_expired", st->lease_expired },
        { "expired_total", st->expired_total }, { "popped", st->popped }, { "throttled", st->throttled },
        { "groups", st->groups },   { "rate_limit", st->rate_limit }, { "rate_period_ms", st->rate_period_ms },
        { "concurrency_limit", st->concurrency_limit },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cJSON_AddNumberToObject(o, f[i].k, (double)f[i].v);
    cJSON_AddBoolToObject(o, "paused", st->paused);
    return o;
}

static void add_rate(cJSON *o, const char *k, double r)
{
    if (r < 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, (double)(long long)(r * 100 + 0.5) / 100);
}

cJSON *snap_json(const snap *cur, const snap *prev)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "queues");
    for (size_t i = 0; i < cur->n; i++) {
        cJSON *o = snap_stats_json(cur->q[i].name, &cur->q[i].st);
        double push, ack;
        rates(cur, prev, i, &push, &ack);
        add_rate(o, "push_rate", push);
        add_rate(o, "ack_rate", ack);
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

/* ================================================================ table */

char *snap_limits(char *buf, size_t cap, const spool_queue_stats *st)
{
    size_t n = 0;
    buf[0] = '\0';
    if (st->rate_limit > 0) {
        long long ms = st->rate_period_ms;
        if (ms % 3600000 == 0)
            n += (size_t)snprintf(buf, cap, "rate %lld/%lldh", st->rate_limit, ms / 3600000);
        else if (ms % 60000 == 0)
            n += (size_t)snprintf(buf, cap, "rate %lld/%lldm", st->rate_limit, ms / 60000);
        else if (ms % 1000 == 0)
            n += (size_t)snprintf(buf, cap, "rate %lld/%llds", st->rate_limit, ms / 1000);
        else
            n += (size_t)snprintf(buf, cap, "rate %lld/%lldms", st->rate_limit, ms);
    }
    if (st->concurrency_limit > 0 && n < cap)
        snprintf(buf + n, cap - n, "%sconc %lld", n ? " " : "", st->concurrency_limit);
    if (!buf[0])
        snprintf(buf, cap, "-");
    return buf;
}

static void add_row(table *t, const snap *cur, const snap *prev, size_t i)
{
    const spool_queue_stats *st = &cur->q[i].st;
    char num[5][24], pr[16], ar[16], age[FMT_BUF];
    long long v[5] = { st->ready, st->reserved, st->delayed, st->dead, st->done };
    for (int k = 0; k < 5; k++)
        snprintf(num[k], sizeof num[k], "%lld", v[k]);
    double push, ack;
    rates(cur, prev, i, &push, &ack);
    fmt_rate(pr, sizeof pr, push);
    fmt_rate(ar, sizeof ar, ack);
    if (st->ready > 0)
        fmt_duration(age, sizeof age, st->oldest_ready_age_ms);
    else
        snprintf(age, sizeof age, "-");
    char limits[64], held[24];
    snap_limits(limits, sizeof limits, st);
    snprintf(held, sizeof held, "%lld", st->throttled);
    const char *row[] = { cur->q[i].name, num[0], num[1], num[2], num[3], num[4], pr, ar, age,
                          limits, held, st->paused ? "paused" : "" };
    table_add(t, row);
    if (st->throttled > 0)
        table_color_last(t, 10, FMT_YELLOW);
    if (st->dead > 0)
        table_color_last(t, 4, FMT_RED);
    if (st->paused)
        table_color_last(t, 11, FMT_YELLOW);
}

void snap_print(const snap *cur, const snap *prev, FILE *f)
{
    if (cur->n == 0) {
        fprintf(f, "no queues (push a job first: spool push QUEUE '{}')\n");
        return;
    }
    char spec[] = "QUEUE,>READY,>RESERVED,>DELAYED,>DEAD,>DONE,>PUSH/S,>ACK/S,>OLDEST,LIMITS,>THROTTLED,PAUSED";
    table t;
    table_init(&t, spec);
    for (size_t i = 0; i < cur->n; i++)
        add_row(&t, cur, prev, i);
    table_print(&t, f);
}
