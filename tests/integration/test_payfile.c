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
#include <sys/stat.h>

#include "harness.h"

TestSuite(payfile, .timeout = 120);

#define NJOBS 24
#define BODY 6000 /* ten records to a 64 KiB segment */

/* Segments with a record in them (a spare, made ahead of use, holds
 * only its 16-byte header); *bytes: all the segments' bytes. */
static int count_segments_bytes(const spoold *s, long long *bytes)
{
    char dir[400], path[700];
    snprintf(dir, sizeof dir, "%s/data", s->dir);
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s: %s", dir, strerror(errno));
    int n = 0;
    *bytes = 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!strstr(e->d_name, ".payload.") || stat(path, &st) < 0)
            continue;
        n += st.st_size > 16;
        *bytes += st.st_size;
    }
    closedir(d);
    return n;
}

static int count_segments(const spoold *s)
{
    long long bytes;
    return count_segments_bytes(s, &bytes);
}

static int count_files(const spoold *s)
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
    cr_assert_eq(count_segments(s), before, "a start keeps the segments (a new one comes with the first push)");
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
    cr_assert(wait_until(count_segments(s) == 0, 5000), "after every ack, %d segment(s) with records are left",
              count_segments(s));
    cli_close(c);

    /* after one more restart and a push, the last run's emptied segment goes too */
    spoold_term(s);
    spoold_restart(s, "--shards", "1", "--payload-file-min", "4kb", "--payload-file-segment", "64kb", NULL);
    c = cli_connect(s->port);
    char *p = payload(99);
    jid last = PUSH(c, "pf", p);
    free(p);
    expect_payload_of(c, last.s, 99);
    cr_assert(wait_until(count_files(s) == 2, 5000), "an empty segment from the last run was kept (%d files; "
              "2 = this run's and the next, made ahead by the push's sync)", count_files(s));
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
    cr_assert_eq(count_segments(s), 0, "with --payload-file-min 0 a payload file was written");
    spoold_term(s);
    spoold_restart(s, "--shards", "1", NULL); /* the default min: the old row is still read */
    c = cli_connect(s->port);
    expect_payload_of(c, id.s, 1);
    cli_close(c);
    spoold_stop(s);
}

/* A segment is closed in the middle of a turn: the records written into it
 * since its last sync belong to the commit that the sync thread covers by
 * syncing the new segment, so the old one must be synced too (its last
 * sync rides on that request). Job a fills half of a 4 KiB segment and is
 * synced (segment 2 is then made ahead); b (still fits) and c (starts
 * segment 2) come in one transaction; the power goes right after their
 * acknowledgement: all three are there after the restart. */
Test(payfile, records_of_a_closed_segment_survive_a_power_cut)
{
    const char *args[] = { "--shards", "1", "--payload-file-min", "1", "--payload-file-segment", "4kb" };
    spoold *s = spoold_start(args[0], args[1], args[2], args[3], args[4], args[5], "--enable-debug-command", "yes",
                             NULL);
    cli *c = cli_connect(s->port);
    char body[3][1501];
    for (int i = 0; i < 3; i++) {
        memset(body[i], 'a' + i, 1500);
        body[i][0] = body[i][1499] = '"';
        body[i][1500] = '\0';
    }
    jid a = PUSH(c, "closed", body[0]);
    /* segment 1 (16 + 24 + 1500 bytes) and the spare's header, as INFO sees
     * them (every second): then the spare is ready for the switch */
    cr_assert(wait_until(info_field(c, "persistence", "payload_file_bytes") == 1540 + 16, 5000),
              "no next segment made ahead after a's sync");
    expect_ok(CMD(c, "MULTI"));
    expect_simple(CMD(c, "JOB.PUSH", "closed", body[1]), "QUEUED");
    expect_simple(CMD(c, "JOB.PUSH", "closed", body[2]), "QUEUED");
    resp_val *v = CMD(c, "EXEC");
    cr_assert(v->type == RESP_T_ARRAY && v->n == 2 && v->elem[0]->type == RESP_T_BULK &&
              v->elem[1]->type == RESP_T_BULK, "EXEC: %s", resp_describe(v));
    char idb[48], idc[48];
    snprintf(idb, sizeof idb, "%s", v->elem[0]->str);
    snprintf(idc, sizeof idc, "%s", v->elem[1]->str);
    resp_val_free(v);
    cr_assert_geq(count_segments(s), 2, "the second push of the transaction did not start segment 2");
    SEND(c, "DEBUG", "POWER-CUT");
    cr_assert(cli_wait_closed(c, 30000), "spoold did not end with the power cut");
    cli_close(c);
    spoold_kill9(s); /* reaps it: the seam has exited already */
    int rc = spoold_restart_may_fail(s, args[0], args[1], args[2], args[3], args[4], args[5], NULL);
    char *log = spoold_log(s);
    cr_assert_eq(rc, 0, "spoold did not start after the cut; log:\n%s", log);
    free(log);
    c = cli_connect(s->port);
    const char *ids[3] = { a.s, idb, idc };
    for (int i = 0; i < 3; i++) {
        v = CMD(c, "JOB.GET", ids[i]);
        const char *got = v->type == RESP_T_NULL ? NULL : field_str(v, "payload");
        cr_assert(got && strcmp(got, body[i]) == 0, "job %s (%c) lost or changed by the power cut", ids[i], 'a' + i);
        resp_val_free(v);
    }
    cli_close(c);
    spoold_stop(s);
}

