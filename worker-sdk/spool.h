/*
 * spool.h - libspool, the C client of the spool job broker: producers,
 * consumers, admin calls, and a worker runtime.
 *
 * Layers, bottom up:
 *   spool_client   one TCP connection to spoold (RESP3 when offered, else
 *                  RESP2), with connect and I/O timeouts. Producer calls
 *                  (spool_push*), consumer calls (spool_reserve, spool_ack,
 *                  spool_nack, spool_touch) and admin calls (spool_queue_*,
 *                  spool_job_get, ...) each do one round trip on it.
 *   spool_job      one job as delivered by JOB.RESERVE or described by
 *                  JOB.GET / QUEUE.PEEK. Owns its strings and payload.
 *   spool_worker   N threads, each with its own client, reserving from a
 *                  list of queues and calling your handler; a lease keeper
 *                  thread TOUCHes long-running jobs; reconnects with backoff;
 *                  stops gracefully on SIGTERM/SIGINT.
 *
 * Threads: a spool_client is NOT thread-safe. Use one client per thread
 * (clients are cheap: one socket and a few buffers). Different clients may
 * be used from different threads at the same time. A spool_job may be
 * moved between threads but not used from two at once. spool_worker_stop()
 * may be called from any thread and from a signal handler.
 *
 * Errors: every call returns 0 (or a count) on success and a negative
 * SPOOL_E* code on failure. spool_errmsg(client) then says what went
 * wrong; for errors the server sent it is the server's text, verbatim
 * (e.g. "STALE receipt 0194f2a3b4c5d007-1-9c41e07a is for delivery 1, ...").
 *
 * Ownership: strings passed in are copied or used only during the call.
 * Objects handed out (spool_job, arrays of them, string vectors) belong to
 * the caller and are freed with the matching spool_*_free function.
 *
 * Connections: a client connects in spool_connect(). When its connection
 * breaks (I/O error, timeout, the broker went away) the call returns
 * SPOOL_ECONN / SPOOL_EIO / SPOOL_ETIMEOUT and the connection is closed;
 * the next call reconnects once. Pushes are the exception: each push
 * carries an idempotency key (UNIQUE, a random 128-bit key made once per
 * push, or the caller's own unique key), and a push whose outcome is unknown
 * (the connection broke with it in flight, -CLUSTERDOWN, -TRYAGAIN) is sent
 * again with the same key for up to push_retry_ms (docs/sdk.md, "Pushes
 * whose outcome is unknown"). The worker runtime retries with exponential
 * backoff and jitter.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPOOL_VERSION "0.1.0"
#define SPOOL_DEFAULT_URL "spool://127.0.0.1:7379"
#define SPOOL_ID_MAX 64 /* longest id or receipt, NUL included */

/* ------------------------------------------------------------------ codes */

enum spool_error {
    SPOOL_OK = 0,
    SPOOL_EINVAL = -1,   /* bad argument (NULL queue, malformed URL, ...) */
    SPOOL_ENOMEM = -2,
    SPOOL_ECONN = -3,    /* cannot connect, or the broker closed the connection */
    SPOOL_EIO = -4,      /* socket error */
    SPOOL_ETIMEOUT = -5, /* no reply within the I/O timeout (connection closed) */
    SPOOL_EPROTO = -6,   /* the reply was not what the protocol promises */
    SPOOL_ESERVER = -7,  /* any other error reply (ERR, WRONGTYPE, ...) */
    SPOOL_ENOJOB = -8,   /* -NOJOB: no such job (any more) */
    SPOOL_ESTALE = -9,   /* -STALE: the receipt is for an earlier delivery */
    SPOOL_EFULL = -10,   /* -FULL: the queue has maxlen unfinished jobs */
    SPOOL_EBADJSON = -11,/* -BADJSON: the payload is not valid JSON */
    SPOOL_ETOOBIG = -12, /* -TOOBIG: the payload is over max-payload */
    SPOOL_EAUTH = -13,   /* -NOAUTH, -WRONGPASS, -NOPERM */
    SPOOL_ESTOPPED = -14 /* the worker is stopping (worker runtime only) */
};

/* A short constant description of a code ("stale receipt", ...). */
const char *spool_strerror(int code);

/* ----------------------------------------------------------------- client */

typedef struct spool_client spool_client;

