/*
 * journal.c - a shard's SQLite journal: one database per shard, WAL mode,
 * group commit, embedded migrations, recovery reads and a fault seam.
 *
 * Who calls it: only the shard thread that opened it. The connection is
 * opened with SQLITE_OPEN_NOMUTEX, so nothing here locks; sharing a struct
 * journal between threads is a bug.
 *
 * Shape of a shard turn:
 *
 *     journal_begin()                 first change of the turn ("BEGIN")
 *     journal_job_insert()            copies the row; the turn's rows go in
 *                                     together, a few INSERTs of many rows
 *     journal_job_update/...          one prepared statement per change
 *     journal_commit()                "COMMIT": the durability point
 *     ... only now release the turn's replies ...
 *
 * With synchronous=FULL (--fsync always) COMMIT in WAL mode fsyncs the WAL,
 * so a reply sent after it is on disk; NORMAL (batch) fsyncs only at
 * checkpoints; OFF never. A failed write leaves the transaction open for
 * journal_rollback(); a failed commit rolls back before returning.
 *
 * Invariants:
 * - every hot statement is prepared once at open (SQLITE_PREPARE_PERSISTENT)
 *   and is reset with its bindings cleared after each use, so no statement
 *   holds a read lock or points at caller memory between calls;
 * - values are bound column by column; no struct is ever written as bytes;
 * - rows that journal_job_insert() holds back are inserted before any
 *   other statement runs on the connection (every entry point that runs
 *   one, or hands the connection out, calls journal_flush() first), so
 *   nothing ever reads or changes the jobs table without them; the
 *   exceptions, journal_job_update() and journal_job_remove(), change one
 *   row by its id and read no other, and flush them first when that row is
 *   one of them;
 * - the schema is exactly migrations 1..journal_user_version(): open applies
 *   the missing ones, each in its own transaction with its user_version, and
 *   refuses a database newer than the binary before changing anything in it;
 * - every error leaves a sentence in j->err that names the file and says
 *   what to do, and returns a negative errno-style code.
 */
#include "journal.h"

#include "log.h"
#include "paylog.h"
#include "queue.h"
#include "syncvfs.h"

#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOURNAL_BUSY_TIMEOUT_MS 100
/* SQLite checkpoints on its own when a commit leaves the WAL this many
 * pages long (4 KiB pages: about 4 MiB), even if the shard is never idle. */
#define JOURNAL_AUTOCHECKPOINT_PAGES 1000
/* After a checkpoint the WAL file is truncated back to this size. */
#define JOURNAL_SIZE_LIMIT (32LL * 1024 * 1024)
#define JOURNAL_CONF_MAX 1024

enum journal_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_JOB_UPDATE,
    ST_JOB_DELETE,
    ST_JOB_REMOVE,
    ST_PAYLOAD_INSERT,
    ST_PAYLOAD_DELETE,
    ST_PAYLOAD,
    ST_PAYLOAD_MOVE,
    ST_QUEUE_PUT,
    ST_QUEUE_DELETE,
    ST_META_GET,
    ST_META_PUT,
    ST_COUNT_COMMIT,
    ST_LOAD_QUEUES,
    ST_LOAD_JOBS,
    ST_LOAD_JOBS_NOPAYLOAD,
    ST_COUNT
};

/* Column order of both load statements; payload (or its length) is last. */
#define JOB_COLUMNS \
    "j.id, j.queue, j.state, j.pos, j.priority, j.attempt, j.retries, j.lease_ms, j.run_at, " \
    "j.lease_until, j.created_at, j.updated_at, j.last_error, j.uniq, j.expires_at, j.grp, " \
    "j.holder, j.history, j.token"
#define COL_PAYLOAD 19 /* after JOB_COLUMNS: j.body or p.body, or its length */
#define COL_SEG 20     /* then where a payload in the payload log is: seg, off, len, crc */
#define PAYLOG_COLUMNS ", p.seg, p.off, p.len, p.crc"
/* The payload: in the job's row (0010) or its payloads row. */
#define BODY "coalesce(j.body, p.body)"
/* rowid order: a plain scan of jobs, one rowid lookup of payloads per row */
#define JOB_ORDER " FROM jobs j LEFT JOIN payloads p ON p.id = j.id ORDER BY j.id"

static const char *const journal_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_JOB_UPDATE] =
        "UPDATE jobs SET state = ?2, pos = ?3, priority = ?4, attempt = ?5, retries = ?6, "
        "lease_ms = ?7, run_at = ?8, lease_until = ?9, updated_at = ?10, last_error = ?11, "
        "uniq = ?12, expires_at = ?13, grp = ?14, holder = ?15, history = ?16, token = ?17 WHERE id = ?1",
    /* a job without its body in the row has a payloads row to delete */
    [ST_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1 RETURNING body IS NULL",
    /* the caller knows where the body is: no RETURNING (which opens a
     * temporary table on every step) */
    [ST_JOB_REMOVE] = "DELETE FROM jobs WHERE id = ?1",
    [ST_PAYLOAD_INSERT] = "INSERT INTO payloads (id, body, seg, off, len, crc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* the segment tells the payload log which count goes down */
    [ST_PAYLOAD_DELETE] = "DELETE FROM payloads WHERE id = ?1 RETURNING seg, len",
    [ST_PAYLOAD] = "SELECT " BODY ", p.seg, p.off, p.len, p.crc FROM jobs j LEFT JOIN payloads p ON p.id = j.id "
                   "WHERE j.id = ?1",
    /* compaction: the row moves to the copy if it still points at the old record */
    [ST_PAYLOAD_MOVE] = "UPDATE payloads SET seg = ?2, off = ?3 WHERE id = ?1 AND seg = ?4 AND off = ?5",
    [ST_QUEUE_PUT] =
        "INSERT INTO queues (name, config, paused) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET config = excluded.config, paused = excluded.paused",
    [ST_QUEUE_DELETE] = "DELETE FROM queues WHERE name = ?1",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] =
        "INSERT INTO meta (key, value) VALUES (?1, ?2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* Every commit counts itself (datadir.h: the commit mark checks it). */
    [ST_COUNT_COMMIT] =
        "INSERT INTO meta (key, value) VALUES ('commits', '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
    [ST_LOAD_QUEUES] = "SELECT name, config, paused FROM queues ORDER BY name",
    [ST_LOAD_JOBS] = "SELECT " JOB_COLUMNS ", " BODY PAYLOG_COLUMNS JOB_ORDER,
    [ST_LOAD_JOBS_NOPAYLOAD] =
        "SELECT " JOB_COLUMNS ", coalesce(length(j.body), p.len, length(p.body))" PAYLOG_COLUMNS JOB_ORDER,
};

/* The INSERT of a job row: INS_COLS parameters per row, prepared for
 * ins_rows[k] rows (journal_flush() uses the largest that fits). */
#define INS_COLS 20
#define INS_SIZES 4
static const int ins_rows[INS_SIZES] = { JOURNAL_BATCH_MAX, 16, 4, 1 };

/* A row held back by journal_job_insert(): its integer columns by
 * parameter number, its blob and text columns as ranges of j->pbuf. */
enum pend_blob { PB_QUEUE, PB_BODY, PB_ERROR, PB_UNIQ, PB_GROUP, PB_HOLDER, PB_HISTORY, PB_COUNT };
struct pend_row {
    int64_t v[INS_COLS + 1];
    size_t off[PB_COUNT];
    int64_t len[PB_COUNT]; /* -1: NULL */
};

