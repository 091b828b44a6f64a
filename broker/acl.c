/*
 * acl.c - ACL users (see acl.h).
 */
#include "acl.h"

#include "command.h"
#include "fsio.h"
#include "sha256.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_USERS 1024
#define MAX_ITEMS 64 /* passwords, command rules, key and channel patterns, each */

struct user {
    char name[ACL_NAME_MAX + 1];
    bool on, nopass;
    int npass, ncmd, nkey, nchan;
    unsigned char pass[MAX_ITEMS][SHA256_LEN];
    char *cmd[MAX_ITEMS];   /* "+@job", "-lpush", in order */
    char *key[MAX_ITEMS];
    char *chan[MAX_ITEMS];
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct user *users[MAX_USERS];
static int nusers;
static atomic_bool default_off; /* ACL SETUSER default off: every client must AUTH as a named user */

/* ------------------------------------------------------------ categories */

static const char *const cat_names[] = { "read", "write", "job", "admin", "pubsub", "dangerous", "connection" };
#define NCATS (int)(sizeof cat_names / sizeof cat_names[0])

const char *acl_category_name(int i)
{
    return i >= 0 && i < NCATS ? cat_names[i] : NULL;
}

static bool name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(name, *list))
            return true;
    return false;
}

int acl_categories(const char *name, int flags)
{
    static const char *const job[] = { "job.reserve", "job.ack", "job.nack", "job.touch", NULL };
    static const char *const admin[] = { "acl", "config", "debug", "backup", "client", "info", "queue.config",
                                         "queue.pause", "queue.resume", "slotmove", "replica.transfer",
                                         NULL };
    static const char *const dangerous[] = { "acl",  "config",  "debug", "backup", "client", "queue.purge",
                                             "flushdb", "flushall", "keys", "slotmove",
                                             "replica.transfer", NULL };
    static const char *const conn[] = { "ping", "echo", "hello", "auth", "select", "quit", "reset", "time", "command",
                                        "multi", "exec", "discard", "watch", "unwatch", NULL };
    static const char *const pubsub[] = { "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "publish",
                                          "pubsub", NULL };
    int c = 0;
    if (flags & CMD_WRITE)
        c |= ACL_WRITE;
    if (flags & CMD_READONLY)
        c |= ACL_READ;
    if (name_in(name, job))
        c |= ACL_JOB;
    if (name_in(name, admin))
        c |= ACL_ADMIN;
    if (name_in(name, dangerous))
        c |= ACL_DANGEROUS;
    if (name_in(name, conn))
        c |= ACL_CONNECTION;
    if (name_in(name, pubsub))
        c |= ACL_PUBSUB;
    return c;
}

/* ----------------------------------------------------------------- users */

static void user_free(struct user *u)
{
    if (!u)
        return;
    for (int i = 0; i < u->ncmd; i++)
        free(u->cmd[i]);
    for (int i = 0; i < u->nkey; i++)
        free(u->key[i]);
    for (int i = 0; i < u->nchan; i++)
        free(u->chan[i]);
    free(u);
}

static struct user *user_copy(const struct user *u)
{
    struct user *c = malloc(sizeof *c);
    if (!c)
        abort();
    *c = *u;
    for (int i = 0; i < c->ncmd; i++)
        c->cmd[i] = strdup(u->cmd[i]);
    for (int i = 0; i < c->nkey; i++)
        c->key[i] = strdup(u->key[i]);
    for (int i = 0; i < c->nchan; i++)
        c->chan[i] = strdup(u->chan[i]);
    return c;
}

static int find_locked(const char *name)
{
    for (int i = 0; i < nusers; i++)
        if (!strcmp(users[i]->name, name))
            return i;
    return -1;
}

static int add_item(char **list, int *n, const char *s, size_t len, char *err, size_t cap)
{
    if (*n >= MAX_ITEMS) {
        snprintf(err, cap, "too many rules of this kind (at most %d)", MAX_ITEMS);
        return -1;
    }
    list[(*n)++] = strndup(s, len);
    return 0;
}

