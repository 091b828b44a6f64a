/*
 * commands.h - the command table, its dispatch and its introspection.
 *
 * Commands layer, I/O thread. The table ({name, arity, flags, keys,
 * handlers, summary}, see command.h) is the only list of commands.
 * commands_dispatch checks, in this one place and before any handler
 * runs, the name, authentication, RESP2 subscribed mode and arity; COMMAND
 * and COMMAND DOCS are built from the table. Calls down only: the cmd_*
 * handlers, conn.c (replies), pubsub.c (subscribed mode).
 *
 * The connection does not include this file: the server hands
 * commands_dispatch to it (srv->dispatch) when it starts.
 */
#ifndef SPOOL_COMMANDS_H
#define SPOOL_COMMANDS_H

#include "command.h"
#include "resp.h"

#include <stddef.h>

/* Looks up a command by name (any case); NULL when unknown. */
const struct command *commands_find(const char *name, size_t len);
/* Table access for COMMAND / COMMAND DOCS / COMMAND COUNT. */
size_t commands_count(void);
const struct command *commands_at(size_t i);

/* Runs one parsed request of c: checks it, then hands it to the command's
 * io() handler. Takes cmd's contents. */
void commands_dispatch(struct conn *c, resp_cmd *cmd);

/* COMMAND [COUNT | INFO [name …] | DOCS [name …]] */
void io_command(struct conn *c, struct msg *m);

#endif
