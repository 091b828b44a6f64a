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


int io_init(struct io_thread *io, struct server *srv, int id);
int io_start(struct io_thread *io);
void io_join(struct io_thread *io);
void io_destroy(struct io_thread *io);

#endif
