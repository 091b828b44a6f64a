/*
 * driver.h - what the load engine needs from a server's protocol.
 *
 * A driver writes requests into a connection's output buffer (recording
 * each in the connection's request ring) and turns the bytes a server
 * sends back into engine events (engine.h): push answered, job delivered,
 * fetch came back empty, ack answered, or a failure. It never touches the
 * socket: the engine reads and writes. Two drivers: RESP (spool and
 * redis-server, drv_resp.c) and the beanstalkd text protocol (drv_beans.c).
 *
 * prepare/cleanup/setup_conn run on the main thread with blocking I/O
 * before (after) the load threads run; the rest runs on the thread that
 * owns the connection.
 */
#ifndef SPOOL_BENCH_DRIVER_H
#define SPOOL_BENCH_DRIVER_H

#include <stddef.h>

#include "bconn.h"
#include "opts.h"

typedef struct driver {
    /* Checks the server answers and removes queue's ready jobs (and
     * Redis's processing list); delayed jobs stay, so --delayed can top
     * them up instead of loading them again. 0, or -1 with a message. */
    int (*prepare)(const bench_cfg *cfg, const char *queue, char *err, size_t errlen);
    /* Removes the ready jobs the run left in queue (best effort). */
    void (*cleanup)(const bench_cfg *cfg, const char *queue);
    /* Delayed jobs now in queue (0 when unknown). */
    long long (*delayed_count)(const bench_cfg *cfg, const char *queue);
    /* Per-connection set-up on the still-blocking socket (beanstalkd: use
     * or watch the tube). 0, or -1 with a message. */
    int (*setup_conn)(bconn *c, char *err, size_t errlen);
    /* Appends one push of payload (which carries the push time ts). */
    void (*put_push)(bconn *c, const char *payload, size_t len, uint64_t ts);
    /* Appends one blocking fetch with the configured timeout. */
    void (*put_fetch)(bconn *c);
    /* Consumes bytes read from the server; -1 after engine_fail(). */
    int (*on_bytes)(bconn *c, const char *buf, size_t len);
} driver;

extern const driver drv_resp;
extern const driver drv_beans;

#endif
