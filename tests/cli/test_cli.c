/*
 * test_cli.c - the built `spool` binary (cli/) against a real spoold
 * started per test by tests/support/harness.h on an ephemeral loopback
 * port in a temporary directory.
 *
 * Each test runs `spool` as a child process (path from $SPOOL_CLI, else
 * the compile-time SPOOL_CLI_PATH) with stdin from a pipe or /dev/null (so
 * never a terminal), collects stdout and stderr separately under a
 * deadline, and checks the exit status, key content of the human output,
 * and the --json output parsed with cJSON. Jobs are reserved, nacked and
 * acked over raw RESP with the harness client. `tail` runs as a long-lived
 * child whose stdout is read line by line with a deadline; the test waits
 * for its subscription to show in PUBSUB NUMSUB/NUMPAT before acting.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 20000
#define EVENT_WAIT_MS 10000
#define MAX_ARGS 32

static spoold *srv;
static cli *c;

static void start(void)
{
    srv = spoold_start(NULL);
    c = cli_connect(srv->port);
}

static void stop(void)
{
    cli_close(c);
    c = NULL;
    spoold_stop(srv);
    srv = NULL;
}

TestSuite(cli, .init = start, .fini = stop, .timeout = 120);

/* ======================================================= running spool */

static const char *spool_path(void)
{
    const char *p = getenv("SPOOL_CLI");
    return p && *p ? p : SPOOL_CLI_PATH;
}

static char url_buf[64];

static const char *url(void)
{
    snprintf(url_buf, sizeof url_buf, "spool://127.0.0.1:%d", srv->port);
    return url_buf;
}

typedef struct run {
    int status; /* exit code, or -1 when killed / not exited */
    char *out, *err;
} run;

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

/* Reads whatever is available on fd into b: false at EOF. */
static bool pump(int fd, resp_buf *b)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0)
        resp_buf_append(b, buf, (size_t)n);
    return n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN));
}

/* Child side: stdin from in_fd (or /dev/null), stdout/stderr to pipes. */
static void exec_child(char **argv, int in_fd, int out_fd, int err_fd)
{
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(in_fd >= 0 ? in_fd : null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(argv[0], argv);
    _exit(127);
}

static pid_t spawn(char **argv, const char *input, int *out_fd, int *err_fd)
{
    int in[2] = { -1, -1 }, o[2], e[2];
    cr_assert(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0);
    if (input) {
        /* The whole input goes into the pipe before the child exists, so no
         * write can meet a child that already exited (EPIPE). */
        size_t len = strlen(input);
        cr_assert(len < 4096, "stdin input of %zu bytes does not fit the pipe at once", len);
        cr_assert(pipe2(in, O_CLOEXEC) == 0);
        cr_assert(write(in[1], input, len) == (ssize_t)len);
        close(in[1]);
    }
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        exec_child(argv, in[0], o[1], e[1]);
    close(o[1]);
    close(e[1]);
    if (input)
        close(in[0]);
    *out_fd = o[0];
    *err_fd = e[0];
    return pid;
}

/* Collects both pipes to EOF and the exit status, within the deadline. */
static void collect(run *r, pid_t pid, int out_fd, int err_fd, long long deadline)
{
    resp_buf ob, eb;
    resp_buf_init(&ob);
    resp_buf_init(&eb);
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && now_ms() < deadline) {
        struct pollfd p[2] = { { .fd = out_open ? out_fd : -1, .events = POLLIN },
                               { .fd = err_open ? err_fd : -1, .events = POLLIN } };
        if (poll(p, 2, 100) <= 0)
            continue;
        if (p[0].revents)
            out_open = pump(out_fd, &ob);
        if (p[1].revents)
            err_open = pump(err_fd, &eb);
    }
    close(out_fd);
    close(err_fd);
    resp_buf_append(&ob, "", 1);
    resp_buf_append(&eb, "", 1);
    size_t n;
    r->out = resp_buf_take(&ob, &n);
    r->err = resp_buf_take(&eb, &n);
    int st = 0;
    bool done = wait_until(waitpid(pid, &st, WNOHANG) == pid, (int)(deadline - now_ms()) + 100);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    r->status = done && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs spool with the NULL-terminated arguments (plus --url of the test's
 * server when with_url), stdin from input (NULL: /dev/null). */
static run spool_v(bool with_url, const char *input, const char *arg0, va_list ap)
{
    char *argv[MAX_ARGS + 4];
    int n = 0;
    argv[n++] = (char *)spool_path();
    if (with_url) {
        argv[n++] = "--url";
        argv[n++] = (char *)url();
    }
    for (const char *a = arg0; a && n < MAX_ARGS; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    argv[n] = NULL;
    int out_fd, err_fd;
    pid_t pid = spawn(argv, input, &out_fd, &err_fd);
    run r;
    collect(&r, pid, out_fd, err_fd, now_ms() + RUN_TIMEOUT_MS);
    return r;
}

static run spool(const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    run r = spool_v(true, NULL, arg0, ap);
    va_end(ap);
    return r;
}

static run spool_in(const char *input, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    run r = spool_v(true, input, arg0, ap);
    va_end(ap);
    return r;
}

static run spool_nourl(const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    run r = spool_v(false, NULL, arg0, ap);
    va_end(ap);
    return r;
}

#define expect_status(r, code)                                                              \
    cr_assert_eq((r).status, (code), "exit %d, expected %d\nstdout: %s\nstderr: %s", (r).status, \
                 (code), (r).out, (r).err)
#define expect_has(s, part) cr_assert(strstr((s), (part)) != NULL, "expected \"%s\" in:\n%s", (part), (s))

/* stdout of a successful --json run, parsed: exactly one document. */
static cJSON *json_of(run *r)
{
    expect_status(*r, 0);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(r->out, &end, false);
    cr_assert(j != NULL, "not JSON: %s", r->out);
    while (*end == '\n' || *end == ' ')
        end++;
    cr_assert(*end == '\0', "more than one JSON document: %s", r->out);
    return j;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(v != NULL, "no \"%s\" in %s", k, cJSON_PrintUnformatted(o));
    return v;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number", k);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string", k);
    return v->valuestring;
}

/* ====================================================== broker helpers */

/* JOB.PUSH through the CLI: the new id (static buffer per call site). */
static void push(const char *queue, const char *payload, char id[64])
{
    run r = spool("push", queue, payload, NULL);
    expect_status(r, 0);
    cr_assert(strlen(r.out) == 17 && r.out[16] == '\n', "push printed \"%s\"", r.out);
    snprintf(id, 64, "%.16s", r.out);
    run_free(&r);
}

/* Reserves the next job of queue over RESP: its receipt in rcpt; it must
 * be job id when id is given. */
static void reserve_id(const char *queue, const char *id, char rcpt[64])
{
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", queue);
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "reserve: %s", resp_describe(v));
    if (id)
        cr_assert_str_eq(field_str(v->elem[0], "id"), id);
    snprintf(rcpt, 64, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
}

#define reserve(queue, rcpt) reserve_id((queue), NULL, (rcpt))

/* Pushes a job with no retries (and the top priority, so that it is the
 * next one served), reserves it and nacks it: it is dead. */
static void make_dead(const char *queue, const char *payload, const char *error, char id[64])
{
    run r = spool("push", queue, payload, "--retries", "0", "--priority", "1000", NULL);
    expect_status(r, 0);
    snprintf(id, 64, "%.16s", r.out);
    run_free(&r);
    char rcpt[64];
    reserve_id(queue, id, rcpt);
    expect_simple(CMD(c, "JOB.NACK", rcpt, "ERROR", error), "dead");
}

#define PROBE "{\"event\":\"probe\",\"queue\":\"probe\",\"id\":\"-\"}"

/* PUBLISH a probe on channel: the number of receivers. */
static long long publish_probe(const char *channel)
{
    resp_val *v = CMD(c, "PUBLISH", channel, PROBE);
    cr_assert(v->type == RESP_T_INT, "PUBLISH: %s", resp_describe(v));
    long long n = v->integer;
    resp_val_free(v);
    return n;
}

/* ============================================================ help, usage */

Test(cli, help_and_usage_errors)
{
    run r = spool_nourl("--help", NULL);
    expect_status(r, 0);
    expect_has(r.out, "queues");
    expect_has(r.out, "tail");
    run_free(&r);
    r = spool_nourl("jobs", "--help", NULL);
    expect_status(r, 0);
    expect_has(r.out, "--state");
    run_free(&r);
    const char *bad[][6] = {
        { NULL }, { "bogus" }, { "show" }, { "jobs", "q", "--state", "stuck" },
        { "jobs", "q", "--limit", "0" }, { "push", "q", "{}", "--delay", "soon" },
        { "queues", "--nope" }, { "retry" }, { "top", "--interval", "1ms" },
        { "push", "q", "{}", "--priority", "5000" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = spool(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], NULL);
        expect_status(r, 2);
        cr_assert(strlen(r.err) > 0, "no message for usage error %zu", i);
        run_free(&r);
    }
}

Test(cli, nothing_listening_exits_3_with_advice)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char u[64];
    snprintf(u, sizeof u, "spool://127.0.0.1:%d", ntohs(a.sin_port));
    close(fd); /* bound but never listening, now closed: nothing there */
    const char *cmds[] = { "ping", "queues", "tail", "info" };
    for (size_t i = 0; i < 4; i++) {
        run r = spool_nourl("--url", u, cmds[i], NULL);
        expect_status(r, 3);
        expect_has(r.err, "cannot connect to");
        expect_has(r.err, "is spoold running?");
        run_free(&r);
    }
}

