/*
 * test_proto.c - unit tests for proto/resp.c: the request parser, the reply
 * encoder, the reply reader and resp_buf.
 *
 * The parser and reader tables are run whole, byte by byte and in random
 * chunk sizes (fixed seeds); every run must give the same commands or
 * values, the same final result and the same error. Each chunk is copied
 * into its own allocation of exactly its size, so that AddressSanitizer
 * catches a read past the bytes handed over.
 *
 * malloc() and realloc() are wrapped at link time (-Wl,--wrap, see
 * meson.build) to record the largest single allocation and count the calls,
 * which lets the tests check that nothing is allocated from a length that
 * has not arrived or is over a limit, and that a command is one allocation.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include "resp.h"

/* ------------------------------------------------------- allocation probe */

void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);

static bool alloc_tracking;
static size_t alloc_largest;

static size_t alloc_calls;

static void alloc_note(size_t n)
{
    if (alloc_tracking)
        alloc_calls++;
    if (alloc_tracking && n > alloc_largest)
        alloc_largest = n;
}

void *__wrap_malloc(size_t n)
{
    alloc_note(n);
    return __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
    alloc_note(n);
    return __real_realloc(p, n);
}

static void alloc_track(void)
{
    alloc_largest = 0;
    alloc_calls = 0;
    alloc_tracking = true;
}

/* --------------------------------------------------------------- helpers */

#define IN(s) .in = (s), .inlen = sizeof(s) - 1

/* Printable bytes as they are, others (and the separators used by the
 * renderers) as \xHH. */
static void render_bytes(resp_buf *o, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f && !strchr("|[]{},=\\", c))
            resp_buf_append(o, &c, 1);
        else
            resp_buf_printf(o, "\\x%02x", c);
    }
}

static void expect_bytes(const resp_buf *b, const char *want, size_t n)
{
    resp_buf shown, expected;

    if (b->len == n && memcmp(b->data, want, n) == 0)
        return;
    resp_buf_init(&shown);
    resp_buf_init(&expected);
    render_bytes(&shown, b->data, b->len);
    render_bytes(&expected, want, n);
    cr_assert_fail("encoded \"%s\", expected \"%s\"", shown.data, expected.data);
}

#define EXPECT_BYTES(b, lit) expect_bytes((b), (lit), sizeof(lit) - 1)

enum { CHUNK_WHOLE, CHUNK_BYTES, CHUNK_RANDOM };

