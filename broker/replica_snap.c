/*
 * replica_snap.c - Raft snapshots of the shard journals (replica_snap.h).
 *
 * Threads: snap_begin runs on the Raft thread, snap_offer on each shard
 * thread, snap_collect on a libuv worker of libraft (fsm snapshot_async),
 * snap_restore on a shard thread. The taker's round is guarded by its
 * mutex; the serialisation itself runs outside it.
 *
 * Format: struct snap_head, then one struct snap_shard per shard, then the
 * shards' images (SQLite database files) in shard order.
 */
#include "replica_snap.h"

#include "log.h"

#include <raft.h>
#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNAP_MAGIC 0x73706f6f6c733031ULL /* "spools01" */

struct snap_head {
    uint64_t magic;
    uint64_t index;   /* the log index the snapshot stands for */
    uint32_t nshards;
    uint32_t pad;
};

struct snap_shard {
    int64_t applied;
    uint64_t len;
};

struct snap_taker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nshards;
    size_t max_bytes;
    bool open, cancelled;
    uint64_t index;
    int64_t *need;
    struct snap_shard *got;   /* per shard: its applied index and image length */
    unsigned char **img;      /* per shard, NULL until handed over */
    struct timespec t0;
    struct snap_figures fig;
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

struct snap_taker *snap_taker_new(int nshards, size_t max_bytes)
{
    struct snap_taker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->need = calloc((size_t)nshards, sizeof *t->need);
    t->got = calloc((size_t)nshards, sizeof *t->got);
    t->img = calloc((size_t)nshards, sizeof *t->img);
    if (!t->need || !t->got || !t->img) {
        snap_taker_free(t);
        return NULL;
    }
    t->nshards = nshards;
    t->max_bytes = max_bytes;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    return t;
}

/* With t->mu held, or when no other thread is left. */
static void drop_images(struct snap_taker *t)
{
    for (int k = 0; k < t->nshards; k++) {
        sqlite3_free(t->img[k]);
        t->img[k] = NULL;
    }
}

