/*
 * test_reliable.c - the JOB.* commands against a real spoold, as
 * docs/protocol.md describes them: JOB.PUSH and its options (DELAY, AT,
 * PRI, RETRIES, LEASE, UNIQUE) and their errors, JOB.RESERVE (TIMEOUT,
 * NOWAIT, COUNT, LEASE; RESP2 and RESP3 shapes; priority and FIFO order;
 * queue order; blocking and wake-up; several shards), receipts and leases
 * (ACK, STALE, NOJOB, a lease that expires under its first worker),
 * JOB.NACK/TOUCH/RETRY/DEL/GET, delays, and arity/number errors.
 *
 * State is observed by polling with a deadline (JOB.GET, INFO clients),
 * never by sleeping for a fixed time.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define JA "{\"job\":\"a\"}"
#define JB "{\"job\":\"b\"}"
#define JC "{\"job\":\"c\"}"
#define JD "{\"job\":\"d\"}"
#define JE "{\"job\":\"e\"}"
#define ABSENCE_MS 200
#define expect_no_reply(w, who) expect_no_reply_for((w), ABSENCE_MS, (who))

static spoold *srv;
static cli *c;

static void start_default(void) { fixture_start(&srv, &c); }
static void stop_default(void) { fixture_stop(&srv, &c); }

TestSuite(reliable, .init = start_default, .fini = stop_default, .timeout = 60);

/* ============================================================ helpers */

typedef struct job {
    char id[48];
    char receipt[64];
    char queue[64];
    char payload[256];
    long long attempt;
    long long lease_ms;
} job;

static bool is_job_id(const char *s)
{
    if (strlen(s) != 16)
        return false;
    for (int i = 0; i < 16; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* A receipt names delivery attempt of job id: "<id>-<attempt>-<token>",
 * the token 8 lowercase hex digits, not all zero. */
static bool receipt_names(const char *receipt, const char *id, long long attempt)
{
    char want[80];
    int n = snprintf(want, sizeof want, "%s-%lld-", id, attempt);
    if (strncmp(receipt, want, (size_t)n) != 0 || strlen(receipt) != (size_t)n + 8)
        return false;
    for (const char *p = receipt + n; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return strcmp(receipt + n, "00000000") != 0;
}

/* One job entry of a JOB.RESERVE reply: exactly the six fields. */
static job parse_job_at(const char *f, int l, const resp_val *e)
{
    if (!(e->type == RESP_T_MAP || e->type == RESP_T_ARRAY) || e->n != 12)
        cr_assert_fail("%s:%d: a reserved job: expected 6 fields (map or flat array of 12), got %s",
                       f, l, resp_describe(e));
    job j;
    snprintf(j.id, sizeof j.id, "%s", field_str_at(f, l, e, "id"));
    snprintf(j.receipt, sizeof j.receipt, "%s", field_str_at(f, l, e, "receipt"));
    snprintf(j.queue, sizeof j.queue, "%s", field_str_at(f, l, e, "queue"));
    snprintf(j.payload, sizeof j.payload, "%s", field_str_at(f, l, e, "payload"));
    j.attempt = field_int_at(f, l, e, "attempt");
    j.lease_ms = field_int_at(f, l, e, "lease_ms");
    if (!is_job_id(j.id))
        cr_assert_fail("%s:%d: reserved job id '%s' is not 16 hex digits", f, l, j.id);
    if (!receipt_names(j.receipt, j.id, j.attempt))
        cr_assert_fail("%s:%d: receipt '%s' for delivery %lld of %s: expected '%s-%lld-' and 8 hex digits", f, l,
                       j.receipt, j.attempt, j.id, j.id, j.attempt);
    return j;
}

/* A JOB.RESERVE reply: -1 for nil, else the number of jobs (copied into
 * out, at most max). Frees v. */
static int jobs_at(const char *f, int l, resp_val *v, job *out, int max)
{
    if (v->type == RESP_T_NULL) {
        resp_val_free(v);
        return -1;
    }
    if (v->type != RESP_T_ARRAY)
        cr_assert_fail("%s:%d: JOB.RESERVE: expected an array of jobs or nil, got %s", f, l,
                       resp_describe(v));
    if ((int)v->n > max)
        cr_assert_fail("%s:%d: JOB.RESERVE: %zu jobs, expected at most %d", f, l, v->n, max);
    int n = (int)v->n;
    for (int i = 0; i < n; i++)
        out[i] = parse_job_at(f, l, v->elem[i]);
    resp_val_free(v);
    return n;
}

#define JOBS(v, out, max) jobs_at(__FILE__, __LINE__, (v), (out), (max))

static job reserve_one_at(const char *f, int l, cli *cl, const char *q)
{
    job j[2];
    int n = jobs_at(f, l, CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q), j, 2);
    if (n != 1)
        cr_assert_fail("%s:%d: JOB.RESERVE NOWAIT FROM %s: expected one job, got %d", f, l, q, n);
    return j[0];
}

#define RESERVE1(cl, q) reserve_one_at(__FILE__, __LINE__, (cl), (q))

/* JOB.GET id: the record (caller frees), asserting its 20 fields. */
static resp_val *get_at(const char *f, int l, cli *cl, const char *id)
{
    resp_val *v = CMD(cl, "JOB.GET", id);
    if (!(v->type == RESP_T_MAP || v->type == RESP_T_ARRAY) || v->n != 40)
        cr_assert_fail("%s:%d: JOB.GET %s: expected 20 fields, got %s", f, l, id, resp_describe(v));
    return v;
}

#define GET(cl, id) get_at(__FILE__, __LINE__, (cl), (id))

static long long job_int(cli *cl, const char *id, const char *name)
{
    resp_val *v = GET(cl, id);
    long long n = field_int(v, name);
    resp_val_free(v);
    return n;
}

static void hello3(cli *cl)
{
    resp_val *v = CMD(cl, "HELLO", "3");
    cr_assert(v->type == RESP_T_MAP, "HELLO 3: got %s", resp_describe(v));
    resp_val_free(v);
}

/* ============================================================ JOB.PUSH */

Test(reliable, push_returns_distinct_16_hex_ids)
{
    jid a = PUSH(c, "q", JA);
    jid b = PUSH(c, "q", JB);
    jid d = PUSH(c, "other", JC);
    cr_assert_str_neq(a.s, b.s);
    cr_assert_str_neq(b.s, d.s);
    cr_assert(strcmp(a.s, b.s) < 0, "ids sort by creation: %s then %s", a.s, b.s);
    EXPECT_STATE(c, a.s, "ready");
    EXPECT_STATE(c, d.s, "ready");
    cr_assert_eq(job_int(c, a.s, "attempt"), 0);
    cr_assert_eq(llen(c, "q"), 2);
    cr_assert_eq(stat_of(c, "q", "pushed"), 2);
    cr_assert_eq(stat_of(c, "q", "ready"), 2);
}

Test(reliable, push_options_are_recorded)
{
    jid id = PUSHO(c, "q", JA, "PRI", "7", "RETRIES", "3", "LEASE", "4000", "UNIQUE", "k1");
    resp_val *v = GET(c, id.s);
    cr_assert_str_eq(field_str(v, "state"), "ready");
    cr_assert_eq(field_int(v, "priority"), 7);
    cr_assert_eq(field_int(v, "retries"), 3);
    cr_assert_eq(field_int(v, "lease_ms"), 4000);
    cr_assert_str_eq(field_str(v, "unique"), "k1");
    resp_val_free(v);
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.id, id.s);
    cr_assert_eq(j.lease_ms, 4000, "job LEASE 4000 reserved without LEASE: lease_ms %lld", j.lease_ms);
}

Test(reliable, push_priority_bounds_accepted)
{
    jid hi = PUSHO(c, "q", JA, "PRI", "1000");
    jid lo = PUSHO(c, "q", JB, "PRI", "-1000");
    cr_assert_eq(job_int(c, hi.s, "priority"), 1000);
    cr_assert_eq(job_int(c, lo.s, "priority"), -1000);
    jid r0 = PUSHO(c, "q", JC, "RETRIES", "0");
    jid rmax = PUSHO(c, "q", JD, "RETRIES", "1000");
    cr_assert_eq(job_int(c, r0.s, "retries"), 0);
    cr_assert_eq(job_int(c, rmax.s, "retries"), 1000);
}

Test(reliable, push_bad_option_values_name_the_option)
{
    static const struct { const char *opt, *val; } bad[] = {
        { "DELAY", "-1" }, { "DELAY", "abc" }, { "DELAY", "1.5" }, { "AT", "soon" },
        { "AT", "-5" }, { "PRI", "1001" }, { "PRI", "-1001" }, { "PRI", "x" },
        { "RETRIES", "-1" }, { "RETRIES", "1001" }, { "RETRIES", "many" },
        { "LEASE", "abc" }, { "LEASE", "-100" }, { "DELAY", "" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp_val *v = CMD(c, "JOB.PUSH", "q", JA, bad[i].opt, bad[i].val);
        bool ok = v->type == RESP_T_ERROR && strncmp(v->str, "ERR ", 4) == 0 &&
                  strstr(v->str, bad[i].opt);
        cr_assert(ok, "JOB.PUSH q … %s '%s': expected -ERR naming %s, got %s", bad[i].opt,
                  bad[i].val, bad[i].opt, resp_describe(v));
        resp_val_free(v);
    }
    cr_assert_eq(stat_of(c, "q", "pushed"), 0, "a refused push stored a job");
    cr_assert_eq(llen(c, "q"), 0);
}

Test(reliable, push_unknown_option_and_missing_value)
{
    expect_error_has(CMD(c, "JOB.PUSH", "q", JA, "FOO", "1"), "ERR ", "FOO");
    expect_error_has(CMD(c, "JOB.PUSH", "q", JA, "PRI", "1", "BOGUS"), "ERR ", "BOGUS");
    expect_error_has(CMD(c, "JOB.PUSH", "q", JA, "DELAY"), "ERR ", "DELAY");
    expect_error_has(CMD(c, "JOB.PUSH", "q", JA, "UNIQUE"), "ERR ", "UNIQUE");
    expect_error_has(CMD(c, "JOB.PUSH", "q", JA, "PRI", "3", "LEASE"), "ERR ", "LEASE");
    cr_assert_eq(llen(c, "q"), 0);
    /* Options are case-insensitive, as Redis options are. */
    jid id = PUSHO(c, "q", JA, "pri", "4");
    cr_assert_eq(job_int(c, id.s, "priority"), 4);
}

Test(reliable, push_badjson_and_toobig_as_for_lpush)
{
    expect_error_has(CMD(c, "JOB.PUSH", "q", "xyz"), "BADJSON ", "at byte 0");
    expect_error_has(CMD(c, "JOB.PUSH", "q", "not json"), "BADJSON ", "at byte 1");
    expect_error_has(CMD(c, "LPUSH", "q", "not json"), "BADJSON ", "at byte 1");
    expect_error_has(CMD(c, "JOB.PUSH", "q", "{\"a\":}"), "BADJSON ", "at byte 5");
    expect_error_has(CMD(c, "JOB.PUSH", "q", "[1,2"), "BADJSON ", "at byte 4");
    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n + 1);
    cr_assert(big);
    big[0] = '"';
    memset(big + 1, 'x', n - 2);
    big[n - 1] = '"';
    big[n] = 0;
    const char *argv[] = { "JOB.PUSH", "q", big };
    resp_val *v = cli_cmdv(c, 3, argv, NULL);
    cr_assert(v->type == RESP_T_ERROR && strncmp(v->str, "TOOBIG ", 7) == 0 &&
                  strstr(v->str, "1048577") && strstr(v->str, "1048576"),
              "JOB.PUSH of 1048577 bytes: expected -TOOBIG naming size and limit, got %s",
              resp_describe(v));
    resp_val_free(v);
    /* Exactly at the limit is fine. */
    big[n - 2] = '"';
    big[n - 1] = 0;
    const char *argv2[] = { "JOB.PUSH", "q", big };
    v = cli_cmdv(c, 3, argv2, NULL);
    cr_assert(v->type == RESP_T_BULK && is_job_id(v->str), "JOB.PUSH of 1048576 bytes: got %s",
              resp_describe(v));
    resp_val_free(v);
    free(big);
    cr_assert_eq(stat_of(c, "q", "pushed"), 1);
}

Test(reliable, push_raw_payload_when_queue_configured)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "rawq", "SET", "payload", "raw"));
    jid id = PUSH(c, "rawq", "not json at all");
    job j = RESERVE1(c, "rawq");
    cr_assert_str_eq(j.id, id.s);
    cr_assert_str_eq(j.payload, "not json at all");
    expect_error(CMD(c, "JOB.PUSH", "jsonq", "not json"), "BADJSON ");
}

