/*
 * cmd_cluster.c - `spool cluster create|add-group|move-slots|info`: the
 * slot map of a spoold cluster (docs/cluster.md), after `redis-cli
 * --cluster` in spirit.
 *
 * The map is JSON (CLUSTER GETMAP shows it); every change makes a copy
 * with the next epoch and sends it to every node with CLUSTER SETMAP (a
 * node keeps the map with the highest epoch). Moving slots goes through
 * three maps: the slots frozen (their node answers -TRYAGAIN) while the
 * source's node counts their keys and queues, then moving (-ASK to the
 * target), then owned by the target. A slot that holds anything is not
 * moved: moving data between nodes is not built yet, and a move must not
 * lose or duplicate a job.
 */
#include "cli.h"
#include "cluster_map.h"
#include "fmt.h"
#include "rawinfo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 16384
#define NODE_TIMEOUT_S 10

/* ------------------------------------------------------------- nodes */

/* One command to the node at addr ("host:port"): 0 with *text, or -1
 * after printing why. */
int node_call(cli_ctx *x, const char *addr, int argc, const char *const *argv, char **text)
{
    char err[1024];
    if (rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), argc, argv, NODE_TIMEOUT_S, text, err,
                        sizeof err) == 0)
        return 0;
    cli_fail(CLI_REFUSED, "cluster: %s %s at %s: %s", argv[0], argc > 1 ? argv[1] : "", addr, err);
    return -1;
}

/* The map a node has (NULL: none, *failed on an error). */
cJSON *node_map(cli_ctx *x, const char *addr, bool *failed)
{
    const char *argv[] = { "CLUSTER", "GETMAP" };
    char *text = NULL;
    *failed = node_call(x, addr, 2, argv, &text) < 0;
    cJSON *map = text && *text ? cJSON_Parse(text) : NULL;
    if (text && *text && !map)
        *failed = true, cli_fail(CLI_REFUSED, "cluster: %s sent a map that is not JSON", addr);
    free(text);
    return map;
}

long long map_epoch(const cJSON *map)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(map, "epoch");
    return cJSON_IsNumber(e) ? (long long)e->valuedouble : 0;
}

void node_addr(const cJSON *node, char *out, size_t n)
{
    snprintf(out, n, "%s:%d", cJSON_GetObjectItemCaseSensitive(node, "host")->valuestring,
             (int)cJSON_GetObjectItemCaseSensitive(node, "port")->valuedouble);
}

/* The address the node at addr announces (--cluster-announce), else addr. */
static void announced(cli_ctx *x, const char *addr, char *out, size_t n)
{
    const char *argv[] = { "CONFIG", "GET", "cluster-announce" };
    char *text = NULL;
    snprintf(out, n, "%s", addr);
    if (node_call(x, addr, 3, argv, &text) == 0 && text && strchr(text, ':'))
        snprintf(out, n, "%s", text);
    free(text);
}

/* A new node for the map: its id (CLUSTER MYID), host and port from addr
 * or from what it announces. NULL after printing why (unreachable, not in
 * cluster mode, in a map). */
cJSON *new_node(cli_ctx *x, const char *given)
{
    const char *gc = strrchr(given, ':');
    long long port;
    if (!gc || gc == given || args_int(gc + 1, 1, 65535, &port) < 0) {
        cli_fail(CLI_USAGE, "cluster: '%s' is not host:port", given);
        return NULL;
    }
    bool failed;
    cJSON *has = node_map(x, given, &failed);
    if (failed || has) {
        if (has)
            cli_fail(CLI_REFUSED, "cluster: %s already belongs to a cluster (its map has epoch %lld); give nodes "
                     "started with --cluster yes and a fresh data directory", given, map_epoch(has));
        cJSON_Delete(has);
        return NULL;
    }
    const char *argv[] = { "CLUSTER", "MYID" };
    char *id = NULL, addr[300];
    if (node_call(x, given, 2, argv, &id) < 0)
        return NULL;
    announced(x, given, addr, sizeof addr);
    const char *colon = strrchr(addr, ':');
    port = atoll(colon + 1); /* spoold checked it at start */
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "id", id);
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    cJSON_AddStringToObject(n, "host", host);
    cJSON_AddNumberToObject(n, "port", (double)port);
    free(id);
    return n;
}

