/*
 * http.c - see http.h.
 */
#include "http.h"

#include "admin_rpc.h"
#include "clock.h"
#include "cmd_flow.h"
#include "cmd_queue.h"
#include "command.h"
#include "context.h"
#include "dash.h"
#include "inbox.h"
#include "log.h"
#include "msg.h"
#include "shard.h"
#include "sysinfo.h"
#include "textfmt.h"
#include "tls.h"
#include "xalloc.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum http_kind { H_METRICS, H_QUEUES, H_JOB };

struct http_call {
    struct evhttp_request *req;
    enum http_kind kind;
    int pending;
    resp_buf *parts; /* one per shard */
};

/* One queue's figures as a shard reports them (see sh_admin_stats). */
struct qfig {
    const char *name;
    size_t len;
    long long v[QSTAT_COUNT];
};

static const struct command admin_stats_cmd = {
    .name = "admin-stats", .arity = 1, .shard = sh_admin_stats,
};

static const struct command admin_job_cmd = {
    .name = "admin-job", .arity = 1, .shard = sh_admin_job,
};

/* ------------------------------------------------------------- parsing */

/* Reads the shards' records into one sorted array (malloc'd). */
static struct qfig *collect(struct http_call *hc, int nparts, size_t *out_n)
{
    size_t n;
    struct name_rec *r = text_name_recs(hc->parts, nparts, &n);
    struct qfig *v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].name = r[i].name;
        v[i].len = r[i].len;
        char *q = (char *)r[i].rest;
        for (int k = 0; k < QSTAT_COUNT; k++)
            v[i].v[k] = strtoll(q, &q, 10);
    }
    free(r);
    *out_n = n;
    return v;
}

/* ----------------------------------------------------------- rendering */

static void render_queues(resp_buf *b, const struct qfig *v, size_t n)
{
    resp_buf_append(b, "{\"queues\":[", 11);
    for (size_t i = 0; i < n; i++) {
        resp_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        text_json_str(b, v[i].name, v[i].len);
        for (int k = 0; k < QSTAT_COUNT; k++) {
            if (k == QSTAT_PAUSED)
                resp_buf_printf(b, ",\"paused\":%s", v[i].v[k] ? "true" : "false");
            else
                resp_buf_printf(b, ",\"%s\":%lld", qstat_names[k], v[i].v[k]);
        }
        resp_buf_append(b, "}", 1);
    }
    resp_buf_append(b, "]}\n", 3);
}

