/*
 * test_kv.c - the keyspace through a real spoold with the C test client:
 * strings with TTLs, WRONGTYPE between queues and keys, and transactions
 * (all or nothing, CROSSSLOT before anything applies, EXECABORT, WATCH).
 * The replies are compared with redis-server's by tests/kv; these pin the
 * properties that matter most where a mutant can be checked against them.
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
    srv = spoold_start("--shards", "2", NULL);
    c = cli_connect(srv->port);
}

static void stop(void)
{
    cli_close(c);
    spoold_stop(srv);
}

TestSuite(kv, .init = start, .fini = stop, .timeout = 60);

/* Two keys on different shards (MSET refuses them with CROSSSLOT). */
static void two_shards(char *a, char *b, size_t cap)
{
    for (int i = 0; i < 100; i++) {
        snprintf(a, cap, "k%d", i);
        for (int j = i + 1; j < 100; j++) {
            snprintf(b, cap, "k%d", j);
            resp_val *v = CMD(c, "MSET", a, "1", b, "1");
            bool cross = v->type == RESP_T_ERROR;
            resp_val_free(v);
            resp_val_free(CMD(c, "DEL", a, b));
            if (cross)
                return;
        }
    }
    cr_assert_fail("no two keys on different shards");
}

Test(kv, set_with_ttl_and_expiry)
{
    expect_ok(CMD(c, "SET", "user:123", "{\"a\":1}", "EX", "60"));
    expect_bulk(CMD(c, "GET", "user:123"), "{\"a\":1}");
    resp_val *t = CMD(c, "TTL", "user:123");
    cr_assert(t->integer > 55 && t->integer <= 60, "TTL %lld", t->integer);
    resp_val_free(t);
    expect_ok(CMD(c, "SET", "flash", "x", "PX", "30"));
    cr_assert(wait_until(({
        resp_val *g = CMD(c, "GET", "flash");
        bool gone = g->type == RESP_T_NULL;
        resp_val_free(g);
        gone;
    }), 5000), "a PX 30 key never expired");
    expect_ok(CMD(c, "SET", "otp:42", "913554", "NX", "EX", "300"));
    expect_null(CMD(c, "SET", "otp:42", "1", "NX", "EX", "300"));
}

Test(kv, queues_and_keys_do_not_mix)
{
    expect_int(CMD(c, "LPUSH", "emails", "{}"), 1);
    expect_error(CMD(c, "GET", "emails"), "WRONGTYPE");
    expect_error(CMD(c, "SET", "emails", "x"), "WRONGTYPE");
    expect_ok(CMD(c, "SET", "s", "v"));
    expect_error(CMD(c, "LPUSH", "s", "{}"), "WRONGTYPE");
    expect_simple(CMD(c, "TYPE", "emails"), "list");
    expect_simple(CMD(c, "TYPE", "s"), "string");
    cr_assert_eq(llen(c, "emails"), 1);
}

Test(kv, exec_applies_all_in_order)
{
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "LPUSH", "{m}q", "{}"), "QUEUED");
    expect_simple(CMD(c, "SET", "{m}:sent", "1", "NX", "EX", "60"), "QUEUED");
    expect_simple(CMD(c, "INCR", "{m}:n"), "QUEUED");
    resp_val *v = CMD(c, "EXEC");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 3, "EXEC: %s", resp_describe(v));
    cr_assert_eq(v->elem[0]->integer, 1);
    cr_assert_eq(v->elem[2]->integer, 1);
    resp_val_free(v);
    cr_assert_eq(llen(c, "{m}q"), 1);
    expect_bulk(CMD(c, "GET", "{m}:sent"), "1");
}

Test(kv, keys_on_two_shards_get_crossslot_and_nothing_applies)
{
    char a[16], b[16];
    two_shards(a, b, sizeof a);
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "LPUSH", a, "{}"), "QUEUED");
    expect_error(CMD(c, "SET", b, "1"), "CROSSSLOT");
    expect_error(CMD(c, "EXEC"), "EXECABORT");
    cr_assert_eq(llen(c, a), 0);
    expect_int(CMD(c, "EXISTS", b), 0);
    expect_error(CMD(c, "MSET", a, "1", b, "2"), "CROSSSLOT");
    expect_int(CMD(c, "EXISTS", a, b), 0);
    /* one command whose own keys span shards aborts the transaction too */
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "LPUSH", a, "{}"), "QUEUED");
    expect_error(CMD(c, "MSET", a, "1", b, "2"), "CROSSSLOT");
    expect_error(CMD(c, "EXEC"), "EXECABORT");
    cr_assert_eq(llen(c, a), 0);
}

