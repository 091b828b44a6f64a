/*
 * admit.h - the admission checks of every push path (LPUSH, RPUSH,
 * JOB.PUSH): TOOBIG and BADJSON before the request leaves the I/O thread,
 * BADJSON for a queue that wants JSON and FULL on the shard.
 *
 * Commands layer: used by the cmd_* files; calls down only (conn.c on the
 * I/O side, shard.c on the shard side, payload.c for the JSON check).
 * A check that refuses has already replied: the caller only returns.
 */
#ifndef SPOOL_ADMIT_H
#define SPOOL_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct msg;
struct queue;
struct shard;

/* I/O side: replies -TOOBIG and returns false when a payload in
 * argv[first..last) is over max-payload. With --payload json it also
 * checks JSON; the result rides in m->num for admit_json: 0 = all valid,
 * else (element << 32 | byte offset) + 1. */
bool admit_payloads(struct conn *c, struct msg *m, int first, int last);

/* Shard side: replies -BADJSON (and returns true) when q takes JSON and a
 * payload in argv[first..last) is not. */
bool admit_json(struct shard *s, struct msg *m, struct queue *q, int first, int last);

/* Shard side: replies -FULL (and returns true) when q cannot take n more
 * unfinished jobs. */
bool admit_room(struct shard *s, struct msg *m, struct queue *q, size_t n);

#endif
