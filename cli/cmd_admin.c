/*
 * cmd_admin.c - queue-level repair: `purge` (destructive: confirmed),
 * `pause`, `resume`, and `config` (show or change a queue's settings).
 */
#include "cli.h"
#include "fmt.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================ purge */

static long long purge_count(const spool_queue_stats *st, const char *state)
{
    if (!state)
        return st->ready + st->delayed + st->done + st->dead;
    const struct { const char *s; long long n; } m[] = {
        { "ready", st->ready }, { "reserved", st->reserved }, { "delayed", st->delayed },
        { "done", st->done },   { "dead", st->dead },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(m[i].s, state))
            return m[i].n;
    return -1;
}

int cmd_purge(cli_ctx *x)
{
    const char *queue = x->a->pos[0], *state = args_get(x->a, "state");
    spool_queue_stats st = { 0 };
    if (state && purge_count(&st, state) < 0)
        return cli_fail(CLI_USAGE, "--state is one of ready, reserved, delayed, done, dead; not '%s'", state);
    if (!cli_may_confirm(x, "purge"))
        return CLI_REFUSED;
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    int r = spool_queue_stats_get(x->c, queue, &st);
    if (r < 0)
        return cli_sdk_fail(x, r, "reading queue stats");
    char q[512];
    snprintf(q, sizeof q, "Delete %lld %s job%s of '%s'", purge_count(&st, state),
             state ? state : "unreserved", purge_count(&st, state) == 1 ? "" : "s", queue);
    if (!cli_confirm(x, q))
        return CLI_REFUSED;
    long long n = spool_queue_purge(x->c, queue, state);
    if (n < 0)
        return cli_sdk_fail(x, (int)n, "purge refused");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "queue", queue);
        cJSON_AddNumberToObject(doc, "purged", (double)n);
        fmt_json_print(doc);
    } else {
        printf("purged %lld job%s from %s\n", n, n == 1 ? "" : "s", queue);
    }
    return CLI_OK;
}

/* ======================================================== pause, resume */

static int pause_or_resume(cli_ctx *x, bool pause)
{
    const char *queue = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    int r = pause ? spool_queue_pause(x->c, queue) : spool_queue_resume(x->c, queue);
    if (r < 0)
        return cli_sdk_fail(x, r, pause ? "pause refused" : "resume refused");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "queue", queue);
        cJSON_AddBoolToObject(doc, "paused", pause);
        fmt_json_print(doc);
    } else {
        printf("%s %s\n", queue, pause ? "paused: jobs are kept but not delivered (spool resume to undo)"
                                      : "resumed: jobs are delivered again");
    }
    return CLI_OK;
}

int cmd_pause(cli_ctx *x)
{
    return pause_or_resume(x, true);
}

int cmd_resume(cli_ctx *x)
{
    return pause_or_resume(x, false);
}

/* =============================================================== config */

/* A setting's value as JSON: a number when it is one, else a string. */
static cJSON *config_value(const char *v)
{
    long long n;
    if (args_int(v, -(1LL << 53), 1LL << 53, &n) == 0)
        return cJSON_CreateNumber((double)n);
    return cJSON_CreateString(v);
}

static void config_show(cli_ctx *x, const char *queue, char **pairs, int n, bool one)
{
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "queue", queue);
        cJSON *set = cJSON_AddObjectToObject(doc, "config");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToObject(set, pairs[2 * i], config_value(pairs[2 * i + 1]));
        fmt_json_print(doc);
    } else if (one && n == 1) {
        printf("%s\n", pairs[1]);
    } else {
        char spec[] = "SETTING,>VALUE";
        table t;
        table_init(&t, spec);
        for (int i = 0; i < n; i++)
            table_add(&t, (const char *const *)&pairs[2 * i]);
        table_print(&t, stdout);
    }
}

static int config_get(cli_ctx *x, const char *queue, const char *name)
{
    char **pairs = NULL;
    int n = spool_queue_config_get(x->c, queue, name, &pairs);
    if (n < 0)
        return cli_sdk_fail(x, n, "reading the settings");
    config_show(x, queue, pairs, n, name != NULL);
    spool_strv_free(pairs);
    return CLI_OK;
}

int cmd_config(cli_ctx *x)
{
    const char *queue = x->a->pos[0];
    const char *name = x->a->npos > 1 ? x->a->pos[1] : NULL;
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    if (x->a->npos < 3)
        return config_get(x, queue, name);
    const char *pair[] = { name, x->a->pos[2] };
    int r = spool_queue_config_set(x->c, queue, pair, 1);
    if (r < 0)
        return cli_sdk_fail(x, r, "setting refused");
    if (x->json)
        return config_get(x, queue, name);
    printf("%s %s = %s\n", queue, name, pair[1]);
    return CLI_OK;
}
