/*
 * batch.c - batches and the notes between shards that count them (see
 * batch.h for the protocol, docs/threads.md for how it crosses threads).
 *
 * Notes travel as MSG_CMD messages whose command is the internal
 * note_cmd (not in the command table: no client can send one); the note
 * itself rides in m->note. Durable notes (ADDED, DONE, DEAD, PUSH) are
 * outbox rows first; ACK, UNPEND and SYNC live only in memory.
 */
#include "batch.h"

#include "clock.h"
#include "command.h"
#include "dtimer.h"
#include "hash.h"
#include "inbox.h"
#include "jext.h"
#include "log.h"
#include "msg.h"
#include "events.h"
#include "queue.h"
#include "resp.h"
#include "context.h"
#include "shard.h"
#include "textfmt.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_BUCKETS 1024

enum note_kind {
    NOTE_ADDED = 1,   /* a job joined batch (durable) */
    NOTE_DONE = 2,    /* a job of batch finished done (durable) */
    NOTE_DEAD = 3,    /* … finished dead, or was deleted unfinished (durable) */
    NOTE_PUSH = 4,    /* 4 + enum batch_cb: push that callback job (durable) */
    NOTE_ACK = 10,    /* the receiver applied the source's notes up to seq */
    NOTE_UNPEND = 11, /* an admitted push did not add a job */
    NOTE_SYNC = 12,   /* the source has resent its whole outbox */
    NOTE_RESEND = 13, /* the receiver lost notes (a failed turn): send them again */
};

struct bnote {
    int kind;
    int src, dest;
    int64_t seq;
    uint64_t batch;
    bool resent;      /* sent again at start: counted in no pending push */
    size_t qlen, plen;
    char data[];      /* queue NUL payload NUL (PUSH only) */
};

struct batches {
    struct batch *b[BATCH_BUCKETS];
    size_t n;
    struct dtimer timer;          /* removal of finished batches */
    int64_t *hwm;                 /* per source shard: last note applied */
    bool *asked;                  /* per source shard: RESEND asked, not yet answered */
    int64_t *next_seq;            /* per destination shard: last seq given */
    bool *synced;                 /* per source shard: SYNC received */
    int nsynced;
    struct msg *out_head, *out_tail; /* posted after the turn commits */
    uint64_t *undo;               /* batches whose pending count an ADDED note of */
    size_t nundo, capundo;        /*   this turn lowered (raised again on rollback) */
};

static void on_note(struct shard *s, struct msg *m);
static int resend_to(struct shard *s, int dest, bool at_start);

static const struct command note_cmd = {
    "batch.note", 0, 0, 0, 0, 0, NULL, on_note, NULL, "internal: a note between shards about batches",
};

static const char *const state_names[] = { "open", "closed", "finished" };
static const char *const cb_names[] = { "success", "complete", "death" };

const char *batch_state_name(int state)
{
    return state >= 0 && state <= 2 ? state_names[state] : "?";
}

const char *batch_cb_name(int cb)
{
    return cb >= 0 && cb < CB_COUNT ? cb_names[cb] : "?";
}

/* --------------------------------------------------------------- notes */

static struct msg *note_msg(int kind, int src, int dest, int64_t seq, uint64_t batch, const char *q, size_t qlen,
                            const char *p, size_t plen)
{
    struct bnote *n = xmalloc(sizeof *n + qlen + plen + 2);
    n->kind = kind;
    n->src = src;
    n->dest = dest;
    n->seq = seq;
    n->batch = batch;
    n->resent = false;
    n->qlen = qlen;
    n->plen = plen;
    if (qlen)
        memcpy(n->data, q, qlen);
    n->data[qlen] = '\0';
    if (plen)
        memcpy(n->data + qlen + 1, p, plen);
    n->data[qlen + 1 + plen] = '\0';
    struct msg *m = msg_new(MSG_CMD);
    m->cmd = &note_cmd;
    m->note = n;
    return m;
}

static void post_now(struct shard *s, struct msg *m)
{
    inbox_post(ctx_inbox(s->srv, ctx_shard(s->srv, m->note->dest)), m);
}

