/*
 * test_documented.c - behaviour that docs/protocol.md and docs/operations.md
 * promise and that no other suite pins down: EXISTS with repeats, COUNT
 * bounds, CLIENT INFO / NO-EVICT, COMMAND INFO, CONFIG RESETSTAT, INFO
 * sections, AUTH with a user name, payload-memory, proto-max-bulk-len,
 * maxclients, client-output-limit, fsync modes seen through journal_syncs,
 * SIGHUP log reopen, the limits before AUTH, the in-flight bound, the
 * EMFILE accept pause and the SIGTERM drain.
 *
 * Suite "documented" uses a default server from the fixture; the tests that
 * need other settings start their own spoold. Every wait polls with a
 * deadline.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(documented, .init = start_default, .fini = stop_default, .timeout = 60);
TestSuite(settings, .timeout = 90);

/* INFO [section] as text (caller frees). */
static char *info_text(cli *cl, const char *section)
{
    resp_val *v = section ? CMD(cl, "INFO", section) : CMD(cl, "INFO");
    cr_assert(v->type == RESP_T_BULK, "INFO: %s", resp_describe(v));
    char *t = strdup(v->str);
    resp_val_free(v);
    return t;
}

/* ============================================================ commands */

Test(documented, exists_counts_a_queue_named_twice)
{
    expect_int(CMD(c, "RPUSH", "a", "{}"), 1);
    expect_int(CMD(c, "EXISTS", "a", "a", "missing"), 2);
    expect_int(CMD(c, "EXISTS", "a", "a", "a"), 3);
    expect_int(CMD(c, "EXISTS", "missing"), 0);
}

Test(documented, count_is_bounded_from_1_to_1000)
{
    expect_int(CMD(c, "RPUSH", "q", "{}"), 1);
    expect_error(CMD(c, "JOB.RESERVE", "COUNT", "0", "NOWAIT", "FROM", "q"), "ERR ");
    expect_error(CMD(c, "JOB.RESERVE", "COUNT", "1001", "NOWAIT", "FROM", "q"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "COUNT", "0"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "COUNT", "1001"), "ERR ");
    cr_assert_eq(stat_of(c, "q", "ready"), 1, "a refused reserve took a job");
    resp_val *v = CMD(c, "QUEUE.PEEK", "q", "COUNT", "1000");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "PEEK COUNT 1000: %s", resp_describe(v));
    resp_val_free(v);
    v = CMD(c, "JOB.RESERVE", "COUNT", "1000", "NOWAIT", "FROM", "q");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "RESERVE COUNT 1000: %s", resp_describe(v));
    resp_val_free(v);
}

Test(documented, client_info_describes_this_connection)
{
    expect_ok(CMD(c, "CLIENT", "SETNAME", "docs"));
    resp_val *id = CMD(c, "CLIENT", "ID");
    cr_assert(id->type == RESP_T_INT);
    resp_val *v = CMD(c, "CLIENT", "INFO");
    cr_assert(v->type == RESP_T_BULK, "CLIENT INFO: %s", resp_describe(v));
    char want[64];
    snprintf(want, sizeof want, "id=%lld ", id->integer);
    cr_assert(strncmp(v->str, want, strlen(want)) == 0, "CLIENT INFO starts %s, expected %s", v->str, want);
    cr_assert(strstr(v->str, " name=docs ") != NULL, "CLIENT INFO: %s", v->str);
    cr_assert(strstr(v->str, " cmd=client") != NULL, "CLIENT INFO: %s", v->str);
    cr_assert(strchr(v->str, '\n') == strrchr(v->str, '\n'), "CLIENT INFO has more than one line: %s", v->str);
    resp_val_free(v);
    resp_val_free(id);
}

