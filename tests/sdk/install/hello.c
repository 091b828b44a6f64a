/*
 * hello.c - a producer and a worker in one program, built by
 * install_check.sh against the INSTALLED libspool with nothing but
 * `pkg-config --cflags --libs libspool`. Pushes three jobs, works them off
 * with a two-thread worker, prints "hello: 3 done", exits 0.
 */
#include <spool.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int handled;

static int handler(spool_job *job, spool_ctx *ctx, void *arg)
{
    (void)ctx;
    spool_worker *w = *(spool_worker **)arg;
    printf("hello: job %s says %s\n", job->id, spool_job_json_str(job, "greeting"));
    fflush(stdout);
    /* The third call stops the worker (a graceful stop lets the other
     * thread's job finish). Counting calls, not "done": with two threads
     * the third job can start before the second one is counted done. */
    if (atomic_fetch_add(&handled, 1) + 1 == 3)
        spool_worker_stop(w);
    return SPOOL_OK;
}

int main(void)
{
    spool_client *c = NULL;
    if (spool_connect(&c, NULL) < 0) { /* SPOOL_URL */
        fprintf(stderr, "hello: %s\n", spool_errmsg(c));
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        if (spool_push_str(c, "hello", "{\"greeting\":\"hi\"}", NULL, NULL) < 0) {
            fprintf(stderr, "hello: push: %s\n", spool_errmsg(c));
            return 1;
        }
    }
    spool_close(c);

    static spool_worker *w;
    const char *queues[] = { "hello", NULL };
    spool_worker_config cfg = { .queues = queues, .handler = handler, .handler_arg = &w,
                                .threads = 2, .log_level = SPOOL_LOG_WARN };
    if (spool_worker_new(&w, &cfg) < 0)
        return 1;
    int rc = spool_worker_run(w);
    spool_worker_counters ct;
    spool_worker_counters_get(w, &ct);
    spool_worker_free(w);
    printf("hello: %lld done\n", ct.done);
    return rc == 0 && ct.done == 3 ? 0 : 1;
}
