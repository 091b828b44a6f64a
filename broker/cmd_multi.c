/*
 * cmd_multi.c - transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
 *
 * Queueing (I/O thread). Between MULTI and EXEC every command goes to
 * multi_queue() instead of running. Arity and unknown names are checked
 * first, as always (an error there makes EXEC answer EXECABORT). Then the
 * command's own I/O handler runs with c->capture set: its checks happen
 * now, and instead of routing, conn.c hands the message here
 * (multi_capture_route/_gather), or its immediate answer
 * (multi_capture_reply: an error such as a bad payload, or a value such as
 * PING's), which is kept as that command's EXEC result. Every routed
 * command must go to one shard, the same for the whole transaction and its
 * WATCHed keys; otherwise the command is refused with -CROSSSLOT and the
 * transaction is aborted before anything was applied. Commands that run
 * on every shard (KEYS, DBSIZE, INFO, ...) and blocking commands are
 * refused inside MULTI in the same way.
 *
 * EXEC (shard). The queued messages ride inside the EXEC message to the
 * transaction's shard. sh_exec first compares the WATCHed keys' versions
 * (keyspace_watch: bumped by every write to a key or queue while watched);
 * if one moved it answers a nil array and runs nothing. Otherwise it runs
 * each command's shard handler in order, in the same shard turn, capturing
 * each reply (shard->capture) into EXEC's array. One turn is one journal
 * transaction, so the whole EXEC commits or fails together, and no other
 * command of any client runs in between. Errors of single commands are
 * their array elements, as in Redis: the other commands still apply.
 *
 * WATCH registers the keys on their shard (sh_watch) and keeps their
 * versions in c->watch; EXEC, DISCARD, UNWATCH, RESET and closing the
 * connection release them.
 */
#include "cmd_multi.h"

#include "cmd_keys.h"
#include "command.h"
#include "conn.h"
#include "io.h"
#include "keyspace.h"
#include "log.h"
#include "msg.h"
#include "context.h"
#include "shard.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct multi {
    struct msg **q;
    int n, cap;
    int shard;                   /* -1 until a command or WATCH fixes it */
    bool aborted;                /* EXEC answers EXECABORT */
    char err[512];               /* set while capturing: refuse this command */
};

struct watch {
    int shard;
    int n;
    char **keys;
    size_t *lens;
    uint64_t *versions;
};

static const struct conn_tx tx_hooks;

/* The UNWATCH a shard runs for DISCARD, UNWATCH, RESET, an aborted EXEC
 * and a closing connection (the table's UNWATCH, without going up to the
 * table from here). */
static const struct command unwatch_cmd = {
    "unwatch", -1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_unwatch, sh_unwatch, NULL, "Forgets the watched keys.",
};

static void watch_free(struct watch *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->lens);
    free(w->versions);
    free(w);
}

static void multi_free(struct multi *mu)
{
    if (!mu)
        return;
    for (int i = 0; i < mu->n; i++)
        msg_free(mu->q[i]);
    free(mu->q);
    free(mu);
}

/* An answer outside the capture (QUEUED, errors of the queueing itself). */
static void say(struct conn *c, const char *simple, const char *error)
{
    struct msg *r = msg_new(MSG_CMD);
    if (error)
        resp_add_error(&r->out, error);
    else
        resp_add_simple(&r->out, simple);
    conn_reply(c, r);
}

/* Replaces m's arguments with name followed by the watched keys (copied:
 * the caller frees w). */
static void set_watch_args(struct msg *m, const char *name, struct watch *w)
{
    const char **argv = xcalloc((size_t)w->n + 1, sizeof *argv);
    size_t *len = xcalloc((size_t)w->n + 1, sizeof *len);
    argv[0] = name;
    len[0] = strlen(name);
    for (int i = 0; i < w->n; i++) {
        argv[i + 1] = w->keys[i];
        len[i + 1] = w->lens[i];
    }
    resp_cmd_free(&m->req);
    resp_cmd_build(&m->req, 1 + w->n, argv, len);
    free(argv);
    free(len);
}

/* Sends an UNWATCH for c's watched keys to their shard. When answer is
 * true its reply (OK) answers m's request; otherwise it is dropped. */
static void send_unwatch(struct conn *c, struct msg *m, bool answer)
{
    struct watch *w = c->watch;
    c->watch = NULL;
    m->cmd = &unwatch_cmd;
    set_watch_args(m, "unwatch", w);
    int k = w->shard;
    watch_free(w);
    if (answer)
        conn_route(c, m, k);
    else
        conn_post(c, m, k);
}

/* ------------------------------------------------------------ queueing */

void multi_flag_error(struct conn *c)
{
    if (c->multi)
        c->multi->aborted = true;
}

