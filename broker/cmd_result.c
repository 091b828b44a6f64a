/*
 * cmd_result.c - job results, progress reports and JOB.WAIT.
 *
 *   JOB.ACK receipt RESULT value    the job is done and keeps value (at most
 *                                   max-result bytes) for as long as the
 *                                   queue keeps done jobs (retention)
 *   JOB.PROGRESS receipt value      a number 0-100 or a JSON object, on a
 *                                   reserved job; publishes "progress"
 *   JOB.WAIT id [TIMEOUT ms]        the job's record once it is done or dead
 *                                   (at once if it already is); nil on timeout
 *
 * Waiters: a JOB.WAIT on an unfinished job parks on the job's shard (the id
 * names it), in a table by job id and, with a TIMEOUT, in a deadline heap
 * with its own timer (dtimer.h). The shard calls job_finished (struct
 * shard_ext) whenever a job becomes done or dead, or is deleted before it
 * finished: every waiter of that id is answered in that turn, so the reply
 * leaves after the commit that finished the job. A deleted job answers
 * -NOJOB. Like a blocking pop, a waiter is parked with a claim
 * (conn_park): it is answered only by whoever takes the claim, and a client
 * that disconnects takes it and withdraws the waiter (MSG_CANCEL, the
 * cancel hook), so nothing waits for a client that is gone.
 *
 * Results and progress live in the job's row (jext.c), so they survive
 * restarts and leave with the job when retention removes it. In memory a
 * job keeps its progress (at most PROGRESS_MAX bytes) but not the result
 * of a finished job (result_on_disk): up to max-result bytes times the
 * done jobs a queue keeps would not fit; it is read back when shown.
 */
#include "cmd_result.h"

#include "clock.h"
#include "claim.h"
#include "jobrec.h"
#include "args.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "dtimer.h"
#include "io.h"
#include "jext.h"
#include "log.h"
#include "msg.h"
#include "payload.h"
#include "events.h"
#include "queue.h"
#include "context.h"
#include "shard.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WAIT_BUCKETS 1024
#define PROGRESS_MAX 4096 /* bytes of a progress value (it stays in memory with its job) */

struct jwaiter {
    struct tnode timer;       /* first member */
    struct jwaiter *next;     /* in its bucket */
    uint64_t id;
    struct msg *m;
};

struct jobwaits {
    struct jwaiter *b[WAIT_BUCKETS];
    size_t n;
    struct dtimer timer;
};

static bool word(const struct msg *m, int i, const char *w)
{
    return i < m->req.argc && strlen(w) == m->req.len[i] && strncasecmp(m->req.argv[i], w, m->req.len[i]) == 0;
}

/* Routes m to the shard its job id (argv[1]) names (parked there with a
 * claim when park); false when answered. */
static bool route_job_to(struct conn *c, struct msg *m, bool park)
{
    uint64_t id;
    uint32_t attempt;
    if (!job_id_parse(m->req.argv[1], m->req.len[1], &id, &attempt)) {
        conn_reply_error(c, m, "ERR '%.64s' is not a job id or receipt (16 hex digits, or <id>-<delivery> for a receipt)",
                         m->req.argv[1]);
        return false;
    }
    int k = job_id_shard(id);
    if (k >= c->io->srv->nshards) {
        conn_reply_error(c, m, "NOJOB no job %.16s: its id names shard %d, and this server has %d",
                         m->req.argv[1], k, c->io->srv->nshards);
        return false;
    }
    if (park)
        conn_park(c, m, k);
    else
        conn_route(c, m, k);
    return true;
}

static bool route_job(struct conn *c, struct msg *m)
{
    return route_job_to(c, m, false);
}

/* ------------------------------------------------------------- results */

bool io_ack_result(struct conn *c, struct msg *m)
{
    int at = -1;
    for (int i = 2; i < m->req.argc; i++)
        if (word(m, i, "RESULT"))
            at = i;
    if (at < 0)
        return false;
    if (m->req.argc != 4 || at != 2) {
        conn_reply_error(c, m, "ERR JOB.ACK with RESULT takes one receipt: JOB.ACK receipt RESULT value");
        return true;
    }
    int64_t max = c->io->srv->cfg.max_result;
    if ((int64_t)m->req.len[3] > max) {
        conn_reply_error(c, m, "TOOBIG result is %zu bytes; the limit is %lld bytes (max-result); the job was not acked",
                         m->req.len[3], (long long)max);
        return true;
    }
    route_job(c, m);
    return true;
}

void result_store(struct shard *s, struct msg *m, struct job *j)
{
    free(j->result);
    j->result = xmemdup(m->req.argv[3], m->req.len[3]); /* the request's block is freed with it */
    j->result_len = (uint32_t)m->req.len[3];
    jext_job_result(s, j->id, j->result, j->result_len);
}

