/*
 * worker.c - the worker runtime: spool_worker_new/run/stop/free and the
 * worker threads (see worker_shared.h for the threads and what they share).
 *
 * A worker thread loops: (re)connect with exponential backoff and jitter,
 * JOB.RESERVE one job (blocking at most reserve_timeout_ms, so a stop is
 * noticed promptly), run the handler, send the result:
 *   SPOOL_DONE  -> JOB.ACK receipt
 *   SPOOL_RETRY -> JOB.NACK receipt [DELAY ms] ERROR text
 *   SPOOL_FAIL  -> JOB.NACK receipt ERROR text DEAD
 * A result that could not be sent because the connection broke is sent
 * again after reconnecting, with the same receipt, until the job's lease
 * would have run out: then the job has been (or will be) delivered again
 * and the broker refuses the old receipt anyway (-STALE), which counts the
 * job as lost here and never as done twice.
 *
 * Stop: spool_worker_stop() (or SIGTERM/SIGINT while spool_worker_run runs)
 * sets `stopping` and writes a byte to a pipe the run thread polls. Worker
 * threads stop reserving, finish the job in hand and return. At the stop
 * deadline the keeper hands back the jobs still running; the run thread
 * then waits for their handlers to return, dropping their results.
 */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RESERVE_TIMEOUT_MS 1000
#define DEFAULT_STOP_TIMEOUT_MS 30000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 10000

/* ================================================================ logging */

static void default_log(int level, const char *msg, void *arg)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    const char *tag = arg ? (const char *)arg : "spool-worker";
    fprintf(stderr, "%s: %s: %s\n", tag, names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}

static void sdk_worker_log(spool_worker *w, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sdk_worker_log(spool_worker *w, int level, const char *fmt, ...)
{
    if (level < w->cfg.log_level)
        return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->cfg.log)
        w->cfg.log(level, msg, w->cfg.log_arg);
    else
        default_log(level, msg, w->name);
}

/* ================================================================ helpers */

static int sdk_worker_client(spool_worker *w, const char *role, int idx, spool_client **out)
{
    char name[160];
    snprintf(name, sizeof name, "%s-%s-%d", w->name, role, idx);
    spool_options o = {
        .url = w->url,
        .connect_timeout_ms = w->cfg.connect_timeout_ms,
        .io_timeout_ms = w->cfg.io_timeout_ms,
        .name = name,
    };
    return sdk_client_create(out, &o);
}

static void sdk_worker_backoff(spool_worker *w, int n, unsigned *seed, bool until_stop)
{
    long long d = w->cfg.reconnect_min_ms;
    for (int i = 1; i < n && d < w->cfg.reconnect_max_ms; i++)
        d *= 2;
    if (d > w->cfg.reconnect_max_ms)
        d = w->cfg.reconnect_max_ms;
    d = d / 2 + (long long)(rand_r(seed) % (unsigned)(d / 2 + 1)); /* jitter: [d/2, d] */
    long long deadline = sdk_mono_ms() + d;
    pthread_mutex_lock(&w->mu);
    while ((!until_stop || !atomic_load(&w->stopping)) && sdk_mono_ms() < deadline)
        sdk_wait_locked(w, deadline);
    pthread_mutex_unlock(&w->mu);
}

static bool network_error(int rc)
{
    return rc == SPOOL_ECONN || rc == SPOOL_EIO || rc == SPOOL_ETIMEOUT || rc == SPOOL_EPROTO;
}

/* ============================================================ the context */

void spool_ctx_set_error(spool_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    ctx->has_error = true;
}

int spool_ctx_set_result(spool_ctx *ctx, const char *result, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return SPOOL_ENOMEM;
    memcpy(copy, result, len);
    copy[len] = '\0';
    free(ctx->result);
    ctx->result = copy;
    ctx->result_len = len;
    return 0;
}

int spool_ctx_progress(spool_ctx *ctx, const char *value)
{
    if (!ctx->receipt)
        return SPOOL_EINVAL;
    return spool_job_progress(ctx->c, ctx->receipt, value);
}

void spool_ctx_retry_in(spool_ctx *ctx, int64_t ms)
{
    ctx->retry_ms = ms < 0 ? -1 : ms;
}

bool spool_ctx_stopping(const spool_ctx *ctx)
{
    return atomic_load(&ctx->w->stopping);
}

bool spool_ctx_lease_lost(const spool_ctx *ctx)
{
    return atomic_load(&ctx->s->lost);
}

