/*
 * test_conn.c - connection-level commands against a real spoold: PING,
 * ECHO, inline and byte-by-byte requests, HELLO and RESP3, SELECT, QUIT,
 * CLIENT, INFO, COMMAND, CONFIG GET, TIME, DBSIZE, AUTH/--requirepass,
 * deep pipelining, and protocol garbage (error, then close, while the
 * server and its other clients carry on).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define JA "{\"job\":\"a\"}"

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(conn, .init = start_default, .fini = stop_default, .timeout = 60);

/* ================================================================ PING */

Test(conn, ping_and_echo)
{
    SEND(c, "PING");
    cli_expect_raw(c, "+PONG\r\n");
    expect_bulk(CMD(c, "PING", "hello world"), "hello world");
    expect_bulk(CMD(c, "ECHO", "a\r\nb"), "a\r\nb");
    expect_bulk(CMD(c, "ECHO", ""), "");
    expect_error(CMD(c, "ECHO"), "ERR wrong number of arguments for 'echo' command");
}

Test(conn, inline_commands)
{
    cli_send_raw(c, "PING\r\n", 6);
    expect_simple(cli_read(c), "PONG");
    cli_send_raw(c, "ECHO hi\r\n", 9);
    expect_bulk(cli_read(c), "hi");
}

