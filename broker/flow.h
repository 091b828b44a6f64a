/*
 * flow.h - flow control of one queue: which ready job it delivers next,
 * under its rate and concurrency limits and those of its groups, served
 * round-robin between groups.
 *
 * Called by the shard that owns the queue (shard.c), never elsewhere. The
 * shard moves jobs in and out of the ready list through flow_ready_*, so
 * the queue's list (queue.h: LRANGE, QUEUE.PEEK, recovery order) and the
 * group lists (groups.h: serving) always hold the same jobs, and marks
 * reserved jobs with flow_hold/flow_unhold, so that group-concurrency
 * counts them. A job that ends up neither ready nor reserved is settled
 * (flow_settle), which lets its group go.
 *
 * What the limits count (docs/protocol.md has the user's version):
 * - rate, group-rate: deliveries, by JOB.RESERVE and by list pops alike,
 *   at most N in any interval of the period (rate.h). A delivery whose
 *   client vanished and whose job comes back still counted.
 * - concurrency, group-concurrency: jobs in state reserved. A list pop is
 *   a delivery that finishes at once: it is let through only while a slot
 *   is free and does not keep it.
 * flow_next() answers NULL when the limits hold everything back, and says
 * through *wake_ms when a rate limit lets the next delivery through (0
 * when only a concurrency slot can free it: an ack, nack, lease expiry or
 * delete does, and the shard serves the queue's waiters then).
 */
#ifndef SPOOL_FLOW_H
#define SPOOL_FLOW_H

#include "queue.h"

#include <stdbool.h>
#include <stdint.h>

/* The group key and the queue order of j must be set (j->group, j->pos
 * is set here by queue_ready_add). */
void flow_ready_add(struct queue *q, struct job *j, bool left);
void flow_ready_insert_pos(struct queue *q, struct job *j);   /* recovery */
void flow_ready_remove(struct queue *q, struct job *j);
/* j becomes / stops being reserved. */
void flow_hold(struct queue *q, struct job *j);
void flow_unhold(struct queue *q, struct job *j);
/* j is now in neither the ready list nor reserved. */
void flow_settle(struct queue *q, struct job *j, int64_t now_ms);

/* The job q delivers next (to a reserve, or a list pop from the left or
 * right end), or NULL; see above for *wake_ms. */
struct job *flow_next(struct queue *q, bool left, int64_t now_ms, int64_t *wake_ms);
/* j (from flow_next) is being delivered now: the limiters count it. */
void flow_took(struct queue *q, struct job *j, int64_t now_ms);

/* True when q has any limit that can hold a ready job back. */
bool flow_limited(const struct queue *q);

/* The group key a push gets from the payload (the queue's group-from
 * field), written to buf; returns its length, or -1 for none. */
int flow_group_from(const struct queue *q, const char *payload, size_t len, char *buf, size_t cap);

#endif