Test(cli, url_from_environment)
{
    char u[64];
    snprintf(u, sizeof u, "spool://127.0.0.1:%d", srv->port);
    setenv("SPOOL_URL", u, 1);
    run r = spool_nourl("ping", NULL);
    unsetenv("SPOOL_URL");
    expect_status(r, 0);
    expect_has(r.out, "PONG");
    run_free(&r);
}

/* ================================================================ ping, info */

Test(cli, ping_and_info)
{
    run r = spool("ping", NULL);
    expect_status(r, 0);
    expect_has(r.out, "PONG");
    run_free(&r);
    r = spool("ping", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "reply"), "PONG");
    cr_assert(num(j, "latency_ms") >= 0);
    cJSON_Delete(j);
    run_free(&r);

    char id[64];
    push("emails", "{\"to\":\"ann@example.com\"}", id);
    r = spool("info", NULL);
    expect_status(r, 0);
    expect_has(r.out, "# Queues");
    expect_has(r.out, "queue_emails:");
    run_free(&r);
    r = spool("info", "--json", NULL);
    j = json_of(&r);
    cr_assert(cJSON_IsString(get(get(j, "server"), "spool_version")));
    cr_assert_eq(num(get(j, "queues"), "jobs_ready"), 1);
    cJSON_Delete(j);
    run_free(&r);
}

/* The live payload bytes spool info payload --json reports over all
 * shards (0 while INFO has not caught up), and how many shards it lists. */
static double payload_live(int *nshards)
{
    run r = spool("info", "payload", "--json", NULL);
    cJSON *j = json_of(&r);
    const cJSON *arr = get(j, "shards"), *o;
    double live = 0;
    *nshards = cJSON_GetArraySize(arr);
    cJSON_ArrayForEach(o, arr) {
        cr_assert(num(o, "live_bytes") <= num(o, "bytes"), "more live than on disk: %s", r.out);
        live += num(o, "live_bytes");
    }
    cJSON_Delete(j);
    run_free(&r);
    return live;
}

/* spool info payload: each shard's payload file (INFO persistence,
 * payload_file_shard<k>), on disk against live, as JSON and as a table. */
Test(cli, info_payload_shows_each_shards_payload_file)
{
    static char big[24000];
    memset(big, 'x', sizeof big - 3);
    big[0] = big[sizeof big - 3] = '"';
    big[sizeof big - 2] = 0; /* a JSON string over the 16 KiB of --payload-file-min */
    char id[64];
    push("big", big, id);
    int n = 0;
    bool seen = wait_until(payload_live(&n) >= sizeof big - 3, 5000);
    cr_assert(seen, "spool info payload --json: the pushed payload's %zu bytes never showed as live", sizeof big - 3);
    cr_assert_eq(n, (int)info_field(c, "server", "shards"), "not one entry per shard");
    run r = spool("info", "payload", NULL);
    expect_status(r, 0);
    expect_has(r.out, "LIVE %  SEGMENTS  COMPACTIONS\n0 "); /* the header, then shard 0's row */
    expect_has(r.out, "KiB");
    run_free(&r);
}

/* ============================================================ queues, stats */

