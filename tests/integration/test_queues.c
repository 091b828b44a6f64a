/*
 * test_queues.c - the QUEUE.* administration commands against a real
 * spoold, as docs/protocol.md describes them: QUEUE.LIST, QUEUE.STATS
 * (counts, totals, oldest ready age, waiters, paused), QUEUE.PEEK (states,
 * serving order, cursor paging), QUEUE.PAUSE/RESUME, QUEUE.PURGE,
 * QUEUE.RETRY and QUEUE.CONFIG (GET, SET, refused values, maxlen/FULL and
 * the effect of each setting on jobs).
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define JA "{\"job\":\"a\"}"
#define JB "{\"job\":\"b\"}"
#define JC "{\"job\":\"c\"}"
#define ABSENCE_MS 200
#define expect_no_reply(w, who) expect_no_reply_for((w), ABSENCE_MS, (who))

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(queues, .init = start_default, .fini = stop_default, .timeout = 60);

/* ============================================================ helpers */

typedef struct { char id[48]; char receipt[64]; } rjob;

/* JOB.RESERVE NOWAIT FROM q: exactly one job. */
static rjob reserve_at(const char *f, int l, cli *cl, const char *q)
{
    resp_val *v = CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q);
    if (v->type != RESP_T_ARRAY || v->n != 1)
        cr_assert_fail("%s:%d: JOB.RESERVE NOWAIT FROM %s: expected one job, got %s", f, l, q,
                       resp_describe(v));
    rjob j;
    snprintf(j.id, sizeof j.id, "%s", field_str_at(f, l, v->elem[0], "id"));
    snprintf(j.receipt, sizeof j.receipt, "%s", field_str_at(f, l, v->elem[0], "receipt"));
    resp_val_free(v);
    return j;
}

#define RESERVE1(cl, q) reserve_at(__FILE__, __LINE__, (cl), (q))

/* Pushes a job and buries it (RETRIES 0, reserve, nack); returns its id. */
static jid make_dead(cli *cl, const char *q, const char *payload)
{
    jid id = PUSHO(cl, q, payload, "RETRIES", "0", "PRI", "1000");
    rjob j = RESERVE1(cl, q);
    cr_assert_str_eq(j.id, id.s, "make_dead: reserved %s, expected %s", j.id, id.s);
    expect_word(CMD(cl, "JOB.NACK", j.receipt, "ERROR", "boom"), "dead");
    return id;
}

static void hello3(cli *cl)
{
    resp_val *v = CMD(cl, "HELLO", "3");
    cr_assert(v->type == RESP_T_MAP, "HELLO 3: got %s", resp_describe(v));
    resp_val_free(v);
}

/* The ids of a QUEUE.PEEK page, each entry checked to be a whole job record
 * in the given state. Returns the count; frees v. */
static int peek_ids_at(const char *f, int l, resp_val *v, const char *state, jid *out, int max)
{
    if (v->type != RESP_T_ARRAY)
        cr_assert_fail("%s:%d: QUEUE.PEEK: expected an array, got %s", f, l, resp_describe(v));
    if ((int)v->n > max)
        cr_assert_fail("%s:%d: QUEUE.PEEK: %zu jobs, expected at most %d", f, l, v->n, max);
    for (size_t i = 0; i < v->n; i++) {
        const resp_val *e = v->elem[i];
        if (!(e->type == RESP_T_MAP || e->type == RESP_T_ARRAY) || e->n != 40)
            cr_assert_fail("%s:%d: QUEUE.PEEK entry %zu: expected a job record of 20 fields, got %s",
                           f, l, i, resp_describe(e));
        const char *st = field_str_at(f, l, e, "state");
        if (strcmp(st, state) != 0)
            cr_assert_fail("%s:%d: QUEUE.PEEK STATE %s: entry %zu is %s", f, l, state, i, st);
        snprintf(out[i].s, sizeof out[i].s, "%s", field_str_at(f, l, e, "id"));
    }
    int n = (int)v->n;
    resp_val_free(v);
    return n;
}

#define PEEK_IDS(v, st, out, max) peek_ids_at(__FILE__, __LINE__, (v), (st), (out), (max))

/* ========================================================== QUEUE.LIST */

Test(queues, list_is_sorted_and_covers_every_kind_of_queue)
{
    expect_bulks(CMD(c, "QUEUE.LIST"), (const char *)NULL);
    expect_int(CMD(c, "LPUSH", "bravo", JA), 1);
    PUSH(c, "alpha", JA);
    PUSHO(c, "delta", JA, "DELAY", "60000");                    /* delayed only */
    expect_ok(CMD(c, "QUEUE.CONFIG", "echo", "SET", "retries", "3")); /* config only */
    expect_ok(CMD(c, "QUEUE.PAUSE", "foxtrot"));                /* paused only */
    make_dead(c, "charlie", JB);                                /* dead only */
    expect_bulks(CMD(c, "QUEUE.LIST"), "alpha", "bravo", "charlie", "delta", "echo", "foxtrot");
}

