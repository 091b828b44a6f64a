/*
 * syncvfs.c - the counting VFS (see syncvfs.h).
 *
 * A file opened through it is the default VFS's file followed by a pointer
 * to it: every io method calls the real one; xSync also counts, and a WAL
 * frame's header and page go out in one write (below). Called from
 * the shard threads (each with its own connections) and from tests.
 */
#include "syncvfs.h"

#include <sqlite3.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#define SYNCVFS_NAME "spool-sync-count"

struct sfile {
    sqlite3_file base;  /* methods: sfile_methods */
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    bool wal;           /* a WAL file: its frame headers are held (below) */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *real_vfs;
static _Atomic uint64_t syncs;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered;

#define REAL(f) (((struct sfile *)(f))->real)

/* A WAL frame is a 24-byte header and a page, which SQLite writes with two
 * calls at consecutive offsets: two pwrite()s per page. The header is held
 * back instead (per thread: a file is written by the one thread that owns
 * its connection, while a shard's sync thread only syncs it) and written
 * with its page in one pwrite(). Anything else done to the file by the
 * thread holding a header writes the header first, so SQLite never sees
 * the difference; a header is held only between SQLite's two calls. */
#define FRAME_HDR 24
#define PAGE_MAX 65536
static __thread struct sfile *held_f;
static __thread sqlite3_int64 held_off;
static __thread unsigned char held_buf[FRAME_HDR + PAGE_MAX];

/* Writes the header this thread holds for f, if any. */
static int put_held(sqlite3_file *f)
{
    if (held_f != (struct sfile *)f)
        return SQLITE_OK;
    held_f = NULL;
    return REAL(f)->pMethods->xWrite(REAL(f), held_buf, FRAME_HDR, held_off);
}

#define PUT_HELD(f)                    \
    do {                               \
        int put_rc_ = put_held(f);     \
        if (put_rc_ != SQLITE_OK)      \
            return put_rc_;            \
    } while (0)

static int s_close(sqlite3_file *f)
{
    int held_rc = put_held(f);
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return held_rc != SQLITE_OK ? held_rc : rc;
}
static int s_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    PUT_HELD(f);
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int s_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (held_f && held_f != (struct sfile *)f)
        PUT_HELD((sqlite3_file *)held_f);
    if (held_f) {
        if (o == held_off + FRAME_HDR && n > 0 && n <= PAGE_MAX) { /* the page of the held header */
            held_f = NULL;
            memcpy(held_buf + FRAME_HDR, b, (size_t)n);
            return REAL(f)->pMethods->xWrite(REAL(f), held_buf, FRAME_HDR + n, held_off);
        }
        PUT_HELD(f);
    }
    if (((struct sfile *)f)->wal && n == FRAME_HDR) {
        held_f = (struct sfile *)f;
        held_off = o;
        memcpy(held_buf, b, FRAME_HDR);
        return SQLITE_OK;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int s_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    PUT_HELD(f);
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int s_sync(sqlite3_file *f, int flags)
{
    PUT_HELD(f); /* only the holding thread sees its header */
    atomic_fetch_add_explicit(&syncs, 1, memory_order_relaxed);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int s_size(sqlite3_file *f, sqlite3_int64 *n)
{
    PUT_HELD(f);
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int s_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int s_unlock(sqlite3_file *f, int l)
{
    PUT_HELD(f);
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int s_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int s_fcntl(sqlite3_file *f, int op, void *a)
{
    PUT_HELD(f);
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int s_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int s_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int s_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int s_shmlock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void s_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int s_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int s_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) { return REAL(f)->pMethods->xFetch(REAL(f), o, n, p); }
static int s_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) { return REAL(f)->pMethods->xUnfetch(REAL(f), o, p); }

static const sqlite3_io_methods sfile_methods = {
    3, s_close, s_read, s_write, s_truncate, s_sync, s_size, s_lock, s_unlock, s_reserved,
    s_fcntl, s_sector, s_devchar, s_shmmap, s_shmlock, s_shmbarrier, s_shmunmap, s_fetch, s_unfetch,
};

/* The real file's methods may be an older version than 3: the wrapper
 * then offers only what the real one has. */
static int s_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    struct sfile *sf = (struct sfile *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    sf->base.pMethods = sf->real->pMethods && sf->real->pMethods->iVersion >= 3 ? &sfile_methods : NULL;
    if (rc == SQLITE_OK && !sf->base.pMethods) {
        if (sf->real->pMethods)
            sf->real->pMethods->xClose(sf->real);
        rc = SQLITE_CANTOPEN;
    }
    return rc;
}

static int s_delete(sqlite3_vfs *v, const char *n, int d) { (void)v; return real_vfs->xDelete(real_vfs, n, d); }
static int s_access(sqlite3_vfs *v, const char *n, int fl, int *r) { (void)v; return real_vfs->xAccess(real_vfs, n, fl, r); }
static int s_full(sqlite3_vfs *v, const char *n, int sz, char *o) { (void)v; return real_vfs->xFullPathname(real_vfs, n, sz, o); }
static void *s_dlopen(sqlite3_vfs *v, const char *n) { (void)v; return real_vfs->xDlOpen(real_vfs, n); }
static void s_dlerror(sqlite3_vfs *v, int n, char *m) { (void)v; real_vfs->xDlError(real_vfs, n, m); }
static void (*s_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { (void)v; return real_vfs->xDlSym(real_vfs, h, s); }
static void s_dlclose(sqlite3_vfs *v, void *h) { (void)v; real_vfs->xDlClose(real_vfs, h); }
static int s_random(sqlite3_vfs *v, int n, char *o) { (void)v; return real_vfs->xRandomness(real_vfs, n, o); }
static int s_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int s_time(sqlite3_vfs *v, double *t) { (void)v; return real_vfs->xCurrentTime(real_vfs, t); }
static int s_lasterr(sqlite3_vfs *v, int n, char *m) { (void)v; return real_vfs->xGetLastError(real_vfs, n, m); }
static int s_time64(sqlite3_vfs *v, sqlite3_int64 *t) { (void)v; return real_vfs->xCurrentTimeInt64(real_vfs, t); }

static void syncvfs_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs || real_vfs->iVersion < 2)
        return;
    vfs.iVersion = 2;
    vfs.szOsFile = (int)sizeof(struct sfile) + real_vfs->szOsFile;
    vfs.mxPathname = real_vfs->mxPathname;
    vfs.zName = SYNCVFS_NAME;
    vfs.xOpen = s_open;
    vfs.xDelete = s_delete;
    vfs.xAccess = s_access;
    vfs.xFullPathname = s_full;
    vfs.xDlOpen = s_dlopen;
    vfs.xDlError = s_dlerror;
    vfs.xDlSym = s_dlsym;
    vfs.xDlClose = s_dlclose;
    vfs.xRandomness = s_random;
    vfs.xSleep = s_sleep;
    vfs.xCurrentTime = s_time;
    vfs.xGetLastError = s_lasterr;
    vfs.xCurrentTimeInt64 = s_time64;
    registered = sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
}

const char *syncvfs_name(void)
{
    pthread_once(&once, syncvfs_register);
    return registered ? SYNCVFS_NAME : NULL;
}

uint64_t syncvfs_syncs(void)
{
    return atomic_load_explicit(&syncs, memory_order_relaxed);
}