Test(documented, client_no_evict_and_no_touch_take_on_or_off)
{
    expect_ok(CMD(c, "CLIENT", "NO-EVICT", "on"));
    expect_ok(CMD(c, "CLIENT", "NO-EVICT", "off"));
    expect_ok(CMD(c, "CLIENT", "NO-TOUCH", "on"));
    expect_error(CMD(c, "CLIENT", "NO-EVICT"), "ERR ");
    expect_error(CMD(c, "CLIENT", "NO-EVICT", "maybe"), "ERR CLIENT NO-EVICT takes on or off");
    expect_simple(CMD(c, "PING"), "PONG");
}

Test(documented, command_info_describes_the_named_commands)
{
    resp_val *v = CMD(c, "COMMAND", "INFO", "job.push", "nosuch", "LPUSH");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 3, "COMMAND INFO of 3 names: %s", resp_describe(v));
    const resp_val *p = v->elem[0];
    cr_assert(p->type == RESP_T_ARRAY && p->n == 10, "COMMAND INFO job.push: %s", resp_describe(p));
    cr_assert_str_eq(p->elem[0]->str, "job.push");
    cr_assert_eq(p->elem[1]->integer, -3, "job.push arity");
    cr_assert_eq(p->elem[3]->integer, 1, "first key");
    cr_assert_eq(p->elem[4]->integer, 1, "last key");
    cr_assert(v->elem[1]->type == RESP_T_NULL, "an unknown name: %s", resp_describe(v->elem[1]));
    cr_assert_str_eq(v->elem[2]->elem[0]->str, "lpush", "names are found case-insensitively");
    resp_val_free(v);
}

Test(documented, command_lists_every_command_it_counts)
{
    resp_val *n = CMD(c, "COMMAND", "COUNT");
    cr_assert(n->type == RESP_T_INT && n->integer > 40, "COMMAND COUNT: %s", resp_describe(n));
    resp_val *v = CMD(c, "COMMAND");
    cr_assert(v->type == RESP_T_ARRAY && (long long)v->n == n->integer, "COMMAND lists %zu, COUNT says %lld",
              v->n, n->integer);
    bool push = false, ping = false;
    for (size_t i = 0; i < v->n; i++) {
        push |= strcmp(v->elem[i]->elem[0]->str, "job.push") == 0;
        ping |= strcmp(v->elem[i]->elem[0]->str, "ping") == 0;
    }
    cr_assert(push && ping, "COMMAND lacks job.push or ping");
    resp_val_free(v);
    v = CMD(c, "COMMAND", "DOCS", "job.ack");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "COMMAND DOCS job.ack: %s", resp_describe(v));
    cr_assert_str_eq(v->elem[0]->str, "job.ack");
    resp_val_free(v);
    resp_val_free(n);
}

Test(documented, config_resetstat_is_accepted_and_set_refused)
{
    expect_ok(CMD(c, "CONFIG", "RESETSTAT"));
    expect_error(CMD(c, "CONFIG", "SET", "maxclients", "5"), "ERR CONFIG SET is not supported");
}

Test(documented, info_sections_one_at_a_time_or_all)
{
    char *t = info_text(c, "server");
    cr_assert(strstr(t, "# Server\r\n") && !strstr(t, "# Queues"), "INFO server: %s", t);
    free(t);
    t = info_text(c, "queues");
    cr_assert(strstr(t, "# Queues\r\njobs_ready:") && !strstr(t, "# Server"), "INFO queues: %s", t);
    free(t);
    t = info_text(c, "persistence");
    cr_assert(strstr(t, "loading:0\r\n") && strstr(t, "fsync:always\r\n") && strstr(t, "journal_syncs:"),
              "INFO persistence: %s", t);
    free(t);
    t = info_text(c, "all");
    static const char *const all[] = { "# Server", "# Clients", "# Memory", "# Persistence", "# Stats",
                                       "# Replication", "# Keyspace", "# Queues" };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cr_assert(strstr(t, all[i]) != NULL, "INFO all lacks %s", all[i]);
    free(t);
    resp_val *v = CMD(c, "INFO", "clients", "stats");
    cr_assert(strstr(v->str, "# Clients") && strstr(v->str, "# Stats") && !strstr(v->str, "# Server"),
              "INFO clients stats: %s", v->str);
    resp_val_free(v);
}

