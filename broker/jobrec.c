/*
 * jobrec.c - a job as the shard commands see it: the record JOB.GET,
 * JOB.WAIT and QUEUE.PEEK return, and the lookup of an id or receipt.
 * Below cmd_job.c and cmd_result.c, which both use it.
 */
#include "jobrec.h"

#include "acl.h"
#include "msg.h"
#include "queue.h"
#include "shard.h"

#include <stdio.h>
#include <string.h>

/* A receipt of this job's delivery number whose token is not the
 * delivery's: that delivery was answered, then lost in a crash or a failed
 * commit, and the job was delivered again under the same number (or the
 * receipt is of the old form, without a token). */
static void stale_token(struct msg *m, const char *hex, int i, const struct job *j, uint32_t token)
{
    if (!token) {
        resp_buf_printf(&m->out, "-STALE receipt %.*s has no delivery token, but delivery %u of job %s has one: "
                        "use the receipt JOB.RESERVE returned for it\r\n",
                        (int)m->req.len[i], m->req.argv[i], j->attempt, hex);
        return;
    }
    resp_buf_printf(&m->out, "-STALE receipt %.*s is not the current delivery %u of job %s: that delivery was "
                    "lost when spoold restarted (or a commit failed) before it was recorded, and the job was "
                    "delivered again; do not act on it, JOB.RESERVE the job again\r\n",
                    (int)m->req.len[i], m->req.argv[i], j->attempt, hex);
}

bool job_acl_refused(struct msg *m, const struct job *j)
{
    if (!m->user || acl_key_allowed(m->user, j->q->name, j->q->namelen))
        return false;
    char hex[JOB_ID_HEX + 1], why[64], err[600];
    job_id_format(j->id, hex);
    snprintf(why, sizeof why, "(the queue of job %s)", hex);
    acl_key_error(m->user, j->q->name, j->q->namelen, why, err, sizeof err);
    resp_add_error(&m->out, err);
    return true;
}

bool jobs_acl_refused(struct shard *s, struct msg *m, int first, int last)
{
    for (int i = first; i < last; i++) {
        uint64_t id;
        uint32_t attempt;
        if (!job_id_parse(m->req.argv[i], m->req.len[i], &id, &attempt) || job_id_shard(id) != s->id)
            continue;
        struct job *j = jtable_find(&s->st.jobs, id);
        if (j && job_acl_refused(m, j))
            return true;
    }
    return false;
}

/* Finds the job of argv[i]; with a receipt, checks it names the current,
 * reserved delivery (number and token). On failure writes the error into
 * m->out (when report) and returns NULL. */
struct job *job_resolve(struct shard *s, struct msg *m, int i, bool need_reserved, bool report)
{
    uint64_t id;
    uint32_t attempt, token;
    char hex[JOB_ID_HEX + 1];
    if (!job_receipt_parse(m->req.argv[i], m->req.len[i], &id, &attempt, &token) || job_id_shard(id) != s->id)
        return NULL;
    job_id_format(id, hex);
    struct job *j = jtable_find(&s->st.jobs, id);
    if (!j) {
        if (report)
            resp_buf_printf(&m->out, "-NOJOB no job %s (it never existed, or it finished and was removed)\r\n", hex);
        return NULL;
    }
    if (job_acl_refused(m, j))
        return NULL;
    if (attempt && attempt != j->attempt) {
        if (report)
            resp_buf_printf(&m->out, "-STALE receipt %.*s is for delivery %u, but job %s is now on delivery %u "
                            "(its lease expired and it was delivered again): do not act on it\r\n",
                            (int)m->req.len[i], m->req.argv[i], attempt, hex, j->attempt);
        return NULL;
    }
    if (attempt && token != j->token) {
        if (report)
            stale_token(m, hex, i, j, token);
        return NULL;
    }
    if (need_reserved && j->state != JOB_RESERVED) {
        if (report)
            resp_buf_printf(&m->out, "-STALE job %s is %s, not reserved%s\r\n", hex, job_state_name(j->state),
                            j->state == JOB_DONE ? " (it was acked already)" : "");
        return NULL;
    }
    return j;
}

static void add_kv_int(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

static void add_kv_opt(resp_buf *b, int proto, const char *k, const char *v)
{
    resp_add_cstr(b, k);
    if (v)
        resp_add_cstr(b, v);
    else
        resp_add_null(b, proto);
}

/* "errors": the failed attempts, oldest first, each a map of attempt,
 * time, worker, error (job->history's lines). */
static void encode_history(struct msg *m, const struct job *j)
{
    resp_buf *b = &m->out;
    resp_add_cstr(b, "errors");
    resp_add_array(b, job_history_count(j));
    struct job_attempt a;
    for (const char *p = j->history; (p = job_history_next(p, &a));) {
        resp_add_map(b, m->proto, 4);
        add_kv_int(b, "attempt", a.attempt);
        add_kv_int(b, "time", a.time);
        resp_add_cstr(b, "worker");
        resp_add_bulk(b, a.worker, a.worker_len);
        resp_add_cstr(b, "error");
        resp_add_bulk(b, a.error, a.error_len);
    }
}

void encode_job(struct msg *m, const struct job *j)
{
    resp_buf *b = &m->out;
    char id[JOB_ID_TEXT];
    job_id_text(j, id);
    resp_add_map(b, m->proto, 20);
    resp_add_cstr(b, "id");
    resp_add_cstr(b, id);
    resp_add_cstr(b, "queue");
    resp_add_bulk(b, j->q->name, j->q->namelen);
    resp_add_cstr(b, "state");
    resp_add_cstr(b, job_state_name(j->state));
    resp_add_cstr(b, "payload");
    if (j->payload)
        resp_add_bulk(b, j->payload, j->len);
    else
        resp_add_null(b, m->proto);
    add_kv_int(b, "priority", j->priority);
    add_kv_int(b, "attempt", j->attempt);
    add_kv_int(b, "retries", j->retries);
    add_kv_int(b, "lease_ms", j->lease_ms ? j->lease_ms : j->q->conf.lease);
    add_kv_int(b, "run_at", j->state == JOB_DELAYED ? j->run_at : 0);
    add_kv_int(b, "lease_until", j->state == JOB_RESERVED ? j->lease_until : 0);
    add_kv_int(b, "created_at", j->created_at);
    add_kv_int(b, "updated_at", j->updated_at);
    add_kv_opt(b, m->proto, "last_error", j->last_error);
    add_kv_opt(b, m->proto, "unique", j->unique);
    resp_add_cstr(b, "result");
    if (j->result)
        resp_add_bulk(b, j->result, j->result_len);
    else
        resp_add_null(b, m->proto);
    add_kv_opt(b, m->proto, "progress", j->progress);
    add_kv_int(b, "expires_at", j->expires_at);
    resp_add_cstr(b, "group");
    if (j->group)
        resp_add_bulk(b, j->group, j->grouplen);
    else
        resp_add_null(b, m->proto);
    add_kv_opt(b, m->proto, "holder", j->state == JOB_RESERVED ? j->holder : NULL);
    encode_history(m, j);
}
