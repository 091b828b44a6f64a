/*
 * results.c - job results, progress reports and waiting for a job:
 * JOB.ACK … RESULT, JOB.PROGRESS, JOB.WAIT.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int spool_ack_result(spool_client *c, const char *receipt, const char *result, size_t len)
{
    if (!receipt || !result)
        return sdk_client_fail(c, SPOOL_EINVAL, "ack with result: no receipt or no result");
    const char *argv[] = { "JOB.ACK", receipt, "RESULT", result };
    size_t lens[] = { 7, strlen(receipt), 6, len };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 4, argv, lens, 0, &r);
    long long n = 0;
    if (rc == 0 && sdk_val_to_ll(r, &n) != 0)
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.ACK replied with a non-integer");
    else if (rc == 0 && n != 1)
        rc = sdk_client_fail(c, SPOOL_ESTALE, "JOB.ACK %s acknowledged nothing", receipt);
    resp_val_free(r);
    return rc;
}

int spool_job_progress(spool_client *c, const char *receipt, const char *value)
{
    if (!receipt || !value)
        return sdk_client_fail(c, SPOOL_EINVAL, "progress: no receipt or no value");
    const char *argv[] = { "JOB.PROGRESS", receipt, value };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 3, argv, NULL, 0, &r);
    if (rc == 0 && !(r->type == RESP_T_SIMPLE && !strcmp(r->str, "OK")))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.PROGRESS replied with something other than OK");
    resp_val_free(r);
    return rc;
}

int spool_job_wait(spool_client *c, const char *id, int timeout_ms, spool_job **job)
{
    *job = NULL;
    if (!id || timeout_ms < 0)
        return sdk_client_fail(c, SPOOL_EINVAL, "wait: no id, or a negative timeout");
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "JOB.WAIT");
    sdk_av_add(&a, id);
    sdk_av_optll(&a, timeout_ms > 0, "TIMEOUT", timeout_ms);
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, timeout_ms > 0 ? timeout_ms : -1, &r);
    if (rc == 0 && sdk_val_is_nil(r)) {
        resp_val_free(r);
        return 0;
    }
    if (rc == 0 && !(*job = sdk_job_from_val(r)))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "JOB.WAIT replied with a malformed job");
    resp_val_free(r);
    return rc < 0 ? rc : 1;
}
