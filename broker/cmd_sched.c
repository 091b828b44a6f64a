/*
 * cmd_sched.c - SCHED.* commands.
 *
 * A schedule lives on the shard of its queue (schedule.h), but the commands
 * name only the schedule, so every SCHED.* command goes to all shards and
 * the I/O thread gathers the answers: SCHED.SET creates or replaces the
 * schedule on its queue's shard and deletes a schedule of that name from
 * every other shard (it may have targeted another queue before); GET, DEL,
 * PAUSE and RESUME act where the schedule is; LIST concatenates.
 */
#include "cmd_sched.h"

#include "acl.h"
#include "admit.h"
#include "cmd_job.h"
#include "args.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "io.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "schedule.h"
#include "context.h"
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCHED_NAME_MAX 200

static bool word(const struct msg *m, int i, const char *w)
{
    return i < m->req.argc && strlen(w) == m->req.len[i] && strncasecmp(m->req.argv[i], w, m->req.len[i]) == 0;
}

/* SCHED.SET name queue spec payload [TZ zone] [PRI n] [RETRIES n] [UNIQUE]
 * [CATCHUP none|one|all] -> d (pointing into m's argv). */
static bool parse_def(const struct msg *m, struct sched_def *d, char *err, size_t cap)
{
    memset(d, 0, sizeof *d);
    d->name = m->req.argv[1];
    d->namelen = m->req.len[1];
    d->queue = m->req.argv[2];
    d->qlen = m->req.len[2];
    d->spec = m->req.argv[3];
    d->payload = m->req.argv[4];
    d->plen = m->req.len[4];
    d->tz = "UTC";
    d->retries = -1;
    d->catchup = CATCHUP_ONE;
    if (d->namelen == 0 || d->namelen > SCHED_NAME_MAX || memchr(d->name, 0, d->namelen)) {
        snprintf(err, cap, "ERR SCHED.SET: a schedule name has 1 to %d bytes and no NUL bytes", SCHED_NAME_MAX);
        return false;
    }
    if (d->qlen == 0) {
        snprintf(err, cap, "ERR SCHED.SET: the queue name is empty");
        return false;
    }
    if (strlen(d->spec) != m->req.len[3]) {
        snprintf(err, cap, "ERR SCHED.SET: the schedule spec contains a NUL byte");
        return false;
    }
    for (int i = 5; i < m->req.argc; i++) {
        long long v;
        if (word(m, i, "UNIQUE")) {
            d->unique = true;
        } else if (word(m, i, "TZ") && i + 1 < m->req.argc && strlen(m->req.argv[i + 1]) == m->req.len[i + 1]) {
            d->tz = m->req.argv[++i];
        } else if (word(m, i, "PRI") && arg_range(m, i + 1, JOB_PRI_MIN, JOB_PRI_MAX, &v)) {
            d->priority = (int16_t)v;
            i++;
        } else if (word(m, i, "RETRIES") && arg_range(m, i + 1, 0, 1000, &v)) {
            d->retries = v;
            i++;
        } else if (word(m, i, "CATCHUP") && (word(m, i + 1, "none") || word(m, i + 1, "one") || word(m, i + 1, "all"))) {
            d->catchup = word(m, i + 1, "none") ? CATCHUP_NONE : word(m, i + 1, "all") ? CATCHUP_ALL : CATCHUP_ONE;
            i++;
        } else {
            snprintf(err, cap, "ERR SCHED.SET: bad option or value at '%.32s' (SCHED.SET name queue spec payload "
                     "[TZ zone] [PRI -1000..1000] [RETRIES 0..1000] [UNIQUE] [CATCHUP none|one|all])",
                     m->req.argv[i]);
            return false;
        }
    }
    return true;
}

static void finish_set(struct conn *c, struct slot *sl)
{
    for (int k = 0; k < sl->nparts; k++) {
        if (sl->parts[k].len && sl->parts[k].data[0] == '-') {
            resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
            return;
        }
    }
    resp_add_simple(&sl->out, "OK");
}

void io_sched_set(struct conn *c, struct msg *m)
{
    if (m->req.argc < 5) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'sched.set' (SCHED.SET name queue spec payload "
                         "[TZ zone] [PRI n] [RETRIES n] [UNIQUE] [CATCHUP none|one|all])");
        return;
    }
    struct sched_def d;
    char err[400], why[300];
    if (!parse_def(m, &d, err, sizeof err)) {
        conn_reply_error(c, m, "%s", err);
        return;
    }
    if (schedule_check(&d, why, sizeof why) < 0) {
        conn_reply_error(c, m, "ERR SCHED.SET %.64s: %s", d.name, why);
        return;
    }
    if (!admit_payloads(c, m, 4, 5))
        return;
    if (m->num) {
        conn_reply_error(c, m, "BADJSON schedule payload is not valid JSON at byte %lld; nothing was changed",
                         (m->num - 1) & 0xffffffffLL);
        return;
    }
    conn_gather(c, m, true, finish_set);
}

void sh_sched_set(struct shard *s, struct msg *m)
{
    struct sched_def d;
    char err[400];
    parse_def(m, &d, err, sizeof err); /* checked on the I/O thread */
    if (!shard_owns(s, d.queue, d.qlen)) {
        schedule_del(s, d.name, d.namelen); /* it may have targeted another queue */
        shard_reply(s, m);
        return;
    }
    struct queue *q = store_queue(&s->st, d.queue, d.qlen, true);
    size_t at;
    if (q->conf.payload == PAYLOAD_JSON && !payload_is_json(d.payload, d.plen, &at)) {
        resp_buf_printf(&m->out, "-BADJSON schedule payload is not valid JSON at byte %zu (queue '%.128s' takes "
                        "JSON)\r\n", at, q->name);
    } else if (schedule_set(s, &d, err, sizeof err) < 0) {
        resp_buf_printf(&m->out, "-ERR SCHED.SET: %s\r\n", err);
    }
    store_queue_gc(&s->st, q);
    shard_reply(s, m);
}

