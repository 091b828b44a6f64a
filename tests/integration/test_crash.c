/*
 * test_crash.c - what spoold answered for survives a crash.
 *
 * - kill -9 under load: producer threads push (JOB.PUSH and LPUSH), worker
 *   threads reserve and ack, spoold is killed at a different moment in each
 *   round, restarted on the same data dir and drained. Every push that got
 *   a success reply must be acked before the crash or drained after it,
 *   exactly once; no acked job may come back; nothing that was never pushed
 *   may appear. Once with --fsync always (three kill moments), once with
 *   --fsync batch (a process crash must not lose anything there either).
 * - A delayed job fires on time after a restart; a reserved job's receipt
 *   still acks after kill -9, an earlier delivery's receipt is still STALE.
 * - Priorities, unique keys, dead jobs, paused queues and queue settings
 *   are the same after kill -9.
 * - Journal faults (DEBUG JOURNAL-FAIL): the command gets the error, nothing
 *   of it is stored, reads keep working, the next write works; a restart
 *   afterwards finds exactly what was acknowledged.
 * - A second spoold on the same data dir is refused (the LOCK file).
 *
 * The load threads use their own small client (tests/support/tclient.h),
 * not the harness client: the harness fails the test on a broken
 * connection and runs on the main thread only, while here a broken
 * connection is simply the end of a thread's work.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tclient.h"

TestSuite(crash, .timeout = 240);

/* ------------------------------------------------------- small helpers */

/* Wall-clock Unix ms: the clock spoold stamps run_at with. */
static long long unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_int(const resp_val *v, long long n)
{
    return v && v->type == RESP_T_INT && v->integer == n;
}

static bool is_error_prefix(const resp_val *v, const char *prefix)
{
    return v && v->type == RESP_T_ERROR && strncmp(v->str, prefix, strlen(prefix)) == 0;
}

/* A field of a map / flat field-value array as text ("" when absent). */
static const char *fstr(const resp_val *rec, const char *name)
{
    const resp_val *x = resp_val_get(rec, name);
    cr_assert(x, "field '%s' missing in %s", name, resp_describe(rec));
    cr_assert(x->type == RESP_T_BULK || x->type == RESP_T_SIMPLE,
              "field '%s': expected a string, got %s", name, resp_describe(x));
    return x->str;
}

static long long fint(const resp_val *rec, const char *name)
{
    const resp_val *x = resp_val_get(rec, name);
    cr_assert(x, "field '%s' missing in %s", name, resp_describe(rec));
    cr_assert(x->type == RESP_T_INT, "field '%s': expected an integer, got %s", name,
              resp_describe(x));
    return x->integer;
}

/* The whole reply as one line of text, to compare replies. */
static void dump_val(resp_buf *b, const resp_val *v)
{
    if (!v) {
        resp_buf_printf(b, "(none)");
        return;
    }
    switch (v->type) {
    case RESP_T_SIMPLE:
    case RESP_T_BULK:
    case RESP_T_BIGNUM:
        resp_buf_printf(b, "\"%s\"", v->str);
        break;
    case RESP_T_ERROR:
        resp_buf_printf(b, "-%s", v->str);
        break;
    case RESP_T_INT:
    case RESP_T_BOOL:
        resp_buf_printf(b, "%lld", v->integer);
        break;
    case RESP_T_DOUBLE:
        resp_buf_printf(b, "%g", v->dbl);
        break;
    case RESP_T_NULL:
        resp_buf_printf(b, "nil");
        break;
    default:
        resp_buf_printf(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                resp_buf_printf(b, ", ");
            dump_val(b, v->elem[i]);
        }
        resp_buf_printf(b, "]");
        break;
    }
}

/* Runs the command and returns its reply as text (caller frees). */
static char *cmd_text(cli *c, const char *arg0, ...)
{
    const char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && argc < 32; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    resp_val *v = cli_cmdv(c, argc, argv, NULL);
    resp_buf b;
    resp_buf_init(&b);
    dump_val(&b, v);
    resp_buf_append(&b, "", 1);
    resp_val_free(v);
    size_t n;
    return resp_buf_take(&b, &n);
}
#define TEXT(c, ...) cmd_text((c), __VA_ARGS__, (const char *)NULL)

/* The job id from a JOB.PUSH reply (takes v). */
static void take_id(resp_val *v, char *id, size_t cap)
{
    cr_assert(v->type == RESP_T_BULK, "JOB.PUSH: expected an id, got %s", resp_describe(v));
    snprintf(id, cap, "%s", v->str);
    resp_val_free(v);
}

static void push_id(cli *c, char *id, size_t cap, const char *q, const char *payload)
{
    take_id(CMD(c, "JOB.PUSH", q, payload), id, cap);
}

/* QUEUE.STATS counter. */
static long long qstat(cli *c, const char *q, const char *name)
{
    resp_val *v = CMD(c, "QUEUE.STATS", q);
    long long n = fint(v, name);
    resp_val_free(v);
    return n;
}

static long long unfinished(cli *c, const char *q)
{
    resp_val *v = CMD(c, "QUEUE.STATS", q);
    long long n = fint(v, "ready") + fint(v, "delayed") + fint(v, "reserved");
    resp_val_free(v);
    return n;
}

/* JOB.GET id's state ("" when the job is gone; caller's buffer). */
static const char *job_state(cli *c, const char *id, char *buf, size_t cap)
{
    resp_val *v = CMD(c, "JOB.GET", id);
    if (v->type == RESP_T_NULL)
        buf[0] = 0;
    else
        snprintf(buf, cap, "%s", fstr(v, "state"));
    resp_val_free(v);
    return buf;
}

/* JOB.RESERVE ... that must return exactly one job: its id and receipt. */
static void reserve_one(cli *c, const char *q, const char *lease, char *id, char *receipt,
                        size_t cap)
{
    resp_val *v = CMD(c, "JOB.RESERVE", "TIMEOUT", "5000", "COUNT", "1", "LEASE", lease, "FROM", q);
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "JOB.RESERVE FROM %s: expected one job, got %s",
              q, resp_describe(v));
    snprintf(id, cap, "%s", fstr(v->elem[0], "id"));
    snprintf(receipt, cap, "%s", fstr(v->elem[0], "receipt"));
    resp_val_free(v);
}

