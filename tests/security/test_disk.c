/*
 * test_disk.c - a nearly full disk (issue 14, finding 5): pushes are
 * refused with -FULL naming disk-reserve while reserve, ack and delete keep
 * working, and INFO and /healthz report the pressure.
 *
 *   real_tmpfs   spoold's data directory on a 24 MiB tmpfs (mounted by the
 *                test; skipped where mounting is not allowed), filled with
 *                a file until less than disk-reserve is free: pushes fail,
 *                every job is reserved and acked, the queue deleted; the
 *                file removed, pushes work again
 *   debug_seam   the same decision through DEBUG DISK-FREE (runs
 *                everywhere), with /healthz answering 503 then 200
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness.h"

TestSuite(disk, .timeout = 120);

#define NJOBS 1000

static char mnt[256];

static void unmount(void)
{
    if (mnt[0])
        umount2(mnt, MNT_DETACH);
    if (mnt[0])
        rmdir(mnt);
    mnt[0] = '\0';
}

static void wait_disk_low(cli *c, long long want)
{
    long long deadline = now_ms() + 10000, v = -1;
    while ((v = info_field(c, "persistence", "disk_low")) != want && now_ms() < deadline)
        sleep_ms(50);
    cr_assert_eq(v, want, "INFO persistence disk_low should become %lld", want);
}

/* Reserves every job of q and acks it; all must succeed. */
static void drain(cli *c, const char *q, int n)
{
    for (int i = 0; i < n; i++) {
        resp_val *v = cli_cmd(c, "JOB.RESERVE", "NOWAIT", "FROM", q, NULL);
        cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "reserve %d on a nearly full disk: %s", i, resp_describe(v));
        const resp_val *job = v->elem[0];
        const char *receipt = NULL;
        for (size_t k = 0; k + 1 < job->n; k += 2)
            if (!strcmp(job->elem[k]->str, "receipt"))
                receipt = job->elem[k + 1]->str;
        cr_assert(receipt, "no receipt in %s", resp_describe(v));
        expect_int(cli_cmd(c, "JOB.ACK", receipt, NULL), 1);
        resp_val_free(v);
    }
}

static void expect_push_full(cli *c, const char *q)
{
    expect_error_has(cli_cmd(c, "JOB.PUSH", q, "{\"n\":1}", NULL), "FULL", "disk-reserve");
    expect_error_has(cli_cmd(c, "LPUSH", q, "1", NULL), "FULL", "disk-reserve");
}

Test(disk, real_tmpfs, .fini = unmount)
{
    snprintf(mnt, sizeof mnt, "/tmp/spool-disk-XXXXXX");
    cr_assert(mkdtemp(mnt));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=24m") < 0) {
        int err = errno;
        rmdir(mnt);
        mnt[0] = '\0';
        cr_skip_test("cannot mount a tmpfs here (%s): the debug_seam test covers the decision", strerror(err));
    }
    char data[300];
    snprintf(data, sizeof data, "%s/data", mnt);
    spoold *s = spoold_start("--shards", "1", "--data-dir", data, "--disk-reserve", "8mb", NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < NJOBS; i++)
        PUSH(c, "mail", "{\"to\":\"someone@example.com\",\"body\":\"0123456789012345678901234567890123456789\"}");
    wait_disk_low(c, 0);
    /* Fill the file system until 6 MiB are left (under the 8 MiB reserve):
     * room for one shard's WAL, which SQLite lets grow to about 4 MiB before
     * it checkpoints and starts it over (docs/operations.md). */
    struct statvfs v;
    cr_assert(statvfs(mnt, &v) == 0);
    long long free_b = (long long)v.f_bavail * (long long)v.f_frsize, fill = free_b - (6 << 20);
    cr_assert_gt(fill, 0, "only %lld bytes free on the tmpfs", free_b);
    char path[320];
    snprintf(path, sizeof path, "%s/filler", mnt);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    static char block[65536];
    for (long long w = 0; w < fill;) {
        ssize_t n = write(fd, block, (size_t)(fill - w < (long long)sizeof block ? fill - w : (long long)sizeof block));
        cr_assert_gt(n, 0, "filling the tmpfs: %s", strerror(errno));
        w += n;
    }
    close(fd);
    wait_disk_low(c, 1);
    expect_push_full(c, "mail");
    drain(c, "mail", NJOBS);
    resp_val *del = cli_cmd(c, "DEL", "mail", NULL); /* deletes the done jobs: works too */
    cr_expect_eq(del->type, RESP_T_INT, "DEL on a nearly full disk: %s", resp_describe(del));
    resp_val_free(del);
    cr_assert(unlink(path) == 0);
    wait_disk_low(c, 0);
    PUSH(c, "mail", "{\"n\":2}");
    cli_close(c);
    spoold_stop(s);
}

/* GET path on 127.0.0.1:port; returns the status code. */
static int http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to the HTTP admin: %s", strerror(errno));
    char req[256], buf[512] = "";
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    int code = 0;
    if (r > 0)
        sscanf(buf, "HTTP/1.%*d %d", &code);
    return code;
}

static int read_port_file(const char *path)
{
    long long deadline = now_ms() + 5000;
    for (;;) {
        FILE *f = fopen(path, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port > 0)
            return port;
        cr_assert_lt(now_ms(), deadline, "no HTTP port in %s", path);
        sleep_ms(20);
    }
}

Test(disk, debug_seam)
{
    char hp[300];
    snprintf(hp, sizeof hp, "/tmp/spool-disk-http-%d", (int)getpid());
    spoold *s = spoold_start("--shards", "2", "--enable-debug-command", "yes", "--disk-reserve", "10mb",
                             "--http-port", "-1", "--http-port-file", hp, NULL);
    int http = read_port_file(hp);
    unlink(hp);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < 10; i++)
        PUSH(c, "q", "{\"n\":1}");
    cr_expect_eq(http_status(http, "/healthz"), 200);
    expect_simple(cli_cmd(c, "DEBUG", "DISK-FREE", "1000", NULL), "OK");
    cr_expect_eq(info_field(c, "persistence", "disk_low"), 1);
    cr_expect_eq(info_field(c, "persistence", "disk_free"), 1000);
    cr_expect_eq(http_status(http, "/healthz"), 503);
    expect_push_full(c, "q");
    drain(c, "q", 10);
    expect_simple(cli_cmd(c, "DEBUG", "DISK-FREE", "OFF", NULL), "OK");
    cr_expect_eq(info_field(c, "persistence", "disk_low"), 0);
    cr_expect_eq(http_status(http, "/healthz"), 200);
    PUSH(c, "q", "{\"n\":2}");
    cli_close(c);
    char *log = spoold_log(s);
    cr_expect(strstr(log, "disk low: 1000 bytes free"), "the log should say the disk is low:\n%s", log);
    free(log);
    spoold_stop(s);
}
