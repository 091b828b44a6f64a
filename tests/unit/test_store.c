/*
 * test_store.c - the job state machine (store_job_* in broker/store.c)
 * under a fake clock: every transition, backoff bounds, retry accounting,
 * unique keys, retention of done jobs, and what the journal gives back.
 * No thread, no event loop, no socket: a store is built alone over a
 * journal in a temporary directory, transitions are called directly, and
 * deadlines are fired with store_next_due() after moving the clock, each
 * "turn" ending with a commit as the shard's would.
 */
#include <criterion/criterion.h>

#include "clock.h"
#include "config.h"
#include "journal.h"
#include "queue.h"
#include "store.h"

#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t fake_now = 1800000000000LL;
static int64_t fake_clock(void *arg) { return fake_now; }

static struct config cfg;
static struct store store;
static char dir[64], path[128];

static void open_store(struct store *s)
{
    store_init(s, 0, cfg.payload, cfg.payload_memory, 0x9E3779B97F4A7C15ULL);
    int rc = journal_open(&s->jr, path, 0);
    cr_assert_eq(rc, 0, "journal_open: %d %s", rc, s->jr ? journal_error(s->jr) : "");
}

static void setup(void)
{
    char *argv[] = { "spoold", NULL };
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(config_load(&cfg, 1, argv, devnull), 0);
    fclose(devnull);
    strcpy(dir, "/tmp/spool-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/shard-0.db", dir);
    clock_set_source(fake_clock, NULL);
    open_store(&store);
}

static void teardown(void)
{
    store_free(&store);
    config_free(&cfg);
    clock_set_source(NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* The end of a turn, as the shard ends it: commit what the turn changed. */
static void end_turn(void)
{
    cr_assert_eq(store.turn_err, 0, "journal error in the turn: %s", journal_error(store.jr));
    if (journal_in_txn(store.jr))
        cr_assert_eq(journal_commit(store.jr), 0, "commit: %s", journal_error(store.jr));
    store.turn++;
}

TestSuite(store, .init = setup, .fini = teardown);

static struct queue *queue(const char *name)
{
    return store_queue(&store, name, strlen(name), true);
}

static struct job *push(struct queue *q, int64_t run_at, int64_t retries, const char *unique)
{
    struct push_opts o = { .run_at = run_at, .retries = retries, .left = true,
                           .unique = unique, .unique_len = unique ? strlen(unique) : 0 };
    return store_job_push(&store, q, strdup("{}"), 2, &o);
}

static void advance(int64_t ms)
{
    fake_now += ms;
    struct tnode *t;
    while ((t = store_next_due(&store, clock_now_ms())))
        store_job_deadline(&store, (struct job *)t);
    end_turn();
}

Test(store, push_reserve_ack)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, -1, NULL);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->retries, 25, "queue default");
    cr_assert_eq(q->nready, 1);
    store_job_reserve(&store, j, 0);
    cr_assert_eq(j->state, JOB_RESERVED);
    cr_assert_eq(j->attempt, 1);
    cr_assert_eq(j->lease_ms, 30000);
    cr_assert_eq(j->lease_until, fake_now + 30000);
    cr_assert_eq(q->nready, 0);
    cr_assert_eq(q->reserved.n, 1);
    store_job_ack(&store, j);
    cr_assert_eq(j->state, JOB_DONE);
    cr_assert_eq(q->done.n, 1);
    cr_assert_eq(q->stats.acked, 1);
    cr_assert_eq(jtable_find(&store.jobs, j->id), j, "done jobs stay findable for inspection");
}

Test(store, delayed_push_becomes_ready_at_its_time)
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

Test(store, nack_with_retries_left_backs_off_then_ready)
{
    struct queue *q = queue("q");
    q->conf.backoff = 1000;
    struct job *j = push(q, 0, 3, NULL);
    store_job_reserve(&store, j, 0);
    int st = store_job_fail(&store, j, "smtp 451", 8, -1, false, "nack");
    cr_assert_eq(st, JOB_DELAYED);
    cr_assert_str_eq(j->last_error, "smtp 451");
    cr_assert_geq(j->run_at, fake_now + 800, "backoff lower bound (jitter -20%%)");
    cr_assert_leq(j->run_at, fake_now + 1200, "backoff upper bound (jitter +20%%)");
    advance(1200);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(q->stats.retried, 1);
}

