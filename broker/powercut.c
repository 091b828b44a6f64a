/*
 * powercut.c - the power-loss simulator behind DEBUG POWER-CUT: a SQLite
 * VFS shim over "unix" plus the same tracking for spoold's own files. The
 * model, the API and who calls it are in powercut.h.
 *
 * Locks, in the order they are taken:
 *   pc_rw   writer-preferring rwlock: every tracked write, truncate, open
 *           and delete holds it shared from before it touches the disk
 *           until its bookkeeping is done (a sync: only after the fsync
 *           returned, to record it); powercut_cut() takes it exclusively
 *           and never lets go.
 *   rec->mu one per tracked file: the thread writing or syncing the file
 *           (a shard thread or, with --fsync always, its sync thread,
 *           never both at once; the main thread for fsio files).
 *   pc_mu   leaf: the list of records and every record's entry flags
 *           (entry_durable, deleted, dirsync_pending).
 * None is held while calling into another module. Only the cut and the
 * operations themselves take them, and only while the seam is on.
 */
#include "powercut.h"

#include "log.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PC_BLOCK 4096
#define PC_SECTOR 512

/* ------------------------------------------------------------ records */

struct pc_saved {
    int64_t off;
    int len;
    unsigned char *data;
};

struct pc_rec {
    struct pc_rec *next;
    char *path;              /* realpath of the directory + "/" + name */
    size_t dirlen;           /* path[0..dirlen) is the directory */
    bool is_dir;
    bool entry_durable;      /* pc_mu */
    bool deleted;            /* pc_mu */
    bool dirsync_pending;    /* pc_mu: SQLite's next sync of it syncs the directory */
    bool known;              /* synced_size was set (at the first open or a sync) */
    pthread_mutex_t mu;
    int64_t synced_size;
    uint8_t *bits;           /* pre-image saved, per block below synced_size */
    size_t nbits;            /* bytes of bits */
    struct pc_saved *saved;
    size_t nsaved, capsaved;
    int64_t last_off;        /* the last unsynced write */
    size_t last_len;
    unsigned char *last;
    struct pc_saved *lost;   /* blocks a failed sync lost for good (data NULL: zeros) */
    size_t nlost, caplost;
    atomic_int fail_syncs;   /* DEBUG SYNC-FAIL: this many next syncs of the file fail */
};

static atomic_bool pc_on;
static pthread_rwlock_t pc_rw;
static pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pc_rec *pc_recs;

/* Start-up cut: SPOOL_POWER_CUT_AT=write:N|sync:N|read:N */
enum pc_op { PC_NONE, PC_WRITE, PC_SYNC, PC_READ };
static enum pc_op pc_trigger_op;
static long pc_trigger_n;
static bool pc_trigger_torn;
static atomic_long pc_count[4];
/* Start-up failure: SPOOL_SYNC_FAIL_AT=N fails the Nth tracked sync. */
static long pc_sync_fail_at;
static atomic_long pc_syncs_begun;

bool powercut_enabled(void)
{
    return atomic_load_explicit(&pc_on, memory_order_relaxed);
}

static void pc_hold(void)
{
    pthread_rwlock_rdlock(&pc_rw);
}

static void pc_release(void)
{
    pthread_rwlock_unlock(&pc_rw);
}

/* After an operation, with no lock held: the start-up trigger. */
static void pc_counted(enum pc_op op)
{
    long n = atomic_fetch_add(&pc_count[op], 1) + 1;
    if (pc_trigger_op == op && n == pc_trigger_n) {
        log_warn("SPOOL_POWER_CUT_AT: cutting the power after %s %ld",
                 op == PC_WRITE ? "write" : op == PC_SYNC ? "sync" : "read", n);
        powercut_cut(pc_trigger_torn);
    }
}

