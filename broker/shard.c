/*
 * shard.c - the shard thread: its loop and turns, the job transitions, the
 * deadline heap, and the shard side of blocking pops (see shard.h,
 * queue.h for the state machine, claim.h for pops across shards).
 *
 * A waiter is one BLPOP/BRPOP/JOB.RESERVE parked in this shard: it holds
 * the request message (which becomes the reply), one wlink per key of this
 * shard, and a deadline node. Waiters are served at the end of each turn
 * from the list of queues that got ready jobs: oldest waiter first, while
 * the queue has jobs and is not paused. A waiter whose claim was already
 * taken elsewhere is dropped without touching the queue.
 *
 * Every transition goes through shard_job_*: they keep the lists, the id
 * table, unique keys, timers and counters consistent, journal the change,
 * and queue the pub/sub event, which is posted only after the turn commits.
 */
#include "shard.h"

#include "claim.h"
#include "clock.h"
#include "commands.h"
#include "config.h"
#include "hash.h"
#include "io.h"
#include "journal.h"
#include "log.h"
#include "msg.h"
#include "pubsub.h"
#include "server.h"
#include "xalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TK_WAITER = 1, TK_JOB = 2 };

#define ID_EPOCH_MS 1704067200000LL /* 2024-01-01: ids stay below 2^63 until 2093 */

struct waiter {
    struct tnode timer;          /* first member: tnode* <-> waiter* */
    struct msg *m;
    int nlinks;
    struct wlink links[];
};

static void shard_end_turn(struct shard *s);

/* ------------------------------------------------------------ extensions */

#define SHARD_EXT_MAX 8
static const struct shard_ext *exts[SHARD_EXT_MAX];
static int nexts;

void shard_ext_register(const struct shard_ext *e)
{
    for (int i = 0; i < nexts; i++)
        if (exts[i] == e)
            return;
    if (nexts < SHARD_EXT_MAX)
        exts[nexts++] = e;
}

#define EXT_EACH(hook, ...)                                   \
    for (int ext_i_ = 0; ext_i_ < nexts; ext_i_++)            \
        if (exts[ext_i_]->hook)                               \
            exts[ext_i_]->hook(__VA_ARGS__)

/* -------------------------------------------------------------- helpers */

bool shard_owns(const struct shard *s, const char *name, size_t len)
{
    return shard_of(name, len, s->srv->nshards) == s->id;
}

struct queue *shard_queue_named(struct shard *s, const char *name, size_t len, bool create)
{
    return create ? qtable_get(&s->queues, name, len, &s->defaults) : qtable_find(&s->queues, name, len);
}

struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create)
{
    return shard_queue_named(s, m->req.argv[i], m->req.len[i], create);
}

void shard_reply(struct shard *s, struct msg *m)
{
    m->type = MSG_REPLY;
    msg_batch_add(&s->replies[m->origin], m);
}

void shard_queue_changed(struct shard *s, struct queue *q)
{
    if (q->nwaiters == 0 || q->in_ready_list || q->nready == 0 || q->paused)
        return;
    q->in_ready_list = true;
    q->ready_next = s->ready_head;
    s->ready_head = q;
}

void shard_queue_gc(struct shard *s, struct queue *q)
{
    if (q && !s->stopping)
        qtable_maybe_free(&s->queues, q);
}

uint64_t shard_new_id(struct shard *s)
{
    int64_t ms = clock_now_ms() - ID_EPOCH_MS;
    if (ms < 0)
        ms = 0;
    if (ms > s->id_ms) {
        s->id_ms = ms;
        s->id_seq = 0;
    } else if (++s->id_seq > 0xfff) {
        s->id_ms++; /* more than 4096 ids this millisecond: borrow the next one */
        s->id_seq = 0;
    }
    return ((uint64_t)s->id_ms << 22) | ((uint64_t)s->id_seq << 10) | (uint64_t)s->id;
}

