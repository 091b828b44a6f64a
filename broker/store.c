/*
 * store.c - the jobs of one shard and every change of their state (see
 * store.h).
 */
#include "store.h"

#include "clock.h"
#include "flow.h"
#include "journal.h"
#include "log.h"
#include "msg.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ID_EPOCH_MS 1704067200000LL /* 2024-01-01: ids stay below 2^63 until 2093 */

/* ------------------------------------------------------------ lifecycle */

static void reset_queue(void *arg, struct queue *q)
{
    struct store *s = arg;
    queue_clear_jobs(q);
    if (q->stats_turn == s->turn)
        q->stats = q->stats_saved;
    q->conf = s->defaults;
    q->conf_custom = false;
    q->paused = false;
}

void store_init(struct store *s, int id, int payload_mode, int64_t payload_budget, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->rng = seed;
    /* tokens must differ from one start to the next: a delivery answered
     * but lost in a crash is made again under the same number */
    if (getrandom(&s->token_key, sizeof s->token_key, GRND_NONBLOCK) != (ssize_t)sizeof s->token_key)
        s->token_key = seed ^ (uint64_t)time(NULL) ^ ((uint64_t)clock_mono_ms() << 20);
    s->turn = 1; /* a new queue's stats_turn is 0: nothing to save yet */
    qtable_init(&s->queues);
    jtable_init(&s->jobs);
    theap_init(&s->timers);
    qconf_defaults(&s->defaults, payload_mode);
    s->payload_budget = payload_budget;
}

void store_free(struct store *s)
{
    if (s->queues.b)
        qtable_free(&s->queues);
    jtable_free(&s->jobs);
    theap_free(&s->timers);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < s->unsaved[k].n; i++)
            free(s->unsaved[k].v[i].holder);
        free(s->unsaved[k].v);
    }
    journal_close(s->jr);
    s->jr = NULL;
}

static void unsaved_keep_holders(struct store *s);

/* Memory forgets every job and queue setting (the journal is then loaded
 * again, see store_load); queues, and the waiters they hold, stay. */
void store_reset(struct store *s)
{
    for (size_t i = 0; i < s->timers.n; i++)
        s->timers.a[i].t->idx = TNODE_NONE;
    s->timers.n = 0;
    s->ready_head = NULL;
    unsaved_keep_holders(s);
    qtable_each(&s->queues, reset_queue, s);
    jtable_free(&s->jobs);
    jtable_init(&s->jobs);
    s->payload_bytes = 0;
}

/* ------------------------------------------------------------- queues */

struct queue *store_queue(struct store *s, const char *name, size_t len, bool create)
{
    return create ? qtable_get(&s->queues, name, len, &s->defaults) : qtable_find(&s->queues, name, len);
}


void store_queue_changed(struct store *s, struct queue *q)
{
    if (q->nwaiters == 0 || q->in_ready_list || q->nready == 0 || q->paused)
        return;
    q->in_ready_list = true;
    q->ready_next = s->ready_head;
    s->ready_head = q;
}


void store_queue_gc(struct store *s, struct queue *q)
{
    if (q && !s->stopping)
        qtable_maybe_free(&s->queues, q);
}


/* The generator goes on after the highest id seen (millisecond, then the
 * sequence in it), so a restart within the millisecond of the last pushes,
 * or with a clock that stepped back, issues no id twice. Any order. */
void store_id_seen(struct store *s, uint64_t id)
{
    int64_t ms = (int64_t)(id >> 22);
    uint32_t seq = (uint32_t)((id >> 10) & 0xfff);
    if (ms > s->id_ms || (ms == s->id_ms && seq > s->id_seq))
        s->id_ms = ms, s->id_seq = seq;
}