/* The canonical name: realpath() of the directory, then the last part. */
static int pc_canon(const char *path, char *out, size_t cap, size_t *dirlen)
{
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    const char *base = basename(b);
    if (!realpath(dirname(a), dir))
        return -errno;
    int n = snprintf(out, cap, "%s/%s", strcmp(dir, "/") ? dir : "", base);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    *dirlen = strlen(out) - strlen(base) - 1;
    return 0;
}

static void rec_clear(struct pc_rec *r)
{
    for (size_t i = 0; i < r->nsaved; i++)
        free(r->saved[i].data);
    r->nsaved = 0;
    free(r->last);
    r->last = NULL;
    r->last_len = 0;
}

/* A new synced image of size bytes: no pre-image is needed any more. */
static void rec_synced(struct pc_rec *r, int64_t size)
{
    rec_clear(r);
    r->known = true;
    r->synced_size = size;
    size_t need = (size_t)((size + PC_BLOCK - 1) / PC_BLOCK + 7) / 8;
    if (need > r->nbits) {
        uint8_t *nb = realloc(r->bits, need);
        if (nb) {
            r->bits = nb;
            r->nbits = need;
        }
    }
    if (r->bits)
        memset(r->bits, 0, r->nbits);
}

/* The live record named canon, else a deleted one, else NULL. pc_mu held. */
static struct pc_rec *rec_lookup_locked(const char *canon)
{
    struct pc_rec *dead = NULL;
    for (struct pc_rec *r = pc_recs; r; r = r->next) {
        if (strcmp(r->path, canon) != 0)
            continue;
        if (!r->deleted)
            return r;
        dead = r;
    }
    return dead;
}

/* The record of path (created when absent); NULL when the path cannot be
 * named (its directory is gone). created: this open makes a new file. */
static struct pc_rec *rec_get(const char *path, bool created, bool is_dir)
{
    char canon[PATH_MAX];
    size_t dirlen;
    if (pc_canon(path, canon, sizeof canon, &dirlen) < 0)
        return NULL;
    pthread_mutex_lock(&pc_mu);
    struct pc_rec *r = rec_lookup_locked(canon);
    if (!r && (r = calloc(1, sizeof *r))) {
        r->path = strdup(canon);
        r->dirlen = dirlen;
        pthread_mutex_init(&r->mu, NULL);
        r->entry_durable = true;
        r->next = pc_recs;
        pc_recs = r;
    }
    if (r && created) {
        r->entry_durable = false;
        r->deleted = false;
        r->dirsync_pending = false;
    }
    if (r)
        r->is_dir = is_dir;
    pthread_mutex_unlock(&pc_mu);
    return r && r->path ? r : NULL;
}

static struct pc_rec *rec_find(const char *path)
{
    char canon[PATH_MAX];
    size_t dirlen;
    if (pc_canon(path, canon, sizeof canon, &dirlen) < 0)
        return NULL;
    pthread_mutex_lock(&pc_mu);
    struct pc_rec *r = rec_lookup_locked(canon);
    pthread_mutex_unlock(&pc_mu);
    return r;
}

/* Every entry in directory dir (canonical, length n) is durable now. */
static void dir_synced(const char *dir, size_t n)
{
    pthread_mutex_lock(&pc_mu);
    for (struct pc_rec *r = pc_recs; r; r = r->next)
        if (r->dirlen == n && strncmp(r->path, dir, n) == 0)
            r->entry_durable = true;
    pthread_mutex_unlock(&pc_mu);
}

typedef int (*pc_read_fn)(void *ctx, void *buf, int n, int64_t off);

/* Appends a block to a growing array; false (data freed) without memory. */
static bool saved_add(struct pc_saved **v, size_t *n, size_t *cap, int64_t off, int len, unsigned char *data)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct pc_saved *nv = realloc(*v, c * sizeof *nv);
        if (!nv) {
            free(data);
            return false;
        }
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (struct pc_saved){ off, len, data };
    return true;
}

/* Saves the synced content of every block of [off, off+len) below the
 * synced size that has none saved yet. rec->mu held. */
