/*
 * test_durability.c - pending jobs survive a restart of spoold: after a
 * clean SIGTERM, and after kill -9 for every push that was acknowledged
 * (a push is replied to only once its transaction committed, with the
 * default --fsync always). Jobs popped before the crash stay gone, and a
 * restart with another --shards count is refused rather than losing track
 * of queues.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(durability, .timeout = 120);

static void job_text(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "{\"n\":%d}", i);
}

/* Pushes jobs 0..n-1 to key in one pipelined write; checks each reply. */
static void push_jobs(cli *c, const char *key, int n)
{
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < n; i++) {
        char job[32];
        job_text(job, sizeof job, i);
        const char *argv[] = { "RPUSH", key, job };
        resp_add_commandv(&b, 3, argv);
    }
    cli_send_raw(c, b.data, b.len);
    resp_buf_free(&b);
    for (int i = 0; i < n; i++)
        expect_int(cli_read(c), i + 1);
}

/* Asserts key holds exactly jobs from..to-1, in order. */
static void expect_jobs(cli *c, const char *key, int from, int to)
{
    resp_val *v = CMD(c, "LRANGE", key, "0", "-1");
    cr_assert(v->type == RESP_T_ARRAY && v->n == (size_t)(to - from),
              "%s after restart: expected %d jobs, got %s", key, to - from, resp_describe(v));
    for (int i = from; i < to; i++) {
        char job[32];
        job_text(job, sizeof job, i);
        cr_assert(strcmp(v->elem[i - from]->str, job) == 0, "%s[%d]: expected %s, got %s", key,
                  i - from, job, v->elem[i - from]->str);
    }
    resp_val_free(v);
}

Test(durability, jobs_survive_a_clean_restart)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    push_jobs(c, "emails", 30);
    push_jobs(c, "resize", 5);
    push_jobs(c, "gone", 2);
    expect_bulk(CMD(c, "LPOP", "emails"), "{\"n\":0}");
    expect_int(CMD(c, "DEL", "gone"), 1);
    cli_close(c);
    spoold_term(s);

    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    expect_jobs(c, "emails", 1, 30);
    expect_jobs(c, "resize", 0, 5);
    expect_int(CMD(c, "EXISTS", "gone"), 0);
    expect_int(CMD(c, "DBSIZE"), 2);
    expect_int(CMD(c, "RPUSH", "resize", "{\"n\":5}"), 6);
    cli_close(c);
    spoold_stop(s);
}

Test(durability, acknowledged_jobs_survive_kill_9)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    push_jobs(c, "q", 200);
    for (int i = 0; i < 50; i++) {
        char job[32];
        job_text(job, sizeof job, i);
        expect_bulk(CMD(c, "LPOP", "q"), job);
    }
    cli_close(c);
    spoold_kill9(s);

    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "q"), 150);
    expect_jobs(c, "q", 50, 200);
    expect_bulk(CMD(c, "LPOP", "q"), "{\"n\":50}");
    cli_close(c);
    spoold_stop(s);
}

Test(durability, blocking_pop_before_kill_9_stays_delivered)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    push_jobs(c, "q", 3);
    expect_pop(CMD(c, "BRPOP", "q", "0"), "q", "{\"n\":2}");
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    expect_jobs(c, "q", 0, 2);
    cli_close(c);
    spoold_stop(s);
}

Test(durability, other_shard_count_is_refused)
{
    spoold *s = spoold_start("--shards", "4", NULL);
    cli *c = cli_connect(s->port);
    push_jobs(c, "q", 3);
    cli_close(c);
    spoold_term(s);

    int code = spoold_restart_may_fail(s, "--shards", "2", NULL);
    char *log = spoold_log(s);
    cr_assert(code > 0 && code < 256, "restart with --shards 2 over a 4-shard data dir: %s "
              "(code %d); log:\n%s", code == 0 ? "accepted" : "did not exit with an error status",
              code, log);
    cr_assert(strstr(log, "shards"), "the refusal does not mention shards; log:\n%s", log);
    free(log);

    spoold_restart(s, "--shards", "4", NULL);
    c = cli_connect(s->port);
    expect_jobs(c, "q", 0, 3);
    cli_close(c);
    spoold_stop(s);
}

