/*
 * cmd_hash.c - hash commands on the shard thread (docs/protocol.md,
 * "Hashes"): HSET HMSET HSETNX HGET HMGET HGETALL HKEYS HVALS HDEL HEXISTS
 * HLEN HSTRLEN HINCRBY HINCRBYFLOAT HSCAN, with Redis's replies and errors.
 *
 * Fields live in the key's dict (keyspace.h); each changed field is
 * journaled as its own row (keyspace_save_field), and a hash whose last
 * field goes is deleted, as in Redis. Field order in replies is the dict's,
 * not insertion order (Redis gives no order either once a hash grows).
 */
#include "cmd_hash.h"

#include "args.h"
#include "clock.h"
#include "command.h"
#include "kvcmd.h"
#include "msg.h"
#include "shard.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kv *create(struct shard *s, struct msg *m, bool *created)
{
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_HASH, &err);
    *created = false;
    if (err)
        return NULL;
    if (!kv) {
        kv = keyspace_create(&s->ks, m->req.argv[1], m->req.len[1], KV_HASH, clock_now_ms());
        *created = true;
    }
    return kv;
}

/* HSET key field value [field value ...] / HMSET (replies OK) */
void sh_hset(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool hmset = m->cmd->name[1] == 'm';
    if (m->req.argc % 2 != 0) {
        kvcmd_fail(s, m, "ERR wrong number of arguments for '%s' command", hmset ? "hmset" : "hset");
        return;
    }
    bool created;
    struct kv *kv = create(s, m, &created);
    if (!kv)
        return;
    if (created)
        keyspace_save(&s->ks, kv);
    long long added = 0;
    for (int i = 2; i < m->req.argc; i += 2) {
        added += keyspace_hset(&s->ks, kv, m->req.argv[i], m->req.len[i], m->req.argv[i + 1], m->req.len[i + 1]);
        keyspace_save_field(&s->ks, kv, m->req.argv[i], m->req.len[i]);
    }
    if (hmset)
        kvcmd_reply_ok(s, m);
    else
        kvcmd_reply_int(s, m, added);
}

/* HSETNX key field value */
void sh_hsetnx(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    bool created;
    struct kv *kv = create(s, m, &created);
    if (!kv)
        return;
    if (!created && keyspace_hget(kv, m->req.argv[2], m->req.len[2])) {
        kvcmd_reply_int(s, m, 0);
        return;
    }
    if (created)
        keyspace_save(&s->ks, kv);
    keyspace_hset(&s->ks, kv, m->req.argv[2], m->req.len[2], m->req.argv[3], m->req.len[3]);
    keyspace_save_field(&s->ks, kv, m->req.argv[2], m->req.len[2]);
    kvcmd_reply_int(s, m, 1);
}

/* HGET key field */
void sh_hget(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    struct ks_bytes *v = kv ? keyspace_hget(kv, m->req.argv[2], m->req.len[2]) : NULL;
    if (v)
        kvcmd_reply_bulk(s, m, v->p, v->len);
    else
        kvcmd_reply_null(s, m);
}

/* HMGET key field [field ...] */
void sh_hmget(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    resp_add_array(&m->out, (size_t)(m->req.argc - 2));
    for (int i = 2; i < m->req.argc; i++) {
        struct ks_bytes *v = kv ? keyspace_hget(kv, m->req.argv[i], m->req.len[i]) : NULL;
        if (v)
            resp_add_bulk(&m->out, v->p, v->len);
        else
            resp_add_null(&m->out, m->proto);
    }
    shard_reply(s, m);
}

/* HGETALL key / HKEYS key / HVALS key */
void sh_hgetall(struct shard *s, struct msg *m)
{
    bool keys = strcmp(m->cmd->name, "hvals") != 0, vals = strcmp(m->cmd->name, "hkeys") != 0;
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    size_t n = kv ? kv->hash->n : 0;
    if (keys && vals)
        resp_add_map(&m->out, m->proto, n);
    else
        resp_add_array(&m->out, n);
    for (size_t b = 0; kv && b < kv->hash->nb; b++) {
        for (struct dict_entry *e = kv->hash->b[b]; e; e = e->next) {
            struct ks_bytes *v = e->val;
            if (keys)
                resp_add_bulk(&m->out, e->key, e->klen);
            if (vals)
                resp_add_bulk(&m->out, v->p, v->len);
        }
    }
    shard_reply(s, m);
}

