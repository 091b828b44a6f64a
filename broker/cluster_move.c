/*
 * cluster_move.c - a slot's contents as one blob: export (park), import,
 * drop, restore (see cluster_move.h).
 */
#include "cluster_move.h"

#include "args.h"
#include "clock.h"
#include "context.h"
#include "jext.h"
#include "keyspace.h"
#include "msg.h"
#include "queue.h"
#include "rate.h"
#include "schedule.h"
#include "shard.h"
#include "slot.h"
#include "store.h"
#include "xalloc.h"
#include "zset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE_LEN 0xffffffffu
#define HEADER_LEN (sizeof SLOTBLOB_MAGIC - 1 + 8)
#define TRYAGAIN_MOVED "TRYAGAIN the slot of this queue is being moved to another group; try again shortly"

/* ------------------------------------------------------------- encoding */

static void put_n(resp_buf *b, uint64_t v, int bytes)
{
    unsigned char c[8];
    for (int i = 0; i < bytes; i++)
        c[i] = (unsigned char)(v >> (8 * i));
    resp_buf_append(b, c, (size_t)bytes);
}

static void put_str(resp_buf *b, const void *p, size_t n)
{
    if (!p) {
        put_n(b, NONE_LEN, 4);
        return;
    }
    put_n(b, n, 4);
    resp_buf_append(b, p, n);
}

static void put_cstr(resp_buf *b, const char *p)
{
    put_str(b, p, p ? strlen(p) : 0);
}

static void put_f64(resp_buf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put_n(b, u, 8);
}

/* ------------------------------------------------------------- decoding */

struct rd {
    const unsigned char *p;
    size_t n, off;
    bool bad;
    int slot;                  /* the slot the blob is for */
    const struct job *clash;   /* a job here whose id a job of the blob has */
};

