/*
 * dash.h - the web dashboard on the HTTP admin port (main thread).
 *
 * Serves the single-page app (HTML, CSS, JS embedded at build time from
 * broker/dashboard/, see dash_assets.h) at /, and its JSON API under
 * /api/ (the reads and actions on queues and jobs live in dash_api.c).
 * /healthz, /metrics and /api/queues stay with http.c, unchanged.
 *
 * Access:
 * - with --requirepass, every dashboard path needs HTTP Basic auth as
 *   user `default` with that password (401 otherwise);
 * - without it, only loopback clients are served (403 otherwise).
 * Actions are POSTs to /api/actions/<name> that must carry the header
 * X-CSRF-Token: HMAC-SHA-256 of (user, session cookie) under a secret
 * drawn at start (so tokens die with the process), handed out by
 * GET /api/session. A POST without a session cookie or a valid token, or
 * from a foreign Origin, gets 403. Every action is logged with the user.
 *
 * Throughput: a 1-second timer gathers every queue's totals from the
 * shards (admin_rpc) into the rate rings (rates.h); GET /api/throughput
 * reads them.
 */
#ifndef SPOOL_DASH_H
#define SPOOL_DASH_H

#include <stdbool.h>

struct server;
struct evhttp_request;

/* Draws the CSRF secret and starts the sampler. */
int dash_start(struct server *srv);
/* Cancels waiting shard calls and stops the sampler (before evhttp_free). */
void dash_stop(struct server *srv);
/* Answers req (now or once the shards reply) when its path is the
 * dashboard's; false leaves it to the caller. */
bool dash_handle(struct server *srv, struct evhttp_request *req);

#endif
