/*
 * theap.h - a binary min-heap of deadlines, one per shard.
 *
 * Every deadline a shard keeps (blocking-pop timeouts now; leases and delays
 * in the reliable queues) is a struct tnode embedded in the object it times
 * out. Nodes know their heap index, so removal is O(log n) with no search.
 * Each slot of the array keeps its node's deadline next to the pointer, so
 * sifting compares without reading the nodes (spread over the heap of the
 * process: a cache miss each); only a node that moves is written.
 * One libevent timer per shard is armed for the earliest node. Owned by one
 * shard thread; no locking.
 */
#ifndef SPOOL_THEAP_H
#define SPOOL_THEAP_H

#include <stddef.h>
#include <stdint.h>

#define TNODE_NONE ((size_t)-1)

struct tnode {
    int64_t when; /* monotonic ms */
    size_t idx;   /* position in the heap, TNODE_NONE when not in it */
    int kind;     /* what the embedding object is (owner's enum) */
};

struct theap_slot {
    int64_t when; /* == t->when */
    struct tnode *t;
};

struct theap {
    struct theap_slot *a;
    size_t n, cap;
};

void theap_init(struct theap *h);
void theap_free(struct theap *h);
static inline void tnode_init(struct tnode *t, int kind) { t->when = 0; t->idx = TNODE_NONE; t->kind = kind; }
static inline int tnode_armed(const struct tnode *t) { return t->idx != TNODE_NONE; }
void theap_add(struct theap *h, struct tnode *t);      /* t->when must be set */
void theap_remove(struct theap *h, struct tnode *t);   /* no-op when not armed */
static inline struct tnode *theap_min(const struct theap *h) { return h->n ? h->a[0].t : NULL; }

#endif
