/*
 * test_blocking.c - BLPOP/BRPOP against a real spoold: wake-up by another
 * client's push, FIFO among waiters, key order for multi-key pops,
 * timeouts (integer, decimal, RESP2/RESP3 nil), timeout argument errors,
 * a blocked connection holding back its pipelined commands, waiters that
 * disconnect, and multi-key pops over keys on several shards that must
 * neither lose nor duplicate a job.
 *
 * State is observed, never slept on: a waiter counts as parked once INFO
 * clients shows it in blocked_clients. The only fixed waits are short
 * polls that check a reply has NOT arrived.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define JX "{\"job\":\"x\"}"
#define JY "{\"job\":\"y\"}"
#define JZ "{\"job\":\"z\"}"
#define ABSENCE_MS 200 /* how long a reply must not arrive */

static spoold *srv;
static cli *ctl; /* pushes and observes */

static void start_default(void)
{
    srv = spoold_start(NULL);
    ctl = cli_connect(srv->port);
}

static void stop_default(void)
{
    cli_close(ctl);
    ctl = NULL;
    spoold_stop(srv);
    srv = NULL;
}

TestSuite(blocking, .init = start_default, .fini = stop_default, .timeout = 60);

/* Asserts that no reply arrives on w within ABSENCE_MS. */
static void expect_no_reply(cli *w, const char *who)
{
    resp_val *v = NULL;
    int r = cli_poll_reply(w, ABSENCE_MS, &v);
    cr_assert(r == 0, "%s: expected to stay blocked, got %s", who,
              r > 0 ? resp_describe(v) : "connection closed");
}

/* Opens a client, sends a blocking command on it and waits until the
 * server counts it as blocked (the count before it was `before`). */
static cli *park(const char *cmd, const char *key, const char *timeout, long long before)
{
    cli *w = cli_connect(srv->port);
    SEND(w, cmd, key, timeout);
    wait_blocked_clients(ctl, before + 1, 10000);
    return w;
}

/* ===================================================== immediate pops */

Test(blocking, pop_is_immediate_when_queue_has_jobs)
{
    expect_int(CMD(ctl, "LPUSH", "q", JX, JY, JZ), 3);
    expect_pop(CMD(ctl, "BRPOP", "q", "0"), "q", JX);
    expect_pop(CMD(ctl, "BLPOP", "q", "0"), "q", JZ);
    expect_pop(CMD(ctl, "BRPOP", "q", "1"), "q", JY);
    cr_assert_eq(llen(ctl, "q"), 0);
}

Test(blocking, lpush_brpop_is_fifo)
{
    expect_int(CMD(ctl, "LPUSH", "q", JX), 1);
    expect_int(CMD(ctl, "LPUSH", "q", JY), 2);
    expect_int(CMD(ctl, "LPUSH", "q", JZ), 3);
    expect_pop(CMD(ctl, "BRPOP", "q", "0"), "q", JX);
    expect_pop(CMD(ctl, "BRPOP", "q", "0"), "q", JY);
    expect_pop(CMD(ctl, "BRPOP", "q", "0"), "q", JZ);
}

Test(blocking, multi_key_takes_first_listed_key_with_jobs)
{
    expect_int(CMD(ctl, "RPUSH", "k3", JZ), 1);
    expect_int(CMD(ctl, "RPUSH", "k2", JY), 1);
    expect_pop(CMD(ctl, "BRPOP", "k1", "k2", "k3", "0"), "k2", JY);
    expect_pop(CMD(ctl, "BRPOP", "k1", "k2", "k3", "0"), "k3", JZ);
    expect_int(CMD(ctl, "RPUSH", "k1", JX), 1);
    expect_int(CMD(ctl, "RPUSH", "k3", JZ), 1);
    expect_pop(CMD(ctl, "BLPOP", "k3", "k2", "k1", "0"), "k3", JZ);
    expect_pop(CMD(ctl, "BLPOP", "k3", "k2", "k1", "0"), "k1", JX);
}

/* ============================================================ wake-up */

static void expect_push_len(resp_val *v)
{
    /* The waiter may take the job before or after the length is taken. */
    bool ok = v->type == RESP_T_INT && (v->integer == 0 || v->integer == 1);
    cr_assert(ok, "push to a queue with a waiter: expected :1 (or :0), got %s", resp_describe(v));
    resp_val_free(v);
}

