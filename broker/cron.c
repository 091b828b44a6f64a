/*
 * cron.c - cron specs, zoneinfo and next-tick computation (see cron.h).
 *
 * The search runs on "local seconds" (the wall-clock time of the zone
 * written as if it were UTC) with civil-date arithmetic of our own, so no
 * libc time-zone state is involved; zone offsets come from the TZif file's
 * transition table (version 2+ 64-bit data; Debian ships "fat" files with
 * transitions up to 2037). After the last transition the last offset
 * stays in force, unless the file's POSIX footer gives a yearly rule of
 * the common "Mm.w.d" form, which is then applied.
 */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ calendar */

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && leap(y) ? 29 : dm[m - 1];
}

static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

/* -------------------------------------------------------------- parsing */

static const char *const month_names[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC" };
static const char *const day_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT" };

struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is lo + i */
    int nnames;
};

static const struct field fields[] = {
    { "second", 0, 59, NULL, 0 },
    { "minute", 0, 59, NULL, 0 },
    { "hour", 0, 23, NULL, 0 },
    { "day of month", 1, 31, NULL, 0 },
    { "month", 1, 12, month_names, 12 },
    { "day of week", 0, 7, day_names, 7 },
};

/* A number or a name at *p; advances *p. */
static bool parse_value(const char **p, const struct field *f, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = (int)v;
        *p = s;
        return true;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->lo + i;
            *p = s + 3;
            return true;
        }
    }
    return false;
}

/* One field (text [b, e)) into a bit set. */
static int parse_field(const char *b, const char *e, const struct field *f, uint64_t *bits, bool *any,
                       char *err, size_t cap)
{
    char text[128];
    size_t n = (size_t)(e - b);
    if (n >= sizeof text)
        n = sizeof text - 1;
    memcpy(text, b, n);
    text[n] = '\0';
    *bits = 0;
    *any = text[0] == '*' || text[0] == '?';
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        if (*p == '*' || *p == '?') {
            lo = f->lo;
            hi = f->hi;
            p++;
        } else {
            if (!parse_value(&p, f, &lo))
                goto bad;
            hi = lo;
            if (*p == '-') {
                p++;
                if (!parse_value(&p, f, &hi))
                    goto bad;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                goto bad;
            step = 0;
            while (isdigit((unsigned char)*p) && step < 1000)
                step = step * 10 + (*p++ - '0');
            if (step == 0)
                goto bad;
            if (hi == lo && text[0] != '*')
                hi = f->hi; /* "a/n": from a to the end, every n */
        }
        if (lo < f->lo || hi > f->hi || lo > hi) {
            snprintf(err, cap, "the %s field '%s' is out of range (%d-%d)", f->name, text, f->lo, f->hi);
            return -EINVAL;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            goto bad;
    }
    return 0;
bad:
    snprintf(err, cap, "the %s field '%s' is not valid (use *, n, a-b, */n, a-b/n, lists with commas%s)", f->name,
             text, f->names ? ", or names" : "");
    return -EINVAL;
}

bool cron_duration(const char *s, int64_t *ms)
{
    int64_t total = 0;
    if (!*s)
        return false;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return false;
        int64_t v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > 1000000000LL)
                return false;
        }
        int64_t unit;
        if (strncmp(s, "ms", 2) == 0)
            unit = 1, s += 2;
        else if (*s == 's')
            unit = 1000, s++;
        else if (*s == 'm')
            unit = 60000, s++;
        else if (*s == 'h')
            unit = 3600000, s++;
        else if (*s == 'd')
            unit = 86400000, s++;
        else
            return false;
        total += v * unit;
        if (total > 86400000LL * 3660)
            return false;
    }
    *ms = total;
    return true;
}

