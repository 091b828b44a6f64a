/*
 * test_bench_smoke.c - CI smoke test of the benchmark tooling (issues 7, 12).
 *
 * Checks that spool-bench's histogram and payload code are right, and that
 * `bench/compare --quick` (spool --fsync always, its delayed variant and
 * Redis appendfsync always, over the workloads issue 12's targets use)
 * runs to the end against the spoold of this build and prints its table
 * with a positive jobs/s for spool. It never checks a
 * speed: CI machines differ. Peers (redis-server, beanstalkd) are used when
 * installed and shown as n/a otherwise; the test installs nothing.
 *
 * compare is stopped with SIGTERM (it then stops the servers it started)
 * if it overruns, and only SIGKILLed if it ignores that.
 *
 * bench/write-bytes (bytes written per job with 64 KiB payloads) is run
 * too, and is the one figure checked: it counts bytes, not time, so it
 * holds on any machine. A payload is written once (the payload file), and
 * a state change must not write it again.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "jobfmt.h"

extern char **environ;

#define COMPARE_TIMEOUT_MS 120000
#define OUTPUT_MAX (1 << 20)

/* ------------------------------------------------------------ histogram */

Test(bench_hist, buckets_are_contiguous_and_close)
{
    for (uint64_t v = 0; v < 5000000; v += 7) {
        unsigned i = hist_index(v);
        cr_assert(i < HIST_BUCKETS);
        uint64_t mid = hist_bucket_mid(i);
        uint64_t err = mid > v ? mid - v : v - mid;
        cr_assert(err * 64 <= v + 64, "value %llu reported as %llu",
                  (unsigned long long)v, (unsigned long long)mid);
    }
    cr_assert(hist_index(UINT64_MAX) == HIST_BUCKETS - 1);
}

