/*
 * resp.c - RESP2/RESP3 wire code: a byte buffer, the server's incremental
 * request parser, the reply encoder and the client's incremental reply
 * reader. The API and its contracts are in resp.h.
 *
 * Threads: the module has no global state. Each object (resp_buf,
 * resp_req_parser, resp_reader) is used by one thread at a time; in spoold a
 * connection's parser lives on the I/O thread that owns the connection.
 *
 * Request parser. A small state machine:
 *
 *   START --'*'--> MB_COUNT --N > 0--> BULK_HDR --> BULK_DATA --> command
 *     |               |                   ^             |       (N args)
 *     |               | N is 0 or -1      +--more args--+
 *     |               +--> START (skipped, as Redis does)
 *     +--other byte--> INLINE --line--> command (an empty line is skipped)
 *
 * Whatever is partial when the input runs out stays in the parser: a header
 * or inline line in `line`, the finished arguments and the bulk being read
 * in `blk`. Every state needs at least one more byte to move on, so running
 * out of input always means RESP_AGAIN, and every check is made on bytes as
 * they arrive, whatever the chunking: the same bytes give the same commands
 * and the same error whether they come whole or one at a time.
 *
 * Cost: a command is one allocation (resp.h: argument bytes, then the argv
 * and len arrays). When the whole command is in the caller's buffer after
 * its "*N" line (the usual case), req_whole() reads its headers once,
 * checking them and noting where each argument lies (in `args`), and copies
 * every argument once into a block of exactly the command's size.
 * Otherwise the arguments are copied into `blk` as they arrive, the block
 * grown with grow_cap(), and trimmed to size at the end;
 * their places are kept in `args`, which stays allocated between commands.
 *
 * Memory: every length read from the wire is checked against the limits
 * before it is used. Buffers that wait for data (a bulk, the argv arrays,
 * the reader's element arrays) grow with grow_cap(), which never reserves
 * more than RESP_PREALLOC_MAX bytes, or half of what has arrived, beyond
 * what has arrived.
 *
 * Reply reader: the same line and bulk machinery plus a stack of at most
 * RESP_MAX_NESTING aggregates under construction. A finished value is
 * attached to the aggregate on top of the stack; an aggregate that becomes
 * full is finished in turn. Attribute frames (|) count their elements and
 * drop them, so the value after an attribute takes its place.
 *
 * Allocation failure: every allocation goes through xmalloc()/xrealloc()
 * (xalloc.h), which print a message and abort().
 */
#include "resp.h"
#include "xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESP_ERR_MAX 96 /* room for the longest error message */
#define GROW_MIN 16     /* smallest growth step, in units */

/* Results of the internal steps of both parsers. */
enum {
    STEP_ERR = -1,  /* protocol error, message recorded */
    STEP_AGAIN = 0, /* input used up */
    STEP_NEXT = 1,  /* progress made, go on */
    STEP_DONE = 2   /* a whole command or reply is ready */
};

/* ------------------------------------------------------------ allocation */

/*
 * New capacity, in units, for a buffer of `cap` units that must hold `need`
 * (need > cap) and will never need more than `limit`. It grows
 * geometrically, but never by more than `step` units or half of `need`
 * (whichever is more) beyond `need`: callers pick `step` so that this slack
 * stays within RESP_PREALLOC_MAX bytes. So what is allocated is at most
 * what has arrived plus the larger of RESP_PREALLOC_MAX and half of it, and
 * a buffer that fills up to n units is moved O(log n) times, not n / step
 * times (a 64 MB request fed in 32 KB reads was copied about a thousand
 * times, 32 GB of copying).
 */
static size_t grow_cap(size_t cap, size_t need, size_t limit, size_t step)
{
    size_t extra = cap < GROW_MIN ? GROW_MIN : cap;
    size_t most = step > need / 2 ? step : need / 2;
    size_t next;

    if (extra > most)
        extra = most;
    next = cap > SIZE_MAX - extra ? SIZE_MAX : cap + extra;
    if (next < need)
        next = need;
    if (next > limit)
        next = limit;
    return next;
}

/* ---------------------------------------------------------------- buffer */

