/*
 * test_queue.c - unit tests of the broker's in-memory core: the job deque
 * (Redis list semantics), index ranges, the queue table, waiter lists, the
 * deadline heap, payload checks and config parsing.
 */
#include <criterion/criterion.h>

#include "config.h"
#include "payload.h"
#include "queue.h"
#include "theap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

static struct job *mk(uint64_t id)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "{\"n\":%llu}", (unsigned long long)id);
    return job_new(id, buf, (size_t)n);
}

static struct qconf defaults(void)
{
    struct qconf c;
    qconf_defaults(&c, 0);
    return c;
}

static struct queue *new_queue(struct qtable *t, const char *name)
{
    struct qconf d = defaults();
    return qtable_get(t, name, strlen(name), &d);
}

static void drain(struct queue *q)
{
    struct job *j;
    while ((j = queue_ready_peek(q, false))) {
        queue_ready_remove(q, j);
        job_free(j);
    }
}

Test(ready, lpush_then_pop_right_is_fifo)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    for (uint64_t i = 1; i <= 100; i++)
        queue_ready_add(q, mk(i), true);
    cr_assert_eq(q->nready, 100);
    for (uint64_t i = 1; i <= 100; i++) {
        struct job *j = queue_ready_peek(q, false);
        cr_assert_not_null(j);
        cr_assert_eq(j->id, i);
        queue_ready_remove(q, j);
        job_free(j);
    }
    cr_assert_null(queue_ready_peek(q, false));
    qtable_free(&t);
}

Test(ready, rpush_is_lifo_and_index_zero_is_left)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    queue_ready_add(q, mk(1), false);
    queue_ready_add(q, mk(2), false);
    queue_ready_add(q, mk(0), true);
    cr_assert_eq(queue_ready_at(q, 0)->id, 0);
    cr_assert_eq(queue_ready_at(q, 1)->id, 1);
    cr_assert_eq(queue_ready_at(q, 2)->id, 2);
    cr_assert_null(queue_ready_at(q, 3));
    cr_assert_eq(queue_ready_peek(q, false)->id, 2, "the right end is served first");
    cr_assert_eq(queue_ready_peek(q, true)->id, 0);
    cr_assert_lt(queue_ready_at(q, 0)->pos, queue_ready_at(q, 1)->pos, "pos ascends left to right");
    cr_assert_lt(queue_ready_at(q, 1)->pos, queue_ready_at(q, 2)->pos);
    drain(q);
    qtable_free(&t);
}

Test(ready, higher_priority_first_fifo_within)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    int16_t pri[] = { 0, 5, -3, 5, 0, 10 };
    for (uint64_t i = 0; i < 6; i++) {
        struct job *j = mk(i);
        j->priority = pri[i];
        queue_ready_add(q, j, true);
    }
    uint64_t want[] = { 5, 1, 3, 0, 4, 2 };
    size_t k = 0;
    for (struct job *j = queue_ready_first_served(q); j; j = queue_ready_next_served(q, j))
        cr_assert_eq(j->id, want[k++], "serving order at %zu", k);
    cr_assert_eq(k, 6);
    cr_assert_eq(queue_ready_at(q, 0)->id, 2, "lowest priority is leftmost");
    cr_assert_eq(queue_ready_at(q, 5)->id, 5, "highest priority is rightmost");
    for (k = 0; k < 6; k++) {
        struct job *j = queue_ready_peek(q, false);
        cr_assert_eq(j->id, want[k]);
        queue_ready_remove(q, j);
        job_free(j);
    }
    cr_assert_eq(q->nlevels, 1, "empty levels other than 0 are dropped");
    qtable_free(&t);
}

Test(ready, recovery_inserts_by_position)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    int64_t pos[] = { 5, -2, 9, 0 };
    for (uint64_t i = 0; i < 4; i++) {
        struct job *j = mk(i);
        j->pos = pos[i];
        queue_ready_insert_pos(q, j);
    }
    cr_assert_eq(queue_ready_at(q, 0)->id, 1);
    cr_assert_eq(queue_ready_at(q, 1)->id, 3);
    cr_assert_eq(queue_ready_at(q, 2)->id, 0);
    cr_assert_eq(queue_ready_at(q, 3)->id, 2);
    struct job *j = mk(9);
    queue_ready_add(q, j, true);
    cr_assert_eq(j->pos, -3, "a left push goes left of every recovered job");
    drain(q);
    qtable_free(&t);
}

Test(jobs, payload_is_copied_and_terminated)
{
    char src[] = "{\"a\":1}";
    struct job *j = job_new(7, src, 7);
    src[0] = 'X';
    cr_assert_eq(j->len, 7);
    cr_assert_str_eq(j->payload, "{\"a\":1}");
    job_free(j);
}

