/*
 * conn.h - one client connection, owned by one I/O thread.
 *
 * Requests are parsed as bytes arrive and dispatched in order. Each request
 * whose reply is not known at once gets a slot in the connection's FIFO of
 * slots; replies are written strictly from the head of that FIFO, so a
 * pipelined client sees replies in request order even when its requests ran
 * on different shards. A reply that is known at once and has nothing ahead
 * of it is written directly.
 *
 * A connection stops parsing (leaving bytes in its input buffer, whose read
 * high-watermark then stops the socket reads) while it has a blocking
 * command outstanding (Redis semantics), while too many of its requests are
 * in flight, or while its output buffer is over the pause mark. A
 * connection closed while messages about it are still at shards stays
 * allocated, as a zombie, until the last of them has come back
 * (c->inflight == 0); jobs delivered to it meanwhile are returned.
 */
#ifndef SPOOL_CONN_H
#define SPOOL_CONN_H

#include "resp.h"

#include <stdbool.h>
#include <stdint.h>

struct io_thread;
struct msg;
struct claim;
struct command;
struct conn;
struct slot;

typedef void (*gather_fn)(struct conn *c, struct slot *sl);

enum slot_kind { SLOT_READY, SLOT_SINGLE, SLOT_GATHER, SLOT_BPOP };

struct slot {
    struct slot *next;
    enum slot_kind kind;
    bool ready;
    int pending;             /* replies still expected */
    int64_t reserved;        /* counted in conn->reserved until written out */
    resp_buf out;

    /* SLOT_GATHER */
    gather_fn finish;
    struct msg *req;         /* the original request (argv for finish) */
    long long num;           /* sum of the parts' numbers */
    long long keys;          /* sum of the parts' keys (msg.h) */
    resp_buf *parts;         /* one per target, in target order */
    int nparts;

    /* SLOT_BPOP */
    struct claim *claim;     /* while parked; the I/O thread's reference */
    int *park_shards;        /* shards holding a waiter */
    int npark;
    int key_first, key_last; /* argv range of the keys */
};

struct sub {
    char *name;
    size_t len;
};

/* A transaction of the connection (cmd_multi.c) hooks into it here, so
 * that this runtime never calls up into the command layer. The hooks are
 * set (c->tx) from MULTI or WATCH on. While a command queued inside MULTI
 * runs its own I/O handler, c->capture is set and its routing or immediate
 * reply goes to route(), gather() or reply() instead of out (each takes
 * m). closed() runs when the connection closes. */
struct conn_tx {
    void (*route)(struct conn *c, struct msg *m, int k);
    void (*gather)(struct conn *c, struct msg *m, bool to_shards);
    void (*reply)(struct conn *c, struct msg *m);
    void (*closed)(struct conn *c);
};

