/*
 * cmd_server.c - connection and server commands (see cmd_server.h).
 *
 * These run on the connection's I/O thread. CLIENT LIST asks every I/O
 * thread for its own connections; INFO asks every shard for its queues.
 */
#include "cmd_server.h"

#include "acl.h"
#include "args.h"
#include "clock.h"
#include "cmd_multi.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "keyspace.h"
#include "log.h"
#include "msg.h"
#include "protect.h"
#include "pubsub.h"
#include "replica.h"
#include "shard.h"
#include "syncer.h"
#include "syncvfs.h"
#include "sysinfo.h"
#include "xalloc.h"

#include <ctype.h>
#include <fnmatch.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#define SPOOL_VERSION "0.1.0"
#define REDIS_COMPAT_VERSION "7.0.0"

/* ---------------------------------------------------------- basics */

/* PING [message] */
void io_ping(struct conn *c, struct msg *m)
{
    if (m->req.argc > 2) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (pubsub_restricted(c)) {
        /* RESP2 subscribed mode answers like a message. */
        resp_add_array(&m->out, 2);
        resp_add_cstr(&m->out, "pong");
        resp_add_bulk(&m->out, m->req.argc == 2 ? m->req.argv[1] : "", m->req.argc == 2 ? m->req.len[1] : 0);
    } else if (m->req.argc == 2) {
        resp_add_bulk(&m->out, m->req.argv[1], m->req.len[1]);
    } else {
        resp_add_simple(&m->out, "PONG");
    }
    conn_reply(c, m);
}

/* ------------------------------------------------------------- auth */

static bool password_ok(const struct conn *c, const char *p, size_t n)
{
    const char *want = c->io->srv->cfg.requirepass;
    size_t wn = strlen(want);
    unsigned char diff = (unsigned char)(wn != n);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(p[i] ^ want[i % (wn ? wn : 1)]);
    return diff == 0;
}

/* Returns NULL when user/pass are right, else the error to send. */
static const char *check_auth(struct conn *c, const struct msg *m, int user_i, int pass_i)
{
    if (user_i >= 0 && !arg_is(m, user_i, "default")) { /* a named ACL user */
        char name[ACL_NAME_MAX + 1];
        size_t n = m->req.len[user_i];
        if (n > ACL_NAME_MAX || !acl_auth((snprintf(name, sizeof name, "%.*s", (int)n, m->req.argv[user_i]), name),
                                          m->req.argv[pass_i], m->req.len[pass_i])) {
            conn_auth_failed(c);
            return "WRONGPASS invalid username-password pair or user is disabled.";
        }
        c->authed = true;
        snprintf(c->user, sizeof c->user, "%s", name);
        conn_apply_limits(c);
        return NULL;
    }
    if (acl_default_off()) { /* only named users get in */
        conn_auth_failed(c);
        return "WRONGPASS invalid username-password pair or user is disabled.";
    }
    if (!c->io->srv->cfg.requirepass[0])
        return "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
    if ((user_i >= 0 && !arg_is(m, user_i, "default")) ||
        !password_ok(c, m->req.argv[pass_i], m->req.len[pass_i])) {
        conn_auth_failed(c); /* counted, and this connection waits before its next request */
        return "WRONGPASS invalid username-password pair or user is disabled.";
    }
    c->authed = true;
    c->user[0] = '\0';
    conn_apply_limits(c);
    return NULL;
}

/* AUTH [username] password */
void io_auth(struct conn *c, struct msg *m)
{
    if (m->req.argc > 3) {
        conn_reply_error(c, m, "ERR syntax error");
        return;
    }
    const char *err = m->req.argc == 3 ? check_auth(c, m, 1, 2) : check_auth(c, m, -1, 1);
    if (err) {
        if (protect_auth_required(&c->io->srv->cfg))
            log_info("client id=%llu addr=%s: AUTH failed", (unsigned long long)c->id, c->addr);
        conn_reply_error(c, m, "%s", err);
    } else {
        conn_reply_ok(c, m);
    }
}

static void add_kv_str(resp_buf *b, const char *k, const char *v)
{
    resp_add_cstr(b, k);
    resp_add_cstr(b, v);
}

static void add_kv_int(resp_buf *b, const char *k, long long v)
{
    resp_add_cstr(b, k);
    resp_add_int(b, v);
}

static bool valid_client_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~')
            return false;
    return true;
}

