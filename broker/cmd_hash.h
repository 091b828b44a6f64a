/*
 * cmd_hash.h - hash commands, shard side (routed by key with io_key).
 * Referenced by the command table only.
 */
#ifndef SPOOL_CMD_HASH_H
#define SPOOL_CMD_HASH_H

struct shard;
struct msg;

void sh_hset(struct shard *s, struct msg *m);
void sh_hsetnx(struct shard *s, struct msg *m);
void sh_hget(struct shard *s, struct msg *m);
void sh_hmget(struct shard *s, struct msg *m);
void sh_hgetall(struct shard *s, struct msg *m);
void sh_hdel(struct shard *s, struct msg *m);
void sh_hexists(struct shard *s, struct msg *m);
void sh_hlen(struct shard *s, struct msg *m);
void sh_hstrlen(struct shard *s, struct msg *m);
void sh_hincrby(struct shard *s, struct msg *m);
void sh_hincrbyfloat(struct shard *s, struct msg *m);
void sh_hscan(struct shard *s, struct msg *m);

#endif
