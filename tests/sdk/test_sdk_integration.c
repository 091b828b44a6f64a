/*
 * test_sdk_integration.c - libspool and its worker runtime against a real
 * spoold (started per test by tests/support/harness.h on an ephemeral
 * port in a temporary directory).
 *
 * Client: push with options, push many, reserve/ack/nack/touch, stale
 * receipts, the broker's errors as codes, admin calls, AUTH from the URL.
 * Runtime: many jobs through many threads exactly once, RETRY and FAIL,
 * a handler longer than its lease kept alive by TOUCH, the broker killed
 * (SIGKILL) and restarted mid-run, SIGTERM during work, and the stop
 * deadline handing jobs back.
 *
 * Waits poll the broker's state with a deadline (wait_until); a handler
 * that "works" for a while sleeps, which is the work being simulated, not
 * a wait for state.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drop_proxy.h"
#include "harness.h"
#include "spool.h"

/* ============================================================== helpers */

static char url_buf[64];

static const char *url_of(const spoold *s)
{
    snprintf(url_buf, sizeof url_buf, "spool://127.0.0.1:%d", s->port);
    return url_buf;
}

static spool_client *client_of(const spoold *s)
{
    spool_client *c = NULL;
    int rc = spool_connect_url(&c, url_of(s));
    cr_assert_eq(rc, 0, "connect: %s", spool_errmsg(c));
    return c;
}

static spool_queue_stats stats_of(spool_client *c, const char *q)
{
    spool_queue_stats st;
    int rc = spool_queue_stats_get(c, q, &st);
    cr_assert_eq(rc, 0, "QUEUE.STATS %s: %s", q, spool_errmsg(c));
    return st;
}

/* Stats through a fresh connection each time (survives broker restarts). */
static bool stats_try(const char *url, const char *q, spool_queue_stats *st)
{
    spool_client *c = NULL;
    bool ok = spool_connect_url(&c, url) == 0 && spool_queue_stats_get(c, q, st) == 0;
    spool_close(c);
    return ok;
}

static void push_n(spool_client *c, const char *q, int n, char (*ids)[SPOOL_ID_MAX])
{
    spool_push_item *items = calloc((size_t)n, sizeof *items);
    char (*payloads)[32] = calloc((size_t)n, 32);
    for (int i = 0; i < n; i++) {
        snprintf(payloads[i], 32, "{\"n\":%d}", i);
        items[i].payload = payloads[i];
        items[i].len = strlen(payloads[i]);
    }
    int rc = spool_push_many(c, q, items, (size_t)n);
    cr_assert_eq(rc, 0, "push_many: %s", spool_errmsg(c));
    for (int i = 0; ids && i < n; i++)
        memcpy(ids[i], items[i].id, SPOOL_ID_MAX);
    free(items);
    free(payloads);
}

/* ===================================================== the plain client */

Test(sdk_it, push_reserve_ack)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    cr_assert_eq(spool_protocol(c), 3);
    char id[SPOOL_ID_MAX];
    spool_push_opts o = { .priority = 5, .retries = 3, .lease_ms = 20000 };
    cr_assert_eq(spool_push_str(c, "emails", "{\"to\":\"a@example.com\"}", &o, id), 0, "%s",
                 spool_errmsg(c));
    cr_assert_eq(strlen(id), 16, "id %s", id);

    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "emails", 2000, &j), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(j->id, id);
    cr_assert_str_eq(j->queue, "emails");
    cr_assert_eq(j->attempt, 1);
    cr_assert_eq(j->lease_ms, 20000);
    cr_assert_str_eq(spool_job_json_str(j, "to"), "a@example.com");
    char receipt[SPOOL_ID_MAX];
    snprintf(receipt, sizeof receipt, "%s", j->receipt);
    spool_job_free(j);

    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(c, id, &g), 0, "%s", spool_errmsg(c));
    cr_assert_str_eq(g->state, "reserved");
    cr_assert_eq(g->priority, 5);
    cr_assert_eq(g->retries, 3);
    spool_job_free(g);

    cr_assert_eq(spool_ack(c, receipt), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_ack(c, receipt), SPOOL_ESTALE, "a second ack: %s", spool_errmsg(c));
    cr_assert_eq(spool_job_get(c, id, &g), 0);
    cr_assert_str_eq(g->state, "done");
    spool_job_free(g);
    spool_queue_stats st = stats_of(c, "emails");
    cr_assert_eq(st.done, 1);
    cr_assert_eq(st.acked, 1);
    spool_close(c);
    spoold_stop(s);
}

/* Pushes through a proxy that loses the reply of a push the broker ran:
 * the SDK sends it again with the same key, and the queue holds one job. */
