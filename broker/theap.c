/*
 * theap.c - see theap.h.
 */
#include "theap.h"

#include <stdio.h>
#include <stdlib.h>

void theap_init(struct theap *h)
{
    h->a = NULL;
    h->n = h->cap = 0;
}

void theap_free(struct theap *h)
{
    free(h->a);
    theap_init(h);
}

static void place(struct theap *h, size_t i, struct theap_slot e)
{
    h->a[i] = e;
    e.t->idx = i;
}

static void sift_up(struct theap *h, size_t i)
{
    struct theap_slot e = h->a[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->a[p].when <= e.when)
            break;
        place(h, i, h->a[p]);
        i = p;
    }
    place(h, i, e);
}

static void sift_down(struct theap *h, size_t i)
{
    struct theap_slot e = h->a[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t mw = e.when;
        if (l < h->n && h->a[l].when < mw) {
            m = l;
            mw = h->a[l].when;
        }
        if (r < h->n && h->a[r].when < mw)
            m = r;
        if (m == i)
            break;
        place(h, i, h->a[m]);
        i = m;
    }
    place(h, i, e);
}

void theap_add(struct theap *h, struct tnode *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct theap_slot *a = realloc(h->a, cap * sizeof *a);
        if (!a) {
            fputs("spoold: out of memory growing the deadline heap\n", stderr);
            abort();
        }
        h->a = a;
        h->cap = cap;
    }
    place(h, h->n++, (struct theap_slot){ t->when, t });
    sift_up(h, t->idx);
}

void theap_remove(struct theap *h, struct tnode *t)
{
    size_t i = t->idx;
    if (i == TNODE_NONE)
        return;
    t->idx = TNODE_NONE;
    struct theap_slot last = h->a[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    if (i > 0 && h->a[(i - 1) / 2].when > last.when)
        sift_up(h, i);
    else
        sift_down(h, i);
}
