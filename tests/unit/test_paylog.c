/*
 * test_paylog.c - the payload log (broker/paylog.h): the record format,
 * appends and reads, what recovery makes of a torn tail and of damage,
 * rotation, live counts and the deletion of dead segments, the backup copy,
 * and the journal rows that point into it (journal_set_paylog).
 */
#include <criterion/criterion.h>

#include "journal.h"
#include "paylog.h"
#include "queue.h"

#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void rm_tree(const char *d)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    char p[600];
    if (!dd)
        return;
    while ((e = readdir(dd)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            if (unlink(p) < 0)
                rm_tree(p);
        }
    closedir(dd);
    rmdir(d);
}

static void setup(void)
{
    strcpy(dir, "/tmp/spool-paylog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    rm_tree(dir);
}

TestSuite(paylog, .init = setup, .fini = teardown);

static struct paylog *plopen(uint64_t seg_max)
{
    struct paylog *pl = NULL;
    int rc = paylog_open(&pl, dir, 0, seg_max);
    cr_assert_eq(rc, 0, "paylog_open: %d %s", rc, pl ? paylog_error(pl) : "");
    return pl;
}

static bool seg_exists(uint32_t no)
{
    char p[200];
    snprintf(p, sizeof p, "%s/shard-0.payload.%u", dir, no);
    return access(p, F_OK) == 0;
}

static char *body_of(char ch, size_t n)
{
    char *b = malloc(n + 1);
    memset(b, ch, n);
    b[n] = '\0';
    return b;
}

/* ---------------------------------------------------------------- format */

Test(paylog, crc32c_matches_the_standard_check_value)
{
    cr_assert_eq(paylog_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(paylog_crc32c(0, "", 0), 0u);
    /* chained calls equal one call */
    uint32_t c = paylog_crc32c(0, "12345", 5);
    cr_assert_eq(paylog_crc32c(c, "6789", 4), 0xE3069283u);
}

Test(paylog, a_record_header_round_trips_and_any_changed_byte_is_refused)
{
    unsigned char h[PAYLOG_REC_HEADER];
    paylog_rec_header(h, 0x0123456789abcdefULL, 65536, 0xdeadbeef);
    uint64_t id;
    uint32_t len, crc;
    cr_assert_eq(paylog_rec_parse(h, &id, &len, &crc), 0);
    cr_assert_eq(id, 0x0123456789abcdefULL);
    cr_assert_eq(len, 65536u);
    cr_assert_eq(crc, 0xdeadbeefu);
    /* little-endian, field by field */
    cr_assert_eq(h[0], 'S');
    cr_assert_eq(h[4], 0x00);
    cr_assert_eq(h[6], 0x01);
    cr_assert_eq(h[8], 0xef);
    for (int i = 0; i < PAYLOG_REC_HEADER; i++) {
        unsigned char bad[PAYLOG_REC_HEADER];
        memcpy(bad, h, sizeof bad);
        bad[i] ^= 0x10;
        cr_assert_eq(paylog_rec_parse(bad, &id, &len, &crc), -EILSEQ, "byte %d changed, still accepted", i);
    }
}

/* --------------------------------------------------------- append, read */

Test(paylog, appended_payloads_read_back_and_a_wrong_id_or_body_is_damage)
{
    struct paylog *pl = plopen(1 << 20);
    char *a = body_of('a', 5000), *b = body_of('b', 7);
    struct paylog_ref ra, rb;
    cr_assert_eq(paylog_append(pl, 1, a, 5000, &ra), 0);
    cr_assert_eq(paylog_append(pl, 2, b, 7, &rb), 0);
    cr_assert_eq(ra.seg, 1u);
    cr_assert_eq(ra.off, (uint64_t)PAYLOG_FILE_HEADER);
    cr_assert_eq(rb.off, ra.off + PAYLOG_REC_HEADER + 5000);
    char *out = NULL;
    cr_assert_eq(paylog_read(pl, &rb, 2, &out), 0, "%s", paylog_error(pl));
    cr_assert_str_eq(out, b);
    free(out);
    cr_assert_eq(paylog_read(pl, &ra, 1, &out), 0);
    cr_assert_eq(memcmp(out, a, 5000), 0);
    free(out);
    cr_assert_eq(paylog_read(pl, &ra, 3, &out), -EILSEQ, "another job's record was read");
    cr_assert(strstr(paylog_error(pl), "shard-0.payload.1"), "%s", paylog_error(pl));
    cr_assert(strstr(paylog_error(pl), "backup"), "%s", paylog_error(pl));
    /* flip a byte of a's body on disk: the checksum catches it */
    char p[200];
    snprintf(p, sizeof p, "%s/shard-0.payload.1", dir);
    int fd = open(p, O_RDWR);
    cr_assert(pwrite(fd, "Z", 1, (off_t)(ra.off + PAYLOG_REC_HEADER + 100)) == 1);
    close(fd);
    cr_assert_eq(paylog_read(pl, &ra, 1, &out), -EILSEQ);
    cr_assert(strstr(paylog_error(pl), "checksum"), "%s", paylog_error(pl));
    cr_assert_null(out);
    paylog_close(pl);
    free(a);
    free(b);
}

/* ------------------------------------------------------------- recovery */

Test(paylog, a_torn_tail_of_the_newest_segment_is_a_push_never_acknowledged)
{
    struct paylog *pl = plopen(1 << 20);
    char *body = body_of('t', 3000);
    struct paylog_ref r[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(paylog_append(pl, 10 + (uint64_t)i, body, 3000, &r[i]), 0);
    paylog_close(pl);
    char p[200];
    snprintf(p, sizeof p, "%s/shard-0.payload.1", dir);
    /* the third is torn: its header and length are there, a block of its
     * body never reached the disk (zeros) */
    int fd = open(p, O_RDWR);
    char zeros[512] = { 0 };
    cr_assert(pwrite(fd, zeros, sizeof zeros, (off_t)(r[2].off + PAYLOG_REC_HEADER + 1024)) == 512);
    close(fd);
    pl = plopen(1 << 20);
    cr_assert_eq(paylog_check(pl, &r[0], 10), 0, "%s", paylog_error(pl));
    cr_assert_eq(paylog_check(pl, &r[1], 11), 0);
    cr_assert_eq(paylog_check(pl, &r[2], 12), -ENODATA);
    cr_assert(!seg_exists(2), "a new segment before anything was appended");
    struct paylog_ref n;
    cr_assert_eq(paylog_append(pl, 13, body, 3000, &n), 0);
    cr_assert_eq(n.seg, 2u, "appends go to a new segment, never after a torn tail");
    paylog_close(pl);
    /* one open later, segment 1 is no longer the newest: the same torn
     * record is damage, not a push in flight (its header is whole: the
     * read's checksum says so) */
    pl = plopen(1 << 20);
    char *out = NULL;
    cr_assert_eq(paylog_read(pl, &r[2], 12, &out), -EILSEQ);
    cr_assert_eq(paylog_check(pl, &n, 13), 0);
    paylog_close(pl);
    free(body);
}

Test(paylog, a_record_that_does_not_match_its_row_or_a_missing_segment_is_damage)
{
    struct paylog *pl = plopen(1 << 20);
    struct paylog_ref r;
    cr_assert_eq(paylog_append(pl, 7, "hello", 5, &r), 0);
    struct paylog_ref wrong = r;
    wrong.off += 1;
    cr_assert_eq(paylog_check(pl, &wrong, 7), -EILSEQ);
    cr_assert(strstr(paylog_error(pl), "job 0000000000000007"), "%s", paylog_error(pl));
    wrong = r;
    wrong.crc ^= 1;
    cr_assert_eq(paylog_check(pl, &wrong, 7), -EILSEQ);
    wrong = r;
    wrong.seg = 99;
    cr_assert_eq(paylog_check(pl, &wrong, 7), -EILSEQ);
    cr_assert(strstr(paylog_error(pl), "missing"), "%s", paylog_error(pl));
    paylog_close(pl);
}

/* ---------------------------------------------------- rotation, reclaim */

/* A log of 4 KiB segments with n records of 1500 bytes of ch, ids from id0. */
static struct paylog *filled(int n, uint64_t id0, char ch, struct paylog_ref *r, char **body)
{
    struct paylog *pl = plopen(4096);
    *body = body_of(ch, 1500);
    for (int i = 0; i < n; i++)
        cr_assert_eq(paylog_append(pl, id0 + (uint64_t)i, *body, 1500, &r[i]), 0);
    return pl;
}

Test(paylog, segments_rotate_and_a_dead_one_goes_only_after_a_commit_and_a_durable_point)
{
    struct paylog_ref r[6];
    char *body;
    struct paylog *pl = filled(6, 100, 'r', r, &body);
    cr_assert_eq(r[0].seg, 1u);
    cr_assert_eq(r[1].seg, 1u);
    cr_assert_eq(r[2].seg, 2u, "4 KiB segments hold two 1.5 KiB records");
    cr_assert_eq(r[5].seg, 3u);
    paylog_unref(pl, r[0].seg, r[0].len);
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(seg_exists(1), "segment 1 still holds a live payload");
    paylog_unref(pl, r[1].seg, r[1].len);
    paylog_durable(pl);
    cr_assert(seg_exists(1), "deleted before the commit that emptied it");
    paylog_committed(pl);
    paylog_pin(pl, true);
    paylog_durable(pl);
    cr_assert(seg_exists(1), "deleted while pinned by a backup");
    paylog_pin(pl, false);
    paylog_durable(pl);
    cr_assert(!seg_exists(1), "an empty segment was kept after its deletes were durable");
    /* the active segment stays even when empty */
    for (int i = 2; i < 6; i++)
        paylog_unref(pl, r[i].seg, r[i].len);
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(!seg_exists(2));
    cr_assert(seg_exists(3), "the active segment was deleted");
    char *out = NULL;
    cr_assert_eq(paylog_read(pl, &r[5], 105, &out), 0);
    free(out);
    struct paylog_stat st;
    paylog_stats(pl, &st);
    cr_assert_eq(st.segments, 1u);
    cr_assert_eq(st.live_bytes, 0u, "every row was deleted");
    cr_assert_eq(st.disk_bytes, PAYLOG_FILE_HEADER + 2 * (PAYLOG_REC_HEADER + 1500u));
    paylog_close(pl);
    free(body);
}

Test(paylog, a_backup_copies_the_segments_as_they_were_when_it_started)
{
    struct paylog_ref r[3];
    char *body;
    struct paylog *pl = filled(3, 1, 'k', r, &body);
    char bdir[200];
    snprintf(bdir, sizeof bdir, "%s/bk", dir);
    cr_assert_eq(mkdir(bdir, 0700), 0);
    struct paylog_backup *b = NULL;
    cr_assert_eq(paylog_backup_start(pl, bdir, &b), 0);
    struct paylog_ref later;
    cr_assert_eq(paylog_append(pl, 9, body, 1500, &later), 0); /* not in the copy */
    int rc, steps = 0;
    while ((rc = paylog_backup_step(b, 1000)) > 0)
        cr_assert_lt(++steps, 100);
    cr_assert_eq(rc, 0, "%s", paylog_error(pl));
    paylog_backup_end(b);
    paylog_close(pl);
    struct paylog *copy = NULL;
    cr_assert_eq(paylog_open(&copy, bdir, 0, 4096), 0);
    for (int i = 0; i < 3; i++) {
        char *out = NULL;
        cr_assert_eq(paylog_check(copy, &r[i], 1 + (uint64_t)i), 0, "%s", paylog_error(copy));
        cr_assert_eq(paylog_read(copy, &r[i], 1 + (uint64_t)i, &out), 0, "%s", paylog_error(copy));
        cr_assert_eq(memcmp(out, body, 1500), 0);
        free(out);
    }
    cr_assert_neq(paylog_check(copy, &later, 9), 0, "a record appended after the start was copied");
    paylog_close(copy);
    free(body);
}

/* --------------------------------------------------------- the journal */

static struct journal *jopen(struct paylog *pl, uint32_t min)
{
    char path[200];
    snprintf(path, sizeof path, "%s/shard-0.db", dir);
    struct journal *j = NULL;
    int rc = journal_open(&j, path, 0);
    cr_assert_eq(rc, 0, "journal_open: %d %s", rc, j ? journal_error(j) : "");
    journal_set_paylog(j, pl, min);
    return j;
}

static struct queue *mkqueue(const char *name)
{
    struct queue *q = calloc(1, sizeof *q);
    q->name = strdup(name);
    q->namelen = strlen(name);
    qconf_defaults(&q->conf, 0);
    return q;
}

static void push(struct journal *j, struct queue *q, uint64_t id, const char *payload)
{
    struct job *job = job_new(id, payload, strlen(payload));
    job->q = q;
    job->state = JOB_READY;
    job->pos = (int64_t)id;
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_insert(j, job), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
    job_free(job);
}

/* A log, a journal using it for payloads of at least min bytes, a queue. */
static void open_all(struct paylog **pl, struct journal **j, struct queue **q, uint32_t min, const char *name)
{
    *pl = plopen(1 << 20);
    *j = jopen(*pl, min);
    *q = mkqueue(name);
}

static void close_all(struct journal *j, struct paylog *pl, struct queue *q)
{
    journal_close(j);
    paylog_close(pl);
    free(q->name);
    free(q);
}

struct seen {
    uint64_t ids[16];
    uint32_t lens[16];
    int n;
};

static int on_job(void *arg, struct job *job, const char *queue, size_t len)
{
    struct seen *s = arg;
    cr_assert_lt(s->n, 16);
    s->ids[s->n] = job->id;
    s->lens[s->n++] = job->len;
    job_free(job);
    return 0;
}

static int row_seg(struct journal *j, uint64_t id)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(journal_sqlite(j), "SELECT coalesce(p.seg, 0) FROM jobs j LEFT JOIN payloads p ON p.id = j.id "
                                    "WHERE j.id = ?1", -1,
                                    &st, NULL), 0);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

Test(paylog, the_journal_puts_large_payloads_in_the_file_and_small_ones_in_its_rows)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    open_all(&pl, &j, &q, 100, "big");
    char *large = body_of('L', 200);
    push(j, q, 1, large);
    push(j, q, 2, "small");
    cr_assert_eq(row_seg(j, 1), 1, "the 200-byte payload is not in segment 1");
    cr_assert_eq(row_seg(j, 2), 0, "the small payload left its row");
    char *out = NULL;
    size_t n = 0;
    cr_assert_eq(journal_payload(j, 1, &out, &n), 0, "%s", journal_error(j));
    cr_assert_eq(n, 200u);
    cr_assert_str_eq(out, large);
    free(out);
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), 0, "%s", journal_error(j));
    cr_assert_eq(s.n, 2);
    cr_assert_eq(s.lens[0], 200u, "the length of a payload in the file");
    cr_assert_eq(s.lens[1], 5u);
    free(large);
    close_all(j, pl, q);
}