Test(sdk_it, a_push_whose_reply_was_lost_is_stored_once)
{
    spoold *s = spoold_start(NULL);
    spool_client *direct = client_of(s);
    drop_proxy *p = drop_proxy_start(s->port);
    char url[64];
    snprintf(url, sizeof url, "spool://127.0.0.1:%d", drop_proxy_port(p));
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), 0, "%s", spool_errmsg(c));

    char id[SPOOL_ID_MAX];
    drop_proxy_arm(p, 1);
    cr_assert_eq(spool_push_str(c, "idem", "{\"n\":1}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_eq(drop_proxy_cut(p), 1, "the proxy did not lose a reply");
    cr_assert_eq(stats_of(direct, "idem").ready, 1, "a resent push made a second job");
    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(direct, id, &g), 0, "%s", spool_errmsg(direct));
    cr_assert(g->unique && strlen(g->unique) == 32, "automatic key: %s", g->unique ? g->unique : "(none)");
    spool_job_free(g);

    spool_push_opts own = { .unique = "order-991" }; /* the caller's key is the one kept */
    drop_proxy_arm(p, 1);
    cr_assert_eq(spool_push_str(c, "idem", "{\"n\":2}", &own, id), 0, "%s", spool_errmsg(c));
    cr_assert_eq(drop_proxy_cut(p), 2);
    cr_assert_eq(stats_of(direct, "idem").ready, 2);
    cr_assert_eq(spool_job_get(direct, id, &g), 0, "%s", spool_errmsg(direct));
    cr_assert_str_eq(g->unique, "order-991");
    spool_job_free(g);

    drop_proxy_arm(p, 1); /* a pipelined batch: the replies after the first bytes are lost */
    char ids[50][SPOOL_ID_MAX];
    push_n(c, "idem", 50, ids);
    cr_assert_eq(drop_proxy_cut(p), 3);
    cr_assert_eq(stats_of(direct, "idem").ready, 52, "resent batch items made extra jobs");
    for (int i = 1; i < 50; i++)
        cr_assert(strcmp(ids[i], ids[i - 1]), "items %d and %d got one id", i - 1, i);
    spool_close(c);
    drop_proxy_stop(p);
    spool_close(direct);
    spoold_stop(s);
}