Test(kv, unknown_command_aborts_and_nothing_applies)
{
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "LPUSH", "{h}q", "{}"), "QUEUED");
    expect_error(CMD(c, "NOSUCH"), "ERR unknown command");
    expect_error(CMD(c, "EXEC"), "EXECABORT");
    cr_assert_eq(llen(c, "{h}q"), 0);
}

Test(kv, watch_aborts_exec_after_another_client_writes)
{
    cli *other = cli_connect(srv->port);
    expect_ok(CMD(c, "SET", "{w}k", "1"));
    expect_ok(CMD(c, "WATCH", "{w}k"));
    expect_ok(CMD(other, "SET", "{w}k", "2"));
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "SET", "{w}k", "3"), "QUEUED");
    expect_null(CMD(c, "EXEC"));
    expect_bulk(CMD(c, "GET", "{w}k"), "2");
    expect_ok(CMD(c, "WATCH", "{w}q"));
    expect_int(CMD(other, "LPUSH", "{w}q", "{}"), 1); /* a queue counts as written too */
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "SET", "{w}k", "4"), "QUEUED");
    expect_null(CMD(c, "EXEC"));
    expect_ok(CMD(c, "WATCH", "{w}k"));
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "SET", "{w}k", "5"), "QUEUED");
    resp_val *v = CMD(c, "EXEC");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "EXEC: %s", resp_describe(v));
    resp_val_free(v);
    expect_bulk(CMD(c, "GET", "{w}k"), "5");
    cli_close(other);
}

/* The active sweep deletes expired keys nobody reads again (DBSIZE does not
 * touch keys). */
Test(kv, active_expiry_deletes_keys_nobody_reads)
{
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "t%d", i);
        expect_ok(CMD(c, "SET", k, "v", "PX", "50"));
    }
    expect_ok(CMD(c, "SET", "stays", "v"));
    cr_assert(wait_until(({
        resp_val *n = CMD(c, "DBSIZE");
        long long keys = n->integer;
        resp_val_free(n);
        keys == 1;
    }), 5000), "expired keys were not swept");
    cr_assert_geq(info_field(c, "stats", "expired_keys"), 50);
}

/* maxmemory: noeviction refuses writes with -OOM (reads and deletes run);
 * allkeys-lru evicts instead and never refuses. */
Test(kv_memory, maxmemory_noeviction_and_lru, .timeout = 60)
{
    char val[200];
    memset(val, 'x', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    const char *policies[] = { "noeviction", "allkeys-lru" };
    for (int p = 0; p < 2; p++) {
        spoold *s = spoold_start("--shards", "1", "--maxmemory", "64kb", "--maxmemory-policy", policies[p], NULL);
        cli *cl = cli_connect(s->port);
        int oom = 0;
        for (int i = 0; i < 1000; i++) {
            char k[16];
            snprintf(k, sizeof k, "c%d", i);
            resp_val *v = CMD(cl, "SET", k, val);
            if (v->type == RESP_T_ERROR) {
                cr_assert(strncmp(v->str, "OOM", 3) == 0, "SET: %s", v->str);
                oom++;
            }
            resp_val_free(v);
        }
        if (p == 0) {
            cr_assert_gt(oom, 500, "noeviction: only %d of 1000 SETs were refused at 64kb", oom);
            expect_bulk(CMD(cl, "GET", "c0"), val);
            expect_int(CMD(cl, "DEL", "c0"), 1);
            expect_int(CMD(cl, "LPUSH", "jobs", "{}"), 1); /* jobs are not keyspace memory */
        } else {
            cr_assert_eq(oom, 0, "allkeys-lru refused %d SETs", oom);
            cr_assert_gt(info_field(cl, "stats", "evicted_keys"), 500);
            resp_val *n = CMD(cl, "DBSIZE");
            cr_assert_lt(n->integer, 500);
            resp_val_free(n);
        }
        cli_close(cl);
        spoold_stop(s);
    }
}
