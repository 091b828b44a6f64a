/*
 * cmd_zset.c - sorted-set commands on the shard thread (docs/protocol.md,
 * "Sorted sets"): ZADD ZINCRBY ZSCORE ZMSCORE ZRANK ZREVRANK ZCARD ZCOUNT
 * ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES) ZREVRANGE ZRANGEBYSCORE
 * ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREM ZREMRANGEBYSCORE
 * ZREMRANGEBYRANK ZPOPMIN ZPOPMAX ZSCAN, with Redis's replies and errors.
 *
 * Every range command goes through one parser (struct range) and one
 * walker (range_collect), the way Redis's zrangeGenericCommand does. Each
 * changed member is journaled as its own row (keyspace_save_member); a set
 * whose last member goes is deleted.
 */
#include "cmd_zset.h"

#include "args.h"
#include "clock.h"
#include "command.h"
#include "kvcmd.h"
#include "msg.h"
#include "shard.h"
#include "xalloc.h"
#include "zset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void add_score(struct msg *m, double d)
{
    resp_add_double(&m->out, m->proto, d);
}

/* The set for a write (created when create is true); NULL when absent or
 * on WRONGTYPE (*err set, the error sent). */
static struct kv *zwrite(struct shard *s, struct msg *m, bool create, bool *created, bool *err)
{
    struct kv *kv = kvcmd_write(s, m, 1, KV_ZSET, err);
    *created = false;
    if (*err)
        return NULL;
    if (!kv && create) {
        kv = keyspace_create(&s->ks, m->req.argv[1], m->req.len[1], KV_ZSET, clock_now_ms());
        *created = true;
    }
    return kv;
}

/* Deletes kv when its last member went. */
static void drop_if_empty(struct shard *s, struct kv *kv)
{
    if (kv && zset_len(kv->zset) == 0)
        keyspace_delete(&s->ks, kv);
}

static void set_member(struct shard *s, struct kv *kv, const char *mem, size_t len, double score)
{
    s->ks.bytes -= (int64_t)zset_bytes(kv->zset);
    zset_set(kv->zset, mem, len, score);
    s->ks.bytes += (int64_t)zset_bytes(kv->zset);
    keyspace_save_member(&s->ks, kv, mem, len);
}

static void del_member(struct shard *s, struct kv *kv, const char *mem, size_t len)
{
    s->ks.bytes -= (int64_t)zset_bytes(kv->zset);
    zset_del(kv->zset, mem, len);
    s->ks.bytes += (int64_t)zset_bytes(kv->zset);
    keyspace_save_member(&s->ks, kv, mem, len);
}

/* ---------------------------------------------------------------- ZADD */

enum { ZA_NX = 1, ZA_XX = 2, ZA_GT = 4, ZA_LT = 8, ZA_CH = 16, ZA_INCR = 32 };

/* ZADD's options from argv[2]; *first: the first score. NULL or an error. */
static const char *zadd_options(const struct msg *m, int *flags, int *first)
{
    static const struct { const char *w; int f; } opts[] = {
        { "NX", ZA_NX }, { "XX", ZA_XX }, { "GT", ZA_GT }, { "LT", ZA_LT }, { "CH", ZA_CH }, { "INCR", ZA_INCR },
    };
    int f = 0, i = 2;
    for (; i < m->req.argc; i++) {
        int hit = 0;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (arg_is(m, i, opts[k].w))
                hit = opts[k].f;
        if (!hit)
            break;
        f |= hit;
    }
    *flags = f;
    *first = i;
    int rest = m->req.argc - i;
    if (rest % 2 != 0 || rest == 0)
        return KV_ERR_SYNTAX;
    if ((f & ZA_NX) && (f & ZA_XX))
        return "ERR XX and NX options at the same time are not compatible";
    if (((f & ZA_GT) || (f & ZA_LT)) && ((f & ZA_NX) || ((f & ZA_GT) && (f & ZA_LT))))
        return "ERR GT, LT, and/or NX options at the same time are not compatible";
    if ((f & ZA_INCR) && rest > 2)
        return "ERR INCR option supports a single increment-element pair";
    for (int k = i; k < m->req.argc; k += 2) {
        double d;
        if (!arg_double(m, k, &d))
            return KV_ERR_FLOAT;
    }
    return NULL;
}

struct zadd_result {
    long long added, changed;
    bool scored;                 /* INCR: a score to answer */
    double score;
};