/* Posted once this turn has committed (dropped if it rolls back). */
static void post_after_commit(struct shard *s, struct msg *m)
{
    struct batches *bs = s->batches;
    m->next = NULL;
    if (bs->out_tail)
        bs->out_tail->next = m;
    else
        bs->out_head = m;
    bs->out_tail = m;
}

/* A durable note: an outbox row in this turn's transaction, then the
 * message after the commit. */
static void send_note(struct shard *s, int dest, int kind, uint64_t batch, const char *q, size_t qlen,
                      const char *p, size_t plen)
{
    int64_t seq = ++s->batches->next_seq[dest];
    jext_write(s, "INSERT INTO batch_outbox (dest, seq, kind, batch, queue, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
               "iiiibb", (int64_t)dest, seq, (int64_t)kind, (int64_t)batch, q, qlen, p, plen);
    jext_write(s, "INSERT OR REPLACE INTO batch_seq (dest, seq) VALUES (?1, ?2)", "ii", (int64_t)dest, seq);
    post_after_commit(s, note_msg(kind, s->id, dest, seq, batch, q, qlen, p, plen));
}

/* -------------------------------------------------------------- table */

struct batch *batch_find(struct shard *s, uint64_t id)
{
    if (!s->batches)
        return NULL;
    for (struct batch *b = s->batches->b[id % BATCH_BUCKETS]; b; b = b->hnext)
        if (b->id == id)
            return b;
    return NULL;
}

static void link_batch(struct shard *s, struct batch *b)
{
    struct batch **head = &s->batches->b[b->id % BATCH_BUCKETS];
    b->hnext = *head;
    *head = b;
    s->batches->n++;
}

static void batch_free(struct batch *b)
{
    for (int i = 0; i < CB_COUNT; i++)
        free(b->cb[i]);
    free(b);
}

static void unlink_batch(struct shard *s, struct batch *b)
{
    for (struct batch **p = &s->batches->b[b->id % BATCH_BUCKETS]; *p; p = &(*p)->hnext) {
        if (*p == b) {
            *p = b->hnext;
            break;
        }
    }
    s->batches->n--;
    dtimer_remove(&s->batches->timer, &b->timer);
}

static void save(struct shard *s, struct batch *b)
{
    b->updated_at = clock_now_ms();
    jext_write(s, "INSERT OR REPLACE INTO batches (id, state, total, done, dead, fired, on_success, on_complete, "
                  "on_death, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
               "iiiiiibbbii", (int64_t)b->id, (int64_t)b->state, b->total, b->done, b->dead, (int64_t)b->fired,
               b->cb[0], b->cblen[0], b->cb[1], b->cblen[1], b->cb[2], b->cblen[2], b->created_at, b->updated_at);
}

struct batch *batch_new(struct shard *s, const char *const cb_q[CB_COUNT], const size_t cb_qlen[CB_COUNT],
                        const char *const cb_p[CB_COUNT], const size_t cb_plen[CB_COUNT])
{
    struct batch *b = xcalloc(1, sizeof *b);
    tnode_init(&b->timer, 0);
    b->id = store_new_id(&s->st);
    b->created_at = clock_now_ms();
    for (int i = 0; i < CB_COUNT; i++) {
        if (!cb_q[i])
            continue;
        b->cblen[i] = cb_qlen[i] + 1 + cb_plen[i];
        b->cb[i] = xmalloc(b->cblen[i] + 1);
        memcpy(b->cb[i], cb_q[i], cb_qlen[i]);
        b->cb[i][cb_qlen[i]] = '\0';
        memcpy(b->cb[i] + cb_qlen[i] + 1, cb_p[i], cb_plen[i]);
        b->cb[i][b->cblen[i]] = '\0';
    }
    link_batch(s, b);
    save(s, b);
    return b;
}

bool batch_synced(struct shard *s)
{
    return s->batches && s->batches->nsynced == s->srv->nshards;
}

/* ------------------------------------------------------------ callbacks */

