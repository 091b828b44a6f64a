/*
 * test_dashboard.c - the web dashboard's HTTP side against a real spoold:
 * its JSON API (checked against QUEUE.STATS, JOB.GET and QUEUE.CONFIG over
 * RESP), Basic auth with requirepass (401), the CSRF token on actions
 * (403), every action, paging and error filters, the throughput rings,
 * the embedded files, and --http-port -1 with --http-port-file.
 */
#include <criterion/criterion.h>

#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

struct http_res {
    int code;
    char *head;   /* status line and headers */
    char *body;
};

static void res_free(struct http_res *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One request over a fresh connection to addr:port; extra is a block of
 * header lines ("Name: value\r\n"...), body may be NULL. */
static struct http_res http_at(const char *addr, int port, const char *method, const char *path, const char *extra,
                               const char *body)
{
    struct http_res r = { 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, addr, &a.sin_addr);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect %s:%d", addr, port);
    char req[4096];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n%s", method, path, port, extra ? extra : "",
                     body ? strlen(body) : 0, body ? body : "");
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    sscanf(buf, "HTTP/1.%*d %d", &r.code);
    char *sep = strstr(buf, "\r\n\r\n");
    r.body = strdup(sep ? sep + 4 : "");
    if (sep)
        *sep = '\0';
    r.head = buf;
    return r;
}

static struct http_res http(int port, const char *method, const char *path, const char *extra, const char *body)
{
    return http_at("127.0.0.1", port, method, path, extra, body);
}

/* The value of a response header (static buffer), or NULL. */
static const char *header(const struct http_res *r, const char *name)
{
    static char val[512];
    char *p = r->head;
    size_t n = strlen(name);
    while ((p = strstr(p, "\r\n"))) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ')
                p++;
            size_t k = strcspn(p, "\r\n");
            snprintf(val, sizeof val, "%.*s", (int)k, p);
            return val;
        }
    }
    return NULL;
}

static cJSON *json_of(const struct http_res *r)
{
    cJSON *doc = cJSON_Parse(r->body);
    cr_assert_not_null(doc, "not JSON (status %d): %s", r->code, r->body);
    return doc;
}

/* A spoold with the dashboard on any free port (--http-port -1), learnt
 * from --http-port-file; a1, a2: extra arguments (NULL for none). */
static spoold *start(int *hp, const char *a1, const char *a2)
{
    char pf[64];
    http_port_path(pf);
    spoold *s = spoold_start("--http-port", "-1", "--http-port-file", pf, a1, a2, NULL);
    *hp = http_port_from_file(pf);
    return s;
}

