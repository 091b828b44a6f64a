/*
 * zset.c - skip list with spans plus a member dict (see zset.h).
 */
#include "zset.h"

#include "dict.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct zset {
    struct dict byname;          /* member -> struct znode * */
    struct znode *head;          /* sentinel with ZSET_MAXLEVEL levels */
    struct znode *tail;
    int level;
    size_t len;
    size_t bytes;
    unsigned long rng;
};

static struct znode *node_new(int levels, double score, const char *m, size_t mlen)
{
    struct znode *n = xcalloc(1, sizeof *n + (size_t)levels * sizeof n->level[0]);
    n->score = score;
    n->nlevels = levels;
    if (m) {
        n->member = xmalloc(mlen + 1);
        memcpy(n->member, m, mlen);
        n->member[mlen] = '\0';
        n->mlen = mlen;
    }
    return n;
}

static void node_free(struct znode *n)
{
    free(n->member);
    free(n);
}

struct zset *zset_new(void)
{
    struct zset *z = xcalloc(1, sizeof *z);
    dict_init(&z->byname);
    z->head = node_new(ZSET_MAXLEVEL, 0, NULL, 0);
    z->level = 1;
    z->rng = 0x2545F4914F6CDD1DUL;
    return z;
}

void zset_free(struct zset *z)
{
    if (!z)
        return;
    struct znode *n = z->head->level[0].fwd;
    while (n) {
        struct znode *next = n->level[0].fwd;
        node_free(n);
        n = next;
    }
    node_free(z->head);
    dict_free(&z->byname, NULL);
    free(z);
}

size_t zset_len(const struct zset *z)
{
    return z->len;
}

size_t zset_bytes(const struct zset *z)
{
    return sizeof *z + z->bytes + z->byname.nb * sizeof(void *);
}

static int cmp(double s1, const char *m1, size_t l1, double s2, const char *m2, size_t l2)
{
    if (s1 < s2)
        return -1;
    if (s1 > s2)
        return 1;
    int c = memcmp(m1, m2, l1 < l2 ? l1 : l2);
    if (c)
        return c;
    return (l1 > l2) - (l1 < l2);
}

static int random_level(struct zset *z)
{
    int lvl = 1;
    for (;;) {
        z->rng ^= z->rng << 13;
        z->rng ^= z->rng >> 7;
        z->rng ^= z->rng << 17;
        if ((z->rng & 3) != 0 || lvl >= ZSET_MAXLEVEL)
            break;
        lvl++;
    }
    return lvl;
}

static struct znode *insert(struct zset *z, double score, const char *m, size_t mlen)
{
    struct znode *update[ZSET_MAXLEVEL];
    size_t rank[ZSET_MAXLEVEL];
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        rank[i] = i == z->level - 1 ? 0 : rank[i + 1];
        while (x->level[i].fwd && cmp(x->level[i].fwd->score, x->level[i].fwd->member, x->level[i].fwd->mlen,
                                      score, m, mlen) < 0) {
            rank[i] += x->level[i].span;
            x = x->level[i].fwd;
        }
        update[i] = x;
    }
    int lvl = random_level(z);
    if (lvl > z->level) {
        for (int i = z->level; i < lvl; i++) {
            rank[i] = 0;
            update[i] = z->head;
            update[i]->level[i].span = z->len;
        }
        z->level = lvl;
    }
    x = node_new(lvl, score, m, mlen);
    for (int i = 0; i < lvl; i++) {
        x->level[i].fwd = update[i]->level[i].fwd;
        update[i]->level[i].fwd = x;
        x->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = lvl; i < z->level; i++)
        update[i]->level[i].span++;
    x->back = update[0] == z->head ? NULL : update[0];
    if (x->level[0].fwd)
        x->level[0].fwd->back = x;
    else
        z->tail = x;
    z->len++;
    z->bytes += sizeof *x + (size_t)lvl * sizeof x->level[0] + mlen + 1 + sizeof(struct dict_entry) + mlen + 1;
    return x;
}

/* Unlinks n (found by its score and member) and frees it. */
static void unlink_node(struct zset *z, struct znode *n)
{
    struct znode *update[ZSET_MAXLEVEL];
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && cmp(x->level[i].fwd->score, x->level[i].fwd->member, x->level[i].fwd->mlen,
                                      n->score, n->member, n->mlen) < 0)
            x = x->level[i].fwd;
        update[i] = x;
    }
    for (int i = 0; i < z->level; i++) {
        if (update[i]->level[i].fwd == n) {
            update[i]->level[i].span += n->level[i].span - 1;
            update[i]->level[i].fwd = n->level[i].fwd;
        } else {
            update[i]->level[i].span--;
        }
    }
    if (n->level[0].fwd)
        n->level[0].fwd->back = n->back;
    else
        z->tail = n->back;
    while (z->level > 1 && !z->head->level[z->level - 1].fwd)
        z->level--;
    z->len--;
    z->bytes -= sizeof *n + (size_t)n->nlevels * sizeof n->level[0] + 2 * (n->mlen + 1) + sizeof(struct dict_entry);
    node_free(n);
}