static void fire(struct shard *s, struct batch *b, int cb)
{
    if (!b->cb[cb] || (b->fired & (1 << cb)))
        return;
    b->fired |= 1 << cb;
    const char *q = b->cb[cb];
    size_t qlen = strlen(q);
    const char *p = q + qlen + 1;
    size_t plen = b->cblen[cb] - qlen - 1;
    int dest = shard_of(q, qlen, s->srv->nshards);
    send_note(s, dest, NOTE_PUSH + cb, b->id, q, qlen, p, plen);
    char hex[JOB_ID_HEX + 1];
    job_id_format(b->id, hex);
    log_info("batch %s: %s callback to queue '%s' (%lld done, %lld dead of %lld)", hex, cb_names[cb], q,
             (long long)b->done, (long long)b->dead, (long long)b->total);
}

static void finish_later(struct shard *s, struct batch *b)
{
    dtimer_add(&s->batches->timer, &b->timer, b->updated_at + BATCH_KEEP_MS);
    dtimer_rearm(&s->batches->timer);
}

/* Fires the completion callbacks once every job has finished. */
static void evaluate(struct shard *s, struct batch *b)
{
    if (b->state != BATCH_CLOSED || b->pending > 0 || !batch_synced(s) || b->done + b->dead < b->total)
        return;
    b->state = BATCH_FINISHED;
    fire(s, b, CB_COMPLETE);
    if (b->dead == 0)
        fire(s, b, CB_SUCCESS);
    save(s, b);
    finish_later(s, b);
}

void batch_close(struct shard *s, struct batch *b)
{
    if (b->state != BATCH_OPEN)
        return;
    b->state = BATCH_CLOSED;
    save(s, b);
    evaluate(s, b);
}

/* ------------------------------------------------------------- adding */

void batch_admit(struct shard *s, struct msg *m, uint64_t id, int queue_shard)
{
    struct batch *b = batch_find(s, id);
    char hex[JOB_ID_HEX + 1];
    job_id_format(id, hex);
    if (!b || b->state != BATCH_OPEN) {
        if (!b)
            resp_buf_printf(&m->out, "-NOJOB no batch %s (it never existed, or it finished and was removed); "
                            "nothing was pushed\r\n", hex);
        else
            resp_buf_printf(&m->out, "-ERR batch %s is %s: jobs are added only while it is open (BATCH.NEW "
                            "makes another); nothing was pushed\r\n", hex, state_names[b->state]);
        shard_reply(s, m);
        return;
    }
    b->pending++;
    m->batch_admitted = true;
    inbox_post(ctx_inbox(s->srv, ctx_shard(s->srv, queue_shard)), m);
}

void batch_pushed(struct shard *s, uint64_t id, struct job *j)
{
    int home = job_id_shard(id);
    if (!j) {
        post_now(s, note_msg(NOTE_UNPEND, s->id, home, 0, id, NULL, 0, NULL, 0));
        return;
    }
    j->batch = id;
    jext_job_batch(s, j->id, id);
    send_note(s, home, NOTE_ADDED, id, NULL, 0, NULL, 0);
}

/* A job of a batch finished (the shard_ext hook). */
static void job_finished(struct shard *s, struct job *j, int how)
{
    if (!j->batch || !s->batches || how == SHARD_FINISHED_MOVED)
        return; /* a moved job counts where it finishes */
    uint64_t id = j->batch;
    j->batch = 0; /* counted once: a dead job retried later no longer counts */
    jext_job_batch(s, j->id, 0);
    send_note(s, job_id_shard(id), how == JOB_DONE ? NOTE_DONE : NOTE_DEAD, id, NULL, 0, NULL, 0);
}

/* -------------------------------------------------------- receiving notes */