static const struct {
    const char *name, *expr;
} macros[] = {
    { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

/* "@every <duration>" (spec at '@every'): at least a second. */
static int parse_every(const char *spec, struct cron_spec *out, char *err, size_t cap)
{
    const char *d = spec + 6;
    while (isspace((unsigned char)*d))
        d++;
    char dur[64];
    snprintf(dur, sizeof dur, "%s", d);
    for (char *t = dur + strlen(dur); t > dur && isspace((unsigned char)t[-1]);)
        *--t = '\0';
    if (!cron_duration(dur, &out->every_ms) || out->every_ms < 1000) {
        snprintf(err, cap, "@every needs a duration of at least 1s such as 1s, 15m, 1h30m or 2d, not '%.40s'", d);
        return -EINVAL;
    }
    return 0;
}

/* "@hourly" and the others: the cron expression they stand for. */
static int parse_macro(const char *spec, struct cron_spec *out, char *err, size_t cap)
{
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (strcasecmp(spec, macros[i].name) == 0)
            return cron_parse(macros[i].expr, out, err, cap);
    snprintf(err, cap, "unknown schedule '%.40s' (use @hourly, @daily, @weekly, @monthly, @yearly, @every 15m, "
             "or a cron expression)", spec);
    return -EINVAL;
}

/* Splits spec at white space into at most 7 fields [b[i], e[i]); returns
 * how many (7: too many). */
static int split_fields(const char *spec, const char *b[7], const char *e[7])
{
    int n = 0;
    const char *p = spec;
    while (*p && n < 7) {
        b[n] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        e[n++] = p;
        while (isspace((unsigned char)*p))
            p++;
    }
    return n;
}

/* A cron expression of 5 fields (second 0) or 6 (seconds first). */
static int parse_expr(const char *spec, struct cron_spec *out, char *err, size_t cap)
{
    const char *b[7], *e[7];
    int n = split_fields(spec, b, e);
    if (n != 5 && n != 6) {
        snprintf(err, cap, "a cron expression has 5 fields (minute hour day-of-month month day-of-week) "
                 "or 6 with seconds first; '%.60s' has %d", spec, n);
        return -EINVAL;
    }
    int first = n == 5 ? 1 : 0; /* fields[] index of the first given field */
    uint64_t bits[6];
    bool any[6] = { false };
    bits[0] = 1; /* 5 fields: second 0 */
    for (int i = 0; i < n; i++) {
        int rc = parse_field(b[i], e[i], &fields[first + i], &bits[first + i], &any[first + i], err, cap);
        if (rc < 0)
            return rc;
    }
    out->sec = bits[0];
    out->min = bits[1];
    out->hour = (uint32_t)bits[2];
    out->dom = (uint32_t)bits[3];
    out->mon = (uint16_t)bits[4];
    out->dow = (uint8_t)((bits[5] | (bits[5] >> 7)) & 0x7f); /* 7 is Sunday too */
    out->dom_any = any[3];
    out->dow_any = any[5];
    return 0;
}

int cron_parse(const char *spec, struct cron_spec *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    while (isspace((unsigned char)*spec))
        spec++;
    if (strncasecmp(spec, "@every", 6) == 0 && (spec[6] == ' ' || spec[6] == '\t'))
        return parse_every(spec, out, err, cap);
    if (spec[0] == '@')
        return parse_macro(spec, out, err, cap);
    return parse_expr(spec, out, err, cap);
}

/* --------------------------------------------------------------- zones */

struct cron_tz {
    int64_t *at;        /* transition times, ascending */
    uint8_t *idx;       /* type in force from at[i] */
    int32_t *off;       /* per type */
    uint8_t *isdst;
    size_t n, ntypes;
    int32_t before;     /* offset before the first transition */
    /* POSIX footer rule, applied after the last transition */
    bool rule;
    int32_t std_off, dst_off;   /* seconds east of UTC */
    int rm[2], rw[2], rd[2];    /* Mm.w.d of DST start [0] and end [1] */
    int32_t rt[2];              /* local time of the change, seconds */
};

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

/* "[+-]hh[:mm[:ss]]" -> seconds; POSIX offsets are west-positive. */
static const char *posix_time(const char *p, int32_t *out)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p))
        return NULL;
    int32_t v[3] = { 0, 0, 0 };
    for (int i = 0; i < 3; i++) {
        while (isdigit((unsigned char)*p))
            v[i] = v[i] * 10 + (*p++ - '0');
        if (*p != ':' || i == 2)
            break;
        p++;
    }
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return p;
}

