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
 * The job transitions of queue.h are carried out here (shard_job_*), so
 * that every one of them is journaled, counted, announced on pub/sub and
 * serves waiters in one place. Command handlers (cmd_*.c) run on the shard
 * thread and use the calls below; every MSG_CMD must end in exactly one of
 * shard_reply() (the reply goes back) or being parked (shard_bpop()).
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
struct journal;

struct shard {
    int id;
    struct server *srv;
    pthread_t thread;
    struct event_base *base;
    struct inbox inbox;
    struct qtable queues;
    struct jtable jobs;
    struct theap timers;
    struct event *timer_ev;
    struct event *ckpt_ev;       /* idle WAL checkpoint, once a second */
    int64_t timer_at;            /* when timer_ev fires, 0 = not armed */
    struct queue *ready_head;    /* queues that got jobs while they had waiters */
    struct msg_batch *replies;   /* per I/O thread, posted at the end of a turn */
    struct msg_batch *events;    /* pub/sub events, per I/O thread, posted with the replies */
    struct qconf defaults;       /* settings of a new queue */
    struct journal *jr;          /* NULL when running without a journal (unit tests) */
    int turn_err;                /* first journal error of this turn (negative errno) */
    uint64_t turn;               /* counts turns (queue totals are saved per turn) */
    uint64_t turns_seen;         /* turn at the last idle check */
    int64_t payload_bytes;       /* payloads held in memory */
    int64_t payload_budget;      /* beyond it, new payloads live only in the journal */
    int64_t id_ms;               /* id generator: last millisecond used */
    uint32_t id_seq;
    uint64_t rng;
    bool stopping;
    uint64_t commands;           /* processed, for INFO */
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
struct queue *shard_queue_named(struct shard *s, const char *name, size_t len, bool create);
/* Sends m back as the reply (after this turn commits). Takes ownership. */
void shard_reply(struct shard *s, struct msg *m);
/* Drops q if nothing keeps it (see queue_is_idle). */
void shard_queue_gc(struct shard *s, struct queue *q);
/* Runs a BLPOP/BRPOP/JOB.RESERVE message (TRY or PARK mode, see msg.h). */
void shard_bpop(struct shard *s, struct msg *m);
/* Calls fn for each JOB.RESERVE parked on q (who: msg.h's who). */
void shard_each_waiter(struct shard *s, struct queue *q, void (*fn)(void *arg, const char *who, int64_t since),
                       void *arg);
/* Journals q's settings and pause state. */
void shard_queue_saved(struct shard *s, struct queue *q);
/* A queue was resumed or otherwise may serve waiters now. */
void shard_queue_changed(struct shard *s, struct queue *q);
bool shard_owns(const struct shard *s, const char *name, size_t len);
uint64_t shard_new_id(struct shard *s);
double shard_random(struct shard *s);   /* in [0,1) */

/* ---- job transitions (journaled, counted, announced) ---- */

struct push_opts {
    int64_t run_at;       /* unix ms; > now means delayed */
    int16_t priority;
    int64_t retries;      /* -1 = queue default */
    int64_t lease_ms;     /* 0 = queue default */
    const char *unique;
    size_t unique_len;
    const char *group;    /* GROUP key; NULL = the queue's group-from, else default */
    size_t group_len;
    int64_t expires_at;   /* unix ms; 0 = the queue's expires (0 = never) */
    bool left;            /* LPUSH/JOB.PUSH: left; RPUSH: right */
};

/* Creates a job in q; takes ownership of payload (malloc'd, with a NUL at
 * payload[len], as the request parser hands arguments out). */
struct job *shard_job_push(struct shard *s, struct queue *q, char *payload, size_t len,
                           const struct push_opts *o);
/* The job q delivers next from that end under its limits (flow.h), or
 * NULL; ready jobs found past their expires_at are expired on the way. */
struct job *shard_job_next(struct shard *s, struct queue *q, bool left);
/* Takes the job (from shard_job_next) out of the ready list and leases it
 * (attempt++); the queue's limiters count the delivery. */
void shard_job_reserve(struct shard *s, struct job *j, int64_t lease_ms);
/* A list pop delivered it: done at once (at-most-once); counted likewise. */
void shard_job_popped(struct shard *s, struct job *j);
/* A ready or delayed job reached its expires_at: state expired. */
void shard_job_expire(struct shard *s, struct job *j);
void shard_job_ack(struct shard *s, struct job *j);
/* A failed delivery: retry after delay_ms (< 0: backoff) or dead. Returns
 * the new state (JOB_DELAYED or JOB_DEAD). A delayed job whose expires_at
 * comes before its run_at expires then instead. why is "nack" or
 * "lease-expired". */
int shard_job_fail(struct shard *s, struct job *j, const char *err, size_t errlen,
                   int64_t delay_ms, bool dead_now, const char *why);
/* Dead/delayed/expired -> ready now (dead and expired: a fresh start,
 * attempts and expires_at cleared). */
void shard_job_retry(struct shard *s, struct job *j);
/* QUEUE.RETRY of a dead job: to queue `to` (q itself, or another queue of
 * this shard: the job moves, keeping its id and payload, losing its group),
 * ready now or delayed until run_at; a fresh start (attempts, expiry). 0,
 * or -EIO when its payload cannot be read to move it. */
int shard_job_redrive(struct shard *s, struct job *j, struct queue *to, int64_t run_at);
/* A delivered job whose client vanished goes back to ready. */
void shard_job_return(struct shard *s, struct job *j, bool left);
/* Removes a job in any state. */
void shard_job_delete(struct shard *s, struct job *j);
/* Extends the lease of a reserved job. */
void shard_job_touch(struct shard *s, struct job *j, int64_t lease_ms);
/* Makes sure the payload is in memory (reads it from the journal). */
int shard_job_payload(struct shard *s, struct job *j);

/* Appends j's payload to m's reply as a bulk string, reading it from the
 * journal when it is not in memory. */
void shard_add_payload(struct shard *s, struct msg *m, struct job *j);
/* Encodes the list-pop reply [key, payload] of a delivery to m. */
void shard_encode_pop(struct shard *s, struct msg *m, const struct queue *q, struct job *j);

#endif
