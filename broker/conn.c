/*
 * conn.c - client connections: parsing, dispatch, reply ordering, blocking
 * pops on the I/O side, and closing (see conn.h).
 */
#include "conn.h"

#include "claim.h"
#include "clock.h"
#include "command.h"
#include "context.h"
#include "hash.h"
#include "iothread.h"
#include "log.h"
#include "protect.h"
#include "tls.h"
#include "msg.h"
#include "queue.h"
#include "xalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPELINE_MAX 1024            /* requests in flight per connection */
#define OUT_PAUSE (1024 * 1024)      /* stop parsing above this much unsent output */
#define IN_HIGH (4 * 1024 * 1024)    /* stop reading the socket above this much unparsed input */

static void conn_free(struct conn *c);
static void flush_slots(struct conn *c);
static bool reap(struct conn *c);

/* ------------------------------------------------------------- output */

static void free_ref(const void *data, size_t len, void *extra)
{
    free((void *)data);
}

/* Replies collect in the output buffer; the I/O thread writes each dirty
 * connection once per callback (conn_flush_dirty), with one writev. The
 * bufferevent's write event is enabled only while a write left bytes
 * behind, so a connection that keeps up costs no epoll changes. */
static void mark_dirty(struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_next = c->io->dirty;
    c->io->dirty = c;
}

static void out_write(struct conn *c, resp_buf *b)
{
    if (c->closed || c->doomed || b->len == 0)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    mark_dirty(c);
    if (b->len >= 16384) {
        size_t n;
        char *p = resp_buf_take(b, &n);
        evbuffer_add_reference(out, p, n, free_ref, NULL);
    } else {
        evbuffer_add(out, b->data, b->len);
        resp_buf_reset(b);
    }
    size_t pending = evbuffer_get_length(out);
    if ((int64_t)pending > c->io->srv->cfg.client_output_limit && !c->doomed) {
        log_warn("client id=%llu addr=%s: output buffer over client-output-limit (%zu bytes); disconnecting it",
                 (unsigned long long)c->id, c->addr, pending);
        c->doomed = true; /* closed by the caller's caller, never under it */
        return;
    }
    if (pending > OUT_PAUSE)
        c->paused_out = true;
}

static struct slot *slot_new(struct conn *c, enum slot_kind kind)
{
    struct slot *sl = xcalloc(1, sizeof *sl);
    sl->kind = kind;
    if (c->slots_tail)
        c->slots_tail->next = sl;
    else
        c->slots_head = sl;
    c->slots_tail = sl;
    c->nslots++;
    sl->reserved = c->reserve_next;
    c->reserved += sl->reserved;
    c->reserve_next = 0;
    return sl;
}

static void slot_free(struct slot *sl)
{
    resp_buf_free(&sl->out);
    for (int i = 0; i < sl->nparts; i++)
        resp_buf_free(&sl->parts[i]);
    free(sl->parts);
    msg_free(sl->req);
    if (sl->claim)
        claim_release(sl->claim);
    free(sl->park_shards);
    free(sl);
}

/* Writes every finished slot at the head of the FIFO. */
static void flush_slots(struct conn *c)
{
    while (c->slots_head && c->slots_head->ready) {
        struct slot *sl = c->slots_head;
        c->slots_head = sl->next;
        if (!c->slots_head)
            c->slots_tail = NULL;
        c->nslots--;
        c->reserved -= sl->reserved;
        out_write(c, &sl->out);
        slot_free(sl);
    }
}

void conn_write_oob(struct conn *c, resp_buf *b)
{
    out_write(c, b);
    resp_buf_reset(b);
}

static void emit(struct conn *c, resp_buf *b)
{
    if (c->slots_head == NULL) {
        out_write(c, b);
        resp_buf_free(b);
        return;
    }
    struct slot *sl = slot_new(c, SLOT_READY);
    sl->out = *b;
    resp_buf_init(b);
    sl->ready = true;
}

void conn_reply(struct conn *c, struct msg *m)
{
    if (c->capture) {
        c->tx->reply(c, m); /* queued inside MULTI: the reply is kept for EXEC */
        return;
    }
    emit(c, &m->out);
    msg_free(m);
}

void conn_reply_error(struct conn *c, struct msg *m, const char *fmt, ...)
{
    va_list ap;
    resp_buf_reset(&m->out);
    va_start(ap, fmt);
    resp_add_verror(&m->out, fmt, ap);
    va_end(ap);
    conn_reply(c, m);
}

void conn_reply_ok(struct conn *c, struct msg *m)
{
    resp_add_simple(&m->out, "OK");
    conn_reply(c, m);
}

void conn_error_now(struct conn *c, const char *fmt, ...)
{
    resp_buf b;
    resp_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    resp_add_verror(&b, fmt, ap);
    va_end(ap);
    emit(c, &b);
}

/* ------------------------------------------------------------- routing */

