/*
 * sha1.c - SHA-1 (FIPS 180-1), written from the standard: 64-byte blocks,
 * 80 rounds, big-endian words. See sha1.h.
 */
#include "sha1.h"

#include <stdint.h>
#include <string.h>

struct sha1 {
    uint32_t h[5];
    uint64_t bytes;
    uint8_t buf[64];
    size_t used;
};

static uint32_t rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static void block(struct sha1 *s, const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
}

static void update(struct sha1 *s, const uint8_t *p, size_t n)
{
    s->bytes += n;
    while (n > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->buf + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            block(s, s->buf);
            s->used = 0;
        }
    }
}

void sha1_hex(const void *data, size_t len, char hex[SHA1_HEX + 1])
{
    struct sha1 s = { { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 }, 0, { 0 }, 0 };
    update(&s, data, len);
    uint64_t bits = s.bytes * 8;
    uint8_t pad = 0x80, zero = 0, lenbuf[8];
    update(&s, &pad, 1);
    while (s.used != 56)
        update(&s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
    update(&s, lenbuf, 8);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 8; j++)
            hex[8 * i + j] = digits[(s.h[i] >> (28 - 4 * j)) & 0xf];
    hex[SHA1_HEX] = '\0';
}
