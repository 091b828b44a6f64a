/*
 * config.c - the settings table and its parsers (see config.h).
 */
#include "config.h"

#include "log.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SPOOL_VERSION_STRING "0.1.0"

enum opt_type { OPT_INT, OPT_SIZE, OPT_STR, OPT_ENUM };

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    const char *defval;
    int64_t min, max;              /* OPT_INT / OPT_SIZE */
    const char *const *choices;    /* OPT_ENUM, NULL-terminated */
    const char *help;
};

static const char *const fsync_choices[] = { "always", "batch", "off", NULL };
static const char *const payload_choices[] = { "json", "raw", NULL };
static const char *const yesno_choices[] = { "no", "yes", NULL };
static const char *const tls_auth_choices[] = { "no", "optional", "yes", NULL };
static const char *const admin_tls_choices[] = { "no", "yes", "auto", NULL };
static const char *const level_choices[] = { "debug", "info", "warn", "error", NULL };
static const char *const evict_choices[] = { "noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu",
                                             "volatile-ttl", "allkeys-random", "volatile-random", NULL };

#define OFF(f) offsetof(struct config, f)
static const struct opt opts[] = {
    { "port", OPT_INT, OFF(port), "7379", 0, 65535, NULL, "TCP port for RESP clients (0 = any free port)" },
    { "bind", OPT_STR, OFF(bind), "127.0.0.1", 0, 0, NULL, "address to listen on" },
    { "data-dir", OPT_STR, OFF(data_dir), "./spool-data", 0, 0, NULL, "directory for the shard journals" },
    { "shards", OPT_INT, OFF(shards), "0", 0, 256, NULL, "shard threads (0 = one per core)" },
    { "replica-id", OPT_INT, OFF(replica_id), "0", 0, 255, NULL, "this node's id in --replica-peers (0 = no replication; docs/cluster.md)" },
    { "replica-peers", OPT_STR, OFF(replica_peers), "", 0, 0, NULL, "the replication group: ID=RAFTHOST:PORT/HOST:PORT,… for each member (3 or 5)" },
    { "replica-election-ms", OPT_INT, OFF(replica_election_ms), "400", 50, 60000, NULL, "Raft election timeout of the replication group, ms (failover takes about 2-3 times this)" },
    { "replica-catch-up-round-ms", OPT_INT, OFF(replica_catch_up_round_ms), "5000", 10, 600000, NULL, "a node being added catches up in rounds: one lasting longer than this ends, and the next starts while the node answers, ms" },
    { "replica-join", OPT_ENUM, OFF(replica_join), "no", 0, 0, yesno_choices, "a new member of a running group: start with an empty log and wait for the leader to add it (spool cluster add-replica), instead of bootstrapping --replica-peers: no|yes" },
    { "replica-snapshot-entries", OPT_INT, OFF(replica_snapshot_entries), "8192", 8, 1000000000, NULL, "log compaction: snapshot the shard journals every this many Raft entries, then drop the log before them (docs/replication.md)" },
    { "replica-snapshot-trailing", OPT_INT, OFF(replica_snapshot_trailing), "1024", 0, 1000000000, NULL, "log compaction: entries kept in the Raft log before a snapshot (a follower that far behind gets them, not the snapshot)" },
    { "replica-snapshot-max-mb", OPT_INT, OFF(replica_snapshot_max_mb), "512", 1, 1048576, NULL, "log compaction: no snapshot larger than this (it is held in memory while written and sent)" },
    { "io-threads", OPT_INT, OFF(io_threads), "0", 0, 64, NULL, "I/O threads with --colocate no (0 = one per core, at most 8; setting it without colocate means --colocate no); with --colocate yes each shard thread serves its clients" },
    { "colocate", OPT_ENUM, OFF(colocate), "yes", 0, 0, yesno_choices, "yes: shard thread k is also I/O thread k and runs its clients' commands without a hop, and a client moves to the thread of the shard its commands go to (docs/threads.md); no: separate I/O threads, every command hops to its shard's thread and back (the default when io-threads is set and colocate is not)" },
    { "fsync", OPT_ENUM, OFF(fsync), "always", 0, 0, fsync_choices, "journal durability: always|batch|off" },
    { "sync-gather-us", OPT_INT, OFF(sync_gather_us), "1000", 0, 100000, NULL, "--fsync always: after a sync that released the replies of several clients, the next sync waits up to this many microseconds (and at most three times the clients' measured return and two syncs' time) for those clients' next requests, so that one fsync carries them all (0 = off; docs/performance.md)" },
    { "requirepass", OPT_STR, OFF(requirepass), "", 0, 0, NULL, "password clients must AUTH with (empty = none)" },
    { "http-port", OPT_INT, OFF(http_port), "7380", -1, 65535, NULL, "HTTP admin and dashboard port (0 = off, -1 = any free port)" },
    { "payload", OPT_ENUM, OFF(payload), "json", 0, 0, payload_choices, "payload check: json|raw" },
    { "max-payload", OPT_SIZE, OFF(max_payload), "1mb", 1, 512LL << 20, NULL, "largest job payload in bytes" },
    { "max-result", OPT_SIZE, OFF(max_result), "64kb", 0, 512LL << 20, NULL, "largest job result (JOB.ACK … RESULT) and progress value in bytes" },
    { "payload-file-min", OPT_SIZE, OFF(payload_file_min), "16kb", 0, 512LL << 20, NULL, "payloads of at least this many bytes are written once, to the shard's payload file (shard-<k>.payload.<n>), not into the journal (0 = off; off in a replication group; docs/operations.md)" },
    { "payload-file-segment", OPT_SIZE, OFF(payload_file_segment), "64mb", 4LL << 10, 1LL << 40, NULL, "size after which a payload file segment is closed and the next one started; a segment is deleted once no job points into it" },
    { "payload-file-compact", OPT_INT, OFF(payload_file_compact), "25", 0, 90, NULL, "a closed payload file segment whose live payloads fill less than this percentage of it is compacted: they are copied to the newest segment and it is deleted (0 = never; docs/operations.md)" },
    { "payload-memory", OPT_SIZE, OFF(payload_memory), "1gb", 0, 1LL << 40, NULL, "payloads kept in memory (all shards); beyond it they are read from the journal" },
    { "maxmemory", OPT_SIZE, OFF(maxmemory), "0", 0, 1LL << 50, NULL, "memory for strings, hashes and sorted sets over all shards (0 = no limit); jobs do not count" },
    { "maxmemory-policy", OPT_ENUM, OFF(maxmemory_policy), "noeviction", 0, 0, evict_choices, "at maxmemory: noeviction (writes get -OOM) or which keys to evict, sampled as Redis does" },
    { "proto-max-bulk-len", OPT_SIZE, OFF(proto_max_bulk_len), "0", 0, 1LL << 32, NULL, "largest RESP bulk string (0 = twice max-payload, at least 1mb)" },
    { "proto-max-request", OPT_SIZE, OFF(proto_max_request), "64mb", 1024, 1LL << 34, NULL, "largest request: all arguments of one command together" },
    { "aclfile", OPT_STR, OFF(aclfile), "", 0, 0, NULL, "ACL users file (`user NAME rules...` lines), read at start and by ACL LOAD, written by ACL SAVE (empty = none)" },
    { "tls-port", OPT_INT, OFF(tls_port), "0", -1, 65535, NULL, "TCP port for TLS clients (0 = no TLS, -1 = any free port; see INFO server tls_port)" },
    { "tls-cert-file", OPT_STR, OFF(tls_cert_file), "", 0, 0, NULL, "the server's certificate chain (PEM) for --tls-port" },
    { "tls-key-file", OPT_STR, OFF(tls_key_file), "", 0, 0, NULL, "the private key (PEM) of --tls-cert-file" },
    { "tls-ca-cert-file", OPT_STR, OFF(tls_ca_cert_file), "", 0, 0, NULL, "CA certificates (PEM) that client certificates are checked against" },
    { "tls-auth-clients", OPT_ENUM, OFF(tls_auth_clients), "no", 0, 0, tls_auth_choices, "client certificates: no (not asked), optional (checked when sent), yes (required)" },
    { "admin-tls", OPT_ENUM, OFF(admin_tls), "auto", 0, 0, admin_tls_choices, "HTTP admin and dashboard over HTTPS with --tls-cert-file/--tls-key-file: auto (when tls-cert-file is set), yes, no" },
    { "protected-mode", OPT_ENUM, OFF(protected_mode), "yes", 0, 0, yesno_choices, "with no password, serve only loopback clients: yes|no" },
    { "request-timeout", OPT_INT, OFF(request_timeout), "60", 0, 100000000, NULL, "close a client whose started request is not complete after this many seconds (0 = never)" },
    { "timeout", OPT_INT, OFF(timeout), "0", 0, 100000000, NULL, "close a client idle this many seconds (0 = never; unauthenticated: 10 s)" },
    { "disk-reserve", OPT_SIZE, OFF(disk_reserve), "64mb", 0, 1LL << 50, NULL, "refuse pushes (-FULL) while the data directory's file system has less free space than this, so that reserve, ack and delete keep working (0 = never)" },
    { "maxclients", OPT_INT, OFF(maxclients), "10000", 1, 1000000, NULL, "most client connections at once" },
    { "client-output-limit", OPT_SIZE, OFF(client_output_limit), "64mb", 65536, 1LL << 40, NULL, "output buffer at which a client that does not read is disconnected" },
    { "recover", OPT_ENUM, OFF(recover), "no", 0, 0, yesno_choices, "start even though shard files are missing or their WAL was cut, accepting the loss (logged): no|yes; --recover alone means yes" },
    { "enable-debug-command", OPT_ENUM, OFF(enable_debug), "no", 0, 0, yesno_choices, "allow DEBUG (fault injection for tests): no|yes" },
    { "busy-script-time", OPT_INT, OFF(busy_script_time), "5000", 1, 86400000, NULL, "ms a Lua script runs before other clients of its shard get -BUSY and SCRIPT KILL may end it" },
    { "script-memory", OPT_SIZE, OFF(script_memory), "64mb", 1LL << 20, 1LL << 40, NULL, "memory cap of each shard's Lua state" },
    { "script-cache-size", OPT_INT, OFF(script_cache_size), "500", 1, 1000000, NULL, "scripts EVAL keeps cached (least recently used go first); SCRIPT LOAD keeps as many again" },
    { "loglevel", OPT_ENUM, OFF(loglevel), "info", 0, 0, level_choices, "debug|info|warn|error" },
    { "logfile", OPT_STR, OFF(logfile), "", 0, 0, NULL, "log file (empty = stderr)" },
    { "port-file", OPT_STR, OFF(port_file), "", 0, 0, NULL, "write the bound port to this file once listening" },
    { "http-port-file", OPT_STR, OFF(http_port_file), "", 0, 0, NULL, "write the bound HTTP port to this file once listening" },
    { "cluster", OPT_ENUM, OFF(cluster), "no", 0, 0, yesno_choices, "cluster mode: serve the slots of this node's group, -MOVED for the others (docs/cluster.md): no|yes" },
    { "cluster-node-id", OPT_STR, OFF(cluster_node_id), "", 0, 0, NULL, "cluster mode: this node's id on first start (1 to 40 letters and digits; empty = 40 random hex digits), kept in data-dir/cluster.json" },
    { "cluster-announce", OPT_STR, OFF(cluster_announce), "", 0, 0, NULL, "cluster mode: the host:port clients reach this node at, which spool cluster create and add-group put in the map (empty = the address they were given)" },
    { "config", OPT_STR, OFF(config_file), "", 0, 0, NULL, "config file of `name value` lines" },
};
#define NOPTS (sizeof opts / sizeof opts[0])

