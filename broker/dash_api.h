/*
 * dash_api.h - the dashboard's JSON API over queue and job data, and its
 * actions. Everything a shard owns is read or changed through admin_rpc
 * (a command message to the owning shard, see admin_rpc.h): this file
 * checks every argument the way the command's I/O handler would, builds
 * the argv, and renders the reply as JSON.
 *
 *   GET  /api/overview                 every queue: counts, totals, rates
 *   GET  /api/queue?queue=Q            QUEUE.STATS + QUEUE.CONFIG GET
 *   GET  /api/jobs?queue=Q&state=S&count=N&after=ID&error=TEXT
 *                                      a page of QUEUE.PEEK; with error=,
 *                                      only jobs whose last_error has TEXT
 *   GET  /api/job?id=ID                JOB.GET
 *   GET  /api/dead-groups?queue=Q      dead jobs counted by error
 *   POST /api/actions/<name>           see the table in dash_api.c (jobs,
 *                                      queues, and schedules by name)
 *
 * Scans (error filter, groups) walk QUEUE.PEEK pages of DAPI_PAGE jobs and
 * stop after DAPI_SCAN_MAX jobs, saying so in the reply. Main thread only.
 */
#ifndef SPOOL_DASH_API_H
#define SPOOL_DASH_API_H

#include <stdbool.h>

#define DAPI_PAGE 200
#define DAPI_SCAN_MAX 5000
#define DAPI_PREVIEW 160     /* payload bytes shown in job lists */

#include "cmd_queue.h"
#include "resp.h"

#include <stddef.h>

struct server;
struct rates;
struct command;
struct evhttp_request;
struct evkeyvalq;

/* Who asked: logged with every action. */
struct dash_who {
    char user[64];
    char peer[64];
};

/* A named ACL user (who->user other than "default") may run command on
 * key (NULL: no key); false: 403 answered, naming the missing permission
 * (the command with the rules that would allow it, or the queue), and
 * the refusal logged. */
bool dapi_permits(struct evhttp_request *req, const struct dash_who *who, const char *command, const char *key,
                  size_t klen);

/* Which actions act on what (DAPI_ANY: all of them). */
enum dapi_target { DAPI_JOB, DAPI_QUEUE, DAPI_SCHED, DAPI_ANY };
/* {"<action>": true|false, ...}: what who may do, for the actions of
 * target, on key (NULL: the commands alone). The pages hide the buttons
 * of the false ones; the POST checks again. */
void dapi_can_json(resp_buf *b, const struct dash_who *who, enum dapi_target target, const char *key, size_t klen);

void dapi_overview(struct server *srv, struct evhttp_request *req, const struct rates *r);
void dapi_queue(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q, const struct dash_who *who);
void dapi_jobs(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q);
void dapi_job(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q, const struct dash_who *who);
void dapi_dead_groups(struct server *srv, struct evhttp_request *req, const struct evkeyvalq *q);
/* name: the path tail after /api/actions/; form: the decoded POST body. */
/* The command that asks a shard for every queue's figures (http.c's
 * admin-stats), and its records of all shards as rows sorted by name
 * (malloc'd; names point into parts). */
extern const struct command dapi_stats_cmd;
struct dapi_row {
    const char *name;
    size_t len;
    long long v[QSTAT_COUNT];
};
struct dapi_row *dapi_rows(const resp_buf *parts, int nparts, size_t *n);
/* The JSON of GET /api/overview from those rows (also the live events'). */
void dapi_overview_json(struct server *srv, resp_buf *b, const struct dapi_row *r, size_t n, const struct rates *rates);

/* True when name is a queue setting (QUEUE.CONFIG) of this spoold. */
bool dapi_is_setting(const char *name);
void dapi_action(struct server *srv, struct evhttp_request *req, const char *name, const struct evkeyvalq *form,
                 const struct dash_who *who);

#endif
