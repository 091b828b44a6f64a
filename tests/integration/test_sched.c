/*
 * test_sched.c - durable schedules against a real spoold: an @every 1s
 * schedule pushes one job per tick for over 10 s with a kill -9 in the
 * middle, and no tick is pushed twice (CATCHUP all runs every missed tick,
 * CATCHUP none skips the late ones); SCHED.GET/LIST/DEL/PAUSE/RESUME and
 * their errors; a 6-field cron; a schedule moved to a queue on another
 * shard; UNIQUE; pause kept across a restart.
 *
 * Every job a schedule pushes carries the unique key sched:<name>:<tick>,
 * which is how the tests see which tick pushed it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(sched, .timeout = 120);

/* The ticks of the jobs of queue q pushed by schedule name, ascending;
 * fails on a job of q that has no such key. Returns the count. */
static int ticks_of(cli *c, const char *q, const char *name, long long *out, int max)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "sched:%s:", name);
    resp_val *v = CMD(c, "QUEUE.PEEK", q, "STATE", "ready", "COUNT", "1000");
    cr_assert(v->type == RESP_T_ARRAY, "QUEUE.PEEK: %s", resp_describe(v));
    int n = 0;
    for (size_t i = 0; i < v->n && n < max; i++) {
        const char *u = field_str(v->elem[i], "unique");
        cr_assert(strncmp(u, prefix, strlen(prefix)) == 0, "job with unique key %s", u);
        long long tick = atoll(u + strlen(prefix));
        cr_assert_geq(field_int(v->elem[i], "created_at"), tick, "a job was pushed before its tick");
        out[n++] = tick;
    }
    resp_val_free(v);
    for (int i = 1; i < n; i++) /* insertion sort: small */
        for (int k = i; k > 0 && out[k - 1] > out[k]; k--) {
            long long t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

static long long sched_int(cli *c, const char *name, const char *field)
{
    resp_val *v = CMD(c, "SCHED.GET", name);
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "SCHED.GET %s: %s", name, resp_describe(v));
    long long n = field_int(v, field);
    resp_val_free(v);
    return n;
}

/* Runs an @every 1s schedule for over 10 s of ticks with a kill -9 and
 * downtime_ms of downtime in the middle; returns the ticks seen. */
static int run_every_second(const char *catchup, int downtime_ms, long long *ticks, int max, long long *skipped)
{
    spoold *s = spoold_start("--shards", "3", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SCHED.SET", "every", "beats", "@every 1s", "{\"beat\":1}", "CATCHUP", catchup));
    cr_assert(wait_until(llen(c, "beats") >= 4, 10000), "4 ticks before the kill");
    cli_close(c);
    spoold_kill9(s);
    sleep_ms(downtime_ms); /* the outage itself, not a wait for state */
    spoold_restart(s, "--shards", "3", NULL);
    c = cli_connect(s->port);
    long long first = -1;
    bool spanned = wait_until(({
        long long t[64];
        int n = ticks_of(c, "beats", "every", t, 64);
        first = n ? t[0] : -1;
        n && t[n - 1] - first >= 10000;
    }), 20000);
    cr_assert(spanned, "the ticks did not span 10 s");
    *skipped = sched_int(c, "every", "skipped");
    expect_int(CMD(c, "SCHED.DEL", "every"), 1);
    int n = ticks_of(c, "beats", "every", ticks, max);
    cr_assert_eq(n, llen(c, "beats"), "every job of the queue came from the schedule");
    expect_null(CMD(c, "SCHED.GET", "every"));
    cli_close(c);
    spoold_stop(s);
    return n;
}

Test(sched, every_second_across_kill9_catchup_all_runs_each_tick_once)
{
    long long t[64], skipped;
    int n = run_every_second("all", 2500, t, 64, &skipped);
    cr_assert_geq(n, 11);
    cr_assert_eq(skipped, 0, "CATCHUP all skipped %lld tick(s) (ticks handled twice?)", skipped);
    for (int i = 1; i < n; i++)
        cr_assert_eq(t[i] - t[i - 1], 1000, "ticks %d and %d: %lld and %lld (duplicate or missing tick)", i - 1, i,
                     t[i - 1], t[i]);
}