/* =================================================== kill -9 under load */

#define NPRODUCERS 4
#define NWORKERS 2
#define MAX_PUSHES 20000 /* per producer: bounds every loop */

static const char *load_queues[NPRODUCERS] = { "jobs-a", "jobs-b", "list-a", "list-b" };

enum { PUSH_NONE = 0, PUSH_OK = 1, PUSH_ERR = 2 };

typedef struct producer {
    pthread_t th;
    int k, port;
    const char *queue;
    bool lpush;
    atomic_bool *stop;
    atomic_long *pushes_ok; /* over all producers, for the kill trigger */
    pthread_barrier_t *go;
    tconn *t;               /* connected by the main thread */
    int attempted;          /* pushes sent (0..attempted-1), replied or not */
    unsigned char outcome[MAX_PUSHES];
    char err[300];          /* first unexpected reply */
    bool timed_out;
} producer;

typedef struct acked {
    int p, n;
    char receipt[48];
} acked;

typedef struct worker {
    pthread_t th;
    int w, port;
    atomic_bool *stop;
    pthread_barrier_t *go;
    tconn *t;
    acked *acks;            /* ACK replied :1 */
    int nacks, acks_cap;
    bool inflight;          /* an ACK was sent and got no reply */
    int inflight_p, inflight_n;
    int reserved, stale;
    char err[300];
    bool timed_out;
} worker;

static bool parse_payload(const char *s, int *p, int *n)
{
    char tail;
    return sscanf(s, "{\"p\":%d,\"n\":%d%c", p, n, &tail) == 3 && tail == '}' &&
           strlen(s) < 40;
}

static void *producer_main(void *arg)
{
    producer *pr = arg;
    tconn *t = pr->t;
    pthread_barrier_wait(pr->go);
    for (int i = 0; i < MAX_PUSHES && !atomic_load(pr->stop); i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"p\":%d,\"n\":%d}", pr->k, i);
        const char *jp[] = { "JOB.PUSH", pr->queue, payload };
        const char *lp[] = { "LPUSH", pr->queue, payload };
        pr->attempted = i + 1;
        resp_val *v = tc_cmdv(t, 3, pr->lpush ? lp : jp);
        if (!v) {
            pr->timed_out = t->timed_out;
            break; /* the server is gone: this push is unanswered */
        }
        bool ok = pr->lpush ? (v->type == RESP_T_INT && v->integer >= 1)
                            : (v->type == RESP_T_BULK && v->len == 16);
        pr->outcome[i] = ok ? PUSH_OK : PUSH_ERR;
        if (ok)
            atomic_fetch_add(pr->pushes_ok, 1);
        else if (!pr->err[0])
            snprintf(pr->err, sizeof pr->err, "producer %d push %d: %s", pr->k, i,
                     resp_describe(v));
        resp_val_free(v);
    }
    tc_close(t);
    return NULL;
}

static void worker_note(worker *wk, const char *what, const resp_val *v)
{
    if (!wk->err[0])
        snprintf(wk->err, sizeof wk->err, "worker %d %s: %s", wk->w, what, resp_describe(v));
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    tconn *t = wk->t;
    pthread_barrier_wait(wk->go);
    /* the two workers ask for the queues in opposite orders */
    const char *argv[16] = { "JOB.RESERVE", "TIMEOUT", "100", "COUNT", "5", "FROM" };
    int argc = 6;
    for (int i = 0; i < NPRODUCERS; i++)
        argv[argc++] = load_queues[wk->w % 2 ? NPRODUCERS - 1 - i : i];
    bool broken = false;
    for (int round = 0; round < 100000 && !broken && !atomic_load(wk->stop); round++) {
        resp_val *v = tc_cmdv(t, argc, argv);
        if (!v) {
            wk->timed_out = t->timed_out;
            break;
        }
        if (v->type == RESP_T_NULL) {
            resp_val_free(v);
            continue;
        }
        if (v->type != RESP_T_ARRAY) {
            worker_note(wk, "JOB.RESERVE", v);
            resp_val_free(v);
            continue;
        }
        wk->reserved += (int)v->n;
        for (size_t i = 0; i < v->n && !broken; i++) {
            const resp_val *rec = v->elem[i];
            const resp_val *rc = resp_val_get(rec, "receipt");
            const resp_val *pl = resp_val_get(rec, "payload");
            int p = -1, n = -1;
            if (!rc || rc->type != RESP_T_BULK || !pl || pl->type != RESP_T_BULK ||
                !parse_payload(pl->str, &p, &n)) {
                worker_note(wk, "JOB.RESERVE job", rec);
                continue;
            }
            const char *ack[] = { "JOB.ACK", rc->str };
            wk->inflight = true;
            wk->inflight_p = p;
            wk->inflight_n = n;
            resp_val *a = tc_cmdv(t, 2, ack);
            if (!a) {
                wk->timed_out = t->timed_out;
                broken = true; /* inflight stays set: the ack may or may not be stored */
                break;
            }
            wk->inflight = false;
            if (is_int(a, 1)) {
                if (wk->nacks == wk->acks_cap) {
                    wk->acks_cap = wk->acks_cap ? wk->acks_cap * 2 : 1024;
                    wk->acks = realloc(wk->acks, (size_t)wk->acks_cap * sizeof *wk->acks);
                }
                acked *ak = &wk->acks[wk->nacks++];
                ak->p = p;
                ak->n = n;
                snprintf(ak->receipt, sizeof ak->receipt, "%s", rc->str);
            } else if (is_error_prefix(a, "STALE")) {
                wk->stale++; /* the lease ran out first; the job was delivered again */
            } else {
                worker_note(wk, "JOB.ACK", a);
            }
            resp_val_free(a);
        }
        resp_val_free(v);
    }
    tc_close(t);
    return NULL;
}

/* One drained job. */
typedef struct drained {
    int p, n;
    char id[24];
} drained;

/* Reserves and acks everything left in the load queues after the restart,
 * until all are empty (leases from before the crash run out in 500 ms). */
