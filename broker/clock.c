/*
 * clock.c - real clocks plus the fake-clock seam (see clock.h).
 */
#include "clock.h"

#include <stddef.h>
#include <time.h>

static clock_source_fn fake_fn;
static void *fake_arg;

void clock_set_source(clock_source_fn fn, void *arg)
{
    fake_fn = fn;
    fake_arg = arg;
}

static int64_t read_clock(clockid_t id, int64_t div)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * (1000000000 / div) + ts.tv_nsec / div;
}

int64_t clock_now_ms(void)
{
    if (fake_fn)
        return fake_fn(fake_arg);
    return read_clock(CLOCK_REALTIME, 1000000);
}

int64_t clock_mono_ms(void)
{
    if (fake_fn)
        return fake_fn(fake_arg);
    return read_clock(CLOCK_MONOTONIC, 1000000);
}

int64_t clock_mono_us(void)
{
    if (fake_fn)
        return fake_fn(fake_arg) * 1000;
    return read_clock(CLOCK_MONOTONIC, 1000);
}
