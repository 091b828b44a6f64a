/*
 * fsio.c - durable creation and replacement of spoold's own files (see
 * fsio.h). Every step is also reported to the power-cut seam.
 */
#include "fsio.h"

#include "powercut.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsio_sync_dir(const char *path, int dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    const char *d = dir ? buf : dirname(buf);
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    if (rc == 0)
        powercut_note_dirsync(d);
    return rc;
}

int fsio_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0)
        return errno == EEXIST ? 0 : -errno;
    powercut_note_mkdir(path);
    return fsio_sync_dir(path, 0);
}

static int sync_fd(const char *path, int fd)
{
    if (fsync(fd) < 0)
        return -errno;
    powercut_note_sync(path, fd);
    return 0;
}

int fsio_create(const char *path, mode_t mode, int *out)
{
    *out = -1;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        powercut_note_open(path, false);
        *out = fd;
        return 0;
    }
    if (errno != ENOENT)
        return -errno;
    powercut_note_open(path, true);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int rc = sync_fd(path, fd);
    if (rc == 0)
        rc = fsio_sync_dir(path, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static int write_all(const char *path, int fd, const void *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        powercut_note_write_begin(path, fd, (off_t)off, len - off);
        ssize_t w = pwrite(fd, (const char *)data + off, len - off, (off_t)off);
        int err = errno;
        powercut_note_write_end(path, (off_t)off, (const char *)data + off, w);
        if (w < 0 && err == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -err : -EIO;
        off += (size_t)w;
    }
    return 0;
}

int fsio_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    powercut_note_open(tmp, true);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(tmp, fd, data, len);
    if (rc == 0)
        rc = sync_fd(tmp, fd);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    powercut_note_rename(tmp, path);
    return fsio_sync_dir(path, 0);
}
