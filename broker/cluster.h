/*
 * cluster.h - cluster mode's slot map, who serves a slot, and this node's
 * identity (spoold --cluster yes; docs/cluster.md).
 *
 * Contracts layer: the map is shared by every I/O thread (they route each
 * command by it) and replaced as a whole. Readers load the current map with
 * one atomic read and never lock; a writer (CLUSTER SETMAP, start-up) builds
 * a new map, stores it to the node file, then publishes it with one atomic
 * store. Replaced maps are kept until cluster_close, so a reader never sees
 * one freed (a map changes a handful of times in a node's life).
 *
 * The map: up to CLUSTER_GROUPS_MAX groups, each a list of nodes (id,
 * announced host:port) of which one leads; 16384 slots, each assigned to a
 * group or to none; a config epoch (a newer map has a higher epoch: the
 * highest wins); and the slots being moved. A move goes through two states
 * the map carries for every node to see: FROZEN (the source's leader
 * answers -TRYAGAIN for the slot while it checks the slot is empty) and
 * MOVING (the source's leader answers -ASK target; the target serves it to
 * clients that sent ASKING), then the slot belongs to the target.
 *
 * The map's first group keeps it (docs/cluster.md, "Who keeps the map"):
 * a change is a compare-and-set against the epoch it was made from
 * (cluster_cas; through that group's Raft log when it is replicated,
 * replica_map_propose), and every other node takes the maps that group
 * committed (cluster_take_committed: pushed by spool cluster, pulled by
 * cluster_sync.c).
 *
 * Who leads a group is asked of one function (cluster_route): by default
 * the leader the map names; the replication layer can register its own
 * answer (cluster_set_leader_hook), e.g. the Raft leader of the group.
 */
#ifndef SPOOL_CLUSTER_H
#define SPOOL_CLUSTER_H

#include "slot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_GROUPS_MAX 64
#define CLUSTER_GROUP_NODES 7
#define CLUSTER_ID_MAX 40      /* node ids: 1 to 40 of [0-9a-zA-Z] (generated: 40 hex digits) */
#define CLUSTER_HOST_MAX 63
#define CLUSTER_NAME_MAX 32

enum slot_move { MOVE_NONE = 0, MOVE_FROZEN = 1, MOVE_MOVING = 2 };

struct cluster_node {
    char id[CLUSTER_ID_MAX + 1];
    char host[CLUSTER_HOST_MAX + 1];
    int port;
};

struct cluster_group {
    char name[CLUSTER_NAME_MAX + 1];
    int leader;                     /* index into nodes: the leader the map names */
    int nnodes;
    struct cluster_node nodes[CLUSTER_GROUP_NODES];
};

struct cluster_map {
    uint64_t epoch;
    int ngroups;
    struct cluster_group groups[CLUSTER_GROUPS_MAX];
    int16_t owner[SLOT_COUNT];      /* group index, -1 = not assigned */
    int16_t move_to[SLOT_COUNT];    /* the group a slot moves to, -1 = none */
    uint8_t move_state[SLOT_COUNT]; /* enum slot_move */
};

/* The replication layer's answer to "who leads group g now": an index into
 * m->groups[g].nodes, or -1 when no leader is known. */
typedef int (*cluster_leader_fn)(void *arg, const struct cluster_map *m, int g);

struct cluster {
    _Atomic(struct cluster_map *) map; /* NULL until a map is installed */
    char myid[CLUSTER_ID_MAX + 1];
    char *path;                     /* the node file: data-dir/cluster.json */
    pthread_mutex_t lock;           /* writers only */
    struct cluster_map **retired;
    size_t nretired;
    cluster_leader_fn leader_of;    /* NULL: the map's leader */
    void *leader_arg;
};

/* Opens the node file in data_dir (creating it with a new random id, or
 * want_id when given, on first start) and loads its map. -1 with err
 * filled when the file is damaged or want_id differs from the stored id. */
int cluster_open(struct cluster *cl, const char *data_dir, const char *want_id, char *err, size_t errlen);
void cluster_close(struct cluster *cl);

/* The current map, or NULL. Any thread. */
static inline const struct cluster_map *cluster_current(const struct cluster *cl)
{
    return atomic_load_explicit(&((struct cluster *)cl)->map, memory_order_acquire);
}

/* Parses a map (docs/cluster.md, "The slot map"); -1 with err naming the
 * problem. */
int cluster_parse(const char *json, size_t len, struct cluster_map *out, char *err, size_t errlen);
/* The map as JSON (malloc'd, NUL-terminated). */
char *cluster_dump(const struct cluster_map *m);
/* Installs a map given as JSON when its epoch is higher than the current
 * one's: 1 installed, 0 the same epoch and the same map (nothing to do),
 * -1 refused (err: bad map, older or conflicting epoch, not saved). */
int cluster_install(struct cluster *cl, const char *json, size_t len, char *err, size_t errlen);

/* The slot map is kept by the map's first group ("g1", docs/cluster.md
 * "The slot map"): a change is a compare-and-set against the epoch it was
 * made from. cluster_check_change: whether json may replace a map of epoch
 * old here (parses; its epoch must be old + 1; a node with no map must be
 * in its first group). 0, or -1 with err. */
int cluster_check_change(const struct cluster *cl, uint64_t old, const char *json, size_t len, char *err,
                         size_t errlen);
/* Installs json if the current map's epoch (0: none) is old: 1 installed,
 * -1 refused (err: a bad map, not saved), -2 another change came first
 * (err says so and what to do). For a group of one node. */
int cluster_cas(struct cluster *cl, uint64_t old, const char *json, size_t len, char *err, size_t errlen);
/* The message of a lost compare-and-set: the map is at cur, not old. */
void cluster_conflict(uint64_t cur, uint64_t old, char *err, size_t errlen);
/* A map the first group committed (its Raft log, a snapshot, or a node of
 * that group): installed when newer than the current one (1), else kept
 * as it is (0); -1 bad or not saved (err). */
int cluster_take_committed(struct cluster *cl, const char *json, size_t len, char *err, size_t errlen);

/* Registers who leads a group (called once at start-up, before the I/O
 * threads run). */
void cluster_set_leader_hook(struct cluster *cl, cluster_leader_fn fn, void *arg);
/* The leader of group g in m: an index into its nodes, -1 unknown. */
int cluster_leader(const struct cluster *cl, const struct cluster_map *m, int g);
/* The group whose node list holds this node, -1 none. */
int cluster_my_group(const struct cluster *cl, const struct cluster_map *m);

enum cluster_verdict { ROUTE_SERVE, ROUTE_MOVED, ROUTE_ASK, ROUTE_TRYAGAIN, ROUTE_NOLEADER, ROUTE_DOWN };
/* Where a command for slot goes: SERVE here, MOVED or ASK to *to, TRYAGAIN
 * (the slot is frozen for a move), NOLEADER (its group, or the group it
 * moves to, has no known leader: an election runs), DOWN (no map, or the
 * slot is not assigned). asking: the client sent ASKING just before. */
enum cluster_verdict cluster_route(const struct cluster *cl, const struct cluster_map *m, int slot, bool asking,
                                   const struct cluster_node **to);

/* Slot ranges of group g (start/end pairs into out, at most max pairs);
 * returns the number of ranges. */
int cluster_group_ranges(const struct cluster_map *m, int g, int (*out)[2], int max);

#endif