Test(queues, list_includes_a_queue_with_only_waiters)
{
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "waiting");
    wait_blocked_clients(c, 1, 10000);
    expect_bulks(CMD(c, "QUEUE.LIST"), "waiting");
    cli_close(w);
}

/* ========================================================= QUEUE.STATS */

static const char *stat_names[] = { "ready", "reserved", "delayed", "done", "dead", "expired",
                                    "pushed", "acked", "retried", "lease_expired", "buried",
                                    "popped", "expired_total", "oldest_ready_age_ms", "waiters",
                                    "paused", "throttled", "groups", "rate_limit", "rate_period_ms",
                                    "concurrency_limit" };

Test(queues, stats_counts_and_totals)
{
    PUSH(c, "q", JA);
    PUSH(c, "q", JB);
    PUSH(c, "q", JC);
    expect_int(CMD(c, "LPUSH", "q", JA, JB), 5);
    PUSHO(c, "q", JA, "DELAY", "60000");
    rjob r[3];
    for (int i = 0; i < 3; i++)
        r[i] = RESERVE1(c, "q");
    expect_int(CMD(c, "JOB.ACK", r[0].receipt), 1);
    expect_word(CMD(c, "JOB.NACK", r[1].receipt, "DELAY", "60000"), "retry");
    expect_word(CMD(c, "JOB.NACK", r[2].receipt, "DEAD"), "dead");
    rjob k = RESERVE1(c, "q"); /* stays reserved */
    (void)k;
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    for (size_t i = 0; i < sizeof stat_names / sizeof stat_names[0]; i++)
        cr_assert(resp_field(s, stat_names[i]), "QUEUE.STATS: field %s missing", stat_names[i]);
    static const struct { const char *name; long long want; } want[] = {
        { "ready", 1 }, { "reserved", 1 }, { "delayed", 2 }, { "done", 1 }, { "dead", 1 },
        { "pushed", 6 }, { "acked", 1 }, { "retried", 1 }, { "lease_expired", 0 }, { "buried", 1 },
        { "expired", 0 }, { "expired_total", 0 }, { "waiters", 0 }, { "paused", 0 }, { "throttled", 0 },
        { "groups", 1 }, { "rate_limit", 0 }, { "concurrency_limit", 0 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long long got = field_int(s, want[i].name);
        cr_assert_eq(got, want[i].want, "QUEUE.STATS q %s: %lld, expected %lld", want[i].name, got,
                     want[i].want);
    }
    resp_val_free(s);
}

Test(queues, stats_is_a_map_in_resp3)
{
    PUSH(c, "q", JA);
    hello3(c);
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    cr_assert(s->type == RESP_T_MAP, "RESP3 QUEUE.STATS: expected a map, got %s", resp_describe(s));
    cr_assert_eq(field_int(s, "ready"), 1);
    cr_assert_eq(field_int(s, "pushed"), 1);
    resp_val_free(s);
}

Test(queues, stats_of_an_unknown_queue_is_all_zero)
{
    resp_val *s = CMD(c, "QUEUE.STATS", "never");
    for (size_t i = 0; i < sizeof stat_names / sizeof stat_names[0]; i++)
        cr_assert_eq(field_int(s, stat_names[i]), 0, "QUEUE.STATS never: %s=%lld", stat_names[i],
                     field_int(s, stat_names[i]));
    resp_val_free(s);
}

Test(queues, stats_popped_counts_list_deliveries)
{
    expect_int(CMD(c, "LPUSH", "q", JA, JB, JC), 3);
    expect_bulk(CMD(c, "RPOP", "q"), JA);
    expect_pop(CMD(c, "BRPOP", "q", "1"), "q", JB);
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    cr_assert_eq(field_int(s, "popped"), 2, "popped %lld", field_int(s, "popped"));
    cr_assert_eq(field_int(s, "done"), 2);
    cr_assert_eq(field_int(s, "ready"), 1);
    cr_assert_eq(field_int(s, "pushed"), 3);
    resp_val_free(s);
}

Test(queues, stats_lease_expired_counts_lease_expiries)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "backoff", "0"));
    PUSHO(c, "q", JA, "LEASE", "200");
    RESERVE1(c, "q");
    bool expired = wait_until(stat_of(c, "q", "lease_expired") == 1, 10000);
    cr_assert(expired, "a 200 ms lease did not expire within 10 s (lease_expired=%lld)",
              stat_of(c, "q", "lease_expired"));
    cr_assert_eq(stat_of(c, "q", "expired"), 0, "expired counts jobs in state expired, not leases");
    bool back = wait_until(stat_of(c, "q", "ready") == 1, 5000);
    cr_assert(back, "with backoff 0 the expired job is not ready again");
    cr_assert_eq(stat_of(c, "q", "reserved"), 0);
    cr_assert_eq(stat_of(c, "q", "buried"), 0);
}