static uint32_t lcg_next(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static size_t chunk_len(int mode, uint32_t *seed, size_t left)
{
    size_t n;

    if (mode == CHUNK_WHOLE)
        return left;
    if (mode == CHUNK_BYTES)
        return 1;
    n = 1 + lcg_next(seed) % 11;
    return n < left ? n : left;
}

static resp_limits limits_with(uint64_t max_bulk, uint32_t max_args, uint32_t max_inline)
{
    resp_limits lim = resp_limits_default();

    if (max_bulk)
        lim.max_bulk = max_bulk;
    if (max_args)
        lim.max_args = max_args;
    if (max_inline)
        lim.max_inline = max_inline;
    return lim;
}

/* ------------------------------------------------- request parser driver */

static void check_cmd(const resp_cmd *c)
{
    int i;

    cr_assert_gt(c->argc, 0);
    cr_assert_not_null(c->argv);
    cr_assert_not_null(c->len);
    for (i = 0; i < c->argc; i++) {
        cr_assert_not_null(c->argv[i]);
        cr_assert_eq(c->argv[i][c->len[i]], '\0', "argv[%d] not NUL-terminated", i);
    }
}

/* "[a|b]" for a multibulk command, "i[a|b]" for an inline one. */
static void render_cmd(resp_buf *o, const resp_cmd *c)
{
    int i;

    resp_buf_append(o, c->inline_form ? "i[" : "[", c->inline_form ? 2 : 1);
    for (i = 0; i < c->argc; i++) {
        if (i)
            resp_buf_append(o, "|", 1);
        render_bytes(o, c->argv[i], c->len[i]);
    }
    resp_buf_append(o, "]", 1);
}

struct req_run {
    resp_buf out; /* rendered commands */
    int rc;       /* RESP_AGAIN or RESP_EPROTO at the end */
    char err[128];
    size_t pending;
};

static void run_req(const resp_limits *lim, const char *in, size_t inlen, int mode,
                    uint32_t seed, struct req_run *r)
{
    resp_req_parser *p = resp_req_new(lim);
    size_t off = 0;

    resp_buf_init(&r->out);
    resp_buf_append(&r->out, "", 0);
    r->rc = RESP_AGAIN;
    r->err[0] = '\0';
    while (off < inlen && r->rc != RESP_EPROTO) {
        size_t n = chunk_len(mode, &seed, inlen - off), used = 0;
        char *chunk = malloc(n);

        memcpy(chunk, in + off, n);
        for (;;) {
            resp_cmd cmd;
            size_t cons = 12345;

            r->rc = resp_req_feed(p, chunk + used, n - used, &cons, &cmd);
            cr_assert_leq(cons, n - used);
            used += cons;
            if (r->rc == RESP_OK) {
                check_cmd(&cmd);
                render_cmd(&r->out, &cmd);
                resp_cmd_free(&cmd);
                continue;
            }
            cr_assert_eq(cmd.argc, 0);
            cr_assert_null(cmd.argv);
            if (r->rc == RESP_EPROTO) {
                snprintf(r->err, sizeof r->err, "%s", resp_req_error(p));
                break;
            }
            cr_assert_eq(r->rc, RESP_AGAIN);
            cr_assert_eq(used, n, "RESP_AGAIN must consume all input");
            break;
        }
        free(chunk);
        off += n;
    }
    r->pending = resp_req_pending(p);
    resp_req_free(p);
}

/* ------------------------------------------------- request parser table */

struct req_case {
    const char *name;
    const char *in;
    size_t inlen;
    const char *want; /* rendered commands, see render_cmd() */
    int rc;           /* RESP_AGAIN (0) unless an error is expected */
    const char *err;
    size_t pending;   /* checked when rc is RESP_AGAIN */
    uint64_t max_bulk; /* limits; 0 keeps the default */
    uint32_t max_args;
    uint32_t max_inline;
};

#define E_MB "Protocol error: invalid multibulk length"
#define E_BULK "Protocol error: invalid bulk length"
#define E_INLINE "Protocol error: too big inline request"
#define E_MBBIG "Protocol error: too big mbulk count string"
#define E_BULKBIG "Protocol error: too big bulk count string"
#define E_QUOTES "Protocol error: unbalanced quotes in request"
#define E_END "Protocol error: bulk not followed by CRLF"

static struct req_case req_cases[] = {
    /* valid multibulk */
    { "ping", IN("*1\r\n$4\r\nPING\r\n"), "[PING]" },
    { "set", IN("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), "[SET|key|value]" },
    { "empty bulk", IN("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), "[ECHO|]" },
    { "only an empty bulk", IN("*1\r\n$0\r\n\r\n"), "[]" },
    { "binary bulk with NUL and CRLF", IN("*2\r\n$4\r\nECHO\r\n$6\r\na\0\r\nb\n\r\n"),
      "[ECHO|a\\x00\\x0d\\x0ab\\x0a]" },
    { "bulk that looks like a header", IN("*1\r\n$6\r\n*1\r\n$\r\r\n"),
      "[*1\\x0d\\x0a$\\x0d]" },
    { "pipelined multibulk and inline",
      IN("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n"),
      "[PING][GET|k]i[PING][QUIT]" },
    { "*0 is skipped", IN("*0\r\n*1\r\n$4\r\nPING\r\n"), "[PING]" },
    { "*-1 is skipped", IN("*-1\r\n*-1\r\n"), "" },
    /* valid inline */
    { "inline crlf", IN("PING\r\n"), "i[PING]" },
    { "inline lf", IN("PING\n"), "i[PING]" },
    { "inline extra blanks", IN("  SET   k  v \t\r\n"), "i[SET|k|v]" },
    { "empty inline lines skipped", IN("\r\n\n   \r\nPING\r\n"), "i[PING]" },
    { "inline double quotes", IN("SET k \"hello world\"\r\n"), "i[SET|k|hello world]" },
    { "inline escapes", IN("ECHO \"a\\nb\\r\\t\\b\\a\\\\\\\"\\x41\\x4a\"\r\n"),
      "i[ECHO|a\\x0ab\\x0d\\x09\\x08\\x07\\x5c\"AJ]" },
    { "inline bad hex kept", IN("ECHO \"\\x4g\\q\"\r\n"), "i[ECHO|x4gq]" },
    { "inline hex NUL", IN("ECHO \"a\\x00b\"\r\n"), "i[ECHO|a\\x00b]" },
    { "inline single quotes", IN("ECHO 'it\\'s \"raw\" \\n'\r\n"),
      "i[ECHO|it's \"raw\" \\x5cn]" },
    { "inline quote inside a word", IN("SET k foo\"bar baz\"\r\n"), "i[SET|k|foobar baz]" },
    { "inline empty quoted", IN("SET k \"\" ''\r\n"), "i[SET|k||]" },
    { "inline quote then tab", IN("ECHO \"a\"\tb\r\n"), "i[ECHO|a|b]" },
    { "inline NUL ends the line", IN("ECHO a\0b c\r\n"), "i[ECHO|a]" },
    { "inline vertical tab inside a word", IN("ECHO a\vb\r\n"), "i[ECHO|a\\x0bb]" },
    { "inline CR inside the line", IN("ECHO a\rb\r\n"), "i[ECHO|a|b]" },
    /* malformed multibulk count */
    { "negative count", IN("*-2\r\n"), "", RESP_EPROTO, E_MB },
    { "non-numeric count", IN("*abc\r\n"), "", RESP_EPROTO, E_MB },
    { "overflowing count", IN("*99999999999999999999\r\n"), "", RESP_EPROTO, E_MB },
    { "count just over int64", IN("*9223372036854775808\r\n"), "", RESP_EPROTO, E_MB },
    { "count over max_args", IN("*1048577\r\n"), "", RESP_EPROTO, E_MB },
    { "count with plus sign", IN("*+1\r\n"), "", RESP_EPROTO, E_MB },
    { "count with leading zero", IN("*01\r\n"), "", RESP_EPROTO, E_MB },
    { "count minus zero", IN("*-0\r\n"), "", RESP_EPROTO, E_MB },
    { "empty count", IN("*\r\n"), "", RESP_EPROTO, E_MB },
    { "count with space", IN("* 1\r\n"), "", RESP_EPROTO, E_MB },
    { "count with bare LF", IN("*1\n$4\r\nPING\r\n"), "", RESP_EPROTO, E_MB },
    { "error after a good command", IN("*1\r\n$4\r\nPING\r\n*x\r\n"), "[PING]",
      RESP_EPROTO, E_MB },
    /* malformed arguments */
    { "garbage instead of $", IN("*2\r\nfoo"), "", RESP_EPROTO,
      "Protocol error: expected '$', got 'f'" },
    { "integer instead of bulk", IN("*2\r\n$3\r\nGET\r\n:1\r\n"), "", RESP_EPROTO,
      "Protocol error: expected '$', got ':'" },
    { "negative bulk", IN("*1\r\n$-1\r\n"), "", RESP_EPROTO, E_BULK },
    { "non-numeric bulk", IN("*1\r\n$x\r\n"), "", RESP_EPROTO, E_BULK },
    { "overflowing bulk", IN("*1\r\n$99999999999999999999\r\n"), "", RESP_EPROTO, E_BULK },
    { "bulk over default max", IN("*1\r\n$536870913\r\n"), "", RESP_EPROTO, E_BULK },
    { "bulk with bare LF", IN("*1\r\n$1\na\r\n"), "", RESP_EPROTO, E_BULK },
    { "missing CRLF after bulk", IN("*1\r\n$3\r\nfooXY"), "", RESP_EPROTO, E_END },
    { "CR then garbage after bulk", IN("*1\r\n$3\r\nfoo\rX"), "", RESP_EPROTO, E_END },
    { "LF only after bulk", IN("*1\r\n$3\r\nfoo\n"), "", RESP_EPROTO, E_END },
    { "bulk longer than announced", IN("*1\r\n$3\r\nfoobar\r\n"), "", RESP_EPROTO, E_END },
    /* malformed inline */
    { "unbalanced double quote", IN("SET k \"abc\r\n"), "", RESP_EPROTO, E_QUOTES },
    { "unbalanced single quote", IN("SET k 'abc\r\n"), "", RESP_EPROTO, E_QUOTES },
    { "text after closing quote", IN("SET k \"abc\"def\r\n"), "", RESP_EPROTO, E_QUOTES },
    { "escaped closing quote", IN("SET k \"abc\\\"\r\n"), "", RESP_EPROTO, E_QUOTES },
    { "trailing backslash in quotes", IN("SET k \"abc\\\r\n"), "", RESP_EPROTO, E_QUOTES },
    { "NUL inside quotes", IN("SET k \"a\0b\"\r\n"), "", RESP_EPROTO, E_QUOTES },
    /* truncated frames */
    { "truncated count", IN("*3\r"), "", RESP_AGAIN, NULL, 3 },
    { "truncated after count", IN("*2\r\n"), "", RESP_AGAIN, NULL, 0 },
    { "truncated bulk header", IN("*1\r\n$4"), "", RESP_AGAIN, NULL, 2 },
    { "truncated bulk data", IN("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval"), "", RESP_AGAIN,
      NULL, 7 },
    { "truncated before CRLF", IN("*1\r\n$4\r\nPING"), "", RESP_AGAIN, NULL, 4 },
    { "truncated after CR", IN("*1\r\n$4\r\nPING\r"), "", RESP_AGAIN, NULL, 4 },
    { "truncated inline", IN("PIN"), "", RESP_AGAIN, NULL, 3 },
    { "complete then truncated", IN("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPO"), "[PING]",
      RESP_AGAIN, NULL, 2 },
    { "bulk at default max waits", IN("*1\r\n$536870912\r\nab"), "", RESP_AGAIN, NULL, 2 },
    /* tighter limits */
    { "args at limit", IN("*2\r\n$1\r\na\r\n$1\r\nb\r\n"), "[a|b]", .max_args = 2 },
    { "args over limit", IN("*3\r\n"), "", RESP_EPROTO, E_MB, .max_args = 2 },
    { "bulk at limit", IN("*1\r\n$4\r\nabcd\r\n"), "[abcd]", .max_bulk = 4 },
    { "bulk over limit", IN("*1\r\n$5\r\n"), "", RESP_EPROTO, E_BULK, .max_bulk = 4 },
    { "inline at limit", IN("12345678\r\n"), "i[12345678]", .max_inline = 8 },
    { "inline at limit with LF", IN("12345678\n"), "i[12345678]", .max_inline = 8 },
    { "inline at limit, CR pending", IN("12345678\r"), "", RESP_AGAIN, NULL, 9,
      .max_inline = 8 },
    { "inline over limit", IN("123456789\r\n"), "", RESP_EPROTO, E_INLINE, .max_inline = 8 },
    { "inline over limit, no newline", IN("123456789"), "", RESP_EPROTO, E_INLINE,
      .max_inline = 8 },
    { "inline over limit, CR inside", IN("12345678\rX"), "", RESP_EPROTO, E_INLINE,
      .max_inline = 8 },
    { "inline too many args", IN("a b c\r\n"), "", RESP_EPROTO, E_INLINE, .max_args = 2 },
    { "inline args at limit", IN("a b\r\n"), "i[a|b]", .max_args = 2 },
    { "inline arg over max_bulk", IN("abc\r\n"), "", RESP_EPROTO, E_INLINE, .max_bulk = 2 },
    { "count line at limit", IN("*123\r\n"), "", RESP_AGAIN, NULL, 0, .max_inline = 4 },
    { "count line over limit", IN("*12345"), "", RESP_EPROTO, E_MBBIG, .max_inline = 4 },
    { "count line over limit, complete", IN("*12345\r\n"), "", RESP_EPROTO, E_MBBIG,
      .max_inline = 4 },
    { "bulk line at limit", IN("*1\r\n$123\r\n"), "", RESP_AGAIN, NULL, 0, .max_inline = 4 },
    { "bulk line over limit", IN("*1\r\n$12345"), "", RESP_EPROTO, E_BULKBIG,
      .max_inline = 4 },
};

#define N_REQ_CASES (sizeof req_cases / sizeof req_cases[0])

/* Workers are separate processes: parameters are table indices, not
 * pointers into this process. */
ParameterizedTestParameters(req, table)
{
    static size_t idx[N_REQ_CASES];
    size_t i;

    for (i = 0; i < N_REQ_CASES; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_REQ_CASES);
}

ParameterizedTest(size_t *i, req, table)
{
    const struct req_case *c = &req_cases[*i];
    resp_limits lim = limits_with(c->max_bulk, c->max_args, c->max_inline);
    struct req_run whole, r;
    uint32_t seed;

    run_req(&lim, c->in, c->inlen, CHUNK_WHOLE, 0, &whole);
    cr_assert_str_eq(whole.out.data, c->want, "%s: commands", c->name);
    cr_assert_eq(whole.rc, c->rc, "%s: result %d (%s)", c->name, whole.rc, whole.err);
    if (c->rc == RESP_EPROTO)
        cr_assert_str_eq(whole.err, c->err, "%s: error", c->name);
    else
        cr_assert_eq(whole.pending, c->pending, "%s: pending %zu", c->name, whole.pending);

    for (seed = 0; seed <= 16; seed++) {
        int mode = seed == 0 ? CHUNK_BYTES : CHUNK_RANDOM;

        run_req(&lim, c->in, c->inlen, mode, seed, &r);
        cr_assert_str_eq(r.out.data, whole.out.data, "%s: seed %u commands", c->name, seed);
        cr_assert_eq(r.rc, whole.rc, "%s: seed %u result", c->name, seed);
        cr_assert_str_eq(r.err, whole.err, "%s: seed %u error", c->name, seed);
        if (r.rc == RESP_AGAIN)
            cr_assert_eq(r.pending, whole.pending, "%s: seed %u pending", c->name, seed);
        resp_buf_free(&r.out);
    }
    resp_buf_free(&whole.out);
}

/* ------------------------------------------------- request parser, more */

Test(req, consumed_stops_after_each_command)
{
    static const char in[] = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    static const size_t want[] = { 14, 9, 20 };
    resp_req_parser *p = resp_req_new(NULL);
    size_t off = 0, cons, i;
    resp_cmd cmd;

    for (i = 0; i < 3; i++) {
        cr_assert_eq(resp_req_feed(p, in + off, sizeof in - 1 - off, &cons, &cmd), RESP_OK);
        cr_assert_eq(cons, want[i], "command %zu consumed %zu", i, cons);
        cr_assert_eq(cmd.inline_form, i == 1);
        resp_cmd_free(&cmd);
        off += cons;
    }
    cr_assert_eq(off, sizeof in - 1);
    cr_assert_eq(resp_req_feed(p, in + off, 0, &cons, &cmd), RESP_AGAIN);
    cr_assert_eq(cons, 0);
    resp_req_free(p);
}

Test(req, binary_argument_exact)
{
    static const char in[] = "*2\r\n$3\r\nSET\r\n$7\r\n\0\r\n$*\r\n\r\n";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, in, sizeof in - 1, &cons, &cmd), RESP_OK);
    cr_assert_eq(cons, sizeof in - 1);
    cr_assert_eq(cmd.argc, 2);
    cr_assert_eq(cmd.len[1], 7);
    cr_assert_eq(memcmp(cmd.argv[1], "\0\r\n$*\r\n", 8), 0);
    cr_assert_not(cmd.inline_form);
    resp_cmd_free(&cmd);
    resp_req_free(p);
}

Test(req, dead_after_error)
{
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, "*x\r\n", 4, &cons, &cmd), RESP_EPROTO);
    cr_assert_str_eq(resp_req_error(p), E_MB);
    cr_assert_eq(resp_req_feed(p, "PING\r\n", 6, &cons, &cmd), RESP_EPROTO);
    cr_assert_eq(cons, 0);
    cr_assert_eq(cmd.argc, 0);
    cr_assert_str_eq(resp_req_error(p), E_MB);
    resp_req_free(p);
}

/* ------------------------------------------- one allocation per command */

/* True when [p, p + n) lies inside the command's block of `size` bytes. */
static bool in_block(const resp_cmd *c, size_t size, const void *p, size_t n)
{
    const char *lo = c->mem, *s = p;

    return s >= lo && s + n <= lo + size;
}

/* Every argument, NUL, argv and len lie inside one block, which
 * malloc_usable_size says is at least as large as their span. */
static void expect_one_block(const resp_cmd *c)
{
    size_t size = malloc_usable_size(c->mem);
    int i;

    cr_assert_not_null(c->mem);
    cr_assert(in_block(c, size, c->argv, (size_t)(c->argc + 1) * sizeof *c->argv));
    cr_assert(in_block(c, size, c->len, (size_t)c->argc * sizeof *c->len));
    cr_assert_null(c->argv[c->argc]);
    for (i = 0; i < c->argc; i++)
        cr_assert(in_block(c, size, c->argv[i], c->len[i] + 1), "argv[%d] outside the block", i);
}

/* A whole command in the buffer costs exactly one allocation. */
Test(req, whole_command_is_one_allocation)
{
    static const char in[] = "*3\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$200\r\n"
        "01234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "01234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789\r\n";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, "PING\r\n", 6, &cons, &cmd), RESP_OK); /* warm up */
    resp_cmd_free(&cmd);
    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, sizeof in - 1, &cons, &cmd), RESP_OK);
    alloc_tracking = false;
    cr_assert_eq(alloc_calls, 1, "%zu allocations for one command", alloc_calls);
    cr_assert_eq(cons, sizeof in - 1);
    cr_assert_eq(cmd.argc, 3);
    cr_assert_eq(cmd.len[2], 200);
    expect_one_block(&cmd);
    resp_cmd_free(&cmd);
    resp_req_free(p);
}