double shard_random(struct shard *s)
{
    /* xorshift64*: jitter only, not security */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------- journal hooks */

/* Every change of a turn goes into one transaction, begun at the first
 * change; the first error is kept and fails the whole turn at its end. */
static void jr_result(struct shard *s, int rc)
{
    if (rc < 0 && s->turn_err == 0) {
        s->turn_err = rc;
        log_error("journal of shard %d: %s", s->id, journal_error(s->jr));
    }
}

static bool jr_ready(struct shard *s)
{
    if (!s->jr || s->turn_err)
        return false;
    jr_result(s, journal_begin(s->jr));
    return s->turn_err == 0;
}

bool shard_jr_begin(struct shard *s)
{
    return jr_ready(s);
}

void shard_jr_result(struct shard *s, int rc)
{
    jr_result(s, rc);
}

static void jr_insert(struct shard *s, const struct job *j)
{
    if (jr_ready(s))
        jr_result(s, journal_job_insert(s->jr, j));
}

static void jr_update(struct shard *s, const struct job *j)
{
    if (jr_ready(s))
        jr_result(s, journal_job_update(s->jr, j));
}

static void jr_delete(struct shard *s, const struct job *j)
{
    if (jr_ready(s))
        jr_result(s, journal_job_delete(s->jr, j->id));
}

void shard_queue_saved(struct shard *s, struct queue *q)
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
static struct queue_stats *qstats(struct shard *s, struct queue *q)
{
    if (q->stats_turn != s->turn) {
        q->stats_saved = q->stats;
        q->stats_turn = s->turn;
    }
    return &q->stats;
}

/* ------------------------------------------------------ payload memory */

/* Payloads stay in memory while the shard's share of payload-memory
 * allows; beyond it, and for finished jobs, they live only in the journal
 * and are read back when needed. */
static void payload_drop(struct shard *s, struct job *j)
{
    if (!s->jr || !j->payload)
        return;
    s->payload_bytes -= j->len;
    free(j->payload);
    j->payload = NULL;
}

static void payload_account(struct shard *s, struct job *j)
{
    if (!j->payload)
        return;
    s->payload_bytes += j->len;
    if (s->payload_bytes > s->payload_budget)
        payload_drop(s, j); /* already journaled by the caller */
}

/* -------------------------------------------------------------- events */

/* Queued per I/O thread and posted after the turn commits. */
static void emit_err(struct shard *s, const struct job *j, const char *event, const char *err, size_t errlen)
{
    if (!pubsub_listening(s->srv))
        return;
    struct msg *m = pubsub_job_message(j, event, err, errlen);
    int n = s->srv->nio;
    for (int k = 0; k < n; k++)
        msg_batch_add(&s->events[k], k == n - 1 ? m : pubsub_copy(m));
}

void shard_publish(struct shard *s, struct msg *m)
{
    if (!pubsub_listening(s->srv)) {
        msg_free(m);
        return;
    }
    int n = s->srv->nio;
    for (int k = 0; k < n; k++)
        msg_batch_add(&s->events[k], k == n - 1 ? m : pubsub_copy(m));
}

static void emit(struct shard *s, const struct job *j, const char *event)
{
    emit_err(s, j, event, NULL, 0);
}

/* ---------------------------------------------------------- transitions */

static void arm(struct shard *s, struct job *j, int64_t when)
{
    theap_remove(&s->timers, &j->timer);
    j->timer.kind = TK_JOB;
    j->timer.when = when;
    theap_add(&s->timers, &j->timer);
}

/* Takes j out of whatever list its state keeps it in. */
static void detach(struct shard *s, struct job *j)
{
    theap_remove(&s->timers, &j->timer);
    if (j->state == JOB_READY)
        queue_ready_remove(j->q, j);
    else
        jlist_unlink(queue_list(j->q, j->state), j);
}

static void release_unique(struct job *j)
{
    if (j->unique) {
        queue_unique_remove(j->q, j);
    }
}

static void drop(struct shard *s, struct job *j)
{
    jtable_remove(&s->jobs, j);
    jr_delete(s, j);
    if (j->payload && s->jr)
        s->payload_bytes -= j->len;
    job_free(j);
}

static void make_ready(struct shard *s, struct job *j, bool left)
{
    queue_ready_add(j->q, j, left);
    shard_queue_changed(s, j->q);
}

/* done: kept for inspection for retention ms, at most retention-max. */
static void finish(struct shard *s, struct job *j)
{
    struct queue *q = j->q;
    release_unique(j);
    j->state = JOB_DONE;
    EXT_EACH(job_finished, s, j, JOB_DONE);
    if (q->conf.retention == 0 || q->conf.retention_max == 0) {
        drop(s, j);
        return;
    }
    jlist_push_right(&q->done, j);
    arm(s, j, j->updated_at + q->conf.retention);
    jr_update(s, j);
    payload_drop(s, j);
    while ((int64_t)q->done.n > q->conf.retention_max) {
        struct job *old = q->done.head;
        detach(s, old);
        drop(s, old);
    }
}

struct job *shard_job_push(struct shard *s, struct queue *q, char *payload, size_t len,
                           const struct push_opts *o)
{
    int64_t now = clock_now_ms();
    struct job *j = job_new_owned(shard_new_id(s), payload, len);
    j->q = q;
    j->priority = o->priority;
    j->retries = (uint32_t)(o->retries >= 0 ? o->retries : q->conf.retries);
    j->lease_ms = (uint32_t)o->lease_ms;
    j->created_at = j->updated_at = now;
    if (o->unique) {
        job_set_str(&j->unique, o->unique, o->unique_len);
        queue_unique_add(q, j);
    }
    jtable_add(&s->jobs, j);
    qstats(s, q)->pushed++;
    if (o->run_at > now) {
        j->state = JOB_DELAYED;
        j->run_at = o->run_at;
        jlist_push_right(&q->delayed, j);
        arm(s, j, j->run_at);
    } else {
        make_ready(s, j, o->left);
    }
    jr_insert(s, j);
    payload_account(s, j);
    emit(s, j, "pushed");
    return j;
}

void shard_job_reserve(struct shard *s, struct job *j, int64_t lease_ms)
{
    struct queue *q = j->q;
    detach(s, j);
    if (lease_ms <= 0)
        lease_ms = j->lease_ms ? j->lease_ms : q->conf.lease;
    int64_t now = clock_now_ms();
    j->state = JOB_RESERVED;
    j->attempt++;
    j->lease_ms = (uint32_t)lease_ms;
    j->lease_until = now + lease_ms;
    j->updated_at = now;
    jlist_push_right(&q->reserved, j);
    arm(s, j, j->lease_until);
    jr_update(s, j);
    emit(s, j, "reserved");
}

void shard_job_popped(struct shard *s, struct job *j)
{
    detach(s, j);
    j->attempt++;
    j->updated_at = clock_now_ms();
    qstats(s, j->q)->popped++;
    finish(s, j);
}

void shard_job_ack(struct shard *s, struct job *j)
{
    detach(s, j);
    j->updated_at = clock_now_ms();
    qstats(s, j->q)->acked++;
    emit(s, j, "acked");
    finish(s, j);
}

int shard_job_fail(struct shard *s, struct job *j, const char *err, size_t errlen,
                   int64_t delay_ms, bool dead_now, const char *why)
{
    struct queue *q = j->q;
    detach(s, j);
    int64_t now = clock_now_ms();
    j->updated_at = now;
    if (err)
        job_set_str(&j->last_error, err, errlen);
    if (strcmp(why, "expired") == 0) {
        qstats(s, q)->expired++;
        emit(s, j, "expired");
    }
    if (dead_now || j->attempt > j->retries) {
        j->state = JOB_DEAD;
        release_unique(j);
        jlist_push_right(&q->dead, j);
        qstats(s, q)->buried++;
        jr_update(s, j);
        EXT_EACH(job_finished, s, j, JOB_DEAD);
        payload_drop(s, j);
        emit_err(s, j, "dead", err, errlen);
        log_debug("job %016llx of queue '%s' is dead after %u attempt(s): %s",
                  (unsigned long long)j->id, q->name, j->attempt, j->last_error ? j->last_error : why);
        return JOB_DEAD;
    }
    if (delay_ms < 0)
        delay_ms = qconf_backoff(&q->conf, j->attempt, shard_random(s));
    qstats(s, q)->retried++;
    if (delay_ms == 0) {
        make_ready(s, j, true);
    } else {
        j->state = JOB_DELAYED;
        j->run_at = now + delay_ms;
        jlist_push_right(&q->delayed, j);
        arm(s, j, j->run_at);
    }
    jr_update(s, j);
    emit_err(s, j, "retried", err, errlen);
    return JOB_DELAYED;
}

void shard_job_retry(struct shard *s, struct job *j)
{
    if (j->state == JOB_DEAD) {
        j->attempt = 0;
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
}

void shard_job_return(struct shard *s, struct job *j, bool left)
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

void shard_job_delete(struct shard *s, struct job *j)
{
    if (j->state != JOB_DONE && j->state != JOB_DEAD)
        EXT_EACH(job_finished, s, j, SHARD_FINISHED_DELETED);
    detach(s, j);
    release_unique(j);
    drop(s, j);
}

void shard_job_touch(struct shard *s, struct job *j, int64_t lease_ms)
{
    if (lease_ms <= 0)
        lease_ms = j->lease_ms;
    j->lease_until = clock_now_ms() + lease_ms;
    j->updated_at = clock_now_ms();
    arm(s, j, j->lease_until);
    jr_update(s, j);
}

int shard_job_payload(struct shard *s, struct job *j)
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

void shard_add_payload(struct shard *s, struct msg *m, struct job *j)
{
    if (shard_job_payload(s, j) == 0)
        resp_add_bulk(&m->out, j->payload, j->len);
    else
        resp_add_null(&m->out, m->proto); /* logged by shard_job_payload */
}

void shard_encode_pop(struct shard *s, struct msg *m, const struct queue *q, struct job *j)
{
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, q->name, q->namelen);
    shard_add_payload(s, m, j);
}

/* -------------------------------------------------------------- waiters */

static void waiter_unlink(struct shard *s, struct waiter *w)
{
    for (int i = 0; i < w->nlinks; i++) {
        struct queue *q = w->links[i].q;
        queue_wait_unlink(&w->links[i]);
        if (q)
            shard_queue_gc(s, q);
    }
    theap_remove(&s->timers, &w->timer);
    if (w->m->claim && w->m->claim->waiters[s->id] == w)
        w->m->claim->waiters[s->id] = NULL;
}

/* Removes w everywhere; returns its message (now owned by the caller). */
static struct msg *waiter_remove(struct shard *s, struct waiter *w)
{
    waiter_unlink(s, w);
    struct msg *m = w->m;
    free(w);
    return m;
}

/* The client of m was answered elsewhere (or is gone): forget it quietly. */
static void waiter_drop(struct shard *s, struct waiter *w)
{
    msg_free(waiter_remove(s, w));
}

static bool is_reserve(const struct msg *m)
{
    return m->cmd->flags & CMD_RESERVE;
}

static void note_job(struct msg *m, uint64_t id)
{
    if (m->njobs % 8 == 0) {
        uint64_t *n = xrealloc(m->jobs, (size_t)(m->njobs + 8) * sizeof *n);
        m->jobs = n;
    }
    m->jobs[m->njobs++] = id;
}

static void encode_reserved(struct msg *m, const struct job *j)
{
    char id[JOB_ID_HEX + 1], receipt[JOB_ID_HEX + 16];
    job_id_format(j->id, id);
    snprintf(receipt, sizeof receipt, "%s-%u", id, j->attempt);
    resp_add_map(&m->out, m->proto, 6);
    resp_add_cstr(&m->out, "id");
    resp_add_cstr(&m->out, id);
    resp_add_cstr(&m->out, "receipt");
    resp_add_cstr(&m->out, receipt);
    resp_add_cstr(&m->out, "queue");
    resp_add_bulk(&m->out, j->q->name, j->q->namelen);
    resp_add_cstr(&m->out, "payload");
    resp_add_bulk(&m->out, j->payload, j->len); /* loaded by take_reserve */
    resp_add_cstr(&m->out, "attempt");
    resp_add_int(&m->out, j->attempt);
    resp_add_cstr(&m->out, "lease_ms");
    resp_add_int(&m->out, j->lease_ms);
}

/* Takes up to want jobs from q for the reserve request m. */
static int take_reserve(struct shard *s, struct msg *m, struct queue *q, int want, resp_buf *items)
{
    int n = 0;
    resp_buf saved = m->out;
    m->out = *items;
    while (n < want && q->nready) {
        struct job *j = queue_ready_peek(q, false);
        if (shard_job_payload(s, j) < 0) {
            log_error("job %016llx of queue '%s' has no payload in the journal; deleting it",
                      (unsigned long long)j->id, q->name);
            shard_job_delete(s, j);
            continue;
        }
        shard_job_reserve(s, j, m->lease);
        encode_reserved(m, j);
        note_job(m, j->id);
        n++;
    }
    *items = m->out;
    m->out = saved;
    return n;
}

/* Delivers from q to the request m (its claim, if any, is already ours):
 * one job for a list pop, up to COUNT jobs of q for a reserve. Leaves q in
 * the table: the caller collects it. */
static void deliver(struct shard *s, struct msg *m, struct queue *q)
{
    if (!is_reserve(m)) {
        bool left = m->cmd->flags & CMD_LEFT;
        struct job *j = queue_ready_peek(q, left);
        shard_encode_pop(s, m, q, j);
        note_job(m, j->id);
        m->jobs_left = left;
        shard_job_popped(s, j);
        shard_reply(s, m);
        return;
    }
    resp_buf items;
    resp_buf_init(&items);
    int want = m->count > 0 ? m->count : 1;
    int got = take_reserve(s, m, q, want, &items);
    resp_add_array(&m->out, (size_t)got);
    resp_buf_append(&m->out, items.data, items.len);
    resp_buf_free(&items);
    shard_reply(s, m);
}

/* First queue (in argument order) among this shard's keys that has a job. */
static struct queue *first_ready(struct shard *s, struct msg *m, int from, int to)
{
    for (int i = from; i < to; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct queue *q = shard_queue(s, m, i, false);
        if (q && q->nready && !q->paused)
            return q;
    }
    return NULL;
}

static void park(struct shard *s, struct msg *m)
{
    int n = 0;
    for (int i = m->key_first; i < m->key_last; i++)
        n += shard_owns(s, m->req.argv[i], m->req.len[i]);
    struct waiter *w = xcalloc(1, sizeof *w + (size_t)n * sizeof(struct wlink));
    tnode_init(&w->timer, TK_WAITER);
    w->m = m;
    for (int i = m->key_first; i < m->key_last; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct queue *q = shard_queue(s, m, i, true);
        bool dup = false;
        for (int k = 0; k < w->nlinks; k++)
            dup |= w->links[k].q == q;
        if (dup)
            continue;
        w->links[w->nlinks].w = w;
        queue_wait_append(q, &w->links[w->nlinks]);
        w->nlinks++;
    }
    if (m->deadline) {
        w->timer.when = m->deadline;
        theap_add(&s->timers, &w->timer);
    }
    m->claim->waiters[s->id] = w;
}

static void answer_empty(struct shard *s, struct msg *m)
{
    resp_add_null_array(&m->out, m->proto);
    shard_reply(s, m);
}

void shard_bpop(struct shard *s, struct msg *m)
{
    if (m->bmode == BPOP_TRY) {
        struct queue *q = first_ready(s, m, m->key_first, m->key_last);
        if (q) {
            deliver(s, m, q);
            shard_queue_gc(s, q);
        } else {
            m->empty = true;
            shard_reply(s, m);
        }
        return;
    }
    /* BPOP_PARK */
    if (!claim_is_open(m->claim)) {
        msg_free(m);
        return;
    }
    struct queue *q = first_ready(s, m, m->key_first, m->key_last);
    if (q) {
        if (claim_take(m->claim)) {
            deliver(s, m, q);
            shard_queue_gc(s, q);
        } else {
            msg_free(m);
        }
        return;
    }
    if (m->deadline < 0) { /* NOWAIT */
        if (claim_take(m->claim))
            answer_empty(s, m);
        else
            msg_free(m);
        return;
    }
    park(s, m);
}

/* Serves waiters of queues that received jobs this turn, oldest waiter
 * first, while the queue has jobs. A queue being served keeps in_ready_list
 * set so that unlinking waiters never frees it under our feet. */
static void serve_queue(struct shard *s, struct queue *q)
{
    while (q->nready && q->wait_head && !q->paused) {
        struct waiter *w = q->wait_head->w;
        if (!claim_take(w->m->claim)) {
            waiter_drop(s, w);
            continue;
        }
        struct msg *m = waiter_remove(s, w);
        deliver(s, m, q);
    }
}

static void serve_ready(struct shard *s)
{
    while (s->ready_head) {
        struct queue *list = s->ready_head;
        s->ready_head = NULL;
        while (list) {
            struct queue *q = list;
            list = q->ready_next;
            q->ready_next = NULL;
            serve_queue(s, q);
            q->in_ready_list = false;
            shard_queue_gc(s, q);
        }
    }
}

/* ---------------------------------------------------------------- timers */

static void expire_waiter(struct shard *s, struct waiter *w)
{
    if (!claim_take(w->m->claim)) {
        waiter_drop(s, w);
        return;
    }
    answer_empty(s, waiter_remove(s, w));
}

static void job_deadline(struct shard *s, struct job *j)
{
    struct queue *q = j->q;
    switch (j->state) {
    case JOB_DELAYED:
        detach(s, j);
        j->updated_at = clock_now_ms();
        make_ready(s, j, true);
        jr_update(s, j);
        break;
    case JOB_RESERVED:
        log_debug("lease of job %016llx (queue '%s', attempt %u) expired", (unsigned long long)j->id,
                  q->name, j->attempt);
        shard_job_fail(s, j, "lease expired", 13, -1, false, "expired");
        break;
    case JOB_DONE:
        detach(s, j);
        drop(s, j);
        shard_queue_gc(s, q);
        break;
    default:
        break;
    }
}

static void rearm_timer(struct shard *s)
{
    struct tnode *t = theap_min(&s->timers);
    if (!t) {
        if (s->timer_at)
            event_del(s->timer_ev);
        s->timer_at = 0;
        return;
    }
    if (s->timer_at == t->when)
        return;
    int64_t delta = t->when - clock_now_ms();
    if (delta < 0)
        delta = 0;
    struct timeval tv = { (time_t)(delta / 1000), (suseconds_t)((delta % 1000) * 1000) };
    event_add(s->timer_ev, &tv);
    s->timer_at = t->when;
}

#define TIMER_BATCH 10000 /* deadlines handled per turn, so a burst cannot starve the inbox */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    shard_tick(arg);
}

