/*
 * jobrec.h - the job record (JOB.GET, JOB.WAIT, QUEUE.PEEK) and the lookup
 * of a job id or receipt on its shard.
 */
#ifndef SPOOL_JOBREC_H
#define SPOOL_JOBREC_H

#include <stdbool.h>

struct shard;
struct msg;
struct job;

/* The whole record as a map (flat array in RESP2): JOB.GET, QUEUE.PEEK. */
void encode_job(struct msg *m, const struct job *j);
/* Finds the job of argv[i] on this shard; with a receipt, checks that it
 * names the current delivery (and, with need_reserved, that the job is
 * reserved). On failure writes the error into m->out (when report) and
 * returns NULL. */
struct job *job_resolve(struct shard *s, struct msg *m, int i, bool need_reserved, bool report);

#endif
