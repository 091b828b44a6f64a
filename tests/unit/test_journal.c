/*
 * test_journal.c - unit tests of the shard journal: schema creation and
 * upgrade from the previous migration, refusal of a newer database, the row
 * mapping of every job field (binary queue names, NULL vs empty strings,
 * 1 MiB payloads, negative priorities, extreme values), recovery order,
 * commit/rollback across close and reopen, payloads kept on disk, queue
 * and meta rows, and failures: injected through journal_fail_next() and
 * real ones (a file size limit, a file that is not a database).
 *
 * Each test runs in its own process with its own directory under /tmp.
 */
#include <criterion/criterion.h>

#include "journal.h"
#include "queue.h"
#include "syncvfs.h"

#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- fixtures */

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/spool-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/shard-0.db", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(journal, .init = setup, .fini = teardown);

static struct journal *jopen(int mode)
{
    struct journal *j = NULL;
    int rc = journal_open(&j, path, mode);
    cr_assert_eq(rc, 0, "journal_open: %d %s", rc, j ? journal_error(j) : "");
    return j;
}

static struct journal *jreopen(struct journal *j)
{
    journal_close(j);
    return jopen(0);
}

/* A queue that only carries what the journal reads: name, conf, paused. */
static struct queue *mkqueue(const char *name, size_t len)
{
    struct queue *q = calloc(1, sizeof *q);
    q->name = malloc(len + 1);
    memcpy(q->name, name, len);
    q->name[len] = '\0';
    q->namelen = len;
    qconf_defaults(&q->conf, 0);
    return q;
}

static void freequeue(struct queue *q)
{
    free(q->name);
    free(q);
}

static struct job *mkjob(struct queue *q, uint64_t id, const char *payload)
{
    struct job *job = job_new(id, payload, strlen(payload));
    job->q = q;
    job->state = JOB_READY;
    job->pos = (int64_t)id;
    job->retries = 25;
    job->lease_ms = 30000;
    job->created_at = 1700000000000 + (int64_t)(id % 1000000);
    job->updated_at = job->created_at;
    return job;
}

static void insert_commit(struct journal *j, struct job *job)
{
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, job), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
}

/* Collects loaded rows. */
struct loaded {
    struct job *jobs[256];
    char *queues[256];
    size_t qlens[256];
    int n;
    struct journal_queue_row qrows[16];
    char *qnames[16], *qconfs[16];
    int nq;
    int stop_at;              /* job_fn fails on this call (1-based), 0: never */
};

static int on_queue(void *arg, const struct journal_queue_row *row)
{
    struct loaded *l = arg;
    cr_assert_lt(l->nq, 16);
    l->qnames[l->nq] = malloc(row->len + 1);
    memcpy(l->qnames[l->nq], row->name, row->len);
    l->qconfs[l->nq] = strdup(row->config);
    l->qrows[l->nq] = *row;
    l->qrows[l->nq].name = l->qnames[l->nq];
    l->qrows[l->nq].config = l->qconfs[l->nq];
    l->nq++;
    return 0;
}

static int on_job(void *arg, struct job *job, const char *queue, size_t len)
{
    struct loaded *l = arg;
    cr_assert_lt(l->n, 256);
    l->jobs[l->n] = job;
    l->queues[l->n] = malloc(len + 1);
    memcpy(l->queues[l->n], queue, len);
    l->qlens[l->n] = len;
    l->n++;
    if (l->stop_at && l->n == l->stop_at)
        return -ECANCELED;
    return 0;
}

static void load(struct journal *j, bool with_payload, struct loaded *l)
{
    memset(l, 0, sizeof *l);
    int rc = journal_load(j, with_payload, on_queue, on_job, l);
    cr_assert_eq(rc, 0, "journal_load: %d %s", rc, journal_error(j));
}

static void loaded_free(struct loaded *l)
{
    for (int i = 0; i < l->n; i++) {
        job_free(l->jobs[i]);
        free(l->queues[i]);
    }
    for (int i = 0; i < l->nq; i++) {
        free(l->qnames[i]);
        free(l->qconfs[i]);
    }
    memset(l, 0, sizeof *l);
}

/* Raw SQLite access to the same file, for what the API does not show. */
static sqlite3 *raw_open(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

/* The database as a spoold at schema version old left it, built from the
 * same migration files (raw connection, for the caller's rows). */
static sqlite3 *raw_at_version(int old)
{
    char sql[64];
    sqlite3 *db = raw_open();
    raw_exec(db, "PRAGMA journal_mode = WAL");
    for (int i = 0; i < old; i++)
        raw_exec(db, journal_migrations[i].sql);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", old);
    raw_exec(db, sql);
    return db;
}

static int64_t count_jobs(struct journal *j)
{
    struct loaded l;
    load(j, false, &l);
    int n = l.n;
    loaded_free(&l);
    return n;
}

/* --------------------------------------------------------------- schema */

Test(journal, migrations_are_numbered_in_order)
{
    cr_assert_geq(journal_nmigrations, 2);
    cr_assert_eq(journal_schema_version(), journal_nmigrations);
    for (int i = 0; i < journal_nmigrations; i++) {
        cr_assert_eq(journal_migrations[i].version, i + 1);
        cr_assert(strstr(journal_migrations[i].sql, "CREATE") || strstr(journal_migrations[i].sql, "DROP") ||
                      strstr(journal_migrations[i].sql, "ALTER"),
                  "migration %d changes nothing", i + 1);
    }
    cr_assert_str_eq(journal_migrations[0].name, "0001_init");
}

Test(journal, open_creates_schema_in_wal_mode)
{
    struct journal *j = jopen(0);
    cr_assert_not(journal_in_txn(j));
    journal_close(j);

    sqlite3 *db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), journal_schema_version());
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                             "AND name IN ('jobs', 'queues', 'meta')"), 3);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs_load'"), 0,
                 "0003 dropped the load index");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Opening again changes nothing. */
    j = jopen(1);
    journal_close(j);
    db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), journal_schema_version());
    sqlite3_close(db);
}

Test(journal, upgrades_a_database_at_an_older_version)
{
    int n = journal_schema_version(), old = 2;

    /* The database as an older spoold (schema 2, still with the load index
     * that 0003 drops) left it, built from the same migration files, with a
     * job in it. */
    sqlite3 *db = raw_at_version(old);
    raw_exec(db, "INSERT INTO jobs (id, queue, state, lease_until, created_at, updated_at, "
                 "payload) VALUES (7, CAST('mail' AS BLOB), 1, 1234, 1, 2, CAST('{}' AS BLOB))");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'payloads'"), 0,
                 "the previous version has no payloads table");
    sqlite3_close(db);

    struct journal *j = jopen(0);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->id, 7);
    cr_assert_eq(l.jobs[0]->state, JOB_RESERVED);
    cr_assert_eq(l.jobs[0]->lease_until, 1234);
    cr_assert_str_eq(l.jobs[0]->payload, "{}");
    cr_assert_eq(l.jobs[0]->expires_at, 0, "0005 gave the old job no expiry");
    cr_assert_null(l.jobs[0]->group);
    loaded_free(&l);
    journal_close(j);

    db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), n);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name IN "
                             "('expires_at', 'grp', 'holder', 'history')"), 4, "the upgrade applied 0005 (flow control)");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs_load'"), 0,
                 "the upgrade left the load index dropped");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM payloads WHERE id = 7 AND body = CAST('{}' AS BLOB)"), 1,
                 "the upgrade applied 0007: the payload moved to its own table");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'payload'"), 0,
                 "the upgrade applied 0007: jobs has no payload column");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('jobs_lease', 'jobs_run_at')"), 0,
                 "the upgrade applied 0011: the deadline indexes are gone");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'kv_log'"), 1,
                 "the upgrade applied 0004 (the key log)");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM jobs WHERE id = 7 AND result IS NULL AND batch = 0"), 1,
                 "0006 added the result and batch columns");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('schedules', 'batches', "
                             "'batch_outbox', 'batch_inbox')"), 4, "0006 added its tables");
    sqlite3_close(db);
}

