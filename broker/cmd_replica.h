/*
 * cmd_replica.h - REPLICA.MEMBERS, REPLICA.ADD, REPLICA.REMOVE,
 * REPLICA.TRANSFER: a replication group's membership and leadership
 * (replica.h, docs/replication.md "Membership", "Planned restart"),
 * answered on the I/O thread.
 */
#ifndef SPOOL_CMD_REPLICA_H
#define SPOOL_CMD_REPLICA_H

struct conn;
struct msg;

void io_replica_members(struct conn *c, struct msg *m);
void io_replica_add(struct conn *c, struct msg *m);
void io_replica_remove(struct conn *c, struct msg *m);
void io_replica_transfer(struct conn *c, struct msg *m);

#endif
