/*
 * context.h - what every thread shares: struct server, and the address book
 * of every thread's inbox.
 *
 * Contracts layer. Threads find each other only here: a shard, an I/O
 * thread or the main thread reaches another thread by posting to
 * ctx_inbox(srv, slot), never by reaching into that thread's struct. The
 * slots of the book are
 *
 *     [0, nshards)                     the shard threads   ctx_shard(srv, k)
 *     [nshards, nshards + nio)         the I/O threads     ctx_io(srv, k)
 *     nshards + nio                    the main thread     ctx_io(srv, nio)
 *
 * (a message's origin is an I/O thread index, nio naming the main thread,
 * so replies go to ctx_io(srv, m->origin)). Each thread registers its own
 * inbox while it is set up, before any thread starts; afterwards the book
 * is read-only. Everything in struct server is written before threads
 * start and read-only afterwards, except the atomic counters.
 *
 * Calls down only: config.h, inbox.h.
 */
#ifndef SPOOL_CONTEXT_H
#define SPOOL_CONTEXT_H

#include "clock.h"
#include "config.h"
#include "inbox.h"
#include "resp.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct shard;
struct io_thread;
struct event_base;
struct evconnlistener;
struct event;
struct evhttp;
struct conn;
struct command;
struct script_cache;
struct replica;

/* A script running on a shard (script.h, cmd_script.c). The shard writes
 * since (clock_mono_ms() at the script's start, 0 when none runs) and
 * moves state IDLE -> CLEAN -> WROTE (its first write) -> IDLE; an I/O
 * thread reads since to answer -BUSY once busy-script-time has passed,
 * and SCRIPT KILL moves CLEAN -> KILL (compare-and-swap), which the
 * script's hook sees. A script that wrote cannot be killed. */
enum script_state { SCRIPT_IDLE, SCRIPT_CLEAN, SCRIPT_WROTE, SCRIPT_KILL };
struct script_busy {
    _Atomic int64_t since;
    _Atomic int state;
    /* --colocate yes: the shard's thread is also the I/O thread of some
     * clients; the script's hook calls serve(serve_arg) now and then so
     * they are served meanwhile (io_serve_busy). Set before threads start. */
    void (*serve)(void *arg);
    void *serve_arg;
};

/* --colocate yes: how busy thread k (shard k and the clients it serves)
 * was over the last LOAD_PERIOD_MS, in per mille of a core. The thread
 * itself writes measured (io.c); conn.c reads every thread's to place
 * deep-pipelining clients off a busy shard's thread. fake (DEBUG
 * THREAD-LOAD, for tests) replaces measured while >= 0. */
struct thread_load {
    _Atomic int measured;
    _Atomic int fake;
};

struct server {
    struct config cfg;
    int nshards;
    struct shard *shards;
    int nio;
    struct io_thread *io;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* --tls-port, or NULL */
    void *tls_ctx;                    /* the SSL_CTX (tls.h), or NULL */
    int tls_port;                     /* the bound TLS port, 0 = none */
    struct event *sig_term, *sig_int, *sig_hup, *accept_retry, *disk_ev;
    struct evhttp *http;              /* HTTP admin, or NULL */
    void *http_tls_ctx;               /* its SSL_CTX when it serves HTTPS (admin-tls), or NULL */
    /* Runs one parsed request (commands_dispatch): handed to the
     * connections from above, so that conn.c does not call up. */
    void (*dispatch)(struct conn *c, resp_cmd *cmd);
    /* The command table's lookup (commands_find), for scripts' redis.call
     * on the shard: handed down like dispatch. */
    const struct command *(*find_command)(const char *name, size_t len);
    struct replica *replica;          /* the replication group (replica.h), or NULL */
    struct cluster *cluster;          /* the slot map in cluster mode (cluster.h), else NULL */
    struct cluster_sync *cluster_sync; /* its catch-up thread (cluster_sync.h), else NULL */
    struct script_cache *scripts;     /* script bodies by SHA-1 (scriptcache.h) */
    struct script_busy *script_busy;  /* one per shard (see above) */
    struct thread_load *load;         /* one per I/O thread (see above) */
    struct inbox main_inbox;          /* replies to the main thread (origin == nio) */
    struct inbox **inboxes;           /* the address book (see above); ctx_inboxes() entries */
    int port;                         /* the bound port */
    int next_io;
    bool main_inbox_ready;
    int64_t started_ms;               /* wall clock */
    int64_t started_mono;
    char run_id[41];
    char data_id[33];                 /* the data directory's identity (datadir.h MANIFEST) */

