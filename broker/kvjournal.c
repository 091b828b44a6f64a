/*
 * kvjournal.c - keyspace rows in the shard journal (see kvjournal.h).
 */
#include "kvjournal.h"

#include "journal.h"
#include "xalloc.h"

#include <sqlite3.h>

#include <errno.h>
#include <stdlib.h>

enum {
    KS_PUT,
    KS_DEL_KEY,
    KS_DEL_FIELDS,
    KS_DEL_MEMBERS,
    KS_HPUT,
    KS_HDEL,
    KS_ZPUT,
    KS_ZDEL,
    KS_COUNT
};

static const char *const kv_sql[KS_COUNT] = {
    [KS_PUT] = "INSERT INTO kv (key, type, expire_at, value) VALUES (?1, ?2, ?3, ?4) "
               "ON CONFLICT (key) DO UPDATE SET type = excluded.type, expire_at = excluded.expire_at, "
               "value = excluded.value",
    [KS_DEL_KEY] = "DELETE FROM kv WHERE key = ?1",
    [KS_DEL_FIELDS] = "DELETE FROM kv_hash WHERE key = ?1",
    [KS_DEL_MEMBERS] = "DELETE FROM kv_zset WHERE key = ?1",
    [KS_HPUT] = "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (key, field) DO UPDATE SET value = excluded.value",
    [KS_HDEL] = "DELETE FROM kv_hash WHERE key = ?1 AND field = ?2",
    [KS_ZPUT] = "INSERT INTO kv_zset (key, member, score) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (key, member) DO UPDATE SET score = excluded.score",
    [KS_ZDEL] = "DELETE FROM kv_zset WHERE key = ?1 AND member = ?2",
};

struct kvjournal {
    struct journal *jr;
    sqlite3_stmt *st[KS_COUNT];
};

int kvjournal_open(struct kvjournal **out, struct journal *jr)
{
    struct kvjournal *kj = xcalloc(1, sizeof *kj);
    kj->jr = jr;
    for (int i = 0; i < KS_COUNT; i++) {
        int rc = journal_prepare(jr, kv_sql[i], &kj->st[i]);
        if (rc < 0) {
            kvjournal_close(kj);
            return rc;
        }
    }
    *out = kj;
    return 0;
}

void kvjournal_close(struct kvjournal *kj)
{
    if (!kj)
        return;
    for (int i = 0; i < KS_COUNT; i++)
        sqlite3_finalize(kj->st[i]);
    free(kj);
}

static int bind_bytes(sqlite3_stmt *st, int col, const void *p, size_t n)
{
    return sqlite3_bind_blob64(st, col, n ? p : "", n, SQLITE_STATIC);
}

int kvjournal_put(struct kvjournal *kj, const char *key, size_t klen, int type, int64_t expire_at,
                  const char *value, size_t vlen)
{
    sqlite3_stmt *st = kj->st[KS_PUT];
    int b = bind_bytes(st, 1, key, klen);
    b |= sqlite3_bind_int(st, 2, type);
    b |= sqlite3_bind_int64(st, 3, expire_at);
    b |= value ? bind_bytes(st, 4, value, vlen) : sqlite3_bind_null(st, 4);
    return journal_write(kj->jr, st, b, "key write");
}

