/*
 * batch.h - batches: jobs on any queues (so on any shards) that finish
 * together, with callback jobs pushed exactly once.
 *
 * A batch lives on its home shard H, named by the low bits of its id like a
 * job. Its counts are exact across kill -9 by this protocol between shards
 * (docs/threads.md, "Batches across shards"):
 *
 *  - Notes. A shard that must tell another one something durable (a job
 *    was added to a batch, finished done, finished dead; a callback job to
 *    push) writes a note row into its own `batch_outbox` in the same
 *    transaction as the change it reports, and posts the note to the other
 *    shard only after that commit. Seqs count 1, 2, 3, ... per (source,
 *    destination) pair, without gaps (batch_seq keeps the last one).
 *  - The receiving shard applies a note whose seq is the next one after
 *    the source's seq recorded in `batch_inbox`, and records it, in one
 *    transaction; a note at or below it is a duplicate and is ignored; a
 *    note beyond it means notes were lost in a failed turn: the receiver
 *    asks the source to RESEND its outbox (so does a shard whose commit
 *    failed, at once). After its commit the receiver confirms (an
 *    in-memory ack) and the source deletes its outbox rows up to that seq.
 *  - At start every shard posts its whole outbox again (resent notes),
 *    then a SYNC marker to every shard. A home shard judges completion only
 *    after it has the SYNC of every shard: by then every note committed
 *    before the crash has been applied (per-pair FIFO inboxes).
 *  - Adding: JOB.PUSH … BATCH id goes first to H, which refuses an unknown
 *    or closed batch and otherwise counts the push as in flight (pending,
 *    in memory) and forwards it to the queue's shard Q. Q pushes the job,
 *    marks it (jobs.batch) and writes the ADDED note in one transaction; if
 *    Q does not push (error, or UNIQUE found another job), it tells H at
 *    once (UNPEND). A crash loses in-flight pushes together with H's
 *    in-memory count: the process is one.
 *  - A job counts once: at its first finish (done; dead; or deleted before
 *    finishing, which counts as dead) its mark is cleared with the note.
 *  - Completion: closed, nothing pending, SYNC from every shard, and
 *    done + dead == total. ON-DEATH fires at the first dead job. The
 *    callbacks are PUSH notes to the callback queue's shard, written in the
 *    transaction that decided them, so each is pushed exactly once; the
 *    callback job carries the unique key batch:<id>:<success|complete|death>.
 *
 * Finished batches stay readable (BATCH.GET) for BATCH_KEEP_MS.
 */
#ifndef SPOOL_BATCH_H
#define SPOOL_BATCH_H

#include "theap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_KEEP_MS 3600000

enum batch_state { BATCH_OPEN = 0, BATCH_CLOSED = 1, BATCH_FINISHED = 2 };
enum batch_cb { CB_SUCCESS = 0, CB_COMPLETE = 1, CB_DEATH = 2, CB_COUNT = 3 };

struct shard;
struct msg;
struct job;
struct shard_ext;

struct batch {
    struct tnode timer;          /* first member: removal of a finished batch */
    struct batch *hnext;
    uint64_t id;
    int state;                   /* enum batch_state */
    int64_t total, done, dead;
    int fired;                   /* bit per enum batch_cb */
    char *cb[CB_COUNT];          /* "queue\0payload", or NULL */
    size_t cblen[CB_COUNT];
    int64_t created_at, updated_at;
    int64_t pending;             /* pushes admitted, not yet added (memory only) */
};

extern const struct shard_ext batch_ext;

const char *batch_state_name(int state);
const char *batch_cb_name(int cb);
/* Creates an open batch on this shard; cb_q/cb_p[i] NULL when callback i
 * is not wanted. Returns it. */
struct batch *batch_new(struct shard *s, const char *const cb_q[CB_COUNT], const size_t cb_qlen[CB_COUNT],
                        const char *const cb_p[CB_COUNT], const size_t cb_plen[CB_COUNT]);
struct batch *batch_find(struct shard *s, uint64_t id);
/* Closes it (idempotent); the callbacks may fire in this turn. */
void batch_close(struct shard *s, struct batch *b);
/* True when the home shard has heard from every shard since its start
 * (before that, completion is not judged). */
bool batch_synced(struct shard *s);

/* JOB.PUSH … BATCH id, on the batch's home shard (m not yet admitted):
 * replies with the error, or counts the push as pending and forwards m to
 * the queue's shard. Takes m. */
void batch_admit(struct shard *s, struct msg *m, uint64_t id, int queue_shard);
/* On the queue's shard, after an admitted push: j is the job pushed, or
 * NULL when none was (the home shard is told at once). */
void batch_pushed(struct shard *s, uint64_t id, struct job *j);

#endif
