/*
 * dash.c - see dash.h: routes, access checks, CSRF tokens, the embedded
 * files, the server page, and the throughput sampler.
 *
 * Main thread only; the state below is this process's one dashboard.
 */
#include "dash.h"

#include "acl.h"
#include "admin_rpc.h"
#include "clock.h"
#include "cmd_queue.h"
#include "commands.h"
#include "config.h"
#include "context.h"
#include "dash_api.h"
#include "dash_assets.h"
#include "dash_live.h"
#include "dash_pages.h"
#include "dash_reply.h"
#include "log.h"
#include "protect.h"
#include "queue.h"
#include "rates.h"
#include "sha256.h"
#include "sysinfo.h"
#include "textfmt.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifndef SPOOL_BUILD_VERSION
#define SPOOL_BUILD_VERSION "unknown"
#endif

#define SESSION_HEX 32
/* Password guessing: a wrong password is answered AUTH_FAIL_DELAY_MS
 * late, and all wrong ones together at most one per AUTH_FAIL_GAP_MS
 * (as AUTH on the RESP port); past AUTH_FAIL_QUEUE waiting answers, every
 * login gets 503 before its password is even looked at. */
#define AUTH_FAIL_DELAY_MS 100
#define AUTH_FAIL_GAP_MS 10
#define AUTH_FAIL_QUEUE 1000
#define BODY_MAX 65536
#define COOKIE "spool_session"

static struct {
    struct rates *rates;
    struct event *tick;
    bool sampling;          /* a round is out at the shards */
    uint8_t secret[32];
    int refusing;           /* 401s waiting for their time */
    int64_t next_refusal;   /* mono ms: the earliest the next may go */
} D;

/* -------------------------------------------------------------- helpers */

static int random_bytes(void *p, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t r = read(fd, p, n);
    close(fd);
    return r == (ssize_t)n ? 0 : -EIO;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static bool same(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* Constant-time equality of two NUL-terminated strings (their lengths are
 * not secret). */
static bool str_same(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && same(a, b, n);
}

static int b64v(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 into out (NUL-terminated); -1 on bad input or overflow. */
static int b64_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = b64v(*s);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    out[n] = '\0';
    return (int)n;
}

/* ------------------------------------------------------------- access */

static bool loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* Without a password the dashboard trusts loopback; a page of another
 * site whose name was made to resolve to 127.0.0.1 (DNS rebinding) would
 * be loopback too, but its requests name that site in Host. */
static bool loopback_host(const char *host)
{
    if (!host)
        return false;
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (host[n] && host[n] != ':')
        return false;
    if (n == 9 && !strncasecmp(host, "localhost", 9))
        return true;
    if (n == 5 && !strncmp(host, "[::1]", 5))
        return true;
    struct in_addr a;
    char ip[16];
    if (n >= sizeof ip || strncmp(host, "127.", 4) != 0)
        return false;
    memcpy(ip, host, n);
    ip[n] = '\0';
    return inet_pton(AF_INET, ip, &a) == 1;
}

static void send_401(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Basic realm=\"spool\", charset=\"UTF-8\"");
    dreply_error(req, 401, "log in as user default with spoold's requirepass password");
}

static void refusal_due(evutil_socket_t fd, short what, void *arg)
{
    D.refusing--;
    if (D.rates) /* else the dashboard stopped and evhttp freed the request */
        send_401(arg);
}

/* A 401 for a wrong password, sent when its time comes. */
static void refuse_later(struct server *srv, struct evhttp_request *req)
{
    int64_t now = clock_mono_ms(), at = now + AUTH_FAIL_DELAY_MS;
    if (at < D.next_refusal)
        at = D.next_refusal;
    D.next_refusal = at + AUTH_FAIL_GAP_MS;
    struct timeval tv = { (time_t)((at - now) / 1000), (suseconds_t)((at - now) % 1000 * 1000) };
    if (event_base_once(srv->base, -1, EV_TIMEOUT, refusal_due, req, &tv) < 0) {
        send_401(req);
        return;
    }
    D.refusing++;
}

/* Fills who, or answers 401/403 and returns false. */
static bool authorize(struct server *srv, struct evhttp_request *req, struct dash_who *who)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    snprintf(who->peer, sizeof who->peer, "%s", addr ? addr : "?");
    snprintf(who->user, sizeof who->user, "default");
    const char *pass = srv->cfg.requirepass;
    if (!protect_auth_required(&srv->cfg)) {
        const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
        if (!evcon || !loopback(evhttp_connection_get_addr(evcon))) {
            dreply_error(req, 403, "the dashboard answers only loopback clients while spoold has no requirepass: "
                         "set --requirepass to serve it to %s (user default)", who->peer);
            return false;
        }
        if (!loopback_host(host)) {
            dreply_error(req, 403, "Host '%.64s' is not a loopback name: without requirepass the dashboard is opened "
                         "as http://127.0.0.1:<port>/ or http://localhost:<port>/", host ? host : "");
            return false;
        }
        return true;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h && D.refusing >= AUTH_FAIL_QUEUE) {
        dreply_error(req, 503, "too many wrong passwords are waiting for their answer; try again in a few seconds");
        return false;
    }
    char cred[512];
    if (h && strncasecmp(h, "Basic ", 6) == 0 && b64_decode(h + 6, cred, sizeof cred) > 0) {
        char *colon = strchr(cred, ':');
        if (colon) {
            *colon = '\0';
            bool ok = pass[0] && !acl_default_off() && (str_same(cred, "default") & str_same(colon + 1, pass));
            if (ok)
                return true;
            if (strcmp(cred, "default") != 0 && acl_auth(cred, colon + 1, strlen(colon + 1))) {
                snprintf(who->user, sizeof who->user, "%s", cred); /* a named ACL user */
                return true;
            }
            log_warn("dashboard: wrong user or password from %s (user '%.64s')", who->peer, cred);
        }
    }
    if (h)
        refuse_later(srv, req);
    else
        send_401(req); /* no guess made: the browser asks at once */
    return false;
}

