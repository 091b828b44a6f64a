/* raft-probe: what libraft (the Raft library under dqlite) costs spool.
 *
 * Forks three nodes (one process each, libuv TCP transport on loopback,
 * Raft log in a temp dir), then on the leader:
 *   1. commits --entries entries of --size bytes one at a time (latency);
 *   2. commits as many with --window in flight (throughput);
 * then --rounds times: SIGKILLs the leader, measures from the kill to the
 * first entry committed by the new leader (the write pause at failover),
 * and restarts the killed node. Every wait has a deadline.
 *
 *   raft-probe [--entries N] [--size BYTES] [--window W] [--rounds R]
 *              [--election-ms MS] [--port P]
 */
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODES 3
#define MAXLAT 100000

enum { PH_LOAD = 1, PH_LOADED, PH_FAILOVER, PH_QUIT };

struct shared {
    _Atomic int phase;
    _Atomic int leader; /* id of the node that finished a phase's work */
    _Atomic long long kill_ns, commit_ns, elected_ns;
    double seq_per_s, pipe_per_s;
    double lat_us[MAXLAT];
    int nlat;
};

static struct shared *sh;
static int entries = 2000, esize = 512, window = 32, rounds = 5, election_ms = 1000, port = 19310;
static char base[256];

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The FSM keeps nothing: the probe measures Raft alone. */
static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *b, void **res)
{
    (void)f, (void)b;
    *res = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n)
{
    (void)f;
    *bufs = raft_malloc(sizeof **bufs);
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_calloc(1, 8);
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *b)
{
    (void)f;
    raft_free(b->base);
    return 0;
}

struct node {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tr;
    struct raft_fsm fsm;
    uv_loop_t loop;
    uv_timer_t tick;
    int id;
    long long t0;
    int sent, done, mode; /* mode 1: sequential, 2: pipelined, 3: failover */
    bool elected_seen;
};

static void submit(struct node *n);

static void applied(struct raft_apply *req, int status, void *result)
{
    struct node *n = req->data;
    (void)result;
    long long t = now_ns();
    long long t_sent = *(long long *)(req + 1);
    free(req);
    if (status != 0) {
        fprintf(stderr, "raft-probe: node %d: apply failed: %s\n", n->id, raft_strerror(status));
        n->mode = 0;
        return;
    }
    n->done++;
    if (n->mode == 1 && sh->nlat < MAXLAT)
        sh->lat_us[sh->nlat++] = (double)(t - t_sent) / 1e3;
    if (n->mode == 3) {
        atomic_store(&sh->commit_ns, t);
        atomic_store(&sh->leader, n->id);
        n->mode = 0;
        return;
    }
    if (n->done == entries) {
        double secs = (double)(t - n->t0) / 1e9;
        if (n->mode == 1) {
            sh->seq_per_s = entries / secs;
            n->mode = 2, n->sent = n->done = 0, n->t0 = now_ns();
        } else {
            sh->pipe_per_s = entries / secs;
            n->mode = 0;
            atomic_store(&sh->leader, n->id);
            atomic_store(&sh->phase, PH_LOADED);
            return;
        }
    }
    submit(n);
}

static void submit(struct node *n)
{
    int limit = n->mode == 2 ? window : 1;
    while (n->mode && n->sent < entries && n->sent - n->done < limit) {
        struct raft_apply *req = malloc(sizeof *req + sizeof(long long));
        *(long long *)(req + 1) = now_ns();
        req->data = n;
        struct raft_buffer buf = { .len = (size_t)esize, .base = raft_malloc((size_t)esize) };
        memset(buf.base, 'x', buf.len);
        int rc = raft_apply(&n->raft, req, &buf, 1, applied);
        if (rc != 0) {
            raft_free(buf.base);
            free(req);
            n->mode = 0;
            return;
        }
        n->sent++;
        if (n->mode == 3)
            return;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    int ph = atomic_load(&sh->phase);
    if (ph == PH_QUIT) {
        uv_stop(&n->loop);
        return;
    }
    if (raft_state(&n->raft) != RAFT_LEADER || n->mode)
        return;
    if (ph == PH_LOAD && atomic_load(&sh->leader) == 0) {
        atomic_store(&sh->leader, -1);
        n->mode = 1, n->t0 = now_ns();
        submit(n);
    } else if (ph == PH_FAILOVER && atomic_load(&sh->leader) == 0 && !n->elected_seen) {
        n->elected_seen = true;
        atomic_store(&sh->elected_ns, now_ns());
        n->mode = 3, n->sent = n->done = 0;
        entries = 1;
        submit(n);
    }
}

static void node_main(int id)
{
    struct node n = { .id = id };
    char dir[300], addr[64];
    snprintf(dir, sizeof dir, "%s/n%d", base, id);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port + id);
    uv_loop_init(&n.loop);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "raft-probe: node %d: mkdir %s: %s\n", id, dir, strerror(errno));
        _exit(1);
    }
    n.fsm = (struct raft_fsm){ .version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore };
    if (raft_uv_tcp_init(&n.tr, &n.loop) || raft_uv_init(&n.io, &n.loop, dir, &n.tr) ||
        raft_init(&n.raft, &n.io, &n.fsm, (raft_id)id, addr)) {
        fprintf(stderr, "raft-probe: node %d: init failed\n", id);
        _exit(1);
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 1; i <= NODES; i++) {
        char a[64];
        snprintf(a, sizeof a, "127.0.0.1:%d", port + i);
        raft_configuration_add(&conf, (raft_id)i, a, RAFT_VOTER);
    }
    int rc = raft_bootstrap(&n.raft, &conf);
    if (rc != 0 && rc != RAFT_CANTBOOTSTRAP)
        fprintf(stderr, "raft-probe: node %d: bootstrap: %s\n", id, raft_strerror(rc));
    raft_configuration_close(&conf);
    raft_set_election_timeout(&n.raft, (unsigned)election_ms);
    raft_set_heartbeat_timeout(&n.raft, (unsigned)(election_ms / 10));
    raft_set_snapshot_threshold(&n.raft, 1u << 30);
    if (raft_start(&n.raft) != 0) {
        fprintf(stderr, "raft-probe: node %d: start: %s\n", id, raft_errmsg(&n.raft));
        _exit(1);
    }
    uv_timer_init(&n.loop, &n.tick);
    n.tick.data = &n;
    uv_timer_start(&n.tick, on_tick, 2, 2);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    _exit(0);
}

