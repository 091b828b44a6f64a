/*
 * test_pubsub.c - pub/sub and job lifecycle events against a real spoold
 * running several I/O threads: SUBSCRIBE/UNSUBSCRIBE/PSUBSCRIBE/
 * PUNSUBSCRIBE replies in RESP2 (arrays) and RESP3 (push frames), PUBLISH
 * receiver counts across connections on different I/O threads, PUBSUB
 * CHANNELS/NUMSUB/NUMPAT, the RESP2 subscribed mode, and the JSON events
 * spool publishes on spool:events:<queue> (pushed, reserved, acked,
 * retried, expired, dead).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define JA "{\"job\":\"a\"}"
#define JB "{\"job\":\"b\"}"
#define EVENT_WAIT_MS 5000

static spoold *srv;
static cli *c;

static void start_threads(void)
{
    srv = spoold_start("--io-threads", "2", NULL);
    c = cli_connect(srv->port);
}

static void stop_default(void)
{
    cli_close(c);
    c = NULL;
    spoold_stop(srv);
    srv = NULL;
}

TestSuite(pubsub, .init = start_threads, .fini = stop_default, .timeout = 60);

/* ============================================================ helpers */

/* A pub/sub frame: an array (RESP2) or push (RESP3) whose elements are
 * given as a format: 's' = bulk string (next vararg), 'i' = integer (next
 * vararg, long long). Takes v. */
static void expect_frame_at(const char *f, int l, resp_val *v, resp_type type, const char *fmt, ...)
{
    size_t n = strlen(fmt);
    if (v->type != type || v->n != n)
        cr_assert_fail("%s:%d: expected %s of %zu, got %s", f, l, resp_type_name(type), n,
                       resp_describe(v));
    va_list ap;
    va_start(ap, fmt);
    for (size_t i = 0; i < n; i++) {
        const resp_val *e = v->elem[i];
        if (fmt[i] == 's') {
            const char *want = va_arg(ap, const char *);
            if (e->type != RESP_T_BULK || strcmp(e->str, want) != 0)
                cr_assert_fail("%s:%d: element %zu: expected \"%s\", got %s", f, l, i, want,
                               resp_describe(e));
        } else {
            long long want = va_arg(ap, long long);
            if (e->type != RESP_T_INT || e->integer != want)
                cr_assert_fail("%s:%d: element %zu: expected :%lld, got %s", f, l, i, want,
                               resp_describe(e));
        }
    }
    va_end(ap);
    resp_val_free(v);
}

#define A2 RESP_T_ARRAY
#define P3 RESP_T_PUSH
#define expect_frame(v, t, fmt, ...) expect_frame_at(__FILE__, __LINE__, (v), (t), (fmt), __VA_ARGS__)
#define LL(x) ((long long)(x))

static void hello3(cli *cl)
{
    resp_val *v = CMD(cl, "HELLO", "3");
    cr_assert(v->type == RESP_T_MAP, "HELLO 3: got %s", resp_describe(v));
    resp_val_free(v);
}

static void expect_silence(cli *cl, int ms, const char *who)
{
    resp_val *v = NULL;
    int r = cli_poll_reply(cl, ms, &v);
    cr_assert(r == 0, "%s: expected nothing, got %s", who,
              r > 0 ? resp_describe(v) : "connection closed");
}

static void reserve_receipt(cli *cl, const char *q, char *receipt, size_t cap)
{
    resp_val *v = CMD(cl, "JOB.RESERVE", "NOWAIT", "FROM", q);
    cr_assert(v->type == RESP_T_ARRAY && v->n == 1, "JOB.RESERVE NOWAIT FROM %s: %s", q,
              resp_describe(v));
    snprintf(receipt, cap, "%s", field_str(v->elem[0], "receipt"));
    resp_val_free(v);
}

/* One lifecycle event. */
typedef struct ev {
    char channel[96];
    char event[32];
    char queue[64];
    char id[48];
    long long attempt;
    long long time;
    bool has_error;
    char error[128];
} ev;

/* Reads the next message (or pmessage) on a subscriber within
 * EVENT_WAIT_MS and parses its JSON event. */