static uint64_t get_n(struct rd *r, int bytes)
{
    if (r->bad || r->n - r->off < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

/* A byte string of the blob (not NUL-terminated), NULL for none. */
static const char *get_str(struct rd *r, size_t *len)
{
    uint64_t n = get_n(r, 4);
    *len = 0;
    if (r->bad || n == NONE_LEN)
        return NULL;
    if (r->n - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const char *p = (const char *)r->p + r->off;
    r->off += n;
    *len = n;
    return p;
}

static double get_f64(struct rd *r)
{
    uint64_t u = get_n(r, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static char *dup_str(const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------ what a slot holds */

struct slotset {
    struct queue **qs;
    size_t nq, capq;
    struct kv **keys;
    size_t nk, capk;
    struct sched **scs;
    size_t ns, caps;
    int slot;
};

#define PUSH(arr, n, cap, v)                                        \
    do {                                                            \
        if ((n) == (cap)) {                                         \
            (cap) = (cap) ? (cap) * 2 : 16;                         \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));         \
        }                                                           \
        (arr)[(n)++] = (v);                                         \
    } while (0)

static void find_queue(void *arg, struct queue *q)
{
    struct slotset *x = arg;
    if (slot_of(q->name, q->namelen) == x->slot)
        PUSH(x->qs, x->nq, x->capq, q);
}

static void find_key(void *arg, struct dict_entry *e)
{
    struct slotset *x = arg;
    if (slot_of(e->key, e->klen) == x->slot)
        PUSH(x->keys, x->nk, x->capk, (struct kv *)e->val);
}

static void find_sched(void *arg, struct sched *sc)
{
    struct slotset *x = arg;
    if (slot_of(sc->queue, sc->qlen) == x->slot)
        PUSH(x->scs, x->ns, x->caps, sc);
}

static void slotset_find(struct shard *s, int slot, struct slotset *x)
{
    memset(x, 0, sizeof *x);
    x->slot = slot;
    qtable_each(&s->st.queues, find_queue, x);
    dict_each(&s->ks.keys, find_key, x);
    schedule_each(s, NULL, 0, find_sched, x);
}

static void slotset_free(struct slotset *x)
{
    free(x->qs);
    free(x->keys);
    free(x->scs);
}

/* Takes everything of x out of the shard's live state, journaled; the
 * clients parked on its queues are told to try again. */
static void slotset_clear(struct shard *s, struct slotset *x)
{
    /* A waiter on several queues of the slot unlinks from all of them:
     * none may be freed under us while the others' waiters are refused. */
    bool *was = xcalloc(x->nq ? x->nq : 1, sizeof *was);
    for (size_t i = 0; i < x->nq; i++)
        was[i] = x->qs[i]->in_ready_list, x->qs[i]->in_ready_list = true;
    for (size_t i = 0; i < x->nq; i++)
        shard_refuse_waiters(s, x->qs[i], TRYAGAIN_MOVED);
    for (size_t i = 0; i < x->nq; i++)
        x->qs[i]->in_ready_list = was[i];
    free(was);
    for (size_t i = 0; i < x->ns; i++)
        schedule_del(s, x->scs[i]->name, x->scs[i]->namelen);
    for (size_t i = 0; i < x->nk; i++)
        keyspace_delete(&s->ks, x->keys[i]);
    for (size_t i = 0; i < x->nq; i++) {
        struct queue *q = x->qs[i];
        for (int st = 0; st < JOB_NSTATES; st++) {
            struct job *j;
            while ((j = st == JOB_READY ? queue_ready_peek(q, false) : queue_list(q, st)->head))
                store_job_evict(&s->st, j);
        }
        theap_remove(&s->st.timers, &q->flow_timer);
        if (q->conf_custom || q->paused) {
            q->conf = s->st.defaults;
            q->paused = false;
            store_queue_saved(&s->st, q);
        }
        store_queue_gc(&s->st, q);
    }
}

/* ---------------------------------------------------------------- export */

/* One job; -1 when its payload cannot be read (nothing may be lost). */
static int put_job(struct shard *s, resp_buf *b, struct job *j)
{
    if (store_job_payload(&s->st, j) < 0 || (j->result_on_disk && jext_job_result_read(s, j) < 0))
        return -1;
    put_n(b, 'J', 1);
    put_str(b, j->q->name, j->q->namelen);
    put_n(b, j->id, 8);
    put_n(b, j->state, 1);
    put_n(b, (uint64_t)j->pos, 8);
    put_n(b, (uint64_t)(int64_t)j->priority, 8);
    put_n(b, j->attempt, 4);
    put_n(b, j->retries, 4);
    put_n(b, j->lease_ms, 4);
    put_n(b, j->token, 4);
    put_n(b, (uint64_t)j->run_at, 8);
    put_n(b, (uint64_t)j->lease_until, 8);
    put_n(b, (uint64_t)j->created_at, 8);
    put_n(b, (uint64_t)j->updated_at, 8);
    put_n(b, (uint64_t)j->expires_at, 8);
    put_n(b, j->batch, 8);
    put_str(b, j->payload ? j->payload : "", j->len);
    put_cstr(b, j->last_error);
    put_cstr(b, j->unique);
    put_str(b, j->group, j->grouplen);
    put_cstr(b, j->holder);
    put_cstr(b, j->history);
    put_str(b, j->result, j->result_len);
    put_cstr(b, j->progress);
    return 0;
}

#define NTOTALS 7

static uint64_t *totals_of(struct queue_stats *t, int i)
{
    uint64_t *f[NTOTALS] = { &t->pushed, &t->acked, &t->retried, &t->lease_expired, &t->buried, &t->popped,
                             &t->expired };
    return f[i];
}

/* A queue's totals (QUEUE.STATS) and its rate limiter's state, when it
 * has either: without them the target would count from zero, and let a
 * burst through the limit the source was holding back. */
static bool put_totals(resp_buf *b, struct queue *q)
{
    int64_t at[RATE_LOG_MAX];
    uint32_t n = rate_state_deliveries(&q->rate_lim, at, RATE_LOG_MAX);
    bool any = n || q->rate_lim.tat;
    for (int i = 0; i < NTOTALS; i++)
        any |= *totals_of(&q->stats, i) != 0;
    if (!any)
        return false;
    put_n(b, 'T', 1);
    put_str(b, q->name, q->namelen);
    for (int i = 0; i < NTOTALS; i++)
        put_n(b, *totals_of(&q->stats, i), 8);
    put_n(b, (uint64_t)q->rate_lim.tat, 8);
    put_n(b, n ? q->rate_lim.cap : 0, 4);
    put_n(b, n, 4);
    for (uint32_t i = 0; i < n; i++)
        put_n(b, (uint64_t)at[i], 8);
    return true;
}

/* A queue's settings (when it has any), its totals and limiter (when it
 * has any) and every job, in every state. */
static int put_queue(struct shard *s, resp_buf *b, struct queue *q, size_t *records)
{
    if (q->conf_custom || q->paused) {
        char conf[8192] = "";
        qconf_format(&q->conf, conf, sizeof conf);
        put_n(b, 'Q', 1);
        put_str(b, q->name, q->namelen);
        put_cstr(b, conf);
        put_n(b, q->paused, 1);
        ++*records;
    }
    *records += put_totals(b, q);
    for (struct job *j = queue_ready_first_served(q); j; j = queue_ready_next_served(q, j), ++*records)
        if (put_job(s, b, j) < 0)
            return -1;
    for (int st = 0; st < JOB_NSTATES; st++)
        for (struct job *j = st == JOB_READY ? NULL : queue_list(q, st)->head; j; j = j->next, ++*records)
            if (put_job(s, b, j) < 0)
                return -1;
    return 0;
}

static void put_sched(resp_buf *b, const struct sched *sc)
{
    put_n(b, 'S', 1);
    put_str(b, sc->name, sc->namelen);
    put_str(b, sc->queue, sc->qlen);
    put_cstr(b, sc->spec);
    put_cstr(b, sc->tz_name);
    put_str(b, sc->payload ? sc->payload : "", sc->plen);
    put_n(b, (uint64_t)(int64_t)sc->priority, 8);
    put_n(b, (uint64_t)sc->retries, 8);
    put_n(b, sc->unique, 1);
    put_n(b, (uint64_t)sc->catchup, 1);
    put_n(b, sc->paused, 1);
    put_n(b, (uint64_t)sc->next_at, 8);
    put_n(b, (uint64_t)sc->last_tick, 8);
    put_n(b, sc->last_job, 8);
    put_n(b, (uint64_t)sc->runs, 8);
    put_n(b, (uint64_t)sc->skipped, 8);
    put_n(b, (uint64_t)sc->created_at, 8);
}

static void put_key(resp_buf *b, const struct kv *kv)
{
    put_n(b, 'K', 1);
    put_str(b, kv->ent->key, kv->ent->klen);
    put_n(b, kv->type, 1);
    put_n(b, (uint64_t)kv->expire_at, 8);
    if (kv->type == KV_STRING) {
        put_str(b, kv->str ? kv->str : "", kv->len);
    } else if (kv->type == KV_HASH) {
        put_n(b, kv->hash->n, 4);
        for (size_t i = 0; i < kv->hash->nb; i++)
            for (struct dict_entry *e = kv->hash->b[i]; e; e = e->next) {
                const struct ks_bytes *v = e->val;
                put_str(b, e->key, e->klen);
                put_str(b, v->p, v->len);
            }
    } else {
        put_n(b, zset_len(kv->zset), 4);
        for (struct znode *n = zset_at(kv->zset, 0); n; n = zset_next(n)) {
            put_str(b, n->member, n->mlen);
            put_f64(b, n->score);
        }
    }
}

/* Writes x's records to b; -1 when a payload cannot be read. */
static int put_slotset(struct shard *s, const struct slotset *x, resp_buf *b, size_t *records)
{
    int64_t now = clock_now_ms();
    for (size_t i = 0; i < x->nq; i++)
        if (put_queue(s, b, x->qs[i], records) < 0)
            return -1;
    for (size_t i = 0; i < x->ns; i++, ++*records)
        put_sched(b, x->scs[i]);
    for (size_t i = 0; i < x->nk; i++) {
        if (x->keys[i]->expire_at && x->keys[i]->expire_at <= now)
            continue; /* expired: it goes with the slot's clearing */
        put_key(b, x->keys[i]);
        ++*records;
    }
    return 0;
}

static void put_header(struct shard *s, int slot, resp_buf *b)
{
    resp_buf_append(b, SLOTBLOB_MAGIC, sizeof SLOTBLOB_MAGIC - 1);
    put_n(b, (uint64_t)slot, 4);
    put_n(b, (uint64_t)s->srv->nshards, 4);
}

size_t slotblob_write(struct shard *s, int slot, resp_buf *out)
{
    struct slotset x;
    size_t records = 0;
    slotset_find(s, slot, &x);
    put_header(s, slot, out);
    if (put_slotset(s, &x, out, &records) < 0)
        records = 0;
    slotset_free(&x);
    return records;
}

/* ---------------------------------------------------------------- import */

struct job_in {
    const char *qname, *payload, *last_error, *unique, *group, *holder, *history, *result, *progress;
    size_t qlen, plen, elen, ulen, glen, hlen, hilen, rlen, prlen;
};

static struct job *job_fields(struct rd *r, struct job_in *in)
{
    struct job *j = xcalloc(1, sizeof *j);
    in->qname = get_str(r, &in->qlen);
    j->id = get_n(r, 8);
    j->state = (uint8_t)get_n(r, 1);
    j->pos = (int64_t)get_n(r, 8);
    j->priority = (int16_t)(int64_t)get_n(r, 8);
    j->attempt = (uint32_t)get_n(r, 4);
    j->retries = (uint32_t)get_n(r, 4);
    j->lease_ms = (uint32_t)get_n(r, 4);
    j->token = (uint32_t)get_n(r, 4);
    j->run_at = (int64_t)get_n(r, 8);
    j->lease_until = (int64_t)get_n(r, 8);
    j->created_at = (int64_t)get_n(r, 8);
    j->updated_at = (int64_t)get_n(r, 8);
    j->expires_at = (int64_t)get_n(r, 8);
    j->batch = get_n(r, 8);
    in->payload = get_str(r, &in->plen);
    in->last_error = get_str(r, &in->elen);
    in->unique = get_str(r, &in->ulen);
    in->group = get_str(r, &in->glen);
    in->holder = get_str(r, &in->hlen);
    in->history = get_str(r, &in->hilen);
    in->result = get_str(r, &in->rlen);
    in->progress = get_str(r, &in->prlen);
    return j;
}

static int get_job(struct shard *s, struct rd *r, bool apply)
{
    struct job_in in;
    struct job *j = job_fields(r, &in);
    bool bad = r->bad || !in.qname || !in.payload || j->state >= JOB_NSTATES || in.glen > GROUP_KEY_MAX;
    const struct job *here = bad ? NULL : jtable_find(&s->st.jobs, j->id);
    if (here && slot_of(here->q->name, here->q->namelen) != r->slot)
        r->clash = here; /* the slot's own jobs go before the import; others stay */
    if (bad || r->clash || !apply) {
        free(j);
        return bad || r->clash ? -1 : 0;
    }
    j->payload = dup_str(in.payload, in.plen);
    j->len = (uint32_t)in.plen;
    j->last_error = dup_str(in.last_error, in.elen);
    j->unique = dup_str(in.unique, in.ulen);
    j->group = dup_str(in.group, in.glen);
    j->grouplen = (uint16_t)in.glen;
    j->holder = dup_str(in.holder, in.hlen);
    j->history = dup_str(in.history, in.hilen);
    j->result = dup_str(in.result, in.rlen);
    j->result_len = (uint32_t)in.rlen;
    j->progress = dup_str(in.progress, in.prlen);
    tnode_init(&j->timer, 0);
    uint64_t id = j->id, batch = j->batch;
    struct queue *q = store_queue(&s->st, in.qname, in.qlen, true);
    if (store_job_adopt(&s->st, q, j) < 0)
        return -1; /* its id is taken: the import fails whole (slotblob_read) */
    if (in.result)
        jext_job_result(s, id, in.result, in.rlen);
    if (in.progress)
        jext_job_progress(s, id, jtable_find(&s->st.jobs, id)->progress);
    if (batch)
        jext_job_batch(s, id, batch);
    return 0;
}

static int get_queue(struct shard *s, struct rd *r, bool apply)
{
    size_t nlen, clen;
    const char *name = get_str(r, &nlen), *conf = get_str(r, &clen);
    bool paused = get_n(r, 1) != 0;
    if (r->bad || !name || !conf)
        return -1;
    if (!apply)
        return 0;
    struct queue *q = store_queue(&s->st, name, nlen, true);
    char *text = dup_str(conf, clen);
    q->conf = s->st.defaults;
    qconf_parse(&q->conf, text);
    free(text);
    q->paused = paused;
    store_queue_saved(&s->st, q);
    store_queue_changed(&s->st, q);
    return 0;
}

/* A 'T' record: the queue's totals replace the target's (importing again
 * replaces), and so does its limiter's state. */
static int get_totals(struct shard *s, struct rd *r, bool apply)
{
    size_t nlen;
    const char *name = get_str(r, &nlen);
    struct queue_stats t;
    for (int i = 0; i < NTOTALS; i++)
        *totals_of(&t, i) = get_n(r, 8);
    int64_t tat = (int64_t)get_n(r, 8), at[RATE_LOG_MAX];
    uint32_t cap = (uint32_t)get_n(r, 4), n = (uint32_t)get_n(r, 4);
    if (r->bad || !name || cap > RATE_LOG_MAX || n > cap)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        at[i] = (int64_t)get_n(r, 8);
    if (r->bad || !apply)
        return r->bad ? -1 : 0;
    struct queue *q = store_queue(&s->st, name, nlen, true);
    *store_queue_stats(&s->st, q) = t;
    rate_state_load(&q->rate_lim, tat, cap, at, n);
    return 0;
}

struct sched_in {
    const char *name, *queue, *spec, *tz, *payload;
    size_t nlen, qlen, slen, tlen, plen;
};

static int sched_apply(struct shard *s, const struct sched_in *in, struct sched *was)
{
    char *spec = dup_str(in->spec, in->slen), *tz = dup_str(in->tz, in->tlen), err[256];
    struct sched_def d = { .name = in->name, .queue = in->queue, .spec = spec, .tz = tz, .payload = in->payload,
                           .namelen = in->nlen, .qlen = in->qlen, .plen = in->plen, .priority = was->priority,
                           .retries = was->retries, .unique = was->unique, .catchup = was->catchup };
    int rc = schedule_set(s, &d, err, sizeof err);
    free(spec);
    free(tz);
    if (rc == 0)
        schedule_keep_state(s, schedule_find(s, in->name, in->nlen), was);
    return rc < 0 ? -1 : 0;
}

static int get_sched(struct shard *s, struct rd *r, bool apply)
{
    struct sched_in in;
    struct sched was;
    memset(&was, 0, sizeof was);
    in.name = get_str(r, &in.nlen);
    in.queue = get_str(r, &in.qlen);
    in.spec = get_str(r, &in.slen);
    in.tz = get_str(r, &in.tlen);
    in.payload = get_str(r, &in.plen);
    was.priority = (int16_t)(int64_t)get_n(r, 8);
    was.retries = (int64_t)get_n(r, 8);
    was.unique = get_n(r, 1) != 0;
    was.catchup = (int)get_n(r, 1);
    was.paused = get_n(r, 1) != 0;
    was.next_at = (int64_t)get_n(r, 8);
    was.last_tick = (int64_t)get_n(r, 8);
    was.last_job = get_n(r, 8);
    was.runs = (int64_t)get_n(r, 8);
    was.skipped = (int64_t)get_n(r, 8);
    was.created_at = (int64_t)get_n(r, 8);
    if (r->bad || !in.name || !in.queue || !in.spec || !in.tz || !in.payload)
        return -1;
    return apply ? sched_apply(s, &in, &was) : 0;
}

/* A key's value into kv (NULL: only read past it). */
static int get_value(struct keyspace *ks, struct rd *r, int type, struct kv *kv)
{
    size_t n = type == KV_STRING ? 1 : get_n(r, 4);
    for (size_t i = 0; i < n && !r->bad; i++) {
        size_t alen, blen = 0;
        const char *a = get_str(r, &alen), *b = NULL;
        double score = 0;
        if (type == KV_HASH)
            b = get_str(r, &blen);
        else if (type == KV_ZSET)
            score = get_f64(r);
        if (r->bad || !a || (type == KV_HASH && !b))
            return -1;
        if (kv && type == KV_STRING)
            keyspace_set_str(ks, kv, dup_str(a, alen), alen);
        else if (kv && type == KV_HASH)
            keyspace_hset(ks, kv, a, alen, b, blen);
        else if (kv)
            keyspace_zset_put(ks, kv, a, alen, score);
    }
    return r->bad ? -1 : 0;
}

static int get_key(struct shard *s, struct rd *r, bool apply)
{
    size_t nlen;
    const char *name = get_str(r, &nlen);
    int type = (int)get_n(r, 1);
    int64_t expire_at = (int64_t)get_n(r, 8), now = clock_now_ms();
    if (r->bad || !name || type < KV_STRING || type > KV_ZSET)
        return -1;
    struct kv *kv = NULL;
    if (apply) {
        struct kv *old = keyspace_find(&s->ks, name, nlen, now);
        if (old)
            keyspace_delete(&s->ks, old);
        kv = keyspace_create(&s->ks, name, nlen, type, now);
    }
    if (get_value(&s->ks, r, type, kv) < 0)
        return -1; /* only in the checking pass: apply follows a clean one */
    if (kv) {
        keyspace_set_expire(&s->ks, kv, expire_at);
        keyspace_save_whole(&s->ks, kv);
    }
    return 0;
}

/* One record: checked (apply false) or taken in. */
static int read_record(struct shard *s, struct rd *r, bool apply)
{
    switch ((int)get_n(r, 1)) {
    case 'Q':
        return get_queue(s, r, apply);
    case 'J':
        return get_job(s, r, apply);
    case 'T':
        return get_totals(s, r, apply);
    case 'S':
        return get_sched(s, r, apply);
    case 'K':
        return get_key(s, r, apply);
    default:
        return -1;
    }
}

static int read_records(struct shard *s, struct rd *r, bool apply, size_t *records)
{
    for (; r->off < r->n; ++*records)
        if (read_record(s, r, apply) < 0)
            return -1;
    return 0;
}

static int check_header(struct shard *s, int slot, struct rd *r, char *err, size_t cap)
{
    if (r->n < HEADER_LEN || (memcmp(r->p, SLOTBLOB_MAGIC, sizeof SLOTBLOB_MAGIC - 1) &&
                              memcmp(r->p, SLOTBLOB_MAGIC_1, sizeof SLOTBLOB_MAGIC_1 - 1))) {
        snprintf(err, cap, "ERR the blob is not a slot export of this spoold (format 1 or 2; a newer spoold's "
                 "blob needs this node upgraded first)");
        return -1;
    }
    r->off = sizeof SLOTBLOB_MAGIC - 1;
    int bslot = (int)get_n(r, 4), bshards = (int)get_n(r, 4);
    if (bslot != slot) {
        snprintf(err, cap, "ERR the blob holds slot %d, not slot %d", bslot, slot);
        return -1;
    }
    if (bshards != s->srv->nshards) {
        snprintf(err, cap, "ERR slot %d comes from a node with %d shards and this node has %d: job ids name their "
                 "shard, so both nodes of a move need the same --shards", slot, bshards, s->srv->nshards);
        return -1;
    }
    return 0;
}

int slotblob_read(struct shard *s, int slot, const char *blob, size_t len, bool append, char *err, size_t cap)
{
    struct rd r = { .p = (const unsigned char *)blob, .n = len, .slot = slot };
    size_t checked = 0, taken = 0;
    if (check_header(s, slot, &r, err, cap) < 0)
        return -1;
    int rc = read_records(s, &r, false, &checked);
    if (rc < 0 && r.clash) {
        snprintf(err, cap, "ERR job id %016llx of slot %d is taken on this node by a job of queue '%.100s': ids made "
                 "by different groups before ids carried their group collide; nothing imported (move the slot to "
                 "another group, or finish that job first)", (unsigned long long)r.clash->id, slot, r.clash->q->name);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, cap, "ERR the blob of slot %d is damaged at byte %zu (record %zu): nothing imported", slot,
                 r.off, checked + 1);
        return -1;
    }
    if (!append) { /* importing again replaces */
        struct slotset x;
        slotset_find(s, slot, &x);
        slotset_clear(s, &x);
        slotset_free(&x);
    }
    r.off = HEADER_LEN;
    r.bad = false;
    store_jr_begin(&s->st); /* one transaction: a failure below rolls the whole import back */
    if (read_records(s, &r, true, &taken) < 0) {
        store_jr_result(&s->st, -EEXIST);
        snprintf(err, cap, "ERR slot %d: record %zu of its blob could not be taken in; nothing imported", slot,
                 taken + 1);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- parked blobs */

/* The parked blob of slot (malloc'd) or NULL. */
static char *parked_get(struct shard *s, int slot, size_t *len)
{
    sqlite3_stmt *st = jext_read(s, "SELECT blob FROM slot_parked WHERE slot = ?1", "i", (int64_t)slot);
    char *blob = NULL;
    *len = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        blob = jext_col_dup(st, 0, len);
    if (st)
        sqlite3_finalize(st);
    return blob;
}

static void parked_put(struct shard *s, int slot, const char *blob, size_t len)
{
    jext_write(s, "INSERT OR REPLACE INTO slot_parked (slot, blob) VALUES (?1, ?2)", "ib", (int64_t)slot, blob,
               len);
}

static void parked_drop(struct shard *s, int slot)
{
    jext_write(s, "DELETE FROM slot_parked WHERE slot = ?1", "i", (int64_t)slot);
}

/* The blob as the reply: an array of blobs of at most SLOTBLOB_CHUNK
 * bytes of records each (a bigger record alone), split between records,
 * so that every part fits in a request to the target. */
static void add_chunks(struct shard *s, struct msg *m, int slot, const resp_buf *b)
{
    struct rd r = { .p = (const unsigned char *)b->data, .n = b->len, .off = HEADER_LEN, .slot = slot };
    size_t starts[4096], n = 0, from = HEADER_LEN;
    starts[n++] = HEADER_LEN;
    while (r.off < r.n && n < sizeof starts / sizeof starts[0] - 1) {
        size_t at = r.off;
        if (read_record(s, &r, false) < 0 && r.bad)
            break; /* cannot happen: the blob was made here; the rest goes in the last part */
        if (r.off - from > SLOTBLOB_CHUNK && at > from)
            starts[n++] = from = at;
    }
    starts[n] = b->len;
    resp_add_array(&m->out, n);
    for (size_t i = 0; i < n; i++) {
        resp_buf part;
        resp_buf_init(&part);
        put_header(s, slot, &part);
        resp_buf_append(&part, b->data + starts[i], starts[i + 1] - starts[i]);
        resp_add_bulk(&m->out, part.data, part.len);
        resp_buf_free(&part);
    }
}

/* EXPORT: the slot's live contents go into its parked blob (appended to
 * one already parked) and out of the live state, in this turn. */
static void slot_export(struct shard *s, struct msg *m, int slot)
{
    size_t plen, records = 0;
    char *parked = parked_get(s, slot, &plen);
    resp_buf b;
    resp_buf_init(&b);
    if (parked && plen >= HEADER_LEN)
        resp_buf_append(&b, parked, plen);
    else
        put_header(s, slot, &b);
    struct slotset x;
    slotset_find(s, slot, &x);
    if (put_slotset(s, &x, &b, &records) < 0) {
        resp_add_error(&m->out, "ERR a job's payload cannot be read from the journal: the slot was not exported "
                       "(see the log)");
    } else {
        if (x.nq || x.nk || x.ns) {
            slotset_clear(s, &x);
            parked_put(s, slot, b.data, b.len);
        }
        add_chunks(s, m, slot, &b);
    }
    slotset_free(&x);
    resp_buf_free(&b);
    free(parked);
}

static void slot_import(struct shard *s, struct msg *m, int slot, const char *blob, size_t len, bool append)
{
    char err[512];
    if (slotblob_read(s, slot, blob, len, append, err, sizeof err) < 0)
        resp_add_error(&m->out, err);
    else
        resp_add_simple(&m->out, "OK");
}

/* RESTORE: the parked blob back into live state (a move given up). */
static void slot_restore(struct shard *s, struct msg *m, int slot)
{
    size_t len;
    char *blob = parked_get(s, slot, &len);
    if (!blob) {
        resp_add_int(&m->out, 0);
        return;
    }
    char err[512];
    if (slotblob_read(s, slot, blob, len, false, err, sizeof err) < 0) {
        resp_add_error(&m->out, err);
    } else {
        parked_drop(s, slot);
        resp_add_int(&m->out, 1);
    }
    free(blob);
}

void sh_slotmove(struct shard *s, struct msg *m)
{
    long long slot = 0;
    arg_ll(m, 2, &slot);
    if (arg_is(m, 1, "EXPORT")) {
        slot_export(s, m, (int)slot);
    } else if (arg_is(m, 1, "IMPORT")) {
        slot_import(s, m, (int)slot, m->req.argv[3], m->req.len[3], arg_is(m, 4, "APPEND"));
    } else if (arg_is(m, 1, "RESTORE")) {
        slot_restore(s, m, (int)slot);
    } else { /* DROP */
        size_t len;
        char *blob = parked_get(s, (int)slot, &len);
        if (blob)
            parked_drop(s, (int)slot);
        resp_add_int(&m->out, blob != NULL);
        free(blob);
    }
    shard_reply(s, m);
}
