/*
 * resp.h - the RESP2/RESP3 wire code shared by spoold, libspool, the CLI,
 * the benchmarks and the tests.
 *
 * No sockets, no threads, no libevent: bytes in, commands/values out, and
 * bytes out. Every length read from the wire is checked against a limit
 * before anything is allocated for it, and no allocation made for a
 * not-yet-received bulk is larger than RESP_PREALLOC_MAX; buffers grow as
 * bytes actually arrive.
 *
 * Four pieces:
 *   resp_buf     a growable byte buffer (the encoder writes into it).
 *   resp_req_*   the server-side incremental request parser: multibulk
 *                arrays ("*2\r\n$4\r\nPING\r\n...") and inline commands
 *                ("PING\r\n", as typed in telnet / sent by redis-cli for
 *                some paths), fed in arbitrary chunks, even byte by byte.
 *   resp_add_*   the reply encoder, RESP2 or RESP3 per call; RESP3-only
 *                types are downgraded for RESP2 the way Redis does it.
 *   resp_val_*   the client-side incremental reply reader (a value tree),
 *                plus resp_add_command() to encode a request.
 *
 * Return codes: 0 or positive on success, negative on error (see below).
 */
#ifndef SPOOL_RESP_H
#define SPOOL_RESP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define RESP_PREALLOC_MAX (64u * 1024u)          /* largest speculative allocation */
#define RESP_DEFAULT_MAX_BULK (512ull * 1024 * 1024) /* proto-max-bulk-len, like Redis */
#define RESP_DEFAULT_MAX_ARGS (1024 * 1024)      /* arguments in one multibulk */
#define RESP_DEFAULT_MAX_INLINE (64u * 1024u)    /* inline command line length */
#define RESP_MAX_NESTING 32                      /* reply reader nesting depth */

/* ---------------------------------------------------------------- buffer */

typedef struct resp_buf {
    char *data;
    size_t len;
    size_t cap;
} resp_buf;
/* Once anything has been written, data[len] is a NUL (not counted in len),
 * so a buffer of text can be used as a C string. */

void resp_buf_init(resp_buf *b);
void resp_buf_free(resp_buf *b);           /* frees data, leaves b empty/reusable */
void resp_buf_reset(resp_buf *b);          /* len = 0, keeps capacity */
void resp_buf_append(resp_buf *b, const void *p, size_t n); /* aborts on OOM */
void resp_buf_printf(resp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them with free()); b is left empty. */
char *resp_buf_take(resp_buf *b, size_t *len);

/* --------------------------------------------------------- request parser */

typedef struct resp_limits {
    uint64_t max_bulk;   /* longest single argument */
    uint32_t max_args;   /* most arguments in one command */
    uint32_t max_inline; /* longest inline command line, and longest "*N"/"$N" header line */
    uint64_t max_request; /* request parser: all bulk arguments of one command
                             together, checked at each "$L" header before any
                             of it is read; 0 = no cap beyond max_args x max_bulk */
} resp_limits;

/* The defaults above. */
resp_limits resp_limits_default(void);

/* One parsed command. argv[i] is NUL-terminated (argv[i][len[i]] == 0) but may
 * contain NUL bytes before that; always use len[i]; argv[argc] is NULL.
 *
 * The whole command is one allocation, mem: the argument bytes (each with
 * its NUL), then the argv and len arrays. Free it with resp_cmd_free(); a
 * struct copy moves the ownership (zero the source). The arguments belong to
 * the block: code that keeps one beyond the command (a job's payload, a
 * stored value) copies it. A resp_cmd whose mem is NULL is a view into
 * another one (e.g. argv + 2) and owns nothing. */
typedef struct resp_cmd {
    int argc;
    char **argv;
    size_t *len;
    bool inline_form; /* came as an inline command */
    void *mem;        /* the one allocation (NULL for a view) */
} resp_cmd;

void resp_cmd_free(resp_cmd *c); /* frees mem, zeroes *c */
/* Builds *c as one block holding copies of argc arguments (len[i] bytes
 * each; len may be NULL for C strings). */
