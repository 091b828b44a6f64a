/*
 * spool_bench.c - main() of spool-bench, the load generator of issue 7.
 *
 * Order of a run: parse the settings; refuse combinations a server cannot
 * do (exit 4); let the driver check the server and empty the queue; pre-load
 * --delayed jobs (a push run of its own, not measured); run the measured
 * load (engine.c); clean up; print the table or JSON. Everything is on the
 * main thread except the engine's load loops.
 */
#include "driver.h"
#include "engine.h"
#include "jobfmt.h"
#include "opts.h"
#include "report.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRELOAD_CONNS 4
#define PRELOAD_DEPTH 512
#define PRELOAD_DELAY_MS 3600000LL

/* NULL when cfg is possible, else why not. */
static const char *unsupported(const bench_cfg *cfg)
{
    if (cfg->kind == KIND_BEANSTALKD && cfg->workload == WL_CYCLE_POP)
        return "beanstalkd has no list pop (cycle-pop is LPUSH -> BRPOP); use cycle-reliable";
    if (cfg->kind == KIND_REDIS && cfg->delayed > 0)
        return "redis-server has no delayed jobs (--delayed)";
    if (cfg->kind != KIND_SPOOL && cfg->native_push)
        return "--push-cmd job.push needs spool";
    return NULL;
}

static void progress(const bench_cfg *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const bench_cfg *cfg, const char *fmt, ...)
{
    va_list ap;
    if (cfg->quiet || cfg->json)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Delayed jobs over all the queues. */
static long long delayed_total(const bench_cfg *cfg, const driver *drv)
{
    char q[256];
    long long n = 0;
    for (int i = 0; i < cfg->queues; i++) {
        opts_queue_name(cfg, i, q, sizeof q);
        n += drv->delayed_count(cfg, q);
    }
    return n;
}

/* Removes the ready jobs of every queue; 0 or -1 with err set. */
static int prepare_all(const bench_cfg *cfg, const driver *drv, char *err, size_t errlen)
{
    char q[256];
    for (int i = 0; i < cfg->queues; i++) {
        opts_queue_name(cfg, i, q, sizeof q);
        if (drv->prepare(cfg, q, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static void cleanup_all(const bench_cfg *cfg, const driver *drv)
{
    char q[256];
    for (int i = 0; i < cfg->queues; i++) {
        opts_queue_name(cfg, i, q, sizeof q);
        drv->cleanup(cfg, q);
    }
}

/* Tops the queues up to cfg->delayed jobs delayed by an hour in all. */
static int preload(const bench_cfg *cfg, const driver *drv, preload_info *pre, bench_result *res)
{
    long long have = delayed_total(cfg, drv);
    pre->present = have;
    if (have >= cfg->delayed)
        return 0;
    bench_cfg p = *cfg;
    p.workload = WL_PUSH;
    p.producers = cfg->queues > PRELOAD_CONNS ? cfg->queues : PRELOAD_CONNS;
    p.consumers = 0;
    p.depth = PRELOAD_DEPTH;
    p.threads = 1;
    p.jobs = cfg->delayed - have;
    p.duration_s = 3600;
    p.rate = 0;
    p.delay_ms = PRELOAD_DELAY_MS;
    p.native_push = cfg->kind == KIND_SPOOL;
    p.drain_s = 30;
    progress(cfg, "spool-bench: %lld delayed jobs present, pre-loading %lld more...\n", have,
             p.jobs);
    uint64_t t = mono_ns();
    int rc = engine_run(&p, drv, res);
    pre->seconds = (double)(mono_ns() - t) / 1e9;
    pre->jobs = (long long)res->push_ok;
    pre->present = have + pre->jobs;
    progress(cfg, "spool-bench: pre-loaded %lld in %.2f s (%.0f jobs/s)\n", pre->jobs,
             pre->seconds, pre->seconds > 0 ? (double)pre->jobs / pre->seconds : 0);
    return rc;
}

static int fail_early(const bench_cfg *cfg, int code, const char *status, const char *why)
{
    if (cfg->json)
        report_json_status(stdout, cfg, status, why);
    else
        fprintf(stderr, "spool-bench: %s\n", why);
    return code;
}

static int bench(const bench_cfg *cfg)
{
    const driver *drv = cfg->kind == KIND_BEANSTALKD ? &drv_beans : &drv_resp;
    const char *why = unsupported(cfg);
    if (why)
        return fail_early(cfg, 4, "unsupported", why);
    char err[512];
    if (prepare_all(cfg, drv, err, sizeof err) != 0)
        return fail_early(cfg, strncmp(err, "cannot", 6) == 0 ? 2 : 3, "error", err);
    preload_info pre = { 0, 0, 0 };
    bench_result *res = malloc(sizeof *res);
    if (!res)
        abort();
    int rc = 0;
    if (cfg->delayed > 0)
        rc = preload(cfg, drv, &pre, res);
    if (rc == 0) {
        progress(cfg, "spool-bench: measuring for up to %.1f s...\n", cfg->duration_s);
        rc = engine_run(cfg, drv, res);
    }
    cleanup_all(cfg, drv);
    if (cfg->json)
        report_json(stdout, cfg, &pre, res);
    else
        report_table(stdout, cfg, &pre, res);
    free(res);
    return rc;
}

int main(int argc, char **argv)
{
    bench_cfg cfg;
    bool help;
    signal(SIGPIPE, SIG_IGN);
    if (opts_parse(argc, argv, &cfg, &help) != 0)
        return help ? 0 : 1;
    return bench(&cfg);
}