/* Checked once a second: after a second without a turn, fold the WAL back
 * into the database (under load SQLite's own checkpoints do that). */
static void checkpoint_cb(evutil_socket_t fd, short what, void *arg)
{
    struct shard *s = arg;
    if (s->jr && s->turns_seen == s->turn)
        journal_checkpoint(s->jr);
    s->turns_seen = s->turn;
}

void shard_tick(struct shard *s)
{
    s->timer_at = 0;
    int64_t now = clock_now_ms();
    struct tnode *t;
    int n = 0;
    while (n++ < TIMER_BATCH && (t = theap_min(&s->timers)) && t->when <= now) {
        theap_remove(&s->timers, t);
        if (t->kind == TK_WAITER)
            expire_waiter(s, (struct waiter *)t);
        else
            job_deadline(s, (struct job *)t);
    }
    shard_end_turn(s);
}

/* ----------------------------------------------------------------- turns */

static void handle_cancel(struct shard *s, struct msg *m)
{
    struct waiter *w = m->claim->waiters[s->id];
    if (w)
        waiter_drop(s, w);
    else if (m->claim->parked)
        EXT_EACH(cancel, s, m->claim);
    msg_free(m);
}

static void handle_return(struct shard *s, struct msg *m)
{
    for (int i = 0; i < m->njobs; i++) {
        struct job *j = jtable_find(&s->jobs, m->jobs[i]);
        if (!j)
            continue;
        log_info("job %016llx goes back to queue '%s': the client it was delivered to disconnected first",
                 (unsigned long long)j->id, j->q->name);
        shard_job_return(s, j, m->jobs_left);
    }
    msg_free(m);
}

