/*
 * cluster_map.c - what `spool cluster` (cmd_cluster.c) and `spool cluster
 * add-replica|remove-replica|replicas` (cmd_replicas.c) share: one command
 * to a node, and reading, copying and committing the slot map
 * (docs/cluster.md). The map is committed through the map's first group
 * (CLUSTER CASMAP on its leader), then sent to every other node.
 */
#include "cluster_map.h"
#include "args.h"
#include "fmt.h"
#include "rawinfo.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------- nodes */

/* One command to the node at addr ("host:port"): 0 with *text, or -1
 * after printing why. */
int node_try(cli_ctx *x, const char *addr, int argc, const char *const *argv, char **text, char *err, size_t errcap)
{
    return rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), argc, argv, NODE_TIMEOUT_S, text, err,
                           errcap) == 0 ? 0 : -1;
}

int node_call(cli_ctx *x, const char *addr, int argc, const char *const *argv, char **text)
{
    char err[1024];
    if (node_try(x, addr, argc, argv, text, err, sizeof err) == 0)
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
    return map_node(x, given, false);
}

cJSON *map_node(cli_ctx *x, const char *given, bool may_have_map)
{
    const char *gc = strrchr(given, ':');
    long long port;
    if (!gc || gc == given || args_int(gc + 1, 1, 65535, &port) < 0) {
        cli_fail(CLI_USAGE, "cluster: '%s' is not host:port", given);
        return NULL;
    }
    bool failed;
    cJSON *has = node_map(x, given, &failed);
    if (may_have_map && has)
        cJSON_Delete(has), has = NULL;
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

/* Sends a committed map (CLUSTER SETMAP) to every node outside the first
 * group (which has it from its Raft log), those of groups first[] first
 * (the order a move needs). Returns how many nodes of groups first[] did
 * not take it; one of another group that did not is told it catches up. */
static int push_map(cli_ctx *x, const cJSON *map, const int *first, int nfirst)
{
    char *text = cJSON_PrintUnformatted(map);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(map, "groups");
    int ng = cJSON_GetArraySize(groups), failed = 0;
    for (int pass = 0; pass <= nfirst; pass++) {
        for (int g = 1; g < ng; g++) {
            bool early = false, late = pass == nfirst;
            for (int i = 0; i < nfirst; i++) {
                early |= first[i] == g && pass == i;
                late = late && first[i] != g;
            }
            if (!early && !late)
                continue;
            const cJSON *node;
            cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(groups, g), "nodes")) {
                char addr[300], *reply = NULL;
                node_addr(node, addr, sizeof addr);
                const char *argv[] = { "CLUSTER", "SETMAP", text };
                if (node_call(x, addr, 3, argv, &reply) < 0 && late)
                    fprintf(stderr, "spool: %s takes map epoch %lld from %s once it is reachable again (it asks "
                            "every second)\n", addr, map_epoch(map), cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetArrayItem(groups, 0), "name")->valuestring);
                else
                    failed += !reply && early;
                free(reply);
            }
        }
    }
    cJSON_free(text);
    return failed;
}

/* A reply of a node that cannot take a CASMAP now (not the leader, an
 * election, not reachable): ask another node of the group, or again. */
static bool try_elsewhere(const char *err)
{
    return !strncmp(err, "READONLY", 8) || !strncmp(err, "CLUSTERDOWN", 11) || !strncmp(err, "cannot ", 7) ||
           !strncmp(err, "sending ", 8) || strstr(err, "this node is stopping");
}

/* Whether a and b are the same map (epoch, groups, slots, moves). */
static bool same_map(const cJSON *a, const cJSON *b)
{
    static const char *const keys[] = { "groups", "slots", "moves" };
    if (map_epoch(a) != map_epoch(b))
        return false;
    for (size_t i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        bool ex = !x || !cJSON_GetArraySize(x), ey = !y || !cJSON_GetArraySize(y);
        if (!(ex && ey) && !cJSON_Compare(x, y, true))
            return false;
    }
    return true;
}

/* The newest map the nodes of map's first group have (which keeps it), or
 * NULL when none answers. Quiet. */
static cJSON *first_group_map(cli_ctx *x, const cJSON *map)
{
    cJSON *best = NULL;
    const cJSON *node;
    cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), 0), "nodes")) {
        char addr[300], err[512], *text = NULL;
        const char *argv[] = { "CLUSTER", "GETMAP" };
        node_addr(node, addr, sizeof addr);
        if (rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), 2, argv, NODE_TIMEOUT_S, &text, err,
                            sizeof err) == 0 && text && *text) {
            cJSON *m = cJSON_Parse(text);
            if (m && (!best || map_epoch(m) > map_epoch(best)))
                cJSON_Delete(best), best = m;
            else
                cJSON_Delete(m);
        }
        free(text);
    }
    return best;
}

