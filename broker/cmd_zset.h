/*
 * cmd_zset.h - sorted-set commands, shard side (routed by key with
 * io_key). Referenced by the command table only.
 */
#ifndef SPOOL_CMD_ZSET_H
#define SPOOL_CMD_ZSET_H

struct shard;
struct msg;

void sh_zadd(struct shard *s, struct msg *m);
void sh_zincrby(struct shard *s, struct msg *m);
void sh_zscore(struct shard *s, struct msg *m);
void sh_zrank(struct shard *s, struct msg *m);
void sh_zcard(struct shard *s, struct msg *m);
void sh_zcount(struct shard *s, struct msg *m);
void sh_zrange(struct shard *s, struct msg *m);
void sh_zrem(struct shard *s, struct msg *m);
void sh_zremrange(struct shard *s, struct msg *m);
void sh_zpop(struct shard *s, struct msg *m);
void sh_zscan(struct shard *s, struct msg *m);

#endif
