/*
 * cmd_keys.c - commands over keys of any type, and the routing of the
 * keyspace's multi-key commands (see cmd_keys.h, docs/protocol.md "Keys").
 *
 * A name is a queue (type list while it has ready jobs) or a keyspace key.
 * DEL of a queue purges it as before; the expiry commands apply to
 * keyspace keys only (a queue never expires: its jobs have their own
 * lifecycle).
 *
 * SCAN's cursor spans the shards: cursor = inner * shards + shard, where
 * inner is the shard's own dict cursor (dict.h). A shard finishing its walk
 * hands on to the next shard with inner 0; the last one ends with 0. Each
 * shard lists its queues in the first call of its walk.
 */
#include "cmd_keys.h"

#include "args.h"
#include "clock.h"
#include "command.h"
#include "conn.h"
#include "hash.h"
#include "io.h"
#include "kvcmd.h"
#include "msg.h"
#include "queue.h"
#include "context.h"
#include "shard.h"
#include "zset.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- routing */

int keys_shard(const struct msg *m, int nshards)
{
    const struct command *k = m->cmd;
    if (k->first_key <= 0 || k->first_key >= m->req.argc)
        return -2;
    int last = k->last_key >= 0 ? k->last_key : m->req.argc + k->last_key;
    if (last >= m->req.argc)
        last = m->req.argc - 1;
    int step = k->key_step > 0 ? k->key_step : 1;
    int shard = -2;
    for (int i = k->first_key; i <= last; i += step) {
        int sh = shard_of(m->req.argv[i], m->req.len[i], nshards);
        if (shard == -2)
            shard = sh;
        else if (sh != shard)
            return -1;
    }
    return shard;
}

void io_same_shard(struct conn *c, struct msg *m)
{
    int k = keys_shard(m, c->io->srv->nshards);
    if (k == -1) {
        conn_reply_error(c, m, KEYS_CROSSSLOT);
        return;
    }
    m->whole = true;
    conn_route(c, m, k < 0 ? 0 : k);
}

static void finish_count(struct conn *c, struct slot *sl)
{
    resp_add_int(&sl->out, sl->num);
}

void io_keys_count(struct conn *c, struct msg *m)
{
    int k = keys_shard(m, c->io->srv->nshards);
    if (k >= 0) {
        m->whole = true;
        conn_route(c, m, k);
    } else {
        conn_gather(c, m, true, finish_count);
    }
}

void io_all_shards_sum(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_count);
}

/* Length of the one bulk or null element at p (what sh_mget writes). */
static size_t element_len(const char *p, size_t avail)
{
    if (avail < 3)
        return avail;
    if (p[0] == '_')
        return 3;
    long long n = strtoll(p + 1, NULL, 10);
    const char *crlf = memchr(p, '\n', avail);
    size_t head = crlf ? (size_t)(crlf - p) + 1 : avail;
    return n < 0 ? head : head + (size_t)n + 2;
}

static void finish_mget(struct conn *c, struct slot *sl)
{
    struct msg *m = sl->req;
    int n = c->io->srv->nshards;
    size_t *pos = calloc((size_t)n, sizeof *pos);
    resp_add_array(&sl->out, (size_t)(m->req.argc - 1));
    for (int i = 1; i < m->req.argc; i++) {
        int k = shard_of(m->req.argv[i], m->req.len[i], n);
        resp_buf *b = &sl->parts[k];
        size_t len = pos[k] < b->len ? element_len(b->data + pos[k], b->len - pos[k]) : 0;
        if (len == 0) {
            resp_add_null(&sl->out, c->proto);
            continue;
        }
        resp_buf_append(&sl->out, b->data + pos[k], len);
        pos[k] += len;
    }
    free(pos);
}

void io_mget(struct conn *c, struct msg *m)
{
    int k = keys_shard(m, c->io->srv->nshards);
    if (k >= 0) {
        m->whole = true;
        conn_route(c, m, k);
    } else {
        conn_gather(c, m, true, finish_mget);
    }
}