Test(jobs, ids_and_receipts_parse)
{
    char hex[JOB_ID_HEX + 1];
    job_id_format(0x0194f2a3b4c5d007ULL, hex);
    cr_assert_str_eq(hex, "0194f2a3b4c5d007");
    uint64_t id;
    uint32_t a;
    cr_assert(job_id_parse("0194f2a3b4c5d007", 16, &id, &a));
    cr_assert_eq(id, 0x0194f2a3b4c5d007ULL);
    cr_assert_eq(a, 0);
    cr_assert(job_id_parse("0194f2a3b4c5d007-12", 19, &id, &a));
    cr_assert_eq(a, 12);
    cr_assert_eq(job_id_shard(id), 7);
    cr_assert_not(job_id_parse("0194f2a3b4c5d00", 15, &id, &a));
    cr_assert_not(job_id_parse("0194f2a3b4c5d00g", 16, &id, &a));
    cr_assert_not(job_id_parse("0194f2a3b4c5d007-", 17, &id, &a));
    cr_assert_not(job_id_parse("0194f2a3b4c5d007-0", 18, &id, &a));
    cr_assert_not(job_id_parse("0194f2a3b4c5d007x1", 18, &id, &a));
    cr_assert_not(job_id_parse("0194f2a3b4c5d007-99999999999", 28, &id, &a));
}

Test(job, receipts_carry_the_delivery_token)
{
    struct job *j = job_new(0x0194f2a3b4c5d007ULL, "{}", 2);
    j->attempt = 3;
    j->token = 0x00a1b2c3;
    char r[JOB_RECEIPT_MAX];
    job_receipt_format(j, r);
    cr_assert_str_eq(r, "0194f2a3b4c5d007-3-00a1b2c3");
    uint64_t id;
    uint32_t a, t;
    cr_assert(job_receipt_parse(r, strlen(r), &id, &a, &t));
    cr_assert_eq(id, j->id);
    cr_assert_eq(a, 3);
    cr_assert_eq(t, 0x00a1b2c3);
    cr_assert(job_id_parse(r, strlen(r), &id, &a), "every id parser takes the new receipts");
    cr_assert_eq(a, 3);
    /* the form without a token (deliveries made before tokens) and ids */
    cr_assert(job_receipt_parse("0194f2a3b4c5d007-4294967295", 27, &id, &a, &t));
    cr_assert_eq(a, 4294967295u);
    cr_assert_eq(t, 0);
    cr_assert(job_receipt_parse("0194f2a3b4c5d007", 16, &id, &a, &t));
    cr_assert_eq(a, 0);
    cr_assert_eq(t, 0);
    /* bad tokens */
    cr_assert_not(job_receipt_parse("0194f2a3b4c5d007-3-00000000", 27, &id, &a, &t), "a token is never 0");
    cr_assert_not(job_receipt_parse("0194f2a3b4c5d007-3-00a1b2cg", 27, &id, &a, &t));
    cr_assert_not(job_receipt_parse("0194f2a3b4c5d007--00a1b2c3", 26, &id, &a, &t));
    cr_assert_not(job_receipt_parse("0194f2a3b4c5d007-0-00a1b2c3", 27, &id, &a, &t));
    cr_assert_not(job_receipt_parse("0194f2a3b4c5d007-3-00a1b2c3x", 28, &id, &a, &t));
    job_free(j);
}