static void refuse(struct multi *mu, struct msg *m, const char *why)
{
    snprintf(mu->err, sizeof mu->err, "%s", why);
    msg_free(m);
}

static void keep(struct multi *mu, struct msg *m)
{
    if (mu->n == mu->cap) {
        mu->cap = mu->cap ? mu->cap * 2 : 8;
        mu->q = xrealloc(mu->q, (size_t)mu->cap * sizeof *mu->q);
    }
    mu->q[mu->n++] = m;
}

static void multi_capture_route(struct conn *c, struct msg *m, int k)
{
    struct multi *mu = c->multi;
    int fixed = mu->shard >= 0 ? mu->shard : c->watch ? c->watch->shard : -1;
    if (fixed >= 0 && k != fixed) {
        refuse(mu, m, KEYS_CROSSSLOT);
        return;
    }
    mu->shard = k;
    keep(mu, m);
}

static void multi_capture_gather(struct conn *c, struct msg *m, bool to_shards)
{
    struct multi *mu = c->multi;
    int k = to_shards ? keys_shard(m, c->io->srv->nshards) : -2;
    if (k == -1) {
        refuse(mu, m, KEYS_CROSSSLOT);
        return;
    }
    if (k < 0) {
        char why[256];
        snprintf(why, sizeof why, "ERR '%s' runs on every shard, so it cannot be part of a transaction "
                 "(send it before MULTI or after EXEC)", m->cmd->name);
        refuse(mu, m, why);
        return;
    }
    m->whole = true;
    multi_capture_route(c, m, k);
}

static void multi_capture_reply(struct conn *c, struct msg *m)
{
    m->done = true;
    keep(c->multi, m);
}

void multi_queue(struct conn *c, struct msg *m)
{
    struct multi *mu = c->multi;
    const struct command *k = m->cmd;
    if (k->flags & CMD_BLOCKING) {
        mu->aborted = true;
        char e[256];
        snprintf(e, sizeof e, "ERR '%s' blocks, so it cannot be part of a transaction (use %s)", k->name,
                 k->flags & CMD_RESERVE ? "JOB.RESERVE ... NOWAIT outside MULTI" : "LPOP/RPOP inside MULTI");
        msg_free(m);
        say(c, NULL, e);
        return;
    }
    /* the command's own keys first: on two shards, or not on the
     * transaction's, it is refused before its handler runs */
    int ks = keys_shard(m, c->io->srv->nshards);
    int fixed = mu->shard >= 0 ? mu->shard : c->watch ? c->watch->shard : -1;
    if (ks == -1 || (ks >= 0 && fixed >= 0 && ks != fixed)) {
        mu->aborted = true;
        msg_free(m);
        say(c, NULL, KEYS_CROSSSLOT);
        return;
    }
    mu->err[0] = '\0';
    c->capture = true;
    k->io(c, m); /* ends in multi_capture_*: m is kept or freed */
    c->capture = false;
    if (mu->err[0]) {
        mu->aborted = true;
        say(c, NULL, mu->err);
        return;
    }
    say(c, "QUEUED", NULL);
}

int multi_queued(const struct conn *c)
{
    return c->multi ? c->multi->n : -1;
}

/* --------------------------------------------------------- the commands */

/* MULTI */
void io_multi(struct conn *c, struct msg *m)
{
    if (c->multi) {
        conn_reply_error(c, m, "ERR MULTI calls can not be nested");
        return;
    }
    c->multi = xcalloc(1, sizeof *c->multi);
    c->multi->shard = -1;
    c->tx = &tx_hooks;
    conn_reply_ok(c, m);
}