/* The plan of a query, its EXPLAIN QUERY PLAN details joined by '|'. */
static void raw_plan(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    char q[1024];
    sqlite3_stmt *st = NULL;
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s: %s", q, sqlite3_errmsg(db));
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s|", (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
}

/* 0011 drops jobs_lease and jobs_run_at: a database at 0010 (with both, and
 * a reserved and a delayed job in them) opens, loses them, keeps its jobs,
 * and the reads that recovery and the result scan run keep their plans. */
Test(journal, upgrade_to_0011_drops_the_deadline_indexes_and_keeps_the_plans)
{
    sqlite3 *db = raw_at_version(10);
    raw_exec(db, "INSERT INTO jobs (id, queue, state, lease_until, created_at, updated_at, body) "
                 "VALUES (7, CAST('q' AS BLOB), 1, 1234, 1, 1, CAST('{}' AS BLOB)), "
                 "(8, CAST('q' AS BLOB), 2, 0, 1, 1, CAST('[]' AS BLOB))");
    raw_exec(db, "UPDATE jobs SET run_at = 99 WHERE id = 8");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('jobs_lease', 'jobs_run_at')"), 2);
    sqlite3_close(db);

    struct journal *j = jopen(0);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.jobs[0]->lease_until, 1234);
    cr_assert_eq(l.jobs[1]->run_at, 99);
    loaded_free(&l);
    journal_close(j);

    char plan[1024];
    db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), journal_schema_version());
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('jobs_lease', 'jobs_run_at')"), 0,
                 "0011 dropped both deadline indexes");
    raw_plan(db, "SELECT j.id, coalesce(j.body, p.body) FROM jobs j LEFT JOIN payloads p ON p.id = j.id "
                 "ORDER BY j.id", plan, sizeof plan);
    cr_assert(strstr(plan, "SCAN j") && strstr(plan, "INTEGER PRIMARY KEY") && !strstr(plan, "TEMP B-TREE"),
              "recovery's load is a rowid scan with a rowid lookup: %s", plan);
    raw_plan(db, "SELECT id FROM jobs WHERE result IS NOT NULL OR progress IS NOT NULL OR batch != 0", plan,
             sizeof plan);
    cr_assert(strstr(plan, "jobs_extra"), "the result scan keeps its partial index: %s", plan);
    sqlite3_close(db);
}

Test(journal, upgrades_a_database_at_0006_to_payload_rows_and_tokens)
{
    int old = 6;

    /* A data directory as main's 0006 left it: a reserved job whose
     * payload is in its row, with a result column. */
    sqlite3 *db = raw_at_version(old);
    raw_exec(db, "INSERT INTO jobs (id, queue, state, attempt, lease_until, created_at, updated_at, payload, "
                 "progress) VALUES (9, CAST('mail' AS BLOB), 1, 2, 1234, 1, 2, CAST('{\"x\":1}' AS BLOB), "
                 "CAST('50' AS BLOB))");
    sqlite3_close(db);

    struct journal *j = jopen(0);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->id, 9);
    cr_assert_eq(l.jobs[0]->attempt, 2);
    cr_assert_eq(l.jobs[0]->token, 0, "a delivery made before tokens has none");
    cr_assert_str_eq(l.jobs[0]->payload, "{\"x\":1}");
    loaded_free(&l);
    journal_close(j);

    db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), journal_schema_version());
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM payloads WHERE id = 9"), 1, "0007 moved the payload");
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'payload'"), 0);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM jobs WHERE id = 9 AND token = 0 AND progress = CAST('50' AS BLOB)"),
                 1, "0007 kept 0006's columns and added the token");
    sqlite3_close(db);
}

Test(journal, keeps_the_delivery_token)
{
    struct journal *j = jopen(0);
    struct queue *q = mkqueue("tq", 2);
    struct job *job = mkjob(q, 11, "{}");
    job->state = JOB_RESERVED;
    job->attempt = 1;
    job->token = 0xdeadbeef;
    insert_commit(j, job);
    job->attempt = 2;
    job->token = 0x12345678;
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_update(j, job), 0);
    cr_assert_eq(journal_commit(j), 0);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->attempt, 2);
    cr_assert_eq(l.jobs[0]->token, 0x12345678);
    loaded_free(&l);
    job_free(job);
    freequeue(q);
    journal_close(j);
}

/* Write syscalls of this process so far (/proc/self/io syscw). */
static long long write_calls(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    cr_assert_not_null(f, "/proc/self/io: %s", strerror(errno));
    char line[128];
    long long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %lld", &n) == 1)
            break;
    fclose(f);
    cr_assert_geq(n, 0, "no syscw in /proc/self/io");
    return n;
}

Test(journal, writes_each_wal_frame_with_one_call)
{
    struct journal *j = jopen(1); /* batch: a commit syncs nothing */
    struct queue *q = mkqueue("wq", 2);
    char *big = malloc(40001);
    memset(big, 'x', 40000);
    big[40000] = '\0';
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat st0, st1;
    struct job *first = mkjob(q, 1, "{}");
    insert_commit(j, first); /* the WAL exists, with its header */
    cr_assert_eq(stat(wal, &st0), 0);
    long long w0 = write_calls();
    struct job *jobs[20];
    for (int i = 0; i < 20; i++) {
        jobs[i] = mkjob(q, 100 + (uint64_t)i, big);
        insert_commit(j, jobs[i]);
    }
    long long calls = write_calls() - w0;
    cr_assert_eq(stat(wal, &st1), 0);
    long long frames = (long long)(st1.st_size - st0.st_size) / (4096 + 24);
    cr_assert_gt(frames, 200, "20 payloads of 40 KB: %lld frames", frames);
    cr_assert_leq(calls, frames + 20, "%lld write calls for %lld WAL frames: a frame's header and page "
                  "went out separately", calls, frames);
    for (int i = 0; i < 20; i++)
        job_free(jobs[i]);
    job_free(first);
    free(big);
    freequeue(q);
    journal_close(j);
}

Test(journal, refuses_a_newer_database_and_leaves_it_alone)
{
    int n = journal_schema_version();
    char sql[64], want[512];

    sqlite3 *db = raw_open();
    raw_exec(db, "CREATE TABLE future (x)");
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", n + 1);
    raw_exec(db, sql);
    sqlite3_close(db);

    struct journal *j = NULL;
    cr_assert_eq(journal_open(&j, path, 0), -EPROTO);
    cr_assert_not_null(j);
    snprintf(want, sizeof want, "database %s is at schema version %d, newer than this "
             "spoold (%d): upgrade spoold or use another --data-dir", path, n + 1, n);
    cr_assert_str_eq(journal_error(j), want);
    journal_close(j);

    db = raw_open();
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), n + 1);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'"), 0);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "delete");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(journal, refuses_a_file_that_is_not_a_database)
{
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 1000; i++)
        fputs("this is not sqlite ", f);
    fclose(f);

    struct journal *j = NULL;
    cr_assert_eq(journal_open(&j, path, 0), -EILSEQ);
    cr_assert_not_null(strstr(journal_error(j), "is damaged or is not a spool database"),
                      "%s", journal_error(j));
    cr_assert_not_null(strstr(journal_error(j), path));
    journal_close(j);
}

