/*
 * paylog.h - a shard's payload log: large payloads written once, appended
 * to segment files of their own, the job's payloads row holding where.
 *
 * Why: a payload kept in SQLite is written twice, into the WAL and again
 * into shard-<k>.db when the WAL is checkpointed (docs/performance.md,
 * "Bytes per job"). A payload appended here is written once; the journal
 * row holds (segment, offset, length, checksum) and its small pages are
 * what the WAL and the checkpoint copy.
 *
 * Files: data-dir/shard-<k>.payload.<n>, n = 1, 2, ... One segment, the
 * newest, is active: appends go to its end. Each run starts a new active
 * segment (the old one's tail may be torn), and one grows past the segment
 * size is closed with an fdatasync and a new one started. Format, field by
 * field, little-endian:
 *   file header (16 bytes): "SPLPAYv1", u32 shard, u32 segment number
 *   record (24-byte header + body): u32 magic "SPPR", u32 body length,
 *     u64 job id, u32 CRC32C of the body, u32 CRC32C of the 20 bytes before
 *     it; then the body.
 *
 * Who calls it: the journal (journal_set_paylog) on its shard's thread,
 * for appends, reads and the live counts of the rows; the shard for the
 * durable points; the shard's sync thread only for paylog_sync_pending(),
 * on the fd and path paylog_take_sync() handed it.
 *
 * Durability (journal.h has the order): a commit whose rows point into the
 * log is acknowledged only once the WAL and the segment are both synced.
 * A record appended but not committed is an orphan: never read, its space
 * goes with its segment. A row whose record is missing or torn at recovery
 * belongs to a commit that was never acknowledged (only the newest segment
 * at open can hold unsynced bytes: rotation syncs the old one); anything
 * else found wrong is damage (paylog_check).
 *
 * Reclaim: each segment counts the rows that point into it (live). A
 * segment other than the active one whose count fell to 0 becomes dead at
 * the commit that made it so (paylog_committed) and is deleted at the next
 * durable point after it (paylog_durable), when the deletes are on disk.
 * There is no compaction: a long-lived job keeps its whole segment (at
 * most --payload-file-segment bytes) on disk.
 *
 * Errors: 0 or a negative errno-style code; paylog_error() has a sentence
 * naming the file.
 */
#ifndef SPOOL_PAYLOG_H
#define SPOOL_PAYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAYLOG_FILE_HEADER 16
#define PAYLOG_REC_HEADER 24

struct paylog;

/* Where a payload lives: a record's start, its body's length and CRC32C. */
struct paylog_ref {
    uint32_t seg;
    uint64_t off;
    uint32_t len;
    uint32_t crc;
};

/* A segment to fdatasync on another thread (fd < 0: nothing). */
struct paylog_pending {
    int fd;
    const char *path;
};

/* Opens shard's log in dir: finds its segments and scans the newest for
 * where its valid records end. seg_max: bytes after which the active
 * segment rotates. paylog_start() then creates this run's active segment
 * (synced with its directory entry); call it only once the jobs whose
 * record was torn are durably deleted (journal_drop_torn): until then the
 * torn segment must stay the newest, or the next open would take its torn
 * tail for damage. The first append starts it if nobody did. */
int paylog_open(struct paylog **out, const char *dir, int shard, uint64_t seg_max);
int paylog_start(struct paylog *pl);
/* Syncs the active segment and closes every file; NULL is a no-op. */
void paylog_close(struct paylog *pl);
const char *paylog_error(const struct paylog *pl);

/* Appends a record; *ref says where. Counts it live in its segment. */
int paylog_append(struct paylog *pl, uint64_t id, const void *body, uint32_t len, struct paylog_ref *ref);
/* Reads and checks the record ref for job id: *out malloc'd, NUL-terminated. */
int paylog_read(struct paylog *pl, const struct paylog_ref *ref, uint64_t id, char **out);
/* At load: 0 when ref's record header is there and matches; -ENODATA when it
 * lies in the torn tail of the newest segment at open (a push never
 * acknowledged); -EILSEQ for anything else (damage; paylog_error says what). */
int paylog_check(struct paylog *pl, const struct paylog_ref *ref, uint64_t id);

/* Live counts: reset before a load, one per row found; unref when a row
 * pointing into seg is deleted. */
void paylog_counts_reset(struct paylog *pl);
void paylog_ref_count(struct paylog *pl, uint32_t seg);
void paylog_unref(struct paylog *pl, uint32_t seg);

/* Durability. take_sync: the active segment when something was appended
 * since the last take (the flag is cleared), for the sync thread;
 * sync_pending: fdatasync of it (any thread), 0 or the negative errno;
 * sync: both at once on the caller's thread. */
bool paylog_take_sync(struct paylog *pl, struct paylog_pending *p);
int paylog_sync_pending(const struct paylog_pending *p);
int paylog_sync(struct paylog *pl);
/* A commit succeeded: dead segments (count 0, not active) wait for the next
 * durable point. durable: the commits so far are on disk; deletes them,
 * unless pinned (a backup is copying the segments). */
void paylog_committed(struct paylog *pl);
void paylog_durable(struct paylog *pl);
void paylog_pin(struct paylog *pl, bool on);

/* BACKUP: copies the segments, as they are when start is called, into
 * dir (same names), a few MiB per step on the shard thread, each synced and
 * renamed into place, then dir synced. Call start right when the journal's
 * copy is complete (its rows point only below the sizes taken then) and pin
 * the log from the journal copy's start to end() (no segment is deleted
 * meanwhile). step: 1 more to copy, 0 done, negative on error
 * (paylog_error); end frees, removing a partial file. */
struct paylog_backup;
int paylog_backup_start(struct paylog *pl, const char *dir, struct paylog_backup **out);
int paylog_backup_step(struct paylog_backup *b, size_t bytes);
void paylog_backup_end(struct paylog_backup *b);
/* Segments on disk and their bytes (INFO). */
void paylog_stats(const struct paylog *pl, uint64_t *segments, uint64_t *bytes);

/* The record format, exposed for the unit tests. */
uint32_t paylog_crc32c(uint32_t crc, const void *p, size_t n);
void paylog_rec_header(unsigned char h[PAYLOG_REC_HEADER], uint64_t id, uint32_t len, uint32_t crc);
/* 0 when h is a record header (magic, own CRC), with its fields set. */
int paylog_rec_parse(const unsigned char h[PAYLOG_REC_HEADER], uint64_t *id, uint32_t *len, uint32_t *crc);

#endif
