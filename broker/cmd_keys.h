/*
 * cmd_keys.h - commands over keys of any type: DEL UNLINK EXISTS TYPE
 * EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST
 * RENAME RENAMENX DBSIZE KEYS SCAN RANDOMKEY FLUSHDB/FLUSHALL, and the I/O
 * side of the keyspace's multi-key commands (MGET across shards; MSET,
 * RENAME on one shard or -CROSSSLOT). Referenced by the command table.
 */
#ifndef SPOOL_CMD_KEYS_H
#define SPOOL_CMD_KEYS_H

#include "resp.h"

struct conn;
struct shard;
struct msg;
struct command;

/* The error of a command whose keys live on different shards. */
#define KEYS_CROSSSLOT "CROSSSLOT Keys in request don't hash to the same slot (they live on different shards " \
                       "here): give them one {hash tag}, e.g. {user:42}:session and {user:42}:otp"

/* I/O side */
void io_mget(struct conn *c, struct msg *m);
void io_keys_count(struct conn *c, struct msg *m);   /* DEL UNLINK EXISTS */
void io_same_shard(struct conn *c, struct msg *m);   /* MSET MSETNX RENAME RENAMENX */
void io_all_shards_sum(struct conn *c, struct msg *m); /* DBSIZE */
void io_keys(struct conn *c, struct msg *m);
void io_scan(struct conn *c, struct msg *m);
void io_randomkey(struct conn *c, struct msg *m);
void io_flushdb(struct conn *c, struct msg *m);

/* The shard every key of m lives on (by the command's key positions), -1
 * when they span shards, -2 when the command names no key. */
int keys_shard(const struct msg *m, int nshards);

/* shard side */
void sh_del_keys(struct shard *s, struct msg *m);
void sh_exists_keys(struct shard *s, struct msg *m);
void sh_type_key(struct shard *s, struct msg *m);
void sh_expire(struct shard *s, struct msg *m);
void sh_ttl(struct shard *s, struct msg *m);
void sh_persist(struct shard *s, struct msg *m);
void sh_rename(struct shard *s, struct msg *m);
void sh_dbsize_keys(struct shard *s, struct msg *m);
void sh_keys(struct shard *s, struct msg *m);
void sh_scan(struct shard *s, struct msg *m);
void sh_randomkey(struct shard *s, struct msg *m);
void sh_flushdb(struct shard *s, struct msg *m);

#endif
