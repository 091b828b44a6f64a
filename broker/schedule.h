/*
 * schedule.h - durable schedules: a named spec (cron.h) that pushes one job
 * into its queue at every tick.
 *
 * A schedule lives on the shard of its target queue, in memory (struct
 * sched, a list per shard plus a deadline heap with its own timer) and in
 * the journal's `schedules` table. A tick runs on that shard: the job
 * pushes and the schedule's new next_at / last_tick are written in the
 * same turn, so they commit in one transaction: after kill -9 either both
 * are on disk or neither, and the tick is neither lost nor run twice.
 *
 * When the timer fires, the ticks due are those from next_at up to now.
 * CATCHUP decides which of them push a job:
 *   none  only a tick at most SCHED_GRACE_MS late (the others are skipped)
 *   one   the latest due tick (the older ones are skipped)
 *   all   every due tick, oldest first (at most SCHED_BURST per turn; the
 *         rest follow in the next turns)
 * With UNIQUE, a tick whose previous job is still unfinished is skipped.
 * Every job a schedule pushes carries the unique key
 * "sched:<name>:<tick unix ms>", which names its tick.
 *
 * Everything here runs on the owning shard thread.
 */
#ifndef SPOOL_SCHEDULE_H
#define SPOOL_SCHEDULE_H

#include "cron.h"
#include "theap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_GRACE_MS 1000
#define SCHED_BURST 1000

enum sched_catchup { CATCHUP_NONE = 0, CATCHUP_ONE = 1, CATCHUP_ALL = 2 };

struct shard;
struct shard_ext;

struct sched {
    struct tnode timer;          /* first member; armed unless paused */
    struct sched *next;
    char *name, *queue, *spec, *tz_name, *payload;
    size_t namelen, qlen, plen;
    struct cron_spec cron;
    struct cron_tz *tz;
    int16_t priority;
    int64_t retries;             /* -1: the queue's default */
    bool unique, paused;
    int catchup;                 /* enum sched_catchup */
    int64_t next_at, last_tick, created_at, runs, skipped;
    uint64_t last_job;
};

/* What SCHED.SET asks for (strings not owned). */
struct sched_def {
    const char *name, *queue, *spec, *tz, *payload;
    size_t namelen, qlen, plen;
    int16_t priority;
    int64_t retries;
    bool unique;
    int catchup;
};

extern const struct shard_ext schedule_ext;

/* Checks a definition without touching any shard (the I/O thread calls it);
 * -EINVAL with a sentence in err. */
int schedule_check(const struct sched_def *d, char *err, size_t cap);
/* Creates or replaces the schedule d->name on this shard (which owns
 * d->queue). Returns 0 or -EINVAL with err. */
int schedule_set(struct shard *s, const struct sched_def *d, char *err, size_t cap);
struct sched *schedule_find(struct shard *s, const char *name, size_t len);
/* Deletes it; false when this shard has no such schedule. */
bool schedule_del(struct shard *s, const char *name, size_t len);
void schedule_pause(struct shard *s, struct sched *sc, bool paused);
/* A schedule moved here with its slot (schedule_set made it): takes the
 * state it had there (pause, next tick, history, creation), journaled. */
void schedule_keep_state(struct shard *s, struct sched *sc, const struct sched *was);
/* Calls fn for each schedule of this shard (of queue q, when q != NULL). */
void schedule_each(struct shard *s, const char *q, size_t qlen, void (*fn)(void *, struct sched *), void *arg);
const char *schedule_catchup_name(int c);

#endif