static pid_t spawn(int id)
{
    pid_t p = fork();
    if (p == 0)
        node_main(id);
    return p;
}

/* Waits until pred() holds, polling every millisecond, for at most secs. */
static bool wait_for(bool (*pred)(void), double secs)
{
    long long end = now_ns() + (long long)(secs * 1e9);
    while (!pred()) {
        if (now_ns() > end)
            return false;
        usleep(1000);
    }
    return true;
}

static bool loaded(void) { return atomic_load(&sh->phase) == PH_LOADED; }
static bool recommitted(void) { return atomic_load(&sh->leader) > 0; }

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    return n ? v[(int)((n - 1) * p + 0.5)] : 0;
}

static void parse(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--entries")) entries = v;
        else if (!strcmp(argv[i], "--size")) esize = v;
        else if (!strcmp(argv[i], "--window")) window = v;
        else if (!strcmp(argv[i], "--rounds")) rounds = v;
        else if (!strcmp(argv[i], "--election-ms")) election_ms = v;
        else if (!strcmp(argv[i], "--port")) port = v;
        else {
            fprintf(stderr, "raft-probe: unknown option %s (see the head of bench/raft_probe.c)\n", argv[i]);
            exit(2);
        }
    }
    if (entries < 1 || entries > MAXLAT || esize < 1 || window < 1 || rounds < 0 || election_ms < 50) {
        fprintf(stderr, "raft-probe: --entries 1..%d, --size >= 1, --window >= 1, --election-ms >= 50\n", MAXLAT);
        exit(2);
    }
}

static void stop_all(pid_t *pids)
{
    atomic_store(&sh->phase, PH_QUIT);
    for (int i = 1; i <= NODES; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "raft-probe: could not remove %s\n", base);
}

static int failovers(pid_t *pids)
{
    double pause_ms[64], elect_ms[64];
    int nf = 0;
    for (int r = 0; r < rounds && r < 64; r++) {
        int victim = atomic_load(&sh->leader);
        atomic_store(&sh->leader, 0);
        atomic_store(&sh->phase, PH_FAILOVER);
        atomic_store(&sh->kill_ns, now_ns());
        kill(pids[victim], SIGKILL);
        waitpid(pids[victim], NULL, 0);
        if (!wait_for(recommitted, 30)) {
            fprintf(stderr, "raft-probe: no new leader committed within 30 s of killing node %d\n", victim);
            for (int i = 1; i <= NODES; i++) {
                int st;
                if (i != victim && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                    fprintf(stderr, "raft-probe: node %d had ended: %s %d\n", i,
                            WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                    pids[i] = 0;
                }
            }
            return 1;
        }
        pause_ms[nf] = (double)(sh->commit_ns - sh->kill_ns) / 1e6;
        elect_ms[nf++] = (double)(sh->elected_ns - sh->kill_ns) / 1e6;
        printf("failover %d: killed node %d, node %d leads after %.0f ms, first commit after %.0f ms\n", r + 1,
               victim, atomic_load(&sh->leader), elect_ms[nf - 1], pause_ms[nf - 1]);
        pids[victim] = spawn(victim);
        usleep((useconds_t)election_ms * 3000); /* let the restarted node rejoin before the next kill */
    }
    qsort(pause_ms, (size_t)nf, sizeof *pause_ms, cmp_d);
    if (nf)
        printf("write pause at failover over %d kills (election timeout %d ms): p50 %.0f ms, max %.0f ms\n", nf,
               election_ms, pct(pause_ms, nf, 0.5), pause_ms[nf - 1]);
    return 0;
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* a peer killed mid-write must not kill the writer */
    snprintf(base, sizeof base, "/tmp/raft-probe-XXXXXX");
    if (!mkdtemp(base)) {
        perror("raft-probe: mkdtemp");
        return 1;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    atomic_store(&sh->phase, PH_LOAD);
    pid_t pids[NODES + 1] = { 0 };
    for (int i = 1; i <= NODES; i++)
        pids[i] = spawn(i);
    int rc = 0;
    if (!wait_for(loaded, 120)) {
        fprintf(stderr, "raft-probe: the load did not finish within 120 s\n");
        rc = 1;
    } else {
        qsort(sh->lat_us, (size_t)sh->nlat, sizeof *sh->lat_us, cmp_d);
        printf("3 nodes, loopback, %d-byte entries, log in %s\n", esize, base);
        printf("one at a time: %.0f commits/s, latency p50 %.0f us, p99 %.0f us, max %.0f us\n", sh->seq_per_s,
               pct(sh->lat_us, sh->nlat, 0.5), pct(sh->lat_us, sh->nlat, 0.99), sh->lat_us[sh->nlat - 1]);
        printf("%d in flight: %.0f commits/s\n", window, sh->pipe_per_s);
        fflush(stdout);
        rc = failovers(pids);
    }
    stop_all(pids);
    return rc;
}