struct journal {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *ins[INS_SIZES]; /* INSERT of ins_rows[k] job rows */
    struct pend_row *pend;        /* the turn's rows not inserted yet (at most JOURNAL_BATCH_MAX) */
    size_t npend;
    char *pbuf;                   /* their blobs and texts */
    size_t plen, pcap;
    int flush_err;                /* an insert of held rows failed: the commit fails with it */
    bool dirty;               /* written since the last checkpoint */
    int fsync_mode;           /* FSYNC_ALWAYS (0), BATCH (1), OFF (2) */
    bool unsynced;            /* batch: committed since the WAL was last synced */
    int fail_n, fail_err;     /* fault seam */
    int64_t commits;          /* the "commits" meta row as of the last commit */
    struct paylog *pl;        /* payloads of at least pl_min bytes go there (not owned) */
    uint32_t pl_min;          /* 0: none go there; rows pointing there are still read */
    uint32_t inline_max;      /* payloads up to this many bytes go in the job's row */
    uint64_t *drop;           /* load: jobs whose payload record was torn, deleted after the scan */
    size_t ndrop, capdrop;
    int failed;               /* a sync failed (negative errno): nothing is written or synced any more */
    char failed_why[600];     /* which sync of which file failed, and the OS error */
    char err[1024];
};

/* ---------------------------------------------------------------- errors */

/* Writes the sentence for err into j->err. op names what was being done
 * ("commit", "open", ...); detail is SQLite's message or NULL. */
static int journal_set_error(struct journal *j, int err, const char *op, const char *detail)
{
    const char *p = j->path;
    const char *d = detail ? detail : "";

    switch (-err) {
    case ENOSPC:
        snprintf(j->err, sizeof j->err,
                 "disk full writing %s (free space, then the shard retries)", p);
        break;
    case EIO:
        snprintf(j->err, sizeof j->err,
                 "I/O error on %s during %s: %s (check the disk and the kernel log; "
                 "the shard retries)", p, op, d);
        break;
    case EBUSY:
        snprintf(j->err, sizeof j->err,
                 "%s is locked by another process during %s: %s (is another spoold "
                 "using this --data-dir?)", p, op, d);
        break;
    case EILSEQ:
        snprintf(j->err, sizeof j->err,
                 "%s is damaged or is not a spool database (%s: %s): restore it from a "
                 "backup or move it out of the --data-dir", p, op, d);
        break;
    case EROFS:
    case EACCES:
    case EPERM:
        snprintf(j->err, sizeof j->err,
                 "cannot write %s (%s: %s): check the permissions and free space of "
                 "the --data-dir", p, op, d);
        break;
    case ENOENT:
        snprintf(j->err, sizeof j->err, "cannot open %s (%s: %s): check that the "
                 "--data-dir exists and is writable", p, op, d);
        break;
    case ENOMEM:
        snprintf(j->err, sizeof j->err, "out of memory in the journal %s during %s", p, op);
        break;
    default:
        snprintf(j->err, sizeof j->err, "journal %s: %s failed: %s", p, op, d);
        break;
    }
    return err;
}

/* Maps a SQLite result code to -errno; see journal.h for the list. */
static int journal_errno(sqlite3 *db, int rc)
{
    int sys = db ? sqlite3_system_errno(db) : 0;

    switch (rc & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_IOERR:
        if (rc == SQLITE_IOERR_NOMEM)
            return -ENOMEM;
        if (sys == ENOSPC || sys == EDQUOT)
            return -ENOSPC;
        return -EIO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return -EILSEQ;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return sys == EACCES || sys == EPERM || sys == EROFS ? -sys : -ENOENT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_TOOBIG:
        return -E2BIG;
    default:
        return -EIO;
    }
}

/* Records the connection's last error (rc from the failing call). */
static int journal_sqlite_error(struct journal *j, int rc, const char *op)
{
    const char *msg = j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc);

    return journal_set_error(j, journal_errno(j->db, rc), op, msg);
}

/* The fault seam: true (with *err set) when this write must fail. */
static bool journal_injected(struct journal *j, const char *op, int *err)
{
    if (j->fail_n <= 0)
        return false;
    j->fail_n--;
    *err = journal_set_error(j, j->fail_err, op, "injected fault");
    return true;
}

/* Before a write: the fault seam, then the held rows go in first (a write
 * may touch one of them). True (with *err set) when the write must not run. */
static bool journal_refused(struct journal *j, const char *op, int *err)
{
    return journal_injected(j, op, err) || (*err = journal_flush(j)) < 0;
}

void journal_fail_next(struct journal *j, int n, int err)
{
    j->fail_n = n;
    j->fail_err = err < 0 ? err : -err;
}

const char *journal_error(const struct journal *j)
{
    return j->err;
}

const char *journal_path(const struct journal *j)
{
    return j->path;
}

void *journal_sqlite(struct journal *j)
{
    journal_flush(j); /* a failure fails the commit */
    return j->db;
}

int journal_sqlite_fail(struct journal *j, int rc, const char *op)
{
    return journal_sqlite_error(j, rc, op);
}

/* A sync failed. On Linux a failed fsync may have marked the pages it was
 * writing clean without their reaching the disk, so a later sync that
 * succeeds does not make them durable, and recovery stops at the first
 * frame they broke: what was committed after them would be lost too.
 * Like PostgreSQL, the journal does not retry: from now on it writes,
 * syncs and checkpoints nothing, and leaves the WAL for recovery at close
 * (which reads what really is on disk). Returns err. */
static int journal_fence(struct journal *j, int err, const char *what)
{
    if (!j->failed) {
        j->failed = err;
        snprintf(j->failed_why, sizeof j->failed_why, "%s of %s%s failed (%s: %s)", what, j->path,
                 strcmp(what, "fdatasync") ? "" : "-wal", strerrorname_np(-err) ? strerrorname_np(-err) : "?",
                 strerror(-err));
        journal_keep_wal(j);
    }
    snprintf(j->err, sizeof j->err, "%s", j->failed_why);
    return j->failed;
}

int journal_failed(const struct journal *j, const char **why)
{
    if (why)
        *why = j->failed ? j->failed_why : "";
    return j->failed;
}

/* After a failed SQLite call: a failed sync fences the journal. */
static void journal_fence_if_sync(struct journal *j, const char *what)
{
    int ext = sqlite3_extended_errcode(j->db);
    if (ext == SQLITE_IOERR_FSYNC || ext == SQLITE_IOERR_DIR_FSYNC) {
        int e = sqlite3_system_errno(j->db);
        journal_fence(j, -(e > 0 ? e : EIO), what);
    }
}

/* ------------------------------------------------------------ statements */

static void journal_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row, then resets it. bound is the OR
 * of the statement's sqlite3_bind_*() results: a failed bind (a value too
 * big) must not run the statement with a NULL in its place. */
static int journal_step_bound(struct journal *j, sqlite3_stmt *st, int bound, const char *op)
{
    int rc = bound ? sqlite3_extended_errcode(j->db) : sqlite3_step(st);
    int err = 0;

    if (rc != SQLITE_DONE)
        err = journal_sqlite_error(j, rc ? rc : SQLITE_ERROR, op);
    else
        j->dirty = true;
    journal_done(st);
    return err;
}

static int journal_run_bound(struct journal *j, enum journal_stmt which, int bound,
                             const char *op)
{
    return journal_step_bound(j, j->st[which], bound, op);
}

static int journal_run(struct journal *j, enum journal_stmt which, const char *op)
{
    return journal_run_bound(j, which, SQLITE_OK, op);
}

/* Binds n bytes as a BLOB; never NULL, also when n == 0. */
static int journal_bind_blob(sqlite3_stmt *st, int col, const void *p, size_t n)
{
    return sqlite3_bind_blob64(st, col, n ? p : "", n, SQLITE_STATIC);
}

