/*
 * cmd_list.h - the Redis list commands over job queues (LPUSH, RPUSH, LPOP,
 * RPOP, BLPOP, BRPOP, LLEN, LRANGE; DEL, EXISTS, TYPE and DBSIZE over every
 * type are in cmd_keys.h) and the queue part of INFO: their I/O-thread side (checks, routing) and their
 * shard side (the queue work). Referenced by the command table only.
 */
#ifndef SPOOL_CMD_LIST_H
#define SPOOL_CMD_LIST_H

struct conn;
struct shard;
struct msg;

/* I/O side */
void io_push(struct conn *c, struct msg *m);
void io_key(struct conn *c, struct msg *m);
void io_pop(struct conn *c, struct msg *m);
void io_lrange(struct conn *c, struct msg *m);
void io_bpop(struct conn *c, struct msg *m);

/* shard side */
void sh_push(struct shard *s, struct msg *m);
void sh_pop(struct shard *s, struct msg *m);
void sh_llen(struct shard *s, struct msg *m);
void sh_lrange(struct shard *s, struct msg *m);
void sh_info(struct shard *s, struct msg *m);

#endif
