/*
 * admin_rpc.h - commands from the main thread to the shards, for the HTTP
 * dashboard.
 *
 * The main thread never touches shard state. To read or change a queue it
 * builds the same MSG_CMD an I/O thread would (argv + a command of the
 * table, whose shard handler runs on the owning shard's thread, in a turn,
 * committed before the reply leaves), posts it to the shard's inbox with
 * origin = the main thread, and gets the RESP reply back through the main
 * inbox (server.c -> http_on_reply -> admin_rpc_on_reply). This is the
 * mechanism /metrics and /api/queues use (see http.c), wrapped so that a
 * caller gives a callback instead of a switch.
 *
 * The caller must have checked the arguments the way the command's I/O
 * handler would (shard handlers trust them): dash.c does, per action.
 *
 * API (main thread only):
 *   admin_rpc_shard(srv, k, cmd, argc, argv, len, done, arg)
 *       runs cmd on shard k; done(srv, arg, parts, 1) gets its reply.
 *   admin_rpc_all(srv, cmd, argc, argv, len, done, arg)
 *       runs cmd on every shard; parts[k] is shard k's reply.
 *   admin_rpc_on_reply(srv, m)
 *       true when m answers one of these calls (m is consumed).
 *   admin_rpc_shutdown()
 *       at stop: every waiting call gets done(srv, arg, NULL, 0), and later
 *       replies are dropped.
 * Replies are RESP3-encoded (maps stay maps); admin_rpc_parse() reads one.
 * At most ADMIN_RPC_MAX_PENDING calls wait at once; beyond, the call
 * returns -EBUSY and nothing is sent. done() is called exactly once per
 * call and may start new calls; nparts == 0 means the call was cancelled
 * by shutdown: free arg and answer nothing (evhttp frees the requests).
 */
#ifndef SPOOL_ADMIN_RPC_H
#define SPOOL_ADMIN_RPC_H

#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_RPC_MAX_PENDING 256

struct server;
struct msg;
struct command;

/* parts[0..nparts) are owned by the call and freed after done returns. */
typedef void (*admin_rpc_fn)(struct server *srv, void *arg, resp_buf *parts, int nparts);

int admin_rpc_shard(struct server *srv, int k, const struct command *cmd, int argc, const char *const *argv,
                    const size_t *len, admin_rpc_fn done, void *arg);
int admin_rpc_all(struct server *srv, const struct command *cmd, int argc, const char *const *argv,
                  const size_t *len, admin_rpc_fn done, void *arg);
bool admin_rpc_on_reply(struct server *srv, struct msg *m);
void admin_rpc_shutdown(struct server *srv);
/* Parses one RESP reply (NULL when it is not one whole value). */
resp_val *admin_rpc_parse(const resp_buf *b);

#endif
