/*
 * kvcmd.h - what the keyspace command files (cmd_string.c, cmd_hash.c,
 * cmd_zset.c, cmd_keys.c) share, on the shard thread: finding a key of the
 * right type (WRONGTYPE otherwise, also against a queue of that name),
 * parsing numbers the way Redis does, and answering.
 *
 * Every keyspace command validates its own arguments on the shard (not on
 * the I/O thread), so it runs the same inside MULTI/EXEC as outside.
 *
 * A name is a queue or a keyspace key, never both: a key is not created
 * while a queue of that name has unfinished jobs, and LPUSH/JOB.PUSH refuse
 * a name that holds a key (kvcmd_queue_refused).
 */
#ifndef SPOOL_KVCMD_H
#define SPOOL_KVCMD_H

#include "keyspace.h"
#include "resp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct msg;

/* The live key at argv[i] for reading (counted as a hit or miss). NULL
 * when absent, or on an error (WRONGTYPE sent, *err set). */
struct kv *kvcmd_read(struct shard *s, struct msg *m, int i, int type, bool *err);
/* The same for a write: no hit/miss counting. A queue of that name with
 * unfinished jobs is a WRONGTYPE. */
struct kv *kvcmd_write(struct shard *s, struct msg *m, int i, int type, bool *err);
/* The key for a write, created empty when absent. NULL on WRONGTYPE. */
struct kv *kvcmd_write_create(struct shard *s, struct msg *m, int i, int type);
/* True when a queue named argv[i] has ready jobs (it reads as a list). */
bool kvcmd_is_queue(struct shard *s, const char *key, size_t len);
/* For LPUSH/JOB.PUSH and the list reads: true (WRONGTYPE sent) when
 * argv[i] names a keyspace key. */
bool kvcmd_queue_refused(struct shard *s, struct msg *m, int i);

/* Before a command that may grow the keyspace: true when it may run
 * (evicting keys first as maxmemory-policy says); false after answering
 * -OOM when the shard's share of maxmemory is used up. */
bool kvcmd_admit(struct shard *s, struct msg *m);

/* The arguments of SCAN, HSCAN and ZSCAN: "cursor [MATCH pattern]
 * [COUNT n]" from argv[at] on, and "[TYPE type]" too when type_ok. The
 * cursor is decimal digits up to UINT64_MAX ("" is 0, as Redis reads it);
 * COUNT is at least 1 (10 when absent); pat and type are argument indexes,
 * 0 when absent. */
struct kvcmd_scan {
    uint64_t cursor;
    long long count;
    int pat, type;
};
/* NULL, or the error to send (the cursor is checked before the options). */
const char *kvcmd_scan_args(const struct msg *m, int at, bool type_ok, struct kvcmd_scan *out);

/* Replies with an error (the message includes its prefix) and returns true. */
bool kvcmd_fail(struct shard *s, struct msg *m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kvcmd_reply_int(struct shard *s, struct msg *m, long long v);
void kvcmd_reply_ok(struct shard *s, struct msg *m);
void kvcmd_reply_null(struct shard *s, struct msg *m);
void kvcmd_reply_bulk(struct shard *s, struct msg *m, const char *p, size_t n);

/* A number stored or given as bytes, as INCRBYFLOAT reads it. */
bool kvcmd_long_double(const char *p, size_t n, long double *out);
/* Formats v as Redis's INCRBYFLOAT does (%.17Lf, trailing zeros cut). */
int kvcmd_format_ld(char *buf, size_t cap, long double v);
/* Redis's glob match (* ? [a-z] [^a] \x), binary safe, for KEYS/SCAN MATCH. */
bool kvcmd_glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

#define KV_ERR_INT "ERR value is not an integer or out of range"
#define KV_ERR_FLOAT "ERR value is not a valid float"
#define KV_ERR_SYNTAX "ERR syntax error"
#define KV_ERR_CURSOR "ERR invalid cursor"

#endif