Test(blocking, brpop_wakes_on_push_from_another_client)
{
    cli *w = park("BRPOP", "q", "0", 0);
    expect_no_reply(w, "BRPOP on empty queue");
    expect_push_len(CMD(ctl, "LPUSH", "q", JX));
    expect_pop(cli_read(w), "q", JX);
    cr_assert_eq(llen(ctl, "q"), 0);
    wait_blocked_clients(ctl, 0, 10000);
    cli_close(w);
}

Test(blocking, blpop_wakes_on_push_from_another_client)
{
    cli *w = park("BLPOP", "q", "5", 0);
    expect_push_len(CMD(ctl, "RPUSH", "q", JY));
    expect_pop(cli_read(w), "q", JY);
    cr_assert_eq(llen(ctl, "q"), 0);
    cli_close(w);
}

Test(blocking, waiters_are_served_first_come_first_served)
{
    cli *w[3];
    const char *jobs[3] = { JX, JY, JZ };
    for (int i = 0; i < 3; i++)
        w[i] = park("BRPOP", "q", "0", i);
    for (int i = 0; i < 3; i++) {
        expect_push_len(CMD(ctl, "RPUSH", "q", jobs[i]));
        expect_pop(cli_read(w[i]), "q", jobs[i]);
        for (int j = i + 1; j < 3; j++)
            expect_no_reply(w[j], "later waiter");
    }
    cr_assert_eq(llen(ctl, "q"), 0);
    for (int i = 0; i < 3; i++)
        cli_close(w[i]);
}

Test(blocking, waiters_on_other_queues_stay_blocked)
{
    cli *a = park("BRPOP", "qa", "0", 0);
    cli *b = park("BRPOP", "qb", "0", 1);
    expect_push_len(CMD(ctl, "RPUSH", "qb", JY));
    expect_pop(cli_read(b), "qb", JY);
    expect_no_reply(a, "waiter on qa");
    expect_push_len(CMD(ctl, "RPUSH", "qa", JX));
    expect_pop(cli_read(a), "qa", JX);
    cli_close(a);
    cli_close(b);
}

Test(blocking, multi_key_waiter_wakes_on_any_listed_key)
{
    cli *w = cli_connect(srv->port);
    SEND(w, "BRPOP", "k1", "k2", "k3", "0");
    wait_blocked_clients(ctl, 1, 10000);
    expect_push_len(CMD(ctl, "RPUSH", "k3", JZ));
    expect_pop(cli_read(w), "k3", JZ);
    wait_blocked_clients(ctl, 0, 10000);
    SEND(w, "BLPOP", "k1", "k2", "k3", "0");
    wait_blocked_clients(ctl, 1, 10000);
    expect_push_len(CMD(ctl, "RPUSH", "k1", JX));
    expect_pop(cli_read(w), "k1", JX);
    cli_close(w);
}

Test(blocking, blocked_connection_runs_no_further_commands)
{
    cli *w = cli_connect(srv->port);
    static const char two[] = "*3\r\n$5\r\nBRPOP\r\n$1\r\nq\r\n$1\r\n0\r\n"
                              "*1\r\n$4\r\nPING\r\n";
    cli_send_raw(w, two, sizeof two - 1);
    wait_blocked_clients(ctl, 1, 10000);
    expect_no_reply(w, "PING behind a blocked BRPOP");
    expect_push_len(CMD(ctl, "RPUSH", "q", JX));
    expect_pop(cli_read(w), "q", JX);
    expect_simple(cli_read(w), "PONG");
    cli_close(w);
}

Test(blocking, one_push_of_several_jobs_serves_several_waiters)
{
    cli *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = park("BRPOP", "q", "0", i);
    /* The queue is z y x; each waiter, in arrival order, pops the tail. */
    resp_val *v = CMD(ctl, "LPUSH", "q", JX, JY, JZ);
    cr_assert(v->type == RESP_T_INT, "LPUSH: got %s", resp_describe(v));
    resp_val_free(v);
    expect_pop(cli_read(w[0]), "q", JX);
    expect_pop(cli_read(w[1]), "q", JY);
    expect_pop(cli_read(w[2]), "q", JZ);
    cr_assert_eq(llen(ctl, "q"), 0);
    for (int i = 0; i < 3; i++)
        cli_close(w[i]);
}

