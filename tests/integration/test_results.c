/*
 * test_results.c - job results, progress and JOB.WAIT against a real
 * spoold (docs/protocol.md, "Results, progress and waiting"): JOB.ACK …
 * RESULT and its limits, JOB.PROGRESS values and its event, JOB.GET
 * showing both, JOB.WAIT answered by an ack on another connection, at once
 * for a finished job, nil after its timeout, for dead, expired and deleted jobs, and
 * results kept across a restart.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(results, .init = start_default, .fini = stop_default, .timeout = 60);

/* Reserves one job of q and returns its receipt. */
static void reserve_one(cli *cl, const char *q, char *receipt, size_t cap)
{
    resp_val *v = CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q);
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "reserve from %s: %s", q, resp_describe(v));
    snprintf(receipt, cap, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
}

Test(results, ack_with_result_is_shown_by_job_get)
{
    jid id = PUSH(c, "thumbs", "{\"img\":1}");
    char r[64];
    reserve_one(c, "thumbs", r, sizeof r);
    expect_int(CMD(c, "JOB.ACK", r, "RESULT", "{\"url\":\"/t/1.png\"}"), 1);
    resp_val *v = CMD(c, "JOB.GET", id.s);
    cr_assert_str_eq(field_str(v, "state"), "done");
    cr_assert_str_eq(field_str(v, "result"), "{\"url\":\"/t/1.png\"}");
    field_nil(v, "progress");
    resp_val_free(v);
    /* a second ack of the same delivery is refused, the result kept */
    expect_error(CMD(c, "JOB.ACK", r, "RESULT", "other"), "STALE");
    /* a done job's result is read back from the journal each time it is shown */
    for (int i = 0; i < 2; i++) {
        v = CMD(c, "JOB.GET", id.s);
        cr_assert_str_eq(field_str(v, "result"), "{\"url\":\"/t/1.png\"}");
        resp_val_free(v);
    }
    v = CMD(c, "QUEUE.PEEK", "thumbs", "STATE", "done");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "QUEUE.PEEK: %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "result"), "{\"url\":\"/t/1.png\"}");
    resp_val_free(v);
}

Test(results, ack_result_shape_and_size_are_checked)
{
    char r[64];
    PUSH(c, "q", "1");
    reserve_one(c, "q", r, sizeof r);
    expect_error_has(CMD(c, "JOB.ACK", r, r, "RESULT", "x"), "ERR", "one receipt");
    expect_error_has(CMD(c, "JOB.ACK", r, "RESULT"), "ERR", "one receipt");
    char *big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    expect_error_has(CMD(c, "JOB.ACK", r, "RESULT", big), "TOOBIG", "max-result");
    free(big);
    EXPECT_STATE(c, r, "reserved"); /* nothing was acked */
}

Test(results, progress_values_events_and_errors)
{
    cli *sub = cli_connect(srv->port);
    resp_val_free(CMD(sub, "SUBSCRIBE", "spool:events:work"));
    jid id = PUSH(c, "work", "{}");
    char r[64];
    reserve_one(c, "work", r, sizeof r);
    expect_ok(CMD(c, "JOB.PROGRESS", r, "42.5"));
    expect_ok(CMD(c, "JOB.PROGRESS", r, "{\"page\":3,\"of\":9}"));
    expect_error_has(CMD(c, "JOB.PROGRESS", r, "101"), "ERR", "0 to 100");
    expect_error_has(CMD(c, "JOB.PROGRESS", r, "[1]"), "ERR", "JSON object");
    expect_error_has(CMD(c, "JOB.PROGRESS", r, "{bad"), "ERR", "JSON object");
    char big[5000];
    memset(big, ' ', sizeof big);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    big[sizeof big - 1] = '\0';
    expect_error_has(CMD(c, "JOB.PROGRESS", r, big), "TOOBIG", "4096 bytes");
    char stale[64];
    snprintf(stale, sizeof stale, "%s-9", id.s);
    expect_error(CMD(c, "JOB.PROGRESS", stale, "1"), "STALE");
    resp_val *v = CMD(c, "JOB.GET", id.s);
    cr_assert_str_eq(field_str(v, "progress"), "{\"page\":3,\"of\":9}");
    resp_val_free(v);
    /* events: pushed, reserved, progress 42.5, progress {...} */
    int progress = 0;
    long long deadline = now_ms() + 5000;
    while (progress < 2 && now_ms() < deadline) {
        resp_val *e = NULL;
        if (cli_poll_reply(sub, 200, &e) != 1)
            continue;
        if (e->type == RESP_T_ARRAY && e->n == 3 && strstr(e->elem[2]->str, "\"event\":\"progress\"")) {
            progress++;
            cr_assert(strstr(e->elem[2]->str, progress == 1 ? "\"progress\":42.5" : "\"progress\":{\"page\":3"),
                      "progress event: %s", e->elem[2]->str);
        }
        resp_val_free(e);
    }
    cr_assert_eq(progress, 2, "expected two progress events");
    cli_close(sub);
    expect_int(CMD(c, "JOB.ACK", r), 1);
    expect_error(CMD(c, "JOB.PROGRESS", r, "50"), "STALE");
}

