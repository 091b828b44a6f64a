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
/* A named ACL user's command (m->user) may act on a job only when the
 * user's key patterns allow the job's queue: a receipt or id does not
 * carry its queue, so this is checked here, on the job's shard, before
 * anything changes. job_acl_refused writes the -NOPERM error naming the
 * queue into m->out and returns true when refused (job_resolve calls it
 * for every command that finds its job there); jobs_acl_refused does so
 * for the first refused job of argv[first..last) that lives on this shard,
 * so that a command naming several jobs changes none of them. */
bool job_acl_refused(struct msg *m, const struct job *j);
bool jobs_acl_refused(struct shard *s, struct msg *m, int first, int last);

#endif