/* ============================================================== settings */

Test(settings, auth_with_the_default_user_name)
{
    spoold *s = spoold_start("--requirepass", "secret", NULL);
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "AUTH", "someone", "secret"), "WRONGPASS");
    expect_error(CMD(cl, "AUTH", "default", "wrong"), "WRONGPASS");
    expect_error(CMD(cl, "PING"), "NOAUTH");
    expect_ok(CMD(cl, "AUTH", "default", "secret"));
    expect_simple(CMD(cl, "PING"), "PONG");
    cli_close(cl);
    spoold_stop(s);

    s = spoold_start(NULL);
    cl = cli_connect(s->port);
    resp_val *v = CMD(cl, "AUTH", "secret");
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "without any password configured"),
              "AUTH without requirepass: %s",
              resp_describe(v));
    resp_val_free(v);
    cli_close(cl);
    spoold_stop(s);
}

Test(settings, payloads_beyond_payload_memory_come_back_from_the_journal)
{
    spoold *s = spoold_start("--payload-memory", "0", "--shards", "1", NULL);
    cli *cl = cli_connect(s->port);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "{\"n\":%d,\"pad\":\"%0*d\"}", i, 20 + i, i);
        expect_int(CMD(cl, "RPUSH", "q", p), i + 1);
    }
    resp_val *r = CMD(cl, "LRANGE", "q", "0", "-1");
    cr_assert(r->type == RESP_T_ARRAY && r->n == N, "LRANGE: %s", resp_describe(r));
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "{\"n\":%d,\"pad\":\"%0*d\"}", i, 20 + i, i);
        cr_assert_str_eq(r->elem[i]->str, p, "LRANGE element %d", i);
    }
    /* LPOP takes the first pushed; JOB.RESERVE the rest, each payload whole */
    expect_bulk(CMD(cl, "LPOP", "q"), r->elem[0]->str);
    resp_val *j = CMD(cl, "JOB.RESERVE", "COUNT", "100", "NOWAIT", "FROM", "q");
    cr_assert(j->type == RESP_T_ARRAY && j->n == N - 1, "JOB.RESERVE COUNT 100: %s", resp_describe(j));
    bool seen[N] = { false };
    for (size_t k = 0; k < j->n; k++) {
        const char *pl = field_str(j->elem[k], "payload");
        int n = -1;
        cr_assert(sscanf(pl, "{\"n\":%d,", &n) == 1 && n > 0 && n < N && !seen[n], "payload %s", pl);
        seen[n] = true;
        cr_assert_str_eq(pl, r->elem[n]->str, "job %d's payload", n);
    }
    resp_val_free(j);
    resp_val_free(r);
    cli_close(cl);
    spoold_stop(s);
}

Test(settings, a_bulk_over_proto_max_bulk_len_closes_with_an_error)
{
    /* max-payload under the limit: a proto-max-bulk-len below it refuses to start */
    spoold *s = spoold_start("--proto-max-bulk-len", "2048", "--max-payload", "1024", NULL);
    cli *cl = cli_connect(s->port);
    char small[2001], big[3001];
    memset(small, 'a', sizeof small - 1);
    small[sizeof small - 1] = 0;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    expect_bulk(CMD(cl, "ECHO", small), small);
    resp_val *v = CMD(cl, "ECHO", big);
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "Protocol error"), "a 3000-byte bulk over a 2048 limit: %s",
              resp_describe(v));
    resp_val_free(v);
    cr_assert(cli_wait_closed(cl, 5000), "the connection stayed open after the protocol error");
    cli_close(cl);
    cl = cli_connect(s->port);
    expect_simple(CMD(cl, "PING"), "PONG");
    cli_close(cl);
    spoold_stop(s);
}

