/*
 * test_jobs.c - the job state machine (shard_job_* in broker/shard.c) under
 * a fake clock: every transition, backoff bounds, retry accounting, unique
 * keys, retention of done jobs. A real shard is built (its event loop is
 * never run): transitions are called directly and deadlines are fired with
 * shard_tick() after moving the clock.
 */
#include <criterion/criterion.h>

#include "clock.h"
#include "config.h"
#include "io.h"
#include "queue.h"
#include "server.h"
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t fake_now = 1800000000000LL;
static int64_t fake_clock(void *arg) { return fake_now; }

static struct server srv;
static struct shard sh;

static void setup(void)
{
    memset(&srv, 0, sizeof srv);
    char *argv[] = { "spoold", NULL };
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(config_load(&srv.cfg, 1, argv, devnull), 0);
    fclose(devnull);
    srv.nshards = 1;
    srv.nio = 1;
    srv.io = calloc(1, sizeof *srv.io);
    cr_assert_eq(io_init(&srv.io[0], &srv, 0), 0);
    clock_set_source(fake_clock, NULL);
    cr_assert_eq(shard_init(&sh, &srv, 0), 0);
}

static void teardown(void)
{
    shard_destroy(&sh);
    io_destroy(&srv.io[0]);
    free(srv.io);
    config_free(&srv.cfg);
    clock_set_source(NULL, NULL);
}

TestSuite(jobs, .init = setup, .fini = teardown);

static struct queue *queue(const char *name)
{
    return shard_queue_named(&sh, name, strlen(name), true);
}

static struct job *push(struct queue *q, int64_t run_at, int64_t retries, const char *unique)
{
    struct push_opts o = { .run_at = run_at, .retries = retries, .left = true,
                           .unique = unique, .unique_len = unique ? strlen(unique) : 0 };
    return shard_job_push(&sh, q, strdup("{}"), 2, &o);
}

static void advance(int64_t ms)
{
    fake_now += ms;
    shard_tick(&sh);
}

Test(jobs, push_reserve_ack)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, -1, NULL);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->retries, 25, "queue default");
    cr_assert_eq(q->nready, 1);
    shard_job_reserve(&sh, j, 0);
    cr_assert_eq(j->state, JOB_RESERVED);
    cr_assert_eq(j->attempt, 1);
    cr_assert_eq(j->lease_ms, 30000);
    cr_assert_eq(j->lease_until, fake_now + 30000);
    cr_assert_eq(q->nready, 0);
    cr_assert_eq(q->reserved.n, 1);
    shard_job_ack(&sh, j);
    cr_assert_eq(j->state, JOB_DONE);
    cr_assert_eq(q->done.n, 1);
    cr_assert_eq(q->stats.acked, 1);
    cr_assert_eq(jtable_find(&sh.jobs, j->id), j, "done jobs stay findable for inspection");
}

Test(jobs, delayed_push_becomes_ready_at_its_time)
{
    struct queue *q = queue("q");
    struct job *j = push(q, fake_now + 5000, -1, NULL);
    cr_assert_eq(j->state, JOB_DELAYED);
    advance(4999);
    cr_assert_eq(j->state, JOB_DELAYED);
    advance(1);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(q->nready, 1);
}

Test(jobs, nack_with_retries_left_backs_off_then_ready)
{
    struct queue *q = queue("q");
    q->conf.backoff = 1000;
    struct job *j = push(q, 0, 3, NULL);
    shard_job_reserve(&sh, j, 0);
    int st = shard_job_fail(&sh, j, "smtp 451", 8, -1, false, "nack");
    cr_assert_eq(st, JOB_DELAYED);
    cr_assert_str_eq(j->last_error, "smtp 451");
    cr_assert_geq(j->run_at, fake_now + 800, "backoff lower bound (jitter -20%%)");
    cr_assert_leq(j->run_at, fake_now + 1200, "backoff upper bound (jitter +20%%)");
    advance(1200);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(q->stats.retried, 1);
}

Test(jobs, nack_delay_overrides_backoff_and_zero_is_ready_now)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 3, NULL);
    shard_job_reserve(&sh, j, 0);
    shard_job_fail(&sh, j, NULL, 0, 250, false, "nack");
    cr_assert_eq(j->run_at, fake_now + 250);
    advance(250);
    shard_job_reserve(&sh, j, 0);
    shard_job_fail(&sh, j, NULL, 0, 0, false, "nack");
    cr_assert_eq(j->state, JOB_READY);
}

