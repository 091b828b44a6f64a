/*
 * producer.c - JOB.PUSH, one at a time or many pipelined in one round trip.
 *
 * Options map to the optional arguments of JOB.PUSH in a fixed order
 * (DELAY, AT, PRI, RETRIES, LEASE, UNIQUE, BATCH); unset options are not sent, so
 * the queue's defaults apply. Options are checked here only for what the
 * wire needs (no negative delays); range checks are the broker's, whose
 * error text reaches the caller unchanged.
 *
 * Idempotency: a push without the caller's UNIQUE key carries one made here
 * (128 random bits as 32 hex digits, one per push call and item). When its
 * outcome is unknown (sdk_outcome_unknown) it is sent again with the same
 * key, after 50 ms doubling to 1 s, trying the next known node when the
 * current one refuses connections, until push_retry_ms have passed: while
 * the first job is unfinished the broker answers a resend with its id and
 * stores nothing.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS 1000

void sdk_idem_key(char key[SDK_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[SDK_KEY_LEN / 2];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < sizeof b) { /* no getrandom: time and address bits, still unique enough per client */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 30) ^
                               (unsigned long long)(uintptr_t)key ^ ((unsigned long long)getpid() << 48);
        for (size_t i = got; i < sizeof b; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            b[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < sizeof b; i++) {
        key[2 * i] = hex[b[i] >> 4];
        key[2 * i + 1] = hex[b[i] & 15];
    }
    key[SDK_KEY_LEN] = 0;
}

/* key: the automatic idempotency key, sent when opts give no unique key. */
static int push_args(spool_client *c, argvec *a, const char *queue, const char *payload,
                     size_t len, const spool_push_opts *o, const char *key)
{
    if (!queue || (!payload && len))
        return sdk_client_fail(c, SPOOL_EINVAL, "push: queue and payload are required");
    sdk_av_init(a);
    sdk_av_add(a, "JOB.PUSH");
    sdk_av_add(a, queue);
    sdk_av_addn(a, payload ? payload : "", len);
    if (!o) {
        sdk_av_opt(a, key != NULL, "UNIQUE", key);
        return 0;
    }
    if (o->delay_ms < 0 || o->at_ms < 0 || o->lease_ms < 0 || o->retries < SPOOL_NO_RETRIES)
        return sdk_client_fail(c, SPOOL_EINVAL, "push: negative delay, at, lease or retries");
    sdk_av_optll(a, o->delay_ms > 0, "DELAY", o->delay_ms);
    sdk_av_optll(a, o->at_ms > 0, "AT", o->at_ms);
    sdk_av_optll(a, o->priority != 0, "PRI", o->priority);
    sdk_av_optll(a, o->retries != 0, "RETRIES", o->retries == SPOOL_NO_RETRIES ? 0 : o->retries);
    sdk_av_optll(a, o->lease_ms > 0, "LEASE", o->lease_ms);
    sdk_av_opt(a, o->unique || key, "UNIQUE", o->unique ? o->unique : key);
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

/* Waits before a resend (RETRY_FIRST_MS doubling to RETRY_MAX_MS, never past
 * the deadline) and, when the node refuses connections, moves to the next
 * one the client knows. false: the deadline has passed. */
static bool retry_wait(spool_client *c, long long deadline, int *delay)
{
    long long left = deadline - sdk_mono_ms();
    if (left <= 0)
        return false;
    poll(NULL, 0, (int)(left < *delay ? left : *delay));
    *delay = *delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : *delay * 2;
    if (c->fd < 0 && sdk_client_ensure(c) < 0)
        sdk_client_next_node(c);
    return true;
}

/* One push, sent again with the same key while its outcome is unknown and
 * the deadline allows (key NULL: one attempt). */
static int push_keyed(spool_client *c, const char *queue, const char *payload, size_t len,
                      const spool_push_opts *o, const char *key, char *id, long long deadline)
{
    argvec a;
    int rc = push_args(c, &a, queue, payload, len, o, key);
    if (rc < 0)
        return rc;
    bool keyed = key || (o && o->unique);
    int delay = RETRY_FIRST_MS, tries = 0;
    for (;;) {
        resp_val *r = NULL;
        rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
        tries++;
        if (rc == 0)
            rc = take_id(c, r, id);
        resp_val_free(r);
        if (rc == 0 || !keyed || c->push_retry_ms < 0 || !sdk_outcome_unknown(c, rc))
            break;
        if (!retry_wait(c, deadline, &delay)) {
            char msg[SPOOL_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", c->errmsg);
            return sdk_client_fail(c, rc, "%s (push to queue '%s' sent %d times in %d ms with UNIQUE key %s; "
                                   "outcome unknown: JOB.GET or the key will tell; raise push_retry_ms to wait longer)",
                                   msg, queue, tries, c->push_retry_ms, o && o->unique ? o->unique : key);
        }
    }
    return rc;
}

/* The key a push carries unless its options name one: NULL when none. */
static const char *auto_key(const spool_client *c, const spool_push_opts *o, char key[SDK_KEY_LEN + 1])
{
    if (c->push_retry_ms < 0 || (o && o->unique))
        return NULL;
    sdk_idem_key(key);
    return key;
}

int spool_push(spool_client *c, const char *queue, const char *payload, size_t len,
               const spool_push_opts *opts, char id[SPOOL_ID_MAX])
{
    char buf[SDK_KEY_LEN + 1];
    const char *key = auto_key(c, opts, buf);
    return push_keyed(c, queue, payload, len, opts, key, id, sdk_mono_ms() + c->push_retry_ms);
}

int spool_push_str(spool_client *c, const char *queue, const char *payload,
                   const spool_push_opts *opts, char id[SPOOL_ID_MAX])
{
    return spool_push(c, queue, payload, payload ? strlen(payload) : 0, opts, id);
}

#define PUSH_RESEND 1 /* status of an item to push again alone: redirected, or its outcome unknown */

typedef struct push_fail {
    int code; /* the first failure found, 0: none */
    char msg[SPOOL_ERRMSG_MAX + 32];
} push_fail;

static void note_fail(push_fail *f, const spool_client *c, size_t i, int code)
{
    if (code < 0 && !f->code) {
        f->code = code;
        snprintf(f->msg, sizeof f->msg, "job %zu: %s", i, c->errmsg);
    }
}

/* Reads the replies of items[0..n) that were all sent. With resends on, a
 * reply that leaves the outcome unknown (and a broken connection, for every
 * item left) marks the item PUSH_RESEND. */
static void read_push_replies(spool_client *c, spool_push_item *items, size_t n, push_fail *f)
{
    bool resend = c->push_retry_ms >= 0;
    for (size_t i = 0; i < n; i++) {
        resp_val *r = NULL;
        int rc = sdk_client_read(c, 0, &r);
        if (rc < 0) { /* the connection is gone: the rest share this fate */
            for (size_t k = i; k < n; k++)
                items[k].status = resend ? PUSH_RESEND : rc;
            if (!resend)
                note_fail(f, c, i, rc);
            return;
        }
        if (sdk_is_redirect(r))
            items[i].status = PUSH_RESEND;
        else if (r->type == RESP_T_ERROR)
            items[i].status = sdk_client_error_reply(c, r);
        else
            items[i].status = take_id(c, r, items[i].id);
        resp_val_free(r);
        if (resend && items[i].status < 0 && sdk_outcome_unknown(c, items[i].status))
            items[i].status = PUSH_RESEND;
        note_fail(f, c, i, items[i].status);
    }
}

/* Pushes again, one by one with their keys (following redirects), the items
 * marked PUSH_RESEND; then reports the first failure, if any. */
static int resend_and_finish(spool_client *c, const char *queue, spool_push_item *items, size_t n,
                             char (*keys)[SDK_KEY_LEN + 1], long long deadline, push_fail *f)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].status != PUSH_RESEND)
            continue;
        const char *key = keys && keys[i][0] ? keys[i] : NULL;
        items[i].status = push_keyed(c, queue, items[i].payload, items[i].len, items[i].opts, key,
                                     items[i].id, deadline);
        note_fail(f, c, i, items[i].status);
    }
    if (f->code)
        return sdk_client_fail(c, f->code, "%s", f->msg);
    sdk_client_ok(c);
    return 0;
}

