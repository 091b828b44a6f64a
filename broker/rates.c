/*
 * rates.c - see rates.h.
 */
#include "rates.h"

#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct series {
    char *name;                 /* NULL: free slot (the total has "") */
    size_t len;
    int64_t head;               /* newest second written (0: none) */
    int64_t active;             /* last second with a nonzero figure */
    uint32_t v[RATE_NSERIES][RATES_SECONDS];
};

struct prev {
    char *name;
    size_t len;
    uint64_t v[RATE_NSERIES];
};

struct rates {
    int max;
    struct series **s;          /* s[0] = total, s[1..max] queues (NULL = never used) */
    struct prev *prev;          /* last round, sorted */
    size_t nprev;
    int64_t first, last;
    bool overflowed;
};

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

struct rates *rates_new(int max_queues)
{
    struct rates *r = xcalloc(1, sizeof *r);
    r->max = max_queues;
    r->s = xcalloc((size_t)max_queues + 1, sizeof *r->s);
    r->s[0] = xcalloc(1, sizeof *r->s[0]);
    r->s[0]->name = xcalloc(1, 1);
    return r;
}

static void free_prev(struct prev *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].name);
    free(p);
}

void rates_free(struct rates *r)
{
    if (!r)
        return;
    for (int i = 0; i <= r->max; i++) {
        if (r->s[i])
            free(r->s[i]->name);
        free(r->s[i]);
    }
    free(r->s);
    free_prev(r->prev, r->nprev);
    free(r);
}

static size_t slot(int64_t sec)
{
    return (size_t)(((sec % RATES_SECONDS) + RATES_SECONDS) % RATES_SECONDS);
}

/* Moves a series' head to sec, clearing the seconds it skips. */
static void advance(struct series *s, int64_t sec)
{
    if (sec <= s->head)
        return;
    if (!s->head || sec - s->head >= RATES_SECONDS) {
        memset(s->v, 0, sizeof s->v);
    } else {
        for (int64_t t = s->head + 1; t <= sec; t++)
            for (int k = 0; k < RATE_NSERIES; k++)
                s->v[k][slot(t)] = 0;
    }
    s->head = sec;
}

static void add(struct series *s, int64_t sec, const uint64_t d[RATE_NSERIES])
{
    advance(s, sec);
    bool any = false;
    for (int k = 0; k < RATE_NSERIES; k++) {
        uint64_t v = s->v[k][slot(sec)] + d[k];
        s->v[k][slot(sec)] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        any |= d[k] != 0;
    }
    if (any)
        s->active = sec;
}

int rates_find(const struct rates *r, const char *name, size_t len)
{
    if (!name)
        return 0;
    for (int i = 1; i <= r->max; i++)
        if (r->s[i] && r->s[i]->name && r->s[i]->len == len && memcmp(r->s[i]->name, name, len) == 0)
            return i;
    return -1;
}

/* A series for a queue that just showed activity: a free slot, or the
 * one idle longest if it has been idle for a whole window. */
static int claim(struct rates *r, const char *name, size_t len, int64_t now)
{
    int best = -1;
    for (int i = 1; i <= r->max; i++) {
        if (!r->s[i] || !r->s[i]->name) {
            best = i;
            break;
        }
        if (r->s[i]->active <= now - RATES_SECONDS && (best < 0 || r->s[i]->active < r->s[best]->active))
            best = i;
    }
    if (best < 0) {
        r->overflowed = true;
        return -1;
    }
    if (!r->s[best])
        r->s[best] = xmalloc(sizeof *r->s[best]);
    else
        free(r->s[best]->name);
    struct series *s = r->s[best];
    memset(s, 0, sizeof *s);
    s->name = xmalloc(len + 1);
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->len = len;
    return best;
}

void rates_sample(struct rates *r, int64_t now_s, const struct rates_row *rows, size_t n)
{
    if (now_s < r->last)
        now_s = r->last; /* the wall clock stepped back: keep the ring monotonic */
    uint64_t total[RATE_NSERIES] = { 0 };
    struct prev *next = xcalloc(n ? n : 1, sizeof *next);
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rates_row *row = &rows[i];
        while (p < r->nprev && name_cmp(r->prev[p].name, r->prev[p].len, row->name, row->len) < 0)
            p++;
        bool known = p < r->nprev && name_cmp(r->prev[p].name, r->prev[p].len, row->name, row->len) == 0;
        uint64_t d[RATE_NSERIES];
        bool any = false;
        for (int k = 0; k < RATE_NSERIES; k++) {
            uint64_t before = known ? r->prev[p].v[k] : 0;
            d[k] = row->v[k] >= before ? row->v[k] - before : row->v[k];
            total[k] += d[k];
            any |= d[k] != 0;
        }
        int idx = rates_find(r, row->name, row->len);
        if (idx < 0 && any)
            idx = claim(r, row->name, row->len, now_s);
        if (idx > 0)
            add(r->s[idx], now_s, d);
        next[i].name = xmalloc(row->len + 1);
        memcpy(next[i].name, row->name, row->len);
        next[i].name[row->len] = '\0';
        next[i].len = row->len;
        memcpy(next[i].v, row->v, sizeof next[i].v);
    }
    add(r->s[0], now_s, total);
    free_prev(r->prev, r->nprev);
    r->prev = next;
    r->nprev = n;
    r->last = now_s;
    if (!r->first)
        r->first = now_s;
}

int64_t rates_last(const struct rates *r)
{
    return r->last;
}

int64_t rates_first(const struct rates *r)
{
    return r->first;
}

void rates_at(const struct rates *r, int idx, int64_t sec, uint32_t out[RATE_NSERIES])
{
    memset(out, 0, RATE_NSERIES * sizeof *out);
    if (idx < 0 || idx > r->max || !r->s[idx] || !r->s[idx]->name)
        return;
    const struct series *s = r->s[idx];
    /* Seconds after the series' head were not written yet: zero. */
    if (sec <= 0 || sec > s->head || sec <= s->head - RATES_SECONDS || sec > r->last)
        return;
    for (int k = 0; k < RATE_NSERIES; k++)
        out[k] = s->v[k][slot(sec)];
}

bool rates_overflowed(const struct rates *r)
{
    return r->overflowed;
}

size_t rates_memory(const struct rates *r)
{
    size_t b = sizeof *r + ((size_t)r->max + 1) * sizeof *r->s + r->nprev * sizeof *r->prev;
    for (int i = 0; i <= r->max; i++)
        if (r->s[i])
            b += sizeof *r->s[i] + r->s[i]->len + 1;
    for (size_t i = 0; i < r->nprev; i++)
        b += r->prev[i].len + 1;
    return b;
}