Test(qconf, set_get_format_parse)
{
    struct qconf c = defaults();
    const char *why = NULL;
    cr_assert_eq(qconf_set(&c, "lease", 5, "1500", 4, &why), 0);
    cr_assert_eq(c.lease, 1500);
    cr_assert_eq(qconf_set(&c, "payload", 7, "raw", 3, &why), 0);
    cr_assert_eq(qconf_set(&c, "lease", 5, "0", 1, &why), -EINVAL);
    cr_assert_not_null(why);
    cr_assert_eq(qconf_set(&c, "retries", 7, "abc", 3, &why), -EINVAL);
    cr_assert_eq(qconf_set(&c, "nope", 4, "1", 1, &why), -EINVAL);
    cr_assert_eq(c.lease, 1500, "a refused value changes nothing");
    char buf[512];
    qconf_format(&c, buf, sizeof buf);
    struct qconf back = defaults();
    qconf_parse(&back, buf);
    cr_assert_eq(memcmp(&back, &c, sizeof c), 0, "format/parse round trip: %s", buf);
    cr_assert_eq(qconf_get(&c, "payload", 7, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "raw");
}

Test(qconf, backoff_doubles_with_jitter_and_is_capped)
{
    struct qconf c = defaults();
    c.backoff = 1000;
    c.backoff_max = 60000;
    for (uint32_t a = 1; a <= 30; a++) {
        double base = 1000.0 * (double)(1ULL << (a - 1 > 20 ? 20 : a - 1));
        if (base > 60000)
            base = 60000;
        int64_t lo = qconf_backoff(&c, a, 0.0), hi = qconf_backoff(&c, a, 0.999999);
        cr_assert_geq(lo, (int64_t)(base * 0.8) - 1, "attempt %u low %lld", a, (long long)lo);
        cr_assert_leq(hi, 60000, "never above backoff-max (attempt %u: %lld)", a, (long long)hi);
        cr_assert_leq(hi, (int64_t)(base * 1.2) + 1);
    }
    cr_assert_eq(qconf_backoff(&c, 1, 0.5), 1000);
    cr_assert_eq(qconf_backoff(&c, 3, 0.5), 4000);
}

Test(qconf, backoff_jitter_spreads_retries_by_20_percent)
{
    struct qconf c = defaults();
    c.backoff = 1000;
    c.backoff_max = 60000;
    cr_assert_eq(qconf_backoff(&c, 1, 0.0), 800, "rnd 0: 20 %% below");
    cr_assert_eq(qconf_backoff(&c, 1, 0.25), 900);
    cr_assert_eq(qconf_backoff(&c, 3, 0.75), 4400);
    cr_assert_eq(qconf_backoff(&c, 1, 0.999999), 1199, "rnd near 1: up to 20 %% above");
    /* jitter never lifts a capped delay above backoff-max */
    cr_assert_eq(qconf_backoff(&c, 10, 0.999999), 60000);
    cr_assert_eq(qconf_backoff(&c, 10, 0.0), 48000);
}

Test(unique, keys_map_to_unfinished_jobs)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    struct job *a = mk(1), *b = mk(2);
    job_set_str(&a->unique, "k1", 2);
    job_set_str(&b->unique, "k2", 2);
    queue_unique_add(q, a);
    queue_unique_add(q, b);
    cr_assert_eq(queue_unique_find(q, "k1", 2), a);
    cr_assert_eq(queue_unique_find(q, "k2", 2), b);
    cr_assert_null(queue_unique_find(q, "k3", 2));
    queue_unique_remove(q, a);
    cr_assert_null(queue_unique_find(q, "k1", 2));
    queue_unique_remove(q, b);
    job_free(a);
    job_free(b);
    qtable_free(&t);
}

Test(jtable, find_add_remove_many)
{
    struct jtable t;
    jtable_init(&t);
    enum { N = 5000 };
    static struct job *js[N];
    for (int i = 0; i < N; i++) {
        js[i] = mk((uint64_t)i * 1024 + 3);
        jtable_add(&t, js[i]);
    }
    cr_assert_eq(t.n, N);
    for (int i = 0; i < N; i += 2)
        jtable_remove(&t, js[i]);
    for (int i = 0; i < N; i++) {
        struct job *f = jtable_find(&t, (uint64_t)i * 1024 + 3);
        if (i % 2)
            cr_assert_eq(f, js[i]);
        else
            cr_assert_null(f);
    }
    for (int i = 0; i < N; i++)
        job_free(js[i]);
    jtable_free(&t);
}

Test(range, redis_index_rules)
{
    size_t f, t;
    cr_assert(queue_range(10, 0, -1, &f, &t));
    cr_assert_eq(f, 0);
    cr_assert_eq(t, 9);
    cr_assert(queue_range(10, -3, -1, &f, &t));
    cr_assert_eq(f, 7);
    cr_assert_eq(t, 9);
    cr_assert(queue_range(10, -100, 2, &f, &t));
    cr_assert_eq(f, 0);
    cr_assert_eq(t, 2);
    cr_assert(queue_range(10, 5, 100, &f, &t));
    cr_assert_eq(t, 9);
    cr_assert_not(queue_range(10, 5, 4, &f, &t));
    cr_assert_not(queue_range(10, 10, 20, &f, &t));
    cr_assert_not(queue_range(0, 0, -1, &f, &t));
    cr_assert_not(queue_range(10, -1, -2, &f, &t));
}

