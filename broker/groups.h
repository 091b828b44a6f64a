/*
 * groups.h - fair groups inside one queue: each group's ready jobs in
 * serving order, and a ring of the groups that have ready jobs, served
 * round-robin (SQS fair queues, BullMQ groups).
 *
 * A job belongs to the group named by its GROUP key (JOB.PUSH ... GROUP
 * key, or the queue's group-from field of a JSON payload); a job without
 * one belongs to the default group, whose key is empty. So a queue that
 * never sees a group key has exactly one group and serves exactly as a
 * plain priority list.
 *
 * Data: a job embeds a struct gnode. While the job is ready, the gnode is
 * linked into its group's list, which is kept in serving order: higher
 * priority first, then higher list position first (the queue's order,
 * see queue.h), so the head is what the group serves next and the tail
 * what a left pop takes. Inserting is O(1) for the usual cases (a job
 * pushed at either end of its priority, or recovery in ascending order)
 * and a walk otherwise. A reserved job keeps gnode.g set and counts in
 * its group's nreserved (group-concurrency). The ring holds every group
 * with nready > 0; ring points at the group to be tried first next time.
 *
 * Lifetime: a group exists while it has ready or reserved jobs. With a
 * group rate, a group that just emptied lingers on the idle list until
 * its limiter state no longer matters (linger_until), so that draining a
 * group and pushing to it again cannot beat its rate; groups_sweep()
 * frees those.
 *
 * No threads here: the table lives in struct queue and is touched only by
 * the shard that owns the queue. Nothing here knows struct job (flow.c
 * maps gnodes to jobs), so this file depends on nothing but libc.
 */
#ifndef SPOOL_GROUPS_H
#define SPOOL_GROUPS_H

#include "rate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUP_KEY_MAX 256

struct group;

struct gnode {
    struct gnode *prev, *next;   /* in the group's ready list */
    struct group *g;             /* the job's group while ready or reserved */
    int64_t pos;                 /* copies of the job's order key */
    int16_t pri;
};

struct group {
    struct group *hnext;             /* table chain */
    struct group *rprev, *rnext;     /* ring of groups with ready jobs */
    struct group *inext, *iprev;     /* idle list (lingering, see above) */
    struct gnode *head, *tail;       /* ready jobs, serving order */
    size_t nready, nreserved;
    uint64_t delivered;              /* deliveries since the group appeared */
    struct rate_state lim;              /* group-rate state (rate.h) */
    int64_t linger_until;            /* us: on the idle list until then */
    bool in_ring, idle;
    size_t len;
    char key[];
};

struct gtable {
    struct group **b;
    size_t nb, n;
    struct group *ring;              /* next group to try */
    size_t nring;
    struct group *idle_head, *idle_tail;
};

/* The group of key (len 0: the default group), created when missing. */
struct group *groups_get(struct gtable *t, const char *key, size_t len);
struct group *groups_find(const struct gtable *t, const char *key, size_t len);

/* Links n (ready now) into g's list by (pri, pos); joins the ring. */
void groups_ready_add(struct gtable *t, struct group *g, struct gnode *n, int16_t pri, int64_t pos);
/* Unlinks a ready n; leaves the ring when its group has no ready job.
 * n->g stays set (the caller holds or drops it). */
void groups_ready_remove(struct gtable *t, struct gnode *n);
/* The job left ready/reserved for good: frees its group when nothing
 * keeps it (until_us > now_us: keep it on the idle list until then, while
 * its group-rate state can still hold a delivery back). */
void groups_drop(struct gtable *t, struct gnode *n, int64_t until_us, int64_t now_us);
/* Frees lingering groups whose linger_until has passed. */
void groups_sweep(struct gtable *t, int64_t now_us);
/* The ring moves past g (it was just served). */
void groups_served(struct gtable *t, struct group *g);
/* Frees every group (the jobs are freed by the caller). */
void groups_clear(struct gtable *t);
void groups_each(const struct gtable *t, void (*fn)(void *arg, const struct group *g), void *arg);

#endif
