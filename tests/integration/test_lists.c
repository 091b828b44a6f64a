/*
 * test_lists.c - the Redis list commands as a job queue, against a real
 * spoold: LPUSH/RPUSH/LPOP/RPOP (with and without count), LLEN, LRANGE,
 * DEL, EXISTS, TYPE, FIFO order, payload validation (BADJSON, TOOBIG,
 * --payload raw) and argument errors.
 *
 * Suite "lists" runs against a default server started by the fixture; the
 * suites for other flags start their own. Payloads are small JSON objects
 * because the default payload mode requires valid JSON.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define JA "{\"job\":\"a\"}"
#define JB "{\"job\":\"b\"}"
#define JC "{\"job\":\"c\"}"
#define JD "{\"job\":\"d\"}"
#define JE "{\"job\":\"e\"}"

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(lists, .init = start_default, .fini = stop_default, .timeout = 60);

/* ============================================================ push / pop */

Test(lists, push_returns_queue_length)
{
    expect_int(CMD(c, "LPUSH", "q", JA), 1);
    expect_int(CMD(c, "LPUSH", "q", JB, JC), 3);
    expect_int(CMD(c, "RPUSH", "q", JD), 4);
    expect_int(CMD(c, "RPUSH", "other", JD, JE), 2);
    cr_assert_eq(llen(c, "q"), 4);
    cr_assert_eq(llen(c, "other"), 2);
}

Test(lists, lpush_rpop_is_fifo)
{
    expect_int(CMD(c, "LPUSH", "q", JA), 1);
    expect_int(CMD(c, "LPUSH", "q", JB), 2);
    expect_int(CMD(c, "LPUSH", "q", JC, JD), 4);
    expect_bulk(CMD(c, "RPOP", "q"), JA);
    expect_bulk(CMD(c, "RPOP", "q"), JB);
    expect_bulk(CMD(c, "RPOP", "q"), JC);
    expect_bulk(CMD(c, "RPOP", "q"), JD);
    expect_null(CMD(c, "RPOP", "q"));
}

Test(lists, rpush_lpop_is_fifo)
{
    expect_int(CMD(c, "RPUSH", "q", JA, JB), 2);
    expect_int(CMD(c, "RPUSH", "q", JC), 3);
    expect_bulk(CMD(c, "LPOP", "q"), JA);
    expect_bulk(CMD(c, "LPOP", "q"), JB);
    expect_bulk(CMD(c, "LPOP", "q"), JC);
    expect_null(CMD(c, "LPOP", "q"));
}

Test(lists, pops_take_from_both_ends)
{
    expect_int(CMD(c, "RPUSH", "q", JA, JB, JC), 3);
    expect_bulk(CMD(c, "LPOP", "q"), JA);
    expect_bulk(CMD(c, "RPOP", "q"), JC);
    expect_bulk(CMD(c, "LPOP", "q"), JB);
    cr_assert_eq(llen(c, "q"), 0);
    expect_int(CMD(c, "EXISTS", "q"), 0);
    expect_simple(CMD(c, "TYPE", "q"), "none");
}

Test(lists, pop_on_missing_queue_is_nil_bulk)
{
    SEND(c, "LPOP", "nothing");
    cli_expect_raw(c, "$-1\r\n");
    SEND(c, "RPOP", "nothing");
    cli_expect_raw(c, "$-1\r\n");
}

Test(lists, pop_with_count)
{
    expect_int(CMD(c, "RPUSH", "q", JA, JB, JC, JD), 4);
    expect_bulks(CMD(c, "LPOP", "q", "2"), JA, JB);
    expect_bulks(CMD(c, "RPOP", "q", "1"), JD);
    expect_bulks(CMD(c, "RPOP", "q", "5"), JC);
    SEND(c, "LPOP", "q", "2");
    cli_expect_raw(c, "*-1\r\n");
    SEND(c, "RPOP", "missing", "3");
    cli_expect_raw(c, "*-1\r\n");
}

Test(lists, pop_count_must_be_a_positive_integer)
{
    expect_int(CMD(c, "RPUSH", "q", JA), 1);
    expect_error(CMD(c, "LPOP", "q", "-1"), "ERR ");
    expect_error(CMD(c, "LPOP", "q", "two"), "ERR ");
    cr_assert_eq(llen(c, "q"), 1);
}

Test(lists, llen_of_missing_queue_is_zero)
{
    cr_assert_eq(llen(c, "never-pushed"), 0);
}

/* ============================================================== LRANGE */

static void push_five(void)
{
    /* LPUSH puts each at the head: the list is e d c b a. */
    expect_int(CMD(c, "LPUSH", "q", JA, JB, JC, JD, JE), 5);
}