typedef struct spool_options {
    const char *url;        /* NULL: $SPOOL_URL, else SPOOL_DEFAULT_URL */
    int connect_timeout_ms; /* 0: 5000 */
    int io_timeout_ms;      /* longest wait for a reply (beyond a blocking
                               reserve's own timeout); 0: 10000; <0: none */
    int protocol;           /* 0: RESP3 if offered, else RESP2; 2 or 3 to force */
    const char *name;       /* client name (HELLO SETNAME), NULL: none */
    int push_retry_ms;      /* how long a push whose outcome is unknown is
                               sent again with its idempotency key, trying
                               the other nodes it knows: 0: 10000; <0: never,
                               and no automatic key (one attempt, as other
                               calls) */
} spool_options;

/*
 * URL: spool://[user:password@]host[:port] ("redis://" is accepted too;
 * port 7379 when absent; IPv6 hosts in brackets; user and password may be
 * percent-encoded; a password without a user authenticates as "default").
 * spool_connect() parses the URL, connects, and sends HELLO 3 (with AUTH
 * when the URL has a password), falling back to RESP2 (and AUTH) when the
 * server refuses HELLO 3. On failure *out is still set when the failure
 * came after the URL was parsed, so spool_errmsg(*out) can say why; free
 * it with spool_close(). opt may be NULL.
 */
int spool_connect(spool_client **out, const spool_options *opt);
/* Shorthand: spool_connect() with only the URL set (NULL: default). */
int spool_connect_url(spool_client **out, const char *url);
void spool_close(spool_client *c); /* NULL is fine */

/* The message of the last failed call on c ("" when none). Valid until the
 * next call on c. */
const char *spool_errmsg(const spool_client *c);
/* The code of the last failed call (0 when the last call succeeded). */
int spool_last_error(const spool_client *c);
/* Protocol in use on the current connection: 2 or 3 (0 when not connected). */
int spool_protocol(const spool_client *c);
bool spool_connected(const spool_client *c);
/* Closes the connection (if any) and connects again now. */
int spool_reconnect(spool_client *c);
/* "host:port" this client talks to. */
const char *spool_endpoint(const spool_client *c);
/* PING round trip. */
int spool_ping(spool_client *c);

/* --------------------------------------------------------------- producer */

typedef struct spool_push_opts {
    int64_t delay_ms;  /* > 0: start delayed for this long (DELAY) */
    int64_t at_ms;     /* > 0: start delayed until this Unix time in ms (AT) */
    int priority;      /* -1000..1000, higher first; 0 = default (PRI) */
    int retries;       /* 0: the queue's default; n > 0: n retries;
                          SPOOL_NO_RETRIES: one attempt only (RETRIES) */
    int64_t lease_ms;  /* > 0: lease per delivery (LEASE) */
    const char *unique;/* non-NULL: UNIQUE key */
    int64_t expires_ms;/* > 0: not delivered later than this after the push (EXPIRES):
                          the job goes to state expired instead */
    const char *group; /* non-NULL: GROUP key (fair groups, group limits) */
    const char *batch; /* non-NULL: add the job to this open batch (BATCH) */
} spool_push_opts;

#define SPOOL_NO_RETRIES (-1)

/* JOB.PUSH. payload is len bytes (need not be NUL-terminated); opts may be
 * NULL. id (may be NULL) receives the job id. Without opts->unique the push
 * carries UNIQUE <32 random hex digits> (unless push_retry_ms < 0), so a
 * resend after an unknown outcome finds the first job while it is
 * unfinished instead of storing a second. */
int spool_push(spool_client *c, const char *queue, const char *payload, size_t len,
               const spool_push_opts *opts, char id[SPOOL_ID_MAX]);
/* Same, payload a C string. */
int spool_push_str(spool_client *c, const char *queue, const char *payload,
                   const spool_push_opts *opts, char id[SPOOL_ID_MAX]);

typedef struct spool_push_item {
    const char *payload;         /* in */
    size_t len;                  /* in */
    const spool_push_opts *opts; /* in, may be NULL */
    int status;                  /* out: 0 or a SPOOL_E* code */
    char id[SPOOL_ID_MAX];       /* out: the job id when status is 0 */
} spool_push_item;