static void send_to(struct conn *c, struct msg *m, int k, bool to_shard)
{
    m->type = MSG_CMD;
    m->origin = c->io->id;
    m->conn = c;
    m->proto = c->proto;
    c->inflight++;
    if (to_shard) {
        if (k == c->route_shard) {
            c->route_streak++;
        } else {
            c->route_shard = k;
            c->route_streak = 1;
            c->route_deep = false;
        }
        c->route_deep |= c->nslots > CONN_MOVE_DEPTH;
        outbox_add(&c->io->out, ctx_shard(c->io->srv, k), m);
    } else
        outbox_add(&c->io->out, ctx_io(c->io->srv, k), m);
}

#define BUSY_ERROR "BUSY a Lua script has run on this shard for longer than busy-script-time (%d ms); " \
                   "SCRIPT KILL ends it if it has not written yet, or wait for it to finish"

/* A shard busy with a long script: commands for it are answered -BUSY at
 * once instead of waiting behind it (Redis does the same after its
 * busy-reply-threshold). */
static bool refuse_busy(struct conn *c, struct msg *m, int k)
{
    if (!ctx_script_busy(c->io->srv, k))
        return false;
    conn_reply_error(c, m, BUSY_ERROR, c->io->srv->cfg.busy_script_time);
    return true;
}

void conn_route(struct conn *c, struct msg *m, int k)
{
    if (c->capture) {
        c->tx->route(c, m, k);
        return;
    }
    if (refuse_busy(c, m, k))
        return;
    struct slot *sl = slot_new(c, SLOT_SINGLE);
    sl->pending = 1;
    m->slot = sl;
    send_to(c, m, k, true);
}

void conn_post(struct conn *c, struct msg *m, int k)
{
    m->slot = NULL;
    send_to(c, m, k, true);
}

void conn_route_key(struct conn *c, struct msg *m, int i)
{
    conn_route(c, m, shard_of(m->req.argv[i], m->req.len[i], c->io->srv->nshards));
}

static struct msg *msg_copy(const struct msg *src)
{
    struct msg *m = msg_new(src->type);
    m->cmd = src->cmd;
    resp_cmd_copy(&m->req, &src->req);
    m->key_first = src->key_first;
    m->key_last = src->key_last;
    m->deadline = src->deadline;
    m->count = src->count;
    m->lease = src->lease;
    m->bmode = src->bmode;
    if (src->who)
        m->who = xstrdup(src->who);
    if (src->user)
        m->user = xstrdup(src->user);
    return m;
}

void conn_route_finish(struct conn *c, struct msg *m, int k, gather_fn finish)
{
    struct slot *sl = slot_new(c, SLOT_GATHER);
    sl->finish = finish;
    sl->req = m;
    sl->nparts = 1;
    sl->parts = xcalloc(1, sizeof *sl->parts);
    sl->pending = 1;
    struct msg *part = msg_copy(m);
    part->slot = sl;
    part->part = 0;
    part->whole = m->whole;
    send_to(c, part, k, true);
}

void conn_finish_sum(struct conn *c, struct slot *sl)
{
    (void)c;
    resp_add_int(&sl->out, sl->num);
}

/* A gather slot for n parts, m kept as its request. */
static struct slot *gather_slot(struct conn *c, struct msg *m, int n, gather_fn finish)
{
    struct slot *sl = slot_new(c, SLOT_GATHER);
    sl->finish = finish;
    sl->req = m;
    sl->nparts = n;
    sl->parts = xcalloc((size_t)n, sizeof *sl->parts);
    sl->pending = n;
    return sl;
}

void conn_gather(struct conn *c, struct msg *m, bool to_shards, gather_fn finish)
{
    if (c->capture) {
        c->tx->gather(c, m, to_shards);
        return;
    }
    int n = to_shards ? c->io->srv->nshards : c->io->srv->nio;
    for (int k = 0; to_shards && k < n; k++)
        if (refuse_busy(c, m, k))
            return;
    struct slot *sl = gather_slot(c, m, n, finish);
    for (int k = 0; k < n; k++) {
        struct msg *part = msg_copy(m);
        part->slot = sl;
        part->part = k;
        send_to(c, part, k, to_shards);
    }
}

struct slot *conn_await(struct conn *c, struct msg *m, gather_fn finish)
{
    c->inflight += c->io->srv->nio;
    return gather_slot(c, m, c->io->srv->nio, finish);
}

static void gather_part(struct conn *c, struct slot *sl, struct msg *m)
{
    sl->num += m->num;
    sl->keys += m->keys;
    if (m->part >= 0 && m->part < sl->nparts) {
        sl->parts[m->part] = m->out;
        resp_buf_init(&m->out);
    }
    msg_free(m);
    if (--sl->pending == 0) {
        sl->finish(c, sl);
        sl->ready = true;
    }
}

/* ------------------------------------------------------- blocking pops */

static int key_shard(const struct conn *c, const struct msg *m, int i)
{
    return shard_of(m->req.argv[i], m->req.len[i], c->io->srv->nshards);
}

/* Sends a TRY for the run of consecutive keys, starting at argv[from], that
 * live on the same shard. */