static drained *drain_all(cli *c, int *count)
{
    int cap = 1024, nd = 0;
    drained *d = malloc((size_t)cap * sizeof *d);
    long long deadline = now_ms() + 60000;
    for (;;) {
        cr_assert(now_ms() < deadline, "drain: queues not empty after 60 s (drained %d)", nd);
        resp_val *v = CMD(c, "JOB.RESERVE", "TIMEOUT", "200", "COUNT", "200", "LEASE", "120000",
                          "FROM", load_queues[0], load_queues[1], load_queues[2], load_queues[3]);
        if (v->type == RESP_T_NULL) {
            resp_val_free(v);
            long long left = 0;
            for (int i = 0; i < NPRODUCERS; i++)
                left += unfinished(c, load_queues[i]);
            if (left == 0)
                break;
            continue;
        }
        cr_assert(v->type == RESP_T_ARRAY, "drain: JOB.RESERVE: %s", resp_describe(v));
        resp_buf b;
        resp_buf_init(&b);
        for (size_t i = 0; i < v->n; i++) {
            const resp_val *rec = v->elem[i];
            const char *payload = fstr(rec, "payload");
            if (nd == cap) {
                cap *= 2;
                d = realloc(d, (size_t)cap * sizeof *d);
            }
            drained *x = &d[nd++];
            snprintf(x->id, sizeof x->id, "%s", fstr(rec, "id"));
            cr_assert(parse_payload(payload, &x->p, &x->n),
                      "drained job %s has a payload that no producer wrote: %s", x->id, payload);
            const char *ack[] = { "JOB.ACK", fstr(rec, "receipt") };
            resp_add_commandv(&b, 2, ack);
        }
        cli_send_raw(c, b.data, b.len);
        resp_buf_free(&b);
        for (size_t i = 0; i < v->n; i++) {
            resp_val *a = cli_read(c);
            cr_assert(is_int(a, 1), "drain: JOB.ACK %s: %s", fstr(v->elem[i], "receipt"),
                      resp_describe(a));
            resp_val_free(a);
        }
        resp_val_free(v);
    }
    for (int i = 0; i < NPRODUCERS; i++)
        cr_assert_eq(qstat(c, load_queues[i], "dead"), 0, "queue %s has dead jobs after the drain",
                     load_queues[i]);
    *count = nd;
    return d;
}

/* One round: load, kill -9 once kill_after pushes were acknowledged,
 * restart, drain, check. */
static bool pf_on; /* every payload in the payload file, 4 KiB segments (broker/paylog.h) */

