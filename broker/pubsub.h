/*
 * pubsub.h - the subscription registry of Redis pub/sub.
 *
 * Runtimes layer, I/O thread. Subscriptions belong to connections, so each
 * I/O thread knows only its own subscribers (linked in io->subscribers);
 * nothing is shared but one atomic count of subscriptions in the whole
 * server (srv->subscriptions), which events.h reads so that shards skip
 * building events while nobody listens. A publisher (PUBLISH on any I/O
 * thread, or a shard announcing a job event) sends the message to every
 * I/O thread, which delivers it here to its matching subscribers.
 *
 * Calls down only: the connection (conn_write_oob) and textfmt. The
 * commands that fill the registry are in cmd_pubsub.c; the job events in
 * events.c.
 */
#ifndef SPOOL_PUBSUB_H
#define SPOOL_PUBSUB_H

#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct msg;
struct io_thread;

/* Adds / removes one channel (or pattern) of c; false when it was already
 * there / not there. */
bool pubsub_add(struct conn *c, bool pattern, const char *s, size_t len);
bool pubsub_del(struct conn *c, bool pattern, const char *s, size_t len);
/* Channels plus patterns c listens to. */
size_t pubsub_count(const struct conn *c);

/* True while c is in RESP2 subscribed mode (only (P)(UN)SUBSCRIBE, PING,
 * QUIT, RESET allowed). */
bool pubsub_restricted(const struct conn *c);

/* Forget every subscription of c (on close). */
void pubsub_conn_gone(struct conn *c);

/* Delivers the MSG_PUBLISH m to this thread's subscribers; returns how
 * many received it. Does not free m. */
long pubsub_deliver(struct io_thread *io, const struct msg *m);

/* Appends one name record (textfmt.h) per subscribed channel of this
 * thread, matching pattern when it is not NULL, to out when names is true;
 * returns the number of pattern subscriptions (PUBSUB NUMPAT). */
long long pubsub_names(struct io_thread *io, resp_buf *out, bool names, const char *pattern);

#endif
