/*
 * cmd_queue.c - queue administration commands (see cmd_queue.h and
 * docs/protocol.md). Everything but QUEUE.LIST runs on the queue's shard.
 */
#include "cmd_queue.h"

#include "args.h"
#include "clock.h"
#include "cmd_job.h"
#include "cmd_result.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "hash.h"
#include "rate.h"
#include "io.h"
#include "journal.h"
#include "msg.h"
#include "powercut.h"
#include "queue.h"
#include "shard.h"
#include "sysinfo.h"
#include "textfmt.h"
#include "xalloc.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ----------------------------------------------------------- QUEUE.LIST */

static void finish_list(struct conn *c, struct slot *sl)
{
    size_t n;
    struct name_rec *v = text_name_recs(sl->parts, sl->nparts, &n);
    resp_add_array(&sl->out, n);
    for (size_t i = 0; i < n; i++)
        resp_add_bulk(&sl->out, v[i].name, v[i].len);
    free(v);
}

/* QUEUE.LIST */
void io_queue_list(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_list);
}

static void list_one(void *arg, struct queue *q)
{
    struct msg *m = arg;
    text_name_put(&m->out, q->name, q->namelen);
    resp_buf_append(&m->out, "\n", 1);
}

/* QUEUE.LIST */
void sh_queue_list(struct shard *s, struct msg *m)
{
    qtable_each(&s->st.queues, list_one, m);
    shard_reply(s, m);
}

/* ------------------------------------------------------- syntax checks */

static bool check_peek(struct conn *c, struct msg *m)
{
    long long v;
    for (int i = 2; i < m->req.argc; i += 2) {
        if (i + 1 >= m->req.argc) {
            conn_reply_error(c, m, "ERR QUEUE.PEEK option '%.32s' needs a value", m->req.argv[i]);
            return false;
        }
        const char *val = m->req.argv[i + 1];
        size_t vl = m->req.len[i + 1];
        if (arg_is(m, i, "STATE") && job_state_parse(val, vl) >= 0)
            continue;
        if (arg_is(m, i, "COUNT") && resp_parse_ll(val, vl, &v) == 0 && v >= 1 && v <= 1000)
            continue;
        uint64_t id;
        uint32_t a;
        if (arg_is(m, i, "AFTER") && job_id_parse(val, vl, &id, &a))
            continue;
        if (arg_is(m, i, "ERROR") && vl >= 1 && vl <= 256 && !memchr(val, 0, vl))
            continue;
        conn_reply_error(c, m, "ERR QUEUE.PEEK: bad option or value '%.32s %.64s' (QUEUE.PEEK queue [STATE ready|reserved|delayed|done|dead|expired] [COUNT 1-1000] [AFTER id] [ERROR pattern])",
                         m->req.argv[i], val);
        return false;
    }
    return true;
}

/* QUEUE.RETRY queue [ERROR pattern] [RATE n/period] [TO queue] */
static bool check_retry(struct conn *c, struct msg *m)
{
    for (int i = 2; i < m->req.argc; i += 2) {
        const char *val = i + 1 < m->req.argc ? m->req.argv[i + 1] : NULL;
        size_t vl = val ? m->req.len[i + 1] : 0;
        struct rate r;
        const char *why = "";
        if (val && arg_is(m, i, "ERROR") && vl >= 1 && vl <= 256 && !memchr(val, 0, vl))
            continue;
        if (val && arg_is(m, i, "RATE") && rate_parse(val, vl, &r, &why) == 0 && rate_set(&r))
            continue;
        if (val && arg_is(m, i, "TO") && vl >= 1) {
            int nsh = c->io->srv->nshards;
            if (shard_of(val, vl, nsh) == shard_of(m->req.argv[1], m->req.len[1], nsh))
                continue;
            conn_reply_error(c, m, "CROSSSLOT QUEUE.RETRY %.128s TO %.128s: the two queues live on different shards; "
                             "give them a common {hash tag} ({mail}:in and {mail}:again) or use --shards 1",
                             m->req.argv[1], val);
            return false;
        }
        conn_reply_error(c, m, "ERR QUEUE.RETRY: bad option or value at '%.32s' (QUEUE.RETRY queue [ERROR pattern] "
                         "[RATE n/period, e.g. 10/1s] [TO queue])", m->req.argv[i]);
        return false;
    }
    return true;
}

