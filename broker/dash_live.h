/*
 * dash_live.h - live updates of the dashboard: Server-Sent Events.
 *
 * GET /api/events answers text/event-stream and stays open: every time
 * the 1-second sampler (dash.c) finds the queues' figures changed, each
 * stream gets one event
 *     event: overview
 *     data: <the JSON of GET /api/overview>
 * and a stream that got nothing for DLIVE_HEARTBEAT_S seconds gets a
 * comment line (": keep-alive") so proxies and the browser see it alive.
 * A new stream gets the latest figures at once.
 *
 * Bounded: at most DLIVE_MAX streams; beyond, 503 with a message (the
 * page then polls). A client that does not read gets at most
 * DLIVE_BACKLOG_MAX bytes queued; the events past it are left out. A stream ends when its client goes (evhttp's close
 * callback frees it) or when spoold stops (dlive_stop ends every stream
 * with its last chunk). Main thread only.
 */
#ifndef SPOOL_DASH_LIVE_H
#define SPOOL_DASH_LIVE_H

#include "resp.h"

#include <stdint.h>

#define DLIVE_MAX 16
#define DLIVE_HEARTBEAT_S 15
#define DLIVE_BACKLOG_MAX (1 << 20) /* bytes queued for a stream's client */

struct evhttp_request;

/* Starts a stream on req, or answers 503 when DLIVE_MAX are open. */
void dlive_open(struct evhttp_request *req);
/* Sends json as an overview event to every stream when it differs from
 * the last one sent (the "time" member aside), and keeps it for new
 * streams. */
void dlive_publish(const resp_buf *json);
/* Once a second: heartbeats to quiet streams (now: monotonic ms). */
void dlive_tick(int64_t now);
/* Streams open now; events left out since start because their stream's
 * client had DLIVE_BACKLOG_MAX bytes unread. */
int dlive_count(void);
uint64_t dlive_skipped(void);
/* Ends every stream (before evhttp_free). */
void dlive_stop(void);

#endif
