/*
 * rawinfo.h - INFO (and BACKUP) over a connection of the CLI's own. libspool has no
 * call for INFO (nor a raw command call), so `spool info` opens one more
 * short-lived connection to the endpoint the SDK client resolved, with
 * proto/resp.h for the wire: AUTH when the URL carries a password, then
 * INFO [section], then close.
 */
#ifndef SPOOL_CLI_RAWINFO_H
#define SPOOL_CLI_RAWINFO_H

#include "resp.h"

#include <stddef.h>

/* endpoint: "host:port" or "[v6]:port"; url: for the password, may be
 * NULL. 0 with *text (caller frees), or -1 with the reason in err. */
int rawinfo_fetch(const char *endpoint, const char *url, const char *section, char **text,
                  char *err, size_t errlen);

/* The same for any command whose reply is text (bulk or simple string; an
 * integer comes back as its digits, a nil as "", a CONFIG GET of one
 * setting as its value):
 * `spool backup` sends BACKUP dir this way, with a longer timeout. */
int rawinfo_command(const char *endpoint, const char *url, int argc, const char *const *argv, int timeout_s,
                    char **text, char *err, size_t errlen);

/* A connection kept for many commands with binary arguments and replies
 * (spool cluster move-slots carries slot blobs): open (AUTH when url has a
 * password), call (lens: the arguments' lengths; *out the reply, caller
 * frees with resp_val_free; -1 with err when the connection failed),
 * close. NULL / -1 with the reason in err. */
struct rawconn;
struct rawconn *rawconn_open(const char *endpoint, const char *url, int timeout_s, char *err, size_t errlen);
int rawconn_call(struct rawconn *c, int argc, const char *const *argv, const size_t *lens, resp_val **out, char *err,
                 size_t errlen);
void rawconn_close(struct rawconn *c);
/* Pipelining: send several requests, then read their replies in order. */
int rawconn_send(struct rawconn *c, int argc, const char *const *argv, const size_t *lens, char *err, size_t errlen);
int rawconn_read(struct rawconn *c, resp_val **out, char *err, size_t errlen);

#endif