bool zset_score(const struct zset *z, const char *m, size_t mlen, double *score)
{
    struct dict_entry *e = dict_find(&z->byname, m, mlen);
    if (!e)
        return false;
    *score = ((struct znode *)e->val)->score;
    return true;
}

bool zset_set(struct zset *z, const char *m, size_t mlen, double score)
{
    struct dict_entry *e = dict_find(&z->byname, m, mlen);
    if (e) {
        struct znode *n = e->val;
        if (n->score == score)
            return false;
        unlink_node(z, n);
        e->val = insert(z, score, m, mlen);
        return false;
    }
    dict_add(&z->byname, m, mlen, insert(z, score, m, mlen));
    return true;
}

bool zset_del(struct zset *z, const char *m, size_t mlen)
{
    struct dict_entry *e = dict_find(&z->byname, m, mlen);
    if (!e)
        return false;
    unlink_node(z, e->val);
    dict_delete(&z->byname, e);
    return true;
}

size_t zset_node_rank(const struct zset *z, const struct znode *n)
{
    size_t rank = 0;
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && cmp(x->level[i].fwd->score, x->level[i].fwd->member, x->level[i].fwd->mlen,
                                      n->score, n->member, n->mlen) <= 0) {
            rank += x->level[i].span;
            x = x->level[i].fwd;
        }
        if (x == n)
            return rank - 1;
    }
    return rank - 1;
}

long zset_rank(const struct zset *z, const char *m, size_t mlen)
{
    struct dict_entry *e = dict_find(&z->byname, m, mlen);
    return e ? (long)zset_node_rank(z, e->val) : -1;
}

struct znode *zset_at(const struct zset *z, size_t rank)
{
    if (rank >= z->len)
        return NULL;
    size_t want = rank + 1, seen = 0;
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && seen + x->level[i].span <= want) {
            seen += x->level[i].span;
            x = x->level[i].fwd;
        }
        if (seen == want)
            return x;
    }
    return NULL;
}

struct znode *zset_next(const struct znode *n)
{
    return n->level[0].fwd;
}

struct znode *zset_prev(const struct znode *n)
{
    return n->back;
}

static bool above_min(double s, double min, bool ex)
{
    return ex ? s > min : s >= min;
}

static bool below_max(double s, double max, bool ex)
{
    return ex ? s < max : s <= max;
}

struct znode *zset_first_from(const struct zset *z, double min, bool exclusive)
{
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && !above_min(x->level[i].fwd->score, min, exclusive))
            x = x->level[i].fwd;
    return x->level[0].fwd;
}

struct znode *zset_last_to(const struct zset *z, double max, bool exclusive)
{
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && below_max(x->level[i].fwd->score, max, exclusive))
            x = x->level[i].fwd;
    return x == z->head ? NULL : x;
}

static int lexcmp(const struct znode *n, const char *m, size_t mlen)
{
    int c = memcmp(n->member, m, n->mlen < mlen ? n->mlen : mlen);
    if (c)
        return c;
    return (n->mlen > mlen) - (n->mlen < mlen);
}

struct znode *zset_first_lex(const struct zset *z, const char *m, size_t mlen, bool exclusive)
{
    struct znode *x = z->head;
    if (!m)
        return x->level[0].fwd;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && (exclusive ? lexcmp(x->level[i].fwd, m, mlen) <= 0
                                             : lexcmp(x->level[i].fwd, m, mlen) < 0))
            x = x->level[i].fwd;
    return x->level[0].fwd;
}

struct znode *zset_last_lex(const struct zset *z, const char *m, size_t mlen, bool exclusive)
{
    if (!m)
        return z->tail;
    struct znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && (exclusive ? lexcmp(x->level[i].fwd, m, mlen) < 0
                                             : lexcmp(x->level[i].fwd, m, mlen) <= 0))
            x = x->level[i].fwd;
    return x == z->head ? NULL : x;
}

struct scan_arg {
    void (*fn)(void *arg, const struct znode *n);
    void *arg;
};

static void scan_one(void *arg, struct dict_entry *e)
{
    struct scan_arg *a = arg;
    a->fn(a->arg, e->val);
}

unsigned long long zset_scan(const struct zset *z, unsigned long long cursor,
                             void (*fn)(void *arg, const struct znode *n), void *arg)
{
    struct scan_arg a = { fn, arg };
    return dict_scan(&z->byname, cursor, scan_one, &a);
}
