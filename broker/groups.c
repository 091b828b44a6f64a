/*
 * groups.c - see groups.h.
 */
#include "groups.h"

#include "hash.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static size_t gbucket(size_t nb, const char *key, size_t len)
{
    return (size_t)(hash_bytes(key, len) >> 5) & (nb - 1);
}

struct group *groups_find(const struct gtable *t, const char *key, size_t len)
{
    if (!t->nb)
        return NULL;
    for (struct group *g = t->b[gbucket(t->nb, key, len)]; g; g = g->hnext)
        if (g->len == len && memcmp(g->key, key, len) == 0)
            return g;
    return NULL;
}

static void grow(struct gtable *t)
{
    size_t onb = t->nb;
    struct group **ob = t->b;
    t->nb = onb ? onb * 2 : 16;
    t->b = xcalloc(t->nb, sizeof *t->b);
    for (size_t i = 0; i < onb; i++) {
        struct group *g = ob[i];
        while (g) {
            struct group *next = g->hnext;
            size_t k = gbucket(t->nb, g->key, g->len);
            g->hnext = t->b[k];
            t->b[k] = g;
            g = next;
        }
    }
    free(ob);
}

struct group *groups_get(struct gtable *t, const char *key, size_t len)
{
    struct group *g = groups_find(t, key, len);
    if (g)
        return g;
    if (t->n >= t->nb)
        grow(t);
    g = xcalloc(1, sizeof *g + len + 1);
    memcpy(g->key, key, len);
    g->len = len;
    size_t k = gbucket(t->nb, key, len);
    g->hnext = t->b[k];
    t->b[k] = g;
    t->n++;
    return g;
}

/* ------------------------------------------------------------ the ring */

static void ring_join(struct gtable *t, struct group *g)
{
    if (!t->ring) {
        g->rprev = g->rnext = g;
        t->ring = g;
    } else { /* just before the cursor: last in this round */
        g->rnext = t->ring;
        g->rprev = t->ring->rprev;
        g->rprev->rnext = g;
        t->ring->rprev = g;
    }
    g->in_ring = true;
    t->nring++;
}

static void ring_leave(struct gtable *t, struct group *g)
{
    if (g->rnext == g) {
        t->ring = NULL;
    } else {
        g->rprev->rnext = g->rnext;
        g->rnext->rprev = g->rprev;
        if (t->ring == g)
            t->ring = g->rnext;
    }
    g->rprev = g->rnext = NULL;
    g->in_ring = false;
    t->nring--;
}

void groups_served(struct gtable *t, struct group *g)
{
    if (g->in_ring)
        t->ring = g->rnext;
}

/* ------------------------------------------------------- ready lists */

/* a is served before b */
static bool before(int16_t apri, int64_t apos, const struct gnode *b)
{
    return apri != b->pri ? apri > b->pri : apos > b->pos;
}

static void link_after(struct group *g, struct gnode *at, struct gnode *n)
{
    n->prev = at;
    n->next = at ? at->next : g->head;
    if (n->next)
        n->next->prev = n;
    else
        g->tail = n;
    if (at)
        at->next = n;
    else
        g->head = n;
}

void groups_ready_add(struct gtable *t, struct group *g, struct gnode *n, int16_t pri, int64_t pos)
{
    n->g = g;
    n->pri = pri;
    n->pos = pos;
    if (g->idle) { /* back in use */
        if (g->iprev) g->iprev->inext = g->inext; else t->idle_head = g->inext;
        if (g->inext) g->inext->iprev = g->iprev; else t->idle_tail = g->iprev;
        g->idle = false;
        g->inext = g->iprev = NULL;
    }
    struct gnode *at;
    if (!g->tail || before(g->tail->pri, g->tail->pos, n))
        at = g->tail;                      /* served last: the usual left push */
    else if (before(pri, pos, g->head))
        at = NULL;                         /* served first: right push, recovery */
    else
        for (at = g->tail->prev; at && !before(at->pri, at->pos, n); at = at->prev)
            ;
    link_after(g, at, n);
    if (g->nready++ == 0)
        ring_join(t, g);
}

void groups_ready_remove(struct gtable *t, struct gnode *n)
{
    struct group *g = n->g;
    if (n->prev) n->prev->next = n->next; else g->head = n->next;
    if (n->next) n->next->prev = n->prev; else g->tail = n->prev;
    n->prev = n->next = NULL;
    if (--g->nready == 0)
        ring_leave(t, g);
}

static void group_free(struct gtable *t, struct group *g)
{
    struct group **pp = &t->b[gbucket(t->nb, g->key, g->len)];
    while (*pp != g)
        pp = &(*pp)->hnext;
    *pp = g->hnext;
    t->n--;
    rate_state_free(&g->lim);
    free(g);
}

void groups_drop(struct gtable *t, struct gnode *n, int64_t until_us, int64_t now_us)
{
    struct group *g = n->g;
    n->g = NULL;
    if (!g || g->nready || g->nreserved || g->idle)
        return;
    if (until_us > now_us) {
        g->linger_until = until_us;
        g->idle = true;
        g->iprev = t->idle_tail;
        g->inext = NULL;
        if (t->idle_tail) t->idle_tail->inext = g; else t->idle_head = g;
        t->idle_tail = g;
        return;
    }
    group_free(t, g);
}

void groups_sweep(struct gtable *t, int64_t now_us)
{
    struct group *g = t->idle_head;
    while (g) {
        struct group *next = g->inext;
        if (g->linger_until <= now_us) {
            if (g->iprev) g->iprev->inext = g->inext; else t->idle_head = g->inext;
            if (g->inext) g->inext->iprev = g->iprev; else t->idle_tail = g->iprev;
            group_free(t, g);
        }
        g = next;
    }
}

void groups_clear(struct gtable *t)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct group *g = t->b[i];
        while (g) {
            struct group *next = g->hnext;
            rate_state_free(&g->lim);
            free(g);
            g = next;
        }
    }
    free(t->b);
    memset(t, 0, sizeof *t);
}

void groups_each(const struct gtable *t, void (*fn)(void *arg, const struct group *g), void *arg)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct group *g = t->b[i]; g; g = g->hnext)
            fn(arg, g);
}
