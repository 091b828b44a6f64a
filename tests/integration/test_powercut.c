/*
 * test_powercut.c - what spoold answered for survives a power cut, not only
 * kill -9.
 *
 * kill -9 keeps the page cache, so it cannot catch a reply sent before its
 * fsync. These tests run spoold with --enable-debug-command yes, which puts
 * every file it writes behind the power-cut seam (broker/powercut.h), and
 * end it with DEBUG POWER-CUT [TORN]: unsynced writes are dropped (TORN:
 * the last one of each file is cut at a random 512-byte boundary), entries
 * whose directory was never synced are removed, the process exits at once.
 *
 * - Under mixed load (JOB.PUSH with DELAY and PRI, LPUSH, JOB.RESERVE with
 *   ACK and NACK, RPOP/BRPOP, JOB.DEL), a control connection cuts the power
 *   at a random moment; spoold restarts on the same data dir and everything
 *   is drained. Checked against the clients' own records: every
 *   acknowledged push is there (or was consumed before the cut), no
 *   acknowledged ack, pop or delete is undone, no job is delivered twice
 *   beyond at-least-once, nothing appears that was never pushed, and every
 *   shard file passes PRAGMA integrity_check. --fsync always: nothing may
 *   be lost. --fsync batch: what is lost must be the newest changes of each
 *   producer (no holes), and the window is measured and printed.
 *   SPOOL_POWERCUT_ROUNDS sets the cuts per test (default 10; scripts/soak
 *   runs hundreds).
 * - Start-up: a cut after each write (and at reads) while a new data dir is
 *   created, while an old schema is migrated, and while a journal is
 *   recovered (SPOOL_POWER_CUT_AT); the next start must work and keep every
 *   job.
 * - Each file spoold writes itself, through the seam: the data directory
 *   (its entry in the parent), LOCK, the port file, the shard files and the
 *   shard-count record (in --fsync batch too).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tclient.h"

TestSuite(powercut, .timeout = 300);

#define POWERCUT_EXIT 86   /* broker/powercut.h POWERCUT_EXIT_CODE */
#define MAXN 20000         /* pushes per producer: bounds every loop */
#define NPROD 3

/* ------------------------------------------------------------ helpers */

static unsigned rnd_seed;

static unsigned rnd(void)
{
    rnd_seed = rnd_seed * 1103515245u + 12345u;
    return (rnd_seed >> 8) & 0xffffff;
}

static void seed_once(void)
{
    if (!rnd_seed) {
        const char *s = getenv("SPOOL_POWERCUT_SEED");
        rnd_seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
        fprintf(stderr, "power-cut seed %u (set SPOOL_POWERCUT_SEED to repeat)\n", rnd_seed);
    }
}

static int rounds_wanted(void)
{
    const char *s = getenv("SPOOL_POWERCUT_ROUNDS");
    int n = s ? atoi(s) : 10;
    return n > 0 ? n : 10;
}

/* Waits (deadline 10 s) for spoold to end by itself; its exit code, or
 * -signal, or 999 on timeout (then it is killed). */
static int wait_exit(spoold *s)
{
    long long deadline = now_ms() + 30000; /* generous: a sanitizer spoold on a busy machine stops slowly */
    int status = 0;
    for (;;) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid)
            break;
        if (now_ms() > deadline) {
            spoold_kill9(s);
            return 999;
        }
        sleep_ms(2);
    }
    s->running = false;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* What the seam says it did at the cut (from the spoold log). */
typedef struct cut_info {
    long long dropped, torn;
} cut_info;

/* Sends DEBUG POWER-CUT [TORN] and checks that spoold ends with the seam's
 * exit code and no reply. */
static cut_info power_cut(spoold *s, bool torn)
{
    cut_info ci = { 0, 0 };
    cli *c = cli_connect(s->port);
    if (torn)
        SEND(c, "DEBUG", "POWER-CUT", "TORN");
    else
        SEND(c, "DEBUG", "POWER-CUT");
    int code = wait_exit(s);
    resp_val *v = NULL;
    int got = cli_poll_reply(c, 100, &v);
    cr_assert(got != 1, "DEBUG POWER-CUT replied: %s", resp_describe(v));
    cli_close(c);
    char *log = spoold_log(s);
    cr_assert(code == POWERCUT_EXIT, "spoold did not end with the power cut (exit %d); log:\n%s",
              code, log);
    const char *line = strstr(log, "DEBUG POWER-CUT");
    const char *p = line ? strstr(line, "last sync (") : NULL;
    cr_assert(p, "the seam did not log the cut; log:\n%s", log);
    sscanf(p, "last sync (%lld", &ci.dropped);
    const char *t = strstr(p, "; ");
    if (torn && t)
        sscanf(t, "; %lld", &ci.torn);
    free(log);
    return ci;
}

static void data_path(const spoold *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/data/%s", s->dir, name);
}

/* PRAGMA integrity_check of every shard-*.db in dir (spoold stopped). */
static int check_files_open(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open the data dir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "shard-", 6) != 0 || len < 4 || strcmp(e->d_name + len - 3, ".db"))
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
        cr_assert(rc == SQLITE_OK, "%s does not open: %s", path, sqlite3_errmsg(db));
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
        cr_assert(rc == SQLITE_OK, "%s: %s", path, sqlite3_errmsg(db));
        cr_assert(sqlite3_step(st) == SQLITE_ROW, "%s: integrity_check: %s", path, sqlite3_errmsg(db));
        const char *res = (const char *)sqlite3_column_text(st, 0);
        cr_assert(res && strcmp(res, "ok") == 0, "%s: integrity_check says %s", path, res ? res : "?");
        sqlite3_finalize(st);
        sqlite3_close(db);
        n++;
    }
    closedir(d);
    return n;
}

/* Files named shard-<k>.payload.<n> in dir. */
static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open the data dir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, "shard-", 6) == 0 && strstr(e->d_name, ".payload.") != NULL;
    closedir(d);
    return n;
}

/* ============================================= mixed load, random cuts */

static const char *pq[NPROD] = { "pc-jobs", "pc-list", "pc-jobs2" };

enum { PUSH_NONE = 0, PUSH_OK = 1, PUSH_ERR = 2 };
enum { C_ACK = 1, C_POP = 2, C_DEL = 4 };

typedef struct mark {
    int p, n;
    long long t; /* ms after the load started, when the reply came */
} mark;

typedef struct marks {
    mark *a;
    int n, cap;
} marks;

static void marks_add(marks *m, int p, int n, long long t)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->a = realloc(m->a, (size_t)m->cap * sizeof *m->a);
    }
    m->a[m->n++] = (mark){ p, n, t };
}

typedef struct round_ctx {
    int port;
    atomic_bool stop;
    atomic_long ops_ok; /* acknowledged writes, for the cut trigger */
    pthread_barrier_t go;
    long long t0;
} round_ctx;

typedef struct producer {
    pthread_t th;
    round_ctx *rc;
    int k;
    tconn *t;
    int attempted;
    unsigned char outcome[MAXN];
    long long t_ok[MAXN];
    char (*ids)[20];    /* JOB.PUSH ids, for the deleter */
    atomic_int published;
    char err[300];
} producer;

typedef struct consumer {
    pthread_t th;
    round_ctx *rc;
    producer *pr;       /* the deleter reads ids from here */
    tconn *t;
    marks done;         /* acks, pops or deletes that were answered */
    int unsure_p, unsure_n; /* an ack/delete sent with no reply (-1: none) */
    int unsure_pops;    /* jobs a pop without reply may have taken */
    int nacks, stale;
    char err[300];
} consumer;

static bool parse_payload(const char *s, int *p, int *n)
{
    char tail;
    return sscanf(s, "{\"p\":%d,\"n\":%d%c", p, n, &tail) == 3 && tail == '}' && strlen(s) < 40 &&
           *p >= 0 && *p < NPROD && *n >= 0 && *n < MAXN;
}

