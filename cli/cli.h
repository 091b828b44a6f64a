/*
 * cli.h - what every `spool` subcommand shares: the run context (URL,
 * output mode, the connection), the exit codes, the subcommand signature,
 * and the helpers that connect, report SDK failures and ask for
 * confirmation.
 *
 * Exit codes (the contract with scripts, see docs/cli.md):
 *   0 ok, 1 not found / refused / aborted, 2 usage, 3 cannot connect.
 *
 * Everything runs on the main thread. A subcommand returns its exit code;
 * it prints its result on stdout and any problem on stderr, one line that
 * says what to do next.
 */
#ifndef SPOOL_CLI_H
#define SPOOL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "args.h"
#include "spool.h"

enum {
    CLI_OK = 0,
    CLI_REFUSED = 1, /* not found, refused by spoold, or not confirmed */
    CLI_USAGE = 2,
    CLI_NOCONN = 3   /* cannot connect, or the connection broke */
};

typedef struct cli_ctx {
    const char *url;   /* --url, else $SPOOL_URL, else the default */
    bool json;         /* --json: machine-readable output */
    bool color;        /* stdout is a terminal and NO_COLOR is unset */
    const args *a;     /* this subcommand's parsed arguments */
    spool_client *c;   /* set by cli_connect() */
} cli_ctx;

typedef int (*cli_cmd_fn)(cli_ctx *x);

/* Prints "spool: <message>" on stderr and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Connects x->c: CLI_OK, or an exit code after printing why. */
int cli_connect(cli_ctx *x);
/* Reports a failed connection attempt (rc, the SDK's msg) the way
 * cli_connect() does and returns its exit code. */
int cli_connect_error(cli_ctx *x, int rc, const char *msg);
/* Reports a failed SDK call (what: "listing queues") and returns the exit
 * code its error maps to. */
int cli_sdk_fail(cli_ctx *x, int rc, const char *what);
/* The URL for messages, with any password masked (static buffer). */
const char *cli_url_shown(const cli_ctx *x);
/* For destructive commands: true when --yes was given or the person at
 * the terminal answered yes to question. Prints why on refusal. */
bool cli_confirm(cli_ctx *x, const char *question);
/* The same refusal check without asking: false (with a message) when
 * stdin is not a terminal and --yes is missing. */
bool cli_may_confirm(cli_ctx *x, const char *action);

/* The subcommands (cmd_*.c). */
int cmd_queues(cli_ctx *x);
int cmd_stats(cli_ctx *x);
int cmd_top(cli_ctx *x);
int cmd_jobs(cli_ctx *x);
int cmd_workers(cli_ctx *x);
int cmd_groups(cli_ctx *x);
int cmd_show(cli_ctx *x);
int cmd_push(cli_ctx *x);
int cmd_retry(cli_ctx *x);
int cmd_delete(cli_ctx *x);
int cmd_purge(cli_ctx *x);
int cmd_pause(cli_ctx *x);
int cmd_resume(cli_ctx *x);
int cmd_config(cli_ctx *x);
int cmd_tail(cli_ctx *x);
int cmd_ping(cli_ctx *x);
int cmd_backup(cli_ctx *x);
int cmd_info(cli_ctx *x);
int cmd_schedules(cli_ctx *x);
int cmd_batch(cli_ctx *x);
int cmd_wait(cli_ctx *x);
int cmd_cluster(cli_ctx *x);

#endif