static void clear_items(char **list, int *n)
{
    for (int i = 0; i < *n; i++)
        free(list[i]);
    *n = 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool known_category(const char *s, size_t n)
{
    if (n == 3 && !strncasecmp(s, "all", 3))
        return true;
    for (int i = 0; i < NCATS; i++)
        if (strlen(cat_names[i]) == n && !strncasecmp(s, cat_names[i], n))
            return true;
    return false;
}

/* The one-word rules (on, off, nopass, resetpass, allcommands, nocommands,
 * allkeys, resetkeys, allchannels, resetchannels, reset): 1 when r was one
 * and is applied, 0 when r is no such word, -1 on an error. */
static int apply_word(struct user *u, const char *r, size_t n, char *err, size_t cap)
{
#define IS(w) (n == sizeof(w) - 1 && !strncasecmp(r, w, n))
    int rc = 0;
    if (IS("on") || IS("off"))
        u->on = IS("on");
    else if (IS("nopass") || IS("resetpass"))
        u->nopass = IS("nopass"), u->npass = 0;
    else if (IS("allcommands") || IS("+@all"))
        clear_items(u->cmd, &u->ncmd), rc = add_item(u->cmd, &u->ncmd, "+@all", 5, err, cap);
    else if (IS("nocommands") || IS("-@all"))
        clear_items(u->cmd, &u->ncmd);
    else if (IS("allkeys") || IS("resetkeys"))
        clear_items(u->key, &u->nkey), rc = IS("allkeys") ? add_item(u->key, &u->nkey, "*", 1, err, cap) : 0;
    else if (IS("allchannels") || IS("resetchannels"))
        clear_items(u->chan, &u->nchan), rc = IS("allchannels") ? add_item(u->chan, &u->nchan, "*", 1, err, cap) : 0;
    else if (IS("reset")) {
        u->on = u->nopass = false;
        u->npass = 0;
        clear_items(u->cmd, &u->ncmd);
        clear_items(u->key, &u->nkey);
        clear_items(u->chan, &u->nchan);
    } else
        return 0;
    return rc < 0 ? -1 : 1;
#undef IS
}

/* >pass: adds a password (kept as its SHA-256). */
static int add_password(struct user *u, const char *pass, size_t n, char *err, size_t cap)
{
    if (u->npass >= MAX_ITEMS) {
        snprintf(err, cap, "too many passwords (at most %d)", MAX_ITEMS);
        return -1;
    }
    sha256(pass, n, u->pass[u->npass++]);
    u->nopass = false;
    return 0;
}

/* <pass: removes a password. */
static int remove_password(struct user *u, const char *pass, size_t n, char *err, size_t cap)
{
    unsigned char h[SHA256_LEN];
    sha256(pass, n, h);
    for (int i = 0; i < u->npass; i++)
        if (!memcmp(u->pass[i], h, SHA256_LEN)) {
            memmove(u->pass[i], u->pass[i + 1], (size_t)(u->npass - i - 1) * SHA256_LEN);
            u->npass--;
            return 0;
        }
    snprintf(err, cap, "the user has no such password");
    return -1;
}

/* #<64 hex>: adds a password by its SHA-256. */
static int add_password_hash(struct user *u, const char *hex, char *err, size_t cap)
{
    if (u->npass >= MAX_ITEMS) {
        snprintf(err, cap, "too many passwords (at most %d)", MAX_ITEMS);
        return -1;
    }
    for (int i = 0; i < SHA256_LEN; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            snprintf(err, cap, "'#' must be followed by 64 hex digits (a SHA-256 hash)");
            return -1;
        }
        u->pass[u->npass][i] = (unsigned char)(a << 4 | b);
    }
    u->npass++;
    u->nopass = false;
    return 0;
}

/* +@cat, -@cat, +cmd, -cmd: kept in order (the last that matches decides). */
static int add_command_rule(struct user *u, const char *r, size_t n, char *err, size_t cap)
{
    if (r[1] == '@' && !known_category(r + 2, n - 2)) {
        snprintf(err, cap, "unknown category '%.*s' (see ACL CAT)", (int)(n - 2), r + 2);
        return -1;
    }
    return add_item(u->cmd, &u->ncmd, r, n, err, cap);
}

