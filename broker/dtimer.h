/*
 * dtimer.h - a deadline heap with one libevent timer of its own, for a
 * feature that keeps deadlines on a shard's event_base next to the shard's
 * own heap (JOB.WAIT timeouts in cmd_result.c, schedule ticks in schedule.c,
 * removal of finished batches in batch.c).
 *
 * dtimer_add/remove change the heap; dtimer_rearm points the one timer at
 * the earliest deadline (call it after changes). When the timer fires,
 * every due node is taken out of the heap and handed to fire(), then
 * after() runs once (the shard ends its turn there: shard_tick). Nodes are
 * owned by the caller. Single-threaded: the owning shard thread only.
 */
#ifndef SPOOL_DTIMER_H
#define SPOOL_DTIMER_H

#include "theap.h"

struct event_base;
struct event;

struct dtimer {
    struct theap heap;
    struct event *ev;
    int64_t at;                                   /* when ev fires, 0 = not armed */
    void (*fire)(void *arg, struct tnode *t);
    void (*after)(void *arg);
    void *arg;
};

int dtimer_init(struct dtimer *d, struct event_base *base, void (*fire)(void *, struct tnode *),
                void (*after)(void *), void *arg);
void dtimer_free(struct dtimer *d);
void dtimer_add(struct dtimer *d, struct tnode *t, int64_t when); /* re-arms t if armed */
void dtimer_remove(struct dtimer *d, struct tnode *t);
void dtimer_rearm(struct dtimer *d);

#endif
