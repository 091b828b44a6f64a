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

/* Feeds p[0..n) to a parser in chunks of the given size; frees what it
 * gets. Returns the number of values parsed. */
static int feed_requests(const uint8_t *p, size_t n, size_t chunk)
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
            for (int i = 0; i < cmd.argc; i++)
                if (cmd.argv[i][cmd.len[i]] != '\0')
                    abort(); /* arguments are NUL-terminated */
            resp_cmd_free(&cmd);
            got++;
        } else if (rc == RESP_EPROTO) {
            if (!resp_req_error(rp)[0])
                abort();
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

static int feed_replies(const uint8_t *p, size_t n, size_t chunk)
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
            resp_val_free(v);
            got++;
        } else if (rc == RESP_EPROTO) {
            break;
        }
        off += used;
        if (rc == RESP_AGAIN && used == 0)
            break;
    }
    resp_reader_free(r);
    return got;
}

int spool_fuzz_one(const uint8_t *data, size_t size);
int spool_fuzz_one(const uint8_t *data, size_t size)
{
    /* Chunking must not change what is parsed. */
    int whole = feed_requests(data, size, size ? size : 1);
    int bytes = feed_requests(data, size, 1);
    if (whole != bytes)
        abort();
    int rw = feed_replies(data, size, size ? size : 1);
    int rb = feed_replies(data, size, 3);
    if (rw != rb)
        abort();
    return 0;
}

#ifdef SPOOL_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return spool_fuzz_one(data, size);
}
#endif
