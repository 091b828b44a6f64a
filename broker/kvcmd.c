/*
 * kvcmd.c - shared pieces of the keyspace commands (see kvcmd.h).
 */
#include "kvcmd.h"

#include "args.h"
#include "clock.h"
#include "config.h"
#include "context.h"
#include "msg.h"
#include "queue.h"
#include "shard.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool kvcmd_fail(struct shard *s, struct msg *m, const char *fmt, ...)
{
    va_list ap;
    resp_buf_reset(&m->out);
    va_start(ap, fmt);
    resp_add_verror(&m->out, fmt, ap);
    va_end(ap);
    shard_reply(s, m);
    return true;
}

static bool scan_cursor(const struct msg *m, int i, uint64_t *out)
{
    const char *p = m->req.argv[i];
    size_t n = m->req.len[i];
    if (n > 20)
        return false;
    uint64_t v = 0; /* "" is cursor 0, as in Redis */
    for (size_t k = 0; k < n; k++) {
        if (p[k] < '0' || p[k] > '9' || v > (UINT64_MAX - (uint64_t)(p[k] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(p[k] - '0');
    }
    *out = v;
    return true;
}

const char *kvcmd_scan_args(const struct msg *m, int at, bool type_ok, struct kvcmd_scan *out)
{
    *out = (struct kvcmd_scan){ .count = 10 };
    if (!scan_cursor(m, at, &out->cursor))
        return KV_ERR_CURSOR;
    for (int i = at + 1; i < m->req.argc; i += 2) {
        if (i + 1 >= m->req.argc)
            return KV_ERR_SYNTAX;
        if (arg_is(m, i, "COUNT")) {
            if (!arg_ll(m, i + 1, &out->count))
                return KV_ERR_INT;
            if (out->count < 1)
                return KV_ERR_SYNTAX;
        } else if (arg_is(m, i, "MATCH")) {
            out->pat = i + 1;
        } else if (type_ok && arg_is(m, i, "TYPE")) {
            out->type = i + 1;
        } else {
            return KV_ERR_SYNTAX;
        }
    }
    return NULL;
}

void kvcmd_reply_int(struct shard *s, struct msg *m, long long v)
{
    resp_add_int(&m->out, v);
    shard_reply(s, m);
}

void kvcmd_reply_ok(struct shard *s, struct msg *m)
{
    resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}

void kvcmd_reply_null(struct shard *s, struct msg *m)
{
    resp_add_null(&m->out, m->proto);
    shard_reply(s, m);
}

void kvcmd_reply_bulk(struct shard *s, struct msg *m, const char *p, size_t n)
{
    resp_add_bulk(&m->out, p, n);
    shard_reply(s, m);
}

bool kvcmd_is_queue(struct shard *s, const char *key, size_t len)
{
    struct queue *q = store_queue(&s->st, key, len, false);
    return q && q->nready > 0;
}

static struct kv *lookup(struct shard *s, struct msg *m, int i, int type, bool *err, bool reading)
{
    const char *k = m->req.argv[i];
    size_t n = m->req.len[i];
    int64_t now = clock_now_ms();
    struct kv *kv = reading ? keyspace_read(&s->ks, k, n, now) : keyspace_find(&s->ks, k, n, now);
    *err = false;
    if (kv && type != KV_NONE && kv->type != type) {
        *err = kvcmd_fail(s, m, KS_WRONGTYPE);
        return NULL;
    }
    if (!kv) {
        struct queue *q = store_queue(&s->st, k, n, false);
        if (q && (reading ? q->nready > 0 : queue_unfinished(q) > 0)) {
            *err = kvcmd_fail(s, m, KS_WRONGTYPE);
            return NULL;
        }
    }
    return kv;
}

struct kv *kvcmd_read(struct shard *s, struct msg *m, int i, int type, bool *err)
{
    return lookup(s, m, i, type, err, true);
}

struct kv *kvcmd_write(struct shard *s, struct msg *m, int i, int type, bool *err)
{
    return lookup(s, m, i, type, err, false);
}

struct kv *kvcmd_write_create(struct shard *s, struct msg *m, int i, int type)
{
    bool err;
    struct kv *kv = kvcmd_write(s, m, i, type, &err);
    if (err)
        return NULL;
    if (!kv)
        kv = keyspace_create(&s->ks, m->req.argv[i], m->req.len[i], type, clock_now_ms());
    return kv;
}

bool kvcmd_queue_refused(struct shard *s, struct msg *m, int i)
{
    if (!keyspace_find(&s->ks, m->req.argv[i], m->req.len[i], clock_now_ms()))
        return false;
    return kvcmd_fail(s, m, KS_WRONGTYPE);
}

bool kvcmd_admit(struct shard *s, struct msg *m)
{
    const struct config *cfg = &s->srv->cfg;
    if (cfg->maxmemory == 0)
        return true;
    int64_t budget = cfg->maxmemory / s->srv->nshards;
    if (s->ks.bytes <= budget || keyspace_evict(&s->ks, budget, cfg->maxmemory_policy, clock_now_ms()))
        return true;
    kvcmd_fail(s, m, "OOM command not allowed when used memory > 'maxmemory'. (keys on this shard take %lld bytes "
               "of its %lld; raise maxmemory, choose an evicting maxmemory-policy, or delete keys)",
               (long long)s->ks.bytes, (long long)budget);
    return false;
}

/* -------------------------------------------------------------- numbers */

bool kvcmd_long_double(const char *p, size_t n, long double *out)
{
    if (n == 0 || n > 256 || isspace((unsigned char)p[0]))
        return false;
    char buf[260];
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long double d = strtold(buf, &end);
    if (end != buf + n || isnan(d) || errno == ERANGE)
        return false;
    *out = d;
    return true;
}

int kvcmd_format_ld(char *buf, size_t cap, long double v)
{
    if (isinf(v))
        return snprintf(buf, cap, "%s", v > 0 ? "inf" : "-inf");
    int n = snprintf(buf, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n >= cap)
        return snprintf(buf, cap, "%.17Lg", v);
    if (strchr(buf, '.')) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
        buf[n] = '\0';
    }
    if (n == 2 && strcmp(buf, "-0") == 0)
        n = snprintf(buf, cap, "0");
    return n;
}

/* ----------------------------------------------------------------- glob */

static int fold(int c, bool nocase)
{
    return nocase ? tolower(c) : c;
}

/* Whether c falls in the range p[0]-p[2] of a class (either way round). */
static bool glob_range(const char *p, unsigned char c, bool nocase)
{
    int a = fold((unsigned char)p[0], nocase), b = fold((unsigned char)p[2], nocase);
    int x = fold(c, nocase);
    if (a > b) {
        int t = a;
        a = b;
        b = t;
    }
    return x >= a && x <= b;
}

/* Matches c against the class [...] whose body starts at *p (just after
 * the '['); leaves *p on its ']' (or at the end of an unterminated
 * pattern, *pl == 0). */
static bool glob_class(const char **pp, size_t *plp, unsigned char c, bool nocase)
{
    const char *p = *pp;
    size_t pl = *plp;
    bool neg = pl && *p == '^';
    if (neg)
        p++, pl--;
    bool match = false;
    while (pl && *p != ']') {
        if (*p == '\\' && pl >= 2) {
            p++, pl--;
            if ((unsigned char)*p == c)
                match = true;
        } else if (pl >= 3 && p[1] == '-') {
            if (glob_range(p, c, nocase))
                match = true;
            p += 2, pl -= 2;
        } else if (fold((unsigned char)*p, nocase) == fold(c, nocase)) {
            match = true;
        }
        p++, pl--;
    }
    *pp = p;
    *plp = pl;
    return neg ? !match : match;
}

/* A run of '*' at p: whether the rest of the pattern matches some suffix of s. */
static bool glob_star(const char *p, size_t pl, const char *s, size_t sl, bool nocase)
{
    while (pl > 1 && p[1] == '*')
        p++, pl--;
    if (pl == 1)
        return true;
    for (size_t k = 0; k <= sl; k++)
        if (kvcmd_glob(p + 1, pl - 1, s + k, sl - k, nocase))
            return true;
    return false;
}

bool kvcmd_glob(const char *p, size_t pl, const char *s, size_t sl, bool nocase)
{
    while (pl) {
        switch (*p) {
        case '*':
            return glob_star(p, pl, s, sl, nocase);
        case '?':
            if (!sl)
                return false;
            s++, sl--;
            break;
        case '[':
            if (!sl)
                return false;
            p++, pl--;
            if (!glob_class(&p, &pl, (unsigned char)*s, nocase))
                return false;
            s++, sl--;
            if (!pl) /* unterminated class: Redis stops at the end of the pattern */
                return sl == 0;
            break;
        case '\\':
            if (pl >= 2)
                p++, pl--;
            /* fall through */
        default:
            if (!sl || fold((unsigned char)*p, nocase) != fold((unsigned char)*s, nocase))
                return false;
            s++, sl--;
            break;
        }
        p++, pl--;
    }
    return sl == 0;
}