/* Sends map to every node it names, those of groups first[] first (the
 * order a move needs). Returns the number of nodes that refused. */
int push_map(cli_ctx *x, const cJSON *map, const int *first, int nfirst)
{
    char *text = cJSON_PrintUnformatted(map);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    int ng = cJSON_GetArraySize(groups), failed = 0;
    for (int pass = 0; pass <= nfirst; pass++) {
        for (int g = 0; g < ng; g++) {
            bool early = false;
            for (int i = 0; i < nfirst; i++)
                early |= first[i] == g && (pass == i);
            bool late = pass == nfirst;
            for (int i = 0; late && i < nfirst; i++)
                late = first[i] != g;
            if (!early && !late)
                continue;
            const cJSON *node;
            cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(groups, g), "nodes")) {
                char addr[300], *reply = NULL;
                node_addr(node, addr, sizeof addr);
                const char *argv[] = { "CLUSTER", "SETMAP", text };
                failed += node_call(x, addr, 3, argv, &reply) < 0;
                free(reply);
            }
        }
    }
    cJSON_free(text);
    return failed;
}

cJSON *next_epoch(const cJSON *map)
{
    cJSON *m = cJSON_Duplicate(map, true);
    cJSON_ReplaceItemInObjectCaseSensitive(m, "epoch", cJSON_CreateNumber((double)(map_epoch(map) + 1)));
    return m;
}

/* ------------------------------------------------------------ create */

static cJSON *make_group(int i, cJSON *nodes)
{
    char name[32];
    snprintf(name, sizeof name, "g%d", i + 1);
    cJSON *g = cJSON_CreateObject();
    cJSON_AddStringToObject(g, "name", name);
    cJSON_AddNumberToObject(g, "leader", 0);
    cJSON_AddItemToObject(g, "nodes", nodes);
    return g;
}

/* spool cluster create ADDR... [--replicas N] */
static int cluster_create(cli_ctx *x)
{
    long long replicas = 0;
    const char *r = args_get(x->a, "replicas");
    int naddr = x->a->npos - 1;
    if (r && args_int(r, 0, 6, &replicas) < 0)
        return cli_fail(CLI_USAGE, "cluster create: --replicas takes 0 to 6 (nodes per group beside the leader)");
    if (naddr < 1 || naddr % (int)(replicas + 1))
        return cli_fail(CLI_USAGE, "cluster create: %d node(s) do not make groups of %lld (--replicas %lld + 1)",
                        naddr, replicas + 1, replicas);
    int ngroups = naddr / (int)(replicas + 1), first = 0;
    double per = (double)SLOTS / ngroups, cursor = 0; /* redis-cli --cluster create's split */
    cJSON *map = cJSON_CreateObject(), *groups = cJSON_CreateArray(), *slots = cJSON_CreateArray();
    cJSON_AddNumberToObject(map, "epoch", 1);
    cJSON_AddItemToObject(map, "groups", groups);
    cJSON_AddItemToObject(map, "slots", slots);
    for (int g = 0; g < ngroups; g++) {
        cJSON *nodes = cJSON_CreateArray();
        for (int i = 0; i <= replicas; i++) {
            cJSON *n = new_node(x, x->a->pos[1 + g * (replicas + 1) + i]);
            if (!n) {
                cJSON_Delete(nodes);
                cJSON_Delete(map);
                return CLI_REFUSED;
            }
            cJSON_AddItemToArray(nodes, n);
        }
        cJSON_AddItemToArray(groups, make_group(g, nodes));
        int last = g == ngroups - 1 ? SLOTS - 1 : (int)lround(cursor + per - 1);
        int range[3] = { first, last < first ? first : last, g };
        cJSON_AddItemToArray(slots, cJSON_CreateIntArray(range, 3));
        first = range[1] + 1;
        cursor += per;
    }
    int failed = push_map(x, map, NULL, 0);
    if (!failed)
        printf("cluster created: %d group(s) of %lld node(s), 16384 slots, map epoch 1\n", ngroups, replicas + 1);
    cJSON_Delete(map);
    return failed ? CLI_REFUSED : CLI_OK;
}

/* ----------------------------------------------------------- add-group */

static int group_index(const cJSON *map, const char *name)
{
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    for (int g = 0; g < cJSON_GetArraySize(groups); g++)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(groups, g), "name")->valuestring, name))
            return g;
    return -1;
}

