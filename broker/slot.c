/*
 * slot.c - CRC16/XMODEM and hash tags (see slot.h). Table-driven CRC: the
 * table is computed once from the polynomial, not copied from anywhere.
 */
#include "slot.h"

#include <pthread.h>
#include <string.h>

static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
        crc_table[i] = c;
    }
}

uint16_t slot_crc16(const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *s = p;
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ s[i]) & 0xff]);
    return crc;
}

int slot_of(const void *key, size_t len)
{
    const char *k = key;
    const char *open = memchr(k, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - k) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return slot_crc16(open + 1, (size_t)(close - open - 1)) & (SLOT_COUNT - 1);
    }
    return slot_crc16(k, len) & (SLOT_COUNT - 1);
}

/* ------------------------------------------------------------ slot tags */

static char tags[SLOT_COUNT][SLOT_TAG_MAX + 1];
static pthread_once_t tags_once = PTHREAD_ONCE_INIT;

static const char tag_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Every string of length 1..4 over the alphabet, shortest first, fills
 * the slots it hashes to that have no tag yet (36^4 covers all 16384). */
static void tags_init(void)
{
    size_t left = SLOT_COUNT, base = sizeof tag_alphabet - 1;
    char s[SLOT_TAG_MAX + 1];
    for (size_t len = 1; len <= SLOT_TAG_MAX && left; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= base;
        for (size_t n = 0; n < total && left; n++) {
            size_t v = n;
            for (size_t i = len; i-- > 0; v /= base)
                s[i] = tag_alphabet[v % base];
            s[len] = '\0';
            int slot = slot_crc16(s, len) & (SLOT_COUNT - 1);
            if (!tags[slot][0]) {
                memcpy(tags[slot], s, len + 1);
                left--;
            }
        }
    }
}

size_t slot_tag(int slot, char out[SLOT_TAG_MAX + 1])
{
    pthread_once(&tags_once, tags_init);
    const char *t = tags[slot & (SLOT_COUNT - 1)];
    size_t n = strlen(t);
    memcpy(out, t, n + 1);
    return n;
}
