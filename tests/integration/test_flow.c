/*
 * test_flow.c - flow control against a real spoold (docs/protocol.md,
 * "Flow control"): queue rate limits on JOB.RESERVE and list pops, queue
 * concurrency under many workers with lease expiries and NACKs, fair
 * groups (round-robin, group-concurrency, group-rate, group-from,
 * QUEUE.GROUPS), expiring jobs (EXPIRES, the queue's expires, the expired
 * state and event), and all of it across kill -9.
 *
 * Times a limit imposes are read from the server's own stamps where they
 * must be exact (a reserved job's updated_at is its delivery time), and
 * from the test's clock where the issue states a wall-clock bound. State
 * is polled with deadlines, never slept for.
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

TestSuite(flow, .init = start_default, .fini = stop_default, .timeout = 90);

/* ============================================================ helpers */

typedef struct {
    char id[32];
    char receipt[48];
    char payload[128];
} fjob;

/* The jobs of a JOB.RESERVE reply (nil: 0). Frees v. */
static int jobs_of_at(const char *f, int l, resp_val *v, fjob *out, int max)
{
    if (v->type == RESP_T_NULL) {
        resp_val_free(v);
        return 0;
    }
    if (v->type != RESP_T_ARRAY || (int)v->n > max)
        cr_assert_fail("%s:%d: JOB.RESERVE: expected at most %d jobs, got %s", f, l, max, resp_describe(v));
    int n = (int)v->n;
    for (int i = 0; i < n; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", field_str_at(f, l, v->elem[i], "id"));
        snprintf(out[i].receipt, sizeof out[i].receipt, "%s", field_str_at(f, l, v->elem[i], "receipt"));
        snprintf(out[i].payload, sizeof out[i].payload, "%s", field_str_at(f, l, v->elem[i], "payload"));
    }
    resp_val_free(v);
    return n;
}
#define JOBS_OF(v, out, max) jobs_of_at(__FILE__, __LINE__, (v), (out), (max))

static int reserve_nowait(cli *cl, const char *q, const char *count, fjob *out, int max)
{
    return JOBS_OF(CMD(cl, "JOB.RESERVE", "NOWAIT", "COUNT", count, "FROM", q), out, max);
}

static void config(cli *cl, const char *q, const char *name, const char *value)
{
    expect_ok(CMD(cl, "QUEUE.CONFIG", q, "SET", name, value));
}

/* Pushes n jobs with payload {"g":"<group>","i":<k>} (pipelined), each
 * with GROUP group unless group is NULL. */
static void push_many(cli *cl, const char *q, const char *group, int n)
{
    char p[96];
    for (int k = 0; k < n; k++) {
        snprintf(p, sizeof p, "{\"g\":\"%s\",\"i\":%d}", group ? group : "", k);
        if (group)
            SEND(cl, "JOB.PUSH", q, p, "GROUP", group);
        else
            SEND(cl, "JOB.PUSH", q, p);
        if (k % 500 == 499 || k == n - 1) {
            for (int r = k - (k % 500); r <= k; r++) {
                resp_val *v = cli_read(cl);
                cr_assert(v->type == RESP_T_BULK, "JOB.PUSH %s: %s", q, resp_describe(v));
                resp_val_free(v);
            }
        }
    }
}

static long long get_int(cli *cl, const char *id, const char *field)
{
    resp_val *v = CMD(cl, "JOB.GET", id);
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "JOB.GET %s: %s", id, resp_describe(v));
    long long n = field_int(v, field);
    resp_val_free(v);
    return n;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* ========================================================== rate limit */

#define RATE_JOBS 200
#define RATE_WORKERS 20

Test(flow, rate_50_per_second_paces_200_jobs_to_20_eager_workers)
{
    config(c, "r", "rate", "50/1s");
    push_many(c, "r", NULL, RATE_JOBS);
    cli *w[RATE_WORKERS];
    for (int i = 0; i < RATE_WORKERS; i++)
        w[i] = cli_connect(srv->port);
    long long at[RATE_JOBS]; /* server delivery times */
    int got = 0;
    long long t0 = now_ms(), w0 = wall_ms(), first = 0, last = 0;
    for (int i = 0; i < RATE_WORKERS; i++)
        SEND(w[i], "JOB.RESERVE", "TIMEOUT", "20000", "FROM", "r");
    while (got < RATE_JOBS && now_ms() - t0 < 20000) {
        bool any = false;
        for (int i = 0; i < RATE_WORKERS; i++) {
            resp_val *v;
            if (cli_poll_reply(w[i], 0, &v) != 1)
                continue;
            any = true;
            if (v->type == RESP_T_INT) { /* an ack's reply */
                resp_val_free(v);
                continue;
            }
            fjob j[1];
            cr_assert_eq(JOBS_OF(v, j, 1), 1, "worker %d: a reserve timed out with jobs left", i);
            last = now_ms();
            if (got == 0)
                first = last;
            at[got++] = get_int(c, j[0].id, "updated_at");
            SEND(w[i], "JOB.ACK", j[0].receipt);
            SEND(w[i], "JOB.RESERVE", "TIMEOUT", "20000", "FROM", "r");
        }
        if (!any)
            sleep_ms(1);
    }
    cr_assert_eq(got, RATE_JOBS, "only %d of %d jobs delivered in 20 s", got, RATE_JOBS);
    /* The broker's own delivery stamps decide (the test reads replies and
     * asks JOB.GET after them, so its clock lags on a busy machine). */
    qsort(at, RATE_JOBS, sizeof at[0], cmp_ll);
    long long took = at[RATE_JOBS - 1] - w0;
    cr_assert(took >= 3000 && took <= 5500, "200 jobs at 50/1s took %lld ms to be delivered (want 3000..5500)",
              took);
    cr_log_info("200 jobs at 50/1s to 20 workers: delivered over %lld ms (server stamps); the test saw the "
                "last after %lld ms, %lld ms after the first", took, last - t0, last - first);
    for (int i = 0; i + 50 < RATE_JOBS; i++)
        cr_assert(at[i + 50] - at[i] >= 1000, "51 deliveries within %lld ms (from delivery %d): over 50/1s",
                  at[i + 50] - at[i], i);
    for (int i = 0; i < RATE_WORKERS; i++)
        cli_close(w[i]);
}