void result_settle(struct shard *s, uint64_t id)
{
    struct job *j = jtable_find(&s->st.jobs, id);
    if (j && j->result && (j->state == JOB_DONE || j->state == JOB_DEAD)) {
        free(j->result);
        j->result = NULL;
        j->result_on_disk = true; /* done jobs keep results on disk, not in memory */
    }
}

void result_encode_job(struct shard *s, struct msg *m, struct job *j)
{
    bool fetched = false;
    if (j->result_on_disk && !j->result)
        fetched = jext_job_result_read(s, j) == 0;
    encode_job(m, j);
    if (fetched) {
        free(j->result);
        j->result = NULL;
    }
}

/* ------------------------------------------------------------ progress */

/* A number from 0 to 100, or a JSON object. */
static bool progress_ok(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i < n && v[i] == '{') {
        size_t at;
        return payload_is_json(v, n, &at);
    }
    char buf[64];
    if (n == 0 || n >= sizeof buf || memchr(v, 0, n))
        return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    return end != buf && *end == '\0' && d >= 0 && d <= 100 && d == d;
}

/* JOB.PROGRESS receipt value */
void io_job_progress(struct conn *c, struct msg *m)
{
    if (m->req.argc != 3) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'job.progress' (JOB.PROGRESS receipt value)");
        return;
    }
    int64_t max = c->io->srv->cfg.max_result < PROGRESS_MAX ? c->io->srv->cfg.max_result : PROGRESS_MAX;
    if ((int64_t)m->req.len[2] > max) {
        conn_reply_error(c, m, "TOOBIG progress is %zu bytes; the limit is %lld bytes (a small JSON object; "
                         "results go with JOB.ACK … RESULT)", m->req.len[2], (long long)max);
        return;
    }
    if (!progress_ok(m->req.argv[2], m->req.len[2])) {
        conn_reply_error(c, m, "ERR JOB.PROGRESS: '%.64s' is neither a number from 0 to 100 nor a JSON object",
                         m->req.argv[2]);
        return;
    }
    route_job(c, m);
}

void sh_job_progress(struct shard *s, struct msg *m)
{
    struct job *j = job_resolve(s, m, 1, true, true);
    if (j) {
        job_set_str(&j->progress, m->req.argv[2], m->req.len[2]);
        jext_job_progress(s, j->id, j->progress);
        shard_publish(s, events_job_message_json(j, "progress", NULL, 0, "progress", j->progress));
        resp_add_simple(&m->out, "OK");
    }
    shard_reply(s, m);
}

/* ------------------------------------------------------------- waiting */

/* JOB.WAIT id [TIMEOUT ms] */
void io_job_wait(struct conn *c, struct msg *m)
{
    long long v = 0;
    if (m->req.argc != 2 && !(m->req.argc == 4 && word(m, 2, "TIMEOUT") &&
                              arg_range(m, 3, 0, 86400000LL * 365, &v))) {
        conn_reply_error(c, m, "ERR JOB.WAIT: bad arguments (JOB.WAIT id [TIMEOUT ms], ms from 0 to 1 year; 0 or none waits until the job finishes)");
        return;
    }
    m->deadline = v > 0 ? clock_now_ms() + v : 0;
    route_job_to(c, m, true);
}

static struct jobwaits *waits_of(struct shard *s)
{
    return s->waits;
}

/* Sends the reply of a JOB.WAIT unless its client was answered or left
 * (the I/O thread took the claim): then it is only freed. */
static void answer(struct shard *s, struct msg *m)
{
    if (m->claim) {
        m->claim->parked = NULL;
        if (!claim_take(m->claim)) {
            msg_free(m);
            return;
        }
    }
    shard_reply(s, m);
}

static void encode_final(struct shard *s, struct msg *m, struct job *j)
{
    if (store_job_payload(&s->st, j) < 0) {
        /* logged; the record goes out without its payload */
    }
    result_encode_job(s, m, j);
}

