/*
 * shard.c - the shard thread: its loop and turns, the deadline timer, and
 * the shard side of blocking pops (see shard.h, store.h for the job
 * transitions, claim.h for pops across shards).
 *
 * A waiter is one BLPOP/BRPOP/JOB.RESERVE parked in this shard: it holds
 * the request message (which becomes the reply), one wlink per key of this
 * shard, and a deadline node. Waiters are served at the end of each turn
 * from the list of queues that got ready jobs: oldest waiter first, while
 * the queue has jobs and is not paused. A waiter whose claim was already
 * taken elsewhere is dropped without touching the queue.
 *
 * Every transition goes through store_job_* (store.c): they keep the lists,
 * the id table, unique keys, deadlines and counters consistent, journal the
 * change and announce the event through the store's emit hook; this file
 * queues the event, and posts it only after the turn commits.
 */
#include "shard.h"

#include "claim.h"
#include "clock.h"
#include "command.h"
#include "config.h"
#include "context.h"
#include "datadir.h"
#include "events.h"
#include "fsio.h"
#include "flow.h"
#include "hash.h"
#include "journal.h"
#include "log.h"
#include "msg.h"
#include "paylog.h"
#include "replica.h"
#include "slot.h"
#include "store.h"
#include "xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct waiter {
    struct tnode timer;          /* first member: tnode* <-> waiter* */
    struct msg *m;
    int64_t since;               /* unix ms it parked */
    int nlinks;
    struct wlink links[];
};

static void shard_end_turn(struct shard *s);
static void compact_arm(struct shard *s);

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

/* The store's finished hook: a job became done or dead, or is deleted
 * before it finished. */
static void ext_job_finished(void *arg, struct job *j, int how)
{
    struct shard *s = arg;
    EXT_EACH(job_finished, s, j, how);
}

/* -------------------------------------------------------------- helpers */

bool shard_owns(const struct shard *s, const char *name, size_t len)
{
    return shard_of(name, len, s->srv->nshards) == s->id;
}

struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create)
{
    return store_queue(&s->st, m->req.argv[i], m->req.len[i], create);
}

/* A reply that promises nothing durable: a command marked read-only, or a
 * JOB.RESERVE (a lease lost in a power cut is delivered again after the
 * restart: at-least-once holds). Everything else waits for its commit to
 * be on disk: pushes, pops, acks, nacks, deletes, and any command not
 * marked read-only (a transaction's EXEC, an admin command), so a new
 * command is durable unless its table entry says otherwise. A JOB.WAIT
 * (CMD_DURABLE) reads, but tells that a job finished: it waits too. */
static bool reply_is_early(const struct msg *m)
{
    return m->cmd && (m->cmd->flags & (CMD_READONLY | CMD_RESERVE)) && !(m->cmd->flags & CMD_DURABLE);
}

void shard_reply(struct shard *s, struct msg *m)
{
    if (s->capture) {
        s->captured = m; /* a command inside EXEC: its reply goes into EXEC's */
        return;
    }
    m->type = MSG_REPLY;
    msg_batch_add(reply_is_early(m) ? &s->early[m->origin] : &s->replies[m->origin], m);
}

/* -------------------------------------------------------------- events */

/* The store's emit hook: events are queued per I/O thread and posted
 * after the turn commits. */
static void emit_event(void *arg, const struct job *j, const char *event, const char *err, size_t errlen)
{
    struct shard *s = arg;
    if (!events_listening(s->srv))
        return;
    struct msg *m = events_job_message(j, event, err, errlen);
    int n = s->srv->nio;
    for (int k = 0; k < n; k++)
        msg_batch_add(&s->events[k], k == n - 1 ? m : events_copy(m));
}

void shard_publish(struct shard *s, struct msg *m)
{
    if (!events_listening(s->srv)) {
        msg_free(m);
        return;
    }
    int n = s->srv->nio;
    for (int k = 0; k < n; k++)
        msg_batch_add(&s->events[k], k == n - 1 ? m : events_copy(m));
}

/* ------------------------------------------------------------ keyspace */

/* The keyspace journals through the store's transaction of the turn. */
static struct journal *ks_txn(void *arg)
{
    struct shard *s = arg;
    return store_txn(&s->st);
}

static void ks_result(void *arg, int rc)
{
    struct shard *s = arg;
    store_txn_result(&s->st, rc);
}

/* The store's touch hook: a queue's jobs changed (WATCH on a queue). */
static void touch_queue(void *arg, const struct queue *q)
{
    struct shard *s = arg;
    keyspace_touch(&s->ks, q->name, q->namelen);
}

/* -------------------------------------------------------------- waiters */

static void waiter_unlink(struct shard *s, struct waiter *w)
{
    for (int i = 0; i < w->nlinks; i++) {
        struct queue *q = w->links[i].q;
        queue_wait_unlink(&w->links[i]);
        if (q)
            store_queue_gc(&s->st, q);
    }
    theap_remove(&s->st.timers, &w->timer);
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
    char id[JOB_ID_TEXT], receipt[JOB_RECEIPT_TEXT];
    job_id_text(j, id);
    job_receipt_text(j, receipt);
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
    struct job *j;
    while (n < want && (j = store_job_next(&s->st, q, false))) {
        if (store_job_payload(&s->st, j) < 0) {
            log_error("job %016llx of queue '%s' has no payload in the journal; deleting it",
                      (unsigned long long)j->id, q->name);
            store_job_delete(&s->st, j);
            continue;
        }
        if (m->who && n + 1 == want) { /* the last job it takes gets the text itself */
            free(j->holder);
            j->holder = m->who;
            m->who = NULL;
        } else if (m->who) {
            job_set_str(&j->holder, m->who, strlen(m->who));
        }
        store_job_reserve(&s->st, j, m->lease);
        encode_reserved(m, j);
        note_job(m, j->id);
        n++;
    }
    *items = m->out;
    m->out = saved;
    return n;
}

static void answer_empty(struct shard *s, struct msg *m);

/* Delivers from q to the request m (its claim, if any, is already ours):
 * one job for a list pop, up to COUNT jobs of q for a reserve. Leaves q in
 * the table: the caller collects it. */
static void deliver(struct shard *s, struct msg *m, struct queue *q)
{
    if (!is_reserve(m)) {
        bool left = m->cmd->flags & CMD_LEFT;
        struct job *j = store_job_next(&s->st, q, left);
        if (!j) { /* the caller saw one: cannot happen, but never crash on it */
            answer_empty(s, m);
            return;
        }
        store_encode_pop(&s->st, m, q, j);
        note_job(m, j->id);
        m->jobs_left = left;
        store_job_popped(&s->st, j);
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
/* The first of this shard's keys, in argument order, that has ready jobs;
 * NULL with *wrong set when a string, hash or sorted set comes first (as
 * Redis, a blocking pop then answers WRONGTYPE). */
static struct queue *first_ready(struct shard *s, struct msg *m, int from, int to, bool *wrong)
{
    int64_t now = clock_now_ms();
    *wrong = false;
    for (int i = from; i < to; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        if (keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], now)) {
            *wrong = true;
            return NULL;
        }
        struct queue *q = shard_queue(s, m, i, false);
        if (q && q->nready && !q->paused && store_job_next(&s->st, q, m->cmd->flags & CMD_LEFT))
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
    w->since = clock_now_ms();
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
        store_queue_changed(&s->st, q); /* jobs held back by a limit: serve_ready arms its wake-up */
    }
    if (m->deadline) {
        w->timer.when = m->deadline;
        theap_add(&s->st.timers, &w->timer);
    }
    m->claim->waiters[s->id] = w;
}

static void answer_empty(struct shard *s, struct msg *m)
{
    resp_add_null_array(&m->out, m->proto);
    shard_reply(s, m);
}

void shard_each_waiter(struct shard *s, struct queue *q, void (*fn)(void *arg, const char *who, int64_t since),
                       void *arg)
{
    (void)s;
    for (struct wlink *l = q->wait_head; l; l = l->next)
        if (l->w->m->who && claim_is_open(l->w->m->claim))
            fn(arg, l->w->m->who, l->w->since);
}