Test(jobs, lease_expiry_with_retries_left_never_goes_dead)
{
    struct queue *q = queue("q");
    q->conf.backoff = 10;
    struct job *j = push(q, 0, 2, NULL);
    for (uint32_t a = 1; a <= 2; a++) {
        shard_job_reserve(&sh, j, 100);
        cr_assert_eq(j->attempt, a);
        advance(100);
        cr_assert_eq(j->state, JOB_DELAYED, "attempt %u of 3 expired: retried, not dead", a);
        cr_assert_str_eq(j->last_error, "lease expired");
        advance(1000);
        cr_assert_eq(j->state, JOB_READY);
    }
    cr_assert_eq(q->stats.lease_expired, 2);
    cr_assert_eq(q->dead.n, 0);
}

Test(jobs, lease_expiry_on_the_last_attempt_goes_dead)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, NULL);
    shard_job_reserve(&sh, j, 100);
    advance(99);
    cr_assert_eq(j->state, JOB_RESERVED);
    advance(1);
    cr_assert_eq(j->state, JOB_DEAD);
    cr_assert_eq(q->dead.n, 1);
    cr_assert_eq(q->stats.buried, 1);
}

Test(jobs, touch_extends_the_lease)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, NULL);
    shard_job_reserve(&sh, j, 100);
    advance(80);
    shard_job_touch(&sh, j, 100);
    advance(80);
    cr_assert_eq(j->state, JOB_RESERVED, "touched at 80 ms: alive at 160 ms");
    advance(20);
    cr_assert_eq(j->state, JOB_DEAD);
}

Test(jobs, nack_dead_and_retry_brings_back_with_fresh_attempts)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 5, NULL);
    shard_job_reserve(&sh, j, 0);
    cr_assert_eq(shard_job_fail(&sh, j, "bad address", 11, -1, true, "nack"), JOB_DEAD);
    cr_assert_eq(j->state, JOB_DEAD);
    shard_job_retry(&sh, j);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->attempt, 0);
    cr_assert_eq(q->dead.n, 0);
}

Test(jobs, retry_makes_a_delayed_job_ready_now)
{
    struct queue *q = queue("q");
    struct job *j = push(q, fake_now + 60000, -1, NULL);
    shard_job_retry(&sh, j);
    cr_assert_eq(j->state, JOB_READY);
    advance(60000);
    cr_assert_eq(j->state, JOB_READY, "its old deadline no longer fires");
    cr_assert_eq(q->nready, 1);
}

Test(jobs, unique_key_released_when_the_job_finishes)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, "welcome");
    cr_assert_eq(queue_unique_find(q, "welcome", 7), j);
    shard_job_reserve(&sh, j, 0);
    cr_assert_eq(queue_unique_find(q, "welcome", 7), j, "held while reserved");
    shard_job_ack(&sh, j);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when done");

    struct job *k = push(q, 0, 0, "welcome");
    shard_job_reserve(&sh, k, 0);
    shard_job_fail(&sh, k, NULL, 0, -1, false, "nack");
    cr_assert_eq(k->state, JOB_DEAD);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when dead");

    struct job *l = push(q, fake_now + 1000, 0, "welcome");
    shard_job_delete(&sh, l);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when deleted");
}

Test(jobs, list_pop_completes_and_return_undoes_it)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, -1, NULL);
    shard_job_popped(&sh, j);
    cr_assert_eq(j->state, JOB_DONE);
    cr_assert_eq(q->stats.popped, 1);
    shard_job_return(&sh, j, false);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->attempt, 0);
    cr_assert_eq(q->stats.popped, 0);
    cr_assert_eq(queue_ready_peek(q, false), j, "back at the end it was taken from");
}

Test(jobs, done_jobs_are_pruned_by_age_and_count)
{
    struct queue *q = queue("q");
    q->conf.retention = 1000;
    q->conf.retention_max = 3;
    struct job *first = NULL;
    uint64_t first_id = 0;
    for (int i = 0; i < 5; i++) {
        struct job *j = push(q, 0, -1, NULL);
        if (!first) {
            first = j;
            first_id = j->id;
        }
        shard_job_popped(&sh, j);
    }
    cr_assert_eq(q->done.n, 3, "retention-max caps the done list");
    cr_assert_null(jtable_find(&sh.jobs, first_id), "the oldest went first");
    advance(1000);
    cr_assert_null(qtable_find(&sh.queues, "q", 1), "every done job aged out, and the idle queue was collected");
}

Test(jobs, ids_increase_and_name_the_shard)
{
    uint64_t last = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t id = shard_new_id(&sh);
        cr_assert_gt(id, last);
        cr_assert_eq(job_id_shard(id), 0);
        cr_assert_lt(id, 1ULL << 63);
        last = id;
    }
}