Test(paylog, a_job_whose_record_is_torn_is_dropped_at_load_and_deletes_count_down)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    open_all(&pl, &j, &q, 1, "torn");
    push(j, q, 1, "\"first\"");
    push(j, q, 2, "\"second\"");
    journal_close(j);
    paylog_close(pl);
    char p[200];
    snprintf(p, sizeof p, "%s/shard-0.payload.1", dir);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(truncate(p, st.st_size - 3), 0); /* the power took the end of job 2's record */
    pl = plopen(1 << 20);
    j = jopen(pl, 1);
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), 0, "%s", journal_error(j));
    cr_assert_eq(s.n, 1, "the job whose record was torn was loaded");
    cr_assert_eq(s.ids[0], 1u);
    cr_assert_eq(row_seg(j, 2), 1, "the left-out job's row went before journal_drop_torn()");
    int64_t commits = journal_commits(j);
    cr_assert_eq(journal_drop_torn(j), 0, "%s", journal_error(j));
    cr_assert_eq(row_seg(j, 2), -1, "the dropped job's row is still there");
    cr_assert_eq(journal_commits(j), commits, "dropping counted as a commit (a cut WAL would look whole)");
    /* job 1 is the only row in segment 1: deleting it empties the segment */
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_delete(j, 1), 0);
    cr_assert_eq(journal_commit(j), 0);
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(seg_exists(1), "the newest segment was deleted while no newer one existed");
    push(j, q, 3, "\"third\""); /* starts segment 2 */
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(!seg_exists(1), "the emptied segment was kept");
    cr_assert(seg_exists(2));
    close_all(j, pl, q);
}