Test(conn, request_split_into_single_bytes)
{
    static const char req[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    for (size_t i = 0; i + 1 < sizeof req; i++)
        cli_send_raw(c, req + i, 1);
    expect_bulk(cli_read(c), "hello");
}

/* =============================================================== HELLO */

static long long client_id(cli *cl)
{
    resp_val *v = CMD(cl, "CLIENT", "ID");
    cr_assert(v->type == RESP_T_INT && v->integer > 0, "CLIENT ID: got %s", resp_describe(v));
    long long id = v->integer;
    resp_val_free(v);
    return id;
}

static void expect_field_str(const resp_val *map, const char *key)
{
    const resp_val *f = resp_val_get(map, key);
    cr_assert(f, "HELLO reply has no '%s'", key);
    cr_assert(f->type == RESP_T_BULK || f->type == RESP_T_SIMPLE, "HELLO '%s': got %s", key,
              resp_describe(f));
}

static void expect_field_int(const resp_val *map, const char *key, long long n)
{
    const resp_val *f = resp_val_get(map, key);
    cr_assert(f, "HELLO reply has no '%s'", key);
    cr_assert(f->type == RESP_T_INT && f->integer == n, "HELLO '%s': expected %lld, got %s", key,
              n, resp_describe(f));
}

static void check_hello(resp_val *v, resp_type type, int proto, long long id)
{
    cr_assert(v->type == type, "HELLO %d: expected %s, got %s", proto, resp_type_name(type),
              resp_describe(v));
    cr_assert(v->n >= 14 && v->n % 2 == 0, "HELLO %d: expected at least 7 fields, got %zu values",
              proto, v->n);
    expect_field_str(v, "server");
    expect_field_str(v, "version");
    expect_field_int(v, "proto", proto);
    expect_field_int(v, "id", id);
    expect_field_str(v, "mode");
    expect_field_str(v, "role");
    const resp_val *mods = resp_val_get(v, "modules");
    cr_assert(mods && (mods->type == RESP_T_ARRAY || mods->type == RESP_T_SET),
              "HELLO 'modules': got %s", resp_describe(mods));
    resp_val_free(v);
}

Test(conn, hello_3_switches_to_resp3)
{
    long long id = client_id(c);
    check_hello(CMD(c, "HELLO", "3"), RESP_T_MAP, 3, id);
    SEND(c, "LPOP", "missing");
    cli_expect_raw(c, "_\r\n");
    SEND(c, "LPOP", "missing", "2");
    cli_expect_raw(c, "_\r\n");
    SEND(c, "PING");
    cli_expect_raw(c, "+PONG\r\n");
    SEND(c, "LLEN", "missing");
    cli_expect_raw(c, ":0\r\n");
}

Test(conn, hello_2_switches_back)
{
    long long id = client_id(c);
    check_hello(CMD(c, "HELLO", "3"), RESP_T_MAP, 3, id);
    check_hello(CMD(c, "HELLO", "2"), RESP_T_ARRAY, 2, id);
    SEND(c, "LPOP", "missing");
    cli_expect_raw(c, "$-1\r\n");
    SEND(c, "BRPOP", "missing", "0.05");
    cli_expect_raw(c, "*-1\r\n");
}

Test(conn, hello_without_version_reports_current_protocol)
{
    long long id = client_id(c);
    check_hello(CMD(c, "HELLO"), RESP_T_ARRAY, 2, id);
}

Test(conn, hello_4_is_noproto)
{
    expect_error(CMD(c, "HELLO", "4"), "NOPROTO");
    SEND(c, "LPOP", "missing");
    cli_expect_raw(c, "$-1\r\n");
}

Test(conn, hello_setname)
{
    resp_val *v = CMD(c, "HELLO", "3", "SETNAME", "via-hello");
    cr_assert(v->type == RESP_T_MAP, "HELLO 3 SETNAME: got %s", resp_describe(v));
    resp_val_free(v);
    expect_bulk(CMD(c, "CLIENT", "GETNAME"), "via-hello");
}

/* ====================================================== SELECT / QUIT */

Test(conn, select_only_database_zero)
{
    expect_ok(CMD(c, "SELECT", "0"));
    expect_error(CMD(c, "SELECT", "1"), "ERR");
    expect_simple(CMD(c, "PING"), "PONG");
}

Test(conn, quit_replies_ok_then_closes)
{
    expect_ok(CMD(c, "QUIT"));
    cr_assert(cli_wait_closed(c, 10000), "connection still open 10 s after QUIT");
    cli *other = cli_connect(srv->port);
    expect_simple(CMD(other, "PING"), "PONG");
    cli_close(other);
}

/* =============================================================== CLIENT */

Test(conn, client_ids_are_distinct)
{
    cli *other = cli_connect(srv->port);
    long long a = client_id(c), b = client_id(other);
    cr_assert_neq(a, b);
    cr_assert_eq(client_id(c), a, "CLIENT ID changed on the same connection");
    cli_close(other);
}

Test(conn, client_setname_getname)
{
    expect_null(CMD(c, "CLIENT", "GETNAME"));
    expect_ok(CMD(c, "CLIENT", "SETNAME", "worker-1"));
    expect_bulk(CMD(c, "CLIENT", "GETNAME"), "worker-1");
    expect_ok(CMD(c, "CLIENT", "SETINFO", "lib-name", "spool-tests"));
    expect_ok(CMD(c, "CLIENT", "SETINFO", "lib-ver", "1.0.0"));
}

/* The CLIENT LIST line of the client with this id (caller frees). */
static char *client_line(const char *list, long long id)
{
    char tag[40];
    int n = snprintf(tag, sizeof tag, "id=%lld ", id);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((size_t)n <= len && strncmp(p, tag, (size_t)n) == 0)
            return strndup(p, len);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

Test(conn, client_list_shows_each_connection)
{
    cli *other = cli_connect(srv->port);
    expect_ok(CMD(other, "CLIENT", "SETNAME", "the-other"));
    expect_ok(CMD(c, "CLIENT", "SETNAME", "lister"));
    long long me = client_id(c), them = client_id(other);
    resp_val *v = CMD(c, "CLIENT", "LIST");
    cr_assert(v->type == RESP_T_BULK, "CLIENT LIST: got %s", resp_describe(v));
    char *mine = client_line(v->str, me), *theirs = client_line(v->str, them);
    cr_assert(mine && theirs, "CLIENT LIST lacks id=%lld or id=%lld:\n%s", me, them, v->str);
    cr_assert(strstr(mine, " addr=127.0.0.1:"), "no addr= in: %s", mine);
    cr_assert(strstr(mine, " name=lister"), "no name=lister in: %s", mine);
    cr_assert(strstr(mine, " cmd="), "no cmd= in: %s", mine);
    cr_assert(strstr(theirs, " name=the-other"), "no name=the-other in: %s", theirs);
    free(mine);
    free(theirs);
    resp_val_free(v);
    cli_close(other);
}

/* ================================================================= INFO */

static resp_val *info(cli *cl, const char *section)
{
    resp_val *v = section ? CMD(cl, "INFO", section) : CMD(cl, "INFO");
    cr_assert(v->type == RESP_T_BULK, "INFO: expected bulk text, got %s", resp_describe(v));
    return v;
}

Test(conn, info_has_redis_fields_and_queues)
{
    expect_int(CMD(c, "RPUSH", "emails", JA, JA), 2);
    resp_val *v = info(c, NULL);
    cr_assert(strstr(v->str, "redis_version:"), "INFO lacks redis_version:\n%s", v->str);
    cr_assert(strstr(v->str, "loading:0"), "INFO lacks loading:0\n%s", v->str);
    const char *queues = strstr(v->str, "# Queues");
    cr_assert(queues, "INFO lacks a # Queues section:\n%s", v->str);
    const char *next = strstr(queues + 1, "\n#");
    char *section = strndup(queues, next ? (size_t)(next - queues) : strlen(queues));
    cr_assert(strstr(section, "emails"), "# Queues does not list 'emails':\n%s", section);
    free(section);
    resp_val_free(v);
}

Test(conn, info_clients_counts_connections)
{
    enum { N = 20 };
    cli *more[N];
    for (int i = 0; i < N; i++) {
        more[i] = cli_connect(srv->port);
        expect_simple(CMD(more[i], "PING"), "PONG");
    }
    cr_assert_eq(info_field(c, "clients", "connected_clients"), N + 1);
    cr_assert_eq(info_field(c, "clients", "blocked_clients"), 0);
    for (int i = 0; i < N; i++)
        cli_close(more[i]);
    bool down = wait_until(info_field(c, "clients", "connected_clients") == 1, 10000);
    cr_assert(down, "connected_clients did not drop back to 1 after %d clients closed", N);
}

/* ===================================================== COMMAND / CONFIG */

Test(conn, command_count_and_docs)
{
    resp_val *v = CMD(c, "COMMAND", "COUNT");
    cr_assert(v->type == RESP_T_INT && v->integer > 0, "COMMAND COUNT: got %s", resp_describe(v));
    resp_val_free(v);
    v = CMD(c, "COMMAND", "DOCS");
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "COMMAND DOCS: got %s",
              resp_describe(v));
    resp_val_free(v);
}

Test(conn, config_get_returns_pairs)
{
    resp_val *v = CMD(c, "CONFIG", "GET", "maxmemory");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "CONFIG GET maxmemory: got %s",
              resp_describe(v));
    cr_assert(v->elem[0]->type == RESP_T_BULK && strcmp(v->elem[0]->str, "maxmemory") == 0,
              "CONFIG GET key: got %s", resp_describe(v->elem[0]));
    cr_assert(v->elem[1]->type == RESP_T_BULK && strcmp(v->elem[1]->str, "0") == 0,
              "CONFIG GET maxmemory: value %s, expected \"0\"", resp_describe(v->elem[1]));
    resp_val_free(v);
    v = CMD(c, "CONFIG", "GET", "fsync");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2 && strcmp(v->elem[1]->str, "always") == 0,
              "CONFIG GET fsync: %s", resp_describe(v));
    resp_val_free(v);
    v = CMD(c, "CONFIG", "GET", "no-such-setting");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 0, "CONFIG GET of an unknown name: %s", resp_describe(v));
    resp_val_free(v);
}

