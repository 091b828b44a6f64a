/*
 * keeper.h - the lease keeper of a spool_worker (keeper.c), as the worker
 * threads (worker.c) use it. The keeper calls nothing of worker.c: it
 * reaches the worker only through w->host (worker_shared.h).
 */
#ifndef SPOOL_KEEPER_H
#define SPOOL_KEEPER_H

#include "worker_shared.h"

#include <stdbool.h>

/* The keeper thread's main (arg: the spool_worker). */
void *sdk_keeper_main(void *arg);
/* A job is starting on slot s: register it for touches. */
void sdk_slot_begin(spool_worker *w, slot *s, const spool_job *job);
/* The handler returned: RUNNING -> FINISHING. False when the keeper has
 * handed the job back (the result must be dropped). */
bool sdk_slot_handler_done(spool_worker *w, slot *s);
/* The result was sent (or given up): back to idle. */
void sdk_slot_end(spool_worker *w, slot *s);

#endif