Test(reliable, unique_key_of_1_to_1024_bytes_without_nul)
{
    char key[1026];
    memset(key, 'k', sizeof key - 1);
    key[1025] = 0;
    expect_error(CMD(c, "JOB.PUSH", "q", JA, "UNIQUE", key), "ERR JOB.PUSH UNIQUE: bad value");
    key[1024] = 0;
    jid a = PUSHO(c, "q", JA, "UNIQUE", key);
    jid b = PUSHO(c, "q", JB, "UNIQUE", key);
    cr_assert_str_eq(a.s, b.s, "a 1024-byte key: the second push made another job");
    expect_error(CMD(c, "JOB.PUSH", "q", JA, "UNIQUE", ""), "ERR JOB.PUSH UNIQUE: bad value");
    const char *argv[] = { "JOB.PUSH", "q", JA, "UNIQUE", "a\0b" };
    size_t len[] = { 8, 1, strlen(JA), 6, 3 };
    resp_val *v = cli_cmdv(c, 5, argv, len);
    cr_assert(v->type == RESP_T_ERROR && strstr(v->str, "without NUL bytes"), "UNIQUE with a NUL byte: %s",
              resp_describe(v));
    resp_val_free(v);
    cr_assert_eq(stat_of(c, "q", "ready"), 1, "a refused push stored a job");
}

Test(reliable, unique_returns_existing_id_until_finished)
{
    jid a = PUSHO(c, "q", JA, "UNIQUE", "welcome");
    jid again = PUSHO(c, "q", JB, "UNIQUE", "welcome");
    cr_assert_str_eq(again.s, a.s, "UNIQUE while ready: new id %s, expected %s", again.s, a.s);
    cr_assert_eq(stat_of(c, "q", "ready"), 1, "a duplicate UNIQUE push stored a job");
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.payload, JA, "the duplicate push replaced the payload");
    jid while_reserved = PUSHO(c, "q", JC, "UNIQUE", "welcome");
    cr_assert_str_eq(while_reserved.s, a.s, "UNIQUE while reserved: %s, expected %s",
                     while_reserved.s, a.s);
    EXPECT_NOTHING(c, "q");
    /* Another key, another queue: independent. */
    jid other_key = PUSHO(c, "q", JC, "UNIQUE", "other");
    cr_assert_str_neq(other_key.s, a.s);
    jid other_queue = PUSHO(c, "q2", JC, "UNIQUE", "welcome");
    cr_assert_str_neq(other_queue.s, a.s);
    expect_int(CMD(c, "JOB.ACK", j.receipt), 1);
    jid after = PUSHO(c, "q", JD, "UNIQUE", "welcome");
    cr_assert_str_neq(after.s, a.s, "UNIQUE after ack returned the finished job's id");
    EXPECT_STATE(c, after.s, "ready");
}

Test(reliable, unique_while_delayed_and_released_when_dead)
{
    jid a = PUSHO(c, "q", JA, "UNIQUE", "u", "DELAY", "60000");
    EXPECT_STATE(c, a.s, "delayed");
    jid b = PUSHO(c, "q", JB, "UNIQUE", "u");
    cr_assert_str_eq(b.s, a.s, "UNIQUE while delayed: %s, expected %s", b.s, a.s);
    expect_ok(CMD(c, "JOB.RETRY", a.s));
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.id, a.s);
    expect_word(CMD(c, "JOB.NACK", j.receipt, "DEAD"), "dead");
    EXPECT_STATE(c, a.s, "dead");
    jid d = PUSHO(c, "q", JC, "UNIQUE", "u");
    cr_assert_str_neq(d.s, a.s, "UNIQUE after the job went dead returned the dead job's id");
}

/* ========================================================= JOB.RESERVE */

static void check_reserve_shape(cli *cl, int proto)
{
    jid id = PUSH(cl, "q", JA);
    resp_val *v = CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", "q");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "JOB.RESERVE: got %s", resp_describe(v));
    resp_val *e = v->elem[0];
    resp_type want = proto == 3 ? RESP_T_MAP : RESP_T_ARRAY;
    cr_assert(e->type == want && e->n == 12, "RESP%d job entry: expected %s of 12, got %s", proto,
              resp_type_name(want), resp_describe(e));
    static const char *names[] = { "id", "receipt", "queue", "payload", "attempt", "lease_ms" };
    for (size_t i = 0; i < 6; i++) {
        const resp_val *k = e->elem[2 * i];
        cr_assert(k->type == RESP_T_BULK || k->type == RESP_T_SIMPLE, "key %zu: %s", i,
                  resp_describe(k));
        bool known = false;
        for (size_t n = 0; n < 6; n++)
            known = known || strcmp(k->str, names[n]) == 0;
        cr_assert(known, "unexpected field '%s'", k->str);
    }
    cr_assert_str_eq(field_str(e, "id"), id.s);
    cr_assert(receipt_names(field_str(e, "receipt"), id.s, 1), "receipt %s", field_str(e, "receipt"));
    cr_assert_str_eq(field_str(e, "queue"), "q");
    cr_assert_str_eq(field_str(e, "payload"), JA);
    cr_assert_eq(field_int(e, "attempt"), 1);
    cr_assert_eq(field_int(e, "lease_ms"), 30000, "default lease_ms: %lld", field_int(e, "lease_ms"));
    resp_val_free(v);
}

