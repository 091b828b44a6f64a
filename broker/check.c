/*
 * check.c - spoold --check (see check.h). Main thread, before anything
 * else starts; reads the shard files with SQLite directly, read-only in
 * effect (no create, no checkpoint on close).
 */
#include "check.h"

#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char *const state_names[] = { "ready", "reserved", "delayed", "done", "dead" };
#define NSTATES 5

/* The text of the first column of the first row of sql into buf; false on error. */
static bool one_text(sqlite3 *db, const char *sql, const char *bind, char *buf, size_t cap)
{
    sqlite3_stmt *st;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    if (bind)
        sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(buf, cap, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* Opens shard k's file for checking; prints MISSING, CANNOT OPEN or
 * DAMAGED and returns NULL when it is absent, does not open or fails
 * SQLite's integrity check. */
static sqlite3 *open_shard(const char *path, int k, FILE *out)
{
    char buf[1024];
    if (access(path, F_OK) != 0) {
        fprintf(out, "shard %d: MISSING %s: restore it from a backup, or start spoold with --recover to run it empty\n",
                k, path);
        return NULL;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(out, "shard %d: CANNOT OPEN %s: %s\n", k, path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE", NULL, NULL, NULL); /* no -shm file */
    if (!one_text(db, "PRAGMA integrity_check", NULL, buf, sizeof buf) || strcmp(buf, "ok") != 0) {
        fprintf(out, "shard %d: DAMAGED %s: integrity_check says: %s\n", k, path, buf[0] ? buf : sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Whether the file is shard k of this directory (meta dir_id and shard);
 * prints FOREIGN when not. *commits gets its commit count. */
static int check_identity(sqlite3 *db, const struct manifest *m, int k, const char *path, int64_t *commits,
                          FILE *out)
{
    char id[64], sk[32], cm[32], want_k[32];
    snprintf(want_k, sizeof want_k, "%d", k);
    one_text(db, "SELECT value FROM meta WHERE key = ?1", "dir_id", id, sizeof id);
    one_text(db, "SELECT value FROM meta WHERE key = ?1", "shard", sk, sizeof sk);
    one_text(db, "SELECT value FROM meta WHERE key = ?1", "commits", cm, sizeof cm);
    *commits = cm[0] ? strtoll(cm, NULL, 10) : 0;
    if ((id[0] && strcmp(id, m->id) != 0) || (sk[0] && strcmp(sk, want_k) != 0)) {
        fprintf(out, "shard %d: FOREIGN %s: it is shard %s of directory %s, not shard %d of %s\n", k, path,
                sk[0] ? sk : "?", id[0] ? id : "?", k, m->id);
        return 1;
    }
    return 0;
}

/* The jobs by state into by_state; returns them all. */
static long long count_jobs(sqlite3 *db, long long by_state[NSTATES])
{
    long long total = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT state, count(*) FROM jobs GROUP BY state", -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int s = sqlite3_column_int(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        if (s >= 0 && s < NSTATES)
            by_state[s] = n;
        total += n;
    }
    sqlite3_finalize(st);
    return total;
}

/* Compares the commits the file holds with the shard's commit mark (the
 * count on disk before); prints CUT when fewer. markinfo describes the mark. */
static int check_mark(const char *dir, const struct manifest *m, int k, const char *path, int64_t have,
                      long long total, char *markinfo, size_t cap, FILE *out)
{
    struct mark mk;
    snprintf(markinfo, cap, "no commit mark");
    if (datadir_mark_read(dir, k, &mk) != 0 || mk.shard != k || strcmp(mk.id, m->id) != 0)
        return 0;
    snprintf(markinfo, cap, "mark %lld", (long long)mk.commits);
    if (have >= mk.commits)
        return 0;
    fprintf(out, "shard %d: CUT %s: it holds %lld commit(s) but %lld were on disk before (shard-%d.mark): the "
            "WAL was cut or damaged; the shard held %lld job(s) then, %lld can be read\n", k, path,
            (long long)have, (long long)mk.commits, k, (long long)mk.jobs, total);
    return 1;
}

/* Checks shard k; prints its line; returns the number of problems. */
static int check_shard(const char *dir, const struct manifest *m, int k, FILE *out)
{
    char path[4096], markinfo[160];
    datadir_shard_path(path, sizeof path, dir, k, ".db");
    sqlite3 *db = open_shard(path, k, out);
    if (!db)
        return 1;
    int64_t have;
    int problems = check_identity(db, m, k, path, &have, out);
    long long by_state[NSTATES] = { 0 };
    long long total = count_jobs(db, by_state);
    problems += check_mark(dir, m, k, path, have, total, markinfo, sizeof markinfo, out);
    fprintf(out, "shard %d: %s, %lld job(s):", k, problems ? "DAMAGED" : "ok", total);
    for (int s = 0; s < NSTATES; s++)
        fprintf(out, " %lld %s%s", by_state[s], state_names[s], s + 1 < NSTATES ? "," : "");
    fprintf(out, "; %lld commit(s) (%s)\n", (long long)have, markinfo);
    sqlite3_close(db);
    return problems;
}

int check_data_dir(const char *dir, FILE *out)
{
    char path[4096];
    datadir_path(path, sizeof path, dir, "LOCK");
    int lock = open(path, O_RDONLY | O_CLOEXEC);
    if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) < 0) {
        fprintf(out, "data directory %s is in use by a running spoold (its LOCK is held): stop it first, or check a "
                "copy or a backup\n", dir);
        close(lock);
        return 2;
    }
    struct manifest m;
    int rc = datadir_manifest_read(dir, &m), problems = 0;
    if (rc == -ENOENT) {
        fprintf(out, "data directory %s has no MANIFEST: it is not a spool data directory, or it was made by a "
                "spoold from before manifests (starting spoold on it writes one)\n", dir);
        if (lock >= 0)
            close(lock);
        return 2;
    }
    if (rc < 0) {
        fprintf(out, "%s/MANIFEST: %s\n", dir, rc == -EILSEQ ? "DAMAGED (not a spool manifest)" : strerror(-rc));
        if (lock >= 0)
            close(lock);
        return rc == -EILSEQ ? 1 : 2;
    }
    fprintf(out, "data directory %s: id %s, %d shard(s)%s\n", dir, m.id, m.shards,
            m.ready ? "" : " (its first start did not finish: missing shard files are created at the next start)");
    for (int k = 0; k < m.shards; k++) {
        datadir_shard_path(path, sizeof path, dir, k, ".db");
        if (!m.ready && access(path, F_OK) != 0)
            continue;
        problems += check_shard(dir, &m, k, out);
    }
    datadir_shard_path(path, sizeof path, dir, m.shards, ".db");
    if (access(path, F_OK) == 0) {
        fprintf(out, "EXTRA %s: the MANIFEST lists %d shard(s)\n", path, m.shards);
        problems++;
    }
    fprintf(out, "%s: %d problem(s)\n", problems ? "DAMAGED" : "OK", problems);
    if (lock >= 0)
        close(lock);
    return problems ? 1 : 0;
}
