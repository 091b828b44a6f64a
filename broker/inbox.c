/*
 * inbox.c - see inbox.h.
 */
#include "inbox.h"

#include "log.h"
#include "msg.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void inbox_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct inbox *ib = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&ib->lock);
    struct msg *list = ib->head;
    ib->head = ib->tail = NULL;
    pthread_mutex_unlock(&ib->lock);
    if (list)
        ib->drain(ib->arg, list);
}

static _Thread_local int thread_home;

static void inbox_local_cb(evutil_socket_t fd, short what, void *arg)
{
    struct inbox *ib = arg;
    struct msg *list = ib->lhead;
    ib->lhead = ib->ltail = NULL;
    if (list)
        ib->drain(ib->arg, list);
}

void inbox_set_home(struct inbox *ib, int home)
{
    ib->home = home;
}

void inbox_enter(int home)
{
    thread_home = home;
}

int inbox_init(struct inbox *ib, struct event_base *base, inbox_drain_fn drain, void *arg)
{
    pthread_mutex_init(&ib->lock, NULL);
    ib->head = ib->tail = NULL;
    ib->drain = drain;
    ib->arg = arg;
    ib->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ib->efd < 0)
        return -errno;
    ib->home = 0;
    ib->lhead = ib->ltail = NULL;
    ib->ev = event_new(base, ib->efd, EV_READ | EV_PERSIST, inbox_wake_cb, ib);
    ib->lev = event_new(base, -1, 0, inbox_local_cb, ib);
    if (!ib->ev || !ib->lev || event_add(ib->ev, NULL) < 0) {
        close(ib->efd);
        return -ENOMEM;
    }
    return 0;
}

void inbox_destroy(struct inbox *ib)
{
    if (ib->ev)
        event_free(ib->ev);
    if (ib->lev)
        event_free(ib->lev);
    ib->ev = ib->lev = NULL;
    if (ib->efd >= 0)
        close(ib->efd);
    ib->efd = -1;
    pthread_mutex_destroy(&ib->lock);
}

struct msg *inbox_take(struct inbox *ib)
{
    pthread_mutex_lock(&ib->lock);
    struct msg *m = ib->head;
    ib->head = ib->tail = NULL;
    pthread_mutex_unlock(&ib->lock);
    if (ib->ltail) {
        ib->ltail->next = m;
        m = ib->lhead;
        ib->lhead = ib->ltail = NULL;
    }
    return m;
}

void inbox_discard(struct inbox *ib)
{
    struct msg *m = inbox_take(ib);
    while (m) {
        struct msg *next = m->next;
        msg_free(m);
        m = next;
    }
}

void inbox_post_list(struct inbox *ib, struct msg *first, struct msg *last)
{
    last->next = NULL;
    if (ib->home && ib->home == thread_home) { /* the drainer itself: no lock, no wake-up */
        if (ib->ltail)
            ib->ltail->next = first;
        else
            ib->lhead = first;
        ib->ltail = last;
        if (first == ib->lhead)
            event_active(ib->lev, EV_READ, 0);
        return;
    }
    pthread_mutex_lock(&ib->lock);
    int was_empty = ib->head == NULL;
    if (was_empty)
        ib->head = first;
    else
        ib->tail->next = first;
    ib->tail = last;
    pthread_mutex_unlock(&ib->lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(ib->efd, &one, sizeof one);
        (void)w;
    }
}

void inbox_post(struct inbox *ib, struct msg *m)
{
    inbox_post_list(ib, m, m);
}

void msg_batch_add(struct msg_batch *b, struct msg *m)
{
    m->next = NULL;
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    b->n++;
}

void msg_batch_post(struct msg_batch *b, struct inbox *ib)
{
    if (b->head)
        inbox_post_list(ib, b->head, b->tail);
    b->head = b->tail = NULL;
    b->n = 0;
}

/* -------------------------------------------------------------- outbox */

int outbox_init(struct outbox *ob, struct inbox *const *book, int n)
{
    ob->batch = calloc((size_t)n, sizeof *ob->batch);
    ob->book = book;
    ob->n = n;
    return ob->batch ? 0 : -ENOMEM;
}

void outbox_destroy(struct outbox *ob)
{
    free(ob->batch);
    ob->batch = NULL;
}

void outbox_add(struct outbox *ob, int slot, struct msg *m)
{
    msg_batch_add(&ob->batch[slot], m);
}

void outbox_flush(struct outbox *ob)
{
    for (int k = 0; k < ob->n; k++)
        if (ob->batch[k].head)
            msg_batch_post(&ob->batch[k], ob->book[k]);
}
