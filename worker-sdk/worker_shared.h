/*
 * worker_shared.h - the state of a worker that worker.c (the reserving
 * threads and spool_worker_run) and keeper.c (the lease keeper) share.
 *
 * worker.c is above keeper.c: it starts the keeper and calls its slot
 * functions (keeper.h). The keeper calls nothing of worker.c; what it needs
 * from the worker (a log line, a new client) it reaches through the small
 * interface the worker hands it in w->host.
 *
 * Threads of one spool_worker:
 *   - the caller of spool_worker_run(): starts everything, waits for a
 *     stop, enforces the stop deadline, joins everything;
 *   - N worker threads, each with its own spool_client: reserve, run the
 *     handler, send the result;
 *   - one keeper thread with its own spool_client: TOUCHes the jobs that
 *     run longer than a third of their lease, and at the stop deadline
 *     hands back (JOB.NACK DELAY 0) the jobs whose handlers still run.
 *
 * Shared state: the slots (one per worker thread, describing the job that
 * thread holds) and the stop flags, all under `mu`; counters are atomics.
 * Lock order: only `mu`; no call on the network is made while holding it.
 */
#ifndef SPOOL_WORKER_SHARED_H
#define SPOOL_WORKER_SHARED_H

#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

enum slot_phase {
    SLOT_IDLE,      /* no job */
    SLOT_RUNNING,   /* the handler runs; the keeper touches, may hand back */
    SLOT_FINISHING, /* the result is being sent; the keeper still touches */
    SLOT_HANDED     /* the keeper handed it back: the result is dropped */
};

typedef struct slot {
    enum slot_phase phase;
    char receipt[SPOOL_ID_MAX];
    long long lease_ms;
    long long next_touch;   /* monotonic ms */
    long long lease_end;    /* monotonic ms, our best estimate */
    unsigned gen;           /* changes with every job, so a late touch
                               result is not applied to the next job */
    atomic_bool lost;       /* a TOUCH was refused: someone else may run it */
} slot;

/* What the keeper needs from the worker, handed to it by spool_worker_new. */
struct worker_host {
    void (*log)(spool_worker *w, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    /* Creates a client for this worker without connecting it yet. */
    int (*client)(spool_worker *w, const char *role, int idx, spool_client **out);
};

struct spool_worker {
    spool_worker_config cfg; /* copy; pointers below own the strings */
    char **queues;           /* NULL-terminated copy */
    size_t nqueues;
    char *url;
    char *name;

    struct worker_host host;

    pthread_mutex_t mu;
    pthread_cond_t cv;       /* CLOCK_MONOTONIC; broadcast on any change */
    slot *slots;             /* cfg.threads of them */
    int live;                /* worker threads not yet returned */
    bool handback;           /* the stop deadline passed: hand back */
    bool keeper_quit;

    atomic_bool stopping;
    atomic_bool ran;
    int stop_pipe[2];        /* written by spool_worker_stop */

    atomic_llong n_done, n_retried, n_failed, n_lost, n_handed, n_touches, n_reconnects;
};

struct spool_ctx {
    spool_worker *w;
    slot *s;
    int thread;
    char error[1024];
    bool has_error;
    long long retry_ms;      /* -1: the queue's backoff */
    char *result;            /* spool_ctx_set_result(): sent with the ack; owned */
    size_t result_len;
    spool_client *c;         /* the worker thread's connection (progress reports) */
    const char *receipt;     /* the running delivery */
};

/* Waits on w->cv until the monotonic deadline (ms); mu must be held. */
static inline void sdk_wait_locked(spool_worker *w, long long deadline)
{
    long long now = sdk_mono_ms();
    if (deadline <= now)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ms = deadline - now;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

#endif