static ev next_event_at(const char *f, int l, cli *s)
{
    resp_val *v = NULL;
    int r = cli_poll_reply(s, EVENT_WAIT_MS, &v);
    if (r != 1)
        cr_assert_fail("%s:%d: no event within %d ms (%s)", f, l, EVENT_WAIT_MS,
                       r == 0 ? "silence" : "connection closed");
    bool frame = (v->type == RESP_T_ARRAY || v->type == RESP_T_PUSH) && v->n >= 3 &&
                 v->elem[0]->type == RESP_T_BULK;
    if (!frame)
        cr_assert_fail("%s:%d: expected a message frame, got %s", f, l, resp_describe(v));
    const resp_val *chan, *body;
    if (strcmp(v->elem[0]->str, "message") == 0 && v->n == 3) {
        chan = v->elem[1];
        body = v->elem[2];
    } else if (strcmp(v->elem[0]->str, "pmessage") == 0 && v->n == 4) {
        chan = v->elem[2];
        body = v->elem[3];
    } else {
        cr_assert_fail("%s:%d: expected message/pmessage, got \"%s\" of %zu", f, l,
                       v->elem[0]->str, v->n);
        return (ev){ 0 };
    }
    ev e;
    memset(&e, 0, sizeof e);
    snprintf(e.channel, sizeof e.channel, "%s", chan->str);
    cJSON *j = cJSON_Parse(body->str);
    if (!j || !cJSON_IsObject(j))
        cr_assert_fail("%s:%d: event is not a JSON object: %s", f, l, body->str);
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(j, "event");
    const cJSON *queue = cJSON_GetObjectItemCaseSensitive(j, "queue");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(j, "attempt");
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(j, "time");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(j, "error");
    bool ok = cJSON_IsString(event) && cJSON_IsString(queue) && cJSON_IsString(id) &&
              cJSON_IsNumber(attempt) && cJSON_IsNumber(time);
    if (!ok)
        cr_assert_fail("%s:%d: event lacks event/queue/id (strings) or attempt/time (numbers): %s",
                       f, l, body->str);
    snprintf(e.event, sizeof e.event, "%s", event->valuestring);
    snprintf(e.queue, sizeof e.queue, "%s", queue->valuestring);
    snprintf(e.id, sizeof e.id, "%s", id->valuestring);
    e.attempt = (long long)attempt->valuedouble;
    e.time = (long long)time->valuedouble;
    if (error) {
        if (!cJSON_IsString(error))
            cr_assert_fail("%s:%d: \"error\" is not a string: %s", f, l, body->str);
        e.has_error = true;
        snprintf(e.error, sizeof e.error, "%s", error->valuestring);
    }
    cJSON_Delete(j);
    resp_val_free(v);
    return e;
}

#define NEXT_EVENT(s) next_event_at(__FILE__, __LINE__, (s))

/* Checks an event's fields. */
static void check_event_at(const char *f, int l, const ev *e, const char *event, const char *queue,
                           const char *id, long long attempt)
{
    if (strcmp(e->event, event) != 0)
        cr_assert_fail("%s:%d: event \"%s\", expected \"%s\" (job %s)", f, l, e->event, event, e->id);
    if (strcmp(e->queue, queue) != 0)
        cr_assert_fail("%s:%d: %s event: queue \"%s\", expected \"%s\"", f, l, event, e->queue, queue);
    if (strcmp(e->id, id) != 0)
        cr_assert_fail("%s:%d: %s event: id %s, expected %s", f, l, event, e->id, id);
    if (e->attempt != attempt)
        cr_assert_fail("%s:%d: %s event: attempt %lld, expected %lld", f, l, event, e->attempt,
                       attempt);
    char chan[96];
    snprintf(chan, sizeof chan, "spool:events:%s", queue);
    if (strcmp(e->channel, chan) != 0)
        cr_assert_fail("%s:%d: %s event on channel %s, expected %s", f, l, event, e->channel, chan);
}

#define CHECK_EVENT(e, ev_, q, id, att) check_event_at(__FILE__, __LINE__, &(e), (ev_), (q), (id), (att))