static const char *posix_name(const char *p)
{
    if (*p == '<') {
        while (*p && *p != '>')
            p++;
        return *p ? p + 1 : NULL;
    }
    const char *s = p;
    while (isalpha((unsigned char)*p))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *posix_rule(const char *p, int *m, int *w, int *d, int32_t *t)
{
    if (*p != 'M' || sscanf(p, "M%d.%d.%d", m, w, d) != 3)
        return NULL;
    p++;
    while (*p && *p != ',' && *p != '/')
        p++;
    *t = 7200;
    if (*p == '/')
        p = posix_time(p + 1, t);
    return p;
}

static void parse_footer(struct cron_tz *z, const char *s)
{
    int32_t std, dst;
    const char *p = posix_name(s);
    if (!p || !(p = posix_time(p, &std)))
        return;
    z->std_off = -std;
    if (!*p)
        return; /* no DST: the last transition's offset already is this one */
    if (!(p = posix_name(p)))
        return;
    dst = std - 3600;
    if (*p && *p != ',' && !(p = posix_time(p, &dst)))
        return;
    z->dst_off = -dst;
    if (*p++ != ',' || !(p = posix_rule(p, &z->rm[0], &z->rw[0], &z->rd[0], &z->rt[0])) || *p++ != ',' ||
        !(p = posix_rule(p, &z->rm[1], &z->rw[1], &z->rd[1], &z->rt[1])))
        return;
    z->rule = true;
}

/* Unix second of rule r (0 start, 1 end) in year y, given the offset in
 * force before that change. */
static int64_t rule_time(const struct cron_tz *z, int r, int64_t y, int32_t off_before)
{
    int m = z->rm[r], w = z->rw[r], d = z->rd[r];
    int64_t first = days_from_civil(y, m, 1);
    int64_t day = first + ((d - weekday(first)) + 7) % 7 + (int64_t)(w - 1) * 7;
    if (w == 5)
        while (day - first >= days_in_month(y, m))
            day -= 7;
    return day * 86400 + z->rt[r] - off_before;
}

static int32_t rule_offset(const struct cron_tz *z, int64_t t)
{
    int64_t y;
    int mo, d;
    civil_from_days(floordiv(t + z->std_off, 86400), &y, &mo, &d);
    int64_t start = rule_time(z, 0, y, z->std_off), end = rule_time(z, 1, y, z->dst_off);
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? z->dst_off : z->std_off;
}

static int tz_parse(struct cron_tz *z, const unsigned char *b, size_t len)
{
    if (len < 44 || memcmp(b, "TZif", 4) != 0)
        return -EINVAL;
    int64_t c[6];
    for (int i = 0; i < 6; i++)
        c[i] = be(b + 20 + 4 * i, 4);
    /* c: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
    size_t v1 = (size_t)(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
    if (b[4] < '2' || 44 + v1 + 44 > len)
        return -EINVAL; /* version 1 files are not shipped any more */
    const unsigned char *h = b + 44 + v1;
    if (memcmp(h, "TZif", 4) != 0)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        c[i] = be(h + 20 + 4 * i, 4);
    const unsigned char *p = h + 44;
    size_t need = (size_t)(c[3] * 9 + c[4] * 6 + c[5] + c[2] * 12 + c[1] + c[0]);
    if (c[4] < 1 || c[4] > 255 || c[3] < 0 || (size_t)(p - b) + need > len)
        return -EINVAL;
    z->n = (size_t)c[3];
    z->ntypes = (size_t)c[4];
    z->at = calloc(z->n + 1, sizeof *z->at);
    z->idx = calloc(z->n + 1, 1);
    z->off = calloc(z->ntypes, sizeof *z->off);
    z->isdst = calloc(z->ntypes, 1);
    if (!z->at || !z->idx || !z->off || !z->isdst)
        return -ENOMEM;
    for (size_t i = 0; i < z->n; i++)
        z->at[i] = be(p + 8 * i, 8);
    p += 8 * z->n;
    for (size_t i = 0; i < z->n; i++) {
        z->idx[i] = p[i];
        if (p[i] >= z->ntypes)
            return -EINVAL;
    }
    p += z->n;
    for (size_t i = 0; i < z->ntypes; i++) {
        z->off[i] = (int32_t)be(p + 6 * i, 4);
        z->isdst[i] = p[6 * i + 4];
    }
    p += 6 * z->ntypes + c[5] + c[2] * 12 + c[1] + c[0];
    z->before = z->off[0];
    for (size_t i = 0; i < z->ntypes; i++) {
        if (!z->isdst[i]) {
            z->before = z->off[i];
            break;
        }
    }
    if ((size_t)(p - b) < len && *p == '\n') {
        char footer[128];
        size_t k = 0;
        p++;
        while ((size_t)(p - b) < len && *p != '\n' && k < sizeof footer - 1)
            footer[k++] = (char)*p++;
        footer[k] = '\0';
        parse_footer(z, footer);
    }
    return 0;
}

static bool zone_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("/_+-", name[i]))
            return false;
    return true;
}