/* ------------------------------------------------------- sessions, CSRF */

/* The session cookie's value (SESSION_HEX hex digits) into sid, or false. */
static bool session_of(struct evhttp_request *req, char sid[SESSION_HEX + 1])
{
    const char *c = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
    for (const char *p = c ? strstr(c, COOKIE "=") : NULL; p; p = strstr(p + 1, COOKIE "=")) {
        if (p != c && p[-1] != ' ' && p[-1] != ';')
            continue;
        p += sizeof COOKIE;
        size_t n = strspn(p, "0123456789abcdef");
        if (n == SESSION_HEX) {
            memcpy(sid, p, SESSION_HEX);
            sid[SESSION_HEX] = '\0';
            return true;
        }
    }
    return false;
}

/* The session of req, made (and set as a cookie) when it has none. */
static void ensure_session(struct evhttp_request *req, char sid[SESSION_HEX + 1])
{
    if (session_of(req, sid))
        return;
    uint8_t r[SESSION_HEX / 2];
    if (random_bytes(r, sizeof r) < 0)
        ASSERT(!"no /dev/urandom");
    hex(r, sizeof r, sid);
    char cookie[128];
    snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", sid);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
}

static void csrf_token(const char *user, const char *sid, char out[2 * SHA256_LEN + 1])
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "csrf\n%s\n%s", user, sid);
    uint8_t mac[SHA256_LEN];
    hmac_sha256(D.secret, sizeof D.secret, msg, (size_t)n, mac);
    hex(mac, sizeof mac, out);
}