/* Redis tools (redis_exporter, RedisInsight) read the eviction policy;
 * spool never evicts a job. */
Test(conn, config_get_maxmemory_policy_is_noeviction)
{
    resp_val *v = CMD(c, "CONFIG", "GET", "maxmemory-policy");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "CONFIG GET maxmemory-policy: got %s", resp_describe(v));
    cr_assert_str_eq(v->elem[0]->str, "maxmemory-policy");
    cr_assert_str_eq(v->elem[1]->str, "noeviction");
    resp_val_free(v);
    v = CMD(c, "CONFIG", "GET", "maxmemory*");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 4, "CONFIG GET maxmemory*: got %s", resp_describe(v));
    bool zero = false;
    for (size_t i = 0; i + 1 < v->n; i += 2)
        zero |= !strcmp(v->elem[i]->str, "maxmemory") && !strcmp(v->elem[i + 1]->str, "0");
    cr_assert(zero, "CONFIG GET maxmemory* lacks maxmemory 0: %s", resp_describe(v));
    resp_val_free(v);
}

/* "# Keyspace" says db0:keys=N like Redis, N = DBSIZE (queues with jobs). */
Test(conn, info_keyspace_counts_queues)
{
    resp_val *v = info(c, "keyspace");
    cr_assert(strstr(v->str, "# Keyspace\r\ndb0:keys=0,expires=0,avg_ttl=0\r\n"), "INFO keyspace:\n%s", v->str);
    resp_val_free(v);
    expect_int(CMD(c, "RPUSH", "a", JA, JA), 2);
    expect_int(CMD(c, "RPUSH", "b", JA), 1);
    expect_int(CMD(c, "RPUSH", "{b}c", JA), 1);
    v = info(c, "keyspace");
    cr_assert(strstr(v->str, "db0:keys=3,expires=0,avg_ttl=0\r\n"), "INFO keyspace:\n%s", v->str);
    resp_val_free(v);
    expect_int(CMD(c, "DEL", "b"), 1);
    expect_int(CMD(c, "DBSIZE"), 2);
    v = info(c, NULL);
    cr_assert(strstr(v->str, "db0:keys=2,expires=0,avg_ttl=0\r\n"), "INFO:\n%s", v->str);
    resp_val_free(v);
}

