/*
 * test_powercut.c - unit tests of the power-cut seam's model of a disk
 * (broker/powercut.h), without spoold: a child process writes through
 * fsio.c and the seam's notes (or SQLite through the shim), cuts the power,
 * and the parent reads what is left.
 *
 * - synced content survives; overwrites and appends after the last sync
 *   are undone;
 * - TORN keeps a prefix of the last unsynced write that ends at the write's
 *   start or at a 512-byte boundary of the file, never all of it;
 * - a created file, directory or rename is removed unless its directory
 *   was synced after it;
 * - SQLite through the shim: a committed FULL transaction survives, one
 *   committed with synchronous=OFF does not, and the file opens either way.
 */
#include <criterion/criterion.h>

#include "fsio.h"
#include "powercut.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static void setup(void)
{
    strcpy(dir, "/tmp/spool-powercut-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(powercut, .init = setup, .fini = teardown, .timeout = 30);

/* Runs fn in a child with the seam on; fn must end with powercut_cut().
 * Fails the test unless the child exits with the seam's code. */
static void in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (powercut_enable() < 0)
            _exit(3);
        fn();
        _exit(4); /* fn did not cut */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == POWERCUT_EXIT_CODE,
              "the child did not end with the power cut (status %d)", status);
}

static char *pathof(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

/* Writes n bytes of ch at off through the seam's notes (unsynced). */
static void note_write(const char *path, off_t off, char ch, size_t n)
{
    char *buf = malloc(n);
    memset(buf, ch, n);
    int fd = open(path, O_RDWR); /* the seam reads the pre-image through it */
    if (fd < 0)
        _exit(5);
    powercut_note_write_begin(path, fd, off, n);
    ssize_t w = pwrite(fd, buf, n, off);
    powercut_note_write_end(path, off, buf, w);
    close(fd);
    free(buf);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *len = 0;
        return NULL;
    }
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* ------------------------------------------------- unsynced data is undone */

static void write_then_cut(void)
{
    char base[10000];
    memset(base, 'A', sizeof base);
    if (fsio_write_atomic(pathof("f"), base, sizeof base) < 0) /* synced */
        _exit(6);
    note_write(pathof("f"), 100, 'B', 5000);   /* overwrite */
    note_write(pathof("f"), 10000, 'C', 3000); /* append */
    note_write(pathof("f"), 50, 'D', 700);     /* overwrite again, partly the same block */
    powercut_cut(false);
}

Test(powercut, unsynced_writes_are_undone)
{
    in_child(write_then_cut);
    size_t n;
    char *got = slurp(pathof("f"), &n);
    cr_assert_not_null(got, "the synced, renamed file is gone");
    cr_assert_eq(n, 10000, "size after the cut: %zu, expected the synced 10000", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], 'A', "byte %zu is '%c' after the cut, expected the synced 'A'", i,
                     got[i]);
    free(got);
}

static void torn_cut(void)
{
    char base[4096];
    memset(base, 'A', sizeof base);
    if (fsio_write_atomic(pathof("t"), base, sizeof base) < 0)
        _exit(6);
    note_write(pathof("t"), 1000, 'B', 6000); /* from 1000 to 7000 */
    powercut_cut(true);
}

Test(powercut, torn_keeps_a_sector_aligned_prefix_of_the_last_write)
{
    int kept_some = 0;
    for (int round = 0; round < 12; round++) {
        in_child(torn_cut);
        size_t n;
        char *got = slurp(pathof("t"), &n);
        cr_assert_not_null(got);
        size_t b = 1000;
        while (b < n && got[b] == 'B')
            b++;
        /* the prefix ends at 1000 (nothing) or on a 512-byte boundary < 7000 */
        cr_assert(b == 1000 || (b % 512 == 0 && b < 7000), "torn prefix ends at %zu", b);
        for (size_t i = 0; i < n; i++)
            cr_assert(i >= 1000 && i < b ? got[i] == 'B' : got[i] == 'A',
                      "byte %zu is '%c' (torn prefix up to %zu)", i, got[i], b);
        cr_assert_eq(n, b > 4096 ? b : 4096, "size %zu with a torn prefix up to %zu", n, b);
        kept_some += b > 1000;
        free(got);
        unlink(pathof("t"));
    }
    cr_assert(kept_some > 0, "12 torn cuts never kept any part of the last write");
}

/* ------------------------------------------------- directory entries */

