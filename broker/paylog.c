/*
 * paylog.c - a shard's payload log (see paylog.h): segment files, records
 * with CRC32C, live counts, and deletion of dead segments once durable.
 *
 * Core layer: no thread of its own; the shard thread calls everything but
 * paylog_sync_pending(). Every write, sync, creation and directory sync is
 * reported to the power-cut seam (powercut.h), so DEBUG POWER-CUT drops what
 * was not synced here as it does in the journal.
 *
 * Invariants: segs[] is sorted by number, the last is the active one; only
 * the active segment is appended to; a segment's fd and path stay valid
 * until it is deleted, and deletion happens only in paylog_durable(), which
 * the shard calls when no sync is in flight.
 */
#include "paylog.h"

#include "fsio.h"
#include "log.h"
#include "powercut.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define REC_MAGIC 0x52505053u /* "SPPR" little-endian */
#define SPARE_FAILED (-2)
static const char file_magic[8] = { 'S', 'P', 'L', 'P', 'A', 'Y', 'v', '1' };

struct pseg {
    uint32_t no;
    int fd;
    char *path;
    uint64_t size;   /* bytes written (the active one: where the next record goes) */
    int64_t live;    /* rows pointing into it */
    uint64_t live_bytes; /* their records' bytes (header + body) */
    bool dead;       /* count 0 as of a commit: deleted at the next durable point */
};

/* A live record copied by compaction, waiting for its row to be repointed. */
struct pmove {
    uint64_t id;
    struct paylog_ref from, to;
};

struct paylog {
    char *dir;
    int shard;
    uint64_t seg_max;
    struct pseg *segs;
    size_t n, cap;
    bool dirty;          /* appended since the last paylog_take_sync/paylog_sync */
    bool pinned;
    bool started;        /* the active segment is this run's (paylog_start) */
    /* the newest two segments at open (0: none) and where their valid
     * records end: only they can hold bytes that were never synced */
    uint32_t torn_seg[2];
    uint64_t torn_at[2];
    /* generations: appends so far; as of the last take; known synced */
    uint64_t gen, taken_gen, synced_gen;
    /* rotation off the shard thread: the closed segment whose last sync
     * rides on the next sync request (0: none), and the next segment made
     * ready by a sync (spare_fd >= 0, number spare_no) */
    uint32_t closing;
    bool closing_taken;
    bool spare_asked;    /* a take asked for a spare; cleared when a rotation takes it */
    _Atomic int spare_fd; /* -1: none (yet), SPARE_FAILED, or the spare's fd */
    uint32_t spare_no;
    /* compaction: the segment being emptied (0: none), the next record to
     * look at, the copies made and the generation they need synced */
    uint32_t c_seg;
    uint64_t c_off, c_moved, c_bytes;
    struct pmove *mv;
    size_t nmv, capmv;
    uint64_t mv_gen;
    uint64_t compactions, moved_bytes;
    int compact_pct;     /* paylog_set_compact */
    char err[600];
};

/* ---------------------------------------------------------------- format */

static uint32_t crc_table[256];

static void crc_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_soft(uint32_t crc, const unsigned char *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init_table);
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t paylog_crc32c(uint32_t crc, const void *p, size_t n)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(crc, p, n);
#endif
    return ~crc_soft(crc, p, n);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void paylog_rec_header(unsigned char h[PAYLOG_REC_HEADER], uint64_t id, uint32_t len, uint32_t crc)
{
    put32(h, REC_MAGIC);
    put32(h + 4, len);
    put32(h + 8, (uint32_t)id);
    put32(h + 12, (uint32_t)(id >> 32));
    put32(h + 16, crc);
    put32(h + 20, paylog_crc32c(0, h, 20));
}

int paylog_rec_parse(const unsigned char h[PAYLOG_REC_HEADER], uint64_t *id, uint32_t *len, uint32_t *crc)
{
    if (get32(h) != REC_MAGIC || get32(h + 20) != paylog_crc32c(0, h, 20))
        return -EILSEQ;
    *len = get32(h + 4);
    *id = (uint64_t)get32(h + 8) | (uint64_t)get32(h + 12) << 32;
    *crc = get32(h + 16);
    return 0;
}

/* ------------------------------------------------------------ file I/O */

/* a then b (bn may be 0) at off in one pwritev (a short write goes on with
 * the rest), reported to the power-cut seam as one write. */
