/*
 * cmd_batch.h - BATCH.* commands (see cmd_batch.c and docs/protocol.md).
 */
#ifndef SPOOL_CMD_BATCH_H
#define SPOOL_CMD_BATCH_H

struct conn;
struct msg;
struct shard;

void io_batch_new(struct conn *c, struct msg *m);
void sh_batch_new(struct shard *s, struct msg *m);
void io_batch_id(struct conn *c, struct msg *m);     /* CLOSE, GET */
void sh_batch_id(struct shard *s, struct msg *m);

#endif
