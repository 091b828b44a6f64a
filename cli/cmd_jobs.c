/*
 * cmd_jobs.c - the job-level subcommands: `jobs` (list one state of a
 * queue, paging with AFTER), `show` (one record), `push`, `retry` and
 * `delete`. Jobs are shown as tables or JSON objects with the wire's
 * snake_case field names (docs/protocol.md), payload embedded as JSON when
 * it parses.
 */
#include "cli.h"
#include "fmt.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 20
#define MAX_LIMIT 100000
#define PEEK_PAGE 1000          /* QUEUE.PEEK's COUNT limit */
#define MAX_STDIN_PAYLOAD (64u << 20)

static const char *const states[] = { "ready", "reserved", "delayed", "done", "dead", "expired", NULL };

static bool valid_state(const char *s)
{
    for (int i = 0; states[i]; i++)
        if (!strcmp(states[i], s))
            return true;
    return false;
}

/* ================================================================= JSON */

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *job_json(spool_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id ? j->id : "");
    add_str_or_null(o, "queue", j->queue);
    add_str_or_null(o, "state", j->state);
    const cJSON *p = spool_job_json(j);
    if (p)
        cJSON_AddItemToObject(o, "payload", cJSON_Duplicate(p, true));
    else
        cJSON_AddStringToObject(o, "payload", j->payload ? j->payload : "");
    const struct { const char *k; long long v; } f[] = {
        { "priority", j->priority },  { "attempt", j->attempt },       { "retries", j->retries },
        { "lease_ms", j->lease_ms },  { "run_at", j->run_at },         { "lease_until", j->lease_until },
        { "created_at", j->created_at }, { "updated_at", j->updated_at },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cJSON_AddNumberToObject(o, f[i].k, (double)f[i].v);
    add_str_or_null(o, "last_error", j->last_error);
    add_str_or_null(o, "unique", j->unique);
    add_str_or_null(o, "result", j->result);
    add_str_or_null(o, "progress", j->progress);
    cJSON_AddNumberToObject(o, "expires_at", (double)j->expires_at);
    add_str_or_null(o, "group", j->group);
    add_str_or_null(o, "holder", j->holder);
    cJSON *errs = cJSON_AddArrayToObject(o, "errors");
    for (size_t i = 0; i < j->nerrors; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "attempt", (double)j->errors[i].attempt);
        cJSON_AddNumberToObject(e, "time", (double)j->errors[i].time);
        add_str_or_null(e, "worker", j->errors[i].worker);
        add_str_or_null(e, "error", j->errors[i].error);
        cJSON_AddItemToArray(errs, e);
    }
    return o;
}

/* ================================================================= jobs */

typedef struct page_req {
    const char *queue, *state, *error;
    long long limit;
    const char *after;
} page_req;

static int jobs_args(cli_ctx *x, page_req *r)
{
    r->queue = x->a->pos[0];
    r->state = args_get(x->a, "state");
    r->after = args_get(x->a, "after");
    r->error = args_get(x->a, "error");
    r->limit = DEFAULT_LIMIT;
    if (!r->state)
        r->state = r->error ? "dead" : "ready"; /* failed jobs are what --error looks for */
    if (!valid_state(r->state))
        return cli_fail(CLI_USAGE, "--state is one of ready, reserved, delayed, done, dead, expired; not '%s'",
                        r->state);
    const char *l = args_get(x->a, "limit");
    if (l && args_int(l, 1, MAX_LIMIT, &r->limit) < 0)
        return cli_fail(CLI_USAGE, "--limit takes a number from 1 to %d, not '%s'", MAX_LIMIT, l);
    return CLI_OK;
}

/* Collects up to r->limit jobs, a page of QUEUE.PEEK at a time. */
static int fetch_jobs(cli_ctx *x, const page_req *r, spool_job ***out, size_t *n)
{
    *out = calloc((size_t)r->limit, sizeof **out);
    *n = 0;
    if (!*out)
        return cli_fail(CLI_REFUSED, "out of memory");
    const char *after = r->after;
    while ((long long)*n < r->limit) {
        long long want = r->limit - (long long)*n;
        spool_job **page = NULL;
        spool_peek_opts po = { r->state, want > PEEK_PAGE ? PEEK_PAGE : (int)want, after, r->error };
        int got = spool_queue_peek_opts(x->c, r->queue, &po, &page);
        if (got < 0 && got == SPOOL_ENOJOB)
            return cli_fail(CLI_REFUSED, "%s (the --after job is no longer %s; start again without --after)",
                            spool_errmsg(x->c), r->state);
        if (got < 0)
            return cli_sdk_fail(x, got, "listing jobs");
        memcpy(*out + *n, page, (size_t)got * sizeof *page);
        free(page); /* the array only: the jobs moved to *out */
        *n += (size_t)got;
        if (got == 0 || got < (want > PEEK_PAGE ? PEEK_PAGE : want))
            break;
        after = (*out)[*n - 1]->id;
    }
    return CLI_OK;
}

