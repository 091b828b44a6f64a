/*
 * powercut.h - a power-loss simulator for tests: every file spoold writes
 * is tracked so that DEBUG POWER-CUT can leave the disk as a power cut
 * would, then end the process.
 *
 * Why: kill -9 keeps the kernel's page cache, so everything written reaches
 * the disk whether it was synced or not. A reply sent before its fsync, a
 * file created without syncing its directory, a rename without a directory
 * sync: none of these fail a kill -9 test, and all lose data when the power
 * goes. With the seam on, a cut drops exactly what was not synced.
 *
 * Who calls it:
 * - server start-up calls powercut_enable() once, before any file is opened,
 *   only with --enable-debug-command yes. It registers a SQLite VFS shim
 *   ("spool-powercut") as the default VFS, wrapping the "unix" VFS, so every
 *   SQLite file (shard-<k>.db, its -wal, a rollback -journal) goes through it.
 * - fsio.c (spoold's own files: data dir, LOCK, port file) reports its
 *   creates, writes, syncs and renames through the powercut_note_*() calls.
 * - DEBUG POWER-CUT [TORN] (an I/O thread) calls powercut_cut().
 * Without powercut_enable() every powercut_note_*() is one load and a
 * return, and SQLite uses its own VFS untouched: the seam costs nothing.
 *
 * Model of the disk (per file, by absolute path):
 * - synced_size and the synced content: what the last successful sync
 *   (xSync / fsync / fdatasync) made durable. A file that existed when it
 *   was first opened counts as durable as it was then.
 * - pre-images: before a write (or truncate) first touches a 4 KiB block
 *   below synced_size, the block's synced content is copied aside. A cut
 *   writes the pre-images back and truncates to synced_size; a sync drops
 *   them. Memory is bounded by the file's synced size (each block is saved
 *   at most once per sync interval); with --fsync always it is the few
 *   blocks a commit rewrites.
 * - the last unsynced write (offset and bytes): with TORN, a cut then writes
 *   back a prefix of it that ends on a random 512-byte boundary of the file
 *   (possibly nothing, never all of it): a torn sector-sized write.
 * - the directory entry: a file (or directory) created by this process is
 *   not durable until its directory is fsynced after the creation; a cut
 *   removes it (a directory with everything in it). SQLite's unix VFS syncs
 *   the directory itself on the first xSync of a journal or WAL it opened
 *   with SQLITE_OPEN_CREATE (its UNIXFILE_DIRSYNC flag) and on xDelete(...,
 *   dirSync=1); the shim mirrors both. A rename's new name counts as a new
 *   entry (removed by a cut unless the directory was synced after it).
 * - not modelled: an unlink that was not followed by a directory sync is
 *   treated as done (a real disk may bring the file back; the only unlink
 *   spoold's files see, SQLite removing the rollback journal of the first
 *   "PRAGMA journal_mode = WAL", is followed by the directory sync of the
 *   new WAL, as strace shows); metadata other than size and names (modes,
 *   times); writes another process makes; reordering of unsynced writes
 *   (a cut keeps none of them, or with TORN a prefix of the last one).
 *
 * Cutting: powercut_cut() stops every tracked operation (a writer-preferring
 * rwlock: operations hold it shared, the cut takes it exclusively and never
 * gives it back, so a write in progress finishes first and every later one
 * blocks). A sync takes the lock only once the fsync returned, to record
 * it: a cut during an fsync counts that sync as not done, and its thread
 * blocks before SQLite (or fsio) learns it succeeded. The cut then rewrites
 * the files, removes the undurable entries, logs one line with what it
 * dropped, and calls _exit(86) without replying to anyone.
 *
 * Start-up cuts (no client is connected yet): the environment variable
 * SPOOL_POWER_CUT_AT=write:N|sync:N|read:N cuts right after the Nth tracked
 * write, sync or read of the process (SQLite and fsio files alike), and
 * SPOOL_POWER_CUT_TORN=1 makes it a torn cut. Read only when the seam is on.
 *
 * Failed syncs (the disk said no, the process goes on): DEBUG SYNC-FAIL
 * makes the next n syncs of one file fail (powercut_fail_syncs), and
 * SPOOL_SYNC_FAIL_AT=N the Nth sync of any SQLite file of the process
 * (counted apart from SPOOL_POWER_CUT_AT's, which also counts fsio's). A
 * failing sync returns SQLITE_IOERR_FSYNC (errno EIO) without syncing,
 * and is modelled on Linux: the writeback error marks the pages clean, so
 * the blocks written since the file's last sync are lost for good (a cut
 * writes back their pre-images, zeros past the old synced size) even if a
 * later sync of the file succeeds; a later write of such a block makes it
 * dirty again (not lost). Reads keep seeing the new bytes, as the page
 * cache does.
 */
#ifndef SPOOL_POWERCUT_H
#define SPOOL_POWERCUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define POWERCUT_EXIT_CODE 86

/* Registers the shim as SQLite's default VFS and turns tracking on. Call
 * once, before any file is opened. 0 or a negative errno-style code. */
int powercut_enable(void);
bool powercut_enabled(void);

/* Leaves every tracked file as a power cut would, then _exit(86). */
_Noreturn void powercut_cut(bool torn);

/* The next n syncs of path (a SQLite file: "<db>-wal") fail as above.
 * 0, -ENOTSUP without the seam, -ENOENT when path is not open. */
int powercut_fail_syncs(const char *path, int n);

/* ---------------------------------------- spoold's own files (fsio.c) */

/* Each is a no-op while the seam is off. fd is the open file (for reading
 * pre-images and its size); path as given to open(). */

/* Before open(): created tells whether the call is going to create it. */
void powercut_note_open(const char *path, bool created);
/* mkdir(path) created a directory. */
void powercut_note_mkdir(const char *path);
/* Around a write of n bytes at off (pwrite, or write at the file's end):
 * begin saves pre-images and holds the seam shared; end records the write
 * (done = bytes written, < 0 on failure) and lets go. */
void powercut_note_write_begin(const char *path, int fd, off_t off, size_t n);
void powercut_note_write_end(const char *path, off_t off, const void *buf, ssize_t done);
/* fsync/fdatasync(fd) of path succeeded. */
void powercut_note_sync(const char *path, int fd);
/* fsync of directory dir succeeded: the entries in it are durable. */
void powercut_note_dirsync(const char *dir);
/* rename(from, to) succeeded. */
void powercut_note_rename(const char *from, const char *to);

#endif
