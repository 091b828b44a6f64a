/*
 * limits.h - the arithmetic of flow control: rate limits and their
 * settings text. No threads, no queues: numbers in, numbers out. The
 * shard (through flow.c) keeps one limiter state per queue and per group.
 *
 * A rate "N/period" allows at most N deliveries in any interval of that
 * length. It is a GCRA (generic cell rate algorithm) with no burst
 * tolerance: deliveries are spread evenly, one every T = ceil(period / N)
 * (in microseconds), so N + 1 deliveries always span at least one whole
 * period. The state is one number, the theoretical arrival time (TAT) of
 * the next delivery, in microseconds of the Unix clock:
 *
 *     allowed at now  iff  now >= tat
 *     on delivery:         tat = max(tat, now - 999 us) + T
 *
 * (now is a whole millisecond; the 999 us keep a busy limiter from
 * drifting behind its rate. With them, delivery k+1 is never before
 * delivery k - 999 us + T, so N + 1 deliveries are never less than
 * period - 999 us apart, which on a millisecond clock is a whole period.)
 *
 * A limiter that has been idle lets the next delivery through at once; a
 * busy one hands out exactly one delivery per T. Why no burst: "14/1s"
 * then means what an SMTP provider means by it, in every window, not 14
 * at once followed by 14 more one millisecond after the window turns.
 *
 * Settings text: "N/period" where period is a number (optional, default 1)
 * followed by a unit ms, s, m or h ("14/1s", "50/s", "3/100ms", "1000/1h");
 * "0" (or "off") clears the limit. N is 1 to 1,000,000; the period 1 ms to
 * 24 h. rate_format() writes the same form back.
 */
#ifndef SPOOL_LIMITS_H
#define SPOOL_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_N_MAX 1000000
#define RATE_PERIOD_MAX_MS (24LL * 3600 * 1000)

struct rate {
    int64_t n;        /* deliveries per period; 0 = no limit */
    int64_t per_ms;   /* the period, ms */
};

static inline bool rate_set(const struct rate *r) { return r->n > 0; }

/* Parses the settings text into *out; returns 0, or -EINVAL with *why
 * saying what is expected. */
int rate_parse(const char *s, size_t len, struct rate *out, const char **why);
/* Writes "N/<period><unit>" (or "0") into buf; returns its length. */
int rate_format(const struct rate *r, char *buf, size_t cap);

/* Microseconds between two deliveries (ceil(period / N)). */
int64_t rate_interval_us(const struct rate *r);
/* True when a delivery at now_ms keeps the limit. */
bool rate_allows(const struct rate *r, int64_t tat_us, int64_t now_ms);
/* The state after a delivery at now_ms. */
int64_t rate_take(const struct rate *r, int64_t tat_us, int64_t now_ms);
/* The first millisecond at which the limiter allows a delivery again. */
int64_t rate_next_ms(const struct rate *r, int64_t tat_us);

#endif