/* Pushes n jobs to queue in one pipelined round trip (all requests are
 * written, then all replies read). Each item gets its own status; the call
 * returns 0 when all succeeded, else the first failing item's code (and
 * spool_errmsg() carries its message). Each item gets its own idempotency
 * key as in spool_push; items whose outcome is unknown (the connection broke
 * before their reply, -CLUSTERDOWN) or that a cluster redirected are pushed
 * again one by one with their keys. With push_retry_ms < 0 a connection
 * failure fails the items whose replies did not arrive with that code:
 * those may or may not have been stored. */
int spool_push_many(spool_client *c, const char *queue, spool_push_item *items, size_t n);

/* ------------------------------------------------------------------- jobs */

typedef struct cJSON cJSON;

/* One failed attempt of a job (JOB.GET "errors", oldest first). */
typedef struct spool_attempt {
    long long attempt;    /* the delivery that failed */
    long long time;       /* Unix ms */
    char *worker;         /* "name=N addr=A id=I" of the client that held it */
    char *error;          /* the NACK's ERROR text, or "lease expired" */
} spool_attempt;

/* Fields are read-only for the caller. Fields that a reply did not carry
 * are 0 / NULL (JOB.RESERVE carries id, receipt, queue, payload, attempt,
 * lease_ms; JOB.GET and QUEUE.PEEK carry everything but receipt). */
typedef struct spool_job {
    char *id;
    char *receipt;
    char *queue;
    char *payload;        /* NUL-terminated; may contain NULs: use payload_len */
    size_t payload_len;
    long long attempt;
    long long lease_ms;
    char *state;          /* ready|reserved|delayed|done|dead|expired */
    long long priority;
    long long retries;
    long long run_at, lease_until, created_at, updated_at; /* Unix ms, 0: unset */
    char *last_error;
    char *unique;
    char *result;         /* JOB.ACK … RESULT value (JOB.GET, JOB.WAIT), or NULL */
    size_t result_len;
    char *progress;       /* last JOB.PROGRESS value, or NULL */
    cJSON *json_;         /* private: spool_job_json() cache */
    bool json_done_;      /* private */
    long long expires_at; /* Unix ms after which it is not delivered; 0: never */
    char *group;          /* GROUP key; NULL: the default group */
    char *holder;         /* reserved: "name=N addr=A id=I" of its worker */
    spool_attempt *errors;/* failed attempts, oldest first (at most 25) */
    size_t nerrors;
} spool_job;

/* The payload parsed as JSON, or NULL when it is not valid JSON (all of it:
 * a valid prefix followed by more text is not JSON). Parsed on
 * the first call; the tree belongs to the job (do not free it). */
const cJSON *spool_job_json(spool_job *job);
/* A string member of a JSON object payload, or NULL when the payload is not
 * an object or the member is absent or not a string. Owned by the job. */
const char *spool_job_json_str(spool_job *job, const char *name);
void spool_job_free(spool_job *job);             /* NULL is fine */
void spool_jobs_free(spool_job **jobs, size_t n);/* frees each job and the array */

/* --------------------------------------------------------------- consumer */

typedef struct spool_reserve_opts {
    int timeout_ms;   /* 0: wait until a job comes; > 0: at most this long;
                         SPOOL_NOWAIT: do not wait */
    int64_t lease_ms; /* > 0: LEASE for these deliveries */
} spool_reserve_opts;

#define SPOOL_NOWAIT (-1)

/* JOB.RESERVE ... COUNT max FROM queues[0..nqueues). Returns the number of
 * jobs stored in jobs[0..) (0 on timeout), or a negative code. Each job
 * belongs to the caller (spool_job_free). opts may be NULL (wait forever,
 * default lease). */
int spool_reserve(spool_client *c, const char *const *queues, size_t nqueues,
                  const spool_reserve_opts *opts, spool_job **jobs, size_t max);
/* One job from one queue: 1 with *job set, 0 on timeout, or a code. */
int spool_reserve_one(spool_client *c, const char *queue, int timeout_ms, spool_job **job);

/* JOB.ACK receipt: 0, SPOOL_ESTALE, SPOOL_ENOJOB, ... */
int spool_ack(spool_client *c, const char *receipt);
/* JOB.ACK receipt...: the number acknowledged (refusals are not errors). */
int spool_ack_many(spool_client *c, const char *const *receipts, size_t n);

