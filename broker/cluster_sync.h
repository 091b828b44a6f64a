/*
 * cluster_sync.h - a node catches up with the slot map of its peers.
 *
 * Runtimes layer: one thread of its own, started by the server in cluster
 * mode. Every interval it asks each other node of its map's first group
 * (g1, which keeps the map through its Raft log: cluster.h) for theirs
 * (CLUSTER GETMAP over a short blocking connection, AUTH with requirepass
 * when one is set) and installs one with a higher epoch. So a node that was down while `spool cluster` changed the
 * map takes the new one as soon as it is back, instead of serving slots
 * that moved away. It touches nothing but the map (cluster_install, which
 * locks) and its own sockets.
 */
#ifndef SPOOL_CLUSTER_SYNC_H
#define SPOOL_CLUSTER_SYNC_H

struct cluster;
struct cluster_sync;

/* Starts the thread; NULL when it cannot (logged). password may be "". */
struct cluster_sync *cluster_sync_start(struct cluster *cl, const char *password, int interval_ms);
/* Stops and joins it (within one connection timeout); NULL is fine. */
void cluster_sync_stop(struct cluster_sync *cs);

#endif