static void shard_reload(struct shard *s);

/* The turn's transaction failed: it was rolled back, so every reply of the
 * turn becomes the error (nothing it did was stored), its events are
 * dropped, and memory is rebuilt from the journal to equal the disk again. */
static void fail_turn(struct shard *s, int rc)
{
    char why[600];
    snprintf(why, sizeof why, "ERR journal: %s; nothing of this command was stored, retry it",
             journal_error(s->jr));
    log_error("shard %d: a commit failed (%s); answering this turn's %s with the error and reloading from the journal",
              s->id, strerror(-rc), "commands");
    for (int i = 0; i <= s->srv->nio; i++) {
        for (struct msg *m = s->replies[i].head; m; m = m->next) {
            resp_buf_reset(&m->out);
            m->empty = false;
            m->njobs = 0;
            resp_add_error(&m->out, why);
        }
        if (i == s->srv->nio)
            break; /* no events go to the main thread */
        while (s->events[i].head) {
            struct msg *e = s->events[i].head;
            s->events[i].head = e->next;
            msg_free(e);
        }
        s->events[i].tail = NULL;
        s->events[i].n = 0;
    }
    shard_reload(s);
}

static void commit_turn(struct shard *s)
{
    if (!s->jr || !journal_in_txn(s->jr)) {
        s->turn_err = 0;
        EXT_EACH(end_turn, s, true);
        return;
    }
    int rc = s->turn_err ? s->turn_err : journal_commit(s->jr);
    if (rc < 0) {
        if (!s->turn_err)
            log_error("journal of shard %d: %s", s->id, journal_error(s->jr));
        journal_rollback(s->jr);
        EXT_EACH(end_turn, s, false);
        fail_turn(s, rc);
    } else {
        EXT_EACH(end_turn, s, true);
    }
    s->turn_err = 0;
}

