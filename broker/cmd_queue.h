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
void sh_debug(struct shard *s, struct msg *m);

#endif