Test(reliable, reserve_resp2_flat_field_arrays)
{
    check_reserve_shape(c, 2);
}

Test(reliable, reserve_resp3_maps)
{
    hello3(c);
    check_reserve_shape(c, 3);
}

Test(reliable, reserve_timeout_gives_nil_array_resp2)
{
    long long t0 = now_ms();
    SEND(c, "JOB.RESERVE", "TIMEOUT", "300", "FROM", "empty");
    cli_expect_raw(c, "*-1\r\n");
    long long took = now_ms() - t0;
    cr_assert(took >= 250 && took < 3000, "TIMEOUT 300 answered after %lld ms", took);
}

Test(reliable, reserve_timeout_gives_null_resp3)
{
    hello3(c);
    long long t0 = now_ms();
    SEND(c, "JOB.RESERVE", "TIMEOUT", "300", "FROM", "empty");
    cli_expect_raw(c, "_\r\n");
    long long took = now_ms() - t0;
    cr_assert(took >= 250 && took < 3000, "TIMEOUT 300 answered after %lld ms", took);
}

Test(reliable, reserve_nowait_returns_at_once)
{
    long long t0 = now_ms();
    SEND(c, "JOB.RESERVE", "NOWAIT", "FROM", "empty", "empty2");
    cli_expect_raw(c, "*-1\r\n");
    long long took = now_ms() - t0;
    cr_assert(took < 1000, "NOWAIT on empty queues took %lld ms", took);
    /* NOWAIT wins over a TIMEOUT given with it. */
    t0 = now_ms();
    SEND(c, "JOB.RESERVE", "TIMEOUT", "5000", "NOWAIT", "FROM", "empty");
    cli_expect_raw(c, "*-1\r\n");
    took = now_ms() - t0;
    cr_assert(took < 1000, "NOWAIT with TIMEOUT 5000 took %lld ms", took);
}

Test(reliable, reserve_count_returns_up_to_n)
{
    const char *payloads[] = { JA, JB, JC, JD, JE };
    for (int i = 0; i < 5; i++)
        PUSH(c, "q", payloads[i]);
    job j[10];
    int n = JOBS(CMD(c, "JOB.RESERVE", "COUNT", "3", "NOWAIT", "FROM", "q"), j, 10);
    cr_assert_eq(n, 3, "COUNT 3 of 5: got %d", n);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(j[i].payload, payloads[i], "job %d: %s", i, j[i].payload);
    n = JOBS(CMD(c, "JOB.RESERVE", "COUNT", "10", "NOWAIT", "FROM", "q"), j, 10);
    cr_assert_eq(n, 2, "COUNT 10 of 2: got %d", n);
    cr_assert_str_eq(j[0].payload, JD);
    cr_assert_str_eq(j[1].payload, JE);
    cr_assert_eq(stat_of(c, "q", "reserved"), 5);
    cr_assert_eq(stat_of(c, "q", "ready"), 0);
}

Test(reliable, reserve_lease_sets_lease_ms_and_lease_until)
{
    jid id = PUSH(c, "q", JA);
    long long before = wall_ms();
    resp_val *v = CMD(c, "JOB.RESERVE", "LEASE", "1234", "NOWAIT", "FROM", "q");
    long long after = wall_ms();
    job j[1];
    cr_assert_eq(JOBS(v, j, 1), 1);
    cr_assert_eq(j[0].lease_ms, 1234);
    long long until = job_int(c, id.s, "lease_until");
    cr_assert(until >= before + 1234 - 2 && until <= after + 1234 + 2,
              "lease_until %lld not within [%lld, %lld]", until, before + 1234, after + 1234);
    /* The queue's configured lease is the default. */
    expect_ok(CMD(c, "QUEUE.CONFIG", "q7", "SET", "lease", "7000"));
    PUSH(c, "q7", JB);
    job k = RESERVE1(c, "q7");
    cr_assert_eq(k.lease_ms, 7000, "queue lease 7000: lease_ms %lld", k.lease_ms);
    /* RESERVE LEASE wins over the job's LEASE. */
    PUSHO(c, "q", JC, "LEASE", "4000");
    v = CMD(c, "JOB.RESERVE", "LEASE", "900", "NOWAIT", "FROM", "q");
    cr_assert_eq(JOBS(v, j, 1), 1);
    cr_assert_eq(j[0].lease_ms, 900);
}

Test(reliable, higher_priority_first_fifo_within_priority)
{
    PUSHO(c, "q", JA, "PRI", "0");
    PUSHO(c, "q", JB, "PRI", "5");
    PUSHO(c, "q", JC, "PRI", "0");
    PUSHO(c, "q", JD, "PRI", "5");
    PUSHO(c, "q", JE, "PRI", "-3");
    expect_int(CMD(c, "LPUSH", "q", "{\"job\":\"f\"}"), 6); /* priority 0, after c */
    const char *want[] = { JB, JD, JA, JC, "{\"job\":\"f\"}", JE };
    for (int i = 0; i < 6; i++) {
        job j = RESERVE1(c, "q");
        cr_assert_str_eq(j.payload, want[i], "reserve %d: got %s, expected %s", i, j.payload,
                         want[i]);
    }
    EXPECT_NOTHING(c, "q");
}

Test(reliable, priority_order_within_one_count_reserve)
{
    PUSHO(c, "q", JA, "PRI", "1");
    PUSHO(c, "q", JB, "PRI", "9");
    PUSHO(c, "q", JC, "PRI", "1");
    job j[5];
    cr_assert_eq(JOBS(CMD(c, "JOB.RESERVE", "COUNT", "5", "NOWAIT", "FROM", "q"), j, 5), 3);
    cr_assert_str_eq(j[0].payload, JB);
    cr_assert_str_eq(j[1].payload, JA);
    cr_assert_str_eq(j[2].payload, JC);
}

Test(reliable, queues_served_in_argument_order)
{
    PUSH(c, "q2", JB);
    PUSH(c, "q1", JA);
    PUSH(c, "q3", JC);
    job j[3];
    cr_assert_eq(JOBS(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "q1", "q2", "q3"), j, 3), 1);
    cr_assert_str_eq(j[0].queue, "q1");
    cr_assert_str_eq(j[0].payload, JA);
    cr_assert_eq(JOBS(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "q3", "q2", "q1"), j, 3), 1);
    cr_assert_str_eq(j[0].queue, "q3");
    cr_assert_eq(JOBS(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "empty", "q1", "q2"), j, 3), 1);
    cr_assert_str_eq(j[0].queue, "q2");
    cr_assert_str_eq(j[0].payload, JB);
    EXPECT_NOTHING(c, "q2");
}

/* COUNT takes from the first queue that has jobs only (docs/protocol.md). */
static void count_takes_from_one_queue(cli *cl)
{
    PUSH(cl, "q1", JA);
    PUSH(cl, "q2", JB);
    PUSH(cl, "q2", JC);
    job j[3];
    int n = JOBS(CMD(cl, "JOB.RESERVE", "COUNT", "3", "NOWAIT", "FROM", "q1", "q2"), j, 3);
    cr_assert_eq(n, 1, "COUNT 3 over q1 (1 job) and q2 (2 jobs): got %d jobs, expected q1's one", n);
    cr_assert_str_eq(j[0].queue, "q1", "first job from %s, expected q1", j[0].queue);
    cr_assert_eq(stat_of(cl, "q2", "ready"), 2, "q2 was topped up from");
    n = JOBS(CMD(cl, "JOB.RESERVE", "COUNT", "3", "NOWAIT", "FROM", "q1", "q2"), j, 3);
    cr_assert_eq(n, 2, "then q2's two: got %d", n);
    cr_assert_str_eq(j[0].queue, "q2");
    cr_assert_str_eq(j[1].queue, "q2");
}

Test(reliable, count_over_several_queues_keeps_argument_order)
{
    count_takes_from_one_queue(c);
    /* the same with both queues on one shard */
    spoold *one = spoold_start("--shards", "1", NULL);
    cli *cl = cli_connect(one->port);
    count_takes_from_one_queue(cl);
    cli_close(cl);
    spoold_stop(one);
}

Test(reliable, blocked_reserve_woken_by_job_push_from_another_client)
{
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    wait_blocked_clients(c, 1, 10000);
    expect_no_reply(w, "JOB.RESERVE on an empty queue");
    jid id = PUSH(c, "q", JA);
    job j[1];
    cr_assert_eq(JOBS(cli_read(w), j, 1), 1);
    cr_assert_str_eq(j[0].id, id.s);
    cr_assert_str_eq(j[0].payload, JA);
    cr_assert_eq(j[0].attempt, 1);
    EXPECT_STATE(c, id.s, "reserved");
    wait_blocked_clients(c, 0, 10000);
    expect_int(CMD(w, "JOB.ACK", j[0].receipt), 1);
    cli_close(w);
}

