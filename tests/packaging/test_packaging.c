/*
 * test_packaging.c - spool as an operator installs and first meets it:
 *
 *   install     `meson install` into a temporary DESTDIR gives spoold,
 *               spool, libspool, the man pages, a sample spoold.conf that
 *               spoold accepts, and a systemd unit that passes
 *               systemd-analyze verify (install_check.sh does the steps).
 *   sd_notify   under a Type=notify unit spoold sends READY=1 once it
 *               listens and STOPPING=1 on SIGTERM, to $NOTIFY_SOCKET (a
 *               datagram socket the test binds, as systemd does).
 *   README      every `redis-cli` line of README.md names the port and
 *               runs as written against a real spoold, printing what the
 *               README shows (job ids aside).
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#ifndef INSTALL_CHECK
#define INSTALL_CHECK "install_check.sh"
#endif
#ifndef BUILD_DIR
#define BUILD_DIR "."
#endif
#ifndef SOURCE_DIR
#define SOURCE_DIR "."
#endif

Test(packaging, meson_install_gives_what_an_operator_needs, .timeout = 300)
{
    char *argv[] = { "/bin/sh", INSTALL_CHECK, BUILD_DIR, SOURCE_DIR, NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out, 240000);
    cr_log_info("%s", out);
    cr_assert_eq(rc, 0, "install_check.sh exited with %d:\n%s", rc, out);
    cr_assert(strstr(out, "install check: ok"), "%s", out);
    free(out);
}

/* ============================================================ sd_notify */

/* The next datagram on fd within ms, as a string (caller frees); NULL on
 * timeout. */
static char *next_notice(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        return NULL;
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return strdup(buf);
}

Test(packaging, spoold_tells_systemd_when_it_is_ready_and_stopping, .timeout = 60)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/spool-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s", path, strerror(errno));
    setenv("NOTIFY_SOCKET", path, 1);
    spoold *s = spoold_start(NULL);
    unsetenv("NOTIFY_SOCKET");
    char *ready = next_notice(fd, 10000);
    cr_assert(ready, "no notice from spoold");
    cr_assert(strstr(ready, "READY=1"), "first notice: %s", ready);
    char want[64];
    snprintf(want, sizeof want, "MAINPID=%d", (int)s->pid);
    cr_assert(strstr(ready, want), "notice without %s: %s", want, ready);
    cli *c = cli_connect(s->port); /* it was listening when it said so */
    expect_simple(CMD(c, "PING"), "PONG");
    cli_close(c);
    free(ready);
    spoold_stop(s);
    char *stopping = next_notice(fd, 10000);
    cr_assert(stopping && strstr(stopping, "STOPPING=1"), "notice on SIGTERM: %s", stopping ? stopping : "(none)");
    free(stopping);
    close(fd);
    unlink(path);
}

/* =============================================================== README */

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Replaces every run of 16 hex digits by "<ID>" in place (job ids differ
 * from run to run). */
static void mask_ids(char *s)
{
    for (char *p = s; *p; p++) {
        int n = 0;
        while (isxdigit((unsigned char)p[n]) && !isupper((unsigned char)p[n]))
            n++;
        if (n == 16) {
            memcpy(p, "<ID>", 4);
            memmove(p + 4, p + 16, strlen(p + 16) + 1);
        }
        p += n ? n - 1 : 0;
        if (!*p)
            break;
    }
}

/* Replaces the first `from` in s (malloc'd) with `to`; returns the new string. */
static char *replace(char *s, const char *from, const char *to)
{
    char *at = strstr(s, from);
    if (!at)
        return s;
    size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to), rest = strlen(at + fl);
    char *r = malloc(a + tl + rest + 1);
    memcpy(r, s, a);
    memcpy(r + a, to, tl);
    memcpy(r + a + tl, at + fl, rest + 1);
    free(s);
    return r;
}

Test(packaging, readme_redis_cli_walkthrough_runs_as_written, .timeout = 120)
{
    char *readme = slurp_file(SOURCE_DIR "/README.md");
    spoold *s = spoold_start(NULL);
    char port[32], id[32] = "";
    snprintf(port, sizeof port, "-p %d", s->port);
    int ran = 0;
    bool in_block = false;
    char *save = NULL;
    char *lines[512];
    int nl = 0;
    for (char *l = strtok_r(readme, "\n", &save); l && nl < 512; l = strtok_r(NULL, "\n", &save))
        lines[nl++] = l;
    for (int i = 0; i < nl; i++) {
        if (!strncmp(lines[i], "```", 3)) {
            in_block = !in_block;
            continue;
        }
        if (!in_block || strncmp(lines[i], "$ redis-cli ", 12) != 0)
            continue;
        cr_assert(strstr(lines[i], "redis-cli -p 7379 "), "README line lacks -p 7379: %s", lines[i]);
        /* expected output: the lines up to the next command or the block's end */
        char expected[4096] = "";
        for (int k = i + 1; k < nl && strncmp(lines[k], "$ ", 2) && strncmp(lines[k], "```", 3); k++)
            snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s\n", lines[k]);
        char *cmd = strdup(lines[i] + 2);
        char *comment = strstr(cmd, "  #");
        if (comment)
            *comment = '\0';
        cmd = replace(cmd, "redis-cli -p 7379", "redis-cli --no-raw -p 7379");
        cmd = replace(cmd, "-p 7379", port);
        if (id[0])
            cmd = replace(cmd, "055603b1f3c00000", id);
        char *argv[] = { "/bin/sh", "-c", cmd, NULL };
        char *out = NULL;
        int rc = run_capture(argv, &out, 20000);
        cr_assert_eq(rc, 0, "`%s` exited with %d: %s", cmd, rc, out);
        if (strstr(cmd, "JOB.PUSH")) {
            const char *q = strchr(out, '"');
            cr_assert(q && strlen(q) > 17, "JOB.PUSH printed %s", out);
            snprintf(id, sizeof id, "%.16s", q + 1);
        }
        if (expected[0]) {
            char *want = strdup(expected);
            mask_ids(want);
            mask_ids(out);
            cr_assert_str_eq(out, want, "`%s` printed:\n%s\nREADME shows:\n%s", cmd, out, want);
            free(want);
        }
        cr_log_info("ran: %s", cmd);
        free(out);
        free(cmd);
        ran++;
    }
    cr_assert_geq(ran, 6, "found only %d redis-cli commands in README.md", ran);
    cli *c = cli_connect(s->port);
    resp_val *v = CMD(c, "JOB.GET", id);
    cr_assert_str_eq(field_str(v, "state"), "done", "the README's JOB.ACK did not ack job %s", id);
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
    free(readme);
}