    _Atomic long connected_clients;
    _Atomic long blocked_clients;
    _Atomic uint64_t total_connections;
    _Atomic uint64_t moved_connections; /* --colocate yes: moves to their shard's thread (conn.c) */
    _Atomic uint64_t total_commands;
    _Atomic uint64_t rejected_connections;
    _Atomic uint64_t auth_failures;    /* failed AUTH / HELLO AUTH (INFO acl_access_denied_auth) */
    _Atomic int64_t auth_next_slot;    /* monotonic ms: the next failed AUTH's turn (conn.c) */
    _Atomic uint64_t idle_closed;      /* clients closed by the idle timeouts */
    _Atomic uint64_t next_client_id;
    _Atomic long subscriptions;       /* pub/sub channels + patterns, all clients */
    /* Disk pressure: the main thread measures free space once a second
     * (ctx_disk_update); the push paths read disk_low (admit.c). */
    _Atomic long long disk_free;      /* bytes free where the data directory is; -1 unknown */
    _Atomic bool disk_low;            /* disk_free < disk-reserve: pushes are refused */
    _Atomic long long disk_free_fake; /* DEBUG DISK-FREE: used instead of the measurement when >= 0 */
    /* Shards whose journal failed a sync (shard.c): they refuse writes
     * until a restart. why: the error the first one gives (its fence_why,
     * which never changes once set), NULL while all are sound. */
    _Atomic int journal_failed_shards;
    _Atomic(const char *) journal_failed_why;
};

/* Whether shard k has run one script for busy-script-time or longer:
 * then commands for it get -BUSY. */
static inline bool ctx_script_busy(const struct server *srv, int k)
{
    if (!srv->script_busy)
        return false;
    int64_t since = atomic_load_explicit(&srv->script_busy[k].since, memory_order_relaxed);
    return since && clock_mono_ms() - since >= srv->cfg.busy_script_time;
}

/* Thread k's load in per mille of a core (struct thread_load). Any thread. */
static inline int ctx_thread_load(const struct server *srv, int k)
{
    int fake = atomic_load_explicit(&srv->load[k].fake, memory_order_relaxed);
    return fake >= 0 ? fake : atomic_load_explicit(&srv->load[k].measured, memory_order_relaxed);
}

/* "" while every shard's journal is sound; else the error the first shard
 * whose journal failed a sync gives writes (without "ERR "). Any thread. */
static inline const char *ctx_journal_failed(struct server *srv)
{
    const char *why = atomic_load(&srv->journal_failed_why);
    return why ? why + 4 : "";
}

/* Records a measurement of free disk space (or the DEBUG DISK-FREE figure
 * when one is set) and sets disk_low; logs when the state changes. Any
 * thread. */
void ctx_disk_update(struct server *srv, long long measured);

/* Allocates the address book for srv->nshards + srv->nio + 1 inboxes. */
int ctx_init(struct server *srv);
void ctx_free(struct server *srv);
/* Number of slots in the book. */
static inline int ctx_inboxes(const struct server *srv) { return srv->nshards + srv->nio + 1; }
/* The slot of shard k, of I/O thread k (k == nio: the main thread). */
static inline int ctx_shard(const struct server *srv, int k) { (void)srv; return k; }
static inline int ctx_io(const struct server *srv, int k) { return srv->nshards + k; }
/* Records the inbox of slot (on the thread that sets it up). */
void ctx_register(struct server *srv, int slot, struct inbox *ib);
/* The inbox of slot. */
static inline struct inbox *ctx_inbox(const struct server *srv, int slot) { return srv->inboxes[slot]; }

#endif