Test(results, wait_returns_the_result_acked_on_another_connection)
{
    jid id = PUSH(c, "thumbs", "{\"img\":2}");
    cli *waiter = cli_connect(srv->port);
    SEND(waiter, "JOB.WAIT", id.s, "TIMEOUT", "20000");
    wait_blocked_clients(c, 1, 5000); /* parked on the job's shard */
    cli *worker = cli_connect(srv->port);
    char r[64];
    reserve_one(worker, "thumbs", r, sizeof r);
    expect_ok(CMD(worker, "JOB.PROGRESS", r, "50"));
    expect_no_reply_for(waiter, 100, "JOB.WAIT on a reserved job");
    expect_int(CMD(worker, "JOB.ACK", r, "RESULT", "{\"url\":\"/t/2.png\"}"), 1);
    resp_val *v = cli_read(waiter);
    cr_assert_str_eq(field_str(v, "id"), id.s);
    cr_assert_str_eq(field_str(v, "state"), "done");
    cr_assert_str_eq(field_str(v, "result"), "{\"url\":\"/t/2.png\"}");
    cr_assert_str_eq(field_str(v, "progress"), "50");
    resp_val_free(v);
    /* finished already: at once */
    long long t0 = now_ms();
    v = CMD(waiter, "JOB.WAIT", id.s, "TIMEOUT", "5000");
    cr_assert_str_eq(field_str(v, "result"), "{\"url\":\"/t/2.png\"}");
    cr_assert_lt(now_ms() - t0, 1000);
    resp_val_free(v);
    cli_close(worker);
    cli_close(waiter);
}

Test(results, wait_times_out_with_nil)
{
    jid id = PUSH(c, "slow", "{}");
    long long t0 = now_ms();
    expect_null(CMD(c, "JOB.WAIT", id.s, "TIMEOUT", "300"));
    long long took = now_ms() - t0;
    /* the broker's timer and this test's clock differ by up to a millisecond or two */
    cr_assert(took >= 295 && took < 3000, "JOB.WAIT TIMEOUT 300 answered after %lld ms", took);
    EXPECT_STATE(c, id.s, "ready");
    /* two waiters on one job, one times out, the other gets the record */
    cli *w2 = cli_connect(srv->port);
    SEND(w2, "JOB.WAIT", id.s);
    expect_null(CMD(c, "JOB.WAIT", id.s, "TIMEOUT", "50"));
    char r[64];
    reserve_one(c, "slow", r, sizeof r);
    expect_int(CMD(c, "JOB.ACK", r), 1);
    resp_val *v = cli_read(w2);
    cr_assert_str_eq(field_str(v, "state"), "done");
    field_nil(v, "result");
    resp_val_free(v);
    cli_close(w2);
}

Test(results, wait_sees_dead_and_deleted_jobs)
{
    jid a = PUSHO(c, "q", "{}", "RETRIES", "0");
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.WAIT", a.s);
    expect_no_reply_for(w, 100, "JOB.WAIT");
    char r[64];
    reserve_one(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "ERROR", "boom"), "dead");
    resp_val *v = cli_read(w);
    cr_assert_str_eq(field_str(v, "state"), "dead");
    cr_assert_str_eq(field_str(v, "last_error"), "boom");
    resp_val_free(v);
    jid b = PUSH(c, "q", "{}");
    SEND(w, "JOB.WAIT", b.s);
    expect_no_reply_for(w, 100, "JOB.WAIT");
    expect_int(CMD(c, "JOB.DEL", b.s), 1);
    expect_error_has(cli_read(w), "NOJOB", "deleted");
    expect_error(CMD(c, "JOB.WAIT", b.s), "NOJOB");
    expect_error_has(CMD(c, "JOB.WAIT", "nope"), "ERR", "not a job id");
    expect_error_has(CMD(c, "JOB.WAIT", a.s, "TIMEOUT", "-1"), "ERR", "JOB.WAIT");
    cli_close(w);
}

