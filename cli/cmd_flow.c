/*
 * cmd_flow.c - `spool workers QUEUE` (who holds which job, QUEUE.WORKERS)
 * and `spool groups QUEUE` (the fair groups, QUEUE.GROUPS).
 */
#include "cli.h"
#include "fmt.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================== workers */

static cJSON *workers_doc(const char *queue, const spool_queue_worker *v, int n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "queue", queue);
    cJSON *arr = cJSON_AddArrayToObject(doc, "workers");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v[i].name);
        cJSON_AddStringToObject(o, "addr", v[i].addr);
        cJSON_AddNumberToObject(o, "id", (double)v[i].id);
        cJSON_AddBoolToObject(o, "waiting", v[i].waiting);
        cJSON_AddNumberToObject(o, "last_active", (double)v[i].last_active);
        cJSON *jobs = cJSON_AddArrayToObject(o, "jobs");
        for (size_t k = 0; k < v[i].njobs; k++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "id", v[i].jobs[k].id);
            cJSON_AddNumberToObject(j, "lease_until", (double)v[i].jobs[k].lease_until);
            cJSON_AddNumberToObject(j, "attempt", (double)v[i].jobs[k].attempt);
            cJSON_AddItemToArray(jobs, j);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

static void workers_table(const char *queue, const spool_queue_worker *v, int n)
{
    if (n == 0) {
        printf("no worker holds or waits for jobs of %s\n", queue);
        return;
    }
    long long now = fmt_now_ms();
    char spec[] = "NAME,ADDR,>CONN,STATE,LAST ACTIVE,JOB,>ATTEMPT,LEASE ENDS";
    table t;
    table_init(&t, spec);
    for (int i = 0; i < n; i++) {
        char id[24], last[FMT_BUF];
        snprintf(id, sizeof id, "%lld", v[i].id);
        fmt_when(last, sizeof last, v[i].last_active, now);
        const char *name = v[i].name[0] ? v[i].name : "-";
        const char *state = v[i].njobs ? (v[i].waiting ? "busy+waiting" : "busy") : "waiting";
        if (v[i].njobs == 0) {
            const char *row[] = { name, v[i].addr, id, state, last, "-", "", "" };
            table_add(&t, row);
        }
        for (size_t k = 0; k < v[i].njobs; k++) {
            char att[24], lease[FMT_BUF];
            snprintf(att, sizeof att, "%lld", v[i].jobs[k].attempt);
            fmt_when(lease, sizeof lease, v[i].jobs[k].lease_until, now);
            const char *row[] = { k ? "" : name, k ? "" : v[i].addr, k ? "" : id, k ? "" : state,
                                  k ? "" : last, v[i].jobs[k].id, att, lease };
            table_add(&t, row);
        }
    }
    table_print(&t, stdout);
}

int cmd_workers(cli_ctx *x)
{
    const char *queue = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_queue_worker *v = NULL;
    int n = spool_queue_workers(x->c, queue, &v);
    if (n < 0)
        return cli_sdk_fail(x, n, "listing workers");
    if (x->json)
        fmt_json_print(workers_doc(queue, v, n));
    else
        workers_table(queue, v, n);
    spool_queue_workers_free(v, (size_t)n);
    return CLI_OK;
}

/* =============================================================== groups */

int cmd_groups(cli_ctx *x)
{
    const char *queue = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    spool_group_info *v = NULL;
    int n = spool_queue_groups(x->c, queue, &v);
    if (n < 0)
        return cli_sdk_fail(x, n, "listing groups");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "queue", queue);
        cJSON *arr = cJSON_AddArrayToObject(doc, "groups");
        for (int i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "group", v[i].group);
            cJSON_AddNumberToObject(o, "ready", (double)v[i].ready);
            cJSON_AddNumberToObject(o, "reserved", (double)v[i].reserved);
            cJSON_AddNumberToObject(o, "delivered", (double)v[i].delivered);
            cJSON_AddItemToArray(arr, o);
        }
        fmt_json_print(doc);
    } else if (n == 0) {
        printf("no group of %s has ready or reserved jobs\n", queue);
    } else {
        char spec[] = "GROUP,>READY,>RESERVED,>DELIVERED";
        table t;
        table_init(&t, spec);
        for (int i = 0; i < n; i++) {
            char num[3][24];
            snprintf(num[0], sizeof num[0], "%lld", v[i].ready);
            snprintf(num[1], sizeof num[1], "%lld", v[i].reserved);
            snprintf(num[2], sizeof num[2], "%lld", v[i].delivered);
            const char *row[] = { v[i].group[0] ? v[i].group : "(default)", num[0], num[1], num[2] };
            table_add(&t, row);
        }
        table_print(&t, stdout);
    }
    spool_queue_groups_free(v, (size_t)n);
    return CLI_OK;
}