Test(flow, rate_holds_back_list_pops_and_wakes_a_blocked_pop_when_due)
{
    config(c, "p", "rate", "2/1s");
    expect_int(CMD(c, "LPUSH", "p", "1", "2", "3"), 3);
    expect_bulk(CMD(c, "RPOP", "p"), "1");
    expect_null(CMD(c, "RPOP", "p"));                     /* the next one is 500 ms away */
    resp_val *v = CMD(c, "RPOP", "p", "5");
    cr_assert(v->type == RESP_T_NULL, "RPOP p 5 under the limit: %s", resp_describe(v));
    resp_val_free(v);
    EXPECT_NOTHING(c, "p");
    cr_assert_eq(stat_of(c, "p", "ready"), 2);
    long long t0 = now_ms();
    expect_pop(CMD(c, "BRPOP", "p", "5"), "p", "2");       /* woken by the limiter, not by a push */
    long long waited = now_ms() - t0;
    cr_assert(waited >= 350 && waited < 2000, "BRPOP waited %lld ms for a 2/1s token", waited);
}

Test(flow, rate_bad_values_are_refused_and_good_ones_read_back)
{
    static const char *good[][2] = { { "14/1s", "14/1s" }, { "3/100ms", "3/100ms" }, { "10/1m", "10/1m" },
                                     { "1000/1h", "1000/1h" }, { "50/s", "50/1s" }, { "7/60s", "7/1m" },
                                     { "0", "0" } };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        config(c, "q", "rate", good[i][0]);
        resp_val *v = CMD(c, "QUEUE.CONFIG", "q", "GET", "rate");
        char buf[64];
        cr_assert_str_eq(resp_text(v, buf, sizeof buf), good[i][1], "rate %s", good[i][0]);
        resp_val_free(v);
    }
    expect_error_has(CMD(c, "QUEUE.CONFIG", "q", "SET", "rate", "14/fortnight"), "ERR ", "N/period");
    expect_error_has(CMD(c, "QUEUE.CONFIG", "q", "SET", "concurrency", "-3"), "ERR ", "concurrency");
}

Test(flow, reserve_count_under_a_rate_takes_only_what_is_due)
{
    config(c, "q", "rate", "10/1s");
    push_many(c, "q", NULL, 5);
    fjob j[10];
    cr_assert_eq(reserve_nowait(c, "q", "10", j, 10), 1, "COUNT 10 at 10/1s: one job is due now");
    cr_assert_eq(stat_of(c, "q", "ready"), 4);
}

/* ========================================================= concurrency */

#define CONC_JOBS 100
#define CONC_WORKERS 20
#define CONC_LIMIT 5

enum wstate { W_WAIT, W_HOLD };

/* A worker of the concurrency test: what it holds, and since when. */
struct cworker {
    cli *c;
    enum wstate st;
    long long got, due, acked_at; /* the delivery's arrival, when to ack it, when the ack was sent */
    bool nack, ack_pending;
    char receipt[48];
};

/* Holds the test can prove were held at once: [arrival of the delivery,
 * sending of its ack] for each ack the server took. The server held the
 * lease over all of that (it began before the reply arrived and ended
 * after the ack came in), so at any instant at most the limit of them
 * overlap, however late the test's loop runs. An ack refused because the
 * lease ran out while the loop was behind (a loaded machine) proves
 * nothing and is not counted. */
struct proven {
    long long from[CONC_JOBS * 4], to[CONC_JOBS * 4];
    int n, late;
};

static int most_at_once(const struct proven *p)
{
    int most = 0;
    for (int i = 0; i < p->n; i++) { /* at the arrival of hold i; strictly, as the clock has ms only */
        int at = 1;
        for (int j = 0; j < p->n; j++)
            at += p->from[j] < p->from[i] && p->from[i] < p->to[j];
        most = at > most ? at : most;
    }
    return most;
}

static void conc_reserve(struct cworker *w)
{
    SEND(w->c, "JOB.RESERVE", "TIMEOUT", "20000", "LEASE", "300", "FROM", "k");
}

