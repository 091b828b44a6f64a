/*
 * msg.c - allocation of cross-thread messages and claims (msg.h, claim.h).
 */
#include "msg.h"

#include "claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg *msg_new(enum msg_type type)
{
    struct msg *m = calloc(1, sizeof *m);
    if (!m) {
        fputs("spoold: out of memory\n", stderr);
        abort();
    }
    m->type = type;
    m->fd = -1;
    return m;
}

void msg_free(struct msg *m)
{
    if (!m)
        return;
    resp_cmd_free(&m->req);
    resp_buf_free(&m->out);
    free(m->jobs);
    free(m->note);
    free(m->who);
    free(m->user);
    for (int i = 0; i < m->nsubs; i++)
        msg_free(m->subs[i]);
    free(m->subs);
    if (m->claim)
        claim_release(m->claim);
    free(m);
}

struct claim *claim_new(int nshards, int refs)
{
    struct claim *c = calloc(1, sizeof *c + (size_t)nshards * sizeof(struct waiter *));
    if (!c) {
        fputs("spoold: out of memory\n", stderr);
        abort();
    }
    atomic_init(&c->state, CLAIM_OPEN);
    atomic_init(&c->refs, refs);
    c->nshards = nshards;
    return c;
}

void claim_release(struct claim *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}
