/*
 * datadir.h - what a data directory must hold, written down, so that a
 * missing, foreign or cut shard file is noticed at start instead of being
 * served as an empty shard.
 *
 *   MANIFEST        the directory's identity and shape, written with
 *                   fsio_write_atomic (write, fsync, rename, fsync dir):
 *                     spool-manifest 1
 *                     id <32 hex digits>
 *                     shards N
 *                     state creating|ready
 *                     shard 0 shard-0.db
 *                     ...
 *                   A new directory gets "state creating" before any shard
 *                   file exists and "ready" once every one was made, so a
 *                   start cut short while creating completes the missing
 *                   files, and after that a missing file is damage.
 *   shard-<k>.db    meta rows dir_id (the manifest's id), shard (k) and
 *                   commits (transactions committed; journal.c counts them).
 *   shard-<k>.mark  one line, rewritten in place once commits are on disk
 *                   (shard.c: after each commit with --fsync always/off,
 *                   after the once-a-second WAL sync with batch):
 *                     spool-mark 1 <id> <k> <commits> <jobs>
 *                   The journal must hold at least <commits> commits when
 *                   it is opened; fewer means its WAL was cut or damaged,
 *                   and <jobs> (the jobs the shard held then) tells how
 *                   many jobs the damage may have cost.
 *
 * No thread, no socket: called at start-up (server.c, shard.c) and by
 * spoold --check (check.c); datadir_mark_write() from the owning shard's
 * thread. Each call returns 0 or a negative errno-style code; nothing here
 * logs.
 */
#ifndef SPOOL_DATADIR_H
#define SPOOL_DATADIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DATADIR_ID_LEN 32

struct manifest {
    char id[DATADIR_ID_LEN + 1];
    int shards;
    bool ready;        /* false: "state creating" */
};

struct mark {
    char id[DATADIR_ID_LEN + 1];
    int shard;
    int64_t commits;
    int64_t jobs;
};

/* dir/name into out (cap bytes); -ENAMETOOLONG when it does not fit. */
int datadir_path(char *out, size_t cap, const char *dir, const char *name);
int datadir_shard_path(char *out, size_t cap, const char *dir, int k, const char *suffix);

/* A fresh random identity. */
void datadir_new_id(char id[DATADIR_ID_LEN + 1]);

/* -ENOENT: no MANIFEST; -EILSEQ: it is not one this spoold can read. */
int datadir_manifest_read(const char *dir, struct manifest *m);
int datadir_manifest_write(const char *dir, const struct manifest *m);

/* -ENOENT: no mark; -EILSEQ: not a mark. */
int datadir_mark_read(const char *dir, int k, struct mark *mk);
/* Opens (creating durably) shard k's mark file for datadir_mark_write. */
int datadir_mark_open(const char *dir, int k, int *fd);
/* Rewrites the mark in place (one pwrite of a fixed-width line). */
int datadir_mark_write(int fd, const struct mark *mk);

#endif
