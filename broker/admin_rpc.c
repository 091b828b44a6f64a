/*
 * admin_rpc.c - see admin_rpc.h.
 *
 * A call's messages carry the call in m->slot and the address of `tag` in
 * m->conn: shards carry both back without looking at them, and the tag
 * tells this module's replies from http.c's own (whose conn is NULL).
 */
#include "admin_rpc.h"

#include "context.h"
#include "inbox.h"
#include "msg.h"
#include "xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct rpc_call {
    struct rpc_call *prev, *next;   /* the pending list */
    admin_rpc_fn done;
    void *arg;
    int pending;
    int nparts;
    resp_buf *parts;
};

static char tag;
/* Main thread only. */
static struct rpc_call *pending;
static int npending;
static bool closed;

static struct msg *build(struct server *srv, const struct command *cmd, int argc, const char *const *argv,
                         const size_t *len, struct rpc_call *call, int part)
{
    struct msg *m = msg_new(MSG_CMD);
    m->cmd = cmd;
    m->origin = srv->nio; /* the main thread */
    m->conn = &tag;
    m->slot = call;
    m->part = part;
    m->proto = 3;
    resp_cmd_build(&m->req, argc, argv, len);
    return m;
}

static struct rpc_call *call_new(int nparts, admin_rpc_fn done, void *arg)
{
    if (npending >= ADMIN_RPC_MAX_PENDING || closed)
        return NULL;
    struct rpc_call *c = xcalloc(1, sizeof *c);
    c->next = pending;
    if (pending)
        pending->prev = c;
    pending = c;
    c->done = done;
    c->arg = arg;
    c->nparts = c->pending = nparts;
    c->parts = xcalloc((size_t)nparts, sizeof *c->parts);
    for (int k = 0; k < nparts; k++)
        resp_buf_init(&c->parts[k]);
    npending++;
    return c;
}

int admin_rpc_shard(struct server *srv, int k, const struct command *cmd, int argc, const char *const *argv,
                    const size_t *len, admin_rpc_fn done, void *arg)
{
    if (k < 0 || k >= srv->nshards)
        return -EINVAL;
    struct rpc_call *c = call_new(1, done, arg);
    if (!c)
        return -EBUSY;
    inbox_post(ctx_inbox(srv, ctx_shard(srv, k)), build(srv, cmd, argc, argv, len, c, 0));
    return 0;
}

int admin_rpc_all(struct server *srv, const struct command *cmd, int argc, const char *const *argv,
                  const size_t *len, admin_rpc_fn done, void *arg)
{
    struct rpc_call *c = call_new(srv->nshards, done, arg);
    if (!c)
        return -EBUSY;
    for (int k = 0; k < srv->nshards; k++)
        inbox_post(ctx_inbox(srv, ctx_shard(srv, k)), build(srv, cmd, argc, argv, len, c, k));
    return 0;
}

static void call_free(struct rpc_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    npending--;
    for (int k = 0; k < c->nparts; k++)
        resp_buf_free(&c->parts[k]);
    free(c->parts);
    free(c);
}

bool admin_rpc_on_reply(struct server *srv, struct msg *m)
{
    if (m->conn != &tag)
        return false;
    if (closed) {
        msg_free(m); /* its call was cancelled */
        return true;
    }
    struct rpc_call *c = m->slot;
    resp_buf_free(&c->parts[m->part]);
    c->parts[m->part] = m->out;
    resp_buf_init(&m->out);
    msg_free(m);
    if (--c->pending > 0)
        return true;
    c->done(srv, c->arg, c->parts, c->nparts);
    call_free(c);
    return true;
}

void admin_rpc_shutdown(struct server *srv)
{
    closed = true;
    while (pending) {
        struct rpc_call *c = pending;
        c->done(srv, c->arg, NULL, 0);
        call_free(c);
    }
}

resp_val *admin_rpc_parse(const resp_buf *b)
{
    resp_limits lim = resp_limits_default();
    lim.max_bulk = 1ULL << 32;
    lim.max_args = 1u << 24;
    resp_reader *r = resp_reader_new(&lim);
    resp_val *v = NULL;
    size_t used = 0;
    if (resp_reader_feed(r, b->data, b->len, &used, &v) != RESP_OK) {
        resp_val_free(v);
        v = NULL;
    }
    resp_reader_free(r);
    return v;
}