Test(sdk_it, flow_control_options_and_views)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    const char *set[] = { "rate", "100/1s", "concurrency", "5", "group-concurrency", "1" };
    cr_assert_eq(spool_queue_config_set(c, "fc", set, 3), 0, "%s", spool_errmsg(c));
    char id[SPOOL_ID_MAX];
    spool_push_opts o = { .expires_ms = 600000, .group = "tenant-a" };
    cr_assert_eq(spool_push_str(c, "fc", "{}", &o, id), 0, "%s", spool_errmsg(c));
    spool_push_opts bad = { .expires_ms = -1 };
    cr_assert_eq(spool_push_str(c, "fc", "{}", &bad, NULL), SPOOL_EINVAL);

    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "fc", 2000, &j), 1, "%s", spool_errmsg(c));
    char receipt[SPOOL_ID_MAX];
    snprintf(receipt, sizeof receipt, "%s", j->receipt);
    spool_job_free(j);
    cr_assert_eq(spool_job_get(c, id, &j), 0);
    cr_assert_str_eq(j->group, "tenant-a");
    cr_assert_gt(j->expires_at, 0);
    cr_assert(j->holder && strstr(j->holder, " id="), "holder %s", j->holder ? j->holder : "(null)");
    spool_job_free(j);

    spool_queue_worker *w = NULL;
    int n = spool_queue_workers(c, "fc", &w);
    cr_assert_eq(n, 1, "%s", spool_errmsg(c));
    cr_assert_eq(w[0].njobs, 1);
    cr_assert_str_eq(w[0].jobs[0].id, id);
    spool_queue_workers_free(w, (size_t)n);
    spool_group_info *g = NULL;
    n = spool_queue_groups(c, "fc", &g);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(g[0].group, "tenant-a");
    cr_assert_eq(g[0].reserved, 1);
    spool_queue_groups_free(g, (size_t)n);
    spool_queue_stats st = stats_of(c, "fc");
    cr_assert_eq(st.rate_limit, 100);
    cr_assert_eq(st.rate_period_ms, 1000);
    cr_assert_eq(st.concurrency_limit, 5);
    cr_assert_eq(st.groups, 1);

    cr_assert_eq(spool_nack(c, receipt, SPOOL_NACK_DEFAULT_DELAY, "bad address", SPOOL_NACK_DEAD),
                 SPOOL_NACK_WENT_DEAD);
    cr_assert_eq(spool_job_get(c, id, &j), 0);
    cr_assert_eq(j->nerrors, 1);
    cr_assert_str_eq(j->errors[0].error, "bad address");
    cr_assert_eq(j->errors[0].attempt, 1);
    spool_job_free(j);
    spool_job **found = NULL;
    spool_peek_opts po = { .state = "dead", .error = "bad*" };
    n = spool_queue_peek_opts(c, "fc", &po, &found);
    cr_assert_eq(n, 1, "%s", spool_errmsg(c));
    spool_jobs_free(found, (size_t)n);
    spool_retry_opts ro = { .error = "bad*", .rate = "10/1s" };
    cr_assert_eq(spool_queue_retry_opts(c, "fc", &ro), 1, "%s", spool_errmsg(c));
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, resp2_works_too)
{
    spoold *s = spoold_start(NULL);
    spool_options o = { .url = url_of(s), .protocol = 2 };
    spool_client *c = NULL;
    cr_assert_eq(spool_connect(&c, &o), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_protocol(c), 2);
    cr_assert_eq(spool_push_str(c, "q", "[1]", NULL, NULL), 0, "%s", spool_errmsg(c));
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", SPOOL_NOWAIT, &j), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(j->payload, "[1]");
    cr_assert_eq(spool_ack(c, j->receipt), 0);
    spool_job_free(j);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, nack_retry_then_dead_and_dead_at_once)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    const char *cfg[] = { "retries", "1" };
    cr_assert_eq(spool_queue_config_set(c, "q", cfg, 1), 0, "%s", spool_errmsg(c));
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), 0);
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", 2000, &j), 1);
    cr_assert_eq(spool_nack(c, j->receipt, 0, "first try failed", 0), SPOOL_NACK_RETRIED,
                 "%s", spool_errmsg(c));
    spool_job_free(j);
    cr_assert_eq(spool_reserve_one(c, "q", 5000, &j), 1, "%s", spool_errmsg(c));
    cr_assert_eq(j->attempt, 2);
    cr_assert_eq(spool_nack(c, j->receipt, 0, "second try failed", 0), SPOOL_NACK_WENT_DEAD);
    spool_job_free(j);
    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(c, id, &g), 0);
    cr_assert_str_eq(g->state, "dead");
    cr_assert_str_eq(g->last_error, "second try failed");
    spool_job_free(g);

    /* DEAD: straight to dead with retries left */
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, id), 0);
    cr_assert_eq(spool_reserve_one(c, "q", 2000, &j), 1);
    cr_assert_eq(spool_nack(c, j->receipt, -1, "550 no such user", SPOOL_NACK_DEAD),
                 SPOOL_NACK_WENT_DEAD, "%s", spool_errmsg(c));
    spool_job_free(j);
    cr_assert_eq(spool_job_get(c, id, &g), 0);
    cr_assert_str_eq(g->state, "dead");
    cr_assert_str_eq(g->last_error, "550 no such user");
    spool_job_free(g);

    /* JOB.RETRY brings it back */
    cr_assert_eq(spool_job_retry(c, id), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_reserve_one(c, "q", 2000, &j), 1);
    cr_assert_str_eq(j->id, id);
    spool_job_free(j);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, touch_extends_the_lease)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    spool_push_opts o = { .lease_ms = 400 };
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "q", "{}", &o, id), 0);
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", 2000, &j), 1);
    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(c, id, &g), 0);
    long long before = g->lease_until;
    spool_job_free(g);
    long long until = 0;
    cr_assert_eq(spool_touch(c, j->receipt, 60000, &until), 0, "%s", spool_errmsg(c));
    cr_assert(until >= before + 59000, "lease_until %lld, before %lld", until, before);
    /* well past the original 400 ms lease, the receipt is still good */
    spool_job *none = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", 1000, &none), 0, "redelivered despite the touch");
    cr_assert_eq(spool_ack(c, j->receipt), 0, "%s", spool_errmsg(c));
    spool_job_free(j);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, a_receipt_of_an_expired_lease_is_stale)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    const char *cfg[] = { "backoff", "1" };
    cr_assert_eq(spool_queue_config_set(c, "q", cfg, 1), 0, "%s", spool_errmsg(c));
    spool_push_opts o = { .lease_ms = 100 };
    cr_assert_eq(spool_push_str(c, "q", "{}", &o, NULL), 0);
    spool_job *first = NULL, *second = NULL;
    cr_assert_eq(spool_reserve_one(c, "q", 2000, &first), 1);
    /* The second delivery gets a long lease, so that only the first one's
     * expiry is in play however slow the machine is. */
    const char *q1[] = { "q" };
    spool_reserve_opts ro = { .timeout_ms = 5000, .lease_ms = 60000 };
    cr_assert_eq(spool_reserve(c, q1, 1, &ro, &second, 1), 1, "not redelivered after the lease");
    cr_assert_eq(second->attempt, 2);
    cr_assert_eq(spool_ack(c, first->receipt), SPOOL_ESTALE);
    cr_assert(strstr(spool_errmsg(c), "STALE"), "%s", spool_errmsg(c));
    cr_assert_eq(spool_touch(c, first->receipt, 0, NULL), SPOOL_ESTALE);
    cr_assert_eq(spool_ack(c, second->receipt), 0, "%s", spool_errmsg(c));
    spool_job_free(first);
    spool_job_free(second);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, push_many_and_reserve_many_across_queues)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    enum { NJ = 500 };
    static char ids[NJ][SPOOL_ID_MAX];
    push_n(c, "a", NJ, ids);
    for (int i = 0; i < NJ; i++)
        for (int k = 0; k < i; k += 37)
            cr_assert_str_neq(ids[i], ids[k]);
    cr_assert_eq(stats_of(c, "a").ready, NJ);
    cr_assert_eq(spool_push_str(c, "b", "\"b\"", NULL, NULL), 0);
    const char *qs[] = { "b", "a" };
    spool_job *one = NULL;
    spool_reserve_opts ro = { .timeout_ms = 1000 };
    cr_assert_eq(spool_reserve(c, qs, 2, &ro, &one, 1), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(one->queue, "b", "queues are served in argument order");
    cr_assert_eq(spool_ack(c, one->receipt), 0);
    spool_job_free(one);
    spool_job *jobs[10];
    int n = spool_reserve(c, qs, 2, &ro, jobs, 10);
    cr_assert_eq(n, 10, "%d: %s", n, spool_errmsg(c));
    cr_assert_str_eq(jobs[0]->queue, "a");
    const char *receipts[10];
    for (int i = 0; i < n; i++)
        receipts[i] = jobs[i]->receipt;
    cr_assert_eq(spool_ack_many(c, receipts, 10), 10, "%s", spool_errmsg(c));
    for (int i = 0; i < n; i++)
        spool_job_free(jobs[i]);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, the_broker_errors_as_codes)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    cr_assert_eq(spool_push_str(c, "q", "not json", NULL, NULL), SPOOL_EBADJSON);
    cr_assert(strstr(spool_errmsg(c), "BADJSON"), "%s", spool_errmsg(c));
    size_t big = 2u << 20;
    char *p = malloc(big);
    memset(p, ' ', big);
    p[0] = '"';
    p[big - 1] = '"';
    cr_assert_eq(spool_push(c, "q", p, big, NULL, NULL), SPOOL_ETOOBIG, "%s", spool_errmsg(c));
    free(p);
    const char *cfg[] = { "maxlen", "1" };
    cr_assert_eq(spool_queue_config_set(c, "full", cfg, 1), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_push_str(c, "full", "1", NULL, NULL), 0);
    cr_assert_eq(spool_push_str(c, "full", "2", NULL, NULL), SPOOL_EFULL, "%s", spool_errmsg(c));
    cr_assert_eq(spool_ack(c, "0194f2a3b4c5d007-1"), SPOOL_ENOJOB, "%s", spool_errmsg(c));
    spool_push_opts u = { .unique = "welcome-a" };
    char id1[SPOOL_ID_MAX], id2[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "u", "{}", &u, id1), 0);
    cr_assert_eq(spool_push_str(c, "u", "{}", &u, id2), 0);
    cr_assert_str_eq(id1, id2);
    cr_assert_eq(spool_ping(c), 0, "errors must leave the connection usable");
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, admin_calls)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    push_n(c, "adm", 5, NULL);
    cr_assert_eq(spool_push_str(c, "other", "{}", NULL, NULL), 0);
    char **names = NULL;
    cr_assert_eq(spool_queue_list(c, &names), 2, "%s", spool_errmsg(c));
    cr_assert_str_eq(names[0], "adm");
    cr_assert_str_eq(names[1], "other");
    spool_strv_free(names);

    spool_job **jobs = NULL;
    int n = spool_queue_peek(c, "adm", NULL, 2, NULL, &jobs);
    cr_assert_eq(n, 2, "%s", spool_errmsg(c));
    cr_assert_str_eq(jobs[0]->state, "ready");
    char after[SPOOL_ID_MAX];
    snprintf(after, sizeof after, "%s", jobs[1]->id);
    spool_jobs_free(jobs, (size_t)n);
    n = spool_queue_peek(c, "adm", "ready", 10, after, &jobs);
    cr_assert_eq(n, 3, "%s", spool_errmsg(c));
    spool_jobs_free(jobs, (size_t)n);

    cr_assert_eq(spool_queue_pause(c, "adm"), 0);
    cr_assert(stats_of(c, "adm").paused);
    spool_job *j = NULL;
    cr_assert_eq(spool_reserve_one(c, "adm", SPOOL_NOWAIT, &j), 0, "a paused queue delivered");
    cr_assert_eq(spool_queue_resume(c, "adm"), 0);
    cr_assert_eq(spool_reserve_one(c, "adm", SPOOL_NOWAIT, &j), 1);
    cr_assert_eq(spool_nack(c, j->receipt, -1, "x", SPOOL_NACK_DEAD), SPOOL_NACK_WENT_DEAD);
    spool_job_free(j);
    cr_assert_eq(spool_queue_retry(c, "adm"), 1);
    char **kv = NULL;
    cr_assert_eq(spool_queue_config_get(c, "adm", "retries", &kv), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(kv[1], "25");
    spool_strv_free(kv);
    cr_assert(spool_queue_config_get(c, "adm", NULL, &kv) >= 8, "%s", spool_errmsg(c));
    spool_strv_free(kv);
    cr_assert_eq(spool_queue_purge(c, "adm", NULL), 5, "%s", spool_errmsg(c));
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "del", "{}", NULL, id), 0);
    const char *ids[] = { id };
    cr_assert_eq(spool_job_delete(c, ids, 1), 1, "%s", spool_errmsg(c));
    cr_assert_eq(spool_job_delete(c, ids, 1), 0, "%s", spool_errmsg(c));
    spool_job *gone = NULL;
    cr_assert_eq(spool_job_get(c, id, &gone), SPOOL_ENOJOB);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, auth_from_the_url)
{
    spoold *s = spoold_start("--requirepass", "s3cret", NULL);
    char url[128];
    snprintf(url, sizeof url, "spool://default:s3cret@127.0.0.1:%d", s->port);
    spool_client *c = NULL;
    cr_assert_eq(spool_connect_url(&c, url), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_push_str(c, "q", "{}", NULL, NULL), 0, "%s", spool_errmsg(c));
    spool_close(c);
    snprintf(url, sizeof url, "spool://:wrong@127.0.0.1:%d", s->port);
    cr_assert_eq(spool_connect_url(&c, url), SPOOL_EAUTH, "%s", spool_errmsg(c));
    cr_assert(strstr(spool_errmsg(c), "WRONGPASS"), "%s", spool_errmsg(c));
    spool_close(c);
    /* no password: HELLO 3 itself is refused, as Redis does */
    cr_assert_eq(spool_connect_url(&c, url_of(s)), SPOOL_EAUTH, "%s", spool_errmsg(c));
    cr_assert(strstr(spool_errmsg(c), "NOAUTH"), "%s", spool_errmsg(c));
    spool_close(c);
    spoold_stop(s);
}

