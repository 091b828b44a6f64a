/*
 * queue.h - the in-memory queue core: jobs and their state machine, the
 * ready list with priorities, per-state lists, queue settings, the job id
 * table, unique keys, and the per-queue FIFO of blocked waiters.
 *
 * The job state machine (values are stored in the journal: never renumber):
 *
 *     push ───────────────▶ READY ◀──────────── (run_at reached) ─── DELAYED
 *     push DELAY/AT ──▶ DELAYED                                          ▲
 *     READY ──reserve (attempt++, lease)──▶ RESERVED                     │
 *     READY ──list pop (BRPOP/RPOP/LPOP)──▶ DONE                         │
 *     RESERVED ──ack──▶ DONE                                             │
 *     RESERVED ──nack / lease expiry, attempt <= retries──▶ (backoff) ───┘
 *     RESERVED ──nack / lease expiry, attempt >  retries──▶ DEAD
 *     RESERVED ──nack DEAD──▶ DEAD
 *     DEAD, DELAYED ──retry──▶ READY          (dead: attempt reset to 0)
 *     any ──delete / purge──▶ (gone)
 *     DONE, EXPIRED ──retention over──▶ (gone)
 *     READY, DELAYED ──expires_at reached──▶ EXPIRED   (never delivered late)
 *
 * The ready jobs of a queue form one Redis list: LPUSH adds at the left,
 * RPUSH at the right, RPOP/BRPOP/JOB.RESERVE take from the right, so LPUSH +
 * BRPOP is FIFO exactly as in Redis. Priorities split the list into levels,
 * lower priorities to the left: the rightmost job of the highest level is
 * served first; within a level the order is the list order. job->pos keeps
 * that order across restarts (ascending from left to right).
 *
 * Owned by exactly one shard thread (shard = hash(name) % shards); nothing
 * here locks. Deadlines (delays, leases, retention of done jobs) are
 * job->timer nodes in the shard's heap; the shard arms and disarms them.
 * A job is in exactly one list, the one of its state (ready: its level).
 */
#ifndef SPOOL_QUEUE_H
#define SPOOL_QUEUE_H

#include "groups.h"
#include "rate.h"
#include "theap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum job_state { JOB_READY = 0, JOB_RESERVED = 1, JOB_DELAYED = 2, JOB_DONE = 3, JOB_DEAD = 4, JOB_EXPIRED = 5 };
#define JOB_NSTATES 6

#define JOB_PRI_MIN (-1000)
#define JOB_PRI_MAX 1000
#define JOB_ID_HEX 16

struct queue;

struct job {
    struct tnode timer;        /* delayed: min(run_at, expires_at); ready: expires_at;
                                * reserved: lease_until; done, expired: retention */
    struct job *prev, *next;   /* in the list of its state */
    struct job *hnext;         /* id table chain */
    struct queue *q;
    uint64_t id;
    int64_t pos;               /* list order among ready jobs */
    int64_t run_at;            /* unix ms: when a delayed job becomes ready */
    int64_t lease_until;       /* unix ms: end of the current lease */
    int64_t created_at;
    int64_t updated_at;
    int64_t expires_at;        /* unix ms: not delivered after this; 0 = never */
    struct gnode gn;           /* in its group (groups.h) while ready or reserved */
    uint32_t attempt;          /* deliveries so far; a receipt names one */
    uint32_t retries;          /* retries allowed after the first attempt */
    uint32_t lease_ms;         /* lease of the current delivery */
    uint32_t len;              /* payload length */
    int16_t priority;
    uint8_t state;             /* enum job_state */
    uint8_t jflags;            /* JOB_F_*: what the journal holds of it (store.c) */
    uint32_t token;            /* names the current delivery in its receipt: random, never 0
                                * (0: delivered before receipts carried one) */
    char *payload;             /* owned; NULL while it lives only in the journal */
    char *last_error;          /* owned, may be NULL */
    char *unique;              /* owned, may be NULL */
    char *result;              /* owned, may be NULL: JOB.ACK … RESULT (result_len bytes) */
    char *progress;            /* owned, may be NULL: the last JOB.PROGRESS value */
    uint32_t result_len;
    bool result_on_disk;       /* the result is only in the journal (read when shown) */
    uint64_t batch;            /* the batch it counts in (batch.h); 0 = none */
    char *group;               /* owned GROUP key, NULL = the default group */
    char *holder;              /* owned: "name addr id" of the reserving connection, or NULL */
    char *history;             /* owned: failed attempts, lines "attempt\tms\tholder\terror" */
    uint16_t grouplen;
};