/* ------------------------------------------------------------ DEL EXISTS */

static void reply_count(struct shard *s, struct msg *m)
{
    if (m->whole)
        resp_add_int(&m->out, m->num);
    shard_reply(s, m);
}

/* DEL key [key ...] / UNLINK key [key ...]: keys this shard owns. */
void sh_del_keys(struct shard *s, struct msg *m)
{
    int64_t now = clock_now_ms();
    for (int i = 1; i < m->req.argc; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct kv *kv = keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], now);
        if (kv) {
            keyspace_delete(&s->ks, kv);
            m->num++;
            continue;
        }
        struct queue *q = shard_queue(s, m, i, false);
        if (q) {
            m->num += store_purge(&s->st, q, -1) > 0;
            store_queue_gc(&s->st, q);
        }
    }
    reply_count(s, m);
}

/* EXISTS key [key ...] */
void sh_exists_keys(struct shard *s, struct msg *m)
{
    int64_t now = clock_now_ms();
    for (int i = 1; i < m->req.argc; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        m->num += keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], now) ||
                  kvcmd_is_queue(s, m->req.argv[i], m->req.len[i]);
    }
    reply_count(s, m);
}

/* TYPE key */
void sh_type_key(struct shard *s, struct msg *m)
{
    struct kv *kv = keyspace_find(&s->ks, m->req.argv[1], m->req.len[1], clock_now_ms());
    const char *t = kv ? keyspace_type_name(kv->type) : kvcmd_is_queue(s, m->req.argv[1], m->req.len[1]) ? "list" : "none";
    resp_add_simple(&m->out, t);
    shard_reply(s, m);
}

/* --------------------------------------------------------------- expiry */

static bool queue_no_expiry(struct shard *s, struct msg *m)
{
    return kvcmd_fail(s, m, "ERR '%.200s' is a job queue, and queues do not expire (jobs have leases, retention "
                      "and QUEUE.PURGE); only strings, hashes and sorted sets take a TTL", m->req.argv[1]);
}

enum { EX_NX = 1, EX_XX = 2, EX_GT = 4, EX_LT = 8 };

/* The NX|XX|GT|LT options from argv[3]; NULL or the error (maybe
 * written into bad). */
static const char *expire_options(const struct msg *m, int *flags, char *bad, size_t cap)
{
    static const struct { const char *w; int f; } opts[] = { { "NX", EX_NX }, { "XX", EX_XX }, { "GT", EX_GT },
                                                             { "LT", EX_LT } };
    int f = 0;
    for (int i = 3; i < m->req.argc; i++) {
        int hit = 0;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (arg_is(m, i, opts[k].w))
                hit = opts[k].f;
        if (!hit) {
            snprintf(bad, cap, "ERR Unsupported option %.64s", m->req.argv[i]);
            return bad;
        }
        f |= hit;
    }
    *flags = f;
    if ((f & EX_NX) && (f & (EX_XX | EX_GT | EX_LT)))
        return "ERR NX and XX, GT or LT options at the same time are not compatible";
    if ((f & EX_GT) && (f & EX_LT))
        return "ERR GT and LT options at the same time are not compatible";
    return NULL;
}

/* The absolute expiry (Unix ms) argv[2] names for this command; false on
 * an overflow. */
static bool expire_when(const struct msg *m, long long v, int64_t now, long long *when)
{
    const char *name = m->cmd->name;
    if (name[0] != 'p') {
        if (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000)
            return false;
        v *= 1000;
    }
    if (!strstr(name, "at")) {
        if (v > LLONG_MAX - now)
            return false;
        v += now;
    }
    *when = v;
    return true;
}

/* Whether the options let a key with expiry cur (0 = none) take when; a
 * key without expiry counts as an infinite TTL for GT/LT. */
static bool expire_allowed(int f, int64_t cur, long long when)
{
    if ((f & EX_NX) && cur)
        return false;
    if ((f & EX_XX) && !cur)
        return false;
    if ((f & EX_GT) && (!cur || when <= cur))
        return false;
    return !((f & EX_LT) && cur && when >= cur);
}