/* QUEUE.STATS|PEEK|PAUSE|RESUME|PURGE|RETRY|CONFIG queue … */
void io_queue_key(struct conn *c, struct msg *m)
{
    const char *name = m->cmd->name;
    if (!strcmp(name, "queue.peek") && !check_peek(c, m))
        return;
    if (!strcmp(name, "queue.retry") && !check_retry(c, m))
        return;
    if (!strcmp(name, "queue.purge") && m->req.argc != 2 &&
        !(m->req.argc == 4 && arg_is(m, 2, "STATE") && job_state_parse(m->req.argv[3], m->req.len[3]) >= 0)) {
        conn_reply_error(c, m, "ERR QUEUE.PURGE queue [STATE ready|reserved|delayed|done|dead|expired]");
        return;
    }
    if (!strcmp(name, "queue.config")) {
        bool get = arg_is(m, 2, "GET") && m->req.argc <= 4;
        bool set = arg_is(m, 2, "SET") && m->req.argc >= 5 && (m->req.argc - 3) % 2 == 0;
        if (!get && !set) {
            conn_reply_error(c, m, "ERR QUEUE.CONFIG queue GET [name] | SET name value [name value ...]");
            return;
        }
    }
    conn_route_key(c, m, 1);
}

/* ---------------------------------------------------------- shard side */