/* ------------------------------------------------------------- records */

static void kv_int(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

static void kv_str(resp_buf *b, const char *k, const char *v, size_t n)
{
    resp_add_cstr(b, k);
    resp_add_bulk(b, v, n);
}

static void encode_sched(resp_buf *b, int proto, const struct sched *sc)
{
    resp_add_map(b, proto, 16);
    kv_str(b, "name", sc->name, sc->namelen);
    kv_str(b, "queue", sc->queue, sc->qlen);
    kv_str(b, "spec", sc->spec, strlen(sc->spec));
    kv_str(b, "tz", sc->tz_name, strlen(sc->tz_name));
    kv_str(b, "payload", sc->payload, sc->plen);
    kv_int(b, "priority", sc->priority);
    kv_int(b, "retries", sc->retries);
    kv_int(b, "unique", sc->unique);
    const char *cu = schedule_catchup_name(sc->catchup);
    kv_str(b, "catchup", cu, strlen(cu));
    kv_int(b, "paused", sc->paused);
    kv_int(b, "next_at", sc->paused ? 0 : sc->next_at);
    kv_int(b, "last_tick", sc->last_tick);
    resp_add_cstr(b, "last_job");
    if (sc->last_job) {
        char id[JOB_ID_HEX + 1];
        job_id_format(sc->last_job, id);
        resp_add_cstr(b, id);
    } else {
        resp_add_null(b, proto);
    }
    kv_int(b, "runs", sc->runs);
    kv_int(b, "skipped", sc->skipped);
    kv_int(b, "created_at", sc->created_at);
}

/* -------------------------------------------- GET, DEL, PAUSE, RESUME */

static void finish_name(struct conn *c, struct slot *sl)
{
    const struct msg *m = sl->req;
    for (int k = 0; k < sl->nparts; k++)
        if (sl->parts[k].len && sl->parts[k].data[0] == '-') { /* -NOPERM: the schedule's queue */
            resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
            return;
        }
    if (word(m, 0, "SCHED.DEL")) {
        resp_add_int(&sl->out, sl->num);
        return;
    }
    for (int k = 0; k < sl->nparts; k++) {
        if (sl->parts[k].len) {
            resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
            return;
        }
    }
    if (word(m, 0, "SCHED.GET"))
        resp_add_null(&sl->out, c->proto);
    else
        resp_buf_printf(&sl->out, "-ERR no schedule '%.*s' (SCHED.LIST shows them)\r\n",
                        (int)(m->req.len[1] > 200 ? 200 : m->req.len[1]), m->req.argv[1]);
}

/* SCHED.GET name | SCHED.DEL name | SCHED.PAUSE name | SCHED.RESUME name */
void io_sched_name(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_name);
}

/* A named ACL user may act on a schedule only when its key patterns allow
 * the schedule's queue (the name does not carry it); true: refused, the
 * -NOPERM error is in m->out. */
static bool sched_acl_refused(struct msg *m, const struct sched *sc)
{
    if (!sc || !m->user || acl_key_allowed(m->user, sc->queue, sc->qlen))
        return false;
    char err[600];
    acl_key_error(m->user, sc->queue, sc->qlen, "(the queue of this schedule)", err, sizeof err);
    resp_add_error(&m->out, err);
    return true;
}

void sh_sched_name(struct shard *s, struct msg *m)
{
    struct sched *sc = schedule_find(s, m->req.argv[1], m->req.len[1]);
    if (sched_acl_refused(m, sc)) {
        /* nothing changes */
    } else if (word(m, 0, "SCHED.DEL")) {
        m->num = schedule_del(s, m->req.argv[1], m->req.len[1]);
    } else if (sc && word(m, 0, "SCHED.GET")) {
        encode_sched(&m->out, m->proto, sc);
    } else if (sc) {
        schedule_pause(s, sc, word(m, 0, "SCHED.PAUSE"));
        resp_add_simple(&m->out, "OK");
    }
    shard_reply(s, m);
}

/* ----------------------------------------------------------------- LIST */

static void finish_list(struct conn *c, struct slot *sl)
{
    resp_add_array(&sl->out, (size_t)sl->num);
    for (int k = 0; k < sl->nparts; k++)
        resp_buf_append(&sl->out, sl->parts[k].data, sl->parts[k].len);
}

/* SCHED.LIST [queue] */
void io_sched_list(struct conn *c, struct msg *m)
{
    if (m->req.argc > 2) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'sched.list' (SCHED.LIST [queue])");
        return;
    }
    conn_gather(c, m, true, finish_list);
}

static void list_one(void *arg, struct sched *sc)
{
    struct msg *m = arg;
    encode_sched(&m->out, m->proto, sc);
    m->num++;
}

void sh_sched_list(struct shard *s, struct msg *m)
{
    if (m->req.argc == 2)
        schedule_each(s, m->req.argv[1], m->req.len[1], list_one, m);
    else
        schedule_each(s, NULL, 0, list_one, m);
    shard_reply(s, m);
}
