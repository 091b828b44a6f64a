/*
 * cmd_cluster.c - routing by slot and the CLUSTER commands (see
 * cmd_cluster.h and docs/cluster.md).
 */
#include "cmd_cluster.h"

#include "args.h"
#include "cluster.h"
#include "cmd_multi.h"
#include "cmd_replica.h"
#include "conn.h"
#include "context.h"
#include "dict.h"
#include "io.h"
#include "msg.h"
#include "queue.h"
#include "replica.h"
#include "shard.h"
#include "slot.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ key specs */

/* Commands whose keys the table does not declare (job ids and receipts
 * are keys for routing, not for ACL key patterns), and those whose keys
 * move (COMMAND's "movablekeys": clients ask COMMAND GETKEYS). */
static const struct {
    const char *name;
    int first, last, step;
    bool movable, ids;
} specs[] = {
    { "job.ack", 1, 1, 1, false, true },   /* the first receipt routes; all must share its slot */
    { "job.del", 1, -1, 1, false, true },
    { "job.nack", 1, 1, 1, false, true },
    { "job.touch", 1, 1, 1, false, true },
    { "job.get", 1, 1, 1, false, true },
    { "job.progress", 1, 1, 1, false, true },
    { "job.wait", 1, 1, 1, false, true },
    { "job.retry", 1, 1, 1, false, true },
    { "sched.list", 1, 1, 1, false, false }, /* SCHED.LIST [queue]: the queue's node has its schedules */
    { "job.reserve", 0, 0, 0, true, false },
    { "eval", 0, 0, 0, true, false },
    { "evalsha", 0, 0, 0, true, false },
    { "eval_ro", 0, 0, 0, true, false },
    { "evalsha_ro", 0, 0, 0, true, false },
};

static int spec_of(const struct command *k)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (!strcmp(specs[i].name, k->name))
            return (int)i;
    return -1;
}

void cluster_key_spec(const struct command *k, int *first, int *last, int *step, bool *movable)
{
    int i = spec_of(k);
    *first = i >= 0 ? specs[i].first : k->first_key;
    *last = i >= 0 ? specs[i].last : k->last_key;
    *step = i >= 0 ? specs[i].step : k->key_step;
    *movable = i >= 0 && specs[i].movable;
}

static bool word_is(const resp_cmd *cmd, int i, const char *w)
{
    return i < cmd->argc && cmd->len[i] == strlen(w) && !strncasecmp(cmd->argv[i], w, cmd->len[i]);
}

static void range_keys(const resp_cmd *cmd, int first, int last, int step, int *idx, int *n)
{
    if (last < 0)
        last = cmd->argc + last;
    for (int i = first; first > 0 && step > 0 && i <= last && i < cmd->argc && *n < CLUSTER_MAX_KEYS; i += step)
        idx[(*n)++] = i;
}

void cluster_command_keys(const struct command *k, const resp_cmd *cmd, int *idx, int *n)
{
    *n = 0;
    if (!strcmp(k->name, "job.reserve")) {
        int i = 1;
        while (i < cmd->argc && !word_is(cmd, i, "FROM"))
            i++;
        range_keys(cmd, i + 1, -1, 1, idx, n);
    } else if (!strncmp(k->name, "eval", 4)) {
        long long nk = 0;
        if (cmd->argc > 2 && resp_parse_ll(cmd->argv[2], cmd->len[2], &nk) == 0 && nk > 0 && nk <= cmd->argc - 3)
            range_keys(cmd, 3, 2 + (int)nk, 1, idx, n);
    } else if (!strcmp(k->name, "job.ack")) {
        range_keys(cmd, 1, word_is(cmd, 2, "RESULT") ? 1 : -1, 1, idx, n);
    } else {
        int first, last, step;
        bool movable;
        cluster_key_spec(k, &first, &last, &step, &movable);
        range_keys(cmd, first, last, step, idx, n);
    }
}

/* ------------------------------------------------------------- routing */

