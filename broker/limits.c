/*
 * limits.c - see limits.h.
 */
#include "limits.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool digits(const char *s, size_t n, int64_t max, int64_t *out)
{
    if (n == 0 || n > 12)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int64_t unit_ms(const char *u, size_t n)
{
    if (n == 2 && strncasecmp(u, "ms", 2) == 0)
        return 1;
    if (n == 1 && (u[0] == 's' || u[0] == 'S'))
        return 1000;
    if (n == 1 && (u[0] == 'm' || u[0] == 'M'))
        return 60000;
    if (n == 1 && (u[0] == 'h' || u[0] == 'H'))
        return 3600000;
    return 0;
}

int rate_parse(const char *s, size_t len, struct rate *out, const char **why)
{
    *why = "N/period: N from 1 to 1000000, period a number and a unit ms, s, m or h (14/1s, 3/100ms, 1000/1h); 0 for no limit";
    if ((len == 1 && s[0] == '0') || (len == 3 && strncasecmp(s, "off", 3) == 0)) {
        out->n = 0;
        out->per_ms = 0;
        return 0;
    }
    const char *slash = memchr(s, '/', len);
    if (!slash)
        return -EINVAL;
    int64_t n, count = 1;
    if (!digits(s, (size_t)(slash - s), RATE_N_MAX, &n) || n == 0)
        return -EINVAL;
    const char *p = slash + 1, *end = s + len;
    const char *u = p;
    while (u < end && *u >= '0' && *u <= '9')
        u++;
    if (u > p && !digits(p, (size_t)(u - p), RATE_PERIOD_MAX_MS, &count))
        return -EINVAL;
    int64_t unit = unit_ms(u, (size_t)(end - u));
    if (unit == 0 || count == 0 || count > RATE_PERIOD_MAX_MS / unit)
        return -EINVAL;
    out->n = n;
    out->per_ms = count * unit;
    return 0;
}

int rate_format(const struct rate *r, char *buf, size_t cap)
{
    if (!rate_set(r))
        return snprintf(buf, cap, "0");
    int64_t ms = r->per_ms;
    if (ms % 3600000 == 0)
        return snprintf(buf, cap, "%lld/%lldh", (long long)r->n, (long long)(ms / 3600000));
    if (ms % 60000 == 0)
        return snprintf(buf, cap, "%lld/%lldm", (long long)r->n, (long long)(ms / 60000));
    if (ms % 1000 == 0)
        return snprintf(buf, cap, "%lld/%llds", (long long)r->n, (long long)(ms / 1000));
    return snprintf(buf, cap, "%lld/%lldms", (long long)r->n, (long long)ms);
}

int64_t rate_interval_us(const struct rate *r)
{
    int64_t period_us = r->per_ms * 1000;
    return (period_us + r->n - 1) / r->n;
}

bool rate_allows(const struct rate *r, int64_t tat_us, int64_t now_ms)
{
    return !rate_set(r) || now_ms * 1000 >= tat_us;
}

int64_t rate_take(const struct rate *r, int64_t tat_us, int64_t now_ms)
{
    if (!rate_set(r))
        return tat_us;
    /* The clock has whole milliseconds: a delivery made up to 999 us after
     * its due time is treated as on time, so the pace does not drift (a
     * busy 3/100ms limiter would otherwise lose most of a ms per delivery). */
    int64_t floor_us = now_ms * 1000 - 999;
    return (tat_us > floor_us ? tat_us : floor_us) + rate_interval_us(r);
}

int64_t rate_next_ms(const struct rate *r, int64_t tat_us)
{
    return (tat_us + 999) / 1000;
}
