/*
 * cmd_script.h - EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT (see cmd_script.c;
 * docs/protocol.md "Scripting" for the contract).
 */
#ifndef SPOOL_CMD_SCRIPT_H
#define SPOOL_CMD_SCRIPT_H

struct conn;
struct shard;
struct msg;

void io_eval(struct conn *c, struct msg *m);
void sh_eval(struct shard *s, struct msg *m);
void io_script(struct conn *c, struct msg *m);
void sh_script_load(struct shard *s, struct msg *m);

#endif