Test(sched, every_second_across_kill9_catchup_none_skips_late_ticks_only)
{
    long long t[64], skipped;
    int n = run_every_second("none", 3500, t, 64, &skipped);
    cr_assert_geq(n, 5);
    bool gap = false;
    for (int i = 1; i < n; i++) {
        long long d = t[i] - t[i - 1];
        cr_assert(d > 0 && d % 1000 == 0, "ticks %lld and %lld: not distinct ticks of the schedule", t[i - 1], t[i]);
        gap |= d >= 2000;
    }
    cr_assert(gap, "the ticks missed during the outage were run (CATCHUP none skips them)");
    cr_assert_geq(skipped, 1, "SCHED.GET counts the skipped ticks");
}

Test(sched, set_get_list_pause_resume_del)
{
    spoold *s = spoold_start("--shards", "3", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SCHED.SET", "nightly", "reports", "30 2 * * *", "{\"r\":1}", "TZ", "Europe/Berlin", "PRI",
                  "5", "RETRIES", "2", "UNIQUE", "CATCHUP", "none"));
    resp_val *v = CMD(c, "SCHED.GET", "nightly");
    cr_assert_str_eq(field_str(v, "queue"), "reports");
    cr_assert_str_eq(field_str(v, "spec"), "30 2 * * *");
    cr_assert_str_eq(field_str(v, "tz"), "Europe/Berlin");
    cr_assert_str_eq(field_str(v, "catchup"), "none");
    cr_assert_eq(field_int(v, "priority"), 5);
    cr_assert_eq(field_int(v, "retries"), 2);
    cr_assert_eq(field_int(v, "unique"), 1);
    long long next = field_int(v, "next_at");
    cr_assert(next > wall_ms() && next <= wall_ms() + 86400000LL + 3600000, "next_at %lld", next);
    cr_assert_eq((next / 1000) % 1800, 0, "02:30 Berlin is on a half hour in UTC");
    field_nil(v, "last_job");
    resp_val_free(v);
    expect_ok(CMD(c, "SCHED.SET", "hourly", "other", "@hourly", "{}"));
    v = CMD(c, "SCHED.LIST");
    cr_assert_eq(v->n, 2, "SCHED.LIST: %s", resp_describe(v));
    resp_val_free(v);
    v = CMD(c, "SCHED.LIST", "reports");
    cr_assert_eq(v->n, 1);
    resp_val_free(v);
    expect_ok(CMD(c, "SCHED.PAUSE", "nightly"));
    cr_assert_eq(sched_int(c, "nightly", "paused"), 1);
    cr_assert_eq(sched_int(c, "nightly", "next_at"), 0);
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "3", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(sched_int(c, "nightly", "paused"), 1, "the pause survives a restart");
    expect_ok(CMD(c, "SCHED.RESUME", "nightly"));
    cr_assert_eq(sched_int(c, "nightly", "next_at"), next);
    expect_int(CMD(c, "SCHED.DEL", "nightly"), 1);
    expect_int(CMD(c, "SCHED.DEL", "nightly"), 0);
    expect_null(CMD(c, "SCHED.GET", "nightly"));
    expect_error_has(CMD(c, "SCHED.PAUSE", "nightly"), "ERR", "no schedule 'nightly'");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "61 * * * *", "{}"), "ERR", "minute field");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "@daily", "{}", "TZ", "Moon/Base"), "ERR", "unknown time zone");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "@daily", "{}", "CATCHUP", "some"), "ERR", "CATCHUP");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "@daily", "{}", "PRI", "5000"), "ERR", "PRI");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "0 0 30 2 *", "{}"), "ERR", "never ticks");
    expect_error(CMD(c, "SCHED.SET", "x", "q", "@daily", "not json"), "BADJSON");
    expect_error_has(CMD(c, "SCHED.SET", "x", "q", "@daily"), "ERR", "wrong number");
    v = CMD(c, "SCHED.LIST");
    cr_assert_eq(v->n, 1, "only 'hourly' is left: %s", resp_describe(v));
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(sched, six_field_cron_and_a_move_to_another_shard)
{
    spoold *s = spoold_start("--shards", "4", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SCHED.SET", "fast", "qa", "*/2 * * * * *", "{}"));
    cr_assert(wait_until(llen(c, "qa") >= 2, 10000), "two ticks of */2 seconds");
    long long t[16];
    int n = ticks_of(c, "qa", "fast", t, 16);
    cr_assert_eq(t[0] % 2000, 0, "ticks on even seconds");
    cr_assert_eq(t[n - 1] - t[n - 2], 2000);
    /* the same name pointed at other queues: one schedule, on the new queue's shard */
    const char *qs[] = { "qb", "qc", "qd", "qe" };
    for (int i = 0; i < 4; i++)
        expect_ok(CMD(c, "SCHED.SET", "fast", qs[i], "@every 1s", "{}"));
    resp_val *v = CMD(c, "SCHED.LIST");
    cr_assert_eq(v->n, 1, "SCHED.LIST after moves: %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "queue"), "qe");
    cr_assert_geq(field_int(v->elem[0], "runs"), 0);
    resp_val_free(v);
    long long before = llen(c, "qa");
    cr_assert(wait_until(llen(c, "qe") >= 2, 10000));
    cr_assert_leq(llen(c, "qa"), before + 1, "the old queue stopped getting jobs");
    cli_close(c);
    spoold_stop(s);
}

Test(sched, unique_skips_ticks_while_the_last_job_is_unfinished)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SCHED.SET", "one-at-a-time", "u", "@every 1s", "{}", "UNIQUE"));
    cr_assert(wait_until(sched_int(c, "one-at-a-time", "skipped") >= 2, 10000), "ticks skipped");
    cr_assert_eq(llen(c, "u"), 1, "one job while it is unfinished");
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "u");
    char r[64];
    snprintf(r, sizeof r, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
    expect_int(CMD(c, "JOB.ACK", r), 1);
    cr_assert(wait_until(llen(c, "u") == 1, 5000), "the next tick after the ack pushes again");
    cr_assert_geq(sched_int(c, "one-at-a-time", "runs"), 2);
    cli_close(c);
    spoold_stop(s);
}

/* CATCHUP one: a tick missed while spoold was down runs once after the
 * restart, late (CATCHUP none would skip it: it is over 1 s late). */
Test(sched, catchup_one_runs_a_missed_tick_late)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SCHED.SET", "five", "fives", "*/5 * * * * *", "{}", "CATCHUP", "one"));
    cr_assert(wait_until(llen(c, "fives") >= 1, 10000), "the first tick");
    cli_close(c);
    spoold_kill9(s);
    long long t[16];
    sleep_ms(6500); /* the outage: the next tick passes while spoold is down */
    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    int n = 0;
    cr_assert(wait_until((n = ticks_of(c, "fives", "five", t, 16)) >= 3, 15000), "ticks after the restart");
    cr_assert_eq(t[1] - t[0], 5000, "the missed tick ran (ticks %lld, %lld)", t[0], t[1]);
    cr_assert_eq(t[2] - t[1], 5000);
    resp_val *v = CMD(c, "QUEUE.PEEK", "fives", "COUNT", "16");
    bool late = false;
    for (size_t i = 0; i < v->n; i++) {
        char want[64];
        snprintf(want, sizeof want, "sched:five:%lld", t[1]);
        if (strcmp(field_str(v->elem[i], "unique"), want) == 0)
            late = field_int(v->elem[i], "created_at") >= t[1] + 1000;
    }
    resp_val_free(v);
    cr_assert(late, "the missed tick's job was pushed after the restart, more than 1 s late");
    cr_assert_eq(sched_int(c, "five", "skipped"), 0);
    cli_close(c);
    spoold_stop(s);
}