/* One score/member pair under the flags; false when INCR made a NaN. */
static bool zadd_one(struct shard *s, struct kv *kv, int f, const char *mem, size_t len, double score,
                     struct zadd_result *r)
{
    double cur;
    bool exists = zset_score(kv->zset, mem, len, &cur);
    if ((exists && (f & ZA_NX)) || (!exists && (f & ZA_XX)))
        return true;
    if (exists && (f & ZA_INCR))
        score += cur;
    if (isnan(score))
        return false;
    if (score == 0)
        score = 0; /* -0 is kept and shown as 0, as Redis does */
    if (exists && (((f & ZA_GT) && score <= cur) || ((f & ZA_LT) && score >= cur)))
        return true;
    r->scored = true;
    r->score = score;
    if (exists && score == cur)
        return true;
    set_member(s, kv, mem, len, score);
    if (exists)
        r->changed++;
    else
        r->added++;
    return true;
}

/* ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...] */
void sh_zadd(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    int f, first;
    const char *e = zadd_options(m, &f, &first);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    bool created, err;
    struct kv *kv = zwrite(s, m, !(f & ZA_XX), &created, &err);
    if (err)
        return;
    struct zadd_result r = { 0 };
    if (kv && created)
        keyspace_save(&s->ks, kv);
    for (int i = first; kv && i < m->req.argc; i += 2) {
        double score;
        arg_double(m, i, &score);
        if (!zadd_one(s, kv, f, m->req.argv[i + 1], m->req.len[i + 1], score, &r)) {
            drop_if_empty(s, kv);
            kvcmd_fail(s, m, "ERR resulting score is not a number (NaN)");
            return;
        }
    }
    drop_if_empty(s, kv);
    if (!(f & ZA_INCR)) {
        kvcmd_reply_int(s, m, (f & ZA_CH) ? r.added + r.changed : r.added);
    } else if (r.scored) {
        add_score(m, r.score);
        shard_reply(s, m);
    } else {
        kvcmd_reply_null(s, m);
    }
}

/* ZINCRBY key increment member */
void sh_zincrby(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    double by, cur = 0;
    if (!arg_double(m, 2, &by)) {
        kvcmd_fail(s, m, KV_ERR_FLOAT);
        return;
    }
    bool created, err;
    struct kv *kv = zwrite(s, m, true, &created, &err);
    if (!kv)
        return;
    zset_score(kv->zset, m->req.argv[3], m->req.len[3], &cur);
    double score = cur + by;
    if (isnan(score)) {
        drop_if_empty(s, kv);
        kvcmd_fail(s, m, "ERR resulting score is not a number (NaN)");
        return;
    }
    if (created)
        keyspace_save(&s->ks, kv);
    set_member(s, kv, m->req.argv[3], m->req.len[3], score);
    add_score(m, score);
    shard_reply(s, m);
}

/* ---------------------------------------------------------------- reads */

static struct kv *zread(struct shard *s, struct msg *m, bool *err)
{
    return kvcmd_read(s, m, 1, KV_ZSET, err);
}

/* ZSCORE key member: the score, or nil. ZMSCORE key member [member ...]:
 * an array with the score (or nil) of each member. */
void sh_zscore(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (err)
        return;
    if (strcmp(m->cmd->name, "zmscore") == 0)
        resp_add_array(&m->out, (size_t)(m->req.argc - 2));
    for (int i = 2; i < m->req.argc; i++) {
        double d;
        if (kv && zset_score(kv->zset, m->req.argv[i], m->req.len[i], &d))
            add_score(m, d);
        else
            resp_add_null(&m->out, m->proto);
    }
    shard_reply(s, m);
}

/* ZRANK key member / ZREVRANK key member */
void sh_zrank(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (err)
        return;
    long r = kv ? zset_rank(kv->zset, m->req.argv[2], m->req.len[2]) : -1;
    if (r < 0) {
        kvcmd_reply_null(s, m);
        return;
    }
    if (strcmp(m->cmd->name, "zrevrank") == 0)
        r = (long)zset_len(kv->zset) - 1 - r;
    kvcmd_reply_int(s, m, r);
}

/* ZCARD key */
void sh_zcard(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (!err)
        kvcmd_reply_int(s, m, kv ? (long long)zset_len(kv->zset) : 0);
}

/* --------------------------------------------------------------- ranges */

enum { BY_RANK, BY_SCORE, BY_LEX };

struct bound {
    double score;
    const char *lex;             /* NULL: -/+ infinity */
    size_t lexlen;
    bool ex;
};

struct range {
    int by;
    bool rev, withscores;
    long long start, stop;       /* BY_RANK */
    struct bound min, max;       /* BY_SCORE, BY_LEX */
    long long offset, count;     /* LIMIT; count < 0: all */
};

