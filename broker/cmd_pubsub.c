/*
 * cmd_pubsub.c - the pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
 * PUNSUBSCRIBE, PUBLISH, PUBSUB (see cmd_pubsub.h).
 *
 * Commands layer: runs on the connection's I/O thread and calls down only,
 * into the subscription registry (pubsub.c) and the connection (conn.c).
 * PUBLISH and PUBSUB ask every I/O thread (peer_*) and sum the answers.
 */
#include "cmd_pubsub.h"

#include "args.h"
#include "conn.h"
#include "io.h"
#include "msg.h"
#include "pubsub.h"
#include "textfmt.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- SUBSCRIBE */

static void sub_reply(resp_buf *b, int proto, const char *kind, const char *s, size_t len, size_t count)
{
    resp_add_push(b, proto, 3);
    resp_add_cstr(b, kind);
    if (s)
        resp_add_bulk(b, s, len);
    else
        resp_add_null(b, proto);
    resp_add_int(b, (long long)count);
}

static void subscribe(struct conn *c, struct msg *m, bool pattern)
{
    for (int i = 1; i < m->req.argc; i++) {
        pubsub_add(c, pattern, m->req.argv[i], m->req.len[i]);
        sub_reply(&m->out, c->proto, pattern ? "psubscribe" : "subscribe", m->req.argv[i], m->req.len[i],
                  pubsub_count(c));
    }
    conn_reply(c, m);
}

static void unsubscribe(struct conn *c, struct msg *m, bool pattern)
{
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    if (m->req.argc == 1) {
        struct sub **v = pattern ? &c->psubs : &c->subs;
        size_t *n = pattern ? &c->npsubs : &c->nsubs;
        if (*n == 0)
            sub_reply(&m->out, c->proto, kind, NULL, 0, pubsub_count(c));
        while (*n) {
            struct sub s = (*v)[0];
            char *name = strndup(s.name, s.len);
            size_t len = s.len;
            pubsub_del(c, pattern, name, len);
            sub_reply(&m->out, c->proto, kind, name, len, pubsub_count(c));
            free(name);
        }
    } else {
        for (int i = 1; i < m->req.argc; i++) {
            pubsub_del(c, pattern, m->req.argv[i], m->req.len[i]);
            sub_reply(&m->out, c->proto, kind, m->req.argv[i], m->req.len[i], pubsub_count(c));
        }
    }
    conn_reply(c, m);
}

/* SUBSCRIBE channel [channel …] */
void io_subscribe(struct conn *c, struct msg *m) { subscribe(c, m, false); }
/* PSUBSCRIBE pattern [pattern …] */
void io_psubscribe(struct conn *c, struct msg *m) { subscribe(c, m, true); }
/* UNSUBSCRIBE [channel …] */
void io_unsubscribe(struct conn *c, struct msg *m) { unsubscribe(c, m, false); }
/* PUNSUBSCRIBE [pattern …] */
void io_punsubscribe(struct conn *c, struct msg *m) { unsubscribe(c, m, true); }

/* ------------------------------------------------------- PUBLISH, PUBSUB */

/* PUBLISH channel message */
void io_publish(struct conn *c, struct msg *m)
{
    conn_gather(c, m, false, conn_finish_sum);
}

/* PUBLISH channel message (on each I/O thread) */
void peer_publish(struct io_thread *io, struct msg *m)
{
    m->num = pubsub_deliver(io, m);
}

/* Each I/O thread answers with one name record per subscription for
 * CHANNELS/NUMSUB (textfmt.h) and its pattern count in num for NUMPAT. */
/* PUBSUB CHANNELS [pattern] | NUMSUB [channel …] | NUMPAT (on each I/O thread) */
void peer_pubsub(struct io_thread *io, struct msg *m)
{
    bool channels = arg_is(m, 1, "CHANNELS"), numsub = arg_is(m, 1, "NUMSUB");
    const char *pattern = channels && m->req.argc > 2 ? m->req.argv[2] : NULL;
    m->num += pubsub_names(io, &m->out, numsub || channels, pattern);
}

/* The subscriptions of every I/O thread, one entry per channel with its
 * subscriber count (records arrive sorted, one per subscription). */
static struct name_rec *collect(struct slot *sl, long long **counts, size_t *out_n)
{
    size_t n, u = 0;
    struct name_rec *v = text_name_recs(sl->parts, sl->nparts, &n);
    *counts = xcalloc(n ? n : 1, sizeof **counts);
    for (size_t i = 0; i < n; i++) {
        if (u && text_name_cmp(&v[u - 1], &v[i]) == 0) {
            (*counts)[u - 1]++;
        } else {
            v[u] = v[i];
            (*counts)[u++] = 1;
        }
    }
    *out_n = u;
    return v;
}

static void finish_pubsub(struct conn *c, struct slot *sl)
{
    const struct msg *m = sl->req;
    if (arg_is(m, 1, "NUMPAT")) {
        resp_add_int(&sl->out, sl->num);
        return;
    }
    size_t n;
    long long *counts;
    struct name_rec *v = collect(sl, &counts, &n);
    if (arg_is(m, 1, "CHANNELS")) {
        resp_add_array(&sl->out, n);
        for (size_t i = 0; i < n; i++)
            resp_add_bulk(&sl->out, v[i].name, v[i].len);
    } else {
        resp_add_map(&sl->out, c->proto, (size_t)(m->req.argc - 2));
        for (int i = 2; i < m->req.argc; i++) {
            struct name_rec key = { m->req.argv[i], m->req.len[i], NULL };
            struct name_rec *f = n ? bsearch(&key, v, n, sizeof *v, text_name_cmp) : NULL;
            long long cnt = f ? counts[f - v] : 0;
            resp_add_bulk(&sl->out, m->req.argv[i], m->req.len[i]);
            resp_add_int(&sl->out, cnt);
        }
    }
    free(counts);
    free(v);
}

/* PUBSUB CHANNELS [pattern] | NUMSUB [channel …] | NUMPAT */
void io_pubsub(struct conn *c, struct msg *m)
{
    if (!(arg_is(m, 1, "CHANNELS") && m->req.argc <= 3) && !arg_is(m, 1, "NUMSUB") &&
        !(arg_is(m, 1, "NUMPAT") && m->req.argc == 2)) {
        conn_reply_error(c, m, "ERR unknown subcommand or wrong number of arguments for '%.64s'. Try PUBSUB HELP.",
                         m->req.argv[1]);
        return;
    }
    conn_gather(c, m, false, finish_pubsub);
}
