/*
 * test_placement.c - keys live on shard slot % shards, slot = CRC16 of the
 * key or its {hash tag} (Redis Cluster's rule), and the data dir records
 * that rule. A data dir from the older placement (no "placement" row) is
 * upgraded in place when its queues already sit on their slot's shard, and
 * refused, naming the queue, when one would have to move.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(placement, .timeout = 60);

static sqlite3 *open_db(spoold *s, int k)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/shard-%d.db", s->dir, k);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK, "open %s", path);
    return db;
}

static long long count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql, err ? err : "?");
}

/* Which shard file holds queue q's jobs (-1: none). */
static int shard_with_jobs(spoold *s, const char *q)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE queue = CAST('%s' AS BLOB)", q);
    for (int k = 0; k < 2; k++) {
        sqlite3 *db = open_db(s, k);
        long long n = count_rows(db, sql);
        sqlite3_close(db);
        if (n)
            return k;
    }
    return -1;
}

static void forget_placement(spoold *s)
{
    for (int k = 0; k < 2; k++) {
        sqlite3 *db = open_db(s, k);
        exec(db, "DELETE FROM meta WHERE key = 'placement'");
        sqlite3_close(db);
    }
}

/* Moves q's rows from shard file `from` to the other one, as a data dir
 * written by another placement rule would hold them. */
static void move_queue(spoold *s, const char *q, int from)
{
    sqlite3 *db = open_db(s, from);
    char sql[512];
    snprintf(sql, sizeof sql, "ATTACH '%s/data/shard-%d.db' AS other", s->dir, 1 - from);
    exec(db, sql);
    snprintf(sql, sizeof sql, "INSERT INTO other.jobs SELECT * FROM main.jobs WHERE queue = CAST('%s' AS BLOB); "
             "DELETE FROM main.jobs WHERE queue = CAST('%s' AS BLOB)", q, q);
    exec(db, sql);
    sqlite3_close(db);
}

Test(placement, hash_tags_share_a_shard)
{
    spoold *s = spoold_start("--shards", "4", NULL);
    cli *c = cli_connect(s->port);
    const char *keys[] = { "{emails}", "{emails}:sent", "x{emails}y", "emails" };
    for (int i = 0; i < 4; i++)
        expect_int(CMD(c, "RPUSH", keys[i], "{}"), 1);
    cli_close(c);
    spoold_term(s);
    int k0 = -1;
    for (int k = 0; k < 4; k++) {
        sqlite3 *db = open_db(s, k);
        long long n = count_rows(db, "SELECT count(*) FROM jobs");
        sqlite3_close(db);
        if (n) {
            cr_assert_eq(k0, -1, "jobs of {emails}-tagged queues on two shards (%d and %d)", k0, k);
            cr_assert_eq(n, 4, "shard %d holds %lld of the 4 jobs", k, n);
            k0 = k;
        }
    }
    cr_assert(k0 >= 0);
    spoold_destroy(s);
}

Test(placement, old_data_dir_with_queues_in_place_is_upgraded)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    expect_int(CMD(c, "RPUSH", "mail", "{\"n\":1}", "{\"n\":2}"), 2);
    cli_close(c);
    spoold_term(s);
    forget_placement(s);
    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "mail"), 2);
    cli_close(c);
    spoold_term(s);
    for (int k = 0; k < 2; k++) {
        sqlite3 *db = open_db(s, k);
        cr_assert_eq(count_rows(db, "SELECT count(*) FROM meta WHERE key = 'placement' AND value = 'crc16-slot'"), 1,
                     "shard %d did not record the placement rule", k);
        sqlite3_close(db);
    }
    spoold_destroy(s);
}

Test(placement, old_data_dir_with_a_queue_that_would_move_is_refused)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    expect_int(CMD(c, "RPUSH", "resize", "{\"n\":1}"), 1);
    cli_close(c);
    spoold_term(s);
    int home = shard_with_jobs(s, "resize");
    cr_assert(home >= 0);
    move_queue(s, "resize", home);
    forget_placement(s);

    int code = spoold_restart_may_fail(s, "--shards", "2", NULL);
    char *log = spoold_log(s);
    cr_assert(code > 0 && code < 256, "an old data dir whose queue would move was accepted (code %d); log:\n%s", code, log);
    cr_assert(strstr(log, "queue 'resize' would move"), "the refusal does not name the queue; log:\n%s", log);
    free(log);

    move_queue(s, "resize", 1 - home); /* what draining it with the older spoold amounts to */
    spoold_restart(s, "--shards", "2", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(llen(c, "resize"), 1);
    cli_close(c);
    spoold_stop(s);
}