/* Applies one rule to u. */
static int apply_rule(struct user *u, const char *r, size_t n, char *err, size_t cap)
{
    int rc = apply_word(u, r, n, err, cap);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (n >= 1 && r[0] == '>')
        return add_password(u, r + 1, n - 1, err, cap);
    if (n >= 1 && r[0] == '<')
        return remove_password(u, r + 1, n - 1, err, cap);
    if (n == 1 + 2 * SHA256_LEN && r[0] == '#')
        return add_password_hash(u, r + 1, err, cap);
    if (n >= 2 && (r[0] == '+' || r[0] == '-'))
        return add_command_rule(u, r, n, err, cap);
    if (n >= 1 && r[0] == '~')
        return add_item(u->key, &u->nkey, r + 1, n - 1, err, cap);
    if (n >= 1 && r[0] == '&')
        return add_item(u->chan, &u->nchan, r + 1, n - 1, err, cap);
    snprintf(err, cap, "unknown rule '%.*s' (on, off, >pass, <pass, #hash, nopass, resetpass, +@cat, -@cat, +cmd, "
             "-cmd, allcommands, nocommands, ~pattern, allkeys, resetkeys, &pattern, allchannels, resetchannels, "
             "reset)", (int)(n > 64 ? 64 : n), r);
    return -1;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ACL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    return true;
}

/* ACL SETUSER default on|off: the only rules the default user takes (its
 * password is requirepass, and it may run every command). */
static int setuser_default(int n, const char *const *rules, const size_t *lens, char *err, size_t cap)
{
    bool off = atomic_load(&default_off);
    for (int k = 0; k < n; k++) {
        if (lens[k] == 2 && !strncasecmp(rules[k], "on", 2)) {
            off = false;
        } else if (lens[k] == 3 && !strncasecmp(rules[k], "off", 3)) {
            off = true;
        } else {
            snprintf(err, cap, "Error in ACL SETUSER modifier '%.*s': the user 'default' takes only 'on' and 'off' "
                     "(its password is requirepass and it may run every command; add named users for anything "
                     "narrower)", (int)(lens[k] > 64 ? 64 : lens[k]), rules[k]);
            return -1;
        }
    }
    atomic_store(&default_off, off);
    return 0;
}

bool acl_default_off(void)
{
    return atomic_load(&default_off);
}

int acl_setuser(const char *name, int n, const char *const *rules, const size_t *lens, char *err, size_t cap)
{
    if (!valid_name(name)) {
        snprintf(err, cap, "a user name is 1 to %d printable characters without spaces", ACL_NAME_MAX);
        return -1;
    }
    if (!strcmp(name, "default"))
        return setuser_default(n, rules, lens, err, cap);
    pthread_rwlock_wrlock(&lock);
    int i = find_locked(name);
    struct user *u;
    if (i >= 0) {
        u = user_copy(users[i]);
    } else {
        u = calloc(1, sizeof *u);
        if (!u)
            abort();
        snprintf(u->name, sizeof u->name, "%s", name);
    }
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        char why[400];
        if (apply_rule(u, rules[k], lens[k], why, sizeof why) < 0) {
            snprintf(err, cap, "Error in ACL SETUSER modifier '%.*s': %s", (int)(lens[k] > 64 ? 64 : lens[k]), rules[k],
                     why);
            rc = -1;
        }
    }
    if (rc == 0 && i < 0 && nusers >= MAX_USERS) {
        snprintf(err, cap, "too many users (at most %d)", MAX_USERS);
        rc = -1;
    }
    if (rc < 0) {
        user_free(u);
    } else if (i >= 0) {
        user_free(users[i]);
        users[i] = u;
    } else {
        users[nusers++] = u;
    }
    pthread_rwlock_unlock(&lock);
    return rc;
}

int acl_deluser(const char *name)
{
    pthread_rwlock_wrlock(&lock);
    int i = find_locked(name);
    if (i >= 0) {
        user_free(users[i]);
        users[i] = users[--nusers];
    }
    pthread_rwlock_unlock(&lock);
    return i >= 0;
}

bool acl_exists(const char *name)
{
    pthread_rwlock_rdlock(&lock);
    bool yes = find_locked(name) >= 0;
    pthread_rwlock_unlock(&lock);
    return yes;
}

int acl_count(void)
{
    pthread_rwlock_rdlock(&lock);
    int n = nusers;
    pthread_rwlock_unlock(&lock);
    return n;
}

