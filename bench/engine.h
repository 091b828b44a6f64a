/*
 * engine.h - runs one measured load: connections, threads, the clock.
 *
 * engine_run() connects every producer and consumer (blocking set-up on
 * the calling thread), spreads them round robin over cfg->threads epoll
 * loops, and coordinates three phases from the calling thread:
 *
 *   RUN    producers push (bounded by depth, --rate and --max-backlog),
 *          consumers fetch; latencies are recorded. Ends at the deadline or
 *          when the job budget is done: that instant closes the window.
 *   DRAIN  no new pushes; answers to pushes in flight and the backlog are
 *          still consumed (not timed) so the server is left empty, up to
 *          cfg->drain_s.
 *   DONE   threads leave their loops; connections are closed.
 *
 * jobs/s = jobs finished inside the window / window length, where a job
 * finishes when its push is answered (push), its delivery arrives
 * (cycle-pop) or its ack/delete is answered (cycle-reliable).
 *
 * The engine_* event functions are called by drivers on the thread that
 * owns the connection. Counters shared between threads are atomics;
 * histograms are per thread and merged after the join.
 */
#ifndef SPOOL_BENCH_ENGINE_H
#define SPOOL_BENCH_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "bconn.h"
#include "driver.h"
#include "hist.h"
#include "opts.h"

typedef struct bench_result {
    int status;            /* 0 ok; 2 cannot connect; 3 failed during the run */
    char error[512];
    double window_s;       /* length of the measuring window */
    uint64_t window_t0_ns; /* its start and end, CLOCK_MONOTONIC, so that counters */
    uint64_t window_t1_ns; /* read outside (bench/compare) can be cut to it */
    uint64_t finished;     /* jobs finished inside the window */
    uint64_t pushed;       /* pushes answered OK inside the window */
    uint64_t sent;         /* pushes written, whole run */
    uint64_t push_ok;      /* pushes answered OK, whole run */
    uint64_t delivered;    /* deliveries, whole run */
    uint64_t acked;        /* acks answered OK, whole run */
    uint64_t ack_refused;  /* acks answered 0 / NOT_FOUND */
    uint64_t fetch_empty;  /* fetches that timed out */
    uint64_t dups;         /* a job number delivered twice */
    uint64_t undrained;    /* pushed OK but never finished */
    double bench_cpu;      /* cores used by spool-bench over the window */
    double server_cpu;     /* cores used by --server-pid over the window; -1 unknown */
    hist push_lat;         /* push written -> push answered */
    hist deliver_lat;      /* push written -> delivered to a consumer */
    hist cycle_lat;        /* push written -> ack answered */
} bench_result;

/* Runs the load described by cfg with drv; fills *res (which it
 * initialises). Returns res->status. */
int engine_run(const bench_cfg *cfg, const driver *drv, bench_result *res);

/* ------------------------------------------------------ driver events */

/* A push was answered: ok, or refused with msg. */
void engine_push_done(bconn *c, uint64_t ts, bool ok, const char *msg);
/* A job arrived at a consumer. Returns the push time found in its payload
 * (0 when the payload is not one of ours). */
uint64_t engine_delivered(bconn *c, const char *payload, size_t len);
/* A fetch timed out empty. */
void engine_fetch_empty(bconn *c);
/* An ack (JOB.ACK, LREM, delete) was answered; ok = it removed the job. */
void engine_ack_done(bconn *c, uint64_t ts, bool ok);
/* Consumer: after a delivery or an empty fetch, fetch again unless the run
 * is over. */
void engine_fetch_next(bconn *c);
/* Ends the run with an error (the first message wins). */
void engine_fail(bconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
