/*
 * keyspace.c - strings, hashes and sorted sets of one shard, with expiry
 * and the journal rows behind them (see keyspace.h).
 */
#include "keyspace.h"

#include "config.h"
#include "journal.h"
#include "kvjournal.h"
#include "log.h"
#include "resp.h"
#include "xalloc.h"
#include "zset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ks_watch {
    uint64_t refs;
    uint64_t version;
};

void keyspace_init(struct keyspace *ks, const struct ks_sink *sink)
{
    memset(ks, 0, sizeof *ks);
    dict_init(&ks->keys);
    dict_init(&ks->watched);
    theap_init(&ks->expires);
    if (sink)
        ks->sink = *sink;
    ks->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)ks;
}

static void kv_free_value(struct kv *kv)
{
    free(kv->str);
    kv->str = NULL;
    kv->len = 0;
    if (kv->hash) {
        dict_free(kv->hash, free);
        free(kv->hash);
        kv->hash = NULL;
    }
    zset_free(kv->zset);
    kv->zset = NULL;
}

static void free_kv(void *p)
{
    struct kv *kv = p;
    kv_free_value(kv);
    free(kv);
}

static void clear_memory(struct keyspace *ks)
{
    dict_free(&ks->keys, free_kv);
    theap_free(&ks->expires);
    theap_init(&ks->expires);
    ks->bytes = 0;
}

void keyspace_free(struct keyspace *ks)
{
    clear_memory(ks);
    dict_free(&ks->watched, free);
    kvjournal_close(ks->kj);
    ks->kj = NULL;
}

const char *keyspace_type_name(int type)
{
    switch (type) {
    case KV_STRING:
        return "string";
    case KV_HASH:
        return "hash";
    case KV_ZSET:
        return "zset";
    default:
        return "none";
    }
}

/* What keyspace_hset() counts per field, summed. */
static size_t hash_bytes_of(const struct dict *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nb; i++)
        for (struct dict_entry *e = h->b[i]; e; e = e->next)
            n += ((struct ks_bytes *)e->val)->len + e->klen + sizeof(struct dict_entry) + 48;
    return n;
}

size_t keyspace_kv_bytes(const struct kv *kv)
{
    size_t n = sizeof *kv + sizeof *kv->ent + kv->ent->klen + 1;
    if (kv->type == KV_STRING)
        n += kv->len + 1;
    else if (kv->type == KV_HASH)
        n += sizeof *kv->hash + hash_bytes_of(kv->hash);
    else if (kv->type == KV_ZSET)
        n += zset_bytes(kv->zset);
    return n;
}

/* ------------------------------------------------------------- journal */

#define LOG_SLACK 10000 /* rows the log may hold beyond twice the live state */

static struct kvjournal *txn(struct keyspace *ks)
{
    if (!ks->kj || !ks->sink.txn || !ks->sink.txn(ks->sink.arg))
        return NULL;
    return ks->kj;
}

static int log_key(struct kvjournal *kj, struct kv *kv)
{
    int rc = kvjournal_put(kj, kv->ent->key, kv->ent->klen, kv->fresh, kv->type, kv->expire_at,
                           kv->type == KV_STRING ? (kv->str ? kv->str : "") : NULL, kv->len);
    if (rc == 0)
        kv->fresh = false;
    return rc;
}

struct snap {
    struct kvjournal *kj;
    int rc;
    uint64_t rows;
};

static void snap_field(struct snap *sn, struct kv *kv, struct dict_entry *e)
{
    struct ks_bytes *v = e->val;
    if (sn->rc == 0)
        sn->rc = kvjournal_field(sn->kj, kv->ent->key, kv->ent->klen, e->key, e->klen, v->p, v->len);
    sn->rows++;
}

static void snap_key(void *arg, struct dict_entry *e)
{
    struct snap *sn = arg;
    struct kv *kv = e->val;
    kv->fresh = true;
    if (sn->rc == 0)
        sn->rc = log_key(sn->kj, kv);
    sn->rows++;
    if (kv->type == KV_HASH) {
        for (size_t i = 0; i < kv->hash->nb; i++)
            for (struct dict_entry *f = kv->hash->b[i]; f; f = f->next)
                snap_field(sn, kv, f);
    } else if (kv->type == KV_ZSET) {
        for (struct znode *n = zset_at(kv->zset, 0); n; n = zset_next(n)) {
            if (sn->rc == 0)
                sn->rc = kvjournal_member(sn->kj, kv->ent->key, kv->ent->klen, n->member, n->mlen, n->score, false);
            sn->rows++;
        }
    }
}

