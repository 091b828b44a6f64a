/*
 * cmd_batch.c - BATCH.NEW, BATCH.CLOSE, BATCH.GET (the counting between
 * shards is batch.c's). A new batch goes to the shards in turn (round
 * robin over the I/O threads' requests); later commands route by the
 * shard its id names. JOB.PUSH … BATCH id is in cmd_job.c.
 */
#include "cmd_batch.h"

#include "batch.h"
#include "acl.h"
#include "admit.h"
#include "cmd_job.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "io.h"
#include "msg.h"
#include "queue.h"
#include "context.h"
#include "shard.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const cb_words[CB_COUNT] = { "ON-SUCCESS", "ON-COMPLETE", "ON-DEATH" };

static int cb_word(const struct msg *m, int i)
{
    for (int k = 0; k < CB_COUNT; k++)
        if (m->req.len[i] == strlen(cb_words[k]) && strncasecmp(m->req.argv[i], cb_words[k], m->req.len[i]) == 0)
            return k;
    return -1;
}

/* BATCH.NEW [ON-SUCCESS queue payload] [ON-COMPLETE queue payload] [ON-DEATH queue payload] */
void io_batch_new(struct conn *c, struct msg *m)
{
    static _Atomic unsigned next_home;
    int seen = 0;
    for (int i = 1; i < m->req.argc; i += 3) {
        int k = cb_word(m, i);
        if (k < 0 || i + 2 >= m->req.argc || (seen & (1 << k)) || m->req.len[i + 1] == 0) {
            conn_reply_error(c, m, "ERR BATCH.NEW: bad option at '%.32s' (BATCH.NEW [ON-SUCCESS queue payload] "
                             "[ON-COMPLETE queue payload] [ON-DEATH queue payload], each at most once)",
                             m->req.argv[i]);
            return;
        }
        seen |= 1 << k;
        if (!admit_payloads(c, m, i + 2, i + 3))
            return;
        if (m->num) {
            conn_reply_error(c, m, "BADJSON the %s payload is not valid JSON at byte %lld; no batch was made",
                             cb_words[k], (m->num - 1) & 0xffffffffLL);
            return;
        }
    }
    conn_route(c, m, (int)(atomic_fetch_add(&next_home, 1) % (unsigned)c->io->srv->nshards));
}

void sh_batch_new(struct shard *s, struct msg *m)
{
    const char *q[CB_COUNT] = { NULL }, *p[CB_COUNT] = { NULL };
    size_t ql[CB_COUNT] = { 0 }, pl[CB_COUNT] = { 0 };
    for (int i = 1; i + 2 < m->req.argc; i += 3) {
        int k = cb_word(m, i);
        q[k] = m->req.argv[i + 1];
        ql[k] = m->req.len[i + 1];
        p[k] = m->req.argv[i + 2];
        pl[k] = m->req.len[i + 2];
    }
    struct batch *b = batch_new(s, q, ql, p, pl);
    char hex[JOB_ID_HEX + 1];
    job_id_format(b->id, hex);
    resp_add_cstr(&m->out, hex);
    shard_reply(s, m);
}

/* BATCH.CLOSE id | BATCH.GET id */
void io_batch_id(struct conn *c, struct msg *m)
{
    uint64_t id;
    uint32_t attempt;
    if (!job_id_parse(m->req.argv[1], m->req.len[1], &id, &attempt) || attempt) {
        conn_reply_error(c, m, "ERR '%.64s' is not a batch id (16 hex digits, as BATCH.NEW returns)", m->req.argv[1]);
        return;
    }
    if (job_id_shard(id) >= c->io->srv->nshards) {
        conn_reply_error(c, m, "NOJOB no batch %.16s: its id names shard %d, and this server has %d", m->req.argv[1],
                         job_id_shard(id), c->io->srv->nshards);
        return;
    }
    conn_route(c, m, job_id_shard(id));
}

static void kv_int(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

static void encode_batch(struct msg *m, const struct batch *b, bool synced)
{
    resp_buf *o = &m->out;
    char hex[JOB_ID_HEX + 1];
    job_id_format(b->id, hex);
    resp_add_map(o, m->proto, 13);
    resp_add_cstr(o, "id");
    resp_add_cstr(o, hex);
    resp_add_cstr(o, "state");
    resp_add_cstr(o, batch_state_name(b->state));
    kv_int(o, "total", b->total);
    kv_int(o, "done", b->done);
    kv_int(o, "dead", b->dead);
    kv_int(o, "unfinished", b->total - b->done - b->dead);
    kv_int(o, "pending", b->pending + (synced ? 0 : 1));
    for (int k = 0; k < CB_COUNT; k++) {
        char name[32];
        snprintf(name, sizeof name, "on_%s", batch_cb_name(k));
        resp_add_cstr(o, name);
        if (b->cb[k])
            resp_add_cstr(o, b->cb[k]); /* the queue (the payload follows its NUL) */
        else
            resp_add_null(o, m->proto);
    }
    resp_add_cstr(o, "fired");
    int n = 0;
    for (int k = 0; k < CB_COUNT; k++)
        n += (b->fired >> k) & 1;
    resp_add_array(o, (size_t)n);
    for (int k = 0; k < CB_COUNT; k++)
        if ((b->fired >> k) & 1)
            resp_add_cstr(o, batch_cb_name(k));
    kv_int(o, "created_at", b->created_at);
    kv_int(o, "updated_at", b->updated_at);
}

/* A named ACL user may get or close a batch only when its key patterns
 * allow every callback queue of it (closing fires them; BATCH.NEW checked
 * them for its own user); true: refused, the -NOPERM error is in m->out. */
static bool batch_acl_refused(struct msg *m, const struct batch *b)
{
    for (int k = 0; b && m->user && k < CB_COUNT; k++) {
        if (!b->cb[k] || acl_key_allowed(m->user, b->cb[k], strlen(b->cb[k])))
            continue;
        char err[600], why[80], hex[JOB_ID_HEX + 1];
        job_id_format(b->id, hex);
        snprintf(why, sizeof why, "(the %s callback queue of batch %s)", batch_cb_name(k), hex);
        acl_key_error(m->user, b->cb[k], strlen(b->cb[k]), why, err, sizeof err);
        resp_add_error(&m->out, err);
        return true;
    }
    return false;
}

void sh_batch_id(struct shard *s, struct msg *m)
{
    uint64_t id;
    uint32_t attempt;
    job_id_parse(m->req.argv[1], m->req.len[1], &id, &attempt);
    struct batch *b = batch_find(s, id);
    bool get = m->req.len[0] == 9 && strncasecmp(m->req.argv[0], "BATCH.GET", 9) == 0;
    if (batch_acl_refused(m, b)) {
        /* refused: the error is in m->out */
    } else if (!b && get) {
        resp_add_null(&m->out, m->proto);
    } else if (!b) {
        char hex[JOB_ID_HEX + 1];
        job_id_format(id, hex);
        resp_buf_printf(&m->out, "-NOJOB no batch %s (it never existed, or it finished and was removed)\r\n", hex);
    } else if (get) {
        encode_batch(m, b, batch_synced(s));
    } else {
        batch_close(s, b);
        resp_add_simple(&m->out, "OK");
    }
    shard_reply(s, m);
}