/* ======================================================= worker runtime */

#define MAXJ 2000

typedef struct tally {
    pthread_mutex_t mu;
    int runs[MAXJ];          /* handler runs per payload number */
    atomic_int running;
    int sleep_ms;            /* each run "works" this long */
    int fail_n;              /* this payload number fails (SPOOL_FAIL) */
    int retry_n;             /* this payload number retries on attempt 1 */
} tally;

static void tally_init(tally *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->fail_n = t->retry_n = -1;
}

static int tally_handler(spool_job *job, spool_ctx *ctx, void *arg)
{
    tally *t = arg;
    const cJSON *root = spool_job_json(job);
    int n = -1;
    if (root) {
        const char *p = strstr(job->payload, "\"n\":");
        if (p)
            n = atoi(p + 4);
    }
    if (n < 0 || n >= MAXJ) {
        spool_ctx_set_error(ctx, "bad payload %s", job->payload);
        return SPOOL_FAIL;
    }
    atomic_fetch_add(&t->running, 1);
    pthread_mutex_lock(&t->mu);
    t->runs[n]++;
    pthread_mutex_unlock(&t->mu);
    if (t->sleep_ms)
        usleep((useconds_t)t->sleep_ms * 1000);
    atomic_fetch_sub(&t->running, 1);
    if (n == t->fail_n) {
        spool_ctx_set_error(ctx, "job %d cannot be done", n);
        return SPOOL_FAIL;
    }
    if (n == t->retry_n && job->attempt == 1) {
        spool_ctx_set_error(ctx, "try again");
        spool_ctx_retry_in(ctx, 0);
        return SPOOL_RETRY;
    }
    return SPOOL_OK;
}

