/*
 * test_cron.c - cron parsing and next ticks (broker/cron.c): a table of
 * known expressions with their next tick, parse errors, @every, the
 * system zoneinfo (offsets in summer and winter, the POSIX rule after the
 * last transition) and DST days in Europe/Berlin and America/New_York.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"

/* "2026-03-01T10:07:00" (UTC) -> Unix ms */
static int64_t at(const char *iso)
{
    struct tm tm = { 0 };
    cr_assert(strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm), "bad date %s", iso);
    return (int64_t)timegm(&tm) * 1000;
}

static const char *iso(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        return "never";
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    return buf;
}

static struct cron_tz *zone(const char *name)
{
    struct cron_tz *z = NULL;
    char err[256];
    int rc = cron_tz_load(name, &z, err, sizeof err);
    cr_assert_eq(rc, 0, "zone %s: %s", name, err);
    return z;
}

static void expect_next(const char *spec, const char *tz, const char *after, const char *want)
{
    struct cron_spec c;
    char err[256], a[32], b[32];
    cr_assert_eq(cron_parse(spec, &c, err, sizeof err), 0, "'%s': %s", spec, err);
    struct cron_tz *z = zone(tz);
    int64_t got = cron_next(&c, z, at(after));
    int64_t exp = want ? at(want) : -1;
    cr_assert_eq(got, exp, "'%s' (%s) after %s: got %s, expected %s", spec, tz, after, iso(got, a, sizeof a),
                 want ? iso(exp, b, sizeof b) : "never");
    cron_tz_free(z);
}

