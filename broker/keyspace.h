/*
 * keyspace.h - a shard's keys other than queues: strings, hashes and sorted
 * sets, with absolute expiry times, journaled like jobs.
 *
 * Core layer: no threads, no sockets. One struct keyspace per shard, used
 * only by that shard's thread. Queues stay in the shard's queue table; a
 * name is either a queue or a keyspace key (the command layer answers
 * WRONGTYPE otherwise).
 *
 * API, in the order a command uses it:
 *   keyspace_find()      the live key or NULL; a key whose expiry passed is
 *                        deleted here (lazy expiry, journaled, counted);
 *   keyspace_read()      the same, counting keyspace hits/misses and
 *                        refreshing the key's access time (LRU/LFU);
 *   keyspace_create()    a new, empty key of a type (in memory only);
 *   keyspace_set_str() / keyspace_set_expire() / hash and zset calls
 *                        change memory;
 *   keyspace_save()      journals the key row (type, expiry, string value);
 *   keyspace_save_field() / keyspace_save_member()
 *                        journal one hash field / sorted-set member;
 *   keyspace_delete()    removes a key (journaled).
 * Every journaled change goes through the sink (struct ks_sink): the
 * shard's transaction of the turn, begun at the first change. The journal
 * is an append-only log (kvjournal.h); once it holds more than twice the
 * rows of the live state (plus 10,000), the next change rewrites it as a
 * snapshot of memory in the same transaction (one pass over the keys). A command
 * that changed memory must journal the change in the same call, so that a
 * failed commit (the shard reloads memory from the journal) loses nothing
 * that was replied to.
 *
 * Expiry: keys with an expiry sit in a deadline heap (expire_at, Unix ms).
 * keyspace_expire_due() deletes due keys, at most a budget per call (the
 * shard's timer calls it every turn: the active sweep), and
 * keyspace_next_expiry() tells the shard when to wake. At start
 * keyspace_load() drops keys that expired while spoold was down.
 *
 * WATCH: keyspace_watch() registers interest in a name (key or queue) and
 * returns its version; every write to that name (keyspace_touch(), called
 * by the keyspace itself and by the shard for queue changes) bumps it while
 * someone watches. Versions of unwatched names are not kept.
 */
#ifndef SPOOL_KEYSPACE_H
#define SPOOL_KEYSPACE_H

#include "dict.h"
#include "theap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;
struct kvjournal;
struct zset;

enum kv_type { KV_NONE = 0, KV_STRING = 1, KV_HASH = 2, KV_ZSET = 3 };

#define KS_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

struct kv {
    struct tnode timer;          /* first member; when == expire_at while armed */
    struct dict_entry *ent;      /* its name: ent->key, ent->klen */
    uint8_t type;
    uint8_t lfu;                 /* logarithmic access counter (LFU) */
    bool fresh;                  /* created, not yet journaled as created */
    int64_t expire_at;           /* Unix ms; 0 = none */
    int64_t atime;               /* last access, Unix ms (LRU) */
    char *str;                   /* KV_STRING: value, NUL at str[len] */
    size_t len;
    struct dict *hash;           /* KV_HASH: field -> struct ks_bytes * */
    struct zset *zset;           /* KV_ZSET */
};

/* A hash field's value. */
struct ks_bytes {
    size_t len;
    char p[];                    /* NUL at p[len] */
};

struct ks_sink {
    void *arg;
    /* The journal inside the turn's transaction, or NULL when nothing can
     * be written (no journal, or the turn has failed already). */
    struct journal *(*txn)(void *arg);
    void (*result)(void *arg, int rc);
};

struct keyspace {
    struct dict keys;            /* name -> struct kv * */
    struct theap expires;        /* keys with an expiry */
    struct dict watched;         /* name -> struct ks_watch * */
    struct ks_sink sink;
    struct kvjournal *kj;        /* NULL when running without a journal */
    int64_t bytes;               /* estimate of the memory values use */
    uint64_t hits, misses, expired, evicted;
    uint64_t rng;                /* eviction sampling */
    uint64_t snapshot_rows;      /* rows of live state at the last load or log rewrite */
};

