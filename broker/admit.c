/*
 * admit.c - whether a push may enter a queue (see admit.h).
 */
#include "admit.h"

#include "config.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "msg.h"
#include "payload.h"
#include "queue.h"
#include "shard.h"

#include <stdio.h>

/* With --payload json the I/O thread checks every payload; the shard
 * accepts non-JSON only for a queue configured `payload raw`. The result
 * rides in m->num: 0 = all valid, else (element << 32 | byte offset) + 1. */
bool admit_payloads(struct conn *c, struct msg *m, int first, int last)
{
    const struct config *cfg = &c->io->srv->cfg;
    if (atomic_load(&c->io->srv->disk_low)) {
        conn_reply_error(c, m, "FULL disk: %lld bytes free where the data directory is, below disk-reserve (%lld); "
                         "pushes are refused so that reserve, ack and delete keep working: free disk space (or lower "
                         "disk-reserve); nothing was pushed", atomic_load(&c->io->srv->disk_free),
                         (long long)cfg->disk_reserve);
        return false;
    }
    for (int i = first; i < last; i++) {
        size_t len = m->req.len[i];
        if ((int64_t)len > cfg->max_payload) {
            char which[48] = "";
            if (last - first > 1)
                snprintf(which, sizeof which, " (element %d)", i - first + 1);
            conn_reply_error(c, m, "TOOBIG payload%s is %zu bytes; the limit is %lld bytes (max-payload); nothing was pushed",
                             which, len, (long long)cfg->max_payload);
            return false;
        }
    }
    m->num = 0;
    if (cfg->payload != PAYLOAD_JSON)
        return true;
    for (int i = first; i < last; i++) {
        size_t at;
        if (!payload_is_json(m->req.argv[i], m->req.len[i], &at)) {
            m->num = ((long long)(i - first) << 32 | (long long)at) + 1;
            break;
        }
    }
    return true;
}

/* Shard side: refuses the push if a payload is not JSON and q wants JSON. */
bool admit_json(struct shard *s, struct msg *m, struct queue *q, int first, int last)
{
    if (q->conf.payload != PAYLOAD_JSON)
        return false;
    long long elem = -1, at = 0;
    if (m->num) {
        elem = (m->num - 1) >> 32;
        at = (m->num - 1) & 0xffffffffLL;
    } else if (s->srv->cfg.payload != PAYLOAD_JSON) {
        /* The server does not check, but this queue does. */
        for (int i = first; i < last && elem < 0; i++) {
            size_t a;
            if (!payload_is_json(m->req.argv[i], m->req.len[i], &a)) {
                elem = i - first;
                at = (long long)a;
            }
        }
    }
    if (elem < 0)
        return false;
    char which[48] = "";
    if (last - first > 1)
        snprintf(which, sizeof which, " (element %lld)", elem + 1);
    resp_buf_reset(&m->out);
    resp_buf_printf(&m->out, "-BADJSON payload%s is not valid JSON at byte %lld; nothing was pushed "
                    "(queue '%.128s' takes JSON; QUEUE.CONFIG %.128s SET payload raw accepts any bytes)\r\n",
                    which, at, q->name, q->name);
    shard_reply(s, m);
    store_queue_gc(&s->st, q);
    return true;
}

/* -FULL when q cannot take n more unfinished jobs. */
bool admit_room(struct shard *s, struct msg *m, struct queue *q, size_t n)
{
    if (q->conf.maxlen == 0 || queue_unfinished(q) + n <= (size_t)q->conf.maxlen)
        return false;
    resp_buf_printf(&m->out, "-FULL queue '%.128s' has %zu unfinished jobs, its maxlen is %lld; nothing was pushed "
                    "(raise it with QUEUE.CONFIG %.128s SET maxlen N, or let workers catch up)\r\n",
                    q->name, queue_unfinished(q), (long long)q->conf.maxlen, q->name);
    shard_reply(s, m);
    store_queue_gc(&s->st, q);
    return true;
}

