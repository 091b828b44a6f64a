/*
 * cmd_cluster.h - cluster mode's commands and the routing of every command
 * by slot (docs/cluster.md).
 *
 * Commands layer, I/O thread. cluster_admit runs in commands_dispatch
 * before any handler: in cluster mode it finds the slots of a command's
 * keys (the table's key positions; JOB.RESERVE's queues after FROM; EVAL's
 * numkeys; job ids and receipts that carry a "{tag}") and answers
 * -CROSSSLOT, -MOVED, -ASK, -TRYAGAIN or -CLUSTERDOWN when this node does
 * not serve them now. CLUSTER SLOTS|SHARDS|NODES|MYID|KEYSLOT|INFO answer
 * from the slot map (cluster.h) in Redis's formats; CLUSTER
 * COUNTKEYSINSLOT|GETKEYSINSLOT ask the slot's shard; CLUSTER SETMAP and
 * GETMAP are spool's own: they install and show the map.
 */
#ifndef SPOOL_CMD_CLUSTER_H
#define SPOOL_CMD_CLUSTER_H

#include "command.h"
#include "resp.h"

#include <stdbool.h>

/* Whether c may run cmd on this node; false: the error was sent. Always
 * true outside cluster mode. */
bool cluster_admit(struct conn *c, const struct command *k, const resp_cmd *cmd);

/* The argv indices of cmd's keys as a cluster client must route them
 * (COMMAND GETKEYS shows them); *n = 0 when it has none. */
#define CLUSTER_MAX_KEYS 256
void cluster_command_keys(const struct command *k, const resp_cmd *cmd, int *idx, int *n);
/* The key positions COMMAND declares for k (job ids and receipts are keys)
 * and whether its keys move (COMMAND's "movablekeys"). */
void cluster_key_spec(const struct command *k, int *first, int *last, int *step, bool *movable);

void io_cluster(struct conn *c, struct msg *m);
void sh_cluster(struct shard *s, struct msg *m);
void peer_cluster(struct io_thread *io, struct msg *m);
void io_asking(struct conn *c, struct msg *m);
/* SLOTMOVE: checks the slot is in a move this node takes part in, then runs
 * it on the slot's shard (sh_slotmove, cluster_move.h). */
void io_slotmove(struct conn *c, struct msg *m);
void io_readonly(struct conn *c, struct msg *m);

#endif