Test(cli, queues_human_and_json)
{
    char id[64], dead[64];
    push("emails", "{\"to\":\"ann@example.com\"}", id);
    push("emails", "{\"to\":\"bob@example.com\"}", id);
    push("thumbs", "{\"src\":\"a.jpg\"}", id);
    make_dead("emails", "{\"to\":\"eve@example.com\"}", "smtp 550", dead);
    expect_ok(CMD(c, "QUEUE.PAUSE", "thumbs"));

    run r = spool("queues", "--rate-window", "0", NULL);
    expect_status(r, 0);
    expect_has(r.out, "QUEUE");
    expect_has(r.out, "READY");
    expect_has(r.out, "emails");
    expect_has(r.out, "paused");
    cr_assert(!strchr(r.out, '\033'), "colour on a pipe: %s", r.out);
    run_free(&r);

    r = spool("queues", "--json", NULL); /* default window: rates measured */
    cJSON *j = json_of(&r);
    const cJSON *qs = get(j, "queues");
    cr_assert_eq(cJSON_GetArraySize(qs), 2);
    const cJSON *e = cJSON_GetArrayItem(qs, 0), *t = cJSON_GetArrayItem(qs, 1);
    cr_assert_str_eq(str(e, "name"), "emails");
    cr_assert_eq(num(e, "ready"), 2);
    cr_assert_eq(num(e, "dead"), 1);
    cr_assert_eq(num(e, "pushed"), 3);
    cr_assert(num(e, "push_rate") >= 0);
    cr_assert(cJSON_IsFalse(get(e, "paused")));
    cr_assert_str_eq(str(t, "name"), "thumbs");
    cr_assert(cJSON_IsTrue(get(t, "paused")));
    cJSON_Delete(j);
    run_free(&r);
}

Test(cli, stats_human_json_and_unknown_queue)
{
    char id[64];
    push("emails", "{\"n\":1}", id);
    run r = spool("stats", "emails", NULL);
    expect_status(r, 0);
    expect_has(r.out, "queue emails");
    expect_has(r.out, "ready     1");
    expect_has(r.out, "pushed    1");
    run_free(&r);
    r = spool("stats", "emails", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_eq(num(j, "ready"), 1);
    cr_assert_eq(num(j, "pushed"), 1);
    cr_assert(num(j, "oldest_ready_age_ms") >= 0);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("stats", "nosuchqueue", NULL);
    expect_status(r, 1);
    expect_has(r.err, "no queue named 'nosuchqueue'");
    run_free(&r);
}

/* ================================================================ jobs, show */

Test(cli, jobs_lists_a_state_and_pages)
{
    char ids[5][64], dead[64];
    for (int i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"n\":%d}", i);
        push("emails", p, ids[i]);
    }
    make_dead("failing", "{\"to\":\"x@example.com\"}", "smtp 550 mailbox unavailable", dead);

    run r = spool("jobs", "failing", "--state", "dead", NULL);
    expect_status(r, 0);
    expect_has(r.out, dead);
    expect_has(r.out, "smtp 550 mailbox unavailable");
    expect_has(r.out, "x@example.com");
    run_free(&r);

    r = spool("jobs", "failing", "--state", "dead", "--json", NULL);
    cJSON *j = json_of(&r);
    const cJSON *jobs = get(j, "jobs");
    cr_assert_eq(cJSON_GetArraySize(jobs), 1);
    const cJSON *job = cJSON_GetArrayItem(jobs, 0);
    cr_assert_str_eq(str(job, "id"), dead);
    cr_assert_str_eq(str(job, "state"), "dead");
    cr_assert_str_eq(str(job, "last_error"), "smtp 550 mailbox unavailable");
    cr_assert_str_eq(str(get(job, "payload"), "to"), "x@example.com");
    cJSON_Delete(j);
    run_free(&r);

    /* two pages of 3 + 2, continuing with next_after */
    r = spool("jobs", "emails", "--limit", "3", "--json", NULL);
    j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(get(j, "jobs")), 3);
    char after[64];
    snprintf(after, sizeof after, "%s", str(j, "next_after"));
    cJSON_Delete(j);
    run_free(&r);
    r = spool("jobs", "emails", "--after", after, "--json", NULL);
    j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(get(j, "jobs")), 2);
    cr_assert(cJSON_IsNull(get(j, "next_after")));
    cJSON_Delete(j);
    run_free(&r);

    r = spool("jobs", "emails", "--state", "reserved", NULL);
    expect_status(r, 0);
    expect_has(r.out, "no reserved jobs in emails");
    run_free(&r);
}