/* Cookie header line and CSRF token of a new session (static buffers). */
static void session(int hp, const char *auth, char *cookie, size_t cc, char *token, size_t tc)
{
    struct http_res r = http(hp, "GET", "/api/session", auth, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    const char *set = header(&r, "Set-Cookie");
    cr_assert_not_null(set, "no session cookie: %s", r.head);
    snprintf(cookie, cc, "Cookie: %.*s\r\n", (int)strcspn(set, ";"), set);
    cJSON *doc = json_of(&r);
    snprintf(token, tc, "%s", cJSON_GetObjectItem(doc, "csrf")->valuestring);
    cJSON_Delete(doc);
    res_free(&r);
}

/* POSTs an action with the session's cookie and token. */
static struct http_res act(int hp, const char *cookie, const char *token, const char *name, const char *form)
{
    char path[128], extra[512];
    snprintf(path, sizeof path, "/api/actions/%s", name);
    snprintf(extra, sizeof extra, "%sX-CSRF-Token: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n", cookie,
             token);
    return http(hp, "POST", path, extra, form);
}

/* POSTs an action; its status must be code and its body name needle
 * (unless NULL). */
static void expect_act(int hp, const char *cookie, const char *token, const char *name, const char *form, int code,
                       const char *needle)
{
    struct http_res r = act(hp, cookie, token, name, form);
    cr_assert_eq(r.code, code, "%s %s: %d %s", name, form, r.code, r.body);
    if (needle)
        cr_assert_not_null(strstr(r.body, needle), "%s %s: %s", name, form, r.body);
    res_free(&r);
}

static jid dead_job(cli *c, const char *q, const char *err)
{
    jid id = PUSHO(c, q, "{}", "RETRIES", "0");
    resp_val_free(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", q));
    expect_word(CMD(c, "JOB.NACK", id.s, "ERROR", err), "dead");
    return id;
}

static long long jint(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(o, k);
    cr_assert(cJSON_IsNumber(v), "no number %s in %s", k, cJSON_PrintUnformatted(o));
    return (long long)v->valuedouble;
}

/* -------------------------------------------------------------- tests */

Test(dashboard, overview_counts_equal_queue_stats)
{
    int hp;
    spoold *s = start(&hp, "--shards", "3");
    cli *c = cli_connect(s->port);
    const char *queues[] = { "emails", "thumbs", "we\"ird q" };
    for (int i = 0; i < 3; i++)
        for (int k = 0; k <= i; k++)
            resp_val_free(CMD(c, "LPUSH", queues[i], "{}"));
    dead_job(c, "dead-end", "boom");
    resp_val_free(CMD(c, "JOB.PUSH", "thumbs", "{}", "DELAY", "60000"));
    resp_val_free(CMD(c, "QUEUE.PAUSE", "emails"));

    struct http_res r = http(hp, "GET", "/api/overview", NULL, NULL);
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Cache-Control"), "no-store");
    cJSON *doc = json_of(&r);
    cJSON *qs = cJSON_GetObjectItem(doc, "queues");
    cr_assert_eq(cJSON_GetArraySize(qs), 4, "%s", r.body);
    cJSON *q;
    cJSON_ArrayForEach(q, qs) {
        const char *name = cJSON_GetObjectItem(q, "name")->valuestring;
        for (const char *const *k = (const char *const[]){ "ready", "reserved", "delayed", "done", "dead", "pushed", NULL };
             *k; k++)
            cr_assert_eq(jint(q, *k), stat_of(c, name, *k), "queue %s, %s", name, *k);
        cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(q, "paused")), stat_of(c, name, "paused") == 1, "%s", name);
    }
    cJSON_Delete(doc);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, actions_need_the_csrf_token_of_their_session)
{
    int hp;
    spoold *s = start(&hp, "--loglevel", "info");
    cli *c = cli_connect(s->port);
    resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    char cookie[128], token[80], other_cookie[128], other_token[80];
    session(hp, NULL, cookie, sizeof cookie, token, sizeof token);
    session(hp, NULL, other_cookie, sizeof other_cookie, other_token, sizeof other_token);
    cr_assert_str_neq(token, other_token, "two sessions got one token");

    struct http_res r = http(hp, "POST", "/api/actions/queue-pause", NULL, "queue=emails");
    cr_assert_eq(r.code, 403, "no cookie, no token: %d %s", r.code, r.body);
    res_free(&r);
    r = http(hp, "POST", "/api/actions/queue-pause", cookie, "queue=emails");
    cr_assert_eq(r.code, 403, "no token: %d", r.code);
    res_free(&r);
    r = act(hp, cookie, other_token, "queue-pause", "queue=emails");
    cr_assert_eq(r.code, 403, "another session's token: %d", r.code);
    res_free(&r);
    char extra[400];
    snprintf(extra, sizeof extra, "%sX-CSRF-Token: %s\r\nOrigin: http://evil.example\r\n", cookie, token);
    r = http(hp, "POST", "/api/actions/queue-pause", extra, "queue=emails");
    cr_assert_eq(r.code, 403, "foreign origin: %d", r.code);
    res_free(&r);
    snprintf(extra, sizeof extra, "%sX-CSRF-Token: %s\r\nOrigin: http://127.0.0.1:%d.evil.example\r\n", cookie, token, hp);
    r = http(hp, "POST", "/api/actions/queue-pause", extra, "queue=emails");
    cr_assert_eq(r.code, 403, "an origin that only starts like ours: %d", r.code);
    res_free(&r);
    cr_assert_eq(stat_of(c, "emails", "paused"), 0, "a refused POST changed the queue");
    /* Behind a TLS proxy that keeps the Host header, the origin is https. */
    snprintf(extra, sizeof extra, "%sX-CSRF-Token: %s\r\nOrigin: https://127.0.0.1:%d\r\n", cookie, token, hp);
    r = http(hp, "POST", "/api/actions/queue-resume", extra, "queue=emails");
    cr_assert_eq(r.code, 200, "https origin of this host: %d %s", r.code, r.body);
    res_free(&r);

    r = act(hp, cookie, token, "queue-pause", "queue=emails");
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    cr_assert_eq(stat_of(c, "emails", "paused"), 1);
    EXPECT_NOTHING(c, "emails");
    char *log = spoold_log(s);
    cr_assert_not_null(strstr(log, "dashboard: user 'default' from 127.0.0.1 paused queue 'emails': ok"), "%s", log);
    free(log);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, requirepass_asks_for_basic_auth)
{
    int hp;
    spoold *s = start(&hp, "--requirepass", "hunter2");
    const char *paths[] = { "/", "/app.js", "/api/overview", "/api/session", "/api/server" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct http_res r = http(hp, "GET", paths[i], NULL, NULL);
        cr_assert_eq(r.code, 401, "%s without a password: %d", paths[i], r.code);
        cr_assert_not_null(header(&r, "WWW-Authenticate"), "%s: no challenge", paths[i]);
        res_free(&r);
    }
    /* default:wrong, admin:hunter2, default:hunter2 */
    const char *bad[] = { "Authorization: Basic ZGVmYXVsdDp3cm9uZw==\r\n", "Authorization: Basic YWRtaW46aHVudGVyMg==\r\n",
                          "Authorization: Bearer hunter2\r\n" };
    for (size_t i = 0; i < 3; i++) {
        struct http_res r = http(hp, "GET", "/api/overview", bad[i], NULL);
        cr_assert_eq(r.code, 401, "%s", bad[i]);
        res_free(&r);
    }
    const char *good = "Authorization: Basic ZGVmYXVsdDpodW50ZXIy\r\n";
    struct http_res r = http(hp, "GET", "/api/overview", good, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    r = http(hp, "POST", "/api/actions/queue-pause", NULL, "queue=q");
    cr_assert_eq(r.code, 401, "an unauthenticated POST: %d", r.code);
    res_free(&r);
    char cookie[128], token[80], extra[400];
    session(hp, good, cookie, sizeof cookie, token, sizeof token);
    snprintf(extra, sizeof extra, "%s%sX-CSRF-Token: %s\r\n", good, cookie, token);
    r = http(hp, "POST", "/api/actions/queue-pause", extra, "queue=q");
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    r = http(hp, "GET", "/healthz", NULL, NULL);
    cr_assert_eq(r.code, 200, "/healthz stays open for probes");
    res_free(&r);
    spoold_stop(s);
}

Test(dashboard, job_actions_retry_and_delete)
{
    int hp;
    spoold *s = start(&hp, "--shards", "2");
    cli *c = cli_connect(s->port);
    jid dead = dead_job(c, "emails", "550 no such user");
    char cookie[128], token[80], form[64], path[64];
    session(hp, NULL, cookie, sizeof cookie, token, sizeof token);

    snprintf(path, sizeof path, "/api/job?id=%s", dead.s);
    struct http_res r = http(hp, "GET", path, NULL, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    cJSON *doc = json_of(&r), *job = cJSON_GetObjectItem(doc, "job");
    cr_assert_str_eq(cJSON_GetObjectItem(job, "last_error")->valuestring, "550 no such user");
    cr_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "dead");
    cr_assert_str_eq(cJSON_GetObjectItem(job, "payload")->valuestring, "{}");
    cJSON_Delete(doc);
    res_free(&r);

    snprintf(form, sizeof form, "id=%s", dead.s);
    r = act(hp, cookie, token, "job-retry", form);
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    EXPECT_STATE(c, dead.s, "ready");
    r = act(hp, cookie, token, "job-retry", form);
    cr_assert_eq(r.code, 409, "retrying a ready job: %d %s", r.code, r.body);
    cr_assert_not_null(strstr(r.body, "only dead, expired or delayed jobs can be retried"), "%s", r.body);
    res_free(&r);
    r = act(hp, cookie, token, "job-delete", form);
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    EXPECT_STATE(c, dead.s, "nil");
    r = act(hp, cookie, token, "job-delete", form);
    cr_assert_eq(r.code, 404, "deleting it again: %d", r.code);
    res_free(&r);
    r = http(hp, "GET", path, NULL, NULL);
    cr_assert_eq(r.code, 404, "%s", r.body);
    res_free(&r);
    r = act(hp, cookie, token, "job-retry", "id=nothex");
    cr_assert_eq(r.code, 400, "%s", r.body);
    res_free(&r);
    r = act(hp, cookie, token, "job-launch", form);
    cr_assert_eq(r.code, 404, "an unknown action: %d", r.code);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, queue_actions_purge_retry_dead_config)
{
    int hp;
    spoold *s = start(&hp, NULL, NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < 3; i++) {
        dead_job(c, "emails", "boom");
        dead_job(c, "paced", "boom");
    }
    resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    char cookie[128], token[80];
    session(hp, NULL, cookie, sizeof cookie, token, sizeof token);

    struct http_res r = act(hp, cookie, token, "queue-retry-dead", "queue=emails");
    cr_assert_eq(r.code, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"ok\":true,\"result\":3}\n");
    res_free(&r);
    cr_assert_eq(stat_of(c, "emails", "dead"), 0);
    cr_assert_eq(stat_of(c, "emails", "ready"), 4);

    /* With a pace: one every hour, the first now, the others delayed. */
    expect_act(hp, cookie, token, "queue-retry-dead", "queue=paced&rate=fast", 400, "rate 'fast' is not a pace N/period");
    expect_act(hp, cookie, token, "queue-retry-dead", "queue=paced&rate=0", 400, NULL);
    cr_assert_eq(stat_of(c, "paced", "dead"), 3, "a refused redrive changed the queue");
    expect_act(hp, cookie, token, "queue-retry-dead", "queue=paced&rate=1%2F1h", 200, "{\"ok\":true,\"result\":3}");
    cr_assert_eq(stat_of(c, "paced", "ready"), 1);
    cr_assert_eq(stat_of(c, "paced", "delayed"), 2);

    r = act(hp, cookie, token, "queue-purge", "queue=emails&confirm=email");
    cr_assert_eq(r.code, 400, "a wrong confirmation: %d", r.code);
    res_free(&r);
    r = act(hp, cookie, token, "queue-purge", "queue=emails");
    cr_assert_eq(r.code, 400, "no confirmation: %d", r.code);
    res_free(&r);
    cr_assert_eq(stat_of(c, "emails", "ready"), 4, "a refused purge deleted jobs");
    r = act(hp, cookie, token, "queue-purge", "queue=emails&confirm=emails&state=ready");
    cr_assert_eq(r.code, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"ok\":true,\"result\":4}\n");
    res_free(&r);

    r = act(hp, cookie, token, "queue-config", "queue=emails&set.retries=3&set.lease=5000");
    cr_assert_eq(r.code, 200, "%s", r.body);
    res_free(&r);
    expect_bulk(CMD(c, "QUEUE.CONFIG", "emails", "GET", "retries"), "3");
    expect_bulk(CMD(c, "QUEUE.CONFIG", "emails", "GET", "lease"), "5000");
    r = act(hp, cookie, token, "queue-config", "queue=emails&set.retries=lots");
    cr_assert_eq(r.code, 409, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "nothing was changed"), "%s", r.body);
    res_free(&r);
    r = act(hp, cookie, token, "queue-config", "queue=emails&set.colour=blue");
    cr_assert_eq(r.code, 400, "%s", r.body);
    res_free(&r);
    expect_bulk(CMD(c, "QUEUE.CONFIG", "emails", "GET", "retries"), "3");

    struct http_res g = http(hp, "GET", "/api/queue?queue=emails", NULL, NULL);
    cr_assert_eq(g.code, 200, "%s", g.body);
    cJSON *doc = json_of(&g);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "config"), "retries")->valuestring, "3");
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(doc, "settings")));
    cJSON_Delete(doc);
    res_free(&g);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, job_pages_follow_the_peek_cursor_and_filter_dead_by_error)
{
    int hp;
    spoold *s = start(&hp, NULL, NULL);
    cli *c = cli_connect(s->port);
    jid ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = dead_job(c, "q", i % 2 ? "timeout talking to smtp" : "550 no such user");
    /* Pages of 2: 2, 2, 1, in the order the jobs died. */
    char after[32] = "", path[256];
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        snprintf(path, sizeof path, "/api/jobs?queue=q&state=dead&count=2%s%s", after[0] ? "&after=" : "", after);
        struct http_res r = http(hp, "GET", path, NULL, NULL);
        cr_assert_eq(r.code, 200, "%s", r.body);
        cJSON *doc = json_of(&r), *jobs = cJSON_GetObjectItem(doc, "jobs"), *j;
        cJSON_ArrayForEach(j, jobs) {
            cr_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, ids[seen].s, "page %d", page);
            cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "payload_bytes")));
            seen++;
        }
        cJSON *next = cJSON_GetObjectItem(doc, "next");
        if (page < 2)
            snprintf(after, sizeof after, "%s", next->valuestring);
        else
            cr_assert(cJSON_IsNull(next), "the last page has a next cursor: %s", r.body);
        cJSON_Delete(doc);
        res_free(&r);
    }
    cr_assert_eq(seen, 5);

    struct http_res r = http(hp, "GET", "/api/jobs?queue=q&state=dead&error=TIMEOUT", NULL, NULL);
    cr_assert_eq(r.code, 200);
    cJSON *doc = json_of(&r), *jobs = cJSON_GetObjectItem(doc, "jobs");
    cr_assert_eq(cJSON_GetArraySize(jobs), 2, "%s", r.body);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "id")->valuestring, ids[1].s);
    cJSON_Delete(doc);
    res_free(&r);

    r = http(hp, "GET", "/api/dead-groups?queue=q", NULL, NULL);
    cr_assert_eq(r.code, 200);
    doc = json_of(&r);
    cJSON *groups = cJSON_GetObjectItem(doc, "groups");
    cr_assert_eq(cJSON_GetArraySize(groups), 2, "%s", r.body);
    cJSON *first = cJSON_GetArrayItem(groups, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "error")->valuestring, "550 no such user");
    cr_assert_eq(jint(first, "count"), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "latest_id")->valuestring, ids[4].s);
    cJSON_Delete(doc);
    res_free(&r);

    const char *bad[] = { "/api/jobs?queue=q&state=lost", "/api/jobs?state=dead", "/api/jobs?queue=q&count=0",
                          "/api/jobs?queue=q&after=xyz", "/api/job?id=123" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(hp, "GET", bad[i], NULL, NULL);
        cr_assert_eq(r.code, 400, "%s: %d %s", bad[i], r.code, r.body);
        cJSON_Delete(json_of(&r));
        res_free(&r);
    }
    /* A cursor job that left the state: the shard's NOJOB, as a 409. */
    resp_val_free(CMD(c, "JOB.RETRY", ids[0].s));
    snprintf(path, sizeof path, "/api/jobs?queue=q&state=dead&after=%s", ids[0].s);
    r = http(hp, "GET", path, NULL, NULL);
    cr_assert_eq(r.code, 409, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "NOJOB"), "%s", r.body);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, throughput_rings_fill_from_the_queue_totals)
{
    int hp;
    spoold *s = start(&hp, NULL, NULL);
    cli *c = cli_connect(s->port);
    dead_job(c, "emails", "x");
    for (int i = 0; i < 7; i++)
        resp_val_free(CMD(c, "LPUSH", "emails", "{}"));
    for (int i = 0; i < 3; i++)
        resp_val_free(CMD(c, "RPOP", "emails"));
    long long pushed = 0, acked = 0, failed = 0;
    bool ok = wait_until(({
        struct http_res r = http(hp, "GET", "/api/throughput?queue=emails", NULL, NULL);
        cJSON *doc = cJSON_Parse(r.body), *v;
        pushed = acked = failed = 0;
        if (doc && cJSON_IsTrue(cJSON_GetObjectItem(doc, "tracked"))) {
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(doc, "pushed")) pushed += v->valueint;
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(doc, "acked")) acked += v->valueint;
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(doc, "failed")) failed += v->valueint;
        }
        cJSON_Delete(doc);
        res_free(&r);
        pushed == 8 && acked == 3 && failed == 1;
    }), 5000);
    cr_assert(ok, "throughput of emails: pushed %lld acked %lld failed %lld, expected 8, 3, 1", pushed, acked, failed);
    struct http_res r = http(hp, "GET", "/api/throughput?queue=never-used", NULL, NULL);
    cr_assert_not_null(strstr(r.body, "\"tracked\":false"), "%s", r.body);
    res_free(&r);
    r = http(hp, "GET", "/api/throughput?since=abc", NULL, NULL);
    cr_assert_eq(r.code, 400);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, serves_the_page_with_its_files_and_headers)
{
    int hp;
    spoold *s = start(&hp, "--loglevel", "info");
    struct http_res r = http(hp, "GET", "/", NULL, NULL);
    cr_assert_eq(r.code, 200);
    cr_assert_not_null(strstr(header(&r, "Content-Type"), "text/html"));
    cr_assert_not_null(header(&r, "Content-Security-Policy"));
    cr_assert_not_null(strstr(r.body, "<script src=\"/app.js\""), "%s", r.body);
    cr_assert_not_null(header(&r, "Set-Cookie"), "the page starts a session");
    char etag[128], extra[200];
    snprintf(etag, sizeof etag, "%s", header(&r, "ETag"));
    res_free(&r);
    snprintf(extra, sizeof extra, "If-None-Match: %s\r\n", etag);
    r = http(hp, "GET", "/", extra, NULL);
    cr_assert_eq(r.code, 304, "an unchanged page is not sent again");
    res_free(&r);
    const char *files[] = { "/app.js", "/app.css", "/favicon.svg" };
    for (size_t i = 0; i < 3; i++) {
        r = http(hp, "GET", files[i], NULL, NULL);
        cr_assert_eq(r.code, 200, "%s", files[i]);
        cr_assert_gt(strlen(r.body), 100, "%s", files[i]);
        res_free(&r);
    }
    r = http(hp, "GET", "/api/server", NULL, NULL);
    cr_assert_eq(r.code, 200);
    cJSON *doc = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "fsync")->valuestring, "always");
    cr_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "disk"), "total_bytes")->valuedouble > 0);
    cJSON_Delete(doc);
    res_free(&r);
    r = http(hp, "GET", "/api/nothing", NULL, NULL);
    cr_assert_eq(r.code, 404);
    res_free(&r);
    r = http(hp, "GET", "/api/queues", NULL, NULL); /* http.c's, unchanged */
    cr_assert_eq(r.code, 200);
    res_free(&r);
    char *log = spoold_log(s);
    char want[64];
    snprintf(want, sizeof want, "dashboard on http://127.0.0.1:%d/", hp);
    cr_assert_not_null(strstr(log, want), "the start-up log does not say %s:\n%s", want, log);
    free(log);
    spoold_stop(s);
}