/* Subscribes a new RESP2 connection to one channel. */
static cli *subscriber(const char *channel)
{
    cli *s = cli_connect(srv->port);
    SEND(s, "SUBSCRIBE", channel);
    expect_frame(cli_read(s), A2, "ssi", "subscribe", channel, LL(1));
    return s;
}

/* ==================================================== subscribe, RESP2 */

Test(pubsub, subscribe_unsubscribe_resp2)
{
    cli *s = cli_connect(srv->port);
    SEND(s, "SUBSCRIBE", "a", "b");
    expect_frame(cli_read(s), A2, "ssi", "subscribe", "a", LL(1));
    expect_frame(cli_read(s), A2, "ssi", "subscribe", "b", LL(2));
    expect_int(CMD(c, "PUBLISH", "a", "hello"), 1);
    expect_frame(cli_read(s), A2, "sss", "message", "a", "hello");
    expect_int(CMD(c, "PUBLISH", "b", "world"), 1);
    expect_frame(cli_read(s), A2, "sss", "message", "b", "world");
    expect_int(CMD(c, "PUBLISH", "nobody", "x"), 0);
    SEND(s, "UNSUBSCRIBE", "a");
    expect_frame(cli_read(s), A2, "ssi", "unsubscribe", "a", LL(1));
    expect_int(CMD(c, "PUBLISH", "a", "gone"), 0);
    SEND(s, "UNSUBSCRIBE");
    expect_frame(cli_read(s), A2, "ssi", "unsubscribe", "b", LL(0));
    expect_int(CMD(c, "PUBLISH", "b", "gone"), 0);
    /* Out of subscribed mode: ordinary commands work again. */
    expect_simple(CMD(s, "PING"), "PONG");
    expect_int(CMD(s, "LPUSH", "q", JA), 1);
    expect_silence(s, 100, "unsubscribed connection");
    cli_close(s);
}

Test(pubsub, psubscribe_punsubscribe_resp2)
{
    cli *s = cli_connect(srv->port);
    SEND(s, "SUBSCRIBE", "plain");
    expect_frame(cli_read(s), A2, "ssi", "subscribe", "plain", LL(1));
    SEND(s, "PSUBSCRIBE", "news.*", "h?llo");
    expect_frame(cli_read(s), A2, "ssi", "psubscribe", "news.*", LL(2));
    expect_frame(cli_read(s), A2, "ssi", "psubscribe", "h?llo", LL(3));
    expect_int(CMD(c, "PUBLISH", "news.sport", "goal"), 1);
    expect_frame(cli_read(s), A2, "ssss", "pmessage", "news.*", "news.sport", "goal");
    expect_int(CMD(c, "PUBLISH", "hallo", "hi"), 1);
    expect_frame(cli_read(s), A2, "ssss", "pmessage", "h?llo", "hallo", "hi");
    expect_int(CMD(c, "PUBLISH", "news", "no"), 0);
    SEND(s, "PUNSUBSCRIBE", "news.*");
    expect_frame(cli_read(s), A2, "ssi", "punsubscribe", "news.*", LL(2));
    expect_int(CMD(c, "PUBLISH", "news.sport", "goal"), 0);
    SEND(s, "PUNSUBSCRIBE");
    expect_frame(cli_read(s), A2, "ssi", "punsubscribe", "h?llo", LL(1));
    expect_int(CMD(c, "PUBLISH", "plain", "still"), 1);
    expect_frame(cli_read(s), A2, "sss", "message", "plain", "still");
    cli_close(s);
}

Test(pubsub, resp2_subscribed_mode_refuses_other_commands)
{
    cli *s = subscriber("a");
    resp_val *v = CMD(s, "LPUSH", "q", JA);
    cr_assert(v->type == RESP_T_ERROR && strncmp(v->str, "ERR Can't execute 'lpush'", 25) == 0,
              "LPUSH while subscribed (RESP2): %s", resp_describe(v));
    resp_val_free(v);
    v = CMD(s, "JOB.PUSH", "q", JA);
    cr_assert(v->type == RESP_T_ERROR && strncmp(v->str, "ERR Can't execute", 17) == 0,
              "JOB.PUSH while subscribed (RESP2): %s", resp_describe(v));
    resp_val_free(v);
    cr_assert_eq(llen(c, "q"), 0);
    expect_frame(CMD(s, "PING"), A2, "ss", "pong", "");
    expect_frame(CMD(s, "PING", "hey"), A2, "ss", "pong", "hey");
    /* Still subscribed. */
    expect_int(CMD(c, "PUBLISH", "a", "m"), 1);
    expect_frame(cli_read(s), A2, "sss", "message", "a", "m");
    cli_close(s);
}