/* Rewrites the log as a snapshot of memory (in the turn's transaction). */
static int rewrite_log(struct keyspace *ks, struct kvjournal *kj)
{
    struct snap sn = { kj, kvjournal_clear(kj), 0 };
    dict_each(&ks->keys, snap_key, &sn);
    if (sn.rc == 0)
        ks->snapshot_rows = sn.rows;
    return sn.rc;
}

static void result(struct keyspace *ks, int rc)
{
    if (rc < 0 && ks->sink.result)
        ks->sink.result(ks->sink.arg, rc);
}

/* After a row was appended: the log may have grown enough to rewrite. */
static void logged(struct keyspace *ks, struct kvjournal *kj, int rc)
{
    result(ks, rc);
    if (rc == 0 && kvjournal_rows(kj) > 2 * ks->snapshot_rows + LOG_SLACK)
        result(ks, rewrite_log(ks, kj));
}

void keyspace_save(struct keyspace *ks, struct kv *kv)
{
    keyspace_touch(ks, kv->ent->key, kv->ent->klen);
    struct kvjournal *kj = txn(ks);
    if (kj)
        logged(ks, kj, log_key(kj, kv));
}

void keyspace_save_field(struct keyspace *ks, struct kv *kv, const char *f, size_t flen)
{
    keyspace_touch(ks, kv->ent->key, kv->ent->klen);
    struct kvjournal *kj = txn(ks);
    if (!kj)
        return;
    struct ks_bytes *v = keyspace_hget(kv, f, flen);
    logged(ks, kj, kvjournal_field(kj, kv->ent->key, kv->ent->klen, f, flen, v ? v->p : NULL, v ? v->len : 0));
}

void keyspace_save_member(struct keyspace *ks, struct kv *kv, const char *m, size_t mlen)
{
    keyspace_touch(ks, kv->ent->key, kv->ent->klen);
    struct kvjournal *kj = txn(ks);
    if (!kj)
        return;
    double score = 0;
    bool there = zset_score(kv->zset, m, mlen, &score);
    logged(ks, kj, kvjournal_member(kj, kv->ent->key, kv->ent->klen, m, mlen, score, !there));
}

/* ---------------------------------------------------------------- keys */

static void forget(struct keyspace *ks, struct kv *kv)
{
    theap_remove(&ks->expires, &kv->timer);
    ks->bytes -= (int64_t)keyspace_kv_bytes(kv);
    dict_delete(&ks->keys, kv->ent);
    free_kv(kv);
}

void keyspace_delete(struct keyspace *ks, struct kv *kv)
{
    keyspace_touch(ks, kv->ent->key, kv->ent->klen);
    struct kvjournal *kj = txn(ks);
    const char *k = kv->ent->key;
    size_t klen = kv->ent->klen;
    if (kj) {
        int rc = kvjournal_delete(kj, k, klen);
        forget(ks, kv); /* before a rewrite the row may start, which must not see it */
        logged(ks, kj, rc);
        return;
    }
    forget(ks, kv);
}

static void expire_now(struct keyspace *ks, struct kv *kv)
{
    ks->expired++;
    keyspace_delete(ks, kv);
}

struct kv *keyspace_find(struct keyspace *ks, const char *key, size_t len, int64_t now)
{
    struct dict_entry *e = dict_find(&ks->keys, key, len);
    if (!e)
        return NULL;
    struct kv *kv = e->val;
    if (kv->expire_at && kv->expire_at <= now) {
        expire_now(ks, kv);
        return NULL;
    }
    return kv;
}

/* LFU counter: logarithmic increments (factor 10, as Redis's default). */
static void lfu_hit(struct kv *kv, int64_t now)
{
    if (kv->lfu == 255)
        return;
    double base = kv->lfu > 5 ? kv->lfu - 5 : 0;
    double p = 1.0 / (base * 10 + 1);
    uint64_t r = (uint64_t)now * 6364136223846793005ULL + (uint64_t)(uintptr_t)kv;
    if ((double)(r >> 11) / 9007199254740992.0 < p)
        kv->lfu++;
}

