/*
 * xalloc.h - allocation that cannot fail silently, for proto/ and broker/.
 *
 * Ground layer. The policy on memory exhaustion is to stop with a message
 * rather than limp on with half-built state: every allocation of the
 * parser, the reply encoder and spoold goes through these.
 */
#ifndef SPOOL_XALLOC_H
#define SPOOL_XALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints what could not be had and aborts. */
static inline void xalloc_oom(size_t n) __attribute__((noreturn));
static inline void xalloc_oom(size_t n)
{
    fprintf(stderr, "spool: out of memory allocating %zu bytes\n", n);
    abort();
}

static inline void *xalloc_check(void *p, size_t n)
{
    if (!p)
        xalloc_oom(n);
    return p;
}

static inline void *xmalloc(size_t n) { return xalloc_check(malloc(n ? n : 1), n); }
static inline void *xcalloc(size_t n, size_t size) { return xalloc_check(calloc(n ? n : 1, size ? size : 1), n * size); }
static inline void *xrealloc(void *p, size_t n) { return xalloc_check(realloc(p, n ? n : 1), n); }
static inline char *xstrdup(const char *s) { return xalloc_check(strdup(s), strlen(s) + 1); }

/* A copy of n bytes with a NUL after them (the bytes may hold NULs). */
static inline char *xmemdup(const void *s, size_t n)
{
    char *d = xmalloc(n + 1);

    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

#endif
