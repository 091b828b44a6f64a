/*
 * journal.h - a shard's SQLite journal (WAL mode): the durable copy of its
 * queues and jobs.
 *
 * One database per shard (data-dir/shard-<k>.db), opened and used only by
 * that shard's thread. The shard calls journal_begin() lazily at the first
 * change of a turn, records every change that matters after a restart
 * (job rows, queue settings and pause state), and calls journal_commit()
 * once at the end of the turn, before any reply of that turn is released
 * (group commit). If the commit fails, the transaction is rolled back, the
 * shard answers that turn's commands with the error, and reloads its
 * in-memory state from the journal, so memory always equals what is on disk.
 *
 * Durability modes: FSYNC_ALWAYS -> synchronous=FULL (a reply means the
 * change is on disk), FSYNC_BATCH -> synchronous=NORMAL plus
 * journal_sync() about once a second (survives a process crash; a power cut
 * loses at most the commits of the last second), FSYNC_OFF ->
 * synchronous=OFF (tests/benchmarks).
 *
 * Schema: migrations/NNNN_*.sql, embedded at build time, applied in order at
 * open inside a transaction (with synchronous=FULL in every mode, so a
 * migration is on disk before anything is served from it), tracked by
 * PRAGMA user_version. A database
 * newer than the binary is refused.
 *
 * Rows are written field by field (prepared statements, bound columns);
 * nothing is ever memcpy'd to disk. Every function returns 0 or a negative
 * errno-style code; journal_error() has the last SQLite message.
 */
#ifndef SPOOL_JOURNAL_H
#define SPOOL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct job;
struct queue;
struct journal;

/* Opens (creating and migrating) the database at path. */
int journal_open(struct journal **out, const char *path, int fsync_mode);
void journal_close(struct journal *j);
/* Changes the durability mode (FSYNC_ALWAYS/BATCH/OFF) of an open journal,
 * e.g. FSYNC_ALWAYS for the start-up writes, then the configured mode. */
int journal_set_fsync(struct journal *j, int fsync_mode);
const char *journal_error(const struct journal *j);
/* The database file's path (its WAL is the path + "-wal"). */
const char *journal_path(const struct journal *j);

/* Transactions committed into this file over its life (the "commits"
 * meta row, which every journal_commit() increments in its transaction). */
int64_t journal_commits(const struct journal *j);
/* Closing will not checkpoint: a damaged WAL stays as it was found. */
void journal_keep_wal(struct journal *j);

/* The schema version this binary writes (the number of the last migration). */
int journal_schema_version(void);

/* Transactions: begin is idempotent within a turn. */
int journal_begin(struct journal *j);
int journal_commit(struct journal *j);
void journal_rollback(struct journal *j);
/* Also true while a held insert's failure waits to be reported by
 * journal_commit() (which then fails) or journal_rollback(). */
bool journal_in_txn(const struct journal *j);

/* Jobs. insert writes every field, and the payload: a payload of at most
 * JOURNAL_INLINE_MAX bytes into the job's own row (column body, migration
 * 0010: one row per job, one statement at push and at ack), a larger one
 * into its own row (table payloads, migration 0007) or the payload log
 * (below); update writes every field but the payload (state, pos,
 * priority, attempt, retries, lease_ms, run_at, lease_until, updated_at,
 * last_error, unique) and so never rewrites a large payload, while a small
 * one rides along in the row (it shares the 4 KiB page the update writes
 * anyway); delete removes the job's rows. Readers take the body from
 * either place, so rows written before 0010 (body NULL, payload in
 * payloads) load, read and delete as before. */
#ifndef JOURNAL_INLINE_MAX /* -D for measuring other bounds */
#define JOURNAL_INLINE_MAX 256
#endif
/* Changes the inline bound of this journal (tests; 0 keeps only empty
 * payloads in the row). */