Test(lists, lrange_whole_list)
{
    push_five();
    expect_bulks(CMD(c, "LRANGE", "q", "0", "-1"), JE, JD, JC, JB, JA);
}

Test(lists, lrange_positive_indexes)
{
    push_five();
    expect_bulks(CMD(c, "LRANGE", "q", "1", "2"), JD, JC);
    expect_bulks(CMD(c, "LRANGE", "q", "0", "0"), JE);
    expect_bulks(CMD(c, "LRANGE", "q", "3", "100"), JB, JA);
}

Test(lists, lrange_negative_indexes)
{
    push_five();
    expect_bulks(CMD(c, "LRANGE", "q", "-2", "-1"), JB, JA);
    expect_bulks(CMD(c, "LRANGE", "q", "-100", "0"), JE);
    expect_bulks(CMD(c, "LRANGE", "q", "-3", "3"), JC, JB);
}

Test(lists, lrange_empty_ranges)
{
    push_five();
    expect_bulks(CMD(c, "LRANGE", "q", "5", "10"), (const char *)NULL);
    expect_bulks(CMD(c, "LRANGE", "q", "3", "1"), (const char *)NULL);
    expect_bulks(CMD(c, "LRANGE", "q", "-1", "-2"), (const char *)NULL);
    expect_bulks(CMD(c, "LRANGE", "missing", "0", "-1"), (const char *)NULL);
}

Test(lists, lrange_is_read_only)
{
    push_five();
    expect_bulks(CMD(c, "LRANGE", "q", "0", "-1"), JE, JD, JC, JB, JA);
    cr_assert_eq(llen(c, "q"), 5);
    expect_bulk(CMD(c, "RPOP", "q"), JA);
}

Test(lists, lrange_rejects_non_integer_index)
{
    push_five();
    expect_error(CMD(c, "LRANGE", "q", "zero", "-1"), "ERR ");
}

/* ===================================================== DEL / EXISTS / TYPE */

Test(lists, del_exists_type)
{
    expect_int(CMD(c, "RPUSH", "a", JA, JB), 2);
    expect_int(CMD(c, "RPUSH", "b", JC), 1);
    expect_int(CMD(c, "EXISTS", "a", "b", "c"), 2);
    expect_simple(CMD(c, "TYPE", "a"), "list");
    expect_simple(CMD(c, "TYPE", "c"), "none");
    expect_int(CMD(c, "DEL", "a", "c"), 1);
    expect_int(CMD(c, "EXISTS", "a"), 0);
    expect_simple(CMD(c, "TYPE", "a"), "none");
    cr_assert_eq(llen(c, "a"), 0);
    expect_null(CMD(c, "LPOP", "a"));
    expect_int(CMD(c, "EXISTS", "b"), 1);
    expect_int(CMD(c, "DEL", "b"), 1);
    expect_int(CMD(c, "DEL", "b"), 0);
}

Test(lists, queue_usable_after_del)
{
    expect_int(CMD(c, "RPUSH", "q", JA), 1);
    expect_int(CMD(c, "DEL", "q"), 1);
    expect_int(CMD(c, "RPUSH", "q", JB), 1);
    expect_bulk(CMD(c, "LPOP", "q"), JB);
}

/* ============================================================ payloads */

Test(lists, json_payload_round_trips_byte_for_byte)
{
    const char *p = "{\"to\":\"zo\xc3\xab@example.com\",\"esc\":\"\\u00e9\\n\\\"\",\"n\":[1,2.5e3,-0.1,true,null]}";
    expect_int(CMD(c, "RPUSH", "q", p), 1);
    expect_bulks(CMD(c, "LRANGE", "q", "0", "-1"), p);
    expect_bulk(CMD(c, "LPOP", "q"), p);
}

Test(lists, any_json_value_is_a_valid_payload)
{
    const char *ok[] = { "\"text\"", "42", "-1.5e-3", "[1,2,3]", "true", "false", "null",
                         " {\"a\" : [ {} , [] ]} ", "{}" };
    size_t n = sizeof ok / sizeof ok[0];
    for (size_t i = 0; i < n; i++) {
        resp_val *v = CMD(c, "RPUSH", "q", ok[i]);
        cr_assert(v->type == RESP_T_INT && v->integer == (long long)i + 1,
                  "RPUSH of valid JSON '%s': expected :%zu, got %s", ok[i], i + 1, resp_describe(v));
        resp_val_free(v);
    }
    for (size_t i = 0; i < n; i++)
        expect_bulk(CMD(c, "LPOP", "q"), ok[i]);
}

