/*
 * test_batch.c - batches against a real spoold: 1,000 jobs over 3 queues
 * on 3 different shards, 3 of them dead, a kill -9 in the middle of the
 * run: ON-COMPLETE is pushed exactly once (also after another restart),
 * ON-SUCCESS never, ON-DEATH once; and the edges: closed and unknown
 * batches refuse jobs, an empty batch completes when closed, ON-DEATH
 * fires at the first dead job, a deleted job counts as dead, a push that
 * finds its UNIQUE job does not join.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(batch, .timeout = 180);

static long long shard_of_id(const char *id)
{
    return strtoll(id + 13, NULL, 16) & 0x3ff;
}

/* Names of n queues that live on n different shards (found by pushing a
 * probe job: a job id names its shard), probes deleted again. */
static void queues_on_distinct_shards(cli *c, char names[][16], int n)
{
    int found = 0;
    long long used[16];
    for (int i = 0; i < 200 && found < n; i++) {
        char q[16];
        snprintf(q, sizeof q, "jobs-%d", i);
        jid probe = PUSH(c, q, "{}");
        long long k = shard_of_id(probe.s);
        expect_int(CMD(c, "JOB.DEL", probe.s), 1);
        bool dup = false;
        for (int j = 0; j < found; j++)
            dup |= used[j] == k;
        if (!dup) {
            used[found] = k;
            snprintf(names[found++], 16, "%s", q);
        }
    }
    cr_assert_eq(found, n, "queues on %d distinct shards", n);
}

static resp_val *batch_get(cli *c, const char *id)
{
    resp_val *v = CMD(c, "BATCH.GET", id);
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "BATCH.GET %s: %s", id, resp_describe(v));
    return v;
}

static bool batch_is(cli *c, const char *id, const char *state)
{
    resp_val *v = batch_get(c, id);
    bool is = strcmp(field_str(v, "state"), state) == 0;
    resp_val_free(v);
    return is;
}

static char *new_batch(cli *c, char *out, size_t cap, const char *a0, ...)
{
    const char *argv[16] = { "BATCH.NEW" };
    int n = 1;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 16; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    resp_val *v = cli_cmdv(c, n, argv, NULL);
    cr_assert(v->type == RESP_T_BULK && v->len == 16, "BATCH.NEW: %s", resp_describe(v));
    snprintf(out, cap, "%s", v->str);
    resp_val_free(v);
    return out;
}
#define NEW_BATCH(c, buf, ...) new_batch((c), (buf), sizeof(buf), __VA_ARGS__, (const char *)NULL)

/* Reserves up to n jobs of q (COUNT 100 at a time) and acks them, except
 * that the first `kill` of them are nacked DEAD. Returns how many it got. */
static int work(cli *c, const char *q, int n, int kill)
{
    int got = 0;
    while (got < n) {
        char count[16];
        snprintf(count, sizeof count, "%d", n - got > 100 ? 100 : n - got);
        resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "COUNT", count, "FROM", q);
        if (v->type != RESP_T_ARRAY || v->n == 0) {
            resp_val_free(v);
            break;
        }
        resp_buf b;
        resp_buf_init(&b);
        size_t k = v->n;
        for (size_t i = 0; i < k; i++) {
            const char *r = field_str(v->elem[i], "receipt");
            if (kill > 0) {
                const char *argv[] = { "JOB.NACK", r, "ERROR", "bad input", "DEAD" };
                resp_add_commandv(&b, 5, argv);
                kill--;
            } else {
                const char *argv[] = { "JOB.ACK", r };
                resp_add_commandv(&b, 2, argv);
            }
        }
        resp_val_free(v);
        cli_send_raw(c, b.data, b.len);
        resp_buf_free(&b);
        for (size_t i = 0; i < k; i++) {
            resp_val *r = cli_read(c);
            cr_assert(r->type == RESP_T_INT || r->type == RESP_T_SIMPLE || r->type == RESP_T_BULK,
                      "ack/nack: %s", resp_describe(r));
            resp_val_free(r);
        }
        got += (int)k;
    }
    return got;
}

