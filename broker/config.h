/*
 * config.h - spoold's settings, from command-line flags and an optional
 * config file.
 *
 * Flags are `--name value`; the config file takes the same names, one
 * `name value` per line (`#` starts a comment). Flags given on the command
 * line win over the file. The table in config.c is the single list of
 * settings: parsing, `CONFIG GET` and `--help` all read it.
 *
 * Parsed once on the main thread before any other thread starts; read-only
 * afterwards, so every thread may read it without locks.
 */
#ifndef SPOOL_CONFIG_H
#define SPOOL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum fsync_mode { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_OFF };
enum payload_mode { PAYLOAD_JSON, PAYLOAD_RAW };
/* maxmemory-policy, as in Redis (keyspace values only; jobs are never evicted). */
enum evict_policy { EVICT_NONE, EVICT_ALLKEYS_LRU, EVICT_VOLATILE_LRU, EVICT_ALLKEYS_LFU, EVICT_VOLATILE_LFU,
                    EVICT_VOLATILE_TTL, EVICT_ALLKEYS_RANDOM, EVICT_VOLATILE_RANDOM };

struct config {
    int port;
    char *bind;
    char *data_dir;
    int shards;           /* 0 in the table means "number of cores" */
    int replica_id;       /* 0 = not replicated (replica.h) */
    char *replica_peers;
    int replica_election_ms;
    int replica_catch_up_round_ms; /* REPLICA.ADD: one catch-up round at most this long (replica.c) */
    int replica_join;              /* 1: joins a running group (replica.h) */
    int replica_snapshot_entries;  /* log compaction (replica_snap.h) */
    int replica_snapshot_trailing;
    int replica_snapshot_max_mb;
    int io_threads;       /* 0 means "auto"; = shards with colocate */
    int colocate;         /* 1: shard thread k is I/O thread k too (docs/threads.md) */
    int fsync;            /* enum fsync_mode */
    int sync_gather_us;   /* --fsync always: longest gathering window before a sync (syncer.h), 0 = off */
    char *requirepass;
    char *aclfile;
    int tls_port;         /* 0 = no TLS listener, -1 = any free port */
    char *tls_cert_file, *tls_key_file, *tls_ca_cert_file;
    int tls_auth_clients; /* enum tls_auth (tls.h): no, optional, yes */
    int admin_tls;        /* HTTP admin over HTTPS: 0 no, 1 yes, 2 auto (yes when tls-cert-file is set) */        /* ACL users, "" = none (acl.h) */
    int http_port;        /* 0 = off, -1 = any free port */
    int payload;          /* enum payload_mode */
    int64_t max_payload;
    int64_t max_result;   /* JOB.ACK … RESULT and JOB.PROGRESS values */
    int64_t payload_memory;
    int64_t payload_file_min;     /* 0: payloads stay in the journal */
    int64_t payload_file_segment;
    int payload_file_compact;     /* %: a closed segment less live than this is compacted; 0: never */
    int64_t maxmemory;    /* bytes of keyspace values over all shards; 0 = no limit */
    int maxmemory_policy; /* enum evict_policy */
    int64_t proto_max_bulk_len; /* 0 in the table means "twice max-payload" */
    int64_t proto_max_request;  /* all arguments of one request together */
    int protected_mode;   /* 0 no, 1 yes: no password -> loopback clients only */
    int timeout;          /* idle seconds before a client is closed; 0 = never */
    int request_timeout;  /* seconds a started request may take to arrive; 0 = no limit */
    int maxclients;
    int64_t disk_reserve; /* free bytes below which pushes are refused */
    int enable_debug;     /* 0 no, 1 yes */
    int recover;          /* 1: start on a damaged data dir, logging the loss */
    int64_t client_output_limit;
    int busy_script_time;   /* ms a script runs before its shard answers -BUSY */
    int64_t script_memory;  /* cap of each shard's Lua state */
    int script_cache_size;  /* scripts EVAL keeps (LRU); SCRIPT LOAD's as many again */
    int loglevel;         /* enum log_level */
    char *logfile;
    char *port_file;
    char *http_port_file;
    char *config_file;
    int cluster;          /* 0 no, 1 yes: cluster mode (cluster.h) */
    char *cluster_node_id;  /* "" = the stored one, or a new random id */
    char *cluster_announce; /* host:port spool cluster puts in the map; "" = the address it was given */
};

/* Fills cfg from argv (and the file named by --config). On a bad value or
 * an unknown name, prints a message that names the setting and what it
 * accepts to err and returns -1. Returns 1 when --help/--version was
 * printed (the caller exits 0), 0 otherwise. */
int config_load(struct config *cfg, int argc, char **argv, FILE *err);
void config_free(struct config *cfg);

/* Calls fn for each setting whose name matches the glob pattern (Redis
 * CONFIG GET semantics), with the value rendered as text. */
void config_each(const struct config *cfg, const char *pattern,
                 void (*fn)(void *arg, const char *name, const char *value), void *arg);

const char *config_fsync_name(int mode);

#endif