Test(blocking, earliest_waiter_wins_even_when_waiting_on_several_keys)
{
    cli *multi = cli_connect(srv->port);
    SEND(multi, "BRPOP", "k1", "k2", "0");
    wait_blocked_clients(ctl, 1, 10000);
    cli *single = park("BRPOP", "k2", "0", 1);
    expect_push_len(CMD(ctl, "RPUSH", "k2", JX));
    expect_pop(cli_read(multi), "k2", JX);
    expect_no_reply(single, "second waiter on k2");
    expect_push_len(CMD(ctl, "RPUSH", "k2", JY));
    expect_pop(cli_read(single), "k2", JY);
    cli_close(multi);
    cli_close(single);
}

Test(blocking, key_listed_twice_delivers_once)
{
    cli *w = cli_connect(srv->port);
    SEND(w, "BRPOP", "q", "q", "0");
    wait_blocked_clients(ctl, 1, 10000);
    resp_val *v = CMD(ctl, "RPUSH", "q", JX, JY);
    cr_assert(v->type == RESP_T_INT && (v->integer == 1 || v->integer == 2),
              "RPUSH of two jobs with one waiter: expected :2 (or :1), got %s", resp_describe(v));
    resp_val_free(v);
    expect_pop(cli_read(w), "q", JY);
    expect_no_reply(w, "waiter that was already served");
    cr_assert_eq(llen(ctl, "q"), 1);
    expect_bulk(CMD(ctl, "LPOP", "q"), JX);
    cli_close(w);
}

Test(blocking, del_leaves_waiters_blocked)
{
    cli *w = park("BRPOP", "q", "0", 0);
    expect_int(CMD(ctl, "DEL", "q"), 0);
    expect_no_reply(w, "waiter after DEL");
    expect_push_len(CMD(ctl, "RPUSH", "q", JX));
    expect_pop(cli_read(w), "q", JX);
    cli_close(w);
}

Test(blocking, resp3_pop_reply_is_an_array)
{
    resp_val *hello = CMD(ctl, "HELLO", "3");
    resp_val_free(hello);
    expect_int(CMD(ctl, "RPUSH", "q", JX), 1);
    SEND(ctl, "BRPOP", "q", "0");
    cli_expect_raw(ctl, "*2\r\n$1\r\nq\r\n$11\r\n" JX "\r\n");
}

Test(blocking, timed_out_waiter_is_skipped_for_the_next)
{
    cli *quick = park("BRPOP", "q", "0.2", 0);
    cli *patient = park("BRPOP", "q", "0", 1);
    expect_null(cli_read(quick));
    wait_blocked_clients(ctl, 1, 10000);
    expect_push_len(CMD(ctl, "RPUSH", "q", JX));
    expect_pop(cli_read(patient), "q", JX);
    expect_no_reply(quick, "waiter that timed out");
    cli_close(quick);
    cli_close(patient);
}

/* ============================================================ timeouts */

static void expect_nil_after(cli *w, const char *raw_nil, long long t0, long long min_ms,
                             long long max_ms)
{
    cli_expect_raw(w, raw_nil);
    long long took = now_ms() - t0;
    cr_assert(took >= min_ms && took <= max_ms, "timed out after %lld ms, expected %lld..%lld ms",
              took, min_ms, max_ms);
}

Test(blocking, decimal_timeout_returns_nil_array)
{
    long long t0 = now_ms();
    SEND(ctl, "BRPOP", "q", "0.1");
    expect_nil_after(ctl, "*-1\r\n", t0, 90, 3000);
    t0 = now_ms();
    SEND(ctl, "BLPOP", "q", "other", "0.25");
    expect_nil_after(ctl, "*-1\r\n", t0, 240, 3000);
}

Test(blocking, integer_timeout_in_seconds)
{
    long long t0 = now_ms();
    SEND(ctl, "BRPOP", "q", "1");
    expect_nil_after(ctl, "*-1\r\n", t0, 950, 5000);
    expect_simple(CMD(ctl, "PING"), "PONG");
}

Test(blocking, resp3_timeout_is_null)
{
    resp_val *hello = CMD(ctl, "HELLO", "3");
    cr_assert(hello->type == RESP_T_MAP, "HELLO 3: expected a map, got %s", resp_describe(hello));
    resp_val_free(hello);
    long long t0 = now_ms();
    SEND(ctl, "BRPOP", "q", "0.1");
    expect_nil_after(ctl, "_\r\n", t0, 90, 3000);
}

