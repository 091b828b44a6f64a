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
struct jobwaits;
struct scheds;
struct batches;
struct claim;
struct jext_cache;
struct job;

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
    /* --sync-gather-us (syncer.h): after a sync that released the replies
     * of several clients, the next commit waits until held_replies reach
     * gather_need or the window ends (MSG_GATHERED) */
    bool gathering;
    bool gather_asked;           /* the sync in flight opens a window */
    size_t gather_need;
    unsigned gather_skip;        /* windows left out after one ran out (backoff) */
    unsigned gather_backoff;     /* the skip after the next that runs out */
    int64_t gather_opened;       /* syncer_now_ns() when the window opened */
    int64_t gather_return_ns;    /* average time until a window filled, 0 = none yet */
    uint64_t sync_seq;           /* syncs requested (MSG_GATHERED names one) */
    struct syncer sync;
    struct paylog *pl;           /* the payload file (paylog.h), or NULL */
    struct event *compact_ev;    /* its compaction's next step */
    /* the payload file's figures for INFO, as of the last step or second */
    atomic_uint_least64_t pl_disk, pl_live, pl_segments, pl_compactions;
    /* INFO persistence: reservations not journaled yet, written late,
     * never written (store.c); stored by the shard at the end of a turn */
    atomic_uint_least64_t res_unsaved, res_late, res_skipped;
    struct msg_batch *fl_replies; /* the replies and events of the commit being synced */
    struct msg_batch *fl_events;
    /* messages to other shards that may leave only once the commit they
     * report is on disk (shard_post_durable): dposts of the commit being
     * made, fl_dposts of the commit being synced */
    struct dposts { struct dpost { struct inbox *to; struct msg *m; } *v; size_t n, cap; } dposts, fl_dposts;
    uint64_t commits;            /* turns that committed a transaction */
    uint64_t commits_seen;       /* commits at the last idle check */
    uint64_t commands;           /* processed, for INFO */
    /* The shard's Lua engine and what runs its redis.call (cmd_script.c
     * sets it up on the first script; freed by scripting_free). */
    void *scripting;
    void (*scripting_free)(void *scripting);
    /* state of the features that hook in (struct shard_ext): JOB.WAIT
     * waiters (cmd_result.c), schedules (schedule.c), batches (batch.c) */
    struct jobwaits *waits;
    struct scheds *scheds;
    struct batches *batches;
    struct jext_cache *jext;     /* prepared statements of jext.c */
    struct journal_backup *backup; /* BACKUP in progress (shard_backup_start), or NULL */
    struct paylog_backup *pl_backup; /* then the payload segments' copy, or NULL */
    struct msg *backup_msg;      /* its request, answered when it ends */
    struct event *backup_ev;     /* steps it between turns */
    char backup_tmp[4096], backup_path[4096];
    int mark_fd;                 /* shard-<k>.mark (datadir.h), valid when has_mark */
    bool has_mark;
    int64_t mark_commits;        /* the commit count the mark file holds */
    uint64_t rep_epoch;          /* replica_role_epoch() at the last turn (replica.h) */
    /* Replication, a leader's shard: an entry is in flight (its replies,
     * events and notes wait in fl_*, like a sync's); rep_hold: no new turn
     * until it commits and the journal with it (what arrives waits in
     * rep_held) */
    bool rep_busy, rep_hold;
    struct msg *rep_held, *rep_held_tail;
    bool capture;                /* running EXEC's commands: shard_reply keeps the message */
    struct msg *captured;
    /* A sync of the journal failed (journal_failed): the shard acknowledges
     * no write until spoold restarts (see "A failed sync" in shard.c).
     * fence_why, the error every write gets, is written once, before
     * srv->journal_failed_shards counts the shard (other threads read it
     * after that atomic). */
    bool fenced;
    char fence_why[1200];
    bool waiters_refused;        /* fenced: the clients waiting then were answered fence_why (shard_tick) */
};

/* Features with state of their own on each shard (job waits, schedules,
 * batches) hook into the shard here, so the shard never calls up into
 * them. Registered once at start-up, before any shard is initialised;
 * every hook runs on the shard thread and may be NULL. */
enum { SHARD_FINISHED_DELETED = STORE_FINISHED_DELETED, SHARD_FINISHED_MOVED = STORE_FINISHED_MOVED };
struct shard_ext {
    /* After the journal's jobs were loaded (shard_recover), before serving. */
    int (*recover)(struct shard *s);
    /* j just finished: how is JOB_DONE or JOB_DEAD, SHARD_FINISHED_MOVED for
     * an unfinished job that leaves with its slot, or SHARD_FINISHED_DELETED
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
    /* The shard was fenced (a failed sync): every client parked here gets
     * the error why now (shard_reply), as queue waiters do. */
    void (*fenced)(struct shard *s, const char *why);
    void (*destroy)(struct shard *s);
};
void shard_ext_register(const struct shard_ext *e);

int shard_init(struct shard *s, struct server *srv, int id);
/* Opens the journal and loads what it holds (before shard_start). Checks
 * the file's identity (its meta rows dir_id and shard against srv->data_id
 * and k) and that it holds every commit its mark recorded (datadir.h);
 * either failing refuses the start, unless --recover, which logs the loss. */
int shard_recover(struct shard *s);
int shard_start(struct shard *s);
void shard_join(struct shard *s);
void shard_destroy(struct shard *s);

/* BACKUP: copies this shard's journal into dir/shard-<k>.db (via
 * shard-<k>.db.tmp, renamed once complete and synced), a few MiB per step
 * between turns, so the shard keeps serving. Takes m and answers it as a
 * gather part when done: m->keys = jobs at the end, m->out = an error
 * sentence (empty on success). One backup at a time per shard. */
void shard_backup_start(struct shard *s, struct msg *m, const char *dir);

/* Handles every deadline that is due by clock_now_ms() and ends the turn
 * (the timer calls it; unit tests call it after moving the fake clock). */
void shard_tick(struct shard *s);

/* ---- for command handlers, on the shard thread ---- */

/* The queue named by argv[i] of m (created when create is true). */
struct queue *shard_queue(struct shard *s, const struct msg *m, int i, bool create);
/* Sends m back as the reply (after this turn commits). Takes ownership. */
void shard_reply(struct shard *s, struct msg *m);
/* For the end_turn hook of a commit: posts m to inbox to once that commit
 * is on disk (at once without the sync thread; with it, when the commit's
 * sync returned), so a shard never hears of a change that a crash could
 * still undo. Takes ownership of m. */
void shard_post_durable(struct shard *s, struct inbox *to, struct msg *m);
/* Runs a BLPOP/BRPOP/JOB.RESERVE message (TRY or PARK mode, see msg.h). */
void shard_bpop(struct shard *s, struct msg *m);
bool shard_owns(const struct shard *s, const char *name, size_t len);
/* Answers every BLPOP/BRPOP/JOB.RESERVE parked on q with error (its slot
 * moved away: the client retries where the map sends it). q stays. */
void shard_refuse_waiters(struct shard *s, struct queue *q, const char *error);
/* Queues a pub/sub message (events.h) for every I/O thread, posted after
 * the turn commits; takes ownership of m. No-op (m freed) when nobody
 * listens. */
void shard_publish(struct shard *s, struct msg *m);
/* Calls fn for each JOB.RESERVE parked on q (who: msg.h's who). */
void shard_each_waiter(struct shard *s, struct queue *q, void (*fn)(void *arg, const char *who, int64_t since),
                       void *arg);

#endif