Test(batch, thousand_jobs_three_shards_three_dead_kill9_complete_once)
{
    spoold *s = spoold_start("--shards", "4", NULL);
    cli *c = cli_connect(s->port);
    char q[3][16];
    queues_on_distinct_shards(c, q, 3);
    char id[32];
    NEW_BATCH(c, id, "ON-SUCCESS", "cb-success", "{\"cb\":\"success\"}", "ON-COMPLETE", "cb-complete",
              "{\"cb\":\"complete\"}", "ON-DEATH", "cb-death", "{\"cb\":\"death\"}");
    /* 1,000 jobs, pipelined, round robin over the three queues */
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < 1000; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"n\":%d}", i);
        const char *argv[] = { "JOB.PUSH", q[i % 3], p, "BATCH", id };
        resp_add_commandv(&b, 5, argv);
    }
    cli_send_raw(c, b.data, b.len);
    resp_buf_free(&b);
    for (int i = 0; i < 1000; i++) {
        resp_val *v = cli_read(c);
        cr_assert(v->type == RESP_T_BULK && v->len == 16, "push %d: %s", i, resp_describe(v));
        resp_val_free(v);
    }
    expect_ok(CMD(c, "BATCH.CLOSE", id));
    resp_val *v = batch_get(c, id);
    cr_assert_str_eq(field_str(v, "state"), "closed");
    cr_assert_eq(field_int(v, "total"), 1000);
    resp_val_free(v);
    /* first half of the run, two jobs die; then kill -9 with notes in flight */
    int done = work(c, q[0], 170, 1) + work(c, q[1], 170, 1) + work(c, q[2], 160, 0);
    cr_assert_eq(done, 500);
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "4", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "cb-complete"), 0, "ON-COMPLETE before every job finished");
    cr_assert(wait_until(llen(c, "cb-death") == 1, 10000), "ON-DEATH after the first dead job");
    /* the rest, one more dead */
    done = work(c, q[0], 1000, 0) + work(c, q[1], 1000, 1) + work(c, q[2], 1000, 0);
    cr_assert_eq(done, 500);
    cr_assert(wait_until(batch_is(c, id, "finished"), 10000), "the batch finished");
    v = batch_get(c, id);
    cr_assert_eq(field_int(v, "total"), 1000);
    cr_assert_eq(field_int(v, "done"), 997);
    cr_assert_eq(field_int(v, "dead"), 3);
    cr_assert_eq(field_int(v, "unfinished"), 0);
    resp_val_free(v);
    cr_assert(wait_until(llen(c, "cb-complete") == 1, 10000), "ON-COMPLETE pushed");
    expect_bulks(CMD(c, "LRANGE", "cb-complete", "0", "-1"), "{\"cb\":\"complete\"}");
    cr_assert_eq(llen(c, "cb-success"), 0, "ON-SUCCESS with dead jobs");
    cr_assert_eq(llen(c, "cb-death"), 1, "ON-DEATH more than once");
    /* and after another crash nothing fires again */
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "4", NULL);
    c = cli_connect(s->port);
    cr_assert(wait_until(batch_is(c, id, "finished"), 5000));
    v = batch_get(c, id);
    cr_assert_eq(field_int(v, "pending"), 0, "every shard synced after the restart");
    resp_val_free(v);
    cr_assert_eq(llen(c, "cb-complete"), 1);
    cr_assert_eq(llen(c, "cb-success"), 0);
    cr_assert_eq(llen(c, "cb-death"), 1);
    cli_close(c);
    spoold_stop(s);
}

