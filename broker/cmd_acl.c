/*
 * cmd_acl.c - the ACL command (see cmd_acl.h).
 */
#include "cmd_acl.h"

#include "acl.h"
#include "args.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "iothread.h"
#include "log.h"
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 512

/* argv[i] as a C string in buf (false when too long). */
static bool arg_name(const struct msg *m, int i, char *buf, size_t cap)
{
    if (m->req.len[i] >= cap || memchr(m->req.argv[i], '\0', m->req.len[i]))
        return false;
    memcpy(buf, m->req.argv[i], m->req.len[i]);
    buf[m->req.len[i]] = '\0';
    return true;
}

/* ACL SETUSER username [rule ...] */
static void acl_cmd_setuser(struct conn *c, struct msg *m)
{
    char name[ACL_NAME_MAX + 1], err[800];
    if (m->req.argc < 3 || !arg_name(m, 2, name, sizeof name)) {
        conn_reply_error(c, m, "ERR ACL SETUSER username [rule ...] (a name of at most %d bytes)", ACL_NAME_MAX);
        return;
    }
    int n = m->req.argc - 3;
    if (n > MAX_RULES) {
        conn_reply_error(c, m, "ERR ACL SETUSER takes at most %d rules", MAX_RULES);
        return;
    }
    if (acl_setuser(name, n, (const char *const *)m->req.argv + 3, m->req.len + 3, err, sizeof err) < 0) {
        conn_reply_error(c, m, "ERR %s", err);
        return;
    }
    conn_reply_ok(c, m);
}

static void add_pair(resp_buf *b, const char *k, const char *v)
{
    resp_add_cstr(b, k);
    resp_add_cstr(b, v);
}

/* ACL GETUSER username */
static void acl_cmd_getuser(struct conn *c, struct msg *m)
{
    struct acl_view v;
    char name[ACL_NAME_MAX + 1];
    resp_buf *b = &m->out;
    if (m->req.argc != 3) {
        conn_reply_error(c, m, "ERR ACL GETUSER username");
        return;
    }
    bool is_default = arg_is(m, 2, "default");
    if (!is_default && (!arg_name(m, 2, name, sizeof name) || !acl_view(name, &v))) {
        resp_add_null(b, m->proto);
        conn_reply(c, m);
        return;
    }
    if (is_default) {
        memset(&v, 0, sizeof v);
        v.on = !acl_default_off();
        v.nopass = !c->io->srv->cfg.requirepass[0];
        snprintf(v.passwords, sizeof v.passwords, "%s", v.nopass ? "" : "(requirepass)");
        snprintf(v.commands, sizeof v.commands, "+@all");
        snprintf(v.keys, sizeof v.keys, "~*");
        snprintf(v.channels, sizeof v.channels, "&*");
    }
    resp_add_map(b, m->proto, 5);
    resp_add_cstr(b, "flags");
    resp_add_array(b, v.nopass ? 2 : 1);
    resp_add_cstr(b, v.on ? "on" : "off");
    if (v.nopass)
        resp_add_cstr(b, "nopass");
    resp_add_cstr(b, "passwords");
    size_t np = 0;
    for (const char *p = v.passwords; *p; p++)
        np += (p == v.passwords || p[-1] == ' ') && *p != ' ';
    resp_add_array(b, np);
    for (char *save = NULL, *w = strtok_r(v.passwords, " ", &save); w; w = strtok_r(NULL, " ", &save))
        resp_add_cstr(b, w);
    add_pair(b, "commands", v.commands);
    add_pair(b, "keys", v.keys);
    add_pair(b, "channels", v.channels);
    conn_reply(c, m);
}

/* ACL DELUSER username [username ...] */
static void acl_cmd_deluser(struct conn *c, struct msg *m)
{
    long long n = 0;
    char name[ACL_NAME_MAX + 1];
    if (m->req.argc < 3) {
        conn_reply_error(c, m, "ERR ACL DELUSER username [username ...]");
        return;
    }
    for (int i = 2; i < m->req.argc; i++)
        if (arg_is(m, i, "default")) {
            conn_reply_error(c, m, "ERR The 'default' user cannot be removed");
            return;
        }
    for (int i = 2; i < m->req.argc; i++)
        if (arg_name(m, i, name, sizeof name))
            n += acl_deluser(name);
    resp_add_int(&m->out, n);
    conn_reply(c, m);
}

