/*
 * cmd_script.c - Lua scripts: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and
 * SCRIPT LOAD|EXISTS|FLUSH|KILL.
 *
 * Where a script runs. The I/O thread checks that all of a script's KEYS
 * live on one shard (else -CROSSSLOT, before anything ran) and routes the
 * script there; a script without keys goes to the shard of its
 * connection's id. The shard runs it in its Lua engine (script.h) inside
 * the turn: nothing else runs on that shard meanwhile, its writes are the
 * turn's journal transaction, and the reply leaves after the commit. A
 * shard sets its engine up on its first script.
 *
 * redis.call runs a command the way EXEC runs a queued one: the command's
 * own I/O handler runs first against a stand-in connection in capture
 * mode (the checks of the I/O thread happen: arity, numbers, payloads),
 * and where it would route, the command runs here with the shard's
 * capture on (its reply comes back instead of leaving). A command whose
 * key lives on another shard is refused with an error naming the key;
 * blocking commands, transactions, subscriptions, scripts and commands
 * that run on every shard are refused. PUBLISH from a script reaches the
 * subscribers after the commit (like job events) and returns 0.
 *
 * ACL: the script runs as the user that sent EVAL (m->user, copied by the
 * dispatcher; NULL for default). Each redis.call is checked with
 * acl_check_command before it runs, exactly as the dispatcher checks a
 * request, and the call's message carries the user on, so that a receipt
 * or job id it names is checked against its job's queue (jobrec.h).
 *
 * SCRIPT EXISTS, FLUSH and KILL run on the I/O thread against the shared
 * cache (scriptcache.h) and the shards' busy entries (context.h); SCRIPT
 * LOAD compiles on a shard so a syntax error is reported at once.
 */
#include "cmd_script.h"

#include "acl.h"
#include "args.h"
#include "clock.h"
#include "cmd_keys.h"
#include "command.h"
#include "conn.h"
#include "context.h"
#include "events.h"
#include "hash.h"
#include "iothread.h"
#include "log.h"
#include "msg.h"
#include "script.h"
#include "scriptcache.h"
#include "shard.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct scripting {
    struct shard *s;
    struct script_engine engine;
    struct io_thread io;         /* stand-in: the I/O handlers read io->srv only */
    struct conn c;               /* stand-in connection in capture mode */
    struct msg *routed;          /* the command to run on this shard */
    struct msg *answered;        /* or its immediate answer */
    const char *user;            /* the named ACL user running the script (EVAL's m->user), or NULL */
    char err[512];               /* or why it is refused */
};

/* Commands a script may not call (besides blocking and TXCTL ones). */
static const char *const not_in_scripts[] = {
    "eval", "evalsha", "eval_ro", "evalsha_ro", "script", "subscribe", "unsubscribe", "psubscribe",
    "punsubscribe", "hello", "auth", "client", "debug", "pubsub", NULL,
};

/* ------------------------------------------------------- redis.call */

static void capture_route(struct conn *c, struct msg *m, int k);
static void capture_gather(struct conn *c, struct msg *m, bool to_shards);

static void capture_reply(struct conn *c, struct msg *m)
{
    struct scripting *x = (struct scripting *)((char *)c - offsetof(struct scripting, c));
    x->answered = m;
}

static void capture_closed(struct conn *c)
{
    (void)c;
}

static const struct conn_tx script_tx = {
    .route = capture_route,
    .gather = capture_gather,
    .reply = capture_reply,
    .closed = capture_closed,
};

static struct scripting *of_conn(struct conn *c)
{
    return (struct scripting *)((char *)c - offsetof(struct scripting, c));
}

/* The first key of m (by the command's key positions) that is not on
 * this shard, or argv[1] (a job id names its shard). */
static int foreign_arg(struct scripting *x, const struct msg *m)
{
    const struct command *k = m->cmd;
    int n = x->s->srv->nshards;
    if (k->first_key > 0 && k->first_key < m->req.argc) {
        int last = k->last_key >= 0 ? k->last_key : m->req.argc + k->last_key;
        int step = k->key_step > 0 ? k->key_step : 1;
        for (int i = k->first_key; i <= last && i < m->req.argc; i += step)
            if (shard_of(m->req.argv[i], m->req.len[i], n) != x->s->id)
                return i;
    }
    return m->req.argc > 1 ? 1 : 0;
}

static void refuse_foreign(struct scripting *x, struct msg *m, int k)
{
    int i = foreign_arg(x, m);
    snprintf(x->err, sizeof x->err,
             "ERR script tried to access '%.128s', which lives on shard %d, but the script runs on shard %d "
             "(the shard of its KEYS): pass every key the script touches in KEYS and give them one {hash tag}",
             m->req.argv[i], k, x->s->id);
    msg_free(m);
}