double store_random(struct store *s)
{
    /* xorshift64*: jitter only, not security */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* A delivery token: splitmix64 of a counter and a random key, never 0. */
static uint32_t store_token(struct store *s)
{
    for (;;) {
        uint64_t z = s->token_key + 0x9E3779B97F4A7C15ULL * ++s->token_ctr;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        if ((uint32_t)(z >> 32))
            return (uint32_t)(z >> 32);
    }
}

/* ------------------------------------------------------- journal hooks */

/* Every change of a turn goes into one transaction, begun at the first
 * change; the first error is kept and fails the whole turn at its end. */
static void jr_result(struct store *s, int rc)
{
    if (rc < 0 && s->turn_err == 0) {
        s->turn_err = rc;
        if (!journal_failed(s->jr, NULL)) /* a failed sync was logged once, loudly (shard.c) */
            log_error("journal of shard %d: %s", s->id, journal_error(s->jr));
    }
}

static bool jr_ready(struct store *s)
{
    if (!s->jr || s->turn_err)
        return false;
    jr_result(s, journal_begin(s->jr));
    return s->turn_err == 0;
}

/* For another module's statements: the turn's held job rows go in first
 * (journal_flush()), so that its statement sees them. */
bool store_jr_begin(struct store *s)
{
    if (jr_ready(s))
        jr_result(s, journal_flush(s->jr));
    return s->turn_err == 0 && s->jr;
}

void store_jr_result(struct store *s, int rc)
{
    jr_result(s, rc);
}

struct journal *store_txn(struct store *s)
{
    return store_jr_begin(s) ? s->jr : NULL;
}

void store_txn_result(struct store *s, int rc)
{
    jr_result(s, rc);
}

/* The id mark: a millisecond every id issued so far lies below, kept in
 * the journal's meta table and moved ahead ID_MARK_AHEAD_MS at a time, in
 * the transaction of the turn that issues the id. After a restart the
 * generator starts at the mark, so an id is never issued twice, even when
 * the clock stepped back and the job with the highest id was deleted (the
 * load sees only the jobs still there). One meta write per second of ids. */
#define ID_MARK_AHEAD_MS 1000
#define ID_MARK_KEY "id_mark_ms"

static void id_mark_advance(struct store *s)
{
    if (s->id_ms < s->id_mark_ms || !jr_ready(s))
        return;
    int64_t mark = s->id_ms + ID_MARK_AHEAD_MS;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)mark);
    int rc = journal_meta_put(s->jr, ID_MARK_KEY, v);
    jr_result(s, rc); /* a failed write fails the turn, and with it this id */
    if (rc == 0)
        s->id_mark_ms = mark;
}

/* At load: go on from the journaled mark (see id_mark_advance). */
static int id_mark_load(struct store *s)
{
    char v[24];
    int rc = journal_meta_get(s->jr, ID_MARK_KEY, v, sizeof v);
    if (rc == -ENOENT)
        return 0; /* no mark yet: a data dir from before it */
    char *end = v;
    long long mark = rc == 0 ? strtoll(v, &end, 10) : -1;
    if (rc == -ERANGE)
        snprintf(v, sizeof v, "(too long)");
    else if (rc < 0)
        return rc;
    if (end == v || *end || mark < 0) {
        log_error("journal of shard %d: meta row '%s' = '%s' is not a millisecond count; "
                  "ids go on from the highest job id loaded", s->id, ID_MARK_KEY, v);
        return 0;
    }
    s->id_mark_ms = mark;
    if (mark > s->id_ms)
        s->id_ms = mark, s->id_seq = 0; /* (mark, 0) was never issued either */
    return 0;
}

/* The next id, issued at now_ms (a clock_now_ms() reading). */
static uint64_t new_id_at(struct store *s, int64_t now_ms)
{
    int64_t ms = now_ms - ID_EPOCH_MS;
    int origin = job_id_origin(); /* cluster mode: the group, in the sequence's top 6 bits */
    uint32_t last = origin >= 0 ? 0x3f : 0xfff;
    if (ms < 0)
        ms = 0;
    if (ms > s->id_ms) {
        s->id_ms = ms;
        s->id_seq = 0;
    } else if (++s->id_seq > last) {
        s->id_ms++; /* more ids this millisecond than the sequence holds: borrow the next one */
        s->id_seq = 0;
    }
    id_mark_advance(s);
    uint64_t seq = origin >= 0 ? ((uint64_t)origin << 6) | s->id_seq : s->id_seq;
    return ((uint64_t)s->id_ms << 22) | (seq << 10) | (uint64_t)s->id;
}

uint64_t store_new_id(struct store *s)
{
    return new_id_at(s, clock_now_ms());
}

/* The finished hook (results, waits, batches hang on it). */
static void finished(struct store *s, struct job *j, int how)
{
    if (s->finished)
        s->finished(s->finished_arg, j, how);
}

static void touched(struct store *s, const struct job *j)
{
    if (s->touch)
        s->touch(s->emit_arg, j->q);
}

/* JOB_F_UNSAVED ("Reservations written late" below) */
static void unsaved_mark(struct store *s, struct job *j)
{
    j->jflags |= JOB_F_UNSAVED;
    s->nunsaved++;
}

/* Clears the mark: true if it was set. */
static bool unsaved_clear(struct store *s, struct job *j)
{
    if (!(j->jflags & JOB_F_UNSAVED))
        return false;
    j->jflags &= (uint8_t)~JOB_F_UNSAVED;
    s->nunsaved--;
    return true;
}

static void jr_insert(struct store *s, struct job *j)
{
    touched(s, j);
    if (!jr_ready(s))
        return;
    int rc = journal_job_insert(s->jr, j);
    jr_result(s, rc);
    if (rc == 0)
        j->jflags = journal_body_in_row(s->jr, j) ? JOB_F_BODY_ROW : JOB_F_BODY_APART;
}

