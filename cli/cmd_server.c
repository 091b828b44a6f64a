/*
 * cmd_server.c - `spool ping` (is spoold there, how fast does it answer)
 * and `spool info [SECTION]` (spoold's INFO text; with --json an object of
 * sections of fields, numbers as numbers); `spool info payload`: the
 * payload file of each shard, on disk against live.
 */
#include "cli.h"
#include "fmt.h"
#include "rawinfo.h"
#include "table.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cmd_ping(cli_ctx *x)
{
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    double t0 = fmt_mono_ms();
    int r = spool_ping(x->c);
    double ms = fmt_mono_ms() - t0;
    if (r < 0)
        return cli_sdk_fail(x, r, "ping");
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "reply", "PONG");
        cJSON_AddStringToObject(doc, "endpoint", spool_endpoint(x->c));
        cJSON_AddNumberToObject(doc, "protocol", spool_protocol(x->c));
        cJSON_AddNumberToObject(doc, "latency_ms", (double)(long long)(ms * 1000) / 1000);
        fmt_json_print(doc);
    } else {
        printf("PONG from %s in %.2fms (RESP%d)\n", spool_endpoint(x->c), ms, spool_protocol(x->c));
    }
    return CLI_OK;
}

/* ================================================================= info */

static cJSON *field_value(const char *v)
{
    long long n;
    if (args_int(v, -(1LL << 53), 1LL << 53, &n) == 0)
        return cJSON_CreateNumber((double)n);
    return cJSON_CreateString(v);
}

/* "# Server\r\nname:value\r\n..." -> {"server":{"name":value,...},...} */
static cJSON *info_json(char *text)
{
    cJSON *doc = cJSON_CreateObject(), *sec = NULL;
    for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (line[0] == '#') {
            char *name = line + 1 + (line[1] == ' ');
            for (char *p = name; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            sec = cJSON_AddObjectToObject(doc, name);
            continue;
        }
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        if (!sec)
            sec = cJSON_AddObjectToObject(doc, "info");
        cJSON_AddItemToObject(sec, line, field_value(colon + 1));
    }
    return doc;
}

/* "bytes=1,live_bytes=2,…": the value of key, or 0. */
static unsigned long long list_field(const char *list, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, key, n) && p[n] == '=')
            return strtoull(p + n + 1, NULL, 10);
    return 0;
}

/* "0 B", "812 B", "14.2 KiB", "3.1 MiB", "1.2 GiB". */
static char *bytes_text(char *buf, size_t cap, unsigned long long n)
{
    const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

/* payload_file_shard<k> lines of INFO persistence as [{shard, bytes,
 * live_bytes, segments, compactions}…]. */
static cJSON *payload_shards(char *text)
{
    const char *keys[] = { "bytes", "live_bytes", "segments", "compactions" };
    cJSON *arr = cJSON_CreateArray();
    int k;
    for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (sscanf(line, "payload_file_shard%d:", &k) != 1 || !colon)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "shard", k);
        for (int i = 0; i < 4; i++)
            cJSON_AddNumberToObject(o, keys[i], (double)list_field(colon + 1, keys[i]));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* spool info payload: each shard's payload file, on disk against live (a
 * table, or with --json {"shards":[…]}). */
static int info_payload(cli_ctx *x, char *text)
{
    cJSON *arr = payload_shards(text), *o;
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "shards", arr);
        fmt_json_print(doc);
        return CLI_OK;
    }
    table t;
    char spec[] = "SHARD,>ON DISK,>LIVE,>LIVE %,>SEGMENTS,>COMPACTIONS", c[6][32];
    table_init(&t, spec);
    cJSON_ArrayForEach(o, arr) {
        double disk = cJSON_GetObjectItem(o, "bytes")->valuedouble;
        double live = cJSON_GetObjectItem(o, "live_bytes")->valuedouble;
        snprintf(c[0], sizeof c[0], "%d", cJSON_GetObjectItem(o, "shard")->valueint);
        bytes_text(c[1], sizeof c[1], (unsigned long long)disk);
        bytes_text(c[2], sizeof c[2], (unsigned long long)live);
        snprintf(c[3], sizeof c[3], disk > 0 ? "%.0f%%" : "-", disk > 0 ? 100.0 * live / disk : 0.0);
        snprintf(c[4], sizeof c[4], "%.0f", cJSON_GetObjectItem(o, "segments")->valuedouble);
        snprintf(c[5], sizeof c[5], "%.0f", cJSON_GetObjectItem(o, "compactions")->valuedouble);
        table_add(&t, (const char *const[]){ c[0], c[1], c[2], c[3], c[4], c[5] });
    }
    table_print(&t, stdout);
    cJSON_Delete(arr);
    return CLI_OK;
}

int cmd_info(cli_ctx *x)
{
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    char *text = NULL, err[512];
    bool payload = x->a->npos && !strcmp(x->a->pos[0], "payload");
    if (rawinfo_fetch(spool_endpoint(x->c), x->url ? x->url : getenv("SPOOL_URL"),
                      payload ? "persistence" : x->a->npos ? x->a->pos[0] : NULL, &text, err, sizeof err) < 0)
        return cli_fail(CLI_REFUSED, "INFO failed: %s", err);
    if (payload) {
        rc = info_payload(x, text);
    } else if (x->json) {
        fmt_json_print(info_json(text));
    } else {
        for (char *p = text; *p; p++)
            if (*p != '\r')
                putchar(*p);
    }
    free(text);
    return rc;
}

/* ================================================================ backup */

#define BACKUP_TIMEOUT_S 3600

/* spool backup DIR: BACKUP with DIR made absolute against our working
 * directory (spoold runs elsewhere; the path is on spoold's machine). */
int cmd_backup(cli_ctx *x)
{
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    const char *dir = x->a->pos[0];
    char abs[4096];
    if (dir[0] != '/') {
        char cwd[3800];
        if (!getcwd(cwd, sizeof cwd))
            return cli_fail(CLI_USAGE, "backup: cannot read the working directory to resolve '%s': give an absolute "
                            "path", dir);
        snprintf(abs, sizeof abs, "%s/%s", cwd, dir);
        dir = abs;
    }
    const char *argv[] = { "BACKUP", dir };
    char *text = NULL, err[1024];
    if (rawinfo_command(spool_endpoint(x->c), x->url ? x->url : getenv("SPOOL_URL"), 2, argv, BACKUP_TIMEOUT_S,
                        &text, err, sizeof err) < 0)
        return cli_fail(CLI_REFUSED, "backup failed: %s", err);
    if (x->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "reply", text);
        cJSON_AddStringToObject(doc, "dir", dir);
        fmt_json_print(doc);
    } else {
        printf("%s\n", text);
    }
    free(text);
    return CLI_OK;
}
