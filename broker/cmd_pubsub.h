/*
 * cmd_pubsub.h - the pub/sub commands (SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
 * PUNSUBSCRIBE, PUBLISH, PUBSUB), on the I/O thread. Referenced by the
 * command table only.
 */
#ifndef SPOOL_CMD_PUBSUB_H
#define SPOOL_CMD_PUBSUB_H

struct conn;
struct msg;
struct io_thread;

void io_subscribe(struct conn *c, struct msg *m);
void io_unsubscribe(struct conn *c, struct msg *m);
void io_psubscribe(struct conn *c, struct msg *m);
void io_punsubscribe(struct conn *c, struct msg *m);
void io_publish(struct conn *c, struct msg *m);
void io_pubsub(struct conn *c, struct msg *m);
void peer_publish(struct io_thread *io, struct msg *m);
void peer_pubsub(struct io_thread *io, struct msg *m);

#endif
