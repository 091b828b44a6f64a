/*
 * syncer.c - the sync thread of a shard (see syncer.h): waits for a
 * request, fdatasyncs the WAL through SQLite's VFS (journal_sync_wal), and
 * posts MSG_SYNCED to the shard; the payload segment of the commit, if
 * any, first; after it, if the shard asked, a gathering window (syncer.h).
 * Runtime layer: it calls the journal, the payload log's sync
 * and the inbox only.
 */
#include "syncer.h"

#include "inbox.h"
#include "journal.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

static atomic_ullong stat_syncs, stat_replies, stat_windows, stat_timeouts, stat_sync_us, stat_return_us;

int64_t syncer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits, mu held, for a request (true) or the stop with none (false).
 * While a gathering window is open and no request comes, waits only until
 * it ends and then tells the shard (MSG_GATHERED). */
static bool wait_request(struct syncer *sy)
{
    while (!sy->wal && !sy->stop) {
        if (!sy->window_until) {
            pthread_cond_wait(&sy->cv, &sy->mu);
            continue;
        }
        struct timespec ts = { (time_t)(sy->window_until / 1000000000), (long)(sy->window_until % 1000000000) };
        if (pthread_cond_timedwait(&sy->cv, &sy->mu, &ts) != ETIMEDOUT || sy->wal || !sy->window_until)
            continue;
        sy->window_until = 0;
        uint64_t seq = sy->seq;
        pthread_mutex_unlock(&sy->mu);
        struct msg *m = msg_new(MSG_GATHERED);
        m->num = (int64_t)seq;
        atomic_fetch_add_explicit(&stat_timeouts, 1, memory_order_relaxed);
        inbox_post(sy->done, m);
        pthread_mutex_lock(&sy->mu);
    }
    return sy->wal != NULL;
}

/* One request: the delay of DEBUG SYNC-DELAY, the payload segment, the
 * WAL. Returns 0 or the negative code; *took gets its time in ns. */
static int sync_once(struct syncer *sy, void *wal, struct paylog_pending *seg, int64_t *took)
{
    int64_t t0 = syncer_now_ns();
    int delay = atomic_load_explicit(&sy->delay_ms, memory_order_relaxed);
    if (delay > 0) { /* DEBUG SYNC-DELAY: a slow disk */
        struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    int rc = paylog_sync_pending(seg); /* the records first: a commit pointing at them is then whole */
    if (rc < 0)
        log_error("shard %d: fdatasync of %s failed (%s)", sy->id, seg->path, strerror(-rc));
    else
        rc = journal_sync_wal(wal);
    *took = syncer_now_ns() - t0;
    return rc;
}

static void *syncer_main(void *arg)
{
    struct syncer *sy = arg;
    char name[16];
    snprintf(name, sizeof name, "sync-%d", sy->id);
    log_set_thread_name(name);
    prctl(PR_SET_TIMERSLACK, 5000UL); /* a window is a few hundred microseconds: end it within 5 */
    pthread_mutex_lock(&sy->mu);
    while (wait_request(sy)) {
        void *wal = sy->wal;
        struct paylog_pending seg = sy->seg;
        int64_t window = sy->window_ns;
        pthread_mutex_unlock(&sy->mu);
        int64_t took;
        struct msg *m = msg_new(MSG_SYNCED);
        m->num = sync_once(sy, wal, &seg, &took);
        bool synced = m->num == 0;
        sy->sync_ns = sy->sync_ns ? (sy->sync_ns * 7 + took) / 8 : took;
        atomic_fetch_add_explicit(&stat_syncs, 1, memory_order_relaxed);
        atomic_store_explicit(&stat_sync_us, (unsigned long long)took / 1000, memory_order_relaxed);
        if (window > 2 * sy->sync_ns)
            window = 2 * sy->sync_ns; /* no longer than the clients waiting for the sync after would have */
        pthread_mutex_lock(&sy->mu);
        sy->wal = NULL; /* before posting: the shard may request again at once */
        sy->window_until = m->num == 0 && window > 0 ? syncer_now_ns() + window : 0;
        if (sy->window_until)
            atomic_fetch_add_explicit(&stat_windows, 1, memory_order_relaxed);
        pthread_mutex_unlock(&sy->mu);
        inbox_post(sy->done, m);
        if (synced)
            paylog_make_spare(&seg); /* the next payload segment, if asked: after the replies can go */
        pthread_mutex_lock(&sy->mu);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

int syncer_start(struct syncer *sy, struct inbox *done, int id)
{
    sy->wal = NULL;
    sy->window_ns = 0;
    sy->window_until = 0;
    sy->seq = 0;
    sy->sync_ns = 0;
    sy->stop = false;
    sy->id = id;
    sy->done = done;
    atomic_init(&sy->delay_ms, 0);
    pthread_mutex_init(&sy->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a window's deadline */
    pthread_cond_init(&sy->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&sy->thread, NULL, syncer_main, sy);
    if (rc) {
        pthread_mutex_destroy(&sy->mu);
        pthread_cond_destroy(&sy->cv);
        return -rc;
    }
    sy->started = true;
    return 0;
}

void syncer_set_delay(struct syncer *sy, int ms)
{
    atomic_store_explicit(&sy->delay_ms, ms, memory_order_relaxed);
}

void syncer_request(struct syncer *sy, void *wal, const struct paylog_pending *seg, int64_t window_ns)
{
    pthread_mutex_lock(&sy->mu);
    sy->wal = wal;
    sy->window_ns = window_ns;
    sy->window_until = 0; /* the request ends the window */
    sy->seq++;
    sy->seg = seg ? *seg : (struct paylog_pending){ .fd = -1, .fd2 = -1 };
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

void syncer_count(size_t replies)
{
    atomic_fetch_add_explicit(&stat_replies, replies, memory_order_relaxed);
}

void syncer_note_return(int64_t ns)
{
    atomic_store_explicit(&stat_return_us, (unsigned long long)ns / 1000, memory_order_relaxed);
}

void syncer_stats(struct syncer_stats *out)
{
    out->return_us = atomic_load_explicit(&stat_return_us, memory_order_relaxed);
    out->syncs = atomic_load_explicit(&stat_syncs, memory_order_relaxed);
    out->replies = atomic_load_explicit(&stat_replies, memory_order_relaxed);
    out->windows = atomic_load_explicit(&stat_windows, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&stat_timeouts, memory_order_relaxed);
    out->sync_us = atomic_load_explicit(&stat_sync_us, memory_order_relaxed);
}

void syncer_stop(struct syncer *sy)
{
    if (!sy->started)
        return;
    pthread_mutex_lock(&sy->mu);
    sy->stop = true;
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_mutex_destroy(&sy->mu);
    pthread_cond_destroy(&sy->cv);
    sy->started = false;
}
