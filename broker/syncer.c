/*
 * syncer.c - the sync thread of a shard (see syncer.h): waits for a
 * request, fdatasyncs the WAL through SQLite's VFS (journal_sync_wal), and
 * posts MSG_SYNCED to the shard; the payload segment of the commit, if
 * any, first. Runtime layer: it calls the journal, the payload log's sync
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
#include <time.h>

static void *syncer_main(void *arg)
{
    struct syncer *sy = arg;
    char name[16];
    snprintf(name, sizeof name, "sync-%d", sy->id);
    log_set_thread_name(name);
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (!sy->wal && !sy->stop)
            pthread_cond_wait(&sy->cv, &sy->mu);
        void *wal = sy->wal;
        struct paylog_pending seg = sy->seg;
        if (!wal)
            break; /* stop, and nothing pending */
        pthread_mutex_unlock(&sy->mu);
        int delay = atomic_load_explicit(&sy->delay_ms, memory_order_relaxed);
        if (delay > 0) { /* DEBUG SYNC-DELAY: a slow disk */
            struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        struct msg *m = msg_new(MSG_SYNCED);
        int rc = paylog_sync_pending(&seg); /* the records first: a commit pointing at them is then whole */
        if (rc < 0)
            log_error("shard %d: fdatasync of %s failed (%s)", sy->id, seg.path, strerror(-rc));
        m->num = rc < 0 ? rc : journal_sync_wal(wal);
        pthread_mutex_lock(&sy->mu);
        sy->wal = NULL; /* before posting: the shard may request again at once */
        pthread_mutex_unlock(&sy->mu);
        inbox_post(sy->done, m);
        if (rc == 0)
            paylog_make_spare(&seg); /* the next payload segment, if asked: after the replies can go */
        pthread_mutex_lock(&sy->mu);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

int syncer_start(struct syncer *sy, struct inbox *done, int id)
{
    sy->wal = NULL;
    sy->stop = false;
    sy->id = id;
    sy->done = done;
    atomic_init(&sy->delay_ms, 0);
    pthread_mutex_init(&sy->mu, NULL);
    pthread_cond_init(&sy->cv, NULL);
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

void syncer_request(struct syncer *sy, void *wal, const struct paylog_pending *seg)
{
    pthread_mutex_lock(&sy->mu);
    sy->wal = wal;
    sy->seg = seg ? *seg : (struct paylog_pending){ .fd = -1, .fd2 = -1 };
    pthread_cond_signal(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
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