/* JOB.PUSH … BATCH id and BATCH.*: a batch counts its jobs on the shards
 * of one node, so cluster mode has none yet (docs/cluster.md). */
static bool uses_batch(const struct command *k, const resp_cmd *cmd)
{
    if (!strncmp(k->name, "batch.", 6))
        return true;
    if (strcmp(k->name, "job.push"))
        return false;
    for (int i = 3; i < cmd->argc; i += 2)
        if (word_is(cmd, i, "BATCH"))
            return true;
    return false;
}

/* The one slot of cmd's keys: -1 none (or only untagged ids), -2 the keys
 * hash to different slots. */
static int command_slot(const struct command *k, const resp_cmd *cmd)
{
    int idx[CLUSTER_MAX_KEYS], n, slot = -1, sp = spec_of(k);
    bool ids = sp >= 0 && specs[sp].ids;
    cluster_command_keys(k, cmd, idx, &n);
    for (int i = 0; i < n; i++) {
        const char *a = cmd->argv[idx[i]];
        if (ids && (cmd->len[idx[i]] == 0 || a[0] != '{'))
            continue; /* an id without its tag: served where it is asked */
        int s = slot_of(a, cmd->len[idx[i]]);
        if (slot >= 0 && s != slot)
            return -2;
        slot = s;
    }
    return slot;
}

