/*
 * queue.c - see queue.h.
 */
#include "queue.h"

#include "hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fputs("spoold: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* ------------------------------------------------------------------ jobs */

struct job *job_new(uint64_t id, const void *p, size_t n)
{
    struct job *j = xalloc(sizeof *j + n + 1);
    j->id = id;
    j->len = (uint32_t)n;
    j->payload = (char *)(j + 1);
    memcpy(j->payload, p, n);
    j->payload[n] = '\0';
    return j;
}

void job_free(struct job *j)
{
    free(j);
}

/* ----------------------------------------------------------------- deque */

static void jobq_grow(struct jobq *d)
{
    size_t cap = d->cap ? d->cap * 2 : 8;
    struct job **r = xalloc(cap * sizeof *r);
    for (size_t i = 0; i < d->n; i++)
        r[i] = jobq_at(d, i);
    free(d->ring);
    d->ring = r;
    d->head = 0;
    d->cap = cap;
}

void jobq_push_left(struct jobq *d, struct job *j)
{
    if (d->n == d->cap)
        jobq_grow(d);
    d->head = (d->head - 1) & (d->cap - 1);
    d->ring[d->head] = j;
    d->n++;
}

void jobq_push_right(struct jobq *d, struct job *j)
{
    if (d->n == d->cap)
        jobq_grow(d);
    d->ring[(d->head + d->n) & (d->cap - 1)] = j;
    d->n++;
}

struct job *jobq_pop_left(struct jobq *d)
{
    if (d->n == 0)
        return NULL;
    struct job *j = d->ring[d->head];
    d->head = (d->head + 1) & (d->cap - 1);
    d->n--;
    return j;
}

struct job *jobq_pop_right(struct jobq *d)
{
    if (d->n == 0)
        return NULL;
    d->n--;
    return d->ring[(d->head + d->n) & (d->cap - 1)];
}

void jobq_clear(struct jobq *d)
{
    for (size_t i = 0; i < d->n; i++)
        job_free(jobq_at(d, i));
    free(d->ring);
    memset(d, 0, sizeof *d);
}

/* --------------------------------------------------------------- waiters */

void queue_wait_append(struct queue *q, struct wlink *l)
{
    l->q = q;
    l->next = NULL;
    l->prev = q->wait_tail;
    if (q->wait_tail)
        q->wait_tail->next = l;
    else
        q->wait_head = l;
    q->wait_tail = l;
    q->nwaiters++;
}

void queue_wait_unlink(struct wlink *l)
{
    struct queue *q = l->q;
    if (!q)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        q->wait_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        q->wait_tail = l->prev;
    q->nwaiters--;
    l->prev = l->next = NULL;
    l->q = NULL;
}

/* ----------------------------------------------------------------- table */

void qtable_init(struct qtable *t)
{
    t->nb = 64;
    t->n = 0;
    t->b = calloc(t->nb, sizeof *t->b);
    if (!t->b)
        abort();
}

static void queue_free(struct queue *q)
{
    jobq_clear(&q->ready);
    free(q->name);
    free(q);
}

void qtable_free(struct qtable *t)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct queue *q = t->b[i];
        while (q) {
            struct queue *next = q->hnext;
            queue_free(q);
            q = next;
        }
    }
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static size_t bucket(const struct qtable *t, const char *name, size_t len)
{
    return (size_t)(hash_bytes(name, len) >> 7) & (t->nb - 1);
}

struct queue *qtable_find(const struct qtable *t, const char *name, size_t len)
{
    for (struct queue *q = t->b[bucket(t, name, len)]; q; q = q->hnext)
        if (q->namelen == len && memcmp(q->name, name, len) == 0)
            return q;
    return NULL;
}

static void qtable_rehash(struct qtable *t)
{
    size_t onb = t->nb;
    struct queue **ob = t->b;
    t->nb = onb * 2;
    t->b = calloc(t->nb, sizeof *t->b);
    if (!t->b)
        abort();
    for (size_t i = 0; i < onb; i++) {
        struct queue *q = ob[i];
        while (q) {
            struct queue *next = q->hnext;
            size_t k = bucket(t, q->name, q->namelen);
            q->hnext = t->b[k];
            t->b[k] = q;
            q = next;
        }
    }
    free(ob);
}

struct queue *qtable_get(struct qtable *t, const char *name, size_t len)
{
    struct queue *q = qtable_find(t, name, len);
    if (q)
        return q;
    if (t->n >= t->nb)
        qtable_rehash(t);
    q = xalloc(sizeof *q);
    memset(q, 0, sizeof *q);
    q->name = xalloc(len + 1);
    memcpy(q->name, name, len);
    q->name[len] = '\0';
    q->namelen = len;
    size_t k = bucket(t, name, len);
    q->hnext = t->b[k];
    t->b[k] = q;
    t->n++;
    return q;
}

bool qtable_maybe_free(struct qtable *t, struct queue *q)
{
    if (q->ready.n || q->nwaiters || q->in_ready_list)
        return false;
    struct queue **pp = &t->b[bucket(t, q->name, q->namelen)];
    while (*pp != q)
        pp = &(*pp)->hnext;
    *pp = q->hnext;
    t->n--;
    queue_free(q);
    return true;
}

void qtable_each(const struct qtable *t, void (*fn)(void *arg, struct queue *q), void *arg)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct queue *q = t->b[i]; q; q = q->hnext)
            fn(arg, q);
}

/* ---------------------------------------------------------------- ranges */

bool queue_range(size_t n, long long start, long long stop, size_t *from, size_t *to)
{
    long long len = (long long)n;
    if (start < 0)
        start += len;
    if (stop < 0)
        stop += len;
    if (start < 0)
        start = 0;
    if (start > stop || start >= len)
        return false;
    if (stop >= len)
        stop = len - 1;
    *from = (size_t)start;
    *to = (size_t)stop;
    return true;
}
