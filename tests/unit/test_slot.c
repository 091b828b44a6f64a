/*
 * test_slot.c - key slots as Redis Cluster computes them (broker/slot.c):
 * CRC16/XMODEM's check value, slots documented by Redis, and hash tags.
 */
#include <criterion/criterion.h>

#include "slot.h"

#include <string.h>

static int slot(const char *k)
{
    return slot_of(k, strlen(k));
}

Test(slot, crc16_xmodem_check_value)
{
    cr_assert_eq(slot_crc16("123456789", 9), 0x31C3);
}

Test(slot, slots_as_redis_documents_them)
{
    cr_assert_eq(slot("somekey"), 11058);
    cr_assert_eq(slot("foo{hash_tag}"), 2515);
    cr_assert_eq(slot("hash_tag"), 2515);
}

Test(slot, hash_tags)
{
    cr_assert_eq(slot("{user:42}:session"), slot("user:42"));
    cr_assert_eq(slot("{user:42}:otp"), slot("{user:42}:session"));
    cr_assert_eq(slot("{emails}:sent"), slot("emails"));
    /* the first { and the first } after it; an empty tag hashes the whole key */
    cr_assert_eq(slot("{a}{b}"), slot("a"));
    cr_assert_eq(slot("{}x"), slot_crc16("{}x", 3) & 16383);
    cr_assert_eq(slot("x{y"), slot_crc16("x{y", 3) & 16383);
    cr_assert_eq(slot("{{a}}"), slot("{a"));
}

Test(slot, shard_of_a_slot)
{
    for (int n = 1; n <= 8; n++)
        cr_assert_eq(slot_shard("somekey", 7, n), 11058 % n);
}
