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

#include "config.h"
#include "inbox.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct shard;
struct io_thread;
struct event_base;
struct evconnlistener;
struct event;
struct evhttp;

struct server {
    struct config cfg;
    int nshards;
    struct shard *shards;
    int nio;
    struct io_thread *io;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sig_term, *sig_int, *sig_hup, *accept_retry;
    struct evhttp *http;              /* HTTP admin, or NULL */
    struct inbox main_inbox;          /* replies to the main thread (origin == nio) */
    int port;                         /* the bound port */
    int next_io;
    bool main_inbox_ready;
    int64_t started_ms;               /* wall clock */
    int64_t started_mono;
    char run_id[41];

    _Atomic long connected_clients;
    _Atomic long blocked_clients;
    _Atomic uint64_t total_connections;
    _Atomic uint64_t total_commands;
    _Atomic uint64_t rejected_connections;
    _Atomic uint64_t auth_failures;    /* failed AUTH / HELLO AUTH (INFO acl_access_denied_auth) */
    _Atomic int64_t auth_next_slot;    /* monotonic ms: the next failed AUTH's turn (conn.c) */
    _Atomic uint64_t idle_closed;      /* clients closed by the idle timeouts */
    _Atomic uint64_t next_client_id;
    _Atomic long subscriptions;       /* pub/sub channels + patterns, all clients */
};

int server_init(struct server *srv, int argc, char **argv);
int server_run(struct server *srv);
void server_free(struct server *srv);
/* Resident memory of this process, in bytes. */
long server_rss_bytes(void);

#endif