static void rec_save(struct pc_rec *r, int64_t off, int64_t len, pc_read_fn rd, void *ctx)
{
    if (len <= 0 || off >= r->synced_size)
        return;
    int64_t end = off + len < r->synced_size ? off + len : r->synced_size;
    for (int64_t b = off / PC_BLOCK; b * PC_BLOCK < end; b++) {
        if ((size_t)(b / 8) >= r->nbits || (r->bits[b / 8] & (1u << (b % 8))))
            continue;
        int64_t at = b * PC_BLOCK;
        int n = (int)(r->synced_size - at < PC_BLOCK ? r->synced_size - at : PC_BLOCK);
        unsigned char *data = malloc((size_t)n);
        if (!data)
            continue;
        if (rd(ctx, data, n, at) != 0)
            memset(data, 0, (size_t)n);
        if (saved_add(&r->saved, &r->nsaved, &r->capsaved, at, n, data))
            r->bits[b / 8] |= (uint8_t)(1u << (b % 8));
    }
}

/* Remembers the last unsynced write (for TORN). rec->mu held. */
static void rec_wrote(struct pc_rec *r, int64_t off, const void *buf, size_t n)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy)
        return;
    memcpy(copy, buf, n);
    free(r->last);
    r->last = copy;
    r->last_off = off;
    r->last_len = n;
}

/* Appends a lost block (data NULL: the disk holds zeros there). rec->mu held. */
static void rec_lose(struct pc_rec *r, int64_t off, int len, unsigned char *data)
{
    saved_add(&r->lost, &r->nlost, &r->caplost, off, len, data);
}

/* A sync failed, as Linux fails one: the pages it was writing are marked
 * clean although they never reached the disk, so the disk keeps the last
 * synced content of every block written since (the pre-images), and zeros
 * past the synced size, even when a later sync succeeds. Reads still see
 * the new bytes (the page cache). rec->mu held. */
static void rec_sync_failed(struct pc_rec *r, int64_t size)
{
    for (size_t i = 0; i < r->nsaved; i++)
        rec_lose(r, r->saved[i].off, r->saved[i].len, r->saved[i].data);
    r->nsaved = 0;
    rec_clear(r);
    for (int64_t at = r->synced_size; at < size; at += PC_BLOCK)
        rec_lose(r, at, (int)(size - at < PC_BLOCK ? size - at : PC_BLOCK), NULL);
    if (r->bits)
        memset(r->bits, 0, r->nbits); /* what was saved is lost now: a new write saves afresh */
}

/* [off, off+len) is written again (or cut off when len < 0: everything
 * from off): those bytes are dirty again, no longer lost. rec->mu held. */
static void rec_unlose(struct pc_rec *r, int64_t off, int64_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nlost; i++) {
        struct pc_saved *l = &r->lost[i];
        bool hit = len < 0 ? l->off + l->len > off : l->off < off + len && off < l->off + l->len;
        if (hit && len < 0 && l->off < off) {
            l->len = (int)(off - l->off); /* a truncate cuts it short */
            hit = false;
        }
        if (hit)
            free(l->data);
        else
            r->lost[k++] = *l;
    }
    r->nlost = k;
}

/* ------------------------------------------------------------ the cut */

static uint64_t pc_rng;

