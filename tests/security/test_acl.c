/*
 * test_acl.c - ACL users against real spoold processes:
 *
 *   worker_example   the docs' worker: may only JOB.RESERVE and JOB.ACK on
 *                    emails:*; other queues, other commands, a wrong
 *                    password and a user turned off are refused; the
 *                    same through the real redis-cli (--user/--pass)
 *   channels         &spool:events:* lets SUBSCRIBE/PUBLISH on matching
 *                    channels only; PSUBSCRIBE needs the pattern itself
 *   hello_auth       HELLO 3 AUTH user pass
 *   aclfile          users read at start, ACL SAVE writes them, a restart
 *                    reads them back; a bad file refuses the start naming
 *                    the line; ACL LOAD of a bad file keeps the users
 *   admin_commands   GETUSER, LIST, USERS, WHOAMI, CAT, DELUSER
 *   http_basic_named_users  the dashboard's Basic auth takes named users,
 *                    with their permissions (403 without @read)
 */
#include <criterion/criterion.h>

#include <stdarg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define REDIS_CLI "/usr/bin/redis-cli"

TestSuite(acl, .timeout = 60);

static cli *as(spoold *s, const char *user, const char *pass)
{
    cli *c = cli_connect(s->port);
    expect_simple(cli_cmd(c, "AUTH", user, pass, NULL), "OK");
    return c;
}

static void make_worker(cli *admin)
{
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "worker", "on", ">wpass", "~emails:*", "-@all", "+job.reserve",
                          "+job.ack", NULL),
                  "OK");
}

/* ACL SETUSER mailer on >mp ~emails -@all, then these rules (NULL-ended). */
static void make_mailer(cli *admin, ...)
{
    const char *argv[24] = { "ACL", "SETUSER", "mailer", "on", ">mp", "~emails", "-@all" };
    size_t len[24];
    int n = 7;
    va_list ap;
    va_start(ap, admin);
    for (const char *a; n < 24 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    for (int i = 0; i < n; i++)
        len[i] = strlen(argv[i]);
    expect_simple(cli_cmdv(admin, n, argv, len), "OK");
}

/* JOB.RESERVE NOWAIT FROM q as c: the receipt (static buffer). */
static const char *reserve_receipt(cli *c, const char *q)
{
    static char receipt[64];
    resp_val *v = cli_cmd(c, "JOB.RESERVE", "NOWAIT", "FROM", q, NULL);
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "reserve from %s: %s", q, resp_describe(v));
    const resp_val *job = v->elem[0];
    receipt[0] = '\0';
    for (size_t k = 0; k + 1 < job->n; k += 2)
        if (!strcmp(job->elem[k]->str, "receipt"))
            snprintf(receipt, sizeof receipt, "%s", job->elem[k + 1]->str);
    resp_val_free(v);
    cr_assert(receipt[0]);
    return receipt;
}