static bool refuse(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool refuse(struct conn *c, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    multi_flag_error(c);
    conn_error_now(c, "%s", text);
    return false;
}

bool cluster_admit(struct conn *c, const struct command *k, const resp_cmd *cmd)
{
    struct cluster *cl = c->io->srv->cluster;
    bool asking = c->asking;
    c->asking = false;
    if (!cl)
        return true;
    if (uses_batch(k, cmd))
        return refuse(c, "ERR batches are not available in cluster mode yet (docs/cluster.md): push the jobs "
                      "without BATCH");
    int slot = command_slot(k, cmd);
    if (slot == -2)
        return refuse(c, "CROSSSLOT Keys in request don't hash to the same slot");
    if (slot < 0)
        return true;
    const struct cluster_map *m = cluster_current(cl);
    const struct cluster_node *to;
    switch (cluster_route(cl, m, slot, asking, &to)) {
    case ROUTE_SERVE:
        return true;
    case ROUTE_MOVED:
        return refuse(c, "MOVED %d %s:%d", slot, to->host, to->port);
    case ROUTE_ASK:
        return refuse(c, "ASK %d %s:%d", slot, to->host, to->port);
    case ROUTE_TRYAGAIN:
        return refuse(c, "TRYAGAIN slot %d is being moved to another group; try again shortly", slot);
    case ROUTE_NOLEADER:
        return refuse(c, "CLUSTERDOWN no leader in this replication group (election running); retry");
    case ROUTE_DOWN:
        break;
    }
    return refuse(c, "CLUSTERDOWN Hash slot not served (slot %d has no group in this node's map%s)", slot,
                  m ? "" : ": no map yet, see spool cluster create");
}

/* ASKING: the next command may use a slot moving to this node. */
void io_asking(struct conn *c, struct msg *m)
{
    if (!c->io->srv->cluster) {
        conn_reply_error(c, m, "ERR This instance has cluster support disabled");
        return;
    }
    c->asking = true;
    conn_reply_ok(c, m);
}

/* READONLY / READWRITE: accepted; a group's followers do not serve reads. */
void io_readonly(struct conn *c, struct msg *m)
{
    if (!c->io->srv->cluster)
        conn_reply_error(c, m, "ERR This instance has cluster support disabled");
    else
        conn_reply_ok(c, m);
}

/* ------------------------------------------------------ CLUSTER replies */

/* The node that serves group g: its leader now, else the map's. */
static const struct cluster_node *serving(const struct cluster *cl, const struct cluster_map *m, int g)
{
    int l = cluster_leader(cl, m, g);
    return &m->groups[g].nodes[l >= 0 ? l : m->groups[g].leader];
}

/* [host, port, id, {}] */
static void add_slot_node(resp_buf *b, int proto, const struct cluster_node *n)
{
    resp_add_array(b, 4);
    resp_add_cstr(b, n->host);
    resp_add_int(b, n->port);
    resp_add_cstr(b, n->id);
    resp_add_map(b, proto, 0);
}

/* CLUSTER SLOTS: one entry per run of slots of one group, in slot order. */
static void cluster_slots(const struct cluster *cl, const struct cluster_map *m, resp_buf *b, int proto)
{
    size_t runs = 0;
    for (int s = 0; s < SLOT_COUNT; s++)
        runs += m->owner[s] >= 0 && (s == 0 || m->owner[s - 1] != m->owner[s]);
    resp_add_array(b, runs);
    for (int s = 0; s < SLOT_COUNT;) {
        int e = s, g = m->owner[s];
        while (e + 1 < SLOT_COUNT && m->owner[e + 1] == g)
            e++;
        if (g >= 0) {
            const struct cluster_group *gr = &m->groups[g];
            const struct cluster_node *lead = serving(cl, m, g);
            resp_add_array(b, 2 + (size_t)gr->nnodes);
            resp_add_int(b, s);
            resp_add_int(b, e);
            add_slot_node(b, proto, lead);
            for (int i = 0; i < gr->nnodes; i++)
                if (&gr->nodes[i] != lead)
                    add_slot_node(b, proto, &gr->nodes[i]);
        }
        s = e + 1;
    }
}

static void add_shard_node(resp_buf *b, int proto, const struct cluster_node *n, bool leads)
{
    resp_add_map(b, proto, 7);
    resp_add_cstr(b, "id");
    resp_add_cstr(b, n->id);
    resp_add_cstr(b, "port");
    resp_add_int(b, n->port);
    resp_add_cstr(b, "ip");
    resp_add_cstr(b, n->host);
    resp_add_cstr(b, "endpoint");
    resp_add_cstr(b, n->host);
    resp_add_cstr(b, "role");
    resp_add_cstr(b, leads ? "master" : "replica");
    resp_add_cstr(b, "replication-offset");
    resp_add_int(b, 0);
    resp_add_cstr(b, "health");
    resp_add_cstr(b, "online");
}

/* CLUSTER SHARDS: one map per group: its slot ranges and its nodes. */
static void cluster_shards(const struct cluster *cl, const struct cluster_map *m, resp_buf *b, int proto)
{
    int (*ranges)[2] = xmalloc(sizeof *ranges * SLOT_COUNT);
    resp_add_array(b, (size_t)m->ngroups);
    for (int g = 0; g < m->ngroups; g++) {
        int nr = cluster_group_ranges(m, g, ranges, SLOT_COUNT);
        const struct cluster_node *lead = serving(cl, m, g);
        resp_add_map(b, proto, 2);
        resp_add_cstr(b, "slots");
        resp_add_array(b, 2 * (size_t)nr);
        for (int i = 0; i < nr; i++) {
            resp_add_int(b, ranges[i][0]);
            resp_add_int(b, ranges[i][1]);
        }
        resp_add_cstr(b, "nodes");
        resp_add_array(b, (size_t)m->groups[g].nnodes);
        add_shard_node(b, proto, lead, true);
        for (int i = 0; i < m->groups[g].nnodes; i++)
            if (&m->groups[g].nodes[i] != lead)
                add_shard_node(b, proto, &m->groups[g].nodes[i], false);
    }
    free(ranges);
}

/* The slots of group g as CLUSTER NODES writes them: "0-5460 5462". */
static void add_node_slots(resp_buf *b, const struct cluster_map *m, int g)
{
    int (*ranges)[2] = xmalloc(sizeof *ranges * SLOT_COUNT);
    int nr = cluster_group_ranges(m, g, ranges, SLOT_COUNT);
    for (int i = 0; i < nr; i++) {
        if (ranges[i][0] == ranges[i][1])
            resp_buf_printf(b, " %d", ranges[i][0]);
        else
            resp_buf_printf(b, " %d-%d", ranges[i][0], ranges[i][1]);
    }
    free(ranges);
}

/* Slots moving out of or into group g, as Redis shows them on its own
 * line: [slot->-target id] and [slot-<-source id]. */
static void add_node_moves(const struct cluster *cl, resp_buf *b, const struct cluster_map *m, int g)
{
    for (int s = 0; s < SLOT_COUNT; s++) {
        if (m->move_to[s] < 0)
            continue;
        if (m->owner[s] == g)
            resp_buf_printf(b, " [%d->-%s]", s, serving(cl, m, m->move_to[s])->id);
        else if (m->move_to[s] == g)
            resp_buf_printf(b, " [%d-<-%s]", s, serving(cl, m, m->owner[s])->id);
    }
}

/* CLUSTER NODES: "<id> <host>:<port>@0 <flags> <leader|-> 0 0 <epoch>
 * connected <slots>" per node (no cluster bus: its port is 0). */
static void cluster_nodes(const struct cluster *cl, const struct cluster_map *m, resp_buf *b)
{
    for (int g = 0; g < m->ngroups; g++) {
        const struct cluster_node *lead = serving(cl, m, g);
        for (int i = 0; i < m->groups[g].nnodes; i++) {
            const struct cluster_node *n = &m->groups[g].nodes[i];
            bool me = !strcmp(n->id, cl->myid);
            resp_buf_printf(b, "%s %s:%d@0 %s%s %s 0 0 %llu connected", n->id, n->host, n->port, me ? "myself," : "",
                            n == lead ? "master" : "slave", n == lead ? "-" : lead->id,
                            (unsigned long long)m->epoch);
            if (n == lead)
                add_node_slots(b, m, g);
            if (n == lead && me)
                add_node_moves(cl, b, m, g);
            resp_buf_append(b, "\n", 1);
        }
    }
}

/* CLUSTER INFO, Redis's fields (no cluster bus: its message counts are 0). */
static void cluster_info(const struct cluster *cl, const struct cluster_map *m, resp_buf *b)
{
    int assigned = 0, ok = 0, nodes = 0, size = 0;
    for (int s = 0; m && s < SLOT_COUNT; s++) {
        assigned += m->owner[s] >= 0;
        ok += m->owner[s] >= 0 && cluster_leader(cl, m, m->owner[s]) >= 0;
    }
    for (int g = 0; m && g < m->ngroups; g++) {
        int r[1][2];
        nodes += m->groups[g].nnodes;
        size += cluster_group_ranges(m, g, r, 1) > 0;
    }
    int mine = m ? cluster_my_group(cl, m) : -1;
    resp_buf_printf(b, "cluster_state:%s\r\ncluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n"
                    "cluster_slots_pfail:0\r\ncluster_slots_fail:%d\r\ncluster_known_nodes:%d\r\ncluster_size:%d\r\n"
                    "cluster_current_epoch:%llu\r\ncluster_my_epoch:%llu\r\ncluster_stats_messages_sent:0\r\n"
                    "cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
                    ok == SLOT_COUNT ? "ok" : "fail", assigned, ok, assigned - ok, nodes ? nodes : 1, size,
                    m ? (unsigned long long)m->epoch : 0ULL, mine >= 0 ? (unsigned long long)m->epoch : 0ULL);
}

/* ------------------------------------------------------ CLUSTER command */

static bool slot_arg(struct conn *c, struct msg *m, int i, long long *slot)
{
    if (arg_range(m, i, 0, SLOT_COUNT - 1, slot))
        return true;
    conn_reply_error(c, m, "ERR Invalid slot");
    return false;
}

static void finish_setmap(struct conn *c, struct slot *sl)
{
    (void)c;
    resp_add_int(&sl->out, 1);
}

/* CLUSTER SETMAP json: installs the map if its epoch is newer, then waits
 * until every I/O thread has finished the commands it routed by the old
 * one (a round of messages), so a reply means the new map is in force.
 * spool cluster sends it a map the first group committed. A replicated
 * node of that group takes maps from its Raft log only. */
static void cluster_setmap(struct conn *c, struct msg *m)
{
    char err[512];
    struct cluster *cl = c->io->srv->cluster;
    const struct cluster_map *cur = cluster_current(cl);
    if (c->io->srv->replica && cur && cluster_my_group(cl, cur) == 0) {
        conn_reply_error(c, m, "ERR cluster map refused: this node is in %s, the replicated group that keeps the "
                         "slot map; it takes maps from its Raft log only: change the map with CLUSTER CASMAP on "
                         "its leader (spool cluster does)", cur->groups[0].name);
        return;
    }
    int rc = cluster_install(cl, m->req.argv[2], m->req.len[2], err, sizeof err);
    if (rc < 0) {
        conn_reply_error(c, m, "ERR cluster map refused: %s", err);
    } else if (rc == 0) {
        resp_add_int(&m->out, 0);
        conn_reply(c, m);
    } else {
        conn_gather(c, m, false, finish_setmap);
    }
}

/* Why this node does not take CLUSTER CASMAP (NULL: it does): it is not
 * in the first group of its map, which keeps the map. */
static const char *casmap_refusal(const struct cluster *cl, const struct cluster_map *cur, char *why, size_t cap)
{
    if (!cur || cluster_my_group(cl, cur) == 0)
        return NULL;
    const struct cluster_node *n = serving(cl, cur, 0);
    snprintf(why, cap, "ERR CLUSTER CASMAP: this node is not in %s, the group that keeps the slot map (the map's "
             "first group): send it to that group's leader (%s:%d per this node's map)", cur->groups[0].name,
             n->host, n->port);
    return why;
}

/* CLUSTER CASMAP old-epoch json: a change of the map made from epoch
 * old-epoch (0: the first map), taken only if the map is still at that
 * epoch. On a replicated node of the first group the leader commits it
 * through the group's Raft log (replica_map_propose): the request waits in
 * its reply slot until the Raft thread answers (commit, conflict, lost
 * leadership, or outcome unknown after 10 s) while this I/O thread serves
 * its other connections, and the answer comes back through every I/O
 * thread (replica_await), as SETMAP's round. On a group of one node it is
 * installed at once, then the same round of the I/O threads. */
static void cluster_casmap(struct conn *c, struct msg *m)
{
    struct server *srv = c->io->srv;
    struct cluster *cl = srv->cluster;
    long long old;
    char err[512];
    const char *no;
    if (!arg_range(m, 2, 0, 1LL << 52, &old)) {
        conn_reply_error(c, m, "ERR CLUSTER CASMAP: the epoch the change was made from must be a whole number "
                         "from 0 (0: the first map)");
        return;
    }
    if ((no = casmap_refusal(cl, cluster_current(cl), err, sizeof err))) {
        conn_reply_error(c, m, "%s", no);
        return;
    }
    const char *json = m->req.argv[3];
    size_t len = m->req.len[3];
    if (cluster_check_change(cl, (uint64_t)old, json, len, err, sizeof err) < 0) {
        conn_reply_error(c, m, "ERR cluster map refused: %s", err);
        return;
    }
    if (srv->replica) {
        struct await *a = replica_await(c, m, AWAIT_ONE);
        if (a && replica_map_propose(srv->replica, (uint64_t)old, json, len, replica_answered, a) < 0)
            replica_not_asked(a);
        return;
    }
    int rc = cluster_cas(cl, (uint64_t)old, json, len, err, sizeof err);
    if (rc == 0 || rc == 1)
        conn_gather(c, m, false, finish_setmap);
    else
        conn_reply_error(c, m, "ERR %s%s", rc == -2 ? "map conflict: " : "cluster map refused: ", err);
}

/* Every I/O thread's part of CLUSTER SETMAP: nothing to do but answer. */
void peer_cluster(struct io_thread *io, struct msg *m)
{
    (void)io;
    (void)m;
}

static void cluster_text(struct conn *c, struct msg *m, const struct cluster_map *mp)
{
    struct cluster *cl = c->io->srv->cluster;
    resp_buf text;
    resp_buf_init(&text);
    if (arg_is(m, 1, "INFO"))
        cluster_info(cl, mp, &text);
    else if (mp)
        cluster_nodes(cl, mp, &text);
    resp_add_verbatim(&m->out, c->proto, "txt", text.data, text.len);
    resp_buf_free(&text);
    conn_reply(c, m);
}

static void cluster_keyslot(struct conn *c, struct msg *m)
{
    resp_add_int(&m->out, slot_of(m->req.argv[2], m->req.len[2]));
    conn_reply(c, m);
}

static void cluster_map_reply(struct conn *c, struct msg *m, const struct cluster_map *mp)
{
    struct cluster *cl = c->io->srv->cluster;
    if (arg_is(m, 1, "MYID")) {
        resp_add_cstr(&m->out, cl->myid);
    } else if (arg_is(m, 1, "GETMAP") && mp) {
        char *json = cluster_dump(mp);
        resp_add_cstr(&m->out, json);
        cJSON_free(json);
    } else if (arg_is(m, 1, "GETMAP")) {
        resp_add_null(&m->out, c->proto);
    } else if (arg_is(m, 1, "SLOTS") && mp) {
        cluster_slots(cl, mp, &m->out, c->proto);
    } else if (arg_is(m, 1, "SHARDS") && mp) {
        cluster_shards(cl, mp, &m->out, c->proto);
    } else {
        resp_add_array(&m->out, 0); /* SLOTS or SHARDS without a map */
    }
    conn_reply(c, m);
}

static const char *const cluster_help[] = {
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "INFO", "    Information about the cluster (Redis's fields).",
    "MYID", "    This node's id.",
    "KEYSLOT <key>", "    The hash slot of <key>.",
    "SLOTS", "    The slot ranges and the nodes of their groups.",
    "SHARDS", "    The groups: their slot ranges and nodes.",
    "NODES", "    Every node, one line each, in Redis's format.",
    "COUNTKEYSINSLOT <slot>", "    The keys and queues of <slot> on this node.",
    "GETKEYSINSLOT <slot> <count>", "    Up to <count> key and queue names of <slot> on this node.",
    "GETMAP", "    The slot map as JSON (docs/cluster.md).",
    "SETMAP <json>", "    Installs a slot map with a higher epoch (spool cluster sends committed maps this way).",
    "CASMAP <old-epoch> <json>", "    Changes the slot map if it is still at <old-epoch> (on the first group's leader).",
    "HELP", "    Prints this help.",
};

static void reply_help(struct conn *c, struct msg *m)
{
    size_t n = sizeof cluster_help / sizeof cluster_help[0];
    resp_add_array(&m->out, n);
    for (size_t i = 0; i < n; i++)
        resp_add_simple(&m->out, cluster_help[i]);
    conn_reply(c, m);
}

/* CLUSTER INFO|MYID|KEYSLOT|SLOTS|SHARDS|NODES|COUNTKEYSINSLOT|GETKEYSINSLOT|GETMAP|SETMAP|HELP */
void io_cluster(struct conn *c, struct msg *m)
{
    struct cluster *cl = c->io->srv->cluster;
    int argc = m->req.argc;
    long long slot, count;
    if (!cl) {
        conn_reply_error(c, m, "ERR This instance has cluster support disabled");
    } else if ((arg_is(m, 1, "INFO") || arg_is(m, 1, "NODES")) && argc == 2) {
        cluster_text(c, m, cluster_current(cl));
    } else if ((arg_is(m, 1, "MYID") || arg_is(m, 1, "SLOTS") || arg_is(m, 1, "SHARDS") || arg_is(m, 1, "GETMAP")) &&
               argc == 2) {
        cluster_map_reply(c, m, cluster_current(cl));
    } else if (arg_is(m, 1, "KEYSLOT") && argc == 3) {
        cluster_keyslot(c, m);
    } else if (arg_is(m, 1, "SETMAP") && argc == 3) {
        cluster_setmap(c, m);
    } else if (arg_is(m, 1, "CASMAP") && argc == 4) {
        cluster_casmap(c, m);
    } else if (arg_is(m, 1, "HELP") && argc == 2) {
        reply_help(c, m);
    } else if (arg_is(m, 1, "COUNTKEYSINSLOT") && argc == 3) {
        if (slot_arg(c, m, 2, &slot))
            conn_route(c, m, (int)(slot % c->io->srv->nshards));
    } else if (arg_is(m, 1, "GETKEYSINSLOT") && argc == 4) {
        if (!slot_arg(c, m, 2, &slot))
            return;
        if (!arg_range(m, 3, 0, 100000, &count))
            conn_reply_error(c, m, "ERR Invalid number of keys");
        else
            conn_route(c, m, (int)(slot % c->io->srv->nshards));
    } else if (argc >= 2 && (arg_is(m, 1, "INFO") || arg_is(m, 1, "MYID") || arg_is(m, 1, "KEYSLOT") ||
                             arg_is(m, 1, "SLOTS") || arg_is(m, 1, "SHARDS") || arg_is(m, 1, "NODES") ||
                             arg_is(m, 1, "SETMAP") || arg_is(m, 1, "CASMAP") || arg_is(m, 1, "GETMAP") ||
                             arg_is(m, 1, "COUNTKEYSINSLOT") ||
                             arg_is(m, 1, "GETKEYSINSLOT"))) {
        char sub[32];
        size_t i = 0;
        for (; i < m->req.len[1] && i < sizeof sub - 1; i++)
            sub[i] = (char)tolower((unsigned char)m->req.argv[1][i]);
        sub[i] = '\0';
        conn_reply_error(c, m, "ERR wrong number of arguments for 'cluster|%s' command", sub);
    } else {
        conn_reply_error(c, m, "ERR unknown subcommand '%.64s'. Try CLUSTER HELP.", m->req.argv[1]);
    }
}

/* ------------------------------------------------------------- SLOTMOVE */

/* Why this node may not run SLOTMOVE sub on slot now (NULL: it may). A
 * group's serving node does it, and only for a slot the map has in a
 * move: EXPORT and DROP on the source, IMPORT on the target, RESTORE on
 * the owner. */
static const char *slotmove_refusal(const struct cluster *cl, const struct cluster_map *m, struct msg *msg,
                                    int slot, char *why, size_t cap)
{
    int mine = m ? cluster_my_group(cl, m) : -1;
    int l = mine >= 0 ? cluster_leader(cl, m, mine) : -1;
    if (l < 0) {
        snprintf(why, cap, "ERR SLOTMOVE: this node serves no group now (no map, or an election runs): retry");
        return why;
    }
    if (strcmp(m->groups[mine].nodes[l].id, cl->myid)) {
        snprintf(why, cap, "ERR SLOTMOVE: this node does not lead its group: send it to %s:%d",
                 m->groups[mine].nodes[l].host, m->groups[mine].nodes[l].port);
        return why;
    }
    bool moving_out = m->owner[slot] == mine && m->move_to[slot] >= 0;
    if (arg_is(msg, 1, "EXPORT") && !moving_out) {
        snprintf(why, cap, "ERR SLOTMOVE EXPORT: slot %d is not being moved away from this node's group (map epoch "
                 "%llu): spool cluster move-slots freezes it first", slot, (unsigned long long)m->epoch);
        return why;
    }
    if (arg_is(msg, 1, "IMPORT") && m->move_to[slot] != mine) {
        snprintf(why, cap, "ERR SLOTMOVE IMPORT: slot %d is not being moved to this node's group (map epoch %llu): "
                 "spool cluster move-slots freezes it first", slot, (unsigned long long)m->epoch);
        return why;
    }
    if (arg_is(msg, 1, "RESTORE") && m->owner[slot] != mine) {
        snprintf(why, cap, "ERR SLOTMOVE RESTORE: slot %d does not belong to this node's group", slot);
        return why;
    }
    return NULL;
}

/* SLOTMOVE EXPORT|DROP|RESTORE slot | IMPORT slot blob [APPEND], run on
 * the slot's shard (cluster_move.h). */
void io_slotmove(struct conn *c, struct msg *m)
{
    struct cluster *cl = c->io->srv->cluster;
    int argc = m->req.argc;
    long long slot;
    char why[512];
    const char *no;
    bool import = arg_is(m, 1, "IMPORT");
    if (!cl) {
        conn_reply_error(c, m, "ERR This instance has cluster support disabled");
    } else if (!import && !arg_is(m, 1, "EXPORT") && !arg_is(m, 1, "DROP") && !arg_is(m, 1, "RESTORE")) {
        conn_reply_error(c, m, "ERR unknown subcommand '%.64s': SLOTMOVE EXPORT|IMPORT|DROP|RESTORE slot",
                         m->req.argv[1]);
    } else if (import ? argc < 4 || argc > 5 || (argc == 5 && !arg_is(m, 4, "APPEND")) : argc != 3) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'slotmove' command (SLOTMOVE EXPORT|DROP|RESTORE "
                         "slot, SLOTMOVE IMPORT slot blob [APPEND])");
    } else if (slot_arg(c, m, 2, &slot)) {
        if ((no = slotmove_refusal(cl, cluster_current(cl), m, (int)slot, why, sizeof why)))
            conn_reply_error(c, m, "%s", no);
        else
            conn_route(c, m, (int)(slot % c->io->srv->nshards));
    }
}