/* A POST's token, session and origin; answers 403 and returns false. */
static bool csrf_ok(struct evhttp_request *req, const struct dash_who *who)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    /* The browser's Origin must name this host (http, or https behind a
     * TLS proxy that keeps the Host header). */
    const char *origin = evhttp_find_header(in, "Origin"), *host = evhttp_find_header(in, "Host");
    const char *rest = !origin ? NULL : !strncmp(origin, "http://", 7) ? origin + 7
                                      : !strncmp(origin, "https://", 8) ? origin + 8 : origin;
    if (origin && (!host || strcmp(rest, host) != 0)) {
        dreply_error(req, 403, "cross-site request refused: Origin %.128s is not this dashboard (Host %.128s)", origin,
                     host ? host : "missing");
        return false;
    }
    char sid[SESSION_HEX + 1], want[2 * SHA256_LEN + 1];
    const char *token = evhttp_find_header(in, "X-CSRF-Token");
    if (!session_of(req, sid) || !token) {
        dreply_error(req, 403, "missing CSRF token or session cookie: reload the dashboard and try again");
        return false;
    }
    csrf_token(who->user, sid, want);
    if (!str_same(token, want)) {
        dreply_error(req, 403, "invalid CSRF token (spoold restarted, or the session changed): reload the dashboard");
        return false;
    }
    return true;
}

/* --------------------------------------------------------- static files */