static void add_kv(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

static int64_t oldest_ready_age(const struct queue *q)
{
    int64_t oldest = 0;
    for (int i = 0; i < q->nlevels; i++) {
        const struct job *j = q->levels[i].l.tail;
        if (j && (oldest == 0 || j->updated_at < oldest))
            oldest = j->updated_at;
    }
    return oldest ? clock_now_ms() - oldest : 0;
}

/* QUEUE.STATS queue */
void sh_queue_stats(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    struct queue empty;
    if (!q) {
        memset(&empty, 0, sizeof empty);
        q = &empty;
    }
    resp_buf *b = &m->out;
    resp_add_map(b, m->proto, 21);
    add_kv(b, "ready", (long long)q->nready);
    add_kv(b, "reserved", (long long)q->reserved.n);
    add_kv(b, "delayed", (long long)q->delayed.n);
    add_kv(b, "done", (long long)q->done.n);
    add_kv(b, "dead", (long long)q->dead.n);
    add_kv(b, "expired", (long long)q->expired.n);
    add_kv(b, "pushed", (long long)q->stats.pushed);
    add_kv(b, "acked", (long long)q->stats.acked);
    add_kv(b, "retried", (long long)q->stats.retried);
    add_kv(b, "lease_expired", (long long)q->stats.lease_expired);
    add_kv(b, "buried", (long long)q->stats.buried);
    add_kv(b, "popped", (long long)q->stats.popped);
    add_kv(b, "expired_total", (long long)q->stats.expired);
    add_kv(b, "oldest_ready_age_ms", q == &empty ? 0 : oldest_ready_age(q));
    add_kv(b, "waiters", (long long)q->nwaiters);
    add_kv(b, "paused", q->paused);
    add_kv(b, "throttled", (long long)queue_throttled(q));
    add_kv(b, "groups", (long long)q->groups.n);
    add_kv(b, "rate_limit", (long long)q->conf.rate.n);
    add_kv(b, "rate_period_ms", (long long)q->conf.rate.per_ms);
    add_kv(b, "concurrency_limit", (long long)q->conf.concurrency);
    shard_reply(s, m);
}

static int cmp_run_at(const void *a, const void *b)
{
    const struct job *x = *(const struct job *const *)a, *y = *(const struct job *const *)b;
    return (x->run_at > y->run_at) - (x->run_at < y->run_at);
}

/* Delayed jobs sorted by run time (malloc'd); the other states are walked
 * in place, in the order they keep. */
static struct job **delayed_sorted(struct queue *q, size_t *n)
{
    size_t i = 0;
    struct job **v = xmalloc((q->delayed.n ? q->delayed.n : 1) * sizeof *v);
    for (struct job *j = q->delayed.head; j; j = j->next)
        v[i++] = j;
    qsort(v, i, sizeof *v, cmp_run_at);
    *n = i;
    return v;
}

static struct job *peek_first(const struct queue *q, int state)
{
    return state == JOB_READY ? queue_ready_first_served(q) : queue_list((struct queue *)q, state)->head;
}

static struct job *peek_next(const struct queue *q, const struct job *j)
{
    return j->state == JOB_READY ? queue_ready_next_served(q, j) : j->next;
}

/* Where a page starts: the first job of the state, or the one after the
 * AFTER job (found by id, so paging costs no walk from the start). NULL
 * with *gone set when the AFTER job left the state. */
static struct job *page_start(struct shard *s, struct queue *q, int state, bool has_after, uint64_t after,
                              bool *gone)
{
    *gone = false;
    if (!has_after)
        return peek_first(q, state);
    struct job *j = jtable_find(&s->st.jobs, after);
    if (!j || j->q != q || j->state != state) {
        *gone = true;
        return NULL;
    }
    return peek_next(q, j);
}

/* ERROR pattern: a glob (fnmatch, case-insensitive) over the job's
 * last_error; a job with no error never matches. NULL matches all. */
static bool error_matches(const struct job *j, const char *pattern)
{
    return !pattern || (j->last_error && fnmatch(pattern, j->last_error, FNM_CASEFOLD) == 0);
}

/* QUEUE.PEEK queue [STATE s] [COUNT n] [AFTER id] [ERROR pattern] */
void sh_queue_peek(struct shard *s, struct msg *m)
{
    int state = JOB_READY;
    long long count = 10;
    uint64_t after = 0;
    bool has_after = false, gone = false;
    const char *pattern = NULL;
    for (int i = 2; i + 1 < m->req.argc; i += 2) {
        if (arg_is(m, i, "ERROR"))
            pattern = m->req.argv[i + 1];
        else if (arg_is(m, i, "STATE"))
            state = job_state_parse(m->req.argv[i + 1], m->req.len[i + 1]);
        else if (arg_is(m, i, "COUNT"))
            arg_ll(m, i + 1, &count);
        else if (arg_is(m, i, "AFTER")) {
            uint32_t a;
            job_id_parse(m->req.argv[i + 1], m->req.len[i + 1], &after, &a);
            has_after = true;
        }
    }
    struct queue *q = shard_queue(s, m, 1, false);
    struct job *page[1000];
    size_t n = 0;
    if (q && state == JOB_DELAYED) {
        size_t all, start = 0;
        struct job **v = delayed_sorted(q, &all);
        if (has_after) {
            while (start < all && v[start]->id != after)
                start++;
            gone = start++ == all;
        }
        for (; !gone && start < all && n < (size_t)count; start++)
            if (error_matches(v[start], pattern))
                page[n++] = v[start];
        free(v);
    } else if (q) {
        for (struct job *j = page_start(s, q, state, has_after, after, &gone); j && n < (size_t)count;
             j = peek_next(q, j))
            if (error_matches(j, pattern))
                page[n++] = j;
    } else {
        gone = has_after;
    }
    if (gone) {
        char hex[JOB_ID_HEX + 1];
        job_id_format(after, hex);
        resp_buf_printf(&m->out, "-NOJOB job %s is not %s in queue '%.128s' any more; start again without AFTER\r\n",
                        hex, job_state_name(state), m->req.argv[1]);
    } else {
        resp_add_array(&m->out, n);
        for (size_t i = 0; i < n; i++) {
            bool had = page[i]->payload != NULL; /* a look must not pin payloads in memory */
            store_job_payload(&s->st, page[i]);
            result_encode_job(s, m, page[i]);
            if (!had)
                store_job_payload_drop(&s->st, page[i]);
        }
    }
    shard_reply(s, m);
}

/* QUEUE.PAUSE queue | QUEUE.RESUME queue */
void sh_queue_pause(struct shard *s, struct msg *m)
{
    bool pause = !strcmp(m->cmd->name, "queue.pause");
    struct queue *q = shard_queue(s, m, 1, true);
    q->paused = pause;
    store_queue_saved(&s->st, q);
    if (!pause)
        store_queue_changed(&s->st, q);
    store_queue_gc(&s->st, q);
    resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}

/* QUEUE.PURGE queue [STATE s] */
void sh_queue_purge(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    int state = m->req.argc == 4 ? job_state_parse(m->req.argv[3], m->req.len[3]) : -1;
    long long n = q ? store_purge(&s->st, q, state) : 0;
    store_queue_gc(&s->st, q);
    resp_add_int(&m->out, n);
    shard_reply(s, m);
}

/* QUEUE.RETRY queue [ERROR pattern] [RATE n/period] [TO queue]
 * Dead jobs
 * (those whose last_error matches) go back, to queue or to another queue
 * of this shard, all ready now or, with RATE, one every period/n (they
 * wait as delayed jobs, so a restart keeps the schedule). */
void sh_queue_retry(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, false);
    const char *pattern = NULL;
    struct rate r = { 0, 0 };
    struct queue *to = q;
    for (int i = 2; i + 1 < m->req.argc; i += 2) {
        const char *why;
        if (arg_is(m, i, "ERROR"))
            pattern = m->req.argv[i + 1];
        else if (arg_is(m, i, "RATE"))
            rate_parse(m->req.argv[i + 1], m->req.len[i + 1], &r, &why);
        else if (arg_is(m, i, "TO") && q && q->dead.n)
            to = shard_queue(s, m, i + 1, true);
    }
    long long n = 0;
    int64_t now = clock_now_ms(), at_us = now * 1000;
    struct job *j = q ? q->dead.head : NULL;
    while (j) {
        struct job *next = j->next;
        if (error_matches(j, pattern) && store_job_redrive(&s->st, j, to, rate_set(&r) ? (at_us + 999) / 1000 : 0) == 0) {
            n++;
            if (rate_set(&r))
                at_us += rate_interval_us(&r);
        }
        j = next;
    }
    if (to != q)
        store_queue_gc(&s->st, to);
    store_queue_gc(&s->st, q);
    resp_add_int(&m->out, n);
    shard_reply(s, m);
}