#define SPOOL_NACK_DEAD 1u     /* flag: the job goes dead now (JOB.NACK ... DEAD) */
#define SPOOL_NACK_DEFAULT_DELAY (-1) /* delay_ms: the queue's backoff */
enum { SPOOL_NACK_RETRIED = 0, SPOOL_NACK_WENT_DEAD = 1 };

/* JOB.NACK receipt [DELAY ms] [ERROR text] [DEAD]. delay_ms < 0: the
 * queue's backoff; error may be NULL. Returns SPOOL_NACK_RETRIED (the job
 * will run again), SPOOL_NACK_WENT_DEAD, or a code. */
int spool_nack(spool_client *c, const char *receipt, int64_t delay_ms, const char *error,
               unsigned flags);

/* JOB.TOUCH receipt [LEASE ms]: extends the lease (lease_ms <= 0: the
 * delivery's lease). lease_until (may be NULL) gets the new deadline. */
int spool_touch(spool_client *c, const char *receipt, int64_t lease_ms, long long *lease_until);

/* ------------------------------------------------ results, progress, waits */

/* JOB.ACK receipt RESULT value: acks and keeps value (len bytes, at most
 * the server's max-result) with the done job. 0, SPOOL_ESTALE, ... */
int spool_ack_result(spool_client *c, const char *receipt, const char *result, size_t len);
/* JOB.PROGRESS receipt value: value is a number 0-100 ("42", "99.5") or a
 * JSON object ("{\"page\":3}"). */
int spool_job_progress(spool_client *c, const char *receipt, const char *value);
/* JOB.WAIT id [TIMEOUT ms]: blocks until the job is done or dead. 1 with
 * *job set (its final record, result included), 0 when timeout_ms passed
 * first (timeout_ms 0: no limit), or a code (SPOOL_ENOJOB: no such job, or
 * it was deleted). */
int spool_job_wait(spool_client *c, const char *id, int timeout_ms, spool_job **job);

/* -------------------------------------------------------------- schedules */

typedef struct spool_sched_opts {
    const char *tz;       /* zone of the system zoneinfo; NULL: UTC */
    int priority;         /* PRI (0: default) */
    int retries;          /* 0: the queue's default; n > 0: n; SPOOL_NO_RETRIES: none */
    bool unique;          /* skip a tick while the last job is unfinished */
    const char *catchup;  /* "none", "one" (NULL: the default) or "all" */
} spool_sched_opts;

/* SCHED.SET name queue spec payload [options]: creates or replaces the
 * schedule. spec: a cron expression (5 or 6 fields), @hourly, @daily,
 * @weekly, @monthly, @yearly, or "@every 15m". */
int spool_sched_set(spool_client *c, const char *name, const char *queue, const char *spec,
                    const char *payload, const spool_sched_opts *opts);

typedef struct spool_schedule {
    char *name, *queue, *spec, *tz, *payload, *catchup;
    char *last_job;       /* id of the last job pushed, or NULL */
    long long priority, retries, next_at, last_tick, runs, skipped, created_at;
    bool unique, paused;
} spool_schedule;

/* SCHED.GET: 1 with *out set (spool_schedule_free), 0 when there is none. */
int spool_sched_get(spool_client *c, const char *name, spool_schedule **out);
/* SCHED.LIST [queue] (queue NULL: all): the count, *out an array of them
 * (spool_schedules_free). */
int spool_sched_list(spool_client *c, const char *queue, spool_schedule ***out);
/* SCHED.DEL: 1 deleted, 0 there was none. */
int spool_sched_del(spool_client *c, const char *name);
int spool_sched_pause(spool_client *c, const char *name);
int spool_sched_resume(spool_client *c, const char *name);
void spool_schedule_free(spool_schedule *s);                 /* NULL is fine */
void spool_schedules_free(spool_schedule **v, size_t n);

/* ---------------------------------------------------------------- batches */

typedef struct spool_batch_opts {
    /* a callback job: queue and payload, both NULL when not wanted */
    const char *on_success_queue, *on_success_payload;   /* all done */
    const char *on_complete_queue, *on_complete_payload; /* all finished */
    const char *on_death_queue, *on_death_payload;       /* the first dead job */
} spool_batch_opts;