void shard_refuse_waiters(struct shard *s, struct queue *q, const char *error)
{
    bool listed = q->in_ready_list;
    q->in_ready_list = true; /* unlinking its last waiter must not free q here */
    while (q->wait_head) {
        struct waiter *w = q->wait_head->w;
        if (!claim_take(w->m->claim)) {
            waiter_drop(s, w);
            continue;
        }
        struct msg *m = waiter_remove(s, w);
        resp_add_error(&m->out, error);
        shard_reply(s, m);
    }
    q->in_ready_list = listed;
}

void shard_bpop(struct shard *s, struct msg *m)
{
    bool wrong;
    if (m->bmode == BPOP_TRY) {
        struct queue *q = first_ready(s, m, m->key_first, m->key_last, &wrong);
        if (wrong) {
            resp_add_error(&m->out, KS_WRONGTYPE);
            shard_reply(s, m);
        } else if (q) {
            deliver(s, m, q);
            store_queue_gc(&s->st, q);
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
    struct queue *q = first_ready(s, m, m->key_first, m->key_last, &wrong);
    if (wrong) {
        if (claim_take(m->claim)) {
            resp_add_error(&m->out, KS_WRONGTYPE);
            shard_reply(s, m);
        } else {
            msg_free(m);
        }
        return;
    }
    if (q) {
        if (claim_take(m->claim)) {
            deliver(s, m, q);
            store_queue_gc(&s->st, q);
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

/* Waiters of q wait for its limits, not for jobs: a rate limit wakes the
 * queue when its next delivery is due (one node in the deadline heap per
 * queue); a concurrency slot wakes it when a reserved job leaves (the
 * store's detach). */
static void throttled(struct shard *s, struct queue *q)
{
    int64_t wake;
    if (flow_next(q, false, clock_now_ms(), &wake) || wake == 0)
        return;
    if (tnode_armed(&q->flow_timer) && q->flow_timer.when <= wake)
        return;
    theap_remove(&s->st.timers, &q->flow_timer);
    q->flow_timer.kind = TK_QUEUE;
    q->flow_timer.when = wake;
    theap_add(&s->st.timers, &q->flow_timer);
}

static void queue_wake(struct shard *s, struct tnode *t)
{
    struct queue *q = (struct queue *)(void *)((char *)t - offsetof(struct queue, flow_timer));
    store_queue_changed(&s->st, q);
    store_queue_gc(&s->st, q);
}

/* Serves waiters of queues that received jobs this turn, oldest waiter
 * first, while the queue has jobs. A queue being served keeps in_ready_list
 * set so that unlinking waiters never frees it under our feet. */
static void serve_queue(struct shard *s, struct queue *q)
{
    while (q->wait_head && store_job_next(&s->st, q, q->wait_head->w->m->cmd->flags & CMD_LEFT)) {
        struct waiter *w = q->wait_head->w;
        if (!claim_take(w->m->claim)) {
            waiter_drop(s, w);
            continue;
        }
        struct msg *m = waiter_remove(s, w);
        deliver(s, m, q);
    }
    if (q->wait_head && q->nready && !q->paused)
        throttled(s, q);
}

static void serve_ready(struct shard *s)
{
    while (s->st.ready_head) {
        struct queue *list = s->st.ready_head;
        s->st.ready_head = NULL;
        while (list) {
            struct queue *q = list;
            list = q->ready_next;
            q->ready_next = NULL;
            serve_queue(s, q);
            q->in_ready_list = false;
            store_queue_gc(&s->st, q);
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

/* Armed for the earliest of the job/waiter deadlines and the key expiries. */
static void rearm_timer(struct shard *s)
{
    struct tnode *t = theap_min(&s->st.timers);
    int64_t when = t ? t->when : 0, kv = s->fenced ? 0 : keyspace_next_expiry(&s->ks);
    if (kv && (!when || kv < when))
        when = kv;
    int64_t late = s->fenced ? 0 : s->st.unsaved_due;
    if (late && (!when || late < when))
        when = late;
    if (!when) {
        if (s->timer_at)
            event_del(s->timer_ev);
        s->timer_at = 0;
        return;
    }
    if (s->timer_at == when)
        return;
    int64_t delta = when - clock_now_ms();
    if (delta < 0)
        delta = 0;
    struct timeval tv = { (time_t)(delta / 1000), (suseconds_t)((delta % 1000) * 1000) };
    event_add(s->timer_ev, &tv);
    s->timer_at = when;
}

#define TIMER_BATCH 10000 /* deadlines handled per turn, so a burst cannot starve the inbox */
#define EXPIRE_BATCH 200  /* keys expired per turn by the active sweep */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    shard_tick(arg);
}

/* ------------------------------------------------------ a failed sync */

/* Whether the journal failed a sync (journal_failed; journal.h says why no
 * later sync can be trusted). The first time, the shard latches it:
 * from then on it acknowledges no write until spoold restarts. Writes are
 * refused with fence_why (naming the shard, the file, the OS error and
 * the fix), reads are served, timers write nothing (leases do not expire,
 * delayed jobs stay delayed: the restart takes them up), notes for other
 * shards are not sent (they stay in the outbox, resent after the restart
 * if their commit is on disk), the commit mark stays behind, INFO and
 * /healthz report it, and the log says it once. Why not stop the process:
 * the other shards are unharmed and go on, the operator can read what
 * this one holds and chooses when to restart; every acknowledged write is
 * on disk either way. */
static bool shard_fenced(struct shard *s)
{
    const char *why;
    if (s->fenced)
        return true;
    if (!s->st.jr || !journal_failed(s->st.jr, &why))
        return false;
    s->fenced = true;
    char when[40];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&now, &tm));
    snprintf(s->fence_why, sizeof s->fence_why,
             "ERR shard %d refuses writes: %s at %s, so what it wrote since its last good sync may not be on disk; "
             "reads work. Check the disk (dmesg, SMART, free space), then restart spoold: recovery keeps what "
             "really is on disk, and every write acknowledged before the failure", s->id, why, when);
    log_error("shard %d: %s. THE SHARD NOW REFUSES EVERY WRITE (a later sync could claim durability the failed one "
              "lost); reads keep working. Check the disk (dmesg, SMART, free space), then restart spoold: recovery "
              "keeps what really is on disk, and every write acknowledged before the failure", s->id, why);
    const char *none = NULL;
    atomic_compare_exchange_strong(&s->srv->journal_failed_why, &none, s->fence_why);
    atomic_fetch_add(&s->srv->journal_failed_shards, 1);
    if (s->timer_ev)
        event_active(s->timer_ev, EV_TIMEOUT, 1); /* the next tick answers the waiting clients */
    return true;
}

static void first_waited(void *arg, struct queue *q)
{
    struct queue **first = arg;
    if (!*first && q->wait_head)
        *first = q;
}

/* Fenced: every client waiting on this shard (JOB.RESERVE, BLPOP …, and
 * JOB.WAIT through the fenced hook: no job can finish here any more) gets
 * fence_why now, as a write does, rather than nil at its timeout (a
 * delivery would record a lease: no write is acknowledged any more). Once,
 * on the first tick after the fence: later ones are refused on arrival.
 * A queue at a time, looked up again after each, as refusing a waiter may
 * free the other queues it waited on. */
static void refuse_waiters_fenced(struct shard *s)
{
    if (!s->fenced || s->waiters_refused)
        return;
    s->waiters_refused = true;
    struct queue *q;
    do {
        q = NULL;
        qtable_each(&s->st.queues, first_waited, &q);
        if (q)
            shard_refuse_waiters(s, q, s->fence_why);
    } while (q);
    EXT_EACH(fenced, s, s->fence_why);
}

/* Would m change the journal, or report a change as durable (JOB.WAIT)?
 * A fenced shard refuses it. EXEC goes in: its writes fail at the journal,
 * which refuses to begin a transaction. */
static bool fence_refuses(const struct msg *m)
{
    return m->nsubs == 0 && (m->cmd->flags & (CMD_WRITE | CMD_BLOCKING | CMD_DURABLE));
}

/* Frees the messages of n batches. */
static void free_batches(struct msg_batch *b, int n)
{
    for (int i = 0; i < n; i++) {
        while (b[i].head) {
            struct msg *m = b[i].head;
            b[i].head = m->next;
            msg_free(m);
        }
        b[i].tail = NULL;
        b[i].n = 0;
    }
}

/* Every reply in the batches becomes the error why. */
static void replies_become(struct shard *s, struct msg_batch *b, const char *why)
{
    for (int i = 0; i <= s->srv->nio; i++)
        for (struct msg *m = b[i].head; m; m = m->next) {
            resp_buf_reset(&m->out);
            m->empty = false;
            m->njobs = 0;
            resp_add_error(&m->out, why);
        }
}

/* Records in shard-<k>.mark that the journal holds this many commits
 * (datadir.h); called only once they are on disk as far as the --fsync
 * mode promises. A failed write is logged: the next one may work. */
static void write_mark(struct shard *s)
{
    if (!s->has_mark || !s->st.jr || journal_failed(s->st.jr, NULL) || journal_commits(s->st.jr) == s->mark_commits)
        return;
    struct mark mk = { .shard = s->id, .commits = journal_commits(s->st.jr), .jobs = (int64_t)s->st.jobs.n };
    memcpy(mk.id, s->srv->data_id, sizeof mk.id);
    int rc = datadir_mark_write(s->mark_fd, &mk);
    if (rc < 0)
        log_error("shard %d: cannot write %s/shard-%d.mark: %s", s->id, s->srv->cfg.data_dir, s->id, strerror(-rc));
    else
        s->mark_commits = mk.commits;
}

/* Syncs the payload file (--fsync batch: on disk within a second; before
 * a checkpoint, which syncs rows that point into it). A failed sync
 * fences the shard, as a failed sync of the WAL does. */
static bool sync_payloads(struct shard *s)
{
    int rc = s->pl ? paylog_sync(s->pl) : 0;
    if (rc == 0)
        return true;
    log_error("shard %d: %s", s->id, paylog_error(s->pl));
    journal_synced(s->st.jr, rc);
    shard_fenced(s);
    return false;
}

/* Checked once a second: after a second without a commit, fold the WAL
 * back into the database (under load SQLite's own checkpoints do that).
 * Read-only turns (the dashboard's sampler asks every second) do not
 * count as activity. */
static void checkpoint_cb(evutil_socket_t fd, short what, void *arg)
{
    struct shard *s = arg;
    if (s->sync_busy || s->gathering || s->rep_busy || shard_fenced(s))
        return; /* the syncer has the WAL (or a transaction waits for its window), or a replicated transaction is open: no write now; or nothing is
                   written any more */
    if (!sync_payloads(s))
        return; /* before the WAL: its rows point at them */
    if (s->st.jr && s->commits_seen == s->commits)
        journal_checkpoint(s->st.jr); /* a failed sync in it fences the shard at the next check */
    else if (s->st.jr && journal_sync(s->st.jr) < 0) { /* --fsync batch: on disk within a second */
        if (!shard_fenced(s))
            log_error("shard %d: %s", s->id, journal_error(s->st.jr));
    }
    else if (s->srv->cfg.fsync == FSYNC_BATCH || s->srv->replica)
        write_mark(s); /* the WAL is synced: its commits are on disk */
    if (s->pl && s->st.jr && !journal_failed(s->st.jr, NULL))
        paylog_durable(s->pl); /* every commit is on disk: segments they emptied go */
    s->commits_seen = s->commits;
    compact_arm(s);
}

void shard_tick(struct shard *s)
{
    s->timer_at = 0;
    refuse_waiters_fenced(s);
    int64_t now = clock_now_ms();
    struct tnode *t;
    int n = 0;
    while (n++ < TIMER_BATCH && (t = store_next_due(&s->st, now))) {
        if (t->kind == TK_WAITER)
            expire_waiter(s, (struct waiter *)t);
        else if (s->fenced)
            continue; /* it would write: left to the restart */
        else if (t->kind == TK_QUEUE)
            queue_wake(s, t);
        else
            store_job_deadline(&s->st, (struct job *)t);
    }
    if (!s->fenced)
        keyspace_expire_due(&s->ks, now, EXPIRE_BATCH);
    if (!s->fenced && s->st.unsaved_due && s->st.unsaved_due <= now)
        store_unsaved_write(&s->st); /* no commit came for a while: the reservations go on their own */
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
        struct job *j = jtable_find(&s->st.jobs, m->jobs[i]);
        if (!j)
            continue;
        log_info("job %016llx goes back to queue '%s': the client it was delivered to disconnected first",
                 (unsigned long long)j->id, j->q->name);
        store_job_return(&s->st, j, m->jobs_left);
    }
    msg_free(m);
}

static void shard_reload(struct shard *s);

/* The turn's transaction failed: it was rolled back, so every reply of the
 * turn becomes the error (nothing it did was stored), its events are
 * dropped, and memory is rebuilt from the journal to equal the disk again. */
static void fail_turn(struct shard *s, int rc, const char *replica_why)
{
    char why[1400];
    if (replica_why[0])
        snprintf(why, sizeof why, "%s", replica_why);
    else if (shard_fenced(s))
        snprintf(why, sizeof why, "%s (nothing of this command was stored)", s->fence_why);
    else
        snprintf(why, sizeof why, "ERR journal: %s; nothing of this command was stored, retry it",
                 journal_error(s->st.jr));
    if (!replica_why[0] && !s->fenced)
        log_error("shard %d: a commit failed (%s); answering this turn's %s with the error and reloading from the "
                  "journal", s->id, strerror(-rc), "commands");
    replies_become(s, s->replies, why);
    free_batches(s->events, s->srv->nio);
    if (!s->srv->replica || replica_role(s->srv->replica) == REPLICA_LEADER)
        shard_reload(s); /* a delivery answered in the failed turn keeps its token: its receipt is stale now;
                          a shard that does not lead rebuilds when it is promoted (replica_gate) */
}

static void commit_turn(struct shard *s)
{
    bool txn = s->st.jr && journal_in_txn(s->st.jr);
    if (txn && !s->st.turn_err && !s->fenced)
        store_commit_begins(&s->st); /* older reservations ride along */
    if (!txn && !s->st.turn_err) {
        EXT_EACH(end_turn, s, true);
        return;
    } /* a write whose transaction could not even begin (a failed journal) fails the turn too */
    int rc = s->st.turn_err ? s->st.turn_err : journal_commit(s->st.jr);
    s->commits++;
    if (rc < 0) {
        if (!s->st.turn_err && !shard_fenced(s))
            log_error("journal of shard %d: %s", s->id, journal_error(s->st.jr));
        journal_rollback(s->st.jr);
        EXT_EACH(end_turn, s, false);
        fail_turn(s, rc, "");
    } else {
        store_committed(&s->st);
        if (s->pl)
            paylog_committed(s->pl); /* segments this commit emptied go at the next durable point */
        if (s->pl && s->srv->cfg.fsync == FSYNC_OFF)
            paylog_durable(s->pl); /* as far as off goes */
        if (s->srv->cfg.fsync != FSYNC_BATCH && !s->pipelined)
            write_mark(s); /* always: synced by the commit; off: as far as off goes */
        EXT_EACH(end_turn, s, true);
    }
    s->st.turn_err = 0;
}

void shard_post_durable(struct shard *s, struct inbox *to, struct msg *m)
{
    struct dposts *d = &s->dposts;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (struct dpost){ to, m };
}

static void post_dposts(struct dposts *d)
{
    for (size_t i = 0; i < d->n; i++)
        inbox_post(d->v[i].to, d->v[i].m);
    d->n = 0;
}

/* Notes that must not leave: they stay in the outbox (resent at start). */
static void drop_dposts(struct dposts *d)
{
    for (size_t i = 0; i < d->n; i++)
        msg_free(d->v[i].m);
    d->n = 0;
}

/* Posts the batches of replies (nio + 1 of them: the I/O threads and the
 * main thread) and of events (nio). */
static void post_batches(struct shard *s, struct msg_batch *replies, struct msg_batch *events)
{
    for (int i = 0; i <= s->srv->nio; i++)
        if (replies[i].head)
            msg_batch_post(&replies[i], ctx_inbox(s->srv, ctx_io(s->srv, i)));
    for (int i = 0; events && i < s->srv->nio; i++)
        if (events[i].head)
            msg_batch_post(&events[i], ctx_inbox(s->srv, ctx_io(s->srv, i)));
}

/* The replies, events and notes so far wait in fl_* for a sync or an
 * entry in flight to settle (fl_* are empty: posted when the last did). */
static void hold_batches(struct shard *s)
{
    struct dposts d = s->fl_dposts;
    s->fl_dposts = s->dposts;
    s->dposts = d;
    struct msg_batch *r = s->fl_replies, *e = s->fl_events;
    s->fl_replies = s->replies;
    s->fl_events = s->events;
    s->replies = r;
    s->events = e;
}

/* The replies held in the batches b (nio + 1 of them). */
static size_t batch_count(const struct shard *s, const struct msg_batch *b)
{
    size_t n = 0;
    for (int i = 0; i <= s->srv->nio; i++)
        n += b[i].n;
    return n;
}

#define GATHER_SIBLINGS 2     /* a sync releasing fewer replies opens no window: nobody else to wait for */
#define GATHER_BACKOFF_MAX 16 /* windows left out at most after windows that ran out one after another */
#define GATHER_RETURNS 3      /* a window lasts at most this many times the clients' average return */
#define GATHER_MIN_NS 50000   /* and at least 50 us: one return measured fast says little */

/* --sync-gather-us: the gathering window the sync about to start opens
 * after it (syncer.h), in ns, 0 = none. There is one when the sync
 * releases the replies of several clients, unless windows ran out lately
 * (their clients did not come back in time: then the next ones are left
 * out, 1, 2, 4, ... of them). It lasts at most --sync-gather-us, and at
 * most 3 times the time the clients took to come back in the windows that
 * filled (the syncer also bounds it by twice the time of a sync). */
static int64_t want_window(struct shard *s, size_t replies)
{
    int64_t bound = (int64_t)s->srv->cfg.sync_gather_us * 1000;
    if (!bound || replies < GATHER_SIBLINGS)
        return 0;
    if (s->gather_skip) {
        s->gather_skip--;
        return 0;
    }
    int64_t back = s->gather_return_ns * GATHER_RETURNS;
    if (s->gather_return_ns && back < bound)
        bound = back > GATHER_MIN_NS ? back : GATHER_MIN_NS;
    return bound;
}

/* Pipelined --fsync always, with no sync in flight: commits what the turns
 * since the last commit did and hands the WAL to the syncer; their replies
 * wait in fl_* for MSG_SYNCED. With nothing to commit (or a failed commit,
 * whose replies are errors now) the replies leave at once. */
static void start_commit(struct shard *s)
{
    bool had_txn = s->st.jr && journal_in_txn(s->st.jr);
    s->gathering = false;
    commit_turn(s);
    void *wal = had_txn ? journal_wal(s->st.jr) : NULL;
    if (!wal) {
        post_dposts(&s->dposts);
        post_batches(s, s->replies, s->events);
        return;
    }
    struct paylog_pending seg = { .fd = -1, .fd2 = -1 };
    if (s->pl)
        paylog_take_sync(s->pl, &seg); /* the records this commit's rows point at */
    hold_batches(s);
    size_t n = batch_count(s, s->fl_replies);
    syncer_count(n);
    int64_t window = want_window(s, n);
    s->gather_asked = window > 0;
    s->sync_busy = true;
    s->sync_seq++;
    syncer_request(&s->sync, wal, &seg, window);
}

/* After a sync that opened a window: the next commit waits until as many
 * replies are held as were before plus 7/8 of those the sync released (the
 * clients that got them send their next requests: most come back in one
 * round trip), or until the window ends. */
static void open_window(struct shard *s)
{
    size_t released = batch_count(s, s->fl_replies);
    s->gathering = true;
    s->gather_opened = syncer_now_ns();
    s->gather_need = batch_count(s, s->replies) + released - released / 8;
}

/* MSG_SYNCED: the sync of the last commit returned. Its replies, events
 * and notes for other shards leave. If the sync failed, the shard is
 * fenced (shard_fenced) and the commit may or may not be on disk: its
 * replies become the error, and its events and notes, which would tell
 * that it happened, are dropped (a restart resends the notes whose commit
 * is on disk, from the outbox). */
static void handle_synced(struct shard *s, struct msg *m)
{
    int rc = (int)m->num;
    msg_free(m);
    s->sync_busy = false;
    if (journal_synced(s->st.jr, rc) < 0) {
        shard_fenced(s);
        char why[1400];
        snprintf(why, sizeof why, "ERR journal: %s: this write may or may not be on disk; shard %d refuses writes "
                 "from now on (check the disk, then restart spoold)", journal_error(s->st.jr), s->id);
        replies_become(s, s->fl_replies, why);
        free_batches(s->fl_events, s->srv->nio);
        drop_dposts(&s->fl_dposts);
    } else {
        write_mark(s); /* no commit since this sync began: all of them are on disk */
        if (s->pl)
            paylog_durable(s->pl);
        post_dposts(&s->fl_dposts);
        if (s->gather_asked)
            open_window(s);
    }
    post_batches(s, s->fl_replies, s->fl_events);
}

/* ------------------------------------------------ payload file compaction */

#define COMPACT_STEP_BYTES (1u << 20) /* read per step: well under a millisecond from the page cache */
#define COMPACT_EVERY_MS 5

static bool compact_allowed(struct shard *s)
{
    return s->pl && s->compact_ev && !s->srv->replica && !s->fenced && !s->backup && !s->pl_backup &&
           !journal_failed(s->st.jr, NULL);
}

/* INFO's figures of the payload file (cmd_server.c reads them). */
static void publish_paylog(struct shard *s)
{
    struct paylog_stat st;
    paylog_stats(s->pl, &st);
    atomic_store_explicit(&s->pl_disk, st.disk_bytes, memory_order_relaxed);
    atomic_store_explicit(&s->pl_live, st.live_bytes, memory_order_relaxed);
    atomic_store_explicit(&s->pl_segments, st.segments, memory_order_relaxed);
    atomic_store_explicit(&s->pl_compactions, st.compactions, memory_order_relaxed);
}

/* Copies waiting for a sync get one: a commit in the making carries them
 * (its sync request takes the segment); with none (an idle shard, or
 * without the syncer) they are synced here, one fdatasync per step. */
static void compact_sync(struct shard *s)
{
    if (paylog_compact_waiting(s->pl) && !s->sync_busy && !journal_in_txn(s->st.jr))
        sync_payloads(s);
}

/* One step: a turn of its own, committed like any other. */
static void compact_cb(evutil_socket_t fd, short what, void *arg)
{
    struct shard *s = arg;
    if (!compact_allowed(s))
        return;
    int rc = journal_compact_step(s->st.jr, COMPACT_STEP_BYTES);
    if (rc < 0) {
        log_error("shard %d: payload file compaction stopped: %s (retried in a second)", s->id,
                  journal_error(s->st.jr));
        if (journal_in_txn(s->st.jr) && !s->st.turn_err)
            s->st.turn_err = rc;
    }
    shard_end_turn(s);
    if (rc > 0 && !shard_fenced(s))
        compact_sync(s);
    publish_paylog(s);
    struct timeval tv = { 0, COMPACT_EVERY_MS * 1000 };
    if (rc > 0)
        evtimer_add(s->compact_ev, &tv);
}

/* Once a second: starts the steps if a segment is worth compacting. */
static void compact_arm(struct shard *s)
{
    if (!s->pl)
        return;
    publish_paylog(s);
    struct timeval now = { 0, 0 };
    if (compact_allowed(s) && !evtimer_pending(s->compact_ev, NULL) && paylog_compact_wanted(s->pl))
        evtimer_add(s->compact_ev, &now);
}

/* MSG_GATHERED: a window ran out before enough clients came back. What
 * came is committed at the end of this turn; if windows keep running
 * out, the next ones are left out for a while. A window the shard had
 * already closed (it requested the sync while this message was on its
 * way) is not this one. */
static void handle_gathered(struct shard *s, struct msg *m)
{
    bool current = s->gathering && !s->sync_busy && (uint64_t)m->num == s->sync_seq;
    msg_free(m);
    if (!current)
        return;
    s->gathering = false;
    s->gather_skip = s->gather_backoff;
    s->gather_backoff = s->gather_backoff ? s->gather_backoff * 2 : 1;
    if (s->gather_backoff > GATHER_BACKOFF_MAX)
        s->gather_backoff = GATHER_BACKOFF_MAX;
}

/* Whether the next commit may start now: no sync in flight, and no window
 * open or the clients it waits for are back. */
static bool commit_ready(struct shard *s)
{
    if (s->sync_busy)
        return false;
    if (!s->gathering)
        return true;
    if (batch_count(s, s->replies) < s->gather_need)
        return false;
    s->gather_backoff = 0; /* a window that filled: its clients' return time counts */
    int64_t took = syncer_now_ns() - s->gather_opened;
    s->gather_return_ns = s->gather_return_ns ? (s->gather_return_ns * 7 + took) / 8 : took;
    syncer_note_return(s->gather_return_ns);
    return true;
}

static void replica_end_turn(struct shard *s);

static void shard_end_turn(struct shard *s)
{
    serve_ready(s);
    post_batches(s, s->early, NULL); /* they promise nothing durable */
    if (s->srv->replica) {
        replica_end_turn(s); /* replies once the group holds the turn */
    } else if (!s->pipelined) {
        commit_turn(s); /* before any reply of the turn leaves */
        post_dposts(&s->dposts);
        post_batches(s, s->replies, s->events);
    } else if (commit_ready(s)) {
        start_commit(s);
    } /* else: the transaction stays open; committed when the sync returns, or when the window closes */
    s->st.turn++;
    rearm_timer(s);
    atomic_store_explicit(&s->res_unsaved, store_unsaved(&s->st), memory_order_relaxed);
    atomic_store_explicit(&s->res_late, s->st.reserves_late, memory_order_relaxed);
    atomic_store_explicit(&s->res_skipped, s->st.reserves_skipped, memory_order_relaxed);
}

/* ------------------------------------------------------------ replication
 *
 * A leader's shard (replica.h) proposes what its turns changed as one
 * entry when none is in flight, and runs on; the replies wait in fl_*
 * until the Raft thread's message says the entry committed. Its journal
 * transaction stays open over several entries and commits once the group
 * holds all of it, so the journal is always a committed prefix of the log. */

#define NOT_STORED "CLUSTERDOWN not stored: this node no longer leads its replication group; retry"

/* The turns not yet in a committed entry are dropped: their replies become
 * the error why, the transaction goes back to what the group holds
 * (replica_rollback), and memory is rebuilt from it. */
static void replica_abandon(struct shard *s, int rc, const char *why)
{
    if (rc != -EAGAIN)
        log_warn("shard %d: %s", s->id, why[0] ? why : journal_error(s->st.jr));
    EXT_EACH(end_turn, s, false);
    replica_rollback(s->srv->replica, s->id, s->st.jr);
    fail_turn(s, rc, why);
}

/* The end of a turn: with no entry in flight, what the turns changed is
 * proposed and their replies wait for it; with nothing left to propose
 * (everything is in committed entries) the journal commits. */
static void replica_end_turn(struct shard *s)
{
    if (s->rep_busy)
        return; /* the replies wait in s->replies: proposed when the entry in flight settles */
    struct replica *r = s->srv->replica;
    struct journal *jr = s->st.jr;
    bool txn = jr && journal_in_txn(jr);
    char why[400] = "";
    int rc = s->st.turn_err ? s->st.turn_err : !txn ? 1 : replica_propose(r, s->id, jr, why, sizeof why);
    s->st.turn_err = 0;
    if (rc < 0) {
        replica_abandon(s, rc, why);
    } else {
        EXT_EACH(end_turn, s, true);
        if (rc == 0) {
            hold_batches(s);
            s->rep_busy = true;
            s->rep_hold = replica_hold(r, s->id);
            return;
        }
        if (txn) {
            replica_commit(r, s->id, jr);
            s->commits++;
        }
    }
    post_dposts(&s->dposts);
    post_batches(s, s->replies, s->events);
}

/* The entry in flight settled (the Raft thread's message woke the shard).
 * Committed: its replies go, and under replica_hold the journal commits
 * now, before any new turn. Lost (leadership lost): its replies say
 * "outcome unknown", those of the turns since "not stored", and the
 * transaction goes back to what the group holds. */
static void replica_settle(struct shard *s)
{
    char why[400];
    int rc = replica_poll(s->srv->replica, s->id, why, sizeof why);
    if (rc > 0)
        return;
    s->rep_busy = false;
    if (rc < 0) {
        log_warn("shard %d: %s", s->id, why);
        replies_become(s, s->fl_replies, why);
        free_batches(s->fl_events, s->srv->nio);
        drop_dposts(&s->fl_dposts);
    }
    post_dposts(&s->fl_dposts);
    post_batches(s, s->fl_replies, s->fl_events);
    if (rc < 0)
        replica_abandon(s, -EAGAIN, NOT_STORED);
    if (rc < 0 || s->rep_hold) {
        s->rep_hold = false;
        replica_end_turn(s);
    }
}

/* Before a turn: an entry in flight may have settled. Under replica_hold
 * no turn starts: what arrives waits in rep_held (true), and runs first
 * in the turn after the journal committed. */
static bool replica_held(struct shard *s, struct msg **list)
{
    if (!s->srv->replica)
        return false;
    if (s->rep_busy)
        replica_settle(s);
    if (s->rep_hold) {
        if (s->rep_held_tail)
            s->rep_held_tail->next = *list;
        else
            s->rep_held = *list;
        while (*list) {
            s->rep_held_tail = *list;
            *list = (*list)->next;
        }
        return true;
    }
    if (s->rep_held) {
        s->rep_held_tail->next = *list;
        *list = s->rep_held;
        s->rep_held = s->rep_held_tail = NULL;
    }
    return false;
}

/* Replication: does this node lead the group? A shard that sees the role
 * change to leader rebuilds its memory from the journal, which the log
 * kept warm (the promotion time is logged). */
static bool replica_gate(struct shard *s)
{
    struct replica *r = s->srv->replica;
    if (!r)
        return true;
    /* The role first: a leader's barrier follows every earlier entry, so
     * once the role says leader they are all in the queue applied here. */
    uint64_t e;
    bool lead = replica_role_epoch(r, &e) == REPLICA_LEADER;
    if (s->rep_busy)
        return lead; /* entries of others wait until this shard's own settles */
    if (s->st.jr && journal_in_txn(s->st.jr) && (!lead || e != s->rep_epoch || replica_pending(r, s->id)))
        replica_abandon(s, -EAGAIN, NOT_STORED); /* turns not proposed yet: leadership moved */
    int applied = replica_apply_pending(r, s->id, s->st.jr);
    replica_snap_turn(r, s->id, s->st.jr);
    if ((e != s->rep_epoch || applied > 0) && lead) {
        int64_t t0 = clock_mono_us();
        shard_reload(s);
        log_info("shard %d: %s: %zu job(s) rebuilt from the replicated journal in %.1f ms", s->id,
                 applied > 0 ? "a turn given up as outcome unknown committed after all" : "promoted",
                 (size_t)s->st.jobs.n, (double)(clock_mono_us() - t0) / 1000.0);
    }
    s->rep_epoch = e;
    return lead;
}

/* Does this client command need the leader? Writes, blocking commands,
 * transactions and commands on keys do; key-less reads (INFO, DBSIZE,
 * SCAN, QUEUE.LIST) answer from this node's memory. */
static bool needs_leader(const struct msg *m)
{
    return m->conn && ((m->cmd->flags & (CMD_WRITE | CMD_BLOCKING)) || m->cmd->first_key > 0 || m->nsubs > 0);
}

/* A client's command on a node that does not lead: -MOVED to the leader,
 * or -CLUSTERDOWN during an election. */
static void replica_redirect(struct shard *s, struct msg *m)
{
    char text[300];
    int slot = m->req.argc > 1 ? slot_of(m->req.argv[1], m->req.len[1]) : 0;
    replica_refusal(s->srv->replica, slot, text, sizeof text);
    resp_add_error(&m->out, text);
    shard_reply(s, m);
}

/* A write on a fenced shard: the error (a note between shards is dropped:
 * it stays in its sender's outbox). */
static void fence_refuse(struct shard *s, struct msg *m)
{
    if (m->note) {
        msg_free(m);
        return;
    }
    resp_add_error(&m->out, s->fence_why);
    shard_reply(s, m);
}

static void shard_drain(void *arg, struct msg *list)
{
    struct shard *s = arg;
    if (replica_held(s, &list))
        return; /* the journal commits first */
    bool serve = replica_gate(s);
    while (list) {
        struct msg *m = list;
        list = m->next;
        m->next = NULL;
        switch (m->type) {
        case MSG_CMD:
            s->commands++;
            if (!serve && needs_leader(m))
                replica_redirect(s, m);
            else if (s->fenced && (m->note || fence_refuses(m)))
                fence_refuse(s, m);
            else
                m->cmd->shard(s, m);
            break;
        case MSG_CANCEL:
            handle_cancel(s, m);
            break;
        case MSG_RETURN:
            if (serve && !s->fenced)
                handle_return(s, m);
            else
                msg_free(m); /* the leader's lease returns it */
            break;
        case MSG_SYNCED:
            handle_synced(s, m);
            break;
        case MSG_GATHERED:
            handle_gathered(s, m);
            break;
        case MSG_STOP:
            s->st.stopping = true;
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

/* ---------------------------------------------------------------- backup */

#define BACKUP_STEP_PAGES 1024 /* 4 MiB of 4 KiB pages per step */

static void backup_answer(struct shard *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void backup_answer(struct shard *s, const char *fmt, ...)
{
    struct msg *m = s->backup_msg;
    if (fmt) {
        char text[1200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        resp_buf_printf(&m->out, "%s", text);
    }
    m->keys = (long long)s->st.jobs.n;
    journal_backup_end(s->backup);
    s->backup = NULL;
    paylog_backup_end(s->pl_backup);
    s->pl_backup = NULL;
    if (s->pl)
        paylog_pin(s->pl, false);
    s->backup_msg = NULL;
    shard_reply(s, m);
}

/* After the journal's copy: the payload segments as they were when it
 * completed (its rows point only into what they held then). */
static int backup_payloads(struct shard *s)
{
    int rc = 0;
    if (s->pl && !s->pl_backup) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", s->backup_path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        rc = paylog_backup_start(s->pl, dir, &s->pl_backup);
    }
    if (rc == 0 && s->pl_backup)
        rc = paylog_backup_step(s->pl_backup, (size_t)BACKUP_STEP_PAGES * 4096);
    if (rc < 0)
        backup_answer(s, "shard %d: %s", s->id, paylog_error(s->pl));
    return rc;
}

static void backup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct shard *s = arg;
    if (!s->backup)
        return;
    int rc = s->pl_backup ? 0 : journal_backup_step(s->backup, BACKUP_STEP_PAGES);
    if (rc > 0) {
        event_active(s->backup_ev, 0, 0); /* after the turns that are waiting */
        return;
    }
    if (rc == 0 && !s->pl_backup && rename(s->backup_tmp, s->backup_path) < 0)
        rc = -errno;
    if (rc == 0 && !s->pl_backup)
        rc = fsio_sync_dir(s->backup_path, 0);
    if (rc == 0 && (rc = backup_payloads(s)) != 0) {
        if (rc > 0)
            event_active(s->backup_ev, 0, 0);
        else
            shard_end_turn(s); /* posts the answer */
        return;
    }
    if (rc < 0)
        backup_answer(s, "shard %d: %s", s->id, rc == -EIO || rc == -ENOSPC || !s->st.jr ? strerror(-rc)
                                                                                       : journal_error(s->st.jr));
    else
        backup_answer(s, NULL);
    shard_end_turn(s); /* posts the answer */
}

void shard_backup_start(struct shard *s, struct msg *m, const char *dir)
{
    if (s->backup) {
        resp_buf_printf(&m->out, "shard %d: a backup is already running (wait for it to finish)", s->id);
        shard_reply(s, m);
        return;
    }
    s->backup_msg = m;
    snprintf(s->backup_path, sizeof s->backup_path, "%s/shard-%d.db", dir, s->id);
    snprintf(s->backup_tmp, sizeof s->backup_tmp, "%s/shard-%d.db.tmp", dir, s->id);
    if (access(s->backup_path, F_OK) == 0) {
        backup_answer(s, "%s already exists: back up into a new directory", s->backup_path);
        return;
    }
    unlink(s->backup_tmp); /* left by a backup cut short */
    int rc = s->st.jr ? journal_backup_start(s->st.jr, s->backup_tmp, &s->backup) : -EINVAL;
    if (rc < 0) {
        backup_answer(s, "shard %d: %s", s->id, s->st.jr ? journal_error(s->st.jr) : "no journal");
        return;
    }
    if (s->pl)
        paylog_pin(s->pl, true); /* no segment goes until its copy is taken */
    if (!s->backup_ev)
        s->backup_ev = event_new(s->base, -1, 0, backup_cb, s);
    event_active(s->backup_ev, 0, 0);
}

/* ------------------------------------------------------------- lifecycle */

int shard_init(struct shard *s, struct server *srv, int id)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->srv = srv;
    s->mark_fd = -1;
    store_init(&s->st, id, srv->cfg.payload, srv->cfg.payload_memory / (srv->nshards ? srv->nshards : 1),
               0x9E3779B97F4A7C15ULL ^ ((uint64_t)clock_mono_us() << 8) ^ (uint64_t)id);
    s->st.emit = emit_event;
    s->st.touch = touch_queue;
    s->st.emit_arg = s;
    s->st.finished = ext_job_finished;
    s->st.finished_arg = s;
    struct ks_sink sink = { s, ks_txn, ks_result };
    keyspace_init(&s->ks, &sink);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!s->base)
        return -ENOMEM;
    s->timer_ev = evtimer_new(s->base, timer_cb, s);
    s->ckpt_ev = event_new(s->base, -1, EV_PERSIST, checkpoint_cb, s);
    s->compact_ev = evtimer_new(s->base, compact_cb, s);
    struct timeval second = { 1, 0 };
    if (s->ckpt_ev)
        event_add(s->ckpt_ev, &second);
    s->replies = calloc((size_t)srv->nio + 1, sizeof *s->replies); /* + the main thread */
    s->early = calloc((size_t)srv->nio + 1, sizeof *s->early);
    s->fl_replies = calloc((size_t)srv->nio + 1, sizeof *s->fl_replies);
    s->events = calloc((size_t)srv->nio, sizeof *s->events);
    s->fl_events = calloc((size_t)srv->nio, sizeof *s->fl_events);
    if (!s->timer_ev || !s->replies || !s->events || !s->early || !s->fl_replies || !s->fl_events)
        return -ENOMEM;
    int rc = inbox_init(&s->inbox, s->base, shard_drain, s);
    if (rc == 0) {
        inbox_set_home(&s->inbox, id + 1);
        ctx_register(srv, ctx_shard(srv, id), &s->inbox);
    }
    return rc;
}

/* ------------------------------------------------------------- recovery */

static int check_shard_count(struct shard *s)
{
    char have[32], want[32];
    snprintf(want, sizeof want, "%d", s->srv->nshards);
    int rc = journal_meta_get(s->st.jr, "shards", have, sizeof have);
    if (rc == 0 && strcmp(have, want) != 0) {
        log_error("data directory %s was created with %s shards, and spoold was started with --shards %s: "
                  "start it with --shards %s (queues are placed on shards by name; another count would lose track of them)",
                  s->srv->cfg.data_dir, have, want, have);
        return -EINVAL;
    }
    if (rc == -ENOENT) {
        if ((rc = journal_begin(s->st.jr)) == 0 && (rc = journal_meta_put(s->st.jr, "shards", want)) == 0)
            rc = journal_commit(s->st.jr);
        if (rc < 0)
            log_error("shard %d: cannot record the shard count: %s", s->id, journal_error(s->st.jr));
    }
    return rc;
}

/* The file must belong to this data directory and be shard k of it. A
 * file without identity (new, or from before manifests) is given one. */
static int check_identity(struct shard *s)
{
    const char *want = s->srv->data_id;
    char id[64], k[32], want_k[32];
    snprintf(want_k, sizeof want_k, "%d", s->id);
    int a = journal_meta_get(s->st.jr, "dir_id", id, sizeof id);
    int b = journal_meta_get(s->st.jr, "shard", k, sizeof k);
    if (a == 0 && b == 0 && !strcmp(id, want) && !strcmp(k, want_k))
        return 0;
    if ((a < 0 && a != -ENOENT) || (b < 0 && b != -ENOENT)) {
        log_error("shard %d: %s", s->id, journal_error(s->st.jr));
        return a < 0 ? a : b;
    }
    if (a == 0 || b == 0) {
        const char *dir = s->srv->cfg.data_dir;
        if (!s->srv->cfg.recover) {
            log_error("%s/shard-%d.db belongs to another data directory or shard (it is shard %s of directory %s; this "
                      "is shard %d of %s, see MANIFEST): put this directory's own shard-%d.db back (restore it from a "
                      "backup), or start with --recover to adopt the file as it is", dir, s->id, b == 0 ? k : "?",
                      a == 0 ? id : "?", s->id, want, s->id);
            return -EINVAL;
        }
        log_warn("--recover: adopting %s/shard-%d.db, which was shard %s of directory %s, as shard %d of this one",
                 dir, s->id, b == 0 ? k : "?", a == 0 ? id : "?", s->id);
    }
    int rc = journal_begin(s->st.jr);
    if (rc == 0 && (rc = journal_meta_put(s->st.jr, "dir_id", want)) == 0 &&
        (rc = journal_meta_put(s->st.jr, "shard", want_k)) == 0)
        rc = journal_commit(s->st.jr);
    if (rc < 0) {
        log_error("shard %d: cannot record its identity: %s", s->id, journal_error(s->st.jr));
        journal_rollback(s->st.jr);
    }
    return rc;
}

/* The journal must hold every commit its mark recorded (datadir.h). */
static int check_commits(struct shard *s, const struct mark *mk)
{
    int64_t have = journal_commits(s->st.jr);
    const char *dir = s->srv->cfg.data_dir;
    if (have >= mk->commits)
        return 0;
    int64_t lost = mk->commits - have, now = (int64_t)s->st.jobs.n;
    int64_t missing = mk->jobs > now ? mk->jobs - now : 0;
    if (!s->srv->cfg.recover) {
        log_error("%s/shard-%d.db holds %lld commit(s), but %lld were on disk before (shard-%d.mark): the file or "
                  "its WAL (shard-%d.db-wal) was removed, cut or damaged, and the last %lld commit(s) are lost; the "
                  "shard held %lld job(s) then and %lld can be read now. Restore the data directory from a backup "
                  "(docs/operations.md, Backups and damage), or start with --recover to accept the loss",
                  dir, s->id, (long long)have, (long long)mk->commits, s->id, s->id, (long long)lost,
                  (long long)mk->jobs, (long long)now);
        journal_keep_wal(s->st.jr); /* leave the evidence as it was found */
        return -EIO;
    }
    log_warn("--recover: shard %d accepts the loss of %lld commit(s): %lld job(s) could not be read (it held %lld "
             "at its last commit mark, %lld were loaded)%s", s->id, (long long)lost, (long long)missing,
             (long long)mk->jobs, (long long)now,
             now > mk->jobs ? "; some acks or deletes were lost too, so those jobs will run again" : "");
    return 0;
}

struct misplaced {
    struct shard *s;
    struct queue *q;
};

static void find_misplaced(void *arg, struct queue *q)
{
    struct misplaced *mp = arg;
    if (!mp->q && !shard_owns(mp->s, q->name, q->namelen))
        mp->q = q;
}

static int check_placement(struct shard *s)
{
    char have[64];
    int rc = journal_meta_get(s->st.jr, "placement", have, sizeof have);
    if (rc == 0 && strcmp(have, SLOT_PLACEMENT) == 0)
        return 0;
    if (rc == 0) {
        log_error("data directory %s places keys by '%s', which this spoold does not know (it places them by '%s'): "
                  "use the spoold that wrote it, or another --data-dir", s->srv->cfg.data_dir, have, SLOT_PLACEMENT);
        return -EINVAL;
    }
    if (rc != -ENOENT)
        return rc;
    struct misplaced mp = { s, NULL };
    qtable_each(&s->st.queues, find_misplaced, &mp);
    if (mp.q) {
        log_error("data directory %s was written by an older spoold that placed queues by a hash of the name; this "
                  "spoold places every key by its Redis Cluster slot (CRC16, {hash tags}), and queue '%s' would move "
                  "from shard %d to shard %d, which would change its job ids: drain that queue with the older spoold "
                  "first, or start this one with another --data-dir (docs/operations.md, 'Placement')",
                  s->srv->cfg.data_dir, mp.q->name, s->id, shard_of(mp.q->name, mp.q->namelen, s->srv->nshards));
        return -EINVAL;
    }
    if ((rc = journal_begin(s->st.jr)) == 0 && (rc = journal_meta_put(s->st.jr, "placement", SLOT_PLACEMENT)) == 0)
        rc = journal_commit(s->st.jr);
    if (rc < 0)
        log_error("shard %d: cannot record the placement rule: %s", s->id, journal_error(s->st.jr));
    else if (s->st.jobs.n)
        log_info("shard %d: data directory upgraded to slot placement in place (every queue stays on its shard)", s->id);
    return rc;
}

/* The start-up writes (shard count, placement, keys that expired while
 * down) were made with synchronous=FULL. From now on the configured mode;
 * --fsync always: COMMIT only writes the WAL (batch mode), and the syncer
 * syncs it after every commit before the replies leave. Then the commit
 * mark records what is on disk now. */
static int serve_mode(struct shard *s)
{
    int rc;
    /* In a replication group the Raft log, synced on a majority, is the
     * durability point: the journal is synced about once a second, and a
     * journal that lost its last commits gets them back from the log. */
    bool always = s->srv->cfg.fsync == FSYNC_ALWAYS;
    s->pipelined = always && !s->srv->cfg.replica_id;
    s->st.late_reserves = !s->srv->cfg.replica_id; /* store.c: a group gets every turn's rows as they are */
    if ((rc = journal_set_fsync(s->st.jr, always ? FSYNC_BATCH : s->srv->cfg.fsync)) < 0) {
        log_error("shard %d: %s", s->id, journal_error(s->st.jr));
        return rc;
    }
    if ((rc = datadir_mark_open(s->srv->cfg.data_dir, s->id, &s->mark_fd)) < 0) {
        log_error("cannot open %s/shard-%d.mark: %s (is --data-dir writable?)", s->srv->cfg.data_dir, s->id,
                  strerror(-rc));
        return rc;
    }
    s->has_mark = true;
    s->mark_commits = -1;
    write_mark(s);
    return 0;
}

/* The payload file: payloads of at least --payload-file-min bytes go
 * there, except in a replication group (a Raft snapshot carries the
 * journal alone, so there payloads stay in it). Opened in every mode, so
 * rows written with it are read whatever the setting now. */
static int open_paylog(struct shard *s)
{
    const struct config *c = &s->srv->cfg;
    int rc = paylog_open(&s->pl, c->data_dir, s->id, (uint64_t)c->payload_file_segment);
    if (rc < 0) {
        log_error("shard %d: %s", s->id, s->pl ? paylog_error(s->pl) : strerror(-rc));
        return rc;
    }
    int64_t min = c->replica_id ? 0 : c->payload_file_min > UINT32_MAX ? UINT32_MAX : c->payload_file_min;
    journal_set_paylog(s->st.jr, s->pl, (uint32_t)min);
    paylog_set_compact(s->pl, c->payload_file_compact);
    return 0;
}

/* After the load: the jobs whose payload record was torn are deleted
 * (durably: before this run's first append starts a new segment, the torn
 * one must stay the newest), then segments no row points into, once the
 * WAL that says so is synced (a kill -9 leaves commits in the page cache
 * that a power cut could still take). */
static int reclaim_at_start(struct shard *s)
{
    int rc = journal_drop_torn(s->st.jr);
    if (rc < 0) {
        log_error("shard %d: cannot delete the jobs whose payload was torn: %s", s->id, journal_error(s->st.jr));
        return rc;
    }
    if (journal_sync_force(s->st.jr) < 0) {
        log_warn("shard %d: %s (unused payload segments are kept until the next start)", s->id,
                 journal_error(s->st.jr));
        return 0;
    }
    paylog_committed(s->pl);
    paylog_durable(s->pl);
    return 0;
}

int shard_recover(struct shard *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/shard-%d.db", s->srv->cfg.data_dir, s->id);
    /* FSYNC_ALWAYS until the shard count is recorded: start-up writes are
     * durable in every mode (a power cut must not forget the shard count). */
    int rc = journal_open(&s->st.jr, path, FSYNC_ALWAYS);
    if (rc < 0) {
        log_error("cannot open the journal of shard %d: %s", s->id, s->st.jr ? journal_error(s->st.jr) : strerror(-rc));
        journal_close(s->st.jr);
        s->st.jr = NULL;
        return rc;
    }
    if ((rc = check_shard_count(s)) < 0 || (rc = check_identity(s)) < 0) {
        journal_keep_wal(s->st.jr);
        return rc;
    }
    if ((rc = open_paylog(s)) < 0)
        return rc;
    struct mark mk;
    bool has_mk = datadir_mark_read(s->srv->cfg.data_dir, s->id, &mk) == 0 && mk.shard == s->id &&
                  !strcmp(mk.id, s->srv->data_id);
    int64_t t0 = clock_mono_ms();
    size_t by_state[JOB_NSTATES];
    if ((rc = store_load(&s->st, by_state)) < 0) {
        log_error("cannot load the journal of shard %d: %s", s->id, journal_error(s->st.jr));
        return rc;
    }
    if (has_mk && (rc = check_commits(s, &mk)) < 0)
        return rc;
    if ((rc = reclaim_at_start(s)) < 0)
        return rc;
    if ((rc = check_placement(s)) < 0)
        return rc;
    if ((rc = keyspace_open(&s->ks, s->st.jr, clock_now_ms())) < 0) {
        log_error("cannot load the keys of shard %d: %s", s->id, journal_error(s->st.jr));
        return rc;
    }
    if ((rc = serve_mode(s)) < 0)
        return rc;
    size_t total = 0;
    for (int i = 0; i < JOB_NSTATES; i++)
        total += by_state[i];
    log_info("shard %d recovered %zu job(s) in %lld ms: %zu ready, %zu reserved, %zu delayed, %zu done, %zu dead (%s)",
             s->id, total, (long long)(clock_mono_ms() - t0), by_state[JOB_READY], by_state[JOB_RESERVED],
             by_state[JOB_DELAYED], by_state[JOB_DONE], by_state[JOB_DEAD], path);
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
            theap_add(&s->st.timers, &w->timer);
        }
    }
}

static void gc_queue(void *arg, struct queue *q)
{
    struct shard *s = arg;
    store_queue_gc(&s->st, q);
}

/* Memory := journal, after a failed commit. Waiters stay parked. */
static void shard_reload(struct shard *s)
{
    store_reset(&s->st);
    qtable_each(&s->st.queues, rearm_waiters_of, s);
    if (store_load(&s->st, NULL) < 0 || journal_drop_torn(s->st.jr) < 0)
        log_error("shard %d: reloading the journal failed too: %s; this shard now serves only what it could read",
                  s->id, journal_error(s->st.jr));
    store_unsaved_restore(&s->st); /* reservations of the turns before the failed commit stand */
    qtable_each(&s->st.queues, gc_queue, s);
    EXT_EACH(reload, s);
    if (keyspace_reload(&s->ks, clock_now_ms()) < 0)
        log_error("shard %d: reloading its keys failed too: %s", s->id, journal_error(s->st.jr));
    struct queue *q;
    for (size_t i = 0; i < s->st.queues.nb; i++)
        for (q = s->st.queues.b[i]; q; q = q->hnext)
            store_queue_changed(&s->st, q);
}

/* The loop has ended (MSG_STOP): the sync in flight finishes, what is
 * still open is committed and synced here, on this thread. Nobody waits
 * for the replies any more (the I/O threads are gone). */
static void free_pending(struct shard *s);

static void finish_pipeline(struct shard *s)
{
    syncer_stop(&s->sync);
    s->sync_busy = false;
    if (!shard_fenced(s))
        store_unsaved_write(&s->st);
    commit_turn(s);
    if (s->pl && paylog_sync(s->pl) < 0)
        log_error("shard %d: %s", s->id, paylog_error(s->pl));
    if (s->st.jr && journal_sync(s->st.jr) < 0) {
        if (!shard_fenced(s)) /* fenced: nothing was synced, the WAL stays for recovery */
            log_error("shard %d: %s", s->id, journal_error(s->st.jr));
    } else {
        write_mark(s);
    }
    free_pending(s);
}

/* At the stop: what still waits is dropped (nobody waits for the replies
 * any more). Notes for other shards stay in the outbox: resent at the
 * next start. */
static void free_pending(struct shard *s)
{
    drop_dposts(&s->dposts);
    drop_dposts(&s->fl_dposts);
    int n = s->srv->nio;
    free_batches(s->fl_replies, n + 1);
    free_batches(s->replies, n + 1);
    free_batches(s->early, n + 1);
    free_batches(s->fl_events, n);
    free_batches(s->events, n);
}

/* The loop has ended (MSG_STOP) with replication: the journal keeps what
 * the group committed (an entry still in flight is applied from the log at
 * the next start if it commits). */
static void replica_finish(struct shard *s)
{
    if (s->st.jr && journal_in_txn(s->st.jr))
        replica_rollback(s->srv->replica, s->id, s->st.jr);
    s->rep_busy = s->rep_hold = false;
    if (s->st.jr && journal_sync(s->st.jr) == 0)
        write_mark(s);
    while (s->rep_held) {
        struct msg *m = s->rep_held;
        s->rep_held = m->next;
        msg_free(m);
    }
    s->rep_held_tail = NULL;
    free_pending(s);
}

static void *shard_main(void *arg)
{
    struct shard *s = arg;
    char name[16];
    snprintf(name, sizeof name, "shard-%d", s->id);
    log_set_thread_name(name);
    inbox_enter(s->inbox.home); /* with --colocate yes, I/O thread <id>'s home too */
    rearm_timer(s);
    compact_arm(s); /* a segment left worth compacting by the last run starts now */
    event_base_dispatch(s->base);
    if (s->pipelined) {
        finish_pipeline(s);
    } else if (s->srv->replica) {
        replica_finish(s);
    } else if (!shard_fenced(s) && store_unsaved(&s->st)) {
        store_unsaved_write(&s->st); /* nobody waits for a reply: written before the journal closes */
        commit_turn(s);
        free_pending(s);
    }
    return NULL;
}

int shard_start(struct shard *s)
{
    if (s->pipelined && s->st.jr) {
        int rc = syncer_start(&s->sync, &s->inbox, s->id);
        if (rc < 0)
            return rc;
    } else {
        s->pipelined = false;
    }
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
    if (s->backup) { /* stopped while copying: the partial file goes */
        journal_backup_end(s->backup);
        s->backup = NULL;
        paylog_backup_end(s->pl_backup);
        s->pl_backup = NULL;
        msg_free(s->backup_msg);
    }
    s->st.stopping = true; /* no queue is collected while waiters are freed */
    if (s->st.queues.b)
        qtable_each(&s->st.queues, free_waiters_of, s);
    if (s->scripting)
        s->scripting_free(s->scripting);
    EXT_EACH(destroy, s); /* before the store closes the journal */
    if (s->srv->replica)
        replica_detach(s->srv->replica, s->id);
    keyspace_free(&s->ks); /* its statements go before the store closes the journal */
    if (s->pl && paylog_sync(s->pl) < 0) /* before the journal's last checkpoint */
        log_error("shard %d: %s", s->id, paylog_error(s->pl));
    store_free(&s->st);
    paylog_close(s->pl);
    s->pl = NULL;
    inbox_discard(&s->inbox);
    inbox_destroy(&s->inbox);
    if (s->timer_ev)
        event_free(s->timer_ev);
    if (s->ckpt_ev)
        event_free(s->ckpt_ev);
    if (s->base)
        event_base_free(s->base);
    if (s->backup_ev)
        event_free(s->backup_ev);
    if (s->compact_ev)
        event_free(s->compact_ev);
    if (s->has_mark)
        close(s->mark_fd);
    s->has_mark = false;
    free(s->replies);
    free(s->events);
    free(s->early);
    free(s->fl_replies);
    free(s->fl_events);
    free(s->dposts.v);
    free(s->fl_dposts.v);
}
