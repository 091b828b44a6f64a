/*
 * test_colocate.c - where commands run (docs/threads.md): with --colocate
 * yes each shard thread also serves clients, and a client
 * whose commands keep going to the shard of another thread moves there at
 * a quiet moment. These tests check that a move loses, doubles and
 * reorders no reply (INCR counts each command), that a client pipelining
 * deeper than CONN_MOVE_DEPTH stays while no thread is busy and leaves
 * its shard's thread (once) when that thread is busy and another is not
 * (DEBUG THREAD-LOAD stands in for the measured load), that a move carries a request cut in
 * two across it and the client's state, that a blocking pop, MULTI and a
 * subscription still work, that a connection WATCHing does not move, and
 * that a script looping on a shard does not freeze the clients of its
 * thread (-BUSY and SCRIPT KILL still answer). The same order and stop
 * checks run with --colocate no (separate I/O threads, the default),
 * where nothing moves.
 *
 * Moves are observed through INFO stats moved_connections; two
 * connections accepted one after the other land on different threads
 * (round robin), so exactly one of them starts away from a given shard.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define STREAK 8 /* CONN_MOVE_STREAK (broker/conn.h) */

static spoold *srv;
static cli *ctl;

static void start_colocated(void)
{
    srv = spoold_start("--shards", "2", "--colocate", "yes", "--busy-script-time", "200", "--enable-debug-command",
                       "yes", NULL);
    ctl = cli_connect(srv->port);
}

static void start_split(void)
{
    srv = spoold_start("--shards", "2", "--colocate", "no", "--io-threads", "2", NULL);
    ctl = cli_connect(srv->port);
}

static void stop(void)
{
    cli_close(ctl);
    ctl = NULL;
    spoold_stop(srv);
    srv = NULL;
}

TestSuite(colocate, .init = start_colocated, .fini = stop, .timeout = 60);
TestSuite(split, .init = start_split, .fini = stop, .timeout = 60);

static long long moved(void)
{
    return info_field(ctl, "stats", "moved_connections");
}

/* Waits until moved_connections reaches n. */
static void wait_moved(long long n)
{
    long long deadline = now_ms() + 10000;
    while (moved() < n && now_ms() < deadline)
        sleep_ms(5);
    cr_assert_eq(moved(), n, "moved_connections: expected %lld", n);
}

/* Rounds of `batch` pipelined INCR key, each round read back before the
 * next: every reply must be the next count. Returns the last count. */
static long long incr_rounds(cli *cl, const char *key, long long from, int rounds, int batch)
{
    long long n = from;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++)
            SEND(cl, "INCR", key);
        for (int i = 0; i < batch; i++)
            expect_int(cli_read(cl), ++n);
    }
    return n;
}

static void each_reply_once_in_order(bool moves)
{
    long long before = moved();
    cli *a = cli_connect(srv->port), *b = cli_connect(srv->port);
    long long na = incr_rounds(a, "{t}a", 0, 20, 2); /* two in flight at most: CONN_MOVE_DEPTH */
    long long nb = incr_rounds(b, "{t}b", 0, 20, 2);
    wait_moved(before + (moves ? 1 : 0));
    /* after the move, a deep pipeline on both */
    na = incr_rounds(a, "{t}a", na, 1, 300);
    nb = incr_rounds(b, "{t}b", nb, 1, 300);
    expect_bulk(CMD(ctl, "GET", "{t}a"), "340");
    expect_bulk(CMD(ctl, "GET", "{t}b"), "340");
    cr_assert_eq(na + nb, 680);
    cli_close(a);
    cli_close(b);
}

Test(colocate, a_client_moves_to_its_shard_and_every_reply_comes_once_in_order)
{
    each_reply_once_in_order(true);
}

Test(split, separate_io_threads_keep_every_reply_in_order_and_move_nothing)
{
    each_reply_once_in_order(false);
    cr_assert_eq(info_field(ctl, "server", "io_threads"), 2);
}

/* A client that pipelines deeper than CONN_MOVE_DEPTH stays: its batch
 * shares the hops, and its parsing stays off the shard's core. */