Test(cli, show_pretty_prints_and_unknown_job_exits_1)
{
    char id[64];
    make_dead("emails", "{\"to\":\"ann@example.com\",\"tags\":[1,2]}", "smtp 421 try later", id);
    run r = spool("show", id, NULL);
    expect_status(r, 0);
    expect_has(r.out, id);
    expect_has(r.out, "dead");
    expect_has(r.out, "smtp 421 try later");
    expect_has(r.out, "\n  \"to\": \"ann@example.com\",\n"); /* pretty, two-space indent */
    expect_has(r.out, " ago (");                            /* relative and absolute */
    run_free(&r);

    r = spool("show", id, "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "queue"), "emails");
    cr_assert_eq(num(j, "attempt"), 1);
    cr_assert_eq(num(j, "retries"), 0);
    cr_assert_eq(cJSON_GetArraySize(get(get(j, "payload"), "tags")), 2);
    cr_assert(num(j, "created_at") > 0);
    cJSON_Delete(j);
    run_free(&r);

    r = spool("show", "0000000000000001", NULL);
    expect_status(r, 1);
    expect_has(r.err, "no job 0000000000000001");
    run_free(&r);
}

/* ====================================================================== push */

Test(cli, push_options_stdin_and_refusals)
{
    run r = spool("push", "emails", "{\"a\":1}", "--delay", "1m30s", "--priority", "7", "--json", NULL);
    cJSON *j = json_of(&r);
    char id[64];
    snprintf(id, sizeof id, "%s", str(j, "id"));
    cJSON_Delete(j);
    run_free(&r);
    r = spool("show", id, "--json", NULL);
    j = json_of(&r);
    cr_assert_str_eq(str(j, "state"), "delayed");
    cr_assert_eq(num(j, "priority"), 7);
    cr_assert(num(j, "run_at") >= num(j, "created_at") + 89000);
    cJSON_Delete(j);
    run_free(&r);

    char u1[64], u2[64];
    r = spool("push", "emails", "{}", "--unique", "welcome-ann", NULL);
    expect_status(r, 0);
    snprintf(u1, sizeof u1, "%s", r.out);
    run_free(&r);
    r = spool("push", "emails", "{}", "--unique", "welcome-ann", NULL);
    expect_status(r, 0);
    snprintf(u2, sizeof u2, "%s", r.out);
    run_free(&r);
    cr_assert_str_eq(u1, u2);

    r = spool_in("{\"from\":\"stdin\",\"n\":[1,2,3]}\n", "push", "piped", "-", "--at", "+1h", NULL);
    expect_status(r, 0);
    r.out[16] = '\0';
    resp_val *v = CMD(c, "JOB.GET", r.out);
    cr_assert_str_eq(field_str(v, "payload"), "{\"from\":\"stdin\",\"n\":[1,2,3]}\n");
    cr_assert_str_eq(field_str(v, "state"), "delayed");
    resp_val_free(v);
    run_free(&r);

    r = spool("push", "emails", "{not json", NULL);
    expect_status(r, 1);
    expect_has(r.err, "BADJSON");
    run_free(&r);
}

/* ========================================================= retry, delete */

Test(cli, retry_one_and_all_dead)
{
    char a[64], b[64], d[64];
    make_dead("emails", "{\"n\":1}", "boom", a);
    make_dead("emails", "{\"n\":2}", "boom", b);
    make_dead("emails", "{\"n\":3}", "boom", d);

    run r = spool("retry", a, NULL);
    expect_status(r, 0);
    expect_has(r.out, "ready again");
    run_free(&r);
    r = spool("show", a, "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "state"), "ready");
    cJSON_Delete(j);
    run_free(&r);

    r = spool("retry", "--all-dead", "emails", NULL); /* stdin is not a terminal */
    expect_status(r, 1);
    expect_has(r.err, "--yes");
    run_free(&r);
    r = spool("retry", "--all-dead", "emails", "--yes", "--json", NULL);
    j = json_of(&r);
    cr_assert_eq(num(j, "retried"), 2);
    cJSON_Delete(j);
    run_free(&r);

    r = spool("retry", "0000000000000001", NULL);
    expect_status(r, 1);
    run_free(&r);
}

Test(cli, delete_needs_yes_off_a_terminal)
{
    char a[64], b[64];
    push("emails", "{\"n\":1}", a);
    push("emails", "{\"n\":2}", b);
    run r = spool("delete", a, b, NULL);
    expect_status(r, 1);
    expect_has(r.err, "stdin is not a terminal");
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 2);

    r = spool("delete", a, b, "--yes", NULL);
    expect_status(r, 0);
    expect_has(r.out, "deleted 2 of 2");
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 0);

    r = spool("delete", a, "--yes", NULL);
    expect_status(r, 1);
    run_free(&r);
}

/* ============================================================ purge, pause */

Test(cli, purge_refuses_without_yes_when_not_a_terminal)
{
    char id[64];
    for (int i = 0; i < 3; i++)
        push("emails", "{}", id);
    run r = spool("purge", "emails", NULL);
    expect_status(r, 1);
    expect_has(r.err, "refusing to purge");
    expect_has(r.err, "--yes");
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 3);

    r = spool_in("y\n", "purge", "emails", NULL); /* an answer on a pipe is not a terminal */
    expect_status(r, 1);
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 3);

    r = spool("purge", "emails", "--yes", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_eq(num(j, "purged"), 3);
    cJSON_Delete(j);
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 0);
}

Test(cli, purge_one_state)
{
    char id[64], dead[64];
    push("emails", "{}", id);
    make_dead("emails", "{}", "x", dead);
    run r = spool("purge", "emails", "--state", "dead", "--yes", NULL);
    expect_status(r, 0);
    expect_has(r.out, "purged 1 job");
    run_free(&r);
    cr_assert_eq(llen(c, "emails"), 1);
}

