/*
 * keeper.c - the lease keeper of a spool_worker: one thread with its own
 * connection that keeps the leases of running jobs alive and, at the stop
 * deadline, hands back the jobs whose handlers have not returned.
 *
 * Each busy slot has a next_touch time: a third of the lease after the job
 * started or was last touched. The keeper sleeps until the earliest one (or
 * until woken), copies the receipt out under the lock, TOUCHes it with the
 * lock released, and applies the outcome only if the slot still holds the
 * same job (gen). A refused TOUCH (-STALE / -NOJOB) marks the job lost: it
 * may be running elsewhere, so its result is not sent. A TOUCH that failed
 * for want of a connection is retried soon (the client reconnects on the
 * next call), so a broker restart shorter than the lease loses nothing.
 */
#include "keeper.h"

#include <stdio.h>
#include <string.h>

#define TOUCH_RETRY_MS 250 /* after a TOUCH that failed on the network */

/* ================================================================= slots */

void sdk_slot_begin(spool_worker *w, slot *s, const spool_job *job)
{
    long long lease = job->lease_ms > 0 ? job->lease_ms : w->cfg.lease_ms > 0 ? w->cfg.lease_ms : 30000;
    long long now = sdk_mono_ms();
    pthread_mutex_lock(&w->mu);
    snprintf(s->receipt, sizeof s->receipt, "%s", job->receipt);
    s->lease_ms = lease;
    s->lease_end = now + lease;
    s->next_touch = now + lease / 3;
    s->gen++;
    atomic_store(&s->lost, false);
    s->phase = SLOT_RUNNING;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool sdk_slot_handler_done(spool_worker *w, slot *s)
{
    pthread_mutex_lock(&w->mu);
    bool handed = s->phase == SLOT_HANDED;
    if (!handed)
        s->phase = SLOT_FINISHING;
    pthread_mutex_unlock(&w->mu);
    return !handed;
}

void sdk_slot_end(spool_worker *w, slot *s)
{
    pthread_mutex_lock(&w->mu);
    s->phase = SLOT_IDLE;
    s->receipt[0] = 0;
    s->gen++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ================================================================ keeper */

typedef struct work {
    enum { W_NONE, W_TOUCH, W_HANDBACK } kind;
    int idx;
    unsigned gen;
    long long lease_ms;
    char receipt[SPOOL_ID_MAX];
} work;

/* Picks what to do next, or sleeps until something is due. mu held. */
static bool next_work_locked(spool_worker *w, work *out)
{
    long long now = sdk_mono_ms(), earliest = -1;
    for (int i = 0; i < w->cfg.threads; i++) {
        slot *s = &w->slots[i];
        if (w->handback && s->phase == SLOT_RUNNING) {
            *out = (work){ W_HANDBACK, i, s->gen, s->lease_ms, "" };
            memcpy(out->receipt, s->receipt, sizeof out->receipt);
            s->phase = SLOT_HANDED;
            return true;
        }
        if (s->phase != SLOT_RUNNING && s->phase != SLOT_FINISHING)
            continue;
        if (atomic_load(&s->lost))
            continue;
        if (s->next_touch <= now) {
            *out = (work){ W_TOUCH, i, s->gen, s->lease_ms, "" };
            memcpy(out->receipt, s->receipt, sizeof out->receipt);
            return true;
        }
        if (earliest < 0 || s->next_touch < earliest)
            earliest = s->next_touch;
    }
    if (w->keeper_quit)
        return false;
    sdk_wait_locked(w, earliest < 0 ? now + 60000 : earliest);
    out->kind = W_NONE;
    return true;
}

static void touch_one(spool_worker *w, spool_client *c, const work *wk)
{
    long long until = 0;
    int rc = spool_touch(c, wk->receipt, wk->lease_ms, &until);
    long long now = sdk_mono_ms();
    pthread_mutex_lock(&w->mu);
    slot *s = &w->slots[wk->idx];
    bool same = s->gen == wk->gen;
    if (same && rc == 0) {
        s->next_touch = now + wk->lease_ms / 3;
        s->lease_end = now + wk->lease_ms;
    } else if (same && (rc == SPOOL_ESTALE || rc == SPOOL_ENOJOB)) {
        atomic_store(&s->lost, true);
    } else if (same) {
        s->next_touch = now + TOUCH_RETRY_MS;
    }
    pthread_mutex_unlock(&w->mu);
    if (rc == 0) {
        atomic_fetch_add(&w->n_touches, 1);
        w->host.log(w, SPOOL_LOG_DEBUG, "touched %s for %lld ms", wk->receipt, wk->lease_ms);
    } else if (same) {
        w->host.log(w, rc == SPOOL_ESTALE || rc == SPOOL_ENOJOB ? SPOOL_LOG_WARN : SPOOL_LOG_DEBUG,
                   "touch %s failed: %s", wk->receipt, spool_errmsg(c));
    }
}

static void hand_back(spool_worker *w, spool_client *c, const work *wk)
{
    int rc = spool_nack(c, wk->receipt, 0, "worker stopping: handed back at the stop deadline", 0);
    if (rc >= 0) {
        atomic_fetch_add(&w->n_handed, 1);
        w->host.log(w, SPOOL_LOG_WARN, "handed back %s at the stop deadline", wk->receipt);
    } else {
        w->host.log(w, SPOOL_LOG_WARN, "could not hand back %s: %s (its lease will expire)",
                   wk->receipt, spool_errmsg(c));
    }
}

void *sdk_keeper_main(void *arg)
{
    spool_worker *w = arg;
    spool_client *c = NULL;
    if (w->host.client(w, "keeper", 0, &c) < 0) {
        spool_close(c);
        w->host.log(w, SPOOL_LOG_ERROR, "lease keeper: cannot create a client");
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    for (;;) {
        work wk;
        if (!next_work_locked(w, &wk))
            break;
        if (wk.kind == W_NONE)
            continue;
        pthread_mutex_unlock(&w->mu);
        if (wk.kind == W_TOUCH)
            touch_one(w, c, &wk);
        else
            hand_back(w, c, &wk);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    spool_close(c);
    return NULL;
}