/* The ack or nack of a hold that is due, then the next reserve. */
static void conc_release(struct cworker *w)
{
    if (w->nack)
        SEND(w->c, "JOB.NACK", w->receipt, "DELAY", "0", "ERROR", "try again");
    else
        SEND(w->c, "JOB.ACK", w->receipt);
    w->acked_at = now_ms();
    w->ack_pending = true;
    w->st = W_WAIT;
    conc_reserve(w);
}

/* One reply of w's: an ack's (proven or late) or a delivery. 1: a
 * delivery; 2: a delivery that w holds (else it walks away from it). */
static int conc_reply(struct cworker *w, resp_val *v, struct proven *p, unsigned *seed)
{
    if (v->type != RESP_T_ARRAY && v->type != RESP_T_NULL) { /* ack / nack replies */
        if (w->ack_pending && v->type == RESP_T_ERROR)
            p->late++;
        else if (w->ack_pending && p->n < CONC_JOBS * 4) {
            p->from[p->n] = w->got;
            p->to[p->n++] = w->acked_at;
        }
        w->ack_pending = false;
        resp_val_free(v);
        return 0;
    }
    fjob j[1];
    if (JOBS_OF(v, j, 1) == 0) {
        conc_reserve(w);
        return 0;
    }
    w->got = now_ms();
    int r = (int)(rand_r(seed) % 10);
    if (r < 2) { /* walks away: the lease expires and the job comes back */
        conc_reserve(w);
        return 1;
    }
    w->nack = r < 4;
    snprintf(w->receipt, sizeof w->receipt, "%s", j[0].receipt);
    w->due = now_ms() + 5 + rand_r(seed) % 25;
    w->st = W_HOLD;
    return 2;
}

Test(flow, concurrency_5_is_never_exceeded_under_20_workers_with_expiries_and_nacks)
{
    config(c, "k", "concurrency", "5");
    config(c, "k", "backoff", "0");
    push_many(c, "k", NULL, CONC_JOBS);
    static struct cworker w[CONC_WORKERS];
    static struct proven p;
    memset(w, 0, sizeof w);
    memset(&p, 0, sizeof p);
    for (int i = 0; i < CONC_WORKERS; i++) {
        w[i].c = cli_connect(srv->port);
        conc_reserve(&w[i]);
    }
    int deliveries = 0, abandoned = 0, nacked = 0;
    long long max_reserved = 0, t0 = now_ms(), last_stats = 0;
    unsigned seed = 17;
    while (now_ms() - t0 < 60000) {
        for (int i = 0; i < CONC_WORKERS; i++) {
            resp_val *v;
            if (w[i].st == W_HOLD && now_ms() >= w[i].due)
                conc_release(&w[i]);
            if (cli_poll_reply(w[i].c, 0, &v) != 1)
                continue;
            int got = conc_reply(&w[i], v, &p, &seed);
            deliveries += got > 0;
            abandoned += got == 1;
            nacked += got == 2 && w[i].nack;
        }
        if (now_ms() - last_stats >= 5) {
            last_stats = now_ms();
            long long reserved = stat_of(c, "k", "reserved");
            cr_assert_leq(reserved, CONC_LIMIT, "QUEUE.STATS reserved = %lld under concurrency %d", reserved,
                          CONC_LIMIT);
            max_reserved = reserved > max_reserved ? reserved : max_reserved;
            if (stat_of(c, "k", "done") == CONC_JOBS)
                break;
        }
        sleep_ms(1);
    }
    cr_assert_eq(stat_of(c, "k", "done"), CONC_JOBS, "not all jobs were acked in 60 s (%d deliveries)",
                 deliveries);
    int most = most_at_once(&p);
    cr_assert_leq(most, CONC_LIMIT, "%d holds the server took the acks of overlapped under concurrency %d", most,
                  CONC_LIMIT);
    cr_assert(abandoned > 0 && nacked > 0, "the mix had %d lease expiries and %d nacks", abandoned, nacked);
    cr_assert_geq(stat_of(c, "k", "lease_expired"), 1);
    cr_assert_eq(max_reserved, CONC_LIMIT, "the limit was never reached (max reserved %lld): the test proves nothing",
                 max_reserved);
    cr_log_info("concurrency 5: %d deliveries, %d abandoned, %d nacked, %d acks taken (%d too late), at most %d "
                "proven holds at once, max reserved %lld", deliveries, abandoned, nacked, p.n, p.late, most,
                max_reserved);
    for (int i = 0; i < CONC_WORKERS; i++)
        cli_close(w[i].c);
}

Test(flow, a_freed_concurrency_slot_wakes_a_blocked_worker)
{
    config(c, "k", "concurrency", "1");
    push_many(c, "k", NULL, 2);
    fjob a[1];
    cr_assert_eq(reserve_nowait(c, "k", "1", a, 1), 1);
    EXPECT_NOTHING(c, "k");
    cr_assert_eq(stat_of(c, "k", "throttled"), 0);
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "k");
    wait_blocked_clients(c, 1, 10000);
    cr_assert_eq(stat_of(c, "k", "throttled"), 1, "the blocked worker is held back by the limit");
    expect_no_reply_for(w, 150, "a worker over the concurrency limit");
    expect_int(CMD(c, "JOB.ACK", a[0].receipt), 1);
    fjob b[1];
    cr_assert_eq(JOBS_OF(cli_read(w), b, 1), 1, "the ack freed a slot: the waiter gets the job");
    cli_close(w);
}

