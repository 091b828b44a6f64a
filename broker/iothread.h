/*
 * iothread.h - the state of one I/O thread, shared by the files that run
 * on it: the loop (io.c), its connections (conn.c) and its subscription
 * registry (pubsub.c).
 *
 * Runtimes layer, a declaration only: it lets conn.c and pubsub.c reach
 * the thread's connection lists and outbox without calling up into io.c.
 * Only the owning thread reads or writes these fields.
 */
#ifndef SPOOL_IOTHREAD_H
#define SPOOL_IOTHREAD_H

#include "inbox.h"

#include <pthread.h>
#include <stdbool.h>

struct server;
struct conn;
struct event_base;
struct event;

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
};

#endif
