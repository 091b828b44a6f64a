/*
 * test_damage.c - damaged data is loud (issue 14, finding 4), against real
 * spoold processes (tests/support/harness.h):
 *
 *   missing shard-1.db + -wal of a 2-shard directory: was a silent start
 *       serving 330 of 660 jobs; now refused naming the file and the fix;
 *       --recover starts and logs exactly how many jobs could not be read
 *   missing shard-0.db (which held the shard count): refused too
 *   WAL cut to 50 % after kill -9: was 443 of 600 served with no word; now
 *       refused naming the WAL, --check reports CUT, --recover logs the loss
 *   a shard file from another data directory: refused as foreign
 *   spoold --check on a sound directory: OK with the counts per state
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(damage, .timeout = 120);

#define NQ 60
#define PER_Q 11 /* 660 jobs, spread over the shards by queue name */

static void data_file(const spoold *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/data/%s", s->dir, name);
}

/* LPUSHes PER_Q jobs to each of NQ queues, pipelined. */
static void push_all(cli *c)
{
    for (int q = 0; q < NQ; q++) {
        char name[16];
        snprintf(name, sizeof name, "q%d", q);
        cli_send(c, "LPUSH", name, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", NULL);
    }
    for (int q = 0; q < NQ; q++)
        expect_int(cli_read(c), PER_Q);
}

static long long count_all(cli *c)
{
    long long n = 0;
    for (int q = 0; q < NQ; q++) {
        char name[16];
        snprintf(name, sizeof name, "q%d", q);
        n += llen(c, name);
    }
    return n;
}

static void expect_log_has(const spoold *s, const char *part)
{
    char *log = spoold_log(s);
    cr_expect(strstr(log, part), "the log should say \"%s\"; it is:\n%s", part, log);
    free(log);
}

static void remove_data(const spoold *s, const char *name)
{
    char path[512];
    data_file(s, name, path, sizeof path);
    unlink(path);
}

/* spoold --check on s's data dir: exit status and output (caller frees). */
static int check_dir(const spoold *s, char **out)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/data", s->dir);
    char *argv[] = { (char *)spoold_path(), "--check", dir, NULL };
    return run_capture(argv, out, 30000);
}

static void missing_file(const char *gone, long long *served_after_recover, spoold **out)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    push_all(c);
    cr_assert_eq(count_all(c), NQ * PER_Q);
    cli_close(c);
    spoold_term(s);
    char wal[64];
    snprintf(wal, sizeof wal, "%s-wal", gone);
    remove_data(s, gone);
    remove_data(s, wal);
    int code = spoold_restart_may_fail(s, "--shards", "2", NULL);
    cr_assert_neq(code, 0, "spoold started without %s: it must refuse", gone);
    char want[128];
    snprintf(want, sizeof want, "%s is missing", gone);
    expect_log_has(s, want);
    expect_log_has(s, "--recover");
    char *text = NULL;
    cr_expect_eq(check_dir(s, &text), 1, "--check should report the damage:\n%s", text);
    cr_expect(strstr(text, "MISSING"), "--check output: %s", text);
    free(text);
    cr_assert_eq(spoold_restart_may_fail(s, "--shards", "2", "--recover", NULL), 0);
    c = cli_connect(s->port);
    *served_after_recover = count_all(c);
    cli_close(c);
    *out = s;
}

Test(damage, missing_shard1_refused_then_recover_counts_the_loss)
{
    spoold *s;
    long long served;
    missing_file("shard-1.db", &served, &s);
    cr_expect_lt(served, NQ * PER_Q, "shard 1's jobs cannot be there");
    char want[128];
    snprintf(want, sizeof want, "%lld job(s) could not be read (it held %lld at its last commit mark",
             NQ * PER_Q - served, NQ * PER_Q - served);
    expect_log_has(s, want);
    spoold_term(s);
    char *text = NULL;
    cr_expect_eq(check_dir(s, &text), 0, "after --recover the directory is sound again:\n%s", text);
    free(text);
    spoold_destroy(s);
}

Test(damage, missing_shard0_refused)
{
    spoold *s;
    long long served;
    missing_file("shard-0.db", &served, &s);
    cr_expect_lt(served, NQ * PER_Q);
    spoold_stop(s);
}

Test(damage, cut_wal_refused_check_reports_recover_counts)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    push_all(c);
    cli_close(c);
    spoold_kill9(s); /* before the idle checkpoint (1 s) folds the WAL into the file */
    char wal[512];
    data_file(s, "shard-0.db-wal", wal, sizeof wal);
    struct stat st;
    cr_assert(stat(wal, &st) == 0 && st.st_size > 100000, "the WAL should hold the pushes (size %lld)",
              (long long)st.st_size);
    cr_assert(truncate(wal, st.st_size / 2) == 0);
    cr_assert_neq(spoold_restart_may_fail(s, "--shards", "1", NULL), 0, "a cut WAL must refuse the start");
    expect_log_has(s, "shard-0.db-wal) was removed, cut or damaged");
    expect_log_has(s, "--recover");
    char *text = NULL;
    cr_expect_eq(check_dir(s, &text), 1, "--check:\n%s", text);
    cr_expect(strstr(text, "CUT"), "--check output: %s", text);
    free(text);
    cr_assert_eq(spoold_restart_may_fail(s, "--shards", "1", "--recover", NULL), 0);
    c = cli_connect(s->port);
    long long served = count_all(c);
    cli_close(c);
    cr_expect_lt(served, NQ * PER_Q);
    char want[128];
    snprintf(want, sizeof want, "%lld job(s) could not be read (it held %d", NQ * PER_Q - served, NQ * PER_Q);
    expect_log_has(s, want);
    spoold_stop(s);
}

Test(damage, foreign_shard_file_refused)
{
    spoold *a = spoold_start("--shards", "1", NULL);
    spoold *b = spoold_start("--shards", "1", NULL);
    spoold_term(a);
    spoold_term(b);
    char from[512], to[512];
    data_file(b, "shard-0.db", from, sizeof from);
    data_file(a, "shard-0.db", to, sizeof to);
    cr_assert(rename(from, to) == 0);
    cr_assert_neq(spoold_restart_may_fail(a, "--shards", "1", NULL), 0, "a foreign shard file must refuse the start");
    expect_log_has(a, "belongs to another data directory");
    spoold_destroy(a);
    spoold_destroy(b);
}

Test(damage, check_sound_dir_counts_states)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    push_all(c);
    cli_close(c);
    spoold_term(s);
    char *text = NULL;
    cr_expect_eq(check_dir(s, &text), 0, "--check:\n%s", text);
    cr_expect(strstr(text, "OK: 0 problem(s)"), "--check output: %s", text);
    /* Both shards' ready counts add up to every job pushed. */
    long long sum = 0;
    for (const char *p = text; (p = strstr(p, " job(s): ")); p += 9)
        sum += strtoll(p + 9, NULL, 10);
    cr_expect_eq(sum, NQ * PER_Q, "ready jobs per shard should add up to %d:\n%s", NQ * PER_Q, text);
    free(text);
    spoold_destroy(s);
}