void journal_set_inline_max(struct journal *j, uint32_t max);
/* insert copies the job's row and holds it back: the rows of a turn go in
 * together, with one INSERT of up to JOURNAL_BATCH_MAX rows (prepared for
 * JOURNAL_BATCH_MAX, 16, 4 and 1 rows), when JOURNAL_BATCH_MAX are held or
 * at the next other use of the journal, whichever is first (an update or
 * a delete of a row not held is no such use: it leaves them held); a payload
 * outside the row goes in at once, with its row and the rows before it. */
#define JOURNAL_BATCH_MAX 64
int journal_job_insert(struct journal *j, const struct job *job);
/* Inserts the rows insert held back. Every function of this file that runs
 * a statement calls it first (journal_job_update() and journal_job_remove()
 * only when the row they change is held), and so do journal_sqlite(), journal_prepare()
 * and journal_write(); a module that steps a statement of its own without
 * them calls it (store_jr_begin() and store_txn() do). 0 or the negative
 * errno; a failure is also kept until the transaction ends, so that
 * journal_commit() fails with it (nothing of the turn is stored). */
int journal_flush(struct journal *j);
/* The rows held back now (tests). */
size_t journal_held(const struct journal *j);
int journal_job_update(struct journal *j, const struct job *job);
int journal_job_delete(struct journal *j, uint64_t id);
/* Where journal_job_insert() puts job's payload: true in the job's row,
 * false in a payloads row of its own (or the payload log). */
bool journal_body_in_row(const struct journal *j, const struct job *job);
/* journal_job_delete() of a job whose payload placement is known (from
 * journal_body_in_row() at its insert): one plain DELETE when the body is
 * in the row, which is cheaper than asking the row where it is (RETURNING
 * opens a temporary table on every step). JOURNAL_BODY_ASK is
 * journal_job_delete(). */
enum { JOURNAL_BODY_ASK = -1, JOURNAL_BODY_APART = 0, JOURNAL_BODY_IN_ROW = 1 };
int journal_job_remove(struct journal *j, uint64_t id, int body);

/* The payload log (paylog.h; not owned, closed after the journal): a
 * payload of at least min bytes that journal_job_insert() writes is
 * appended there and its row holds where (min 0: none is, but rows that
 * point there are still read). Without it, such rows are damage (-EILSEQ).
 * journal_job_delete() tells it the segment a deleted row pointed into,
 * journal_load() counts the rows per segment, checks each record's header,
 * and leaves out (logged with id and queue) the jobs whose record is torn
 * at the newest segment's end: pushes never acknowledged. Their rows go
 * with journal_drop_torn(), in one transaction that the commit count does
 * not count (call it after the commit marks were checked, so a cut WAL is
 * found as it was). */
struct paylog;
void journal_set_paylog(struct journal *j, struct paylog *pl, uint32_t min);
/* Payload file compaction (paylog.h): one step of at most about budget
 * bytes read: repoints the rows of copies a sync took (in the open
 * transaction, begun if none), or copies the next live records of the
 * segment being emptied. 1: more to do (maybe once a sync took the
 * copies), 0: nothing, negative on error (journal_error). */
int journal_compact_step(struct journal *j, size_t budget);
int journal_drop_torn(struct journal *j);

/* Reads a payload that is not kept in memory. *out is malloc'd (caller
 * frees), NUL-terminated. -ENOENT when the job has no row. */
int journal_payload(struct journal *j, uint64_t id, char **out, size_t *len);

/* Queue settings and pause state (one row per queue that has either). */
int journal_queue_put(struct journal *j, const struct queue *q);
int journal_queue_delete(struct journal *j, const char *name, size_t len);

/* Key/value metadata (e.g. "shards" in shard-0.db). */
int journal_meta_get(struct journal *j, const char *key, char *buf, size_t cap);
int journal_meta_put(struct journal *j, const char *key, const char *value);

/* Recovery, at start before the shard serves: calls fn for every stored row.
 * Queues first; jobs in id order (the caller orders ready lists by pos). For jobs
 * the callback receives a job filled from the row (payload included when
 * with_payload is true, else job->payload == NULL): it takes ownership. */