/* The map of the node at pos[1]; NULL after printing why. */
static cJSON *cluster_map_of(cli_ctx *x)
{
    bool failed;
    cJSON *map = node_map(x, x->a->pos[1], &failed);
    if (!map && !failed)
        cli_fail(CLI_REFUSED, "cluster: %s has no slot map yet (spool cluster create makes one)", x->a->pos[1]);
    return map;
}

/* spool cluster add-group ADDR NEWADDR... */
static int cluster_add_group(cli_ctx *x)
{
    if (x->a->npos < 3)
        return cli_fail(CLI_USAGE, "cluster add-group ADDR NEWADDR...: give a node of the cluster and the new "
                        "group's nodes (its leader first)");
    cJSON *old = cluster_map_of(x);
    if (!old)
        return CLI_REFUSED;
    cJSON *map = next_epoch(old);
    cJSON_Delete(old);
    cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups"), *nodes = cJSON_CreateArray();
    int g = cJSON_GetArraySize(groups), rc = CLI_OK;
    for (int i = 2; i < x->a->npos && rc == CLI_OK; i++) {
        cJSON *n = new_node(x, x->a->pos[i]);
        if (n)
            cJSON_AddItemToArray(nodes, n);
        else
            rc = CLI_REFUSED;
    }
    cJSON *group = make_group(g, nodes);
    while (group_index(map, cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring) >= 0) {
        char name[32];
        snprintf(name, sizeof name, "g%d", ++g + 1);
        cJSON_ReplaceItemInObjectCaseSensitive(group, "name", cJSON_CreateString(name));
    }
    cJSON_AddItemToArray(groups, group);
    if (rc == CLI_OK && push_map(x, map, NULL, 0))
        rc = CLI_REFUSED;
    if (rc == CLI_OK)
        printf("group %s added with %d node(s) and no slots, map epoch %lld (spool cluster move-slots gives it "
               "slots)\n", cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring, x->a->npos - 2,
               map_epoch(map));
    cJSON_Delete(map);
    return rc;
}

/* ---------------------------------------------------------- move-slots */

static void map_owners(const cJSON *map, int *owner)
{
    for (int s = 0; s < SLOTS; s++)
        owner[s] = -1;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(map, "slots")) {
        int a = (int)cJSON_GetArrayItem(r, 0)->valuedouble, b = (int)cJSON_GetArrayItem(r, 1)->valuedouble;
        for (int s = a; s <= b && s >= 0 && s < SLOTS; s++)
            owner[s] = (int)cJSON_GetArrayItem(r, 2)->valuedouble;
    }
}