struct conn {
    struct io_thread *io;
    struct bufferevent *bev;         /* output and its errors */
    struct event *rev;               /* reading a plain socket: one read() per wake-up, no FIONREAD (TLS: NULL) */
    struct evbuffer *in;             /* what was read and the parser has not taken yet (TLS: the bufferevent's input) */
    bool read_paused;                /* over IN_HIGH of unparsed input: rev is off */
    struct conn *prev, *next;
    uint64_t id;
    char addr[64];
    char laddr[64];
    char *name;
    char *who;                       /* JOB.RESERVE's holder text of this connection, made at its first; NULL: not made */
    char lastcmd[24];
    char lib_name[32], lib_ver[32];
    int64_t created_ms, last_ms;     /* monotonic */
    resp_req_parser *parser;
    uint8_t proto;
    bool authed;
    bool asking;                     /* cluster mode: ASKING came just before (cmd_cluster.c) */
    bool tls;                        /* a --tls-port connection (bufferevent_openssl) */
    char user[65];                   /* ACL user (acl.h) after AUTH user pass; "" = default */
    bool closing;                    /* close once replies are flushed */
    bool closed;                     /* socket gone; zombie until inflight == 0 */
    bool paused_out;
    bool zombie;                     /* closed, waiting for in-flight replies */
    bool dirty;                      /* has output to write (in io->dirty) */
    struct conn *dirty_next;
    bool doomed;                     /* over the output limit: close at the next safe point */
    bool alone;                      /* a CMD_BIGREPLY command is in flight: parse nothing more */
    bool has_held;                   /* held: a command waiting for output room (conn.c) */
    int64_t reserved;                /* worst-case bytes of replies in flight (CMD_ONEPAYLOAD) */
    int64_t reserve_next;            /* what the next slot created reserves */
    resp_cmd held;
    const struct command *held_cmd;  /* the table entry of held */
    bool penalty;                    /* after a failed AUTH: parse nothing until penalty_ev */
    struct event *penalty_ev;
    unsigned auth_fails;
    int64_t partial_since;           /* monotonic ms: a request began arriving and is not complete */
    struct slot *slots_head, *slots_tail;
    int nslots;
    int inflight;                    /* messages expected back from other threads */
    struct slot *blocked;            /* the outstanding blocking command */
    bool blocked_counted;            /* parked, and counted in blocked_clients */
    struct sub *subs, *psubs;        /* pub/sub channels and patterns */
    size_t nsubs, npsubs;
    struct conn *sub_prev, *sub_next; /* in io->subscribers while nsubs + npsubs > 0 */
    bool sub_listed;
    const struct conn_tx *tx;        /* transaction hooks, or NULL (see struct conn_tx) */
    struct multi *multi;             /* between MULTI and EXEC/DISCARD (cmd_multi.c) */
    struct watch *watch;             /* WATCHed keys (cmd_multi.c) */
    bool capture;                    /* queueing inside MULTI: routes and replies go to tx */
    int route_shard;                 /* the shard its last commands went to (-1: none yet) */
    int route_streak;                /* how many in a row went there (conn_move_if_quiet) */
    bool route_deep;                 /* one of them with more than CONN_MOVE_DEPTH in flight */
    bool readable;                   /* conn_serve_readable: input waits */
};

/* Takes the accepted socket fd. */
/* tls: wrap fd in TLS (srv->tls_ctx, tls.h). */
struct conn *conn_new(struct io_thread *io, int fd, bool tls);
/* --colocate yes: takes over a connection that another I/O thread moved
 * here (conn_move_if_quiet), with its socket fd. */
void conn_adopt(struct io_thread *io, struct conn *c, int fd);
/* Reads and serves every plain-socket connection of io that has input
 * waiting, outside the event loop (io_serve_busy). */
void conn_serve_readable(struct io_thread *io);
/* Frees a moved connection that never arrived (its thread stopped first). */
void conn_drop_moved(struct conn *c, int fd);
/* Closes now (socket gone); frees when nothing is in flight. */
void conn_close(struct conn *c, const char *why);
/* With --colocate yes, a connection whose last CONN_MOVE_STREAK commands
 * all went to the shard of another thread, each with at most
 * CONN_MOVE_DEPTH requests in flight, moves there once it is quiet
 * (conn_move_if_quiet, after its output was written). A client that
 * pipelines deeper does not: the hops are shared by its batch. It moves
 * the other way instead: off its shard's thread while that thread uses
 * CONN_HOT_LOAD per mille of a core or more and another uses at least
 * CONN_LOAD_GAP less (ctx_thread_load), so that one core parses while the
 * other runs the shard. */
#define CONN_MOVE_STREAK 8
#define CONN_MOVE_DEPTH 2
#define CONN_HOT_LOAD 500
#define CONN_LOAD_GAP 250
/* Writes the output of every connection of io that has some (once per
 * loop callback); moves the quiet ones that should move. */
void conn_flush_dirty(struct io_thread *io);
/* While the thread stops: leaves its loop once no connection (nor zombie)
 * is left. */
void conn_stop_when_idle(struct io_thread *io);
/* Resumes parsing (after a reply unblocked or drained the connection). */
void conn_process(struct conn *c);
/* A MSG_REPLY for this connection (c may be a zombie). Takes m. */
void conn_on_reply(struct conn *c, struct msg *m);

/* ---- for command handlers on the I/O thread ---- */

