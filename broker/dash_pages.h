/*
 * dash_pages.h - the dashboard's Workers and Schedules data.
 *
 *   GET /api/workers     every queue with reserved jobs or waiting
 *                        workers (at most DPAGES_QUEUES_MAX, the busiest
 *                        by reserved jobs first), each with QUEUE.WORKERS:
 *                        who holds which job and its lease, who waits
 *   GET /api/schedules   SCHED.LIST of every shard, sorted by name, and
 *                        what the user may do with them
 *
 * Reads go through admin_rpc like the rest of the dashboard. Main thread
 * only.
 */
#ifndef SPOOL_DASH_PAGES_H
#define SPOOL_DASH_PAGES_H

#define DPAGES_QUEUES_MAX 100

struct server;
struct evhttp_request;
struct dash_who;

void dpages_workers(struct server *srv, struct evhttp_request *req);
void dpages_schedules(struct server *srv, struct evhttp_request *req, const struct dash_who *who);

#endif