static bool parse_score_bound(const struct msg *m, int i, struct bound *b)
{
    const char *p = m->req.argv[i];
    size_t n = m->req.len[i];
    b->ex = n && p[0] == '(';
    if (b->ex)
        p++, n--;
    if (n == 0 || n > 200)
        return false;
    char buf[208];
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    b->score = strtod(buf, &end);
    return end == buf + n && !isnan(b->score) && buf[0] != ' ';
}

static bool parse_lex_bound(const struct msg *m, int i, struct bound *b, bool is_min)
{
    const char *p = m->req.argv[i];
    size_t n = m->req.len[i];
    if (n == 1 && (p[0] == '-' || p[0] == '+')) {
        b->lex = NULL;
        b->ex = false;
        /* "-" as a max or "+" as a min make an empty range */
        b->score = (p[0] == '-') == is_min ? 0 : 1;
        return true;
    }
    if (n == 0 || (p[0] != '(' && p[0] != '['))
        return false;
    b->ex = p[0] == '(';
    b->lex = p + 1;
    b->lexlen = n - 1;
    b->score = 0;
    return true;
}

static bool in_max(const struct znode *n, const struct range *r)
{
    if (r->by == BY_SCORE)
        return r->max.ex ? n->score < r->max.score : n->score <= r->max.score;
    if (!r->max.lex)
        return r->max.score == 0;
    size_t k = n->mlen < r->max.lexlen ? n->mlen : r->max.lexlen;
    int c = memcmp(n->member, r->max.lex, k);
    if (!c)
        c = (n->mlen > r->max.lexlen) - (n->mlen < r->max.lexlen);
    return r->max.ex ? c < 0 : c <= 0;
}

static bool in_min(const struct znode *n, const struct range *r)
{
    if (r->by == BY_SCORE)
        return r->min.ex ? n->score > r->min.score : n->score >= r->min.score;
    if (!r->min.lex)
        return r->min.score == 0;
    size_t k = n->mlen < r->min.lexlen ? n->mlen : r->min.lexlen;
    int c = memcmp(n->member, r->min.lex, k);
    if (!c)
        c = (n->mlen > r->min.lexlen) - (n->mlen < r->min.lexlen);
    return r->min.ex ? c > 0 : c >= 0;
}

/* Nodes of the range, in reply order; *n their number (caller frees). */
static struct znode **range_collect(const struct zset *z, const struct range *r, size_t *n)
{
    *n = 0;
    size_t len = zset_len(z);
    if (r->by == BY_RANK) {
        long long a = r->start, b = r->stop, l = (long long)len;
        if (a < 0)
            a += l;
        if (b < 0)
            b += l;
        if (a < 0)
            a = 0;
        if (a > b || a >= l)
            return NULL;
        if (b >= l)
            b = l - 1;
        struct znode **out = xmalloc((size_t)(b - a + 1) * sizeof *out);
        struct znode *x = r->rev ? zset_at(z, (size_t)(l - 1 - a)) : zset_at(z, (size_t)a);
        for (long long i = a; i <= b && x; i++) {
            out[(*n)++] = x;
            x = r->rev ? zset_prev(x) : zset_next(x);
        }
        return out;
    }
    if (r->offset < 0)
        return NULL;
    struct znode *x;
    if (r->by == BY_SCORE)
        x = r->rev ? zset_last_to(z, r->max.score, r->max.ex) : zset_first_from(z, r->min.score, r->min.ex);
    else if (r->rev)
        x = r->max.lex ? zset_last_lex(z, r->max.lex, r->max.lexlen, r->max.ex) : (r->max.score == 0 ? zset_last_lex(z, NULL, 0, false) : NULL);
    else
        x = r->min.lex ? zset_first_lex(z, r->min.lex, r->min.lexlen, r->min.ex) : (r->min.score == 0 ? zset_first_lex(z, NULL, 0, false) : NULL);
    size_t cap = 0;
    struct znode **out = NULL;
    long long skip = r->offset;
    for (; x && (r->rev ? in_min(x, r) : in_max(x, r)); x = r->rev ? zset_prev(x) : zset_next(x)) {
        if (r->rev ? !in_max(x, r) : !in_min(x, r))
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        if (r->count >= 0 && (long long)*n >= r->count)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            out = xrealloc(out, cap * sizeof *out);
        }
        out[(*n)++] = x;
    }
    return out;
}

static void emit_nodes(struct msg *m, struct znode **v, size_t n, bool withscores)
{
    bool pairs = withscores && m->proto >= 3;
    resp_add_array(&m->out, withscores && !pairs ? n * 2 : n);
    for (size_t i = 0; i < n; i++) {
        if (pairs)
            resp_add_array(&m->out, 2);
        resp_add_bulk(&m->out, v[i]->member, v[i]->mlen);
        if (withscores)
            add_score(m, v[i]->score);
    }
}

