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
struct jobwaits;
struct scheds;
struct batches;
struct claim;
struct jext_cache;

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
    /* state of the features that hook in (struct shard_ext): JOB.WAIT
     * waiters (jobwait.c), schedules (sched.c), batches (batch.c) */
    struct jobwaits *waits;
    struct scheds *scheds;
    struct batches *batches;
    struct jext_cache *jext;     /* prepared statements of jext.c */
};

/* Features with state of their own on each shard (job waits, schedules,
 * batches) hook into the shard here, so the shard never calls up into
 * them. Registered once at start-up, before any shard is initialised;
 * every hook runs on the shard thread and may be NULL. */
enum { SHARD_FINISHED_DELETED = -1 };
struct shard_ext {
    /* After the journal's jobs were loaded (shard_recover), before serving. */
    int (*recover)(struct shard *s);
    /* j just finished: how is JOB_DONE or JOB_DEAD, or SHARD_FINISHED_DELETED
     * for an unfinished job being deleted. j is still whole (and may be
     * freed right after the call). */
    void (*job_finished)(struct shard *s, struct job *j, int how);
    /* The turn's transaction committed (ok) or was rolled back; called
     * after the commit and before the turn's replies are posted. */
    void (*end_turn)(struct shard *s, bool ok);
    /* The I/O thread withdrew a request parked with claim->parked set
     * (its client disconnected, or it was answered). */
    void (*cancel)(struct shard *s, struct claim *claim);
    /* Memory was reloaded from the journal after a failed commit. */
    void (*reload)(struct shard *s);
    void (*destroy)(struct shard *s);
};
void shard_ext_register(const struct shard_ext *e);


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
/* Journals q's settings and pause state. */
void shard_queue_saved(struct shard *s, struct queue *q);
/* A queue was resumed or otherwise may serve waiters now. */
void shard_queue_changed(struct shard *s, struct queue *q);
bool shard_owns(const struct shard *s, const char *name, size_t len);
uint64_t shard_new_id(struct shard *s);
double shard_random(struct shard *s);   /* in [0,1) */
/* Begins the turn's transaction if needed; false when there is no journal
 * or the turn already failed (nothing more is written). */
bool shard_jr_begin(struct shard *s);
/* Records the result of a journal write of this turn (the first error
 * fails the turn's commit). */
void shard_jr_result(struct shard *s, int rc);
/* Queues a pub/sub message (pubsub.h) for every I/O thread, posted after
 * the turn commits; takes ownership of m. No-op when nobody listens. */
void shard_publish(struct shard *s, struct msg *m);

/* ---- job transitions (journaled, counted, announced) ---- */

struct push_opts {
    int64_t run_at;       /* unix ms; > now means delayed */
    int16_t priority;
    int64_t retries;      /* -1 = queue default */
    int64_t lease_ms;     /* 0 = queue default */
    const char *unique;
    size_t unique_len;
    bool left;            /* LPUSH/JOB.PUSH: left; RPUSH: right */
    uint64_t batch;       /* JOB.PUSH … BATCH id (batch.h); 0 = none */
};

/* Creates a job in q; takes ownership of payload (malloc'd, with a NUL at
 * payload[len], as the request parser hands arguments out). */
struct job *shard_job_push(struct shard *s, struct queue *q, char *payload, size_t len,
                           const struct push_opts *o);
/* Takes the job out of the ready list and leases it (attempt++). */
void shard_job_reserve(struct shard *s, struct job *j, int64_t lease_ms);
/* A list pop delivered it: done at once (at-most-once). */
void shard_job_popped(struct shard *s, struct job *j);
void shard_job_ack(struct shard *s, struct job *j);
/* A failed delivery: retry after delay_ms (< 0: backoff) or dead. Returns
 * the new state (JOB_DELAYED or JOB_DEAD). why is "nack" or "expired". */
int shard_job_fail(struct shard *s, struct job *j, const char *err, size_t errlen,
                   int64_t delay_ms, bool dead_now, const char *why);
/* Dead/delayed -> ready now. */
void shard_job_retry(struct shard *s, struct job *j);
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