/* jflags. Where the journal row keeps the payload, known for a job
 * inserted by this process (a loaded job has neither: its delete asks the
 * row); and a reservation not journaled yet (store.c, "Reservations
 * written late"). */
#define JOB_F_BODY_ROW 0x1   /* in the job's row: deleted with one statement */
#define JOB_F_BODY_APART 0x2 /* in a payloads row of its own, or the payload log */
#define JOB_F_UNSAVED 0x4    /* reserved, and the journal row does not say so yet */

/* Makes a READY-to-be-placed job owning a copy of p[0..n). */
struct job *job_new(uint64_t id, const void *p, size_t n);
/* The same, taking ownership of p (malloc'd, p[n] == 0). */
struct job *job_new_owned(uint64_t id, char *p, size_t n);
void job_free(struct job *j);
void job_set_str(char **field, const char *s, size_t n); /* NULL/0 clears */
const char *job_state_name(int state);
int job_state_parse(const char *s, size_t n); /* -1 when unknown */

/* Who holds a job: "name=<client name> addr=<ip:port> id=<connection id>"
 * (malloc'd; spaces and control bytes in the name become '_'). */
char *job_holder_format(const char *name, const char *addr, uint64_t conn_id);
/* Appends a failed attempt to j->history ("attempt\tms\tholder\terror"
 * lines, tabs and newlines in the texts become spaces), keeping the last
 * JOB_HISTORY_MAX. */
#define JOB_HISTORY_MAX 25
void job_history_add(struct job *j, int64_t at, const char *err, size_t errlen);
/* One failed attempt read back from j->history (texts point into it). */
struct job_attempt {
    long long attempt, time;
    const char *worker, *error;
    size_t worker_len, error_len;
};
/* Reads the attempt at line p (start with j->history); returns the next
 * line, or NULL when p is NULL or at the end. */
const char *job_history_next(const char *p, struct job_attempt *a);
size_t job_history_count(const struct job *j);

/* Ids: 16 hex digits; the low 10 bits name the shard. */
void job_id_format(uint64_t id, char out[JOB_ID_HEX + 1]);
/* Parses an id or a receipt; *attempt = 0 for a bare id. Returns false
 * when s is neither. */
bool job_id_parse(const char *s, size_t n, uint64_t *id, uint32_t *attempt);
/* Receipts: "<id>-<delivery>-<token>", the token 8 hex digits (j->token);
 * "<id>-<delivery>" (no token, *token = 0) is the form of deliveries made
 * before receipts carried one. */
#define JOB_RECEIPT_MAX (JOB_ID_HEX + 1 + 10 + 1 + 8 + 1)
void job_receipt_format(const struct job *j, char out[JOB_RECEIPT_MAX]);
bool job_receipt_parse(const char *s, size_t n, uint64_t *id, uint32_t *attempt, uint32_t *token);
/* Cluster mode: the ids and receipts clients see start with "{tag}", the
 * hash tag of their queue's slot (slot_tag), so that a Redis Cluster
 * client routes JOB.ACK receipt and JOB.GET id by it. Switched on once at
 * start-up, before any thread runs; job_id_parse skips such a prefix. */
void job_id_tagging(bool on);
/* Cluster mode: the index of this node's group in the slot map (-1: none),
 * set whenever a map is installed. A shard then makes ids with the group
 * in the top 6 bits of the sequence (64 ids per millisecond per shard
 * before it borrows the next millisecond), so that ids made by different
 * groups never collide when a slot's jobs move to another group. */
