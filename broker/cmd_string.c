/*
 * cmd_string.c - string commands on the shard thread (see cmd_string.h and
 * docs/protocol.md, "Strings"): GET SET SETNX SETEX PSETEX GETDEL GETEX
 * MGET MSET MSETNX INCR INCRBY DECR DECRBY INCRBYFLOAT APPEND STRLEN
 * GETRANGE, with Redis's replies and errors.
 *
 * Each handler parses its own arguments (so it runs the same inside EXEC),
 * changes the keyspace, journals the change in the turn's transaction
 * (keyspace_save/delete) and replies; the reply leaves after the commit.
 */
#include "cmd_string.h"

#include "args.h"
#include "clock.h"
#include "kvcmd.h"
#include "msg.h"
#include "shard.h"
#include "slot.h"
#include "xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_bytes(const char *p, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* Stores value into key (created as a string when absent); expire_at < 0
 * keeps the current expiry, 0 clears it. A key whose expiry is already
 * past is deleted at once, as Redis does. */
static void store(struct shard *s, const char *key, size_t klen, struct kv *kv, const char *v, size_t vlen,
                  int64_t expire_at)
{
    int64_t now = clock_now_ms();
    if (kv && kv->type != KV_STRING) {
        keyspace_delete(&s->ks, kv);
        kv = NULL;
    }
    if (!kv)
        kv = keyspace_create(&s->ks, key, klen, KV_STRING, now);
    keyspace_set_str(&s->ks, kv, dup_bytes(v, vlen), vlen);
    if (expire_at >= 0)
        keyspace_set_expire(&s->ks, kv, expire_at);
    if (kv->expire_at && kv->expire_at <= now) {
        keyspace_delete(&s->ks, kv);
        return;
    }
    keyspace_save(&s->ks, kv);
}

/* ------------------------------------------------------- expiry options */

enum { EXP_NONE, EXP_EX, EXP_PX, EXP_EXAT, EXP_PXAT };

/* Turns an EX/PX/EXAT/PXAT amount into an absolute Unix ms time; false on
 * a value Redis calls an invalid expire time. */
static bool expire_time(int unit, long long v, int64_t now, int64_t *at)
{
    if (v <= 0)
        return false;
    bool secs = unit == EXP_EX || unit == EXP_EXAT;
    if (secs && v > LLONG_MAX / 1000)
        return false;
    long long ms = secs ? v * 1000 : v;
    if (unit == EXP_EX || unit == EXP_PX) {
        if (ms > LLONG_MAX - now)
            return false;
        ms += now;
    }
    *at = ms;
    return true;
}

static int expire_word(const struct msg *m, int i)
{
    if (arg_is(m, i, "EX"))
        return EXP_EX;
    if (arg_is(m, i, "PX"))
        return EXP_PX;
    if (arg_is(m, i, "EXAT"))
        return EXP_EXAT;
    if (arg_is(m, i, "PXAT"))
        return EXP_PXAT;
    return EXP_NONE;
}

/* ------------------------------------------------------------------ GET */

/* GET key */
void sh_get(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    if (!kv)
        kvcmd_reply_null(s, m);
    else
        kvcmd_reply_bulk(s, m, kv->str, kv->len);
}

struct set_opts {
    bool nx, xx, get, keepttl;
    int64_t at;                  /* absolute expiry, 0 = none */
};

/* SET's options from argv[3]; NULL or the error. */
static const char *set_options(const struct msg *m, struct set_opts *o)
{
    int unit = EXP_NONE;
    long long amount = 0;
    memset(o, 0, sizeof *o);
    for (int i = 3; i < m->req.argc; i++) {
        int w = expire_word(m, i);
        if (arg_is(m, i, "NX") && !o->xx) {
            o->nx = true;
        } else if (arg_is(m, i, "XX") && !o->nx) {
            o->xx = true;
        } else if (arg_is(m, i, "GET")) {
            o->get = true;
        } else if (arg_is(m, i, "KEEPTTL") && unit == EXP_NONE) {
            o->keepttl = true;
        } else if (w != EXP_NONE && unit == EXP_NONE && !o->keepttl && i + 1 < m->req.argc) {
            unit = w;
            if (!arg_ll(m, ++i, &amount))
                return KV_ERR_INT;
        } else {
            return KV_ERR_SYNTAX;
        }
    }
    if (unit != EXP_NONE && !expire_time(unit, amount, clock_now_ms(), &o->at))
        return "ERR invalid expire time in 'set' command";
    return NULL;
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
void sh_set(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    struct set_opts o;
    const char *e = set_options(m, &o);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_NONE, &err);
    if (err)
        return;
    if (o.get && kv && kv->type != KV_STRING) {
        kvcmd_fail(s, m, KS_WRONGTYPE);
        return;
    }
    if (o.get && kv)
        resp_add_bulk(&m->out, kv->str, kv->len);
    else if (o.get)
        resp_add_null(&m->out, m->proto);
    if ((o.nx && kv) || (o.xx && !kv)) {
        if (!o.get)
            resp_add_null(&m->out, m->proto);
        shard_reply(s, m);
        return;
    }
    store(s, m->req.argv[1], m->req.len[1], kv, m->req.argv[2], m->req.len[2], o.keepttl ? -1 : o.at);
    if (!o.get)
        resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}