static int pl_write2(const char *path, int fd, uint64_t off, const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an + bn, done = 0;
    ssize_t w = 0;
    powercut_note_write_begin(path, fd, (off_t)off, n);
    while (done < n) {
        struct iovec iov[2];
        int k = 0;
        size_t bo = done > an ? done - an : 0;
        if (done < an)
            iov[k++] = (struct iovec){ (char *)a + done, an - done };
        if (bn > bo)
            iov[k++] = (struct iovec){ (char *)b + bo, bn - bo };
        w = pwritev(fd, iov, k, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    int e = w < 0 ? errno : ENOSPC;
    char *joined = bn && powercut_enabled() ? malloc(n) : NULL; /* the seam keeps the bytes of the last write */
    if (joined) {
        memcpy(joined, a, an);
        memcpy(joined + an, b, bn);
    }
    powercut_note_write_end(path, (off_t)off, joined ? joined : a, done == n ? (ssize_t)n : -1);
    free(joined);
    return done == n ? 0 : -e;
}

static int pl_write(const char *path, int fd, uint64_t off, const void *p, size_t n)
{
    return pl_write2(path, fd, off, p, n, NULL, 0);
}

static int pl_read(int fd, uint64_t off, void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)p + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ENODATA;
        done += (size_t)r;
    }
    return 0;
}

static int sync_fd(int fd, const char *path)
{
    if (fd < 0)
        return 0;
    if (fdatasync(fd) < 0)
        return -errno;
    powercut_note_sync(path, fd);
    return 0;
}

int paylog_sync_pending(const struct paylog_pending *p)
{
    int rc = sync_fd(p->fd2, p->path2); /* the closed segment first: then only the newest two can be torn */
    if (rc == 0)
        rc = sync_fd(p->fd, p->path);
    return rc;
}

static int pl_fail(struct paylog *pl, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pl_fail(struct paylog *pl, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pl->err, sizeof pl->err, fmt, ap);
    va_end(ap);
    return err;
}

const char *paylog_error(const struct paylog *pl)
{
    return pl->err;
}

/* ------------------------------------------------------------- segments */

