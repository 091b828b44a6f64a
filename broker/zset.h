/*
 * zset.h - a sorted set: members ordered by (score, member bytes), found by
 * name in O(1) and by rank or score in O(log n).
 *
 * A skip list with spans (each forward link knows how many nodes it
 * skips, so ranks come out of the same walk) plus a dict from member to
 * node, the shape Redis uses. Core layer: memory only; the keyspace
 * journals members (keyspace_save_member). One thread; no locking.
 *
 * Order: ascending score, ties broken by memcmp of the member bytes
 * (shorter first on a common prefix), which is also the order BYLEX
 * ranges use when all scores are equal.
 */
#ifndef SPOOL_ZSET_H
#define SPOOL_ZSET_H

#include <stdbool.h>
#include <stddef.h>

#define ZSET_MAXLEVEL 32

struct znode {
    double score;
    char *member;                /* NUL at member[mlen] */
    size_t mlen;
    struct znode *back;
    int nlevels;
    struct zlevel {
        struct znode *fwd;
        size_t span;
    } level[];
};

struct zset;

struct zset *zset_new(void);
void zset_free(struct zset *z);            /* NULL is fine */
size_t zset_len(const struct zset *z);
size_t zset_bytes(const struct zset *z);   /* memory estimate */
bool zset_score(const struct zset *z, const char *m, size_t mlen, double *score);
/* Adds or moves a member; returns true when it is new. */
bool zset_set(struct zset *z, const char *m, size_t mlen, double score);
bool zset_del(struct zset *z, const char *m, size_t mlen);
/* 0-based rank in ascending order, -1 when absent. */
long zset_rank(const struct zset *z, const char *m, size_t mlen);
/* The node at 0-based ascending rank, NULL when out of range. */
struct znode *zset_at(const struct zset *z, size_t rank);
struct znode *zset_next(const struct znode *n);
struct znode *zset_prev(const struct znode *n);
/* First node with score > min (exclusive) or >= min. */
struct znode *zset_first_from(const struct zset *z, double min, bool exclusive);
/* Last node with score < max (exclusive) or <= max. */
struct znode *zset_last_to(const struct zset *z, double max, bool exclusive);
/* Lexicographic bounds (for BYLEX, all scores equal): first member > / >= m
 * (m NULL = -inf), last member < / <= m (m NULL = +inf). */
struct znode *zset_first_lex(const struct zset *z, const char *m, size_t mlen, bool exclusive);
struct znode *zset_last_lex(const struct zset *z, const char *m, size_t mlen, bool exclusive);
/* Rank of a node (0-based, ascending). */
size_t zset_node_rank(const struct zset *z, const struct znode *n);
/* One step of a cursor walk over the members (dict_scan's guarantees). */
unsigned long long zset_scan(const struct zset *z, unsigned long long cursor,
                             void (*fn)(void *arg, const struct znode *n), void *arg);

#endif