Test(journal, missing_data_dir_says_so)
{
    char p[256];
    struct journal *j = NULL;
    snprintf(p, sizeof p, "%s/nope/shard-0.db", dir);
    cr_assert_eq(journal_open(&j, p, 0), -ENOENT);
    cr_assert_not_null(strstr(journal_error(j), "check that the --data-dir exists"),
                      "%s", journal_error(j));
    journal_close(j);
    cr_assert_eq(journal_open(&j, path, 7), -EINVAL);
    cr_assert_null(j);
}

/* ------------------------------------------------------------- job rows */

static void assert_same_job(const struct job *a, const struct job *b, bool payload)
{
    cr_assert_eq(a->id, b->id);
    cr_assert_eq(a->state, b->state, "job %llu", (unsigned long long)a->id);
    cr_assert_eq(a->pos, b->pos);
    cr_assert_eq(a->priority, b->priority);
    cr_assert_eq(a->attempt, b->attempt);
    cr_assert_eq(a->retries, b->retries);
    cr_assert_eq(a->lease_ms, b->lease_ms);
    cr_assert_eq(a->run_at, b->run_at);
    cr_assert_eq(a->lease_until, b->lease_until);
    cr_assert_eq(a->created_at, b->created_at);
    cr_assert_eq(a->updated_at, b->updated_at);
    cr_assert_eq(a->len, b->len);
    cr_assert_eq(a->expires_at, b->expires_at);
    cr_assert_eq(a->grouplen, b->grouplen);
    if (a->group)
        cr_assert_eq(memcmp(a->group, b->group, a->grouplen), 0);
    else
        cr_assert_null(b->group);
    if (a->holder)
        cr_assert_str_eq(b->holder, a->holder);
    else
        cr_assert_null(b->holder);
    if (a->history)
        cr_assert_str_eq(b->history, a->history);
    else
        cr_assert_null(b->history);
    if (payload) {
        cr_assert_not_null(b->payload);
        cr_assert_eq(memcmp(a->payload, b->payload, a->len), 0);
        cr_assert_eq(b->payload[b->len], '\0');
    }
    if (a->last_error)
        cr_assert_str_eq(b->last_error, a->last_error);
    else
        cr_assert_null(b->last_error);
    if (a->unique)
        cr_assert_str_eq(b->unique, a->unique);
    else
        cr_assert_null(b->unique);
}

Test(journal, every_field_round_trips_through_a_reopen)
{
    static const char qname[] = { 'i', 'm', 'g', '\0', '\xff', ':' };
    struct queue *q = mkqueue(qname, sizeof qname);
    struct job *jobs[5];
    struct journal *j = jopen(0);

    /* 1: every field away from its default, extremes included. */
    jobs[0] = mkjob(q, 1, "{\"to\":\"a@b\"}");
    jobs[0]->state = JOB_RESERVED;
    jobs[0]->pos = -5;
    jobs[0]->priority = JOB_PRI_MIN;
    jobs[0]->attempt = UINT32_MAX;
    jobs[0]->retries = 7;
    jobs[0]->lease_ms = UINT32_MAX;
    jobs[0]->run_at = INT64_MAX;
    jobs[0]->lease_until = INT64_MIN;
    jobs[0]->created_at = 1;
    jobs[0]->updated_at = -1;
    job_set_str(&jobs[0]->last_error, "timeout: smtp 421", 17);
    job_set_str(&jobs[0]->unique, "order-42", 8);
    /* 2: empty strings are not NULL. */
    jobs[1] = mkjob(q, 2, "");
    jobs[1]->state = JOB_DEAD;
    job_set_str(&jobs[1]->last_error, "", 0);
    job_set_str(&jobs[1]->unique, "", 0);
    /* 3: NULLs stay NULL; highest id; highest priority. */
    jobs[2] = mkjob(q, UINT64_C(0x7fffffffffffffff), "[]");
    jobs[2]->state = JOB_DELAYED;
    jobs[2]->priority = JOB_PRI_MAX;
    jobs[2]->run_at = 1700000009999;
    /* 4: a 1 MiB payload holding every byte value. */
    size_t big = 1 << 20;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)(i * 7 + i / 256);
    jobs[3] = job_new(3, p, big);
    free(p);
    jobs[3]->q = q;
    jobs[3]->state = JOB_DONE;
    jobs[3]->priority = -1;
    /* 5: a unique key with a NUL inside is kept up to its NUL by
     * job_set_str; what matters is that the journal keeps what it got. */
    jobs[4] = mkjob(q, 5, "{}");
    jobs[4]->state = JOB_READY;
    jobs[4]->priority = -300;

    cr_assert_eq(journal_begin(j), 0);
    cr_assert(journal_in_txn(j));
    cr_assert_eq(journal_begin(j), 0); /* idempotent */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(journal_job_insert(j, jobs[i]), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_not(journal_in_txn(j));
    j = jreopen(j);

    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 5);
    for (int i = 0; i < l.n; i++) {
        cr_assert_eq(l.qlens[i], sizeof qname);
        cr_assert_eq(memcmp(l.queues[i], qname, sizeof qname), 0);
        cr_assert_null(l.jobs[i]->q);
        int k = 0;
        while (jobs[k]->id != l.jobs[i]->id)
            k++;
        assert_same_job(jobs[k], l.jobs[i], true);
    }
    cr_assert_eq(jobs[1]->len, 0);
    loaded_free(&l);

    for (int i = 0; i < 5; i++)
        job_free(jobs[i]);
    journal_close(j);
    freequeue(q);
}

Test(journal, update_writes_every_field_but_the_payload)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *job = mkjob(q, 10, "{\"a\":1}");
    struct journal *j = jopen(0);
    insert_commit(j, job);

    job->state = JOB_DELAYED;
    job->pos = 99;
    job->priority = -12;
    job->attempt = 3;
    job->retries = 4;
    job->lease_ms = 1500;
    job->run_at = 1700000100000;
    job->lease_until = 1700000050000;
    job->updated_at = 1700000060000;
    job_set_str(&job->last_error, "boom", 4);
    job_set_str(&job->unique, "u1", 2);
    job->expires_at = 1700000200000;
    job_set_str(&job->group, "tenant-7", 8);
    job->grouplen = 8;
    job_set_str(&job->holder, "mailer 127.0.0.1:5000 12", 24);
    { const char *h = "1\t1700000070000\tmailer 127.0.0.1:5000 12\t451 busy"; job_set_str(&job->history, h, strlen(h)); }
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_update(j, job), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);

    /* Clearing strings writes NULLs. */
    job_set_str(&job->unique, NULL, 0);
    cr_assert_eq(journal_job_update(j, job), 0); /* outside a transaction: autocommit */
    j = jreopen(j);

    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    assert_same_job(job, l.jobs[0], true);
    cr_assert_str_eq(l.jobs[0]->payload, "{\"a\":1}");
    cr_assert_eq(l.jobs[0]->created_at, 1700000000010);
    loaded_free(&l);

    job->id = 11;
    cr_assert_eq(journal_job_update(j, job), -ENOENT);
    cr_assert_not_null(strstr(journal_error(j), "000000000000000b"), "%s", journal_error(j));
    job_free(job);
    journal_close(j);
    freequeue(q);
}

