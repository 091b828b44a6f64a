/*
 * events.c - job lifecycle events as pub/sub messages (see events.h).
 */
#include "events.h"

#include "clock.h"
#include "context.h"
#include "msg.h"
#include "queue.h"
#include "textfmt.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_PREFIX "spool:events:"

bool events_listening(struct server *srv)
{
    return atomic_load_explicit(&srv->subscriptions, memory_order_relaxed) > 0;
}

static struct msg *publish_msg(const char *ch, size_t chlen, const char *data, size_t dlen)
{
    struct msg *m = msg_new(MSG_PUBLISH);
    const char *argv[] = { "publish", ch, data };
    const size_t len[] = { 7, chlen, dlen };
    resp_cmd_build(&m->req, 3, argv, len);
    return m;
}

struct msg *events_copy(const struct msg *m)
{
    return publish_msg(m->req.argv[1], m->req.len[1], m->req.argv[2], m->req.len[2]);
}

struct msg *events_job_message(const struct job *j, const char *event, const char *err, size_t errlen)
{
    return events_job_message_json(j, event, err, errlen, NULL, NULL);
}

struct msg *events_job_message_json(const struct job *j, const char *event, const char *err, size_t errlen,
                                    const char *key, const char *json)
{
    resp_buf ch, js;
    resp_buf_init(&ch);
    resp_buf_init(&js);
    resp_buf_append(&ch, EVENT_PREFIX, strlen(EVENT_PREFIX));
    resp_buf_append(&ch, j->q->name, j->q->namelen);
    char id[JOB_ID_TEXT];
    job_id_text(j, id);
    resp_buf_printf(&js, "{\"event\":\"%s\",\"queue\":", event);
    text_json_str(&js, j->q->name, j->q->namelen);
    resp_buf_printf(&js, ",\"id\":\"%s\",\"attempt\":%u,\"time\":%lld", id, j->attempt,
                    (long long)clock_now_ms());
    if (err) {
        resp_buf_append(&js, ",\"error\":", 9);
        text_json_str(&js, err, errlen);
    }
    if (key && json)
        resp_buf_printf(&js, ",\"%s\":%s", key, json);
    resp_buf_append(&js, "}", 1);
    struct msg *m = publish_msg(ch.data, ch.len, js.data, js.len);
    resp_buf_free(&ch);
    resp_buf_free(&js);
    return m;
}