static long long since(round_ctx *rc)
{
    return now_ms() - rc->t0;
}

static void note(char *err, const char *what, const resp_val *v)
{
    if (!err[0])
        snprintf(err, 300, "%s: %s", what, resp_describe(v));
}

/* Producer 0: JOB.PUSH (every 5th delayed 200 ms); 1: LPUSH; 2: JOB.PUSH
 * (every 3rd with PRI 1). */
static void *producer_main(void *arg)
{
    producer *pr = arg;
    pthread_barrier_wait(&pr->rc->go);
    for (int i = 0; i < MAXN && !atomic_load(&pr->rc->stop); i++) {
        char payload[48];
        snprintf(payload, sizeof payload, "{\"p\":%d,\"n\":%d}", pr->k, i);
        const char *argv[6] = { pr->k == 1 ? "LPUSH" : "JOB.PUSH", pq[pr->k],
                                payload };
        int argc = 3;
        if (pr->k == 0 && i % 5 == 4)
            argv[argc++] = "DELAY", argv[argc++] = "200";
        if (pr->k == 2 && i % 3 == 2)
            argv[argc++] = "PRI", argv[argc++] = "1";
        pr->attempted = i + 1;
        resp_val *v = tc_cmdv(pr->t, argc, argv);
        if (!v)
            break; /* the power is gone: this push is unanswered */
        bool ok = pr->k == 1 ? v->type == RESP_T_INT && v->integer >= 1
                             : v->type == RESP_T_BULK && v->len == 16;
        pr->outcome[i] = ok ? PUSH_OK : PUSH_ERR;
        if (ok) {
            pr->t_ok[i] = since(pr->rc);
            if (pr->k != 1) {
                snprintf(pr->ids[i], sizeof pr->ids[i], "%s", v->str);
                atomic_store(&pr->published, i + 1);
            }
            atomic_fetch_add(&pr->rc->ops_ok, 1);
        } else {
            note(pr->err, "push", v);
        }
        resp_val_free(v);
    }
    return NULL;
}

/* JOB.RESERVE from all three queues; NACK (DELAY 0) the first delivery of
 * every n % 4 == 1, ACK everything else. */
static void *worker_main(void *arg)
{
    consumer *w = arg;
    const char *res[] = { "JOB.RESERVE", "TIMEOUT", "100", "COUNT", "4", "FROM", pq[0], pq[1], pq[2] };
    pthread_barrier_wait(&w->rc->go);
    for (int round = 0; round < 100000 && !atomic_load(&w->rc->stop); round++) {
        resp_val *v = tc_cmdv(w->t, 9, res);
        if (!v)
            return NULL;
        if (v->type != RESP_T_ARRAY) {
            if (v->type != RESP_T_NULL)
                note(w->err, "JOB.RESERVE", v);
            resp_val_free(v);
            continue;
        }
        for (size_t i = 0; i < v->n; i++) {
            const resp_val *rec = v->elem[i];
            const resp_val *rc = resp_field(rec, "receipt"), *pl = resp_field(rec, "payload");
            const resp_val *at = resp_field(rec, "attempt");
            int p, n;
            if (!rc || !pl || !at || pl->type != RESP_T_BULK || !parse_payload(pl->str, &p, &n)) {
                note(w->err, "JOB.RESERVE job", rec);
                continue;
            }
            bool nack = n % 4 == 1 && at->integer == 1;
            const char *cmd[] = { nack ? "JOB.NACK" : "JOB.ACK", rc->str, "DELAY", "0" };
            if (!nack)
                w->unsure_p = p, w->unsure_n = n;
            resp_val *a = tc_cmdv(w->t, nack ? 4 : 2, cmd);
            if (!a) {
                resp_val_free(v);
                return NULL; /* unsure_* stays set: the ack may or may not be stored */
            }
            w->unsure_p = -1;
            if (nack && a->type == RESP_T_SIMPLE && strcmp(a->str, "retry") == 0) {
                w->nacks++;
                atomic_fetch_add(&w->rc->ops_ok, 1);
            } else if (!nack && a->type == RESP_T_INT && a->integer == 1) {
                marks_add(&w->done, p, n, since(w->rc));
                atomic_fetch_add(&w->rc->ops_ok, 1);
            } else if (a->type == RESP_T_ERROR &&
                       (!strncmp(a->str, "STALE", 5) || !strncmp(a->str, "NOJOB", 5))) {
                w->stale++; /* the lease ran out first, or JOB.DEL took the job */
            } else {
                note(w->err, nack ? "JOB.NACK" : "JOB.ACK", a);
            }
            resp_val_free(a);
        }
        resp_val_free(v);
    }
    return NULL;
}

static void pop_record(consumer *c, const resp_val *elem)
{
    int p, n;
    if (!elem || elem->type != RESP_T_BULK || !parse_payload(elem->str, &p, &n)) {
        note(c->err, "pop", elem);
        return;
    }
    marks_add(&c->done, p, n, since(c->rc));
    atomic_fetch_add(&c->rc->ops_ok, 1);
}

/* RPOP pc-list 3 and BRPOP pc-list 0.1, in turns (at-most-once pops). */
static void *popper_main(void *arg)
{
    consumer *c = arg;
    const char *rpop[] = { "RPOP", pq[1], "3" };
    const char *brpop[] = { "BRPOP", pq[1], "0.1" };
    pthread_barrier_wait(&c->rc->go);
    for (int round = 0; round < 100000 && !atomic_load(&c->rc->stop); round++) {
        bool b = round % 2;
        c->unsure_pops = b ? 1 : 3;
        resp_val *v = tc_cmdv(c->t, 3, b ? brpop : rpop);
        if (!v)
            return NULL;
        c->unsure_pops = 0;
        if (v->type == RESP_T_ARRAY && b && v->n == 2)
            pop_record(c, v->elem[1]);
        else if (v->type == RESP_T_ARRAY && !b)
            for (size_t i = 0; i < v->n; i++)
                pop_record(c, v->elem[i]);
        else if (v->type != RESP_T_NULL)
            note(c->err, b ? "BRPOP" : "RPOP", v);
        resp_val_free(v);
    }
    return NULL;
}

/* JOB.DEL every pushed job of producers 0 and 2 with n % 7 == 3. */
static void *deleter_main(void *arg)
{
    consumer *c = arg;
    int next[2] = { 0, 0 };
    pthread_barrier_wait(&c->rc->go);
    for (int round = 0; round < 200000 && !atomic_load(&c->rc->stop); round++) {
        int which = round % 2, k = which ? 2 : 0;
        producer *pr = &c->pr[k];
        int avail = atomic_load(&pr->published);
        while (next[which] < avail && (next[which] % 7 != 3 || !pr->ids[next[which]][0]))
            next[which]++;
        const char *cmd[2];
        int n = next[which];
        if (n < avail) {
            cmd[0] = "JOB.DEL";
            cmd[1] = pr->ids[n];
            next[which]++;
            c->unsure_p = k, c->unsure_n = n;
        } else {
            cmd[0] = "LLEN"; /* nothing new to delete: a read paces the loop */
            cmd[1] = pq[1];
        }
        resp_val *v = tc_cmdv(c->t, 2, cmd);
        if (!v)
            return NULL;
        c->unsure_p = -1;
        if (cmd[0][0] == 'J') {
            if (v->type == RESP_T_INT && v->integer == 1) {
                marks_add(&c->done, k, n, since(c->rc));
                atomic_fetch_add(&c->rc->ops_ok, 1);
            } else if (!(v->type == RESP_T_INT && v->integer == 0)) {
                note(c->err, "JOB.DEL", v);
            }
        }
        resp_val_free(v);
    }
    return NULL;
}

typedef struct drained {
    int p, n;
    char id[24];
} drained;

/* Reserves and acks everything left in the three queues after the restart
 * (leases from before the cut run out in 500 ms, delays in 200 ms). */