/* QUEUE.CONFIG queue GET [name] | SET name value [name value …] */
void sh_queue_config(struct shard *s, struct msg *m)
{
    struct queue *q = shard_queue(s, m, 1, true);
    char val[64];
    if (arg_is(m, 2, "GET")) {
        if (m->req.argc == 4) {
            if (qconf_get(&q->conf, m->req.argv[3], m->req.len[3], val, sizeof val) < 0)
                resp_buf_printf(&m->out, "-ERR %s: '%.64s'\r\n", QCONF_NAMES_HELP,
                                m->req.argv[3]);
            else
                resp_add_cstr(&m->out, val);
        } else {
            resp_add_map(&m->out, m->proto, qconf_count());
            for (size_t i = 0; i < qconf_count(); i++) {
                const char *name = qconf_name(i);
                qconf_get(&q->conf, name, strlen(name), val, sizeof val);
                resp_add_cstr(&m->out, name);
                resp_add_cstr(&m->out, val);
            }
        }
    } else {
        struct qconf next = q->conf;
        const char *why = NULL;
        int bad = -1;
        for (int i = 3; i + 1 < m->req.argc && bad < 0; i += 2)
            if (qconf_set(&next, m->req.argv[i], m->req.len[i], m->req.argv[i + 1], m->req.len[i + 1], &why) < 0)
                bad = i;
        if (bad >= 0) {
            resp_buf_printf(&m->out, "-ERR QUEUE.CONFIG %.128s: %.64s '%.64s': %s; nothing was changed\r\n",
                            q->name, m->req.argv[bad], m->req.argv[bad + 1], why);
        } else {
            q->conf = next;
            store_queue_saved(&s->st, q);
            resp_add_simple(&m->out, "OK");
        }
    }
    store_queue_gc(&s->st, q);
    shard_reply(s, m);
}