/* ==================================================== TIME / DBSIZE */

static long long bulk_number(const resp_val *v)
{
    cr_assert(v->type == RESP_T_BULK && v->len > 0, "TIME part: got %s", resp_describe(v));
    char *end;
    long long n = strtoll(v->str, &end, 10);
    cr_assert(*end == 0 && n >= 0, "TIME part is not a number: %s", v->str);
    return n;
}

Test(conn, time_is_now)
{
    resp_val *v = CMD(c, "TIME");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "TIME: got %s", resp_describe(v));
    long long sec = bulk_number(v->elem[0]), usec = bulk_number(v->elem[1]);
    long long wall = (long long)time(NULL);
    cr_assert(sec >= wall - 5 && sec <= wall + 5, "TIME seconds %lld, wall clock %lld", sec, wall);
    cr_assert(usec < 1000000, "TIME microseconds %lld", usec);
    resp_val_free(v);
}

Test(conn, dbsize_counts_non_empty_queues)
{
    expect_int(CMD(c, "DBSIZE"), 0);
    expect_int(CMD(c, "RPUSH", "a", JA, JA), 2);
    expect_int(CMD(c, "RPUSH", "b", JA), 1);
    expect_int(CMD(c, "DBSIZE"), 2);
    expect_bulks(CMD(c, "LPOP", "a", "2"), JA, JA);
    expect_int(CMD(c, "DBSIZE"), 1);
    expect_int(CMD(c, "DEL", "b"), 1);
    expect_int(CMD(c, "DBSIZE"), 0);
}

/* ========================================================= pipelining */

enum { PIPELINED = 10000 };

static void send_pipeline(cli *cl, bool push)
{
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < PIPELINED; i++) {
        char job[32];
        snprintf(job, sizeof job, "{\"n\":%d}", i);
        const char *argv[] = { push ? "RPUSH" : "LPOP", "q", job };
        resp_add_commandv(&b, push ? 3 : 2, argv);
    }
    cli_send_raw(cl, b.data, b.len);
    resp_buf_free(&b);
}