/* Asserts "-BADJSON payload is not valid JSON at byte <at>", possibly
 * followed by more text that does not continue the number. */
static void expect_badjson(resp_val *v, long long at, const char *payload)
{
    char want[96];
    snprintf(want, sizeof want, "BADJSON payload is not valid JSON at byte %lld", at);
    size_t n = strlen(want);
    bool ok = v->type == RESP_T_ERROR && strncmp(v->str, want, n) == 0 &&
              (v->str[n] < '0' || v->str[n] > '9');
    cr_assert(ok, "payload '%s': expected -%s, got %s", payload, want, resp_describe(v));
    resp_val_free(v);
}

/* The same for a push of several elements, where the message may also
 * name the element: "-BADJSON payload ... is not valid JSON at byte <at>". */
static void expect_badjson_multi(resp_val *v, long long at, const char *payload)
{
    char want[64];
    snprintf(want, sizeof want, "is not valid JSON at byte %lld", at);
    const char *hit = v->type == RESP_T_ERROR ? strstr(v->str, want) : NULL;
    size_t n = strlen(want);
    bool ok = hit && strncmp(v->str, "BADJSON payload", 15) == 0 &&
              (hit[n] < '0' || hit[n] > '9');
    cr_assert(ok, "payload '%s' among others: expected -BADJSON payload ... %s, got %s", payload,
              want, resp_describe(v));
    resp_val_free(v);
}