/* ==================================================== subscribe, RESP3 */

Test(pubsub, resp3_push_frames_and_commands_while_subscribed)
{
    cli *s = cli_connect(srv->port);
    hello3(s);
    SEND(s, "SUBSCRIBE", "a");
    cli_expect_raw(s, ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    SEND(s, "PSUBSCRIBE", "x*");
    expect_frame(cli_read(s), P3, "ssi", "psubscribe", "x*", LL(2));
    /* RESP3 connections may keep issuing commands. */
    expect_simple(CMD(s, "PING"), "PONG");
    expect_int(CMD(s, "LPUSH", "q", JA), 1);
    expect_int(CMD(c, "PUBLISH", "a", "hello"), 1);
    expect_frame(cli_read(s), P3, "sss", "message", "a", "hello");
    expect_int(CMD(c, "PUBLISH", "xy", "z"), 1);
    expect_frame(cli_read(s), P3, "ssss", "pmessage", "x*", "xy", "z");
    SEND(s, "UNSUBSCRIBE", "a");
    expect_frame(cli_read(s), P3, "ssi", "unsubscribe", "a", LL(1));
    SEND(s, "PUNSUBSCRIBE", "x*");
    expect_frame(cli_read(s), P3, "ssi", "punsubscribe", "x*", LL(0));
    expect_int(CMD(c, "PUBLISH", "a", "gone"), 0);
    cli_close(s);
}

/* ====================================================== PUBLISH, PUBSUB */

Test(pubsub, publish_counts_receivers_on_every_io_thread)
{
    enum { NS = 5 };
    cli *s[NS];
    for (int i = 0; i < NS; i++) {
        s[i] = cli_connect(srv->port);
        if (i == NS - 1)
            hello3(s[i]);
        SEND(s[i], "SUBSCRIBE", "ch");
        expect_frame(cli_read(s[i]), i == NS - 1 ? P3 : A2, "ssi", "subscribe", "ch", LL(1));
    }
    cli *p = cli_connect(srv->port);
    SEND(p, "PSUBSCRIBE", "c*");
    expect_frame(cli_read(p), A2, "ssi", "psubscribe", "c*", LL(1));
    /* Publish from a connection of its own as well as from c. */
    cli *pub = cli_connect(srv->port);
    expect_int(CMD(pub, "PUBLISH", "ch", "one"), NS + 1);
    expect_int(CMD(c, "PUBLISH", "ch", "two"), NS + 1);
    for (int i = 0; i < NS; i++) {
        resp_type t = i == NS - 1 ? P3 : A2;
        expect_frame(cli_read(s[i]), t, "sss", "message", "ch", "one");
        expect_frame(cli_read(s[i]), t, "sss", "message", "ch", "two");
    }
    expect_frame(cli_read(p), A2, "ssss", "pmessage", "c*", "ch", "one");
    expect_frame(cli_read(p), A2, "ssss", "pmessage", "c*", "ch", "two");
    /* A subscriber that closes stops counting. */
    cli_close(s[0]);
    s[0] = NULL;
    long long last = -1;
    bool dropped = wait_until(({
        resp_val *v = CMD(c, "PUBSUB", "NUMSUB", "ch");
        cr_assert(v->type == RESP_T_ARRAY && v->n == 2 && v->elem[1]->type == RESP_T_INT,
                  "PUBSUB NUMSUB: %s", resp_describe(v));
        last = v->elem[1]->integer;
        resp_val_free(v);
        last == NS - 1;
    }), 5000);
    cr_assert(dropped, "NUMSUB ch after one subscriber closed: %lld", last);
    expect_int(CMD(pub, "PUBLISH", "ch", "three"), NS);
    for (int i = 1; i < NS; i++)
        cli_close(s[i]);
    cli_close(p);
    cli_close(pub);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* PUBSUB CHANNELS reply, sorted, as one comma-joined string. */
static const char *channels(const char *pattern)
{
    static char out[512];
    resp_val *v = pattern ? CMD(c, "PUBSUB", "CHANNELS", pattern) : CMD(c, "PUBSUB", "CHANNELS");
    cr_assert(v->type == RESP_T_ARRAY, "PUBSUB CHANNELS (RESP2): %s",
              resp_describe(v));
    const char *names[32];
    cr_assert(v->n <= 32);
    for (size_t i = 0; i < v->n; i++) {
        cr_assert(v->elem[i]->type == RESP_T_BULK);
        names[i] = v->elem[i]->str;
    }
    qsort(names, v->n, sizeof names[0], cmp_str);
    out[0] = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            strncat(out, ",", sizeof out - strlen(out) - 1);
        strncat(out, names[i], sizeof out - strlen(out) - 1);
    }
    resp_val_free(v);
    return out;
}

Test(pubsub, pubsub_channels_numsub_numpat)
{
    cr_assert_str_eq(channels(NULL), "");
    expect_int(CMD(c, "PUBSUB", "NUMPAT"), 0);
    cli *s1 = cli_connect(srv->port);
    cli *s2 = cli_connect(srv->port);
    SEND(s1, "SUBSCRIBE", "news", "sport");
    expect_frame(cli_read(s1), A2, "ssi", "subscribe", "news", LL(1));
    expect_frame(cli_read(s1), A2, "ssi", "subscribe", "sport", LL(2));
    SEND(s2, "SUBSCRIBE", "news");
    expect_frame(cli_read(s2), A2, "ssi", "subscribe", "news", LL(1));
    SEND(s2, "PSUBSCRIBE", "n*", "s*");
    expect_frame(cli_read(s2), A2, "ssi", "psubscribe", "n*", LL(2));
    expect_frame(cli_read(s2), A2, "ssi", "psubscribe", "s*", LL(3));
    cr_assert_str_eq(channels(NULL), "news,sport");
    cr_assert_str_eq(channels("n*"), "news");
    cr_assert_str_eq(channels("x*"), "");
    resp_val *v = CMD(c, "PUBSUB", "NUMSUB", "news", "sport", "none");
    cr_assert(v->type == RESP_T_ARRAY, "NUMSUB (RESP2): %s", resp_describe(v));
    cr_assert_eq(v->n, 6, "NUMSUB of 3 channels: %zu elements", v->n);
    cr_assert_eq(field_int(v, "news"), 2);
    cr_assert_eq(field_int(v, "sport"), 1);
    cr_assert_eq(field_int(v, "none"), 0);
    cr_assert_str_eq(v->elem[0]->str, "news", "NUMSUB keeps the argument order");
    cr_assert_str_eq(v->elem[4]->str, "none");
    resp_val_free(v);
    v = CMD(c, "PUBSUB", "NUMSUB");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 0, "NUMSUB (RESP2): %s",
              resp_describe(v));
    resp_val_free(v);
    expect_int(CMD(c, "PUBSUB", "NUMPAT"), 2);
    expect_error(CMD(c, "PUBSUB", "FROB"), "ERR ");
    cli_close(s1);
    cli_close(s2);
    bool gone = wait_until(strcmp(channels(NULL), "") == 0, 5000);
    cr_assert(gone, "channels of closed subscribers still listed: %s", channels(NULL));
    expect_int(CMD(c, "PUBSUB", "NUMPAT"), 0);
}

