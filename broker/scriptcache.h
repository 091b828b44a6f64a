/*
 * scriptcache.h - the script bodies every shard can run: SHA-1 -> body,
 * shared by all threads (EVAL and SCRIPT LOAD add, EVALSHA and SCRIPT
 * EXISTS look up, SCRIPT FLUSH empties).
 *
 * Contracts layer, like the inbox: one mutex, a leaf (held only to walk or
 * splice the list; nothing is called while it is held). Entries are kept
 * most recently used first. Scripts added by EVAL are evicted, least
 * recently used first, beyond `max_eval` of them (Redis 7 does the same at
 * 500); scripts added by SCRIPT LOAD stay until SCRIPT FLUSH, but never
 * more than `max_load` (the oldest goes).
 *
 * Each shard compiles the bodies it runs into its own Lua state
 * (script.h) and keeps the compiled functions while scache_generation()
 * is unchanged: SCRIPT FLUSH bumps it, and a shard then drops them.
 */
#ifndef SPOOL_SCRIPTCACHE_H
#define SPOOL_SCRIPTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct script_cache;

struct script_cache *scache_new(size_t max_eval, size_t max_load);
void scache_free(struct script_cache *sc);
/* Adds (or touches) the script sha (40 hex digits); from_load: SCRIPT
 * LOAD (kept until flushed). */
void scache_add(struct script_cache *sc, const char *sha, const char *body, size_t len, bool from_load);
/* Whether sha is cached (and touches it). With body non-NULL, a copy of
 * the body is returned there (malloc'd, NUL-terminated; caller frees). */
bool scache_lookup(struct script_cache *sc, const char *sha, size_t shalen, char **body, size_t *len);
void scache_flush(struct script_cache *sc);
uint64_t scache_generation(struct script_cache *sc);
size_t scache_count(struct script_cache *sc);

#endif
