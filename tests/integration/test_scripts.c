/*
 * test_scripts.c - Lua scripts against a real spoold with two shards:
 * EVAL's writes are journaled before the reply (they survive kill -9), a
 * key of another shard is refused by name, KEYS on two shards get
 * -CROSSSLOT, the sandbox, EVAL_RO, the script cache (LOAD, EVALSHA,
 * FLUSH, LRU), the memory cap, jobs pushed from a script, and the safety
 * of a script that loops forever: -BUSY for its shard only, SCRIPT KILL
 * ends it, and once it wrote it is UNKILLABLE and kill -9 keeps none of
 * it. tests/scripts/run-suite compares the rest with a real redis-server.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static spoold *srv;
static cli *c;

static void start(void)
{
    srv = spoold_start("--shards", "2", "--busy-script-time", "200", "--script-memory", "4mb",
                       "--script-cache-size", "2", NULL);
    c = cli_connect(srv->port);
}

static void stop(void)
{
    cli_close(c);
    c = NULL;
    spoold_stop(srv);
    srv = NULL;
}

TestSuite(scripts, .init = start, .fini = stop, .timeout = 60);

Test(scripts, writes_are_journaled_before_the_reply)
{
    expect_int(CMD(c, "EVAL", "redis.call('set', KEYS[1], 'v') return redis.call('incrby', KEYS[2], 5)", "2",
                   "{u}a", "{u}n"), 5);
    spoold_kill9(srv);
    spoold_restart(srv, "--shards", "2", NULL);
    cli_close(c);
    c = cli_connect(srv->port);
    expect_bulk(CMD(c, "GET", "{u}a"), "v");
    expect_bulk(CMD(c, "GET", "{u}n"), "5");
}

Test(scripts, a_key_of_another_shard_is_named)
{
    char other[32];
    other_shard_key(c, "a", other, sizeof other);
    char want[64];
    snprintf(want, sizeof want, "'%s', which lives on shard", other);
    cr_assert(error_has(CMD(c, "EVAL", "return redis.call('get', ARGV[1])", "1", "a", other), want));
    expect_error(CMD(c, "EVAL", "return 1", "2", "a", other), "CROSSSLOT");
}

Test(scripts, sandbox)
{
    const char *forbidden[] = { "os", "io", "loadfile", "dofile", "require", "package", "debug" };
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        char body[64];
        snprintf(body, sizeof body, "return %s", forbidden[i]);
        cr_assert(error_has(CMD(c, "EVAL", body, "0"), "nonexistent global variable"), "%s", forbidden[i]);
    }
    cr_assert(error_has(CMD(c, "EVAL", "x = 1", "0"), "Attempt to modify a readonly table"));
    cr_assert(error_has(CMD(c, "EVAL", "redis.call = nil", "0"), "Attempt to modify a readonly table"));
    cr_assert(error_has(CMD(c, "EVAL", "rawset(_G, 'x', 1)", "0"), "Attempt to modify a readonly table"));
    expect_bulk(CMD(c, "EVAL", "return cjson.encode({a = {1, 2}})", "0"), "{\"a\":[1,2]}");
}

Test(scripts, read_only_scripts_cannot_write)
{
    cr_assert(error_has(CMD(c, "EVAL_RO", "return redis.call('set', KEYS[1], 1)", "1", "k"),
                        "Write commands are not allowed from read-only scripts"));
    expect_null(CMD(c, "GET", "k"));
    expect_ok(CMD(c, "EVAL", "return redis.call('set', KEYS[1], 1)", "1", "k"));
}

Test(scripts, cache_load_evalsha_flush_lru)
{
    resp_val *sha = CMD(c, "SCRIPT", "LOAD", "return 'loaded'");
    cr_assert_eq(sha->type, RESP_T_BULK);
    expect_bulk(CMD(c, "EVALSHA", sha->str, "0"), "loaded");
    /* script-cache-size 2: three EVAL scripts push the oldest out, not the loaded one */
    expect_int(CMD(c, "EVAL", "return 1", "0"), 1);
    expect_int(CMD(c, "EVAL", "return 2", "0"), 2);
    expect_int(CMD(c, "EVAL", "return 3", "0"), 3);
    /* sha1("return 1") = e0e1f9fabfc9d4800c877a703b823ac0578ff8db */
    resp_val *ex = CMD(c, "SCRIPT", "EXISTS", sha->str, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    cr_assert_eq(ex->n, 2);
    cr_assert_eq(ex->elem[0]->integer, 1, "the loaded script stays");
    cr_assert_eq(ex->elem[1]->integer, 0, "the least recently used EVAL script went");
    resp_val_free(ex);
    expect_error(CMD(c, "EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"), "NOSCRIPT");
    expect_ok(CMD(c, "SCRIPT", "FLUSH"));
    expect_error(CMD(c, "EVALSHA", sha->str, "0"), "NOSCRIPT");
    resp_val_free(sha);
}