Test(paylog, a_row_pointing_into_the_file_without_the_log_open_is_refused)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    open_all(&pl, &j, &q, 1, "x");
    push(j, q, 1, "\"v\"");
    journal_set_paylog(j, NULL, 0);
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), -EILSEQ);
    cr_assert(strstr(journal_error(j), "payload file"), "%s", journal_error(j));
    close_all(j, pl, q);
}

/* A record whose commit never happened (a failed commit, or the power went
 * before the WAL was synced) is an orphan: the load counts only rows, the
 * orphan is never read, and a segment holding only orphans goes. */
Test(paylog, orphan_records_are_ignored_and_their_segment_goes)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    open_all(&pl, &j, &q, 1, "orphans");
    struct paylog_ref orphan;
    cr_assert_eq(paylog_append(pl, 77, "\"never committed\"", 17, &orphan), 0);
    push(j, q, 1, "\"kept\"");
    journal_close(j);
    paylog_close(pl);
    pl = plopen(1 << 20);
    j = jopen(pl, 1);
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), 0, "%s", journal_error(j));
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.ids[0], 1u);
    cr_assert_eq(journal_begin(j), 0);
    cr_assert_eq(journal_job_delete(j, 1), 0);
    cr_assert_eq(journal_commit(j), 0);
    push(j, q, 2, "\"next\""); /* this run's first append: segment 2 */
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(!seg_exists(1), "a segment holding only an orphan record was kept");
    char *out = NULL;
    size_t n = 0;
    cr_assert_eq(journal_payload(j, 2, &out, &n), 0, "%s", journal_error(j));
    cr_assert_str_eq(out, "\"next\"");
    free(out);
    close_all(j, pl, q);
}