struct kv *keyspace_read(struct keyspace *ks, const char *key, size_t len, int64_t now)
{
    struct kv *kv = keyspace_find(ks, key, len, now);
    if (!kv) {
        ks->misses++;
        return NULL;
    }
    ks->hits++;
    kv->atime = now;
    lfu_hit(kv, now);
    return kv;
}

struct kv *keyspace_create(struct keyspace *ks, const char *key, size_t len, int type, int64_t now)
{
    struct kv *kv = xcalloc(1, sizeof *kv);
    tnode_init(&kv->timer, 0);
    kv->type = (uint8_t)type;
    kv->atime = now;
    kv->lfu = 5; /* new keys start above the floor, as in Redis */
    kv->fresh = true;
    if (type == KV_HASH) {
        kv->hash = xmalloc(sizeof *kv->hash);
        dict_init(kv->hash);
    } else if (type == KV_ZSET) {
        kv->zset = zset_new();
    }
    kv->ent = dict_add(&ks->keys, key, len, kv);
    ks->bytes += (int64_t)keyspace_kv_bytes(kv);
    return kv;
}

void keyspace_set_str(struct keyspace *ks, struct kv *kv, char *p, size_t n)
{
    ks->bytes -= (int64_t)kv->len;
    free(kv->str);
    kv->str = p;
    kv->len = n;
    ks->bytes += (int64_t)n;
}

void keyspace_set_expire(struct keyspace *ks, struct kv *kv, int64_t at)
{
    theap_remove(&ks->expires, &kv->timer);
    kv->expire_at = at;
    if (at) {
        kv->timer.when = at;
        theap_add(&ks->expires, &kv->timer);
    }
}

struct kv *keyspace_rename(struct keyspace *ks, struct kv *kv, const char *key, size_t len)
{
    keyspace_touch(ks, kv->ent->key, kv->ent->klen);
    struct kvjournal *kj = txn(ks);
    if (kj)
        result(ks, kvjournal_delete(kj, kv->ent->key, kv->ent->klen));
    ks->bytes -= (int64_t)kv->ent->klen;
    dict_delete(&ks->keys, kv->ent);
    kv->ent = dict_add(&ks->keys, key, len, kv);
    ks->bytes += (int64_t)len;
    kv->fresh = true; /* under its new name it starts empty on replay */
    keyspace_save_whole(ks, kv);
    return kv;
}

void keyspace_save_whole(struct keyspace *ks, struct kv *kv)
{
    keyspace_save(ks, kv);
    if (kv->type == KV_HASH) {
        for (size_t i = 0; i < kv->hash->nb; i++)
            for (struct dict_entry *e = kv->hash->b[i]; e; e = e->next)
                keyspace_save_field(ks, kv, e->key, e->klen);
    } else if (kv->type == KV_ZSET) {
        for (struct znode *n = zset_at(kv->zset, 0); n; n = zset_next(n))
            keyspace_save_member(ks, kv, n->member, n->mlen);
    }
}

void keyspace_zset_put(struct keyspace *ks, struct kv *kv, const char *m, size_t mlen, double score)
{
    ks->bytes -= (int64_t)zset_bytes(kv->zset);
    zset_set(kv->zset, m, mlen, score);
    ks->bytes += (int64_t)zset_bytes(kv->zset);
}

/* --------------------------------------------------------------- hashes */

struct ks_bytes *keyspace_hget(const struct kv *kv, const char *f, size_t flen)
{
    struct dict_entry *e = dict_find(kv->hash, f, flen);
    return e ? e->val : NULL;
}

bool keyspace_hset(struct keyspace *ks, struct kv *kv, const char *f, size_t flen, const char *v, size_t vlen)
{
    struct ks_bytes *b = xmalloc(sizeof *b + vlen + 1);
    b->len = vlen;
    memcpy(b->p, v, vlen);
    b->p[vlen] = '\0';
    struct dict_entry *e = dict_find(kv->hash, f, flen);
    if (e) {
        ks->bytes += (int64_t)vlen - (int64_t)((struct ks_bytes *)e->val)->len;
        free(e->val);
        e->val = b;
        return false;
    }
    dict_add(kv->hash, f, flen, b);
    ks->bytes += (int64_t)(vlen + flen + sizeof(struct dict_entry) + 48);
    return true;
}

bool keyspace_hdel(struct keyspace *ks, struct kv *kv, const char *f, size_t flen)
{
    struct dict_entry *e = dict_find(kv->hash, f, flen);
    if (!e)
        return false;
    ks->bytes -= (int64_t)(((struct ks_bytes *)e->val)->len + flen + sizeof(struct dict_entry) + 48);
    free(e->val);
    dict_delete(kv->hash, e);
    return true;
}