Test(cli, pause_and_resume)
{
    char id[64];
    push("emails", "{}", id);
    run r = spool("pause", "emails", NULL);
    expect_status(r, 0);
    expect_has(r.out, "paused");
    run_free(&r);
    r = spool("stats", "emails", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert(cJSON_IsTrue(get(j, "paused")));
    cJSON_Delete(j);
    run_free(&r);
    expect_null(CMD(c, "RPOP", "emails"));

    r = spool("resume", "emails", "--json", NULL);
    j = json_of(&r);
    cr_assert(cJSON_IsFalse(get(j, "paused")));
    cJSON_Delete(j);
    run_free(&r);
    expect_bulk(CMD(c, "RPOP", "emails"), "{}");
}

/* ==================================================================== config */

Test(cli, config_get_set_and_refusal)
{
    char id[64];
    push("emails", "{}", id);
    run r = spool("config", "emails", NULL);
    expect_status(r, 0);
    expect_has(r.out, "retries");
    expect_has(r.out, "backoff-max");
    run_free(&r);

    r = spool("config", "emails", "retries", "3", NULL);
    expect_status(r, 0);
    run_free(&r);
    r = spool("config", "emails", "retries", NULL);
    expect_status(r, 0);
    cr_assert_str_eq(r.out, "3\n");
    run_free(&r);
    r = spool("config", "emails", "--json", NULL);
    cJSON *j = json_of(&r);
    const cJSON *cfg = get(j, "config");
    cr_assert_eq(num(cfg, "retries"), 3);
    cr_assert_str_eq(str(cfg, "payload"), "json");
    cJSON_Delete(j);
    run_free(&r);

    r = spool("config", "emails", "lease", "soon", NULL);
    expect_status(r, 1);
    expect_has(r.err, "lease");
    run_free(&r);
}

/* ====================================================================== tail */

/* A test knows tail has subscribed when a probe PUBLISHed on its channel
 * reaches one receiver (tail then prints that probe first). Not PUBSUB
 * NUMSUB: spoold answers it for a channel nobody listens to with
 * qsort(NULL, 0, ...) (broker/pubsub.c, collect()), which UBSan reports
 * (nonnull-attribute) and, with halt_on_error, kills spoold; nor CLIENT
 * LIST, whose sub= and psub= are always 0. */

typedef struct child {
    pid_t pid;
    int out, err;
    resp_buf buf;
    size_t used;
} child;

static void tail_start(child *t, const char *arg0, ...)
{
    char *argv[MAX_ARGS + 4];
    int n = 0;
    argv[n++] = (char *)spool_path();
    argv[n++] = "--url";
    argv[n++] = (char *)url();
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < MAX_ARGS; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    t->pid = spawn(argv, NULL, &t->out, &t->err);
    resp_buf_init(&t->buf);
    t->used = 0;
}

/* The next line of the child's stdout (without '\n'; caller frees), or
 * NULL when none came before the deadline or the child closed stdout. */
static char *tail_line(child *t, long long deadline)
{
    for (;;) {
        char *start = t->buf.data ? t->buf.data + t->used : NULL;
        char *nl = start ? memchr(start, '\n', t->buf.len - t->used) : NULL;
        if (nl) {
            char *line = strndup(start, (size_t)(nl - start));
            t->used += (size_t)(nl - start) + 1;
            return line;
        }
        long long left = deadline - now_ms();
        struct pollfd p = { .fd = t->out, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0 || !pump(t->out, &t->buf))
            return NULL;
    }
}

/* SIGTERM, then the exit status (a clean stop is 0). */
static int tail_stop(child *t)
{
    kill(t->pid, SIGTERM);
    run r;
    collect(&r, t->pid, t->out, t->err, now_ms() + RUN_TIMEOUT_MS);
    cr_log_info("tail stderr: %s", r.err);
    run_free(&r);
    resp_buf_free(&t->buf);
    return r.status;
}

static void expect_event(child *t, const char *event, const char *id)
{
    char *line = tail_line(t, now_ms() + EVENT_WAIT_MS);
    cr_assert(line != NULL, "no \"%s\" event line within %d ms", event, EVENT_WAIT_MS);
    cJSON *j = cJSON_Parse(line);
    cr_assert(j != NULL, "not one JSON object per line: %s", line);
    cr_assert_str_eq(str(j, "event"), event, "line: %s", line);
    cr_assert_str_eq(str(j, "id"), id, "line: %s", line);
    cr_assert_str_eq(str(j, "queue"), "emails");
    cJSON_Delete(j);
    free(line);
}

Test(cli, tail_json_sees_pushed_reserved_acked)
{
    child t;
    tail_start(&t, "tail", "emails", "--json", NULL);
    cr_assert(wait_until(publish_probe("spool:events:emails") == 1, EVENT_WAIT_MS), "tail never subscribed");
    char *probe = tail_line(&t, now_ms() + EVENT_WAIT_MS);
    cr_assert(probe && !strcmp(probe, PROBE), "expected the probe first, got %s", probe);
    free(probe);

    char id[64], rcpt[64];
    push("emails", "{\"to\":\"ann@example.com\"}", id);
    reserve("emails", rcpt);
    expect_int(CMD(c, "JOB.ACK", rcpt), 1);

    expect_event(&t, "pushed", id);
    expect_event(&t, "reserved", id);
    expect_event(&t, "acked", id);
    cr_assert_eq(tail_stop(&t), 0);
}

Test(cli, tail_all_queues_human_and_count)
{
    child t;
    tail_start(&t, "tail", "--count", "3", NULL);
    cr_assert(wait_until(publish_probe("spool:events:probe") == 1, EVENT_WAIT_MS),
              "tail never subscribed to the pattern");
    char *probe = tail_line(&t, now_ms() + EVENT_WAIT_MS);
    cr_assert(probe && strstr(probe, "probe"), "expected the probe first, got %s", probe);
    free(probe);
    char a[64], b[64];
    push("thumbs", "{\"src\":\"a.jpg\"}", a);
    push("emails", "{}", b);
    char *l1 = tail_line(&t, now_ms() + EVENT_WAIT_MS);
    char *l2 = tail_line(&t, now_ms() + EVENT_WAIT_MS);
    cr_assert(l1 && l2, "expected two event lines");
    expect_has(l1, "thumbs");
    expect_has(l1, "pushed");
    expect_has(l1, a);
    expect_has(l2, "emails");
    free(l1);
    free(l2);
    cr_assert_null(tail_line(&t, now_ms() + EVENT_WAIT_MS), "tail went on after --count 3");
    cr_assert_eq(tail_stop(&t), 0);
}

/* ======================================================================= top */

Test(cli, top_refreshes_with_rates)
{
    char id[64];
    push("emails", "{}", id);
    run r = spool("top", "--json", "--iterations", "2", "--interval", "100ms", NULL);
    expect_status(r, 0);
    char *second = strchr(r.out, '\n');
    cr_assert(second && second[1], "expected two refreshes: %s", r.out);
    *second++ = '\0';
    cJSON *first = cJSON_Parse(r.out), *next = cJSON_Parse(second);
    cr_assert(first && next, "not one JSON object per refresh: %s", r.out);
    const cJSON *q1 = cJSON_GetArrayItem(get(first, "queues"), 0);
    const cJSON *q2 = cJSON_GetArrayItem(get(next, "queues"), 0);
    cr_assert_str_eq(str(q1, "name"), "emails");
    cr_assert(cJSON_IsNull(get(q1, "push_rate")), "no rate before a second sample");
    cr_assert(num(q2, "push_rate") >= 0);
    cr_assert(num(next, "time") >= num(first, "time") + 100);
    cJSON_Delete(first);
    cJSON_Delete(next);
    run_free(&r);

    r = spool("top", "--iterations", "1", NULL);
    expect_status(r, 0);
    expect_has(r.out, "spool top");
    expect_has(r.out, "emails");
    run_free(&r);
}

/* ============================================================ on a terminal */

/* spool on a pseudo-terminal (stdin, stdout and stderr), as a person runs
 * it: confirmations are asked, top redraws and reads keys, colour is on
 * unless NO_COLOR. */
typedef struct term {
    pid_t pid;
    int fd;
    resp_buf seen;
} term;

static void term_start(term *t, bool no_color, const char *arg0, ...)
{
    char *argv[MAX_ARGS + 4];
    int n = 0;
    argv[n++] = (char *)spool_path();
    argv[n++] = "--url";
    argv[n++] = (char *)url();
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < MAX_ARGS; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    t->pid = forkpty(&t->fd, NULL, NULL, NULL);
    cr_assert(t->pid >= 0, "forkpty: %s", strerror(errno));
    if (t->pid == 0) {
        if (no_color)
            setenv("NO_COLOR", "1", 1);
        else
            unsetenv("NO_COLOR");
        execv(argv[0], argv);
        _exit(127);
    }
    resp_buf_init(&t->seen);
}

/* Reads what the terminal shows for at most ms: false once it closed. */
static bool term_read(term *t, int ms)
{
    struct pollfd p = { .fd = t->fd, .events = POLLIN };
    int r = poll(&p, 1, ms);
    if (r <= 0)
        return r == 0;
    bool open = pump(t->fd, &t->seen);
    resp_buf_append(&t->seen, "", 1);
    t->seen.len--; /* keep it a C string */
    return open;
}

/* Reads the terminal until its output contains text (true) or the deadline. */
static bool term_wait_for(term *t, const char *text)
{
    long long deadline = now_ms() + EVENT_WAIT_MS;
    for (;;) {
        if (t->seen.data && strstr(t->seen.data, text))
            return true;
        if (now_ms() >= deadline || !term_read(t, 50))
            return t->seen.data && strstr(t->seen.data, text);
    }
}

/* The exit status within the deadline (the terminal is drained meanwhile
 * so the child never blocks writing to it). */
static int term_exit(term *t)
{
    int st = 0;
    bool done = wait_until((term_read(t, 20), waitpid(t->pid, &st, WNOHANG) == t->pid), EVENT_WAIT_MS);
    if (!done) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
    }
    for (int i = 0; i < 1000 && term_read(t, 0); i++)
        ; /* what is left in the terminal (bounded: it may never report EOF) */
    close(t->fd);
    return done && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void term_free(term *t)
{
    resp_buf_free(&t->seen);
}

Test(cli, purge_asks_on_a_terminal)
{
    char id[64];
    push("emails", "{}", id);
    push("emails", "{}", id);
    term t;
    term_start(&t, true, "purge", "emails", NULL);
    cr_assert(term_wait_for(&t, "Delete 2 unreserved jobs of 'emails'? [y/N]"), "no question: %s", t.seen.data);
    cr_assert(write(t.fd, "n\n", 2) == 2);
    cr_assert_eq(term_exit(&t), 1, "a no must refuse: %s", t.seen.data);
    term_free(&t);
    cr_assert_eq(llen(c, "emails"), 2);

    term_start(&t, true, "purge", "emails", NULL);
    cr_assert(term_wait_for(&t, "[y/N]"), "no question: %s", t.seen.data);
    cr_assert(write(t.fd, "y\n", 2) == 2);
    cr_assert(term_wait_for(&t, "purged 2 jobs from emails"), "not purged: %s", t.seen.data);
    cr_assert_eq(term_exit(&t), 0);
    term_free(&t);
    cr_assert_eq(llen(c, "emails"), 0);
}

Test(cli, colour_on_a_terminal_unless_no_color)
{
    char id[64];
    make_dead("emails", "{}", "boom", id);
    term t;
    term_start(&t, false, "jobs", "emails", "--state", "dead", NULL);
    cr_assert(term_wait_for(&t, "boom"));
    cr_assert_eq(term_exit(&t), 0);
    cr_assert(strstr(t.seen.data, "\033[31m") != NULL, "no colour on a terminal: %s", t.seen.data);
    term_free(&t);

    term_start(&t, true, "jobs", "emails", "--state", "dead", NULL);
    cr_assert(term_wait_for(&t, "boom"));
    cr_assert_eq(term_exit(&t), 0);
    cr_assert(strchr(t.seen.data, '\033') == NULL, "colour despite NO_COLOR: %s", t.seen.data);
    term_free(&t);
}

Test(cli, top_quits_on_q)
{
    char id[64];
    push("emails", "{}", id);
    term t;
    term_start(&t, true, "top", "--interval", "100ms", NULL);
    cr_assert(term_wait_for(&t, "(q to quit)"), "top drew nothing: %s", t.seen.data);
    cr_assert(term_wait_for(&t, "emails"));
    cr_assert(write(t.fd, "q", 1) == 1);
    cr_assert_eq(term_exit(&t), 0, "top did not quit on q");
    term_free(&t);
}

/* ==================================================== schedules, batches, wait */

Test(cli, schedules_batch_and_wait)
{
    run r = spool("schedules", NULL);
    expect_status(r, 0);
    expect_has(r.out, "no schedules");
    run_free(&r);
    expect_ok(CMD(c, "SCHED.SET", "nightly", "reports", "30 2 * * *", "{}", "TZ", "Europe/Berlin"));
    expect_ok(CMD(c, "SCHED.SET", "often", "beats", "@every 15m", "{}", "CATCHUP", "all"));
    expect_ok(CMD(c, "SCHED.PAUSE", "often"));
    r = spool("schedules", NULL);
    expect_status(r, 0);
    expect_has(r.out, "NEXT RUN");
    expect_has(r.out, "nightly  reports  30 2 * * *  Europe/Berlin  in ");
    expect_has(r.out, "paused");
    run_free(&r);
    r = spool("schedules", "reports", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_eq(cJSON_GetArraySize(j), 1);
    cr_assert_str_eq(str(cJSON_GetArrayItem(j, 0), "name"), "nightly");
    cr_assert(num(cJSON_GetArrayItem(j, 0), "next_at") > 0);
    cJSON_Delete(j);
    run_free(&r);

    char id[64], rcpt[64];
    push("thumbs", "{\"img\":1}", id);
    r = spool("wait", id, "--timeout", "100ms", NULL);
    expect_status(r, 1);
    expect_has(r.err, "did not finish within 100ms");
    run_free(&r);
    reserve_id("thumbs", id, rcpt);
    expect_ok(CMD(c, "JOB.PROGRESS", rcpt, "75"));
    expect_int(CMD(c, "JOB.ACK", rcpt, "RESULT", "{\"url\":\"/t/1.png\"}"), 1);
    r = spool("wait", id, NULL);
    expect_status(r, 0);
    expect_has(r.out, "done result {\"url\":\"/t/1.png\"}");
    run_free(&r);
    r = spool("show", id, NULL);
    expect_has(r.out, "progress     75");
    expect_has(r.out, "result       {\"url\":\"/t/1.png\"}");
    run_free(&r);
    r = spool("wait", id, "--json", NULL);
    j = json_of(&r);
    cr_assert_str_eq(str(get(j, "result"), "url"), "/t/1.png");
    cJSON_Delete(j);
    run_free(&r);

    resp_val *v = CMD(c, "BATCH.NEW", "ON-COMPLETE", "after", "{}");
    char bid[64];
    snprintf(bid, sizeof bid, "%s", v->str);
    resp_val_free(v);
    v = CMD(c, "JOB.PUSH", "pages", "{}", "BATCH", bid);
    resp_val_free(v);
    r = spool("batch", bid, NULL);
    expect_status(r, 0);
    expect_has(r.out, "open");
    expect_has(r.out, "1 (0 done, 0 dead, 1 unfinished)");
    run_free(&r);
    r = spool("batch", "00000000000a0000", NULL);
    expect_status(r, 1);
    expect_has(r.err, "no batch");
    run_free(&r);
}

/* ========================================== papercuts found by a new user */

/* An SMTP error starts with a number: it is text, not JSON ("550" alone). */
Test(cli, jobs_shows_an_error_that_starts_with_a_number_whole)
{
    char id[64];
    make_dead("emails", "{\"to\":\"dan@example.net\"}", "550 5.1.1 no such user", id);
    run r = spool("jobs", "emails", "--state", "dead", NULL);
    expect_status(r, 0);
    expect_has(r.out, "550 5.1.1 no such user");
    run_free(&r);
    /* a raw payload with a valid JSON prefix is shown as text, too */
    resp_val *v = CMD(c, "QUEUE.CONFIG", "rawq", "SET", "payload", "raw");
    expect_ok(v);
    push("rawq", "42 is the answer", id);
    r = spool("jobs", "rawq", NULL);
    expect_status(r, 0);
    expect_has(r.out, "42 is the answer");
    run_free(&r);
    r = spool("show", id, "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "payload"), "42 is the answer");
    cJSON_Delete(j);
    run_free(&r);
}

Test(cli, a_url_without_scheme_is_reported_once)
{
    run r = spool_nourl("--url", "127.0.0.1:7611", "ping", NULL);
    expect_status(r, 2);
    const char *first = strstr(r.err, "bad URL");
    cr_assert(first, "no 'bad URL' in: %s", r.err);
    cr_assert_null(strstr(first + 1, "bad URL"), "the error is printed twice: %s", r.err);
    cr_assert_null(strstr(strstr(r.err, "(expected") + 1, "(expected"), "the hint is printed twice: %s", r.err);
    expect_has(r.err, "no scheme");
    expect_has(r.err, "spool://");
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "more than one line: %s", r.err);
    run_free(&r);
}

Test(cli, a_negative_number_is_a_value_not_an_option)
{
    char id[64];
    push("emails", "{}", id);
    run r = spool("config", "emails", "retries", "-5", NULL);
    expect_status(r, 1); /* refused by spoold, which names the range */
    expect_has(r.err, "retries");
    expect_has(r.err, "0 to 1000");
    run_free(&r);
    r = spool("push", "emails", "{}", "--priority", "-5", "--json", NULL);
    cJSON *j = json_of(&r);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("config", "emails", "-x", NULL);
    expect_status(r, 2);
    expect_has(r.err, "unknown option '-x'");
    run_free(&r);
}

Test(cli, tail_sees_a_retry)
{
    char id[64], id2[64];
    make_dead("emails", "{\"to\":\"dan@example.net\"}", "550 5.1.1 no such user", id);
    make_dead("emails", "{\"to\":\"eve@example.net\"}", "550 5.1.1 no such user", id2);
    child t;
    tail_start(&t, "tail", "emails", "--json", NULL);
    cr_assert(wait_until(publish_probe("spool:events:emails") == 1, EVENT_WAIT_MS), "tail never subscribed");
    char *probe = tail_line(&t, now_ms() + EVENT_WAIT_MS);
    cr_assert(probe && !strcmp(probe, PROBE), "expected the probe first, got %s", probe);
    free(probe);
    run r = spool("retry", id, NULL);
    expect_status(r, 0);
    run_free(&r);
    expect_event(&t, "retried", id);
    /* QUEUE.RETRY (spool retry --all-dead) announces each job it revives */
    r = spool("retry", "--all-dead", "emails", "--yes", NULL);
    expect_status(r, 0);
    run_free(&r);
    expect_event(&t, "retried", id2);
    cr_assert_eq(tail_stop(&t), 0);
}

/* ============================================================ flow control */

Test(cli, workers_lists_holders_and_waiters)
{
    char id[64];
    push("mail", "{\"n\":1}", id);
    cli *w = cli_connect(srv->port);
    expect_ok(CMD(w, "CLIENT", "SETNAME", "smtp-7"));
    resp_val *v = CMD(w, "JOB.RESERVE", "NOWAIT", "FROM", "mail");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "%s", resp_describe(v));
    resp_val_free(v);
    run r = spool("workers", "mail", NULL);
    expect_status(r, 0);
    expect_has(r.out, "smtp-7");
    expect_has(r.out, id);
    expect_has(r.out, "busy");
    run_free(&r);
    r = spool("workers", "mail", "--json", NULL);
    cJSON *j = json_of(&r);
    const cJSON *ws = get(j, "workers");
    cr_assert_eq(cJSON_GetArraySize(ws), 1);
    const cJSON *w0 = cJSON_GetArrayItem(ws, 0);
    cr_assert_str_eq(str(w0, "name"), "smtp-7");
    cr_assert_str_eq(str(cJSON_GetArrayItem(get(w0, "jobs"), 0), "id"), id);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("show", id, NULL);
    expect_has(r.out, "held by");
    expect_has(r.out, "name=smtp-7");
    run_free(&r);
    r = spool("workers", "empty", NULL);
    expect_status(r, 0);
    expect_has(r.out, "no worker");
    run_free(&r);
    cli_close(w);
}

Test(cli, jobs_error_finds_failures_and_retry_redrives_them_by_error)
{
    char a[64], b[64], d[64];
    make_dead("mail", "{\"n\":1}", "550 no such user", a);
    make_dead("mail", "{\"n\":2}", "421 try later", b);
    make_dead("mail", "{\"n\":3}", "421 try later", d);
    run r = spool("jobs", "mail", "--error", "421*", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "state"), "dead");
    cr_assert_eq(cJSON_GetArraySize(get(j, "jobs")), 2);
    const cJSON *errs = get(cJSON_GetArrayItem(get(j, "jobs"), 0), "errors");
    cr_assert_eq(cJSON_GetArraySize(errs), 1);
    cr_assert_str_eq(str(cJSON_GetArrayItem(errs, 0), "error"), "421 try later");
    cJSON_Delete(j);
    run_free(&r);
    r = spool("show", a, NULL);
    expect_has(r.out, "failed attempts");
    expect_has(r.out, "550 no such user");
    run_free(&r);
    r = spool("retry", "--all-dead", "mail", "--error", "421*", "--rate", "100/1s", "--yes", "--json", NULL);
    j = json_of(&r);
    cr_assert_eq(num(j, "retried"), 2);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("retry", a, "--error", "x", NULL);
    expect_status(r, 2);
    run_free(&r);
}