Test(acl, worker_example)
{
    spoold *s = spoold_start("--requirepass", "adminpw", NULL);
    cli *admin = as(s, "default", "adminpw");
    make_worker(admin);
    PUSH(admin, "emails:welcome", "{\"to\":\"a@example.com\"}");
    PUSH(admin, "billing", "{\"n\":1}");
    cli *w = as(s, "worker", "wpass");
    expect_int(cli_cmd(w, "JOB.ACK", reserve_receipt(w, "emails:welcome"), NULL), 1);
    expect_error_has(cli_cmd(w, "JOB.RESERVE", "NOWAIT", "FROM", "billing", NULL), "NOPERM", "'billing'");
    expect_error_has(cli_cmd(w, "JOB.RESERVE", "NOWAIT", "FROM", "emails:x", "billing", NULL), "NOPERM", "'billing'");
    expect_error_has(cli_cmd(w, "LPUSH", "emails:welcome", "1", NULL), "NOPERM", "'lpush' command");
    expect_error_has(cli_cmd(w, "JOB.PUSH", "emails:welcome", "{}", NULL), "NOPERM", "'job.push' command");
    expect_error_has(cli_cmd(w, "ACL", "LIST", NULL), "NOPERM", "'acl' command");
    expect_error_has(cli_cmd(w, "BACKUP", "/tmp/x", NULL), "NOPERM", "'backup' command");
    cli_close(w);
    /* Wrong password, unknown user, a user turned off. */
    cli *x = cli_connect(s->port);
    expect_error(cli_cmd(x, "AUTH", "worker", "nope", NULL), "WRONGPASS");
    expect_error(cli_cmd(x, "AUTH", "nobody", "wpass", NULL), "WRONGPASS");
    cli_close(x);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "worker", "off", NULL), "OK");
    x = cli_connect(s->port);
    expect_error(cli_cmd(x, "AUTH", "worker", "wpass", NULL), "WRONGPASS");
    cli_close(x);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "worker", "on", NULL), "OK");

    if (access(REDIS_CLI, X_OK) == 0) { /* the real client, with --user/--pass */
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        PUSH(admin, "emails:b", "{\"n\":2}");
        char *argv[] = { REDIS_CLI, "--no-auth-warning", "-p", port, "--user", "worker", "--pass", "wpass",
                         "JOB.RESERVE", "NOWAIT", "FROM", "emails:b", NULL };
        char *out = NULL;
        cr_expect_eq(run_capture(argv, &out, 15000), 0);
        cr_expect(strstr(out, "emails:b"), "redis-cli as worker: %s", out);
        free(out);
        char *argv2[] = { REDIS_CLI, "--no-auth-warning", "-p", port, "--user", "worker", "--pass", "wpass",
                          "LPUSH", "emails:b", "1", NULL };
        run_capture(argv2, &out, 15000);
        cr_expect(strstr(out, "NOPERM"), "redis-cli as worker, LPUSH: %s", out);
        free(out);
    }
    cli_close(admin);
    spoold_stop(s);
}

Test(acl, channels)
{
    spoold *s = spoold_start(NULL);
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "watcher", "on", ">p", "&spool:events:*", "+@pubsub", NULL), "OK");
    cli *w = as(s, "watcher", "p");
    expect_error_has(cli_cmd(w, "PUBLISH", "other", "hi", NULL), "NOPERM", "'other'");
    expect_int(cli_cmd(w, "PUBLISH", "spool:events:x", "hi", NULL), 0);
    expect_error_has(cli_cmd(w, "PSUBSCRIBE", "spool:*", NULL), "NOPERM", "'spool:*'");
    expect_error_has(cli_cmd(w, "SUBSCRIBE", "spool:events:q", "other", NULL), "NOPERM", "'other'");
    resp_val *v = cli_cmd(w, "SUBSCRIBE", "spool:events:q", NULL);
    cr_expect(v->type == RESP_T_ARRAY || v->type == RESP_T_PUSH, "SUBSCRIBE: %s", resp_describe(v));
    resp_val_free(v);
    cli_close(w);
    cli_close(admin);
    spoold_stop(s);
}

Test(acl, hello_auth)
{
    spoold *s = spoold_start("--requirepass", "adminpw", NULL);
    cli *admin = as(s, "default", "adminpw");
    make_worker(admin);
    cli *w = cli_connect(s->port);
    resp_val *v = cli_cmd(w, "HELLO", "3", "AUTH", "worker", "wpass", NULL);
    cr_expect(v->type == RESP_T_MAP, "HELLO 3 AUTH worker: %s", resp_describe(v));
    resp_val_free(v);
    expect_error_has(cli_cmd(w, "LLEN", "emails:x", NULL), "NOPERM", "'llen' command");
    cli_close(w);
    w = cli_connect(s->port);
    expect_error(cli_cmd(w, "HELLO", "3", "AUTH", "worker", "bad", NULL), "WRONGPASS");
    cli_close(w);
    cli_close(admin);
    spoold_stop(s);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "open %s", path);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(acl, aclfile)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/spool-acl-%d.acl", (int)getpid());
    write_file(path, "# workers\nuser worker on >wpass ~emails:* -@all +@job\n");
    spoold *s = spoold_start("--aclfile", path, NULL);
    cli *w = as(s, "worker", "wpass");
    expect_error_has(cli_cmd(w, "JOB.RESERVE", "NOWAIT", "FROM", "billing", NULL), "NOPERM", "'billing'");
    cli_close(w);
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "auditor", "on", ">apass", "allkeys", "+@read", NULL), "OK");
    expect_simple(cli_cmd(admin, "ACL", "SAVE", NULL), "OK");
    char *text = read_file(path);
    cr_expect(strstr(text, "user auditor on #"), "the ACL file after SAVE:\n%s", text);
    cr_expect(!strstr(text, "apass"), "passwords are stored as hashes:\n%s", text);
    free(text);
    /* A bad file: ACL LOAD refuses and keeps the users. */
    write_file(path, "user worker on >x\nuser broken +@nosuch\n");
    expect_error_has(cli_cmd(admin, "ACL", "LOAD", NULL), "ERR", ":2:");
    cli_close(admin);
    w = as(s, "auditor", "apass");
    cli_close(w);
    spoold_term(s);
    cr_assert_neq(spoold_restart_may_fail(s, "--aclfile", path, NULL), 0, "a bad ACL file must refuse the start");
    char *log = spoold_log(s);
    cr_expect(strstr(log, ":2:") && strstr(log, "nosuch"), "the log should name line 2:\n%s", log);
    free(log);
    write_file(path, "user auditor on >apass2 allkeys +@read\n");
    spoold_restart(s, "--aclfile", path, NULL);
    w = as(s, "auditor", "apass2");
    expect_int(cli_cmd(w, "LLEN", "q", NULL), 0);
    expect_error_has(cli_cmd(w, "LPUSH", "q", "1", NULL), "NOPERM", "'lpush' command");
    cli_close(w);
    spoold_stop(s);
    unlink(path);
}