static struct pseg *seg_find(struct paylog *pl, uint32_t no)
{
    size_t lo = 0, hi = pl->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (pl->segs[mid].no == no)
            return &pl->segs[mid];
        if (pl->segs[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct pseg *seg_add(struct paylog *pl, uint32_t no, int fd, const char *path, uint64_t size)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 8;
        struct pseg *v = realloc(pl->segs, cap * sizeof *v);
        if (!v)
            return NULL;
        pl->segs = v;
        pl->cap = cap;
    }
    char *p = strdup(path);
    if (!p)
        return NULL;
    size_t i = pl->n;
    while (i > 0 && pl->segs[i - 1].no > no) { /* keep the order */
        pl->segs[i] = pl->segs[i - 1];
        i--;
    }
    pl->segs[i] = (struct pseg){ .no = no, .fd = fd, .path = p, .size = size };
    pl->n++;
    return &pl->segs[i];
}

static struct pseg *active(struct paylog *pl)
{
    return pl->n ? &pl->segs[pl->n - 1] : NULL;
}

static void seg_path(const struct paylog *pl, uint32_t no, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/shard-%d.payload.%" PRIu32, pl->dir, pl->shard, no);
}

/* Creates the file of segment no with its header, synced with its
 * directory entry (any thread: it touches nothing of pl's but the
 * constants); *fd or the negative errno, the file removed on failure. */
static int seg_file_create(const struct paylog *pl, uint32_t no, int *fd)
{
    char path[4200];
    unsigned char h[PAYLOG_FILE_HEADER];
    seg_path(pl, no, path, sizeof path);
    powercut_note_open(path, true);
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return -errno;
    memcpy(h, file_magic, 8);
    put32(h + 8, (uint32_t)pl->shard);
    put32(h + 12, no);
    int rc = pl_write(path, *fd, 0, h, sizeof h);
    if (rc == 0)
        rc = sync_fd(*fd, path);
    if (rc == 0)
        rc = fsio_sync_dir(path, 0);
    if (rc < 0) {
        close(*fd);
        unlink(path);
        *fd = -1;
    }
    return rc;
}

/* Creates segment no and makes it the active one. */
static int seg_create(struct paylog *pl, uint32_t no)
{
    char path[4200];
    int fd;
    seg_path(pl, no, path, sizeof path);
    int rc = seg_file_create(pl, no, &fd);
    if (rc < 0)
        return pl_fail(pl, rc, "cannot create %s: %s (check the --data-dir's space and permissions)", path,
                       strerror(-rc));
    if (!seg_add(pl, no, fd, path, PAYLOG_FILE_HEADER)) {
        close(fd);
        return pl_fail(pl, -ENOMEM, "cannot start %s: out of memory", path);
    }
    return 0;
}

void paylog_make_spare(const struct paylog_pending *p)
{
    int fd;
    if (!p->spare)
        return;
    int rc = seg_file_create(p->spare, p->spare_no, &fd);
    if (rc < 0)
        log_warn("cannot create %s/shard-%d.payload.%" PRIu32 " ahead of use: %s (check the --data-dir's space; "
                 "the rotation makes it then)", p->spare->dir, p->spare->shard, p->spare_no, strerror(-rc));
    atomic_store_explicit(&p->spare->spare_fd, rc < 0 ? SPARE_FAILED : fd, memory_order_release);
}

/* Ends the active segment and starts the next one. With a spare ready,
 * only a switch: the old one's last sync rides on the next sync request
 * (paylog_take_sync), which also makes the next spare. Without one, all of
 * it here: the old one synced (only the newest two can be torn), the new
 * one created. */
static int rotate(struct paylog *pl)
{
    struct pseg *a = active(pl);
    uint32_t next = a->no + 1;
    int fd = atomic_exchange_explicit(&pl->spare_fd, -1, memory_order_acquire);
    pl->spare_asked = false; /* the one asked for is here (or failed): the next take asks again */
    if (fd >= 0 && pl->spare_no == next) { /* made after the closed one, if any, was synced */
        char path[4200];
        seg_path(pl, next, path, sizeof path);
        if (!seg_add(pl, next, fd, path, PAYLOG_FILE_HEADER)) {
            close(fd);
            return pl_fail(pl, -ENOMEM, "cannot start %s: out of memory", path);
        }
        pl->closing = next - 1;
        pl->closing_taken = false;
        return 0;
    }
    if (fd >= 0) { /* not the next one (never so by construction): an empty file, no row points into it */
        char path[4200];
        seg_path(pl, pl->spare_no, path, sizeof path);
        close(fd);
        unlink(path);
    }
    struct pseg *c = pl->closing ? seg_find(pl, pl->closing) : NULL;
    int rc = c ? sync_fd(c->fd, c->path) : 0;
    if (rc == 0)
        rc = sync_fd(a->fd, a->path);
    if (rc < 0)
        return pl_fail(pl, rc, "fdatasync of %s failed (%s)", a->path, strerror(-rc));
    pl->closing = 0;
    return seg_create(pl, next);
}

/* ----------------------------------------------------------------- open */

/* Where the valid records of seg end: the first record whose header or
 * body does not check (a torn tail), or the file's end. */
static uint64_t scan_end(struct pseg *sg)
{
    uint64_t off = PAYLOG_FILE_HEADER;
    unsigned char h[PAYLOG_REC_HEADER];
    char *buf = NULL;
    size_t cap = 0;
    while (off + PAYLOG_REC_HEADER <= sg->size && pl_read(sg->fd, off, h, sizeof h) == 0) {
        uint64_t id;
        uint32_t len, crc;
        if (paylog_rec_parse(h, &id, &len, &crc) < 0 || off + PAYLOG_REC_HEADER + len > sg->size)
            break;
        if (len > cap) {
            char *nb = realloc(buf, len);
            if (!nb)
                break;
            buf = nb;
            cap = len;
        }
        if (pl_read(sg->fd, off + PAYLOG_REC_HEADER, buf, len) < 0 || paylog_crc32c(0, buf, len) != crc)
            break;
        off += PAYLOG_REC_HEADER + len;
    }
    free(buf);
    return off;
}

/* Whether seg's file header names this shard and segment. */
static bool header_ok(const struct paylog *pl, const struct pseg *sg)
{
    unsigned char h[PAYLOG_FILE_HEADER];
    return sg->size >= PAYLOG_FILE_HEADER && pl_read(sg->fd, 0, h, sizeof h) == 0 &&
           memcmp(h, file_magic, 8) == 0 && get32(h + 8) == (uint32_t)pl->shard && get32(h + 12) == sg->no;
}

/* The segment number in a file name of this shard's log, or 0. */
static uint32_t seg_number(const struct paylog *pl, const char *name)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "shard-%d.payload.", pl->shard);
    if (strncmp(name, prefix, (size_t)n) != 0 || !name[n])
        return 0;
    char *end;
    unsigned long v = strtoul(name + n, &end, 10);
    return *end || name[n] == '0' || v == 0 || v > UINT32_MAX - 1 ? 0 : (uint32_t)v;
}