/* SETNX key value */
void sh_setnx(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_NONE, &err);
    if (err)
        return;
    if (!kv)
        store(s, m->req.argv[1], m->req.len[1], NULL, m->req.argv[2], m->req.len[2], 0);
    kvcmd_reply_int(s, m, kv ? 0 : 1);
}

/* SETEX key seconds value / PSETEX key milliseconds value */
void sh_setex(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool ms = m->req.len[0] == 6; /* psetex */
    long long v;
    if (!arg_ll(m, 2, &v)) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    int64_t at;
    if (!expire_time(ms ? EXP_PX : EXP_EX, v, clock_now_ms(), &at)) {
        kvcmd_fail(s, m, "ERR invalid expire time in '%s' command", ms ? "psetex" : "setex");
        return;
    }
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_NONE, &err);
    if (err)
        return;
    store(s, m->req.argv[1], m->req.len[1], kv, m->req.argv[3], m->req.len[3], at);
    kvcmd_reply_ok(s, m);
}

/* GETDEL key */
void sh_getdel(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    if (!kv) {
        kvcmd_reply_null(s, m);
        return;
    }
    resp_add_bulk(&m->out, kv->str, kv->len);
    keyspace_delete(&s->ks, kv);
    shard_reply(s, m);
}

/* GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST] */
void sh_getex(struct shard *s, struct msg *m)
{
    int unit = EXP_NONE;
    bool persist = false;
    long long amount = 0;
    for (int i = 2; i < m->req.argc; i++) {
        int w = expire_word(m, i);
        if (arg_is(m, i, "PERSIST") && unit == EXP_NONE && !persist) {
            persist = true;
        } else if (w != EXP_NONE && unit == EXP_NONE && !persist && i + 1 < m->req.argc) {
            unit = w;
            if (!arg_ll(m, ++i, &amount)) {
                kvcmd_fail(s, m, KV_ERR_INT);
                return;
            }
        } else {
            kvcmd_fail(s, m, KV_ERR_SYNTAX);
            return;
        }
    }
    int64_t now = clock_now_ms(), at = 0;
    if (unit != EXP_NONE && !expire_time(unit, amount, now, &at)) {
        kvcmd_fail(s, m, "ERR invalid expire time in 'getex' command");
        return;
    }
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    if (!kv) {
        kvcmd_reply_null(s, m);
        return;
    }
    resp_add_bulk(&m->out, kv->str, kv->len);
    if (unit != EXP_NONE && at <= now) {
        keyspace_delete(&s->ks, kv);
    } else if (unit != EXP_NONE || (persist && kv->expire_at)) {
        keyspace_set_expire(&s->ks, kv, persist ? 0 : at);
        keyspace_save(&s->ks, kv);
    }
    shard_reply(s, m);
}

/* MGET key [key ...]: this shard's part (see io_mget): one element per key
 * it owns, in argument order. */
void sh_mget(struct shard *s, struct msg *m)
{
    int64_t now = clock_now_ms();
    if (m->whole)
        resp_add_array(&m->out, (size_t)(m->req.argc - 1));
    for (int i = 1; i < m->req.argc; i++) {
        if (!shard_owns(s, m->req.argv[i], m->req.len[i]))
            continue;
        struct kv *kv = keyspace_read(&s->ks, m->req.argv[i], m->req.len[i], now);
        if (kv && kv->type == KV_STRING)
            resp_add_bulk(&m->out, kv->str, kv->len);
        else
            resp_add_null(&m->out, m->proto);
    }
    shard_reply(s, m);
}

/* MSET key value [key value ...] / MSETNX key value [key value ...]: all
 * keys on this shard (the I/O thread checked). */