const char *config_fsync_name(int mode)
{
    return fsync_choices[mode];
}

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcasecmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* "512mb", "1k", "100" -> bytes. */
static int parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -EINVAL;
    int64_t mul = 1;
    if (*end) {
        if (!strcasecmp(end, "k") || !strcasecmp(end, "kb"))
            mul = 1024;
        else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb"))
            mul = 1024 * 1024;
        else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb"))
            mul = 1024LL * 1024 * 1024;
        else
            return -EINVAL;
    }
    if (v > INT64_MAX / mul)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

static int set_opt(struct config *cfg, const struct opt *o, const char *val, FILE *err,
                   const char *where)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STR:
        free(*(char **)field);
        *(char **)field = strdup(val);
        return 0;
    case OPT_INT:
    case OPT_SIZE: {
        int64_t v;
        int rc;
        if (o->type == OPT_SIZE) {
            rc = parse_size(val, &v);
        } else {
            char *end;
            errno = 0;
            long long l = strtoll(val, &end, 10);
            rc = (errno || end == val || *end) ? -EINVAL : 0;
            v = l;
        }
        if (rc < 0 || v < o->min || v > o->max) {
            fprintf(err, "spoold: %s: bad value '%s' for %s: expected %s from %lld to %lld\n",
                    where, val, o->name, o->type == OPT_SIZE ? "a size (e.g. 1mb)" : "a whole number",
                    (long long)o->min, (long long)o->max);
            return -1;
        }
        if (o->type == OPT_SIZE)
            *(int64_t *)field = v;
        else
            *(int *)field = (int)v;
        return 0;
    }
    case OPT_ENUM:
        for (int i = 0; o->choices[i]; i++) {
            if (strcasecmp(o->choices[i], val) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        fprintf(err, "spoold: %s: bad value '%s' for %s: expected one of", where, val, o->name);
        for (int i = 0; o->choices[i]; i++)
            fprintf(err, " %s", o->choices[i]);
        fprintf(err, "\n");
        return -1;
    }
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int load_file(struct config *cfg, const char *path, const bool *given, bool *infile, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "spoold: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *sp = s + strcspn(s, " \t");
        char *val = "";
        if (*sp) {
            *sp = '\0';
            val = trim(sp + 1);
        }
        size_t vn = strlen(val);
        if (vn >= 2 && ((val[0] == '"' && val[vn - 1] == '"') || (val[0] == '\'' && val[vn - 1] == '\''))) {
            val[vn - 1] = '\0';
            val++;
        }
        char where[512];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        const struct opt *o = find_opt(s);
        if (!o || o->offset == OFF(config_file)) {
            fprintf(err, "spoold: %s: unknown setting '%s' (see spoold --help)\n", where, s);
            rc = -1;
        } else if (!given[o - opts]) {
            rc = set_opt(cfg, o, val, err, where);
            infile[o - opts] = true;
        }
    }
    fclose(f);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: spoold [--name value ...]\n\nSettings (also accepted as `name value` lines in --config FILE):\n");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(out, "  --%-20s %s (default: %s)\n", opts[i].name, opts[i].help,
                opts[i].defval[0] ? opts[i].defval : "none");
    fprintf(out, "  --help / --version\n");
}

