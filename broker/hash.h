/*
 * hash.h - the string hash used for queue routing and queue tables.
 *
 * hash_bytes() is FNV-1a, 64 bit, for in-memory tables. shard_of() decides
 * which shard owns a key: by its Redis Cluster slot (slot.h), part of the
 * on-disk format.
 */
#ifndef SPOOL_HASH_H
#define SPOOL_HASH_H

#include "slot.h"

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static inline int shard_of(const void *name, size_t len, int nshards)
{
    return slot_shard(name, len, nshards);
}

#endif