void sh_job_wait(struct shard *s, struct msg *m)
{
    uint64_t id;
    uint32_t attempt;
    job_id_parse(m->req.argv[1], m->req.len[1], &id, &attempt);
    struct job *j = jtable_find(&s->st.jobs, id);
    char hex[JOB_ID_HEX + 1];
    job_id_format(id, hex);
    struct jobwaits *w = waits_of(s);
    if (!j) {
        resp_buf_printf(&m->out, "-NOJOB no job %s (it never existed, or it finished and was removed)\r\n", hex);
    } else if (job_acl_refused(m, j)) {
        /* -NOPERM naming the job's queue */
    } else if (j->state == JOB_DONE || j->state == JOB_DEAD || j->state == JOB_EXPIRED) {
        encode_final(s, m, j);
    } else if (!w) {
        resp_buf_printf(&m->out, "-ERR JOB.WAIT is not available on this shard\r\n");
    } else if (m->claim && !claim_is_open(m->claim)) {
        msg_free(m); /* its client left before it arrived */
        return;
    } else {
        struct jwaiter *x = xcalloc(1, sizeof *x);
        tnode_init(&x->timer, 0);
        x->id = id;
        x->m = m;
        struct jwaiter **b = &w->b[id % WAIT_BUCKETS];
        x->next = *b;
        *b = x;
        w->n++;
        if (m->deadline > 0) {
            dtimer_add(&w->timer, &x->timer, m->deadline);
            dtimer_rearm(&w->timer);
        }
        if (m->claim)
            m->claim->parked = x;
        return;
    }
    answer(s, m);
}

static void unlink_waiter(struct jobwaits *w, struct jwaiter *x)
{
    for (struct jwaiter **p = &w->b[x->id % WAIT_BUCKETS]; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            break;
        }
    }
    dtimer_remove(&w->timer, &x->timer);
    w->n--;
}

static void job_finished(struct shard *s, struct job *j, int how)
{
    struct jobwaits *w = waits_of(s);
    if (!w || w->n == 0)
        return;
    struct jwaiter **p = &w->b[j->id % WAIT_BUCKETS];
    while (*p) {
        struct jwaiter *x = *p;
        if (x->id != j->id) {
            p = &x->next;
            continue;
        }
        *p = x->next;
        dtimer_remove(&w->timer, &x->timer);
        w->n--;
        if (how == SHARD_FINISHED_DELETED || how == SHARD_FINISHED_MOVED) {
            char hex[JOB_ID_HEX + 1];
            job_id_format(j->id, hex);
            resp_buf_printf(&x->m->out, how == SHARD_FINISHED_MOVED ? "-TRYAGAIN job %s moved with its slot to "
                            "another group: wait again\r\n" : "-NOJOB job %s was deleted before it finished\r\n", hex);
        } else {
            encode_final(s, x->m, j);
        }
        answer(s, x->m);
        free(x);
    }
}

static void wait_expired(void *arg, struct tnode *t)
{
    struct shard *s = arg;
    struct jwaiter *x = (struct jwaiter *)t;
    unlink_waiter(s->waits, x);
    resp_add_null(&x->m->out, x->m->proto);
    answer(s, x->m);
    free(x);
}

/* The shard was fenced: no job finishes here any more, so every parked
 * JOB.WAIT gets why now rather than nil at its timeout (or never). */
static void wait_fenced(struct shard *s, const char *why)
{
    struct jobwaits *w = s->waits;
    for (size_t i = 0; w && i < WAIT_BUCKETS; i++) {
        while (w->b[i]) {
            struct jwaiter *x = w->b[i];
            unlink_waiter(w, x);
            resp_add_error(&x->m->out, why);
            answer(s, x->m);
            free(x);
        }
    }
}

/* The client of a parked JOB.WAIT left (or was answered): forget it. */
static void wait_cancel(struct shard *s, struct claim *claim)
{
    struct jwaiter *x = claim->parked;
    claim->parked = NULL;
    if (!x || !s->waits)
        return;
    unlink_waiter(s->waits, x);
    msg_free(x->m);
    free(x);
}

static void wait_after(void *arg)
{
    shard_tick(arg); /* ends the turn: the nil replies go out */
}

/* ------------------------------------------------------------ the hooks */

static int result_recover(struct shard *s)
{
    if (!s->waits) {
        s->waits = xcalloc(1, sizeof *s->waits);
        dtimer_init(&s->waits->timer, s->base, wait_expired, wait_after, s);
    }
    return jext_load_jobs(s);
}

static void result_reload(struct shard *s)
{
    if (jext_load_jobs(s) < 0)
        log_error("shard %d: cannot reload job results and progress from the journal", s->id);
}

static void result_destroy(struct shard *s)
{
    struct jobwaits *w = s->waits;
    if (!w)
        return;
    for (size_t i = 0; i < WAIT_BUCKETS; i++) {
        while (w->b[i]) {
            struct jwaiter *x = w->b[i];
            w->b[i] = x->next;
            msg_free(x->m);
            free(x);
        }
    }
    dtimer_free(&w->timer);
    free(w);
    s->waits = NULL;
}

const struct shard_ext result_ext = {
    .recover = result_recover,
    .job_finished = job_finished,
    .cancel = wait_cancel,
    .reload = result_reload,
    .fenced = wait_fenced,
    .destroy = result_destroy,
};
