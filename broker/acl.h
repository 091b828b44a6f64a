/*
 * acl.h - ACL users: named users with passwords (SHA-256), command
 * permissions by category and name, and key and channel patterns, in the
 * Redis rule syntax (ACL SETUSER name rule ...).
 *
 * The user "default" is not kept here: it is governed by requirepass and
 * may run everything (as before ACLs); it can be turned off (ACL SETUSER
 * default off), and then only named users get in. Named users are added with
 * ACL SETUSER, from --aclfile at start, or ACL LOAD; they authenticate with
 * AUTH user pass or HELLO 3 AUTH user pass.
 *
 * Rules: on | off; >pass (add; stored as SHA-256) | <pass (remove) |
 * #<64 hex> (add a hash) | nopass | resetpass; +@cat | -@cat | +cmd | -cmd |
 * allcommands (+@all) | nocommands (-@all); ~pattern | allkeys (~*) |
 * resetkeys; &pattern | allchannels (&*) | resetchannels; reset (off,
 * resetpass, resetkeys, resetchannels, nocommands). Command rules are kept
 * in order and the last one that matches decides. Categories: @read
 * @write @job (JOB.RESERVE/ACK/NACK/TOUCH) @admin @pubsub @dangerous
 * @connection @all.
 *
 * Threads: any I/O thread reads (a check per command of a named user) and
 * writes (ACL SETUSER/DELUSER/LOAD); the table is guarded by one rwlock,
 * a leaf (docs/threads.md): nothing else is taken while it is held.
 * Contracts layer: calls only sha256.c and fnmatch.
 */
#ifndef SPOOL_ACL_H
#define SPOOL_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define ACL_NAME_MAX 64

enum acl_cat {
    ACL_READ = 1 << 0, ACL_WRITE = 1 << 1, ACL_JOB = 1 << 2, ACL_ADMIN = 1 << 3,
    ACL_PUBSUB = 1 << 4, ACL_DANGEROUS = 1 << 5, ACL_CONNECTION = 1 << 6,
};

/* The categories of a command, from its name and command.h flags. */
int acl_categories(const char *name, int flags);
/* "read" etc. for bit i; NULL past the last. */
const char *acl_category_name(int i);

/* Creates or changes user name by the rules (all or nothing). 0, or -1
 * with a message in err naming the rule. */
int acl_setuser(const char *name, int n, const char *const *rules, const size_t *lens, char *err, size_t cap);
/* The user default is off (ACL SETUSER default off, or "user default off"
 * in the ACL file): no connection is authenticated until it AUTHs as a
 * named user. "default" takes only on and off; anything else is refused. */
bool acl_default_off(void);
/* 1 when deleted, 0 when there was no such user. */
int acl_deluser(const char *name);
bool acl_exists(const char *name);
int acl_count(void);
/* The user is on and pass is one of its passwords (or it is nopass). */
bool acl_auth(const char *name, const char *pass, size_t n);

/* 0 allowed; -1 command not allowed, -2 a key not allowed, -3 a channel
 * not allowed; *which = the index in keys/chans of the refused one. */
int acl_check(const char *name, const char *cmd, int cats, int nkeys, const char *const *keys, const size_t *klen,
              int nchans, const char *const *chans, const size_t *clen, bool chan_patterns, int *which);

struct command;
/* The user may run command k with these arguments: the command by its
 * name and categories, its keys (the table's key positions, JOB.RESERVE's
 * queues after FROM, EVAL's KEYS) and its channels (PUBLISH, SUBSCRIBE,
 * PSUBSCRIBE). 0, or -1 with the error reply (without '-': "NOPERM User u
 * has no permissions to run the 'set' command", "NOPERM No permissions to
 * access a key: user u may not use 'k' ...") in err. The dispatcher checks
 * every command of a named user with it, scripts every redis.call. */
int acl_check_command(const char *user, const struct command *k, int argc, char *const *argv, const size_t *len,
                      char *err, size_t cap);
/* The user (on) may name key (a job's queue, found by its receipt or id
 * on the shard). */
bool acl_key_allowed(const char *user, const char *key, size_t len);
/* The -NOPERM text for a key the user may not use (why: e.g. "(the queue
 * of job X)", or NULL), without '-'. */
void acl_key_error(const char *user, const char *key, size_t len, const char *why, char *err, size_t cap);

/* One line per user, "user NAME rules..." (ACL LIST and the ACL file);
 * calls fn for each. describe: the rules of one user (false: none). */
void acl_each(void (*fn)(void *arg, const char *line), void *arg);
bool acl_describe(const char *name, char *out, size_t cap);
/* GETUSER's parts. */
struct acl_view {
    bool on, nopass;
    char passwords[1024], commands[2048], keys[2048], channels[2048];
};
bool acl_view(const char *name, struct acl_view *v);

/* Replaces every user with the lines of path ("user NAME rules..."; # and
 * blank lines skipped). All or nothing: 0, or -1 with err naming the line. */
int acl_load_file(const char *path, char *err, size_t cap);
/* Writes every user to path (atomically, fsio). 0 or negative errno. */
int acl_save_file(const char *path);

#endif