Test(reliable, blocked_reserve_without_timeout_woken_by_lpush)
{
    cli *w = cli_connect(srv->port);
    SEND(w, "JOB.RESERVE", "FROM", "other", "q");
    wait_blocked_clients(c, 1, 10000);
    expect_no_reply(w, "JOB.RESERVE without TIMEOUT");
    resp_val *v = CMD(c, "LPUSH", "q", JB);
    cr_assert(v->type == RESP_T_INT && (v->integer == 0 || v->integer == 1), "LPUSH: %s",
              resp_describe(v));
    resp_val_free(v);
    job j[1];
    cr_assert_eq(JOBS(cli_read(w), j, 1), 1);
    cr_assert_str_eq(j[0].queue, "q");
    cr_assert_str_eq(j[0].payload, JB);
    EXPECT_STATE(c, j[0].id, "reserved");
    cr_assert_eq(llen(c, "q"), 0);
    cli_close(w);
}

Test(reliable, waiters_served_first_come_first_served)
{
    cli *w1 = cli_connect(srv->port);
    cli *w2 = cli_connect(srv->port);
    SEND(w1, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    wait_blocked_clients(c, 1, 10000);
    SEND(w2, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    wait_blocked_clients(c, 2, 10000);
    PUSH(c, "q", JA);
    job j[1];
    cr_assert_eq(JOBS(cli_read(w1), j, 1), 1);
    cr_assert_str_eq(j[0].payload, JA);
    expect_no_reply(w2, "second waiter after one push");
    PUSH(c, "q", JB);
    cr_assert_eq(JOBS(cli_read(w2), j, 1), 1);
    cr_assert_str_eq(j[0].payload, JB);
    cli_close(w1);
    cli_close(w2);
}

Test(reliable, brpop_and_rpop_take_job_push_jobs)
{
    jid a = PUSHO(c, "q", JA, "PRI", "0");
    jid b = PUSHO(c, "q", JB, "PRI", "9");
    /* Serving order from the right: the rightmost is next. */
    expect_bulks(CMD(c, "LRANGE", "q", "0", "-1"), JA, JB);
    expect_pop(CMD(c, "BRPOP", "q", "1"), "q", JB);
    EXPECT_STATE(c, b.s, "done");
    expect_bulk(CMD(c, "RPOP", "q"), JA);
    EXPECT_STATE(c, a.s, "done");
    /* A BRPOP waiter is woken by JOB.PUSH. */
    cli *w = cli_connect(srv->port);
    SEND(w, "BRPOP", "q", "10");
    wait_blocked_clients(c, 1, 10000);
    jid d = PUSH(c, "q", JC);
    expect_pop(cli_read(w), "q", JC);
    EXPECT_STATE(c, d.s, "done");
    cli_close(w);
}

Test(reliable, reserve_argument_errors)
{
    expect_error(CMD(c, "JOB.RESERVE", "q"), "ERR ");
    expect_error(CMD(c, "JOB.RESERVE", "NOWAIT", "q"), "ERR ");
    expect_error(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM"), "ERR ");
    expect_error_has(CMD(c, "JOB.RESERVE", "TIMEOUT", "-1", "FROM", "q"), "ERR ", "TIMEOUT");
    expect_error_has(CMD(c, "JOB.RESERVE", "TIMEOUT", "soon", "FROM", "q"), "ERR ", "TIMEOUT");
    expect_error_has(CMD(c, "JOB.RESERVE", "COUNT", "0", "FROM", "q"), "ERR ", "COUNT");
    expect_error_has(CMD(c, "JOB.RESERVE", "COUNT", "x", "FROM", "q"), "ERR ", "COUNT");
    expect_error_has(CMD(c, "JOB.RESERVE", "LEASE", "abc", "FROM", "q"), "ERR ", "LEASE");
    expect_error_has(CMD(c, "JOB.RESERVE", "LEASE", "0", "FROM", "q"), "ERR ", "LEASE");
    expect_error_has(CMD(c, "JOB.RESERVE", "WAIT", "FROM", "q"), "ERR ", "WAIT");
    expect_error_has(CMD(c, "JOB.RESERVE", "TIMEOUT", "FROM", "q"), "ERR ", "TIMEOUT");
    /* The connection still works and nothing was reserved. */
    PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.payload, JA);
}

/* ============================================================ receipts */

Test(reliable, ack_receipt_marks_job_done)
{
    jid id = PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.id, id.s);
    EXPECT_STATE(c, id.s, "reserved");
    expect_int(CMD(c, "JOB.ACK", j.receipt), 1);
    EXPECT_STATE(c, id.s, "done");
    cr_assert_eq(stat_of(c, "q", "acked"), 1);
    cr_assert_eq(stat_of(c, "q", "done"), 1);
    cr_assert_eq(stat_of(c, "q", "reserved"), 0);
}

Test(reliable, second_ack_of_a_receipt_is_stale)
{
    PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    expect_int(CMD(c, "JOB.ACK", j.receipt), 1);
    expect_error_has(CMD(c, "JOB.ACK", j.receipt), "STALE ", "not reserved");
    expect_error(CMD(c, "JOB.ACK", j.id), "STALE ");
    EXPECT_STATE(c, j.id, "done");
    cr_assert_eq(stat_of(c, "q", "acked"), 1);
}

Test(reliable, ack_unknown_and_garbage)
{
    expect_error_has(CMD(c, "JOB.ACK", "0000000000000001"), "NOJOB ", "0000000000000001");
    expect_error(CMD(c, "JOB.ACK", "0000000000000001-1"), "NOJOB ");
    expect_error_has(CMD(c, "JOB.ACK", "garbage"), "ERR ", "not a job id or receipt");
    expect_error_has(CMD(c, "JOB.ACK", "0123"), "ERR ", "not a job id or receipt");
    expect_error_has(CMD(c, "JOB.ACK", "0000000000000001-x"), "ERR ", "not a job id or receipt");
    expect_error_has(CMD(c, "JOB.NACK", "garbage"), "ERR ", "not a job id or receipt");
    expect_error_has(CMD(c, "JOB.TOUCH", "garbage"), "ERR ", "not a job id or receipt");
}

Test(reliable, ack_of_a_ready_job_is_refused)
{
    jid id = PUSH(c, "q", JA);
    expect_error(CMD(c, "JOB.ACK", id.s), "STALE ");
    EXPECT_STATE(c, id.s, "ready");
}

Test(reliable, multi_receipt_ack_returns_the_count)
{
    for (int i = 0; i < 4; i++)
        PUSH(c, "q", JA);
    job j[4];
    cr_assert_eq(JOBS(CMD(c, "JOB.RESERVE", "COUNT", "4", "NOWAIT", "FROM", "q"), j, 4), 4);
    expect_int(CMD(c, "JOB.ACK", j[0].receipt, j[1].receipt, j[2].receipt), 3);
    /* Refused ones (stale, unknown) are not counted and are not errors. */
    expect_int(CMD(c, "JOB.ACK", j[0].receipt, j[3].receipt, "0000000000000001-1"), 1);
    for (int i = 0; i < 4; i++)
        EXPECT_STATE(c, j[i].id, "done");
    expect_int(CMD(c, "JOB.ACK", j[0].receipt, j[1].receipt), 0);
    cr_assert_eq(stat_of(c, "q", "acked"), 4);
}

Test(reliable, ack_by_bare_id_acts_on_current_delivery)
{
    jid id = PUSH(c, "q", JA);
    RESERVE1(c, "q");
    expect_int(CMD(c, "JOB.ACK", id.s), 1);
    EXPECT_STATE(c, id.s, "done");
}

/* THE lease test: the lease expires while worker A still holds the job;
 * worker B gets delivery 2; A's ack is refused, B's counts. */
Test(reliable, expired_lease_redelivers_and_first_workers_ack_is_stale)
{
    expect_ok(CMD(c, "QUEUE.CONFIG", "q", "SET", "backoff", "0"));
    jid id = PUSHO(c, "q", JA, "LEASE", "300");
    cli *a = cli_connect(srv->port);
    cli *b = cli_connect(srv->port);
    long long t0 = now_ms();
    job ja = RESERVE1(a, "q");
    cr_assert_str_eq(ja.id, id.s);
    cr_assert_eq(ja.attempt, 1);
    cr_assert_eq(ja.lease_ms, 300);
    EXPECT_STATE(c, id.s, "reserved");
    /* B polls until the job is delivered again. */
    job jb = { 0 };
    bool got = false;
    long long deadline = now_ms() + 10000;
    for (int i = 0; i < 2000 && now_ms() < deadline && !got; i++) {
        job j[1];
        int n = JOBS(CMD(b, "JOB.RESERVE", "NOWAIT", "FROM", "q"), j, 1);
        if (n == 1) {
            jb = j[0];
            got = true;
        } else {
            sleep_ms(10);
        }
    }
    long long took = now_ms() - t0;
    cr_assert(got, "the job was not delivered again within 10 s of its 300 ms lease");
    cr_assert(took >= 250, "redelivered %lld ms after a 300 ms lease began", took);
    cr_assert_str_eq(jb.id, id.s);
    cr_assert_eq(jb.attempt, 2, "second delivery: attempt %lld", jb.attempt);
    cr_assert_str_neq(jb.receipt, ja.receipt);
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "state"), "reserved");
    cr_assert_eq(field_int(g, "attempt"), 2);
    resp_val_free(g);
    /* A's receipt is stale for every receipt command. */
    expect_error_has(CMD(a, "JOB.ACK", ja.receipt), "STALE ", ja.receipt);
    expect_error(CMD(a, "JOB.NACK", ja.receipt), "STALE ");
    expect_error(CMD(a, "JOB.TOUCH", ja.receipt), "STALE ");
    EXPECT_STATE(c, id.s, "reserved");
    expect_int(CMD(b, "JOB.ACK", jb.receipt), 1);
    EXPECT_STATE(c, id.s, "done");
    expect_error(CMD(a, "JOB.ACK", ja.receipt), "STALE ");
    cr_assert_eq(stat_of(c, "q", "lease_expired"), 1);
    cr_assert_eq(stat_of(c, "q", "acked"), 1);
    cr_assert_eq(stat_of(c, "q", "done"), 1);
    cli_close(a);
    cli_close(b);
}