Test(colocate, a_client_that_pipelines_deep_stays_where_it_is)
{
    long long before = moved();
    cli *a = cli_connect(srv->port), *b = cli_connect(srv->port);
    incr_rounds(a, "{t}a", 0, 10, 16);
    incr_rounds(b, "{t}b", 0, 10, 16);
    cr_assert_eq(moved(), before, "a client pipelining 16 deep moved");
    cli_close(a);
    cli_close(b);
}

/* A client that pipelines deep leaves its shard's thread while that
 * thread is busy and another is not, and does not come back: one core
 * parses, the other runs the shard. a and b start on different threads
 * and send to the same shard s; both threads are made busy (no move),
 * then thread 0 alone, then thread 1 alone (DEBUG THREAD-LOAD): the one that starts on thread s moves once, in the
 * phase where thread s is the busy one, the other never (it is not on
 * its shard's thread, or it is and that thread is idle). */
Test(colocate, a_client_that_pipelines_deep_leaves_a_busy_shard_thread)
{
    long long before = moved();
    cli *a = cli_connect(srv->port), *b = cli_connect(srv->port);
    long long n = 0;
    /* both busy: nowhere better to go */
    expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", "0", "900"));
    expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", "1", "900"));
    n = incr_rounds(a, "{t}k", n, 3, 16);
    n = incr_rounds(b, "{t}k", n, 3, 16);
    cr_assert_eq(moved(), before, "a deep client left one busy thread for another as busy");
    for (int busy = 0; busy < 2; busy++) {
        expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", busy ? "1" : "0", "900"));
        expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", busy ? "0" : "1", "0"));
        n = incr_rounds(a, "{t}k", n, 3, 16);
        n = incr_rounds(b, "{t}k", n, 3, 16);
    }
    wait_moved(before + 1);
    /* more rounds with thread 1 still busy: nothing moves back */
    n = incr_rounds(a, "{t}k", n, 3, 16);
    n = incr_rounds(b, "{t}k", n, 3, 16);
    cr_assert_eq(moved(), before + 1, "moves: %lld, expected exactly one", moved() - before);
    expect_bulk(CMD(ctl, "GET", "{t}k"), "384");
    cr_assert_eq(n, 384);
    expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", "0", "OFF"));
    expect_ok(CMD(ctl, "DEBUG", "THREAD-LOAD", "1", "OFF"));
    expect_error(CMD(ctl, "DEBUG", "THREAD-LOAD", "2", "900"), "ERR DEBUG THREAD-LOAD k per-mille|OFF");
    cli_close(a);
    cli_close(b);
}

/* The parser's state rides along: a request whose first half arrived
 * before the move and whose second half after it is one request. */
Test(colocate, a_request_cut_in_two_across_the_move_arrives_whole)
{
    long long before = moved();
    cli *a = cli_connect(srv->port), *b = cli_connect(srv->port);
    cli *cl[2] = { a, b };
    for (int k = 0; k < 2; k++)
        incr_rounds(cl[k], k ? "{t}b" : "{t}a", 0, STREAK - 1, 1);
    for (int k = 0; k < 2; k++) {
        /* the STREAK-th request and the next one cut short, in one write */
        char req[80];
        int n = snprintf(req, sizeof req, "*2\r\n$4\r\nINCR\r\n$4\r\n{t}%c\r\n*2\r\n$4\r\nINCR\r\n$4\r\n{t}",
                         k ? 'b' : 'a');
        cli_send_raw(cl[k], req, (size_t)n);
        expect_int(cli_read(cl[k]), STREAK);
    }
    wait_moved(before + 1);
    cli_send_raw(a, "a\r\n", 3);
    cli_send_raw(b, "b\r\n", 3);
    expect_int(cli_read(a), STREAK + 1);
    expect_int(cli_read(b), STREAK + 1);
    cli_close(a);
    cli_close(b);
}

