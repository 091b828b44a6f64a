/*
 * rates.h - throughput per second over the last hour, per queue and in
 * total, for the dashboard's charts.
 *
 * The shards count totals per queue since the process started (pushed,
 * acked, retried, ...). Once a second the main thread gathers them (the
 * same admin-stats message /metrics uses) and hands the round to
 * rates_sample(): this module turns totals into per-second figures by
 * comparing each queue with its figure of the previous round, and keeps
 * them in ring buffers of RATES_SECONDS seconds, so a chart is full the
 * moment the page opens.
 *
 * Memory is bounded: the total series plus at most max_queues queue
 * series of RATES_SECONDS x RATE_NSERIES x 4 bytes (43,200 bytes each, so
 * 64 queues cost 2.8 MB), plus the previous round (one record per queue).
 * A queue gets a series when it first shows activity and a slot is free
 * or held by a queue idle for a whole window; queues beyond the cap still
 * count in the total (rates_overflowed() says it happened).
 *
 * Rules for the figures:
 * - a queue seen for the first time counts its totals from 0 (counters
 *   start with the process, and the sampler starts with it);
 * - a total lower than last round's (a queue was removed and came back)
 *   counts from 0 again;
 * - a queue removed between two rounds loses the counts of its last
 *   second (the shards forget a queue's totals with the queue);
 * - a late round puts its deltas in the second it ran.
 *
 * No threads, no I/O: the caller (dash.c, main thread) owns the struct.
 * Rows passed to rates_sample() must be sorted as text_name_cmp sorts
 * (memcmp of the common prefix, then shorter first).
 */
#ifndef SPOOL_RATES_H
#define SPOOL_RATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATES_SECONDS 3600
#define RATES_MAX_QUEUES 64

enum rate_series { RATE_PUSHED, RATE_ACKED, RATE_FAILED, RATE_NSERIES };

struct rates_row {
    const char *name;
    size_t len;
    uint64_t v[RATE_NSERIES]; /* totals since the process started */
};

struct rates;

struct rates *rates_new(int max_queues);
void rates_free(struct rates *r);

/* One round of totals taken at Unix second now_s (rows sorted, see above). */
void rates_sample(struct rates *r, int64_t now_s, const struct rates_row *rows, size_t n);

/* The second of the last round (0 before the first), and of the first. */
int64_t rates_last(const struct rates *r);
int64_t rates_first(const struct rates *r);
/* Series index of a queue: 0 is the total; NULL name = the total; -1 when
 * the queue has no series. */
int rates_find(const struct rates *r, const char *name, size_t len);
/* Figures of series `idx` for second `sec`; zeros outside the window. */
void rates_at(const struct rates *r, int idx, int64_t sec, uint32_t out[RATE_NSERIES]);
/* True once a queue could not get a series because all were taken. */
bool rates_overflowed(const struct rates *r);
/* Bytes held, for the server page. */
size_t rates_memory(const struct rates *r);

#endif
