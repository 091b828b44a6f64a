/*
 * test_script.c - the scripting core without a server: SHA-1 against the
 * standard's vectors, the shared script cache (LRU of EVAL scripts,
 * SCRIPT LOAD's kept apart, FLUSH bumps the generation), and the Lua
 * engine with a fake call hook (conversions both ways, the kill flag,
 * the memory cap, the sandbox).
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "script.h"
#include "scriptcache.h"
#include "sha1.h"

Test(sha1, vectors)
{
    char hex[SHA1_HEX + 1];
    sha1_hex("", 0, hex);
    cr_assert_str_eq(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(two, strlen(two), hex);
    cr_assert_str_eq(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    char million[1000];
    memset(million, 'a', sizeof million);
    sha1_hex(million, sizeof million, hex);
    cr_assert_str_eq(hex, "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

static void add(struct script_cache *sc, const char *body, bool load, char sha[SHA1_HEX + 1])
{
    sha1_hex(body, strlen(body), sha);
    scache_add(sc, sha, body, strlen(body), load);
}

Test(scriptcache, lru_of_eval_scripts_and_loaded_ones_apart)
{
    struct script_cache *sc = scache_new(2, 2);
    char a[41], b[41], c[41], l[41];
    add(sc, "return 'l'", true, l);
    add(sc, "return 'a'", false, a);
    add(sc, "return 'b'", false, b);
    cr_assert(scache_lookup(sc, a, SHA1_HEX, NULL, NULL)); /* a is now the most recent */
    add(sc, "return 'c'", false, c);
    cr_assert(scache_lookup(sc, a, SHA1_HEX, NULL, NULL));
    cr_assert(!scache_lookup(sc, b, SHA1_HEX, NULL, NULL), "b was the least recently used");
    cr_assert(scache_lookup(sc, l, SHA1_HEX, NULL, NULL), "a loaded script is not evicted by EVAL's");
    char *body = NULL;
    size_t len = 0;
    cr_assert(scache_lookup(sc, c, SHA1_HEX, &body, &len));
    cr_assert_str_eq(body, "return 'c'");
    cr_assert_eq(len, 10);
    free(body);
    uint64_t g = scache_generation(sc);
    scache_flush(sc);
    cr_assert_neq(scache_generation(sc), g);
    cr_assert_eq(scache_count(sc), 0);
    cr_assert(!scache_lookup(sc, l, SHA1_HEX, NULL, NULL));
    scache_free(sc);
}

/* ---------------------------------------------------------- the engine */

static char last_cmd[64];

static void fake_call(void *arg, int argc, char **argv, size_t *lens, int proto, bool ro, resp_buf *out)
{
    (void)arg;
    (void)lens;
    (void)proto;
    (void)ro;
    snprintf(last_cmd, sizeof last_cmd, "%s/%d", argv[0], argc);
    if (!strcmp(argv[0], "fail"))
        resp_add_error(out, "WRONGTYPE Operation against a key holding the wrong kind of value");
    else if (!strcmp(argv[0], "nil"))
        resp_add_null(out, 2);
    else if (!strcmp(argv[0], "big")) {
        resp_add_array(out, 20000);
        for (int i = 0; i < 20000; i++)
            resp_add_bulk(out, "0123456789abcdef0123456789abcdef", 32);
    }
    else
        resp_buf_printf(out, "*3\r\n:7\r\n$2\r\nhi\r\n+OK\r\n");
}

static struct script_busy busy;
static struct script_engine e;

static void setup(void)
{
    struct script_host h = { NULL, fake_call };
    cr_assert_eq(script_init(&e, 2u << 20, 10, &h, &busy), 0);
}

static void teardown(void)
{
    script_destroy(&e);
}

/* Runs body with no keys and returns the reply (static buffer). */
static const char *run(const char *body)
{
    static char text[512];
    char sha[SHA1_HEX + 1];
    sha1_hex(body, strlen(body), sha);
    resp_buf out;
    resp_buf_init(&out);
    if (!script_compiled(&e, sha) && script_compile(&e, sha, body, strlen(body), &out) < 0)
        goto done;
    atomic_store(&busy.state, SCRIPT_CLEAN);
    script_run(&e, sha, 0, 0, NULL, NULL, 2, false, &out);
done:
    snprintf(text, sizeof text, "%.*s", (int)out.len, out.data);
    resp_buf_free(&out);
    return text;
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 20);

Test(engine, replies_to_lua_and_back)
{
    cr_assert_str_eq(run("return redis.call('x', 1.5, 'a')"), "*3\r\n:7\r\n$2\r\nhi\r\n+OK\r\n");
    cr_assert_str_eq(last_cmd, "x/3");
    cr_assert_str_eq(run("return type(redis.call('nil'))"), "$7\r\nboolean\r\n");
    cr_assert_str_eq(run("return redis.pcall('fail')"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    cr_assert_str_eq(run("return {1, 'a', true, false, {ok='x'}}"), "*5\r\n:1\r\n$1\r\na\r\n:1\r\n$-1\r\n+x\r\n");
    cr_assert_str_eq(run("return 3.9"), ":3\r\n");
}

Test(engine, a_call_error_carries_where)
{
    const char *r = run("\n return redis.call('fail')");
    cr_assert(strstr(r, "-WRONGTYPE Operation against a key") == r, "%s", r);
    cr_assert(strstr(r, ", on @user_script:2.") != NULL, "%s", r);
}

Test(engine, kill_flag_ends_a_loop_that_did_not_write)
{
    char sha[SHA1_HEX + 1];
    const char *body = "local n = 0 while true do n = n + 1 end";
    sha1_hex(body, strlen(body), sha);
    resp_buf out;
    resp_buf_init(&out);
    cr_assert_eq(script_compile(&e, sha, body, strlen(body), &out), 0);
    atomic_store(&busy.state, SCRIPT_KILL); /* SCRIPT KILL got there first */
    script_run(&e, sha, 0, 0, NULL, NULL, 2, false, &out);
    cr_assert(strstr(out.data, "Script killed by user with SCRIPT KILL") != NULL);
    resp_buf_free(&out);
    atomic_store(&busy.state, SCRIPT_WROTE);
    cr_assert(script_mark_write(&e), "after a write, writes go on");
    atomic_store(&busy.state, SCRIPT_KILL);
    cr_assert(!script_mark_write(&e), "a killed script may not start writing");
}

Test(engine, memory_cap)
{
    const char *r = run("local t = {} for i = 1, 1e7 do t[i] = i end");
    cr_assert(strstr(r, "not enough memory") != NULL, "%s", r);
    cr_assert_leq(e.mem, e.cap);
    cr_assert_str_eq(run("return 1"), ":1\r\n");
}

Test(engine, compiled_functions_are_bounded_and_synced)
{
    char body[32];
    for (int i = 0; i < 25; i++) {
        snprintf(body, sizeof body, "return %d", i);
        run(body);
    }
    cr_assert_leq(e.nfuncs, e.max_funcs);
    script_sync(&e, 99);
    cr_assert_eq(e.nfuncs, 0);
}

Test(engine, running_out_of_memory_while_converting_a_reply)
{
    const char *r = run("local t = {} for i = 1, 1000 do t[i] = redis.call('big') end");
    cr_assert(strstr(r, "not enough memory") != NULL, "%s", r);
    cr_assert_str_eq(run("return #redis.call('big')"), ":20000\r\n");
}