Test(queues, stats_oldest_ready_age)
{
    cr_assert_eq(stat_of(c, "q", "oldest_ready_age_ms"), 0);
    long long t0 = now_ms();
    PUSH(c, "q", JA);
    bool aged = wait_until(stat_of(c, "q", "oldest_ready_age_ms") >= 100, 5000);
    long long age = stat_of(c, "q", "oldest_ready_age_ms");
    long long elapsed = now_ms() - t0;
    cr_assert(aged, "oldest_ready_age_ms stayed at %lld", age);
    cr_assert(age <= elapsed + 20, "oldest_ready_age_ms %lld, but the job is %lld ms old", age,
              elapsed);
    /* A newer job does not change the oldest age. */
    PUSH(c, "q", JB);
    cr_assert_geq(stat_of(c, "q", "oldest_ready_age_ms"), 100);
    RESERVE1(c, "q");
    RESERVE1(c, "q");
    cr_assert_eq(stat_of(c, "q", "oldest_ready_age_ms"), 0);
}

Test(queues, stats_waiters_and_paused)
{
    cli *w1 = cli_connect(srv->port);
    cli *w2 = cli_connect(srv->port);
    SEND(w1, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    SEND(w2, "BRPOP", "q", "10");
    wait_blocked_clients(c, 2, 10000);
    cr_assert_eq(stat_of(c, "q", "waiters"), 2);
    cr_assert_eq(stat_of(c, "q", "paused"), 0);
    expect_ok(CMD(c, "QUEUE.PAUSE", "q"));
    cr_assert_eq(stat_of(c, "q", "paused"), 1);
    expect_ok(CMD(c, "QUEUE.RESUME", "q"));
    cr_assert_eq(stat_of(c, "q", "paused"), 0);
    cli_close(w1);
    cli_close(w2);
    wait_blocked_clients(c, 0, 10000);
    cr_assert_eq(stat_of(c, "q", "waiters"), 0);
}

/* ========================================================== QUEUE.PEEK */

Test(queues, peek_ready_in_serving_order_read_only)
{
    jid a = PUSHO(c, "q", JA, "PRI", "0");
    jid b = PUSHO(c, "q", JB, "PRI", "5");
    jid d = PUSHO(c, "q", JC, "PRI", "0");
    jid e = PUSHO(c, "q", JA, "PRI", "-2");
    jid got[10];
    int n = PEEK_IDS(CMD(c, "QUEUE.PEEK", "q"), "ready", got, 10);
    cr_assert_eq(n, 4);
    const char *want[] = { b.s, a.s, d.s, e.s };
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(got[i].s, want[i], "peek %d: %s, expected %s", i, got[i].s, want[i]);
    n = PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "ready", "COUNT", "1"), "ready", got, 10);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(got[0].s, b.s);
    cr_assert_eq(stat_of(c, "q", "ready"), 4, "QUEUE.PEEK took jobs");
    rjob r = RESERVE1(c, "q");
    cr_assert_str_eq(r.id, b.s);
    expect_bulks(CMD(c, "QUEUE.PEEK", "empty"), (const char *)NULL);
}

Test(queues, peek_entries_are_whole_job_records)
{
    jid a = PUSHO(c, "q", JA, "PRI", "3", "RETRIES", "2", "UNIQUE", "k");
    resp_val *v = CMD(c, "QUEUE.PEEK", "q");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "QUEUE.PEEK: %s", resp_describe(v));
    const resp_val *e = v->elem[0];
    cr_assert_str_eq(field_str(e, "id"), a.s);
    cr_assert_str_eq(field_str(e, "queue"), "q");
    cr_assert_str_eq(field_str(e, "state"), "ready");
    cr_assert_str_eq(field_str(e, "payload"), JA);
    cr_assert_eq(field_int(e, "priority"), 3);
    cr_assert_eq(field_int(e, "retries"), 2);
    cr_assert_eq(field_int(e, "attempt"), 0);
    cr_assert_str_eq(field_str(e, "unique"), "k");
    field_nil(e, "last_error");
    resp_val_free(v);
}