/* ----------------------------------------------------------- compaction */

static void delete_jobs(struct journal *j, struct paylog *pl, uint64_t from, uint64_t to);

/* 8 KiB segments of five 1500-byte records: jobs 1-15 fill segments 1-3.
 * copied: then jobs 1-4 deleted and the first step copied job 5. */
static void compact_fixture(struct paylog **pl, struct journal **j, struct queue **q, char **body, bool copied)
{
    *pl = plopen(8192);
    *j = jopen(*pl, 1);
    *q = mkqueue("compact");
    *body = body_of('c', 1500);
    for (uint64_t id = 1; id <= 15; id++) {
        (*body)[0] = (char)('a' + id); /* each job's payload its own */
        push(*j, *q, id, *body);
    }
    cr_assert_eq(row_seg(*j, 5), 1);
    cr_assert_eq(row_seg(*j, 10), 2);
    cr_assert_eq(row_seg(*j, 15), 3);
    if (!copied)
        return;
    delete_jobs(*j, *pl, 1, 4);
    cr_assert_eq(journal_compact_step(*j, 1 << 20), 1, "%s", journal_error(*j));
}

static void delete_jobs(struct journal *j, struct paylog *pl, uint64_t from, uint64_t to)
{
    cr_assert_eq(journal_begin(j), 0);
    for (uint64_t id = from; id <= to; id++)
        cr_assert_eq(journal_job_delete(j, id), 0, "%s", journal_error(j));
    cr_assert_eq(journal_commit(j), 0);
    paylog_committed(pl);
    paylog_durable(pl);
}

