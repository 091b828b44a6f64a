/*
 * cmd_string.h - string commands, shard side (the I/O side routes by key:
 * io_key, io_mget, io_same_shard in cmd_keys.h). Referenced by the command
 * table only.
 */
#ifndef SPOOL_CMD_STRING_H
#define SPOOL_CMD_STRING_H

struct shard;
struct msg;

void sh_get(struct shard *s, struct msg *m);
void sh_set(struct shard *s, struct msg *m);
void sh_setnx(struct shard *s, struct msg *m);
void sh_setex(struct shard *s, struct msg *m);
void sh_getdel(struct shard *s, struct msg *m);
void sh_getex(struct shard *s, struct msg *m);
void sh_mget(struct shard *s, struct msg *m);
void sh_mset(struct shard *s, struct msg *m);
void sh_incr(struct shard *s, struct msg *m);
void sh_incrby(struct shard *s, struct msg *m);
void sh_incrbyfloat(struct shard *s, struct msg *m);
void sh_append(struct shard *s, struct msg *m);
void sh_strlen(struct shard *s, struct msg *m);
void sh_getrange(struct shard *s, struct msg *m);

#endif