struct journal_queue_row {
    const char *name;
    size_t len;
    const char *config;   /* "name value" pairs, space separated; may be "" */
    bool paused;
};
int journal_load(struct journal *j, bool with_payload,
                 int (*queue_fn)(void *arg, const struct journal_queue_row *row),
                 int (*job_fn)(void *arg, struct job *job, const char *queue, size_t queue_len),
                 void *arg);

/* The SQLite connection (a sqlite3 *), for modules that keep tables of
 * their own in the shard's database (jext.c); same thread rules. */
void *journal_sqlite(struct journal *j);
/* Records a failed SQLite call of such a module (rc: the SQLite code) as
 * the journal's last error; returns the negative errno. */
int journal_sqlite_fail(struct journal *j, int rc, const char *op);
/* Online backup (SQLite's backup API) of this journal into a new file at
 * path, copied pages at a time between turns on the journal's own thread.
 * Changes the journal commits while a backup runs are copied too (SQLite
 * restarts or updates the copy for writes through the same connection), so
 * the file holds the journal as of the step that finished it: consistent.
 * start: 0, or a negative errno-style code with journal_error() set (the
 * destination exists: -EEXIST). step: 1 more to copy, 0 done (the file is
 * complete and synced), negative on error. end frees b; a backup ended
 * before step returned 0 removes its file. */
struct journal_backup;
int journal_backup_start(struct journal *j, const char *path, struct journal_backup **out);
int journal_backup_step(struct journal_backup *b, int pages);
void journal_backup_end(struct journal_backup *b);

/* For modules that keep rows of their own in the shard database (the
 * keyspace, kvjournal.c), inside the same transactions. journal_prepare()
 * prepares a statement the caller finalizes before journal_close().
 * journal_write() steps a statement that returns no row (bound: the OR of
 * its bind results), counts in the fault seam, and resets it; a failure
 * leaves the sentence in journal_error(). journal_read_error() records a
 * failed read (rc: SQLite's code) and returns its errno-style code. */
struct sqlite3_stmt;
int journal_prepare(struct journal *j, const char *sql, struct sqlite3_stmt **out);
int journal_write(struct journal *j, struct sqlite3_stmt *st, int bound, const char *op);
int journal_read_error(struct journal *j, int rc, const char *op);

/* Writes the WAL back into the database when it has grown (call when idle). */
void journal_checkpoint(struct journal *j);

/* --fsync batch: fsyncs the WAL if a commit happened since it was last
 * synced (call about once a second; a no-op in the other modes, inside a
 * transaction, and when nothing is new). 0 or a negative errno code. */
int journal_sync(struct journal *j);

/* --fsync always, pipelined (shard.c and its sync thread, syncer.h): the
 * journal runs in FSYNC_BATCH mode (synchronous=NORMAL: COMMIT writes the
 * WAL without syncing it; a checkpoint syncs the WAL, then the database),
 * and the shard has the WAL synced after each commit on another thread,
 * releasing the commit's replies only when that sync returned:
 *   journal_wal(j)          shard thread, after a commit: the WAL file, or
 *                           NULL when nothing needs a sync
 *   journal_sync_wal(wal)   any one thread: fdatasync of that file through
 *                           SQLite's VFS (so the power-cut seam records it)
 *   journal_sync_wal(wal)   returns 0 or the negative errno of the sync
 *   journal_synced(j, rc)   shard thread, once it returned: rc 0 marks the
 *                           commits durable; rc < 0 fails the journal (below)
 * While journal_sync_wal() runs, the shard must not write to the journal
 * (no commit, no checkpoint): statements of an open transaction are fine.
 *
 * A failed sync (journal_synced(j, rc < 0), journal_sync(), a commit under
 * synchronous=FULL, a checkpoint) fails the journal for good: Linux may
 * mark the pages a failed fsync was writing clean although they never
 * reached the disk, so a later successful sync proves nothing, and
 * recovery, stopping at the first broken WAL frame, would drop every
 * commit after them. Like PostgreSQL the journal does not retry: from
 * then on journal_begin(), journal_commit() and journal_sync() return
 * that error (journal_error() names the file and the OS error),
 * journal_wal() returns NULL, checkpoints are skipped, and closing keeps
 * the WAL for the recovery of the next start, which keeps what really is
 * on disk. Reads work. journal_failed() returns 0 or the negative errno,
 * and *why (if why) the sentence ("fdatasync of <db>-wal failed (EIO:
 * Input/output error)"). */