static uint64_t pc_rand(void)
{
    pc_rng ^= pc_rng << 13;
    pc_rng ^= pc_rng >> 7;
    pc_rng ^= pc_rng << 17;
    return pc_rng;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Writes back the synced image of r; with torn, a random sector-aligned
 * prefix of its last unsynced write. Adds what it dropped to *dropped. */
static void cut_file(struct pc_rec *r, bool torn, long long *dropped, long long *torn_bytes)
{
    int fd = open(r->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > r->synced_size)
        *dropped += st.st_size - r->synced_size;
    for (size_t i = 0; i < r->nsaved; i++) {
        struct pc_saved *s = &r->saved[i];
        if (pwrite(fd, s->data, (size_t)s->len, s->off) == s->len)
            *dropped += s->len;
    }
    if (ftruncate(fd, r->synced_size) != 0)
        log_error("power cut: cannot truncate %s: %s", r->path, strerror(errno));
    if (torn && r->last && r->last_len > 0) {
        /* cut points: the write's start and every sector boundary inside it */
        int64_t first = (r->last_off / PC_SECTOR + 1) * PC_SECTOR;
        int64_t end = r->last_off + (int64_t)r->last_len;
        int64_t npoints = 1 + (first < end ? (end - 1 - first) / PC_SECTOR + 1 : 0);
        int64_t k = (int64_t)(pc_rand() % (uint64_t)npoints);
        int64_t cut = k == 0 ? r->last_off : first + (k - 1) * PC_SECTOR;
        size_t keep = (size_t)(cut - r->last_off);
        if (keep && pwrite(fd, r->last, keep, r->last_off) == (ssize_t)keep)
            *torn_bytes += (long long)keep;
    }
    static const unsigned char zeros[PC_BLOCK];
    for (size_t i = 0; i < r->nlost; i++) { /* what failed syncs lost stays lost */
        struct pc_saved *l = &r->lost[i];
        size_t n = l->off + l->len <= r->synced_size ? (size_t)l->len : (size_t)(r->synced_size - l->off);
        if (l->off < r->synced_size && pwrite(fd, l->data ? l->data : zeros, n, l->off) == (ssize_t)n)
            *dropped += (long long)n;
    }
    close(fd);
}

_Noreturn void powercut_cut(bool torn)
{
    if (!powercut_enabled()) {
        log_error("DEBUG POWER-CUT without the seam (start with --enable-debug-command yes)");
        _exit(POWERCUT_EXIT_CODE);
    }
    pthread_rwlock_wrlock(&pc_rw); /* never released: nothing is written after this */
    pthread_mutex_lock(&pc_mu);
    pc_rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() << 16 ^ 0x5DEECE66DULL;
    long long dropped = 0, torn_bytes = 0;
    int files = 0, removed = 0;
    for (struct pc_rec *r = pc_recs; r; r = r->next) {
        if (r->deleted || r->is_dir || !r->entry_durable)
            continue;
        cut_file(r, torn, &dropped, &torn_bytes);
        files++;
    }
    for (struct pc_rec *r = pc_recs; r; r = r->next) {
        if (r->deleted || r->entry_durable || r->is_dir)
            continue;
        if (unlink(r->path) == 0)
            removed++;
    }
    for (struct pc_rec *r = pc_recs; r; r = r->next) {
        if (r->deleted || r->entry_durable || !r->is_dir)
            continue;
        if (nftw(r->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
            removed++;
    }
    char tornmsg[96] = "";
    if (torn)
        snprintf(tornmsg, sizeof tornmsg, "; %lld byte(s) of torn last writes kept", torn_bytes);
    log_warn("DEBUG POWER-CUT%s: %d file(s) set back to their last sync (%lld byte(s) of unsynced "
             "writes dropped%s), %d entr%s whose directory was never synced removed; exiting",
             torn ? " TORN" : "", files, dropped, tornmsg, removed, removed == 1 ? "y" : "ies");
    _exit(POWERCUT_EXIT_CODE);
}

/* ------------------------------------------------------- the VFS shim */

struct pc_file {
    sqlite3_file base;
    sqlite3_file *real;
    struct pc_rec *rec;   /* NULL: not tracked (temporary files) */
};

static sqlite3_vfs pc_vfs;
static sqlite3_io_methods pc_io;

#define REAL(f) (((struct pc_file *)(f))->real)
#define REC(f) (((struct pc_file *)(f))->rec)

static int pc_real_read(void *ctx, void *buf, int n, int64_t off)
{
    sqlite3_file *real = ctx;
    int rc = real->pMethods->xRead(real, buf, n, off);
    return rc == SQLITE_OK || rc == SQLITE_IOERR_SHORT_READ ? 0 : -1; /* short: zero-filled */
}

static int pc_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int pc_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    int rc = REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
    if (REC(f))
        pc_counted(PC_READ);
    return rc;
}

static int pc_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    struct pc_rec *r = REC(f);
    if (!r)
        return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
    pc_hold();
    pthread_mutex_lock(&r->mu);
    rec_save(r, off, n, pc_real_read, REAL(f));
    int rc = REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
    if (rc == SQLITE_OK) {
        rec_wrote(r, off, buf, (size_t)n);
        rec_unlose(r, off, n);
    }
    pthread_mutex_unlock(&r->mu);
    pc_release();
    pc_counted(PC_WRITE);
    return rc;
}

static int pc_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct pc_rec *r = REC(f);
    if (!r)
        return REAL(f)->pMethods->xTruncate(REAL(f), size);
    pc_hold();
    pthread_mutex_lock(&r->mu);
    rec_save(r, size, r->synced_size - size, pc_real_read, REAL(f));
    int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);
    if (rc == SQLITE_OK)
        rec_unlose(r, size, -1);
    pthread_mutex_unlock(&r->mu);
    pc_release();
    return rc;
}

