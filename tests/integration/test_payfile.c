/*
 * test_payfile.c - the payload file (broker/paylog.h) through a real spoold:
 * large payloads go to shard-<k>.payload.<n>, read back after restarts
 * (JOB.GET, JOB.RESERVE), segments go once the jobs in them are acked and
 * the acks are durable, and small payloads stay in the journal. The kill -9
 * and power-cut rounds with the payload file are in test_crash.c and
 * test_powercut.c, the backup in tests/security/test_backup.c.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(payfile, .timeout = 120);

#define NJOBS 24
#define BODY 6000 /* ten records to a 64 KiB segment */

static int count_segments(const spoold *s)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/data", s->dir);
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".payload.") != NULL;
    closedir(d);
    return n;
}

/* A JSON string payload of BODY bytes that names job i. */
static char *payload(int i)
{
    char *p = malloc(BODY + 1);
    int n = snprintf(p, BODY + 1, "\"job %d ", i);
    memset(p + n, 'x', (size_t)(BODY - n - 1));
    p[BODY - 1] = '"';
    p[BODY] = '\0';
    return p;
}

static void expect_payload_of(cli *c, const char *id, int i)
{
    resp_val *v = CMD(c, "JOB.GET", id);
    char *want = payload(i);
    const char *got = field_str(v, "payload");
    cr_assert(got && strcmp(got, want) == 0, "job %s: JOB.GET's payload is not job %d's", id, i);
    free(want);
    resp_val_free(v);
}

Test(payfile, large_payloads_live_in_segments_that_go_once_their_jobs_are_acked)
{
    spoold *s = spoold_start("--shards", "1", "--payload-file-min", "4kb", "--payload-file-segment", "64kb", NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "pf", "SET", "retention", "0"));
    jid ids[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        char *p = payload(i);
        ids[i] = PUSH(c, "pf", p);
        free(p);
    }
    jid small = PUSH(c, "pf-small", "\"tiny\"");
    int before = count_segments(s);
    cr_assert_geq(before, 3, "%d jobs of %d bytes in 64 KiB segments made %d segment(s)", NJOBS, BODY, before);
    cli_close(c);

    /* a restart: the segments stay, payloads are read from them */
    spoold_term(s);
    spoold_restart(s, "--shards", "1", "--payload-file-min", "4kb", "--payload-file-segment", "64kb", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(count_segments(s), before + 1, "a start adds one new active segment and keeps the others");
    for (int i = 0; i < NJOBS; i += 5)
        expect_payload_of(c, ids[i].s, i);
    resp_val *v = CMD(c, "JOB.GET", small.s);
    cr_assert_str_eq(field_str(v, "payload"), "\"tiny\"");
    resp_val_free(v);

    /* every large job reserved and acked: only the active segment stays */
    int acked = 0;
    for (int round = 0; round < NJOBS && acked < NJOBS; round++) {
        v = CMD(c, "JOB.RESERVE", "NOWAIT", "COUNT", "8", "FROM", "pf");
        cr_assert_eq(v->type, RESP_T_ARRAY, "JOB.RESERVE: %s", resp_describe(v));
        for (size_t k = 0; k < v->n; k++) {
            expect_int(CMD(c, "JOB.ACK", field_str(v->elem[k], "receipt")), 1);
            acked++;
        }
        resp_val_free(v);
    }
    cr_assert_eq(acked, NJOBS);
    cr_assert(wait_until(count_segments(s) == 1, 5000), "after every ack, %d segment(s) are left",
              count_segments(s));
    cli_close(c);

    /* and after one more restart the emptied active segment goes too */
    spoold_term(s);
    spoold_restart(s, "--shards", "1", "--payload-file-min", "4kb", "--payload-file-segment", "64kb", NULL);
    c = cli_connect(s->port);
    cr_assert_eq(count_segments(s), 1, "an empty segment from the last run was kept");
    v = CMD(c, "JOB.GET", small.s);
    cr_assert_str_eq(field_str(v, "payload"), "\"tiny\"");
    resp_val_free(v);
    cli_close(c);
    spoold_stop(s);
}

Test(payfile, off_keeps_every_payload_in_the_journal)
{
    spoold *s = spoold_start("--shards", "1", "--payload-file-min", "0", NULL);
    cli *c = cli_connect(s->port);
    char *p = payload(1);
    jid id = PUSH(c, "pf", p);
    expect_payload_of(c, id.s, 1);
    free(p);
    cli_close(c);
    cr_assert_eq(count_segments(s), 1, "with --payload-file-min 0, only the empty active segment");
    spoold_term(s);
    spoold_restart(s, "--shards", "1", NULL); /* the default min: the old row is still read */
    c = cli_connect(s->port);
    expect_payload_of(c, id.s, 1);
    cli_close(c);
    spoold_stop(s);
}