Test(flow, list_pops_take_no_concurrency_slot_but_respect_a_full_one)
{
    config(c, "k", "concurrency", "1");
    expect_int(CMD(c, "LPUSH", "k", "1", "2", "3"), 3);
    expect_bulk(CMD(c, "RPOP", "k"), "1");
    expect_bulk(CMD(c, "RPOP", "k"), "2"); /* a pop finishes at once: the slot stays free */
    fjob j[1];
    cr_assert_eq(reserve_nowait(c, "k", "1", j, 1), 1);
    expect_int(CMD(c, "LPUSH", "k", "4"), 1);
    expect_null(CMD(c, "RPOP", "k"));      /* the slot is taken by the reserved job */
}

/* ============================================================== groups */

Test(flow, a_small_group_is_not_starved_by_a_big_one_pushed_first)
{
    push_many(c, "g", "A", 10000);
    push_many(c, "g", "B", 20);
    resp_val *v = CMD(c, "QUEUE.GROUPS", "g");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "QUEUE.GROUPS: %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "group"), "A");
    cr_assert_eq(field_int(v->elem[0], "ready"), 10000);
    cr_assert_str_eq(field_str(v->elem[1], "group"), "B");
    cr_assert_eq(field_int(v->elem[1], "ready"), 20);
    resp_val_free(v);
    int b_seen = 0, n = 0;
    for (; n < 60 && b_seen < 20; n++) {
        fjob j[1];
        cr_assert_eq(reserve_nowait(c, "g", "1", j, 1), 1);
        b_seen += strstr(j[0].payload, "\"g\":\"B\"") != NULL;
        expect_int(CMD(c, "JOB.ACK", j[0].receipt), 1);
    }
    cr_assert_eq(b_seen, 20, "only %d of group B's 20 jobs among the first 60 deliveries", b_seen);
    cr_log_info("all of B delivered within the first %d deliveries", n);
}

Test(flow, priorities_order_jobs_within_a_group)
{
    PUSHO(c, "g", "{\"n\":1}", "GROUP", "t");
    PUSHO(c, "g", "{\"n\":2}", "GROUP", "t", "PRI", "5");
    PUSHO(c, "g", "{\"n\":3}", "GROUP", "t");
    const char *want[] = { "{\"n\":2}", "{\"n\":1}", "{\"n\":3}" };
    for (int i = 0; i < 3; i++) {
        fjob j[1];
        cr_assert_eq(reserve_nowait(c, "g", "1", j, 1), 1);
        cr_assert_str_eq(j[0].payload, want[i], "delivery %d", i + 1);
    }
}

Test(flow, group_concurrency_holds_each_group_to_its_limit)
{
    config(c, "g", "group-concurrency", "1");
    push_many(c, "g", "x", 3);
    push_many(c, "g", "y", 3);
    push_many(c, "g", NULL, 2);
    fjob j[10];
    int n = reserve_nowait(c, "g", "10", j, 10);
    cr_assert_eq(n, 3, "one job from each of x, y and the default group, got %d", n);
    EXPECT_NOTHING(c, "g");
    resp_val *v = CMD(c, "QUEUE.GROUPS", "g");
    cr_assert_eq(v->n, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(field_int(v->elem[i], "reserved"), 1);
    resp_val_free(v);
    int x = -1;
    for (int i = 0; i < n; i++)
        if (strstr(j[i].payload, "\"g\":\"x\""))
            x = i;
    cr_assert_geq(x, 0);
    expect_int(CMD(c, "JOB.ACK", j[x].receipt), 1);
    fjob k[10];
    cr_assert_eq(reserve_nowait(c, "g", "10", k, 10), 1);
    cr_assert(strstr(k[0].payload, "\"g\":\"x\""), "the freed slot belongs to x: %s", k[0].payload);
}

Test(flow, group_rate_paces_each_group_separately)
{
    config(c, "g", "group-rate", "2/1s");
    push_many(c, "g", "x", 4);
    push_many(c, "g", "y", 4);
    fjob j[10];
    cr_assert_eq(reserve_nowait(c, "g", "10", j, 10), 2, "one due job per group");
    long long t0 = now_ms();
    fjob k[1];
    cr_assert_eq(JOBS_OF(CMD(c, "JOB.RESERVE", "TIMEOUT", "5000", "FROM", "g"), k, 1), 1);
    long long waited = now_ms() - t0;
    cr_assert(waited >= 350 && waited < 2000, "the next group-rate token came after %lld ms", waited);
}

Test(flow, group_from_takes_the_group_of_list_pushes_from_the_payload)
{
    config(c, "g", "group-from", "tenant");
    config(c, "g", "group-concurrency", "1");
    expect_int(CMD(c, "LPUSH", "g", "{\"tenant\":\"a\"}", "{\"tenant\":\"a\"}", "{\"tenant\":7}", "{}"), 4);
    resp_val *v = CMD(c, "QUEUE.GROUPS", "g");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 3, "QUEUE.GROUPS: %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "group"), "");
    cr_assert_str_eq(field_str(v->elem[1], "group"), "7");
    cr_assert_str_eq(field_str(v->elem[2], "group"), "a");
    cr_assert_eq(field_int(v->elem[2], "ready"), 2);
    resp_val_free(v);
    resp_val *p = CMD(c, "QUEUE.PEEK", "g", "COUNT", "1");
    cr_assert_eq(p->n, 1);
    cr_assert_str_eq(field_str(p->elem[0], "group"), "a");
    resp_val_free(p);
    fjob j[10];
    cr_assert_eq(reserve_nowait(c, "g", "10", j, 10), 3);
}

Test(flow, group_option_errors_name_the_problem)
{
    char big[300];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_error_has(CMD(c, "JOB.PUSH", "g", "{}", "GROUP", big), "ERR ", "GROUP");
    expect_error_has(CMD(c, "JOB.PUSH", "g", "{}", "GROUP", ""), "ERR ", "GROUP");
    expect_error_has(CMD(c, "JOB.PUSH", "g", "{}", "EXPIRES", "0"), "ERR ", "EXPIRES");
    expect_error_has(CMD(c, "JOB.PUSH", "g", "{}", "EXPIRES", "soon"), "ERR ", "EXPIRES");
    resp_val *v = CMD(c, "QUEUE.GROUPS", "nothing");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 0, "QUEUE.GROUPS of an unknown queue: %s", resp_describe(v));
    resp_val_free(v);
}