void resp_cmd_build(resp_cmd *c, int argc, const char *const *argv, const size_t *len);
/* A copy of src in a block of its own. */
void resp_cmd_copy(resp_cmd *dst, const resp_cmd *src);

typedef struct resp_req_parser resp_req_parser;

/* lim may be NULL for resp_limits_default(); the parser keeps a copy. */
resp_req_parser *resp_req_new(const resp_limits *lim);
void resp_req_free(resp_req_parser *p);
/* Limits may be changed between commands (e.g. tighter before AUTH). */
void resp_req_set_limits(resp_req_parser *p, const resp_limits *lim);

enum {
    RESP_OK = 1,    /* a whole command is in *out (caller owns it) */
    RESP_AGAIN = 0, /* all input consumed, need more bytes */
    RESP_EPROTO = -1 /* protocol error: resp_req_error() says what; the
                        parser is then dead and the connection should be
                        closed after sending that error */
};

/* Feeds bytes. *consumed is set to how many bytes of buf were used (the
 * parser keeps its own copy of partial state, so the caller may drop
 * consumed bytes at once). Returns RESP_OK with one command in *out (call
 * again with the rest of the input for the next one), RESP_AGAIN, or
 * RESP_EPROTO. Empty inline lines are skipped, as Redis does. */
/* *out is zeroed on entry, so resp_cmd_free(out) is always safe. */
int resp_req_feed(resp_req_parser *p, const char *buf, size_t len,
                  size_t *consumed, resp_cmd *out);

/* The reason for the last RESP_EPROTO, Redis style, without the "-ERR "
 * prefix, e.g. "Protocol error: invalid bulk length". */
/* The messages:
 *   "Protocol error: invalid multibulk length"   *N not a number, < -1, > max_args
 *   "Protocol error: invalid bulk length"        $L not a number, < 0, > max_bulk
 *   "Protocol error: expected '$', got 'X'"      an argument not starting with $
 *   "Protocol error: too big mbulk count string" *N line over max_inline
 *   "Protocol error: too big bulk count string"  $L line over max_inline
 *   "Protocol error: too big inline request"     inline line over max_inline, or
 *                                                more than max_args arguments, or
 *                                                one over max_bulk
 *   "Protocol error: unbalanced quotes in request"
 *   "Protocol error: bulk not followed by CRLF"  (spool's own; Redis skips 2 bytes)
 *   "Protocol error: request too big (over N bytes in all)"  the "$L" that
 *                                                would take the command's
 *                                                arguments over max_request
 * A header line must end in CRLF; a bare LF makes the number invalid. */
const char *resp_req_error(const resp_req_parser *p);

/* Bytes currently buffered inside the parser for a partial command. */
size_t resp_req_pending(const resp_req_parser *p);

/* ---------------------------------------------------------- reply encoder */

/* proto is 2 or 3. RESP3 types are mapped for RESP2 as Redis maps them:
 * null -> $-1 (null_array: *-1), map -> flat array of 2n, set/push -> array,
 * double -> bulk string, bool -> integer 1/0, verbatim -> bulk string. */
void resp_add_simple(resp_buf *b, const char *s);               /* +s */
void resp_add_error(resp_buf *b, const char *msg);              /* -msg (msg includes its prefix, e.g. "ERR ...") ; CR/LF in msg replaced by spaces */
/* proto 3 or more selects RESP3, anything else RESP2.
 * resp_add_error: a leading '-' in msg is not doubled. */
