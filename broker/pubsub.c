/*
 * pubsub.c - see pubsub.h.
 */
#include "pubsub.h"

#include "clock.h"
#include "commands.h"
#include "conn.h"
#include "io.h"
#include "msg.h"
#include "queue.h"
#include "server.h"
#include "textfmt.h"
#include "xalloc.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EVENT_PREFIX "spool:events:"

bool pubsub_listening(struct server *srv)
{
    return atomic_load_explicit(&srv->subscriptions, memory_order_relaxed) > 0;
}

/* ------------------------------------------------------------ messages */

static void set_arg(resp_cmd *r, int i, const char *p, size_t n)
{
    r->argv[i] = malloc(n + 1);
    if (!r->argv[i])
        abort();
    memcpy(r->argv[i], p, n);
    r->argv[i][n] = '\0';
    r->len[i] = n;
}

static struct msg *publish_msg(const char *ch, size_t chlen, const char *data, size_t dlen)
{
    struct msg *m = msg_new(MSG_PUBLISH);
    m->req.argc = 3;
    m->req.argv = calloc(4, sizeof(char *));
    m->req.len = calloc(4, sizeof(size_t));
    if (!m->req.argv || !m->req.len)
        abort();
    set_arg(&m->req, 0, "publish", 7);
    set_arg(&m->req, 1, ch, chlen);
    set_arg(&m->req, 2, data, dlen);
    return m;
}

struct msg *pubsub_copy(const struct msg *m)
{
    return publish_msg(m->req.argv[1], m->req.len[1], m->req.argv[2], m->req.len[2]);
}

struct msg *pubsub_job_message(const struct job *j, const char *event, const char *err, size_t errlen)
{
    return pubsub_job_message_json(j, event, err, errlen, NULL, NULL);
}

struct msg *pubsub_job_message_json(const struct job *j, const char *event, const char *err, size_t errlen,
                                    const char *key, const char *json)
{
    resp_buf ch, js;
    resp_buf_init(&ch);
    resp_buf_init(&js);
    resp_buf_append(&ch, EVENT_PREFIX, strlen(EVENT_PREFIX));
    resp_buf_append(&ch, j->q->name, j->q->namelen);
    char id[JOB_ID_HEX + 1];
    job_id_format(j->id, id);
    resp_buf_printf(&js, "{\"event\":\"%s\",\"queue\":", event);
    text_json_str(&js, j->q->name, j->q->namelen);
    resp_buf_printf(&js, ",\"id\":\"%s\",\"attempt\":%u,\"time\":%lld", id, j->attempt,
                    (long long)clock_now_ms());
    if (err) {
        resp_buf_append(&js, ",\"error\":", 9);
        text_json_str(&js, err, errlen);
    }
    if (key && json)
        resp_buf_printf(&js, ",\"%s\":%s", key, json);
    resp_buf_append(&js, "}", 1);
    struct msg *m = publish_msg(ch.data, ch.len, js.data, js.len);
    resp_buf_free(&ch);
    resp_buf_free(&js);
    return m;
}

/* -------------------------------------------------------- subscriptions */

static int find_sub(const struct sub *v, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].len == len && memcmp(v[i].name, s, len) == 0)
            return (int)i;
    return -1;
}

/* Connections with at least one subscription are also linked in their I/O
 * thread's subscriber list, so delivery visits only them. */
static void listed(struct conn *c, bool on)
{
    struct io_thread *io = c->io;
    if (on == c->sub_listed)
        return;
    c->sub_listed = on;
    if (on) {
        c->sub_prev = NULL;
        c->sub_next = io->subscribers;
        if (io->subscribers)
            io->subscribers->sub_prev = c;
        io->subscribers = c;
        return;
    }
    if (c->sub_prev)
        c->sub_prev->sub_next = c->sub_next;
    else
        io->subscribers = c->sub_next;
    if (c->sub_next)
        c->sub_next->sub_prev = c->sub_prev;
    c->sub_prev = c->sub_next = NULL;
}

static bool add_sub(struct conn *c, bool pattern, const char *s, size_t len)
{
    struct sub **v = pattern ? &c->psubs : &c->subs;
    size_t *n = pattern ? &c->npsubs : &c->nsubs;
    if (find_sub(*v, *n, s, len) >= 0)
        return false;
    struct sub *nv = xrealloc(*v, (*n + 1) * sizeof **v);
    *v = nv;
    nv[*n].name = xmalloc(len + 1);
    memcpy(nv[*n].name, s, len);
    nv[*n].name[len] = '\0';
    nv[*n].len = len;
    (*n)++;
    atomic_fetch_add(&c->io->srv->subscriptions, 1);
    listed(c, true);
    return true;
}

static bool del_sub(struct conn *c, bool pattern, const char *s, size_t len)
{
    struct sub *v = pattern ? c->psubs : c->subs;
    size_t *n = pattern ? &c->npsubs : &c->nsubs;
    int i = find_sub(v, *n, s, len);
    if (i < 0)
        return false;
    free(v[i].name);
    v[i] = v[--*n];
    atomic_fetch_sub(&c->io->srv->subscriptions, 1);
    listed(c, c->nsubs + c->npsubs > 0);
    return true;
}

