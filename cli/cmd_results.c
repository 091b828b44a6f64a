/*
 * cmd_results.c - `spool schedules`, `spool batch ID` and `spool wait ID`:
 * durable schedules with their next runs, a batch's counts and callbacks,
 * and waiting for a job's final state and result.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fmt.h"
#include "table.h"

/* ============================================================ schedules */

static cJSON *sched_json(const spool_schedule *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "queue", s->queue);
    cJSON_AddStringToObject(o, "spec", s->spec);
    cJSON_AddStringToObject(o, "tz", s->tz);
    cJSON_AddStringToObject(o, "payload", s->payload);
    cJSON_AddStringToObject(o, "catchup", s->catchup);
    cJSON_AddBoolToObject(o, "unique", s->unique);
    cJSON_AddBoolToObject(o, "paused", s->paused);
    const struct { const char *k; long long v; } f[] = {
        { "priority", s->priority }, { "retries", s->retries }, { "next_at", s->next_at },
        { "last_tick", s->last_tick }, { "runs", s->runs }, { "skipped", s->skipped },
        { "created_at", s->created_at },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cJSON_AddNumberToObject(o, f[i].k, (double)f[i].v);
    if (s->last_job)
        cJSON_AddStringToObject(o, "last_job", s->last_job);
    else
        cJSON_AddNullToObject(o, "last_job");
    return o;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(spool_schedule *const *)a)->name, (*(spool_schedule *const *)b)->name);
}

int cmd_schedules(cli_ctx *x)
{
    const char *queue = x->a->npos ? x->a->pos[0] : NULL;
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_schedule **v = NULL;
    int n = spool_sched_list(x->c, queue, &v);
    if (n < 0)
        return cli_sdk_fail(x, n, "listing schedules");
    qsort(v, (size_t)n, sizeof *v, by_name);
    if (x->json) {
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, sched_json(v[i]));
        fmt_json_print(arr);
    } else if (n == 0) {
        printf("no schedules%s%s (SCHED.SET name queue spec payload creates one)\n", queue ? " for queue " : "",
               queue ? queue : "");
    } else {
        char spec[] = "NAME,QUEUE,SPEC,TZ,NEXT RUN,LAST TICK,>RUNS,>SKIPPED,CATCHUP";
        table t;
        table_init(&t, spec);
        long long now = fmt_now_ms();
        for (int i = 0; i < n; i++) {
            char next[FMT_BUF], last[FMT_BUF], runs[32], skipped[32];
            snprintf(runs, sizeof runs, "%lld", v[i]->runs);
            snprintf(skipped, sizeof skipped, "%lld", v[i]->skipped);
            const char *cells[] = { v[i]->name, v[i]->queue, v[i]->spec, v[i]->tz,
                                    v[i]->paused ? "paused" : fmt_when(next, sizeof next, v[i]->next_at, now),
                                    v[i]->last_tick ? fmt_when(last, sizeof last, v[i]->last_tick, now) : "-",
                                    runs, skipped, v[i]->catchup };
            table_add(&t, cells);
            if (v[i]->paused)
                table_color_last(&t, 4, FMT_YELLOW);
        }
        table_print(&t, stdout);
    }
    spool_schedules_free(v, (size_t)n);
    return CLI_OK;
}

/* ================================================================ batch */

int cmd_batch(cli_ctx *x)
{
    const char *id = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_batch_info b;
    int r = spool_batch_get(x->c, id, &b);
    if (r < 0)
        return cli_sdk_fail(x, r, "reading the batch");
    if (r == 0)
        return cli_fail(CLI_REFUSED, "no batch %s (finished batches are kept for an hour)", id);
    if (x->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "state", b.state);
        const struct { const char *k; long long v; } f[] = {
            { "total", b.total }, { "done", b.done }, { "dead", b.dead }, { "unfinished", b.unfinished },
            { "pending", b.pending }, { "created_at", b.created_at }, { "updated_at", b.updated_at },
        };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            cJSON_AddNumberToObject(o, f[i].k, (double)f[i].v);
        cJSON *fired = cJSON_AddArrayToObject(o, "fired");
        if (b.fired_success)
            cJSON_AddItemToArray(fired, cJSON_CreateString("success"));
        if (b.fired_complete)
            cJSON_AddItemToArray(fired, cJSON_CreateString("complete"));
        if (b.fired_death)
            cJSON_AddItemToArray(fired, cJSON_CreateString("death"));
        fmt_json_print(o);
        return CLI_OK;
    }
    long long now = fmt_now_ms();
    char w[FMT_BUF];
    printf("%sbatch %s%s\n", fmt_c(FMT_BOLD), id, fmt_c(FMT_RESET));
    printf("  %-12s %s\n", "state", b.state);
    printf("  %-12s %lld (%lld done, %lld dead, %lld unfinished%s)\n", "jobs", b.total, b.done, b.dead,
           b.unfinished, b.pending ? ", more being added" : "");
    printf("  %-12s %s%s%s%s\n", "callbacks", b.fired_success ? "success " : "", b.fired_complete ? "complete " : "",
           b.fired_death ? "death " : "", b.fired_success || b.fired_complete || b.fired_death ? "pushed" : "none pushed yet");
    printf("  %-12s %s\n", "created", fmt_when(w, sizeof w, b.created_at, now));
    printf("  %-12s %s\n", "updated", fmt_when(w, sizeof w, b.updated_at, now));
    return CLI_OK;
}

/* ================================================================= wait */

int cmd_wait(cli_ctx *x)
{
    const char *id = x->a->pos[0];
    const char *t = args_get(x->a, "timeout");
    int64_t ms = 0;
    if (t && (args_duration_ms(t, &ms) < 0 || ms > 86400000LL * 365))
        return cli_fail(CLI_USAGE, "--timeout takes a duration (30s, 5m, 250ms), not '%s'", t);
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_job *j = NULL;
    int r = spool_job_wait(x->c, id, (int)ms, &j);
    if (r == SPOOL_ENOJOB)
        return cli_fail(CLI_REFUSED, "no job %s: %s", id, spool_errmsg(x->c));
    if (r < 0)
        return cli_sdk_fail(x, r, "waiting for the job");
    if (r == 0)
        return cli_fail(CLI_REFUSED, "job %s did not finish within %s", id, t);
    if (x->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "state", j->state ? j->state : "");
        cJSON *res = j->result ? cJSON_Parse(j->result) : NULL;
        if (res)
            cJSON_AddItemToObject(o, "result", res);
        else if (j->result)
            cJSON_AddStringToObject(o, "result", j->result);
        else
            cJSON_AddNullToObject(o, "result");
        if (j->last_error)
            cJSON_AddStringToObject(o, "last_error", j->last_error);
        fmt_json_print(o);
    } else {
        printf("%s %s%s%s", j->id, fmt_c(fmt_state_color(j->state)), j->state, fmt_c(FMT_RESET));
        if (j->result)
            printf(" result %s", j->result);
        if (j->last_error)
            printf(" last error %s", j->last_error);
        putchar('\n');
    }
    bool dead = j->state && strcmp(j->state, "dead") == 0;
    spool_job_free(j);
    return dead ? CLI_REFUSED : CLI_OK;
}
