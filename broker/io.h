/*
 * io.h - an I/O thread: owns client connections (conn.c), parses their
 * requests, runs connection-level commands itself, routes queue commands to
 * shards, and writes replies back in request order.
 *
 * Its inbox receives new sockets from the main thread, replies from shards,
 * and requests from other I/O threads (CLIENT LIST asks every I/O thread
 * about its own connections, so no lock guards any connection).
 * Messages to shards produced during one callback are batched per shard and
 * posted once at the end of it (outbox_flush of io->out).
 */
#ifndef SPOOL_IO_H
#define SPOOL_IO_H

#include "iothread.h"

#include <pthread.h>
#include <stdbool.h>

struct server;
struct conn;
struct msg;
struct event_base;

/* shared: NULL for a thread of its own; else the event_base of the shard
 * whose thread also serves these clients (--colocate yes), and io_start
 * starts nothing. home: its inbox's home (inbox.h). */
int io_init(struct io_thread *io, struct server *srv, int id, struct event_base *shared, int home);
int io_start(struct io_thread *io);
/* --colocate yes, from the hook of a script running on this thread's
 * shard: once the script has run for busy-script-time, serves the
 * thread's clients every IO_BUSY_SERVE_MS while it runs (their commands
 * for this shard get -BUSY, SCRIPT KILL works, the rest goes on). */
#define IO_BUSY_SERVE_MS 5
void io_serve_busy(void *arg);
void io_join(struct io_thread *io);
void io_destroy(struct io_thread *io);

#endif
