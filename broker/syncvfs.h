/*
 * syncvfs.h - an SQLite VFS that passes everything to the default VFS and
 * counts the syncs (xSync calls on any file), and writes each WAL frame (its
 * 24-byte header and its page, two xWrite calls of SQLite) with one write.
 *
 * The journal opens its databases through it, so how often a commit really
 * reaches the disk can be seen: INFO persistence shows the count as
 * journal_syncs, and the journal unit tests compare it across commits in
 * each --fsync mode (synchronous=FULL syncs the WAL at every commit,
 * NORMAL only at checkpoints, OFF never). The count is process-wide and
 * atomic; any thread may read it.
 *
 * syncvfs_name() registers the VFS on first use (thread-safe, once) and
 * returns its name for sqlite3_open_v2(), or NULL (the default VFS) if it
 * could not be registered.
 */
#ifndef SPOOL_SYNCVFS_H
#define SPOOL_SYNCVFS_H

#include <stdint.h>

const char *syncvfs_name(void);
/* Syncs made through the VFS since the process started. */
uint64_t syncvfs_syncs(void);

#endif
