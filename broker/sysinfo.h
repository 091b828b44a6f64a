/*
 * sysinfo.h - figures about this process that the operating system keeps
 * (resident memory), for INFO and /metrics.
 *
 * Ground layer: calls nothing of the broker; safe from any thread.
 */
#ifndef SPOOL_SYSINFO_H
#define SPOOL_SYSINFO_H

/* Resident memory of this process, in bytes (0 when unknown). */
long sysinfo_rss_bytes(void);

/* Bytes an unprivileged writer may still use on the file system holding
 * path (statvfs f_bavail * f_frsize); -1 when unknown. */
long long sysinfo_disk_free(const char *path);

#endif
