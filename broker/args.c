/*
 * args.c - argument parsers shared by every command file (see args.h).
 */
#include "args.h"

#include "clock.h"
#include "msg.h"
#include "resp.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool arg_is(const struct msg *m, int i, const char *s)
{
    return i < m->req.argc && strlen(s) == m->req.len[i] && strncasecmp(m->req.argv[i], s, m->req.len[i]) == 0;
}

bool arg_ll(const struct msg *m, int i, long long *out)
{
    return i < m->req.argc && resp_parse_ll(m->req.argv[i], m->req.len[i], out) == 0;
}

bool arg_range(const struct msg *m, int i, long long min, long long max, long long *out)
{
    long long v;
    if (!arg_ll(m, i, &v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int arg_timeout(const struct msg *m, int i, int64_t *deadline)
{
    const char *s = m->req.argv[i];
    size_t n = m->req.len[i];
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (n == 0 || end != s + n || errno || isnan(d) || isinf(d))
        return -EINVAL;
    if (d < 0)
        return -ERANGE;
    int64_t ms = (int64_t)ceil(d * 1000.0);
    *deadline = ms == 0 ? 0 : clock_now_ms() + ms;
    return 0;
}

bool arg_double(const struct msg *m, int i, double *out)
{
    const char *p = m->req.argv[i];
    size_t n = m->req.len[i];
    if (n == 0 || n > 256 || isspace((unsigned char)p[0]))
        return false;
    char *end;
    errno = 0;
    double d = strtod(p, &end);
    if (end != p + n || isnan(d))
        return false;
    if (errno == ERANGE && !isinf(d) && d != 0)
        return false;
    *out = d;
    return true;
}