/* BATCH.NEW: id receives the batch id. Add jobs with spool_push_opts.batch. */
int spool_batch_new(spool_client *c, const spool_batch_opts *opts, char id[SPOOL_ID_MAX]);
/* BATCH.CLOSE: no more jobs join; the callbacks fire once all finished. */
int spool_batch_close(spool_client *c, const char *id);

typedef struct spool_batch_info {
    char state[16];       /* open, closed, finished */
    long long total, done, dead, unfinished, pending, created_at, updated_at;
    bool fired_success, fired_complete, fired_death;
} spool_batch_info;

/* BATCH.GET: 1 with *out filled, 0 when there is no such batch. */
int spool_batch_get(spool_client *c, const char *id, spool_batch_info *out);

/* ------------------------------------------------------------------ admin */

typedef struct spool_queue_stats {
    long long ready, reserved, delayed, done, dead;         /* current counts */
    long long pushed, acked, retried, expired, buried;      /* totals since start;
                                                               expired: jobs now in
                                                               state expired (a count) */
    long long oldest_ready_age_ms, waiters;
    bool paused;
    long long lease_expired;     /* total: leases that ran out */
    long long expired_total;     /* total: jobs that expired (EXPIRES) */
    long long popped;            /* total: list pops */
    long long throttled;         /* waiters held back by rate/concurrency */
    long long groups;            /* groups with ready or reserved jobs */
    long long rate_limit, rate_period_ms; /* rate N per period; 0: none */
    long long concurrency_limit; /* 0: none */
} spool_queue_stats;

int spool_queue_stats_get(spool_client *c, const char *queue, spool_queue_stats *out);
/* QUEUE.LIST: *names is a NULL-terminated vector (spool_strv_free). Returns
 * the count. */
int spool_queue_list(spool_client *c, char ***names);
void spool_strv_free(char **v);
/* QUEUE.PEEK queue [STATE state] [COUNT count] [AFTER after]: state and
 * after may be NULL, count <= 0 means the server's default. *jobs gets a
 * caller-owned array (spool_jobs_free(*jobs, n)); returns n. */
int spool_queue_peek(spool_client *c, const char *queue, const char *state, int count,
                     const char *after, spool_job ***jobs);
int spool_queue_pause(spool_client *c, const char *queue);
int spool_queue_resume(spool_client *c, const char *queue);
/* QUEUE.PURGE (state NULL: every state but reserved): the count deleted. */
long long spool_queue_purge(spool_client *c, const char *queue, const char *state);
/* QUEUE.RETRY: the count of dead jobs made ready. */
long long spool_queue_retry(spool_client *c, const char *queue);

/* QUEUE.PEEK with every option; fields NULL / 0 are left out. error is a
 * glob over last_error (QUEUE.PEEK ... ERROR pattern). */
typedef struct spool_peek_opts {
    const char *state;
    int count;
    const char *after;
    const char *error;
} spool_peek_opts;
int spool_queue_peek_opts(spool_client *c, const char *queue, const spool_peek_opts *opts,
                          spool_job ***jobs);

/* QUEUE.RETRY queue [ERROR pattern] [RATE n/period] [TO queue]: only dead
 * jobs whose last_error matches, spread at rate, moved to another queue
 * (on the same shard). Fields NULL are left out. The count moved. */
typedef struct spool_retry_opts {
    const char *error;
    const char *rate;   /* e.g. "10/1s" */
    const char *to;
} spool_retry_opts;
long long spool_queue_retry_opts(spool_client *c, const char *queue, const spool_retry_opts *opts);

/* QUEUE.GROUPS: one entry per group with ready or reserved jobs, sorted by
 * key ("" is the default group). *out is caller-owned
 * (spool_queue_groups_free); returns the count. */
typedef struct spool_group_info {
    char *group;
    long long ready, reserved, delivered;
} spool_group_info;
int spool_queue_groups(spool_client *c, const char *queue, spool_group_info **out);
void spool_queue_groups_free(spool_group_info *v, size_t n);