static void bpop_try(struct conn *c, struct slot *sl, struct msg *m, int from)
{
    int last = sl->key_last;
    int k = key_shard(c, m, from);
    int to = from + 1;
    while (to < last && key_shard(c, m, to) == k)
        to++;
    m->bmode = BPOP_TRY;
    m->key_first = from;
    m->key_last = to;
    m->empty = false;
    m->slot = sl;
    sl->pending = 1;
    send_to(c, m, k, true);
}

/* Parks the pop on every shard that owns one of its keys. */
static void bpop_park(struct conn *c, struct slot *sl, struct msg *m)
{
    int nshards = c->io->srv->nshards;
    uint8_t seen_here[256] = { 0 }; /* a shard count that fits: no allocation per pop */
    uint8_t *seen = nshards <= 256 ? seen_here : xcalloc((size_t)nshards, 1);
    sl->park_shards = xcalloc((size_t)nshards, sizeof *sl->park_shards);
    sl->npark = 0;
    for (int i = m->key_first; i < m->key_last; i++) {
        int k = key_shard(c, m, i);
        if (!seen[k]) {
            seen[k] = 1;
            sl->park_shards[sl->npark++] = k;
        }
    }
    if (seen != seen_here)
        free(seen);
    sl->claim = claim_new(nshards, 1 + sl->npark);
    sl->pending = 1;
    for (int i = 0; i < sl->npark; i++) {
        struct msg *p = (i == sl->npark - 1) ? m : msg_copy(m);
        p->bmode = BPOP_PARK;
        p->claim = sl->claim;
        p->slot = sl;
        send_to(c, p, sl->park_shards[i], true);
    }
    /* Only one reply can come back: the others are dropped by their shards. */
    c->inflight -= sl->npark - 1;
    /* Counted as blocked (INFO blocked_clients, what tests and operators
     * watch) only once the waiter is on its way to every shard: a pop
     * posted later by anyone is queued behind it. */
    outbox_flush(&c->io->out);
    if (!c->blocked_counted) {
        c->blocked_counted = true;
        atomic_fetch_add(&c->io->srv->blocked_clients, 1);
    }
}

void conn_bpop(struct conn *c, struct msg *m, int first, int last, int64_t deadline)
{
    struct slot *sl = slot_new(c, SLOT_BPOP);
    c->blocked = sl;
    sl->key_first = m->key_first = first;
    sl->key_last = m->key_last = last;
    m->deadline = deadline;
    int k = key_shard(c, m, first);
    bool one_shard = true;
    for (int i = first + 1; i < last && one_shard; i++)
        one_shard = key_shard(c, m, i) == k;
    if (one_shard)
        bpop_park(c, sl, m);
    else
        bpop_try(c, sl, m, first);
}

void conn_park(struct conn *c, struct msg *m, int k)
{
    struct slot *sl = slot_new(c, SLOT_BPOP);
    c->blocked = sl;
    sl->park_shards = xcalloc(1, sizeof *sl->park_shards);
    sl->park_shards[0] = k;
    sl->npark = 1;
    sl->claim = claim_new(c->io->srv->nshards, 2);
    sl->pending = 1;
    m->bmode = BPOP_PARK;
    m->claim = sl->claim;
    m->slot = sl;
    m->empty = false;
    send_to(c, m, k, true);
    outbox_flush(&c->io->out);
    if (!c->blocked_counted) {
        c->blocked_counted = true;
        atomic_fetch_add(&c->io->srv->blocked_clients, 1);
    }
}

static void cancel_parked(struct conn *c, struct slot *sl)
{
    for (int i = 0; i < sl->npark; i++) {
        struct msg *x = msg_new(MSG_CANCEL);
        atomic_fetch_add(&sl->claim->refs, 1);
        x->claim = sl->claim;
        outbox_add(&c->io->out, ctx_shard(c->io->srv, sl->park_shards[i]), x);
    }
}

static void unblock(struct conn *c)
{
    if (!c->blocked)
        return;
    c->blocked = NULL;
    if (c->blocked_counted)
        atomic_fetch_sub(&c->io->srv->blocked_clients, 1);
    c->blocked_counted = false;
}

static void bpop_reply(struct conn *c, struct slot *sl, struct msg *m)
{
    if (m->bmode == BPOP_TRY && m->empty) {
        resp_buf_reset(&m->out);
        if (m->key_last < sl->key_last) {
            bpop_try(c, sl, m, m->key_last);
        } else if (m->deadline < 0) {
            /* NOWAIT: every queue was empty. */
            resp_add_null_array(&sl->out, c->proto);
            msg_free(m);
            sl->ready = true;
            sl->pending = 0;
            unblock(c);
        } else {
            /* Park over every key again: each shard checks its own in order. */
            m->key_first = sl->key_first;
            m->key_last = sl->key_last;
            bpop_park(c, sl, m);
        }
        return;
    }
    if (sl->claim) {
        cancel_parked(c, sl);
        claim_release(sl->claim);
        sl->claim = NULL;
    }
    sl->out = m->out;
    resp_buf_init(&m->out);
    msg_free(m); /* the job was delivered: at-most-once, like Redis */
    sl->ready = true;
    sl->pending = 0;
    unblock(c);
}

/* --------------------------------------------------------------- replies */

