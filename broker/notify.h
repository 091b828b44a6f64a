/*
 * notify.h - readiness and stop notices to the service manager (systemd's
 * sd_notify protocol, written here without libsystemd): one datagram of
 * "NAME=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or "@name" for the abstract namespace). Without $NOTIFY_SOCKET it does
 * nothing, so spoold runs the same outside a Type=notify unit.
 *
 * Called by server.c on the main thread: READY=1 once spoold listens and
 * its shards have recovered, STOPPING=1 when a stop signal arrives.
 */
#ifndef SPOOL_NOTIFY_H
#define SPOOL_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening on ..."). Returns 0, or a
 * negative errno when $NOTIFY_SOCKET is set but cannot be written to
 * (the caller logs it; the service manager will then time the start out). */
int notify_send(const char *state);

#endif
