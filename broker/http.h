/*
 * http.h - the HTTP admin endpoint (evhttp), on the main thread.
 *
 *   GET /healthz      200 "ok" while spoold serves
 *   GET /metrics      Prometheus text format: server and per-queue metrics
 *   GET /api/queues   JSON: every queue with its counts and totals
 *
 * Per-queue figures come from the shards: a request sends one message to
 * every shard (origin = the main thread, see server.h) and answers when all
 * have replied. The main thread owns the evhttp server and the pending
 * requests; nothing here locks.
 */
#ifndef SPOOL_HTTP_H
#define SPOOL_HTTP_H

struct server;
struct msg;

/* Listens on --bind:--http-port (0 = no HTTP admin). A port that cannot be
 * bound is logged and the admin endpoint left off: it never stops spoold. */
int http_start(struct server *srv);
void http_stop(struct server *srv);
/* A shard's reply to an admin request (on the main thread). Takes m. */
void http_on_reply(struct server *srv, struct msg *m);

#endif