/* Binds an optional NUL-terminated string; NULL stays NULL. */
static int journal_bind_opt(sqlite3_stmt *st, int col, const char *s, bool blob)
{
    if (!s)
        return sqlite3_bind_null(st, col);
    if (blob)
        return journal_bind_blob(st, col, s, strlen(s));
    return sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

/* Executes SQL text with no result rows (pragmas, migrations). */
static int journal_exec(struct journal *j, const char *sql, const char *op)
{
    char *msg = NULL;
    int rc = sqlite3_exec(j->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        int err = journal_errno(j->db, rc);
        journal_set_error(j, err, op, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return err;
    }
    return 0;
}

/* Reads a one-row, one-column integer pragma. */
static int journal_pragma_int(struct journal *j, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) {
        int err = journal_sqlite_error(j, rc, sql);
        sqlite3_finalize(st);
        return err;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The INSERT of rows job rows (malloc'd): row r binds parameters
 * r * INS_COLS + 1 .. (r + 1) * INS_COLS, numbered as pend_bind() binds. */
static char *ins_sql(int rows)
{
    /* columns in the order of the VALUES below: the body (13) last */
    static const int order[INS_COLS] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 13 };
    static const char head[] =
        "INSERT INTO jobs (id, queue, state, pos, priority, attempt, retries, lease_ms, "
        "run_at, lease_until, created_at, updated_at, last_error, uniq, expires_at, grp, "
        "holder, history, token, body) VALUES ";
    size_t cap = sizeof head + (size_t)rows * (INS_COLS * 8 + 4), n = sizeof head - 1;
    char *sql = malloc(cap);
    if (!sql)
        return NULL;
    memcpy(sql, head, n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < INS_COLS; c++)
            n += (size_t)snprintf(sql + n, cap - n, "%s?%d%s", c ? "" : r ? ",(" : "(",
                                  r * INS_COLS + order[c], c == INS_COLS - 1 ? ")" : ",");
    return sql;
}

static int journal_prepare_all(struct journal *j)
{
    for (int i = 0; i < ST_COUNT + INS_SIZES; i++) {
        char *sql = i < ST_COUNT ? (char *)journal_sql[i] : ins_sql(ins_rows[i - ST_COUNT]);
        sqlite3_stmt **st = i < ST_COUNT ? &j->st[i] : &j->ins[i - ST_COUNT];
        int rc = sql ? sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) : SQLITE_NOMEM;
        if (i >= ST_COUNT)
            free(sql);
        if (rc != SQLITE_OK)
            return journal_sqlite_error(j, rc, "preparing statements");
    }
    return 0;
}

static void journal_finalize_all(struct journal *j)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(j->st[i]);
        j->st[i] = NULL;
    }
    for (int k = 0; k < INS_SIZES; k++) {
        sqlite3_finalize(j->ins[k]);
        j->ins[k] = NULL;
    }
}

/* ------------------------------------------------------------ migrations */

int journal_schema_version(void)
{
    return journal_nmigrations;
}

/* Applies migration m and records its version, in one transaction. */
static int journal_migrate_one(struct journal *j, const struct journal_migration *m)
{
    char op[128], ver[64];
    int err;

    snprintf(op, sizeof op, "migration %s", m->name);
    snprintf(ver, sizeof ver, "PRAGMA user_version = %d", m->version);
    err = journal_exec(j, "BEGIN IMMEDIATE", op);
    if (err)
        return err;
    err = journal_exec(j, m->sql, op);
    if (!err)
        err = journal_exec(j, ver, op);
    if (!err)
        err = journal_exec(j, "COMMIT", op);
    if (err && !sqlite3_get_autocommit(j->db))
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* Refuses a database newer than this binary; must run before anything
 * writes to the file. */
static int journal_check_version(struct journal *j, int64_t *version)
{
    int err = journal_pragma_int(j, "PRAGMA user_version", version);

    if (err)
        return err;
    if (*version > journal_nmigrations) {
        snprintf(j->err, sizeof j->err,
                 "database %s is at schema version %" PRId64 ", newer than this spoold (%d): "
                 "upgrade spoold or use another --data-dir", j->path, *version,
                 journal_nmigrations);
        return -EPROTO;
    }
    return 0;
}

static int journal_migrate(struct journal *j, int64_t from)
{
    for (int i = (int)from; i < journal_nmigrations; i++) {
        int err = journal_migrate_one(j, &journal_migrations[i]);
        if (err)
            return err;
    }
    return 0;
}

/* ------------------------------------------------------------ open/close */

static const char *const sync_sql[] = {
    "PRAGMA synchronous = FULL",    /* FSYNC_ALWAYS */
    "PRAGMA synchronous = NORMAL",  /* FSYNC_BATCH */
    "PRAGMA synchronous = OFF",     /* FSYNC_OFF */
};

int journal_set_fsync(struct journal *j, int fsync_mode)
{
    if (fsync_mode < 0 || fsync_mode > 2)
        return -EINVAL;
    int err = journal_exec(j, sync_sql[fsync_mode], "setting synchronous");
    if (!err)
        j->fsync_mode = fsync_mode;
    return err;
}

static int journal_configure(struct journal *j, int fsync_mode)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    bool wal = false;
    int rc, err;

    /* One connection, one thread, and the data dir's LOCK keeps other
     * spoolds out: exclusive locking lets SQLite keep the WAL index in heap
     * memory and skip the file locks and shared memory of every
     * transaction (set before WAL mode, so no -shm file is ever used). */
    err = journal_exec(j, "PRAGMA locking_mode = EXCLUSIVE", "setting exclusive locking");
    if (err)
        return err;
    rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && strcmp(mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        err = journal_sqlite_error(j, rc, "setting WAL mode");
        sqlite3_finalize(st);
        return err;
    }
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(j->err, sizeof j->err, "%s cannot use WAL mode (a file system without "
                 "shared memory?): put the --data-dir on a local disk", j->path);
        return -EIO;
    }
    /* Migrations run with synchronous=FULL whatever the mode: a schema
     * change is on disk before spoold serves from it. */
    err = journal_set_fsync(j, 0);
    if (err)
        return err;
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %lld",
             JOURNAL_AUTOCHECKPOINT_PAGES, JOURNAL_SIZE_LIMIT);
    return journal_exec(j, sql, "setting checkpoints");
}

/* Process-wide SQLite settings, before SQLite initializes (a call after
 * that, e.g. when another module opened a database first, changes nothing
 * and is harmless). Memory statistics off: with them every allocation
 * SQLite makes takes a global mutex, and no part of spoold reads them. */
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void journal_global_config(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int journal_connect(struct journal *j)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    pthread_once(&journal_once, journal_global_config);
    int rc = sqlite3_open_v2(j->path, &j->db, flags, syncvfs_name()); /* counts syncs */

    if (rc != SQLITE_OK)
        return journal_sqlite_error(j, rc, "open");
    sqlite3_extended_result_codes(j->db, 1);
    sqlite3_busy_timeout(j->db, JOURNAL_BUSY_TIMEOUT_MS);
    return 0;
}

/* The commit count this file holds (0 for a file from before the count). */
static int journal_read_commits(struct journal *j)
{
    char buf[32];
    int err = journal_meta_get(j, "commits", buf, sizeof buf);
    if (err == -ENOENT)
        return 0;
    if (err)
        return err;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end || v < 0) {
        snprintf(j->err, sizeof j->err, "%s has a damaged commit count (meta row 'commits' = '%s'): "
                 "check it with spoold --check", j->path, buf);
        return -EILSEQ;
    }
    j->commits = v;
    return 0;
}