Test(queues, peek_pages_with_after_cursor)
{
    enum { N = 7 };
    jid ids[N];
    for (int i = 0; i < N; i++) {
        char p[32], pri[8];
        snprintf(p, sizeof p, "{\"n\":%d}", i);
        snprintf(pri, sizeof pri, "%d", i % 3); /* mixed priorities */
        ids[i] = PUSHO(c, "q", p, "PRI", pri);
    }
    /* Serving order: priority 2 (i=2,5), 1 (i=1,4), 0 (i=0,3,6), FIFO within. */
    const int order[N] = { 2, 5, 1, 4, 0, 3, 6 };
    jid all[N + 2];
    int total = 0, pages = 0;
    char after[48] = "";
    for (; pages < 20; pages++) {
        resp_val *v = after[0] ? CMD(c, "QUEUE.PEEK", "q", "COUNT", "2", "AFTER", after)
                               : CMD(c, "QUEUE.PEEK", "q", "COUNT", "2");
        jid page[2];
        int n = PEEK_IDS(v, "ready", page, 2);
        if (n == 0)
            break;
        cr_assert(total + n <= N, "paging returned more than %d jobs", N);
        for (int i = 0; i < n; i++)
            all[total++] = page[i];
        snprintf(after, sizeof after, "%s", page[n - 1].s);
    }
    cr_assert_eq(pages, 4, "7 jobs in pages of 2: %d non-empty pages", pages);
    cr_assert_eq(total, N);
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(all[i].s, ids[order[i]].s, "position %d: %s, expected %s (job %d)", i,
                         all[i].s, ids[order[i]].s, order[i]);
}

Test(queues, peek_after_an_id_no_longer_there_is_nojob)
{
    jid a = PUSH(c, "q", JA);
    PUSH(c, "q", JB);
    jid page[2];
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "AFTER", a.s), "ready", page, 2), 1);
    rjob r = RESERVE1(c, "q");
    cr_assert_str_eq(r.id, a.s);
    expect_error(CMD(c, "QUEUE.PEEK", "q", "AFTER", a.s), "NOJOB ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "AFTER", "0000000000000001"), "NOJOB ");
    /* In the state it is in now, the cursor is fine. */
    jid rs[2];
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "reserved", "AFTER", a.s), "reserved",
                          rs, 2),
                 0);
}

Test(queues, peek_each_state_in_its_order)
{
    jid d3 = PUSHO(c, "q", JA, "DELAY", "30000");
    jid d1 = PUSHO(c, "q", JB, "DELAY", "10000");
    jid d2 = PUSHO(c, "q", JC, "DELAY", "20000");
    jid got[10];
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "delayed"), "delayed", got, 10), 3);
    cr_assert_str_eq(got[0].s, d1.s);
    cr_assert_str_eq(got[1].s, d2.s);
    cr_assert_str_eq(got[2].s, d3.s);

    jid r1 = PUSHO(c, "q", JA, "PRI", "5");
    jid r2 = PUSHO(c, "q", JB, "PRI", "9");
    rjob x = RESERVE1(c, "q"); /* r2 */
    rjob y = RESERVE1(c, "q"); /* r1 */
    cr_assert_str_eq(x.id, r2.s);
    cr_assert_str_eq(y.id, r1.s);
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "reserved"), "reserved", got, 10), 2);
    cr_assert_str_eq(got[0].s, r2.s, "reserved: in the order they were reserved");
    cr_assert_str_eq(got[1].s, r1.s);

    expect_int(CMD(c, "JOB.ACK", y.receipt), 1);
    expect_int(CMD(c, "JOB.ACK", x.receipt), 1);
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "done"), "done", got, 10), 2);
    cr_assert_str_eq(got[0].s, r1.s, "done: in the order they were acked");
    cr_assert_str_eq(got[1].s, r2.s);

    jid dead = make_dead(c, "q", JC);
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "dead"), "dead", got, 10), 1);
    cr_assert_str_eq(got[0].s, dead.s);
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "STATE", "ready"), "ready", got, 10), 0);
    expect_error_has(CMD(c, "QUEUE.PEEK", "q", "STATE", "sleeping"), "ERR ", "sleeping");
}

Test(queues, peek_after_in_delayed_pages_without_repeats)
{
    enum { N = 5 };
    jid ids[N];
    for (int i = 0; i < N; i++) {
        char d[16];
        snprintf(d, sizeof d, "%d", 50000 - i * 1000); /* run_at order is the reverse of push order */
        ids[i] = PUSHO(c, "q", JA, "DELAY", d);
    }
    jid all[N];
    int total = 0;
    char after[48] = "";
    for (int pages = 0; pages < 10; pages++) {
        resp_val *v = after[0] ? CMD(c, "QUEUE.PEEK", "q", "STATE", "delayed", "COUNT", "2", "AFTER", after)
                               : CMD(c, "QUEUE.PEEK", "q", "STATE", "delayed", "COUNT", "2");
        jid page[2];
        int n = PEEK_IDS(v, "delayed", page, 2);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            cr_assert(total < N, "paging the delayed jobs returned more than %d (a job came twice?)", N);
            all[total++] = page[i];
        }
        snprintf(after, sizeof after, "%s", page[n - 1].s);
    }
    cr_assert_eq(total, N, "paged %d delayed jobs, expected %d", total, N);
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(all[i].s, ids[N - 1 - i].s, "delayed position %d: %s, expected %s", i, all[i].s,
                         ids[N - 1 - i].s);
}