/* Does this sync fail (DEBUG SYNC-FAIL, SPOOL_SYNC_FAIL_AT)? */
static bool pc_sync_fails(struct pc_rec *r)
{
    long n = atomic_fetch_add(&pc_syncs_begun, 1) + 1;
    int left = atomic_load(&r->fail_syncs);
    while (left > 0 && !atomic_compare_exchange_weak(&r->fail_syncs, &left, left - 1))
        ;
    if (left > 0 || n == pc_sync_fail_at) {
        log_warn("sync fault seam: the sync of %s fails with EIO (the writes since its last sync are lost)",
                 r->path);
        return true;
    }
    return false;
}

/* The sync fails with EIO: what it was to make durable is lost. */
static int pc_sync_fail(sqlite3_file *f, struct pc_rec *r)
{
    pc_hold();
    pthread_mutex_lock(&r->mu);
    sqlite3_int64 size = 0;
    if (REAL(f)->pMethods->xFileSize(REAL(f), &size) == SQLITE_OK)
        rec_sync_failed(r, size);
    pthread_mutex_unlock(&r->mu);
    pc_release();
    pc_counted(PC_SYNC);
    errno = EIO;
    return SQLITE_IOERR_FSYNC;
}

static int pc_sync(sqlite3_file *f, int flags)
{
    struct pc_rec *r = REC(f);
    if (r && pc_sync_fails(r))
        return pc_sync_fail(f, r);
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    if (!r)
        return rc;
    /* The seam is taken only after the sync returned: a cut during an fsync
     * counts it as not done (the power went before it finished), and this
     * thread then blocks here, so SQLite never sees the sync succeed. Only
     * this thread changes r meanwhile (a shard's sync thread syncs while
     * the shard writes nothing), so the cut reads it safely. */
    pc_hold();
    pthread_mutex_lock(&r->mu);
    sqlite3_int64 size = 0;
    if (rc == SQLITE_OK && REAL(f)->pMethods->xFileSize(REAL(f), &size) == SQLITE_OK) {
        rec_synced(r, size);
        pthread_mutex_lock(&pc_mu);
        bool dir = r->dirsync_pending;
        r->dirsync_pending = false;
        pthread_mutex_unlock(&pc_mu);
        if (dir) /* unixSync: the first sync of a created journal/WAL syncs its directory */
            dir_synced(r->path, r->dirlen);
    }
    pthread_mutex_unlock(&r->mu);
    pc_release();
    pc_counted(PC_SYNC);
    return rc;
}