int journal_open(struct journal **out, const char *path, int fsync_mode)
{
    struct journal *j;
    int64_t version = 0;
    int err;

    *out = NULL;
    if (!path || fsync_mode < 0 || fsync_mode > 2)
        return -EINVAL;
    j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return -ENOMEM;
    }
    j->inline_max = JOURNAL_INLINE_MAX;
    err = journal_connect(j);
    /* Exclusive locking before anything reads the file (a read in WAL mode
     * before it would make SQLite create the -shm file after all), but the
     * version check before anything changes it (a newer file is left as
     * it was). */
    if (!err)
        err = journal_exec(j, "PRAGMA locking_mode = EXCLUSIVE", "setting exclusive locking");
    if (!err)
        err = journal_check_version(j, &version);
    if (!err)
        err = journal_configure(j, fsync_mode);
    if (!err)
        err = journal_migrate(j, version);
    if (!err)
        err = journal_set_fsync(j, fsync_mode);
    if (!err)
        err = journal_prepare_all(j);
    if (!err)
        err = journal_read_commits(j);
    if (err)
        goto fail;
    *out = j;
    return 0;

fail:
    /* Like sqlite3_open(): the caller still gets the journal, holding only
     * the message for journal_error(), and closes it. */
    journal_finalize_all(j);
    sqlite3_close(j->db);
    j->db = NULL;
    *out = j;
    return err;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    if (j->db && journal_in_txn(j))
        journal_rollback(j);
    journal_finalize_all(j);
    free(j->pend);
    free(j->pbuf);
    free(j->drop);
    /* The last connection to close checkpoints the WAL and removes it. */
    sqlite3_close(j->db);
    free(j->path);
    free(j);
}

/* ---------------------------------------------------------- transactions */

/* A held insert that failed keeps the transaction "open" until commit or
 * rollback reports it, even when SQLite ended it (it may roll back on
 * SQLITE_FULL or an I/O error): a turn whose rows were lost so, in a flush
 * whose caller could not return the error (journal_sqlite()), must still
 * reach journal_commit() and fail there, not pass as a turn that wrote
 * nothing. */
bool journal_in_txn(const struct journal *j)
{
    return j->flush_err || !sqlite3_get_autocommit(j->db);
}

int journal_begin(struct journal *j)
{
    if (j->failed)
        return journal_fence(j, j->failed, "");
    if (journal_in_txn(j))
        return 0;
    return journal_run(j, ST_BEGIN, "begin");
}

int journal_commit(struct journal *j)
{
    int err;

    if (!journal_in_txn(j))
        return 0;
    if (j->failed)
        err = journal_fence(j, j->failed, "");
    else if (!journal_refused(j, "commit", &err)) {
        err = journal_run(j, ST_COUNT_COMMIT, "commit");
        if (!err && (err = journal_run(j, ST_COMMIT, "commit")) < 0)
            journal_fence_if_sync(j, "fsync (commit)"); /* synchronous=FULL */
    }
    if (err) {
        /* SQLite may have rolled back already (FULL, IOERR); make it so in
         * every case, keeping the commit's message. */
        if (journal_in_txn(j)) {
            char keep[sizeof j->err];
            memcpy(keep, j->err, sizeof keep);
            journal_rollback(j);
            memcpy(j->err, keep, sizeof keep);
        }
        return err;
    }
    if (j->fsync_mode == 1)
        j->unsynced = true;
    j->commits++;
    return 0;
}

int64_t journal_commits(const struct journal *j)
{
    return j->commits;
}

