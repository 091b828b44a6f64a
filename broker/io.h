/*
 * io.h - an I/O thread: owns client connections (conn.c), parses their
 * requests, runs connection-level commands itself, routes queue commands to
 * shards, and writes replies back in request order.
 *
 * Its inbox receives new sockets from the main thread, replies from shards,
 * and requests from other I/O threads (CLIENT LIST asks every I/O thread
 * about its own connections, so no lock guards any connection).
 * Messages to shards produced during one callback are batched per shard and
 * posted once at the end of it (io_flush).
 */
#ifndef SPOOL_IO_H
#define SPOOL_IO_H

#include "inbox.h"

#include <pthread.h>
#include <stdbool.h>

struct server;
struct conn;
struct msg;

struct io_thread {
    int id;
    struct server *srv;
    pthread_t thread;
    struct event_base *base;
    struct inbox inbox;
    struct msg_batch *to_shard;   /* per shard */
    struct msg_batch *to_io;      /* per I/O thread */
    struct conn *conns;           /* doubly linked through conn->prev/next */
    long nconns;
    long nzombies;                /* closed connections with replies still due */
    struct conn *dirty;           /* connections with output to write */
    struct conn *subscribers;     /* connections with pub/sub subscriptions */
    bool stopping;
    struct event *stop_timer;
    struct event *sweep_timer;    /* once a second: idle timeouts (conn_sweep) */
};

int io_init(struct io_thread *io, struct server *srv, int id);
int io_start(struct io_thread *io);
void io_join(struct io_thread *io);
void io_destroy(struct io_thread *io);

/* Queue m for shard k / I/O thread k; sent at the next io_flush. */
void io_send_shard(struct io_thread *io, int k, struct msg *m);
void io_send_io(struct io_thread *io, int k, struct msg *m);
void io_flush(struct io_thread *io);

/* Called by conn.c when a connection is freed (for the stop sequence). */
void io_conn_gone(struct io_thread *io);

#endif