/* --------------------------------------------------------------- expiry */

int keyspace_expire_due(struct keyspace *ks, int64_t now, int budget)
{
    int n = 0;
    struct tnode *t;
    while (n < budget && (t = theap_min(&ks->expires)) && t->when <= now) {
        expire_now(ks, (struct kv *)t);
        n++;
    }
    return n;
}

int64_t keyspace_next_expiry(const struct keyspace *ks)
{
    struct tnode *t = theap_min(&ks->expires);
    return t ? t->when : 0;
}

void keyspace_info_line(const struct keyspace *ks, struct resp_buf *out)
{
    resp_buf_printf(out, KEYSPACE_INFO_FMT "\r\n", (unsigned long long)ks->keys.n,
                    (unsigned long long)ks->expires.n, (unsigned long long)ks->hits, (unsigned long long)ks->misses,
                    (unsigned long long)ks->expired, (unsigned long long)ks->evicted,
                    (unsigned long long)(ks->bytes > 0 ? ks->bytes : 0));
}

/* ------------------------------------------------------------- eviction */

#define EVICT_SAMPLES 5

static uint64_t next_rand(struct keyspace *ks)
{
    ks->rng ^= ks->rng >> 12;
    ks->rng ^= ks->rng << 25;
    ks->rng ^= ks->rng >> 27;
    return ks->rng * 2685821657736338717ULL;
}

/* Lower is evicted first. */
static double evict_rank(const struct kv *kv, int policy, int64_t now)
{
    switch (policy) {
    case EVICT_ALLKEYS_LFU:
    case EVICT_VOLATILE_LFU: {
        double decay = (double)(now - kv->atime) / 60000.0; /* one step per idle minute */
        return (double)kv->lfu - decay;
    }
    case EVICT_VOLATILE_TTL:
        return (double)kv->expire_at;
    case EVICT_ALLKEYS_RANDOM:
    case EVICT_VOLATILE_RANDOM:
        return 0;
    default:
        return (double)kv->atime;
    }
}

static struct kv *sample(struct keyspace *ks, bool volatile_only)
{
    if (volatile_only) {
        if (!ks->expires.n)
            return NULL;
        return (struct kv *)ks->expires.a[next_rand(ks) % ks->expires.n].t;
    }
    struct dict_entry *e = dict_random(&ks->keys, next_rand(ks));
    return e ? e->val : NULL;
}

bool keyspace_evict(struct keyspace *ks, int64_t budget, int policy, int64_t now)
{
    bool volatile_only = policy == EVICT_VOLATILE_LRU || policy == EVICT_VOLATILE_LFU ||
                         policy == EVICT_VOLATILE_TTL || policy == EVICT_VOLATILE_RANDOM;
    if (policy == EVICT_NONE)
        return false;
    while (ks->bytes > budget) {
        struct kv *best = NULL;
        double best_rank = 0;
        for (int i = 0; i < EVICT_SAMPLES; i++) {
            struct kv *kv = sample(ks, volatile_only);
            if (!kv)
                break;
            double r = evict_rank(kv, policy, now);
            if (!best || r < best_rank) {
                best = kv;
                best_rank = r;
            }
        }
        if (!best)
            return false;
        ks->evicted++;
        keyspace_delete(ks, best);
    }
    return true;
}

/* ---------------------------------------------------------------- WATCH */

uint64_t keyspace_watch(struct keyspace *ks, const char *name, size_t len)
{
    struct dict_entry *e = dict_find(&ks->watched, name, len);
    if (!e)
        e = dict_add(&ks->watched, name, len, xcalloc(1, sizeof(struct ks_watch)));
    struct ks_watch *w = e->val;
    w->refs++;
    return w->version;
}

uint64_t keyspace_watch_version(const struct keyspace *ks, const char *name, size_t len)
{
    struct dict_entry *e = dict_find(&ks->watched, name, len);
    return e ? ((struct ks_watch *)e->val)->version : UINT64_MAX;
}

void keyspace_unwatch(struct keyspace *ks, const char *name, size_t len)
{
    struct dict_entry *e = dict_find(&ks->watched, name, len);
    if (!e)
        return;
    struct ks_watch *w = e->val;
    if (--w->refs == 0) {
        free(w);
        dict_delete(&ks->watched, e);
    }
}