Test(settings, maxclients_refuses_the_connection_past_the_limit)
{
    spoold *s = spoold_start("--maxclients", "2", NULL);
    cli *a = cli_connect(s->port), *b = cli_connect(s->port);
    expect_simple(CMD(a, "PING"), "PONG");
    expect_simple(CMD(b, "PING"), "PONG");
    cli *x = cli_connect(s->port);
    resp_val *v = NULL;
    cr_assert_eq(cli_poll_reply(x, 5000, &v), 1, "the third client got no error");
    cr_assert(v->type == RESP_T_ERROR && strcmp(v->str, "ERR max number of clients reached") == 0, "%s",
              resp_describe(v));
    resp_val_free(v);
    cr_assert(cli_wait_closed(x, 5000));
    cli_close(x);
    cli_close(b);
    /* Room again once one has gone. */
    bool in = wait_until(({
        cli *y = cli_connect(s->port);
        resp_val *p = CMD(y, "PING");
        bool ok = p->type == RESP_T_SIMPLE;
        resp_val_free(p);
        cli_close(y);
        ok;
    }), 5000);
    cr_assert(in, "no room after a client closed");
    cli_close(a);
    spoold_stop(s);
}

Test(settings, a_client_that_never_reads_is_cut_at_client_output_limit)
{
    spoold *s = spoold_start("--client-output-limit", "65536", NULL);
    cli *cl = cli_connect(s->port);
    char pad[30001];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    char payload[30100];
    snprintf(payload, sizeof payload, "{\"pad\":\"%s\"}", pad);
    expect_int(CMD(cl, "RPUSH", "q", payload), 1);
    cli *other = cli_connect(s->port);
    /* 800 replies of 30 KB (24 MB) that it never reads */
    bool closed = false;
    for (int i = 0; i < 800 && !closed; i++) {
        const char *argv[] = { "LRANGE", "q", "0", "-1" };
        int fd = cli_fd(cl);
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        resp_buf b;
        resp_buf_init(&b);
        resp_add_array(&b, 4);
        for (int k = 0; k < 4; k++)
            resp_add_cstr(&b, argv[k]);
        ssize_t w = send(fd, b.data, b.len, MSG_NOSIGNAL);
        resp_buf_free(&b);
        fcntl(fd, F_SETFL, fl);
        closed = w < 0 && errno != EAGAIN;
    }
    long long last = -1;
    bool cut = wait_until((last = info_field(other, "clients", "connected_clients")) == 1, 10000);
    cr_assert(cut, "the client that never reads is still connected (connected_clients %lld)", last);
    expect_simple(CMD(other, "PING"), "PONG");
    cli_close(cl);
    cli_close(other);
    spoold_stop(s);
}

/* journal_syncs from INFO persistence */
static long long syncs(cli *cl)
{
    return info_field(cl, "persistence", "journal_syncs");
}

Test(settings, fsync_off_never_syncs_and_always_syncs_each_write)
{
    static const char *const modes[] = { "off", "always" };
    for (int m = 0; m < 2; m++) {
        spoold *s = spoold_start("--fsync", modes[m], "--shards", "1", NULL);
        cli *cl = cli_connect(s->port);
        expect_int(CMD(cl, "RPUSH", "q", "{}"), 1); /* the WAL exists */
        long long before = syncs(cl);
        cr_assert_geq(before, 0, "INFO persistence has no journal_syncs");
        for (int i = 0; i < 20; i++)
            expect_int(CMD(cl, "RPUSH", "q", "{}"), i + 2);
        long long made = syncs(cl) - before;
        if (m == 0)
            cr_assert_eq(made, 0, "--fsync off: %lld syncs for 20 pushes", made);
        else
            cr_assert_geq(made, 20, "--fsync always: %lld syncs for 20 pushes", made);
        char *t = info_text(cl, "persistence");
        char want[32];
        snprintf(want, sizeof want, "fsync:%s\r\n", modes[m]);
        cr_assert(strstr(t, want) != NULL, "INFO persistence: %s", t);
        free(t);
        cli_close(cl);
        spoold_stop(s);
    }
}

