/*
 * slot.h - where a key lives: its slot, as Redis Cluster computes it.
 *
 * slot = CRC16(key) mod 16384, CRC16/XMODEM (polynomial 0x1021, initial 0,
 * no reflection), the function Redis Cluster uses. When the key contains a
 * '{' followed later by a '}' with at least one byte between them, only
 * the bytes between the first '{' and the first '}' after it (the hash tag)
 * are hashed, so "{user:42}:session" and "{user:42}:otp" share a slot.
 *
 * A slot belongs to shard slot % shards (slot_shard). Queues, strings,
 * hashes and sorted sets all follow this rule; shard journals are laid out
 * by it, so it is part of the on-disk format (the "placement" row of the
 * journal's meta table records it, see shard.c). Ground layer: no state,
 * callable from any thread.
 */
#ifndef SPOOL_SLOT_H
#define SPOOL_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define SLOT_COUNT 16384
/* The placement rule this binary writes into the meta table. */
#define SLOT_PLACEMENT "crc16-slot"

uint16_t slot_crc16(const void *p, size_t n);
/* The slot of a key, 0..16383 (hash tags honoured). */
int slot_of(const void *key, size_t len);

/* The shortest hash tag of a slot: a string of 1 to 4 characters from
 * [0-9a-z] whose CRC16 falls in it (the first in length-then-alphabet
 * order), so "{" tag "}" hashes to slot. Written at most SLOT_TAG_MAX
 * bytes plus a NUL; returns its length. Any thread (a table built once). */
#define SLOT_TAG_MAX 4
size_t slot_tag(int slot, char out[SLOT_TAG_MAX + 1]);

static inline int slot_shard(const void *key, size_t len, int nshards)
{
    return slot_of(key, len) % nshards;
}

#endif
