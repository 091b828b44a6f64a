/*
 * cmd_top.c - `spool top`: the queue table redrawn every --interval, with
 * push and ack rates from the deltas of the counters between refreshes.
 *
 * On a terminal the screen is cleared and redrawn, stdin is put in
 * non-canonical mode so a single `q` quits, and the terminal is restored
 * on every way out (q, Ctrl-C, SIGTERM, --iterations, an error). Off a
 * terminal (or with --json) each refresh is appended: a table, or one JSON
 * object per line. The interval is bounded (100ms..60s) so top can neither
 * hammer spoold nor look frozen.
 */
#include "cli.h"
#include "fmt.h"
#include "snapshot.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_INTERVAL_MS 1000
#define MIN_INTERVAL_MS 100
#define MAX_INTERVAL_MS 60000

static volatile sig_atomic_t stop_requested;
static struct termios saved_tty;
static bool tty_raw;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ============================================================= terminal */

static void tty_restore(void)
{
    if (tty_raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    tty_raw = false;
}

/* Single keys without Enter, no echo; signals (Ctrl-C) still work. */
static void tty_keys(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
        return;
    struct termios t = saved_tty;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    tty_raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: poll() returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Waits up to ms for a key: true when the person asked to quit. */
static bool wait_for_quit(int ms)
{
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    int r = poll(&p, tty_raw ? 1 : 0, ms);
    if (r < 0 && errno == EINTR)
        return stop_requested;
    char key;
    if (r > 0 && read(STDIN_FILENO, &key, 1) == 1)
        return key == 'q' || key == 'Q';
    return stop_requested;
}

/* ============================================================== drawing */

static void draw(const cli_ctx *x, const snap *cur, const snap *prev, bool screen, int interval)
{
    if (x->json) {
        cJSON *doc = snap_json(cur, prev);
        cJSON_AddNumberToObject(doc, "time", (double)fmt_now_ms());
        fmt_json_print(doc);
        return;
    }
    char clock[32], iv[32];
    fmt_clock(clock, sizeof clock, fmt_now_ms());
    fmt_duration(iv, sizeof iv, interval);
    if (screen)
        fputs("\033[H\033[2J", stdout);
    printf("%sspool top%s  %s  %s  every %s%s\n\n", fmt_c(FMT_BOLD), fmt_c(FMT_RESET), cli_url_shown(x),
           clock, iv, screen ? "  (q to quit)" : "");
    snap_print(cur, prev, stdout);
    if (!screen)
        putchar('\n');
    fflush(stdout);
}

static int top_args(const cli_ctx *x, int64_t *interval, long long *iterations)
{
    const char *iv = args_get(x->a, "interval"), *it = args_get(x->a, "iterations");
    *interval = DEFAULT_INTERVAL_MS;
    *iterations = -1;
    if (iv && (args_duration_ms(iv, interval) < 0 || *interval < MIN_INTERVAL_MS ||
               *interval > MAX_INTERVAL_MS))
        return cli_fail(CLI_USAGE, "--interval takes a duration from 100ms to 60s, not '%s'", iv);
    if (it && args_int(it, 1, 1LL << 40, iterations) < 0)
        return cli_fail(CLI_USAGE, "--iterations takes a positive number, not '%s'", it);
    return CLI_OK;
}

int cmd_top(cli_ctx *x)
{
    int64_t interval;
    long long left;
    int rc = top_args(x, &interval, &left);
    if (rc == CLI_OK)
        rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    bool screen = isatty(STDOUT_FILENO) && !x->json;
    catch_stop_signals();
    if (screen)
        tty_keys();
    snap prev = { 0 }, cur = { 0 };
    bool have_prev = false;
    while (rc == CLI_OK && left != 0 && !stop_requested) {
        if ((rc = snap_take(x, &cur)) != CLI_OK)
            break;
        draw(x, &cur, have_prev ? &prev : NULL, screen, (int)interval);
        snap_free(&prev);
        prev = cur;
        memset(&cur, 0, sizeof cur);
        have_prev = true;
        if (left > 0)
            left--;
        if (left != 0 && wait_for_quit((int)interval))
            break;
    }
    tty_restore();
    snap_free(&prev);
    snap_free(&cur);
    return rc;
}