static int open_existing(struct paylog *pl, uint32_t no)
{
    char path[4200];
    seg_path(pl, no, path, sizeof path);
    powercut_note_open(path, false);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (fd < 0 || end < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return pl_fail(pl, -e, "cannot open %s: %s (check the permissions of the --data-dir)", path, strerror(e));
    }
    if (!seg_add(pl, no, fd, path, (uint64_t)end)) {
        close(fd);
        return -ENOMEM;
    }
    return 0;
}

static int open_all(struct paylog *pl)
{
    DIR *d = opendir(pl->dir);
    if (!d)
        return pl_fail(pl, -errno, "cannot read the directory %s: %s", pl->dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)))
        if (seg_number(pl, e->d_name))
            rc = open_existing(pl, seg_number(pl, e->d_name));
    closedir(d);
    return rc;
}

int paylog_open(struct paylog **out, const char *dir, int shard, uint64_t seg_max)
{
    *out = NULL;
    struct paylog *pl = calloc(1, sizeof *pl);
    if (!pl || !(pl->dir = strdup(dir))) {
        free(pl);
        return -ENOMEM;
    }
    pl->shard = shard;
    pl->seg_max = seg_max < 4096 ? 4096 : seg_max;
    atomic_init(&pl->spare_fd, -1);
    pl->compact_pct = PAYLOG_COMPACT_PCT;
    int rc = open_all(pl);
    for (size_t k = 0; rc == 0 && k < 2 && k < pl->n; k++) { /* the newest two: the only ones not surely synced */
        struct pseg *sg = &pl->segs[pl->n - 1 - k];
        pl->torn_seg[k] = sg->no;
        pl->torn_at[k] = header_ok(pl, sg) ? scan_end(sg) : 0;
        if (pl->torn_at[k] < sg->size)
            log_warn("%s: its records end at byte %" PRIu64 " of %" PRIu64 " (a write the power cut short); "
                     "jobs pointing past it were never acknowledged", sg->path, pl->torn_at[k], sg->size);
    }
    *out = pl;
    return rc;
}

int paylog_start(struct paylog *pl)
{
    if (pl->started)
        return 0;
    struct pseg *last = active(pl);
    int rc = seg_create(pl, last ? last->no + 1 : 1);
    pl->started = rc == 0;
    return rc;
}

void paylog_close(struct paylog *pl)
{
    if (!pl)
        return;
    pl->spare_asked = true; /* no spare made now: nothing appends any more */
    if ((pl->dirty || pl->closing) && paylog_sync(pl) < 0)
        log_error("%s", pl->err);
    int spare = atomic_load(&pl->spare_fd);
    if (spare >= 0)
        close(spare); /* an empty segment: the next start deletes it */
    free(pl->mv);
    for (size_t i = 0; i < pl->n; i++) {
        close(pl->segs[i].fd);
        free(pl->segs[i].path);
    }
    free(pl->segs);
    free(pl->dir);
    free(pl);
}

/* --------------------------------------------------------- append, read */

int paylog_append(struct paylog *pl, uint64_t id, const void *body, uint32_t len, struct paylog_ref *ref)
{
    int rc = paylog_start(pl);
    if (rc < 0)
        return rc;
    struct pseg *a = active(pl);
    /* full: rotate, unless the spare is still being made by the sync
     * thread (then the segment grows past the size until it is there) */
    if (a->size > PAYLOG_FILE_HEADER && a->size + PAYLOG_REC_HEADER + len > pl->seg_max &&
        (!pl->spare_asked || atomic_load_explicit(&pl->spare_fd, memory_order_acquire) != -1)) {
        if ((rc = rotate(pl)) < 0)
            return rc;
        a = active(pl);
    }
    unsigned char h[PAYLOG_REC_HEADER];
    uint32_t crc = paylog_crc32c(0, body, len);
    paylog_rec_header(h, id, len, crc);
    rc = pl_write2(a->path, a->fd, a->size, h, sizeof h, body, len); /* one pwritev per record */
    if (rc < 0)
        return pl_fail(pl, rc, "cannot append to %s: %s (free space in the --data-dir)", a->path, strerror(-rc));
    *ref = (struct paylog_ref){ .seg = a->no, .off = a->size, .len = len, .crc = crc };
    a->size += PAYLOG_REC_HEADER + len;
    a->live++;
    a->live_bytes += PAYLOG_REC_HEADER + len;
    pl->dirty = true;
    pl->gen++;
    return 0;
}

