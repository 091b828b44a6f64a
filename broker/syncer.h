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
 * Gathering (--sync-gather-us, docs/performance.md "Fourth round: a sync
 * that gathers"): a request may ask for a window after its sync. Then,
 * once the sync returned and MSG_SYNCED is posted, the syncer waits up to
 * min(window_ns, twice the average time of a sync) for the next request; the
 * shard holds its next commit meanwhile, until the clients whose replies
 * the sync released have sent their next requests, and then requests at
 * once (which ends the window). If the window ends first, the syncer posts
 * MSG_GATHERED (m->num = the sequence number of the sync it followed), and
 * the shard commits what it has. The window costs no wake-up of its own:
 * the syncer was going to wait for the next request anyway, and only
 * waits with a deadline.
 *
 * API (one syncer per shard; only its shard calls it):
 *   syncer_start(sy, done, id)  starts the thread; completions go to done
 *   syncer_request(sy, wal, seg, window_ns) syncs seg (fd < 0: none) then
 *                               wal (journal_wal()) once, then opens a
 *                               window (window_ns > 0); the caller waits for
 *                               MSG_SYNCED before the next request. The
 *                               n-th request (from 1) is sync number n.
 *   syncer_stop(sy)             lets a request in progress finish, joins
 *   syncer_set_delay(sy, ms)    tests only: each sync waits ms first (it
 *                               counts in a sync's time, as a slow disk)
 *   syncer_count(replies)       the shard: a sync carries this many replies
 *   syncer_note_return(ns)      the shard: its clients' last return time
 *   syncer_now_ns()             CLOCK_MONOTONIC in ns (the windows' clock)
 *   syncer_stats(out)           the process's totals, for INFO persistence
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
    int64_t window_ns;      /* mu: with the request: the window after its sync, 0 = none */
    int64_t window_until;   /* mu: CLOCK_MONOTONIC ns the open window ends at, 0 = none */
    uint64_t seq;           /* mu: requests taken */
    bool stop;              /* mu */
    int64_t sync_ns;        /* sync thread: moving average of a sync's time */
    bool started;
    int id;                 /* the shard's, for the thread name */
    struct inbox *done;
    atomic_int delay_ms;    /* test seam: DEBUG SYNC-DELAY, 0 normally */
};

/* Process-wide totals over every shard's syncer (INFO persistence). */
struct syncer_stats {
    unsigned long long syncs;    /* syncs of a commit by a sync thread */
    unsigned long long replies;  /* durable replies those syncs released */
    unsigned long long windows;  /* gathering windows opened */
    unsigned long long timeouts; /* of them, ended by their deadline (MSG_GATHERED) */
    unsigned long long sync_us;  /* the last sync's time, microseconds */
    unsigned long long return_us; /* a shard's average time until a window filled */
};

int syncer_start(struct syncer *sy, struct inbox *done, int id);
void syncer_request(struct syncer *sy, void *wal, const struct paylog_pending *seg, int64_t window_ns);
void syncer_count(size_t replies);
void syncer_note_return(int64_t ns);
int64_t syncer_now_ns(void);
void syncer_stats(struct syncer_stats *out);
void syncer_stop(struct syncer *sy);
/* Test seam (DEBUG SYNC-DELAY): every sync from now on starts ms late, as
 * on a slow disk; 0 turns it off. */
void syncer_set_delay(struct syncer *sy, int ms);

#endif
