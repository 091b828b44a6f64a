/*
 * cmd_replica.c - a replication group's membership (cmd_replica.h).
 *
 *   REPLICA.MEMBERS               one line per member: id raft-address
 *                                 client-address role leader|- match-index,
 *                                 then "change: <the last change's state>"
 *   REPLICA.ADD id raft client    on the leader: adds a node started with
 *                                 --replica-join yes (it catches up, then votes)
 *   REPLICA.REMOVE id             on the leader: removes a member
 *   REPLICA.TRANSFER [id]         on the leader: hands the leadership to member
 *                                 id (default: the follower up to date that
 *                                 holds the most of the log); answers once
 *                                 the new leader leads, or why it did not
 *
 * ADD and REMOVE answer once the leader started the change; REPLICA.MEMBERS
 * shows when it is done (spool cluster add-replica/remove-replica wait for it).
 *
 * The Raft thread answers ADD, REMOVE, TRANSFER and CLUSTER CASMAP
 * (replica_await): the request waits in a reply slot of its connection,
 * its I/O thread serves the others meanwhile, and the answer comes back as
 * one message part per I/O thread (conn_await), so that a CASMAP's reply
 * also means every I/O thread has finished what it routed by the old map.
 */
#include "cmd_replica.h"

#include "args.h"
#include "command.h"
#include "conn.h"
#include "context.h"
#include "inbox.h"
#include "io.h"
#include "msg.h"
#include "replica.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = { "voter", "standby", "spare" };

/* ----------------------------------------------- answers of the Raft thread */

struct await {
    struct server *srv;
    struct conn *c;  /* touched only on its I/O thread (origin) */
    struct slot *sl;
    int origin;
    int kind;        /* AWAIT_* */
};

/* Every I/O thread's part of the answer: nothing to do but pass it on. */
static void await_peer(struct io_thread *io, struct msg *m)
{
    (void)io;
    (void)m;
}

static const struct command await_cmd = { .name = "replica.answer", .peer = await_peer };

static void await_finish(struct conn *c, struct slot *sl)
{
    (void)c;
    sl->out = sl->parts[0];
    resp_buf_init(&sl->parts[0]);
}

struct await *replica_await(struct conn *c, struct msg *m, int kind)
{
    if (c->capture) {
        conn_reply_error(c, m, "ERR %.*s waits for the replication group: it cannot be queued inside MULTI; send it "
                         "on its own", (int)m->req.len[0], m->req.argv[0]);
        return NULL;
    }
    struct await *a = xmalloc(sizeof *a);
    *a = (struct await){ .srv = c->io->srv, .c = c, .origin = c->io->id, .kind = kind };
    a->sl = conn_await(c, m, await_finish);
    return a;
}

void replica_answered(void *arg, int rc, const char *msg)
{
    struct await *a = arg;
    struct server *srv = a->srv;
    for (int k = 0; k < srv->nio; k++) {
        struct msg *p = msg_new(MSG_CMD);
        p->cmd = &await_cmd;
        p->origin = a->origin;
        p->conn = a->c;
        p->slot = a->sl;
        p->part = k;
        if (k == 0 && rc < 0)
            resp_add_error(&p->out, msg);
        else if (k == 0 && a->kind == AWAIT_ONE)
            resp_add_int(&p->out, 1);
        else if (k == 0)
            resp_add_simple(&p->out, a->kind == AWAIT_TEXT ? msg : "OK");
        inbox_post(ctx_inbox(srv, ctx_io(srv, k)), p);
    }
    free(a);
}

void replica_not_asked(struct await *a)
{
    replica_answered(a, -ENOMEM, "ERR out of memory; nothing changed: retry");
}

/* The group, or NULL after answering that there is none. */
static struct replica *group_of(struct conn *c, struct msg *m)
{
    struct replica *r = c->io->srv->replica;
    if (!r)
        conn_reply_error(c, m, "ERR this spoold is not in a replication group (start it with --replica-id and "
                         "--replica-peers; docs/replication.md)");
    return r;
}

