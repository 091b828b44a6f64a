/*
 * cmd_replicas.c - `spool cluster add-replica|remove-replica|replicas|
 * transfer-leader`: the members of a replication group and its leadership
 * (docs/replication.md "Membership", "Planned restart"), after `redis-cli
 * --cluster add-node/del-node` and `CLUSTER FAILOVER` in spirit.
 *
 * The group's Raft leader makes each change (REPLICA.ADD, REPLICA.REMOVE);
 * these commands find the leader through any member, wait until the change
 * is done (REPLICA.MEMBERS), and in cluster mode put the node into, or take
 * it out of, its group in the slot map (the next epoch, committed through
 * the map's first group and sent to every node: cluster_map.h).
 */
#include "cli.h"
#include "cluster_map.h"
#include "rawinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MEMBERS 16

struct member {
    unsigned id;
    char raft[64], client[64], role[16], state[16];
    unsigned long long match;
    char heard[24]; /* ms since the node answering last heard from it, or "-" */
};

struct members {
    struct member m[MAX_MEMBERS];
    int n;
    char change[300];
};

/* REPLICA.MEMBERS of the node at addr into g: 0, or -1 with why in err. */
static int members_at(cli_ctx *x, const char *addr, struct members *g, char *err, size_t errcap)
{
    const char *argv[] = { "REPLICA.MEMBERS" };
    char *text = NULL;
    g->n = 0;
    snprintf(g->change, sizeof g->change, "none");
    if (node_try(x, addr, 1, argv, &text, err, errcap) < 0)
        return -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        struct member *m = &g->m[g->n];
        snprintf(m->heard, sizeof m->heard, "-");
        if (!strncmp(line, "change: ", 8))
            snprintf(g->change, sizeof g->change, "%s", line + 8);
        else if (g->n < MAX_MEMBERS && sscanf(line, "%u %63s %63s %15s %15s %llu %23s", &m->id, m->raft, m->client,
                                              m->role, m->state, &m->match, m->heard) >= 6)
            g->n++;
    }
    free(text);
    return 0;
}

/* REPLICA.MEMBERS of the node at addr: 0, or -1 after printing why. */
static int read_members(cli_ctx *x, const char *addr, struct members *g)
{
    char err[1024];
    if (members_at(x, addr, g, err, sizeof err) == 0)
        return 0;
    cli_fail(CLI_REFUSED, "cluster: REPLICA.MEMBERS at %s: %s", addr, err);
    return -1;
}

static const struct member *member_by(const struct members *g, unsigned id, const char *client)
{
    for (int i = 0; i < g->n; i++)
        if (client ? !strcmp(g->m[i].client, client) : g->m[i].id == id)
            return &g->m[i];
    return NULL;
}

#define ELECTION_WAIT_S 10 /* how long a command waits for a group without a leader to elect one */

/* The leader's client address, through the member at addr. A group in an
 * election (its leader just died or stepped down) is given ELECTION_WAIT_S
 * to elect one, and the wait is said: removing a dead leader right after
 * it died is the usual case. */
static int find_leader(cli_ctx *x, const char *addr, struct members *g, char *leader, size_t cap)
{
    time_t end = time(NULL) + ELECTION_WAIT_S;
    for (bool said = false;; said = true) {
        if (read_members(x, addr, g) < 0)
            return -1;
        char err[1024];
        for (int i = 0; i < g->n; i++)
            if (!strcmp(g->m[i].state, "leader")) {
                snprintf(leader, cap, "%s", g->m[i].client);
                if (members_at(x, leader, g, err, sizeof err) == 0)
                    return 0; /* its view: how far each member holds the log */
                break; /* a leader that just died: its followers elect another within an election timeout */
            }
        if (time(NULL) >= end)
            break;
        if (!said)
            printf("the replication group of %s has no leader now (an election runs); waiting up to %d s for one\n",
                   addr, ELECTION_WAIT_S);
        fflush(stdout);
        nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
    }
    cli_fail(CLI_REFUSED, "cluster: the replication group of %s elected no leader within %d s (most of its members "
             "are down or cut off); start them, then retry once INFO replication on a member shows replica_leader",
             addr, ELECTION_WAIT_S);
    return -1;
}