Test(conn, ten_thousand_pipelined_pushes_and_pops, .timeout = 120)
{
    send_pipeline(c, true);
    for (int i = 0; i < PIPELINED; i++) {
        resp_val *v = cli_read(c);
        cr_assert(v->type == RESP_T_INT && v->integer == i + 1, "reply %d: expected :%d, got %s",
                  i, i + 1, resp_describe(v));
        resp_val_free(v);
    }
    send_pipeline(c, false);
    for (int i = 0; i < PIPELINED; i++) {
        char job[32];
        snprintf(job, sizeof job, "{\"n\":%d}", i);
        resp_val *v = cli_read(c);
        cr_assert(v->type == RESP_T_BULK && strcmp(v->str, job) == 0,
                  "LPOP %d: expected %s, got %s", i, job, resp_describe(v));
        resp_val_free(v);
    }
    cr_assert_eq(llen(c, "q"), 0);
}

/* Pipelined requests to queues on several shards, mixed with commands the
 * connection answers itself: replies still come back in request order. */
Test(pipeline, replies_keep_order_across_shards, .timeout = 120)
{
    enum { N = 1600, KEYS = 16 };
    spoold *s = spoold_start("--shards", "4", NULL);
    cli *cl = cli_connect(s->port);
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < N; i++) {
        char key[16], job[32], num[16];
        snprintf(key, sizeof key, "k%d", i % KEYS);
        snprintf(job, sizeof job, "{\"i\":%d}", i);
        snprintf(num, sizeof num, "%d", i);
        const char *push[] = { "RPUSH", key, job };
        const char *echo[] = { "ECHO", num };
        resp_add_commandv(&b, 3, push);
        resp_add_commandv(&b, 2, echo);
    }
    cli_send_raw(cl, b.data, b.len);
    resp_buf_free(&b);
    for (int i = 0; i < N; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        resp_val *v = cli_read(cl);
        cr_assert(v->type == RESP_T_INT && v->integer == i / KEYS + 1,
                  "reply to RPUSH #%d: expected :%d, got %s", i, i / KEYS + 1, resp_describe(v));
        resp_val_free(v);
        expect_bulk(cli_read(cl), num);
    }
    cli_close(cl);
    spoold_stop(s);
}

/* Several connections push to one queue at once: every job arrives, and
 * each connection's jobs keep their order. */
Test(pipeline, concurrent_producers_keep_per_connection_order, .timeout = 120)
{
    enum { NC = 8, PER = 500 };
    spoold *s = spoold_start("--io-threads", "4", "--shards", "4", NULL);
    cli *p[NC];
    for (int k = 0; k < NC; k++) {
        p[k] = cli_connect(s->port);
        resp_buf b;
        resp_buf_init(&b);
        for (int i = 0; i < PER; i++) {
            char job[32];
            snprintf(job, sizeof job, "{\"c\":%d,\"i\":%d}", k, i);
            const char *argv[] = { "RPUSH", "q", job };
            resp_add_commandv(&b, 3, argv);
        }
        cli_send_raw(p[k], b.data, b.len);
        resp_buf_free(&b);
    }
    for (int k = 0; k < NC; k++) {
        for (int i = 0; i < PER; i++) {
            resp_val *v = cli_read(p[k]);
            cr_assert(v->type == RESP_T_INT && v->integer >= i + 1 && v->integer <= NC * PER,
                      "client %d push %d: got %s", k, i, resp_describe(v));
            resp_val_free(v);
        }
        cli_close(p[k]);
    }
    cli *cl = cli_connect(s->port);
    resp_val *all = CMD(cl, "LRANGE", "q", "0", "-1");
    cr_assert(all->type == RESP_T_ARRAY && all->n == NC * PER, "LRANGE: got %s",
              resp_describe(all));
    int next[NC] = { 0 };
    for (size_t j = 0; j < all->n; j++) {
        int k = -1, i = -1;
        cr_assert(sscanf(all->elem[j]->str, "{\"c\":%d,\"i\":%d}", &k, &i) == 2 && k >= 0 &&
                  k < NC, "element %zu: %s", j, all->elem[j]->str);
        cr_assert_eq(i, next[k], "client %d: job %d queued where %d was expected", k, i, next[k]);
        next[k]++;
    }
    resp_val_free(all);
    cli_close(cl);
    spoold_stop(s);
}

