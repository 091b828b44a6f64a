/*
 * command.h - what a command is: struct command and its flags.
 *
 * Ground layer: a plain declaration that the runtimes (conn.c, io.c,
 * shard.c run m->cmd's handlers) and the command table share, so that no
 * runtime includes the table itself.
 *
 * Arity follows Redis: N means exactly N arguments (the name included),
 * -N means at least N. io() runs on the connection's I/O thread: it answers
 * at once or routes the command to shards; shard() runs on the shard that
 * owns a key; peer() runs on every I/O thread for a gathered command.
 */
#ifndef SPOOL_COMMAND_H
#define SPOOL_COMMAND_H

struct conn;
struct shard;
struct msg;
struct io_thread;

enum cmd_flags {
    CMD_NOAUTH = 1 << 0,    /* allowed before AUTH */
    CMD_WRITE = 1 << 1,     /* changes queues */
    CMD_READONLY = 1 << 2,
    CMD_BLOCKING = 1 << 3,
    CMD_LEFT = 1 << 4,      /* LPUSH/LPOP/BLPOP: work on the left end */
    CMD_FAST = 1 << 5,
    CMD_RESERVE = 1 << 6,   /* JOB.RESERVE: blocking pop that leases */
    CMD_PUBSUB = 1 << 7,    /* allowed in RESP2 subscribed mode */
    CMD_BIGREPLY = 1 << 8,  /* the reply grows with the data: runs alone (conn.c) */
    CMD_ONEPAYLOAD = 1 << 9, /* the reply holds at most one payload; with a count
                                argument (LPOP key n) it grows with the data */
    CMD_TXCTL = 1 << 10,    /* MULTI EXEC DISCARD WATCH UNWATCH QUIT RESET: run, never queued */
    CMD_DURABLE = 1 << 11,  /* read-only, but its reply reports a change (JOB.WAIT: the job
                               finished), so it leaves only once that change is on disk */
};

struct command {
    const char *name;       /* lower case */
    int arity;
    int flags;
    int first_key, last_key, key_step; /* for COMMAND; last_key -1 = last arg (-2: all but last) */
    void (*io)(struct conn *c, struct msg *m);
    void (*shard)(struct shard *s, struct msg *m);
    void (*peer)(struct io_thread *io, struct msg *m); /* gathered from every I/O thread */
    const char *summary;
};

#endif