static void kill9_round(const char *fsync_mode, long kill_after)
{
    spoold *s = pf_on ? spoold_start("--shards", "2", "--fsync", fsync_mode, "--payload-file-min", "1",
                                     "--payload-file-segment", "4kb", NULL)
                      : spoold_start("--shards", "2", "--fsync", fsync_mode, NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < NPRODUCERS; i++)
        expect_ok(CMD(c, "QUEUE.CONFIG", load_queues[i], "SET", "lease", "500", "backoff", "0"));
    cli_close(c);

    atomic_bool stop = false;
    atomic_long pushes_ok = 0;
    producer *pr = calloc(NPRODUCERS, sizeof *pr);
    worker *wk = calloc(NWORKERS, sizeof *wk);
    /* every thread is connected before any starts, and all start together */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NPRODUCERS + NWORKERS + 1);
    for (int k = 0; k < NPRODUCERS; k++) {
        pr[k] = (producer){ .k = k, .port = s->port, .queue = load_queues[k],
                            .lpush = k >= 2, .stop = &stop, .pushes_ok = &pushes_ok,
                            .go = &go, .t = tc_connect(s->port) };
        cr_assert(pr[k].t, "producer %d cannot connect", k);
    }
    for (int w = 0; w < NWORKERS; w++) {
        wk[w] = (worker){ .w = w, .port = s->port, .stop = &stop, .go = &go,
                          .t = tc_connect(s->port) };
        cr_assert(wk[w].t, "worker %d cannot connect", w);
    }
    for (int k = 0; k < NPRODUCERS; k++)
        cr_assert(pthread_create(&pr[k].th, NULL, producer_main, &pr[k]) == 0);
    for (int w = 0; w < NWORKERS; w++)
        cr_assert(pthread_create(&wk[w].th, NULL, worker_main, &wk[w]) == 0);
    pthread_barrier_wait(&go);
    long long t0 = now_ms();

    bool reached = wait_until(atomic_load(&pushes_ok) >= kill_after, 60000);
    long at_kill = atomic_load(&pushes_ok);
    spoold_kill9(s);
    long long t_kill = now_ms();
    atomic_store(&stop, true);
    for (int k = 0; k < NPRODUCERS; k++)
        pthread_join(pr[k].th, NULL);
    for (int w = 0; w < NWORKERS; w++)
        pthread_join(wk[w].th, NULL);
    pthread_barrier_destroy(&go);
    cr_assert(reached, "only %ld pushes acknowledged within 60 s (kill point %ld)", at_kill,
              kill_after);
    for (int k = 0; k < NPRODUCERS; k++) {
        cr_assert(!pr[k].err[0], "before the crash: %s", pr[k].err);
        cr_assert(!pr[k].timed_out, "producer %d: no reply within %d ms before the kill", k,
                  TC_TIMEOUT_MS);
    }
    for (int w = 0; w < NWORKERS; w++) {
        cr_assert(!wk[w].err[0], "before the crash: %s", wk[w].err);
        cr_assert(!wk[w].timed_out, "worker %d: no reply within %d ms before the kill", w,
                  TC_TIMEOUT_MS);
    }

    long long t_restart = now_ms();
    if (pf_on)
        spoold_restart(s, "--shards", "2", "--fsync", fsync_mode, "--payload-file-min", "1",
                       "--payload-file-segment", "4kb", NULL);
    else
        spoold_restart(s, "--shards", "2", "--fsync", fsync_mode, NULL);
    c = cli_connect(s->port);
    long long t_up = now_ms();
    int ndrained = 0;
    drained *d = drain_all(c, &ndrained);
    long long t_drained = now_ms();

    /* Per producer and push number: acks before the crash, drains after. */
    unsigned char *before[NPRODUCERS], *after[NPRODUCERS], *ack_unsure[NPRODUCERS];
    for (int k = 0; k < NPRODUCERS; k++) {
        before[k] = calloc(MAX_PUSHES, 1);
        after[k] = calloc(MAX_PUSHES, 1);
        ack_unsure[k] = calloc(MAX_PUSHES, 1);
    }
    long acks_before = 0, stale = 0, reserved = 0;
    for (int w = 0; w < NWORKERS; w++) {
        stale += wk[w].stale;
        reserved += wk[w].reserved;
        if (wk[w].inflight)
            ack_unsure[wk[w].inflight_p][wk[w].inflight_n] = 1;
        for (int i = 0; i < wk[w].nacks; i++) {
            acked *a = &wk[w].acks[i];
            cr_assert(a->p >= 0 && a->p < NPRODUCERS && a->n >= 0 && a->n < pr[a->p].attempted,
                      "worker %d acked {\"p\":%d,\"n\":%d} (receipt %s), which was never pushed",
                      w, a->p, a->n, a->receipt);
            cr_assert(before[a->p][a->n] == 0,
                      "{\"p\":%d,\"n\":%d} was acked twice before the crash (receipt %s)", a->p,
                      a->n, a->receipt);
            before[a->p][a->n] = 1;
            acks_before++;
        }
    }
    for (int i = 0; i < ndrained; i++) {
        drained *x = &d[i];
        cr_assert(x->p >= 0 && x->p < NPRODUCERS && x->n >= 0 && x->n < pr[x->p].attempted,
                  "drained job %s {\"p\":%d,\"n\":%d} was never pushed", x->id, x->p, x->n);
        cr_assert(after[x->p][x->n] == 0, "job {\"p\":%d,\"n\":%d} drained twice (id %s)", x->p,
                  x->n, x->id);
        cr_assert(before[x->p][x->n] == 0,
                  "lost ack: {\"p\":%d,\"n\":%d} was acked before the crash (:1) and delivered "
                  "again after the restart as job %s (fsync %s, kill after %ld pushes)",
                  x->p, x->n, x->id, fsync_mode, at_kill);
        after[x->p][x->n] = 1;
    }
    long pushed_ok = 0, unanswered = 0, unanswered_present = 0;
    for (int k = 0; k < NPRODUCERS; k++) {
        for (int n = 0; n < pr[k].attempted; n++) {
            bool seen = before[k][n] || after[k][n];
            if (pr[k].outcome[n] == PUSH_OK) {
                pushed_ok++;
                cr_assert(seen || ack_unsure[k][n],
                          "lost job: push {\"p\":%d,\"n\":%d} (%s to %s) was acknowledged but "
                          "was neither acked before the crash nor there after the restart "
                          "(fsync %s, kill after %ld pushes)",
                          k, n, pr[k].lpush ? "LPUSH" : "JOB.PUSH", pr[k].queue, fsync_mode,
                          at_kill);
            } else {
                unanswered++;
                unanswered_present += seen;
            }
        }
    }
    fprintf(stderr,
            "crash round (fsync %s, kill after %ld): pushes acknowledged %ld (attempted %ld), "
            "reserved before the crash %ld, acked before %ld (stale acks %ld), unanswered "
            "pushes %ld (%ld of them stored), drained after restart %d; load %lld ms, restart "
            "%lld ms, drain %lld ms\n",
            fsync_mode, kill_after, pushed_ok, pushed_ok + unanswered, reserved, acks_before,
            stale, unanswered, unanswered_present, ndrained, t_kill - t0, t_up - t_restart,
            t_drained - t_up);

    for (int k = 0; k < NPRODUCERS; k++) {
        free(before[k]);
        free(after[k]);
        free(ack_unsure[k]);
    }
    for (int w = 0; w < NWORKERS; w++)
        free(wk[w].acks);
    free(d);
    free(pr);
    free(wk);
    cli_close(c);
    spoold_stop(s);
}

Test(crash, kill9_under_load_early)
{
    kill9_round("always", 200);
}

Test(crash, kill9_under_load_middle)
{
    kill9_round("always", 1500);
}

Test(crash, kill9_under_load_late)
{
    kill9_round("always", 5000);
}

Test(crash, kill9_under_load_payload_file)
{
    pf_on = true;
    kill9_round("always", 1500);
}

Test(crash, kill9_under_load_fsync_batch)
{
    kill9_round("batch", 3000);
}

/* ============================================= delays, leases, receipts */

Test(crash, delayed_job_fires_on_time_after_restart)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    char id[32];
    take_id(CMD(c, "JOB.PUSH", "later", "{\"at\":1}", "DELAY", "3000"), id, sizeof id);
    resp_val *g = CMD(c, "JOB.GET", id);
    long long run_at = fint(g, "run_at");
    cr_assert_str_eq(fstr(g, "state"), "delayed");
    resp_val_free(g);
    cli_close(c);
    spoold_term(s);

    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    g = CMD(c, "JOB.GET", id);
    cr_assert_str_eq(fstr(g, "state"), "delayed", "after restart: %s", resp_describe(g));
    cr_assert_eq(fint(g, "run_at"), run_at, "run_at changed over the restart");
    resp_val_free(g);

    /* Not before its time... */
    int early_checks = 0;
    while (unix_ms() < run_at - 100) {
        resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "later");
        long long t = unix_ms();
        cr_assert(v->type == RESP_T_NULL, "delayed job delivered %lld ms before its run_at: %s",
                  run_at - t, resp_describe(v));
        resp_val_free(v);
        early_checks++;
        sleep_ms(20);
    }
    cr_assert_gt(early_checks, 0, "the restart took until %lld ms before run_at: nothing was checked early",
                 run_at - unix_ms());
    /* ...and then on time (generous slack for a loaded machine). */
    resp_val *v = NULL;
    long long got_at = 0;
    long long deadline = run_at + 5000;
    while (unix_ms() < deadline) {
        v = CMD(c, "JOB.RESERVE", "TIMEOUT", "250", "FROM", "later");
        got_at = unix_ms();
        if (v->type != RESP_T_NULL)
            break;
        resp_val_free(v);
        v = NULL;
    }
    cr_assert(v, "the delayed job was not delivered within 5 s of its run_at");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "JOB.RESERVE: %s", resp_describe(v));
    cr_assert_str_eq(fstr(v->elem[0], "id"), id);
    cr_assert_str_eq(fstr(v->elem[0], "payload"), "{\"at\":1}");
    cr_assert(got_at >= run_at - 20, "delivered %lld ms before run_at", run_at - got_at);
    fprintf(stderr, "delayed job: %d early checks returned nothing; delivered %lld ms after "
                    "run_at\n", early_checks, got_at - run_at);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