Test(journal, delete_removes_the_row_and_is_idempotent)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(0);
    for (uint64_t id = 1; id <= 3; id++) {
        struct job *job = mkjob(q, id, "{}");
        insert_commit(j, job);
        job_free(job);
    }
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_delete(j, 2), 0);
    cr_assert_eq(journal_job_delete(j, 2), 0);
    cr_assert_eq(journal_job_delete(j, 999), 0);
    cr_assert_eq(journal_commit(j), 0);
    j = jreopen(j);

    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.jobs[0]->id, 1);
    cr_assert_eq(l.jobs[1]->id, 3);
    loaded_free(&l);
    char *out;
    size_t len;
    cr_assert_eq(journal_payload(j, 2, &out, &len), -ENOENT);
    cr_assert_null(out);
    journal_close(j);
    freequeue(q);
}

Test(journal, a_duplicate_id_is_refused)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *job = mkjob(q, 1, "{}");
    struct journal *j = jopen(0);
    insert_commit(j, job);
    /* the row is held for the turn's INSERT: the commit runs it and fails */
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, job), 0);
    cr_assert_eq(journal_held(j), 1);
    cr_assert_eq(journal_commit(j), -EEXIST, "%s", journal_error(j));
    cr_assert_not(journal_in_txn(j));
    cr_assert_eq(journal_held(j), 0);
    cr_assert_eq(count_jobs(j), 1);
    /* the same when another use of the connection ran the INSERT first:
     * its failure is kept and fails the commit */
    struct job *other = mkjob(q, 2, "[]");
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, other), 0);
    cr_assert_eq(journal_job_insert(j, job), 0);
    cr_assert_not_null(journal_sqlite(j));
    cr_assert_eq(journal_held(j), 0);
    cr_assert_eq(journal_commit(j), -EEXIST, "%s", journal_error(j));
    cr_assert_eq(count_jobs(j), 1, "nothing of the failed turn is stored");
    /* and when SQLite ended the transaction itself after the failed INSERT
     * (it may, on SQLITE_FULL or an I/O error; a ROLLBACK through the raw
     * handle stands for it here): the turn still counts as open and its
     * commit fails, rather than passing as a turn that wrote nothing */
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, other), 0);
    cr_assert_eq(journal_job_insert(j, job), 0);
    sqlite3 *db = journal_sqlite(j);
    cr_assert_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    cr_assert(journal_in_txn(j), "a held insert's failure is not reported yet");
    cr_assert_eq(journal_commit(j), -EEXIST, "%s", journal_error(j));
    cr_assert_not(journal_in_txn(j));
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, other), 0);
    cr_assert_eq(journal_commit(j), 0, "the next turn is not failed by the old error: %s", journal_error(j));
    cr_assert_eq(count_jobs(j), 2);
    job_free(other);
    job->q = NULL;
    cr_assert_eq(journal_job_insert(j, job), -EINVAL);
    job_free(job);
    journal_close(j);
    freequeue(q);
}

/* ------------------------------------------------------- batched inserts */

/* A job whose every column differs from the next job's, with the optional
 * texts set on some (NULL on others) and payloads in the row or not. */
static struct job *mkjob_full(struct queue *q, uint64_t id)
{
    char body[64];
    snprintf(body, sizeof body, "{\"n\":%llu}", (unsigned long long)id);
    struct job *job = mkjob(q, id, body);
    job->priority = (int16_t)(id % 7) - 3;
    job->attempt = (uint32_t)(id % 5);
    job->run_at = 1700000000000 + (int64_t)id * 3;
    job->lease_until = (int64_t)id * 11;
    job->expires_at = id % 4 ? 0 : 1800000000000 + (int64_t)id;
    job->token = (uint32_t)id * 2654435761u;
    if (id % 3 == 0) {
        char t[32];
        snprintf(t, sizeof t, "u%llu", (unsigned long long)id);
        job_set_str(&job->unique, t, strlen(t));
        job_set_str(&job->last_error, "boom", 4);
        job_set_str(&job->holder, "name=w addr=1 id=2", 18);
        job_set_str(&job->history, "1\t5\tw\tboom\n", 12);
        job->group = malloc(3);
        memcpy(job->group, "g\0x", 3); /* binary-safe */
        job->grouplen = 3;
    }
    return job;
}

static void check_full(const struct job *got, const struct job *want)
{
    cr_assert_eq(got->id, want->id);
    cr_assert_eq(got->len, want->len, "job %llu", (unsigned long long)want->id);
    cr_assert_eq(memcmp(got->payload, want->payload, want->len), 0, "job %llu", (unsigned long long)want->id);
    cr_assert_eq(got->pos, want->pos);
    cr_assert_eq(got->priority, want->priority);
    cr_assert_eq(got->attempt, want->attempt);
    cr_assert_eq(got->run_at, want->run_at);
    cr_assert_eq(got->lease_until, want->lease_until);
    cr_assert_eq(got->expires_at, want->expires_at);
    cr_assert_eq(got->token, want->token);
    cr_assert_eq(got->created_at, want->created_at);
    cr_assert_eq(!got->unique, !want->unique, "job %llu", (unsigned long long)want->id);
    if (want->unique) {
        cr_assert_str_eq(got->unique, want->unique);
        cr_assert_str_eq(got->last_error, want->last_error);
        cr_assert_str_eq(got->holder, want->holder);
        cr_assert_str_eq(got->history, want->history);
        cr_assert_eq(got->grouplen, 3);
        cr_assert_eq(memcmp(got->group, "g\0x", 3), 0);
    } else {
        cr_assert_null(got->last_error);
        cr_assert_null(got->group);
        cr_assert_null(got->holder);
    }
}

/* n jobs in one transaction, every count around the batch sizes (64, 16,
 * 4, 1): each row arrives whole, none twice, none missing (a batch that
 * drops its last row or binds a row at the wrong offset shows here). */
Test(journal, a_turn_of_n_pushes_inserts_every_row_whole)
{
    static const int counts[] = { 1, 3, 4, 5, 15, 16, 17, 21, 63, 64, 65, 85, 129, 200 };
    struct queue *q = mkqueue("batch", 5);
    uint64_t next = 1;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        struct journal *j = jopen(0);
        struct job *jobs[200];
        int n = counts[c];
        cr_assert_eq(journal_begin(j), 0);
        for (int i = 0; i < n; i++) {
            jobs[i] = mkjob_full(q, next++);
            cr_assert_eq(journal_job_insert(j, jobs[i]), 0, "%s", journal_error(j));
            cr_assert_eq(journal_held(j), (size_t)(i + 1) % JOURNAL_BATCH_MAX, "held after %d", i + 1);
        }
        cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
        j = jreopen(j);
        struct loaded l;
        memset(&l, 0, sizeof l);
        journal_load(j, true, on_queue, on_job, &l);
        cr_assert_eq(l.n, n, "after a turn of %d: %d rows", n, l.n);
        cr_assert_eq(journal_begin(j), 0);
        for (int i = 0; i < n; i++) {
            check_full(l.jobs[i], jobs[i]);
            cr_assert_eq(l.qlens[i], 5);
            cr_assert_eq(journal_job_delete(j, jobs[i]->id), 0); /* the next count starts empty */
            job_free(jobs[i]);
        }
        cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
        loaded_free(&l);
        journal_close(j);
    }
    freequeue(q);
}

/* An update or a delete of a row that is not held runs with the turn's
 * held rows still held (they go in together later); one of a held row
 * inserts them first. A held insert's failure still fails an update of
 * another row. */
