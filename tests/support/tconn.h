/*
 * tconn.h - a small blocking RESP client for test threads.
 *
 * The harness client (harness.h) fails the test on a broken connection and
 * runs on the test's main thread only; load threads in crash tests use this
 * one instead, where a broken connection is simply the end of a thread's
 * work (spoold was killed). Every read has a deadline (TC_TIMEOUT_MS).
 */
#ifndef SPOOL_TEST_TCONN_H
#define SPOOL_TEST_TCONN_H

#include <stdbool.h>
#include <stddef.h>

#include "resp.h"

#define TC_TIMEOUT_MS 30000 /* a reply slower than this counts as a hang */

typedef struct tconn {
    int fd;
    resp_reader *rd;
    char *in;
    size_t off, len, cap;
    bool timed_out; /* the last failure was a timeout, not a broken link */
} tconn;

/* NULL when the connection fails. */
tconn *tc_connect(int port);
void tc_close(tconn *t);
/* Sends one command and reads its reply: NULL when the connection broke
 * (or no reply came within TC_TIMEOUT_MS, then timed_out is set). The
 * caller frees the reply (resp_val_free). */
resp_val *tc_cmdv(tconn *t, int argc, const char *const *argv);
/* The same with NULL-terminated C string arguments. */
resp_val *tc_cmd(tconn *t, const char *arg0, ...);

#endif