static drained *drain_all(cli *c, int *count)
{
    int cap = 1024, nd = 0;
    drained *d = malloc((size_t)cap * sizeof *d);
    long long deadline = now_ms() + 60000;
    for (;;) {
        cr_assert(now_ms() < deadline, "drain: queues not empty after 60 s (drained %d)", nd);
        resp_val *v = CMD(c, "JOB.RESERVE", "TIMEOUT", "200", "COUNT", "200", "LEASE", "120000",
                          "FROM", pq[0], pq[1], pq[2]);
        if (v->type == RESP_T_NULL) {
            resp_val_free(v);
            long long left = 0;
            for (int i = 0; i < NPROD; i++)
                left += stat_of(c, pq[i], "ready") + stat_of(c, pq[i], "delayed") +
                        stat_of(c, pq[i], "reserved");
            if (left == 0)
                break;
            continue;
        }
        cr_assert(v->type == RESP_T_ARRAY, "drain: JOB.RESERVE: %s", resp_describe(v));
        for (size_t i = 0; i < v->n; i++) {
            const resp_val *rec = v->elem[i];
            if (nd == cap)
                d = realloc(d, (size_t)(cap *= 2) * sizeof *d);
            drained *x = &d[nd++];
            snprintf(x->id, sizeof x->id, "%s", field_str(rec, "id"));
            const char *payload = field_str(rec, "payload");
            cr_assert(parse_payload(payload, &x->p, &x->n),
                      "job %s after the cut has a payload no producer wrote: %s", x->id, payload);
            expect_int(CMD(c, "JOB.ACK", field_str(rec, "receipt")), 1);
        }
        resp_val_free(v);
    }
    for (int i = 0; i < NPROD; i++)
        cr_assert_eq(stat_of(c, pq[i], "dead"), 0, "queue %s has dead jobs", pq[i]);
    *count = nd;
    return d;
}

/* Totals over the rounds of one test, for the note. */
typedef struct totals {
    int cuts;
    long pushes_ok, consumed, recovered, unanswered_stored, lost, undone;
    long long window_max; /* batch: oldest lost reply, ms before the cut */
    long long dropped, torn; /* bytes the seam dropped / kept of torn writes */
} totals;

typedef struct verdict {
    long pushes_ok, consumed, recovered, unanswered, unanswered_stored, lost, undone;
    long long window; /* ms between the oldest lost acknowledged write and the cut */
} verdict;

/* Compares the clients' records with what was drained after the restart. */
static verdict check_round(producer *pr, consumer *cs, int ncs, drained *d, int nd,
                           const char *fsync_mode, long long t_cut)
{
    bool strict = strcmp(fsync_mode, "always") == 0;
    verdict vd = { 0 };
    unsigned char *cons[NPROD], *seen[NPROD], *unsure[NPROD];
    long long *t_cons[NPROD];
    for (int k = 0; k < NPROD; k++) {
        cons[k] = calloc(MAXN, 1);
        seen[k] = calloc(MAXN, 1);
        unsure[k] = calloc(MAXN, 1);
        t_cons[k] = calloc(MAXN, sizeof(long long));
    }
    int unsure_pops = 0;
    for (int i = 0; i < ncs; i++) {
        consumer *c = &cs[i];
        unsigned char kind = i == 0 ? C_ACK : i == 1 ? C_POP : C_DEL;
        if (c->unsure_p >= 0)
            unsure[c->unsure_p][c->unsure_n] = 1;
        unsure_pops += c->unsure_pops;
        for (int j = 0; j < c->done.n; j++) {
            mark *m = &c->done.a[j];
            cr_assert(m->n < pr[m->p].attempted, "{\"p\":%d,\"n\":%d} consumed but never pushed",
                      m->p, m->n);
            if (kind != C_DEL)
                cr_assert(!(cons[m->p][m->n] & (C_ACK | C_POP)),
                          "{\"p\":%d,\"n\":%d} was acked or popped twice before the cut", m->p, m->n);
            cons[m->p][m->n] |= kind;
            t_cons[m->p][m->n] = m->t;
        }
    }
    for (int i = 0; i < nd; i++) {
        drained *x = &d[i];
        cr_assert(x->n < pr[x->p].attempted, "job %s {\"p\":%d,\"n\":%d} was never pushed", x->id,
                  x->p, x->n);
        cr_assert(!seen[x->p][x->n], "duplicate: {\"p\":%d,\"n\":%d} is there twice after the "
                  "restart (job %s)", x->p, x->n, x->id);
        seen[x->p][x->n] = 1;
        if (cons[x->p][x->n]) {
            long long ago = t_cut - t_cons[x->p][x->n];
            cr_assert(!strict, "undone: {\"p\":%d,\"n\":%d} was %s before the cut (replied %lld ms "
                      "before it) and is back after the restart as job %s (fsync %s)", x->p, x->n,
                      cons[x->p][x->n] & C_ACK ? "acked" : cons[x->p][x->n] & C_POP ? "popped"
                                                                                   : "deleted",
                      ago, x->id, fsync_mode);
            vd.undone++;
            if (ago > vd.window)
                vd.window = ago;
        }
    }
    vd.recovered = nd;
    long missing_list = 0;
    for (int k = 0; k < NPROD; k++) {
        int first_lost = -1;
        for (int n = 0; n < pr[k].attempted; n++) {
            if (cons[k][n])
                vd.consumed++;
            if (pr[k].outcome[n] != PUSH_OK) {
                vd.unanswered++;
                vd.unanswered_stored += seen[k][n] || cons[k][n];
                continue;
            }
            vd.pushes_ok++;
            if (cons[k][n] || seen[k][n] || unsure[k][n]) {
                cr_assert(strict || !seen[k][n] || first_lost < 0,
                          "hole (fsync %s): push {\"p\":%d,\"n\":%d} was lost but the later "
                          "{\"p\":%d,\"n\":%d} survived", fsync_mode, k, first_lost, k, n);
                continue;
            }
            if (k == 1 && missing_list < unsure_pops) {
                missing_list++; /* a pop whose reply the cut swallowed may have taken it */
                continue;
            }
            cr_assert(!strict, "lost: push {\"p\":%d,\"n\":%d} (%s %s) was acknowledged %lld ms "
                      "before the cut and is gone after the restart (fsync %s)", k, n,
                      k == 1 ? "LPUSH" : "JOB.PUSH", pq[k], t_cut - pr[k].t_ok[n], fsync_mode);
            vd.lost++;
            if (first_lost < 0)
                first_lost = n;
            if (t_cut - pr[k].t_ok[n] > vd.window)
                vd.window = t_cut - pr[k].t_ok[n];
        }
    }
    for (int k = 0; k < NPROD; k++) {
        free(cons[k]);
        free(seen[k]);
        free(unsure[k]);
        free(t_cons[k]);
    }
    return vd;
}

/* Rounds with every payload in the payload file (broker/paylog.h), in
 * segments of 4 KiB: records written but never committed, committed rows
 * whose record a cut tore, segments rotated and deleted under load, and
 * restarts with segments on disk. */
static bool pf_on;

