/*
 * xalloc.h - allocation that cannot fail silently.
 *
 * spoold's policy on memory exhaustion is to stop with a message rather than
 * limp on with half-built state; resp_buf does the same in proto/.
 */
#ifndef SPOOL_XALLOC_H
#define SPOOL_XALLOC_H

#include <stdio.h>
#include <stdlib.h>

static inline void *xalloc_check(void *p)
{
    if (!p) {
        fputs("spoold: out of memory\n", stderr);
        abort();
    }
    return p;
}

static inline void *xmalloc(size_t n) { return xalloc_check(malloc(n ? n : 1)); }
static inline void *xcalloc(size_t n, size_t size) { return xalloc_check(calloc(n ? n : 1, size ? size : 1)); }
static inline void *xrealloc(void *p, size_t n) { return xalloc_check(realloc(p, n ? n : 1)); }

#endif
