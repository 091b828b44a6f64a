/*
 * conn.c - the helpers of cli.h: connecting with messages that say what
 * to do, mapping SDK error codes to exit codes, and confirmations for
 * destructive commands.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("spool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* ================================================================= URL */

const char *cli_url_shown(const cli_ctx *x)
{
    static char buf[512];
    const char *url = x->url ? x->url : getenv("SPOOL_URL");
    if (!url || !*url)
        url = SPOOL_DEFAULT_URL;
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strrchr(host, '@');
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (!colon) {
        snprintf(buf, sizeof buf, "%s", url);
        return buf;
    }
    snprintf(buf, sizeof buf, "%.*s:***%s", (int)(colon - url), url, at);
    return buf;
}

/* The reason at the end of an SDK message ("cannot connect to h:p: X" -> X). */
static const char *reason(const char *msg)
{
    const char *p = strrchr(msg, ':');
    return p && p[1] == ' ' ? p + 2 : msg;
}

/* The SDK's "bad URL 'u': why (expected ...)" -> "why", so that the CLI's
 * own message (which hides the password) does not say it all twice. */
static const char *url_reason(const char *msg, char *buf, size_t cap)
{
    const char *p = strstr(msg, "': ");
    p = p ? p + 3 : msg;
    const char *end = strstr(p, " (expected");
    snprintf(buf, cap, "%.*s", (int)(end ? (size_t)(end - p) : strlen(p)), p);
    return buf;
}

/* ============================================================== connect */

int cli_connect(cli_ctx *x)
{
    spool_options o = { .url = x->url, .connect_timeout_ms = 3000, .io_timeout_ms = 10000,
                        .name = "spool-cli" };
    int rc = spool_connect(&x->c, &o);
    if (rc == 0)
        return CLI_OK;
    return cli_connect_error(x, rc, x->c ? spool_errmsg(x->c) : spool_strerror(rc));
}

int cli_connect_error(cli_ctx *x, int rc, const char *msg)
{
    char why[256];
    if (rc == SPOOL_EINVAL)
        return cli_fail(CLI_USAGE, "bad URL '%s': %s (expected spool://[user:password@]host[:port])",
                        cli_url_shown(x), url_reason(msg, why, sizeof why));
    if (rc == SPOOL_EAUTH)
        return cli_fail(CLI_REFUSED, "%s refused to authenticate: %s (put the password in the URL: "
                        "spool://:PASSWORD@host:port)", cli_url_shown(x), reason(msg));
    if (rc == SPOOL_ENOMEM)
        return cli_fail(CLI_REFUSED, "out of memory");
    const char *denied = strstr(msg, "DENIED ");
    if (denied) /* protected mode: spoold's own words say what to change */
        return cli_fail(CLI_REFUSED, "%s refused the connection: %s", cli_url_shown(x), denied + 7);
    return cli_fail(CLI_NOCONN, "cannot connect to %s: %s — is spoold running? (set --url or SPOOL_URL)",
                    cli_url_shown(x), reason(msg));
}

int cli_sdk_fail(cli_ctx *x, int rc, const char *what)
{
    const char *msg = x->c ? spool_errmsg(x->c) : "";
    if (!*msg)
        msg = spool_strerror(rc);
    switch (rc) {
    case SPOOL_ECONN:
    case SPOOL_EIO:
    case SPOOL_ETIMEOUT:
        return cli_fail(CLI_NOCONN, "lost the connection to %s while %s: %s — is spoold still running?",
                        cli_url_shown(x), what, msg);
    case SPOOL_EINVAL:
        return cli_fail(CLI_USAGE, "%s: %s", what, msg);
    case SPOOL_EAUTH:
        return cli_fail(CLI_REFUSED, "%s: %s (put the password in the URL)", what, msg);
    default:
        return cli_fail(CLI_REFUSED, "%s: %s", what, msg);
    }
}

/* ========================================================= confirmation */

bool cli_may_confirm(cli_ctx *x, const char *action)
{
    if (args_has(x->a, "yes") || isatty(STDIN_FILENO))
        return true;
    cli_fail(CLI_REFUSED, "refusing to %s without confirmation: stdin is not a terminal; "
             "add --yes to go ahead", action);
    return false;
}

bool cli_confirm(cli_ctx *x, const char *question)
{
    if (args_has(x->a, "yes"))
        return true;
    if (!cli_may_confirm(x, question))
        return false;
    fprintf(stderr, "%s? [y/N] ", question);
    fflush(stderr);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        line[0] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (!strcasecmp(line, "y") || !strcasecmp(line, "yes"))
        return true;
    fputs("spool: not confirmed; nothing was changed\n", stderr);
    return false;
}