static void jr_update(struct store *s, struct job *j)
{
    touched(s, j);
    if (unsaved_clear(s, j)) /* the whole row: the reservation too */
        s->reserves_skipped++;
    if (jr_ready(s))
        jr_result(s, journal_job_update(s->jr, j));
}

static void jr_delete(struct store *s, struct job *j)
{
    touched(s, j);
    if (unsaved_clear(s, j))
        s->reserves_skipped++;
    if (!jr_ready(s))
        return;
    int body = j->jflags & JOB_F_BODY_ROW ? JOURNAL_BODY_IN_ROW
               : j->jflags & JOB_F_BODY_APART ? JOURNAL_BODY_APART : JOURNAL_BODY_ASK;
    jr_result(s, journal_job_remove(s->jr, j->id, body));
}

static void arm(struct store *s, struct job *j, int64_t when);
static void detach(struct store *s, struct job *j);

/* Job j becomes reserved: this delivery's attempt and token, a lease of
 * lease_ms from now (a reservation made again after a reload keeps its own
 * times: now is the moment it was made). */
static void hold_reserved(struct store *s, struct job *j, uint32_t attempt, uint32_t token, uint32_t lease_ms,
                          int64_t now)
{
    detach(s, j);
    flow_hold(j->q, j);
    j->state = JOB_RESERVED;
    j->attempt = attempt;
    j->token = token;
    j->lease_ms = lease_ms;
    j->lease_until = now + lease_ms;
    j->updated_at = now;
    jlist_push_right(&j->q->reserved, j);
    arm(s, j, j->lease_until);
}

/* ------------------------------------------- reservations written late
 *
 * A reservation promises nothing durable: JOB.RESERVE is answered before
 * its commit, and one lost in a crash is delivered again (at-least-once;
 * its receipt's token makes the lost delivery's receipt -STALE). So its
 * row is not written in the turn that reserved the job: the job is marked
 * JOB_F_UNSAVED and its id kept, and the row is written at the second
 * commit that begins after the reserve (store_commit_begins), or once
 * STORE_UNSAVED_MAX_MS passed without a commit (the shard's timer,
 * store_unsaved_write), or at the stop. Any other write of the job's row
 * in the meantime (the ack's, a nack's, a touch's, the lease's expiry)
 * writes the whole row and clears the mark, so the reservation's own
 * UPDATE is never made: under load a worker's ack comes back within the
 * commit after the one that released its reservation, and the job's row
 * goes from pushed to done (or deleted) without the write in between.
 *
 * What this changes on disk: a job reserved in the last commit or two
 * before a crash (or within STORE_UNSAVED_MAX_MS on an idle shard) is ready
 * after the restart, as a reservation answered but lost always was. An
 * ack, a nack and every other write still reach the disk before their
 * reply: their own row write carries the state.
 *
 * Not with replication (late_reserves false): every turn's rows go to the
 * group as they are. */

static void unsaved_add(struct store *s, struct unsaved *u, const struct job *j)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        u->v = xrealloc(u->v, u->cap * sizeof *u->v);
    }
    u->v[u->n++] = (struct unsaved_rec){ .id = j->id, .updated_at = j->updated_at,
                                         .attempt = j->attempt, .token = j->token, .lease_ms = j->lease_ms,
                                         .in_txn = journal_in_txn(s->jr), .gen = s->commits };
}

static void jr_reserve(struct store *s, struct job *j)
{
    if (!s->late_reserves || !s->jr) {
        jr_update(s, j);
        return;
    }
    touched(s, j);
    if (j->jflags & JOB_F_UNSAVED)
        return; /* reserved again before it was written: the newer one is kept the same way */
    unsaved_mark(s, j);
    unsaved_add(s, &s->unsaved[0], j);
    if (!s->unsaved_due)
        s->unsaved_due = clock_now_ms() + STORE_UNSAVED_MAX_MS;
}

/* Writes the rows of u's jobs that are still unsaved (u keeps its records:
 * store_unsaved_restore needs them until the commit succeeded). */
static void unsaved_flush(struct store *s, struct unsaved *u)
{
    for (size_t i = 0; i < u->n; i++) {
        struct job *j = jtable_find(&s->jobs, u->v[i].id);
        if (!j || !unsaved_clear(s, j))
            continue;
        s->reserves_late++;
        if (jr_ready(s))
            jr_result(s, journal_job_update(s->jr, j));
    }
}

void store_commit_begins(struct store *s)
{
    unsaved_flush(s, &s->unsaved[1]);
}