Test(acl, admin_commands)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    make_worker(c);
    expect_error_has(cli_cmd(c, "ACL", "SETUSER", "bad", "+@nosuch", NULL), "ERR", "unknown category");
    expect_error_has(cli_cmd(c, "ACL", "SETUSER", "bad", "frobnicate", NULL), "ERR", "unknown rule");
    expect_null(cli_cmd(c, "ACL", "GETUSER", "bad", NULL));
    expect_bulk(cli_cmd(c, "ACL", "WHOAMI", NULL), "default");
    resp_val *v = cli_cmd(c, "ACL", "USERS", NULL);
    cr_expect(v->type == RESP_T_ARRAY && v->n == 2, "ACL USERS: %s", resp_describe(v));
    resp_val_free(v);
    v = cli_cmd(c, "ACL", "CAT", "job", NULL);
    cr_expect(v->type == RESP_T_ARRAY && v->n == 4, "ACL CAT job: %s", resp_describe(v));
    resp_val_free(v);
    v = cli_cmd(c, "ACL", "GETUSER", "worker", NULL);
    cr_expect(v->type == RESP_T_ARRAY && v->n == 10, "ACL GETUSER worker: %s", resp_describe(v));
    resp_val_free(v);
    expect_int(cli_cmd(c, "ACL", "DELUSER", "worker", "nobody", NULL), 1);
    expect_error_has(cli_cmd(c, "ACL", "DELUSER", "default", NULL), "ERR", "cannot be removed");
    cli *x = cli_connect(s->port);
    expect_error(cli_cmd(x, "AUTH", "worker", "wpass", NULL), "WRONGPASS");
    cli_close(x);
    cli_close(c);
    spoold_stop(s);
}

/* ============================================================ HTTP Basic */

static void b64(const char *in, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16 | (i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? (unsigned char)in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* GET path as user:pass; the status code. */
static int http_get_as(int port, const char *path, const char *userpass)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char cred[256], req[512], buf[1024] = "";
    b64(userpass, cred);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n\r\n", path,
                     cred);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    int code = 0;
    if (r > 0)
        sscanf(buf, "HTTP/1.%*d %d", &code);
    return code;
}

Test(acl, http_basic_named_users)
{
    char hp[128];
    snprintf(hp, sizeof hp, "/tmp/spool-acl-http-%d", (int)getpid());
    unlink(hp);
    spoold *s = spoold_start("--requirepass", "adminpw", "--http-port", "-1", "--http-port-file", hp, NULL);
    int port = http_port_from_file(hp);
    cli *admin = as(s, "default", "adminpw");
    make_worker(admin);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "viewer", "on", ">vpass", "allkeys", "+@read", NULL), "OK");
    cr_expect_eq(http_get_as(port, "/api/overview", "default:adminpw"), 200);
    cr_expect_eq(http_get_as(port, "/api/overview", "viewer:vpass"), 200);
    cr_expect_eq(http_get_as(port, "/api/overview", "worker:wpass"), 403, "worker has no @read");
    cli_close(admin);
    spoold_stop(s);
}

