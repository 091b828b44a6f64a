/*
 * script.h - the Lua 5.1 engine of one shard: EVAL's scripts run here.
 *
 * Core layer: no thread and no socket of its own. Each shard thread owns
 * one engine (one lua_State) and is the only thread that touches it. The
 * engine knows nothing of the command table: redis.call and redis.pcall
 * go through the host's call() hook (cmd_script.c), which runs the
 * command on the same shard, in the same turn, and hands back its encoded
 * reply. So a script is atomic the way EXEC is: nothing else runs on the
 * shard until it returns, and its writes are in the turn's transaction.
 *
 * What a script sees is what Redis 7.0 gives it: KEYS, ARGV, redis.call,
 * redis.pcall, redis.error_reply, redis.status_reply, redis.sha1hex,
 * redis.log (LOG_DEBUG..LOG_WARNING), redis.setresp, cjson and bit
 * (Debian's lua-cjson 2.1 and LuaBitOp 1.0.2, the libraries Redis embeds)
 * and the base, table, string and math libraries. Not there: os, io, loadfile, dofile, require, package,
 * setfenv, debug. The globals and the library tables are read-only
 * (writing one raises "Attempt to modify a readonly table"; reading a
 * global that does not exist raises "Script attempted to access
 * nonexistent global variable"). Replies convert both ways as in Redis,
 * RESP2 or RESP3 (redis.setresp(3) for the calls; the client's protocol
 * for the script's result).
 *
 * Limits: the Lua state's memory is capped (a counting lua_Alloc; an
 * allocation over the cap fails and the script ends with an error); the
 * compiled functions are dropped when more than max_funcs are kept, or
 * when the shared cache's generation moves (SCRIPT FLUSH). SCRIPT KILL
 * reaches a running script through busy->state (context.h): a count hook
 * checks it every 10,000 instructions, and a script that has not written
 * ends with "Script killed by user with SCRIPT KILL..."; the host's call
 * hook marks the first write (script_mark_write), after which the script
 * can no longer be killed.
 */
#ifndef SPOOL_SCRIPT_H
#define SPOOL_SCRIPT_H

#include "context.h"
#include "resp.h"
#include "sha1.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lua_State;

struct script_host {
    void *arg;
    /* Runs one command for redis.call/redis.pcall and writes its encoded
     * reply (RESP proto) into out: a value, or an error reply. */
    void (*call)(void *arg, int argc, char **argv, size_t *lens, int proto, bool readonly, resp_buf *out);
};

struct script_engine {
    struct lua_State *L;
    size_t mem, cap;             /* bytes the Lua state holds, and its cap */
    bool capped;                 /* the cap applies (after set-up) */
    struct script_host host;
    struct script_busy *busy;    /* this shard's entry (context.h) */
    uint64_t gen;                /* scache generation of the compiled functions */
    size_t nfuncs, max_funcs;
    /* the running script */
    const char *sha;
    bool readonly;               /* EVAL_RO / EVALSHA_RO */
    int resp;                    /* redis.setresp: protocol of the calls' replies */
    bool killed;
    uint64_t scripts;            /* run, for INFO */
};

/* Sets up a Lua state capped at cap bytes. Returns 0 or -ENOMEM. */
int script_init(struct script_engine *e, size_t cap, size_t max_funcs, const struct script_host *host,
                struct script_busy *busy);
void script_destroy(struct script_engine *e);

/* Drops the compiled functions when gen differs from theirs. */
void script_sync(struct script_engine *e, uint64_t gen);
bool script_compiled(struct script_engine *e, const char *sha);
/* Compiles body as the script sha. On a syntax error (or no memory)
 * writes Redis's error reply into err and returns -1. */
int script_compile(struct script_engine *e, const char *sha, const char *body, size_t len, resp_buf *err);
/* Runs the compiled script sha with KEYS = argv[0..nkeys), ARGV = the rest
 * (n in all), and writes its result (or its error) into out for a client
 * speaking proto. */
void script_run(struct script_engine *e, const char *sha, int nkeys, int n, char **argv, size_t *lens,
                int proto, bool readonly, resp_buf *out);

/* For the host's call hook, before a write command runs: false when
 * SCRIPT KILL got there first (the write must not run). */
bool script_mark_write(struct script_engine *e);

#endif
