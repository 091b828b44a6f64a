/*
 * opts.c - command-line parsing for spool-bench (see opts.h).
 *
 * Every number is range-checked, so a run is always bounded: the window is
 * at most an hour, the drain at most a minute, connections at most 1,000.
 */
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: spool-bench [options]\n"
    "\n"
    "Load generator for spool, redis-server and beanstalkd. Producers push JSON\n"
    "jobs stamped with their push time; consumers take them and record the\n"
    "push-to-delivery latency.\n"
    "\n"
    "  --kind K             spool | redis | beanstalkd            (spool)\n"
    "  -w, --workload W     push | cycle-reliable | cycle-pop     (push)\n"
    "        push            enqueue only: LPUSH (or JOB.PUSH), beanstalkd put\n"
    "        cycle-reliable  spool: JOB.PUSH -> JOB.RESERVE TIMEOUT -> JOB.ACK\n"
    "                        redis: LPUSH -> BLMOVE q q:processing RIGHT LEFT -> LREM\n"
    "                        beanstalkd: put -> reserve-with-timeout -> delete\n"
    "        cycle-pop       LPUSH -> BRPOP (spool, redis)\n"
    "  --host H             server address                        (127.0.0.1)\n"
    "  --port P             server port    (7379 spool, 6379 redis, 11300 beanstalkd)\n"
    "  --queue Q            queue / list key / tube               (bench)\n"
    "  --queues N           spread the load over N queues Q-0 .. Q-(N-1): producer i\n"
    "                       pushes to and consumer i takes from queue i mod N (1)\n"
    "  -P, --producers N    producer connections                  (16)\n"
    "  -C, --consumers N    consumer connections (cycle workloads) (16)\n"
    "  -d, --depth N        pushes in flight per producer (pipelining) (1)\n"
    "  -t, --threads N      load-generator threads (epoll loops)  (1)\n"
    "  -s, --payload BYTES  payload size                          (200)\n"
    "  -D, --duration SEC   measuring window, at most 3600        (5)\n"
    "  -n, --jobs N         stop earlier after N jobs             (no limit)\n"
    "  --rate N             target pushes/s over all producers    (as fast as possible)\n"
    "  --delayed N          before measuring, top the queue up to N jobs delayed by\n"
    "                       1 hour (spool: JOB.PUSH ... DELAY 3600000; beanstalkd: put\n"
    "                       with a delay); they stay for later runs\n"
    "  --max-backlog N      cycle workloads: producers pause while N jobs are\n"
    "                       pushed but not yet delivered (max(1000, 4*P*depth))\n"
    "  --drain SEC          after the window, wait this long for the backlog (5)\n"
    "  --fetch-timeout MS   blocking timeout of each consumer fetch (1000)\n"
    "  --push-cmd C         spool: lpush | job.push (job.push for cycle-reliable,\n"
    "                       lpush otherwise)\n"
    "  --server-pid PID     also report the CPU time of that (local) server process\n"
    "  --queue-config S     spool: QUEUE.CONFIG every queue SET S before the run\n"
    "                       (\"concurrency 1000\", \"rate 5000/1s\")\n"
    "  --groups N           spool JOB.PUSH: GROUP g0 .. g(N-1), spread over the pushes\n"
    "  --json               print the result as one JSON object instead of a table\n"
    "  -q, --quiet          no progress lines on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 bad usage, 2 cannot connect, 3 the server refused a\n"
    "command or failed during the run, 4 workload not supported by that kind.\n";

enum {
    O_KIND = 256, O_HOST, O_PORT, O_QUEUE, O_QUEUES, O_RATE, O_DELAYED, O_BACKLOG,
    O_DRAIN, O_FETCH_TIMEOUT, O_PUSH_CMD, O_JSON, O_SERVER_PID, O_QUEUE_CONFIG, O_GROUPS
};

