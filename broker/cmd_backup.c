/*
 * cmd_backup.c - BACKUP dir (see cmd_backup.h).
 *
 * The I/O thread makes the directory (refusing one that already holds a
 * backup), sends the request to every shard and waits for all of them;
 * each shard copies its journal with SQLite's backup API a few MiB per step
 * between its turns, so it keeps serving (shard.c). Once every shard file
 * is complete, synced and renamed into place, the I/O thread writes the
 * directory's MANIFEST into the backup last: a backup directory with a
 * MANIFEST is complete. Each shard file is consistent as of the moment its
 * copy finished; shards finish at slightly different moments (they are
 * independent, as they are in a crash).
 */
#include "cmd_backup.h"

#include "conn.h"
#include "context.h"
#include "datadir.h"
#include "fsio.h"
#include "iothread.h"
#include "msg.h"
#include "shard.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The directory argument as a C string; false (with the reply) if unusable. */
static bool backup_dir(struct conn *c, struct msg *m, char *dir, size_t cap)
{
    size_t n = m->req.len[1];
    if (n == 0 || n >= cap || memchr(m->req.argv[1], '\0', n)) {
        conn_reply_error(c, m, "ERR BACKUP needs a directory path (at most %zu bytes, no NUL)", cap - 1);
        return false;
    }
    memcpy(dir, m->req.argv[1], n);
    dir[n] = '\0';
    return true;
}

/* Every shard answered: errors, or the MANIFEST that completes the backup. */
static void finish_backup(struct conn *c, struct slot *sl)
{
    struct server *srv = c->io->srv;
    char dir[PATH_MAX - 64];
    size_t n = sl->req->req.len[1];
    memcpy(dir, sl->req->req.argv[1], n);
    dir[n] = '\0';
    resp_buf errs;
    resp_buf_init(&errs);
    for (int i = 0; i < sl->nparts; i++)
        if (sl->parts[i].len) {
            if (errs.len)
                resp_buf_append(&errs, "; ", 2);
            resp_buf_append(&errs, sl->parts[i].data, sl->parts[i].len);
        }
    int rc = 0;
    if (!errs.len) {
        struct manifest man = { .shards = srv->nshards, .ready = true };
        memcpy(man.id, srv->data_id, sizeof man.id);
        if ((rc = datadir_manifest_write(dir, &man)) < 0)
            resp_buf_printf(&errs, "cannot write %s/MANIFEST: %s", dir, strerror(-rc));
    }
    if (errs.len)
        resp_add_errorf(&sl->out, "ERR BACKUP into '%s' failed (the directory has no MANIFEST, so it is not a "
                        "backup): %.*s", dir, (int)errs.len, errs.data);
    else {
        char ok[PATH_MAX + 100];
        snprintf(ok, sizeof ok, "OK backup of %lld job(s) in %d shard(s) written to %s", sl->keys, srv->nshards, dir);
        resp_add_simple(&sl->out, ok);
    }
    resp_buf_free(&errs);
}

/* BACKUP dir */
void io_backup(struct conn *c, struct msg *m)
{
    char dir[PATH_MAX - 64], manifest[PATH_MAX];
    if (!backup_dir(c, m, dir, sizeof dir))
        return;
    int rc = fsio_mkdir(dir, 0700);
    if (rc < 0) {
        conn_reply_error(c, m, "ERR BACKUP cannot create directory '%s': %s (its parent must exist and be writable "
                         "by spoold)", dir, strerror(-rc));
        return;
    }
    snprintf(manifest, sizeof manifest, "%s/MANIFEST", dir);
    if (access(manifest, F_OK) == 0) {
        conn_reply_error(c, m, "ERR BACKUP directory '%s' already holds a backup (MANIFEST): choose a new directory",
                         dir);
        return;
    }
    conn_gather(c, m, true, finish_backup);
}

/* BACKUP dir (each shard: copy its journal; answered when the copy ends) */
void sh_backup(struct shard *s, struct msg *m)
{
    char dir[PATH_MAX - 64];
    size_t n = m->req.len[1];
    memcpy(dir, m->req.argv[1], n); /* checked on the I/O thread */
    dir[n] = '\0';
    shard_backup_start(s, m, dir);
}