Test(reliable, lease_expiry_on_last_attempt_goes_dead)
{
    jid id = PUSHO(c, "q", JA, "LEASE", "200", "RETRIES", "0");
    RESERVE1(c, "q");
    bool dead = wait_until(strcmp(state_of(c, id.s), "dead") == 0, 10000);
    cr_assert(dead, "a 200 ms lease on the last attempt: state %s after 10 s", state_of(c, id.s));
    cr_assert_eq(stat_of(c, "q", "lease_expired"), 1);
    cr_assert_eq(stat_of(c, "q", "buried"), 1);
    cr_assert_eq(stat_of(c, "q", "dead"), 1);
}

/* ================================================= NACK, TOUCH, RETRY */

Test(reliable, nack_schedules_a_retry_with_backoff)
{
    jid id = PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    long long before = wall_ms();
    expect_word(CMD(c, "JOB.NACK", j.receipt), "retry");
    long long after = wall_ms();
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "state"), "delayed");
    cr_assert_eq(field_int(g, "attempt"), 1);
    long long run_at = field_int(g, "run_at");
    /* First retry: backoff 15000 ms ± 20 %. */
    cr_assert(run_at >= before + 12000 - 2 && run_at <= after + 18000 + 2,
              "run_at %lld ms after the nack, expected 12000..18000", run_at - before);
    cr_assert_eq(field_int(g, "lease_until"), 0);
    resp_val_free(g);
    EXPECT_NOTHING(c, "q");
    cr_assert_eq(stat_of(c, "q", "retried"), 1);
    cr_assert_eq(stat_of(c, "q", "delayed"), 1);
}

Test(reliable, nack_delay_0_is_ready_at_once)
{
    jid id = PUSH(c, "q", JA);
    job j1 = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j1.receipt, "DELAY", "0"), "retry");
    bool ready = wait_until(strcmp(state_of(c, id.s), "ready") == 0, 2000);
    cr_assert(ready, "NACK DELAY 0: state %s", state_of(c, id.s));
    job j2 = RESERVE1(c, "q");
    cr_assert_str_eq(j2.id, id.s);
    cr_assert_eq(j2.attempt, 2);
    cr_assert(receipt_names(j2.receipt, id.s, 2), "receipt %s", j2.receipt);
    cr_assert_str_neq(j1.receipt + 19, j2.receipt + 19, "a new delivery gets a new token");
    expect_error(CMD(c, "JOB.ACK", j1.receipt), "STALE ");
    expect_int(CMD(c, "JOB.ACK", j2.receipt), 1);
}

Test(reliable, nack_delay_sets_run_at)
{
    jid id = PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    long long before = wall_ms();
    expect_word(CMD(c, "JOB.NACK", j.receipt, "DELAY", "5000"), "retry");
    long long after = wall_ms();
    long long run_at = job_int(c, id.s, "run_at");
    cr_assert(run_at >= before + 5000 - 2 && run_at <= after + 5000 + 2,
              "NACK DELAY 5000: run_at is %lld ms after the nack", run_at - before);
}

Test(reliable, nack_error_is_kept_as_last_error)
{
    jid id = PUSH(c, "q", JA);
    job j = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j.receipt, "ERROR", "smtp 451 try later", "DELAY", "0"),
                "retry");
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "last_error"), "smtp 451 try later");
    resp_val_free(g);
    /* It stays through the next delivery, and is replaced by a new one. */
    bool ready = wait_until(strcmp(state_of(c, id.s), "ready") == 0, 2000);
    cr_assert(ready);
    job j2 = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j2.receipt, "DELAY", "0", "ERROR", "second"), "retry");
    g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "last_error"), "second");
    resp_val_free(g);
}

Test(reliable, nack_after_last_attempt_is_dead)
{
    jid id = PUSHO(c, "q", JA, "RETRIES", "1");
    job j1 = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j1.receipt, "DELAY", "0", "ERROR", "first"), "retry");
    bool ready = wait_until(strcmp(state_of(c, id.s), "ready") == 0, 2000);
    cr_assert(ready, "state %s", state_of(c, id.s));
    job j2 = RESERVE1(c, "q");
    cr_assert_eq(j2.attempt, 2);
    expect_word(CMD(c, "JOB.NACK", j2.receipt, "ERROR", "final"), "dead");
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "state"), "dead");
    cr_assert_str_eq(field_str(g, "last_error"), "final");
    cr_assert_eq(field_int(g, "attempt"), 2);
    resp_val_free(g);
    EXPECT_NOTHING(c, "q");
    cr_assert_eq(stat_of(c, "q", "dead"), 1);
    cr_assert_eq(stat_of(c, "q", "buried"), 1);
    cr_assert_eq(stat_of(c, "q", "retried"), 1);
    /* RETRIES 0: the first failure is final. */
    jid once = PUSHO(c, "q", JB, "RETRIES", "0");
    job j3 = RESERVE1(c, "q");
    cr_assert_str_eq(j3.id, once.s);
    expect_word(CMD(c, "JOB.NACK", j3.receipt), "dead");
    EXPECT_STATE(c, once.s, "dead");
}

Test(reliable, nack_dead_buries_at_once)
{
    jid id = PUSHO(c, "q", JA, "RETRIES", "10");
    job j = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j.receipt, "DEAD", "ERROR", "poison"), "dead");
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "state"), "dead");
    cr_assert_str_eq(field_str(g, "last_error"), "poison");
    resp_val_free(g);
    cr_assert_eq(stat_of(c, "q", "buried"), 1);
    cr_assert_eq(stat_of(c, "q", "retried"), 0);
}

Test(reliable, nack_errors)
{
    jid id = PUSH(c, "q", JA);
    expect_error(CMD(c, "JOB.NACK", id.s), "STALE "); /* ready, not reserved */
    job j = RESERVE1(c, "q");
    expect_error_has(CMD(c, "JOB.NACK", j.receipt, "DELAY", "-5"), "ERR ", "DELAY");
    expect_error_has(CMD(c, "JOB.NACK", j.receipt, "DELAY", "x"), "ERR ", "DELAY");
    expect_error_has(CMD(c, "JOB.NACK", j.receipt, "ERROR"), "ERR ", "ERROR");
    expect_error_has(CMD(c, "JOB.NACK", j.receipt, "LATER", "1"), "ERR ", "LATER");
    EXPECT_STATE(c, id.s, "reserved");
    expect_error(CMD(c, "JOB.NACK", "0000000000000001-1"), "NOJOB ");
    expect_word(CMD(c, "JOB.NACK", j.receipt, "DELAY", "60000"), "retry");
    expect_error(CMD(c, "JOB.NACK", j.receipt), "STALE ");
}

