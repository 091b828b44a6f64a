/*
 * test_backup.c - BACKUP and `spool backup`, and the documented restore
 * (docs/operations.md, Backups and damage), against real spoold processes:
 *
 *   push a first set, BACKUP, push a second set and ack some of the first,
 *   stop, empty the data directory, copy the backup in, start: exactly the
 *   first set is there, in order, and spoold --check calls it sound
 *   `spool backup DIR` with a relative DIR writes a complete backup there
 *   a directory that already holds a backup is refused; so is one whose
 *   parent does not exist
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#ifndef SPOOL_CLI_PATH
#define SPOOL_CLI_PATH "spool"
#endif

TestSuite(backup, .timeout = 120);

#define NQ 20
#define FIRST 7

static void qname(int q, char *out, size_t cap)
{
    snprintf(out, cap, "bq%d", q);
}

/* RPUSHes items from..to-1 (payloads are their numbers) to every queue. */
static void push_range(cli *c, int from, int to)
{
    for (int q = 0; q < NQ; q++) {
        char name[16];
        qname(q, name, sizeof name);
        for (int i = from; i < to; i++) {
            char p[16];
            snprintf(p, sizeof p, "%d", i);
            cli_send(c, "RPUSH", name, p, NULL);
        }
    }
    for (int q = 0; q < NQ; q++)
        for (int i = from; i < to; i++)
            expect_int(cli_read(c), i + 1);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    cr_assert(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

/* The documented restore: empty the data directory, copy the backup in. */
static void restore(const spoold *s, const char *backup)
{
    char data[400], path[800], to[800];
    snprintf(data, sizeof data, "%s/data", s->dir);
    DIR *d = opendir(data);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", data, e->d_name);
            cr_assert(unlink(path) == 0, "rm %s", path);
        }
    closedir(d);
    d = opendir(backup);
    cr_assert(d, "open the backup %s", backup);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", backup, e->d_name);
            snprintf(to, sizeof to, "%s/%s", data, e->d_name);
            copy_file(path, to);
            n++;
        }
    closedir(d);
    cr_assert_geq(n, 2, "the backup holds a MANIFEST and shard files");
}

static void expect_first_set(cli *c)
{
    for (int q = 0; q < NQ; q++) {
        char name[16];
        qname(q, name, sizeof name);
        cr_expect_eq(llen(c, name), FIRST, "queue %s after the restore", name);
        resp_val *v = cli_cmd(c, "LRANGE", name, "0", "-1", NULL);
        cr_assert_eq(v->type, RESP_T_ARRAY);
        for (size_t i = 0; i < v->n && i < FIRST; i++) {
            char p[16];
            snprintf(p, sizeof p, "%zu", i);
            cr_expect_str_eq(v->elem[i]->str, p, "queue %s item %zu", name, i);
        }
        resp_val_free(v);
    }
}

static int check_dir(const char *dir, char **out)
{
    char *argv[] = { (char *)spoold_path(), "--check", (char *)dir, NULL };
    return run_capture(argv, out, 30000);
}

/* Push a first set, BACKUP, push more and pop some, restore: exactly the
 * first set. With payload_file, every payload is in the payload file
 * (broker/paylog.h): the backup holds its segments, and the restore is
 * whole. */
static void backup_round(bool payload_file)
{
    spoold *s = payload_file ? spoold_start("--shards", "3", "--payload-file-min", "1", "--payload-file-segment",
                                            "4kb", NULL)
                             : spoold_start("--shards", "3", NULL);
    cli *c = cli_connect(s->port);
    push_range(c, 0, FIRST);
    char backup[400];
    snprintf(backup, sizeof backup, "%s/bk", s->dir);
    resp_val *v = cli_cmd(c, "BACKUP", backup, NULL);
    cr_assert_eq(v->type, RESP_T_SIMPLE, "BACKUP replied %s", resp_describe(v));
    char want[64];
    snprintf(want, sizeof want, "OK backup of %d job(s) in 3 shard(s)", NQ * FIRST);
    cr_expect(strstr(v->str, want), "BACKUP replied %s", v->str);
    resp_val_free(v);
    /* After the backup: more jobs, and some of the first set taken. */
    push_range(c, FIRST, FIRST + 5);
    resp_val_free(cli_cmd(c, "LPOP", "bq0", "3", NULL));
    cli_close(c);
    spoold_term(s);
    int segs = 0;
    DIR *d = opendir(backup);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        segs += strstr(e->d_name, ".payload.") != NULL;
    closedir(d);
    if (payload_file)
        cr_assert_geq(segs, 3, "the backup holds %d payload segment(s)", segs);

    char *text = NULL;
    cr_expect_eq(check_dir(backup, &text), 0, "--check of the backup:\n%s", text);
    free(text);
    restore(s, backup);
    spoold_restart(s, "--shards", "3", NULL);
    c = cli_connect(s->port);
    expect_first_set(c);
    cli_close(c);
    spoold_stop(s);
}

Test(backup, restore_gives_exactly_the_first_set)
{
    backup_round(false);
}

Test(backup, restore_with_the_payload_file_gives_exactly_the_first_set)
{
    backup_round(true);
}

Test(backup, spool_backup_relative_dir)
{
    spoold *s = spoold_start("--shards", "2", NULL);
    cli *c = cli_connect(s->port);
    push_range(c, 0, FIRST);
    cli_close(c);
    char url[64], cwd[512];
    snprintf(url, sizeof url, "spool://127.0.0.1:%d", s->port);
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert(chdir(s->dir) == 0);
    char *argv[] = { SPOOL_CLI_PATH, "--url", url, "backup", "rel-bk", NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out, 30000);
    cr_assert(chdir(cwd) == 0);
    cr_expect_eq(rc, 0, "spool backup: %s", out);
    char want[64];
    snprintf(want, sizeof want, "OK backup of %d job(s) in 2 shard(s)", NQ * FIRST);
    cr_expect(strstr(out, want), "spool backup printed %s", out);
    free(out);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/rel-bk", s->dir);
    char *text = NULL;
    cr_expect_eq(check_dir(dir, &text), 0, "--check of the backup:\n%s", text);
    free(text);
    spoold_stop(s);
}

Test(backup, refuses_existing_backup_and_missing_parent)
{
    spoold *s = spoold_start("--shards", "1", NULL);
    cli *c = cli_connect(s->port);
    char dir[400], bad[400];
    snprintf(dir, sizeof dir, "%s/bk", s->dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir", s->dir);
    resp_val *v = cli_cmd(c, "BACKUP", dir, NULL);
    cr_assert_eq(v->type, RESP_T_SIMPLE, "%s", resp_describe(v));
    resp_val_free(v);
    expect_error_has(cli_cmd(c, "BACKUP", dir, NULL), "ERR", "already holds a backup");
    expect_error_has(cli_cmd(c, "BACKUP", bad, NULL), "ERR", "cannot create directory");
    cli_close(c);
    spoold_stop(s);
}
