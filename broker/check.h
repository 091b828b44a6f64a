/*
 * check.h - spoold --check DATA_DIR: verifies a data directory offline.
 *
 * Reads the MANIFEST and, for every shard it lists, that the file is there,
 * belongs to this directory, passes PRAGMA integrity_check and holds every
 * commit its mark recorded (datadir.h); prints one line per shard with its
 * jobs per state, then a verdict. Changes nothing: the files are opened
 * without creating anything and closed without a checkpoint, so a damaged
 * WAL stays as it was found. Refuses a directory a running spoold holds
 * (its LOCK file). Returns the process exit status: 0 sound, 1 damaged,
 * 2 cannot check.
 */
#ifndef SPOOL_CHECK_H
#define SPOOL_CHECK_H

#include <stdio.h>

int check_data_dir(const char *dir, FILE *out);

#endif