static void print_members(const struct members *g)
{
    for (int i = 0; i < g->n; i++) {
        char heard[48] = "";
        if (strcmp(g->m[i].heard, "-"))
            snprintf(heard, sizeof heard, "  last heard %s ms ago", g->m[i].heard);
        printf("  node %u  client %s  raft %s  %s%s  log held to %llu%s\n", g->m[i].id, g->m[i].client, g->m[i].raft,
               g->m[i].role, strcmp(g->m[i].state, "leader") ? "" : " (leader)", g->m[i].match, heard);
    }
}

/* Polls the leader until the change of node id is done (0) or failed. */
static int wait_change(cli_ctx *x, const char *leader, unsigned id, bool adding, int timeout_s)
{
    char done[64], failed[64];
    snprintf(done, sizeof done, "done: node %u ", id);
    snprintf(failed, sizeof failed, "failed: node %u:", id);
    time_t end = time(NULL) + timeout_s;
    struct members g;
    while (read_members(x, leader, &g) == 0) {
        if (!strncmp(g.change, failed, strlen(failed)) && strstr(g.change, "lost leadership"))
            return -2; /* an election moved the leader: the caller asks the new one */
        if (!strncmp(g.change, failed, strlen(failed)))
            return cli_fail(CLI_REFUSED, "cluster: %s", g.change), -1;
        const struct member *m = member_by(&g, id, NULL);
        if (!strncmp(g.change, done, strlen(done)) && (adding ? m && !strcmp(m->role, "voter") : !m))
            return 0;
        if (time(NULL) > end)
            return cli_fail(CLI_REFUSED, "cluster: node %u: not done within %d s (%s); REPLICA.MEMBERS on %s shows "
                            "how far it got", id, timeout_s, g.change, leader), -1;
        nanosleep(&(struct timespec){ 0, 100000000L }, NULL);
    }
    return -1;
}

/* Cluster mode: the group of the map holding a member of g gets add_addr
 * and loses remove_addr; the map goes out with the next epoch. Standalone
 * groups (no map) have nothing to follow. */
static int map_follow(cli_ctx *x, const char *leader, const struct members *g, const char *add_addr,
                      const char *remove_addr)
{
    const char *cfg[] = { "CONFIG", "GET", "cluster" };
    char *mode = NULL;
    if (node_call(x, leader, 3, cfg, &mode) < 0)
        return -1;
    bool cluster = !strcmp(mode, "yes"), failed = false;
    free(mode);
    cJSON *map = cluster ? newest_map(x, node_map(x, leader, &failed)) : NULL;
    if (failed || !map)
        return failed ? -1 : 0; /* no map: a group outside cluster mode, or a cluster not created yet */
    cJSON *next = next_epoch(map), *group = NULL, *node;
    cJSON_Delete(map);
    cJSON_ArrayForEach(group, cJSON_GetObjectItemCaseSensitive(next, "groups")) {
        bool ours = false;
        char addr[300];
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes"))
            node_addr(node, addr, sizeof addr), ours |= member_by(g, 0, addr) != NULL;
        if (ours)
            break;
    }
    if (!group) {
        cJSON_Delete(next);
        return cli_fail(CLI_REFUSED, "cluster: no group of the slot map holds a member of this replication group; "
                        "spool cluster info %s shows the map", leader), -1;
    }
    cJSON *nodes = cJSON_GetObjectItemCaseSensitive(group, "nodes");
    cJSON *added = add_addr ? map_node(x, add_addr, true) : NULL;
    if (add_addr && !added) {
        cJSON_Delete(next);
        return -1;
    }
    if (added)
        cJSON_AddItemToArray(nodes, added);
    int lead = (int)cJSON_GetObjectItemCaseSensitive(group, "leader")->valuedouble;
    for (int i = 0; remove_addr && i < cJSON_GetArraySize(nodes); i++) {
        char addr[300];
        node_addr(cJSON_GetArrayItem(nodes, i), addr, sizeof addr);
        if (!strcmp(addr, remove_addr)) {
            cJSON_DeleteItemFromArray(nodes, i);
            cJSON_ReplaceItemInObjectCaseSensitive(group, "leader", cJSON_CreateNumber(lead > i ? lead - 1
                                                                                                 : lead == i ? 0 : lead));
            break;
        }
    }
    int bad = commit_map(x, next, NULL, 0);
    if (!bad)
        printf("slot map: epoch %lld committed and sent\n", map_epoch(next));
    cJSON_Delete(next);
    return bad ? -1 : 0;
}

