/*
 * shard.h - a shard thread: the only owner of its queues.
 *
 * Each shard runs its own event_base (EVENT_BASE_FLAG_NOLOCK). Work arrives
 * in its inbox as MSG_CMD messages from the I/O threads and is processed in
 * turns: a turn drains the whole inbox, runs each command, serves the
 * waiters of queues that received jobs, commits (the journal's per-turn
 * transaction goes here), and only then posts the replies back, batched per
 * I/O thread. Deadlines (blocking-pop timeouts) live in one heap per shard
 * driven by one libevent timer.
 *
 * Command handlers (cmd_*.c) run on the shard thread and use the calls
 * below; every MSG_CMD must end in exactly one of shard_reply() (the reply
 * goes back) or being parked as a waiter (shard_bpop()).
 */
#ifndef SPOOL_SHARD_H
#define SPOOL_SHARD_H

#include "inbox.h"
#include "queue.h"
#include "theap.h"

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
    struct qtable queues;
    struct theap timers;
    struct event *timer_ev;
    int64_t timer_at;            /* when timer_ev fires, 0 = not armed */
    struct queue *ready_head;    /* queues that got jobs while they had waiters */
    struct msg_batch *replies;   /* per I/O thread, posted at the end of a turn */
    uint64_t next_id;
    bool stopping;
    uint64_t commands;           /* processed, for INFO */
};

int shard_init(struct shard *s, struct server *srv, int id);
int shard_start(struct shard *s);
void shard_join(struct shard *s);
void shard_destroy(struct shard *s);

/* ---- for command handlers, on the shard thread ---- */

/* The queue named by argv[i] of m (created when create is true). */
struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create);
/* Sends m back as the reply (after this turn commits). Takes ownership. */
void shard_reply(struct shard *s, struct msg *m);
/* A job was added to q: serve its waiters before the turn ends. */
void shard_queue_changed(struct shard *s, struct queue *q);
/* Drops q if it is empty and nobody waits on it. */
void shard_queue_gc(struct shard *s, struct queue *q);
/* Runs a BLPOP/BRPOP message (TRY or PARK mode, see msg.h). */
void shard_bpop(struct shard *s, struct msg *m);
/* Encodes the [key, payload] reply of a pop delivered to m. */
void shard_encode_pop(struct msg *m, const struct queue *q, const struct job *j);

#endif
