/*
 * report.h - spool-bench's output: a table for people, or one JSON object
 * for bench/compare and other scripts. Main thread, after the run.
 */
#ifndef SPOOL_BENCH_REPORT_H
#define SPOOL_BENCH_REPORT_H

#include <stdio.h>

#include "engine.h"
#include "opts.h"

/* What happened before the measured run. */
typedef struct preload_info {
    long long present; /* delayed jobs in the queue when the run began */
    long long jobs;    /* of those, pre-loaded by this invocation */
    double seconds;    /* how long that took */
} preload_info;

void report_table(FILE *f, const bench_cfg *cfg, const preload_info *pre, const bench_result *res);
void report_json(FILE *f, const bench_cfg *cfg, const preload_info *pre, const bench_result *res);
/* A run that could not happen (unsupported combination, no connection). */
void report_json_status(FILE *f, const bench_cfg *cfg, const char *status, const char *reason);

#endif
