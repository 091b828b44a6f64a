/*
 * dtimer.c - a deadline heap driven by one timer event (see dtimer.h).
 */
#include "dtimer.h"

#include "clock.h"

#include <errno.h>
#include <event2/event.h>

#define DTIMER_BATCH 10000 /* nodes handled per firing, so a burst cannot starve the inbox */

static void dtimer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dtimer *d = arg;
    d->at = 0;
    int64_t now = clock_now_ms();
    struct tnode *t;
    int n = 0;
    while (n++ < DTIMER_BATCH && (t = theap_min(&d->heap)) && t->when <= now) {
        theap_remove(&d->heap, t);
        d->fire(d->arg, t);
    }
    if (d->after)
        d->after(d->arg);
    dtimer_rearm(d);
}

int dtimer_init(struct dtimer *d, struct event_base *base, void (*fire)(void *, struct tnode *),
                void (*after)(void *), void *arg)
{
    theap_init(&d->heap);
    d->fire = fire;
    d->after = after;
    d->arg = arg;
    d->at = 0;
    d->ev = base ? evtimer_new(base, dtimer_cb, d) : NULL;
    return !base || d->ev ? 0 : -ENOMEM;
}

void dtimer_free(struct dtimer *d)
{
    if (d->ev)
        event_free(d->ev);
    d->ev = NULL;
    theap_free(&d->heap);
}

void dtimer_add(struct dtimer *d, struct tnode *t, int64_t when)
{
    theap_remove(&d->heap, t);
    t->when = when;
    theap_add(&d->heap, t);
}

void dtimer_remove(struct dtimer *d, struct tnode *t)
{
    theap_remove(&d->heap, t);
}

void dtimer_rearm(struct dtimer *d)
{
    if (!d->ev)
        return;
    struct tnode *t = theap_min(&d->heap);
    if (!t) {
        if (d->at)
            event_del(d->ev);
        d->at = 0;
        return;
    }
    if (d->at == t->when)
        return;
    int64_t delta = t->when - clock_now_ms();
    if (delta < 0)
        delta = 0;
    struct timeval tv = { (time_t)(delta / 1000), (suseconds_t)((delta % 1000) * 1000) };
    event_add(d->ev, &tv);
    d->at = t->when;
}
