/*
 * cmd_acl.h - ACL SETUSER / GETUSER / DELUSER / LIST / USERS / WHOAMI /
 * CAT / SAVE / LOAD, answered on the I/O thread (acl.h keeps the users).
 * ACL CAT category lists commands from the table, so commands.c answers
 * that one (io_acl_cat) and hands the rest here.
 */
#ifndef SPOOL_CMD_ACL_H
#define SPOOL_CMD_ACL_H

struct conn;
struct msg;

void io_acl(struct conn *c, struct msg *m);

#endif