/* QUEUE.WORKERS: the clients holding jobs of the queue or waiting on it. */
typedef struct spool_held_job {
    char id[SPOOL_ID_MAX];
    long long lease_until, attempt;
} spool_held_job;
typedef struct spool_queue_worker {
    char *name, *addr;
    long long id;            /* connection id (CLIENT ID) */
    bool waiting;            /* blocked in JOB.RESERVE on the queue */
    long long last_active;   /* Unix ms */
    spool_held_job *jobs;
    size_t njobs;
} spool_queue_worker;
int spool_queue_workers(spool_client *c, const char *queue, spool_queue_worker **out);
void spool_queue_workers_free(spool_queue_worker *v, size_t n);
/* QUEUE.CONFIG queue GET: *pairs is a NULL-terminated vector name, value,
 * name, value, ... (spool_strv_free); returns the number of pairs. With
 * name set, only that setting (one pair). */
int spool_queue_config_get(spool_client *c, const char *queue, const char *name, char ***pairs);
/* QUEUE.CONFIG queue SET name value [...]: pairs holds npairs name/value pairs. */
int spool_queue_config_set(spool_client *c, const char *queue, const char *const *pairs,
                           size_t npairs);

/* JOB.GET: *job is set (caller-owned) or SPOOL_ENOJOB when it does not exist. */
int spool_job_get(spool_client *c, const char *id, spool_job **job);
/* JOB.RETRY id. */
int spool_job_retry(spool_client *c, const char *id);
/* JOB.DEL id...: the number that existed. */
long long spool_job_delete(spool_client *c, const char *const *ids, size_t n);

/* ---------------------------------------------------------------- pub/sub */

/* A connection listening to pub/sub channels, e.g. the job lifecycle
 * events spoold publishes as JSON on "spool:events:<queue>" (see
 * docs/protocol.md). It has its own connection (always RESP2) and takes no
 * other commands. When its connection breaks, spool_next_message() returns
 * the code and the subscriber stays closed: open a new one (events
 * published in between are lost, as with any pub/sub). */
typedef struct spool_subscriber spool_subscriber;

typedef struct spool_message {
    char *channel;   /* the channel it was published on */
    char *pattern;   /* the pattern that matched (PSUBSCRIBE), else NULL */
    char *data;      /* NUL-terminated; may contain NULs: use len */
    size_t len;
} spool_message;

/* Connects (opt as for spool_connect; its protocol is ignored), then
 * SUBSCRIBE channels[0..nchannels) and PSUBSCRIBE patterns[0..npatterns)
 * (glob patterns, e.g. "spool:events:*"); returns once the server has
 * confirmed them all. On failure *out is still set when allocation worked,
 * so spool_subscriber_errmsg(*out) can say why; close it either way. */
int spool_subscribe(spool_subscriber **out, const spool_options *opt,
                    const char *const *channels, size_t nchannels,
                    const char *const *patterns, size_t npatterns);
/* The next message: 1 with *msg set (caller-owned, spool_message_free),
 * 0 when none came within timeout_ms (< 0: wait forever), or a code. */
int spool_next_message(spool_subscriber *s, int timeout_ms, spool_message **msg);
void spool_message_free(spool_message *m);   /* NULL is fine */
const char *spool_subscriber_errmsg(const spool_subscriber *s);
void spool_subscriber_close(spool_subscriber *s); /* NULL is fine */

/* ---------------------------------------------------------- worker runtime */

typedef struct spool_worker spool_worker;
typedef struct spool_ctx spool_ctx; /* per-job context given to the handler */

/* Handler results. */
enum spool_result {
    SPOOL_DONE = 0,  /* same value as SPOOL_OK: ack the job */
    SPOOL_RETRY = 1, /* nack: run again after the backoff (or spool_ctx_retry_in) */
    SPOOL_FAIL = 2   /* nack with DEAD: the job goes dead now, with the error text */
};

/* Called on a worker thread for each job. The job belongs to the runtime
 * (valid until the handler returns). Return SPOOL_OK/SPOOL_DONE, SPOOL_RETRY
 * or SPOOL_FAIL; any other value counts as SPOOL_RETRY. */
typedef int (*spool_handler)(spool_job *job, spool_ctx *ctx, void *arg);

/* The error text recorded with a RETRY or FAIL (last_error). */
void spool_ctx_set_error(spool_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For SPOOL_DONE: the job's result (len bytes, at most the server's
 * max-result), sent with the ack (JOB.ACK … RESULT). 0 or SPOOL_ENOMEM. */
