/*
 * cmd_flow.c - QUEUE.GROUPS and QUEUE.WORKERS (see cmd_flow.h and
 * docs/protocol.md). Both run on the queue's shard and only read.
 */
#include "cmd_flow.h"

#include "clock.h"
#include "groups.h"
#include "msg.h"
#include "queue.h"
#include "shard.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static void add_kv(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

/* ---------------------------------------------------------- QUEUE.GROUPS */

struct gvec {
    const struct group **v;
    size_t n;
};

static void collect_group(void *arg, const struct group *g)
{
    struct gvec *gv = arg;
    gv->v[gv->n++] = g;
}

static int by_key(const void *a, const void *b)
{
    const struct group *x = *(const struct group *const *)a, *y = *(const struct group *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* QUEUE.GROUPS queue
 * An array of maps, one per group with ready or reserved jobs, sorted by
 * key: group (the key; "" is the default group), ready, reserved,
 * delivered (deliveries since the group last appeared). */
void sh_queue_groups(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    struct gvec gv = { NULL, 0 };
    if (q && q->groups.n) {
        groups_sweep(&q->groups, clock_now_ms() * 1000);
        gv.v = xmalloc((q->groups.n ? q->groups.n : 1) * sizeof *gv.v);
        groups_each(&q->groups, collect_group, &gv);
        qsort(gv.v, gv.n, sizeof *gv.v, by_key);
    }
    resp_add_array(&m->out, gv.n);
    for (size_t i = 0; i < gv.n; i++) {
        const struct group *g = gv.v[i];
        resp_add_map(&m->out, m->proto, 4);
        resp_add_cstr(&m->out, "group");
        resp_add_bulk(&m->out, g->key, g->len);
        add_kv(&m->out, "ready", (long long)g->nready);
        add_kv(&m->out, "reserved", (long long)g->nreserved);
        add_kv(&m->out, "delivered", (long long)g->delivered);
    }
    free(gv.v);
    shard_reply(s, m);
}
