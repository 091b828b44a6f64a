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

/* For commands_dispatch: a command arrived between MULTI and EXEC (check
 * it, keep it, answer QUEUED; takes m), or an unknown command or a wrong
 * arity there (EXEC will answer EXECABORT). */
void multi_queue(struct conn *c, struct msg *m);
void multi_flag_error(struct conn *c);

/* RESET: drop the transaction and the watches (an UNWATCH goes to the
 * shard that holds them). The connection's closing does the same through
 * its hooks (struct conn_tx, set by MULTI and WATCH). */
void multi_reset(struct conn *c);

#endif
