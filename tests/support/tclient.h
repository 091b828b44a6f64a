/*
 * tclient.h - a small RESP client for load threads in integration tests.
 *
 * The harness client (harness.h) fails the test on a broken connection and
 * runs on the main thread only; a load thread instead treats a broken
 * connection as the end of its work (the server was killed or lost power).
 * One tconn per thread; nothing here is shared.
 */
#ifndef SPOOL_TEST_TCLIENT_H
#define SPOOL_TEST_TCLIENT_H

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

/* Connects to 127.0.0.1:port; NULL on failure. */
tconn *tc_connect(int port);
void tc_close(tconn *t); /* NULL is fine */
/* Sends one command and reads its reply: NULL when the connection broke
 * (or no reply came within TC_TIMEOUT_MS, then timed_out is set). The
 * caller frees the reply. */
resp_val *tc_cmdv(tconn *t, int argc, const char *const *argv);

#endif