void snap_taker_free(struct snap_taker *t)
{
    if (!t)
        return;
    if (t->img) {
        drop_images(t);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    free(t->need);
    free(t->got);
    free(t->img);
    free(t);
}

int snap_begin(struct snap_taker *t, uint64_t index, const int64_t *need)
{
    pthread_mutex_lock(&t->mu);
    int rc = t->open || t->cancelled ? -EBUSY : 0;
    if (rc == 0) {
        t->open = true;
        t->index = index;
        memcpy(t->need, need, (size_t)t->nshards * sizeof *need);
        clock_gettime(CLOCK_MONOTONIC, &t->t0);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void snap_offer(struct snap_taker *t, int k, sqlite3 *db, bool in_txn, int64_t applied)
{
    pthread_mutex_lock(&t->mu);
    bool want = t->open && !t->img[k] && !in_txn && applied >= t->need[k];
    pthread_mutex_unlock(&t->mu);
    if (!want)
        return;
    sqlite3_int64 size = 0;
    unsigned char *img = sqlite3_serialize(db, "main", &size, 0);
    if (!img) {
        log_warn("replica: shard %d: cannot copy its journal for a snapshot (%s); the next turn tries again", k,
                 sqlite3_errmsg(db));
        return;
    }
    if (size >= 20)
        img[18] = img[19] = 1; /* a copy of the file, not of its WAL: open it in rollback mode */
    pthread_mutex_lock(&t->mu);
    if (t->open && !t->img[k]) {
        t->img[k] = img;
        t->got[k] = (struct snap_shard){ applied, (uint64_t)size };
        img = NULL;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    sqlite3_free(img);
}

static int missing(const struct snap_taker *t)
{
    int n = 0;
    for (int k = 0; k < t->nshards; k++)
        n += !t->img[k];
    return n;
}

/* With t->mu held, every image in: the header and the images as buffers
 * (the images move into them). */
static int build(struct snap_taker *t, struct raft_buffer **bufs, unsigned *n)
{
    size_t hlen = sizeof(struct snap_head) + (size_t)t->nshards * sizeof(struct snap_shard), total = hlen;
    for (int k = 0; k < t->nshards; k++)
        total += t->got[k].len;
    if (total > t->max_bytes)
        return -EFBIG;
    struct raft_buffer *b = calloc((size_t)t->nshards + 1, sizeof *b);
    unsigned char *h = malloc(hlen);
    if (!b || !h) {
        free(b);
        free(h);
        return -ENOMEM;
    }
    struct snap_head head = { SNAP_MAGIC, t->index, (uint32_t)t->nshards, 0 };
    memcpy(h, &head, sizeof head);
    memcpy(h + sizeof head, t->got, (size_t)t->nshards * sizeof *t->got);
    b[0] = (struct raft_buffer){ h, hlen };
    for (int k = 0; k < t->nshards; k++) {
        b[k + 1] = (struct raft_buffer){ t->img[k], t->got[k].len };
        t->img[k] = NULL;
    }
    t->fig.last_bytes = total;
    *bufs = b;
    *n = (unsigned)t->nshards + 1;
    return 0;
}

void snap_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Wakes the shards that have not handed over yet, then waits a while. */
static int wait_round(struct snap_taker *t, void (*wake)(void *, int), void *arg, double waited, int timeout_ms)
{
    for (int k = 0; k < t->nshards; k++)
        if (!t->img[k]) {
            pthread_mutex_unlock(&t->mu);
            wake(arg, k);
            pthread_mutex_lock(&t->mu);
        }
    if (waited >= timeout_ms)
        return -ETIMEDOUT;
    struct timespec until;
    snap_deadline(&until, 200);
    pthread_cond_timedwait(&t->cv, &t->mu, &until);
    return 0;
}

int snap_collect(struct snap_taker *t, void (*wake)(void *, int), void *arg, int timeout_ms,
                 struct raft_buffer **bufs, unsigned *n)
{
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    while (rc == 0 && missing(t) && !t->cancelled)
        rc = wait_round(t, wake, arg, ms_since(&t->t0), timeout_ms);
    if (t->cancelled)
        rc = -ECANCELED;
    if (rc == 0)
        rc = build(t, bufs, n);
    t->fig.last_ms = (uint64_t)ms_since(&t->t0);
    if (rc == 0) {
        t->fig.taken++;
        t->fig.last_index = t->index;
    } else {
        t->fig.failed++;
        log_warn("replica: no snapshot at log index %" PRIu64 ": %s", t->index,
                 rc == -EFBIG ? "the journals exceed --replica-snapshot-max-mb (the Raft log keeps growing until "
                                "they shrink or the limit is raised)"
                 : rc == -ETIMEDOUT ? "a shard did not hand its journal over in time; the next threshold tries again"
                 : strerror(-rc));
        drop_images(t);
    }
    t->open = false;
    pthread_mutex_unlock(&t->mu);
    if (rc == 0)
        log_info("replica: snapshot at log index %" PRIu64 ": %" PRIu64 " bytes in %" PRIu64 " ms", t->fig.last_index,
                 t->fig.last_bytes, t->fig.last_ms);
    return rc;
}

void snap_release(struct snap_taker *t, struct raft_buffer *bufs, unsigned n)
{
    if (!bufs)
        return;
    pthread_mutex_lock(&t->mu);
    t->fig.last_total_ms = (uint64_t)ms_since(&t->t0);
    pthread_mutex_unlock(&t->mu);
    free(bufs[0].base);
    for (unsigned i = 1; i < n; i++)
        sqlite3_free(bufs[i].base);
    free(bufs);
}

void snap_cancel(struct snap_taker *t)
{
    pthread_mutex_lock(&t->mu);
    t->cancelled = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void snap_figures(struct snap_taker *t, struct snap_figures *f)
{
    pthread_mutex_lock(&t->mu);
    *f = t->fig;
    pthread_mutex_unlock(&t->mu);
}

void snap_count_restore(struct snap_taker *t)
{
    pthread_mutex_lock(&t->mu);
    t->fig.restored++;
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------ restoring */

int snap_parse(const void *buf, size_t len, int nshards, uint64_t *index, struct snap_part *parts, char *err,
               size_t cap)
{
    struct snap_head h;
    size_t hlen = sizeof h + (size_t)nshards * sizeof(struct snap_shard);
    if (len < sizeof h || (memcpy(&h, buf, sizeof h), h.magic != SNAP_MAGIC)) {
        snprintf(err, cap, "not a snapshot of spool's journals (%zu bytes)", len);
        return -1;
    }
    if (h.nshards != (uint32_t)nshards || len < hlen) {
        snprintf(err, cap, "the snapshot holds %u shard(s), this node has %d: every member needs the same --shards",
                 h.nshards, nshards);
        return -1;
    }
    size_t off = hlen;
    for (int k = 0; k < nshards; k++) {
        struct snap_shard s;
        memcpy(&s, (const char *)buf + sizeof h + (size_t)k * sizeof s, sizeof s);
        if (s.len > len - off) {
            snprintf(err, cap, "the snapshot is cut short (shard %d's journal)", k);
            return -1;
        }
        parts[k] = (struct snap_part){ s.applied, (const char *)buf + off, (size_t)s.len };
        off += s.len;
    }
    *index = h.index;
    return 0;
}

static int db_int(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st);
    return rc;
}

/* Copies every row of table `name` from src into db (emptied first). */
static int copy_table(sqlite3 *db, sqlite3 *src, const char *name, char *err, size_t cap)
{
    char *del = sqlite3_mprintf("DELETE FROM main.\"%w\"", name), *sel = sqlite3_mprintf("SELECT * FROM \"%w\"", name);
    sqlite3_stmt *from = NULL, *to = NULL;
    int rc = sqlite3_exec(db, del, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(src, sel, -1, &from, NULL);
    int ncol = from ? sqlite3_column_count(from) : 0;
    if (rc == SQLITE_OK) {
        sqlite3_str *ins = sqlite3_str_new(db);
        sqlite3_str_appendf(ins, "INSERT INTO main.\"%w\" VALUES (", name);
        for (int i = 0; i < ncol; i++)
            sqlite3_str_appendall(ins, i ? ",?" : "?");
        sqlite3_str_appendall(ins, ")");
        char *sql = sqlite3_str_finish(ins);
        rc = sqlite3_prepare_v2(db, sql, -1, &to, NULL);
        sqlite3_free(sql);
    }
    while (rc == SQLITE_OK && sqlite3_step(from) == SQLITE_ROW) {
        for (int i = 0; i < ncol; i++)
            sqlite3_bind_value(to, i + 1, sqlite3_column_value(from, i));
        rc = sqlite3_step(to) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(to);
    }
    if (rc != SQLITE_OK)
        snprintf(err, cap, "copying table %s: %s", name, sqlite3_errmsg(db));
    sqlite3_finalize(from);
    sqlite3_finalize(to);
    sqlite3_free(del);
    sqlite3_free(sel);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Every replicated table of db: the journal's own bookkeeping (meta, the
 * applied index) stays local, as in replica.c's session filter. */
static int copy_tables(sqlite3 *db, sqlite3 *src, char *err, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE "
                                "'sqlite_%' AND name NOT IN ('meta', 'spool_replica') ORDER BY name", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, cap, "listing the journal's tables: %s", sqlite3_errmsg(db));
        return -1;
    }
    int out = 0;
    while (out == 0 && sqlite3_step(st) == SQLITE_ROW)
        out = copy_table(db, src, (const char *)sqlite3_column_text(st, 0), err, cap);
    sqlite3_finalize(st);
    return out;
}

int snap_restore(sqlite3 *db, const void *img, size_t len, char *err, size_t cap)
{
    sqlite3 *src = NULL;
    int rc = sqlite3_open_v2(":memory:", &src, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_deserialize(src, "main", (unsigned char *)img, (sqlite3_int64)len, (sqlite3_int64)len,
                                 SQLITE_DESERIALIZE_READONLY);
    int64_t theirs = -1, ours = -2;
    if (rc == SQLITE_OK)
        rc = db_int(src, "PRAGMA user_version", &theirs);
    if (rc == SQLITE_OK)
        rc = db_int(db, "PRAGMA main.user_version", &ours);
    int out = -1;
    if (rc != SQLITE_OK)
        snprintf(err, cap, "cannot read the snapshot's journal: %s", src ? sqlite3_errmsg(src) : "out of memory");
    else if (theirs != ours)
        snprintf(err, cap, "the snapshot's journal has schema version %" PRId64 ", this spoold's %" PRId64
                 ": run the same spoold version on every member", theirs, ours);
    else
        out = copy_tables(db, src, err, cap);
    sqlite3_close(src);
    return out;
}
