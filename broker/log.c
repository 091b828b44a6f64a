/*
 * log.c - see log.h. The file descriptor and level are set at start-up and
 * on SIGHUP (reopen swaps the descriptor atomically with dup2, so writers in
 * other threads never see a closed descriptor).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static _Atomic int log_min = LOG_INFO;
static char *log_path;
static _Thread_local char thread_name[16] = "main";

static const char *level_names[] = { "debug", "info", "warn", "error" };

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int log_open(const char *path, enum log_level level)
{
    atomic_store(&log_min, level);
    if (path == NULL || strcmp(path, "-") == 0 || path[0] == '\0')
        return 0;
    int fd = open_path(path);
    if (fd < 0)
        return -errno;
    free(log_path);
    log_path = strdup(path);
    log_fd = fd;
    return 0;
}

int log_reopen(void)
{
    if (log_path == NULL)
        return 0;
    int fd = open_path(log_path);
    if (fd < 0)
        return -errno;
    dup2(fd, log_fd);
    close(fd);
    return 0;
}

void log_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
    free(log_path);
    log_path = NULL;
}

void log_set_thread_name(const char *name)
{
    snprintf(thread_name, sizeof thread_name, "%s", name);
    pthread_setname_np(pthread_self(), thread_name); /* for top -H, perf, gdb */
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&log_min);
}

void log_write(enum log_level level, const char *file, int line, const char *func,
               const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], thread_name);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 128)
        n = (int)sizeof buf - 128;
    if (level >= LOG_WARN || atomic_load(&log_min) == LOG_DEBUG)
        n += snprintf(buf + n, sizeof buf - (size_t)n, " (%s:%d %s)", base, line, func);
    buf[n++] = '\n';
    ssize_t w = write(log_fd, buf, (size_t)n);
    (void)w;
}