Test(reliable, touch_extends_lease_until)
{
    jid id = PUSH(c, "q", JA);
    resp_val *v = CMD(c, "JOB.RESERVE", "LEASE", "5000", "NOWAIT", "FROM", "q");
    job j[1];
    cr_assert_eq(JOBS(v, j, 1), 1);
    long long until0 = job_int(c, id.s, "lease_until");
    long long before = wall_ms();
    resp_val *t = CMD(c, "JOB.TOUCH", j[0].receipt, "LEASE", "20000");
    long long after = wall_ms();
    cr_assert(t->type == RESP_T_INT, "JOB.TOUCH: got %s", resp_describe(t));
    long long until1 = t->integer;
    resp_val_free(t);
    cr_assert_gt(until1, until0, "TOUCH LEASE 20000: %lld not after %lld", until1, until0);
    cr_assert(until1 >= before + 20000 - 2 && until1 <= after + 20000 + 2,
              "TOUCH LEASE 20000: lease_until %lld ms from now", until1 - before);
    cr_assert_eq(job_int(c, id.s, "lease_until"), until1, "JOB.GET disagrees with TOUCH");
    /* Without LEASE: the delivery's lease (5000) from now. */
    before = wall_ms();
    t = CMD(c, "JOB.TOUCH", j[0].receipt);
    after = wall_ms();
    cr_assert(t->type == RESP_T_INT, "JOB.TOUCH: got %s", resp_describe(t));
    cr_assert(t->integer >= before + 5000 - 2 && t->integer <= after + 5000 + 2,
              "TOUCH without LEASE: lease_until %lld ms from now, expected 5000",
              t->integer - before);
    resp_val_free(t);
    /* By bare id too. */
    t = CMD(c, "JOB.TOUCH", id.s, "LEASE", "9000");
    cr_assert(t->type == RESP_T_INT, "JOB.TOUCH id: got %s", resp_describe(t));
    resp_val_free(t);
    expect_error_has(CMD(c, "JOB.TOUCH", j[0].receipt, "LEASE", "abc"), "ERR ", "LEASE");
    expect_int(CMD(c, "JOB.ACK", j[0].receipt), 1);
    expect_error(CMD(c, "JOB.TOUCH", j[0].receipt), "STALE ");
}

Test(reliable, touch_keeps_job_past_its_first_lease)
{
    jid id = PUSHO(c, "q", JA, "LEASE", "300");
    job j = RESERVE1(c, "q");
    long long t0 = now_ms();
    resp_val *t = CMD(c, "JOB.TOUCH", j.receipt, "LEASE", "10000");
    cr_assert(t->type == RESP_T_INT, "JOB.TOUCH: got %s", resp_describe(t));
    resp_val_free(t);
    /* Well past the original 300 ms the job is still reserved on delivery 1. */
    int polls = 0;
    while (now_ms() - t0 < 800 && polls++ < 400) {
        EXPECT_STATE(c, id.s, "reserved");
        sleep_ms(20);
    }
    cr_assert_eq(job_int(c, id.s, "attempt"), 1);
    expect_int(CMD(c, "JOB.ACK", j.receipt), 1);
    cr_assert_eq(stat_of(c, "q", "lease_expired"), 0);
}

Test(reliable, retry_brings_dead_and_delayed_jobs_back)
{
    jid id = PUSHO(c, "q", JA, "RETRIES", "0");
    job j = RESERVE1(c, "q");
    expect_word(CMD(c, "JOB.NACK", j.receipt), "dead");
    expect_ok(CMD(c, "JOB.RETRY", id.s));
    EXPECT_STATE(c, id.s, "ready");
    job j2 = RESERVE1(c, "q");
    cr_assert_str_eq(j2.id, id.s);
    /* Its retries are 0 again: the next failure buries it again. */
    expect_word(CMD(c, "JOB.NACK", j2.receipt), "dead");
    jid d = PUSHO(c, "q", JB, "DELAY", "60000");
    EXPECT_STATE(c, d.s, "delayed");
    expect_ok(CMD(c, "JOB.RETRY", d.s));
    EXPECT_STATE(c, d.s, "ready");
    job j3 = RESERVE1(c, "q");
    cr_assert_str_eq(j3.id, d.s);
}

Test(reliable, retry_refuses_other_states)
{
    jid id = PUSH(c, "q", JA);
    expect_error(CMD(c, "JOB.RETRY", id.s), "ERR ");
    EXPECT_STATE(c, id.s, "ready");
    job j = RESERVE1(c, "q");
    expect_error(CMD(c, "JOB.RETRY", id.s), "ERR ");
    EXPECT_STATE(c, id.s, "reserved");
    expect_int(CMD(c, "JOB.ACK", j.receipt), 1);
    expect_error(CMD(c, "JOB.RETRY", id.s), "ERR ");
    EXPECT_STATE(c, id.s, "done");
    expect_error(CMD(c, "JOB.RETRY", "0000000000000001"), "NOJOB ");
    expect_error_has(CMD(c, "JOB.RETRY", "nope"), "ERR ", "not a job id");
}

Test(reliable, del_cancels_jobs_in_every_state)
{
    jid ready = PUSH(c, "q", JA);
    jid delayed = PUSHO(c, "q", JB, "DELAY", "60000");
    jid dead = PUSHO(c, "q", JC, "RETRIES", "0", "PRI", "9");
    job jd = RESERVE1(c, "q");
    cr_assert_str_eq(jd.id, dead.s);
    expect_word(CMD(c, "JOB.NACK", jd.receipt), "dead");
    jid done = PUSHO(c, "q", JD, "PRI", "8");
    job jdone = RESERVE1(c, "q");
    cr_assert_str_eq(jdone.id, done.s);
    expect_int(CMD(c, "JOB.ACK", jdone.receipt), 1);
    jid reserved = PUSHO(c, "q", JE, "PRI", "7");
    job jr = RESERVE1(c, "q");
    cr_assert_str_eq(jr.id, reserved.s);
    expect_int(CMD(c, "JOB.DEL", ready.s, delayed.s, "0000000000000001"), 2);
    expect_int(CMD(c, "JOB.DEL", dead.s, done.s, reserved.s), 3);
    expect_int(CMD(c, "JOB.DEL", ready.s), 0);
    const char *ids[] = { ready.s, delayed.s, dead.s, done.s, reserved.s };
    for (int i = 0; i < 5; i++)
        expect_null(CMD(c, "JOB.GET", ids[i]));
    expect_error(CMD(c, "JOB.ACK", jr.receipt), "NOJOB ");
    EXPECT_NOTHING(c, "q");
    resp_val *s = CMD(c, "QUEUE.STATS", "q");
    const char *states[] = { "ready", "reserved", "delayed", "done", "dead" };
    for (int i = 0; i < 5; i++)
        cr_assert_eq(field_int(s, states[i]), 0, "after JOB.DEL: %s=%lld", states[i],
                     field_int(s, states[i]));
    resp_val_free(s);
}

static void check_full_record(cli *cl)
{
    long long before = wall_ms();
    jid id = PUSHO(cl, "q", JA, "PRI", "-4", "RETRIES", "6", "LEASE", "4500", "UNIQUE", "u1");
    long long after = wall_ms();
    resp_val *g = GET(cl, id.s);
    static const char *names[] = { "id", "queue", "state", "payload", "priority", "attempt",
                                   "retries", "lease_ms", "run_at", "lease_until", "created_at",
                                   "updated_at", "last_error", "unique", "expires_at", "group",
                                   "holder", "errors" };
    for (size_t i = 0; i < 18; i++)
        cr_assert(resp_field(g, names[i]), "JOB.GET: field '%s' missing", names[i]);
    cr_assert_str_eq(field_str(g, "id"), id.s);
    cr_assert_str_eq(field_str(g, "queue"), "q");
    cr_assert_str_eq(field_str(g, "state"), "ready");
    cr_assert_str_eq(field_str(g, "payload"), JA);
    cr_assert_eq(field_int(g, "priority"), -4);
    cr_assert_eq(field_int(g, "attempt"), 0);
    cr_assert_eq(field_int(g, "retries"), 6);
    cr_assert_eq(field_int(g, "lease_ms"), 4500);
    long long created = field_int(g, "created_at");
    cr_assert(created >= before - 2 && created <= after + 2, "created_at %lld not in [%lld, %lld]",
              created, before, after);
    cr_assert_geq(field_int(g, "updated_at"), created);
    long long run_at = field_int(g, "run_at");
    cr_assert(run_at == 0 || run_at <= after + 2, "ready job run_at %lld is in the future", run_at);
    cr_assert_eq(field_int(g, "lease_until"), 0);
    field_nil(g, "last_error");
    cr_assert_str_eq(field_str(g, "unique"), "u1");
    cr_assert_eq(field_int(g, "expires_at"), 0);
    field_nil(g, "group");
    field_nil(g, "holder");
    cr_assert_eq(resp_field(g, "errors")->type, RESP_T_ARRAY);
    cr_assert_eq(resp_field(g, "errors")->n, 0);
    resp_val_free(g);

    job j = RESERVE1(cl, "q");
    long long t_res = wall_ms();
    g = GET(cl, id.s);
    cr_assert_str_eq(field_str(g, "state"), "reserved");
    cr_assert_eq(field_int(g, "attempt"), 1);
    long long lu = field_int(g, "lease_until");
    cr_assert(lu >= before + 4500 && lu <= t_res + 4500 + 2, "lease_until %lld", lu);
    cr_assert_geq(field_int(g, "updated_at"), created);
    resp_val_free(g);
    expect_word(CMD(cl, "JOB.NACK", j.receipt, "ERROR", "oops", "DELAY", "60000"), "retry");
    g = GET(cl, id.s);
    cr_assert_str_eq(field_str(g, "state"), "delayed");
    cr_assert_str_eq(field_str(g, "last_error"), "oops");
    cr_assert_eq(field_int(g, "lease_until"), 0);
    cr_assert_geq(field_int(g, "run_at"), t_res + 60000 - 2);
    resp_val_free(g);
    expect_null(CMD(cl, "JOB.GET", "0000000000000001"));
    expect_error_has(CMD(cl, "JOB.GET", "zz"), "ERR ", "not a job id");
}

