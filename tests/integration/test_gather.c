/*
 * test_gather.c - --sync-gather-us (broker/syncer.h): after a sync that
 * released the replies of several clients, the next commit waits for
 * those clients' next requests, so that one fsync carries them all. With
 * a slow disk (DEBUG SYNC-DELAY) and clients that each keep one push in
 * flight, syncs carry more replies with the knob on than off (INFO
 * persistence: commit_sync_replies / commit_syncs); a lone client opens no
 * window and is not delayed; a window whose clients do not come back ends
 * at its bound and its commit goes on.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(gather, .timeout = 120);

#define SYNC_MS "20"   /* every sync takes 20 ms: a slow disk */
#define CLIENTS 8
#define ROUNDS 8

struct sync_count {
    long long syncs, replies, windows, timeouts;
};

static struct sync_count sync_count(cli *c)
{
    return (struct sync_count){ info_field(c, "persistence", "commit_syncs"),
                                info_field(c, "persistence", "commit_sync_replies"),
                                info_field(c, "persistence", "sync_gather_windows"),
                                info_field(c, "persistence", "sync_gather_timeouts") };
}

/* Polls LLEN key until it is n (the push before it was run, and its
 * commit started at the end of that turn). */
static void wait_len(cli *ctl, const char *key, long long n)
{
    long long deadline = now_ms() + 10000;
    while (llen(ctl, key) != n) {
        cr_assert(now_ms() < deadline, "%s never reached %lld jobs", key, n);
        sleep_ms(1);
    }
}

/* Reads the next reply of whichever client has one (within 10 s); returns
 * its index. */
static int next_reply(cli **c, int n)
{
    long long deadline = now_ms() + 10000;
    for (;;) {
        struct pollfd pfd[CLIENTS];
        for (int i = 0; i < n; i++) {
            resp_val *v = NULL;
            if (cli_pending(c[i]) && cli_poll_reply(c[i], 0, &v) > 0) {
                cr_assert(v->type == RESP_T_INT, "push %d: %s", i, resp_describe(v));
                resp_val_free(v);
                return i;
            }
            pfd[i] = (struct pollfd){ cli_fd(c[i]), POLLIN, 0 };
        }
        int left = (int)(deadline - now_ms());
        cr_assert(left > 0, "no push was answered within 10 s");
        cr_assert(poll(pfd, (nfds_t)n, left) >= 0);
        for (int i = 0; i < n; i++) {
            resp_val *v = NULL;
            if ((pfd[i].revents & POLLIN) && cli_poll_reply(c[i], 0, &v) > 0) {
                cr_assert(v->type == RESP_T_INT, "push %d: %s", i, resp_describe(v));
                resp_val_free(v);
                return i;
            }
        }
    }
}

/* CLIENTS clients push ROUNDS times each, one push in flight per client,
 * the next as soon as the last is answered. Client 0 starts alone and the
 * others once its commit is being synced: without gathering, they fall
 * into two groups whose syncs alternate. Returns the replies per sync. */
static double replies_per_sync(const char *gather_us, struct sync_count *delta)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", "--sync-gather-us", gather_us, NULL);
    cli *ctl = cli_connect(s->port), *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = cli_connect(s->port);
    expect_simple(CMD(ctl, "DEBUG", "SYNC-DELAY", "g", SYNC_MS), "OK");
    struct sync_count before = sync_count(ctl);
    SEND(c[0], "RPUSH", "g", "{}");
    wait_len(ctl, "g", 1);
    for (int i = 1; i < CLIENTS; i++)
        SEND(c[i], "RPUSH", "g", "{}");
    int left[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        left[i] = ROUNDS - 1;
    for (int done = 0; done < CLIENTS * ROUNDS; done++) {
        int i = next_reply(c, CLIENTS);
        if (left[i]-- > 0)
            SEND(c[i], "RPUSH", "g", "{}");
    }
    struct sync_count after = sync_count(ctl);
    *delta = (struct sync_count){ after.syncs - before.syncs, after.replies - before.replies,
                                  after.windows - before.windows, after.timeouts - before.timeouts };
    cr_assert_eq(llen(ctl, "g"), CLIENTS * ROUNDS);
    cr_assert_eq(delta->replies, CLIENTS * ROUNDS, "the syncs released %lld replies, not one per push",
                 delta->replies);
    for (int i = 0; i < CLIENTS; i++)
        cli_close(c[i]);
    cli_close(ctl);
    spoold_stop(s);
    return (double)delta->replies / (double)delta->syncs;
}