Test(pipeline, client_closing_with_replies_pending_harms_no_one, .timeout = 120)
{
    spoold *s = spoold_start(NULL);
    cli *bystander = cli_connect(s->port);
    cli *quitter = cli_connect(s->port);
    send_pipeline(quitter, true);
    cli_close(quitter);
    bool settled = wait_until(info_field(bystander, "clients", "connected_clients") == 1, 10000);
    cr_assert(settled, "the closed client is still counted");
    long long n1 = llen(bystander, "q");
    cr_assert(n1 >= 0 && n1 <= PIPELINED, "LLEN q = %lld", n1);
    resp_val *v = CMD(bystander, "RPUSH", "q", JA);
    cr_assert(v->type == RESP_T_INT && v->integer > n1 && v->integer <= PIPELINED + 1,
              "RPUSH after LLEN %lld: got %s", n1, resp_describe(v));
    resp_val_free(v);
    cli_close(bystander);
    spoold_stop(s);
}

/* ============================================================ garbage */

static void check_garbage(const char *garbage)
{
    cli *bystander = cli_connect(srv->port);
    expect_simple(CMD(bystander, "PING"), "PONG");
    cli *bad = cli_connect(srv->port);
    cli_send_raw(bad, garbage, strlen(garbage));
    resp_val *v = cli_read(bad);
    cr_assert(v->type == RESP_T_ERROR && strncmp(v->str, "ERR Protocol error", 18) == 0,
              "garbage \"%s\": expected -ERR Protocol error..., got %s", garbage, resp_describe(v));
    resp_val_free(v);
    cr_assert(cli_wait_closed(bad, 10000), "connection still open after a protocol error");
    cli_close(bad);
    expect_simple(CMD(bystander, "PING"), "PONG");
    cli *fresh = cli_connect(srv->port);
    expect_simple(CMD(fresh, "PING"), "PONG");
    cli_close(fresh);
    cli_close(bystander);
}

Test(conn, garbage_multibulk_length)
{
    check_garbage("*abc\r\n");
}

Test(conn, negative_bulk_length)
{
    check_garbage("*1\r\n$-5\r\n");
}

Test(conn, non_numeric_bulk_length)
{
    check_garbage("*2\r\n$4\r\nECHO\r\n$x1\r\n");
}

Test(conn, huge_bulk_length)
{
    check_garbage("*2\r\n$4\r\nECHO\r\n$99999999999999999\r\n");
}

Test(conn, huge_multibulk_length)
{
    check_garbage("*99999999999\r\n");
}

Test(conn, garbage_after_good_commands_keeps_their_replies)
{
    static const char req[] = "*1\r\n$4\r\nPING\r\n*1\r\n$-5\r\n";
    cli *bad = cli_connect(srv->port);
    cli_send_raw(bad, req, sizeof req - 1);
    expect_simple(cli_read(bad), "PONG");
    expect_error(cli_read(bad), "ERR Protocol error");
    cr_assert(cli_wait_closed(bad, 10000), "connection still open after a protocol error");
    cli_close(bad);
    expect_simple(CMD(c, "PING"), "PONG");
}

/* ================================================================ AUTH */

TestSuite(auth, .timeout = 60);

static spoold *start_with_password(void)
{
    return spoold_start("--requirepass", "secret", NULL);
}

Test(auth, commands_need_auth)
{
    spoold *s = start_with_password();
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "PING"), "NOAUTH Authentication required.");
    expect_error(CMD(cl, "LPUSH", "q", JA), "NOAUTH Authentication required.");
    expect_error(CMD(cl, "AUTH", "wrong"),
                 "WRONGPASS invalid username-password pair or user is disabled.");
    expect_error(CMD(cl, "LLEN", "q"), "NOAUTH");
    expect_ok(CMD(cl, "AUTH", "secret"));
    expect_simple(CMD(cl, "PING"), "PONG");
    cr_assert_eq(llen(cl, "q"), 0, "a push refused with NOAUTH was stored");
    expect_int(CMD(cl, "LPUSH", "q", JA), 1);
    cli_close(cl);
    spoold_stop(s);
}

