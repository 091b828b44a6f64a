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

static struct job *mk(uint64_t id)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "{\"n\":%llu}", (unsigned long long)id);
    return job_new(id, buf, (size_t)n);
}

Test(jobq, lpush_rpop_is_fifo)
{
    struct jobq d = { 0 };
    for (uint64_t i = 1; i <= 100; i++)
        jobq_push_left(&d, mk(i));
    cr_assert_eq(d.n, 100);
    for (uint64_t i = 1; i <= 100; i++) {
        struct job *j = jobq_pop_right(&d);
        cr_assert_not_null(j);
        cr_assert_eq(j->id, i);
        job_free(j);
    }
    cr_assert_null(jobq_pop_right(&d));
    jobq_clear(&d);
}

Test(jobq, rpush_rpop_is_lifo_and_index_zero_is_left)
{
    struct jobq d = { 0 };
    jobq_push_right(&d, mk(1));
    jobq_push_right(&d, mk(2));
    jobq_push_left(&d, mk(0));
    cr_assert_eq(jobq_at(&d, 0)->id, 0);
    cr_assert_eq(jobq_at(&d, 1)->id, 1);
    cr_assert_eq(jobq_at(&d, 2)->id, 2);
    struct job *j = jobq_pop_right(&d);
    cr_assert_eq(j->id, 2);
    job_free(j);
    j = jobq_pop_left(&d);
    cr_assert_eq(j->id, 0);
    job_free(j);
    jobq_clear(&d);
    cr_assert_eq(d.n, 0);
}

Test(jobq, wraps_and_grows_keeping_order)
{
    struct jobq d = { 0 };
    uint64_t next_in = 1, next_out = 1;
    /* Interleave pushes and pops so the ring wraps many times while growing. */
    for (int round = 0; round < 50; round++) {
        for (int k = 0; k < 7; k++)
            jobq_push_left(&d, mk(next_in++));
        for (int k = 0; k < 5; k++) {
            struct job *j = jobq_pop_right(&d);
            cr_assert_eq(j->id, next_out++);
            job_free(j);
        }
    }
    cr_assert_eq(d.n, next_in - next_out);
    for (size_t i = 0; i < d.n; i++)
        cr_assert_eq(jobq_at(&d, i)->id, next_in - 1 - i);
    jobq_clear(&d);
}

Test(jobq, payload_is_copied_and_terminated)
{
    char src[] = "{\"a\":1}";
    struct job *j = job_new(7, src, 7);
    src[0] = 'X';
    cr_assert_eq(j->len, 7);
    cr_assert_str_eq(j->payload, "{\"a\":1}");
    job_free(j);
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

Test(qtable, find_get_and_collect_empty_queues)
{
    struct qtable t;
    qtable_init(&t);
    char name[32];
    for (int i = 0; i < 500; i++) {
        int n = snprintf(name, sizeof name, "queue-%d", i);
        struct queue *q = qtable_get(&t, name, (size_t)n);
        jobq_push_left(&q->ready, mk((uint64_t)i));
    }
    cr_assert_eq(t.n, 500);
    struct queue *q = qtable_find(&t, "queue-321", 9);
    cr_assert_not_null(q);
    cr_assert_eq(jobq_at(&q->ready, 0)->id, 321);
    cr_assert_null(qtable_find(&t, "queue-32x", 9));
    cr_assert_null(qtable_find(&t, "queue-32", 7) == NULL ? NULL : qtable_find(&t, "nope", 4));
    cr_assert_not(qtable_maybe_free(&t, q), "a queue with jobs stays");
    job_free(jobq_pop_right(&q->ready));
    cr_assert(qtable_maybe_free(&t, q), "an empty queue with no waiters goes");
    cr_assert_null(qtable_find(&t, "queue-321", 9));
    cr_assert_eq(t.n, 499);
    qtable_free(&t);
}

Test(qtable, names_are_binary_safe)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *a = qtable_get(&t, "a\0b", 3);
    struct queue *b = qtable_get(&t, "a\0c", 3);
    cr_assert_neq(a, b);
    cr_assert_eq(qtable_find(&t, "a\0b", 3), a);
    qtable_free(&t);
}

Test(waiters, fifo_and_o1_unlink)
{
    struct qtable t;
    qtable_init(&t);
    struct queue *q = qtable_get(&t, "q", 1);
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
