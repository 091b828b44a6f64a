/*
 * cmd_queues.c - `spool queues` and `spool stats QUEUE`: what is in the
 * queues right now. `queues` takes two snapshots --rate-window apart to
 * show push and ack rates.
 */
#include "cli.h"
#include "fmt.h"
#include "snapshot.h"
#include "table.h"

#include <string.h>
#include <time.h>

#define DEFAULT_RATE_WINDOW_MS 1000
#define MAX_RATE_WINDOW_MS 60000

static void sleep_ms(long long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int rate_window(const cli_ctx *x, int64_t *ms)
{
    const char *w = args_get(x->a, "rate-window");
    *ms = DEFAULT_RATE_WINDOW_MS;
    if (w && (args_duration_ms(w, ms) < 0 || *ms > MAX_RATE_WINDOW_MS))
        return cli_fail(CLI_USAGE, "--rate-window takes a duration up to 60s (1s, 500ms, 0), not '%s'", w);
    return CLI_OK;
}

int cmd_queues(cli_ctx *x)
{
    int64_t window;
    int rc = rate_window(x, &window);
    if (rc == CLI_OK)
        rc = cli_connect(x);
    if (rc != CLI_OK)
        return rc;
    snap prev = { 0 }, cur = { 0 };
    if (window > 0) {
        if ((rc = snap_take(x, &prev)) != CLI_OK)
            return rc;
        sleep_ms(window); /* the measuring window itself, not a wait for state */
    }
    if ((rc = snap_take(x, &cur)) == CLI_OK) {
        if (x->json)
            fmt_json_print(snap_json(&cur, window > 0 ? &prev : NULL));
        else
            snap_print(&cur, window > 0 ? &prev : NULL, stdout);
    }
    snap_free(&prev);
    snap_free(&cur);
    return rc;
}

/* ================================================================ stats */

/* CLI_OK when queue is listed by QUEUE.LIST, else a "no such queue" exit. */
static int queue_exists(cli_ctx *x, const char *queue)
{
    char **names = NULL;
    int n = spool_queue_list(x->c, &names);
    if (n < 0)
        return cli_sdk_fail(x, n, "listing queues");
    bool found = false;
    for (int i = 0; i < n && !found; i++)
        found = !strcmp(names[i], queue);
    spool_strv_free(names);
    if (!found)
        return cli_fail(CLI_REFUSED, "no queue named '%s' (spool queues lists them)", queue);
    return CLI_OK;
}

static void print_stats(const char *queue, const spool_queue_stats *st)
{
    char age[FMT_BUF];
    printf("%squeue %s%s%s\n", fmt_c(FMT_BOLD), queue, fmt_c(FMT_RESET),
           st->paused ? "  (paused: nothing is delivered)" : "");
    printf("  ready     %lld\n  reserved  %lld\n  delayed   %lld\n", st->ready, st->reserved,
           st->delayed);
    printf("  dead      %s%lld%s\n", st->dead ? fmt_c(FMT_RED) : "", st->dead,
           st->dead ? fmt_c(FMT_RESET) : "");
    printf("  done      %lld  (kept for the queue's retention)\n", st->done);
    printf("  expired   %lld  (not delivered in time; kept like done)\n", st->expired);
    printf("totals since spoold started\n");
    printf("  pushed    %lld\n  acked     %lld\n  retried   %lld\n  lease expired %lld\n"
           "  buried    %lld  (went dead)\n  expired   %lld\n", st->pushed, st->acked, st->retried,
           st->lease_expired, st->buried, st->expired_total);
    char limits[64];
    printf("limits      %s\n", snap_limits(limits, sizeof limits, st));
    printf("waiters     %lld%s\n", st->waiters, st->throttled ? "  (held back by the limits)" : "");
    printf("groups      %lld\n", st->groups);
    printf("oldest ready %s\n", st->ready ? fmt_duration(age, sizeof age, st->oldest_ready_age_ms) : "-");
}

int cmd_stats(cli_ctx *x)
{
    const char *queue = x->a->pos[0];
    int rc = cli_connect(x);
    if (rc == CLI_OK)
        rc = queue_exists(x, queue);
    if (rc != CLI_OK)
        return rc;
    spool_queue_stats st;
    int r = spool_queue_stats_get(x->c, queue, &st);
    if (r < 0)
        return cli_sdk_fail(x, r, "reading queue stats");
    if (x->json)
        fmt_json_print(snap_stats_json(queue, &st));
    else
        print_stats(queue, &st);
    return CLI_OK;
}