static void shard_end_turn(struct shard *s)
{
    serve_ready(s);
    commit_turn(s); /* before any reply of the turn leaves */
    s->turn++;
    for (int i = 0; i <= s->srv->nio; i++)
        if (s->replies[i].head)
            msg_batch_post(&s->replies[i], i < s->srv->nio ? &s->srv->io[i].inbox : &s->srv->main_inbox);
    for (int i = 0; i < s->srv->nio; i++)
        if (s->events[i].head)
            msg_batch_post(&s->events[i], &s->srv->io[i].inbox);
    rearm_timer(s);
}

static void shard_drain(void *arg, struct msg *list)
{
    struct shard *s = arg;
    while (list) {
        struct msg *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case MSG_CMD:
            s->commands++;
            m->cmd->shard(s, m);
            break;
        case MSG_CANCEL:
            handle_cancel(s, m);
            break;
        case MSG_RETURN:
            handle_return(s, m);
            break;
        case MSG_STOP:
            s->stopping = true;
            event_base_loopexit(s->base, NULL);
            msg_free(m);
            break;
        default:
            log_error("shard %d: unexpected message type %d", s->id, m->type);
            msg_free(m);
        }
    }
    shard_end_turn(s);
}

/* ------------------------------------------------------------- lifecycle */

int shard_init(struct shard *s, struct server *srv, int id)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->srv = srv;
    s->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)clock_mono_us() << 8) ^ (uint64_t)id;
    s->turn = 1; /* a new queue's stats_turn is 0: nothing to save yet */
    qtable_init(&s->queues);
    jtable_init(&s->jobs);
    theap_init(&s->timers);
    qconf_defaults(&s->defaults, srv->cfg.payload);
    s->payload_budget = srv->cfg.payload_memory / (srv->nshards ? srv->nshards : 1);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!s->base)
        return -ENOMEM;
    s->timer_ev = evtimer_new(s->base, timer_cb, s);
    s->ckpt_ev = event_new(s->base, -1, EV_PERSIST, checkpoint_cb, s);
    struct timeval second = { 1, 0 };
    if (s->ckpt_ev)
        event_add(s->ckpt_ev, &second);
    s->replies = calloc((size_t)srv->nio + 1, sizeof *s->replies); /* + the main thread */
    s->events = calloc((size_t)srv->nio, sizeof *s->events);
    if (!s->timer_ev || !s->replies || !s->events)
        return -ENOMEM;
    return inbox_init(&s->inbox, s->base, shard_drain, s);
}