Test(cli, push_expires_and_group_and_queues_show_limits)
{
    run r = spool("push", "mail", "{}", "--expires", "10m", "--group", "tenant-1", NULL);
    expect_status(r, 0);
    char id[64];
    snprintf(id, sizeof id, "%.16s", r.out);
    run_free(&r);
    r = spool("show", id, "--json", NULL);
    cJSON *j = json_of(&r);
    cr_assert_str_eq(str(j, "group"), "tenant-1");
    cr_assert(num(j, "expires_at") > num(j, "created_at") + 590000);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("push", "mail", "{}", "--expires", "soon", NULL);
    expect_status(r, 2);
    run_free(&r);
    r = spool("config", "mail", "rate", "14/1s", NULL);
    expect_status(r, 0);
    run_free(&r);
    r = spool("config", "mail", "concurrency", "20", NULL);
    expect_status(r, 0);
    run_free(&r);
    r = spool("queues", "--rate-window", "0", NULL);
    expect_status(r, 0);
    expect_has(r.out, "LIMITS");
    expect_has(r.out, "rate 14/1s conc 20");
    expect_has(r.out, "THROTTLED");
    run_free(&r);
    r = spool("stats", "mail", "--json", NULL);
    j = json_of(&r);
    cr_assert_eq(num(j, "rate_limit"), 14);
    cr_assert_eq(num(j, "concurrency_limit"), 20);
    cr_assert_eq(num(j, "lease_expired"), 0);
    cJSON_Delete(j);
    run_free(&r);
    r = spool("groups", "mail", NULL);
    expect_status(r, 0);
    expect_has(r.out, "tenant-1");
    run_free(&r);
}