/* An address of this machine other than loopback, or false. */
static bool other_address(char *out, size_t cap)
{
    struct ifaddrs *all, *a;
    bool found = false;
    if (getifaddrs(&all) < 0)
        return false;
    for (a = all; a && !found; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET)
            continue;
        struct in_addr in = ((struct sockaddr_in *)a->ifa_addr)->sin_addr;
        if ((ntohl(in.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &in, out, (socklen_t)cap);
        found = true;
    }
    freeifaddrs(all);
    return found;
}

Test(dashboard, without_requirepass_only_loopback_is_served)
{
    char ip[64];
    if (!other_address(ip, sizeof ip))
        cr_skip_test("this machine has no address but loopback");
    int hp;
    spoold *s = start(&hp, "--bind", "0.0.0.0");
    struct http_res r = http_at(ip, hp, "GET", "/api/overview", NULL, NULL);
    cr_assert_eq(r.code, 403, "GET from %s: %d %s", ip, r.code, r.body);
    cr_assert_not_null(strstr(r.body, "requirepass"), "%s", r.body);
    res_free(&r);
    r = http_at(ip, hp, "GET", "/metrics", NULL, NULL);
    cr_assert_eq(r.code, 200, "/metrics is not the dashboard's");
    res_free(&r);
    r = http_at(ip, hp, "GET", "/api/queues", NULL, NULL);
    cr_assert_eq(r.code, 200, "/metrics is not the dashboard's");
    res_free(&r);
    r = http(hp, "GET", "/api/overview", NULL, NULL);
    cr_assert_eq(r.code, 200);
    res_free(&r);
    spoold_stop(s);
}

static long long rss_of(int hp)
{
    struct http_res r = http(hp, "GET", "/metrics", NULL, NULL);
    const char *p = strstr(r.body, "\nspool_memory_rss_bytes ");
    cr_assert_not_null(p, "%s", r.body);
    long long v = atoll(p + 24);
    res_free(&r);
    return v;
}

/* Looking at dead jobs (the dashboard pages through them, QUEUE.PEEK and
 * JOB.GET) read their payloads back from the journal and kept them in
 * memory for good: a dead job never finishes. */
Test(dashboard, looking_at_dead_jobs_does_not_keep_their_payloads_in_memory)
{
    /* Blocks of 512 KiB always come from mmap and go back at free, so RSS
     * shows what is kept (glibc otherwise raises its threshold and keeps
     * freed blocks). A sanitizer's allocator keeps freed memory on purpose:
     * there RSS says nothing. */
    setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072", 1);
    if (spoold_sanitized())
        cr_skip_test("spoold runs under a sanitizer's allocator: RSS does not show what it keeps");
    int hp;
    spoold *s = start(&hp, "--shards", "1");
    cli *c = cli_connect(s->port);
    size_t big = 512 * 1024;
    char *payload = malloc(big + 1);
    memset(payload, 'x', big);
    payload[0] = '"';
    payload[big - 1] = '"';
    payload[big] = '\0';
    jid ids[40];
    for (int i = 0; i < 40; i++) {
        ids[i] = PUSHO(c, "heavy", payload, "RETRIES", "0");
        resp_val_free(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "heavy"));
        expect_word(CMD(c, "JOB.NACK", ids[i].s, "DEAD"), "dead");
    }
    free(payload);
    long long before = rss_of(hp);
    for (int round = 0; round < 2; round++) {
        resp_val *v = CMD(c, "QUEUE.PEEK", "heavy", "STATE", "dead", "COUNT", "40");
        cr_assert_eq(v->n, 40);
        cr_assert_eq(resp_field(v->elem[0], "payload")->len, big, "the payload is still shown");
        resp_val_free(v);
        for (int i = 0; i < 40; i++)
            resp_val_free(CMD(c, "JOB.GET", ids[i].s));
    }
    struct http_res r = http(hp, "GET", "/api/dead-groups?queue=heavy", NULL, NULL);
    cr_assert_eq(r.code, 200);
    res_free(&r);
    long long after = rss_of(hp);
    cr_assert_lt(after - before, 8LL << 20, "RSS grew by %lld bytes after reading 20 MiB of dead payloads",
                 after - before);
    cli_close(c);
    spoold_stop(s);
}