static void capture_route(struct conn *c, struct msg *m, int k)
{
    struct scripting *x = of_conn(c);
    if (k != x->s->id) {
        refuse_foreign(x, m, k);
        return;
    }
    x->routed = m;
}

/* PUBLISH from a script: delivered after the commit, with the events. */
static void publish_later(struct scripting *x, struct msg *m)
{
    struct shard *s = x->s;
    int n = s->srv->nio;
    struct msg *p = msg_new(MSG_PUBLISH);
    p->req = m->req;
    memset(&m->req, 0, sizeof m->req);
    for (int k = 0; k < n; k++)
        msg_batch_add(&s->events[k], k == n - 1 ? p : events_copy(p));
    if (n == 0)
        msg_free(p);
    resp_add_int(&m->out, 0);
    x->answered = m;
}

static void capture_gather(struct conn *c, struct msg *m, bool to_shards)
{
    struct scripting *x = of_conn(c);
    if (!to_shards && !strcmp(m->cmd->name, "publish")) {
        publish_later(x, m);
        return;
    }
    int k = to_shards ? keys_shard(m, x->s->srv->nshards) : -2;
    if (k == -2) {
        snprintf(x->err, sizeof x->err, "ERR '%s' runs on every shard, so a script cannot call it", m->cmd->name);
        msg_free(m);
        return;
    }
    if (k == -1) {
        refuse_foreign(x, m, -1);
        return;
    }
    m->whole = true;
    capture_route(c, m, k);
}

static bool allowed(const struct command *k)
{
    if (k->flags & (CMD_BLOCKING | CMD_TXCTL))
        return false;
    for (int i = 0; not_in_scripts[i]; i++)
        if (!strcmp(k->name, not_in_scripts[i]))
            return false;
    return true;
}

static struct msg *build(const struct command *k, int argc, char **argv, size_t *lens, int proto)
{
    struct msg *m = msg_new(MSG_CMD);
    resp_cmd_build(&m->req, argc, (const char *const *)argv, lens);
    m->cmd = k;
    m->proto = (uint8_t)proto;
    m->origin = 0;
    return m;
}

/* Runs m's shard handler here, in this turn, keeping its reply (the
 * shard may itself be inside EXEC: its capture is saved). */
static void run_here(struct shard *s, struct msg *m)
{
    bool was = s->capture;
    struct msg *held = s->captured;
    s->capture = true;
    s->captured = NULL;
    m->cmd->shard(s, m);
    ASSERT(s->captured == m);
    s->capture = was;
    s->captured = held;
    if (m->out.len == 0)
        resp_add_int(&m->out, m->num); /* a part reply (counts) */
}

static void call_command(void *arg, int argc, char **argv, size_t *lens, int proto, bool readonly, resp_buf *out)
{
    struct scripting *x = arg;
    struct server *srv = x->s->srv;
    const struct command *k = srv->find_command(argv[0], lens[0]);
    if (!k) {
        resp_add_error(out, "ERR Unknown Redis command called from script");
        return;
    }
    if ((k->arity > 0 && argc != k->arity) || (k->arity < 0 && argc < -k->arity)) {
        resp_add_error(out, "ERR Wrong number of args calling Redis command from script");
        return;
    }
    if (!allowed(k)) {
        resp_add_error(out, "ERR This Redis command is not allowed from script");
        return;
    }
    char err[600];
    if (x->user && acl_check_command(x->user, k, argc, argv, lens, err, sizeof err) < 0) {
        resp_add_error(out, err); /* the caller's rules hold inside its script, as in Redis */
        return;
    }
    if (k->flags & CMD_WRITE) {
        if (readonly) {
            resp_add_error(out, "ERR Write commands are not allowed from read-only scripts.");
            return;
        }
        if (!script_mark_write(&x->engine)) {
            resp_add_error(out, "ERR Script killed by user with SCRIPT KILL...");
            return;
        }
    }
    struct msg *m = build(k, argc, argv, lens, proto);
    m->user = x->user ? xstrdup(x->user) : NULL; /* a receipt's queue is checked on the shard too */
    m->conn = &x->c;
    x->routed = x->answered = NULL;
    x->err[0] = '\0';
    x->c.proto = (uint8_t)proto;
    k->io(&x->c, m); /* ends in capture_*: m is kept or freed */
    if (x->err[0]) {
        resp_add_error(out, x->err);
        return;
    }
    struct msg *r = x->answered ? x->answered : x->routed;
    if (!r) {
        resp_add_error(out, "ERR the command gave no reply");
        return;
    }
    if (r == x->routed)
        run_here(x->s, r);
    resp_buf_append(out, r->out.data, r->out.len);
    msg_free(r);
    x->routed = x->answered = NULL;
}

