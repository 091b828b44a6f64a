/*
 * cluster_map.h - what cmd_cluster.c shares with cmd_replicas.c
 * (cluster_map.c): one command to a node, and reading, copying and
 * sending the slot map (docs/cluster.md).
 */
#ifndef SPOOL_CLI_CLUSTER_MAP_H
#define SPOOL_CLI_CLUSTER_MAP_H

#include "cli.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define NODE_TIMEOUT_S 10 /* seconds a node has to answer one command */

/* One command to the node at addr ("host:port"): 0 with *text (free it),
 * or -1 after printing why. */
int node_call(cli_ctx *x, const char *addr, int argc, const char *const *argv, char **text);
/* The same without printing: -1 with why in err. */
int node_try(cli_ctx *x, const char *addr, int argc, const char *const *argv, char **text, char *err, size_t errcap);
/* The map a node has (NULL: none, *failed on an error). */
cJSON *node_map(cli_ctx *x, const char *addr, bool *failed);
long long map_epoch(const cJSON *map);
/* A node object of the map as "host:port". */
void node_addr(const cJSON *node, char *out, size_t n);
/* A node for the map (its CLUSTER MYID, host, port), or NULL after
 * printing why (unreachable, not in cluster mode, in a map already). */
cJSON *new_node(cli_ctx *x, const char *given);
/* The same for a node that may have a map already: a new member of the
 * first group gets it from that group's Raft log before it is named. */
cJSON *map_node(cli_ctx *x, const char *given, bool may_have_map);
/* Commits map (made from epoch map_epoch - 1) through the map's first
 * group, which keeps it (CLUSTER CASMAP on its leader), then sends it to
 * every other node, groups first[] first. 0, or -1 after printing why: a
 * change that came first wins, and this one is told to run again. */
int commit_map(cli_ctx *x, const cJSON *map, const int *first, int nfirst);
/* map, or the newer one the nodes of its first group have (map is freed
 * then): the map a change starts from. */
cJSON *newest_map(cli_ctx *x, cJSON *map);
/* A copy of map with the next epoch. */
cJSON *next_epoch(const cJSON *map);
/* Waits (at most 3 s, quietly) until every node of map's first group
 * that answers has installed it: its followers apply the committed entry
 * a heartbeat later. */
void first_group_catches_up(cli_ctx *x, const cJSON *map);

/* spool cluster add-replica|remove-replica|replicas (cmd_replicas.c). */
int cluster_replicas(cli_ctx *x, const char *sub);

#endif