void store_committed(struct store *s)
{
    s->commits++;
    struct unsaved u = s->unsaved[1];
    s->unsaved[1] = s->unsaved[0];
    u.n = 0;
    s->unsaved[0] = u;
    s->unsaved_due = s->nunsaved ? clock_now_ms() + STORE_UNSAVED_MAX_MS : 0;
}

void store_unsaved_write(struct store *s)
{
    unsaved_flush(s, &s->unsaved[1]);
    unsaved_flush(s, &s->unsaved[0]);
    s->unsaved_due = 0;
}

size_t store_unsaved(const struct store *s)
{
    return s->nunsaved;
}

/* store_reset: the holders of the reservations to make again. */
static void unsaved_keep_holders(struct store *s)
{
    for (int k = 0; k < 2; k++) {
        struct unsaved *u = &s->unsaved[k];
        for (size_t i = 0; i < u->n; i++) {
            struct job *j = jtable_find(&s->jobs, u->v[i].id);
            if (j && j->attempt == u->v[i].attempt && !u->v[i].holder) {
                u->v[i].holder = j->holder;
                j->holder = NULL;
            }
        }
    }
    s->nunsaved = 0;
    s->unsaved_due = 0;
}

/* The reservation r again, on the job as the journal had it before it. */
static bool unsaved_redo(struct store *s, struct unsaved_rec *r)
{
    struct job *j = jtable_find(&s->jobs, r->id);
    if (!j || j->state != JOB_READY || j->attempt + 1 != r->attempt || (j->jflags & JOB_F_UNSAVED))
        return false; /* a later commit changed it, or it is made again already */
    if (r->in_txn && r->gen == s->commits)
        return false; /* made in the failed transaction */
    hold_reserved(s, j, r->attempt, r->token, r->lease_ms, r->updated_at);
    free(j->holder);
    j->holder = r->holder;
    r->holder = NULL;
    unsaved_mark(s, j);
    return true;
}

void store_unsaved_restore(struct store *s)
{
    for (int k = 0; k < 2; k++) {
        struct unsaved *u = &s->unsaved[k];
        size_t kept = 0;
        for (size_t i = 0; i < u->n; i++) {
            if (unsaved_redo(s, &u->v[i]))
                u->v[kept++] = u->v[i];
            free(u->v[i].holder);
            u->v[i].holder = NULL;
        }
        u->n = kept;
    }
    s->unsaved_due = s->nunsaved ? clock_now_ms() + STORE_UNSAVED_MAX_MS : 0;
}

void store_queue_saved(struct store *s, struct queue *q)
{
    struct qconf d = s->defaults;
    q->conf_custom = memcmp(&d, &q->conf, sizeof d) != 0;
    if (!jr_ready(s))
        return;
    if (q->conf_custom || q->paused)
        jr_result(s, journal_queue_put(s->jr, q));
    else
        jr_result(s, journal_queue_delete(s->jr, q->name, q->namelen));
}

/* The totals of q, saved first if this turn had not touched them yet, so
 * that a failed turn can give them back (see shard_reload). */
static struct queue_stats *qstats(struct store *s, struct queue *q)
{
    if (q->stats_turn != s->turn) {
        q->stats_saved = q->stats;
        q->stats_turn = s->turn;
    }
    return &q->stats;
}

struct queue_stats *store_queue_stats(struct store *s, struct queue *q)
{
    return qstats(s, q);
}

/* ------------------------------------------------------ payload memory */

/* Payloads stay in memory while the shard's share of payload-memory
 * allows; beyond it, and for finished jobs, they live only in the journal
 * and are read back when needed. */
static void payload_drop(struct store *s, struct job *j)
{
    if (!s->jr || !j->payload)
        return;
    s->payload_bytes -= j->len;
    free(j->payload);
    j->payload = NULL;
}

static void payload_account(struct store *s, struct job *j)
{
    if (!j->payload)
        return;
    s->payload_bytes += j->len;
    if (s->payload_bytes > s->payload_budget)
        payload_drop(s, j); /* already journaled by the caller */
}

/* -------------------------------------------------------------- events */

/* Announced through the hook the runtime set (nothing when it is NULL). */
static void emit_err(struct store *s, const struct job *j, const char *event, const char *err, size_t errlen)
{
    if (s->emit)
        s->emit(s->emit_arg, j, event, err, errlen);
}

static void emit(struct store *s, const struct job *j, const char *event)
{
    emit_err(s, j, event, NULL, 0);
}

/* ---------------------------------------------------------- transitions */

static void arm(struct store *s, struct job *j, int64_t when)
{
    theap_remove(&s->timers, &j->timer);
    j->timer.kind = TK_JOB;
    j->timer.when = when;
    theap_add(&s->timers, &j->timer);
}