void journal_keep_wal(struct journal *j)
{
    if (j && j->db)
        sqlite3_db_config(j->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

/* fdatasync of the WAL through the VFS: 0 or the negative errno. */
static int wal_sync(sqlite3_file *f)
{
    if (f->pMethods->xSync(f, SQLITE_SYNC_NORMAL) == SQLITE_OK)
        return 0;
    int e = 0;
    if (f->pMethods->xFileControl(f, SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK || e <= 0)
        e = EIO;
    return -e;
}

int journal_sync(struct journal *j)
{
    sqlite3_file *wal = NULL;

    if (j->failed)
        return journal_fence(j, j->failed, "");
    if (!j->unsynced || journal_in_txn(j))
        return 0;
    /* The WAL is append-only between checkpoints and every frame carries a
     * checksum, so syncing it at any moment keeps a prefix of the commits:
     * what synchronous=NORMAL does at checkpoints, only sooner. */
    int rc = sqlite3_file_control(j->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
    if (rc != SQLITE_OK)
        return journal_sqlite_error(j, rc, "syncing the WAL");
    if (wal && wal->pMethods && (rc = wal_sync(wal)) < 0)
        return journal_fence(j, rc, "fdatasync");
    j->unsynced = false;
    return 0;
}

int journal_sync_force(struct journal *j)
{
    j->unsynced = true;
    return journal_sync(j);
}

void *journal_wal(struct journal *j)
{
    sqlite3_file *wal = NULL;

    if (j->failed || !j->unsynced || journal_in_txn(j))
        return NULL;
    if (sqlite3_file_control(j->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
        !wal || !wal->pMethods)
        return NULL;
    return wal;
}

int journal_sync_wal(void *wal)
{
    return wal_sync(wal);
}

int journal_synced(struct journal *j, int rc)
{
    if (rc < 0 || j->failed)
        return journal_fence(j, rc < 0 ? rc : j->failed, "fdatasync");
    j->unsynced = false;
    return 0;
}

void journal_rollback(struct journal *j)
{
    j->npend = j->plen = 0; /* the held rows go with the transaction */
    j->flush_err = 0;
    if (!journal_in_txn(j))
        return;
    for (int i = 0; i < ST_COUNT; i++)
        if (j->st[i])
            sqlite3_reset(j->st[i]);
    if (journal_run(j, ST_ROLLBACK, "rollback") && journal_in_txn(j)) {
        /* Rarely, ROLLBACK itself fails (an I/O error while undoing):
         * try once more, outside the cached statement. */
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* ------------------------------------------- rows kept by other modules */

int journal_prepare(struct journal *j, const char *sql, sqlite3_stmt **out)
{
    journal_flush(j);
    int rc = sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    return rc == SQLITE_OK ? 0 : journal_sqlite_error(j, rc, "preparing statements");
}

int journal_write(struct journal *j, sqlite3_stmt *st, int bound, const char *op)
{
    int err;
    if (journal_injected(j, op, &err) || (!bound && (err = journal_flush(j)) < 0)) {
        journal_done(st);
        return err;
    }
    int rc = bound ? sqlite3_extended_errcode(j->db) : sqlite3_step(st);
    err = 0;
    if (rc != SQLITE_DONE)
        err = journal_sqlite_error(j, rc ? rc : SQLITE_ERROR, op);
    else
        j->dirty = true;
    journal_done(st);
    return err;
}

int journal_read_error(struct journal *j, int rc, const char *op)
{
    return journal_sqlite_error(j, rc, op);
}

/* ------------------------------------------------------------------ jobs */

/* Where journal_job_insert() puts a payload: in the job's row (small), in
 * the payload log (at least pl_min bytes, when it is open), or in a
 * payloads row of its own. */
static bool journal_inline(const struct journal *j, const struct job *job)
{
    if (j->pl && j->pl_min && job->len >= j->pl_min)
        return false;
    return job->len <= j->inline_max;
}

/* A larger payload goes to its own row once; state changes never touch it.
 * A payload of at least pl_min bytes is appended to the payload log and the
 * row holds where (an append whose row is never committed is an orphan). */
static int journal_payload_insert(struct journal *j, const struct job *job)
{
    sqlite3_stmt *st = j->st[ST_PAYLOAD_INSERT];
    int b = sqlite3_bind_int64(st, 1, (sqlite3_int64)job->id);
    if (j->pl && j->pl_min && job->len >= j->pl_min) {
        struct paylog_ref ref;
        int err = paylog_append(j->pl, job->id, job->payload, job->len, &ref);
        if (err < 0) {
            journal_done(st);
            snprintf(j->err, sizeof j->err, "%s", paylog_error(j->pl));
            return err;
        }
        b |= journal_bind_blob(st, 2, "", 0);
        b |= sqlite3_bind_int64(st, 3, ref.seg);
        b |= sqlite3_bind_int64(st, 4, (sqlite3_int64)ref.off);
        b |= sqlite3_bind_int64(st, 5, ref.len);
        b |= sqlite3_bind_int64(st, 6, ref.crc);
    } else {
        b |= journal_bind_blob(st, 2, job->payload, job->len);
    }
    return journal_run_bound(j, ST_PAYLOAD_INSERT, b, "insert");
}

/* The deleted row's segment, if any, counts one row less. */
static int journal_payload_delete(struct journal *j, uint64_t id)
{
    sqlite3_stmt *st = j->st[ST_PAYLOAD_DELETE];
    int rc, err = 0;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (j->pl && sqlite3_column_type(st, 0) != SQLITE_NULL)
            paylog_unref(j->pl, (uint32_t)sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1));
    if (rc != SQLITE_DONE)
        err = journal_sqlite_error(j, rc, "delete");
    else
        j->dirty = true;
    journal_done(st);
    return err;
}

void journal_set_paylog(struct journal *j, struct paylog *pl, uint32_t min)
{
    j->pl = pl;
    j->pl_min = pl ? min : 0;
}

void journal_set_inline_max(struct journal *j, uint32_t max)
{
    j->inline_max = max;
}

/* The payload log reference in columns col.. of st (seg, off, len, crc);
 * false when the payload is in the row. */
static bool journal_ref(sqlite3_stmt *st, int col, struct paylog_ref *ref)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return false;
    ref->seg = (uint32_t)sqlite3_column_int64(st, col);
    ref->off = (uint64_t)sqlite3_column_int64(st, col + 1);
    ref->len = (uint32_t)sqlite3_column_int64(st, col + 2);
    ref->crc = (uint32_t)sqlite3_column_int64(st, col + 3);
    return true;
}

/* Reads a payload from the payload log into *out (malloc'd). */
static int journal_paylog_read(struct journal *j, const struct paylog_ref *ref, uint64_t id, char **out)
{
    if (!j->pl) {
        snprintf(j->err, sizeof j->err, "%s: job %016" PRIx64 " has its payload in a payload file, which this "
                 "journal has not opened", j->path, id);
        return -EILSEQ;
    }
    int err = paylog_read(j->pl, ref, id, out);
    if (err < 0)
        snprintf(j->err, sizeof j->err, "%s", paylog_error(j->pl));
    return err;
}

/* ------------------------------------------------------- batched inserts */

/* Appends n bytes to j->pbuf for blob b of row r; p NULL: the column is NULL. */
static int pend_blob(struct journal *j, struct pend_row *r, enum pend_blob b, const void *p, size_t n)
{
    r->len[b] = p ? (int64_t)n : -1;
    r->off[b] = j->plen;
    if (!p || !n)
        return 0;
    if (j->plen + n > j->pcap) {
        size_t cap = j->pcap ? j->pcap : 16384;
        while (cap < j->plen + n)
            cap *= 2;
        char *nb = realloc(j->pbuf, cap);
        if (!nb)
            return -ENOMEM;
        j->pbuf = nb;
        j->pcap = cap;
    }
    memcpy(j->pbuf + j->plen, p, n);
    j->plen += n;
    return 0;
}

static int pend_str(struct journal *j, struct pend_row *r, enum pend_blob b, const char *s)
{
    return pend_blob(j, r, b, s, s ? strlen(s) : 0);
}

/* Copies the job's row into the next free slot of j->pend. */
static int pend_add(struct journal *j, const struct job *job, bool in_row)
{
    if (!j->pend && !(j->pend = malloc(JOURNAL_BATCH_MAX * sizeof *j->pend)))
        return -ENOMEM;
    struct pend_row *r = &j->pend[j->npend];
    int64_t *v = r->v;
    v[1] = (int64_t)job->id, v[3] = job->state, v[4] = job->pos, v[5] = job->priority;
    v[6] = job->attempt, v[7] = job->retries, v[8] = job->lease_ms, v[9] = job->run_at;
    v[10] = job->lease_until, v[11] = job->created_at, v[12] = job->updated_at;
    v[16] = job->expires_at, v[20] = job->token;
    int err = pend_blob(j, r, PB_QUEUE, job->q->name, job->q->namelen);
    err |= pend_blob(j, r, PB_BODY, in_row ? (job->payload ? job->payload : "") : NULL, job->len);
    err |= pend_str(j, r, PB_ERROR, job->last_error);
    err |= pend_str(j, r, PB_UNIQ, job->unique);
    err |= pend_blob(j, r, PB_GROUP, job->group, job->grouplen);
    err |= pend_str(j, r, PB_HOLDER, job->holder);
    err |= pend_str(j, r, PB_HISTORY, job->history);
    if (err)
        return -ENOMEM;
    j->npend++;
    return 0;
}

/* Binds row r as parameters base+1 .. base+INS_COLS of st. */
static int pend_bind(sqlite3_stmt *st, int base, const struct pend_row *r, const char *pbuf)
{
    static const struct { int col; bool text; } blobs[PB_COUNT] = {
        [PB_QUEUE] = { 2, false }, [PB_BODY] = { 13, false }, [PB_ERROR] = { 14, true },
        [PB_UNIQ] = { 15, false }, [PB_GROUP] = { 17, false }, [PB_HOLDER] = { 18, true },
        [PB_HISTORY] = { 19, true },
    };
    static const int ints[] = { 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 20 };
    int b = SQLITE_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        b |= sqlite3_bind_int64(st, base + ints[i], r->v[ints[i]]);
    for (int k = 0; k < PB_COUNT; k++) {
        int col = base + blobs[k].col;
        const char *p = pbuf ? pbuf + r->off[k] : "";
        if (r->len[k] < 0)
            b |= sqlite3_bind_null(st, col);
        else if (blobs[k].text)
            b |= sqlite3_bind_text64(st, col, p, (sqlite3_uint64)r->len[k], SQLITE_STATIC, SQLITE_UTF8);
        else
            b |= journal_bind_blob(st, col, p, (size_t)r->len[k]);
    }
    return b;
}

int journal_flush(struct journal *j)
{
    size_t done = 0;
    int err = j->flush_err;
    while (!err && done < j->npend) {
        int k = 0;
        while ((size_t)ins_rows[k] > j->npend - done)
            k++; /* ins_rows[INS_SIZES - 1] is 1 */
        sqlite3_stmt *st = j->ins[k];
        int b = SQLITE_OK;
        for (int r = 0; r < ins_rows[k]; r++)
            b |= pend_bind(st, r * INS_COLS, &j->pend[done + (size_t)r], j->pbuf);
        err = journal_step_bound(j, st, b, "insert");
        done += (size_t)ins_rows[k];
    }
    j->npend = j->plen = 0;
    j->flush_err = err;
    return err;
}

size_t journal_held(const struct journal *j)
{
    return j->npend;
}

int journal_job_insert(struct journal *j, const struct job *job)
{
    int err;

    if (!job->q || (!job->payload && job->len))
        return -EINVAL;
    if (journal_injected(j, "insert", &err))
        return err;
    bool in_row = journal_inline(j, job);
    if ((err = pend_add(j, job, in_row)) < 0) {
        snprintf(j->err, sizeof j->err, "journal %s: out of memory while holding job %016" PRIx64
                 " for its insert", j->path, job->id);
        return err;
    }
    if (in_row && j->npend < JOURNAL_BATCH_MAX)
        return 0;
    if ((err = journal_flush(j)) < 0 || in_row)
        return err;
    return journal_payload_insert(j, job);
}

/* True when the row of job id is one of the held rows. */
static bool journal_holds(const struct journal *j, uint64_t id)
{
    for (size_t i = 0; i < j->npend; i++)
        if (j->pend[i].v[1] == (int64_t)id)
            return true;
    return false;
}

/* An update or a delete changes one row by its id and reads no other: the
 * held rows go in first only when that row is one of them. The turn's other
 * pushes stay held, so a turn of pushes, acks and retention deletes still
 * inserts its rows together. */
static bool journal_refused_row(struct journal *j, uint64_t id, const char *op, int *err)
{
    if (journal_injected(j, op, err))
        return true;
    *err = journal_holds(j, id) ? journal_flush(j) : j->flush_err;
    return *err < 0;
}

int journal_job_update(struct journal *j, const struct job *job)
{
    sqlite3_stmt *st = j->st[ST_JOB_UPDATE];
    int err, b = SQLITE_OK;

    if (journal_refused_row(j, job->id, "update", &err))
        return err;
    b |= sqlite3_bind_int64(st, 1, (sqlite3_int64)job->id);
    b |= sqlite3_bind_int(st, 2, job->state);
    b |= sqlite3_bind_int64(st, 3, job->pos);
    b |= sqlite3_bind_int(st, 4, job->priority);
    b |= sqlite3_bind_int64(st, 5, job->attempt);
    b |= sqlite3_bind_int64(st, 6, job->retries);
    b |= sqlite3_bind_int64(st, 7, job->lease_ms);
    b |= sqlite3_bind_int64(st, 8, job->run_at);
    b |= sqlite3_bind_int64(st, 9, job->lease_until);
    b |= sqlite3_bind_int64(st, 10, job->updated_at);
    b |= journal_bind_opt(st, 11, job->last_error, false);
    b |= journal_bind_opt(st, 12, job->unique, true);
    b |= sqlite3_bind_int64(st, 13, job->expires_at);
    b |= job->group ? journal_bind_blob(st, 14, job->group, job->grouplen) : sqlite3_bind_null(st, 14);
    b |= journal_bind_opt(st, 15, job->holder, false);
    b |= journal_bind_opt(st, 16, job->history, false);
    b |= sqlite3_bind_int64(st, 17, job->token);
    err = journal_run_bound(j, ST_JOB_UPDATE, b, "update");
    if (!err && sqlite3_changes(j->db) == 0) {
        snprintf(j->err, sizeof j->err, "journal %s: update of job %016" PRIx64
                 " that has no row", j->path, job->id);
        return -ENOENT;
    }
    return err;
}

bool journal_body_in_row(const struct journal *j, const struct job *job)
{
    return journal_inline(j, job);
}

/* RETURNING tells whether the payload is in the row or has a payloads row
 * to delete too (and when the job has no row: nothing to keep). */
static int journal_delete_asking(struct journal *j, uint64_t id, bool *in_payloads)
{
    sqlite3_stmt *st = j->st[ST_JOB_DELETE];
    int rc, err;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *in_payloads = sqlite3_column_int(st, 0) != 0;
        rc = sqlite3_step(st);
    }
    err = rc == SQLITE_DONE ? 0 : journal_sqlite_error(j, rc, "delete");
    journal_done(st);
    return err;
}

/* One statement for a job whose payload is in its row; a second for its
 * payloads row otherwise. */
int journal_job_remove(struct journal *j, uint64_t id, int body)
{
    bool in_payloads = body != JOURNAL_BODY_IN_ROW;
    int err;

    if (journal_refused_row(j, id, "delete", &err))
        return err; /* held inserts go in first when the row deleted is one of them */
    if (body == JOURNAL_BODY_ASK) {
        err = journal_delete_asking(j, id, &in_payloads);
    } else {
        sqlite3_bind_int64(j->st[ST_JOB_REMOVE], 1, (sqlite3_int64)id);
        err = journal_run(j, ST_JOB_REMOVE, "delete");
    }
    if (err < 0)
        return err;
    j->dirty = true;
    return in_payloads ? journal_payload_delete(j, id) : 0;
}

int journal_job_delete(struct journal *j, uint64_t id)
{
    return journal_job_remove(j, id, JOURNAL_BODY_ASK);
}

int journal_payload(struct journal *j, uint64_t id, char **out, size_t *len)
{
    sqlite3_stmt *st = j->st[ST_PAYLOAD];
    int rc, err = 0;

    *out = NULL;
    *len = 0;
    if ((err = journal_flush(j)) < 0)
        return err;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    rc = sqlite3_step(st);
    struct paylog_ref ref;
    if (rc == SQLITE_ROW && journal_ref(st, 1, &ref)) {
        if ((err = journal_paylog_read(j, &ref, id, out)) == 0)
            *len = ref.len;
    } else if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *buf = malloc(n + 1);
        if (!buf) {
            err = -ENOMEM;
            goto fail;
        }
        if (n)
            memcpy(buf, p, n);
        buf[n] = '\0';
        *out = buf;
        *len = n;
    } else if (rc == SQLITE_DONE) {
        snprintf(j->err, sizeof j->err, "journal %s: job %016" PRIx64 " has no row",
                 j->path, id);
        err = -ENOENT;
    } else {
        err = journal_sqlite_error(j, rc, "reading a payload");
    }
fail:
    journal_done(st);
    return err;
}

/* ---------------------------------------------------------------- queues */

int journal_queue_put(struct journal *j, const struct queue *q)
{
    sqlite3_stmt *st = j->st[ST_QUEUE_PUT];
    char conf[JOURNAL_CONF_MAX];
    int err, b = SQLITE_OK;

    if (journal_refused(j, "queue_put", &err))
        return err;
    conf[0] = '\0';
    qconf_format(&q->conf, conf, sizeof conf);
    b |= journal_bind_blob(st, 1, q->name, q->namelen);
    b |= sqlite3_bind_text(st, 2, conf, -1, SQLITE_STATIC);
    b |= sqlite3_bind_int(st, 3, q->paused ? 1 : 0);
    return journal_run_bound(j, ST_QUEUE_PUT, b, "queue_put");
}

int journal_queue_delete(struct journal *j, const char *name, size_t len)
{
    int err;

    if (journal_refused(j, "queue_delete", &err))
        return err;
    return journal_run_bound(j, ST_QUEUE_DELETE,
                             journal_bind_blob(j->st[ST_QUEUE_DELETE], 1, name, len),
                             "queue_delete");
}

/* ------------------------------------------------------------------ meta */

int journal_meta_get(struct journal *j, const char *key, char *buf, size_t cap)
{
    sqlite3_stmt *st = j->st[ST_META_GET];
    int rc, err = journal_flush(j);

    if (err < 0)
        return err;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n >= cap) {
            err = -ERANGE;
        } else {
            memcpy(buf, v ? (const char *)v : "", n);
            buf[n] = '\0';
        }
    } else if (rc == SQLITE_DONE) {
        err = -ENOENT;
    } else {
        err = journal_sqlite_error(j, rc, "meta_get");
    }
    journal_done(st);
    return err;
}

int journal_meta_put(struct journal *j, const char *key, const char *value)
{
    sqlite3_stmt *st = j->st[ST_META_PUT];
    int err, b = SQLITE_OK;

    if (journal_refused(j, "meta_put", &err))
        return err;
    b |= sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    b |= sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    return journal_run_bound(j, ST_META_PUT, b, "meta_put");
}

/* ------------------------------------------------------------------ load */

static int journal_load_queues(struct journal *j,
                               int (*fn)(void *, const struct journal_queue_row *),
                               void *arg)
{
    sqlite3_stmt *st = j->st[ST_LOAD_QUEUES];
    int rc, err = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct journal_queue_row row;
        const void *name = sqlite3_column_blob(st, 0);
        const unsigned char *conf = sqlite3_column_text(st, 1);

        row.name = name ? name : "";
        row.len = (size_t)sqlite3_column_bytes(st, 0);
        row.config = conf ? (const char *)conf : "";
        row.paused = sqlite3_column_int(st, 2) != 0;
        if (fn && (err = fn(arg, &row)) < 0)
            goto fail;
    }
    if (rc != SQLITE_DONE)
        err = journal_sqlite_error(j, rc, "loading queues");
fail:
    journal_done(st);
    return err < 0 ? err : 0;
}