static void expect_payload(struct journal *j, uint64_t id, char *body)
{
    char *out = NULL;
    size_t n = 0;
    body[0] = (char)('a' + id);
    cr_assert_eq(journal_payload(j, id, &out, &n), 0, "job %d: %s", (int)id, journal_error(j));
    cr_assert_eq(n, 1500u);
    cr_assert(memcmp(out, body, n) == 0, "job %d's payload changed", (int)id);
    free(out);
}

Test(paylog, compaction_empties_a_closed_segment_below_a_quarter_live_and_keeps_the_bytes)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    char *body;
    compact_fixture(&pl, &j, &q, &body, false);
    delete_jobs(j, pl, 6, 8); /* segment 2: 2 of 5 live, 40 %: kept as it is */
    cr_assert(!paylog_compact_wanted(pl), "a segment 40 %% live was taken");
    delete_jobs(j, pl, 1, 4); /* segment 1: 1 of 5 live, 20 % */
    cr_assert(paylog_compact_wanted(pl));
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1, "%s", journal_error(j));
    cr_assert(paylog_compact_waiting(pl), "job 5's copy does not wait for a sync");
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1);
    cr_assert_eq(row_seg(j, 5), 1, "a row moved to a copy no sync took yet");
    cr_assert(!journal_in_txn(j), "a step wrote a row while its copy waited");
    cr_assert_eq(paylog_sync(pl), 0);
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1, "%s", journal_error(j));
    cr_assert(journal_in_txn(j), "the rows did not move in a transaction");
    cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
    cr_assert_geq(row_seg(j, 5), 3, "job 5's row still points into segment 1");
    cr_assert_eq(row_seg(j, 9), 2, "a row of the segment left alone moved");
    expect_payload(j, 5, body);
    cr_assert(seg_exists(1));
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(!seg_exists(1), "the compacted segment stayed after its commit was durable");
    cr_assert(seg_exists(2));
    cr_assert_eq(journal_compact_step(j, 1 << 20), 0, "work left once segment 1 went");
    struct paylog_stat st;
    paylog_stats(pl, &st);
    cr_assert_eq(st.compactions, 1u);
    cr_assert_eq(st.moved_bytes, PAYLOG_REC_HEADER + 1500u);
    cr_assert_eq(st.live_bytes, 8 * (PAYLOG_REC_HEADER + 1500u), "jobs 5, 9-15 are the live ones");
    for (uint64_t id = 9; id <= 15; id++)
        expect_payload(j, id, body);
    /* a load counts the same */
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), 0, "%s", journal_error(j));
    paylog_stats(pl, &st);
    cr_assert_eq(st.live_bytes, 8 * (PAYLOG_REC_HEADER + 1500u));
    free(body);
    close_all(j, pl, q);
}