static void push_callback(struct shard *s, const struct bnote *n)
{
    int cb = n->kind - NOTE_PUSH;
    const char *q = n->data, *p = n->data + n->qlen + 1;
    char key[80], hex[JOB_ID_HEX + 1];
    job_id_format(n->batch, hex);
    int klen = snprintf(key, sizeof key, "batch:%s:%s", hex, batch_cb_name(cb));
    struct queue *qq = store_queue(&s->st, q, n->qlen, true);
    if (queue_unique_find(qq, key, (size_t)klen)) {
        store_queue_gc(&s->st, qq);
        return; /* pushed already and not finished: never twice */
    }
    struct push_opts o = { 0 };
    o.retries = -1;
    o.left = true;
    o.unique = key;
    o.unique_len = (size_t)klen;
    char *payload = xmalloc(n->plen + 1);
    memcpy(payload, p, n->plen + 1);
    struct job *j = store_job_push(&s->st, qq, payload, n->plen, &o);
    resp_buf v;
    resp_buf_init(&v);
    resp_buf_printf(&v, "{\"id\":\"%s\",\"callback\":\"%s\"}", hex, batch_cb_name(cb));
    resp_buf_append(&v, "", 1);
    shard_publish(s, events_job_message_json(j, "batch", NULL, 0, "batch", v.data));
    resp_buf_free(&v);
}

static void apply_count(struct shard *s, const struct bnote *n)
{
    struct batch *b = batch_find(s, n->batch);
    if (!b) {
        char hex[JOB_ID_HEX + 1];
        job_id_format(n->batch, hex);
        log_warn("batch %s: a note from shard %d about a batch that is gone; ignored", hex, n->src);
        return;
    }
    if (n->kind == NOTE_ADDED) {
        b->total++;
        if (!n->resent && b->pending > 0) {
            b->pending--;
            struct batches *bs = s->batches;
            if (bs->nundo == bs->capundo) {
                bs->capundo = bs->capundo ? bs->capundo * 2 : 16;
                bs->undo = xrealloc(bs->undo, bs->capundo * sizeof *bs->undo);
            }
            bs->undo[bs->nundo++] = b->id;
        }
    } else if (n->kind == NOTE_DONE) {
        b->done++;
    } else {
        b->dead++;
        if (b->dead == 1)
            fire(s, b, CB_DEATH);
    }
    save(s, b);
    evaluate(s, b);
}

static void evaluate_all(struct shard *s)
{
    for (size_t i = 0; i < BATCH_BUCKETS; i++)
        for (struct batch *b = s->batches->b[i]; b; b = b->hnext)
            evaluate(s, b);
}

static void on_note(struct shard *s, struct msg *m)
{
    struct bnote *n = m->note;
    struct batches *bs = s->batches;
    if (!bs || n->src < 0 || n->src >= s->srv->nshards) {
        msg_free(m);
        return;
    }
    switch (n->kind) {
    case NOTE_ACK:
        jext_write(s, "DELETE FROM batch_outbox WHERE dest = ?1 AND seq <= ?2", "ii", (int64_t)n->src, n->seq);
        break;
    case NOTE_UNPEND: {
        struct batch *b = batch_find(s, n->batch);
        if (b && b->pending > 0) {
            b->pending--;
            evaluate(s, b);
        }
        break;
    }
    case NOTE_SYNC:
        if (!bs->synced[n->src]) {
            bs->synced[n->src] = true;
            if (++bs->nsynced == s->srv->nshards)
                evaluate_all(s);
        }
        break;
    case NOTE_RESEND:
        resend_to(s, n->src, false);
        break;
    default:
        if (n->seq > bs->hwm[n->src] + 1) {
            /* a note before it was lost with a failed turn here: it is
             * still in the source's outbox; ask for all of them again */
            if (!bs->asked[n->src]) {
                bs->asked[n->src] = true;
                post_now(s, note_msg(NOTE_RESEND, s->id, n->src, 0, 0, NULL, 0, NULL, 0));
            }
            break;
        }
        if (n->seq == bs->hwm[n->src] + 1) {
            bs->asked[n->src] = false;
            if (n->kind >= NOTE_PUSH && n->kind < NOTE_PUSH + CB_COUNT)
                push_callback(s, n);
            else
                apply_count(s, n);
            bs->hwm[n->src] = n->seq;
            jext_write(s, "INSERT OR REPLACE INTO batch_inbox (src, seq) VALUES (?1, ?2)", "ii", (int64_t)n->src,
                       n->seq);
        }
        post_after_commit(s, note_msg(NOTE_ACK, s->id, n->src, n->seq, 0, NULL, 0, NULL, 0));
    }
    msg_free(m);
}

/* --------------------------------------------------------------- hooks */