/* --fsync always with a slow disk (DEBUG SYNC-DELAY): a JOB.RESERVE reply
 * promises nothing durable and leaves at once, while the shard's sync is
 * still running; a push and an ack are answered only after the sync that
 * covers them returned. Replies on one connection keep their order. */
Test(durability, reserve_does_not_wait_for_the_sync_but_writes_do)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *p = cli_connect(s->port), *w = cli_connect(s->port);
    jid a = PUSH(c, "sd", "{\"a\":1}");
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "sd", "1500"), "OK");

    long long t0 = now_ms();
    SEND(p, "JOB.PUSH", "sd", "{\"b\":2}");
    resp_val *r = NULL;
    /* the push's commit is being synced (1.5 s late): a reserve meanwhile
     * is served by the same shard and answered well before that */
    SEND(w, "JOB.RESERVE", "NOWAIT", "LEASE", "60000", "FROM", "sd");
    cr_assert_eq(cli_poll_reply(w, 1000, &r), 1, "the reserve waited for the sync");
    long long t_reserve = now_ms() - t0;
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
    cr_assert_str_eq(field_str_at(__FILE__, __LINE__, r->elem[0], "id"), a.s);
    char receipt[64];
    snprintf(receipt, sizeof receipt, "%s", field_str_at(__FILE__, __LINE__, r->elem[0], "receipt"));
    resp_val_free(r);

    /* the ack waits for a sync too; on w it follows the reserve, in order */
    SEND(w, "JOB.ACK", receipt);
    SEND(w, "JOB.GET", a.s);
    resp_val *pr = NULL;
    cr_assert_eq(cli_poll_reply(p, 15000, &pr), 1, "the push got no reply");
    long long t_push = now_ms() - t0;
    cr_assert(pr->type == RESP_T_BULK || pr->type == RESP_T_SIMPLE, "%s", resp_describe(pr));
    resp_val_free(pr);
    cr_assert(t_push >= 1400, "the push was answered %lld ms after it was sent, before its sync "
              "(delayed by 1500 ms) could have returned", t_push);
    cr_assert(t_reserve < t_push, "reserve %lld ms, push %lld ms", t_reserve, t_push);
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "sd", "0"), "OK");
    expect_int(cli_read(w), 1);
    resp_val *g = cli_read(w);
    cr_assert_str_eq(field_str_at(__FILE__, __LINE__, g, "state"), "done");
    resp_val_free(g);
    cli_close(c);
    cli_close(p);
    cli_close(w);
    spoold_stop(s);
}

/* A JOB.RESERVE is answered before its commit is on disk. Lost in a kill
 * -9, the job is delivered again after the restart under the same delivery
 * number: the old receipt must not act on the new delivery (its token
 * differs), the new one works, and the job was not lost (at-least-once). */
Test(durability, receipt_of_a_reserve_lost_in_kill_9_is_stale_after_restart)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *p = cli_connect(s->port);
    jid a = PUSH(c, "lost", "{\"a\":1}");
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "lost", "5000"), "OK");
    /* a push's commit is being synced (5 s late): the reserve that follows
     * goes into the next transaction, which cannot commit before that */
    SEND(p, "JOB.PUSH", "lost", "{\"b\":2}");
    bool pushed = wait_until(llen(c, "lost") == 2, 3000); /* a read: answered before the sync */
    cr_assert(pushed, "the push did not reach the shard");
    resp_val *r = CMD(c, "JOB.RESERVE", "NOWAIT", "LEASE", "60000", "FROM", "lost");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
    cr_assert_str_eq(field_str_at(__FILE__, __LINE__, r->elem[0], "id"), a.s);
    cr_assert_eq(field_int_at(__FILE__, __LINE__, r->elem[0], "attempt"), 1);
    char old[64];
    snprintf(old, sizeof old, "%s", field_str_at(__FILE__, __LINE__, r->elem[0], "receipt"));
    resp_val_free(r);
    resp_val *pr = NULL;
    cr_assert_eq(cli_poll_reply(p, 0, &pr), 0, "the push was answered before its delayed sync");
    cli_close(c);
    cli_close(p);
    spoold_kill9(s); /* before the sync returned: the reserve was never committed */

    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    r = CMD(c, "JOB.RESERVE", "NOWAIT", "LEASE", "60000", "FROM", "lost");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "the job was lost: %s", resp_describe(r));
    cr_assert_str_eq(field_str_at(__FILE__, __LINE__, r->elem[0], "id"), a.s);
    cr_assert_eq(field_int_at(__FILE__, __LINE__, r->elem[0], "attempt"), 1, "delivered again as delivery 1");
    char fresh[64];
    snprintf(fresh, sizeof fresh, "%s", field_str_at(__FILE__, __LINE__, r->elem[0], "receipt"));
    resp_val_free(r);
    cr_assert_str_neq(old, fresh, "the new delivery has the old receipt");

    resp_val *e = CMD(c, "JOB.ACK", old);
    expect_error_has(e, "STALE ", a.s);
    e = CMD(c, "JOB.NACK", old);
    expect_error_has(e, "STALE ", "JOB.RESERVE the job again");
    expect_error_has(CMD(c, "JOB.TOUCH", old), "STALE ", old);
    cr_assert_str_eq(state_of(c, a.s), "reserved", "a stale receipt changed the job");
    expect_int(CMD(c, "JOB.ACK", fresh), 1);
    cr_assert_str_eq(state_of(c, a.s), "done");
    cli_close(c);
    spoold_stop(s);
}