Test(queues, del_purges_every_state_but_reserved)
{
    PUSH(c, "q", JA);
    PUSHO(c, "q", JB, "DELAY", "60000");
    make_dead(c, "q", JC);
    jid done = PUSHO(c, "q", JA, "PRI", "500");
    rjob d = RESERVE1(c, "q");
    cr_assert_str_eq(d.id, done.s);
    expect_int(CMD(c, "JOB.ACK", d.receipt), 1);
    jid held = PUSHO(c, "q", JB, "PRI", "500");
    rjob r = RESERVE1(c, "q");
    cr_assert_str_eq(r.id, held.s);
    cr_assert_eq(stat_of(c, "q", "ready"), 1);
    cr_assert_eq(stat_of(c, "q", "delayed"), 1);
    cr_assert_eq(stat_of(c, "q", "dead"), 1);
    cr_assert_eq(stat_of(c, "q", "done"), 1);

    expect_int(CMD(c, "DEL", "q"), 1);
    cr_assert_eq(stat_of(c, "q", "ready"), 0, "DEL left ready jobs");
    cr_assert_eq(stat_of(c, "q", "delayed"), 0, "DEL left delayed jobs");
    cr_assert_eq(stat_of(c, "q", "dead"), 0, "DEL left dead jobs");
    cr_assert_eq(stat_of(c, "q", "done"), 0, "DEL left done jobs");
    cr_assert_eq(stat_of(c, "q", "reserved"), 1, "DEL took the job a worker holds");
    EXPECT_STATE(c, held.s, "reserved");
    expect_int(CMD(c, "JOB.ACK", r.receipt), 1);
}

Test(queues, peek_count_default_10)
{
    for (int i = 0; i < 12; i++)
        PUSH(c, "q", JA);
    jid got[20];
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q"), "ready", got, 20), 10);
    cr_assert_eq(PEEK_IDS(CMD(c, "QUEUE.PEEK", "q", "COUNT", "1000"), "ready", got, 20), 12);
}

/* ================================================== QUEUE.PAUSE / RESUME */

Test(queues, paused_queue_accepts_pushes_and_delivers_nothing)
{
    expect_ok(CMD(c, "QUEUE.PAUSE", "q"));
    jid a = PUSH(c, "q", JA);
    expect_int(CMD(c, "LPUSH", "q", JB), 2);
    EXPECT_STATE(c, a.s, "ready");
    EXPECT_NOTHING(c, "q");
    expect_null(CMD(c, "RPOP", "q"));
    expect_null(CMD(c, "LPOP", "q"));
    long long t0 = now_ms();
    SEND(c, "BRPOP", "q", "0.3");
    cli_expect_raw(c, "*-1\r\n");
    cr_assert_geq(now_ms() - t0, 250);
    SEND(c, "JOB.RESERVE", "TIMEOUT", "300", "FROM", "q");
    cli_expect_raw(c, "*-1\r\n");
    /* Passed over for the next queue. */
    PUSH(c, "open", JC);
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "q", "open");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "got %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "queue"), "open");
    resp_val_free(v);
    expect_int(CMD(c, "LPUSH", "open", JB), 1);
    expect_pop(CMD(c, "BRPOP", "q", "open", "1"), "open", JB);
    cr_assert_eq(stat_of(c, "q", "ready"), 2);
    expect_ok(CMD(c, "QUEUE.RESUME", "q"));
    rjob r = RESERVE1(c, "q");
    cr_assert_str_eq(r.id, a.s);
    expect_bulk(CMD(c, "RPOP", "q"), JB);
}

Test(queues, resume_wakes_a_blocked_reserve)
{
    expect_ok(CMD(c, "QUEUE.PAUSE", "q"));
    jid a = PUSH(c, "q", JA);
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    wait_blocked_clients(c, 1, 10000);
    expect_no_reply(w, "JOB.RESERVE on a paused queue with a ready job");
    expect_ok(CMD(c, "QUEUE.RESUME", "q"));
    resp_val *v = NULL;
    int r = cli_poll_reply(w, 5000, &v);
    cr_assert(r == 1, "QUEUE.RESUME did not wake the blocked JOB.RESERVE");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "got %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "id"), a.s);
    resp_val_free(v);
    EXPECT_STATE(c, a.s, "reserved");
    cli_close(w);
}

Test(queues, resume_wakes_a_blocked_brpop)
{
    expect_ok(CMD(c, "QUEUE.PAUSE", "q"));
    expect_int(CMD(c, "LPUSH", "q", JA), 1);
    cli *w = cli_connect(srv->port);
    SEND(w, "BRPOP", "q", "10");
    wait_blocked_clients(c, 1, 10000);
    expect_no_reply(w, "BRPOP on a paused queue with a ready job");
    expect_ok(CMD(c, "QUEUE.RESUME", "q"));
    resp_val *v = NULL;
    int r = cli_poll_reply(w, 5000, &v);
    cr_assert(r == 1, "QUEUE.RESUME did not wake the blocked BRPOP");
    expect_pop(v, "q", JA);
    cli_close(w);
}