static void load_round(const char *fsync_mode, bool torn, int round, totals *tot)
{
    spoold *s = pf_on ? spoold_start("--shards", "2", "--fsync", fsync_mode, "--enable-debug-command", "yes",
                                     "--payload-file-min", "1", "--payload-file-segment", "4kb", NULL)
                      : spoold_start("--shards", "2", "--fsync", fsync_mode, "--enable-debug-command", "yes",
                                     NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < NPROD; i++)
        expect_ok(CMD(c, "QUEUE.CONFIG", pq[i], "SET", "lease", "500", "backoff", "0"));
    cli_close(c);

    round_ctx rc = { .port = s->port };
    producer *pr = calloc(NPROD, sizeof *pr);
    consumer *cs = calloc(3, sizeof *cs);
    void *(*cmain[3])(void *) = { worker_main, popper_main, deleter_main };
    pthread_barrier_init(&rc.go, NULL, NPROD + 3 + 1);
    for (int k = 0; k < NPROD; k++) {
        pr[k].rc = &rc;
        pr[k].k = k;
        pr[k].ids = calloc(MAXN, sizeof *pr[k].ids);
        pr[k].t = tc_connect(s->port);
        cr_assert(pr[k].t, "producer %d cannot connect", k);
    }
    for (int i = 0; i < 3; i++) {
        cs[i] = (consumer){ .rc = &rc, .pr = pr, .t = tc_connect(s->port), .unsure_p = -1 };
        cr_assert(cs[i].t, "consumer %d cannot connect", i);
    }
    for (int k = 0; k < NPROD; k++)
        cr_assert(pthread_create(&pr[k].th, NULL, producer_main, &pr[k]) == 0);
    for (int i = 0; i < 3; i++)
        cr_assert(pthread_create(&cs[i].th, NULL, cmain[i], &cs[i]) == 0);
    rc.t0 = now_ms();
    pthread_barrier_wait(&rc.go);

    /* acknowledged writes before the cut; batch runs longer, past a few
     * WAL checkpoints, to measure what it loses */
    bool batch = strcmp(fsync_mode, "batch") == 0;
    long target = batch ? 500 + (long)(rnd() % 7500) : 20 + (long)(rnd() % 1500);
    bool reached = wait_until(atomic_load(&rc.ops_ok) >= target, 20000);
    long at_cut = atomic_load(&rc.ops_ok);
    cut_info ci = power_cut(s, torn);
    long long t_cut = now_ms() - rc.t0;
    atomic_store(&rc.stop, true);
    for (int k = 0; k < NPROD; k++)
        pthread_join(pr[k].th, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(cs[i].th, NULL);
    pthread_barrier_destroy(&rc.go);
    cr_assert(reached, "only %ld writes acknowledged within 20 s (cut point %ld)", at_cut, target);
    for (int k = 0; k < NPROD; k++)
        cr_assert(!pr[k].err[0], "before the cut: producer %d %s", k, pr[k].err);
    for (int i = 0; i < 3; i++)
        cr_assert(!cs[i].err[0], "before the cut: consumer %d %s", i, cs[i].err);

    if (pf_on)
        spoold_restart(s, "--shards", "2", "--fsync", fsync_mode, "--payload-file-min", "1",
                       "--payload-file-segment", "4kb", NULL);
    else
        spoold_restart(s, "--shards", "2", "--fsync", fsync_mode, NULL);
    c = cli_connect(s->port);
    int nd = 0;
    drained *d = drain_all(c, &nd);
    cli_close(c);
    verdict vd = check_round(pr, cs, 3, d, nd, fsync_mode, t_cut);
    spoold_term(s);
    char dir[400];
    data_path(s, "", dir, sizeof dir);
    int files = check_files_open(dir);
    cr_assert_eq(files, 2, "expected 2 shard files, %d opened", files);
    if (pf_on)
        cr_assert(count_segments(dir) >= 2, "no payload segments in %s: the payload file was not used", dir);

    fprintf(stderr, "power cut %d (fsync %s%s, after %ld acknowledged writes, %lld ms): pushes "
            "acknowledged %ld, consumed before the cut %ld (nacks %d), unanswered pushes %ld (%ld "
            "stored), recovered and drained %ld, lost %ld, undone acks/pops/deletes %ld; the seam "
            "dropped %lld unsynced byte(s)%s\n",
            round, fsync_mode, torn ? ", torn" : "", at_cut, t_cut, vd.pushes_ok, vd.consumed,
            cs[0].nacks, vd.unanswered, vd.unanswered_stored, vd.recovered, vd.lost, vd.undone,
            ci.dropped, torn ? " (a torn prefix of the last write kept)" : "");
    tot->dropped += ci.dropped;
    tot->torn += ci.torn;
    if (vd.lost || vd.undone)
        fprintf(stderr, "  oldest lost acknowledged write: replied %lld ms before the cut\n",
                vd.window);
    tot->cuts++;
    tot->pushes_ok += vd.pushes_ok;
    tot->consumed += vd.consumed;
    tot->recovered += vd.recovered;
    tot->unanswered_stored += vd.unanswered_stored;
    tot->lost += vd.lost;
    tot->undone += vd.undone;
    if (vd.window > tot->window_max)
        tot->window_max = vd.window;

    free(d);
    for (int k = 0; k < NPROD; k++) {
        tc_close(pr[k].t);
        free(pr[k].ids);
    }
    for (int i = 0; i < 3; i++) {
        tc_close(cs[i].t);
        free(cs[i].done.a);
    }
    free(pr);
    free(cs);
    spoold_destroy(s);
}

static void load_rounds(const char *fsync_mode, bool torn, int n)
{
    seed_once();
    totals tot = { 0 };
    for (int i = 0; i < n; i++)
        load_round(fsync_mode, torn, i + 1, &tot);
    fprintf(stderr, "POWER-CUT%s summary (fsync %s): %d cut(s), %ld acknowledged pushes, %ld "
            "consumed before a cut, %ld jobs recovered after restarts, %ld unanswered pushes "
            "stored, %ld acknowledged pushes lost, %ld acknowledged acks/pops/deletes undone, "
            "oldest loss %lld ms before its cut; the seam dropped %lld unsynced byte(s) and kept "
            "%lld byte(s) of torn writes\n", torn ? " TORN" : "", fsync_mode, tot.cuts,
            tot.pushes_ok, tot.consumed, tot.recovered, tot.unanswered_stored, tot.lost, tot.undone,
            tot.window_max, tot.dropped, tot.torn);
}

Test(powercut, fsync_always_random_cuts_lose_nothing)
{
    load_rounds("always", false, rounds_wanted());
}

Test(powercut, fsync_always_torn_cuts_lose_nothing)
{
    load_rounds("always", true, rounds_wanted());
}

Test(powercut, payload_file_random_cuts_lose_nothing)
{
    pf_on = true;
    load_rounds("always", false, rounds_wanted() / 2 < 2 ? 2 : rounds_wanted() / 2);
}

Test(powercut, payload_file_torn_cuts_lose_nothing)
{
    pf_on = true;
    load_rounds("always", true, rounds_wanted() / 2 < 2 ? 2 : rounds_wanted() / 2);
}

Test(powercut, fsync_batch_loses_only_the_newest_writes)
{
    int n = rounds_wanted() / 4;
    load_rounds("batch", false, n < 2 ? 2 : n);
}

/* A trickle that never leaves the shard idle (so no idle checkpoint) and
 * never fills the WAL (so no automatic one): --fsync batch still syncs the
 * WAL about once a second, so a cut loses only the last second. The pace
 * comes from the server: a JOB.RESERVE TIMEOUT 20 on an empty queue. */
Test(powercut, fsync_batch_trickle_loses_at_most_the_last_second)
{
    seed_once();
    spoold *s = spoold_start("--shards", "1", "--fsync", "batch", "--enable-debug-command", "yes",
                             NULL);
    cli *c = cli_connect(s->port);
    enum { MAXT = 1000 };
    static long long t_ok[MAXT];
    long long t0 = now_ms(), run_ms = 4000 + rnd() % 1000;
    int n = 0;
    while (n < MAXT && now_ms() - t0 < run_ms) {
        char p[32];
        snprintf(p, sizeof p, "{\"t\":%d}", n);
        PUSH(c, "trickle", p);
        t_ok[n++] = now_ms();
        expect_null(CMD(c, "JOB.RESERVE", "TIMEOUT", "20", "FROM", "pace"));
    }
    cli_close(c);
    power_cut(s, false);
    long long t_cut = now_ms();
    spoold_restart(s, "--shards", "1", "--fsync", "batch", NULL);
    c = cli_connect(s->port);
    resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "COUNT", "1000", "FROM", "trickle");
    int kept = 0;
    if (v->type == RESP_T_ARRAY) {
        for (size_t i = 0; i < v->n; i++) {
            int t = -1;
            sscanf(field_str(v->elem[i], "payload"), "{\"t\":%d}", &t);
            cr_assert_eq(t, kept, "after the cut, job %zu is {\"t\":%d}: the survivors are not "
                         "the oldest pushes in order", i, t);
            kept++;
        }
    } else {
        cr_assert(v->type == RESP_T_NULL, "JOB.RESERVE: %s", resp_describe(v));
    }
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
    long long window = kept < n ? t_cut - t_ok[kept] : 0;
    fprintf(stderr, "trickle (fsync batch): %d pushes acknowledged over %lld ms, %d kept, %d lost, "
            "the oldest lost one acknowledged %lld ms before the cut\n", n, run_ms, kept,
            n - kept, window);
    cr_assert(window <= 2500, "--fsync batch lost pushes acknowledged up to %lld ms before the "
              "cut (%d of %d lost); the WAL should be synced about once a second", window,
              n - kept, n);
}