/* The time that matters for a job in its state, and its column's name. */
static const struct { const char *state, *column; } when_columns[] = {
    { "ready", "READY SINCE" }, { "reserved", "LEASE ENDS" }, { "delayed", "RUNS" },
    { "done", "DONE" },         { "dead", "DIED" },   { "expired", "EXPIRED" },
};

static long long state_time(const spool_job *j)
{
    if (!j->state)
        return 0;
    if (!strcmp(j->state, "delayed"))
        return j->run_at;
    if (!strcmp(j->state, "reserved"))
        return j->lease_until;
    return j->updated_at;
}

static const char *when_column(const char *state)
{
    for (size_t i = 0; i < sizeof when_columns / sizeof when_columns[0]; i++)
        if (!strcmp(when_columns[i].state, state))
            return when_columns[i].column;
    return "WHEN";
}

static void jobs_table(const char *state, spool_job **jobs, size_t n, long long now)
{
    char spec[128];
    snprintf(spec, sizeof spec, "ID,>PRI,>ATTEMPT,CREATED,%s,LAST ERROR,PAYLOAD", when_column(state));
    table t;
    table_init(&t, spec);
    for (size_t i = 0; i < n; i++) {
        spool_job *j = jobs[i];
        char pri[24], att[48], created[FMT_BUF], when[FMT_BUF], err[256], pay[256];
        snprintf(pri, sizeof pri, "%lld", j->priority);
        snprintf(att, sizeof att, "%lld/%lld", j->attempt, j->retries + 1);
        fmt_duration(created, sizeof created, now - j->created_at);
        strcat(created, " ago");
        fmt_when(when, sizeof when, state_time(j), now);
        fmt_text(err, sizeof err, j->last_error, 40);
        fmt_preview(pay, sizeof pay, j->payload ? j->payload : "", j->payload_len, 50);
        const char *row[] = { j->id, pri, att, created, when, err, pay };
        table_add(&t, row);
        if (j->last_error)
            table_color_last(&t, 5, FMT_RED);
    }
    table_print(&t, stdout);
}

static void jobs_human(const page_req *r, spool_job **jobs, size_t n)
{
    if (n == 0) {
        printf("no %s jobs in %s%s\n", r->state, r->queue, r->after ? " after that id" : "");
        return;
    }
    printf("%s%zu %s%s job%s in %s%s\n", fmt_c(FMT_BOLD), n, fmt_c(fmt_state_color(r->state)), r->state,
           n == 1 ? "" : "s", r->queue, fmt_c(FMT_RESET));
    jobs_table(r->state, jobs, n, fmt_now_ms());
    if ((long long)n == r->limit)
        printf("more may follow: spool jobs %s --state %s --limit %lld --after %s\n", r->queue, r->state,
               r->limit, jobs[n - 1]->id);
}

static cJSON *jobs_doc(const page_req *r, spool_job **jobs, size_t n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "queue", r->queue);
    cJSON_AddStringToObject(doc, "state", r->state);
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, job_json(jobs[i]));
    add_str_or_null(doc, "next_after", (long long)n == r->limit ? jobs[n - 1]->id : NULL);
    return doc;
}

int cmd_jobs(cli_ctx *x)
{
    page_req r;
    int rc = jobs_args(x, &r);
    if (rc == CLI_OK)
        rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_job **jobs = NULL;
    size_t n = 0;
    rc = fetch_jobs(x, &r, &jobs, &n);
    if (rc == CLI_OK && x->json)
        fmt_json_print(jobs_doc(&r, jobs, n));
    else if (rc == CLI_OK)
        jobs_human(&r, jobs, n);
    spool_jobs_free(jobs, n);
    return rc;
}

/* ================================================================= show */

static void show_field(const char *name, const char *value)
{
    printf("  %-12s %s\n", name, value && *value ? value : "-");
}

/* Pretty JSON with two-space indents (cJSON indents with tabs). */
static void print_payload(spool_job *j)
{
    const cJSON *p = spool_job_json(j);
    char *s = p ? cJSON_Print(p) : NULL;
    printf("%spayload%s (%zu bytes)\n", fmt_c(FMT_BOLD), fmt_c(FMT_RESET), j->payload_len);
    if (!s) {
        fwrite(j->payload, 1, j->payload_len, stdout);
        putchar('\n');
        return;
    }
    bool indent = true; /* tabs at a line's start indent; others separate */
    for (const char *c = s; *c; c++) {
        if (*c == '\t')
            fputs(indent ? "  " : " ", stdout);
        else
            putchar(*c);
        indent = *c == '\n' || (indent && *c == '\t');
    }
    putchar('\n');
    free(s);
}