void resp_add_errorf(resp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same with a va_list, the message cut at RESP_ERROR_MAX - 1 bytes (so
 * an error that names a long key stays short): the broker's
 * conn_reply_error, conn_error_now and kvcmd_fail. */
#define RESP_ERROR_MAX 1024
void resp_add_verror(resp_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void resp_add_int(resp_buf *b, long long v);                    /* :v */
void resp_add_bulk(resp_buf *b, const void *p, size_t n);       /* $n */
void resp_add_cstr(resp_buf *b, const char *s);                 /* bulk of strlen(s) */
void resp_add_null(resp_buf *b, int proto);                     /* _ or $-1 */
void resp_add_null_array(resp_buf *b, int proto);               /* _ or *-1 */
void resp_add_array(resp_buf *b, size_t n);                     /* *n */
void resp_add_map(resp_buf *b, int proto, size_t npairs);       /* %n or *2n */
void resp_add_set(resp_buf *b, int proto, size_t n);            /* ~n or *n */
void resp_add_push(resp_buf *b, int proto, size_t n);           /* >n or *n */
void resp_add_double(resp_buf *b, int proto, double d);         /* ,d or bulk */
void resp_add_bool(resp_buf *b, int proto, bool v);             /* #t/#f or :1/:0 */
void resp_add_verbatim(resp_buf *b, int proto, const char *fmt3, const void *p, size_t n); /* =n+4\r\ntxt:... or bulk */
/* resp_add_double: "%.17g", or inf, -inf, nan. resp_add_verbatim: the first
 * 3 bytes of fmt3 ("txt", "mkd"); NULL or shorter means "txt". */

/* Client side: encodes argv as a multibulk request. */
void resp_add_command(resp_buf *b, int argc, const char *const *argv, const size_t *len);
/* Convenience: argv of C strings (lengths by strlen). */
void resp_add_commandv(resp_buf *b, int argc, const char *const *argv);

/* ---------------------------------------------------------- reply reader */

typedef enum resp_type {
    RESP_T_SIMPLE,   /* + */
    RESP_T_ERROR,    /* - (and RESP3 blob error !) */
    RESP_T_INT,      /* : */
    RESP_T_BULK,     /* $ (and RESP3 verbatim =, with the "txt:" prefix removed) */
    RESP_T_NULL,     /* _ , $-1, *-1 */
    RESP_T_ARRAY,    /* * */
    RESP_T_MAP,      /* % : elements holds 2*n values, key, value, ... */
    RESP_T_SET,      /* ~ */
    RESP_T_PUSH,     /* > */
    RESP_T_DOUBLE,   /* , */
    RESP_T_BOOL,     /* # */
    RESP_T_BIGNUM    /* ( kept as text in str */
} resp_type;

typedef struct resp_val {
    resp_type type;
    long long integer;   /* INT, BOOL (0/1) */
    double dbl;          /* DOUBLE */
    char *str;           /* SIMPLE, ERROR, BULK, BIGNUM: NUL-terminated */
    size_t len;          /* length of str */
    size_t n;            /* ARRAY, SET, PUSH: elements; MAP: 2 * pairs */
    struct resp_val **elem;
} resp_val;

void resp_val_free(resp_val *v); /* recursive; NULL is fine */

typedef struct resp_reader resp_reader;

/* Reader limits (lim may be NULL for the defaults): an aggregate count
 * (pairs for % and |) over max_args and a $ ! = length over max_bulk are
 * errors; + - ( lines may hold up to max_bulk bytes, every other line up to
 * max_inline; aggregates nest at most RESP_MAX_NESTING deep. Errors read
 * "Protocol error: ..." like the request parser's. */

resp_reader *resp_reader_new(const resp_limits *lim);
void resp_reader_free(resp_reader *r);
/* Same contract as resp_req_feed: returns RESP_OK with one whole reply in
 * *out (caller frees with resp_val_free), RESP_AGAIN, or RESP_EPROTO. RESP3
 * attribute frames (|) are read and dropped. */
int resp_reader_feed(resp_reader *r, const char *buf, size_t len,
                     size_t *consumed, resp_val **out);
const char *resp_reader_error(const resp_reader *r);

/* The value of one hex digit (0-9, a-f, A-F), or -1 for any other byte;
 * inline requests ("\x41") and job ids share it. */
int resp_hex_value(char c);

/* Strict decimal, like Redis's string2ll: optional '-', no '+', no spaces,
 * no leading zeros, no "-0", no overflow. 0 and *out set, or -1. The one
 * number parser of the parser, the broker's arguments and the SDK. */
int resp_parse_ll(const char *s, size_t n, long long *out);

/* Convenience for tests and the CLI: map lookup by key (MAP, or a flat
 * ARRAY of key/value pairs). Returns NULL when absent. */
const resp_val *resp_val_get(const resp_val *map, const char *key);

#endif