/* ================================================== files spoold writes */

/* The data dir spoold creates, its LOCK and the shard files and WAL: a cut
 * right after an acknowledged push keeps them all (the parent directory
 * was synced after the mkdir). */
Test(powercut, new_data_dir_survives_a_cut)
{
    spoold *s = spoold_start(NULL);
    spoold_term(s);
    char dir[400], lock[450];
    data_path(s, "fresh", dir, sizeof dir);
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    spoold_restart(s, "--data-dir", dir, "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    jid id = PUSH(c, "fresh-q", "{\"fresh\":1}");
    cli_close(c);
    power_cut(s, false);
    struct stat st;
    cr_assert(stat(dir, &st) == 0, "the data dir %s is gone after the cut: its entry in the "
              "parent directory was never synced", dir);
    cr_assert(stat(lock, &st) == 0, "%s is gone after the cut", lock);
    spoold_restart(s, "--data-dir", dir, NULL);
    c = cli_connect(s->port);
    EXPECT_STATE(c, id.s, "ready");
    cli_close(c);
    spoold_stop(s);
}

/* The port file is replaced atomically and durably: after a cut it holds
 * the port of the process that wrote it, not nothing. */
Test(powercut, port_file_survives_a_cut)
{
    spoold *s = spoold_start("--enable-debug-command", "yes", NULL);
    int port = s->port;
    power_cut(s, true);
    char path[400], buf[32] = "";
    snprintf(path, sizeof path, "%s/port", s->dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "the port file %s is gone after the cut (rename without a directory sync)", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cr_assert_eq(atoi(buf), port, "the port file holds '%s' after the cut, expected %d (written "
                 "without an fsync before the rename?)", buf, port);
    spoold_destroy(s);
}

/* With --fsync batch a commit is not synced, but the start-up writes are:
 * the shard files and the shard count survive a cut at once. */
Test(powercut, shard_count_survives_a_cut_in_batch_mode)
{
    spoold *s = spoold_start("--shards", "2", "--fsync", "batch", "--enable-debug-command", "yes",
                             NULL);
    power_cut(s, false);
    char f0[400], f1[400];
    data_path(s, "shard-0.db", f0, sizeof f0);
    data_path(s, "shard-1.db", f1, sizeof f1);
    struct stat st;
    cr_assert(stat(f0, &st) == 0 && stat(f1, &st) == 0, "a shard file is gone after the cut");
    int code = spoold_restart_may_fail(s, "--shards", "3", "--fsync", "batch", NULL);
    char *log = spoold_log(s);
    cr_assert(code > 0 && strstr(log, "created with 2 shards"), "a restart with --shards 3 after "
              "the cut was not refused (exit %d), so the shard count was lost; log:\n%s", code, log);
    free(log);
    spoold_restart(s, "--shards", "2", "--fsync", "batch", NULL);
    cli *c = cli_connect(s->port);
    PUSH(c, "after", "{\"ok\":1}");
    cli_close(c);
    spoold_stop(s);
}

/* ============================================================ start-up */

/* Copies every regular file of from into to (created). */
static void copy_dir(const char *from, const char *to)
{
    mkdir(to, 0755);
    DIR *d = opendir(from);
    cr_assert(d, "opendir %s: %s", from, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        char a[600], b[600];
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert(in >= 0 && out >= 0, "copy %s: %s", a, strerror(errno));
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            cr_assert(write(out, buf, (size_t)n) == n);
        close(in);
        close(out);
    }
    closedir(d);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char a[900];
        snprintf(a, sizeof a, "%s/%s", dir, e->d_name);
        unlink(a);
    }
    closedir(d);
    rmdir(dir);
}

/* Starts spoold on a copy of pristine (NULL: a data dir that does not
 * exist yet) with the power cut after the nth op ("write"/"sync"/"read"),
 * then starts it normally on what the cut left and checks that the jobs
 * ids[] are there and every file opens. Returns false when the start-up
 * had fewer than n such operations (it came up and was stopped). */
static bool startup_cut(spoold *s, const char *pristine, const char *op, int n, bool torn,
                        const char *const *extra, jid *ids, int nids)
{
    char dir[400], at[64];
    data_path(s, "cut", dir, sizeof dir);
    remove_dir(dir);
    if (pristine)
        copy_dir(pristine, dir);
    snprintf(at, sizeof at, "%s:%d", op, n);
    setenv("SPOOL_POWER_CUT_AT", at, 1);
    if (torn)
        setenv("SPOOL_POWER_CUT_TORN", "1", 1);
    int code = spoold_restart_may_fail(s, "--data-dir", dir, "--enable-debug-command", "yes",
                                       extra[0], extra[1], NULL);
    unsetenv("SPOOL_POWER_CUT_AT");
    unsetenv("SPOOL_POWER_CUT_TORN");
    if (code == 0) {
        /* listening: the cut may still come (a later write), or never */
        kill(s->pid, SIGTERM);
        code = wait_exit(s);
        cr_assert(code == 0 || code == POWERCUT_EXIT, "spoold %s ended with %d", at, code);
        if (code == 0)
            return false;
    }
    char *log = spoold_log(s);
    cr_assert_eq(code, POWERCUT_EXIT, "start-up with SPOOL_POWER_CUT_AT=%s ended with %d; log:\n%s",
                 at, code, log);
    free(log);
    spoold_restart(s, "--data-dir", dir, extra[0], extra[1], NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < nids; i++)
        EXPECT_STATE(c, ids[i].s, "ready");
    jid again = PUSH(c, "after-cut", "{\"after\":1}");
    (void)again;
    cli_close(c);
    spoold_term(s);
    check_files_open(dir);
    return true;
}

/* Cuts after every op of the start-up (a write or a sync), alternately
 * torn; returns how many cuts it made. Against a sanitizer's spoold, whose
 * every start takes several times as long, the first 8 ops and then every
 * 4th from a random offset (printed, SPOOL_POWERCUT_SEED repeats it): each
 * run there covers a quarter of the later ops, the normal build all. */
static int cut_every(spoold *s, const char *pristine, const char *op, int max,
                     const char *const *extra, jid *ids, int nids)
{
    int step = spoold_sanitized() ? 4 : 1, cuts = 0, n = 1;
    seed_once();
    int offset = (int)(rnd() % (unsigned)step);
    if (step > 1)
        fprintf(stderr, "start-up cuts (%s) under a sanitizer: ops 1..8, then every %dth from %d\n",
                op, step, 9 + offset);
    while (n <= max && startup_cut(s, pristine, op, n, n % 2 == 0, extra, ids, nids)) {
        cuts++;
        n = n < 8 ? n + 1 : n == 8 ? 9 + offset : n + step;
    }
    cr_assert(cuts > 0, "the start-up made no %s at all, so nothing was cut", op);
    return cuts;
}

/* Cut after each write, then after each sync, of a start-up on a data
 * dir that does not exist yet (two tests, so each has its own time). */
static void new_data_dir_cuts(const char *op)
{
    spoold *s = spoold_start(NULL);
    spoold_term(s);
    const char *extra[] = { "--shards", "2" };
    int cuts = cut_every(s, NULL, op, 200, extra, NULL, 0);
    fprintf(stderr, "new data dir: cut after %d %ss of the start-up\n", cuts, op);
    spoold_destroy(s);
}

Test(powercut, cut_during_new_data_dir_start_up_writes)
{
    new_data_dir_cuts("write");
}

Test(powercut, cut_during_new_data_dir_start_up_syncs)
{
    new_data_dir_cuts("sync");
}

/* A journal with jobs in its WAL (kill -9, nothing checkpointed): cut
 * while the next start reads it back. */
Test(powercut, cut_during_recovery)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    jid ids[40];
    for (int i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"r\":%d}", i);
        ids[i] = PUSH(c, "recover-q", p);
    }
    cli_close(c);
    spoold_kill9(s);
    char pristine[400];
    data_path(s, "", pristine, sizeof pristine);
    const char *extra[] = { "--shards", "1" };
    int n = 0, reads = 0;
    for (int r = 1; r <= 4096 && startup_cut(s, pristine, "read", r, r % 2 == 0, extra, ids, 40);
         r = r < 8 ? r + 1 : r * 2)
        n++, reads = r;
    cr_assert(n > 0, "recovery made no reads to cut at");
    fprintf(stderr, "recovery: %d cuts at reads 1..%d of the start-up; all 40 jobs were there after "
            "each\n", n, reads);
    spoold_destroy(s);
}