/* The default user off and no requirepass: the dashboard no longer opens
 * to loopback without a password; named users log in. */
Test(acl, http_default_off_needs_a_named_user)
{
    char hp[128];
    snprintf(hp, sizeof hp, "/tmp/spool-acl-http-%d", (int)getpid());
    unlink(hp);
    spoold *s = spoold_start("--http-port", "-1", "--http-port-file", hp, NULL);
    int port = http_port_from_file(hp);
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "viewer", "on", ">vpass", "allkeys", "+@read", NULL), "OK");
    cr_expect_eq(http_get_as(port, "/api/overview", "default:"), 200, "loopback, default on, no password");
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "default", "off", NULL), "OK");
    cr_expect_eq(http_get_as(port, "/api/overview", "default:"), 401, "the default user is off");
    cr_expect_eq(http_get_as(port, "/api/overview", "viewer:vpass"), 200);
    cli_close(admin);
    spoold_stop(s);
}

/* ============================================================== scripts */

/* A bulk reply that contains part (frees v). */
static void expect_bulk_has(resp_val *v, const char *a, const char *b)
{
    cr_expect(v->type == RESP_T_BULK && strstr(v->str, a) && strstr(v->str, b), "expected a bulk with '%s' and '%s': %s",
              a, b, resp_describe(v));
    resp_val_free(v);
}

Test(acl, script_calls_keep_the_callers_rules)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "keyuser", "on", ">kp", "+eval", "+set", "+get", "~allowed*", NULL),
                  "OK");
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "cmduser", "on", ">cp", "+eval", "-set", "+get", "~allowed*", NULL),
                  "OK");
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "chanuser", "on", ">hp", "+eval", "+publish", "&ok*", NULL), "OK");
    expect_simple(cli_cmd(admin, "SET", "denied", "before", NULL), "OK");
    cli *k = as(s, "keyuser", "kp");
    expect_simple(cli_cmd(k, "EVAL", "return redis.call('set', KEYS[1], 'v')", "1", "allowed1", NULL), "OK");
    expect_error_has(cli_cmd(k, "EVAL", "return redis.call('set', ARGV[1], 'v')", "1", "allowed1", "denied", NULL),
                     "NOPERM", "user keyuser may not use 'denied'");
    expect_error_has(cli_cmd(k, "EVAL", "return redis.call('get', ARGV[1])", "0", "denied", NULL), "NOPERM",
                     "'denied'");
    expect_bulk_has(cli_cmd(k, "EVAL", "return redis.pcall('set', ARGV[1], 'v')['err']", "0", "denied", NULL),
                    "NOPERM", "'denied'");
    expect_error_has(cli_cmd(k, "EVAL", "return redis.call('del', KEYS[1])", "1", "allowed1", NULL), "NOPERM",
                     "User keyuser has no permissions to run the 'del' command");
    /* EVAL's own KEYS are checked before the script runs */
    expect_error_has(cli_cmd(k, "EVAL", "return 1", "1", "denied", NULL), "NOPERM", "'denied'");
    cli *c = as(s, "cmduser", "cp");
    expect_error_has(cli_cmd(c, "EVAL", "return redis.call('set', KEYS[1], 'v')", "1", "allowed2", NULL), "NOPERM",
                     "User cmduser has no permissions to run the 'set' command");
    expect_bulk(cli_cmd(c, "EVAL", "return redis.call('get', KEYS[1])", "1", "allowed1", NULL), "v");
    cli *h = as(s, "chanuser", "hp");
    expect_int(cli_cmd(h, "EVAL", "return redis.call('publish', 'okx', 'm')", "0", NULL), 0);
    expect_error_has(cli_cmd(h, "EVAL", "return redis.call('publish', 'other', 'm')", "0", NULL), "NOPERM",
                     "'other'");
    expect_bulk(cli_cmd(admin, "GET", "denied", NULL), "before");
    expect_null(cli_cmd(admin, "GET", "allowed2", NULL));
    /* the default user's scripts run everything, as before */
    expect_simple(cli_cmd(admin, "EVAL", "return redis.call('set', ARGV[1], 'x')", "0", "denied", NULL), "OK");
    cli_close(h);
    cli_close(c);
    cli_close(k);
    cli_close(admin);
    spoold_stop(s);
}

