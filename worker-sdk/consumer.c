/*
 * consumer.c - JOB.RESERVE, JOB.ACK, JOB.NACK and JOB.TOUCH.
 *
 * A reserve that may block is given the server's wait plus the client's
 * I/O timeout before the client gives up on the reply; "wait forever"
 * disables the read deadline. Replies are validated as a whole before any
 * job is handed out: a malformed reply is SPOOL_EPROTO and hands out
 * nothing (the jobs in it stay reserved on the broker until their leases
 * expire, the same as if this worker had died).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* =============================================================== reserve */

static int reserve_args(spool_client *c, argvec *a, const char *const *queues, size_t nq,
                        const spool_reserve_opts *o, size_t max)
{
    if (!queues || nq == 0 || max == 0)
        return sdk_client_fail(c, SPOOL_EINVAL, "reserve: no queue or no room for jobs");
    if (nq > SPOOL_MAX_ARGS - 10)
        return sdk_client_fail(c, SPOOL_EINVAL, "reserve: more than %d queues", SPOOL_MAX_ARGS - 10);
    sdk_av_init(a);
    sdk_av_add(a, "JOB.RESERVE");
    int timeout = o ? o->timeout_ms : 0;
    if (timeout == SPOOL_NOWAIT) {
        sdk_av_add(a, "NOWAIT");
    } else if (timeout > 0) {
        sdk_av_add(a, "TIMEOUT");
        sdk_av_addll(a, timeout);
    } else if (timeout < 0) {
        return sdk_client_fail(c, SPOOL_EINVAL, "reserve: negative timeout");
    }
    sdk_av_optll(a, max > 1, "COUNT", (long long)max);
    sdk_av_optll(a, o && o->lease_ms > 0, "LEASE", o ? o->lease_ms : 0);
    sdk_av_add(a, "FROM");
    for (size_t i = 0; i < nq; i++) {
        if (!queues[i])
            return sdk_client_fail(c, SPOOL_EINVAL, "reserve: queue %zu is NULL", i);
        sdk_av_add(a, queues[i]);
    }
    return 0;
}

/* Turns a RESERVE reply into jobs: the count, or a code. */
static int take_jobs(spool_client *c, const resp_val *r, spool_job **jobs, size_t max)
{
    if (sdk_val_is_nil(r))
        return 0;
    if (r->type != RESP_T_ARRAY && r->type != RESP_T_SET)
        return sdk_client_fail(c, SPOOL_EPROTO, "JOB.RESERVE replied with neither jobs nor nil");
    if (r->n > max)
        return sdk_client_fail(c, SPOOL_EPROTO, "JOB.RESERVE returned %zu jobs, asked for %zu", r->n, max);
    for (size_t i = 0; i < r->n; i++) {
        jobs[i] = sdk_job_from_val(r->elem[i]);
        if (!jobs[i] || !jobs[i]->receipt) {
            spool_job_free(jobs[i]);
            for (size_t k = 0; k < i; k++) {
                spool_job_free(jobs[k]);
                jobs[k] = NULL;
            }
            jobs[i] = NULL;
            return sdk_client_fail(c, SPOOL_EPROTO, "JOB.RESERVE returned a malformed job (#%zu)", i);
        }
    }
    return (int)r->n;
}

int spool_reserve(spool_client *c, const char *const *queues, size_t nqueues,
                  const spool_reserve_opts *opts, spool_job **jobs, size_t max)
{
    argvec a;
    int rc = reserve_args(c, &a, queues, nqueues, opts, max);
    if (rc < 0)
        return rc;
    int timeout = opts ? opts->timeout_ms : 0;
    int wait = timeout == 0 ? -1 : timeout == SPOOL_NOWAIT ? 0 : timeout;
    resp_val *r = NULL;
    rc = sdk_client_call(c, a.argc, a.argv, a.len, wait, &r);
    if (rc == 0)
        rc = take_jobs(c, r, jobs, max);
    resp_val_free(r);
    return rc;
}

int spool_reserve_one(spool_client *c, const char *queue, int timeout_ms, spool_job **job)
{
    const char *qs[] = { queue };
    spool_reserve_opts o = { .timeout_ms = timeout_ms };
    *job = NULL;
    return spool_reserve(c, qs, 1, &o, job, 1);
}

/* =================================================================== ack */

int spool_ack(spool_client *c, const char *receipt)
{
    if (!receipt)
        return sdk_client_fail(c, SPOOL_EINVAL, "ack: no receipt");
    const char *argv[] = { "JOB.ACK", receipt };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    long long n = 0;
    if (rc == 0 && sdk_val_to_ll(r, &n) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.ACK replied with a non-integer");
    else if (rc == 0 && n != 1)
        rc = sdk_client_fail(c, SPOOL_ESTALE, "JOB.ACK %s acknowledged nothing", receipt);
    resp_val_free(r);
    return rc;
}

int spool_ack_many(spool_client *c, const char *const *receipts, size_t n)
{
    if (n == 0)
        return 0;
    if (n > 100000)
        return sdk_client_fail(c, SPOOL_EINVAL, "ack: more than 100000 receipts");
    const char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv)
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    argv[0] = "JOB.ACK";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = receipts[i];
    resp_val *r = NULL;
    int rc = sdk_client_call(c, (int)n + 1, argv, NULL, 0, &r);
    free(argv);
    long long acked = 0;
    if (rc == 0 && sdk_val_to_ll(r, &acked) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.ACK replied with a non-integer");
    resp_val_free(r);
    return rc < 0 ? rc : (int)acked;
}

/* ================================================================== nack */

int spool_nack(spool_client *c, const char *receipt, int64_t delay_ms, const char *error,
               unsigned flags)
{
    if (!receipt)
        return sdk_client_fail(c, SPOOL_EINVAL, "nack: no receipt");
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "JOB.NACK");
    sdk_av_add(&a, receipt);
    sdk_av_optll(&a, delay_ms >= 0, "DELAY", delay_ms);
    sdk_av_opt(&a, error, "ERROR", error);
    if (flags & SPOOL_NACK_DEAD)
        sdk_av_add(&a, "DEAD");
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc == 0) {
        bool text = r->type == RESP_T_SIMPLE || r->type == RESP_T_BULK;
        if (text && !strcmp(r->str, "retry"))
            rc = SPOOL_NACK_RETRIED;
        else if (text && !strcmp(r->str, "dead"))
            rc = SPOOL_NACK_WENT_DEAD;
        else
            rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.NACK replied with neither retry nor dead");
    }
    resp_val_free(r);
    return rc;
}

/* ================================================================= touch */

int spool_touch(spool_client *c, const char *receipt, int64_t lease_ms, long long *lease_until)
{
    if (!receipt)
        return sdk_client_fail(c, SPOOL_EINVAL, "touch: no receipt");
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "JOB.TOUCH");
    sdk_av_add(&a, receipt);
    sdk_av_optll(&a, lease_ms > 0, "LEASE", lease_ms);
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    long long until = 0;
    if (rc == 0 && sdk_val_to_ll(r, &until) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.TOUCH replied with a non-integer");
    if (rc == 0 && lease_until)
        *lease_until = until;
    resp_val_free(r);
    return rc;
}
