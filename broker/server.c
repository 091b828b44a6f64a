/*
 * server.c - start-up, the listener, signals and the stop sequence (see
 * server.h).
 */
#include "server.h"

#include "batch.h"
#include "cmd_result.h"
#include "jext.h"
#include "schedule.h"

#include "acl.h"
#include "clock.h"
#include "command.h"
#include "cluster.h"
#include "cluster_sync.h"
#include "commands.h"
#include "datadir.h"
#include "fsio.h"
#include "http.h"
#include "io.h"
#include "journal.h"
#include "log.h"
#include "msg.h"
#include "notify.h"
#include "powercut.h"
#include "protect.h"
#include "replica.h"
#include "queue.h"
#include "scriptcache.h"
#include "xalloc.h"
#include "shard.h"
#include "sysinfo.h"
#include "tls.h"

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

static void accept_conn(struct server *srv, evutil_socket_t fd, struct sockaddr *sa, bool tls);

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                      void *arg)
{
    accept_conn(arg, fd, sa, false);
}

static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                          void *arg)
{
    accept_conn(arg, fd, sa, true);
}

static void accept_conn(struct server *srv, evutil_socket_t fd, struct sockaddr *sa, bool tls)
{
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
    m->tls = tls;
    int k = srv->next_io++ % srv->nio;
    inbox_post(ctx_inbox(srv, ctx_io(srv, k)), m);
}

/* Once a second: free space where the data directory is (disk-reserve). */
static void disk_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    ctx_disk_update(srv, sysinfo_disk_free(srv->cfg.data_dir));
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