/* An expired job has finished: JOB.WAIT answers with its record, also when
 * the queue keeps no finished jobs (the waiter is answered before the job
 * is dropped). */
Test(results, wait_returns_for_expired_jobs)
{
    jid a = PUSHO(c, "late", "{}", "EXPIRES", "200");
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.WAIT", a.s, "TIMEOUT", "20000");
    resp_val *v = cli_read(w);
    cr_assert_str_eq(field_str(v, "id"), a.s);
    cr_assert_str_eq(field_str(v, "state"), "expired");
    resp_val_free(v);
    v = CMD(w, "JOB.WAIT", a.s, "TIMEOUT", "20000"); /* expired already: at once */
    cr_assert_str_eq(field_str(v, "state"), "expired");
    resp_val_free(v);

    expect_ok(CMD(c, "QUEUE.CONFIG", "gone", "SET", "retention", "0"));
    jid b = PUSHO(c, "gone", "{}", "EXPIRES", "200");
    SEND(w, "JOB.WAIT", b.s, "TIMEOUT", "20000");
    v = cli_read(w);
    cr_assert_str_eq(field_str(v, "id"), b.s);
    cr_assert_str_eq(field_str(v, "state"), "expired");
    resp_val_free(v);
    expect_error(CMD(c, "JOB.WAIT", b.s), "NOJOB"); /* not kept */
    cli_close(w);
}

Test(results, a_waiter_that_disconnects_is_withdrawn)
{
    jid id = PUSH(c, "q", "{}");
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.WAIT", id.s);
    wait_blocked_clients(c, 1, 5000);
    cli_close(w);
    wait_blocked_clients(c, 0, 5000);
    cr_assert(wait_until(info_field(c, "clients", "connected_clients") == 1, 5000),
              "the waiting connection is gone");
    /* finishing the job now answers nobody and breaks nothing */
    char r[64];
    reserve_one(c, "q", r, sizeof r);
    expect_int(CMD(c, "JOB.ACK", r, "RESULT", "\"late\""), 1);
    resp_val *v = CMD(c, "JOB.WAIT", id.s, "TIMEOUT", "100");
    cr_assert_str_eq(field_str(v, "result"), "\"late\"");
    resp_val_free(v);
}

Test(results, results_and_progress_survive_a_restart)
{
    jid a = PUSH(c, "q", "{}");
    jid b = PUSH(c, "q", "{}");
    char ra[64], rb[64];
    reserve_one(c, "q", ra, sizeof ra);
    reserve_one(c, "q", rb, sizeof rb);
    expect_ok(CMD(c, "JOB.PROGRESS", rb, "7"));
    expect_int(CMD(c, "JOB.ACK", ra, "RESULT", "answer-a"), 1);
    cli_close(c);
    spoold_kill9(srv);
    spoold_restart(srv, NULL);
    c = cli_connect(srv->port);
    resp_val *v = CMD(c, "JOB.WAIT", a.s, "TIMEOUT", "1000");
    cr_assert_str_eq(field_str(v, "result"), "answer-a");
    resp_val_free(v);
    v = CMD(c, "JOB.GET", b.s);
    cr_assert_str_eq(field_str(v, "progress"), "7");
    field_nil(v, "result");
    resp_val_free(v);
}

Test(results, max_result_is_configurable)
{
    spoold *s2 = spoold_start("--max-result", "8", NULL);
    cli *c2 = cli_connect(s2->port);
    PUSH(c2, "q", "{}");
    char r[64];
    reserve_one(c2, "q", r, sizeof r);
    expect_error_has(CMD(c2, "JOB.ACK", r, "RESULT", "123456789"), "TOOBIG", "8 bytes");
    expect_int(CMD(c2, "JOB.ACK", r, "RESULT", "12345678"), 1);
    cli_close(c2);
    spoold_stop(s2);
}