Test(journal, a_change_of_a_row_not_held_leaves_the_held_rows_held)
{
    struct queue *q = mkqueue("keep", 3);
    struct journal *j = jopen(0);
    struct job *a = mkjob_full(q, 1), *z = mkjob_full(q, 2);
    struct job *b = mkjob_full(q, 3), *c = mkjob_full(q, 4), *d = mkjob_full(q, 5), *e = mkjob_full(q, 6);
    insert_commit(j, a);
    insert_commit(j, z);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, b), 0);
    cr_assert_eq(journal_job_insert(j, c), 0);
    a->state = JOB_DONE;
    a->attempt = 7;
    cr_assert_eq(journal_job_update(j, a), 0, "%s", journal_error(j));
    cr_assert_eq(journal_held(j), 2, "the update of a committed row inserted the held rows");
    cr_assert_eq(journal_job_remove(j, 2, JOURNAL_BODY_IN_ROW), 0, "%s", journal_error(j));
    cr_assert_eq(journal_held(j), 2, "the delete of a committed row inserted the held rows");
    c->state = JOB_RESERVED;
    c->attempt = 2;
    cr_assert_eq(journal_job_update(j, c), 0, "the update finds the second held row: %s", journal_error(j));
    cr_assert_eq(journal_held(j), 0);
    cr_assert_eq(journal_job_insert(j, d), 0);
    cr_assert_eq(journal_job_insert(j, e), 0);
    cr_assert_eq(journal_job_remove(j, 5, JOURNAL_BODY_IN_ROW), 0, "%s", journal_error(j));
    cr_assert_eq(journal_held(j), 0, "the delete of a held row left it held");
    cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));

    j = jreopen(j);
    struct loaded l;
    memset(&l, 0, sizeof l);
    journal_load(j, true, on_queue, on_job, &l);
    cr_assert_eq(l.n, 4, "rows 1, 3, 4 and 6: %d", l.n);
    check_full(l.jobs[0], a);
    check_full(l.jobs[1], b);
    check_full(l.jobs[2], c);
    check_full(l.jobs[3], e);
    cr_assert_eq(l.jobs[0]->state, JOB_DONE);
    cr_assert_eq(l.jobs[2]->state, JOB_RESERVED);
    loaded_free(&l);

    /* a held insert that failed (a duplicate id) fails the next update too */
    struct job *dup = mkjob_full(q, 3);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, dup), 0);
    cr_assert_lt(journal_flush(j), 0);
    a->state = JOB_READY;
    cr_assert_lt(journal_job_update(j, a), 0, "an update after a failed held insert succeeded");
    cr_assert_lt(journal_commit(j), 0);
    struct job *all[] = { dup, a, z, b, c, d, e };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        job_free(all[i]);
    journal_close(j);
    freequeue(q);
}

/* Held rows go in before anything else touches the connection: an update
 * of one of them in the same turn finds its row, a read finds it, another
 * module's statement (the raw handle) sees it; a rollback drops them. */
Test(journal, held_rows_go_in_before_any_other_statement)
{
    struct queue *q = mkqueue("held", 4);
    struct journal *j = jopen(0);
    struct job *a = mkjob_full(q, 1), *b = mkjob_full(q, 2), *c = mkjob_full(q, 3);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, a), 0);
    cr_assert_eq(journal_job_insert(j, b), 0);
    cr_assert_eq(journal_held(j), 2);
    a->state = JOB_RESERVED;
    cr_assert_eq(journal_job_update(j, a), 0, "the update finds the held row: %s", journal_error(j));
    cr_assert_eq(journal_held(j), 0);

    cr_assert_eq(journal_job_insert(j, c), 0);
    char *p = NULL;
    size_t len = 0;
    cr_assert_eq(journal_payload(j, 3, &p, &len), 0, "%s", journal_error(j));
    cr_assert_eq(len, c->len);
    free(p);

    struct job *d = mkjob_full(q, 4);
    cr_assert_eq(journal_job_insert(j, d), 0);
    sqlite3 *db = journal_sqlite(j);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM jobs"), 4, "the raw handle sees the held row");
    cr_assert_eq(journal_job_delete(j, 4), 0);
    cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));

    struct job *e = mkjob_full(q, 5);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, e), 0);
    journal_rollback(j);
    cr_assert_eq(journal_held(j), 0);
    cr_assert_eq(journal_commit(j), 0, "nothing left to insert after the rollback");

    j = jreopen(j);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(l.jobs[0]->state, JOB_RESERVED);
    check_full(l.jobs[1], b);
    check_full(l.jobs[2], c);
    loaded_free(&l);
    journal_close(j);
    struct job *all[] = { a, b, c, d, e };
    for (int i = 0; i < 5; i++)
        job_free(all[i]);
    freequeue(q);
}

Test(journal, load_order_is_by_id)
{
    struct queue *qs[3] = { mkqueue("b", 1), mkqueue("a", 1), mkqueue("a\0", 2) };
    struct job *jobs[120];
    struct journal *j = jopen(2);
    unsigned seed = 12345;

    cr_assert_eq(journal_begin(j), 0);
    for (int i = 0; i < 120; i++) {
        seed = seed * 1103515245 + 12345;
        jobs[i] = mkjob(qs[(seed >> 8) % 3], (uint64_t)(1000 + (seed >> 4) % 100000) * 128 + (uint64_t)i, "{}");
        jobs[i]->state = (uint8_t)((seed >> 12) % JOB_NSTATES);
        jobs[i]->priority = (int16_t)((int)((seed >> 16) % 5) - 2);
        jobs[i]->pos = (int64_t)((seed >> 20) % 7) - 3;
        cr_assert_eq(journal_job_insert(j, jobs[i]), 0);
    }
    cr_assert_eq(journal_commit(j), 0);

    struct loaded l;
    load(j, false, &l);
    cr_assert_eq(l.n, 120);
    for (int i = 1; i < l.n; i++) {
        cr_assert_lt(l.jobs[i - 1]->id, l.jobs[i]->id, "rows %d and %d out of id order", i - 1, i);
        struct job *b = NULL;
        for (int k = 0; k < 120; k++)
            if (jobs[k]->id == l.jobs[i]->id)
                b = jobs[k];
        cr_assert_not_null(b);
        cr_assert_eq(l.qlens[i], b->q->namelen);
        cr_assert_eq(memcmp(l.queues[i], b->q->name, b->q->namelen), 0);
        cr_assert_eq(l.jobs[i]->pos, b->pos);
        cr_assert_eq(l.jobs[i]->priority, b->priority);
    }
    loaded_free(&l);
    for (int i = 0; i < 120; i++)
        job_free(jobs[i]);
    journal_close(j);
    for (int i = 0; i < 3; i++)
        freequeue(qs[i]);

    /* A plain scan of the table: no sort step, no index. */
    sqlite3 *db = raw_open();
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT j.id, length(p.body) FROM jobs j "
                                    "LEFT JOIN payloads p ON p.id = j.id ORDER BY j.id",
                                    -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        cr_assert_null(strstr(detail, "TEMP B-TREE"), "%s", detail);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(journal, a_failing_callback_stops_the_load)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(0);
    cr_assert_eq(journal_begin(j), 0);
    for (uint64_t id = 1; id <= 5; id++) {
        struct job *job = mkjob(q, id, "{}");
        cr_assert_eq(journal_job_insert(j, job), 0);
        job_free(job);
    }
    cr_assert_eq(journal_commit(j), 0);

    struct loaded l;
    memset(&l, 0, sizeof l);
    l.stop_at = 2;
    cr_assert_eq(journal_load(j, true, on_queue, on_job, &l), -ECANCELED);
    cr_assert_eq(l.n, 2);
    loaded_free(&l);
    /* The journal is usable afterwards (the statement was reset). */
    cr_assert_eq(count_jobs(j), 5);
    journal_close(j);
    freequeue(q);
}

/* ------------------------------------------------------ payloads on disk */

