/*
 * internal.h - what the libspool modules share and users do not see: the
 * client structure, the URL parser, the socket layer and the request /
 * reply helpers every command module builds on.
 *
 * Modules: url.c (URL parsing), net.c (sockets with deadlines), client.c
 * (connection, handshake, one-call and pipelined round trips, error
 * mapping), job.c, producer.c, consumer.c, admin.c, worker.c, keeper.c.
 * All of them run on the thread that owns the client.
 */
#ifndef SPOOL_INTERNAL_H
#define SPOOL_INTERNAL_H

#include "spool.h"
#include "resp.h"

#define SPOOL_DEFAULT_PORT 7379
#define SPOOL_ERRMSG_MAX 1024
#define SPOOL_MAX_ARGS 64 /* arguments of any one command the SDK builds */
#define SDK_NODES_MAX 8   /* cluster nodes a client remembers for failover */
#define SDK_KEY_LEN 32    /* hex digits of an automatic idempotency key */

/* ------------------------------------------------------------------- url */

typedef struct spool_url {
    char host[256];
    int port;
    char user[128]; /* "" when absent */
    char pass[256]; /* "" when absent */
    bool has_pass;
} spool_url;

/* Parses url into *u: 0, or SPOOL_EINVAL with a reason in err. */
int sdk_url_parse(const char *url, spool_url *u, char *err, size_t errlen);

/* ---------------------------------------------------------------- client */

struct spool_client {
    int fd;          /* -1 when not connected */
    int proto;       /* 2 or 3 on a connection, 0 without */
    spool_url url;
    char endpoint[300];
    int connect_timeout_ms;
    int io_timeout_ms;
    int want_proto;
    char *name;
    resp_reader *reader;
    resp_buf in;     /* received, not yet parsed: in.data[in_off..in.len) */
    size_t in_off;
    resp_buf out;    /* requests being written */
    int last_error;
    char errmsg[SPOOL_ERRMSG_MAX];
    int push_retry_ms; /* resolved: < 0 no key and no resend */
    spool_url nodes[SDK_NODES_MAX]; /* the URL's node and each redirect's */
    int nnodes;
};

/* Allocates and configures a client without connecting it (*out is set
 * whenever allocation worked, even when configuration failed). */
int sdk_client_create(spool_client **out, const spool_options *opt);
/* Records a failure: returns code, so `return sdk_client_fail(c, code, ...)`. */
int sdk_client_fail(spool_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears the last error (on success). */
void sdk_client_ok(spool_client *c);
/* Closes the socket and drops buffered bytes (the client stays usable). */
void sdk_client_disconnect(spool_client *c);
/* Connects when not connected: 0 or a code. */
int sdk_client_ensure(spool_client *c);
/* Points the client at the next node it knows (the URL's, then each node a
 * redirect named), after the current one refused a connection. */
void sdk_client_next_node(spool_client *c);
/* Whether a failed call (code rc, message in c) may have run or not run
 * without a reply saying which: a broken connection, -CLUSTERDOWN,
 * -TRYAGAIN, -LOADING. */
bool sdk_outcome_unknown(const spool_client *c, int rc);
/* A new random 128-bit idempotency key, SDK_KEY_LEN hex digits and a NUL. */
void sdk_idem_key(char key[SDK_KEY_LEN + 1]);

/* One round trip: sends the command, reads its reply. wait_ms is how long
 * the server may legitimately take before it answers (a blocking reserve's
 * timeout; -1 for "forever"); the I/O timeout is added to it. An error
 * reply is turned into its code (and message) and freed; on success
 * *reply belongs to the caller. */
int sdk_client_call(spool_client *c, int argc, const char *const *argv, const size_t *lens,
                int wait_ms, resp_val **reply);

/* Pipelining: queue requests with sdk_client_append(), then client_flush_read()
 * writes them all while collecting replies; sdk_client_read() reads one. */
void sdk_client_append(spool_client *c, int argc, const char *const *argv, const size_t *lens);
/* A cluster's -MOVED, -ASK or -TRYAGAIN: the request was not run here
 * (sdk_client_call follows them; a pipeline sends such requests again). */
bool sdk_is_redirect(const resp_val *v);
int sdk_client_flush(spool_client *c);
int sdk_client_read(spool_client *c, int wait_ms, resp_val **reply);
/* Maps an error reply to its code and records its text as the message. */
int sdk_client_error_reply(spool_client *c, const resp_val *v);

/* ---------------------------------------------------------- reply helpers */

/* An integer from an INT, or a BULK/SIMPLE holding a decimal number:
 * 0 on success. */
int sdk_val_to_ll(const resp_val *v, long long *out);
/* Copies a string field (BULK/SIMPLE) into a new string; NULL for a
 * missing/null field; *err set when present but of another type. */
char *sdk_val_strdup(const resp_val *v, bool *err);
/* Whether v is the nil reply (RESP2 $-1 or *-1, RESP3 _). */
bool sdk_val_is_nil(const resp_val *v);

/* Builds a job from one element of a RESERVE / PEEK reply, or of a GET
 * reply: NULL when the element is malformed. */
spool_job *sdk_job_from_val(const resp_val *v);

/* An argv builder for commands with optional arguments. */
typedef struct argvec {
    int argc;
    const char *argv[SPOOL_MAX_ARGS];
    size_t len[SPOOL_MAX_ARGS];
    char nums[16][24]; /* storage for formatted numbers */
    int nnums;
} argvec;

void sdk_av_init(argvec *a);
void sdk_av_add(argvec *a, const char *s);               /* C string */
void sdk_av_addn(argvec *a, const char *p, size_t n);    /* bytes */
void sdk_av_addll(argvec *a, long long v);               /* a number */
/* NAME value, when `when` holds (optional arguments such as DELAY ms). */
void sdk_av_opt(argvec *a, bool when, const char *name, const char *value);
void sdk_av_optll(argvec *a, bool when, const char *name, long long value);

/* --------------------------------------------------------------- time */

long long sdk_mono_ms(void); /* CLOCK_MONOTONIC in ms */

#endif
