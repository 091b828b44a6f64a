/*
 * dict.c - see dict.h.
 */
#include "dict.h"

#include "hash.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#define DICT_MIN 8

void dict_init(struct dict *d)
{
    d->b = NULL;
    d->nb = d->n = 0;
}

void dict_free(struct dict *d, void (*free_val)(void *val))
{
    for (size_t i = 0; i < d->nb; i++) {
        struct dict_entry *e = d->b[i];
        while (e) {
            struct dict_entry *next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
            e = next;
        }
    }
    free(d->b);
    dict_init(d);
}

static void resize(struct dict *d, size_t nb)
{
    struct dict_entry **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < d->nb; i++) {
        struct dict_entry *e = d->b[i];
        while (e) {
            struct dict_entry *next = e->next;
            size_t k = e->hash & (nb - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(d->b);
    d->b = b;
    d->nb = nb;
}

struct dict_entry *dict_find(const struct dict *d, const void *key, size_t len)
{
    if (!d->nb)
        return NULL;
    uint64_t h = hash_bytes(key, len);
    for (struct dict_entry *e = d->b[h & (d->nb - 1)]; e; e = e->next)
        if (e->hash == h && e->klen == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

struct dict_entry *dict_add(struct dict *d, const void *key, size_t len, void *val)
{
    if (d->n >= d->nb)
        resize(d, d->nb ? d->nb * 2 : DICT_MIN);
    struct dict_entry *e = xmalloc(sizeof *e + len + 1);
    e->hash = hash_bytes(key, len);
    e->val = val;
    e->klen = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    size_t k = e->hash & (d->nb - 1);
    e->next = d->b[k];
    d->b[k] = e;
    d->n++;
    return e;
}

void dict_delete(struct dict *d, struct dict_entry *e)
{
    struct dict_entry **pp = &d->b[e->hash & (d->nb - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
    d->n--;
    if (d->nb > DICT_MIN && d->n < d->nb / 8)
        resize(d, d->nb / 2);
}

struct dict_entry *dict_random(const struct dict *d, uint64_t r)
{
    if (!d->n)
        return NULL;
    /* a random non-empty bucket, then a random entry of its chain */
    size_t k = r & (d->nb - 1);
    while (!d->b[k])
        k = (k + 1) & (d->nb - 1);
    size_t len = 0;
    for (struct dict_entry *e = d->b[k]; e; e = e->next)
        len++;
    struct dict_entry *e = d->b[k];
    for (size_t i = (size_t)(r >> 32) % len; i > 0; i--)
        e = e->next;
    return e;
}

static uint64_t rev(uint64_t v)
{
    uint64_t r = 0;
    for (int i = 0; i < 64; i++, v >>= 1)
        r = (r << 1) | (v & 1);
    return r;
}

uint64_t dict_scan(const struct dict *d, uint64_t cursor, void (*fn)(void *arg, struct dict_entry *e), void *arg)
{
    if (!d->nb)
        return 0;
    uint64_t mask = d->nb - 1;
    for (struct dict_entry *e = d->b[cursor & mask]; e; e = e->next)
        fn(arg, e);
    /* increment the reversed cursor over the bits of the mask */
    cursor |= ~mask;
    cursor = rev(cursor);
    cursor++;
    cursor = rev(cursor);
    return cursor;
}

void dict_each(const struct dict *d, void (*fn)(void *arg, struct dict_entry *e), void *arg)
{
    for (size_t i = 0; i < d->nb; i++)
        for (struct dict_entry *e = d->b[i]; e; e = e->next)
            fn(arg, e);
}