static const char *const csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static bool serve_asset(struct evhttp_request *req, const char *path)
{
    if (!strcmp(path, "/"))
        path = "/index.html";
    for (int i = 0; i < dash_nassets; i++) {
        const struct dash_asset *a = &dash_assets[i];
        if (strcmp(a->path, path) != 0)
            continue;
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        char etag[48];
        snprintf(etag, sizeof etag, "\"%s\"", a->etag);
        evhttp_add_header(out, "ETag", etag);
        evhttp_add_header(out, "Cache-Control", "no-cache");
        evhttp_add_header(out, "Content-Security-Policy", csp);
        evhttp_add_header(out, "Referrer-Policy", "no-referrer");
        evhttp_add_header(out, "X-Frame-Options", "DENY");
        if (!strcmp(a->path, "/index.html")) {
            char sid[SESSION_HEX + 1];
            ensure_session(req, sid);
        }
        const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
        if (inm && !strcmp(inm, etag))
            dreply_body(req, 304, NULL, NULL, 0);
        else
            dreply_body(req, 200, a->type, a->data, a->len);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------- session */

static void features_json(resp_buf *b)
{
    /* What this spoold can show; the pages say "not available in this
     * version" for the rest instead of inventing it. */
    resp_buf_printf(b, "{\"acl_users\":true,\"limits\":%s,\"workers\":%s,\"schedules\":%s,"
                    "\"redrive_rate\":true,\"read_only_users\":true,\"live\":true}",
                    dapi_is_setting("rate") || dapi_is_setting("concurrency") ? "true" : "false",
                    commands_find("queue.workers", 13) ? "true" : "false",
                    commands_find("sched.list", 10) ? "true" : "false");
}

static void api_session(struct server *srv, struct evhttp_request *req, const struct dash_who *who)
{
    char sid[SESSION_HEX + 1], token[2 * SHA256_LEN + 1];
    ensure_session(req, sid);
    csrf_token(who->user, sid, token);
    resp_buf b;
    resp_buf_init(&b);
    resp_buf_append(&b, "{\"user\":", 8);
    text_json_str(&b, who->user, strlen(who->user));
    resp_buf_printf(&b, ",\"csrf\":\"%s\",\"auth\":\"%s\",\"version\":\"%s\",\"can\":", token,
                    srv->cfg.requirepass[0] ? "password" : "loopback", SPOOL_BUILD_VERSION);
    size_t at = b.len;
    dapi_can_json(&b, who, DAPI_ANY, NULL, 0);
    /* can_act: some action is allowed (else the pages show no buttons) */
    bool any = memmem(b.data + at, b.len - at, "true", 4) != NULL;
    resp_buf_printf(&b, ",\"can_act\":%s,\"features\":", any ? "true" : "false");
    features_json(&b);
    resp_buf_append(&b, "}\n", 2);
    dreply_json(req, 200, &b);
    resp_buf_free(&b);
}

/* -------------------------------------------------------------- server */

static void disk_json(resp_buf *b, const char *dir)
{
    resp_buf_append(b, "{\"files\":[", 10);
    long long total = 0;
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        total += (long long)st.st_size;
        if (n++)
            resp_buf_append(b, ",", 1);
        resp_buf_append(b, "{\"name\":", 8);
        text_json_str(b, e->d_name, strlen(e->d_name));
        resp_buf_printf(b, ",\"bytes\":%lld}", (long long)st.st_size);
    }
    if (d)
        closedir(d);
    struct statvfs fs;
    bool have = statvfs(dir, &fs) == 0;
    resp_buf_printf(b, "],\"total_bytes\":%lld,\"free_bytes\":%lld,\"fs_bytes\":%lld}", total,
                    have ? (long long)fs.f_bavail * (long long)fs.f_frsize : -1,
                    have ? (long long)fs.f_blocks * (long long)fs.f_frsize : -1);
}

static void api_server(struct server *srv, struct evhttp_request *req)
{
    const struct config *c = &srv->cfg;
    resp_buf b;
    resp_buf_init(&b);
    resp_buf_printf(&b, "{\"version\":\"%s\",\"pid\":%d,\"run_id\":\"%s\",\"started_at\":%lld,\"uptime_s\":%lld,"
                    "\"shards\":%d,\"io_threads\":%d,\"fsync\":\"%s\",\"payload\":\"%s\",\"port\":%d,"
                    "\"requirepass\":%s,\"bind\":",
                    SPOOL_BUILD_VERSION, (int)getpid(), srv->run_id, (long long)srv->started_ms,
                    (long long)((clock_mono_ms() - srv->started_mono) / 1000), srv->nshards, srv->nio,
                    config_fsync_name(c->fsync), c->payload ? "raw" : "json", srv->port,
                    c->requirepass[0] ? "true" : "false");
    text_json_str(&b, c->bind, strlen(c->bind));
    resp_buf_append(&b, ",\"data_dir\":", 12);
    text_json_str(&b, c->data_dir, strlen(c->data_dir));
    resp_buf_append(&b, ",\"disk\":", 8);
    disk_json(&b, c->data_dir);
    resp_buf_printf(&b, ",\"memory\":{\"rss_bytes\":%ld,\"rates_bytes\":%zu,\"payload_memory_limit\":%lld},",
                    sysinfo_rss_bytes(), rates_memory(D.rates), (long long)c->payload_memory);
    resp_buf_printf(&b, "\"clients\":{\"connected\":%ld,\"blocked\":%ld,\"maxclients\":%d,\"total_connections\":%llu,"
                    "\"rejected_connections\":%llu,\"commands_processed\":%llu},",
                    atomic_load(&srv->connected_clients), atomic_load(&srv->blocked_clients), c->maxclients,
                    (unsigned long long)atomic_load(&srv->total_connections),
                    (unsigned long long)atomic_load(&srv->rejected_connections),
                    (unsigned long long)atomic_load(&srv->total_commands));
    resp_buf_printf(&b, "\"throughput\":{\"seconds\":%d,\"max_queues\":%d,\"overflowed\":%s},"
                    "\"live\":{\"streams\":%d,\"max_streams\":%d,\"heartbeat_s\":%d,\"skipped_events\":%llu},"
                    "\"features\":",
                    RATES_SECONDS, RATES_MAX_QUEUES, rates_overflowed(D.rates) ? "true" : "false", dlive_count(),
                    DLIVE_MAX, DLIVE_HEARTBEAT_S, (unsigned long long)dlive_skipped());
    features_json(&b);
    resp_buf_append(&b, "}\n", 2);
    dreply_json(req, 200, &b);
    resp_buf_free(&b);
}

/* ---------------------------------------------------------- throughput */

/* GET /api/throughput?queue=Q&since=S: seconds (S, last] (at most the
 * window, and none before the first round), per series; the total
 * without queue=. */
static void api_throughput(struct evhttp_request *req, const struct evkeyvalq *q)
{
    const char *name = evhttp_find_header(q, "queue"), *since = evhttp_find_header(q, "since");
    int idx = rates_find(D.rates, name, name ? strlen(name) : 0);
    int64_t end = rates_last(D.rates), start = end - RATES_SECONDS + 1;
    if (start < rates_first(D.rates))
        start = rates_first(D.rates);
    if (since) {
        char *e;
        long long s = strtoll(since, &e, 10);
        if (*e || e == since || s < 0) {
            dreply_error(req, 400, "since '%.32s' must be a Unix time in seconds", since);
            return;
        }
        if (s + 1 > start)
            start = s + 1;
    }
    resp_buf b;
    resp_buf_init(&b);
    resp_buf_append(&b, "{\"queue\":", 9);
    if (name)
        text_json_str(&b, name, strlen(name));
    else
        resp_buf_append(&b, "null", 4);
    if (idx < 0) {
        resp_buf_printf(&b, ",\"tracked\":false,\"end\":%lld,\"reason\":\"%s\"}\n", (long long)end,
                        rates_overflowed(D.rates) ? "more queues were busy than the dashboard tracks (64)"
                                                  : "no activity in this queue since spoold started");
        dreply_json(req, 200, &b);
        resp_buf_free(&b);
        return;
    }
    if (end == 0)
        start = 1;
    resp_buf_printf(&b, ",\"tracked\":true,\"start\":%lld,\"end\":%lld,\"step\":1", (long long)start, (long long)end);
    static const char *const names[RATE_NSERIES] = { "pushed", "acked", "failed" };
    for (int k = 0; k < RATE_NSERIES; k++) {
        resp_buf_printf(&b, ",\"%s\":[", names[k]);
        for (int64_t t = start; t <= end; t++) {
            uint32_t v[RATE_NSERIES];
            rates_at(D.rates, idx, t, v);
            resp_buf_printf(&b, t == start ? "%u" : ",%u", v[k]);
        }
        resp_buf_append(&b, "]", 1);
    }
    resp_buf_append(&b, "}\n", 2);
    dreply_json(req, 200, &b);
    resp_buf_free(&b);
}

/* ------------------------------------------------------------- sampler */

static void sample_done(struct server *srv, void *arg, resp_buf *parts, int nparts)
{
    D.sampling = false;
    if (nparts == 0 || !D.rates)
        return;
    size_t n;
    struct dapi_row *r = dapi_rows(parts, nparts, &n);
    struct rates_row *rows = xcalloc(n ? n : 1, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        const long long *v = r[i].v;
        rows[i].name = r[i].name;
        rows[i].len = r[i].len;
        rows[i].v[RATE_PUSHED] = (uint64_t)v[QSTAT_PUSHED];
        rows[i].v[RATE_ACKED] = (uint64_t)(v[QSTAT_ACKED] + v[QSTAT_POPPED]);
        rows[i].v[RATE_FAILED] = (uint64_t)(v[QSTAT_RETRIED] + v[QSTAT_BURIED]);
    }
    rates_sample(D.rates, clock_now_ms() / 1000, rows, n);
    if (dlive_count()) { /* the live pages get the same figures as /api/overview */
        resp_buf b;
        resp_buf_init(&b);
        dapi_overview_json(srv, &b, r, n, D.rates);
        dlive_publish(&b);
        resp_buf_free(&b);
    }
    free(rows);
    free(r);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    dlive_tick(clock_mono_ms());
    if (D.sampling)
        return; /* the shards are slow: skip a second rather than pile up */
    if (admin_rpc_all(srv, &dapi_stats_cmd, 1, (const char *const[]){ "admin-stats" }, NULL, sample_done, NULL) == 0)
        D.sampling = true;
}

/* ----------------------------------------------------------- lifecycle */

int dash_start(struct server *srv)
{
    int rc = random_bytes(D.secret, sizeof D.secret);
    if (rc < 0) {
        log_error("dashboard: cannot read /dev/urandom for its CSRF secret: %s", strerror(-rc));
        return rc;
    }
    D.rates = rates_new(RATES_MAX_QUEUES);
    D.tick = event_new(srv->base, -1, EV_PERSIST, tick_cb, srv);
    struct timeval second = { 1, 0 };
    if (!D.tick || event_add(D.tick, &second) < 0)
        return -ENOMEM;
    return 0;
}

void dash_stop(struct server *srv)
{
    dlive_stop();
    admin_rpc_shutdown(srv);
    if (D.tick)
        event_free(D.tick);
    D.tick = NULL;
    rates_free(D.rates);
    D.rates = NULL;
}

/* ------------------------------------------------------------- routing */

static bool is_get(struct evhttp_request *req)
{
    enum evhttp_cmd_type t = evhttp_request_get_command(req);
    return t == EVHTTP_REQ_GET || t == EVHTTP_REQ_HEAD;
}

/* The POST body as a form; answers 413/400 and returns false. */
static bool read_form(struct evhttp_request *req, struct evkeyvalq *form)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > BODY_MAX) {
        dreply_error(req, 413, "the form is %zu bytes; the limit is %d", n, BODY_MAX);
        return false;
    }
    char *body = xmalloc(n + 1);
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    int rc = evhttp_parse_query_str(body, form);
    free(body);
    if (rc < 0) {
        dreply_error(req, 400, "the body is not an application/x-www-form-urlencoded form");
        return false;
    }
    return true;
}