/* A stored value this spoold cannot represent in struct job. */
static int journal_bad_row(struct journal *j, uint64_t id, const char *col, int64_t v)
{
    snprintf(j->err, sizeof j->err, "%s is damaged or from another program: job %016" PRIx64
             " has %s %" PRId64 ", outside what spoold stores; restore it from a backup "
             "or move it out of the --data-dir", j->path, id, col, v);
    return -EILSEQ;
}

/* Checks the integer columns of a job row against struct job's types. */
static int journal_check_row(struct journal *j, sqlite3_stmt *st)
{
    static const struct { int col; const char *name; int64_t lo, hi; } cols[] = {
        { 0, "id", 0, INT64_MAX },
        { 2, "state", 0, JOB_NSTATES - 1 },
        { 4, "priority", INT16_MIN, INT16_MAX },
        { 5, "attempt", 0, UINT32_MAX },
        { 6, "retries", 0, UINT32_MAX },
        { 7, "lease_ms", 0, UINT32_MAX },
        { 18, "token", 0, UINT32_MAX },
    };
    uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);

    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        int64_t v = sqlite3_column_int64(st, cols[i].col);
        if (v < cols[i].lo || v > cols[i].hi)
            return journal_bad_row(j, id, cols[i].name, v);
    }
    return 0;
}