/* Deadlines that pass while spoold is down fire on the first turn after
 * the restart. */
static void wait_past(long long when)
{
    long long deadline = unix_ms() + 10000;
    while (unix_ms() <= when && unix_ms() < deadline)
        sleep_ms(10);
    cr_assert_gt(unix_ms(), when, "the clock did not pass %lld", when);
}

Test(crash, lease_that_ran_out_while_down_expires_after_restart)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    char id[32], got[32], receipt[48], st[16];
    push_id(c, id, sizeof id, "leased", "{\"n\":1}");
    reserve_one(c, "leased", "300", got, receipt, sizeof receipt);
    cr_assert_str_eq(got, id);
    /* the reserve was answered before its commit, and its row is written
     * late (docs/operations.md): once none waits, a push on its shard,
     * answered once on disk, makes sure the lease is stored before the kill */
    wait_reservations_saved(c, 5000);
    char bar[32];
    push_id(c, bar, sizeof bar, "{leased}barrier", "{}");
    resp_val *g = CMD(c, "JOB.GET", id);
    long long lease_until = fint(g, "lease_until");
    resp_val_free(g);
    cli_close(c);
    spoold_kill9(s);
    wait_past(lease_until);

    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    long long deadline = unix_ms() + 5000;
    while (strcmp(job_state(c, id, st, sizeof st), "reserved") == 0 && unix_ms() < deadline)
        sleep_ms(10);
    cr_assert_str_eq(st, "delayed", "job %s: state %s 5 s after a restart past its lease, expected delayed "
                     "(expired, waiting for its retry)", id, st);
    g = CMD(c, "JOB.GET", id);
    cr_assert_eq(fint(g, "attempt"), 1);
    resp_val_free(g);
    cr_assert_eq(qstat(c, "leased", "reserved"), 0);
    resp_val *v = CMD(c, "JOB.ACK", receipt);
    cr_assert(is_error_prefix(v, "STALE"), "ACK of the expired delivery: %s", resp_describe(v));
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(crash, delay_that_ran_out_while_down_is_ready_after_restart)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    char id[32];
    take_id(CMD(c, "JOB.PUSH", "later", "{\"n\":2}", "DELAY", "300"), id, sizeof id);
    resp_val *g = CMD(c, "JOB.GET", id);
    long long run_at = fint(g, "run_at");
    resp_val_free(g);
    cli_close(c);
    spoold_kill9(s);
    wait_past(run_at);

    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    resp_val *v = CMD(c, "JOB.RESERVE", "TIMEOUT", "5000", "FROM", "later");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "a job whose delay passed while spoold was down: %s",
              resp_describe(v));
    cr_assert_str_eq(fstr(v->elem[0], "id"), id);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(crash, receipts_survive_kill_9)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "leases", "SET", "backoff", "0"));
    char ida[32], idb[32], idc[32], ra[48], rb1[48], rb2[48], rc[48], got[32];
    push_id(c, ida, sizeof ida, "leases", "{\"job\":\"a\"}");
    push_id(c, idb, sizeof idb, "leases", "{\"job\":\"b\"}");
    push_id(c, idc, sizeof idc, "leases", "{\"job\":\"c\"}");

    reserve_one(c, "leases", "60000", got, ra, sizeof ra);
    cr_assert_str_eq(got, ida);
    reserve_one(c, "leases", "300", got, rb1, sizeof rb1);
    cr_assert_str_eq(got, idb);
    reserve_one(c, "leases", "60000", got, rc, sizeof rc);
    cr_assert_str_eq(got, idc);
    expect_int(CMD(c, "JOB.ACK", rc), 1);
    /* b's lease runs out; it comes back (backoff 0) and is delivered again */
    reserve_one(c, "leases", "60000", got, rb2, sizeof rb2);
    cr_assert_str_eq(got, idb, "expected b's second delivery, got %s", got);
    cr_assert_str_neq(rb1, rb2);
    char bar[32]; /* the lease on disk before the kill (see above) */
    wait_reservations_saved(c, 5000);
    push_id(c, bar, sizeof bar, "{leases}barrier", "{}");

    resp_val *g = CMD(c, "JOB.GET", ida);
    long long lease_until = fint(g, "lease_until");
    resp_val_free(g);
    cli_close(c);
    spoold_kill9(s);

    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    g = CMD(c, "JOB.GET", ida);
    cr_assert_str_eq(fstr(g, "state"), "reserved", "a after kill -9: %s", resp_describe(g));
    cr_assert_eq(fint(g, "lease_until"), lease_until);
    cr_assert_eq(fint(g, "attempt"), 1);
    resp_val_free(g);
    g = CMD(c, "JOB.GET", idb);
    cr_assert_str_eq(fstr(g, "state"), "reserved");
    cr_assert_eq(fint(g, "attempt"), 2);
    resp_val_free(g);

    expect_error(CMD(c, "JOB.ACK", rb1), "STALE");
    expect_error(CMD(c, "JOB.ACK", rc), "STALE");
    expect_int(CMD(c, "JOB.ACK", ra), 1);
    expect_int(CMD(c, "JOB.ACK", rb2), 1);
    char st[32];
    cr_assert_str_eq(job_state(c, ida, st, sizeof st), "done");
    cr_assert_str_eq(job_state(c, idb, st, sizeof st), "done");
    cr_assert_str_eq(job_state(c, idc, st, sizeof st), "done");
    expect_error(CMD(c, "JOB.ACK", ra), "STALE");
    cr_assert_eq(unfinished(c, "leases"), 0);
    cli_close(c);

    /* and the acks themselves survive the next crash */
    spoold_kill9(s);
    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_str_eq(job_state(c, ida, st, sizeof st), "done");
    cr_assert_str_eq(job_state(c, idb, st, sizeof st), "done");
    cr_assert_eq(unfinished(c, "leases"), 0);
    cli_close(c);
    spoold_stop(s);
}