/* ============================================================ expiring */

Test(flow, a_job_not_reserved_in_time_expires_and_never_runs)
{
    cli *s = cli_connect(srv->port);
    SEND(s, "SUBSCRIBE", "spool:events:e");
    resp_val_free(cli_read(s));
    expect_ok(CMD(c, "QUEUE.PAUSE", "e"));
    long long before = wall_ms();
    jid id = PUSHO(c, "e", "{}", "EXPIRES", "150");
    long long exp = get_int(c, id.s, "expires_at");
    cr_assert(exp >= before + 150 && exp <= wall_ms() + 150, "expires_at %lld", exp);
    bool gone = wait_until(strcmp(state_of(c, id.s), "expired") == 0, 5000);
    cr_assert(gone, "the job is %s 5 s after EXPIRES 150", state_of(c, id.s));
    cr_assert_geq(wall_ms(), exp);
    expect_ok(CMD(c, "QUEUE.RESUME", "e"));
    EXPECT_NOTHING(c, "e");
    cr_assert_eq(stat_of(c, "e", "expired"), 1);
    cr_assert_eq(stat_of(c, "e", "expired_total"), 1);
    cr_assert_eq(stat_of(c, "e", "ready"), 0);
    resp_val *p = CMD(c, "QUEUE.PEEK", "e", "STATE", "expired");
    cr_assert_eq(p->n, 1);
    resp_val_free(p);
    /* pushed, then expired */
    bool saw = false;
    for (int i = 0; i < 2; i++) {
        resp_val *e = cli_read(s);
        saw |= e->type == RESP_T_ARRAY && e->n == 3 && strstr(e->elem[2]->str, "\"event\":\"expired\"");
        resp_val_free(e);
    }
    cr_assert(saw, "no expired event");
    expect_simple(CMD(c, "JOB.RETRY", id.s), "OK");
    EXPECT_STATE(c, id.s, "ready");
    cli_close(s);
}

Test(flow, a_delayed_job_that_expires_before_its_run_at_never_reaches_a_waiting_worker)
{
    jid id = PUSHO(c, "e", "{}", "DELAY", "300", "EXPIRES", "100");
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "800", "FROM", "e");
    resp_val *v = cli_read(w);
    cr_assert(v->type == RESP_T_NULL, "a worker got a job that expired before it was due: %s", resp_describe(v));
    resp_val_free(v);
    EXPECT_STATE(c, id.s, "expired");
    cli_close(w);
}

Test(flow, queue_expires_applies_to_list_pushes_and_expired_jobs_are_kept_like_done)
{
    config(c, "e", "expires", "100");
    config(c, "e", "retention", "60000");
    expect_ok(CMD(c, "QUEUE.PAUSE", "e"));
    expect_int(CMD(c, "LPUSH", "e", "1", "2", "3"), 3);
    bool all = wait_until(stat_of(c, "e", "expired") == 3, 5000);
    cr_assert(all, "%lld of 3 expired", stat_of(c, "e", "expired"));
    expect_ok(CMD(c, "QUEUE.RESUME", "e"));
    expect_null(CMD(c, "RPOP", "e"));
    expect_int(CMD(c, "QUEUE.PURGE", "e", "STATE", "expired"), 3);
}

Test(flow, a_job_reserved_in_time_runs_and_its_retry_expires)
{
    config(c, "e", "backoff", "1000");
    jid id = PUSHO(c, "e", "{}", "EXPIRES", "300");
    fjob j[1];
    cr_assert_eq(reserve_nowait(c, "e", "1", j, 1), 1, "reserved in time: it runs");
    expect_word(CMD(c, "JOB.NACK", j[0].receipt, "ERROR", "busy"), "retry");
    bool gone = wait_until(strcmp(state_of(c, id.s), "expired") == 0, 5000);
    cr_assert(gone, "the retry due after its expiry: %s", state_of(c, id.s));
}