/* Reserves and acks every job of queue q; how many. */
static int ack_all(cli *c, const char *q)
{
    int acked = 0;
    for (;;) {
        resp_val *v = CMD(c, "JOB.RESERVE", "NOWAIT", "COUNT", "16", "FROM", q);
        if (v->type != RESP_T_ARRAY || v->n == 0) {
            resp_val_free(v);
            return acked;
        }
        for (size_t k = 0; k < v->n; k++, acked++)
            expect_int(CMD(c, "JOB.ACK", field_str(v->elem[k], "receipt")), 1);
        resp_val_free(v);
    }
}

/* Compaction: ten 6000-byte jobs to a 64 KiB segment, three segments; one
 * job of each stays (queue pf-keep: a job that waits a week), the others
 * are acked. Each segment is then 10 % live and would stay on disk for the
 * kept job alone: compaction copies the three into one segment and the old
 * ones go. The payloads read back, after a restart too, and from a backup
 * taken after it. */
Test(payfile, compaction_frees_the_segments_a_long_lived_job_kept)
{
#define PF_ARGS "--shards", "1", "--payload-file-min", "4kb", "--payload-file-segment", "64kb"
    spoold *s = spoold_start(PF_ARGS, NULL);
    cli *c = cli_connect(s->port);
    expect_ok(CMD(c, "QUEUE.CONFIG", "pf-go", "SET", "retention", "0"));
    jid keep[3];
    for (int i = 0; i < 30; i++) {
        char *p = payload(i);
        jid id = PUSH(c, i % 10 == 3 ? "pf-keep" : "pf-go", p);
        if (i % 10 == 3)
            keep[i / 10] = id;
        free(p);
    }
    long long before, after;
    cr_assert_eq(count_segments_bytes(s, &before), 3);
    cr_assert_eq(ack_all(c, "pf-go"), 27);
    cr_assert(wait_until(count_segments(s) == 1, 15000), "compaction left %d segments with records",
              count_segments(s));
    count_segments_bytes(s, &after);
    cr_assert_lt(after * 3, before, "on disk: %lld bytes before, %lld after", before, after);
    cr_assert_geq(info_field(c, "persistence", "payload_file_compactions"), 2);
    cr_assert(wait_until(info_field(c, "persistence", "payload_file_live_bytes") == 3 * (BODY + 24), 5000));
    cr_assert(wait_until(info_field(c, "persistence", "payload_file_bytes") == after, 5000),
              "INFO's payload_file_bytes is not the %lld bytes on disk", after);
    for (int k = 0; k < 3; k++)
        expect_payload_of(c, keep[k].s, 10 * k + 3);
    char backup[400];
    snprintf(backup, sizeof backup, "%s/after-compaction", s->dir);
    resp_val *v = CMD(c, "BACKUP", backup);
    cr_assert_eq(v->type, RESP_T_SIMPLE, "BACKUP: %s", resp_describe(v));
    resp_val_free(v);
    cli_close(c);

    spoold_term(s);
    spoold_restart(s, PF_ARGS, NULL);
    c = cli_connect(s->port);
    for (int k = 0; k < 3; k++)
        expect_payload_of(c, keep[k].s, 10 * k + 3);
    cli_close(c);
    spoold_term(s);
    spoold_restart(s, PF_ARGS, "--data-dir", backup, NULL);
    c = cli_connect(s->port);
    for (int k = 0; k < 3; k++)
        expect_payload_of(c, keep[k].s, 10 * k + 3);
    cr_assert(wait_until(info_field(c, "persistence", "payload_file_live_bytes") == 3 * (BODY + 24), 5000),
              "the backup's live bytes");
    cli_close(c);
    spoold_stop(s);
#undef PF_ARGS
}