Test(reliable, get_every_field_resp2)
{
    check_full_record(c);
    resp_val *g = CMD(c, "JOB.GET", "0000000000000001");
    cr_assert(g->type == RESP_T_NULL);
    resp_val_free(g);
}

Test(reliable, get_every_field_resp3)
{
    hello3(c);
    jid id = PUSH(c, "m", JA);
    resp_val *g = GET(c, id.s);
    cr_assert(g->type == RESP_T_MAP, "RESP3 JOB.GET: expected a map, got %s", resp_describe(g));
    resp_val_free(g);
    check_full_record(c);
}

/* ================================================================ delays */

Test(reliable, delayed_job_becomes_reservable_after_its_delay)
{
    long long t0 = now_ms();
    jid id = PUSHO(c, "q", JA, "DELAY", "200");
    resp_val *g = GET(c, id.s);
    cr_assert_str_eq(field_str(g, "state"), "delayed");
    long long created = field_int(g, "created_at");
    long long run_at = field_int(g, "run_at");
    cr_assert_eq(run_at, created + 200, "DELAY 200: run_at - created_at = %lld (one clock read per push)",
                 run_at - created);
    resp_val_free(g);
    cr_assert_eq(stat_of(c, "q", "delayed"), 1);
    cr_assert_eq(stat_of(c, "q", "ready"), 0);
    cr_assert_eq(llen(c, "q"), 0);
    job j = { 0 };
    bool got = false;
    long long first_nil_after = -1;
    for (int i = 0; i < 1000 && now_ms() - t0 < 10000 && !got; i++) {
        job jj[1];
        int n = JOBS(CMD(c, "JOB.RESERVE", "NOWAIT", "FROM", "q"), jj, 1);
        if (n == 1) {
            j = jj[0];
            got = true;
        } else {
            first_nil_after = now_ms() - t0;
            sleep_ms(10);
        }
    }
    long long took = now_ms() - t0;
    cr_assert(got, "DELAY 200 job not reservable after 10 s");
    cr_assert(first_nil_after >= 0, "the delayed job was reservable at once");
    cr_assert(took >= 150, "DELAY 200 job delivered after %lld ms", took);
    cr_assert_str_eq(j.id, id.s);
    cr_assert_eq(j.attempt, 1);
}

Test(reliable, blocked_reserve_gets_a_delayed_job_when_due)
{
    cli *w = cli_connect(srv->port);
    long long t0 = now_ms();
    jid id = PUSHO(c, "q", JA, "DELAY", "300");
    SEND(w, "JOB.RESERVE", "TIMEOUT", "10000", "FROM", "q");
    job j[1];
    resp_val *v = NULL;
    int r = cli_poll_reply(w, 8000, &v);
    cr_assert(r == 1, "a blocked JOB.RESERVE did not get a DELAY 300 job within 8 s");
    long long took = now_ms() - t0;
    cr_assert_eq(JOBS(v, j, 1), 1);
    cr_assert_str_eq(j[0].id, id.s);
    cr_assert(took >= 250, "DELAY 300 job delivered after %lld ms", took);
    cli_close(w);
}

Test(reliable, at_in_the_past_is_ready_at_once_and_in_the_future_is_delayed)
{
    char past[32], future[32];
    snprintf(past, sizeof past, "%lld", wall_ms() - 60000);
    snprintf(future, sizeof future, "%lld", wall_ms() + 60000);
    jid p = PUSHO(c, "q", JA, "AT", past);
    EXPECT_STATE(c, p.s, "ready");
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.id, p.s);
    jid f = PUSHO(c, "q", JB, "AT", future);
    EXPECT_STATE(c, f.s, "delayed");
    cr_assert_eq(job_int(c, f.s, "run_at"), strtoll(future, NULL, 10));
    EXPECT_NOTHING(c, "q");
    jid zero = PUSHO(c, "q", JC, "DELAY", "0");
    EXPECT_STATE(c, zero.s, "ready");
}

/* ======================================================= arity, numbers */

Test(reliable, wrong_arity_for_each_command)
{
    static const struct { const char *argv[4]; int argc; const char *name; } cases[] = {
        { { "JOB.PUSH" }, 1, "job.push" },
        { { "JOB.PUSH", "q" }, 2, "job.push" },
        { { "JOB.RESERVE" }, 1, "job.reserve" },
        { { "JOB.ACK" }, 1, "job.ack" },
        { { "JOB.NACK" }, 1, "job.nack" },
        { { "JOB.TOUCH" }, 1, "job.touch" },
        { { "JOB.GET" }, 1, "job.get" },
        { { "JOB.GET", "0000000000000001", "x" }, 3, "job.get" },
        { { "JOB.DEL" }, 1, "job.del" },
        { { "JOB.RETRY" }, 1, "job.retry" },
        { { "JOB.RETRY", "0000000000000001", "x" }, 3, "job.retry" },
        { { "QUEUE.STATS" }, 1, "queue.stats" },
        { { "QUEUE.STATS", "a", "b" }, 3, "queue.stats" },
        { { "QUEUE.PEEK" }, 1, "queue.peek" },
        { { "QUEUE.PAUSE" }, 1, "queue.pause" },
        { { "QUEUE.RESUME" }, 1, "queue.resume" },
        { { "QUEUE.PURGE" }, 1, "queue.purge" },
        { { "QUEUE.RETRY" }, 1, "queue.retry" },
        { { "QUEUE.CONFIG" }, 1, "queue.config" },
        { { "QUEUE.CONFIG", "q" }, 2, "queue.config" },
        { { "QUEUE.LIST", "x" }, 2, "queue.list" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp_val *v = cli_cmdv(c, cases[i].argc, cases[i].argv, NULL);
        char want[128];
        snprintf(want, sizeof want, "ERR wrong number of arguments for '%s' command",
                 cases[i].name);
        bool ok = v->type == RESP_T_ERROR && strcmp(v->str, want) == 0;
        cr_assert(ok, "%s with %d args: expected -%s, got %s", cases[i].argv[0], cases[i].argc - 1,
                  want, resp_describe(v));
        resp_val_free(v);
    }
    /* Lower-case command names work the same. */
    resp_val *v = CMD(c, "job.push", "q", JA);
    cr_assert(v->type == RESP_T_BULK && is_job_id(v->str), "job.push: %s", resp_describe(v));
    resp_val_free(v);
}

Test(reliable, bad_numbers_are_errors)
{
    jid id = PUSH(c, "q", JA);
    expect_error(CMD(c, "JOB.PUSH", "q", JA, "DELAY", "99999999999999999999999"), "ERR ");
    expect_error(CMD(c, "JOB.PUSH", "q", JA, "PRI", "1e3"), "ERR ");
    expect_error(CMD(c, "JOB.PUSH", "q", JA, "LEASE", " 5"), "ERR ");
    expect_error(CMD(c, "JOB.RESERVE", "COUNT", "-3", "FROM", "q"), "ERR ");
    expect_error(CMD(c, "JOB.RESERVE", "TIMEOUT", "1.5", "FROM", "q"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "COUNT", "ten"), "ERR ");
    expect_error(CMD(c, "QUEUE.PEEK", "q", "COUNT", "0"), "ERR ");
    job j = RESERVE1(c, "q");
    cr_assert_str_eq(j.id, id.s);
    expect_error(CMD(c, "JOB.TOUCH", j.receipt, "LEASE", "-1"), "ERR ");
    expect_error(CMD(c, "JOB.NACK", j.receipt, "DELAY", "1x"), "ERR ");
    EXPECT_STATE(c, id.s, "reserved");
    cr_assert_eq(stat_of(c, "q", "pushed"), 1);
}

/* ===================================================== several shards */

#define NQ 16

TestSuite(reliable_shards, .timeout = 120);

static void queue_name(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, "rq:%d", k);
}

static void send_reserve_all(cli *w, const char *timeout)
{
    const char *argv[NQ + 6];
    char names[NQ][16];
    int n = 0;
    argv[n++] = "JOB.RESERVE";
    argv[n++] = "TIMEOUT";
    argv[n++] = timeout;
    argv[n++] = "FROM";
    for (int k = 0; k < NQ; k++) {
        queue_name(names[k], sizeof names[k], k);
        argv[n++] = names[k];
    }
    cli_sendv(w, n, argv, NULL);
}

