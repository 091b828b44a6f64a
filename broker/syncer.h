/*
 * syncer.h - a shard's sync thread: fdatasyncs the shard's WAL while the
 * shard thread goes on with its next turn (--fsync always).
 *
 * Why: a commit's fsync takes a few hundred microseconds; done on the shard
 * thread it stops every queue of the shard for that long. With the syncer,
 * the shard commits (the WAL is written, not synced), hands the WAL to the
 * syncer and keeps running commands into the next transaction; when the
 * sync returned, the syncer posts MSG_SYNCED (m->num = 0 or the negative
 * code) to the shard's inbox, and the shard releases the replies of that
 * commit, then commits what piled up meanwhile and hands over the next
 * sync. At most one sync is in flight per shard, and the shard writes
 * nothing to the journal while it is (shard.c keeps to that), so a sync
 * covers exactly the commits made before it began. (SQLite may spill pages
 * of a large open transaction into the WAL meanwhile: frames without a
 * commit mark, which recovery ignores until a later commit completes them,
 * and that commit is synced by a later sync.)
 *
 * With the payload file (paylog.h), a commit whose rows point into the
 * active payload segment is acknowledged only once both files are synced:
 * the request carries the segment too, and the syncer fdatasyncs the
 * segment first, then the WAL, one after the other (measured against both
 * at once in docs/performance.md, "Bytes per job"). A failed sync of either
 * is the result (MSG_SYNCED's m->num), and fences the journal.
 *
 * API (one syncer per shard; only its shard calls it):
 *   syncer_start(sy, done, id)  starts the thread; completions go to done
 *   syncer_request(sy, wal, seg) syncs seg (fd < 0: none) then wal
 *                               (journal_wal()) once; the caller
 *                               waits for MSG_SYNCED before the next request
 *   syncer_stop(sy)             lets a request in progress finish, joins
 *   syncer_set_delay(sy, ms)    tests only: each sync waits ms first
 *
 * Lock: sy->mu, a leaf, held only to hand a request over (docs/threads.md).
 */
#ifndef SPOOL_SYNCER_H
#define SPOOL_SYNCER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "paylog.h"

struct inbox;

struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *wal;              /* mu: the pending request, NULL when none */
    struct paylog_pending seg; /* mu: with it, the payload segment to sync first */
    bool stop;              /* mu */
    bool started;
    int id;                 /* the shard's, for the thread name */
    struct inbox *done;
    atomic_int delay_ms;    /* test seam: DEBUG SYNC-DELAY, 0 normally */
};

int syncer_start(struct syncer *sy, struct inbox *done, int id);
void syncer_request(struct syncer *sy, void *wal, const struct paylog_pending *seg);
void syncer_stop(struct syncer *sy);
/* Test seam (DEBUG SYNC-DELAY): every sync from now on starts ms late, as
 * on a slow disk; 0 turns it off. */
void syncer_set_delay(struct syncer *sy, int ms);

#endif