/* ======================================================== across kill -9 */

Test(flow, limits_groups_and_expiries_survive_kill_9)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "s", "SET", "rate", "100/1s", "concurrency", "2", "group-concurrency", "1",
                  "group-from", "tenant", "expires", "600000", "group-rate", "50/1m"));
    jid a = PUSH(c, "s", "{\"tenant\":\"a\"}");
    PUSH(c, "s", "{\"tenant\":\"a\"}");
    jid b = PUSHO(c, "s", "{}", "GROUP", "b");
    jid soon = PUSHO(c, "s", "{}", "GROUP", "c", "DELAY", "60000", "EXPIRES", "1500");
    long long a_exp = get_int(c, a.s, "expires_at");
    fjob held[1];
    cr_assert_eq(reserve_nowait(c, "s", "1", held, 1), 1);
    /* A JOB.RESERVE is answered before its commit, and its row is written
     * late (docs/operations.md): once none waits, a push on the same shard
     * ({s}: the slot of s), answered once on disk, commits after it, so the
     * lease is on disk too before the kill. */
    wait_reservations_saved(c, 5000);
    PUSH(c, "{s}barrier", "{}");
    cli_close(c);
    c = NULL;
    spoold_kill9(srv);
    spoold_restart(srv, NULL);
    c = cli_connect(srv->port);

    resp_val *v = CMD(c, "QUEUE.CONFIG", "s", "GET");
    char buf[64];
    cr_assert_str_eq(resp_text(resp_field(v, "rate"), buf, sizeof buf), "100/1s");
    cr_assert_str_eq(resp_text(resp_field(v, "concurrency"), buf, sizeof buf), "2");
    cr_assert_str_eq(resp_text(resp_field(v, "group-concurrency"), buf, sizeof buf), "1");
    cr_assert_str_eq(resp_text(resp_field(v, "group-rate"), buf, sizeof buf), "50/1m");
    cr_assert_str_eq(resp_text(resp_field(v, "group-from"), buf, sizeof buf), "tenant");
    cr_assert_str_eq(resp_text(resp_field(v, "expires"), buf, sizeof buf), "600000");
    resp_val_free(v);
    cr_assert_eq(get_int(c, a.s, "expires_at"), a_exp);
    resp_val *g = CMD(c, "JOB.GET", b.s);
    cr_assert_str_eq(field_str(g, "group"), "b");
    resp_val_free(g);
    g = CMD(c, "JOB.GET", held[0].id);
    cr_assert(strstr(field_str(g, "holder"), " id="), "the holder is journaled: %s", field_str(g, "holder"));
    resp_val_free(g);
    /* The held job still counts against its group and the queue. */
    resp_val *gr = CMD(c, "QUEUE.GROUPS", "s");
    long long reserved = 0;
    for (size_t i = 0; i < gr->n; i++)
        reserved += field_int(gr->elem[i], "reserved");
    cr_assert_eq(reserved, 1, "the job reserved before the kill holds its group after it");
    resp_val_free(gr);
    fjob j[10];
    int n = reserve_nowait(c, "s", "10", j, 10);
    cr_assert_eq(n, 1, "concurrency 2 with one job held: one more, got %d", n);
    bool gone = wait_until(strcmp(state_of(c, soon.s), "expired") == 0, 5000);
    cr_assert(gone, "EXPIRES 1500 job is %s", state_of(c, soon.s));
}

/* What a restart does to the rate limiters (docs/protocol.md, "Across
 * restarts"): their state is not journaled, so every limiter, the queue's
 * and each group's, starts idle: the first delivery after the start comes
 * at once however long the pace had still to run, and the pace holds
 * again from there. With 1/1h the held-back delivery would otherwise be
 * an hour away, so no timing can blur the result. */
Test(flow, a_restart_starts_the_rate_limiters_idle_then_paces_again)
{
    config(c, "r", "rate", "1/1h");
    config(c, "g", "group-rate", "1/1h");
    push_many(c, "r", NULL, 3);
    push_many(c, "g", "acme", 3);
    fjob j[3];
    cr_assert_eq(reserve_nowait(c, "r", "3", j, 3), 1, "an idle limiter delivers one at once");
    cr_assert_eq(reserve_nowait(c, "g", "3", j, 3), 1, "an idle group limiter delivers one at once");
    cr_assert_eq(reserve_nowait(c, "r", "1", j, 1), 0, "the next delivery is an hour away");
    cr_assert_eq(reserve_nowait(c, "g", "1", j, 1), 0, "the group's next delivery is an hour away");
    cli_close(c);
    c = NULL;
    spoold_kill9(srv);
    spoold_restart(srv, NULL);
    c = cli_connect(srv->port);
    cr_assert_eq(reserve_nowait(c, "r", "3", j, 3), 1, "after the restart the queue's limiter is idle: one at once");
    cr_assert_eq(reserve_nowait(c, "g", "3", j, 3), 1, "after the restart the group's limiter is idle: one at once");
    cr_assert_eq(reserve_nowait(c, "r", "1", j, 1), 0, "then the pace holds the queue again");
    cr_assert_eq(reserve_nowait(c, "g", "1", j, 1), 0, "then the pace holds the group again");
}