/* The header of ref's record, checked against the row. */
static int check_header(struct paylog *pl, struct pseg *sg, const struct paylog_ref *ref, uint64_t id)
{
    unsigned char h[PAYLOG_REC_HEADER];
    uint64_t hid;
    uint32_t len, crc;
    int rc = ref->off + PAYLOG_REC_HEADER + ref->len > sg->size ? -ENODATA : pl_read(sg->fd, ref->off, h, sizeof h);
    if (rc == 0 && (paylog_rec_parse(h, &hid, &len, &crc) < 0 || hid != id || len != ref->len || crc != ref->crc))
        rc = -EILSEQ;
    if (rc < 0)
        return pl_fail(pl, rc == -EIO ? -EIO : -EILSEQ, "%s is damaged: job %016" PRIx64 " points at offset %"
                       PRIu64 " (%" PRIu32 " bytes), where no matching record is (%s); restore the data directory "
                       "from a backup", sg->path, id, ref->off, ref->len, rc == -EILSEQ ? "bad header" : strerror(-rc));
    return 0;
}

int paylog_check(struct paylog *pl, const struct paylog_ref *ref, uint64_t id)
{
    struct pseg *sg = seg_find(pl, ref->seg);
    bool torn = false;
    for (int k = 0; k < 2; k++)
        torn |= ref->seg == pl->torn_seg[k] && ref->off + PAYLOG_REC_HEADER + ref->len > pl->torn_at[k];
    if (torn)
        return pl_fail(pl, -ENODATA, "the payload of job %016" PRIx64 " was not in shard-%d.payload.%" PRIu32
                       " at offset %" PRIu64 " (torn or never written)", id, pl->shard, ref->seg, ref->off);
    if (!sg)
        return pl_fail(pl, -EILSEQ, "job %016" PRIx64 " points into %s/shard-%d.payload.%" PRIu32 ", which is "
                       "missing: restore the data directory from a backup", id, pl->dir, pl->shard, ref->seg);
    return check_header(pl, sg, ref, id);
}

int paylog_read(struct paylog *pl, const struct paylog_ref *ref, uint64_t id, char **out)
{
    *out = NULL;
    struct pseg *sg = seg_find(pl, ref->seg);
    if (!sg)
        return pl_fail(pl, -EILSEQ, "job %016" PRIx64 " points into %s/shard-%d.payload.%" PRIu32 ", which is "
                       "missing: restore the data directory from a backup", id, pl->dir, pl->shard, ref->seg);
    int rc = check_header(pl, sg, ref, id);
    if (rc < 0)
        return rc;
    char *buf = malloc((size_t)ref->len + 1);
    if (!buf)
        return -ENOMEM;
    rc = pl_read(sg->fd, ref->off + PAYLOG_REC_HEADER, buf, ref->len);
    if (rc == 0 && paylog_crc32c(0, buf, ref->len) != ref->crc)
        rc = -EILSEQ;
    if (rc < 0) {
        free(buf);
        return pl_fail(pl, rc == -EIO ? -EIO : -EILSEQ, "%s is damaged: the payload of job %016" PRIx64 " at offset %"
                       PRIu64 " does not match its checksum (%s); restore the data directory from a backup",
                       sg->path, id, ref->off, rc == -EILSEQ ? "CRC32C differs" : strerror(-rc));
    }
    buf[ref->len] = '\0';
    *out = buf;
    return 0;
}

/* ---------------------------------------------------------- live counts */

void paylog_counts_reset(struct paylog *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        pl->segs[i].live = 0;
        pl->segs[i].live_bytes = 0;
        pl->segs[i].dead = false;
    }
    pl->nmv = 0; /* copies not repointed are orphans now; compaction starts over */
    pl->c_seg = 0;
}

