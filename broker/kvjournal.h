/*
 * kvjournal.h - the keyspace's rows in a shard's journal: an append-only
 * log of changes (table kv_log, migrations/0004_keyspace.sql).
 *
 * Called only by keyspace.c on the shard thread, inside the transaction
 * of the shard's turn (journal.h): every function writes through
 * journal_write(), so the fault seam and the error sentences are the
 * journal's. Each change appends one row; kvjournal_load() replays them in
 * order. The keyspace rewrites the log as a snapshot (kvjournal_clear,
 * then one row per live key, field and member) once kvjournal_rows() says
 * it has grown enough. Statements are prepared once by kvjournal_open()
 * and finalized by kvjournal_close(), which must run before
 * journal_close(). Functions return 0 or a negative errno-style code.
 */
#ifndef SPOOL_KVJOURNAL_H
#define SPOOL_KVJOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;
struct kvjournal;

int kvjournal_open(struct kvjournal **out, struct journal *jr);
void kvjournal_close(struct kvjournal *kj);

/* A key's type, expiry and (strings) value; create: a new key (a hash or
 * sorted set starts empty on replay). value NULL for hashes and sets. */
int kvjournal_put(struct kvjournal *kj, const char *key, size_t klen, bool create, int type, int64_t expire_at,
                  const char *value, size_t vlen);
int kvjournal_delete(struct kvjournal *kj, const char *key, size_t klen);
/* value NULL: the field was deleted. */
int kvjournal_field(struct kvjournal *kj, const char *key, size_t klen, const char *f, size_t flen,
                    const char *value, size_t vlen);
int kvjournal_member(struct kvjournal *kj, const char *key, size_t klen, const char *m, size_t mlen,
                     double score, bool deleted);
/* Empties the log (before a snapshot is written). */
int kvjournal_clear(struct kvjournal *kj);
/* Rows in the log now (as far as this process wrote and loaded them). */
uint64_t kvjournal_rows(const struct kvjournal *kj);

/* Recovery: calls the callbacks for every row, in order. Byte arguments
 * are valid only during the call. */
struct kvjournal_load_fns {
    int (*key)(void *arg, const char *key, size_t klen, bool create, int type, int64_t expire_at,
               const char *value, size_t vlen);
    int (*del)(void *arg, const char *key, size_t klen);
    int (*field)(void *arg, const char *key, size_t klen, const char *f, size_t flen, const char *value, size_t vlen);
    int (*member)(void *arg, const char *key, size_t klen, const char *m, size_t mlen, double score, bool deleted);
};
int kvjournal_load(struct kvjournal *kj, const struct kvjournal_load_fns *fns, void *arg);

#endif
