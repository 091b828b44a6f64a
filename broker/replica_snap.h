/*
 * replica_snap.h - Raft snapshots of the shard journals (log compaction,
 * docs/replication.md "Log compaction").
 *
 * A snapshot at log index X is every shard's journal, each taken on its own
 * shard thread (sqlite3_serialize, a consistent read with no transaction
 * open) once it holds every entry of its shard up to X, plus each image's
 * applied index (table spool_replica). libraft keeps the snapshot and
 * drops the log before X (less the trailing entries), and sends it to a
 * follower that lacks the dropped entries. Restoring replaces the replicated
 * tables of a journal that is behind the image (meta stays local) in the
 * shard's open transaction; the shard's memory is rebuilt when it is
 * promoted, as always. A journal that is ahead of the image (a restart)
 * keeps what it has: the log after X brings both to the same state.
 *
 * Memory: the images are held in memory while libraft writes them (and
 * when a leader sends one, and a follower receives one), so a snapshot
 * larger than the limit (--replica-snapshot-max-mb) is not taken: the log
 * grows until the journals shrink below it (the log says so).
 */
#ifndef SPOOL_REPLICA_SNAP_H
#define SPOOL_REPLICA_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct raft_buffer;
struct sqlite3;
struct snap_taker;

struct snap_taker *snap_taker_new(int nshards, size_t max_bytes);
void snap_taker_free(struct snap_taker *t);
/* Raft thread: a snapshot at log index `index` begins; shard k hands its
 * journal over once its applied index reaches need[k]. -EBUSY while an
 * earlier one is open. */
int snap_begin(struct snap_taker *t, uint64_t index, const int64_t *need);
/* Shard thread k, between turns: hands its journal over if a snapshot
 * wants it and the journal is ready (no open transaction, applied >=
 * need). */
void snap_offer(struct snap_taker *t, int k, struct sqlite3 *db, bool in_txn, int64_t applied);
/* A worker thread of libraft: waits (waking shard k with wake(arg, k) now
 * and then) until every shard handed over, at most timeout_ms; then the
 * snapshot's buffers: a header and one image per shard. 0, or negative
 * (-ETIMEDOUT, -EFBIG over the limit, -ECANCELED, -ENOMEM). */
int snap_collect(struct snap_taker *t, void (*wake)(void *, int), void *arg, int timeout_ms,
                 struct raft_buffer **bufs, unsigned *n);
/* Frees what snap_collect returned (libraft's snapshot_finalize). */
void snap_release(struct snap_taker *t, struct raft_buffer *bufs, unsigned n);
/* replica_stop: a waiting snap_collect returns -ECANCELED. */
void snap_cancel(struct snap_taker *t);

/* ms from now on the monotonic clock (pthread_cond_timedwait with a
 * CLOCK_MONOTONIC condition variable). */
struct timespec;
void snap_deadline(struct timespec *ts, int ms);

/* Figures for INFO replication. */
struct snap_figures {
    uint64_t taken, failed, last_index, last_bytes, last_ms, restored;
    uint64_t last_total_ms;  /* from its start until libraft wrote it (snap_release) */
};
void snap_figures(struct snap_taker *t, struct snap_figures *f);
void snap_count_restore(struct snap_taker *t);

/* One shard's part of a snapshot. */
struct snap_part {
    int64_t applied;  /* the image's spool_replica index */
    const void *img;
    size_t len;
};
/* Splits a snapshot into its shards' parts (pointing into buf). 0, or -1
 * with why in err (not a snapshot of this format, or of another shard
 * count). */
int snap_parse(const void *buf, size_t len, int nshards, uint64_t *index, struct snap_part *parts, char *err,
               size_t cap);
/* Shard thread, in the journal's open transaction: replaces every
 * replicated table of db with the image's rows. 0, or -1 with why. */
int snap_restore(struct sqlite3 *db, const void *img, size_t len, char *err, size_t cap);

#endif