static void set_owners(cJSON *map, const int *owner)
{
    cJSON *slots = cJSON_CreateArray();
    for (int s = 0; s < SLOTS;) {
        int e = s;
        while (e + 1 < SLOTS && owner[e + 1] == owner[s])
            e++;
        int range[3] = { s, e, owner[s] };
        if (owner[s] >= 0)
            cJSON_AddItemToArray(slots, cJSON_CreateIntArray(range, 3));
        s = e + 1;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(map, "slots", slots);
}

/* The next map: the slots in list (n of them) in state ("frozen",
 * "moving") toward group to, or, with state NULL, owned by to. */
static cJSON *move_map(const cJSON *prev, const int *list, int n, int to, const char *state)
{
    cJSON *map = next_epoch(prev), *moves = cJSON_CreateArray();
    int *owner = malloc(SLOTS * sizeof *owner);
    map_owners(map, owner);
    for (int i = 0; i < n; i++) {
        if (!state) {
            owner[list[i]] = to;
            continue;
        }
        cJSON *mv = cJSON_CreateObject();
        cJSON_AddNumberToObject(mv, "slot", list[i]);
        cJSON_AddNumberToObject(mv, "to", to);
        cJSON_AddStringToObject(mv, "state", state);
        cJSON_AddItemToArray(moves, mv);
    }
    set_owners(map, owner);
    cJSON_ReplaceItemInObjectCaseSensitive(map, "moves", moves);
    free(owner);
    return map;
}

/* The slots to move: --range A-B (all must be the source's), else the
 * first --count N of the source. Returns how many, or minus the exit code
 * after printing why. */
static int pick_slots(cli_ctx *x, const cJSON *map, int from, int *list)
{
    int *owner = malloc(SLOTS * sizeof *owner), n = 0, a = 0, b = -1;
    map_owners(map, owner);
    const char *range = args_get(x->a, "range"), *count = args_get(x->a, "count");
    long long want = SLOTS;
    if ((!range) == (!count) || (range && (sscanf(range, "%d-%d", &a, &b) != 2 || a < 0 || b < a || b >= SLOTS)) ||
        (count && args_int(count, 1, SLOTS, &want) < 0)) {
        free(owner);
        return -cli_fail(CLI_USAGE, "cluster move-slots: give --count N (1..16384) or --range A-B (0 <= A <= B <= "
                         "16383)");
    }
    for (int s = range ? a : 0; s < SLOTS && (range ? s <= b : n < want); s++) {
        if (owner[s] == from)
            list[n++] = s;
        else if (range) {
            free(owner);
            return -cli_fail(CLI_REFUSED, "cluster move-slots: slot %d is not the source group's", s);
        }
    }
    free(owner);
    if (n == 0)
        return -cli_fail(CLI_REFUSED, "cluster move-slots: the source group has no slots to move");
    return n;
}

/* Keeps the slots of list that hold nothing on the source's node (addr);
 * prints the others. Returns how many were kept, -1 on an error. */
static int keep_empty(cli_ctx *x, const char *addr, int *list, int n)
{
    int kept = 0, shown = 0;
    for (int i = 0; i < n; i++) {
        char slot[16], *text = NULL;
        snprintf(slot, sizeof slot, "%d", list[i]);
        const char *argv[] = { "CLUSTER", "COUNTKEYSINSLOT", slot };
        if (node_call(x, addr, 3, argv, &text) < 0)
            return -1;
        if (!strcmp(text, "0"))
            list[kept++] = list[i];
        else if (shown++ < 10)
            fprintf(stderr, "spool: slot %d holds %s key(s) or queue(s) on %s: not moved (moving slots with data "
                    "is not supported yet: empty it, or leave it where it is)\n", list[i], text, addr);
        free(text);
    }
    if (shown > 10)
        fprintf(stderr, "spool: ... and %d more slot(s) with data, not moved\n", shown - 10);
    return kept;
}

static void leader_addr(const cJSON *map, int g, char *out, size_t n)
{
    const cJSON *group = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), g);
    int l = (int)cJSON_GetObjectItemCaseSensitive(group, "leader")->valuedouble;
    node_addr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(group, "nodes"), l), out, n);
}

/* Pushes next (a step of the move) and makes it the current map. */
static int step(cli_ctx *x, cJSON **cur, cJSON *next, const int *order)
{
    cJSON_Delete(*cur);
    *cur = next;
    return push_map(x, next, order, 2) ? -1 : 0;
}

/* spool cluster move-slots ADDR --from GROUP --to GROUP (--count N | --range A-B) */
static int cluster_move(cli_ctx *x)
{
    cJSON *map = cluster_map_of(x);
    if (!map)
        return CLI_REFUSED;
    const char *fname = args_get(x->a, "from"), *tname = args_get(x->a, "to");
    int from = fname ? group_index(map, fname) : -1, to = tname ? group_index(map, tname) : -1;
    int *list = malloc(SLOTS * sizeof *list), n = -1, rc = CLI_REFUSED;
    if (from < 0 || to < 0 || from == to)
        rc = cli_fail(CLI_USAGE, "cluster move-slots: --from and --to must name two groups of the map (spool cluster "
                      "info lists them)");
    else if ((n = pick_slots(x, map, from, list)) < 0)
        rc = -n;
    char src[300];
    int src_first[2] = { from, to }, dst_first[2] = { to, from };
    if (n > 0) {
        leader_addr(map, from, src, sizeof src);
        int moving = -1;
        if (step(x, &map, move_map(map, list, n, to, "frozen"), src_first) == 0)
            moving = keep_empty(x, src, list, n);
        if (moving < 0) /* unfreeze: nothing moves */
            step(x, &map, move_map(map, list, 0, to, "frozen"), src_first);
        if (moving >= 0 && step(x, &map, move_map(map, list, moving, to, "moving"), dst_first) == 0 &&
            step(x, &map, move_map(map, list, moving, to, NULL), dst_first) == 0) {
            printf("moved %d of %d slot(s) from %s to %s, map epoch %lld\n", moving, n, fname, tname,
                   map_epoch(map));
            rc = moving == n ? CLI_OK : CLI_REFUSED;
        }
    }
    free(list);
    cJSON_Delete(map);
    return rc;
}

