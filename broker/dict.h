/*
 * dict.h - a hash table of binary-safe byte keys to pointers.
 *
 * Used by the keyspace (keys -> struct kv), by hashes (field -> value) and
 * sorted sets (member -> score node). Chained buckets, a power-of-two
 * bucket count that doubles at load factor 1 and halves below 1/8. Entries
 * own a copy of their key (NUL-terminated, so keys print as C strings
 * when they hold no NUL); values belong to the caller.
 *
 * dict_scan() walks buckets in reverse-binary cursor order (the order
 * Redis's SCAN uses): a walk that starts at 0 and runs until the cursor
 * comes back to 0 visits every entry present for the whole walk at least
 * once, even when the table grows or shrinks between calls.
 *
 * Owned by one thread; no locking.
 */
#ifndef SPOOL_DICT_H
#define SPOOL_DICT_H

#include <stddef.h>
#include <stdint.h>

struct dict_entry {
    struct dict_entry *next;
    uint64_t hash;
    void *val;
    size_t klen;
    char key[];
};

struct dict {
    struct dict_entry **b;
    size_t nb, n;
};

void dict_init(struct dict *d);
/* Frees every entry (calling free_val on each value when not NULL). */
void dict_free(struct dict *d, void (*free_val)(void *val));
struct dict_entry *dict_find(const struct dict *d, const void *key, size_t len);
/* Adds key (which must not be present); returns its entry. */
struct dict_entry *dict_add(struct dict *d, const void *key, size_t len, void *val);
/* Removes and frees e (not its value). */
void dict_delete(struct dict *d, struct dict_entry *e);
/* A random entry (r: any random number); NULL when empty. */
struct dict_entry *dict_random(const struct dict *d, uint64_t r);
/* Calls fn on the entries of one bucket at cursor; returns the next cursor
 * (0 when the walk is complete). */
uint64_t dict_scan(const struct dict *d, uint64_t cursor, void (*fn)(void *arg, struct dict_entry *e), void *arg);
/* Calls fn on every entry; fn must not change the table. */
void dict_each(const struct dict *d, void (*fn)(void *arg, struct dict_entry *e), void *arg);

#endif