static void end_turn(struct shard *s, bool ok)
{
    struct batches *bs = s->batches;
    if (!bs)
        return;
    struct msg *m = bs->out_head;
    bs->out_head = bs->out_tail = NULL;
    for (size_t i = 0; !ok && i < bs->nundo; i++) {
        struct batch *b = batch_find(s, bs->undo[i]);
        if (b)
            b->pending++; /* that ADDED note was rolled back: it comes again */
    }
    bs->nundo = 0;
    while (m) {
        struct msg *next = m->next;
        m->next = NULL;
        if (ok) {
            shard_post_durable(s, ctx_inbox(s->srv, ctx_shard(s->srv, m->note->dest)), m);
        } else {
            /* rolled back: the rows are gone, and a push that was to add a
             * job did not; its home shard stops waiting for it */
            if (m->note->kind == NOTE_ADDED)
                post_now(s, note_msg(NOTE_UNPEND, s->id, m->note->dest, 0, m->note->batch, NULL, 0, NULL, 0));
            msg_free(m);
        }
        m = next;
    }
}

static void remove_finished(void *arg, struct tnode *t)
{
    struct shard *s = arg;
    struct batch *b = (struct batch *)t;
    unlink_batch(s, b);
    jext_write(s, "DELETE FROM batches WHERE id = ?1", "i", (int64_t)b->id);
    batch_free(b);
}

static void after(void *arg)
{
    shard_tick(arg);
}

static void drop_all(struct shard *s)
{
    for (size_t i = 0; i < BATCH_BUCKETS; i++) {
        while (s->batches->b[i]) {
            struct batch *b = s->batches->b[i];
            unlink_batch(s, b);
            batch_free(b);
        }
    }
}

