/*
 * cmd_sched.h - SCHED.* commands (see cmd_sched.c and docs/protocol.md).
 */
#ifndef SPOOL_CMD_SCHED_H
#define SPOOL_CMD_SCHED_H

struct conn;
struct msg;
struct shard;

void io_sched_set(struct conn *c, struct msg *m);
void sh_sched_set(struct shard *s, struct msg *m);
void io_sched_name(struct conn *c, struct msg *m);   /* GET, DEL, PAUSE, RESUME */
void sh_sched_name(struct shard *s, struct msg *m);
void io_sched_list(struct conn *c, struct msg *m);
void sh_sched_list(struct shard *s, struct msg *m);

#endif