/* ========================================================= QUEUE.PURGE */

/* Fills q with 2 ready, 1 delayed, 1 reserved, 1 done, 1 dead. Returns the
 * reserved job's receipt. */
static rjob fill_every_state(void)
{
    jid dead = make_dead(c, "q", JC);
    (void)dead;
    PUSHO(c, "q", JB, "PRI", "9");
    rjob done = RESERVE1(c, "q");
    expect_int(CMD(c, "JOB.ACK", done.receipt), 1);
    PUSHO(c, "q", JB, "PRI", "9");
    rjob res = RESERVE1(c, "q");
    PUSH(c, "q", JA);
    expect_int(CMD(c, "LPUSH", "q", JA), 2);
    PUSHO(c, "q", JA, "DELAY", "60000");
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    cr_assert_eq(field_int(s, "ready"), 2);
    cr_assert_eq(field_int(s, "delayed"), 1);
    cr_assert_eq(field_int(s, "reserved"), 1);
    cr_assert_eq(field_int(s, "done"), 1);
    cr_assert_eq(field_int(s, "dead"), 1);
    resp_val_free(s);
    return res;
}

Test(queues, purge_deletes_all_but_reserved)
{
    rjob res = fill_every_state();
    expect_int(CMD(c, "QUEUE.PURGE", "q"), 5);
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    cr_assert_eq(field_int(s, "ready"), 0);
    cr_assert_eq(field_int(s, "delayed"), 0);
    cr_assert_eq(field_int(s, "done"), 0);
    cr_assert_eq(field_int(s, "dead"), 0);
    cr_assert_eq(field_int(s, "reserved"), 1);
    resp_val_free(s);
    EXPECT_STATE(c, res.id, "reserved");
    expect_int(CMD(c, "JOB.ACK", res.receipt), 1);
    expect_int(CMD(c, "QUEUE.PURGE", "q"), 1); /* the done one */
    expect_int(CMD(c, "QUEUE.PURGE", "never"), 0);
}

Test(queues, purge_one_state)
{
    rjob res = fill_every_state();
    expect_int(CMD(c, "QUEUE.PURGE", "q", "STATE", "dead"), 1);
    cr_assert_eq(stat_of(c, "q", "dead"), 0);
    cr_assert_eq(stat_of(c, "q", "ready"), 2);
    expect_int(CMD(c, "QUEUE.PURGE", "q", "STATE", "reserved"), 1);
    expect_null(CMD(c, "JOB.GET", res.id));
    expect_error(CMD(c, "JOB.ACK", res.receipt), "NOJOB ");
    expect_int(CMD(c, "QUEUE.PURGE", "q", "STATE", "ready"), 2);
    cr_assert_eq(llen(c, "q"), 0);
    cr_assert_eq(stat_of(c, "q", "delayed"), 1);
    cr_assert_eq(stat_of(c, "q", "done"), 1);
    expect_error_has(CMD(c, "QUEUE.PURGE", "q", "STATE", "bogus"), "ERR ", "STATE");
    expect_error(CMD(c, "QUEUE.PURGE", "q", "STATE"), "ERR ");
    cr_assert_eq(stat_of(c, "q", "delayed"), 1);
}

/* ========================================================= QUEUE.RETRY */

Test(queues, retry_makes_every_dead_job_ready)
{
    jid d[3];
    for (int i = 0; i < 3; i++)
        d[i] = make_dead(c, "q", JA);
    PUSHO(c, "q", JB, "DELAY", "60000");
    cr_assert_eq(stat_of(c, "q", "dead"), 3);
    expect_int(CMD(c, "QUEUE.RETRY", "q"), 3);
    for (int i = 0; i < 3; i++)
        EXPECT_STATE(c, d[i].s, "ready");
    cr_assert_eq(stat_of(c, "q", "dead"), 0);
    cr_assert_eq(stat_of(c, "q", "ready"), 3);
    cr_assert_eq(stat_of(c, "q", "delayed"), 1, "QUEUE.RETRY touched a delayed job");
    expect_int(CMD(c, "QUEUE.RETRY", "q"), 0);
    expect_int(CMD(c, "QUEUE.RETRY", "never"), 0);
    for (int i = 0; i < 3; i++) {
        rjob r = RESERVE1(c, "q");
        expect_int(CMD(c, "JOB.ACK", r.receipt), 1);
    }
}

/* ======================================================== QUEUE.CONFIG */