bool acl_auth(const char *name, const char *pass, size_t n)
{
    unsigned char h[SHA256_LEN];
    sha256(pass, n, h);
    pthread_rwlock_rdlock(&lock);
    int i = find_locked(name);
    bool ok = false;
    if (i >= 0 && users[i]->on) {
        ok = users[i]->nopass;
        for (int k = 0; k < users[i]->npass; k++) {
            unsigned char diff = 0; /* constant time per password */
            for (int b = 0; b < SHA256_LEN; b++)
                diff |= (unsigned char)(users[i]->pass[k][b] ^ h[b]);
            ok |= diff == 0;
        }
    }
    pthread_rwlock_unlock(&lock);
    return ok;
}

/* ----------------------------------------------------------------- check */

static int category_bit(const char *name)
{
    for (int c = 0; c < NCATS; c++)
        if (!strcasecmp(name, cat_names[c]))
            return 1 << c;
    return 0;
}

static bool cmd_allowed(const struct user *u, const char *cmd, int cats)
{
    bool ok = false;
    for (int i = 0; i < u->ncmd; i++) {
        const char *r = u->cmd[i];
        bool match;
        if (r[1] == '@')
            match = !strcasecmp(r + 2, "all") || (cats & category_bit(r + 2)) != 0;
        else
            match = !strcasecmp(r + 1, cmd);
        if (match)
            ok = r[0] == '+';
    }
    return ok;
}

static bool matches_any(char *const *pats, int n, const char *s, size_t len, bool literal)
{
    char buf[1024];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (int i = 0; i < n; i++)
        if (!strcmp(pats[i], "*") || (literal ? !strcmp(pats[i], buf) : fnmatch(pats[i], buf, 0) == 0))
            return true;
    return false;
}

int acl_check(const char *name, const char *cmd, int cats, int nkeys, const char *const *keys, const size_t *klen,
              int nchans, const char *const *chans, const size_t *clen, bool chan_patterns, int *which)
{
    int rc = 0;
    *which = -1;
    pthread_rwlock_rdlock(&lock);
    int i = find_locked(name);
    if (i < 0 || !users[i]->on || !cmd_allowed(users[i], cmd, cats)) {
        rc = -1;
    } else {
        for (int k = 0; k < nkeys && rc == 0; k++)
            if (!matches_any(users[i]->key, users[i]->nkey, keys[k], klen[k], false))
                rc = -2, *which = k;
        for (int k = 0; k < nchans && rc == 0; k++)
            if (!matches_any(users[i]->chan, users[i]->nchan, chans[k], clen[k], chan_patterns))
                rc = -3, *which = k;
    }
    pthread_rwlock_unlock(&lock);
    return rc;
}

/* -------------------------------------------------------------- commands */

/* The arguments a command names as keys or channels: at most argc of
 * them, so every one is checked (no cap). */
struct named {
    int n;
    const char **p;
    size_t *len;
};

static void named_init(struct named *a, int argc)
{
    a->n = 0;
    a->p = malloc(((size_t)argc + 1) * sizeof *a->p);
    a->len = malloc(((size_t)argc + 1) * sizeof *a->len);
    if (!a->p || !a->len)
        abort();
}

static void named_free(struct named *a)
{
    free(a->p);
    free(a->len);
}

static void name_arg(struct named *a, char *const *argv, const size_t *len, int i)
{
    a->p[a->n] = argv[i];
    a->len[a->n++] = len[i];
}

/* EVAL's numkeys (argv[2]) when it is a count the arguments hold, else 0
 * (the command's own handler then answers the error). */
static int eval_numkeys(int argc, char *const *argv, const size_t *len)
{
    if (argc < 3 || len[2] == 0 || len[2] > 9)
        return 0;
    int n = 0;
    for (size_t i = 0; i < len[2]; i++) {
        if (argv[2][i] < '0' || argv[2][i] > '9')
            return 0;
        n = n * 10 + (argv[2][i] - '0');
    }
    return n <= argc - 3 ? n : 0;
}

/* The keys k names: the table's key positions, JOB.RESERVE's queues after
 * FROM, EVAL's KEYS. */