Test(settings, sighup_reopens_the_log_file)
{
    spoold *s = spoold_start("--loglevel", "info", NULL);
    cli *cl = cli_connect(s->port);
    char moved[400];
    snprintf(moved, sizeof moved, "%s.1", s->log_path);
    cr_assert_eq(rename(s->log_path, moved), 0, "rename %s: %s", s->log_path, strerror(errno));
    cr_assert_eq(kill(s->pid, SIGHUP), 0);
    struct stat st;
    bool reopened = wait_until(stat(s->log_path, &st) == 0 && st.st_size > 0, 5000);
    cr_assert(reopened, "no new log file at %s after SIGHUP", s->log_path);
    char *log = spoold_log(s);
    cr_assert(strstr(log, "log file reopened") != NULL, "the new log: %s", log);
    free(log);
    expect_simple(CMD(cl, "PING"), "PONG");
    cli_close(cl);
    spoold_stop(s);
}

Test(settings, limits_before_auth_are_16_arguments_and_16_kib)
{
    spoold *s = spoold_start("--requirepass", "secret", NULL);
    const char *argv[17];
    for (int i = 0; i < 17; i++)
        argv[i] = i ? "x" : "ECHO";
    cli *cl = cli_connect(s->port);
    resp_val *v = cli_cmdv(cl, 17, argv, NULL);
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "Protocol error"), "17 arguments before AUTH: %s",
              resp_describe(v));
    resp_val_free(v);
    cr_assert(cli_wait_closed(cl, 5000));
    cli_close(cl);

    cl = cli_connect(s->port);
    static char big[20000];
    memset(big, 'p', sizeof big - 1);
    v = CMD(cl, "AUTH", big);
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "Protocol error"), "a 20 KB bulk before AUTH: %s",
              resp_describe(v));
    resp_val_free(v);
    cr_assert(cli_wait_closed(cl, 5000));
    cli_close(cl);

    /* after AUTH the normal limits hold */
    cl = cli_connect(s->port);
    expect_ok(CMD(cl, "AUTH", "secret"));
    v = cli_cmdv(cl, 17, argv, NULL);
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "wrong number of arguments"), "17 arguments after AUTH: %s",
              resp_describe(v));
    resp_val_free(v);
    expect_bulk(CMD(cl, "ECHO", big), big);
    cli_close(cl);
    spoold_stop(s);
}

Test(settings, a_pipelining_client_that_does_not_read_is_held_back, .timeout = 120)
{
    spoold *s = spoold_start(NULL);
    cli *cl = cli_connect(s->port), *other = cli_connect(s->port);
    /* Pushes sent without reading: spoold stops reading from the client, so
     * not all are stored while it does not read, and all are once it does. */
    static char payload[1024];
    memset(payload, 'x', sizeof payload - 1);
    char json[1100];
    snprintf(json, sizeof json, "\"%s\"", payload);
    enum { N = 60000 }; /* 63 MB: far more than the socket buffers hold */
    int fd = cli_fd(cl);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < N; i++) {
        resp_add_array(&b, 2);
        resp_add_cstr(&b, "ECHO");
        resp_add_cstr(&b, json);
    }
    size_t off = 0;
    long long last_progress = now_ms();
    while (off < b.len && now_ms() - last_progress < 2000) { /* until 2 s pass with nothing taken */
        ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            last_progress = now_ms();
        } else {
            sleep_ms(5);
        }
    }
    fcntl(fd, F_SETFL, fl);
    cr_assert_lt(off, b.len, "all %zu bytes of %d pipelined requests were taken while no reply was read",
                 b.len, N);
    expect_simple(CMD(other, "PING"), "PONG"); /* others are served meanwhile */
    resp_buf_free(&b);
    cli_close(cl);
    cli_close(other);
    spoold_stop(s);
}

