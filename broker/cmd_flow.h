/*
 * cmd_flow.h - the flow-control views of a queue: QUEUE.GROUPS (its fair
 * groups with their counts) and QUEUE.WORKERS (who holds which job). The
 * limits themselves are QUEUE.CONFIG settings (cmd_queue.c), enforced by
 * the shard through flow.h.
 */
#ifndef SPOOL_CMD_FLOW_H
#define SPOOL_CMD_FLOW_H

struct shard;
struct msg;

void sh_queue_groups(struct shard *s, struct msg *m);
void sh_queue_workers(struct shard *s, struct msg *m);
/* The HTTP admin's job record as JSON (m->num: the job id). */
void sh_admin_job(struct shard *s, struct msg *m);


#endif
