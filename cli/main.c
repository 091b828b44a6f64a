/*
 * main.c - `spool`, the operator's command-line tool for spoold: the
 * subcommand table, global options, help, and dispatch.
 *
 * Every subcommand is one row of `commands`: its name, handler, options,
 * how many positional arguments it takes, and its help. Arity and options
 * are checked here, in one place; handlers (cmd_*.c) receive a parsed
 * cli_ctx and return an exit code (cli.h).
 */
#include "cli.h"
#include "fmt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct command {
    const char *name;
    cli_cmd_fn fn;
    const arg_opt *opts;
    int min_pos, max_pos; /* max_pos < 0: no limit */
    const char *synopsis;
    const char *summary;
    const char *help;
} command;

/* ============================================================== options */

static const arg_opt opts_none[] = { { NULL, NULL, NULL } };
static const arg_opt opts_cluster[] = {
    { "replicas", "N", "create: nodes per group beside its leader (default 0)" },
    { "from", "GROUP", "move-slots: the group the slots leave" },
    { "to", "GROUP", "move-slots: the group they go to" },
    { "count", "N", "move-slots: the source's first N slots" },
    { "range", "A-B", "move-slots: slots A to B (all the source's)" },
    { "batch", "N", "move-slots: slots frozen and copied together (default 50)" },
    { "replica-id", "N", "add-replica: the new node's --replica-id (default: one above the highest)" },
    { "raft", "HOST:PORT", "add-replica: the new node's Raft address (default: its host, port + 10000)" },
    { "timeout", "S", "add-replica/remove-replica: how long to wait for the change (default 120)" },
    { NULL, NULL, NULL }
};
static const arg_opt opts_queues[] = {
    { "rate-window", "DUR", "sample counters over DUR for the rates (default 1s; 0: no rates)" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_jobs[] = {
    { "state", "S", "ready (default), reserved, delayed, done or dead" },
    { "limit", "N", "at most N jobs (default 20, at most 100000)" },
    { "after", "ID", "start after this job id (the last id of the previous page)" },
    { "error", "PATTERN", "only jobs whose last error matches the glob (case-insensitive); state dead unless --state" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_push[] = {
    { "delay", "DUR", "start delayed for DUR (5s, 1m30s, 250ms)" },
    { "at", "TIME", "start delayed until TIME (2026-11-27T09:00[:00][Z], Unix seconds, +10m)" },
    { "priority", "N", "-1000..1000, higher is served first (default 0)" },
    { "retries", "N", "retries after the first attempt (default: the queue's)" },
    { "unique", "KEY", "push nothing if an unfinished job with KEY exists; print its id" },
    { "expires", "DUR", "not delivered later than DUR after the push: it expires instead (10m)" },
    { "group", "KEY", "the job's fair group (round-robin, group-rate, group-concurrency)" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_retry[] = {
    { "all-dead", "QUEUE", "every dead job of QUEUE becomes ready" },
    { "error", "PATTERN", "with --all-dead: only jobs whose last error matches the glob" },
    { "rate", "N/PERIOD", "with --all-dead: spread them, e.g. 10/1s" },
    { "to", "QUEUE", "with --all-dead: into this queue (on the same shard) instead" },
    { "yes", NULL, "do not ask for confirmation (--all-dead)" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_yes[] = {
    { "yes", NULL, "do not ask for confirmation" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_purge[] = {
    { "state", "S", "only jobs in state S (default: every state but reserved)" },
    { "yes", NULL, "do not ask for confirmation" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_tail[] = {
    { "count", "N", "exit after N events" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_wait[] = {
    { "timeout", "DUR", "give up after DUR (default: wait until the job finishes)" },
    { NULL, NULL, NULL },
};
static const arg_opt opts_top[] = {
    { "interval", "DUR", "refresh every DUR (default 1s; 100ms..60s)" },
    { "iterations", "N", "exit after N refreshes" },
    { NULL, NULL, NULL },
};

/* ============================================================ the table */

static const command commands[] = {
    { "queues", cmd_queues, opts_queues, 0, 0, "queues [--rate-window DUR]",
      "every queue: counts per state, rates, oldest ready job, paused",
      "Lists every queue with its jobs per state, push and ack rates per second\n"
      "(measured over --rate-window), the age of its oldest ready job, its\n"
      "rate and concurrency limits with the waiters they hold back, and\n"
      "whether it is paused.\n" },
    { "stats", cmd_stats, opts_none, 1, 1, "stats QUEUE",
      "one queue's counts and totals",
      "Shows the jobs of QUEUE per state, the totals since spoold started\n"
      "(pushed, acked, retried, lease expiries, buried), waiters, the rate and\n"
      "concurrency limits and the oldest ready job.\n" },
    { "jobs", cmd_jobs, opts_jobs, 1, 1, "jobs QUEUE [--state S] [--limit N] [--after ID] [--error PATTERN]",
      "list jobs of a queue in one state",
      "Lists jobs of QUEUE in one state: ready jobs in serving order, delayed\n"
      "jobs by run time, others in the order they entered the state. With\n"
      "--error, only those whose last error matches (dead ones by default).\n" },
    { "workers", cmd_workers, opts_none, 1, 1, "workers QUEUE",
      "who holds which jobs of a queue, and who waits on it",
      "Lists the clients (name from CLIENT SETNAME, address, connection id)\n"
      "that hold reserved jobs of QUEUE, with each job's lease deadline, and\n"
      "those blocked in JOB.RESERVE on it, with their last activity.\n" },
    { "groups", cmd_groups, opts_none, 1, 1, "groups QUEUE",
      "the fair groups of a queue with their counts",
      "Lists the groups of QUEUE that have ready or reserved jobs (\"\" is the\n"
      "default group) with their ready and reserved jobs and deliveries.\n" },
    { "show", cmd_show, opts_none, 1, 1, "show ID",
      "one job's whole record, payload pretty-printed",
      "Shows every field of job ID (times relative and absolute) and its\n"
      "payload, pretty-printed when it is JSON.\n" },
    { "push", cmd_push, opts_push, 2, 2,
      "push QUEUE JSON|- [--delay DUR] [--at TIME] [--priority N] [--retries N] [--unique KEY] [--expires DUR] [--group KEY]",
      "push a job (payload from stdin with -)",
      "Pushes one job to QUEUE and prints its id. With - the payload is read\n"
      "from stdin.\n" },
    { "retry", cmd_retry, opts_retry, 0, 1,
      "retry ID | --all-dead QUEUE [--error PATTERN] [--rate N/PERIOD] [--to QUEUE] [--yes]",
      "make a dead or delayed job ready now",
      "Makes job ID ready now (a dead job gets a fresh set of retries), or with\n"
      "--all-dead every dead job of QUEUE (asks first on a terminal): with\n"
      "--error only those whose last error matches, with --rate gradually,\n"
      "with --to into another queue.\n" },
    { "delete", cmd_delete, opts_yes, 1, -1, "delete ID... [--yes]",
      "delete jobs in any state",
      "Deletes the jobs, whatever their state. Asks first on a terminal;\n"
      "refuses without --yes when stdin is not a terminal.\n" },
    { "purge", cmd_purge, opts_purge, 1, 1, "purge QUEUE [--state S] [--yes]",
      "delete a queue's jobs (all but reserved, or one state)",
      "Deletes the jobs of QUEUE in state S, or in every state but reserved\n"
      "(those are in workers' hands). Asks first on a terminal; refuses\n"
      "without --yes when stdin is not a terminal.\n" },
    { "pause", cmd_pause, opts_none, 1, 1, "pause QUEUE",
      "stop delivering a queue's jobs (pushes still accepted)", "" },
    { "resume", cmd_resume, opts_none, 1, 1, "resume QUEUE",
      "deliver a paused queue's jobs again", "" },
    { "config", cmd_config, opts_none, 1, 3, "config QUEUE [NAME [VALUE]]",
      "show or change a queue's settings",
      "Without NAME: every setting of QUEUE. With NAME: its value. With NAME\n"
      "and VALUE: changes it. Settings: retries, backoff, backoff-max, lease,\n"
      "maxlen, payload, retention, retention-max, rate (14/1s), concurrency,\n"
      "expires, group-rate, group-concurrency, group-from (docs/protocol.md).\n" },
    { "tail", cmd_tail, opts_tail, 0, -1, "tail [QUEUE...] [--count N]",
      "follow job lifecycle events live",
      "Prints job events (pushed, reserved, acked, retried, lease-expired,\n"
      "expired, dead, progress, scheduled, batch) as\n"
      "they happen, for the given queues or all of them. With --json, one\n"
      "JSON object per line. Ctrl-C stops.\n" },
    { "top", cmd_top, opts_top, 0, 0, "top [--interval DUR] [--iterations N]",
      "a live, refreshing table of queues",
      "Redraws the queue table every --interval with push and ack rates from\n"
      "the counters' deltas. q or Ctrl-C quits. With --json or when stdout is\n"
      "not a terminal, one JSON object (or table) per refresh.\n" },
    { "schedules", cmd_schedules, opts_none, 0, 1, "schedules [QUEUE]",
      "durable schedules with their next run times",
      "Lists every schedule (or those of QUEUE): spec, time zone, next run,\n"
      "last tick, jobs pushed and ticks skipped, catch-up mode. Paused\n"
      "schedules show 'paused' as their next run.\n" },
    { "batch", cmd_batch, opts_none, 1, 1, "batch ID",
      "a batch's state, counts and callbacks",
      "Shows batch ID: open, closed or finished; jobs added, done, dead and\n"
      "unfinished; which callbacks were pushed.\n" },
    { "wait", cmd_wait, opts_wait, 1, 1, "wait ID [--timeout DUR]",
      "wait until a job is done or dead; print its result",
      "Blocks until job ID is done or dead and prints its final state and\n"
      "result (exit 1 when it died, did not finish within --timeout, or does\n"
      "not exist).\n" },
    { "ping", cmd_ping, opts_none, 0, 0, "ping", "check that spoold answers", "" },
    { "backup", cmd_backup, opts_none, 1, 1, "backup DIR",
      "an online backup of every shard into a new directory",
      "Asks spoold to copy every shard's journal into DIR (created; it must\n"
      "not hold a backup yet), consistently and while it keeps serving. DIR\n"
      "is on spoold's machine; a relative DIR is taken from the current\n"
      "directory. Restore: stop spoold, empty its data directory, copy the\n"
      "files of DIR into it, start (docs/operations.md, Backups and damage).\n" },
    { "cluster", cmd_cluster, opts_cluster, 1, -1,
      "cluster create|add-group|move-slots|info|add-replica|remove-replica|replicas|transfer-leader ADDR...",
      "the slot map of a cluster: create it, add a group, move slots, show it",
      "ADDR is host:port of a spoold started with --cluster yes; the map\n"
      "names nodes by the addresses given here (give the ones clients reach).\n"
      "  create ADDR... [--replicas N]   groups of N+1 nodes (default 1 each),\n"
      "                                  the 16384 slots split evenly\n"
      "  add-group ADDR NEWADDR...       a new group (leader first), no slots\n"
      "  move-slots ADDR --from G --to G (--count N | --range A-B) [--batch N]\n"
      "                                  moves slots with their queues, jobs,\n"
      "                                  schedules and keys, N slots at a time;\n"
      "                                  run it again to finish a move cut short\n"
      "  info ADDR                       the map, and whether every node has it\n"
      "  add-replica NEWADDR ADDR [--replica-id N] [--raft HOST:PORT]\n"
      "                                  adds a node started with --replica-join\n"
      "                                  yes to the replication group of ADDR;\n"
      "                                  waits until it votes (and in cluster\n"
      "                                  mode puts it into ADDR's group)\n"
      "  remove-replica ID ADDR          removes member ID (a dead node) from\n"
      "                                  the replication group of ADDR\n"
      "  replicas ADDR                   the replication group's members\n"
      "  transfer-leader GROUP [NODE]    hands the leadership of the group of\n"
      "                                  GROUP (a member's host:port) to NODE\n"
      "                                  (id or host:port; default: the live\n"
      "                                  follower that holds the most of the\n"
      "                                  log; a silent node is refused)\n"
      "Each change sends the map with the next epoch to every node\n"
      "(docs/cluster.md).\n" },
    { "info", cmd_info, opts_none, 0, 1, "info [SECTION|payload]",
      "spoold's INFO (server, clients, memory, stats, queues, ...)",
      "Prints spoold's INFO, or one section of it. `info payload` shows each\n"
      "shard's payload file instead (INFO persistence, payload_file_shard<k>):\n"
      "bytes on disk, bytes still pointed to by jobs (live), the live share,\n"
      "segments and compactions.\n" },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ================================================================= help */

static void print_opts(FILE *f, const arg_opt *opts)
{
    for (const arg_opt *o = opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
        fprintf(f, "  %-22s %s\n", left, o->help);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: spool [--url URL] [--json] COMMAND [ARGS...]\n\n"
               "Inspect and repair spoold's queues and jobs.\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nglobal options:\n");
    print_opts(f, args_global);
    fprintf(f, "\nexit status: 0 ok, 1 not found or refused, 2 usage, 3 cannot connect.\n"
               "`spool COMMAND --help` for a command's options; man spool for more.\n");
}

static void command_help(const command *c)
{
    printf("usage: spool %s\n\n%s.\n", c->synopsis, c->summary);
    if (c->help[0])
        printf("\n%s", c->help);
    if (c->opts[0].name) {
        printf("\noptions:\n");
        print_opts(stdout, c->opts);
    }
    printf("\nglobal options:\n");
    print_opts(stdout, args_global);
}

/* ============================================================= dispatch */

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static bool color_wanted(const args *a)
{
    const char *nc = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(nc && *nc) && !args_has(a, "no-color") && !args_has(a, "json");
}

static int check_arity(const command *c, const args *a)
{
    if (a->npos < c->min_pos || (c->max_pos >= 0 && a->npos > c->max_pos))
        return cli_fail(CLI_USAGE, "usage: spool %s (see spool %s --help)", c->synopsis, c->name);
    return CLI_OK;
}

static int run(const command *c, const args *a)
{
    if (args_has(a, "help")) {
        command_help(c);
        return CLI_OK;
    }
    int rc = check_arity(c, a);
    if (rc != CLI_OK)
        return rc;
    cli_ctx x = { .url = args_get(a, "url"), .json = args_has(a, "json"),
                  .color = color_wanted(a), .a = a };
    fmt_set_color(x.color);
    rc = c->fn(&x);
    spool_close(x.c);
    return rc;
}

/* The index of the command word: global options may come before it. */
static int command_index(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            return i;
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            i++;
    }
    return -1;
}

int main(int argc, char **argv)
{
    int ci = command_index(argc, argv);
    if (ci < 0 || !strcmp(argv[ci], "help")) {
        const command *c = ci >= 0 && ci + 1 < argc ? find_command(argv[ci + 1]) : NULL;
        bool asked = ci >= 0 || (argc > 1 && !strcmp(argv[argc - 1], "--help"));
        if (c)
            command_help(c);
        else
            usage(asked ? stdout : stderr);
        return asked ? CLI_OK : CLI_USAGE;
    }
    const command *c = find_command(argv[ci]);
    if (!c) {
        return cli_fail(CLI_USAGE, "unknown command '%s' (spool --help lists them)", argv[ci]);
    }
    /* parse everything but the command word: global options may be on either side */
    char **rest = malloc((size_t)argc * sizeof *rest);
    if (!rest)
        return cli_fail(CLI_REFUSED, "out of memory");
    int n = 0;
    for (int i = 1; i < argc; i++)
        if (i != ci)
            rest[n++] = argv[i];
    args a;
    int rc = args_parse(&a, c->opts, n, rest) < 0 ? CLI_USAGE : run(c, &a);
    free(rest);
    return rc;
}