/* EXEC */
void io_exec(struct conn *c, struct msg *m)
{
    struct multi *mu = c->multi;
    if (!mu) {
        conn_reply_error(c, m, "ERR EXEC without MULTI");
        return;
    }
    c->multi = NULL;
    if (mu->aborted) {
        multi_free(mu);
        if (c->watch)
            send_unwatch(c, msg_new(MSG_CMD), false); /* the watches end too */
        conn_reply_error(c, m, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    struct watch *w = c->watch;
    c->watch = NULL;
    int k = mu->shard >= 0 ? mu->shard : w ? w->shard : 0;
    m->subs = mu->q;
    m->nsubs = mu->n;
    mu->q = NULL;
    mu->n = 0;
    multi_free(mu);
    if (w) {
        set_watch_args(m, "exec", w);
        m->jobs = w->versions;
        m->njobs = w->n;
        w->versions = NULL;
        watch_free(w);
    }
    conn_route(c, m, k);
}

/* DISCARD */
void io_discard(struct conn *c, struct msg *m)
{
    if (!c->multi) {
        conn_reply_error(c, m, "ERR DISCARD without MULTI");
        return;
    }
    multi_free(c->multi);
    c->multi = NULL;
    if (c->watch)
        send_unwatch(c, m, true);
    else
        conn_reply_ok(c, m);
}

static void finish_watch(struct conn *c, struct slot *sl)
{
    struct msg *m = sl->req;
    resp_buf *b = &sl->parts[0];
    int nkeys = m->req.argc - 1;
    if (b->len != (size_t)nkeys * sizeof(uint64_t)) {
        resp_add_error(&sl->out, "ERR WATCH failed on its shard; nothing is watched");
        return;
    }
    struct watch *w = c->watch;
    if (!w) {
        w = c->watch = xcalloc(1, sizeof *w);
        w->shard = m->part;
    }
    w->keys = xrealloc(w->keys, (size_t)(w->n + nkeys) * sizeof *w->keys);
    w->lens = xrealloc(w->lens, (size_t)(w->n + nkeys) * sizeof *w->lens);
    w->versions = xrealloc(w->versions, (size_t)(w->n + nkeys) * sizeof *w->versions);
    for (int i = 0; i < nkeys; i++) {
        w->keys[w->n] = xmalloc(m->req.len[i + 1] + 1);
        memcpy(w->keys[w->n], m->req.argv[i + 1], m->req.len[i + 1] + 1);
        w->lens[w->n] = m->req.len[i + 1];
        memcpy(&w->versions[w->n], b->data + (size_t)i * sizeof(uint64_t), sizeof(uint64_t));
        w->n++;
    }
    resp_add_simple(&sl->out, "OK");
}

/* WATCH key [key ...] */
void io_watch(struct conn *c, struct msg *m)
{
    if (c->multi) {
        conn_reply_error(c, m, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    int k = keys_shard(m, c->io->srv->nshards);
    if (k == -1 || (c->watch && c->watch->shard != k)) {
        conn_reply_error(c, m, KEYS_CROSSSLOT);
        return;
    }
    m->part = k; /* finish_watch reads the shard from the request */
    c->tx = &tx_hooks;
    conn_route_finish(c, m, k, finish_watch);
}

/* UNWATCH */
void io_unwatch(struct conn *c, struct msg *m)
{
    if (c->watch)
        send_unwatch(c, m, true);
    else
        conn_reply_ok(c, m);
}

void multi_reset(struct conn *c)
{
    multi_free(c->multi);
    c->multi = NULL;
    if (c->watch)
        send_unwatch(c, msg_new(MSG_CMD), false);
}

static const struct conn_tx tx_hooks = {
    .route = multi_capture_route,
    .gather = multi_capture_gather,
    .reply = multi_capture_reply,
    .closed = multi_reset,
};

/* ----------------------------------------------------------- shard side */

/* WATCH: this shard's versions of the keys, 8 bytes each, in order. */
void sh_watch(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++) {
        uint64_t v = keyspace_watch(&s->ks, m->req.argv[i], m->req.len[i]);
        resp_buf_append(&m->out, &v, sizeof v);
    }
    shard_reply(s, m);
}

/* UNWATCH key ... (internal form): releases the keys. */
void sh_unwatch(struct shard *s, struct msg *m)
{
    for (int i = 1; i < m->req.argc; i++)
        keyspace_unwatch(&s->ks, m->req.argv[i], m->req.len[i]);
    resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}

static void run_one(struct shard *s, struct msg *sub)
{
    s->capture = true;
    s->captured = NULL;
    sub->cmd->shard(s, sub);
    s->capture = false;
    ASSERT(s->captured == sub);
    if (sub->out.len == 0)
        resp_add_int(&sub->out, sub->num); /* a part reply (counts) of a gathered command */
}

/* EXEC [watched key ...] with the versions in m->jobs and the queued
 * commands in m->subs. */
void sh_exec(struct shard *s, struct msg *m)
{
    bool changed = false;
    for (int i = 1; i < m->req.argc; i++) {
        if (keyspace_watch_version(&s->ks, m->req.argv[i], m->req.len[i]) != m->jobs[i - 1])
            changed = true;
        keyspace_unwatch(&s->ks, m->req.argv[i], m->req.len[i]);
    }
    free(m->jobs);
    m->jobs = NULL;
    m->njobs = 0;
    if (changed) {
        resp_add_null_array(&m->out, m->proto);
        shard_reply(s, m);
        return;
    }
    resp_add_array(&m->out, (size_t)m->nsubs);
    for (int i = 0; i < m->nsubs; i++) {
        struct msg *sub = m->subs[i];
        if (!sub->done)
            run_one(s, sub);
        resp_buf_append(&m->out, sub->out.data, sub->out.len);
    }
    shard_reply(s, m);
}