/* Writes "*argc" and argc bulks whose sizes follow (i * 7) % 23 (so some
 * are empty), argument i's bytes all (char)(i + 1); returns the length. */
static size_t many_args_command(char *out, size_t cap, int argc)
{
    size_t n = (size_t)snprintf(out, cap, "*%d\r\n", argc);
    int i;

    for (i = 0; i < argc; i++) {
        size_t alen = (size_t)(i * 7) % 23;

        n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n", alen);
        memset(out + n, i + 1, alen);
        memcpy(out + n + alen, "\r\n", 2);
        n += alen + 2;
    }
    return n;
}

static void expect_many_args(const resp_cmd *c, int argc)
{
    int i;

    cr_assert_eq(c->argc, argc);
    for (i = 0; i < argc; i++) {
        size_t alen = (size_t)(i * 7) % 23, k;

        cr_assert_eq(c->len[i], alen, "argument %d: %zu bytes", i, c->len[i]);
        for (k = 0; k < alen; k++)
            cr_assert_eq(c->argv[i][k], (char)(i + 1), "argument %d byte %zu", i, k);
        cr_assert_eq(c->argv[i][alen], '\0');
    }
    expect_one_block(c);
}

/* A whole command reads each "$L" once and keeps where its bytes are: the
 * arguments must come out with their own lengths and bytes, also when
 * there are more of them than the parser keeps between commands and when
 * a longer command follows a shorter one in the same buffer. */
Test(req, whole_commands_keep_each_arguments_place)
{
    static char in[8192];
    int counts[] = { 3, 200, 1, 65, 64, 2 }, k;
    size_t n = 0, off = 0, cons;
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;

    for (k = 0; k < 6; k++)
        n += many_args_command(in + n, sizeof in - n, counts[k]);
    for (k = 0; k < 6; k++) {
        cr_assert_eq(resp_req_feed(p, in + off, n - off, &cons, &cmd), RESP_OK, "command %d", k);
        expect_many_args(&cmd, counts[k]);
        resp_cmd_free(&cmd);
        off += cons;
    }
    cr_assert_eq(off, n);
    cr_assert_eq(resp_req_pending(p), 0);
    resp_req_free(p);
}

/* The same bytes give the same commands whole and one byte at a time. */
Test(req, whole_and_bytewise_agree_on_many_args)
{
    static char in[4096];
    size_t n = many_args_command(in, sizeof in, 90), i, cons;
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    int rc = RESP_AGAIN;

    for (i = 0; i < n; i++) {
        rc = resp_req_feed(p, in + i, 1, &cons, &cmd);
        cr_assert_eq(cons, 1);
        if (i + 1 < n)
            cr_assert_eq(rc, RESP_AGAIN, "byte %zu", i);
    }
    cr_assert_eq(rc, RESP_OK);
    expect_many_args(&cmd, 90);
    resp_cmd_free(&cmd);
    resp_req_free(p);
}

/* Split anywhere, a command still ends as one block (the bytes grow in
 * one buffer that becomes the block), with every chunking. */
Test(req, split_command_is_one_block)
{
    static const char in[] = "*4\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\nva\0ue\r\n$2\r\nEX\r\n";
    size_t cut;

    for (cut = 1; cut < sizeof in - 1; cut++) {
        resp_req_parser *p = resp_req_new(NULL);
        resp_cmd cmd;
        size_t cons;

        cr_assert_eq(resp_req_feed(p, in, cut, &cons, &cmd), RESP_AGAIN, "cut %zu", cut);
        cr_assert_eq(cons, cut);
        cr_assert_eq(resp_req_feed(p, in + cut, sizeof in - 1 - cut, &cons, &cmd), RESP_OK,
                     "cut %zu", cut);
        cr_assert_eq(cmd.argc, 4);
        cr_assert_eq(cmd.len[1], 0);
        cr_assert_eq(cmd.argv[1][0], '\0');
        cr_assert_eq(memcmp(cmd.argv[2], "va\0ue", 6), 0);
        expect_one_block(&cmd);
        resp_cmd_free(&cmd);
        resp_req_free(p);
    }
}

Test(req, inline_command_is_one_block)
{
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, "SET k \"a b\" ''\r\n", 16, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.argc, 4);
    cr_assert_str_eq(cmd.argv[2], "a b");
    cr_assert_eq(cmd.len[3], 0);
    expect_one_block(&cmd);
    resp_cmd_free(&cmd);
    resp_req_free(p);
}

/* "*2 $4 ECHO $<n>" and n bytes 'x', CRLF: a whole command in one buffer. */
static char *echo_command(size_t n, size_t *len)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", n);
    char *s = malloc((size_t)h + n + 2);

    memcpy(s, hdr, (size_t)h);
    memset(s + h, 'x', n);
    memcpy(s + h + n, "\r\n", 2);
    *len = (size_t)h + n + 2;
    return s;
}

/* An argument over max_bulk is refused at its header, before anything is
 * allocated for it, also when all its bytes are in the buffer already. */
Test(req, huge_declared_length_refused_before_allocation)
{
    resp_limits lim = limits_with(1000, 0, 0);
    resp_req_parser *p = resp_req_new(&lim);
    size_t len, cons;
    char *in = echo_command(1000000, &len);
    resp_cmd cmd;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, len, &cons, &cmd), RESP_EPROTO);
    alloc_tracking = false;
    cr_assert_str_eq(resp_req_error(p), E_BULK);
    cr_assert_leq(alloc_largest, 64, "allocated %zu bytes", alloc_largest);
    cr_assert_null(cmd.mem);
    resp_req_free(p);
    free(in);
}

/* max_request also when the whole over-limit command is in the buffer: it
 * is refused at the header that passes the limit, nothing allocated for it. */
Test(req, request_cap_holds_for_a_whole_command)
{
    resp_limits lim = resp_limits_default();
    lim.max_request = 100000;
    resp_req_parser *p = resp_req_new(&lim);
    size_t len, cons;
    char *in = echo_command(100000 - 3, &len);
    resp_cmd cmd;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, len, &cons, &cmd), RESP_EPROTO);
    alloc_tracking = false;
    cr_assert_str_eq(resp_req_error(p), "Protocol error: request too big (over 100000 bytes in all)");
    cr_assert_leq(alloc_largest, 64, "allocated %zu bytes", alloc_largest);
    free(in);
    in = echo_command(100000 - 4, &len);
    cr_assert_eq(resp_req_feed(p, in, len, &cons, &cmd), RESP_EPROTO, "the parser stays dead");
    resp_req_free(p);
    p = resp_req_new(&lim);
    cr_assert_eq(resp_req_feed(p, in, len, &cons, &cmd), RESP_OK, "at the limit");
    expect_one_block(&cmd);
    resp_cmd_free(&cmd);
    resp_req_free(p);
    free(in);
}

Test(req, zero_args_allocate_nothing)
{
    static const char in[] = "*0\r\n*-1\r\n\r\n  \r\n";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, 9, &cons, &cmd), RESP_AGAIN);
    cr_assert_eq(resp_req_feed(p, in + 9, sizeof in - 10, &cons, &cmd), RESP_AGAIN);
    alloc_tracking = false;
    cr_assert_eq(alloc_calls, 0, "%zu allocations", alloc_calls);
    cr_assert_null(cmd.mem);
    cr_assert_eq(resp_req_pending(p), 0);
    resp_req_free(p);
}

Test(req, build_and_copy_are_one_block)
{
    const char *argv[] = { "publish", "ch", "a\0b" };
    size_t len[] = { 7, 2, 3 };
    resp_cmd a, b, view;

    resp_cmd_build(&a, 3, argv, len);
    expect_one_block(&a);
    cr_assert_eq(memcmp(a.argv[2], "a\0b", 4), 0);
    resp_cmd_copy(&b, &a);
    expect_one_block(&b);
    cr_assert_neq(b.mem, a.mem);
    cr_assert_eq(b.len[2], 3);
    cr_assert_eq(memcmp(b.argv[2], "a\0b", 4), 0);
    resp_cmd_free(&a);
    cr_assert_null(a.argv);
    cr_assert_str_eq(b.argv[1], "ch");
    view = (resp_cmd){ .argc = 1, .argv = b.argv + 2, .len = b.len + 2 };
    resp_cmd_free(&view); /* a view owns nothing */
    resp_cmd_build(&a, 2, (const char *[]){ "GET", "k" }, NULL);
    cr_assert_eq(a.len[0], 3);
    cr_assert_str_eq(a.argv[1], "k");
    resp_cmd_free(&a);
    resp_cmd_free(&b);
}

