/*
 * server.c - start-up, the listener, signals and the stop sequence (see
 * server.h).
 */
#include "server.h"

#include "clock.h"
#include "commands.h"
#include "fsio.h"
#include "http.h"
#include "io.h"
#include "log.h"
#include "msg.h"
#include "notify.h"
#include "powercut.h"
#include "protect.h"
#include "shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCEPT_RETRY_MS 100

/* ------------------------------------------------------------ accepting */

/* Protected mode: one -DENIED line, then close. Logged at most once a
 * minute (a scanner must not fill the log); counted in rejected_connections. */
static void refuse_unprotected(struct server *srv, int fd, const struct sockaddr *sa)
{
    static int64_t last_log;
    const char *msg = protect_denied_reply();
    ssize_t w = write(fd, msg, strlen(msg));
    (void)w;
    close(fd);
    atomic_fetch_add(&srv->rejected_connections, 1);
    int64_t now = clock_mono_ms();
    if (last_log == 0 || now - last_log >= 60000) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
        log_warn("protected mode: refused a client from %s (no password is set; set --requirepass, bind to "
                 "loopback, or --protected-mode no); further refusals are logged once a minute", host);
        last_log = now;
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                      void *arg)
{
    struct server *srv = arg;
    if (protect_refuses(&srv->cfg, sa)) {
        refuse_unprotected(srv, fd, sa);
        return;
    }
    if (atomic_load(&srv->connected_clients) >= srv->cfg.maxclients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        ssize_t w = write(fd, msg, sizeof msg - 1);
        (void)w;
        close(fd);
        atomic_fetch_add(&srv->rejected_connections, 1);
        return;
    }
    struct msg *m = msg_new(MSG_CONN);
    m->fd = fd;
    int k = srv->next_io++ % srv->nio;
    inbox_post(ctx_inbox(srv, ctx_io(srv, k)), m);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    evconnlistener_enable(srv->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct server *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment instead of spinning. */
        log_warn("accept failed: %s; pausing accepts for %d ms (raise the open-files limit, ulimit -n)",
                 strerror(err), ACCEPT_RETRY_MS);
        evconnlistener_disable(l);
        struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
        event_add(srv->accept_retry, &tv);
        return;
    }
    log_warn("accept failed: %s", strerror(err));
}

static int write_port_file(const char *path, int port)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", port);
    return fsio_write_atomic(path, text, (size_t)n);
}

/* Fills ss from --bind and --port (IPv4 or IPv6 literal). */
static int bind_address(const struct server *srv, struct sockaddr_storage *ss, int *sslen)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, srv->cfg.bind, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)srv->cfg.port);
        *sslen = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, srv->cfg.bind, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)srv->cfg.port);
        *sslen = sizeof *a6;
        return 0;
    }
    return -EINVAL;
}