/* Builds a job from the current row of a load statement; NULL on ENOMEM. */
static struct job *journal_row_job(sqlite3_stmt *st, bool with_payload)
{
    uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
    struct job *job;

    if (with_payload) {
        const void *p = sqlite3_column_blob(st, COL_PAYLOAD);
        size_t n = (size_t)sqlite3_column_bytes(st, COL_PAYLOAD);
        job = job_new(id, p ? p : "", n);
    } else {
        job = job_new(id, "", 0);
        if (job) {
            free(job->payload);
            job->payload = NULL;
            job->len = (uint32_t)sqlite3_column_int64(st, COL_PAYLOAD);
        }
    }
    if (!job)
        return NULL;
    job->state = (uint8_t)sqlite3_column_int(st, 2);
    job->pos = sqlite3_column_int64(st, 3);
    job->priority = (int16_t)sqlite3_column_int(st, 4);
    job->attempt = (uint32_t)sqlite3_column_int64(st, 5);
    job->token = (uint32_t)sqlite3_column_int64(st, 18);
    job->retries = (uint32_t)sqlite3_column_int64(st, 6);
    job->lease_ms = (uint32_t)sqlite3_column_int64(st, 7);
    job->run_at = sqlite3_column_int64(st, 8);
    job->lease_until = sqlite3_column_int64(st, 9);
    job->created_at = sqlite3_column_int64(st, 10);
    job->updated_at = sqlite3_column_int64(st, 11);
    if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
        const unsigned char *e = sqlite3_column_text(st, 12);
        job_set_str(&job->last_error, e ? (const char *)e : "",
                    (size_t)sqlite3_column_bytes(st, 12));
    }
    if (sqlite3_column_type(st, 13) != SQLITE_NULL) {
        const void *u = sqlite3_column_blob(st, 13); /* NULL when empty */
        job_set_str(&job->unique, u ? u : "", (size_t)sqlite3_column_bytes(st, 13));
    }
    job->expires_at = sqlite3_column_int64(st, 14);
    if (sqlite3_column_type(st, 15) != SQLITE_NULL) {
        const void *g = sqlite3_column_blob(st, 15);
        size_t n = (size_t)sqlite3_column_bytes(st, 15);
        if (n > GROUP_KEY_MAX)
            n = GROUP_KEY_MAX;
        job_set_str(&job->group, g ? g : "", n);
        job->grouplen = (uint16_t)n;
    }
    if (sqlite3_column_type(st, 16) != SQLITE_NULL)
        job_set_str(&job->holder, (const char *)sqlite3_column_text(st, 16), (size_t)sqlite3_column_bytes(st, 16));
    if (sqlite3_column_type(st, 17) != SQLITE_NULL)
        job_set_str(&job->history, (const char *)sqlite3_column_text(st, 17), (size_t)sqlite3_column_bytes(st, 17));
    return job;
}

/* A row whose payload is in the payload log: 0 when its record is there
 * (counted live), 1 when the record is torn or missing at the newest
 * segment's end (a push whose commit was never acknowledged: the job is
 * dropped after the scan), negative for damage. */
static int journal_load_ref(struct journal *j, const struct paylog_ref *ref, uint64_t id, const void *q, size_t qlen)
{
    if (!j->pl) {
        snprintf(j->err, sizeof j->err, "%s: job %016" PRIx64 " has its payload in a payload file, which this "
                 "journal has not opened", j->path, id);
        return -EILSEQ;
    }
    int err = paylog_check(j->pl, ref, id);
    if (err == 0) {
        paylog_ref_count(j->pl, ref->seg, ref->len);
        return 0;
    }
    if (err != -ENODATA) {
        snprintf(j->err, sizeof j->err, "%s", paylog_error(j->pl));
        return err;
    }
    log_warn("job %016" PRIx64 " of queue '%.*s' is dropped: %s; its push was never acknowledged (the reply waits "
             "for the payload file's sync)", id, (int)qlen, (const char *)q, paylog_error(j->pl));
    if (j->ndrop == j->capdrop) {
        size_t cap = j->capdrop ? j->capdrop * 2 : 16;
        uint64_t *v = realloc(j->drop, cap * sizeof *v);
        if (!v)
            return journal_set_error(j, -ENOMEM, "load", NULL);
        j->drop = v;
        j->capdrop = cap;
    }
    j->drop[j->ndrop++] = id;
    return 1;
}

int journal_drop_torn(struct journal *j)
{
    if (!j->ndrop)
        return 0;
    bool own = !journal_in_txn(j);
    int err = own ? journal_begin(j) : 0;
    for (size_t i = 0; !err && i < j->ndrop; i++)
        err = journal_job_delete(j, j->drop[i]);
    if (!err && own)
        err = journal_run(j, ST_COMMIT, "commit"); /* not counted: the commit marks compare what clients saw */
    if (err && own)
        journal_rollback(j);
    if (!err)
        j->ndrop = 0;
    return err;
}

/* The row's job, its payload read from the payload log when asked for. */
static int journal_load_one(struct journal *j, sqlite3_stmt *st, bool with_payload, struct job **out)
{
    uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
    struct paylog_ref ref;
    bool has_ref = journal_ref(st, COL_SEG, &ref);
    int err = has_ref ? journal_load_ref(j, &ref, id, sqlite3_column_blob(st, 1),
                                         (size_t)sqlite3_column_bytes(st, 1)) : 0;
    *out = NULL;
    if (err)
        return err;
    struct job *job = journal_row_job(st, with_payload && !has_ref);
    if (!job)
        return journal_set_error(j, -ENOMEM, "load", NULL);
    if (with_payload && has_ref) {
        char *p = NULL;
        if ((err = journal_paylog_read(j, &ref, id, &p)) < 0) {
            job_free(job);
            return err;
        }
        job->payload = p;
        job->len = ref.len;
    }
    *out = job;
    return 0;
}

