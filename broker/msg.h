/*
 * msg.h - the one message type that crosses threads.
 *
 * Life of a command that touches queues:
 *   I/O thread: parses the request, builds a MSG_CMD (owning the argv) and
 *               posts it to the shard that owns the key.
 *   shard:      runs the command, writes the encoded reply into m->out,
 *               turns the message into MSG_REPLY and, once the turn's work
 *               is committed, posts it back to m->origin's inbox.
 *   I/O thread: puts the reply into its request slot and writes the
 *               connection's replies in request order.
 *
 * conn and slot are opaque outside the I/O thread that owns them: shards
 * carry them back, never dereference them. A job delivered by a blocking pop
 * rides back as its id in m->jobs so that, if the connection is gone by
 * then, the I/O thread can post it home again (MSG_RETURN) instead of
 * losing it.
 */
#ifndef SPOOL_MSG_H
#define SPOOL_MSG_H

#include "resp.h"

#include <stdbool.h>
#include <stdint.h>

enum msg_type {
    MSG_CONN,    /* main -> io: a new client socket in fd; io -> io with conn set: a connection moves (conn.c) */
    MSG_CMD,     /* io -> shard or io -> io: run cmd; comes back as MSG_REPLY */
    MSG_REPLY,   /* back to the origin I/O thread */
    MSG_CANCEL,  /* io -> shard: forget the waiter of claim; no reply */
    MSG_RETURN,  /* io -> shard: put delivered jobs back (their client is gone); no reply */
    MSG_PUBLISH, /* shard/io -> io: deliver a pub/sub message to local subscribers; no reply */
    MSG_STOP,    /* main -> thread: finish and leave the loop */
    MSG_SYNCED,  /* sync thread -> its shard: the WAL sync returned; num = 0 or -code */
    MSG_GATHERED, /* sync thread -> its shard: the gathering window after sync number num ended (syncer.h) */
};

/* How a blocked pop is being handled. */
enum bpop_mode {
    BPOP_NONE = 0,
    BPOP_TRY,    /* pop now from keys [key_first, key_last) or answer empty */
    BPOP_PARK,   /* pop now if any of this shard's keys has a job, else wait */
};

struct command;
struct claim;
struct job;
struct bnote;

struct msg {
    struct msg *next;
    enum msg_type type;
    int origin;                  /* I/O thread index the reply goes to */
    void *conn;                  /* opaque: owned by the origin I/O thread */
    void *slot;                  /* opaque: the request's reply slot */
    uint8_t proto;               /* RESP version for encoding the reply */
    const struct command *cmd;
    resp_cmd req;                /* owned argv */
    int part;                    /* fan-out: index of the part (shard or thread id) */
    bool whole;                  /* multi-key command whose keys all live on this shard: reply in full */
    struct msg **subs;           /* EXEC: the queued commands, in order (owned) */
    int nsubs;
    bool done;                   /* EXEC part answered on the I/O thread already (out holds it) */

    /* blocking pops */
    enum bpop_mode bmode;
    int key_first, key_last;     /* argv indices of the keys to look at */
    struct claim *claim;         /* one reference, released by the shard */
    int64_t deadline;            /* unix ms (clock_now_ms); 0 = forever */
    int count;                   /* JOB.RESERVE COUNT */
    int64_t lease;               /* JOB.RESERVE LEASE ms (0 = the job's/queue's) */
    char *who;                   /* JOB.RESERVE: "name=N addr=A id=I" of the client; owned */
    char *user;                  /* the named ACL user that sent it (NULL: default), for the checks only a
                                    shard can make: a receipt's queue, a script's redis.call; owned */
    bool empty;                  /* BPOP_TRY found nothing */

    /* results */
    resp_buf out;                /* the encoded reply, or a text part of a gather */
    long long num;               /* numeric part of a gather */
    long long keys;              /* second numeric part (INFO: keys for # Keyspace) */
    uint64_t *jobs;              /* ids of delivered jobs (see above); owned */
    int njobs;
    bool jobs_left;              /* list pop from the left end (return them there) */

    /* MSG_PUBLISH: channel in req.argv[1], message in req.argv[2] */

    int fd;                      /* MSG_CONN */
    bool tls;                    /* MSG_CONN: accepted on --tls-port */

    /* batches (batch.h) */
    bool batch_admitted;         /* JOB.PUSH … BATCH: the batch's home shard let it in */
    struct bnote *note;          /* a note between shards: one malloc block, owned */
};

struct msg *msg_new(enum msg_type type);
/* Frees the message and everything it owns (argv, out, job, job_queue);
 * drops its claim reference. */
void msg_free(struct msg *m);

#endif
