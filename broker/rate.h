/*
 * rate.h - the arithmetic of flow control: rate limits and their
 * settings text. No threads, no queues: numbers in, numbers out. The
 * shard (through flow.c) keeps one limiter state per queue and per group.
 *
 * A rate "N/period" allows at most N deliveries in any interval of that
 * length, spread evenly: one every T = ceil(period / N) (in microseconds).
 * Two rules make it, both kept in one struct rate_state:
 *
 * 1. Pace (a GCRA, generic cell rate algorithm, without burst): the
 *    theoretical arrival time tat of the next delivery, in microseconds of
 *    the Unix clock.
 *        allowed at now  iff  now >= tat
 *        on delivery:         tat = (tat >= now - S ? tat : now) + T
 *    S is the slack for late wake-ups: a delivery made up to S after its
 *    due time does not push the next one later (the ones after it may
 *    come sooner, catching up), so the pace does not drift behind the
 *    rate when the shard wakes late or is starved of CPU for a while. An
 *    idle limiter lets the next delivery through at once and the one
 *    after it T later.
 * 2. Window (exactness): the times of the last N deliveries, a ring.
 *        allowed at now  iff  fewer than N, or the oldest <= now - period
 *    so no interval of the period ever holds more than N, whatever the
 *    slack allowed.
 *
 * For N up to RATE_LOG_MAX the window is kept and S = max(T, period/4)
 * (a catch-up after a stall never beats the window). Above it (very
 * high rates, where one ring would cost megabytes per limiter) there is no
 * window and S = 999 us: with a whole-millisecond clock that alone keeps
 * N + 1 deliveries a whole period apart (delivery k + 1 is never before
 * delivery k - 999 us + T), at the price of some drift when wake-ups are
 * late. Changing a rate starts its window afresh.
 *
 * Settings text: "N/period" where period is a number (optional, default 1)
 * followed by a unit ms, s, m or h ("14/1s", "50/s", "3/100ms", "1000/1h");
 * "0" (or "off") clears the limit. N is 1 to 1,000,000; the period 1 ms to
 * 24 h. rate_format() writes the same form back.
 */
#ifndef SPOOL_RATE_H
#define SPOOL_RATE_H

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

#define RATE_LOG_MAX 4096

/* Microseconds between two deliveries (ceil(period / N)). */
int64_t rate_interval_us(const struct rate *r);

/* One limiter's state (zeroed = idle). Owns its ring. */
struct rate_state {
    int64_t tat;          /* us: the pace rule */
    int64_t *ring;        /* ms of the last deliveries (the window rule), cap entries */
    uint32_t cap, len, head;
};

/* True when a delivery at now_ms keeps the limit. */
bool rate_allows(const struct rate *r, const struct rate_state *l, int64_t now_ms);
/* Counts a delivery at now_ms. */
void rate_take(const struct rate *r, struct rate_state *l, int64_t now_ms);
/* The first millisecond at which the limiter allows a delivery again. */
int64_t rate_next_ms(const struct rate *r, const struct rate_state *l);
/* Until when (us) the state can still hold a delivery back; 0 = already not. */
int64_t rate_busy_until_us(const struct rate *r, const struct rate_state *l);
void rate_state_free(struct rate_state *l);
/* The limiter's state carried elsewhere (a slot move, cluster_move.c): the
 * pace (tat), the window's size and its deliveries (ms), oldest first.
 * rate_state_deliveries copies at most max of them into at and returns
 * how many there are; rate_state_load replaces l with such a state (n <=
 * cap, cap up to RATE_LOG_MAX). */
uint32_t rate_state_deliveries(const struct rate_state *l, int64_t *at, uint32_t max);
void rate_state_load(struct rate_state *l, int64_t tat, uint32_t cap, const int64_t *at, uint32_t n);

#endif
