/*
 * jext.c - statements on the journal's tables of migration 0006 (see
 * jext.h). Writing statements are prepared once per shard and kept in a
 * small cache keyed by their SQL text's address (every caller passes a
 * constant); reads, which run at recovery only, are prepared per call.
 */
#include "jext.h"

#include "journal.h"
#include "log.h"
#include "queue.h"
#include "shard.h"
#include "xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int bind_all(sqlite3_stmt *st, const char *types, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
        int col = i + 1;
        switch (types[i]) {
        case 'i':
            rc = sqlite3_bind_int64(st, col, va_arg(ap, int64_t));
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = p ? sqlite3_bind_blob64(st, col, n ? p : "", n, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
            break;
        }
        default: {
            const char *t = va_arg(ap, const char *);
            rc = t ? sqlite3_bind_text(st, col, t, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
        }
        }
    }
    return rc;
}

static sqlite3_stmt *prepare(struct shard *s, const char *sql, const char *types, va_list ap, int *rc)
{
    sqlite3 *db = journal_sqlite(s->st.jr);
    sqlite3_stmt *st = NULL;
    *rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (*rc == SQLITE_OK)
        *rc = bind_all(st, types, ap);
    if (*rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

#define JEXT_CACHE 24

struct jext_cache {
    const char *sql[JEXT_CACHE];
    sqlite3_stmt *st[JEXT_CACHE];
    int n;
};

/* The cached statement for sql, prepared on first use (NULL on error). */
static sqlite3_stmt *cached(struct shard *s, const char *sql, int *rc)
{
    if (!s->jext)
        s->jext = xcalloc(1, sizeof *s->jext);
    struct jext_cache *c = s->jext;
    for (int i = 0; i < c->n; i++)
        if (c->sql[i] == sql)
            return c->st[i];
    sqlite3_stmt *st = NULL;
    *rc = sqlite3_prepare_v3(journal_sqlite(s->st.jr), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (*rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    if (c->n < JEXT_CACHE) {
        c->sql[c->n] = sql;
        c->st[c->n++] = st;
    }
    return st;
}

static bool is_cached(const struct shard *s, const sqlite3_stmt *st)
{
    for (int i = 0; s->jext && i < s->jext->n; i++)
        if (s->jext->st[i] == st)
            return true;
    return false;
}

void jext_write(struct shard *s, const char *sql, const char *types, ...)
{
    if (!store_jr_begin(&s->st))
        return;
    int rc = SQLITE_OK;
    sqlite3_stmt *st = cached(s, sql, &rc);
    if (st) {
        va_list ap;
        va_start(ap, types);
        rc = bind_all(st, types, ap);
        va_end(ap);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
            rc = SQLITE_OK;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (!is_cached(s, st))
            sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK)
        store_jr_result(&s->st, journal_sqlite_fail(s->st.jr, rc, "write"));
}

static void jext_close(struct shard *s)
{
    if (!s->jext)
        return;
    for (int i = 0; i < s->jext->n; i++)
        sqlite3_finalize(s->jext->st[i]);
    free(s->jext);
    s->jext = NULL;
}

const struct shard_ext jext_ext = {
    .destroy = jext_close,
};

sqlite3_stmt *jext_read(struct shard *s, const char *sql, const char *types, ...)
{
    if (!s->st.jr)
        return NULL;
    va_list ap;
    va_start(ap, types);
    int rc;
    sqlite3_stmt *st = prepare(s, sql, types, ap, &rc);
    va_end(ap);
    if (!st)
        log_error("shard %d: cannot read the journal: %s", s->id,
                  sqlite3_errmsg(journal_sqlite(s->st.jr)));
    return st;
}

char *jext_col_dup(sqlite3_stmt *st, int col, size_t *len)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

void jext_job_result(struct shard *s, uint64_t id, const char *result, size_t len)
{
    jext_write(s, "UPDATE jobs SET result = ?1 WHERE id = ?2", "bi", result, len, (int64_t)id);
}

void jext_job_progress(struct shard *s, uint64_t id, const char *progress)
{
    jext_write(s, "UPDATE jobs SET progress = ?1 WHERE id = ?2", "bi", progress,
               progress ? strlen(progress) : (size_t)0, (int64_t)id);
}

void jext_job_batch(struct shard *s, uint64_t id, uint64_t batch)
{
    jext_write(s, "UPDATE jobs SET batch = ?1 WHERE id = ?2", "ii", (int64_t)batch, (int64_t)id);
}

int jext_job_result_read(struct shard *s, struct job *j)
{
    sqlite3_stmt *st = jext_read(s, "SELECT result FROM jobs WHERE id = ?1", "i", (int64_t)j->id);
    if (!st)
        return -EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t n = 0;
        free(j->result);
        j->result = jext_col_dup(st, 0, &n);
        j->result_len = (uint32_t)n;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -ENOENT;
}

int jext_load_jobs(struct shard *s)
{
    sqlite3_stmt *st = jext_read(s, "SELECT id, length(result), progress, batch FROM jobs "
                                    "WHERE result IS NOT NULL OR progress IS NOT NULL OR batch != 0", "");
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct job *j = jtable_find(&s->st.jobs, (uint64_t)sqlite3_column_int64(st, 0));
        if (!j)
            continue;
        free(j->result);
        j->result = NULL;
        j->result_on_disk = sqlite3_column_type(st, 1) != SQLITE_NULL;
        j->result_len = (uint32_t)sqlite3_column_int64(st, 1);
        free(j->progress);
        j->progress = jext_col_dup(st, 2, NULL);
        j->batch = (uint64_t)sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}