Test(store, nack_delay_overrides_backoff_and_zero_is_ready_now)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 3, NULL);
    store_job_reserve(&store, j, 0);
    store_job_fail(&store, j, NULL, 0, 250, false, "nack");
    cr_assert_eq(j->run_at, fake_now + 250);
    advance(250);
    store_job_reserve(&store, j, 0);
    store_job_fail(&store, j, NULL, 0, 0, false, "nack");
    cr_assert_eq(j->state, JOB_READY);
}

Test(store, lease_expiry_with_retries_left_never_goes_dead)
{
    struct queue *q = queue("q");
    q->conf.backoff = 10;
    struct job *j = push(q, 0, 2, NULL);
    for (uint32_t a = 1; a <= 2; a++) {
        store_job_reserve(&store, j, 100);
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

Test(store, lease_expiry_on_the_last_attempt_goes_dead)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, NULL);
    store_job_reserve(&store, j, 100);
    advance(99);
    cr_assert_eq(j->state, JOB_RESERVED);
    advance(1);
    cr_assert_eq(j->state, JOB_DEAD);
    cr_assert_eq(q->dead.n, 1);
    cr_assert_eq(q->stats.buried, 1);
}

Test(store, touch_extends_the_lease)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, NULL);
    store_job_reserve(&store, j, 100);
    advance(80);
    store_job_touch(&store, j, 100);
    advance(80);
    cr_assert_eq(j->state, JOB_RESERVED, "touched at 80 ms: alive at 160 ms");
    advance(20);
    cr_assert_eq(j->state, JOB_DEAD);
}

Test(store, nack_dead_and_retry_brings_back_with_fresh_attempts)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 5, NULL);
    store_job_reserve(&store, j, 0);
    cr_assert_eq(store_job_fail(&store, j, "bad address", 11, -1, true, "nack"), JOB_DEAD);
    cr_assert_eq(j->state, JOB_DEAD);
    store_job_retry(&store, j);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->attempt, 0);
    cr_assert_eq(q->dead.n, 0);
}

Test(store, retry_makes_a_delayed_job_ready_now)
{
    struct queue *q = queue("q");
    struct job *j = push(q, fake_now + 60000, -1, NULL);
    store_job_retry(&store, j);
    cr_assert_eq(j->state, JOB_READY);
    advance(60000);
    cr_assert_eq(j->state, JOB_READY, "its old deadline no longer fires");
    cr_assert_eq(q->nready, 1);
}

Test(store, unique_key_released_when_the_job_finishes)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, 0, "welcome");
    cr_assert_eq(queue_unique_find(q, "welcome", 7), j);
    store_job_reserve(&store, j, 0);
    cr_assert_eq(queue_unique_find(q, "welcome", 7), j, "held while reserved");
    store_job_ack(&store, j);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when done");

    struct job *k = push(q, 0, 0, "welcome");
    store_job_reserve(&store, k, 0);
    store_job_fail(&store, k, NULL, 0, -1, false, "nack");
    cr_assert_eq(k->state, JOB_DEAD);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when dead");

    struct job *l = push(q, fake_now + 1000, 0, "welcome");
    store_job_delete(&store, l);
    cr_assert_null(queue_unique_find(q, "welcome", 7), "released when deleted");
}

Test(store, list_pop_completes_and_return_undoes_it)
{
    struct queue *q = queue("q");
    struct job *j = push(q, 0, -1, NULL);
    store_job_popped(&store, j);
    cr_assert_eq(j->state, JOB_DONE);
    cr_assert_eq(q->stats.popped, 1);
    store_job_return(&store, j, false);
    cr_assert_eq(j->state, JOB_READY);
    cr_assert_eq(j->attempt, 0);
    cr_assert_eq(q->stats.popped, 0);
    cr_assert_eq(queue_ready_peek(q, false), j, "back at the end it was taken from");
}

Test(store, done_jobs_are_pruned_by_age_and_count)
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
        store_job_popped(&store, j);
    }
    cr_assert_eq(q->done.n, 3, "retention-max caps the done list");
    cr_assert_null(jtable_find(&store.jobs, first_id), "the oldest went first");
    advance(1000);
    cr_assert_null(qtable_find(&store.queues, "q", 1), "every done job aged out, and the idle queue was collected");
}