Test(paylog, a_job_deleted_while_its_copy_waits_keeps_no_row_and_its_copy_is_no_live_byte)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    char *body;
    compact_fixture(&pl, &j, &q, &body, true);
    delete_jobs(j, pl, 5, 5); /* acked meanwhile */
    cr_assert_eq(paylog_sync(pl), 0);
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1);
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_eq(row_seg(j, 5), -1, "the deleted job's row came back");
    struct paylog_stat st;
    paylog_stats(pl, &st);
    cr_assert_eq(st.live_bytes, 10 * (PAYLOG_REC_HEADER + 1500u), "the orphan copy counts as live");
    paylog_committed(pl);
    paylog_durable(pl);
    cr_assert(!seg_exists(1));
    free(body);
    close_all(j, pl, q);
}

Test(paylog, a_reopen_between_the_copy_and_the_move_keeps_the_row_on_the_old_record)
{
    struct paylog *pl;
    struct journal *j;
    struct queue *q;
    char *body;
    compact_fixture(&pl, &j, &q, &body, true);
    journal_close(j); /* a stop (or a cut) before the rows moved */
    paylog_close(pl);
    pl = plopen(8192);
    j = jopen(pl, 1);
    struct seen s = { .n = 0 };
    cr_assert_eq(journal_load(j, false, NULL, on_job, &s), 0, "%s", journal_error(j));
    cr_assert_eq(s.n, 11);
    cr_assert_eq(row_seg(j, 5), 1);
    expect_payload(j, 5, body);
    /* and it starts over: the copy made before is an orphan */
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1);
    cr_assert_eq(paylog_sync(pl), 0);
    cr_assert_eq(journal_compact_step(j, 1 << 20), 1);
    cr_assert_eq(journal_commit(j), 0);
    cr_assert_gt(row_seg(j, 5), 3, "job 5 is not in this run's segment");
    expect_payload(j, 5, body);
    free(body);
    close_all(j, pl, q);
}