void keyspace_touch(struct keyspace *ks, const char *name, size_t len)
{
    if (!ks->watched.n)
        return;
    struct dict_entry *e = dict_find(&ks->watched, name, len);
    if (e)
        ((struct ks_watch *)e->val)->version++;
}

/* ------------------------------------------------------------- recovery */

static struct kv *loaded(struct keyspace *ks, const char *key, size_t klen, int type)
{
    struct dict_entry *e = dict_find(&ks->keys, key, klen);
    struct kv *kv = e ? e->val : NULL;
    return kv && (type == KV_NONE || kv->type == type) ? kv : NULL;
}

static int load_key(void *arg, const char *key, size_t klen, bool create, int type, int64_t expire_at,
                    const char *value, size_t vlen)
{
    struct keyspace *ks = arg;
    if (type < KV_STRING || type > KV_ZSET)
        return -EILSEQ;
    struct kv *kv = loaded(ks, key, klen, KV_NONE);
    if (kv && (create || kv->type != type)) {
        forget(ks, kv);
        kv = NULL;
    }
    if (!kv)
        kv = keyspace_create(ks, key, klen, type, 0);
    kv->fresh = false;
    if (type == KV_STRING) {
        char *p = xmalloc(vlen + 1);
        memcpy(p, value ? value : "", vlen);
        p[vlen] = '\0';
        keyspace_set_str(ks, kv, p, vlen);
    }
    keyspace_set_expire(ks, kv, expire_at);
    return 0;
}

static int load_del(void *arg, const char *key, size_t klen)
{
    struct kv *kv = loaded(arg, key, klen, KV_NONE);
    if (kv)
        forget(arg, kv);
    return 0;
}

static int load_field(void *arg, const char *key, size_t klen, const char *f, size_t flen, const char *v, size_t vlen)
{
    struct kv *kv = loaded(arg, key, klen, KV_HASH);
    if (kv && v)
        keyspace_hset(arg, kv, f, flen, v, vlen);
    else if (kv)
        keyspace_hdel(arg, kv, f, flen);
    return 0;
}

static int load_member(void *arg, const char *key, size_t klen, const char *m, size_t mlen, double score, bool del)
{
    struct keyspace *ks = arg;
    struct kv *kv = loaded(ks, key, klen, KV_ZSET);
    if (!kv)
        return 0;
    ks->bytes -= (int64_t)zset_bytes(kv->zset);
    if (del)
        zset_del(kv->zset, m, mlen);
    else
        zset_set(kv->zset, m, mlen, score);
    ks->bytes += (int64_t)zset_bytes(kv->zset);
    return 0;
}

static const struct kvjournal_load_fns load_fns = { load_key, load_del, load_field, load_member };

/* After the replay: keys whose expiry passed (also while spoold was down)
 * go from memory; the log keeps their rows until the next rewrite, and a
 * key created again under that name is logged as created, so nothing of
 * the old one comes back. Empty hashes and sets (never kept) go too. */
static void settle(struct keyspace *ks, int64_t now)
{
    size_t n = ks->keys.n, k = 0;
    struct kv **dead = xmalloc((n ? n : 1) * sizeof *dead);
    uint64_t rows = 0;
    for (size_t b = 0; b < ks->keys.nb; b++) {
        for (struct dict_entry *e = ks->keys.b[b]; e; e = e->next) {
            struct kv *kv = e->val;
            size_t items = kv->type == KV_HASH ? kv->hash->n : kv->type == KV_ZSET ? zset_len(kv->zset) : 0;
            if ((kv->expire_at && kv->expire_at <= now) || (kv->type != KV_STRING && items == 0))
                dead[k++] = kv;
            else
                rows += 1 + items;
        }
    }
    for (size_t i = 0; i < k; i++)
        forget(ks, dead[i]);
    free(dead);
    ks->snapshot_rows = rows;
}

int keyspace_open(struct keyspace *ks, struct journal *jr, int64_t now)
{
    int rc = kvjournal_open(&ks->kj, jr);
    if (rc < 0)
        return rc;
    return keyspace_reload(ks, now);
}

int keyspace_reload(struct keyspace *ks, int64_t now)
{
    clear_memory(ks);
    dict_init(&ks->keys);
    if (!ks->kj)
        return 0;
    int rc = kvjournal_load(ks->kj, &load_fns, ks);
    settle(ks, now);
    return rc;
}
