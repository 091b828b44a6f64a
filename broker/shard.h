/*
 * shard.h - a shard thread: the only owner of its queues and jobs.
 *
 * Each shard runs its own event_base (EVENT_BASE_FLAG_NOLOCK). Work arrives
 * in its inbox as MSG_CMD messages from the I/O threads and is processed in
 * turns: a turn drains the whole inbox, runs each command, serves the
 * waiters of queues that received jobs, commits the journal transaction,
 * and only then posts the replies back, batched per I/O thread. Deadlines
 * (blocking-pop timeouts, delays, leases, retention) live in one heap per
 * shard driven by one libevent timer.
 *
 * The keys other than queues are the keyspace's (keyspace.h, s->ks),
 * journaled in the store's transaction of the turn; the timer also drives
 * the keyspace's expiry sweep.
 *
 * The job transitions are the store's (store.h, s->st): the shard runs
 * them on its thread, serves the waiters of the queues they made ready,
 * and posts their events after the commit. Command handlers (cmd_*.c) run
 * on the shard thread and use the calls below and store_*(&s->st, …);
 * every MSG_CMD must end in exactly one of shard_reply() (the reply goes
 * back) or being parked (shard_bpop()).
 *
 * Runtimes layer: calls the store, the journal (commit), the contracts
 * (inbox, context, msg) and events.c; never the command files above it
 * (it runs m->cmd->shard through command.h).
 */
#ifndef SPOOL_SHARD_H
#define SPOOL_SHARD_H

#include "inbox.h"
#include "keyspace.h"
#include "store.h"
#include "syncer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct server;
struct msg;

struct shard {
    int id;
    struct server *srv;
    pthread_t thread;
    struct event_base *base;
    struct inbox inbox;
    struct store st;             /* the queues and jobs; only this thread touches them */
    struct keyspace ks;          /* strings, hashes, sorted sets (keyspace.h); journaled in st's transaction */
    struct event *timer_ev;
    struct event *ckpt_ev;       /* idle WAL checkpoint, once a second */
    int64_t timer_at;            /* when timer_ev fires, 0 = not armed */
    struct msg_batch *replies;   /* per I/O thread: durable replies, posted once their commit is on disk */
    struct msg_batch *events;    /* pub/sub events, per I/O thread, posted with the replies */
    struct msg_batch *early;     /* per I/O thread: replies that promise nothing durable
                                  * (reads, JOB.RESERVE), posted at the end of the turn */
    /* --fsync always: the commit is synced by the syncer while the shard
     * runs on (see "Shard turns" in docs/threads.md) */
    bool pipelined;
    bool sync_busy;              /* a sync is in flight: no journal write until MSG_SYNCED */
    struct syncer sync;
    struct msg_batch *fl_replies; /* the replies and events of the commit being synced */
    struct msg_batch *fl_events;
    uint64_t commits;            /* turns that committed a transaction */
    uint64_t commits_seen;       /* commits at the last idle check */
    uint64_t commands;           /* processed, for INFO */
    /* JOB.RESERVE deliveries answered before their commit (since the last
     * one): if that commit fails, the reloaded jobs keep their delivery
     * numbers, so a receipt of a lost lease never names the next delivery */
    struct lent { uint64_t id; uint32_t attempt; } *lent;
    size_t nlent, caplent;
    bool capture;                /* running EXEC's commands: shard_reply keeps the message */
    struct msg *captured;
};

int shard_init(struct shard *s, struct server *srv, int id);
/* Opens the journal and loads what it holds (before shard_start). */
int shard_recover(struct shard *s);
int shard_start(struct shard *s);
void shard_join(struct shard *s);
void shard_destroy(struct shard *s);

/* Handles every deadline that is due by clock_now_ms() and ends the turn
 * (the timer calls it; unit tests call it after moving the fake clock). */
void shard_tick(struct shard *s);

/* ---- for command handlers, on the shard thread ---- */

/* The queue named by argv[i] of m (created when create is true). */
struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create);
/* Sends m back as the reply (after this turn commits). Takes ownership. */
void shard_reply(struct shard *s, struct msg *m);
/* Runs a BLPOP/BRPOP/JOB.RESERVE message (TRY or PARK mode, see msg.h). */
void shard_bpop(struct shard *s, struct msg *m);
bool shard_owns(const struct shard *s, const char *name, size_t len);
/* Calls fn for each JOB.RESERVE parked on q (who: msg.h's who). */
void shard_each_waiter(struct shard *s, struct queue *q, void (*fn)(void *arg, const char *who, int64_t since),
                       void *arg);

#endif