static int pc_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int pc_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int pc_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int pc_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int pc_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int pc_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int pc_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int pc_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}

static int pc_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void pc_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int pc_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int pc_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    /* no memory-mapped pages: every read goes through xRead */
    (void)f;
    (void)off;
    (void)n;
    *pp = NULL;
    return SQLITE_OK;
}

static int pc_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    (void)f;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static sqlite3_io_methods pc_io = {
    3, pc_close, pc_read, pc_write, pc_truncate, pc_sync, pc_file_size, pc_lock, pc_unlock,
    pc_check_lock, pc_file_control, pc_sector_size, pc_device_chars, pc_shm_map, pc_shm_lock,
    pc_shm_barrier, pc_shm_unmap, pc_fetch, pc_unfetch,
};

#define PC_TRACKED_TYPES \
    (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL | SQLITE_OPEN_SUPER_JOURNAL)
#define PC_DIRSYNC_TYPES (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL | SQLITE_OPEN_SUPER_JOURNAL)

static int pc_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    struct pc_file *pf = (struct pc_file *)f;
    pf->real = (sqlite3_file *)(pf + 1);
    pf->rec = NULL;
    bool track = name && (flags & PC_TRACKED_TYPES) && !(flags & SQLITE_OPEN_DELETEONCLOSE);
    if (!track) {
        int rc = real->xOpen(real, name, pf->real, flags, out);
        f->pMethods = pf->real->pMethods ? &pc_io : NULL;
        return rc;
    }
    pc_hold();
    bool existed = access(name, F_OK) == 0;
    bool created = !existed && (flags & SQLITE_OPEN_CREATE);
    struct pc_rec *r = rec_get(name, created, false);
    if (r)
        pthread_mutex_lock(&r->mu);
    int rc = real->xOpen(real, name, pf->real, flags, out);
    f->pMethods = pf->real->pMethods ? &pc_io : NULL;
    if (r) {
        if (rc == SQLITE_OK) {
            sqlite3_int64 size = 0;
            if (created)
                rec_synced(r, 0);
            else if (!r->known && pf->real->pMethods->xFileSize(pf->real, &size) == SQLITE_OK)
                rec_synced(r, size); /* there before this process: counts as durable */
            pthread_mutex_lock(&pc_mu);
            r->deleted = false;
            if ((flags & SQLITE_OPEN_CREATE) && (flags & PC_DIRSYNC_TYPES))
                r->dirsync_pending = true;
            pthread_mutex_unlock(&pc_mu);
            pf->rec = r;
        } else if (created) {
            pthread_mutex_lock(&pc_mu);
            r->deleted = true;
            pthread_mutex_unlock(&pc_mu);
        }
        pthread_mutex_unlock(&r->mu);
    }
    pc_release();
    return rc;
}

static int pc_delete(sqlite3_vfs *vfs, const char *name, int dir_sync)
{
    sqlite3_vfs *real = vfs->pAppData;
    pc_hold();
    struct pc_rec *r = rec_find(name);
    int rc = real->xDelete(real, name, dir_sync);
    if (r && rc == SQLITE_OK) {
        pthread_mutex_lock(&pc_mu);
        r->deleted = true;
        pthread_mutex_unlock(&pc_mu);
        if (dir_sync & 1) /* unixDelete fsyncs the directory after the unlink */
            dir_synced(r->path, r->dirlen);
    }
    pc_release();
    return rc;
}

#define PASS(name, sig, args)                                                 \
    static int pc_##name sig                                                  \
    {                                                                         \
        sqlite3_vfs *real = vfs->pAppData;                                    \
        return real->x##name args;                                            \
    }