static void command_keys(const struct command *k, int argc, char *const *argv, const size_t *len, struct named *a)
{
    if (!strcmp(k->name, "job.reserve")) {
        int i = 1;
        while (i < argc && !(len[i] == 4 && !strncasecmp(argv[i], "FROM", 4)))
            i++;
        for (i++; i < argc; i++)
            name_arg(a, argv, len, i);
    } else if (!strcmp(k->name, "batch.new")) { /* ON-SUCCESS queue payload ...: each callback's queue */
        for (int i = 2; i < argc; i += 3)
            name_arg(a, argv, len, i);
    } else if (!strncmp(k->name, "eval", 4)) {
        int nk = eval_numkeys(argc, argv, len);
        for (int i = 3; i < 3 + nk; i++)
            name_arg(a, argv, len, i);
    } else if (k->first_key > 0) {
        int last = k->last_key >= 0 ? k->last_key : argc + k->last_key;
        for (int i = k->first_key; i <= last && i < argc; i += k->key_step)
            name_arg(a, argv, len, i);
    }
}

/* The channels k names (PUBLISH, SUBSCRIBE, PSUBSCRIBE: patterns). */
static void command_channels(const struct command *k, int argc, char *const *argv, const size_t *len,
                             struct named *a, bool *patterns)
{
    *patterns = !strcmp(k->name, "psubscribe");
    if (!strcmp(k->name, "publish") && argc > 1)
        name_arg(a, argv, len, 1);
    else if (!strcmp(k->name, "subscribe") || *patterns)
        for (int i = 1; i < argc; i++)
            name_arg(a, argv, len, i);
}

int acl_check_command(const char *user, const struct command *k, int argc, char *const *argv, const size_t *len,
                      char *err, size_t cap)
{
    struct named keys, chans;
    bool patterns;
    named_init(&keys, argc);
    named_init(&chans, argc);
    command_keys(k, argc, argv, len, &keys);
    command_channels(k, argc, argv, len, &chans, &patterns);
    int which;
    int rc = acl_check(user, k->name, acl_categories(k->name, k->flags), keys.n, keys.p, keys.len, chans.n, chans.p,
                       chans.len, patterns, &which);
    if (rc == -1)
        snprintf(err, cap, "NOPERM User %s has no permissions to run the '%s' command", user, k->name);
    else if (rc == -2)
        acl_key_error(user, keys.p[which], keys.len[which], NULL, err, cap);
    else if (rc == -3)
        snprintf(err, cap, "NOPERM No permissions to access a channel: user %s may not use '%.*s' (see ACL GETUSER %s)",
                 user, (int)(chans.len[which] > 128 ? 128 : chans.len[which]), chans.p[which], user);
    named_free(&keys);
    named_free(&chans);
    return rc == 0 ? 0 : -1;
}

bool acl_key_allowed(const char *user, const char *key, size_t len)
{
    bool ok = false;
    pthread_rwlock_rdlock(&lock);
    int i = find_locked(user);
    if (i >= 0 && users[i]->on)
        ok = matches_any(users[i]->key, users[i]->nkey, key, len, false);
    pthread_rwlock_unlock(&lock);
    return ok;
}

void acl_key_error(const char *user, const char *key, size_t len, const char *why, char *err, size_t cap)
{
    snprintf(err, cap, "NOPERM No permissions to access a key: user %s may not use '%.*s'%s%s (see ACL GETUSER %s)",
             user, (int)(len > 128 ? 128 : len), key, why ? " " : "", why ? why : "", user);
}

/* ------------------------------------------------------------- describe */

static void describe_locked(const struct user *u, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "user %s %s", u->name, u->on ? "on" : "off");
#define ADD(...) (n += (size_t)snprintf(out + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__))
    if (u->nopass)
        ADD(" nopass");
    for (int i = 0; i < u->npass; i++) {
        ADD(" #");
        for (int b = 0; b < SHA256_LEN; b++)
            ADD("%02x", u->pass[i][b]);
    }
    ADD(" resetkeys");
    for (int i = 0; i < u->nkey; i++)
        ADD(" ~%s", u->key[i]);
    ADD(" resetchannels");
    for (int i = 0; i < u->nchan; i++)
        ADD(" &%s", u->chan[i]);
    ADD(" -@all");
    for (int i = 0; i < u->ncmd; i++)
        if (strcmp(u->cmd[i], "+@all") || i > 0)
            ADD(" %s", u->cmd[i]);
        else
            ADD(" +@all");
#undef ADD
}

void acl_each(void (*fn)(void *arg, const char *line), void *arg)
{
    char line[8192];
    pthread_rwlock_rdlock(&lock);
    for (int i = 0; i < nusers; i++) {
        describe_locked(users[i], line, sizeof line);
        fn(arg, line);
    }
    pthread_rwlock_unlock(&lock);
}