/* Without a password, loopback is trusted only under a loopback name: a
 * site whose name resolves to 127.0.0.1 (DNS rebinding) sends its own. */
Test(dashboard, without_requirepass_the_host_must_be_a_loopback_name)
{
    int hp;
    spoold *s = start(&hp, NULL, NULL);
    const char *bad[] = { "evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example",
                          "127.0.0.1evil", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)hp),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        char req[256], buf[256] = "";
        int n = snprintf(req, sizeof req, "GET /api/session HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", bad[i]);
        cr_assert_eq(write(fd, req, (size_t)n), n);
        struct timeval tv = { 5, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        cr_assert_gt(read(fd, buf, sizeof buf - 1), 0);
        close(fd);
        int code = 0;
        sscanf(buf, "HTTP/1.%*d %d", &code);
        cr_assert_eq(code, 403, "Host '%s': %d", bad[i], code);
    }
    const char *good[] = { "localhost", "LOCALHOST:1234", "127.0.0.1", "127.1.2.3:80", "[::1]:7380" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "X-Ignored: %zu\r\n", i);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)hp),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        char req[256], buf[256] = "";
        int n = snprintf(req, sizeof req, "GET /api/session HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n", good[i],
                         extra);
        cr_assert_eq(write(fd, req, (size_t)n), n);
        struct timeval tv = { 5, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        cr_assert_gt(read(fd, buf, sizeof buf - 1), 0);
        close(fd);
        int code = 0;
        sscanf(buf, "HTTP/1.%*d %d", &code);
        cr_assert_eq(code, 200, "Host '%s': %d", good[i], code);
    }
    spoold_stop(s);
}