Test(scripts, memory_cap_ends_the_script_not_the_shard)
{
    cr_assert(error_has(CMD(c, "EVAL", "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end", "1", "a"),
                        "not enough memory"));
    expect_int(CMD(c, "EVAL", "return 7", "1", "a"), 7);
}

Test(scripts, jobs_from_a_script)
{
    expect_int(CMD(c, "EVAL", "redis.call('job.push', KEYS[1], ARGV[1]) return redis.call('lpush', KEYS[1], ARGV[1])",
                   "1", "mail", "{\"to\":\"a@example.com\"}"), 2);
    resp_val *r = CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "mail");
    cr_assert_eq(r->type, RESP_T_ARRAY);
    resp_val_free(r);
    cr_assert(error_has(CMD(c, "EVAL", "return redis.call('lpush', KEYS[1], 'not json')", "1", "mail"), "BADJSON"));
}

/* Polls GET key on fresh connections (a GET sent before busy-script-time
 * waits behind the script) until one is answered -BUSY. */
static bool saw_busy(const char *key)
{
    cli *tries[64];
    int n = 0;
    bool busy = false;
    long long deadline = now_ms() + 5000;
    while (!busy && n < 64 && now_ms() < deadline) {
        cli *t = tries[n++] = cli_connect(srv->port);
        SEND(t, "GET", key);
        resp_val *v = NULL;
        if (cli_poll_reply(t, 100, &v) == 1) {
            busy = v->type == RESP_T_ERROR && strncmp(v->str, "BUSY", 4) == 0;
            resp_val_free(v);
        }
    }
    for (int i = 0; i < n; i++)
        cli_close(tries[i]);
    return busy;
}

Test(scripts, a_looping_script_is_busy_for_its_shard_only_and_script_kill_ends_it)
{
    char other[32];
    other_shard_key(c, "a", other, sizeof other);
    expect_error(CMD(c, "SCRIPT", "KILL"), "NOTBUSY");
    cli *looper = cli_connect(srv->port);
    SEND(looper, "EVAL", "while true do end", "1", "a");
    cr_assert(saw_busy("a"), "the looping script's shard answers -BUSY");
    long long t0 = now_ms();
    expect_ok(CMD(c, "SET", other, "works"));
    expect_bulk(CMD(c, "GET", other), "works");
    cr_assert_lt(now_ms() - t0, 1000, "the other shard answers at once");
    expect_ok(CMD(c, "SCRIPT", "KILL"));
    cr_assert(error_has(cli_read(looper), "Script killed by user with SCRIPT KILL"));
    expect_ok(CMD(c, "SET", "a", "after"));
    expect_error(CMD(c, "SCRIPT", "KILL"), "NOTBUSY");
    cli_close(looper);
}

Test(scripts, a_script_that_wrote_is_unkillable_and_kill9_keeps_none_of_it)
{
    expect_ok(CMD(c, "SET", "a", "before"));
    cli *looper = cli_connect(srv->port);
    SEND(looper, "EVAL", "redis.call('set', KEYS[1], 'during') while true do end", "1", "a");
    bool unkillable = false;
    long long deadline = now_ms() + 5000;
    while (!unkillable && now_ms() < deadline) {
        resp_val *v = CMD(c, "SCRIPT", "KILL");
        if (v->type == RESP_T_SIMPLE && strcmp(v->str, "OK") == 0) {
            /* it came between the script's start and its first write (a
             * slow, sanitizer-built spoold): that script had written
             * nothing and may be killed; run it again */
            resp_val_free(v);
            resp_val_free(cli_read(looper));
            SEND(looper, "EVAL", "redis.call('set', KEYS[1], 'during') while true do end", "1", "a");
            continue;
        }
        cr_assert(v->type == RESP_T_ERROR, "SCRIPT KILL must not end a script that wrote: %s", resp_describe(v));
        unkillable = strncmp(v->str, "UNKILLABLE", 10) == 0;
        resp_val_free(v);
        if (!unkillable)
            sleep_ms(5);
    }
    cr_assert(unkillable);
    cli_close(looper);
    spoold_kill9(srv);
    spoold_restart(srv, "--shards", "2", NULL);
    cli_close(c);
    c = cli_connect(srv->port);
    expect_bulk(CMD(c, "GET", "a"), "before");
}