static int load_batches(struct shard *s)
{
    sqlite3_stmt *st = jext_read(s, "SELECT id, state, total, done, dead, fired, on_success, on_complete, on_death, "
                                    "created_at, updated_at FROM batches", "");
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct batch *b = xcalloc(1, sizeof *b);
        tnode_init(&b->timer, 0);
        b->id = (uint64_t)sqlite3_column_int64(st, 0);
        store_id_seen(&s->st, b->id); /* batch ids come from the job id generator */
        b->state = (int)sqlite3_column_int64(st, 1);
        b->total = sqlite3_column_int64(st, 2);
        b->done = sqlite3_column_int64(st, 3);
        b->dead = sqlite3_column_int64(st, 4);
        b->fired = (int)sqlite3_column_int64(st, 5);
        for (int i = 0; i < CB_COUNT; i++)
            b->cb[i] = jext_col_dup(st, 6 + i, &b->cblen[i]);
        b->created_at = sqlite3_column_int64(st, 9);
        b->updated_at = sqlite3_column_int64(st, 10);
        link_batch(s, b);
        if (b->state == BATCH_FINISHED)
            dtimer_add(&s->batches->timer, &b->timer, b->updated_at + BATCH_KEEP_MS);
    }
    sqlite3_finalize(st);
    dtimer_rearm(&s->batches->timer);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int load_inbox(struct shard *s)
{
    sqlite3_stmt *st = jext_read(s, "SELECT src, seq FROM batch_inbox", "");
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t src = sqlite3_column_int64(st, 0);
        if (src >= 0 && src < s->srv->nshards)
            s->batches->hwm[src] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Posts the outbox again, in seq order: the rows for dest (every row when
 * dest < 0). at_start: notes from before a restart (no pending push counts
 * them). */
static int resend_to(struct shard *s, int dest, bool at_start)
{
    sqlite3_stmt *st = dest < 0 ? jext_read(s, "SELECT seq, dest, kind, batch, queue, payload FROM batch_outbox "
                                               "ORDER BY dest, seq", "")
                                : jext_read(s, "SELECT seq, dest, kind, batch, queue, payload FROM batch_outbox "
                                               "WHERE dest = ?1 ORDER BY seq", "i", (int64_t)dest);
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int to = (int)sqlite3_column_int64(st, 1);
        if (to < 0 || to >= s->srv->nshards)
            continue;
        size_t qlen = 0, plen = 0;
        char *q = jext_col_dup(st, 4, &qlen), *p = jext_col_dup(st, 5, &plen);
        struct msg *m = note_msg((int)sqlite3_column_int64(st, 2), s->id, to, sqlite3_column_int64(st, 0),
                                 (uint64_t)sqlite3_column_int64(st, 3), q, qlen, p, plen);
        m->note->resent = at_start;
        free(q);
        free(p);
        post_now(s, m);
        n++;
    }
    sqlite3_finalize(st);
    if (n)
        log_info("shard %d: %d batch note(s) sent again%s", s->id, n, at_start ? " after the restart" : " on request");
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int load_seqs(struct shard *s)
{
    memset(s->batches->next_seq, 0, (size_t)s->srv->nshards * sizeof *s->batches->next_seq);
    sqlite3_stmt *st = jext_read(s, "SELECT dest, seq FROM batch_seq", "");
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t dest = sqlite3_column_int64(st, 0);
        if (dest >= 0 && dest < s->srv->nshards)
            s->batches->next_seq[dest] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int batch_recover(struct shard *s)
{
    if (!s->batches) {
        struct batches *bs = xcalloc(1, sizeof *bs);
        bs->hwm = xcalloc((size_t)s->srv->nshards, sizeof *bs->hwm);
        bs->asked = xcalloc((size_t)s->srv->nshards, sizeof *bs->asked);
        bs->next_seq = xcalloc((size_t)s->srv->nshards, sizeof *bs->next_seq);
        bs->synced = xcalloc((size_t)s->srv->nshards, sizeof *bs->synced);
        dtimer_init(&bs->timer, s->base, remove_finished, after, s);
        s->batches = bs;
    }
    int rc;
    if ((rc = load_batches(s)) < 0 || (rc = load_inbox(s)) < 0 || (rc = load_seqs(s)) < 0 ||
        (rc = resend_to(s, -1, true)) < 0)
        return rc;
    for (int k = 0; k < s->srv->nshards; k++)
        post_now(s, note_msg(NOTE_SYNC, s->id, k, 0, 0, NULL, 0, NULL, 0));
    return 0;
}

/* After a failed commit: counts and seqs as the journal has them; what is
 * in flight (pending) stays. */
static void batch_reload(struct shard *s)
{
    if (!s->batches)
        return;
    size_t n = s->batches->n, k = 0;
    struct { uint64_t id; int64_t pending; } *keep = xcalloc(n + 1, sizeof *keep);
    for (size_t i = 0; i < BATCH_BUCKETS; i++)
        for (struct batch *b = s->batches->b[i]; b; b = b->hnext)
            if (b->pending && k < n)
                keep[k].id = b->id, keep[k++].pending = b->pending;
    drop_all(s);
    memset(s->batches->hwm, 0, (size_t)s->srv->nshards * sizeof *s->batches->hwm);
    if (load_batches(s) < 0 || load_inbox(s) < 0 || load_seqs(s) < 0)
        log_error("shard %d: reloading the batches failed", s->id);
    for (size_t i = 0; i < k; i++) {
        struct batch *b = batch_find(s, keep[i].id);
        if (b)
            b->pending = keep[i].pending;
    }
    free(keep);
    /* notes applied in the failed turn are gone: every shard sends what it
     * has for us again (duplicates are recognised by their seq) */
    for (int src = 0; src < s->srv->nshards; src++) {
        s->batches->asked[src] = true;
        post_now(s, note_msg(NOTE_RESEND, s->id, src, 0, 0, NULL, 0, NULL, 0));
    }
}

static void batch_destroy(struct shard *s)
{
    struct batches *bs = s->batches;
    if (!bs)
        return;
    drop_all(s);
    while (bs->out_head) {
        struct msg *m = bs->out_head;
        bs->out_head = m->next;
        msg_free(m);
    }
    dtimer_free(&bs->timer);
    free(bs->hwm);
    free(bs->asked);
    free(bs->next_seq);
    free(bs->undo);
    free(bs->synced);
    free(bs);
    s->batches = NULL;
}

const struct shard_ext batch_ext = {
    .recover = batch_recover,
    .job_finished = job_finished,
    .end_turn = end_turn,
    .reload = batch_reload,
    .destroy = batch_destroy,
};
