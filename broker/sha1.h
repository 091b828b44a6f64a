/*
 * sha1.h - SHA-1 of a byte string as 40 lower-case hex digits (script
 * names: EVALSHA, SCRIPT LOAD, redis.sha1hex).
 *
 * Ground layer: no state, any thread.
 */
#ifndef SPOOL_SHA1_H
#define SPOOL_SHA1_H

#include <stddef.h>

#define SHA1_HEX 40

/* Writes 40 hex digits and a NUL into hex. */
void sha1_hex(const void *data, size_t len, char hex[SHA1_HEX + 1]);

#endif