void paylog_ref_count(struct paylog *pl, uint32_t seg, uint32_t len)
{
    struct pseg *sg = seg_find(pl, seg);
    if (sg) {
        sg->live++;
        sg->live_bytes += PAYLOG_REC_HEADER + (uint64_t)len;
    }
}

void paylog_unref(struct paylog *pl, uint32_t seg, uint32_t len)
{
    struct pseg *sg = seg_find(pl, seg);
    if (sg && sg->live > 0) {
        sg->live--;
        uint64_t b = PAYLOG_REC_HEADER + (uint64_t)len;
        sg->live_bytes = sg->live_bytes > b ? sg->live_bytes - b : 0;
    }
}

/* ----------------------------------------------------------- durability */

bool paylog_take_sync(struct paylog *pl, struct paylog_pending *p)
{
    struct pseg *a = active(pl);
    *p = (struct paylog_pending){ .fd = -1, .fd2 = -1 };
    struct pseg *c = pl->closing ? seg_find(pl, pl->closing) : NULL;
    if (!a || !pl->started || (!pl->dirty && (!c || pl->closing_taken)))
        return false;
    pl->dirty = false;
    pl->taken_gen = pl->gen;
    p->fd = a->fd;
    p->path = a->path;
    if (c) { /* its last sync */
        p->fd2 = c->fd;
        p->path2 = c->path;
        pl->closing_taken = true;
    }
    if (!pl->spare_asked) {
        pl->spare_asked = true; /* made after the syncs (paylog_make_spare), by whoever ran them */
        pl->spare_no = a->no + 1;
        p->spare = pl;
        p->spare_no = pl->spare_no;
    }
    return true;
}

/* The syncs taken so far are done. */
static void synced(struct paylog *pl)
{
    pl->synced_gen = pl->taken_gen;
    if (pl->closing_taken)
        pl->closing = 0;
    pl->closing_taken = false;
}

int paylog_sync(struct paylog *pl)
{
    struct paylog_pending p;
    if (!paylog_take_sync(pl, &p))
        return 0;
    int rc = paylog_sync_pending(&p);
    if (rc == 0)
        paylog_make_spare(&p);
    if (rc < 0) {
        pl->dirty = true;
        return pl_fail(pl, rc, "fdatasync of %s failed (%s)", p.fd2 >= 0 ? p.path2 : p.path, strerror(-rc));
    }
    synced(pl);
    return 0;
}

void paylog_committed(struct paylog *pl)
{
    for (size_t i = 0; i + 1 < pl->n; i++)
        if (pl->segs[i].live == 0)
            pl->segs[i].dead = true;
}

void paylog_durable(struct paylog *pl)
{
    synced(pl);
    if (pl->pinned)
        return;
    size_t k = 0;
    for (size_t i = 0; i < pl->n; i++) {
        struct pseg *sg = &pl->segs[i];
        if (sg->dead && sg->live == 0 && i + 1 < pl->n) {
            if (unlink(sg->path) < 0 && errno != ENOENT)
                log_warn("cannot delete %s, which holds no live payload: %s", sg->path, strerror(errno));
            else
                log_info("deleted %s: no job points into it any more, %" PRIu64 " bytes freed", sg->path, sg->size);
            if (sg->no == pl->c_seg)
                pl->c_seg = 0;
            if (sg->no == pl->closing)
                pl->closing = 0;
            close(sg->fd);
            free(sg->path);
            continue;
        }
        pl->segs[k++] = *sg;
    }
    pl->n = k;
}

void paylog_pin(struct paylog *pl, bool on)
{
    pl->pinned = on;
}

void paylog_stats(const struct paylog *pl, struct paylog_stat *st)
{
    *st = (struct paylog_stat){ .segments = pl->n, .compactions = pl->compactions, .moved_bytes = pl->moved_bytes };
    if (atomic_load_explicit(&((struct paylog *)pl)->spare_fd, memory_order_acquire) >= 0) {
        st->segments++; /* the spare: its header */
        st->disk_bytes += PAYLOG_FILE_HEADER;
    }
    for (size_t i = 0; i < pl->n; i++) {
        st->disk_bytes += pl->segs[i].size;
        st->live_bytes += pl->segs[i].live_bytes;
    }
}

/* ----------------------------------------------------------- compaction */

/* The closed segment with the smallest share of live bytes, if below
 * PAYLOG_COMPACT_PCT of its size (one with none goes by itself). */
