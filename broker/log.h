/*
 * log.h - levelled logging for spoold.
 *
 * Any thread may log. Each record is formatted into one buffer and written
 * with a single write(2), so lines from different threads never interleave.
 * Records carry time, level, thread name, and file:line function.
 * log_reopen() (SIGHUP) reopens the log file for logrotate.
 */
#ifndef SPOOL_LOG_H
#define SPOOL_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* path NULL or "-" means stderr. Returns 0 or -errno. */
int log_open(const char *path, enum log_level level);
int log_reopen(void);
void log_close(void);
int log_level_parse(const char *s, enum log_level *out);
void log_set_thread_name(const char *name);
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *file, int line, const char *func,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Always-on invariant check: logs the failed expression and aborts. */
#define ASSERT(cond) do { if (!(cond)) { \
    log_write(LOG_ERROR, __FILE__, __LINE__, __func__, "assertion failed: %s", #cond); \
    abort(); } } while (0)

#endif