static int journal_load_jobs(struct journal *j, bool with_payload,
                             int (*fn)(void *, struct job *, const char *, size_t),
                             void *arg)
{
    sqlite3_stmt *st = j->st[with_payload ? ST_LOAD_JOBS : ST_LOAD_JOBS_NOPAYLOAD];
    int rc, err = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *q = sqlite3_column_blob(st, 1);
        size_t qlen = (size_t)sqlite3_column_bytes(st, 1);
        int64_t plen = with_payload ? sqlite3_column_bytes(st, COL_PAYLOAD)
                                    : sqlite3_column_int64(st, COL_PAYLOAD);
        struct job *job;

        if ((err = journal_check_row(j, st)) < 0)
            goto fail;
        if (plen < 0 || plen > UINT32_MAX) {
            err = journal_bad_row(j, (uint64_t)sqlite3_column_int64(st, 0), "payload length", plen);
            goto fail;
        }
        if ((err = journal_load_one(j, st, with_payload, &job)) < 0)
            goto fail;
        if (!job)
            continue; /* dropped: its payload was never on disk */
        if (!fn) {
            job_free(job);
            continue;
        }
        if ((err = fn(arg, job, q ? q : "", qlen)) < 0)
            goto fail;
    }
    if (rc != SQLITE_DONE)
        err = journal_sqlite_error(j, rc, "loading jobs");
fail:
    journal_done(st);
    return err < 0 ? err : 0;
}

int journal_load(struct journal *j, bool with_payload,
                 int (*queue_fn)(void *arg, const struct journal_queue_row *row),
                 int (*job_fn)(void *arg, struct job *job, const char *queue, size_t queue_len),
                 void *arg)
{
    int err = journal_flush(j);

    if (!err)
        err = journal_load_queues(j, queue_fn, arg);
    if (err)
        return err;
    if (j->pl)
        paylog_counts_reset(j->pl);
    j->ndrop = 0;
    return journal_load_jobs(j, with_payload, job_fn, arg);
}

/* ------------------------------------------------------------ compaction */

/* Whether job id's row points at ref's record. */
static int journal_points_at(struct journal *j, uint64_t id, const struct paylog_ref *ref)
{
    sqlite3_stmt *st = j->st[ST_PAYLOAD];
    struct paylog_ref r;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(st);
    int at = rc == SQLITE_ROW && journal_ref(st, 1, &r) && r.seg == ref->seg && r.off == ref->off;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        at = journal_sqlite_error(j, rc, "compaction lookup");
    journal_done(st);
    return at;
}

/* The synced copies' rows move to them, in the open transaction. */
static int journal_repoint(struct journal *j)
{
    uint64_t id;
    struct paylog_ref from, to;
    int err = journal_in_txn(j) ? 0 : journal_begin(j);
    for (size_t i = 0; !err && paylog_compact_ready(j->pl, i, &id, &from, &to); i++) {
        sqlite3_stmt *st = j->st[ST_PAYLOAD_MOVE];
        int b = sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        b |= sqlite3_bind_int64(st, 2, to.seg);
        b |= sqlite3_bind_int64(st, 3, (sqlite3_int64)to.off);
        b |= sqlite3_bind_int64(st, 4, from.seg);
        b |= sqlite3_bind_int64(st, 5, (sqlite3_int64)from.off);
        if ((err = journal_run_bound(j, ST_PAYLOAD_MOVE, b, "compaction update")) == 0)
            paylog_compact_moved(j->pl, &from, &to, sqlite3_changes(j->db) == 1);
    }
    if (!err)
        paylog_compact_clear(j->pl);
    return err;
}

int journal_compact_step(struct journal *j, size_t budget)
{
    uint64_t id;
    struct paylog_ref from, to;
    if (!j->pl || j->failed)
        return 0;
    int ferr = journal_flush(j);
    if (ferr < 0)
        return ferr;
    if (paylog_compact_ready(j->pl, 0, &id, &from, &to)) {
        int err = journal_repoint(j);
        return err < 0 ? err : 1;
    }
    if (paylog_compact_waiting(j->pl))
        return 1; /* the copies so far wait for a sync, then for their rows */
    for (size_t done = 0; done < budget && paylog_compact_next(j->pl, &id, &from) > 0;) {
        int at = journal_points_at(j, id, &from);
        if (at > 0 && paylog_compact_copy(j->pl, id, &from) < 0) {
            snprintf(j->err, sizeof j->err, "%s", paylog_error(j->pl));
            return -EIO;
        }
        if (at < 0)
            return at;
        done += PAYLOG_REC_HEADER + (at ? from.len : 0);
    }
    return paylog_compact_wanted(j->pl);
}

/* ------------------------------------------------------------ checkpoint */

/* ---------------------------------------------------------------- backup */

struct journal_backup {
    struct journal *j;
    sqlite3 *dst;
    sqlite3_backup *b;
    char *path;
    bool done;
};

int journal_backup_start(struct journal *j, const char *path, struct journal_backup **out)
{
    *out = NULL;
    if (journal_in_txn(j))
        return -EBUSY;
    if (access(path, F_OK) == 0) {
        snprintf(j->err, sizeof j->err, "%s already exists: back up into a new directory", path);
        return -EEXIST;
    }
    struct journal_backup *b = calloc(1, sizeof *b);
    if (!b || !(b->path = strdup(path))) {
        free(b);
        return -ENOMEM;
    }
    b->j = j;
    int rc = sqlite3_open_v2(path, &b->dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(b->dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK && !(b->b = sqlite3_backup_init(b->dst, "main", j->db, "main")))
        rc = sqlite3_errcode(b->dst);
    if (rc != SQLITE_OK) {
        int err = journal_sqlite_error(j, rc, "backup");
        snprintf(j->err, sizeof j->err, "cannot back up %s into %s: %s", j->path, path,
                 b->dst ? sqlite3_errmsg(b->dst) : "out of memory");
        journal_backup_end(b);
        return err;
    }
    *out = b;
    return 0;
}

int journal_backup_step(struct journal_backup *b, int pages)
{
    int rc = sqlite3_backup_step(b->b, pages);
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return 1;
    if (rc != SQLITE_DONE) {
        int err = journal_sqlite_error(b->j, rc, "backup");
        snprintf(b->j->err, sizeof b->j->err, "backup of %s into %s failed: %s", b->j->path, b->path,
                 sqlite3_errstr(rc));
        return err;
    }
    rc = sqlite3_backup_finish(b->b);
    b->b = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_close(b->dst);
    b->dst = NULL;
    if (rc != SQLITE_OK) {
        snprintf(b->j->err, sizeof b->j->err, "backup of %s into %s failed: %s", b->j->path, b->path,
                 sqlite3_errstr(rc));
        return -EIO;
    }
    b->done = true;
    return 0;
}

void journal_backup_end(struct journal_backup *b)
{
    if (!b)
        return;
    if (b->b)
        sqlite3_backup_finish(b->b);
    if (b->dst)
        sqlite3_close(b->dst);
    if (!b->done) {
        unlink(b->path);
        char side[4200];
        snprintf(side, sizeof side, "%s-journal", b->path);
        unlink(side);
    }
    free(b->path);
    free(b);
}

void journal_checkpoint(struct journal *j)
{
    int rc;

    if (j->failed || !j->dirty || journal_in_txn(j))
        return;
    /* TRUNCATE also gives back the space of a WAL that one big transaction
     * (a purge of a long queue) made large; nothing else reads this file,
     * so it never waits. */
    rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc == SQLITE_OK) {
        j->dirty = j->unsynced = false; /* a checkpoint syncs the WAL first */
    } else {
        journal_sqlite_error(j, rc, "checkpoint");
        journal_fence_if_sync(j, "fsync (checkpoint)");
    }
}