Test(jtable, grows_incrementally_with_removals_mid_way)
{
    struct jtable t;
    jtable_init(&t);
    enum { N = 100000 };
    struct job **js = calloc(N, sizeof *js);
    int calls_mid_move = 0;
    for (int i = 0; i < N; i++) {
        js[i] = mk((uint64_t)i * 1024 + 5);
        jtable_add(&t, js[i]);
        if (i % 7 == 3) { /* remove an older one while a move is under way */
            jtable_remove(&t, js[i / 2]);
            job_free(js[i / 2]);
            js[i / 2] = NULL;
        }
        calls_mid_move += t.old != NULL;
    }
    cr_assert_gt(calls_mid_move, 100, "a table that grew is emptied over many calls, not at once");
    size_t live = 0;
    for (int i = 0; i < N; i++) {
        struct job *f = jtable_find(&t, (uint64_t)i * 1024 + 5);
        cr_assert_eq(f, js[i], "job %d", i);
        live += js[i] != NULL;
    }
    cr_assert_eq(t.n, live);
    for (int i = 0; i < N; i++)
        job_free(js[i]);
    free(js);
    jtable_free(&t);
}

Test(qtable, find_get_and_collect_idle_queues)
{
    struct qtable t;
    qtable_init(&t);
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "queue-%d", i);
        struct queue *q = new_queue(&t, name);
        queue_ready_add(q, mk((uint64_t)i), true);
    }
    cr_assert_eq(t.n, 500);
    struct queue *q = qtable_find(&t, "queue-321", 9);
    cr_assert_not_null(q);
    cr_assert_eq(queue_ready_at(q, 0)->id, 321);
    cr_assert_null(qtable_find(&t, "queue-32x", 9));
    cr_assert_not(qtable_maybe_free(&t, q), "a queue with jobs stays");
    drain(q);
    q->paused = true;
    cr_assert_not(qtable_maybe_free(&t, q), "a paused queue stays");
    q->paused = false;
    cr_assert(qtable_maybe_free(&t, q), "an idle queue goes");
    cr_assert_null(qtable_find(&t, "queue-321", 9));
    cr_assert_eq(t.n, 499);
    qtable_free(&t);
}

Test(qtable, names_are_binary_safe)
{
    struct qtable t;
    qtable_init(&t);
    struct qconf d = defaults();
    struct queue *a = qtable_get(&t, "a\0b", 3, &d);
    struct queue *b = qtable_get(&t, "a\0c", 3, &d);
    cr_assert_neq(a, b);
    cr_assert_eq(qtable_find(&t, "a\0b", 3), a);
    qtable_free(&t);
}

Test(waiters, fifo_and_o1_unlink)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = new_queue(&t, "q");
    struct wlink l[3];
    memset(l, 0, sizeof l);
    for (int i = 0; i < 3; i++)
        queue_wait_append(q, &l[i]);
    cr_assert_eq(q->nwaiters, 3);
    cr_assert_eq(q->wait_head, &l[0]);
    queue_wait_unlink(&l[1]);
    cr_assert_eq(q->wait_head->next, &l[2]);
    cr_assert_eq(l[2].prev, &l[0]);
    cr_assert_not(qtable_maybe_free(&t, q), "a queue with waiters stays");
    queue_wait_unlink(&l[0]);
    queue_wait_unlink(&l[2]);
    queue_wait_unlink(&l[2]); /* twice is harmless */
    cr_assert_eq(q->nwaiters, 0);
    cr_assert_null(q->wait_head);
    cr_assert_null(q->wait_tail);
    cr_assert(qtable_maybe_free(&t, q));
    qtable_free(&t);
}

Test(theap, pops_in_deadline_order_with_removals)
{
    struct theap h;
    theap_init(&h);
    enum { N = 1000 };
    static struct tnode nodes[N];
    srand(42);
    for (int i = 0; i < N; i++) {
        tnode_init(&nodes[i], 0);
        nodes[i].when = rand() % 5000;
        theap_add(&h, &nodes[i]);
    }
    for (int i = 0; i < N; i += 3)
        theap_remove(&h, &nodes[i]);
    for (int i = 0; i < N; i += 3)
        cr_assert_not(tnode_armed(&nodes[i]));
    int64_t last = -1;
    size_t count = 0;
    struct tnode *t;
    while ((t = theap_min(&h))) {
        cr_assert_geq(t->when, last);
        last = t->when;
        theap_remove(&h, t);
        count++;
    }
    cr_assert_eq(count, N - (N + 2) / 3);
    theap_free(&h);
}