static const struct { const char *name, *def; } settings[] = {
    { "retries", "25" },        { "backoff", "15000" }, { "backoff-max", "3600000" },
    { "lease", "30000" },       { "maxlen", "0" },      { "payload", "json" },
    { "retention", "3600000" }, { "retention-max", "10000" },
    { "rate", "0" },            { "concurrency", "0" }, { "expires", "0" },
    { "group-rate", "0" },      { "group-concurrency", "0" }, { "group-from", "" },
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static void check_config_map(resp_val *v, int proto)
{
    resp_type want = proto == 3 ? RESP_T_MAP : RESP_T_ARRAY;
    cr_assert(v->type == want && v->n == 2 * NSETTINGS, "QUEUE.CONFIG GET (RESP%d): %s", proto,
              resp_describe(v));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const resp_val *x = resp_field(v, settings[i].name);
        cr_assert(x, "QUEUE.CONFIG GET: %s missing", settings[i].name);
        char buf[64];
        cr_assert_str_eq(resp_text(x, buf, sizeof buf), settings[i].def, "%s: %s, expected %s",
                         settings[i].name, buf, settings[i].def);
    }
    resp_val_free(v);
}

Test(queues, config_get_all_defaults_resp2)
{
    check_config_map(CMD(c, "QUEUE.CONFIG", "q", "GET"), 2);
}

Test(queues, config_get_all_defaults_resp3)
{
    hello3(c);
    check_config_map(CMD(c, "QUEUE.CONFIG", "q", "GET"), 3);
}

Test(queues, config_get_one)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        resp_val *v = CMD(c, "QUEUE.CONFIG", "q", "GET", settings[i].name);
        char buf[64];
        cr_assert_str_eq(resp_text(v, buf, sizeof buf), settings[i].def, "GET %s: %s",
                         settings[i].name, buf);
        resp_val_free(v);
    }
    expect_error_has(CMD(c, "QUEUE.CONFIG", "q", "GET", "colour"), "ERR ", "colour");
}

Test(queues, config_set_several_at_once)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "retries", "3", "lease", "5000", "payload", "raw",
                  "maxlen", "100"));
    char buf[64];
    resp_val *v = CMD(c, "QUEUE.CONFIG", "q", "GET", "retries");
    cr_assert_str_eq(resp_text(v, buf, sizeof buf), "3");
    resp_val_free(v);
    v = CMD(c, "QUEUE.CONFIG", "q", "GET");
    cr_assert_str_eq(resp_text(resp_field(v, "lease"), buf, sizeof buf), "5000");
    cr_assert_str_eq(resp_text(resp_field(v, "payload"), buf, sizeof buf), "raw");
    cr_assert_str_eq(resp_text(resp_field(v, "maxlen"), buf, sizeof buf), "100");
    cr_assert_str_eq(resp_text(resp_field(v, "backoff"), buf, sizeof buf), "15000");
    resp_val_free(v);
    /* Another queue keeps the defaults. */
    check_config_map(CMD(c, "QUEUE.CONFIG", "other", "GET"), 2);
}

Test(queues, config_bad_value_changes_nothing_and_names_the_setting)
{
    static const struct { const char *name, *bad; } cases[] = {
        { "retries", "-1" },     { "retries", "lots" },   { "backoff", "-5" },
        { "backoff", "x" },      { "backoff-max", "y" },  { "lease", "0" },
        { "lease", "long" },     { "maxlen", "-1" },      { "payload", "xml" },
        { "retention", "z" },    { "retention-max", "-2" },
        { "rate", "14" },        { "rate", "0/1s" },      { "rate", "14/1w" },
        { "rate", "14/0s" },     { "rate", "-1/1s" },     { "rate", "2000000/1s" },
        { "rate", "5/25h" },     { "concurrency", "-1" }, { "expires", "soon" },
        { "group-rate", "x/1s" }, { "group-concurrency", "many" }, { "group-from", "a b" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp_val *v = CMD(c, "QUEUE.CONFIG", "q", "SET", "retries", "7", cases[i].name,
                          cases[i].bad);
        bool ok = v->type == RESP_T_ERROR && strncmp(v->str, "ERR ", 4) == 0 &&
                  strstr(v->str, cases[i].name);
        cr_assert(ok, "SET retries 7 %s %s: expected -ERR naming %s, got %s", cases[i].name,
                  cases[i].bad, cases[i].name, resp_describe(v));
        resp_val_free(v);
    }
    expect_error_has(CMD(c, "QUEUE.CONFIG", "q", "SET", "retries", "7", "colour", "red"), "ERR ",
                     "colour");
    /* retries 7 came first in every refused SET: it must not have stuck. */
    check_config_map(CMD(c, "QUEUE.CONFIG", "q", "GET"), 2);
    expect_error(CMD(c, "QUEUE.CONFIG", "q", "SET", "retries"), "ERR ");
    expect_error(CMD(c, "QUEUE.CONFIG", "q", "SET"), "ERR ");
    expect_error(CMD(c, "QUEUE.CONFIG", "q", "FROB"), "ERR ");
    check_config_map(CMD(c, "QUEUE.CONFIG", "q", "GET"), 2);
}

Test(queues, config_settings_apply_to_jobs)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "retries", "0", "lease", "700"));
    expect_int(CMD(c, "LPUSH", "q", JA), 1);
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "q");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "got %s", resp_describe(v));
    cr_assert_eq(field_int(v->elem[0], "lease_ms"), 700);
    char receipt[64];
    snprintf(receipt, sizeof receipt, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
    expect_word(CMD(c, "JOB.NACK", receipt), "dead");
    cr_assert_eq(stat_of(c, "q", "dead"), 1);
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "payload", "raw"));
    expect_int(CMD(c, "LPUSH", "q", "plain text"), 1);
    expect_bulk(CMD(c, "RPOP", "q"), "plain text");
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "payload", "json"));
    expect_error(CMD(c, "LPUSH", "q", "plain text"), "BADJSON ");
    /* backoff: the first retry waits `backoff` ms ± 20 %. */
    expect_ok(CMD(c, "QUEUE.CONFIG", "b", "SET", "backoff", "10000"));
    jid id = PUSH(c, "b", JA);
    rjob r = RESERVE1(c, "b");
    long long before = wall_ms();
    expect_word(CMD(c, "JOB.NACK", r.receipt), "retry");
    long long after = wall_ms();
    v = CMD(c, "JOB.GET", id.s);
    long long run_at = field_int(v, "run_at");
    resp_val_free(v);
    cr_assert(run_at >= before + 8000 - 2 && run_at <= after + 12000 + 2,
              "backoff 10000: retry %lld ms after the nack", run_at - before);
}