/* ============================================================= receipts */

/* The job id of a receipt (static buffer). */
static const char *id_of(const char *receipt)
{
    static char id[32];
    snprintf(id, sizeof id, "%.16s", receipt);
    return id;
}

Test(acl, receipts_of_other_queues_are_refused)
{
    spoold *s = spoold_start("--shards", "1", NULL); /* one shard: JOB.ACK of two receipts is all or nothing */
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "mailer", "on", ">mp", "~emails", "-@all", "+@job", "+job.get",
                          "+job.del", "+job.retry", "+job.progress", "+job.wait", "+eval", "+multi", "+exec", NULL),
                  "OK");
    PUSH(admin, "images", "{\"n\":1}");
    char img[64];
    snprintf(img, sizeof img, "%s", reserve_receipt(admin, "images"));
    const char *iid = id_of(img);
    char iidb[32];
    snprintf(iidb, sizeof iidb, "%s", iid);
    cli *w = as(s, "mailer", "mp");
    const char *want = "'images' (the queue of job";
    expect_error_has(cli_cmd(w, "JOB.ACK", img, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.NACK", img, "ERROR", "x", NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.TOUCH", img, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.PROGRESS", img, "50", NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.GET", iidb, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.DEL", iidb, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.RETRY", iidb, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "JOB.WAIT", iidb, "TIMEOUT", "10", NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "EVAL", "return redis.call('job.ack', ARGV[1])", "0", img, NULL), "NOPERM", want);
    expect_simple(cli_cmd(w, "MULTI", NULL), "OK");
    expect_simple(cli_cmd(w, "JOB.ACK", img, NULL), "QUEUED");
    resp_val *v = cli_cmd(w, "EXEC", NULL);
    cr_expect(v->type == RESP_T_ARRAY && v->n == 1 && v->elem[0]->type == RESP_T_ERROR &&
                  strstr(v->elem[0]->str, "NOPERM"), "EXEC: %s", resp_describe(v));
    resp_val_free(v);
    /* its own queue's job works, and one refused receipt among several acks none */
    PUSH(admin, "emails", "{\"n\":2}");
    PUSH(admin, "emails", "{\"n\":3}");
    char mine[64];
    snprintf(mine, sizeof mine, "%s", reserve_receipt(w, "emails"));
    expect_error_has(cli_cmd(w, "JOB.ACK", mine, img, NULL), "NOPERM", want);
    char mid[32];
    snprintf(mid, sizeof mid, "%s", id_of(mine));
    EXPECT_STATE(admin, mid, "reserved");
    expect_int(cli_cmd(w, "JOB.ACK", mine, NULL), 1);
    cli_close(w);
    EXPECT_STATE(admin, iidb, "reserved");
    cli_close(admin);
    spoold_stop(s);
}

/* SCHED.GET/DEL/PAUSE/RESUME name a schedule, not its queue: the shard
 * checks the schedule's queue, as for receipts. */
Test(acl, schedules_of_other_queues_are_refused)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *admin = cli_connect(s->port);
    make_mailer(admin, "+sched.get", "+sched.del", "+sched.pause", "+sched.resume", NULL);
    expect_simple(cli_cmd(admin, "SCHED.SET", "nightly", "images", "0 3 * * *", "{}", NULL), "OK");
    expect_simple(cli_cmd(admin, "SCHED.SET", "mails", "emails", "0 4 * * *", "{}", NULL), "OK");
    cli *w = as(s, "mailer", "mp");
    const char *want = "'images' (the queue of this schedule)";
    expect_error_has(cli_cmd(w, "SCHED.GET", "nightly", NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "SCHED.PAUSE", "nightly", NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "SCHED.DEL", "nightly", NULL), "NOPERM", want);
    expect_simple(cli_cmd(w, "SCHED.PAUSE", "mails", NULL), "OK");
    expect_int(cli_cmd(w, "SCHED.DEL", "mails", NULL), 1);
    resp_val *v = cli_cmd(admin, "SCHED.GET", "nightly", NULL);
    cr_assert(v->type == RESP_T_ARRAY, "the schedule is still there: %s", resp_describe(v));
    for (size_t k = 0; k + 1 < v->n; k += 2)
        if (!strcmp(v->elem[k]->str, "paused"))
            cr_expect_eq(v->elem[k + 1]->integer, 0, "the refused SCHED.PAUSE paused it");
    resp_val_free(v);
    cli_close(w);
    cli_close(admin);
    spoold_stop(s);
}