void keyspace_init(struct keyspace *ks, const struct ks_sink *sink);
/* Frees every key (memory only); closes the key statements. */
void keyspace_free(struct keyspace *ks);
/* Prepares the key rows of jr and loads them (after dropping the keys that
 * expired before now). Call with an empty keyspace. */
int keyspace_open(struct keyspace *ks, struct journal *jr, int64_t now);
/* After a failed commit: memory := journal. */
int keyspace_reload(struct keyspace *ks, int64_t now);

struct kv *keyspace_find(struct keyspace *ks, const char *key, size_t len, int64_t now);
struct kv *keyspace_read(struct keyspace *ks, const char *key, size_t len, int64_t now);
struct kv *keyspace_create(struct keyspace *ks, const char *key, size_t len, int type, int64_t now);
void keyspace_delete(struct keyspace *ks, struct kv *kv);
/* Replaces a string's value; takes ownership of p (malloc'd, NUL at p[n]). */
void keyspace_set_str(struct keyspace *ks, struct kv *kv, char *p, size_t n);
/* at: Unix ms, 0 = persist. */
void keyspace_set_expire(struct keyspace *ks, struct kv *kv, int64_t at);
void keyspace_save(struct keyspace *ks, struct kv *kv);
/* Journals hash field f of kv: its current value, or its removal. */
void keyspace_save_field(struct keyspace *ks, struct kv *kv, const char *f, size_t flen);
/* Journals sorted-set member of kv: its current score, or its removal. */
void keyspace_save_member(struct keyspace *ks, struct kv *kv, const char *m, size_t mlen);
/* Journals the whole of kv: its row, then every hash field or sorted-set
 * member (a key created in memory at once, e.g. imported by a slot move). */
void keyspace_save_whole(struct keyspace *ks, struct kv *kv);
/* Sets a sorted-set member in memory, keeping the byte count (journal with
 * keyspace_save_member or keyspace_save_whole). */
void keyspace_zset_put(struct keyspace *ks, struct kv *kv, const char *m, size_t mlen, double score);
/* Renames kv to a new name (which must be free); journaled. */
struct kv *keyspace_rename(struct keyspace *ks, struct kv *kv, const char *key, size_t len);

/* Hash fields (memory only; journal with keyspace_save_field). */
struct ks_bytes *keyspace_hget(const struct kv *kv, const char *f, size_t flen);
/* Sets a field; returns true when it is new. Copies value. */
bool keyspace_hset(struct keyspace *ks, struct kv *kv, const char *f, size_t flen, const char *v, size_t vlen);
bool keyspace_hdel(struct keyspace *ks, struct kv *kv, const char *f, size_t flen);

/* Evicts keys chosen by policy (enum evict_policy of config.h; sampled:
 * the best of a few random keys, as Redis does) until the values take at
 * most budget bytes. False when nothing more can be evicted. */
bool keyspace_evict(struct keyspace *ks, int64_t budget, int policy, int64_t now);

/* Deletes due keys, at most budget; returns how many. */
int keyspace_expire_due(struct keyspace *ks, int64_t now, int budget);
/* Unix ms of the next expiry, 0 when none. */
int64_t keyspace_next_expiry(const struct keyspace *ks);

/* WATCH */
uint64_t keyspace_watch(struct keyspace *ks, const char *name, size_t len);
uint64_t keyspace_watch_version(const struct keyspace *ks, const char *name, size_t len);
void keyspace_unwatch(struct keyspace *ks, const char *name, size_t len);
void keyspace_touch(struct keyspace *ks, const char *name, size_t len);

/* INFO: one line with this shard's figures (keys, keys with an expiry,
 * hits, misses, expired, evicted, bytes), appended to out in
 * KEYSPACE_INFO_FMT, for the I/O thread to sum over the shards. */
#define KEYSPACE_INFO_FMT "kv:%llu,%llu,%llu,%llu,%llu,%llu,%llu"
#define KEYSPACE_INFO_FIELDS 7
struct resp_buf;
void keyspace_info_line(const struct keyspace *ks, struct resp_buf *out);

/* "string", "hash", "zset". */
const char *keyspace_type_name(int type);
/* Memory a key's value takes, estimated. */
size_t keyspace_kv_bytes(const struct kv *kv);

#endif