static void show_human(spool_job *j)
{
    long long now = fmt_now_ms();
    char b[FMT_BUF], att[64];
    printf("%sjob %s%s\n", fmt_c(FMT_BOLD), j->id, fmt_c(FMT_RESET));
    show_field("queue", j->queue);
    printf("  %-12s %s%s%s\n", "state", fmt_c(fmt_state_color(j->state)), j->state, fmt_c(FMT_RESET));
    snprintf(att, sizeof att, "%lld of %lld (retries %lld)", j->attempt, j->retries + 1, j->retries);
    show_field("attempt", att);
    snprintf(b, sizeof b, "%lld", j->priority);
    show_field("priority", b);
    show_field("created", fmt_when(b, sizeof b, j->created_at, now));
    show_field("updated", fmt_when(b, sizeof b, j->updated_at, now));
    show_field("run at", fmt_when(b, sizeof b, j->run_at, now));
    show_field("lease until", fmt_when(b, sizeof b, j->lease_until, now));
    show_field("lease", j->lease_ms > 0 ? fmt_duration(b, sizeof b, j->lease_ms) : NULL);
    show_field("unique", j->unique);
    show_field("progress", j->progress);
    show_field("result", j->result);
    show_field("group", j->group);
    show_field("expires", j->expires_at ? fmt_when(b, sizeof b, j->expires_at, now) : NULL);
    show_field("held by", j->holder);
    if (j->last_error)
        printf("  %-12s %s%s%s\n", "last error", fmt_c(FMT_RED), j->last_error, fmt_c(FMT_RESET));
    else
        show_field("last error", NULL);
    if (j->nerrors) {
        printf("%sfailed attempts%s (oldest first, the last %zu kept)\n", fmt_c(FMT_BOLD), fmt_c(FMT_RESET),
               j->nerrors);
        for (size_t i = 0; i < j->nerrors; i++) {
            const spool_attempt *a = &j->errors[i];
            printf("  #%-3lld %-18s %s%s%s  (%s)\n", a->attempt, fmt_when(b, sizeof b, a->time, now),
                   fmt_c(FMT_RED), a->error ? a->error : "", fmt_c(FMT_RESET),
                   a->worker && *a->worker ? a->worker : "unknown worker");
        }
    }
    print_payload(j);
}

static int no_job(const char *id)
{
    return cli_fail(CLI_REFUSED, "no job %s (done jobs are kept only for the queue's retention; "
                    "spool jobs QUEUE --state done lists those left)", id);
}

int cmd_show(cli_ctx *x)
{
    const char *id = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_job *j = NULL;
    int r = spool_job_get(x->c, id, &j);
    if (r == SPOOL_ENOJOB)
        return no_job(id);
    if (r < 0)
        return cli_sdk_fail(x, r, "reading the job");
    if (x->json)
        fmt_json_print(job_json(j));
    else
        show_human(j);
    spool_job_free(j);
    return CLI_OK;
}

/* ================================================================= push */

/* Reads all of stdin into a new buffer. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0 || n > MAX_STDIN_PAYLOAD)
            break;
        if (cap - n < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int push_opts(cli_ctx *x, spool_push_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *delay = args_get(x->a, "delay"), *at = args_get(x->a, "at");
    const char *pri = args_get(x->a, "priority"), *ret = args_get(x->a, "retries");
    long long v;
    if (delay && at)
        return cli_fail(CLI_USAGE, "give --delay or --at, not both");
    if (delay && args_duration_ms(delay, &o->delay_ms) < 0)
        return cli_fail(CLI_USAGE, "--delay takes a duration (5s, 1m30s, 250ms), not '%s'", delay);
    if (at && args_time_ms(at, &o->at_ms) < 0)
        return cli_fail(CLI_USAGE, "--at takes a time (2026-11-27T09:00:00Z, Unix seconds, +10m), not '%s'", at);
    if (pri && args_int(pri, -1000, 1000, &v) < 0)
        return cli_fail(CLI_USAGE, "--priority takes a number from -1000 to 1000, not '%s'", pri);
    o->priority = pri ? (int)v : 0;
    if (ret && args_int(ret, 0, 1000, &v) < 0)
        return cli_fail(CLI_USAGE, "--retries takes a number from 0 to 1000, not '%s'", ret);
    if (ret)
        o->retries = v == 0 ? SPOOL_NO_RETRIES : (int)v;
    o->unique = args_get(x->a, "unique");
    o->group = args_get(x->a, "group");
    const char *exp = args_get(x->a, "expires");
    if (exp && (args_duration_ms(exp, &o->expires_ms) < 0 || o->expires_ms <= 0))
        return cli_fail(CLI_USAGE, "--expires takes a duration (10m, 30s, 500ms), not '%s'", exp);
    return CLI_OK;
}

int cmd_push(cli_ctx *x)
{
    const char *queue = x->a->pos[0], *arg = x->a->pos[1];
    spool_push_opts o;
    int rc = push_opts(x, &o);
    if (rc != CLI_OK)
        return rc;
    size_t len = strlen(arg);
    char *payload = !strcmp(arg, "-") ? read_stdin(&len) : NULL;
    if (!strcmp(arg, "-") && (!payload || len > MAX_STDIN_PAYLOAD)) {
        free(payload);
        return cli_fail(CLI_USAGE, "could not read the payload from stdin (at most 64 MiB)");
    }
    char id[SPOOL_ID_MAX] = "";
    rc = cli_connect(x);
    int r = rc == CLI_OK ? spool_push(x->c, queue, payload ? payload : arg, len, &o, id) : 0;
    free(payload);
    if (rc != CLI_OK)
        return rc;
    if (r < 0)
        return cli_sdk_fail(x, r, "push refused");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "queue", queue);
        fmt_json_print(doc);
    } else {
        printf("%s\n", id);
    }
    return CLI_OK;
}

/* ================================================================ retry */