bool acl_describe(const char *name, char *out, size_t cap)
{
    pthread_rwlock_rdlock(&lock);
    int i = find_locked(name);
    if (i >= 0)
        describe_locked(users[i], out, cap);
    pthread_rwlock_unlock(&lock);
    return i >= 0;
}

static void join(char *out, size_t cap, char *const *items, int n, const char *prefix)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s", i ? " " : "", prefix, items[i]);
}

bool acl_view(const char *name, struct acl_view *v)
{
    pthread_rwlock_rdlock(&lock);
    int i = find_locked(name);
    if (i >= 0) {
        const struct user *u = users[i];
        v->on = u->on;
        v->nopass = u->nopass;
        size_t len = 0;
        v->passwords[0] = '\0';
        for (int k = 0; k < u->npass && len + 66 < sizeof v->passwords; k++) {
            if (k)
                v->passwords[len++] = ' ';
            for (int b = 0; b < SHA256_LEN; b++)
                len += (size_t)snprintf(v->passwords + len, sizeof v->passwords - len, "%02x", u->pass[k][b]);
        }
        size_t c = (size_t)snprintf(v->commands, sizeof v->commands, "-@all");
        for (int k = 0; k < u->ncmd && c < sizeof v->commands; k++)
            c += (size_t)snprintf(v->commands + c, sizeof v->commands - c, " %s", u->cmd[k]);
        join(v->keys, sizeof v->keys, u->key, u->nkey, "~");
        join(v->channels, sizeof v->channels, u->chan, u->nchan, "&");
    }
    pthread_rwlock_unlock(&lock);
    return i >= 0;
}

/* ------------------------------------------------------------------ file */

int acl_load_file(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "cannot open the ACL file %s: %s", path, strerror(errno));
        return -1;
    }
    /* Parse into a fresh table, then swap: all or nothing. */
    bool was_off = atomic_exchange(&default_off, false);
    pthread_rwlock_wrlock(&lock);
    struct user *old[MAX_USERS];
    int nold = nusers;
    memcpy(old, users, sizeof old);
    nusers = 0;
    pthread_rwlock_unlock(&lock);
    char line[8192];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL, *w = strtok_r(line, " \t\r\n", &save);
        if (!w || w[0] == '#')
            continue;
        char *name = strtok_r(NULL, " \t\r\n", &save);
        if (strcmp(w, "user") != 0 || !name) {
            snprintf(err, cap, "%s:%d: expected 'user NAME rules...'", path, lineno);
            rc = -1;
            break;
        }
        const char *rules[512];
        size_t lens[512];
        int n = 0;
        for (char *r; n < 512 && (r = strtok_r(NULL, " \t\r\n", &save));) {
            rules[n] = r;
            lens[n++] = strlen(r);
        }
        char why[600];
        if (acl_setuser(name, n, rules, lens, why, sizeof why) < 0) {
            snprintf(err, cap, "%s:%d: %s", path, lineno, why);
            rc = -1;
        }
    }
    fclose(f);
    pthread_rwlock_wrlock(&lock);
    struct user **drop = rc == 0 ? old : users;
    int ndrop = rc == 0 ? nold : nusers;
    for (int i = 0; i < ndrop; i++)
        user_free(drop[i]);
    if (rc < 0) {
        memcpy(users, old, sizeof old);
        nusers = nold;
        atomic_store(&default_off, was_off);
    }
    pthread_rwlock_unlock(&lock);
    return rc;
}

struct save_buf {
    char *text;
    size_t len, cap;
};

static void save_line(void *arg, const char *line)
{
    struct save_buf *b = arg;
    size_t n = strlen(line);
    if (b->len + n + 2 > b->cap) {
        b->cap = (b->len + n + 2) * 2;
        b->text = realloc(b->text, b->cap);
        if (!b->text)
            abort();
    }
    memcpy(b->text + b->len, line, n);
    b->len += n;
    b->text[b->len++] = '\n';
}

int acl_save_file(const char *path)
{
    struct save_buf b = { 0 };
    if (acl_default_off())
        save_line(&b, "user default off");
    acl_each(save_line, &b);
    int rc = fsio_write_atomic(path, b.text ? b.text : "", b.len);
    free(b.text);
    return rc;
}