PASS(Access, (sqlite3_vfs *vfs, const char *n, int fl, int *out), (real, n, fl, out))
PASS(FullPathname, (sqlite3_vfs *vfs, const char *n, int cap, char *out), (real, n, cap, out))
PASS(Randomness, (sqlite3_vfs *vfs, int n, char *out), (real, n, out))
PASS(Sleep, (sqlite3_vfs *vfs, int us), (real, us))
PASS(CurrentTime, (sqlite3_vfs *vfs, double *out), (real, out))
PASS(GetLastError, (sqlite3_vfs *vfs, int n, char *out), (real, n, out))
PASS(CurrentTimeInt64, (sqlite3_vfs *vfs, sqlite3_int64 *out), (real, out))

static void *pc_dlopen(sqlite3_vfs *vfs, const char *n)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xDlOpen(real, n);
}

static void pc_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    real->xDlError(real, n, out);
}

static void (*pc_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xDlSym(real, h, sym);
}

static void pc_dlclose(sqlite3_vfs *vfs, void *h)
{
    sqlite3_vfs *real = vfs->pAppData;
    real->xDlClose(real, h);
}

/* ----------------------------------------------------------- enabling */

/* SPOOL_SYNC_FAIL_AT=N: 0, or -EINVAL for a bad value. */
static int pc_read_fail_env(void)
{
    const char *at = getenv("SPOOL_SYNC_FAIL_AT");
    if (!at || !*at)
        return 0;
    char *end = NULL;
    long v = strtol(at, &end, 10);
    if (*end || v <= 0) {
        log_error("SPOOL_SYNC_FAIL_AT=%s is not a number N >= 1 (the Nth sync fails); unset it or fix it", at);
        return -EINVAL;
    }
    pc_sync_fail_at = v;
    log_warn("SPOOL_SYNC_FAIL_AT=%ld: sync %ld of this process will fail with EIO", v, v);
    return 0;
}

static int pc_read_env(void)
{
    if (pc_read_fail_env() < 0)
        return -EINVAL;
    const char *at = getenv("SPOOL_POWER_CUT_AT");
    const char *t = getenv("SPOOL_POWER_CUT_TORN");
    pc_trigger_torn = t && strcmp(t, "1") == 0;
    if (!at || !*at)
        return 0;
    static const struct { const char *name; enum pc_op op; } ops[] = {
        { "write:", PC_WRITE }, { "sync:", PC_SYNC }, { "read:", PC_READ },
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t n = strlen(ops[i].name);
        char *end = NULL;
        if (strncmp(at, ops[i].name, n) != 0)
            continue;
        long v = strtol(at + n, &end, 10);
        if (end == at + n || *end || v <= 0)
            break;
        pc_trigger_op = ops[i].op;
        pc_trigger_n = v;
        log_warn("SPOOL_POWER_CUT_AT=%s: the power will be cut after that operation", at);
        return 0;
    }
    log_error("SPOOL_POWER_CUT_AT=%s is not write:N, sync:N or read:N (N >= 1); unset it or fix it", at);
    return -EINVAL;
}

int powercut_enable(void)
{
    if (powercut_enabled())
        return 0;
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real)
        return -ENOENT;
    int rc = pc_read_env();
    if (rc < 0)
        return rc;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&pc_rw, &attr);
    pthread_rwlockattr_destroy(&attr);
    pc_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct pc_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = "spool-powercut",
        .pAppData = real,
        .xOpen = pc_open,
        .xDelete = pc_delete,
        .xAccess = pc_Access,
        .xFullPathname = pc_FullPathname,
        .xDlOpen = pc_dlopen,
        .xDlError = pc_dlerror,
        .xDlSym = pc_dlsym,
        .xDlClose = pc_dlclose,
        .xRandomness = pc_Randomness,
        .xSleep = pc_Sleep,
        .xCurrentTime = pc_CurrentTime,
        .xGetLastError = pc_GetLastError,
        .xCurrentTimeInt64 = pc_CurrentTimeInt64,
    };
    if (sqlite3_vfs_register(&pc_vfs, 1) != SQLITE_OK)
        return -EIO;
    atomic_store(&pc_on, true);
    return 0;
}

