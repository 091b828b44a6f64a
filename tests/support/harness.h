/*
 * harness.h - start a real spoold and talk to it over loopback TCP.
 *
 * Used by the Criterion integration tests in tests/integration/. Each test
 * runs in its own process (Criterion forks), starts its own spoold on an
 * ephemeral port in a fresh temporary directory, and stops it at the end.
 *
 * Servers: spoold_start() forks/execs the binary named by $SPOOLD (or the
 * compile-time SPOOLD_PATH), waits (with a deadline) for the port file that
 * spoold writes once it listens, and fails the test with the server log if
 * the server dies first. spoold_stop() requires a clean exit 0 on SIGTERM.
 * A server that outlives a failed test is killed when the test process
 * exits (PR_SET_PDEATHSIG, plus an atexit hook that also removes the
 * temporary directory).
 *
 * Clients: a blocking client built on proto/resp.h. Every read has a
 * deadline (SO_RCVTIMEO and poll), so no test hangs on a silent server.
 * The cli_* calls that return a reply fail the test on timeout or EOF; the
 * cli_try_* / cli_poll_* calls report those outcomes to the caller instead.
 * Replies handed out are owned by the caller (resp_val_free), except that
 * the expect_* helpers take ownership and free them.
 *
 * Everything here runs on the test's main thread.
 */
#ifndef SPOOL_TEST_HARNESS_H
#define SPOOL_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#include "resp.h"

#define HARNESS_IO_TIMEOUT_MS 10000   /* longest wait for any one reply */
#define HARNESS_START_TIMEOUT_MS 10000
#define HARNESS_STOP_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- server */

typedef struct spoold {
    pid_t pid;
    int port;
    char dir[256];      /* temporary directory, removed by spoold_stop */
    char log_path[300];
    bool running;
} spoold;

/* Starts spoold with the standard flags plus the extra arguments, a
 * NULL-terminated list, e.g. spoold_start("--shards", "4", NULL). */
spoold *spoold_start(const char *arg, ...);
/* SIGTERM, wait for exit 0 (fails the test otherwise), remove the dir. */
void spoold_stop(spoold *s);
/* The same, but keeps s and its directory for spoold_restart(). */
void spoold_term(spoold *s);
/* Starts a stopped server again on the same data dir, with the standard
 * flags plus these extra arguments; the port may change. */
void spoold_restart(spoold *s, const char *arg, ...);
/* The same, for a start that may be refused: 0 = listening, otherwise the
 * exit status of the refused start (256 for a 0 exit, -N for signal N). */
int spoold_restart_may_fail(spoold *s, const char *arg, ...);
/* SIGKILL and reap; the directory is kept (for restart tests) until
 * spoold_destroy(). */
void spoold_kill9(spoold *s);
/* Frees s and removes its directory; kills the process if still running. */
void spoold_destroy(spoold *s);
/* The server log (caller frees); "" when there is none. */
char *spoold_log(const spoold *s);
/* Path of the spoold binary under test. */
const char *spoold_path(void);
/* True when that binary is built with AddressSanitizer or ThreadSanitizer
 * (it calls the sanitizer's start-up): it runs several times slower and
 * its allocator keeps freed memory. */
bool spoold_sanitized(void);

/* ---------------------------------------------------------------- client */

typedef struct cli cli;

cli *cli_connect(int port);          /* fails the test if it cannot connect */
cli *cli_try_connect(int port);      /* NULL on failure */
void cli_close(cli *c);              /* NULL is fine */
int cli_fd(const cli *c);

/* Sends one command (NULL-terminated C strings), does not wait. */
void cli_send(cli *c, const char *arg0, ...);
void cli_sendv(cli *c, int argc, const char *const *argv, const size_t *len);
void cli_send_raw(cli *c, const void *p, size_t n);
/* Sends, then reads the reply. */
resp_val *cli_cmd(cli *c, const char *arg0, ...);
resp_val *cli_cmdv(cli *c, int argc, const char *const *argv, const size_t *len);
/* Next reply; fails the test on timeout, EOF or a reply-protocol error. */
resp_val *cli_read(cli *c);
/* Next reply within timeout_ms: 1 = *out set, 0 = nothing yet, -1 = the
 * connection closed or broke. Never fails the test by itself. */