/* Pushes {"a":1} to "kept" and reserves it (lease 60 s): its id, and its
 * receipt in receipt. */
static jid push_and_reserve_kept(cli *c, char receipt[64])
{
    jid a = PUSH(c, "kept", "{\"a\":1}");
    resp_val *r = CMD(c, "JOB.RESERVE", "NOWAIT", "LEASE", "60000", "FROM", "kept");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
    snprintf(receipt, 64, "%s", field_str_at(__FILE__, __LINE__, r->elem[0], "receipt"));
    resp_val_free(r);
    return a;
}

/* After spoold (stopped) starts again: job a is still reserved, and its
 * worker acks it with the receipt it had. */
static void reservation_stood(spoold *s, jid a, const char *receipt)
{
    spoold_restart(s, "--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    cr_assert_str_eq(state_of(c, a.s), "reserved");
    expect_int(CMD(c, "JOB.ACK", receipt), 1);
    cr_assert_str_eq(state_of(c, a.s), "done");
    cli_close(c);
    spoold_stop(s);
}

/* A reservation whose commit is on disk survives kill -9 with its receipt:
 * the worker that holds it acks it after the restart. */
Test(durability, receipt_of_a_committed_reserve_works_after_kill_9)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    char receipt[64];
    jid a = push_and_reserve_kept(c, receipt);
    /* its row is written late (docs/operations.md): once none waits, a push
     * on the same shard is answered after its commit, which follows the
     * reserve's write: the lease is on disk now */
    wait_reservations_saved(c, 5000);
    PUSH(c, "kept", "{\"b\":2}");
    cli_close(c);
    spoold_kill9(s);
    reservation_stood(s, a, receipt);
}

/* A reservation's row is written late, and not at all when its ack comes
 * first (docs/operations.md): the ack's own write carries the job's state,
 * so the acked job does not come back after kill -9, neither when its
 * queue keeps done jobs (the row says done) nor when it keeps none (the
 * row is gone). */
Test(durability, an_ack_before_the_reservation_was_written_survives_kill_9)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "gone", "SET", "retention", "0"));
    jid a = PUSH(c, "kept", "{\"a\":1}");
    jid b = PUSH(c, "gone", "{\"b\":1}");
    long long never = info_field(c, "persistence", "reservations_never_written");
    /* both reserves and the ack (of the current deliveries, by id) in one
     * write: one turn, long before the idle shard would write the rows */
    const char *ra[] = { "JOB.RESERVE", "NOWAIT", "FROM", "kept" }, *rb[] = { "JOB.RESERVE", "NOWAIT", "FROM", "gone" };
    const char *ack[] = { "JOB.ACK", a.s, b.s };
    resp_buf w;
    resp_buf_init(&w);
    resp_add_commandv(&w, 4, ra);
    resp_add_commandv(&w, 4, rb);
    resp_add_commandv(&w, 3, ack);
    cli_send_raw(c, w.data, w.len);
    resp_buf_free(&w);
    for (int i = 0; i < 2; i++) {
        resp_val *r = cli_read(c);
        cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
        resp_val_free(r);
    }
    expect_int(cli_read(c), 2);
    cr_assert_eq(info_field(c, "persistence", "reservations_never_written"), never + 2,
                 "the acks did not come before the reservations' rows: the test shows nothing");
    cli_close(c);
    spoold_kill9(s);

    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    cr_assert_str_eq(state_of(c, a.s), "done", "the acked job came back");
    resp_val *g = CMD(c, "JOB.GET", b.s);
    cr_assert(g->type == RESP_T_NULL || (g->type == RESP_T_ERROR && strncmp(g->str, "NOJOB", 5) == 0),
              "the acked job of a queue that keeps none "
              "came back: %s", resp_describe(g));
    resp_val_free(g);
    cr_assert_eq(info_field(c, "persistence", "reservations_unsaved"), 0);
    cli_close(c);
    spoold_stop(s);
}

