/*
 * cmd_queue.h - queue administration: QUEUE.LIST, QUEUE.STATS, QUEUE.PEEK,
 * QUEUE.PAUSE, QUEUE.RESUME, QUEUE.PURGE, QUEUE.RETRY, QUEUE.CONFIG.
 */
#ifndef SPOOL_CMD_QUEUE_H
#define SPOOL_CMD_QUEUE_H

struct conn;
struct shard;
struct msg;

void io_queue_list(struct conn *c, struct msg *m);
void io_queue_key(struct conn *c, struct msg *m);   /* checks syntax, routes by queue */

void sh_queue_list(struct shard *s, struct msg *m);
void sh_queue_stats(struct shard *s, struct msg *m);
void sh_queue_peek(struct shard *s, struct msg *m);
void sh_queue_pause(struct shard *s, struct msg *m);   /* PAUSE and RESUME */
void sh_queue_purge(struct shard *s, struct msg *m);
void sh_queue_retry(struct shard *s, struct msg *m);
void sh_queue_config(struct shard *s, struct msg *m);

void io_debug(struct conn *c, struct msg *m);

/* For the HTTP admin: one record per queue of this shard,
 * "<namelen>:<name> v0 v1 ... v13\n", values in enum qstat order. */
enum qstat {
    QSTAT_READY, QSTAT_RESERVED, QSTAT_DELAYED, QSTAT_DONE, QSTAT_DEAD, QSTAT_EXPIRED, QSTAT_PUSHED,
    QSTAT_ACKED, QSTAT_RETRIED, QSTAT_LEASE_EXPIRED, QSTAT_BURIED, QSTAT_POPPED, QSTAT_EXPIRED_TOTAL,
    QSTAT_PAUSED, QSTAT_WAITERS, QSTAT_OLDEST, QSTAT_THROTTLED, QSTAT_GROUPS, QSTAT_RATE_LIMIT,
    QSTAT_RATE_PERIOD_MS, QSTAT_CONCURRENCY_LIMIT, QSTAT_COUNT
};
/* The field names of the values above, for the HTTP admin's JSON. */
extern const char *const qstat_names[QSTAT_COUNT];
void sh_admin_stats(struct shard *s, struct msg *m);
void sh_debug(struct shard *s, struct msg *m);

#endif