Test(store, ids_increase_and_name_the_shard)
{
    uint64_t last = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t id = store_new_id(&store);
        cr_assert_gt(id, last);
        cr_assert_eq(job_id_shard(id), 0);
        cr_assert_lt(id, 1ULL << 63);
        last = id;
    }
}

Test(store, a_fresh_store_loads_what_the_journal_holds)
{
    struct queue *q = queue("q");
    struct job *ready = push(q, 0, -1, "u1");
    struct job *delayed = push(q, fake_now + 5000, -1, NULL);
    struct job *reserved = push(q, 0, -1, NULL);
    store_job_reserve(&store, reserved, 1000);
    uint64_t ids[3] = { ready->id, delayed->id, reserved->id };
    end_turn();
    store_free(&store);
    open_store(&store);
    size_t by_state[JOB_NSTATES];
    cr_assert_eq(store_load(&store, by_state), 0);
    cr_assert_eq(by_state[JOB_READY], 1);
    cr_assert_eq(by_state[JOB_DELAYED], 1);
    cr_assert_eq(by_state[JOB_RESERVED], 1);
    struct queue *back = qtable_find(&store.queues, "q", 1);
    cr_assert_not_null(back);
    cr_assert_eq(queue_ready_peek(back, false)->id, ids[0]);
    cr_assert_not_null(queue_unique_find(back, "u1", 2), "the unique key is held again");
    cr_assert_eq(jtable_find(&store.jobs, ids[1])->state, JOB_DELAYED);
    cr_assert_eq(store_job_payload(&store, jtable_find(&store.jobs, ids[2])), 0);
    cr_assert_eq(memcmp(jtable_find(&store.jobs, ids[2])->payload, "{}", 2), 0);
    fake_now += 1; /* a restart takes longer than a millisecond */
    cr_assert_gt(store_new_id(&store), ids[2], "ids go on after the loaded ones");
    advance(999);
    cr_assert_eq(jtable_find(&store.jobs, ids[2])->state, JOB_DELAYED, "its lease ran out while loaded: retried");
}

/* A restart inside the millisecond of the last pushes (or a clock that
 * stepped back): the generator must go on after the highest id loaded,
 * not after the first one of that millisecond. */
Test(store, ids_after_a_load_in_the_same_millisecond_are_new)
{
    struct queue *q = queue("q");
    uint64_t ids[5], highest = 0;
    for (int i = 0; i < 5; i++) {
        ids[i] = push(q, 0, -1, NULL)->id;
        highest = ids[i] > highest ? ids[i] : highest;
    }
    end_turn();
    store_free(&store);
    open_store(&store);
    cr_assert_eq(store_load(&store, NULL), 0);
    struct job *j = push(q = queue("q"), 0, -1, NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_neq(j->id, ids[i], "id %016llx issued twice", (unsigned long long)j->id);
    cr_assert_gt(j->id, highest, "ids go on after the highest loaded one");
    end_turn();
}

/* Ids seen in one millisecond (a load, an import) in any order: the
 * generator goes on after the highest, not after the last seen. */
Test(store, ids_after_ids_seen_in_one_millisecond_are_new)
{
    struct queue *q = queue("q");
    uint64_t base = (uint64_t)fake_now << 22;
    store_id_seen(&store, base | (5u << 10));
    store_id_seen(&store, base | (7u << 10));
    store_id_seen(&store, base | (6u << 10));
    uint64_t id = push(q, 0, -1, NULL)->id;
    cr_assert_gt(id, base | (7u << 10) | 1023u, "id %016llx is not after the highest id seen, %016llx",
                 (unsigned long long)id, (unsigned long long)(base | (7u << 10)));
    end_turn();
}

/* The highest id was deleted before the restart, and the clock stepped
 * back to the millisecond it was issued in: the load sees no job to go on
 * from, so only the journaled id mark keeps the next id new. */
Test(store, ids_after_the_highest_was_deleted_and_the_clock_stepped_back_are_new)
{
    struct queue *q = queue("q");
    int64_t then = fake_now;
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        struct job *j = push(q, 0, -1, NULL);
        ids[i] = j->id;
        store_job_delete(&store, j);
    }
    end_turn();
    fake_now += 5000; /* more ids later, past the first mark */
    uint64_t later = push(q, 0, -1, NULL)->id;
    store_job_delete(&store, jtable_find(&store.jobs, later));
    end_turn();
    store_free(&store);
    open_store(&store);
    cr_assert_eq(store_load(&store, NULL), 0);
    cr_assert_eq(store.jobs.n, 0, "every job was deleted");
    fake_now = then; /* the clock stepped back */
    uint64_t id = push(q = queue("q"), 0, -1, NULL)->id;
    for (int i = 0; i < 3; i++)
        cr_assert_neq(id, ids[i], "id %016llx issued twice", (unsigned long long)id);
    cr_assert_gt(id, later, "ids go on after the highest ever issued, not the clock");
    end_turn();
}