Test(journal, load_without_payloads_then_fetch_them)
{
    struct queue *q = mkqueue("img", 3);
    struct journal *j = jopen(0);
    size_t big = (1 << 20) + 3;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)(i % 251);
    struct job *a = job_new(1, p, big);
    struct job *b = mkjob(q, 2, "");
    a->q = q;
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, a), 0);
    cr_assert_eq(journal_job_insert(j, b), 0);
    cr_assert_eq(journal_commit(j), 0);
    j = jreopen(j);

    struct loaded l;
    load(j, false, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_null(l.jobs[0]->payload);
    cr_assert_eq(l.jobs[0]->len, big);
    cr_assert_null(l.jobs[1]->payload);
    cr_assert_eq(l.jobs[1]->len, 0);
    loaded_free(&l); /* job_free copes with payload == NULL */

    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(journal_payload(j, 1, &out, &len), 0);
    cr_assert_eq(len, big);
    cr_assert_eq(memcmp(out, p, big), 0);
    cr_assert_eq(out[len], '\0');
    free(out);
    cr_assert_eq(journal_payload(j, 2, &out, &len), 0);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(out, "");
    free(out);
    cr_assert_eq(journal_payload(j, 3, &out, &len), -ENOENT);

    free(p);
    job_free(a);
    job_free(b);
    journal_close(j);
    freequeue(q);
}

/* ---------------------------------------------------- queues and meta */

Test(journal, queue_rows_round_trip)
{
    static const char bin[] = { 'q', '\0', '1' };
    struct queue *a = mkqueue("emails", 6), *b = mkqueue(bin, sizeof bin);
    const char *why = NULL;
    struct journal *j = jopen(0);

    cr_assert_eq(qconf_set(&a->conf, "retries", 7, "3", 1, &why), 0);
    cr_assert_eq(qconf_set(&a->conf, "lease", 5, "5000", 4, &why), 0);
    b->paused = true;
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_queue_put(j, a), 0);
    cr_assert_eq(journal_queue_put(j, b), 0);
    cr_assert_eq(journal_commit(j), 0);
    a->paused = true; /* an update of the same row */
    cr_assert_eq(journal_queue_put(j, a), 0);
    j = jreopen(j);

    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.nq, 2);
    cr_assert_eq(l.n, 0);
    /* ORDER BY name: "emails" < "q\0001" */
    cr_assert_eq(l.qrows[0].len, 6);
    cr_assert_eq(memcmp(l.qrows[0].name, "emails", 6), 0);
    cr_assert(l.qrows[0].paused);
    struct qconf c;
    qconf_defaults(&c, 0);
    qconf_parse(&c, l.qrows[0].config);
    cr_assert_eq(memcmp(&c, &a->conf, sizeof c), 0, "config \"%s\"", l.qrows[0].config);
    cr_assert_eq(c.retries, 3);
    cr_assert_eq(c.lease, 5000);
    cr_assert_eq(l.qrows[1].len, sizeof bin);
    cr_assert_eq(memcmp(l.qrows[1].name, bin, sizeof bin), 0);
    cr_assert(l.qrows[1].paused);
    loaded_free(&l);

    cr_assert_eq(journal_queue_delete(j, "emails", 6), 0);
    cr_assert_eq(journal_queue_delete(j, "none", 4), 0);
    j = jreopen(j);
    load(j, true, &l);
    cr_assert_eq(l.nq, 1);
    cr_assert_eq(l.qrows[0].len, sizeof bin);
    loaded_free(&l);
    journal_close(j);
    freequeue(a);
    freequeue(b);
}

Test(journal, meta_get_and_put)
{
    struct journal *j = jopen(0);
    char buf[16];
    cr_assert_eq(journal_meta_get(j, "shards", buf, sizeof buf), -ENOENT);
    cr_assert_eq(journal_meta_put(j, "shards", "4"), 0);
    cr_assert_eq(journal_meta_put(j, "empty", ""), 0);
    j = jreopen(j);
    cr_assert_eq(journal_meta_get(j, "shards", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "4");
    cr_assert_eq(journal_meta_get(j, "empty", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_meta_put(j, "shards", "0123456789abcdef"), 0);
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(journal_meta_get(j, "shards", buf, sizeof buf), -ERANGE);
    char big[17];
    cr_assert_eq(journal_meta_get(j, "shards", big, sizeof big), 0);
    cr_assert_str_eq(big, "0123456789abcdef");
    journal_close(j);
}

/* ------------------------------------------------ commit and rollback */

Test(journal, rollback_discards_the_turn)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *keep = mkjob(q, 1, "{}"), *lose = mkjob(q, 2, "{}");
    struct journal *j = jopen(0);
    insert_commit(j, keep);

    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, lose), 0);
    keep->state = JOB_DONE;
    cr_assert_eq(journal_job_update(j, keep), 0);
    cr_assert_eq(journal_meta_put(j, "k", "v"), 0);
    journal_rollback(j);
    cr_assert_not(journal_in_txn(j));
    journal_rollback(j); /* harmless twice */
    cr_assert_eq(journal_commit(j), 0); /* nothing to commit */
    j = jreopen(j);

    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->id, 1);
    cr_assert_eq(l.jobs[0]->state, JOB_READY);
    loaded_free(&l);
    char buf[8];
    cr_assert_eq(journal_meta_get(j, "k", buf, sizeof buf), -ENOENT);

    /* Closing with an open transaction discards it too. */
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, lose), 0);
    j = jreopen(j);
    cr_assert_eq(count_jobs(j), 1);
    job_free(keep);
    job_free(lose);
    journal_close(j);
    freequeue(q);
}

Test(journal, commits_survive_reopen_in_every_fsync_mode)
{
    struct queue *q = mkqueue("mail", 4);
    for (int mode = 0; mode <= 2; mode++) {
        struct journal *j = jopen(mode);
        struct job *job = mkjob(q, (uint64_t)mode + 1, "{}");
        insert_commit(j, job);
        job_free(job);
        journal_checkpoint(j);
        journal_close(j);
    }
    struct journal *j = jopen(0);
    cr_assert_eq(count_jobs(j), 3);
    journal_close(j);
    freequeue(q);
}

/* The syncs a mode makes, counted by the journal's VFS (syncvfs.h): 20
 * commits after the first (which creates the WAL), then a checkpoint. */
static void count_syncs(int mode, uint64_t *commits, uint64_t *checkpoint)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(mode);
    struct job *job = mkjob(q, 1, "{}");
    insert_commit(j, job);
    job_free(job);
    uint64_t before = syncvfs_syncs();
    for (uint64_t id = 2; id <= 21; id++) {
        job = mkjob(q, id, "{}");
        insert_commit(j, job);
        job_free(job);
    }
    *commits = syncvfs_syncs() - before;
    before = syncvfs_syncs();
    journal_checkpoint(j);
    *checkpoint = syncvfs_syncs() - before;
    journal_close(j);
    freequeue(q);
}

Test(journal, fsync_always_syncs_every_commit)
{
    uint64_t commits, checkpoint;
    count_syncs(0, &commits, &checkpoint);
    cr_assert_geq(commits, 20, "--fsync always: %llu syncs for 20 commits, expected one per commit at least",
                  (unsigned long long)commits);
}

Test(journal, fsync_batch_syncs_only_at_checkpoints)
{
    uint64_t commits, checkpoint;
    count_syncs(1, &commits, &checkpoint);
    cr_assert_eq(commits, 0, "--fsync batch: %llu syncs for 20 commits, expected none", (unsigned long long)commits);
    cr_assert_gt(checkpoint, 0, "--fsync batch: a checkpoint made no sync");
}

Test(journal, fsync_off_never_syncs)
{
    uint64_t commits, checkpoint;
    count_syncs(2, &commits, &checkpoint);
    cr_assert_eq(commits + checkpoint, 0, "--fsync off: %llu syncs, expected none",
                 (unsigned long long)(commits + checkpoint));
}