Test(reliable_shards, reserve_across_shards_gets_every_job_exactly_once)
{
    srv = spoold_start("--shards", "4", NULL);
    c = cli_connect(srv->port);
    enum { NW = 3, ROUNDS = 3 };
    cli *w[NW];
    for (int i = 0; i < NW; i++)
        w[i] = cli_connect(srv->port);
    for (int round = 0; round < ROUNDS; round++) {
        int seen[NQ] = { 0 };
        int received = 0;
        for (int i = 0; i < NW; i++)
            send_reserve_all(w[i], "20000");
        wait_blocked_clients(c, NW, 10000);
        /* One job per queue, in one write. */
        resp_buf b;
        resp_buf_init(&b);
        for (int k = 0; k < NQ; k++) {
            char q[16], p[32];
            queue_name(q, sizeof q, k);
            snprintf(p, sizeof p, "{\"k\":%d}", k);
            const char *argv[] = { "JOB.PUSH", q, p };
            resp_add_commandv(&b, 3, argv);
        }
        cli_send_raw(c, b.data, b.len);
        resp_buf_free(&b);
        for (int k = 0; k < NQ; k++) {
            resp_val *v = cli_read(c);
            cr_assert(v->type == RESP_T_BULK && is_job_id(v->str), "JOB.PUSH: %s", resp_describe(v));
            resp_val_free(v);
        }
        long long deadline = now_ms() + 15000;
        int spins = 0;
        while (received < NQ && now_ms() < deadline && spins++ < 20000) {
            for (int i = 0; i < NW; i++) {
                resp_val *v = NULL;
                int r = cli_poll_reply(w[i], 5, &v);
                cr_assert(r >= 0, "worker %d connection closed", i);
                if (r == 0)
                    continue;
                job j[1];
                cr_assert_eq(JOBS(v, j, 1), 1, "round %d worker %d: nil before all jobs came",
                             round, i);
                int k = -1, kk = -2;
                cr_assert(sscanf(j[0].queue, "rq:%d", &k) == 1 && k >= 0 && k < NQ, "queue %s",
                          j[0].queue);
                cr_assert(sscanf(j[0].payload, "{\"k\":%d}", &kk) == 1 && kk == k,
                          "job %s came from queue %s", j[0].payload, j[0].queue);
                cr_assert_eq(j[0].attempt, 1);
                seen[k]++;
                cr_assert_eq(seen[k], 1, "round %d: the job of %s was delivered twice", round,
                             j[0].queue);
                received++;
                expect_int(CMD(w[i], "JOB.ACK", j[0].receipt), 1);
                send_reserve_all(w[i], "20000");
            }
        }
        cr_assert_eq(received, NQ, "round %d: %d of %d jobs received", round, received, NQ);
        /* Every worker now has one reserve outstanding: none may get a job. */
        for (int i = 0; i < NW; i++)
            expect_no_reply(w[i], "a worker after every job was taken");
        for (int k = 0; k < NQ; k++) {
            char q[16];
            queue_name(q, sizeof q, k);
            resp_val *s = CMD(c, "QUEUE.STATS", q);
            cr_assert_eq(field_int(s, "ready"), 0, "%s ready", q);
            cr_assert_eq(field_int(s, "reserved"), 0, "%s reserved", q);
            cr_assert_eq(field_int(s, "done"), round + 1, "%s done", q);
            resp_val_free(s);
        }
        /* Close the outstanding reserves and open fresh workers. */
        for (int i = 0; i < NW; i++) {
            cli_close(w[i]);
            w[i] = cli_connect(srv->port);
        }
        wait_blocked_clients(c, 0, 10000);
    }
    for (int k = 0; k < NQ; k++) {
        char q[16];
        queue_name(q, sizeof q, k);
        EXPECT_NOTHING(c, q);
    }
    for (int i = 0; i < NW; i++)
        cli_close(w[i]);
    stop_default();
}

Test(reliable_shards, nonblocking_reserve_over_shards_in_argument_order)
{
    srv = spoold_start("--shards", "4", NULL);
    c = cli_connect(srv->port);
    for (int k = NQ - 1; k >= 0; k--) {
        char q[16], p[32];
        queue_name(q, sizeof q, k);
        snprintf(p, sizeof p, "{\"k\":%d}", k);
        PUSH(c, q, p);
    }
    for (int k = 0; k < NQ; k++) {
        cli *w = c;
        send_reserve_all(w, "1000");
        job j[1];
        cr_assert_eq(JOBS(cli_read(w), j, 1), 1);
        char q[16];
        queue_name(q, sizeof q, k);
        cr_assert_str_eq(j[0].queue, q, "reserve %d: from %s, expected %s", k, j[0].queue, q);
        expect_int(CMD(c, "JOB.ACK", j[0].receipt), 1);
    }
    stop_default();
}

Test(reliable_shards, lpush_producers_and_reserve_workers)
{
    srv = spoold_start("--shards", "4", NULL);
    c = cli_connect(srv->port);
    enum { NP = 2, NJ = 60, NW = 2 };
    cli *p[NP], *w[NW];
    for (int i = 0; i < NP; i++)
        p[i] = cli_connect(srv->port);
    for (int i = 0; i < NW; i++)
        w[i] = cli_connect(srv->port);
    int seen[NP][NJ];
    memset(seen, 0, sizeof seen);
    int last[NW][NP];
    for (int i = 0; i < NW; i++)
        for (int k = 0; k < NP; k++)
            last[i][k] = -1;
    int sent[NP] = { 0 }, received = 0;
    bool waiting[NW] = { false };
    long long deadline = now_ms() + 30000;
    int spins = 0;
    while (received < NP * NJ && now_ms() < deadline && spins++ < 100000) {
        /* Producers push a few jobs each turn, one LPUSH per 1-3 jobs. */
        for (int i = 0; i < NP; i++) {
            int n = 0;
            const char *argv[5];
            char bufs[3][48];
            argv[n++] = "LPUSH";
            argv[n++] = "mixq";
            for (int m = 0; m < 3 && sent[i] < NJ; m++) {
                snprintf(bufs[m], sizeof bufs[m], "{\"p\":%d,\"n\":%d}", i, sent[i]++);
                argv[n++] = bufs[m];
            }
            if (n > 2) {
                resp_val *v = cli_cmdv(p[i], n, argv, NULL);
                cr_assert(v->type == RESP_T_INT, "LPUSH: %s", resp_describe(v));
                resp_val_free(v);
            }
        }
        for (int i = 0; i < NW; i++) {
            if (!waiting[i]) {
                SEND(w[i], "JOB.RESERVE", "TIMEOUT", "2000", "COUNT", "4", "FROM", "mixq");
                waiting[i] = true;
            }
            resp_val *v = NULL;
            int r = cli_poll_reply(w[i], 2, &v);
            cr_assert(r >= 0, "worker %d closed", i);
            if (r == 0)
                continue;
            waiting[i] = false;
            job j[4];
            int n = JOBS(v, j, 4);
            const char *acks[6] = { "JOB.ACK" };
            for (int m = 0; m < n; m++) {
                int pi = -1, ni = -1;
                cr_assert(sscanf(j[m].payload, "{\"p\":%d,\"n\":%d}", &pi, &ni) == 2 && pi >= 0 &&
                              pi < NP && ni >= 0 && ni < NJ,
                          "payload %s", j[m].payload);
                seen[pi][ni]++;
                cr_assert_eq(seen[pi][ni], 1, "job %s delivered twice", j[m].payload);
                cr_assert_gt(ni, last[i][pi], "worker %d got %s after n=%d of the same producer",
                             i, j[m].payload, last[i][pi]);
                last[i][pi] = ni;
                cr_assert_eq(j[m].attempt, 1);
                acks[1 + m] = j[m].receipt;
                received++;
            }
            if (n > 0)
                expect_int(cli_cmdv(w[i], 1 + n, acks, NULL), n);
        }
    }
    cr_assert_eq(received, NP * NJ, "%d of %d jobs received", received, NP * NJ);
    for (int i = 0; i < NW; i++) {
        if (waiting[i]) {
            resp_val *v = NULL;
            int r = cli_poll_reply(w[i], 5000, &v);
            cr_assert(r == 1, "worker %d: no reply to its last reserve", i);
            cr_assert(v->type == RESP_T_NULL, "worker %d: extra delivery %s", i, resp_describe(v));
            resp_val_free(v);
        }
    }
    resp_val *s = CMD(c, "QUEUE.STATS", "mixq");
    cr_assert_eq(field_int(s, "pushed"), NP * NJ);
    cr_assert_eq(field_int(s, "acked"), NP * NJ);
    cr_assert_eq(field_int(s, "done"), NP * NJ);
    cr_assert_eq(field_int(s, "ready"), 0);
    cr_assert_eq(field_int(s, "reserved"), 0);
    resp_val_free(s);
    for (int i = 0; i < NP; i++)
        cli_close(p[i]);
    for (int i = 0; i < NW; i++)
        cli_close(w[i]);
    stop_default();
}
