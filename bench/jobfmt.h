/*
 * jobfmt.h - the benchmark's job payload: a JSON object of an exact size
 * carrying a sequence number and the push time,
 *
 *     {"n":123,"t":8812345678901,"pad":"xxxxxxxx"}
 *
 * `n` is unique within a run (a global ticket), so consumers can detect a
 * job delivered twice and Redis's LREM can name the element exactly; `t`
 * is CLOCK_MONOTONIC in nanoseconds when the push was written, read back by
 * the consumer (same process, same clock) for push-to-delivery latency.
 * `pad` fills the object to the requested size; when the size is smaller
 * than the object without padding, the payload is that minimum instead.
 * Pure functions; any thread.
 */
#ifndef SPOOL_BENCH_JOBFMT_H
#define SPOOL_BENCH_JOBFMT_H

#include <stddef.h>
#include <stdint.h>

#define JOBFMT_MIN 64 /* a buffer for a payload of size s needs s + JOBFMT_MIN bytes */

/* Writes the payload into buf (cap bytes, at least size + JOBFMT_MIN) and
 * returns its length. */
size_t jobfmt_build(char *buf, size_t cap, size_t size, uint64_t n, uint64_t t_ns);

/* Reads n and t back. 0 on success, -1 when the payload is not ours. */
int jobfmt_parse(const char *p, size_t len, uint64_t *n, uint64_t *t_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mono_ns(void);

#endif
