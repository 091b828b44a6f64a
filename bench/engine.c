/*
 * engine.c - threads, epoll loops and phases of one measured run (see
 * engine.h).
 *
 * Threads: the caller's thread connects everything, starts cfg->threads
 * workers and then only watches the clock and the shared counters
 * (coordinate()). Each worker owns its connections, an epoll set and its
 * histograms. Sockets are non-blocking and level-triggered; a worker
 * writes each connection's output once per batch of replies, so pipelined
 * requests leave in one write.
 *
 * Flow control of producers, per connection: at most cfg->depth pushes in
 * flight; with --rate, at most rate/P * elapsed pushes so far (at most
 * depth behind schedule); in cycle workloads, no push while the jobs pushed
 * but not delivered reach --max-backlog (the window then measures the
 * consumers, not an ever-growing queue).
 */
#include "engine.h"

#include "jobfmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define MAX_EVENTS 128
#define SEEN_BITS_DEFAULT (1ull << 27) /* 16 MiB of lazily zeroed pages */

enum phase { PH_RUN, PH_DRAIN, PH_DONE };

struct run;

typedef struct worker {
    pthread_t tid;
    struct run *run;
    int ep;
    bconn **conns;
    int nconns;
    hist push_lat, deliver_lat, cycle_lat;
    uint64_t fetch_empty, dups;
} worker;

typedef struct run {
    const bench_cfg *cfg;
    const driver *drv;
    _Atomic int phase;
    uint64_t t0;
    double rate_per_ns;              /* pushes per ns per producer; 0 = unlimited */
    _Atomic uint64_t ticket;         /* next job number */
    _Atomic uint64_t sent, push_replies, push_ok, delivered, acked, ack_refused;
    _Atomic uint64_t *seen;          /* bitmap of delivered job numbers */
    uint64_t seen_bits;
    _Atomic int failed;
    pthread_mutex_t err_mu;
    char error[512];
    worker *workers;
    int nworkers;
    bconn **conns;
    int nconns;
} run;

static int phase_of(const run *r)
{
    return atomic_load_explicit(&r->phase, memory_order_acquire);
}

static run *run_of(const bconn *c)
{
    return c->w->run;
}

/* ============================================================ events */