/* ---------------------------------------------------------------- info */

static int count_slots(const cJSON *map, int g)
{
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(map, "slots"))
        if ((int)cJSON_GetArrayItem(r, 2)->valuedouble == g)
            n += (int)cJSON_GetArrayItem(r, 1)->valuedouble - (int)cJSON_GetArrayItem(r, 0)->valuedouble + 1;
    return n;
}

/* Asks every node of the map for its map's epoch; prints those that
 * differ. Returns how many differ or cannot be asked. */
static int check_nodes(cli_ctx *x, const cJSON *map, bool print)
{
    int bad = 0, nodes = 0;
    const cJSON *group, *node;
    cJSON_ArrayForEach(group, cJSON_GetObjectItemCaseSensitive(map, "groups"))
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes")) {
            char addr[300];
            bool failed;
            node_addr(node, addr, sizeof addr);
            cJSON *has = node_map(x, addr, &failed);
            nodes++;
            if (!failed && map_epoch(has) != map_epoch(map))
                fprintf(stderr, "spool: %s has map epoch %lld, not %lld (run the last spool cluster command "
                        "again, or send it the map: CLUSTER SETMAP)\n", addr, map_epoch(has), map_epoch(map));
            bad += failed || map_epoch(has) != map_epoch(map);
            cJSON_Delete(has);
        }
    if (print && !bad)
        printf("all %d node(s) agree on map epoch %lld\n", nodes, map_epoch(map));
    return bad;
}

/* spool cluster info ADDR */
static int cluster_info(cli_ctx *x)
{
    cJSON *map = cluster_map_of(x);
    if (!map)
        return CLI_REFUSED;
    if (x->json) {
        int bad = check_nodes(x, map, false);
        fmt_json_print(map);
        return bad ? CLI_REFUSED : CLI_OK;
    }
    printf("map epoch %lld (kept by each node; not consensus-replicated yet, see docs/cluster.md)\n",
           map_epoch(map));
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    for (int g = 0; g < cJSON_GetArraySize(groups); g++) {
        const cJSON *group = cJSON_GetArrayItem(groups, g), *node;
        char lead[300];
        leader_addr(map, g, lead, sizeof lead);
        printf("group %s: %d slot(s), leader %s, nodes:", cJSON_GetObjectItemCaseSensitive(group, "name")->valuestring,
               count_slots(map, g), lead);
        cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(group, "nodes")) {
            char addr[300];
            node_addr(node, addr, sizeof addr);
            printf(" %s (%s)", addr, cJSON_GetObjectItemCaseSensitive(node, "id")->valuestring);
        }
        printf("\n");
    }
    int moves = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(map, "moves"));
    if (moves)
        printf("%d slot(s) in the middle of a move (run the move again to finish it)\n", moves);
    int bad = check_nodes(x, map, true);
    cJSON_Delete(map);
    return bad || moves ? CLI_REFUSED : CLI_OK;
}

/* spool cluster create|add-group|move-slots|info ... */
int cmd_cluster(cli_ctx *x)
{
    const char *sub = x->a->pos[0];
    if (x->a->npos < 2)
        return cli_fail(CLI_USAGE, "cluster %s: give the address (host:port) of a node", sub);
    if (!strcmp(sub, "create"))
        return cluster_create(x);
    if (!strcmp(sub, "add-group"))
        return cluster_add_group(x);
    if (!strcmp(sub, "move-slots"))
        return cluster_move(x);
    if (!strcmp(sub, "info"))
        return cluster_info(x);
    if (!strcmp(sub, "add-replica") || !strcmp(sub, "remove-replica") || !strcmp(sub, "replicas"))
        return cluster_replicas(x, sub); /* a replication group's members: cmd_replicas.c */
    return cli_fail(CLI_USAGE, "cluster: unknown subcommand '%s' (create, add-group, move-slots, info, add-replica, "
                    "remove-replica or replicas)", sub);
}
