/*
 * store.h - the jobs of one shard: every change of a job's state, in one
 * place, with no thread and no socket.
 *
 * Core layer. A store owns its queues (qtable), its jobs (jtable), the
 * deadlines of its jobs (a heap, shared with the shard's waiters), its
 * journal connection, the payload memory accounting, the id generator and
 * the loading of the journal on start and after a failed commit. Every
 * transition below is journaled (into the turn's transaction, begun at the
 * first change; the first error is kept in turn_err), counted in the
 * queue's totals, and announced as a job event through the emit hook.
 *
 * The job state machine (DESIGN.md):
 *
 *     push ──▶ ready ──reserve──▶ reserved ──ack──▶ done ──retention──▶ gone
 *       │        ▲  ▲                 │  └──fail (last attempt)──▶ dead
 *       │        │  └──return─────────┘                              │
 *       └─DELAY─▶ delayed ◀──fail / lease expiry──┘     retry ◀──────┘
 *     ready, delayed ──expires_at──▶ expired ──retention──▶ gone
 *
 * Which ready job a queue delivers next, under its limits and groups, is
 * flow.h's business: store_job_next asks it, and every move in and out of
 * the ready list and the reserved state goes through flow_* so that the
 * limiters and the groups count right.
 *
 * A list pop (store_job_popped) goes ready ──▶ done at once (at-most-once).
 *
 * Who calls it: the shard thread (shard.c, the cmd_* shard handlers) and
 * unit tests, which drive it with a fake clock (clock_set_source) and a
 * temporary journal. It may call only the ground and the core below it:
 * queue, journal, msg (to encode a payload into a reply), clock, log.
 * It never calls up: a queue that gets a ready job while it has waiters
 * is put on ready_head for the shard to serve, and events go out through
 * emit (NULL: no events).
 */
#ifndef SPOOL_STORE_H
#define SPOOL_STORE_H

#include "queue.h"
#include "theap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;
struct msg;

enum { TK_WAITER = 1, TK_JOB = 2, TK_QUEUE = 3 };   /* kinds of the heap's nodes (TK_QUEUE: a
                                                       queue's flow_timer, see flow.h) */

/* A reservation not journaled yet, as it was made (store.c). */
struct unsaved_rec {
    uint64_t id;
    int64_t updated_at;  /* when it was made: its lease runs lease_ms from there */
    uint32_t attempt, token, lease_ms;
    bool in_txn;  /* made while a transaction was open, */
    uint64_t gen; /* the one after this many commits */
    char *holder; /* only from store_reset to store_unsaved_restore */
};

struct store {
    int id;                      /* the shard's number (ids carry it) */
    struct qtable queues;
    struct jtable jobs;
    struct theap timers;         /* job deadlines and (TK_WAITER) the shard's waiters */
    struct queue *ready_head;    /* queues that got jobs while they had waiters */
    struct qconf defaults;       /* settings of a new queue */
    struct journal *jr;          /* NULL when running without a journal (unit tests) */
    int turn_err;                /* first journal error of this turn (negative errno) */
    uint64_t turn;               /* counts turns (queue totals are saved per turn) */
    int64_t payload_bytes;       /* payloads held in memory */
    int64_t payload_budget;      /* beyond it, new payloads live only in the journal */
    int64_t id_ms;               /* id generator: last millisecond used */
    uint32_t id_seq;
    int64_t id_mark_ms;          /* journaled: every id issued has a millisecond below it */
    uint64_t rng;
    uint64_t token_key, token_ctr; /* delivery tokens (receipts): a keyed counter */
    bool stopping;               /* no queue is collected while stopping */
    /* Reservations written late (store.c): set by the runtime when no
     * replication group needs every turn's rows. unsaved[0] holds those
     * made since the last commit, unsaved[1] those made before it. */
    bool late_reserves;
    struct unsaved { struct unsaved_rec *v; size_t n, cap; } unsaved[2];
    size_t nunsaved;             /* jobs marked JOB_F_UNSAVED */
    uint64_t commits;            /* store_committed() calls */
    int64_t unsaved_due;         /* unix ms by which they are written; 0: none waits */
    uint64_t reserves_late, reserves_skipped; /* written late; never written (a later write covered them) */
    /* Job events (pushed, reserved, acked, retried, lease-expired, expired,
     * dead); err may be NULL. Set by the runtime; NULL: none. */
    void (*emit)(void *arg, const struct job *j, const char *event, const char *err, size_t errlen);
    /* Every journaled change of a queue's jobs (WATCH versions); gets
     * emit_arg. NULL: none. */
    void (*touch)(void *arg, const struct queue *q);
    void *emit_arg;
    /* A job just finished: how is JOB_DONE or JOB_DEAD, or
     * STORE_FINISHED_DELETED for an unfinished job being deleted; j is
     * whole (its state set) and may be freed right after. Set by the
     * runtime (the shard passes it on to its extensions); NULL: none. */
    void (*finished)(void *arg, struct job *j, int how);
    void *finished_arg;
};