/* EXPIRE key seconds [NX|XX|GT|LT] / PEXPIRE key ms [..] /
 * EXPIREAT key unix-s [..] / PEXPIREAT key unix-ms [..] */
void sh_expire(struct shard *s, struct msg *m)
{
    long long v, when;
    int f = 0;
    if (!arg_ll(m, 2, &v)) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    char bad[96];
    const char *e = expire_options(m, &f, bad, sizeof bad);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    int64_t now = clock_now_ms();
    if (!expire_when(m, v, now, &when)) {
        kvcmd_fail(s, m, "ERR invalid expire time in '%s' command", m->cmd->name);
        return;
    }
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_NONE, &err);
    if (err)
        return;
    if (!kv && kvcmd_is_queue(s, m->req.argv[1], m->req.len[1])) {
        queue_no_expiry(s, m);
        return;
    }
    if (!kv || !expire_allowed(f, kv->expire_at, when)) {
        kvcmd_reply_int(s, m, 0);
        return;
    }
    if (when <= now) {
        keyspace_delete(&s->ks, kv);
    } else {
        keyspace_set_expire(&s->ks, kv, when);
        keyspace_save(&s->ks, kv);
    }
    kvcmd_reply_int(s, m, 1);
}

/* TTL key / PTTL key / EXPIRETIME key / PEXPIRETIME key */
void sh_ttl(struct shard *s, struct msg *m)
{
    const char *name = m->cmd->name;
    bool ms = name[0] == 'p', abs = strstr(name, "time") != NULL;
    int64_t now = clock_now_ms();
    struct kv *kv = keyspace_read(&s->ks, m->req.argv[1], m->req.len[1], now);
    if (!kv) {
        kvcmd_reply_int(s, m, kvcmd_is_queue(s, m->req.argv[1], m->req.len[1]) ? -1 : -2);
        return;
    }
    if (!kv->expire_at) {
        kvcmd_reply_int(s, m, -1);
        return;
    }
    long long v = abs ? kv->expire_at : kv->expire_at - now;
    if (v < 0)
        v = 0;
    kvcmd_reply_int(s, m, ms ? v : abs ? v / 1000 : (v + 500) / 1000);
}

/* PERSIST key */
void sh_persist(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_NONE, &err);
    if (err)
        return;
    if (!kv || !kv->expire_at) {
        kvcmd_reply_int(s, m, 0);
        return;
    }
    keyspace_set_expire(&s->ks, kv, 0);
    keyspace_save(&s->ks, kv);
    kvcmd_reply_int(s, m, 1);
}

/* RENAME key newkey / RENAMENX key newkey: both on this shard. */
void sh_rename(struct shard *s, struct msg *m)
{
    bool nx = m->req.len[0] == 8; /* renamenx */
    int64_t now = clock_now_ms();
    struct kv *kv = keyspace_find(&s->ks, m->req.argv[1], m->req.len[1], now);
    if (!kv) {
        if (kvcmd_is_queue(s, m->req.argv[1], m->req.len[1]))
            kvcmd_fail(s, m, "ERR '%.200s' is a job queue; queues cannot be renamed (their jobs' ids and receipts "
                       "name them)", m->req.argv[1]);
        else
            kvcmd_fail(s, m, "ERR no such key");
        return;
    }
    bool same = m->req.len[1] == m->req.len[2] && memcmp(m->req.argv[1], m->req.argv[2], m->req.len[1]) == 0;
    struct kv *dst = keyspace_find(&s->ks, m->req.argv[2], m->req.len[2], now);
    if (nx && dst) {
        kvcmd_reply_int(s, m, 0);
        return;
    }
    if (same) {
        if (nx)
            kvcmd_reply_int(s, m, 0);
        else
            kvcmd_reply_ok(s, m);
        return;
    }
    if (!dst) {
        struct queue *q = shard_queue(s, m, 2, false);
        if (q && queue_unfinished(q) > 0) {
            kvcmd_fail(s, m, KS_WRONGTYPE);
            return;
        }
    }
    if (dst)
        keyspace_delete(&s->ks, dst);
    keyspace_rename(&s->ks, kv, m->req.argv[2], m->req.len[2]);
    if (nx)
        kvcmd_reply_int(s, m, 1);
    else
        kvcmd_reply_ok(s, m);
}