/* A reservation not written yet when spoold is stopped (SIGTERM) is
 * written before the journal closes: its worker acks it after the start. */
Test(durability, a_reservation_survives_a_clean_restart)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    char receipt[64];
    jid a = push_and_reserve_kept(c, receipt);
    cli_close(c);
    spoold_term(s);
    reservation_stood(s, a, receipt);
}

/* JOB.WAIT reads, but tells that a job finished: with a slow disk its
 * reply waits for the sync of the ack it reports, like the ack's own. */
Test(durability, job_wait_reply_waits_for_the_sync_of_the_ack)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *w = cli_connect(s->port), *a = cli_connect(s->port);
    jid id = PUSH(c, "jw", "{}");
    resp_val *r = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "jw");
    cr_assert(r->type == RESP_T_ARRAY && r->n == 1, "%s", resp_describe(r));
    char receipt[64];
    snprintf(receipt, sizeof receipt, "%s", field_str_at(__FILE__, __LINE__, r->elem[0], "receipt"));
    resp_val_free(r);
    SEND(w, "JOB.WAIT", id.s, "TIMEOUT", "20000");
    wait_blocked_clients(c, 1, 10000);
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "jw", "1500"), "OK");
    SEND(a, "JOB.ACK", receipt);
    resp_val *wr = NULL;
    cr_assert_eq(cli_poll_reply(w, 1000, &wr), 0, "JOB.WAIT answered before the ack's commit was on disk: %s",
                 wr ? resp_describe(wr) : "");
    expect_int(cli_read(a), 1);
    cr_assert_eq(cli_poll_reply(w, 10000, &wr), 1, "JOB.WAIT got no reply");
    cr_assert_str_eq(field_str_at(__FILE__, __LINE__, wr, "state"), "done");
    resp_val_free(wr);
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "jw", "0"), "OK");
    cli_close(c);
    cli_close(w);
    cli_close(a);
    spoold_stop(s);
}

Test(durability, sync_delay_needs_fsync_always)
{
    spoold *s = spoold_start("--fsync", "batch", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    expect_error_has(CMD(c, "DEBUG", "SYNC-DELAY", "sd", "10"), "ERR DEBUG SYNC-DELAY", "--fsync always");
    expect_error_has(CMD(c, "DEBUG", "SYNC-DELAY", "sd", "-1"), "ERR DEBUG SYNC-DELAY", "0 to 60000");
    cli_close(c);
    spoold_stop(s);
}

/* Files in dir whose name ends in suffix. */
static int files_ending(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        n += l > sl && !strcmp(de->d_name + l - sl, suffix);
    }
    closedir(d);
    return n;
}

/* docs/operations.md: exclusive locking keeps the WAL index in memory, so
 * no -shm file appears, on a fresh data dir or on a restart of one. */
Test(durability, no_shm_file_on_start_or_restart)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    char data[400];
    snprintf(data, sizeof data, "%s/data", s->dir);
    cli *c = cli_connect(s->port);
    push_jobs(c, "q", 3);
    cr_assert_eq(files_ending(data, "-shm"), 0, "a -shm file on a fresh start");
    cr_assert_eq(files_ending(data, "-wal"), 2);
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "q"), 3);
    push_jobs(c, "r", 2);
    cr_assert_eq(files_ending(data, "-shm"), 0, "a -shm file after a restart");
    cli_close(c);
    spoold_term(s);
    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "q"), 3);
    cr_assert_eq(files_ending(data, "-shm"), 0, "a -shm file after a clean restart");
    cli_close(c);
    spoold_stop(s);
}