Test(batch, edges)
{
    spoold *s = spoold_start("--shards", "3", NULL);
    cli *c = cli_connect(s->port);
    char id[32], id2[32], id3[32];
    /* empty batch: closing completes it at once, both callbacks */
    NEW_BATCH(c, id, "ON-SUCCESS", "cb", "{\"s\":1}", "ON-COMPLETE", "cb", "{\"c\":1}");
    expect_ok(CMD(c, "BATCH.CLOSE", id));
    cr_assert(wait_until(llen(c, "cb") == 2, 5000), "callbacks of an empty batch");
    expect_ok(CMD(c, "BATCH.CLOSE", id)); /* idempotent */
    expect_error_has(CMD(c, "JOB.PUSH", "q", "{}", "BATCH", id), "ERR", "is finished");
    cr_assert_eq(llen(c, "q"), 0, "nothing pushed into a finished batch");
    /* ON-DEATH at the first dead job, before the batch is closed; a deleted
     * job counts as dead; open batches do not complete */
    NEW_BATCH(c, id2, "ON-DEATH", "deaths", "{\"d\":1}", "ON-COMPLETE", "fin", "{}");
    jid a = PUSHO(c, "w", "{}", "BATCH", id2, "RETRIES", "0");
    jid d = PUSHO(c, "w2", "{}", "BATCH", id2);
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "w");
    char r[64];
    snprintf(r, sizeof r, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
    expect_word(CMD(c, "JOB.NACK", r, "DEAD"), "dead");
    cr_assert(wait_until(llen(c, "deaths") == 1, 5000), "ON-DEATH");
    expect_int(CMD(c, "JOB.DEL", d.s), 1);
    cr_assert(wait_until(({
        resp_val *g = batch_get(c, id2);
        long long dead = field_int(g, "dead");
        resp_val_free(g);
        dead == 2;
    }), 5000), "the deleted job counts as dead");
    cr_assert_eq(llen(c, "fin"), 0, "an open batch does not complete");
    expect_ok(CMD(c, "JOB.RETRY", a.s)); /* counted already: retrying does not change the batch */
    expect_ok(CMD(c, "BATCH.CLOSE", id2));
    cr_assert(wait_until(llen(c, "fin") == 1, 5000), "ON-COMPLETE after close");
    cr_assert_eq(llen(c, "deaths"), 1);
    /* UNIQUE: a push that finds its job does not join */
    new_batch(c, id3, sizeof id3, (const char *)NULL);
    PUSHO(c, "u", "{}", "UNIQUE", "k1");
    PUSHO(c, "u", "{}", "UNIQUE", "k1", "BATCH", id3);
    v = batch_get(c, id3);
    cr_assert_eq(field_int(v, "total"), 0);
    cr_assert_eq(field_int(v, "pending"), 0);
    field_nil(v, "on_success");
    resp_val_free(v);
    /* errors */
    expect_null(CMD(c, "BATCH.GET", "00000000000a0000"));
    expect_error(CMD(c, "BATCH.CLOSE", "00000000000a0000"), "NOJOB");
    expect_error(CMD(c, "JOB.PUSH", "q", "{}", "BATCH", "00000000000a0000"), "NOJOB");
    expect_error(CMD(c, "JOB.PUSH", "q", "{}", "BATCH", "00000000000a03ff"), "NOJOB");
    expect_error_has(CMD(c, "JOB.PUSH", "q", "{}", "BATCH", "nope"), "ERR", "BATCH");
    expect_error_has(CMD(c, "BATCH.NEW", "ON-FIRE", "q", "{}"), "ERR", "bad option");
    expect_error_has(CMD(c, "BATCH.NEW", "ON-SUCCESS", "q"), "ERR", "bad option");
    expect_error_has(CMD(c, "BATCH.NEW", "ON-SUCCESS", "q", "{}", "ON-SUCCESS", "q", "{}"), "ERR", "at most once");
    expect_error(CMD(c, "BATCH.NEW", "ON-SUCCESS", "q", "nope"), "BADJSON");
    expect_error_has(CMD(c, "BATCH.GET", "xyz"), "ERR", "not a batch id");
    cli_close(c);
    spoold_stop(s);
}

/* A field of BATCH.GET, or -1 when the reply is an error (a command that
 * shares the turn of a failed commit gets the journal's error). */
static long long batch_field_try(cli *c, const char *id, const char *field)
{
    resp_val *v = CMD(c, "BATCH.GET", id);
    long long n = v->type == RESP_T_ERROR ? -1 : field_int(v, field);
    resp_val_free(v);
    return n;
}

/* A commit that fails on the batch's shard loses the notes applied in that
 * turn; they are still in the sending shard's outbox and come again. */