/* Takes j out of whatever list its state keeps it in. */
static void detach(struct store *s, struct job *j)
{
    theap_remove(&s->timers, &j->timer);
    if (j->state == JOB_READY) {
        flow_ready_remove(j->q, j);
    } else {
        jlist_unlink(queue_list(j->q, j->state), j);
        if (j->state == JOB_RESERVED) {
            flow_unhold(j->q, j);
            store_queue_changed(s, j->q); /* a concurrency slot is free */
        }
    }
}

static void release_unique(struct job *j)
{
    if (j->unique) {
        queue_unique_remove(j->q, j);
    }
}

static void drop(struct store *s, struct job *j)
{
    flow_settle(j->q, j, clock_now_ms());
    jtable_remove(&s->jobs, j);
    jr_delete(s, j);
    if (j->payload && s->jr)
        s->payload_bytes -= j->len;
    job_free(j);
}

static void make_ready(struct store *s, struct job *j, bool left)
{
    flow_ready_add(j->q, j, left);
    if (j->expires_at)
        arm(s, j, j->expires_at);
    store_queue_changed(s, j->q);
}

/* A delayed job wakes at its run_at, or at its expires_at if sooner. */
static void make_delayed(struct store *s, struct job *j)
{
    j->state = JOB_DELAYED;
    jlist_push_right(&j->q->delayed, j);
    arm(s, j, j->expires_at && j->expires_at < j->run_at ? j->expires_at : j->run_at);
}

/* done and expired: kept for inspection for retention ms, at most
 * retention-max of each. */
static void finish_as(struct store *s, struct job *j, int state)
{
    struct queue *q = j->q;
    release_unique(j);
    flow_settle(q, j, j->updated_at);
    j->state = (uint8_t)state;
    finished(s, j, state);
    if (q->conf.retention == 0 || q->conf.retention_max == 0) {
        drop(s, j);
        return;
    }
    struct jlist *l = queue_list(q, state);
    jlist_push_right(l, j);
    arm(s, j, j->updated_at + q->conf.retention);
    jr_update(s, j);
    payload_drop(s, j);
    while ((int64_t)l->n > q->conf.retention_max) {
        struct job *old = l->head;
        detach(s, old);
        drop(s, old);
    }
}

static void finish(struct store *s, struct job *j)
{
    finish_as(s, j, JOB_DONE);
}

struct job *store_job_push(struct store *s, struct queue *q, char *payload, size_t len,
                           const struct push_opts *o)
{
    int64_t now = clock_now_ms(); /* one read: the id's time, a DELAY's run_at and created_at agree */
    int64_t run_at = o->delay_ms > 0 ? now + o->delay_ms : o->run_at;
    struct job *j = job_new_owned(new_id_at(s, now), payload, len);
    j->q = q;
    j->priority = o->priority;
    j->retries = (uint32_t)(o->retries >= 0 ? o->retries : q->conf.retries);
    j->lease_ms = (uint32_t)o->lease_ms;
    j->created_at = j->updated_at = now;
    j->expires_at = o->expires_ms > 0 ? now + o->expires_ms : q->conf.expires ? now + q->conf.expires : 0;
    char gbuf[GROUP_KEY_MAX + 1];
    int glen = o->group ? -1 : flow_group_from(q, payload, len, gbuf, sizeof gbuf);
    if (o->group || glen > 0) {
        j->grouplen = (uint16_t)(o->group ? o->group_len : (size_t)glen);
        job_set_str(&j->group, o->group ? o->group : gbuf, j->grouplen);
    }
    if (o->unique) {
        job_set_str(&j->unique, o->unique, o->unique_len);
        queue_unique_add(q, j);
    }
    jtable_add(&s->jobs, j);
    qstats(s, q)->pushed++;
    if (run_at > now) {
        j->run_at = run_at;
        make_delayed(s, j);
    } else {
        make_ready(s, j, o->left);
    }
    jr_insert(s, j);
    payload_account(s, j);
    emit(s, j, "pushed");
    return j;
}

struct job *store_job_next(struct store *s, struct queue *q, bool left)
{
    int64_t now = clock_now_ms(), wake;
    struct job *j;
    while ((j = flow_next(q, left, now, &wake)) && j->expires_at && j->expires_at <= now)
        store_job_expire(s, j);
    return j;
}

void store_job_reserve(struct store *s, struct job *j, int64_t lease_ms)
{
    struct queue *q = j->q;
    int64_t now = clock_now_ms();
    flow_took(q, j, now);
    if (lease_ms <= 0)
        lease_ms = j->lease_ms ? j->lease_ms : q->conf.lease;
    hold_reserved(s, j, j->attempt + 1, store_token(s), (uint32_t)lease_ms, now);
    jr_reserve(s, j);
    emit(s, j, "reserved");
}

