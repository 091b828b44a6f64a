/*
 * job.c - spool_job: one job as a reply described it, owning copies of its
 * strings and payload, plus the lazily parsed cJSON tree of the payload.
 *
 * A job is built from one element of a JOB.RESERVE or QUEUE.PEEK reply, or
 * from a JOB.GET reply: a RESP3 map or a RESP2 flat field/value array (the
 * reader's resp_val_get() handles both). Unknown fields are ignored, so a
 * newer broker that adds fields does not break older clients. `id` and
 * `payload` are required; everything else is optional.
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static bool get_str(const resp_val *v, const char *key, char **dst)
{
    bool err = false;
    *dst = sdk_val_strdup(resp_val_get(v, key), &err);
    return !err;
}

static bool get_ll(const resp_val *v, const char *key, long long *dst)
{
    const resp_val *f = resp_val_get(v, key);
    if (!f || f->type == RESP_T_NULL) {
        *dst = 0;
        return true;
    }
    return sdk_val_to_ll(f, dst) == 0;
}

static bool get_payload(const resp_val *v, spool_job *j)
{
    const resp_val *f = resp_val_get(v, "payload");
    if (!f || (f->type != RESP_T_BULK && f->type != RESP_T_SIMPLE))
        return false;
    j->payload = malloc(f->len + 1);
    if (!j->payload)
        return false;
    memcpy(j->payload, f->str, f->len);
    j->payload[f->len] = 0;
    j->payload_len = f->len;
    return true;
}

/* "errors": an array of maps attempt, time, worker, error. */
static bool get_errors(const resp_val *v, spool_job *j)
{
    const resp_val *e = resp_val_get(v, "errors");
    if (!e || e->type == RESP_T_NULL)
        return true;
    if (e->type != RESP_T_ARRAY)
        return false;
    if (e->n == 0)
        return true;
    j->errors = calloc(e->n, sizeof *j->errors);
    if (!j->errors)
        return false;
    for (size_t i = 0; i < e->n; i++) {
        spool_attempt *a = &j->errors[j->nerrors++];
        if (!get_ll(e->elem[i], "attempt", &a->attempt) || !get_ll(e->elem[i], "time", &a->time) ||
            !get_str(e->elem[i], "worker", &a->worker) || !get_str(e->elem[i], "error", &a->error))
            return false;
    }
    return true;
}

spool_job *sdk_job_from_val(const resp_val *v)
{
    if (!v || (v->type != RESP_T_MAP && v->type != RESP_T_ARRAY))
        return NULL;
    spool_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    bool ok = get_str(v, "id", &j->id) && j->id && get_payload(v, j) &&
              get_str(v, "receipt", &j->receipt) && get_str(v, "queue", &j->queue) &&
              get_str(v, "state", &j->state) && get_str(v, "last_error", &j->last_error) &&
              get_str(v, "unique", &j->unique) && get_ll(v, "attempt", &j->attempt) &&
              get_ll(v, "lease_ms", &j->lease_ms) && get_ll(v, "priority", &j->priority) &&
              get_ll(v, "retries", &j->retries) && get_ll(v, "run_at", &j->run_at) &&
              get_ll(v, "lease_until", &j->lease_until) &&
              get_ll(v, "created_at", &j->created_at) &&
              get_ll(v, "updated_at", &j->updated_at) && get_str(v, "progress", &j->progress) &&
              get_ll(v, "expires_at", &j->expires_at) && get_str(v, "group", &j->group) &&
              get_str(v, "holder", &j->holder) && get_errors(v, j);
    const resp_val *res = resp_val_get(v, "result");
    if (ok && res && (res->type == RESP_T_BULK || res->type == RESP_T_SIMPLE)) {
        j->result = malloc(res->len + 1);
        ok = j->result != NULL;
        if (ok) {
            memcpy(j->result, res->str, res->len);
            j->result[res->len] = 0;
            j->result_len = res->len;
        }
    }
    if (!ok) {
        spool_job_free(j);
        return NULL;
    }
    return j;
}

/* cJSON records the position of its last parse error in a global, so
 * worker threads parsing at the same time would race on it: parses take
 * this lock (held for nothing else). */
static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;

/* One whole JSON document or NULL: cJSON stops after the first value, so
 * a raw payload "550 no such user" would otherwise read as the number 550. */
static cJSON *parse_whole_locked(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    for (const char *p = end; j && p && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    return j;
}

const cJSON *spool_job_json(spool_job *job)
{
    if (!job->json_done_) {
        pthread_mutex_lock(&cjson_lock);
        job->json_ = parse_whole_locked(job->payload, job->payload_len);
        pthread_mutex_unlock(&cjson_lock);
        job->json_done_ = true;
    }
    return job->json_;
}

const char *spool_job_json_str(spool_job *job, const char *name)
{
    const cJSON *root = spool_job_json(job);
    if (!cJSON_IsObject(root))
        return NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

void spool_job_free(spool_job *job)
{
    if (!job)
        return;
    free(job->id);
    free(job->receipt);
    free(job->queue);
    free(job->payload);
    free(job->state);
    free(job->last_error);
    free(job->unique);
    free(job->result);
    free(job->progress);
    free(job->group);
    free(job->holder);
    for (size_t i = 0; i < job->nerrors; i++) {
        free(job->errors[i].worker);
        free(job->errors[i].error);
    }
    free(job->errors);
    cJSON_Delete(job->json_);
    free(job);
}

void spool_jobs_free(spool_job **jobs, size_t n)
{
    if (!jobs)
        return;
    for (size_t i = 0; i < n; i++)
        spool_job_free(jobs[i]);
    free(jobs);
}
