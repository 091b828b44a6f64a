/*
 * cmd_job.c - JOB.* commands (see cmd_job.h, and docs/protocol.md for the
 * contract: replies, receipts and errors).
 *
 * Receipts are "<id>-<attempt>": a job's attempt number names its current
 * delivery, so a receipt of an earlier delivery is recognised as stale
 * without keeping any history.
 */
#include "cmd_job.h"

#include "admit.h"
#include "args.h"
#include "batch.h"
#include "clock.h"
#include "cmd_result.h"
#include "command.h"
#include "config.h"
#include "hash.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "jobrec.h"
#include "kvcmd.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "shard.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ JOB.PUSH */

/* The options of JOB.PUSH after the payload, one table for the check on
 * the I/O thread and the parse on the shard. */
static const struct push_opt {
    const char *name;
    long long min, max;   /* a number, or (is_key) the key's length */
    bool is_key;
    const char *want;
} push_opts_table[] = {
    { "DELAY", 0, 86400000LL * 3650, false, "milliseconds from 0 to 10 years" },
    { "AT", 0, INT64_MAX / 2, false, "a Unix time in milliseconds" },
    { "PRI", JOB_PRI_MIN, JOB_PRI_MAX, false, "a whole number from -1000 to 1000" },
    { "RETRIES", 0, 1000, false, "a whole number from 0 to 1000" },
    { "LEASE", 1, 86400000LL * 7, false, "milliseconds from 1 to 7 days" },
    { "UNIQUE", 1, 1024, true, "a key of 1 to 1024 bytes without NUL bytes" },
    { "EXPIRES", 1, 86400000LL * 365, false, "milliseconds from 1 to 1 year (after the push)" },
    { "GROUP", 1, GROUP_KEY_MAX, true, "a key of 1 to 256 bytes without NUL bytes" },
    { "BATCH", 0, 0, false, "a batch id (16 hex digits, from BATCH.NEW)" },
};

/* Fills o from m's options; on a bad one writes the reason into err and
 * returns false. */
static bool push_parse(const struct msg *m, struct push_opts *o, char *err, size_t cap)
{
    memset(o, 0, sizeof *o);
    o->retries = -1;
    o->left = true;
    for (int i = 3; i < m->req.argc; i += 2) {
        const struct push_opt *po = NULL;
        for (size_t k = 0; k < sizeof push_opts_table / sizeof push_opts_table[0]; k++)
            if (arg_is(m, i, push_opts_table[k].name))
                po = &push_opts_table[k];
        if (!po) {
            snprintf(err, cap, "ERR JOB.PUSH: unknown option '%.32s' (options: DELAY ms, AT unix-ms, PRI n, "
                     "RETRIES n, LEASE ms, UNIQUE key, EXPIRES ms, GROUP key, BATCH id)", m->req.argv[i]);
            return false;
        }
        if (i + 1 >= m->req.argc) {
            snprintf(err, cap, "ERR JOB.PUSH option '%s' needs a value", po->name);
            return false;
        }
        const char *val = m->req.argv[i + 1];
        size_t vlen = m->req.len[i + 1];
        long long v = 0;
        uint64_t bid = 0;
        uint32_t batt = 0;
        bool ok = po->is_key ? vlen >= (size_t)po->min && vlen <= (size_t)po->max && !memchr(val, 0, vlen)
                  : po == &push_opts_table[8] ? job_id_parse(val, vlen, &bid, &batt) && batt == 0
                                              : arg_range(m, i + 1, po->min, po->max, &v);
        if (!ok) {
            snprintf(err, cap, "ERR JOB.PUSH %s: bad value '%.64s', expected %s", po->name, val, po->want);
            return false;
        }
        switch (po - push_opts_table) {
        case 0: o->delay_ms = v, o->run_at = 0; break; /* timed by the shard at the push */
        case 1: o->run_at = v, o->delay_ms = 0; break;
        case 2: o->priority = (int16_t)v; break;
        case 3: o->retries = v; break;
        case 4: o->lease_ms = v; break;
        case 5: o->unique = val; o->unique_len = vlen; break;
        case 6: o->expires_ms = v; break; /* timed by the shard at the push */
        case 7: o->group = val; o->group_len = vlen; break;
        default: o->batch = bid;
        }
    }
    return true;
}