/* The jobs in m were delivered to a client that has gone: send them home. */
static void return_jobs(struct conn *c, struct msg *m)
{
    struct msg *r = msg_new(MSG_RETURN);
    r->jobs = m->jobs;
    r->njobs = m->njobs;
    r->jobs_left = m->jobs_left;
    m->jobs = NULL;
    m->njobs = 0;
    outbox_add(&c->io->out, ctx_shard(c->io->srv, job_id_shard(r->jobs[0])), r);
}

/* True when the client has closed its end: checked before a blocking list
 * pop hands it a job, because the close may not have been seen yet when
 * the reply is processed first in the same loop turn, and a list pop is
 * final (at-most-once). A JOB.RESERVE delivery skips the check (a syscall
 * per delivery): if it reaches a dead socket, its lease brings it back. */
static bool peer_gone(const struct conn *c)
{
    char b;
    ssize_t r = recv(bufferevent_getfd(c->bev), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void conn_on_reply(struct conn *c, struct msg *m)
{
    c->inflight--;
    if (!c->closed && m->njobs && (m->cmd->flags & CMD_BLOCKING) && !(m->cmd->flags & CMD_RESERVE) &&
        peer_gone(c)) {
        c->inflight++; /* keep c allocated through the close */
        conn_close(c, "client closed before its delivery");
        c->inflight--;
    }
    if (c->closed) {
        if (m->njobs && (m->cmd->flags & CMD_BLOCKING))
            return_jobs(c, m);
        msg_free(m);
        if (c->inflight == 0)
            conn_free(c);
        return;
    }
    struct slot *sl = m->slot;
    if (!sl) { /* conn_post: nobody waits for this reply */
        msg_free(m);
        if (!c->closed)
            conn_process(c);
        return;
    }
    switch (sl->kind) {
    case SLOT_SINGLE:
        sl->out = m->out;
        resp_buf_init(&m->out);
        msg_free(m);
        sl->ready = true;
        break;
    case SLOT_GATHER:
        gather_part(c, sl, m);
        break;
    case SLOT_BPOP:
        bpop_reply(c, sl, m);
        break;
    case SLOT_READY:
        ASSERT(!"reply for a slot that was answered already");
    }
    flush_slots(c);
    conn_process(c);
}

/* Closes a connection that conn_process or a reply marked doomed. */
static bool reap(struct conn *c)
{
    if (c->closed)
        return true;
    if (c->doomed) {
        conn_close(c, "output limit");
        return true;
    }
    if (c->closing && !c->slots_head &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_close(c, "closed on request");
        return true;
    }
    return false;
}

/* -------------------------------------------------------------- parsing */

/* A reply that grows with the data: the command runs alone (see below). */
static bool runs_alone(const struct command *k, int argc)
{
    return (k->flags & CMD_BIGREPLY) || ((k->flags & CMD_ONEPAYLOAD) && argc > 2);
}

/* Output is bounded before it is built. Small replies may be in flight
 * together (up to PIPELINE_MAX). A reply that holds one payload (LPOP,
 * RPOP, JOB.GET: CMD_ONEPAYLOAD) reserves max-payload bytes until it is
 * written out, and such requests run side by side only while their
 * reservations stay within client-output-limit. A reply that grows with
 * the data (CMD_BIGREPLY: LRANGE, QUEUE.PEEK, QUEUE.LIST, INFO, and LPOP
 * key n) runs alone: it waits until every earlier request has been
 * answered, and nothing after it runs until its reply is in the output
 * buffer. There the soft limit (OUT_PAUSE unsent bytes) stops execution
 * until the client reads, so a client that pipelines 150 LRANGEs and
 * reads nothing holds at most OUT_PAUSE plus one reply, not 150 of them;
 * client-output-limit is the hard limit that disconnects (pub/sub
 * messages are not paused). The dispatcher (commands_dispatch) asks
 * conn_has_room before it runs a command and parks it with conn_hold when
 * there is none; conn_process runs it again once replies make room. */
static bool can_parse(const struct conn *c)
{
    return !c->closed && !c->doomed && !c->closing && !c->blocked && !c->paused_out &&
           c->nslots < PIPELINE_MAX && !(c->alone && c->nslots > 0) && !c->penalty;
}

/* Names the setting behind a size refusal of the parser. */
static const char *limit_hint(const struct conn *c, const char *err)
{
    bool pre_auth = protect_auth_required(&c->io->srv->cfg) && !c->authed;
    if (pre_auth && (strstr(err, "bulk length") || strstr(err, "too big")))
        return " (before AUTH a request may carry 16 arguments of 16 KiB at most)";
    if (strstr(err, "invalid bulk length"))
        return " (an argument may be at most proto-max-bulk-len bytes; a job payload at most max-payload)";
    if (strstr(err, "request too big"))
        return " (proto-max-request caps all arguments of one command together; push fewer jobs per command)";
    return "";
}

bool conn_has_room(const struct conn *c, const struct command *k, const resp_cmd *cmd)
{
    if (!k || c->nslots == 0)
        return true;
    if (runs_alone(k, cmd->argc))
        return false;
    return !(k->flags & CMD_ONEPAYLOAD) ||
           c->reserved + c->io->srv->cfg.max_payload <= c->io->srv->cfg.client_output_limit;
}

void conn_hold(struct conn *c, const struct command *k, resp_cmd *cmd)
{
    c->held = *cmd; /* runs when the replies before it make room */
    memset(cmd, 0, sizeof *cmd);
    c->held_cmd = k;
    c->has_held = true;
}

void conn_command_begin(struct conn *c, const struct command *k, int argc)
{
    c->alone = runs_alone(k, argc);
    c->reserve_next = (k->flags & CMD_ONEPAYLOAD) && !c->alone ? c->io->srv->cfg.max_payload : 0;
}

void conn_command_end(struct conn *c)
{
    c->reserve_next = 0; /* answered at once: nothing was in flight */
}

/* Runs the held command once there is room for its reply; false while
 * it must wait. */
static bool run_held(struct conn *c)
{
    if (!conn_has_room(c, c->held_cmd, &c->held))
        return false;
    resp_cmd cmd = c->held;
    memset(&c->held, 0, sizeof c->held);
    c->has_held = false;
    c->held_cmd = NULL;
    c->io->srv->dispatch(c, &cmd);
    return true;
}

void conn_process(struct conn *c)
{
    struct evbuffer *in = c->in;
    while (can_parse(c)) {
        if (c->has_held) {
            if (!run_held(c))
                break;
            continue;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t used = 0;
        resp_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        int rc = resp_req_feed(c->parser, v.iov_base, v.iov_len, &used, &cmd);
        evbuffer_drain(in, used);
        if (rc == RESP_OK) {
            c->partial_since = 0; /* a request arrived whole: the clock restarts */
            c->io->srv->dispatch(c, &cmd); /* or held by it (conn_hold) */
        } else if (rc == RESP_EPROTO) {
            log_info("client id=%llu addr=%s: %s; closing the connection",
                     (unsigned long long)c->id, c->addr, resp_req_error(c->parser));
            conn_error_now(c, "ERR %s%s", resp_req_error(c->parser), limit_hint(c, resp_req_error(c->parser)));
            conn_close_after_reply(c);
            break;
        } else if (used == 0) {
            break;
        }
    }
    /* a request half received while spoold waits for the client: timed
     * from the first of its bytes that came after the last whole request
     * (conn_sweep); not while spoold holds the connection back */
    if (!can_parse(c) || resp_req_pending(c->parser) == 0)
        c->partial_since = 0;
    else if (c->partial_since == 0)
        c->partial_since = clock_mono_ms();
    outbox_flush(&c->io->out);
    if (!c->closed && c->read_paused && evbuffer_get_length(in) < IN_HIGH) {
        c->read_paused = false;
        event_add(c->rev, NULL);
    }
    reap(c);
}

void conn_close_after_reply(struct conn *c)
{
    c->closing = true;
}

/* -------------------------------------------------------------- events */

/* Writes what c has to send; leaves the rest to the write event. Returns
 * true when c was paused for output and may parse again. */
static bool flush_out(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        return false;
    if (c->tls) { /* the TLS bufferevent encrypts and writes, once writing is on */
        bufferevent_enable(c->bev, EV_WRITE);
        bool resume = c->paused_out && evbuffer_get_length(out) <= OUT_PAUSE / 4;
        if (resume)
            c->paused_out = false;
        return resume;
    }
    /* A socket bufferevent keeps its output frozen at the front so that only
     * it drains it; write the way its own write callback does. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    int err = errno;
    evbuffer_freeze(out, 1);
    if (n < 0 && err != EAGAIN && err != EINTR) {
        c->doomed = true; /* the socket is gone; the read side will say so too */
        return false;
    }
    size_t left = evbuffer_get_length(out);
    if (left)
        bufferevent_enable(c->bev, EV_WRITE);
    if (c->paused_out && left <= OUT_PAUSE / 4) {
        c->paused_out = false;
        return true;
    }
    return false;
}

void conn_stop_when_idle(struct io_thread *io)
{
    if (io->stopping && io->nconns == 0 && io->nzombies == 0)
        io_leave(io);
}

static void conn_move_if_quiet(struct conn *c);

void conn_flush_dirty(struct io_thread *io)
{
    while (io->dirty) {
        struct conn *c = io->dirty;
        io->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->closed)
            continue;
        if (flush_out(c))
            conn_process(c); /* may list c again, and ends with reap() */
        else if (!reap(c))
            conn_move_if_quiet(c);
    }
}

/* ------------------------------------------------------------- moving */

/* Nothing of c is anywhere but in c itself: no reply due or in flight
 * (so no shard holds a message naming it), no output left, not blocked,
 * subscribed, in MULTI or WATCHing, no held command or AUTH penalty, and
 * a plain socket (a TLS session stays where its bufferevent is). */
static bool conn_quiet(const struct conn *c)
{
    return !c->closed && !c->closing && !c->doomed && !c->tls && c->inflight == 0 && !c->slots_head &&
           !c->blocked && !c->has_held && !c->penalty && !c->penalty_ev && !c->read_paused && !c->paused_out &&
           !c->alone && !c->dirty && !c->sub_listed && c->nsubs + c->npsubs == 0 && !c->multi && !c->watch &&
           !c->capture && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

static void link_conn(struct io_thread *io, struct conn *c)
{
    c->prev = NULL;
    c->next = io->conns;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    io->nconns++;
}

static void unlink_conn(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->io->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->io->nconns--;
}

/* Where a client that pipelines deep to shard k should be: not on shard
 * k's thread while that thread is busy (CONN_HOT_LOAD) and another is at
 * least CONN_LOAD_GAP less busy; then the least busy other one, so the
 * parsing of its batches runs beside the shard's work, not in its turns.
 * -1: where it is. */
static int deep_home(const struct conn *c, int k)
{
    const struct server *srv = c->io->srv;
    int hot = ctx_thread_load(srv, k);
    if (k != c->io->id || hot < CONN_HOT_LOAD)
        return -1;
    int best = -1, best_load = hot - CONN_LOAD_GAP;
    for (int j = 0; j < srv->nio; j++) {
        int load = ctx_thread_load(srv, j);
        if (j != k && load <= best_load) {
            best = j;
            best_load = load;
        }
    }
    return best;
}

/* The thread c should move to, or -1. A client with at most
 * CONN_MOVE_DEPTH requests in flight goes to its shard's thread; one that
 * pipelines deeper goes off a busy shard's thread (deep_home), and its
 * streak starts again after each batch. */
static int move_target(struct conn *c)
{
    int k = c->route_shard;
    if (c->route_streak < CONN_MOVE_STREAK)
        return -1;
    if (c->route_deep) {
        c->route_streak = 0;
        c->route_deep = false;
        return deep_home(c, k);
    }
    return k == c->io->id ? -1 : k;
}

/* --colocate yes: if c is quiet and should be on another thread
 * (move_target: its shard's, so that its next commands run there without
 * a hop; or, pipelining deep, off its busy shard's), it moves there. Its
 * events go (the socket stays open); the rest of c, unparsed input
 * included, rides in a MSG_CONN; thread k makes new events (conn_adopt). */
static void conn_move_if_quiet(struct conn *c)
{
    struct io_thread *io = c->io;
    if (!io->colocated || io->stopping || !conn_quiet(c))
        return;
    int k = move_target(c);
    if (k < 0)
        return;
    int fd = bufferevent_getfd(c->bev);
    event_free(c->rev);
    c->rev = NULL;
    bufferevent_setfd(c->bev, -1); /* so that freeing it leaves the socket open */
    bufferevent_free(c->bev);
    c->bev = NULL;
    unlink_conn(c);
    c->route_streak = 0;
    atomic_fetch_add(&io->srv->moved_connections, 1);
    log_debug("client id=%llu addr=%s moves to thread %d (its commands go to shard %d)", (unsigned long long)c->id,
              c->addr, k, c->route_shard);
    struct msg *m = msg_new(MSG_CONN);
    m->fd = fd;
    m->conn = c;
    inbox_post(ctx_inbox(io->srv, ctx_io(io->srv, k)), m);
}

#define READ_CHUNK 16384 /* bytes per read(), as libevent's bufferevents read */

/* The socket is readable: one read() into the input buffer, then parse.
 * (A socket bufferevent would first ask ioctl(FIONREAD) how much there
 * is: a syscall per read that this saves.) Above IN_HIGH of unparsed
 * input, reading pauses until conn_process has drained it. */
static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct io_thread *io = c->io;
    struct evbuffer *in = c->in;
    if (evbuffer_get_length(in) >= IN_HIGH) {
        c->read_paused = true;
        event_del(c->rev);
        return;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(in, READ_CHUNK, &v, 1) < 1)
        return;
    ssize_t n = read(fd, v.iov_base, v.iov_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(c, n == 0 ? "client closed" : "socket error");
        conn_flush_dirty(io);
        return;
    }
    v.iov_len = (size_t)n;
    evbuffer_commit_space(in, &v, 1);
    conn_process(c);
    conn_flush_dirty(io);
}

/* Marks the readable ones first (poll, no callback runs meanwhile), then
 * serves one marked connection at a time, looking it up in the live list
 * each time: serving one may close and free others. */
void conn_serve_readable(struct io_thread *io)
{
    size_t n = 0;
    for (struct conn *c = io->conns; c; c = c->next)
        n += c->rev != NULL;
    if (n == 0)
        return;
    struct pollfd *pf = xcalloc(n, sizeof *pf);
    size_t i = 0;
    for (struct conn *c = io->conns; c && i < n; c = c->next)
        if (c->rev)
            pf[i++] = (struct pollfd){ .fd = event_get_fd(c->rev), .events = POLLIN };
    int ready = poll(pf, (nfds_t)n, 0);
    i = 0;
    for (struct conn *c = io->conns; c && i < n && ready > 0; c = c->next)
        if (c->rev)
            c->readable = (pf[i++].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    free(pf);
    for (;;) {
        struct conn *c = io->conns;
        while (c && !c->readable)
            c = c->next;
        if (!c)
            break;
        c->readable = false;
        read_cb(event_get_fd(c->rev), EV_READ, c);
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    if (pending == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (reap(c))
        return;
    if (c->paused_out && pending <= OUT_PAUSE / 4) {
        struct io_thread *io = c->io;
        c->paused_out = false;
        conn_process(c);
        conn_flush_dirty(io);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_close(c, (what & BEV_EVENT_EOF) ? "client closed" : "socket error");
}

void conn_apply_limits(struct conn *c)
{
    struct config *cfg = &c->io->srv->cfg;
    resp_limits lim = resp_limits_default();
    lim.max_bulk = (uint64_t)cfg->proto_max_bulk_len;
    lim.max_request = (uint64_t)cfg->proto_max_request;
    if (protect_auth_required(cfg) && !c->authed) {
        /* Before AUTH a client gets only what AUTH/HELLO need. */
        lim.max_args = 16;
        lim.max_bulk = 16384;
        lim.max_inline = 16384;
        lim.max_request = 65536;
    }
    resp_req_set_limits(c->parser, &lim);
}

/* ------------------------------------------------------------- timeouts */

static bool idle_exempt(const struct conn *c)
{
    return c->closed || c->blocked || c->nsubs || c->npsubs || c->nslots || c->inflight;
}

void conn_sweep(struct io_thread *io)
{
    const struct config *cfg = &io->srv->cfg;
    int64_t now = clock_mono_ms();
    for (struct conn *c = io->conns, *next; c; c = next) {
        next = c->next;
        if (idle_exempt(c))
            continue;
        int64_t idle = now - c->last_ms;
        const char *why = NULL;
        if (!c->authed && idle >= CONN_UNAUTH_TIMEOUT_MS)
            why = "not authenticated within 10 s";
        else if (cfg->timeout > 0 && idle >= (int64_t)cfg->timeout * 1000)
            why = "idle timeout";
        if (!why && !c->closing && c->partial_since && cfg->request_timeout > 0 &&
            now - c->partial_since >= (int64_t)cfg->request_timeout * 1000) {
            log_info("client id=%llu addr=%s: request not complete within %d s; closing the connection",
                     (unsigned long long)c->id, c->addr, cfg->request_timeout);
            atomic_fetch_add(&io->srv->idle_closed, 1);
            conn_error_now(c, "ERR request not complete within %d s (request-timeout); closing the connection",
                      cfg->request_timeout);
            conn_close_after_reply(c); /* once the error is written (below) */
            continue;
        }
        if (!why)
            continue;
        log_info("client id=%llu addr=%s: %s; closing the connection", (unsigned long long)c->id, c->addr, why);
        atomic_fetch_add(&io->srv->idle_closed, 1);
        conn_close(c, why);
    }
    conn_flush_dirty(io);
}

/* ------------------------------------------------------------ AUTH delay */

static void penalty_over(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct io_thread *io = c->io;
    c->penalty = false;
    if (c->closed)
        return;
    conn_process(c);
    conn_flush_dirty(io);
}

/* The wait before the server-wide schedule allows another failure. */
static int64_t global_turn(struct server *srv, int64_t now)
{
    int64_t prev = atomic_load(&srv->auth_next_slot), next;
    do
        next = (prev > now ? prev : now) + CONN_AUTH_SPACING_MS;
    while (!atomic_compare_exchange_weak(&srv->auth_next_slot, &prev, next));
    return next - CONN_AUTH_SPACING_MS - now;
}

void conn_auth_failed(struct conn *c)
{
    struct server *srv = c->io->srv;
    atomic_fetch_add(&srv->auth_failures, 1);
    c->auth_fails++;
    int64_t delay = 100LL << (c->auth_fails > 5 ? 5 : c->auth_fails - 1);
    if (delay > 2000)
        delay = 2000;
    int64_t turn = global_turn(srv, clock_mono_ms());
    if (turn > delay)
        delay = turn;
    if (!c->penalty_ev)
        c->penalty_ev = evtimer_new(c->io->base, penalty_over, c);
    if (!c->penalty_ev)
        return;
    struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
    c->penalty = true;
    event_add(c->penalty_ev, &tv);
}

static void format_addr(int fd, char *out, size_t n, bool local)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int rc = local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
                   : getpeername(fd, (struct sockaddr *)&ss, &sl);
    snprintf(out, n, "?");
    if (rc < 0)
        return;
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, n, "%s:%d", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, n, "[%s]:%d", host, ntohs(a->sin6_port));
    }
}

/* TLS: the bufferevent reads and decrypts into its input buffer. */
static void tls_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    conn_process(c);
    conn_flush_dirty(c->io);
}

/* The bufferevent writes and reports errors. A plain socket is read by
 * read_cb into c->in; a TLS one by the bufferevent, whose input is c->in.
 * False when out of memory. */
static bool setup_reading(struct conn *c, int fd)
{
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_PAUSE / 4, 0);
    if (c->tls) {
        c->in = bufferevent_get_input(c->bev);
        bufferevent_setcb(c->bev, tls_read_cb, write_cb, event_cb, c);
        bufferevent_setwatermark(c->bev, EV_READ, 0, IN_HIGH);
        bufferevent_enable(c->bev, EV_READ); /* EV_WRITE only while output is left over */
        return true;
    }
    c->rev = event_new(c->io->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    if (!c->in) /* a moved connection brings its unparsed input along */
        c->in = evbuffer_new();
    if (!c->rev || !c->in) {
        if (c->rev)
            event_free(c->rev);
        c->rev = NULL;
        return false;
    }
    bufferevent_setcb(c->bev, NULL, write_cb, event_cb, c);
    bufferevent_disable(c->bev, EV_READ); /* EV_WRITE only while output is left over */
    event_add(c->rev, NULL);
    return true;
}

struct conn *conn_new(struct io_thread *io, int fd, bool tls)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->io = io;
    c->id = atomic_fetch_add(&io->srv->next_client_id, 1) + 1;
    c->proto = 2;
    c->authed = !protect_auth_required(&io->srv->cfg);
    c->created_ms = c->last_ms = clock_mono_ms();
    format_addr(fd, c->addr, sizeof c->addr, false);
    format_addr(fd, c->laddr, sizeof c->laddr, true);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->parser = resp_req_new(NULL);
    c->route_shard = -1;
    conn_apply_limits(c);
    c->tls = tls;
    c->bev = tls ? tls_bufferevent_new(io->base, fd, io->srv->tls_ctx)
                 : bufferevent_socket_new(io->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev || !c->parser) {
        log_error("cannot set up a connection from %s: out of memory", c->addr);
        if (c->bev)
            bufferevent_free(c->bev);
        else if (!tls)
            evutil_closesocket(fd); /* tls_bufferevent_new closed it */
        resp_req_free(c->parser);
        free(c);
        return NULL;
    }
    if (!setup_reading(c, fd)) {
        log_error("cannot set up a connection from %s: out of memory", c->addr);
        if (c->in)
            evbuffer_free(c->in);
        bufferevent_free(c->bev);
        resp_req_free(c->parser);
        free(c);
        return NULL;
    }
    link_conn(io, c);
    atomic_fetch_add(&io->srv->connected_clients, 1);
    atomic_fetch_add(&io->srv->total_connections, 1);
    log_debug("client id=%llu connected from %s", (unsigned long long)c->id, c->addr);
    return c;
}