/* ------------------------------------------------- keys of a slot (shard) */

struct in_slot {
    int slot;
    long long n, max;
    resp_buf names;
};

static void name_in_slot(struct in_slot *w, const char *name, size_t len)
{
    if (slot_of(name, len) != w->slot)
        return;
    if (w->max >= 0 && w->n >= w->max)
        return;
    w->n++;
    if (w->max >= 0)
        resp_add_bulk(&w->names, name, len);
}

static void key_in_slot(void *arg, struct dict_entry *e)
{
    name_in_slot(arg, e->key, e->klen);
}

/* A queue counts when moving it would lose something: jobs in any state,
 * its settings, or its paused flag (waiting workers alone do not). */
static void queue_in_slot(void *arg, struct queue *q)
{
    bool data = q->nready || q->delayed.n || q->reserved.n || q->done.n || q->dead.n || q->expired.n ||
                q->conf_custom || q->paused;
    if (data)
        name_in_slot(arg, q->name, q->namelen);
}

/* CLUSTER COUNTKEYSINSLOT slot | GETKEYSINSLOT slot count, on the slot's shard */
void sh_cluster(struct shard *s, struct msg *m)
{
    long long slot = 0, count = -1;
    arg_ll(m, 2, &slot);
    if (m->req.argc == 4)
        arg_ll(m, 3, &count);
    struct in_slot w = { .slot = (int)slot, .max = count };
    resp_buf_init(&w.names);
    dict_each(&s->ks.keys, key_in_slot, &w);
    qtable_each(&s->st.queues, queue_in_slot, &w);
    if (count < 0) {
        resp_add_int(&m->out, w.n);
    } else {
        resp_add_array(&m->out, (size_t)w.n);
        resp_buf_append(&m->out, w.names.data, w.names.len);
    }
    resp_buf_free(&w.names);
    shard_reply(s, m);
}