void job_id_origin_set(int group);
int job_id_origin(void);
#define JOB_ID_TEXT (JOB_ID_HEX + 8)
/* The id of j as a client sees it: "{tag}" + 16 hex digits with tagging
 * on, the 16 hex digits without. Returns its length. */
size_t job_id_text(const struct job *j, char out[JOB_ID_TEXT]);
/* A receipt as a client sees it: "{tag}" + job_receipt_format's. */
#define JOB_RECEIPT_TEXT (JOB_RECEIPT_MAX + 7)
void job_receipt_text(const struct job *j, char out[JOB_RECEIPT_TEXT]);
static inline int job_id_shard(uint64_t id) { return (int)(id & 0x3ff); }

/* ------------------------------------------------------------- lists */

struct jlist {
    struct job *head, *tail;   /* head = left end */
    size_t n;
};

void jlist_push_left(struct jlist *l, struct job *j);
void jlist_push_right(struct jlist *l, struct job *j);
void jlist_unlink(struct jlist *l, struct job *j);

/* ----------------------------------------------------------- settings */

struct qconf {
    int64_t retries;
    int64_t backoff;           /* ms, first retry delay */
    int64_t backoff_max;       /* ms */
    int64_t lease;             /* ms */
    int64_t maxlen;            /* unfinished jobs; 0 = unlimited */
    int64_t payload;           /* enum payload_mode */
    int64_t retention;         /* ms done jobs are kept */
    int64_t retention_max;     /* done jobs kept at most */
    /* flow control (docs/protocol.md, rate.h, flow.h) */
    struct rate rate;          /* deliveries per period; n 0 = none */
    int64_t concurrency;       /* reserved jobs at once; 0 = no limit */
    int64_t expires;           /* ms after push a job expires; 0 = never */
    struct rate group_rate;    /* per group */
    int64_t group_concurrency; /* per group; 0 = no limit */
    char group_from[64];       /* JSON field naming the group; "" = none */
};

#define QCONF_NAMES_HELP                                                                              \
    "unknown setting (settings: retries, backoff, backoff-max, lease, maxlen, payload, retention, "     \
    "retention-max, rate, concurrency, expires, group-rate, group-concurrency, group-from)"

void qconf_defaults(struct qconf *c, int payload_mode);
/* Sets one setting from text; returns 0, or -EINVAL with *why naming the problem. */
int qconf_set(struct qconf *c, const char *name, size_t nlen, const char *val, size_t vlen,
              const char **why);
/* Renders one setting (name given) or, with name NULL, iterates all. */
int qconf_get(const struct qconf *c, const char *name, size_t nlen, char *buf, size_t cap);
size_t qconf_count(void);
const char *qconf_name(size_t i);
/* "name value name value ..." of every setting; for the journal. */
void qconf_format(const struct qconf *c, char *buf, size_t cap);
/* Parses qconf_format's text back (unknown names are ignored). */
void qconf_parse(struct qconf *c, const char *text);
/* Backoff for a failure on attempt n (1-based); rnd in [0,1). */
int64_t qconf_backoff(const struct qconf *c, uint32_t attempt, double rnd);

/* ------------------------------------------------------------ waiters */

struct waiter;
struct wlink {
    struct wlink *prev, *next;
    struct waiter *w;
    struct queue *q;
};

/* -------------------------------------------------------------- queue */

struct plevel {
    int16_t pri;
    struct jlist l;
};

struct ustr; /* unique-key table entry (queue.c) */

struct queue_stats {
    uint64_t pushed, acked, retried, lease_expired, buried, popped, expired;
};

struct queue {
    char *name;
    size_t namelen;
    struct queue *hnext;       /* table chain */

    struct plevel *levels;     /* ascending priority; served from the last */
    int nlevels, caplevels;
    size_t nready;
    int64_t pos_lo, pos_hi;    /* list positions in use are within [pos_lo, pos_hi] */
    struct jlist delayed, reserved, done, dead, expired;
    struct gtable groups;      /* fair groups (groups.h) */
    struct rate_state rate_lim;   /* queue rate limiter state (rate.h) */
    struct tnode flow_timer;   /* armed while waiters wait for the rate limit */