typedef struct runner {
    spool_worker *w;
    pthread_t th;
    int rc;
} runner;

static void *run_main(void *arg)
{
    runner *r = arg;
    r->rc = spool_worker_run(r->w);
    return NULL;
}

static runner *worker_start(const char *url, const char *const *queues, int threads, tally *t,
                            void (*tweak)(spool_worker_config *))
{
    runner *r = calloc(1, sizeof *r);
    spool_worker_config cfg = {
        .url = url, .queues = queues, .handler = tally_handler, .handler_arg = t,
        .threads = threads, .no_signals = true, .log_level = SPOOL_LOG_WARN,
        .reserve_timeout_ms = 200, .reconnect_min_ms = 20, .reconnect_max_ms = 300,
    };
    if (tweak)
        tweak(&cfg);
    cr_assert_eq(spool_worker_new(&r->w, &cfg), 0);
    cr_assert_eq(pthread_create(&r->th, NULL, run_main, r), 0);
    return r;
}

static int worker_join(runner *r, spool_worker_counters *ct)
{
    spool_worker_stop(r->w);
    pthread_join(r->th, NULL);
    spool_worker_counters_get(r->w, ct);
    spool_worker_free(r->w);
    int rc = r->rc;
    free(r);
    return rc;
}

static long long counter_done(const runner *r)
{
    spool_worker_counters ct;
    spool_worker_counters_get(r->w, &ct);
    return ct.done;
}

Test(sdk_worker, many_jobs_many_threads_each_once)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    enum { NJ = 400 };
    push_n(c, "work", NJ, NULL);
    static tally t;
    tally_init(&t);
    const char *qs[] = { "other", "work", NULL };
    runner *r = worker_start(url_of(s), qs, 4, &t, NULL);
    cr_assert(wait_until(counter_done(r) == NJ, 30000), "done %lld of %d", counter_done(r), NJ);
    spool_worker_counters ct;
    cr_assert_eq(worker_join(r, &ct), 0);
    cr_assert_eq(ct.done, NJ);
    cr_assert_eq(ct.retried + ct.failed + ct.lost, 0);
    for (int i = 0; i < NJ; i++)
        cr_assert_eq(t.runs[i], 1, "job %d ran %d times", i, t.runs[i]);
    spool_queue_stats st = stats_of(c, "work");
    cr_assert_eq(st.done, NJ);
    cr_assert_eq(st.ready + st.reserved + st.delayed + st.dead, 0);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_worker, retry_and_fail)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    char ids[3][SPOOL_ID_MAX];
    push_n(c, "work", 3, ids);
    static tally t;
    tally_init(&t);
    t.fail_n = 1;
    t.retry_n = 2;
    const char *qs[] = { "work", NULL };
    runner *r = worker_start(url_of(s), qs, 2, &t, NULL);
    cr_assert(wait_until(stats_of(c, "work").done == 2 && stats_of(c, "work").dead == 1, 20000),
              "done %lld dead %lld", stats_of(c, "work").done, stats_of(c, "work").dead);
    spool_worker_counters ct;
    cr_assert_eq(worker_join(r, &ct), 0);
    cr_assert_eq(ct.done, 2);
    cr_assert_eq(ct.retried, 1);
    cr_assert_eq(ct.failed, 1);
    cr_assert_eq(t.runs[2], 2);
    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(c, ids[1], &g), 0);
    cr_assert_str_eq(g->state, "dead");
    cr_assert_eq(g->attempt, 1, "FAIL must not retry");
    cr_assert_str_eq(g->last_error, "job 1 cannot be done");
    spool_job_free(g);
    spool_close(c);
    spoold_stop(s);
}

static void short_lease(spool_worker_config *cfg)
{
    cfg->lease_ms = 600;
}

Test(sdk_worker, a_handler_longer_than_its_lease_is_kept_alive)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    char ids[2][SPOOL_ID_MAX];
    push_n(c, "slow", 2, ids);
    static tally t;
    tally_init(&t);
    t.sleep_ms = 2500; /* four leases long */
    const char *qs[] = { "slow", NULL };
    runner *r = worker_start(url_of(s), qs, 2, &t, short_lease);
    cr_assert(wait_until(counter_done(r) == 2, 20000), "done %lld", counter_done(r));
    spool_worker_counters ct;
    cr_assert_eq(worker_join(r, &ct), 0);
    cr_assert(ct.touches >= 6, "touches %lld", ct.touches);
    cr_assert_eq(ct.lost, 0);
    cr_assert_eq(t.runs[0] + t.runs[1], 2, "a job was delivered twice");
    spool_queue_stats st = stats_of(c, "slow");
    cr_assert_eq(st.expired, 0, "a lease expired");
    cr_assert_eq(st.done, 2);
    spool_close(c);
    spoold_stop(s);
}

static void restart_tweak(spool_worker_config *cfg)
{
    cfg->lease_ms = 5000;
}