/* ---------------------------------------- payload file compaction */

#define PC_ARGS "--shards", "1", "--payload-file-min", "1kb", "--payload-file-segment", "16kb"

/* Payload files with a record in them (more than the 16-byte header). */
static int segments_with_records(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char a[900];
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", dir, e->d_name);
        n += strstr(e->d_name, ".payload.") && stat(a, &st) == 0 && st.st_size > 16;
    }
    closedir(d);
    return n;
}

static void compact_body(int k, char *out)
{
    memset(out, 'a' + k, 3000);
    out[0] = out[2999] = '"';
    out[3000] = '\0';
}

/* Spoold on a copy of pristine, cut after its nth op: compaction starts as
 * it starts. Then a normal start must read the kept payloads whole. False
 * when compaction ended (one segment with records) before the nth op. */
static bool compaction_cut(spoold *s, const char *pristine, const char *op, int n, const jid *keep)
{
    char dir[400], at[64], body[3001];
    data_path(s, "cut", dir, sizeof dir);
    remove_dir(dir);
    copy_dir(pristine, dir);
    snprintf(at, sizeof at, "%s:%d", op, n);
    setenv("SPOOL_POWER_CUT_AT", at, 1);
    if (n % 2 == 0)
        setenv("SPOOL_POWER_CUT_TORN", "1", 1);
    int code = spoold_restart_may_fail(s, "--data-dir", dir, "--enable-debug-command", "yes", PC_ARGS, NULL);
    unsetenv("SPOOL_POWER_CUT_AT");
    unsetenv("SPOOL_POWER_CUT_TORN");
    if (code == 0) {
        int status = 0;
        bool ended = wait_until(waitpid(s->pid, &status, WNOHANG) == s->pid || segments_with_records(dir) == 1,
                                20000);
        cr_assert(ended, "compaction did not end (%s)", at);
        if (segments_with_records(dir) == 1 && s->running && kill(s->pid, 0) == 0) {
            kill(s->pid, SIGTERM);
            code = wait_exit(s);
        } else {
            s->running = false;
            code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        cr_assert(code == 0 || code == POWERCUT_EXIT, "spoold %s ended with %d", at, code);
        if (code == 0) /* no cut: this run compacted the three segments into one */
            return false;
    }
    char *log = spoold_log(s);
    cr_assert_eq(code, POWERCUT_EXIT, "SPOOL_POWER_CUT_AT=%s: spoold ended with %d; log:\n%s", at, code, log);
    free(log);
    spoold_restart(s, "--data-dir", dir, "--payload-file-compact", "0", PC_ARGS, NULL);
    cli *c = cli_connect(s->port);
    for (int k = 0; k < 3; k++) {
        compact_body(k, body);
        resp_val *v = CMD(c, "JOB.GET", keep[k].s);
        const char *got = v->type == RESP_T_NULL ? NULL : field_str(v, "payload");
        cr_assert(got && strcmp(got, body) == 0, "after a cut at %s, kept job %d lost or changed", at, k);
        resp_val_free(v);
    }
    cli_close(c);
    spoold_term(s);
    return true;
}

/* Three 16 KiB segments of five 3000-byte jobs, one of each kept (the rest
 * acked): each is 20 % live, and the next start compacts all three into
 * one. A cut after every write and every sync of that start (torn every
 * other time) leaves every kept payload readable. */
Test(powercut, a_cut_at_every_step_of_a_compaction_keeps_every_payload)
{
    spoold *s = spoold_start("--payload-file-compact", "0", PC_ARGS, NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "pc-go", "SET", "retention", "0"));
    jid keep[3];
    char body[3001];
    for (int i = 0; i < 15; i++) {
        compact_body(i % 5 == 2 ? i / 5 : 9, body);
        jid id = PUSH(c, i % 5 == 2 ? "pc-keep" : "pc-go", body);
        if (i % 5 == 2)
            keep[i / 5] = id;
    }
    for (int acked = 0; acked < 12;) {
        resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "COUNT", "12", "FROM", "pc-go");
        cr_assert_eq(v->type, RESP_T_ARRAY, "JOB.RESERVE: %s", resp_describe(v));
        for (size_t k = 0; k < v->n; k++, acked++)
            expect_int(CMD(c, "JOB.ACK", field_str(v->elem[k], "receipt")), 1);
        resp_val_free(v);
    }
    cli_close(c);
    spoold_term(s);
    char pristine[400];
    data_path(s, "", pristine, sizeof pristine);
    cr_assert_eq(segments_with_records(pristine), 3);
    int writes = 0, syncs = 0;
    while (writes < 400 && compaction_cut(s, pristine, "write", writes + 1, keep))
        writes++;
    while (syncs < 200 && compaction_cut(s, pristine, "sync", syncs + 1, keep))
        syncs++;
    cr_assert(writes > 0 && syncs > 0, "nothing was cut");
    fprintf(stderr, "compaction: cut after each of %d writes and %d syncs; the kept payloads were whole after "
            "each\n", writes, syncs);
    spoold_destroy(s);
}

/* Reads a source file into a string (caller frees). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s: %s", path, strerror(errno));
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

/* A data dir at schema version 1 (migration 0001 only) with jobs in it,
 * then a cut after every write of the start-up that migrates it. */
