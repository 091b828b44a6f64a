/*
 * schedule.c - durable schedules on their queue's shard (see schedule.h).
 */
#include "schedule.h"

#include "clock.h"
#include "dtimer.h"
#include "jext.h"
#include "log.h"
#include "events.h"
#include "queue.h"
#include "resp.h"
#include "shard.h"
#include "textfmt.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scheds {
    struct sched *head;
    size_t n;
    struct dtimer timer;
};

static const char *const catchup_names[] = { "none", "one", "all" };

const char *schedule_catchup_name(int c)
{
    return c >= 0 && c <= 2 ? catchup_names[c] : "one";
}

static char *dup_n(const char *p, size_t n)
{
    char *s = xmalloc(n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void sched_free(struct sched *sc)
{
    free(sc->name);
    free(sc->queue);
    free(sc->spec);
    free(sc->tz_name);
    free(sc->payload);
    cron_tz_free(sc->tz);
    free(sc);
}

int schedule_check(const struct sched_def *d, char *err, size_t cap)
{
    struct cron_spec c;
    if (cron_parse(d->spec, &c, err, cap) < 0)
        return -EINVAL;
    struct cron_tz *z = NULL;
    int rc = cron_tz_load(d->tz, &z, err, cap);
    if (rc < 0)
        return -EINVAL;
    int64_t next = cron_next(&c, z, clock_now_ms());
    cron_tz_free(z);
    if (next < 0) {
        snprintf(err, cap, "schedule '%.60s' never ticks (no date matches it in the next 8 years)", d->spec);
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------- journal */

static void journal_put(struct shard *s, const struct sched *sc)
{
    jext_write(s, "INSERT OR REPLACE INTO schedules (name, queue, spec, payload, tz, priority, retries, uniq, "
                  "catchup, paused, next_at, last_tick, last_job, runs, skipped, created_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
               "bbtbtiiiiiiiiiii", sc->name, sc->namelen, sc->queue, sc->qlen, sc->spec, sc->payload, sc->plen,
               sc->tz_name, (int64_t)sc->priority, sc->retries, (int64_t)sc->unique, (int64_t)sc->catchup,
               (int64_t)sc->paused, sc->next_at, sc->last_tick, (int64_t)sc->last_job, sc->runs, sc->skipped,
               sc->created_at);
}

static void journal_ticked(struct shard *s, const struct sched *sc)
{
    jext_write(s, "UPDATE schedules SET next_at = ?1, last_tick = ?2, last_job = ?3, runs = ?4, skipped = ?5 "
                  "WHERE name = ?6",
               "iiiiib", sc->next_at, sc->last_tick, (int64_t)sc->last_job, sc->runs, sc->skipped, sc->name,
               sc->namelen);
}

/* ---------------------------------------------------------------- table */

static void arm(struct shard *s, struct sched *sc)
{
    if (sc->paused)
        dtimer_remove(&s->scheds->timer, &sc->timer);
    else
        dtimer_add(&s->scheds->timer, &sc->timer, sc->next_at);
    dtimer_rearm(&s->scheds->timer);
}

struct sched *schedule_find(struct shard *s, const char *name, size_t len)
{
    if (!s->scheds)
        return NULL;
    for (struct sched *sc = s->scheds->head; sc; sc = sc->next)
        if (sc->namelen == len && memcmp(sc->name, name, len) == 0)
            return sc;
    return NULL;
}

static void unlink_sched(struct shard *s, struct sched *sc)
{
    for (struct sched **p = &s->scheds->head; *p; p = &(*p)->next) {
        if (*p == sc) {
            *p = sc->next;
            break;
        }
    }
    s->scheds->n--;
    dtimer_remove(&s->scheds->timer, &sc->timer);
}

static void link_sched(struct shard *s, struct sched *sc)
{
    sc->next = s->scheds->head;
    s->scheds->head = sc;
    s->scheds->n++;
}

static void take_history(struct sched *sc, const struct sched *was)
{
    sc->created_at = was->created_at;
    sc->last_tick = was->last_tick;
    sc->last_job = was->last_job;
    sc->runs = was->runs;
    sc->skipped = was->skipped;
    sc->paused = was->paused;
}

int schedule_set(struct shard *s, const struct sched_def *d, char *err, size_t cap)
{
    struct sched *sc = xcalloc(1, sizeof *sc);
    tnode_init(&sc->timer, 0);
    if (cron_parse(d->spec, &sc->cron, err, cap) < 0 || cron_tz_load(d->tz, &sc->tz, err, cap) < 0) {
        sched_free(sc);
        return -EINVAL;
    }
    sc->name = dup_n(d->name, d->namelen);
    sc->namelen = d->namelen;
    sc->queue = dup_n(d->queue, d->qlen);
    sc->qlen = d->qlen;
    sc->spec = dup_n(d->spec, strlen(d->spec));
    sc->tz_name = dup_n(d->tz, strlen(d->tz));
    sc->payload = dup_n(d->payload, d->plen);
    sc->plen = d->plen;
    sc->priority = d->priority;
    sc->retries = d->retries;
    sc->unique = d->unique;
    sc->catchup = d->catchup;
    int64_t now = clock_now_ms();
    sc->created_at = now;
    struct sched *old = schedule_find(s, d->name, d->namelen);
    if (old) {
        take_history(sc, old); /* a replaced schedule keeps its history and its pause */
        unlink_sched(s, old);
        sched_free(old);
    }
    sc->next_at = cron_next(&sc->cron, sc->tz, now);
    link_sched(s, sc);
    journal_put(s, sc);
    arm(s, sc);
    return 0;
}

bool schedule_del(struct shard *s, const char *name, size_t len)
{
    struct sched *sc = schedule_find(s, name, len);
    if (!sc)
        return false;
    unlink_sched(s, sc);
    jext_write(s, "DELETE FROM schedules WHERE name = ?1", "b", name, len);
    sched_free(sc);
    dtimer_rearm(&s->scheds->timer);
    return true;
}

void schedule_keep_state(struct shard *s, struct sched *sc, const struct sched *was)
{
    take_history(sc, was);
    sc->next_at = was->next_at;
    journal_put(s, sc);
    arm(s, sc);
}

void schedule_pause(struct shard *s, struct sched *sc, bool paused)
{
    if (sc->paused == paused)
        return;
    sc->paused = paused;
    if (!paused) {
        /* Ticks that passed while paused are not owed: start from now. */
        sc->next_at = cron_next(&sc->cron, sc->tz, clock_now_ms());
    }
    journal_put(s, sc);
    arm(s, sc);
}

void schedule_each(struct shard *s, const char *q, size_t qlen, void (*fn)(void *, struct sched *), void *arg)
{
    if (!s->scheds)
        return;
    for (struct sched *sc = s->scheds->head; sc; sc = sc->next)
        if (!q || (sc->qlen == qlen && memcmp(sc->queue, q, qlen) == 0))
            fn(arg, sc);
}

/* ---------------------------------------------------------------- ticks */

static void announce(struct shard *s, const struct sched *sc, const struct job *j, int64_t tick)
{
    resp_buf v;
    resp_buf_init(&v);
    resp_buf_append(&v, "{\"name\":", 8);
    text_json_str(&v, sc->name, sc->namelen);
    resp_buf_printf(&v, ",\"tick\":%lld}", (long long)tick);
    resp_buf_append(&v, "", 1); /* NUL for the %s below */
    shard_publish(s, events_job_message_json(j, "scheduled", NULL, 0, "schedule", v.data));
    resp_buf_free(&v);
}

/* Pushes the job of one tick (or skips it); true when pushed. */
static bool push_tick(struct shard *s, struct sched *sc, int64_t tick)
{
    struct queue *q = store_queue(&s->st, sc->queue, sc->qlen, true);
    char key[64 + 1100];
    int klen = snprintf(key, sizeof key, "sched:%.*s:%lld", (int)(sc->namelen > 1024 ? 1024 : sc->namelen),
                        sc->name, (long long)tick);
    struct job *prev = sc->last_job ? jtable_find(&s->st.jobs, sc->last_job) : NULL;
    const char *why = NULL;
    if (sc->unique && prev && prev->state != JOB_DONE && prev->state != JOB_DEAD && prev->state != JOB_EXPIRED)
        why = "its previous job is unfinished (UNIQUE)";
    else if (q->conf.maxlen && (int64_t)queue_unfinished(q) >= q->conf.maxlen)
        why = "the queue is full (maxlen)";
    else if (queue_unique_find(q, key, (size_t)klen))
        why = "that tick's job exists already";
    if (why) {
        log_info("schedule '%s': tick %lld skipped: %s", sc->name, (long long)tick, why);
        store_queue_gc(&s->st, q);
        return false;
    }
    struct push_opts o = { 0 };
    o.priority = sc->priority;
    o.retries = sc->retries;
    o.unique = key;
    o.unique_len = (size_t)klen;
    o.left = true;
    struct job *j = store_job_push(&s->st, q, dup_n(sc->payload, sc->plen), sc->plen, &o);
    sc->last_job = j->id;
    announce(s, sc, j, tick);
    return true;
}

static void fire(void *arg, struct tnode *t)
{
    struct shard *s = arg;
    struct sched *sc = (struct sched *)t;
    int64_t now = clock_now_ms();
    int64_t due[SCHED_BURST];
    int n = 0;
    int64_t tick = sc->next_at, last = tick;
    long long skipped = 0;
    /* the due ticks, oldest first; beyond SCHED_BURST only the count */
    while (tick >= 0 && tick <= now) {
        if (n < SCHED_BURST)
            due[n++] = tick;
        else
            skipped++;
        last = tick;
        int64_t nx = cron_next(&sc->cron, sc->tz, tick);
        if (n == SCHED_BURST && sc->catchup == CATCHUP_ALL) {
            tick = nx; /* the rest in the next turn */
            break;
        }
        tick = nx;
        if (skipped > 100000) { /* a long downtime of a fast schedule: jump to now */
            tick = cron_next(&sc->cron, sc->tz, now);
            break;
        }
    }
    if (n == 0) {
        arm(s, sc);
        return;
    }
    int pushed = 0;
    if (sc->catchup == CATCHUP_ALL) {
        for (int i = 0; i < n; i++)
            pushed += push_tick(s, sc, due[i]);
        skipped += n - pushed;
        last = due[n - 1];
    } else if (sc->catchup == CATCHUP_ONE || now - last <= SCHED_GRACE_MS) {
        pushed = push_tick(s, sc, last);
        skipped += n - pushed;
    } else {
        skipped += n;
    }
    if (skipped && sc->catchup != CATCHUP_ALL)
        log_info("schedule '%s': %lld missed tick(s) skipped (CATCHUP %s)", sc->name, skipped,
                 schedule_catchup_name(sc->catchup));
    sc->last_tick = last;
    sc->next_at = tick;
    sc->runs += pushed;
    sc->skipped += skipped;
    journal_ticked(s, sc);
    if (sc->next_at >= 0)
        dtimer_add(&s->scheds->timer, &sc->timer, sc->next_at);
}

static void after(void *arg)
{
    shard_tick(arg); /* commits the pushes with the schedules' new ticks */
}

/* ---------------------------------------------------------------- hooks */

static int load(struct shard *s)
{
    sqlite3_stmt *st = jext_read(s, "SELECT name, queue, spec, payload, tz, priority, retries, uniq, catchup, "
                                    "paused, next_at, last_tick, last_job, runs, skipped, created_at FROM schedules", "");
    if (!st)
        return s->st.jr ? -EIO : 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct sched *sc = xcalloc(1, sizeof *sc);
        tnode_init(&sc->timer, 0);
        sc->name = jext_col_dup(st, 0, &sc->namelen);
        sc->queue = jext_col_dup(st, 1, &sc->qlen);
        sc->spec = jext_col_dup(st, 2, NULL);
        sc->payload = jext_col_dup(st, 3, &sc->plen);
        sc->tz_name = jext_col_dup(st, 4, NULL);
        sc->priority = (int16_t)sqlite3_column_int64(st, 5);
        sc->retries = sqlite3_column_int64(st, 6);
        sc->unique = sqlite3_column_int64(st, 7) != 0;
        sc->catchup = (int)sqlite3_column_int64(st, 8);
        sc->paused = sqlite3_column_int64(st, 9) != 0;
        sc->next_at = sqlite3_column_int64(st, 10);
        sc->last_tick = sqlite3_column_int64(st, 11);
        sc->last_job = (uint64_t)sqlite3_column_int64(st, 12);
        sc->runs = sqlite3_column_int64(st, 13);
        sc->skipped = sqlite3_column_int64(st, 14);
        sc->created_at = sqlite3_column_int64(st, 15);
        char err[256];
        if (!sc->name || !sc->queue || !sc->spec || !sc->payload || !sc->tz_name ||
            cron_parse(sc->spec, &sc->cron, err, sizeof err) < 0 ||
            cron_tz_load(sc->tz_name, &sc->tz, err, sizeof err) < 0) {
            log_error("shard %d: schedule '%s' cannot run (%s); it is kept in the journal, SCHED.SET it again",
                      s->id, sc->name ? sc->name : "?", sc->spec ? err : "damaged row");
            sched_free(sc);
            continue;
        }
        link_sched(s, sc);
        if (!sc->paused && sc->next_at >= 0)
            dtimer_add(&s->scheds->timer, &sc->timer, sc->next_at);
    }
    sqlite3_finalize(st);
    dtimer_rearm(&s->scheds->timer);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static void drop_all(struct shard *s)
{
    while (s->scheds->head) {
        struct sched *sc = s->scheds->head;
        unlink_sched(s, sc);
        sched_free(sc);
    }
}

static int sched_recover(struct shard *s)
{
    if (!s->scheds) {
        s->scheds = xcalloc(1, sizeof *s->scheds);
        dtimer_init(&s->scheds->timer, s->base, fire, after, s);
    }
    int rc = load(s);
    if (s->scheds->n)
        log_info("shard %d: %zu schedule(s)", s->id, s->scheds->n);
    return rc;
}

static void sched_reload(struct shard *s)
{
    if (!s->scheds)
        return;
    drop_all(s);
    if (load(s) < 0)
        log_error("shard %d: reloading the schedules failed", s->id);
}

static void sched_destroy(struct shard *s)
{
    if (!s->scheds)
        return;
    drop_all(s);
    dtimer_free(&s->scheds->timer);
    free(s->scheds);
    s->scheds = NULL;
}

const struct shard_ext schedule_ext = {
    .recover = sched_recover,
    .reload = sched_reload,
    .destroy = sched_destroy,
};
