/*
 * producer.c - JOB.PUSH, one at a time or many pipelined in one round trip.
 *
 * Options map to the optional arguments of JOB.PUSH in a fixed order
 * (DELAY, AT, PRI, RETRIES, LEASE, UNIQUE, BATCH); unset options are not sent, so
 * the queue's defaults apply. Options are checked here only for what the
 * wire needs (no negative delays); range checks are the broker's, whose
 * error text reaches the caller unchanged.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push_args(spool_client *c, argvec *a, const char *queue, const char *payload,
                     size_t len, const spool_push_opts *o)
{
    if (!queue || (!payload && len))
        return sdk_client_fail(c, SPOOL_EINVAL, "push: queue and payload are required");
    sdk_av_init(a);
    sdk_av_add(a, "JOB.PUSH");
    sdk_av_add(a, queue);
    sdk_av_addn(a, payload ? payload : "", len);
    if (!o)
        return 0;
    if (o->delay_ms < 0 || o->at_ms < 0 || o->lease_ms < 0 || o->retries < SPOOL_NO_RETRIES)
        return sdk_client_fail(c, SPOOL_EINVAL, "push: negative delay, at, lease or retries");
    sdk_av_optll(a, o->delay_ms > 0, "DELAY", o->delay_ms);
    sdk_av_optll(a, o->at_ms > 0, "AT", o->at_ms);
    sdk_av_optll(a, o->priority != 0, "PRI", o->priority);
    sdk_av_optll(a, o->retries != 0, "RETRIES", o->retries == SPOOL_NO_RETRIES ? 0 : o->retries);
    sdk_av_optll(a, o->lease_ms > 0, "LEASE", o->lease_ms);
    sdk_av_opt(a, o->unique, "UNIQUE", o->unique);
    if (o->expires_ms < 0)
        return sdk_client_fail(c, SPOOL_EINVAL, "push: negative expires_ms");
    sdk_av_optll(a, o->expires_ms > 0, "EXPIRES", o->expires_ms);
    sdk_av_opt(a, o->group, "GROUP", o->group);
    sdk_av_opt(a, o->batch, "BATCH", o->batch);
    return 0;
}

/* Copies the id out of a JOB.PUSH reply. */
static int take_id(spool_client *c, const resp_val *v, char *id)
{
    if (v->type != RESP_T_BULK && v->type != RESP_T_SIMPLE)
        return sdk_client_fail(c, SPOOL_EPROTO, "JOB.PUSH replied with a non-string");
    if (v->len == 0 || v->len >= SPOOL_ID_MAX)
        return sdk_client_fail(c, SPOOL_EPROTO, "JOB.PUSH replied with an id of %zu bytes", v->len);
    if (id)
        memcpy(id, v->str, v->len + 1);
    return 0;
}

int spool_push(spool_client *c, const char *queue, const char *payload, size_t len,
               const spool_push_opts *opts, char id[SPOOL_ID_MAX])
{
    argvec a;
    int rc = push_args(c, &a, queue, payload, len, opts);
    if (rc < 0)
        return rc;
    resp_val *r = NULL;
    rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc == 0)
        rc = take_id(c, r, id);
    resp_val_free(r);
    return rc;
}

int spool_push_str(spool_client *c, const char *queue, const char *payload,
                   const spool_push_opts *opts, char id[SPOOL_ID_MAX])
{
    return spool_push(c, queue, payload, payload ? strlen(payload) : 0, opts, id);
}

#define PUSH_RESEND 1 /* status of an item a cluster redirected: not stored, sent again alone */

/* Reads the replies of items[0..n) that were all sent. */
static int read_push_replies(spool_client *c, spool_push_item *items, size_t n)
{
    int first = 0;
    char firstmsg[SPOOL_ERRMSG_MAX + 32] = "";
    for (size_t i = 0; i < n; i++) {
        resp_val *r = NULL;
        int rc = sdk_client_read(c, 0, &r);
        if (rc < 0) { /* the connection is gone: the rest share this fate */
            for (size_t k = i; k < n; k++)
                items[k].status = rc;
            return first ? sdk_client_fail(c, first, "%s", firstmsg) : rc;
        }
        if (sdk_is_redirect(r))
            items[i].status = PUSH_RESEND;
        else if (r->type == RESP_T_ERROR)
            items[i].status = sdk_client_error_reply(c, r);
        else
            items[i].status = take_id(c, r, items[i].id);
        resp_val_free(r);
        if (items[i].status < 0 && !first) {
            first = items[i].status;
            snprintf(firstmsg, sizeof firstmsg, "job %zu: %s", i, c->errmsg);
        }
    }
    if (first)
        return sdk_client_fail(c, first, "%s", firstmsg);
    sdk_client_ok(c);
    return 0;
}

/* Pushes again, one by one (following the redirect), the items a cluster
 * node sent elsewhere; returns rc or the first failure. */
static int resend_redirected(spool_client *c, const char *queue, spool_push_item *items, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].status != PUSH_RESEND)
            continue;
        items[i].status = spool_push(c, queue, items[i].payload, items[i].len, items[i].opts, items[i].id);
        if (items[i].status < 0 && rc == 0)
            rc = items[i].status;
    }
    return rc;
}

int spool_push_many(spool_client *c, const char *queue, spool_push_item *items, size_t n)
{
    if (n == 0)
        return 0;
    int rc = sdk_client_ensure(c);
    if (rc < 0)
        goto fail_all;
    resp_buf_reset(&c->out);
    for (size_t i = 0; i < n; i++) {
        argvec a;
        items[i].id[0] = 0;
        rc = push_args(c, &a, queue, items[i].payload, items[i].len, items[i].opts);
        if (rc < 0) {
            resp_buf_reset(&c->out); /* nothing was sent */
            goto fail_all;
        }
        sdk_client_append(c, a.argc, a.argv, a.len);
    }
    rc = sdk_client_flush(c);
    if (rc < 0)
        goto fail_all;
    return resend_redirected(c, queue, items, n, read_push_replies(c, items, n));
fail_all:
    for (size_t i = 0; i < n; i++)
        items[i].status = rc;
    return rc;
}