/* m->out holds the reply: send it in order. Frees m. */
void conn_reply(struct conn *c, struct msg *m);
void conn_reply_error(struct conn *c, struct msg *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_reply_ok(struct conn *c, struct msg *m);
/* Writes an error reply for a request that never became a message (it
 * takes its place in the reply order). */
void conn_error_now(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends m to shard k; its reply becomes the next reply in order. */
void conn_route(struct conn *c, struct msg *m, int k);
/* Sends m to shard k; when its reply is back, finish(c, slot) writes
 * slot->out from slot->parts[0] (and slot->req, which keeps m's argv). */
void conn_route_finish(struct conn *c, struct msg *m, int k, gather_fn finish);
/* Sends m to shard k for its effect only: its reply is dropped. */
void conn_post(struct conn *c, struct msg *m, int k);
/* Sends m to the shard owning argv[i]. */
void conn_route_key(struct conn *c, struct msg *m, int i);
/* Sends a copy of m to every shard (to_shards) or every I/O thread; when all
 * parts are back, finish(c, slot) writes slot->out. Frees nothing of m until
 * then: slot->req keeps it. */
void conn_gather(struct conn *c, struct msg *m, bool to_shards, gather_fn finish);
/* A reply that another thread gives (the Raft thread: cmd_replica.c,
 * replica_await): a gather over every I/O thread, m kept as the slot's req,
 * that the other thread starts by posting one MSG_CMD part (slot = the
 * slot returned, part = k) to each I/O thread k; finish runs here once all
 * came back (the connection may have closed meanwhile: the parts keep it
 * allocated). Not inside MULTI. */
struct slot *conn_await(struct conn *c, struct msg *m, gather_fn finish);
/* A gather_fn: replies with the sum of the parts' numbers. */
void conn_finish_sum(struct conn *c, struct slot *sl);
/* Starts a blocking pop over argv[first..last) (see claim.h). */
void conn_bpop(struct conn *c, struct msg *m, int first, int last, int64_t deadline);
/* Parks a blocking request on shard k with a claim (like a pop over one
 * shard): the shard answers only if it wins the claim, and a disconnect
 * withdraws it (MSG_CANCEL). Used by JOB.WAIT. */
void conn_park(struct conn *c, struct msg *m, int k);
/* Writes b now, outside the reply order (pub/sub messages); resets b. */
void conn_write_oob(struct conn *c, resp_buf *b);
/* Closes the connection once every reply before this point is written. */
void conn_close_after_reply(struct conn *c);

/* ---- for the dispatcher (commands_dispatch), the output policy ---- */

/* Whether command k (cmd) may run now, given the replies in flight
 * (conn.c explains the policy); true for an unknown command. */
bool conn_has_room(const struct conn *c, const struct command *k, const resp_cmd *cmd);
/* Parks cmd (taking its contents) until conn_has_room allows it; the
 * connection parses nothing more meanwhile and then dispatches it again. */
void conn_hold(struct conn *c, const struct command *k, resp_cmd *cmd);
/* Around the io() handler of k: whether it runs alone, and what the slot
 * it creates reserves for its reply (CMD_ONEPAYLOAD). */
void conn_command_begin(struct conn *c, const struct command *k, int argc);
void conn_command_end(struct conn *c);

/* Limits of the request parser for this connection's auth state. */
void conn_apply_limits(struct conn *c);

/* Idle timeouts, called once a second by the I/O thread: closes a client
 * idle for `timeout` seconds (when set), one that has not authenticated
 * within CONN_UNAUTH_TIMEOUT_MS of its last command while a password is
 * required, and one whose started request has not arrived whole within
 * `request-timeout` seconds (slowly sent requests). Blocked clients,
 * subscribers and clients waiting for replies are never idle. */
#define CONN_UNAUTH_TIMEOUT_MS 10000
void conn_sweep(struct io_thread *io);

/* A failed AUTH: counted (INFO acl_access_denied_auth), and the connection
 * parses nothing more for a while: 100 ms doubling per failure up to 2 s,
 * and never sooner than its turn in a server-wide schedule of one failure
 * per CONN_AUTH_SPACING_MS, so that many connections guessing together
 * get no further than one. */
#define CONN_AUTH_SPACING_MS 10
void conn_auth_failed(struct conn *c);

#endif