static void metric_head(resp_buf *b, const char *name, const char *type, const char *help)
{
    resp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void queue_metric(resp_buf *b, const char *metric, const struct qfig *f, const char *state,
                         long long v)
{
    resp_buf_printf(b, "%s{queue=\"", metric);
    text_prom_label(b, f->name, f->len);
    if (state)
        resp_buf_printf(b, "\",state=\"%s", state);
    resp_buf_printf(b, "\"} %lld\n", v);
}

/* spoold's own figures: up, uptime, connections, commands, memory. */
static void render_server_metrics(struct server *srv, resp_buf *b)
{
    metric_head(b, "spool_up", "gauge", "1 while spoold serves.");
    resp_buf_printf(b, "spool_up 1\n");
    metric_head(b, "spool_uptime_seconds", "gauge", "Seconds since spoold started.");
    resp_buf_printf(b, "spool_uptime_seconds %lld\n", (long long)((clock_mono_ms() - srv->started_mono) / 1000));
    metric_head(b, "spool_connected_clients", "gauge", "Client connections.");
    resp_buf_printf(b, "spool_connected_clients %ld\n", atomic_load(&srv->connected_clients));
    metric_head(b, "spool_blocked_clients", "gauge", "Clients waiting in BRPOP/BLPOP/JOB.RESERVE.");
    resp_buf_printf(b, "spool_blocked_clients %ld\n", atomic_load(&srv->blocked_clients));
    metric_head(b, "spool_connections_received_total", "counter", "Connections accepted.");
    resp_buf_printf(b, "spool_connections_received_total %llu\n",
                    (unsigned long long)atomic_load(&srv->total_connections));
    metric_head(b, "spool_commands_processed_total", "counter", "Commands processed.");
    resp_buf_printf(b, "spool_commands_processed_total %llu\n",
                    (unsigned long long)atomic_load(&srv->total_commands));
    metric_head(b, "spool_memory_rss_bytes", "gauge", "Resident memory of spoold.");
    resp_buf_printf(b, "spool_memory_rss_bytes %ld\n", sysinfo_rss_bytes());
}

/* One figure of each queue as a metric of its own, in this order. */
static const struct { int k; const char *metric, *type, *help; } queue_figures[] = {
    { QSTAT_PUSHED, "spool_queue_pushed_total", "counter", "Jobs pushed since spoold started." },
    { QSTAT_ACKED, "spool_queue_acked_total", "counter", "Deliveries acknowledged." },
    { QSTAT_RETRIED, "spool_queue_retried_total", "counter", "Retries scheduled." },
    { QSTAT_LEASE_EXPIRED, "spool_queue_lease_expired_total", "counter", "Leases that expired." },
    { QSTAT_EXPIRED_TOTAL, "spool_queue_expired_total", "counter", "Jobs that expired before delivery (EXPIRES)." },
    { QSTAT_BURIED, "spool_queue_dead_total", "counter", "Jobs that went dead." },
    { QSTAT_POPPED, "spool_queue_popped_total", "counter", "Jobs taken by list pops." },
    { QSTAT_PAUSED, "spool_queue_paused", "gauge", "1 while a queue is paused." },
    { QSTAT_WAITERS, "spool_queue_waiters", "gauge", "Blocked consumers waiting on a queue." },
    { QSTAT_THROTTLED, "spool_queue_throttled_waiters", "gauge", "Waiters held back by the queue's rate or concurrency limit." },
    { QSTAT_GROUPS, "spool_queue_groups", "gauge", "Groups with ready or reserved jobs." },
    { QSTAT_RATE_LIMIT, "spool_queue_rate_limit", "gauge", "Deliveries allowed per rate period (0: no limit)." },
    { QSTAT_CONCURRENCY_LIMIT, "spool_queue_concurrency_limit", "gauge", "Most jobs reserved at once (0: no limit)." },
};

/* A figure in milliseconds of each queue, shown in seconds. */
static void queue_seconds(resp_buf *b, const char *metric, const char *help, const struct qfig *v, size_t n, int k)
{
    metric_head(b, metric, "gauge", help);
    for (size_t i = 0; i < n; i++) {
        resp_buf_printf(b, "%s{queue=\"", metric);
        text_prom_label(b, v[i].name, v[i].len);
        resp_buf_printf(b, "\"} %.3f\n", (double)v[i].v[k] / 1000.0);
    }
}

/* The queues' figures: jobs by state, the counters and gauges of
 * queue_figures, then the two in seconds. */
static void render_queue_metrics(resp_buf *b, const struct qfig *v, size_t n)
{
    metric_head(b, "spool_queue_jobs", "gauge", "Jobs of a queue by state.");
    for (size_t i = 0; i < n; i++)
        for (int k = QSTAT_READY; k <= QSTAT_EXPIRED; k++)
            queue_metric(b, "spool_queue_jobs", &v[i], qstat_names[k], v[i].v[k]);
    for (size_t t = 0; t < sizeof queue_figures / sizeof queue_figures[0]; t++) {
        metric_head(b, queue_figures[t].metric, queue_figures[t].type, queue_figures[t].help);
        for (size_t i = 0; i < n; i++)
            queue_metric(b, queue_figures[t].metric, &v[i], NULL, v[i].v[queue_figures[t].k]);
    }
    queue_seconds(b, "spool_queue_rate_period_seconds", "The period of the queue's rate limit.", v, n,
                  QSTAT_RATE_PERIOD_MS);
    queue_seconds(b, "spool_queue_oldest_ready_age_seconds", "Age of the oldest ready job.", v, n, QSTAT_OLDEST);
}

static void render_metrics(struct server *srv, resp_buf *b, const struct qfig *v, size_t n)
{
    render_server_metrics(srv, b);
    render_queue_metrics(b, v, n);
}

/* ------------------------------------------------------------ requests */

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *type,
                      const char *body, size_t len)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void finish_job(struct http_call *hc)
{
    resp_buf *b = &hc->parts[0];
    if (b->len) {
        send_text(hc->req, 200, "OK", "application/json", b->data, b->len);
    } else {
        static const char msg[] = "{\"error\":\"no such job (it never existed, or it finished and was removed)\"}\n";
        send_text(hc->req, 404, "Not Found", "application/json", msg, sizeof msg - 1);
    }
    resp_buf_free(b);
    free(hc->parts);
    free(hc);
}

