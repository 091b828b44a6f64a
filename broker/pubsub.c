/*
 * pubsub.c - the subscription registry (see pubsub.h).
 */
#include "pubsub.h"

#include "conn.h"
#include "context.h"
#include "iothread.h"
#include "msg.h"
#include "textfmt.h"
#include "xalloc.h"

#include <fnmatch.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

bool pubsub_add(struct conn *c, bool pattern, const char *s, size_t len)
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

bool pubsub_del(struct conn *c, bool pattern, const char *s, size_t len)
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

size_t pubsub_count(const struct conn *c)
{
    return c->nsubs + c->npsubs;
}

bool pubsub_restricted(const struct conn *c)
{
    return c->proto == 2 && pubsub_count(c) > 0;
}

void pubsub_conn_gone(struct conn *c)
{
    while (c->nsubs)
        pubsub_del(c, false, c->subs[0].name, c->subs[0].len);
    while (c->npsubs)
        pubsub_del(c, true, c->psubs[0].name, c->psubs[0].len);
    free(c->subs);
    free(c->psubs);
    c->subs = c->psubs = NULL;
}

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

/* Appends one name record per subscribed channel of this thread (matching
 * pattern, when not NULL) to out, when names is true; returns the number
 * of pattern subscriptions. */
long long pubsub_names(struct io_thread *io, resp_buf *out, bool names, const char *pattern)
{
    long long npatterns = 0;
    for (struct conn *c = io->subscribers; c; c = c->sub_next) {
        npatterns += (long long)c->npsubs;
        for (size_t i = 0; i < c->nsubs; i++) {
            const struct sub *s = &c->subs[i];
            if (pattern && !glob_match(pattern, s->name))
                continue;
            if (names) {
                text_name_put(out, s->name, s->len);
                resp_buf_append(out, "\n", 1);
            }
        }
    }
    return npatterns;
}
