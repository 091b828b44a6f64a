/*
 * cmd_server.c - `spool ping` (is spoold there, how fast does it answer)
 * and `spool info [SECTION]` (spoold's INFO text; with --json an object of
 * sections of fields, numbers as numbers).
 */
#include "cli.h"
#include "fmt.h"
#include "rawinfo.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int cmd_ping(cli_ctx *x)
{
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    double t0 = mono_ms();
    int r = spool_ping(x->c);
    double ms = mono_ms() - t0;
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

int cmd_info(cli_ctx *x)
{
    int rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    char *text = NULL, err[512];
    if (rawinfo_fetch(spool_endpoint(x->c), x->url ? x->url : getenv("SPOOL_URL"),
                      x->a->npos ? x->a->pos[0] : NULL, &text, err, sizeof err) < 0)
        return cli_fail(CLI_REFUSED, "INFO failed: %s", err);
    if (x->json) {
        fmt_json_print(info_json(text));
    } else {
        for (char *p = text; *p; p++)
            if (*p != '\r')
                putchar(*p);
    }
    free(text);
    return CLI_OK;
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