void store_job_popped(struct store *s, struct job *j)
{
    flow_took(j->q, j, clock_now_ms());
    detach(s, j);
    j->attempt++;
    j->updated_at = clock_now_ms();
    qstats(s, j->q)->popped++;
    finish(s, j);
}

void store_job_ack(struct store *s, struct job *j)
{
    detach(s, j);
    j->updated_at = clock_now_ms();
    qstats(s, j->q)->acked++;
    emit(s, j, "acked");
    finish(s, j);
}

int store_job_fail(struct store *s, struct job *j, const char *err, size_t errlen,
                   int64_t delay_ms, bool dead_now, const char *why)
{
    struct queue *q = j->q;
    detach(s, j);
    int64_t now = clock_now_ms();
    j->updated_at = now;
    if (err)
        job_set_str(&j->last_error, err, errlen);
    job_history_add(j, now, err ? err : why, err ? errlen : strlen(why));
    if (strcmp(why, "lease-expired") == 0) {
        qstats(s, q)->lease_expired++;
        emit(s, j, "lease-expired");
    }
    if (dead_now || j->attempt > j->retries) {
        j->state = JOB_DEAD;
        release_unique(j);
        flow_settle(q, j, now);
        jlist_push_right(&q->dead, j);
        qstats(s, q)->buried++;
        jr_update(s, j);
        finished(s, j, JOB_DEAD);
        payload_drop(s, j);
        emit_err(s, j, "dead", err, errlen);
        log_debug("job %016llx of queue '%s' is dead after %u attempt(s): %s",
                  (unsigned long long)j->id, q->name, j->attempt, j->last_error ? j->last_error : why);
        return JOB_DEAD;
    }
    if (delay_ms < 0)
        delay_ms = qconf_backoff(&q->conf, j->attempt, store_random(s));
    qstats(s, q)->retried++;
    if (delay_ms == 0) {
        make_ready(s, j, true);
    } else {
        j->run_at = now + delay_ms;
        make_delayed(s, j);
        flow_settle(q, j, now);
    }
    jr_update(s, j);
    emit_err(s, j, "retried", err, errlen);
    return JOB_DELAYED;
}

void store_job_expire(struct store *s, struct job *j)
{
    struct queue *q = j->q;
    detach(s, j);
    j->updated_at = clock_now_ms();
    qstats(s, q)->expired++;
    emit(s, j, "expired");
    log_debug("job %016llx of queue '%s' expired before it was delivered", (unsigned long long)j->id, q->name);
    finish_as(s, j, JOB_EXPIRED);
}

void store_job_retry(struct store *s, struct job *j)
{
    if (j->state == JOB_DEAD || j->state == JOB_EXPIRED) {
        j->attempt = 0;
        j->expires_at = 0;
        if (j->unique && !queue_unique_find(j->q, j->unique, strlen(j->unique)))
            queue_unique_add(j->q, j);
        else if (j->unique)
            job_set_str(&j->unique, NULL, 0); /* another job holds the key now */
    }
    detach(s, j);
    j->updated_at = clock_now_ms();
    j->run_at = 0;
    make_ready(s, j, true);
    jr_update(s, j);
    emit(s, j, "retried"); /* JOB.RETRY / QUEUE.RETRY: spool tail sees it */
}

int store_job_redrive(struct store *s, struct job *j, struct queue *to, int64_t run_at)
{
    if (to != j->q && store_job_payload(s, j) < 0)
        return -EIO;
    struct queue *from = j->q;
    detach(s, j);
    flow_settle(from, j, clock_now_ms());
    j->attempt = 0;
    j->expires_at = 0;
    j->updated_at = clock_now_ms();
    j->run_at = 0;
    if (to != from) {
        jr_delete(s, j); /* the row names its queue: write it anew */
        j->q = to;
        j->lease_ms = 0; /* the new queue's lease */
        job_set_str(&j->group, NULL, 0);
        j->grouplen = 0;
        if (j->unique && queue_unique_find(to, j->unique, strlen(j->unique)))
            job_set_str(&j->unique, NULL, 0);
        qstats(s, to)->pushed++;
    } else if (j->unique && queue_unique_find(to, j->unique, strlen(j->unique))) {
        job_set_str(&j->unique, NULL, 0);
    }
    if (j->unique)
        queue_unique_add(to, j);
    if (run_at > j->updated_at) {
        j->run_at = run_at;
        make_delayed(s, j);
    } else {
        make_ready(s, j, true);
    }
    if (to != from) {
        jr_insert(s, j);
        payload_drop(s, j);
    } else {
        jr_update(s, j);
    }
    emit(s, j, "retried"); /* as store_job_retry: spool tail sees it */
    return 0;
}

