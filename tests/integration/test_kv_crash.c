/*
 * test_kv_crash.c - keyspace writes survive kill -9 exactly as answered.
 *
 * Threads write strings (some with a short PX), delete them, count with
 * INCR, set hash fields and run MULTI transactions that push a job and set
 * its idempotency key together, each thread on its own {hash tag} so both
 * shards work. spoold is killed (-9) mid-load, restarted on the same data
 * dir, and every key is checked against what was acknowledged: an
 * acknowledged value is there, a deleted key does not come back, a key
 * whose expiry passed (also while spoold was down) is gone, the counter
 * equals the acknowledged INCRs, and every transaction is all or nothing
 * (as many jobs in the queue as idempotency keys). A write that got no
 * answer (in flight at the kill) may have landed or not: its key is not
 * judged.
 *
 * Also: keys that expire while spoold is down are gone at start; the key
 * log is rewritten as a snapshot and replays to the same state; a journal
 * fault (DEBUG JOURNAL-FAIL) stores nothing of a key write or transaction.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tclient.h"

TestSuite(kv_crash, .timeout = 120);

#define NTHREADS 4
#define NKEYS 16
#define MAXTX 4096

enum { K_ABSENT, K_PRESENT, K_DELETED };

struct key_model {
    int state;
    char val[32];
    long long expire_at;     /* Unix ms, 0 = none */
    bool uncertain;          /* a write to it got no answer */
};

struct worker {
    int id;
    int port;
    char tag[16];
    struct key_model keys[NKEYS];
    struct key_model fields[NKEYS];
    long long incr_acked;
    bool incr_uncertain;
    int tx_acked, tx_sent;   /* transactions answered / sent */
    bool tx_done[MAXTX];
};

static atomic_long acked_ops;

/* tc_cmdv with NULL-terminated C string arguments. */
static resp_val *tc_cmd(tconn *t, const char *arg0, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && argc < 16; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    return tc_cmdv(t, argc, argv);
}

