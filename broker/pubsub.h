/*
 * pubsub.h - Redis pub/sub, and spool's job lifecycle events.
 *
 * Subscriptions belong to connections, so each I/O thread knows only its
 * own subscribers; nothing is shared but one atomic count of subscriptions
 * in the whole server. A publisher (PUBLISH on any I/O thread, or a shard
 * announcing an event) sends the message to every I/O thread, which
 * delivers it to its matching subscribers. When the count is zero, shards
 * skip building events altogether: events cost nothing while nobody listens.
 *
 * Event channel: "spool:events:<queue>"; payload: a JSON object, e.g.
 * {"event":"acked","queue":"emails","id":"0194…","attempt":1,"time":1764…}.
 */
#ifndef SPOOL_PUBSUB_H
#define SPOOL_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct conn;
struct msg;
struct io_thread;
struct job;

bool pubsub_listening(struct server *srv);

/* Builds the MSG_PUBLISH for a job event (shard side); err (may be NULL)
 * is the error given with this failure. */
struct msg *pubsub_job_message(const struct job *j, const char *event, const char *err, size_t errlen);
/* The same with one more field, key, whose value is the JSON text json
 * (e.g. "progress" and the reported value). */
struct msg *pubsub_job_message_json(const struct job *j, const char *event, const char *err, size_t errlen,
                                    const char *key, const char *json);
/* A copy of a MSG_PUBLISH (one per I/O thread). */
struct msg *pubsub_copy(const struct msg *m);

/* I/O side: deliver m's message to this thread's subscribers; returns how
 * many received it. Does not free m. */
long pubsub_deliver(struct io_thread *io, const struct msg *m);
/* Forget every subscription of c (on close). */
void pubsub_conn_gone(struct conn *c);
/* True while c is in RESP2 subscribed mode (only (P)(UN)SUBSCRIBE, PING,
 * QUIT, RESET allowed). */
bool pubsub_restricted(const struct conn *c);

/* Commands (I/O thread). */
void io_subscribe(struct conn *c, struct msg *m);
void io_unsubscribe(struct conn *c, struct msg *m);
void io_psubscribe(struct conn *c, struct msg *m);
void io_punsubscribe(struct conn *c, struct msg *m);
void io_publish(struct conn *c, struct msg *m);
void io_pubsub(struct conn *c, struct msg *m);
void peer_publish(struct io_thread *io, struct msg *m);
void peer_pubsub(struct io_thread *io, struct msg *m);

#endif
