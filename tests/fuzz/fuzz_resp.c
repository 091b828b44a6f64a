/*
 * fuzz_resp.c - fuzz target for proto/: the request parser and the reply
 * reader get arbitrary bytes, whole and in chunks, and must either return
 * values or a protocol error, never crash, leak or read out of bounds.
 *
 * Two builds of this file:
 *   - libFuzzer (scripts/fuzz, clang): LLVMFuzzerTestOneInput below, for
 *     long coverage-guided runs over tests/fuzz/corpus.
 *   - test_fuzz (Criterion, any compiler; run by scripts/test): a bounded,
 *     deterministic mutation loop over the same corpus calling the same
 *     function, SPOOL_FUZZ_ITERS iterations (default 200000).
 */
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over what a parser produced: whole and chunked feeds must agree
 * on every byte of every value, not only on how many there were. */
static void fold(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void fold_val(uint64_t *h, const resp_val *v)
{
    fold(h, &v->type, sizeof v->type);
    fold(h, &v->integer, sizeof v->integer);
    fold(h, &v->len, sizeof v->len);
    if (v->str)
        fold(h, v->str, v->len);
    fold(h, &v->n, sizeof v->n);
    for (size_t i = 0; i < v->n; i++)
        fold_val(h, v->elem[i]);
}

/* Feeds p[0..n) to a parser in chunks of the given size; frees what it
 * gets, folding it into *h. Returns the number of values parsed. */
static int feed_requests(const uint8_t *p, size_t n, size_t chunk, uint64_t *h)
{
    resp_limits lim = resp_limits_default();
    lim.max_bulk = 1 << 20;
    lim.max_args = 4096;
    resp_req_parser *rp = resp_req_new(&lim);
    int got = 0;
    size_t off = 0;
    while (off < n) {
        size_t len = n - off < chunk ? n - off : chunk, used = 0;
        resp_cmd cmd;
        int rc = resp_req_feed(rp, (const char *)p + off, len, &used, &cmd);
        if (rc == RESP_OK) {
            fold(h, &cmd.argc, sizeof cmd.argc);
            for (int i = 0; i < cmd.argc; i++) {
                if (cmd.argv[i][cmd.len[i]] != '\0')
                    abort(); /* arguments are NUL-terminated */
                fold(h, &cmd.len[i], sizeof cmd.len[i]);
                fold(h, cmd.argv[i], cmd.len[i]);
            }
            resp_cmd_free(&cmd);
            got++;
        } else if (rc == RESP_EPROTO) {
            if (!resp_req_error(rp)[0])
                abort();
            fold(h, "E", 1);
            break;
        }
        if (used > len)
            abort();
        off += used;
        if (rc == RESP_AGAIN && used == 0)
            break;
    }
    resp_req_free(rp);
    return got;
}

static int feed_replies(const uint8_t *p, size_t n, size_t chunk, uint64_t *h)
{
    resp_limits lim = resp_limits_default();
    lim.max_bulk = 1 << 20;
    lim.max_args = 4096;
    resp_reader *r = resp_reader_new(&lim);
    int got = 0;
    size_t off = 0;
    while (off < n) {
        size_t len = n - off < chunk ? n - off : chunk, used = 0;
        resp_val *v = NULL;
        int rc = resp_reader_feed(r, (const char *)p + off, len, &used, &v);
        if (rc == RESP_OK) {
            resp_val_get(v, "a");
            fold_val(h, v);
            resp_val_free(v);
            got++;
        } else if (rc == RESP_EPROTO) {
            fold(h, "E", 1);
            break;
        }
        off += used;
        if (rc == RESP_AGAIN && used == 0)
            break;
    }
    resp_reader_free(r);
    return got;
}

/* Returns how many requests and replies the input held (the same whole and
 * in chunks, value for value, or it aborts). */
int spool_fuzz_one(const uint8_t *data, size_t size);
int spool_fuzz_one(const uint8_t *data, size_t size)
{
    /* Chunking must not change what is parsed. */
    uint64_t hw = 0xcbf29ce484222325ULL, hb = hw;
    int whole = feed_requests(data, size, size ? size : 1, &hw);
    int bytes = feed_requests(data, size, 1, &hb);
    if (whole != bytes || hw != hb)
        abort();
    hw = hb = 0xcbf29ce484222325ULL;
    int rw = feed_replies(data, size, size ? size : 1, &hw);
    int rb = feed_replies(data, size, 3, &hb);
    if (rw != rb || hw != hb)
        abort();
    return whole + rw;
}

#ifdef SPOOL_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spool_fuzz_one(data, size);
    return 0;
}
#endif