/* The sampler asks every shard for its totals each second; those
 * read-only turns must not keep the idle WAL checkpoint from running (it
 * waited for a second without any turn, so it never ran). */
Test(dashboard, the_sampler_does_not_hold_off_the_idle_checkpoint)
{
    int hp;
    spoold *s = start(&hp, "--shards", "1");
    cli *c = cli_connect(s->port);
    for (int i = 0; i < 50; i++)
        resp_val_free(CMD(c, "LPUSH", "emails", "{\"n\":1}"));
    char wal[400];
    snprintf(wal, sizeof wal, "%s/data/shard-0.db-wal", s->dir);
    struct stat st;
    cr_assert_eq(stat(wal, &st), 0);
    cr_assert_gt(st.st_size, 0, "the pushes are in the WAL");
    /* Let the sampler run meanwhile: its rounds show in the throughput. */
    bool folded = wait_until((stat(wal, &st) == 0 && st.st_size == 0), 6000);
    cr_assert(folded, "the WAL still holds %lld bytes after 6 s without writes", (long long)st.st_size);
    struct http_res r = http(hp, "GET", "/api/throughput", NULL, NULL);
    cJSON *doc = json_of(&r);
    cr_assert_gt(jint(doc, "end"), 0, "the sampler runs: %s", r.body);
    cJSON_Delete(doc);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

/* Guessing the password over HTTP is no faster than with AUTH: a wrong
 * one is answered 100 ms late, and all of them together one per 10 ms. */
Test(dashboard, wrong_passwords_are_answered_late_and_one_at_a_time)
{
    int hp;
    spoold *s = start(&hp, "--requirepass", "hunter2");
    enum { N = 20 };
    int fds[N];
    long long t0 = now_ms();
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)hp),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        struct timeval tv = { 10, 0 };
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[256];
        int n = snprintf(req, sizeof req, "GET /api/session HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                         "Authorization: Basic ZGVmYXVsdDp3cm9uZw==\r\n\r\n", hp); /* default:wrong */
        cr_assert_eq(write(fds[i], req, (size_t)n), n);
    }
    long long first = 0;
    for (int i = 0; i < N; i++) {
        char buf[256] = "";
        cr_assert_gt(read(fds[i], buf, sizeof buf - 1), 0, "no answer to guess %d", i);
        close(fds[i]);
        int code = 0;
        sscanf(buf, "HTTP/1.%*d %d", &code);
        cr_assert_eq(code, 401, "guess %d: %d", i, code);
        if (i == 0)
            first = now_ms() - t0;
    }
    long long all = now_ms() - t0;
    cr_assert_geq(first, 95, "the first wrong password was answered after %lld ms", first);
    cr_assert_geq(all, 95 + (N - 1) * 10 - 5, "%d wrong passwords were answered within %lld ms", N, all);
    struct http_res r = http(hp, "GET", "/api/session", "Authorization: Basic ZGVmYXVsdDpodW50ZXIy\r\n", NULL);
    cr_assert_eq(r.code, 200, "the right password still opens it");
    res_free(&r);
    spoold_stop(s);
}