/* Writes every request; false (and rc set) when that failed. */
static bool send_pushes(spool_client *c, const char *queue, spool_push_item *items, size_t n,
                        char (*keys)[SDK_KEY_LEN + 1], int *rc)
{
    if ((*rc = sdk_client_ensure(c)) < 0)
        return false;
    resp_buf_reset(&c->out);
    for (size_t i = 0; i < n; i++) {
        argvec a;
        const char *key = keys ? auto_key(c, items[i].opts, keys[i]) : NULL;
        if (keys && !key)
            keys[i][0] = 0;
        if ((*rc = push_args(c, &a, queue, items[i].payload, items[i].len, items[i].opts, key)) < 0) {
            resp_buf_reset(&c->out); /* nothing was sent */
            return false;
        }
        sdk_client_append(c, a.argc, a.argv, a.len);
    }
    return (*rc = sdk_client_flush(c)) == 0;
}

int spool_push_many(spool_client *c, const char *queue, spool_push_item *items, size_t n)
{
    if (n == 0)
        return 0;
    long long deadline = sdk_mono_ms() + c->push_retry_ms;
    char (*keys)[SDK_KEY_LEN + 1] = NULL;
    if (c->push_retry_ms >= 0 && !(keys = calloc(n, sizeof *keys)))
        return sdk_client_fail(c, SPOOL_ENOMEM, "push_many: out of memory for %zu keys", n);
    for (size_t i = 0; i < n; i++)
        items[i].id[0] = 0;
    int rc = 0;
    push_fail f = { 0 };
    if (send_pushes(c, queue, items, n, keys, &rc)) {
        read_push_replies(c, items, n, &f);
    } else { /* none sent, or sent without a reply: all unknown, or all refused */
        bool again = keys && sdk_outcome_unknown(c, rc);
        for (size_t i = 0; i < n; i++)
            items[i].status = again ? PUSH_RESEND : rc;
        if (!again) {
            free(keys);
            return rc;
        }
    }
    rc = resend_and_finish(c, queue, items, n, keys, deadline, &f);
    free(keys);
    return rc;
}