Test(settings, out_of_descriptors_pauses_accepting_and_resumes)
{
    spoold *s = spoold_start(NULL);
    /* Lower spoold's open-files limit to what it has open plus a few. */
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/%d/fd", (int)s->pid);
    cli *first = cli_connect(s->port);
    int open_now = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", fdpath);
    FILE *p = popen(cmd, "r");
    cr_assert(p && fscanf(p, "%d", &open_now) == 1);
    pclose(p);
    struct rlimit old_rl, rl;
    cr_assert_eq(prlimit(s->pid, RLIMIT_NOFILE, NULL, &old_rl), 0);
    rl = old_rl;
    rl.rlim_cur = (rlim_t)open_now + 3; /* the soft limit only: raising it back needs no privilege */
    int rc = prlimit(s->pid, RLIMIT_NOFILE, &rl, NULL);
    cr_assert_eq(rc, 0, "prlimit %d: %s", (int)rl.rlim_cur, strerror(errno));
    cli *extra[12];
    int n = 0;
    for (; n < 12; n++)
        extra[n] = cli_connect(s->port); /* the kernel accepts; spoold runs out */
    char *log = NULL;
    bool warned = wait_until(({
        free(log);
        log = spoold_log(s);
        strstr(log, "pausing accepts") != NULL;
    }), 10000);
    cr_assert(warned, "no accept pause in the log: %s", log);
    free(log);
    expect_simple(CMD(first, "PING"), "PONG");
    for (int i = 0; i < n; i++)
        cli_close(extra[i]);
    cr_assert_eq(prlimit(s->pid, RLIMIT_NOFILE, &old_rl, NULL), 0, "prlimit: %s", strerror(errno));
    bool served = wait_until(({
        cli *y = cli_try_connect(s->port);
        resp_val *v = NULL;
        bool ok = false;
        if (y) {
            SEND(y, "PING");
            ok = cli_poll_reply(y, 1000, &v) == 1 && v->type == RESP_T_SIMPLE;
            resp_val_free(v);
            cli_close(y);
        }
        ok;
    }), 10000);
    cr_assert(served, "accepting did not resume once descriptors were free");
    cli_close(first);
    spoold_stop(s);
}

Test(settings, sigterm_drains_in_flight_pushes_and_exits_0)
{
    spoold *s = spoold_start(NULL);
    cli *cl = cli_connect(s->port);
    enum { N = 500 };
    for (int i = 0; i < N; i++)
        SEND(cl, "RPUSH", "q", "{}");
    resp_val *v = cli_read(cl); /* the pushes are in */
    cr_assert(v->type == RESP_T_INT, "first push: %s", resp_describe(v));
    resp_val_free(v);
    cr_assert_eq(kill(s->pid, SIGTERM), 0);
    int answered = 1;
    long long last = 1;
    while (answered < N) {
        resp_val *r = NULL;
        if (cli_poll_reply(cl, 10000, &r) != 1)
            break;
        cr_assert(r->type == RESP_T_INT, "reply %d during the drain: %s", answered + 1, resp_describe(r));
        last = r->integer;
        resp_val_free(r);
        answered++;
    }
    cli_close(cl);
    int st = 0;
    bool exited = wait_until(waitpid(s->pid, &st, WNOHANG) == s->pid, 10000);
    cr_assert(exited, "spoold did not exit within 10 s of SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spoold exit status %d", st);
    s->running = false;
    /* every answered push is stored; nothing answered was lost */
    spoold_restart(s, NULL);
    cl = cli_connect(s->port);
    long long stored = llen(cl, "q");
    cr_assert_geq(stored, last, "%lld pushes were answered (the last with length %lld), %lld stored", (long long)answered,
                  last, stored);
    cli_close(cl);
    spoold_stop(s);
}