/* JOB.PUSH queue payload [DELAY ms] [AT unix-ms] [PRI n] [RETRIES n] [LEASE ms] [UNIQUE key]
 * [EXPIRES ms] [GROUP key] [BATCH id] */
void io_job_push(struct conn *c, struct msg *m)
{
    struct push_opts o;
    char err[256];
    if (!push_parse(m, &o, err, sizeof err)) {
        conn_reply_error(c, m, "%s", err);
        return;
    }
    if (o.batch && job_id_shard(o.batch) >= c->io->srv->nshards) {
        char hex[JOB_ID_HEX + 1];
        job_id_format(o.batch, hex);
        conn_reply_error(c, m, "NOJOB no batch %s: its id names shard %d, and this server has %d", hex,
                         job_id_shard(o.batch), c->io->srv->nshards);
        return;
    }
    if (!admit_payloads(c, m, 2, 3))
        return;
    if (o.batch)
        conn_route(c, m, job_id_shard(o.batch)); /* the batch's shard admits it first */
    else
        conn_route_key(c, m, 1);
}

/* JOB.PUSH queue payload [DELAY ms] [AT unix-ms] [PRI n] [RETRIES n] [LEASE ms] [UNIQUE key]
 * [EXPIRES ms] [GROUP key] [BATCH id] */
void sh_job_push(struct shard *s, struct msg *m)
{
    if (kvcmd_queue_refused(s, m, 1))
        return;
    struct push_opts o;
    char err[256];
    push_parse(m, &o, err, sizeof err); /* checked on the I/O thread already */
    if (o.batch && !m->batch_admitted) {
        batch_admit(s, m, o.batch, shard_of(m->req.argv[1], m->req.len[1], s->srv->nshards));
        return;
    }
    struct queue *q = shard_queue(s, m, 1, true);
    struct job *added = NULL;
    if (admit_json(s, m, q, 2, 3)) {
        if (o.batch)
            batch_pushed(s, o.batch, NULL);
        return;
    }
    char id[JOB_ID_TEXT];
    struct job *j = o.unique ? queue_unique_find(q, o.unique, o.unique_len) : NULL;
    if (!j) {
        if (admit_room(s, m, q, 1)) {
            if (o.batch)
                batch_pushed(s, o.batch, NULL);
            return;
        }
        /* the job keeps a copy: the argument belongs to the request's block */
        j = added = store_job_push(&s->st, q, xmemdup(m->req.argv[2], m->req.len[2]), m->req.len[2], &o);
    }
    if (o.batch)
        batch_pushed(s, o.batch, added);
    job_id_text(j, id);
    resp_add_cstr(&m->out, id);
    shard_reply(s, m);
}

/* --------------------------------------------------------- JOB.RESERVE */

/* JOB.RESERVE [TIMEOUT ms] [COUNT n] [LEASE ms] [NOWAIT] FROM queue [queue …] */
void io_job_reserve(struct conn *c, struct msg *m)
{
    int64_t timeout = 0;
    bool nowait = false;
    long long v;
    m->count = 1;
    m->lease = 0;
    int i = 1;
    for (; i < m->req.argc && !arg_is(m, i, "FROM"); i++) {
        if (arg_is(m, i, "NOWAIT")) {
            nowait = true;
        } else if (arg_is(m, i, "TIMEOUT") && arg_range(m, i + 1, 0, 86400000LL * 365, &v)) {
            timeout = v;
            i++;
        } else if (arg_is(m, i, "COUNT") && arg_range(m, i + 1, 1, 1000, &v)) {
            m->count = (int)v;
            i++;
        } else if (arg_is(m, i, "LEASE") && arg_range(m, i + 1, 1, 86400000LL * 7, &v)) {
            m->lease = v;
            i++;
        } else {
            conn_reply_error(c, m, "ERR JOB.RESERVE: bad option or value at '%.32s' (syntax: JOB.RESERVE [TIMEOUT ms] [COUNT 1-1000] [LEASE ms] [NOWAIT] FROM queue [queue ...])",
                             m->req.argv[i]);
            return;
        }
    }
    if (i >= m->req.argc - 1) {
        conn_reply_error(c, m, "ERR JOB.RESERVE needs FROM and at least one queue (JOB.RESERVE [TIMEOUT ms] [COUNT n] [LEASE ms] [NOWAIT] FROM queue [queue ...])");
        return;
    }
    int64_t deadline = nowait ? -1 : timeout ? clock_now_ms() + timeout : 0;
    if (!c->who) /* made once per connection (and name): not at every reserve */
        c->who = job_holder_format(c->name, c->addr, c->id);
    m->who = xstrdup(c->who);
    conn_bpop(c, m, i + 1, m->req.argc, deadline);
}