/* ------------------------------------------------ ACL users, per action */

#define VIEWER "Authorization: Basic dmlld2VyOmxvb2s=\r\n"    /* viewer:look */
#define MAILOPS "Authorization: Basic bWFpbG9wczptYWls\r\n"   /* mailops:mail */

/* The session of an ACL user: its auth line and cookie in ck, token. */
static void user_session(int hp, const char *auth, char *ck, size_t cap, char *token, size_t tc)
{
    char cookie[128];
    session(hp, auth, cookie, sizeof cookie, token, tc);
    snprintf(ck, cap, "%s%s", auth, cookie);
}

Test(dashboard, a_read_only_user_may_not_act_and_a_forged_post_is_refused)
{
    int hp;
    spoold *s = start(&hp, "--requirepass", "pw");
    cli *c = cli_connect(s->port);
    expect_word(CMD(c, "AUTH", "pw"), "OK");
    expect_word(CMD(c, "ACL", "SETUSER", "viewer", "on", ">look", "+@read", "~*"), "OK");
    jid dead = dead_job(c, "emails", "550 no such user");
    struct http_res r = http(hp, "GET", "/api/session", VIEWER, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    cJSON *doc = json_of(&r), *can = cJSON_GetObjectItem(doc, "can"), *k;
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(doc, "can_act")), "%s", r.body);
    cr_assert_eq(cJSON_GetArraySize(can), 9, "%s", r.body);
    cJSON_ArrayForEach(k, can)
        cr_assert(cJSON_IsFalse(k), "the viewer may %s: %s", k->string, r.body);
    cJSON_Delete(doc);
    res_free(&r);
    r = http(hp, "GET", "/api/queue?queue=emails", VIEWER, NULL); /* it may look */
    cr_assert_eq(r.code, 200, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"can\":{\"queue-pause\":false,"), "%s", r.body);
    res_free(&r);

    char ck[256], token[80], form[64];
    user_session(hp, VIEWER, ck, sizeof ck, token, sizeof token);
    expect_act(hp, ck, token, "queue-pause", "queue=emails", 403,
               "user 'viewer' lacks the permission to run QUEUE.PAUSE on queue 'emails' "
               "(it needs +queue.pause, or one of @write @admin");
    snprintf(form, sizeof form, "id=%s", dead.s);
    expect_act(hp, ck, token, "job-retry", form, 403, "JOB.RETRY");
    expect_act(hp, ck, token, "sched-pause", "name=nightly", 403, "SCHED.PAUSE");
    cr_assert_eq(stat_of(c, "emails", "paused"), 0, "a refused POST paused the queue");
    cr_assert_eq(stat_of(c, "emails", "dead"), 1, "a refused POST retried the job");
    char *log = spoold_log(s);
    cr_assert_not_null(strstr(log, "dashboard: user 'viewer' from 127.0.0.1 refused: user 'viewer' lacks the "
                                   "permission to run QUEUE.PAUSE"), "%s", log);
    free(log);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, a_user_acts_only_on_the_queues_its_keys_allow)
{
    int hp;
    spoold *s = start(&hp, "--requirepass", "pw");
    cli *c = cli_connect(s->port);
    expect_word(CMD(c, "AUTH", "pw"), "OK");
    expect_word(CMD(c, "ACL", "SETUSER", "mailops", "on", ">mail", "+@all", "~emails*"), "OK");
    jid mine = dead_job(c, "emails", "boom"), theirs = dead_job(c, "reports", "boom");
    struct http_res r = http(hp, "GET", "/api/queue?queue=reports", MAILOPS, NULL);
    cr_assert_not_null(strstr(r.body, "\"can\":{\"queue-pause\":false,"), "%s", r.body);
    res_free(&r);
    r = http(hp, "GET", "/api/queue?queue=emails", MAILOPS, NULL);
    cr_assert_not_null(strstr(r.body, "\"can\":{\"queue-pause\":true,"), "%s", r.body);
    res_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/api/job?id=%s", theirs.s);
    r = http(hp, "GET", path, MAILOPS, NULL);
    cr_assert_not_null(strstr(r.body, "\"can\":{\"job-retry\":false,\"job-delete\":false}"), "%s", r.body);
    res_free(&r);

    char ck[256], token[80], form[64];
    user_session(hp, MAILOPS, ck, sizeof ck, token, sizeof token);
    expect_act(hp, ck, token, "queue-pause", "queue=reports", 403, "user 'mailops' may not use queue 'reports'");
    /* A job action looks up the job's queue first. */
    snprintf(form, sizeof form, "id=%s", theirs.s);
    expect_act(hp, ck, token, "job-delete", form, 403, "may not use queue 'reports'");
    cr_assert_eq(stat_of(c, "reports", "dead"), 1, "a refused delete deleted the job");
    snprintf(form, sizeof form, "id=%s", mine.s);
    expect_act(hp, ck, token, "job-retry", form, 200, NULL);
    expect_act(hp, ck, token, "job-delete", "id=0000000000000001", 404, "no job 0000000000000001");
    cr_assert_eq(stat_of(c, "emails", "ready"), 1);
    char *log = spoold_log(s);
    cr_assert_not_null(strstr(log, "dashboard: user 'mailops' from 127.0.0.1 refused: user 'mailops' may not use "
                                   "queue 'reports'"), "%s", log);
    free(log);
    cli_close(c);
    spoold_stop(s);
}