/* One CLUSTER CASMAP round over the first group's nodes: 0 taken, 1 no
 * node could take it now, 2 the outcome is unknown, -1 refused (err). */
static int casmap_round(cli_ctx *x, const cJSON *map, const char *text, char *err, size_t cap)
{
    char old[32];
    snprintf(old, sizeof old, "%lld", map_epoch(map) - 1);
    const cJSON *node;
    cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), 0), "nodes")) {
        char addr[300], *reply = NULL;
        const char *argv[] = { "CLUSTER", "CASMAP", old, text };
        node_addr(node, addr, sizeof addr);
        int rc = rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), 4, argv, NODE_TIMEOUT_S + 2, &reply,
                                 err, cap);
        free(reply);
        if (rc == 0)
            return 0;
        if (strstr(err, "outcome unknown") || !strncmp(err, "no reply", 8))
            return 2; /* it may have been committed: the caller reads the map */
        if (!try_elsewhere(err))
            return -1;
    }
    return 1;
}

void first_group_catches_up(cli_ctx *x, const cJSON *map)
{
    const cJSON *node;
    double end = fmt_mono_ms() + 3000;
    cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(map, "groups"), 0), "nodes")) {
        char addr[300];
        node_addr(node, addr, sizeof addr);
        for (;;) {
            char err[512], *text = NULL;
            const char *argv[] = { "CLUSTER", "GETMAP" };
            int rc = rawinfo_command(addr, x->url ? x->url : getenv("SPOOL_URL"), 2, argv, 2, &text, err, sizeof err);
            cJSON *m = rc == 0 && text ? cJSON_Parse(text) : NULL;
            bool done = rc < 0 || map_epoch(m) >= map_epoch(map) || fmt_mono_ms() > end;
            cJSON_Delete(m);
            free(text);
            if (done)
                break;
            nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
        }
    }
}

/* Commits map (made from epoch map_epoch - 1) through the map's first
 * group (CLUSTER CASMAP on its leader), then sends it to the other nodes,
 * groups first[] first. 0, or -1 after printing why and what to do: a
 * change that came first wins and this one changes nothing. */
int commit_map(cli_ctx *x, const cJSON *map, const int *first, int nfirst)
{
    char *text = cJSON_PrintUnformatted(map), err[1024] = "";
    int rc = 1;
    const char *hold = getenv("SPOOL_MAP_COMMIT_DELAY_MS"); /* test seam: two commands made from one epoch */
    if (hold && atoi(hold) > 0)
        nanosleep(&(struct timespec){ atoi(hold) / 1000, (atoi(hold) % 1000) * 1000000L }, NULL);
    for (int tries = 0; tries < 100 && rc > 0; tries++) {
        if ((rc = casmap_round(x, map, text, err, sizeof err)) > 0)
            nanosleep(&(struct timespec){ 0, 150000000L }, NULL); /* an election runs: its leader comes */
        cJSON *now = rc != 0 ? first_group_map(x, map) : NULL;
        if (now && same_map(now, map))
            rc = 0; /* taken, though the answer was lost or came from a retry */
        else if (now && map_epoch(now) >= map_epoch(map))
            rc = -1, snprintf(err, sizeof err, "map conflict: the group that keeps the map has epoch %lld now, "
                              "made by another change", map_epoch(now));
        cJSON_Delete(now);
    }
    cJSON_free(text);
    if (rc > 0)
        return cli_fail(CLI_REFUSED, "cluster: the group that keeps the slot map did not take map epoch %lld within "
                        "15 s (%s); nothing is known to have changed: run the command again", map_epoch(map),
                        err[0] ? err : "no leader"), -1;
    if (rc < 0 && strstr(err, "map conflict"))
        return cli_fail(CLI_REFUSED, "cluster: another change of the slot map came first, so this one changed "
                        "nothing (%s); run the command again: it starts from the new map", err), -1;
    if (rc < 0)
        return cli_fail(CLI_REFUSED, "cluster: the slot map (epoch %lld) was refused: %s", map_epoch(map),
                        err[0] ? err : "another change made that epoch first; run the command again"), -1;
    int failed = push_map(x, map, first, nfirst);
    if (nfirst == 0) /* not a step of a move, which goes on at once */
        first_group_catches_up(x, map);
    return failed ? -1 : 0;
}

cJSON *next_epoch(const cJSON *map)
{
    cJSON *m = cJSON_Duplicate(map, true);
    cJSON_ReplaceItemInObjectCaseSensitive(m, "epoch", cJSON_CreateNumber((double)(map_epoch(map) + 1)));
    return m;
}

cJSON *newest_map(cli_ctx *x, cJSON *map)
{
    cJSON *kept = map ? first_group_map(x, map) : NULL;
    if (!kept || map_epoch(kept) <= map_epoch(map)) {
        cJSON_Delete(kept);
        return map;
    }
    cJSON_Delete(map);
    return kept;
}