/* HDEL key field [field ...] */
void sh_hdel(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_write(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    long long n = 0;
    for (int i = 2; kv && i < m->req.argc; i++) {
        if (keyspace_hdel(&s->ks, kv, m->req.argv[i], m->req.len[i])) {
            n++;
            keyspace_save_field(&s->ks, kv, m->req.argv[i], m->req.len[i]);
        }
    }
    if (kv && kv->hash->n == 0)
        keyspace_delete(&s->ks, kv);
    kvcmd_reply_int(s, m, n);
}

/* HEXISTS key field */
void sh_hexists(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (!err)
        kvcmd_reply_int(s, m, kv && keyspace_hget(kv, m->req.argv[2], m->req.len[2]) ? 1 : 0);
}

/* HLEN key */
void sh_hlen(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (!err)
        kvcmd_reply_int(s, m, kv ? (long long)kv->hash->n : 0);
}

/* HSTRLEN key field */
void sh_hstrlen(struct shard *s, struct msg *m)
{
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    struct ks_bytes *v = kv ? keyspace_hget(kv, m->req.argv[2], m->req.len[2]) : NULL;
    kvcmd_reply_int(s, m, v ? (long long)v->len : 0);
}

/* HINCRBY key field increment */
void sh_hincrby(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    long long by, v = 0;
    if (!arg_ll(m, 3, &by)) {
        kvcmd_fail(s, m, KV_ERR_INT);
        return;
    }
    bool created;
    struct kv *kv = create(s, m, &created);
    if (!kv)
        return;
    struct ks_bytes *old = keyspace_hget(kv, m->req.argv[2], m->req.len[2]);
    if (old && resp_parse_ll(old->p, old->len, &v) != 0) {
        kvcmd_fail(s, m, "ERR hash value is not an integer");
        return;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        if (created)
            keyspace_delete(&s->ks, kv);
        kvcmd_fail(s, m, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (created)
        keyspace_save(&s->ks, kv);
    keyspace_hset(&s->ks, kv, m->req.argv[2], m->req.len[2], buf, (size_t)n);
    keyspace_save_field(&s->ks, kv, m->req.argv[2], m->req.len[2]);
    kvcmd_reply_int(s, m, v);
}

/* HINCRBYFLOAT key field increment */
void sh_hincrbyfloat(struct shard *s, struct msg *m)
{
    if (!kvcmd_admit(s, m))
        return;
    long double by, v = 0;
    if (!kvcmd_long_double(m->req.argv[3], m->req.len[3], &by)) {
        kvcmd_fail(s, m, KV_ERR_FLOAT);
        return;
    }
    bool created;
    struct kv *kv = create(s, m, &created);
    if (!kv)
        return;
    struct ks_bytes *old = keyspace_hget(kv, m->req.argv[2], m->req.len[2]);
    if (old && (!kvcmd_long_double(old->p, old->len, &v) || isinf(v))) {
        kvcmd_fail(s, m, "ERR hash value is not a float");
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        if (created)
            keyspace_delete(&s->ks, kv);
        kvcmd_fail(s, m, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[400];
    int n = kvcmd_format_ld(buf, sizeof buf, v);
    if (created)
        keyspace_save(&s->ks, kv);
    keyspace_hset(&s->ks, kv, m->req.argv[2], m->req.len[2], buf, (size_t)n);
    keyspace_save_field(&s->ks, kv, m->req.argv[2], m->req.len[2]);
    kvcmd_reply_bulk(s, m, buf, (size_t)n);
}

struct hscan {
    struct msg *m;
    const char *pat;
    size_t plen;
    resp_buf items;
    size_t n;
};

static void hscan_entry(void *arg, struct dict_entry *e)
{
    struct hscan *h = arg;
    if (h->pat && !kvcmd_glob(h->pat, h->plen, e->key, e->klen, false))
        return;
    struct ks_bytes *v = e->val;
    resp_add_bulk(&h->items, e->key, e->klen);
    resp_add_bulk(&h->items, v->p, v->len);
    h->n += 2;
}

/* HSCAN key cursor [MATCH pattern] [COUNT n] */
void sh_hscan(struct shard *s, struct msg *m)
{
    struct kvcmd_scan a;
    const char *e = kvcmd_scan_args(m, 2, false, &a);
    if (e) {
        kvcmd_fail(s, m, "%s", e);
        return;
    }
    uint64_t cur = a.cursor;
    long long count = a.count;
    struct hscan h = { .m = m };
    if (a.pat) {
        h.pat = m->req.argv[a.pat];
        h.plen = m->req.len[a.pat];
    }
    bool err;
    struct kv *kv = kvcmd_read(s, m, 1, KV_HASH, &err);
    if (err)
        return;
    resp_buf_init(&h.items);
    long long visited = 0;
    if (kv) {
        do {
            cur = dict_scan(kv->hash, cur, hscan_entry, &h);
            visited++;
        } while (cur && (long long)h.n / 2 < count && visited < count * 2);
    } else {
        cur = 0;
    }
    char buf[32];
    resp_add_array(&m->out, 2);
    resp_add_bulk(&m->out, buf, (size_t)snprintf(buf, sizeof buf, "%" PRIu64, cur));
    resp_add_array(&m->out, h.n);
    resp_buf_append(&m->out, h.items.data, h.items.len);
    resp_buf_free(&h.items);
    shard_reply(s, m);
}