Test(req, limits_tightened_between_commands)
{
    static const char three[] = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
    resp_limits tight = limits_with(0, 2, 0);
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, three, sizeof three - 1, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.argc, 3);
    resp_cmd_free(&cmd);
    resp_req_set_limits(p, &tight);
    cr_assert_eq(resp_req_feed(p, three, sizeof three - 1, &cons, &cmd), RESP_EPROTO);
    cr_assert_str_eq(resp_req_error(p), E_MB);
    resp_req_free(p);
}

Test(req, limits_loosened_between_commands)
{
    static const char three[] = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
    static const char big[] = "*1\r\n$5\r\nhello\r\n";
    resp_limits tight = limits_with(4, 2, 16);
    resp_limits loose = resp_limits_default();
    resp_req_parser *p = resp_req_new(&tight);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, "AUTH pw\r\n", 9, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.argc, 2);
    resp_cmd_free(&cmd);
    resp_req_set_limits(p, &loose);
    cr_assert_eq(resp_req_feed(p, three, sizeof three - 1, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.argc, 3);
    resp_cmd_free(&cmd);
    cr_assert_eq(resp_req_feed(p, big, sizeof big - 1, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.len[0], 5);
    resp_cmd_free(&cmd);
    resp_req_free(p);
}

/* max_request caps the sum of a command's arguments, at the "$L" header
 * that would pass it, before any of that argument is read. */
Test(req, request_size_is_capped_before_the_argument_is_read)
{
    static const char ok[] = "*3\r\n$4\r\nPUSH\r\n$1\r\nq\r\n$5\r\nhello\r\n";
    static const char over[] = "*3\r\n$4\r\nPUSH\r\n$1\r\nq\r\n$6\r\n";
    resp_limits lim = resp_limits_default();
    lim.max_request = 10; /* 4 + 1 + 5 */
    resp_req_parser *p = resp_req_new(&lim);
    resp_cmd cmd;
    size_t cons;

    cr_assert_eq(resp_req_feed(p, ok, sizeof ok - 1, &cons, &cmd), RESP_OK);
    cr_assert_eq(cmd.argc, 3);
    resp_cmd_free(&cmd);
    cr_assert_eq(resp_req_feed(p, over, sizeof over - 1, &cons, &cmd), RESP_EPROTO);
    cr_assert_str_eq(resp_req_error(p), "Protocol error: request too big (over 10 bytes in all)");
    cr_assert_lt(resp_req_pending(p), 8, "the parser kept %zu bytes", resp_req_pending(p));
    resp_req_free(p);
}

/* A line of n bytes 'a' and CRLF. */
static char *long_line(size_t n, size_t *len)
{
    char *s = malloc(n + 2);

    memset(s, 'a', n);
    memcpy(s + n, "\r\n", 2);
    *len = n + 2;
    return s;
}

Test(req, inline_default_limit_boundary)
{
    size_t len;
    char *ok = long_line(RESP_DEFAULT_MAX_INLINE, &len);
    char *bad;
    struct req_run r;

    run_req(NULL, ok, len, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_AGAIN);
    cr_assert_eq(r.out.len, RESP_DEFAULT_MAX_INLINE + 3, "i[ + %u bytes + ]",
                 RESP_DEFAULT_MAX_INLINE);
    resp_buf_free(&r.out);
    free(ok);

    bad = long_line(RESP_DEFAULT_MAX_INLINE + 1, &len);
    run_req(NULL, bad, len, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, E_INLINE);
    resp_buf_free(&r.out);
    run_req(NULL, bad, len - 2, CHUNK_RANDOM, 7, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, E_INLINE);
    resp_buf_free(&r.out);
    free(bad);
}

Test(req, header_default_limit_boundary)
{
    size_t n = RESP_DEFAULT_MAX_INLINE + 1;
    char *s = malloc(n);
    struct req_run r;

    s[0] = '*';
    memset(s + 1, '1', n - 1);
    run_req(NULL, s, n, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, E_MBBIG);
    resp_buf_free(&r.out);
    run_req(NULL, s, n - 1, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_AGAIN, "a line of max_inline bytes may still end");
    cr_assert_eq(r.pending, n - 1);
    resp_buf_free(&r.out);
    free(s);
}

/* A multibulk command whose one argument is n pseudo-random bytes. */
static char *big_command(size_t n, size_t *len, char **payload)
{
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "*1\r\n$%zu\r\n", n);
    char *s = malloc((size_t)h + n + 2);
    uint32_t seed = 42;
    size_t i;

    memcpy(s, hdr, (size_t)h);
    for (i = 0; i < n; i++)
        s[h + i] = (char)lcg_next(&seed);
    memcpy(s + h + n, "\r\n", 2);
    *len = (size_t)h + n + 2;
    *payload = s + h;
    return s;
}

Test(req, large_bulk_in_any_chunks)
{
    size_t n = 3 * RESP_PREALLOC_MAX + 123, len, sizes[] = { 0, 1, 4096, 65536, 100000 };
    char *payload;
    char *in = big_command(n, &len, &payload);
    size_t k;

    for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        resp_req_parser *p = resp_req_new(NULL);
        size_t off = 0, step = sizes[k] ? sizes[k] : len, cons;
        resp_cmd cmd;
        int rc = RESP_AGAIN;

        while (off < len) {
            size_t m = len - off < step ? len - off : step;

            rc = resp_req_feed(p, in + off, m, &cons, &cmd);
            off += cons;
            if (rc != RESP_AGAIN)
                break;
            cr_assert_eq(cons, m);
        }
        cr_assert_eq(rc, RESP_OK, "chunk size %zu", step);
        cr_assert_eq(off, len);
        cr_assert_eq(cmd.argc, 1);
        cr_assert_eq(cmd.len[0], n);
        cr_assert_eq(memcmp(cmd.argv[0], payload, n), 0, "chunk size %zu", step);
        cr_assert_eq(cmd.argv[0][n], '\0');
        resp_cmd_free(&cmd);
        resp_req_free(p);
    }
    free(in);
}

Test(req, announced_bulk_is_not_preallocated)
{
    static const char in[] = "*1\r\n$536870912\r\nabc";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, sizeof in - 1, &cons, &cmd), RESP_AGAIN);
    cr_assert_leq(alloc_largest, RESP_PREALLOC_MAX, "allocated %zu", alloc_largest);
    cr_assert_eq(resp_req_pending(p), 3);
    resp_req_free(p);
}

Test(req, announced_args_are_not_preallocated)
{
    static const char in[] = "*1048576\r\n$1\r\na\r\n";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, in, sizeof in - 1, &cons, &cmd), RESP_AGAIN);
    cr_assert_leq(alloc_largest, 256, "allocated %zu for one argument", alloc_largest);
    resp_req_free(p);
}

/* What a buffer may hold beyond the n bytes it needs: RESP_PREALLOC_MAX or
 * half of n, whichever is more (resp.c, grow_cap). */
static size_t slack_for(size_t n)
{
    return n / 2 > RESP_PREALLOC_MAX ? n / 2 : RESP_PREALLOC_MAX;
}

Test(req, bulk_buffer_grows_with_received_bytes)
{
    size_t n = 2u * 1024 * 1024, len, off, received = 0, cons;
    char *payload;
    char *in = big_command(n, &len, &payload);
    size_t hdr = (size_t)(payload - in);
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    int rc = RESP_AGAIN;

    alloc_track();
    for (off = 0; off < len; off += cons) {
        size_t m = len - off < 1000 ? len - off : 1000;

        rc = resp_req_feed(p, in + off, m, &cons, &cmd);
        received = off + cons > hdr ? off + cons - hdr : 0;
        cr_assert_leq(alloc_largest, received + 1 + slack_for(received + 1),
                      "%zu bytes allocated with %zu received", alloc_largest, received);
        if (rc == RESP_OK)
            break;
    }
    cr_assert_eq(rc, RESP_OK);
    cr_assert_eq(cmd.len[0], n);
    cr_assert_geq(alloc_largest, n + 1);
    resp_cmd_free(&cmd);
    resp_req_free(p);
    free(in);
}

/* A request that comes in many reads is moved a few times as it grows, not
 * once per RESP_PREALLOC_MAX: 64 arguments of 1 MB in 32 KB reads were
 * about a thousand reallocations of a block up to 64 MB (minutes of
 * copying where realloc cannot grow in place). */
Test(req, a_big_request_in_small_reads_is_moved_a_few_times)
{
    enum { ARGS = 64, LEN = 1 << 20, READ = 32 * 1024 };
    char *one = malloc(LEN + 32);
    cr_assert(one);
    int h = sprintf(one, "$%d\r\n", LEN);
    memset(one + h, 'x', LEN);
    memcpy(one + h + LEN, "\r\n", 2);
    size_t onelen = (size_t)h + LEN + 2, cons;
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    char hdr[32];
    int n = sprintf(hdr, "*%d\r\n", ARGS);
    cr_assert_eq(resp_req_feed(p, hdr, (size_t)n, &cons, &cmd), RESP_AGAIN);
    alloc_track();
    int rc = RESP_AGAIN;
    for (int a = 0; a < ARGS; a++)
        for (size_t off = 0; off < onelen; off += cons) {
            size_t m = onelen - off < READ ? onelen - off : READ;
            rc = resp_req_feed(p, one + off, m, &cons, &cmd);
            cr_assert(rc == RESP_AGAIN || (rc == RESP_OK && a == ARGS - 1), "argument %d: rc %d", a, rc);
        }
    alloc_tracking = false;
    cr_assert_eq(rc, RESP_OK);
    cr_assert_eq(cmd.argc, ARGS);
    cr_assert_eq(cmd.len[ARGS - 1], LEN);
    cr_assert_eq(cmd.argv[ARGS - 1][LEN - 1], 'x');
    cr_assert_leq(alloc_calls, 80, "%zu allocations for a 64 MB request in 32 KB reads", alloc_calls);
    resp_cmd_free(&cmd);
    resp_req_free(p);
    free(one);
}