Test(powercut, cut_during_migration)
{
    spoold *s = spoold_start(NULL);
    spoold_term(s);
    char pristine[400], db_path[450];
    data_path(s, "v1", pristine, sizeof pristine);
    mkdir(pristine, 0755);
    snprintf(db_path, sizeof db_path, "%s/shard-0.db", pristine);
    sqlite3 *db = NULL;
    cr_assert(sqlite3_open(db_path, &db) == SQLITE_OK);
    char *sql = slurp(SOURCE_ROOT "/migrations/0001_init.sql");
    char *err = NULL;
    cr_assert(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, &err) == SQLITE_OK, "%s", err);
    cr_assert(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "0001_init.sql: %s", err);
    free(sql);
    jid ids[20];
    long long now = wall_ms();
    for (int i = 0; i < 20; i++) {
        unsigned long long id = ((unsigned long long)(now - 1000 + i) << 22); /* shard 0 */
        snprintf(ids[i].s, sizeof ids[i].s, "%016llx", id);
        char row[400];
        snprintf(row, sizeof row, "INSERT INTO jobs (id, queue, state, pos, retries, lease_ms, "
                 "created_at, updated_at, payload) VALUES (%llu, CAST('migrate-q' AS BLOB), 0, %d, "
                 "25, 30000, %lld, %lld, CAST('{\"m\":%d}' AS BLOB))", id, i, now, now, i);
        cr_assert(sqlite3_exec(db, row, NULL, NULL, &err) == SQLITE_OK, "%s", err);
    }
    cr_assert(sqlite3_exec(db, "PRAGMA user_version = 1; PRAGMA wal_checkpoint(TRUNCATE)", NULL,
                           NULL, &err) == SQLITE_OK, "%s", err);
    sqlite3_close(db);

    const char *extra[] = { "--shards", "1" };
    int writes = cut_every(s, pristine, "write", 300, extra, ids, 20);
    int syncs = cut_every(s, pristine, "sync", 100, extra, ids, 20);
    char cut_db[700];
    data_path(s, "cut/shard-0.db", cut_db, sizeof cut_db);
    cr_assert(sqlite3_open(cut_db, &db) == SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
    cr_assert(sqlite3_step(st) == SQLITE_ROW);
    int version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert(version >= 3, "schema version %d after the migrations", version);
    fprintf(stderr, "migration 1 -> %d: cut after each of %d writes and %d syncs; the 20 jobs "
            "were there after each\n", version, writes, syncs);
    spoold_destroy(s);
}

/* --fsync always: a cut while a commit's sync is held back (DEBUG
 * SYNC-DELAY) drops that commit (its push was never answered) and keeps
 * the ones before; the directory starts again as sound. (The mark is
 * written only once the sync returned; the seam sets the mark file back
 * too, so this test cannot tell a mark written too early.) */
Test(powercut, cut_during_a_sync_leaves_the_mark_behind_the_disk)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *p = cli_connect(s->port);
    jid kept = PUSH(c, "mk", "{\"kept\":1}");
    expect_ok(CMD(c, "DEBUG", "SYNC-DELAY", "mk", "5000"));
    SEND(p, "JOB.PUSH", "mk", "{\"unsynced\":1}");
    bool in = wait_until(llen(c, "mk") == 2, 3000); /* committed, its sync held back */
    cr_assert(in, "the second push did not reach the shard");
    cli_close(c);
    cli_close(p);
    power_cut(s, false);
    int rc = spoold_restart_may_fail(s, "--shards", "1", NULL);
    char *log = spoold_log(s);
    cr_assert_eq(rc, 0, "a sound directory was refused after the cut; log:\n%s", log);
    free(log);
    c = cli_connect(s->port);
    EXPECT_STATE(c, kept.s, "ready");
    cli_close(c);
    spoold_stop(s);
}

/* ------------------------------------------------------ failed syncs */

/* The reply of JOB.PUSH: an id (acknowledged) or an error. */
static bool push_acked(cli *c, const char *q, int n, jid *out, char *err, size_t cap)
{
    char payload[64];
    snprintf(payload, sizeof payload, "{\"n\":%d}", n);
    resp_val *v = CMD(c, "JOB.PUSH", q, payload);
    bool ok = v->type == RESP_T_BULK || v->type == RESP_T_SIMPLE;
    if (ok)
        snprintf(out->s, sizeof out->s, "%s", v->str);
    else if (v->type == RESP_T_ERROR)
        snprintf(err, cap, "%s", v->str);
    else
        snprintf(err, cap, "unexpected reply %s", resp_describe(v));
    resp_val_free(v);
    return ok;
}

/* The refusal names the shard, the data dir, the OS error and the fix. */
static void expect_named_refusal(const spoold *s, const char *err)
{
    char dir[400];
    data_path(s, "", dir, sizeof dir);
    dir[strlen(dir) - 1] = '\0'; /* no trailing slash */
    cr_assert(strstr(err, "shard 0"), "the refusal does not name the shard: %s", err);
    cr_assert(strstr(err, dir), "the refusal does not name the data dir %s: %s", dir, err);
    cr_assert(strstr(err, "EIO"), "the refusal does not name the OS error: %s", err);
    cr_assert(strstr(err, "restart spoold"), "the refusal does not tell the fix: %s", err);
}

/* Closes c, cuts the power, starts spoold again (one shard, this --fsync)
 * and returns a new connection; fails the test if the start is refused. */
static cli *cut_and_restart(spoold *s, cli *c, const char *fsync)
{
    cli_close(c);
    power_cut(s, false);
    int rc = spoold_restart_may_fail(s, "--shards", "1", "--fsync", fsync, NULL);
    char *log = spoold_log(s);
    cr_assert_eq(rc, 0, "spoold did not start after the cut; log:\n%s", log);
    free(log);
    return cli_connect(s->port);
}

/* --fsync always: the sync of one commit fails (EIO, its pages lost as on
 * Linux). Its write gets an error; no later write is acknowledged (each is
 * refused, naming the fault); reads answer; INFO says so; and after a
 * power cut and a restart every acknowledged job is there. */
Test(powercut, a_failed_wal_sync_is_never_followed_by_an_acknowledged_write)
{
    spoold *s = spoold_start("--shards", "1", "--fsync", "always", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    jid acked[32];
    int nacked = 0, after = 0;
    char err[1200] = "";
    for (int i = 0; i < 3; i++)
        cr_assert(push_acked(c, "sf", i, &acked[nacked++], err, sizeof err), "push %d before the fault: %s", i, err);
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "sf", "1"));
    jid id;
    cr_assert_not(push_acked(c, "sf", 100, &id, err, sizeof err), "the push whose sync failed was acknowledged");
    cr_assert(strstr(err, "EIO"), "the failed push's error does not name the OS error: %s", err);
    for (int i = 0; i < 20; i++) {
        if (push_acked(c, "sf", 200 + i, &acked[nacked], err, sizeof err)) {
            nacked++;
            after++;
        } else {
            expect_named_refusal(s, err);
        }
    }
    expect_simple(CMD(c, "MULTI"), "OK"); /* a transaction's writes fail at the journal */
    expect_simple(CMD(c, "JOB.PUSH", "sf", "{\"tx\":1}"), "QUEUED");
    resp_val *v = CMD(c, "EXEC");
    bool tx_acked = v->type == RESP_T_ARRAY && v->n == 1 && v->elem[0]->type == RESP_T_BULK;
    cr_assert_not(tx_acked, "a push in EXEC was acknowledged after the failed sync: %s", resp_describe(v));
    resp_val_free(v);
    /* a reserve would record a lease: refused too, not delivered unrecorded */
    expect_error(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "sf"), "ERR shard 0 refuses writes");
    EXPECT_STATE(c, acked[0].s, "ready"); /* reads answer */
    cr_assert_geq(llen(c, "sf"), 3);
    cr_assert_eq(info_field(c, "persistence", "journal_failed_shards"), 1, "INFO does not report the failed shard");
    c = cut_and_restart(s, c, "always");
    for (int i = 0; i < nacked; i++)
        EXPECT_STATE(c, acked[i].s, "ready");
    cr_assert_eq(after, 0, "%d write(s) were acknowledged after the failed sync", after);
    cli_close(c);
    spoold_stop(s);
}

/* Clients waiting on a shard when a failed sync fences it (a JOB.RESERVE
 * and a BLPOP on queues other than the failed push's) are answered with
 * the fence's error at once, as a write is, not nil at their timeout. */
