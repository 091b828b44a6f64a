/*
 * jobfmt.c - build and read the benchmark payload (see jobfmt.h).
 */
#include "jobfmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

size_t jobfmt_build(char *buf, size_t cap, size_t size, uint64_t n, uint64_t t_ns)
{
    int h = snprintf(buf, cap, "{\"n\":%llu,\"t\":%llu,\"pad\":\"",
                     (unsigned long long)n, (unsigned long long)t_ns);
    size_t len = (size_t)h;
    size_t pad = size > len + 2 ? size - len - 2 : 0;
    if (len + pad + 3 > cap)
        pad = cap - len - 3;
    memset(buf + len, 'x', pad);
    len += pad;
    buf[len++] = '"';
    buf[len++] = '}';
    buf[len] = 0;
    return len;
}

/* Digits at p (within end) after the literal key; advances *p. */
static int read_field(const char **p, const char *end, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    if ((size_t)(end - *p) < kl || memcmp(*p, key, kl) != 0)
        return -1;
    const char *q = *p + kl;
    uint64_t v = 0;
    const char *start = q;
    while (q < end && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q == start)
        return -1;
    *out = v;
    *p = q;
    return 0;
}

int jobfmt_parse(const char *p, size_t len, uint64_t *n, uint64_t *t_ns)
{
    const char *end = p + len;
    if (read_field(&p, end, "{\"n\":", n) != 0)
        return -1;
    return read_field(&p, end, ",\"t\":", t_ns);
}
