/*
 * test_http.c - the HTTP admin endpoint of a real spoold: /healthz,
 * /api/queues (parsed as JSON) and /metrics (Prometheus text), on a port
 * of its own; a port that is taken leaves spoold serving RESP anyway.
 */
#include <criterion/criterion.h>

#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port that was free a moment ago. */
/* GET path; returns the status code (0 when nothing answers) and the body
 * in *body (caller frees). */
static int http_get(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return 0;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    int code = 0;
    sscanf(buf, "HTTP/1.%*d %d", &code);
    char *sep = strstr(buf, "\r\n\r\n");
    *body = strdup(sep ? sep + 4 : "");
    free(buf);
    return code;
}

/* A spoold with HTTP on any free port (--http-port -1, learnt from
 * --http-port-file: a port picked here could be taken by another test's
 * server before spoold binds it), once /healthz answers 200; a1, a2: extra
 * arguments (NULL for none). */
static spoold *start_with_http_args(int *http_port, const char *a1, const char *a2, const char *a3,
                                    const char *a4, const char *a5, const char *a6)
{
    char pf[64];
    http_port_path(pf);
    spoold *s = spoold_start("--http-port", "-1", "--http-port-file", pf, a1, a2, a3, a4, a5, a6, NULL);
    *http_port = http_port_from_file(pf);
    char *body = NULL;
    bool up = wait_until((free(body), http_get(*http_port, "/healthz", &body) == 200), 5000);
    cr_assert(up, "GET /healthz on port %d never answered 200 (last: %s)", *http_port, body ? body : "nothing");
    cr_assert_str_eq(body, "ok\n");
    free(body);
    return s;
}

static spoold *start_with_http(int *http_port)
{
    return start_with_http_args(http_port, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* A shard whose WAL sync failed refuses writes until a restart: /healthz
 * answers 503 and names the shard, the file and the OS error. */
Test(http, healthz_reports_a_shard_whose_wal_sync_failed)
{
    int hp;
    spoold *s = start_with_http_args(&hp, "--shards", "1", "--fsync", "always", "--enable-debug-command", "yes");
    char *body = NULL;
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "hz", "1"));
    /* The push's commit meets the failing sync ("ERR journal ..."), or the
     * shard's once-a-second sync of what was committed before it met it
     * first, and the push finds the shard fenced: either way it fails. */
    resp_val *v = CMD(c, "JOB.PUSH", "hz", "{}");
    cr_assert(v->type == RESP_T_ERROR && (strstr(v->str, "ERR journal") == v->str ||
                                          strstr(v->str, "ERR shard 0 refuses writes") == v->str),
              "a push after a failed sync: %s", resp_describe(v));
    resp_val_free(v);
    cr_assert_eq(http_get(hp, "/healthz", &body), 503, "/healthz: %s", body);
    cr_assert(strstr(body, "shard 0 refuses writes") && strstr(body, "shard-0.db") && strstr(body, "EIO"),
              "/healthz does not say what failed: %s", body);
    free(body);
    cli_close(c);
    spoold_stop(s);
}

Test(http, api_queues_lists_every_queue_with_its_counts)
{
    int hp;
    spoold *s = start_with_http(&hp);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < 3; i++)
        resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    resp_val_free(CMD(c, "JOB.PUSH", "thumbs", "{}", "DELAY", "60000"));
    resp_val_free(CMD(c, "QUEUE.PAUSE", "thumbs"));
    resp_val_free(CMD(c, "LPUSH", "we\"ird", "{}"));

    char *body;
    cr_assert_eq(http_get(hp, "/api/queues", &body), 200);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc, "not JSON: %s", body);
    cJSON *qs = cJSON_GetObjectItem(doc, "queues");
    cr_assert(cJSON_IsArray(qs));
    cr_assert_eq(cJSON_GetArraySize(qs), 3, "%s", body);
    cJSON *e = cJSON_GetArrayItem(qs, 0), *t = cJSON_GetArrayItem(qs, 1), *w = cJSON_GetArrayItem(qs, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "name")->valuestring, "emails");
    cr_assert_eq(cJSON_GetObjectItem(e, "ready")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(e, "pushed")->valueint, 3);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(e, "paused")));
    cr_assert_str_eq(cJSON_GetObjectItem(t, "name")->valuestring, "thumbs");
    cr_assert_eq(cJSON_GetObjectItem(t, "delayed")->valueint, 1);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(t, "paused")));
    cr_assert_str_eq(cJSON_GetObjectItem(w, "name")->valuestring, "we\"ird", "names are escaped");
    cJSON_Delete(doc);
    free(body);
    cli_close(c);
    spoold_stop(s);
}