static const struct option long_opts[] = {
    { "kind", required_argument, NULL, O_KIND },
    { "workload", required_argument, NULL, 'w' },
    { "host", required_argument, NULL, O_HOST },
    { "port", required_argument, NULL, O_PORT },
    { "queue", required_argument, NULL, O_QUEUE },
    { "queues", required_argument, NULL, O_QUEUES },
    { "producers", required_argument, NULL, 'P' },
    { "consumers", required_argument, NULL, 'C' },
    { "depth", required_argument, NULL, 'd' },
    { "threads", required_argument, NULL, 't' },
    { "payload", required_argument, NULL, 's' },
    { "duration", required_argument, NULL, 'D' },
    { "jobs", required_argument, NULL, 'n' },
    { "rate", required_argument, NULL, O_RATE },
    { "delayed", required_argument, NULL, O_DELAYED },
    { "max-backlog", required_argument, NULL, O_BACKLOG },
    { "drain", required_argument, NULL, O_DRAIN },
    { "fetch-timeout", required_argument, NULL, O_FETCH_TIMEOUT },
    { "push-cmd", required_argument, NULL, O_PUSH_CMD },
    { "server-pid", required_argument, NULL, O_SERVER_PID },
    { "queue-config", required_argument, NULL, O_QUEUE_CONFIG },
    { "groups", required_argument, NULL, O_GROUPS },
    { "json", no_argument, NULL, O_JSON },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

/* ------------------------------------------------------------- names */

void opts_queue_name(const bench_cfg *cfg, int i, char *buf, size_t n)
{
    if (cfg->queues <= 1)
        snprintf(buf, n, "%s", cfg->queue);
    else
        snprintf(buf, n, "%s-%d", cfg->queue, i);
}

const char *opts_kind_name(bench_kind k)
{
    static const char *const names[] = { "spool", "redis", "beanstalkd" };
    return names[k];
}

const char *opts_workload_name(bench_workload w)
{
    static const char *const names[] = { "push", "cycle-reliable", "cycle-pop" };
    return names[w];
}

const char *opts_push_name(const bench_cfg *cfg)
{
    if (cfg->kind == KIND_BEANSTALKD)
        return "put";
    return cfg->native_push ? "JOB.PUSH" : "LPUSH";
}

const char *opts_fetch_name(const bench_cfg *cfg)
{
    if (cfg->workload == WL_PUSH)
        return "";
    if (cfg->workload == WL_CYCLE_POP)
        return "BRPOP";
    switch (cfg->kind) {
    case KIND_SPOOL: return "JOB.RESERVE+JOB.ACK";
    case KIND_REDIS: return "BLMOVE+LREM";
    default: return "reserve-with-timeout+delete";
    }
}

/* ------------------------------------------------------------ numbers */

static int num_ll(const char *name, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "spool-bench: --%s wants a whole number from %lld to %lld, not '%s'\n",
                name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int num_int(const char *name, const char *s, long long lo, long long hi, int *out)
{
    long long v;
    if (num_ll(name, s, lo, hi, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int num_dbl(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "spool-bench: --%s wants a number from %g to %g, not '%s'\n",
                name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ choices */

static int pick(const char *name, const char *s, const char *const *choices, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    fprintf(stderr, "spool-bench: --%s must be one of", name);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s", choices[i]);
    fprintf(stderr, ", not '%s'\n", s);
    return -1;
}

static void defaults(bench_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = KIND_SPOOL;
    c->workload = WL_PUSH;
    c->host = "127.0.0.1";
    c->queue = "bench";
    c->queues = 1;
    c->producers = 16;
    c->consumers = 16;
    c->depth = 1;
    c->threads = 1;
    c->payload = 200;
    c->duration_s = 5;
    c->drain_s = 5;
    c->fetch_timeout_ms = 1000;
}

/* Fills what depends on other settings. */
static void finish(bench_cfg *c, int push_cmd)
{
    static const char *const ports[] = { "7379", "6379", "11300" };
    if (!c->port)
        c->port = ports[c->kind];
    if (c->workload == WL_PUSH)
        c->consumers = 0;
    if (push_cmd >= 0)
        c->native_push = push_cmd == 1;
    else
        c->native_push = c->kind == KIND_SPOOL && c->workload == WL_CYCLE_RELIABLE;
    if (c->max_backlog == 0) {
        long long b = 4LL * c->producers * c->depth;
        c->max_backlog = b > 1000 ? b : 1000;
    }
    if (c->threads > c->producers + c->consumers)
        c->threads = c->producers + c->consumers;
    if (c->threads < 1)
        c->threads = 1;
}

/* One option; 0 or -1. */
static int apply(bench_cfg *c, int opt, const char *a, int *push_cmd)
{
    static const char *const kinds[] = { "spool", "redis", "beanstalkd" };
    static const char *const wls[] = { "push", "cycle-reliable", "cycle-pop" };
    static const char *const pcs[] = { "lpush", "job.push" };
    long long ll;
    int i;
    switch (opt) {
    case O_KIND:
        if (pick("kind", a, kinds, 3, &i) != 0)
            return -1;
        c->kind = (bench_kind)i;
        return 0;
    case 'w':
        if (pick("workload", a, wls, 3, &i) != 0)
            return -1;
        c->workload = (bench_workload)i;
        return 0;
    case O_HOST: c->host = a; return 0;
    case O_PORT: c->port = a; return 0;
    case O_QUEUE:
        if (strlen(a) == 0 || strlen(a) > 200 || strpbrk(a, " \r\n")) {
            fprintf(stderr, "spool-bench: --queue wants 1 to 200 characters without spaces\n");
            return -1;
        }
        c->queue = a;
        return 0;
    case O_QUEUES: return num_int("queues", a, 1, 1000, &c->queues);
    case 'P': return num_int("producers", a, 1, 1000, &c->producers);
    case 'C': return num_int("consumers", a, 1, 1000, &c->consumers);
    case 'd': return num_int("depth", a, 1, 100000, &c->depth);
    case 't': return num_int("threads", a, 1, 64, &c->threads);
    case 's':
        if (num_ll("payload", a, 1, 16 << 20, &ll) != 0)
            return -1;
        c->payload = (size_t)ll;
        return 0;
    case 'D': return num_dbl("duration", a, 0.01, 3600, &c->duration_s);
    case 'n': return num_ll("jobs", a, 0, 1LL << 40, &c->jobs);
    case O_RATE: return num_dbl("rate", a, 0, 1e9, &c->rate);
    case O_DELAYED: return num_ll("delayed", a, 0, 100000000, &c->delayed);
    case O_BACKLOG: return num_ll("max-backlog", a, 1, 1LL << 40, &c->max_backlog);
    case O_DRAIN: return num_dbl("drain", a, 0, 60, &c->drain_s);
    case O_FETCH_TIMEOUT: return num_int("fetch-timeout", a, 1, 60000, &c->fetch_timeout_ms);
    case O_PUSH_CMD: return pick("push-cmd", a, pcs, 2, push_cmd);
    case O_SERVER_PID: return num_int("server-pid", a, 1, 1 << 30, &c->server_pid);
    case O_QUEUE_CONFIG: c->queue_config = a; return 0;
    case O_GROUPS: return num_int("groups", a, 1, 1000000, &c->groups);
    case O_JSON: c->json = true; return 0;
    case 'q': c->quiet = true; return 0;
    default: return -1;
    }
}

int opts_parse(int argc, char **argv, bench_cfg *cfg, bool *help)
{
    int opt, push_cmd = -1;
    defaults(cfg);
    *help = false;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "w:P:C:d:t:s:D:n:qh", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_text, stdout);
            *help = true;
            return 1;
        }
        if (opt == '?' || apply(cfg, opt, optarg, &push_cmd) != 0) {
            fputs("spool-bench: see --help\n", stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "spool-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 1;
    }
    finish(cfg, push_cmd);
    return 0;
}
