/*
 * jext.h - rows of the features that keep tables of their own in a shard's
 * journal (job results and progress, schedules, batches; migration 0006).
 *
 * journal.c owns the job rows and their fixed set of prepared statements;
 * these modules add a few statements of their own on the same SQLite
 * connection, on the shard thread, inside the turn's transaction (begun
 * lazily by store_jr_begin). A failed write fails the whole turn exactly as
 * a failed job write does (store_jr_result): its replies become errors and
 * memory is reloaded from the journal.
 *
 * Bind types, one letter per value: 'i' int64_t, 'b' blob (const void *,
 * size_t; NULL = SQL NULL), 't' text (const char *, NUL-terminated; NULL =
 * SQL NULL).
 */
#ifndef SPOOL_JEXT_H
#define SPOOL_JEXT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct job;
struct shard_ext;

/* Finalizes the cached statements when the shard is destroyed (before its
 * journal closes); registered after the features that write. */
extern const struct shard_ext jext_ext;

/* One statement that changes rows, in the turn's transaction. No-op
 * without a journal or after the turn already failed. sql must be a
 * string constant: its prepared statement is cached per shard by the
 * pointer. */
void jext_write(struct shard *s, const char *sql, const char *types, ...);
/* A statement that reads rows: step it with sqlite3_step() and finalize
 * it. NULL without a journal or on error (logged). */
sqlite3_stmt *jext_read(struct shard *s, const char *sql, const char *types, ...);

/* Job columns of migration 0006. */
void jext_job_result(struct shard *s, uint64_t id, const char *result, size_t len);
void jext_job_progress(struct shard *s, uint64_t id, const char *progress);
void jext_job_batch(struct shard *s, uint64_t id, uint64_t batch);
/* Loads progress and batch into the jobs in memory, and marks the jobs
 * that have a result in the journal (recovery). */
int jext_load_jobs(struct shard *s);
/* Reads j's result from the journal into j->result (malloc'd). */
int jext_job_result_read(struct shard *s, struct job *j);

/* A blob column as a malloc'd NUL-terminated copy (NULL when SQL NULL). */
char *jext_col_dup(sqlite3_stmt *st, int col, size_t *len);

#endif
