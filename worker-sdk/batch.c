/*
 * batch.c - batches: BATCH.NEW, BATCH.CLOSE, BATCH.GET (jobs join with
 * spool_push_opts.batch).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

int spool_batch_new(spool_client *c, const spool_batch_opts *o, char id[SPOOL_ID_MAX])
{
    argvec a;
    sdk_av_init(&a);
    sdk_av_add(&a, "BATCH.NEW");
    const char *words[] = { "ON-SUCCESS", "ON-COMPLETE", "ON-DEATH" };
    const char *q[] = { o ? o->on_success_queue : NULL, o ? o->on_complete_queue : NULL,
                        o ? o->on_death_queue : NULL };
    const char *p[] = { o ? o->on_success_payload : NULL, o ? o->on_complete_payload : NULL,
                        o ? o->on_death_payload : NULL };
    for (int i = 0; i < 3; i++) {
        if (!q[i] != !p[i])
            return sdk_client_fail(c, SPOOL_EINVAL, "batch: %s needs both a queue and a payload", words[i]);
        if (q[i]) {
            sdk_av_add(&a, words[i]);
            sdk_av_add(&a, q[i]);
            sdk_av_add(&a, p[i]);
        }
    }
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc == 0 && (r->type != RESP_T_BULK || r->len == 0 || r->len >= SPOOL_ID_MAX))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "BATCH.NEW replied with something other than an id");
    if (rc == 0 && id)
        snprintf(id, SPOOL_ID_MAX, "%s", r->str);
    resp_val_free(r);
    return rc;
}

int spool_batch_close(spool_client *c, const char *id)
{
    const char *argv[] = { "BATCH.CLOSE", id };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc == 0 && !(r->type == RESP_T_SIMPLE && !strcmp(r->str, "OK")))
        rc = sdk_client_fail(c, SPOOL_EPROTO, "BATCH.CLOSE replied with something other than OK");
    resp_val_free(r);
    return rc;
}

int spool_batch_get(spool_client *c, const char *id, spool_batch_info *out)
{
    memset(out, 0, sizeof *out);
    const char *argv[] = { "BATCH.GET", id };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 2, argv, NULL, 0, &r);
    if (rc < 0 || sdk_val_is_nil(r)) {
        resp_val_free(r);
        return rc;
    }
    const struct { const char *k; long long *v; } f[] = {
        { "total", &out->total }, { "done", &out->done }, { "dead", &out->dead },
        { "unfinished", &out->unfinished }, { "pending", &out->pending },
        { "created_at", &out->created_at }, { "updated_at", &out->updated_at },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (sdk_val_to_ll(resp_val_get(r, f[i].k), f[i].v) != 0)
            rc = sdk_client_fail(c, SPOOL_EPROTO, "BATCH.GET field %s is not a number", f[i].k);
    const resp_val *st = resp_val_get(r, "state");
    if (st && (st->type == RESP_T_BULK || st->type == RESP_T_SIMPLE))
        snprintf(out->state, sizeof out->state, "%s", st->str);
    const resp_val *fired = resp_val_get(r, "fired");
    for (size_t i = 0; fired && (fired->type == RESP_T_ARRAY || fired->type == RESP_T_SET) && i < fired->n; i++) {
        const char *w = fired->elem[i]->str;
        out->fired_success |= w && !strcmp(w, "success");
        out->fired_complete |= w && !strcmp(w, "complete");
        out->fired_death |= w && !strcmp(w, "death");
    }
    resp_val_free(r);
    return rc < 0 ? rc : 1;
}
