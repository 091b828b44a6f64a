/*
 * claim.h - the token that makes a blocking pop over several shards safe.
 *
 * A BLPOP/BRPOP parked on queues of several shards has one claim, shared by
 * the waiters it leaves in each shard and by the I/O thread. Whoever first
 * moves the claim from OPEN to TAKEN (compare-and-swap) owns the outcome:
 * a shard that has a job for it, a shard whose deadline fired (nil reply),
 * or the I/O thread when the client disconnects. Everyone else just drops
 * their waiter. So a job is taken from a queue only by the winner: a pop can
 * never deliver twice, and never take a job for a client that is gone
 * (the one remaining race, a disconnect after the win, is handled by
 * returning the job; see msg.h).
 *
 * waiters[k] is touched only by shard k (its own waiter, for O(1) cancel).
 * The claim is freed when the last reference is released.
 */
#ifndef SPOOL_CLAIM_H
#define SPOOL_CLAIM_H

#include <stdatomic.h>
#include <stdbool.h>

enum { CLAIM_OPEN = 0, CLAIM_TAKEN = 1 };

struct waiter;

struct claim {
    _Atomic int state;
    _Atomic int refs;
    int nshards;
    void *parked;               /* another kind of parked request (JOB.WAIT, cmd_result.c):
                                   touched only by the one shard it is parked on */
    struct waiter *waiters[];
};

struct claim *claim_new(int nshards, int refs);
static inline bool claim_take(struct claim *c)
{
    int open = CLAIM_OPEN;
    return atomic_compare_exchange_strong(&c->state, &open, CLAIM_TAKEN);
}
static inline bool claim_is_open(struct claim *c)
{
    return atomic_load(&c->state) == CLAIM_OPEN;
}
void claim_release(struct claim *c);

#endif
