/*
 * reply.c - small helpers shared by the command modules: building argument
 * vectors with optional parts, and reading typed fields out of replies.
 *
 * Replies are read leniently where RESP2 and RESP3 differ (a number may come
 * as an integer or as a bulk string of digits, a nil as $-1, *-1 or _) and
 * strictly everywhere else: a field of a wrong type is a protocol error for
 * the caller to report, never a silent zero.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sdk_av_init(argvec *a)
{
    a->argc = 0;
    a->nnums = 0;
}

void sdk_av_addn(argvec *a, const char *p, size_t n)
{
    if (a->argc >= SPOOL_MAX_ARGS)
        abort(); /* a bug in the SDK: commands are built from fixed shapes */
    a->argv[a->argc] = p;
    a->len[a->argc] = n;
    a->argc++;
}

void sdk_av_add(argvec *a, const char *s)
{
    sdk_av_addn(a, s, strlen(s));
}

void sdk_av_addll(argvec *a, long long v)
{
    if (a->nnums >= (int)(sizeof a->nums / sizeof a->nums[0]))
        abort();
    char *s = a->nums[a->nnums++];
    snprintf(s, sizeof a->nums[0], "%lld", v);
    sdk_av_add(a, s);
}

void sdk_av_opt(argvec *a, bool when, const char *name, const char *value)
{
    if (!when)
        return;
    sdk_av_add(a, name);
    sdk_av_add(a, value);
}

void sdk_av_optll(argvec *a, bool when, const char *name, long long value)
{
    if (!when)
        return;
    sdk_av_add(a, name);
    sdk_av_addll(a, value);
}

bool sdk_val_is_nil(const resp_val *v)
{
    return v && v->type == RESP_T_NULL;
}

int sdk_val_to_ll(const resp_val *v, long long *out)
{
    if (!v)
        return -1;
    if (v->type == RESP_T_INT || v->type == RESP_T_BOOL) {
        *out = v->integer;
        return 0;
    }
    if (v->type == RESP_T_DOUBLE) {
        *out = (long long)v->dbl;
        return 0;
    }
    if (v->type != RESP_T_BULK && v->type != RESP_T_SIMPLE)
        return -1;
    if (v->len == 0 || v->len > 24)
        return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v->str, &end, 10);
    if (errno || end != v->str + v->len)
        return -1;
    *out = x;
    return 0;
}

char *sdk_val_strdup(const resp_val *v, bool *err)
{
    if (!v || v->type == RESP_T_NULL)
        return NULL;
    if (v->type == RESP_T_INT) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v->integer);
        return strdup(buf);
    }
    if (v->type != RESP_T_BULK && v->type != RESP_T_SIMPLE) {
        *err = true;
        return NULL;
    }
    char *s = malloc(v->len + 1);
    if (!s) {
        *err = true;
        return NULL;
    }
    memcpy(s, v->str, v->len);
    s[v->len] = 0;
    return s;
}