Test(gather, syncs_carry_more_clients_with_the_window)
{
    struct sync_count off, on;
    double r_off = replies_per_sync("0", &off);
    double r_on = replies_per_sync("100000", &on);
    cr_log_info("replies per sync: %.2f without gathering (%lld syncs), %.2f with it (%lld syncs, %lld windows, %lld "
                "ran out)", r_off, off.syncs, r_on, on.syncs, on.windows, on.timeouts);
    cr_assert_eq(off.windows, 0, "--sync-gather-us 0 opened %lld windows", off.windows);
    cr_assert(on.windows > 0, "no window was opened");
    cr_assert(r_on >= CLIENTS * 0.6, "with gathering a sync carried %.2f replies (%lld syncs); expected most of "
              "the %d clients in each", r_on, on.syncs, CLIENTS);
    cr_assert(r_on >= r_off * 1.35, "replies per sync: %.2f with gathering, %.2f without (%lld and %lld syncs)",
              r_on, r_off, on.syncs, off.syncs);
}

/* One client, one push at a time: a sync that released one reply has
 * nobody else to wait for, so no window opens and no push waits for one. */
Test(gather, a_lone_client_opens_no_window)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", "--sync-gather-us", "100000", NULL);
    cli *c = cli_connect(s->port);
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "lone", SYNC_MS), "OK");
    struct sync_count before = sync_count(c);
    long long t0 = now_ms();
    for (int i = 0; i < 5; i++)
        expect_int(CMD(c, "RPUSH", "lone", "{}"), i + 1);
    long long took = now_ms() - t0;
    struct sync_count after = sync_count(c);
    cr_assert_eq(after.windows, before.windows, "a lone client's syncs opened %lld windows",
                 after.windows - before.windows);
    cr_assert_eq(after.syncs - before.syncs, 5, "5 pushes, %lld syncs", after.syncs - before.syncs);
    /* a window after each sync would add 40 ms (twice the sync's time) to each push */
    cr_assert(took < 5 * 20 + 5 * 30, "5 pushes took %lld ms with syncs of 20 ms", took);
    cli_close(c);
    spoold_stop(s);
}

/* A sync releases two replies (one client's pipelined pair), so a window
 * opens for both; the client sends one push only. The window runs out at
 * its bound (30 ms here; first 16 syncs bring the average sync time, which
 * bounds it too, near 20 ms) and the push is committed and answered then. */
Test(gather, a_window_ends_at_its_bound)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", "--sync-gather-us", "30000", NULL);
    cli *c = cli_connect(s->port);
    expect_simple(CMD(c, "DEBUG", "SYNC-DELAY", "b", SYNC_MS), "OK");
    for (int i = 0; i < 16; i++)
        expect_int(CMD(c, "RPUSH", "warm", "{}"), i + 1);
    struct sync_count before = sync_count(c);
    const char pair[] = "*3\r\n$5\r\nRPUSH\r\n$1\r\nb\r\n$2\r\n{}\r\n*3\r\n$5\r\nRPUSH\r\n$1\r\nb\r\n$2\r\n{}\r\n";
    cli_send_raw(c, pair, sizeof pair - 1);
    expect_int(cli_read(c), 1);
    expect_int(cli_read(c), 2);
    long long t0 = now_ms();
    SEND(c, "RPUSH", "b", "{}");
    resp_val *v = NULL;
    cr_assert_eq(cli_poll_reply(c, 5000, &v), 1, "the push after a window that ran out was not answered");
    long long took = now_ms() - t0;
    expect_int(v, 3);
    struct sync_count after = sync_count(c);
    cr_assert(after.windows > before.windows, "the sync of two replies opened no window");
    cr_assert(after.timeouts > before.timeouts, "the window did not run out");
    cr_assert(took >= 30, "answered after %lld ms: the window (up to 30 ms) and the sync (20 ms) hold it longer",
              took);
    cr_assert(took < 30 + 20 + 500, "answered after %lld ms, well beyond the window's bound", took);
    cli_close(c);
    spoold_stop(s);
}
