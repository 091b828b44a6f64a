/*
 * cron.h - schedule specs and their next tick: cron expressions (5 fields,
 * or 6 with a leading seconds field), @hourly/@daily/@weekly/@monthly/
 * @yearly, and @every <duration>; time zones read from the system zoneinfo
 * (TZif files under $TZDIR or /usr/share/zoneinfo). Pure: no threads, no
 * clock, no libc time-zone state (TZ and localtime are never touched, so
 * any thread may call these at once).
 *
 * Fields: second 0-59, minute 0-59, hour 0-23, day of month 1-31, month
 * 1-12 (or JAN-DEC), day of week 0-7 (0 and 7 are Sunday, or SUN-SAT).
 * Each field is a comma list of `*`, `n`, `a-b`, with an optional `/step`
 * (`*` and `?` mean any). As in Vixie cron, when both day of month and day
 * of week are restricted (neither starts with `*`), a day matching either
 * one matches.
 *
 * Ticks are wall-clock times in the schedule's zone. cron_next(after)
 * finds the first tick strictly after `after`:
 *   - a local time that does not exist (the hour skipped when clocks spring
 *     forward) is taken with the offset before the change, so a 02:30 daily
 *     tick runs once that day, at 03:30 new time; ticks inside the gap that
 *     would land at or before an earlier one are merged into it;
 *   - a local time that exists twice (the hour repeated when clocks fall
 *     back) runs once, at its first occurrence; expressions that tick
 *     during the repeated hour do not tick again in its second pass.
 * @every ticks are a fixed interval in absolute time (no zone, no DST):
 * the next tick is the previous one plus the interval.
 */
#ifndef SPOOL_CRON_H
#define SPOOL_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cron_spec {
    uint64_t sec, min;       /* bit n: second / minute n */
    uint32_t hour, dom;      /* bit n: hour n (0-23), day of month n (1-31) */
    uint16_t mon;            /* bit n: month n (1-12) */
    uint8_t dow;             /* bit n: weekday n (0 = Sunday) */
    bool dom_any, dow_any;   /* the field started with '*' or '?' */
    int64_t every_ms;        /* > 0 for @every: the interval */
};

/* Parses spec; on error returns -EINVAL and writes a sentence naming the
 * problem into err. */
int cron_parse(const char *spec, struct cron_spec *out, char *err, size_t cap);

/* A time zone: UTC offsets over time. */
struct cron_tz;
/* Loads zone `name` ("UTC", "Europe/Berlin", ...) from the zoneinfo
 * directory; -ENOENT (unknown zone) or -EINVAL (bad name or file) with a
 * sentence in err. */
int cron_tz_load(const char *name, struct cron_tz **out, char *err, size_t cap);
void cron_tz_free(struct cron_tz *z);
/* Seconds east of UTC in force at Unix second t. NULL zone = UTC. */
int32_t cron_tz_offset(const struct cron_tz *z, int64_t t);

/* The first tick strictly after after_ms (Unix ms), or -1 when the spec
 * never ticks within 8 years (e.g. "0 0 30 2 *"). */
int64_t cron_next(const struct cron_spec *c, const struct cron_tz *z, int64_t after_ms);

/* Parses a duration such as "1s", "15m", "1h30m", "2d", "500ms" into ms;
 * false when it is not one. */
bool cron_duration(const char *s, int64_t *ms);

#endif
