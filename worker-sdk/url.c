/*
 * url.c - parses spool://[user:password@]host[:port] into a spool_url.
 *
 * Accepted schemes: spool:// and redis:// (so a Redis-style URL already in
 * an environment works). The host is a name, an IPv4 address, or an IPv6
 * address in brackets. User and password are percent-decoded. A trailing
 * "/" or "/0" (a Redis database number) is accepted and ignored; anything
 * else after the authority is an error, so typos are not silently dropped.
 * Pure function: no allocation, no I/O; callable from any thread.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes p[0..n) into out (size cap): 0, or -1 when malformed or
 * too long. */
static int pct_decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return 0;
}

static int fail(char *err, size_t errlen, const char *url, const char *why)
{
    snprintf(err, errlen, "bad URL '%s': %s (expected spool://[user:password@]host:port)",
             url, why);
    return SPOOL_EINVAL;
}

static int parse_userinfo(const char *p, size_t n, spool_url *u)
{
    const char *colon = memchr(p, ':', n);
    size_t ulen = colon ? (size_t)(colon - p) : n;
    if (pct_decode(p, ulen, u->user, sizeof u->user) != 0)
        return -1;
    if (colon) {
        if (pct_decode(colon + 1, n - ulen - 1, u->pass, sizeof u->pass) != 0)
            return -1;
        u->has_pass = true;
    }
    return 0;
}

static int parse_port(const char *p, size_t n, int *port)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* host[:port] or [v6][:port] in p[0..n). */
static int parse_hostport(const char *p, size_t n, spool_url *u)
{
    const char *host = p, *rest;
    size_t hlen;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return -1;
        host = p + 1;
        hlen = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        hlen = colon ? (size_t)(colon - p) : n;
        rest = p + hlen;
    }
    size_t rlen = n - (size_t)(rest - p);
    if (hlen == 0 || hlen >= sizeof u->host)
        return -1;
    memcpy(u->host, host, hlen);
    u->host[hlen] = 0;
    u->port = SPOOL_DEFAULT_PORT;
    if (rlen == 0)
        return 0;
    if (rest[0] != ':')
        return -1;
    return parse_port(rest + 1, rlen - 1, &u->port);
}

int sdk_url_parse(const char *url, spool_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!url)
        return fail(err, errlen, "(null)", "no URL");
    const char *p = strstr(url, "://");
    if (!p)
        return fail(err, errlen, url, "no scheme");
    size_t slen = (size_t)(p - url);
    if (!((slen == 5 && !strncmp(url, "spool", 5)) || (slen == 5 && !strncmp(url, "redis", 5))))
        return fail(err, errlen, url, "the scheme must be spool://");
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *tail = p + n;
    if (*tail && strcmp(tail, "/") != 0 && strcmp(tail, "/0") != 0)
        return fail(err, errlen, url, "unexpected text after host:port");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            at = p + i; /* the last '@': passwords may hold '@' unencoded */
    if (at) {
        if (parse_userinfo(p, (size_t)(at - p), u) != 0)
            return fail(err, errlen, url, "malformed user:password");
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (parse_hostport(p, n, u) != 0)
        return fail(err, errlen, url, "malformed host or port");
    if (u->has_pass && !u->user[0])
        strcpy(u->user, "default");
    return 0;
}
