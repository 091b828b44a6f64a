/*
 * commands.c - the command table, its lookup, dispatch and COMMAND
 * introspection (see commands.h).
 *
 * The table is sorted by name at start-up so lookups are a binary search.
 */
#include "commands.h"

#include "acl.h"
#include "args.h"
#include "clock.h"
#include "cmd_batch.h"
#include "cluster_move.h"
#include "cmd_cluster.h"
#include "cmd_flow.h"
#include "cmd_hash.h"
#include "cmd_job.h"
#include "cmd_keys.h"
#include "cmd_list.h"
#include "cmd_acl.h"
#include "cmd_backup.h"
#include "cmd_replica.h"
#include "cmd_multi.h"
#include "cmd_pubsub.h"
#include "cmd_result.h"
#include "cmd_sched.h"
#include "cmd_queue.h"
#include "cmd_script.h"
#include "cmd_server.h"
#include "cmd_string.h"
#include "cmd_zset.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "io.h"
#include "msg.h"
#include "protect.h"
#include "pubsub.h"
#include "replica.h"
#include "shard.h"
#include "slot.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define W CMD_WRITE
#define R CMD_READONLY

static void io_acl_entry(struct conn *c, struct msg *m);

static struct command table[] = {
    /* connection and server (I/O thread) */
    { "ping", -1, CMD_FAST | CMD_PUBSUB, 0, 0, 0, io_ping, NULL, NULL, "Answers PONG, or echoes its argument." },
    { "echo", 2, CMD_FAST, 0, 0, 0, io_echo, NULL, NULL, "Returns its argument." },
    { "hello", -1, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_hello, NULL, NULL, "Chooses RESP2 or RESP3, optionally authenticates and names the connection." },
    { "auth", -2, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_auth, NULL, NULL, "Authenticates the connection with the requirepass password." },
    { "select", 2, CMD_FAST, 0, 0, 0, io_select, NULL, NULL, "Selects database 0 (the only one)." },
    { "quit", -1, CMD_NOAUTH | CMD_FAST | CMD_PUBSUB | CMD_TXCTL, 0, 0, 0, io_quit, NULL, NULL, "Closes the connection after replying OK." },
    { "client", -2, CMD_FAST, 0, 0, 0, io_client, NULL, peer_client_list, "CLIENT ID|SETNAME|GETNAME|LIST|INFO|SETINFO." },
    { "info", -1, 0 | CMD_BIGREPLY, 0, 0, 0, io_info, sh_info, NULL, "Server, client, memory and queue information in Redis INFO format." },
    { "command", -1, 0, 0, 0, 0, io_command, NULL, NULL, "Describes the commands (COMMAND, COMMAND COUNT|INFO|DOCS)." },
    { "acl", -2, 0, 0, 0, 0, io_acl_entry, NULL, NULL, "ACL SETUSER|GETUSER|DELUSER|LIST|USERS|WHOAMI|CAT|SAVE|LOAD: named users with passwords, command, key and channel permissions." },
    { "backup", 2, 0, 0, 0, 0, io_backup, sh_backup, NULL, "BACKUP dir: an online, consistent copy of every shard into a new directory (restore: stop spoold, copy the files in, start)." },
    { "config", -2, 0, 0, 0, 0, io_config, NULL, NULL, "CONFIG GET pattern: the running settings." },
    { "cluster", -2, 0, 0, 0, 0, io_cluster, sh_cluster, peer_cluster, "CLUSTER INFO|MYID|KEYSLOT|SLOTS|SHARDS|NODES|COUNTKEYSINSLOT|GETKEYSINSLOT|GETMAP|SETMAP|CASMAP: cluster mode's slot map (docs/cluster.md)." },
    { "slotmove", -3, CMD_WRITE, 0, 0, 0, io_slotmove, sh_slotmove, NULL, "SLOTMOVE EXPORT|IMPORT|DROP|RESTORE slot [blob [APPEND]]: cluster mode's slot moves, for spool cluster move-slots (docs/cluster.md)." },
    { "replica.members", 1, 0, 0, 0, 0, io_replica_members, NULL, NULL, "Replication group: its members (id, Raft and client address, role, leader, log held) and the last membership change (docs/replication.md)." },
    { "replica.add", 4, 0, 0, 0, 0, io_replica_add, NULL, NULL, "REPLICA.ADD id raft-host:port host:port: on the leader, adds a node started with --replica-join yes (it catches up, then votes)." },
    { "replica.remove", 2, 0, 0, 0, 0, io_replica_remove, NULL, NULL, "REPLICA.REMOVE id: on the leader, removes a member of the replication group (a dead node before its replacement joins)." },
    { "replica.transfer", -1, 0, 0, 0, 0, io_replica_transfer, NULL, NULL, "REPLICA.TRANSFER [id]: on the leader, hands the leadership of the replication group to member id (default: the most up-to-date follower); answers once it leads." },
    { "asking", 1, CMD_FAST, 0, 0, 0, io_asking, NULL, NULL, "Cluster mode: the next command may use a slot that is moving to this node (after -ASK)." },
    { "readonly", 1, CMD_FAST, 0, 0, 0, io_readonly, NULL, NULL, "Cluster mode: accepted (a group's leader serves reads and writes)." },
    { "readwrite", 1, CMD_FAST, 0, 0, 0, io_readonly, NULL, NULL, "Cluster mode: accepted." },
    { "time", 1, CMD_FAST, 0, 0, 0, io_time, NULL, NULL, "The server time: seconds and microseconds." },
    /* lists */
    { "lpush", -3, W | CMD_LEFT, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the head of a queue; replies with its length." },
    { "rpush", -3, W, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the tail of a queue; replies with its length." },
    { "lpop", -2, W | CMD_LEFT | CMD_ONEPAYLOAD, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the head of a queue (at-most-once)." },
    { "rpop", -2, W | CMD_ONEPAYLOAD, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the tail of a queue (at-most-once)." },
    { "blpop", -3, W | CMD_LEFT | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the head of the first non-empty queue, waiting up to timeout seconds." },
    { "brpop", -3, W | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the tail of the first non-empty queue, waiting up to timeout seconds." },
    { "llen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_llen, NULL, "The number of ready jobs in a queue." },
    { "lrange", 4, R | CMD_BIGREPLY, 1, 1, 1, io_lrange, sh_lrange, NULL, "Peeks at ready jobs by index, without taking them." },
    { "reset", 1, CMD_NOAUTH | CMD_FAST | CMD_PUBSUB | CMD_TXCTL, 0, 0, 0, io_reset, NULL, NULL, "Resets the connection: unsubscribes, RESP2, no name; AUTH again when a password is set." },
    /* keys of any type */
    { "del", -2, W, 1, -1, 1, io_keys_count, sh_del_keys, NULL, "Deletes keys (a queue is purged); replies with how many existed." },
    { "unlink", -2, W | CMD_FAST, 1, -1, 1, io_keys_count, sh_del_keys, NULL, "DEL." },
    { "exists", -2, R | CMD_FAST, 1, -1, 1, io_keys_count, sh_exists_keys, NULL, "Counts the given keys that exist (a queue with ready jobs exists)." },
    { "type", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_type_key, NULL, "string, hash, zset, list (a queue with ready jobs) or none." },
    { "expire", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_expire, NULL, "Sets a key's time to live in seconds." },
    { "pexpire", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_expire, NULL, "Sets a key's time to live in milliseconds." },
    { "expireat", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_expire, NULL, "Sets a key's expiry as a Unix time in seconds." },
    { "pexpireat", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_expire, NULL, "Sets a key's expiry as a Unix time in milliseconds." },
    { "ttl", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_ttl, NULL, "Seconds to live (-1: no expiry, -2: no key)." },
    { "pttl", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_ttl, NULL, "Milliseconds to live (-1: no expiry, -2: no key)." },
    { "expiretime", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_ttl, NULL, "The expiry as a Unix time in seconds." },
    { "pexpiretime", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_ttl, NULL, "The expiry as a Unix time in milliseconds." },
    { "persist", 2, W | CMD_FAST, 1, 1, 1, io_key, sh_persist, NULL, "Removes a key's expiry." },
    { "rename", 3, W, 1, 2, 1, io_same_shard, sh_rename, NULL, "Renames a key (both names on one shard)." },
    { "renamenx", 3, W | CMD_FAST, 1, 2, 1, io_same_shard, sh_rename, NULL, "Renames a key if the new name is free." },
    { "dbsize", 1, R | CMD_FAST, 0, 0, 0, io_all_shards_sum, sh_dbsize_keys, NULL, "The number of keys (queues with ready jobs included)." },
    { "keys", 2, R | CMD_BIGREPLY, 0, 0, 0, io_keys, sh_keys, NULL, "The keys matching a glob pattern." },
    { "scan", -2, R | CMD_BIGREPLY, 0, 0, 0, io_scan, sh_scan, NULL, "Iterates over the keys with a cursor (MATCH, COUNT, TYPE)." },
    { "randomkey", 1, R, 0, 0, 0, io_randomkey, sh_randomkey, NULL, "A random key." },
    { "flushdb", -1, W, 0, 0, 0, io_flushdb, sh_flushdb, NULL, "Deletes every string, hash and sorted set (queues stay)." },
    { "flushall", -1, W, 0, 0, 0, io_flushdb, sh_flushdb, NULL, "FLUSHDB (spool has one database)." },
    /* transactions */
    { "multi", 1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_multi, NULL, NULL, "Starts a transaction." },
    { "exec", 1, CMD_TXCTL | CMD_BIGREPLY, 0, 0, 0, io_exec, sh_exec, NULL, "Runs the queued commands atomically on their shard." },
    { "discard", 1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_discard, NULL, NULL, "Drops the queued commands." },
    { "watch", -2, CMD_TXCTL | CMD_FAST, 1, -1, 1, io_watch, sh_watch, NULL, "EXEC runs only if these keys did not change." },
    { "unwatch", -1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_unwatch, sh_unwatch, NULL, "Forgets the watched keys." },
    /* strings */
    { "get", 2, R | CMD_FAST | CMD_ONEPAYLOAD, 1, 1, 1, io_key, sh_get, NULL, "The value of a string key." },
    { "set", -3, W, 1, 1, 1, io_key, sh_set, NULL, "Sets a string (EX PX EXAT PXAT KEEPTTL NX XX GET)." },
    { "setnx", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_setnx, NULL, "Sets a string if the key does not exist." },
    { "setex", 4, W, 1, 1, 1, io_key, sh_setex, NULL, "Sets a string with a time to live in seconds." },
    { "psetex", 4, W, 1, 1, 1, io_key, sh_setex, NULL, "Sets a string with a time to live in milliseconds." },
    { "getdel", 2, W | CMD_FAST | CMD_ONEPAYLOAD, 1, 1, 1, io_key, sh_getdel, NULL, "Returns a string and deletes its key." },
    { "getex", -2, W | CMD_FAST, 1, 1, 1, io_key, sh_getex, NULL, "Returns a string and changes its expiry." },
    { "mget", -2, R | CMD_FAST | CMD_BIGREPLY, 1, -1, 1, io_mget, sh_mget, NULL, "The values of several string keys." },
    { "mset", -3, W, 1, -1, 2, io_same_shard, sh_mset, NULL, "Sets several strings atomically (one shard)." },
    { "msetnx", -3, W, 1, -1, 2, io_same_shard, sh_mset, NULL, "Sets several strings if none of the keys exists." },
    { "incr", 2, W | CMD_FAST, 1, 1, 1, io_key, sh_incr, NULL, "Adds 1 to an integer string." },
    { "decr", 2, W | CMD_FAST, 1, 1, 1, io_key, sh_incr, NULL, "Subtracts 1 from an integer string." },
    { "incrby", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_incrby, NULL, "Adds to an integer string." },
    { "decrby", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_incrby, NULL, "Subtracts from an integer string." },
    { "incrbyfloat", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_incrbyfloat, NULL, "Adds a float to a numeric string." },
    { "append", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_append, NULL, "Appends to a string; replies with its length." },
    { "strlen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_strlen, NULL, "The length of a string." },
    { "getrange", 4, R, 1, 1, 1, io_key, sh_getrange, NULL, "A substring of a string." },
    /* hashes */
    { "hset", -4, W | CMD_FAST, 1, 1, 1, io_key, sh_hset, NULL, "Sets hash fields; replies with how many were new." },
    { "hmset", -4, W | CMD_FAST, 1, 1, 1, io_key, sh_hset, NULL, "Sets hash fields (replies OK)." },
    { "hsetnx", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_hsetnx, NULL, "Sets a hash field if it does not exist." },
    { "hget", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_hget, NULL, "The value of a hash field." },
    { "hmget", -3, R | CMD_FAST | CMD_BIGREPLY, 1, 1, 1, io_key, sh_hmget, NULL, "The values of hash fields." },
    { "hgetall", 2, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_hgetall, NULL, "Every field and value of a hash." },
    { "hkeys", 2, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_hgetall, NULL, "The fields of a hash." },
    { "hvals", 2, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_hgetall, NULL, "The values of a hash." },
    { "hdel", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_hdel, NULL, "Deletes hash fields; replies with how many existed." },
    { "hexists", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_hexists, NULL, "Whether a hash field exists." },
    { "hlen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_hlen, NULL, "The number of fields of a hash." },
    { "hstrlen", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_hstrlen, NULL, "The length of a hash field's value." },
    { "hincrby", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_hincrby, NULL, "Adds to an integer hash field." },
    { "hincrbyfloat", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_hincrbyfloat, NULL, "Adds a float to a hash field." },
    { "hscan", -3, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_hscan, NULL, "Iterates over a hash's fields with a cursor." },
    /* sorted sets */
    { "zadd", -4, W | CMD_FAST, 1, 1, 1, io_key, sh_zadd, NULL, "Adds members with scores (NX XX GT LT CH INCR)." },
    { "zincrby", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_zincrby, NULL, "Adds to a member's score." },
    { "zscore", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zscore, NULL, "A member's score." },
    { "zmscore", -3, R | CMD_FAST | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zscore, NULL, "The scores of members." },
    { "zrank", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zrank, NULL, "A member's rank, lowest score first." },
    { "zrevrank", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zrank, NULL, "A member's rank, highest score first." },
    { "zcard", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_zcard, NULL, "The number of members." },
    { "zcount", 4, R | CMD_FAST, 1, 1, 1, io_key, sh_zcount, NULL, "The number of members with scores in a range." },
    { "zrange", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members by rank, score (BYSCORE) or name (BYLEX); REV, LIMIT, WITHSCORES." },
    { "zrevrange", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members by rank, highest score first." },
    { "zrangebyscore", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members with scores in a range." },
    { "zrevrangebyscore", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members with scores in a range, highest first." },
    { "zrangebylex", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members in a name range (equal scores)." },
    { "zrevrangebylex", -4, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zrange, NULL, "Members in a name range, last first." },
    { "zrem", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_zrem, NULL, "Removes members." },
    { "zremrangebyscore", 4, W, 1, 1, 1, io_key, sh_zremrange, NULL, "Removes the members with scores in a range." },
    { "zremrangebyrank", 4, W, 1, 1, 1, io_key, sh_zremrange, NULL, "Removes the members in a rank range." },
    { "zpopmin", -2, W | CMD_FAST | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zpop, NULL, "Takes the members with the lowest scores." },
    { "zpopmax", -2, W | CMD_FAST | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zpop, NULL, "Takes the members with the highest scores." },
    { "zscan", -3, R | CMD_BIGREPLY, 1, 1, 1, io_key, sh_zscan, NULL, "Iterates over a sorted set's members with a cursor." },
    /* reliable jobs */
    { "job.push", -3, W, 1, 1, 1, io_job_push, sh_job_push, NULL, "Pushes a job with options (DELAY, AT, PRI, RETRIES, LEASE, UNIQUE, BATCH); replies with its id." },
    { "job.reserve", -3, W | CMD_BLOCKING | CMD_RESERVE, 0, 0, 0, io_job_reserve, shard_bpop, NULL, "Leases ready jobs from the first queue that has some, waiting up to TIMEOUT ms." },
    { "job.ack", -2, W | CMD_FAST, 0, 0, 0, io_job_ids, sh_job_ack, NULL, "Acknowledges deliveries by receipt: their jobs are done (JOB.ACK receipt RESULT value keeps a result)." },
    { "job.nack", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_nack, NULL, "Gives a delivery back as failed: retry after backoff (or DELAY), or dead." },
    { "job.touch", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_touch, NULL, "Extends the lease of a delivery." },
    { "job.get", 2, R | CMD_FAST | CMD_ONEPAYLOAD, 0, 0, 0, io_job_id, sh_job_get, NULL, "The whole record of a job." },
    { "job.del", -2, W, 0, 0, 0, io_job_ids, sh_job_del, NULL, "Deletes jobs in any state." },
    { "job.progress", 3, W | CMD_FAST, 0, 0, 0, io_job_progress, sh_job_progress, NULL, "Reports the progress of a reserved job (0-100 or a JSON object); publishes a progress event." },
    { "job.wait", -2, R | CMD_ONEPAYLOAD | CMD_DURABLE, 0, 0, 0, io_job_wait, sh_job_wait, NULL, "Waits until a job is done or dead and returns its record with its result; nil after TIMEOUT ms." },
    { "job.retry", 2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_retry, NULL, "Makes a dead or delayed job ready now." },
    /* batches */
    { "batch.new", -1, W, 0, 0, 0, io_batch_new, sh_batch_new, NULL, "Opens a batch with optional ON-SUCCESS, ON-COMPLETE and ON-DEATH callback jobs; replies with its id." },
    { "batch.close", 2, W, 0, 0, 0, io_batch_id, sh_batch_id, NULL, "No more jobs join the batch; its callbacks fire once all have finished." },
    { "batch.get", 2, R, 0, 0, 0, io_batch_id, sh_batch_id, NULL, "A batch's state, counts and callbacks." },
    /* schedules */
    { "sched.set", -5, W, 2, 2, 1, io_sched_set, sh_sched_set, NULL, "Creates or replaces a durable schedule that pushes a job into a queue at every tick (cron, @daily, @every 15m)." },
    { "sched.get", 2, R | CMD_ONEPAYLOAD, 0, 0, 0, io_sched_name, sh_sched_name, NULL, "A schedule: its spec, options, next run and history." },
    { "sched.del", 2, W, 0, 0, 0, io_sched_name, sh_sched_name, NULL, "Deletes a schedule; replies 1, or 0 when there was none." },
    { "sched.list", -1, R | CMD_BIGREPLY, 0, 0, 0, io_sched_list, sh_sched_list, NULL, "Every schedule, or those of one queue." },
    { "sched.pause", 2, W, 0, 0, 0, io_sched_name, sh_sched_name, NULL, "Stops a schedule's ticks (missed ticks are not run later)." },
    { "sched.resume", 2, W, 0, 0, 0, io_sched_name, sh_sched_name, NULL, "Resumes a paused schedule from its next tick after now." },
    /* queue administration */
    { "queue.list", 1, R | CMD_BIGREPLY, 0, 0, 0, io_queue_list, sh_queue_list, NULL, "The names of all queues." },
    { "queue.stats", 2, R, 1, 1, 1, io_key, sh_queue_stats, NULL, "Counts per state, totals, oldest ready age, paused." },
    { "queue.peek", -2, R | CMD_BIGREPLY, 1, 1, 1, io_queue_key, sh_queue_peek, NULL, "Jobs of one state, with cursor paging." },
    { "queue.pause", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Stops deliveries from a queue (pushes still go in)." },
    { "queue.resume", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Resumes deliveries from a paused queue." },
    { "queue.purge", -2, W, 1, 1, 1, io_queue_key, sh_queue_purge, NULL, "Deletes jobs of a queue (one state, or all but reserved)." },
    { "queue.retry", -2, W, 1, 1, 1, io_queue_key, sh_queue_retry, NULL, "Makes dead jobs ready again (ERROR pattern, RATE n/period, TO queue)." },
    { "queue.config", -3, W, 1, 1, 1, io_queue_key, sh_queue_config, NULL, "Reads or changes a queue's settings." },
    { "queue.workers", 2, R, 1, 1, 1, io_key, sh_queue_workers, NULL, "Who holds which jobs of a queue, and who waits on it." },
    { "queue.groups", 2, R, 1, 1, 1, io_key, sh_queue_groups, NULL, "The fair groups of a queue with their ready and reserved counts." },
    { "debug", -2, 0, 0, 0, 0, io_debug, sh_debug, NULL, "DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO] | SYNC-DELAY queue ms | SYNC-FAIL queue n | POWER-CUT [TORN] | DISK-FREE bytes|OFF | THREAD-LOAD k per-mille|OFF: fault injection for tests." },
    /* scripting */
    { "eval", -3, W, 0, 0, 0, io_eval, sh_eval, NULL, "Runs a Lua script atomically on the shard of its keys." },
    { "evalsha", -3, W, 0, 0, 0, io_eval, sh_eval, NULL, "Runs a cached Lua script by its SHA-1." },
    { "eval_ro", -3, R, 0, 0, 0, io_eval, sh_eval, NULL, "Runs a Lua script that may only read." },
    { "evalsha_ro", -3, R, 0, 0, 0, io_eval, sh_eval, NULL, "Runs a cached read-only Lua script by its SHA-1." },
    { "script", -2, 0, 0, 0, 0, io_script, sh_script_load, NULL, "SCRIPT LOAD script | EXISTS sha1 … | FLUSH | KILL." },
    /* pub/sub */
    { "subscribe", -2, CMD_PUBSUB, 0, 0, 0, io_subscribe, NULL, NULL, "Listens to channels." },
    { "unsubscribe", -1, CMD_PUBSUB, 0, 0, 0, io_unsubscribe, NULL, NULL, "Stops listening to channels." },
    { "psubscribe", -2, CMD_PUBSUB, 0, 0, 0, io_psubscribe, NULL, NULL, "Listens to channels matching patterns." },
    { "punsubscribe", -1, CMD_PUBSUB, 0, 0, 0, io_punsubscribe, NULL, NULL, "Stops listening to patterns." },
    { "publish", 3, 0, 0, 0, 0, io_publish, NULL, peer_publish, "Sends a message to a channel; replies with how many received it." },
    { "pubsub", -2, 0, 0, 0, 0, io_pubsub, NULL, peer_pubsub, "PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT." },
};

#define NCMDS (sizeof table / sizeof table[0])

static pthread_once_t sorted_once = PTHREAD_ONCE_INIT;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct command *)a)->name, ((const struct command *)b)->name);
}

static void sort_table(void)
{
    qsort(table, NCMDS, sizeof table[0], by_name);
}

const struct command *commands_find(const char *name, size_t len)
{
    pthread_once(&sorted_once, sort_table);
    char key[32];
    if (len == 0 || len >= sizeof key)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        key[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    key[len] = '\0';
    size_t lo = 0, hi = NCMDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(key, table[mid].name);
        if (c == 0)
            return &table[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t commands_count(void)
{
    return NCMDS;
}

const struct command *commands_at(size_t i)
{
    pthread_once(&sorted_once, sort_table);
    return i < NCMDS ? &table[i] : NULL;
}

/* --------------------------------------------------------- dispatch */

static void reply_unknown(struct conn *c, resp_cmd *cmd)
{
    char args[256];
    size_t n = 0;
    args[0] = '\0';
    for (int i = 1; i < cmd->argc && n < sizeof args - 140; i++)
        n += (size_t)snprintf(args + n, sizeof args - n, "'%.*s' ",
                              (int)(cmd->len[i] > 128 ? 128 : cmd->len[i]), cmd->argv[i]);
    conn_error_now(c, "ERR unknown command '%.*s', with args beginning with: %s",
              (int)(cmd->len[0] > 128 ? 128 : cmd->len[0]), cmd->argv[0], args);
}

/* Checks name, auth, subscribed mode and arity in one place (Redis's
 * processCommand), then runs the io() handler. A command whose reply
 * finds no room yet among the replies in flight is held by the
 * connection, which dispatches it again later (conn.c: output bounds). */
/* ------------------------------------------------------------------ ACL */

/* ACL CAT category: the commands of a category (from this table); every
 * other ACL subcommand is cmd_acl.c's. */
static void io_acl_entry(struct conn *c, struct msg *m)
{
    if (!(arg_is(m, 1, "CAT") && m->req.argc == 3)) {
        io_acl(c, m);
        return;
    }
    int bit = 0;
    for (int i = 0; acl_category_name(i); i++)
        if (arg_is(m, 2, acl_category_name(i)))
            bit = 1 << i;
    bool all = arg_is(m, 2, "all");
    if (!bit && !all) {
        conn_reply_error(c, m, "ERR Unknown category '%.32s' (see ACL CAT)", m->req.argv[2]);
        return;
    }
    resp_buf names;
    resp_buf_init(&names);
    size_t n = 0;
    for (size_t i = 0; i < commands_count(); i++) {
        const struct command *k = commands_at(i);
        if (all || (acl_categories(k->name, k->flags) & bit)) {
            resp_add_cstr(&names, k->name);
            n++;
        }
    }
    resp_add_array(&m->out, n);
    resp_buf_append(&m->out, names.data, names.len);
    resp_buf_free(&names);
    conn_reply(c, m);
}

/* A named ACL user may run this command on these keys and channels
 * (acl_check_command); false: the -NOPERM error is sent. */
static bool acl_permits(struct conn *c, const struct command *k, const resp_cmd *cmd)
{
    char err[600];
    if (acl_check_command(c->user, k, cmd->argc, cmd->argv, cmd->len, err, sizeof err) == 0)
        return true;
    conn_error_now(c, "%s", err);
    return false;
}

/* RESP2 subscribed mode and the arity; false: the error was sent. */
static bool form_ok(struct conn *c, const struct command *k, const resp_cmd *cmd)
{
    if (pubsub_restricted(c) && !(k->flags & CMD_PUBSUB)) {
        conn_error_now(c, "ERR Can't execute '%s': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", k->name);
        return false;
    }
    if ((k->arity > 0 && cmd->argc != k->arity) || (k->arity < 0 && cmd->argc < -k->arity)) {
        multi_flag_error(c);
        conn_error_now(c, "ERR wrong number of arguments for '%s' command", k->name);
        return false;
    }
    return true;
}

/* Replication (replica.h): a node that does not lead sends writes,
 * blocking commands and commands on keys to the leader (-MOVED), or asks
 * for a retry during an election (-CLUSTERDOWN); key-less reads (INFO,
 * DBSIZE, SCAN) answer here. */
static bool replica_admit(struct conn *c, const struct command *k, const resp_cmd *cmd)
{
    struct replica *r = c->io->srv->replica;
    if (!r || c->multi || replica_role(r) == REPLICA_LEADER)
        return true;
    bool keyed = k->first_key > 0 && cmd->argc > k->first_key;
    if (!keyed && !(k->flags & (CMD_WRITE | CMD_BLOCKING)))
        return true;
    char text[300];
    if (!keyed && c->io->srv->cluster) { /* no slot to name: MOVED would misplace slot 0 in a cluster client's map */
        char leader[64] = "?";
        replica_leader_addr(r, leader, sizeof leader);
        conn_error_now(c, "READONLY this node does not lead its replication group: send '%s' to the leader (%s)",
                       k->name, leader);
        return false;
    }
    replica_refusal(r, keyed ? slot_of(cmd->argv[k->first_key], cmd->len[k->first_key]) : 0, text, sizeof text);
    conn_error_now(c, "%s", text);
    return false;
}

void commands_dispatch(struct conn *c, resp_cmd *cmd)
{
    struct server *srv = c->io->srv;
    const struct command *k = commands_find(cmd->argv[0], cmd->len[0]);
    if (!conn_has_room(c, k, cmd)) {
        conn_hold(c, k, cmd); /* dispatched again once earlier replies make room */
        return;
    }
    atomic_fetch_add_explicit(&srv->total_commands, 1, memory_order_relaxed);
    c->last_ms = clock_mono_ms();
    if (!k) {
        multi_flag_error(c);
        if (protect_auth_required(&srv->cfg) && !c->authed)
            conn_error_now(c, "NOAUTH Authentication required.");
        else
            reply_unknown(c, cmd);
        resp_cmd_free(cmd);
        return;
    }
    snprintf(c->lastcmd, sizeof c->lastcmd, "%s", k->name);
    if (!c->authed && protect_auth_required(&srv->cfg) && !(k->flags & CMD_NOAUTH)) {
        conn_error_now(c, "NOAUTH Authentication required.");
        resp_cmd_free(cmd);
        return;
    }
    if (c->user[0] && !(k->flags & CMD_NOAUTH) && !acl_permits(c, k, cmd)) {
        resp_cmd_free(cmd);
        return;
    }
    if (!form_ok(c, k, cmd) || !cluster_admit(c, k, cmd) || !replica_admit(c, k, cmd)) {
        resp_cmd_free(cmd);
        return;
    }
    struct msg *m = msg_new(MSG_CMD);
    m->req = *cmd;
    memset(cmd, 0, sizeof *cmd);
    m->cmd = k;
    m->origin = c->io->id;
    m->conn = c;
    m->proto = c->proto;
    if (c->user[0])
        m->user = xstrdup(c->user); /* for the shard's checks (a receipt's queue, redis.call) */
    if (c->multi && !(k->flags & CMD_TXCTL)) {
        multi_queue(c, m); /* inside MULTI: checked and kept for EXEC */
        return;
    }
    conn_command_begin(c, k, m->req.argc);
    k->io(c, m);
    conn_command_end(c);
}

/* ---------------------------------------------------------- COMMAND */

static void add_flag_names(resp_buf *b, int proto, int flags, bool movable)
{
    const char *names[8];
    size_t n = 0;
    names[n++] = (flags & CMD_WRITE) ? "write" : (flags & CMD_READONLY) ? "readonly" : "fast";
    if (flags & CMD_BLOCKING)
        names[n++] = "blocking";
    if (flags & CMD_NOAUTH)
        names[n++] = "no_auth";
    if (movable)
        names[n++] = "movablekeys";
    resp_add_set(b, proto, n);
    for (size_t i = 0; i < n; i++)
        resp_add_simple(b, names[i]);
}

static void add_command_info(resp_buf *b, int proto, const struct command *k)
{
    int first, last, step;
    bool movable;
    cluster_key_spec(k, &first, &last, &step, &movable);
    resp_add_array(b, 10);
    resp_add_cstr(b, k->name);
    resp_add_int(b, k->arity);
    add_flag_names(b, proto, k->flags, movable);
    resp_add_int(b, first);
    resp_add_int(b, last);
    resp_add_int(b, step);
    resp_add_set(b, proto, 0);
    resp_add_set(b, proto, 0);
    resp_add_array(b, 0);
    resp_add_array(b, 0);
}

static void add_command_doc(resp_buf *b, int proto, const struct command *k)
{
    resp_add_cstr(b, k->name);
    resp_add_map(b, proto, 3);
    const char *group = (k->flags & (CMD_WRITE | CMD_READONLY | CMD_BLOCKING)) ? "list" : "connection";
    const char *kv[] = { "summary", k->summary ? k->summary : "", "since", "0.1.0", "group", group };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        resp_add_cstr(b, kv[i]);
}

/* COMMAND GETKEYS command [arg …]: the keys a cluster client routes by
 * (job ids and receipts included, cmd_cluster.c). */
static void command_getkeys(struct conn *c, struct msg *m)
{
    const struct command *k = commands_find(m->req.argv[2], m->req.len[2]);
    resp_cmd sub = { .argc = m->req.argc - 2, .argv = m->req.argv + 2, .len = m->req.len + 2 };
    int idx[CLUSTER_MAX_KEYS], n;
    if (!k) {
        conn_reply_error(c, m, "ERR Invalid command specified");
        return;
    }
    if ((k->arity > 0 && sub.argc != k->arity) || (k->arity < 0 && sub.argc < -k->arity)) {
        conn_reply_error(c, m, "ERR Invalid number of arguments specified for command");
        return;
    }
    cluster_command_keys(k, &sub, idx, &n);
    if (n == 0) {
        conn_reply_error(c, m, "ERR The command has no key arguments");
        return;
    }
    resp_add_array(&m->out, (size_t)n);
    for (int i = 0; i < n; i++)
        resp_add_bulk(&m->out, sub.argv[idx[i]], sub.len[idx[i]]);
    conn_reply(c, m);
}

/* COMMAND [COUNT | INFO [name …] | DOCS [name …] | GETKEYS command [arg …]] */
void io_command(struct conn *c, struct msg *m)
{
    size_t n = commands_count();
    if (arg_is(m, 1, "GETKEYS")) {
        if (m->req.argc < 4) /* as Redis: COMMAND GETKEYS name arg… */
            conn_reply_error(c, m, "ERR wrong number of arguments for 'command|getkeys' command");
        else
            command_getkeys(c, m);
        return;
    }
    if (m->req.argc == 1) {
        resp_add_array(&m->out, n);
        for (size_t i = 0; i < n; i++)
            add_command_info(&m->out, c->proto, commands_at(i));
    } else if (arg_is(m, 1, "COUNT") && m->req.argc == 2) {
        resp_add_int(&m->out, (long long)n);
    } else if (arg_is(m, 1, "INFO") || arg_is(m, 1, "DOCS")) {
        bool docs = arg_is(m, 1, "DOCS");
        size_t want = m->req.argc > 2 ? (size_t)(m->req.argc - 2) : n;
        if (docs) {
            size_t found = 0;
            for (size_t i = 0; i < want; i++)
                found += (m->req.argc > 2 ? commands_find(m->req.argv[i + 2], m->req.len[i + 2]) : commands_at(i)) != NULL;
            resp_add_map(&m->out, c->proto, found);
        } else {
            resp_add_array(&m->out, want);
        }
        for (size_t i = 0; i < want; i++) {
            const struct command *k = m->req.argc > 2 ? commands_find(m->req.argv[i + 2], m->req.len[i + 2])
                                                      : commands_at(i);
            if (docs && k)
                add_command_doc(&m->out, c->proto, k);
            else if (!docs && k)
                add_command_info(&m->out, c->proto, k);
            else if (!docs)
                resp_add_null(&m->out, c->proto);
        }
    } else {
        conn_reply_error(c, m, "ERR unknown subcommand '%.64s'. Try COMMAND HELP.", m->req.argv[1]);
        return;
    }
    conn_reply(c, m);
}