Test(journal, checkpoint_moves_the_wal_into_the_database)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(0);
    for (uint64_t id = 1; id <= 50; id++) {
        struct job *job = mkjob(q, id, "{\"pad\":\"................................\"}");
        insert_commit(j, job);
        job_free(job);
    }
    cr_assert_eq(journal_begin(j), 0);
    journal_checkpoint(j); /* inside a transaction: does nothing */
    journal_rollback(j);
    journal_checkpoint(j);
    journal_checkpoint(j); /* nothing new: does nothing */

    /* The WAL was folded into the database and truncated to nothing. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat stw;
    cr_assert_eq(stat(wal, &stw), 0);
    cr_assert_eq(stw.st_size, 0, "WAL still holds %lld bytes", (long long)stw.st_size);
    journal_close(j); /* spoold holds its databases exclusively while open */
    sqlite3 *db = raw_open();
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 50);
    sqlite3_finalize(st);
    sqlite3_close(db);
    freequeue(q);
}

/* ------------------------------------------------------------- faults */

Test(journal, injected_disk_full_rolls_back_and_the_next_turn_works)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *a = mkjob(q, 1, "{}"), *b = mkjob(q, 2, "{}");
    struct journal *j = jopen(0);
    char want[256];

    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, a), 0);
    journal_fail_next(j, 1, -ENOSPC);
    cr_assert_eq(journal_job_insert(j, b), -ENOSPC);
    snprintf(want, sizeof want, "disk full writing %s (free space, then the shard retries)", path);
    cr_assert_str_eq(journal_error(j), want);
    cr_assert(journal_in_txn(j));
    journal_rollback(j);
    cr_assert_not(journal_in_txn(j));

    /* The next turn works. */
    insert_commit(j, b);
    j = jreopen(j);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->id, 2);
    loaded_free(&l);
    job_free(a);
    job_free(b);
    journal_close(j);
    freequeue(q);
}

Test(journal, injected_commit_failure_leaves_nothing_on_disk)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *a = mkjob(q, 1, "{}");
    struct journal *j = jopen(0);

    /* A commit with no transaction open is not counted: the armed fault
     * hits the next write. */
    journal_fail_next(j, 1, -EIO);
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(journal_job_insert(j, a), -EIO);

    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, a), 0);
    journal_fail_next(j, 1, EIO); /* positive is taken as -EIO */
    cr_assert_eq(journal_commit(j), -EIO);
    cr_assert_not_null(strstr(journal_error(j), "I/O error on"), "%s", journal_error(j));
    cr_assert_not(journal_in_txn(j));
    journal_rollback(j); /* what the shard does: harmless */
    cr_assert_eq(count_jobs(j), 0);
    j = jreopen(j);
    cr_assert_eq(count_jobs(j), 0);

    insert_commit(j, a);
    j = jreopen(j);
    cr_assert_eq(count_jobs(j), 1);
    job_free(a);
    journal_close(j);
    freequeue(q);
}

Test(journal, every_write_goes_through_the_seam)
{
    struct queue *q = mkqueue("mail", 4);
    struct job *a = mkjob(q, 1, "{}"), *b = mkjob(q, 2, "{}");
    struct journal *j = jopen(0);
    insert_commit(j, a);
    cr_assert_eq(journal_queue_put(j, q), 0);
    cr_assert_eq(journal_meta_put(j, "k", "v"), 0);

    journal_fail_next(j, 6, -ENOSPC);
    cr_assert_eq(journal_job_insert(j, b), -ENOSPC);
    a->state = JOB_DEAD;
    cr_assert_eq(journal_job_update(j, a), -ENOSPC);
    cr_assert_eq(journal_job_delete(j, 1), -ENOSPC);
    q->paused = true;
    cr_assert_eq(journal_queue_put(j, q), -ENOSPC);
    cr_assert_eq(journal_queue_delete(j, "mail", 4), -ENOSPC);
    cr_assert_eq(journal_meta_put(j, "k", "w"), -ENOSPC);
    /* Six used up: writes work again, reads never counted. */
    char buf[8];
    cr_assert_eq(journal_meta_get(j, "k", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "v");

    j = jreopen(j);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.jobs[0]->state, JOB_READY);
    cr_assert_eq(l.nq, 1);
    cr_assert_not(l.qrows[0].paused);
    loaded_free(&l);
    cr_assert_eq(journal_job_insert(j, b), 0);
    job_free(a);
    job_free(b);
    journal_close(j);
    freequeue(q);
}

/* A real write failure: the file size limit stops the WAL from growing, as
 * a full disk would; SQLite reports an I/O error at commit. Once the limit
 * is lifted, the same turn commits. */
Test(journal, a_real_write_failure_rolls_back_and_recovers)
{
    struct queue *q = mkqueue("img", 3);
    struct journal *j = jopen(0);
    struct job *small = mkjob(q, 1, "{}");
    insert_commit(j, small);
    journal_checkpoint(j);

    size_t big = 4 << 20;
    char *p = malloc(big);
    memset(p, 'x', big);
    struct job *job = job_new(2, p, big);
    free(p);
    job->q = q;

    struct rlimit old, lim;
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1 << 20;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

    cr_assert_eq(journal_begin(j), 0);
    int rc = journal_job_insert(j, job);
    if (rc == 0)
        rc = journal_commit(j);
    else
        journal_rollback(j);
    cr_log_info("size limit: %d %s", rc, journal_error(j));
    cr_assert(rc == -EIO || rc == -ENOSPC, "rc %d: %s", rc, journal_error(j));
    cr_assert_not_null(strstr(journal_error(j), path), "%s", journal_error(j));
    cr_assert_not(journal_in_txn(j));
    cr_assert_eq(count_jobs(j), 1);

    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    insert_commit(j, job);
    j = jreopen(j);
    cr_assert_eq(count_jobs(j), 2);
    job_free(small);
    job_free(job);
    journal_close(j);
    freequeue(q);
}

Test(journal, a_row_this_spoold_cannot_represent_is_reported)
{
    struct journal *j = jopen(0);
    journal_close(j);
    sqlite3 *db = raw_open();
    raw_exec(db, "INSERT INTO jobs (id, queue, state, created_at, updated_at) "
                 "VALUES (9, CAST('q' AS BLOB), 9, 0, 0)");
    raw_exec(db, "INSERT INTO payloads (id, body) VALUES (9, CAST('{}' AS BLOB))");
    sqlite3_close(db);

    j = jopen(0);
    struct loaded l;
    memset(&l, 0, sizeof l);
    cr_assert_eq(journal_load(j, true, on_queue, on_job, &l), -EILSEQ);
    cr_assert_not_null(strstr(journal_error(j), "has state 9"), "%s", journal_error(j));
    cr_assert_eq(l.n, 0);
    journal_close(j);
}

/* A failed WAL sync fails the journal for good: no transaction begins, no
 * commit, no sync, no WAL handed out, no checkpoint; the error names the
 * WAL and the OS error; reads work; the WAL is kept at close for the
 * recovery of the next open. */
