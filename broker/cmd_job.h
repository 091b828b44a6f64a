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

/* The whole record as a map (flat array in RESP2): JOB.GET, QUEUE.PEEK. */
void encode_job(struct msg *m, const struct job *j);
/* Finds the job of argv[i] on this shard; with a receipt, checks that it
 * names the current delivery (and, with need_reserved, that the job is
 * reserved). On failure writes the error into m->out (when report) and
 * returns NULL. */
struct job *job_resolve(struct shard *s, struct msg *m, int i, bool need_reserved, bool report);
#endif
