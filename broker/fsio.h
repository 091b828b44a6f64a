/*
 * fsio.h - the files spoold writes itself, made durable in the right order.
 *
 * SQLite takes care of the shard journals. Everything else spoold creates
 * or writes goes through here: the data directory, its LOCK file and the
 * port file. Each call orders its steps so that a power cut at any moment
 * leaves either the old state or the new one, never a half:
 *
 *   fsio_mkdir         mkdir, then fsync the parent directory
 *   fsio_create        open(O_CREAT); when it made the file: fsync the file,
 *                      then the directory
 *   fsio_write_atomic  write path.tmp, fsync it, rename over path, fsync the
 *                      directory
 *
 * Every step is reported to the power-cut seam (powercut.h), so the tests
 * can check the order holds; with the seam off that costs one branch.
 * Called from the main thread at start-up (and for the port file once
 * listening). Each returns 0 or a negative errno-style code; nothing here
 * logs: the caller says what to change.
 */
#ifndef SPOOL_FSIO_H
#define SPOOL_FSIO_H

#include <stddef.h>
#include <sys/types.h>

/* Creates directory path (mode) if it is missing; 0 when it exists. */
int fsio_mkdir(const char *path, mode_t mode);
/* Opens path read-write, creating it (mode) if missing; *fd on success. */
int fsio_create(const char *path, mode_t mode, int *fd);
/* Replaces path with exactly these bytes, atomically and durably. */
int fsio_write_atomic(const char *path, const void *data, size_t len);
/* fsyncs the directory that holds path (path itself when dir is true). */
int fsio_sync_dir(const char *path, int dir);

#endif