/* ================================================ state survives kill -9 */

static const char *state_queues[] = { "pri", "uniq", "deadq", "pausedq", "cfgq" };
#define NSTATEQ (sizeof state_queues / sizeof state_queues[0])

/* Everything about the queues and jobs that must survive, as text. */
static char *snapshot(cli *c, char ids[][32], int nids)
{
    resp_buf b;
    resp_buf_init(&b);
    char *t = TEXT(c, "QUEUE.LIST");
    resp_buf_printf(&b, "QUEUE.LIST %s\n", t);
    free(t);
    for (size_t i = 0; i < NSTATEQ; i++) {
        const char *q = state_queues[i];
        resp_val *v = CMD(c, "QUEUE.STATS", q);
        resp_buf_printf(&b, "%s: ready %lld reserved %lld delayed %lld done %lld dead %lld "
                            "paused %lld\n", q, fint(v, "ready"), fint(v, "reserved"),
                        fint(v, "delayed"), fint(v, "done"), fint(v, "dead"), fint(v, "paused"));
        resp_val_free(v);
        t = TEXT(c, "QUEUE.CONFIG", q, "GET");
        resp_buf_printf(&b, "%s config %s\n", q, t);
        free(t);
        t = TEXT(c, "LRANGE", q, "0", "-1");
        resp_buf_printf(&b, "%s lrange %s\n", q, t);
        free(t);
    }
    for (int i = 0; i < nids; i++) {
        t = TEXT(c, "JOB.GET", ids[i]);
        resp_buf_printf(&b, "job %s %s\n", ids[i], t);
        free(t);
    }
    resp_buf_append(&b, "", 1);
    size_t n;
    return resp_buf_take(&b, &n);
}

/* First differing line of two snapshots, for the failure message. */
static const char *first_diff(const char *a, const char *b, char *out, size_t cap)
{
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0) {
            snprintf(out, cap, "before: %.*s\nafter:  %.*s", (int)la, a, (int)lb, b);
            return out;
        }
        a += la + (ea ? 1 : 0);
        b += lb + (eb ? 1 : 0);
    }
    snprintf(out, cap, "one snapshot is longer");
    return out;
}

Test(crash, queue_state_survives_kill_9)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    char ids[16][32];
    int n = 0;
    char r[48], got[32];

    /* priorities, FIFO within one, and a far-off delayed job */
    push_id(c, ids[n++], 32, "pri", "{\"pri\":0}");
    take_id(CMD(c, "JOB.PUSH", "pri", "{\"pri\":5}", "PRI", "5"), ids[n++], 32);
    take_id(CMD(c, "JOB.PUSH", "pri", "{\"pri\":-3}", "PRI", "-3"), ids[n++], 32);
    take_id(CMD(c, "JOB.PUSH", "pri", "{\"pri\":10}", "PRI", "10", "RETRIES", "7"), ids[n++], 32);
    take_id(CMD(c, "JOB.PUSH", "pri", "{\"pri\":5,\"second\":1}", "PRI", "5"), ids[n++], 32);
    take_id(CMD(c, "JOB.PUSH", "pri", "{\"later\":1}", "DELAY", "600000"), ids[n++], 32);

    /* unique keys: one ready, one reserved (both unfinished), one done */
    char u1[32], u2[32], u3[32], again[32];
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":1}", "UNIQUE", "key-1"), u1, sizeof u1);
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":1,\"dup\":1}", "UNIQUE", "key-1"), again,
            sizeof again);
    cr_assert_str_eq(again, u1);
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":2}", "UNIQUE", "key-2", "LEASE", "600000"), u2,
            sizeof u2);
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":3}", "UNIQUE", "key-3"), u3, sizeof u3);
    /* FIFO: u1 first; take u1 back out of the way by reserving all three */
    resp_val *v = CMD(c, "JOB.RESERVE", "COUNT", "3", "NOWAIT", "FROM", "uniq");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 3, "%s", resp_describe(v));
    char ru1[48], ru3[48];
    snprintf(ru1, sizeof ru1, "%s", fstr(v->elem[0], "receipt"));
    snprintf(ru3, sizeof ru3, "%s", fstr(v->elem[2], "receipt"));
    resp_val_free(v);
    expect_int(CMD(c, "JOB.ACK", ru3), 1);                  /* u3 done */
    expect_simple(CMD(c, "JOB.NACK", ru1, "DELAY", "0"), "retry"); /* u1 back */
    char st[32];
    cr_assert(wait_until(strcmp(job_state(c, u1, st, sizeof st), "ready") == 0, 5000),
              "u1 not ready again after NACK DELAY 0: %s", st);
    snprintf(ids[n++], 32, "%s", u1);
    snprintf(ids[n++], 32, "%s", u2);
    snprintf(ids[n++], 32, "%s", u3);

    /* a dead job with its last error */
    char dead[32];
    take_id(CMD(c, "JOB.PUSH", "deadq", "{\"d\":1}", "RETRIES", "0"), dead, sizeof dead);
    reserve_one(c, "deadq", "60000", got, r, sizeof r);
    expect_simple(CMD(c, "JOB.NACK", r, "ERROR", "smtp: 550 mailbox unavailable"), "dead");
    snprintf(ids[n++], 32, "%s", dead);

    /* a paused queue with jobs */
    push_id(c, ids[n++], 32, "pausedq", "{\"p\":1}");
    push_id(c, ids[n++], 32, "pausedq", "{\"p\":2}");
    expect_ok(CMD(c, "QUEUE.PAUSE", "pausedq"));

    /* queue settings */
    expect_ok(CMD(c, "QUEUE.CONFIG", "cfgq", "SET", "retries", "3", "backoff", "1234",
                  "backoff-max", "99999", "lease", "4321", "maxlen", "50", "retention", "60000",
                  "retention-max", "77", "payload", "raw"));
    push_id(c, ids[n++], 32, "cfgq", "not json at all");

    char *before = snapshot(c, ids, n);
    cli_close(c);
    spoold_kill9(s);

    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    char *after = snapshot(c, ids, n);
    char diff[2048];
    cr_assert(strcmp(before, after) == 0, "state differs after kill -9:\n%s\n--- full before:\n%s",
              first_diff(before, after, diff, sizeof diff), before);

    /* and it behaves the same: priority order, FIFO within a priority */
    v = CMD(c, "JOB.RESERVE", "COUNT", "10", "NOWAIT", "FROM", "pri");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 5, "%s", resp_describe(v));
    const char *order[] = { "{\"pri\":10}", "{\"pri\":5}", "{\"pri\":5,\"second\":1}",
                            "{\"pri\":0}", "{\"pri\":-3}" };
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(fstr(v->elem[i], "payload"), order[i], "serving order at %zu", i);
    resp_val_free(v);
    /* unique keys still hold for unfinished jobs, not for the done one */
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":1}", "UNIQUE", "key-1"), again, sizeof again);
    cr_assert_str_eq(again, u1);
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":2}", "UNIQUE", "key-2"), again, sizeof again);
    cr_assert_str_eq(again, u2);
    take_id(CMD(c, "JOB.PUSH", "uniq", "{\"u\":3}", "UNIQUE", "key-3"), again, sizeof again);
    cr_assert_str_neq(again, u3);
    /* the dead job keeps its error and can be retried */
    v = CMD(c, "JOB.GET", dead);
    cr_assert_str_eq(fstr(v, "state"), "dead");
    cr_assert_str_eq(fstr(v, "last_error"), "smtp: 550 mailbox unavailable");
    resp_val_free(v);
    expect_ok(CMD(c, "JOB.RETRY", dead));
    reserve_one(c, "deadq", "60000", got, r, sizeof r);
    cr_assert_str_eq(got, dead);
    /* the paused queue delivers nothing until resumed */
    expect_null(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "pausedq"));
    expect_ok(CMD(c, "QUEUE.RESUME", "pausedq"));
    v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "pausedq");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "%s", resp_describe(v));
    cr_assert_str_eq(fstr(v->elem[0], "payload"), "{\"p\":1}");
    resp_val_free(v);
    /* the settings still apply */
    resp_val *cfg = CMD(c, "JOB.PUSH", "cfgq", "still not json");
    cr_assert(cfg->type == RESP_T_BULK, "payload raw lost: %s", resp_describe(cfg));
    resp_val_free(cfg);
    v = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "cfgq");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "%s", resp_describe(v));
    cr_assert_eq(fint(v->elem[0], "lease_ms"), 4321);
    resp_val_free(v);

    free(before);
    free(after);
    cli_close(c);
    spoold_stop(s);
}

