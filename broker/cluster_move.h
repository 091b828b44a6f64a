/*
 * cluster_move.h - what a slot holds, moved between nodes: the shard's side
 * of `spool cluster move-slots` for slots with data (docs/cluster.md,
 * "Moving slots").
 *
 * Commands layer, shard thread. Everything a node keeps under a slot lives
 * on one shard (slot % shards): queues with their settings and pause, their
 * jobs in every state (with lease, delivery number and token, so that a
 * receipt given out before the move acks after it; payload, result,
 * progress, history), the schedules of those queues, and the keys (strings,
 * hashes, sorted sets, with their expiry). A move carries them as one blob:
 *
 *   export   the slot's contents are written into the blob and taken out
 *            of the shard's live state in one turn: the blob is kept in the
 *            shard's table slot_parked (durable, replicated with the turn)
 *            and nothing of the slot lives here any more: no delivery, no
 *            lease expiry, no schedule tick; the clients parked in
 *            JOB.RESERVE/BLPOP on its queues are answered -TRYAGAIN. An
 *            export of a slot already parked gives the parked blob again
 *            (with anything that arrived since appended): a re-run move
 *            loses nothing.
 *   import   on the target: the slot's current contents there are removed,
 *            then the blob's are taken in, in one turn (importing the same
 *            blob twice leaves the same state). A big slot comes as several
 *            blobs (EXPORT answers an array, split between records): the
 *            first replaces, the next ones are imported with APPEND.
 *   drop     the source forgets the parked blob once the target owns the
 *            slot.
 *   restore  the source takes its parked blob back into live state (a move
 *            given up).
 *
 * Blob format 2 (integers little-endian): "SPSLOT2\n", u32 slot, u32 the
 * source's shard count (job ids name their shard: a target with another
 * count refuses), then records, each a kind byte: 'Q' queue (name, config
 * with its rate and concurrency limits, paused), 'T' the queue's totals
 * (name, u64 pushed, acked, retried, lease_expired, buried, popped,
 * expired: QUEUE.STATS) and its rate limiter's state (i64 pace in us,
 * u32 window size, u32 n, n i64 deliveries in ms, oldest first), 'J' job
 * (queue name, every field), 'S' schedule, 'K' key (name, type, expiry,
 * value / fields / members). Byte strings are u32 length (0xffffffff:
 * none) and bytes. Format 1 ("SPSLOT1\n", blobs parked by an older
 * spoold) is format 2 without 'T' records and is read as well; an older
 * spoold refuses a format 2 blob whole (the move gives the slot back).
 */
#ifndef SPOOL_CLUSTER_MOVE_H
#define SPOOL_CLUSTER_MOVE_H

#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

struct shard;
struct msg;

#define SLOTBLOB_MAGIC "SPSLOT2\n"
#define SLOTBLOB_MAGIC_1 "SPSLOT1\n" /* read too: a blob parked before format 2 */
/* EXPORT answers an array of blobs of about this many bytes of records
 * each (split between records), each small enough for one request. */
#define SLOTBLOB_CHUNK (512 * 1024)

/* SLOTMOVE EXPORT|IMPORT|DROP|RESTORE slot [blob], on the slot's shard. */
void sh_slotmove(struct shard *s, struct msg *m);

/* For tests: serializes slot's live contents on s into out (header and
 * records) without changing anything; returns the number of records. */
size_t slotblob_write(struct shard *s, int slot, resp_buf *out);
/* Takes a blob in, after removing what the slot holds here unless append:
 * 0, or -1 with err (nothing changed when the blob is malformed or made
 * for another slot or shard count). */
int slotblob_read(struct shard *s, int slot, const char *blob, size_t len, bool append, char *err, size_t cap);

#endif