Test(colocate, a_moved_client_keeps_its_name_protocol_and_id)
{
    long long before = moved();
    cli *cl[2] = { cli_connect(srv->port), cli_connect(srv->port) };
    long long ids[2];
    for (int k = 0; k < 2; k++) {
        expect_ok(CMD(cl[k], "CLIENT", "SETNAME", k ? "second" : "first"));
        resp_val *v = CMD(cl[k], "CLIENT", "ID");
        ids[k] = v->integer;
        resp_val_free(v);
        resp_val_free(CMD(cl[k], "HELLO", "3"));
        incr_rounds(cl[k], "{t}a", k * 10, 10, 1);
    }
    wait_moved(before + 1);
    for (int k = 0; k < 2; k++) {
        expect_bulk(CMD(cl[k], "CLIENT", "GETNAME"), k ? "second" : "first");
        expect_int(CMD(cl[k], "CLIENT", "ID"), ids[k]);
        resp_val *v = CMD(cl[k], "HGETALL", "{t}nothing");
        cr_assert_eq(v->type, RESP_T_MAP, "RESP3 kept: got %s", resp_describe(v));
        resp_val_free(v);
        cli_close(cl[k]);
    }
    cr_assert_eq(info_field(ctl, "clients", "connected_clients"), 1);
}

/* A blocking pop, a transaction and a subscription on moved clients. */
Test(colocate, a_moved_client_blocks_pops_runs_multi_and_subscribes)
{
    long long before = moved();
    cli *cl[2] = { cli_connect(srv->port), cli_connect(srv->port) };
    for (int k = 0; k < 2; k++)
        incr_rounds(cl[k], "{t}a", k * 10, 10, 1);
    wait_moved(before + 1);
    for (int k = 0; k < 2; k++)
        SEND(cl[k], "BLPOP", "{t}list", "0");
    wait_blocked_clients(ctl, 2, 10000);
    expect_int(CMD(ctl, "RPUSH", "{t}list", "1", "2"), 2);
    for (int k = 0; k < 2; k++) {
        resp_val *v = cli_read(cl[k]);
        cr_assert_eq(v->type, RESP_T_ARRAY, "BLPOP: got %s", resp_describe(v));
        resp_val_free(v);
    }
    expect_ok(CMD(cl[0], "MULTI"));
    expect_simple(CMD(cl[0], "INCR", "{t}m"), "QUEUED");
    expect_simple(CMD(cl[0], "INCR", "{t}m"), "QUEUED");
    resp_val *v = CMD(cl[0], "EXEC");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2 && v->elem[1]->integer == 2, "EXEC: got %s", resp_describe(v));
    resp_val_free(v);
    resp_val_free(CMD(cl[1], "SUBSCRIBE", "news"));
    long long deadline = now_ms() + 5000;
    long long got = 0;
    while (got < 1 && now_ms() < deadline) {
        v = CMD(ctl, "PUBLISH", "news", "hello");
        got = v->integer;
        resp_val_free(v);
    }
    cr_assert_eq(got, 1, "the moved subscriber is counted");
    v = cli_read(cl[1]);
    cr_assert(v->n == 3 && strcmp(v->elem[2]->str, "hello") == 0, "message: got %s", resp_describe(v));
    resp_val_free(v);
    cli_close(cl[0]);
    cli_close(cl[1]);
}

Test(colocate, a_client_watching_keys_stays_where_it_is)
{
    long long before = moved();
    cli *cl[2] = { cli_connect(srv->port), cli_connect(srv->port) };
    for (int k = 0; k < 2; k++) {
        expect_ok(CMD(cl[k], "WATCH", "{t}w"));
        incr_rounds(cl[k], k ? "{t}b" : "{t}a", 0, 12, 1);
    }
    cr_assert_eq(moved(), before, "a connection with WATCHed keys moved");
    for (int k = 0; k < 2; k++) {
        expect_ok(CMD(cl[k], "UNWATCH"));
        incr_rounds(cl[k], k ? "{t}b" : "{t}a", 12, 10, 1);
    }
    wait_moved(before + 1);
    cli_close(cl[0]);
    cli_close(cl[1]);
}

/* Both clients end up on the thread of a's shard; a script loops there:
 * they are still answered (-BUSY for that shard, the other shard's keys
 * at once) and one of them ends it with SCRIPT KILL. */
