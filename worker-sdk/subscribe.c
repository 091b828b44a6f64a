/*
 * subscribe.c - spool_subscriber: a connection that listens to pub/sub
 * channels (SUBSCRIBE / PSUBSCRIBE) and hands out their messages, e.g.
 * spoold's job lifecycle events on "spool:events:<queue>".
 *
 * A subscriber owns its own spool_client, always on RESP2: there a
 * subscribed connection receives plain arrays ("subscribe", "message",
 * "pmessage"), which the ordinary reply reader returns, whereas RESP3
 * sends push frames that the request/reply path skips on purpose.
 *
 * Invariants: once spool_subscribe() returned 0 every channel and pattern
 * is confirmed by the server; a subscriber whose connection broke stays
 * broken (no silent resubscribe that could hide a gap in the events): the
 * caller sees the error and decides. One thread at a time, like a client.
 */
#include "internal.h"
#include "net.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct spool_subscriber {
    spool_client *c;
};

/* ============================================================ subscribe */

/* Sends CMD names[0..n) and reads the n confirmations ([kind, name, count]). */
static int subscribe_names(spool_client *c, const char *cmd, const char *const *names, size_t n)
{
    if (n == 0)
        return 0;
    const char **argv = calloc(n + 1, sizeof *argv);
    if (!argv)
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    argv[0] = cmd;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = names[i];
    resp_buf_reset(&c->out);
    sdk_client_append(c, (int)(n + 1), argv, NULL);
    free(argv);
    int rc = sdk_client_flush(c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        resp_val *v = NULL;
        rc = sdk_client_read(c, 0, &v);
        if (rc == 0 && v->type == RESP_T_ERROR)
            rc = sdk_client_error_reply(c, v);
        else if (rc == 0 && (v->type != RESP_T_ARRAY || v->n != 3))
            rc = sdk_client_fail(c, SPOOL_EPROTO, "%s was not confirmed", cmd);
        resp_val_free(v);
    }
    return rc;
}

int spool_subscribe(spool_subscriber **out, const spool_options *opt,
                    const char *const *channels, size_t nchannels,
                    const char *const *patterns, size_t npatterns)
{
    *out = NULL;
    spool_subscriber *s = calloc(1, sizeof *s);
    if (!s)
        return SPOOL_ENOMEM;
    *out = s;
    spool_options o = opt ? *opt : (spool_options){ 0 };
    o.protocol = 2;
    int rc = spool_connect(&s->c, &o);
    if (rc == 0 && nchannels + npatterns == 0)
        rc = sdk_client_fail(s->c, SPOOL_EINVAL, "nothing to subscribe to");
    if (rc == 0)
        rc = subscribe_names(s->c, "SUBSCRIBE", channels, nchannels);
    if (rc == 0)
        rc = subscribe_names(s->c, "PSUBSCRIBE", patterns, npatterns);
    if (rc < 0 && s->c)
        sdk_client_disconnect(s->c);
    return rc;
}

/* ============================================================= messages */

static char *dup_val(const resp_val *v)
{
    bool err = false;
    char *s = sdk_val_strdup(v, &err);
    return s ? s : strdup("");
}

/* A message from a ["message", ch, data] or ["pmessage", pat, ch, data]
 * array; NULL for anything else (confirmations, pongs). */
static spool_message *message_from(const resp_val *v)
{
    if (v->type != RESP_T_ARRAY || v->n < 3 || v->elem[0]->type != RESP_T_BULK)
        return NULL;
    bool pattern = v->n == 4 && !strcmp(v->elem[0]->str, "pmessage");
    if (!pattern && !(v->n == 3 && !strcmp(v->elem[0]->str, "message")))
        return NULL;
    const resp_val *data = v->elem[v->n - 1];
    spool_message *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->pattern = pattern ? dup_val(v->elem[1]) : NULL;
    m->channel = dup_val(v->elem[v->n - 2]);
    m->data = malloc(data->len + 1);
    if (m->data && data->str) {
        memcpy(m->data, data->str, data->len);
        m->data[data->len] = '\0';
        m->len = data->len;
    }
    if (!m->channel || !m->data || (pattern && !m->pattern)) {
        spool_message_free(m);
        return NULL;
    }
    return m;
}

/* Waits until bytes are buffered or readable: 1, 0 on timeout, or a code. */
static int wait_readable(spool_client *c, long long deadline)
{
    if (c->in_off < c->in.len)
        return 1;
    int ev = sdk_net_poll(c->fd, POLLIN, deadline);
    if (ev < 0)
        return sdk_client_fail(c, SPOOL_EIO, "poll failed");
    return ev > 0;
}

int spool_next_message(spool_subscriber *s, int timeout_ms, spool_message **msg)
{
    *msg = NULL;
    spool_client *c = s->c;
    if (!c)
        return SPOOL_ECONN;
    if (c->fd < 0)
        return sdk_client_fail(c, SPOOL_ECONN, "the subscription's connection is closed");
    long long deadline = timeout_ms < 0 ? -1 : sdk_mono_ms() + timeout_ms;
    for (;;) {
        int r = wait_readable(c, deadline);
        if (r <= 0)
            return r;
        resp_val *v = NULL;
        r = sdk_client_read(c, 0, &v);
        if (r < 0)
            return r;
        *msg = message_from(v);
        resp_val_free(v);
        if (*msg)
            return 1;
    }
}

void spool_message_free(spool_message *m)
{
    if (!m)
        return;
    free(m->pattern);
    free(m->channel);
    free(m->data);
    free(m);
}

const char *spool_subscriber_errmsg(const spool_subscriber *s)
{
    return s && s->c ? spool_errmsg(s->c) : "out of memory";
}

void spool_subscriber_close(spool_subscriber *s)
{
    if (!s)
        return;
    spool_close(s->c);
    free(s);
}