int spool_ctx_thread(const spool_ctx *ctx)
{
    return ctx->thread;
}

/* ======================================================= sending results */

typedef struct wthread {
    spool_worker *w;
    int idx;
    pthread_t tid;
    spool_client *c;
    unsigned seed;
    int failures;          /* consecutive connection failures */
    bool warned_no_dead;   /* the broker refused NACK ... DEAD once */
} wthread;

/* One attempt at sending the result: a spool_nack/spool_ack return value. */
static int send_result(wthread *t, const spool_job *job, int result, const spool_ctx *ctx)
{
    const char *err = ctx->has_error ? ctx->error : NULL;
    if (result == SPOOL_DONE && ctx->result)
        return spool_ack_result(t->c, job->receipt, ctx->result, ctx->result_len);
    if (result == SPOOL_DONE)
        return spool_ack(t->c, job->receipt);
    if (result == SPOOL_FAIL) {
        int rc = spool_nack(t->c, job->receipt, -1, err ? err : "handler failed", SPOOL_NACK_DEAD);
        if (rc != SPOOL_ESERVER)
            return rc;
        if (!t->warned_no_dead) /* a broker without NACK ... DEAD: plain NACK */
            sdk_worker_log(t->w, SPOOL_LOG_WARN, "broker refused JOB.NACK DEAD (%s); failing jobs are "
                       "nacked and retried per the queue's retries", spool_errmsg(t->c));
        t->warned_no_dead = true;
    }
    return spool_nack(t->c, job->receipt, ctx->retry_ms, err ? err : "handler asked for a retry", 0);
}

static void count_result(wthread *t, const spool_job *job, int result, int rc)
{
    spool_worker *w = t->w;
    if (result == SPOOL_DONE) {
        atomic_fetch_add(&w->n_done, 1);
        sdk_worker_log(w, SPOOL_LOG_DEBUG, "job %s done", job->id);
    } else if (rc == SPOOL_NACK_WENT_DEAD) {
        atomic_fetch_add(&w->n_failed, 1);
        sdk_worker_log(w, SPOOL_LOG_INFO, "job %s (attempt %lld) failed: dead", job->id, job->attempt);
    } else {
        atomic_fetch_add(&w->n_retried, 1);
        sdk_worker_log(w, SPOOL_LOG_INFO, "job %s (attempt %lld) will be retried", job->id, job->attempt);
    }
}

/* After a resent ACK is refused as stale: did the first one, whose reply
 * the broken connection swallowed, go through? It did when the broker says
 * the job was acked already (it says so only when the receipt's delivery
 * number and token are those of the delivery that finished it; a delivery
 * answered before a crash and lost in it has the same number but another
 * token, and gets a different refusal) and the job is done on this very
 * attempt. */
static bool earlier_ack_landed(wthread *t, const spool_job *job)
{
    const char *why = spool_errmsg(t->c);
    if (!why || !strstr(why, "(it was acked already)"))
        return false;
    spool_job *now = NULL;
    bool done = spool_job_get(t->c, job->id, &now) == 0 && now && now->state &&
                strcmp(now->state, "done") == 0 && now->attempt == job->attempt;
    spool_job_free(now);
    return done;
}

/* Sends the result, reconnecting as needed, until the lease would be over. */
static void finish(wthread *t, const spool_job *job, int result, const spool_ctx *ctx)
{
    spool_worker *w = t->w;
    for (int attempt = 1;; attempt++) {
        int rc = send_result(t, job, result, ctx);
        if (rc >= 0 || (rc == SPOOL_ESTALE && attempt > 1 && result == SPOOL_DONE && earlier_ack_landed(t, job))) {
            count_result(t, job, result, rc);
            return;
        }
        if (rc == SPOOL_ESTALE || rc == SPOOL_ENOJOB) {
            atomic_fetch_add(&w->n_lost, 1);
            sdk_worker_log(w, SPOOL_LOG_WARN, "job %s: result refused: %s", job->id, spool_errmsg(t->c));
            return;
        }
        pthread_mutex_lock(&w->mu);
        long long lease_end = ctx->s->lease_end;
        pthread_mutex_unlock(&w->mu);
        if (!network_error(rc) || sdk_mono_ms() > lease_end) {
            atomic_fetch_add(&w->n_lost, 1);
            sdk_worker_log(w, SPOOL_LOG_WARN, "job %s: could not send its result: %s", job->id,
                       spool_errmsg(t->c));
            return;
        }
        sdk_worker_log(w, SPOOL_LOG_DEBUG, "job %s: sending the result failed (%s); retrying",
                   job->id, spool_errmsg(t->c));
        sdk_worker_backoff(w, attempt, &t->seed, false); /* a stop does not cut it short */
        if (spool_reconnect(t->c) == 0)
            atomic_fetch_add(&w->n_reconnects, 1);
    }
}