/* Sends argv (REPLICA.ADD or REPLICA.REMOVE of node id) to the leader
 * found through addr and waits until the change is done. When an election
 * moves the leader meanwhile, asks the new one (up to 5 times): it resumes
 * an addition left half-done (a spare) and finds a removal done. Leaves the
 * leader's address in leader and its view in g. */
static int run_change(cli_ctx *x, const char *addr, int argc, const char **argv, unsigned id, bool adding,
                      int timeout_s, char *leader, struct members *g)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (find_leader(x, addr, g, leader, 64) < 0)
            return -1;
        const struct member *m = member_by(g, id, NULL);
        if (attempt > 0 && (adding ? m && !strcmp(m->role, "voter") : !m))
            return 0; /* the change committed before leadership moved */
        char *text = NULL;
        if (node_call(x, leader, argc, argv, &text) < 0)
            return -1;
        free(text);
        if (attempt == 0)
            printf("%s node %u through the leader %s\n", adding ? "adding" : "removing", id, leader);
        int rc = wait_change(x, leader, id, adding, timeout_s);
        if (rc != -2)
            return rc < 0 ? -1 : read_members(x, leader, g);
        printf("the leader changed during the change: asking the new one\n");
        nanosleep(&(struct timespec){ 0, 500000000L }, NULL);
    }
    return cli_fail(CLI_REFUSED, "cluster: node %u: leadership kept moving; run the command again", id), -1;
}

/* spool cluster add-replica NEWADDR ADDR [--replica-id N] [--raft HOST:PORT] [--timeout S] */
static int add_replica(cli_ctx *x, int timeout_s)
{
    const char *newaddr = x->a->pos[1], *addr = x->a->pos[2], *colon = strrchr(newaddr, ':');
    long long port = 0, id = 0;
    if (!colon || args_int(colon + 1, 1, 55535, &port) < 0)
        return cli_fail(CLI_USAGE, "cluster add-replica: '%s' is not host:port (the new node's client address)",
                        newaddr);
    struct members g;
    char leader[64], raft[300];
    if (find_leader(x, addr, &g, leader, sizeof leader) < 0)
        return CLI_REFUSED;
    const struct member *was = member_by(&g, 0, newaddr);
    if (was && strcmp(was->role, "voter")) /* left a spare by an earlier try: the leader resumes it */
        id = was->id;
    else if (was)
        return cli_fail(CLI_REFUSED, "cluster add-replica: %s is member %u of the group already (spool cluster replicas "
                        "%s)", newaddr, member_by(&g, 0, newaddr)->id, addr);
    for (int i = 0; !was && i < g.n; i++)
        id = g.m[i].id > id ? g.m[i].id : id;
    id += !was;
    const char *given = args_get(x->a, "replica-id");
    if (given && args_int(given, 1, 255, &id) < 0)
        return cli_fail(CLI_USAGE, "cluster add-replica: --replica-id '%s' is not a number from 1 to 255", given);
    snprintf(raft, sizeof raft, "%.*s:%lld", (int)(colon - newaddr), newaddr, port + 10000);
    if (was)
        snprintf(raft, sizeof raft, "%s", was->raft);
    if (args_get(x->a, "raft"))
        snprintf(raft, sizeof raft, "%s", args_get(x->a, "raft"));
    char sid[16];
    snprintf(sid, sizeof sid, "%lld", id);
    const char *argv[] = { "REPLICA.ADD", sid, raft, newaddr };
    printf("node %lld: client %s, raft %s; it catches up, then votes\n", id, newaddr, raft);
    if (run_change(x, addr, 4, argv, (unsigned)id, true, timeout_s, leader, &g) < 0)
        return CLI_REFUSED;
    printf("node %lld is a voter; the group:\n", id);
    print_members(&g);
    return map_follow(x, leader, &g, newaddr, NULL) < 0 ? CLI_REFUSED : CLI_OK;
}