static long long unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_simple(const resp_val *v, const char *s)
{
    return v && v->type == RESP_T_SIMPLE && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

static void key_name(const struct worker *w, const char *kind, int j, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s:%d", w->tag, kind, j);
}

/* One operation; false when the connection broke (spoold is gone). */
static bool step(struct worker *w, tconn *t, unsigned *seed, int i)
{
    int op = (int)(rand_r(seed) % 10), j = (int)(rand_r(seed) % NKEYS);
    char key[64], val[32];
    key_name(w, "k", j, key, sizeof key);
    snprintf(val, sizeof val, "v%d", i);
    resp_val *v = NULL;
    if (op <= 4) {
        long long sent = unix_ms();
        v = op == 4 ? tc_cmd(t, "SET", key, val, "PX", "150", NULL) : tc_cmd(t, "SET", key, val, NULL);
        if (!v) {
            w->keys[j].uncertain = true;
            return false;
        }
        cr_assert(is_simple(v, "OK"), "SET %s: %d", key, v->type);
        w->keys[j].state = K_PRESENT;
        snprintf(w->keys[j].val, sizeof w->keys[j].val, "%s", val);
        w->keys[j].expire_at = op == 4 ? sent + 150 : 0;
    } else if (op == 5) {
        if (!(v = tc_cmd(t, "DEL", key, NULL))) {
            w->keys[j].uncertain = true;
            return false;
        }
        w->keys[j].state = K_DELETED;
    } else if (op == 6) {
        char ctr[64];
        key_name(w, "ctr", 0, ctr, sizeof ctr);
        if (!(v = tc_cmd(t, "INCR", ctr, NULL))) {
            w->incr_uncertain = true;
            return false;
        }
        cr_assert_eq(v->type, RESP_T_INT);
        cr_assert_eq(v->integer, w->incr_acked + 1, "INCR %s answered %lld after %lld", ctr, v->integer, w->incr_acked);
        w->incr_acked = v->integer;
    } else if (op <= 8 && w->tx_sent < MAXTX) {
        char q[64], idem[64], payload[48];
        int n = w->tx_sent;
        snprintf(q, sizeof q, "%s:q", w->tag);
        key_name(w, "idem", n, idem, sizeof idem);
        snprintf(payload, sizeof payload, "{\"n\":%d}", n);
        const char *const cmds[][6] = { { "MULTI" }, { "LPUSH", q, payload }, { "SET", idem, "1", "NX" }, { "EXEC" } };
        const int argc[] = { 1, 3, 4, 1 };
        for (int k = 0; k < 4; k++) {
            if (k == 3)
                w->tx_sent++;
            resp_val *r = tc_cmdv(t, argc[k], cmds[k]);
            if (!r)
                return false;
            if (k == 3) {
                cr_assert(r->type == RESP_T_ARRAY && r->n == 2, "EXEC: type %d", r->type);
                w->tx_done[n] = true;
                w->tx_acked++;
            }
            resp_val_free(r);
        }
    } else {
        char h[64], f[16];
        key_name(w, "h", 0, h, sizeof h);
        snprintf(f, sizeof f, "f%d", j);
        if (!(v = tc_cmd(t, "HSET", h, f, val, NULL))) {
            w->fields[j].uncertain = true;
            return false;
        }
        w->fields[j].state = K_PRESENT;
        snprintf(w->fields[j].val, sizeof w->fields[j].val, "%s", val);
    }
    resp_val_free(v);
    atomic_fetch_add(&acked_ops, 1);
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    tconn *t = tc_connect(w->port);
    unsigned seed = (unsigned)(w->id * 7919 + 1);
    for (int i = 0; t && i < 1000000; i++)
        if (!step(w, t, &seed, i))
            break;
    tc_close(t);
    return NULL;
}

/* The server reads its clock when the SET arrives, a little after the
 * client noted the time it sent it: a key whose expiry, as the client
 * estimates it, passed less than this long ago may still be there. */
#define EXPIRY_SLACK_MS 250

static void expect_value(cli *c, const char *key, const struct key_model *k, long long now)
{
    if (k->state == K_PRESENT && k->expire_at && k->expire_at <= now && now < k->expire_at + EXPIRY_SLACK_MS)
        return; /* too close to its expiry to judge */
    resp_val *v = CMD(c, "GET", key);
    if (k->state != K_PRESENT || (k->expire_at && k->expire_at <= now)) {
        cr_assert_eq(v->type, RESP_T_NULL, "%s: %s key came back after kill -9 (%s)", key,
                     k->state == K_DELETED ? "a deleted" : k->expire_at ? "an expired" : "a never written",
                     resp_describe(v));
        resp_val_free(v);
        return;
    }
    if (k->expire_at) { /* not expired yet at the check: it may be there or just gone */
        resp_val_free(v);
        return;
    }
    expect_bulk(v, k->val);
}

static void check_worker(cli *c, const struct worker *w)
{
    char key[64];
    long long now = unix_ms();
    for (int j = 0; j < NKEYS; j++) {
        if (w->keys[j].uncertain)
            continue;
        key_name(w, "k", j, key, sizeof key);
        expect_value(c, key, &w->keys[j], now);
    }
    key_name(w, "h", 0, key, sizeof key);
    for (int j = 0; j < NKEYS; j++) {
        if (w->fields[j].uncertain || w->fields[j].state != K_PRESENT)
            continue;
        char f[16];
        snprintf(f, sizeof f, "f%d", j);
        expect_bulk(CMD(c, "HGET", key, f), w->fields[j].val);
    }
    key_name(w, "ctr", 0, key, sizeof key);
    resp_val *v = CMD(c, "GET", key);
    long long n = v->type == RESP_T_NULL ? 0 : atoll(v->str);
    resp_val_free(v);
    cr_assert(n == w->incr_acked || (w->incr_uncertain && n == w->incr_acked + 1),
              "%s: %lld after restart, %lld INCRs were acknowledged", key, n, w->incr_acked);
    char q[64];
    snprintf(q, sizeof q, "%s:q", w->tag);
    long long jobs = llen(c, q), idems = 0;
    for (int i = 0; i < w->tx_sent; i++) {
        key_name(w, "idem", i, key, sizeof key);
        resp_val *e = CMD(c, "EXISTS", key);
        bool there = e->integer == 1;
        resp_val_free(e);
        cr_assert(there || !w->tx_done[i], "%s: an acknowledged transaction lost its key", key);
        idems += there;
    }
    cr_assert_eq(jobs, idems, "%s: %lld jobs but %lld idempotency keys: a transaction was split", q, jobs, idems);
    cr_assert(jobs >= w->tx_acked && jobs <= w->tx_sent, "%s: %lld jobs, %d transactions acknowledged, %d sent", q,
              jobs, w->tx_acked, w->tx_sent);
}

static void kv_round(long kill_after)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    static struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    atomic_store(&acked_ops, 0);
    for (int i = 0; i < NTHREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].port = s->port;
        snprintf(w[i].tag, sizeof w[i].tag, "{kt%d}", i);
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    cr_assert(wait_until(atomic_load(&acked_ops) >= kill_after, 60000), "the load did not reach %ld operations", kill_after);
    spoold_kill9(s);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    long long last_expiry = 0;
    for (int i = 0; i < NTHREADS; i++)
        for (int j = 0; j < NKEYS; j++)
            if (w[i].keys[j].expire_at > last_expiry)
                last_expiry = w[i].keys[j].expire_at;
    spoold_restart(s, "--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    for (int i = 0; i < NTHREADS; i++)
        check_worker(c, &w[i]);
    /* every short-lived key is past its expiry now (some passed while spoold was down) */
    cr_assert(wait_until(unix_ms() > last_expiry + EXPIRY_SLACK_MS, 5000));
    for (int i = 0; i < NTHREADS; i++)
        check_worker(c, &w[i]);
    long acked = atomic_load(&acked_ops);
    cr_log_info("kv crash round (kill after %ld): %ld writes acknowledged before the kill", kill_after, acked);
    cli_close(c);
    spoold_stop(s);
}

Test(kv_crash, kill9_under_mixed_key_load_early)
{
    kv_round(300);
}

Test(kv_crash, kill9_under_mixed_key_load_late)
{
    kv_round(3000);
}

/* Keys whose expiry passes while spoold is down are gone when it starts,
 * and a deleted key stays deleted. */
Test(kv_crash, key_expired_while_down_is_gone)
{
    spoold *s = spoold_start(NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SET", "short", "x", "PX", "200"));
    expect_ok(CMD(c, "SET", "long", "y", "EX", "1000"));
    expect_ok(CMD(c, "SET", "gone", "z"));
    expect_int(CMD(c, "DEL", "gone"), 1);
    expect_int(CMD(c, "HSET", "h", "f", "v"), 1);
    expect_int(CMD(c, "PEXPIRE", "h", "200"), 1);
    long long set_at = unix_ms();
    cli_close(c);
    spoold_kill9(s);
    cr_assert(wait_until(unix_ms() > set_at + 300, 5000));
    spoold_restart(s, NULL);
    c = cli_connect(s->port);
    expect_int(CMD(c, "DBSIZE"), 1);
    expect_null(CMD(c, "GET", "short"));
    expect_null(CMD(c, "GET", "gone"));
    expect_int(CMD(c, "EXISTS", "h"), 0);
    expect_bulk(CMD(c, "GET", "long"), "y");
    resp_val *ttl = CMD(c, "TTL", "long");
    cr_assert(ttl->integer > 990 && ttl->integer <= 1000, "TTL after restart: %lld", ttl->integer);
    resp_val_free(ttl);
    cli_close(c);
    spoold_stop(s);
}

/* The key log is rewritten as a snapshot once it has grown: 25,000 INCRs
 * of one key leave far fewer rows than changes, and replay to the same
 * value after kill -9. */
Test(kv_crash, key_log_is_rewritten_and_replays)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    enum { N = 25000 };
    resp_buf b;
    resp_buf_init(&b);
    for (int i = 0; i < N; i++) {
        const char *argv[] = { "INCR", "hits" };
        resp_add_commandv(&b, 2, argv);
    }
    expect_int(CMD(c, "HSET", "h", "a", "1", "b", "2"), 2);
    expect_int(CMD(c, "HDEL", "h", "a"), 1);
    expect_int(CMD(c, "ZADD", "z", "1", "x", "2", "y"), 2);
    cli_send_raw(c, b.data, b.len);
    resp_buf_free(&b);
    for (int i = 0; i < N; i++)
        expect_int(cli_read(c), i + 1);
    cli_close(c);
    spoold_kill9(s);

    char path[512];
    snprintf(path, sizeof path, "%s/data/shard-0.db", s->dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM kv_log", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long rows = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert(rows > 0 && rows < N / 2, "the key log holds %lld rows after %d changes of one key", rows, N);

    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    expect_bulk(CMD(c, "GET", "hits"), "25000");
    expect_null(CMD(c, "HGET", "h", "a"));
    expect_bulk(CMD(c, "HGET", "h", "b"), "2");
    expect_bulks(CMD(c, "ZRANGE", "z", "0", "-1"), "x", "y");
    cli_close(c);
    spoold_stop(s);
}

/* A failed commit answers the error, stores nothing and leaves memory
 * equal to the journal: the key keeps its old value, a transaction with a
 * push and a key applies neither. */
Test(kv_crash, journal_fault_stores_nothing_of_keys_or_transactions)
{
    spoold *s = spoold_start("--shards", "1", "--enable-debug-command", "yes", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "SET", "a", "1"));
    expect_int(CMD(c, "HSET", "h", "f", "v"), 1);
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "a", "1"));
    expect_error(CMD(c, "SET", "a", "2"), "ERR journal");
    expect_bulk(CMD(c, "GET", "a"), "1");
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "a", "1"));
    expect_error(CMD(c, "HSET", "h", "g", "w"), "ERR journal");
    expect_int(CMD(c, "HLEN", "h"), 1);
    expect_ok(CMD(c, "DEBUG", "JOURNAL-FAIL", "a", "1"));
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "SET", "a", "3"), "QUEUED");
    expect_simple(CMD(c, "LPUSH", "q", "{}"), "QUEUED");
    expect_error(CMD(c, "EXEC"), "ERR journal");
    expect_bulk(CMD(c, "GET", "a"), "1");
    cr_assert_eq(llen(c, "q"), 0);
    expect_ok(CMD(c, "SET", "a", "4"));
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    expect_bulk(CMD(c, "GET", "a"), "4");
    expect_int(CMD(c, "HLEN", "h"), 1);
    cr_assert_eq(llen(c, "q"), 0);
    cli_close(c);
    spoold_stop(s);
}

/* A hash that expired while spoold was down is gone from memory at start,
 * with no delete in the log; created again, it is logged as created, so a
 * later replay does not bring its old fields back. */
Test(kv_crash, key_created_again_after_expiring_while_down_starts_empty)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    expect_int(CMD(c, "HSET", "h", "old", "1"), 1);
    expect_int(CMD(c, "PEXPIRE", "h", "100"), 1);
    long long set_at = unix_ms();
    cli_close(c);
    spoold_kill9(s);
    cr_assert(wait_until(unix_ms() > set_at + 200, 5000));
    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    expect_int(CMD(c, "EXISTS", "h"), 0);
    expect_int(CMD(c, "HSET", "h", "new", "2"), 1);
    cli_close(c);
    spoold_kill9(s);
    spoold_restart(s, "--shards", "1", NULL);
    c = cli_connect(s->port);
    expect_null(CMD(c, "HGET", "h", "old"));
    expect_bulk(CMD(c, "HGET", "h", "new"), "2");
    expect_int(CMD(c, "TTL", "h"), -1);
    cli_close(c);
    spoold_stop(s);
}
