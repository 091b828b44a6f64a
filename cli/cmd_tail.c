/*
 * cmd_tail.c - `spool tail [QUEUE...]`: job lifecycle events as they
 * happen, from spoold's pub/sub channels "spool:events:<queue>" (SUBSCRIBE
 * per named queue, PSUBSCRIBE "spool:events:*" for all), through the
 * SDK's spool_subscriber.
 *
 * Output: one line per event, flushed at once (so a pipe sees it), either
 * for people (time, queue, event, id, attempt, error) or with --json the
 * event object as spoold sent it, compact, one per line. Stops on Ctrl-C /
 * SIGTERM (exit 0), after --count events, or when the connection breaks
 * (exit 3).
 */
#include "cli.h"
#include "fmt.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENTS_PREFIX "spool:events:"
#define POLL_MS 200 /* how soon a Ctrl-C is noticed */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ============================================================== printing */

static const char *json_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_human(const cJSON *ev, const spool_message *m)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "time");
    long long ms = cJSON_IsNumber(t) ? (long long)t->valuedouble : fmt_now_ms();
    char clock[32];
    fmt_clock(clock, sizeof clock, ms);
    const char *event = json_str(ev, "event");
    const char *queue = json_str(ev, "queue");
    if (!*queue && !strncmp(m->channel, EVENTS_PREFIX, strlen(EVENTS_PREFIX)))
        queue = m->channel + strlen(EVENTS_PREFIX);
    printf("%s.%03lld  %-12s %s%-9s%s %s", clock + 11, ms % 1000, queue,
           fmt_c(fmt_state_color(event)), event, fmt_c(FMT_RESET), json_str(ev, "id"));
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(ev, "attempt");
    if (cJSON_IsNumber(att))
        printf("  attempt %lld", (long long)att->valuedouble);
    if (*json_str(ev, "error"))
        printf("  %serror: %s%s", fmt_c(FMT_RED), json_str(ev, "error"), fmt_c(FMT_RESET));
    putchar('\n');
}

static void print_event(const cli_ctx *x, const spool_message *m)
{
    cJSON *ev = cJSON_ParseWithLength(m->data, m->len);
    if (!ev) { /* not spool's JSON (someone PUBLISHed by hand): show it as is */
        ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "channel", m->channel);
        cJSON_AddStringToObject(ev, "data", m->data);
    }
    if (x->json) {
        fmt_json_print(ev);
        return;
    }
    print_human(ev, m);
    cJSON_Delete(ev);
    fflush(stdout);
}

/* ============================================================ subscribing */

static int subscribe(cli_ctx *x, spool_subscriber **sub)
{
    int n = x->a->npos;
    char **chans = calloc((size_t)n + 1, sizeof *chans);
    if (!chans)
        return cli_fail(CLI_REFUSED, "out of memory");
    for (int i = 0; i < n; i++)
        if (asprintf(&chans[i], EVENTS_PREFIX "%s", x->a->pos[i]) < 0)
            chans[i] = NULL;
    const char *all[] = { EVENTS_PREFIX "*" };
    spool_options o = { .url = x->url, .connect_timeout_ms = 3000, .name = "spool-tail" };
    int rc = n ? spool_subscribe(sub, &o, (const char *const *)chans, (size_t)n, NULL, 0)
               : spool_subscribe(sub, &o, NULL, 0, all, 1);
    for (int i = 0; i < n; i++)
        free(chans[i]);
    free(chans);
    if (rc < 0)
        return cli_connect_error(x, rc, spool_subscriber_errmsg(*sub));
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "following %s events on %s (Ctrl-C to stop)\n", n ? "these queues'" : "all",
                cli_url_shown(x));
    return CLI_OK;
}

int cmd_tail(cli_ctx *x)
{
    long long count = -1;
    const char *c = args_get(x->a, "count");
    if (c && args_int(c, 1, 1LL << 60, &count) < 0)
        return cli_fail(CLI_USAGE, "--count takes a positive number, not '%s'", c);
    catch_stop_signals();
    spool_subscriber *sub = NULL;
    int rc = subscribe(x, &sub);
    while (rc == CLI_OK && !stop_requested && count != 0) {
        spool_message *m = NULL;
        int r = spool_next_message(sub, POLL_MS, &m);
        if (r < 0)
            rc = cli_fail(CLI_NOCONN, "lost the connection to %s: %s — is spoold still running?",
                          cli_url_shown(x), spool_subscriber_errmsg(sub));
        if (r > 0) {
            print_event(x, m);
            if (count > 0)
                count--;
        }
        spool_message_free(m);
    }
    spool_subscriber_close(sub);
    return rc;
}