/* ========================================================= worker threads */

static void run_job(wthread *t, spool_job *job)
{
    spool_worker *w = t->w;
    slot *s = &w->slots[t->idx];
    spool_ctx ctx = { .w = w, .s = s, .thread = t->idx, .retry_ms = -1, .c = t->c,
                     .receipt = job->receipt };
    sdk_slot_begin(w, s, job);
    sdk_worker_log(w, SPOOL_LOG_DEBUG, "job %s (attempt %lld) from %s", job->id, job->attempt, job->queue);
    int result = w->cfg.handler(job, &ctx, w->cfg.handler_arg);
    if (result != SPOOL_DONE && result != SPOOL_FAIL)
        result = SPOOL_RETRY;
    if (!sdk_slot_handler_done(w, s)) {
        sdk_slot_end(w, s); /* handed back by the keeper: drop the result */
        return;
    }
    if (atomic_load(&s->lost)) {
        atomic_fetch_add(&w->n_lost, 1);
        sdk_worker_log(w, SPOOL_LOG_WARN, "job %s: lease lost while running; result dropped", job->id);
    } else {
        finish(t, job, result, &ctx);
    }
    free(ctx.result);
    sdk_slot_end(w, s);
}

/* Makes sure the thread's client is connected: true when it is. */
static bool ensure_connected(wthread *t)
{
    spool_worker *w = t->w;
    if (spool_connected(t->c))
        return true;
    if (t->failures > 0)
        sdk_worker_backoff(w, t->failures, &t->seed, true);
    if (atomic_load(&w->stopping))
        return false;
    if (spool_reconnect(t->c) < 0) {
        if (t->failures++ == 0)
            sdk_worker_log(w, SPOOL_LOG_WARN, "thread %d: %s; retrying with backoff", t->idx,
                       spool_errmsg(t->c));
        return false;
    }
    if (t->failures > 0) {
        atomic_fetch_add(&w->n_reconnects, 1);
        sdk_worker_log(w, SPOOL_LOG_INFO, "thread %d: connected to %s again", t->idx, spool_endpoint(t->c));
    }
    t->failures = 0;
    return true;
}

static void reserve_and_run(wthread *t)
{
    spool_worker *w = t->w;
    spool_reserve_opts o = { .timeout_ms = w->cfg.reserve_timeout_ms, .lease_ms = w->cfg.lease_ms };
    spool_job *job = NULL;
    int n = spool_reserve(t->c, (const char *const *)w->queues, w->nqueues, &o, &job, 1);
    if (n < 0) {
        if (!spool_connected(t->c)) {
            sdk_worker_log(w, SPOOL_LOG_WARN, "thread %d: %s", t->idx, spool_errmsg(t->c));
            t->failures = 1;
            return;
        }
        /* the broker refused the reserve (auth, unknown command, ...): slow down */
        sdk_worker_log(w, SPOOL_LOG_ERROR, "thread %d: JOB.RESERVE failed: %s", t->idx, spool_errmsg(t->c));
        sdk_worker_backoff(w, 6, &t->seed, true);
        return;
    }
    if (n == 1) {
        run_job(t, job);
        spool_job_free(job);
    }
}