static int listen_on(struct server *srv)
{
    struct sockaddr_storage ss;
    int sslen;
    char addr[300];
    snprintf(addr, sizeof addr, strchr(srv->cfg.bind, ':') ? "[%s]:%d" : "%s:%d", srv->cfg.bind, srv->cfg.port);
    if (bind_address(srv, &ss, &sslen) < 0) {
        log_error("cannot listen: '%s' is not an IP address (set --bind to e.g. 127.0.0.1 or 0.0.0.0)", srv->cfg.bind);
        return -EINVAL;
    }
    srv->listener = evconnlistener_new_bind(srv->base, accept_cb, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                            511, (struct sockaddr *)&ss, sslen);
    if (!srv->listener) {
        int err = errno;
        log_error("cannot listen on %s: %s (is another spoold or redis-server using port %d? choose another with --port)",
                  addr, strerror(err), srv->cfg.port);
        return -err;
    }
    evconnlistener_set_error_cb(srv->listener, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &bl);
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

/* Messages to the main thread: shards' replies to HTTP admin requests. */
static void main_drain(void *arg, struct msg *list)
{
    struct server *srv = arg;
    while (list) {
        struct msg *m = list;
        list = m->next;
        m->next = NULL;
        if (m->type == MSG_REPLY)
            http_on_reply(srv, m);
        else
            msg_free(m);
    }
}

/* --------------------------------------------------------------- signals */

static void stop_all(struct server *srv)
{
    http_stop(srv);
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    event_base_loopexit(srv->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    if (sig == SIGHUP) {
        int rc = log_reopen();
        if (rc < 0)
            log_error("SIGHUP: cannot reopen the log file: %s", strerror(-rc));
        else
            log_info("SIGHUP: log file reopened");
        return;
    }
    log_info("%s received: no longer accepting connections; finishing in-flight work",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    notify_send("STOPPING=1");
    stop_all(srv);
}

/* -------------------------------------------------------------- data dir */

static int prepare_data_dir(struct server *srv)
{
    const char *dir = srv->cfg.data_dir;
    int rc = fsio_mkdir(dir, 0755); /* durable: the parent directory is synced */
    if (rc < 0) {
        log_error("cannot create data directory %s: %s (set --data-dir to a writable directory)", dir, strerror(-rc));
        return rc;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd;
    if ((rc = fsio_create(path, 0644, &fd)) < 0) {
        log_error("cannot open %s: %s (is --data-dir writable?)", path, strerror(-rc));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        log_error("data directory %s is in use by another spoold (its LOCK file is held); stop that one or choose another --data-dir", dir);
        close(fd);
        return -EBUSY;
    }
    return 0; /* fd stays open (and locked) for the life of the process */
}

/* A data dir with more shard files than --shards was made with more shards. */
static int check_no_extra_shards(struct server *srv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/shard-%d.db", srv->cfg.data_dir, srv->nshards);
    if (access(path, F_OK) == 0) {
        log_error("data directory %s has %s, so it was created with more than --shards %d: start spoold with the "
                  "shard count it was created with (queues are placed on shards by name)",
                  srv->cfg.data_dir, path, srv->nshards);
        return -EINVAL;
    }
    return 0;
}

/* -------------------------------------------------------------- lifecycle */

static void make_run_id(char out[41])
{
    unsigned char r[20];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, r, sizeof r) : -1;
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 20; i++) {
        unsigned v = n == (ssize_t)sizeof r ? r[i] : (unsigned)rand();
        snprintf(out + 2 * i, 3, "%02x", v & 0xff);
    }
}

int server_init(struct server *srv, int argc, char **argv)
{
    memset(srv, 0, sizeof *srv);
    int rc = config_load(&srv->cfg, argc, argv, stderr);
    if (rc != 0)
        return rc;
    rc = log_open(srv->cfg.logfile, (enum log_level)srv->cfg.loglevel);
    if (rc < 0) {
        fprintf(stderr, "spoold: cannot open log file %s: %s\n", srv->cfg.logfile, strerror(-rc));
        return -1;
    }
    srv->started_ms = clock_now_ms();
    srv->started_mono = clock_mono_ms();
    make_run_id(srv->run_id);
    srv->nshards = srv->cfg.shards;
    srv->nio = srv->cfg.io_threads;
    srv->dispatch = commands_dispatch;
    return 0;
}

/* Stops the I/O threads first (they need the shards for in-flight
 * replies), then the shards. */
static void stop_threads(struct server *srv)
{
    for (int i = 0; i < srv->nio; i++)
        inbox_post(ctx_inbox(srv, ctx_io(srv, i)), msg_new(MSG_STOP));
    for (int i = 0; i < srv->nio; i++)
        io_join(&srv->io[i]);
    for (int i = 0; i < srv->nshards; i++)
        inbox_post(ctx_inbox(srv, ctx_shard(srv, i)), msg_new(MSG_STOP));
    for (int i = 0; i < srv->nshards; i++)
        shard_join(&srv->shards[i]);
}

/* Creates the main loop, the address book, every thread's state and the
 * listeners; loads every shard's journal. Starts no thread. */
static int set_up(struct server *srv)
{
    int rc;
    /* Tests only: every file goes through the power-cut seam (DEBUG POWER-CUT). */
    if (srv->cfg.enable_debug && (rc = powercut_enable()) < 0) {
        log_error("cannot start the power-cut seam of --enable-debug-command: %s", strerror(-rc));
        return rc;
    }
    if ((rc = prepare_data_dir(srv)) < 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    srv->base = event_base_new_with_config(ec);
    event_config_free(ec);
    srv->shards = calloc((size_t)srv->nshards, sizeof *srv->shards);
    srv->io = calloc((size_t)srv->nio, sizeof *srv->io);
    if (!srv->base || !srv->shards || !srv->io)
        return -ENOMEM;
    if ((rc = ctx_init(srv)) < 0)
        return rc;
    if ((rc = inbox_init(&srv->main_inbox, srv->base, main_drain, srv)) < 0)
        return rc;
    ctx_register(srv, ctx_io(srv, srv->nio), &srv->main_inbox);
    srv->main_inbox_ready = true;
    for (int i = 0; i < srv->nshards; i++)
        if ((rc = shard_init(&srv->shards[i], srv, i)) < 0)
            return rc;
    if ((rc = check_no_extra_shards(srv)) < 0)
        return rc;
    for (int i = 0; i < srv->nshards; i++)
        if ((rc = shard_recover(&srv->shards[i])) < 0)
            return rc;
    for (int i = 0; i < srv->nio; i++)
        if ((rc = io_init(&srv->io[i], srv, i)) < 0)
            return rc;
    if ((rc = listen_on(srv)) < 0)
        return rc;
    if ((rc = http_start(srv)) < 0)
        return rc;
    return 0;
}

int server_run(struct server *srv)
{
    int rc = set_up(srv);
    if (rc < 0)
        return rc;
    srv->accept_retry = evtimer_new(srv->base, accept_retry_cb, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, signal_cb, srv);
    srv->sig_hup = evsignal_new(srv->base, SIGHUP, signal_cb, srv);
    event_add(srv->sig_term, NULL);
    event_add(srv->sig_int, NULL);
    event_add(srv->sig_hup, NULL);

    for (int i = 0; i < srv->nshards; i++)
        if ((rc = shard_start(&srv->shards[i])) < 0)
            return rc;
    for (int i = 0; i < srv->nio; i++)
        if ((rc = io_start(&srv->io[i])) < 0)
            return rc;
    log_info("spoold ready: listening on %s:%d, %d shard(s), %d I/O thread(s), data in %s, fsync %s, payload %s",
             srv->cfg.bind, srv->port, srv->nshards, srv->nio, srv->cfg.data_dir,
             config_fsync_name(srv->cfg.fsync), srv->cfg.payload ? "raw" : "json");
    if (protect_active_beyond_loopback(&srv->cfg))
        log_warn("protected mode: listening on %s with no password, so only loopback clients are served; "
                 "others get -DENIED (set --requirepass, or --protected-mode no behind a firewall)", srv->cfg.bind);
    if (srv->cfg.port_file[0] && (rc = write_port_file(srv->cfg.port_file, srv->port)) < 0)
        log_error("cannot write the port file %s: %s", srv->cfg.port_file, strerror(-rc));
    char ready[200];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=listening on %s:%d\nMAINPID=%d", srv->cfg.bind, srv->port,
             (int)getpid());
    if ((rc = notify_send(ready)) < 0)
        log_warn("cannot tell the service manager that spoold is ready (NOTIFY_SOCKET=%s): %s",
                 getenv("NOTIFY_SOCKET"), strerror(-rc));

    event_base_dispatch(srv->base);

    stop_threads(srv);
    log_info("spoold stopped cleanly");
    return 0;
}

void server_free(struct server *srv)
{
    if (srv->io)
        for (int i = 0; i < srv->nio; i++)
            io_destroy(&srv->io[i]);
    if (srv->shards)
        for (int i = 0; i < srv->nshards; i++)
            shard_destroy(&srv->shards[i]);
    free(srv->io);
    free(srv->shards);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    http_stop(srv);
    if (srv->main_inbox_ready) {
        inbox_discard(&srv->main_inbox);
        inbox_destroy(&srv->main_inbox);
    }
    struct event *evs[] = { srv->sig_term, srv->sig_int, srv->sig_hup, srv->accept_retry };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (srv->base)
        event_base_free(srv->base);
    ctx_free(srv);
    config_free(&srv->cfg);
    log_close();
}