Test(bench_hist, quantiles_of_a_uniform_run)
{
    hist *h = malloc(sizeof *h);
    hist_init(h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_add(h, v * 1000); /* 1 us .. 100 ms */
    double p50 = (double)hist_quantile(h, 0.50), p99 = (double)hist_quantile(h, 0.99);
    cr_assert(p50 > 50e6 * 0.98 && p50 < 50e6 * 1.02, "p50 %f", p50);
    cr_assert(p99 > 99e6 * 0.98 && p99 < 99e6 * 1.02, "p99 %f", p99);
    cr_assert(hist_quantile(h, 1.0) == 100000000ull);
    cr_assert(h->count == 100000);
    free(h);
}

/* -------------------------------------------------------------- payload */

Test(bench_payload, exact_size_and_round_trip)
{
    char buf[512];
    size_t n = jobfmt_build(buf, sizeof buf, 200, 123456, 987654321012ull);
    cr_assert(n == 200, "length %zu", n);
    cr_assert(buf[0] == '{' && buf[n - 1] == '}');
    uint64_t num, ts;
    cr_assert(jobfmt_parse(buf, n, &num, &ts) == 0);
    cr_assert(num == 123456 && ts == 987654321012ull);
    n = jobfmt_build(buf, sizeof buf, 5, 1, 2); /* smaller than the fields */
    cr_assert(strcmp(buf, "{\"n\":1,\"t\":2,\"pad\":\"\"}") == 0, "%s", buf);
    cr_assert(jobfmt_parse("{\"x\":1}", 7, &num, &ts) == -1);
}

/* -------------------------------------------------------------- compare */

/* Runs argv with stdout captured (stderr to a file); SIGTERM after
 * timeout_ms. Returns the exit status, -1 if it had to be stopped. */
static int run_with_deadline(char *const argv[], char **out, int timeout_ms)
{
    int fds[2];
    cr_assert(pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    cr_assert(err == 0, "cannot start %s: %s", argv[0], strerror(err));

    char *buf = calloc(1, OUTPUT_MAX + 1);
    size_t len = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool stopped = false;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > timeout_ms && !stopped) {
            kill(pid, SIGTERM);
            stopped = true;
        }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = read(fds[0], buf + len, OUTPUT_MAX - len);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            break;
        if (r > 0)
            len += (size_t)r;
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    *out = buf;
    if (stopped)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* jobs/s of the first table row after the section title that starts with
 * label; -1 when absent, 0 for n/a. */
static double row_rate(const char *text, const char *section, const char *label)
{
    const char *s = strstr(text, section);
    if (!s)
        return -1;
    const char *row = strstr(s, label);
    if (!row)
        return -1;
    row += strlen(label);
    while (*row == ' ')
        row++;
    if (strncmp(row, "n/a", 3) == 0)
        return 0;
    double v = 0;
    for (; (*row >= '0' && *row <= '9') || *row == ','; row++)
        if (*row != ',')
            v = v * 10 + (*row - '0');
    return v;
}

/* Column col (0 = jobs/s) of the row after section that starts with label,
 * as a number; -1 when absent or "-". */
static double row_column(const char *text, const char *section, const char *label, int col)
{
    const char *s = strstr(text, section);
    const char *row = s ? strstr(s, label) : NULL;
    if (!row)
        return -1;
    row += strlen(label);
    for (int i = 0; i <= col; i++) {
        while (*row == ' ')
            row++;
        if (*row == '\n' || *row == '\0')
            return -1;
        if (i < col)
            row += strcspn(row, " \n");
    }
    char num[32];
    size_t n = 0;
    for (; *row && *row != ' ' && *row != '\n' && n + 1 < sizeof num; row++)
        if (*row != ',')
            num[n++] = *row;
    num[n] = '\0';
    char *end;
    double v = strtod(num, &end);
    return n && *end == '\0' ? v : -1;
}

/* True when perf can count this machine's syscall tracepoints (a
 * container without perf_event_open cannot). */
static bool perf_counts_syscalls(void)
{
    return system("perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1") == 0;
}

Test(bench_compare, quick_run_prints_the_table, .timeout = 180)
{
    char json[] = "/tmp/spool-bench-smoke.XXXXXX";
    int jfd = mkstemp(json);
    cr_assert(jfd >= 0);
    close(jfd);
    /* the configurations and workloads of the rows checked below, not all
     * of them: each run starts, measures and stops a server, so the whole
     * --quick table (about 75 runs) took over 120 s on a loaded 2-core
     * machine, and its time grows with the load, not with what is checked */
    char *argv[] = { BENCH_COMPARE, "--quick", "--no-install", "--no-build",
                     "--build", BUILD_ROOT, "--json", json, "--queues", "2",
                     "--only", "spool-always,redis-always,spool-always-delayed",
                     "--workloads", "push,push-queues,cycle-reliable,cycle-pop,half-load", NULL };
    char *out = NULL;
    int rc = run_with_deadline(argv, &out, COMPARE_TIMEOUT_MS);
    cr_log_info("%s", out);
    cr_assert(rc == 0, "bench/compare --quick ended with %d:\n%s", rc, out);
    cr_assert(strstr(out, "issue 12 targets") != NULL, "no targets section:\n%s", out);
    double push = row_rate(out, "\npush: LPUSH", "spool --fsync always");
    double pushq = row_rate(out, "\npush: LPUSH / put, 50 conns x depth 16, 2 queues",
                            "spool --fsync always");
    cr_assert(pushq > 0, "no spool push rate over 2 queues in:\n%s", out);
    double pop = row_rate(out, "\ncycle-pop:", "spool --fsync always");
    cr_assert(push > 0, "no spool push rate in:\n%s", out);
    cr_assert(pop > 0, "no spool cycle-pop rate in:\n%s", out);
    /* the server's CPU per job, and with perf its syscalls per job and fsyncs
     * per second (columns 8 to 11 after the name) */
    cr_assert(strstr(out, "us/job sys/job fsync/s jobs/fs") != NULL, "no counter columns:\n%s", out);
    cr_assert(strstr(out, "load average (1, 5, 15 min): ") != NULL, "no load average:\n%s", out);
    cr_assert(row_column(out, "\npush: LPUSH", "spool --fsync always", 8) > 0,
              "no CPU per push in:\n%s", out);
    if (perf_counts_syscalls()) {
        cr_assert(row_column(out, "\npush: LPUSH", "spool --fsync always", 9) > 0,
                  "no syscalls per push in:\n%s", out);
        cr_assert(row_column(out, "\ncycle-pop:", "spool --fsync always", 10) > 0,
                  "no fsyncs per second for --fsync always in:\n%s", out);
    }
    /* issue 12's rows: half of the peak, and cycle-reliable with delayed jobs present */
    double half = row_rate(out, "\ncycle-reliable at half of its peak rate", "spool --fsync always");
    cr_assert(half > 0, "no spool half-load rate in:\n%s", out);
    double delayed = row_rate(out, "\ncycle-reliable: push", "spool --fsync always +10,000 delayed");
    cr_assert(delayed > 0, "no cycle-reliable rate with 10,000 delayed jobs in:\n%s", out);
    FILE *f = fopen(json, "r");
    cr_assert(f != NULL, "compare wrote no JSON to %s", json);
    fclose(f);
    unlink(json);
    free(out);
}

/* --baseline BUILD: spool-always from another build in the same rounds
 * (here the same build: the row must be there and measured). */
Test(bench_compare, baseline_row, .timeout = 120)
{
    char *argv[] = { BENCH_COMPARE, "--quick", "--no-install", "--no-build", "--build", BUILD_ROOT,
                     "--baseline", BUILD_ROOT, "--only", "spool-always,spool-always-base",
                     "--workloads", "push", "--queues", "1", "--json", "/dev/null", NULL };
    char *out = NULL;
    int rc = run_with_deadline(argv, &out, 90000);
    cr_log_info("%s", out);
    cr_assert(rc == 0, "bench/compare --baseline ended with %d:\n%s", rc, out);
    cr_assert(row_rate(out, "\npush: LPUSH", "spool --fsync always (baseline)") > 0,
              "no baseline push rate in:\n%s", out);
    free(out);
    char *bad[] = { BENCH_COMPARE, "--quick", "--no-install", "--no-build", "--build", BUILD_ROOT,
                    "--baseline", "/nonexistent-build", NULL };
    rc = run_with_deadline(bad, &out, 30000);
    cr_assert(rc != 0, "a missing --baseline build was accepted:\n%s", out);
    free(out);
}

/* ---------------------------------------------------------- write-bytes */

static double json_num(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    cr_assert(p != NULL, "no %s in:\n%s", key, text);
    p = strchr(p, ':');
    cr_assert(p != NULL);
    return strtod(p + 1, NULL);
}

/* bench/write-bytes with 40 jobs of 64 KiB, one more spoold argument (or
 * none); returns its JSON output (caller frees). */
static char *write_bytes_run(const char *arg)
{
    char *argv[] = { BENCH_WRITE_BYTES, "--spoold", BUILD_ROOT "/broker/spoold", "--jobs", "40", "--json",
                     (char *)arg, NULL };
    char *out = NULL;
    int rc = run_with_deadline(argv, &out, 60000);
    cr_log_info("%s", out);
    cr_assert(rc == 0, "bench/write-bytes ended with %d:\n%s", rc, out);
    return out;
}

Test(bench_write_bytes, a_payload_is_written_once, .timeout = 120)
{
    char *out = write_bytes_run(NULL);
    double push = json_num(out, "\"push_x_payload\"");
    double reserve = json_num(out, "\"reserve_x_payload\"");
    double ack = json_num(out, "\"ack_x_payload\"");
    double total = json_num(out, "\"total_x_payload\"");
    /* The payload goes once to the payload file (issue 12: <= 1.3x over
     * push, reserve, ack and the checkpoint after them); a reserve or an
     * ack writes a small row (a page or two of the WAL per commit). */
    /* Pushes that share a commit share its WAL pages (the row's page, the
     * commit's): 1.10x here in a normal build, where the 10 pipelined
     * pushes of a batch mostly go in one commit. A sanitizer's spoold is
     * slow enough that more commits carry a single push (1.25-1.30x seen
     * in the ASan pass); there the bounds only tell a payload written once
     * (about 1x) from one written twice (2x and over). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    const double push_max = 1.5, total_max = 1.6;
#else
    const double push_max = 1.2, total_max = 1.3;
#endif
    cr_assert(push > 0.9 && push < push_max, "push wrote %.2fx the payload:\n%s", push, out);
    cr_assert(reserve < 0.5, "a reserve wrote %.2fx the payload (the payload again?):\n%s", reserve, out);
    cr_assert(ack < 0.5, "an ack wrote %.2fx the payload (the payload again?):\n%s", ack, out);
    cr_assert(total <= total_max, "push + reserve + ack + checkpoint wrote %.2fx the payload (target %.1fx):\n%s",
              total, total_max, out);
    free(out);
    /* the same with the payload file off: the WAL and the checkpoint write
     * the payload twice (what the file saves) */
    out = write_bytes_run("--spoold-arg=--payload-file-min=0");
    total = json_num(out, "\"total_x_payload\"");
    cr_assert(total > 1.6, "with --payload-file-min 0 the total was %.2fx: the payload should be in the WAL and "
              "the database file:\n%s", total, out);
    free(out);
}