/* ------------------------------------------------------ ids and receipts */

static bool route_id(struct conn *c, struct msg *m, int i)
{
    uint64_t id;
    uint32_t attempt;
    if (!job_id_parse(m->req.argv[i], m->req.len[i], &id, &attempt)) {
        conn_reply_error(c, m, "ERR '%.64s' is not a job id or receipt (16 hex digits, or <id>-<delivery> for a receipt)",
                         m->req.argv[i]);
        return false;
    }
    int k = job_id_shard(id);
    if (k >= c->io->srv->nshards && !strcmp(m->cmd->name, "job.del")) {
        resp_add_int(&m->out, 0); /* no such job: none deleted */
        conn_reply(c, m);
        return false;
    }
    if (k >= c->io->srv->nshards && !strcmp(m->cmd->name, "job.get")) {
        resp_add_null(&m->out, c->proto);
        conn_reply(c, m);
        return false;
    }
    if (k >= c->io->srv->nshards) {
        conn_reply_error(c, m, "NOJOB no job %.16s: its id names shard %d, and this server has %d",
                         m->req.argv[i], k, c->io->srv->nshards);
        return false;
    }
    conn_route(c, m, k);
    return true;
}

/* The sum of the shards' counts, or the first shard's refusal (-NOPERM:
 * that shard changed none of its jobs). */
static void finish_sum_or_refusal(struct conn *c, struct slot *sl)
{
    for (int k = 0; k < sl->nparts; k++)
        if (sl->parts[k].len && sl->parts[k].data[0] == '-') {
            resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
            return;
        }
    conn_finish_sum(c, sl);
}

/* JOB.ACK receipt [receipt …] | JOB.DEL id [id …] */
void io_job_ids(struct conn *c, struct msg *m)
{
    if (arg_is(m, 0, "JOB.ACK") && io_ack_result(c, m))
        return;
    if (m->req.argc == 2) {
        route_id(c, m, 1);
        return;
    }
    for (int i = 1; i < m->req.argc; i++) {
        uint64_t id;
        uint32_t attempt;
        if (!job_id_parse(m->req.argv[i], m->req.len[i], &id, &attempt)) {
            conn_reply_error(c, m, "ERR '%.64s' is not a job id or receipt", m->req.argv[i]);
            return;
        }
    }
    conn_gather(c, m, true, finish_sum_or_refusal);
}

/* JOB.NACK receipt [DELAY ms] [ERROR text] [DEAD] | JOB.TOUCH receipt [LEASE ms] | JOB.GET id | JOB.RETRY id */
void io_job_id(struct conn *c, struct msg *m)
{
    long long v;
    bool nack = arg_is(m, 0, "JOB.NACK"), touch = arg_is(m, 0, "JOB.TOUCH");
    for (int i = 2; i < m->req.argc; i++) {
        if (nack && arg_is(m, i, "DELAY") && arg_range(m, i + 1, 0, 86400000LL * 3650, &v)) {
            i++;
        } else if (nack && arg_is(m, i, "ERROR") && i + 1 < m->req.argc) {
            i++;
        } else if (nack && arg_is(m, i, "DEAD")) {
        } else if (touch && arg_is(m, i, "LEASE") && arg_range(m, i + 1, 1, 86400000LL * 7, &v)) {
            i++;
        } else {
            conn_reply_error(c, m, "ERR %s: bad option or value at '%.32s' (%s)", m->cmd->name, m->req.argv[i],
                             nack ? "JOB.NACK receipt [DELAY ms] [ERROR text] [DEAD]"
                             : touch ? "JOB.TOUCH receipt [LEASE ms]" : "it takes one id");
            return;
        }
    }
    route_id(c, m, 1);
}