static struct pseg *compact_pick(struct paylog *pl)
{
    struct pseg *best = NULL;
    for (size_t i = 0; i + 1 < pl->n; i++) {
        struct pseg *sg = &pl->segs[i];
        if (sg->dead || sg->live == 0 || sg->no == pl->closing ||
            sg->live_bytes * 100 >= sg->size * (uint64_t)pl->compact_pct)
            continue;
        if (!best || sg->live_bytes * best->size < best->live_bytes * sg->size)
            best = sg;
    }
    return best;
}

void paylog_set_compact(struct paylog *pl, int pct)
{
    pl->compact_pct = pct < 0 ? 0 : pct;
}

bool paylog_compact_wanted(struct paylog *pl)
{
    return !pl->pinned && (pl->nmv || pl->c_seg || compact_pick(pl));
}

bool paylog_compact_waiting(const struct paylog *pl)
{
    return pl->nmv && pl->synced_gen < pl->mv_gen;
}

/* The segment being compacted was read to its end: the last copies are
 * repointed, its count falls to 0 at their commit. */
static void compact_done(struct paylog *pl, const struct pseg *sg)
{
    pl->compactions++;
    log_info("compacted %s: %" PRIu64 " live payloads (%" PRIu64 " bytes) copied to shard-%d.payload.%" PRIu32
             "; its %" PRIu64 " bytes go once that commit is on disk", sg->path, pl->c_moved, pl->c_bytes,
             pl->shard, active(pl)->no, sg->size);
    pl->c_seg = 0;
}

int paylog_compact_next(struct paylog *pl, uint64_t *id, struct paylog_ref *ref)
{
    if (pl->pinned)
        return 0;
    if (!pl->c_seg) {
        struct pseg *sg = compact_pick(pl);
        if (!sg)
            return 0;
        pl->c_seg = sg->no;
        pl->c_off = PAYLOG_FILE_HEADER;
        pl->c_moved = pl->c_bytes = 0;
        log_info("compacting %s: %" PRIu64 " live bytes (%" PRId64 " payloads) of %" PRIu64 " on disk", sg->path,
                 sg->live_bytes, sg->live, sg->size);
    }
    struct pseg *sg = seg_find(pl, pl->c_seg);
    unsigned char h[PAYLOG_REC_HEADER];
    uint32_t len, crc;
    if (!sg)
        return (int)(pl->c_seg = 0);
    if (pl->c_off + PAYLOG_REC_HEADER > sg->size || pl_read(sg->fd, pl->c_off, h, sizeof h) < 0 ||
        paylog_rec_parse(h, id, &len, &crc) < 0 || pl->c_off + PAYLOG_REC_HEADER + len > sg->size) {
        compact_done(pl, sg); /* the end, or a torn tail no row points past */
        return 0;
    }
    *ref = (struct paylog_ref){ .seg = sg->no, .off = pl->c_off, .len = len, .crc = crc };
    pl->c_off += PAYLOG_REC_HEADER + len;
    return 1;
}

int paylog_compact_copy(struct paylog *pl, uint64_t id, const struct paylog_ref *from)
{
    if (pl->nmv == pl->capmv) {
        size_t cap = pl->capmv ? pl->capmv * 2 : 16;
        struct pmove *v = realloc(pl->mv, cap * sizeof *v);
        if (!v)
            return pl_fail(pl, -ENOMEM, "compaction of shard %d's payload file: out of memory", pl->shard);
        pl->mv = v;
        pl->capmv = cap;
    }
    char *body;
    struct paylog_ref to;
    int rc = paylog_read(pl, from, id, &body);
    if (rc < 0)
        return rc;
    rc = paylog_append(pl, id, body, from->len, &to);
    free(body);
    if (rc < 0)
        return rc;
    pl->mv[pl->nmv++] = (struct pmove){ id, *from, to };
    pl->mv_gen = pl->gen;
    pl->c_moved++;
    pl->c_bytes += PAYLOG_REC_HEADER + (uint64_t)from->len;
    return 0;
}

size_t paylog_compact_ready(struct paylog *pl, size_t i, uint64_t *id, struct paylog_ref *from,
                            struct paylog_ref *to)
{
    if (!pl->nmv || pl->synced_gen < pl->mv_gen || pl->pinned || i >= pl->nmv)
        return 0;
    *id = pl->mv[i].id;
    *from = pl->mv[i].from;
    *to = pl->mv[i].to;
    return pl->nmv - i;
}