Test(sdk_worker, broker_killed_and_restarted_mid_run, .timeout = 120)
{
    spoold *s1 = spoold_start(NULL);
    char url[64], port[16], data[320];
    snprintf(url, sizeof url, "spool://127.0.0.1:%d", s1->port);
    snprintf(port, sizeof port, "%d", s1->port);
    snprintf(data, sizeof data, "%s/data", s1->dir);
    spool_client *c = client_of(s1);
    enum { NJ = 600 };
    push_n(c, "work", NJ, NULL);
    spool_close(c);

    static tally t;
    tally_init(&t);
    t.sleep_ms = 3;
    const char *qs[] = { "work", NULL };
    runner *r = worker_start(url, qs, 4, &t, restart_tweak);
    cr_assert(wait_until(counter_done(r) >= NJ / 3, 30000), "done %lld", counter_done(r));
    spoold_kill9(s1);
    long long at_kill = counter_done(r);
    spoold *s2 = spoold_start("--port", port, "--data-dir", data, NULL);
    cr_assert_eq(s2->port, s1->port);

    spool_queue_stats st = { 0 };
    bool all = wait_until(stats_try(url, "work", &st) && st.done == NJ, 60000);
    spool_worker_counters ct;
    int rc = worker_join(r, &ct);
    cr_assert(all, "after the restart: done %lld ready %lld reserved %lld delayed %lld dead %lld "
              "(worker: %lld done, %lld at the kill, %lld lost, %lld reconnects)",
              st.done, st.ready, st.reserved, st.delayed, st.dead, ct.done, at_kill, ct.lost,
              ct.reconnects);
    cr_assert_eq(rc, 0);
    cr_assert(ct.reconnects >= 1, "no reconnect counted");
    cr_assert_eq(st.ready + st.reserved + st.delayed + st.dead, 0);
    cr_assert_eq(ct.done, NJ, "acks accepted: %lld (each job must be acked exactly once)", ct.done);
    for (int i = 0; i < NJ; i++)
        cr_assert(t.runs[i] >= 1, "job %d never ran", i);
    spoold_stop(s2);
    spoold_destroy(s1);
}

static void *send_sigterm(void *arg)
{
    tally *t = arg;
    wait_until(atomic_load(&t->running) >= 2, 10000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void marker_handler(int sig)
{
    (void)sig;
}

static void with_signals(spool_worker_config *cfg)
{
    cfg->no_signals = false;
}

Test(sdk_worker, sigterm_finishes_running_jobs_and_stops)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    enum { NJ = 20 };
    push_n(c, "work", NJ, NULL);
    static tally t;
    tally_init(&t);
    t.sleep_ms = 400;
    const char *qs[] = { "work", NULL };
    spool_worker_config cfg = {
        .url = url_of(s), .queues = qs, .handler = tally_handler, .handler_arg = &t,
        .threads = 2, .log_level = SPOOL_LOG_WARN, .reserve_timeout_ms = 200,
    };
    with_signals(&cfg);
    spool_worker *w = NULL;
    cr_assert_eq(spool_worker_new(&w, &cfg), 0);
    signal(SIGTERM, marker_handler);
    pthread_t th;
    pthread_create(&th, NULL, send_sigterm, &t);
    long long t0 = now_ms();
    int rc = spool_worker_run(w); /* returns after SIGTERM */
    long long took = now_ms() - t0;
    pthread_join(th, NULL);
    spool_worker_counters ct;
    spool_worker_counters_get(w, &ct);
    spool_worker_free(w);
    cr_assert_eq(rc, 0);
    cr_assert(took < 5000, "took %lld ms", took);
    cr_assert(ct.done >= 2 && ct.done < NJ, "done %lld", ct.done);
    spool_queue_stats st = stats_of(c, "work");
    cr_assert_eq(st.reserved, 0, "jobs left reserved after a graceful stop");
    cr_assert_eq(st.done, ct.done);
    cr_assert_eq(st.ready, NJ - ct.done);
    cr_assert(signal(SIGTERM, SIG_DFL) == marker_handler, "the previous SIGTERM handler was not restored");
    spool_close(c);
    spoold_stop(s);
}

static void quick_stop(spool_worker_config *cfg)
{
    cfg->stop_timeout_ms = 300;
}

Test(sdk_worker, the_stop_deadline_hands_running_jobs_back)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    char ids[2][SPOOL_ID_MAX];
    push_n(c, "work", 2, ids);
    static tally t;
    tally_init(&t);
    t.sleep_ms = 2000;
    const char *qs[] = { "work", NULL };
    runner *r = worker_start(url_of(s), qs, 2, &t, quick_stop);
    cr_assert(wait_until(atomic_load(&t.running) == 2, 10000));
    spool_worker_counters ct;
    cr_assert_eq(worker_join(r, &ct), SPOOL_ETIMEOUT);
    cr_assert_eq(ct.handed_back, 2);
    cr_assert_eq(ct.done, 0);
    spool_queue_stats st = stats_of(c, "work");
    cr_assert_eq(st.reserved, 0);
    cr_assert_eq(st.ready + st.delayed, 2);
    spool_job *g = NULL;
    cr_assert_eq(spool_job_get(c, ids[0], &g), 0);
    cr_assert_str_eq(g->last_error, "worker stopping: handed back at the stop deadline");
    spool_job_free(g);
    spool_close(c);
    spoold_stop(s);
}

/* ============================================ results, schedules, batches */

typedef struct waiter_arg {
    const char *url, *id;
    int rc;
    spool_job *job;
} waiter_arg;