void store_job_return(struct store *s, struct job *j, bool left)
{
    if (j->state == JOB_DONE) {
        qstats(s, j->q)->popped--;
        if (j->unique) {
            if (!queue_unique_find(j->q, j->unique, strlen(j->unique)))
                queue_unique_add(j->q, j);
            else
                job_set_str(&j->unique, NULL, 0);
        }
    } else if (j->state != JOB_RESERVED) {
        return;
    }
    detach(s, j);
    if (j->attempt)
        j->attempt--; /* the delivery never reached anyone */
    j->updated_at = clock_now_ms();
    make_ready(s, j, left);
    jr_update(s, j);
}

void store_job_delete(struct store *s, struct job *j)
{
    if (j->state != JOB_DONE && j->state != JOB_DEAD && j->state != JOB_EXPIRED)
        finished(s, j, STORE_FINISHED_DELETED);
    detach(s, j);
    release_unique(j);
    drop(s, j);
}

/* Deletes q's jobs in state (or, with state < 0, in every state but
 * reserved); returns how many. */
long long store_purge(struct store *s, struct queue *q, int state)
{
    long long n = 0;
    for (int st = 0; st < JOB_NSTATES; st++) {
        if (state >= 0 ? st != state : st == JOB_RESERVED)
            continue;
        struct job *j;
        while ((j = st == JOB_READY ? queue_ready_peek(q, false) : queue_list(q, st)->head)) {
            store_job_delete(s, j);
            n++;
        }
    }
    return n;
}

void store_job_touch(struct store *s, struct job *j, int64_t lease_ms)
{
    if (lease_ms <= 0)
        lease_ms = j->lease_ms;
    j->lease_until = clock_now_ms() + lease_ms;
    j->updated_at = clock_now_ms();
    arm(s, j, j->lease_until);
    jr_update(s, j);
}

void store_job_payload_drop(struct store *s, struct job *j)
{
    payload_drop(s, j);
}

int store_job_payload(struct store *s, struct job *j)
{
    if (j->payload)
        return 0;
    if (!s->jr)
        return -ENOENT;
    char *p = NULL;
    size_t n = 0;
    int rc = journal_payload(s->jr, j->id, &p, &n);
    if (rc < 0) {
        log_error("job %016llx: cannot read its payload from the journal: %s", (unsigned long long)j->id,
                  journal_error(s->jr));
        return rc;
    }
    /* Kept until the job finishes (delivery is imminent), even over budget:
     * the budget only decides what new pushes keep in memory. */
    j->payload = p;
    j->len = (uint32_t)n;
    s->payload_bytes += n;
    return 0;
}

void store_add_payload(struct store *s, struct msg *m, struct job *j)
{
    if (store_job_payload(s, j) == 0)
        resp_add_bulk(&m->out, j->payload, j->len);
    else
        resp_add_null(&m->out, m->proto); /* logged by store_job_payload */
}

void store_encode_pop(struct store *s, struct msg *m, const struct queue *q, struct job *j)
{
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, q->name, q->namelen);
    store_add_payload(s, m, j);
}

/* ------------------------------------------------------------- deadlines */

void store_job_deadline(struct store *s, struct job *j)
{
    struct queue *q = j->q;
    int64_t now = clock_now_ms();
    switch (j->state) {
    case JOB_READY:
        store_job_expire(s, j); /* only expires_at arms a ready job */
        store_queue_gc(s, q);
        break;
    case JOB_DELAYED:
        if (j->expires_at && j->expires_at <= now) {
            store_job_expire(s, j);
            store_queue_gc(s, q);
            break;
        }
        if (j->run_at > now) { /* woke for an expiry that is not due: cannot happen */
            arm(s, j, j->run_at);
            break;
        }
        detach(s, j);
        j->updated_at = now;
        make_ready(s, j, true);
        jr_update(s, j);
        break;
    case JOB_RESERVED:
        log_debug("lease of job %016llx (queue '%s', attempt %u) expired", (unsigned long long)j->id,
                  q->name, j->attempt);
        store_job_fail(s, j, "lease expired", 13, -1, false, "lease-expired");
        break;
    case JOB_EXPIRED:
    case JOB_DONE:
        detach(s, j);
        drop(s, j);
        store_queue_gc(s, q);
        break;
    default:
        break;
    }
}


struct tnode *store_next_due(struct store *s, int64_t now)
{
    struct tnode *t = theap_min(&s->timers);
    if (!t || t->when > now)
        return NULL;
    theap_remove(&s->timers, t);
    return t;
}

/* ------------------------------------------------------------- recovery */

struct load_counts {
    struct store *s;
    size_t by_state[JOB_NSTATES];
    struct job **ready;          /* ready jobs, placed after the load in list order */
    size_t nready, capready;
};