/* The request limits must fit together and fit a payload. */
static int check_limits(struct config *cfg, FILE *err)
{
    if ((cfg->replica_id > 0) != (cfg->replica_peers[0] != 0)) {
        fprintf(err, "spoold: --replica-id and --replica-peers go together (this node's id and the group's members, "
                "e.g. --replica-id 1 --replica-peers 1=127.0.0.1:17001/127.0.0.1:7001,2=…,3=…; docs/cluster.md)\n");
        return -1;
    }
    if (cfg->replica_join == 1 && !cfg->replica_id) {
        fprintf(err, "spoold: --replica-join yes needs --replica-id and --replica-peers naming at least this node "
                "(e.g. --replica-id 4 --replica-peers 4=127.0.0.1:17004/127.0.0.1:7004; docs/replication.md, Membership)\n");
        return -1;
    }
    if (cfg->proto_max_bulk_len == 0) {
        int64_t v = cfg->max_payload * 2;
        cfg->proto_max_bulk_len = v < (1 << 20) ? (1 << 20) : v;
    }
    if (cfg->proto_max_bulk_len < cfg->max_payload) {
        fprintf(err, "spoold: proto-max-bulk-len (%lld bytes) is smaller than max-payload (%lld bytes): a payload "
                "that may be stored could not be sent; raise proto-max-bulk-len or leave it at 0 (twice max-payload)\n",
                (long long)cfg->proto_max_bulk_len, (long long)cfg->max_payload);
        return -1;
    }
    if (cfg->proto_max_request < cfg->proto_max_bulk_len) {
        fprintf(err, "spoold: proto-max-request (%lld bytes) is smaller than proto-max-bulk-len (%lld bytes): "
                "a request could not carry one argument that long; raise proto-max-request\n",
                (long long)cfg->proto_max_request, (long long)cfg->proto_max_bulk_len);
        return -1;
    }
    return 0;
}

