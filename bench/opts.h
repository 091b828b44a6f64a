/*
 * opts.h - spool-bench's settings: what to run against what, and how hard.
 *
 * Filled once by opts_parse() on the main thread and read-only afterwards
 * (the load-generator threads share one const copy).
 */
#ifndef SPOOL_BENCH_OPTS_H
#define SPOOL_BENCH_OPTS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum bench_kind { KIND_SPOOL, KIND_REDIS, KIND_BEANSTALKD } bench_kind;

typedef enum bench_workload {
    WL_PUSH,           /* enqueue only */
    WL_CYCLE_RELIABLE, /* push -> reserve/move -> ack/remove */
    WL_CYCLE_POP       /* LPUSH -> BRPOP */
} bench_workload;

typedef struct bench_cfg {
    bench_kind kind;
    bench_workload workload;
    const char *host;
    const char *port;
    const char *queue;       /* queue / list key / beanstalkd tube (the prefix when queues > 1) */
    int queues;              /* spread over this many queues: <queue>-0 ... */
    int producers;
    int consumers;
    int depth;               /* pushes in flight per producer connection */
    int threads;             /* load-generator threads (epoll loops) */
    size_t payload;          /* payload bytes */
    double duration_s;       /* measuring window, upper bound */
    long long jobs;          /* stop after this many (0 = duration only) */
    double rate;             /* target pushes/s over all producers; 0 = as fast as possible */
    long long delayed;       /* delayed jobs to pre-load before measuring */
    long long max_backlog;   /* cycle workloads: producers pause above this many undelivered jobs */
    double drain_s;          /* after the window: how long to wait for the backlog to drain */
    int fetch_timeout_ms;    /* blocking timeout of each consumer fetch */
    long long delay_ms;      /* DELAY of every push (used by the delayed pre-load) */
    int server_pid;          /* sample this process's CPU time over the window (0 = no) */
    const char *queue_config;/* spool: "name value ..." set with QUEUE.CONFIG before the run */
    int groups;              /* spool JOB.PUSH: spread pushes over this many GROUP keys (0 = none) */
    bool native_push;        /* spool: JOB.PUSH instead of LPUSH */
    bool json;
    bool quiet;
} bench_cfg;

/* Parses argv into *cfg. Returns 0, or 1 after printing usage (--help) or
 * an error message to stderr (the caller exits with status 1 or 0). */
int opts_parse(int argc, char **argv, bench_cfg *cfg, bool *help);

/* Name of queue i (0 <= i < cfg->queues): cfg->queue itself when there is
 * one queue, else "<queue>-<i>". */
void opts_queue_name(const bench_cfg *cfg, int i, char *buf, size_t n);

const char *opts_kind_name(bench_kind k);
const char *opts_workload_name(bench_workload w);
/* The push command as a user would name it: LPUSH, JOB.PUSH, put. */
const char *opts_push_name(const bench_cfg *cfg);
/* The consumer's commands: BRPOP, JOB.RESERVE+JOB.ACK, ... ("" for push). */
const char *opts_fetch_name(const bench_cfg *cfg);

#endif