static void *wait_main(void *arg)
{
    waiter_arg *a = arg;
    spool_client *c = NULL;
    if (spool_connect_url(&c, a->url) == 0)
        a->rc = spool_job_wait(c, a->id, 20000, &a->job);
    spool_close(c);
    return NULL;
}

Test(sdk_it, ack_result_progress_and_wait)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "thumbs", "{\"img\":1}", NULL, id), 0);
    spool_job *j = NULL;
    cr_assert_eq(spool_job_wait(c, id, 100, &j), 0, "a ready job: the wait times out");
    cr_assert_null(j);
    waiter_arg wa = { .url = url_of(s), .id = id };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, wait_main, &wa), 0);
    cr_assert_eq(spool_reserve_one(c, "thumbs", 2000, &j), 1);
    cr_assert_eq(spool_job_progress(c, j->receipt, "40"), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_job_progress(c, j->receipt, "140"), SPOOL_ESERVER);
    cr_assert_eq(spool_ack_result(c, j->receipt, "{\"url\":\"/t/1.png\"}", 18), 0, "%s", spool_errmsg(c));
    spool_job_free(j);
    pthread_join(th, NULL);
    cr_assert_eq(wa.rc, 1, "JOB.WAIT on the other connection");
    cr_assert_str_eq(wa.job->state, "done");
    cr_assert_str_eq(wa.job->result, "{\"url\":\"/t/1.png\"}");
    cr_assert_eq(wa.job->result_len, 18);
    cr_assert_str_eq(wa.job->progress, "40");
    spool_job_free(wa.job);
    cr_assert_eq(spool_job_wait(c, "00000000000a0000", 100, &j), SPOOL_ENOJOB);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, schedules)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    spool_sched_opts o = { .tz = "America/New_York", .priority = 3, .unique = true, .catchup = "all" };
    cr_assert_eq(spool_sched_set(c, "morning", "digest", "0 7 * * MON-FRI", "{}", &o), 0, "%s", spool_errmsg(c));
    cr_assert_eq(spool_sched_set(c, "often", "beats", "@every 1s", "{}", NULL), 0);
    cr_assert_eq(spool_sched_set(c, "bad", "beats", "@every never", "{}", NULL), SPOOL_ESERVER);
    cr_assert(strstr(spool_errmsg(c), "@every needs a duration"), "%s", spool_errmsg(c));
    spool_schedule *sc = NULL;
    cr_assert_eq(spool_sched_get(c, "morning", &sc), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(sc->queue, "digest");
    cr_assert_str_eq(sc->tz, "America/New_York");
    cr_assert_str_eq(sc->catchup, "all");
    cr_assert(sc->unique && !sc->paused && sc->priority == 3 && sc->next_at > 0);
    cr_assert_null(sc->last_job);
    spool_schedule_free(sc);
    spool_schedule **v = NULL;
    cr_assert_eq(spool_sched_list(c, NULL, &v), 2);
    spool_schedules_free(v, 2);
    cr_assert_eq(spool_sched_pause(c, "often"), 0);
    cr_assert_eq(spool_sched_resume(c, "often"), 0);
    cr_assert(wait_until(({
        spool_schedule *x = NULL;
        bool ran = spool_sched_get(c, "often", &x) == 1 && x->runs >= 1 && x->last_job;
        spool_schedule_free(x);
        ran;
    }), 5000), "the schedule pushed a job");
    cr_assert_eq(spool_sched_del(c, "often"), 1);
    cr_assert_eq(spool_sched_del(c, "often"), 0);
    cr_assert_eq(spool_sched_get(c, "often", &sc), 0);
    cr_assert_eq(spool_sched_pause(c, "often"), SPOOL_ESERVER);
    spool_close(c);
    spoold_stop(s);
}

Test(sdk_it, batches)
{
    spoold *s = spoold_start("--shards", "3", NULL);
    spool_client *c = client_of(s);
    spool_batch_opts bo = { .on_complete_queue = "after", .on_complete_payload = "{\"all\":1}",
                            .on_death_queue = "deaths", .on_death_payload = "{}" };
    char bid[SPOOL_ID_MAX];
    cr_assert_eq(spool_batch_new(c, &bo, bid), 0, "%s", spool_errmsg(c));
    spool_push_opts po = { .batch = bid };
    const char *qs[] = { "pa", "pb", "pc", "pd" };
    for (int i = 0; i < 4; i++)
        cr_assert_eq(spool_push_str(c, qs[i], "{}", &po, NULL), 0, "%s", spool_errmsg(c));
    spool_batch_info bi;
    cr_assert_eq(spool_batch_get(c, bid, &bi), 1);
    cr_assert_str_eq(bi.state, "open");
    cr_assert_eq(bi.total, 4);
    cr_assert_eq(spool_batch_close(c, bid), 0);
    cr_assert_eq(spool_push_str(c, "pa", "{}", &po, NULL), SPOOL_ESERVER, "a closed batch takes no job");
    for (int i = 0; i < 4; i++) {
        spool_job *j = NULL;
        cr_assert_eq(spool_reserve_one(c, qs[i], 2000, &j), 1);
        cr_assert_eq(spool_ack(c, j->receipt), 0);
        spool_job_free(j);
    }
    cr_assert(wait_until(spool_batch_get(c, bid, &bi) == 1 && bi.fired_complete, 5000), "ON-COMPLETE fired");
    cr_assert_str_eq(bi.state, "finished");
    cr_assert(!bi.fired_death && !bi.fired_success && bi.done == 4 && bi.unfinished == 0);
    spool_job *cb = NULL;
    cr_assert_eq(spool_reserve_one(c, "after", 2000, &cb), 1);
    cr_assert_str_eq(cb->payload, "{\"all\":1}");
    spool_job_free(cb);
    cr_assert_eq(spool_batch_get(c, "00000000000a0000", &bi), 0);
    spool_close(c);
    spoold_stop(s);
}