/* Batch ids come from the same generator and are read back by batch.c
 * through store_id_seen: a batch id made last in a millisecond, seen after
 * the jobs of that millisecond, still moves the generator on. */
Test(store, an_id_seen_after_the_load_moves_the_generator_on)
{
    struct queue *q = queue("q");
    push(q, 0, -1, NULL);
    uint64_t batch_id = store_new_id(&store);
    end_turn();
    store_free(&store);
    open_store(&store);
    cr_assert_eq(store_load(&store, NULL), 0);
    store_id_seen(&store, batch_id);
    store_id_seen(&store, batch_id - (1u << 10)); /* a lower one changes nothing */
    cr_assert_gt(store_new_id(&store), batch_id);
}

Test(store, purge_takes_one_state_or_all_but_reserved)
{
    struct queue *q = queue("q");
    push(q, 0, -1, NULL);
    push(q, fake_now + 5000, -1, NULL);
    struct job *r = push(q, 0, -1, NULL);
    store_job_reserve(&store, r, 0);
    cr_assert_eq(store_purge(&store, q, JOB_DELAYED), 1);
    cr_assert_eq(q->delayed.n, 0);
    cr_assert_eq(q->nready, 1);
    cr_assert_eq(store_purge(&store, q, -1), 1, "the reserved job stays");
    cr_assert_eq(q->reserved.n, 1);
    end_turn();
}

/* ============================================ reservations written late */

/* The shard's commit with late reservations (shard.c commit_turn). */
static void commit_late(void)
{
    cr_assert_eq(store.turn_err, 0, "journal error in the turn: %s", journal_error(store.jr));
    if (!journal_in_txn(store.jr))
        return;
    store_commit_begins(&store);
    cr_assert_eq(store.turn_err, 0, "journal error writing late: %s", journal_error(store.jr));
    cr_assert_eq(journal_commit(store.jr), 0, "commit: %s", journal_error(store.jr));
    store_committed(&store);
    store.turn++;
}

/* The job's row as the journal holds it: "state attempt token", or "none". */
static const char *row_of(uint64_t id)
{
    static char buf[96];
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(journal_sqlite(store.jr), "SELECT state, attempt, token FROM jobs WHERE id = ?1",
                                    -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, sizeof buf, "%d %lld %lld", sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1),
                 sqlite3_column_int64(st, 2));
    else
        snprintf(buf, sizeof buf, "none");
    sqlite3_finalize(st);
    return buf;
}