/* ------------------------------------------------------------ set-up */

static void scripting_free(void *p)
{
    struct scripting *x = p;
    script_destroy(&x->engine);
    free(x);
}

static struct scripting *scripting_of(struct shard *s)
{
    if (s->scripting)
        return s->scripting;
    struct scripting *x = xcalloc(1, sizeof *x);
    x->s = s;
    x->io.srv = s->srv;
    x->io.id = 0;
    x->c.io = &x->io;
    x->c.proto = 2;
    x->c.authed = true;
    x->c.capture = true;
    x->c.tx = &script_tx;
    struct script_host host = { x, call_command };
    const struct config *cfg = &s->srv->cfg;
    if (script_init(&x->engine, (size_t)cfg->script_memory, (size_t)cfg->script_cache_size * 2, &host,
                    &s->srv->script_busy[s->id]) < 0) {
        free(x);
        return NULL;
    }
    s->scripting = x;
    s->scripting_free = scripting_free;
    return x;
}

/* ------------------------------------------------------------- EVAL */

static bool is_sha_call(const struct msg *m) { return !strncasecmp(m->req.argv[0], "evalsha", 7); }
static bool is_ro(const struct msg *m) { return m->req.len[0] > 3 && !strcasecmp(m->req.argv[0] + m->req.len[0] - 3, "_ro"); }

/* EVAL script numkeys [key …] [arg …] | EVALSHA sha1 numkeys [key …] [arg …] (and their _RO forms) */
void io_eval(struct conn *c, struct msg *m)
{
    long long nk;
    if (!arg_ll(m, 2, &nk)) {
        conn_reply_error(c, m, "ERR value is not an integer or out of range");
        return;
    }
    if (nk < 0) {
        conn_reply_error(c, m, "ERR Number of keys can't be negative");
        return;
    }
    if (nk > m->req.argc - 3) {
        conn_reply_error(c, m, "ERR Number of keys can't be greater than number of args");
        return;
    }
    int n = c->io->srv->nshards, k = -1;
    for (int i = 3; i < 3 + nk; i++) {
        int sh = shard_of(m->req.argv[i], m->req.len[i], n);
        if (k >= 0 && sh != k) {
            conn_reply_error(c, m, KEYS_CROSSSLOT);
            return;
        }
        k = sh;
    }
    if (k < 0)
        k = (int)(c->id % (uint64_t)n);
    conn_route(c, m, k);
}

/* The compiled function of m's script, compiling it when needed; writes
 * NOSCRIPT or the compile error into m->out and returns false. */
static bool find_script(struct scripting *x, struct msg *m, char sha[SHA1_HEX + 1])
{
    struct script_cache *sc = x->s->srv->scripts;
    struct script_engine *e = &x->engine;
    if (!is_sha_call(m)) {
        sha1_hex(m->req.argv[1], m->req.len[1], sha);
        if (!script_compiled(e, sha) && script_compile(e, sha, m->req.argv[1], m->req.len[1], &m->out) < 0)
            return false;
        scache_add(sc, sha, m->req.argv[1], m->req.len[1], false);
        return true;
    }
    if (m->req.len[1] != SHA1_HEX) {
        resp_add_error(&m->out, "NOSCRIPT No matching script. Please use EVAL.");
        return false;
    }
    for (int i = 0; i < SHA1_HEX; i++)
        sha[i] = (char)tolower((unsigned char)m->req.argv[1][i]);
    sha[SHA1_HEX] = '\0';
    bool have = script_compiled(e, sha);
    char *body = NULL;
    size_t len = 0;
    if (!scache_lookup(sc, sha, SHA1_HEX, have ? NULL : &body, &len)) {
        resp_add_error(&m->out, "NOSCRIPT No matching script. Please use EVAL.");
        return false;
    }
    int rc = have ? 0 : script_compile(e, sha, body, len, &m->out);
    free(body);
    return rc == 0;
}

/* EVAL script numkeys [key …] [arg …] | EVALSHA sha1 numkeys [key …] [arg …] (and their _RO forms) */
void sh_eval(struct shard *s, struct msg *m)
{
    struct scripting *x = scripting_of(s);
    if (!x) {
        resp_add_error(&m->out, "ERR the Lua engine could not be set up (out of memory)");
        shard_reply(s, m);
        return;
    }
    script_sync(&x->engine, scache_generation(s->srv->scripts));
    char sha[SHA1_HEX + 1];
    if (!find_script(x, m, sha)) {
        shard_reply(s, m);
        return;
    }
    long long nk = 0;
    arg_ll(m, 2, &nk); /* checked on the I/O thread */
    struct script_busy *busy = &s->srv->script_busy[s->id];
    atomic_store(&busy->state, SCRIPT_CLEAN);
    int64_t now = clock_mono_ms();
    atomic_store(&busy->since, now ? now : 1);
    x->user = m->user;
    script_run(&x->engine, sha, (int)nk, m->req.argc - 3, m->req.argv + 3, m->req.len + 3, m->proto, is_ro(m),
               &m->out);
    x->user = NULL;
    atomic_store(&busy->since, 0);
    atomic_store(&busy->state, SCRIPT_IDLE);
    shard_reply(s, m);
}