Test(blocking, timed_out_waiter_leaves_later_jobs_alone)
{
    expect_null(CMD(ctl, "BRPOP", "q", "0.1"));
    expect_int(CMD(ctl, "RPUSH", "q", JX), 1);
    cr_assert_eq(llen(ctl, "q"), 1);
    expect_bulk(CMD(ctl, "LPOP", "q"), JX);
}

Test(blocking, invalid_timeouts_are_errors)
{
    expect_error(CMD(ctl, "BRPOP", "q", "-1"), "ERR timeout is negative");
    expect_error(CMD(ctl, "BLPOP", "q", "-0.5"), "ERR timeout is negative");
    expect_error(CMD(ctl, "BRPOP", "q", "abc"), "ERR timeout is not a float or out of range");
    expect_error(CMD(ctl, "BLPOP", "q", "1x"), "ERR timeout is not a float or out of range");
    expect_simple(CMD(ctl, "PING"), "PONG");
    cr_assert_eq(info_field(ctl, "clients", "blocked_clients"), 0);
}

/* ===================================================== disconnections */

Test(blocking, disconnected_waiter_does_not_swallow_job)
{
    cli *w = park("BRPOP", "q", "0", 0);
    cli_close(w);
    wait_blocked_clients(ctl, 0, 10000);
    expect_int(CMD(ctl, "RPUSH", "q", JX), 1);
    cr_assert_eq(llen(ctl, "q"), 1);
    expect_bulk(CMD(ctl, "LPOP", "q"), JX);
}

Test(blocking, job_for_a_just_closed_waiter_goes_to_the_next)
{
    cli *gone = park("BRPOP", "q", "0", 0);
    cli *next = park("BRPOP", "q", "0", 1);
    cli_close(gone);
    expect_push_len(CMD(ctl, "RPUSH", "q", JX));
    expect_pop(cli_read(next), "q", JX);
    cr_assert_eq(llen(ctl, "q"), 0);
    cli_close(next);
}

Test(blocking, job_for_a_just_closed_waiter_stays_queued)
{
    cli *gone = park("BRPOP", "q", "0", 0);
    cli_close(gone);
    resp_val *v = CMD(ctl, "RPUSH", "q", JX);
    cr_assert(v->type == RESP_T_INT, "RPUSH: got %s", resp_describe(v));
    resp_val_free(v);
    bool back = wait_until(llen(ctl, "q") == 1, 10000);
    cr_assert(back, "the job pushed as its only waiter disconnected did not stay in the queue");
    expect_bulk(CMD(ctl, "LPOP", "q"), JX);
}

/* ============================================== several keys, several shards */

#define NKEYS 16

static void key_name(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, "job:%d", k);
}

/* argv for "BRPOP job:(rot) ... job:(rot+NKEYS-1) timeout". */
static int multi_key_argv(const char **argv, char keys[][16], int rot, const char *timeout)
{
    int n = 0;
    argv[n++] = "BRPOP";
    for (int k = 0; k < NKEYS; k++) {
        key_name(keys[k], 16, (k + rot) % NKEYS);
        argv[n++] = keys[k];
    }
    argv[n++] = timeout;
    return n;
}

static void send_multi_brpop(cli *w, int rot, const char *timeout)
{
    const char *argv[NKEYS + 2];
    char keys[NKEYS][16];
    int n = multi_key_argv(argv, keys, rot, timeout);
    cli_sendv(w, n, argv, NULL);
}

static long long total_len(void)
{
    long long sum = 0;
    char key[16];
    for (int k = 0; k < NKEYS; k++) {
        key_name(key, sizeof key, k);
        sum += llen(ctl, key);
    }
    return sum;
}

/* Pushes {"k":k} to job:k for every key, in one write. */
static void push_one_per_key(cli *p)
{
    resp_buf b;
    resp_buf_init(&b);
    for (int k = 0; k < NKEYS; k++) {
        char key[16], job[32];
        key_name(key, sizeof key, k);
        snprintf(job, sizeof job, "{\"k\":%d}", k);
        const char *argv[] = { "RPUSH", key, job };
        resp_add_commandv(&b, 3, argv);
    }
    cli_send_raw(p, b.data, b.len);
    resp_buf_free(&b);
    for (int k = 0; k < NKEYS; k++) {
        resp_val *v = cli_read(p);
        cr_assert(v->type == RESP_T_INT, "RPUSH: got %s", resp_describe(v));
        resp_val_free(v);
    }
}

