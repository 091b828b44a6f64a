/*
 * server.h - the process: settings, the shard threads, the I/O threads, the
 * listener on the main thread, and counters INFO reports.
 *
 * The main thread owns the listener and the signal events; it hands each
 * accepted socket to an I/O thread (round robin). Everything in struct
 * server is written before threads start and read-only afterwards, except
 * the atomic counters.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting, tell the I/O threads to stop
 * (they stop reading, wait for in-flight replies, flush and close), join
 * them, then stop the shards (each finishes its inbox and commits), join.
 */
#ifndef SPOOL_SERVER_H
#define SPOOL_SERVER_H

#include "context.h"

int server_init(struct server *srv, int argc, char **argv);
int server_run(struct server *srv);
void server_free(struct server *srv);
#endif
