/*
 * cmd_server.h - connection and server commands, answered on the I/O
 * thread: PING ECHO HELLO AUTH SELECT QUIT CLIENT INFO COMMAND CONFIG TIME.
 */
#ifndef SPOOL_CMD_SERVER_H
#define SPOOL_CMD_SERVER_H

struct conn;
struct msg;
struct io_thread;

void io_ping(struct conn *c, struct msg *m);
void io_echo(struct conn *c, struct msg *m);
void io_hello(struct conn *c, struct msg *m);
void io_auth(struct conn *c, struct msg *m);
void io_select(struct conn *c, struct msg *m);
void io_quit(struct conn *c, struct msg *m);
void io_client(struct conn *c, struct msg *m);
void io_info(struct conn *c, struct msg *m);
void io_config(struct conn *c, struct msg *m);
void io_time(struct conn *c, struct msg *m);
void io_reset(struct conn *c, struct msg *m);

void peer_client_list(struct io_thread *io, struct msg *m);

#endif