/* Parses the bounds at argv[a], argv[b] (min, max) for r->by. */
static const char *parse_bounds(const struct msg *m, int a, int b, struct range *r)
{
    if (r->by == BY_SCORE) {
        if (!parse_score_bound(m, a, &r->min) || !parse_score_bound(m, b, &r->max))
            return "ERR min or max is not a float";
    } else if (r->by == BY_LEX) {
        if (!parse_lex_bound(m, a, &r->min, true) || !parse_lex_bound(m, b, &r->max, false))
            return "ERR min or max not valid string range item";
    } else if (!arg_ll(m, a, &r->start) || !arg_ll(m, b, &r->stop)) {
        return KV_ERR_INT;
    }
    return NULL;
}

/* Options after the bounds (ZRANGE's full set, or the older commands'). */
static const char *parse_range_opts(const struct msg *m, int i, struct range *r, bool zrange)
{
    bool limit = false;
    for (; i < m->req.argc; i++) {
        if (arg_is(m, i, "WITHSCORES")) {
            r->withscores = true;
        } else if (arg_is(m, i, "LIMIT") && i + 2 < m->req.argc) {
            if (!arg_ll(m, i + 1, &r->offset) || !arg_ll(m, i + 2, &r->count))
                return KV_ERR_INT;
            limit = true;
            i += 2;
        } else if (zrange && arg_is(m, i, "BYSCORE") && r->by == BY_RANK) {
            r->by = BY_SCORE;
        } else if (zrange && arg_is(m, i, "BYLEX") && r->by == BY_RANK) {
            r->by = BY_LEX;
        } else if (zrange && arg_is(m, i, "REV")) {
            r->rev = true;
        } else {
            return KV_ERR_SYNTAX;
        }
    }
    if (limit && r->by == BY_RANK)
        return "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
    if (r->withscores && r->by == BY_LEX)
        return "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
    return NULL;
}

/* ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
 * ZREVRANGE key start stop [WITHSCORES]
 * ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
 * ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
 * ZRANGEBYLEX key min max [LIMIT offset count] / ZREVRANGEBYLEX key max min [..] */
void sh_zrange(struct shard *s, struct msg *m)
{
    const char *name = m->cmd->name;
    struct range r = { .by = BY_RANK, .count = -1 };
    bool zrange = strcmp(name, "zrange") == 0;
    r.rev = strncmp(name, "zrev", 4) == 0;
    if (strstr(name, "byscore"))
        r.by = BY_SCORE;
    else if (strstr(name, "bylex"))
        r.by = BY_LEX;
    const char *e = parse_range_opts(m, 4, &r, zrange);
    if (!e && r.by == BY_LEX && strstr(name, "bylex") == NULL && !zrange)
        e = KV_ERR_SYNTAX;
    /* the reversed forms name the bounds max first */
    if (!e)
        e = r.by != BY_RANK && r.rev ? parse_bounds(m, 3, 2, &r) : parse_bounds(m, 2, 3, &r);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (err)
        return;
    size_t n = 0;
    struct znode **v = kv ? range_collect(kv->zset, &r, &n) : NULL;
    emit_nodes(m, v, n, r.withscores);
    free(v);
    shard_reply(s, m);
}

/* ZCOUNT key min max */
void sh_zcount(struct shard *s, struct msg *m)
{
    struct range r = { .by = BY_SCORE, .count = -1 };
    const char *e = parse_bounds(m, 2, 3, &r);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (err)
        return;
    size_t n = 0;
    free(kv ? range_collect(kv->zset, &r, &n) : NULL);
    kvcmd_reply_int(s, m, (long long)n);
}

/* -------------------------------------------------------------- removals */

/* ZREM key member [member ...] */
void sh_zrem(struct shard *s, struct msg *m)
{
    bool created, err;
    struct kv *kv = zwrite(s, m, false, &created, &err);
    if (!kv) {
        if (!err)
            kvcmd_reply_int(s, m, 0);
        return;
    }
    long long n = 0;
    double d;
    for (int i = 2; i < m->req.argc; i++) {
        if (zset_score(kv->zset, m->req.argv[i], m->req.len[i], &d)) {
            del_member(s, kv, m->req.argv[i], m->req.len[i]);
            n++;
        }
    }
    drop_if_empty(s, kv);
    kvcmd_reply_int(s, m, n);
}