int journal_failed(const struct journal *j, const char **why);
void *journal_wal(struct journal *j);
/* Syncs the WAL now whatever the mode (start-up: before segments are
 * deleted on the strength of what the WAL says). */
int journal_sync_force(struct journal *j);
int journal_sync_wal(void *wal);
int journal_synced(struct journal *j, int rc);

/* Fault injection seam for tests: the next n calls that write (insert,
 * update, delete, queue_put, commit) fail with err (e.g. -ENOSPC). */
void journal_fail_next(struct journal *j, int n, int err);

/* ------------------------------------------------- details of the contract
 *
 * Error codes (journal_error() has a sentence a person can act on, naming
 * the database file): -ENOSPC disk full; -EIO I/O error; -EBUSY the file is
 * locked by another process; -EILSEQ the file is damaged or not a spool
 * database (also a row whose values this spoold cannot represent); -EROFS /
 * -EACCES not writable; -ENOMEM; -EEXIST a job id that already has a row;
 * -EPROTO (open) the database is newer than this binary; -EINVAL bad
 * arguments; -ENOENT no such row (update, payload, meta_get); -ERANGE
 * (meta_get) the value does not fit in cap bytes.
 *
 * journal_open(): on failure other than -EINVAL/-ENOMEM, *out is still set
 * (as sqlite3_open() does) to a journal that only carries the message: read
 * journal_error(*out), then journal_close(*out). journal_close(NULL) is a
 * no-op. -EPROTO's message reads "database <path> is at schema version N,
 * newer than this spoold (M): upgrade spoold or use another --data-dir".
 *
 * Transactions: after a failed write the transaction is still open and the
 * caller calls journal_rollback(). A failed journal_commit() has already
 * rolled back (journal_rollback() is then a harmless no-op): when it
 * returns an error, nothing of the turn is on disk. journal_commit() and
 * journal_rollback() with no open transaction do nothing. Writes outside a
 * transaction commit on their own (e.g. meta_put at start-up).
 *
 * Fault seam: journal_fail_next() counts insert, update, delete, queue_put,
 * queue_delete, meta_put and commit (a commit only when a transaction is
 * open). An injected write failure leaves SQLite untouched; an injected
 * commit failure rolls the transaction back like a real one.
 *
 * journal_job_update() returns -ENOENT when the job has no row;
 * journal_job_delete() of an id with no row succeeds (purges are idempotent).
 * journal_load(): jobs come with job->q == NULL; job_fn owns the job even
 * when it returns an error, and the first negative return of either
 * callback stops the load and is returned. Callbacks must not call the
 * journal. A NULL last_error or unique key loads as NULL, an empty one as
 * an empty string. Without payloads, job->len is the stored length.
 *
 * journal_checkpoint() does nothing inside a transaction or when nothing was
 * committed since the last checkpoint; SQLite also checkpoints on its own
 * once a commit leaves the WAL over about 4 MiB (wal_autocheckpoint), so the
 * WAL stays bounded even when the shard is never idle, and truncates it to
 * 32 MiB (journal_size_limit) after a big transaction. A checkpoint writes
 * and fsyncs the database file: call it after the shard has been idle for a
 * while (e.g. a 1 s idle timer), not after every turn. */

/* The migrations compiled into this binary (generated at build time from
 * migrations/NNNN_name.sql by migrations/embed.py), in order:
 * journal_migrations[i].version == i + 1, and journal_schema_version() ==
 * journal_nmigrations. name is the file name without ".sql". */
struct journal_migration {
    int version;
    const char *name;
    const char *sql;
};
extern const struct journal_migration journal_migrations[];
extern const int journal_nmigrations;

#endif
