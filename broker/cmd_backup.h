/*
 * cmd_backup.h - BACKUP dir: an online backup of every shard into a new
 * directory (the I/O thread checks the directory and gathers; each shard
 * copies its own journal, shard_backup_start()).
 */
#ifndef SPOOL_CMD_BACKUP_H
#define SPOOL_CMD_BACKUP_H

struct conn;
struct msg;
struct shard;

void io_backup(struct conn *c, struct msg *m);
void sh_backup(struct shard *s, struct msg *m);

#endif
