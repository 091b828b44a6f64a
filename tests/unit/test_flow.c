/*
 * test_flow.c - the flow-control core: rate parsing and the GCRA limiter
 * (rate.c), fair groups (groups.c), and the store's use of both through
 * flow.c under a fake clock: limits on store_job_next, group round-robin,
 * group-concurrency, expiring jobs and their retention.
 */
#include <criterion/criterion.h>

#include "clock.h"
#include "config.h"
#include "flow.h"
#include "groups.h"
#include "rate.h"
#include "queue.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================== limits */

static struct rate parse_ok(const char *s)
{
    struct rate r;
    const char *why = NULL;
    cr_assert_eq(rate_parse(s, strlen(s), &r, &why), 0, "rate '%s' refused: %s", s, why);
    return r;
}

Test(limits, parses_every_unit_and_formats_back)
{
    static const struct { const char *in, *out; int64_t n, ms; } cases[] = {
        { "14/1s", "14/1s", 14, 1000 },     { "3/100ms", "3/100ms", 3, 100 }, { "10/1m", "10/1m", 10, 60000 },
        { "1000/1h", "1000/1h", 1000, 3600000 }, { "50/s", "50/1s", 50, 1000 }, { "5/1500ms", "5/1500ms", 5, 1500 },
        { "7/60s", "7/1m", 7, 60000 },       { "2/24h", "2/24h", 2, 86400000 }, { "1/M", "1/1m", 1, 60000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rate r = parse_ok(cases[i].in);
        cr_assert_eq(r.n, cases[i].n, "%s", cases[i].in);
        cr_assert_eq(r.per_ms, cases[i].ms, "%s", cases[i].in);
        char buf[32];
        rate_format(&r, buf, sizeof buf);
        cr_assert_str_eq(buf, cases[i].out);
    }
    struct rate off = parse_ok("0");
    cr_assert_not(rate_set(&off));
    off = parse_ok("off");
    cr_assert_not(rate_set(&off));
}

Test(limits, refuses_what_is_not_a_rate)
{
    static const char *bad[] = { "", "14", "/1s", "14/", "0/1s", "-1/1s", "14/1w", "14/0s", "14/1.5s",
                                 "1000001/1s", "5/25h", "x/1s", "14/1s ", " 14/1s", "14//1s" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rate r = { 99, 99 };
        const char *why = NULL;
        cr_assert_eq(rate_parse(bad[i], strlen(bad[i]), &r, &why), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_not_null(why);
        cr_assert_not_null(strstr(why, "N/period"));
        cr_assert_eq(r.n, 99, "a refused value changed nothing");
    }
}

/* Clients asking every `step` ms (1: greedy; more: a shard that wakes
 * late): never more than N deliveries in any window of the period, and
 * the limiter keeps up with N per period all the same. */
static void paced(const char *spec, int64_t run_ms, int step)
{
    struct rate r = parse_ok(spec);
    struct rate_state l = { 0 };
    int64_t t0 = 1700000000000LL;
    int64_t *at = malloc(sizeof *at * (size_t)((run_ms / r.per_ms + 2) * r.n + 8));
    size_t n = 0;
    for (int64_t t = t0; t < t0 + run_ms; t += step) {
        while (rate_allows(&r, &l, t)) {
            rate_take(&r, &l, t);
            at[n++] = t;
        }
    }
    for (size_t i = 0; i + (size_t)r.n < n; i++)
        cr_assert_geq(at[i + (size_t)r.n] - at[i], r.per_ms, "%s (step %d): %lld deliveries within %lld ms", spec,
                      step, (long long)r.n + 1, (long long)(at[i + (size_t)r.n] - at[i]));
    int64_t periods = run_ms / r.per_ms;
    /* an idle start gives its first millisecond one delivery; late steps lose a little at the end */
    cr_assert_geq((int64_t)n, periods * r.n - (step > 1 ? r.n / 10 + 1 : r.n / 1000 + 1),
                  "%s (step %d): only %zu deliveries in %lld ms: the pace drifts", spec, step, n, (long long)run_ms);
    cr_assert_leq((int64_t)n, (periods + 1) * r.n);
    rate_state_free(&l);
    free(at);
}

Test(limits, never_more_than_n_in_any_period_and_no_drift)
{
    paced("50/1s", 5000, 1);
    paced("14/1s", 5000, 1);
    paced("3/100ms", 2000, 1);
    paced("7/1s", 10000, 1);
    paced("1000/1s", 3000, 1);
    paced("20000/1s", 2000, 1); /* beyond RATE_LOG_MAX: pace rule alone */
}

Test(limits, late_wake_ups_do_not_slow_the_rate)
{
    paced("50/1s", 10000, 7);
    paced("50/1s", 10000, 13);
    paced("14/1s", 10000, 9);
    paced("3/100ms", 3000, 5);
}

Test(limits, an_idle_limiter_lets_the_next_delivery_through_at_once)
{
    struct rate r = parse_ok("2/1s");
    struct rate_state l = { 0 };
    rate_take(&r, &l, 1000);
    cr_assert_not(rate_allows(&r, &l, 1499), "the next one is T = 500 ms later");
    cr_assert_eq(rate_next_ms(&r, &l), 1500);
    cr_assert(rate_allows(&r, &l, 1500));
    cr_assert(rate_allows(&r, &l, 90000), "idle for long: allowed");
    rate_take(&r, &l, 90000);
    cr_assert_not(rate_allows(&r, &l, 90499), "the state does not bank the idle time");
    cr_assert_eq(rate_next_ms(&r, &l), 90500);
    rate_take(&r, &l, 90900); /* 400 ms late */
    cr_assert_eq(rate_next_ms(&r, &l), 91000, "a late delivery does not push the pace back");
    cr_assert(rate_allows(&r, &l, 91000));
    rate_take(&r, &l, 91000);  /* catching up: 100 ms after the late one */
    cr_assert_not(rate_allows(&r, &l, 91500), "the pace allows it, the window does not: 3 in 1 s");
    cr_assert_eq(rate_next_ms(&r, &l), 91900, "due when the late one leaves the window");
    cr_assert(rate_allows(&r, &l, 91900));
    cr_assert_eq(rate_busy_until_us(&r, &l), 92000 * 1000LL);
    struct rate faster = parse_ok("3/1s");
    cr_assert(rate_allows(&faster, &l, 91500), "a new rate starts its window afresh");
    rate_state_free(&l);
}

/* ============================================================== groups */

struct item {
    struct gnode gn;
    int id;
};

static struct item *item(int id)
{
    struct item *it = calloc(1, sizeof *it);
    it->id = id;
    return it;
}

static int head_id(const struct group *g)
{
    return g->head ? ((struct item *)(void *)g->head)->id : -1;
}

Test(groups, ready_lists_keep_priority_then_position_order)
{
    struct gtable t = { 0 };
    struct group *g = groups_get(&t, "a", 1);
    struct item *a = item(1), *b = item(2), *c = item(3), *d = item(4);
    groups_ready_add(&t, g, &a->gn, 0, 0);    /* first */
    groups_ready_add(&t, g, &b->gn, 0, -1);   /* left push: served after a */
    groups_ready_add(&t, g, &c->gn, 5, -2);   /* higher priority: first */
    groups_ready_add(&t, g, &d->gn, 0, 1);    /* right push: first of priority 0 */
    int want[] = { 3, 4, 1, 2 };
    int k = 0;
    for (struct gnode *n = g->head; n; n = n->next)
        cr_assert_eq(((struct item *)(void *)n)->id, want[k++]);
    cr_assert_eq(k, 4);
    cr_assert_eq(g->nready, 4);
    cr_assert_eq(t.nring, 1);
    groups_ready_remove(&t, &c->gn);
    cr_assert_eq(head_id(g), 4);
    groups_ready_remove(&t, &d->gn);
    groups_ready_remove(&t, &a->gn);
    groups_ready_remove(&t, &b->gn);
    cr_assert_eq(t.nring, 0);
    cr_assert_null(t.ring);
    groups_drop(&t, &a->gn, 0, 0);
    cr_assert_eq(t.n, 0, "an empty group is freed");
    groups_clear(&t);
    free(a), free(b), free(c), free(d);
}

Test(groups, the_ring_visits_groups_in_turn_and_new_ones_join_at_the_end)
{
    struct gtable t = { 0 };
    struct item *it[3];
    const char *keys[] = { "x", "y", "z" };
    for (int i = 0; i < 3; i++) {
        it[i] = item(i);
        groups_ready_add(&t, groups_get(&t, keys[i], 1), &it[i]->gn, 0, 0);
    }
    cr_assert_eq(t.nring, 3);
    struct group *g = t.ring;
    cr_assert_str_eq(g->key, "x");
    groups_served(&t, g);
    cr_assert_str_eq(t.ring->key, "y");
    groups_served(&t, t.ring);
    cr_assert_str_eq(t.ring->key, "z");
    groups_served(&t, t.ring);
    cr_assert_str_eq(t.ring->key, "x", "round and round");
    groups_clear(&t);
    for (int i = 0; i < 3; i++)
        free(it[i]);
}

Test(groups, a_rate_limited_group_lingers_until_its_state_no_longer_matters)
{
    struct gtable t = { 0 };
    struct group *g = groups_get(&t, "a", 1);
    struct item *a = item(1);
    groups_ready_add(&t, g, &a->gn, 0, 0);
    groups_ready_remove(&t, &a->gn);
    groups_drop(&t, &a->gn, 5000, 1000);
    cr_assert_eq(t.n, 1, "its limiter still matters: kept");
    cr_assert_eq(groups_find(&t, "a", 1), g);
    groups_sweep(&t, 4999);
    cr_assert_eq(t.n, 1);
    struct item *b = item(2);
    groups_ready_add(&t, g, &b->gn, 0, 0); /* back in use: off the idle list */
    groups_sweep(&t, 9999);
    cr_assert_eq(t.n, 1, "a group in use is never swept");
    groups_ready_remove(&t, &b->gn);
    groups_drop(&t, &b->gn, 5000, 6000);
    cr_assert_eq(t.n, 0, "its state no longer matters: freed at once");
    groups_clear(&t);
    free(a), free(b);
}

/* ======================================================= store + flow */

static int64_t fake_now = 1800000000000LL;
static int64_t fake_clock(void *arg) { return fake_now; }

static struct store sh;   /* no journal: memory only */

static void setup(void)
{
    clock_set_source(fake_clock, NULL);
    store_init(&sh, 0, PAYLOAD_JSON, 1 << 30, 0x9E3779B97F4A7C15ULL);
}

static void teardown(void)
{
    store_free(&sh);
    clock_set_source(NULL, NULL);
}

TestSuite(flow, .init = setup, .fini = teardown);

static struct queue *queue(const char *name)
{
    return store_queue(&sh, name, strlen(name), true);
}

static void set(struct queue *q, const char *name, const char *value)
{
    const char *why;
    cr_assert_eq(qconf_set(&q->conf, name, strlen(name), value, strlen(value), &why), 0, "%s %s", name, value);
}

static struct job *push(struct queue *q, const char *group, int64_t expires_ms)
{
    struct push_opts o = { .retries = -1, .left = true, .group = group, .group_len = group ? strlen(group) : 0,
                           .expires_ms = expires_ms };
    return store_job_push(&sh, q, strdup("{}"), 2, &o);
}

/* Moves the fake clock and fires what is due, as the shard's timer does
 * (the queue wake-ups of TK_QUEUE nodes belong to the shard: skipped). */
static void advance(int64_t ms)
{
    fake_now += ms;
    struct tnode *t;
    while ((t = store_next_due(&sh, clock_now_ms())))
        if (t->kind == TK_JOB)
            store_job_deadline(&sh, (struct job *)t);
    sh.turn++;
}

Test(flow, rate_lets_one_job_through_per_interval)
{
    struct queue *q = queue("q");
    set(q, "rate", "4/1s");
    for (int i = 0; i < 3; i++)
        push(q, NULL, 0);
    struct job *j = store_job_next(&sh, q, false);
    cr_assert_not_null(j);
    store_job_reserve(&sh, j, 0);
    cr_assert_null(store_job_next(&sh, q, false), "the next token is 250 ms away");
    fake_now += 249;
    cr_assert_null(store_job_next(&sh, q, false));
    fake_now += 1;
    cr_assert_not_null(store_job_next(&sh, q, false));
}

Test(flow, concurrency_counts_reserved_jobs_and_frees_on_ack_nack_and_expiry)
{
    struct queue *q = queue("q");
    set(q, "concurrency", "2");
    set(q, "backoff", "0");
    for (int i = 0; i < 5; i++)
        push(q, NULL, 0);
    struct job *a = store_job_next(&sh, q, false);
    store_job_reserve(&sh, a, 1000);
    struct job *b = store_job_next(&sh, q, false);
    store_job_reserve(&sh, b, 1000);
    cr_assert_null(store_job_next(&sh, q, false), "two reserved: full");
    store_job_ack(&sh, a);
    struct job *c = store_job_next(&sh, q, false);
    cr_assert_not_null(c, "an ack frees a slot");
    store_job_reserve(&sh, c, 1000);
    store_job_fail(&sh, b, "x", 1, 0, false, "nack");
    cr_assert_not_null(store_job_next(&sh, q, false), "a nack frees a slot");
    store_job_reserve(&sh, store_job_next(&sh, q, false), 1000);
    cr_assert_null(store_job_next(&sh, q, false));
    advance(1001);
    cr_assert_eq(q->stats.lease_expired, 2);
    cr_assert_not_null(store_job_next(&sh, q, false), "lease expiries free slots");
}

Test(flow, groups_are_served_round_robin_with_group_concurrency)
{
    struct queue *q = queue("q");
    for (int i = 0; i < 4; i++)
        push(q, "A", 0);
    push(q, "B", 0);
    push(q, NULL, 0);
    char order[8] = "";
    for (int i = 0; i < 3; i++) {
        struct job *j = store_job_next(&sh, q, false);
        strcat(order, j->group ? j->group : "-");
        store_job_reserve(&sh, j, 0);
    }
    cr_assert_str_eq(order, "AB-", "one from each group in turn");
    set(q, "group-concurrency", "1");
    cr_assert_null(store_job_next(&sh, q, false), "A already holds its one slot");
    cr_assert_eq(q->groups.n, 3, "B and the default group are held by their reserved jobs");
}

Test(flow, a_ready_job_expires_at_its_time_and_is_kept_like_done)
{
    struct queue *q = queue("q");
    struct job *j = push(q, NULL, 100);
    uint64_t id = j->id;
    advance(99);
    cr_assert_eq(j->state, JOB_READY);
    advance(1);
    cr_assert_eq(j->state, JOB_EXPIRED);
    cr_assert_eq(q->expired.n, 1);
    cr_assert_eq(q->nready, 0);
    cr_assert_eq(q->stats.expired, 1);
    cr_assert_eq(q->groups.n, 0, "its group went with it");
    advance(q->conf.retention);
    cr_assert_null(jtable_find(&sh.jobs, id), "expired jobs go when their retention is over");
}

Test(flow, next_never_hands_out_a_job_past_its_expiry_even_before_the_timer)
{
    struct queue *q = queue("q");
    struct job *j = push(q, NULL, 10);
    fake_now += 10; /* no tick yet */
    cr_assert_null(store_job_next(&sh, q, false));
    cr_assert_eq(j->state, JOB_EXPIRED);
}

Test(flow, the_queue_default_expires_applies_and_a_delayed_job_expires_first)
{
    struct queue *q = queue("q");
    set(q, "expires", "500");
    struct job *j = push(q, NULL, 0);
    cr_assert_eq(j->expires_at, fake_now + 500);
    struct push_opts o = { .retries = -1, .left = true, .run_at = fake_now + 1000 };
    struct job *d = store_job_push(&sh, q, strdup("{}"), 2, &o);
    advance(500);
    cr_assert_eq(j->state, JOB_EXPIRED);
    cr_assert_eq(d->state, JOB_EXPIRED, "due at 1000 ms, expired at 500 ms");
    store_job_retry(&sh, d);
    cr_assert_eq(d->state, JOB_READY, "an operator's retry gives an expired job a fresh start");
    cr_assert_eq(d->expires_at, 0);
}