Test(journal, a_failed_wal_sync_fails_the_journal_for_good)
{
    struct journal *j = jopen(1); /* FSYNC_BATCH, as --fsync always runs it */
    struct queue *q = mkqueue("fq", 2);
    struct job *a = mkjob(q, 1, "{\"a\":1}"), *b = mkjob(q, 2, "{\"b\":1}");
    insert_commit(j, a);
    void *wal = journal_wal(j);
    cr_assert_not_null(wal, "a commit was made: its WAL needs a sync");
    cr_assert_eq(journal_failed(j, NULL), 0);
    cr_assert_eq(journal_synced(j, -EIO), -EIO);
    const char *why = NULL;
    cr_assert_eq(journal_failed(j, &why), -EIO);
    char walname[200];
    snprintf(walname, sizeof walname, "%s-wal", path);
    cr_assert(strstr(why, walname), "%s does not name %s", why, walname);
    cr_assert(strstr(why, "EIO") && strstr(why, "Input/output error"), "%s", why);
    cr_assert_eq(journal_begin(j), -EIO, "a transaction began after the failed sync");
    cr_assert(strstr(journal_error(j), "EIO"), "%s", journal_error(j));
    cr_assert_null(journal_wal(j), "a WAL was handed out for a sync after the failed one");
    cr_assert_eq(journal_sync(j), -EIO, "journal_sync claimed a sync after the failed one");
    cr_assert_eq(journal_synced(j, 0), -EIO, "a good sync after the failed one was taken as durable");
    cr_assert_eq(journal_failed(j, NULL), -EIO, "a later good sync cleared the failure");
    journal_checkpoint(j);
    struct loaded l = { 0 };
    load(j, true, &l); /* reads work */
    cr_assert_eq(l.n, 1);
    loaded_free(&l);
    journal_close(j);
    struct stat st;
    cr_assert_eq(stat(walname, &st), 0, "closing checkpointed the WAL of a failed journal away");
    cr_assert_gt(st.st_size, 0);
    j = jopen(1);
    cr_assert_eq(journal_failed(j, NULL), 0, "a new open starts sound");
    insert_commit(j, b);
    journal_close(j);
    job_free(a);
    job_free(b);
    freequeue(q);
}

/* ------------------------------------------- small payloads in the job row */

/* A payload body of n bytes of c, NUL-terminated. */
static char *body_of(char c, size_t n)
{
    char *p = malloc(n + 1);
    memset(p, c, n);
    p[n] = '\0';
    return p;
}

/* Where the payload of job id is: 1 its own row, 2 a payloads row, 3 both (damage), 0 neither. */
static int payload_place(struct journal *j, uint64_t id)
{
    char sql[192];
    snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM jobs WHERE id = %llu AND body IS NOT NULL) + "
             "2 * (SELECT count(*) FROM payloads WHERE id = %llu)", (unsigned long long)id, (unsigned long long)id);
    return (int)raw_int(journal_sqlite(j), sql);
}

Test(journal, payloads_up_to_the_inline_bound_live_in_the_job_row)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(0);
    char *at = body_of('a', JOURNAL_INLINE_MAX), *over = body_of('b', JOURNAL_INLINE_MAX + 1);
    struct job *jobs[3] = { mkjob(q, 1, at), mkjob(q, 2, over), mkjob(q, 3, "") };
    cr_assert_eq(journal_begin(j), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(journal_job_insert(j, jobs[i]), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(payload_place(j, 1), 1, "a payload of exactly JOURNAL_INLINE_MAX bytes is in the job row");
    cr_assert_eq(payload_place(j, 2), 2, "a payload one byte longer has a payloads row");
    cr_assert_eq(payload_place(j, 3), 1, "an empty payload is an empty blob in the row, not NULL");

    /* A state change keeps the body in the row. */
    jobs[0]->state = JOB_RESERVED;
    cr_assert_eq(journal_job_update(j, jobs[0]), 0, "%s", journal_error(j));
    j = jreopen(j);
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.jobs[0]->payload, at);
    cr_assert_eq(l.jobs[0]->state, JOB_RESERVED);
    cr_assert_str_eq(l.jobs[1]->payload, over);
    cr_assert_str_eq(l.jobs[2]->payload, "");
    loaded_free(&l);
    load(j, false, &l);
    cr_assert_eq(l.jobs[0]->len, JOURNAL_INLINE_MAX, "the length of a body in the row");
    cr_assert_eq(l.jobs[1]->len, JOURNAL_INLINE_MAX + 1);
    cr_assert_eq(l.jobs[2]->len, 0);
    loaded_free(&l);
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(journal_payload(j, 1, &out, &len), 0, "%s", journal_error(j));
    cr_assert_eq(len, JOURNAL_INLINE_MAX);
    cr_assert_str_eq(out, at);
    free(out);

    /* The ack of each leaves nothing behind. */
    cr_assert_eq(journal_begin(j), 0);
    for (uint64_t id = 1; id <= 3; id++)
        cr_assert_eq(journal_job_delete(j, id), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(raw_int(journal_sqlite(j), "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM payloads)"), 0);
    for (int i = 0; i < 3; i++)
        job_free(jobs[i]);
    free(at);
    free(over);
    journal_close(j);
    freequeue(q);
}

Test(journal, the_inline_bound_is_the_journals)
{
    struct queue *q = mkqueue("mail", 4);
    struct journal *j = jopen(0);
    journal_set_inline_max(j, 4);
    struct job *a = mkjob(q, 1, "abcd"), *b = mkjob(q, 2, "abcde");
    insert_commit(j, a);
    insert_commit(j, b);
    cr_assert_eq(payload_place(j, 1), 1);
    cr_assert_eq(payload_place(j, 2), 2);
    job_free(a);
    job_free(b);
    journal_close(j);
    freequeue(q);
}

/* A data directory as main left it before 0010: every payload in a
 * payloads row. It opens, its jobs load and read, an ack deletes both rows,
 * and new pushes go in the row next to them. */
Test(journal, a_database_at_0009_with_payload_rows_opens_serves_and_acks)
{
    int old = 9;
    sqlite3 *db = raw_at_version(old);
    raw_exec(db, "INSERT INTO jobs (id, queue, state, pos, lease_until, created_at, updated_at) VALUES "
                 "(5, CAST('mail' AS BLOB), 0, 5, 0, 1, 2), (6, CAST('mail' AS BLOB), 0, 6, 0, 1, 2)");
    raw_exec(db, "INSERT INTO payloads (id, body) VALUES (5, CAST('{\"old\":5}' AS BLOB)), "
                 "(6, CAST('{\"old\":6}' AS BLOB))");
    sqlite3_close(db);

    struct journal *j = jopen(0);
    cr_assert_eq(raw_int(journal_sqlite(j), "PRAGMA user_version"), journal_schema_version());
    cr_assert_eq(raw_int(journal_sqlite(j), "SELECT count(*) FROM jobs WHERE body IS NULL"), 2,
                 "0010 leaves the old rows where they are");
    struct loaded l;
    load(j, true, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.jobs[0]->payload, "{\"old\":5}");
    loaded_free(&l);
    load(j, false, &l);
    cr_assert_eq(l.jobs[1]->len, 9, "the length of a payload in its payloads row");
    loaded_free(&l);
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(journal_payload(j, 6, &out, &len), 0, "%s", journal_error(j));
    cr_assert_str_eq(out, "{\"old\":6}");
    free(out);

    struct queue *q = mkqueue("mail", 4);
    struct job *fresh = mkjob(q, 7, "{\"new\":7}");
    insert_commit(j, fresh);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_delete(j, 5), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(payload_place(j, 5), 0, "the ack of an old job deleted its payloads row too");
    cr_assert_eq(payload_place(j, 6), 2);
    cr_assert_eq(payload_place(j, 7), 1);
    j = jreopen(j);
    load(j, true, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.jobs[0]->payload, "{\"old\":6}");
    cr_assert_str_eq(l.jobs[1]->payload, "{\"new\":7}");
    loaded_free(&l);
    job_free(fresh);
    journal_close(j);
    freequeue(q);
}