int spool_ctx_set_result(spool_ctx *ctx, const char *result, size_t len);
/* Reports progress of the running job now (JOB.PROGRESS): a number 0-100
 * ("40") or a JSON object. 0 or a code. */
int spool_ctx_progress(spool_ctx *ctx, const char *value);
/* For SPOOL_RETRY: run again after ms instead of the queue's backoff. */
void spool_ctx_retry_in(spool_ctx *ctx, int64_t ms);
/* True once the worker is stopping: a long handler may give up early and
 * return SPOOL_RETRY. */
bool spool_ctx_stopping(const spool_ctx *ctx);
/* True when the runtime lost this job's lease (a TOUCH was refused): the
 * job may already be running elsewhere; its result will be discarded. */
bool spool_ctx_lease_lost(const spool_ctx *ctx);
/* Index of the worker thread (0..threads-1). */
int spool_ctx_thread(const spool_ctx *ctx);

enum spool_log_level { SPOOL_LOG_DEBUG, SPOOL_LOG_INFO, SPOOL_LOG_WARN, SPOOL_LOG_ERROR };
typedef void (*spool_log_fn)(int level, const char *msg, void *arg);

typedef struct spool_worker_config {
    const char *url;            /* NULL: $SPOOL_URL, else the default */
    const char *const *queues;  /* NULL-terminated; reserved in this order */
    spool_handler handler;
    void *handler_arg;
    int threads;                /* 0: 1 */
    int64_t lease_ms;           /* 0: the job's / queue's lease */
    int reserve_timeout_ms;     /* longest block in JOB.RESERVE, bounds how soon
                                   a stop is noticed; 0: 1000 */
    int stop_timeout_ms;        /* after a stop, how long running handlers may
                                   go on before their jobs are handed back
                                   (JOB.NACK DELAY 0); 0: 30000 */
    int reconnect_min_ms;       /* first reconnect delay; 0: 100 */
    int reconnect_max_ms;       /* cap of the reconnect delay; 0: 10000 */
    int connect_timeout_ms;     /* 0: 5000 */
    int io_timeout_ms;          /* 0: 10000 */
    bool no_signals;            /* true: spool_worker_run() installs no
                                   SIGTERM/SIGINT handlers */
    spool_log_fn log;           /* NULL: lines on stderr */
    void *log_arg;
    int log_level;              /* lowest level logged; 0 = SPOOL_LOG_DEBUG, so
                                   set SPOOL_LOG_INFO for less */
    const char *name;           /* client name prefix; NULL: "spool-worker" */
    /* Optional, called on each worker thread when it starts and just before
     * it exits, with handler_arg: set up and free per-thread resources (a
     * CURL handle, vips_thread_shutdown(), ...). */
    void (*thread_start)(int thread, void *arg);
    void (*thread_stop)(int thread, void *arg);
} spool_worker_config;

typedef struct spool_worker_counters {
    long long done;        /* acked */
    long long retried;     /* nacked with retries left */
    long long failed;      /* went dead (FAIL, or RETRY on the last attempt) */
    long long lost;        /* lease lost: ack/nack refused as stale, or TOUCH refused */
    long long handed_back; /* given back at the stop deadline */
    long long touches;     /* lease extensions sent */
    long long reconnects;  /* successful reconnects after a broken connection */
} spool_worker_counters;

/* Checks and copies the configuration (queues are copied). */
int spool_worker_new(spool_worker **out, const spool_worker_config *cfg);
/* Starts the threads and blocks until the worker has stopped (after
 * spool_worker_stop(), SIGTERM or SIGINT), every handler has returned and
 * every result has been sent. Returns 0, or SPOOL_ETIMEOUT when jobs had to
 * be handed back at the stop deadline. Call at most once per worker. While
 * it runs, SIGTERM and SIGINT stop the worker (unless no_signals); the
 * previous handlers are restored on return. */
int spool_worker_run(spool_worker *w);
/* Asks the worker to stop. Async-signal-safe; any thread. */
void spool_worker_stop(spool_worker *w);
/* A snapshot of the counters; any thread, any time. */
void spool_worker_counters_get(const spool_worker *w, spool_worker_counters *out);
/* Frees a worker that is not running. NULL is fine. */
void spool_worker_free(spool_worker *w);

#ifdef __cplusplus
}
#endif

#endif
