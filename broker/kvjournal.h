/*
 * kvjournal.h - the keyspace's rows in a shard's journal (tables kv,
 * kv_hash, kv_zset of migrations/0004_keyspace.sql).
 *
 * Called only by keyspace.c on the shard thread, inside the transaction
 * of the shard's turn (journal.h): every function writes through
 * journal_write(), so the fault seam and the error sentences are the
 * journal's. Statements are prepared once by kvjournal_open() and
 * finalized by kvjournal_close(), which must run before journal_close().
 * Functions return 0 or a negative errno-style code (journal_error()).
 */
#ifndef SPOOL_KVJOURNAL_H
#define SPOOL_KVJOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;
struct kvjournal;

int kvjournal_open(struct kvjournal **out, struct journal *jr);
void kvjournal_close(struct kvjournal *kj);

/* The key's row: type, expiry, and (strings) the value; value NULL for
 * hashes and sorted sets. */
int kvjournal_put(struct kvjournal *kj, const char *key, size_t klen, int type, int64_t expire_at,
                  const char *value, size_t vlen);
/* Deletes the key's row and its fields or members. */
int kvjournal_delete(struct kvjournal *kj, const char *key, size_t klen);
int kvjournal_hash_put(struct kvjournal *kj, const char *key, size_t klen, const char *field, size_t flen,
                       const char *value, size_t vlen);
int kvjournal_hash_delete(struct kvjournal *kj, const char *key, size_t klen, const char *field, size_t flen);
int kvjournal_zset_put(struct kvjournal *kj, const char *key, size_t klen, const char *member, size_t mlen,
                       double score);
int kvjournal_zset_delete(struct kvjournal *kj, const char *key, size_t klen, const char *member, size_t mlen);

/* Recovery: first deletes every key whose expiry is at or before now (in
 * one transaction: a key that expired while spoold was down is gone), then
 * calls the callbacks for every key, then every hash field and sorted-set
 * member. Byte arguments are valid only during the call. */
struct kvjournal_load_fns {
    int (*key)(void *arg, const char *key, size_t klen, int type, int64_t expire_at, const char *value, size_t vlen);
    int (*field)(void *arg, const char *key, size_t klen, const char *field, size_t flen, const char *value, size_t vlen);
    int (*member)(void *arg, const char *key, size_t klen, const char *member, size_t mlen, double score);
};
int kvjournal_load(struct kvjournal *kj, int64_t now, const struct kvjournal_load_fns *fns, void *arg);

#endif