static void route_post(struct server *srv, struct evhttp_request *req, const char *path, const struct dash_who *who)
{
    const char *prefix = "/api/actions/";
    if (strncmp(path, prefix, strlen(prefix)) != 0) {
        dreply_error(req, 405, "POST is for /api/actions/<name>; use GET here");
        return;
    }
    if (!csrf_ok(req, who))
        return;
    struct evkeyvalq form = { 0 };
    TAILQ_INIT(&form);
    if (read_form(req, &form))
        dapi_action(srv, req, path + strlen(prefix), &form, who);
    evhttp_clear_headers(&form);
}

static void route_get(struct server *srv, struct evhttp_request *req, const char *path, const struct dash_who *who)
{
    struct evkeyvalq q = { 0 };
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, &q) < 0) {
        dreply_error(req, 400, "the query string is malformed");
        return;
    }
    if (!strcmp(path, "/api/session"))
        api_session(srv, req, who);
    else if (!strcmp(path, "/api/overview"))
        dapi_overview(srv, req, D.rates);
    else if (!strcmp(path, "/api/throughput"))
        api_throughput(req, &q);
    else if (!strcmp(path, "/api/queue"))
        dapi_queue(srv, req, &q, who);
    else if (!strcmp(path, "/api/jobs"))
        dapi_jobs(srv, req, &q);
    else if (!strcmp(path, "/api/job"))
        dapi_job(srv, req, &q, who);
    else if (!strcmp(path, "/api/dead-groups"))
        dapi_dead_groups(srv, req, &q);
    else if (!strcmp(path, "/api/workers"))
        dpages_workers(srv, req);
    else if (!strcmp(path, "/api/schedules"))
        dpages_schedules(srv, req, who);
    else if (!strcmp(path, "/api/events"))
        dlive_open(req);
    else if (!strcmp(path, "/api/server"))
        api_server(srv, req);
    else if (!serve_asset(req, path))
        dreply_error(req, 404, "not found: the dashboard is at /; its API is under /api/");
    evhttp_clear_headers(&q);
}

static bool owned(const char *path)
{
    static const char *const legacy[] = { "/healthz", "/metrics", "/api/queues" };
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++)
        if (!strcmp(path, legacy[i]))
            return false;
    if (!strncmp(path, "/api/jobs/", 10))
        return false; /* one job's record with its failed attempts (http.c) */
    if (!strncmp(path, "/api/", 5) || !strcmp(path, "/"))
        return true;
    for (int i = 0; i < dash_nassets; i++)
        if (!strcmp(dash_assets[i].path, path))
            return true;
    return false;
}

bool dash_handle(struct server *srv, struct evhttp_request *req)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || !owned(path) || !D.rates)
        return false;
    struct dash_who who;
    if (!authorize(srv, req, &who))
        return true;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
        route_post(srv, req, path, &who);
    else if (is_get(req) && (!strncmp(path, "/api/", 5) && strcmp(path, "/api/session") != 0)
                 && !dapi_permits(req, &who, "queue.list", NULL, 0))
        return true; /* a named user needs @read (QUEUE.LIST) to see the figures */
    else if (is_get(req))
        route_get(srv, req, path, &who);
    else
        dreply_error(req, 405, "use GET, or POST for /api/actions/<name>");
    return true;
}
