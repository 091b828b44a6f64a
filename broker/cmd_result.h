/*
 * cmd_result.h - job results, progress and JOB.WAIT (see cmd_result.c).
 */
#ifndef SPOOL_CMD_RESULT_H
#define SPOOL_CMD_RESULT_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct job;
struct msg;
struct shard;
struct shard_ext;

/* Registered with shard_ext_register() at start-up. */
extern const struct shard_ext result_ext;

void io_job_wait(struct conn *c, struct msg *m);
void sh_job_wait(struct shard *s, struct msg *m);
void io_job_progress(struct conn *c, struct msg *m);
void sh_job_progress(struct shard *s, struct msg *m);
/* JOB.ACK receipt RESULT value: checks the shape and the size on the I/O
 * thread (true: routed or answered). */
bool io_ack_result(struct conn *c, struct msg *m);
/* Shard side: stores the value on j before it is acked. */
void result_store(struct shard *s, struct msg *m, struct job *j);
/* After the ack: the result of a finished job lives only in the journal. */
void result_settle(struct shard *s, uint64_t id);
/* encode_job() with the result read from the journal when it is there
 * (JOB.GET, QUEUE.PEEK, JOB.WAIT). */
void result_encode_job(struct shard *s, struct msg *m, struct job *j);

#endif
