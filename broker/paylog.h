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
 * Files: data-dir/shard-<k>.payload.<n>, n = 1, 2, ... The newest segment
 * in use is active: appends go to its end (a spare, below, may be newer,
 * still empty). Each run starts a new active segment (the old one's tail
 * may be torn). Rotation: one that grows past the segment size is closed
 * and the next one started; the switch is all the shard thread does when
 * a spare is ready: every sync request (paylog_take_sync) carries the
 * closed segment's last fdatasync first, then the active one's, and asks
 * for the next segment (the spare: header, fdatasync, directory sync) if
 * none is asked for, which the sync thread creates once the commit's
 * replies can go (paylog_make_spare). A spare is made only after the
 * closed segment is synced, so only the newest two segments ever hold
 * unsynced bytes. While a spare is being made the active segment grows
 * past the size; with none asked for (or its creation failed), the
 * rotation does it all at once.
 * Format, field by field, little-endian:
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
 * belongs to a commit that was never acknowledged (only the newest two
 * segments at open can hold unsynced bytes, see rotation); anything else
 * found wrong is damage (paylog_check).
 *
 * Reclaim: each segment counts the rows that point into it (live). A
 * segment other than the active one whose count fell to 0 becomes dead at
 * the commit that made it so (paylog_committed) and is deleted at the next
 * durable point after it (paylog_durable), when the deletes are on disk.
 *
 * Compaction: a closed segment whose live bytes (the records rows point
 * at) are below PAYLOG_COMPACT_PCT % of its size is emptied, a few records
 * at a time: the journal (journal_compact_step) walks its records
 * (paylog_compact_next), copies those a row still points at to the active
 * segment (paylog_compact_copy), and once a sync took the copies
 * (paylog_durable or paylog_sync after them: paylog_compact_ready), moves
 * each row over in its transaction (paylog_compact_moved). The commit
 * that moved the last leaves the old segment with no row: it goes like any
 * other. So a copy is on disk before any committed row points at it, and
 * the old record is there until that commit is: a power cut at any point
 * leaves each row pointing at a whole record. Paused while pinned.
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

/* Compaction takes a closed segment whose live bytes are below this
 * share of its size (the default of --payload-file-compact): closed
 * segments then hold at most about 100/25 = 4 times their live bytes, and
 * a record that lives long is copied a few times at most. */
#define PAYLOG_COMPACT_PCT 25

/* What a sync request carries (fd < 0: nothing): the closed segment's last
 * sync (fd2) then the active one's (fd); spare: make the next segment
 * (spare_no) afterwards. */
struct paylog_pending {
    int fd;
    const char *path;
    int fd2;
    const char *path2;
    struct paylog *spare;
    uint32_t spare_no;
};

struct paylog_stat {
    uint64_t segments, disk_bytes, live_bytes; /* segments on disk, their bytes, the bytes rows point at */
    uint64_t compactions, moved_bytes;         /* segments compacted, bytes copied by it, since the start */
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

/* Live counts (rows and their records' bytes): reset before a load (it
 * drops compaction's pending copies too), one per row found; unref when a
 * row pointing into seg is deleted. len: the body's length. */
void paylog_counts_reset(struct paylog *pl);
void paylog_ref_count(struct paylog *pl, uint32_t seg, uint32_t len);
void paylog_unref(struct paylog *pl, uint32_t seg, uint32_t len);

/* Durability. take_sync: the active segment when something was appended
 * since the last take (the flag is cleared), and the closed one whose last
 * sync is due, and a spare to make, for the sync thread; sync_pending:
 * does them (any thread), 0 or the negative errno of a failed sync;
 * sync: all of it at once on the caller's thread. */
bool paylog_take_sync(struct paylog *pl, struct paylog_pending *p);
int paylog_sync_pending(const struct paylog_pending *p);
/* After sync_pending succeeded (any thread; the sync thread calls it once
 * the commit's MSG_SYNCED is posted, off the acknowledgement's path):
 * creates the spare p asks for, if any. */
void paylog_make_spare(const struct paylog_pending *p);
int paylog_sync(struct paylog *pl);
/* A commit succeeded: dead segments (count 0, not active) wait for the next
 * durable point. durable: the commits so far and the syncs taken so far
 * are on disk (call it only with no sync in flight); deletes the dead
 * segments, unless pinned (a backup is copying the segments). */
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
/* The share (%) below which a closed segment is compacted; 0: never. */
void paylog_set_compact(struct paylog *pl, int pct);
/* Segments on disk, their bytes, live bytes, compactions (INFO). */
void paylog_stats(const struct paylog *pl, struct paylog_stat *st);

/* Compaction (above). wanted: work to do (a segment to take, one being
 * read, copies to repoint); waiting: copies wait for a sync. next: the
 * next record of the segment being emptied (picking one if none): 1 with
 * its job id and where, 0 when there is none now (the segment read to
 * its end, pinned, or nothing to do). copy: copies it to the
 * active segment (call it only if the job's row points at from). ready:
 * with the copies synced, the i-th copy (the count from i on, 0: none or
 * not yet); moved: its row was repointed (or was gone); clear: all done. */
bool paylog_compact_wanted(struct paylog *pl);
bool paylog_compact_waiting(const struct paylog *pl);
int paylog_compact_next(struct paylog *pl, uint64_t *id, struct paylog_ref *ref);
int paylog_compact_copy(struct paylog *pl, uint64_t id, const struct paylog_ref *from);
size_t paylog_compact_ready(struct paylog *pl, size_t i, uint64_t *id, struct paylog_ref *from,
                            struct paylog_ref *to);
void paylog_compact_moved(struct paylog *pl, const struct paylog_ref *from, const struct paylog_ref *to,
                          bool repointed);
void paylog_compact_clear(struct paylog *pl);

/* The record format, exposed for the unit tests. */
uint32_t paylog_crc32c(uint32_t crc, const void *p, size_t n);
void paylog_rec_header(unsigned char h[PAYLOG_REC_HEADER], uint64_t id, uint32_t len, uint32_t crc);
/* 0 when h is a record header (magic, own CRC), with its fields set. */
int paylog_rec_parse(const unsigned char h[PAYLOG_REC_HEADER], uint64_t *id, uint32_t *len, uint32_t *crc);

#endif