int cli_poll_reply(cli *c, int timeout_ms, resp_val **out);
/* Reads exactly strlen(expected) raw bytes and asserts they match. Only
 * valid when no parsed bytes are pending in the client. */
void cli_expect_raw(cli *c, const char *expected);
/* True when the server closes the connection within timeout_ms (any bytes
 * that arrive first are discarded). */
bool cli_wait_closed(cli *c, int timeout_ms);
/* Bytes received but not yet parsed into replies. */
size_t cli_pending(const cli *c);

/* Shorthands that append the NULL terminator. */
#define CMD(c, ...) cli_cmd((c), __VA_ARGS__, (const char *)NULL)
#define SEND(c, ...) cli_send((c), __VA_ARGS__, (const char *)NULL)

/* ------------------------------------------------------- reply checks */

/* Each takes ownership of v and frees it; a failure names the caller's
 * file and line. */
void expect_simple_at(const char *f, int l, resp_val *v, const char *s);
void expect_int_at(const char *f, int l, resp_val *v, long long n);
void expect_bulk_at(const char *f, int l, resp_val *v, const void *p, size_t n);
void expect_null_at(const char *f, int l, resp_val *v);
/* Error whose message (without '-') starts with prefix. */
void expect_error_at(const char *f, int l, resp_val *v, const char *prefix);
/* Array of bulk strings equal to the NULL-terminated list. */
void expect_bulks_at(const char *f, int l, resp_val *v, ...);
/* [key, elem] reply of BLPOP/BRPOP. */
void expect_pop_at(const char *f, int l, resp_val *v, const char *key, const char *elem);

#define expect_simple(v, s) expect_simple_at(__FILE__, __LINE__, (v), (s))
#define expect_ok(v) expect_simple_at(__FILE__, __LINE__, (v), "OK")
#define expect_int(v, n) expect_int_at(__FILE__, __LINE__, (v), (n))
#define expect_bulk(v, s) expect_bulk_at(__FILE__, __LINE__, (v), (s), strlen(s))
#define expect_bulk_n(v, p, n) expect_bulk_at(__FILE__, __LINE__, (v), (p), (n))
#define expect_null(v) expect_null_at(__FILE__, __LINE__, (v))
#define expect_error(v, p) expect_error_at(__FILE__, __LINE__, (v), (p))
#define expect_bulks(v, ...) expect_bulks_at(__FILE__, __LINE__, (v), __VA_ARGS__, (const char *)NULL)
#define expect_pop(v, k, e) expect_pop_at(__FILE__, __LINE__, (v), (k), (e))

/* Reply type name, for messages. */
const char *resp_type_name(resp_type t);
/* A one-line description of v for failure messages (static buffer). */
const char *resp_describe(const resp_val *v);

/* ------------------------------------------------------- server state */

/* Integer field from "INFO <section>" (e.g. "blocked_clients"); -1 when
 * absent. */
long long info_field(cli *c, const char *section, const char *field);
/* Polls INFO clients until blocked_clients == n or the deadline passes;
 * fails the test on timeout. */
void wait_blocked_clients(cli *c, long long n, int timeout_ms);
/* Polls INFO persistence until no reservation waits to be journaled
 * (reservations_unsaved:0, docs/operations.md); fails the test on timeout.
 * A write on the shard answered after it is on disk with them. */
void wait_reservations_saved(cli *c, int timeout_ms);
/* LLEN as a number. */
long long llen(cli *c, const char *key);

/* ---------------------------------------------------------------- time */

long long now_ms(void);
/* A fresh path for --http-port-file (the file itself is not there). */
void http_port_path(char path[64]);
/* The port spoold wrote into an --http-port-file (polled with a deadline;
 * the file is removed); fails the test when none comes. */
int http_port_from_file(const char *path);

/* ------------------------------------------------- reliable-job helpers */