Test(colocate, a_looping_script_does_not_freeze_the_clients_of_its_thread)
{
    char other[32];
    other_shard_key(ctl, "a", other, sizeof other);
    long long before = moved();
    cli *cl[2] = { cli_connect(srv->port), cli_connect(srv->port) };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 10; i++)
            expect_null(CMD(cl[k], "GET", "a"));
    wait_moved(before + 1);
    cli *looper = cli_connect(srv->port);
    SEND(looper, "EVAL", "while true do end", "1", "a");
    for (int k = 0; k < 2; k++) {
        /* served once the script has run busy-script-time (200 ms) */
        SEND(cl[k], "SET", other, "works");
        resp_val *v = NULL;
        cr_assert_eq(cli_poll_reply(cl[k], 5000, &v), 1, "client %d got no answer while the script ran", k);
        expect_ok(v);
        expect_error(CMD(cl[k], "GET", "a"), "BUSY");
    }
    expect_ok(CMD(cl[1], "SCRIPT", "KILL"));
    cr_assert(error_has(cli_read(looper), "Script killed by user with SCRIPT KILL"));
    expect_ok(CMD(cl[0], "SET", "a", "after"));
    cli_close(looper);
    cli_close(cl[0]);
    cli_close(cl[1]);
}

/* SIGTERM with a moved client, a blocked one and an idle one: every
 * thread's I/O side stops, then its shard, and spoold exits cleanly. */
static void stops_cleanly(bool moves)
{
    long long before = moved();
    cli *cl[2] = { cli_connect(srv->port), cli_connect(srv->port) };
    for (int k = 0; k < 2; k++)
        incr_rounds(cl[k], "{t}a", k * 10, 10, 1);
    wait_moved(before + (moves ? 1 : 0));
    cli *w = cli_connect(srv->port);
    SEND(w, "BLPOP", "{t}nothing", "0");
    wait_blocked_clients(ctl, 1, 10000);
    spoold_term(srv); /* fails the test unless it exits with status 0 within the harness's bound */
    cr_assert(cli_wait_closed(w, 5000), "the blocked client was not closed");
    cli_close(w);
    cli_close(cl[0]);
    cli_close(cl[1]);
}

Test(colocate, sigterm_stops_every_thread_with_moved_and_blocked_clients)
{
    stops_cleanly(true);
}

Test(split, sigterm_stops_io_threads_then_shards)
{
    stops_cleanly(false);
}

/* INFO server's colocate of a spoold started with args (and --shards 2). */
static bool colocated_with(const char *a, const char *b)
{
    spoold *o = spoold_start("--shards", "2", a, b, NULL);
    cli *c = cli_connect(o->port);
    resp_val *v = CMD(c, "INFO", "server");
    cr_assert(v->type == RESP_T_BULK, "INFO server: %s", resp_describe(v));
    bool yes = strstr(v->str, "\ncolocate:yes\r") != NULL;
    cr_assert(yes || strstr(v->str, "\ncolocate:no\r"), "INFO server has no colocate line:\n%s", v->str);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(o);
    return yes;
}

/* Run to completion is the default; a number of I/O threads given
 * without colocate asks for separate I/O threads. */
Test(split, colocate_is_the_default_unless_io_threads_is_set)
{
    cr_assert(colocated_with(NULL, NULL), "spoold without --colocate is not co-located");
    cr_assert(!colocated_with("--io-threads", "3"), "--io-threads 3 without --colocate is co-located");
    cr_assert(colocated_with("--colocate", "yes"));
}

Test(split, colocate_with_another_io_thread_count_is_refused_by_name)
{
    char data[320];
    snprintf(data, sizeof data, "%s/other", srv->dir);
    char *argv[] = { (char *)spoold_path(), "--port", "0", "--data-dir", data, "--shards", "2", "--colocate", "yes",
                     "--io-threads", "3", NULL };
    char *out = NULL;
    int code = run_capture(argv, &out, 10000);
    cr_assert(code > 0, "spoold --colocate yes --shards 2 --io-threads 3 started (exit %d):\n%s", code, out);
    cr_assert(strstr(out, "--colocate yes") && strstr(out, "--io-threads 3"), "the refusal names neither setting:\n%s",
              out);
    free(out);
}