/* ------------------------------------------------------------- recovery */

struct load_counts {
    struct shard *s;
    size_t by_state[JOB_NSTATES];
    struct job **ready;          /* ready jobs, placed after the load in list order */
    size_t nready, capready;
};

static int load_queue(void *arg, const struct journal_queue_row *row)
{
    struct shard *s = ((struct load_counts *)arg)->s;
    struct queue *q = shard_queue_named(s, row->name, row->len, true);
    qconf_parse(&q->conf, row->config);
    q->paused = row->paused;
    struct qconf d = s->defaults;
    q->conf_custom = memcmp(&d, &q->conf, sizeof d) != 0;
    return 0;
}

/* Puts a job read from the journal where its state keeps it. Deadlines
 * already past fire on the first timer turn (a lease that ran out while
 * spoold was down counts as expired; a delay that passed makes it ready). */
static int load_job(void *arg, struct job *j, const char *qname, size_t qlen)
{
    struct load_counts *lc = arg;
    struct shard *s = lc->s;
    struct queue *q = shard_queue_named(s, qname, qlen, true);
    j->q = q;
    jtable_add(&s->jobs, j);
    int64_t idms = (int64_t)(j->id >> 22);
    if (idms > s->id_ms)
        s->id_ms = idms, s->id_seq = (uint32_t)((j->id >> 10) & 0xfff);
    switch (j->state) {
    case JOB_READY:
        if (lc->nready == lc->capready) {
            lc->capready = lc->capready ? lc->capready * 2 : 1024;
            struct job **r = xrealloc(lc->ready, lc->capready * sizeof *r);
            lc->ready = r;
        }
        lc->ready[lc->nready++] = j;
        break;
    case JOB_DELAYED:
        jlist_push_right(&q->delayed, j);
        arm(s, j, j->run_at);
        break;
    case JOB_RESERVED:
        jlist_push_right(&q->reserved, j);
        arm(s, j, j->lease_until);
        break;
    case JOB_DONE:
        jlist_push_right(&q->done, j);
        arm(s, j, j->updated_at + q->conf.retention);
        break;
    default:
        jlist_push_right(&q->dead, j);
        break;
    }
    if (j->unique && j->state <= JOB_DELAYED && !queue_unique_find(q, j->unique, strlen(j->unique)))
        queue_unique_add(q, j);
    lc->by_state[j->state]++;
    return 0;
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

/* Jobs come in id order; ready lists are rebuilt in their own order after
 * one sort, so each insertion is an append. */
static int load_all(struct shard *s, struct load_counts *lc)
{
    memset(lc, 0, sizeof *lc);
    lc->s = s;
    int rc = journal_load(s->jr, false, load_queue, load_job, lc);
    if (lc->nready)
        qsort(lc->ready, lc->nready, sizeof *lc->ready, ready_order);
    for (size_t i = 0; i < lc->nready; i++)
        queue_ready_insert_pos(lc->ready[i]->q, lc->ready[i]);
    free(lc->ready);
    lc->ready = NULL;
    return rc;
}

static int check_shard_count(struct shard *s)
{
    char have[32], want[32];
    snprintf(want, sizeof want, "%d", s->srv->nshards);
    int rc = journal_meta_get(s->jr, "shards", have, sizeof have);
    if (rc == 0 && strcmp(have, want) != 0) {
        log_error("data directory %s was created with %s shards, and spoold was started with --shards %s: "
                  "start it with --shards %s (queues are placed on shards by name; another count would lose track of them)",
                  s->srv->cfg.data_dir, have, want, have);
        return -EINVAL;
    }
    if (rc == -ENOENT) {
        if ((rc = journal_begin(s->jr)) == 0 && (rc = journal_meta_put(s->jr, "shards", want)) == 0)
            rc = journal_commit(s->jr);
        if (rc < 0)
            log_error("shard %d: cannot record the shard count: %s", s->id, journal_error(s->jr));
    }
    return rc;
}

int shard_recover(struct shard *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/shard-%d.db", s->srv->cfg.data_dir, s->id);
    int rc = journal_open(&s->jr, path, s->srv->cfg.fsync);
    if (rc < 0) {
        log_error("cannot open the journal of shard %d: %s", s->id, s->jr ? journal_error(s->jr) : strerror(-rc));
        journal_close(s->jr);
        s->jr = NULL;
        return rc;
    }
    if ((rc = check_shard_count(s)) < 0)
        return rc;
    int64_t t0 = clock_mono_ms();
    struct load_counts lc;
    if ((rc = load_all(s, &lc)) < 0) {
        log_error("cannot load the journal of shard %d: %s", s->id, journal_error(s->jr));
        return rc;
    }
    size_t total = 0;
    for (int i = 0; i < JOB_NSTATES; i++)
        total += lc.by_state[i];
    log_info("shard %d recovered %zu job(s) in %lld ms: %zu ready, %zu reserved, %zu delayed, %zu done, %zu dead (%s)",
             s->id, total, (long long)(clock_mono_ms() - t0), lc.by_state[JOB_READY], lc.by_state[JOB_RESERVED],
             lc.by_state[JOB_DELAYED], lc.by_state[JOB_DONE], lc.by_state[JOB_DEAD], path);
    for (int i = 0; i < nexts; i++)
        if (exts[i]->recover && (rc = exts[i]->recover(s)) < 0)
            return rc;
    return 0;
}

static void rearm_waiters_of(void *arg, struct queue *q)
{
    struct shard *s = arg;
    for (struct wlink *l = q->wait_head; l; l = l->next) {
        struct waiter *w = l->w;
        if (w->m->deadline > 0 && !tnode_armed(&w->timer)) {
            w->timer.when = w->m->deadline;
            theap_add(&s->timers, &w->timer);
        }
    }
}

static void reset_queue(void *arg, struct queue *q)
{
    struct shard *s = arg;
    queue_clear_jobs(q);
    if (q->stats_turn == s->turn)
        q->stats = q->stats_saved;
    q->conf = s->defaults;
    q->conf_custom = false;
    q->paused = false;
}

static void gc_queue(void *arg, struct queue *q)
{
    shard_queue_gc(arg, q);
}

/* Memory := journal, after a failed commit. Waiters stay parked. */
static void shard_reload(struct shard *s)
{
    for (size_t i = 0; i < s->timers.n; i++)
        s->timers.a[i]->idx = TNODE_NONE;
    s->timers.n = 0;
    s->ready_head = NULL;
    qtable_each(&s->queues, reset_queue, s);
    jtable_free(&s->jobs);
    jtable_init(&s->jobs);
    s->payload_bytes = 0;
    qtable_each(&s->queues, rearm_waiters_of, s);
    struct load_counts lc;
    if (load_all(s, &lc) < 0)
        log_error("shard %d: reloading the journal failed too: %s; this shard now serves only what it could read",
                  s->id, journal_error(s->jr));
    qtable_each(&s->queues, gc_queue, s);
    EXT_EACH(reload, s);
    struct queue *q;
    for (size_t i = 0; i < s->queues.nb; i++)
        for (q = s->queues.b[i]; q; q = q->hnext)
            shard_queue_changed(s, q);
}

static void *shard_main(void *arg)
{
    struct shard *s = arg;
    char name[16];
    snprintf(name, sizeof name, "shard-%d", s->id);
    log_set_thread_name(name);
    rearm_timer(s);
    event_base_dispatch(s->base);
    return NULL;
}

int shard_start(struct shard *s)
{
    return -pthread_create(&s->thread, NULL, shard_main, s);
}

void shard_join(struct shard *s)
{
    pthread_join(s->thread, NULL);
}

static void free_waiters_of(void *arg, struct queue *q)
{
    struct shard *s = arg;
    while (q->wait_head) {
        struct waiter *w = q->wait_head->w;
        waiter_unlink(s, w);
        msg_free(w->m);
        free(w);
    }
}

void shard_destroy(struct shard *s)
{
    s->stopping = true; /* no queue is collected while waiters are freed */
    if (s->queues.b) {
        qtable_each(&s->queues, free_waiters_of, s);
        qtable_free(&s->queues);
    }
    EXT_EACH(destroy, s);
    jtable_free(&s->jobs);
    theap_free(&s->timers);
    journal_close(s->jr);
    s->jr = NULL;
    inbox_discard(&s->inbox);
    inbox_destroy(&s->inbox);
    if (s->timer_ev)
        event_free(s->timer_ev);
    if (s->ckpt_ev)
        event_free(s->ckpt_ev);
    if (s->base)
        event_base_free(s->base);
    free(s->replies);
    free(s->events);
}
