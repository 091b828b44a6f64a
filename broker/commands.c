/*
 * commands.c - the command table, its lookup, dispatch and COMMAND
 * introspection (see commands.h).
 *
 * The table is sorted by name at start-up so lookups are a binary search.
 */
#include "commands.h"

#include "args.h"
#include "clock.h"
#include "cmd_job.h"
#include "cmd_list.h"
#include "cmd_pubsub.h"
#include "cmd_queue.h"
#include "cmd_server.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "msg.h"
#include "pubsub.h"
#include "shard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define W CMD_WRITE
#define R CMD_READONLY

static struct command table[] = {
    /* connection and server (I/O thread) */
    { "ping", -1, CMD_FAST | CMD_PUBSUB, 0, 0, 0, io_ping, NULL, NULL, "Answers PONG, or echoes its argument." },
    { "echo", 2, CMD_FAST, 0, 0, 0, io_echo, NULL, NULL, "Returns its argument." },
    { "hello", -1, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_hello, NULL, NULL, "Chooses RESP2 or RESP3, optionally authenticates and names the connection." },
    { "auth", -2, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_auth, NULL, NULL, "Authenticates the connection with the requirepass password." },
    { "select", 2, CMD_FAST, 0, 0, 0, io_select, NULL, NULL, "Selects database 0 (the only one)." },
    { "quit", -1, CMD_NOAUTH | CMD_FAST | CMD_PUBSUB, 0, 0, 0, io_quit, NULL, NULL, "Closes the connection after replying OK." },
    { "client", -2, CMD_FAST, 0, 0, 0, io_client, NULL, peer_client_list, "CLIENT ID|SETNAME|GETNAME|LIST|INFO|SETINFO." },
    { "info", -1, 0 | CMD_BIGREPLY, 0, 0, 0, io_info, sh_info, NULL, "Server, client, memory and queue information in Redis INFO format." },
    { "command", -1, 0, 0, 0, 0, io_command, NULL, NULL, "Describes the commands (COMMAND, COMMAND COUNT|INFO|DOCS)." },
    { "config", -2, 0, 0, 0, 0, io_config, NULL, NULL, "CONFIG GET pattern: the running settings." },
    { "time", 1, CMD_FAST, 0, 0, 0, io_time, NULL, NULL, "The server time: seconds and microseconds." },
    { "dbsize", 1, R, 0, 0, 0, io_dbsize, sh_dbsize, NULL, "The number of queues that have ready jobs." },
    /* lists */
    { "lpush", -3, W | CMD_LEFT, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the head of a queue; replies with its length." },
    { "rpush", -3, W, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the tail of a queue; replies with its length." },
    { "lpop", -2, W | CMD_LEFT | CMD_ONEPAYLOAD, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the head of a queue (at-most-once)." },
    { "rpop", -2, W | CMD_ONEPAYLOAD, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the tail of a queue (at-most-once)." },
    { "blpop", -3, W | CMD_LEFT | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the head of the first non-empty queue, waiting up to timeout seconds." },
    { "brpop", -3, W | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the tail of the first non-empty queue, waiting up to timeout seconds." },
    { "llen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_llen, NULL, "The number of ready jobs in a queue." },
    { "lrange", 4, R | CMD_BIGREPLY, 1, 1, 1, io_lrange, sh_lrange, NULL, "Peeks at ready jobs by index, without taking them." },
    { "del", -2, W, 1, -1, 1, io_keys_sum, sh_del, NULL, "Purges the ready jobs of queues; replies with how many queues had any." },
    { "exists", -2, R | CMD_FAST, 1, -1, 1, io_keys_sum, sh_exists, NULL, "Counts the given queues that have ready jobs." },
    { "type", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_type, NULL, "list for a queue with ready jobs, none otherwise." },
    { "reset", 1, CMD_NOAUTH | CMD_FAST | CMD_PUBSUB, 0, 0, 0, io_reset, NULL, NULL, "Resets the connection: unsubscribes, RESP2, no name; AUTH again when a password is set." },
    /* reliable jobs */
    { "job.push", -3, W, 1, 1, 1, io_job_push, sh_job_push, NULL, "Pushes a job with options (DELAY, AT, PRI, RETRIES, LEASE, UNIQUE); replies with its id." },
    { "job.reserve", -3, W | CMD_BLOCKING | CMD_RESERVE, 0, 0, 0, io_job_reserve, shard_bpop, NULL, "Leases ready jobs from the first queue that has some, waiting up to TIMEOUT ms." },
    { "job.ack", -2, W | CMD_FAST, 0, 0, 0, io_job_ids, sh_job_ack, NULL, "Acknowledges deliveries by receipt: their jobs are done." },
    { "job.nack", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_nack, NULL, "Gives a delivery back as failed: retry after backoff (or DELAY), or dead." },
    { "job.touch", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_touch, NULL, "Extends the lease of a delivery." },
    { "job.get", 2, R | CMD_FAST | CMD_ONEPAYLOAD, 0, 0, 0, io_job_id, sh_job_get, NULL, "The whole record of a job." },
    { "job.del", -2, W, 0, 0, 0, io_job_ids, sh_job_del, NULL, "Deletes jobs in any state." },
    { "job.retry", 2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_retry, NULL, "Makes a dead or delayed job ready now." },
    /* queue administration */
    { "queue.list", 1, R | CMD_BIGREPLY, 0, 0, 0, io_queue_list, sh_queue_list, NULL, "The names of all queues." },
    { "queue.stats", 2, R, 1, 1, 1, io_key, sh_queue_stats, NULL, "Counts per state, totals, oldest ready age, paused." },
    { "queue.peek", -2, R | CMD_BIGREPLY, 1, 1, 1, io_queue_key, sh_queue_peek, NULL, "Jobs of one state, with cursor paging." },
    { "queue.pause", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Stops deliveries from a queue (pushes still go in)." },
    { "queue.resume", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Resumes deliveries from a paused queue." },
    { "queue.purge", -2, W, 1, 1, 1, io_queue_key, sh_queue_purge, NULL, "Deletes jobs of a queue (one state, or all but reserved)." },
    { "queue.retry", 2, W, 1, 1, 1, io_key, sh_queue_retry, NULL, "Makes every dead job of a queue ready." },
    { "queue.config", -3, W, 1, 1, 1, io_queue_key, sh_queue_config, NULL, "Reads or changes a queue's settings." },
    { "debug", -2, 0, 0, 0, 0, io_debug, sh_debug, NULL, "DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO] | SYNC-DELAY queue ms | POWER-CUT [TORN]: fault injection for tests." },
    /* pub/sub */
    { "subscribe", -2, CMD_PUBSUB, 0, 0, 0, io_subscribe, NULL, NULL, "Listens to channels." },
    { "unsubscribe", -1, CMD_PUBSUB, 0, 0, 0, io_unsubscribe, NULL, NULL, "Stops listening to channels." },
    { "psubscribe", -2, CMD_PUBSUB, 0, 0, 0, io_psubscribe, NULL, NULL, "Listens to channels matching patterns." },
    { "punsubscribe", -1, CMD_PUBSUB, 0, 0, 0, io_punsubscribe, NULL, NULL, "Stops listening to patterns." },
    { "publish", 3, 0, 0, 0, 0, io_publish, NULL, peer_publish, "Sends a message to a channel; replies with how many received it." },
    { "pubsub", -2, 0, 0, 0, 0, io_pubsub, NULL, peer_pubsub, "PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT." },
};

#define NCMDS (sizeof table / sizeof table[0])

static pthread_once_t sorted_once = PTHREAD_ONCE_INIT;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct command *)a)->name, ((const struct command *)b)->name);
}

static void sort_table(void)
{
    qsort(table, NCMDS, sizeof table[0], by_name);
}

const struct command *commands_find(const char *name, size_t len)
{
    pthread_once(&sorted_once, sort_table);
    char key[32];
    if (len == 0 || len >= sizeof key)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        key[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    key[len] = '\0';
    size_t lo = 0, hi = NCMDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(key, table[mid].name);
        if (c == 0)
            return &table[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t commands_count(void)
{
    return NCMDS;
}

const struct command *commands_at(size_t i)
{
    pthread_once(&sorted_once, sort_table);
    return i < NCMDS ? &table[i] : NULL;
}

/* --------------------------------------------------------- dispatch */

static void reply_unknown(struct conn *c, resp_cmd *cmd)
{
    char args[256];
    size_t n = 0;
    args[0] = '\0';
    for (int i = 1; i < cmd->argc && n < sizeof args - 140; i++)
        n += (size_t)snprintf(args + n, sizeof args - n, "'%.*s' ",
                              (int)(cmd->len[i] > 128 ? 128 : cmd->len[i]), cmd->argv[i]);
    conn_error_now(c, "ERR unknown command '%.*s', with args beginning with: %s",
              (int)(cmd->len[0] > 128 ? 128 : cmd->len[0]), cmd->argv[0], args);
}

/* Checks name, auth, subscribed mode and arity in one place (Redis's
 * processCommand), then runs the io() handler. A command whose reply
 * finds no room yet among the replies in flight is held by the
 * connection, which dispatches it again later (conn.c: output bounds). */
void commands_dispatch(struct conn *c, resp_cmd *cmd)
{
    struct server *srv = c->io->srv;
    const struct command *k = commands_find(cmd->argv[0], cmd->len[0]);
    if (!conn_has_room(c, k, cmd)) {
        conn_hold(c, k, cmd); /* dispatched again once earlier replies make room */
        return;
    }
    atomic_fetch_add_explicit(&srv->total_commands, 1, memory_order_relaxed);
    c->last_ms = clock_mono_ms();
    if (!k) {
        if (srv->cfg.requirepass[0] && !c->authed)
            conn_error_now(c, "NOAUTH Authentication required.");
        else
            reply_unknown(c, cmd);
        resp_cmd_free(cmd);
        return;
    }
    snprintf(c->lastcmd, sizeof c->lastcmd, "%s", k->name);
    if (srv->cfg.requirepass[0] && !c->authed && !(k->flags & CMD_NOAUTH)) {
        conn_error_now(c, "NOAUTH Authentication required.");
        resp_cmd_free(cmd);
        return;
    }
    if (pubsub_restricted(c) && !(k->flags & CMD_PUBSUB)) {
        conn_error_now(c, "ERR Can't execute '%s': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", k->name);
        resp_cmd_free(cmd);
        return;
    }
    if ((k->arity > 0 && cmd->argc != k->arity) || (k->arity < 0 && cmd->argc < -k->arity)) {
        conn_error_now(c, "ERR wrong number of arguments for '%s' command", k->name);
        resp_cmd_free(cmd);
        return;
    }
    struct msg *m = msg_new(MSG_CMD);
    m->req = *cmd;
    memset(cmd, 0, sizeof *cmd);
    m->cmd = k;
    m->origin = c->io->id;
    m->conn = c;
    m->proto = c->proto;
    conn_command_begin(c, k, m->req.argc);
    k->io(c, m);
    conn_command_end(c);
}

/* ---------------------------------------------------------- COMMAND */

static void add_flag_names(resp_buf *b, int proto, int flags)
{
    const char *names[8];
    size_t n = 0;
    names[n++] = (flags & CMD_WRITE) ? "write" : (flags & CMD_READONLY) ? "readonly" : "fast";
    if (flags & CMD_BLOCKING)
        names[n++] = "blocking";
    if (flags & CMD_NOAUTH)
        names[n++] = "no_auth";
    resp_add_set(b, proto, n);
    for (size_t i = 0; i < n; i++)
        resp_add_simple(b, names[i]);
}

static void add_command_info(resp_buf *b, int proto, const struct command *k)
{
    resp_add_array(b, 10);
    resp_add_cstr(b, k->name);
    resp_add_int(b, k->arity);
    add_flag_names(b, proto, k->flags);
    resp_add_int(b, k->first_key);
    resp_add_int(b, k->last_key);
    resp_add_int(b, k->key_step);
    resp_add_set(b, proto, 0);
    resp_add_set(b, proto, 0);
    resp_add_array(b, 0);
    resp_add_array(b, 0);
}

static void add_command_doc(resp_buf *b, int proto, const struct command *k)
{
    resp_add_cstr(b, k->name);
    resp_add_map(b, proto, 3);
    const char *group = (k->flags & (CMD_WRITE | CMD_READONLY | CMD_BLOCKING)) ? "list" : "connection";
    const char *kv[] = { "summary", k->summary ? k->summary : "", "since", "0.1.0", "group", group };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        resp_add_cstr(b, kv[i]);
}

/* COMMAND [COUNT | INFO [name …] | DOCS [name …]] */
void io_command(struct conn *c, struct msg *m)
{
    size_t n = commands_count();
    if (m->req.argc == 1) {
        resp_add_array(&m->out, n);
        for (size_t i = 0; i < n; i++)
            add_command_info(&m->out, c->proto, commands_at(i));
    } else if (arg_is(m, 1, "COUNT") && m->req.argc == 2) {
        resp_add_int(&m->out, (long long)n);
    } else if (arg_is(m, 1, "INFO") || arg_is(m, 1, "DOCS")) {
        bool docs = arg_is(m, 1, "DOCS");
        size_t want = m->req.argc > 2 ? (size_t)(m->req.argc - 2) : n;
        if (docs) {
            size_t found = 0;
            for (size_t i = 0; i < want; i++)
                found += (m->req.argc > 2 ? commands_find(m->req.argv[i + 2], m->req.len[i + 2]) : commands_at(i)) != NULL;
            resp_add_map(&m->out, c->proto, found);
        } else {
            resp_add_array(&m->out, want);
        }
        for (size_t i = 0; i < want; i++) {
            const struct command *k = m->req.argc > 2 ? commands_find(m->req.argv[i + 2], m->req.len[i + 2])
                                                      : commands_at(i);
            if (docs && k)
                add_command_doc(&m->out, c->proto, k);
            else if (!docs && k)
                add_command_info(&m->out, c->proto, k);
            else if (!docs)
                resp_add_null(&m->out, c->proto);
        }
    } else {
        conn_reply_error(c, m, "ERR unknown subcommand '%.64s'. Try COMMAND HELP.", m->req.argv[1]);
        return;
    }
    conn_reply(c, m);
}