/* Every key of a command is checked, however many it names (the 300th of
 * an MGET too). */
Test(acl, every_key_is_checked)
{
    spoold *s = spoold_start(NULL);
    cli *admin = cli_connect(s->port);
    expect_simple(cli_cmd(admin, "ACL", "SETUSER", "reader", "on", ">rp", "+mget", "~allowed*", NULL), "OK");
    cli *r = as(s, "reader", "rp");
    enum { N = 300 };
    const char *argv[N + 1];
    size_t len[N + 1];
    argv[0] = "MGET";
    for (int i = 1; i <= N; i++)
        argv[i] = i == N ? "denied" : "allowed1";
    for (int i = 0; i <= N; i++)
        len[i] = strlen(argv[i]);
    expect_error_has(cli_cmdv(r, N + 1, argv, len), "NOPERM", "'denied'");
    argv[N] = "allowed2";
    len[N] = strlen(argv[N]);
    resp_val *v = cli_cmdv(r, N + 1, argv, len);
    cr_expect(v->type == RESP_T_ARRAY && v->n == N, "MGET of allowed keys: %s", resp_describe(v));
    resp_val_free(v);
    cli_close(r);
    cli_close(admin);
    spoold_stop(s);
}

/* BATCH.NEW's callback queues are keys: a user may name only queues its
 * patterns allow; BATCH.GET and BATCH.CLOSE of a batch whose callbacks go
 * to a queue it may not use are refused too (closing fires them). */
Test(acl, batches_are_checked_against_their_callback_queues)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *admin = cli_connect(s->port);
    make_mailer(admin, "+batch.new", "+batch.get", "+batch.close", "+job.push", NULL);
    cli *w = as(s, "mailer", "mp");
    expect_error_has(cli_cmd(w, "BATCH.NEW", "ON-SUCCESS", "emails", "{}", "ON-COMPLETE", "images", "{}", NULL),
                     "NOPERM", "'images'");
    resp_val *v = cli_cmd(w, "BATCH.NEW", "ON-COMPLETE", "emails", "{}", NULL);
    cr_assert(v->type == RESP_T_BULK, "a batch with an allowed callback queue: %s", resp_describe(v));
    char mine[48];
    snprintf(mine, sizeof mine, "%s", v->str);
    resp_val_free(v);
    v = cli_cmd(admin, "BATCH.NEW", "ON-SUCCESS", "images", "{}", NULL);
    cr_assert(v->type == RESP_T_BULK, "%s", resp_describe(v));
    char theirs[48], want[120];
    snprintf(theirs, sizeof theirs, "%s", v->str);
    resp_val_free(v);
    snprintf(want, sizeof want, "'images' (the success callback queue of batch %s)", theirs);
    expect_error_has(cli_cmd(w, "BATCH.GET", theirs, NULL), "NOPERM", want);
    expect_error_has(cli_cmd(w, "BATCH.CLOSE", theirs, NULL), "NOPERM", want);
    v = cli_cmd(admin, "BATCH.GET", theirs, NULL);
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "%s", resp_describe(v));
    bool open = false;
    for (size_t k = 0; k + 1 < v->n; k += 2)
        if (!strcmp(v->elem[k]->str, "state"))
            open = !strcmp(v->elem[k + 1]->str, "open");
    resp_val_free(v);
    cr_assert(open, "the refused BATCH.CLOSE closed the batch");
    resp_val_free(cli_cmd(w, "JOB.PUSH", "emails", "{}", "BATCH", mine, NULL));
    expect_simple(cli_cmd(w, "BATCH.CLOSE", mine, NULL), "OK");
    cli_close(w);
    cli_close(admin);
    spoold_stop(s);
}