static long long payload_rows(void)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(journal_sqlite(store.jr), "SELECT count(*) FROM payloads", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static const char *reserved_row(const struct job *j)
{
    static char want[96];
    snprintf(want, sizeof want, "%d %u %u", JOB_RESERVED, j->attempt, j->token);
    return want;
}

/* A job pushed and committed, then reserved in a turn of its own. */
static struct job *reserve_late(struct queue *q)
{
    store.late_reserves = true;
    struct job *j = push(q, 0, -1, NULL);
    commit_late();
    store_job_reserve(&store, j, 0);
    return j;
}

Test(store, a_late_reservation_is_written_at_the_second_commit_after_it)
{
    struct queue *q = queue("q");
    struct job *j = reserve_late(q);
    cr_assert_eq(store_unsaved(&store), 1);
    cr_assert_eq(store.unsaved_due, fake_now + STORE_UNSAVED_MAX_MS);
    cr_assert_not(journal_in_txn(store.jr), "the reserve wrote nothing");
    push(q, 0, -1, NULL);
    commit_late();
    cr_assert_str_eq(row_of(j->id), "0 0 0", "written at the first commit after it");
    push(q, 0, -1, NULL);
    commit_late();
    cr_assert_str_eq(row_of(j->id), reserved_row(j), "not written at the second commit after it");
    cr_assert_eq(store_unsaved(&store), 0);
    cr_assert_eq(store.reserves_late, 1);
    cr_assert_eq(store.unsaved_due, 0);
}

Test(store, an_idle_shard_writes_its_late_reservations_when_due)
{
    struct job *j = reserve_late(queue("q"));
    store_unsaved_write(&store); /* what the shard's timer does at unsaved_due */
    commit_late();
    cr_assert_str_eq(row_of(j->id), reserved_row(j));
    cr_assert_eq(store_unsaved(&store), 0);
    cr_assert_eq(store.unsaved_due, 0);
}

/* The ack comes before the late write: the row goes from pushed to done
 * (or away) in one write, and the ack's write is there. */
Test(store, an_ack_before_the_late_write_is_the_only_write)
{
    store.late_reserves = true;
    struct queue *kept = queue("kept"), *gone = queue("gone");
    gone->conf.retention = 0;
    char big[1000];
    memset(big, 'x', sizeof big);
    struct push_opts o = { .left = true, .retries = -1 };
    struct job *a = push(kept, 0, -1, NULL);
    struct job *b = store_job_push(&store, gone, strndup(big, sizeof big), sizeof big, &o);
    uint64_t bid = b->id;
    commit_late();
    cr_assert_eq(payload_rows(), 1, "a payload above the inline bound has a row of its own");
    store_job_reserve(&store, a, 0);
    store_job_reserve(&store, b, 0);
    commit_late();
    store_job_ack(&store, a);
    store_job_ack(&store, b);
    commit_late();
    cr_assert_eq(store.reserves_skipped, 2);
    cr_assert_eq(store.reserves_late, 0);
    cr_assert_eq(store_unsaved(&store), 0);
    char want[32];
    snprintf(want, sizeof want, "%d 1 ", JOB_DONE);
    cr_assert(strncmp(row_of(a->id), want, strlen(want)) == 0, "the ack's row: %s", row_of(a->id));
    cr_assert_str_eq(row_of(bid), "none", "the ack of a job kept for no time deletes its row");
    cr_assert_eq(payload_rows(), 0, "and its payload's row");
}

/* Memory rebuilt after a failed commit, as the shard does it. */
static void reload(void)
{
    journal_rollback(store.jr);
    store.turn_err = 0;
    store_reset(&store);
    cr_assert_eq(store_load(&store, NULL), 0);
    store_unsaved_restore(&store);
}

/* A failed commit loses the reservations made while its transaction was
 * open (as it would have lost their rows), not the earlier ones: those
 * are made again with their delivery number, token, lease and holder. */
Test(store, a_failed_commit_keeps_the_reservations_made_before_it)
{
    store.late_reserves = true;
    struct queue *q = queue("q");
    struct job *a = push(q, 0, -1, NULL), *b = push(q, 0, -1, NULL);
    commit_late();
    job_set_str(&a->holder, "name=w addr=x id=1", 18);
    store_job_reserve(&store, a, 5000);
    uint64_t aid = a->id, bid = b->id;
    uint32_t token = a->token;
    int64_t until = a->lease_until;
    fake_now += 10;
    push(q, 0, -1, NULL); /* a transaction is open: b's reservation is made in it */
    store_job_reserve(&store, b, 0);
    journal_fail_next(store.jr, 1, -ENOSPC);
    store_job_ack(&store, a); /* its write fails, and with it the turn */
    cr_assert_neq(store.turn_err, 0);
    reload();
    a = jtable_find(&store.jobs, aid);
    b = jtable_find(&store.jobs, bid);
    cr_assert_eq(a->state, JOB_RESERVED, "the reservation before the failed transaction was lost");
    cr_assert_eq(a->attempt, 1);
    cr_assert_eq(a->token, token);
    cr_assert_eq(a->lease_until, until);
    cr_assert_str_eq(a->holder, "name=w addr=x id=1");
    cr_assert_eq(q->reserved.n, 1);
    cr_assert_eq(b->state, JOB_READY, "a reservation made in the failed transaction was kept");
    cr_assert_eq(b->attempt, 0);
    cr_assert_eq(store_unsaved(&store), 1);
    push(q, 0, -1, NULL);
    commit_late();
    push(q, 0, -1, NULL);
    commit_late();
    cr_assert_str_eq(row_of(aid), reserved_row(a), "the reservation made again is written late too");
}