Test(batch, a_failed_commit_on_the_batch_shard_loses_no_count)
{
    spoold *s = spoold_start("--shards", "2", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    char q[2][16], id[32];
    queues_on_distinct_shards(c, q, 2);
    NEW_BATCH(c, id, "ON-COMPLETE", "fin", "{}");
    long long home = shard_of_id(id);
    jid probe = PUSH(c, q[0], "{}");
    const char *on_home = shard_of_id(probe.s) == home ? q[0] : q[1];
    const char *elsewhere = on_home == q[0] ? q[1] : q[0];
    expect_int(CMD(c, "JOB.DEL", probe.s), 1);
    PUSHO(c, elsewhere, "{}", "BATCH", id);
    PUSHO(c, elsewhere, "{}", "BATCH", id);
    expect_ok(CMD(c, "BATCH.CLOSE", id));
    /* the next commit of the batch's shard fails: the one applying the
     * first DONE note */
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", on_home, "1", "EIO"));
    cr_assert_eq(work(c, elsewhere, 1, 0), 1);
    cr_assert(wait_until(batch_field_try(c, id, "done") == 1, 5000),
              "the DONE note lost with the failed commit was sent again");
    cr_assert_eq(work(c, elsewhere, 1, 0), 1);
    cr_assert(wait_until(batch_is(c, id, "finished"), 5000), "the batch finished");
    cr_assert(wait_until(llen(c, "fin") == 1, 5000));
    resp_val *v = batch_get(c, id);
    cr_assert_eq(field_int(v, "total"), 2);
    cr_assert_eq(field_int(v, "done"), 2);
    resp_val_free(v);
    char *log = spoold_log(s);
    cr_assert(strstr(log, "a commit failed"), "the injected fault hit a commit: %s", log);
    free(log);
    cli_close(c);
    spoold_stop(s);
}

/* --fsync always with a slow disk on the job's shard: the ADDED note that
 * tells the batch's shard about a push leaves only once the push's commit
 * is on disk, so the batch never counts a job whose push a crash could
 * still undo (and a note's seq is never given out twice). */
Test(batch, a_note_waits_for_the_sync_of_its_commit)
{
    spoold *s = spoold_start("--shards", "2", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *p = cli_connect(s->port);
    char q[2][16], id[32];
    queues_on_distinct_shards(c, q, 2);
    new_batch(c, id, sizeof id, (const char *)NULL);
    long long home = shard_of_id(id);
    jid probe = PUSH(c, q[0], "{}");
    const char *elsewhere = shard_of_id(probe.s) == home ? q[1] : q[0];
    expect_int(CMD(c, "JOB.DEL", probe.s), 1);
    expect_ok(CMD(c, "DEBUG", "SYNC-DELAY", elsewhere, "1500"));
    long long sent = now_ms();
    SEND(p, "JOB.PUSH", elsewhere, "{}", "BATCH", id);
    resp_val *r = NULL;
    int polls = 0;
    while (cli_poll_reply(p, 50, &r) == 0) { /* the push waits for its sync */
        long long asked = now_ms() - sent; /* the sync cannot return before 1500 ms */
        resp_val *v = batch_get(c, id);
        long long total = field_int(v, "total");
        resp_val_free(v);
        if (asked < 1450) /* later, the note and the reply leave together */
            cr_assert_eq(total, 0, "the batch counted the job %lld ms after the push, "
                                   "before its commit was on disk", asked);
        polls++;
    }
    cr_assert(r && r->type == RESP_T_BULK, "the push: %s", r ? resp_describe(r) : "no reply");
    resp_val_free(r);
    cr_assert_gt(polls, 5, "the push was answered before its delayed sync could return");
    expect_ok(CMD(c, "DEBUG", "SYNC-DELAY", elsewhere, "0"));
    bool counted = false;
    for (long long t0 = now_ms(); !counted && now_ms() - t0 < 5000; sleep_ms(20)) {
        resp_val *v = batch_get(c, id);
        counted = field_int(v, "total") == 1;
        resp_val_free(v);
    }
    cr_assert(counted, "the batch never counted the job");
    cli_close(c);
    cli_close(p);
    spoold_stop(s);
}