static size_t total_subs(const struct conn *c)
{
    return c->nsubs + c->npsubs;
}

bool pubsub_restricted(const struct conn *c)
{
    return c->proto == 2 && total_subs(c) > 0;
}

void pubsub_conn_gone(struct conn *c)
{
    while (c->nsubs)
        del_sub(c, false, c->subs[0].name, c->subs[0].len);
    while (c->npsubs)
        del_sub(c, true, c->psubs[0].name, c->psubs[0].len);
    free(c->subs);
    free(c->psubs);
    c->subs = c->psubs = NULL;
}

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
        add_sub(c, pattern, m->req.argv[i], m->req.len[i]);
        sub_reply(&m->out, c->proto, pattern ? "psubscribe" : "subscribe", m->req.argv[i], m->req.len[i],
                  total_subs(c));
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
            sub_reply(&m->out, c->proto, kind, NULL, 0, total_subs(c));
        while (*n) {
            struct sub s = (*v)[0];
            char *name = strndup(s.name, s.len);
            size_t len = s.len;
            del_sub(c, pattern, name, len);
            sub_reply(&m->out, c->proto, kind, name, len, total_subs(c));
            free(name);
        }
    } else {
        for (int i = 1; i < m->req.argc; i++) {
            del_sub(c, pattern, m->req.argv[i], m->req.len[i]);
            sub_reply(&m->out, c->proto, kind, m->req.argv[i], m->req.len[i], total_subs(c));
        }
    }
    conn_reply(c, m);
}

void io_subscribe(struct conn *c, struct msg *m) { subscribe(c, m, false); }
void io_psubscribe(struct conn *c, struct msg *m) { subscribe(c, m, true); }
void io_unsubscribe(struct conn *c, struct msg *m) { unsubscribe(c, m, false); }
void io_punsubscribe(struct conn *c, struct msg *m) { unsubscribe(c, m, true); }

/* ------------------------------------------------------------- delivery */

static bool glob_match(const char *pattern, const char *s)
{
    return fnmatch(pattern, s, 0) == 0;
}

long pubsub_deliver(struct io_thread *io, const struct msg *m)
{
    const char *ch = m->req.argv[1], *data = m->req.argv[2];
    size_t chlen = m->req.len[1], dlen = m->req.len[2];
    long receivers = 0;
    resp_buf b;
    resp_buf_init(&b);
    for (struct conn *c = io->subscribers; c; c = c->sub_next) {
        if (find_sub(c->subs, c->nsubs, ch, chlen) >= 0) {
            resp_add_push(&b, c->proto, 3);
            resp_add_cstr(&b, "message");
            resp_add_bulk(&b, ch, chlen);
            resp_add_bulk(&b, data, dlen);
            conn_write_oob(c, &b);
            receivers++;
        }
        for (size_t i = 0; i < c->npsubs; i++) {
            if (!glob_match(c->psubs[i].name, ch))
                continue;
            resp_add_push(&b, c->proto, 4);
            resp_add_cstr(&b, "pmessage");
            resp_add_bulk(&b, c->psubs[i].name, c->psubs[i].len);
            resp_add_bulk(&b, ch, chlen);
            resp_add_bulk(&b, data, dlen);
            conn_write_oob(c, &b);
            receivers++;
        }
    }
    resp_buf_free(&b);
    return receivers;
}

/* ------------------------------------------------------- PUBLISH, PUBSUB */

static void finish_sum(struct conn *c, struct slot *sl)
{
    resp_add_int(&sl->out, sl->num);
}

void io_publish(struct conn *c, struct msg *m)
{
    conn_gather(c, m, false, finish_sum);
}

void peer_publish(struct io_thread *io, struct msg *m)
{
    m->num = pubsub_deliver(io, m);
}

static bool arg_is(const struct msg *m, int i, const char *s)
{
    return i < m->req.argc && strlen(s) == m->req.len[i] && strncasecmp(m->req.argv[i], s, m->req.len[i]) == 0;
}

/* Each I/O thread answers with one name record per subscription for
 * CHANNELS/NUMSUB (textfmt.h) and its pattern count in num for NUMPAT. */
void peer_pubsub(struct io_thread *io, struct msg *m)
{
    bool channels = arg_is(m, 1, "CHANNELS"), numsub = arg_is(m, 1, "NUMSUB");
    for (struct conn *c = io->subscribers; c; c = c->sub_next) {
        m->num += (long long)c->npsubs;
        for (size_t i = 0; i < c->nsubs; i++) {
            const struct sub *s = &c->subs[i];
            if (channels && m->req.argc > 2 && !glob_match(m->req.argv[2], s->name))
                continue;
            if (numsub || channels) {
                text_name_put(&m->out, s->name, s->len);
                resp_buf_append(&m->out, "\n", 1);
            }
        }
    }
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