int cron_tz_load(const char *name, struct cron_tz **out, char *err, size_t cap)
{
    *out = NULL;
    if (!zone_name_ok(name)) {
        snprintf(err, cap, "'%.64s' is not a time zone name (use names such as UTC, Europe/Berlin, America/New_York)",
                 name);
        return -EINVAL;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    struct cron_tz *z = calloc(1, sizeof *z);
    if (!z)
        return -ENOMEM;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (strcmp(name, "UTC") == 0) {
            *out = z; /* no zoneinfo installed: UTC still works */
            return 0;
        }
        free(z);
        snprintf(err, cap, "unknown time zone '%.64s' (no %s; names are those of the system zoneinfo, "
                 "e.g. Europe/Berlin)", name, path);
        return -ENOENT;
    }
    unsigned char *buf = malloc(1 << 20);
    size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    int rc = buf ? tz_parse(z, buf, len) : -ENOMEM;
    free(buf);
    if (rc < 0) {
        cron_tz_free(z);
        snprintf(err, cap, "time zone file %s is not a TZif file this spoold can read", path);
        return rc;
    }
    *out = z;
    return 0;
}

void cron_tz_free(struct cron_tz *z)
{
    if (!z)
        return;
    free(z->at);
    free(z->idx);
    free(z->off);
    free(z->isdst);
    free(z);
}

int32_t cron_tz_offset(const struct cron_tz *z, int64_t t)
{
    if (!z || z->ntypes == 0)
        return 0;
    if (z->n == 0 || t < z->at[0])
        return z->n == 0 && z->rule ? rule_offset(z, t) : z->before;
    if (t >= z->at[z->n - 1] && z->rule)
        return rule_offset(z, t);
    size_t lo = 0, hi = z->n; /* last i with at[i] <= t */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[z->idx[lo]];
}

/* ---------------------------------------------------------- next tick */

static bool day_ok(const struct cron_spec *c, int64_t days, int dom)
{
    bool dm = c->dom >> dom & 1, dw = c->dow >> weekday(days) & 1;
    if (c->dom_any && c->dow_any)
        return true;
    if (c->dom_any)
        return dw;
    if (c->dow_any)
        return dm;
    return dm || dw;
}

/* The first local second >= L that matches c, or INT64_MIN within limit years. */
static int64_t match_from(const struct cron_spec *c, int64_t L, int64_t limit_year)
{
    int64_t days = floordiv(L, 86400), y;
    int64_t sod = L - days * 86400;
    int mo, d, h = (int)(sod / 3600), mi = (int)(sod / 60 % 60), s = (int)(sod % 60);
    civil_from_days(days, &y, &mo, &d);
    for (;;) {
        if (s > 59)
            s = 0, mi++;
        if (mi > 59)
            mi = 0, h++;
        if (h > 23)
            h = 0, d++;
        if (mo > 12)
            mo = 1, y++;
        if (d > days_in_month(y, mo)) {
            d = 1, mo++;
            continue; /* the month may run over the year now */
        }
        if (y > limit_year)
            return INT64_MIN;
        if (!(c->mon >> mo & 1)) {
            mo++, d = 1, h = mi = s = 0;
            continue;
        }
        int64_t dd = days_from_civil(y, mo, d);
        if (!day_ok(c, dd, d)) {
            d++, h = mi = s = 0;
            continue;
        }
        if (!(c->hour >> h & 1)) {
            h++, mi = s = 0;
            continue;
        }
        if (!(c->min >> mi & 1)) {
            mi++, s = 0;
            continue;
        }
        if (!(c->sec >> s & 1)) {
            s++;
            continue;
        }
        return dd * 86400 + h * 3600 + mi * 60 + s;
    }
}

int64_t cron_next(const struct cron_spec *c, const struct cron_tz *z, int64_t after_ms)
{
    if (c->every_ms > 0)
        return after_ms + c->every_ms;
    int64_t after = floordiv(after_ms, 1000);
    int64_t L = after + cron_tz_offset(z, after) + 1;
    int64_t y;
    int mo, d;
    civil_from_days(floordiv(L, 86400), &y, &mo, &d);
    int64_t limit = y + 8;
    for (int guard = 0; guard < 100000; guard++) {
        int64_t m = match_from(c, L, limit);
        if (m == INT64_MIN)
            return -1;
        int32_t a = cron_tz_offset(z, m - 86400), b = cron_tz_offset(z, m + 86400);
        int64_t best = INT64_MAX;
        bool valid = false;
        int32_t offs[2] = { a, b };
        for (int i = 0; i < 2; i++) {
            int64_t u = m - offs[i];
            if (cron_tz_offset(z, u) == offs[i]) {
                valid = true;
                if (u > after && u < best)
                    best = u;
            }
        }
        if (!valid && m - a > after)
            best = m - a; /* skipped by a spring-forward: the offset before it */
        if (best != INT64_MAX)
            return best * 1000;
        L = m + 1;
    }
    return -1;
}
