/*
 * events.h - spool's job lifecycle events, built as pub/sub messages.
 *
 * Core layer: no thread, no socket. Builds the MSG_PUBLISH of an event;
 * the shard queues it per I/O thread and posts it after the turn commits.
 * When nobody subscribes anywhere (events_listening is false) the shard
 * skips building events altogether: they cost nothing while nobody listens.
 *
 * Channel: "spool:events:<queue>"; payload: a JSON object, e.g.
 * {"event":"acked","queue":"emails","id":"0194…","attempt":1,"time":1764…}.
 * Events: pushed, reserved, acked, retried, expired, dead; progress,
 * scheduled and batch (issue 18's features add those).
 *
 * Calls down only: msg, queue (the job's fields), textfmt, clock.
 */
#ifndef SPOOL_EVENTS_H
#define SPOOL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct msg;
struct job;

/* True while at least one client subscribes to something. */
bool events_listening(struct server *srv);

/* The MSG_PUBLISH of a job event; err (may be NULL) is the error given
 * with this failure. */
struct msg *events_job_message(const struct job *j, const char *event, const char *err, size_t errlen);
/* The same with one more field, key, whose value is the JSON text json
 * (progress: the reported value; scheduled: {"name":…,"tick":…}; batch:
 * {"id":…,"callback":…}). */
struct msg *events_job_message_json(const struct job *j, const char *event, const char *err, size_t errlen,
                                    const char *key, const char *json);

/* A copy of a MSG_PUBLISH (one per I/O thread). */
struct msg *events_copy(const struct msg *m);

#endif
