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
 * Local posts: each inbox has a home (a number naming the thread that
 * drains it; 0 = none). A thread that said inbox_enter(home) posts to an
 * inbox of the same home without the lock and without the eventfd: the
 * message joins a local list and an event with no descriptor is made
 * active, so it is drained in the same loop iteration, after the
 * callbacks already due (a co-located shard and I/O thread share one
 * home: docs/threads.md). Order per sender is kept either way, since one
 * sender always posts to one inbox by the same path.
 *
 * Lock: inbox->lock is a leaf lock, held only to splice the list.
 *
 * Contracts layer: calls only msg.c and log.c. The outbox below is the
 * sending side: what a thread posts during one callback, per destination.
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
    int home;                    /* the thread that drains it (inbox_enter); 0 = no local posts */
    struct msg *lhead, *ltail;   /* local posts, touched only by the home thread */
    struct event *lev;           /* made active by the first local post of a batch */
};

/* Registers the inbox's eventfd with base; drain(arg, list) is called on the
 * owner thread with the messages in the order they were posted. */
int inbox_init(struct inbox *ib, struct event_base *base, inbox_drain_fn drain, void *arg);
void inbox_destroy(struct inbox *ib);
/* Names the thread that will drain ib (before any thread starts). */
void inbox_set_home(struct inbox *ib, int home);
/* The calling thread is home: its posts to inboxes of that home are local. */
void inbox_enter(int home);
/* Takes every message still queued (after the owner thread has stopped). */
struct msg *inbox_take(struct inbox *ib);
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

/* An outbox: one batch per slot of an address book of inboxes (context.h),
 * filled during one loop callback and flushed once at its end, in slot
 * order. The book may be filled after outbox_init; it is read at flush. */
struct outbox {
    struct msg_batch *batch;
    struct inbox *const *book;
    int n;
};

int outbox_init(struct outbox *ob, struct inbox *const *book, int n);
void outbox_destroy(struct outbox *ob);
/* Queues m for the inbox in slot; sent at the next outbox_flush. */
void outbox_add(struct outbox *ob, int slot, struct msg *m);
void outbox_flush(struct outbox *ob);

#endif