Test(powercut, clients_waiting_on_a_fenced_shard_get_its_error_at_once)
{
    spoold *s = spoold_start("--shards", "1", "--fsync", "always", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *r = cli_connect(s->port), *b = cli_connect(s->port);
    SEND(r, "JOB.RESERVE", "TIMEOUT", "30000", "FROM", "idle");
    SEND(b, "BLPOP", "idle-list", "30");
    wait_blocked_clients(c, 2, 10000);
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "sf", "1"));
    jid id;
    char err[1200];
    cr_assert_not(push_acked(c, "sf", 1, &id, err, sizeof err), "the push whose sync failed was acknowledged");
    cli *waiting[] = { r, b };
    for (int i = 0; i < 2; i++) {
        resp_val *v = NULL;
        cr_assert_eq(cli_poll_reply(waiting[i], 5000, &v), 1, "%s: no answer within 5 s of the fence",
                     i ? "BLPOP" : "JOB.RESERVE");
        cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "ERR shard 0 refuses writes") &&
                  strstr(v->str, "restart spoold"), "%s: %s", i ? "BLPOP" : "JOB.RESERVE", resp_describe(v));
        resp_val_free(v);
    }
    cr_assert_eq(info_field(c, "clients", "blocked_clients"), 0, "a client still counted as blocked");
    expect_error(CMD(r, "JOB.RESERVE", "TIMEOUT", "100", "FROM", "idle"), "ERR shard 0 refuses writes");
    cli_close(b);
    cli_close(r);
    cli_close(c);
    spoold_stop(s);
}

/* A JOB.WAIT parked on a shard when a failed sync fences it (the job it
 * waits for can no longer finish there: its ack would be refused) gets the
 * fence's error at once, not nil at its timeout; one sent later is refused
 * on arrival. */
Test(powercut, a_job_wait_on_a_fenced_shard_gets_its_error_at_once)
{
    spoold *s = spoold_start("--shards", "1", "--fsync", "always", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port), *w = cli_connect(s->port);
    jid job = PUSH(c, "waited", "{\"w\":1}");
    SEND(w, "JOB.WAIT", job.s, "TIMEOUT", "30000");
    wait_blocked_clients(c, 1, 10000);
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "sf", "1"));
    jid id;
    char err[1200];
    cr_assert_not(push_acked(c, "sf", 1, &id, err, sizeof err), "the push whose sync failed was acknowledged");
    resp_val *v = NULL;
    cr_assert_eq(cli_poll_reply(w, 5000, &v), 1, "JOB.WAIT: no answer within 5 s of the fence");
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "ERR shard 0 refuses writes") &&
              strstr(v->str, "restart spoold"), "JOB.WAIT: %s", resp_describe(v));
    resp_val_free(v);
    cr_assert_eq(info_field(c, "clients", "blocked_clients"), 0, "the JOB.WAIT client still counted as blocked");
    expect_error(CMD(w, "JOB.WAIT", job.s, "TIMEOUT", "100"), "ERR shard 0 refuses writes");
    cli_close(w);
    cli_close(c);
    spoold_stop(s);
}

/* Two shards: the one whose sync failed refuses writes, the other goes on;
 * a clean stop (SIGTERM) still ends with 0, and the next start has every
 * acknowledged job and none of the refused ones. */
Test(powercut, a_failed_sync_fences_only_its_shard_and_a_clean_stop_keeps_every_acknowledged_job)
{
    spoold *s = spoold_start("--shards", "2", "--fsync", "always", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    jid id, acked[16], refused[16];
    int na = 0, nr = 0;
    char err[1200], q[16];
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "q0", "1"));
    cr_assert_not(push_acked(c, "q0", 0, &id, err, sizeof err), "the push whose sync failed was acknowledged");
    for (int i = 0; i < 16; i++) {
        snprintf(q, sizeof q, "q%d", i);
        if (push_acked(c, q, i, &acked[na], err, sizeof err)) {
            na++;
        } else {
            cr_assert(strstr(err, "refuses writes"), "push to %s: %s", q, err);
            snprintf(refused[nr++].s, sizeof refused[0].s, "%s", q);
        }
    }
    cr_assert(na > 0 && nr > 0, "%d queue(s) refused, %d accepted: one shard should do each", nr, na);
    cr_assert_eq(info_field(c, "persistence", "journal_failed_shards"), 1);
    cli_close(c);
    spoold_term(s);
    spoold_restart(s, "--shards", "2", "--fsync", "always", NULL);
    c = cli_connect(s->port);
    for (int i = 0; i < na; i++)
        EXPECT_STATE(c, acked[i].s, "ready");
    for (int i = 0; i < nr; i++) /* q0 may hold the push whose sync failed */
        if (strcmp(refused[i].s, "q0") != 0)
            cr_assert_eq(llen(c, refused[i].s), 0, "a refused push to %s was stored", refused[i].s);
    cr_assert_eq(info_field(c, "persistence", "journal_failed_shards"), 0, "the restart did not clear the fault");
    cli_close(c);
    spoold_stop(s);
}

/* --fsync batch: the once-a-second sync fails; from then on no write is
 * acknowledged, and after a power cut what was synced before is there. */
Test(powercut, fsync_batch_a_failed_sync_stops_acknowledging_writes)
{
    spoold *s = spoold_start("--shards", "1", "--fsync", "batch", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    long long syncs = info_field(c, "persistence", "journal_syncs");
    jid a = PUSH(c, "bf", "{\"a\":1}"), id;
    bool synced = wait_until(info_field(c, "persistence", "journal_syncs") > syncs, 5000);
    cr_assert(synced, "the batch sync did not come within 5 s");
    expect_ok(CMD(c, "DEBUG", "SYNC-FAIL", "bf", "1"));
    PUSH(c, "bf", "{\"b\":1}"); /* batch: acknowledged before its sync, which fails */
    bool failed = wait_until(info_field(c, "persistence", "journal_failed_shards") == 1, 5000);
    cr_assert(failed, "the failed batch sync was not noticed within 5 s");
    char err[1200];
    cr_assert_not(push_acked(c, "bf", 3, &id, err, sizeof err), "a push after the failed sync was acknowledged");
    expect_named_refusal(s, err);
    EXPECT_STATE(c, a.s, "ready"); /* reads answer */
    c = cut_and_restart(s, c, "batch");
    EXPECT_STATE(c, a.s, "ready");
    cli_close(c);
    spoold_stop(s);
}

/* SPOOL_SYNC_FAIL_AT=N fails the Nth sync of the process, at start-up or
 * after: either the start is refused naming the failed sync, or spoold
 * serves reads and acknowledges no write once a sync failed; a clean stop
 * exits 0, and the next start without the fault has every job. */
Test(powercut, a_sync_failing_at_start_up_or_after_loses_nothing)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    jid ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = PUSH(c, "su", "{}");
    cli_close(c);
    spoold_term(s);
    for (int n = 1; n <= 8; n++) {
        char at[16], err[1200];
        snprintf(at, sizeof at, "%d", n);
        setenv("SPOOL_SYNC_FAIL_AT", at, 1);
        int code = spoold_restart_may_fail(s, "--shards", "1", "--enable-debug-command", "yes", NULL);
        unsetenv("SPOOL_SYNC_FAIL_AT");
        char *log = spoold_log(s);
        if (code != 0) {
            cr_assert(strstr(log, "EIO"), "SPOOL_SYNC_FAIL_AT=%d: the refused start does not name the failed sync; "
                      "log:\n%s", n, log);
        } else {
            c = cli_connect(s->port);
            EXPECT_STATE(c, ids[0].s, "ready");
            long long failed = info_field(c, "persistence", "journal_failed_shards");
            jid id;
            bool acked = push_acked(c, "su-more", n, &id, err, sizeof err);
            cr_assert(!(failed && acked), "SPOOL_SYNC_FAIL_AT=%d: a push was acknowledged after a failed sync", n);
            cr_assert(acked || strstr(err, "EIO"), "SPOOL_SYNC_FAIL_AT=%d: the refusal does not name the fault: %s", n,
                      err);
            cli_close(c);
            spoold_term(s);
        }
        free(log);
        spoold_restart(s, "--shards", "1", NULL);
        c = cli_connect(s->port);
        for (int i = 0; i < 3; i++)
            EXPECT_STATE(c, ids[i].s, "ready");
        cli_close(c);
        spoold_term(s);
    }
    spoold_destroy(s);
}