Test(lists, badjson_reports_the_failing_byte)
{
    static const struct { const char *payload; long long at; } cases[] = {
        { "{\"a\":}", 5 },       /* value expected */
        { "{\"a\" 1}", 5 },      /* ':' expected */
        { "{\"a\":1,}", 7 },     /* member name expected */
        { "[1,2,]", 5 },         /* value expected */
        { "{\"a\":1}x", 7 },     /* trailing garbage */
        { "{oops}", 1 },         /* '"' or '}' expected */
        { "]", 0 },
        { "  @", 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_badjson(CMD(c, "LPUSH", "q", cases[i].payload), cases[i].at, cases[i].payload);
        expect_badjson(CMD(c, "RPUSH", "q", cases[i].payload), cases[i].at, cases[i].payload);
    }
    cr_assert_eq(llen(c, "q"), 0);
    expect_int(CMD(c, "EXISTS", "q"), 0);
}

Test(lists, badjson_on_truncated_or_empty_payload)
{
    const char *bad[] = { "{\"a\":1", "", "\"unterminated", "{\"a\":tru}", "nul" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(CMD(c, "RPUSH", "q", bad[i]), "BADJSON payload is not valid JSON at byte ");
    cr_assert_eq(llen(c, "q"), 0);
}

Test(lists, badjson_in_one_element_pushes_none)
{
    expect_int(CMD(c, "RPUSH", "q", JA), 1);
    expect_badjson_multi(CMD(c, "LPUSH", "q", JB, "{\"a\":}", JC), 5, "{\"a\":}");
    expect_badjson_multi(CMD(c, "RPUSH", "q", JB, JC, "[1,2,]"), 5, "[1,2,]");
    expect_badjson_multi(CMD(c, "LPUSH", "fresh", "{\"a\":}", JB), 5, "{\"a\":}");
    cr_assert_eq(llen(c, "q"), 1);
    expect_int(CMD(c, "EXISTS", "fresh"), 0);
    expect_simple(CMD(c, "PING"), "PONG");
    expect_bulks(CMD(c, "LRANGE", "q", "0", "-1"), JA);
    expect_int(CMD(c, "LPUSH", "q", JB), 2);
}

Test(lists, wrong_number_of_arguments)
{
    expect_error(CMD(c, "LPUSH", "q"), "ERR wrong number of arguments for 'lpush' command");
    expect_error(CMD(c, "RPUSH", "q"), "ERR wrong number of arguments for 'rpush' command");
    expect_error(CMD(c, "LPOP"), "ERR wrong number of arguments for 'lpop' command");
    expect_error(CMD(c, "LLEN"), "ERR wrong number of arguments for 'llen' command");
    expect_error(CMD(c, "LLEN", "a", "b"), "ERR wrong number of arguments for 'llen' command");
    expect_error(CMD(c, "LRANGE", "q", "0"), "ERR wrong number of arguments for 'lrange' command");
    expect_error(CMD(c, "BRPOP", "q"), "ERR wrong number of arguments for 'brpop' command");
    expect_error(CMD(c, "DEL"), "ERR wrong number of arguments for 'del' command");
    cr_assert_eq(llen(c, "q"), 0);
    expect_simple(CMD(c, "PING"), "PONG");
}

Test(lists, unknown_command)
{
    expect_error(CMD(c, "FOO", "bar", "baz"), "ERR unknown command");
    expect_error(CMD(c, "LPUSHXYZ", "q", JA), "ERR unknown command");
    expect_simple(CMD(c, "PING"), "PONG");
}

Test(lists, command_names_are_case_insensitive)
{
    expect_int(CMD(c, "lpush", "q", JA), 1);
    expect_int(CMD(c, "RpUsH", "q", JB), 2);
    expect_int(CMD(c, "llen", "q"), 2);
    expect_bulk(CMD(c, "rpop", "q"), JB);
}

/* ======================================================= size limits */

/* A JSON string payload of exactly n bytes: "xxx...". */
static char *json_string_of(size_t n)
{
    char *p = malloc(n + 1);
    cr_assert(p && n >= 2);
    memset(p, 'x', n);
    p[0] = '"';
    p[n - 1] = '"';
    p[n] = 0;
    return p;
}

static void push_sized(cli *cl, const char *key, size_t n, resp_val **out)
{
    char *p = json_string_of(n);
    const char *argv[] = { "RPUSH", key, p };
    size_t len[] = { 5, strlen(key), n };
    *out = cli_cmdv(cl, 3, argv, len);
    free(p);
}

Test(payload_limits, max_payload_boundary, .timeout = 60)
{
    spoold *s = spoold_start("--max-payload", "100", NULL);
    cli *cl = cli_connect(s->port);
    resp_val *v;
    push_sized(cl, "q", 100, &v);
    expect_int(v, 1);
    push_sized(cl, "q", 101, &v);
    expect_error(v, "TOOBIG");
    expect_simple(CMD(cl, "PING"), "PONG");
    cr_assert_eq(llen(cl, "q"), 1);
    char *p = json_string_of(100);
    expect_bulk(CMD(cl, "LPOP", "q"), p);
    free(p);
    cli_close(cl);
    spoold_stop(s);
}

Test(payload_limits, toobig_in_one_element_pushes_none, .timeout = 60)
{
    spoold *s = spoold_start("--max-payload", "64", NULL);
    cli *cl = cli_connect(s->port);
    char *big = json_string_of(65);
    expect_error(CMD(cl, "LPUSH", "q", JA, big, JB), "TOOBIG");
    free(big);
    cr_assert_eq(llen(cl, "q"), 0);
    expect_int(CMD(cl, "LPUSH", "q", JA), 1);
    cli_close(cl);
    spoold_stop(s);
}

Test(payload_limits, default_max_is_one_mebibyte, .timeout = 120)
{
    spoold *s = spoold_start(NULL);
    cli *cl = cli_connect(s->port);
    resp_val *v;
    push_sized(cl, "q", 1048577, &v);
    expect_error(v, "TOOBIG");
    expect_simple(CMD(cl, "PING"), "PONG");
    push_sized(cl, "q", 1048576, &v);
    expect_int(v, 1);
    char *p = json_string_of(1048576);
    v = CMD(cl, "LPOP", "q");
    expect_bulk_n(v, p, 1048576);
    free(p);
    cr_assert_eq(llen(cl, "q"), 0);
    cli_close(cl);
    spoold_stop(s);
}

Test(payload_raw, raw_mode_accepts_any_bytes, .timeout = 60)
{
    spoold *s = spoold_start("--payload", "raw", NULL);
    cli *cl = cli_connect(s->port);
    static const char bin[] = { 'a', 0, '\r', '\n', (char)0xff, '$', '-', '1', 0 };
    const char *argv[] = { "RPUSH", "q", "not json", bin };
    size_t len[] = { 5, 1, 8, sizeof bin };
    expect_int(cli_cmdv(cl, 4, argv, len), 2);
    expect_int(CMD(cl, "RPUSH", "q", ""), 3);
    expect_bulk(CMD(cl, "LPOP", "q"), "not json");
    expect_bulk_n(CMD(cl, "LPOP", "q"), bin, sizeof bin);
    expect_bulk(CMD(cl, "LPOP", "q"), "");
    expect_null(CMD(cl, "LPOP", "q"));
    cli_close(cl);
    spoold_stop(s);
}

Test(payload_raw, json_mode_rejects_non_json, .timeout = 60)
{
    spoold *s = spoold_start("--payload", "json", NULL);
    cli *cl = cli_connect(s->port);
    expect_error(CMD(cl, "RPUSH", "q", "not json"), "BADJSON");
    expect_int(CMD(cl, "RPUSH", "q", JA), 1);
    cli_close(cl);
    spoold_stop(s);
}
