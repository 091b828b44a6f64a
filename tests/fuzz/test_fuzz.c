/*
 * test_fuzz.c - the bounded, deterministic fuzz run of proto/ that CI does
 * (the long coverage-guided run is scripts/fuzz). Mutates the seed corpus
 * (bit flips, byte insertions and deletions, splices, interesting lengths)
 * and runs every mutant through spool_fuzz_one (fuzz_resp.c), which aborts
 * on any inconsistency; ASan/UBSan catch memory errors in the sanitizer pass.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int spool_fuzz_one(const uint8_t *data, size_t size);

#define MAX_SEEDS 64
#define MAX_LEN 4096

static uint8_t seeds[MAX_SEEDS][MAX_LEN];
static size_t seed_len[MAX_SEEDS];
static int nseeds;

static void load_corpus(void)
{
    DIR *d = opendir(FUZZ_CORPUS);
    cr_assert_not_null(d, "corpus %s missing", FUZZ_CORPUS);
    struct dirent *e;
    while ((e = readdir(d)) && nseeds < MAX_SEEDS) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FUZZ_CORPUS, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        seed_len[nseeds] = fread(seeds[nseeds], 1, MAX_LEN, f);
        fclose(f);
        nseeds++;
    }
    closedir(d);
    cr_assert_geq(nseeds, 3);
}

static uint64_t rng = 0x5eed5eed5eedULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t mutate(uint8_t *buf, size_t len)
{
    static const char *const tokens[] = { "\r\n", "*", "$", "-1", "2147483648", "99999999999999999999",
                                          "%", "~", ">", "|", "\"", "'", "\\x", "*-2\r\n", "$0\r\n\r\n" };
    int rounds = 1 + (int)(next() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t pos = len ? next() % (len + 1) : 0;
        switch (next() % 5) {
        case 0: /* flip a bit */
            if (len)
                buf[pos % len] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1: /* delete a run */
            if (len) {
                size_t n = 1 + next() % 8;
                if (pos + n > len)
                    n = len - pos;
                memmove(buf + pos, buf + pos + n, len - pos - n);
                len -= n;
            }
            break;
        case 2: { /* insert a token */
            const char *t = tokens[next() % (sizeof tokens / sizeof tokens[0])];
            size_t n = strlen(t);
            if (len + n < MAX_LEN) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, t, n);
                len += n;
            }
            break;
        }
        case 3: { /* splice another seed */
            int k = (int)(next() % (uint64_t)nseeds);
            size_t n = seed_len[k] / 2;
            if (len + n < MAX_LEN) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, seeds[k], n);
                len += n;
            }
            break;
        }
        default: /* a random byte */
            if (len)
                buf[pos % len] = (uint8_t)next();
        }
    }
    return len;
}

Test(fuzz, mutated_corpus_never_breaks_the_parsers, .timeout = 600)
{
    load_corpus();
    const char *env = getenv("SPOOL_FUZZ_ITERS");
    long iters = env ? atol(env) : 200000;
    static uint8_t buf[MAX_LEN];
    for (int k = 0; k < nseeds; k++)
        cr_assert_gt(spool_fuzz_one(seeds[k], seed_len[k]), 0, "seed %d parses to nothing", k);
    long parsed = 0;
    for (long i = 0; i < iters; i++) {
        int k = (int)(next() % (uint64_t)nseeds);
        memcpy(buf, seeds[k], seed_len[k]);
        size_t len = mutate(buf, seed_len[k]);
        parsed += spool_fuzz_one(buf, len) > 0; /* aborts on any disagreement */
    }
    /* mutants that still parse exercise the parsers past the first error */
    cr_assert_gt(parsed, iters / 10, "only %ld of %ld mutated inputs parsed to anything", parsed, iters);
}

Test(fuzz, the_oracle_counts_requests_and_replies)
{
    static const char two[] = "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
    /* as requests: 2; as replies: the same bytes are 2 arrays of bulks */
    cr_assert_eq(spool_fuzz_one((const uint8_t *)two, sizeof two - 1), 4);
    cr_assert_eq(spool_fuzz_one((const uint8_t *)"+OK\r\n", 5), 2, "a status line: one reply, and one inline request");
    cr_assert_eq(spool_fuzz_one((const uint8_t *)"*1\r\n$99999999999\r\n", 19), 0, "over the bulk limit: nothing");
    cr_assert_eq(spool_fuzz_one((const uint8_t *)"", 0), 0);
}