/* ============================================================ faults */

/* Every job of the queues, per state, with payloads, as text. */
static char *journal_view(cli *c, const char *const *queues, int nq)
{
    static const char *states[] = { "ready", "reserved", "delayed", "done", "dead" };
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < nq; i++) {
        for (size_t k = 0; k < 5; k++) {
            resp_val *v = CMD(c, "QUEUE.PEEK", queues[i], "STATE", states[k], "COUNT", "1000");
            cr_assert(v->type == RESP_T_ARRAY, "QUEUE.PEEK: %s", resp_describe(v));
            for (size_t j = 0; j < v->n; j++)
                resp_buf_printf(&b, "%s %s %s %s attempt %lld\n", queues[i], states[k],
                                fstr(v->elem[j], "id"), fstr(v->elem[j], "payload"),
                                fint(v->elem[j], "attempt"));
            resp_val_free(v);
        }
    }
    resp_buf_append(&b, "", 1);
    size_t n;
    return resp_buf_take(&b, &n);
}

Test(crash, journal_faults_store_nothing_and_recover)
{
    spoold *s = spoold_start("--shards", "2", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    char id0[32], id1[32], id2[32], id3[32], r[48], got[32];

    /* --- a push during disk full */
    push_id(c, id0, sizeof id0, "fq", "{\"f\":0}");
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "fq", "2", "ENOSPC"));
    resp_val *e = CMD(c, "JOB.PUSH", "fq", "{\"phantom\":1}");
    cr_assert(is_error_prefix(e, "ERR journal: "), "push during a fault: %s", resp_describe(e));
    cr_assert(strstr(e->str, "disk full") && strstr(e->str, "nothing of this command was stored"),
              "the error does not say disk full / nothing stored: %s", e->str);
    fprintf(stderr, "fault reply: -%s\n", e->str);
    resp_val_free(e);
    /* reads keep working while the fault lasts (one more write will fail) */
    cr_assert_eq(llen(c, "fq"), 1);
    cr_assert_eq(unfinished(c, "fq"), 1);
    cr_assert_eq(qstat(c, "fq", "ready"), 1);
    char st[32];
    cr_assert_str_eq(job_state(c, id0, st, sizeof st), "ready");
    expect_bulks(CMD(c, "LRANGE", "fq", "0", "-1"), "{\"f\":0}");
    expect_error(CMD(c, "LPUSH", "fq", "{\"phantom\":2}", "{\"phantom\":3}"), "ERR journal: ");
    cr_assert_eq(llen(c, "fq"), 1);
    /* the fault is over: pushes work again */
    push_id(c, id1, sizeof id1, "fq", "{\"f\":1}");
    expect_int(CMD(c, "LPUSH", "fq", "{\"f\":2}"), 3);
    cr_assert_eq(unfinished(c, "fq"), 3);

    /* I/O error wording */
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "fq", "1", "EIO"));
    expect_error_has(CMD(c, "JOB.PUSH", "fq", "{\"phantom\":4}"), "ERR journal: ", "I/O error");
    cr_assert_eq(unfinished(c, "fq"), 3);

    /* --- an ACK during disk full: the job stays reserved, a later ack works */
    reserve_one(c, "fq", "60000", got, r, sizeof r);
    cr_assert_str_eq(got, id0);
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "fq", "1", "ENOSPC"));
    expect_error_has(CMD(c, "JOB.ACK", r), "ERR journal: ", "disk full");
    cr_assert_str_eq(job_state(c, id0, st, sizeof st), "reserved");
    cr_assert_eq(qstat(c, "fq", "reserved"), 1);
    cr_assert_eq(qstat(c, "fq", "done"), 0);
    expect_int(CMD(c, "JOB.ACK", r), 1);
    cr_assert_str_eq(job_state(c, id0, st, sizeof st), "done");

    /* --- a blocked waiter served while the disk is full: the delayed job
     * becomes due and the turn that hands it to the waiter fails. A
     * JOB.RESERVE reply promises nothing durable, so it left before the
     * commit: the waiter has the job, and since the lease was not stored
     * the job is ready again afterwards (at-least-once: delivered again) */
    take_id(CMD(c, "JOB.PUSH", "fw", "{\"w\":1}", "DELAY", "1500"), id2, sizeof id2);
    cli *w = cli_connect(s->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "20000", "FROM", "fw");
    wait_blocked_clients(c, 1, 10000);
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "fw", "1", "ENOSPC"));
    resp_val *wr = NULL;
    int pr = cli_poll_reply(w, 15000, &wr);
    cr_assert(pr == 1, "the waiter got no reply (%d)", pr);
    cr_assert(wr->type == RESP_T_ARRAY && wr->n == 1, "the waiter served during the fault got %s",
              resp_describe(wr));
    cr_assert_str_eq(fstr(wr->elem[0], "id"), id2);
    char lost[48];
    snprintf(lost, sizeof lost, "%s", fstr(wr->elem[0], "receipt"));
    resp_val_free(wr);
    cr_assert(wait_until(qstat(c, "fw", "ready") == 1, 5000),
              "the job is not ready after the failed commit of its lease: %s", TEXT(c, "QUEUE.STATS", "fw"));
    cr_assert_eq(qstat(c, "fw", "reserved"), 0);
    cr_assert_str_eq(job_state(c, id2, st, sizeof st), "ready");
    /* the waiter's connection still works and gets it again; the failed
     * commit did not record delivery 1, so it is delivery 1 again, under a
     * new token: the receipt of the lost lease is stale, not the new one's */
    resp_val *wv = CMD(w, "JOB.RESERVE", "NOWAIT", "LEASE", "60000", "FROM", "fw");
    cr_assert(wv->type == RESP_T_ARRAY && wv->n == 1, "%s", resp_describe(wv));
    cr_assert_str_eq(fstr(wv->elem[0], "id"), id2);
    cr_assert_eq(fint(wv->elem[0], "attempt"), 1, "the delivery whose lease was lost was not recorded");
    cr_assert_str_neq(fstr(wv->elem[0], "receipt"), lost, "the new delivery has the lost one's receipt");
    resp_val_free(wv);
    expect_error_has(CMD(c, "JOB.ACK", lost), "STALE", "JOB.RESERVE the job again");
    cr_assert_str_eq(job_state(c, id2, st, sizeof st), "reserved", "the stale receipt acked the new delivery");
    cli_close(w);

    /* --- the same for a BRPOP waiter */
    take_id(CMD(c, "JOB.PUSH", "fw", "{\"w\":2}", "DELAY", "1500"), id3, sizeof id3);
    w = cli_connect(s->port);
    SEND(w, "BRPOP", "fw", "20");
    wait_blocked_clients(c, 1, 10000);
    wait_reservations_saved(c, 5000); /* the fault is for the pop's write, not the lease's written late */
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "fw", "1", "ENOSPC"));
    pr = cli_poll_reply(w, 15000, &wr);
    cr_assert(pr == 1, "the BRPOP waiter got no reply (%d)", pr);
    cr_assert(is_error_prefix(wr, "ERR journal: "), "the BRPOP waiter got %s", resp_describe(wr));
    resp_val_free(wr);
    cr_assert(wait_until(llen(c, "fw") == 1, 5000), "the job is not ready after the failed pop");
    cr_assert_str_eq(job_state(c, id3, st, sizeof st), "ready");
    cli_close(w);

    /* --- restart: the journal holds exactly what was acknowledged */
    const char *qs[] = { "fq", "fw" };
    char *before = journal_view(c, qs, 2);
    cr_assert(!strstr(before, "phantom"), "a failed push is visible:\n%s", before);
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "2", "--enable-debug-command", "yes", NULL);
    c = cli_connect(s->port);
    char *after = journal_view(c, qs, 2);
    cr_assert(!strstr(after, "phantom"), "a failed push came back after the restart:\n%s", after);
    cr_assert_str_eq(after, before, "journal after the faults and kill -9 differs:\nbefore:\n%s"
                     "after:\n%s", before, after);
    cr_assert_str_eq(job_state(c, id0, st, sizeof st), "done");
    cr_assert_str_eq(job_state(c, id1, st, sizeof st), "ready");
    cr_assert_str_eq(job_state(c, id2, st, sizeof st), "reserved");
    cr_assert_str_eq(job_state(c, id3, st, sizeof st), "ready");
    cr_assert_eq(unfinished(c, "fq"), 2);
    cr_assert_eq(unfinished(c, "fw"), 2);
    free(before);
    free(after);
    cli_close(c);
    spoold_stop(s);
}

/* ============================================================ LOCK */

Test(crash, second_spoold_on_same_data_dir_is_refused)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    expect_int(CMD(c, "LPUSH", "locked", "{\"x\":1}"), 1);

    char data[320], port_file[320];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(port_file, sizeof port_file, "%s/port2", s->dir);
    char *argv[] = { (char *)spoold_path(), "--port", "0", "--bind", "127.0.0.1",
                     "--data-dir", data, "--port-file", port_file, NULL };
    char *out = NULL;
    int code = run_capture(argv, &out, 10000);
    cr_assert(code > 0, "a second spoold on the same data dir %s (exit %d); output:\n%s",
              code == 0 ? "exited 0" : "did not exit by itself", code, out);
    cr_assert(strstr(out, "LOCK"), "the refusal does not name the LOCK file:\n%s", out);
    cr_assert(access(port_file, F_OK) != 0, "the second spoold wrote a port file");
    fprintf(stderr, "second spoold: exit %d: %s", code, out);
    free(out);

    /* the first one is unharmed */
    expect_int(CMD(c, "LPUSH", "locked", "{\"x\":2}"), 2);
    cli_close(c);
    spoold_term(s);
    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "locked"), 2);
    cli_close(c);
    spoold_stop(s);
}