/* Checks a [job:k, {"k":k}] reply and returns k. */
static int popped_key(const resp_val *v)
{
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "BRPOP: got %s", resp_describe(v));
    int k = -1, j = -2;
    cr_assert(sscanf(v->elem[0]->str, "job:%d", &k) == 1, "key %s", v->elem[0]->str);
    cr_assert(sscanf(v->elem[1]->str, "{\"k\":%d}", &j) == 1, "job %s", v->elem[1]->str);
    cr_assert_eq(k, j, "job %s came from key %s", v->elem[1]->str, v->elem[0]->str);
    return k;
}

TestSuite(shards, .timeout = 120);

Test(shards, multi_key_waiter_takes_exactly_one_job)
{
    srv = spoold_start("--shards", "4", NULL);
    ctl = cli_connect(srv->port);
    cli *w = cli_connect(srv->port);
    send_multi_brpop(w, 0, "0");
    wait_blocked_clients(ctl, 1, 10000);
    push_one_per_key(ctl);
    resp_val *v = cli_read(w);
    int got = popped_key(v);
    resp_val_free(v);
    bool settled = wait_until(total_len() == NKEYS - 1, 10000);
    cr_assert(settled, "after one multi-key BRPOP took job:%d, %lld jobs are queued, expected %d",
              got, total_len(), NKEYS - 1);
    char key[16];
    key_name(key, sizeof key, got);
    cr_assert_eq(llen(ctl, key), 0, "the popped job is still queued in %s", key);
    cli_close(w);
    stop_default();
}

/* One round: NW multi-key waiters park and close, then one job per key is
 * pushed at once; afterwards every job must be queued exactly once. The
 * round ends with the queues emptied again. */
static void closed_waiters_round(int round)
{
    enum { NW = 8 };
    cli *w[NW];
    for (int i = 0; i < NW; i++) {
        w[i] = cli_connect(srv->port);
        send_multi_brpop(w[i], i * 2, "0");
    }
    wait_blocked_clients(ctl, NW, 10000);
    for (int i = 0; i < NW; i++)
        cli_close(w[i]);
    push_one_per_key(ctl);
    bool all = wait_until(total_len() == NKEYS, 10000);
    cr_assert(all, "round %d: jobs pushed as %d multi-key waiters closed: %lld of %d queued",
              round, NW, total_len(), NKEYS);
    wait_blocked_clients(ctl, 0, 10000);
    for (int k = 0; k < NKEYS; k++) {
        char key[16], job[32];
        key_name(key, sizeof key, k);
        snprintf(job, sizeof job, "{\"k\":%d}", k);
        expect_bulks(CMD(ctl, "LRANGE", key, "0", "-1"), job);
        expect_bulk(CMD(ctl, "LPOP", key), job);
    }
}

Test(shards, closed_multi_key_waiters_lose_no_jobs)
{
    srv = spoold_start("--shards", "4", NULL);
    ctl = cli_connect(srv->port);
    for (int r = 0; r < 5; r++)
        closed_waiters_round(r);
    stop_default();
}

/* ---- many consumers and producers at once ---- */

enum { NCONS = 8, NPROD = 4, PER_PROD = 500, TOTAL = NPROD * PER_PROD, CHUNK = 25 };

typedef struct load {
    cli *cons[NCONS];
    bool waiting[NCONS];  /* a BRPOP is outstanding */
    cli *prod[NPROD];
    int sent[NPROD];      /* pushes sent */
    int acked[NPROD];     /* push replies read */
    int seen[TOTAL];      /* times each job was received */
    int received;
    int duplicates;
} load;

static int job_key(int id)
{
    return id % NKEYS;
}

static void send_chunk(load *L, int p)
{
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < CHUNK && L->sent[p] < PER_PROD; i++, L->sent[p]++) {
        int id = p * PER_PROD + L->sent[p];
        char key[16], job[48];
        key_name(key, sizeof key, job_key(id));
        snprintf(job, sizeof job, "{\"id\":%d}", id);
        const char *argv[] = { "RPUSH", key, job };
        resp_add_commandv(&b, 3, argv);
    }
    cli_send_raw(L->prod[p], b.data, b.len);
    resp_buf_free(&b);
}