static void *worker_main(void *arg)
{
    wthread *t = arg;
    spool_worker *w = t->w;
    if (w->cfg.thread_start)
        w->cfg.thread_start(t->idx, w->cfg.handler_arg);
    while (!atomic_load(&w->stopping)) {
        if (ensure_connected(t))
            reserve_and_run(t);
    }
    if (w->cfg.thread_stop)
        w->cfg.thread_stop(t->idx, w->cfg.handler_arg);
    pthread_mutex_lock(&w->mu);
    w->live--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ======================================================== configuration */

static int copy_config(spool_worker *w, const spool_worker_config *cfg)
{
    w->cfg = *cfg;
    if (w->cfg.threads <= 0)
        w->cfg.threads = 1;
    if (w->cfg.reserve_timeout_ms <= 0)
        w->cfg.reserve_timeout_ms = DEFAULT_RESERVE_TIMEOUT_MS;
    if (w->cfg.stop_timeout_ms <= 0)
        w->cfg.stop_timeout_ms = DEFAULT_STOP_TIMEOUT_MS;
    if (w->cfg.reconnect_min_ms <= 0)
        w->cfg.reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    if (w->cfg.reconnect_max_ms < w->cfg.reconnect_min_ms)
        w->cfg.reconnect_max_ms = w->cfg.reconnect_min_ms > DEFAULT_RECONNECT_MAX_MS
                                      ? w->cfg.reconnect_min_ms : DEFAULT_RECONNECT_MAX_MS;
    while (cfg->queues[w->nqueues])
        w->nqueues++;
    w->queues = calloc(w->nqueues + 1, sizeof *w->queues);
    w->slots = calloc((size_t)w->cfg.threads, sizeof *w->slots);
    const char *url = cfg->url ? cfg->url : getenv("SPOOL_URL");
    w->url = strdup(url && url[0] ? url : SPOOL_DEFAULT_URL);
    w->name = strdup(cfg->name ? cfg->name : "spool-worker");
    if (!w->queues || !w->slots || !w->url || !w->name)
        return SPOOL_ENOMEM;
    for (size_t i = 0; i < w->nqueues; i++)
        if (!(w->queues[i] = strdup(cfg->queues[i])))
            return SPOOL_ENOMEM;
    w->cfg.queues = (const char *const *)w->queues;
    w->cfg.url = w->url;
    w->cfg.name = w->name;
    return 0;
}

static int init_sync(spool_worker *w)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e != 0 || pthread_mutex_init(&w->mu, NULL) != 0)
        return SPOOL_ENOMEM;
    if (pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return SPOOL_EIO;
    return 0;
}