static int result_handler(spool_job *job, spool_ctx *ctx, void *arg)
{
    (void)arg;
    cr_assert_eq(spool_ctx_progress(ctx, "{\"step\":1}"), 0);
    char r[64];
    int n = snprintf(r, sizeof r, "{\"echo\":%s}", job->payload);
    spool_ctx_set_result(ctx, r, (size_t)n);
    return SPOOL_OK;
}

static void use_result_handler(spool_worker_config *cfg)
{
    cfg->handler = result_handler;
}

Test(sdk_worker, handler_results_and_progress_reach_the_job)
{
    spoold *s = spoold_start(NULL);
    spool_client *c = client_of(s);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "echo", "7", NULL, id), 0);
    const char *qs[] = { "echo", NULL };
    tally t;
    tally_init(&t);
    runner *r = worker_start(url_of(s), qs, 1, &t, use_result_handler);
    spool_job *j = NULL;
    cr_assert_eq(spool_job_wait(c, id, 10000, &j), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(j->state, "done");
    cr_assert_str_eq(j->result, "{\"echo\":7}");
    cr_assert_str_eq(j->progress, "{\"step\":1}");
    spool_job_free(j);
    spool_worker_counters ct;
    cr_assert_eq(worker_join(r, &ct), 0);
    cr_assert_eq(ct.done, 1);
    spool_close(c);
    spoold_stop(s);
}

/* ============================================================== cluster */

/* Two cluster nodes: a serves slots 0-8191, b the rest ("{bar}…" is slot
 * 5061, "{foo}…" slot 12182); moves is the map's "moves" JSON. */
static void cluster_map(spoold *a, spoold *b, int epoch, const char *moves)
{
    char ids[2][64], map[2048];
    spoold *n[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        cli *c = cli_connect(n[i]->port);
        resp_val *v = cli_cmd(c, "CLUSTER", "MYID", (const char *)NULL);
        snprintf(ids[i], sizeof ids[i], "%s", v->str);
        resp_val_free(v);
        cli_close(c);
    }
    snprintf(map, sizeof map,
             "{\"epoch\":%d,\"groups\":[{\"name\":\"a\",\"nodes\":[{\"id\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d}]},"
             "{\"name\":\"b\",\"nodes\":[{\"id\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d}]}],"
             "\"slots\":[[0,8191,0],[8192,16383,1]],\"moves\":%s}",
             epoch, ids[0], a->port, ids[1], b->port, moves);
    for (int i = 0; i < 2; i++) {
        cli *c = cli_connect(n[i]->port);
        resp_val *v = cli_cmd(c, "CLUSTER", "SETMAP", map, (const char *)NULL);
        cr_assert_eq(v->type, RESP_T_INT, "SETMAP: %s", v->str ? v->str : "?");
        resp_val_free(v);
        cli_close(c);
    }
}

/* The ready count of q on node s (with ASKING, for a slot moving there). */
static long long ready_on(spoold *s, const char *q)
{
    cli *c = cli_connect(s->port);
    resp_val *v = cli_cmd(c, "ASKING", (const char *)NULL);
    resp_val_free(v);
    v = cli_cmd(c, "QUEUE.STATS", q, (const char *)NULL);
    cr_assert(v->type == RESP_T_ARRAY || v->type == RESP_T_MAP, "QUEUE.STATS %s on %d: %s", q, s->port,
              v->str ? v->str : "?");
    long long n = v->elem[1]->integer;
    resp_val_free(v);
    cli_close(c);
    return n;
}

Test(sdk_it, cluster_follows_moved_and_ask)
{
    spoold *a = spoold_start("--cluster", "yes", NULL), *b = spoold_start("--cluster", "yes", NULL);
    cluster_map(a, b, 1, "[]");
    spool_client *c = client_of(a);
    char id[SPOOL_ID_MAX];
    cr_assert_eq(spool_push_str(c, "{foo}jobs", "{\"n\":1}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_eq(id[0], '{', "a cluster id carries its slot's tag: %s", id);
    cr_assert_eq(ready_on(b, "{foo}jobs"), 1, "the push went to the node of the slot");
    spool_job *job = NULL;
    cr_assert_eq(spool_reserve_one(c, "{foo}jobs", 1000, &job), 1, "%s", spool_errmsg(c));
    cr_assert_str_eq(job->id, id);
    cr_assert_eq(spool_ack(c, job->receipt), 0, "%s", spool_errmsg(c));
    spool_job_free(job);
    spool_close(c);
    /* a pipeline whose pushes a redirects: each is sent again to b */
    c = client_of(a);
    char ids[3][SPOOL_ID_MAX];
    push_n(c, "{foo}many", 3, ids);
    cr_assert_eq(ids[2][0], '{', "%s", ids[2]);
    cr_assert_eq(ready_on(b, "{foo}many"), 3, "the redirected pipeline landed on b once each");
    spool_close(c);
    /* slot 5061 of a moving to b: a's -ASK sends the push to b with ASKING */
    cluster_map(a, b, 2, "[{\"slot\":5061,\"to\":1,\"state\":\"moving\"}]");
    c = client_of(a);
    cr_assert_eq(spool_push_str(c, "{bar}jobs", "{\"n\":2}", NULL, id), 0, "%s", spool_errmsg(c));
    cr_assert_eq(ready_on(b, "{bar}jobs"), 1, "-ASK: the push landed on the target");
    spool_close(c);
    spoold_stop(a);
    spoold_stop(b);
}