/* ----------------------------------------------------------- SCRIPT */

/* SCRIPT LOAD script (on a shard: compiled there, cached for all) */
void sh_script_load(struct shard *s, struct msg *m)
{
    struct scripting *x = scripting_of(s);
    if (!x) {
        resp_add_error(&m->out, "ERR the Lua engine could not be set up (out of memory)");
        shard_reply(s, m);
        return;
    }
    script_sync(&x->engine, scache_generation(s->srv->scripts));
    char sha[SHA1_HEX + 1];
    sha1_hex(m->req.argv[2], m->req.len[2], sha);
    if (script_compiled(&x->engine, sha) || script_compile(&x->engine, sha, m->req.argv[2], m->req.len[2], &m->out) == 0) {
        scache_add(s->srv->scripts, sha, m->req.argv[2], m->req.len[2], true);
        resp_add_bulk(&m->out, sha, SHA1_HEX);
    }
    shard_reply(s, m);
}

/* SCRIPT KILL: ends every running script that has not written. */
static void script_kill(struct conn *c, struct msg *m)
{
    struct server *srv = c->io->srv;
    int killed = 0, unkillable = 0;
    for (int k = 0; k < srv->nshards; k++) {
        struct script_busy *b = &srv->script_busy[k];
        if (!atomic_load(&b->since))
            continue;
        int expect = SCRIPT_CLEAN;
        if (atomic_compare_exchange_strong(&b->state, &expect, SCRIPT_KILL))
            killed++;
        else if (expect == SCRIPT_WROTE)
            unkillable++;
    }
    if (killed)
        conn_reply_ok(c, m);
    else if (unkillable)
        conn_reply_error(c, m, "UNKILLABLE Sorry the script already executed write commands against the dataset. "
                               "You can either wait the script termination or kill the server in a hard way "
                               "(kill -9 spoold; the journal keeps everything committed before the script).");
    else
        conn_reply_error(c, m, "NOTBUSY No scripts in execution right now.");
}

/* SCRIPT LOAD script | EXISTS sha1 [sha1 …] | FLUSH [ASYNC|SYNC] | KILL */
void io_script(struct conn *c, struct msg *m)
{
    struct server *srv = c->io->srv;
    if (arg_is(m, 1, "LOAD") && m->req.argc == 3) {
        conn_route(c, m, (int)(c->id % (uint64_t)srv->nshards));
    } else if (arg_is(m, 1, "EXISTS") && m->req.argc >= 3) {
        resp_add_array(&m->out, (size_t)(m->req.argc - 2));
        for (int i = 2; i < m->req.argc; i++)
            resp_add_int(&m->out, scache_lookup(srv->scripts, m->req.argv[i], m->req.len[i], NULL, NULL));
        conn_reply(c, m);
    } else if (arg_is(m, 1, "FLUSH") && (m->req.argc == 2 || (m->req.argc == 3 && (arg_is(m, 2, "ASYNC") || arg_is(m, 2, "SYNC"))))) {
        scache_flush(srv->scripts);
        conn_reply_ok(c, m);
    } else if (arg_is(m, 1, "KILL") && m->req.argc == 2) {
        script_kill(c, m);
    } else if (arg_is(m, 1, "HELP") && m->req.argc == 2) {
        static const char *const lines[] = {
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]", "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]", "    Flush the Lua scripts cache.",
            "KILL", "    Kill the currently executing Lua script (one that has not written).",
            "LOAD <script>", "    Load a script into the scripts cache without executing it.",
            "HELP", "    Print this help.",
        };
        size_t n = sizeof lines / sizeof lines[0];
        resp_add_array(&m->out, n);
        for (size_t i = 0; i < n; i++)
            resp_add_simple(&m->out, lines[i]);
        conn_reply(c, m);
    } else if (arg_is(m, 1, "LOAD") || arg_is(m, 1, "EXISTS") || arg_is(m, 1, "FLUSH") || arg_is(m, 1, "KILL")) {
        conn_reply_error(c, m, "ERR unknown subcommand or wrong number of arguments for '%.64s'. Try SCRIPT HELP.",
                         m->req.argv[1]);
    } else {
        conn_reply_error(c, m, "ERR unknown subcommand '%.64s'. Try SCRIPT HELP.", m->req.argv[1]);
    }
}