/* ========================================================= who holds what */

Test(flow, a_reservation_records_its_worker_and_queue_workers_lists_them)
{
    cli *w = cli_connect(srv->port);
    expect_ok(CMD(w, "CLIENT", "SETNAME", "mailer-1"));
    resp_val *idv = CMD(w, "CLIENT", "ID");
    long long wid = idv->integer;
    resp_val_free(idv);
    jid a = PUSH(c, "h", "{}");
    PUSH(c, "h", "{}");
    fjob j[2];
    cr_assert_eq(JOBS_OF(CMD(w, "JOB.RESERVE", "COUNT", "2", "LEASE", "60000", "FROM", "h"), j, 2), 2);
    resp_val *g = CMD(c, "JOB.GET", a.s);
    const char *holder = field_str(g, "holder");
    char want[64];
    snprintf(want, sizeof want, "id=%lld", wid);
    cr_assert(strstr(holder, "name=mailer-1 ") && strstr(holder, "addr=127.0.0.1:") && strstr(holder, want),
              "holder: %s", holder);
    resp_val_free(g);

    cli *idle = cli_connect(srv->port);
    SEND(idle, "HELLO", "2", "SETNAME", "waiter-2");
    resp_val_free(cli_read(idle));
    SEND(idle, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "h");
    wait_blocked_clients(c, 1, 10000);

    resp_val *v = CMD(c, "QUEUE.WORKERS", "h");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "QUEUE.WORKERS: %s", resp_describe(v));
    cr_assert_str_eq(field_str(v->elem[0], "name"), "mailer-1");
    cr_assert_eq(field_int(v->elem[0], "id"), wid);
    cr_assert_eq(field_int(v->elem[0], "waiting"), 0);
    cr_assert_geq(field_int(v->elem[0], "last_active"), wall_ms() - 10000);
    const resp_val *jobs = resp_field(v->elem[0], "jobs");
    cr_assert_eq(jobs->n, 2);
    cr_assert_geq(field_int(jobs->elem[0], "lease_until"), wall_ms() + 50000);
    cr_assert_str_eq(field_str(v->elem[1], "name"), "waiter-2");
    cr_assert_eq(field_int(v->elem[1], "waiting"), 1);
    cr_assert_eq(resp_field(v->elem[1], "jobs")->n, 0);
    resp_val_free(v);

    expect_int(CMD(w, "JOB.ACK", j[0].receipt, j[1].receipt), 2);
    g = CMD(c, "JOB.GET", a.s);
    field_nil(g, "holder"); /* a done job has no holder */
    resp_val_free(g);
    cli_close(idle);
    cli_close(w);
}

/* The holder text is made once per connection; a new name makes it anew. */
Test(flow, a_reservation_after_setname_records_the_new_name)
{
    cli *w = cli_connect(srv->port);
    expect_ok(CMD(w, "CLIENT", "SETNAME", "before-1"));
    jid a = PUSH(c, "hn", "{}");
    jid b = PUSH(c, "hn", "{}");
    fjob j[1];
    cr_assert_eq(JOBS_OF(CMD(w, "JOB.RESERVE", "LEASE", "60000", "FROM", "hn"), j, 1), 1);
    expect_ok(CMD(w, "CLIENT", "SETNAME", "after-2"));
    cr_assert_eq(JOBS_OF(CMD(w, "JOB.RESERVE", "LEASE", "60000", "FROM", "hn"), j, 1), 1);
    resp_val *g = CMD(c, "JOB.GET", a.s);
    cr_assert(strstr(field_str(g, "holder"), "name=before-1 "), "first holder: %s", field_str(g, "holder"));
    resp_val_free(g);
    g = CMD(c, "JOB.GET", b.s);
    cr_assert(strstr(field_str(g, "holder"), "name=after-2 "), "holder after SETNAME: %s", field_str(g, "holder"));
    resp_val_free(g);
    cli_close(w);
}

Test(flow, failed_attempts_keep_their_error_time_and_worker)
{
    config(c, "h", "backoff", "0");
    jid id = PUSHO(c, "h", "{}", "RETRIES", "30");
    cli *w = cli_connect(srv->port);
    expect_ok(CMD(w, "CLIENT", "SETNAME", "flaky"));
    long long t0 = wall_ms();
    for (int k = 1; k <= 27; k++) {
        fjob j[1];
        cr_assert_eq(JOBS_OF(CMD(w, "JOB.RESERVE", "NOWAIT", "FROM", "h"), j, 1), 1, "attempt %d", k);
        char err[32];
        snprintf(err, sizeof err, "450 try %d\tlater", k);
        expect_word(CMD(w, "JOB.NACK", j[0].receipt, "DELAY", "0", "ERROR", err), "retry");
    }
    resp_val *g = CMD(c, "JOB.GET", id.s);
    const resp_val *errs = resp_field(g, "errors");
    cr_assert(errs && errs->type == RESP_T_ARRAY && errs->n == 25, "errors: %s", errs ? resp_describe(errs) : "-");
    cr_assert_eq(field_int(errs->elem[0], "attempt"), 3, "the oldest two went");
    cr_assert_str_eq(field_str(errs->elem[0], "error"), "450 try 3 later");
    cr_assert_eq(field_int(errs->elem[24], "attempt"), 27);
    cr_assert_geq(field_int(errs->elem[24], "time"), t0);
    cr_assert(strstr(field_str(errs->elem[24], "worker"), "name=flaky "), "%s", field_str(errs->elem[24], "worker"));
    resp_val_free(g);
    cli_close(w);
}