static int set_name(struct conn *c, const char *s, size_t n)
{
    if (!valid_client_name(s, n))
        return -1;
    free(c->name);
    c->name = NULL;
    free(c->who); /* the holder text names the connection */
    c->who = NULL;
    if (n) {
        c->name = strndup(s, n);
        if (!c->name)
            abort();
    }
    return 0;
}

/* HELLO [protover [AUTH username password] [SETNAME name]] */
void io_hello(struct conn *c, struct msg *m)
{
    int proto = c->proto;
    int i = 1;
    if (m->req.argc > 1) {
        if (m->req.len[1] != 1 || (m->req.argv[1][0] != '2' && m->req.argv[1][0] != '3')) {
            conn_reply_error(c, m, "NOPROTO unsupported protocol version");
            return;
        }
        proto = m->req.argv[1][0] - '0';
        i = 2;
    }
    const char *setname = NULL;
    size_t setname_len = 0;
    for (; i < m->req.argc; i++) {
        if (arg_is(m, i, "AUTH") && i + 2 < m->req.argc) {
            const char *err = check_auth(c, m, i + 1, i + 2);
            if (err) {
                conn_reply_error(c, m, "%s", err);
                return;
            }
            i += 2;
        } else if (arg_is(m, i, "SETNAME") && i + 1 < m->req.argc) {
            setname = m->req.argv[i + 1];
            setname_len = m->req.len[i + 1];
            i++;
        } else {
            conn_reply_error(c, m, "ERR Syntax error in HELLO option '%.64s'", m->req.argv[i]);
            return;
        }
    }
    if (protect_auth_required(&c->io->srv->cfg) && !c->authed) {
        conn_reply_error(c, m, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if (setname && set_name(c, setname, setname_len) < 0) {
        conn_reply_error(c, m, "ERR Client names cannot contain spaces, newlines or special characters.");
        return;
    }
    c->proto = (uint8_t)proto;
    resp_buf *b = &m->out;
    resp_add_map(b, proto, 8);
    add_kv_str(b, "server", "spool");
    add_kv_str(b, "version", REDIS_COMPAT_VERSION);
    add_kv_str(b, "spool_version", SPOOL_VERSION);
    add_kv_int(b, "proto", proto);
    add_kv_int(b, "id", (long long)c->id);
    add_kv_str(b, "mode", c->io->srv->cluster ? "cluster" : "standalone");
    add_kv_str(b, "role", "master");
    resp_add_cstr(b, "modules");
    resp_add_array(b, 0);
    conn_reply(c, m);
}

/* ----------------------------------------------------------- CLIENT */

static void client_line(resp_buf *b, const struct conn *c, int64_t now)
{
    int queued = multi_queued(c);
    resp_buf_printf(b, "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=0 sub=%zu psub=%zu multi=%d cmd=%s user=default lib-name=%s lib-ver=%s resp=%d\n",
                    (unsigned long long)c->id, c->addr, c->laddr,
                    c->bev ? (int)bufferevent_getfd(c->bev) : -1, c->name ? c->name : "",
                    (long long)((now - c->created_ms) / 1000), (long long)((now - c->last_ms) / 1000),
                    c->blocked ? "b" : (c->nsubs || c->npsubs) ? "P" : queued >= 0 ? "x" : "N", c->nsubs, c->npsubs,
                    queued, c->lastcmd, c->lib_name, c->lib_ver, c->proto);
}

/* CLIENT LIST (on each I/O thread) */
void peer_client_list(struct io_thread *io, struct msg *m)
{
    int64_t now = clock_mono_ms();
    for (struct conn *c = io->conns; c; c = c->next)
        client_line(&m->out, c, now);
}

static void finish_client_list(struct conn *c, struct slot *sl)
{
    resp_buf all;
    resp_buf_init(&all);
    for (int i = 0; i < sl->nparts; i++)
        resp_buf_append(&all, sl->parts[i].data, sl->parts[i].len);
    resp_add_verbatim(&sl->out, c->proto, "txt", all.data, all.len);
    resp_buf_free(&all);
}

/* CLIENT ID | SETNAME name | GETNAME | LIST | INFO | SETINFO LIB-NAME|LIB-VER value | NO-EVICT|NO-TOUCH on|off */
void io_client(struct conn *c, struct msg *m)
{
    if (arg_is(m, 1, "ID") && m->req.argc == 2) {
        resp_add_int(&m->out, (long long)c->id);
        conn_reply(c, m);
    } else if (arg_is(m, 1, "SETNAME") && m->req.argc == 3) {
        if (set_name(c, m->req.argv[2], m->req.len[2]) < 0)
            conn_reply_error(c, m, "ERR Client names cannot contain spaces, newlines or special characters.");
        else
            conn_reply_ok(c, m);
    } else if (arg_is(m, 1, "GETNAME") && m->req.argc == 2) {
        if (c->name)
            resp_add_cstr(&m->out, c->name);
        else
            resp_add_null(&m->out, c->proto);
        conn_reply(c, m);
    } else if (arg_is(m, 1, "SETINFO") && m->req.argc == 4) {
        char *dst = arg_is(m, 2, "LIB-NAME") ? c->lib_name : arg_is(m, 2, "LIB-VER") ? c->lib_ver : NULL;
        if (!dst) {
            conn_reply_error(c, m, "ERR Unrecognized option '%.64s'", m->req.argv[2]);
        } else if (!valid_client_name(m->req.argv[3], m->req.len[3])) {
            conn_reply_error(c, m, "ERR %s cannot contain spaces, newlines or special characters.", m->req.argv[2]);
        } else {
            snprintf(dst, 32, "%.*s", (int)m->req.len[3], m->req.argv[3]);
            conn_reply_ok(c, m);
        }
    } else if (arg_is(m, 1, "LIST") && m->req.argc == 2) {
        conn_gather(c, m, false, finish_client_list);
    } else if (arg_is(m, 1, "INFO") && m->req.argc == 2) {
        resp_buf line;
        resp_buf_init(&line);
        client_line(&line, c, clock_mono_ms());
        resp_add_verbatim(&m->out, c->proto, "txt", line.data, line.len);
        resp_buf_free(&line);
        conn_reply(c, m);
    } else if ((arg_is(m, 1, "NO-EVICT") || arg_is(m, 1, "NO-TOUCH")) && m->req.argc == 3) {
        if (arg_is(m, 2, "on") || arg_is(m, 2, "off"))
            conn_reply_ok(c, m); /* spool evicts nothing and keeps no LRU: accepted for clients that set it */
        else
            conn_reply_error(c, m, "ERR CLIENT %s takes on or off, not '%.64s'", m->req.argv[1], m->req.argv[2]);
    } else {
        conn_reply_error(c, m, "ERR unknown subcommand or wrong number of arguments for '%.64s'. Try CLIENT HELP.",
                         m->req.argv[1]);
    }
}

/* ------------------------------------------------------------- INFO */

/* The log compaction lines of # Replication (replica_snap.h). */
static void info_snapshots(resp_buf *t, const struct replica_figures *f)
{
    resp_buf_printf(t, "replica_snapshots:%llu\r\nreplica_snapshots_failed:%llu\r\nreplica_snapshot_index:%llu\r\n"
                    "replica_snapshot_bytes:%llu\r\nreplica_snapshot_ms:%llu\r\nreplica_snapshot_written_ms:%llu\r\n"
                    "replica_snapshots_restored:%llu\r\n\r\n",
                    (unsigned long long)f->snapshots, (unsigned long long)f->snapshots_failed,
                    (unsigned long long)f->snapshot_index, (unsigned long long)f->snapshot_bytes,
                    (unsigned long long)f->snapshot_ms, (unsigned long long)f->snapshot_total_ms,
                    (unsigned long long)f->snapshots_restored);
}

/* # Persistence, with the payload file's bytes on disk against the bytes
 * jobs point at, in all and per shard (docs/operations.md). */
static void info_persistence(resp_buf *t, struct server *srv)
{
    struct syncer_stats sy;
    syncer_stats(&sy);
    resp_buf_printf(t, "# Persistence\r\nloading:0\r\nfsync:%s\r\njournal_syncs:%llu\r\ncommit_syncs:%llu\r\n"
                    "commit_sync_replies:%llu\r\ncommit_sync_last_us:%llu\r\nsync_gather_us:%d\r\n"
                    "sync_gather_windows:%llu\r\nsync_gather_timeouts:%llu\r\nsync_gather_return_us:%llu\r\n"
                    "disk_free:%lld\r\n"
                    "disk_reserve:%lld\r\ndisk_low:%d\r\njournal_failed_shards:%d\r\njournal_failed:%s\r\n",
                    config_fsync_name(srv->cfg.fsync), (unsigned long long)syncvfs_syncs(), sy.syncs, sy.replies,
                    sy.sync_us, srv->cfg.sync_gather_us, sy.windows, sy.timeouts, sy.return_us,
                    atomic_load(&srv->disk_free), (long long)srv->cfg.disk_reserve,
                    (int)atomic_load(&srv->disk_low), atomic_load(&srv->journal_failed_shards),
                    ctx_journal_failed(srv));
    unsigned long long disk = 0, live = 0, comp = 0, unsaved = 0, late = 0, skipped = 0;
    for (int i = 0; i < srv->nshards; i++) {
        disk += atomic_load_explicit(&srv->shards[i].pl_disk, memory_order_relaxed);
        live += atomic_load_explicit(&srv->shards[i].pl_live, memory_order_relaxed);
        comp += atomic_load_explicit(&srv->shards[i].pl_compactions, memory_order_relaxed);
        unsaved += atomic_load_explicit(&srv->shards[i].res_unsaved, memory_order_relaxed);
        late += atomic_load_explicit(&srv->shards[i].res_late, memory_order_relaxed);
        skipped += atomic_load_explicit(&srv->shards[i].res_skipped, memory_order_relaxed);
    }
    resp_buf_printf(t, "reservations_unsaved:%llu\r\nreservations_written_late:%llu\r\n"
                    "reservations_never_written:%llu\r\n", unsaved, late, skipped);
    resp_buf_printf(t, "payload_file_bytes:%llu\r\npayload_file_live_bytes:%llu\r\npayload_file_compactions:%llu\r\n",
                    disk, live, comp);
    for (int i = 0; i < srv->nshards; i++) {
        struct shard *sh = &srv->shards[i];
        resp_buf_printf(t, "payload_file_shard%d:bytes=%llu,live_bytes=%llu,segments=%llu,compactions=%llu\r\n", i,
                        (unsigned long long)atomic_load_explicit(&sh->pl_disk, memory_order_relaxed),
                        (unsigned long long)atomic_load_explicit(&sh->pl_live, memory_order_relaxed),
                        (unsigned long long)atomic_load_explicit(&sh->pl_segments, memory_order_relaxed),
                        (unsigned long long)atomic_load_explicit(&sh->pl_compactions, memory_order_relaxed));
    }
    resp_buf_printf(t, "\r\n");
}

/* # Replication: Redis's role line, and the group's figures (replica.h). */
static void info_replication(resp_buf *t, struct server *srv)
{
    struct replica *r = srv->replica;
    if (!r) {
        resp_buf_printf(t, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
        return;
    }
    static const char *const roles[] = { "electing", "follower", "leader" };
    int role = replica_role(r);
    char leader[64] = "";
    replica_leader_addr(r, leader, sizeof leader);
    struct replica_figures f;
    replica_figures(r, &f);
    resp_buf_printf(t, "# Replication\r\nrole:%s\r\nconnected_slaves:0\r\nreplica_id:%d\r\nreplica_role:%s\r\n"
                    "replica_leader:%s\r\nreplica_applied_index:%llu\r\nreplica_entries_applied:%llu\r\n"
                    "replica_entries_queued:%llu\r\nreplica_turns_proposed:%llu\r\nreplica_bytes_proposed:%llu\r\n"
                    "replica_commit_wait_us:%llu\r\nreplica_journal_commits:%llu\r\n",
                    role == REPLICA_LEADER ? "master" : "slave", srv->cfg.replica_id, roles[role], leader,
                    (unsigned long long)f.applied_index, (unsigned long long)f.applied,
                    (unsigned long long)f.queued, (unsigned long long)f.proposed, (unsigned long long)f.proposed_bytes,
                    (unsigned long long)f.commit_wait_us, (unsigned long long)f.journal_commits);
    info_snapshots(t, &f);
}

static bool want_section(const struct msg *m, const char *name, bool in_default)
{
    if (m->req.argc < 2)
        return in_default;
    for (int i = 1; i < m->req.argc; i++) {
        if (arg_is(m, i, name) || arg_is(m, i, "all") || arg_is(m, i, "everything"))
            return true;
        if (arg_is(m, i, "default") && in_default)
            return true;
    }
    return false;
}

/* Sums the keyspace line each shard's part starts with (keyspace.h) and
 * returns where the queue lines of that part begin. */
static size_t keyspace_line(const resp_buf *part, unsigned long long sum[KEYSPACE_INFO_FIELDS])
{
    unsigned long long v[KEYSPACE_INFO_FIELDS] = { 0 };
    const char *nl = part->len ? memchr(part->data, '\n', part->len) : NULL;
    if (!nl || part->len < 3 || memcmp(part->data, "kv:", 3) != 0 ||
        sscanf(part->data, KEYSPACE_INFO_FMT, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) != KEYSPACE_INFO_FIELDS)
        return 0;
    for (int i = 0; i < KEYSPACE_INFO_FIELDS; i++)
        sum[i] += v[i];
    return (size_t)(nl - part->data) + 1;
}

static void info_server(resp_buf *t, const struct server *srv)
{
    int64_t up = (clock_mono_ms() - srv->started_mono) / 1000;
    resp_buf_printf(t, "# Server\r\nredis_version:%s\r\nspool_version:%s\r\nredis_mode:%s\r\n"
                    "os:Linux\r\narch_bits:%d\r\nmultiplexing_api:epoll\r\nprocess_id:%d\r\nrun_id:%s\r\n"
                    "tcp_port:%d\r\ntls_port:%d\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\nio_threads:%d\r\n"
                    "colocate:%s\r\nshards:%d\r\nconfig_file:%s\r\n\r\n",
                    REDIS_COMPAT_VERSION, SPOOL_VERSION, srv->cluster ? "cluster" : "standalone",
                    (int)(sizeof(void *) * 8), (int)getpid(), srv->run_id, srv->port, srv->tls_port, (long long)up,
                    (long long)(up / 86400), srv->nio, srv->cfg.colocate ? "yes" : "no", srv->nshards,
                    srv->cfg.config_file);
}

static void finish_info(struct conn *c, struct slot *sl)
{
    struct server *srv = c->io->srv;
    const struct msg *m = sl->req;
    resp_buf t;
    resp_buf_init(&t);
    unsigned long long kv[KEYSPACE_INFO_FIELDS] = { 0 };
    size_t *skip = xcalloc((size_t)sl->nparts, sizeof *skip);
    for (int i = 0; i < sl->nparts; i++)
        skip[i] = keyspace_line(&sl->parts[i], kv);
    static const char *const policies[] = { "noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu",
                                            "volatile-lfu", "volatile-ttl", "allkeys-random", "volatile-random" };
    if (want_section(m, "server", true))
        info_server(&t, srv);
    if (want_section(m, "clients", true))
        resp_buf_printf(&t, "# Clients\r\nconnected_clients:%ld\r\nblocked_clients:%ld\r\nmaxclients:%d\r\n\r\n",
                        atomic_load(&srv->connected_clients), atomic_load(&srv->blocked_clients),
                        srv->cfg.maxclients);
    if (want_section(m, "memory", true)) {
        long rss = sysinfo_rss_bytes();
        resp_buf_printf(&t, "# Memory\r\nused_memory:%ld\r\nused_memory_rss:%ld\r\nused_memory_keyspace:%llu\r\n"
                        "maxmemory:%lld\r\nmaxmemory_policy:%s\r\n\r\n", rss, rss, kv[6],
                        (long long)srv->cfg.maxmemory, policies[srv->cfg.maxmemory_policy]);
    }
    if (want_section(m, "persistence", true))
        info_persistence(&t, srv);
    if (want_section(m, "stats", true))
        resp_buf_printf(&t, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                        "rejected_connections:%llu\r\nacl_access_denied_auth:%llu\r\nidle_clients_closed:%llu\r\n"
                        "expired_keys:%llu\r\nevicted_keys:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
                        "moved_connections:%llu\r\n\r\n",
                        (unsigned long long)atomic_load(&srv->total_connections),
                        (unsigned long long)atomic_load(&srv->total_commands),
                        (unsigned long long)atomic_load(&srv->rejected_connections),
                        (unsigned long long)atomic_load(&srv->auth_failures),
                        (unsigned long long)atomic_load(&srv->idle_closed), kv[4], kv[5], kv[2], kv[3],
                        (unsigned long long)atomic_load(&srv->moved_connections));
    if (want_section(m, "replication", true))
        info_replication(&t, srv);
    if (want_section(m, "cluster", true))
        resp_buf_printf(&t, "# Cluster\r\ncluster_enabled:%d\r\n\r\n", srv->cluster != NULL);
    if (want_section(m, "keyspace", true)) /* queues with ready jobs, strings, hashes, sorted sets */
        resp_buf_printf(&t, "# Keyspace\r\ndb0:keys=%llu,expires=%llu,avg_ttl=0\r\n\r\n",
                        (unsigned long long)sl->keys + kv[0], kv[1]);
    if (want_section(m, "queues", true)) {
        resp_buf_printf(&t, "# Queues\r\njobs_ready:%lld\r\n", sl->num);
        for (int i = 0; i < sl->nparts; i++)
            resp_buf_append(&t, sl->parts[i].data + skip[i], sl->parts[i].len - skip[i]);
    }
    free(skip);
    resp_add_verbatim(&sl->out, c->proto, "txt", t.data, t.len);
    resp_buf_free(&t);
}

/* INFO [section …] */
void io_info(struct conn *c, struct msg *m)
{
    conn_gather(c, m, true, finish_info);
}

/* ----------------------------------------------------------- CONFIG */

struct cfg_collect {
    resp_buf items;
    size_t n;
};

static void collect(void *arg, const char *name, const char *value)
{
    struct cfg_collect *cc = arg;
    resp_add_cstr(&cc->items, name);
    resp_add_cstr(&cc->items, value);
    cc->n++;
}

/* Settings Redis tools ask for, answered with what spool does. */
static const char *const compat[][2] = {
    { "save", "" }, { "appendonly", "no" }, { "databases", "1" },
};

/* CONFIG GET pattern [pattern …] | CONFIG RESETSTAT */
void io_config(struct conn *c, struct msg *m)
{
    if (!arg_is(m, 1, "GET")) {
        if (arg_is(m, 1, "RESETSTAT") && m->req.argc == 2) {
            conn_reply_ok(c, m);
            return;
        }
        conn_reply_error(c, m, "ERR CONFIG %.32s is not supported: spool reads its settings at start-up (spoold --help lists them); queue settings change with QUEUE.CONFIG",
                         m->req.argv[1]);
        return;
    }
    if (m->req.argc < 3) {
        conn_reply_error(c, m, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    struct cfg_collect cc;
    resp_buf_init(&cc.items);
    cc.n = 0;
    for (int i = 2; i < m->req.argc; i++) {
        config_each(&c->io->srv->cfg, m->req.argv[i], collect, &cc);
        for (size_t k = 0; k < sizeof compat / sizeof compat[0]; k++)
            if (fnmatch(m->req.argv[i], compat[k][0], FNM_CASEFOLD) == 0)
                collect(&cc, compat[k][0], compat[k][1]);
    }
    resp_add_map(&m->out, c->proto, cc.n);
    resp_buf_append(&m->out, cc.items.data, cc.items.len);
    resp_buf_free(&cc.items);
    conn_reply(c, m);
}

/* RESET */
void io_reset(struct conn *c, struct msg *m)
{
    pubsub_conn_gone(c);
    multi_reset(c);
    set_name(c, "", 0);
    c->proto = 2;
    c->authed = !protect_auth_required(&c->io->srv->cfg);
    conn_apply_limits(c);
    resp_add_simple(&m->out, "RESET");
    conn_reply(c, m);
}

/* ECHO message */
void io_echo(struct conn *c, struct msg *m)
{
    resp_add_bulk(&m->out, m->req.argv[1], m->req.len[1]);
    conn_reply(c, m);
}

/* SELECT index */
void io_select(struct conn *c, struct msg *m)
{
    if (arg_is(m, 1, "0"))
        conn_reply_ok(c, m);
    else
        conn_reply_error(c, m, "ERR DB index is out of range (spool has one database, 0)");
}

/* QUIT */
void io_quit(struct conn *c, struct msg *m)
{
    conn_reply_ok(c, m);
    conn_close_after_reply(c);
}

/* TIME */
void io_time(struct conn *c, struct msg *m)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char a[32], b[32];
    snprintf(a, sizeof a, "%ld", (long)tv.tv_sec);
    snprintf(b, sizeof b, "%ld", (long)tv.tv_usec);
    resp_add_array(&m->out, 2);
    resp_add_cstr(&m->out, a);
    resp_add_cstr(&m->out, b);
    conn_reply(c, m);
}