static int load_queue(void *arg, const struct journal_queue_row *row)
{
    struct store *s = ((struct load_counts *)arg)->s;
    struct queue *q = store_queue(s, row->name, row->len, true);
    qconf_parse(&q->conf, row->config);
    q->paused = row->paused;
    struct qconf d = s->defaults;
    q->conf_custom = memcmp(&d, &q->conf, sizeof d) != 0;
    return 0;
}

/* Puts a job read from the journal where its state keeps it. Deadlines
 * already past fire on the first timer turn (a lease that ran out while
 * spoold was down counts as expired; a delay that passed makes it ready). */
static void place_ready(struct store *s, struct job *j);

/* Puts j (its state and queue set, not ready) in the list its state keeps
 * it in, arms its deadline, and counts its unique key. */
static void place_kept(struct store *s, struct job *j)
{
    struct queue *q = j->q;
    switch (j->state) {
    case JOB_READY:
        place_ready(s, j);
        break;
    case JOB_DELAYED:
        make_delayed(s, j);
        break;
    case JOB_RESERVED:
        jlist_push_right(&q->reserved, j);
        arm(s, j, j->lease_until);
        flow_hold(q, j);
        break;
    case JOB_DONE:
    case JOB_EXPIRED:
        jlist_push_right(queue_list(q, j->state), j);
        arm(s, j, j->updated_at + q->conf.retention);
        break;
    default:
        jlist_push_right(&q->dead, j);
        break;
    }
    if (j->unique && j->state <= JOB_DELAYED && !queue_unique_find(q, j->unique, strlen(j->unique)))
        queue_unique_add(q, j);
}

static int load_job(void *arg, struct job *j, const char *qname, size_t qlen)
{
    struct load_counts *lc = arg;
    struct store *s = lc->s;
    j->q = store_queue(s, qname, qlen, true);
    jtable_add(&s->jobs, j);
    store_id_seen(s, j->id);
    lc->by_state[j->state < JOB_NSTATES ? j->state : JOB_DEAD]++;
    if (j->state != JOB_READY) {
        place_kept(s, j);
        return 0;
    }
    if (lc->nready == lc->capready) {
        lc->capready = lc->capready ? lc->capready * 2 : 1024;
        lc->ready = xrealloc(lc->ready, lc->capready * sizeof *lc->ready);
    }
    lc->ready[lc->nready++] = j;
    if (j->unique && !queue_unique_find(j->q, j->unique, strlen(j->unique)))
        queue_unique_add(j->q, j);
    return 0;
}

/* ------------------------------------------------------------ slot moves */

int store_job_adopt(struct store *s, struct queue *q, struct job *j)
{
    if (j->state >= JOB_NSTATES || jtable_find(&s->jobs, j->id)) {
        job_free(j);
        return -EEXIST;
    }
    j->q = q;
    jtable_add(&s->jobs, j);
    store_id_seen(s, j->id); /* this generator never issues an imported id */
    if (j->batch)
        store_id_seen(s, j->batch);
    id_mark_advance(s);
    place_kept(s, j);
    jr_insert(s, j);
    payload_account(s, j);
    if (j->state == JOB_READY)
        store_queue_changed(s, q);
    return 0;
}

void store_job_evict(struct store *s, struct job *j)
{
    if (j->state != JOB_DONE && j->state != JOB_DEAD && j->state != JOB_EXPIRED)
        finished(s, j, STORE_FINISHED_MOVED); /* JOB.WAIT clients are told to wait where it went */
    detach(s, j);
    release_unique(j);
    drop(s, j);
}

/* List order of ready jobs: by queue, then priority, then pos. */
static int ready_order(const void *a, const void *b)
{
    const struct job *x = *(const struct job *const *)a, *y = *(const struct job *const *)b;
    if (x->q != y->q)
        return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void place_ready(struct store *s, struct job *j)
{
    flow_ready_insert_pos(j->q, j);
    if (j->expires_at)
        arm(s, j, j->expires_at);
}

/* Jobs come in id order; ready lists are rebuilt in their own order after
 * one sort, so each insertion is an append. */
int store_load(struct store *s, size_t by_state[JOB_NSTATES])
{
    struct load_counts lc0, *lc = &lc0;
    memset(lc, 0, sizeof *lc);
    lc->s = s;
    int rc = journal_load(s->jr, false, load_queue, load_job, lc);
    if (rc >= 0)
        rc = id_mark_load(s);
    if (lc->nready)
        qsort(lc->ready, lc->nready, sizeof *lc->ready, ready_order);
    for (size_t i = 0; i < lc->nready; i++)
        place_ready(s, lc->ready[i]);
    free(lc->ready);
    lc->ready = NULL;
    if (by_state)
        memcpy(by_state, lc->by_state, sizeof lc->by_state);
    return rc;
}
