/*
 * client.c - spool_client: one connection to spoold, the handshake, and
 * the round trips every command module uses.
 *
 * A client owns its socket, a reply reader (proto/resp.h), an input buffer
 * of received-but-unparsed bytes and an output buffer of requests. It is
 * used by one thread at a time (see spool.h).
 *
 * Invariants:
 *   - fd < 0  <=>  proto == 0, and then both buffers are empty and the
 *     reader is fresh: a broken connection never leaves half a reply behind
 *     to be mistaken for the next one.
 *   - Any failure that leaves the stream in an unknown state (I/O error,
 *     timeout, protocol error) closes the connection. Error replies do not:
 *     the stream is still in step.
 *   - RESP3 push frames (out-of-band) are skipped while reading replies.
 *
 * Handshake: HELLO 3 [AUTH user pass] [SETNAME name]. When the server
 * refuses HELLO (an old or minimal server: "-ERR unknown command" or
 * "-NOPROTO"), RESP2 with a separate AUTH (and CLIENT SETNAME) instead.
 */
#include "internal.h"
#include "net.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_IO_TIMEOUT_MS 10000
#define DEFAULT_PUSH_RETRY_MS 10000

/* ================================================================ errors */

const char *spool_strerror(int code)
{
    switch (code) {
    case SPOOL_OK: return "success";
    case SPOOL_EINVAL: return "invalid argument";
    case SPOOL_ENOMEM: return "out of memory";
    case SPOOL_ECONN: return "connection failed or closed";
    case SPOOL_EIO: return "I/O error";
    case SPOOL_ETIMEOUT: return "timed out";
    case SPOOL_EPROTO: return "protocol error";
    case SPOOL_ESERVER: return "server error";
    case SPOOL_ENOJOB: return "no such job";
    case SPOOL_ESTALE: return "stale receipt";
    case SPOOL_EFULL: return "queue full";
    case SPOOL_EBADJSON: return "payload is not valid JSON";
    case SPOOL_ETOOBIG: return "payload too big";
    case SPOOL_EAUTH: return "authentication failed";
    case SPOOL_ESTOPPED: return "worker stopping";
    default: return "unknown error";
    }
}

int sdk_client_fail(spool_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    c->last_error = code;
    return code;
}

void sdk_client_ok(spool_client *c)
{
    c->last_error = 0;
    c->errmsg[0] = 0;
}

const char *spool_errmsg(const spool_client *c)
{
    return c ? c->errmsg : "no client";
}

int spool_last_error(const spool_client *c)
{
    return c ? c->last_error : SPOOL_EINVAL;
}

/* The code for an error reply, by its first word. */
static int code_for_prefix(const char *s, size_t n)
{
    static const struct { const char *word; int code; } map[] = {
        { "NOJOB", SPOOL_ENOJOB },     { "STALE", SPOOL_ESTALE },
        { "FULL", SPOOL_EFULL },       { "BADJSON", SPOOL_EBADJSON },
        { "TOOBIG", SPOOL_ETOOBIG },   { "NOAUTH", SPOOL_EAUTH },
        { "WRONGPASS", SPOOL_EAUTH },  { "NOPERM", SPOOL_EAUTH },
    };
    size_t w = 0;
    while (w < n && s[w] != ' ')
        w++;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].word) == w && memcmp(map[i].word, s, w) == 0)
            return map[i].code;
    return SPOOL_ESERVER;
}

int sdk_client_error_reply(spool_client *c, const resp_val *v)
{
    return sdk_client_fail(c, code_for_prefix(v->str, v->len), "%s", v->str);
}

/* ============================================================ connection */

void sdk_client_disconnect(spool_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->proto = 0;
    resp_buf_reset(&c->in);
    resp_buf_reset(&c->out);
    c->in_off = 0;
    resp_reader_free(c->reader);
    c->reader = resp_reader_new(NULL);
}