/* STORE_FINISHED_MOVED: an unfinished job leaves this node with its slot
 * (store_job_evict); it goes on elsewhere. */
enum { STORE_FINISHED_DELETED = -1, STORE_FINISHED_MOVED = -2 };

void store_init(struct store *s, int id, int payload_mode, int64_t payload_budget, uint64_t seed);
/* Frees every queue and job and closes the journal. */
void store_free(struct store *s);
/* Loads the journal (s->jr) into memory; by_state (may be NULL) gets the
 * number of jobs per state. */
int store_load(struct store *s, size_t by_state[JOB_NSTATES]);
/* Memory forgets every job and queue setting before store_load after a
 * failed commit; queues (and the waiters on them) stay. */
void store_reset(struct store *s);

/* ---- the turn's transaction, for other journaled state (the keyspace) ---- */

/* The journal with the turn's transaction begun, or NULL when nothing can
 * be written (no journal, or the turn failed already). */
struct journal *store_txn(struct store *s);
/* Records the result of a write made through store_txn (the first error
 * fails the turn). */
void store_txn_result(struct store *s, int rc);

/* ---- reservations written late (see store.c) ---- */

/* A commit is about to begin, its transaction open: the reservations made
 * before the previous commit and still unsaved are written into it. */
void store_commit_begins(struct store *s);
/* The commit succeeded: the reservations made since the previous one wait
 * for the next. */
void store_committed(struct store *s);
/* Writes every unsaved reservation into the turn's transaction (when
 * unsaved_due has passed, and at the stop). */
void store_unsaved_write(struct store *s);
/* After store_reset and store_load (a failed commit): the unsaved
 * reservations are made again as they were (same delivery, token and
 * lease), except those made while the failed transaction was open: they
 * are lost with it, as a reservation journaled in it would be. */
void store_unsaved_restore(struct store *s);
/* How many reservations are not in the journal yet. */
size_t store_unsaved(const struct store *s);
#define STORE_UNSAVED_MAX_MS 50 /* unsaved_due: at most this after a commit, or after the first reserve */

/* ---- queues ---- */

/* The queue named name (created with the defaults when create is true). */
struct queue *store_queue(struct store *s, const char *name, size_t len, bool create);
/* Drops q if nothing keeps it (see queue_is_idle). */
void store_queue_gc(struct store *s, struct queue *q);
/* Journals q's settings and pause state. */
void store_queue_saved(struct store *s, struct queue *q);
/* q's totals (QUEUE.STATS) to change in this turn: a failed turn gives
 * them back. */
struct queue_stats *store_queue_stats(struct store *s, struct queue *q);
/* q may serve waiters now: put it on ready_head (once). */
void store_queue_changed(struct store *s, struct queue *q);
/* A new id for a job or a batch: the millisecond since ID_EPOCH_MS, a
 * sequence in it, the shard. */
uint64_t store_new_id(struct store *s);
/* An id read back from the journal (a job's, a batch's): later ids come
 * after it, even within its millisecond. store_load calls it for jobs. */
void store_id_seen(struct store *s, uint64_t id);
/* Begins the turn's transaction if needed; false when there is no journal
 * or the turn already failed (nothing more is written). For modules that
 * write rows of their own (jext.c). */
bool store_jr_begin(struct store *s);
/* Records the result of such a write (the first error fails the turn). */
void store_jr_result(struct store *s, int rc);
double store_random(struct store *s);   /* in [0,1) */

/* ---- job transitions (journaled, counted, announced) ---- */

struct push_opts {
    int64_t run_at;       /* unix ms; > now means delayed */
    int64_t delay_ms;     /* > 0: run_at = the push's own clock read + delay_ms */
    int16_t priority;
    int64_t retries;      /* -1 = queue default */
    int64_t lease_ms;     /* 0 = queue default */
    const char *unique;
    size_t unique_len;
    const char *group;    /* GROUP key; NULL = the queue's group-from, else default */
    size_t group_len;
    int64_t expires_ms;   /* > 0: expires this long after the push (its own clock read); 0 = the queue's expires (0 = never) */
    bool left;            /* LPUSH/JOB.PUSH: left; RPUSH: right */
    uint64_t batch;       /* JOB.PUSH … BATCH id (batch.h); 0 = none */
};