Test(flow, a_lease_expiry_is_an_attempt_with_its_error_in_the_history)
{
    config(c, "h", "backoff", "0");
    jid id = PUSH(c, "h", "{}");
    fjob j[1];
    cr_assert_eq(JOBS_OF(CMD(c, "JOB.RESERVE", "NOWAIT", "LEASE", "50", "FROM", "h"), j, 1), 1);
    bool back = wait_until(stat_of(c, "h", "lease_expired") == 1, 5000);
    cr_assert(back);
    resp_val *g = CMD(c, "JOB.GET", id.s);
    const resp_val *errs = resp_field(g, "errors");
    cr_assert_eq(errs->n, 1);
    cr_assert_str_eq(field_str(errs->elem[0], "error"), "lease expired");
    resp_val_free(g);
}

/* =============================================== finding and redriving */

static void bury(cli *cl, const char *q, const char *error, int n)
{
    for (int i = 0; i < n; i++) {
        PUSHO(cl, q, "{}", "RETRIES", "0");
        fjob j[1];
        cr_assert_eq(JOBS_OF(CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q), j, 1), 1);
        expect_word(CMD(cl, "JOB.NACK", j[0].receipt, "ERROR", error), "dead");
    }
}

Test(flow, peek_error_finds_failed_jobs_by_their_error_text)
{
    bury(c, "d", "550 no such user", 3);
    bury(c, "d", "421 too many connections", 2);
    resp_val *v = CMD(c, "QUEUE.PEEK", "d", "STATE", "dead", "ERROR", "421*");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "%s", resp_describe(v));
    for (size_t i = 0; i < v->n; i++)
        cr_assert_str_eq(field_str(v->elem[i], "last_error"), "421 too many connections");
    resp_val_free(v);
    v = CMD(c, "QUEUE.PEEK", "d", "STATE", "dead", "ERROR", "*NO SUCH*", "COUNT", "2");
    cr_assert_eq(v->n, 2, "case-insensitive glob, COUNT counts matches");
    resp_val_free(v);
    v = CMD(c, "QUEUE.PEEK", "d", "STATE", "dead", "ERROR", "nothing like it");
    cr_assert_eq(v->n, 0);
    resp_val_free(v);
}

Test(flow, queue_retry_redrives_by_error_gradually_and_to_another_queue)
{
    fixture_stop(&srv, &c);
    srv = spoold_start("--shards", "1", NULL); /* every queue on one shard: TO works for any name */
    c = cli_connect(srv->port);
    bury(c, "d", "550 no such user", 2);
    bury(c, "d", "421 busy", 4);
    expect_int(CMD(c, "QUEUE.RETRY", "d", "ERROR", "550*"), 2);
    cr_assert_eq(stat_of(c, "d", "ready"), 2);
    cr_assert_eq(stat_of(c, "d", "dead"), 4);
    expect_int(CMD(c, "QUEUE.RETRY", "d", "RATE", "2/1s", "TO", "d-again"), 4);
    cr_assert_eq(stat_of(c, "d", "dead"), 0);
    cr_assert_eq(stat_of(c, "d-again", "ready"), 1, "the first moves at once");
    cr_assert_eq(stat_of(c, "d-again", "delayed"), 3, "the rest one every 500 ms");
    long long t0 = now_ms();
    bool all = wait_until(stat_of(c, "d-again", "ready") == 4, 5000);
    long long took = now_ms() - t0;
    cr_assert(all && took >= 1200, "4 jobs at 2/1s were all ready after %lld ms", took);
    resp_val *p = CMD(c, "QUEUE.PEEK", "d-again", "COUNT", "1");
    cr_assert_eq(field_int(p->elem[0], "attempt"), 0, "a redriven job starts afresh");
    resp_val_free(p);
    expect_error_has(CMD(c, "QUEUE.RETRY", "d", "RATE", "fast"), "ERR ", "RATE");
    expect_error_has(CMD(c, "QUEUE.RETRY", "d", "SOON", "x"), "ERR ", "SOON");
}

Test(flow, queue_retry_to_a_queue_on_another_shard_is_refused_clearly)
{
    spoold *two = spoold_start("--shards", "2", NULL);
    cli *t = cli_connect(two->port);
    /* find a name on the other shard than "src" by trying a few */
    const char *other = NULL;
    static const char *names[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
    for (size_t i = 0; i < 8 && !other; i++) {
        resp_val *v = CMD(t, "QUEUE.RETRY", "src", "TO", names[i]);
        if (v->type == RESP_T_ERROR && strncmp(v->str, "CROSSSLOT ", 10) == 0)
            other = names[i];
        resp_val_free(v);
    }
    cr_assert_not_null(other, "no queue among 8 names lives on the other of 2 shards");
    cli_close(t);
    spoold_stop(two);
}