int kvjournal_delete(struct kvjournal *kj, const char *key, size_t klen)
{
    static const int which[] = { KS_DEL_KEY, KS_DEL_FIELDS, KS_DEL_MEMBERS };
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st = kj->st[which[i]];
        int rc = journal_write(kj->jr, st, bind_bytes(st, 1, key, klen), "key delete");
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kvjournal_hash_put(struct kvjournal *kj, const char *key, size_t klen, const char *field, size_t flen,
                       const char *value, size_t vlen)
{
    sqlite3_stmt *st = kj->st[KS_HPUT];
    int b = bind_bytes(st, 1, key, klen) | bind_bytes(st, 2, field, flen) | bind_bytes(st, 3, value, vlen);
    return journal_write(kj->jr, st, b, "hash field write");
}

int kvjournal_hash_delete(struct kvjournal *kj, const char *key, size_t klen, const char *field, size_t flen)
{
    sqlite3_stmt *st = kj->st[KS_HDEL];
    int b = bind_bytes(st, 1, key, klen) | bind_bytes(st, 2, field, flen);
    return journal_write(kj->jr, st, b, "hash field delete");
}

int kvjournal_zset_put(struct kvjournal *kj, const char *key, size_t klen, const char *member, size_t mlen,
                       double score)
{
    sqlite3_stmt *st = kj->st[KS_ZPUT];
    int b = bind_bytes(st, 1, key, klen) | bind_bytes(st, 2, member, mlen) | sqlite3_bind_double(st, 3, score);
    return journal_write(kj->jr, st, b, "sorted set write");
}

int kvjournal_zset_delete(struct kvjournal *kj, const char *key, size_t klen, const char *member, size_t mlen)
{
    sqlite3_stmt *st = kj->st[KS_ZDEL];
    int b = bind_bytes(st, 1, key, klen) | bind_bytes(st, 2, member, mlen);
    return journal_write(kj->jr, st, b, "sorted set delete");
}

/* ------------------------------------------------------------- recovery */

static int exec_now(struct kvjournal *kj, const char *sql, int64_t now)
{
    sqlite3 *db = sqlite3_db_handle(kj->st[0]);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : journal_read_error(kj->jr, rc, "expiring keys at start");
}

static int drop_expired(struct kvjournal *kj, int64_t now)
{
    static const char *const sql[] = {
        "BEGIN",
        "DELETE FROM kv_hash WHERE key IN (SELECT key FROM kv WHERE expire_at > 0 AND expire_at <= ?1)",
        "DELETE FROM kv_zset WHERE key IN (SELECT key FROM kv WHERE expire_at > 0 AND expire_at <= ?1)",
        "DELETE FROM kv WHERE expire_at > 0 AND expire_at <= ?1",
        "COMMIT",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        int rc = exec_now(kj, sql[i], now);
        if (rc < 0) {
            sqlite3_exec(sqlite3_db_handle(kj->st[0]), "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return 0;
}

static int load_rows(struct kvjournal *kj, const char *sql, int kind, const struct kvjournal_load_fns *fns, void *arg)
{
    sqlite3 *db = sqlite3_db_handle(kj->st[0]);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    int err = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = sqlite3_column_blob(st, 0);
        size_t kl = (size_t)sqlite3_column_bytes(st, 0);
        const char *a = sqlite3_column_blob(st, 1);
        size_t al = (size_t)sqlite3_column_bytes(st, 1);
        if (kind == 0) {
            const char *v = sqlite3_column_blob(st, 3);
            size_t vl = (size_t)sqlite3_column_bytes(st, 3);
            err = fns->key(arg, k, kl, sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2),
                           sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : (v ? v : ""), vl);
        } else if (kind == 1) {
            const char *v = sqlite3_column_blob(st, 2);
            err = fns->field(arg, k, kl, a ? a : "", al, v ? v : "", (size_t)sqlite3_column_bytes(st, 2));
        } else {
            err = fns->member(arg, k, kl, a ? a : "", al, sqlite3_column_double(st, 2));
        }
        if (err < 0)
            break;
        rc = SQLITE_OK;
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = journal_read_error(kj->jr, rc, "loading keys");
    sqlite3_finalize(st);
    return err;
}

int kvjournal_load(struct kvjournal *kj, int64_t now, const struct kvjournal_load_fns *fns, void *arg)
{
    int rc = drop_expired(kj, now);
    if (rc == 0)
        rc = load_rows(kj, "SELECT key, type, expire_at, value FROM kv", 0, fns, arg);
    if (rc == 0)
        rc = load_rows(kj, "SELECT key, field, value FROM kv_hash", 1, fns, arg);
    if (rc == 0)
        rc = load_rows(kj, "SELECT key, member, score FROM kv_zset", 2, fns, arg);
    return rc;
}