Test(http, metrics_are_prometheus_text)
{
    int hp;
    spoold *s = start_with_http(&hp);
    cli *c = cli_connect(s->port);
    resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    resp_val_free(CMD(c, "RPOP", "emails"));

    char *body;
    cr_assert_eq(http_get(hp, "/metrics", &body), 200);
    cr_assert_not_null(strstr(body, "# TYPE spool_queue_jobs gauge\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_jobs{queue=\"emails\",state=\"ready\"} 1\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_pushed_total{queue=\"emails\"} 2\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_popped_total{queue=\"emails\"} 1\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_connected_clients 1\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_up 1\n"));
    /* Every sample line is "name{labels} value" or "name value". */
    for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "bad line: %s", line);
        char *end;
        strtod(sp + 1, &end);
        cr_assert_eq(*end, '\0', "bad value in: %s", line);
    }
    free(body);
    cr_assert_eq(http_get(hp, "/nope", &body), 404);
    free(body);
    cli_close(c);
    spoold_stop(s);
}

Test(http, a_taken_http_port_leaves_resp_serving)
{
    int hp;
    spoold *a = start_with_http(&hp);
    char port[16];
    snprintf(port, sizeof port, "%d", hp);
    spoold *b = spoold_start("--http-port", port, NULL);
    cli *c = cli_connect(b->port);
    expect_simple(CMD(c, "PING"), "PONG");
    cli_close(c);
    spoold_stop(b);
    spoold_stop(a);
}

Test(http, api_jobs_shows_a_job_with_its_failed_attempts)
{
    int hp;
    spoold *s = start_with_http(&hp);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "mail", "SET", "backoff", "0", "rate", "14/1s", "concurrency", "3"));
    expect_ok(CMD(c, "CLIENT", "SETNAME", "smtp-1"));
    resp_val *p = CMD(c, "JOB.PUSH", "mail", "{\"to\":\"a@example.com\"}", "GROUP", "t1", "EXPIRES", "600000");
    char id[32];
    snprintf(id, sizeof id, "%s", p->str);
    resp_val_free(p);
    resp_val *r = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "mail");
    char receipt[48];
    snprintf(receipt, sizeof receipt, "%s", field_str(r->elem[0], "receipt"));
    resp_val_free(r);
    resp_val_free(CMD(c, "JOB.NACK", receipt, "DELAY", "60000", "ERROR", "451 \"busy\"\ttry later"));

    char path[64], *body;
    snprintf(path, sizeof path, "/api/jobs/%s", id);
    cr_assert_eq(http_get(hp, path, &body), 200, "%s", body);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc, "not JSON: %s", body);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "id")->valuestring, id);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "state")->valuestring, "delayed");
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "group")->valuestring, "t1");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "payload"), "to")->valuestring, "a@example.com");
    cJSON *errs = cJSON_GetObjectItem(doc, "errors");
    cr_assert_eq(cJSON_GetArraySize(errs), 1, "%s", body);
    cJSON *e = cJSON_GetArrayItem(errs, 0);
    cr_assert_eq(cJSON_GetObjectItem(e, "attempt")->valueint, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "error")->valuestring, "451 \"busy\" try later");
    cr_assert_not_null(strstr(cJSON_GetObjectItem(e, "worker")->valuestring, "name=smtp-1 "));
    cJSON_Delete(doc);
    free(body);
    cr_assert_eq(http_get(hp, "/api/jobs/0000000000000001", &body), 404);
    free(body);
    cr_assert_eq(http_get(hp, "/api/jobs/nope", &body), 404);
    free(body);

    cr_assert_eq(http_get(hp, "/metrics", &body), 200);
    cr_assert_not_null(strstr(body, "spool_queue_rate_limit{queue=\"mail\"} 14\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_rate_period_seconds{queue=\"mail\"} 1.000\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_concurrency_limit{queue=\"mail\"} 3\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_lease_expired_total{queue=\"mail\"} 0\n"), "%s", body);
    cr_assert_not_null(strstr(body, "spool_queue_jobs{queue=\"mail\",state=\"expired\"} 0\n"), "%s", body);
    free(body);
    cr_assert_eq(http_get(hp, "/api/queues", &body), 200);
    cr_assert_not_null(strstr(body, "\"rate_limit\":14"), "%s", body);
    cr_assert_not_null(strstr(body, "\"lease_expired\":0"), "%s", body);
    free(body);
    cli_close(c);
    spoold_stop(s);
}
