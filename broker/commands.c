/*
 * commands.c - the command table and its lookup (see commands.h).
 *
 * The table is sorted by name at start-up so lookups are a binary search.
 */
#include "commands.h"

#include "cmd_hash.h"
#include "cmd_job.h"
#include "cmd_keys.h"
#include "cmd_list.h"
#include "cmd_multi.h"
#include "cmd_queue.h"
#include "cmd_server.h"
#include "cmd_string.h"
#include "cmd_zset.h"
#include "pubsub.h"
#include "shard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define W CMD_WRITE
#define R CMD_READONLY

static struct command table[] = {
    /* connection and server (I/O thread) */
    { "ping", -1, CMD_FAST | CMD_PUBSUB, 0, 0, 0, io_ping, NULL, NULL, "Answers PONG, or echoes its argument." },
    { "echo", 2, CMD_FAST, 0, 0, 0, io_echo, NULL, NULL, "Returns its argument." },
    { "hello", -1, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_hello, NULL, NULL, "Chooses RESP2 or RESP3, optionally authenticates and names the connection." },
    { "auth", -2, CMD_NOAUTH | CMD_FAST, 0, 0, 0, io_auth, NULL, NULL, "Authenticates the connection with the requirepass password." },
    { "select", 2, CMD_FAST, 0, 0, 0, io_select, NULL, NULL, "Selects database 0 (the only one)." },
    { "quit", -1, CMD_NOAUTH | CMD_FAST | CMD_PUBSUB | CMD_TXCTL, 0, 0, 0, io_quit, NULL, NULL, "Closes the connection after replying OK." },
    { "client", -2, CMD_FAST, 0, 0, 0, io_client, NULL, peer_client_list, "CLIENT ID|SETNAME|GETNAME|LIST|INFO|SETINFO." },
    { "info", -1, 0, 0, 0, 0, io_info, sh_info_keys, NULL, "Server, client, memory and queue information in Redis INFO format." },
    { "command", -1, 0, 0, 0, 0, io_command, NULL, NULL, "Describes the commands (COMMAND, COMMAND COUNT|INFO|DOCS)." },
    { "config", -2, 0, 0, 0, 0, io_config, NULL, NULL, "CONFIG GET pattern: the running settings." },
    { "time", 1, CMD_FAST, 0, 0, 0, io_time, NULL, NULL, "The server time: seconds and microseconds." },
    /* lists */
    { "lpush", -3, W | CMD_LEFT, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the head of a queue; replies with its length." },
    { "rpush", -3, W, 1, 1, 1, io_push, sh_push, NULL, "Pushes jobs at the tail of a queue; replies with its length." },
    { "lpop", -2, W | CMD_LEFT, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the head of a queue (at-most-once)." },
    { "rpop", -2, W, 1, 1, 1, io_pop, sh_pop, NULL, "Takes jobs from the tail of a queue (at-most-once)." },
    { "blpop", -3, W | CMD_LEFT | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the head of the first non-empty queue, waiting up to timeout seconds." },
    { "brpop", -3, W | CMD_BLOCKING, 1, -2, 1, io_bpop, shard_bpop, NULL, "Takes a job from the tail of the first non-empty queue, waiting up to timeout seconds." },
    { "llen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_llen, NULL, "The number of ready jobs in a queue." },
    { "lrange", 4, R, 1, 1, 1, io_lrange, sh_lrange, NULL, "Peeks at ready jobs by index, without taking them." },
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
    { "keys", 2, R, 0, 0, 0, io_keys, sh_keys, NULL, "The keys matching a glob pattern." },
    { "scan", -2, R, 0, 0, 0, io_scan, sh_scan, NULL, "Iterates over the keys with a cursor (MATCH, COUNT, TYPE)." },
    { "randomkey", 1, R, 0, 0, 0, io_randomkey, sh_randomkey, NULL, "A random key." },
    { "flushdb", -1, W, 0, 0, 0, io_flushdb, sh_flushdb, NULL, "Deletes every string, hash and sorted set (queues stay)." },
    { "flushall", -1, W, 0, 0, 0, io_flushdb, sh_flushdb, NULL, "FLUSHDB (spool has one database)." },
    /* transactions */
    { "multi", 1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_multi, NULL, NULL, "Starts a transaction." },
    { "exec", 1, CMD_TXCTL, 0, 0, 0, io_exec, sh_exec, NULL, "Runs the queued commands atomically on their shard." },
    { "discard", 1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_discard, NULL, NULL, "Drops the queued commands." },
    { "watch", -2, CMD_TXCTL | CMD_FAST, 1, -1, 1, io_watch, sh_watch, NULL, "EXEC runs only if these keys did not change." },
    { "unwatch", -1, CMD_TXCTL | CMD_FAST, 0, 0, 0, io_unwatch, sh_unwatch, NULL, "Forgets the watched keys." },
    /* strings */
    { "get", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_get, NULL, "The value of a string key." },
    { "set", -3, W, 1, 1, 1, io_key, sh_set, NULL, "Sets a string (EX PX EXAT PXAT KEEPTTL NX XX GET)." },
    { "setnx", 3, W | CMD_FAST, 1, 1, 1, io_key, sh_setnx, NULL, "Sets a string if the key does not exist." },
    { "setex", 4, W, 1, 1, 1, io_key, sh_setex, NULL, "Sets a string with a time to live in seconds." },
    { "psetex", 4, W, 1, 1, 1, io_key, sh_setex, NULL, "Sets a string with a time to live in milliseconds." },
    { "getdel", 2, W | CMD_FAST, 1, 1, 1, io_key, sh_getdel, NULL, "Returns a string and deletes its key." },
    { "getex", -2, W | CMD_FAST, 1, 1, 1, io_key, sh_getex, NULL, "Returns a string and changes its expiry." },
    { "mget", -2, R | CMD_FAST, 1, -1, 1, io_mget, sh_mget, NULL, "The values of several string keys." },
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
    { "hmget", -3, R | CMD_FAST, 1, 1, 1, io_key, sh_hmget, NULL, "The values of hash fields." },
    { "hgetall", 2, R, 1, 1, 1, io_key, sh_hgetall, NULL, "Every field and value of a hash." },
    { "hkeys", 2, R, 1, 1, 1, io_key, sh_hgetall, NULL, "The fields of a hash." },
    { "hvals", 2, R, 1, 1, 1, io_key, sh_hgetall, NULL, "The values of a hash." },
    { "hdel", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_hdel, NULL, "Deletes hash fields; replies with how many existed." },
    { "hexists", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_hexists, NULL, "Whether a hash field exists." },
    { "hlen", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_hlen, NULL, "The number of fields of a hash." },
    { "hstrlen", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_hstrlen, NULL, "The length of a hash field's value." },
    { "hincrby", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_hincrby, NULL, "Adds to an integer hash field." },
    { "hincrbyfloat", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_hincrbyfloat, NULL, "Adds a float to a hash field." },
    { "hscan", -3, R, 1, 1, 1, io_key, sh_hscan, NULL, "Iterates over a hash's fields with a cursor." },
    /* sorted sets */
    { "zadd", -4, W | CMD_FAST, 1, 1, 1, io_key, sh_zadd, NULL, "Adds members with scores (NX XX GT LT CH INCR)." },
    { "zincrby", 4, W | CMD_FAST, 1, 1, 1, io_key, sh_zincrby, NULL, "Adds to a member's score." },
    { "zscore", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zscore, NULL, "A member's score." },
    { "zmscore", -3, R | CMD_FAST, 1, 1, 1, io_key, sh_zmscore, NULL, "The scores of members." },
    { "zrank", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zrank, NULL, "A member's rank, lowest score first." },
    { "zrevrank", 3, R | CMD_FAST, 1, 1, 1, io_key, sh_zrank, NULL, "A member's rank, highest score first." },
    { "zcard", 2, R | CMD_FAST, 1, 1, 1, io_key, sh_zcard, NULL, "The number of members." },
    { "zcount", 4, R | CMD_FAST, 1, 1, 1, io_key, sh_zcount, NULL, "The number of members with scores in a range." },
    { "zrange", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members by rank, score (BYSCORE) or name (BYLEX); REV, LIMIT, WITHSCORES." },
    { "zrevrange", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members by rank, highest score first." },
    { "zrangebyscore", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members with scores in a range." },
    { "zrevrangebyscore", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members with scores in a range, highest first." },
    { "zrangebylex", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members in a name range (equal scores)." },
    { "zrevrangebylex", -4, R, 1, 1, 1, io_key, sh_zrange, NULL, "Members in a name range, last first." },
    { "zrem", -3, W | CMD_FAST, 1, 1, 1, io_key, sh_zrem, NULL, "Removes members." },
    { "zremrangebyscore", 4, W, 1, 1, 1, io_key, sh_zremrange, NULL, "Removes the members with scores in a range." },
    { "zremrangebyrank", 4, W, 1, 1, 1, io_key, sh_zremrange, NULL, "Removes the members in a rank range." },
    { "zpopmin", -2, W | CMD_FAST, 1, 1, 1, io_key, sh_zpop, NULL, "Takes the members with the lowest scores." },
    { "zpopmax", -2, W | CMD_FAST, 1, 1, 1, io_key, sh_zpop, NULL, "Takes the members with the highest scores." },
    { "zscan", -3, R, 1, 1, 1, io_key, sh_zscan, NULL, "Iterates over a sorted set's members with a cursor." },
    /* reliable jobs */
    { "job.push", -3, W, 1, 1, 1, io_job_push, sh_job_push, NULL, "Pushes a job with options (DELAY, AT, PRI, RETRIES, LEASE, UNIQUE); replies with its id." },
    { "job.reserve", -3, W | CMD_BLOCKING | CMD_RESERVE, 0, 0, 0, io_job_reserve, shard_bpop, NULL, "Leases ready jobs from the first queue that has some, waiting up to TIMEOUT ms." },
    { "job.ack", -2, W | CMD_FAST, 0, 0, 0, io_job_ids, sh_job_ack, NULL, "Acknowledges deliveries by receipt: their jobs are done." },
    { "job.nack", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_nack, NULL, "Gives a delivery back as failed: retry after backoff (or DELAY), or dead." },
    { "job.touch", -2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_touch, NULL, "Extends the lease of a delivery." },
    { "job.get", 2, R | CMD_FAST, 0, 0, 0, io_job_id, sh_job_get, NULL, "The whole record of a job." },
    { "job.del", -2, W, 0, 0, 0, io_job_ids, sh_job_del, NULL, "Deletes jobs in any state." },
    { "job.retry", 2, W | CMD_FAST, 0, 0, 0, io_job_id, sh_job_retry, NULL, "Makes a dead or delayed job ready now." },
    /* queue administration */
    { "queue.list", 1, R, 0, 0, 0, io_queue_list, sh_queue_list, NULL, "The names of all queues." },
    { "queue.stats", 2, R, 1, 1, 1, io_key, sh_queue_stats, NULL, "Counts per state, totals, oldest ready age, paused." },
    { "queue.peek", -2, R, 1, 1, 1, io_queue_key, sh_queue_peek, NULL, "Jobs of one state, with cursor paging." },
    { "queue.pause", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Stops deliveries from a queue (pushes still go in)." },
    { "queue.resume", 2, W, 1, 1, 1, io_key, sh_queue_pause, NULL, "Resumes deliveries from a paused queue." },
    { "queue.purge", -2, W, 1, 1, 1, io_queue_key, sh_queue_purge, NULL, "Deletes jobs of a queue (one state, or all but reserved)." },
    { "queue.retry", 2, W, 1, 1, 1, io_key, sh_queue_retry, NULL, "Makes every dead job of a queue ready." },
    { "queue.config", -3, W, 1, 1, 1, io_queue_key, sh_queue_config, NULL, "Reads or changes a queue's settings." },
    { "debug", -2, 0, 0, 0, 0, io_debug, sh_debug, NULL, "DEBUG JOURNAL-FAIL queue n [ENOSPC|EIO]: fault injection for tests." },
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