/* --------------------------------------------------- workers, schedules */

Test(dashboard, workers_show_who_holds_what_and_who_waits)
{
    int hp;
    spoold *s = start(&hp, "--shards", "3");
    cli *c = cli_connect(s->port), *w = cli_connect(s->port);
    expect_word(CMD(w, "CLIENT", "SETNAME", "resizer-2"), "OK");
    jid id = PUSHO(c, "thumbs", "{}", "PRI", "0");
    resp_val_free(CMD(w, "JOB.RESERVE", "LEASE", "60000", "NOWAIT", "FROM", "thumbs"));
    resp_val_free(CMD(c, "LPUSH", "idle", "{}")); /* a queue nobody works on */
    cli *waiter = cli_connect(s->port);
    expect_word(CMD(waiter, "CLIENT", "SETNAME", "poller-1"), "OK");
    cli_send(waiter, "JOB.RESERVE", "TIMEOUT", "30000", "FROM", "waited-on", (const char *)NULL);
    cr_assert(wait_until(stat_of(c, "waited-on", "waiters") == 1, 5000), "the waiter never waited");
    struct http_res r = http(hp, "GET", "/api/workers", NULL, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    cJSON *doc = json_of(&r), *qs = cJSON_GetObjectItem(doc, "queues");
    cr_assert_eq(cJSON_GetArraySize(qs), 2, "thumbs and waited-on have workers: %s", r.body);
    cJSON *wq = cJSON_GetArrayItem(qs, 1), *ww = cJSON_GetArrayItem(cJSON_GetObjectItem(wq, "workers"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(wq, "name")->valuestring, "waited-on", "%s", r.body);
    cr_assert_str_eq(cJSON_GetObjectItem(ww, "name")->valuestring, "poller-1", "%s", r.body);
    cr_assert_eq(jint(ww, "waiting"), 1, "%s", r.body);
    cJSON *q = cJSON_GetArrayItem(qs, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(q, "name")->valuestring, "thumbs");
    cr_assert_eq(jint(q, "reserved"), 1);
    cJSON *wk = cJSON_GetArrayItem(cJSON_GetObjectItem(q, "workers"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(wk, "name")->valuestring, "resizer-2", "%s", r.body);
    cJSON *job = cJSON_GetArrayItem(cJSON_GetObjectItem(wk, "jobs"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(job, "id")->valuestring, id.s);
    long long lease = jint(job, "lease_until") - jint(wk, "last_active");
    cr_assert(lease > 59000 && lease <= 60000, "the lease runs 60 s from the reserve, not %lld ms", lease);
    cJSON_Delete(doc);
    res_free(&r);
    cli_close(waiter);
    cli_close(w);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, schedules_listed_paused_and_resumed)
{
    int hp;
    spoold *s = start(&hp, "--shards", "3");
    cli *c = cli_connect(s->port);
    const char *names[] = { "b-hourly", "a-nightly", "c-every" }, *queues[] = { "reports", "emails", "pings" };
    const char *specs[] = { "@hourly", "0 3 * * *", "@every 15m" };
    for (int i = 0; i < 3; i++)
        expect_word(CMD(c, "SCHED.SET", names[i], queues[i], specs[i], "{}"), "OK");
    struct http_res r = http(hp, "GET", "/api/schedules", NULL, NULL);
    cr_assert_eq(r.code, 200, "%s", r.body);
    cJSON *doc = json_of(&r), *list = cJSON_GetObjectItem(doc, "schedules");
    cr_assert_eq(cJSON_GetArraySize(list), 3, "%s", r.body);
    const char *sorted[] = { "a-nightly", "b-hourly", "c-every" };
    for (int i = 0; i < 3; i++) {
        cJSON *sc = cJSON_GetArrayItem(list, i);
        cr_assert_str_eq(cJSON_GetObjectItem(sc, "name")->valuestring, sorted[i], "%s", r.body);
        cr_assert(jint(sc, "next_at") > jint(doc, "time"), "%s", r.body);
    }
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "spec")->valuestring, "0 3 * * *");
    cJSON_Delete(doc);
    res_free(&r);
    char cookie[128], token[80];
    session(hp, NULL, cookie, sizeof cookie, token, sizeof token);
    expect_act(hp, cookie, token, "sched-pause", "name=b-hourly", 200, NULL);
    resp_val *v = CMD(c, "SCHED.GET", "b-hourly");
    cr_assert_eq(resp_val_get(v, "paused")->integer, 1, "the pause did not reach the schedule");
    resp_val_free(v);
    expect_act(hp, cookie, token, "sched-resume", "name=b-hourly", 200, NULL);
    v = CMD(c, "SCHED.GET", "b-hourly");
    cr_assert_eq(resp_val_get(v, "paused")->integer, 0, "the resume did not reach the schedule");
    resp_val_free(v);
    expect_act(hp, cookie, token, "sched-pause", "name=nope", 404, "no schedule 'nope'");
    resp_val_free(CMD(c, "SCHED.DEL", "c-every"));
    r = http(hp, "GET", "/api/schedules", NULL, NULL);
    cr_assert_null(strstr(r.body, "c-every"), "%s", r.body);
    res_free(&r);
    cli_close(c);
    spoold_stop(s);
}

/* ------------------------------------------------------- live streams */

/* Opens GET /api/events and reads its head; *code: the status. rcvbuf:
 * the socket's receive buffer (0: the system's). */
static int stream_open_buf(int port, int *code, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    char head[2048];
    size_t len = 0;
    while (len + 1 < sizeof head && !memmem(head, len, "\r\n\r\n", 4)) {
        ssize_t got = read(fd, head + len, 1);
        cr_assert(got == 1, "the stream's head ended early");
        len++;
    }
    head[len] = '\0';
    *code = 0;
    sscanf(head, "HTTP/1.%*d %d", code);
    if (*code == 200)
        cr_assert_not_null(strstr(head, "text/event-stream"), "%s", head);
    return fd;
}

static int stream_open(int port, int *code)
{
    return stream_open_buf(port, code, 0);
}

/* Reads the stream until its text has want (and, when also is set, that
 * too, after want); false when 5 s pass without it. */
static bool stream_until(int fd, const char *want, const char *also)
{
    static char buf[4 << 20];
    size_t len = 0, keep = 1 << 20;
    for (;;) {
        if (len + 1 == sizeof buf) { /* keep the last MiB (longer than any one event here) */
            memmove(buf, buf + len - keep, keep);
            len = keep;
        }
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got <= 0)
            return false;
        len += (size_t)got;
        buf[len] = '\0';
        const char *p = strstr(buf, want);
        if (p && (!also || strstr(p, also)))
            return true;
    }
}

/* A figure of /api/server's "live" member. */
static long long live_figure(int hp, const char *name)
{
    struct http_res r = http(hp, "GET", "/api/server", NULL, NULL);
    cJSON *doc = json_of(&r);
    long long n = jint(cJSON_GetObjectItem(doc, "live"), name);
    cJSON_Delete(doc);
    res_free(&r);
    return n;
}

Test(dashboard, live_events_follow_the_counts_and_are_capped)
{
    int hp, code;
    spoold *s = start(&hp, NULL, NULL);
    cli *c = cli_connect(s->port);
    resp_val_free(CMD(c, "LPUSH", "live-q", "{}"));
    int fd = stream_open(hp, &code);
    cr_assert_eq(code, 200);
    cr_assert(stream_until(fd, "event: overview\ndata: {\"time\":", "\"name\":\"live-q\",\"ready\":1,"),
              "no overview event with live-q's one job");
    resp_val_free(CMD(c, "LPUSH", "live-q", "{}"));
    cr_assert(stream_until(fd, "\"name\":\"live-q\",\"ready\":2,", NULL), "the stream did not follow the push");
    /* The cap: one more than it gets 503 and a message. */
    int fds[64], n = 1;
    fds[0] = fd;
    for (; n < 64; n++) {
        fds[n] = stream_open(hp, &code);
        if (code != 200)
            break;
    }
    cr_assert_eq(code, 503, "no cap after %d streams", n);
    cr_assert_eq(n, 16, "the cap is 16 streams, the refusal came after %d", n);
    close(fds[n]);
    struct http_res r = http(hp, "GET", "/api/events", NULL, NULL);
    cr_assert_eq(r.code, 503);
    cr_assert_not_null(strstr(r.body, "too many live dashboard streams are open (16, the limit)"), "%s", r.body);
    res_free(&r);
    /* A client that goes frees its stream. */
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    cr_assert(wait_until(live_figure(hp, "streams") == 12, 5000), "closed streams still counted: %lld", live_figure(hp, "streams"));
    fd = stream_open(hp, &code);
    cr_assert_eq(code, 200, "a freed place was not reused");
    close(fd);
    for (int i = 4; i < 16; i++)
        close(fds[i]);
    cr_assert(wait_until(live_figure(hp, "streams") == 0, 5000), "streams left: %lld", live_figure(hp, "streams"));
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, a_stream_whose_client_does_not_read_is_bounded, .timeout = 120)
{
    int hp, code;
    spoold *s = start(&hp, NULL, NULL);
    cli *c = cli_connect(s->port);
    char name[32];
    for (int i = 0; i < 4000; i++) { /* events of about 1.7 MB each (a row is ~430 bytes) */
        snprintf(name, sizeof name, "backlog-%04d", i);
        resp_val_free(CMD(c, "LPUSH", name, "{}"));
    }
    int fd = stream_open_buf(hp, &code, 4096);
    cr_assert_eq(code, 200);
    /* It reads nothing: once the kernel's buffers are full, at most 1 MiB
     * waits in spoold for it and the events past that are left out. */
    cr_assert(wait_until(live_figure(hp, "skipped_events") > 0, 60000), "no event was left out for a client that does not read");
    resp_val_free(CMD(c, "LPUSH", "after-the-gap", "{}"));
    cr_assert(stream_until(fd, "\"name\":\"after-the-gap\",\"ready\":1,", NULL),
              "the stream did not catch up with a whole event once its client read again");
    close(fd);
    cli_close(c);
    spoold_stop(s);
}

Test(dashboard, spoold_stops_cleanly_with_live_streams_open)
{
    int hp, code;
    spoold *s = start(&hp, NULL, NULL);
    int fd = stream_open(hp, &code);
    cr_assert_eq(code, 200);
    cr_assert(stream_until(fd, "event: overview", NULL), "no first event");
    spoold_stop(s); /* requires exit 0 */
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0)
        ;
    cr_assert_eq(got, 0, "the stream was not ended (read: %zd)", got);
    close(fd);
}