/* ------------------------------------------------- fsio's own files */

static int pc_fd_read(void *ctx, void *buf, int n, int64_t off)
{
    int fd = *(int *)ctx;
    ssize_t got = pread(fd, buf, (size_t)n, off);
    if (got < 0)
        return -1;
    if (got < n)
        memset((char *)buf + got, 0, (size_t)(n - got));
    return 0;
}

void powercut_note_open(const char *path, bool created)
{
    if (!powercut_enabled())
        return;
    pc_hold();
    struct pc_rec *r = rec_get(path, created, false);
    if (r) {
        pthread_mutex_lock(&r->mu);
        struct stat st;
        if (created)
            rec_synced(r, 0);
        else if (!r->known && stat(r->path, &st) == 0)
            rec_synced(r, st.st_size);
        pthread_mutex_unlock(&r->mu);
    }
    pc_release();
}

void powercut_note_mkdir(const char *path)
{
    if (!powercut_enabled())
        return;
    pc_hold();
    rec_get(path, true, true);
    pc_release();
}

void powercut_note_write_begin(const char *path, int fd, off_t off, size_t n)
{
    if (!powercut_enabled())
        return;
    pc_hold(); /* released by powercut_note_write_end() */
    struct pc_rec *r = rec_find(path);
    if (r) {
        pthread_mutex_lock(&r->mu);
        rec_save(r, off, (int64_t)n, pc_fd_read, &fd);
        pthread_mutex_unlock(&r->mu);
    }
}

void powercut_note_write_end(const char *path, off_t off, const void *buf, ssize_t done)
{
    if (!powercut_enabled())
        return;
    struct pc_rec *r = rec_find(path);
    if (r && done > 0) {
        pthread_mutex_lock(&r->mu);
        rec_wrote(r, off, buf, (size_t)done);
        pthread_mutex_unlock(&r->mu);
    }
    pc_release();
    pc_counted(PC_WRITE);
}

void powercut_note_sync(const char *path, int fd)
{
    if (!powercut_enabled())
        return;
    pc_hold();
    struct pc_rec *r = rec_find(path);
    struct stat st;
    if (r && fstat(fd, &st) == 0) {
        pthread_mutex_lock(&r->mu);
        rec_synced(r, st.st_size);
        pthread_mutex_unlock(&r->mu);
    }
    pc_release();
    pc_counted(PC_SYNC);
}

void powercut_note_dirsync(const char *dir)
{
    if (!powercut_enabled())
        return;
    char canon[PATH_MAX];
    if (!realpath(dir, canon))
        return;
    pc_hold();
    dir_synced(canon, strlen(canon));
    pc_release();
    pc_counted(PC_SYNC);
}

void powercut_note_rename(const char *from, const char *to)
{
    if (!powercut_enabled())
        return;
    char canon[PATH_MAX];
    size_t dirlen;
    if (pc_canon(to, canon, sizeof canon, &dirlen) < 0)
        return;
    pc_hold();
    struct pc_rec *src = rec_find(from);
    pthread_mutex_lock(&pc_mu);
    /* the old record of the target name is gone: its file was replaced */
    for (struct pc_rec *r = pc_recs; r; r = r->next)
        if (r != src && strcmp(r->path, canon) == 0)
            r->deleted = true;
    if (src) {
        char *p = strdup(canon);
        if (p) {
            free(src->path);
            src->path = p;
            src->dirlen = dirlen;
        }
        src->entry_durable = false; /* the new name needs a directory sync */
    }
    pthread_mutex_unlock(&pc_mu);
    pc_release();
}

/* ------------------------------------------------------- sync faults */

int powercut_fail_syncs(const char *path, int n)
{
    if (!powercut_enabled())
        return -ENOTSUP;
    struct pc_rec *r = rec_find(path);
    if (!r)
        return -ENOENT;
    atomic_store(&r->fail_syncs, n);
    return 0;
}
