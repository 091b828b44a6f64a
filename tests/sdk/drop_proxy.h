/*
 * drop_proxy.h - a loopback TCP proxy for tests that need a reply lost.
 *
 * One thread accepts connections on an ephemeral port and relays each to
 * 127.0.0.1:target. While `drops` is above zero, a connection that relays
 * a request holding "JOB.PUSH" waits for the broker's first reply bytes
 * after it, throws them away and closes both sides (one drop used): the
 * push was executed, its client never learns the outcome.
 */
#ifndef SPOOL_TEST_DROP_PROXY_H
#define SPOOL_TEST_DROP_PROXY_H

typedef struct drop_proxy drop_proxy;

drop_proxy *drop_proxy_start(int target_port);
int drop_proxy_port(const drop_proxy *p);
/* Arms n more drops. */
void drop_proxy_arm(drop_proxy *p, int n);
/* Drops armed and not yet used. */
int drop_proxy_left(drop_proxy *p);
/* Connections cut so far. */
int drop_proxy_cut(drop_proxy *p);
void drop_proxy_stop(drop_proxy *p);

#endif