/* -------------------------------------------------------- whole keyspace */

static void count_ready(void *arg, struct queue *q)
{
    *(long long *)arg += q->nready > 0;
}

/* DBSIZE: this shard's keys and queues with ready jobs. */
void sh_dbsize_keys(struct shard *s, struct msg *m)
{
    m->num = (long long)s->ks.keys.n;
    qtable_each(&s->st.queues, count_ready, &m->num);
    shard_reply(s, m);
}

struct key_list {
    struct shard *s;
    struct msg *m;
    const char *pat;
    size_t plen;
    const char *type;            /* SCAN TYPE filter, or NULL */
    char **names;
    size_t *lens;
    size_t n, cap;
};

static void list_add(struct key_list *l, const char *k, size_t n, const char *type)
{
    if (l->pat && !kvcmd_glob(l->pat, l->plen, k, n, false))
        return;
    if (l->type && strcasecmp(l->type, type) != 0)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->names = realloc(l->names, l->cap * sizeof *l->names);
        l->lens = realloc(l->lens, l->cap * sizeof *l->lens);
        if (!l->names || !l->lens)
            abort();
    }
    l->names[l->n] = malloc(n + 1);
    if (!l->names[l->n])
        abort();
    memcpy(l->names[l->n], k, n + 1);
    l->lens[l->n++] = n;
}

static void list_queue(void *arg, struct queue *q)
{
    if (q->nready)
        list_add(arg, q->name, q->namelen, "list");
}

static void list_entry(void *arg, struct dict_entry *e)
{
    struct key_list *l = arg;
    struct kv *kv = e->val;
    list_add(l, e->key, e->klen, keyspace_type_name(kv->type));
}

/* Drops the listed names whose key expired (lazily, journaled), then
 * writes the rest as bulk strings; returns how many. */
static size_t list_emit(struct key_list *l, resp_buf *out, bool header)
{
    int64_t now = clock_now_ms();
    size_t live = 0;
    for (size_t i = 0; i < l->n; i++) {
        bool alive = keyspace_find(&l->s->ks, l->names[i], l->lens[i], now) ||
                     kvcmd_is_queue(l->s, l->names[i], l->lens[i]);
        if (!alive) {
            free(l->names[i]);
            l->names[i] = NULL;
        } else {
            live++;
        }
    }
    if (header)
        resp_add_array(out, live);
    for (size_t i = 0; i < l->n; i++) {
        if (l->names[i])
            resp_add_bulk(out, l->names[i], l->lens[i]);
        free(l->names[i]);
    }
    free(l->names);
    free(l->lens);
    return live;
}

/* KEYS pattern: this shard's part (names as bulk strings, count in num). */
void sh_keys(struct shard *s, struct msg *m)
{
    struct key_list l = { .s = s, .m = m, .pat = m->req.argv[1], .plen = m->req.len[1] };
    dict_each(&s->ks.keys, list_entry, &l);
    qtable_each(&s->st.queues, list_queue, &l);
    m->num = (long long)list_emit(&l, &m->out, false);
    shard_reply(s, m);
}

static void finish_keys(struct conn *c, struct slot *sl)
{
    resp_add_array(&sl->out, (size_t)sl->num);
    for (int k = 0; k < sl->nparts; k++)
        resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
}

void io_keys(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_keys);
}