/* spool cluster remove-replica ID ADDR [--timeout S] */
static int remove_replica(cli_ctx *x, int timeout_s)
{
    long long id;
    if (args_int(x->a->pos[1], 1, 255, &id) < 0)
        return cli_fail(CLI_USAGE, "cluster remove-replica: '%s' is not a node id (spool cluster replicas ADDR lists "
                        "them)", x->a->pos[1]);
    struct members g;
    char leader[64], client[64];
    if (find_leader(x, x->a->pos[2], &g, leader, sizeof leader) < 0)
        return CLI_REFUSED;
    const struct member *m = member_by(&g, (unsigned)id, NULL);
    if (!m)
        return cli_fail(CLI_REFUSED, "cluster remove-replica: node %lld is not a member of the group of %s "
                        "(spool cluster replicas %s lists them)", id, x->a->pos[2], x->a->pos[2]);
    snprintf(client, sizeof client, "%s", m->client);
    const char *argv[] = { "REPLICA.REMOVE", x->a->pos[1] };
    if (run_change(x, x->a->pos[2], 2, argv, (unsigned)id, false, timeout_s, leader, &g) < 0)
        return CLI_REFUSED;
    printf("node %lld (%s) was removed; the group:\n", id, client);
    print_members(&g);
    return map_follow(x, leader, &g, NULL, client) < 0 ? CLI_REFUSED : CLI_OK;
}

/* spool cluster transfer-leader GROUP [NODE]: GROUP is the address of any
 * member; NODE the new leader's id or client address (default: the
 * follower that holds the most of the log). REPLICA.TRANSFER answers once
 * it leads; the leader refuses a silent node or one that is not a voter,
 * and takes one that lags (it catches up first). */
static int transfer_leader(cli_ctx *x)
{
    struct members g;
    char leader[64], sid[16] = "";
    if (x->a->npos < 2 || x->a->npos > 3)
        return cli_fail(CLI_USAGE, "cluster transfer-leader: give the address of a member of the group (host:port) "
                        "and optionally the new leader (its node id or host:port)");
    if (find_leader(x, x->a->pos[1], &g, leader, sizeof leader) < 0)
        return CLI_REFUSED;
    if (x->a->npos == 3) {
        const struct member *m = strchr(x->a->pos[2], ':') ? member_by(&g, 0, x->a->pos[2]) : NULL;
        long long id = m ? m->id : 0;
        if (!m && (args_int(x->a->pos[2], 1, 255, &id) < 0 || !member_by(&g, (unsigned)id, NULL)))
            return cli_fail(CLI_REFUSED, "cluster transfer-leader: '%s' is not a member of the group of %s: give its "
                            "node id or client address (spool cluster replicas %s lists them)", x->a->pos[2],
                            x->a->pos[1], x->a->pos[1]);
        snprintf(sid, sizeof sid, "%lld", id);
    }
    const char *argv[] = { "REPLICA.TRANSFER", sid };
    char *text = NULL;
    printf("handing the leadership over from %s to %s%s\n", leader, sid[0] ? "node " : "the most up-to-date follower",
           sid);
    if (node_call(x, leader, sid[0] ? 2 : 1, argv, &text) < 0)
        return CLI_REFUSED;
    printf("%s\n", text ? text : "");
    free(text);
    if (find_leader(x, x->a->pos[1], &g, leader, sizeof leader) == 0) /* the new leader's view */
        print_members(&g);
    return CLI_OK;
}

int cluster_replicas(cli_ctx *x, const char *sub)
{
    if (!strcmp(sub, "transfer-leader"))
        return transfer_leader(x);
    long long timeout = 120;
    const char *t = args_get(x->a, "timeout");
    if (t && args_int(t, 1, 86400, &timeout) < 0)
        return cli_fail(CLI_USAGE, "cluster %s: --timeout '%s' is not a number of seconds", sub, t);
    if (!strcmp(sub, "replicas")) {
        struct members g;
        char leader[64];
        if (find_leader(x, x->a->pos[1], &g, leader, sizeof leader) < 0)
            return CLI_REFUSED;
        printf("replication group of %s, leader %s, last change: %s\n", x->a->pos[1], leader, g.change);
        print_members(&g);
        return CLI_OK;
    }
    if (x->a->npos != 3)
        return cli_fail(CLI_USAGE, "cluster %s: give %s and the address of a member (host:port)", sub,
                        !strcmp(sub, "add-replica") ? "the new node's address (host:port)" : "the node id");
    return !strcmp(sub, "add-replica") ? add_replica(x, (int)timeout) : remove_replica(x, (int)timeout);
}