static void finish(struct server *srv, struct http_call *hc)
{
    if (hc->kind == H_JOB) {
        finish_job(hc);
        return;
    }
    size_t n;
    struct qfig *v = collect(hc, srv->nshards, &n);
    resp_buf b;
    resp_buf_init(&b);
    if (hc->kind == H_QUEUES) {
        render_queues(&b, v, n);
        send_text(hc->req, 200, "OK", "application/json", b.data, b.len);
    } else {
        render_metrics(srv, &b, v, n);
        send_text(hc->req, 200, "OK", "text/plain; version=0.0.4", b.data, b.len);
    }
    resp_buf_free(&b);
    free(v);
    for (int k = 0; k < srv->nshards; k++)
        resp_buf_free(&hc->parts[k]);
    free(hc->parts);
    free(hc);
}

void http_on_reply(struct server *srv, struct msg *m)
{
    if (admin_rpc_on_reply(srv, m)) /* the dashboard's */
        return;
    struct http_call *hc = m->slot;
    hc->parts[m->part] = m->out;
    resp_buf_init(&m->out);
    msg_free(m);
    if (--hc->pending == 0)
        finish(srv, hc);
}

static void ask_shards(struct server *srv, struct evhttp_request *req, enum http_kind kind)
{
    struct http_call *hc = calloc(1, sizeof *hc);
    hc->parts = calloc((size_t)srv->nshards, sizeof *hc->parts);
    if (!hc || !hc->parts)
        abort();
    hc->req = req;
    hc->kind = kind;
    hc->pending = srv->nshards;
    for (int k = 0; k < srv->nshards; k++) {
        struct msg *m = msg_new(MSG_CMD);
        m->cmd = &admin_stats_cmd;
        m->origin = srv->nio; /* the main thread */
        m->slot = hc;
        m->part = k;
        inbox_post(ctx_inbox(srv, ctx_shard(srv, k)), m);
    }
}

