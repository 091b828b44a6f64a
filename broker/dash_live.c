/*
 * dash_live.c - see dash_live.h.
 *
 * Each stream is a request answered with evhttp_send_reply_start and
 * chunks. When its client goes, evhttp detaches the request from the
 * connection and frees the connection, calling our close callback: the
 * request is then ours to free (evhttp_send_reply_end on a request
 * without a connection frees it).
 */
#include "dash_live.h"

#include "clock.h"
#include "dash_reply.h"
#include "log.h"
#include "xalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

struct stream {
    struct stream *prev, *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    int64_t last_write;    /* monotonic ms */
};

/* Main thread only. */
static struct stream *streams;
static int nstreams;
static resp_buf last;        /* the latest overview JSON */
static bool have_last;
static uint64_t skipped;     /* events not sent to a backed-up stream */

static void unlink_stream(struct stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nstreams--;
    free(s);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct stream *s = arg;
    /* The request is detached from the dying connection: this frees it. */
    evhttp_send_reply_end(s->req);
    unlink_stream(s);
}

static void send_text(struct stream *s, const char *text, size_t n)
{
    struct evbuffer *out = evbuffer_new();
    if (!out)
        return;
    evbuffer_add(out, text, n);
    evhttp_send_reply_chunk(s->req, out);
    evbuffer_free(out);
    s->last_write = clock_mono_ms();
}

/* Bytes waiting to go out to the stream's client. */
static size_t backlog(const struct stream *s)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* One overview event: the JSON without its trailing newline. A client
 * that does not read gets no more than DLIVE_BACKLOG_MAX bytes queued:
 * past it, events are left out (each one is whole, so the next one sent
 * after it catches up is complete). */
static void send_overview(struct stream *s, const resp_buf *json)
{
    if (backlog(s) > DLIVE_BACKLOG_MAX) {
        skipped++;
        return;
    }
    size_t n = json->len;
    while (n && json->data[n - 1] == '\n')
        n--;
    resp_buf ev;
    resp_buf_init(&ev);
    resp_buf_append(&ev, "event: overview\ndata: ", 22);
    resp_buf_append(&ev, json->data, n);
    resp_buf_append(&ev, "\n\n", 2);
    send_text(s, ev.data, ev.len);
    resp_buf_free(&ev);
}

void dlive_open(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (nstreams >= DLIVE_MAX || !evcon) {
        dreply_error(req, 503, "too many live dashboard streams are open (%d, the limit): this page polls every 2 s "
                     "instead; close other dashboard tabs to get live updates", DLIVE_MAX);
        return;
    }
    struct stream *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->evcon = evcon;
    s->next = streams;
    if (streams)
        streams->prev = s;
    streams = s;
    nstreams++;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evcon, on_close, s);
    static const char hello[] = "retry: 2000\n: spool live figures\n\n";
    send_text(s, hello, sizeof hello - 1);
    if (have_last)
        send_overview(s, &last);
}

/* The JSON after its first member ("time"). */
static const char *after_time(const resp_buf *b, size_t *n)
{
    const char *c = b->len ? memchr(b->data, ',', b->len) : NULL;
    *n = c ? b->len - (size_t)(c - b->data) : b->len;
    return c ? c : b->data;
}

void dlive_publish(const resp_buf *json)
{
    size_t an, bn;
    const char *a = after_time(json, &an), *b = have_last ? after_time(&last, &bn) : NULL;
    bool same = b && an == bn && memcmp(a, b, an) == 0;
    resp_buf_free(&last);
    resp_buf_init(&last);
    resp_buf_append(&last, json->data, json->len);
    have_last = true;
    if (same)
        return;
    for (struct stream *s = streams; s; s = s->next)
        send_overview(s, json);
}

void dlive_tick(int64_t now)
{
    static const char beat[] = ": keep-alive\n\n";
    for (struct stream *s = streams; s; s = s->next)
        if (now - s->last_write >= DLIVE_HEARTBEAT_S * 1000)
            send_text(s, beat, sizeof beat - 1);
}

int dlive_count(void)
{
    return nstreams;
}

uint64_t dlive_skipped(void)
{
    return skipped;
}

void dlive_stop(void)
{
    while (streams) {
        struct stream *s = streams;
        evhttp_connection_set_closecb(s->evcon, NULL, NULL);
        evhttp_send_reply_end(s->req);
        unlink_stream(s);
    }
    if (nstreams)
        log_warn("dashboard: %d live streams miscounted at stop", nstreams);
    resp_buf_free(&last);
    resp_buf_init(&last);
    have_last = false;
}