void resp_buf_init(resp_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void resp_buf_free(resp_buf *b)
{
    free(b->data);
    resp_buf_init(b);
}

void resp_buf_reset(resp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes and the NUL kept after them; returns where
 * they go. Output buffers double: what is written is already in memory. */
static char *buf_space(resp_buf *b, size_t n)
{
    size_t need, cap;

    if (n >= SIZE_MAX - b->len)
        xalloc_oom(SIZE_MAX);
    need = b->len + n + 1;
    if (need > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

static void buf_commit(resp_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

void resp_buf_append(resp_buf *b, const void *p, size_t n)
{
    char *dst = buf_space(b, n);

    if (n)
        memcpy(dst, p, n);
    buf_commit(b, n);
}

static void buf_vprintf(resp_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void buf_vprintf(resp_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    size_t room;
    int n;

    buf_space(b, 0);
    room = b->cap - b->len;
    va_copy(again, ap);
    n = vsnprintf(b->data + b->len, room, fmt, again);
    va_end(again);
    if (n < 0) {
        fprintf(stderr, "spool: resp: cannot format \"%s\"\n", fmt);
        abort();
    }
    if ((size_t)n >= room) {
        buf_space(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    }
    buf_commit(b, (size_t)n);
}

void resp_buf_printf(resp_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *resp_buf_take(resp_buf *b, size_t *len)
{
    char *p;

    buf_space(b, 0);
    buf_commit(b, 0);
    p = b->data;
    if (len)
        *len = b->len;
    resp_buf_init(b);
    return p;
}

/* --------------------------------------------------------------- numbers */

int resp_parse_ll(const char *s, size_t n, long long *out)
{
    unsigned long long v = 0, lim = LLONG_MAX;
    bool neg = false;
    size_t i;

    if (n && s[0] == '-') {
        neg = true;
        lim = (unsigned long long)LLONG_MAX + 1;
        s++;
        n--;
    }
    if (n == 0)
        return -1;
    if (n == 1 && s[0] == '0' && !neg) {
        *out = 0;
        return 0;
    }
    if (s[0] < '1' || s[0] > '9')
        return -1;
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9 || v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (!neg)
        *out = (long long)v;
    else if (v == (unsigned long long)LLONG_MAX + 1)
        *out = LLONG_MIN;
    else
        *out = -(long long)v;
    return 0;
}

/* The number in a header line "<type><digits>\r" (the LF already cut). */
static int parse_header(const char *line, size_t n, long long *out)
{
    if (n < 2 || line[n - 1] != '\r')
        return -1;
    return resp_parse_ll(line + 1, n - 2, out);
}

/* Writes v in decimal at dst (room for 20 bytes); returns the length. */
static size_t fmt_ull(char *dst, unsigned long long v)
{
    char tmp[24];
    size_t n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        dst[len++] = tmp[--n];
    return len;
}

/* ------------------------------------------------------------ line input */

/* A line that arrived split across calls, without its LF. */
typedef struct line_acc {
    char *data;
    size_t len;
    size_t cap;
} line_acc;

enum { LINE_TOOLONG = -1, LINE_AGAIN = 0, LINE_DONE = 1 };

static void acc_append(line_acc *a, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (a->len + n > a->cap) {
        a->cap = grow_cap(a->cap, a->len + n, SIZE_MAX, RESP_PREALLOC_MAX);
        a->data = xrealloc(a->data, a->cap);
    }
    memcpy(a->data + a->len, s, n);
    a->len += n;
}

static void acc_free(line_acc *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

/*
 * Reads up to and including the next LF. On LINE_DONE, *line and *n are the
 * line without its LF (a CR before the LF is left in: callers decide), and
 * point into buf when the whole line was there, else into the accumulator,
 * which the caller empties (a->len = 0) once done with the line.
 *
 * The content of a line is what precedes its CRLF or LF; more than `max`
 * bytes of content is LINE_TOOLONG. A trailing CR of a partial line does not
 * count yet, since it may be half of the CRLF: the content seen so far never
 * exceeds the final content, so a line is refused only when it is really
 * too long, and at the latest when its LF arrives.
 */
static int line_read(line_acc *a, const char *buf, size_t len, size_t *pos,
                     size_t max, const char **line, size_t *n)
{
    const char *s = buf + *pos;
    size_t avail = len - *pos;
    const char *nl = memchr(s, '\n', avail);
    size_t part = nl ? (size_t)(nl - s) : avail;
    size_t total = a->len + part;
    char last = part ? s[part - 1] : a->len ? a->data[a->len - 1] : '\0';
    size_t content = total && last == '\r' ? total - 1 : total;

    if (content > max)
        return LINE_TOOLONG;
    if (!nl) {
        acc_append(a, s, avail);
        *pos = len;
        return LINE_AGAIN;
    }
    *pos += part + 1;
    if (a->len == 0) {
        *line = s;
        *n = part;
        return LINE_DONE;
    }
    acc_append(a, s, part);
    *line = a->data;
    *n = a->len;
    return LINE_DONE;
}

/* ------------------------------------------------------------ bulk input */

/* A bulk payload of known length and the CRLF after it. */
typedef struct bulk_acc {
    char *data;   /* total + 1 bytes once complete, NUL-terminated */
    size_t total; /* announced length */
    size_t have;  /* payload bytes received */
    size_t cap;
    unsigned crlf; /* bytes of the trailing CRLF seen (0..2) */
} bulk_acc;

enum { BULK_BADEND = -1, BULK_AGAIN = 0, BULK_DONE = 1 };

static void bulk_begin(bulk_acc *b, size_t total)
{
    memset(b, 0, sizeof *b);
    b->total = total;
}

static void bulk_free(bulk_acc *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Checks the CRLF after the payload, one byte at a time as bytes arrive. */
static int bulk_crlf(bulk_acc *b, const char *buf, size_t len, size_t *pos)
{
    while (*pos < len && b->crlf < 2) {
        if (buf[*pos] != (b->crlf == 0 ? '\r' : '\n'))
            return BULK_BADEND;
        b->crlf++;
        (*pos)++;
    }
    return b->crlf == 2 ? BULK_DONE : BULK_AGAIN;
}

/*
 * Reads payload and CRLF. On BULK_DONE b->data holds total bytes plus a NUL
 * and belongs to the caller, who then starts over with bulk_begin(). A whole
 * bulk in buf is copied once into an exact allocation; a split one is
 * copied as it comes into a buffer grown with grow_cap().
 */
static int bulk_read(bulk_acc *b, const char *buf, size_t len, size_t *pos)
{
    size_t avail = len - *pos, take;
    int rc;

    if (b->have == 0 && b->crlf == 0 && avail >= 2 && avail - 2 >= b->total) {
        const char *end = buf + *pos + b->total;

        if (end[0] != '\r' || end[1] != '\n')
            return BULK_BADEND;
        b->data = xmemdup(buf + *pos, b->total);
        b->have = b->total;
        b->crlf = 2;
        *pos += b->total + 2;
        return BULK_DONE;
    }
    take = b->total - b->have < avail ? b->total - b->have : avail;
    if (take) {
        if (b->have + take + 1 > b->cap) {
            b->cap = grow_cap(b->cap, b->have + take + 1, b->total + 1,
                              RESP_PREALLOC_MAX);
            b->data = xrealloc(b->data, b->cap);
        }
        memcpy(b->data + b->have, buf + *pos, take);
        b->have += take;
        *pos += take;
    }
    if (b->have < b->total)
        return BULK_AGAIN;
    rc = bulk_crlf(b, buf, len, pos);
    if (rc != BULK_DONE)
        return rc;
    if (!b->data)
        b->data = xmalloc(1);
    b->data[b->total] = '\0';
    return BULK_DONE;
}

/* -------------------------------------------------------- command blocks */

/*
 * A command is one allocation (resp.h): the argument bytes, each followed by
 * its NUL, packed from offset 0; then, at the next multiple of CMD_ALIGN,
 * argv (argc + 1 pointers, the last NULL) and len (argc sizes).
 */
#define CMD_ALIGN (sizeof(void *) > sizeof(size_t) ? sizeof(void *) : sizeof(size_t))

static size_t cmd_arrays_at(size_t bytes)
{
    return (bytes + CMD_ALIGN - 1) / CMD_ALIGN * CMD_ALIGN;
}

/* Size of the block of a command of argc arguments taking `bytes` bytes
 * (their NULs included). */
static size_t cmd_block_size(size_t bytes, size_t argc)
{
    size_t per = sizeof(char *) + sizeof(size_t), at;

    if (bytes > SIZE_MAX - CMD_ALIGN)
        xalloc_oom(SIZE_MAX);
    at = cmd_arrays_at(bytes);
    if (argc > (SIZE_MAX - at - sizeof(char *)) / per)
        xalloc_oom(SIZE_MAX);
    return at + argc * per + sizeof(char *);
}

/* Makes *c the command of block mem: its arrays after `bytes` bytes of
 * arguments; the caller fills argv[0..argc) and len[0..argc). */
static void cmd_layout(resp_cmd *c, char *mem, size_t bytes, int argc)
{
    memset(c, 0, sizeof *c);
    c->mem = mem;
    c->argc = argc;
    c->argv = (char **)(void *)(mem + cmd_arrays_at(bytes));
    c->len = (size_t *)(void *)(c->argv + argc + 1);
    c->argv[argc] = NULL;
}

void resp_cmd_free(resp_cmd *c)
{
    free(c->mem);
    memset(c, 0, sizeof *c);
}

static size_t arg_len(const char *const *argv, const size_t *len, int i)
{
    return len ? len[i] : strlen(argv[i]);
}

void resp_cmd_build(resp_cmd *c, int argc, const char *const *argv, const size_t *len)
{
    size_t bytes = 0, off = 0;
    char *mem;
    int i;

    if (argc < 0)
        argc = 0;
    for (i = 0; i < argc; i++) {
        size_t n = arg_len(argv, len, i);

        if (n >= SIZE_MAX - bytes)
            xalloc_oom(SIZE_MAX);
        bytes += n + 1;
    }
    mem = xmalloc(cmd_block_size(bytes, (size_t)argc));
    cmd_layout(c, mem, bytes, argc);
    for (i = 0; i < argc; i++) {
        size_t n = arg_len(argv, len, i);

        if (n)
            memcpy(mem + off, argv[i], n);
        mem[off + n] = '\0';
        c->argv[i] = mem + off;
        c->len[i] = n;
        off += n + 1;
    }
}

void resp_cmd_copy(resp_cmd *dst, const resp_cmd *src)
{
    resp_cmd_build(dst, src->argc, (const char *const *)src->argv, src->len);
    dst->inline_form = src->inline_form;
}

/* -------------------------------------------------------- request parser */

#define ERR_MB_LEN "Protocol error: invalid multibulk length"
#define ERR_BULK_LEN "Protocol error: invalid bulk length"
#define ERR_INLINE_BIG "Protocol error: too big inline request"
#define ERR_MB_BIG "Protocol error: too big mbulk count string"
#define ERR_BULK_BIG "Protocol error: too big bulk count string"
#define ERR_QUOTES "Protocol error: unbalanced quotes in request"
#define ERR_BULK_END "Protocol error: bulk not followed by CRLF"

/* Where a finished argument lies in the block being built. */
struct req_arg {
    size_t off;
    size_t len;
};

/* The argument records grow by at most this many entries beyond the
 * arguments received; up to ARGS_KEEP of them stay allocated between
 * commands, so the usual command allocates nothing for them. */
#define ARGS_STEP (RESP_PREALLOC_MAX / sizeof(struct req_arg))
#define ARGS_KEEP 64

enum req_state { RQ_START, RQ_MB_COUNT, RQ_BULK_HDR, RQ_BULK_DATA, RQ_INLINE, RQ_DEAD };

struct resp_req_parser {
    resp_limits lim;
    enum req_state state;
    line_acc line;   /* partial header or inline line */
    bulk_acc bulk;   /* counts of the bulk being read (its bytes go into blk) */
    char *blk;       /* the block of the command being read: its arguments' bytes */
    size_t used;     /* bytes of the finished arguments in blk, NULs included */
    size_t cap;      /* bytes allocated at blk */
    struct req_arg *args; /* the finished arguments */
    size_t args_cap;
    int argc;        /* finished arguments */
    size_t nargs;    /* arguments announced by "*N" */
    size_t held;     /* bytes in the finished arguments */
    char err[RESP_ERR_MAX];
};

resp_limits resp_limits_default(void)
{
    resp_limits lim = {
        .max_bulk = RESP_DEFAULT_MAX_BULK,
        .max_args = RESP_DEFAULT_MAX_ARGS,
        .max_inline = RESP_DEFAULT_MAX_INLINE,
    };

    return lim;
}

resp_req_parser *resp_req_new(const resp_limits *lim)
{
    resp_req_parser *p = xmalloc(sizeof *p);

    memset(p, 0, sizeof *p);
    p->lim = lim ? *lim : resp_limits_default();
    p->state = RQ_START;
    return p;
}

void resp_req_free(resp_req_parser *p)
{
    if (!p)
        return;
    free(p->blk);
    free(p->args);
    acc_free(&p->line);
    bulk_free(&p->bulk);
    free(p);
}

void resp_req_set_limits(resp_req_parser *p, const resp_limits *lim)
{
    p->lim = lim ? *lim : resp_limits_default();
}

const char *resp_req_error(const resp_req_parser *p)
{
    return p->err;
}

size_t resp_req_pending(const resp_req_parser *p)
{
    return p->line.len + p->bulk.have + p->held;
}

static int req_fail(resp_req_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int req_fail(resp_req_parser *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->state = RQ_DEAD;
    return STEP_ERR;
}

/* Most arguments a command may have; argc is an int. */
static size_t req_max_args(const resp_req_parser *p)
{
    return p->lim.max_args < INT_MAX ? p->lim.max_args : INT_MAX;
}

/* Makes the block hold at least need bytes; need never counts more than the
 * bytes that have arrived and a NUL, and grow_cap() keeps the slack within
 * RESP_PREALLOC_MAX or half of need. */
static void req_reserve(resp_req_parser *p, size_t need)
{
    if (need <= p->cap)
        return;
    p->cap = grow_cap(p->cap, need, SIZE_MAX, RESP_PREALLOC_MAX);
    p->blk = xrealloc(p->blk, p->cap);
}

/* Makes room for argument record i (i arguments have arrived whole), the
 * records never more than `limit`. */
static void req_args_room(resp_req_parser *p, size_t i, size_t limit)
{
    if (i < p->args_cap)
        return;
    p->args_cap = grow_cap(p->args_cap, i + 1, limit, ARGS_STEP);
    p->args = xrealloc(p->args, p->args_cap * sizeof *p->args);
}

/* Records the argument of n bytes at blk + off (its NUL written). */
static void req_add_arg(resp_req_parser *p, size_t off, size_t n, size_t limit)
{
    req_args_room(p, (size_t)p->argc, limit);
    p->args[p->argc].off = off;
    p->args[p->argc].len = n;
    p->argc++;
    p->used = off + n + 1;
    p->held += n;
}

/* Forgets the finished arguments and waits for the next command. A block
 * not handed out (an empty inline line) is kept for it. */
static void req_restart(resp_req_parser *p)
{
    p->argc = 0;
    p->used = 0;
    p->held = 0;
    p->state = RQ_START;
    if (p->args_cap > ARGS_KEEP) {
        free(p->args);
        p->args = NULL;
        p->args_cap = 0;
    }
}

/* Hands the finished command to the caller: the block trimmed (or grown)
 * to its exact size, its arrays filled in. */
static int req_emit(resp_req_parser *p, bool inline_form, resp_cmd *out)
{
    size_t size = cmd_block_size(p->used, (size_t)p->argc);
    int i;

    if (size != p->cap)
        p->blk = xrealloc(p->blk, size);
    cmd_layout(out, p->blk, p->used, p->argc);
    for (i = 0; i < p->argc; i++) {
        out->argv[i] = p->blk + p->args[i].off;
        out->len[i] = p->args[i].len;
    }
    out->inline_form = inline_form;
    p->blk = NULL;
    p->cap = 0;
    req_restart(p);
    return STEP_DONE;
}

/*
 * One "$L\r\n" + L bytes + "\r\n" at buf + *q, checked as req_bulk_hdr()
 * and req_bulk_data() check it, with *held the bytes of the arguments
 * before it. True, with *n = L and *q past it, when it is whole and valid.
 */
static bool whole_arg(const resp_req_parser *p, const char *buf, size_t len, size_t *q,
                      size_t *n, uint64_t *held)
{
    const char *s = buf + *q, *nl;
    size_t avail = len - *q, window = (size_t)p->lim.max_inline + 2, hl;
    long long blen;

    if (avail == 0 || s[0] != '$')
        return false;
    nl = memchr(s, '\n', avail < window ? avail : window);
    if (!nl)
        return false;
    hl = (size_t)(nl - s);
    if (parse_header(s, hl, &blen) < 0 || blen < 0 || (uint64_t)blen > p->lim.max_bulk)
        return false;
    if (p->lim.max_request && *held + (uint64_t)blen > p->lim.max_request)
        return false;
    avail -= hl + 1;
    if ((unsigned long long)blen > avail || avail - (size_t)blen < 2)
        return false;
    if (nl[1 + blen] != '\r' || nl[2 + blen] != '\n')
        return false;
    *held += (uint64_t)blen;
    *n = (size_t)blen;
    *q += hl + 1 + (size_t)blen + 2;
    return true;
}

/*
 * The usual case: after its "*N" line, the whole command is in buf. One
 * pass checks every argument's header and records where its bytes lie in
 * buf (in `args`, here offsets into buf, not into a block), then they are
 * copied into one block of exactly the command's size. False, with no
 * argument taken, when any part is missing or wrong: the state machine then
 * reads the bytes as they come and reports an error where it finds it, as
 * for any chunking.
 */
static bool req_whole(resp_req_parser *p, const char *buf, size_t len, size_t *pos,
                      resp_cmd *out)
{
    size_t bytes = 0, q = *pos, n, off = 0, i;
    uint64_t held = 0;
    char *mem;

    for (i = 0; i < p->nargs; i++) {
        if (!whole_arg(p, buf, len, &q, &n, &held))
            return false;
        req_args_room(p, i, p->nargs);
        p->args[i].off = q - n - 2;
        p->args[i].len = n;
        bytes += n + 1;
    }
    mem = xmalloc(cmd_block_size(bytes, p->nargs));
    cmd_layout(out, mem, bytes, (int)p->nargs);
    for (i = 0; i < p->nargs; i++) {
        n = p->args[i].len;
        memcpy(mem + off, buf + p->args[i].off, n);
        mem[off + n] = '\0';
        out->argv[i] = mem + off;
        out->len[i] = n;
        off += n + 1;
    }
    *pos = q;
    req_restart(p);
    return true;
}

/* "*N\r\n" */
static int req_mb_count(resp_req_parser *p, const char *buf, size_t len, size_t *pos,
                        resp_cmd *out)
{
    const char *line;
    size_t n;
    long long count;
    int rc = line_read(&p->line, buf, len, pos, p->lim.max_inline, &line, &n);

    if (rc == LINE_TOOLONG)
        return req_fail(p, ERR_MB_BIG);
    if (rc == LINE_AGAIN)
        return STEP_AGAIN;
    rc = parse_header(line, n, &count);
    p->line.len = 0;
    if (rc < 0 || count < -1 || (count > 0 && (unsigned long long)count > req_max_args(p)))
        return req_fail(p, ERR_MB_LEN);
    if (count <= 0) {
        p->state = RQ_START;
        return STEP_NEXT;
    }
    p->nargs = (size_t)count;
    if (req_whole(p, buf, len, pos, out))
        return STEP_DONE;
    p->state = RQ_BULK_HDR;
    return STEP_NEXT;
}

/* "$L\r\n" */
static int req_bulk_hdr(resp_req_parser *p, const char *buf, size_t len, size_t *pos)
{
    const char *line;
    size_t n;
    long long blen;
    int rc;

    if (p->line.len == 0 && buf[*pos] != '$')
        return req_fail(p, "Protocol error: expected '$', got '%c'", buf[*pos]);
    rc = line_read(&p->line, buf, len, pos, p->lim.max_inline, &line, &n);
    if (rc == LINE_TOOLONG)
        return req_fail(p, ERR_BULK_BIG);
    if (rc == LINE_AGAIN)
        return STEP_AGAIN;
    rc = parse_header(line, n, &blen);
    p->line.len = 0;
    if (rc < 0 || blen < 0 || (unsigned long long)blen > p->lim.max_bulk ||
        (unsigned long long)blen > SIZE_MAX - 2)
        return req_fail(p, ERR_BULK_LEN);
    if (p->lim.max_request && (uint64_t)p->held + (uint64_t)blen > p->lim.max_request)
        return req_fail(p, "Protocol error: request too big (over %llu bytes in all)",
                        (unsigned long long)p->lim.max_request);
    bulk_begin(&p->bulk, (size_t)blen);
    p->state = RQ_BULK_DATA;
    return STEP_NEXT;
}

/* Payload and CRLF of one argument, copied into the block as they arrive. */
static int req_bulk_data(resp_req_parser *p, const char *buf, size_t len, size_t *pos,
                         resp_cmd *out)
{
    bulk_acc *b = &p->bulk;
    size_t avail = len - *pos;
    size_t take = b->total - b->have < avail ? b->total - b->have : avail;
    int rc;

    if (take) {
        req_reserve(p, p->used + b->have + take + 1);
        memcpy(p->blk + p->used + b->have, buf + *pos, take);
        b->have += take;
        *pos += take;
    }
    if (b->have < b->total)
        return STEP_AGAIN;
    rc = bulk_crlf(b, buf, len, pos);
    if (rc == BULK_BADEND)
        return req_fail(p, ERR_BULK_END);
    if (rc == BULK_AGAIN)
        return STEP_AGAIN;
    req_reserve(p, p->used + b->total + 1);
    p->blk[p->used + b->total] = '\0';
    req_add_arg(p, p->used, b->total, p->nargs);
    bulk_begin(b, 0);
    if ((size_t)p->argc == p->nargs)
        return req_emit(p, false, out);
    p->state = RQ_BULK_HDR;
    return STEP_NEXT;
}

/* ------------------------------------------------- inline command splitting */

/* isspace() in the C locale: skipped between arguments. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Ends an unquoted argument (Redis's sdssplitargs does not end one at \v or \f). */
static bool ends_word(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int resp_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The quote closing the section opened at q, or NULL. A backslash hides the
 * next byte in double quotes, and only a single quote in single quotes. */
static const char *find_close(const char *q, const char *end)
{
    const char *s;

    for (s = q + 1; s < end; s++) {
        if (*s == '\\' && s + 1 < end && (*q == '"' || s[1] == '\''))
            s++;
        else if (*s == *q)
            return s;
    }
    return NULL;
}

/* Decodes the inside of a quoted section [s, close) into d; returns the
 * number of bytes written (never more than close - s). */
static size_t unquote(char quote, const char *s, const char *close, char *d)
{
    char *start = d;

    while (s < close) {
        if (*s != '\\' || s + 1 == close) {
            *d++ = *s++;
        } else if (quote == '\'') {
            *d++ = s[1] == '\'' ? '\'' : '\\';
            s += s[1] == '\'' ? 2 : 1;
        } else if (s[1] == 'x' && s + 3 < close && resp_hex_value(s[2]) >= 0 && resp_hex_value(s[3]) >= 0) {
            *d++ = (char)(resp_hex_value(s[2]) * 16 + resp_hex_value(s[3]));
            s += 4;
        } else {
            switch (s[1]) {
            case 'n': *d++ = '\n'; break;
            case 'r': *d++ = '\r'; break;
            case 't': *d++ = '\t'; break;
            case 'b': *d++ = '\b'; break;
            case 'a': *d++ = '\a'; break;
            default: *d++ = s[1]; break;
            }
            s += 2;
        }
    }
    return (size_t)(d - start);
}

/*
 * One argument starting at *sp (not a blank): unquoted bytes, optionally
 * followed by one quoted section that must end the argument (be followed by
 * a blank or the end of the line), as in Redis's sdssplitargs. Decodes it
 * to d (never more bytes than it spans in the line) and returns 0 with its
 * length in *outlen, or -1 on unbalanced quotes.
 */
static int inline_arg(const char **sp, const char *end, char *d, size_t *outlen)
{
    const char *s = *sp, *q = s, *close;
    size_t plain;

    while (q < end && !ends_word(*q) && *q != '"' && *q != '\'')
        q++;
    plain = (size_t)(q - s);
    memcpy(d, s, plain);
    if (q == end || ends_word(*q)) {
        *outlen = plain;
        *sp = q;
        return 0;
    }
    close = find_close(q, end);
    if (!close || (close + 1 < end && !is_blank(close[1])))
        return -1;
    *outlen = plain + unquote(*q, q + 1, close, d + plain);
    *sp = close + 1;
    return 0;
}

/* Splits an inline line (without its CRLF) into the block. Like Redis, the
 * line ends at a NUL byte. An argument decodes to at most the bytes it
 * spans and is followed by a blank or the end, so n + 1 bytes hold all of
 * them with their NULs. */
static int inline_split(resp_req_parser *p, const char *s, size_t n)
{
    const char *end = n ? memchr(s, '\0', n) : NULL;
    size_t max = req_max_args(p);

    if (!end)
        end = s + n;
    for (;;) {
        char *d;
        size_t alen;

        while (s < end && is_blank(*s))
            s++;
        if (s == end)
            return 0;
        req_reserve(p, n + 1); /* once: a blank line allocates nothing */
        d = p->blk + p->used;
        if (inline_arg(&s, end, d, &alen) < 0)
            return req_fail(p, ERR_QUOTES);
        if ((size_t)p->argc >= max || alen > p->lim.max_bulk)
            return req_fail(p, ERR_INLINE_BIG);
        d[alen] = '\0';
        req_add_arg(p, p->used, alen, max);
    }
}

/* A whole inline line. */
static int req_inline(resp_req_parser *p, const char *buf, size_t len, size_t *pos,
                      resp_cmd *out)
{
    const char *line;
    size_t n;
    int rc = line_read(&p->line, buf, len, pos, p->lim.max_inline, &line, &n);

    if (rc == LINE_TOOLONG)
        return req_fail(p, ERR_INLINE_BIG);
    if (rc == LINE_AGAIN)
        return STEP_AGAIN;
    if (n && line[n - 1] == '\r')
        n--;
    rc = inline_split(p, line, n);
    p->line.len = 0;
    if (rc < 0)
        return rc;
    if (p->argc == 0) {
        req_restart(p);
        return STEP_NEXT;
    }
    return req_emit(p, true, out);
}

/* ------------------------------------------------------ request feed loop */

static int req_step(resp_req_parser *p, const char *buf, size_t len, size_t *pos,
                    resp_cmd *out)
{
    switch (p->state) {
    case RQ_START:
        p->state = buf[*pos] == '*' ? RQ_MB_COUNT : RQ_INLINE;
        return STEP_NEXT;
    case RQ_MB_COUNT:
        return req_mb_count(p, buf, len, pos, out);
    case RQ_BULK_HDR:
        return req_bulk_hdr(p, buf, len, pos);
    case RQ_BULK_DATA:
        return req_bulk_data(p, buf, len, pos, out);
    case RQ_INLINE:
        return req_inline(p, buf, len, pos, out);
    case RQ_DEAD:
        break;
    }
    return STEP_ERR;
}

int resp_req_feed(resp_req_parser *p, const char *buf, size_t len,
                  size_t *consumed, resp_cmd *out)
{
    size_t pos = 0;
    int rc = STEP_NEXT;

    memset(out, 0, sizeof *out);
    while (rc == STEP_NEXT) {
        if (p->state == RQ_DEAD)
            rc = STEP_ERR;
        else if (pos == len)
            rc = STEP_AGAIN;
        else
            rc = req_step(p, buf, len, &pos, out);
    }
    *consumed = pos;
    if (rc == STEP_DONE)
        return RESP_OK;
    return rc == STEP_AGAIN ? RESP_AGAIN : RESP_EPROTO;
}

/* ---------------------------------------------------------- reply encoder */

/* "<type><v>\r\n" */
static void add_header(resp_buf *b, char type, bool neg, unsigned long long v)
{
    char *d = buf_space(b, 24);
    size_t n = 0;

    d[n++] = type;
    if (neg)
        d[n++] = '-';
    n += fmt_ull(d + n, v);
    d[n++] = '\r';
    d[n++] = '\n';
    buf_commit(b, n);
}

static void add_header_ll(resp_buf *b, char type, long long v)
{
    if (v < 0)
        add_header(b, type, true, 0ULL - (unsigned long long)v);
    else
        add_header(b, type, false, (unsigned long long)v);
}

static void add_crlf(resp_buf *b)
{
    resp_buf_append(b, "\r\n", 2);
}

static bool is_resp3(int proto)
{
    return proto >= 3;
}

void resp_add_simple(resp_buf *b, const char *s)
{
    size_t n = strlen(s);
    char *d = buf_space(b, n + 3);

    d[0] = '+';
    memcpy(d + 1, s, n);
    memcpy(d + 1 + n, "\r\n", 2);
    buf_commit(b, n + 3);
}

void resp_add_error(resp_buf *b, const char *msg)
{
    size_t n, i;
    char *d;

    if (msg[0] == '-')
        msg++;
    n = strlen(msg);
    d = buf_space(b, n + 3);
    d[0] = '-';
    for (i = 0; i < n; i++)
        d[1 + i] = msg[i] == '\r' || msg[i] == '\n' ? ' ' : msg[i];
    memcpy(d + 1 + n, "\r\n", 2);
    buf_commit(b, n + 3);
}

void resp_add_errorf(resp_buf *b, const char *fmt, ...)
{
    resp_buf tmp;
    va_list ap;

    resp_buf_init(&tmp);
    va_start(ap, fmt);
    buf_vprintf(&tmp, fmt, ap);
    va_end(ap);
    resp_add_error(b, tmp.data);
    resp_buf_free(&tmp);
}

void resp_add_verror(resp_buf *b, const char *fmt, va_list ap)
{
    char msg[RESP_ERROR_MAX];

    vsnprintf(msg, sizeof msg, fmt, ap);
    resp_add_error(b, msg);
}

void resp_add_int(resp_buf *b, long long v)
{
    add_header_ll(b, ':', v);
}

void resp_add_bulk(resp_buf *b, const void *p, size_t n)
{
    char *d;

    add_header(b, '$', false, n);
    d = buf_space(b, n + 2);
    if (n)
        memcpy(d, p, n);
    memcpy(d + n, "\r\n", 2);
    buf_commit(b, n + 2);
}

void resp_add_cstr(resp_buf *b, const char *s)
{
    resp_add_bulk(b, s, strlen(s));
}

void resp_add_null(resp_buf *b, int proto)
{
    if (is_resp3(proto))
        resp_buf_append(b, "_\r\n", 3);
    else
        resp_buf_append(b, "$-1\r\n", 5);
}

void resp_add_null_array(resp_buf *b, int proto)
{
    if (is_resp3(proto))
        resp_buf_append(b, "_\r\n", 3);
    else
        resp_buf_append(b, "*-1\r\n", 5);
}

void resp_add_array(resp_buf *b, size_t n)
{
    add_header(b, '*', false, n);
}

void resp_add_map(resp_buf *b, int proto, size_t npairs)
{
    if (is_resp3(proto))
        add_header(b, '%', false, npairs);
    else
        add_header(b, '*', false, 2 * (unsigned long long)npairs);
}

void resp_add_set(resp_buf *b, int proto, size_t n)
{
    add_header(b, is_resp3(proto) ? '~' : '*', false, n);
}

void resp_add_push(resp_buf *b, int proto, size_t n)
{
    add_header(b, is_resp3(proto) ? '>' : '*', false, n);
}

void resp_add_double(resp_buf *b, int proto, double d)
{
    char txt[64];
    int n;

    if (isnan(d))
        n = snprintf(txt, sizeof txt, "nan");
    else if (isinf(d))
        n = snprintf(txt, sizeof txt, "%s", d > 0 ? "inf" : "-inf");
    else
        n = snprintf(txt, sizeof txt, "%.17g", d);
    if (!is_resp3(proto)) {
        resp_add_bulk(b, txt, (size_t)n);
        return;
    }
    resp_buf_append(b, ",", 1);
    resp_buf_append(b, txt, (size_t)n);
    add_crlf(b);
}

void resp_add_bool(resp_buf *b, int proto, bool v)
{
    if (is_resp3(proto))
        resp_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
    else
        resp_buf_append(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void resp_add_verbatim(resp_buf *b, int proto, const char *fmt3, const void *p, size_t n)
{
    char *d;

    if (!is_resp3(proto)) {
        resp_add_bulk(b, p, n);
        return;
    }
    if (!fmt3 || strlen(fmt3) < 3)
        fmt3 = "txt";
    add_header(b, '=', false, (unsigned long long)n + 4);
    d = buf_space(b, n + 6);
    memcpy(d, fmt3, 3);
    d[3] = ':';
    if (n)
        memcpy(d + 4, p, n);
    memcpy(d + 4 + n, "\r\n", 2);
    buf_commit(b, n + 6);
}

void resp_add_command(resp_buf *b, int argc, const char *const *argv, const size_t *len)
{
    int i;

    resp_add_array(b, argc > 0 ? (size_t)argc : 0);
    for (i = 0; i < argc; i++)
        resp_add_bulk(b, argv[i], len[i]);
}

void resp_add_commandv(resp_buf *b, int argc, const char *const *argv)
{
    int i;

    resp_add_array(b, argc > 0 ? (size_t)argc : 0);
    for (i = 0; i < argc; i++)
        resp_add_cstr(b, argv[i]);
}

/* ---------------------------------------------------------- reply values */

static resp_val *val_new(resp_type type)
{
    resp_val *v = xmalloc(sizeof *v);

    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

/* A string value; takes ownership of s (n bytes plus a NUL). */
static resp_val *val_str(resp_type type, char *s, size_t n)
{
    resp_val *v = val_new(type);

    v->str = s;
    v->len = n;
    return v;
}

void resp_val_free(resp_val *v)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; i < v->n; i++)
        resp_val_free(v->elem[i]);
    free(v->elem);
    free(v->str);
    free(v);
}

const resp_val *resp_val_get(const resp_val *map, const char *key)
{
    size_t klen, i;

    if (!map || (map->type != RESP_T_MAP && map->type != RESP_T_ARRAY) || map->n % 2)
        return NULL;
    klen = strlen(key);
    for (i = 0; i < map->n; i += 2) {
        const resp_val *k = map->elem[i];

        if ((k->type == RESP_T_BULK || k->type == RESP_T_SIMPLE) && k->len == klen &&
            memcmp(k->str, key, klen) == 0)
            return map->elem[i + 1];
    }
    return NULL;
}

/* ---------------------------------------------------------- reply reader */

#define ERR_RD_TYPE "Protocol error: unexpected reply type byte '%c'"
#define ERR_RD_CRLF "Protocol error: expected CRLF"
#define ERR_RD_LINE "Protocol error: line too long"
#define ERR_RD_INT "Protocol error: invalid integer"
#define ERR_RD_DOUBLE "Protocol error: invalid double"
#define ERR_RD_BOOL "Protocol error: invalid boolean"
#define ERR_RD_NULL "Protocol error: invalid null"
#define ERR_RD_BIGNUM "Protocol error: invalid big number"
#define ERR_RD_VERBATIM "Protocol error: invalid verbatim string"
#define ERR_RD_DEPTH "Protocol error: nesting too deep"

/* Element pointers an array may hold beyond those received. */
#define ELEM_STEP (RESP_PREALLOC_MAX / sizeof(resp_val *))

/* An aggregate under construction. v is NULL for an attribute, whose
 * elements are dropped as they come. */
typedef struct rd_frame {
    resp_val *v;
    size_t need; /* elements announced (2 * pairs for maps and attributes) */
    size_t got;
    size_t cap;  /* entries allocated in v->elem */
} rd_frame;

enum rd_state { RD_LINE, RD_BULK, RD_DEAD };

struct resp_reader {
    resp_limits lim;
    enum rd_state state;
    line_acc line;
    bulk_acc bulk;
    char bulk_type; /* '$', '!' or '=' */
    rd_frame stack[RESP_MAX_NESTING];
    int depth;
    char err[RESP_ERR_MAX];
};

resp_reader *resp_reader_new(const resp_limits *lim)
{
    resp_reader *r = xmalloc(sizeof *r);

    memset(r, 0, sizeof *r);
    r->lim = lim ? *lim : resp_limits_default();
    r->state = RD_LINE;
    return r;
}

void resp_reader_free(resp_reader *r)
{
    int i;

    if (!r)
        return;
    for (i = 0; i < r->depth; i++)
        resp_val_free(r->stack[i].v);
    acc_free(&r->line);
    bulk_free(&r->bulk);
    free(r);
}

const char *resp_reader_error(const resp_reader *r)
{
    return r->err;
}

static int rd_fail(resp_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int rd_fail(resp_reader *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->state = RD_DEAD;
    return STEP_ERR;
}

static bool rd_known_type(char t)
{
    return t && strchr("+-:$*_,#!=(%~>|", t) != NULL;
}

/* Longest content of a line of type t: payload for strings, header size
 * for the rest. */
static size_t rd_line_max(const resp_reader *r, char t)
{
    if (t == '+' || t == '-' || t == '(')
        return r->lim.max_bulk < SIZE_MAX - 3 ? (size_t)r->lim.max_bulk + 1 : SIZE_MAX - 2;
    return r->lim.max_inline;
}

/* Adds a finished value to the aggregate on top of the stack. */
static void rd_frame_add(rd_frame *f, resp_val *v)
{
    if (!f->v) {
        resp_val_free(v);
        return;
    }
    if (f->got == f->cap) {
        f->cap = grow_cap(f->cap, f->got + 1, f->need, ELEM_STEP);
        f->v->elem = xrealloc(f->v->elem, f->cap * sizeof *f->v->elem);
    }
    f->v->elem[f->got] = v;
    f->v->n = f->got + 1;
}

/* Places a finished value; returns it when it is a whole top-level reply,
 * else NULL (it went into an aggregate, or was part of an attribute). */
static resp_val *rd_attach(resp_reader *r, resp_val *v)
{
    while (r->depth > 0) {
        rd_frame *f = &r->stack[r->depth - 1];

        rd_frame_add(f, v);
        if (++f->got < f->need)
            return NULL;
        v = f->v;
        r->depth--;
        if (!v)
            return NULL;
    }
    return v;
}

static int rd_double(resp_reader *r, const char *s, size_t n, resp_val **out)
{
    char txt[64], *end;
    double d;

    if (n == 0 || n >= sizeof txt || is_blank(s[0]))
        return rd_fail(r, ERR_RD_DOUBLE);
    memcpy(txt, s, n);
    txt[n] = '\0';
    d = strtod(txt, &end);
    if (end != txt + n)
        return rd_fail(r, ERR_RD_DOUBLE);
    *out = val_new(RESP_T_DOUBLE);
    (*out)->dbl = d;
    return STEP_NEXT;
}

static bool is_bignum(const char *s, size_t n)
{
    size_t i = n && s[0] == '-' ? 1 : 0;

    if (i == n)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Types whose value is the line itself: + - : , # _ ( */
static int rd_scalar(resp_reader *r, char t, const char *s, size_t n, resp_val **out)
{
    long long ll;

    switch (t) {
    case '+':
        *out = val_str(RESP_T_SIMPLE, xmemdup(s, n), n);
        return STEP_NEXT;
    case '-':
        *out = val_str(RESP_T_ERROR, xmemdup(s, n), n);
        return STEP_NEXT;
    case '(':
        if (!is_bignum(s, n))
            return rd_fail(r, ERR_RD_BIGNUM);
        *out = val_str(RESP_T_BIGNUM, xmemdup(s, n), n);
        return STEP_NEXT;
    case ':':
        if (resp_parse_ll(s, n, &ll) < 0)
            return rd_fail(r, ERR_RD_INT);
        *out = val_new(RESP_T_INT);
        (*out)->integer = ll;
        return STEP_NEXT;
    case '#':
        if (n != 1 || (s[0] != 't' && s[0] != 'f'))
            return rd_fail(r, ERR_RD_BOOL);
        *out = val_new(RESP_T_BOOL);
        (*out)->integer = s[0] == 't';
        return STEP_NEXT;
    case '_':
        if (n != 0)
            return rd_fail(r, ERR_RD_NULL);
        *out = val_new(RESP_T_NULL);
        return STEP_NEXT;
    default:
        return rd_double(r, s, n, out);
    }
}

/* "$L", "!L", "=L": the payload follows. */
static int rd_bulk_hdr(resp_reader *r, char t, const char *s, size_t n, resp_val **out)
{
    long long len;

    if (resp_parse_ll(s, n, &len) < 0)
        return rd_fail(r, ERR_BULK_LEN);
    if (len == -1 && t == '$') {
        *out = val_new(RESP_T_NULL);
        return STEP_NEXT;
    }
    if (len < 0 || (unsigned long long)len > r->lim.max_bulk ||
        (unsigned long long)len > SIZE_MAX - 2)
        return rd_fail(r, ERR_BULK_LEN);
    if (t == '=' && len < 4)
        return rd_fail(r, ERR_RD_VERBATIM);
    bulk_begin(&r->bulk, (size_t)len);
    r->bulk_type = t;
    r->state = RD_BULK;
    return STEP_NEXT;
}

static resp_type rd_aggregate_type(char t)
{
    switch (t) {
    case '%': return RESP_T_MAP;
    case '~': return RESP_T_SET;
    case '>': return RESP_T_PUSH;
    default: return RESP_T_ARRAY;
    }
}

/* "*N", "%N", "~N", ">N", "|N": N elements (pairs for % and |) follow. */
static int rd_aggregate(resp_reader *r, char t, const char *s, size_t n, resp_val **out)
{
    long long count;
    rd_frame *f;

    if (resp_parse_ll(s, n, &count) < 0)
        return rd_fail(r, ERR_MB_LEN);
    if (count == -1 && t == '*') {
        *out = val_new(RESP_T_NULL);
        return STEP_NEXT;
    }
    if (count < 0 || (unsigned long long)count > r->lim.max_args)
        return rd_fail(r, ERR_MB_LEN);
    if (r->depth == RESP_MAX_NESTING)
        return rd_fail(r, ERR_RD_DEPTH);
    if (count == 0) {
        if (t != '|')
            *out = val_new(rd_aggregate_type(t));
        return STEP_NEXT;
    }
    f = &r->stack[r->depth++];
    memset(f, 0, sizeof *f);
    f->need = (size_t)count * (t == '%' || t == '|' ? 2 : 1);
    if (t != '|')
        f->v = val_new(rd_aggregate_type(t));
    return STEP_NEXT;
}

/* A whole line: a scalar, or the header of a bulk or an aggregate. */
static int rd_line(resp_reader *r, const char *buf, size_t len, size_t *pos, resp_val **out)
{
    char t = r->line.len ? r->line.data[0] : buf[*pos];
    const char *line;
    size_t n;
    int rc;

    if (!rd_known_type(t))
        return rd_fail(r, ERR_RD_TYPE, t);
    rc = line_read(&r->line, buf, len, pos, rd_line_max(r, t), &line, &n);
    if (rc == LINE_TOOLONG)
        return rd_fail(r, ERR_RD_LINE);
    if (rc == LINE_AGAIN)
        return STEP_AGAIN;
    if (n < 2 || line[n - 1] != '\r')
        rc = rd_fail(r, ERR_RD_CRLF);
    else if (strchr("$!=", t))
        rc = rd_bulk_hdr(r, t, line + 1, n - 2, out);
    else if (strchr("*%~>|", t))
        rc = rd_aggregate(r, t, line + 1, n - 2, out);
    else
        rc = rd_scalar(r, t, line + 1, n - 2, out);
    r->line.len = 0;
    return rc;
}

/* The payload of a $, ! or = value. */
static int rd_bulk(resp_reader *r, const char *buf, size_t len, size_t *pos, resp_val **out)
{
    bulk_acc *b = &r->bulk;
    int rc = bulk_read(b, buf, len, pos);

    if (rc == BULK_BADEND)
        return rd_fail(r, ERR_BULK_END);
    if (rc == BULK_AGAIN)
        return STEP_AGAIN;
    r->state = RD_LINE;
    if (r->bulk_type == '=') {
        if (b->data[3] != ':')
            return rd_fail(r, ERR_RD_VERBATIM);
        memmove(b->data, b->data + 4, b->total - 4 + 1);
        b->total -= 4;
    }
    *out = val_str(r->bulk_type == '!' ? RESP_T_ERROR : RESP_T_BULK, b->data, b->total);
    b->data = NULL;
    bulk_begin(b, 0);
    return STEP_NEXT;
}

int resp_reader_feed(resp_reader *r, const char *buf, size_t len,
                     size_t *consumed, resp_val **out)
{
    size_t pos = 0;
    int rc = STEP_NEXT;

    *out = NULL;
    while (rc == STEP_NEXT) {
        resp_val *v = NULL;

        if (r->state == RD_DEAD) {
            rc = STEP_ERR;
            break;
        }
        if (pos == len) {
            rc = STEP_AGAIN;
            break;
        }
        rc = r->state == RD_LINE ? rd_line(r, buf, len, &pos, &v)
                                 : rd_bulk(r, buf, len, &pos, &v);
        if (v && (*out = rd_attach(r, v)) != NULL)
            rc = STEP_DONE;
    }
    *consumed = pos;
    if (rc == STEP_DONE)
        return RESP_OK;
    return rc == STEP_AGAIN ? RESP_AGAIN : RESP_EPROTO;
}