const char *const qstat_names[QSTAT_COUNT] = {
    "ready", "reserved", "delayed", "done", "dead", "expired", "pushed", "acked", "retried",
    "lease_expired", "buried", "popped", "expired_total", "paused", "waiters", "oldest_ready_age_ms",
    "throttled", "groups", "rate_limit", "rate_period_ms", "concurrency_limit",
};

static void admin_record(void *arg, struct queue *q)
{
    struct msg *m = arg;
    text_name_put(&m->out, q->name, q->namelen);
    resp_buf_printf(&m->out, " %zu %zu %zu %zu %zu %zu %llu %llu %llu %llu %llu %llu %llu %d %zu %lld %zu %zu %lld %lld %lld\n",
                    q->nready, q->reserved.n, q->delayed.n, q->done.n, q->dead.n, q->expired.n,
                    (unsigned long long)q->stats.pushed, (unsigned long long)q->stats.acked,
                    (unsigned long long)q->stats.retried, (unsigned long long)q->stats.lease_expired,
                    (unsigned long long)q->stats.buried, (unsigned long long)q->stats.popped,
                    (unsigned long long)q->stats.expired, q->paused, q->nwaiters, (long long)oldest_ready_age(q),
                    queue_throttled(q), q->groups.n, (long long)q->conf.rate.n, (long long)q->conf.rate.per_ms,
                    (long long)q->conf.concurrency);
}

/* (internal) the figures of this shard for the HTTP admin */
void sh_admin_stats(struct shard *s, struct msg *m)
{
    qtable_each(&s->st.queues, admin_record, m);
    shard_reply(s, m);
}

/* ---------------------------------------------------------------- DEBUG */

/* DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO]: the next n journal writes of the
 * queue's shard fail (tests of the disk-full path; needs
 * --enable-debug-command yes).
 * DEBUG SYNC-DELAY queue ms: with --fsync always, every WAL sync of the
 * queue's shard starts ms late from now on, as on a slow disk (0: off).
 * DEBUG SYNC-FAIL queue n: the next n syncs of the WAL of the queue's
 * shard fail with EIO, losing what they were to make durable as Linux
 * does (powercut.h); the process goes on.
 * DEBUG POWER-CUT [TORN]: every file is left as a power cut would leave it
 * (powercut.h) and the process ends at once, with no reply. */
/* DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO] | DEBUG SYNC-DELAY queue ms | DEBUG SYNC-FAIL queue n | DEBUG POWER-CUT [TORN] */
/* DEBUG THREAD-LOAD k per-mille|OFF: pretend thread k is this busy (OFF:
 * its measured load again); --colocate yes places deep pipelining clients
 * by it (conn.c). */
static void debug_thread_load(struct conn *c, struct msg *m)
{
    struct server *srv = c->io->srv;
    long long k, pm = -1;
    if (m->req.argc != 4 || !arg_ll(m, 2, &k) || k < 0 || k >= srv->nio ||
        (!arg_is(m, 3, "OFF") && (!arg_ll(m, 3, &pm) || pm < 0 || pm > 1000))) {
        conn_reply_error(c, m, "ERR DEBUG THREAD-LOAD k per-mille|OFF (k: an I/O thread, 0 to %d; 0 to 1000)",
                         srv->nio - 1);
        return;
    }
    atomic_store(&srv->load[k].fake, (int)pm);
    conn_reply_ok(c, m);
}