void paylog_compact_moved(struct paylog *pl, const struct paylog_ref *from, const struct paylog_ref *to,
                          bool repointed)
{
    if (repointed) {
        paylog_unref(pl, from->seg, from->len);
        pl->moved_bytes += PAYLOG_REC_HEADER + (uint64_t)from->len;
    } else {
        paylog_unref(pl, to->seg, to->len); /* the job went meanwhile: the copy is an orphan */
    }
}

void paylog_compact_clear(struct paylog *pl)
{
    pl->nmv = 0;
}

/* --------------------------------------------------------------- backup */

struct bk_file {
    int fd;            /* a dup of the segment's fd: valid even if it is deleted meanwhile */
    uint64_t size;     /* bytes to copy: the segment as the backup's journal saw it */
    char *name;        /* shard-<k>.payload.<n> */
};

struct paylog_backup {
    struct paylog *pl;
    char *dir;
    struct bk_file *f;
    size_t n, i;       /* copying f[i] */
    uint64_t off;
    int out;           /* f[i]'s copy (.tmp), or -1 */
    char tmp[4300];
    char buf[1 << 16]; /* one per backup: shards copy at once, each on its thread */
};

int paylog_backup_start(struct paylog *pl, const char *dir, struct paylog_backup **out)
{
    struct paylog_backup *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b || !(b->dir = strdup(dir)) || !(b->f = calloc(pl->n + 1, sizeof *b->f))) {
        if (b)
            free(b->dir);
        free(b);
        return -ENOMEM;
    }
    b->pl = pl;
    b->out = -1;
    for (size_t i = 0; i < pl->n; i++) {
        const char *slash = strrchr(pl->segs[i].path, '/');
        b->f[i].fd = dup(pl->segs[i].fd);
        b->f[i].size = pl->segs[i].size;
        b->f[i].name = strdup(slash ? slash + 1 : pl->segs[i].path);
        b->n++;
        if (b->f[i].fd < 0 || !b->f[i].name) {
            paylog_backup_end(b);
            return pl_fail(pl, -ENOMEM, "cannot back up the payload file of shard %d: out of memory or fds",
                           pl->shard);
        }
    }
    *out = b;
    return 0;
}

/* f[i]'s copy is complete: synced, renamed into place. */
static int bk_finish_file(struct paylog_backup *b)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", b->dir, b->f[b->i].name);
    int rc = fsync(b->out) < 0 ? -errno : 0;
    close(b->out);
    b->out = -1;
    if (rc == 0 && rename(b->tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        return pl_fail(b->pl, rc, "cannot write %s: %s", path, strerror(-rc));
    b->i++;
    b->off = 0;
    return 0;
}

int paylog_backup_step(struct paylog_backup *b, size_t bytes)
{
    char *buf = b->buf;
    if (b->i == b->n)
        return b->n ? fsio_sync_dir(b->tmp, 0) : 0;
    struct bk_file *f = &b->f[b->i];
    if (b->out < 0) {
        snprintf(b->tmp, sizeof b->tmp, "%s/%s.tmp", b->dir, f->name);
        b->out = open(b->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (b->out < 0)
            return pl_fail(b->pl, -errno, "cannot create %s: %s", b->tmp, strerror(errno));
    }
    for (size_t done = 0; done < bytes && b->off < f->size;) {
        size_t n = f->size - b->off < sizeof b->buf ? (size_t)(f->size - b->off) : sizeof b->buf;
        int rc = pl_read(f->fd, b->off, buf, n);
        errno = 0;
        if (rc == 0 && write(b->out, buf, n) != (ssize_t)n)
            rc = errno ? -errno : -ENOSPC;
        if (rc < 0)
            return pl_fail(b->pl, rc, "cannot copy %s into %s: %s", f->name, b->dir, strerror(-rc));
        b->off += n;
        done += n;
    }
    if (b->off == f->size) {
        int rc = bk_finish_file(b);
        if (rc < 0)
            return rc;
    }
    return 1;
}

void paylog_backup_end(struct paylog_backup *b)
{
    if (!b)
        return;
    if (b->out >= 0) {
        close(b->out);
        unlink(b->tmp);
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->f[i].fd >= 0)
            close(b->f[i].fd);
        free(b->f[i].name);
    }
    free(b->f);
    free(b->dir);
    free(b);
}