    struct ustr **ubuckets;    /* unique key -> unfinished job */
    size_t nub, nunique;

    struct qconf conf;
    bool conf_custom;          /* differs from the defaults: keep the queue */
    bool paused;

    struct wlink *wait_head, *wait_tail;
    size_t nwaiters;
    struct queue *ready_next;  /* in the shard's list of queues to serve */
    bool in_ready_list;

    struct queue_stats stats;
    struct queue_stats stats_saved; /* as they were before turn stats_turn */
    uint64_t stats_turn;
};

void queue_wait_append(struct queue *q, struct wlink *l);
void queue_wait_unlink(struct wlink *l);

/* Waiters held back by the queue's limits (it has ready jobs). */
static inline size_t queue_throttled(const struct queue *q)
{
    return q->nready && !q->paused ? q->nwaiters : 0;
}

/* Counts by state. */
size_t queue_count(const struct queue *q, int state);
/* Unfinished jobs (ready + delayed + reserved), what maxlen limits. */
size_t queue_unfinished(const struct queue *q);
/* True when nothing keeps the queue: no jobs, no waiters, default settings,
 * not paused. */
bool queue_is_idle(const struct queue *q);

/* Ready list. */
void queue_ready_add(struct queue *q, struct job *j, bool left); /* sets state, pos */
/* Re-inserts a job at a known position (recovery). */
void queue_ready_insert_pos(struct queue *q, struct job *j);
/* The job the next pop from that end takes, or NULL. */
struct job *queue_ready_peek(const struct queue *q, bool left);
void queue_ready_remove(struct queue *q, struct job *j);
/* i-th ready job counting from the left (0-based); O(min(i, n - i)). */
struct job *queue_ready_at(const struct queue *q, size_t i);
/* Iterates ready jobs from the right (serving order). */
struct job *queue_ready_first_served(const struct queue *q);
struct job *queue_ready_next_served(const struct queue *q, const struct job *j);

/* Frees every job of q (lists, levels, unique keys); keeps the queue, its
 * settings and its waiters. */
void queue_clear_jobs(struct queue *q);

/* The list of a non-ready state. */
struct jlist *queue_list(struct queue *q, int state);

/* Unique keys: the unfinished job holding key, or NULL. */
struct job *queue_unique_find(const struct queue *q, const char *key, size_t len);
void queue_unique_add(struct queue *q, struct job *j);      /* j->unique set */
void queue_unique_remove(struct queue *q, struct job *j);   /* no-op if not held by j */

/* ------------------------------------------------------------- tables */

struct qtable {
    struct queue **b;
    size_t nb, n;
};

void qtable_init(struct qtable *t);
/* Frees every queue and its jobs (waiters must be gone already). */
void qtable_free(struct qtable *t);
struct queue *qtable_find(const struct qtable *t, const char *name, size_t len);
/* Finds or creates (a new queue gets conf = *defaults). */
struct queue *qtable_get(struct qtable *t, const char *name, size_t len, const struct qconf *defaults);
/* Removes and frees q if queue_is_idle(q) and not being served; true if freed. */
bool qtable_maybe_free(struct qtable *t, struct queue *q);
void qtable_each(const struct qtable *t, void (*fn)(void *arg, struct queue *q), void *arg);

/* Jobs by id, for one shard. Grows incrementally (as Redis's dict does):
 * while old is set, every add and remove first moves a few of its buckets
 * into b, so no single call ever relinks millions of jobs. */
struct jtable {
    struct job **b;
    size_t nb, n;
    struct job **old;   /* the table being emptied into b, or NULL */
    size_t oldnb, moved;
};

void jtable_init(struct jtable *t);
void jtable_free(struct jtable *t);          /* frees the table, not the jobs */
struct job *jtable_find(const struct jtable *t, uint64_t id);
void jtable_add(struct jtable *t, struct job *j);
void jtable_remove(struct jtable *t, struct job *j);

/* Redis LRANGE index normalisation: fills [*from, *to] (inclusive) and
 * returns false when the range is empty. */
bool queue_range(size_t n, long long start, long long stop, size_t *from, size_t *to);

#endif
