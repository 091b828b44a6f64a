/*
 * sysinfo.c - process figures read from /proc (see sysinfo.h).
 */
#include "sysinfo.h"

#include <sys/statvfs.h>

#include <stdio.h>
#include <unistd.h>

long sysinfo_rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

long long sysinfo_disk_free(const char *path)
{
    struct statvfs v;
    if (statvfs(path, &v) < 0)
        return -1;
    return (long long)v.f_bavail * (long long)v.f_frsize;
}
