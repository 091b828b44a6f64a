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

/* A command the Raft thread answers (REPLICA.ADD/REMOVE/TRANSFER, CLUSTER
 * CASMAP): replica_await parks the request (the I/O thread goes on with
 * its other connections) and returns the arg to hand the replica.h request
 * function with replica_answered; NULL after it answered itself (inside
 * MULTI). What a success is answered with: */
enum { AWAIT_OK, AWAIT_TEXT, AWAIT_ONE }; /* +OK; +the answer's text; :1 */
struct await;
struct await *replica_await(struct conn *c, struct msg *m, int kind);
/* A replica_answer_fn (replica.h), on the Raft thread: posts the reply. */
void replica_answered(void *arg, int rc, const char *msg);
/* When the request function returned -ENOMEM: answers that. */
void replica_not_asked(struct await *a);

#endif
