/*
 * snapshot.h - the state of every queue at one moment (QUEUE.LIST, then
 * QUEUE.STATS of each), and what `queues` and `top` derive from two of
 * them: rates per second from the deltas of the push and ack counters.
 */
#ifndef SPOOL_CLI_SNAPSHOT_H
#define SPOOL_CLI_SNAPSHOT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"

typedef struct snap_queue {
    char *name;
    spool_queue_stats st;
} snap_queue;

typedef struct snap {
    size_t n;
    snap_queue *q;
    long long mono_ms; /* when it was taken (monotonic clock) */
} snap;

/* Takes a snapshot over x->c (connected): CLI_OK or an exit code. */
int snap_take(cli_ctx *x, snap *s);
void snap_free(snap *s);
/* One queue's stats as a JSON object ("name" first). */
cJSON *snap_stats_json(const char *name, const spool_queue_stats *st);
/* {"queues":[...]} with push_rate / ack_rate from prev (NULL: null rates). */
cJSON *snap_json(const snap *cur, const snap *prev);
/* The aligned table of cur, rates from prev (NULL: "-"). */
void snap_print(const snap *cur, const snap *prev, FILE *f);

/* "rate 14/1s conc 20", or "-" without limits. */
char *snap_limits(char *buf, size_t cap, const spool_queue_stats *st);

#endif