void conn_drop_moved(struct conn *c, int fd)
{
    if (fd >= 0)
        close(fd);
    if (c->in)
        evbuffer_free(c->in);
    atomic_fetch_sub(&c->io->srv->connected_clients, 1);
    resp_req_free(c->parser);
    resp_cmd_free(&c->held);
    free(c->name);
    free(c->who);
    free(c);
}

void conn_adopt(struct io_thread *io, struct conn *c, int fd)
{
    c->io = io;
    c->bev = bufferevent_socket_new(io->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev || !setup_reading(c, fd)) {
        log_error("client id=%llu addr=%s: cannot move it to thread %d: out of memory; closing it",
                  (unsigned long long)c->id, c->addr, io->id);
        if (c->bev) {
            bufferevent_free(c->bev); /* closes fd */
            fd = -1;
        }
        conn_drop_moved(c, fd);
        return;
    }
    link_conn(io, c);
    if (io->stopping)
        conn_close(c, "server shutting down");
    else if (evbuffer_get_length(c->in) > 0)
        conn_process(c); /* bytes that came with it */
}

void conn_close(struct conn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = true;
    log_debug("client id=%llu addr=%s: %s", (unsigned long long)c->id, c->addr, why);
    if (c->penalty_ev) {
        event_free(c->penalty_ev);
        c->penalty_ev = NULL;
    }
    struct slot *sl = c->blocked;
    if (sl && sl->claim && claim_take(sl->claim)) {
        /* Nobody will answer the parked pop now: withdraw it. */
        cancel_parked(c, sl);
        c->inflight--;
    }
    unblock(c);
    c->io->conn_gone(c);
    if (c->tx)
        c->tx->closed(c); /* may post an UNWATCH to a shard: c stays a zombie until it is back */
    if (c->rev) { /* a plain socket: c->in is ours (a TLS one's is the bufferevent's) */
        event_free(c->rev);
        evbuffer_free(c->in);
    }
    c->rev = NULL;
    c->in = NULL;
    bufferevent_free(c->bev);
    c->bev = NULL;
    unlink_conn(c);
    atomic_fetch_sub(&c->io->srv->connected_clients, 1);
    outbox_flush(&c->io->out);
    if (c->inflight == 0) {
        conn_free(c);
    } else {
        c->zombie = true;
        c->io->nzombies++;
    }
}

static void conn_free(struct conn *c)
{
    struct io_thread *io = c->io;
    if (c->zombie)
        io->nzombies--;
    for (struct conn **pp = &io->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    while (c->slots_head) {
        struct slot *sl = c->slots_head;
        c->slots_head = sl->next;
        slot_free(sl);
    }
    resp_req_free(c->parser);
    resp_cmd_free(&c->held);
    free(c->name);
    free(c->who);
    free(c);
    conn_stop_when_idle(io);
}