static int retry_all_dead(cli_ctx *x, const char *queue)
{
    if (!cli_may_confirm(x, "retry every dead job"))
        return CLI_REFUSED;
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_queue_stats st;
    int r = spool_queue_stats_get(x->c, queue, &st);
    if (r < 0)
        return cli_sdk_fail(x, r, "reading queue stats");
    spool_retry_opts ro = { args_get(x->a, "error"), args_get(x->a, "rate"), args_get(x->a, "to") };
    char q[1024];
    snprintf(q, sizeof q, "Make %s%lld dead job%s of '%s'%s%s ready again%s%s%s%s",
             ro.error ? "those of the " : "the ", st.dead, st.dead == 1 ? "" : "s", queue,
             ro.error ? " whose error matches " : "", ro.error ? ro.error : "", ro.to ? " in queue " : "",
             ro.to ? ro.to : "", ro.rate ? " at " : "", ro.rate ? ro.rate : "");
    if (!cli_confirm(x, q))
        return CLI_REFUSED;
    long long n = spool_queue_retry_opts(x->c, queue, &ro);
    if (n < 0)
        return cli_sdk_fail(x, (int)n, "retrying dead jobs");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "queue", queue);
        cJSON_AddNumberToObject(doc, "retried", (double)n);
        fmt_json_print(doc);
    } else {
        printf("%lld dead job%s of %s ready again\n", n, n == 1 ? "" : "s", queue);
    }
    return CLI_OK;
}

int cmd_retry(cli_ctx *x)
{
    const char *all = args_get(x->a, "all-dead");
    if ((all != NULL) == (x->a->npos == 1))
        return cli_fail(CLI_USAGE, "usage: spool retry ID | spool retry --all-dead QUEUE");
    if (!all && (args_get(x->a, "error") || args_get(x->a, "rate") || args_get(x->a, "to")))
        return cli_fail(CLI_USAGE, "--error, --rate and --to go with --all-dead QUEUE");
    if (all)
        return retry_all_dead(x, all);
    const char *id = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    int r = spool_job_retry(x->c, id);
    if (r == SPOOL_ENOJOB)
        return no_job(id);
    if (r < 0)
        return cli_sdk_fail(x, r, "retry refused");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "id", id);
        cJSON_AddStringToObject(doc, "state", "ready");
        fmt_json_print(doc);
    } else {
        printf("job %s is ready again\n", id);
    }
    return CLI_OK;
}

/* =============================================================== delete */

int cmd_delete(cli_ctx *x)
{
    if (!cli_may_confirm(x, "delete jobs"))
        return CLI_REFUSED;
    int n = x->a->npos;
    char q[256];
    snprintf(q, sizeof q, "Delete %d job%s (%s%s)", n, n == 1 ? "" : "s", x->a->pos[0], n > 1 ? ", ..." : "");
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    if (!cli_confirm(x, q))
        return CLI_REFUSED;
    long long deleted = spool_job_delete(x->c, x->a->pos, (size_t)n);
    if (deleted < 0)
        return cli_sdk_fail(x, (int)deleted, "deleting jobs");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "deleted", (double)deleted);
        cJSON_AddNumberToObject(doc, "missing", (double)(n - deleted));
        fmt_json_print(doc);
    } else {
        printf("deleted %lld of %d job%s\n", deleted, n, n == 1 ? "" : "s");
    }
    if (deleted < n)
        return cli_fail(CLI_REFUSED, "%lld of the ids named no job (already gone?)", n - deleted);
    return CLI_OK;
}
