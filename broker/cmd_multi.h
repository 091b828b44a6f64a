/*
 * cmd_multi.h - MULTI EXEC DISCARD WATCH UNWATCH (see cmd_multi.c for the
 * design, docs/protocol.md "Transactions" for the contract).
 *
 * The connection side runs on the I/O thread (conn.c calls the multi_*
 * hooks); sh_exec, sh_watch and sh_unwatch run on the shard that owns the
 * transaction's keys.
 */
#ifndef SPOOL_CMD_MULTI_H
#define SPOOL_CMD_MULTI_H

#include <stdbool.h>

struct conn;
struct shard;
struct msg;

/* command table */
void io_multi(struct conn *c, struct msg *m);
void io_exec(struct conn *c, struct msg *m);
void io_discard(struct conn *c, struct msg *m);
void io_watch(struct conn *c, struct msg *m);
void io_unwatch(struct conn *c, struct msg *m);
void sh_exec(struct shard *s, struct msg *m);
void sh_watch(struct shard *s, struct msg *m);
void sh_unwatch(struct shard *s, struct msg *m);

/* CLIENT LIST's multi=: commands queued since MULTI, -1 outside MULTI. */
int multi_queued(const struct conn *c);

/* hooks for conn.c */
/* A command arrived between MULTI and EXEC: check it, keep it, answer QUEUED. */
void multi_queue(struct conn *c, struct msg *m);
/* An unknown command or a wrong arity inside MULTI: EXEC will abort. */
void multi_flag_error(struct conn *c);
/* While queueing (c->capture): the command's I/O handler routed m to shard
 * k, sent it to every shard, or answered it at once. Each takes m. */
void multi_capture_route(struct conn *c, struct msg *m, int k);
void multi_capture_gather(struct conn *c, struct msg *m, bool to_shards);
void multi_capture_reply(struct conn *c, struct msg *m);
/* The connection closes or RESETs: drop the transaction and the watches
 * (an UNWATCH goes to the shard that holds them). */
void multi_reset(struct conn *c);

#endif
