/*
 * cmd_job.h - the reliable-job commands JOB.PUSH, JOB.RESERVE, JOB.ACK,
 * JOB.NACK, JOB.TOUCH, JOB.GET, JOB.DEL, JOB.RETRY: their I/O side (syntax,
 * routing by queue or by the shard an id names) and their shard side.
 */
#ifndef SPOOL_CMD_JOB_H
#define SPOOL_CMD_JOB_H

#include <stdbool.h>

struct conn;
struct shard;
struct msg;
struct job;

void io_job_push(struct conn *c, struct msg *m);
void io_job_reserve(struct conn *c, struct msg *m);
void io_job_ids(struct conn *c, struct msg *m);    /* ACK, DEL: one or many ids */
void io_job_id(struct conn *c, struct msg *m);     /* NACK, TOUCH, GET, RETRY: one id + options */

void sh_job_push(struct shard *s, struct msg *m);
void sh_job_ack(struct shard *s, struct msg *m);
void sh_job_nack(struct shard *s, struct msg *m);
void sh_job_touch(struct shard *s, struct msg *m);
void sh_job_get(struct shard *s, struct msg *m);
void sh_job_del(struct shard *s, struct msg *m);
void sh_job_retry(struct shard *s, struct msg *m);

#endif