/* ============================================================ cluster */

TestSuite(cli_cluster, .timeout = 120);

/* spool with no --url: `spool cluster` names its nodes itself. */
#define CLUSTER_RUN(...) spool_nourl("cluster", __VA_ARGS__, (const char *)NULL)

Test(cli_cluster, create_uses_the_announced_address)
{
    spoold *a = spoold_start("--cluster", "yes", "--cluster-announce", "127.0.0.2:1", NULL);
    spoold *b = spoold_start("--cluster", "yes", NULL);
    char aa[32], ba[32];
    snprintf(aa, sizeof aa, "127.0.0.1:%d", a->port);
    snprintf(ba, sizeof ba, "127.0.0.1:%d", b->port);
    run r = CLUSTER_RUN("create", ba, aa);
    /* b, the first group, keeps the map; a announces an address nobody
     * listens on: the map names it there, and a takes it once reachable */
    expect_status(r, 0);
    cr_assert(strstr(r.err, "127.0.0.2:1 takes map epoch 1 from g1 once it is reachable again"), "%s", r.err);
    run_free(&r);
    cli *cb = cli_connect(b->port);
    resp_val *v = CMD(cb, "CLUSTER", "NODES");
    cr_assert(strstr(v->str, " 127.0.0.2:1@0 master - 0 0 1 connected 8192-16383"), "%s", v->str);
    resp_val_free(v);
    cli_close(cb);
    spoold_term(a);
    int rc = spoold_restart_may_fail(a, "--cluster", "yes", "--cluster-announce", "nohost", NULL);
    cr_assert_neq(rc, 0, "--cluster-announce without a port is refused");
    spoold_destroy(a);
    spoold_stop(b);
}

