/*
 * datadir.c - the data directory's MANIFEST and the shards' commit marks
 * (see datadir.h).
 */
#include "datadir.h"

#include "fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK_LINE 96 /* fixed width: a rewrite never leaves a longer tail */

int datadir_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int datadir_shard_path(char *out, size_t cap, const char *dir, int k, const char *suffix)
{
    int n = snprintf(out, cap, "%s/shard-%d%s", dir, k, suffix);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void datadir_new_id(char id[DATADIR_ID_LEN + 1])
{
    unsigned char r[DATADIR_ID_LEN / 2];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, r, sizeof r) : -1;
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < sizeof r; i++) {
        unsigned v = n == (ssize_t)sizeof r ? r[i] : (unsigned)rand();
        snprintf(id + 2 * i, 3, "%02x", v & 0xff);
    }
}

static bool valid_id(const char *id)
{
    if (strlen(id) != DATADIR_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Reads a small file whole into buf (NUL-terminated). */
static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------ manifest */

int datadir_manifest_read(const char *dir, struct manifest *m)
{
    char path[4096], buf[16384];
    int rc = datadir_path(path, sizeof path, dir, "MANIFEST");
    if (rc == 0)
        rc = read_small(path, buf, sizeof buf);
    if (rc < 0)
        return rc;
    memset(m, 0, sizeof *m);
    char state[16] = "";
    int off = 0;
    if (sscanf(buf, "spool-manifest 1\nid %32s\nshards %d\nstate %15s\n%n", m->id, &m->shards, state, &off) != 3 ||
        off == 0 || !valid_id(m->id) || m->shards < 1 || m->shards > 4096)
        return -EILSEQ;
    if (!strcmp(state, "ready"))
        m->ready = true;
    else if (strcmp(state, "creating") != 0)
        return -EILSEQ;
    /* Every shard is listed, in order, with its file name. */
    const char *p = buf + off;
    for (int k = 0; k < m->shards; k++) {
        int idx, used = 0;
        char name[64];
        if (sscanf(p, "shard %d %63s\n%n", &idx, name, &used) != 2 || used == 0 || idx != k)
            return -EILSEQ;
        char want[64];
        snprintf(want, sizeof want, "shard-%d.db", k);
        if (strcmp(name, want) != 0)
            return -EILSEQ;
        p += used;
    }
    return 0;
}

int datadir_manifest_write(const char *dir, const struct manifest *m)
{
    char path[4096];
    int rc = datadir_path(path, sizeof path, dir, "MANIFEST");
    if (rc < 0)
        return rc;
    size_t cap = 128 + (size_t)m->shards * 40, len;
    char *text = malloc(cap);
    if (!text)
        return -ENOMEM;
    len = (size_t)snprintf(text, cap, "spool-manifest 1\nid %s\nshards %d\nstate %s\n", m->id, m->shards,
                           m->ready ? "ready" : "creating");
    for (int k = 0; k < m->shards; k++)
        len += (size_t)snprintf(text + len, cap - len, "shard %d shard-%d.db\n", k, k);
    rc = fsio_write_atomic(path, text, len);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- marks */

int datadir_mark_read(const char *dir, int k, struct mark *mk)
{
    char path[4096], buf[256];
    int rc = datadir_shard_path(path, sizeof path, dir, k, ".mark");
    if (rc == 0)
        rc = read_small(path, buf, sizeof buf);
    if (rc < 0)
        return rc;
    memset(mk, 0, sizeof *mk);
    if (sscanf(buf, "spool-mark 1 %32s %d %" SCNd64 " %" SCNd64, mk->id, &mk->shard, &mk->commits, &mk->jobs) != 4 ||
        !valid_id(mk->id) || mk->commits < 0 || mk->jobs < 0)
        return -EILSEQ;
    return 0;
}

int datadir_mark_open(const char *dir, int k, int *fd)
{
    char path[4096];
    int rc = datadir_shard_path(path, sizeof path, dir, k, ".mark");
    return rc < 0 ? rc : fsio_create(path, 0644, fd);
}

int datadir_mark_write(int fd, const struct mark *mk)
{
    char line[MARK_LINE + 1];
    int n = snprintf(line, sizeof line, "spool-mark 1 %s %d %" PRId64 " %" PRId64, mk->id, mk->shard, mk->commits,
                     mk->jobs);
    if (n < 0 || n >= MARK_LINE)
        return -EINVAL;
    memset(line + n, ' ', (size_t)(MARK_LINE - 1 - n));
    line[MARK_LINE - 1] = '\n';
    ssize_t w = pwrite(fd, line, MARK_LINE, 0);
    if (w < 0)
        return -errno;
    return w == MARK_LINE ? 0 : -EIO;
}