struct lines {
    resp_buf items;
    size_t n;
    bool names_only;
};

static void collect_line(void *arg, const char *line)
{
    struct lines *l = arg;
    if (l->names_only) {
        const char *name = line + 5; /* "user " */
        resp_add_bulk(&l->items, name, strcspn(name, " "));
    } else {
        resp_add_cstr(&l->items, line);
    }
    l->n++;
}

/* ACL LIST's line of the user default. */
static const char *default_line(bool requirepass)
{
    if (acl_default_off())
        return requirepass ? "user default off (requirepass) ~* &* +@all" : "user default off nopass ~* &* +@all";
    return requirepass ? "user default on (requirepass) ~* &* +@all" : "user default on nopass ~* &* +@all";
}

/* ACL LIST | ACL USERS */
static void acl_cmd_list(struct conn *c, struct msg *m, bool names_only)
{
    struct lines l = { .names_only = names_only };
    resp_buf_init(&l.items);
    if (names_only)
        resp_add_cstr(&l.items, "default");
    else
        resp_add_cstr(&l.items, default_line(c->io->srv->cfg.requirepass[0] != '\0'));
    l.n = 1;
    acl_each(collect_line, &l);
    resp_add_array(&m->out, l.n);
    resp_buf_append(&m->out, l.items.data, l.items.len);
    resp_buf_free(&l.items);
    conn_reply(c, m);
}

/* ACL SAVE | ACL LOAD (the --aclfile) */
static void acl_cmd_file(struct conn *c, struct msg *m, bool save)
{
    const char *path = c->io->srv->cfg.aclfile;
    char err[1200];
    if (!path[0]) {
        conn_reply_error(c, m, "ERR This spoold is not configured to use an ACL file: start it with --aclfile FILE");
        return;
    }
    int rc = save ? acl_save_file(path) : acl_load_file(path, err, sizeof err);
    if (rc < 0) {
        if (save)
            conn_reply_error(c, m, "ERR cannot write the ACL file %s: %s", path, strerror(-rc));
        else
            conn_reply_error(c, m, "ERR %s (the users were left as they were)", err);
        return;
    }
    log_info("ACL %s: %s", save ? "SAVE wrote" : "LOAD read", path);
    conn_reply_ok(c, m);
}

/* ACL SETUSER|GETUSER|DELUSER|LIST|USERS|WHOAMI|CAT|SAVE|LOAD ... */
void io_acl(struct conn *c, struct msg *m)
{
    if (arg_is(m, 1, "SETUSER")) {
        acl_cmd_setuser(c, m);
    } else if (arg_is(m, 1, "GETUSER")) {
        acl_cmd_getuser(c, m);
    } else if (arg_is(m, 1, "DELUSER")) {
        acl_cmd_deluser(c, m);
    } else if (arg_is(m, 1, "LIST") || arg_is(m, 1, "USERS")) {
        acl_cmd_list(c, m, arg_is(m, 1, "USERS"));
    } else if (arg_is(m, 1, "WHOAMI")) {
        resp_add_cstr(&m->out, c->user[0] ? c->user : "default");
        conn_reply(c, m);
    } else if (arg_is(m, 1, "CAT") && m->req.argc == 2) {
        int n = 0;
        while (acl_category_name(n))
            n++;
        resp_add_array(&m->out, (size_t)n + 1);
        resp_add_cstr(&m->out, "all");
        for (int i = 0; i < n; i++)
            resp_add_cstr(&m->out, acl_category_name(i));
        conn_reply(c, m);
    } else if (arg_is(m, 1, "SAVE") || arg_is(m, 1, "LOAD")) {
        acl_cmd_file(c, m, arg_is(m, 1, "SAVE"));
    } else {
        conn_reply_error(c, m, "ERR unknown ACL subcommand '%.32s': SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, "
                         "CAT, SAVE, LOAD", m->req.argv[1]);
    }
}