int config_load(struct config *cfg, int argc, char **argv, FILE *err)
{
    memset(cfg, 0, sizeof *cfg);
    bool given[NOPTS] = { false };
    for (size_t i = 0; i < NOPTS; i++)
        if (set_opt(cfg, &opts[i], opts[i].defval, err, "default") < 0)
            return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
            printf("spoold %s\n", SPOOL_VERSION_STRING);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "spoold: unexpected argument '%s' (settings are --name value; see spoold --help)\n", a);
            return -1;
        }
        char name[64];
        const char *val;
        const char *eq = strchr(a, '=');
        if (!strcmp(a, "--recover") && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            cfg->recover = 1; /* a flag: --recover alone */
            given[find_opt("recover") - opts] = true;
            continue;
        }
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(err, "spoold: --%s needs a value (see spoold --help)\n", name);
                return -1;
            }
            val = argv[++i];
        }
        const struct opt *o = find_opt(name);
        if (!o) {
            fprintf(err, "spoold: unknown option --%s (see spoold --help)\n", name);
            return -1;
        }
        if (set_opt(cfg, o, val, err, "command line") < 0)
            return -1;
        given[o - opts] = true;
    }
    bool infile[NOPTS] = { false };
    if (cfg->config_file[0] && load_file(cfg, cfg->config_file, given, infile, err) < 0)
        return -1;
    if (cfg->shards == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->shards = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    }
    size_t io = (size_t)(find_opt("io-threads") - opts), co = (size_t)(find_opt("colocate") - opts);
    bool io_given = given[io];
    if ((io_given || infile[io]) && !given[co] && !infile[co])
        cfg->colocate = 0; /* threads of their own asked for by number: the I/O threads stay separate */
    if (cfg->colocate) {
        if (io_given && cfg->io_threads != cfg->shards) {
            fprintf(err, "spoold: --colocate yes serves clients on the %d shard thread(s), so --io-threads %d cannot "
                    "hold; leave --io-threads out, or use --colocate no\n", cfg->shards, cfg->io_threads);
            return -1;
        }
        cfg->io_threads = cfg->shards;
    }
    if (cfg->io_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->io_threads = n > 0 ? (int)(n > 8 ? 8 : n) : 1;
    }
    return check_limits(cfg, err);
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR) {
            free(*(char **)((char *)cfg + opts[i].offset));
            *(char **)((char *)cfg + opts[i].offset) = NULL;
        }
}

void config_each(const struct config *cfg, const char *pattern,
                 void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        if (fnmatch(pattern, o->name, FNM_CASEFOLD) != 0)
            continue;
        const char *field = (const char *)cfg + o->offset;
        char buf[64];
        const char *v = buf;
        switch (o->type) {
        case OPT_STR:
            v = *(char *const *)field;
            if (o->offset == OFF(requirepass) && v[0])
                v = "(set)";
            break;
        case OPT_INT:
            snprintf(buf, sizeof buf, "%d", *(const int *)field);
            break;
        case OPT_SIZE:
            snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)field);
            break;
        case OPT_ENUM:
            v = o->choices[*(const int *)field];
            break;
        }
        fn(arg, o->name, v);
    }
}