void io_debug(struct conn *c, struct msg *m)
{
    long long n;
    if (!c->io->srv->cfg.enable_debug) {
        conn_reply_error(c, m, "ERR DEBUG is disabled; start spoold with --enable-debug-command yes (for tests only)");
        return;
    }
    if (arg_is(m, 1, "POWER-CUT")) {
        if (m->req.argc > 3 || (m->req.argc == 3 && !arg_is(m, 2, "TORN"))) {
            conn_reply_error(c, m, "ERR DEBUG POWER-CUT [TORN]");
            return;
        }
        powercut_cut(m->req.argc == 3); /* does not return */
    }
    if (arg_is(m, 1, "SYNC-DELAY") || arg_is(m, 1, "SYNC-FAIL")) {
        long long max = arg_is(m, 1, "SYNC-DELAY") ? 60000 : 1000;
        if (m->req.argc != 4 || !arg_ll(m, 3, &n) || n < 0 || n > max) {
            conn_reply_error(c, m, max == 1000 ? "ERR DEBUG SYNC-FAIL queue n (0 to 1000 syncs)"
                                               : "ERR DEBUG SYNC-DELAY queue ms (0 to 60000)");
            return;
        }
        conn_route_key(c, m, 2);
        return;
    }
    if (arg_is(m, 1, "DISK-FREE")) {
        /* DEBUG DISK-FREE bytes|OFF: pretend the data directory's file
         * system has this much free space (OFF: measure it again). */
        struct server *srv = c->io->srv;
        if (m->req.argc != 3 || (!arg_is(m, 2, "OFF") && (!arg_ll(m, 2, &n) || n < 0))) {
            conn_reply_error(c, m, "ERR DEBUG DISK-FREE bytes|OFF");
            return;
        }
        atomic_store(&srv->disk_free_fake, arg_is(m, 2, "OFF") ? -1 : n);
        ctx_disk_update(srv, sysinfo_disk_free(srv->cfg.data_dir));
        conn_reply_ok(c, m);
        return;
    }
    if (arg_is(m, 1, "THREAD-LOAD")) {
        debug_thread_load(c, m);
        return;
    }
    if (!arg_is(m, 1, "JOURNAL-FAIL") || m->req.argc < 4 || m->req.argc > 5 ||
        !arg_ll(m, 3, &n) || n < 0 || n > 1000000 ||
        (m->req.argc == 5 && !arg_is(m, 4, "ENOSPC") && !arg_is(m, 4, "EIO"))) {
        conn_reply_error(c, m, "ERR DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO] | DEBUG SYNC-DELAY queue ms | "
                         "DEBUG SYNC-FAIL queue n | DEBUG POWER-CUT [TORN] | DEBUG DISK-FREE bytes|OFF | "
                         "DEBUG THREAD-LOAD k per-mille|OFF");
        return;
    }
    conn_route_key(c, m, 2);
}

/* DEBUG SYNC-FAIL queue n, on the queue's shard */
static void debug_sync_fail(struct shard *s, struct msg *m, int n)
{
    char wal[4200];
    int rc = s->st.jr ? 0 : -ENOENT;
    if (rc == 0) {
        snprintf(wal, sizeof wal, "%s-wal", journal_path(s->st.jr));
        rc = powercut_fail_syncs(wal, n);
    }
    if (rc == -ENOTSUP)
        resp_add_error(&m->out, "ERR DEBUG SYNC-FAIL needs the power-cut seam (--enable-debug-command yes)");
    else if (rc < 0)
        resp_add_errorf(&m->out, "ERR DEBUG SYNC-FAIL: shard %d has no open WAL", s->id);
    else
        resp_add_simple(&m->out, "OK");
    shard_reply(s, m);
}

/* DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO] | DEBUG SYNC-DELAY queue ms | DEBUG SYNC-FAIL queue n */
void sh_debug(struct shard *s, struct msg *m)
{
    long long n = 0;
    arg_ll(m, 3, &n);
    if (arg_is(m, 1, "SYNC-FAIL")) {
        debug_sync_fail(s, m, (int)n);
        return;
    }
    if (arg_is(m, 1, "SYNC-DELAY")) {
        if (!s->pipelined)
            resp_add_error(&m->out, "ERR DEBUG SYNC-DELAY needs --fsync always (this spoold has no sync thread)");
        else {
            syncer_set_delay(&s->sync, (int)n);
            resp_add_simple(&m->out, "OK");
        }
        shard_reply(s, m);
        return;
    }
    int err = m->req.argc == 5 && arg_is(m, 4, "EIO") ? -EIO : -ENOSPC;
    if (!s->st.jr) {
        resp_add_error(&m->out, "ERR this shard has no journal");
    } else {
        journal_fail_next(s->st.jr, (int)n, err);
        resp_add_simple(&m->out, "OK");
    }
    shard_reply(s, m);
}