static int hello_args(spool_client *c, argvec *a, const char *ver)
{
    sdk_av_init(a);
    sdk_av_add(a, "HELLO");
    sdk_av_add(a, ver);
    if (c->url.has_pass) {
        sdk_av_add(a, "AUTH");
        sdk_av_add(a, c->url.user);
        sdk_av_add(a, c->url.pass);
    }
    sdk_av_opt(a, c->name, "SETNAME", c->name);
    return 0;
}

/* RESP2 without HELLO: AUTH and CLIENT SETNAME as separate commands. */
static int handshake_resp2(spool_client *c)
{
    resp_val *r = NULL;
    int rc;
    c->proto = 2;
    if (c->url.has_pass) {
        const char *argv[] = { "AUTH", c->url.user, c->url.pass };
        rc = sdk_client_call(c, 3, argv, NULL, 0, &r);
        resp_val_free(r);
        if (rc < 0)
            return rc;
    }
    if (c->name) {
        const char *argv[] = { "CLIENT", "SETNAME", c->name };
        rc = sdk_client_call(c, 3, argv, NULL, 0, &r);
        resp_val_free(r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* True when an error reply means "this server has no (such) HELLO". */
static bool hello_refused(const spool_client *c)
{
    return c->last_error == SPOOL_ESERVER &&
           (!strncmp(c->errmsg, "NOPROTO", 7) || !strncasecmp(c->errmsg, "ERR unknown command", 19));
}

static int handshake(spool_client *c)
{
    if (c->want_proto == 2 && !c->url.has_pass && !c->name) {
        c->proto = 2;
        return 0;
    }
    argvec a;
    hello_args(c, &a, c->want_proto == 2 ? "2" : "3");
    c->proto = 2; /* until the reply says otherwise */
    resp_val *r = NULL;
    int rc = sdk_client_call(c, a.argc, a.argv, a.len, 0, &r);
    if (rc == 0) {
        const resp_val *p = resp_val_get(r, "proto");
        long long v = 0;
        c->proto = p && sdk_val_to_ll(p, &v) == 0 && v == 3 ? 3 : 2;
        resp_val_free(r);
        return 0;
    }
    if (c->fd >= 0 && hello_refused(c) && c->want_proto != 3)
        return handshake_resp2(c);
    return rc;
}

static int connect_now(spool_client *c)
{
    char err[300];
    sdk_client_disconnect(c);
    int fd = sdk_net_connect(c->url.host, c->url.port, c->connect_timeout_ms, err, sizeof err);
    if (fd < 0)
        return sdk_client_fail(c, fd, "%s", err);
    c->fd = fd;
    int rc = handshake(c);
    if (rc < 0) {
        char msg[SPOOL_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", c->errmsg);
        sdk_client_disconnect(c);
        return sdk_client_fail(c, rc, "handshake with %s failed: %s", c->endpoint, msg);
    }
    sdk_client_ok(c);
    return 0;
}

int sdk_client_ensure(spool_client *c)
{
    return c->fd >= 0 ? 0 : connect_now(c);
}

/* endpoint = "host:port" of c->url (IPv6 in brackets). */
static void set_endpoint(spool_client *c)
{
    bool v6 = strchr(c->url.host, ':') != NULL;
    snprintf(c->endpoint, sizeof c->endpoint, "%s%s%s:%d", v6 ? "[" : "", c->url.host,
             v6 ? "]" : "", c->url.port);
}

/* Adds c->url's host:port to the nodes the client knows (the oldest
 * redirect target is forgotten when the list is full; the URL's stays). */
static void remember_node(spool_client *c)
{
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == c->url.port && !strcmp(c->nodes[i].host, c->url.host))
            return;
    if (c->nnodes == SDK_NODES_MAX) {
        memmove(&c->nodes[1], &c->nodes[2], (SDK_NODES_MAX - 2) * sizeof c->nodes[0]);
        c->nnodes--;
    }
    c->nodes[c->nnodes++] = c->url;
}

void sdk_client_next_node(spool_client *c)
{
    int at = 0;
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == c->url.port && !strcmp(c->nodes[i].host, c->url.host))
            at = i;
    const spool_url *n = &c->nodes[(at + 1) % c->nnodes];
    snprintf(c->url.host, sizeof c->url.host, "%s", n->host);
    c->url.port = n->port;
    set_endpoint(c);
    sdk_client_disconnect(c);
}

static bool error_word(const char *msg, const char *w)
{
    size_t n = strlen(w);
    return !strncmp(msg, w, n) && (msg[n] == ' ' || msg[n] == 0);
}

bool sdk_outcome_unknown(const spool_client *c, int rc)
{
    if (rc == SPOOL_ECONN || rc == SPOOL_EIO || rc == SPOOL_ETIMEOUT)
        return true;
    return rc == SPOOL_ESERVER && (error_word(c->errmsg, "CLUSTERDOWN") || error_word(c->errmsg, "TRYAGAIN") ||
                                   error_word(c->errmsg, "LOADING"));
}

static int configure(spool_client *c, const spool_options *opt)
{
    const char *url = opt && opt->url ? opt->url : getenv("SPOOL_URL");
    if (!url || !url[0])
        url = SPOOL_DEFAULT_URL;
    int rc = sdk_url_parse(url, &c->url, c->errmsg, sizeof c->errmsg);
    if (rc < 0)
        return c->last_error = rc;
    set_endpoint(c);
    c->nodes[0] = c->url;
    c->nnodes = 1;
    c->push_retry_ms = !opt || opt->push_retry_ms == 0 ? DEFAULT_PUSH_RETRY_MS
                     : opt->push_retry_ms < 0 ? -1 : opt->push_retry_ms;
    c->connect_timeout_ms = opt && opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms
                                                               : DEFAULT_CONNECT_TIMEOUT_MS;
    c->io_timeout_ms = opt && opt->io_timeout_ms ? opt->io_timeout_ms : DEFAULT_IO_TIMEOUT_MS;
    c->want_proto = opt ? opt->protocol : 0;
    if (c->want_proto != 0 && c->want_proto != 2 && c->want_proto != 3)
        return sdk_client_fail(c, SPOOL_EINVAL, "protocol must be 0, 2 or 3, not %d", c->want_proto);
    if (opt && opt->name && !(c->name = strdup(opt->name)))
        return sdk_client_fail(c, SPOOL_ENOMEM, "out of memory");
    return 0;
}

int sdk_client_create(spool_client **out, const spool_options *opt)
{
    *out = NULL;
    spool_client *c = calloc(1, sizeof *c);
    if (!c)
        return SPOOL_ENOMEM;
    c->fd = -1;
    resp_buf_init(&c->in);
    resp_buf_init(&c->out);
    c->reader = resp_reader_new(NULL);
    *out = c;
    return configure(c, opt);
}

int spool_connect(spool_client **out, const spool_options *opt)
{
    int rc = sdk_client_create(out, opt);
    if (rc == 0)
        rc = connect_now(*out);
    return rc;
}

int spool_connect_url(spool_client **out, const char *url)
{
    spool_options o = { .url = url };
    return spool_connect(out, &o);
}

void spool_close(spool_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    resp_reader_free(c->reader);
    resp_buf_free(&c->in);
    resp_buf_free(&c->out);
    free(c->name);
    free(c);
}

int spool_reconnect(spool_client *c)
{
    if (!c->url.host[0])
        return sdk_client_fail(c, SPOOL_EINVAL, "client has no valid URL");
    return connect_now(c);
}

int spool_protocol(const spool_client *c)
{
    return c->proto;
}

bool spool_connected(const spool_client *c)
{
    return c->fd >= 0;
}

const char *spool_endpoint(const spool_client *c)
{
    return c->endpoint;
}

/* ================================================================== I/O */

/* The deadline for a reply the server may hold for wait_ms. */
static long long reply_deadline(const spool_client *c, int wait_ms)
{
    if (wait_ms < 0 || c->io_timeout_ms < 0)
        return -1;
    return sdk_mono_ms() + wait_ms + c->io_timeout_ms;
}

/* Fails the call and drops the connection (its stream is out of step). */
static int io_fail(spool_client *c, int code, const char *what)
{
    char msg[SPOOL_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", what);
    sdk_client_disconnect(c);
    return sdk_client_fail(c, code, "%s (%s)", msg, c->endpoint);
}

/* Makes room for READ_CHUNK more bytes in c->in, dropping parsed bytes. */
static int in_room(spool_client *c)
{
    if (c->in_off > 0) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in.cap - c->in.len >= READ_CHUNK + 1)
        return 0;
    size_t cap = c->in.len + 2 * READ_CHUNK;
    char *p = realloc(c->in.data, cap);
    if (!p)
        return io_fail(c, SPOOL_ENOMEM, "out of memory");
    c->in.data = p;
    c->in.cap = cap;
    return 0;
}

/* Reads what is available into c->in: > 0 bytes, 0 when none, or a code. */
static int recv_some(spool_client *c)
{
    if (in_room(c) < 0)
        return SPOOL_ENOMEM;
    ssize_t n;
    do {
        n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->in.len += (size_t)n;
        return (int)n;
    }
    if (n == 0)
        return io_fail(c, SPOOL_ECONN, "the broker closed the connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return io_fail(c, SPOOL_EIO, strerror(errno));
}

int sdk_client_flush(spool_client *c)
{
    size_t off = 0;
    long long deadline = reply_deadline(c, 0);
    while (off < c->out.len) {
        int ev = sdk_net_poll(c->fd, POLLIN | POLLOUT, deadline);
        if (ev == 0)
            return io_fail(c, SPOOL_ETIMEOUT, "timed out writing a request");
        if (ev < 0)
            return io_fail(c, SPOOL_EIO, strerror(errno));
        if (ev & POLLIN) {
            int r = recv_some(c); /* replies wait in c->in: no deadlock */
            if (r < 0)
                return r;
        }
        if (!(ev & (POLLOUT | POLLERR | POLLHUP)))
            continue;
        ssize_t w = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0)
            return io_fail(c, errno == EPIPE || errno == ECONNRESET ? SPOOL_ECONN : SPOOL_EIO,
                           strerror(errno));
        off += (size_t)w;
        deadline = reply_deadline(c, 0);
    }
    resp_buf_reset(&c->out);
    return 0;
}

/* Parses one reply from c->in: 1 with *out, 0 when more bytes are needed,
 * or a code. */
static int parse_one(spool_client *c, resp_val **out)
{
    while (c->in_off < c->in.len) {
        size_t used = 0;
        resp_val *v = NULL;
        int r = resp_reader_feed(c->reader, c->in.data + c->in_off, c->in.len - c->in_off, &used, &v);
        c->in_off += used;
        if (r == RESP_EPROTO)
            return io_fail(c, SPOOL_EPROTO, resp_reader_error(c->reader));
        if (r == RESP_AGAIN)
            return 0;
        if (v->type == RESP_T_PUSH) { /* out-of-band (pub/sub): not a reply */
            resp_val_free(v);
            continue;
        }
        *out = v;
        return 1;
    }
    return 0;
}

int sdk_client_read(spool_client *c, int wait_ms, resp_val **reply)
{
    *reply = NULL;
    if (c->fd < 0)
        return sdk_client_fail(c, SPOOL_ECONN, "not connected to %s", c->endpoint);
    long long deadline = reply_deadline(c, wait_ms);
    for (;;) {
        int r = parse_one(c, reply);
        if (r != 0)
            return r < 0 ? r : 0;
        int ev = sdk_net_poll(c->fd, POLLIN, deadline);
        if (ev == 0)
            return io_fail(c, SPOOL_ETIMEOUT, "timed out waiting for a reply");
        if (ev < 0)
            return io_fail(c, SPOOL_EIO, strerror(errno));
        r = recv_some(c);
        if (r < 0)
            return r;
    }
}

void sdk_client_append(spool_client *c, int argc, const char *const *argv, const size_t *lens)
{
    if (lens)
        resp_add_command(&c->out, argc, argv, lens);
    else
        resp_add_commandv(&c->out, argc, argv);
}

/* ---------------------------------------------------- cluster redirects */

#define MAX_REDIRECTS 16
#define TRYAGAIN_MS 100

static bool word_is(const resp_val *v, const char *w)
{
    size_t n = strlen(w);
    return v->type == RESP_T_ERROR && v->len > n && !strncmp(v->str, w, n) && v->str[n] == ' ';
}

bool sdk_is_redirect(const resp_val *v)
{
    return word_is(v, "MOVED") || word_is(v, "ASK") || word_is(v, "TRYAGAIN");
}

/* -MOVED slot host:port or -ASK slot host:port: the client moves its
 * connection to that node (credentials and settings stay). */
static int follow(spool_client *c, const resp_val *v)
{
    const char *addr = strrchr(v->str, ' ');
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port <= 0 || port > 65535 || (size_t)(colon - addr - 1) >= sizeof c->url.host)
        return sdk_client_fail(c, SPOOL_EPROTO, "cannot follow the redirect '%s'", v->str);
    snprintf(c->url.host, sizeof c->url.host, "%.*s", (int)(colon - addr - 1), addr + 1);
    c->url.port = port;
    set_endpoint(c);
    remember_node(c);
    return connect_now(c);
}

/* One request (after ASKING when asking) and its reply. */
static int call_once(spool_client *c, int argc, const char *const *argv, const size_t *lens, int wait_ms,
                     bool asking, resp_val **v)
{
    int rc = sdk_client_ensure(c);
    if (rc < 0)
        return rc;
    resp_buf_reset(&c->out);
    if (asking)
        resp_add_commandv(&c->out, 1, (const char *const[]){ "ASKING" });
    sdk_client_append(c, argc, argv, lens);
    rc = sdk_client_flush(c);
    if (rc < 0)
        return rc;
    if (asking) {
        if ((rc = sdk_client_read(c, wait_ms, v)) < 0)
            return rc;
        resp_val_free(*v);
    }
    return sdk_client_read(c, wait_ms, v);
}

/* Sends one command and reads its reply; in a cluster, follows -MOVED and
 * -ASK to the node named and waits out -TRYAGAIN (a slot being moved). */
static int call_routed(spool_client *c, int argc, const char *const *argv, const size_t *lens, int wait_ms,
                       resp_val **out)
{
    bool asking = false;
    for (int hop = 0;; hop++) {
        resp_val *v = NULL;
        int rc = call_once(c, argc, argv, lens, wait_ms, asking, &v);
        if (rc < 0)
            return rc;
        asking = word_is(v, "ASK");
        bool again = word_is(v, "TRYAGAIN");
        if (hop >= MAX_REDIRECTS || !(asking || again || word_is(v, "MOVED"))) {
            *out = v;
            return 0;
        }
        if (again)
            poll(NULL, 0, TRYAGAIN_MS);
        rc = again ? 0 : follow(c, v);
        resp_val_free(v);
        if (rc < 0)
            return rc;
    }
}

int sdk_client_call(spool_client *c, int argc, const char *const *argv, const size_t *lens,
                int wait_ms, resp_val **reply)
{
    *reply = NULL;
    resp_val *v = NULL;
    int rc = call_routed(c, argc, argv, lens, wait_ms, &v);
    if (rc < 0)
        return rc;
    if (v->type == RESP_T_ERROR) {
        rc = sdk_client_error_reply(c, v);
        resp_val_free(v);
        return rc;
    }
    sdk_client_ok(c);
    *reply = v;
    return 0;
}

int spool_ping(spool_client *c)
{
    const char *argv[] = { "PING" };
    resp_val *r = NULL;
    int rc = sdk_client_call(c, 1, argv, NULL, 0, &r);
    resp_val_free(r);
    return rc;
}