Test(auth, config_get_never_shows_the_password)
{
    spoold *s = start_with_password();
    cli *cl = cli_connect(s->port);
    expect_ok(CMD(cl, "AUTH", "secret"));
    resp_val *v = CMD(cl, "CONFIG", "GET", "requirepass");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "CONFIG GET requirepass: %s", resp_describe(v));
    cr_assert_str_eq(v->elem[1]->str, "(set)", "CONFIG GET requirepass shows %s", v->elem[1]->str);
    resp_val_free(v);
    v = CMD(cl, "CONFIG", "GET", "*");
    cr_assert(v->type == RESP_T_ARRAY && v->n >= 2, "CONFIG GET *: %s", resp_describe(v));
    for (size_t i = 0; i < v->n; i++)
        cr_assert(v->elem[i]->type != RESP_T_BULK || strstr(v->elem[i]->str, "secret") == NULL,
                  "CONFIG GET * shows the password in element %zu", i);
    resp_val_free(v);
    cli_close(cl);
    spoold_stop(s);
}

Test(auth, auth_is_per_connection)
{
    spoold *s = start_with_password();
    cli *a = cli_connect(s->port), *b = cli_connect(s->port);
    expect_ok(CMD(a, "AUTH", "secret"));
    expect_error(CMD(b, "PING"), "NOAUTH");
    expect_simple(CMD(a, "PING"), "PONG");
    cli_close(a);
    cli_close(b);
    spoold_stop(s);
}

Test(auth, hello_with_auth)
{
    spoold *s = start_with_password();
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "HELLO", "3", "AUTH", "default", "wrong"), "WRONGPASS");
    resp_val *v = CMD(cl, "HELLO", "3", "AUTH", "default", "secret");
    cr_assert(v->type == RESP_T_MAP, "HELLO 3 AUTH: got %s", resp_describe(v));
    const resp_val *proto = resp_val_get(v, "proto");
    cr_assert(proto && proto->type == RESP_T_INT && proto->integer == 3);
    resp_val_free(v);
    SEND(cl, "LPOP", "missing");
    cli_expect_raw(cl, "_\r\n");
    cli_close(cl);
    spoold_stop(s);
}

Test(auth, hello_without_auth_is_refused)
{
    spoold *s = start_with_password();
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "HELLO", "3"), "NOAUTH");
    expect_error(CMD(cl, "PING"), "NOAUTH");
    cli_close(cl);
    spoold_stop(s);
}

/* ============================================================ lifecycle */

Test(lifecycle, sigterm_with_clients_connected_exits_cleanly, .timeout = 60)
{
    spoold *s = spoold_start(NULL);
    cli *idle = cli_connect(s->port);
    cli *blocked = cli_connect(s->port);
    expect_int(CMD(idle, "RPUSH", "q", JA), 1);
    SEND(blocked, "BRPOP", "empty", "0");
    wait_blocked_clients(idle, 1, 10000);
    spoold_stop(s);
    cli_close(idle);
    cli_close(blocked);
}

Test(lifecycle, config_file_sets_options, .timeout = 60)
{
    char path[] = "/tmp/spool-it-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    static const char conf[] = "requirepass fromfile\nmax-payload 50\n";
    cr_assert(write(fd, conf, sizeof conf - 1) == (ssize_t)(sizeof conf - 1));
    close(fd);
    spoold *s = spoold_start("--config", path, NULL);
    unlink(path);
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "PING"), "NOAUTH");
    expect_ok(CMD(cl, "AUTH", "fromfile"));
    char big[64];
    memset(big, 'x', sizeof big - 1);
    big[0] = big[sizeof big - 2] = '"';
    big[sizeof big - 1] = 0;
    expect_error(CMD(cl, "RPUSH", "q", big), "TOOBIG");
    cli_close(cl);
    spoold_stop(s);
}
