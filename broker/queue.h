/*
 * queue.h - the in-memory queue core: jobs, the ready deque, queue tables
 * and the per-queue FIFO of blocked waiters.
 *
 * A queue is a Redis list of jobs: LPUSH adds at the left (head), RPUSH at
 * the right (tail); RPOP/BRPOP take from the right, so LPUSH + BRPOP is
 * FIFO exactly as in Redis. Index 0 of the deque is the leftmost element.
 *
 * Owned by exactly one shard thread (shard = hash(name) % shards); nothing
 * here locks. A queue exists in its shard's table while it has jobs or
 * waiters; queue_maybe_free() drops it once it has neither.
 *
 * Waiters: every blocked pop parked on a queue is a struct wlink in that
 * queue's FIFO. A link knows its list, so unlinking is O(1).
 */
#ifndef SPOOL_QUEUE_H
#define SPOOL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct job {
    uint64_t id;       /* unique per shard, increasing in creation order */
    uint32_t len;      /* payload length */
    char *payload;     /* owned; NUL-terminated for convenience */
};

/* Makes a job owning a copy of p[0..n). */
struct job *job_new(uint64_t id, const void *p, size_t n);
void job_free(struct job *j);

/* A ring buffer of job pointers. */
struct jobq {
    struct job **ring;
    size_t head, n, cap; /* cap is a power of two */
};

void jobq_push_left(struct jobq *d, struct job *j);
void jobq_push_right(struct jobq *d, struct job *j);
struct job *jobq_pop_left(struct jobq *d);   /* NULL when empty */
struct job *jobq_pop_right(struct jobq *d);
static inline struct job *jobq_at(const struct jobq *d, size_t i)
{
    return d->ring[(d->head + i) & (d->cap - 1)];
}
void jobq_clear(struct jobq *d);             /* frees every job */

struct waiter;
struct wlink {
    struct wlink *prev, *next;
    struct waiter *w;
    struct queue *q;
};

struct queue {
    char *name;
    size_t namelen;
    struct queue *hnext;     /* table chain */
    struct jobq ready;
    struct wlink *wait_head, *wait_tail;
    size_t nwaiters;
    struct queue *ready_next; /* in the shard's list of queues to serve */
    bool in_ready_list;
    uint64_t pushed_total;
    uint64_t popped_total;
};

void queue_wait_append(struct queue *q, struct wlink *l);
void queue_wait_unlink(struct wlink *l);

/* A hash table of queues by name. */
struct qtable {
    struct queue **b;
    size_t nb, n;
};

void qtable_init(struct qtable *t);
/* Frees every queue and its jobs (waiters must be gone already). */
void qtable_free(struct qtable *t);
struct queue *qtable_find(const struct qtable *t, const char *name, size_t len);
/* Finds or creates. */
struct queue *qtable_get(struct qtable *t, const char *name, size_t len);
/* Removes and frees q if it has no jobs and no waiters; returns true if freed. */
bool qtable_maybe_free(struct qtable *t, struct queue *q);
/* Iteration: calls fn for each queue (fn must not remove queues). */
void qtable_each(const struct qtable *t, void (*fn)(void *arg, struct queue *q), void *arg);

/* Redis LRANGE index normalisation: fills [*from, *to] (inclusive) and
 * returns false when the range is empty. */
bool queue_range(size_t n, long long start, long long stop, size_t *from, size_t *to);

#endif