/* Reads the push replies that have arrived; true if any did. */
static bool drain_producer(load *L, int p)
{
    bool any = false;
    resp_val *v;
    int r;
    while ((r = cli_poll_reply(L->prod[p], 0, &v)) > 0) {
        cr_assert(v->type == RESP_T_INT && v->integer >= 0, "producer %d: RPUSH got %s", p,
                  resp_describe(v));
        resp_val_free(v);
        L->acked[p]++;
        any = true;
    }
    cr_assert(r == 0, "producer %d: connection closed", p);
    return any;
}

static void record_job(load *L, const resp_val *v)
{
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "BRPOP: got %s", resp_describe(v));
    int k = -1, id = -1;
    cr_assert(sscanf(v->elem[0]->str, "job:%d", &k) == 1, "key %s", v->elem[0]->str);
    cr_assert(sscanf(v->elem[1]->str, "{\"id\":%d}", &id) == 1, "job %s", v->elem[1]->str);
    cr_assert(id >= 0 && id < TOTAL && job_key(id) == k, "job %s from key %s",
              v->elem[1]->str, v->elem[0]->str);
    if (L->seen[id]++ > 0)
        L->duplicates++;
    else
        L->received++;
}

/* Handles a consumer's reply if one arrived; true if it did. Consumers
 * keep asking while jobs are missing; after that each outstanding BRPOP
 * must end in a timeout (a job there would be a duplicate). */
static bool drain_consumer(load *L, int i)
{
    resp_val *v;
    int r = cli_poll_reply(L->cons[i], 0, &v);
    cr_assert(r >= 0, "consumer %d: connection closed", i);
    if (r == 0)
        return false;
    if (v->type != RESP_T_NULL)
        record_job(L, v);
    resp_val_free(v);
    L->waiting[i] = L->received < TOTAL;
    if (L->waiting[i])
        send_multi_brpop(L->cons[i], i * 2, "1");
    return true;
}

static bool load_done(const load *L)
{
    for (int p = 0; p < NPROD; p++)
        if (L->acked[p] < PER_PROD)
            return false;
    for (int i = 0; i < NCONS; i++)
        if (L->waiting[i])
            return false;
    return true;
}

static void wait_any_readable(load *L)
{
    struct pollfd fds[NCONS + NPROD];
    for (int i = 0; i < NCONS; i++)
        fds[i] = (struct pollfd){ cli_fd(L->cons[i]), POLLIN, 0 };
    for (int p = 0; p < NPROD; p++)
        fds[NCONS + p] = (struct pollfd){ cli_fd(L->prod[p]), POLLIN, 0 };
    poll(fds, NCONS + NPROD, 20);
}

static void run_load(load *L)
{
    long long deadline = now_ms() + 60000;
    while (!load_done(L)) {
        cr_assert(now_ms() < deadline, "load did not finish in 60 s: %d of %d jobs received, "
                  "%d duplicates, %lld still queued", L->received, TOTAL, L->duplicates, total_len());
        bool progress = false;
        for (int p = 0; p < NPROD; p++) {
            if (L->sent[p] < PER_PROD && L->sent[p] - L->acked[p] < 4 * CHUNK)
                send_chunk(L, p);
            progress |= drain_producer(L, p);
        }
        for (int i = 0; i < NCONS; i++)
            if (L->waiting[i])
                progress |= drain_consumer(L, i);
        if (!progress)
            wait_any_readable(L);
    }
}

Test(shards, concurrent_multi_key_pops_neither_lose_nor_duplicate)
{
    srv = spoold_start("--shards", "4", NULL);
    ctl = cli_connect(srv->port);
    load *L = calloc(1, sizeof *L);
    for (int i = 0; i < NCONS; i++) {
        L->cons[i] = cli_connect(srv->port);
        send_multi_brpop(L->cons[i], i * 2, "1");
        L->waiting[i] = true;
    }
    for (int p = 0; p < NPROD; p++)
        L->prod[p] = cli_connect(srv->port);
    run_load(L);
    for (int id = 0; id < TOTAL; id++)
        cr_assert_eq(L->seen[id], 1, "job %d was received %d times", id, L->seen[id]);
    cr_assert_eq(L->duplicates, 0);
    cr_assert_eq(total_len(), 0);
    for (int i = 0; i < NCONS; i++)
        cli_close(L->cons[i]);
    for (int p = 0; p < NPROD; p++)
        cli_close(L->prod[p]);
    free(L);
    stop_default();
}