/* ------------------------------------------------------ spare segments */

Test(paylog, a_sync_request_makes_the_next_segment_and_carries_the_closed_ones_last_sync)
{
    struct paylog *pl = plopen(4096);
    char *body = body_of('s', 1500);
    struct paylog_ref r[4];
    struct paylog_pending p;
    cr_assert_eq(paylog_append(pl, 1, body, 1500, &r[0]), 0);
    cr_assert(paylog_take_sync(pl, &p));
    cr_assert_eq(p.spare, pl, "no spare asked for");
    cr_assert_eq(p.spare_no, 2u);
    cr_assert_lt(p.fd2, 0, "a closed segment to sync where none is");
    cr_assert_eq(paylog_append(pl, 2, body, 1500, &r[1]), 0);
    cr_assert_eq(paylog_append(pl, 3, body, 1500, &r[2]), 0);
    cr_assert_eq(r[2].seg, 1u, "rotated while the spare was still being made");
    cr_assert(!seg_exists(2));
    cr_assert_eq(paylog_sync_pending(&p), 0);
    paylog_make_spare(&p);
    cr_assert(seg_exists(2), "no spare was made");
    paylog_durable(pl); /* MSG_SYNCED */
    cr_assert_eq(paylog_append(pl, 4, body, 1500, &r[3]), 0);
    cr_assert_eq(r[3].seg, 2u, "the full segment did not switch to the spare");
    cr_assert(paylog_take_sync(pl, &p));
    cr_assert_geq(p.fd2, 0, "segment 1's last sync is not in the request");
    cr_assert(strstr(p.path2, "payload.1"), "%s", p.path2);
    cr_assert_eq(p.spare_no, 3u);
    cr_assert_eq(paylog_sync_pending(&p), 0);
    paylog_make_spare(&p);
    paylog_durable(pl);
    cr_assert(!paylog_take_sync(pl, &p), "segment 1 synced again");
    for (int i = 0; i < 4; i++) {
        char *out = NULL;
        cr_assert_eq(paylog_read(pl, &r[i], (uint64_t)i + 1, &out), 0, "%s", paylog_error(pl));
        free(out);
    }
    paylog_close(pl);
    /* at open, the newest two (the spare and segment 2) may be torn;
     * segment 1 no more */
    char p2[200];
    snprintf(p2, sizeof p2, "%s/shard-0.payload.2", dir);
    cr_assert_eq(truncate(p2, (off_t)r[3].off + 100), 0);
    pl = plopen(4096);
    cr_assert_eq(paylog_check(pl, &r[3], 4), -ENODATA);
    cr_assert_eq(paylog_check(pl, &r[2], 3), 0);
    paylog_close(pl);
    free(body);
}
