/*
 * iothread.h - the state of one I/O thread, shared by the files that run
 * on it: the loop (io.c), its connections (conn.c) and its subscription
 * registry (pubsub.c).
 *
 * Runtimes layer, a declaration only: it lets conn.c and pubsub.c reach
 * the thread's connection lists and outbox without calling up into io.c.
 * Only the owning thread reads or writes these fields (left_sem aside).
 */
#ifndef SPOOL_IOTHREAD_H
#define SPOOL_IOTHREAD_H

#include "inbox.h"

#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

struct server;
struct conn;
struct event_base;
struct event;

#define LOAD_PERIOD_MS 200 /* how often a co-located thread measures its load */

struct io_thread {
    int id;
    struct server *srv;
    pthread_t thread;
    struct event_base *base;
    struct inbox inbox;
    struct outbox out;            /* to shards and I/O threads, flushed per callback */
    struct conn *conns;           /* doubly linked through conn->prev/next */
    long nconns;
    long nzombies;                /* closed connections with replies still due */
    struct conn *dirty;           /* connections with output to write */
    struct conn *subscribers;     /* connections with pub/sub subscriptions */
    bool stopping;
    /* Forgets what the thread's registries hold about c, as c closes
     * (pubsub_conn_gone): handed down by io_init so conn.c calls no one
     * above it. */
    void (*conn_gone)(struct conn *c);
    struct event *stop_timer;
    struct event *sweep_timer;    /* once a second: idle timeouts (conn_sweep) */
    struct event *load_timer;     /* --colocate yes: every LOAD_PERIOD_MS, srv->load[id] */
    int64_t load_cpu, load_at;    /* the thread's CPU and clock_mono_us at the last one */
    /* --colocate yes: the thread and event_base are shard <id>'s, which
     * runs on after this side stops; leaving posts left (io_join waits) */
    bool colocated;
    bool left;
    int64_t busy_served;          /* clock_mono_ms of the last io_serve_busy round */
    sem_t left_sem;
};

/* The thread's stop is complete (no connection left, or the grace period
 * is over): leave the loop, or with a shared loop stop this side's timers
 * and tell io_join. */
static inline void io_leave(struct io_thread *io)
{
    if (io->left)
        return;
    io->left = true;
    if (!io->colocated) {
        event_base_loopexit(io->base, NULL);
        return;
    }
    event_del(io->sweep_timer);
    if (io->load_timer)
        event_del(io->load_timer);
    if (io->stop_timer)
        event_del(io->stop_timer);
    sem_post(&io->left_sem);
}

#endif