void io_replica_members(struct conn *c, struct msg *m)
{
    struct replica *r = group_of(c, m);
    if (!r)
        return;
    struct replica_member v[REPLICA_MAX_PEERS];
    char status[300], line[400], heard[24];
    int n = replica_members(r, v, REPLICA_MAX_PEERS, status, sizeof status);
    resp_buf text;
    resp_buf_init(&text);
    for (int i = 0; i < n; i++) {
        if (v[i].heard_ms < 0)
            snprintf(heard, sizeof heard, "-");
        else
            snprintf(heard, sizeof heard, "%lld", (long long)v[i].heard_ms);
        snprintf(line, sizeof line, "%u %s %s %s %s %llu %s\n", v[i].id, v[i].raft_addr, v[i].client_addr,
                 role_names[v[i].role], v[i].leader ? "leader" : "-", (unsigned long long)v[i].match_index, heard);
        resp_buf_append(&text, line, strlen(line));
    }
    snprintf(line, sizeof line, "change: %s\n", status);
    resp_buf_append(&text, line, strlen(line));
    resp_add_verbatim(&m->out, c->proto, "txt", text.data, text.len);
    resp_buf_free(&text);
    conn_reply(c, m);
}

/* "host:port" with a port in 1..65535 and no '/' or space. */
static bool is_addr(const struct msg *m, int i)
{
    char buf[64];
    if (m->req.len[i] == 0 || m->req.len[i] >= sizeof buf)
        return false;
    memcpy(buf, m->req.argv[i], m->req.len[i]);
    buf[m->req.len[i]] = 0;
    const char *colon = strrchr(buf, ':');
    int port = colon ? atoi(colon + 1) : 0;
    return colon && colon != buf && port > 0 && port < 65536 && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
           !strpbrk(buf, "/ ,=");
}

static void change(struct conn *c, struct msg *m, struct replica *r, int op, long long id)
{
    char raft[64] = "", client[64] = "";
    if (op == REPLICA_ADD) {
        snprintf(raft, sizeof raft, "%.*s", (int)m->req.len[2], m->req.argv[2]);
        snprintf(client, sizeof client, "%.*s", (int)m->req.len[3], m->req.argv[3]);
    }
    struct await *a = replica_await(c, m, AWAIT_OK);
    if (a && replica_change(r, op, (unsigned)id, raft, client, replica_answered, a) < 0)
        replica_not_asked(a);
}

/* REPLICA.ADD id raft-host:port client-host:port */
void io_replica_add(struct conn *c, struct msg *m)
{
    struct replica *r = group_of(c, m);
    long long id;
    if (!r)
        return;
    if (!arg_range(m, 1, 1, 255, &id))
        conn_reply_error(c, m, "ERR REPLICA.ADD: the node id must be a number from 1 to 255 (its --replica-id)");
    else if (!is_addr(m, 2) || !is_addr(m, 3))
        conn_reply_error(c, m, "ERR REPLICA.ADD %lld: give its Raft address and its client address, each host:port "
                         "(e.g. REPLICA.ADD 4 127.0.0.1:17004 127.0.0.1:7004)", id);
    else
        change(c, m, r, REPLICA_ADD, id);
}

/* REPLICA.REMOVE id */
void io_replica_remove(struct conn *c, struct msg *m)
{
    struct replica *r = group_of(c, m);
    long long id;
    if (!r)
        return;
    if (!arg_range(m, 1, 1, 255, &id))
        conn_reply_error(c, m, "ERR REPLICA.REMOVE: the node id must be a number from 1 to 255 (REPLICA.MEMBERS "
                         "lists them)");
    else
        change(c, m, r, REPLICA_REMOVE, id);
}

/* REPLICA.TRANSFER [id] */
void io_replica_transfer(struct conn *c, struct msg *m)
{
    struct replica *r = group_of(c, m);
    long long id = 0;
    if (!r)
        return;
    if (m->req.argc > 1 && !arg_range(m, 1, 1, 255, &id)) {
        conn_reply_error(c, m, "ERR REPLICA.TRANSFER: the node id must be a number from 1 to 255 (REPLICA.MEMBERS "
                         "lists them), or none: the follower that is most up to date");
        return;
    }
    struct await *a = replica_await(c, m, AWAIT_TEXT); /* +node N leads the group now (host:port) */
    if (a && replica_transfer(r, (unsigned)id, replica_answered, a) < 0)
        replica_not_asked(a);
}
