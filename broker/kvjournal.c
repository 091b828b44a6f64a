/*
 * kvjournal.c - the keyspace's append-only log in the shard journal (see
 * kvjournal.h and migrations/0004_keyspace.sql).
 */
#include "kvjournal.h"

#include "journal.h"
#include "xalloc.h"

#include <sqlite3.h>

#include <errno.h>
#include <stdlib.h>

enum { OP_CREATE = 1, OP_CHANGE, OP_DELETE, OP_FIELD, OP_FIELD_DEL, OP_MEMBER, OP_MEMBER_DEL };

enum { KS_APPEND, KS_CLEAR, KS_COUNT };

static const char *const kv_sql[KS_COUNT] = {
    [KS_APPEND] = "INSERT INTO kv_log (op, key, type, expire_at, name, value, score) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [KS_CLEAR] = "DELETE FROM kv_log",
};

struct kvjournal {
    struct journal *jr;
    sqlite3_stmt *st[KS_COUNT];
    uint64_t rows;
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

uint64_t kvjournal_rows(const struct kvjournal *kj)
{
    return kj->rows;
}

static int bind_bytes(sqlite3_stmt *st, int col, const void *p, size_t n)
{
    return sqlite3_bind_blob64(st, col, n ? p : "", n, SQLITE_STATIC);
}

/* One row; unset columns keep their defaults (NULL name/value/score). */
static int append(struct kvjournal *kj, int op, const char *key, size_t klen, int type, int64_t expire_at,
                  const char *name, size_t nlen, const char *value, size_t vlen, const double *score)
{
    sqlite3_stmt *st = kj->st[KS_APPEND];
    int b = sqlite3_bind_int(st, 1, op);
    b |= bind_bytes(st, 2, key, klen);
    b |= sqlite3_bind_int(st, 3, type);
    b |= sqlite3_bind_int64(st, 4, expire_at);
    b |= name ? bind_bytes(st, 5, name, nlen) : sqlite3_bind_null(st, 5);
    b |= value ? bind_bytes(st, 6, value, vlen) : sqlite3_bind_null(st, 6);
    b |= score ? sqlite3_bind_double(st, 7, *score) : sqlite3_bind_null(st, 7);
    int rc = journal_write(kj->jr, st, b, "key write");
    if (rc == 0)
        kj->rows++;
    return rc;
}

int kvjournal_put(struct kvjournal *kj, const char *key, size_t klen, bool create, int type, int64_t expire_at,
                  const char *value, size_t vlen)
{
    return append(kj, create ? OP_CREATE : OP_CHANGE, key, klen, type, expire_at, NULL, 0, value, vlen, NULL);
}

int kvjournal_delete(struct kvjournal *kj, const char *key, size_t klen)
{
    return append(kj, OP_DELETE, key, klen, 0, 0, NULL, 0, NULL, 0, NULL);
}

int kvjournal_field(struct kvjournal *kj, const char *key, size_t klen, const char *f, size_t flen,
                    const char *value, size_t vlen)
{
    return append(kj, value ? OP_FIELD : OP_FIELD_DEL, key, klen, 0, 0, f, flen, value, vlen, NULL);
}

int kvjournal_member(struct kvjournal *kj, const char *key, size_t klen, const char *m, size_t mlen,
                     double score, bool deleted)
{
    return append(kj, deleted ? OP_MEMBER_DEL : OP_MEMBER, key, klen, 0, 0, m, mlen, NULL, 0,
                  deleted ? NULL : &score);
}

int kvjournal_clear(struct kvjournal *kj)
{
    int rc = journal_write(kj->jr, kj->st[KS_CLEAR], 0, "key log rewrite");
    if (rc == 0)
        kj->rows = 0;
    return rc;
}

/* ------------------------------------------------------------- recovery */

static const char *blob(sqlite3_stmt *st, int col, size_t *len)
{
    *len = (size_t)sqlite3_column_bytes(st, col);
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const char *p = sqlite3_column_blob(st, col);
    return p ? p : "";
}

static int replay(const struct kvjournal_load_fns *fns, void *arg, sqlite3_stmt *st)
{
    int op = sqlite3_column_int(st, 0);
    size_t kl, nl, vl;
    const char *k = blob(st, 1, &kl);
    const char *name = blob(st, 4, &nl);
    const char *v = blob(st, 5, &vl);
    if (!k)
        return -EILSEQ;
    switch (op) {
    case OP_CREATE:
    case OP_CHANGE:
        return fns->key(arg, k, kl, op == OP_CREATE, sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3), v, vl);
    case OP_DELETE:
        return fns->del(arg, k, kl);
    case OP_FIELD:
    case OP_FIELD_DEL:
        if (!name || (op == OP_FIELD && !v))
            return -EILSEQ;
        return fns->field(arg, k, kl, name, nl, op == OP_FIELD ? v : NULL, vl);
    case OP_MEMBER:
    case OP_MEMBER_DEL:
        if (!name)
            return -EILSEQ;
        return fns->member(arg, k, kl, name, nl, sqlite3_column_double(st, 6), op == OP_MEMBER_DEL);
    default:
        return -EILSEQ;
    }
}

int kvjournal_load(struct kvjournal *kj, const struct kvjournal_load_fns *fns, void *arg)
{
    sqlite3 *db = sqlite3_db_handle(kj->st[0]);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT op, key, type, expire_at, name, value, score FROM kv_log ORDER BY seq",
                                -1, &st, NULL);
    int err = 0;
    kj->rows = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((err = replay(fns, arg, st)) < 0)
            break;
        kj->rows++;
        rc = SQLITE_OK;
    }
    if (err == -EILSEQ)
        err = journal_read_error(kj->jr, SQLITE_CORRUPT, "loading keys (a kv_log row this spoold cannot read)");
    else if (err == 0 && rc != SQLITE_DONE)
        err = journal_read_error(kj->jr, rc, "loading keys");
    sqlite3_finalize(st);
    return err;
}