void io_scan(struct conn *c, struct msg *m)
{
    struct kvcmd_scan a;
    const char *e = kvcmd_scan_args(m, 1, true, &a);
    if (e) {
        conn_reply_error(c, m, "%s", e);
        return;
    }
    int n = c->io->srv->nshards;
    conn_route(c, m, (int)(a.cursor % (uint64_t)n));
}

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] */
void sh_scan(struct shard *s, struct msg *m)
{
    struct kvcmd_scan a;
    const char *e = kvcmd_scan_args(m, 1, true, &a);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    uint64_t cur = a.cursor;
    long long count = a.count;
    int pat = a.pat, type = a.type;
    uint64_t n = (uint64_t)s->srv->nshards, inner = cur / n;
    struct key_list l = { .s = s, .m = m };
    if (pat) {
        l.pat = m->req.argv[pat];
        l.plen = m->req.len[pat];
    }
    if (type)
        l.type = m->req.argv[type];
    if (inner == 0)
        qtable_each(&s->st.queues, list_queue, &l);
    long long visited = 0;
    do {
        inner = dict_scan(&s->ks.keys, inner, list_entry, &l);
        visited++;
    } while (inner && visited < count * 2 && (long long)l.n < count);
    uint64_t next = 0;
    if (inner)
        next = inner * n + (uint64_t)s->id;
    else if ((uint64_t)s->id + 1 < n)
        next = (uint64_t)s->id + 1;
    char buf[32];
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, buf, (size_t)snprintf(buf, sizeof buf, "%" PRIu64, next));
    list_emit(&l, &m->out, true);
    shard_reply(s, m);
}

/* RANDOMKEY: this shard's pick (bulk, or nothing), weighted in num. */
void sh_randomkey(struct shard *s, struct msg *m)
{
    int64_t now = clock_now_ms();
    for (int tries = 0; tries < 20 && s->ks.keys.n; tries++) {
        struct dict_entry *e = dict_random(&s->ks.keys, (uint64_t)(store_random(&s->st) * 18446744073709551615.0));
        struct kv *kv = e->val;
        if (kv->expire_at && kv->expire_at <= now) {
            keyspace_find(&s->ks, e->key, e->klen, now); /* expires it */
            continue;
        }
        resp_add_bulk(&m->out, e->key, e->klen);
        m->num = (long long)s->ks.keys.n;
        break;
    }
    if (m->whole && !m->out.len)
        resp_add_null(&m->out, m->proto);
    shard_reply(s, m);
}

static void finish_randomkey(struct conn *c, struct slot *sl)
{
    long long total = 0;
    for (int k = 0; k < sl->nparts; k++)
        total += sl->parts[k].len ? 1 : 0;
    if (!total) {
        resp_add_null(&sl->out, c->proto);
        return;
    }
    long long pick = (long long)(clock_mono_us() % (uint64_t)total);
    for (int k = 0; k < sl->nparts; k++) {
        if (!sl->parts[k].len)
            continue;
        if (pick-- == 0) {
            resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
            return;
        }
    }
}

void io_randomkey(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_randomkey);
}

static void finish_ok(struct conn *c, struct slot *sl)
{
    resp_add_simple(&sl->out, "OK");
}

void io_flushdb(struct conn *c, struct msg *m)
{
    if (m->req.argc > 2 || (m->req.argc == 2 && !arg_is(m, 1, "ASYNC") && !arg_is(m, 1, "SYNC"))) {
        conn_reply_error(c, m, KV_ERR_SYNTAX);
        return;
    }
    conn_gather(c, m, true, finish_ok);
}

static void collect(void *arg, struct dict_entry *e)
{
    struct kv ***p = arg;
    *(*p)++ = e->val;
}

/* FLUSHDB / FLUSHALL: every keyspace key of this shard (queues stay). */
void sh_flushdb(struct shard *s, struct msg *m)
{
    size_t n = s->ks.keys.n;
    struct kv **all = malloc((n ? n : 1) * sizeof *all), **p = all;
    if (!all)
        abort();
    dict_each(&s->ks.keys, collect, &p);
    for (size_t i = 0; i < n; i++)
        keyspace_delete(&s->ks, all[i]);
    free(all);
    if (m->whole)
        resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}
