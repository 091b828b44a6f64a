/*
 * hist.h - a log-linear latency histogram (HdrHistogram-like), in
 * nanoseconds.
 *
 * Values below 128 have a bucket each; above, every power of two is split
 * into 64 linear sub-buckets, so a reported value is within 1/64 (1.6 %)
 * of the true one, over the whole uint64_t range, in a fixed 30 KiB array.
 * Recording is a shift and an increment: no allocation, no locks. Each
 * load-generator thread owns its histograms and the main thread merges
 * them after the threads have been joined.
 */
#ifndef SPOOL_BENCH_HIST_H
#define SPOOL_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB * (64 - HIST_SUB_BITS + 1))

typedef struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t bucket[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
void hist_add(hist *h, uint64_t v);
void hist_merge(hist *dst, const hist *src);
/* The value at quantile q (0 < q <= 1): the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value, never above the exact maximum.
 * 0 when the histogram is empty. */
uint64_t hist_quantile(const hist *h, double q);
double hist_mean(const hist *h);

/* Bucket index of a value and a representative value of a bucket (exported
 * for the unit check in the smoke test). */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_mid(unsigned idx);

#endif