Test(pubsub, arity_errors)
{
    expect_error(CMD(c, "SUBSCRIBE"), "ERR wrong number of arguments for 'subscribe' command");
    expect_error(CMD(c, "PSUBSCRIBE"), "ERR wrong number of arguments for 'psubscribe' command");
    expect_error(CMD(c, "PUBLISH", "ch"), "ERR wrong number of arguments for 'publish' command");
    expect_error(CMD(c, "PUBLISH", "ch", "a", "b"),
                 "ERR wrong number of arguments for 'publish' command");
    expect_error(CMD(c, "PUBSUB"), "ERR wrong number of arguments for 'pubsub' command");
    expect_simple(CMD(c, "PING"), "PONG");
}

/* =============================================================== events */

Test(pubsub, subscriber_sees_every_event_of_a_jobs_life_in_order)
{
    cli *s = subscriber("spool:events:mail");
    long long before = wall_ms();
    jid id = PUSH(c, "mail", JA);
    char receipt[64];
    reserve_receipt(c, "mail", receipt, sizeof receipt);
    expect_int(CMD(c, "JOB.ACK", receipt), 1);
    long long after = wall_ms();
    ev e1 = NEXT_EVENT(s);
    CHECK_EVENT(e1, "pushed", "mail", id.s, 0);
    ev e2 = NEXT_EVENT(s);
    CHECK_EVENT(e2, "reserved", "mail", id.s, 1);
    ev e3 = NEXT_EVENT(s);
    CHECK_EVENT(e3, "acked", "mail", id.s, 1);
    ev all[] = { e1, e2, e3 };
    for (int i = 0; i < 3; i++) {
        cr_assert(all[i].time >= before - 2 && all[i].time <= after + 2,
                  "%s event time %lld not within [%lld, %lld]", all[i].event, all[i].time, before,
                  after);
        cr_assert(!all[i].has_error, "%s event carries an error", all[i].event);
        if (i)
            cr_assert_geq(all[i].time, all[i - 1].time);
    }
    /* Nothing about another queue. */
    PUSH(c, "other", JB);
    expect_silence(s, 200, "subscriber of spool:events:mail after a push to other");
    cli_close(s);
}

