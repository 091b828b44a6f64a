/*
 * noop-bench - how many jobs per second the worker runtime moves with a
 * handler that does nothing: the SDK's own overhead plus the broker's
 * JOB.RESERVE + JOB.ACK round trips (one job per reserve, one ack each).
 *
 * usage: noop-bench [--url spool://host:port] [--threads N] [--jobs N]
 *                   [--queue NAME]
 *
 * Pushes --jobs jobs (pipelined, 1000 per round trip) to a fresh queue,
 * then starts a worker with --threads threads and times from its start
 * until every job is acked. Prints one line:
 *   threads=2 jobs=20000 seconds=1.234 jobs_per_sec=16207
 * A monitor thread polls the worker's counters and stops it when done.
 */
#include <spool.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int noop(spool_job *job, spool_ctx *ctx, void *arg)
{
    (void)job;
    (void)ctx;
    (void)arg;
    return SPOOL_OK;
}

typedef struct monitor {
    spool_worker *w;
    long long target;
    double end;
} monitor;

static void *watch(void *arg)
{
    monitor *m = arg;
    for (;;) {
        spool_worker_counters ct;
        spool_worker_counters_get(m->w, &ct);
        if (ct.done + ct.failed + ct.retried >= m->target)
            break;
        usleep(2000);
    }
    m->end = now_s();
    spool_worker_stop(m->w);
    return NULL;
}

static int push_all(const char *url, const char *queue, long long n)
{
    spool_client *c = NULL;
    if (spool_connect_url(&c, url) < 0) {
        fprintf(stderr, "noop-bench: %s\n", spool_errmsg(c));
        spool_close(c);
        return -1;
    }
    static spool_push_item items[1000];
    for (long long done = 0; done < n;) {
        size_t k = n - done < 1000 ? (size_t)(n - done) : 1000;
        for (size_t i = 0; i < k; i++)
            items[i] = (spool_push_item){ .payload = "{}", .len = 2 };
        if (spool_push_many(c, queue, items, k) < 0) {
            fprintf(stderr, "noop-bench: push: %s\n", spool_errmsg(c));
            spool_close(c);
            return -1;
        }
        done += (long long)k;
    }
    spool_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int threads = 1;
    long long jobs = 20000;
    char queue[64];
    snprintf(queue, sizeof queue, "noop-bench-%d", (int)getpid());
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--jobs")) jobs = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--queue")) snprintf(queue, sizeof queue, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "usage: noop-bench [--url U] [--threads N] [--jobs N] [--queue Q]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || jobs < 1) {
        fprintf(stderr, "noop-bench: --threads 1..256, --jobs >= 1\n");
        return 2;
    }
    if (!url)
        url = getenv("SPOOL_URL") ? getenv("SPOOL_URL") : SPOOL_DEFAULT_URL;
    if (push_all(url, queue, jobs) < 0)
        return 1;
    const char *queues[] = { queue, NULL };
    spool_worker_config cfg = { .url = url, .queues = queues, .handler = noop, .threads = threads,
                                .log_level = SPOOL_LOG_WARN, .no_signals = true };
    monitor m = { .target = jobs };
    if (spool_worker_new(&m.w, &cfg) < 0)
        return 1;
    pthread_t th;
    double start = now_s();
    pthread_create(&th, NULL, watch, &m);
    int rc = spool_worker_run(m.w);
    pthread_join(th, NULL);
    spool_worker_counters ct;
    spool_worker_counters_get(m.w, &ct);
    spool_worker_free(m.w);
    double secs = m.end - start;
    printf("threads=%d jobs=%lld seconds=%.3f jobs_per_sec=%.0f\n", threads, ct.done, secs,
           (double)ct.done / secs);
    return rc == 0 && ct.done == jobs ? 0 : 1;
}