Test(queues, config_backoff_max_caps_the_delay)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "backoff", "10000", "backoff-max", "1000"));
    jid id = PUSH(c, "q", JA);
    rjob r = RESERVE1(c, "q");
    long long before = wall_ms();
    expect_word(CMD(c, "JOB.NACK", r.receipt), "retry");
    long long after = wall_ms();
    resp_val *v = CMD(c, "JOB.GET", id.s);
    long long run_at = field_int(v, "run_at");
    resp_val_free(v);
    cr_assert(run_at >= before + 800 - 2 && run_at <= after + 1200 + 2,
              "backoff-max 1000: retry %lld ms after the nack", run_at - before);
}

Test(queues, maxlen_refuses_pushes_with_full)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "maxlen", "3"));
    PUSH(c, "q", JA);
    PUSHO(c, "q", JB, "DELAY", "60000");
    expect_int(CMD(c, "LPUSH", "q", JC), 2);
    expect_error(CMD(c, "JOB.PUSH", "q", JA), "FULL ");
    expect_error(CMD(c, "LPUSH", "q", JA), "FULL ");
    expect_error(CMD(c, "RPUSH", "q", JA), "FULL ");
    cr_assert_eq(stat_of(c, "q", "pushed"), 3);
    /* A reserved job is still unfinished. */
    rjob r = RESERVE1(c, "q");
    expect_error(CMD(c, "JOB.PUSH", "q", JA), "FULL ");
    expect_int(CMD(c, "JOB.ACK", r.receipt), 1);
    PUSH(c, "q", JA);
    expect_error(CMD(c, "JOB.PUSH", "q", JA), "FULL ");
    /* A multi-element push that does not fit pushes nothing. */
    expect_int(CMD(c, "JOB.DEL", r.id), 1); /* the done one: no room made */
    expect_error(CMD(c, "LPUSH", "q", JA), "FULL ");
    rjob r2 = RESERVE1(c, "q");
    expect_int(CMD(c, "JOB.ACK", r2.receipt), 1);
    expect_error(CMD(c, "LPUSH", "q", JA, JB), "FULL ");
    cr_assert_eq(stat_of(c, "q", "ready"), 1);
    expect_int(CMD(c, "LPUSH", "q", JA), 2);
    /* maxlen 0 lifts the limit. */
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "maxlen", "0"));
    PUSH(c, "q", JA);
    PUSH(c, "q", JA);
}

Test(queues, queue_command_errors)
{
    expect_error_has(CMD(c, "QUEUE.PEEK", "q", "STATE", "bogus"), "ERR ", "bogus");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "COUNT"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "AFTER", "not-an-id"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "SORT", "x"), "ERR ");
    expect_error(CMD(c, "QUEUE.PAUSE", "a", "b"), "ERR wrong number of arguments for 'queue.pause' command");
    expect_error_has(CMD(c, "QUEUE.RETRY", "a", "b"), "ERR QUEUE.RETRY", "bad option");
    expect_bulks(CMD(c, "QUEUE.LIST"), (const char *)NULL);
}
