/*
 * inbox.h - how work crosses threads: a mutex-guarded list of messages plus
 * an eventfd that wakes the owning thread's event_base.
 *
 * Any thread may post; only the owner drains. The eventfd is written only
 * when the list goes from empty to non-empty, and the owner drains the whole
 * list at once, so a burst of N messages costs one wake-up. Messages are
 * linked through msg->next (see msg.h); posting hands the message over: the
 * poster must not touch it afterwards.
 *
 * Lock: inbox->lock is a leaf lock, held only to splice the list.
 */
#ifndef SPOOL_INBOX_H
#define SPOOL_INBOX_H

#include <pthread.h>
#include <stddef.h>

struct event_base;
struct event;
struct msg;

typedef void (*inbox_drain_fn)(void *arg, struct msg *list);

struct inbox {
    pthread_mutex_t lock;
    struct msg *head, *tail;
    int efd;
    struct event *ev;
    inbox_drain_fn drain;
    void *arg;
};

/* Registers the inbox's eventfd with base; drain(arg, list) is called on the
 * owner thread with the messages in the order they were posted. */
int inbox_init(struct inbox *ib, struct event_base *base, inbox_drain_fn drain, void *arg);
void inbox_destroy(struct inbox *ib);
/* Frees every message still queued (after the owner thread has stopped). */
void inbox_discard(struct inbox *ib);

/* Posts one message, or a list (first..last linked through next). */
void inbox_post(struct inbox *ib, struct msg *m);
void inbox_post_list(struct inbox *ib, struct msg *first, struct msg *last);

/* A per-destination batch that the poster fills during one loop turn and
 * posts once (one lock, at most one wake-up). */
struct msg_batch {
    struct msg *head, *tail;
    size_t n;
};
void msg_batch_add(struct msg_batch *b, struct msg *m);
void msg_batch_post(struct msg_batch *b, struct inbox *ib);

#endif