Test(cron, known_expressions)
{
    static const struct { const char *spec, *after, *want; } t[] = {
        { "*/15 * * * *", "2026-03-01T10:07:00", "2026-03-01T10:15:00" },
        { "*/15 * * * *", "2026-03-01T10:15:00", "2026-03-01T10:30:00" },
        { "0 9 * * 1-5", "2026-12-04T10:00:00", "2026-12-07T09:00:00" }, /* Friday -> Monday */
        { "*/2 * * * * *", "2026-03-01T10:00:01", "2026-03-01T10:00:02" },
        { "*/2 * * * * *", "2026-03-01T10:00:02", "2026-03-01T10:00:04" },
        { "30 * * * * *", "2026-03-01T10:00:30", "2026-03-01T10:01:30" },
        { "@hourly", "2026-03-01T10:00:00", "2026-03-01T11:00:00" },
        { "@daily", "2026-12-31T23:59:59", "2027-01-01T00:00:00" },
        { "@midnight", "2026-06-10T00:00:00", "2026-06-11T00:00:00" },
        { "@weekly", "2026-12-01T00:00:00", "2026-12-06T00:00:00" },     /* Tuesday -> Sunday */
        { "@monthly", "2026-01-31T00:00:00", "2026-02-01T00:00:00" },
        { "@yearly", "2026-06-01T00:00:00", "2027-01-01T00:00:00" },
        { "0 0 29 2 *", "2026-01-01T00:00:00", "2028-02-29T00:00:00" },   /* next leap day */
        { "0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00" },   /* April has 30 */
        { "0 0 1,15 * 1", "2026-12-01T00:00:00", "2026-12-07T00:00:00" }, /* day 1/15 or a Monday */
        { "0 0 * * 0", "2026-12-05T12:00:00", "2026-12-06T00:00:00" },
        { "0 0 * * 7", "2026-12-05T12:00:00", "2026-12-06T00:00:00" },    /* 7 is Sunday too */
        { "0 12 * * SUN", "2026-12-05T12:00:00", "2026-12-06T12:00:00" },
        { "30 4 1 jan,Jul *", "2026-02-01T00:00:00", "2026-07-01T04:30:00" },
        { "5-10/2 * * * *", "2026-03-01T10:00:00", "2026-03-01T10:05:00" },
        { "5-10/2 * * * *", "2026-03-01T10:05:00", "2026-03-01T10:07:00" },
        { "5-10/2 * * * *", "2026-03-01T10:09:00", "2026-03-01T11:05:00" },
        { "50/5 * * * *", "2026-03-01T10:51:00", "2026-03-01T10:55:00" },
        { "0 0 ? * MON-FRI", "2026-12-05T00:00:00", "2026-12-07T00:00:00" },
        { "59 23 31 12 *", "2026-12-31T23:59:00", "2027-12-31T23:59:00" },
        { "0 0 30 2 *", "2026-01-01T00:00:00", NULL },                  /* never */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        expect_next(t[i].spec, "UTC", t[i].after, t[i].want);
}

Test(cron, parse_errors_name_the_problem)
{
    static const struct { const char *spec, *part; } t[] = {
        { "* * * *", "has 4" },
        { "* * * * * * *", "5 fields" },
        { "60 * * * *", "minute field '60' is out of range" },
        { "* 24 * * *", "hour field" },
        { "* * 0 * *", "day of month field" },
        { "* * * 13 *", "month field" },
        { "* * * * 8", "day of week field" },
        { "*/0 * * * *", "not valid" },
        { "5-1 * * * *", "out of range" },
        { "a * * * *", "minute field 'a' is not valid" },
        { "1,,2 * * * *", "not valid" },
        { "* * * FOO *", "month field" },
        { "@fortnightly", "unknown schedule" },
        { "@every 0s", "at least 1s" },
        { "@every 500ms", "at least 1s" },
        { "@every soon", "duration" },
        { "", "has 0" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct cron_spec c;
        char err[256] = "";
        cr_assert_eq(cron_parse(t[i].spec, &c, err, sizeof err), -EINVAL, "'%s' was accepted", t[i].spec);
        cr_assert(strstr(err, t[i].part), "'%s': error '%s' lacks '%s'", t[i].spec, err, t[i].part);
    }
}

Test(cron, every_is_a_fixed_interval)
{
    struct cron_spec c;
    char err[128];
    int64_t ms;
    cr_assert_eq(cron_parse("@every 1s", &c, err, sizeof err), 0);
    cr_assert_eq(c.every_ms, 1000);
    cr_assert_eq(cron_next(&c, NULL, 1234567), 1235567);
    cr_assert_eq(cron_parse("@every 1h30m", &c, err, sizeof err), 0);
    cr_assert_eq(c.every_ms, 5400000);
    cr_assert_eq(cron_parse("  @every   15m  ", &c, err, sizeof err), 0);
    cr_assert_eq(c.every_ms, 900000);
    cr_assert(cron_duration("2d", &ms) && ms == 172800000);
    cr_assert(cron_duration("1500ms", &ms) && ms == 1500);
    cr_assert(!cron_duration("1x", &ms) && !cron_duration("", &ms) && !cron_duration("m", &ms));
}

Test(cron, zone_offsets_from_the_system_zoneinfo)
{
    struct cron_tz *ber = zone("Europe/Berlin"), *ny = zone("America/New_York"), *utc = zone("UTC");
    cr_assert_eq(cron_tz_offset(ber, at("2026-01-15T12:00:00") / 1000), 3600);
    cr_assert_eq(cron_tz_offset(ber, at("2026-07-15T12:00:00") / 1000), 7200);
    cr_assert_eq(cron_tz_offset(ny, at("2026-07-15T12:00:00") / 1000), -14400);
    cr_assert_eq(cron_tz_offset(ny, at("2026-12-15T12:00:00") / 1000), -18000);
    cr_assert_eq(cron_tz_offset(utc, at("2026-07-15T12:00:00") / 1000), 0);
    /* the exact instants of the 2026 changes */
    cr_assert_eq(cron_tz_offset(ber, at("2026-03-29T00:59:59") / 1000), 3600);
    cr_assert_eq(cron_tz_offset(ber, at("2026-03-29T01:00:00") / 1000), 7200);
    cr_assert_eq(cron_tz_offset(ber, at("2026-10-25T00:59:59") / 1000), 7200);
    cr_assert_eq(cron_tz_offset(ber, at("2026-10-25T01:00:00") / 1000), 3600);
    /* past the last transition of the file: the footer's rule */
    cr_assert_eq(cron_tz_offset(ber, at("2045-07-01T12:00:00") / 1000), 7200);
    cr_assert_eq(cron_tz_offset(ber, at("2045-12-01T12:00:00") / 1000), 3600);
    cr_assert_eq(cron_tz_offset(ny, at("2045-07-01T12:00:00") / 1000), -14400);
    cron_tz_free(ber);
    cron_tz_free(ny);
    cron_tz_free(utc);
}

Test(cron, bad_zone_names)
{
    struct cron_tz *z;
    char err[256];
    cr_assert_eq(cron_tz_load("../../etc/passwd", &z, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "not a time zone name"), "%s", err);
    cr_assert_eq(cron_tz_load("Mars/Olympus_Mons", &z, err, sizeof err), -ENOENT);
    cr_assert(strstr(err, "unknown time zone 'Mars/Olympus_Mons'"), "%s", err);
    cr_assert_eq(cron_tz_load("Europe", &z, err, sizeof err) < 0, true, "a directory is not a zone");
}

Test(cron, spring_forward_runs_a_skipped_time_once)
{
    /* Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC). */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-03-28T01:30:00", "2026-03-29T01:30:00"); /* 03:30 CEST */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-03-29T01:30:00", "2026-03-30T00:30:00"); /* 02:30 CEST */
    expect_next("0 9 * * *", "Europe/Berlin", "2026-03-28T08:00:00", "2026-03-29T07:00:00");
    /* New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC);
     * ticks of the skipped hour merge into the first one after it. */
    expect_next("*/30 * * * *", "America/New_York", "2026-03-08T06:30:00", "2026-03-08T07:00:00");
    expect_next("*/30 * * * *", "America/New_York", "2026-03-08T07:00:00", "2026-03-08T07:30:00");
    expect_next("30 2 * * *", "America/New_York", "2026-03-07T07:30:00", "2026-03-08T07:30:00"); /* 03:30 EDT */
}

Test(cron, fall_back_runs_a_repeated_time_once)
{
    /* Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC). */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-10-24T00:30:00", "2026-10-25T00:30:00"); /* first 02:30 */
    expect_next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00", "2026-10-26T01:30:00"); /* next day, CET */
    /* New York, 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00 UTC). */
    expect_next("30 1 * * *", "America/New_York", "2026-10-31T05:30:00", "2026-11-01T05:30:00");
    expect_next("30 1 * * *", "America/New_York", "2026-11-01T05:30:00", "2026-11-02T06:30:00");
    expect_next("0 * * * *", "America/New_York", "2026-11-01T05:00:00", "2026-11-01T07:00:00");
}

Test(cron, zones_move_cron_ticks)
{
    expect_next("0 9 * * *", "America/New_York", "2026-07-01T00:00:00", "2026-07-01T13:00:00");
    expect_next("0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00", "2026-07-01T03:30:00");
    expect_next("0 0 * * *", "Pacific/Auckland", "2026-07-01T00:00:00", "2026-07-01T12:00:00");
}

/* Regression: running over the last day of December looked up the length
 * of month 13 before moving to January (an out-of-bounds read that ASan
 * reports). */
Test(cron, month_overflow_at_the_end_of_the_year)
{
    expect_next("0 0 1 1 *", "UTC", "2026-12-31T12:00:00", "2027-01-01T00:00:00");
    expect_next("0 12 * * *", "UTC", "2026-12-31T12:00:00", "2027-01-01T12:00:00");
    expect_next("0 0 30 2 *", "UTC", "2026-12-31T00:00:00", NULL);
}