Test(payload, json_accepts_values_and_reports_the_failing_byte)
{
    size_t at = 999;
    cr_assert(payload_is_json("{\"a\":[1,2,{\"b\":null}]}", 22, &at));
    cr_assert(payload_is_json(" 42 ", 4, &at));
    cr_assert(payload_is_json("\"x\"", 3, &at));
    cr_assert_not(payload_is_json("{\"a\":}", 6, &at));
    cr_assert_eq(at, 5);
    cr_assert_not(payload_is_json("{} x", 4, &at));
    cr_assert_eq(at, 3, "trailing garbage is named: %zu", at);
    cr_assert_not(payload_is_json("", 0, &at));
    cr_assert_not(payload_is_json("hello", 5, &at));
    cr_assert_eq(at, 0);
    /* Length-bounded: the bytes after n are not read. */
    cr_assert(payload_is_json("[1]garbage", 3, &at));
}

Test(payload, error_offset_names_the_first_bad_byte)
{
    static const struct { const char *in; size_t at; } cases[] = {
        { "{oops}", 1 },          { "[1,2,]", 5 },     { "{\"a\" 1}", 5 },
        { "[1 2]", 3 },           { "\"abc", 4 },      { "tru", 3 },
        { "-", 1 },
        { "{\"a\":1,}", 7 },      { "\"\\q\"", 2 },
        { "{\"a\":[1,{\"b\":}]}", 13 }, { "  ]", 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t at = 999;
        cr_assert_not(payload_is_json(cases[i].in, strlen(cases[i].in), &at), "%s accepted", cases[i].in);
        cr_assert_eq(at, cases[i].at, "%s: error at %zu, expected %zu", cases[i].in, at, cases[i].at);
    }
}

Test(payload, cjson_decides_what_the_scanner_would_pass)
{
    size_t at = 999;
    /* A lone surrogate escape: well-formed to the grammar, refused by cJSON. */
    cr_assert_not(payload_is_json("\"\\ud800\"", 8, &at));
    /* Valid escapes still pass. */
    cr_assert(payload_is_json("\"\\u00e9\\n\"", 10, &at));
    /* cJSON accepts some things RFC 8259 does not; it decides. */
    cr_assert(payload_is_json("[1.e5]", 6, &at));
    /* A 100-digit number goes to cJSON, which takes it. */
    char big[100];
    memset(big, '7', sizeof big);
    cr_assert(payload_is_json(big, sizeof big, &at));
    big[50] = 'x';
    cr_assert_not(payload_is_json(big, sizeof big, &at));
    cr_assert_eq(at, 50, "at %zu", at);
}

Test(config, defaults_flags_and_errors)
{
    struct config cfg;
    char *argv1[] = { "spoold", NULL };
    FILE *err = fopen("/dev/null", "w");
    cr_assert_eq(config_load(&cfg, 1, argv1, err), 0);
    cr_assert_eq(cfg.port, 7379);
    cr_assert_str_eq(cfg.bind, "127.0.0.1");
    cr_assert_str_eq(cfg.data_dir, "./spool-data");
    cr_assert_eq(cfg.fsync, FSYNC_ALWAYS);
    cr_assert_eq(cfg.max_payload, 1048576);
    cr_assert_gt(cfg.shards, 0);
    config_free(&cfg);

    char *argv2[] = { "spoold", "--port", "0", "--max-payload=2kb", "--fsync", "batch", "--payload", "raw", NULL };
    cr_assert_eq(config_load(&cfg, 8, argv2, err), 0);
    cr_assert_eq(cfg.port, 0);
    cr_assert_eq(cfg.max_payload, 2048);
    cr_assert_eq(cfg.fsync, FSYNC_BATCH);
    cr_assert_eq(cfg.payload, PAYLOAD_RAW);
    config_free(&cfg);

    char *bad1[] = { "spoold", "--fsync", "sometimes", NULL };
    cr_assert_eq(config_load(&cfg, 3, bad1, err), -1);
    config_free(&cfg);
    char *bad2[] = { "spoold", "--nope", "1", NULL };
    cr_assert_eq(config_load(&cfg, 3, bad2, err), -1);
    config_free(&cfg);
    char *bad3[] = { "spoold", "--port", "70000", NULL };
    cr_assert_eq(config_load(&cfg, 3, bad3, err), -1);
    config_free(&cfg);
    fclose(err);
}

Test(config, file_values_and_flags_win)
{
    char path[] = "/tmp/spool-cfg-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nport 7401\nshards 3\nrequirepass \"s3cret\"\n\nloglevel warn\n");
    fclose(f);
    struct config cfg;
    char *argv[] = { "spoold", "--config", path, "--shards", "5", NULL };
    cr_assert_eq(config_load(&cfg, 5, argv, stderr), 0);
    cr_assert_eq(cfg.port, 7401);
    cr_assert_eq(cfg.shards, 5, "the command line wins over the file");
    cr_assert_str_eq(cfg.requirepass, "s3cret");
    config_free(&cfg);
    unlink(path);
}