/* Creates a job in q; takes ownership of payload (malloc'd, with a NUL at
 * payload[len], as the request parser hands arguments out). */
struct job *store_job_push(struct store *s, struct queue *q, char *payload, size_t len,
                           const struct push_opts *o);
/* The job q delivers next from that end under its limits (flow.h), or
 * NULL; ready jobs found past their expires_at are expired on the way. */
struct job *store_job_next(struct store *s, struct queue *q, bool left);
/* Takes the job (from store_job_next) out of the ready list and leases it
 * (attempt++); the queue's limiters count the delivery. */
void store_job_reserve(struct store *s, struct job *j, int64_t lease_ms);
/* A list pop delivered it: done at once (at-most-once); counted likewise. */
void store_job_popped(struct store *s, struct job *j);
/* A ready or delayed job reached its expires_at: state expired. */
void store_job_expire(struct store *s, struct job *j);
void store_job_ack(struct store *s, struct job *j);
/* A failed delivery: retry after delay_ms (< 0: backoff) or dead. Returns
 * the new state (JOB_DELAYED or JOB_DEAD). A delayed job whose expires_at
 * comes before its run_at expires then instead. why is "nack" or
 * "lease-expired"; the attempt goes into the job's history. */
int store_job_fail(struct store *s, struct job *j, const char *err, size_t errlen,
                   int64_t delay_ms, bool dead_now, const char *why);
/* Dead/delayed/expired -> ready now (dead and expired: a fresh start,
 * attempts and expires_at cleared). */
void store_job_retry(struct store *s, struct job *j);
/* QUEUE.RETRY of a dead job: to queue `to` (q itself, or another queue of
 * this store: the job moves, keeping its id and payload, losing its group),
 * ready now or delayed until run_at; a fresh start (attempts, expiry). 0,
 * or -EIO when its payload cannot be read to move it. */
int store_job_redrive(struct store *s, struct job *j, struct queue *to, int64_t run_at);
/* A delivered job whose client vanished goes back to ready. */
void store_job_return(struct store *s, struct job *j, bool left);
/* Removes a job in any state. */
void store_job_delete(struct store *s, struct job *j);
/* Deletes q's jobs in state (or, with state < 0, in every state but
 * reserved); returns how many. */
long long store_purge(struct store *s, struct queue *q, int state);
/* Extends the lease of a reserved job. */
void store_job_touch(struct store *s, struct job *j, int64_t lease_ms);
/* j's deadline (TK_JOB node of the heap) is due: a delay ends, a lease
 * expires, a ready or delayed job expires, or a done or expired job's
 * retention is over. */
void store_job_deadline(struct store *s, struct job *j);

/* Takes the earliest node of the deadline heap if it is due by now, else
 * NULL. The caller handles it by kind: TK_JOB with store_job_deadline. */
struct tnode *store_next_due(struct store *s, int64_t now);

/* ---- slot moves (docs/cluster.md, "Moving slots") ---- */

/* Takes in a job that another node exported (every field set: id, state,
 * pos, deadlines, attempt, token, payload, ...) into q as it was there:
 * placed in the list of its state with its deadline armed, journaled
 * (row and payload). -EEXIST (j freed) when the id is taken here or the
 * state is unknown. No event. */
int store_job_adopt(struct store *s, struct queue *q, struct job *j);
/* Removes a job in any state without finishing it (no event; the finished
 * hook hears STORE_FINISHED_MOVED for an unfinished one): it lives on
 * elsewhere. Journaled. */
void store_job_evict(struct store *s, struct job *j);

/* ---- payloads ---- */

/* Makes sure the payload is in memory (reads it from the journal). */
int store_job_payload(struct store *s, struct job *j);
/* Forgets a payload that a read (QUEUE.PEEK, JOB.GET) loaded only to show
 * it: the journal keeps it. Call it only when the job had no payload in
 * memory before that read. */
void store_job_payload_drop(struct store *s, struct job *j);
/* Appends j's payload to m's reply as a bulk string, reading it from the
 * journal when it is not in memory. */
void store_add_payload(struct store *s, struct msg *m, struct job *j);
/* Encodes the list-pop reply [key, payload] of a delivery to m. */
void store_encode_pop(struct store *s, struct msg *m, const struct queue *q, struct job *j);

#endif