/* /api/jobs/<id>: the job's record from its shard (ids name their shard). */
static void ask_job(struct server *srv, struct evhttp_request *req, const char *idtext)
{
    uint64_t id;
    uint32_t attempt;
    if (!job_id_parse(idtext, strlen(idtext), &id, &attempt) || job_id_shard(id) >= srv->nshards) {
        static const char msg[] = "{\"error\":\"not a job id of this server: /api/jobs/<16 hex digits>\"}\n";
        send_text(req, 404, "Not Found", "application/json", msg, sizeof msg - 1);
        return;
    }
    struct http_call *hc = calloc(1, sizeof *hc);
    hc->parts = calloc(1, sizeof *hc->parts);
    if (!hc || !hc->parts)
        abort();
    hc->req = req;
    hc->kind = H_JOB;
    hc->pending = 1;
    struct msg *m = msg_new(MSG_CMD);
    m->cmd = &admin_job_cmd;
    m->origin = srv->nio;
    m->slot = hc;
    m->part = 0;
    m->num = (long long)id;
    inbox_post(ctx_inbox(srv, ctx_shard(srv, job_id_shard(id))), m);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (dash_handle(srv, req)) {
        /* the dashboard: / and /api/ but the routes below */
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        send_text(req, 405, "Method Not Allowed", "text/plain", "use GET\n", 8);
    } else if (path && strcmp(path, "/healthz") == 0) {
        if (atomic_load(&srv->journal_failed_shards)) {
            char text[1400];
            int n = snprintf(text, sizeof text, "journal failed: %d shard(s) refuse writes; the first: %s\n",
                             atomic_load(&srv->journal_failed_shards), ctx_journal_failed(srv));
            send_text(req, 503, "Service Unavailable", "text/plain", text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
        } else if (atomic_load(&srv->disk_low)) {
            char text[300];
            int n = snprintf(text, sizeof text, "disk low: %lld bytes free, below disk-reserve (%lld): pushes are "
                             "refused, reserve/ack/delete work\n", atomic_load(&srv->disk_free),
                             (long long)srv->cfg.disk_reserve);
            send_text(req, 503, "Service Unavailable", "text/plain", text, (size_t)n);
        } else {
            send_text(req, 200, "OK", "text/plain", "ok\n", 3);
        }
    } else if (path && strcmp(path, "/metrics") == 0) {
        ask_shards(srv, req, H_METRICS);
    } else if (path && strcmp(path, "/api/queues") == 0) {
        ask_shards(srv, req, H_QUEUES);
    } else if (path && strncmp(path, "/api/jobs/", 10) == 0) {
        ask_job(srv, req, path + 10);
    } else {
        static const char msg[] = "not found: try / (the dashboard), /healthz, /metrics, /api/queues or /api/jobs/<id>\n";
        send_text(req, 404, "Not Found", "text/plain", msg, sizeof msg - 1);
    }
}

/* The port the admin socket got (for --http-port -1). */
static int bound_port(struct evhttp_bound_socket *bs)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static void write_http_port(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        log_error("cannot write the HTTP port file %s (http-port-file): %s", path, strerror(errno));
}

/* ------------------------------------------------------------- HTTPS */

/* admin-tls: yes, or auto with a certificate configured. */
static bool admin_https(const struct config *cfg)
{
    return cfg->admin_tls == 1 || (cfg->admin_tls == 2 && cfg->tls_cert_file[0]);
}

static struct bufferevent *https_bev(struct event_base *base, void *arg)
{
    struct server *srv = arg;
    return tls_http_bufferevent(base, srv->http_tls_ctx);
}

/* Makes the admin port serve HTTPS when admin-tls says so; a certificate
 * or key that cannot be loaded refuses the start (naming the file). */
static int https_setup(struct server *srv)
{
    if (!admin_https(&srv->cfg))
        return 0;
    char err[600];
    if (tls_http_ctx_new(&srv->http_tls_ctx, srv->cfg.tls_cert_file, srv->cfg.tls_key_file, err, sizeof err) < 0) {
        log_error("cannot serve the HTTP admin over HTTPS: %s", err);
        return -EINVAL;
    }
    evhttp_set_bevcb(srv->http, https_bev, srv);
    return 0;
}

/* ------------------------------------------------------------ start/stop */

int http_start(struct server *srv)
{
    if (srv->cfg.http_port == 0)
        return 0;
    srv->http = evhttp_new(srv->base);
    if (!srv->http)
        return -1;
    evhttp_set_gencb(srv->http, on_request, srv);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_max_headers_size(srv->http, 16384);
    evhttp_set_max_body_size(srv->http, 65536); /* the dashboard's forms are small */
    int rc = https_setup(srv);
    if (rc < 0) {
        evhttp_free(srv->http);
        srv->http = NULL;
        return rc;
    }
    int want = srv->cfg.http_port < 0 ? 0 : srv->cfg.http_port;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(srv->http, srv->cfg.bind, (uint16_t)want);
    if (!bs) {
        log_warn("HTTP admin is off: cannot listen on %s:%d (another spoold? choose --http-port, or 0 to turn it off)",
                 srv->cfg.bind, want);
        evhttp_free(srv->http);
        srv->http = NULL;
        return 0;
    }
    int port = bound_port(bs);
    if (dash_start(srv) < 0)
        return -1;
    /* A wildcard bind is reached on loopback from this machine. */
    const char *host = !strcmp(srv->cfg.bind, "0.0.0.0") ? "127.0.0.1" : !strcmp(srv->cfg.bind, "::") ? "[::1]"
                                                                                                      : srv->cfg.bind;
    bool v6 = strchr(host, ':') && host[0] != '[';
    log_info("dashboard on %s://%s%s%s:%d/ (HTTP admin: /healthz, /metrics, /api/queues)",
             srv->http_tls_ctx ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (srv->cfg.http_port_file[0])
        write_http_port(srv->cfg.http_port_file, port);
    if (srv->cfg.requirepass[0] && strncmp(srv->cfg.bind, "127.", 4) != 0 && strcmp(srv->cfg.bind, "::1") != 0)
        log_warn("/metrics and /api/queues have no password and HTTP listens on %s: they show queue names and counts "
                 "to anyone who can reach it (the dashboard asks for the password; set --http-port 0, or keep "
                 "--bind on loopback behind a proxy)", srv->cfg.bind);
    return 0;
}

void http_stop(struct server *srv)
{
    if (srv->http) {
        dash_stop(srv);
        evhttp_free(srv->http);
    }
    srv->http = NULL;
    if (srv->http_tls_ctx)
        tls_ctx_free(srv->http_tls_ctx);
    srv->http_tls_ctx = NULL;
}
