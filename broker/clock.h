/*
 * clock.h - the one place spoold reads the time.
 *
 * Every deadline (blocking timeouts, later leases and delays) is computed
 * from clock_now_ms(), so unit tests can install a fake clock through the
 * clock_set_source() seam. Any thread may call clock_now_ms(); the source
 * is set once, before threads start.
 */
#ifndef SPOOL_CLOCK_H
#define SPOOL_CLOCK_H

#include <stdint.h>

typedef int64_t (*clock_source_fn)(void *arg);

/* Milliseconds since the Unix epoch (wall clock; used for timestamps). */
int64_t clock_now_ms(void);
/* Milliseconds of a monotonic clock (used for deadlines and durations). */
int64_t clock_mono_ms(void);
/* Microseconds of the monotonic clock (latency measurement). */
int64_t clock_mono_us(void);

/* Seam: replace both clocks by fn (NULL restores the real clocks). */
void clock_set_source(clock_source_fn fn, void *arg);

#endif
