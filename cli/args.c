/*
 * args.c - see args.h. Pure functions over argv and strings; no I/O but
 * the one-line usage error printed by args_parse().
 */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const arg_opt args_global[] = {
    { "url", "URL", "broker URL (default $SPOOL_URL, else spool://127.0.0.1:7379)" },
    { "json", NULL, "machine-readable JSON output" },
    { "no-color", NULL, "no colour even on a terminal (NO_COLOR is honoured too)" },
    { "help", NULL, "show this help" },
    { NULL, NULL, NULL },
};

/* ================================================================ parse */

static const arg_opt *find_opt(const arg_opt *opts, const char *name, size_t n)
{
    for (const arg_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == n && !strncmp(o->name, name, n))
            return o;
    return NULL;
}

static int set_opt(args *a, const arg_opt *o, const char *val)
{
    for (int i = 0; i < a->nopts; i++)
        if (a->opt[i] == o) {
            a->val[i] = val; /* the last one wins */
            return 0;
        }
    if (a->nopts >= ARGS_MAX_OPTS)
        return -1;
    a->opt[a->nopts] = o;
    a->val[a->nopts++] = val;
    return 0;
}

/* Parses the option at argv[*i] ("--name[=value]"); advances *i past a
 * separate value. */
static int parse_opt(args *a, const arg_opt *opts, int argc, char **argv, int *i)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    const arg_opt *o = find_opt(opts, name, n);
    if (!o)
        o = find_opt(args_global, name, n);
    if (!o) {
        fprintf(stderr, "spool: unknown option '--%.*s' (see --help)\n", (int)n, name);
        return -1;
    }
    const char *val = "";
    if (o->value && eq)
        val = eq + 1;
    else if (o->value && *i + 1 < argc)
        val = argv[++*i];
    else if (o->value) {
        fprintf(stderr, "spool: option '--%s' needs a value (%s)\n", o->name, o->value);
        return -1;
    } else if (eq) {
        fprintf(stderr, "spool: option '--%s' takes no value\n", o->name);
        return -1;
    }
    return set_opt(a, o, val);
}

/* "-5", "-1.5": a negative number is a value (spool config q retries -5
 * then reaches spoold, which says what range it takes), not an option. */
static bool negative_number(const char *s)
{
    return s[0] == '-' && (isdigit((unsigned char)s[1]) ||
                           (s[1] == '.' && isdigit((unsigned char)s[2])));
}

int args_parse(args *a, const arg_opt *opts, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!only_pos && !strcmp(s, "--")) {
            only_pos = true;
        } else if (!only_pos && s[0] == '-' && s[1] == '-') {
            if (parse_opt(a, opts, argc, argv, &i) < 0)
                return -1;
        } else if (!only_pos && s[0] == '-' && s[1] && !negative_number(s)) {
            fprintf(stderr, "spool: unknown option '%s' (options are long: --name; see --help)\n", s);
            return -1;
        } else if (a->npos < ARGS_MAX_POS) {
            a->pos[a->npos++] = s;
        } else {
            fprintf(stderr, "spool: too many arguments (at most %d)\n", ARGS_MAX_POS);
            return -1;
        }
    }
    return 0;
}

const char *args_get(const args *a, const char *name)
{
    for (int i = 0; i < a->nopts; i++)
        if (!strcmp(a->opt[i]->name, name))
            return a->val[i];
    return NULL;
}

bool args_has(const args *a, const char *name)
{
    return args_get(a, name) != NULL;
}

/* =============================================================== values */

int args_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static double unit_ms(const char *u, size_t n)
{
    static const struct { const char *name; double ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == n && !strncmp(units[i].name, u, n))
            return units[i].ms;
    return -1;
}

int args_duration_ms(const char *s, int64_t *ms)
{
    double total = 0;
    const char *p = s;
    if (!*p)
        return -1;
    while (*p) {
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0 || *p == '+' || *p == '-')
            return -1;
        const char *u = end;
        while (isalpha((unsigned char)*end))
            end++;
        double mult = end == u ? (p == s && !*end ? 1000 : -1) : unit_ms(u, (size_t)(end - u));
        if (mult < 0)
            return -1;
        total += v * mult;
        p = end;
    }
    if (total > 1e15)
        return -1;
    *ms = (int64_t)(total + 0.5);
    return 0;
}

/* "YYYY-MM-DD[ T]HH:MM[:SS][Z]" */
static int calendar_ms(const char *s, int64_t *ms)
{
    struct tm tm = { 0 };
    tm.tm_isdst = -1;
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || (*end != 'T' && *end != ' '))
        return -1;
    const char *t = strptime(end + 1, "%H:%M:%S", &tm);
    if (!t)
        t = strptime(end + 1, "%H:%M", &tm);
    if (!t)
        return -1;
    bool utc = *t == 'Z';
    if (*t && !(utc && !t[1]))
        return -1;
    time_t when = utc ? timegm(&tm) : mktime(&tm);
    if (when == (time_t)-1)
        return -1;
    *ms = (int64_t)when * 1000;
    return 0;
}

int args_time_ms(const char *s, int64_t *ms)
{
    long long secs;
    if (s[0] == '+') {
        int64_t d;
        if (args_duration_ms(s + 1, &d) < 0)
            return -1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + d;
        return 0;
    }
    if (args_int(s[0] == '@' ? s + 1 : s, 0, 100000000000LL, &secs) == 0) {
        *ms = secs * 1000;
        return 0;
    }
    return calendar_ms(s, ms);
}