Test(pubsub, events_reach_a_resp3_subscriber_as_push_frames)
{
    cli *s = cli_connect(srv->port);
    hello3(s);
    SEND(s, "SUBSCRIBE", "spool:events:q");
    expect_frame(cli_read(s), P3, "ssi", "subscribe", "spool:events:q", LL(1));
    jid id = PUSH(c, "q", JA);
    resp_val *v = NULL;
    cr_assert_eq(cli_poll_reply(s, EVENT_WAIT_MS, &v), 1, "no pushed event");
    cr_assert(v->type == RESP_T_PUSH && v->n == 3, "event frame: %s", resp_describe(v));
    cr_assert(strstr(v->elem[2]->str, id.s), "event %s does not name %s", v->elem[2]->str, id.s);
    resp_val_free(v);
    cli_close(s);
}

Test(pubsub, lpush_jobs_publish_pushed_events)
{
    cli *s = subscriber("spool:events:q");
    expect_int(CMD(c, "LPUSH", "q", JA, JB), 2);
    ev e1 = NEXT_EVENT(s);
    ev e2 = NEXT_EVENT(s);
    cr_assert_str_eq(e1.event, "pushed");
    cr_assert_str_eq(e2.event, "pushed");
    cr_assert_str_eq(e1.queue, "q");
    cr_assert_str_neq(e1.id, e2.id, "two LPUSH jobs with one id");
    cli_close(s);
}

static bool job_is_ready(const char *id)
{
    resp_val *g = CMD(c, "JOB.GET", id);
    bool rd = strcmp(field_str(g, "state"), "ready") == 0;
    resp_val_free(g);
    return rd;
}

Test(pubsub, retried_and_dead_events_carry_the_error)
{
    cli *s = subscriber("spool:events:q");
    jid id = PUSHO(c, "q", JA, "RETRIES", "1");
    char r[64];
    ev e = NEXT_EVENT(s);
    CHECK_EVENT(e, "pushed", "q", id.s, 0);

    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "DELAY", "0", "ERROR", "smtp timeout"), "retry");
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 1);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "retried", "q", id.s, 1);
    cr_assert(e.has_error, "retried event without \"error\"");
    cr_assert_str_eq(e.error, "smtp timeout");

    cr_assert(wait_until(job_is_ready(id.s), 3000), "NACK DELAY 0: job not ready");
    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "ERROR", "bounced"), "dead");
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 2);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "dead", "q", id.s, 2);
    cr_assert(e.has_error, "dead event without \"error\"");
    cr_assert_str_eq(e.error, "bounced");
    cli_close(s);
}

