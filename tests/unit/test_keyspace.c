/*
 * test_keyspace.c - the keyspace's core structures against simple models:
 * sorted sets (ranks, score and lex bounds after random changes), the dict's
 * SCAN guarantee across resizes, lazy and active expiry, and sampled
 * eviction. Memory only: the keyspace runs without a journal here.
 */
#include <criterion/criterion.h>

#include "config.h"
#include "dict.h"
#include "keyspace.h"
#include "zset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ sorted sets */

struct member {
    char name[16];
    double score;
    bool in;
};

static int by_score(const void *a, const void *b)
{
    const struct member *x = *(const struct member *const *)a, *y = *(const struct member *const *)b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return strcmp(x->name, y->name);
}

static size_t sorted_model(struct member *m, size_t n, struct member **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i].in)
            out[k++] = &m[i];
    qsort(out, k, sizeof *out, by_score);
    return k;
}

Test(zset, ranks_and_bounds_match_a_sorted_model)
{
    enum { N = 300, STEPS = 4000 };
    struct member m[N];
    struct member *sorted[N];
    struct zset *z = zset_new();
    srand(42);
    for (int i = 0; i < N; i++) {
        snprintf(m[i].name, sizeof m[i].name, "m%03d", i);
        m[i].in = false;
    }
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % N;
        if (rand() % 3 == 0) {
            cr_assert_eq(zset_del(z, m[i].name, strlen(m[i].name)), m[i].in);
            m[i].in = false;
        } else {
            double s = (double)(rand() % 50); /* many ties: order by name */
            cr_assert_eq(zset_set(z, m[i].name, strlen(m[i].name), s), !m[i].in);
            m[i].score = s;
            m[i].in = true;
        }
        if (step % 97 != 0)
            continue;
        size_t k = sorted_model(m, N, sorted);
        cr_assert_eq(zset_len(z), k);
        struct znode *x = zset_at(z, 0);
        for (size_t r = 0; r < k; r++, x = zset_next(x)) {
            cr_assert_not_null(x);
            cr_assert_str_eq(x->member, sorted[r]->name, "rank %zu", r);
            cr_assert_eq(zset_rank(z, sorted[r]->name, strlen(sorted[r]->name)), (long)r);
            cr_assert_eq(zset_at(z, r), x);
        }
        cr_assert_null(x);
        double lo = (double)(rand() % 50);
        struct znode *f = zset_first_from(z, lo, true), *l = zset_last_to(z, lo, false);
        size_t above = 0;
        for (size_t r = 0; r < k; r++)
            above += sorted[r]->score > lo;
        cr_assert_eq(f ? k - zset_node_rank(z, f) : 0, above, "first score > %g", lo);
        cr_assert_eq(l ? zset_node_rank(z, l) + 1 : 0, k - above, "last score <= %g", lo);
    }
    zset_free(z);
}

Test(zset, lex_bounds)
{
    struct zset *z = zset_new();
    const char *names[] = { "a", "b", "bb", "c", "d" };
    for (int i = 0; i < 5; i++)
        zset_set(z, names[i], strlen(names[i]), 0);
    cr_assert_str_eq(zset_first_lex(z, "b", 1, false)->member, "b");
    cr_assert_str_eq(zset_first_lex(z, "b", 1, true)->member, "bb");
    cr_assert_str_eq(zset_last_lex(z, "c", 1, true)->member, "bb");
    cr_assert_str_eq(zset_last_lex(z, "c", 1, false)->member, "c");
    cr_assert_null(zset_first_lex(z, "e", 1, false));
    cr_assert_null(zset_last_lex(z, "a", 1, true));
    cr_assert_str_eq(zset_first_lex(z, NULL, 0, false)->member, "a");
    cr_assert_str_eq(zset_last_lex(z, NULL, 0, false)->member, "d");
    zset_free(z);
}

/* ----------------------------------------------------------------- dict */

static void mark(void *arg, struct dict_entry *e)
{
    ((char *)arg)[atoi(e->key)] = 1;
}

Test(dict, scan_visits_every_lasting_key_across_resizes)
{
    enum { N = 2000 };
    struct dict d;
    dict_init(&d);
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%d", i);
        dict_add(&d, key, strlen(key), NULL);
    }
    char *seen = calloc(4 * N, 1);
    uint64_t cur = 0;
    int calls = 0, next = N;
    do {
        cur = dict_scan(&d, cur, mark, seen);
        calls++;
        /* grow by adding keys, then shrink by deleting the added ones */
        if (calls % 3 == 0 && next < 4 * N) {
            for (int k = 0; k < 50; k++, next++) {
                snprintf(key, sizeof key, "%d", next);
                dict_add(&d, key, strlen(key), NULL);
            }
        }
    } while (cur != 0 && calls < 100000);
    cr_assert_eq(cur, 0, "the scan did not end");
    for (int i = 0; i < N; i++)
        cr_assert(seen[i], "key %d existed for the whole scan and was not returned", i);
    dict_free(&d, NULL);
    free(seen);
}