/* ZREMRANGEBYSCORE key min max / ZREMRANGEBYRANK key start stop */
void sh_zremrange(struct shard *s, struct msg *m)
{
    struct range r = { .by = strstr(m->cmd->name, "rank") ? BY_RANK : BY_SCORE, .count = -1 };
    const char *e = parse_bounds(m, 2, 3, &r);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    bool created, err;
    struct kv *kv = zwrite(s, m, false, &created, &err);
    if (!kv) {
        if (!err)
            kvcmd_reply_int(s, m, 0);
        return;
    }
    size_t n = 0;
    struct znode **v = range_collect(kv->zset, &r, &n);
    /* members are copied first: removing frees the nodes */
    for (size_t i = 0; i < n; i++) {
        char *mem = v[i]->member;
        size_t len = v[i]->mlen;
        v[i] = (struct znode *)(void *)xmalloc(len + 1 + sizeof(size_t));
        memcpy(v[i], &len, sizeof len);
        memcpy((char *)v[i] + sizeof len, mem, len + 1);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        memcpy(&len, v[i], sizeof len);
        del_member(s, kv, (char *)v[i] + sizeof len, len);
        free(v[i]);
    }
    free(v);
    drop_if_empty(s, kv);
    kvcmd_reply_int(s, m, (long long)n);
}

/* ZPOPMIN key [count] / ZPOPMAX key [count] */
void sh_zpop(struct shard *s, struct msg *m)
{
    bool max = strcmp(m->cmd->name, "zpopmax") == 0;
    long long count = 1;
    if (m->req.argc > 3) {
        kvcmd_fail(s, m, KV_ERR_SYNTAX);
        return;
    }
    if (m->req.argc == 3 && (!arg_ll(m, 2, &count) || count < 0)) {
        kvcmd_fail(s, m, "ERR value is out of range, must be positive");
        return;
    }
    bool created, err;
    struct kv *kv = zwrite(s, m, false, &created, &err);
    if (!kv) {
        if (!err) {
            resp_add_array(&m->out, 0);
            shard_reply(s, m);
        }
        return;
    }
    size_t n = zset_len(kv->zset);
    if ((size_t)count < n)
        n = (size_t)count;
    bool pairs = m->req.argc == 3 && m->proto >= 3;
    resp_add_array(&m->out, pairs ? n : n * 2);
    for (size_t i = 0; i < n; i++) {
        struct znode *x = max ? zset_at(kv->zset, zset_len(kv->zset) - 1) : zset_at(kv->zset, 0);
        if (pairs)
            resp_add_array(&m->out, 2);
        resp_add_bulk(&m->out, x->member, x->mlen);
        add_score(m, x->score);
        char *mem = xmalloc(x->mlen + 1);
        size_t len = x->mlen;
        memcpy(mem, x->member, len + 1);
        del_member(s, kv, mem, len);
        free(mem);
    }
    drop_if_empty(s, kv);
    shard_reply(s, m);
}

/* ----------------------------------------------------------------- ZSCAN */

struct zscan {
    struct msg *m;
    const char *pat;
    size_t plen;
    resp_buf items;
    size_t n;
};

static void zscan_one(void *arg, const struct znode *x)
{
    struct zscan *z = arg;
    if (z->pat && !kvcmd_glob(z->pat, z->plen, x->member, x->mlen, false))
        return;
    resp_add_bulk(&z->items, x->member, x->mlen);
    resp_add_double(&z->items, 2, x->score);
    z->n += 2;
}

/* ZSCAN key cursor [MATCH pattern] [COUNT n] */
void sh_zscan(struct shard *s, struct msg *m)
{
    struct kvcmd_scan a;
    const char *e = kvcmd_scan_args(m, 2, false, &a);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    unsigned long long cur = a.cursor;
    long long count = a.count;
    struct zscan z = { .m = m };
    if (a.pat) {
        z.pat = m->req.argv[a.pat];
        z.plen = m->req.len[a.pat];
    }
    bool err;
    struct kv *kv = zread(s, m, &err);
    if (err)
        return;
    resp_buf_init(&z.items);
    long long visited = 0;
    if (kv) {
        do {
            cur = zset_scan(kv->zset, cur, zscan_one, &z);
            visited++;
        } while (cur && (long long)z.n / 2 < count && visited < count * 2);
    } else {
        cur = 0;
    }
    char buf[32];
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, buf, (size_t)snprintf(buf, sizeof buf, "%llu", cur));
    resp_add_array(&m->out, z.n);
    resp_buf_append(&m->out, z.items.data, z.items.len);
    resp_buf_free(&z.items);
    shard_reply(s, m);
}