void engine_fail(bconn *c, const char *fmt, ...)
{
    run *r = run_of(c);
    pthread_mutex_lock(&r->err_mu);
    if (!atomic_load(&r->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
        atomic_store(&r->failed, 1);
    }
    pthread_mutex_unlock(&r->err_mu);
    atomic_store(&r->phase, PH_DONE);
}

void engine_push_done(bconn *c, uint64_t ts, bool ok, const char *msg)
{
    run *r = run_of(c);
    c->inflight--;
    atomic_fetch_add_explicit(&r->push_replies, 1, memory_order_relaxed);
    if (!ok) {
        engine_fail(c, "%s %s refused the push: %s", opts_kind_name(c->cfg->kind),
                    opts_push_name(c->cfg), msg);
        return;
    }
    atomic_fetch_add_explicit(&r->push_ok, 1, memory_order_release);
    if (phase_of(r) == PH_RUN)
        hist_add(&c->w->push_lat, mono_ns() - ts);
}

/* Marks job n seen; true when it already was. */
static bool seen_before(run *r, uint64_t n)
{
    if (!r->seen || n >= r->seen_bits)
        return false;
    uint64_t bit = 1ull << (n % 64);
    uint64_t old = atomic_fetch_or_explicit(&r->seen[n / 64], bit, memory_order_relaxed);
    return (old & bit) != 0;
}

uint64_t engine_delivered(bconn *c, const char *payload, size_t len)
{
    run *r = run_of(c);
    uint64_t n, ts;
    uint64_t now = mono_ns();
    atomic_fetch_add_explicit(&r->delivered, 1, memory_order_release);
    if (jobfmt_parse(payload, len, &n, &ts) != 0)
        return 0;
    if (seen_before(r, n))
        c->w->dups++;
    if (phase_of(r) == PH_RUN && ts <= now) {
        hist_add(&c->w->deliver_lat, now - ts);
        if (c->cfg->workload == WL_CYCLE_POP)
            hist_add(&c->w->cycle_lat, now - ts);
    }
    return ts;
}

void engine_fetch_empty(bconn *c)
{
    c->w->fetch_empty++;
}

void engine_ack_done(bconn *c, uint64_t ts, bool ok)
{
    run *r = run_of(c);
    if (!ok) {
        atomic_fetch_add_explicit(&r->ack_refused, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&r->acked, 1, memory_order_release);
    uint64_t now = mono_ns();
    if (phase_of(r) == PH_RUN && ts && ts <= now)
        hist_add(&c->w->cycle_lat, now - ts);
}

void engine_fetch_next(bconn *c)
{
    if (phase_of(run_of(c)) != PH_DONE)
        c->drv->put_fetch(c);
}

/* ========================================================= producers */

/* Pushes this connection may write now; sets *wait_ms when it is held
 * back by time (rate) or by the backlog. */
static long long push_allowance(bconn *c, uint64_t now, int *wait_ms)
{
    run *r = run_of(c);
    const bench_cfg *cfg = c->cfg;
    long long room = cfg->depth - c->inflight;
    if (room <= 0 || c->exhausted)
        return 0;
    if (r->rate_per_ns > 0) {
        double due = (double)(now - r->t0) * r->rate_per_ns + 1.0;
        long long behind = (long long)due - (long long)c->sent;
        if (behind <= 0) {
            double ns = ((double)c->sent + 1.0 - due) / r->rate_per_ns;
            int ms = (int)(ns / 1e6) + 1; /* never spin: epoll waits whole ms */
            if (ms < *wait_ms)
                *wait_ms = ms;
            return 0;
        }
        if (behind < room)
            room = behind;
    }
    if (cfg->workload != WL_PUSH) {
        uint64_t s = atomic_load_explicit(&r->sent, memory_order_relaxed);
        uint64_t d = atomic_load_explicit(&r->delivered, memory_order_relaxed);
        long long backlog = (long long)(s - d);
        if (backlog >= cfg->max_backlog) {
            *wait_ms = 1;
            return 0;
        }
        if (cfg->max_backlog - backlog < room)
            room = cfg->max_backlog - backlog;
    }
    return room;
}

/* Writes up to the allowance of pushes into c->out. */
static void pump(bconn *c, int *wait_ms)
{
    run *r = run_of(c);
    uint64_t now = mono_ns();
    long long room = push_allowance(c, now, wait_ms);
    long long k = 0;
    for (; k < room; k++) {
        uint64_t n = atomic_fetch_add_explicit(&r->ticket, 1, memory_order_relaxed);
        if (c->cfg->jobs && n >= (uint64_t)c->cfg->jobs) {
            c->exhausted = true;
            break;
        }
        size_t len = jobfmt_build(c->scratch, c->scratch_cap, c->cfg->payload, n, now);
        c->drv->put_push(c, c->scratch, len, now);
        c->inflight++;
        c->sent++;
    }
    if (k > 0)
        atomic_fetch_add_explicit(&r->sent, (uint64_t)k, memory_order_release);
}

/* ======================================================== the loops */

static void set_epollout(bconn *c, bool on)
{
    if (c->epollout == on)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = on;
}

static void flush(bconn *c)
{
    if (c->out.len == c->out_off)
        return;
    int rc = bconn_flush(c);
    if (rc < 0) {
        engine_fail(c, "write to %s failed: %s", opts_kind_name(c->cfg->kind), strerror(errno));
        return;
    }
    set_epollout(c, rc == 1);
}

static void on_readable(bconn *c, char *buf)
{
    ssize_t n = read(c->fd, buf, READ_BUF);
    if (n > 0) {
        c->drv->on_bytes(c, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (phase_of(run_of(c)) != PH_DONE)
        engine_fail(c, "%s closed the connection%s%s", opts_kind_name(c->cfg->kind),
                    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
}

static void on_event(bconn *c, uint32_t events, char *buf, int *wait_ms)
{
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c, buf);
    if (phase_of(run_of(c)) == PH_DONE)
        return;
    if (c->role == ROLE_PRODUCER && phase_of(run_of(c)) == PH_RUN)
        pump(c, wait_ms);
    flush(c);
}

static void pump_all(worker *w, int *wait_ms)
{
    if (phase_of(w->run) != PH_RUN)
        return;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->role == ROLE_PRODUCER) {
            pump(c, wait_ms);
            flush(c);
        }
    }
}

static void start_consumers(worker *w)
{
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->role == ROLE_CONSUMER) {
            c->drv->put_fetch(c);
            flush(c);
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char *buf = malloc(READ_BUF);
    struct epoll_event ev[MAX_EVENTS];
    if (!buf)
        abort();
    start_consumers(w);
    while (phase_of(w->run) != PH_DONE) {
        int wait_ms = 5;
        pump_all(w, &wait_ms);
        int n = epoll_wait(w->ep, ev, MAX_EVENTS, wait_ms);
        for (int i = 0; i < n && phase_of(w->run) != PH_DONE; i++)
            on_event(ev[i].data.ptr, ev[i].events, buf, &wait_ms);
    }
    free(buf);
    return NULL;
}

/* ========================================================= set-up */

static int setup_fail(bench_result *res, int status, const char *msg)
{
    res->status = status;
    snprintf(res->error, sizeof res->error, "%s", msg);
    return status;
}

/* Dials and sets up one connection into r->conns[i]. */
static int open_conn(run *r, int i, conn_role role, int index, bench_result *res)
{
    char err[400];
    int fd = bconn_dial(r->cfg->host, r->cfg->port, err, sizeof err);
    if (fd < 0)
        return setup_fail(res, 2, err);
    unsigned cap = (unsigned)(role == ROLE_PRODUCER ? r->cfg->depth + 4 : 8);
    bconn *c = bconn_new(fd, role, index, r->cfg, r->drv, cap);
    r->conns[i] = c;
    worker *w = &r->workers[i % r->nworkers];
    c->w = w;
    w->conns[w->nconns++] = c;
    if (r->drv->setup_conn && r->drv->setup_conn(c, err, sizeof err) != 0)
        return setup_fail(res, 3, err);
    bconn_set_nonblocking(fd);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void init_workers(run *r)
{
    r->nworkers = r->cfg->threads;
    r->workers = calloc((size_t)r->nworkers, sizeof *r->workers);
    for (int i = 0; i < r->nworkers; i++) {
        worker *w = &r->workers[i];
        w->run = r;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->conns = calloc((size_t)r->nconns, sizeof *w->conns);
        hist_init(&w->push_lat);
        hist_init(&w->deliver_lat);
        hist_init(&w->cycle_lat);
    }
}

static int init_run(run *r, const bench_cfg *cfg, const driver *drv, bench_result *res)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->drv = drv;
    pthread_mutex_init(&r->err_mu, NULL);
    r->nconns = cfg->producers + cfg->consumers;
    r->conns = calloc((size_t)r->nconns, sizeof *r->conns);
    if (cfg->rate > 0)
        r->rate_per_ns = cfg->rate / cfg->producers / 1e9;
    if (cfg->workload != WL_PUSH) {
        r->seen_bits = cfg->jobs ? (uint64_t)cfg->jobs : SEEN_BITS_DEFAULT;
        r->seen = calloc((size_t)(r->seen_bits / 64 + 1), sizeof *r->seen);
    }
    init_workers(r);
    for (int i = 0; i < r->nconns; i++) {
        bool prod = i < cfg->producers;
        int rc = open_conn(r, i, prod ? ROLE_PRODUCER : ROLE_CONSUMER,
                           prod ? i : i - cfg->producers, res);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void free_run(run *r)
{
    for (int i = 0; i < r->nconns; i++)
        bconn_free(r->conns[i]);
    for (int i = 0; i < r->nworkers; i++) {
        close(r->workers[i].ep);
        free(r->workers[i].conns);
    }
    free(r->workers);
    free(r->conns);
    free(r->seen);
    pthread_mutex_destroy(&r->err_mu);
}

/* ====================================================== coordinator */

/* CPU seconds used so far by this process. */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used so far by process pid (utime + stime from
 * /proc/pid/stat); -1 when it cannot be read. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct cpu_mark {
    double self, server;
} cpu_mark;

static cpu_mark cpu_now(const run *r)
{
    cpu_mark m = { self_cpu(), proc_cpu(r->cfg->server_pid) };
    return m;
}

static void cpu_report(const cpu_mark *a, const cpu_mark *b, double secs, bench_result *res)
{
    res->bench_cpu = secs > 0 ? (b->self - a->self) / secs : 0;
    res->server_cpu = a->server >= 0 && b->server >= 0 && secs > 0
                          ? (b->server - a->server) / secs : -1;
}

static void nap(void)
{
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
}

static uint64_t finished_count(run *r)
{
    switch (r->cfg->workload) {
    case WL_PUSH: return atomic_load(&r->push_ok);
    case WL_CYCLE_POP: return atomic_load(&r->delivered);
    default: return atomic_load(&r->acked);
    }
}

/* Waits for the end of the window; fills the window figures. */
static void wait_window(run *r, const cpu_mark *start, bench_result *res)
{
    uint64_t deadline = r->t0 + (uint64_t)(r->cfg->duration_s * 1e9);
    uint64_t now = r->t0;
    cpu_mark end = *start;
    while (phase_of(r) == PH_RUN) {
        nap();
        now = mono_ns();
        uint64_t fin = finished_count(r);
        if (now >= deadline || (r->cfg->jobs && fin >= (uint64_t)r->cfg->jobs)) {
            res->finished = fin;
            res->pushed = atomic_load(&r->push_ok);
            end = cpu_now(r);
            atomic_store(&r->phase, PH_DRAIN);
        }
    }
    res->window_s = (double)(now - r->t0) / 1e9;
    res->window_t0_ns = r->t0;
    res->window_t1_ns = now;
    cpu_report(start, &end, res->window_s, res);
}

static bool drained(run *r)
{
    uint64_t sent = atomic_load(&r->sent);
    if (atomic_load(&r->push_replies) < sent)
        return false;
    if (r->cfg->workload == WL_PUSH)
        return true;
    uint64_t ok = atomic_load(&r->push_ok);
    return finished_count(r) + atomic_load(&r->ack_refused) >= ok;
}

static void wait_drain(run *r)
{
    uint64_t deadline = mono_ns() + (uint64_t)(r->cfg->drain_s * 1e9);
    while (phase_of(r) == PH_DRAIN && !drained(r) && mono_ns() < deadline)
        nap();
    atomic_store(&r->phase, PH_DONE);
}

static void collect(run *r, bench_result *res)
{
    for (int i = 0; i < r->nworkers; i++) {
        worker *w = &r->workers[i];
        hist_merge(&res->push_lat, &w->push_lat);
        hist_merge(&res->deliver_lat, &w->deliver_lat);
        hist_merge(&res->cycle_lat, &w->cycle_lat);
        res->fetch_empty += w->fetch_empty;
        res->dups += w->dups;
    }
    res->sent = atomic_load(&r->sent);
    res->push_ok = atomic_load(&r->push_ok);
    res->delivered = atomic_load(&r->delivered);
    res->acked = atomic_load(&r->acked);
    res->ack_refused = atomic_load(&r->ack_refused);
    uint64_t fin = finished_count(r) + res->ack_refused;
    if (r->cfg->workload != WL_PUSH && res->push_ok > fin)
        res->undrained = res->push_ok - fin;
    if (atomic_load(&r->failed)) {
        res->status = 3;
        snprintf(res->error, sizeof res->error, "%s", r->error);
    }
}

int engine_run(const bench_cfg *cfg, const driver *drv, bench_result *res)
{
    run r;
    memset(res, 0, sizeof *res);
    hist_init(&res->push_lat);
    hist_init(&res->deliver_lat);
    hist_init(&res->cycle_lat);
    if (init_run(&r, cfg, drv, res) != 0) {
        free_run(&r);
        return res->status;
    }
    cpu_mark start = cpu_now(&r);
    r.t0 = mono_ns();
    for (int i = 0; i < r.nworkers; i++)
        pthread_create(&r.workers[i].tid, NULL, worker_main, &r.workers[i]);
    wait_window(&r, &start, res);
    wait_drain(&r);
    for (int i = 0; i < r.nworkers; i++)
        pthread_join(r.workers[i].tid, NULL);
    collect(&r, res);
    free_run(&r);
    return res->status;
}
