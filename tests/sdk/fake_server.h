/*
 * fake_server.h - a scripted RESP server for the libspool unit tests.
 *
 * A thread listens on 127.0.0.1 (ephemeral port) and plays a script: for
 * each step it reads exactly the expected request bytes (byte-exact
 * comparison, with a deadline), then writes the scripted reply, optionally
 * in small chunks with pauses between them so the client sees partial
 * reads. Steps can also close the connection (the next step then accepts a
 * new one) or hold the reply back (to provoke a client timeout).
 *
 * fake_finish() joins the thread and fails the test with a readable diff
 * when a request differed, did not come, or steps were left over.
 * Everything a test creates is freed by fake_finish().
 */
#ifndef SPOOL_TEST_FAKE_SERVER_H
#define SPOOL_TEST_FAKE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum fake_kind {
    FAKE_REPLY,   /* read expect, write reply */
    FAKE_CLOSE,   /* (optionally read expect, write reply), then close the connection */
    FAKE_SILENT,  /* read expect, reply nothing; wait until the client hangs up */
    FAKE_ACCEPT,  /* accept the next connection (after a CLOSE) */
    FAKE_LATE,    /* read expect, hold the reply FAKE_LATE_MS (a server that blocks), write it */
    FAKE_DOWN     /* as FAKE_CLOSE, and stop listening: the node is gone (connections refused) */
} fake_kind;

#define FAKE_LATE_MS 250

/* In an expected request, FAKE_HEX matches any one lowercase hex digit (a
 * random key); FAKE_KEY32 the 32 of an idempotency key as its bulk string. */
#define FAKE_HEX "\x01"
#define FAKE_HEX8 FAKE_HEX FAKE_HEX FAKE_HEX FAKE_HEX FAKE_HEX FAKE_HEX FAKE_HEX FAKE_HEX
#define FAKE_KEY32 "$32\r\n" FAKE_HEX8 FAKE_HEX8 FAKE_HEX8 FAKE_HEX8 "\r\n"

typedef struct fake_step {
    fake_kind kind;
    const char *expect; /* NULL: read nothing */
    const char *reply;  /* NULL: write nothing */
    int chunk;          /* 0: write the reply at once; n: n bytes at a time */
} fake_step;

typedef struct fake_server fake_server;

/* Starts the thread with steps[0..n) (the array must outlive the server).
 * The first connection is accepted before step 0. */
fake_server *fake_start(const fake_step *steps, size_t n);
int fake_port(const fake_server *f);
/* "spool://127.0.0.1:PORT" (static storage in f). */
const char *fake_url(const fake_server *f);
/* Waits (bounded) for the script to end, then checks it ran in full. */
void fake_finish(fake_server *f);
/* The same, and copies into wild what the FAKE_HEX places of the requests
 * matched, in order. */
void fake_finish_wild(fake_server *f, char *wild, size_t size);

/* The HELLO 3 request and a RESP3 reply to it, for scripts. */
#define FAKE_HELLO3 "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
#define FAKE_HELLO3_REPLY                                                           \
    "%3\r\n$6\r\nserver\r\n$5\r\nspool\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"          \
    "$5\r\nproto\r\n:3\r\n"
#define FAKE_HANDSHAKE { FAKE_REPLY, FAKE_HELLO3, FAKE_HELLO3_REPLY, 0 }

#endif