/* ------------------------------------------------------------- keyspace */

static struct kv *put(struct keyspace *ks, const char *k, const char *v, int64_t expire_at, int64_t now)
{
    struct kv *kv = keyspace_create(ks, k, strlen(k), KV_STRING, now);
    keyspace_set_str(ks, kv, strdup(v), strlen(v));
    keyspace_set_expire(ks, kv, expire_at);
    keyspace_save(ks, kv);
    return kv;
}

Test(keyspace, lazy_and_active_expiry)
{
    struct keyspace ks;
    keyspace_init(&ks, NULL);
    int64_t now = 1000000;
    put(&ks, "a", "1", now + 10, now);
    put(&ks, "b", "2", now + 20, now);
    put(&ks, "c", "3", 0, now);
    cr_assert_eq(keyspace_next_expiry(&ks), now + 10);
    cr_assert_not_null(keyspace_find(&ks, "a", 1, now + 9));
    cr_assert_null(keyspace_find(&ks, "a", 1, now + 10), "a key at its expiry is gone");
    cr_assert_eq(ks.expired, 1);
    cr_assert_eq(keyspace_expire_due(&ks, now + 100, 10), 1);
    cr_assert_eq(ks.expired, 2);
    cr_assert_eq(ks.keys.n, 1);
    cr_assert_eq(keyspace_next_expiry(&ks), 0);
    keyspace_free(&ks);
}

Test(keyspace, active_expiry_is_bounded_per_call)
{
    struct keyspace ks;
    keyspace_init(&ks, NULL);
    char k[16];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put(&ks, k, "v", 100 + i, 0);
    }
    cr_assert_eq(keyspace_expire_due(&ks, 1000, 20), 20);
    cr_assert_eq(ks.keys.n, 30);
    cr_assert_eq(keyspace_expire_due(&ks, 1000, 100), 30);
    keyspace_free(&ks);
}

Test(keyspace, lru_eviction_stays_under_budget_and_prefers_old_keys)
{
    struct keyspace ks;
    keyspace_init(&ks, NULL);
    char k[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put(&ks, k, "0123456789012345678901234567890123456789", 0, i); /* atime = i */
    }
    int64_t budget = ks.bytes / 2;
    cr_assert(keyspace_evict(&ks, budget, EVICT_ALLKEYS_LRU, 2000));
    cr_assert_leq(ks.bytes, budget);
    cr_assert_gt(ks.evicted, 400);
    /* sampled LRU: the survivors are mostly the recently used half */
    int young = 0;
    for (int i = 500; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        young += keyspace_find(&ks, k, strlen(k), 2000) != NULL;
    }
    cr_assert_gt(young, (int)ks.keys.n * 6 / 10, "%d of %zu survivors are young", young, ks.keys.n);
    cr_assert(!keyspace_evict(&ks, 0, EVICT_VOLATILE_LRU, 2000), "volatile-lru found keys without an expiry");
    cr_assert(!keyspace_evict(&ks, 0, EVICT_NONE, 2000));
    keyspace_free(&ks);
}

Test(keyspace, memory_estimate_returns_to_zero)
{
    struct keyspace ks;
    keyspace_init(&ks, NULL);
    struct kv *h = keyspace_create(&ks, "h", 1, KV_HASH, 0);
    for (int i = 0; i < 100; i++) {
        char f[16];
        snprintf(f, sizeof f, "f%d", i);
        keyspace_hset(&ks, h, f, strlen(f), "value", 5);
    }
    keyspace_hdel(&ks, h, "f1", 2);
    struct kv *z = keyspace_create(&ks, "z", 1, KV_ZSET, 0);
    for (int i = 0; i < 100; i++) {
        char mem[16];
        snprintf(mem, sizeof mem, "m%d", i);
        ks.bytes -= (int64_t)zset_bytes(z->zset);
        zset_set(z->zset, mem, strlen(mem), i);
        ks.bytes += (int64_t)zset_bytes(z->zset);
    }
    put(&ks, "s", "a string value", 0, 0);
    cr_assert_gt(ks.bytes, 0);
    keyspace_delete(&ks, keyspace_find(&ks, "h", 1, 0));
    keyspace_delete(&ks, keyspace_find(&ks, "z", 1, 0));
    keyspace_delete(&ks, keyspace_find(&ks, "s", 1, 0));
    cr_assert_eq(ks.bytes, 0, "%lld bytes left after every key went", (long long)ks.bytes);
    keyspace_free(&ks);
}