/* A job id as JOB.PUSH returns it. */
typedef struct { char s[48]; } jid;
/* JOB.PUSH q payload [option value ...] NULL: asserts a 16-hex id. */
jid push_at(const char *f, int l, cli *cl, const char *q, const char *payload, ...);
#define PUSH(cl, q, p) push_at(__FILE__, __LINE__, (cl), (q), (p), (const char *)NULL)
#define PUSHO(cl, q, p, ...) push_at(__FILE__, __LINE__, (cl), (q), (p), __VA_ARGS__, (const char *)NULL)
/* A JOB.RESERVE NOWAIT FROM q that must find nothing (nil). */
void expect_nothing_at(const char *f, int l, cli *cl, const char *q);
#define EXPECT_NOTHING(cl, q) expect_nothing_at(__FILE__, __LINE__, (cl), (q))
/* QUEUE.STATS q, one field. */
long long stat_of(cli *cl, const char *q, const char *name);
/* JOB.GET id's state, "nil" when there is no such job (static buffer). */
const char *state_of(cli *cl, const char *id);
#define EXPECT_STATE(cl, id, s)                                                             \
    do {                                                                                    \
        const char *st_ = state_of((cl), (id));                                             \
        cr_assert_str_eq(st_, (s), "job %s: state %s, expected %s", (id), st_, (s));        \
    } while (0)
/* A one-word reply (simple or bulk string), e.g. JOB.NACK's retry/dead; frees v. */
void expect_word_at(const char *f, int l, resp_val *v, const char *w);
#define expect_word(v, w) expect_word_at(__FILE__, __LINE__, (v), (w))
/* No reply arrives on w within ms (a waiter stays blocked). */
void expect_no_reply_for(cli *w, int ms, const char *who);

/* The common suite fixture: a spoold with default settings and one
 * client connected to it; stop closes both and clears the pointers. */
void fixture_start(spoold **srv, cli **c);
void fixture_stop(spoold **srv, cli **c);
void sleep_ms(int ms); /* pause between polls only, never as the only wait */
/* Whether v is an error containing text (logged when not); frees v. */
bool error_has(resp_val *v, const char *text);
/* A key on another shard than key, found by asking spoold through c
 * (EVAL over both keys answers -CROSSSLOT). */
void other_shard_key(cli *c, const char *key, char *out, size_t n);

/* Polls cond every 5 ms until it is true; evaluates to whether it became
 * true before timeout_ms passed. */
#define wait_until(cond, timeout_ms)                                        \
    ({                                                                      \
        long long wu_deadline_ = now_ms() + (timeout_ms);                   \
        bool wu_ok_ = false;                                                \
        for (;;) {                                                          \
            if (cond) { wu_ok_ = true; break; }                             \
            if (now_ms() >= wu_deadline_) break;                            \
            sleep_ms(5);                                                    \
        }                                                                   \
        wu_ok_;                                                             \
    })

/* ------------------------------------------------------ child processes */

/* Runs argv (argv[0] is a path), captures stdout+stderr into *out (caller
 * frees), kills it after timeout_ms. Returns the exit status (0..255), or
 * -1 if it did not exit normally in time. */
int run_capture(char *const argv[], char **out, int timeout_ms);

/* ------------------------------------------------- records and fields */

/* Wall-clock Unix milliseconds (the clock spoold stamps jobs with). */
long long wall_ms(void);
/* The value of field `name` in a RESP3 map or a RESP2 flat field/value
 * array; NULL when the field is absent. Fails the test when v is neither. */
const resp_val *resp_field(const resp_val *v, const char *name);
/* Integer / string (bulk or simple) / nil field; each fails the test when
 * the field is missing or of another type. */
long long field_int_at(const char *f, int l, const resp_val *v, const char *name);
const char *field_str_at(const char *f, int l, const resp_val *v, const char *name);
void field_nil_at(const char *f, int l, const resp_val *v, const char *name);
/* Error whose message starts with prefix and contains part. Takes v. */
void expect_error_has_at(const char *f, int l, resp_val *v, const char *prefix, const char *part);
/* A scalar (simple, bulk, integer) as text in buf; fails the test for
 * other types. */
const char *resp_text_at(const char *f, int l, const resp_val *v, char *buf, size_t cap);

#define field_int(v, name) field_int_at(__FILE__, __LINE__, (v), (name))
#define field_str(v, name) field_str_at(__FILE__, __LINE__, (v), (name))
#define field_nil(v, name) field_nil_at(__FILE__, __LINE__, (v), (name))
#define expect_error_has(v, p, part) expect_error_has_at(__FILE__, __LINE__, (v), (p), (part))
#define resp_text(v, buf, cap) resp_text_at(__FILE__, __LINE__, (v), (buf), (cap))

#endif