Test(cli_cluster, create_move_info)
{
    spoold *a = spoold_start("--cluster", "yes", NULL), *b = spoold_start("--cluster", "yes", NULL);
    char aa[32], ba[32];
    snprintf(aa, sizeof aa, "127.0.0.1:%d", a->port);
    snprintf(ba, sizeof ba, "127.0.0.1:%d", b->port);
    run r = CLUSTER_RUN("create", aa, ba);
    expect_status(r, 0);
    cr_assert(strstr(r.out, "cluster created: 2 group(s) of 1 node(s)"), "%s", r.out);
    run_free(&r);
    r = CLUSTER_RUN("create", aa, ba);
    expect_status(r, 1);
    cr_assert(strstr(r.err, "already belongs to a cluster"), "%s", r.err);
    run_free(&r);
    cli *ca = cli_connect(a->port);
    resp_val *v = CMD(ca, "JOB.PUSH", "{bar}q", "{}"); /* slot 5061: a's */
    cr_assert_eq(v->type, RESP_T_BULK, "%s", resp_describe(v));
    resp_val_free(v);
    r = CLUSTER_RUN("move-slots", aa, "--from", "g1", "--to", "g2", "--range", "5060-5062");
    expect_status(r, 0);
    char moved[96];
    snprintf(moved, sizeof moved, "moved 3 of 3 slot(s) from %s to %s", aa, ba);
    cr_assert(strstr(r.out, moved), "%s", r.out);
    cr_assert(strstr(r.out, "slots answered -TRYAGAIN for "), "%s", r.out);
    run_free(&r);
    expect_int(CMD(ca, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 0); /* the queue went with its slot */
    cli *cb = cli_connect(b->port);
    expect_int(CMD(cb, "CLUSTER", "COUNTKEYSINSLOT", "5061"), 1);
    cli_close(cb);
    expect_error(CMD(ca, "GET", "k2953"), "MOVED 5062 "); /* an empty slot that moved */
    cli_close(ca);
    r = CLUSTER_RUN("info", ba);
    expect_status(r, 0);
    cr_assert(strstr(r.out, "all 2 node(s) agree on map epoch 4"), "%s", r.out);
    cr_assert(strstr(r.out, "group g1: 8189 slot(s)") && strstr(r.out, "group g2: 8195 slot(s)"), "%s", r.out);
    run_free(&r);
    r = CLUSTER_RUN("move-slots", aa, "--from", "g1", "--to", "g2");
    expect_status(r, 2);
    run_free(&r);
    spoold_stop(a);
    spoold_stop(b);
}