void sh_mset(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool nx = m->req.len[0] == 6; /* msetnx */
    if (m->req.argc % 2 == 0) {
        kvcmd_fail(s, m, "ERR wrong number of arguments for '%s' command", nx ? "msetnx" : "mset");
        return;
    }
    int64_t now = clock_now_ms();
    for (int i = 1; i < m->req.argc; i += 2) {
        struct kv *kv = keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], now);
        if (nx && kv) {
            kvcmd_reply_int(s, m, 0);
            return;
        }
        bool err;
        if (!kv && (kvcmd_write(s, m, i, KV_NONE, &err), err))
            return; /* a queue of that name: WRONGTYPE, nothing set */
    }
    for (int i = 1; i < m->req.argc; i += 2) {
        struct kv *kv = keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], now);
        store(s, m->req.argv[i], m->req.len[i], kv, m->req.argv[i + 1], m->req.len[i + 1], 0);
    }
    if (nx)
        kvcmd_reply_int(s, m, 1);
    else
        kvcmd_reply_ok(s, m);
}

/* -------------------------------------------------------------- numbers */

static void incr_by(struct shard *s, struct msg *m, long long by)
{
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    long long v = 0;
    if (kv && resp_parse_ll(kv->str, kv->len, &v) != 0) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        kvcmd_fail(s, m, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    store(s, m->req.argv[1], m->req.len[1], kv, buf, (size_t)n, -1);
    kvcmd_reply_int(s, m, v);
}

/* INCR key / DECR key */
void sh_incr(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    incr_by(s, m, m->req.argv[0][0] == 'd' || m->req.argv[0][0] == 'D' ? -1 : 1);
}

/* INCRBY key increment / DECRBY key decrement */
void sh_incrby(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    long long by;
    if (!arg_ll(m, 2, &by)) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    bool decr = m->req.argv[0][0] == 'd' || m->req.argv[0][0] == 'D';
    if (decr && by == LLONG_MIN) {
        kvcmd_fail(s, m, "ERR decrement would overflow");
        return;
    }
    incr_by(s, m, decr ? -by : by);
}

/* INCRBYFLOAT key increment */
void sh_incrbyfloat(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    long double by, v = 0;
    bool err; /* Redis's order: the key's type, its value, then the increment */
    struct kv *kv = kvcmd_write(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    if ((kv && (!kvcmd_long_double(kv->str, kv->len, &v) || isinf(v))) ||
        !kvcmd_long_double(m->req.argv[2], m->req.len[2], &by)) {
        kvcmd_fail(s, m, KV_ERR_FLOAT);
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        kvcmd_fail(s, m, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[400];
    int n = kvcmd_format_ld(buf, sizeof buf, v);
    store(s, m->req.argv[1], m->req.len[1], kv, buf, (size_t)n, -1);
    kvcmd_reply_bulk(s, m, buf, (size_t)n);
}

/* ---------------------------------------------------------------- bytes */

#define STRING_MAX (512LL * 1024 * 1024)

/* APPEND key value */
void sh_append(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    size_t old = kv ? kv->len : 0, add = m->req.len[2];
    if ((long long)(old + add) > STRING_MAX) {
        kvcmd_fail(s, m, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return;
    }
    char *p = xmalloc(old + add + 1);
    if (old)
        memcpy(p, kv->str, old);
    memcpy(p + old, m->req.argv[2], add);
    p[old + add] = '\0';
    if (!kv)
        kv = keyspace_create(&s->ks, m->req.argv[1], m->req.len[1], KV_STRING, clock_now_ms());
    keyspace_set_str(&s->ks, kv, p, old + add);
    keyspace_save(&s->ks, kv);
    kvcmd_reply_int(s, m, (long long)(old + add));
}

/* STRLEN key */
void sh_strlen(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_STRING, &err);
    if (!err)
        kvcmd_reply_int(s, m, kv ? (long long)kv->len : 0);
}

/* GETRANGE key start end */
void sh_getrange(struct shard *s, struct msg *m)
{
    long long a, b;
    if (!arg_ll(m, 2, &a) || !arg_ll(m, 3, &b)) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_STRING, &err);
    if (err)
        return;
    long long len = kv ? (long long)kv->len : 0;
    if (a < 0 && b < 0 && a > b) {
        kvcmd_reply_bulk(s, m, "", 0);
        return;
    }
    if (a < 0)
        a += len;
    if (b < 0)
        b += len;
    if (a < 0)
        a = 0;
    if (b < 0)
        b = 0;
    if (b >= len)
        b = len - 1;
    if (!kv || len == 0 || a > b) {
        kvcmd_reply_bulk(s, m, "", 0);
        return;
    }
    kvcmd_reply_bulk(s, m, kv->str + a, (size_t)(b - a + 1));
}