Test(req, argv_grows_with_received_arguments)
{
    static const char hdr[] = "*1048576\r\n";
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons, i;

    alloc_track();
    cr_assert_eq(resp_req_feed(p, hdr, sizeof hdr - 1, &cons, &cmd), RESP_AGAIN);
    for (i = 1; i <= 100000; i++) {
        cr_assert_eq(resp_req_feed(p, "$1\r\nx\r\n", 7, &cons, &cmd), RESP_AGAIN);
        if (i % 1000 == 0)
            /* where each argument lies: an offset and a length */
            cr_assert_leq(alloc_largest, (i + 1) * (sizeof(char *) + sizeof(size_t)) +
                                             slack_for((i + 1) * (sizeof(char *) + sizeof(size_t))),
                          "%zu bytes allocated for %zu arguments", alloc_largest, i);
    }
    cr_assert_eq(resp_req_pending(p), 100000);
    resp_req_free(p);
}

/* ---------------------------------------------------------------- buffer */

Test(buf, append_printf_take)
{
    resp_buf b;
    size_t len, cap;
    char *s;
    int i;

    resp_buf_init(&b);
    cr_assert_null(b.data);
    resp_buf_append(&b, "ab", 2);
    resp_buf_append(&b, "\0c", 2);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(memcmp(b.data, "ab\0c", 5), 0, "NUL kept after the bytes");
    for (i = 0; i < 50; i++)
        resp_buf_printf(&b, "[%d:%s]", i, "xyz");
    cr_assert_eq(b.len, 4 + 10 * 7 + 40 * 8);
    cr_assert_str_eq(b.data + b.len - 8, "[49:xyz]");
    cap = b.cap;
    resp_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(b.data, "");
    resp_buf_printf(&b, "%s", "hello");
    s = resp_buf_take(&b, &len);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(s, "hello");
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    free(s);
    s = resp_buf_take(&b, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(s, "");
    free(s);
    resp_buf_free(&b);
}

Test(buf, printf_longer_than_capacity)
{
    resp_buf b;
    char big[5000];

    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    resp_buf_init(&b);
    resp_buf_printf(&b, "<%s>", big);
    cr_assert_eq(b.len, sizeof big + 1);
    cr_assert_eq(b.data[0], '<');
    cr_assert_eq(b.data[b.len - 1], '>');
    cr_assert_eq(b.data[b.len], '\0');
    resp_buf_free(&b);
}

/* ---------------------------------------------------------------- encoder */

/* Runs `stmt` into a fresh buffer `b` and compares with the literal. */
#define ENC(lit, stmt)                                                                   \
    do {                                                                                 \
        resp_buf b;                                                                      \
        resp_buf_init(&b);                                                               \
        stmt;                                                                            \
        EXPECT_BYTES(&b, lit);                                                           \
        resp_buf_free(&b);                                                               \
    } while (0)

Test(enc, simple_and_error)
{
    ENC("+OK\r\n", resp_add_simple(&b, "OK"));
    ENC("+\r\n", resp_add_simple(&b, ""));
    ENC("-ERR bad thing\r\n", resp_add_error(&b, "ERR bad thing"));
    ENC("-ERR a  b c\r\n", resp_add_error(&b, "ERR a\r\nb\nc"));
    ENC("-WRONGTYPE x\r\n", resp_add_error(&b, "-WRONGTYPE x"));
    ENC("-ERR unknown command 'FOO  BAR'\r\n",
        resp_add_errorf(&b, "ERR unknown command '%s'", "FOO\r\nBAR"));
    ENC("-NOJOB no job 12345678901234567890 in queue emails-high-priority-eu-west\r\n",
        resp_add_errorf(&b, "NOJOB no job %s in queue %s", "12345678901234567890",
                        "emails-high-priority-eu-west"));
}

static void add_verror(resp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resp_add_verror(b, fmt, ap);
    va_end(ap);
}

Test(enc, verror_cut_at_max)
{
    ENC("-ERR bad key 'k'\r\n", add_verror(&b, "ERR bad key '%s'", "k"));
    char key[2000];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    resp_buf b;
    resp_buf_init(&b);
    add_verror(&b, "ERR bad key '%s'", key);
    /* '-', RESP_ERROR_MAX - 1 bytes of message, CRLF */
    cr_assert_eq(b.len, 1 + (RESP_ERROR_MAX - 1) + 2);
    cr_assert(memcmp(b.data, "-ERR bad key 'kkk", 17) == 0);
    cr_assert(memcmp(b.data + b.len - 3, "k\r\n", 3) == 0);
    resp_buf_free(&b);
}

Test(enc, integers)
{
    ENC(":0\r\n", resp_add_int(&b, 0));
    ENC(":-1\r\n", resp_add_int(&b, -1));
    ENC(":42\r\n", resp_add_int(&b, 42));
    ENC(":9223372036854775807\r\n", resp_add_int(&b, LLONG_MAX));
    ENC(":-9223372036854775808\r\n", resp_add_int(&b, LLONG_MIN));
}

Test(enc, bulk_strings)
{
    ENC("$5\r\nhello\r\n", resp_add_bulk(&b, "hello", 5));
    ENC("$0\r\n\r\n", resp_add_bulk(&b, "", 0));
    ENC("$0\r\n\r\n", resp_add_bulk(&b, NULL, 0));
    ENC("$4\r\na\0\r\n\r\n", resp_add_bulk(&b, "a\0\r\n", 4));
    ENC("$3\r\nabc\r\n", resp_add_cstr(&b, "abc"));
    ENC("$10\r\n0123456789\r\n", resp_add_cstr(&b, "0123456789"));
}

Test(enc, nulls)
{
    ENC("$-1\r\n", resp_add_null(&b, 2));
    ENC("_\r\n", resp_add_null(&b, 3));
    ENC("*-1\r\n", resp_add_null_array(&b, 2));
    ENC("_\r\n", resp_add_null_array(&b, 3));
}

Test(enc, aggregates)
{
    ENC("*3\r\n", resp_add_array(&b, 3));
    ENC("*0\r\n", resp_add_array(&b, 0));
    ENC("%2\r\n", resp_add_map(&b, 3, 2));
    ENC("*4\r\n", resp_add_map(&b, 2, 2));
    ENC("%0\r\n", resp_add_map(&b, 3, 0));
    ENC("*0\r\n", resp_add_map(&b, 2, 0));
    ENC("~3\r\n", resp_add_set(&b, 3, 3));
    ENC("*3\r\n", resp_add_set(&b, 2, 3));
    ENC(">2\r\n", resp_add_push(&b, 3, 2));
    ENC("*2\r\n", resp_add_push(&b, 2, 2));
    ENC("*12345678901\r\n", resp_add_array(&b, 12345678901ull));
}

Test(enc, doubles)
{
    ENC(",1.5\r\n", resp_add_double(&b, 3, 1.5));
    ENC(",0.10000000000000001\r\n", resp_add_double(&b, 3, 0.1));
    ENC(",3\r\n", resp_add_double(&b, 3, 3.0));
    ENC(",-0\r\n", resp_add_double(&b, 3, -0.0));
    ENC(",1.0000000000000001e+300\r\n", resp_add_double(&b, 3, 1e300));
    ENC(",-2.5000000000000002e-10\r\n", resp_add_double(&b, 3, -2.5e-10));
    ENC(",inf\r\n", resp_add_double(&b, 3, INFINITY));
    ENC(",-inf\r\n", resp_add_double(&b, 3, -INFINITY));
    ENC(",nan\r\n", resp_add_double(&b, 3, NAN));
    ENC(",nan\r\n", resp_add_double(&b, 3, -NAN));
    ENC("$3\r\n1.5\r\n", resp_add_double(&b, 2, 1.5));
    ENC("$19\r\n0.10000000000000001\r\n", resp_add_double(&b, 2, 0.1));
    ENC("$3\r\ninf\r\n", resp_add_double(&b, 2, INFINITY));
    ENC("$4\r\n-inf\r\n", resp_add_double(&b, 2, -INFINITY));
    ENC("$3\r\nnan\r\n", resp_add_double(&b, 2, NAN));
}

Test(enc, booleans)
{
    ENC("#t\r\n", resp_add_bool(&b, 3, true));
    ENC("#f\r\n", resp_add_bool(&b, 3, false));
    ENC(":1\r\n", resp_add_bool(&b, 2, true));
    ENC(":0\r\n", resp_add_bool(&b, 2, false));
}

Test(enc, verbatim)
{
    ENC("=9\r\ntxt:hello\r\n", resp_add_verbatim(&b, 3, "txt", "hello", 5));
    ENC("=8\r\nmkd:# hi\r\n", resp_add_verbatim(&b, 3, "mkd", "# hi", 4));
    ENC("=4\r\ntxt:\r\n", resp_add_verbatim(&b, 3, "txt", "", 0));
    ENC("=5\r\ntxt:x\r\n", resp_add_verbatim(&b, 3, NULL, "x", 1));
    ENC("=6\r\ntxt:\r\n\r\n", resp_add_verbatim(&b, 3, "txt", "\r\n", 2));
    ENC("$5\r\nhello\r\n", resp_add_verbatim(&b, 2, "txt", "hello", 5));
}

Test(enc, commands)
{
    static const char *const argv[] = { "SET", "k", "v\0x" };
    static const size_t len[] = { 3, 1, 3 };
    static const char *const argv2[] = { "LPUSH", "emails", "{}" };

    ENC("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\0x\r\n", resp_add_command(&b, 3, argv, len));
    ENC("*3\r\n$5\r\nLPUSH\r\n$6\r\nemails\r\n$2\r\n{}\r\n", resp_add_commandv(&b, 3, argv2));
    ENC("*0\r\n", resp_add_commandv(&b, 0, argv2));
}

static void encode_job_reply(resp_buf *b, int proto)
{
    resp_add_map(b, proto, 3);
    resp_add_cstr(b, "id");
    resp_add_cstr(b, "j1");
    resp_add_cstr(b, "attempt");
    resp_add_int(b, 2);
    resp_add_cstr(b, "score");
    resp_add_double(b, proto, 0.5);
}

Test(enc, compound_reply_both_protocols)
{
    ENC("%3\r\n$2\r\nid\r\n$2\r\nj1\r\n$7\r\nattempt\r\n:2\r\n$5\r\nscore\r\n,0.5\r\n",
        encode_job_reply(&b, 3));
    ENC("*6\r\n$2\r\nid\r\n$2\r\nj1\r\n$7\r\nattempt\r\n:2\r\n$5\r\nscore\r\n$3\r\n0.5\r\n",
        encode_job_reply(&b, 2));
}

/* ---------------------------------------------------------- reader driver */

static void render_val(resp_buf *o, const resp_val *v);

static void render_elems(resp_buf *o, const resp_val *v, const char *open, const char *close,
                         bool pairs)
{
    size_t i;

    resp_buf_printf(o, "%s", open);
    for (i = 0; i < v->n; i++) {
        if (i)
            resp_buf_append(o, pairs && i % 2 ? "=" : ",", 1);
        render_val(o, v->elem[i]);
    }
    resp_buf_printf(o, "%s", close);
}

static void render_str(resp_buf *o, const char *tag, const resp_val *v)
{
    cr_assert_not_null(v->str);
    cr_assert_eq(v->str[v->len], '\0', "string value not NUL-terminated");
    resp_buf_printf(o, "%s", tag);
    render_bytes(o, v->str, v->len);
}

/* s:simple e:error i:int b:bulk nil d:double t:bool n:bignum [array]
 * {key=value,...} ~[set] >[push] */
static void render_val(resp_buf *o, const resp_val *v)
{
    switch (v->type) {
    case RESP_T_SIMPLE: render_str(o, "s:", v); break;
    case RESP_T_ERROR: render_str(o, "e:", v); break;
    case RESP_T_BULK: render_str(o, "b:", v); break;
    case RESP_T_BIGNUM: render_str(o, "n:", v); break;
    case RESP_T_INT: resp_buf_printf(o, "i:%lld", v->integer); break;
    case RESP_T_BOOL: resp_buf_printf(o, "t:%lld", v->integer); break;
    case RESP_T_NULL: resp_buf_printf(o, "nil"); break;
    case RESP_T_DOUBLE:
        if (isnan(v->dbl))
            resp_buf_printf(o, "d:nan");
        else
            resp_buf_printf(o, "d:%.17g", v->dbl);
        break;
    case RESP_T_ARRAY: render_elems(o, v, "[", "]", false); break;
    case RESP_T_SET: render_elems(o, v, "~[", "]", false); break;
    case RESP_T_PUSH: render_elems(o, v, ">[", "]", false); break;
    case RESP_T_MAP: render_elems(o, v, "{", "}", true); break;
    default: cr_assert_fail("bad type %d", v->type);
    }
}

static void run_rd(const resp_limits *lim, const char *in, size_t inlen, int mode,
                   uint32_t seed, struct req_run *r)
{
    resp_reader *rd = resp_reader_new(lim);
    size_t off = 0;
    int nvals = 0;

    resp_buf_init(&r->out);
    resp_buf_append(&r->out, "", 0);
    r->rc = RESP_AGAIN;
    r->err[0] = '\0';
    while (off < inlen && r->rc != RESP_EPROTO) {
        size_t n = chunk_len(mode, &seed, inlen - off), used = 0;
        char *chunk = malloc(n);

        memcpy(chunk, in + off, n);
        for (;;) {
            resp_val *v = (resp_val *)1;
            size_t cons = 12345;

            r->rc = resp_reader_feed(rd, chunk + used, n - used, &cons, &v);
            cr_assert_leq(cons, n - used);
            used += cons;
            if (r->rc == RESP_OK) {
                cr_assert_not_null(v);
                if (nvals++)
                    resp_buf_append(&r->out, " ", 1);
                render_val(&r->out, v);
                resp_val_free(v);
                continue;
            }
            cr_assert_null(v);
            if (r->rc == RESP_EPROTO) {
                snprintf(r->err, sizeof r->err, "%s", resp_reader_error(rd));
                break;
            }
            cr_assert_eq(r->rc, RESP_AGAIN);
            cr_assert_eq(used, n, "RESP_AGAIN must consume all input");
            break;
        }
        free(chunk);
        off += n;
    }
    resp_reader_free(rd);
}

/* ----------------------------------------------------------- reader table */

struct rd_case {
    const char *name;
    const char *in;
    size_t inlen;
    const char *want; /* rendered values separated by spaces, see render_val() */
    int rc;
    const char *err;
    uint64_t max_bulk;
    uint32_t max_args;
    uint32_t max_inline;
};

#define R_TYPE(c) "Protocol error: unexpected reply type byte '" c "'"
#define R_CRLF "Protocol error: expected CRLF"
#define R_LINE "Protocol error: line too long"
#define R_INT "Protocol error: invalid integer"
#define R_DBL "Protocol error: invalid double"
#define R_BOOL "Protocol error: invalid boolean"
#define R_NULL "Protocol error: invalid null"
#define R_BIG "Protocol error: invalid big number"
#define R_VERB "Protocol error: invalid verbatim string"

static struct rd_case rd_cases[] = {
    /* scalars */
    { "simple", IN("+OK\r\n"), "s:OK" },
    { "empty simple", IN("+\r\n"), "s:" },
    { "error", IN("-ERR bad thing\r\n"), "e:ERR bad thing" },
    { "zero", IN(":0\r\n"), "i:0" },
    { "negative", IN(":-42\r\n"), "i:-42" },
    { "int max", IN(":9223372036854775807\r\n"), "i:9223372036854775807" },
    { "int min", IN(":-9223372036854775808\r\n"), "i:-9223372036854775808" },
    { "bulk", IN("$5\r\nhello\r\n"), "b:hello" },
    { "empty bulk", IN("$0\r\n\r\n"), "b:" },
    { "binary bulk", IN("$6\r\na\0\r\nb\n\r\n"), "b:a\\x00\\x0d\\x0ab\\x0a" },
    { "null bulk", IN("$-1\r\n"), "nil" },
    { "null array", IN("*-1\r\n"), "nil" },
    { "resp3 null", IN("_\r\n"), "nil" },
    { "double", IN(",1.5\r\n"), "d:1.5" },
    { "negative double", IN(",-0.25\r\n"), "d:-0.25" },
    { "double exponent", IN(",1e10\r\n"), "d:10000000000" },
    { "integral double", IN(",3\r\n"), "d:3" },
    { "inf", IN(",inf\r\n"), "d:inf" },
    { "-inf", IN(",-inf\r\n"), "d:-inf" },
    { "nan", IN(",nan\r\n"), "d:nan" },
    { "true", IN("#t\r\n"), "t:1" },
    { "false", IN("#f\r\n"), "t:0" },
    { "bignum", IN("(3492890328409238509324850943850943825024385\r\n"),
      "n:3492890328409238509324850943850943825024385" },
    { "negative bignum", IN("(-12\r\n"), "n:-12" },
    { "blob error", IN("!9\r\nERR oops!\r\n"), "e:ERR oops!" },
    { "blob error with CRLF", IN("!7\r\nERR a\r\n\r\n"), "e:ERR a\\x0d\\x0a" },
    { "verbatim", IN("=15\r\ntxt:Some string\r\n"), "b:Some string" },
    { "empty verbatim", IN("=4\r\nmkd:\r\n"), "b:" },
    /* aggregates */
    { "empty array", IN("*0\r\n"), "[]" },
    { "array", IN("*2\r\n:1\r\n$1\r\nx\r\n"), "[i:1,b:x]" },
    { "map", IN("%2\r\n+a\r\n:1\r\n$1\r\nb\r\n#f\r\n"), "{s:a=i:1,b:b=t:0}" },
    { "empty map", IN("%0\r\n"), "{}" },
    { "set", IN("~2\r\n:1\r\n:2\r\n"), "~[i:1,i:2]" },
    { "push", IN(">3\r\n+pubsub\r\n+message\r\n$2\r\nhi\r\n"), ">[s:pubsub,s:message,b:hi]" },
    { "nested", IN("*3\r\n*2\r\n:1\r\n:2\r\n%1\r\n+k\r\n~1\r\n#t\r\n*0\r\n"),
      "[[i:1,i:2],{s:k=~[t:1]},[]]" },
    { "nulls inside", IN("*3\r\n$-1\r\n*-1\r\n_\r\n"), "[nil,nil,nil]" },
    { "deep map of arrays", IN("%1\r\n*1\r\n*1\r\n:1\r\n*2\r\n,2.5\r\n(7\r\n"),
      "{[[i:1]]=[d:2.5,n:7]}" },
    /* attributes */
    { "attribute before a value", IN("|1\r\n+ttl\r\n:3600\r\n+OK\r\n"), "s:OK" },
    { "attribute inside an array", IN("*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n"), "[i:1,i:2]" },
    { "attribute before the last element", IN("*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n"), "[i:1]" },
    { "attribute with aggregates",
      IN("|1\r\n+k\r\n*2\r\n:1\r\n%1\r\n+x\r\n+y\r\n$2\r\nok\r\n"), "b:ok" },
    { "empty attribute", IN("|0\r\n:7\r\n"), "i:7" },
    { "two attributes", IN("|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n#t\r\n"), "t:1" },
    /* pipelined and truncated */
    { "pipelined", IN("+OK\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n"), "s:OK i:1 b:a [s:x]" },
    { "truncated bulk", IN("$5\r\nhel"), "" },
    { "truncated array", IN("*2\r\n:1\r\n"), "" },
    { "truncated after CR", IN("+OK\r"), "" },
    { "complete then truncated", IN("+OK\r\n*2\r\n:1"), "s:OK" },
    { "truncated attribute", IN("|1\r\n+a\r\n+b\r\n"), "" },
    /* malformed */
    { "unknown type", IN("?x\r\n"), "", RESP_EPROTO, R_TYPE("?") },
    { "unknown type inside array", IN("*2\r\n:1\r\n@\r\n"), "", RESP_EPROTO, R_TYPE("@") },
    { "negative bulk", IN("$-2\r\n"), "", RESP_EPROTO, E_BULK },
    { "non-numeric bulk", IN("$abc\r\n"), "", RESP_EPROTO, E_BULK },
    { "overflowing bulk", IN("$99999999999999999999\r\n"), "", RESP_EPROTO, E_BULK },
    { "bulk over default max", IN("$536870913\r\n"), "", RESP_EPROTO, E_BULK },
    { "null blob error", IN("!-1\r\n"), "", RESP_EPROTO, E_BULK },
    { "negative array", IN("*-2\r\n"), "", RESP_EPROTO, E_MB },
    { "null map", IN("%-1\r\n"), "", RESP_EPROTO, E_MB },
    { "non-numeric set", IN("~x\r\n"), "", RESP_EPROTO, E_MB },
    { "negative push", IN(">-1\r\n"), "", RESP_EPROTO, E_MB },
    { "overflowing array", IN("*99999999999999999999\r\n"), "", RESP_EPROTO, E_MB },
    { "array over default max", IN("*1048577\r\n"), "", RESP_EPROTO, E_MB },
    { "bad integer", IN(":12a\r\n"), "", RESP_EPROTO, R_INT },
    { "empty integer", IN(":\r\n"), "", RESP_EPROTO, R_INT },
    { "integer with plus", IN(":+1\r\n"), "", RESP_EPROTO, R_INT },
    { "overflowing integer", IN(":9223372036854775808\r\n"), "", RESP_EPROTO, R_INT },
    { "empty double", IN(",\r\n"), "", RESP_EPROTO, R_DBL },
    { "double with junk", IN(",1.5x\r\n"), "", RESP_EPROTO, R_DBL },
    { "double with space", IN(", 1\r\n"), "", RESP_EPROTO, R_DBL },
    { "bad boolean", IN("#x\r\n"), "", RESP_EPROTO, R_BOOL },
    { "long boolean", IN("#tt\r\n"), "", RESP_EPROTO, R_BOOL },
    { "empty boolean", IN("#\r\n"), "", RESP_EPROTO, R_BOOL },
    { "null with content", IN("_x\r\n"), "", RESP_EPROTO, R_NULL },
    { "bad bignum", IN("(12a\r\n"), "", RESP_EPROTO, R_BIG },
    { "empty bignum", IN("(\r\n"), "", RESP_EPROTO, R_BIG },
    { "bignum only minus", IN("(-\r\n"), "", RESP_EPROTO, R_BIG },
    { "bulk too long", IN("$3\r\nabcd\r\n"), "", RESP_EPROTO, E_END },
    { "bulk ends in LF CR", IN("$3\r\nab\r\n\r\n"), "", RESP_EPROTO, E_END },
    { "short verbatim", IN("=3\r\nabc\r\n"), "", RESP_EPROTO, R_VERB },
    { "verbatim without colon", IN("=5\r\ntxtab\r\n"), "", RESP_EPROTO, R_VERB },
    { "simple with bare LF", IN("+OK\n"), "", RESP_EPROTO, R_CRLF },
    { "integer with bare LF", IN(":1\n"), "", RESP_EPROTO, R_CRLF },
    { "good then bad", IN("+OK\r\n:x\r\n"), "s:OK", RESP_EPROTO, R_INT },
    /* tighter limits */
    { "array at limit", IN("*2\r\n:1\r\n:2\r\n"), "[i:1,i:2]", .max_args = 2 },
    { "array over limit", IN("*3\r\n"), "", RESP_EPROTO, E_MB, .max_args = 2 },
    { "map pairs at limit", IN("%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n"), "{i:1=i:2,i:3=i:4}",
      .max_args = 2 },
    { "map pairs over limit", IN("%3\r\n"), "", RESP_EPROTO, E_MB, .max_args = 2 },
    { "attribute over limit", IN("|3\r\n"), "", RESP_EPROTO, E_MB, .max_args = 2 },
    { "bulk at limit", IN("$4\r\nabcd\r\n"), "b:abcd", .max_bulk = 4 },
    { "bulk over limit", IN("$5\r\n"), "", RESP_EPROTO, E_BULK, .max_bulk = 4 },
    { "blob error over limit", IN("!5\r\n"), "", RESP_EPROTO, E_BULK, .max_bulk = 4 },
    { "verbatim over limit", IN("=5\r\n"), "", RESP_EPROTO, E_BULK, .max_bulk = 4 },
    { "simple at limit", IN("+abcd\r\n"), "s:abcd", .max_bulk = 4 },
    { "simple over limit", IN("+abcde\r\n"), "", RESP_EPROTO, R_LINE, .max_bulk = 4 },
    { "simple over limit, no CRLF", IN("+abcde"), "", RESP_EPROTO, R_LINE, .max_bulk = 4 },
    { "integer line at limit", IN(":123\r\n"), "i:123", .max_inline = 4 },
    { "integer line over limit", IN(":12345\r\n"), "", RESP_EPROTO, R_LINE, .max_inline = 4 },
    { "header line over limit", IN("*12345"), "", RESP_EPROTO, R_LINE, .max_inline = 4 },
};

#define N_RD_CASES (sizeof rd_cases / sizeof rd_cases[0])

ParameterizedTestParameters(rd, table)
{
    static size_t idx[N_RD_CASES];
    size_t i;

    for (i = 0; i < N_RD_CASES; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_RD_CASES);
}

ParameterizedTest(size_t *i, rd, table)
{
    const struct rd_case *c = &rd_cases[*i];
    resp_limits lim = limits_with(c->max_bulk, c->max_args, c->max_inline);
    struct req_run whole, r;
    uint32_t seed;

    run_rd(&lim, c->in, c->inlen, CHUNK_WHOLE, 0, &whole);
    cr_assert_str_eq(whole.out.data, c->want, "%s: values", c->name);
    cr_assert_eq(whole.rc, c->rc, "%s: result %d (%s)", c->name, whole.rc, whole.err);
    if (c->rc == RESP_EPROTO)
        cr_assert_str_eq(whole.err, c->err, "%s: error", c->name);

    for (seed = 0; seed <= 16; seed++) {
        int mode = seed == 0 ? CHUNK_BYTES : CHUNK_RANDOM;

        run_rd(&lim, c->in, c->inlen, mode, seed, &r);
        cr_assert_str_eq(r.out.data, whole.out.data, "%s: seed %u values", c->name, seed);
        cr_assert_eq(r.rc, whole.rc, "%s: seed %u result", c->name, seed);
        cr_assert_str_eq(r.err, whole.err, "%s: seed %u error", c->name, seed);
        resp_buf_free(&r.out);
    }
    resp_buf_free(&whole.out);
}

/* --------------------------------------------------------- reader, more */

/* depth times "*1\r\n", then ":1\r\n". */
static char *nested_arrays(int depth, size_t *len)
{
    char *s = malloc((size_t)depth * 4 + 5);
    int i;

    for (i = 0; i < depth; i++)
        memcpy(s + 4 * i, "*1\r\n", 4);
    memcpy(s + 4 * depth, ":1\r\n", 4);
    *len = (size_t)depth * 4 + 4;
    return s;
}

Test(rd, nesting_at_limit)
{
    size_t len;
    char *in = nested_arrays(RESP_MAX_NESTING, &len);
    struct req_run r;
    resp_buf want;
    int i;

    resp_buf_init(&want);
    for (i = 0; i < RESP_MAX_NESTING; i++)
        resp_buf_append(&want, "[", 1);
    resp_buf_append(&want, "i:1", 3);
    for (i = 0; i < RESP_MAX_NESTING; i++)
        resp_buf_append(&want, "]", 1);
    run_rd(NULL, in, len, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_AGAIN, "%s", r.err);
    cr_assert_str_eq(r.out.data, want.data);
    resp_buf_free(&r.out);
    run_rd(NULL, in, len, CHUNK_BYTES, 0, &r);
    cr_assert_str_eq(r.out.data, want.data);
    resp_buf_free(&r.out);
    resp_buf_free(&want);
    free(in);
}

Test(rd, nesting_over_limit)
{
    size_t len;
    char *in = nested_arrays(RESP_MAX_NESTING + 1, &len);
    struct req_run r;

    run_rd(NULL, in, len, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, "Protocol error: nesting too deep");
    cr_assert_str_eq(r.out.data, "");
    resp_buf_free(&r.out);
    run_rd(NULL, in, len, CHUNK_BYTES, 0, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, "Protocol error: nesting too deep");
    resp_buf_free(&r.out);
    free(in);
}

/* depth times "*1\r\n", then an attribute and ":1\r\n". */
static char *nested_with_attribute(int depth, size_t *len)
{
    static const char attr[] = "|1\r\n+a\r\n+b\r\n:1\r\n";
    char *s = malloc((size_t)depth * 4 + sizeof attr);
    int i;

    for (i = 0; i < depth; i++)
        memcpy(s + 4 * i, "*1\r\n", 4);
    memcpy(s + 4 * depth, attr, sizeof attr);
    *len = (size_t)depth * 4 + sizeof attr - 1;
    return s;
}

Test(rd, attribute_counts_as_nesting)
{
    size_t len;
    char *in = nested_with_attribute(RESP_MAX_NESTING - 1, &len);
    struct req_run r;
    resp_buf want;
    int i;

    resp_buf_init(&want);
    for (i = 0; i < RESP_MAX_NESTING - 1; i++)
        resp_buf_append(&want, "[", 1);
    resp_buf_append(&want, "i:1", 3);
    for (i = 0; i < RESP_MAX_NESTING - 1; i++)
        resp_buf_append(&want, "]", 1);
    run_rd(NULL, in, len, CHUNK_WHOLE, 0, &r);
    cr_assert_eq(r.rc, RESP_AGAIN, "%s", r.err);
    cr_assert_str_eq(r.out.data, want.data);
    resp_buf_free(&r.out);
    resp_buf_free(&want);
    free(in);

    in = nested_with_attribute(RESP_MAX_NESTING, &len);
    run_rd(NULL, in, len, CHUNK_BYTES, 0, &r);
    cr_assert_eq(r.rc, RESP_EPROTO);
    cr_assert_str_eq(r.err, "Protocol error: nesting too deep");
    resp_buf_free(&r.out);
    free(in);
}

Test(rd, consumed_stops_after_each_reply)
{
    static const char in[] = "+OK\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n";
    static const size_t want[] = { 5, 4, 14 };
    resp_reader *r = resp_reader_new(NULL);
    size_t off = 0, cons, i;
    resp_val *v;

    for (i = 0; i < 3; i++) {
        cr_assert_eq(resp_reader_feed(r, in + off, sizeof in - 1 - off, &cons, &v), RESP_OK);
        cr_assert_eq(cons, want[i], "reply %zu consumed %zu", i, cons);
        resp_val_free(v);
        off += cons;
    }
    cr_assert_eq(off, sizeof in - 1);
    resp_reader_free(r);
}

Test(rd, dead_after_error)
{
    resp_reader *r = resp_reader_new(NULL);
    resp_val *v;
    size_t cons;

    cr_assert_eq(resp_reader_feed(r, "*1\r\n:x\r\n", 8, &cons, &v), RESP_EPROTO);
    cr_assert_str_eq(resp_reader_error(r), R_INT);
    cr_assert_eq(resp_reader_feed(r, "+OK\r\n", 5, &cons, &v), RESP_EPROTO);
    cr_assert_eq(cons, 0);
    cr_assert_null(v);
    resp_reader_free(r);
}

Test(rd, announced_sizes_are_not_preallocated)
{
    static const char bulk[] = "$536870912\r\nabc";
    static const char arr[] = "*1048576\r\n:1\r\n";
    resp_reader *r = resp_reader_new(NULL);
    resp_val *v;
    size_t cons;

    alloc_track();
    cr_assert_eq(resp_reader_feed(r, bulk, sizeof bulk - 1, &cons, &v), RESP_AGAIN);
    cr_assert_leq(alloc_largest, RESP_PREALLOC_MAX, "allocated %zu", alloc_largest);
    resp_reader_free(r);
    r = resp_reader_new(NULL);
    alloc_track();
    cr_assert_eq(resp_reader_feed(r, arr, sizeof arr - 1, &cons, &v), RESP_AGAIN);
    cr_assert_leq(alloc_largest, 256, "allocated %zu for one element", alloc_largest);
    resp_reader_free(r);
}

/* Reads exactly one value from a NUL-free literal. */
static resp_val *read_one(const char *in)
{
    resp_reader *r = resp_reader_new(NULL);
    resp_val *v = NULL;
    size_t cons;

    cr_assert_eq(resp_reader_feed(r, in, strlen(in), &cons, &v), RESP_OK);
    cr_assert_eq(cons, strlen(in));
    resp_reader_free(r);
    return v;
}

Test(rd, val_get_on_map_and_flat_array)
{
    const char *ins[] = {
        "%3\r\n+id\r\n$3\r\nj-1\r\n$7\r\npayload\r\n$2\r\n{}\r\n$7\r\nattempt\r\n:3\r\n",
        "*6\r\n+id\r\n$3\r\nj-1\r\n$7\r\npayload\r\n$2\r\n{}\r\n$7\r\nattempt\r\n:3\r\n",
    };
    size_t i;

    for (i = 0; i < 2; i++) {
        resp_val *v = read_one(ins[i]);
        const resp_val *f;

        f = resp_val_get(v, "id");
        cr_assert_not_null(f);
        cr_assert_eq(f->type, RESP_T_BULK);
        cr_assert_str_eq(f->str, "j-1");
        f = resp_val_get(v, "payload");
        cr_assert_not_null(f);
        cr_assert_str_eq(f->str, "{}");
        f = resp_val_get(v, "attempt");
        cr_assert_not_null(f);
        cr_assert_eq(f->type, RESP_T_INT);
        cr_assert_eq(f->integer, 3);
        cr_assert_null(resp_val_get(v, "missing"));
        cr_assert_null(resp_val_get(v, "i"));
        cr_assert_null(resp_val_get(v, "j-1"), "values are not keys");
        resp_val_free(v);
    }
}

Test(rd, val_get_refuses_other_shapes)
{
    resp_val *odd = read_one("*3\r\n+a\r\n:1\r\n+b\r\n");
    resp_val *num = read_one(":5\r\n");
    resp_val *intkey = read_one("%1\r\n:5\r\n+x\r\n");
    resp_val *set = read_one("~2\r\n+a\r\n+b\r\n");

    cr_assert_null(resp_val_get(odd, "a"));
    cr_assert_null(resp_val_get(num, "5"));
    cr_assert_null(resp_val_get(intkey, "5"));
    cr_assert_null(resp_val_get(set, "a"));
    cr_assert_null(resp_val_get(NULL, "a"));
    resp_val_free(odd);
    resp_val_free(num);
    resp_val_free(intkey);
    resp_val_free(set);
    resp_val_free(NULL);
}

/* -------------------------------------------------------------- round trip */

static void expect_same_command(const resp_cmd *c, int argc, const char *const *argv,
                                const size_t *len)
{
    int i;

    cr_assert_eq(c->argc, argc);
    cr_assert_not(c->inline_form);
    for (i = 0; i < argc; i++) {
        cr_assert_eq(c->len[i], len[i], "argument %d length", i);
        cr_assert_eq(memcmp(c->argv[i], argv[i], len[i]), 0, "argument %d bytes", i);
    }
}

Test(roundtrip, command_encoder_to_request_parser)
{
    size_t big_len = 100000, i, sizes[] = { 0, 1, 3, 1000 };
    char *big = malloc(big_len);
    const char *argv[] = { "JOB.PUSH", "", "a\0b\r\n", NULL, "*3", "$-1", " spaced \"q\" " };
    size_t len[] = { 8, 0, 5, 0, 2, 3, 12 };
    int argc = 7, k;
    resp_buf b;

    for (i = 0; i < big_len; i++)
        big[i] = (char)(i * 7);
    argv[3] = big;
    len[3] = big_len;
    resp_buf_init(&b);
    resp_add_command(&b, argc, argv, len);
    for (k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++) {
        resp_req_parser *p = resp_req_new(NULL);
        size_t off = 0, step = sizes[k] ? sizes[k] : b.len, cons;
        resp_cmd cmd;
        int rc = RESP_AGAIN;

        while (off < b.len && rc == RESP_AGAIN) {
            size_t m = b.len - off < step ? b.len - off : step;

            rc = resp_req_feed(p, b.data + off, m, &cons, &cmd);
            off += cons;
        }
        cr_assert_eq(rc, RESP_OK, "chunk %zu", step);
        cr_assert_eq(off, b.len);
        expect_same_command(&cmd, argc, argv, len);
        resp_cmd_free(&cmd);
        resp_req_free(p);
    }
    resp_buf_free(&b);
    free(big);
}

Test(roundtrip, commandv_to_request_parser)
{
    const char *argv[] = { "BRPOP", "emails", "0" };
    const size_t len[] = { 5, 6, 1 };
    resp_req_parser *p = resp_req_new(NULL);
    resp_cmd cmd;
    size_t cons;
    resp_buf b;

    resp_buf_init(&b);
    resp_add_commandv(&b, 3, argv);
    cr_assert_eq(resp_req_feed(p, b.data, b.len, &cons, &cmd), RESP_OK);
    cr_assert_eq(cons, b.len);
    expect_same_command(&cmd, 3, argv, len);
    resp_cmd_free(&cmd);
    resp_req_free(p);
    resp_buf_free(&b);
}

static void encode_every_type(resp_buf *b, int proto)
{
    resp_add_array(b, 13);
    resp_add_simple(b, "OK");
    resp_add_error(b, "ERR no");
    resp_add_int(b, -7);
    resp_add_bulk(b, "a\0b", 3);
    resp_add_null(b, proto);
    resp_add_null_array(b, proto);
    resp_add_map(b, proto, 1);
    resp_add_cstr(b, "k");
    resp_add_set(b, proto, 1);
    resp_add_int(b, 1);
    resp_add_push(b, proto, 1);
    resp_add_simple(b, "m");
    resp_add_double(b, proto, 2.5);
    resp_add_double(b, proto, -INFINITY);
    resp_add_bool(b, proto, true);
    resp_add_verbatim(b, proto, "txt", "v", 1);
    resp_add_errorf(b, "ERR %d", 5);
}

Test(roundtrip, encoder_to_reader)
{
    static const char *want3 =
        "[s:OK,e:ERR no,i:-7,b:a\\x00b,nil,nil,{b:k=~[i:1]},>[s:m],d:2.5,d:-inf,t:1,b:v,"
        "e:ERR 5]";
    static const char *want2 =
        "[s:OK,e:ERR no,i:-7,b:a\\x00b,nil,nil,[b:k,[i:1]],[s:m],b:2.5,b:-inf,i:1,b:v,"
        "e:ERR 5]";
    struct req_run r;
    resp_buf b;

    resp_buf_init(&b);
    encode_every_type(&b, 3);
    run_rd(NULL, b.data, b.len, CHUNK_BYTES, 0, &r);
    cr_assert_eq(r.rc, RESP_AGAIN, "%s", r.err);
    cr_assert_str_eq(r.out.data, want3);
    resp_buf_free(&r.out);
    resp_buf_reset(&b);
    encode_every_type(&b, 2);
    run_rd(NULL, b.data, b.len, CHUNK_RANDOM, 3, &r);
    cr_assert_eq(r.rc, RESP_AGAIN, "%s", r.err);
    cr_assert_str_eq(r.out.data, want2);
    resp_buf_free(&r.out);
    resp_buf_free(&b);
}