/* Fills ss from --bind and port (IPv4 or IPv6 literal). */
static int bind_address(const struct server *srv, int port, struct sockaddr_storage *ss, int *sslen)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, srv->cfg.bind, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *sslen = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, srv->cfg.bind, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
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
    if (bind_address(srv, srv->cfg.port, &ss, &sslen) < 0) {
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

/* --tls-port: the TLS context from the certificate files, and a listener
 * whose connections the I/O threads wrap in TLS. */
static int listen_tls(struct server *srv)
{
    char err[600];
    if (tls_ctx_new(&srv->tls_ctx, srv->cfg.tls_cert_file, srv->cfg.tls_key_file, srv->cfg.tls_ca_cert_file,
                    srv->cfg.tls_auth_clients, err, sizeof err) < 0) {
        log_error("cannot serve TLS: %s", err);
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    int sslen = 0, port = srv->cfg.tls_port < 0 ? 0 : srv->cfg.tls_port;
    if (bind_address(srv, port, &ss, &sslen) < 0) {
        log_error("cannot serve TLS: '%s' is not an IP address (set --bind to e.g. 127.0.0.1 or 0.0.0.0)", srv->cfg.bind);
        return -EINVAL;
    }
    srv->tls_listener = evconnlistener_new_bind(srv->base, accept_tls_cb, srv,
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                511, (struct sockaddr *)&ss, sslen);
    if (!srv->tls_listener) {
        int e = errno;
        log_error("cannot listen for TLS on %s:%d: %s (choose another --tls-port)", srv->cfg.bind, port, strerror(e));
        return -e;
    }
    evconnlistener_set_error_cb(srv->tls_listener, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(evconnlistener_get_fd(srv->tls_listener), (struct sockaddr *)&bound, &bl);
    srv->tls_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
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
    if (srv->tls_listener) {
        evconnlistener_free(srv->tls_listener);
        srv->tls_listener = NULL;
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
    replica_handover(srv->replica); /* a leader hands over first, while everything still runs (bounded) */
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

/* -------------------------------------------------------------- manifest */

static bool shard_file_exists(const struct server *srv, int k)
{
    char path[4096];
    return datadir_shard_path(path, sizeof path, srv->cfg.data_dir, k, ".db") == 0 && access(path, F_OK) == 0;
}

/* A shard file the manifest lists is missing: refused unless --recover. */
static int missing_shard(struct server *srv, int k, const char *why)
{
    const char *dir = srv->cfg.data_dir;
    struct mark mk;
    char jobs[96] = "";
    if (datadir_mark_read(dir, k, &mk) == 0)
        snprintf(jobs, sizeof jobs, " (it held %lld job(s) at its last commit mark)", (long long)mk.jobs);
    if (!srv->cfg.recover) {
        log_error("data directory %s: %s/shard-%d.db is missing%s%s: its queues and jobs would be lost. Put the file back "
                  "(restore it from a backup: docs/operations.md, Backups and damage), or start with --recover to run "
                  "shard %d empty and accept the loss", dir, dir, k, why, jobs, k);
        return -ENOENT;
    }
    log_warn("--recover: %s/shard-%d.db is missing%s; shard %d starts empty%s", dir, k, why, k, jobs);
    return 0;
}

/* Reads (or writes, for a new directory) the MANIFEST and checks that every
 * shard file it names is there, before any shard file is opened (opening
 * creates a missing one). */
static int check_manifest(struct server *srv, struct manifest *m)
{
    const char *dir = srv->cfg.data_dir;
    int rc = datadir_manifest_read(dir, m);
    if (rc == -EILSEQ) {
        log_error("%s/MANIFEST is damaged or not a spool manifest: restore it from a backup, or remove it and "
                  "spoold writes a new one from the shard files (all of them must be there)", dir);
        return rc;
    }
    if (rc < 0 && rc != -ENOENT) {
        log_error("cannot read %s/MANIFEST: %s", dir, strerror(-rc));
        return rc;
    }
    if (rc == 0) {
        if (m->shards != srv->nshards) {
            log_error("data directory %s was created with %d shards (its MANIFEST says so), and spoold was started "
                      "with --shards %d: start it with --shards %d (queues are placed on shards by name; another "
                      "count would lose track of them)", dir, m->shards, srv->nshards, m->shards);
            return -EINVAL;
        }
        for (int k = 0; m->ready && k < m->shards; k++)
            if (!shard_file_exists(srv, k) && (rc = missing_shard(srv, k, "")) < 0)
                return rc;
        return 0;
    }
    /* No manifest: a new directory, or one from before manifests. */
    int have = 0;
    for (int k = 0; k < srv->nshards; k++)
        have += shard_file_exists(srv, k);
    datadir_new_id(m->id);
    m->shards = srv->nshards;
    m->ready = false;
    if (have > 0 && have < srv->nshards)
        for (int k = 0; k < srv->nshards; k++)
            if (!shard_file_exists(srv, k) &&
                (rc = missing_shard(srv, k, " (the directory has no MANIFEST, and other shard files exist)")) < 0)
                return rc;
    if (have > 0)
        log_info("data directory %s has no MANIFEST yet: writing one for its %d shard file(s)", dir, have);
    if ((rc = datadir_manifest_write(dir, m)) < 0)
        log_error("cannot write %s/MANIFEST: %s (is --data-dir writable?)", dir, strerror(-rc));
    return rc;
}

/* Once every shard file exists and carries its identity. */
static int manifest_ready(struct server *srv, struct manifest *m)
{
    if (m->ready)
        return 0;
    m->ready = true;
    int rc = datadir_manifest_write(srv->cfg.data_dir, m);
    if (rc < 0)
        log_error("cannot write %s/MANIFEST: %s (is --data-dir writable?)", srv->cfg.data_dir, strerror(-rc));
    return rc;
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
    srv->find_command = commands_find;
    srv->scripts = scache_new((size_t)srv->cfg.script_cache_size, (size_t)srv->cfg.script_cache_size);
    srv->script_busy = xcalloc((size_t)srv->nshards, sizeof *srv->script_busy);
    srv->load = xcalloc((size_t)(srv->nio > 0 ? srv->nio : 1), sizeof *srv->load);
    for (int i = 0; i < srv->nio; i++)
        atomic_store(&srv->load[i].fake, -1);
    atomic_store(&srv->disk_free_fake, -1);
    atomic_store(&srv->disk_free, -1);
    return 0;
}

/* The I/O threads; with --colocate yes (nio == nshards) I/O thread i
 * lives on shard i's thread and event_base, their inboxes share a home
 * (local posts, inbox.h), and a script of shard i serves its clients. */
static int init_io(struct server *srv)
{
    bool co = srv->cfg.colocate;
    for (int i = 0; i < srv->nio; i++) {
        int rc = io_init(&srv->io[i], srv, i, co ? srv->shards[i].base : NULL, co ? i + 1 : srv->nshards + i + 1);
        if (rc < 0)
            return rc;
        if (co) {
            srv->script_busy[i].serve = io_serve_busy;
            srv->script_busy[i].serve_arg = &srv->io[i];
        }
    }
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

/* A no-op command posted to a shard when the replication role changes or
 * it has log entries to apply: its turn begins with both (shard.c,
 * replica_gate). */
static void wake_shard(struct shard *s, struct msg *m)
{
    (void)s;
    msg_free(m);
}

static const struct command wake_cmd = { .name = "replica.wake", .shard = wake_shard };

static void wake_shard_k(void *arg, int k)
{
    struct server *srv = arg;
    struct msg *m = msg_new(MSG_CMD);
    m->cmd = &wake_cmd;
    inbox_post(ctx_inbox(srv, ctx_shard(srv, k)), m);
}

static void wake_shards(void *arg)
{
    struct server *srv = arg;
    for (int i = 0; i < srv->nshards; i++)
        wake_shard_k(srv, i);
}

/* --replica-id: joins the replication group (replica.h) once every shard
 * has recovered, and records each shard's changes from then on. */
static int start_replica(struct server *srv)
{
    if (!srv->cfg.replica_id)
        return 0;
    struct replica_cfg rc = { .id = srv->cfg.replica_id, .peers = srv->cfg.replica_peers,
                              .data_dir = srv->cfg.data_dir, .nshards = srv->nshards,
                              .election_ms = srv->cfg.replica_election_ms,
                              .catch_up_round_ms = srv->cfg.replica_catch_up_round_ms, .wake = wake_shards, .apply = wake_shard_k,
                              .wake_arg = srv, .snapshot_entries = (unsigned)srv->cfg.replica_snapshot_entries,
                              .snapshot_trailing = (unsigned)srv->cfg.replica_snapshot_trailing,
                              .snapshot_max_bytes = (size_t)srv->cfg.replica_snapshot_max_mb << 20,
                              .snapshot_timeout_ms = 30000, .join = srv->cfg.replica_join == 1 };
    char err[600];
    int r = replica_start(&srv->replica, &rc, err, sizeof err);
    if (r < 0) {
        log_error("%s", err);
        return r;
    }
    if (srv->cluster)
        replica_map_attach(srv->replica, srv->cluster); /* the slot map's entries (docs/cluster.md) */
    for (int i = 0; i < srv->nshards; i++)
        if ((r = replica_attach(srv->replica, i, srv->shards[i].st.jr)) < 0) {
            log_error("replica: shard %d: %s", i, journal_error(srv->shards[i].st.jr));
            return r;
        }
    if ((r = replica_run(srv->replica, err, sizeof err)) < 0) {
        log_error("%s", err);
        return r;
    }
    log_info("replica %d: member of the group %s; serving once elected", srv->cfg.replica_id,
             srv->cfg.replica_peers);
    return 0;
}

/* After the shards stopped: their sessions go, then the Raft thread. */
static void stop_replica(struct server *srv)
{
    if (!srv->replica)
        return;
    for (int i = 0; i < srv->nshards; i++)
        replica_detach(srv->replica, i);
    replica_stop(srv->replica);
    srv->replica = NULL;
}

/* Cluster mode with replication: this node's own group is led by the Raft
 * leader (replica.h); every other group by the node its map names. Called
 * by routing on the I/O threads (replica_role and replica_leader_addr are
 * thread-safe). */
static int replica_leader_of(void *arg, const struct cluster_map *m, int g)
{
    struct server *srv = arg;
    if (!srv->replica || g != cluster_my_group(srv->cluster, m))
        return m->groups[g].leader;
    int role = replica_role(srv->replica);
    char leader[64] = "", addr[CLUSTER_HOST_MAX + 16];
    if (role == REPLICA_FOLLOWER && !replica_leader_addr(srv->replica, leader, sizeof leader))
        return -1;
    const struct cluster_group *grp = &m->groups[g];
    for (int i = 0; i < grp->nnodes; i++) {
        snprintf(addr, sizeof addr, "%s:%d", grp->nodes[i].host, grp->nodes[i].port);
        if (role == REPLICA_LEADER ? !strcmp(grp->nodes[i].id, srv->cluster->myid)
                                   : role == REPLICA_FOLLOWER && !strcmp(addr, leader))
            return i;
    }
    return -1;
}

/* How often a cluster node asks its peers for a newer map (cluster_sync.h). */
#define CLUSTER_SYNC_MS 1000

/* Cluster mode: this node's id and slot map from data-dir/cluster.json;
 * ids and receipts carry their slot's tag from now on. */
static int open_cluster(struct server *srv)
{
    char err[600];
    const char *ann = srv->cfg.cluster_announce, *colon = strrchr(ann, ':');
    if (ann[0] && (!colon || colon == ann || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 ||
                   strspn(colon + 1, "0123456789") != strlen(colon + 1) || strchr(ann, ' '))) {
        log_error("cluster mode: --cluster-announce '%s' is not host:port (e.g. 10.0.0.5:7379)", ann);
        return -EINVAL;
    }
    srv->cluster = xcalloc(1, sizeof *srv->cluster);
    if (cluster_open(srv->cluster, srv->cfg.data_dir, srv->cfg.cluster_node_id, err, sizeof err) < 0) {
        log_error("cluster mode: %s", err);
        return -EINVAL;
    }
    job_id_tagging(true);
    cluster_set_leader_hook(srv->cluster, replica_leader_of, srv); /* the map's leader without --replica-id */
    const struct cluster_map *m = cluster_current(srv->cluster);
    if (m)
        log_info("cluster mode: node %s, map epoch %llu with %d group(s)", srv->cluster->myid,
                 (unsigned long long)m->epoch, m->ngroups);
    else
        log_info("cluster mode: node %s, no slot map yet (spool cluster create gives one)", srv->cluster->myid);
    return 0;
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
    char aclerr[1200];
    if (srv->cfg.aclfile[0] && acl_load_file(srv->cfg.aclfile, aclerr, sizeof aclerr) < 0) {
        log_error("%s (fix the file, or start without --aclfile)", aclerr);
        return -EINVAL;
    }
    struct manifest man;
    if ((rc = check_no_extra_shards(srv)) < 0 || (rc = check_manifest(srv, &man)) < 0)
        return rc;
    memcpy(srv->data_id, man.id, sizeof srv->data_id);
    if (srv->cfg.cluster && (rc = open_cluster(srv)) < 0)
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
    shard_ext_register(&result_ext);
    shard_ext_register(&schedule_ext);
    shard_ext_register(&batch_ext);
    shard_ext_register(&jext_ext); /* last: closes what the others wrote with */
    for (int i = 0; i < srv->nshards; i++)
        if ((rc = shard_init(&srv->shards[i], srv, i)) < 0)
            return rc;
    for (int i = 0; i < srv->nshards; i++)
        if ((rc = shard_recover(&srv->shards[i])) < 0)
            return rc;
    if ((rc = start_replica(srv)) < 0 || (rc = manifest_ready(srv, &man)) < 0)
        return rc;
    if ((rc = init_io(srv)) < 0)
        return rc;
    if ((rc = listen_on(srv)) < 0)
        return rc;
    if (srv->cfg.tls_port != 0 && (rc = listen_tls(srv)) < 0)
        return rc;
    if ((rc = http_start(srv)) < 0)
        return rc;
    return 0;
}

int server_run(struct server *srv)
{
    int rc = set_up(srv);
    if (rc < 0) {
        stop_replica(srv); /* set up before what failed (the Raft port taken, say): closed and freed */
        return rc;
    }
    srv->accept_retry = evtimer_new(srv->base, accept_retry_cb, srv);
    srv->disk_ev = event_new(srv->base, -1, EV_PERSIST, disk_cb, srv);
    struct timeval second = { 1, 0 };
    if (srv->disk_ev)
        event_add(srv->disk_ev, &second);
    disk_cb(-1, 0, srv);
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
    if (srv->cluster)
        srv->cluster_sync = cluster_sync_start(srv->cluster, srv->cfg.requirepass, CLUSTER_SYNC_MS);
    if (srv->tls_port)
        log_info("TLS on %s:%d (client certificates: %s)", srv->cfg.bind, srv->tls_port,
                 srv->cfg.tls_auth_clients == TLS_AUTH_YES ? "required"
                 : srv->cfg.tls_auth_clients == TLS_AUTH_OPTIONAL ? "checked when sent" : "not asked for");
    log_info("spoold ready: listening on %s:%d, %d shard(s), %d I/O thread(s)%s, data in %s, fsync %s, payload %s",
             srv->cfg.bind, srv->port, srv->nshards, srv->nio, srv->cfg.colocate ? " (the shard threads)" : "",
             srv->cfg.data_dir,
             config_fsync_name(srv->cfg.fsync), srv->cfg.payload ? "raw" : "json");
    if (srv->cfg.disk_reserve > 0 && srv->cfg.disk_reserve < (int64_t)srv->nshards * (8LL << 20))
        log_warn("disk-reserve %lld is less than 8 MiB per shard (%d shards): on a nearly full disk the shards' WALs "
                 "(up to about 4 MiB each before a checkpoint) may not fit while queues are drained; set disk-reserve "
                 "to at least %lldmb", (long long)srv->cfg.disk_reserve, srv->nshards, (long long)srv->nshards * 8);
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

    cluster_sync_stop(srv->cluster_sync);
    srv->cluster_sync = NULL;
    stop_threads(srv);
    stop_replica(srv);
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
    scache_free(srv->scripts);
    free(srv->script_busy);
    free(srv->load);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->tls_listener)
        evconnlistener_free(srv->tls_listener);
    tls_ctx_free(srv->tls_ctx);
    http_stop(srv);
    if (srv->main_inbox_ready) {
        inbox_discard(&srv->main_inbox);
        inbox_destroy(&srv->main_inbox);
    }
    struct event *evs[] = { srv->sig_term, srv->sig_int, srv->sig_hup, srv->accept_retry, srv->disk_ev };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (srv->base)
        event_base_free(srv->base);
    ctx_free(srv);
    cluster_sync_stop(srv->cluster_sync);
    if (srv->cluster) {
        cluster_close(srv->cluster);
        free(srv->cluster);
    }
    config_free(&srv->cfg);
    log_close();
}
