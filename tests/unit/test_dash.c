/*
 * test_dash.c - the dashboard's pure modules: SHA-256 and HMAC-SHA-256
 * against FIPS 180-4 and RFC 4231 vectors, and the throughput rings
 * (rates.h): deltas from totals, counter resets, gaps, the window, the cap
 * on tracked queues and slot reuse.
 */
#include <criterion/criterion.h>

#include "rates.h"
#include "sha256.h"

#include <stdio.h>
#include <string.h>

static const char *hexof(const uint8_t *p)
{
    static char out[65];
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    return out;
}

Test(sha256, fips_vectors)
{
    uint8_t d[32];
    sha256("", 0, d);
    cr_assert_str_eq(hexof(d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256("abc", 3, d);
    cr_assert_str_eq(hexof(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(m, strlen(m), d);
    cr_assert_str_eq(hexof(d), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static char million[1000000];
    memset(million, 'a', sizeof million);
    sha256(million, sizeof million, d);
    cr_assert_str_eq(hexof(d), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, hmac_rfc4231)
{
    uint8_t d[32], key[20];
    memset(key, 0x0b, sizeof key);
    hmac_sha256(key, sizeof key, "Hi There", 8, d);
    cr_assert_str_eq(hexof(d), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
    cr_assert_str_eq(hexof(d), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    uint8_t big[131];
    memset(big, 0xaa, sizeof big); /* a key longer than the block is hashed first */
    const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_sha256(big, sizeof big, m, strlen(m), d);
    cr_assert_str_eq(hexof(d), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static struct rates_row row(const char *name, uint64_t p, uint64_t a, uint64_t f)
{
    struct rates_row r = { name, strlen(name), { p, a, f } };
    return r;
}

static uint32_t at(struct rates *r, const char *q, int64_t sec, int k)
{
    uint32_t v[RATE_NSERIES];
    rates_at(r, rates_find(r, q, q ? strlen(q) : 0), sec, v);
    return v[k];
}

Test(rates, deltas_per_second_and_total)
{
    struct rates *r = rates_new(4);
    struct rates_row a[] = { row("a", 5, 0, 0), row("b", 1, 1, 0) };
    rates_sample(r, 1000, a, 2);
    cr_assert_eq(at(r, "a", 1000, RATE_PUSHED), 5, "a queue seen first counts from 0");
    struct rates_row b[] = { row("a", 9, 2, 1), row("b", 1, 1, 0) };
    rates_sample(r, 1001, b, 2);
    cr_assert_eq(at(r, "a", 1001, RATE_PUSHED), 4);
    cr_assert_eq(at(r, "a", 1001, RATE_ACKED), 2);
    cr_assert_eq(at(r, "a", 1001, RATE_FAILED), 1);
    cr_assert_eq(at(r, NULL, 1000, RATE_PUSHED), 6);
    cr_assert_eq(at(r, NULL, 1001, RATE_PUSHED), 4);
    cr_assert_eq(at(r, "b", 1001, RATE_PUSHED), 0);
    cr_assert_eq(rates_last(r), 1001);
    cr_assert_eq(rates_first(r), 1000);
    rates_free(r);
}

Test(rates, a_queue_that_comes_back_counts_from_zero)
{
    struct rates *r = rates_new(4);
    struct rates_row a[] = { row("a", 10, 0, 0) };
    rates_sample(r, 10, a, 1);
    rates_sample(r, 11, NULL, 0); /* removed */
    struct rates_row b[] = { row("a", 3, 0, 0) };
    rates_sample(r, 12, b, 1);
    cr_assert_eq(at(r, "a", 12, RATE_PUSHED), 3);
    struct rates_row c[] = { row("a", 2, 0, 0) }; /* lower than before: a reset */
    rates_sample(r, 13, c, 1);
    cr_assert_eq(at(r, "a", 13, RATE_PUSHED), 2);
    rates_free(r);
}

Test(rates, gaps_are_zero_and_the_window_is_an_hour)
{
    struct rates *r = rates_new(2);
    struct rates_row a[] = { row("a", 1, 0, 0) };
    rates_sample(r, 100, a, 1);
    struct rates_row b[] = { row("a", 2, 0, 0) };
    rates_sample(r, 105, b, 1); /* a late round: its delta lands at 105 */
    for (int64_t t = 101; t < 105; t++)
        cr_assert_eq(at(r, "a", t, RATE_PUSHED), 0, "second %lld", (long long)t);
    cr_assert_eq(at(r, "a", 105, RATE_PUSHED), 1);
    struct rates_row c[] = { row("a", 3, 0, 0) };
    rates_sample(r, 105 + RATES_SECONDS, c, 1); /* the ring wrapped: slot 105 is reused */
    cr_assert_eq(at(r, "a", 105 + RATES_SECONDS, RATE_PUSHED), 1);
    cr_assert_eq(at(r, "a", 105, RATE_PUSHED), 0, "a second older than the window reads 0");
    cr_assert_eq(at(r, "a", 106 + RATES_SECONDS, RATE_PUSHED), 0, "the future reads 0");
    rates_free(r);
}

Test(rates, the_number_of_queue_series_is_capped)
{
    struct rates *r = rates_new(2);
    struct rates_row a[] = { row("a", 1, 0, 0), row("b", 1, 0, 0), row("c", 1, 0, 0) };
    rates_sample(r, 50, a, 3);
    cr_assert_geq(rates_find(r, "a", 1), 1);
    cr_assert_geq(rates_find(r, "b", 1), 1);
    cr_assert_eq(rates_find(r, "c", 1), -1, "a third queue got a series past the cap of 2");
    cr_assert(rates_overflowed(r));
    cr_assert_eq(at(r, NULL, 50, RATE_PUSHED), 3, "untracked queues still count in the total");
    size_t mem = rates_memory(r);
    cr_assert_lt(mem, 4 * sizeof(uint32_t) * RATE_NSERIES * RATES_SECONDS, "memory %zu", mem);
    /* b stays busy, a goes idle for a whole window: c may take a's series. */
    struct rates_row b[] = { row("a", 1, 0, 0), row("b", 2, 0, 0), row("c", 2, 0, 0) };
    rates_sample(r, 50 + RATES_SECONDS, b, 3);
    cr_assert_eq(rates_find(r, "a", 1), -1, "the idle queue kept its series");
    cr_assert_geq(rates_find(r, "c", 1), 1);
    cr_assert_eq(at(r, "c", 50 + RATES_SECONDS, RATE_PUSHED), 1);
    rates_free(r);
}