int spool_worker_new(spool_worker **out, const spool_worker_config *cfg)
{
    *out = NULL;
    if (!cfg || !cfg->handler || !cfg->queues || !cfg->queues[0] || cfg->threads > 1024)
        return SPOOL_EINVAL;
    spool_url u;
    char err[300];
    const char *url = cfg->url ? cfg->url : getenv("SPOOL_URL");
    if (sdk_url_parse(url && url[0] ? url : SPOOL_DEFAULT_URL, &u, err, sizeof err) < 0)
        return SPOOL_EINVAL;
    spool_worker *w = calloc(1, sizeof *w);
    if (!w)
        return SPOOL_ENOMEM;
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    w->host = (struct worker_host){ .log = sdk_worker_log, .client = sdk_worker_client };
    int rc = copy_config(w, cfg);
    if (rc == 0)
        rc = init_sync(w);
    if (rc < 0) {
        spool_worker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void spool_worker_free(spool_worker *w)
{
    if (!w)
        return;
    if (w->stop_pipe[0] >= 0) {
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    for (size_t i = 0; w->queues && i < w->nqueues; i++)
        free(w->queues[i]);
    free(w->queues);
    free(w->slots);
    free(w->url);
    free(w->name);
    free(w);
}

/* ================================================================ stopping */

void spool_worker_stop(spool_worker *w)
{
    int saved = errno;
    atomic_store(&w->stopping, true);
    ssize_t r = write(w->stop_pipe[1], "s", 1); /* full pipe: a wake-up is pending anyway */
    (void)r;
    errno = saved;
}

void spool_worker_counters_get(const spool_worker *w, spool_worker_counters *out)
{
    spool_worker *m = (spool_worker *)w; /* atomics are read-only here */
    out->done = atomic_load(&m->n_done);
    out->retried = atomic_load(&m->n_retried);
    out->failed = atomic_load(&m->n_failed);
    out->lost = atomic_load(&m->n_lost);
    out->handed_back = atomic_load(&m->n_handed);
    out->touches = atomic_load(&m->n_touches);
    out->reconnects = atomic_load(&m->n_reconnects);
}

/* The worker SIGTERM/SIGINT stop while its spool_worker_run runs. */
static spool_worker *_Atomic signal_worker;

static void on_signal(int sig)
{
    (void)sig;
    spool_worker *w = atomic_load(&signal_worker);
    if (w)
        spool_worker_stop(w);
}

typedef struct saved_signals {
    bool installed;
    struct sigaction term, intr;
} saved_signals;

static int install_signals(spool_worker *w, saved_signals *sv)
{
    sv->installed = false;
    if (w->cfg.no_signals)
        return 0;
    spool_worker *expected = NULL;
    if (!atomic_compare_exchange_strong(&signal_worker, &expected, w))
        return SPOOL_EINVAL; /* another worker runs with signals: set no_signals */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &sv->term);
    sigaction(SIGINT, &sa, &sv->intr);
    sv->installed = true;
    return 0;
}

static void restore_signals(saved_signals *sv)
{
    if (!sv->installed)
        return;
    sigaction(SIGTERM, &sv->term, NULL);
    sigaction(SIGINT, &sv->intr, NULL);
    atomic_store(&signal_worker, NULL);
}

/* ================================================================ running */

/* Starts the keeper and the worker threads with SIGTERM/SIGINT blocked in
 * them, so the signals reach the thread that runs spool_worker_run. */
static int start_threads(spool_worker *w, wthread *ts, pthread_t *keeper, bool *keeper_up)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(keeper, NULL, sdk_keeper_main, w) == 0 ? 0 : SPOOL_ENOMEM;
    *keeper_up = rc == 0;
    int started = 0;
    for (; rc == 0 && started < w->cfg.threads; started++) {
        wthread *t = &ts[started];
        t->w = w;
        t->idx = started;
        t->seed = (unsigned)time(NULL) ^ (unsigned)(started * 2654435761u) ^ (unsigned)getpid();
        if (sdk_worker_client(w, "thread", started, &t->c) < 0 ||
            pthread_create(&t->tid, NULL, worker_main, t) != 0) {
            spool_close(t->c);
            t->c = NULL;
            break;
        }
        pthread_mutex_lock(&w->mu);
        w->live++;
        pthread_mutex_unlock(&w->mu);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0 && started < w->cfg.threads)
        rc = SPOOL_ENOMEM;
    return rc;
}

/* Blocks until spool_worker_stop() was called (by anyone, or a signal). */
static void wait_for_stop(spool_worker *w)
{
    while (!atomic_load(&w->stopping)) {
        struct pollfd pfd = { w->stop_pipe[0], POLLIN, 0 };
        poll(&pfd, 1, 1000);
    }
    char buf[64];
    while (read(w->stop_pipe[0], buf, sizeof buf) > 0) {
    }
}

/* Waits for the worker threads to return, handing back at the deadline. */
static int drain(spool_worker *w)
{
    int rc = 0;
    long long deadline = sdk_mono_ms() + w->cfg.stop_timeout_ms;
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv); /* wake threads sleeping in a backoff */
    while (w->live > 0) {
        if (!w->handback && sdk_mono_ms() >= deadline) {
            w->handback = true;
            rc = SPOOL_ETIMEOUT;
            pthread_cond_broadcast(&w->cv);
        }
        sdk_wait_locked(w, w->handback ? sdk_mono_ms() + 1000 : deadline);
    }
    w->keeper_quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int spool_worker_run(spool_worker *w)
{
    if (atomic_exchange(&w->ran, true))
        return SPOOL_EINVAL;
    saved_signals sv;
    int rc = install_signals(w, &sv);
    if (rc < 0)
        return rc;
    wthread *ts = calloc((size_t)w->cfg.threads, sizeof *ts);
    pthread_t keeper;
    bool keeper_up = false;
    if (!ts) {
        restore_signals(&sv);
        return SPOOL_ENOMEM;
    }
    rc = start_threads(w, ts, &keeper, &keeper_up);
    sdk_worker_log(w, SPOOL_LOG_INFO, "%d thread(s) serving %s%s from %s", w->cfg.threads, w->queues[0],
               w->nqueues > 1 ? " and more" : "", w->url);
    if (rc < 0)
        spool_worker_stop(w);
    wait_for_stop(w);
    sdk_worker_log(w, SPOOL_LOG_INFO, "stopping: finishing running jobs (up to %d ms)", w->cfg.stop_timeout_ms);
    int drc = drain(w);
    for (int i = 0; i < w->cfg.threads; i++) {
        if (ts[i].c) {
            pthread_join(ts[i].tid, NULL);
            spool_close(ts[i].c);
        }
    }
    if (keeper_up)
        pthread_join(keeper, NULL);
    free(ts);
    restore_signals(&sv);
    spool_worker_counters ct;
    spool_worker_counters_get(w, &ct);
    sdk_worker_log(w, SPOOL_LOG_INFO, "stopped: %lld done, %lld retried, %lld failed, %lld lost, %lld handed back",
               ct.done, ct.retried, ct.failed, ct.lost, ct.handed_back);
    return rc < 0 ? rc : drc;
}