Test(pubsub, retried_and_dead_events_without_error_have_no_error_field)
{
    cli *s = subscriber("spool:events:q");
    jid id = PUSHO(c, "q", JA, "RETRIES", "0");
    char r[64];
    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r), "dead");
    ev e = NEXT_EVENT(s);
    CHECK_EVENT(e, "pushed", "q", id.s, 0);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 1);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "dead", "q", id.s, 1);
    cr_assert(!e.has_error, "dead event of a NACK without ERROR carries \"error\": %s", e.error);

    jid id2 = PUSH(c, "q", JB);
    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "DELAY", "0"), "retry");
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "pushed", "q", id2.s, 0);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id2.s, 1);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "retried", "q", id2.s, 1);
    cr_assert(!e.has_error, "retried event of a NACK without ERROR carries \"error\": %s", e.error);
    cli_close(s);
}

/* The "error" of an event is the one given with that failure: a NACK
 * without ERROR after one with ERROR gives no "error". */
Test(pubsub, event_error_is_the_one_given_with_that_failure)
{
    cli *s = subscriber("spool:events:q");
    jid id = PUSHO(c, "q", JA, "RETRIES", "3");
    char r[64];
    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "DELAY", "0", "ERROR", "first failure"), "retry");
    cr_assert(wait_until(job_is_ready(id.s), 3000), "NACK DELAY 0: job not ready");
    reserve_receipt(c, "q", r, sizeof r);
    expect_word(CMD(c, "JOB.NACK", r, "DELAY", "0"), "retry");
    ev e = NEXT_EVENT(s);
    CHECK_EVENT(e, "pushed", "q", id.s, 0);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 1);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "retried", "q", id.s, 1);
    cr_assert_str_eq(e.error, "first failure");
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 2);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "retried", "q", id.s, 2);
    cr_assert(!e.has_error, "retried event of a NACK without ERROR carries the earlier "
              "\"error\": \"%s\"", e.error);
    cli_close(s);
}

Test(pubsub, lease_expired_event_when_a_lease_runs_out)
{
    cli *s = subscriber("spool:events:q");
    jid id = PUSHO(c, "q", JA, "LEASE", "200");
    char r[64];
    reserve_receipt(c, "q", r, sizeof r);
    ev e = NEXT_EVENT(s);
    CHECK_EVENT(e, "pushed", "q", id.s, 0);
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "reserved", "q", id.s, 1);
    long long t0 = now_ms();
    e = NEXT_EVENT(s);
    CHECK_EVENT(e, "lease-expired", "q", id.s, 1);
    cr_assert_lt(now_ms() - t0, EVENT_WAIT_MS);
    expect_error(CMD(c, "JOB.ACK", r), "STALE ");
    cli_close(s);
}

Test(pubsub, psubscribe_sees_events_of_two_queues)
{
    cli *s = cli_connect(srv->port);
    SEND(s, "PSUBSCRIBE", "spool:events:*");
    expect_frame(cli_read(s), A2, "ssi", "psubscribe", "spool:events:*", LL(1));
    jid a = PUSH(c, "first", JA);
    jid b = PUSH(c, "second", JB);
    ev e1 = NEXT_EVENT(s);
    ev e2 = NEXT_EVENT(s);
    /* Two queues may sit on different shards: take them in either order. */
    if (strcmp(e1.queue, "second") == 0) {
        ev t = e1;
        e1 = e2;
        e2 = t;
    }
    CHECK_EVENT(e1, "pushed", "first", a.s, 0);
    CHECK_EVENT(e2, "pushed", "second", b.s, 0);
    expect_int(CMD(c, "PUBSUB", "NUMPAT"), 1);
    cli_close(s);
}

Test(pubsub, publish_to_an_events_channel_counts_its_subscribers)
{
    cli *s = subscriber("spool:events:q");
    resp_val *v = CMD(c, "PUBSUB", "NUMSUB", "spool:events:q");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2, "NUMSUB: %s", resp_describe(v));
    cr_assert_eq(field_int(v, "spool:events:q"), 1);
    resp_val_free(v);
    expect_int(CMD(c, "PUBLISH", "spool:events:q", "hello"), 1);
    expect_frame(cli_read(s), A2, "sss", "message", "spool:events:q", "hello");
    expect_int(CMD(c, "PUBLISH", "spool:events:other", "hello"), 0);
    cli_close(s);
}
