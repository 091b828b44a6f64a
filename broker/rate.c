/*
 * rate.c - see rate.h.
 */
#include "rate.h"

#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The window rule is kept for rates of up to RATE_LOG_MAX per period. */
static bool windowed(const struct rate *r)
{
    return r->n <= RATE_LOG_MAX;
}

/* How late a delivery may come and still keep the pace (rate.h): a
 * quarter of the period, at least one interval, with the window; 999 us
 * without it. */
static int64_t slack_us(const struct rate *r)
{
    if (!windowed(r))
        return 999;
    int64_t quarter = r->per_ms * 1000 / 4, t = rate_interval_us(r);
    return quarter > t ? quarter : t;
}

static int64_t oldest(const struct rate_state *l)
{
    return l->ring[(l->head + l->cap - l->len) % l->cap];
}

static bool window_full(const struct rate *r, const struct rate_state *l)
{
    return windowed(r) && l->ring && l->cap == (uint32_t)r->n && l->len == l->cap;
}

bool rate_allows(const struct rate *r, const struct rate_state *l, int64_t now_ms)
{
    if (!rate_set(r))
        return true;
    if (now_ms * 1000 < l->tat)
        return false;
    return !window_full(r, l) || oldest(l) <= now_ms - r->per_ms;
}

void rate_take(const struct rate *r, struct rate_state *l, int64_t now_ms)
{
    if (!rate_set(r))
        return;
    int64_t t = rate_interval_us(r), now_us = now_ms * 1000;
    /* late by less than the slack: keep the pace; else (idle) start from now */
    l->tat = (l->tat >= now_us - slack_us(r) ? l->tat : now_us) + t;
    if (!windowed(r))
        return;
    if (l->cap != (uint32_t)r->n) { /* new, or the rate changed: a fresh window */
        free(l->ring);
        l->cap = (uint32_t)r->n;
        l->ring = xcalloc(l->cap, sizeof *l->ring);
        l->len = l->head = 0;
    }
    l->ring[l->head] = now_ms;
    l->head = (l->head + 1) % l->cap;
    if (l->len < l->cap)
        l->len++;
}

int64_t rate_next_ms(const struct rate *r, const struct rate_state *l)
{
    int64_t at = (l->tat + 999) / 1000;
    if (window_full(r, l) && oldest(l) + r->per_ms > at)
        at = oldest(l) + r->per_ms;
    return at;
}

int64_t rate_busy_until_us(const struct rate *r, const struct rate_state *l)
{
    if (!rate_set(r))
        return 0;
    int64_t until = l->tat;
    if (l->ring && l->len) {
        int64_t newest = l->ring[(l->head + l->cap - 1) % l->cap];
        if ((newest + r->per_ms) * 1000 > until)
            until = (newest + r->per_ms) * 1000;
    }
    return until;
}

void rate_state_free(struct rate_state *l)
{
    free(l->ring);
    memset(l, 0, sizeof *l);
}

uint32_t rate_state_deliveries(const struct rate_state *l, int64_t *at, uint32_t max)
{
    uint32_t n = l->ring ? l->len : 0;
    for (uint32_t i = 0; i < n && i < max; i++)
        at[i] = l->ring[(l->head + l->cap - l->len + i) % l->cap];
    return n;
}

void rate_state_load(struct rate_state *l, int64_t tat, uint32_t cap, const int64_t *at, uint32_t n)
{
    rate_state_free(l);
    l->tat = tat;
    if (!cap || n > cap)
        return;
    l->cap = cap;
    l->ring = xcalloc(cap, sizeof *l->ring);
    memcpy(l->ring, at, (size_t)n * sizeof *at);
    l->len = n;
    l->head = n % cap;
}