static void entries_cut(void)
{
    int fd;
    /* sub/ and ren/ are created durably (mkdir + parent sync) */
    if (fsio_mkdir(pathof("sub"), 0755) < 0 || fsio_mkdir(pathof("ren"), 0755) < 0)
        _exit(6);
    /* in sub/, a directory and a file created without syncing sub/ */
    if (mkdir(pathof("sub/lost-dir"), 0755) < 0)
        _exit(7);
    powercut_note_mkdir(pathof("sub/lost-dir"));
    powercut_note_open(pathof("sub/lost-file"), true);
    fd = open(pathof("sub/lost-file"), O_WRONLY | O_CREAT, 0644);
    fsync(fd);
    powercut_note_sync(pathof("sub/lost-file"), fd);
    close(fd);
    /* a file created and its directory synced: durable */
    if (fsio_create(pathof("kept-file"), 0644, &fd) < 0)
        _exit(8);
    close(fd);
    /* in ren/, a synced file renamed without syncing ren/ afterwards */
    powercut_note_open(pathof("ren/r.tmp"), true);
    fd = open(pathof("ren/r.tmp"), O_WRONLY | O_CREAT, 0644);
    fsync(fd);
    powercut_note_sync(pathof("ren/r.tmp"), fd);
    close(fd);
    fsio_sync_dir(pathof("ren"), 1);
    rename(pathof("ren/r.tmp"), pathof("ren/renamed"));
    powercut_note_rename(pathof("ren/r.tmp"), pathof("ren/renamed"));
    powercut_cut(false);
}

Test(powercut, entries_need_a_directory_sync)
{
    in_child(entries_cut);
    struct stat st;
    cr_assert(stat(pathof("sub"), &st) == 0, "fsio_mkdir's directory is gone");
    cr_assert(stat(pathof("kept-file"), &st) == 0, "fsio_create's file is gone");
    cr_assert(stat(pathof("sub/lost-dir"), &st) != 0,
              "a directory whose parent was never synced stayed");
    cr_assert(stat(pathof("sub/lost-file"), &st) != 0,
              "a file whose directory was never synced stayed");
    cr_assert(stat(pathof("ren/renamed"), &st) != 0, "a rename without a directory sync stayed");
}

/* ------------------------------------------------- SQLite through the shim */

static void sqlite_cut(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(pathof("s.db"), &db) != SQLITE_OK)
        _exit(6);
    const char *sql =
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);"
        "PRAGMA synchronous = OFF; INSERT INTO t VALUES (2);";
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        _exit(7);
    powercut_cut(true);
}

/* The rows of table t in the database name after the cut, joined by
 * commas, must be want. */
static void expect_rows(const char *name, const char *want, const char *why)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(pathof(name), &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT group_concat(x) FROM t", -1, &st, NULL), SQLITE_OK,
                 "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    const char *v = (const char *)sqlite3_column_text(st, 0);
    cr_assert_str_eq(v ? v : "", want, "rows after the cut: '%s' (%s)", v ? v : "", why);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(powercut, sqlite_commits_survive_only_when_synced)
{
    in_child(sqlite_cut);
    expect_rows("s.db", "1", "the FULL commit must stay, the OFF one must go");
}

/* ------------------------------------------------------- failed syncs */

/* Syncs the WAL of db as the shard's sync thread does: 0 or SQLite's code. */
static int wal_sync(sqlite3 *db)
{
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK || !wal)
        _exit(8);
    return wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
}

/* Row 1 synced; the sync of row 2 fails; row 3's sync succeeds; a write
 * of row 4 is never synced. As on Linux, row 2's frames never reach the
 * disk, so recovery stops before them and row 3 goes too. */
static void failed_sync_cut(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(pathof("f.db"), &db) != SQLITE_OK)
        _exit(6);
    if (sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (x INTEGER);"
                     "INSERT INTO t VALUES (1);", NULL, NULL, NULL) != SQLITE_OK || wal_sync(db) != SQLITE_OK)
        _exit(7);
    if (powercut_fail_syncs(pathof("f.db-wal"), 1) != 0)
        _exit(9);
    if (sqlite3_exec(db, "INSERT INTO t VALUES (2)", NULL, NULL, NULL) != SQLITE_OK)
        _exit(10);
    if (wal_sync(db) != SQLITE_IOERR_FSYNC || errno != EIO)
        _exit(11); /* the sync must fail, with EIO */
    if (sqlite3_exec(db, "INSERT INTO t VALUES (3)", NULL, NULL, NULL) != SQLITE_OK || wal_sync(db) != SQLITE_OK)
        _exit(12); /* the next one succeeds */
    sqlite3_stmt *st = NULL; /* reads still see every row: the page cache keeps them */
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 3)
        _exit(13);
    sqlite3_finalize(st);
    powercut_cut(false);
}

Test(powercut, a_failed_sync_loses_its_writes_even_after_a_good_sync)
{
    in_child(failed_sync_cut);
    expect_rows("f.db", "1", "only the row synced before the failed sync may stay: the failed sync lost row 2, "
                "and recovery stops there");
}