/* JOB.ACK receipt [receipt …] */
void sh_job_ack(struct shard *s, struct msg *m)
{
    bool with_result = m->req.argc == 4 && arg_is(m, 2, "RESULT");
    bool single = m->req.argc == 2 || with_result;
    if (jobs_acl_refused(s, m, 1, with_result ? 2 : m->req.argc)) {
        shard_reply(s, m);
        return;
    }
    for (int i = 1; i < (with_result ? 2 : m->req.argc); i++) {
        struct job *j = job_resolve(s, m, i, true, single);
        if (!j)
            continue;
        struct queue *q = j->q;
        uint64_t id = j->id;
        if (with_result)
            result_store(s, m, j);
        store_job_ack(&s->st, j); /* may free j (retention 0) */
        if (with_result)
            result_settle(s, id);
        store_queue_gc(&s->st, q);
        m->num++;
    }
    if (single && m->out.len == 0)
        resp_add_int(&m->out, m->num);
    shard_reply(s, m);
}

/* JOB.NACK receipt [DELAY ms] [ERROR text] [DEAD] */
void sh_job_nack(struct shard *s, struct msg *m)
{
    struct job *j = job_resolve(s, m, 1, true, true);
    if (!j) {
        shard_reply(s, m);
        return;
    }
    long long delay = -1;
    const char *err = NULL;
    size_t errlen = 0;
    bool dead = false;
    for (int i = 2; i < m->req.argc; i++) {
        if (arg_is(m, i, "DELAY")) {
            i++;
            arg_ll(m, i, &delay);
        } else if (arg_is(m, i, "ERROR")) {
            i++;
            err = m->req.argv[i];
            errlen = m->req.len[i];
        } else if (arg_is(m, i, "DEAD")) {
            dead = true;
        }
    }
    struct queue *q = j->q;
    int st = store_job_fail(&s->st, j, err, errlen, delay, dead, "nack");
    resp_add_simple(&m->out, st == JOB_DEAD ? "dead" : "retry");
    store_queue_gc(&s->st, q);
    shard_reply(s, m);
}

/* JOB.TOUCH receipt [LEASE ms] */
void sh_job_touch(struct shard *s, struct msg *m)
{
    struct job *j = job_resolve(s, m, 1, true, true);
    if (j) {
        long long lease = 0;
        if (m->req.argc == 4)
            arg_ll(m, 3, &lease);
        store_job_touch(&s->st, j, lease);
        resp_add_int(&m->out, j->lease_until);
    }
    shard_reply(s, m);
}

/* JOB.GET id */
void sh_job_get(struct shard *s, struct msg *m)
{
    struct job *j = job_resolve(s, m, 1, false, false);
    bool had = j && j->payload; /* a look must not pin the payload in memory */
    if (j && store_job_payload(&s->st, j) == 0)
        result_encode_job(s, m, j);
    else if (m->out.len == 0) /* not refused (-NOPERM) */
        resp_add_null(&m->out, m->proto);
    if (j && !had)
        store_job_payload_drop(&s->st, j);
    shard_reply(s, m);
}

/* JOB.DEL id [id …] */
void sh_job_del(struct shard *s, struct msg *m)
{
    if (jobs_acl_refused(s, m, 1, m->req.argc)) {
        shard_reply(s, m);
        return;
    }
    for (int i = 1; i < m->req.argc; i++) {
        struct job *j = job_resolve(s, m, i, false, false);
        if (!j)
            continue;
        struct queue *q = j->q;
        store_job_delete(&s->st, j);
        store_queue_gc(&s->st, q);
        m->num++;
    }
    if (m->req.argc == 2)
        resp_add_int(&m->out, m->num);
    shard_reply(s, m);
}

/* JOB.RETRY id */
void sh_job_retry(struct shard *s, struct msg *m)
{
    struct job *j = job_resolve(s, m, 1, false, true);
    if (j && j->state != JOB_DEAD && j->state != JOB_DELAYED && j->state != JOB_EXPIRED) {
        char id[JOB_ID_HEX + 1];
        job_id_format(j->id, id);
        resp_buf_printf(&m->out, "-ERR job %s is %s; only dead, expired or delayed jobs can be retried\r\n", id,
                        job_state_name(j->state));
    } else if (j) {
        store_job_retry(&s->st, j);
        resp_add_simple(&m->out, "OK");
    }
    shard_reply(s, m);
}
