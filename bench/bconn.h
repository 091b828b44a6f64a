/*
 * bconn.h - one load-generator connection: a non-blocking TCP socket, its
 * output buffer, and the ring of requests sent but not yet answered.
 *
 * Servers answer a connection's requests in order (RESP pipelining, and
 * beanstalkd does the same), so the ring's head always names the request
 * the next reply belongs to, with the time its job was pushed. A bconn
 * belongs to one load-generator thread for the whole run; the blocking
 * helpers are for set-up on the main thread, before that thread starts.
 */
#ifndef SPOOL_BENCH_BCONN_H
#define SPOOL_BENCH_BCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opts.h"
#include "resp.h"

typedef enum req_kind {
    REQ_PUSH,  /* a push; ts = when it was written */
    REQ_FETCH, /* a blocking take: BRPOP, BLMOVE, JOB.RESERVE, reserve-with-timeout */
    REQ_ACK    /* JOB.ACK, LREM or delete; ts = when its job was pushed */
} req_kind;

typedef struct req {
    req_kind kind;
    uint64_t ts;
} req;

typedef enum conn_role { ROLE_PRODUCER, ROLE_CONSUMER } conn_role;

struct worker;
struct driver;

typedef struct bconn {
    int fd;
    conn_role role;
    int index;                  /* among the connections of its role */
    char queue[256];            /* the queue it pushes to or takes from */
    char pkey[300];             /* Redis: the queue's processing list */
    const bench_cfg *cfg;
    const struct driver *drv;
    struct worker *w;           /* the owning thread */
    resp_reader *rd;            /* RESP servers */
    resp_buf in;                /* beanstalkd: bytes not parsed yet */
    resp_buf out;               /* bytes not written yet, from out_off */
    size_t out_off;
    bool epollout;              /* EPOLLOUT is armed */
    req *ring;
    unsigned ring_cap, ring_head, ring_len;
    int inflight;               /* producer: pushes not answered yet */
    uint64_t sent;              /* producer: pushes written */
    bool exhausted;             /* producer: the job budget is spent */
    char *scratch;              /* payload being built */
    size_t scratch_cap;
} bconn;

/* Connects (blocking, with TCP_NODELAY). Returns the fd, or -1 with a
 * message in err. */
int bconn_dial(const char *host, const char *port, char *err, size_t errlen);

/* A connection object around fd, with room for ring_cap requests in
 * flight. */
bconn *bconn_new(int fd, conn_role role, int index, const bench_cfg *cfg,
                 const struct driver *drv, unsigned ring_cap);
void bconn_free(bconn *c); /* closes fd; NULL is fine */

/* Records that a request was appended to out. Aborts when the ring is full
 * (a bug: callers bound what they have in flight). */
void bconn_expect(bconn *c, req_kind kind, uint64_t ts);
/* Takes the oldest unanswered request; -1 when none is outstanding. */
int bconn_take(bconn *c, req *out);

/* Writes what it can without blocking. 0: all written; 1: some is left
 * (arm EPOLLOUT); -1: the connection failed (errno set). */
int bconn_flush(bconn *c);

/* Blocking helpers for set-up: send all of p, and read some bytes, each
 * within timeout_ms. Return 0 / bytes read, or -1 (timeout, EOF or error). */
int bconn_send_all(int fd, const void *p, size_t n, int timeout_ms);
long bconn_recv_some(int fd, void *p, size_t cap, int timeout_ms);
int bconn_set_nonblocking(int fd);

#endif
